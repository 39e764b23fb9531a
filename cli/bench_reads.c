/*
 * bench_reads.c -- `embeddb bench reads`: what reading an agent's store
 * costs as SSTs pile up. The store holds T topics (20) of S samples (100000,
 * i.e. 100 s at 1 kHz) of 12 bytes (f32[3]; keys, names and timestamps from
 * bench_feed.h), written in time order with sync off and split into 10, 100
 * and 1,000 SSTs by explicit ts_flush calls (memtable_max is set out of
 * reach so that no other flush happens). On each store, reopened read-only
 * through a pread-counting vfs, with the page cache warm:
 *   (a) point loads: ts_load of keys drawn uniformly from every stored key
 *       (xorshift, fixed seed), loads/s and preads per load;
 *   (b) the time-window query: ts_scan_time over one topic and a 10-second
 *       window in the middle of the store (10,000 records), the median time
 *       per query, the records returned and preads per query -- next to a
 *       scan of that whole topic, for contrast. The window's cost should
 *       follow the window, not the store;
 *   (c) ts_latest of a topic (every topic in turn), time and preads per call.
 * Also the store's build rate and its open time. There is no raw baseline:
 * nothing outside the engine answers these queries.
 */
#include "bench.h"

#include "bench_feed.h"
#include "bench_util.h"
#include "cli_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READS_ELEMS 3 /* 12 bytes */
#define READS_BATCH 64
#define POINT_LOADS 20000
#define WINDOW_MS 10000
#define MIN_QUERY_S 0.3 /* repeat a query until this long has passed ... */
#define MAX_QUERIES 50  /* ... or this many ran */

static const uint64_t sst_counts[] = {10, 100, 1000};

typedef struct reads_row {
    uint64_t n_sst;
    double build_tps, open_ms, disk_mb;
    double loads_s, load_preads;
    double window_ms, window_preads;
    uint64_t window_records;
    double topic_ms;
    uint64_t topic_records;
    double latest_us, latest_preads;
} reads_row;

/* Writes the store: n tensors in time order, a flush every n / n_sst. */
static int build(bench_feed *f, const char *path, uint64_t n, reads_row *row)
{
    ts_options opt;
    ts_store *s = NULL;
    ts_stats st;
    uint64_t t0, done = 0;
    int rc;
    cli_store_rmtree(path);
    ts_options_init(&opt);
    opt.create_if_missing = 1;
    opt.sync = 0;
    opt.memtable_max = UINT64_C(1) << 40;
    if ((rc = cli_store_open(path, &opt, &s)))
        goto out;
    t0 = plat_mono_ns();
    for (uint64_t k = 1; k <= row->n_sst && !rc; k++) {
        uint64_t end = n * k / row->n_sst; /* this SST holds [done, end) */
        while (done < end && !rc) {
            size_t m = (size_t)(end - done < READS_BATCH ? end - done : READS_BATCH);
            bench_feed_fill(f, done, m);
            rc = ts_save_batch(s, f->ptrs, m);
            done += m;
        }
        if (!rc)
            rc = ts_flush(s, NULL, 0, NULL);
    }
    if (rc) {
        cli_store_report(path, s, rc);
        goto out;
    }
    row->build_tps = (double)n / bench_util_secs_since(t0);
    ts_get_stats(s, &st);
    row->disk_mb = (double)st.disk_bytes / 1e6;
    if (st.n_sst != row->n_sst) {
        fprintf(stderr, "embeddb: bench: %s: %" PRIu64 " SSTs where %" PRIu64 " were made\n",
                path, st.n_sst, row->n_sst);
        rc = TS_EINVAL;
    }
out:
    ts_close(s);
    return rc;
}

static int count_entry(void *ctx, const ts_entry *e)
{
    (void)e;
    (*(uint64_t *)ctx)++;
    return 0;
}

/* Runs one scan of topic `topic` over [from, to) (the whole topic when
 * from = INT64_MIN and to = INT64_MAX); *ms its time, *records its count. */
static int scan_topic(ts_store *s, const bench_feed *f, uint64_t topic, int64_t from, int64_t to,
                      double *ms, uint64_t *records)
{
    char prefix[BENCH_FEED_TOPIC_MAX + 1];
    uint64_t t0 = plat_mono_ns();
    int rc;
    *records = 0;
    snprintf(prefix, sizeof(prefix), "%s#", f->names[topic]);
    rc = ts_scan_time(s, prefix, strlen(prefix), from, to, count_entry, records);
    *ms = bench_util_secs_since(t0) * 1e3;
    return rc;
}

