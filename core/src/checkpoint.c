/*
 * checkpoint.c -- handing sealed SSTs over to a snapshot without copying a
 * byte: ts_checkpoint hard-links every live SST into a new directory that is
 * itself a read-only store, and ts_release then drops those SSTs from this
 * store (FORMAT.md, "Checkpoints").
 *
 * The two steps are separate so the caller can commit in between (rename
 * its temporary directory into place, fsync the parent): until ts_release
 * the SSTs are both live here and in the checkpoint, so a crash anywhere
 * loses nothing. After ts_release's MANIFEST is durable the files here are
 * unreferenced; they are unlinked at once, or by the next open if a crash
 * came first. Nothing here knows what a snapshot is used for (hashes,
 * upload): that is the agent's business.
 */
#include "store_int.h"

#include "format.h"
#include "manifest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dest/MANIFEST naming live[0..n) with wal_no; synced. */
static int write_dest_manifest(ts_store *s, const char *dest, const uint64_t *live, size_t n,
                               uint64_t wal_no)
{
    char path[STORE_PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    int fd = -1, rc;
    snprintf(path, sizeof(path), "%s/%s", dest, FMT_MAN_NAME);
    if ((rc = man_encode(live, n, wal_no, &buf, &len))) {
        store__err(s, rc, "out of memory writing %s", path);
        goto out;
    }
    rc = s->vfs->open(s->vfs, path, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_EXCL, &fd);
    if (rc) {
        store__err(s, rc, "open(%s): %s", path, strerror(-rc));
        goto out;
    }
    struct iovec iov = {buf, len};
    if ((rc = store__write(s, fd, &iov, 1, 0))) {
        store__err(s, rc, "write(%s): %s", path, strerror(-rc));
        goto out;
    }
    if ((rc = store__sync(s, fd)))
        store__err(s, rc, "fdatasync(%s): %s", path, strerror(-rc));
out:
    if (fd >= 0)
        s->vfs->close(s->vfs, fd);
    free(buf);
    return rc;
}

int ts_checkpoint(ts_store *s, const char *dest_dir, ts_checkpoint_info *info)
{
    char from[STORE_PATH_MAX], to[STORE_PATH_MAX];
    uint64_t *live = NULL;
    int rc;
    memset(info, 0, sizeof(*info));
    if (s->opts.read_only)
        return store__err(s, TS_EROFS, "%s: store opened read-only", s->dir);
    if (!dest_dir || strlen(dest_dir) > STORE_PATH_MAX - 64)
        return store__err(s, TS_EINVAL, "bad checkpoint directory name");
    if ((rc = ts_flush(s, NULL, 0, NULL)))
        goto out;
    if (s->n_ssts == 0) {
        rc = store__err(s, TS_ENOTFOUND, "%s: nothing to checkpoint (no tensors)", s->dir);
        goto out;
    }
    if (!(live = malloc(s->n_ssts * sizeof(*live)))) {
        rc = store__err(s, TS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s->vfs->mkdir(s->vfs, dest_dir))) {
        store__err(s, rc, "mkdir(%s): %s", dest_dir, strerror(-rc));
        goto out;
    }
    info->first_file = s->ssts[0].file_no;
    info->min_seq = UINT64_MAX;
    for (size_t i = 0; i < s->n_ssts; i++) {
        const sst *t = &s->ssts[i];
        snprintf(to, sizeof(to), "%s/sst_%06" PRIu64 ".sst", dest_dir, t->file_no);
        store__file_path(s, "sst", t->file_no, from);
        if ((rc = s->vfs->link(s->vfs, from, to))) {
            store__err(s, rc, "link(%s, %s): %s", from, to, strerror(-rc));
            goto out;
        }
        live[i] = t->file_no;
        info->n_files++;
        info->last_file = t->file_no;
        info->bytes += t->file_size;
        if (t->f.min_seq < info->min_seq)
            info->min_seq = t->f.min_seq;
        if (t->f.max_seq > info->max_seq)
            info->max_seq = t->f.max_seq;
    }
    /* The SSTs were synced when they were sealed; only the names are new. */
    if ((rc = write_dest_manifest(s, dest_dir, live, s->n_ssts, info->last_file + 1)))
        goto out;
    s->st.fsyncs++;
    if ((rc = s->vfs->dirsync(s->vfs, dest_dir)))
        store__err(s, rc, "fsync(%s): %s", dest_dir, strerror(-rc));
out:
    free(live);
    return rc;
}

int ts_release(ts_store *s, uint64_t last_file)
{
    char path[STORE_PATH_MAX];
    size_t k = 0;
    int rc = store__check_writable(s);
    if (rc)
        return rc;
    while (k < s->n_ssts && s->ssts[k].file_no <= last_file)
        k++;
    if (k == 0)
        return 0;
    /* The open segment's header carries base_seq, which is all that keeps
     * sequence numbers rising once no SST is left to tell the highest one:
     * make it durable (a flush leaves that to the first batch). */
    if ((rc = store__sync(s, s->wal_fd))) {
        store__fail(s, rc, "fdatasync(wal_%06" PRIu64 ".log): %s", s->wal_no, strerror(-rc));
        goto out;
    }
    if ((rc = store__write_manifest(s, s->wal_no, k)) || (rc = store__dirsync(s)))
        goto out;
    /* Durable: the files are unreferenced now. An unlink that fails leaves
     * a file the next open removes. */
    for (size_t i = 0; i < k; i++) {
        snprintf(path, sizeof(path), "%s", s->ssts[i].path);
        if (s->ssts[i].fd >= 0)
            s->n_open--;
        if (s->ssts[i].map)
            s->mapped -= s->ssts[i].file_size;
        sst_close(s->vfs, &s->ssts[i]);
        s->vfs->unlink(s->vfs, path);
    }
    memmove(s->ssts, s->ssts + k, (s->n_ssts - k) * sizeof(*s->ssts));
    s->n_ssts -= k;
    /* Entry numbers shift: remap the SSTs left (O(their entries); freeing
     * the table when none are). */
    if (s->km_on)
        keymap_rebuild(&s->km, s->ssts, s->n_ssts);
    fcache_clear(&s->cache); /* a dropped SST may have held a row's key */
out:
    return rc;
}
