/*
 * seg.c -- batch-by-batch segment reader (see seg.h).
 */
#include "seg.h"

#include "format.h"
#include "pack.h"
#include "record.h"

#include "embeddb/tensor_store.h"

#include <stdlib.h>
#include <string.h>

#define DATA_WINDOW (1u << 20)

typedef struct scanner {
    plat_vfs *vfs;
    int fd;
    uint8_t *hdr;        /* record header buffer, grown as needed */
    size_t hdr_cap;
    uint8_t *data;       /* DATA_WINDOW bytes */
    seg_rec *recs;
    size_t recs_cap;
    uint8_t *keys;
    size_t keys_cap;
    const seg_hooks *hooks; /* optional */
} scanner;

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < want) {
        if (c > SIZE_MAX / 2)
            return TS_ENOMEM;
        c *= 2;
    }
    if (c > SIZE_MAX / elem)
        return TS_ENOMEM; /* a 32-bit size_t would wrap */
    void *q = realloc(*p, c * elem);
    if (!q)
        return TS_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Reads what is there of [off, off+len); *got may be short at EOF. */
static int rd(scanner *sc, void *buf, size_t len, uint64_t off, size_t *got)
{
    return sc->vfs->pread(sc->vfs, sc->fd, buf, len, off, got);
}

/* Is there a plausible later batch (valid header, seq above last_seq)? If
 * so the damage at bad_off is corruption, otherwise a torn tail. */
static int later_batch_exists(scanner *sc, uint64_t from, uint64_t end, uint64_t last_seq,
                              int *found)
{
    uint64_t off = fmt_align8(from);
    *found = 0;
    while (off + FMT_BATCH_HDR_LEN <= end) {
        size_t want = DATA_WINDOW;
        size_t got = 0;
        if (want > end - off)
            want = (size_t)(end - off);
        int rc = rd(sc, sc->data, want, off, &got);
        if (rc)
            return rc;
        if (got < FMT_BATCH_HDR_LEN)
            break;
        for (size_t i = 0; i + FMT_BATCH_HDR_LEN <= got; i += FMT_ALIGN) {
            batch_hdr b;
            if (get32(sc->data + i) == FMT_BATCH_MAGIC && !rec_batch_parse(sc->data + i, &b) &&
                b.first_seq > last_seq) {
                *found = 1;
                return 0;
            }
        }
        off += got - FMT_BATCH_HDR_LEN + FMT_ALIGN;
        off = fmt_align8(off);
    }
    return 0;
}

/* Verifies one record at off inside a batch ending at body_end. Returns 0,
 * a negative I/O error, or 1 with *why when the record is incomplete or bad
 * (*incomplete says whether bytes were simply missing). */
static int check_record(scanner *sc, uint64_t off, uint64_t body_end, uint64_t file_end,
                        uint64_t want_seq, rec_meta *m, const char **why, int *incomplete)
{
    size_t need = 0, got = 0;
    int rc;
    *incomplete = 0;
    size_t first = 4096;
    if (first > body_end - off)
        first = (size_t)(body_end - off);
    if ((rc = grow((void **)&sc->hdr, &sc->hdr_cap, first, 1)))
        return rc;
    if ((rc = rd(sc, sc->hdr, first, off, &got)))
        return rc;
    for (;;) {
        rc = rec_parse(sc->hdr, got, m, &need, why);
        if (rc != REC_SHORT)
            break;
        if (need > body_end - off || off + need > file_end) {
            *why = off + need > file_end ? "record header cut short" : "record overruns its batch";
            *incomplete = off + need > file_end;
            return 1;
        }
        if ((rc = grow((void **)&sc->hdr, &sc->hdr_cap, need, 1)))
            return rc;
        if ((rc = rd(sc, sc->hdr, need, off, &got)))
            return rc;
        if (got < need) {
            *why = "record header cut short";
            *incomplete = 1;
            return 1;
        }
    }
    if (rc)
        return 1;
    if (m->seq != want_seq) {
        *why = "record sequence number out of order";
        return 1;
    }
    if (m->rec_len > body_end - off) {
        *incomplete = off + m->rec_len > file_end;
        *why = *incomplete ? "record data cut short" : "record overruns its batch";
        return 1;
    }
    if (sc->hooks && sc->hooks->rec) {
        seg_view v = {.seq = m->seq, .ts = m->timestamp_ns, .key = m->key,
                      .key_len = m->key_len, .name = m->name, .name_len = m->name_len,
                      .dtype = m->dtype, .ndim = m->ndim, .shape = m->shape,
                      .data_len = m->data_len};
        if ((rc = sc->hooks->rec(sc->hooks->ctx, &v)))
            return rc;
    }
    for (uint64_t d = 0; d < m->data_len;) {
        size_t n = DATA_WINDOW;
        uint64_t bad = 0;
        if (n > m->data_len - d)
            n = (size_t)(m->data_len - d);
        if ((rc = rd(sc, sc->data, n, off + m->hdr_len + d, &got)))
            return rc;
        if (got < n) {
            *why = "record data cut short";
            *incomplete = 1;
            return 1;
        }
        /* The window is block-aligned, so its CRCs start at block d/4096. */
        rec_meta sub = *m;
        sub.block_crcs = m->block_crcs + 4 * (d / FMT_BLOCK_LEN);
        sub.data_len = m->data_len - d;
        if (rec_verify_data(&sub, sc->data, n, &bad)) {
            *why = "record data checksum mismatch";
            return 1;
        }
        if (sc->hooks && sc->hooks->data && (rc = sc->hooks->data(sc->hooks->ctx, sc->data, n)))
            return rc;
        d += n;
    }
    return 0;
}

