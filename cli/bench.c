/*
 * bench.c -- the benchmarks' command and the 4 KiB ingest benchmark. Each
 * benchmark reports figures and ratios; none fails on a goal (they are
 * measurements, not tests).
 *
 * `embeddb bench [ingest]`: durable ingest of 4 KiB tensors (32x32 float32)
 * in batches, one durable commit per batch, measured against its physical
 * bound: plain write() + fdatasync() of the same payload bytes per batch to a
 * fresh file, in the same process and the same directory. Raw and engine
 * runs alternate R times, which goes first swapping every run so neither
 * always meets the disk right after the other's deletes, and the medians are
 * reported (these VMs are noisy: raw runs here swing between about 480 and
 * 850 MB/s). A batch-by-batch paired run and a raw run of the engine's own
 * byte stream give two steadier comparisons. Also: bytes written per payload
 * byte (the engine's count and /proc/self/io), peak RSS against
 * memtable_max + 4 MiB, and preads per point load from an SST, counted by a
 * vfs that wraps the platform's.
 *
 * `embeddb bench small|reads|all`: the agent-style workloads, in
 * bench_small.c and bench_reads.c (bench.h); cmd_bench parses the options for
 * all of them.
 *
 * The raw baseline deliberately uses open/write/fdatasync directly instead of
 * the platform layer: it is the bound the engine is measured against, so
 * nothing of EmbedDb may sit in its path.
 *
 * `embeddb N DIM BATCH MEMTABLE_MAX [DIR]`: the seed's numeric benchmark,
 * with per-batch sync off: save and load rates for many small tensors and
 * many flushes, every tensor read back and compared.
 */
#include "cli.h"

#include "bench.h"
#include "bench_feed.h"
#include "bench_util.h"
#include "cli_args.h"
#include "cli_store.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FRAME_FLOATS 1024 /* 32x32 */
#define FRAME_BYTES (FRAME_FLOATS * sizeof(float))
#define POINT_LOADS 20000

/* ---- `embeddb bench` -------------------------------------------------- */

typedef struct bench_cfg {
    uint64_t tensors, batch, memtable_max, runs;
    const char *work; /* scratch directory holding raw.dat and store/ */
} bench_cfg;

/* One batch of frames: tensors pointing into a shared buffer. */
typedef struct frames {
    ts_tensor *t;
    const ts_tensor **ptrs;
    uint8_t (*keys)[TS_KEY_U64_LEN];
    float *buf;
    size_t n, buf_len; /* buf_len >= n * FRAME_BYTES, for same-stream runs */
} frames;

static int frames_new(frames *f, uint64_t n, size_t buf_len)
{
    int rc = 0;
    memset(f, 0, sizeof(*f));
    f->n = (size_t)n;
    f->buf_len = buf_len;
    f->t = calloc(f->n, sizeof(*f->t));
    f->ptrs = calloc(f->n, sizeof(*f->ptrs));
    f->keys = calloc(f->n, sizeof(*f->keys));
    f->buf = calloc(1, buf_len);
    if (!f->t || !f->ptrs || !f->keys || !f->buf)
        rc = TS_ENOMEM;
    return rc;
}

static void frames_free(frames *f)
{
    free(f->t);
    free(f->ptrs);
    free(f->keys);
    free(f->buf);
}

/* Batch bi: fresh values (distinct per batch, so no layer can dedupe them)
 * and keys bi*n .. bi*n+n-1. */
static void frames_fill(frames *f, uint64_t bi)
{
    for (size_t i = 0; i < f->n * FRAME_FLOATS; i++)
        f->buf[i] = (float)(bi * 31 + i % FRAME_FLOATS) * 0.25f;
    for (size_t j = 0; j < f->n; j++) {
        ts_key_from_u64(bi * f->n + j, f->keys[j]);
        f->t[j] = (ts_tensor){.key = f->keys[j], .key_len = TS_KEY_U64_LEN,
                              .name = "camera_frame", .dtype = TS_F32, .ndim = 2,
                              .shape = {32, 32}, .timestamp_ns = (int64_t)(bi + 1),
                              .data = f->buf + j * FRAME_FLOATS, .data_len = FRAME_BYTES};
        f->ptrs[j] = &f->t[j];
    }
}

