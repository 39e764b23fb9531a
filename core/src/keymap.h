/*
 * keymap.h -- one in-RAM hash map over the keys of every live SST, so that a
 * point load costs a bounded number of probes however many SSTs are live and
 * however their key ranges overlap. Internal to core/; not persisted (it is
 * rebuilt from the SST indexes at open).
 *
 * Each distinct key held by a live SST has exactly one 8-byte slot
 * {tag, ref}: tag is 32 bits of the key's 64-bit hash that the slot index
 * does not use (0 means empty, so a zero tag is remapped to 1); ref is the
 * key's newest index entry, numbered across the live SSTs in list order
 * (ssts[j]'s entry i is base[j] + i). A tag match is confirmed by comparing
 * the key itself with that entry, so a collision costs a key compare and
 * never a wrong answer. A lookup hashes, probes (about 1.5 slots on
 * average at load 0.6 for a hit, 3.6 for a miss), finds the SST by a binary
 * search of base[] and decodes the one entry named (index v2: from its
 * restart point, at most 64 entries): no SST is searched.
 *
 * RAM: open addressing with linear probing in a power-of-two table kept at
 * most 0.6 full, so 8 / load bytes per live key: 13.3 B just before the
 * table doubles, 26.7 B just after, 16.8 B for 1,000,000 keys (2^21 slots,
 * 16 MiB), plus 4 B per live SST. Keys are not copied: the SST indexes
 * hold them.
 *
 * Costs: adding an SST hashes and probes each of its entries (an entry
 * whose key an older SST holds moves that key's slot to it). Growing
 * rebuilds from the SST indexes (the table keeps no hashes), freeing the
 * old table first, so the map never holds two tables at once; doubling
 * makes that O(1) per key amortised. After ts_release the map is rebuilt
 * from the SSTs left: O(their entries), nothing when none are left.
 *
 * Out of memory: the map marks itself unusable and keymap_find says so;
 * the caller then walks the SSTs as before. Nothing fails because of it,
 * and the next add or rebuild tries again.
 *
 * SSTs must be added in list order (ascending file number): a key's newest
 * version is then simply the last one added.
 */
#ifndef EMBEDDB_KEYMAP_H
#define EMBEDDB_KEYMAP_H

#include "sst.h"

#include <stddef.h>
#include <stdint.h>

typedef struct km_slot {
    uint32_t tag;        /* 0: empty */
    uint32_t ref;        /* entry number (see above) */
} km_slot;

typedef struct keymap {
    km_slot *slots;      /* owned; NULL while no key is mapped */
    size_t n_slots;      /* power of two, or 0 */
    size_t n_used;       /* distinct keys mapped */
    uint32_t *base;      /* owned: base[j] numbers ssts[j]'s first entry;
                            base[n_ssts] is the total */
    size_t n_ssts;       /* SSTs mapped (a prefix of the live list) */
    size_t cap_base;
    int usable;          /* 0 after an allocation failed */
} keymap;

void keymap_init(keymap *m);
/* Frees the table; the map is empty and usable again. */
void keymap_free(keymap *m);

/* ssts[n-1] has just been appended to ssts[0..n-2], which the map covers:
 * maps its keys. Anything else (the map unusable, or not covering exactly
 * the first n-1) rebuilds from ssts[0..n). Never fails; see above. */
void keymap_add(keymap *m, const sst *ssts, size_t n);
/* Forgets everything and maps ssts[0..n). Never fails; see above. */
void keymap_rebuild(keymap *m, const sst *ssts, size_t n);

/* Looks key up among the live SSTs ssts[0..n): 1 with *which (index into
 * ssts) and *e set to its newest entry, 0 when no live SST holds it, -1
 * when the map is unusable (the caller must search the SSTs itself). */
int keymap_find(const keymap *m, const sst *ssts, size_t n, const uint8_t *key, size_t key_len,
                size_t *which, sst_entry *e);

/* The hash of a key (also the tensor cache's, fcache.h). */
uint64_t keymap_hash(const uint8_t *key, size_t key_len);

/* Bytes the map holds (table and entry numbering). */
size_t keymap_bytes(const keymap *m);

/* Test hooks, NULL in production; set them before opening a store (they
 * apply to every map in the process). hash replaces the key hash (to force
 * equal tags); fail_alloc, when it returns 1, fails the allocation of
 * `bytes` (to reach the fallback). */
extern uint64_t (*keymap__hash_hook)(const uint8_t *key, size_t key_len);
extern int (*keymap__fail_alloc_hook)(size_t bytes);

#endif
