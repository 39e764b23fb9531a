/*
 * read.c -- the read path: point loads, previews, ordered scans, verify.
 *
 * A key is looked up in the MemTable, then in the key map of every live SST
 * (keymap.h; without one, the SSTs newest first, each skipped when the key
 * falls outside its first..last key). The record is
 * then read with one pread straight into the allocation handed to the
 * caller, and checked: header checksum, the key itself, and the 4 KiB block
 * checksums of every data byte returned. Scans merge the MemTable and every
 * SST index with a heap, newest source winning on equal keys.
 */
#include "store_int.h"

#include "fcache.h"
#include "format.h"
#include "pack.h"
#include "record.h"
#include "seg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loc {
    int fd;
    const uint8_t *map;  /* the whole file when mapped (then fd is -1) */
    uint64_t map_len;
    const char *path;
    uint64_t file_no;
    uint64_t rec_off;
    uint32_t rec_len, hdr_len;
    uint32_t ord;       /* 0: plain record; k + 1: record k of the frame */
    uint8_t dtype;
    int in_mt;
} loc;

static void wal_loc(ts_store *s, const mt_entry *e, loc *l, char *path)
{
    store__file_path(s, "wal", s->wal_no, path);
    *l = (loc){.fd = s->wal_fd, .path = path, .file_no = s->wal_no, .rec_off = e->rec_off,
               .rec_len = e->rec_len, .hdr_len = e->hdr_len, .ord = e->ord, .dtype = e->dtype,
               .in_mt = 1};
}

/* Maps t whole when the budget has room (once: a refusal is final). A
 * failed mmap is no error: reads go on with pread. */
static void sst_try_map(ts_store *s, sst *t)
{
    int fd = -1;
    const void *addr = NULL;
    t->map_tried = 1;
    if (!s->vfs->map || t->file_size > s->opts.mmap_bytes - s->mapped ||
        store__sst_fd(s, t, &fd) || s->vfs->map(s->vfs, fd, t->file_size, &addr))
        return;
    t->map = addr;
    s->mapped += t->file_size;
}

static int sst_loc(ts_store *s, sst *t, const sst_entry *e, loc *l)
{
    int fd = -1, rc = 0;
    if (!t->map && !t->map_tried && s->opts.mmap_bytes)
        sst_try_map(s, t);
    if (!t->map)
        rc = store__sst_fd(s, t, &fd);
    *l = (loc){.fd = fd, .map = t->map, .map_len = t->file_size, .path = t->path,
               .file_no = t->file_no, .rec_off = e->rec_off, .rec_len = e->rec_len,
               .hdr_len = e->hdr_len, .ord = e->ord, .dtype = e->dtype};
    return rc;
}

/* len bytes at off of l's file: copied from the mapping, or one pread.
 * -ENODATA when the file ends first. */
static int read_at(ts_store *s, const loc *l, void *buf, size_t len, uint64_t off)
{
    if (!l->map)
        return plat_read_exact(s->vfs, l->fd, buf, len, off);
    if (off > l->map_len || len > l->map_len - off)
        return -ENODATA;
    memcpy(buf, l->map + off, len);
    return 0;
}

/* Where the newest version of a key is: in the MemTable (me), else in the
 * newest SST whose index holds it (t, e). */
typedef struct hit {
    const mt_entry *me;
    sst *t;
    sst_entry e;
} hit;

/* Finds key without opening anything: 1 and *h when found, else 0. */
static int find(ts_store *s, const uint8_t *key, size_t key_len, hit *h)
{
    h->me = mt_get(&s->mt, key, key_len);
    h->t = NULL;
    if (h->me)
        return 1;
    size_t j;
    if (!s->km_on) {
        keymap_rebuild(&s->km, s->ssts, s->n_ssts);
        s->km_on = 1;
    }
    int found = keymap_find(&s->km, s->ssts, s->n_ssts, key, key_len, &j, &h->e);
    if (found >= 0) {
        h->t = found ? &s->ssts[j] : NULL;
        return found;
    }
    /* The map ran out of memory: search the SSTs newest first. */
    s->st.keymap_fallbacks++;
    for (size_t i = s->n_ssts; i-- > 0;) {
        if (sst_in_range(&s->ssts[i], key, key_len) && sst_find(&s->ssts[i], key, key_len, &h->e)) {
            h->t = &s->ssts[i];
            return 1;
        }
    }
    return 0;
}

