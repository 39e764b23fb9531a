/*
 * plat_fault.c -- the fault-injecting vfs for crash tests (contract in
 * plat_fault.h). It wraps a base vfs and models what a power cut may leave.
 *
 * State, all in one struct whose first member is the plat_vfs table, so the
 * table pointer every call receives is the state pointer:
 *   - files[]: per inode, the size the last fdatasync/fsync made durable. A
 *     file we create starts at 0; a file that existed before we first opened
 *     it counts as synced at the size it had then. Inodes we never opened
 *     are not tracked, and a crash leaves them alone.
 *   - dirs[]: per directory path, the name -> inode map that was durable at
 *     the last dirsync, captured from disk the first time the directory is
 *     touched (so whatever existed before counts as durable).
 *   - fds[]: descriptors opened through us, so a crash can kill them.
 * A name the durable map still needs, but that unlink or rename is about to
 * remove, keeps its inode alive through a hard link in the shadow directory
 * (named by inode number); a crash links it back.
 *
 * What it is not: a model of every file system. It covers regular files
 * only (directories are durable once made, never removed or restored by a
 * crash), truncation is durable at once, and overwrites inside the synced
 * size survive a crash; see the limits below. Not thread-safe; paths are
 * compared as spelled; test-only, never linked into shipped binaries.
 */
#include "embeddb/plat_fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fixed limits; calls that would exceed them fail with -ENFILE. */
#define MAX_FILES 1024 /* tracked inodes (forgotten when their last name goes) */
#define MAX_DIRS 16    /* tracked directories */
#define MAX_FDS 256    /* descriptors open through the fault vfs, dead ones included */
#define PATH_LEN 4096

typedef struct ffile {
    uint64_t ino;
    uint64_t synced; /* bytes that survive a crash */
} ffile;

typedef struct fname {
    char name[NAME_MAX + 1];
    uint64_t ino;
} fname;

typedef struct fdir {
    char path[PATH_LEN];
    fname *durable; /* owned; grows as needed */
    size_t n, cap;
} fdir;

typedef struct ffd {
    int fd;   /* -1: free slot */
    int dead; /* killed by a crash; the number is held by a placeholder */
} ffd;

typedef struct fault {
    plat_vfs vfs; /* first: the table pointer is the state pointer */
    plat_vfs *base;
    char shadow[PATH_LEN];
    int made_shadow; /* we created the shadow dir, so free removes it */
    uint64_t rng;
    ffile files[MAX_FILES];
    size_t n_files;
    fdir dirs[MAX_DIRS];
    size_t n_dirs;
    ffd fds[MAX_FDS];
    unsigned fail_left[PLAT_FAULT_NOPS];
    int fail_err[PLAT_FAULT_NOPS];
    unsigned crash_left;
    int crash_torn;
    int crashed;
    unsigned long mutations;
    uint64_t avail_cap; /* statfs reports at most this (UINT64_MAX: no cap) */
} fault;

static fault *F(plat_vfs *v)
{
    return (fault *)v;
}

static int is_dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

/* xorshift64: enough to scatter torn-write lengths, reproducible per seed. */
static uint64_t rnd(fault *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

/* ---- files ------------------------------------------------------------ */

static ffile *file_find(fault *f, uint64_t ino)
{
    for (size_t i = 0; i < f->n_files; i++)
        if (f->files[i].ino == ino)
            return &f->files[i];
    return NULL;
}

static int file_set(fault *f, uint64_t ino, uint64_t synced)
{
    ffile *fi = file_find(f, ino);
    int rc = 0;
    if (!fi && f->n_files == MAX_FILES) {
        rc = -ENFILE;
        goto out;
    }
    if (!fi)
        fi = &f->files[f->n_files++];
    fi->ino = ino;
    fi->synced = synced;
out:
    return rc;
}

/* The inode lost its last name: drop its record, so a file that later gets
 * the recycled inode number outside our view does not inherit its size. */
static void file_forget(fault *f, uint64_t ino)
{
    ffile *fi = file_find(f, ino);
    if (fi)
        *fi = f->files[--f->n_files];
}

/* ---- directories ------------------------------------------------------ */

/* Splits path into its directory as spelled ("." when there is none, "/"
 * for a top-level name) and its last component. */
static int split(const char *path, char dir[PATH_LEN], char name[NAME_MAX + 1])
{
    const char *slash = strrchr(path, '/');
    const char *last = slash ? slash + 1 : path;
    size_t dl = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    int rc = 0;
    if (!*last) { /* trailing slash: no name to track */
        rc = -EINVAL;
        goto out;
    }
    if (dl >= PATH_LEN || strlen(last) > NAME_MAX) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    memcpy(dir, slash ? path : ".", dl);
    dir[dl] = '\0';
    strcpy(name, last);
out:
    return rc;
}

static int dir_add(fdir *d, const char *name, uint64_t ino)
{
    int rc = 0;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 32;
        fname *p = cap > SIZE_MAX / sizeof(*p) ? NULL : realloc(d->durable, cap * sizeof(*p));
        if (!p) {
            rc = -ENOMEM;
            goto out;
        }
        d->durable = p;
        d->cap = cap;
    }
    snprintf(d->durable[d->n].name, sizeof(d->durable[d->n].name), "%s", name);
    d->durable[d->n++].ino = ino;
out:
    return rc;
}

