/*
 * pack.c -- packed frames (see pack.h; layout in FORMAT.md).
 *
 * The encoder runs twice over each frame's records: a plan that decides
 * where the frame ends and which schemas it lists, then the write. Both
 * use one record sizer/writer so the sizes cannot disagree. Each record's
 * key is coded against the previous key *of the same schema*: the agent
 * interleaves topics in a batch, and a topic's keys differ only in their
 * counter, so that key is the one sharing the most.
 */
#include "pack.h"

#include "crc32c.h"
#include "format.h"

#include <stdlib.h>
#include <string.h>

typedef struct plan {
    size_t i0, i1;                          /* records [i0, i1) */
    size_t sch[FMT_FRAME_MAX_SCHEMAS];      /* tensor index defining each schema */
    uint32_t n_sch;
    uint64_t sch_bytes, rec_bytes;
} plan;

int pack_eligible(const ts_tensor *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i]->data_len > FMT_PACK_MAX_DATA)
            return 0;
    return n > 0;
}

static int same_schema(const ts_tensor *a, const ts_tensor *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim &&
           !memcmp(a->shape, b->shape, a->ndim * sizeof(a->shape[0])) && !strcmp(a->name, b->name);
}

/* The schema's encoded size; with p, writes it and returns the end. */
static uint64_t schema_put(const ts_tensor *t, uint8_t **p)
{
    size_t name_len = strlen(t->name);
    uint64_t len = fmt_varint_len(name_len) + name_len + 2;
    for (uint32_t d = 0; d < t->ndim; d++)
        len += fmt_varint_len(t->shape[d]);
    if (p) {
        uint8_t *q = fmt_put_varint(*p, name_len);
        memcpy(q, t->name, name_len);
        q += name_len;
        *q++ = (uint8_t)t->dtype;
        *q++ = (uint8_t)t->ndim;
        for (uint32_t d = 0; d < t->ndim; d++)
            q = fmt_put_varint(q, t->shape[d]);
        *p = q;
    }
    return len;
}

/* Record j's encoded size given its schema index, whether that is the
 * previous record's, the schema's previous key and the previous timestamp;
 * with p, writes it. */
static uint64_t record_put(const ts_tensor *t, int64_t ts, uint32_t schema, int same,
                           const ts_tensor *prev_key, int64_t prev_ts, uint8_t **p)
{
    size_t plen = prev_key ? prev_key->key_len : 0, shared = 0;
    while (shared < plen && shared < t->key_len && prev_key->key[shared] == t->key[shared])
        shared++;
    size_t suffix = t->key_len - shared;
    int same_len = plen == t->key_len;
    uint64_t h = (uint64_t)suffix << 2 | (uint64_t)same_len << 1 | (uint64_t)same;
    uint64_t dts = fmt_zigzag((int64_t)((uint64_t)ts - (uint64_t)prev_ts));
    uint64_t len = fmt_varint_len(h) + (same ? 0 : fmt_varint_len(schema)) +
                   (same_len ? 0 : fmt_varint_len(shared)) + suffix + fmt_varint_len(dts) +
                   t->data_len;
    if (p) {
        uint8_t *q = fmt_put_varint(*p, h);
        if (!same)
            q = fmt_put_varint(q, schema);
        if (!same_len)
            q = fmt_put_varint(q, shared);
        memcpy(q, t->key + shared, suffix);
        q = fmt_put_varint(q + suffix, dts);
        if (t->data_len)
            memcpy(q, t->data, t->data_len);
        *p = q + t->data_len;
    }
    return len;
}

/* Walks records [pl->i0, end) of the frame: with plan_only it also decides
 * where the frame ends (pl->i1, the schema list, the sizes); otherwise it
 * writes the records of the planned frame at *p. */