/* A fresh, empty store at WORK/store, sync on. */
static int bench_store(const bench_cfg *c, ts_store **s)
{
    char path[4096];
    ts_options o;
    int rc;
    snprintf(path, sizeof(path), "%s/store", c->work);
    cli_store_rmtree(path);
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.memtable_max = c->memtable_max;
    rc = cli_store_open(path, &o, s);
    return rc;
}

/* The bound: n_batches x (fill, write() of len bytes, fdatasync()) to a
 * fresh file. Sets *mbps to payload MB/s (payload = the frames' bytes, even
 * when len is longer) and *io to the /proc/self/io write_bytes delta. */
static int run_raw(const bench_cfg *c, frames *f, size_t len, uint64_t n_batches, double *mbps,
                   uint64_t *io)
{
    char path[4096];
    uint64_t io0, t0;
    int fd, rc = 0;
    snprintf(path, sizeof(path), "%s/raw.dat", c->work);
    unlink(path);
    if ((fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        goto out;
    }
    bench_util_settle();
    io0 = bench_util_io_write_bytes();
    t0 = plat_mono_ns();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        frames_fill(f, b);
        if (!(rc = bench_util_write_all(fd, f->buf, len)) && fdatasync(fd))
            rc = -errno;
    }
    if (!rc) {
        *mbps = (double)(f->n * FRAME_BYTES) * (double)n_batches / bench_util_secs_since(t0) / 1e6;
        *io = bench_util_io_write_bytes() - io0;
    }
out:
    if (rc)
        fprintf(stderr, "embeddb: bench: %s: %s\n", path, strerror(-rc));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return rc;
}

/* The engine: n_batches x (fill, ts_save_batch) into a fresh store, then a
 * flush (every byte ends up in an SST, and that costs too). The store is
 * left on disk for the point loads. */
static int run_engine(const bench_cfg *c, frames *f, uint64_t n_batches, double *mbps,
                      uint64_t *io, ts_stats *st)
{
    ts_store *s = NULL;
    uint64_t io0, t0;
    int rc;
    if ((rc = bench_store(c, &s)))
        goto out;
    bench_util_settle();
    io0 = bench_util_io_write_bytes();
    t0 = plat_mono_ns();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        frames_fill(f, b);
        rc = ts_save_batch(s, f->ptrs, f->n);
    }
    if (!rc)
        rc = ts_flush(s, NULL, 0, NULL);
    if (rc) {
        cli_store_report("bench", s, rc);
        goto out;
    }
    *mbps = (double)(f->n * FRAME_BYTES) * (double)n_batches / bench_util_secs_since(t0) / 1e6;
    *io = bench_util_io_write_bytes() - io0;
    ts_get_stats(s, st);
out:
    ts_close(s);
    return rc;
}

/* Batch by batch, the raw write+fdatasync and the engine's save alternate,
 * each timed on its own, so both meet the same moments of a noisy disk. */
static int run_paired(const bench_cfg *c, frames *f, uint64_t n_batches, double *raw_mbps,
                      double *eng_mbps)
{
    char path[4096];
    ts_store *s = NULL;
    uint64_t raw_ns = 0, eng_ns = 0, t0;
    size_t len = f->n * FRAME_BYTES;
    int fd = -1, rc;
    snprintf(path, sizeof(path), "%s/raw.dat", c->work);
    if ((rc = bench_store(c, &s)))
        goto out;
    if ((fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        fprintf(stderr, "embeddb: bench: %s: %s\n", path, strerror(errno));
        goto out;
    }
    bench_util_settle();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        frames_fill(f, b);
        t0 = plat_mono_ns();
        if (!(rc = bench_util_write_all(fd, f->buf, len)) && fdatasync(fd))
            rc = -errno;
        raw_ns += plat_mono_ns() - t0;
        if (rc) {
            fprintf(stderr, "embeddb: bench: %s: %s\n", path, strerror(-rc));
            break;
        }
        t0 = plat_mono_ns();
        rc = ts_save_batch(s, f->ptrs, f->n);
        eng_ns += plat_mono_ns() - t0;
        if (rc)
            cli_store_report("bench", s, rc);
    }
    if (rc)
        goto out;
    t0 = plat_mono_ns();
    if ((rc = ts_flush(s, NULL, 0, NULL))) {
        cli_store_report("bench", s, rc);
        goto out;
    }
    eng_ns += plat_mono_ns() - t0;
    *raw_mbps = (double)len * (double)n_batches / ((double)raw_ns / 1e9) / 1e6;
    *eng_mbps = (double)len * (double)n_batches / ((double)eng_ns / 1e9) / 1e6;
out:
    if (fd >= 0)
        close(fd);
    unlink(path);
    ts_close(s);
    return rc;
}

