/*
 * test_plat_posix.c -- the POSIX vfs (platform/src/plat_posix.c) on real
 * files in a mkdtemp directory under /tmp: whole writes across iovecs, short
 * reads at end of file, open flags, locks, listing, errors as -errno, the
 * clock and path helpers, and the whole-file helpers of plat_file.c. The fault vfs has its own test file.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "embeddb/plat.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct fx {
    char dir[64];
    plat_vfs *v;
} fx;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *w)
{
    (void)sb;
    (void)flag;
    (void)w;
    return remove(p);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/embeddb-plat-posix-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->v = plat_vfs_default();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Scratch paths for p(), apart from the fixture (two live at a time, enough
 * for rename(a, b)). */
static char path_buf[2][160];
static unsigned path_k;

/* dir/name */
static const char *p(fx *f, const char *name)
{
    char *out = path_buf[path_k++ & 1];
    snprintf(out, sizeof(path_buf[0]), "%s/%s", f->dir, name);
    return out;
}

static long fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

static int open_new(fx *f, const char *name)
{
    int fd = -1;
    assert_int_equal(f->v->open(f->v, p(f, name), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd), 0);
    assert_true(fd >= 0);
    return fd;
}

static void test_pwritev_writes_every_iovec_at_offset(void **state)
{
    fx *f = *state;
    char a[] = "abc", b[] = "defgh", out[16];
    struct iovec iov[3] = {{a, 3}, {NULL, 0}, {b, 5}};
    int fd = open_new(f, "x");
    assert_int_equal(f->v->pwritev(f->v, fd, iov, 3, 2), 0);
    assert_int_equal(fsize(p(f, "x")), 10);
    assert_int_equal(plat_read_exact(f->v, fd, out, 8, 2), 0);
    assert_memory_equal(out, "abcdefgh", 8);
    /* The gap before the offset reads as zeros. */
    assert_int_equal(plat_read_exact(f->v, fd, out, 2, 0), 0);
    assert_memory_equal(out, "\0\0", 2);
    assert_int_equal(f->v->close(f->v, fd), 0);
}

/* More iovecs than one pwritev may take: the loop must go on in chunks. */
static void test_pwritev_beyond_iov_max_writes_all(void **state)
{
    fx *f = *state;
    enum { N = 3000 };
    struct iovec *iov = calloc(N, sizeof(*iov));
    unsigned char *bytes = malloc(N), *back = malloc(N);
    assert_non_null(iov);
    assert_non_null(bytes);
    assert_non_null(back);
    for (int i = 0; i < N; i++) {
        bytes[i] = (unsigned char)(i * 7 + 1);
        iov[i].iov_base = &bytes[i];
        iov[i].iov_len = 1;
    }
    int fd = open_new(f, "many");
    assert_int_equal(f->v->pwritev(f->v, fd, iov, N, 0), 0);
    assert_int_equal(plat_read_exact(f->v, fd, back, N, 0), 0);
    assert_memory_equal(back, bytes, N);
    f->v->close(f->v, fd);
    free(iov);
    free(bytes);
    free(back);
}

/* RLIMIT_FSIZE makes the kernel write short and then refuse: the error
 * comes back as -EFBIG, with the prefix that fit on disk. */
static void test_pwritev_error_after_short_write_is_reported(void **state)
{
    fx *f = *state;
    struct rlimit old, lim;
    char a[700], b[700];
    struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    int fd = open_new(f, "big");
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = f->v->pwritev(f->v, fd, iov, 2, 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_sig);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(fsize(p(f, "big")), 1000);
    f->v->close(f->v, fd);
}

static void test_pread_stops_at_end_of_file(void **state)
{
    fx *f = *state;
    char out[32];
    size_t got = 99;
    int fd = open_new(f, "r");
    assert_int_equal(plat_write_all(f->v, fd, "0123456789", 10, 0), 0);
    assert_int_equal(f->v->pread(f->v, fd, out, sizeof(out), 4, &got), 0);
    assert_int_equal(got, 6);
    assert_memory_equal(out, "456789", 6);
    assert_int_equal(f->v->pread(f->v, fd, out, sizeof(out), 50, &got), 0);
    assert_int_equal(got, 0);
    f->v->close(f->v, fd);
}

static void test_read_exact_short_file_is_enodata(void **state)
{
    fx *f = *state;
    char out[16];
    int fd = open_new(f, "short");
    assert_int_equal(plat_write_all(f->v, fd, "abcde", 5, 0), 0);
    assert_int_equal(plat_read_exact(f->v, fd, out, 5, 0), 0);
    assert_int_equal(plat_read_exact(f->v, fd, out, 6, 0), -ENODATA);
    assert_int_equal(plat_read_exact(f->v, fd, out, 1, 5), -ENODATA);
    assert_int_equal(plat_read_exact(f->v, fd, out, 0, 5), 0);
    f->v->close(f->v, fd);
}

