/*
 * fcache.h -- small tensors decoded from SST frames, kept for point loads
 * (ts_options.frame_cache_bytes).
 *
 * A point load of a packed record otherwise finds its key in the key map,
 * walks the SST's index to its entry, copies its whole frame (about
 * 4 KiB), checks the frame's CRC and decodes every record before it: for a
 * 12-byte tensor that is almost all of the cost. The cache keeps tensors
 * whole (key, name, shape, timestamp, seq, data) under their keys, as
 * "rows": a hit is one hash probe, one compare of the key and one copy.
 *
 * What fills it: a load that misses reads and checks the frame as always,
 * and keeps its record as a row, and, while the budget has room without
 * dropping any, every other record of that frame that is its key's newest
 * version (the store's key map says which), so the frame is read once.
 * Once the cache is full a miss keeps only its own record: a small budget
 * never costs a load more than the frame it reads anyway.
 * A row is only right while the SSTs hold no newer version of its key: the
 * store drops a key's row when an SST holding the key is added
 * (fcache_drop) and every row when SSTs are released (fcache_clear); the
 * MemTable, newer than any SST, is looked at before the cache.
 *
 * A row is a checked copy: damage to its frame on flash after it was kept
 * is not seen by loads it serves (ts_verify reads the files).
 *
 * Memory: at most the budget, counting each row's allocation (a header of
 * 64 bytes plus its bytes) and the hash table (8 bytes per bucket, up to
 * four buckets per row). Rows are dropped oldest first, except that one
 * hit since it last came round gets a second chance (CLOCK: a hit writes
 * nothing but its own row).
 */
#ifndef EMBEDDB_FCACHE_H
#define EMBEDDB_FCACHE_H

#include "pack.h"

#include <stddef.h>
#include <stdint.h>

/* A row; its bytes follow: shape (u64 x ndim), key, data, name. */
typedef struct fc_row {
    struct fc_row *chain;         /* hash bucket */
    struct fc_row *newer, *older;
    uint32_t h;                   /* hash of the key (low 32 bits) */
    uint32_t bytes;               /* the allocation, counted in the budget */
    int64_t timestamp_ns;
    uint64_t seq;
    uint32_t data_len;
    uint16_t key_len, name_len;
    uint8_t dtype, ndim;
    uint8_t used;                 /* hit since it last came round (CLOCK) */
} fc_row;

typedef struct fcache {
    uint64_t budget, bytes;
    fc_row **buckets;
    size_t n_buckets, n_rows;
    fc_row *newest, *oldest;
} fcache;

void fcache_init(fcache *c, uint64_t budget);
void fcache_free(fcache *c);

/* The row of key, marked used: 1 and *r (pointing into the row, valid
 * until the cache next changes), or 0. */
int fcache_get(fcache *c, const uint8_t *key, size_t key_len, pack_rec *r);
/* Keeps r (a record the SSTs hold as its key's newest version) as a row,
 * replacing any row of its key, when the budget has room, dropping old
 * rows for it if evict. Nothing happens otherwise: a row is only ever a
 * shortcut. */
void fcache_put(fcache *c, const pack_rec *r, int evict);
/* 1 when r would fit without dropping a row. */
int fcache_room(const fcache *c, const pack_rec *r);
/* Forgets the row of key, if any. */
void fcache_drop(fcache *c, const uint8_t *key, size_t key_len);
/* Forgets every row. */
void fcache_clear(fcache *c);

#endif
