/*
 * bench.c -- benchmarks, reported as ratios against a peer measured in the
 * same process and run, medians of several runs (machines here are noisy).
 *
 * `embeddb bench`: durable ingest of 4 KiB tensors (32x32 float32) in
 * batches, one durable commit per batch, against the bound of plain write()
 * + fdatasync() of the same payload bytes per batch to a fresh file in the
 * same directory; bytes written per payload byte; peak RSS; preads per point
 * load from an SST.
 *
 * `embeddb N DIM BATCH MEMTABLE_MAX`: the seed's numeric benchmark (sync
 * off, many small tensors, many flushes): save and load rates.
 *
 * They report; they never fail on a goal.
 */
#define _GNU_SOURCE 1
#include "cli.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024.0 * 1024.0)

static double secs(uint64_t t0)
{
    return (double)(plat_mono_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Bytes this process caused to be written to storage (/proc/self/io). */
static uint64_t io_write_bytes(void)
{
    FILE *fp = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "write_bytes: %llu", &v) == 1)
            break;
    fclose(fp);
    return v;
}

/* The batch's tensor bytes: distinct per batch so nothing is deduplicated. */
static void fill(float *buf, size_t n_floats, uint64_t batch)
{
    for (size_t i = 0; i < n_floats; i++)
        buf[i] = (float)(batch * 31 + i % 1024) * 0.25f;
}

/* A vfs that counts preads, for "one pread per point load". */
typedef struct count_vfs {
    plat_vfs vfs;
    unsigned long preads;
} count_vfs;

static int counting_pread(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    ((count_vfs *)self)->preads++;
    plat_vfs *base = plat_vfs_default();
    return base->pread(base, fd, buf, len, off, got);
}

typedef struct bench_opts {
    const char *dir;
    uint64_t tensors, batch, memtable_max;
    int runs;
} bench_opts;

/* One batch of 32x32 float32 frames pointing into a shared buffer. */
typedef struct frames {
    ts_tensor *t;
    const ts_tensor **b;
    uint8_t (*keys)[8];
    uint64_t n;
} frames;

static int frames_init(frames *f, uint64_t n)
{
    f->n = n;
    f->t = calloc(n, sizeof(*f->t));
    f->b = calloc(n, sizeof(*f->b));
    f->keys = calloc(n, 8);
    return f->t && f->b && f->keys ? 0 : -1;
}

static void frames_free(frames *f)
{
    free(f->t);
    free(f->b);
    free(f->keys);
}

/* Batch bi: fresh contents in buf, keys bi*n .. bi*n+n-1. */
static void frames_fill(frames *f, float *buf, uint64_t bi)
{
    fill(buf, f->n * 1024, bi);
    for (uint64_t j = 0; j < f->n; j++) {
        ts_key_from_u64(bi * f->n + j, f->keys[j]);
        f->t[j] = (ts_tensor){.key = f->keys[j], .key_len = 8, .name = "camera_frame",
                              .dtype = TS_F32, .ndim = 2, .shape = {32, 32},
                              .timestamp_ns = (int64_t)(bi + 1), .data = buf + j * 1024,
                              .data_len = 4096};
        f->b[j] = &f->t[j];
    }
}

/* A fresh store at DIR/store. */
static ts_store *bench_store(const bench_opts *o)
{
    char path[4096], err[512];
    ts_options opt;
    ts_store *s = NULL;
    snprintf(path, sizeof(path), "%s/store", o->dir);
    cli_rmtree(path);
    ts_options_init(&opt);
    opt.create_if_missing = 1;
    opt.memtable_max = o->memtable_max;
    if (ts_open(path, &opt, &s, err, sizeof(err)))
        fprintf(stderr, "embeddb: bench: %s\n", err);
    return s;
}