static void test_open_flags_map_to_posix(void **state)
{
    fx *f = *state;
    int fd = -1, ro = -1;
    assert_int_equal(f->v->open(f->v, p(f, "missing"), PLAT_O_RDONLY, &fd), -ENOENT);
    fd = open_new(f, "o");
    assert_int_equal(plat_write_all(f->v, fd, "hello", 5, 0), 0);
    f->v->close(f->v, fd);
    assert_int_equal(f->v->open(f->v, p(f, "o"), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_EXCL, &fd),
                     -EEXIST);
    /* Read-only really is read-only. */
    assert_int_equal(f->v->open(f->v, p(f, "o"), PLAT_O_RDONLY, &ro), 0);
    assert_int_equal(plat_write_all(f->v, ro, "x", 1, 0), -EBADF);
    f->v->close(f->v, ro);
    assert_int_equal(f->v->open(f->v, p(f, "o"), PLAT_O_RDWR | PLAT_O_TRUNC, &fd), 0);
    assert_int_equal(fsize(p(f, "o")), 0);
    f->v->close(f->v, fd);
}

static void test_open_is_cloexec_and_creates_0644(void **state)
{
    fx *f = *state;
    struct stat st;
    mode_t old = umask(022);
    int fd = open_new(f, "m");
    umask(old);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    f->v->close(f->v, fd);
}

static void test_ftruncate_fstat_and_stat_agree(void **state)
{
    fx *f = *state;
    plat_stat a, b, d;
    int fd = open_new(f, "t");
    assert_int_equal(plat_write_all(f->v, fd, "0123456789", 10, 0), 0);
    assert_int_equal(f->v->ftruncate(f->v, fd, 4), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(f->v->fsync(f->v, fd), 0);
    assert_int_equal(f->v->fstat(f->v, fd, &a), 0);
    assert_int_equal(f->v->stat(f->v, p(f, "t"), &b), 0);
    assert_int_equal(a.size, 4);
    assert_int_equal(b.size, 4);
    assert_int_equal(a.is_reg, 1);
    assert_int_equal(a.is_dir, 0);
    assert_true(a.ino == b.ino);
    assert_int_equal(f->v->stat(f->v, f->dir, &d), 0);
    assert_int_equal(d.is_dir, 1);
    assert_int_equal(d.is_reg, 0);
    assert_int_equal(f->v->stat(f->v, p(f, "nope"), &d), -ENOENT);
    f->v->close(f->v, fd);
}

static void test_errors_on_a_closed_descriptor_are_ebadf(void **state)
{
    fx *f = *state;
    plat_stat st;
    char c;
    size_t got;
    int fd = open_new(f, "c");
    assert_int_equal(f->v->close(f->v, fd), 0);
    assert_int_equal(f->v->fstat(f->v, fd, &st), -EBADF);
    assert_int_equal(f->v->pread(f->v, fd, &c, 1, 0, &got), -EBADF);
    assert_int_equal(f->v->fdatasync(f->v, fd), -EBADF);
    assert_int_equal(f->v->ftruncate(f->v, fd, 0), -EBADF);
    assert_int_equal(f->v->close(f->v, fd), -EBADF);
}

static void test_rename_replaces_target_and_unlink_removes(void **state)
{
    fx *f = *state;
    int fd = open_new(f, "a");
    assert_int_equal(plat_write_all(f->v, fd, "AAA", 3, 0), 0);
    f->v->close(f->v, fd);
    fd = open_new(f, "b");
    f->v->close(f->v, fd);
    assert_int_equal(f->v->rename(f->v, p(f, "a"), p(f, "b")), 0);
    assert_int_equal(fsize(p(f, "a")), -1);
    assert_int_equal(fsize(p(f, "b")), 3);
    assert_int_equal(f->v->rename(f->v, p(f, "a"), p(f, "b")), -ENOENT);
    assert_int_equal(f->v->unlink(f->v, p(f, "b")), 0);
    assert_int_equal(f->v->unlink(f->v, p(f, "b")), -ENOENT);
}

static void test_link_shares_data_and_refuses_existing_name(void **state)
{
    fx *f = *state;
    struct stat a, b;
    int fd = open_new(f, "a");
    assert_int_equal(plat_write_all(f->v, fd, "AAA", 3, 0), 0);
    f->v->close(f->v, fd);
    assert_int_equal(f->v->link(f->v, p(f, "a"), p(f, "b")), 0);
    assert_int_equal(stat(p(f, "a"), &a), 0);
    assert_int_equal(stat(p(f, "b"), &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_nlink == 2);
    assert_int_equal(f->v->link(f->v, p(f, "a"), p(f, "b")), -EEXIST);
    assert_int_equal(f->v->unlink(f->v, p(f, "a")), 0);
    assert_int_equal(fsize(p(f, "b")), 3);
    assert_int_equal(f->v->link(f->v, p(f, "a"), p(f, "c")), -ENOENT);
}

static void test_rmdir_needs_an_empty_directory(void **state)
{
    fx *f = *state;
    char inner[256];
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    snprintf(inner, sizeof(inner), "%s/x", p(f, "sub"));
    int fd = -1;
    assert_int_equal(f->v->open(f->v, inner, PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    f->v->close(f->v, fd);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), -ENOTEMPTY);
    assert_int_equal(f->v->unlink(f->v, inner), 0);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), 0);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), -ENOENT);
}

