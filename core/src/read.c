/*
 * read.c -- the read path: point loads, previews, ordered scans, verify.
 *
 * A key is looked up in the MemTable, then in the SSTs newest first (each
 * skipped when the key falls outside its first..last key). The record is
 * then read with one pread straight into the allocation handed to the
 * caller, and checked: header checksum, the key itself, and the 4 KiB block
 * checksums of every data byte returned. Scans merge the MemTable and every
 * SST index with a heap, newest source winning on equal keys.
 */
#include "store_int.h"

#include "format.h"
#include "record.h"
#include "seg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loc {
    int fd;
    const char *path;
    uint64_t file_no;
    uint64_t rec_off;
    uint32_t rec_len, hdr_len;
    uint8_t dtype;
    int in_mt;
} loc;

static void wal_loc(ts_store *s, const mt_entry *e, loc *l, char *path)
{
    store__file_path(s, "wal", s->wal_no, path);
    *l = (loc){.fd = s->wal_fd, .path = path, .file_no = s->wal_no, .rec_off = e->rec_off,
               .rec_len = e->rec_len, .hdr_len = e->hdr_len, .dtype = e->dtype, .in_mt = 1};
}

static int sst_loc(ts_store *s, sst *t, const sst_entry *e, loc *l)
{
    int fd = -1;
    int rc = store__sst_fd(s, t, &fd);
    *l = (loc){.fd = fd, .path = t->path, .file_no = t->file_no, .rec_off = e->rec_off,
               .rec_len = e->rec_len, .hdr_len = e->hdr_len, .dtype = e->dtype};
    return rc;
}

