/*
 * soak_dump.c -- prints every tensor of one store for the kill -9 soak
 * (soak_agent.py): opens DIR read-only, scans every key, loads each tensor
 * whole (so every CRC of its record is checked) and prints one line
 *     KEY \t SEQ \t TIMESTAMP_NS \t DATA_LEN \t V0 \t V1 ... (first N int64)
 * The soak's payloads are int64 tensors [id, publish time, check, ...];
 * values are printed only for int64 tensors (other dtypes print "-").
 *
 * It is a test tool, not the CLI: `embeddb get` per key costs a process
 * per tensor, far too slow for 100k tensors. It fails loudly: ts_verify
 * first reads every record of every file (damage anywhere, even in a record
 * no key points to), then any load error (a checksum that does not match, a
 * key the scan listed that cannot be loaded) is printed to stderr with the
 * key; either makes the exit status 4. An open or scan failure exits 1.
 * Key bytes outside printable ASCII, and backslashes, are printed as \xNN
 * escapes (the agent's keys are text).
 *
 * Usage: soak_dump [-n N] DIR
 */
#include "embeddb/tensor_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_VALUES 3

typedef struct key_list {
    uint8_t **keys;
    size_t *lens;
    size_t n, cap;
    int oom;
} key_list;

/* Scan callback: copies each key (the entry is borrowed for the call). Keys
 * are collected first and loaded after the scan, so no load runs inside
 * the engine's iteration. */
static int collect(void *ctx, const ts_entry *e)
{
    key_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        uint8_t **k = realloc(l->keys, cap * sizeof(*k));
        if (k)
            l->keys = k;
        size_t *n = k ? realloc(l->lens, cap * sizeof(*n)) : NULL;
        if (n)
            l->lens = n;
        if (!k || !n) {
            l->oom = 1;
            return 1;
        }
        l->cap = cap;
    }
    uint8_t *copy = malloc(e->key_len ? e->key_len : 1);
    if (!copy) {
        l->oom = 1;
        return 1;
    }
    memcpy(copy, e->key, e->key_len);
    l->keys[l->n] = copy;
    l->lens[l->n++] = e->key_len;
    return 0;
}

static void report_damage(void *ctx, const char *msg)
{
    fprintf(stderr, "soak_dump: %s: %s\n", (const char *)ctx, msg);
}

static void print_key(FILE *f, const uint8_t *k, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
            fputc(k[i], f);
        else
            fprintf(f, "\\x%02x", k[i]);
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned long n_values = DEFAULT_VALUES;
    ts_store *s = NULL;
    key_list l = {0};
    char err[1024];
    int status = 1;
    uint64_t bad = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            char *end = NULL;
            n_values = strtoul(argv[++i], &end, 10);
            if (!end || *end || n_values > 1024) {
                fprintf(stderr, "soak_dump: -n takes 0..1024\n");
                return 2;
            }
        } else if (!dir && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            dir = NULL;
            break;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: soak_dump [-n N] DIR\n");
        return 2;
    }

    ts_options o;
    ts_options_init(&o);
    o.read_only = 1;
    int rc = ts_open(dir, &o, &s, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "soak_dump: cannot open %s: %s\n", dir, err[0] ? err : ts_strerror(rc));
        goto out;
    }
    rc = ts_verify(s, report_damage, (void *)dir, &bad);
    if (rc && rc != TS_ECORRUPT) {
        fprintf(stderr, "soak_dump: verifying %s: %s\n", dir,
                ts_errmsg(s)[0] ? ts_errmsg(s) : ts_strerror(rc));
        goto out;
    }
    rc = ts_scan_prefix(s, NULL, 0, collect, &l);
    if (rc || l.oom) {
        fprintf(stderr, "soak_dump: scanning %s: %s\n", dir,
                l.oom ? "out of memory" : ts_errmsg(s)[0] ? ts_errmsg(s) : ts_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        ts_tensor *t = NULL;
        rc = ts_load(s, l.keys[i], l.lens[i], &t);
        if (rc) {
            /* Loud: the soak treats any of these as a failed run. */
            fprintf(stderr, "soak_dump: %s: key ", dir);
            print_key(stderr, l.keys[i], l.lens[i]);
            fprintf(stderr, ": %s (%s)\n", ts_strerror(rc), ts_errmsg(s));
            bad++;
            continue;
        }
        print_key(stdout, t->key, t->key_len);
        printf("\t%" PRIu64 "\t%" PRId64 "\t%zu", t->seq, t->timestamp_ns, t->data_len);
        size_t n = t->dtype == TS_I64 ? t->data_len / sizeof(int64_t) : 0;
        for (size_t j = 0; j < n_values; j++) {
            int64_t v = 0;
            if (j < n) {
                memcpy(&v, (const uint8_t *)t->data + j * sizeof(v), sizeof(v));
                printf("\t%" PRId64, v);
            } else {
                printf("\t-");
            }
        }
        putchar('\n');
        ts_tensor_free(t);
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "soak_dump: writing the listing failed\n");
        goto out;
    }
    status = bad ? 4 : 0;
    if (bad)
        fprintf(stderr, "soak_dump: %s: %" PRIu64 " damaged item(s) or failed load(s) among %zu "
                "tensor(s)\n", dir, bad, l.n);
out:
    for (size_t i = 0; i < l.n; i++)
        free(l.keys[i]);
    free(l.keys);
    free(l.lens);
    ts_close(s);
    return status;
}
