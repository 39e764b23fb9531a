/*
 * plat_fault.c -- the fault-injecting vfs (contract in plat_fault.h).
 *
 * State, all in one struct behind the plat_vfs table:
 *   - files[]: per inode, the size made durable by the last fdatasync/fsync
 *     (files that existed before we first saw them count as synced);
 *   - dirs[]: per directory, the name -> inode map that was durable at the
 *     last dirsync (captured from disk the first time the directory is
 *     touched);
 *   - fds[]: open descriptors, with the inode and directory they belong to,
 *     so a crash can kill them.
 * Names that a durable map still needs (unlinked or renamed over before the
 * next dirsync) keep their inode alive through a hard link in the shadow
 * directory, named after the inode number.
 *
 * Test-only: fixed-size tables (limits below, -ENFILE beyond them), not
 * thread-safe, paths compared as spelled.
 */
#define _GNU_SOURCE 1
#include "embeddb/plat_fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 1024
#define MAX_DIRS 16
#define MAX_NAMES 512
#define MAX_FDS 256
#define PATH_LEN 4096

typedef struct ffile {
    uint64_t ino;
    uint64_t synced;
} ffile;

typedef struct fname {
    char name[256];
    uint64_t ino;
} fname;

typedef struct fdir {
    char path[PATH_LEN];
    fname durable[MAX_NAMES];
    size_t n;
} fdir;

typedef struct ffd {
    int fd;        /* -1 when free */
    uint64_t ino;
    int dead;
} ffd;

typedef struct fault {
    plat_vfs vfs;  /* first: the table pointer is the state pointer */
    plat_vfs *base;
    char shadow[PATH_LEN];
    uint64_t rng;
    ffile files[MAX_FILES];
    size_t n_files;
    fdir *dirs[MAX_DIRS];
    size_t n_dirs;
    ffd fds[MAX_FDS];
    unsigned fail_left[PLAT_FAULT_NOPS];
    int fail_err[PLAT_FAULT_NOPS];
    unsigned crash_left;
    int crash_torn;
    int crashed;
    unsigned long mutations;
} fault;

static fault *F(plat_vfs *v)
{
    return (fault *)v;
}

static uint64_t rnd(fault *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

/* ---- bookkeeping ------------------------------------------------------ */

static ffile *file_get(fault *f, uint64_t ino, uint64_t size_if_new)
{
    for (size_t i = 0; i < f->n_files; i++)
        if (f->files[i].ino == ino)
            return &f->files[i];
    if (f->n_files == MAX_FILES)
        return NULL;
    f->files[f->n_files] = (ffile){ino, size_if_new};
    return &f->files[f->n_files++];
}

static void split(const char *path, char *dir, char *base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
        snprintf(base, 256, "%s", path);
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0)
            n = 1;
        snprintf(dir, PATH_LEN, "%.*s", (int)n, path);
        snprintf(base, 256, "%s", slash + 1);
    }
}

/* Captures what is on disk now as the durable state of dir. */
static int dir_capture(fdir *d)
{
    DIR *dp = opendir(d->path);
    struct dirent *e;
    char p[PATH_LEN + 256];
    struct stat st;
    if (!dp)
        return -errno;
    d->n = 0;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st) || d->n == MAX_NAMES)
            continue;
        snprintf(d->durable[d->n].name, 256, "%s", e->d_name);
        d->durable[d->n++].ino = (uint64_t)st.st_ino;
    }
    closedir(dp);
    return 0;
}

static fdir *dir_get(fault *f, const char *path)
{
    for (size_t i = 0; i < f->n_dirs; i++)
        if (!strcmp(f->dirs[i]->path, path))
            return f->dirs[i];
    if (f->n_dirs == MAX_DIRS)
        return NULL;
    fdir *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    snprintf(d->path, sizeof(d->path), "%s", path);
    if (dir_capture(d) && errno != ENOENT) {
        free(d);
        return NULL;
    }
    f->dirs[f->n_dirs++] = d;
    return d;
}

/* Before a name disappears (unlink, rename source or target), keep its inode
 * reachable from the shadow directory if the durable map still names it. */