static int in_range(const sst *t, const uint8_t *key, size_t key_len)
{
    sst_entry first, last;
    if (!t->f.n_entries)
        return 0;
    sst_entry_at(t, 0, &first);
    sst_entry_at(t, t->f.n_entries - 1, &last);
    return mt_key_cmp(key, key_len, first.key, first.key_len) >= 0 &&
           mt_key_cmp(key, key_len, last.key, last.key_len) <= 0;
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
    for (size_t i = s->n_ssts; i-- > 0;) {
        if (in_range(&s->ssts[i], key, key_len) && sst_find(&s->ssts[i], key, key_len, &h->e)) {
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

/* Reads the record at l into a new tensor, returning at most max_data data
 * bytes (whole blocks are read and checked). */
static int read_tensor(ts_store *s, const loc *l, const uint8_t *key, size_t key_len,
                       uint64_t max_data, ts_tensor **out)
{
    rec_meta m;
    size_t need = 0;
    const char *why = NULL;
    uint64_t bad = 0;
    uint64_t data_room = l->rec_len - l->hdr_len;
    if (max_data < data_room) {
        uint64_t blocks = (max_data + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN * FMT_BLOCK_LEN;
        if (blocks < data_room)
            data_room = blocks;
    }
    size_t read_len = (size_t)(l->hdr_len + data_room);
    size_t head = (sizeof(ts_tensor) + 15) & ~(size_t)15;
    uint8_t *mem = malloc(head + read_len + TS_MAX_NAME_LEN + 1);
    int rc;
    if (!mem)
        return store__err(s, TS_ENOMEM, "out of memory loading %zu bytes", read_len);
    ts_tensor *t = (ts_tensor *)(void *)mem;
    uint8_t *rec = mem + head;
    rc = plat_read_exact(s->vfs, l->fd, rec, read_len, l->rec_off);
    if (rc == -ENODATA) {
        why = "record extends past the end of the file";
        goto corrupt;
    }
    if (rc) {
        store__err(s, rc, "pread(%s, offset %" PRIu64 "): %s", l->path, l->rec_off, strerror(-rc));
        goto out;
    }
    if (rec_parse(rec, read_len, &m, &need, &why))
        goto corrupt;
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

static int load(ts_store *s, const void *key, size_t key_len, uint64_t max_data, ts_tensor **out)
{
    char path[STORE_PATH_MAX];
    loc l;
    int rc;
    *out = NULL;
    if (!key || key_len == 0 || key_len > TS_MAX_KEY_LEN)
        return store__err(s, TS_EINVAL, "key must be 1..%d bytes", TS_MAX_KEY_LEN);
    rc = locate(s, key, key_len, &l, path);
    if (rc == TS_ENOTFOUND)
        return store__err(s, rc, "no tensor under that key");
    if (rc)
        return rc;
    return read_tensor(s, &l, key, key_len, max_data, out);
}

int ts_load(ts_store *s, const void *key, size_t key_len, ts_tensor **out)
{
    return load(s, key, key_len, UINT64_MAX, out);
}

int ts_load_preview(ts_store *s, const void *key, size_t key_len, uint64_t n, ts_tensor **out)
{
    char path[STORE_PATH_MAX];
    loc l;
    *out = NULL;
    if (!key || key_len == 0 || key_len > TS_MAX_KEY_LEN)
        return store__err(s, TS_EINVAL, "key must be 1..%d bytes", TS_MAX_KEY_LEN);
    int rc = locate(s, key, key_len, &l, path);
    if (rc == TS_ENOTFOUND)
        return store__err(s, rc, "no tensor under that key");
    if (rc)
        return rc;
    size_t es = ts_dtype_size((ts_dtype)l.dtype);
    uint64_t max = es && n <= UINT64_MAX / es ? n * es : UINT64_MAX;
    return read_tensor(s, &l, key, key_len, max, out);
}

/* ---- scans ------------------------------------------------------------ */

typedef struct source {
    int rank;               /* 0 = newest */
    sst *t;                 /* NULL for the MemTable */
    const uint32_t *order;  /* MemTable sorted view */
    size_t pos, end;
} source;

typedef struct cursor {
    const uint8_t *key;
    size_t key_len;
} cursor;

static void src_key(const ts_store *s, const source *src, cursor *c)
{
    if (src->t) {
        sst_entry e;
        sst_entry_at(src->t, (uint32_t)src->pos, &e);
        c->key = e.key;
        c->key_len = e.key_len;
    } else {
        const mt_entry *e = &s->mt.entries[src->order[src->pos]];
        c->key = mt_key(&s->mt, e);
        c->key_len = e->key_len;
    }
}

static int heap_less(const ts_store *s, const source *a, const source *b)
{
    cursor x, y;
    src_key(s, a, &x);
    src_key(s, b, &y);
    int c = mt_key_cmp(x.key, x.key_len, y.key, y.key_len);
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

static int emit(ts_store *s, const source *src, ts_scan_fn fn, void *ctx)
{
    char path[STORE_PATH_MAX];
    loc l;
    int rc;
    if (src->t) {
        sst_entry e;
        sst_entry_at(src->t, (uint32_t)src->pos, &e);
        if ((rc = sst_loc(s, src->t, &e, &l)))
            return rc;
    } else {
        wal_loc(s, &s->mt.entries[src->order[src->pos]], &l, path);
    }
    uint8_t *h = malloc(l.hdr_len);
    rec_meta m;
    size_t need;
    const char *why = NULL;
    if (!h)
        return store__err(s, TS_ENOMEM, "out of memory");
    rc = plat_read_exact(s->vfs, l.fd, h, l.hdr_len, l.rec_off);
    if (rc == -ENODATA || (!rc && rec_parse(h, l.hdr_len, &m, &need, &why))) {
        rc = store__err(s, TS_ECORRUPT, "%s: record at offset %" PRIu64 ": %s", l.path, l.rec_off,
                        why ? why : "record extends past the end of the file");
    } else if (rc) {
        store__err(s, rc, "pread(%s): %s", l.path, strerror(-rc));
    } else {
        char name[TS_MAX_NAME_LEN + 1];
        memcpy(name, m.name, m.name_len);
        name[m.name_len] = 0;
        ts_entry e = {.key = m.key, .key_len = m.key_len, .name = name, .dtype = (ts_dtype)m.dtype,
                      .ndim = m.ndim, .timestamp_ns = m.timestamp_ns, .data_len = m.data_len,
                      .seq = m.seq, .file_no = l.file_no, .in_memtable = l.in_mt};
        memcpy(e.shape, m.shape, sizeof(e.shape));
        rc = fn(ctx, &e);
    }
    free(h);
    return rc;
}

int ts_scan_range(ts_store *s, const void *lo, size_t lo_len, const void *hi, size_t hi_len,
                  ts_scan_fn fn, void *ctx)
{
    size_t n_src = 0, n_heap = 0, n_mt = 0;
    uint32_t *order = mt_sorted(&s->mt, &n_mt);
    source *src = calloc(s->n_ssts + 1, sizeof(*src));
    source **heap = calloc(s->n_ssts + 1, sizeof(*heap));
    cursor last = {0}, c;
    int rc = 0;
    if (!src || !heap || (s->mt.n && !order)) {
        rc = store__err(s, TS_ENOMEM, "out of memory starting a scan");
        goto out;
    }
    if (n_mt) {
        source *m = &src[n_src++];
        m->order = order;
        m->end = n_mt;
        if (lo) {
            while (m->pos < m->end) {
                src_key(s, m, &c);
                if (mt_key_cmp(c.key, c.key_len, lo, lo_len) >= 0)
                    break;
                m->pos++;
            }
        }
    }
    for (size_t i = s->n_ssts; i-- > 0;) {
        source *t = &src[n_src++];
        t->t = &s->ssts[i];
        t->rank = (int)(n_src - 1);
        t->end = s->ssts[i].f.n_entries;
        t->pos = lo ? sst_lower_bound(t->t, lo, lo_len) : 0;
    }
    for (size_t i = 0; i < n_src; i++)
        if (src[i].pos < src[i].end)
            heap[n_heap++] = &src[i];
    for (size_t i = n_heap / 2; i-- > 0;)
        sift_down(s, heap, n_heap, i);
    while (n_heap) {
        source *top = heap[0];
        src_key(s, top, &c);
        if (hi && mt_key_cmp(c.key, c.key_len, hi, hi_len) >= 0)
            break;
        if (!last.key || mt_key_cmp(c.key, c.key_len, last.key, last.key_len) != 0) {
            last = c;
            if ((rc = emit(s, top, fn, ctx)))
                goto out;
        }
        if (++top->pos >= top->end)
            heap[0] = heap[--n_heap];
        sift_down(s, heap, n_heap, 0);
    }
out:
    free(order);
    free(src);
    free(heap);
    return rc;
}

int ts_scan_prefix(ts_store *s, const void *prefix, size_t prefix_len, ts_scan_fn fn, void *ctx)
{
    uint8_t hi[TS_MAX_KEY_LEN];
    size_t hi_len = prefix_len;
    if (prefix_len == 0)
        return ts_scan_range(s, NULL, 0, NULL, 0, fn, ctx);
    if (prefix_len > TS_MAX_KEY_LEN)
        return store__err(s, TS_EINVAL, "prefix longer than a key can be");
    /* The first key after every key with this prefix: bump the last byte
     * that is not 0xff and drop what follows it. */
    memcpy(hi, prefix, prefix_len);
    while (hi_len && hi[hi_len - 1] == 0xff)
        hi_len--;
    if (hi_len)
        hi[hi_len - 1]++;
    return ts_scan_range(s, prefix, prefix_len, hi_len ? hi : NULL, hi_len, fn, ctx);
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
    seg_result res;
    int rc = plat_read_exact(v->s->vfs, fd, hdr, sizeof(hdr), 0);
    if (rc == -ENODATA || (!rc && seg_hdr_parse(hdr, &no, &base))) {
        report(v, "%s: offset 0: bad segment header", path);
        return 0;
    }
    if (rc)
        return store__err(v->s, rc, "pread(%s): %s", path, strerror(-rc));
    rc = seg_scan(v->s->vfs, fd, FMT_SEG_HDR_LEN, end, base, NULL, NULL, &res);
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
        for (uint32_t j = 0; v.bad == bad_before && j < t->f.n_entries; j++) {
            sst_entry e;
            loc l;
            ts_tensor *tt = NULL;
            sst_entry_at(t, j, &e);
            if ((rc = sst_loc(s, t, &e, &l)))
                break;
            rc = read_tensor(s, &l, e.key, e.key_len, UINT64_MAX, &tt);
            ts_tensor_free(tt);
            if (rc == TS_ECORRUPT) {
                report(&v, "%s", s->err);
                rc = 0;
            }
            if (rc)
                break;
        }
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
