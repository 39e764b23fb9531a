/*
 * plat_posix.c -- the real plat_vfs over POSIX system calls, plus the clocks
 * and the whole-buffer helpers (contract in plat.h).
 *
 * Every call is retried on EINTR and short reads and writes are looped here,
 * so a caller sees all-or-error. Descriptors are opened O_CLOEXEC so a child
 * the agent spawns never inherits store files or the store lock.
 *
 * Not here: policy (the engine decides what a failure means, and whether to
 * log it), buffering, or any fault injection (plat_fault.c wraps this table).
 */
#define _FILE_OFFSET_BITS 64 /* 64-bit offsets on 32-bit ARM targets too */
#include "embeddb/plat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* 1 when off is representable as a non-negative off_t; a silent wrap would
 * read or write the wrong place in the file. */
static int off_ok(uint64_t off)
{
    off_t o = (off_t)off;
    return o >= 0 && (uint64_t)o == off;
}

static int posix_open(plat_vfs *self, const char *path, int flags, int *fd_out)
{
    int of = O_CLOEXEC | ((flags & PLAT_O_RDWR) ? O_RDWR : O_RDONLY);
    int fd, rc = 0;
    (void)self;
    if (flags & PLAT_O_CREAT)
        of |= O_CREAT;
    if (flags & PLAT_O_EXCL)
        of |= O_EXCL;
    if (flags & PLAT_O_TRUNC)
        of |= O_TRUNC;
    do
        fd = open(path, of, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    *fd_out = fd;
out:
    return rc;
}

static int posix_close(plat_vfs *self, int fd)
{
    int rc = 0;
    (void)self;
    /* Linux releases the descriptor even when close reports EINTR, so a
     * retry could close a number another thread just got: never retry, and
     * do not make the caller think it should. */
    if (close(fd) && errno != EINTR)
        rc = -errno;
    return rc;
}

static int posix_pread(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;
    int rc = 0;
    (void)self;
    if (!off_ok(off) || off + len < off || !off_ok(off + len)) {
        rc = -EINVAL;
        goto out;
    }
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break; /* end of file */
        done += (size_t)n;
    }
out:
    *got = done;
    return rc;
}

/*
 * The caller's iovec array is const, so a short write is resumed by keeping
 * an index (i) and a byte offset into that iovec (skip) instead of editing
 * the array: a part-written iovec is finished with pwrite, then whole ones
 * go back to pwritev.
 */
static int posix_pwritev(plat_vfs *self, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    int i = 0, rc = 0;
    size_t skip = 0;
    (void)self;
    if (iovcnt < 0 || !off_ok(off)) {
        rc = -EINVAL;
        goto out;
    }
    while (i < iovcnt) {
        ssize_t n;
        if (skip == iov[i].iov_len) { /* done with this one (or it was empty) */
            i++;
            skip = 0;
            continue;
        }
        if (skip)
            n = pwrite(fd, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip, (off_t)off);
        else
            n = pwritev(fd, iov + i, iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0) { /* no progress and no error: do not spin */
            rc = -EIO;
            goto out;
        }
        off += (uint64_t)n;
        for (size_t left = (size_t)n; left;) {
            size_t room = iov[i].iov_len - skip;
            if (left < room) {
                skip += left;
                left = 0;
            } else {
                left -= room;
                i++;
                skip = 0;
            }
        }
    }
out:
    return rc;
}

static int posix_fdatasync(plat_vfs *self, int fd)
{
    int r;
    (void)self;
    do
        r = fdatasync(fd);
    while (r && errno == EINTR);
    return r ? -errno : 0;
}

static int posix_fsync(plat_vfs *self, int fd)
{
    int r;
    (void)self;
    do
        r = fsync(fd);
    while (r && errno == EINTR);
    return r ? -errno : 0;
}

static int posix_ftruncate(plat_vfs *self, int fd, uint64_t len)
{
    int r = -1;
    (void)self;
    errno = EINVAL;
    if (off_ok(len)) {
        do
            r = ftruncate(fd, (off_t)len);
        while (r && errno == EINTR);
    }
    return r ? -errno : 0;
}

static void fill_stat(const struct stat *st, plat_stat *out)
{
    out->size = (uint64_t)st->st_size;
    out->is_dir = S_ISDIR(st->st_mode) ? 1 : 0;
    out->is_reg = S_ISREG(st->st_mode) ? 1 : 0;
    out->ino = (uint64_t)st->st_ino;
}

static int posix_fstat(plat_vfs *self, int fd, plat_stat *out)
{
    struct stat st;
    int rc = 0;
    (void)self;
    if (fstat(fd, &st))
        rc = -errno;
    else
        fill_stat(&st, out);
    return rc;
}

static int posix_stat(plat_vfs *self, const char *path, plat_stat *out)
{
    struct stat st;
    int rc = 0;
    (void)self;
    if (stat(path, &st))
        rc = -errno;
    else
        fill_stat(&st, out);
    return rc;
}

