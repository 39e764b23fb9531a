/*
 * fuzz_console.c -- libFuzzer entry point for the HTTP console's request
 * parsing (console/API.md): the bytes are the body of POST
 * /api/tensors/store, as JSON and as .npy (one file, or two of the batch
 * form), and the key argument of a load
 * and the after/prefix arguments of a listing. No store is open, so every
 * request is decoded and validated whole and then answered 503; the answer
 * must be a JSON error with a 4xx/5xx status, never a crash, a read past
 * the buffer or a leak.
 */
#include "console_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const console_req *r)
{
    if (r->status < 400 || r->status > 599 || !r->out.p || r->out.n < 2 ||
        strncmp(r->out.p, "{\"error\":", 9) || r->out.p[r->out.n - 1] != '\n')
        abort();
}

static void run(console_route route, const uint8_t *data, size_t size, int npy, int arg)
{
    console_env env = {.max_body = 1 << 20, .role = "serve"};
    console_req r;
    memset(&r, 0, sizeof(r));
    r.route = route;
    r.body_npy = npy;
    if (route == ROUTE_STORE_TENSOR) {
        r.body = malloc(size ? size : 1);
        if (!r.body)
            return;
        memcpy(r.body, data, size);
        r.body_len = size;
        if (npy) { /* two key= and name=: the batch form takes as many files */
            static char k1[] = "k1", k2[] = "k2";
            static char *keys[] = {k1, k2};
            static size_t lens[] = {2, 2};
            r.keys = r.names = keys;
            r.key_lens = r.name_lens = lens;
            r.n_keys = r.n_names = 1 + (size > 0 && data[0] % 2);
        }
    } else {
        /* a query argument: as MHD hands it over, without NUL bytes */
        size_t n = 0;
        while (n < size && data[n])
            n++;
        if (!(r.args[arg] = malloc(n + 1)))
            return;
        memcpy(r.args[arg], data, n);
        r.args[arg][n] = 0;
        r.arg_len[arg] = n;
    }
    console__run(&r, NULL, plat_vfs_default(), NULL, &env);
    check(&r);
    for (int i = 0; i < N_ARGS; i++)
        free(r.args[i]);
    free(r.body);
    free(r.out.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(ROUTE_STORE_TENSOR, data, size, 0, 0);
    run(ROUTE_STORE_TENSOR, data, size, 1, 0);
    run(ROUTE_LOAD, data, size, 0, ARG_KEY);
    run(ROUTE_LOAD, data, size, 0, ARG_PREVIEW);
    run(ROUTE_LIST, data, size, 0, ARG_AFTER);
    run(ROUTE_LIST, data, size, 0, ARG_PREFIX);
    run(ROUTE_LIST, data, size, 0, ARG_LIMIT);
    return 0;
}
