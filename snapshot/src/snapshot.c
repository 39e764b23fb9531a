/*
 * snapshot.c -- the snapshot lifecycle: sealing, recovery, finishing,
 * listing, state changes, deletion and verification (contract in
 * embeddb/snapshot.h, the files in snapshot/FORMAT.md).
 *
 * Crash safety rests on three commit points, each a directory rename made
 * durable by an fsync of ROOT. Sealing: ts_checkpoint fills .seal-new, the
 * rename to .seal-NAME commits it, and only then ts_release drops its
 * tensors from the store (recovery finishes a release a crash cut short;
 * .seal-new is always garbage, the store still holds its tensors).
 * Finishing: MANIFEST.json and STATE are written and synced inside
 * .seal-NAME, then the rename to NAME publishes the snapshot whole.
 * Deleting: NAME is renamed to .del-NAME before its files go. Every file
 * call goes through the vfs handed in, so the power-cut tests reach all of
 * it (tests/fault/test_snapshot_crash.c).
 *
 * Not here: threads (the agent's worker calls snap_finish_all), the network
 * (upload), budget decisions (agent/budget.c), the text formats
 * (snap_meta.c), the tar layout (tar.c).
 */
#include "embeddb/snapshot.h"

#include "sha256.h"
#include "snap_int.h"
#include "snap_meta.h"

#include "embeddb/plat.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX (16u << 20)  /* MANIFEST.json read back: ~150k files */
#define STATE_MAX (64u << 10)
#define FINISH_TRIES 5        /* transient failures before a seal is set aside */
#define HASH_BUF (1u << 20)   /* the hashing pass reads the tar stream in these */

/* The message of a failure into err (when given); returns rc. With first
 * set (functions that go on past failures) only the first failure's code
 * and message are kept. */
static int vnote(int first, char *err, size_t errlen, int rc, const char *fmt, va_list ap)
{
    if (first)
        return first;
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    return rc;
}

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc = vnote(0, err, errlen, rc, fmt, ap);
    va_end(ap);
    return rc;
}