static int protect(fault *f, const char *path)
{
    char dir[PATH_LEN], base[256], sh[PATH_LEN + 32];
    struct stat st;
    split(path, dir, base);
    fdir *d = dir_get(f, dir);
    if (!d)
        return -ENFILE;
    if (lstat(path, &st))
        return 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!strcmp(d->durable[i].name, base) && d->durable[i].ino == (uint64_t)st.st_ino) {
            snprintf(sh, sizeof(sh), "%s/%llu", f->shadow, (unsigned long long)st.st_ino);
            if (link(path, sh) && errno != EEXIST)
                return -errno;
            /* Its content as last synced is what survives. */
            file_get(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
            return 0;
        }
    }
    return 0;
}

static ffd *fd_find(fault *f, int fd)
{
    for (size_t i = 0; i < MAX_FDS; i++)
        if (f->fds[i].fd == fd)
            return &f->fds[i];
    return NULL;
}

/* 0 to go ahead; an -errno when the call must fail. Counts mutations and
 * fires an armed crash before the call runs. */
static int gate(fault *f, plat_fault_op op, int mutating)
{
    if (f->crashed)
        return -EIO;
    if (mutating) {
        f->mutations++;
        if (f->crash_left && --f->crash_left == 0) {
            plat_fault_crash(&f->vfs, f->crash_torn);
            f->crashed = 1;
            return -EIO;
        }
    }
    if (f->fail_left[op] && --f->fail_left[op] == 0)
        return f->fail_err[op];
    return 0;
}

static int fd_gate(fault *f, int fd, plat_fault_op op, int mutating, ffd **out)
{
    ffd *e = fd_find(f, fd);
    if (e && e->dead)
        return -EIO;
    *out = e;
    return gate(f, op, mutating);
}

/* ---- the vfs ---------------------------------------------------------- */

static int f_open(plat_vfs *v, const char *path, int flags, int *fd_out)
{
    fault *f = F(v);
    char dir[PATH_LEN], base[256];
    struct stat st;
    int existed = stat(path, &st) == 0;
    int rc = gate(f, PLAT_FAULT_OPEN, (flags & PLAT_O_CREAT) && !existed);
    if (rc)
        return rc;
    split(path, dir, base);
    if (!dir_get(f, dir))
        return -ENFILE;
    if ((flags & PLAT_O_TRUNC) && existed && (rc = protect(f, path)))
        return rc;
    rc = f->base->open(f->base, path, flags, fd_out);
    if (rc)
        return rc;
    if (fstat(*fd_out, &st) == 0) {
        ffile *fi = file_get(f, (uint64_t)st.st_ino, existed ? (uint64_t)st.st_size : 0);
        /* A new file (its inode number may be a recycled one) or a
         * truncated one holds nothing durable yet. Truncation is modelled
         * as durable at once: the engine never truncates data it needs. */
        if (fi && (!existed || (flags & PLAT_O_TRUNC)))
            fi->synced = 0;
        for (size_t i = 0; i < MAX_FDS; i++) {
            if (f->fds[i].fd < 0) {
                f->fds[i] = (ffd){*fd_out, (uint64_t)st.st_ino, 0};
                return 0;
            }
        }
    }
    f->base->close(f->base, *fd_out);
    return -ENFILE;
}

static int f_close(plat_vfs *v, int fd)
{
    fault *f = F(v);
    ffd *e = fd_find(f, fd);
    if (!e)
        return f->base->close(f->base, fd);
    int dead = e->dead;
    e->fd = -1;
    /* A dead fd was already closed by the crash. */
    return dead ? -EIO : f->base->close(f->base, fd);
}

static int f_pread(plat_vfs *v, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    ffd *e;
    int rc = fd_gate(F(v), fd, PLAT_FAULT_PREAD, 0, &e);
    return rc ? rc : F(v)->base->pread(F(v)->base, fd, buf, len, off, got);
}

static int f_pwritev(plat_vfs *v, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    ffd *e;
    int rc = fd_gate(F(v), fd, PLAT_FAULT_PWRITEV, 1, &e);
    return rc ? rc : F(v)->base->pwritev(F(v)->base, fd, iov, iovcnt, off);
}

static int do_sync(plat_vfs *v, int fd, int full)
{
    fault *f = F(v);
    ffd *e;
    struct stat st;
    int rc = fd_gate(f, fd, PLAT_FAULT_FDATASYNC, 1, &e);
    if (rc)
        return rc;
    rc = full ? f->base->fsync(f->base, fd) : f->base->fdatasync(f->base, fd);
    if (rc)
        return rc;
    if (fstat(fd, &st) == 0) {
        ffile *fi = file_get(f, (uint64_t)st.st_ino, 0);
        if (fi)
            fi->synced = (uint64_t)st.st_size;
    }
    return 0;
}

