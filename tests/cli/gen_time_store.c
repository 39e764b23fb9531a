/*
 * gen_time_store.c -- writes the small store test_cli_time.py reads: known
 * keys, timestamps and seqs spread over three SSTs and the open WAL, so that
 * `embeddb ls --from/--to` and `embeddb latest` can be checked against exact
 * expectations. A test fixture, not a tool: it is not installed.
 *
 * usage: gen_time_store DIR BASE_NS
 *
 * Tensor c = 0..99 (saved in that order, 5 a batch): key
 * "sensors/imu<c%2>#<c as 20 digits>" (the agent's key form, one counter over
 * both topics), name "sensors/imu<c%2>", f32[3] = {c, c + 0.5, c + 0.25},
 * timestamp BASE_NS + c seconds. Flushes after c = 29, 59 and 89, so
 * c = 90..99 stay in the WAL. Then, into the WAL:
 *   - "cam/0" (name "cam", f32[1] = {7}) at BASE_NS + 1.5 s;
 *   - key c = 4 saved again, f32[3] = {-1, -2, -3}, at BASE_NS + 200 s: the
 *     newest tensor of sensors/imu0, and a key whose older version lies
 *     in windows where its newest does not.
 * Exit 0, or 1 with the reason on stderr.
 */
#include "embeddb/tensor_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S INT64_C(1000000000)

typedef struct gen_item {
    char key[64];
    char name[32];
    float v[3];
    ts_tensor t;
} gen_item;

static void item(gen_item *g, const char *key, const char *name, const float *v, uint64_t n,
                 int64_t ts)
{
    snprintf(g->key, sizeof(g->key), "%s", key);
    snprintf(g->name, sizeof(g->name), "%s", name);
    memcpy(g->v, v, n * sizeof(float));
    g->t = (ts_tensor){.key = (const uint8_t *)g->key, .key_len = strlen(g->key),
                       .name = g->name, .dtype = TS_F32, .ndim = 1, .shape = {n},
                       .timestamp_ns = ts, .data = g->v, .data_len = n * sizeof(float)};
}

static int save(ts_store *s, gen_item *g, size_t n)
{
    const ts_tensor *p[5];
    for (size_t i = 0; i < n; i++)
        p[i] = &g[i].t;
    return ts_save_batch(s, p, n);
}

int main(int argc, char **argv)
{
    char err[512] = "", *end = NULL;
    ts_options o;
    ts_store *s = NULL;
    gen_item g[5];
    long long base;
    int rc = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: gen_time_store DIR BASE_NS\n");
        return 1;
    }
    base = strtoll(argv[2], &end, 10);
    if (*end || base < 0 || base > INT64_MAX / 2) {
        fprintf(stderr, "gen_time_store: bad BASE_NS '%s'\n", argv[2]);
        return 1;
    }
    ts_options_init(&o);
    o.create_if_missing = 1;
    if ((rc = ts_open(argv[1], &o, &s, err, sizeof(err))))
        goto out;
    for (int c = 0; c < 100 && !rc; c++) {
        char key[64], name[32];
        float v[3] = {(float)c, (float)c + 0.5f, (float)c + 0.25f};
        snprintf(name, sizeof(name), "sensors/imu%d", c % 2);
        snprintf(key, sizeof(key), "%s#%020d", name, c);
        item(&g[c % 5], key, name, v, 3, base + c * S);
        if (c % 5 == 4)
            rc = save(s, g, 5);
        if (!rc && (c == 29 || c == 59 || c == 89))
            rc = ts_flush(s, NULL, 0, NULL);
    }
    if (!rc) {
        float cam[1] = {7}, again[3] = {-1, -2, -3};
        item(&g[0], "cam/0", "cam", cam, 1, base + S + S / 2);
        item(&g[1], "sensors/imu0#00000000000000000004", "sensors/imu0", again, 3, base + 200 * S);
        if (!(rc = save(s, g, 1)))
            rc = save(s, g + 1, 1);
    }
    if (rc)
        snprintf(err, sizeof(err), "%s", ts_errmsg(s));
out:
    if (rc)
        fprintf(stderr, "gen_time_store: %s: %s: %s\n", argv[1], ts_strerror(rc), err);
    ts_close(s);
    return rc ? 1 : 0;
}