static int add_key(scanner *sc, size_t *n_keys, const uint8_t *key, size_t len)
{
    int rc = grow((void **)&sc->keys, &sc->keys_cap, *n_keys + len, 1);
    if (!rc) {
        memcpy(sc->keys + *n_keys, key, len);
        *n_keys += len;
    }
    return rc;
}

/* Verifies the plain records of the batch at [r, body_end). 0, a negative
 * error, or 1 with *why (and *incomplete). */
static int check_plain(scanner *sc, uint64_t r, uint64_t body_end, uint64_t end,
                       const batch_hdr *b, size_t *n_keys, const char **why, int *incomplete)
{
    for (uint32_t i = 0; i < b->n_records; i++) {
        rec_meta m;
        if (r >= body_end) {
            *why = "batch holds fewer records than it says";
            return 1;
        }
        int rc = check_record(sc, r, body_end, end, b->first_seq + i, &m, why, incomplete);
        if (rc)
            return rc;
        if ((rc = grow((void **)&sc->recs, &sc->recs_cap, (size_t)i + 1, sizeof(seg_rec))))
            return rc;
        sc->recs[i] = (seg_rec){.off = r, .seq = m.seq, .ts = m.timestamp_ns,
                                .rec_len = (uint32_t)m.rec_len, .hdr_len = m.hdr_len,
                                .key_off = *n_keys, .key_len = m.key_len, .dtype = m.dtype};
        if ((rc = add_key(sc, n_keys, m.key, m.key_len)))
            return rc;
        r += m.rec_len;
    }
    if (r != body_end) {
        *why = "batch length does not match its records";
        return 1;
    }
    return 0;
}

/* A packed record (its frame verified) to the hooks. */
static int hook_packed(scanner *sc, const pack_rec *pr)
{
    const seg_hooks *h = sc->hooks;
    int rc = 0;
    if (h && h->rec) {
        seg_view v = {.seq = pr->seq, .ts = pr->timestamp_ns, .key = pr->key,
                      .key_len = pr->key_len, .name = pr->name, .name_len = pr->name_len,
                      .dtype = pr->dtype, .ndim = pr->ndim, .shape = pr->shape,
                      .data_len = pr->data_len};
        rc = h->rec(h->ctx, &v);
    }
    if (!rc && h && h->data && pr->data_len)
        rc = h->data(h->ctx, pr->data, pr->data_len);
    return rc;
}

/* Verifies the frames of a packed batch at [r, body_end): each frame's
 * checksum, records numbered on from the batch's first_seq, exactly
 * n_records of them, then zero padding. Same results as check_plain. */
static int check_packed(scanner *sc, uint64_t r, uint64_t body_end, const batch_hdr *b,
                        size_t *n_keys, const char **why)
{
    uint32_t n = 0;
    int rc = 0;
    while (r < body_end && body_end - r >= FMT_ALIGN && n < b->n_records) {
        /* Frames are mostly about 4 KiB: read 8 KiB, and more only when the
         * length field (bounded first) asks for it. */
        size_t got = 0, want = 2 * FMT_FRAME_TARGET;
        uint32_t flen = 0;
        pack_dec d;
        pack_rec pr;
        if (want > body_end - r)
            want = (size_t)(body_end - r);
        if ((rc = grow((void **)&sc->hdr, &sc->hdr_cap, FMT_FRAME_MAX_LEN, 1)) ||
            (rc = rd(sc, sc->hdr, want, r, &got)))
            return rc;
        if (got >= 4) {
            uint64_t need = (uint64_t)get32(sc->hdr) + 4;
            if (need > got && need <= FMT_FRAME_MAX_LEN && need <= body_end - r &&
                (rc = rd(sc, sc->hdr, (size_t)need, r, &got)))
                return rc;
        }
        rc = pack_open(&d, sc->hdr, got, &flen, why);
        while (!rc && (rc = pack_next(&d, &pr, why)) == 0) {
            if (n >= b->n_records || pr.seq != b->first_seq + n) {
                *why = n >= b->n_records ? "batch holds more records than it says"
                                         : "record sequence number out of order";
                rc = TS_ECORRUPT;
                break;
            }
            if ((rc = grow((void **)&sc->recs, &sc->recs_cap, (size_t)n + 1, sizeof(seg_rec))))
                break;
            sc->recs[n++] = (seg_rec){.off = r, .seq = pr.seq, .ts = pr.timestamp_ns,
                                      .rec_len = flen, .ord = pr.ord + 1, .key_off = *n_keys,
                                      .key_len = pr.key_len, .dtype = pr.dtype};
            if ((rc = add_key(sc, n_keys, pr.key, pr.key_len)) || (rc = hook_packed(sc, &pr)))
                break;
        }
        pack_close(&d);
        if (rc == TS_ECORRUPT)
            return 1;
        if (rc != 1)
            return rc;
        r += flen;
    }
    if (n != b->n_records) {
        *why = "batch holds fewer records than it says";
        return 1;
    }
    /* What is left is the zero padding to a multiple of 8. */
    uint8_t pad[FMT_ALIGN];
    size_t got = 0;
    if (body_end - r >= FMT_ALIGN) {
        *why = "batch length does not match its records";
        return 1;
    }
    if ((rc = rd(sc, pad, (size_t)(body_end - r), r, &got)))
        return rc;
    for (size_t i = 0; i < got; i++)
        if (pad[i]) {
            *why = "nonzero padding after the last frame";
            return 1;
        }
    return 0;
}

