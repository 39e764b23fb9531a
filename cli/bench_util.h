/*
 * bench_util.h -- what the embeddb benchmarks (bench.c, bench_small.c,
 * bench_reads.c) measure with: clocks, medians, the /proc/self/io write
 * counter, a vfs that counts preads, and plain write()/fdatasync() for the raw
 * baselines.
 *
 * Not here: workloads (each bench_*.c file holds its own) or the tensors
 * they save (bench_feed.h).
 */
#ifndef EMBEDDB_BENCH_UTIL_H
#define EMBEDDB_BENCH_UTIL_H

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_RUNS 99
#define BENCH_MiB (1024.0 * 1024.0)

/* Seconds since t0 (plat_mono_ns). */
double bench_util_secs_since(uint64_t t0);

/* a * b as a size_t, or TS_EOVERFLOW (size_t is 32 bits on the ARM targets). */
int bench_util_mul_size(uint64_t a, uint64_t b, size_t *out);

/* Median of v[0..n-1] (sorts v; n >= 1). */
double bench_util_median(double *v, size_t n);

/*
 * write_bytes of /proc/self/io: bytes this process caused to be sent toward
 * the block layer. Linux counts it when a clean page cache page is dirtied
 * (a whole 4 KiB page each time), not when bytes reach the disk: a 768-byte
 * append followed by fdatasync counts 4096 (or 8192 when it straddles a
 * page), and the next append re-dirties the same page and counts it again.
 * 0 where the file does not exist (the figure is then reported 0).
 */
uint64_t bench_util_io_write_bytes(void);

/* Lets the file system finish what earlier runs left behind (journal
 * commits, the discards of deleted files on a "discard" mount) before a
 * timed run starts, so that no run pays for its predecessor. */
void bench_util_settle(void);

/* write() all of buf, retrying short writes. 0 or -errno. Deliberately plain
 * libc: the raw baseline is the bound the engine is measured against, so
 * nothing of EmbedDb may sit in its path. */
int bench_util_write_all(int fd, const void *buf, size_t len);

/* A vfs that counts preads and passes everything to the platform's. */
typedef struct bench_util_count_vfs {
    plat_vfs vfs; /* first: the engine hands &vfs back to us as self */
    plat_vfs *real;
    uint64_t preads;
} bench_util_count_vfs;

void bench_util_count_vfs_init(bench_util_count_vfs *c);

#endif
