/*
 * sst_stream.c -- a sealed segment read front to back from a stream
 * (contract in embeddb/sst_stream.h).
 *
 * The segment reader (seg.c) reads through a plat_vfs by offset, but only
 * ever forward, going back at most to the start of the record or frame it
 * is reading. So the stream is given to it as a vfs whose one file is a
 * sliding window over the source: a read below the window's start fails
 * (-ESPIPE), a read past its end pulls (and drops what is before the read).
 * The records come first, then the index, then the footer that says where
 * the index starts: the records are scanned until the byte after a batch
 * is not a batch header, the rest is taken as index and footer and checked
 * as sst_open checks them, and the footer must put the index exactly there.
 */
#include "embeddb/sst_stream.h"

#include "crc32c.h"
#include "format.h"
#include "manifest.h"
#include "record.h"
#include "seg.h"
#include "sst.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIN_START ((1u << 20) + FMT_FRAME_MAX_LEN)
/* The largest read seg.c makes: a record header of a 4 GiB tensor (4 MiB of
 * block CRCs, key, name, shape), or a 1 MiB data window. */
#define WIN_MAX (5u << 20)
#define STOP 1 /* the batch callback's "the records end here" */

typedef struct win {
    plat_vfs vfs;      /* first member: self is the window */
    ts_pull_fn pull;
    void *pull_ctx;
    uint64_t size;     /* bytes the file has */
    uint64_t base;     /* file offset of buf[0] */
    uint8_t *buf;
    size_t have, cap;
} win;

/* Pulls into w->buf + w->have up to want bytes (not past the file's end). */
static int win_fill(win *w, size_t want)
{
    while (want) {
        size_t got = 0;
        int rc = w->pull(w->pull_ctx, w->buf + w->have, want, &got);
        if (rc)
            return rc;
        if (!got)
            return -EIO; /* the source ended inside the file it declared */
        w->have += got;
        want -= got;
    }
    return 0;
}

static int win_pread(plat_vfs *self, int fd, void *out, size_t len, uint64_t off, size_t *got)
{
    win *w = (win *)self;
    uint64_t end = w->base + w->have;
    int rc = 0;
    (void)fd;
    *got = 0;
    if (off < w->base)
        return -ESPIPE;
    if (off >= w->size)
        return 0;
    if (len > w->size - off)
        len = (size_t)(w->size - off);
    if (off + len > end) {
        size_t keep = off < end ? (size_t)(end - off) : 0;
        memmove(w->buf, w->buf + (w->have - keep), keep);
        w->have = keep;
        while (end < off) { /* skip what nobody reads */
            size_t n = off - end < w->cap ? (size_t)(off - end) : w->cap;
            if ((rc = win_fill(w, n)))
                return rc;
            w->have = 0;
            end += n;
        }
        w->base = off;
        if (len > w->cap) {
            uint8_t *p = len > WIN_MAX ? NULL : realloc(w->buf, len);
            if (!p)
                return len > WIN_MAX ? -EFBIG : TS_ENOMEM;
            w->buf = p;
            w->cap = len;
        }
        /* Pull what was asked and as much after it as fits: fewer calls. */
        uint64_t room = w->size - (w->base + w->have);
        size_t want = w->cap - w->have;
        if (want > room)
            want = (size_t)room;
        if ((rc = win_fill(w, want)))
            return rc;
    }
    memcpy(out, w->buf + (off - w->base), len);
    *got = len;
    return 0;
}

typedef struct sctx {
    win *w;
    const ts_sst_visitor *v;
    uint64_t file_no;
    uint64_t next;      /* offset after the last verified batch */
    uint64_t last_seq;  /* of its last record */
    uint64_t n_records;
    char name[TS_MAX_NAME_LEN + 1];
} sctx;

/* 1 when a batch header's magic is at off (and a header fits before the
 * footer), 0 when not, or a negative read error. */
static int batch_at(win *w, uint64_t off)
{
    uint8_t m[4];
    size_t got = 0;
    if (off + FMT_BATCH_HDR_LEN > w->size - FMT_FOOTER_LEN)
        return 0;
    int rc = win_pread(&w->vfs, 0, m, sizeof(m), off, &got);
    return rc ? rc : get32(m) == FMT_BATCH_MAGIC;
}

