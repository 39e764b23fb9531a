/*
 * seg.h -- reading a segment's record area batch by batch, checking every
 * checksum: the one reader behind WAL replay and verify.
 *
 * It tells a torn tail from corruption the way LevelDB's log reader does: a
 * batch that is incomplete or damaged with nothing valid after it is a torn
 * tail (the writer died mid-write; cut it); a damaged batch followed by a
 * valid batch header is corruption (report file and offset). Memory use is
 * bounded by one record header (or one packed frame) plus one 1 MiB data
 * window, plus the keys of one batch.
 */
#ifndef EMBEDDB_SEG_H
#define EMBEDDB_SEG_H

#include "embeddb/plat.h"

#include <stddef.h>
#include <stdint.h>

typedef struct seg_rec {
    uint64_t off;        /* record offset; packed: its frame's offset */
    uint64_t seq;
    int64_t ts;
    uint32_t rec_len;    /* packed: the frame's length */
    uint32_t hdr_len;    /* plain records */
    uint32_t ord;        /* 0: plain; k + 1: record k of its frame */
    size_t key_off;      /* into the keys buffer handed to the callback */
    uint16_t key_len;
    uint8_t dtype;
} seg_rec;

/* Called once per complete, verified batch. Return 0 to go on; any other
 * value stops the scan and is returned by seg_scan. */
typedef int (*seg_batch_fn)(void *ctx, const seg_rec *recs, size_t n, const uint8_t *keys);

enum { SEG_CLEAN = 0, SEG_TORN = 1, SEG_CORRUPT = 2 };

typedef struct seg_result {
    int status;          /* SEG_CLEAN, SEG_TORN or SEG_CORRUPT */
    uint64_t good_end;   /* end of the last valid batch */
    uint64_t bad_off;    /* where the damage starts (TORN/CORRUPT) */
    const char *why;     /* static reason (TORN/CORRUPT) */
    uint64_t last_seq;   /* seq of the last valid record (or min_seq - 1) */
    uint64_t n_batches, n_records;
} seg_result;

/* What a record looks like to a seg_hooks reader: every field checked
 * (its header CRC, or its frame's); name is not NUL-terminated; key, name
 * and shape are borrowed for the call. */
typedef struct seg_view {
    uint64_t seq;
    int64_t ts;
    const uint8_t *key;
    uint16_t key_len;
    const uint8_t *name;
    uint16_t name_len;
    uint8_t dtype;
    uint8_t ndim;
    const uint64_t *shape;
    uint64_t data_len;
} seg_view;

/*
 * Hooks for a reader that wants the records themselves as the scan checks
 * them (a segment read from a stream, which cannot go back for them once
 * the batch has verified): rec is called with each record once its header
 * (or frame) verified, then data with its data in order, each piece after
 * its block CRCs verified (packed: once, the whole data). The batch they
 * belong to is only valid once seg_scan's batch callback ran for it: a
 * reader holds them until then. A negative return (not TS_ECORRUPT, which
 * would read as damage) stops the scan with that value. Either may be NULL.
 */
typedef struct seg_hooks {
    int (*rec)(void *ctx, const seg_view *r);
    int (*data)(void *ctx, const uint8_t *p, size_t len);
    void *ctx;
} seg_hooks;

/* seg_scan with hooks (NULL: none, as seg_scan). */
int seg_scan_hooked(plat_vfs *vfs, int fd, uint32_t version, uint64_t start, uint64_t end,
                    uint64_t min_seq, seg_batch_fn fn, void *ctx, const seg_hooks *hooks,
                    seg_result *res);

/* Scans [start, end) of fd, a segment of format `version` (a packed batch
 * in a version 1 segment is damage). Sequence numbers must start above
 * min_seq - 1 and rise by one per record. Returns 0 with *res filled, or a
 * negative error (I/O, ENOMEM, or the callback's value). */
int seg_scan(plat_vfs *vfs, int fd, uint32_t version, uint64_t start, uint64_t end,
             uint64_t min_seq, seg_batch_fn fn, void *ctx, seg_result *res);

/* *found = 1 when a valid batch header lies anywhere in [from, end): tells
 * a segment whose header never became durable (nothing acknowledged) from
 * one whose header was damaged later. */
int seg_any_batch(plat_vfs *vfs, int fd, uint64_t from, uint64_t end, int *found);

#endif
