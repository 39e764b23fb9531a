/*
 * bench_feed.h -- the tensors the agent-style benchmarks (bench_small.c,
 * bench_reads.c) save: what embeddb-agent stores for MQTT sensor topics.
 *
 * Message c (c = 0, 1, 2 ...: one counter over every topic, like the agent's
 * next_key) belongs to topic c % T, "sensors/imu0" ... "sensors/imu<T-1>".
 * Its key is "<topic>#<c as 20 digits>" (agent/batch.c's form), its name the
 * topic, its dtype f32 and shape [elems]. Its timestamp is BENCH_FEED_BASE_NS
 * + i ms + jitter, i = c / T being its index within its topic (every topic
 * is a 1 kHz stream) and jitter 0..199 us a hash of c: deterministic, and a
 * topic's timestamps still rise. Values depend on c, so no two messages are
 * alike.
 *
 * Not here: timing or stores; a feed only fills batches.
 */
#ifndef EMBEDDB_BENCH_FEED_H
#define EMBEDDB_BENCH_FEED_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* 2026-11-30T00:00:00Z */
#define BENCH_FEED_BASE_NS (INT64_C(1795996800) * 1000000000)
#define BENCH_FEED_MAX_TOPICS 100000
/* "sensors/imu99999#" + 20 digits + NUL, rounded up. */
#define BENCH_FEED_KEY_MAX 48
#define BENCH_FEED_TOPIC_MAX 24

typedef struct bench_feed {
    uint64_t topics, elems;
    size_t n;                                /* batch capacity */
    ts_tensor *t;                            /* n tensors ... */
    const ts_tensor **ptrs;                  /* ... and pointers to them */
    char (*keys)[BENCH_FEED_KEY_MAX];        /* n keys */
    char (*names)[BENCH_FEED_TOPIC_MAX];     /* one per topic */
    float *data;                             /* n * elems values */
} bench_feed;

/* A feed of `topics` (1..BENCH_FEED_MAX_TOPICS) topics whose tensors hold
 * `elems` floats, in batches of up to n. 0 or TS_ENOMEM / TS_EOVERFLOW. */
int bench_feed_new(bench_feed *f, uint64_t topics, uint64_t elems, size_t n);
/* Frees what bench_feed_new allocated; a zeroed feed is a no-op. */
void bench_feed_free(bench_feed *f);

/* Fills batch slots 0..m-1 (m <= n) with messages first .. first+m-1;
 * f->ptrs is then ready for ts_save_batch(s, f->ptrs, m). */
void bench_feed_fill(bench_feed *f, uint64_t first, size_t m);

/* Message c's key into out (BENCH_FEED_KEY_MAX bytes); returns its length. */
size_t bench_feed_key(const bench_feed *f, uint64_t c, char *out);
/* Message c's timestamp. */
int64_t bench_feed_ts(const bench_feed *f, uint64_t c);

#endif
