/*
 * snapshot.c -- sealing, listing and deleting snapshots (contract and
 * layout in snapshot.h).
 *
 * Crash safety rests on two commit points. Sealing: ts_checkpoint fills
 * .seal-new, a rename to .seal-NAME plus an fsync of ROOT commits it, and
 * only then ts_release drops the tensors from the store; recovery finishes
 * the release, and a .seal-new is always garbage (the store still holds
 * its tensors). Finishing: MANIFEST.json and STATE are written and synced
 * inside .seal-NAME, then the rename to NAME publishes the snapshot whole.
 * Deleting renames to .del-NAME first. All file calls go through the
 * platform vfs; SHA-256 is mbedTLS's.
 */
#include "snapshot.h"

#include "embeddb/plat.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/sha256.h>

#define PATH_LEN 4096
#define SEAL_PREFIX ".seal-"
#define SEAL_NEW ".seal-new"
#define DEL_PREFIX ".del-"
#define JSON_NAME "MANIFEST.json"
#define STATE_NAME "STATE"
#define JSON_MAX (16u << 20) /* MANIFEST.json read back: ~150k files */
#define FINISH_TRIES 5       /* transient failures before a seal is set aside */

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *why(int rc)
{
    return ts_strerror(rc);
}

const char *snap_state_name(snap_state st)
{
    static const char *names[] = {"sealed", "uploading", "uploaded", "failed", "sealing"};
    return (unsigned)st < 5 ? names[st] : "?";
}

int snap_device_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > SNAP_DEVICE_ID_MAX || id[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
            return 0;
    return 1;
}

int snap_root(const char *store_dir, char *out, size_t len)
{
    return plat_path_join(out, len, store_dir, SNAP_ROOT_NAME);
}

