/*
 * keymap.c -- the map from every live SST key to its newest index entry
 * (see keymap.h for the layout, its RAM and its costs).
 *
 * The hash reads the key 8 bytes at a time; its low bits pick the home
 * slot and its high 32 bits are the tag, so the two never share bits while
 * the table has at most 2^32 slots (it is capped at 2^31). The table is
 * not persisted, so the hash may change between versions or hosts.
 */
#include "keymap.h"

#include "memtable.h"

#include <stdlib.h>
#include <string.h>

#define KM_MIN_SLOTS 64
#define KM_MAX_SLOTS ((size_t)1 << 31)

uint64_t (*keymap__hash_hook)(const uint8_t *key, size_t key_len);
int (*keymap__fail_alloc_hook)(size_t bytes);

/* Most keys a table of n slots takes: load factor 0.6. */
static size_t limit(size_t n_slots)
{
    return n_slots / 5 * 3;
}

uint64_t keymap_hash(const uint8_t *k, size_t len)
{
    const uint64_t mul = 0x9e3779b97f4a7c15ull;
    uint64_t h = 0x6a09e667f3bcc909ull ^ ((uint64_t)len * mul), w;
    if (keymap__hash_hook)
        return keymap__hash_hook(k, len);
    for (; len >= 8; k += 8, len -= 8) {
        memcpy(&w, k, 8);
        h = (((h << 23) | (h >> 41)) ^ w) * mul; /* a bijection of h for each w */
    }
    if (len) {
        w = 0;
        memcpy(&w, k, len);
        h = (((h << 23) | (h >> 41)) ^ w) * mul;
    }
    h ^= h >> 33; /* murmur3's finaliser: every input bit reaches both halves */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint32_t tag_of(uint64_t h)
{
    uint32_t t = (uint32_t)(h >> 32);
    return t ? t : 1;
}

static void *alloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (keymap__fail_alloc_hook && keymap__fail_alloc_hook(n * size))
        return NULL;
    return calloc(n ? n : 1, size);
}

void keymap_init(keymap *m)
{
    memset(m, 0, sizeof(*m));
    m->usable = 1;
}

void keymap_free(keymap *m)
{
    free(m->slots);
    free(m->base);
    keymap_init(m);
}

/* Frees everything and stays unusable until the next add or rebuild. */
static void give_up(keymap *m)
{
    keymap_free(m);
    m->usable = 0;
}

/* Which SST holds entry number ref: the last j with base[j] <= ref (base is
 * non-decreasing and base[n_ssts] > ref, so empty SSTs are skipped). */