static int f_fdatasync(plat_vfs *v, int fd)
{
    return do_sync(v, fd, 0);
}

static int f_fsync(plat_vfs *v, int fd)
{
    return do_sync(v, fd, 1);
}

static int f_ftruncate(plat_vfs *v, int fd, uint64_t len)
{
    fault *f = F(v);
    ffd *e;
    int rc = fd_gate(f, fd, PLAT_FAULT_FTRUNCATE, 1, &e);
    if (rc)
        return rc;
    rc = f->base->ftruncate(f->base, fd, len);
    if (!rc && e) {
        ffile *fi = file_get(f, e->ino, 0);
        /* Cutting below the synced size: what survives is at most len. */
        if (fi && fi->synced > len)
            fi->synced = len;
    }
    return rc;
}

static int f_fstat(plat_vfs *v, int fd, plat_stat *st)
{
    ffd *e;
    int rc = fd_gate(F(v), fd, PLAT_FAULT_PREAD, 0, &e);
    return rc ? rc : F(v)->base->fstat(F(v)->base, fd, st);
}

static int f_stat(plat_vfs *v, const char *path, plat_stat *st)
{
    if (F(v)->crashed)
        return -EIO;
    return F(v)->base->stat(F(v)->base, path, st);
}

static int f_rename(plat_vfs *v, const char *from, const char *to)
{
    fault *f = F(v);
    int rc = gate(f, PLAT_FAULT_RENAME, 1);
    if (rc || (rc = protect(f, from)) || (rc = protect(f, to)))
        return rc;
    return f->base->rename(f->base, from, to);
}

static int f_unlink(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    int rc = gate(f, PLAT_FAULT_UNLINK, 1);
    if (rc || (rc = protect(f, path)))
        return rc;
    return f->base->unlink(f->base, path);
}

static int f_mkdir(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    char dir[PATH_LEN], base[256];
    int rc = gate(f, PLAT_FAULT_MKDIR, 1);
    if (rc)
        return rc;
    split(path, dir, base);
    if (!dir_get(f, dir))
        return -ENFILE;
    return f->base->mkdir(f->base, path);
}

static int f_dirsync(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    int rc = gate(f, PLAT_FAULT_DIRSYNC, 1);
    if (rc)
        return rc;
    rc = f->base->dirsync(f->base, path);
    if (rc)
        return rc;
    fdir *d = dir_get(f, path);
    return d ? dir_capture(d) : -ENFILE;
}

static int f_listdir(plat_vfs *v, const char *dir, plat_dirent_fn fn, void *ctx)
{
    if (F(v)->crashed)
        return -EIO;
    return F(v)->base->listdir(F(v)->base, dir, fn, ctx);
}

static int f_lock(plat_vfs *v, const char *path, int *fd_out)
{
    fault *f = F(v);
    char dir[PATH_LEN], base[256];
    if (f->crashed)
        return -EIO;
    split(path, dir, base);
    if (!dir_get(f, dir))
        return -ENFILE;
    /* The lock file is not data: it is not tracked for crashes. */
    return f->base->lock(f->base, path, fd_out);
}

/* ---- crash and control ----------------------------------------------- */

static void rm_shadow(fault *f)
{
    DIR *dp = opendir(f->shadow);
    struct dirent *e;
    char p[PATH_LEN + 256];
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->shadow, e->d_name);
        unlink(p);
    }
    closedir(dp);
}