static int locate(ts_store *s, const uint8_t *key, size_t key_len, loc *l, char *path)
{
    hit h;
    if (!find(s, key, key_len, &h))
        return TS_ENOTFOUND;
    if (h.me) {
        wal_loc(s, h.me, l, path);
        return 0;
    }
    return sst_loc(s, h.t, &h.e, l);
}

int store__has_key(ts_store *s, const uint8_t *key, size_t key_len)
{
    hit h;
    return find(s, key, key_len, &h);
}

/* Bytes of n elements of dtype (UINT64_MAX when that overflows). */
static uint64_t elems_bytes(uint8_t dtype, uint64_t n)
{
    size_t es = ts_dtype_size((ts_dtype)dtype);
    return es && n <= UINT64_MAX / es ? n * es : UINT64_MAX;
}

/* The frame last read, with its decoder left after the record last asked
 * for: a scan asks for the records of a frame mostly in order, so it reads
 * each frame once and decodes it once. Only SST frames are kept (immutable;
 * file numbers are never reused); a WAL frame is used once and dropped,
 * since a cut-back append may rewrite its offset. */
struct frame_cache {
    uint64_t file_no, off;
    uint32_t len;
    int keep;               /* may serve the next request */
    int open;               /* d is open over buf */
    uint8_t *buf;
    size_t cap;
    pack_dec d;
    pack_rec r;             /* the record d decoded last */
};

void store__frame_cache_free(ts_store *s)
{
    if (s->fc) {
        if (s->fc->open)
            pack_close(&s->fc->d);
        free(s->fc->buf);
        free(s->fc);
        s->fc = NULL;
    }
}

static int frame_corrupt(ts_store *s, const loc *l, const char *why)
{
    return store__err(s, TS_ECORRUPT, "%s: frame at offset %" PRIu64 ": %s", l->path, l->rec_off,
                      why);
}

/* Reads the frame at l (or finds it cached) and decodes it up to record
 * l->ord - 1, checking the frame's checksum and that the record holds key
 * (when given). *r borrows the cache until the next call. */
static int frame_read(ts_store *s, const loc *l, const uint8_t *key, size_t key_len,
                      const pack_rec **r)
{
    struct frame_cache *c = s->fc;
    const char *why = NULL;
    uint32_t flen = 0;
    int rc = 0;
    if (!c && !(c = s->fc = calloc(1, sizeof(*c))))
        return store__err(s, TS_ENOMEM, "out of memory decoding a frame");
    int cached = c->keep && c->open && c->file_no == l->file_no && c->off == l->rec_off &&
                 c->len == l->rec_len;
    c->keep = 0;
    if (!cached) {
        if (c->open)
            pack_close(&c->d);
        c->open = 0;
        if (l->rec_len > c->cap) {
            uint8_t *b = realloc(c->buf, l->rec_len);
            if (!b)
                return store__err(s, TS_ENOMEM, "out of memory loading a %u-byte frame",
                                  l->rec_len);
            c->buf = b;
            c->cap = l->rec_len;
        }
        /* Copied even from a mapping: the checksum covers the bytes then
         * decoded, which a page re-read from flash could not change. */
        rc = read_at(s, l, c->buf, l->rec_len, l->rec_off);
        if (rc == -ENODATA) {
            why = "frame extends past the end of the file";
            goto corrupt;
        }
        if (rc)
            return store__err(s, rc, "pread(%s, offset %" PRIu64 "): %s", l->path, l->rec_off,
                              strerror(-rc));
    }
    if (!cached || c->d.next > l->ord) {
        /* Not cached, or past the record wanted: decode from the start. */
        if (c->open)
            pack_close(&c->d);
        c->open = 0;
        rc = pack_open(&c->d, c->buf, l->rec_len, &flen, &why);
        if (rc == TS_ENOMEM)
            return store__err(s, rc, "out of memory decoding a frame");
        if (rc)
            goto corrupt;
        c->open = 1;
        if (flen != l->rec_len) {
            why = "frame length differs from the index";
            goto corrupt;
        }
    }
    /* Records before the one wanted are checked but not copied out. */
    while (c->d.next + 1 < l->ord && (rc = pack_next(&c->d, NULL, &why)) == 0)
        ;
    if (!rc && c->d.next < l->ord)
        rc = pack_next(&c->d, &c->r, &why);
    if (rc == 1)
        why = "index points past the frame's last record";
    if (rc)
        goto corrupt;
    if (key && (c->r.key_len != key_len || memcmp(c->r.key, key, key_len))) {
        why = "index points at a record of another key";
        goto corrupt;
    }
    c->file_no = l->file_no;
    c->off = l->rec_off;
    c->len = l->rec_len;
    c->keep = !l->in_mt;
    *r = &c->r;
    return 0;
corrupt:
    if (c->open)
        pack_close(&c->d);
    c->open = 0;
    return frame_corrupt(s, l, why);
}