static int on_batch(void *ctx, const seg_rec *recs, size_t n, const uint8_t *keys)
{
    sctx *c = ctx;
    const seg_rec *r = &recs[n - 1];
    int rc = 0;
    (void)keys;
    /* Records are 8-aligned and a packed body is padded to 8. */
    c->next = fmt_align8(r->off + r->rec_len);
    c->last_seq = r->seq;
    c->n_records += n;
    if (c->v && c->v->batch && (rc = c->v->batch(c->v->ctx)))
        return rc;
    rc = batch_at(c->w, c->next);
    return rc < 0 ? rc : rc ? 0 : STOP;
}

static int on_rec(void *ctx, const seg_view *r)
{
    sctx *c = ctx;
    ts_entry e = {.key = r->key, .key_len = r->key_len, .name = c->name,
                  .dtype = (ts_dtype)r->dtype, .ndim = r->ndim, .timestamp_ns = r->ts,
                  .data_len = r->data_len, .seq = r->seq, .file_no = c->file_no};
    memcpy(c->name, r->name, r->name_len);
    c->name[r->name_len] = 0;
    memcpy(e.shape, r->shape, sizeof(uint64_t) * r->ndim);
    return c->v->tensor(c->v->ctx, &e);
}

static int on_data(void *ctx, const uint8_t *p, size_t len)
{
    sctx *c = ctx;
    return c->v->data(c->v->ctx, p, len);
}

/* Reads [off, size) whole into *out: the index and the footer. */
static int read_tail(win *w, uint64_t off, uint8_t **out)
{
    size_t len = (size_t)(w->size - off), done = 0;
    uint8_t *p = malloc(len);
    int rc = p ? 0 : TS_ENOMEM;
    while (!rc && done < len) {
        size_t n = len - done < (1u << 20) ? len - done : (1u << 20), got = 0;
        if (!(rc = win_pread(&w->vfs, 0, p + done, n, off + done, &got)))
            done += got;
    }
    if (rc)
        free(p);
    else
        *out = p;
    return rc;
}

/* Checks the index and footer after the records (which end at off). */
static int check_tail(sctx *c, uint64_t base_seq, uint64_t off, ts_sst_info *info, char *err,
                      size_t errlen)
{
    win *w = c->w;
    uint8_t foot[FMT_FOOTER_LEN], *tail;
    sst s;
    const char *why = NULL;
    int rc = 0;
    memset(&s, 0, sizeof(s));
    s.fd = -1;
    if (w->size - off - FMT_FOOTER_LEN > TS_SST_STREAM_INDEX_MAX) {
        /* Too big to hold, or not an index at all: the footer tells. */
        size_t got = 0;
        if ((rc = win_pread(&w->vfs, 0, foot, sizeof(foot), w->size - FMT_FOOTER_LEN, &got)))
            goto io;
        if (sst_footer_parse(foot, &s.f) || s.f.index_off != off)
            goto not_index;
        snprintf(err, errlen, "offset %" PRIu64 ": an index of %" PRIu64 " bytes, more than "
                 "the %u MiB a stream reader holds", off, s.f.index_len,
                 TS_SST_STREAM_INDEX_MAX >> 20);
        return TS_ECORRUPT;
    }
    if ((rc = read_tail(w, off, &tail)))
        goto io;
    s.index = tail; /* s owns it now: sst_close frees it */
    s.file_no = c->file_no;
    s.file_size = w->size;
    if (sst_footer_parse(tail + (w->size - off - FMT_FOOTER_LEN), &s.f)) {
        snprintf(err, errlen, "offset %" PRIu64 ": bad SST footer", w->size - FMT_FOOTER_LEN);
        rc = TS_ECORRUPT;
        goto out;
    }
    if (s.f.index_off != off)
        goto not_index;
    if (s.f.file_no != c->file_no || s.f.index_len != w->size - FMT_FOOTER_LEN - off ||
        s.f.min_seq != base_seq || s.f.max_seq != c->last_seq ||
        (s.f.version == 1 && s.f.index_len < (uint64_t)s.f.n_entries * FMT_IDX_ENTRY_LEN) ||
        (s.f.version == 2 && s.f.index_len < FMT_IDX2_HDR_LEN)) {
        snprintf(err, errlen, "offset %" PRIu64 ": the footer disagrees with the file (number "
                 "%" PRIu64 ", seqs %" PRIu64 "..%" PRIu64 " for records %" PRIu64 "..%" PRIu64
                 ")", w->size - FMT_FOOTER_LEN, s.f.file_no, s.f.min_seq, s.f.max_seq,
                 base_seq, c->last_seq);
        rc = TS_ECORRUPT;
        goto out;
    }
    if (crc32c(tail, (size_t)s.f.index_len) != s.f.index_crc) {
        why = "index checksum mismatch";
        rc = TS_ECORRUPT;
    } else {
        rc = sst_adopt(&s, &why);
    }
    if (rc) {
        snprintf(err, errlen, "offset %" PRIu64 ": %s", off, why);
        goto out;
    }
    if (s.f.n_entries > c->n_records) {
        snprintf(err, errlen, "offset %" PRIu64 ": the index names %" PRIu32 " keys, the "
                 "records hold %" PRIu64, off, s.f.n_entries, c->n_records);
        rc = TS_ECORRUPT;
        goto out;
    }
    if (info)
        *info = (ts_sst_info){.min_seq = base_seq, .max_seq = c->last_seq,
                              .n_records = c->n_records, .n_entries = s.f.n_entries};
    goto out;
not_index:
    snprintf(err, errlen, "offset %" PRIu64 ": bad batch header (not a batch, and not where "
             "the footer puts the index)", off);
    rc = TS_ECORRUPT;
    goto out;
io:
    snprintf(err, errlen, "reading offset %" PRIu64 ": %s", off, ts_strerror(rc));
out:
    sst_close(&w->vfs, &s);
    return rc;
}

