/*
 * fuzz_wal.c -- libFuzzer entry point for recovery: the input becomes the
 * open WAL segment of a store (after a valid segment header) and the store
 * is opened read-only, listed, loaded key by key (plain records and packed
 * frames), scanned by time, asked for its latest tensor and verified.
 * Whatever the bytes, the open either fails with an error or yields only
 * records whose checksums held.
 */
#include "format.h"
#include "manifest.h"
#include "record.h"

#include "embeddb/tensor_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void put_file(const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        abort();
    fwrite(a, 1, alen, fp);
    if (blen)
        fwrite(b, 1, blen, fp);
    fclose(fp);
}

typedef struct keys {
    int n;
    uint8_t key[16][TS_MAX_KEY_LEN];
    size_t len[16];
    int64_t ts[16];
} keys;

static int collect(void *ctx, const ts_entry *e)
{
    keys *k = ctx;
    if (k->n < 16) {
        memcpy(k->key[k->n], e->key, e->key_len);
        k->len[k->n] = e->key_len;
        k->ts[k->n] = e->timestamp_ns;
    }
    k->n++;
    return 0;
}

static int count(void *ctx, const ts_entry *e)
{
    (void)e;
    (*(int *)ctx)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[FMT_SEG_HDR_LEN], *man = NULL;
    size_t man_len = 0;
    ts_options o;
    ts_store *s = NULL;
    char err[512];
    keys *k = calloc(1, sizeof(*k));
    int n = 0;
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/embeddb-fuzz-%d", (int)getpid());
        if (mkdir(dir, 0755) && access(dir, F_OK))
            abort();
    }
    seg_hdr_encode(0, 1, hdr);
    if (man_encode(NULL, 0, 0, &man, &man_len))
        abort();
    put_file("MANIFEST", man, man_len, NULL, 0);
    put_file("wal_000000.log", hdr, sizeof(hdr), data, size);
    free(man);
    ts_options_init(&o);
    o.read_only = 1;
    if (k && ts_open(dir, &o, &s, err, sizeof(err)) == 0) {
        ts_scan_prefix(s, NULL, 0, collect, k);
        for (int i = 0; i < k->n && i < 16; i++) {
            ts_tensor *t = NULL;
            if (ts_load(s, k->key[i], k->len[i], &t) == 0 &&
                (t->key_len != k->len[i] || memcmp(t->key, k->key[i], k->len[i])))
                abort();
            ts_tensor_free(t);
            if (ts_load_preview(s, k->key[i], k->len[i], 1, &t) == 0 && t->key_len != k->len[i])
                abort();
            ts_tensor_free(t);
            if (ts_scan_time(s, k->key[i], k->len[i], k->ts[i], k->ts[i] + (k->ts[i] < INT64_MAX),
                             count, &n) == 0 && n == 0 && k->ts[i] < INT64_MAX)
                abort(); /* its own timestamp's window holds it */
            n = 0;
            if (ts_latest(s, k->key[i], 1, &t) == 0 && (t->key_len < 1 || t->key[0] != k->key[i][0]))
                abort();
            ts_tensor_free(t);
        }
        ts_scan_time(s, NULL, 0, -1000, 1000000, count, &n);
        ts_verify(s, NULL, NULL, NULL);
        ts_close(s);
    }
    free(k);
    return 0;
}