/* Random point loads from the store the last run left (the paired run's,
 * every key 0..n-1 in SSTs after its flush), through a pread-counting vfs. */
static int point_loads(const bench_cfg *c, uint64_t n_tensors, double *preads_per_load,
                       double *loads_per_s)
{
    char path[4096];
    bench_util_count_vfs cv;
    ts_options o;
    ts_store *s = NULL;
    uint64_t x = 88172645463325252ull, before, t0;
    int rc;
    snprintf(path, sizeof(path), "%s/store", c->work);
    bench_util_count_vfs_init(&cv);
    ts_options_init(&o);
    o.read_only = 1;
    o.vfs = &cv.vfs;
    if ((rc = cli_store_open(path, &o, &s)))
        goto out;
    before = cv.preads; /* the open's own reads are not a load's */
    t0 = plat_mono_ns();
    for (int i = 0; i < POINT_LOADS && !rc; i++) {
        uint8_t key[TS_KEY_U64_LEN];
        ts_tensor *t = NULL;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ts_key_from_u64(x % n_tensors, key);
        if ((rc = ts_load(s, key, sizeof(key), &t)))
            cli_store_report(path, s, rc);
        ts_tensor_free(t);
    }
    if (!rc) {
        *loads_per_s = POINT_LOADS / bench_util_secs_since(t0);
        *preads_per_load = (double)(cv.preads - before) / POINT_LOADS;
    }
out:
    ts_close(s);
    return rc;
}

/* Everything one iteration measures. */
typedef struct bench_run {
    double raw, eng, stream, praw, peng; /* MB/s of payload */
    double amp, io_amp, raw_io_amp;      /* bytes written / payload byte */
    ts_stats st;
} bench_run;

/* One iteration: raw and engine whole runs (engine first when swap), the
 * same-stream raw run, the paired run. */
static int bench_once(const bench_cfg *c, frames *f, uint64_t n_batches, bench_run *r, int swap)
{
    uint64_t io_raw = 0, io_eng = 0, io_stream = 0;
    double payload = (double)(f->n * FRAME_BYTES) * (double)n_batches;
    size_t stream_len;
    int rc;
    if (swap && (rc = run_engine(c, f, n_batches, &r->eng, &io_eng, &r->st)))
        goto out;
    if ((rc = run_raw(c, f, f->n * FRAME_BYTES, n_batches, &r->raw, &io_raw)))
        goto out;
    if (!swap && (rc = run_engine(c, f, n_batches, &r->eng, &io_eng, &r->st)))
        goto out;
    /* The engine's own byte stream (payload + headers + its share of the
     * flushes) written raw: what the format costs, apart from the code. */
    stream_len = (size_t)((r->st.bytes_written + n_batches - 1) / n_batches);
    if (stream_len > f->buf_len)
        stream_len = f->buf_len;
    if ((rc = run_raw(c, f, stream_len, n_batches, &r->stream, &io_stream)))
        goto out;
    if ((rc = run_paired(c, f, n_batches, &r->praw, &r->peng)))
        goto out;
    r->amp = (double)r->st.bytes_written / (double)r->st.payload_bytes;
    r->io_amp = (double)io_eng / payload;
    r->raw_io_amp = (double)io_raw / payload;
out:
    return rc;
}

