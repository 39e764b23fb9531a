/*
 * record.h -- encoding and checking one tensor record and one batch frame
 * (layout in format.h / FORMAT.md). Pure functions over memory: no I/O.
 */
#ifndef EMBEDDB_RECORD_H
#define EMBEDDB_RECORD_H

#include "crc32c.h"

#include "embeddb/tensor_store.h"
#include <stddef.h>
#include <stdint.h>

/* Parsed view of a record header; pointers borrow the parsed buffer. */
typedef struct rec_meta {
    uint32_t hdr_len;
    uint64_t data_len;
    uint64_t rec_len;      /* hdr_len + data padded to 8 */
    uint64_t seq;
    int64_t timestamp_ns;
    uint16_t key_len;
    uint16_t name_len;
    uint8_t dtype;
    uint8_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    const uint8_t *key;
    const uint8_t *name;   /* not NUL-terminated */
    const uint8_t *block_crcs;
    uint64_t n_blocks;
} rec_meta;

/* Returned by rec_parse when buf holds fewer bytes than the header needs;
 * *need then says how many it does need. */
#define REC_SHORT 1

/* Sizes of t's record after validation (ts_validate rules). */
int rec_size(const ts_tensor *t, uint32_t *hdr_len, uint64_t *rec_len);

/* Encoding a header is two steps so a whole batch's data checksums can run
 * together (crc32c_jobs): begin writes every field and appends one job per
 * 4 KiB data block (rec_n_blocks of them) aimed at the header's CRC table;
 * once the jobs ran, finish seals the header checksum. buf must be 8-byte
 * aligned and hdr_len long (from rec_size). */
void rec_encode_begin(const ts_tensor *t, uint64_t seq, int64_t timestamp_ns, uint8_t *buf,
                      uint32_t hdr_len, crc32c_job *jobs, size_t *n_jobs);
void rec_encode_finish(uint8_t *buf, uint32_t hdr_len);
size_t rec_n_blocks(uint64_t data_len);
/* Both steps at once, for tests and single records. 0 or TS_ENOMEM. */
int rec_encode(const ts_tensor *t, uint64_t seq, int64_t timestamp_ns, uint8_t *buf,
                uint32_t hdr_len);

/* Parses and checks the header in buf[0..avail). 0, REC_SHORT (with *need),
 * or TS_ECORRUPT with *why set to a static reason. */
int rec_parse(const uint8_t *buf, size_t avail, rec_meta *m, size_t *need, const char **why);

/* Checks the data blocks in data[0..have) (have <= data_len) against the
 * header's block CRCs; a trailing partial block is checked only when it is
 * the end of the data. 0 or TS_ECORRUPT; *bad_off gets the block offset. */
int rec_verify_data(const rec_meta *m, const uint8_t *data, uint64_t have, uint64_t *bad_off);

/* Batch frame header. */
typedef struct batch_hdr {
    uint32_t n_records;
    uint64_t body_len;
    uint64_t first_seq;
    uint32_t kind;         /* FMT_BATCH_PLAIN or FMT_BATCH_PACKED */
} batch_hdr;

void rec_batch_encode(const batch_hdr *b, uint8_t out[32]);
/* 0 or TS_ECORRUPT (bad magic, checksum or fields). */
int rec_batch_parse(const uint8_t in[32], batch_hdr *b);

/* Segment file header: its number and the seq its first record will get. */
void seg_hdr_encode(uint64_t file_no, uint64_t base_seq, uint8_t out[32]);
/* Accepts format versions 1 and 2; *version (may be NULL) says which. */
int seg_hdr_parse(const uint8_t in[32], uint64_t *file_no, uint64_t *base_seq, uint32_t *version);

#endif