int ts_sst_stream(ts_pull_fn pull, void *pull_ctx, uint64_t size, uint64_t file_no,
                  const ts_sst_visitor *v, ts_sst_info *info, char *err, size_t errlen)
{
    win w = {.pull = pull, .pull_ctx = pull_ctx, .size = size};
    sctx c = {.w = &w, .v = v, .file_no = file_no};
    seg_hooks hooks = {.rec = v && v->tensor ? on_rec : NULL,
                       .data = v && v->data ? on_data : NULL, .ctx = &c};
    uint8_t hdr[FMT_SEG_HDR_LEN];
    uint64_t no = 0, base = 0;
    uint32_t version = 0;
    seg_result res;
    size_t got = 0;
    int rc = 0;
    err[0] = 0;
    w.vfs.pread = win_pread;
    if (size < FMT_SEG_HDR_LEN + FMT_FOOTER_LEN) {
        snprintf(err, errlen, "%" PRIu64 " bytes: too short for a sealed segment", size);
        rc = TS_ECORRUPT;
        goto out;
    }
    if (!(w.buf = malloc(WIN_START))) {
        rc = TS_ENOMEM;
        goto io;
    }
    w.cap = WIN_START;
    if ((rc = win_pread(&w.vfs, 0, hdr, sizeof(hdr), 0, &got)))
        goto io;
    if (seg_hdr_parse(hdr, &no, &base, &version) || no != file_no) {
        snprintf(err, errlen, "offset 0: %s", no != file_no && !seg_hdr_parse(hdr, &no, &base,
                 &version) ? "segment header names another file" : "bad segment header");
        rc = TS_ECORRUPT;
        goto out;
    }
    c.next = FMT_SEG_HDR_LEN;
    c.last_seq = base - 1;
    if ((rc = batch_at(&w, c.next)) < 0)
        goto io;
    if (rc) {
        rc = seg_scan_hooked(&w.vfs, 0, version, FMT_SEG_HDR_LEN, size - FMT_FOOTER_LEN, base,
                             on_batch, &c, &hooks, &res);
        if (rc < 0)
            goto io;
        if (rc != STOP) { /* the scan met damage, or ran into the footer */
            snprintf(err, errlen, "offset %" PRIu64 ": %s", res.status ? res.bad_off : c.next,
                     res.status ? res.why : "no index before the footer");
            rc = TS_ECORRUPT;
            goto out;
        }
    }
    rc = check_tail(&c, base, c.next, info, err, errlen);
    goto out;
io:
    if (rc == -EFBIG) { /* seg.c asked for more than any valid record header */
        snprintf(err, errlen, "offset %" PRIu64 ": a record header larger than %u MiB",
                 w.base, WIN_MAX >> 20);
        rc = TS_ECORRUPT;
    } else {
        snprintf(err, errlen, "reading offset %" PRIu64 ": %s", w.base + w.have,
                 rc > -4096 ? strerror(-rc) : ts_strerror(rc));
    }
out:
    free(w.buf);
    return rc;
}

int ts_manifest_parse(const void *buf, size_t len, uint64_t **live, size_t *n, char *err,
                      size_t errlen)
{
    uint64_t wal_no = 0;
    const char *why = NULL;
    int rc = man_decode(buf, len, &wal_no, live, n, &why);
    if (rc == TS_ECORRUPT)
        snprintf(err, errlen, "%s", why ? why : "bad MANIFEST");
    else if (rc)
        snprintf(err, errlen, "%s", ts_strerror(rc));
    return rc;
}