static const char bench_usage[] =
    "usage: embeddb bench [ingest|small|reads|all] [--dir DIR] [--runs R]\n"
    "                     [--tensors N] [--batch B] [--memtable-max BYTES]\n"
    "                     [--topics T] [--samples S] [--max-ssts M]\n"
    "Benchmarks in a scratch directory under DIR (default: the current directory;\n"
    "removed afterwards). Each reports figures and ratios; none fails on a goal.\n"
    "\n"
    "ingest (the default): N tensors of 4 KiB (32x32 float32; default 65536 =\n"
    "256 MiB a run) saved in batches of B (64) with one durable commit\n"
    "(fdatasync) per batch, flushes included (memtable_max, default 64 MiB, so\n"
    "flushes happen inside a run), against plain write() + fdatasync() of the same\n"
    "payload bytes per batch to a fresh file, in this process.\n"
    "Raw and engine runs alternate R times (5); medians are reported: MB/s and\n"
    "their ratio (goal >= 0.90), bytes written per payload byte (goal <= 1.10)\n"
    "from the engine's count and from /proc/self/io, peak RSS (goal <=\n"
    "memtable_max + 4 MiB), preads per point load from an SST (goal 1) and the\n"
    "rate of random point loads.\n"
    "\n"
    "small: the same durable ingest with an agent's keys (sensors/imu0#<20-digit\n"
    "counter>, name = topic, 1 ms apart; --topics T interleaves T topics, default\n"
    "1) at 12 B (f32[3]), 128 B (f32[32]) and 4 KiB (f32[1024]); N (default 32768)\n"
    "tensors per size, batches of B, R alternated runs against write() +\n"
    "fdatasync() of the same payload per batch. Medians: tensors/s, the ratio,\n"
    "bytes written per payload byte (ts_stats, final flush included) and\n"
    "/proc/self/io per payload byte (whole dirtied pages) for engine and raw.\n"
    "\n"
    "reads: T topics (default 20) x S samples (default 100000: 100 s at 1 kHz) of\n"
    "12 bytes, split into 10, 100 and 1000 SSTs (up to M, default 1000); on each:\n"
    "random point loads/s, a 10-second window of one topic (ts_scan_time: ms per\n"
    "query and records returned, next to a scan of the whole topic) and ts_latest\n"
    "of a topic, each with preads counted.\n"
    "\n"
    "all: ingest, small and reads in turn (options apply to each that takes them).\n";

