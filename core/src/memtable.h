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
    uint64_t rec_off;   /* record offset in the WAL segment; for a packed
                           record (ord > 0) the offset of its frame */
    uint64_t seq;
    int64_t ts;         /* timestamp_ns: feeds the SST's time ranges */
    uint32_t rec_len;   /* record length (packed: frame length) */
    uint32_t hdr_len;   /* plain records only */
    uint32_t ord;       /* 0: plain record; k + 1: record k of its frame */
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
    uint64_t bytes;     /* record bytes appended to the segment (kept by
                           the store: mt_put does not count them) */
} memtable;

void mt_init(memtable *mt);
void mt_free(memtable *mt);
/* Forgets every entry (after a flush); keeps the allocations. */
void mt_clear(memtable *mt);

/* Inserts or replaces key's entry with v's location fields (v->key_off and
 * v->key_len are ignored). 0 or TS_ENOMEM (the table is unchanged). */
int mt_put(memtable *mt, const uint8_t *key, size_t key_len, const mt_entry *v);
/* RAM the index holds for its entries: what memtable_max also bounds. */
static inline uint64_t mt_ram(const memtable *mt)
{
    return (uint64_t)mt->n * (sizeof(mt_entry) + 2 * sizeof(uint32_t)) + mt->keys_len;
}
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