static size_t sst_of(const keymap *m, uint32_t ref)
{
    size_t lo = 0, hi = m->n_ssts;
    while (lo + 1 < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->base[mid] <= ref)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* 1 when entry ref holds key (then *which and *e describe it). */
static int holds(const keymap *m, const sst *ssts, uint32_t ref, const uint8_t *key,
                 size_t key_len, size_t *which, sst_entry *e)
{
    size_t j = sst_of(m, ref);
    sst_entry_at(&ssts[j], ref - m->base[j], e);
    if (e->key_len != key_len || memcmp(e->key, key, key_len))
        return 0;
    *which = j;
    return 1;
}

/* Points key's slot at ref, adding a slot when the key is new. 1 when the
 * table is too full for a new key (nothing changed), else 0. */
static int put(keymap *m, const sst *ssts, const uint8_t *key, size_t key_len, uint32_t ref)
{
    uint64_t h = keymap_hash(key, key_len);
    uint32_t tag = tag_of(h);
    size_t mask = m->n_slots - 1, i = (size_t)h & mask, which;
    sst_entry e;
    for (; m->slots[i].tag; i = (i + 1) & mask) {
        if (m->slots[i].tag == tag && holds(m, ssts, m->slots[i].ref, key, key_len, &which, &e)) {
            m->slots[i].ref = ref; /* a newer SST holds the key */
            return 0;
        }
    }
    if (m->n_used >= limit(m->n_slots))
        return 1;
    m->slots[i] = (km_slot){tag, ref};
    m->n_used++;
    return 0;
}

/* Maps the entries of ssts[j] (base[j] set), in order with a cursor (an
 * entry decoded on its own may cost a restart block). 0, or 1 with *stop
 * at the first entry that did not fit. */
static int put_sst(keymap *m, const sst *ssts, size_t j, uint32_t *stop)
{
    sst_iter it;
    for (sst_iter_seek(&it, &ssts[j], NULL, 0); sst_iter_valid(&it); sst_iter_next(&it)) {
        if (put(m, ssts, it.e.key, it.e.key_len, m->base[j] + it.i)) {
            *stop = it.i;
            return 1;
        }
    }
    return 0;
}

/* Room for base[0..n]; 0 or -1. */
static int reserve_base(keymap *m, size_t n)
{
    if (n + 1 <= m->cap_base)
        return 0;
    size_t cap = m->cap_base ? m->cap_base : 16;
    while (cap < n + 1)
        cap *= 2;
    uint32_t *b = alloc(cap, sizeof(*b));
    if (!b)
        return -1;
    if (m->base)
        memcpy(b, m->base, m->cap_base * sizeof(*b));
    free(m->base);
    m->base = b;
    m->cap_base = cap;
    return 0;
}

/* Numbers the entries of ssts[from..n); 0, or -1 when they pass 2^32 - 1. */
static int number(keymap *m, const sst *ssts, size_t from, size_t n)
{
    if (from == 0)
        m->base[0] = 0;
    for (size_t j = from; j < n; j++) {
        if (ssts[j].f.n_entries > UINT32_MAX - m->base[j])
            return -1;
        m->base[j + 1] = m->base[j] + ssts[j].f.n_entries;
    }
    m->n_ssts = n;
    return 0;
}

static size_t fit(size_t keys)
{
    size_t n = KM_MIN_SLOTS;
    while (n < KM_MAX_SLOTS && limit(n) < keys)
        n *= 2;
    return n;
}

/* Maps ssts[0..n) from scratch in a table sized for `keys` distinct keys,
 * doubling it when that guess was low. */
static void build(keymap *m, const sst *ssts, size_t n, size_t keys)
{
    size_t n_slots = fit(keys);
    uint32_t stop;
    free(m->slots); /* before allocating the next: never two tables at once */
    m->slots = NULL;
    m->n_slots = m->n_used = 0;
    m->usable = 1;
    if (reserve_base(m, n) || number(m, ssts, 0, n))
        goto fail;
    if (m->base[n] == 0)
        return; /* nothing to map: no table */
    for (;;) {
        if (limit(n_slots) < keys && n_slots >= KM_MAX_SLOTS)
            goto fail;
        if (!(m->slots = alloc(n_slots, sizeof(*m->slots))))
            goto fail;
        m->n_slots = n_slots;
        size_t j = 0;
        while (j < n && !put_sst(m, ssts, j, &stop))
            j++;
        if (j == n)
            return;
        free(m->slots);
        m->slots = NULL;
        m->n_slots = m->n_used = 0;
        keys = limit(n_slots) + 1;
        n_slots = fit(keys);
    }
fail:
    give_up(m);
}

void keymap_rebuild(keymap *m, const sst *ssts, size_t n)
{
    uint64_t total = 0;
    for (size_t j = 0; j < n; j++)
        total += ssts[j].f.n_entries;
    /* The distinct keys number at most the entries; when this shrinks the
     * list (ts_release), also at most the keys mapped now. */
    size_t keys = total > SIZE_MAX ? SIZE_MAX : (size_t)total;
    if (m->usable && m->n_ssts >= n && m->n_used < keys)
        keys = m->n_used;
    build(m, ssts, n, keys);
}

void keymap_add(keymap *m, const sst *ssts, size_t n)
{
    uint32_t stop = 0;
    if (!n)
        return;
    if (!m->usable || m->n_ssts != n - 1) {
        keymap_rebuild(m, ssts, n);
        return;
    }
    if (reserve_base(m, n) || number(m, ssts, n - 1, n)) {
        give_up(m);
        return;
    }
    if (m->n_slots && !put_sst(m, ssts, n - 1, &stop))
        return;
    /* The table is missing or full: rebuild it bigger, sized for what is
     * mapped plus the entries not placed yet (an upper bound). */
    build(m, ssts, n, m->n_used + (ssts[n - 1].f.n_entries - stop));
}

int keymap_find(const keymap *m, const sst *ssts, size_t n, const uint8_t *key, size_t key_len,
                size_t *which, sst_entry *e)
{
    if (!m->usable || m->n_ssts != n)
        return -1;
    if (!m->n_slots)
        return 0;
    uint64_t h = keymap_hash(key, key_len);
    uint32_t tag = tag_of(h);
    size_t mask = m->n_slots - 1;
    for (size_t i = (size_t)h & mask; m->slots[i].tag; i = (i + 1) & mask)
        if (m->slots[i].tag == tag && holds(m, ssts, m->slots[i].ref, key, key_len, which, e))
            return 1;
    return 0;
}

size_t keymap_bytes(const keymap *m)
{
    return m->n_slots * sizeof(*m->slots) + m->cap_base * sizeof(*m->base);
}