static void bench_report(const bench_cfg *c, bench_run *runs, double preads, double loads_s,
                         int loads_ok)
{
    double v[7][BENCH_MAX_RUNS];
    size_t n = (size_t)c->runs;
    struct rusage ru;
    double rss_mib, bound_mib = (double)c->memtable_max / BENCH_MiB + 4;
    for (size_t i = 0; i < n; i++) {
        v[0][i] = runs[i].raw;
        v[1][i] = runs[i].eng;
        v[2][i] = runs[i].eng / runs[i].raw;
        v[3][i] = runs[i].peng / runs[i].praw;
        v[4][i] = runs[i].eng / runs[i].stream;
        v[5][i] = runs[i].amp;
        v[6][i] = runs[i].io_amp;
    }
    getrusage(RUSAGE_SELF, &ru);
    rss_mib = (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
    if (loads_ok)
        printf("point load from SST: %g pread%s (mean of %d random loads), %.0f loads/s, "
               "%.0f MB/s\n", preads, preads == 1.0 ? "" : "s", POINT_LOADS, loads_s,
               loads_s * FRAME_BYTES / 1e6);
    printf("\nmedians of %" PRIu64 " runs:\n", c->runs);
    printf("raw_write_fdatasync_MBps=%.0f\n", bench_util_median(v[0], n));
    printf("engine_MBps=%.0f\n", bench_util_median(v[1], n));
    printf("ratio_ingest=%.3f (goal >= 0.90; whole runs alternated)\n", bench_util_median(v[2], n));
    printf("ratio_ingest_paired=%.3f (batch-by-batch alternation, the steadier figure)\n",
           bench_util_median(v[3], n));
    printf("ratio_ingest_vs_same_stream=%.3f (raw write of the engine's own byte stream)\n",
           bench_util_median(v[4], n));
    printf("bytes_written_per_payload=%.4f (goal <= 1.10; ts_stats, flushes included)\n",
           bench_util_median(v[5], n));
    printf("io_write_bytes_per_payload=%.3f (/proc/self/io write_bytes delta per run)\n",
           bench_util_median(v[6], n));
    printf("peak_rss_MiB=%.1f (goal <= memtable_max + 4 MiB = %.1f)\n", rss_mib, bound_mib);
    if (loads_ok) {
        printf("point_load_preads=%g (goal 1)\n", preads);
        printf("point_loads_per_s=%.0f\n", loads_s);
    }
}

/* The 4 KiB durable-ingest benchmark (`embeddb bench` / `bench ingest`). */
static int bench_ingest(bench_cfg *c)
{
    frames f;
    bench_run *runs = NULL;
    uint64_t n_batches;
    double preads = 0, loads_s = 0;
    size_t buf_len;
    int rc = 0;
    memset(&f, 0, sizeof(f));
    n_batches = c->tensors / c->batch;
    /* Room for a batch of frames plus the engine's headers (same-stream). */
    if (bench_util_mul_size(c->batch, FRAME_BYTES + 256, &buf_len) ||
        buf_len > SIZE_MAX - 65536 || frames_new(&f, c->batch, buf_len + 65536) ||
        !(runs = calloc((size_t)c->runs, sizeof(*runs)))) {
        fprintf(stderr, "embeddb: bench: out of memory\n");
        rc = TS_ENOMEM;
        goto out;
    }
    printf("bench: %" PRIu64 " tensors of 4096 bytes (32x32 float32) in batches of %" PRIu64
           ", one fdatasync per batch, memtable_max %" PRIu64 ", %" PRIu64 " runs, in %s\n",
           n_batches * c->batch, c->batch, c->memtable_max, c->runs, c->work);
    for (uint64_t r = 0; r < c->runs; r++) {
        bench_run *br = &runs[r];
        if ((rc = bench_once(c, &f, n_batches, br, (int)(r % 2)))) {
            fprintf(stderr, "embeddb: bench: run %" PRIu64 " failed\n", r + 1);
            goto out;
        }
        printf("run %" PRIu64 ": raw %.0f MB/s, engine %.0f MB/s (ratio %.3f); paired raw %.0f, "
               "engine %.0f (ratio %.3f); same-stream raw %.0f; bytes written/payload %.4f "
               "(io %.3f, raw io %.3f); fsyncs %" PRIu64 ", flushes %" PRIu64 "\n",
               r + 1, br->raw, br->eng, br->eng / br->raw, br->praw, br->peng,
               br->peng / br->praw, br->stream, br->amp, br->io_amp, br->raw_io_amp,
               br->st.fsyncs, br->st.flushes);
        fflush(stdout);
    }
    rc = point_loads(c, n_batches * c->batch, &preads, &loads_s);
    bench_report(c, runs, preads, loads_s, rc == 0);
    rc = 0;
out:
    free(runs);
    frames_free(&f);
    return rc;
}

/* Parses s (NULL: absent) as a whole number in [lo, hi], else takes def. */
static int opt_u64(const char *what, const char *s, uint64_t def, uint64_t lo, uint64_t hi,
                   uint64_t *out)
{
    *out = def;
    return s ? cli_args_u64(what, s, lo, hi, out) : 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *dir = ".", *tensors_s = NULL, *batch_s = "64", *runs_s = "5";
    const char *mt_s = "67108864", *topics_s = NULL, *samples_s = "100000";
    const char *max_ssts_s = "1000", *what = "ingest";
    const cli_opt opts[] = {{"--dir", &dir},         {"--tensors", &tensors_s},
                            {"--batch", &batch_s},   {"--runs", &runs_s},
                            {"--memtable-max", &mt_s}, {"--topics", &topics_s},
                            {"--samples", &samples_s}, {"--max-ssts", &max_ssts_s}};
    bench_cfg c;
    bench_opts o;
    cli_args a;
    char *work = NULL;
    uint64_t tensors = 0, topics = 0;
    int ec = CLI_EXIT_USAGE, rc = 0, ingest, small, reads;
    memset(&c, 0, sizeof(c));
    memset(&o, 0, sizeof(o));
    if (cli_args_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), 0, 1, &a) || a.help) {
        ec = cli_args_usage(bench_usage, a.help);
        goto out;
    }
    if (a.n_pos)
        what = a.pos[0];
    ingest = !strcmp(what, "ingest") || !strcmp(what, "all");
    small = !strcmp(what, "small") || !strcmp(what, "all");
    reads = !strcmp(what, "reads") || !strcmp(what, "all");
    if (!ingest && !small && !reads) {
        fprintf(stderr, "embeddb: bench: unknown benchmark '%s' (ingest, small, reads or all)\n",
                what);
        goto out;
    }
    /* Every option given is checked, whichever benchmarks take it; the
     * defaults of --tensors and --topics differ between them. */
    if (cli_args_u64("--batch", batch_s, 1, 65536, &c.batch) ||
        cli_args_u64("--runs", runs_s, 1, BENCH_MAX_RUNS, &c.runs) ||
        cli_args_u64("--memtable-max", mt_s, 1, UINT64_C(1) << 40, &c.memtable_max) ||
        opt_u64("--tensors", tensors_s, 0, c.batch, UINT64_C(1) << 32, &tensors) ||
        opt_u64("--topics", topics_s, 0, 1, BENCH_FEED_MAX_TOPICS, &topics) ||
        cli_args_u64("--samples", samples_s, 1, UINT64_C(1) << 28, &o.samples) ||
        cli_args_u64("--max-ssts", max_ssts_s, 10, 1000, &o.max_ssts))
        goto out;
    c.tensors = tensors_s ? tensors : 65536;
    o.tensors = tensors_s ? tensors : 32768;
    ec = CLI_EXIT_STORE;
    if (cli_store_scratch(dir, "bench", &work))
        goto out;
    c.work = o.work = work;
    o.runs = c.runs;
    o.batch = c.batch;
    o.memtable_max = c.memtable_max;
    if (ingest && (rc = bench_ingest(&c)))
        goto out;
    if (small) {
        if (ingest)
            printf("\n");
        o.topics = topics_s ? topics : 1;
        if ((rc = bench_small_run(&o)))
            goto out;
    }
    if (reads) {
        if (ingest || small)
            printf("\n");
        o.topics = topics_s ? topics : 20;
        if ((rc = bench_reads_run(&o)))
            goto out;
    }
    ec = CLI_EXIT_OK;
