/*
 * rss_bench.c -- peak memory of a store holding many small tensors: the
 * bound issue 12 set (1,000,000 live 12-byte tensors under agent keys in
 * at most 48 MiB of RSS). A command that measures, not a test.
 *
 * Usage: rss_bench DIR [N] [MEMTABLE_MAX]    (defaults 1000000, 64 MiB)
 *
 * Two processes, so each peak is its own (VmHWM from /proc/self/status):
 *   ingest: a fresh store in DIR takes N f32[3] tensors under
 *           "sensors/imu<k>#<20-digit counter>" (20 topics interleaved,
 *           name = the topic) in batches of 64 (sync off: memory, not the
 *           disk, is measured here), then a flush;
 *   open:   the store is reopened (SST indexes read, key map built) and
 *           200,000 random keys are loaded and checked.
 * What the memory holds, per live key: the key map's slot (8 bytes at most
 * 60 % full), the SST index (about 4 bytes), and while ingesting the
 * MemTable (about 64 bytes + the key per unflushed tensor, bounded by
 * memtable_max / 4).
 */
#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOPICS 20
#define BATCH 64

static long vm_kib(const char *field)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, strlen(field)))
            v = strtol(line + strlen(field) + 1, NULL, 10);
    fclose(f);
    return v;
}

static size_t make_key(uint64_t i, char *k, char *topic)
{
    snprintf(topic, 32, "sensors/imu%u", (unsigned)(i % TOPICS));
    return (size_t)snprintf(k, 64, "%s#%020" PRIu64, topic, i / TOPICS);
}

static int ingest(const char *dir, uint64_t n, uint64_t memtable_max)
{
    ts_options o;
    ts_store *s = NULL;
    char err[512], keys[BATCH][64], topics[BATCH][32];
    float v[BATCH][3];
    ts_tensor t[BATCH];
    const ts_tensor *p[BATCH];
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    o.memtable_max = memtable_max;
    if (ts_open(dir, &o, &s, err, sizeof(err))) {
        fprintf(stderr, "rss_bench: %s\n", err);
        return 1;
    }
    for (uint64_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? (size_t)(n - i) : BATCH;
        for (size_t j = 0; j < m; j++) {
            size_t kl = make_key(i + j, keys[j], topics[j]);
            v[j][0] = v[j][1] = v[j][2] = (float)(i + j);
            t[j] = (ts_tensor){.key = (const uint8_t *)keys[j], .key_len = kl, .name = topics[j],
                               .dtype = TS_F32, .ndim = 1, .shape = {3}, .data = v[j],
                               .data_len = sizeof(v[j]),
                               .timestamp_ns = INT64_C(1700000000000000000) + (int64_t)(i + j) * 50000};
            p[j] = &t[j];
        }
        if (ts_save_batch(s, p, m)) {
            fprintf(stderr, "rss_bench: save: %s\n", ts_errmsg(s));
            return 1;
        }
    }
    if (ts_flush(s, NULL, 0, NULL)) {
        fprintf(stderr, "rss_bench: flush: %s\n", ts_errmsg(s));
        return 1;
    }
    ts_stats st;
    ts_get_stats(s, &st);
    printf("ingest n=%" PRIu64 " memtable_max=%" PRIu64 " ssts=%" PRIu64
           " bytes_written/payload=%.3f vmhwm_mib=%.1f\n",
           n, memtable_max, st.n_sst, (double)st.bytes_written / (double)st.payload_bytes,
           vm_kib("VmHWM") / 1024.0);
    ts_close(s);
    return 0;
}

static int reopen(const char *dir, uint64_t n)
{
    ts_options o;
    ts_store *s = NULL;
    char err[512], k[64], topic[32];
    uint64_t x = 88172645463325252ull;
    ts_options_init(&o);
    long before = vm_kib("VmHWM");
    if (ts_open(dir, &o, &s, err, sizeof(err))) {
        fprintf(stderr, "rss_bench: %s\n", err);
        return 1;
    }
    uint64_t t0 = plat_mono_ns();
    for (int i = 0; i < 200000; i++) {
        ts_tensor *t = NULL;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t want = x % n;
        size_t kl = make_key(want, k, topic);
        if (ts_load(s, k, kl, &t) || ((const float *)t->data)[0] != (float)want) {
            fprintf(stderr, "rss_bench: load %s: %s\n", k, ts_errmsg(s));
            return 1;
        }
        ts_tensor_free(t);
    }
    double secs = (double)(plat_mono_ns() - t0) / 1e9;
    printf("open+loads n=%" PRIu64 " vmhwm_mib=%.1f (before open %.1f) random_loads_per_s=%.0f\n",
           n, vm_kib("VmHWM") / 1024.0, before / 1024.0, 200000 / secs);
    ts_close(s);
    return 0;
}

/* Runs one phase in a child process: its VmHWM is its own. */
static int phase(int (*fn)(const char *, uint64_t, uint64_t), const char *dir, uint64_t n,
                 uint64_t mt)
{
    int st = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = fn(dir, n, mt);
        fflush(stdout);
        _exit(rc);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return 1;
    return !WIFEXITED(st) || WEXITSTATUS(st);
}

static int ingest3(const char *d, uint64_t n, uint64_t mt) { return ingest(d, n, mt); }
static int reopen3(const char *d, uint64_t n, uint64_t mt) { (void)mt; return reopen(d, n); }

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: rss_bench DIR [N] [MEMTABLE_MAX]\n");
        return 2;
    }
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    uint64_t mt = argc > 3 ? strtoull(argv[3], NULL, 10) : 64ull << 20;
    if (n == 0) {
        fprintf(stderr, "rss_bench: N must be at least 1\n");
        return 2;
    }
    return phase(ingest3, argv[1], n, mt) || phase(reopen3, argv[1], n, mt);
}
