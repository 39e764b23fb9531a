/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of every on-disk structure.
 *
 * Uses the CPU's CRC instruction when there is one (SSE4.2 on x86-64, the
 * ARMv8 CRC extension on aarch64), chosen once at run time, and a
 * slicing-by-8 table otherwise (armhf, old CPUs). Internal to core/.
 */
#ifndef EMBEDDB_CRC32C_H
#define EMBEDDB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (start with 0). */
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);

static inline uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_extend(0, buf, len);
}

/* CRC-32C of each block_len-sized block of buf (the last may be shorter),
 * written to out[ceil(len / block_len)]. Independent blocks are checksummed
 * three at a time so the CRC instruction's latency overlaps: this is what
 * keeps checksumming tensor data off the ingest critical path. */
void crc32c_blocks(const void *buf, size_t len, size_t block_len, uint32_t *out);

/* One checksum to compute: len bytes at p, result stored at *out. */
typedef struct crc32c_job {
    const void *p;
    size_t len;
    uint32_t *out;
} crc32c_job;

/* Runs every job, three equal-length jobs at a time where it can, so a
 * batch of small tensors (one 4 KiB block each) still overlaps the CRC
 * instruction's latency. */
void crc32c_jobs(const crc32c_job *jobs, size_t n);

/* Name of the implementation in use ("sse4.2", "armv8-crc", "table"). */
const char *crc32c_impl(void);

#endif
