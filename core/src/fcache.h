/*
 * fcache.h -- decoded SST frames for point loads (ts_options.frame_cache_bytes).
 *
 * A point load of a packed record otherwise copies its whole frame (about
 * 4 KiB), checks the frame's CRC and decodes every record before it: for a
 * 12-byte tensor that is almost all of the cost. A cached frame was copied,
 * checked and decoded whole once; a hit finds its record by ordinal. SST
 * frames never change (files are immutable and their numbers never
 * reused), so entries need no invalidation; an entry of a dropped SST
 * simply ages out.
 *
 * What an entry keeps per record (16 bytes): timestamp, data offset,
 * schema, and a CRC-32C fingerprint of the key. The key itself is not
 * kept: the caller found the record by an exact key match in the SST's
 * index (checked at open), and the fingerprint stands in for the frame's
 * own copy of the key as the check that the index points at the right
 * record.
 *
 * Memory: at most the budget, counting each entry's allocation (the frame,
 * its schemas, 16 bytes per record, the entry) and the hash table. Least
 * recently used entries are dropped first.
 */
#ifndef EMBEDDB_FCACHE_H
#define EMBEDDB_FCACHE_H

#include "pack.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fc_rec {
    int64_t timestamp_ns;
    uint32_t key_fp;     /* fcache_key_fp of the record's key */
    uint16_t data_off;   /* from the start of the frame */
    uint8_t schema;
    uint8_t pad;
} fc_rec;

typedef struct fc_entry {
    struct fc_entry *chain;       /* hash bucket */
    struct fc_entry *newer, *older;
    uint64_t file_no, off;
    uint64_t first_seq;
    size_t bytes;                 /* the allocation, counted in the budget */
    uint32_t n_records, n_schemas;
    const pack_schema *schemas;   /* names point into frame */
    const fc_rec *recs;
    uint8_t *frame;               /* owned */
} fc_entry;

typedef struct fcache {
    uint64_t budget, bytes;
    fc_entry **buckets;
    size_t n_buckets, n_entries;
    fc_entry *newest, *oldest;
} fcache;

void fcache_init(fcache *c, uint64_t budget);
void fcache_free(fcache *c);

/* The fingerprint of a key (its length included). */
uint32_t fcache_key_fp(const uint8_t *key, size_t key_len);

/* The entry of the frame at (file_no, off), now the most recently used, or
 * NULL. */
const fc_entry *fcache_get(fcache *c, uint64_t file_no, uint64_t off);

/* Checks and decodes the frame (len bytes, its length as the index gives
 * it; a malloc'd copy the cache takes over whatever happens) and keeps it.
 * Returns 0 and *out; 1 when it does not fit the budget (nothing kept:
 * decode the frame directly); TS_ECORRUPT with *why; TS_ENOMEM. */
int fcache_put(fcache *c, uint64_t file_no, uint64_t off, uint8_t *frame, uint32_t len,
               const fc_entry **out, const char **why);

#endif