static int dir_has(const fdir *d, const char *name, uint64_t ino)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->durable[i].ino == ino && !strcmp(d->durable[i].name, name))
            return 1;
    return 0;
}

/* Takes what is in the directory now as its durable map (regular files). */
static int dir_capture(fdir *d)
{
    DIR *dp = NULL;
    struct dirent *e;
    struct stat st;
    char p[PATH_LEN + NAME_MAX + 2];
    int rc = 0;
    d->n = 0;
    dp = opendir(d->path);
    if (!dp) {
        rc = -errno;
        goto out;
    }
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st) || !S_ISREG(st.st_mode))
            continue;
        if ((rc = dir_add(d, e->d_name, (uint64_t)st.st_ino)))
            goto out;
    }
out:
    if (dp)
        closedir(dp);
    return rc;
}

/* Finds the directory's record, capturing it on first touch. *out is NULL
 * when the directory does not exist: there is nothing to protect, and the
 * call about to run will report ENOENT itself. */
static int dir_touch(fault *f, const char *path, fdir **out)
{
    fdir *d = NULL;
    int rc = 0;
    for (size_t i = 0; i < f->n_dirs && !d; i++)
        if (!strcmp(f->dirs[i].path, path))
            d = &f->dirs[i];
    if (d)
        goto out;
    if (f->n_dirs == MAX_DIRS) {
        rc = -ENFILE;
        goto out;
    }
    d = &f->dirs[f->n_dirs];
    snprintf(d->path, sizeof(d->path), "%s", path);
    rc = dir_capture(d);
    if (rc) {
        d = NULL;
        if (rc == -ENOENT)
            rc = 0;
        goto out;
    }
    f->n_dirs++;
out:
    *out = d;
    return rc;
}

static int touch_parent(fault *f, const char *path)
{
    char dir[PATH_LEN], name[NAME_MAX + 1];
    fdir *d;
    int rc = split(path, dir, name);
    if (!rc)
        rc = dir_touch(f, dir, &d);
    return rc;
}

static void shadow_path(fault *f, uint64_t ino, char *out, size_t len)
{
    snprintf(out, len, "%s/%llu", f->shadow, (unsigned long long)ino);
}

/*
 * Called before the name `path` goes away (unlink, either side of a rename).
 * If the durable map of its directory still holds that name with this inode,
 * hard-links the inode into the shadow directory so a crash can restore it.
 * *ino gets the regular file's inode (0 if none), *last 1 when this name is
 * its only link and nothing else keeps it, i.e. it dies with the name.
 */
static int protect(fault *f, const char *path, uint64_t *ino, int *last)
{
    char dir[PATH_LEN], name[NAME_MAX + 1], sh[PATH_LEN + 32];
    fdir *d = NULL;
    struct stat st;
    int rc;
    *ino = 0;
    *last = 0;
    if ((rc = split(path, dir, name)) || (rc = dir_touch(f, dir, &d)) || !d)
        goto out;
    if (lstat(path, &st) || !S_ISREG(st.st_mode))
        goto out; /* the call itself will report what is wrong */
    *ino = (uint64_t)st.st_ino;
    if (!dir_has(d, name, *ino)) {
        *last = st.st_nlink == 1;
        goto out;
    }
    shadow_path(f, *ino, sh, sizeof(sh));
    if (link(path, sh) && errno != EEXIST)
        rc = -errno; /* EXDEV: the shadow dir is on another file system */
out:
    return rc;
}

