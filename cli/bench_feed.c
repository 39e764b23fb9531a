/*
 * bench_feed.c -- agent-style benchmark tensors (see bench_feed.h).
 */
#include "bench_feed.h"

#include "bench_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_feed_new(bench_feed *f, uint64_t topics, uint64_t elems, size_t n)
{
    size_t data_len = 0;
    int rc = 0;
    memset(f, 0, sizeof(*f));
    if (!topics || topics > BENCH_FEED_MAX_TOPICS || !n ||
        bench_util_mul_size((uint64_t)n * sizeof(float), elems, &data_len))
        return TS_EOVERFLOW;
    f->topics = topics;
    f->elems = elems;
    f->n = n;
    f->t = calloc(n, sizeof(*f->t));
    f->ptrs = calloc(n, sizeof(*f->ptrs));
    f->keys = calloc(n, sizeof(*f->keys));
    f->names = calloc((size_t)topics, sizeof(*f->names));
    f->data = malloc(data_len ? data_len : 1);
    if (!f->t || !f->ptrs || !f->keys || !f->names || !f->data)
        rc = TS_ENOMEM;
    for (uint64_t i = 0; !rc && i < topics; i++)
        snprintf(f->names[i], sizeof(f->names[i]), "sensors/imu%" PRIu64, i);
    if (rc)
        bench_feed_free(f);
    return rc;
}

void bench_feed_free(bench_feed *f)
{
    free(f->t);
    free(f->ptrs);
    free(f->keys);
    free(f->names);
    free(f->data);
    memset(f, 0, sizeof(*f));
}

size_t bench_feed_key(const bench_feed *f, uint64_t c, char *out)
{
    int len = snprintf(out, BENCH_FEED_KEY_MAX, "%s#%020" PRIu64, f->names[c % f->topics], c);
    return len > 0 ? (size_t)len : 0;
}

int64_t bench_feed_ts(const bench_feed *f, uint64_t c)
{
    uint64_t i = c / f->topics;
    uint64_t jitter_ns = ((c * UINT64_C(0x9e3779b97f4a7c15)) >> 40) % 200000;
    return BENCH_FEED_BASE_NS + (int64_t)(i * 1000000 + jitter_ns);
}

void bench_feed_fill(bench_feed *f, uint64_t first, size_t m)
{
    for (size_t j = 0; j < m; j++) {
        uint64_t c = first + j;
        float *v = f->data + j * f->elems;
        size_t klen = bench_feed_key(f, c, f->keys[j]);
        for (uint64_t k = 0; k < f->elems; k++)
            v[k] = (float)(c % 1000003) + (float)k * 0.125f;
        f->t[j] = (ts_tensor){.key = (const uint8_t *)f->keys[j], .key_len = klen,
                              .name = f->names[c % f->topics], .dtype = TS_F32, .ndim = 1,
                              .shape = {f->elems}, .timestamp_ns = bench_feed_ts(f, c),
                              .data = v, .data_len = (size_t)f->elems * sizeof(float)};
        f->ptrs[j] = &f->t[j];
    }
}
