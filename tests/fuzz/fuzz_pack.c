/*
 * fuzz_pack.c -- libFuzzer entry point for the packed-frame decoder
 * (pack_open / pack_next). The first input byte picks how the rest is
 * used: odd, the rest is a frame's contents and the harness seals it (its
 * length field and CRC-32C made valid) so the fuzzer reaches the field
 * checks behind the checksum; even, the rest is taken as it is. Whatever
 * the bytes, every length must be bounded (ASan), a decoded record must lie
 * inside its frame, and a frame that decodes must encode again
 * (pack_encode) into frames that decode to the same records. The cache of
 * decoded tensors (fcache.h) must give each record back whole and stay
 * within its budget.
 */
#include "crc32c.h"
#include "fcache.h"
#include "format.h"
#include "pack.h"

#include "embeddb/tensor_store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct rec_copy {
    ts_tensor t;
    uint64_t seq;
    uint16_t name_len;
    uint8_t key[TS_MAX_KEY_LEN];
    char name[TS_MAX_NAME_LEN + 1];
    const uint8_t *data;
} rec_copy;

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Decodes one frame, copying its records to recs (when given: room for
 * every record of the frame). 0 when it decodes whole, else TS_ECORRUPT /
 * TS_ENOMEM. */
static int decode(const uint8_t *f, size_t avail, rec_copy *recs, size_t *n, uint32_t *flen)
{
    pack_dec *d = malloc(sizeof(*d));
    pack_rec r;
    const char *why = NULL;
    int rc;
    if (!d)
        return TS_ENOMEM;
    rc = pack_open(d, f, avail, flen, &why);
    check(rc != TS_ECORRUPT || why != NULL);
    while (!rc && (rc = pack_next(d, &r, &why)) == 0) {
        check(*flen <= avail && *flen <= FMT_FRAME_MAX_LEN);
        check(r.key_len >= 1 && r.key_len <= TS_MAX_KEY_LEN);
        check(r.name_len <= TS_MAX_NAME_LEN && r.ndim <= TS_MAX_DIMS);
        check(r.data_len <= FMT_PACK_MAX_DATA && ts_dtype_size((ts_dtype)r.dtype) != 0);
        check(r.data >= f && r.data + r.data_len <= f + *flen - 4);
        check(r.name >= f && r.name + r.name_len <= f + *flen - 4);
        if (recs) {
            rec_copy *c = &recs[*n];
            c->name_len = r.name_len;
            memcpy(c->key, r.key, r.key_len);
            memcpy(c->name, r.name, r.name_len);
            c->name[r.name_len] = 0;
            c->t = (ts_tensor){.key = c->key, .key_len = r.key_len, .name = c->name,
                               .dtype = (ts_dtype)r.dtype, .ndim = r.ndim,
                               .timestamp_ns = r.timestamp_ns, .data = r.data,
                               .data_len = r.data_len};
            memcpy(c->t.shape, r.shape, sizeof(r.shape));
            c->seq = r.seq;
            c->data = r.data;
        }
        (*n)++;
    }
    if (rc == TS_ECORRUPT)
        check(why != NULL);
    pack_close(d);
    free(d);
    return rc == 1 ? 0 : rc;
}