/* ---- descriptors and the gate ------------------------------------------ */

static ffd *fd_find(fault *f, int fd)
{
    for (size_t i = 0; i < MAX_FDS; i++)
        if (f->fds[i].fd == fd)
            return &f->fds[i];
    return NULL;
}

/* Registers a descriptor we just opened and its inode. `fresh`: this open
 * created or truncated the file, so none of its bytes are durable yet. */
static int track(fault *f, int fd, int fresh)
{
    struct stat st;
    ffd *slot = NULL;
    int rc = 0;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    /* An entry with this number is stale (the kernel hands out free numbers
     * only): the caller closed it behind our back. Reuse it. */
    slot = fd_find(f, fd);
    if (!slot)
        slot = fd_find(f, -1);
    if (!slot) {
        rc = -ENFILE;
        goto out;
    }
    if (fresh)
        rc = file_set(f, (uint64_t)st.st_ino, 0);
    else if (!file_find(f, (uint64_t)st.st_ino))
        rc = file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
    if (rc)
        goto out;
    slot->fd = fd;
    slot->dead = 0;
out:
    return rc;
}

/*
 * Decides whether a call goes ahead: 0, or the -errno it returns without
 * doing anything. Counts mutating calls, and fires an armed crash before
 * the call that reaches it. op < 0: a call no fail rule can name.
 */
static int gate(fault *f, int op, int mutating)
{
    int rc = 0;
    if (f->crashed) {
        rc = -EIO;
        goto out;
    }
    if (mutating) {
        f->mutations++;
        if (f->crash_left && --f->crash_left == 0) {
            int r = plat_fault_crash(&f->vfs, f->crash_torn);
            /* Nobody can be told through the failing call, and a disk left
             * half-rewound makes the test's findings meaningless. */
            if (r)
                fprintf(stderr, "plat_fault: rewinding the disk at crash: %s\n", strerror(-r));
            f->crashed = 1;
            rc = -EIO;
            goto out;
        }
    }
    if (op >= 0 && f->fail_left[op] && --f->fail_left[op] == 0)
        rc = f->fail_err[op];
out:
    return rc;
}

/* gate() for a call on a descriptor: dead handles fail before anything is
 * counted. *e is the descriptor's entry, NULL when not opened through us. */
static int fd_gate(fault *f, int fd, int op, int mutating, ffd **e)
{
    *e = fd_find(f, fd);
    return *e && (*e)->dead ? -EIO : gate(f, op, mutating);
}

/* ---- the vfs ---------------------------------------------------------- */

static int f_open(plat_vfs *v, const char *path, int flags, int *fd_out)
{
    fault *f = F(v);
    struct stat st;
    int existed = stat(path, &st) == 0;
    int fresh = ((flags & PLAT_O_CREAT) && !existed) || ((flags & PLAT_O_TRUNC) && existed);
    int fd = -1, rc;
    if ((rc = gate(f, PLAT_FAULT_OPEN, fresh)) || (rc = touch_parent(f, path)))
        goto out;
    if ((rc = f->base->open(f->base, path, flags, &fd)) || (rc = track(f, fd, fresh)))
        goto out;
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        f->base->close(f->base, fd);
    return rc;
}

static int f_close(plat_vfs *v, int fd)
{
    fault *f = F(v);
    ffd *e = fd_find(f, fd);
    /* Always release the number, even a dead handle's placeholder. */
    int rc = f->base->close(f->base, fd);
    if (e) {
        if (e->dead)
            rc = -EIO;
        e->fd = -1;
        e->dead = 0;
    }
    return rc;
}

static int f_pread(plat_vfs *v, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    fault *f = F(v);
    ffd *e;
    int rc = fd_gate(f, fd, PLAT_FAULT_PREAD, 0, &e);
    if (rc)
        *got = 0;
    else
        rc = f->base->pread(f->base, fd, buf, len, off, got);
    return rc;
}

static int f_pwritev(plat_vfs *v, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    fault *f = F(v);
    ffd *e;
    int rc = fd_gate(f, fd, PLAT_FAULT_PWRITEV, 1, &e);
    if (!rc)
        rc = f->base->pwritev(f->base, fd, iov, iovcnt, off);
    return rc;
}