out:
    cli_store_rmtree(work);
    free(work);
    return ec;
}

/* ---- `embeddb N DIM BATCH MEMTABLE_MAX [DIR]` ------------------------- */

static const char numeric_usage[] =
    "usage: embeddb N DIM BATCH MEMTABLE_MAX [DIR]\n"
    "The seed's numeric benchmark: saves N float32 tensors of DIM elements under\n"
    "numeric keys 0..N-1 in batches of BATCH with per-batch sync OFF (a power cut\n"
    "may lose the batches since the last flush; the durable benchmark is\n"
    "`embeddb bench`), flushing every MEMTABLE_MAX bytes, then loads every tensor\n"
    "back and compares it. Prints save and load rates, flushes and SSTs.\n"
    "Runs in a temporary directory (removed afterwards) unless DIR is given.\n"
    "Example: embeddb 500000 32 1 20000\n";

/* The value tensor i holds at element k. */
static float numeric_value(uint64_t i, uint64_t k)
{
    return (float)(i % 1000003) + (float)k * 0.001f;
}

typedef struct numeric_cfg {
    uint64_t n, dim, batch, memtable_max;
} numeric_cfg;

static int numeric_save(ts_store *s, const char *dir, const numeric_cfg *c)
{
    size_t row_len = 0, data_len = 0;
    float *data = NULL;
    ts_tensor *t = NULL;
    const ts_tensor **ptrs = NULL;
    uint8_t (*keys)[TS_KEY_U64_LEN] = NULL;
    int rc = TS_ENOMEM;
    if (bench_util_mul_size(c->dim, sizeof(float), &row_len) ||
        bench_util_mul_size(c->batch, row_len, &data_len))
        goto out;
    data = malloc(data_len);
    t = calloc((size_t)c->batch, sizeof(*t));
    ptrs = calloc((size_t)c->batch, sizeof(*ptrs));
    keys = calloc((size_t)c->batch, sizeof(*keys));
    if (!data || !t || !ptrs || !keys)
        goto out;
    rc = 0;
    for (uint64_t i = 0; i < c->n && !rc; i += c->batch) {
        size_t m = (size_t)(c->n - i < c->batch ? c->n - i : c->batch);
        for (size_t j = 0; j < m; j++) {
            float *row = data + j * c->dim;
            for (uint64_t k = 0; k < c->dim; k++)
                row[k] = numeric_value(i + j, k);
            ts_key_from_u64(i + j, keys[j]);
            t[j] = (ts_tensor){.key = keys[j], .key_len = TS_KEY_U64_LEN, .name = "vec",
                               .dtype = TS_F32, .ndim = 1, .shape = {c->dim}, .data = row,
                               .data_len = row_len, .timestamp_ns = (int64_t)(i + j + 1)};
            ptrs[j] = &t[j];
        }
        if ((rc = ts_save_batch(s, ptrs, m)))
            cli_store_report(dir, s, rc);
    }
    if (!rc && (rc = ts_flush(s, NULL, 0, NULL)))
        cli_store_report(dir, s, rc);
out:
    if (rc == TS_ENOMEM)
        fprintf(stderr, "embeddb: out of memory for a batch of %" PRIu64 " x %" PRIu64 "\n",
                c->batch, c->dim);
    free(data);
    free(t);
    free(ptrs);
    free(keys);
    return rc;
}