static int note(int first, char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int note(int first, char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc = vnote(first, err, errlen, rc, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *why(int rc)
{
    return ts_strerror(rc);
}

int snap__join3(char *out, const char *a, const char *b, const char *c)
{
    int n = snprintf(out, PATH_LEN, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
    return n < 0 || n >= PATH_LEN ? -ENAMETOOLONG : 0;
}

/* ---- names ------------------------------------------------------------- */

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

int64_t snap_tar_mtime(const snap_info *si)
{
    return si->created_ns / 1000000000;
}

/* ---- sealing (the store's thread) -------------------------------------- */

int snap__ensure_root(plat_vfs *vfs, const char *root)
{
    plat_stat st;
    char parent[PATH_LEN];
    int rc = vfs->stat(vfs, root, &st);
    if (rc != -ENOENT)
        return rc;
    if ((rc = vfs->mkdir(vfs, root)) && rc != -EEXIST)
        return rc;
    snprintf(parent, sizeof(parent), "%s", root);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = 0;
    return vfs->dirsync(vfs, slash ? (parent[0] ? parent : "/") : ".");
}

int snap_begin(plat_vfs *vfs, ts_store *s, const char *root, const char *device_id, char *name,
               size_t name_len, ts_checkpoint_info *info, char *err, size_t errlen)
{
    char tmp[PATH_LEN], dst[PATH_LEN], leaf[SNAP_NAME_MAX + 8];
    int rc;
    if ((rc = snap__ensure_root(vfs, root)))
        return seterr(err, errlen, rc, "mkdir(%s): %s", root, why(rc));
    if ((rc = snap__join3(tmp, root, SEAL_NEW, "")))
        return seterr(err, errlen, rc, "%s: path too long", root);
    plat_dir_remove(vfs, tmp); /* a leftover never holds anything the store lacks */
    if ((rc = ts_checkpoint(s, tmp, info))) {
        seterr(err, errlen, rc, "%s", ts_errmsg(s));
        if (rc != TS_ENOTFOUND)
            plat_dir_remove(vfs, tmp);
        return rc;
    }
    snprintf(name, name_len, "%s-%020" PRIu64, device_id, info->min_seq);
    snprintf(leaf, sizeof(leaf), SEAL_PREFIX "%s", name);
    if ((rc = snap__join3(dst, root, leaf, "")))
        return seterr(err, errlen, rc, "%s/%s: path too long", root, leaf);
    if ((rc = vfs->rename(vfs, tmp, dst)))
        return seterr(err, errlen, rc, "rename(%s, %s): %s", tmp, dst, why(rc));
    if ((rc = vfs->dirsync(vfs, root)))
        return seterr(err, errlen, rc, "fsync(%s): %s", root, why(rc));
    if ((rc = ts_release(s, info->last_file)))
        return seterr(err, errlen, rc, "releasing the snapshot's files: %s", ts_errmsg(s));
    return 0;
}

/* ---- recovery ------------------------------------------------------------ */

int snap__open_ro(plat_vfs *vfs, const char *dir, ts_store **c, char *err, size_t errlen)
{
    ts_options o;
    ts_options_init(&o);
    o.read_only = 1;
    o.vfs = vfs;
    return ts_open(dir, &o, c, err, errlen);
}

/* Highest SST number in a checkpoint directory, after proving it whole
 * with a read-only open (every SST its MANIFEST names is there and sound). */
static int checkpoint_last_file(plat_vfs *vfs, const char *dir, uint64_t *last, char *err,
                                size_t errlen)
{
    ts_store *c = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc;
    *last = 0;
    if ((rc = snap__open_ro(vfs, dir, &c, err, errlen)))
        return rc;
    ts_close(c);
    rc = plat_dir_list(vfs, dir, "sst_", &names, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned long long v;
        if (sscanf(names[i], "sst_%llu.sst", &v) == 1 && v > *last)
            *last = v;
    }
    free(names);
    return rc;
}

static int set_aside(plat_vfs *vfs, const char *root, const char *leaf, const char *reason);

int snap_is_capture(plat_vfs *vfs, const char *dir)
{
    char p[PATH_LEN];
    plat_stat st;
    return !snap__join3(p, dir, CAPTURE_NAME, "") && vfs->stat(vfs, p, &st) == 0;
}

int snap_recover(plat_vfs *vfs, ts_store *s, const char *root, size_t *n_seals, char *err,
                 size_t errlen)
{
    static const char *const tmps[] = {STATE_NAME ".tmp", JSON_NAME ".tmp",
                                       SNAP_MULTIPART_NAME ".tmp"};
    char **names = NULL, p[PATH_LEN], q[PATH_LEN], msg[512];
    size_t n = 0;
    plat_stat st;
    int rc = 0, first = 0, removed = 0;
    *n_seals = 0;
    if (vfs->stat(vfs, root, &st) == -ENOENT)
        return 0;
    if ((rc = plat_dir_list(vfs, root, "", &names, &n)))
        return seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    for (size_t i = 0; i < n; i++) {
        const char *e = names[i];
        if (snap__join3(p, root, e, ""))
            continue;
        if (!strcmp(e, SEAL_NEW) || !strcmp(e, CAPTURE_NEW) ||
            !strncmp(e, DEL_PREFIX, strlen(DEL_PREFIX))) {
            removed = 1;
            if ((rc = plat_dir_remove(vfs, p)))
                first = note(first, err, errlen, rc, "removing %s: %s", p, why(rc));
        } else if (!strncmp(e, SEAL_PREFIX, strlen(SEAL_PREFIX))) {
            uint64_t last = 0;
            if (!snap_name_ok(e + strlen(SEAL_PREFIX), NULL))
                continue;
            if ((rc = checkpoint_last_file(vfs, p, &last, msg, sizeof(msg)))) {
                /* Nothing is released for it: the store keeps what it has. */
                first = note(first, err, errlen, rc, "snapshot being sealed %s does not open: %s;"
                             " set aside as failed", p, msg);
                set_aside(vfs, root, e, msg);
                continue;
            }
            /* A capture's checkpoint is a copy: none of its files is the
             * live store's, so nothing is released for it. */
            if (!snap_is_capture(vfs, p) && (rc = ts_release(s, last))) {
                first = note(first, err, errlen, rc, "releasing %s from the store: %s", p,
                             ts_errmsg(s));
                continue;
            }
            (*n_seals)++;
        } else if (snap_name_ok(e, NULL)) {
            snap_info si;
            /* A STATE or MANIFEST.json write the power cut interrupted. */
            for (size_t k = 0; k < sizeof(tmps) / sizeof(tmps[0]); k++)
                if (!snap__join3(q, root, e, tmps[k]))
                    vfs->unlink(vfs, q);
            /* An upload that was running when the process died starts over.
             * An unreadable STATE is left alone: snap_list shows it failed. */
            if (!snap_read(vfs, root, e, &si) && si.state == SNAP_UPLOADING) {
                si.state = SNAP_SEALED;
                if ((rc = snap_write_state(vfs, root, &si)))
                    first = note(first, err, errlen, rc, "%s/%s/STATE: %s", root, e, why(rc));
            }
        }
    }
    free(names);
    /* Only the removals change ROOT without a sync of their own: set_aside
     * syncs ROOT itself, snap_write_state its NAME, ts_release the store,
     * and the *.tmp unlinks are inside NAME. */
    if (removed && (rc = vfs->dirsync(vfs, root)))
        first = note(first, err, errlen, rc, "fsync(%s): %s", root, why(rc));
    return first;
}

/* The first bytes of a small file, NUL-terminated. */
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
    char **names = NULL, p[PATH_LEN], head[4096], msg[512];
    size_t n = 0;
    int rc;
    *floor = 1;
    if ((rc = plat_dir_list(vfs, root, "", &names, &n)))
        return rc == -ENOENT ? 0 : seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    for (size_t i = 0; i < n; i++) {
        const char *e = names[i], *name = e;
        uint64_t seq = 0, lo = 0, hi = 0;
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
            ts_store *c = NULL;
            ts_stats st;
            if (!snap__join3(p, root, e, "") && snap__open_ro(vfs, p, &c, msg, sizeof(msg)) == 0) {
                ts_get_stats(c, &st);
                if (st.next_seq > *floor)
                    *floor = st.next_seq;
                ts_close(c);
            }
        } else if (name == e && !snap__join3(p, root, e, JSON_NAME) &&
                   read_head(vfs, p, head, sizeof(head)) == 0 &&
                   snap_manifest_seq_range(head, &lo, &hi) && hi + 1 > *floor) {
            *floor = hi + 1;
        }
    }
    free(names);
    return 0;
}

/* ---- finishing (the worker thread) ---------------------------------------- */

/* What the checkpoint holds, gathered by one scan for MANIFEST.json. */
typedef struct scan_stats {
    uint64_t tensors;
    int64_t t_min, t_max;
    uint64_t seq_min, seq_max;
    uint8_t *k_min, *k_max;
    size_t k_min_len, k_max_len;
    snap_topic *topics;
    size_t n_topics, cap_topics, last_hit;
} scan_stats;

static int on_entry(void *ctx, const ts_entry *e)
{
    scan_stats *ss = ctx;
    if (!ss->tensors) {
        ss->t_min = ss->t_max = e->timestamp_ns;
        ss->seq_min = ss->seq_max = e->seq;
        if (!(ss->k_min = malloc(e->key_len ? e->key_len : 1)))
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
            snap_topic *t = realloc(ss->topics, cap * sizeof(*t));
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

/* The hashing pass's data hook: one SHA-256 running over the current
 * member's data, finished into files[i] at its end and started afresh. */
typedef struct member_sha {
    sha256 h;          /* always initialised: freed by the pass */
    snap_file *files;
    int failed;        /* a digest failed (out of memory) */
} member_sha;

static int on_member_data(void *ctx, size_t i, const uint8_t *data, size_t len)
{
    member_sha *ms = ctx;
    uint8_t sum[32];
    if (data) {
        sha256_update(&ms->h, data, len);
        return 0;
    }
    int rc = sha256_finish(&ms->h, sum);
    sha256_free(&ms->h);
    sha256_init(&ms->h); /* the next member's; a failure shows at its end */
    if (rc) {
        ms->failed = 1;
        return rc;
    }
    sha256_hex(sum, sizeof(sum), ms->files[i].sha256);
    return 0;
}

/*
 * The hashing pass: reads the tar stream of the member files once, to its
 * end, feeding every byte before its trailer (the seal's stream goes on with
 * MANIFEST.json there) to the stream's SHA-256, and through the stream's
 * data hook each member's data to files[i].sha256. *tar_sha stays open for
 * MANIFEST.json.
 */
static int hash_members(plat_vfs *vfs, const char *name, const tar_member *m, snap_file *files,
                        size_t n, int64_t mtime, sha256 *tar_sha, char *err, size_t errlen)
{
    tar_stream *t = NULL;
    uint8_t *buf = malloc(HASH_BUF);
    member_sha ms = {.files = files};
    /* The trailer is the stream of no members. */
    uint64_t body = tar_stream_len(m, n) - tar_stream_len(NULL, 0), pos = 0;
    size_t got = 0;
    int rc = 0;
    sha256_init(&ms.h);
    if (!buf || !(t = tar_stream_new(vfs, name, m, n, mtime))) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory hashing %s", name);
        goto out;
    }
    tar_stream_on_data(t, on_member_data, &ms);
    do {
        if ((rc = tar_stream_read(t, buf, HASH_BUF, &got))) {
            if (ms.failed)
                seterr(err, errlen, rc, "out of memory hashing %s", name);
            else
                seterr(err, errlen, rc, "reading %s: %s", name,
                       tar_stream_error(t)[0] ? tar_stream_error(t) : why(rc));
            goto out;
        }
        if (pos < body)
            sha256_update(tar_sha, buf, body - pos < got ? (size_t)(body - pos) : got);
        pos += got;
    } while (got);
out:
    sha256_free(&ms.h);
    tar_stream_free(t);
    free(buf);
    return rc;
}

/* A capture's window from dir/CAPTURE into *cap (*is_cap 1), or *is_cap 0
 * when dir holds no CAPTURE. A damaged one is TS_ECORRUPT: the seal is
 * set aside rather than published without its window. */
static int read_capture(plat_vfs *vfs, const char *dir, snap_capture_meta *cap, int *is_cap,
                        char *err, size_t errlen)
{
    char p[PATH_LEN], *text = NULL;
    size_t len = 0;
    int rc;
    *is_cap = 0;
    if ((rc = snap__join3(p, dir, CAPTURE_NAME, "")))
        return seterr(err, errlen, rc, "%s: path too long", dir);
    rc = plat_file_read(vfs, p, CAPTURE_MAX, &text, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc == -EFBIG)
        rc = TS_ECORRUPT;
    if (!rc && (rc = snap_parse_capture(text, len, cap)) == 0)
        *is_cap = 1;
    free(text);
    return rc ? seterr(err, errlen, rc, "reading %s: %s", p, why(rc)) : 0;
}

/* Finishes ROOT/.seal-NAME (see snap_finish_all). */
static int finish_one(plat_vfs *vfs, const char *root, const char *leaf, const char *device_id,
                      char *err, size_t errlen)
{
    char dir[PATH_LEN], dst[PATH_LEN], **names = NULL;
    char (*paths)[PATH_LEN] = NULL;
    const char *name = leaf + strlen(SEAL_PREFIX);
    scan_stats ss = {0};
    snap_file *files = NULL;
    tar_member *m = NULL;
    snap_text js = {0}, sb = {0};
    size_t n = 0;
    ts_store *c = NULL;
    snap_info si;
    snap_capture_meta cap;
    int is_cap = 0;
    sha256 tar_sha;
    uint8_t sum[32];
    int rc;
    sha256_init(&tar_sha);
    memset(&si, 0, sizeof(si));
    if ((rc = snap__join3(dir, root, leaf, "")) || (rc = snap__join3(dst, root, name, ""))) {
        seterr(err, errlen, rc, "%s/%s: path too long", root, leaf);
        goto out;
    }
    if ((rc = read_capture(vfs, dir, &cap, &is_cap, err, errlen)))
        goto out;
    if ((rc = snap__open_ro(vfs, dir, &c, err, errlen)))
        goto out;
    if ((rc = ts_scan_prefix(c, NULL, 0, on_entry, &ss))) {
        seterr(err, errlen, rc, "scanning %s: %s", dir, ts_errmsg(c)[0] ? ts_errmsg(c) : why(rc));
        goto out;
    }
    ts_close(c);
    c = NULL;
    /* The members in upload order: the SSTs, MANIFEST, then MANIFEST.json. */
    if ((rc = plat_dir_list(vfs, dir, "sst_", &names, &n))) {
        seterr(err, errlen, rc, "listing %s: %s", dir, why(rc));
        goto out;
    }
    files = calloc(n + 1, sizeof(*files));
    m = calloc(n + 2, sizeof(*m));
    paths = calloc(n + 1, sizeof(*paths));
    if (!files || !m || !paths) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    for (size_t i = 0; i <= n; i++) {
        plat_stat st;
        snprintf(files[i].name, sizeof(files[i].name), "%s", i < n ? names[i] : "MANIFEST");
        if ((rc = snap__join3(paths[i], dir, files[i].name, "")) ||
            (rc = vfs->stat(vfs, paths[i], &st))) {
            seterr(err, errlen, rc, "stat(%s/%s): %s", dir, files[i].name, why(rc));
            goto out;
        }
        files[i].bytes = st.size;
        m[i] = (tar_member){.path = paths[i], .name = files[i].name, .size = st.size};
    }
    si.created_ns = plat_now_ns();
    int64_t mtime = snap_tar_mtime(&si);
    if ((rc = hash_members(vfs, name, m, files, n + 1, mtime, &tar_sha, err, errlen)))
        goto out;
    snap_manifest man = {.device_id = device_id, .name = name, .created_ns = si.created_ns,
                         .tensors = ss.tensors, .seq_min = ss.seq_min, .seq_max = ss.seq_max,
                         .t_min = ss.t_min, .t_max = ss.t_max, .k_min = ss.k_min,
                         .k_max = ss.k_max, .k_min_len = ss.k_min_len, .k_max_len = ss.k_max_len,
                         .topics = ss.topics, .n_topics = ss.n_topics, .files = files,
                         .n_files = n + 1, .capture = is_cap ? &cap : NULL};
    snap_manifest_json(&man, &js);
    if (js.oom) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    /* The stream ends with MANIFEST.json and the trailer: one more stream
     * of that member alone, from memory, read whole into the hash. */
    {
        tar_member last = {.name = JSON_NAME, .size = js.len, .data = js.p};
        tar_stream *t = tar_stream_new(vfs, name, &last, 1, mtime);
        uint8_t chunk[4096];
        size_t got = 0;
        do {
            if (!t || (rc = tar_stream_read(t, chunk, sizeof(chunk), &got)))
                break;
            sha256_update(&tar_sha, chunk, got);
        } while (got);
        if (!t || rc) {
            rc = seterr(err, errlen, t ? rc : -ENOMEM, "%s: %s", name,
                        t ? tar_stream_error(t) : "out of memory");
            tar_stream_free(t);
            goto out;
        }
        tar_stream_free(t);
        m[n + 1] = last;
    }
    if (sha256_finish(&tar_sha, sum)) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory hashing %s", name);
        goto out;
    }
    si.state = SNAP_SEALED;
    si.tensors = ss.tensors;
    if (is_cap)
        memcpy(si.capture, cap.label, sizeof(si.capture));
    si.updated_ns = si.created_ns;
    sha256_hex(sum, sizeof(sum), si.tar_sha256);
    si.tar_bytes = tar_stream_len(m, n + 2);
    snap_state_text(&si, &sb);
    if (sb.oom) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory sealing %s", dir);
        goto out;
    }
    if ((rc = plat_file_replace(vfs, dir, JSON_NAME, js.p, js.len, 1))) {
        seterr(err, errlen, rc, "writing %s/%s: %s", dir, JSON_NAME, why(rc));
        goto out;
    }
    if ((rc = plat_file_replace(vfs, dir, STATE_NAME, sb.p, sb.len, 1))) {
        seterr(err, errlen, rc, "writing %s/%s: %s", dir, STATE_NAME, why(rc));
        goto out;
    }
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
out:
    ts_close(c);
    sha256_free(&tar_sha);
    scan_stats_free(&ss);
    free(names);
    free(files);
    free(m);
    free(paths);
    snap_text_free(&js);
    snap_text_free(&sb);
    return rc;
}

/* Errors another try may cure: the seal waits for the next pass. */
static int transient(int rc)
{
    return rc == -ENOSPC || rc == -EIO || rc == -ENOMEM || rc == -EDQUOT || rc == -EAGAIN ||
           rc == -EINTR || rc == -EMFILE || rc == -ENFILE || rc == -EBUSY;
}

/* DIR/STATE from si, durably: temp file, fsync, rename, fsync of DIR. */
static int put_state(plat_vfs *vfs, const char *dir, const snap_info *si)
{
    snap_text b = {0};
    int rc;
    snap_state_text(si, &b);
    rc = b.oom ? -ENOMEM : plat_file_replace(vfs, dir, STATE_NAME, b.p, b.len, 1);
    snap_text_free(&b);
    return rc ? rc : vfs->dirsync(vfs, dir);
}

/* Publishes ROOT/LEAF (a .seal-NAME) as NAME in state failed with reason:
 * visible to snap_list and an operator, never uploaded, never blocking. */
static int set_aside(plat_vfs *vfs, const char *root, const char *leaf, const char *reason)
{
    char dir[PATH_LEN], dst[PATH_LEN];
    const char *name = leaf + strlen(SEAL_PREFIX);
    snap_info si;
    int rc;
    memset(&si, 0, sizeof(si));
    si.state = SNAP_FAILED;
    si.created_ns = si.updated_ns = plat_now_ns();
    snprintf(si.error, sizeof(si.error), "sealing failed: %.230s", reason);
    if ((rc = snap__join3(dir, root, leaf, "")) || (rc = snap__join3(dst, root, name, "")))
        return rc;
    rc = put_state(vfs, dir, &si);
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
    char dir[PATH_LEN], p[PATH_LEN], *text = NULL;
    size_t len = 0;
    snap_info si;
    memset(&si, 0, sizeof(si));
    if (snap__join3(dir, root, leaf, "") || snap__join3(p, root, leaf, STATE_NAME))
        return FINISH_TRIES;
    if (plat_file_read(vfs, p, STATE_MAX, &text, &len) == 0)
        snap_parse_state(text, len, &si);
    free(text);
    si.state = SNAP_SEALED;
    si.attempts++;
    si.updated_ns = plat_now_ns();
    snprintf(si.error, sizeof(si.error), "sealing: %.240s", msg);
    put_state(vfs, dir, &si);
    return si.attempts;
}

int snap_finish_all(plat_vfs *vfs, const char *root, const char *device_id, size_t *n_done,
                    size_t *n_failed, char *err, size_t errlen)
{
    char **names = NULL, msg[1024];
    size_t n = 0;
    int rc, first = 0;
    *n_done = 0;
    if (n_failed)
        *n_failed = 0;
    if ((rc = plat_dir_list(vfs, root, SEAL_PREFIX, &names, &n)))
        return rc == -ENOENT ? 0 : seterr(err, errlen, rc, "listing %s: %s", root, why(rc));
    for (size_t i = 0; i < n; i++) {
        const char *leaf = names[i];
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
    free(names);
    return first;
}

/* ---- state and listing ----------------------------------------------------- */

/* ROOT/LEAF/STATE into *out, zeroed first (the caller fills in name and
 * seq). With sizes, also the bytes of LEAF's files, measured once STATE was
 * read (a NAME whose STATE cannot be read is listed with 0 bytes). 0,
 * -ENOENT when there is no STATE, TS_ECORRUPT when it is too long or does
 * not parse, or another -errno. */
static int read_info(plat_vfs *vfs, const char *root, const char *leaf, int sizes,
                     snap_info *out)
{
    char dir[PATH_LEN], p[PATH_LEN], *text = NULL;
    size_t len = 0;
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = snap__join3(dir, root, leaf, "")) || (rc = snap__join3(p, root, leaf, STATE_NAME)))
        return rc;
    if ((rc = plat_file_read(vfs, p, STATE_MAX, &text, &len)))
        return rc == -EFBIG ? TS_ECORRUPT : rc;
    rc = snap_parse_state(text, len, out);
    free(text);
    if (sizes)
        out->disk_bytes = plat_dir_bytes(vfs, dir);
    return rc;
}