int seg_scan(plat_vfs *vfs, int fd, uint32_t version, uint64_t start, uint64_t end,
             uint64_t min_seq, seg_batch_fn fn, void *ctx, seg_result *res)
{
    return seg_scan_hooked(vfs, fd, version, start, end, min_seq, fn, ctx, NULL, res);
}

int seg_scan_hooked(plat_vfs *vfs, int fd, uint32_t version, uint64_t start, uint64_t end,
                    uint64_t min_seq, seg_batch_fn fn, void *ctx, const seg_hooks *hooks,
                    seg_result *res)
{
    scanner sc = {.vfs = vfs, .fd = fd, .hooks = hooks};
    uint64_t off = start;
    int rc = 0;
    memset(res, 0, sizeof(*res));
    res->last_seq = min_seq - 1;
    res->good_end = start;
    sc.data = malloc(DATA_WINDOW);
    if (!sc.data) {
        rc = TS_ENOMEM;
        goto out;
    }
    while (off < end) {
        uint8_t h[FMT_BATCH_HDR_LEN];
        size_t got = 0;
        batch_hdr b;
        const char *why = NULL;
        int incomplete = 0;
        if (end - off < FMT_BATCH_HDR_LEN) {
            why = "batch header cut short";
            incomplete = 1;
        } else {
            if ((rc = rd(&sc, h, sizeof(h), off, &got)))
                goto out;
            if (rec_batch_parse(h, &b))
                why = "bad batch header";
            else if (b.kind == FMT_BATCH_PACKED && version == FMT_VERSION_V1)
                why = "packed batch in a version 1 segment";
            else if (b.first_seq != res->last_seq + 1)
                why = "batch sequence number out of order";
            else if (b.body_len > end - off - FMT_BATCH_HDR_LEN) {
                why = "batch cut short";
                incomplete = 1;
            }
        }
        size_t n_keys = 0;
        if (!why) {
            /* The record table grows as records verify: n_records is only
             * a claim until then. */
            uint64_t r = off + FMT_BATCH_HDR_LEN, body_end = r + b.body_len;
            if (b.kind == FMT_BATCH_PACKED)
                rc = check_packed(&sc, r, body_end, &b, &n_keys, &why);
            else
                rc = check_plain(&sc, r, body_end, end, &b, &n_keys, &why, &incomplete);
            if (rc < 0)
                goto out;
            rc = 0;
        }
        if (why) {
            int found = 0;
            res->bad_off = off;
            res->why = why;
            if (!incomplete && (rc = later_batch_exists(&sc, off + FMT_ALIGN, end, res->last_seq, &found)))
                goto out;
            res->status = found ? SEG_CORRUPT : SEG_TORN;
            break;
        }
        if (fn && (rc = fn(ctx, sc.recs, b.n_records, sc.keys)))
            goto out;
        off += FMT_BATCH_HDR_LEN + b.body_len;
        res->good_end = off;
        res->last_seq = b.first_seq + b.n_records - 1;
        res->n_batches++;
        res->n_records += b.n_records;
    }
out:
    free(sc.hdr);
    free(sc.data);
    free(sc.recs);
    free(sc.keys);
    return rc;
}

int seg_any_batch(plat_vfs *vfs, int fd, uint64_t from, uint64_t end, int *found)
{
    scanner sc = {.vfs = vfs, .fd = fd};
    int rc;
    *found = 0;
    sc.data = malloc(DATA_WINDOW);
    if (!sc.data)
        return TS_ENOMEM;
    rc = later_batch_exists(&sc, from, end, 0, found);
    free(sc.data);
    return rc;
}