/* Loads every tensor back; any difference in metadata or data fails. */
static int numeric_load(ts_store *s, const char *dir, const numeric_cfg *c)
{
    float *want = NULL;
    size_t row_len = 0;
    int rc = TS_ENOMEM;
    if (bench_util_mul_size(c->dim, sizeof(float), &row_len) ||
        !(want = malloc(row_len ? row_len : 1)))
        goto out;
    rc = 0;
    for (uint64_t i = 0; i < c->n && !rc; i++) {
        uint8_t key[TS_KEY_U64_LEN];
        ts_tensor *got = NULL;
        ts_key_from_u64(i, key);
        for (uint64_t k = 0; k < c->dim; k++)
            want[k] = numeric_value(i, k);
        if ((rc = ts_load(s, key, sizeof(key), &got))) {
            cli_store_report(dir, s, rc);
            break;
        }
        if (got->dtype != TS_F32 || got->ndim != 1 || got->shape[0] != c->dim ||
            got->data_len != row_len || strcmp(got->name, "vec") ||
            memcmp(got->data, want, row_len)) {
            fprintf(stderr, "embeddb: tensor %" PRIu64 " came back different\n", i);
            rc = TS_ECORRUPT;
        }
        ts_tensor_free(got);
    }
out:
    free(want);
    return rc;
}

int cmd_numeric_bench(int argc, char **argv)
{
    numeric_cfg c;
    ts_options o;
    ts_stats st;
    ts_store *s = NULL;
    char *tmp = NULL;
    const char *dir;
    uint64_t t0;
    double save_s, load_s;
    int ec = CLI_EXIT_USAGE, rc = 0, help = 0;
    /* Only positionals, and argv[0] is N itself: no table needed. */
    for (int i = 0; i < argc; i++)
        help |= !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
    if (help || argc < 4 || argc > 5) {
        ec = cli_args_usage(numeric_usage, help);
        goto out;
    }
    if (cli_args_u64("N", argv[0], 1, UINT64_C(1) << 40, &c.n) ||
        cli_args_u64("DIM", argv[1], 1, UINT64_C(1) << 24, &c.dim) ||
        cli_args_u64("BATCH", argv[2], 1, c.n, &c.batch) ||
        cli_args_u64("MEMTABLE_MAX", argv[3], 1, UINT64_C(1) << 40, &c.memtable_max))
        goto out;
    ec = CLI_EXIT_STORE;
    if (argc < 5 && cli_store_scratch(NULL, "numeric", &tmp))
        goto out;
    dir = argc == 5 ? argv[4] : tmp;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    o.memtable_max = c.memtable_max;
    if ((rc = cli_store_open(dir, &o, &s)))
        goto out;
    printf("numeric benchmark: %" PRIu64 " tensors of %" PRIu64 " float32 in batches of %" PRIu64
           ", memtable_max %" PRIu64 ", sync OFF (no fdatasync per batch; the durable "
           "benchmark is `embeddb bench`), in %s\n", c.n, c.dim, c.batch, c.memtable_max, dir);
    fflush(stdout);
    t0 = plat_mono_ns();
    if ((rc = numeric_save(s, dir, &c)))
        goto out;
    save_s = bench_util_secs_since(t0);
    ts_get_stats(s, &st);
    printf("saved %" PRIu64 " tensors: %.0f saves/s, %.1f MB/s of payload\n", c.n,
           (double)c.n / save_s, (double)st.payload_bytes / save_s / 1e6);
    printf("flushes %" PRIu64 ", SSTs %" PRIu64 ", bytes written/payload %.3f\n", st.flushes,
           st.n_sst, (double)st.bytes_written / (double)st.payload_bytes);
    fflush(stdout);
    t0 = plat_mono_ns();
    if ((rc = numeric_load(s, dir, &c)))
        goto out;
    load_s = bench_util_secs_since(t0);
    printf("loaded and checked %" PRIu64 " tensors: %.0f loads/s\n", c.n, (double)c.n / load_s);
    ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    cli_store_rmtree(tmp);
    free(tmp);
    return ec;
}