/* write()+fdatasync() of batch_len bytes per batch; returns MB/s. */
static double run_raw(const bench_opts *o, float *buf, size_t batch_len, uint64_t n_batches,
                      uint64_t *phys)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/raw.dat", o->dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    uint64_t io0 = io_write_bytes(), t0 = plat_mono_ns();
    for (uint64_t b = 0; b < n_batches; b++) {
        fill(buf, o->batch * 1024, b);
        const char *p = (const char *)buf;
        size_t left = batch_len;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                return -1;
            }
            p += w;
            left -= (size_t)w;
        }
        if (fdatasync(fd)) {
            close(fd);
            return -1;
        }
    }
    double s = secs(t0);
    *phys = io_write_bytes() - io0;
    close(fd);
    unlink(path);
    return (double)batch_len * (double)n_batches / s / 1e6;
}

static double run_engine(const bench_opts *o, float *buf, uint64_t n_batches, ts_stats *st,
                         uint64_t *phys)
{
    frames f;
    ts_store *s = NULL;
    double rate = -1;
    if (frames_init(&f, o->batch) || !(s = bench_store(o)))
        goto out;
    uint64_t io0 = io_write_bytes(), t0 = plat_mono_ns();
    for (uint64_t bi = 0; bi < n_batches; bi++) {
        frames_fill(&f, buf, bi);
        if (ts_save_batch(s, f.b, f.n))
            goto out;
    }
    /* The flush is part of the cost: every byte ends up in an SST. */
    if (ts_flush(s, NULL, 0, NULL))
        goto out;
    rate = 4096.0 * (double)(n_batches * o->batch) / secs(t0) / 1e6;
    *phys = io_write_bytes() - io0;
    ts_get_stats(s, st);
out:
    if (s && rate < 0)
        fprintf(stderr, "embeddb: bench: %s\n", ts_errmsg(s));
    ts_close(s);
    frames_free(&f);
    return rate;
}

/* Paired run: batch by batch, the raw write+fdatasync of the payload and
 * the engine's save_batch alternate, each timed on its own, so both see the
 * same moments of a noisy disk. Returns 0 and the two rates in MB/s. */
static int run_paired(const bench_opts *o, float *buf, uint64_t n_batches, double *raw_mbps,
                      double *eng_mbps, ts_stats *st)
{
    char raw_path[4096];
    frames f;
    ts_store *s = NULL;
    uint64_t raw_ns = 0, eng_ns = 0, t0;
    int fd = -1, rc = -1;
    size_t len = o->batch * 4096;
    snprintf(raw_path, sizeof(raw_path), "%s/raw.dat", o->dir);
    fd = open(raw_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (frames_init(&f, o->batch) || fd < 0 || !(s = bench_store(o)))
        goto out;
    for (uint64_t bi = 0; bi < n_batches; bi++) {
        frames_fill(&f, buf, bi);
        t0 = plat_mono_ns();
        if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd))
            goto out;
        raw_ns += plat_mono_ns() - t0;
        t0 = plat_mono_ns();
        if (ts_save_batch(s, f.b, f.n))
            goto out;
        eng_ns += plat_mono_ns() - t0;
    }
    t0 = plat_mono_ns();
    if (ts_flush(s, NULL, 0, NULL))
        goto out;
    eng_ns += plat_mono_ns() - t0;
    ts_get_stats(s, st);
    *raw_mbps = (double)len * (double)n_batches / ((double)raw_ns / 1e9) / 1e6;
    *eng_mbps = (double)len * (double)n_batches / ((double)eng_ns / 1e9) / 1e6;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "embeddb: bench: paired run failed: %s\n",
                s ? ts_errmsg(s) : strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(raw_path);
    ts_close(s);
    frames_free(&f);
    return rc;
}

