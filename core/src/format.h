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
#define FMT_VERSION 2u      /* what this code writes (segments, MANIFEST) */
#define FMT_VERSION_V1 1u   /* still read: plain batches, v1 index */

/* Batch frame header, before the records of one save/saveBatch. */
#define FMT_BATCH_MAGIC 0x54414245u /* "EBAT" */
#define FMT_BATCH_HDR_LEN 32u
#define FMT_BATCH_PLAIN 0u  /* batch kind (header offset 24): records as below */
#define FMT_BATCH_PACKED 1u /* batch kind: frames of compact records (pack.h) */

/* Packed frames (format version 2). A batch is packed when every tensor's
 * data is at most FMT_PACK_MAX_DATA bytes; a frame is closed once it holds
 * FMT_FRAME_TARGET bytes (its schema table and records, each timestamp
 * delta counted as 1 byte) or FMT_FRAME_MAX_SCHEMAS schemas, so a reader
 * needs at most FMT_FRAME_MAX_LEN bytes (and that many key buffers). */
#define FMT_PACK_MAX_DATA 1024u
#define FMT_FRAME_TARGET 4096u
#define FMT_FRAME_MAX_SCHEMAS 64u
#define FMT_FRAME_MAX_LEN 65536u

/* Record: fixed part, then dims, key, name, block CRCs, data. */
#define FMT_REC_FIXED_LEN 40u
#define FMT_BLOCK_LEN 4096u /* data CRC granularity (preview reads whole blocks) */
#define FMT_ALIGN 8u

/* SST: index entries + key heap, then the footer at the very end. */
#define FMT_IDX_ENTRY_LEN 32u   /* v1 index entry */
#define FMT_FOOTER_LEN 64u
#define FMT_SST_MAGIC "EDBSST01" /* footer of a v1 index */
#define FMT_SST2_MAGIC "EDBSST02" /* footer of a v2 (compact) index */
#define FMT_IDX2_HDR_LEN 16u
#define FMT_IDX2_RESTART 64u     /* v2 index: a full key every 64 entries */
#define FMT_IDX2_FRAME_LEN 12u   /* v2 frame table entry: u64 off, u32 len */

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

/* LEB128 varints (7 bits per byte, low first, at most 10 bytes), as in
 * LevelDB and protobuf. Signed values go through zigzag first. */
#define FMT_VARINT_MAX 10u
static inline size_t fmt_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static inline uint8_t *fmt_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}
/* Decodes a varint from [*p, end): 0 and advances *p, or -1 when it runs
 * past end or past 10 bytes (or overflows 64 bits). */
static inline int fmt_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}
static inline uint64_t fmt_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t fmt_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

#endif