/* Re-encodes a decoded frame's records and decodes the result. */
static void reencode(const rec_copy *recs, size_t n)
{
    const ts_tensor **p = malloc(n * sizeof(*p));
    int64_t *ts = malloc(n * sizeof(*ts));
    rec_copy *back = malloc(n * sizeof(*back));
    uint8_t *buf = NULL;
    uint64_t len = 0, len2 = 0;
    if (!p || !ts || !back)
        goto out;
    for (size_t i = 0; i < n; i++) {
        /* A name holding a NUL, or dims whose running product overflows
         * before a 0 (pack_open takes the product as 0 elements,
         * ts_validate refuses it): such a frame decodes, but no save could
         * have written it. */
        if (strlen(recs[i].name) != recs[i].name_len || ts_validate(&recs[i].t))
            goto out;
        p[i] = &recs[i].t;
        ts[i] = recs[i].t.timestamp_ns;
    }
    check(pack_eligible(p, n));
    check(pack_encode(p, ts, n, recs[0].seq, NULL, &len, NULL) == 0);
    if (!(buf = malloc(len ? len : 1)))
        goto out;
    check(pack_encode(p, ts, n, recs[0].seq, buf, &len2, NULL) == 0 && len2 == len);
    size_t got = 0;
    for (uint64_t off = 0; got < n;) {
        uint32_t flen = 0;
        size_t before = got;
        check(off < len);
        check(decode(buf + off, (size_t)(len - off), back + got, &got, &flen) == 0);
        check(got > before);
        off += flen;
    }
    check(got == n);
    for (size_t i = 0; i < n; i++) {
        check(back[i].seq == recs[i].seq);
        check(back[i].t.key_len == recs[i].t.key_len &&
              !memcmp(back[i].key, recs[i].key, recs[i].t.key_len));
        check(!strcmp(back[i].name, recs[i].name));
        check(back[i].t.dtype == recs[i].t.dtype && back[i].t.ndim == recs[i].t.ndim);
        check(!memcmp(back[i].t.shape, recs[i].t.shape, recs[i].t.ndim * sizeof(uint64_t)));
        check(back[i].t.timestamp_ns == recs[i].t.timestamp_ns);
        check(back[i].t.data_len == recs[i].t.data_len &&
              (!recs[i].t.data_len || !memcmp(back[i].data, recs[i].data, recs[i].t.data_len)));
    }
out:
    free(buf);
    free(back);
    free(ts);
    free(p);
}

/* The records a frame decodes to (recs, n of them) through the cache of
 * rows: each one put comes back whole while the budget holds it (a later
 * record of the same key replaces it), and the cache never holds more than
 * its budget, however small, whether a put may drop rows or not. */
static void cache_check(const rec_copy *recs, size_t n, uint64_t budget)
{
    fcache c;
    fcache_init(&c, budget);
    for (size_t i = 0; i < n; i++) {
        pack_rec r = {.seq = recs[i].seq, .timestamp_ns = recs[i].t.timestamp_ns,
                      .key = recs[i].key, .key_len = (uint16_t)recs[i].t.key_len,
                      .name = (const uint8_t *)recs[i].name, .name_len = recs[i].name_len,
                      .dtype = (uint8_t)recs[i].t.dtype, .ndim = recs[i].t.ndim,
                      .data = recs[i].data, .data_len = (uint32_t)recs[i].t.data_len};
        memcpy(r.shape, recs[i].t.shape, sizeof(r.shape));
        fcache_put(&c, &r, i % 2);
        check(c.bytes <= budget);
        pack_rec b;
        if (!fcache_get(&c, r.key, r.key_len, &b)) {
            check(budget != UINT64_MAX);
            continue;
        }
        check(b.seq == r.seq && b.timestamp_ns == r.timestamp_ns && b.key_len == r.key_len &&
              !memcmp(b.key, r.key, r.key_len) && b.name_len == r.name_len &&
              !memcmp(b.name, r.name, r.name_len) && b.dtype == r.dtype && b.ndim == r.ndim &&
              !memcmp(b.shape, r.shape, r.ndim * sizeof(uint64_t)) &&
              b.data_len == r.data_len && (!r.data_len || !memcmp(b.data, r.data, r.data_len)));
    }
    fcache_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *f = NULL;
    size_t len;
    rec_copy *recs = NULL;
    size_t n = 0, n2 = 0;
    uint32_t flen = 0;
    if (size < 1 || size > FMT_FRAME_MAX_LEN + 64)
        return 0;
    if (data[0] & 1) {
        len = 4 + (size - 1) + 4;
        if (!(f = malloc(len)))
            return 0;
        put32(f, (uint32_t)(len - 4));
        memcpy(f + 4, data + 1, size - 1);
        put32(f + len - 4, crc32c(f, len - 4));
    } else {
        len = size - 1;
        if (!(f = malloc(len ? len : 1)))
            return 0;
        memcpy(f, data + 1, len);
    }
    if (decode(f, len, NULL, &n, &flen) == 0) {
        if ((recs = malloc(n * sizeof(*recs)))) {
            check(decode(f, len, recs, &n2, &flen) == 0 && n2 == n);
            cache_check(recs, n, UINT64_MAX);
            cache_check(recs, n, 64 + 16 * sizeof(void *) + 200);
            reencode(recs, n);
        }
    }
    free(recs);
    free(f);
    return 0;
}