/* A packed record copied into one tensor allocation (at most max_elems
 * elements of its data). */
static int tensor_from_rec(ts_store *s, const pack_rec *r, uint64_t max_elems, ts_tensor **out)
{
    size_t head = (sizeof(ts_tensor) + 15) & ~(size_t)15;
    uint64_t max_data = elems_bytes(r->dtype, max_elems);
    size_t data_len = r->data_len < max_data ? r->data_len : (size_t)max_data;
    uint8_t *mem = malloc(head + r->data_len + r->key_len + r->name_len + 1);
    if (!mem)
        return store__err(s, TS_ENOMEM, "out of memory loading a tensor");
    ts_tensor *t = (ts_tensor *)(void *)mem;
    uint8_t *data = mem + head, *k = data + r->data_len;
    char *name = (char *)k + r->key_len;
    if (r->data_len)
        memcpy(data, r->data, r->data_len);
    memcpy(k, r->key, r->key_len);
    memcpy(name, r->name, r->name_len);
    name[r->name_len] = 0;
    *t = (ts_tensor){.key = k, .key_len = r->key_len, .name = name, .dtype = (ts_dtype)r->dtype,
                     .ndim = r->ndim, .timestamp_ns = r->timestamp_ns, .data = data,
                     .data_len = data_len, .seq = r->seq};
    memcpy(t->shape, r->shape, sizeof(t->shape));
    *out = t;
    return 0;
}

/* Packed records: copies what the frame holds into one tensor allocation. */
static int read_packed(ts_store *s, const loc *l, const uint8_t *key, size_t key_len,
                       uint64_t max_elems, ts_tensor **out)
{
    const pack_rec *r = NULL;
    int rc = frame_read(s, l, key, key_len, &r);
    return rc ? rc : tensor_from_rec(s, r, max_elems, out);
}

static int is_newest(ts_store *s, const uint8_t *key, size_t key_len, const loc *l);

/* A packed SST record through the cache (fcache.h), on a miss: reads and
 * checks its frame like read_packed, loads the record and keeps it as a
 * row, and, while there is room, the frame's other records that are their
 * keys' newest versions. */
static int load_cached(ts_store *s, const loc *l, const uint8_t *key, size_t key_len,
                       uint64_t max_elems, ts_tensor **out)
{
    const pack_rec *r = NULL;
    int rc = frame_read(s, l, key, key_len, &r);
    if (rc || (rc = tensor_from_rec(s, r, max_elems, out)))
        return rc;
    fcache_put(&s->cache, r, 1);
    /* The whole frame decodes (its CRC was checked when it was read);
     * decode it again from the start, keeping the newest versions while
     * there is room. */
    struct frame_cache *c = s->fc;
    pack_dec d;
    pack_rec x;
    uint32_t flen;
    const char *why;
    if (pack_open(&d, c->buf, l->rec_len, &flen, &why))
        return 0;
    while (pack_next(&d, &x, &why) == 0 && fcache_room(&s->cache, &x)) {
        loc at = *l;
        at.ord = x.ord + 1;
        if (at.ord != l->ord && is_newest(s, x.key, x.key_len, &at))
            fcache_put(&s->cache, &x, 0);
    }
    pack_close(&d);
    return 0;
}

/* Reads the record at l into a new tensor, returning at most max_elems
 * elements (a plain record's whole 4 KiB blocks are read and checked). */