int snap_name_ok(const char *name, uint64_t *seq)
{
    char dev[SNAP_DEVICE_ID_MAX + 1];
    size_t n = strlen(name);
    uint64_t v = 0;
    if (n < 22 || n - 21 > SNAP_DEVICE_ID_MAX || name[n - 21] != '-')
        return 0;
    memcpy(dev, name, n - 21);
    dev[n - 21] = 0;
    if (!snap_device_id_ok(dev))
        return 0;
    for (const char *p = name + n - 20; *p; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (!isdigit((unsigned char)*p) || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (seq)
        *seq = v;
    return 1;
}

static int parse_name(const char *name, uint64_t *seq)
{
    return snap_name_ok(name, seq);
}

/* ---- small file helpers ------------------------------------------------ */

static int join3(char *out, const char *a, const char *b, const char *c)
{
    int n = snprintf(out, PATH_LEN, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
    return n < 0 || n >= PATH_LEN ? -ENAMETOOLONG : 0;
}

/* dir/name <- buf, durably replaced (temp, fdatasync, rename); the caller
 * syncs dir. */
static int put_file(plat_vfs *vfs, const char *dir, const char *name, const void *buf, size_t len, char *err,
                    size_t errlen)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    int fd = -1, rc;
    if ((rc = join3(path, dir, name, ""))) {
        seterr(err, errlen, rc, "%s/%s: path too long", dir, name);
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((rc = vfs->open(vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd))) {
        seterr(err, errlen, rc, "open(%s): %s", tmp, why(rc));
        goto out;
    }
    if ((rc = plat_write_all(vfs, fd, buf, len, 0))) {
        seterr(err, errlen, rc, "write(%s): %s", tmp, why(rc));
        goto out;
    }
    if ((rc = vfs->fdatasync(vfs, fd))) {
        seterr(err, errlen, rc, "fdatasync(%s): %s", tmp, why(rc));
        goto out;
    }
    if ((rc = vfs->rename(vfs, tmp, path)))
        seterr(err, errlen, rc, "rename(%s, %s): %s", tmp, path, why(rc));
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    return rc;
}

/* Whole small file into a NUL-terminated malloc'ed buffer (limit bytes). */
static int slurp(plat_vfs *vfs, const char *path, size_t limit, char **out, size_t *len)
{
    plat_stat st;
    char *buf = NULL;
    int fd = -1, rc;
    *out = NULL;
    if ((rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd)) || (rc = vfs->fstat(vfs, fd, &st)))
        goto out;
    if (st.size > limit) {
        rc = TS_ECORRUPT;
        goto out;
    }
    if (!(buf = malloc(st.size + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = plat_read_exact(vfs, fd, buf, st.size, 0)))
        goto out;
    buf[st.size] = 0;
    *len = st.size;
    *out = buf;
    buf = NULL;
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    free(buf);
    return rc;
}

typedef struct names {
    char (*v)[SNAP_NAME_MAX + 16];
    size_t n, cap;
    const char *prefix;   /* keep names starting with this ("" = all) */
} names;

static int collect(void *ctx, const char *name)
{
    names *ns = ctx;
    if (strncmp(name, ns->prefix, strlen(ns->prefix)) || strlen(name) >= SNAP_NAME_MAX + 16)
        return 0;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 16;
        void *p = realloc(ns->v, cap * sizeof(*ns->v));
        if (!p)
            return -ENOMEM;
        ns->v = p;
        ns->cap = cap;
    }
    snprintf(ns->v[ns->n++], sizeof(*ns->v), "%s", name);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorted entries of dir starting with prefix; ns->v malloc'ed. */
static int list_names(plat_vfs *vfs, const char *dir, const char *prefix, names *ns)
{
    memset(ns, 0, sizeof(*ns));
    ns->prefix = prefix;
    int rc = vfs->listdir(vfs, dir, collect, ns);
    if (!rc && ns->n)
        qsort(ns->v, ns->n, sizeof(*ns->v), cmp_names);
    return rc;
}

/* Bytes of the regular files in dir. */
static uint64_t dir_bytes(plat_vfs *vfs, const char *dir)
{
    names ns;
    char p[PATH_LEN];
    plat_stat st;
    uint64_t total = 0;
    if (list_names(vfs, dir, "", &ns) == 0)
        for (size_t i = 0; i < ns.n; i++)
            if (!join3(p, dir, ns.v[i], "") && !vfs->stat(vfs, p, &st) && st.is_reg)
                total += st.size;
    free(ns.v);
    return total;
}

/* rm -r of a flat directory (snapshots hold files only). */
static int remove_dir(plat_vfs *vfs, const char *dir)
{
    names ns;
    char p[PATH_LEN];
    int rc = list_names(vfs, dir, "", &ns);
    for (size_t i = 0; !rc && i < ns.n; i++) {
        if ((rc = join3(p, dir, ns.v[i], "")))
            break;
        rc = vfs->unlink(vfs, p);
        if (rc == -ENOENT)
            rc = 0;
    }
    free(ns.v);
    if (!rc)
        rc = vfs->rmdir(vfs, dir);
    return rc == -ENOENT ? 0 : rc;
}

/* mkdir -p for ROOT only (its parent is the store directory). */
static int ensure_root(plat_vfs *vfs, const char *root)
{
    plat_stat st;
    int rc = vfs->stat(vfs, root, &st);
    if (rc == -ENOENT) {
        char parent[PATH_LEN];
        snprintf(parent, sizeof(parent), "%s", root);
        char *slash = strrchr(parent, '/');
        if ((rc = vfs->mkdir(vfs, root)) && rc != -EEXIST)
            return rc;
        if (slash) {
            *slash = 0;
            rc = vfs->dirsync(vfs, parent[0] ? parent : "/");
        } else {
            rc = vfs->dirsync(vfs, ".");
        }
    }
    return rc;
}

/* ---- sealing (main thread) --------------------------------------------- */

int snap_begin(plat_vfs *vfs, ts_store *s, const char *root, const char *device_id, char *name, size_t name_len,
               ts_checkpoint_info *info, char *err, size_t errlen)
{
    char tmp[PATH_LEN], dst[PATH_LEN], leaf[SNAP_NAME_MAX + 8];
    int rc;
    if ((rc = ensure_root(vfs, root)))
        return seterr(err, errlen, rc, "mkdir(%s): %s", root, why(rc));
    if ((rc = join3(tmp, root, SEAL_NEW, "")))
        return seterr(err, errlen, rc, "%s: path too long", root);
    remove_dir(vfs, tmp); /* a leftover never holds anything the store lacks */
    if ((rc = ts_checkpoint(s, tmp, info))) {
        seterr(err, errlen, rc, "%s", ts_errmsg(s));
        if (rc != TS_ENOTFOUND)
            remove_dir(vfs, tmp);
        return rc;
    }
    snprintf(name, name_len, "%s-%020" PRIu64, device_id, info->min_seq);
    snprintf(leaf, sizeof(leaf), SEAL_PREFIX "%s", name);
    if ((rc = join3(dst, root, leaf, "")))
        return seterr(err, errlen, rc, "%s/%s: path too long", root, leaf);
    if ((rc = vfs->rename(vfs, tmp, dst)))
        return seterr(err, errlen, rc, "rename(%s, %s): %s", tmp, dst, why(rc));
    if ((rc = vfs->dirsync(vfs, root)))
        return seterr(err, errlen, rc, "fsync(%s): %s", root, why(rc));
    if ((rc = ts_release(s, info->last_file)))
        return seterr(err, errlen, rc, "releasing the snapshot's files: %s", ts_errmsg(s));
    return 0;
}

/* Highest SST number in a checkpoint directory, after proving it whole
 * with a read-only open (every SST its MANIFEST names is there and sound). */
static int checkpoint_last_file(plat_vfs *vfs, const char *dir, uint64_t *last, char *err, size_t errlen)
{
    ts_options o;
    ts_store *c = NULL;
    names ns;
    int rc;
    *last = 0;
    ts_options_init(&o);
    o.read_only = 1;
    o.vfs = vfs;
    if ((rc = ts_open(dir, &o, &c, err, errlen)))
        return rc;
    ts_close(c);
    rc = list_names(vfs, dir, "sst_", &ns);
    for (size_t i = 0; !rc && i < ns.n; i++) {
        unsigned long long v;
        if (sscanf(ns.v[i], "sst_%llu.sst", &v) == 1 && v > *last)
            *last = v;
    }
    free(ns.v);
    return rc;
}

static int set_aside(plat_vfs *vfs, const char *root, const char *leaf, const char *reason);

/* For functions that go on past failures: the first failure's code and
 * message are kept (returns first, or rc when first is 0). */
static int note(int first, char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int note(int first, char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    if (first)
        return first;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int snap_recover(plat_vfs *vfs, ts_store *s, const char *root, size_t *n_seals, char *err,
                 size_t errlen)
{
    static const char *const tmps[] = {STATE_NAME ".tmp", JSON_NAME ".tmp"};
    names ns = {0};
    char p[PATH_LEN], q[PATH_LEN], msg[512];
    plat_stat st;
    int rc = 0, first = 0;
    *n_seals = 0;
    if (vfs->stat(vfs, root, &st) == -ENOENT)
        return 0;
    if ((rc = list_names(vfs, root, "", &ns)))
        return seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    for (size_t i = 0; i < ns.n; i++) {
        const char *e = ns.v[i];
        if (join3(p, root, e, ""))
            continue;
        if (!strcmp(e, SEAL_NEW) || !strncmp(e, DEL_PREFIX, strlen(DEL_PREFIX))) {
            if ((rc = remove_dir(vfs, p)))
                first = note(first, err, errlen, rc, "removing %s: %s", p, why(rc));
        } else if (!strncmp(e, SEAL_PREFIX, strlen(SEAL_PREFIX))) {
            uint64_t last = 0;
            if (!snap_name_ok(e + strlen(SEAL_PREFIX), NULL))
                continue;
            if ((rc = checkpoint_last_file(vfs, p, &last, msg, sizeof(msg)))) {
                /* Nothing is released for it: the store keeps what it has. */
                first = note(first, err, errlen, rc, "snapshot being sealed %s does not open: %s; "
                      "set aside as failed", p, msg);
                set_aside(vfs, root, e, msg);
                continue;
            }
            if ((rc = ts_release(s, last))) {
                first = note(first, err, errlen, rc, "releasing %s from the store: %s", p,
                      ts_errmsg(s));
                continue;
            }
            (*n_seals)++;
        } else if (snap_name_ok(e, NULL)) {
            /* A STATE or MANIFEST.json write the power cut interrupted. */
            for (size_t k = 0; k < sizeof(tmps) / sizeof(tmps[0]); k++)
                if (!join3(q, root, e, tmps[k]))
                    vfs->unlink(vfs, q);
        }
    }
    free(ns.v);
    /* An upload that was running when the process died starts over. */
    snap_info *list = NULL;
    size_t n = 0;
    if ((rc = snap_list(vfs, root, &list, &n, NULL)))
        first = note(first, err, errlen, rc, "listing %s: %s", root, why(rc));
    for (size_t i = 0; i < n; i++)
        if (list[i].state == SNAP_UPLOADING) {
            list[i].state = SNAP_SEALED;
            if ((rc = snap_write_state(vfs, root, &list[i])))
                first = note(first, err, errlen, rc, "%s/%s/STATE: %s", root, list[i].name, why(rc));
        }
    free(list);
    if ((rc = vfs->dirsync(vfs, root)))
        first = note(first, err, errlen, rc, "fsync(%s): %s", root, why(rc));
    return first;
}

/* The first bytes of a small file, NUL-terminated (a MANIFEST.json's head
 * holds its seq_range). */
static int read_head(plat_vfs *vfs, const char *path, char *buf, size_t len)
{
    size_t got = 0;
    int fd = -1, rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd);
    if (!rc)
        rc = vfs->pread(vfs, fd, buf, len - 1, 0, &got);
    if (fd >= 0)
        vfs->close(vfs, fd);
    buf[rc ? 0 : got] = 0;
    return rc;
}

int snap_seq_floor(plat_vfs *vfs, const char *root, uint64_t *floor, char *err, size_t errlen)
{
    names ns = {0};
    char p[PATH_LEN], head[4096], msg[512];
    int rc;
    *floor = 1;
    if ((rc = list_names(vfs, root, "", &ns))) {
        free(ns.v);
        return rc == -ENOENT ? 0 : seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    }
    for (size_t i = 0; i < ns.n; i++) {
        const char *e = ns.v[i], *name = e;
        uint64_t seq = 0;
        int sealing = !strncmp(e, SEAL_PREFIX, strlen(SEAL_PREFIX));
        if (sealing)
            name = e + strlen(SEAL_PREFIX);
        else if (!strncmp(e, DEL_PREFIX, strlen(DEL_PREFIX)))
            name = e + strlen(DEL_PREFIX);
        if (!snap_name_ok(name, &seq))
            continue;
        if (seq + 1 > *floor)
            *floor = seq + 1;
        if (sealing) {
            ts_options o;
            ts_store *c = NULL;
            ts_stats st;
            ts_options_init(&o);
            o.read_only = 1;
            o.vfs = vfs;
            if (!join3(p, root, e, "") && ts_open(p, &o, &c, msg, sizeof(msg)) == 0) {
                ts_get_stats(c, &st);
                if (st.next_seq > *floor)
                    *floor = st.next_seq;
                ts_close(c);
            }
        } else if (name == e && !join3(p, root, e, JSON_NAME) &&
                   read_head(vfs, p, head, sizeof(head)) == 0) {
            unsigned long long lo, hi;
            const char *r = strstr(head, "\"seq_range\": [");
            if (r && sscanf(r, "\"seq_range\": [%llu, %llu]", &lo, &hi) == 2 && hi + 1 > *floor)
                *floor = hi + 1;
        }
    }
    free(ns.v);
    return 0;
}

/* ---- finishing (worker thread) ------------------------------------------ */

/* A growing text buffer with a sticky error, like rio's: check once. */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static void jb_add(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_add(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A JSON string of arbitrary bytes: escapes quotes, backslashes and
 * control bytes; bytes >= 0x80 go out as \u00XX so the file stays ASCII. */
static void jb_str(jbuf *b, const uint8_t *s, size_t n)
{
    jb_add(b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            jb_add(b, "\\%c", s[i]);
        else if (s[i] < 0x20 || s[i] >= 0x7f)
            jb_add(b, "\\u%04x", s[i]);
        else
            jb_add(b, "%c", s[i]);
    }
    jb_add(b, "\"");
}

typedef struct topic_count {
    char *name;
    uint64_t n;
} topic_count;

typedef struct scan_stats {
    uint64_t tensors;
    int64_t t_min, t_max;
    uint64_t seq_min, seq_max;
    uint8_t *k_min, *k_max;
    size_t k_min_len, k_max_len;
    topic_count *topics;
    size_t n_topics, cap_topics, last_hit;
    int oom;
} scan_stats;

static int on_entry(void *ctx, const ts_entry *e)
{
    scan_stats *ss = ctx;
    if (!ss->tensors) {
        ss->t_min = ss->t_max = e->timestamp_ns;
        ss->seq_min = ss->seq_max = e->seq;
        ss->k_min = malloc(e->key_len);
        if (!ss->k_min)
            return -ENOMEM;
        memcpy(ss->k_min, e->key, e->key_len);
        ss->k_min_len = e->key_len;
    }
    ss->tensors++;
    if (e->timestamp_ns < ss->t_min)
        ss->t_min = e->timestamp_ns;
    if (e->timestamp_ns > ss->t_max)
        ss->t_max = e->timestamp_ns;
    if (e->seq < ss->seq_min)
        ss->seq_min = e->seq;
    if (e->seq > ss->seq_max)
        ss->seq_max = e->seq;
    /* Keys arrive in order: the last one seen is the maximum. */
    uint8_t *k = realloc(ss->k_max, e->key_len ? e->key_len : 1);
    if (!k)
        return -ENOMEM;
    memcpy(k, e->key, e->key_len);
    ss->k_max = k;
    ss->k_max_len = e->key_len;
    /* Topics: keys <topic>#<n> keep a topic's tensors together, so the
     * last hit is almost always the one. */
    size_t i = ss->last_hit;
    if (i >= ss->n_topics || strcmp(ss->topics[i].name, e->name))
        for (i = 0; i < ss->n_topics && strcmp(ss->topics[i].name, e->name); i++)
            ;
    if (i == ss->n_topics) {
        if (ss->n_topics == ss->cap_topics) {
            size_t cap = ss->cap_topics ? 2 * ss->cap_topics : 8;
            topic_count *t = realloc(ss->topics, cap * sizeof(*t));
            if (!t)
                return -ENOMEM;
            ss->topics = t;
            ss->cap_topics = cap;
        }
        if (!(ss->topics[i].name = strdup(e->name)))
            return -ENOMEM;
        ss->topics[i].n = 0;
        ss->n_topics++;
    }
    ss->topics[i].n++;
    ss->last_hit = i;
    return 0;
}

static void scan_stats_free(scan_stats *ss)
{
    for (size_t i = 0; i < ss->n_topics; i++)
        free(ss->topics[i].name);
    free(ss->topics);
    free(ss->k_min);
    free(ss->k_max);
}

typedef struct hashed {
    char name[64];
    uint64_t bytes;
    char sha[65];
} hashed;

static void hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

/* SHA-256 of the file at path into h and, when tar is given, its tar member
 * bytes (header, data, padding) into tar: one read pass for both. */
static int hash_file(plat_vfs *vfs, const char *path, hashed *h, mbedtls_sha256_context *tar, const char *dir,
                     int64_t mtime, uint8_t *buf, size_t buf_len)
{
    mbedtls_sha256_context c;
    uint8_t hdr[TAR_BLOCK], sum[32];
    static const uint8_t zeros[TAR_BLOCK];
    plat_stat st;
    int fd = -1, rc;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    if ((rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd)) || (rc = vfs->fstat(vfs, fd, &st)))
        goto out;
    h->bytes = st.size;
    if (tar && (rc = tar_header(dir, h->name, st.size, mtime, hdr)))
        goto out;
    if (tar)
        mbedtls_sha256_update_ret(tar, hdr, sizeof(hdr));
    for (uint64_t off = 0; off < st.size;) {
        size_t want = st.size - off < buf_len ? (size_t)(st.size - off) : buf_len;
        if ((rc = plat_read_exact(vfs, fd, buf, want, off)))
            goto out;
        mbedtls_sha256_update_ret(&c, buf, want);
        if (tar)
            mbedtls_sha256_update_ret(tar, buf, want);
        off += want;
    }
    if (tar && st.size % TAR_BLOCK)
        mbedtls_sha256_update_ret(tar, zeros, TAR_BLOCK - st.size % TAR_BLOCK);
    mbedtls_sha256_finish_ret(&c, sum);
    hex(sum, sizeof(sum), h->sha);
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    mbedtls_sha256_free(&c);
    return rc;
}

static void fmt_utc(int64_t ns, char out[32])
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void state_text(const snap_info *si, jbuf *b)
{
    jb_add(b,
           "state=%s\ntensors=%" PRIu64 "\ntar_bytes=%" PRIu64 "\ntar_sha256=%s\ncreated_ns=%" PRId64
           "\nattempts=%" PRIu64 "\nupdated_ns=%" PRId64 "\nerror=%s\n",
           snap_state_name(si->state), si->tensors, si->tar_bytes, si->tar_sha256, si->created_ns,
           si->attempts, si->updated_ns, si->error);
}

/* Finishes ROOT/.seal-NAME (see snap_finish_all). */
static int finish_one(plat_vfs *vfs, const char *root, const char *leaf, const char *device_id, char *err,
                      size_t errlen)
{
    char dir[PATH_LEN], p[PATH_LEN], dst[PATH_LEN], t0[32], t1[32];
    const char *name = leaf + strlen(SEAL_PREFIX);
    scan_stats ss = {0};
    hashed *files = NULL;
    names ns = {0};
    jbuf js = {0}, sb = {0};
    uint8_t *buf = NULL, sum[32];
    size_t n_files = 0;
    ts_store *c = NULL;
    ts_options o;
    snap_info si;
    mbedtls_sha256_context tar;
    int rc;
    mbedtls_sha256_init(&tar);
    mbedtls_sha256_starts_ret(&tar, 0);
    memset(&si, 0, sizeof(si));
    if ((rc = join3(dir, root, leaf, "")) || (rc = join3(dst, root, name, ""))) {
        seterr(err, errlen, rc, "%s/%s: path too long", root, leaf);
        goto out;
    }
    ts_options_init(&o);
    o.read_only = 1;
    o.vfs = vfs;
    if ((rc = ts_open(dir, &o, &c, err, errlen)))
        goto out;
    if ((rc = ts_scan_prefix(c, NULL, 0, on_entry, &ss))) {
        seterr(err, errlen, rc, "scanning %s: %s", dir, ts_errmsg(c)[0] ? ts_errmsg(c) : why(rc));
        goto out;
    }
    ts_close(c);
    c = NULL;
    if ((rc = list_names(vfs, dir, "sst_", &ns)))
        goto io;
    files = calloc(ns.n + 1, sizeof(*files));
    buf = malloc(1 << 20);
    if (!files || !buf) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    si.created_ns = plat_now_ns();
    int64_t mtime = snap_tar_mtime(&si);
    for (size_t i = 0; i <= ns.n; i++) {
        snprintf(files[i].name, sizeof(files[i].name), "%s", i < ns.n ? ns.v[i] : "MANIFEST");
        if ((rc = join3(p, dir, files[i].name, "")) ||
            (rc = hash_file(vfs, p, &files[i], &tar, name, mtime, buf, 1 << 20)))
            goto io;
        n_files++;
    }
    /* MANIFEST.json: one file per line in "files" (snap_parse_file_line). */
    fmt_utc(ss.t_min, t0);
    fmt_utc(ss.t_max, t1);
    char created[32];
    fmt_utc(si.created_ns, created);
    jb_add(&js, "{\n  \"format\": \"embeddb-snapshot/1\",\n  \"device_id\": ");
    jb_str(&js, (const uint8_t *)device_id, strlen(device_id));
    jb_add(&js, ",\n  \"snapshot\": \"%s\",\n  \"created\": \"%s\",\n  \"created_ns\": %" PRId64
                ",\n  \"tensors\": %" PRIu64 ",\n  \"seq_range\": [%" PRIu64 ", %" PRIu64 "]"
                ",\n  \"time_range_ns\": [%" PRId64 ", %" PRId64 "]"
                ",\n  \"time_range\": [\"%s\", \"%s\"],\n  \"key_range\": [",
           name, created, si.created_ns, ss.tensors, ss.seq_min, ss.seq_max, ss.t_min, ss.t_max,
           t0, t1);
    jb_str(&js, ss.k_min ? ss.k_min : (const uint8_t *)"", ss.k_min_len);
    jb_add(&js, ", ");
    jb_str(&js, ss.k_max ? ss.k_max : (const uint8_t *)"", ss.k_max_len);
    jb_add(&js, "],\n  \"topics\": {");
    for (size_t i = 0; i < ss.n_topics; i++) {
        jb_add(&js, "%s\n    ", i ? "," : "");
        jb_str(&js, (const uint8_t *)ss.topics[i].name, strlen(ss.topics[i].name));
        jb_add(&js, ": %" PRIu64, ss.topics[i].n);
    }
    jb_add(&js, "%s},\n  \"files\": [\n", ss.n_topics ? "\n  " : "");
    for (size_t i = 0; i < n_files; i++)
        jb_add(&js, "    {\"name\": \"%s\", \"bytes\": %" PRIu64 ", \"sha256\": \"%s\"}%s\n",
               files[i].name, files[i].bytes, files[i].sha, i + 1 < n_files ? "," : "");
    jb_add(&js, "  ]\n}\n");
    if (js.oom) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    /* The tar stream's last member is MANIFEST.json, then two zero blocks. */
    {
        uint8_t hdr[TAR_BLOCK];
        static const uint8_t zeros[2 * TAR_BLOCK];
        if ((rc = tar_header(name, JSON_NAME, js.len, mtime, hdr))) {
            seterr(err, errlen, rc, "%s: name too long for tar", name);
            goto out;
        }
        mbedtls_sha256_update_ret(&tar, hdr, sizeof(hdr));
        mbedtls_sha256_update_ret(&tar, (const uint8_t *)js.p, js.len);
        if (js.len % TAR_BLOCK)
            mbedtls_sha256_update_ret(&tar, zeros, TAR_BLOCK - js.len % TAR_BLOCK);
        mbedtls_sha256_update_ret(&tar, zeros, sizeof(zeros));
        mbedtls_sha256_finish_ret(&tar, sum);
    }
    si.state = SNAP_SEALED;
    si.tensors = ss.tensors;
    si.updated_ns = si.created_ns;
    hex(sum, sizeof(sum), si.tar_sha256);
    si.tar_bytes = 2 * TAR_BLOCK;
    for (size_t i = 0; i < n_files; i++)
        si.tar_bytes += TAR_BLOCK + (files[i].bytes + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
    si.tar_bytes += TAR_BLOCK + (js.len + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
    state_text(&si, &sb);
    if (sb.oom) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    if ((rc = put_file(vfs, dir, JSON_NAME, js.p, js.len, err, errlen)) ||
        (rc = put_file(vfs, dir, STATE_NAME, sb.p, sb.len, err, errlen)))
        goto out;
    if ((rc = vfs->dirsync(vfs, dir))) {
        seterr(err, errlen, rc, "fsync(%s): %s", dir, why(rc));
        goto out;
    }
    if ((rc = vfs->rename(vfs, dir, dst))) {
        seterr(err, errlen, rc, "rename(%s, %s): %s", dir, dst, why(rc));
        goto out;
    }
    if ((rc = vfs->dirsync(vfs, root)))
        seterr(err, errlen, rc, "fsync(%s): %s", root, why(rc));
    goto out;
io:
    seterr(err, errlen, rc, "reading %s: %s", p[0] ? p : dir, why(rc));
out:
    ts_close(c);
    mbedtls_sha256_free(&tar);
    scan_stats_free(&ss);
    free(ns.v);
    free(files);
    free(buf);
    free(js.p);
    free(sb.p);
    return rc;
}

/* Errors another try may cure: the seal waits for the next pass. */
static int transient(int rc)
{
    return rc == -ENOSPC || rc == -EIO || rc == -ENOMEM || rc == -EDQUOT || rc == -EAGAIN ||
           rc == -EINTR || rc == -EMFILE || rc == -ENFILE || rc == -EBUSY;
}

/* Publishes ROOT/LEAF (a .seal-NAME) as NAME in state failed with reason:
 * visible to snap_list and an operator, never uploaded, never blocking. */
static int set_aside(plat_vfs *vfs, const char *root, const char *leaf, const char *reason)
{
    char dir[PATH_LEN], dst[PATH_LEN];
    const char *name = leaf + strlen(SEAL_PREFIX);
    snap_info si;
    jbuf b = {0};
    int rc;
    memset(&si, 0, sizeof(si));
    si.state = SNAP_FAILED;
    si.created_ns = si.updated_ns = plat_now_ns();
    snprintf(si.error, sizeof(si.error), "sealing failed: %s", reason);
    for (char *c = si.error; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if ((rc = join3(dir, root, leaf, "")) || (rc = join3(dst, root, name, "")))
        return rc;
    state_text(&si, &b);
    rc = b.oom ? -ENOMEM : put_file(vfs, dir, STATE_NAME, b.p, b.len, NULL, 0);
    free(b.p);
    if (!rc)
        rc = vfs->dirsync(vfs, dir);
    if (!rc)
        rc = vfs->rename(vfs, dir, dst);
    if (!rc)
        rc = vfs->dirsync(vfs, root);
    return rc;
}

/* Records a transient failure in .seal-NAME/STATE (best effort: a full disk
 * may refuse even that) and returns the attempts so far. */
static uint64_t count_attempt(plat_vfs *vfs, const char *root, const char *leaf, const char *msg)
{
    char dir[PATH_LEN], p[PATH_LEN];
    char *text = NULL;
    size_t len = 0;
    snap_info si;
    jbuf b = {0};
    memset(&si, 0, sizeof(si));
    if (join3(dir, root, leaf, "") || join3(p, root, leaf, STATE_NAME))
        return FINISH_TRIES;
    if (slurp(vfs, p, 64 << 10, &text, &len) == 0)
        snap_parse_state(text, len, &si);
    free(text);
    si.state = SNAP_SEALED;
    si.attempts++;
    si.updated_ns = plat_now_ns();
    snprintf(si.error, sizeof(si.error), "sealing: %s", msg);
    for (char *c = si.error; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    state_text(&si, &b);
    if (!b.oom && put_file(vfs, dir, STATE_NAME, b.p, b.len, NULL, 0) == 0)
        vfs->dirsync(vfs, dir);
    free(b.p);
    return si.attempts;
}

int snap_finish_all(plat_vfs *vfs, const char *root, const char *device_id, size_t *n_done,
                    size_t *n_failed, char *err, size_t errlen)
{
    names ns;
    char msg[1024];
    int rc, first = 0;
    *n_done = 0;
    if (n_failed)
        *n_failed = 0;
    if ((rc = list_names(vfs, root, SEAL_PREFIX, &ns))) {
        free(ns.v);
        return rc == -ENOENT ? 0 : seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    }
    for (size_t i = 0; i < ns.n; i++) {
        const char *leaf = ns.v[i];
        if (!strcmp(leaf, SEAL_NEW) || !snap_name_ok(leaf + strlen(SEAL_PREFIX), NULL))
            continue; /* .seal-new: the main thread is filling it */
        msg[0] = 0;
        if (!(rc = finish_one(vfs, root, leaf, device_id, msg, sizeof(msg)))) {
            (*n_done)++;
            continue;
        }
        if (transient(rc) && count_attempt(vfs, root, leaf, msg) < FINISH_TRIES) {
            first = note(first, err, errlen, rc, "%s (retried later)", msg);
            continue;
        }
        int ar = set_aside(vfs, root, leaf, msg);
        first = note(first, err, errlen, rc, "%s; %s", msg,
                     ar ? "setting it aside failed too" : "set aside as failed");
        if (!ar && n_failed)
            (*n_failed)++;
    }
    free(ns.v);
    return first;
}

/* ---- state and listing --------------------------------------------------- */

int snap_parse_state(const char *text, size_t len, snap_info *si)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        char val[256];
        if (le == p) {
            p = le + 1;
            continue;
        }
        if (!eq)
            return TS_ECORRUPT;
        size_t kl = (size_t)(eq - p), vl = (size_t)(le - eq - 1);
        if (vl >= sizeof(val))
            vl = sizeof(val) - 1;
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
#define KEY(k) (kl == strlen(k) && !memcmp(p, k, kl))
        if (KEY("state")) {
            int found = 0;
            for (int s = SNAP_SEALED; s <= SNAP_FAILED; s++) /* "sealing" is never stored */
                if (!strcmp(val, snap_state_name((snap_state)s))) {
                    si->state = (snap_state)s;
                    found = 1;
                }
            if (!found)
                return TS_ECORRUPT;
        } else if (KEY("tensors")) {
            si->tensors = strtoull(val, NULL, 10);
        } else if (KEY("tar_bytes")) {
            si->tar_bytes = strtoull(val, NULL, 10);
        } else if (KEY("tar_sha256")) {
            snprintf(si->tar_sha256, sizeof(si->tar_sha256), "%.64s", val);
        } else if (KEY("created_ns")) {
            si->created_ns = strtoll(val, NULL, 10);
        } else if (KEY("attempts")) {
            si->attempts = strtoull(val, NULL, 10);
        } else if (KEY("updated_ns")) {
            si->updated_ns = strtoll(val, NULL, 10);
        } else if (KEY("error")) {
            snprintf(si->error, sizeof(si->error), "%s", val);
        }
#undef KEY
        p = le + (nl != NULL);
    }
    return 0;
}

int snap_read(plat_vfs *vfs, const char *root, const char *name, snap_info *out)
{
    char dir[PATH_LEN], p[PATH_LEN];
    char *text = NULL;
    size_t len = 0;
    int rc;
    memset(out, 0, sizeof(*out));
    if (strlen(name) >= sizeof(out->name) || !parse_name(name, &out->seq))
        return -ENOENT;
    snprintf(out->name, sizeof(out->name), "%s", name);
    if ((rc = join3(dir, root, name, "")) || (rc = join3(p, root, name, STATE_NAME)))
        return rc;
    if ((rc = slurp(vfs, p, 64 << 10, &text, &len)))
        return rc;
    rc = snap_parse_state(text, len, out);
    free(text);
    out->disk_bytes = dir_bytes(vfs, dir);
    return rc;
}

static int cmp_seq(const void *a, const void *b)
{
    const snap_info *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int snap_list(plat_vfs *vfs, const char *root, snap_info **out, size_t *n, uint64_t *pending_bytes)
{
    names ns;
    snap_info *v = NULL;
    char p[PATH_LEN];
    int rc;
    *out = NULL;
    *n = 0;
    if (pending_bytes)
        *pending_bytes = 0;
    rc = list_names(vfs, root, "", &ns);
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc || !ns.n)
        goto out;
    if (!(v = calloc(ns.n, sizeof(*v)))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ns.n; i++) {
        uint64_t seq;
        const char *sealing = NULL;
        if (!strncmp(ns.v[i], SEAL_PREFIX, strlen(SEAL_PREFIX)) &&
            snap_name_ok(ns.v[i] + strlen(SEAL_PREFIX), &seq))
            sealing = ns.v[i] + strlen(SEAL_PREFIX);
        if (sealing) {
            /* Waiting for its hashes; STATE, if any, tells a failed try. */
            snap_info *si = &v[(*n)++];
            char *text = NULL;
            size_t len = 0;
            if (!join3(p, root, ns.v[i], STATE_NAME) && slurp(vfs, p, 64 << 10, &text, &len) == 0)
                snap_parse_state(text, len, si);
            free(text);
            snprintf(si->name, sizeof(si->name), "%s", sealing);
            si->seq = seq;
            si->state = SNAP_SEALING;
            if (!join3(p, root, ns.v[i], ""))
                si->disk_bytes = dir_bytes(vfs, p);
            continue;
        }
        if (ns.v[i][0] == '.') {
            if (pending_bytes && !join3(p, root, ns.v[i], ""))
                *pending_bytes += dir_bytes(vfs, p);
            continue;
        }
        if (!parse_name(ns.v[i], &seq))
            continue;
        int r = snap_read(vfs, root, ns.v[i], &v[*n]);
        if (r == -ENOENT)
            continue; /* not a snapshot (no STATE) */
        if (r) {
            /* Shown, never silently skipped: an operator must see it. */
            snprintf(v[*n].error, sizeof(v[*n].error), "STATE unreadable: %s", why(r));
            v[*n].state = SNAP_FAILED;
        }
        (*n)++;
    }
    qsort(v, *n, sizeof(*v), cmp_seq);
    *out = v;
    v = NULL;
out:
    free(v);
    free(ns.v);
    return rc;
}

int snap_write_state(plat_vfs *vfs, const char *root, const snap_info *si)
{
    char dir[PATH_LEN];
    jbuf b = {0};
    snap_info copy = *si;
    int rc;
    /* One line each: a newline in an error message would end the value. */
    for (char *c = copy.error; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if ((rc = join3(dir, root, si->name, "")))
        return rc;
    state_text(&copy, &b);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    rc = put_file(vfs, dir, STATE_NAME, b.p, b.len, NULL, 0);
    if (!rc)
        rc = vfs->dirsync(vfs, dir);
    free(b.p);
    return rc;
}

int snap_retry(plat_vfs *vfs, const char *root, const char *name, snap_info *si)
{
    char dir[PATH_LEN], json[PATH_LEN], seal[PATH_LEN], leaf[SNAP_NAME_MAX + 8];
    plat_stat st;
    int rc;
    if ((rc = snap_read(vfs, root, name, si)))
        return rc;
    if (si->state != SNAP_FAILED)
        return -EINVAL;
    snprintf(leaf, sizeof(leaf), SEAL_PREFIX "%s", name);
    if ((rc = join3(dir, root, name, "")) || (rc = join3(json, root, name, JSON_NAME)) ||
        (rc = join3(seal, root, leaf, "")))
        return rc;
    if (vfs->stat(vfs, json, &st) == -ENOENT) {
        /* Set aside before it was finished: hand it back to the finisher. */
        si->state = SNAP_SEALING;
        if ((rc = vfs->rename(vfs, dir, seal)))
            return rc;
        return vfs->dirsync(vfs, root);
    }
    si->state = SNAP_SEALED;
    si->attempts = 0;
    si->error[0] = 0;
    return snap_write_state(vfs, root, si);
}

int snap_delete(plat_vfs *vfs, const char *root, const char *name)
{
    char dir[PATH_LEN], del[PATH_LEN], leaf[SNAP_NAME_MAX + 8];
    int rc;
    snprintf(leaf, sizeof(leaf), DEL_PREFIX "%s", name);
    if ((rc = join3(dir, root, name, "")) || (rc = join3(del, root, leaf, "")))
        return rc;
    if ((rc = vfs->rename(vfs, dir, del)) || (rc = vfs->dirsync(vfs, root)))
        return rc;
    if ((rc = remove_dir(vfs, del)))
        return rc;
    return vfs->dirsync(vfs, root);
}

int64_t snap_tar_mtime(const snap_info *si)
{
    return si->created_ns / 1000000000;
}

/* ---- members and verification -------------------------------------------- */

int snap_parse_file_line(const char *line, char *name, size_t name_len, uint64_t *bytes,
                         char sha256[65])
{
    char nm[64], sha[65];
    unsigned long long b;
    int used = 0;
    while (*line == ' ')
        line++;
    if (sscanf(line, "{\"name\": \"%63[A-Za-z0-9_.]\", \"bytes\": %llu, \"sha256\": \"%64[0-9a-f]\"}%n",
               nm, &b, sha, &used) != 3 || strlen(sha) != 64 || !used)
        return 0;
    if (line[used] && line[used] != ',' && line[used] != '\n')
        return 0;
    if (strlen(nm) >= name_len)
        return 0;
    snprintf(name, name_len, "%s", nm);
    memcpy(sha256, sha, 65);
    *bytes = b;
    return 1;
}

typedef struct manifest_file {
    char name[64];
    uint64_t bytes;
    char sha[65];
} manifest_file;

/* The "files" of NAME/MANIFEST.json (*out malloc'ed). */
static int read_json_files(plat_vfs *vfs, const char *root, const char *name, manifest_file **out, size_t *n,
                           uint64_t *json_len)
{
    char p[PATH_LEN];
    char *text = NULL;
    size_t len = 0, cap = 0;
    manifest_file *v = NULL;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = join3(p, root, name, JSON_NAME)) || (rc = slurp(vfs, p, JSON_MAX, &text, &len)))
        return rc;
    *json_len = len;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        manifest_file f;
        if (snap_parse_file_line(line, f.name, sizeof(f.name), &f.bytes, f.sha)) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                manifest_file *q = realloc(v, cap * sizeof(*v));
                if (!q) {
                    rc = -ENOMEM;
                    break;
                }
                v = q;
            }
            v[(*n)++] = f;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (!rc && !*n)
        rc = TS_ECORRUPT;
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int snap_members(plat_vfs *vfs, const char *root, const char *name, tar_member **m, size_t *n)
{
    manifest_file *files = NULL;
    size_t nf = 0;
    uint64_t json_len = 0;
    int rc = read_json_files(vfs, root, name, &files, &nf, &json_len);
    *m = NULL;
    *n = 0;
    if (rc)
        return rc;
    /* One allocation: members, then path and name strings. */
    size_t per = PATH_LEN + 64;
    tar_member *v = malloc((nf + 1) * (sizeof(*v) + per));
    if (!v) {
        free(files);
        return -ENOMEM;
    }
    char *strs = (char *)(v + nf + 1);
    for (size_t i = 0; i <= nf && !rc; i++) {
        char *path = strs + i * per, *nm = path + PATH_LEN;
        snprintf(nm, 64, "%s", i < nf ? files[i].name : JSON_NAME);
        rc = join3(path, root, name, nm);
        v[i] = (tar_member){.path = path, .name = nm, .size = i < nf ? files[i].bytes : json_len};
    }
    free(files);
    if (rc) {
        free(v);
        return rc;
    }
    *m = v;
    *n = nf + 1;
    return 0;
}

int snap_verify(plat_vfs *vfs, const char *root, const char *name, snap_verify_fn fn, void *ctx, uint64_t *n_bad)
{
    manifest_file *files = NULL;
    size_t nf = 0;
    uint64_t json_len = 0;
    uint8_t *buf = NULL;
    char p[PATH_LEN], msg[PATH_LEN + 512];
    int rc;
    *n_bad = 0;
    if ((rc = read_json_files(vfs, root, name, &files, &nf, &json_len))) {
        if (rc == TS_ECORRUPT && fn) {
            snprintf(msg, sizeof(msg), "%s/%s/%s: no file list", root, name, JSON_NAME);
            fn(ctx, msg);
        }
        *n_bad += rc == TS_ECORRUPT;
        goto out;
    }
    if (!(buf = malloc(1 << 20))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        hashed h;
        snprintf(h.name, sizeof(h.name), "%s", files[i].name);
        if ((rc = join3(p, root, name, files[i].name)))
            goto out;
        int r = hash_file(vfs, p, &h, NULL, name, 0, buf, 1 << 20);
        if (r)
            snprintf(msg, sizeof(msg), "%s: %s", p, why(r));
        else if (h.bytes != files[i].bytes)
            snprintf(msg, sizeof(msg), "%s: %" PRIu64 " bytes, MANIFEST.json says %" PRIu64, p,
                     h.bytes, files[i].bytes);
        else if (strcmp(h.sha, files[i].sha))
            snprintf(msg, sizeof(msg), "%s: SHA-256 %s, MANIFEST.json says %s", p, h.sha,
                     files[i].sha);
        else
            continue;
        (*n_bad)++;
        if (fn)
            fn(ctx, msg);
    }
    rc = *n_bad ? TS_ECORRUPT : 0;
out:
    free(files);
    free(buf);
    return rc;
}
