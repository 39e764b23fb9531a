/*
 * memtable.h -- the in-memory index of the open WAL segment.
 *
 * Maps each key saved since the last flush to where its newest record sits
 * in the segment. It holds no tensor bytes: those were written to the WAL
 * once and are read back from it (usually from the page cache), so the
 * MemTable's memory is proportional to the number of keys, not their size.
 * Lookups hash; flush and scans ask for a sorted view.
 */
#ifndef EMBEDDB_MEMTABLE_H
#define EMBEDDB_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_entry {
    uint64_t key_off;   /* into the memtable's key arena */
    uint64_t rec_off;   /* record offset in the WAL segment */
    uint64_t seq;
    uint32_t rec_len;
    uint32_t hdr_len;
    uint16_t key_len;
    uint8_t dtype;      /* lets a preview size its single read */
} mt_entry;

typedef struct memtable {
    mt_entry *entries;
    size_t n, cap;
    uint32_t *slots;    /* open addressing: entry index + 1, 0 = empty */
    size_t n_slots;     /* power of two */
    uint8_t *keys;      /* key arena */
    size_t keys_len, keys_cap;
    uint64_t bytes;     /* record bytes appended to the segment */
} memtable;

void mt_init(memtable *mt);
void mt_free(memtable *mt);
/* Forgets every entry (after a flush); keeps the allocations. */
void mt_clear(memtable *mt);

/* Inserts or replaces key's entry. 0 or TS_ENOMEM (the table is unchanged). */
int mt_put(memtable *mt, const uint8_t *key, size_t key_len, uint64_t rec_off,
           uint32_t rec_len, uint32_t hdr_len, uint64_t seq, uint8_t dtype);
/* Reserves room for n more puts so a batch cannot fail half-way. */
int mt_reserve(memtable *mt, size_t n, size_t key_bytes);

/* The entry for key, or NULL. Borrowed until the next put/clear. */
const mt_entry *mt_get(const memtable *mt, const uint8_t *key, size_t key_len);
static inline const uint8_t *mt_key(const memtable *mt, const mt_entry *e)
{
    return mt->keys + e->key_off;
}

/* A newly allocated array of entry indexes sorted by key (caller frees), or
 * NULL on OOM (or when empty: *n = 0). */
uint32_t *mt_sorted(const memtable *mt, size_t *n);

/* Bytewise key order, shorter first on a common prefix. */
int mt_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
