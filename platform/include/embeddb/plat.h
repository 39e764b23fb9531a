/*
 * plat.h -- the thin OS layer every other part of EmbedDb goes through.
 *
 * All file-system system calls the engine makes sit behind a table of
 * function pointers (plat_vfs), as SQLite's os_unix.c keeps its syscalls in
 * a table: tests swap in the fault-injecting table from plat_fault.h to fail
 * the Nth write or fsync, return ENOSPC, or simulate a power cut that drops
 * every byte and every directory change that was not yet synced.
 *
 * Conventions (libuv style): every function returns 0 on success or a
 * negative errno value (-ENOENT, -EIO, -ENOSPC, ...). Results come back
 * through out-parameters. File handles are plain ints owned by the caller,
 * released with vfs->close. Nothing here allocates on behalf of the caller
 * unless it says so.
 *
 * This header is not: a portability layer for Windows, a buffered-I/O
 * library, or a place for policy (retries, logging). Callers decide those.
 */
#ifndef EMBEDDB_PLAT_H
#define EMBEDDB_PLAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Open flags (a small portable subset of O_*). */
enum {
    PLAT_O_RDONLY = 0x0,
    PLAT_O_RDWR = 0x1,
    PLAT_O_CREAT = 0x2,
    PLAT_O_EXCL = 0x4,
    PLAT_O_TRUNC = 0x8,
};

typedef struct plat_stat {
    uint64_t size;  /* bytes */
    int is_dir;     /* 1 when a directory */
    int is_reg;     /* 1 when a regular file */
    uint64_t ino;   /* inode number, for identity checks */
} plat_stat;

/* Called once per directory entry ("." and ".." are skipped). Return 0 to go
 * on, anything else stops the listing and is returned by listdir. `name` is
 * borrowed for the duration of the call. */
typedef int (*plat_dirent_fn)(void *ctx, const char *name);

typedef struct plat_vfs plat_vfs;

/*
 * The system-call table. `self` is the table itself so an implementation can
 * keep state next to it (see plat_fault.c). Every entry returns 0 or -errno.
 */
struct plat_vfs {
    /* open(2) with PLAT_O_* flags; mode 0644 when creating. */
    int (*open)(plat_vfs *self, const char *path, int flags, int *fd_out);
    int (*close)(plat_vfs *self, int fd);
    /* Reads up to len bytes at off; *got < len only at end of file. */
    int (*pread)(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off,
                 size_t *got);
    /* Writes all iovecs at off (loops over short writes). On error some
     * prefix may have been written; the caller truncates it away. */
    int (*pwritev)(plat_vfs *self, int fd, const struct iovec *iov, int iovcnt,
                   uint64_t off);
    int (*fdatasync)(plat_vfs *self, int fd);
    int (*fsync)(plat_vfs *self, int fd);
    int (*ftruncate)(plat_vfs *self, int fd, uint64_t len);
    int (*fstat)(plat_vfs *self, int fd, plat_stat *st);
    int (*stat)(plat_vfs *self, const char *path, plat_stat *st);
    int (*rename)(plat_vfs *self, const char *from, const char *to);
    /* link(2): a second name for the file `from` (same file system; the
     * data is shared, not copied). Durable once `to`'s directory is synced. */
    int (*link)(plat_vfs *self, const char *from, const char *to);
    int (*unlink)(plat_vfs *self, const char *path);
    int (*mkdir)(plat_vfs *self, const char *path);
    /* Removes an empty directory. */
    int (*rmdir)(plat_vfs *self, const char *path);
    /* Makes the directory's entries (creates, renames, unlinks) durable. */
    int (*dirsync)(plat_vfs *self, const char *dir);
    int (*listdir)(plat_vfs *self, const char *dir, plat_dirent_fn fn, void *ctx);
    /* Takes an exclusive, non-blocking advisory lock on path (created if
     * missing). -EBUSY when it is held elsewhere: by another process, or by
     * another lock() of the same path in this one (flock locks belong to
     * the open file description). Release with close. */
    int (*lock)(plat_vfs *self, const char *path, int *fd_out);
    /* Space on the file system holding path: bytes an unprivileged writer
     * may still use (statvfs f_bavail) and its total size. */
    int (*statfs)(plat_vfs *self, const char *path, uint64_t *avail, uint64_t *total);
    /* Optional (NULL: this vfs has none; readers then use pread). Maps the
     * first len bytes of fd read-only and shared into *addr; the mapping
     * outlives fd. Only for files nobody truncates or rewrites while
     * mapped: a page that cannot be read (a media error, a file cut short
     * by someone else) raises SIGBUS on access instead of returning -EIO. */
    int (*map)(plat_vfs *self, int fd, uint64_t len, const void **addr);
    void (*unmap)(plat_vfs *self, const void *addr, uint64_t len);
};

/* The real POSIX implementation. Static storage; never freed. */
plat_vfs *plat_vfs_default(void);

/* Wall-clock time in nanoseconds since the Unix epoch. */
int64_t plat_now_ns(void);
/* Monotonic time in nanoseconds, for durations; and in milliseconds. */
uint64_t plat_mono_ns(void);
uint64_t plat_mono_ms(void);
/* A condition variable whose timed waits run on the monotonic clock (a
 * wall clock set back must not stretch a wait), and the deadline ms from
 * now to hand its pthread_cond_timedwait. 0 or an errno value. */
int plat_cond_init_mono(pthread_cond_t *cv);
struct timespec plat_mono_after_ms(uint64_t ms);

/* Convenience wrappers over a vfs for whole-buffer I/O. */
int plat_write_all(plat_vfs *vfs, int fd, const void *buf, size_t len, uint64_t off);
/* Reads exactly len bytes at off; -ENODATA when the file ends first. */
int plat_read_exact(plat_vfs *vfs, int fd, void *buf, size_t len, uint64_t off);

/* Joins dir and name into out (size out_len); -ENAMETOOLONG if it does not fit. */
int plat_path_join(char *out, size_t out_len, const char *dir, const char *name);

/* ---- whole files and directories (plat_file.c), over any vfs ---------- */

/* Replaces dir/name with buf atomically: writes dir/name.tmp, fdatasyncs
 * it when sync is set (durably replaced; without it a reader still never
 * sees half a file, but a power cut may leave an empty one) and renames it
 * over dir/name. The caller syncs dir (several replacements may share one
 * dirsync); until then a crash may leave the old file, or the .tmp beside
 * it. 0 or -errno. */
int plat_file_replace(plat_vfs *vfs, const char *dir, const char *name, const void *buf,
                      size_t len, int sync);
/* Reads the whole file at path, at most limit bytes (-EFBIG when larger),
 * into a NUL-terminated malloc'ed buffer *out (caller frees); *len its size. */
int plat_file_read(plat_vfs *vfs, const char *path, size_t limit, char **out, size_t *len);
/* The names in dir that start with prefix ("" or NULL: all), sorted
 * bytewise: *out is one malloc'ed block of *n pointers (and a NULL) with
 * the strings after them; free(*out) releases it all. */
int plat_dir_list(plat_vfs *vfs, const char *dir, const char *prefix, char ***out, size_t *n);
/* Bytes of the regular files directly in dir (0 when it cannot be listed). */
uint64_t plat_dir_bytes(plat_vfs *vfs, const char *dir);
/* Removes a flat directory: the files in it, then itself (a subdirectory
 * makes it fail). A missing dir is not an error. 0 or -errno. */
int plat_dir_remove(plat_vfs *vfs, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
