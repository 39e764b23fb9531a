/*
 * bench.h -- the agent-style workloads of `embeddb bench`, called by
 * cmd_bench (bench.c) after it parsed the options and made the scratch
 * directory:
 *   bench_small_run (bench_small.c)  durable ingest of 12 B, 128 B and 4 KiB
 *                                    tensors against write() + fdatasync()
 *   bench_reads_run (bench_reads.c)  point loads, a time-window query and
 *                                    ts_latest on stores of 10, 100 and
 *                                    1,000 SSTs
 * Each prints its own report to stdout and returns 0, or a TS_E* / -errno
 * code after printing why. Neither fails on a figure: they measure.
 */
#ifndef EMBEDDB_BENCH_H
#define EMBEDDB_BENCH_H

#include <stdint.h>

typedef struct bench_opts {
    const char *work;      /* scratch directory (borrowed); runs make and
                              remove raw.dat and store/ in it */
    uint64_t runs;         /* small: alternated raw/engine runs, medians */
    uint64_t tensors;      /* small: tensors per size and run */
    uint64_t batch;        /* small: tensors per durable commit */
    uint64_t memtable_max; /* small: the engine's flush threshold */
    uint64_t topics;       /* small and reads: topics interleaved */
    uint64_t samples;      /* reads: tensors per topic (1 kHz each) */
    uint64_t max_ssts;     /* reads: largest SST count measured */
} bench_opts;

int bench_small_run(const bench_opts *o);
int bench_reads_run(const bench_opts *o);

#endif
