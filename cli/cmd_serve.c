/*
 * cmd_serve.c -- `embeddb serve DIR`: the seed's web demo on a store of its
 * own, no MQTT needed. Opens DIR as its one writer, starts the HTTP console
 * (console.h) and runs its requests on this thread, the store's owner,
 * until SIGINT/SIGTERM.
 */
#include "cli.h"
#include "cli_args.h"

#include "embeddb/console.h"
#include "embeddb/plat_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: embeddb serve DIR [--listen ADDR:PORT] [--token-file FILE]\n"
    "                         [--demo-dir DIR] [--memtable-max BYTES] [--max-body BYTES]\n"
    "\n"
    "Opens the store in DIR (created when missing) and serves the console:\n"
    "the page (tensor form, live WAL -> MemTable -> SST view, the Python\n"
    "demo's baseline vs EmbedDb) and the JSON API (console/API.md).\n"
    "\n"
    "  --listen ADDR:PORT   default 127.0.0.1:8080; port 0 picks a free one.\n"
    "                       Another address than loopback needs --token-file.\n"
    "  --token-file FILE    writes (POST) need Authorization: Bearer <its line>\n"
    "  --demo-dir DIR       where dl_model_demo.py wrote weights_baseline.json\n"
    "                       and tensor_payload.txt (default: DIR's parent)\n"
    "  --memtable-max BYTES flush when the open WAL segment holds this much\n"
    "                       (default 64 MiB)\n"
    "  --max-body BYTES     largest request body (default 16 MiB)\n"
    "\n"
    "Prints the URL once listening; stops on SIGINT/SIGTERM.\n";

int cmd_serve(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *token_file = NULL, *demo_dir = NULL;
    const char *mt_max = NULL, *max_body = NULL;
    cli_opt opts[] = {{"--listen", &listen}, {"--token-file", &token_file},
                      {"--demo-dir", &demo_dir}, {"--memtable-max", &mt_max},
                      {"--max-body", &max_body}};
    cli_args a;
    char err[1024], parent[4096];
    char *token = NULL;
    ts_store *s = NULL;
    console *c = NULL;
    uint64_t mtm = 0, mb = 16u << 20;
    int ec = CLI_EXIT_USAGE;
    if (cli_args_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), 1, 1, &a))
        return cli_args_usage(usage, 0);
    if (a.help)
        return cli_args_usage(usage, 1);
    if ((mt_max && cli_args_u64("--memtable-max", mt_max, 4096, UINT64_MAX / 2, &mtm)) ||
        (max_body && cli_args_u64("--max-body", max_body, 1024, 1u << 30, &mb)))
        return CLI_EXIT_USAGE;
    const char *dir = a.pos[0];
    {
        unsigned char ss[128];
        size_t sl;
        int loopback = 0;
        if (console_parse_listen(listen, ss, &sl, &loopback, err, sizeof(err))) {
            fprintf(stderr, "embeddb serve: %s\n", err);
            return CLI_EXIT_USAGE;
        }
        if (!loopback && !token_file) {
            fprintf(stderr, "embeddb serve: --listen %s is not a loopback address: give "
                    "--token-file so that writes need a token\n", listen);
            return CLI_EXIT_USAGE;
        }
    }
    if (token_file && console_read_token(NULL, token_file, &token, err, sizeof(err))) {
        fprintf(stderr, "embeddb serve: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (!demo_dir) {
        snprintf(parent, sizeof(parent), "%s", dir);
        size_t n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/')
            parent[--n] = 0;
        char *slash = strrchr(parent, '/');
        if (!slash)
            snprintf(parent, sizeof(parent), ".");
        else if (slash == parent)
            parent[1] = 0;
        else
            *slash = 0;
        demo_dir = parent;
    }
    ts_options o;
    ts_options_init(&o);
    o.create_if_missing = 1;
    if (mtm)
        o.memtable_max = mtm;
    ec = CLI_EXIT_STORE;
    if (ts_open(dir, &o, &s, err, sizeof(err))) {
        fprintf(stderr, "embeddb serve: cannot open %s: %s\n", dir, err);
        goto out;
    }
    if (plat_signals_install()) {
        fprintf(stderr, "embeddb serve: cannot install signal handlers\n");
        goto out;
    }
    console_config cc = {.listen = listen, .token = token, .store_dir = dir,
                         .demo_dir = demo_dir, .role = "serve", .max_body = (size_t)mb};
    if (console_start(&cc, &c, err, sizeof(err))) {
        fprintf(stderr, "embeddb serve: %s\n", err);
        goto out;
    }
    {
        const char *host = listen;
        size_t hl = (size_t)(strrchr(listen, ':') - listen);
        printf("embeddb serve: http://%.*s:%u/ (store %s%s)\n", (int)hl, host,
               (unsigned)console_port(c), dir, token ? "; writes need the token" : "");
        fflush(stdout);
    }
    while (!(plat_signals_take() & PLAT_SIG_STOP))
        console_serve(c, &s, NULL, NULL, 100);
    ec = CLI_EXIT_OK;
out:
    console_free(c);
    ts_close(s);
    free(token);
    return ec;
}
