/*
 * fcache.c -- small tensors decoded from SST frames, for point loads (see
 * fcache.h).
 */
#include "fcache.h"

#include "keymap.h"

#include <stdlib.h>
#include <string.h>

void fcache_init(fcache *c, uint64_t budget)
{
    memset(c, 0, sizeof(*c));
    c->budget = budget;
}

void fcache_free(fcache *c)
{
    for (fc_row *w = c->newest, *next; w; w = next) {
        next = w->older;
        free(w);
    }
    free(c->buckets);
    fcache_init(c, c->budget);
}

static uint8_t *bytes_of(const fc_row *w)
{
    return (uint8_t *)(uintptr_t)(w + 1);
}

static const uint8_t *key_of(const fc_row *w)
{
    return bytes_of(w) + 8 * (size_t)w->ndim;
}

static void ring_unlink(fcache *c, fc_row *w)
{
    *(w->newer ? &w->newer->older : &c->newest) = w->older;
    *(w->older ? &w->older->newer : &c->oldest) = w->newer;
}

static void ring_push(fcache *c, fc_row *w)
{
    w->newer = NULL;
    w->older = c->newest;
    *(c->newest ? &c->newest->newer : &c->oldest) = w;
    c->newest = w;
}

static fc_row **bucket(const fcache *c, uint32_t h)
{
    return &c->buckets[h & (c->n_buckets - 1)];
}

static void remove_row(fcache *c, fc_row *w)
{
    fc_row **pp = bucket(c, w->h);
    while (*pp != w)
        pp = &(*pp)->chain;
    *pp = w->chain;
    ring_unlink(c, w);
    c->bytes -= w->bytes;
    c->n_rows--;
    free(w);
}

/* Second chance (CLOCK): the oldest rows used since they last came round
 * go back to the newest end; the first one not used goes. */
static void evict_oldest(fcache *c)
{
    fc_row *w;
    while ((w = c->oldest)->used && w != c->newest) {
        w->used = 0;
        ring_unlink(c, w);
        ring_push(c, w);
    }
    remove_row(c, w);
}

/* Doubles the table (at least 16 buckets) once it holds half as many rows
 * as buckets (a probe then follows about 1.2 links), when the budget has room for the larger table. 0, or 1 when
 * there is no table and no room or memory for one. */
static int grow(fcache *c)
{
    size_t n = c->n_buckets ? c->n_buckets * 2 : 16;
    size_t add = (n - c->n_buckets) * sizeof(fc_row *);
    if (c->n_buckets && 2 * c->n_rows < c->n_buckets)
        return 0;
    while (c->oldest && c->bytes + add > c->budget)
        evict_oldest(c);
    if (c->bytes + add > c->budget)
        return !c->n_buckets;
    fc_row **b = calloc(n, sizeof(*b));
    if (!b)
        return !c->n_buckets;
    for (size_t i = 0; i < c->n_buckets; i++)
        for (fc_row *w = c->buckets[i], *next; w; w = next) {
            next = w->chain;
            size_t j = w->h & (n - 1);
            w->chain = b[j];
            b[j] = w;
        }
    free(c->buckets);
    c->buckets = b;
    c->bytes += add;
    c->n_buckets = n;
    return 0;
}

static fc_row *find(const fcache *c, uint32_t h, const uint8_t *key, size_t key_len)
{
    if (!c->n_rows)
        return NULL;
    for (fc_row *w = *bucket(c, h); w; w = w->chain)
        if (w->h == h && w->key_len == key_len && !memcmp(key_of(w), key, key_len))
            return w;
    return NULL;
}

int fcache_get(fcache *c, const uint8_t *key, size_t key_len, pack_rec *r)
{
    fc_row *w = find(c, (uint32_t)keymap_hash(key, key_len), key, key_len);
    if (!w)
        return 0;
    w->used = 1;
    *r = (pack_rec){.seq = w->seq, .timestamp_ns = w->timestamp_ns, .key = key_of(w),
                    .key_len = w->key_len, .dtype = w->dtype, .ndim = w->ndim,
                    .data_len = w->data_len, .name_len = w->name_len};
    memcpy(r->shape, bytes_of(w), 8 * (size_t)w->ndim);
    r->data = r->key + w->key_len;
    r->name = r->data + w->data_len;
    return 1;
}

static size_t row_bytes(const pack_rec *r)
{
    return sizeof(fc_row) + 8 * (size_t)r->ndim + r->key_len + (size_t)r->data_len + r->name_len;
}

int fcache_room(const fcache *c, const pack_rec *r)
{
    return c->bytes + row_bytes(r) <= c->budget;
}

void fcache_put(fcache *c, const pack_rec *r, int evict)
{
    uint32_t h = (uint32_t)keymap_hash(r->key, r->key_len);
    size_t shape = 8 * (size_t)r->ndim;
    size_t bytes = row_bytes(r);
    fc_row *w = find(c, h, r->key, r->key_len);
    if (w)
        remove_row(c, w);
    if (bytes > c->budget || bytes > UINT32_MAX || (!evict && c->bytes + bytes > c->budget) ||
        grow(c) || !(w = malloc(bytes)))
        return;
    while (evict && c->oldest && c->bytes + bytes > c->budget)
        evict_oldest(c);
    if (c->bytes + bytes > c->budget) {
        free(w);
        return;
    }
    *w = (fc_row){.h = h, .bytes = (uint32_t)bytes, .timestamp_ns = r->timestamp_ns,
                  .seq = r->seq, .data_len = r->data_len, .key_len = r->key_len,
                  .name_len = r->name_len, .dtype = r->dtype, .ndim = r->ndim};
    uint8_t *p = bytes_of(w);
    memcpy(p, r->shape, shape);
    memcpy(p + shape, r->key, r->key_len);
    if (r->data_len)
        memcpy(p + shape + r->key_len, r->data, r->data_len);
    memcpy(p + shape + r->key_len + r->data_len, r->name, r->name_len);
    fc_row **b = bucket(c, h);
    w->chain = *b;
    *b = w;
    ring_push(c, w);
    c->bytes += bytes;
    c->n_rows++;
}

void fcache_drop(fcache *c, const uint8_t *key, size_t key_len)
{
    fc_row *w = find(c, (uint32_t)keymap_hash(key, key_len), key, key_len);
    if (w)
        remove_row(c, w);
}

void fcache_clear(fcache *c)
{
    while (c->newest)
        remove_row(c, c->newest);
}
