/*
 * bench_small.c -- `embeddb bench small`: durable ingest of the small
 * tensors an agent stores for sensor topics (bench_feed.h: keys
 * "sensors/imu0#<20-digit counter>", name = topic, 1 ms apart), at three
 * sizes -- 12 B (f32[3], an IMU sample), 128 B (f32[32]) and 4 KiB
 * (f32[1024]) -- in batches of B (64) with one durable commit each.
 *
 * As in `embeddb bench` (bench.c), each figure is measured against its
 * physical bound in the same process and directory: write() of the batch's
 * payload bytes + fdatasync() per batch to a fresh file. Raw and engine runs
 * alternate R times (which goes first swapping every run), then a paired
 * run alternates the two batch by batch (the steadier figure on a noisy
 * disk), and medians are reported. Small tensors are bound by the fdatasync per batch, not by
 * bandwidth, so the rates are tensors/s; the ratio says what the engine
 * costs on top of the sync.
 *
 * Bytes written per payload byte: ts_stats.bytes_written (the final flush
 * included) over the tensors' data bytes. For a 12-byte tensor the
 * metadata stored with it (key, name, timestamp, checksums; packed and
 * prefix-compressed by format v2) is as large as the data, so this says what
 * a small sample costs in flash; interleaving topics (--topics) shares fewer
 * key prefixes and costs more. /proc/self/io is reported too, for the
 * engine and for the raw baseline: it counts whole pages as they are dirtied
 * (bench_util.h), so every commit re-counts the WAL's last page.
 */
#include "bench.h"

#include "bench_feed.h"
#include "bench_util.h"
#include "cli_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint64_t small_elems[] = {3, 32, 1024};
#define N_SIZES (sizeof(small_elems) / sizeof(small_elems[0]))

/* What one run of one size measured. */
typedef struct small_run {
    double raw_tps, eng_tps;     /* tensors/s */
    double paired;               /* engine / raw, batch by batch */
    double amp, io_amp, raw_io_amp; /* bytes per payload byte */
} small_run;

