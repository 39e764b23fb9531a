/*
 * fuzz_object.c -- libFuzzer entry point for the snapshot object reader,
 * driven as `embeddb verify OBJECT` drives it: the bytes as an uploaded
 * object (objread.h: the codec told by the first bytes, zstd, gzip or tar),
 * every sst_N.sst member through the streaming segment reader
 * (ts_sst_stream), MANIFEST through ts_manifest_parse, MANIFEST.json's file
 * list against the members (objread_check_manifest). The source hands out
 * bytes in uneven pieces, as a pipe does. Each must accept or reject
 * without reading outside the buffer, and without allocating what a
 * header merely declares.
 */
#include "embeddb/objread.h"
#include "embeddb/sst_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const uint8_t *p;
    size_t len, pos;
} src;

static int pull(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    src *s = ctx;
    size_t piece = 1 + (s->pos * 7919) % 5000; /* uneven, deterministic */
    if (len > piece)
        len = piece;
    if (len > s->len - s->pos)
        len = s->len - s->pos;
    memcpy(buf, s->p + s->pos, len);
    s->pos += len;
    *got = len;
    return 0;
}

static int count(void *ctx, const ts_entry *e)
{
    (void)e;
    ++*(size_t *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = {data, size, 0};
    objread *r = objread_new(pull, &s);
    objread_member m;
    char err[1024], *json = NULL;
    size_t n_tensors = 0;
    ts_sst_visitor v = {.tensor = count, .ctx = &n_tensors};
    int rc;
    if (!r)
        return 0;
    while ((rc = objread_next(r, &m)) == 0) {
        unsigned long long no;
        char tail[8];
        if (sscanf(m.name, "sst_%llu%7s", &no, tail) == 2 && !strcmp(tail, ".sst")) {
            ts_sst_stream(objread_read, r, m.size, no, &v, NULL, err, sizeof(err));
        } else if ((!strcmp(m.name, "MANIFEST") || !strcmp(m.name, "MANIFEST.json")) &&
                   m.size < (1u << 20)) {
            char *buf = malloc((size_t)m.size + 1);
            size_t done = 0, got = 0;
            while (buf && done < m.size &&
                   !objread_read(r, (uint8_t *)buf + done, (size_t)m.size - done, &got) && got)
                done += got;
            if (buf && !strcmp(m.name, "MANIFEST")) {
                uint64_t *live = NULL;
                size_t n = 0;
                if (ts_manifest_parse(buf, done, &live, &n, err, sizeof(err)) == 0)
                    free(live);
                free(buf);
            } else if (buf) {
                buf[done] = 0;
                free(json);
                json = buf;
            }
        }
        if (objread_skip(r))
            break;
    }
    if (rc == 1 && json)
        objread_check_manifest(r, json, NULL, NULL);
    free(json);
    objread_free(r);
    return 0;
}
