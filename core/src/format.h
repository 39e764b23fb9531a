/*
 * format.h -- on-disk layout constants and little-endian codecs shared by the
 * WAL, SST and MANIFEST code. core/FORMAT.md is the prose version of this
 * file; change both together. Every multi-byte integer on disk is
 * little-endian; every checksum is CRC-32C (crc32c.h).
 */
#ifndef EMBEDDB_FORMAT_H
#define EMBEDDB_FORMAT_H

#include <stdint.h>
#include <string.h>

/* Segment file header: first 32 bytes of every wal_/sst_ file. */
#define FMT_SEG_MAGIC "EDBSEG01"
#define FMT_SEG_HDR_LEN 32u
#define FMT_VERSION 1u

/* Batch frame header, before the records of one save/saveBatch. */
#define FMT_BATCH_MAGIC 0x54414245u /* "EBAT" */
#define FMT_BATCH_HDR_LEN 32u

/* Record: fixed part, then dims, key, name, block CRCs, data. */
#define FMT_REC_FIXED_LEN 40u
#define FMT_BLOCK_LEN 4096u /* data CRC granularity (preview reads whole blocks) */
#define FMT_ALIGN 8u

/* SST: index entries + key heap, then the footer at the very end. */
#define FMT_IDX_ENTRY_LEN 32u
#define FMT_FOOTER_LEN 64u
#define FMT_SST_MAGIC "EDBSST01"

/* MANIFEST */
#define FMT_MAN_MAGIC "EDBMAN01"
#define FMT_MAN_FIXED_LEN 24u
#define FMT_MAN_NAME "MANIFEST"
#define FMT_MAN_TMP_NAME "MANIFEST.tmp"
#define FMT_LOCK_NAME "LOCK"

static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static inline uint64_t fmt_align8(uint64_t v) { return (v + 7) & ~(uint64_t)7; }

#endif
