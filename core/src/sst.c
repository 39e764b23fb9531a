/*
 * sst.c -- building and reading the index + footer that seal a segment.
 *
 * Everything read from disk is bounded before use: entry offsets must fall
 * inside the record area, key slices inside the key heap, and keys must be
 * strictly ascending, so a damaged index is reported at open instead of
 * sending a load astray.
 */
#include "sst.h"

#include "crc32c.h"
#include "format.h"

#include "embeddb/tensor_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building (v2) ---------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Index of off in the sorted table v[0..n) (present by construction). */
static uint64_t frame_no(const uint64_t *v, size_t n, uint64_t off)
{
    size_t lo = 0, hi = n;
    while (lo + 1 < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int sst_build(const memtable *mt, const uint32_t *order, size_t n, uint64_t index_off,
              uint64_t file_no, uint64_t min_seq, uint64_t max_seq, uint8_t **out,
              size_t *out_len)
{
    uint64_t *fr = NULL;
    uint32_t *frlen = NULL;
    uint8_t *buf = NULL;
    size_t n_fr = 0, keys = 0, n_rs = (n + FMT_IDX2_RESTART - 1) / FMT_IDX2_RESTART;
    int rc = TS_ENOMEM;
    /* The frame table: every frame an entry points into, by offset. */
    if (!(fr = malloc((n ? n : 1) * sizeof(*fr))))
        goto out;
    for (size_t i = 0; i < n; i++) {
        keys += mt->entries[order[i]].key_len;
        if (mt->entries[order[i]].ord)
            fr[n_fr++] = mt->entries[order[i]].rec_off;
    }
    qsort(fr, n_fr, sizeof(*fr), cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < n_fr; i++)
        if (!u || fr[u - 1] != fr[i])
            fr[u++] = fr[i];
    n_fr = u;
    if (!(frlen = malloc((n_fr ? n_fr : 1) * sizeof(*frlen))))
        goto out;
    for (size_t i = 0; i < n; i++) {
        const mt_entry *e = &mt->entries[order[i]];
        if (e->ord)
            frlen[frame_no(fr, n_fr, e->rec_off)] = e->rec_len;
    }
    /* Bound: every varint at its longest, the keys unshared. */
    size_t cap = FMT_IDX2_HDR_LEN + keys + n * 5 * FMT_VARINT_MAX + n_rs * (4 + 2 * FMT_VARINT_MAX) +
                 n_fr * FMT_IDX2_FRAME_LEN + FMT_ALIGN + FMT_FOOTER_LEN;
    if (!(buf = calloc(1, cap)))
        goto out;
    uint8_t *ent = buf + FMT_IDX2_HDR_LEN, *p = ent;
    uint8_t *rs = malloc(n_rs * 4 + 1);
    int64_t *tr = malloc((n_rs * 2 + 1) * sizeof(*tr));
    if (!rs || !tr) {
        free(rs);
        free(tr);
        goto out;
    }
    const uint8_t *pk = NULL;
    size_t pk_len = 0;
    uint64_t pframe = 0;
    uint32_t pord = 0;
    for (size_t i = 0; i < n; i++) {
        const mt_entry *e = &mt->entries[order[i]];
        const uint8_t *k = mt_key(mt, e);
        size_t b = i / FMT_IDX2_RESTART;
        if (i % FMT_IDX2_RESTART == 0) {
            put32(rs + 4 * b, (uint32_t)(p - ent));
            pk_len = 0;
            pframe = 0;
            pord = 0;
            tr[2 * b] = tr[2 * b + 1] = e->ts;
        }
        if (e->ts < tr[2 * b])
            tr[2 * b] = e->ts;
        if (e->ts > tr[2 * b + 1])
            tr[2 * b + 1] = e->ts;
        size_t shared = 0;
        while (shared < pk_len && shared < e->key_len && pk[shared] == k[shared])
            shared++;
        size_t unshared = e->key_len - shared;
        int same_len = pk_len == e->key_len;
        p = fmt_put_varint(p, (uint64_t)unshared << 1 | (uint64_t)same_len);
        if (!same_len)
            p = fmt_put_varint(p, shared);
        memcpy(p, k + shared, unshared);
        p += unshared;
        if (e->ord) {
            uint64_t f = frame_no(fr, n_fr, e->rec_off);
            if (pord && f == pframe && e->ord == pord + 1) {
                p = fmt_put_varint(p, 1); /* the record after the previous entry's */
            } else {
                p = fmt_put_varint(p, (uint64_t)e->ord << 1 | 1);
                p = fmt_put_varint(p, fmt_zigzag((int64_t)(f - pframe)));
            }
            pframe = f;
            pord = e->ord;
        } else {
            p = fmt_put_varint(p, (uint64_t)e->hdr_len << 1);
            p = fmt_put_varint(p, e->rec_off);
            p = fmt_put_varint(p, e->rec_len);
            *p++ = e->dtype;
            pord = 0;
        }
        pk = k;
        pk_len = e->key_len;
    }
    size_t ent_len = (size_t)(p - ent);
    memcpy(p, rs, n_rs * 4);
    p += n_rs * 4;
    uint8_t *tsv = p;
    int64_t pmin = 0;
    for (size_t b = 0; b < n_rs; b++) {
        p = fmt_put_varint(p, fmt_zigzag((int64_t)((uint64_t)tr[2 * b] - (uint64_t)pmin)));
        p = fmt_put_varint(p, (uint64_t)tr[2 * b + 1] - (uint64_t)tr[2 * b]);
        pmin = tr[2 * b];
    }
    size_t ts_len = (size_t)(p - tsv);
    free(rs);
    free(tr);
    for (size_t i = 0; i < n_fr; i++, p += FMT_IDX2_FRAME_LEN) {
        put64(p, fr[i]);
        put32(p + 8, frlen[i]);
    }
    put32(buf, (uint32_t)n);
    put32(buf + 4, (uint32_t)n_fr);
    put32(buf + 8, (uint32_t)ent_len);
    put32(buf + 12, (uint32_t)ts_len);
    size_t idx_len = (size_t)fmt_align8((uint64_t)(p - buf));
    sst_footer f = {
        .index_off = index_off,
        .index_len = idx_len,
        .n_entries = (uint32_t)n,
        .index_crc = crc32c(buf, idx_len),
        .min_seq = min_seq,
        .max_seq = max_seq,
        .file_no = file_no,
        .version = 2,
    };
    sst_footer_encode(&f, buf + idx_len);
    *out = buf;
    *out_len = idx_len + FMT_FOOTER_LEN;
    buf = NULL;
    rc = 0;
out:
    free(fr);
    free(frlen);
    free(buf);
    return rc;
}

void sst_footer_encode(const sst_footer *f, uint8_t out[64])
{
    memset(out, 0, 64);
    put64(out, f->index_off);
    put64(out + 8, f->index_len);
    put32(out + 16, f->n_entries);
    put32(out + 20, f->index_crc);
    put64(out + 24, f->min_seq);
    put64(out + 32, f->max_seq);
    put64(out + 40, f->file_no);
    put32(out + 52, crc32c(out, 52));
    memcpy(out + 56, f->version == 1 ? FMT_SST_MAGIC : FMT_SST2_MAGIC, 8);
}

int sst_footer_parse(const uint8_t in[64], sst_footer *f)
{
    if (!memcmp(in + 56, FMT_SST_MAGIC, 8))
        f->version = 1;
    else if (!memcmp(in + 56, FMT_SST2_MAGIC, 8))
        f->version = 2;
    else
        return TS_ECORRUPT;
    if (crc32c(in, 52) != get32(in + 52))
        return TS_ECORRUPT;
    f->index_off = get64(in);
    f->index_len = get64(in + 8);
    f->n_entries = get32(in + 16);
    f->index_crc = get32(in + 20);
    f->min_seq = get64(in + 24);
    f->max_seq = get64(in + 32);
    f->file_no = get64(in + 40);
    return 0;
}

int sst_probe(plat_vfs *vfs, int fd, uint64_t size, sst_footer *f)
{
    uint8_t buf[FMT_FOOTER_LEN];
    if (size < FMT_SEG_HDR_LEN + FMT_FOOTER_LEN)
        return TS_ECORRUPT;
    int rc = plat_read_exact(vfs, fd, buf, sizeof(buf), size - FMT_FOOTER_LEN);
    if (rc)
        return rc == -ENODATA ? TS_ECORRUPT : rc;
    rc = sst_footer_parse(buf, f);
    if (rc)
        return rc;
    if (f->index_off < FMT_SEG_HDR_LEN || f->index_off > size ||
        f->index_len != size - FMT_FOOTER_LEN - f->index_off ||
        f->index_len > SIZE_MAX / 2 || /* held in RAM whole: 32-bit size_t */
        (f->version == 1 && f->index_len < (uint64_t)f->n_entries * FMT_IDX_ENTRY_LEN) ||
        (f->version == 2 && f->index_len < FMT_IDX2_HDR_LEN))
        return TS_ECORRUPT;
    return 0;
}

/* ---- reading --------------------------------------------------------- */

static void v1_entry_at(const sst *s, uint32_t i, sst_entry *e)
{
    const uint8_t *p = s->index + (size_t)i * FMT_IDX_ENTRY_LEN;
    e->rec_off = get64(p);
    e->rec_len = get32(p + 16);
    e->hdr_len = get32(p + 20);
    e->ord = 0;
    e->key = s->index + (size_t)s->f.n_entries * FMT_IDX_ENTRY_LEN + get32(p + 24);
    e->key_len = get16(p + 28);
    e->dtype = p[30];
}

static const char *check_v1(const sst *s)
{
    size_t heap_off = (size_t)s->f.n_entries * FMT_IDX_ENTRY_LEN;
    uint64_t heap_len = s->f.index_len - heap_off;
    const uint8_t *pk = NULL;
    size_t pk_len = 0;
    sst_entry e;
    for (uint32_t i = 0; i < s->f.n_entries; i++) {
        const uint8_t *p = s->index + (size_t)i * FMT_IDX_ENTRY_LEN;
        uint64_t koff = get32(p + 24);
        uint16_t klen = get16(p + 28);
        if (klen == 0 || klen > TS_MAX_KEY_LEN || koff + klen > heap_len)
            return "index key out of bounds";
        v1_entry_at(s, i, &e);
        if (e.rec_off < FMT_SEG_HDR_LEN || e.rec_len < e.hdr_len ||
            e.rec_off > s->f.index_off || e.rec_len > s->f.index_off - e.rec_off)
            return "index entry points outside the record area";
        if (i && mt_key_cmp(pk, pk_len, e.key, e.key_len) >= 0)
            return "index keys not strictly ascending";
        pk = e.key;
        pk_len = e.key_len;
    }
    return NULL;
}

/* A varint from bytes checked before (the index at open). */
static inline uint64_t varint_trusted(const uint8_t **p)
{
    uint64_t v = *(*p)++;
    if (v < 0x80)
        return v;
    v &= 0x7f;
    for (unsigned shift = 7;; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80 || shift >= 63)
            return v;
    }
}

/* Decodes v2 entry i at *pos after entry i-1 (whose key is in e->kbuf and
 * frame in *frame). Every length is bounded, so a damaged index is caught
 * at open; afterwards the same decoder runs on trusted bytes. */
static const char *v2_decode(const sst *s, size_t *pos, uint32_t i, sst_entry *e, uint64_t *frame)
{
    const uint8_t *p = s->ent + *pos, *end = s->ent + s->ent_len;
    uint64_t a, shared, v;
    int restart = i % FMT_IDX2_RESTART == 0;
    size_t plen = restart ? 0 : e->key_len;
    if (restart) {
        *frame = 0;
        e->ord = 0;
    }
    if (fmt_get_varint(&p, end, &a))
        return "index entry truncated";
    uint64_t unshared = a >> 1;
    if (a & 1) {
        if (unshared > plen)
            return "index key out of bounds";
        shared = plen - unshared;
    } else if (fmt_get_varint(&p, end, &shared) || shared > plen) {
        return "index key out of bounds";
    }
    if (shared + unshared == 0 || shared + unshared > TS_MAX_KEY_LEN ||
        unshared > (uint64_t)(end - p))
        return "index key out of bounds";
    memcpy(e->kbuf + shared, p, (size_t)unshared);
    p += unshared;
    e->key = e->kbuf;
    e->key_len = (uint16_t)(shared + unshared);
    if (fmt_get_varint(&p, end, &v))
        return "index entry truncated";
    if (v & 1) {
        uint64_t x = v >> 1, d;
        if (x == 0) {
            if (!e->ord || e->ord == UINT32_MAX)
                return "index entry continues no packed record";
            e->ord++;
        } else {
            if (x > UINT32_MAX || fmt_get_varint(&p, end, &d))
                return "index entry truncated";
            e->ord = (uint32_t)x;
            *frame += (uint64_t)fmt_unzigzag(d);
        }
        if (*frame >= s->n_frames)
            return "index entry names no frame";
        const uint8_t *f = s->frames + *frame * FMT_IDX2_FRAME_LEN;
        e->rec_off = get64(f);
        e->rec_len = get32(f + 8);
        e->hdr_len = 0;
        e->dtype = 0;
    } else {
        uint64_t off, len;
        if (fmt_get_varint(&p, end, &off) || fmt_get_varint(&p, end, &len) || p >= end)
            return "index entry truncated";
        e->hdr_len = (uint32_t)(v >> 1);
        e->ord = 0;
        e->rec_off = off;
        e->rec_len = (uint32_t)len;
        e->dtype = *p++;
        if (v >> 1 > UINT32_MAX || len > UINT32_MAX || e->hdr_len < FMT_REC_FIXED_LEN ||
            e->rec_len < e->hdr_len || off < FMT_SEG_HDR_LEN || off > s->f.index_off ||
            len > s->f.index_off - off)
            return "index entry points outside the record area";
    }
    *pos = (size_t)(p - s->ent);
    return NULL;
}

/* Sets the v2 views and checks the whole index once. */
static const char *check_v2(sst *s)
{
    const uint8_t *b = s->index;
    uint64_t len = s->f.index_len;
    uint32_t n = get32(b), n_fr = get32(b + 4), ent_len = get32(b + 8), ts_len = get32(b + 12);
    uint64_t n_rs = ((uint64_t)n + FMT_IDX2_RESTART - 1) / FMT_IDX2_RESTART;
    if (n != s->f.n_entries)
        return "index entry count differs from the footer's";
    uint64_t need = FMT_IDX2_HDR_LEN + (uint64_t)ent_len + 4 * n_rs + ts_len +
                    (uint64_t)n_fr * FMT_IDX2_FRAME_LEN;
    if (need > len || len - need >= FMT_ALIGN)
        return "index length does not match its tables";
    s->ent = b + FMT_IDX2_HDR_LEN;
    s->ent_len = ent_len;
    s->restarts = s->ent + ent_len;
    const uint8_t *tsv = s->restarts + 4 * n_rs, *tend = tsv + ts_len;
    s->frames = tend;
    s->n_frames = n_fr;
    for (const uint8_t *q = s->frames + (uint64_t)n_fr * FMT_IDX2_FRAME_LEN; q < b + len; q++)
        if (*q)
            return "nonzero index padding";
    uint64_t prev_end = FMT_SEG_HDR_LEN + FMT_BATCH_HDR_LEN;
    for (uint32_t i = 0; i < n_fr; i++) {
        uint64_t off = get64(s->frames + (size_t)i * FMT_IDX2_FRAME_LEN);
        uint32_t flen = get32(s->frames + (size_t)i * FMT_IDX2_FRAME_LEN + 8);
        if (off < prev_end || flen > FMT_FRAME_MAX_LEN || off > s->f.index_off ||
            flen > s->f.index_off - off)
            return "frame table out of order or outside the record area";
        prev_end = off + flen;
    }
    if (!(s->ts_ranges = malloc((n_rs ? n_rs : 1) * 2 * sizeof(int64_t))))
        return "out of memory for the index";
    int64_t pmin = 0;
    s->min_ts = INT64_MAX;
    s->max_ts = INT64_MIN;
    for (uint64_t r = 0; r < n_rs; r++) {
        uint64_t dmin, span;
        if (fmt_get_varint(&tsv, tend, &dmin) || fmt_get_varint(&tsv, tend, &span))
            return "index time table truncated";
        int64_t lo = (int64_t)((uint64_t)pmin + (uint64_t)fmt_unzigzag(dmin));
        if (span > (uint64_t)INT64_MAX - (uint64_t)lo)
            return "index time table out of range";
        s->ts_ranges[2 * r] = lo;
        s->ts_ranges[2 * r + 1] = (int64_t)((uint64_t)lo + span);
        if (lo < s->min_ts)
            s->min_ts = lo;
        if (s->ts_ranges[2 * r + 1] > s->max_ts)
            s->max_ts = s->ts_ranges[2 * r + 1];
        pmin = lo;
    }
    if (tsv != tend)
        return "index time table longer than its blocks";
    /* Every entry: bounds, restart offsets, strictly ascending keys. */
    sst_entry *e = malloc(2 * sizeof(*e));
    const char *why = NULL;
    uint64_t frame = 0;
    size_t pos = 0;
    if (!e)
        return "out of memory for the index";
    e[0].key_len = 0;
    for (uint32_t i = 0; i < n && !why; i++) {
        sst_entry *cur = &e[i & 1], *prev = &e[!(i & 1)];
        if (i % FMT_IDX2_RESTART == 0 && get32(s->restarts + 4 * (i / FMT_IDX2_RESTART)) != pos) {
            why = "index restart point misplaced";
            break;
        }
        /* v2_decode works in place: seed cur with the previous key. */
        if (i) {
            memcpy(cur->kbuf, prev->key, prev->key_len);
            cur->key_len = prev->key_len;
            cur->ord = prev->ord;
        }
        if ((why = v2_decode(s, &pos, i, cur, &frame)))
            break;
        if (i && mt_key_cmp(prev->key, prev->key_len, cur->key, cur->key_len) >= 0)
            why = "index keys not strictly ascending";
    }
    if (!why && pos != ent_len)
        why = "index entries longer than their count";
    free(e);
    return why;
}

int sst_adopt(sst *s, const char **why)
{
    sst_entry *e = NULL;
    s->min_ts = INT64_MIN;
    s->max_ts = INT64_MAX;
    *why = s->f.version == 1 ? check_v1(s) : check_v2(s);
    if (*why)
        return TS_ECORRUPT;
    if (!s->f.n_entries)
        return 0;
    if (!(e = malloc(2 * sizeof(*e))))
        goto oom;
    sst_entry_at(s, 0, &e[0]);
    sst_entry_at(s, s->f.n_entries - 1, &e[1]);
    if (!(s->bounds = malloc((size_t)e[0].key_len + e[1].key_len)))
        goto oom;
    memcpy(s->bounds, e[0].key, e[0].key_len);
    memcpy(s->bounds + e[0].key_len, e[1].key, e[1].key_len);
    s->first_len = e[0].key_len;
    s->last_len = e[1].key_len;
    free(e);
    return 0;
oom:
    free(e);
    *why = "out of memory for the index";
    return TS_ENOMEM;
}

int sst_in_range(const sst *s, const uint8_t *key, size_t key_len)
{
    return s->f.n_entries && mt_key_cmp(key, key_len, s->bounds, s->first_len) >= 0 &&
           mt_key_cmp(key, key_len, s->bounds + s->first_len, s->last_len) <= 0;
}

uint32_t sst_n_restarts(const sst *s)
{
    return s->f.version == 1 ? 0
                             : (uint32_t)((s->f.n_entries + FMT_IDX2_RESTART - 1) / FMT_IDX2_RESTART);
}

int sst_open(plat_vfs *vfs, const char *path, uint64_t file_no, sst *s, char *errbuf,
             size_t errlen)
{
    plat_stat st;
    const char *why = NULL;
    int rc;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->file_no = file_no;
    rc = vfs->open(vfs, path, PLAT_O_RDONLY, &s->fd);
    if (rc) {
        snprintf(errbuf, errlen, "open(%s): %s", path, strerror(-rc));
        goto out;
    }
    rc = vfs->fstat(vfs, s->fd, &st);
    if (rc) {
        snprintf(errbuf, errlen, "fstat(%s): %s", path, strerror(-rc));
        goto out;
    }
    s->file_size = st.size;
    rc = sst_probe(vfs, s->fd, st.size, &s->f);
    if (rc) {
        if (rc == TS_ECORRUPT)
            snprintf(errbuf, errlen, "%s: bad SST footer at offset %llu", path,
                     (unsigned long long)(st.size >= FMT_FOOTER_LEN ? st.size - FMT_FOOTER_LEN : 0));
        else
            snprintf(errbuf, errlen, "pread(%s): %s", path, strerror(-rc));
        goto out;
    }
    if (s->f.file_no != file_no) {
        rc = TS_ECORRUPT;
        snprintf(errbuf, errlen, "%s: footer names file %llu", path,
                 (unsigned long long)s->f.file_no);
        goto out;
    }
    s->index = malloc(s->f.index_len ? s->f.index_len : 1);
    if (!s->index) {
        rc = TS_ENOMEM;
        snprintf(errbuf, errlen, "%s: out of memory for the index", path);
        goto out;
    }
    rc = plat_read_exact(vfs, s->fd, s->index, s->f.index_len, s->f.index_off);
    if (rc) {
        snprintf(errbuf, errlen, "pread(%s): %s", path, strerror(-rc));
        rc = rc == -ENODATA ? TS_ECORRUPT : rc;
        goto out;
    }
    if (crc32c(s->index, s->f.index_len) != s->f.index_crc) {
        rc = TS_ECORRUPT;
        why = "index checksum mismatch";
    } else {
        rc = sst_adopt(s, &why);
    }
    if (rc == TS_ENOMEM) {
        snprintf(errbuf, errlen, "%s: %s", path, why);
        goto out;
    }
    if (rc) {
        snprintf(errbuf, errlen, "%s: %s (index at offset %llu)", path, why,
                 (unsigned long long)s->f.index_off);
        goto out;
    }
    s->path = strdup(path);
    if (!s->path) {
        rc = TS_ENOMEM;
        snprintf(errbuf, errlen, "out of memory");
    }
out:
    if (rc)
        sst_close(vfs, s);
    return rc;
}

void sst_close(plat_vfs *vfs, sst *s)
{
    if (s->fd >= 0)
        vfs->close(vfs, s->fd);
    s->fd = -1;
    if (s->map && vfs->unmap)
        vfs->unmap(vfs, s->map, s->file_size);
    s->map = NULL;
    s->map_tried = 0;
    free(s->index);
    free(s->path);
    free(s->ts_ranges);
    free(s->bounds);
    s->index = NULL;
    s->path = NULL;
    s->ts_ranges = NULL;
    s->bounds = NULL;
}

/* ---- lookups ---------------------------------------------------------- */

static void iter_load(sst_iter *it)
{
    if (it->t->f.version == 1)
        v1_entry_at(it->t, it->i, &it->e);
    else
        v2_decode(it->t, &it->pos, it->i, &it->e, &it->frame);
}

/* Positions it at the first entry of restart block r (v2). */
void sst_iter_block(sst_iter *it, uint32_t r)
{
    it->i = r * FMT_IDX2_RESTART;
    it->pos = get32(it->t->restarts + 4 * (size_t)r);
    it->e.key_len = 0;
    if (it->i < it->t->f.n_entries)
        iter_load(it);
}

void sst_iter_next(sst_iter *it)
{
    if (++it->i < it->t->f.n_entries)
        iter_load(it);
}

void sst_iter_seek(sst_iter *it, const sst *t, const uint8_t *key, size_t key_len)
{
    it->t = t;
    it->frame = 0;
    it->e.ord = 0;
    if (t->f.version == 1) {
        uint32_t lo = 0, hi = t->f.n_entries;
        while (key && lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            v1_entry_at(t, mid, &it->e);
            if (mt_key_cmp(it->e.key, it->e.key_len, key, key_len) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        it->i = lo;
        if (lo < t->f.n_entries)
            v1_entry_at(t, lo, &it->e);
        return;
    }
    if (!t->f.n_entries) {
        it->i = 0;
        return;
    }
    /* The last restart block whose first key is < key, then a walk. */
    uint32_t lo = 0, hi = sst_n_restarts(t);
    while (key && hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        sst_iter_block(it, mid);
        if (mt_key_cmp(it->e.key, it->e.key_len, key, key_len) < 0)
            lo = mid;
        else
            hi = mid;
    }
    sst_iter_block(it, lo);
    while (key && sst_iter_valid(it) && mt_key_cmp(it->e.key, it->e.key_len, key, key_len) < 0)
        sst_iter_next(it);
}

void sst_entry_at(const sst *s, uint32_t i, sst_entry *e)
{
    if (s->f.version == 1) {
        v1_entry_at(s, i, e);
        return;
    }
    /* Decoded in place: an sst_entry carries a 1 KiB key buffer, and a
     * point load should not copy it. The entries before i are skipped by
     * a lean copy of v2_decode (key bytes, frame and ordinal only): the
     * index was checked whole when the SST was opened and is held in RAM,
     * so its bounds checks would only repeat. */
    uint32_t k = i / FMT_IDX2_RESTART * FMT_IDX2_RESTART;
    const uint8_t *p = s->ent + get32(s->restarts + 4 * (size_t)(i / FMT_IDX2_RESTART));
    uint64_t frame = 0;
    size_t key_len = 0;
    uint32_t ord = 0;
    for (; k < i; k++) {
        uint64_t a = varint_trusted(&p), unshared = a >> 1;
        size_t shared = (a & 1) ? key_len - (size_t)unshared : (size_t)varint_trusted(&p);
        memcpy(e->kbuf + shared, p, (size_t)unshared);
        p += unshared;
        key_len = shared + (size_t)unshared;
        uint64_t v = varint_trusted(&p);
        if (!(v & 1)) {
            varint_trusted(&p), varint_trusted(&p), p++; /* offset, length, dtype */
            ord = 0;
        } else if (v >> 1 == 0) {
            ord++;
        } else {
            ord = (uint32_t)(v >> 1);
            frame += (uint64_t)fmt_unzigzag(varint_trusted(&p));
        }
    }
    size_t pos = (size_t)(p - s->ent);
    e->key_len = (uint16_t)key_len;
    e->ord = ord;
    v2_decode(s, &pos, i, e, &frame);
    e->key = e->kbuf;
}

int sst_find(const sst *s, const uint8_t *key, size_t key_len, sst_entry *e)
{
    sst_iter it;
    sst_iter_seek(&it, s, key, key_len);
    if (!sst_iter_valid(&it) || it.e.key_len != key_len || memcmp(it.e.key, key, key_len))
        return 0;
    *e = it.e;
    if (s->f.version == 2)
        e->key = e->kbuf;
    return 1;
}
