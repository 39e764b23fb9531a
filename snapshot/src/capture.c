/*
 * capture.c -- capture windows: a snapshot holding copies of exactly the
 * tensors of some topics in a time window (snap_capture in
 * embeddb/snapshot.h; the files in snapshot/FORMAT.md, "Capture windows").
 *
 * Why copies and not hard links of the overlapping SSTs: a window is
 * usually a small slice of SSTs that hold every topic for a whole
 * snapshot.interval, and what a fleet pays for is the upload; a copy sends
 * exactly the window, and the manifest's counts and ranges describe it
 * exactly. The cost is reading and writing the window once more on flash
 * (measured by `embeddb bench-capture`, README "Capture windows").
 *
 * Where the window lives: tensors stay in the live store until a rolling
 * seal moves them, as hard links, into a snapshot under ROOT, which stays
 * there until it is uploaded and falls out of snapshot.keep (or is
 * dropped by storage.on_full). So the live store plus every rolling
 * snapshot in ROOT is all of flash; each source is read through
 * ts_scan_time, which skips SSTs and index blocks outside the window.
 * Captures are never sources (a window would copy another's copies).
 *
 * Crash safety: the copy is made in .capture-new (garbage after a crash),
 * checkpointed into .seal-new with its CAPTURE file synced, and committed
 * by the rename to .seal-NAME, after the live store's sequence numbers
 * were raised past the copies' (so a crash after the commit never sees a
 * store that would hand those numbers out again). Recovery removes the two
 * temporary directories and finishes a committed .seal-NAME, releasing
 * nothing from the live store for it (its CAPTURE file says it is a copy).
 *
 * Threads: the store's (the agent's main thread). The upload worker may
 * rename a .seal-NAME to NAME while this reads it: an open that misses one
 * name tries the other.
 */
#include "embeddb/snapshot.h"

#include "snap_int.h"
#include "snap_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COPY_BATCH 64 /* tensors loaded and saved per batch (one copy's RAM) */

/* The keys of one source that fall in the window. */
typedef struct hits {
    const snap_window *w;
    uint8_t **keys;
    size_t *lens;
    size_t n, cap;
} hits;

static void hits_free(hits *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->keys[i]);
    free(h->keys);
    free(h->lens);
    h->keys = NULL;
    h->lens = NULL;
    h->n = h->cap = 0;
}

static int on_hit(void *ctx, const ts_entry *e)
{
    hits *h = ctx;
    const snap_window *w = h->w;
    size_t i = 0;
    while (i < w->n_filters && !w->match(w->match_ctx, w->filters[i], e->name))
        i++;
    if (i == w->n_filters)
        return 0;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        uint8_t **k = realloc(h->keys, cap * sizeof(*k));
        if (k)
            h->keys = k;
        size_t *l = k ? realloc(h->lens, cap * sizeof(*l)) : NULL;
        if (!l)
            return -ENOMEM;
        h->lens = l;
        h->cap = cap;
    }
    if (!(h->keys[h->n] = malloc(e->key_len ? e->key_len : 1)))
        return -ENOMEM;
    memcpy(h->keys[h->n], e->key, e->key_len);
    h->lens[h->n++] = e->key_len;
    return 0;
}

/* Copies src's tensors in the window into dst (keys, names, timestamps and
 * bytes as they are; dst gives new sequence numbers). */
static int copy_window(ts_store *src, ts_store *dst, const snap_window *w, const char *what,
                       char *err, size_t errlen)
{
    hits h = {.w = w};
    ts_tensor *batch[COPY_BATCH];
    size_t nb = 0;
    int rc = ts_scan_time(src, NULL, 0, w->from_ns, w->to_ns, on_hit, &h);
    if (rc) {
        snprintf(err, errlen, "scanning %s: %s", what,
                 rc == -ENOMEM ? "out of memory" : ts_errmsg(src));
        goto out;
    }
    for (size_t i = 0; i <= h.n; i++) {
        if (nb == COPY_BATCH || (i == h.n && nb)) {
            if ((rc = ts_save_batch(dst, (const ts_tensor *const *)batch, nb))) {
                snprintf(err, errlen, "writing the copy: %s", ts_errmsg(dst));
                goto out;
            }
            while (nb)
                ts_tensor_free(batch[--nb]);
        }
        if (i == h.n)
            break;
        if ((rc = ts_load(src, h.keys[i], h.lens[i], &batch[nb]))) {
            snprintf(err, errlen, "reading %s: %s", what, ts_errmsg(src));
            goto out;
        }
        nb++;
    }
out:
    while (nb)
        ts_tensor_free(batch[--nb]);
    hits_free(&h);
    return rc;
}

