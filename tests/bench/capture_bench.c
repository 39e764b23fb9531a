/*
 * capture_bench.c -- what a capture window costs (snapshot/src/capture.c),
 * against the alternative it was chosen over, in one run.
 *
 * The store: MIB of 16 KiB float32 tensors on four topics (sensors/a..d),
 * interleaved, one every millisecond of timestamp, in SSTs of 16 MiB (an
 * agent's storage.memtable_max); the first half sealed into a rolling
 * snapshot, the second half live. The window: 10 % of the time span,
 * centred on the boundary (its pre part reaches into the snapshot), one
 * topic of four: 2.5 % of the data.
 *
 * Measured, RUNS times (medians printed):
 *   copy  -- snap_capture: copies of exactly the window's tensors (what the
 *            agent does): wall time, and the bytes it writes on flash,
 *            which are also the bytes uploaded (MANIFEST and CAPTURE aside);
 *   links -- the alternative: hard links of every SST whose sequence range
 *            (here: time range) overlaps the window, the window then only
 *            named in the manifest: wall time of the links, and the bytes
 *            that would be uploaded (those SSTs whole).
 *
 * Usage: capture_bench DIR [MIB [RUNS]]   (defaults 256 and 5; the store
 * goes into DIR/capture-bench-PID, removed at the end)
 * Prints both lines, the ratios, and the load average; exit 0. A command
 * that measures (README, "Capture windows"), not a test; ctest runs it once
 * at 16 MiB to prove it works.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "embeddb/plat.h"
#include "embeddb/snapshot.h"
#include "embeddb/tensor_store.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ELEMS 4096 /* 16 KiB tensors */
#define MAX_RUNS 15

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rmtree(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int match_exact(void *ctx, const char *filter, const char *name)
{
    (void)ctx;
    return !strcmp(filter, name);
}

/* The links alternative over one store: its SSTs whose seqs (= time here)
 * meet [lo, hi] are linked into dst; their bytes summed. */
typedef struct overlap {
    const char *src, *dst;
    uint64_t lo, hi, bytes;
    int failed;
} overlap;

static int on_file(void *ctx, const ts_file_info *f)
{
    overlap *o = ctx;
    char a[4096], b[4096];
    if (f->is_wal || f->max_seq < o->lo || f->min_seq > o->hi)
        return 0;
    snprintf(a, sizeof(a), "%s/sst_%06" PRIu64 ".sst", o->src, f->file_no);
    snprintf(b, sizeof(b), "%s/%s-sst_%06" PRIu64 ".sst", o->dst,
             strrchr(o->src, '/') + 1, f->file_no);
    if (link(a, b))
        o->failed = 1;
    o->bytes += f->bytes;
    return 0;
}

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "capture_bench: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fail("usage", "capture_bench DIR [MIB [RUNS]]");
    uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 256;
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1 || runs > MAX_RUNS || mib < 4)
        return fail("usage", "MIB >= 4, 1 <= RUNS <= 15");
    char base[4096], store[4200], root[4300], snapdir[4500], links[4400], err[1024];
    char name[SNAP_NAME_MAX], key[64];
    snprintf(base, sizeof(base), "%s/capture-bench-%d", argv[1], (int)getpid());
    snprintf(store, sizeof(store), "%s/store", base);
    snprintf(links, sizeof(links), "%s/links", base);
    if (mkdir(base, 0755))
        return fail(base, strerror(errno));
    snap_root(store, root, sizeof(root));
    ts_options o;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    o.memtable_max = 16u << 20;
    ts_store *s = NULL;
    if (ts_open(store, &o, &s, err, sizeof(err)))
        return fail(store, err);
    static const char *const topics[] = {"sensors/a", "sensors/b", "sensors/c", "sensors/d"};
    float *data = calloc(ELEMS, sizeof(float));
    uint64_t n = mib * 64; /* 16 KiB each */
    for (uint64_t i = 1; i <= n; i++) {
        const char *t = topics[i % 4];
        for (size_t k = 0; k < ELEMS; k++)
            data[k] = (float)(i + k);
        snprintf(key, sizeof(key), "%s#%020" PRIu64, t, i);
        ts_tensor x = {.key = (const uint8_t *)key, .key_len = strlen(key), .name = t,
                       .dtype = TS_F32, .ndim = 1, .shape = {ELEMS},
                       .timestamp_ns = (int64_t)i * 1000000, .data = data,
                       .data_len = ELEMS * sizeof(float)};
        if (ts_save(s, &x))
            return fail("save", ts_errmsg(s));
        if (i == n / 2) { /* the first half becomes a rolling snapshot */
            ts_checkpoint_info info;
            size_t done = 0;
            if (snap_begin(plat_vfs_default(), s, root, "bench", name, sizeof(name), &info, err,
                           sizeof(err)) ||
                snap_finish_all(plat_vfs_default(), root, "bench", &done, NULL, err, sizeof(err)))
                return fail("seal", err);
            snprintf(snapdir, sizeof(snapdir), "%s/%s", root, name);
        }
    }
    if (ts_flush(s, NULL, 0, NULL))
        return fail("flush", ts_errmsg(s));
    /* the window: 10 % of the span around the middle, one topic */
    uint64_t lo = n / 2 - n / 20, hi = n / 2 + n / 20;
    const char *filters[] = {"sensors/a"};
    snap_window w = {.label = "bench", .trigger_ns = (int64_t)(n / 2) * 1000000,
                     .from_ns = (int64_t)lo * 1000000, .to_ns = (int64_t)(hi + 1) * 1000000,
                     .filters = filters, .n_filters = 1, .match = match_exact};
    double t_copy[MAX_RUNS], t_link[MAX_RUNS];
    uint64_t copy_bytes = 0, link_bytes = 0, copied = 0;
    for (int r = 0; r < runs; r++) {
        char cap[4500];
        double t0 = now_s();
        if (snap_capture(plat_vfs_default(), s, root, "bench", &w, name, sizeof(name), &copied,
                         err, sizeof(err)))
            return fail("capture", err);
        t_copy[r] = now_s() - t0;
        snprintf(cap, sizeof(cap), "%s/.seal-%s", root, name);
        copy_bytes = plat_dir_bytes(plat_vfs_default(), cap);
        rmtree(cap);
        /* the alternative: link the overlapping SSTs of both stores */
        ts_store *snap = NULL;
        ts_options ro;
        ts_options_init(&ro);
        ro.read_only = 1;
        if (ts_open(snapdir, &ro, &snap, err, sizeof(err)))
            return fail(snapdir, err);
        t0 = now_s();
        mkdir(links, 0755);
        overlap a = {.src = snapdir, .dst = links, .lo = lo, .hi = hi};
        overlap b = {.src = store, .dst = links, .lo = lo, .hi = hi};
        ts_list_files(snap, on_file, &a);
        ts_list_files(s, on_file, &b);
        t_link[r] = now_s() - t0;
        ts_close(snap);
        if (a.failed || b.failed)
            return fail("link", strerror(errno));
        link_bytes = a.bytes + b.bytes;
        rmtree(links);
    }
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = -1;
        fclose(la);
    }
    uint64_t window_bytes = copied * ELEMS * sizeof(float);
    double tc = median(t_copy, runs), tl = median(t_link, runs);
    printf("store %" PRIu64 " MiB, %" PRIu64 " tensors of 16 KiB on 4 topics; window %" PRIu64
           " tensors (%.1f MiB, %.1f %% of the data); median of %d runs; load average %.2f\n",
           mib, n, copied, (double)window_bytes / 1048576, 100.0 * (double)copied / (double)n,
           runs, load[0]);
    printf("copy  (exact window): %8.1f ms  %7.1f MiB written = uploaded  (%.0f MiB/s of window)\n",
           tc * 1e3, (double)copy_bytes / 1048576, (double)window_bytes / 1048576 / tc);
    printf("links (whole SSTs):   %8.1f ms  %7.1f MiB uploaded, 0 written\n", tl * 1e3,
           (double)link_bytes / 1048576);
    printf("ratios: upload links/copy %.1fx; flash written by copy / window %.2f\n",
           (double)link_bytes / (double)copy_bytes, (double)copy_bytes / (double)window_bytes);
    ts_close(s);
    free(data);
    rmtree(base);
    return 0;
}