/* A name snap_name_ok accepts always fits snap_info.name. */
_Static_assert(SNAP_DEVICE_ID_MAX + 21 < SNAP_NAME_MAX, "snapshot names fit snap_info.name");

int snap_read(plat_vfs *vfs, const char *root, const char *name, snap_info *out)
{
    uint64_t seq;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!snap_name_ok(name, &seq))
        return -ENOENT;
    rc = read_info(vfs, root, name, 0, out);
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->seq = seq;
    return rc;
}

static int cmp_seq(const void *a, const void *b)
{
    const snap_info *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int snap_list(plat_vfs *vfs, const char *root, snap_info **out, size_t *n, uint64_t *pending_bytes,
              int sizes)
{
    char **names = NULL, p[PATH_LEN];
    size_t nn = 0;
    snap_info *v = NULL;
    int rc;
    *out = NULL;
    *n = 0;
    if (pending_bytes)
        *pending_bytes = 0;
    rc = plat_dir_list(vfs, root, "", &names, &nn);
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc || !nn)
        goto out;
    if (!(v = calloc(nn, sizeof(*v)))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nn; i++) {
        uint64_t seq;
        const char *e = names[i];
        int sealing = !strncmp(e, SEAL_PREFIX, strlen(SEAL_PREFIX));
        const char *name = sealing ? e + strlen(SEAL_PREFIX) : e;
        snap_info *si = &v[*n];
        if (!snap_name_ok(name, &seq)) {
            /* .seal-new and .del-NAME: on their way in or out. */
            if (e[0] == '.' && pending_bytes && !snap__join3(p, root, e, ""))
                *pending_bytes += plat_dir_bytes(vfs, p);
            continue;
        }
        if (sealing) {
            /* Waiting for its hashes; STATE, if any, tells a failed try. */
            read_info(vfs, root, e, 0, si);
            si->state = SNAP_SEALING;
            if (sizes && !snap__join3(p, root, e, ""))
                si->disk_bytes = plat_dir_bytes(vfs, p);
        } else {
            int r = read_info(vfs, root, e, sizes, si);
            if (r == -ENOENT)
                continue; /* not a snapshot (no STATE) */
            if (r) {
                /* Shown, never silently skipped: an operator must see it. */
                snprintf(si->error, sizeof(si->error), "STATE unreadable: %s", why(r));
                si->state = SNAP_FAILED;
            }
        }
        snprintf(si->name, sizeof(si->name), "%s", name);
        si->seq = seq;
        (*n)++;
    }
    qsort(v, *n, sizeof(*v), cmp_seq);
    *out = v;
    v = NULL;
out:
    free(v);
    free(names);
    return rc;
}