static int posix_rename(plat_vfs *self, const char *from, const char *to)
{
    (void)self;
    return rename(from, to) ? -errno : 0;
}

static int posix_link(plat_vfs *self, const char *from, const char *to)
{
    (void)self;
    return link(from, to) ? -errno : 0;
}

static int posix_unlink(plat_vfs *self, const char *path)
{
    (void)self;
    return unlink(path) ? -errno : 0;
}

static int posix_mkdir(plat_vfs *self, const char *path)
{
    (void)self;
    return mkdir(path, 0755) ? -errno : 0;
}

static int posix_rmdir(plat_vfs *self, const char *path)
{
    (void)self;
    return rmdir(path) ? -errno : 0;
}

static int posix_statfs(plat_vfs *self, const char *path, uint64_t *avail, uint64_t *total)
{
    struct statvfs sv;
    (void)self;
    if (statvfs(path, &sv))
        return -errno;
    *avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    *total = (uint64_t)sv.f_blocks * sv.f_frsize;
    return 0;
}

/* A directory's entries are made durable by fsync on the directory itself;
 * O_RDONLY is enough for that on Linux and is all a directory allows. */
static int posix_dirsync(plat_vfs *self, const char *dir)
{
    int fd, rc = 0;
    (void)self;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = posix_fsync(self, fd);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int posix_listdir(plat_vfs *self, const char *dir, plat_dirent_fn fn, void *ctx)
{
    DIR *d = NULL;
    struct dirent *e;
    int rc = 0;
    (void)self;
    d = opendir(dir);
    if (!d) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        errno = 0; /* readdir signals an error only through errno */
        e = readdir(d);
        if (!e) {
            rc = errno ? -errno : 0;
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((rc = fn(ctx, e->d_name)))
            break;
    }
out:
    if (d)
        closedir(d);
    return rc;
}

/* flock rather than fcntl locks: an fcntl lock is dropped when *any*
 * descriptor of the file in this process is closed, and it never conflicts
 * within one process, so it cannot keep a second open of the same store in
 * this process out. */
static int posix_lock(plat_vfs *self, const char *path, int *fd_out)
{
    int fd = -1, rc, r;
    rc = posix_open(self, path, PLAT_O_RDWR | PLAT_O_CREAT, &fd);
    if (rc)
        goto out;
    do
        r = flock(fd, LOCK_EX | LOCK_NB);
    while (r && errno == EINTR);
    if (r) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto out;
    }
    *fd_out = fd;
    fd = -1; /* now the caller's */
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int posix_map(plat_vfs *self, int fd, uint64_t len, const void **addr)
{
    (void)self;
    *addr = NULL;
    if (len == 0 || len > SIZE_MAX)
        return -EOVERFLOW;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *addr = p;
    return 0;
}

static void posix_unmap(plat_vfs *self, const void *addr, uint64_t len)
{
    (void)self;
    if (addr)
        munmap((void *)(uintptr_t)addr, (size_t)len);
}

static plat_vfs posix_vfs = {
    .open = posix_open,
    .close = posix_close,
    .pread = posix_pread,
    .pwritev = posix_pwritev,
    .fdatasync = posix_fdatasync,
    .fsync = posix_fsync,
    .ftruncate = posix_ftruncate,
    .fstat = posix_fstat,
    .stat = posix_stat,
    .rename = posix_rename,
    .link = posix_link,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .rmdir = posix_rmdir,
    .dirsync = posix_dirsync,
    .listdir = posix_listdir,
    .lock = posix_lock,
    .statfs = posix_statfs,
    .map = posix_map,
    .unmap = posix_unmap,
};

plat_vfs *plat_vfs_default(void)
{
    return &posix_vfs;
}

int64_t plat_now_ns(void)
{
    struct timespec ts = {0, 0};
    /* Cannot fail for CLOCK_REALTIME with a valid pointer. */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t plat_mono_ns(void)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t plat_mono_ms(void)
{
    return plat_mono_ns() / 1000000;
}

int plat_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (!rc && !(rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)))
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

struct timespec plat_mono_after_ms(uint64_t ms)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

int plat_write_all(plat_vfs *vfs, int fd, const void *buf, size_t len, uint64_t off)
{
    /* iov_base is not const in POSIX; pwritev only reads through it. */
    struct iovec iov = {(void *)buf, len};
    return vfs->pwritev(vfs, fd, &iov, 1, off);
}

int plat_read_exact(plat_vfs *vfs, int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    int rc = vfs->pread(vfs, fd, buf, len, off, &got);
    if (!rc && got != len)
        rc = -ENODATA;
    return rc;
}

int plat_path_join(char *out, size_t out_len, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    /* "/" + "x" is "/x", not "//x", and "" + "x" is "x": the fault vfs
     * compares directory paths as spelled. */
    const char *sep = !dl || dir[dl - 1] == '/' ? "" : "/";
    int n = snprintf(out, out_len, "%s%s%s", dir, sep, name);
    return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}