static void walk(const ts_tensor *const *t, const int64_t *ts, size_t end, plan *pl,
                 int plan_only, uint8_t **p)
{
    const ts_tensor *last[FMT_FRAME_MAX_SCHEMAS] = {0};
    uint32_t cur = UINT32_MAX;
    int64_t prev_ts = 0;
    uint64_t planned = 0;
    if (plan_only) {
        pl->n_sch = 0;
        pl->sch_bytes = pl->rec_bytes = 0;
    }
    size_t j;
    for (j = pl->i0; j < end; j++) {
        uint32_t s = cur;
        if (s == UINT32_MAX || !same_schema(t[pl->sch[s]], t[j]))
            for (s = 0; s < pl->n_sch && !same_schema(t[pl->sch[s]], t[j]); s++)
                ;
        if (s == pl->n_sch) {
            if (!plan_only || pl->n_sch == FMT_FRAME_MAX_SCHEMAS)
                break; /* (a write never gets here: the plan listed it) */
            pl->sch[pl->n_sch++] = j;
            pl->sch_bytes += schema_put(t[j], NULL);
        }
        uint64_t len = record_put(t[j], ts[j], s, s == cur, last[s], prev_ts, plan_only ? NULL : p);
        size_t dts_len = fmt_varint_len(fmt_zigzag((int64_t)((uint64_t)ts[j] - (uint64_t)prev_ts)));
        last[s] = t[j];
        cur = s;
        prev_ts = ts[j];
        if (plan_only) {
            pl->rec_bytes += len;
            /* The frame ends on a size that does not depend on the
             * timestamps (each delta counted as 1 byte): given tensors
             * always split the same way, so measuring them with worst-case
             * timestamps bounds the body whatever the clock says
             * (ts_batch_cost). A frame may run past the target by up to 9
             * bytes a record, far below FMT_FRAME_MAX_LEN. */
            planned += len - dts_len + 1;
            if (pl->sch_bytes + planned >= FMT_FRAME_TARGET) {
                j++;
                break;
            }
        }
    }
    if (plan_only)
        pl->i1 = j;
}

static uint64_t frame_len(const plan *pl, uint64_t first_seq)
{
    return 4 + fmt_varint_len(pl->i1 - pl->i0) + fmt_varint_len(first_seq + pl->i0) +
           fmt_varint_len(pl->n_sch) + pl->sch_bytes + pl->rec_bytes + 4;
}

int pack_encode(const ts_tensor *const *t, const int64_t *ts, size_t n, uint64_t first_seq,
                uint8_t *buf, uint64_t *body_len, pack_loc *locs)
{
    plan pl = {0};
    uint64_t off = 0;
    while (pl.i0 < n) {
        walk(t, ts, n, &pl, 1, NULL);
        uint64_t len = frame_len(&pl, first_seq);
        if (len > FMT_FRAME_MAX_LEN)
            return TS_EOVERFLOW;
        if (buf) {
            uint8_t *p = buf + off;
            put32(p, (uint32_t)(len - 4));
            p = fmt_put_varint(p + 4, pl.i1 - pl.i0);
            p = fmt_put_varint(p, first_seq + pl.i0);
            p = fmt_put_varint(p, pl.n_sch);
            for (uint32_t s = 0; s < pl.n_sch; s++)
                schema_put(t[pl.sch[s]], &p);
            walk(t, ts, pl.i1, &pl, 0, &p);
            put32(p, crc32c(buf + off, (size_t)(len - 4)));
        }
        if (locs)
            for (size_t j = pl.i0; j < pl.i1; j++)
                locs[j] = (pack_loc){off, (uint32_t)len, (uint32_t)(j - pl.i0)};
        off += len;
        pl.i0 = pl.i1;
    }
    if (buf)
        memset(buf + off, 0, (size_t)(fmt_align8(off) - off));
    *body_len = fmt_align8(off);
    return 0;
}

/* ---- decoding --------------------------------------------------------- */

static int bad(const char **why, const char *reason)
{
    *why = reason;
    return TS_ECORRUPT;
}

