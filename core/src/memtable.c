/*
 * memtable.c -- hash index of the open WAL segment (see memtable.h).
 *
 * Open addressing with linear probing over entry indexes; the table grows
 * at half load. Keys live in one arena so a put costs no malloc in steady
 * state. The sorted view is a merge sort over indexes (qsort has no context
 * argument in C11).
 */
#include "memtable.h"

#include "embeddb/tensor_store.h"

#include <stdlib.h>
#include <string.h>

int mt_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static uint64_t hash(const uint8_t *k, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

void mt_init(memtable *mt)
{
    memset(mt, 0, sizeof(*mt));
}

void mt_free(memtable *mt)
{
    free(mt->entries);
    free(mt->slots);
    free(mt->keys);
    mt_init(mt);
}

void mt_clear(memtable *mt)
{
    mt->n = 0;
    mt->keys_len = 0;
    mt->bytes = 0;
    if (mt->slots)
        memset(mt->slots, 0, mt->n_slots * sizeof(*mt->slots));
}

static int rehash(memtable *mt, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (!slots)
        return TS_ENOMEM;
    for (size_t i = 0; i < mt->n; i++) {
        const mt_entry *e = &mt->entries[i];
        size_t s = hash(mt->keys + e->key_off, e->key_len) & (n_slots - 1);
        while (slots[s])
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)i + 1;
    }
    free(mt->slots);
    mt->slots = slots;
    mt->n_slots = n_slots;
    return 0;
}

int mt_reserve(memtable *mt, size_t n, size_t key_bytes)
{
    if (n > UINT32_MAX - mt->n - 1 || key_bytes > SIZE_MAX / 2 - mt->keys_len)
        return TS_EOVERFLOW;
    size_t want = mt->n + n;
    if (want > mt->cap) {
        size_t cap = mt->cap ? mt->cap : 256;
        while (cap < want)
            cap *= 2;
        mt_entry *e = realloc(mt->entries, cap * sizeof(*e));
        if (!e)
            return TS_ENOMEM;
        mt->entries = e;
        mt->cap = cap;
    }
    if (want * 2 > mt->n_slots) {
        size_t ns = mt->n_slots ? mt->n_slots : 512;
        while (want * 2 > ns)
            ns *= 2;
        int rc = rehash(mt, ns);
        if (rc)
            return rc;
    }
    if (mt->keys_len + key_bytes > mt->keys_cap) {
        size_t cap = mt->keys_cap ? mt->keys_cap : 4096;
        while (cap < mt->keys_len + key_bytes)
            cap *= 2;
        uint8_t *k = realloc(mt->keys, cap);
        if (!k)
            return TS_ENOMEM;
        mt->keys = k;
        mt->keys_cap = cap;
    }
    return 0;
}

static size_t find_slot(const memtable *mt, const uint8_t *key, size_t key_len)
{
    size_t s = hash(key, key_len) & (mt->n_slots - 1);
    for (;;) {
        uint32_t v = mt->slots[s];
        if (!v)
            return s;
        const mt_entry *e = &mt->entries[v - 1];
        if (e->key_len == key_len && !memcmp(mt->keys + e->key_off, key, key_len))
            return s;
        s = (s + 1) & (mt->n_slots - 1);
    }
}

int mt_put(memtable *mt, const uint8_t *key, size_t key_len, const mt_entry *v)
{
    int rc = mt_reserve(mt, 1, key_len);
    if (rc)
        return rc;
    size_t s = find_slot(mt, key, key_len);
    mt_entry *e;
    if (mt->slots[s]) {
        e = &mt->entries[mt->slots[s] - 1];
    } else {
        e = &mt->entries[mt->n];
        e->key_off = mt->keys_len;
        e->key_len = (uint16_t)key_len;
        memcpy(mt->keys + mt->keys_len, key, key_len);
        mt->keys_len += key_len;
        mt->slots[s] = (uint32_t)++mt->n;
    }
    uint64_t key_off = e->key_off;
    *e = *v;
    e->key_off = key_off;
    e->key_len = (uint16_t)key_len;
    return 0;
}

const mt_entry *mt_get(const memtable *mt, const uint8_t *key, size_t key_len)
{
    if (!mt->n)
        return NULL;
    uint32_t v = mt->slots[find_slot(mt, key, key_len)];
    return v ? &mt->entries[v - 1] : NULL;
}

static int cmp_idx(const memtable *mt, uint32_t a, uint32_t b)
{
    const mt_entry *x = &mt->entries[a], *y = &mt->entries[b];
    return mt_key_cmp(mt->keys + x->key_off, x->key_len, mt->keys + y->key_off, y->key_len);
}

uint32_t *mt_sorted(const memtable *mt, size_t *n)
{
    *n = mt->n;
    if (!mt->n)
        return NULL;
    uint32_t *a = malloc(mt->n * sizeof(*a));
    uint32_t *tmp = malloc(mt->n * sizeof(*tmp));
    if (!a || !tmp) {
        free(a);
        free(tmp);
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < mt->n; i++)
        a[i] = (uint32_t)i;
    /* Keys usually arrive in order (time-ordered keys, checkpoints): then
     * insertion order is the answer and the sort is skipped. */
    size_t run = 1;
    while (run < mt->n && cmp_idx(mt, (uint32_t)run - 1, (uint32_t)run) < 0)
        run++;
    if (run == mt->n) {
        free(tmp);
        return a;
    }
    /* Bottom-up merge sort. */
    uint32_t *src = a, *dst = tmp;
    for (size_t w = 1; w < mt->n; w *= 2) {
        for (size_t lo = 0; lo < mt->n; lo += 2 * w) {
            size_t mid = lo + w < mt->n ? lo + w : mt->n;
            size_t hi = lo + 2 * w < mt->n ? lo + 2 * w : mt->n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = cmp_idx(mt, src[i], src[j]) <= 0 ? src[i++] : src[j++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, mt->n * sizeof(*a));
    free(tmp);
    return a;
}