static int do_sync(fault *f, int fd, int full)
{
    struct stat st;
    ffd *e;
    int rc = fd_gate(f, fd, PLAT_FAULT_FDATASYNC, 1, &e);
    if (rc)
        goto out;
    rc = full ? f->base->fsync(f->base, fd) : f->base->fdatasync(f->base, fd);
    if (rc || !e)
        goto out;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    rc = file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
out:
    return rc;
}

static int f_fdatasync(plat_vfs *v, int fd)
{
    return do_sync(F(v), fd, 0);
}

static int f_fsync(plat_vfs *v, int fd)
{
    return do_sync(F(v), fd, 1);
}

static int f_ftruncate(plat_vfs *v, int fd, uint64_t len)
{
    fault *f = F(v);
    struct stat st;
    ffile *fi;
    ffd *e;
    int rc = fd_gate(f, fd, PLAT_FAULT_FTRUNCATE, 1, &e);
    if (rc || (rc = f->base->ftruncate(f->base, fd, len)) || !e)
        goto out;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    /* Cutting below the synced size is modelled as durable at once: the
     * bytes cut off cannot come back. */
    fi = file_find(f, (uint64_t)st.st_ino);
    if (fi && fi->synced > len)
        fi->synced = len;
out:
    return rc;
}

static int f_fstat(plat_vfs *v, int fd, plat_stat *st)
{
    fault *f = F(v);
    ffd *e;
    int rc = fd_gate(f, fd, -1, 0, &e);
    if (!rc)
        rc = f->base->fstat(f->base, fd, st);
    return rc;
}

static int f_stat(plat_vfs *v, const char *path, plat_stat *st)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->stat(f->base, path, st);
    return rc;
}

static int f_rename(plat_vfs *v, const char *from, const char *to)
{
    fault *f = F(v);
    uint64_t from_ino, to_ino;
    int from_last, to_last, rc;
    if ((rc = gate(f, PLAT_FAULT_RENAME, 1)) || (rc = protect(f, from, &from_ino, &from_last)) ||
        (rc = protect(f, to, &to_ino, &to_last)) || (rc = f->base->rename(f->base, from, to)))
        goto out;
    /* The inode renamed over dies, unless both names were links to one. */
    if (to_ino && to_last && to_ino != from_ino)
        file_forget(f, to_ino);
out:
    return rc;
}

/* A new name: like a created file, it is gone after a crash unless its
 * directory was synced since. The inode's synced size is shared. */
static int f_link(plat_vfs *v, const char *from, const char *to)
{
    fault *f = F(v);
    int rc;
    if ((rc = gate(f, PLAT_FAULT_LINK, 1)) || (rc = touch_parent(f, from)) ||
        (rc = touch_parent(f, to)))
        goto out;
    rc = f->base->link(f->base, from, to);
out:
    return rc;
}

static int f_unlink(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    uint64_t ino;
    int last, rc;
    if ((rc = gate(f, PLAT_FAULT_UNLINK, 1)) || (rc = protect(f, path, &ino, &last)) ||
        (rc = f->base->unlink(f->base, path)))
        goto out;
    if (ino && last)
        file_forget(f, ino);
out:
    return rc;
}

static int f_mkdir(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    int rc;
    if ((rc = gate(f, PLAT_FAULT_MKDIR, 1)) || (rc = touch_parent(f, path)))
        goto out;
    rc = f->base->mkdir(f->base, path);
out:
    return rc;
}

/* Directories are outside the crash model: removal is durable at once. */
static int f_rmdir(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    int rc = gate(f, PLAT_FAULT_RMDIR, 1);
    if (!rc)
        rc = f->base->rmdir(f->base, path);
    return rc;
}

static int f_statfs(plat_vfs *v, const char *path, uint64_t *avail, uint64_t *total)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->statfs(f->base, path, avail, total);
    if (!rc && *avail > f->avail_cap)
        *avail = f->avail_cap;
    return rc;
}

