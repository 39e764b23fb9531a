/*
 * test_plat.c -- the platform layer on real files: the POSIX vfs contract
 * (whole writes, short reads, locks, errors as -errno) and the fault vfs's
 * power-cut model (unsynced bytes and directory entries are lost, synced
 * ones survive, renames over a durable name are undone) and injected errors.
 */
#define _GNU_SOURCE 1
#include "embeddb/plat.h"
#include "embeddb/plat_fault.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct fx {
    char base[256];
    char dir[300];
    char shadow[300];
    plat_vfs *fv;
} fx;

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb;
    (void)f;
    (void)w;
    return remove(p);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    snprintf(f->base, sizeof(f->base), "/tmp/embeddb-plat-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->dir, sizeof(f->dir), "%s/d", f->base);
    snprintf(f->shadow, sizeof(f->shadow), "%s/shadow", f->base);
    assert_int_equal(mkdir(f->dir, 0755), 0);
    f->fv = plat_fault_new(plat_vfs_default(), f->shadow, 42);
    assert_non_null(f->fv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    plat_fault_free(f->fv);
    nftw(f->base, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static const char *P(fx *f, const char *name)
{
    static char buf[2][512];
    static int k;
    char *p = buf[k++ & 1];
    snprintf(p, 512, "%s/%s", f->dir, name);
    return p;
}

static long fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

/* Creates name with len bytes of c through vfs; syncs the data if asked. */
static void put(plat_vfs *v, const char *path, size_t len, char c, int sync)
{
    char buf[4096];
    int fd = -1;
    memset(buf, c, sizeof(buf));
    assert_int_equal(v->open(v, path, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd), 0);
    assert_int_equal(plat_write_all(v, fd, buf, len, 0), 0);
    if (sync)
        assert_int_equal(v->fdatasync(v, fd), 0);
    v->close(v, fd);
}

static void test_posix_writev_and_read_exact(void **state)
{
    fx *f = *state;
    plat_vfs *v = plat_vfs_default();
    int fd = -1;
    char a[3] = "abc", b[5] = "defgh", out[16];
    struct iovec iov[3] = {{a, 3}, {NULL, 0}, {b, 5}};
    assert_int_equal(v->open(v, P(f, "x"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    assert_int_equal(v->pwritev(v, fd, iov, 3, 2), 0);
    assert_int_equal(plat_read_exact(v, fd, out, 8, 2), 0);
    assert_memory_equal(out, "abcdefgh", 8);
    assert_int_equal(plat_read_exact(v, fd, out, 9, 2), -ENODATA);
    plat_stat st;
    assert_int_equal(v->fstat(v, fd, &st), 0);
    assert_int_equal(st.size, 10);
    assert_int_equal(st.is_reg, 1);
    assert_int_equal(v->ftruncate(v, fd, 4), 0);
    assert_int_equal(v->fdatasync(v, fd), 0);
    assert_int_equal(v->close(v, fd), 0);
    assert_int_equal(fsize(P(f, "x")), 4);
    assert_int_equal(v->open(v, P(f, "missing"), PLAT_O_RDONLY, &fd), -ENOENT);
    assert_int_equal(v->open(v, P(f, "x"), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_EXCL, &fd), -EEXIST);
    assert_int_equal(v->dirsync(v, f->dir), 0);
    assert_int_equal(v->stat(v, f->dir, &st), 0);
    assert_int_equal(st.is_dir, 1);
}

static int count_names(void *ctx, const char *name)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

static void test_posix_listdir_rename_unlink(void **state)
{
    fx *f = *state;
    plat_vfs *v = plat_vfs_default();
    int n = 0;
    put(v, P(f, "a"), 1, 'a', 0);
    put(v, P(f, "b"), 1, 'b', 0);
    assert_int_equal(v->rename(v, P(f, "a"), P(f, "c")), 0);
    assert_int_equal(v->listdir(v, f->dir, count_names, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v->unlink(v, P(f, "c")), 0);
    assert_int_equal(v->unlink(v, P(f, "c")), -ENOENT);
    assert_int_equal(v->mkdir(v, P(f, "sub")), 0);
    assert_int_equal(v->mkdir(v, P(f, "sub")), -EEXIST);
}

static void test_lock_second_holder_gets_ebusy(void **state)
{
    fx *f = *state;
    plat_vfs *v = plat_vfs_default();
    int fd = -1, fd2 = -1;
    assert_int_equal(v->lock(v, P(f, "LOCK"), &fd), 0);
    /* flock locks belong to the open file description: a second open in
     * this process conflicts, as another process would. */
    assert_int_equal(v->lock(v, P(f, "LOCK"), &fd2), -EBUSY);
    pid_t pid = fork();
    if (pid == 0) {
        int c = -1;
        _exit(v->lock(v, P(f, "LOCK"), &c) == -EBUSY ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    v->close(v, fd);
    assert_int_equal(v->lock(v, P(f, "LOCK"), &fd2), 0);
    v->close(v, fd2);
}

static void test_clocks_move_forward(void **state)
{
    (void)state;
    uint64_t a = plat_mono_ns();
    int64_t w = plat_now_ns();
    assert_true(w > 1600000000ll * 1000000000ll);
    assert_true(plat_mono_ns() >= a);
    char out[8];
    assert_int_equal(plat_path_join(out, sizeof(out), "abcd", "def"), -ENAMETOOLONG);
    assert_int_equal(plat_path_join(out, sizeof(out), "ab", "cd"), 0);
    assert_string_equal(out, "ab/cd");
}

static void test_crash_drops_unsynced_tail_keeps_synced(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    int fd = -1;
    char buf[100];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(v->open(v, P(f, "log"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    assert_int_equal(v->dirsync(v, f->dir), 0);
    assert_int_equal(plat_write_all(v, fd, buf, 100, 0), 0);
    assert_int_equal(v->fdatasync(v, fd), 0);
    assert_int_equal(plat_write_all(v, fd, buf, 50, 100), 0);
    assert_int_equal(fsize(P(f, "log")), 150);
    assert_int_equal(plat_fault_crash(v, 0), 0);
    assert_int_equal(fsize(P(f, "log")), 100);
    /* Handles opened before the cut are dead. */
    assert_int_equal(v->pread(v, fd, buf, 1, 0, &(size_t){0}), -EIO);
    v->close(v, fd);
}

static void test_crash_removes_file_created_since_dirsync(void **state)
{
    fx *f = *state;
    put(f->fv, P(f, "old"), 10, 'o', 1);
    assert_int_equal(f->fv->dirsync(f->fv, f->dir), 0);
    put(f->fv, P(f, "new"), 10, 'n', 1); /* data synced, name not */
    assert_int_equal(plat_fault_crash(f->fv, 0), 0);
    assert_int_equal(fsize(P(f, "old")), 10);
    assert_int_equal(fsize(P(f, "new")), -1);
}

static void test_crash_restores_name_renamed_over_before_dirsync(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    char got[8] = {0};
    put(v, P(f, "MANIFEST"), 4, '1', 1);
    assert_int_equal(v->dirsync(v, f->dir), 0);
    put(v, P(f, "MANIFEST.tmp"), 4, '2', 1);
    assert_int_equal(v->rename(v, P(f, "MANIFEST.tmp"), P(f, "MANIFEST")), 0);
    assert_int_equal(plat_fault_crash(v, 0), 0);
    FILE *fp = fopen(P(f, "MANIFEST"), "r");
    assert_non_null(fp);
    assert_int_equal(fread(got, 1, 4, fp), 4);
    fclose(fp);
    assert_string_equal(got, "1111");
    assert_int_equal(fsize(P(f, "MANIFEST.tmp")), -1);
}

static void test_rename_made_durable_by_dirsync_survives(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    put(v, P(f, "a"), 7, 'a', 1);
    assert_int_equal(v->dirsync(v, f->dir), 0);
    assert_int_equal(v->rename(v, P(f, "a"), P(f, "b")), 0);
    assert_int_equal(v->dirsync(v, f->dir), 0);
    assert_int_equal(plat_fault_crash(v, 0), 0);
    assert_int_equal(fsize(P(f, "a")), -1);
    assert_int_equal(fsize(P(f, "b")), 7);
}

static void test_torn_crash_keeps_a_prefix_of_unsynced_bytes(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    int seen_partial = 0;
    for (int i = 0; i < 20 && !seen_partial; i++) {
        int fd = -1;
        char buf[1000];
        memset(buf, 'y', sizeof(buf));
        assert_int_equal(v->open(v, P(f, "t"), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd), 0);
        assert_int_equal(plat_write_all(v, fd, buf, 100, 0), 0);
        assert_int_equal(v->fdatasync(v, fd), 0);
        assert_int_equal(v->dirsync(v, f->dir), 0);
        assert_int_equal(plat_write_all(v, fd, buf, 1000, 100), 0);
        assert_int_equal(plat_fault_crash(v, 1), 0);
        long sz = fsize(P(f, "t"));
        assert_true(sz >= 100 && sz <= 1100);
        seen_partial = sz > 100 && sz < 1100;
        v->close(v, fd);
        plat_fault_revive(v);
    }
    assert_true(seen_partial);
}

static void test_fail_nth_returns_the_error_and_does_nothing(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    int fd = -1;
    assert_int_equal(v->open(v, P(f, "e"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    plat_fault_fail_nth(v, PLAT_FAULT_PWRITEV, 2, -ENOSPC);
    assert_int_equal(plat_write_all(v, fd, "a", 1, 0), 0);
    assert_int_equal(plat_write_all(v, fd, "b", 1, 1), -ENOSPC);
    assert_int_equal(fsize(P(f, "e")), 1);
    assert_int_equal(plat_write_all(v, fd, "c", 1, 1), 0);
    plat_fault_fail_nth(v, PLAT_FAULT_FDATASYNC, 1, -EIO);
    assert_int_equal(v->fdatasync(v, fd), -EIO);
    assert_int_equal(v->fdatasync(v, fd), 0);
    v->close(v, fd);
}

static void test_crash_at_fails_that_call_and_every_later_one(void **state)
{
    fx *f = *state;
    plat_vfs *v = f->fv;
    int fd = -1;
    assert_int_equal(v->open(v, P(f, "c"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    unsigned long m0 = plat_fault_mutations(v);
    plat_fault_crash_at(v, 2, 0);
    assert_int_equal(plat_write_all(v, fd, "a", 1, 0), 0);
    assert_int_equal(plat_fault_crashed(v), 0);
    assert_int_equal(v->fdatasync(v, fd), -EIO);
    assert_int_equal(plat_fault_crashed(v), 1);
    assert_int_equal(plat_write_all(v, fd, "a", 1, 0), -EIO);
    assert_int_equal(v->rename(v, P(f, "c"), P(f, "d")), -EIO);
    assert_true(plat_fault_mutations(v) - m0 >= 2);
    /* The created name was never made durable: gone after the cut. */
    assert_int_equal(fsize(P(f, "c")), -1);
    v->close(v, fd);
    plat_fault_revive(v);
    assert_int_equal(v->open(v, P(f, "c2"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    v->close(v, fd);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_posix_writev_and_read_exact),
        T(test_posix_listdir_rename_unlink),
        T(test_lock_second_holder_gets_ebusy),
        T(test_clocks_move_forward),
        T(test_crash_drops_unsynced_tail_keeps_synced),
        T(test_crash_removes_file_created_since_dirsync),
        T(test_crash_restores_name_renamed_over_before_dirsync),
        T(test_rename_made_durable_by_dirsync_survives),
        T(test_torn_crash_keeps_a_prefix_of_unsynced_bytes),
        T(test_fail_nth_returns_the_error_and_does_nothing),
        T(test_crash_at_fails_that_call_and_every_later_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