int pack_open(pack_dec *d, const uint8_t *frame, size_t avail, uint32_t *flen, const char **why)
{
    uint64_t n, seq, n_sch;
    /* Not a memset of the whole decoder: its 64 schema slots are 5.6 KiB,
     * and a point load opens a frame for one record. Slots past
     * n_schemas are never read. */
    d->p = d->end = NULL;
    d->n_records = d->next = d->n_schemas = 0;
    d->first_seq = 0;
    d->ts = 0;
    d->keys = NULL;
    d->cur_schema = -1;
    *flen = 0;
    if (avail < 4)
        return bad(why, "frame cut short");
    uint64_t len = (uint64_t)get32(frame) + 4;
    *flen = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
    if (len > FMT_FRAME_MAX_LEN || len < 4 + 3 + 4)
        return bad(why, "frame length out of range");
    if (len > avail)
        return bad(why, "frame cut short");
    if (crc32c(frame, (size_t)len - 4) != get32(frame + len - 4))
        return bad(why, "frame checksum mismatch");
    const uint8_t *p = frame + 4, *end = frame + len - 4;
    if (fmt_get_varint(&p, end, &n) || fmt_get_varint(&p, end, &seq) ||
        fmt_get_varint(&p, end, &n_sch))
        return bad(why, "frame header truncated");
    if (n == 0 || n > len || n_sch == 0 || n_sch > FMT_FRAME_MAX_SCHEMAS || n_sch > n ||
        seq > UINT64_MAX - (n - 1))
        return bad(why, "frame header fields out of range");
    d->n_records = (uint32_t)n;
    d->first_seq = seq;
    d->n_schemas = (uint32_t)n_sch;
    for (uint32_t s = 0; s < d->n_schemas; s++) {
        pack_schema *sc = &d->schemas[s];
        uint64_t name_len, dim, numel = 1;
        sc->last_key_len = 0;
        memset(sc->shape, 0, sizeof(sc->shape));
        if (fmt_get_varint(&p, end, &name_len) || name_len > TS_MAX_NAME_LEN ||
            name_len + 2 > (uint64_t)(end - p))
            return bad(why, "frame schema out of range");
        sc->name = p;
        sc->name_len = (uint16_t)name_len;
        p += name_len;
        sc->dtype = *p++;
        sc->ndim = *p++;
        size_t es = ts_dtype_size((ts_dtype)sc->dtype);
        if (!es || sc->ndim > TS_MAX_DIMS)
            return bad(why, "frame schema has a bad dtype or rank");
        for (uint32_t k = 0; k < sc->ndim; k++) {
            if (fmt_get_varint(&p, end, &dim))
                return bad(why, "frame schema truncated");
            sc->shape[k] = dim;
            if (dim && numel > FMT_PACK_MAX_DATA / dim)
                numel = FMT_PACK_MAX_DATA + 1;
            else
                numel *= dim;
        }
        if (numel > FMT_PACK_MAX_DATA / es)
            return bad(why, "frame schema larger than a packed record may be");
        sc->data_len = (uint32_t)(numel * es);
    }
    d->keys = malloc(d->n_schemas * sizeof(*d->keys));
    if (!d->keys)
        return TS_ENOMEM;
    d->p = p;
    d->end = end;
    return 0;
}

int pack_next(pack_dec *d, pack_rec *r, const char **why)
{
    uint64_t h, v, dts;
    const uint8_t *p = d->p, *end = d->end;
    if (d->next == d->n_records)
        return p == end ? 1 : bad(why, "frame holds bytes after its last record");
    if (fmt_get_varint(&p, end, &h))
        return bad(why, "frame record truncated");
    uint32_t s = (uint32_t)d->cur_schema;
    if (!(h & 1)) {
        if (fmt_get_varint(&p, end, &v) || v >= d->n_schemas)
            return bad(why, "frame record names no schema");
        s = (uint32_t)v;
    } else if (d->cur_schema < 0) {
        return bad(why, "frame record repeats a schema before the first");
    }
    pack_schema *sc = &d->schemas[s];
    uint64_t suffix = h >> 2, key_len, shared;
    if (h & 2) {
        key_len = sc->last_key_len;
        if (suffix > key_len)
            return bad(why, "frame record key out of range");
        shared = key_len - suffix;
    } else {
        if (fmt_get_varint(&p, end, &shared) || shared > sc->last_key_len)
            return bad(why, "frame record key out of range");
        key_len = shared + suffix;
    }
    if (key_len == 0 || key_len > TS_MAX_KEY_LEN || suffix > (uint64_t)(end - p))
        return bad(why, "frame record key out of range");
    memcpy(d->keys[s] + shared, p, (size_t)suffix);
    p += suffix;
    if (fmt_get_varint(&p, end, &dts))
        return bad(why, "frame record truncated");
    if (sc->data_len > (uint64_t)(end - p))
        return bad(why, "frame record data cut short");
    d->ts = (int64_t)((uint64_t)d->ts + (uint64_t)fmt_unzigzag(dts));
    sc->last_key_len = (uint16_t)key_len;
    d->cur_schema = (int)s;
    if (!r) {
        d->p = p + sc->data_len;
        d->next++;
        return 0;
    }
    *r = (pack_rec){.ord = d->next, .seq = d->first_seq + d->next, .timestamp_ns = d->ts,
                    .key = d->keys[s], .key_len = (uint16_t)key_len, .name = sc->name,
                    .name_len = sc->name_len, .dtype = sc->dtype, .ndim = sc->ndim,
                    .data = p, .data_len = sc->data_len};
    memcpy(r->shape, sc->shape, sizeof(r->shape));
    d->p = p + sc->data_len;
    d->next++;
    return 0;
}

void pack_close(pack_dec *d)
{
    free(d->keys);
    d->keys = NULL;
}