static int f_dirsync(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    fdir *d = NULL;
    int rc;
    if ((rc = gate(f, PLAT_FAULT_DIRSYNC, 1)) || (rc = f->base->dirsync(f->base, path)))
        goto out;
    /* A first touch captures the present anyway; otherwise re-capture. */
    for (size_t i = 0; i < f->n_dirs && !d; i++)
        if (!strcmp(f->dirs[i].path, path))
            d = &f->dirs[i];
    rc = d ? dir_capture(d) : dir_touch(f, path, &d);
out:
    return rc;
}

static int f_listdir(plat_vfs *v, const char *dir, plat_dirent_fn fn, void *ctx)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->listdir(f->base, dir, fn, ctx);
    return rc;
}

/* The lock file is tracked like any file opened here, and a crash kills its
 * handle, which releases the lock as a reboot would. */
static int f_lock(plat_vfs *v, const char *path, int *fd_out)
{
    fault *f = F(v);
    struct stat st;
    int existed = stat(path, &st) == 0;
    int fd = -1, rc;
    if ((rc = gate(f, -1, 0)) || (rc = touch_parent(f, path)) ||
        (rc = f->base->lock(f->base, path, &fd)) || (rc = track(f, fd, !existed)))
        goto out;
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        f->base->close(f->base, fd);
    return rc;
}

/* ---- crash -------------------------------------------------------------- */

/*
 * Every handle dies with the power. The real file is closed (dropping its
 * flock, as a reboot would) but the number stays taken by a /dev/null
 * placeholder until the owner closes it: otherwise a stale handle's number
 * could be handed to a file opened after the crash, and the owner's late
 * close or write would hit that file.
 */
static int kill_fds(fault *f)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = null_fd < 0 ? -errno : 0;
    for (size_t i = 0; i < MAX_FDS; i++) {
        ffd *e = &f->fds[i];
        if (e->fd < 0 || e->dead)
            continue;
        if (null_fd >= 0 && dup2(null_fd, e->fd) >= 0)
            fcntl(e->fd, F_SETFD, FD_CLOEXEC);
        else
            f->base->close(f->base, e->fd); /* second best: number may be reused */
        e->dead = 1;
    }
    if (null_fd >= 0)
        close(null_fd);
    return rc;
}

/* Directory entries go back to the last dirsync: names made since (or now
 * naming another inode) go, durable names come back from the shadow dir. */
static int rewind_names(fault *f, fdir *d)
{
    DIR *dp = NULL;
    struct dirent *e;
    struct stat st;
    char p[PATH_LEN + NAME_MAX + 2], sh[PATH_LEN + 32];
    int rc = 0;
    dp = opendir(d->path);
    if (!dp) {
        rc = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st) || !S_ISREG(st.st_mode) || dir_has(d, e->d_name, (uint64_t)st.st_ino))
            continue;
        if (unlink(p)) {
            rc = rc ? rc : -errno;
            continue;
        }
        if (st.st_nlink == 1)
            file_forget(f, (uint64_t)st.st_ino);
    }
    for (size_t i = 0; i < d->n; i++) {
        snprintf(p, sizeof(p), "%s/%s", d->path, d->durable[i].name);
        if (lstat(p, &st) == 0)
            continue;
        shadow_path(f, d->durable[i].ino, sh, sizeof(sh));
        if (link(sh, p) && !rc)
            rc = -errno;
    }
out:
    if (dp)
        closedir(dp);
    return rc;
}

/* Cuts every tracked file in the directory to its synced size, or with
 * `torn` to a random point between that and its present size. */
static int cut_files(fault *f, fdir *d, int torn)
{
    DIR *dp = NULL;
    struct dirent *e;
    struct stat st;
    char p[PATH_LEN + NAME_MAX + 2];
    int rc = 0;
    dp = opendir(d->path);
    if (!dp) {
        rc = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    while ((e = readdir(dp))) {
        ffile *fi;
        uint64_t keep;
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st) || !S_ISREG(st.st_mode))
            continue;
        fi = file_find(f, (uint64_t)st.st_ino);
        if (!fi || (uint64_t)st.st_size <= fi->synced)
            continue;
        keep = fi->synced;
        if (torn)
            keep += rnd(f) % ((uint64_t)st.st_size - fi->synced + 1);
        if (truncate(p, (off_t)keep) && !rc)
            rc = -errno;
    }
out:
    if (dp)
        closedir(dp);
    return rc;
}