int snap_write_state(plat_vfs *vfs, const char *root, const snap_info *si)
{
    char dir[PATH_LEN];
    int rc = snap__join3(dir, root, si->name, "");
    return rc ? rc : put_state(vfs, dir, si);
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
    if ((rc = snap__join3(dir, root, name, "")) ||
        (rc = snap__join3(json, root, name, JSON_NAME)) ||
        (rc = snap__join3(seal, root, leaf, "")))
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

int snap_queue_abort(plat_vfs *vfs, const char *root, const char *name)
{
    char from[PATH_LEN], to[PATH_LEN], leaf[SNAP_NAME_MAX + 16];
    plat_stat st;
    int rc;
    if ((rc = snap__join3(from, root, name, SNAP_MULTIPART_NAME)))
        return rc;
    if ((rc = vfs->stat(vfs, from, &st)))
        return rc == -ENOENT ? 0 : rc;
    for (int k = 1; k < 1000; k++) {
        snprintf(leaf, sizeof(leaf), SNAP_ABORT_PREFIX "%s.%d", name, k);
        if ((rc = snap__join3(to, root, leaf, "")))
            return rc;
        if ((rc = vfs->stat(vfs, to, &st)) == -ENOENT) {
            if ((rc = vfs->rename(vfs, from, to)))
                return rc;
            return vfs->dirsync(vfs, root);
        }
        if (rc)
            return rc;
    }
    return -EEXIST;
}

int snap_delete(plat_vfs *vfs, const char *root, const char *name)
{
    char dir[PATH_LEN], del[PATH_LEN], leaf[SNAP_NAME_MAX + 8];
    int rc;
    snprintf(leaf, sizeof(leaf), DEL_PREFIX "%s", name);
    if ((rc = snap__join3(dir, root, name, "")) || (rc = snap__join3(del, root, leaf, "")))
        return rc;
    if ((rc = snap_queue_abort(vfs, root, name)))
        return rc;
    if ((rc = vfs->rename(vfs, dir, del)) || (rc = vfs->dirsync(vfs, root)))
        return rc;
    if ((rc = plat_dir_remove(vfs, del)))
        return rc;
    return vfs->dirsync(vfs, root);
}

/* ---- members and verification ---------------------------------------------- */

/* The "files" of NAME/MANIFEST.json (*out malloc'ed) and its length. */
static int read_json_files(plat_vfs *vfs, const char *root, const char *name, snap_file **out,
                           size_t *n, uint64_t *json_len)
{
    char p[PATH_LEN], *text = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = snap__join3(p, root, name, JSON_NAME)))
        return rc;
    if ((rc = plat_file_read(vfs, p, JSON_MAX, &text, &len)))
        return rc == -EFBIG ? TS_ECORRUPT : rc;
    *json_len = len;
    rc = snap_manifest_files(text, out, n);
    free(text);
    return rc;
}

