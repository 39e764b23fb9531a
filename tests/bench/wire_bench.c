/*
 * wire_bench.c -- compression on the wire (snapshot/src/wire.c) on a corpus
 * of realistic sensor tensors: ratio and speed of zstd levels 1, 3, 7 and 9
 * against gzip -6 (zlib level 6, what `gzip -6` runs), each measured the
 * way the agent pays it, through snap_object_measure over a real sealed
 * snapshot (read the SSTs, build the tar, compress, hash).
 *
 * The corpus (built here, deterministic from a fixed seed), in equal
 * thirds of bytes, interleaved the way an agent stores them:
 *   - camera frames: 320x240 uint8 grey images -- a smooth scene (gradients
 *     and a few soft blobs that drift frame to frame) plus sensor noise of
 *     about +-3 levels, so neither flat nor random;
 *   - depth maps: 160x120 uint16 millimetres -- planes (floor, a wall) and
 *     a box, with +-1 % range noise and zero holes where the sensor got no
 *     return;
 *   - IMU and environment: float32 windows of 100 samples x 9 channels
 *     (accelerometer, gyroscope, magnetometer: sine motion plus noise) and
 *     of 60 samples x 4 channels (temperature, humidity, pressure, light:
 *     slow drift plus noise).
 *
 * Usage: wire_bench DIR [MIB [RUNS]]   (defaults 256 and 3; the corpus goes
 * into DIR/wire-bench-PID, removed at the end)
 * Prints one line per codec: ratio (tar / object), median MiB/s of tar
 * input over wall time, and CPU seconds per GiB of tar, with the machine's
 * load average; exit 0. A command that measures (README), not a test;
 * ctest runs it once at 4 MiB to prove it works.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "embeddb/snapshot.h"
#include "embeddb/tensor_store.h"
#include "embeddb/wire.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Roughly normal noise in [-3s, 3s] (sum of uniforms). */
static double noise(double s)
{
    double u = 0;
    for (int i = 0; i < 4; i++)
        u += (double)(next() & 0xffff) / 65535.0;
    return (u - 2.0) * s * 1.7;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int save(ts_store *s, uint64_t k, const char *name, ts_dtype dt, uint32_t ndim,
                const uint64_t *shape, const void *data, size_t len)
{
    uint8_t key[8];
    ts_tensor t = {0};
    ts_key_from_u64(k, key);
    t.key = key;
    t.key_len = 8;
    t.name = name;
    t.dtype = dt;
    t.ndim = ndim;
    memcpy(t.shape, shape, ndim * sizeof(uint64_t));
    t.timestamp_ns = 1700000000000000000ll + (int64_t)k * 10000000;
    t.data = data;
    t.data_len = len;
    return ts_save(s, &t);
}

static void camera(uint8_t *img, uint64_t f)
{
    double bx = 80 + 40 * sin((double)f / 50), by = 120 + 30 * cos((double)f / 70);
    for (int y = 0; y < 240; y++)
        for (int x = 0; x < 320; x++) {
            double v = 60 + 0.3 * x + 0.2 * y;
            double dx = x - bx, dy = y - by, ex = x - 240, ey = y - 60 - (double)(f % 40);
            v += 90 * exp(-(dx * dx + dy * dy) / 900) + 50 * exp(-(ex * ex + ey * ey) / 400);
            v += noise(1.0);
            img[y * 320 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

static void depth(uint16_t *d, uint64_t f)
{
    for (int y = 0; y < 120; y++)
        for (int x = 0; x < 160; x++) {
            double mm = y > 70 ? 1500 + (120 - y) * 40.0 : 4000 - x * 2.0; /* floor, wall */
            if (x > 60 && x < 100 && y > 40 && y < 90)
                mm = 2200 + (double)(f % 100); /* a box, moving */
            mm += noise(mm * 0.003);
            d[y * 160 + x] = (next() % 50 == 0) ? 0 : (uint16_t)mm; /* holes */
        }
}

static void imu(float *v, uint64_t w)
{
    for (int i = 0; i < 100; i++) {
        double t = (double)(w * 100 + (uint64_t)i) / 100.0;
        for (int c = 0; c < 9; c++)
            v[i * 9 + c] = (float)((c < 3 ? 9.81 * (c == 2) : c < 6 ? 0 : 40 - c * 5) +
                                   (c < 6 ? 0.8 : 2) * sin(t * (0.7 + c * 0.3)) + noise(0.02));
    }
}

static void env(float *v, uint64_t w)
{
    for (int i = 0; i < 60; i++) {
        double t = (double)(w * 60 + (uint64_t)i);
        v[i * 4 + 0] = (float)(21.5 + 2 * sin(t / 3000) + noise(0.05));
        v[i * 4 + 1] = (float)(45 + 5 * sin(t / 5000) + noise(0.2));
        v[i * 4 + 2] = (float)(1013.2 + 0.5 * sin(t / 9000) + noise(0.03));
        v[i * 4 + 3] = (float)(300 + 250 * sin(t / 2000) + noise(3));
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: wire_bench DIR [MIB [RUNS]]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 256;
    unsigned runs = argc > 3 ? (unsigned)atoi(argv[3]) : 3;
    char store[4096], root[4096], name[SNAP_NAME_MAX], err[1024];
    ts_options o;
    ts_store *s = NULL;
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "mkdir(%s): %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(store, sizeof(store), "%s/wire-bench-%ld", dir, (long)getpid());
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    if (ts_open(store, &o, &s, err, sizeof(err))) {
        fprintf(stderr, "ts_open(%s): %s\n", store, err);
        return 1;
    }
    static uint8_t img[320 * 240];
    static uint16_t dep[160 * 120];
    static float iv[900], ev[240];
    uint64_t k = 0, bytes = 0, want = mib << 20, per[3] = {0};
    double t0 = now_s();
    while (bytes < want) {
        /* thirds of bytes: pick the kind that is furthest behind */
        int kind = per[0] <= per[1] && per[0] <= per[2] ? 0 : per[1] <= per[2] ? 1 : 2;
        int rc;
        if (kind == 0) {
            uint64_t sh[2] = {240, 320};
            camera(img, k);
            rc = save(s, k, "cam/front", TS_U8, 2, sh, img, sizeof(img));
            per[0] += sizeof(img);
        } else if (kind == 1) {
            uint64_t sh[2] = {120, 160};
            depth(dep, k);
            rc = save(s, k, "depth/front", TS_U16, 2, sh, dep, sizeof(dep));
            per[1] += sizeof(dep);
        } else {
            uint64_t sh[2] = {100, 9}, sh2[2] = {60, 4};
            imu(iv, k);
            rc = save(s, k, "imu", TS_F32, 2, sh, iv, sizeof(iv));
            if (!rc) {
                env(ev, k);
                rc = save(s, ++k, "env", TS_F32, 2, sh2, ev, sizeof(ev));
            }
            per[2] += sizeof(iv) + sizeof(ev);
        }
        if (rc) {
            fprintf(stderr, "ts_save: %s\n", ts_strerror(rc));
            return 1;
        }
        k++;
        bytes = per[0] + per[1] + per[2];
    }
    ts_checkpoint_info info;
    size_t done = 0;
    snap_root(store, root, sizeof(root));
    if (snap_begin(plat_vfs_default(), s, root, "bench", name, sizeof(name), &info, err,
                   sizeof(err)) ||
        snap_finish_all(plat_vfs_default(), root, "bench", &done, NULL, err, sizeof(err))) {
        fprintf(stderr, "sealing: %s\n", err);
        return 1;
    }
    ts_close(s);
    snap_info si;
    if (snap_read(plat_vfs_default(), root, name, &si))
        return 1;
    printf("corpus: %llu tensors, %.1f MiB payload (camera %.0f %%, depth %.0f %%, IMU+env %.0f "
           "%%), built and sealed in %.1f s; tar %llu bytes\n", (unsigned long long)k,
           (double)bytes / (1 << 20), 100.0 * (double)per[0] / (double)bytes,
           100.0 * (double)per[1] / (double)bytes, 100.0 * (double)per[2] / (double)bytes,
           now_s() - t0, (unsigned long long)si.tar_bytes);
    static const struct {
        snap_codec c;
        int level;
        const char *label;
    } cases[] = {{SNAP_CODEC_ZSTD, 1, "zstd -1"}, {SNAP_CODEC_ZSTD, 3, "zstd -3"},
                 {SNAP_CODEC_ZSTD, 7, "zstd -7"}, {SNAP_CODEC_ZSTD, 9, "zstd -9"},
                 {SNAP_CODEC_GZIP, 6, "gzip -6"}};
    enum { N_CASES = sizeof(cases) / sizeof(cases[0]) };
    double ratio[N_CASES], wall[N_CASES][16], cpu[N_CASES][16];
    if (!runs || runs > 16)
        runs = 3;
    /* Round-robin over the codecs, so load falls on all alike. */
    for (unsigned r = 0; r < runs; r++)
        for (size_t i = 0; i < N_CASES; i++) {
            uint64_t ob = 0;
            char sha[65];
            double w0 = now_s(), c0 = cpu_s();
            if (snap_object_measure(plat_vfs_default(), root, name, snap_tar_mtime(&si),
                                    si.tar_bytes, cases[i].c, cases[i].level, NULL, NULL, &ob,
                                    sha, err, sizeof(err))) {
                fprintf(stderr, "%s: %s\n", cases[i].label, err);
                return 1;
            }
            wall[i][r] = now_s() - w0;
            cpu[i][r] = cpu_s() - c0;
            ratio[i] = (double)si.tar_bytes / (double)ob;
        }
    for (size_t i = 0; i < N_CASES; i++) {
        qsort(wall[i], runs, sizeof(double), cmp);
        qsort(cpu[i], runs, sizeof(double), cmp);
        double gib = (double)si.tar_bytes / (1 << 30);
        printf("%-8s ratio %5.2f  %7.1f MiB/s of tar  %6.2f CPU s per GiB  (median of %u)\n",
               cases[i].label, ratio[i], (double)si.tar_bytes / (1 << 20) / wall[i][runs / 2],
               cpu[i][runs / 2] / gib, runs);
    }
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la) {
        if (!fgets(load, sizeof(load), la))
            snprintf(load, sizeof(load), "?");
        fclose(la);
    }
    printf("load average: %s", load);
    nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