int plat_fault_crash(plat_vfs *vfs, int torn)
{
    fault *f = F(vfs);
    int rc = kill_fds(f), r;
    /* Names first, then sizes: a restored name may lead to a file to cut. */
    for (size_t i = 0; i < f->n_dirs; i++)
        if ((r = rewind_names(f, &f->dirs[i])) && !rc)
            rc = r;
    for (size_t i = 0; i < f->n_dirs; i++)
        if ((r = cut_files(f, &f->dirs[i], torn)) && !rc)
            rc = r;
    return rc;
}

/* ---- control ------------------------------------------------------------ */

static void clear_shadow(fault *f)
{
    DIR *dp = opendir(f->shadow);
    struct dirent *e;
    char p[PATH_LEN + NAME_MAX + 2];
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->shadow, e->d_name);
        unlink(p);
    }
    closedir(dp);
}

void plat_fault_revive(plat_vfs *vfs)
{
    fault *f = F(vfs);
    struct stat st;
    size_t kept = 0;
    f->crashed = 0;
    f->crash_left = 0;
    /* What is on disk now is what the rebooted machine finds: all durable.
     * Known directories are re-captured now rather than on next touch, so
     * a write through a handle still open (revive without a crash) is
     * still cut by a later crash. */
    for (size_t i = 0; i < f->n_dirs; i++) {
        if (dir_capture(&f->dirs[i])) { /* gone: forget it */
            free(f->dirs[i].durable);
            memset(&f->dirs[i], 0, sizeof(f->dirs[i]));
            continue;
        }
        if (i != kept) {
            f->dirs[kept] = f->dirs[i];
            memset(&f->dirs[i], 0, sizeof(f->dirs[i]));
        }
        kept++;
    }
    f->n_dirs = kept;
    f->n_files = 0;
    for (size_t i = 0; i < MAX_FDS; i++)
        if (f->fds[i].fd >= 0 && !f->fds[i].dead && !fstat(f->fds[i].fd, &st))
            file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
    clear_shadow(f);
}

void plat_fault_fail_nth(plat_vfs *vfs, plat_fault_op op, unsigned nth, int err)
{
    fault *f = F(vfs);
    if ((unsigned)op >= PLAT_FAULT_NOPS)
        return;
    f->fail_left[op] = nth;
    /* A rule must fail the call; 0 would silently drop it. */
    f->fail_err[op] = err < 0 ? err : -EIO;
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

void plat_fault_set_avail(plat_vfs *vfs, uint64_t avail)
{
    F(vfs)->avail_cap = avail;
}

plat_vfs *plat_fault_new(plat_vfs *base, const char *shadow_dir, uint64_t seed)
{
    fault *f = calloc(1, sizeof(*f));
    plat_vfs *out = NULL;
    if (!f || strlen(shadow_dir) + 32 >= sizeof(f->shadow))
        goto out;
    f->vfs = (plat_vfs){
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwritev = f_pwritev,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .ftruncate = f_ftruncate,
        .fstat = f_fstat,
        .stat = f_stat,
        .rename = f_rename,
        .link = f_link,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .rmdir = f_rmdir,
        .dirsync = f_dirsync,
        .listdir = f_listdir,
        .lock = f_lock,
        .statfs = f_statfs,
    };
    f->avail_cap = UINT64_MAX;
    f->base = base;
    /* Spread small seeds over the state; xorshift must not start at 0. */
    f->rng = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (!f->rng)
        f->rng = 1;
    for (size_t i = 0; i < MAX_FDS; i++)
        f->fds[i].fd = -1;
    snprintf(f->shadow, sizeof(f->shadow), "%s", shadow_dir);
    if (mkdir(shadow_dir, 0755) == 0)
        f->made_shadow = 1;
    else if (errno != EEXIST)
        goto out;
    out = &f->vfs;
    f = NULL;
out:
    free(f);
    return out;
}

void plat_fault_free(plat_vfs *vfs)
{
    fault *f = F(vfs);
    if (!f)
        return;
    /* Dead handles' placeholders are left open: their numbers still belong
     * to callers who will close them. */
    clear_shadow(f);
    if (f->made_shadow)
        rmdir(f->shadow);
    /* All slots: one whose first capture failed may hold a buffer too. */
    for (size_t i = 0; i < MAX_DIRS; i++)
        free(f->dirs[i].durable);
    free(f);
}