static int read_tensor(ts_store *s, const loc *l, const uint8_t *key, size_t key_len,
                       uint64_t max_elems, ts_tensor **out)
{
    rec_meta m;
    size_t need = 0;
    const char *why = NULL;
    uint64_t bad = 0;
    if (l->ord)
        return read_packed(s, l, key, key_len, max_elems, out);
    uint64_t max_data = elems_bytes(l->dtype, max_elems);
    uint64_t data_room = l->rec_len - l->hdr_len;
    if (max_data < data_room) {
        uint64_t blocks = (max_data + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN * FMT_BLOCK_LEN;
        if (blocks < data_room)
            data_room = blocks;
    }
    size_t head = (sizeof(ts_tensor) + 15) & ~(size_t)15;
    if (l->hdr_len + data_room > SIZE_MAX - head - TS_MAX_NAME_LEN - 1)
        return store__err(s, TS_EOVERFLOW, "%s: record at offset %" PRIu64 " is too large to load "
                          "here", l->path, l->rec_off);
    size_t read_len = (size_t)(l->hdr_len + data_room);
    uint8_t *mem = malloc(head + read_len + TS_MAX_NAME_LEN + 1);
    int rc;
    if (!mem)
        return store__err(s, TS_ENOMEM, "out of memory loading %zu bytes", read_len);
    ts_tensor *t = (ts_tensor *)(void *)mem;
    uint8_t *rec = mem + head;
    rc = read_at(s, l, rec, read_len, l->rec_off);
    if (rc == -ENODATA) {
        why = "record extends past the end of the file";
        goto corrupt;
    }
    if (rc) {
        store__err(s, rc, "pread(%s, offset %" PRIu64 "): %s", l->path, l->rec_off, strerror(-rc));
        goto out;
    }
    if (rec_parse(rec, read_len, &m, &need, &why)) {
        if (!why) /* REC_SHORT: the header runs past what the index said */
            why = "record header longer than its index entry says";
        goto corrupt;
    }
    /* data_room and read_len came from the index: they bound the data only
     * if the record's own header agrees. */
    if (m.hdr_len != l->hdr_len || m.rec_len != l->rec_len) {
        why = "index lengths differ from the record's header";
        goto corrupt;
    }
    if (m.key_len != key_len || memcmp(m.key, key, key_len)) {
        why = "index points at a record of another key";
        goto corrupt;
    }
    uint64_t have = m.data_len < data_room ? m.data_len : data_room;
    if (rec_verify_data(&m, rec + m.hdr_len, have, &bad)) {
        why = "data checksum mismatch";
        goto corrupt;
    }
    memset(t, 0, sizeof(*t));
    char *name = (char *)rec + read_len;
    memcpy(name, m.name, m.name_len);
    name[m.name_len] = 0;
    t->key = m.key;
    t->key_len = m.key_len;
    t->name = name;
    t->dtype = (ts_dtype)m.dtype;
    t->ndim = m.ndim;
    memcpy(t->shape, m.shape, sizeof(t->shape));
    t->timestamp_ns = m.timestamp_ns;
    t->data = rec + m.hdr_len;
    t->data_len = (size_t)(have < max_data ? have : max_data);
    t->seq = m.seq;
    *out = t;
    return 0;
corrupt:
    rc = store__err(s, TS_ECORRUPT, "%s: record at offset %" PRIu64 ": %s", l->path,
                    l->rec_off + (bad ? l->hdr_len + bad : 0), why);
out:
    free(mem);
    return rc;
}

static int load(ts_store *s, const void *key, size_t key_len, uint64_t max_elems,
                ts_tensor **out)
{
    char path[STORE_PATH_MAX];
    loc l;
    int rc;
    *out = NULL;
    if (!key || key_len == 0 || key_len > TS_MAX_KEY_LEN)
        return store__err(s, TS_EINVAL, "key must be 1..%d bytes", TS_MAX_KEY_LEN);
    pack_rec r;
    if (s->cache.n_rows && !mt_get(&s->mt, key, key_len) &&
        fcache_get(&s->cache, key, key_len, &r))
        return tensor_from_rec(s, &r, max_elems, out);
    rc = locate(s, key, key_len, &l, path);
    if (rc == TS_ENOTFOUND)
        return store__err(s, rc, "no tensor under that key");
    if (rc)
        return rc;
    if (l.ord && !l.in_mt && s->cache.budget)
        return load_cached(s, &l, key, key_len, max_elems, out);
    return read_tensor(s, &l, key, key_len, max_elems, out);
}

int ts_load(ts_store *s, const void *key, size_t key_len, ts_tensor **out)
{
    return load(s, key, key_len, UINT64_MAX, out);
}

int ts_load_preview(ts_store *s, const void *key, size_t key_len, uint64_t n, ts_tensor **out)
{
    return load(s, key, key_len, n, out);
}

/* ---- scans ------------------------------------------------------------ */

/* A time window [from, to); on = 0 means every timestamp. */
typedef struct window {
    int on;
    int64_t from, to;
} window;

/* to_ns = INT64_MAX means no upper bound (so a timestamp of INT64_MAX is
 * inside [from, INT64_MAX)); from_ns = INT64_MIN is no lower bound anyway. */
static int below_to(const window *w, int64_t ts)
{
    return ts < w->to || w->to == INT64_MAX;
}

static int overlaps(const window *w, int64_t lo, int64_t hi)
{
    return !w->on || (below_to(w, lo) && hi >= w->from);
}

typedef struct source {
    int rank;               /* 0 = newest */
    sst *t;                 /* NULL for the MemTable */
    sst_iter it;            /* SSTs */
    const uint32_t *order;  /* MemTable sorted view */
    size_t pos, end;
} source;

static int src_valid(const source *src)
{
    return src->t ? sst_iter_valid(&src->it) : src->pos < src->end;
}

static void src_key(const ts_store *s, const source *src, const uint8_t **key, size_t *len)
{
    if (src->t) {
        *key = src->it.e.key;
        *len = src->it.e.key_len;
    } else {
        const mt_entry *e = &s->mt.entries[src->order[src->pos]];
        *key = mt_key(&s->mt, e);
        *len = e->key_len;
    }
}

/* Moves a v2 SST source past restart blocks wholly outside the window. */
static void src_skip(source *src, const window *w)
{
    const sst *t = src->t;
    if (!w->on || !t || t->f.version == 1)
        return;
    while (sst_iter_valid(&src->it)) {
        uint32_t b = src->it.i / FMT_IDX2_RESTART;
        if (overlaps(w, t->ts_ranges[2 * b], t->ts_ranges[2 * b + 1]))
            return;
        if (b + 1 >= sst_n_restarts(t)) {
            src->it.i = t->f.n_entries;
            return;
        }
        sst_iter_block(&src->it, b + 1);
    }
}

static void src_next(const ts_store *s, source *src, const window *w)
{
    if (src->t) {
        sst_iter_next(&src->it);
        if (src->it.i % FMT_IDX2_RESTART == 0)
            src_skip(src, w);
    } else {
        src->pos++;
        while (w->on && src->pos < src->end) {
            const mt_entry *e = &s->mt.entries[src->order[src->pos]];
            if (e->ts >= w->from && below_to(w, e->ts))
                break;
            src->pos++;
        }
    }
}

static int heap_less(const ts_store *s, const source *a, const source *b)
{
    const uint8_t *x, *y;
    size_t xl, yl;
    src_key(s, a, &x, &xl);
    src_key(s, b, &y, &yl);
    int c = mt_key_cmp(x, xl, y, yl);
    return c < 0 || (c == 0 && a->rank < b->rank);
}

static void sift_down(const ts_store *s, source **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_less(s, h[l], h[m]))
            m = l;
        if (r < n && heap_less(s, h[r], h[m]))
            m = r;
        if (m == i)
            return;
        source *tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static void src_loc(ts_store *s, const source *src, loc *l, char *path, int *rc)
{
    if (src->t)
        *rc = sst_loc(s, src->t, &src->it.e, l);
    else
        wal_loc(s, &s->mt.entries[src->order[src->pos]], l, path);
}

/* The metadata of the record at l (read from its header or its frame). */
static int read_entry(ts_store *s, const loc *l, ts_entry *e, char *name, uint8_t *key)
{
    rec_meta m;
    size_t need;
    const char *why = NULL;
    int rc;
    if (l->ord) {
        const pack_rec *r = NULL;
        if ((rc = frame_read(s, l, NULL, 0, &r)))
            return rc;
        memcpy(name, r->name, r->name_len);
        name[r->name_len] = 0;
        memcpy(key, r->key, r->key_len);
        *e = (ts_entry){.key = key, .key_len = r->key_len, .name = name,
                        .dtype = (ts_dtype)r->dtype, .ndim = r->ndim,
                        .timestamp_ns = r->timestamp_ns, .data_len = r->data_len,
                        .seq = r->seq, .file_no = l->file_no, .in_memtable = l->in_mt};
        memcpy(e->shape, r->shape, sizeof(e->shape));
        return 0;
    }
    uint8_t *h = malloc(l->hdr_len);
    if (!h)
        return store__err(s, TS_ENOMEM, "out of memory");
    rc = read_at(s, l, h, l->hdr_len, l->rec_off);
    if (rc == -ENODATA || (!rc && rec_parse(h, l->hdr_len, &m, &need, &why))) {
        rc = store__err(s, TS_ECORRUPT, "%s: record at offset %" PRIu64 ": %s", l->path, l->rec_off,
                        why ? why : "record extends past the end of the file");
    } else if (rc) {
        store__err(s, rc, "pread(%s): %s", l->path, strerror(-rc));
    } else {
        memcpy(name, m.name, m.name_len);
        name[m.name_len] = 0;
        memcpy(key, m.key, m.key_len);
        *e = (ts_entry){.key = key, .key_len = m.key_len, .name = name, .dtype = (ts_dtype)m.dtype,
                        .ndim = m.ndim, .timestamp_ns = m.timestamp_ns, .data_len = m.data_len,
                        .seq = m.seq, .file_no = l->file_no, .in_memtable = l->in_mt};
        memcpy(e->shape, m.shape, sizeof(e->shape));
    }
    free(h);
    return rc;
}

/* 1 when l is where the newest version of key lives. A windowed scan skips
 * blocks, so a newer version may sit in one it never looked at. */
static int is_newest(ts_store *s, const uint8_t *key, size_t key_len, const loc *l)
{
    hit h;
    if (!find(s, key, key_len, &h))
        return 0;
    if (h.me)
        return l->in_mt && h.me->rec_off == l->rec_off && h.me->ord == l->ord;
    return !l->in_mt && h.t->file_no == l->file_no && h.e.rec_off == l->rec_off &&
           h.e.ord == l->ord;
}

static int emit(ts_store *s, const source *src, const window *w, ts_scan_fn fn, void *ctx)
{
    char path[STORE_PATH_MAX], name[TS_MAX_NAME_LEN + 1];
    uint8_t key[TS_MAX_KEY_LEN];
    ts_entry e;
    loc l;
    int rc = 0;
    src_loc(s, src, &l, path, &rc);
    if (!rc)
        rc = read_entry(s, &l, &e, name, key);
    if (rc)
        return rc;
    if (w->on && (e.timestamp_ns < w->from || !below_to(w, e.timestamp_ns) ||
                  !is_newest(s, e.key, e.key_len, &l)))
        return 0;
    return fn(ctx, &e);
}

static int scan(ts_store *s, const void *lo, size_t lo_len, const void *hi, size_t hi_len,
                const window *w, ts_scan_fn fn, void *ctx)
{
    size_t n_src = 0, n_heap = 0, n_mt = 0;
    uint32_t *order = mt_sorted(&s->mt, &n_mt);
    source *src = calloc(s->n_ssts + 1, sizeof(*src));
    source **heap = calloc(s->n_ssts + 1, sizeof(*heap));
    uint8_t *last = malloc(TS_MAX_KEY_LEN);
    size_t last_len = 0;
    int rc = 0, have_last = 0;
    if (!src || !heap || !last || (s->mt.n && !order)) {
        rc = store__err(s, TS_ENOMEM, "out of memory starting a scan");
        goto out;
    }
    if (n_mt) {
        source *m = &src[n_src++];
        const uint8_t *k;
        size_t kl;
        m->order = order;
        m->end = n_mt;
        m->pos = (size_t)-1;
        src_next(s, m, w);
        while (lo && m->pos < m->end) {
            src_key(s, m, &k, &kl);
            if (mt_key_cmp(k, kl, lo, lo_len) >= 0)
                break;
            src_next(s, m, w);
        }
    }
    for (size_t i = s->n_ssts; i-- > 0;) {
        sst *t = &s->ssts[i];
        if (!overlaps(w, t->min_ts, t->max_ts))
            continue;
        source *x = &src[n_src++];
        x->t = t;
        x->rank = (int)(n_src - 1);
        sst_iter_seek(&x->it, t, lo, lo_len);
        src_skip(x, w);
    }
    for (size_t i = 0; i < n_src; i++)
        if (src_valid(&src[i]))
            heap[n_heap++] = &src[i];
    for (size_t i = n_heap / 2; i-- > 0;)
        sift_down(s, heap, n_heap, i);
    while (n_heap) {
        source *top = heap[0];
        const uint8_t *k;
        size_t kl;
        src_key(s, top, &k, &kl);
        if (hi && mt_key_cmp(k, kl, hi, hi_len) >= 0)
            break;
        if (!have_last || mt_key_cmp(k, kl, last, last_len) != 0) {
            memcpy(last, k, kl);
            last_len = kl;
            have_last = 1;
            if ((rc = emit(s, top, w, fn, ctx)))
                goto out;
        }
        src_next(s, top, w);
        if (!src_valid(top))
            heap[0] = heap[--n_heap];
        sift_down(s, heap, n_heap, 0);
    }
out:
    free(order);
    free(src);
    free(heap);
    free(last);
    return rc;
}

int ts_scan_range(ts_store *s, const void *lo, size_t lo_len, const void *hi, size_t hi_len,
                  ts_scan_fn fn, void *ctx)
{
    window w = {0};
    return scan(s, lo, lo_len, hi, hi_len, &w, fn, ctx);
}

/* [prefix, hi) bounds every key starting with prefix: hi is the prefix
 * with its last byte that is not 0xff bumped, and what follows dropped
 * (*hi_len 0: no upper bound). */
static int prefix_bounds(ts_store *s, const void *prefix, size_t prefix_len, uint8_t *hi,
                         size_t *hi_len)
{
    if (prefix_len > TS_MAX_KEY_LEN)
        return store__err(s, TS_EINVAL, "prefix longer than a key can be");
    if (prefix_len)
        memcpy(hi, prefix, prefix_len);
    *hi_len = prefix_len;
    while (*hi_len && hi[*hi_len - 1] == 0xff)
        (*hi_len)--;
    if (*hi_len)
        hi[*hi_len - 1]++;
    return 0;
}

int ts_scan_prefix(ts_store *s, const void *prefix, size_t prefix_len, ts_scan_fn fn, void *ctx)
{
    return ts_scan_time(s, prefix, prefix_len, INT64_MIN, INT64_MAX, fn, ctx);
}

int ts_scan_time(ts_store *s, const void *prefix, size_t prefix_len, int64_t from_ns,
                 int64_t to_ns, ts_scan_fn fn, void *ctx)
{
    uint8_t hi[TS_MAX_KEY_LEN];
    size_t hi_len = 0;
    window w = {.on = from_ns != INT64_MIN || to_ns != INT64_MAX, .from = from_ns, .to = to_ns};
    int rc = prefix_bounds(s, prefix, prefix_len, hi, &hi_len);
    if (rc)
        return rc;
    if (w.on && from_ns >= to_ns && to_ns != INT64_MAX)
        return 0;
    return scan(s, prefix_len ? prefix : NULL, prefix_len, hi_len ? hi : NULL, hi_len, &w, fn,
                ctx);
}

/* The position of an entry in commit order inside one file: records and
 * frames lie in seq order, and so do the records of a frame. */
static int later(uint64_t off_a, uint32_t ord_a, uint64_t off_b, uint32_t ord_b)
{
    return off_a > off_b || (off_a == off_b && ord_a > ord_b);
}

int ts_latest(ts_store *s, const void *prefix, size_t prefix_len, ts_tensor **out)
{
    uint8_t hi[TS_MAX_KEY_LEN], *key = NULL;
    char path[STORE_PATH_MAX];
    size_t hi_len = 0;
    sst_iter *it = NULL;
    loc l = {0};
    int rc, found = 0;
    *out = NULL;
    if ((rc = prefix_bounds(s, prefix, prefix_len, hi, &hi_len)))
        return rc;
    if (!(key = malloc(TS_MAX_KEY_LEN)) || !(it = malloc(sizeof(*it)))) {
        rc = store__err(s, TS_ENOMEM, "out of memory");
        goto out;
    }
    /* Every MemTable seq is above every SST's, and newer SSTs hold higher
     * seqs: the first source holding the prefix holds the answer, and no
     * newer version of that key can exist in a source checked before. */
    const mt_entry *best = NULL;
    for (size_t i = 0; i < s->mt.n; i++) {
        const mt_entry *e = &s->mt.entries[i];
        if (e->key_len >= prefix_len &&
            (!prefix_len || !memcmp(mt_key(&s->mt, e), prefix, prefix_len)) &&
            (!best || e->seq > best->seq))
            best = e;
    }
    if (best) {
        memcpy(key, mt_key(&s->mt, best), best->key_len);
        wal_loc(s, best, &l, path);
        found = best->key_len;
    }
    for (size_t i = s->n_ssts; !found && i-- > 0;) {
        sst *t = &s->ssts[i];
        for (sst_iter_seek(it, t, prefix_len ? prefix : NULL, prefix_len);
             sst_iter_valid(it) && (!hi_len || mt_key_cmp(it->e.key, it->e.key_len, hi, hi_len) < 0);
             sst_iter_next(it)) {
            if (!found || later(it->e.rec_off, it->e.ord, l.rec_off, l.ord)) {
                if ((rc = sst_loc(s, t, &it->e, &l)))
                    goto out;
                memcpy(key, it->e.key, it->e.key_len);
                found = it->e.key_len;
            }
        }
    }
    if (!found)
        rc = store__err(s, TS_ENOTFOUND, "no tensor under that prefix");
    else
        rc = read_tensor(s, &l, key, (size_t)found, UINT64_MAX, out);
out:
    free(key);
    free(it);
    return rc;
}

/* ---- verify ----------------------------------------------------------- */

typedef struct vctx {
    ts_store *s;
    ts_verify_fn fn;
    void *ctx;
    uint64_t bad;
} vctx;

static void report(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(vctx *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->bad++;
    if (v->fn)
        v->fn(v->ctx, msg);
}

static int verify_segment(vctx *v, int fd, const char *path, uint64_t end)
{
    uint8_t hdr[FMT_SEG_HDR_LEN];
    uint64_t no, base;
    uint32_t version = 0;
    seg_result res;
    int rc = plat_read_exact(v->s->vfs, fd, hdr, sizeof(hdr), 0);
    if (rc == -ENODATA || (!rc && seg_hdr_parse(hdr, &no, &base, &version))) {
        report(v, "%s: offset 0: bad segment header", path);
        return 0;
    }
    if (rc)
        return store__err(v->s, rc, "pread(%s): %s", path, strerror(-rc));
    rc = seg_scan(v->s->vfs, fd, version, FMT_SEG_HDR_LEN, end, base, NULL, NULL, &res);
    if (rc)
        return store__err(v->s, rc, "reading %s: %s", path, ts_strerror(rc));
    if (res.status != SEG_CLEAN)
        report(v, "%s: offset %" PRIu64 ": %s", path, res.bad_off, res.why);
    return 0;
}

int ts_verify(ts_store *s, ts_verify_fn fn, void *ctx, uint64_t *n_bad)
{
    vctx v = {s, fn, ctx, 0};
    char path[STORE_PATH_MAX];
    int rc = 0;
    for (size_t i = 0; i < s->n_ssts && !rc; i++) {
        sst *t = &s->ssts[i];
        int fd;
        if ((rc = store__sst_fd(s, t, &fd)))
            break;
        uint64_t bad_before = v.bad;
        if ((rc = verify_segment(&v, fd, t->path, t->f.index_off)))
            break;
        /* Every index entry must lead to an intact record of its key (when
         * the records themselves were damaged that is already reported). */
        sst_iter *it = malloc(sizeof(*it));
        if (!it) {
            rc = store__err(s, TS_ENOMEM, "out of memory");
            break;
        }
        for (sst_iter_seek(it, t, NULL, 0); v.bad == bad_before && sst_iter_valid(it);
             sst_iter_next(it)) {
            loc l;
            ts_tensor *tt = NULL;
            if ((rc = sst_loc(s, t, &it->e, &l)))
                break;
            rc = read_tensor(s, &l, it->e.key, it->e.key_len, UINT64_MAX, &tt);
            ts_tensor_free(tt);
            if (rc == TS_ECORRUPT) {
                report(&v, "%s", s->err);
                rc = 0;
            }
            if (rc)
                break;
        }
        free(it);
    }
    if (!rc && s->wal_fd >= 0) {
        store__file_path(s, "wal", s->wal_no, path);
        rc = verify_segment(&v, s->wal_fd, path, s->wal_end);
    }
    if (n_bad)
        *n_bad = v.bad;
    if (!rc && v.bad)
        rc = store__err(s, TS_ECORRUPT, "%" PRIu64 " damaged item(s) found", v.bad);
    return rc;
}