/* Random point loads from the SSTs of the last engine run. */
static int point_loads(const bench_opts *o, uint64_t n_tensors, double *per_load, double *rate)
{
    char path[4096], err[512];
    count_vfs cv;
    ts_options opt;
    ts_store *s = NULL;
    uint64_t x = 88172645463325252ull;
    const int n = 2000;
    int rc;
    cv.vfs = *plat_vfs_default();
    cv.vfs.pread = counting_pread;
    cv.preads = 0;
    snprintf(path, sizeof(path), "%s/store", o->dir);
    ts_options_init(&opt);
    opt.vfs = &cv.vfs;
    opt.read_only = 1;
    if ((rc = ts_open(path, &opt, &s, err, sizeof(err)))) {
        fprintf(stderr, "embeddb: bench: %s\n", err);
        return rc;
    }
    unsigned long before = cv.preads;
    uint64_t t0 = plat_mono_ns();
    for (int i = 0; i < n; i++) {
        uint8_t key[8];
        ts_tensor *t = NULL;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ts_key_from_u64(x % n_tensors, key);
        if ((rc = ts_load(s, key, 8, &t))) {
            fprintf(stderr, "embeddb: bench: load: %s\n", ts_errmsg(s));
            break;
        }
        ts_tensor_free(t);
    }
    *rate = n / secs(t0);
    *per_load = (double)(cv.preads - before) / n;
    ts_close(s);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {.dir = "embeddb-bench", .tensors = 65536, .batch = 64,
                    .memtable_max = 64u << 20, .runs = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v)
            o.dir = argv[++i];
        else if (!strcmp(a, "--tensors") && v)
            o.tensors = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--batch") && v)
            o.batch = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--runs") && v)
            o.runs = atoi(argv[++i]);
        else if (!strcmp(a, "--memtable-max") && v)
            o.memtable_max = strtoull(argv[++i], NULL, 10);
        else {
            int help = !strcmp(a, "-h") || !strcmp(a, "--help");
            fputs("usage: embeddb bench [--dir DIR] [--tensors N] [--batch B] [--runs R]\n"
                  "                     [--memtable-max BYTES]\n"
                  "Durable ingest of N 4 KiB tensors (32x32 float32, default 65536 = 256 MiB)\n"
                  "in batches of B (64), one fdatasync per batch, against plain write() +\n"
                  "fdatasync() of the same payload bytes in the same process and directory\n"
                  "(default ./embeddb-bench, removed afterwards). R runs (5), medians.\n",
                  help ? stdout : stderr);
            return help ? EXIT_OK : EXIT_USAGE;
        }
    }
    if (o.batch < 1 || o.batch > 65536 || o.tensors < o.batch || o.runs < 1 || o.runs > 99) {
        fprintf(stderr, "embeddb: bench: need 1 <= batch <= tensors, 1 <= runs <= 99\n");
        return EXIT_USAGE;
    }
    uint64_t n_batches = o.tensors / o.batch;
    uint64_t payload = n_batches * o.batch * 4096;
    float *buf = calloc(1, o.batch * 4096 + 65536);
    double raw[99], eng[99], ratio[99], stream[99], sratio[99], amp[99], phys_amp[99];
    double praw[99], peng[99], pratio[99];
    ts_stats st;
    int made_dir = mkdir(o.dir, 0755) == 0;
    if (!buf || (!made_dir && errno != EEXIST)) {
        fprintf(stderr, "embeddb: bench: cannot use %s: %s\n", o.dir, strerror(errno));
        free(buf);
        return EXIT_STORE;
    }
    printf("bench: %" PRIu64 " tensors of 4096 bytes, batches of %" PRIu64
           ", memtable_max %" PRIu64 ", %d runs, in %s\n",
           n_batches * o.batch, o.batch, o.memtable_max, o.runs, o.dir);
    for (int r = 0; r < o.runs; r++) {
        uint64_t pr = 0, pe = 0, ps = 0;
        raw[r] = run_raw(&o, buf, o.batch * 4096, n_batches, &pr);
        eng[r] = run_engine(&o, buf, n_batches, &st, &pe);
        if (raw[r] <= 0 || eng[r] <= 0) {
            fprintf(stderr, "embeddb: bench: run %d failed\n", r + 1);
            free(buf);
            return EXIT_STORE;
        }
        /* The same byte stream the engine wrote (payload + headers), raw. */
        size_t stream_len = (size_t)((st.bytes_written + n_batches - 1) / n_batches);
        stream[r] = run_raw(&o, buf, stream_len < o.batch * 4096 + 65536 ? stream_len
                                                                          : o.batch * 4096,
                            n_batches, &ps);
        stream[r] = stream[r] * (double)payload / ((double)stream_len * (double)n_batches);
        ratio[r] = eng[r] / raw[r];
        if (run_paired(&o, buf, n_batches, &praw[r], &peng[r], &st)) {
            free(buf);
            return EXIT_STORE;
        }
        pratio[r] = peng[r] / praw[r];
        sratio[r] = eng[r] / stream[r];
        amp[r] = (double)st.bytes_written / (double)st.payload_bytes;
        phys_amp[r] = (double)pe / (double)payload;
        printf("run %d: raw %.0f MB/s, engine %.0f MB/s (ratio %.3f), raw same-stream %.0f "
               "payload MB/s, bytes written/payload %.4f (block layer %.3f, raw %.3f), "
               "fsyncs %" PRIu64 ", flushes %" PRIu64 "; paired: raw %.0f, engine %.0f "
               "(ratio %.3f)\n",
               r + 1, raw[r], eng[r], ratio[r], stream[r], amp[r], phys_amp[r],
               (double)pr / (double)payload, st.fsyncs, st.flushes, praw[r], peng[r],
               pratio[r]);
        fflush(stdout);
    }
    double per_load = 0, load_rate = 0;
    int lrc = point_loads(&o, n_batches * o.batch, &per_load, &load_rate);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = (double)ru.ru_maxrss / 1024.0;
    double rss_bound = (double)o.memtable_max / MiB + 4;
    printf("\nmedians of %d runs:\n", o.runs);
    printf("raw_write_fdatasync_MBps=%.0f\n", median(raw, o.runs));
    printf("engine_MBps=%.0f\n", median(eng, o.runs));
    printf("ratio_ingest=%.3f (goal >= 0.90; whole runs alternated)\n", median(ratio, o.runs));
    printf("ratio_ingest_paired=%.3f (batch-by-batch alternation, the steadier figure)\n",
           median(pratio, o.runs));
    printf("ratio_ingest_vs_same_stream=%.3f (raw write of the engine's own byte stream)\n",
           median(sratio, o.runs));
    printf("bytes_written_per_payload=%.4f (goal <= 1.10; LevelDB/RocksDB ~2.0)\n",
           median(amp, o.runs));
    printf("block_layer_bytes_per_payload=%.3f (/proc/self/io, includes journal)\n",
           median(phys_amp, o.runs));
    printf("peak_rss_MiB=%.1f (bound memtable_max + 4 MiB = %.1f)\n", rss_mib, rss_bound);
    if (!lrc)
        printf("point_load_preads=%.2f per load from SST (goal 1), %.0f loads/s\n", per_load,
               load_rate);
    char store[4096];
    snprintf(store, sizeof(store), "%s/store", o.dir);
    cli_rmtree(store);
    if (made_dir)
        rmdir(o.dir);
    free(buf);
    return EXIT_OK;
}