static void test_statfs_gives_free_and_total_bytes(void **state)
{
    fx *f = *state;
    uint64_t avail = 0, total = 0;
    assert_int_equal(f->v->statfs(f->v, p(f, ""), &avail, &total), 0);
    assert_true(total > 0 && avail <= total);
    assert_int_equal(f->v->statfs(f->v, p(f, "missing/dir"), &avail, &total), -ENOENT);
}

static void test_mkdir_makes_0755_and_dirsync_needs_a_dir(void **state)
{
    fx *f = *state;
    struct stat st;
    mode_t old = umask(022);
    int rc = f->v->mkdir(f->v, p(f, "sub"));
    umask(old);
    assert_int_equal(rc, 0);
    assert_int_equal(stat(p(f, "sub"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0755);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), -EEXIST);
    assert_int_equal(f->v->dirsync(f->v, p(f, "sub")), 0);
    assert_int_equal(f->v->dirsync(f->v, p(f, "gone")), -ENOENT);
    int fd = open_new(f, "file");
    f->v->close(f->v, fd);
    assert_int_equal(f->v->dirsync(f->v, p(f, "file")), -ENOTDIR);
}

typedef struct names {
    int n;
    int stop_at; /* return 7 on this call (1-based), 0: never */
    int saw_dot;
    int saw_x, saw_y, saw_sub;
} names;

static int on_name(void *ctx, const char *name)
{
    names *nm = ctx;
    nm->n++;
    nm->saw_dot |= name[0] == '.';
    nm->saw_x |= !strcmp(name, "x");
    nm->saw_y |= !strcmp(name, "y");
    nm->saw_sub |= !strcmp(name, "sub");
    return nm->n == nm->stop_at ? 7 : 0;
}

static void test_listdir_skips_dots_and_stops_on_callback_value(void **state)
{
    fx *f = *state;
    names nm = {0};
    f->v->close(f->v, open_new(f, "x"));
    f->v->close(f->v, open_new(f, "y"));
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    assert_int_equal(f->v->listdir(f->v, f->dir, on_name, &nm), 0);
    assert_int_equal(nm.n, 3);
    assert_int_equal(nm.saw_dot, 0);
    assert_true(nm.saw_x && nm.saw_y && nm.saw_sub);
    memset(&nm, 0, sizeof(nm));
    nm.stop_at = 2;
    assert_int_equal(f->v->listdir(f->v, f->dir, on_name, &nm), 7);
    assert_int_equal(nm.n, 2);
    assert_int_equal(f->v->listdir(f->v, p(f, "none"), on_name, &nm), -ENOENT);
}

static void test_lock_second_holder_gets_ebusy(void **state)
{
    fx *f = *state;
    int fd = -1, fd2 = -1, status = 0;
    pid_t pid;
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &fd), 0);
    assert_int_equal(fsize(p(f, "LOCK")), 0); /* created on demand */
    /* flock locks belong to the open file description: a second open in
     * this process conflicts, just as another process does. */
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &fd2), -EBUSY);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int c = -1;
        _exit(f->v->lock(f->v, p(f, "LOCK"), &c) == -EBUSY ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Closing releases it. */
    assert_int_equal(f->v->close(f->v, fd), 0);
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &fd2), 0);
    f->v->close(f->v, fd2);
}

static void test_clocks_tell_wall_time_and_never_go_back(void **state)
{
    (void)state;
    int64_t wall = plat_now_ns();
    int64_t t = (int64_t)time(NULL);
    assert_true(wall / 1000000000 >= t - 1 && wall / 1000000000 <= t + 1);
    uint64_t a = plat_mono_ns();
    struct timespec ms = {0, 2000000};
    nanosleep(&ms, NULL);
    uint64_t b = plat_mono_ns();
    assert_true(b - a >= 2000000);
}

