/*
 * plat_posix.c -- the real plat_vfs over POSIX system calls, plus clocks
 * and small helpers. Every call is retried on EINTR; short reads and writes
 * are looped here so callers see all-or-error. Not here: any policy (the
 * engine decides what a failure means) and any buffering.
 */
#define _GNU_SOURCE 1
#include "embeddb/plat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static int posix_open(plat_vfs *self, const char *path, int flags, int *fd_out)
{
    int of = O_CLOEXEC | ((flags & PLAT_O_RDWR) ? O_RDWR : O_RDONLY);
    (void)self;
    if (flags & PLAT_O_CREAT)
        of |= O_CREAT;
    if (flags & PLAT_O_EXCL)
        of |= O_EXCL;
    if (flags & PLAT_O_TRUNC)
        of |= O_TRUNC;
    int fd;
    do
        fd = open(path, of, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    *fd_out = fd;
    return 0;
}

static int posix_close(plat_vfs *self, int fd)
{
    (void)self;
    /* Linux closes the fd even when close reports EINTR: never retry. */
    return close(fd) ? -errno : 0;
}

static int posix_pread(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;
    (void)self;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

static int posix_pwritev(plat_vfs *self, int fd, const struct iovec *iov, int iovcnt,
                         uint64_t off)
{
    (void)self;
    while (iovcnt > 0) {
        ssize_t n = pwritev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        off += (uint64_t)n;
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (n > 0) {
            /* Short write inside an iovec: finish that one with pwrite
             * (the caller's array is const, so it is not adjusted). */
            const char *p = (const char *)iov->iov_base + n;
            size_t left = iov->iov_len - (size_t)n;
            while (left) {
                ssize_t m = pwrite(fd, p, left, (off_t)off);
                if (m < 0 && errno == EINTR)
                    continue;
                if (m <= 0)
                    return m < 0 ? -errno : -EIO;
                p += m;
                left -= (size_t)m;
                off += (uint64_t)m;
            }
            iov++;
            iovcnt--;
        }
    }
    return 0;
}

static int posix_fdatasync(plat_vfs *self, int fd)
{
    (void)self;
    int rc;
    do
        rc = fdatasync(fd);
    while (rc && errno == EINTR);
    return rc ? -errno : 0;
}

static int posix_fsync(plat_vfs *self, int fd)
{
    (void)self;
    int rc;
    do
        rc = fsync(fd);
    while (rc && errno == EINTR);
    return rc ? -errno : 0;
}

static int posix_ftruncate(plat_vfs *self, int fd, uint64_t len)
{
    (void)self;
    int rc;
    do
        rc = ftruncate(fd, (off_t)len);
    while (rc && errno == EINTR);
    return rc ? -errno : 0;
}

static void fill_stat(const struct stat *st, plat_stat *out)
{
    out->size = (uint64_t)st->st_size;
    out->is_dir = S_ISDIR(st->st_mode);
    out->is_reg = S_ISREG(st->st_mode);
    out->ino = (uint64_t)st->st_ino;
}

static int posix_fstat(plat_vfs *self, int fd, plat_stat *out)
{
    struct stat st;
    (void)self;
    if (fstat(fd, &st))
        return -errno;
    fill_stat(&st, out);
    return 0;
}

static int posix_stat(plat_vfs *self, const char *path, plat_stat *out)
{
    struct stat st;
    (void)self;
    if (stat(path, &st))
        return -errno;
    fill_stat(&st, out);
    return 0;
}

static int posix_rename(plat_vfs *self, const char *from, const char *to)
{
    (void)self;
    return rename(from, to) ? -errno : 0;
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

static int posix_dirsync(plat_vfs *self, const char *dir)
{
    int fd, rc = 0;
    (void)self;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    if (fsync(fd))
        rc = -errno;
    close(fd);
    return rc;
}

static int posix_listdir(plat_vfs *self, const char *dir, plat_dirent_fn fn, void *ctx)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;
    (void)self;
    if (!d)
        return -errno;
    for (;;) {
        errno = 0;
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
    closedir(d);
    return rc;
}

static int posix_lock(plat_vfs *self, const char *path, int *fd_out)
{
    int fd = -1, rc;
    rc = posix_open(self, path, PLAT_O_RDWR | PLAT_O_CREAT, &fd);
    if (rc)
        return rc;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
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
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .dirsync = posix_dirsync,
    .listdir = posix_listdir,
    .lock = posix_lock,
};

plat_vfs *plat_vfs_default(void)
{
    return &posix_vfs;
}

int64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t plat_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int plat_write_all(plat_vfs *vfs, int fd, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {(void *)buf, len};
    return vfs->pwritev(vfs, fd, &iov, 1, off);
}

int plat_read_exact(plat_vfs *vfs, int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    int rc = vfs->pread(vfs, fd, buf, len, off, &got);
    if (rc)
        return rc;
    return got == len ? 0 : -ENODATA;
}

int plat_path_join(char *out, size_t out_len, const char *dir, const char *name)
{
    int n = snprintf(out, out_len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}
