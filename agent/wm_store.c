/*
 * wm_store.c -- the de-duplication table on flash (contract in wm_store.h,
 * the record's bytes in agent/CONTROL.md, "What the agent keeps").
 */
#include "wm_store.h"

#include "embeddb/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wm_store_read(watermark *w, ts_store *s)
{
    ts_tensor *t = NULL;
    int rc = ts_latest(s, WM_RECORD_PREFIX, strlen(WM_RECORD_PREFIX), &t);
    if (!rc && wm_load(w, t->data, t->data_len))
        rc = TS_ECORRUPT;
    ts_tensor_free(t);
    return rc;
}

int wm_store_save(watermark *w, ts_store *s, uint64_t *next_key)
{
    int err = 0;
    const ts_tensor *t = wm_record(w, 0, *next_key, plat_now_ns(), &err);
    if (!t)
        return err;
    int rc = ts_save(s, t);
    if (!rc)
        (*next_key)++;
    return rc;
}

int wm_store_recover(watermark *w, plat_vfs *vfs, ts_store *s, const char *root,
                     uint64_t *next_key, char *from, size_t fromlen, char *err, size_t errlen)
{
    char **names = NULL, best[SNAP_NAME_MAX + 8] = "", path[8192];
    size_t n = 0;
    uint64_t best_seq = 0;
    ts_store *snap = NULL;
    int rc = wm_store_read(w, s);
    from[0] = 0;
    err[0] = 0;
    if (rc != TS_ENOTFOUND) {
        if (!rc)
            snprintf(from, fromlen, "the store");
        else
            snprintf(err, errlen, "the store's record: %s", ts_strerror(rc));
        goto out;
    }
    rc = 0;
    plat_stat st;
    if (vfs->stat(vfs, root, &st) == -ENOENT)
        goto out;
    if ((rc = plat_dir_list(vfs, root, "", &names, &n))) {
        snprintf(err, errlen, "listing %s: %s", root, strerror(-rc));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *e = names[i];
        uint64_t seq;
        if (!strncmp(e, ".seal-", 6))
            e += 6; /* .seal-new is no snapshot name: skipped below */
        if (!snap_name_ok(e, &seq) || seq < best_seq)
            continue;
        /* A capture window sealed before the table was saved again is
         * newer, but a copy of some topics: never the table's home. */
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, names[i]) >= sizeof(path) ||
            snap_is_capture(vfs, path))
            continue;
        best_seq = seq;
        snprintf(best, sizeof(best), "%s", names[i]);
    }
    if (!best[0])
        goto out;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, best) >= sizeof(path)) {
        rc = -ENAMETOOLONG;
        snprintf(err, errlen, "%s/%s: path too long", root, best);
        goto out;
    }
    ts_options o;
    ts_options_init(&o);
    o.read_only = 1;
    o.vfs = vfs;
    char msg[512];
    if ((rc = ts_open(path, &o, &snap, msg, sizeof(msg)))) {
        snprintf(err, errlen, "%s", msg);
        goto out;
    }
    rc = wm_store_read(w, snap);
    if (rc == TS_ENOTFOUND) {
        rc = 0;
    } else if (rc) {
        snprintf(err, errlen, "%s: %s", path, ts_strerror(rc));
    } else if ((rc = wm_store_save(w, s, next_key))) {
        snprintf(err, errlen, "saving the table taken from %s: %s", path, ts_errmsg(s));
    } else {
        snprintf(from, fromlen, "snapshot %s", best);
    }
out:
    ts_close(snap);
    free(names);
    return rc;
}