/* Copies the window out of every rolling snapshot in root. */
static int copy_snapshots(plat_vfs *vfs, const char *root, ts_store *dst, const snap_window *w,
                          char *err, size_t errlen)
{
    char **names = NULL, p[PATH_LEN], msg[512];
    size_t n = 0;
    int rc = plat_dir_list(vfs, root, "", &names, &n);
    if (rc) {
        snprintf(err, errlen, "listing %s: %s", root, ts_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const char *e = names[i], *name = e;
        int sealing = !strncmp(e, SEAL_PREFIX, strlen(SEAL_PREFIX));
        ts_store *c = NULL;
        if (sealing)
            name = e + strlen(SEAL_PREFIX);
        if (!snap_name_ok(name, NULL) || snap__join3(p, root, e, ""))
            continue;
        if (snap_is_capture(vfs, p))
            continue; /* another capture */
        if (snap__open_ro(vfs, p, &c, msg, sizeof(msg))) {
            /* finished meanwhile (.seal-NAME became NAME), or set aside as
             * failed: a checkpoint that does not open holds nothing we can
             * read */
            if (!sealing || snap__join3(p, root, name, "") ||
                snap__open_ro(vfs, p, &c, msg, sizeof(msg)))
                continue;
        }
        rc = copy_window(c, dst, w, p, err, errlen);
        ts_close(c);
    }
    free(names);
    return rc;
}

int snap_capture(plat_vfs *vfs, ts_store *live, const char *root, const char *device_id,
                 const snap_window *w, char *name, size_t name_len, uint64_t *tensors, char *err,
                 size_t errlen)
{
    char tmp[PATH_LEN], chk[PATH_LEN], dst[PATH_LEN], leaf[SNAP_NAME_MAX + 8], msg[512];
    ts_store *cp = NULL;
    ts_options o;
    ts_stats st;
    ts_checkpoint_info info;
    snap_capture_meta meta;
    snap_text text = {0};
    int rc, committed = 0;
    uint64_t first;
    *tensors = 0;
    name[0] = 0;
    memset(&meta, 0, sizeof(meta));
    if (!snap_device_id_ok(w->label) || strlen(w->label) > SNAP_LABEL_MAX || !w->n_filters ||
        w->n_filters > SNAP_FILTERS_MAX || w->from_ns >= w->to_ns || !w->match) {
        snprintf(err, errlen, "not a capture window (label, filters or times)");
        return -EINVAL;
    }
    snprintf(meta.label, sizeof(meta.label), "%s", w->label);
    meta.trigger_ns = w->trigger_ns;
    meta.from_ns = w->from_ns;
    meta.to_ns = w->to_ns;
    for (size_t i = 0; i < w->n_filters; i++) {
        size_t fl = strlen(w->filters[i]);
        for (size_t k = 0; k < fl; k++)
            if (w->filters[i][k] < 0x20 || w->filters[i][k] > 0x7e)
                fl = SNAP_FILTER_MAX + 1;
        if (!fl || fl > SNAP_FILTER_MAX) {
            snprintf(err, errlen, "filter %zu: not 1-%d printable ASCII bytes", i,
                     SNAP_FILTER_MAX);
            return -EINVAL;
        }
        memcpy(meta.filters[i], w->filters[i], fl + 1);
    }
    meta.n_filters = w->n_filters;
    if ((rc = snap__ensure_root(vfs, root))) {
        snprintf(err, errlen, "mkdir(%s): %s", root, ts_strerror(rc));
        return rc;
    }
    if ((rc = snap__join3(tmp, root, CAPTURE_NEW, "")) ||
        (rc = snap__join3(chk, root, SEAL_NEW, ""))) {
        snprintf(err, errlen, "%s: path too long", root);
        return rc;
    }
    plat_dir_remove(vfs, tmp);
    plat_dir_remove(vfs, chk);
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0; /* made durable once, by the checkpoint */
    o.vfs = vfs;
    if ((rc = ts_open(tmp, &o, &cp, msg, sizeof(msg)))) {
        snprintf(err, errlen, "creating %s: %s", tmp, msg);
        goto out;
    }
    /* The copies are numbered from the live store's next seq: NAME (the
     * first copy's seq) can then never meet a rolling snapshot's. */
    ts_get_stats(live, &st);
    first = st.next_seq;
    if ((rc = ts_raise_seq(cp, first))) {
        snprintf(err, errlen, "numbering the copy: %s", ts_errmsg(cp));
        goto out;
    }
    if ((rc = copy_window(live, cp, w, "the live store", err, errlen)) ||
        (rc = copy_snapshots(vfs, root, cp, w, err, errlen)))
        goto out;
    ts_get_stats(cp, &st);
    *tensors = st.tensors_saved;
    if (!st.tensors_saved) {
        snprintf(err, errlen, "no tensor of those topics in the window");
        rc = TS_ENOTFOUND;
        goto out;
    }
    if ((rc = ts_checkpoint(cp, chk, &info))) {
        snprintf(err, errlen, "checkpointing the copy: %s", ts_errmsg(cp));
        goto out;
    }
    snap_capture_text(&meta, &text);
    if (text.oom) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((rc = plat_file_replace(vfs, chk, CAPTURE_NAME, text.p, text.len, 1)) ||
        (rc = vfs->dirsync(vfs, chk))) {
        snprintf(err, errlen, "writing %s/%s: %s", chk, CAPTURE_NAME, ts_strerror(rc));
        goto out;
    }
    /* The live store steps past the copies' numbers before the commit. */
    if ((rc = ts_raise_seq(live, st.next_seq))) {
        snprintf(err, errlen, "raising the store's sequence numbers: %s", ts_errmsg(live));
        goto out;
    }
    snprintf(name, name_len, "%s-%020" PRIu64, device_id, info.min_seq);
    snprintf(leaf, sizeof(leaf), SEAL_PREFIX "%s", name);
    if ((rc = snap__join3(dst, root, leaf, ""))) {
        snprintf(err, errlen, "%s/%s: path too long", root, leaf);
        goto out;
    }
    if ((rc = vfs->rename(vfs, chk, dst))) {
        snprintf(err, errlen, "rename(%s, %s): %s", chk, dst, ts_strerror(rc));
        goto out;
    }
    committed = 1;
    if ((rc = vfs->dirsync(vfs, root)))
        snprintf(err, errlen, "fsync(%s): %s", root, ts_strerror(rc));
out:
    ts_close(cp);
    plat_dir_remove(vfs, tmp);
    if (!committed) {
        plat_dir_remove(vfs, chk);
        name[0] = 0;
    }
    snap_text_free(&text);
    return rc;
}
