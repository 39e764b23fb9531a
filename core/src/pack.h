/*
 * pack.h -- packed frames: the compact record encoding of format version 2
 * for small tensors (layout in FORMAT.md, "Packed batch").
 *
 * A packed batch's body is a run of frames. A frame holds up to about 4 KiB
 * of consecutive records of the batch: a table of the (name, dtype, shape)
 * schemas they use, then each record as a few varints (its schema, its key
 * as a suffix of the previous key of the same schema, its timestamp as a
 * delta) followed by its data, and one CRC-32C over the whole frame. A frame
 * is self-contained: a point load reads exactly one frame.
 *
 * Pure functions over memory: no I/O. The decoder bounds every length
 * before using it and needs at most FMT_FRAME_MAX_SCHEMAS key buffers.
 */
#ifndef EMBEDDB_PACK_H
#define EMBEDDB_PACK_H

#include "format.h"

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* 1 when a batch of these (validated) tensors is written packed. */
int pack_eligible(const ts_tensor *const *t, size_t n);

/* Where record i of a packed batch went: its frame (offset from the start
 * of the body, and length) and its ordinal inside the frame. */
typedef struct pack_loc {
    uint64_t frame_off;
    uint32_t frame_len;
    uint32_t ord;
} pack_loc;

/* Encodes tensors t[0..n) with timestamps ts[] and seqs first_seq.. as a
 * packed body: frames, then zero pad to a multiple of 8. With buf NULL it
 * only measures: *body_len is exact either way, so callers size buf with a
 * first call. locs (n entries, or NULL) receives each record's place.
 * Returns 0, or TS_EOVERFLOW when a frame would pass FMT_FRAME_MAX_LEN
 * (cannot happen for tensors that pack_eligible accepted). */
int pack_encode(const ts_tensor *const *t, const int64_t *ts, size_t n, uint64_t first_seq,
                uint8_t *buf, uint64_t *body_len, pack_loc *locs);

/* One record of a parsed frame. key and data borrow the decoder / frame
 * buffer until the next pack_next; name borrows the frame (not
 * NUL-terminated). */
typedef struct pack_rec {
    uint32_t ord;
    uint64_t seq;
    int64_t timestamp_ns;
    const uint8_t *key;
    uint16_t key_len;
    const uint8_t *name;
    uint16_t name_len;
    uint8_t dtype;
    uint8_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    const uint8_t *data;
    uint32_t data_len;
} pack_rec;

typedef struct pack_schema {
    const uint8_t *name;
    uint16_t name_len;
    uint8_t dtype, ndim;
    uint64_t shape[TS_MAX_DIMS];
    uint32_t data_len;
    uint16_t last_key_len;  /* key of the schema's previous record */
} pack_schema;

/* Decoder over one frame (frame points at its u32 length field). */
typedef struct pack_dec {
    const uint8_t *p, *end;   /* records still to decode */
    uint32_t n_records, next;
    uint64_t first_seq;
    int64_t ts;
    int cur_schema;
    uint32_t n_schemas;
    pack_schema schemas[FMT_FRAME_MAX_SCHEMAS];
    uint8_t (*keys)[TS_MAX_KEY_LEN]; /* one per schema, owned */
} pack_dec;

/* Checks a frame's length field and CRC and parses its schema table.
 * avail: bytes available at frame. Returns 0, or TS_ECORRUPT with *why (a
 * static reason), or TS_ENOMEM. *frame_len gets 4 + the length field (the
 * bytes the frame occupies) as soon as it is readable, even on error. */
int pack_open(pack_dec *d, const uint8_t *frame, size_t avail, uint32_t *frame_len,
              const char **why);
/* Decodes the next record: 0 and *r (r NULL: skips it, checked all the
 * same), 1 at the end of the frame (then the frame has been checked to end
 * exactly there), TS_ECORRUPT with *why. d->next counts the records done. */
int pack_next(pack_dec *d, pack_rec *r, const char **why);
void pack_close(pack_dec *d);

#endif
