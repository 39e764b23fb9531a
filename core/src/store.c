/*
 * store.c -- opening, recovering and closing a store, plus the counted I/O
 * and error helpers the other store files share.
 *
 * Recovery rules (FORMAT.md, "Recovery"), applied in this order on open:
 *   1. MANIFEST names the live SSTs and the open WAL segment W.
 *   2. A live SST whose sst_N name is missing but whose wal_N is sealed (has
 *      a valid footer) was renamed by a flush whose directory sync did not
 *      land: finish the rename.
 *   3. If wal_W is sealed, or missing while sst_W exists, the flush of W got
 *      that far: adopt it as an SST and open W+1.
 *   4. Otherwise replay wal_W: every complete batch enters the MemTable; a
 *      torn tail is cut off; damage followed by valid data fails the open
 *      (or, with salvage, the damaged tail is moved aside).
 *   5. wal_/sst_ files numbered above W are leftovers of an interrupted
 *      flush that never held acknowledged data: they are removed. So are
 *      sst_ files below W that the MANIFEST does not name: ts_release
 *      dropped them (they live on in a checkpoint) but did not get to
 *      unlink them before a crash.
 * A read-only open applies the same rules in memory and changes nothing.
 */
#include "store_int.h"

#include "format.h"
#include "manifest.h"
#include "record.h"
#include "seg.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ts_strerror(int err)
{
    switch (err) {
    case TS_OK: return "ok";
    case TS_ECORRUPT: return "data corruption detected";
    case TS_ENOTFOUND: return "no tensor under that key";
    case TS_EFAILED: return "store failed after an I/O error; reopen it";
    case TS_ENOTSTORE: return "directory holds store files but no MANIFEST";
    case TS_EEXIST: return "key already stored";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

void ts_options_init(ts_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->memtable_max = STORE_DEFAULT_MEMTABLE_MAX;
    opts->sync = 1;
}

const char *ts_errmsg(const ts_store *s)
{
    return s ? s->err : "";
}

static int vset(ts_store *s, int rc, const char *fmt, va_list ap)
{
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    return rc;
}

int store__err(ts_store *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(s, rc, fmt, ap);
    va_end(ap);
    return rc;
}

int store__fail(ts_store *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(s, rc, fmt, ap);
    va_end(ap);
    s->failed = 1;
    return rc;
}

int store__check_writable(ts_store *s)
{
    if (s->opts.read_only)
        return store__err(s, TS_EROFS, "%s: store opened read-only", s->dir);
    if (s->failed)
        return TS_EFAILED; /* keep the message of the failure itself */
    return 0;
}

void store__join(const ts_store *s, const char *name, char *out)
{
    snprintf(out, STORE_PATH_MAX, "%s/%s", s->dir, name);
}

void store__file_path(const ts_store *s, const char *kind, uint64_t no, char *out)
{
    snprintf(out, STORE_PATH_MAX, "%s/%s_%06" PRIu64 ".%s", s->dir, kind, no,
             kind[0] == 'w' ? "log" : "sst");
}

int store__write(ts_store *s, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int rc = s->vfs->pwritev(s->vfs, fd, iov, iovcnt, off);
    if (!rc)
        s->st.bytes_written += total;
    return rc;
}

int store__sync(ts_store *s, int fd)
{
    s->st.fsyncs++;
    return s->vfs->fdatasync(s->vfs, fd);
}

int store__dirsync(ts_store *s)
{
    s->st.fsyncs++;
    int rc = s->vfs->dirsync(s->vfs, s->dir);
    if (rc)
        return store__fail(s, rc, "fsync(%s): %s", s->dir, strerror(-rc));
    return 0;
}

int store__create_wal(ts_store *s, uint64_t no, uint64_t base_seq, int sync, int *fd_out)
{
    char path[STORE_PATH_MAX];
    uint8_t hdr[FMT_SEG_HDR_LEN];
    struct iovec iov = {hdr, sizeof(hdr)};
    int fd = -1, rc;
    store__file_path(s, "wal", no, path);
    rc = s->vfs->open(s->vfs, path, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd);
    if (rc) {
        store__err(s, rc, "open(%s): %s", path, strerror(-rc));
        goto out;
    }
    seg_hdr_encode(no, base_seq, hdr);
    rc = store__write(s, fd, &iov, 1, 0);
    if (rc) {
        store__err(s, rc, "write(%s): %s", path, strerror(-rc));
        goto out;
    }
    if (sync && (rc = store__sync(s, fd)))
        store__fail(s, rc, "fdatasync(%s): %s", path, strerror(-rc));
out:
    if (rc && fd >= 0) {
        s->vfs->close(s->vfs, fd);
        fd = -1;
    }
    *fd_out = fd;
    return rc;
}

int store__write_manifest(ts_store *s, uint64_t wal_no, size_t skip)
{
    char tmp[STORE_PATH_MAX], path[STORE_PATH_MAX];
    uint64_t *live = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int fd = -1, rc;
    live = malloc((s->n_ssts ? s->n_ssts : 1) * sizeof(*live));
    if (!live) {
        rc = store__err(s, TS_ENOMEM, "out of memory writing MANIFEST");
        goto out;
    }
    for (size_t i = skip; i < s->n_ssts; i++)
        live[i - skip] = s->ssts[i].file_no;
    rc = man_encode(live, s->n_ssts - skip, wal_no, &buf, &len);
    if (rc) {
        store__err(s, rc, "out of memory writing MANIFEST");
        goto out;
    }
    store__join(s, FMT_MAN_TMP_NAME, tmp);
    store__join(s, FMT_MAN_NAME, path);
    rc = s->vfs->open(s->vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd);
    if (rc) {
        store__err(s, rc, "open(%s): %s", tmp, strerror(-rc));
        goto out;
    }
    struct iovec iov = {buf, len};
    rc = store__write(s, fd, &iov, 1, 0);
    if (rc) {
        store__err(s, rc, "write(%s): %s", tmp, strerror(-rc));
        goto out;
    }
    rc = store__sync(s, fd);
    if (rc) {
        store__fail(s, rc, "fdatasync(%s): %s", tmp, strerror(-rc));
        goto out;
    }
    rc = s->vfs->rename(s->vfs, tmp, path);
    if (rc)
        store__fail(s, rc, "rename(%s, %s): %s", tmp, path, strerror(-rc));
out:
    if (fd >= 0)
        s->vfs->close(s->vfs, fd);
    free(live);
    free(buf);
    return rc;
}

/* Closes the least recently used open SST descriptor (reopened on use). */
static void close_lru(ts_store *s)
{
    sst *lru = NULL;
    for (size_t i = 0; i < s->n_ssts; i++)
        if (s->ssts[i].fd >= 0 && (!lru || s->ssts[i].last_use < lru->last_use))
            lru = &s->ssts[i];
    if (lru) {
        s->vfs->close(s->vfs, lru->fd);
        lru->fd = -1;
        s->n_open--;
    }
}

int store__add_sst(ts_store *s, sst *t)
{
    if (s->n_ssts == s->cap_ssts) {
        size_t cap = s->cap_ssts ? 2 * s->cap_ssts : 16;
        sst *n = realloc(s->ssts, cap * sizeof(*n));
        if (!n)
            return store__err(s, TS_ENOMEM, "out of memory adding an SST");
        s->ssts = n;
        s->cap_ssts = cap;
    }
    /* A sealed SST comes with its descriptor open: within the bound too. */
    if (t->fd >= 0 && s->n_open >= STORE_MAX_OPEN_SSTS)
        close_lru(s);
    /* Keep ascending file order. Every caller appends (store_int.h), which
     * the key map relies on; were that ever broken it is rebuilt. */
    size_t i = s->n_ssts;
    while (i > 0 && s->ssts[i - 1].file_no > t->file_no) {
        s->ssts[i] = s->ssts[i - 1];
        i--;
    }
    assert(i == s->n_ssts);
    s->ssts[i] = *t;
    s->n_ssts++;
    t->ts_ranges = NULL;
    t->bounds = NULL;
    if (s->km_on)
        keymap_add(&s->km, s->ssts, s->n_ssts);
    if (s->cache.n_rows) { /* the new SST holds its keys' newest versions */
        sst_iter it;
        for (sst_iter_seek(&it, &s->ssts[i], NULL, 0); sst_iter_valid(&it); sst_iter_next(&it))
            fcache_drop(&s->cache, it.e.key, it.e.key_len);
    }
    /* Sequence numbers never go back: an SST adopted by recovery (a flush
     * sealed it, then the power went before the MANIFEST named it) holds
     * seqs above every SST the MANIFEST lists. */
    if (t->f.max_seq >= s->next_seq)
        s->next_seq = t->f.max_seq + 1;
    if (t->fd >= 0)
        s->n_open++;
    t->fd = -1;
    t->index = NULL;
    t->path = NULL;
    return 0;
}

int store__sst_fd(ts_store *s, sst *t, int *fd)
{
    int rc = 0;
    t->last_use = ++s->clock;
    if (t->fd < 0) {
        if (s->n_open >= STORE_MAX_OPEN_SSTS)
            close_lru(s);
        rc = s->vfs->open(s->vfs, t->path, PLAT_O_RDONLY, &t->fd);
        if (rc)
            return store__err(s, rc, "open(%s): %s", t->path, strerror(-rc));
        s->n_open++;
    }
    *fd = t->fd;
    return rc;
}

/* ---- open and recovery ------------------------------------------------ */

static int read_manifest(ts_store *s, uint64_t *wal_no, uint64_t **live, size_t *n)
{
    char path[STORE_PATH_MAX];
    plat_stat st;
    uint8_t *buf = NULL;
    const char *why = "";
    int fd = -1, rc;
    store__join(s, FMT_MAN_NAME, path);
    rc = s->vfs->open(s->vfs, path, PLAT_O_RDONLY, &fd);
    if (rc) {
        if (rc != -ENOENT)
            store__err(s, rc, "open(%s): %s", path, strerror(-rc));
        goto out;
    }
    rc = s->vfs->fstat(s->vfs, fd, &st);
    if (rc) {
        store__err(s, rc, "fstat(%s): %s", path, strerror(-rc));
        goto out;
    }
    if (st.size > (64u << 20)) {
        rc = store__err(s, TS_ECORRUPT, "%s: implausible size %" PRIu64, path, st.size);
        goto out;
    }
    buf = malloc(st.size ? st.size : 1);
    if (!buf) {
        rc = store__err(s, TS_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    rc = plat_read_exact(s->vfs, fd, buf, st.size, 0);
    if (rc) {
        store__err(s, rc, "pread(%s): %s", path, strerror(-rc));
        goto out;
    }
    rc = man_decode(buf, st.size, wal_no, live, n, &why);
    if (rc)
        store__err(s, rc, "%s: %s (offset 0)", path, why);
out:
    if (fd >= 0)
        s->vfs->close(s->vfs, fd);
    free(buf);
    return rc;
}

typedef struct scan_names {
    int has_store_files;
    uint64_t above;          /* report files numbered above this */
    const ts_store *live;    /* and, when set, SSTs below it that it does not
                                hold (released by ts_release) */
    uint64_t strays[64];
    char stray_kind[64];
    size_t n_strays;
} scan_names;

static int parse_name(const char *name, char *kind, uint64_t *no)
{
    unsigned long long v;
    char ext[4];
    int used = 0;
    if (sscanf(name, "wal_%llu.%3s%n", &v, ext, &used) == 2 && !name[used] && !strcmp(ext, "log"))
        *kind = 'w';
    else if (sscanf(name, "sst_%llu.%3s%n", &v, ext, &used) == 2 && !name[used] &&
             !strcmp(ext, "sst"))
        *kind = 's';
    else
        return 0;
    *no = v;
    return 1;
}

static int is_live(const ts_store *s, uint64_t no)
{
    size_t lo = 0, hi = s->n_ssts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ssts[mid].file_no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_ssts && s->ssts[lo].file_no == no;
}

static int on_name(void *ctx, const char *name)
{
    scan_names *sn = ctx;
    char kind;
    uint64_t no;
    if (!parse_name(name, &kind, &no))
        return 0;
    sn->has_store_files = 1;
    int released = sn->live && kind == 's' && no < sn->above && !is_live(sn->live, no);
    if ((no > sn->above || released) && sn->n_strays < 64) {
        sn->stray_kind[sn->n_strays] = kind;
        sn->strays[sn->n_strays++] = no;
    }
    return 0;
}

/* Opens live SST `no`, finishing an interrupted rename from wal_no when the
 * sst_ name is missing. *dirty is set when a rename happened. */
static int open_sst(ts_store *s, uint64_t no, int *dirty)
{
    char path[STORE_PATH_MAX], wal[STORE_PATH_MAX], msg[768];
    plat_stat st;
    sst t;
    int rc;
    store__file_path(s, "sst", no, path);
    if (s->vfs->stat(s->vfs, path, &st) == -ENOENT) {
        store__file_path(s, "wal", no, wal);
        if (s->opts.read_only) {
            memcpy(path, wal, sizeof(path));
        } else if (s->vfs->stat(s->vfs, wal, &st) == 0) {
            rc = sst_open(s->vfs, wal, no, &t, msg, sizeof(msg));
            if (rc)
                return store__err(s, rc, "live SST %s missing and %s is not sealed: %s", path,
                                  wal, msg);
            sst_close(s->vfs, &t);
            rc = s->vfs->rename(s->vfs, wal, path);
            if (rc)
                return store__err(s, rc, "rename(%s, %s): %s", wal, path, strerror(-rc));
            *dirty = 1;
        }
    }
    rc = sst_open(s->vfs, path, no, &t, msg, sizeof(msg));
    if (rc == -ENOENT)
        return store__err(s, TS_ECORRUPT, "live SST %s is missing", path);
    if (rc)
        return store__err(s, rc, "%s", msg);
    rc = store__add_sst(s, &t);
    if (rc)
        sst_close(s->vfs, &t);
    return rc;
}

static int replay_batch(void *ctx, const seg_rec *recs, size_t n, const uint8_t *keys)
{
    ts_store *s = ctx;
    for (size_t i = 0; i < n; i++) {
        mt_entry e = {.rec_off = recs[i].off, .seq = recs[i].seq, .ts = recs[i].ts,
                      .rec_len = recs[i].rec_len, .hdr_len = recs[i].hdr_len,
                      .ord = recs[i].ord, .dtype = recs[i].dtype};
        if (mt_put(&s->mt, keys + recs[i].key_off, recs[i].key_len, &e))
            return store__err(s, TS_ENOMEM, "out of memory replaying the WAL");
    }
    return 0;
}

/* Copies [from, size) of the WAL to wal_N.damaged before salvage cuts it. */
static int save_damaged(ts_store *s, const char *wal, uint64_t from, uint64_t size)
{
    char path[STORE_PATH_MAX];
    uint8_t *buf = malloc(1 << 20);
    int fd = -1, rc = 0;
    snprintf(path, sizeof(path), "%.*s.damaged", (int)(strlen(wal) - 4), wal);
    if (!buf)
        return store__err(s, TS_ENOMEM, "out of memory");
    rc = s->vfs->open(s->vfs, path, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd);
    for (uint64_t off = from; !rc && off < size;) {
        size_t n = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
        rc = plat_read_exact(s->vfs, s->wal_fd, buf, n, off);
        struct iovec iov = {buf, n};
        if (!rc)
            rc = store__write(s, fd, &iov, 1, off - from);
        off += n;
    }
    if (!rc)
        rc = store__sync(s, fd);
    if (rc)
        store__err(s, rc, "saving the damaged WAL tail to %s: %s", path, strerror(-rc));
    if (fd >= 0)
        s->vfs->close(s->vfs, fd);
    free(buf);
    return rc;
}

/* Step 3-4 of recovery for the open segment W. */
static int open_wal(ts_store *s, int *dirty)
{
    char path[STORE_PATH_MAX], sstp[STORE_PATH_MAX];
    plat_stat st;
    sst_footer f;
    seg_result res;
    uint8_t hdr[FMT_SEG_HDR_LEN];
    uint64_t file_no = 0, base_seq = 0;
    int rc;
    store__file_path(s, "wal", s->wal_no, path);
    store__file_path(s, "sst", s->wal_no, sstp);
    rc = s->vfs->open(s->vfs, path, s->opts.read_only ? PLAT_O_RDONLY : PLAT_O_RDWR, &s->wal_fd);
    if (rc == -ENOENT) {
        if (s->vfs->stat(s->vfs, sstp, &st) == 0) {
            rc = open_sst(s, s->wal_no, dirty);
            if (rc)
                return rc;
            s->wal_no++;
            *dirty = 1;
        }
        goto fresh;
    }
    if (rc)
        return store__err(s, rc, "open(%s): %s", path, strerror(-rc));
    if ((rc = s->vfs->fstat(s->vfs, s->wal_fd, &st)))
        return store__err(s, rc, "fstat(%s): %s", path, strerror(-rc));
    if (sst_probe(s->vfs, s->wal_fd, st.size, &f) == 0 && f.file_no == s->wal_no) {
        /* Sealed but not renamed: the flush got that far. */
        s->vfs->close(s->vfs, s->wal_fd);
        s->wal_fd = -1;
        if (!s->opts.read_only) {
            rc = s->vfs->rename(s->vfs, path, sstp);
            if (rc)
                return store__err(s, rc, "rename(%s, %s): %s", path, sstp, strerror(-rc));
        }
        rc = open_sst(s, s->wal_no, dirty);
        if (rc)
            return rc;
        s->wal_no++;
        *dirty = 1;
        goto fresh;
    }
    if (st.size < FMT_SEG_HDR_LEN) {
        /* Created but its header never became durable: holds nothing. */
        s->vfs->close(s->vfs, s->wal_fd);
        s->wal_fd = -1;
        goto fresh;
    }
    rc = plat_read_exact(s->vfs, s->wal_fd, hdr, sizeof(hdr), 0);
    if (rc)
        return store__err(s, rc, "pread(%s): %s", path, strerror(-rc));
    if (seg_hdr_parse(hdr, &file_no, &base_seq, &s->wal_version) || file_no != s->wal_no) {
        /* A flush creates the next segment without syncing its header: the
         * first batch's fdatasync makes it durable. A bad header with no
         * batch after it therefore held nothing acknowledged. */
        int found = 0;
        rc = seg_any_batch(s->vfs, s->wal_fd, 0, st.size, &found);
        if (rc)
            return store__err(s, rc, "reading %s: %s", path, ts_strerror(rc));
        if (found)
            return store__err(s, TS_ECORRUPT, "%s: bad segment header at offset 0", path);
        s->vfs->close(s->vfs, s->wal_fd);
        s->wal_fd = -1;
        goto fresh;
    }
    s->wal_base_seq = base_seq;
    rc = seg_scan(s->vfs, s->wal_fd, s->wal_version, FMT_SEG_HDR_LEN, st.size, base_seq,
                  replay_batch, s, &res);
    if (rc)
        return store__err(s, rc, "%s: replay failed: %s", path, s->err[0] ? s->err : ts_strerror(rc));
    s->wal_end = res.good_end;
    s->mt.bytes = res.good_end - FMT_SEG_HDR_LEN;
    s->next_seq = res.last_seq + 1; /* recover() checks it against the SSTs */
    if (res.status == SEG_CORRUPT && !s->opts.salvage)
        return store__err(s, TS_ECORRUPT,
                          "%s: corruption at offset %" PRIu64 ": %s (valid data follows; "
                          "open with salvage to keep the %" PRIu64 " bytes before it)",
                          path, res.bad_off, res.why, res.good_end);
    if (res.status != SEG_CLEAN && !s->opts.read_only) {
        if (res.status == SEG_CORRUPT && (rc = save_damaged(s, path, res.good_end, st.size)))
            return rc;
        /* Cut the torn tail so the next batch follows valid data. */
        rc = s->vfs->ftruncate(s->vfs, s->wal_fd, res.good_end);
        if (!rc)
            rc = store__sync(s, s->wal_fd);
        if (rc)
            return store__err(s, rc, "truncate(%s, %" PRIu64 "): %s", path, res.good_end,
                              strerror(-rc));
        /* Not an error: left in ts_errmsg so the caller can report it. */
        s->st.recovery_cut_bytes = st.size - res.good_end;
        store__err(s, 0, "%s: cut %" PRIu64 " bytes at offset %" PRIu64 " (%s)", path,
                   st.size - res.good_end, res.good_end, res.why);
        *dirty |= res.status == SEG_CORRUPT;
    }
    return 0;
fresh:
    s->wal_base_seq = s->next_seq;
    s->wal_end = FMT_SEG_HDR_LEN;
    s->wal_version = FMT_VERSION;
    if (s->opts.read_only)
        return 0;
    rc = store__create_wal(s, s->wal_no, s->next_seq, 1, &s->wal_fd);
    *dirty = 1;
    return rc;
}

static int remove_strays(ts_store *s, int *dirty)
{
    scan_names sn = {.above = s->wal_no, .live = s};
    char path[STORE_PATH_MAX];
    int rc = s->vfs->listdir(s->vfs, s->dir, on_name, &sn);
    if (rc)
        return store__err(s, rc, "listing %s: %s", s->dir, strerror(-rc));
    for (size_t i = 0; i < sn.n_strays; i++) {
        store__file_path(s, sn.stray_kind[i] == 'w' ? "wal" : "sst", sn.strays[i], path);
        rc = s->vfs->unlink(s->vfs, path);
        if (rc && rc != -ENOENT)
            return store__err(s, rc, "unlink(%s): %s", path, strerror(-rc));
        *dirty = 1;
    }
    store__join(s, FMT_MAN_TMP_NAME, path);
    if (s->vfs->unlink(s->vfs, path) == 0)
        *dirty = 1;
    return 0;
}

/* A new store directory must itself survive a power cut. */
static int sync_parent(ts_store *s, const char *dir)
{
    char parent[STORE_PATH_MAX];
    const char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else
        snprintf(parent, sizeof(parent), "%.*s", slash == dir ? 1 : (int)(slash - dir), dir);
    s->st.fsyncs++;
    int rc = s->vfs->dirsync(s->vfs, parent);
    if (rc)
        return store__err(s, rc, "fsync(%s): %s", parent, strerror(-rc));
    return 0;
}

static int open_dir(ts_store *s, const char *dir)
{
    plat_stat st;
    int rc = s->vfs->stat(s->vfs, dir, &st);
    if (rc == -ENOENT && s->opts.create_if_missing && !s->opts.read_only) {
        rc = s->vfs->mkdir(s->vfs, dir);
        if (rc && rc != -EEXIST)
            return store__err(s, rc, "mkdir(%s): %s", dir, strerror(-rc));
        if (!rc && (rc = sync_parent(s, dir)))
            return rc;
        rc = s->vfs->stat(s->vfs, dir, &st);
    }
    if (rc == -ENOENT)
        return store__err(s, TS_ENOENT, "%s: no such directory", dir);
    if (rc)
        return store__err(s, rc, "stat(%s): %s", dir, strerror(-rc));
    if (!st.is_dir)
        return store__err(s, TS_ENOTDIR, "%s: not a directory", dir);
    if (!s->opts.read_only) {
        char lock[STORE_PATH_MAX];
        store__join(s, FMT_LOCK_NAME, lock);
        rc = s->vfs->lock(s->vfs, lock, &s->lock_fd);
        if (rc == -EBUSY || rc == -EAGAIN || rc == -EWOULDBLOCK)
            return store__err(s, TS_EBUSY, "%s: locked by another writer (%s)", dir, lock);
        if (rc)
            return store__err(s, rc, "lock(%s): %s", lock, strerror(-rc));
    }
    return 0;
}

/* Moves next_seq up to `floor`. A segment's seqs must run on without gaps
 * (FORMAT.md), so the open segment is sealed as it is and the next one
 * starts at floor: its header is replaced durably (a crash leaves the old
 * header or the new one). A success leaves ts_errmsg as it was: why
 * seqs were raised is the caller's to say. */
static int raise_seq(ts_store *s, uint64_t floor)
{
    char tmp[STORE_PATH_MAX], path[STORE_PATH_MAX];
    uint8_t hdr[FMT_SEG_HDR_LEN];
    struct iovec iov = {hdr, sizeof(hdr)};
    int rc = 0, fd = -1;
    if (s->mt.n && (rc = ts_flush(s, NULL, 0, NULL)))
        return rc;
    /* The empty segment's header may be all that remembers its base_seq
     * (SSTs released, or seqs raised before): truncating it in place could
     * leave an empty file, which recovery takes as holding nothing. The new
     * header goes to wal_{N+1} (a name recovery removes as a leftover),
     * synced, then is renamed over wal_N: a crash leaves one or the other. */
    store__file_path(s, "wal", s->wal_no + 1, tmp);
    store__file_path(s, "wal", s->wal_no, path);
    seg_hdr_encode(s->wal_no, floor, hdr);
    if ((rc = s->vfs->open(s->vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd))) {
        store__err(s, rc, "open(%s): %s", tmp, strerror(-rc));
        goto fail;
    }
    if ((rc = store__write(s, fd, &iov, 1, 0))) {
        store__err(s, rc, "write(%s): %s", tmp, strerror(-rc));
        goto fail;
    }
    if ((rc = store__sync(s, fd))) {
        store__err(s, rc, "fdatasync(%s): %s", tmp, strerror(-rc));
        goto fail;
    }
    if ((rc = s->vfs->rename(s->vfs, tmp, path))) {
        store__err(s, rc, "rename(%s, %s): %s", tmp, path, strerror(-rc));
        goto fail;
    }
    if ((rc = store__dirsync(s)))
        goto fail;
    if (s->wal_fd >= 0)
        s->vfs->close(s->vfs, s->wal_fd);
    s->wal_fd = fd;
    s->next_seq = s->wal_base_seq = floor;
    s->wal_end = FMT_SEG_HDR_LEN;
    s->wal_version = FMT_VERSION;
    s->mt.bytes = 0;
    return 0;
fail:
    if (fd >= 0)
        s->vfs->close(s->vfs, fd);
    s->failed = 1; /* the segment's state is unknown: reopen (recovery) before writing */
    return rc;
}

int ts_raise_seq(ts_store *s, uint64_t floor)
{
    int rc = store__check_writable(s);
    if (rc || floor <= s->next_seq)
        return rc;
    return raise_seq(s, floor);
}

static int recover(ts_store *s)
{
    uint64_t *live = NULL, floor = 1;
    size_t n_live = 0;
    int dirty = 0, rc;
    rc = read_manifest(s, &s->wal_no, &live, &n_live);
    if (rc == -ENOENT) {
        scan_names sn = {.above = UINT64_MAX};
        rc = s->vfs->listdir(s->vfs, s->dir, on_name, &sn);
        if (rc) {
            store__err(s, rc, "listing %s: %s", s->dir, strerror(-rc));
            goto out;
        }
        if (sn.has_store_files) {
            rc = store__err(s, TS_ENOTSTORE, "%s: WAL/SST files but no MANIFEST", s->dir);
            goto out;
        }
        if (s->opts.read_only || !s->opts.create_if_missing) {
            rc = store__err(s, TS_ENOENT, "%s: no store here (no MANIFEST)", s->dir);
            goto out;
        }
        s->wal_no = 0;
        s->next_seq = 1;
        dirty = 1;
        rc = open_wal(s, &dirty);
        goto finish;
    }
    if (rc)
        goto out;
    s->next_seq = 1; /* raised by every SST opened (store__add_sst) */
    for (size_t i = 0; i < n_live; i++)
        if ((rc = open_sst(s, live[i], &dirty)))
            goto out;
    floor = s->next_seq;
    rc = open_wal(s, &dirty);
finish:
    if (rc)
        goto out;
    if (s->opts.read_only) {
        if (s->next_seq < floor)
            s->next_seq = floor;
        goto out;
    }
    if ((rc = remove_strays(s, &dirty)))
        goto out;
    if (dirty) {
        rc = store__write_manifest(s, s->wal_no, 0);
        if (!rc)
            rc = store__dirsync(s);
    }
    /* A store written before sequence numbers were raised past adopted SSTs
     * may hold an open segment whose seqs continue below the SSTs' highest. */
    if (!rc && s->next_seq < floor) {
        uint64_t was = s->next_seq;
        rc = raise_seq(s, floor);
        /* Not an error: left in ts_errmsg so the caller can report it. */
        if (!rc)
            store__err(s, 0, "%s: sequence numbers raised from %" PRIu64 " to %" PRIu64
                       " (the open segment continued below a sealed one)", s->dir, was, floor);
    }
    /* A store written in format version 1: its open segment may only hold
     * plain batches, so it is sealed (with a version 2 index) and the next
     * one is written in version 2. An empty one is just started again. */
    if (!rc && s->wal_version == FMT_VERSION_V1)
        rc = raise_seq(s, s->next_seq);
out:
    free(live);
    return rc;
}

int ts_open(const char *dir, const ts_options *opts, ts_store **out, char *errbuf, size_t errlen)
{
    ts_store *s = calloc(1, sizeof(*s));
    int rc;
    *out = NULL;
    if (!s) {
        rc = TS_ENOMEM;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return rc;
    }
    s->lock_fd = -1;
    s->wal_fd = -1;
    mt_init(&s->mt);
    keymap_init(&s->km);
    if (opts)
        s->opts = *opts;
    else
        ts_options_init(&s->opts);
    if (!s->opts.memtable_max)
        s->opts.memtable_max = STORE_DEFAULT_MEMTABLE_MAX;
    s->vfs = s->opts.vfs ? s->opts.vfs : plat_vfs_default();
    fcache_init(&s->cache, s->opts.frame_cache_bytes);
    s->dir = strdup(dir ? dir : "");
    if (!s->dir || !dir || !dir[0] || strlen(dir) > STORE_PATH_MAX - 64) {
        rc = store__err(s, s->dir ? TS_EINVAL : TS_ENOMEM, "bad store directory name");
        goto out;
    }
    rc = open_dir(s, dir);
    if (!rc)
        rc = recover(s);
out:
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", s->err[0] ? s->err : ts_strerror(rc));
        ts_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ts_close(ts_store *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < s->n_ssts; i++)
        sst_close(s->vfs, &s->ssts[i]);
    free(s->ssts);
    keymap_free(&s->km);
    if (s->wal_fd >= 0)
        s->vfs->close(s->vfs, s->wal_fd);
    if (s->lock_fd >= 0)
        s->vfs->close(s->vfs, s->lock_fd);
    mt_free(&s->mt);
    store__frame_cache_free(s);
    fcache_free(&s->cache);
    for (size_t i = 0; i < sizeof(s->scratch) / sizeof(s->scratch[0]); i++)
        free(s->scratch[i]);
    free(s->dir);
    free(s);
    return 0;
}

void ts_get_stats(const ts_store *s, ts_stats *st)
{
    *st = s->st;
    st->n_sst = s->n_ssts;
    st->memtable_entries = s->mt.n;
    st->memtable_bytes = s->mt.bytes;
    st->n_entries = s->mt.n;
    st->disk_bytes = s->wal_end;
    for (size_t i = 0; i < s->n_ssts; i++) {
        st->n_entries += s->ssts[i].f.n_entries;
        st->disk_bytes += s->ssts[i].file_size;
    }
    st->next_seq = s->next_seq;
    st->mapped_bytes = s->mapped;
    st->frame_cache_bytes = s->cache.bytes;
}

int ts_list_files(const ts_store *s, ts_file_fn fn, void *ctx)
{
    int rc = 0;
    if (s->wal_fd >= 0) {
        ts_file_info w = {.file_no = s->wal_no, .is_wal = 1, .bytes = s->wal_end,
                          .n_entries = s->mt.n};
        rc = fn(ctx, &w);
    }
    for (size_t i = 0; i < s->n_ssts && !rc; i++) {
        const sst *t = &s->ssts[i];
        ts_file_info f = {.file_no = t->file_no, .bytes = t->file_size,
                          .n_entries = t->f.n_entries, .min_seq = t->f.min_seq,
                          .max_seq = t->f.max_seq};
        if (t->bounds) {
            f.first_key = t->bounds;
            f.first_len = t->first_len;
            f.last_key = t->bounds + t->first_len;
            f.last_len = t->last_len;
        }
        rc = fn(ctx, &f);
    }
    return rc;
}

uint64_t ts_memtable_max(const ts_store *s)
{
    return s->opts.memtable_max;
}