/* The bound: per batch, fill, write() of its payload bytes, fdatasync(). */
static int run_raw(const bench_opts *o, bench_feed *f, uint64_t n_batches, double *tps,
                   uint64_t *io)
{
    char path[4096];
    size_t len = (size_t)(o->batch * f->elems * sizeof(float));
    uint64_t io0, t0;
    int fd, rc = 0;
    snprintf(path, sizeof(path), "%s/raw.dat", o->work);
    unlink(path);
    if ((fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        goto out;
    }
    bench_util_settle();
    io0 = bench_util_io_write_bytes();
    t0 = plat_mono_ns();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        bench_feed_fill(f, b * o->batch, (size_t)o->batch);
        if (!(rc = bench_util_write_all(fd, f->data, len)) && fdatasync(fd))
            rc = -errno;
    }
    if (!rc) {
        *tps = (double)(n_batches * o->batch) / bench_util_secs_since(t0);
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

/* The engine: per batch, fill and ts_save_batch (sync on) into a fresh
 * store, then a flush, which is part of the cost. */
static int run_engine(const bench_opts *o, bench_feed *f, uint64_t n_batches, double *tps,
                      uint64_t *io, ts_stats *st)
{
    char path[4096];
    ts_options opt;
    ts_store *s = NULL;
    uint64_t io0, t0;
    int rc;
    snprintf(path, sizeof(path), "%s/store", o->work);
    cli_store_rmtree(path);
    ts_options_init(&opt);
    opt.create_if_missing = 1;
    opt.memtable_max = o->memtable_max;
    if ((rc = cli_store_open(path, &opt, &s)))
        goto out;
    bench_util_settle();
    io0 = bench_util_io_write_bytes();
    t0 = plat_mono_ns();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        bench_feed_fill(f, b * o->batch, (size_t)o->batch);
        rc = ts_save_batch(s, f->ptrs, (size_t)o->batch);
    }
    if (!rc)
        rc = ts_flush(s, NULL, 0, NULL);
    if (rc) {
        cli_store_report(path, s, rc);
        goto out;
    }
    *tps = (double)(n_batches * o->batch) / bench_util_secs_since(t0);
    *io = bench_util_io_write_bytes() - io0;
    ts_get_stats(s, st);
out:
    ts_close(s);
    cli_store_rmtree(path);
    return rc;
}

/* Batch by batch, the raw write+fdatasync and the engine's save alternate,
 * each timed on its own, so both meet the same moments of a noisy disk (as
 * bench.c's paired run). *ratio = engine tensors/s over raw tensors/s. */
static int run_paired(const bench_opts *o, bench_feed *f, uint64_t n_batches, double *ratio)
{
    char raw[4096], path[4096];
    size_t len = (size_t)(o->batch * f->elems * sizeof(float));
    ts_options opt;
    ts_store *s = NULL;
    uint64_t raw_ns = 0, eng_ns = 0, t0;
    int fd = -1, rc;
    snprintf(raw, sizeof(raw), "%s/raw.dat", o->work);
    snprintf(path, sizeof(path), "%s/store", o->work);
    cli_store_rmtree(path);
    ts_options_init(&opt);
    opt.create_if_missing = 1;
    opt.memtable_max = o->memtable_max;
    if ((rc = cli_store_open(path, &opt, &s)))
        goto out;
    if ((fd = open(raw, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        fprintf(stderr, "embeddb: bench: %s: %s\n", raw, strerror(errno));
        goto out;
    }
    bench_util_settle();
    for (uint64_t b = 0; b < n_batches && !rc; b++) {
        bench_feed_fill(f, b * o->batch, (size_t)o->batch);
        t0 = plat_mono_ns();
        if (!(rc = bench_util_write_all(fd, f->data, len)) && fdatasync(fd))
            rc = -errno;
        raw_ns += plat_mono_ns() - t0;
        if (rc) {
            fprintf(stderr, "embeddb: bench: %s: %s\n", raw, strerror(-rc));
            goto out;
        }
        t0 = plat_mono_ns();
        rc = ts_save_batch(s, f->ptrs, (size_t)o->batch);
        eng_ns += plat_mono_ns() - t0;
    }
    t0 = plat_mono_ns();
    if (!rc)
        rc = ts_flush(s, NULL, 0, NULL);
    eng_ns += plat_mono_ns() - t0;
    if (rc)
        cli_store_report(path, s, rc);
    else
        *ratio = (double)raw_ns / (double)eng_ns;
out:
    if (fd >= 0)
        close(fd);
    unlink(raw);
    ts_close(s);
    cli_store_rmtree(path);
    return rc;
}

/* R alternated runs of one size; prints a line per run. */
static int run_size(const bench_opts *o, uint64_t elems, small_run *runs)
{
    bench_feed f;
    uint64_t n_batches = o->tensors / o->batch, io_raw = 0, io_eng = 0;
    double payload = (double)(n_batches * o->batch * elems * sizeof(float));
    ts_stats st;
    int rc;
    if ((rc = bench_feed_new(&f, o->topics, elems, (size_t)o->batch))) {
        fprintf(stderr, "embeddb: bench: out of memory\n");
        goto out;
    }
    for (uint64_t r = 0; r < o->runs && !rc; r++) {
        small_run *sr = &runs[r];
        int swap = (int)(r % 2);
        if (swap && (rc = run_engine(o, &f, n_batches, &sr->eng_tps, &io_eng, &st)))
            break;
        if ((rc = run_raw(o, &f, n_batches, &sr->raw_tps, &io_raw)))
            break;
        if (!swap && (rc = run_engine(o, &f, n_batches, &sr->eng_tps, &io_eng, &st)))
            break;
        if ((rc = run_paired(o, &f, n_batches, &sr->paired)))
            break;
        sr->amp = (double)st.bytes_written / (double)st.payload_bytes;
        sr->io_amp = (double)io_eng / payload;
        sr->raw_io_amp = (double)io_raw / payload;
        printf("%5" PRIu64 " B run %" PRIu64 ": raw %.0f tensors/s, engine %.0f tensors/s "
               "(ratio %.3f; paired %.3f); bytes written/payload %.3f (io %.3f, raw io %.3f); "
               "fsyncs %" PRIu64 ", flushes %" PRIu64 "\n", elems * 4, r + 1, sr->raw_tps,
               sr->eng_tps, sr->eng_tps / sr->raw_tps, sr->paired, sr->amp, sr->io_amp,
               sr->raw_io_amp, st.fsyncs, st.flushes);
        fflush(stdout);
    }
out:
    bench_feed_free(&f);
    return rc;
}

int bench_small_run(const bench_opts *o)
{
    small_run *runs = calloc(N_SIZES * (size_t)o->runs, sizeof(*runs));
    double v[7][BENCH_MAX_RUNS];
    int rc = 0;
    if (!runs) {
        fprintf(stderr, "embeddb: bench: out of memory\n");
        rc = TS_ENOMEM;
        goto out;
    }
    printf("bench small: %" PRIu64 " tensors per size in batches of %" PRIu64 ", one fdatasync "
           "per batch, keys sensors/imu<t>#<20-digit counter> (%" PRIu64 " topic%s, "
           "each 1 kHz), memtable_max %" PRIu64 ", %" PRIu64 " runs, in %s\n",
           o->tensors / o->batch * o->batch, o->batch, o->topics,
           o->topics == 1 ? "" : "s interleaved", o->memtable_max, o->runs, o->work);
    for (size_t i = 0; i < N_SIZES && !rc; i++)
        rc = run_size(o, small_elems[i], runs + i * o->runs);
    if (rc)
        goto out;
    printf("\nmedians of %" PRIu64 " runs:\n", o->runs);
    printf("size_B  shape    raw_tensors_per_s  engine_tensors_per_s  ratio  ratio_paired  "
           "bytes_written_per_payload  io_per_payload  raw_io_per_payload\n");
    for (size_t i = 0; i < N_SIZES; i++) {
        const small_run *r = runs + i * o->runs;
        char shape[24];
        for (size_t j = 0; j < o->runs; j++) {
            v[0][j] = r[j].raw_tps;
            v[1][j] = r[j].eng_tps;
            v[2][j] = r[j].eng_tps / r[j].raw_tps;
            v[3][j] = r[j].amp;
            v[4][j] = r[j].io_amp;
            v[5][j] = r[j].raw_io_amp;
            v[6][j] = r[j].paired;
        }
        snprintf(shape, sizeof(shape), "f32[%" PRIu64 "]", small_elems[i]);
        printf("%-6" PRIu64 "  %-7s  %17.0f  %20.0f  %5.3f  %12.3f  %25.3f  %14.3f  %18.3f\n",
               small_elems[i] * 4, shape, bench_util_median(v[0], o->runs),
               bench_util_median(v[1], o->runs), bench_util_median(v[2], o->runs),
               bench_util_median(v[6], o->runs), bench_util_median(v[3], o->runs),
               bench_util_median(v[4], o->runs), bench_util_median(v[5], o->runs));
    }
    printf("ratio: engine / raw write()+fdatasync() of the same payload per batch, whole runs "
           "alternated;\n"
           "  ratio_paired: the two alternating batch by batch (the steadier figure).\n"
           "bytes_written_per_payload: ts_stats.bytes_written (final flush included) / tensor "
           "data bytes;\n"
           "  a 12-byte sample carries about as many bytes of key, name, timestamp and "
           "checksums.\n"
           "io_per_payload: /proc/self/io write_bytes / payload. Linux counts a whole page "
           "each time a clean\n"
           "  page is dirtied, so every commit re-counts the WAL's last page: with small "
           "batches this is\n"
           "  about pages touched per batch x 4096 / payload, for the raw file as well "
           "(raw_io_per_payload).\n");
out:
    free(runs);
    return rc;
}
