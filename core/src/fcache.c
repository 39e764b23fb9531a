/*
 * fcache.c -- decoded SST frames for point loads (see fcache.h).
 */
#include "fcache.h"

#include "crc32c.h"

#include <stdlib.h>
#include <string.h>

void fcache_init(fcache *c, uint64_t budget)
{
    memset(c, 0, sizeof(*c));
    c->budget = budget;
}

void fcache_free(fcache *c)
{
    for (fc_entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        free(e->frame);
        free(e);
    }
    free(c->buckets);
    fcache_init(c, c->budget);
}

uint32_t fcache_key_fp(const uint8_t *key, size_t key_len)
{
    uint16_t len = (uint16_t)key_len;
    return crc32c_extend(crc32c(&len, sizeof(len)), key, key_len);
}

/* Bucket of (file_no, off) in a table of n (a power of two) buckets. */
static size_t bucket_in(size_t n, uint64_t file_no, uint64_t off)
{
    uint64_t h = (file_no * UINT64_C(0x9E3779B97F4A7C15)) ^ (off * UINT64_C(0xC2B2AE3D27D4EB4F));
    return (size_t)(h ^ h >> 29) & (n - 1);
}

static size_t bucket_of(const fcache *c, uint64_t file_no, uint64_t off)
{
    return bucket_in(c->n_buckets, file_no, off);
}

static void lru_unlink(fcache *c, fc_entry *e)
{
    *(e->newer ? &e->newer->older : &c->newest) = e->older;
    *(e->older ? &e->older->newer : &c->oldest) = e->newer;
}

static void lru_push(fcache *c, fc_entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    *(c->newest ? &c->newest->newer : &c->oldest) = e;
    c->newest = e;
}

const fc_entry *fcache_get(fcache *c, uint64_t file_no, uint64_t off)
{
    if (!c->n_buckets)
        return NULL;
    fc_entry *e = c->buckets[bucket_of(c, file_no, off)];
    while (e && (e->file_no != file_no || e->off != off))
        e = e->chain;
    if (e && e != c->newest) {
        lru_unlink(c, e);
        lru_push(c, e);
    }
    return e;
}

static void evict_oldest(fcache *c)
{
    fc_entry *e = c->oldest, **pp = &c->buckets[bucket_of(c, e->file_no, e->off)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(c, e);
    c->bytes -= e->bytes;
    c->n_entries--;
    free(e->frame);
    free(e);
}

/* Doubles the table (at least 16 buckets) once it holds as many entries as
 * buckets, when the budget has room for the larger table. */
static int grow(fcache *c)
{
    size_t n = c->n_buckets ? c->n_buckets * 2 : 16;
    size_t add = (n - c->n_buckets) * sizeof(fc_entry *);
    if (c->n_buckets && c->n_entries < c->n_buckets)
        return 0;
    while (c->oldest && c->bytes + add > c->budget)
        evict_oldest(c);
    if (c->bytes + add > c->budget)
        return c->n_buckets ? 0 : 1;
    fc_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return c->n_buckets ? 0 : TS_ENOMEM;
    for (size_t i = 0; i < c->n_buckets; i++)
        for (fc_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->chain;
            size_t j = bucket_in(n, e->file_no, e->off);
            e->chain = b[j];
            b[j] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->bytes += add;
    c->n_buckets = n;
    return 0;
}

int fcache_put(fcache *c, uint64_t file_no, uint64_t off, uint8_t *frame, uint32_t len,
               const fc_entry **out, const char **why)
{
    pack_dec d;
    pack_rec r;
    uint32_t flen = 0;
    fc_entry *e = NULL;
    *out = NULL;
    int rc = pack_open(&d, frame, len, &flen, why);
    if (rc)
        goto out;
    rc = TS_ECORRUPT;
    if (flen != len) {
        *why = "frame length differs from the index";
        goto out;
    }
    /* The schemas right after the entry, on the lines a hit reads anyway. */
    size_t sch_off = (sizeof(fc_entry) + 15) & ~(size_t)15;
    size_t recs_off = sch_off + d.n_schemas * sizeof(pack_schema);
    size_t bytes = recs_off + d.n_records * sizeof(fc_rec) + len;
    rc = 1;
    if (bytes > c->budget)
        goto out;
    rc = TS_ENOMEM;
    if (!(e = malloc(bytes - len)))
        goto out;
    fc_rec *recs = (fc_rec *)(void *)((uint8_t *)e + recs_off);
    while ((rc = pack_next(&d, &r, why)) == 0)
        recs[r.ord] = (fc_rec){.timestamp_ns = r.timestamp_ns,
                               .key_fp = fcache_key_fp(r.key, r.key_len),
                               .data_off = (uint16_t)(r.data - frame),
                               .schema = (uint8_t)d.cur_schema};
    if (rc != 1)
        goto out;
    pack_schema *sch = (pack_schema *)(void *)((uint8_t *)e + sch_off);
    memcpy(sch, d.schemas, d.n_schemas * sizeof(pack_schema));
    *e = (fc_entry){.file_no = file_no, .off = off, .first_seq = d.first_seq, .bytes = bytes,
                    .n_records = d.n_records, .n_schemas = d.n_schemas, .schemas = sch,
                    .recs = recs, .frame = frame};
    rc = grow(c);
    while (!rc && c->oldest && c->bytes + bytes > c->budget)
        evict_oldest(c);
    if (!rc && c->bytes + bytes > c->budget)
        rc = 1;
    if (rc)
        goto out;
    size_t b = bucket_of(c, file_no, off);
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->bytes += bytes;
    c->n_entries++;
    *out = e;
    pack_close(&d);
    return 0;
out:
    pack_close(&d);
    free(e);
    free(frame);
    return rc;
}
