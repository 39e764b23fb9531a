/*
 * sst_stream.h -- a store's files read from a stream of bytes that only goes
 * forward: a sealed segment (sst_NNNNNN.sst) checked record by record as it
 * passes, and a MANIFEST. For readers of an uploaded snapshot object (a tar,
 * maybe inside a zstd or gzip stream: snapshot/FORMAT.md), which can neither
 * seek nor unpack to disk; the `embeddb` tool's ls, get and verify on an
 * object use it.
 *
 * The checks are the engine's own (the segment reader behind WAL replay and
 * ts_verify, the SST index checks of ts_open): every batch, record header,
 * packed frame and 4 KiB data block CRC, sequence numbers, the footer, the
 * index's CRC and structure, and that the footer's index offset and seq
 * range agree with the records read. Not checked here, unlike ts_verify:
 * that every index entry leads to its record (that needs the records again
 * after the index, which comes last).
 *
 * Memory, whatever the segment's size: a window of at most 5 MiB (1 MiB
 * for records under 256 MiB), the segment reader's buffers (1 MiB, plus one
 * record header: 4 MiB for a 4 GiB tensor), the keys of one batch, and the
 * index at the end, refused past TS_SST_STREAM_INDEX_MAX.
 */
#ifndef EMBEDDB_SST_STREAM_H
#define EMBEDDB_SST_STREAM_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* The largest index (bytes between the records and the footer) read. */
#define TS_SST_STREAM_INDEX_MAX (64u << 20)

/* The byte source: the next up to len bytes into buf, *got = 0 only at its
 * end; 0 or a negative code (returned by ts_sst_stream as it is). The
 * signature of tar_stream_read and http_body_fn. */
typedef int (*ts_pull_fn)(void *ctx, uint8_t *buf, size_t len, size_t *got);

/*
 * What a reader is shown, each call's arguments borrowed for the call.
 * tensor: a record whose header (or packed frame) verified; e->name is
 * NUL-terminated, e->file_no the segment's. data: then its data, in order,
 * in pieces, each once its 4 KiB block CRCs verified. batch: the batch
 * holding the records shown since the last batch call verified whole --
 * only now do they count (a damaged record later in a batch voids the
 * batch). Each returns 0 to go on or a negative code (not TS_ECORRUPT) that
 * stops the read and is returned. Any may be NULL.
 */
typedef struct ts_sst_visitor {
    int (*tensor)(void *ctx, const ts_entry *e);
    int (*data)(void *ctx, const uint8_t *p, size_t len);
    int (*batch)(void *ctx);
    void *ctx;
} ts_sst_visitor;

typedef struct ts_sst_info {
    uint64_t min_seq, max_seq; /* the segment's first and last seq */
    uint64_t n_records;        /* records read (all versions of each key) */
    uint64_t n_entries;        /* index entries (keys) */
} ts_sst_info;

/*
 * Reads exactly size bytes from pull as sst file file_no (pull borrowed for
 * the call), stopping at the first damage. 0 with *info (may be NULL);
 * TS_ECORRUPT with err saying what and at which offset in the file; or the
 * pull's or a visitor's code (err says "reading"). Bytes the read did not
 * need (after damage) are left in the source.
 */
int ts_sst_stream(ts_pull_fn pull, void *pull_ctx, uint64_t size, uint64_t file_no,
                  const ts_sst_visitor *v, ts_sst_info *info, char *err, size_t errlen);

/* A MANIFEST's bytes (core/FORMAT.md): *live (malloc'ed, caller frees)
 * gets the n live SST numbers, ascending. 0, TS_ECORRUPT with err, or
 * TS_ENOMEM. */
int ts_manifest_parse(const void *buf, size_t len, uint64_t **live, size_t *n, char *err,
                      size_t errlen);

#endif