static int rewind_dir(fault *f, fdir *d, int torn)
{
    DIR *dp = opendir(d->path);
    struct dirent *e;
    char p[PATH_LEN + 256], sh[PATH_LEN + 32];
    struct stat st;
    int rc = 0;
    if (!dp)
        return errno == ENOENT ? 0 : -errno;
    /* 1. Names that are not durable (or point elsewhere) go. */
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st) || S_ISDIR(st.st_mode))
            continue;
        int keep = 0;
        for (size_t i = 0; i < d->n; i++)
            keep |= !strcmp(d->durable[i].name, e->d_name) && d->durable[i].ino == (uint64_t)st.st_ino;
        if (!keep && !strcmp(e->d_name, "LOCK"))
            keep = 1; /* the lock file carries no data */
        if (!keep && unlink(p) && !rc)
            rc = -errno;
    }
    closedir(dp);
    /* 2. Durable names come back, then every file is cut to what was synced. */
    for (size_t i = 0; i < d->n; i++) {
        snprintf(p, sizeof(p), "%s/%s", d->path, d->durable[i].name);
        if (lstat(p, &st)) {
            snprintf(sh, sizeof(sh), "%s/%llu", f->shadow, (unsigned long long)d->durable[i].ino);
            if (link(sh, p) && !rc)
                rc = -errno;
            if (lstat(p, &st))
                continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        ffile *fi = file_get(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
        if (!fi || (uint64_t)st.st_size <= fi->synced)
            continue;
        uint64_t keep = fi->synced;
        if (torn)
            keep += rnd(f) % ((uint64_t)st.st_size - fi->synced + 1);
        if (truncate(p, (off_t)keep) && !rc)
            rc = -errno;
    }
    return rc;
}

int plat_fault_crash(plat_vfs *vfs, int torn)
{
    fault *f = F(vfs);
    int rc = 0;
    /* Every open handle dies with the power. */
    for (size_t i = 0; i < MAX_FDS; i++) {
        if (f->fds[i].fd >= 0 && !f->fds[i].dead) {
            f->base->close(f->base, f->fds[i].fd);
            f->fds[i].dead = 1;
        }
    }
    for (size_t i = 0; i < f->n_dirs; i++) {
        int r = rewind_dir(f, f->dirs[i], torn);
        if (r && !rc)
            rc = r;
    }
    return rc;
}

void plat_fault_revive(plat_vfs *vfs)
{
    fault *f = F(vfs);
    for (size_t i = 0; i < MAX_FDS; i++)
        if (f->fds[i].dead)
            f->fds[i].fd = -1, f->fds[i].dead = 0;
    f->crashed = 0;
    f->crash_left = 0;
    memset(f->fail_left, 0, sizeof(f->fail_left));
    /* What is on disk now is what a rebooted machine finds: all of it is
     * durable from here on. */
    f->n_files = 0;
    for (size_t i = 0; i < f->n_dirs; i++)
        free(f->dirs[i]);
    f->n_dirs = 0;
    rm_shadow(f);
}

void plat_fault_fail_nth(plat_vfs *vfs, plat_fault_op op, unsigned nth, int err)
{
    if (op >= PLAT_FAULT_NOPS)
        return;
    F(vfs)->fail_left[op] = nth;
    F(vfs)->fail_err[op] = err;
}

void plat_fault_crash_at(plat_vfs *vfs, unsigned nth, int torn)
{
    F(vfs)->crash_left = nth;
    F(vfs)->crash_torn = torn;
}

int plat_fault_crashed(plat_vfs *vfs)
{
    return F(vfs)->crashed;
}

unsigned long plat_fault_mutations(plat_vfs *vfs)
{
    return F(vfs)->mutations;
}

plat_vfs *plat_fault_new(plat_vfs *base, const char *shadow_dir, uint64_t seed)
{
    fault *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->vfs = (plat_vfs){
        .open = f_open, .close = f_close, .pread = f_pread, .pwritev = f_pwritev,
        .fdatasync = f_fdatasync, .fsync = f_fsync, .ftruncate = f_ftruncate,
        .fstat = f_fstat, .stat = f_stat, .rename = f_rename, .unlink = f_unlink,
        .mkdir = f_mkdir, .dirsync = f_dirsync, .listdir = f_listdir, .lock = f_lock,
    };
    f->base = base;
    f->rng = seed * 2654435761u + 0x9e3779b97f4a7c15ull;
    if (!f->rng)
        f->rng = 1;
    for (size_t i = 0; i < MAX_FDS; i++)
        f->fds[i].fd = -1;
    snprintf(f->shadow, sizeof(f->shadow), "%s", shadow_dir);
    if (mkdir(shadow_dir, 0755) && errno != EEXIST) {
        free(f);
        return NULL;
    }
    return &f->vfs;
}

void plat_fault_free(plat_vfs *vfs)
{
    fault *f = F(vfs);
    if (!f)
        return;
    rm_shadow(f);
    rmdir(f->shadow);
    for (size_t i = 0; i < f->n_dirs; i++)
        free(f->dirs[i]);
    free(f);
}