int cmd_numeric_bench(int argc, char **argv)
{
    char *end;
    unsigned long long v[4];
    char *tmp = NULL;
    const char *dir;
    if (argc < 4 || argc > 5 || cli_wants_help(argc, argv)) {
        fputs("usage: embeddb N DIM BATCH MEMTABLE_MAX [DIR]\n"
              "The seed's numeric benchmark: saves N float32 tensors of DIM elements under\n"
              "keys 0..N-1 in batches of BATCH with per-batch fsync OFF (the durable\n"
              "benchmark is `embeddb bench`), flushing every MEMTABLE_MAX bytes, then\n"
              "loads every tensor back and checks it. Example: embeddb 500000 32 1 20000\n",
              stderr);
        return EXIT_USAGE;
    }
    for (int i = 0; i < 4; i++) {
        v[i] = strtoull(argv[i], &end, 10);
        if (!*argv[i] || *end || !v[i] || v[i] > (1ull << 32)) {
            fprintf(stderr, "embeddb: '%s' must be a positive number\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    uint64_t n = v[0], dim = v[1], batch = v[2];
    if (dim > (1u << 20) || batch > n) {
        fprintf(stderr, "embeddb: need DIM <= 1048576 and BATCH <= N\n");
        return EXIT_USAGE;
    }
    if (argc == 5) {
        dir = argv[4];
    } else {
        if (!(tmp = cli_scratch_dir("nb")))
            return EXIT_STORE;
        dir = tmp;
    }
    ts_options opt;
    ts_store *s = NULL;
    char err[512];
    int ec = EXIT_STORE;
    float *data = malloc(batch * dim * sizeof(float));
    ts_tensor *t = calloc(batch, sizeof(*t));
    const ts_tensor **b = calloc(batch, sizeof(*b));
    uint8_t(*keys)[8] = calloc(batch, 8);
    ts_options_init(&opt);
    opt.create_if_missing = 1;
    opt.sync = 0;
    opt.memtable_max = v[3];
    if (!data || !t || !b || !keys || ts_open(dir, &opt, &s, err, sizeof(err))) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, err);
        goto out;
    }
    uint64_t t0 = plat_mono_ns();
    for (uint64_t i = 0; i < n; i += batch) {
        uint64_t m = n - i < batch ? n - i : batch;
        for (uint64_t j = 0; j < m; j++) {
            for (uint64_t k = 0; k < dim; k++)
                data[j * dim + k] = (float)(i + j) + (float)k * 0.001f;
            ts_key_from_u64(i + j, keys[j]);
            t[j] = (ts_tensor){.key = keys[j], .key_len = 8, .name = "vec", .dtype = TS_F32,
                               .ndim = 1, .shape = {dim}, .data = data + j * dim,
                               .data_len = dim * sizeof(float), .timestamp_ns = (int64_t)i + 1};
            b[j] = &t[j];
        }
        if (ts_save_batch(s, b, m)) {
            fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(s));
            goto out;
        }
    }
    if (ts_flush(s, NULL, 0, NULL)) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(s));
        goto out;
    }
    double save_s = secs(t0);
    ts_stats st;
    ts_get_stats(s, &st);
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint8_t key[8];
        ts_tensor *got = NULL;
        ts_key_from_u64(i, key);
        if (ts_load(s, key, 8, &got)) {
            fprintf(stderr, "embeddb: load %" PRIu64 ": %s\n", i, ts_errmsg(s));
            goto out;
        }
        const float *f = got->data;
        int ok = got->data_len == dim * sizeof(float) && f[0] == (float)i &&
                 f[dim - 1] == (float)i + (float)(dim - 1) * 0.001f;
        ts_tensor_free(got);
        if (!ok) {
            fprintf(stderr, "embeddb: tensor %" PRIu64 " came back different\n", i);
            goto out;
        }
    }
    double load_s = secs(t0);
    printf("saved %" PRIu64 " tensors of %" PRIu64 " float32 in batches of %" PRIu64
           " (fsync per batch off): %.0f tensors/s, %.1f MB/s\n",
           n, dim, batch, (double)n / save_s, (double)st.payload_bytes / save_s / 1e6);
    printf("flushes %" PRIu64 " (memtable_max %llu), SSTs %" PRIu64
           ", bytes written/payload %.3f\n",
           st.flushes, v[3], st.n_sst, (double)st.bytes_written / (double)st.payload_bytes);
    printf("loaded and checked %" PRIu64 " tensors: %.0f tensors/s\n", n, (double)n / load_s);
    ec = EXIT_OK;
out:
    ts_close(s);
    free(data);
    free(t);
    free(b);
    free(keys);
    if (tmp)
        cli_rmtree(tmp);
    free(tmp);
    return ec;
}