static void test_path_join_fits_or_is_enametoolong(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(plat_path_join(out, sizeof(out), "ab", "cd"), 0);
    assert_string_equal(out, "ab/cd");
    assert_int_equal(plat_path_join(out, sizeof(out), "abc", "def"), 0); /* 7 + NUL */
    assert_string_equal(out, "abc/def");
    assert_int_equal(plat_path_join(out, sizeof(out), "abcd", "def"), -ENAMETOOLONG);
    assert_int_equal(plat_path_join(out, sizeof(out), "/", "x"), 0);
    assert_string_equal(out, "/x");
    assert_int_equal(plat_path_join(out, sizeof(out), "a/", "x"), 0);
    assert_string_equal(out, "a/x");
    assert_int_equal(plat_path_join(out, 0, "a", "b"), -ENAMETOOLONG);
}

/* plat_file.c over this vfs: an empty directory lists as nothing (the
 * empty case once passed NULL to qsort: UBSan stopped the upload thread),
 * a prefix filters, names come back sorted bytewise in one block. */
static void test_dir_list_empty_prefix_and_order(void **state)
{
    fx *f = *state;
    char **v = (char **)1;
    size_t n = 9;
    assert_int_equal(plat_dir_list(f->v, f->dir, NULL, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_non_null(v);
    assert_null(v[0]);
    free(v);
    const char *made[] = {"b.sst", "a.sst", "B", "a", "c.tmp"};
    for (size_t i = 0; i < 5; i++)
        f->v->close(f->v, open_new(f, made[i]));
    assert_int_equal(plat_dir_list(f->v, f->dir, "", &v, &n), 0);
    assert_int_equal(n, 5);
    const char *sorted[] = {"B", "a", "a.sst", "b.sst", "c.tmp"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(v[i], sorted[i]);
    assert_null(v[5]);
    free(v);
    assert_int_equal(plat_dir_list(f->v, f->dir, "a", &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "a.sst");
    free(v);
    assert_int_equal(plat_dir_list(f->v, f->dir, "zz", &v, &n), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_int_equal(plat_dir_list(f->v, p(f, "none"), NULL, &v, &n), -ENOENT);
    assert_null(v);
    assert_int_equal(n, 0);
}

static void test_file_replace_read_and_flat_dir_helpers(void **state)
{
    fx *f = *state;
    char *buf;
    size_t len;
    assert_int_equal(plat_file_replace(f->v, f->dir, "s", "old", 3, 1), 0);
    assert_int_equal(plat_file_replace(f->v, f->dir, "s", "newer", 5, 0), 0);
    assert_int_equal(plat_file_read(f->v, p(f, "s"), 5, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "newer");
    free(buf);
    assert_int_equal(plat_file_read(f->v, p(f, "s"), 4, &buf, &len), -EFBIG);
    assert_int_equal(plat_file_read(f->v, p(f, "none"), 4, &buf, &len), -ENOENT);
    assert_int_equal(access(p(f, "s.tmp"), F_OK), -1);
    assert_int_equal(plat_dir_bytes(f->v, f->dir), 5);
    assert_int_equal(plat_dir_bytes(f->v, p(f, "none")), 0);
    assert_int_equal(f->v->mkdir(f->v, p(f, "d")), 0);
    assert_int_equal(plat_file_replace(f->v, p(f, "d"), "x", "1234", 4, 1), 0);
    assert_int_equal(plat_dir_bytes(f->v, f->dir), 5); /* not recursive */
    assert_int_equal(plat_dir_remove(f->v, p(f, "d")), 0);
    assert_int_equal(access(p(f, "d"), F_OK), -1);
    assert_int_equal(plat_dir_remove(f->v, p(f, "d")), 0); /* missing: fine */
    assert_int_equal(f->v->mkdir(f->v, p(f, "e")), 0);
    assert_int_equal(f->v->mkdir(f->v, p(f, "e/sub")), 0);
    assert_true(plat_dir_remove(f->v, p(f, "e")) < 0); /* not flat */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pwritev_writes_every_iovec_at_offset),
        T(test_pwritev_beyond_iov_max_writes_all),
        T(test_pwritev_error_after_short_write_is_reported),
        T(test_pread_stops_at_end_of_file),
        T(test_read_exact_short_file_is_enodata),
        T(test_open_flags_map_to_posix),
        T(test_open_is_cloexec_and_creates_0644),
        T(test_ftruncate_fstat_and_stat_agree),
        T(test_errors_on_a_closed_descriptor_are_ebadf),
        T(test_rename_replaces_target_and_unlink_removes),
        T(test_link_shares_data_and_refuses_existing_name),
        T(test_rmdir_needs_an_empty_directory),
        T(test_statfs_gives_free_and_total_bytes),
        T(test_mkdir_makes_0755_and_dirsync_needs_a_dir),
        T(test_listdir_skips_dots_and_stops_on_callback_value),
        T(test_lock_second_holder_gets_ebusy),
        T(test_clocks_tell_wall_time_and_never_go_back),
        T(test_path_join_fits_or_is_enametoolong),
        T(test_dir_list_empty_prefix_and_order),
        T(test_file_replace_read_and_flat_dir_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