/* (a), (b) and (c) on the store at path. */
static int measure(const bench_opts *o, const bench_feed *f, const char *path, uint64_t n,
                   reads_row *row)
{
    bench_util_count_vfs cv;
    ts_options opt;
    ts_store *s = NULL;
    double times[MAX_QUERIES];
    uint64_t x = 88172645463325252ull, before, t0, reps = 0, calls = 0;
    uint64_t topic = o->topics / 2, half = o->samples / 2;
    /* The window: WINDOW_MS of one topic around the middle of the store. */
    int64_t from = BENCH_FEED_BASE_NS +
                   (int64_t)(half > WINDOW_MS / 2 ? half - WINDOW_MS / 2 : 0) * 1000000;
    int64_t to = from + (int64_t)WINDOW_MS * 1000000;
    int rc;
    bench_util_count_vfs_init(&cv);
    ts_options_init(&opt);
    opt.read_only = 1;
    opt.vfs = &cv.vfs;
    t0 = plat_mono_ns();
    if ((rc = cli_store_open(path, &opt, &s)))
        goto out;
    row->open_ms = bench_util_secs_since(t0) * 1e3;
    /* (a) */
    before = cv.preads;
    t0 = plat_mono_ns();
    for (int i = 0; i < POINT_LOADS && !rc; i++) {
        char key[BENCH_FEED_KEY_MAX];
        ts_tensor *t = NULL;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t klen = bench_feed_key(f, x % n, key);
        if ((rc = ts_load(s, key, klen, &t)))
            cli_store_report(path, s, rc);
        ts_tensor_free(t);
    }
    if (rc)
        goto out;
    row->loads_s = POINT_LOADS / bench_util_secs_since(t0);
    row->load_preads = (double)(cv.preads - before) / POINT_LOADS;
    /* (b) */
    before = cv.preads;
    t0 = plat_mono_ns();
    do {
        rc = scan_topic(s, f, topic, from, to, &times[reps], &row->window_records);
        reps++;
    } while (!rc && reps < MAX_QUERIES && bench_util_secs_since(t0) < MIN_QUERY_S);
    if (!rc) {
        row->window_preads = (double)(cv.preads - before) / (double)reps;
        row->window_ms = bench_util_median(times, (size_t)reps);
        rc = scan_topic(s, f, topic, INT64_MIN, INT64_MAX, &row->topic_ms, &row->topic_records);
    }
    if (rc) {
        cli_store_report(path, s, rc);
        goto out;
    }
    /* (c) */
    before = cv.preads;
    t0 = plat_mono_ns();
    do {
        char prefix[BENCH_FEED_TOPIC_MAX + 1];
        ts_tensor *t = NULL;
        snprintf(prefix, sizeof(prefix), "%s#", f->names[calls % o->topics]);
        if ((rc = ts_latest(s, prefix, strlen(prefix), &t)))
            cli_store_report(path, s, rc);
        ts_tensor_free(t);
        calls++;
    } while (!rc && calls < 1000 && bench_util_secs_since(t0) < MIN_QUERY_S);
    if (!rc) {
        row->latest_us = bench_util_secs_since(t0) * 1e6 / (double)calls;
        row->latest_preads = (double)(cv.preads - before) / (double)calls;
    }
out:
    ts_close(s);
    return rc;
}

int bench_reads_run(const bench_opts *o)
{
    reads_row rows[sizeof(sst_counts) / sizeof(sst_counts[0])];
    size_t n_rows = 0;
    uint64_t n = o->topics * o->samples;
    char path[4096];
    bench_feed f;
    int rc;
    snprintf(path, sizeof(path), "%s/store", o->work);
    if ((rc = bench_feed_new(&f, o->topics, READS_ELEMS, READS_BATCH))) {
        fprintf(stderr, "embeddb: bench: out of memory\n");
        return rc;
    }
    printf("bench reads: %" PRIu64 " topics x %" PRIu64 " samples (1 kHz a topic, %.0f s) of 12 "
           "bytes (f32[3]), %" PRIu64 " tensors, keys sensors/imu<t>#<20-digit counter>, sync "
           "off, page cache warm, in %s\n", o->topics, o->samples, (double)o->samples / 1e3, n,
           o->work);
    for (size_t i = 0; i < sizeof(sst_counts) / sizeof(sst_counts[0]) && !rc; i++) {
        reads_row *row = &rows[n_rows];
        if (sst_counts[i] > o->max_ssts || sst_counts[i] > n)
            break;
        memset(row, 0, sizeof(*row));
        row->n_sst = sst_counts[i];
        if ((rc = build(&f, path, n, row)) || (rc = measure(o, &f, path, n, row)))
            break;
        printf("%4" PRIu64 " SSTs: built at %.0f tensors/s (sync off, %" PRIu64 " flushes), "
               "%.1f MB on disk, read-only open %.1f ms\n", row->n_sst, row->build_tps,
               row->n_sst, row->disk_mb, row->open_ms);
        fflush(stdout);
        n_rows++;
        cli_store_rmtree(path);
    }
    cli_store_rmtree(path);
    if (rc)
        goto out;
    printf("\n(a) random point loads, (b) a %d s window of one topic (sensors/imu%" PRIu64 
           ") vs that whole topic, (c) ts_latest of a topic:\n", WINDOW_MS / 1000, o->topics / 2);
    printf("ssts  point_loads_per_s  preads_per_load  window_query_ms  window_records  "
           "window_preads  topic_scan_ms  topic_records  latest_us  latest_preads\n");
    for (size_t i = 0; i < n_rows; i++) {
        const reads_row *r = &rows[i];
        printf("%4" PRIu64 "  %17.0f  %15.2f  %15.3f  %14" PRIu64 "  %13.1f  %13.3f  %13" PRIu64
               "  %9.1f  %13.2f\n", r->n_sst, r->loads_s, r->load_preads, r->window_ms,
               r->window_records, r->window_preads, r->topic_ms, r->topic_records, r->latest_us,
               r->latest_preads);
    }
    printf("window_query_ms: median of up to %d queries; preads counted by a vfs around the "
           "platform's.\n", MAX_QUERIES);
out:
    bench_feed_free(&f);
    return rc;
}