int snap_members(plat_vfs *vfs, const char *root, const char *name, tar_member **m, size_t *n)
{
    snap_file *files = NULL;
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
        rc = snap__join3(path, root, name, nm);
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

/* SHA-256 and size of the file at path. */
static int hash_file(plat_vfs *vfs, const char *path, uint8_t *buf, size_t buf_len,
                     uint64_t *bytes, char sha[65])
{
    sha256 h;
    uint8_t sum[32];
    plat_stat st;
    int fd = -1, rc;
    sha256_init(&h);
    if ((rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd)) || (rc = vfs->fstat(vfs, fd, &st)))
        goto out;
    *bytes = st.size;
    for (uint64_t off = 0; off < st.size;) {
        size_t want = st.size - off < buf_len ? (size_t)(st.size - off) : buf_len;
        if ((rc = plat_read_exact(vfs, fd, buf, want, off)))
            goto out;
        sha256_update(&h, buf, want);
        off += want;
    }
    if ((rc = sha256_finish(&h, sum)))
        goto out;
    sha256_hex(sum, sizeof(sum), sha);
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    sha256_free(&h);
    return rc;
}

int snap_verify(plat_vfs *vfs, const char *root, const char *name, snap_verify_fn fn, void *ctx,
                uint64_t *n_bad)
{
    snap_file *files = NULL;
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
    if (!(buf = malloc(HASH_BUF))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        uint64_t bytes = 0;
        char sha[65];
        if ((rc = snap__join3(p, root, name, files[i].name)))
            goto out;
        int r = hash_file(vfs, p, buf, HASH_BUF, &bytes, sha);
        if (r)
            snprintf(msg, sizeof(msg), "%s: %s", p, why(r));
        else if (bytes != files[i].bytes)
            snprintf(msg, sizeof(msg), "%s: %" PRIu64 " bytes, MANIFEST.json says %" PRIu64, p,
                     bytes, files[i].bytes);
        else if (strcmp(sha, files[i].sha256))
            snprintf(msg, sizeof(msg), "%s: SHA-256 %s, MANIFEST.json says %s", p, sha,
                     files[i].sha256);
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
