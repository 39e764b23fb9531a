/*
 * test_plat_fault.c -- the fault-injecting vfs (platform/src/plat_fault.c)
 * on real files in a mkdtemp directory under /tmp: its power-cut model
 * (unsynced bytes and undirsynced names are lost, synced ones survive,
 * renames and unlinks of durable names are undone, torn tails are prefixes;
 * directories made, renamed or removed since their parent's dirsync are
 * undone too, and what a directory holds follows it through renames),
 * dead handles, injected errors, the automatic crash point, and hundreds of
 * directories, thousands of files and hundreds of open handles at once.
 * Files are inspected with plain POSIX calls, not through the vfs under test.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "embeddb/plat.h"
#include "embeddb/plat_fault.h"

#include <dirent.h>
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
#include <unistd.h>
#include <cmocka.h>

typedef struct fx {
    char base[64];
    char dir[80];    /* the directory under test */
    char shadow[80]; /* on the same file system, outside dir */
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
    snprintf(f->base, sizeof(f->base), "/tmp/embeddb-plat-fault-XXXXXX");
    if (!mkdtemp(f->base)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/d", f->base);
    snprintf(f->shadow, sizeof(f->shadow), "%s/shadow", f->base);
    if (mkdir(f->dir, 0755))
        return -1;
    f->v = plat_fault_new(plat_vfs_default(), f->shadow, 42);
    *state = f;
    return f->v ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    plat_fault_free(f->v);
    nftw(f->base, rm_one, 8, FTW_DEPTH | FTW_PHYS);
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

/* Whole file into buf (NUL-terminated); its length, or -1 if missing. */
static long slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    long n = -1;
    if (fd >= 0) {
        n = (long)read(fd, buf, cap - 1);
        close(fd);
        buf[n < 0 ? 0 : n] = '\0';
    }
    return n;
}

/* Creates (or truncates) name through the vfs with `data`; fdatasyncs it
 * when asked. The handle is closed again. */
static void put(fx *f, const char *name, const char *data, int sync)
{
    int fd = -1;
    assert_int_equal(f->v->open(f->v, p(f, name), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd),
                     0);
    assert_int_equal(plat_write_all(f->v, fd, data, strlen(data), 0), 0);
    if (sync)
        assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(f->v->close(f->v, fd), 0);
}

static void dirsync(fx *f)
{
    assert_int_equal(f->v->dirsync(f->v, f->dir), 0);
}

static int open_rw(fx *f, const char *name)
{
    int fd = -1;
    assert_int_equal(f->v->open(f->v, p(f, name), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    return fd;
}

/* Names in dir, "." and ".." aside; -1 if it cannot be read. */
static int count_entries(const char *dir)
{
    struct dirent *e;
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* mkdir, dirsync and rename through the vfs, on names under the fixture dir. */
static void mkd(fx *f, const char *name)
{
    assert_int_equal(f->v->mkdir(f->v, p(f, name)), 0);
}

static void sync_sub(fx *f, const char *name)
{
    assert_int_equal(f->v->dirsync(f->v, p(f, name)), 0);
}

static void mv(fx *f, const char *from, const char *to)
{
    const char *a = p(f, from), *b = p(f, to);
    assert_int_equal(f->v->rename(f->v, a, b), 0);
}

/* 1 if dir/name is a directory (seen with plain POSIX calls). */
static int is_dir(fx *f, const char *name)
{
    struct stat st;
    return stat(p(f, name), &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the power-cut model ------------------------------------------------ */

static void test_synced_data_survives_crash(void **state)
{
    fx *f = *state;
    char buf[64];
    put(f, "data", "synced bytes", 1);
    dirsync(f);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "data"), buf, sizeof(buf)), 12);
    assert_string_equal(buf, "synced bytes");
}

static void test_crash_drops_unsynced_tail(void **state)
{
    fx *f = *state;
    char buf[64];
    int fd = open_rw(f, "log");
    dirsync(f);
    assert_int_equal(plat_write_all(f->v, fd, "head", 4, 0), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(plat_write_all(f->v, fd, "-tail", 5, 4), 0);
    assert_int_equal(fsize(p(f, "log")), 9);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "log"), buf, sizeof(buf)), 4);
    assert_string_equal(buf, "head");
    f->v->close(f->v, fd);
}

static void test_fsync_counts_as_sync_too(void **state)
{
    fx *f = *state;
    int fd = open_rw(f, "log");
    dirsync(f);
    assert_int_equal(plat_write_all(f->v, fd, "abcdef", 6, 0), 0);
    assert_int_equal(f->v->fsync(f->v, fd), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "log")), 6);
    f->v->close(f->v, fd);
}

static void test_crash_removes_file_created_since_dirsync(void **state)
{
    fx *f = *state;
    put(f, "old", "old", 1);
    dirsync(f);
    put(f, "new", "new", 1); /* data synced, name not */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "old")), 3);
    assert_int_equal(fsize(p(f, "new")), -1);
}

static void test_dirsynced_name_keeps_only_synced_bytes(void **state)
{
    fx *f = *state;
    put(f, "named", "never synced", 0);
    dirsync(f);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "named")), 0);
}

static void test_crash_restores_name_renamed_over_before_dirsync(void **state)
{
    fx *f = *state;
    char buf[64];
    put(f, "MANIFEST", "v1", 1);
    dirsync(f);
    put(f, "MANIFEST.tmp", "v2", 1);
    assert_int_equal(f->v->rename(f->v, p(f, "MANIFEST.tmp"), p(f, "MANIFEST")), 0);
    assert_int_equal(slurp(p(f, "MANIFEST"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "v2");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "MANIFEST"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "v1");
    assert_int_equal(fsize(p(f, "MANIFEST.tmp")), -1);
}

static void test_rename_made_durable_by_dirsync_survives(void **state)
{
    fx *f = *state;
    char buf[64];
    put(f, "MANIFEST", "v1", 1);
    dirsync(f);
    put(f, "MANIFEST.tmp", "v2", 1);
    assert_int_equal(f->v->rename(f->v, p(f, "MANIFEST.tmp"), p(f, "MANIFEST")), 0);
    dirsync(f);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "MANIFEST"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "v2");
    assert_int_equal(fsize(p(f, "MANIFEST.tmp")), -1);
}

static void test_crash_undoes_rename_of_a_durable_name(void **state)
{
    fx *f = *state;
    put(f, "a", "aaaa", 1);
    dirsync(f);
    assert_int_equal(f->v->rename(f->v, p(f, "a"), p(f, "b")), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "a")), 4);
    assert_int_equal(fsize(p(f, "b")), -1);
}

static void test_crash_restores_unlinked_durable_file_at_synced_size(void **state)
{
    fx *f = *state;
    char buf[64];
    int fd = open_rw(f, "seg");
    assert_int_equal(plat_write_all(f->v, fd, "kept", 4, 0), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    dirsync(f);
    assert_int_equal(plat_write_all(f->v, fd, "+lost", 5, 4), 0);
    assert_int_equal(f->v->close(f->v, fd), 0);
    assert_int_equal(f->v->unlink(f->v, p(f, "seg")), 0);
    assert_int_equal(fsize(p(f, "seg")), -1);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "seg"), buf, sizeof(buf)), 4);
    assert_string_equal(buf, "kept");
}

static void test_unlink_made_durable_by_dirsync_stays(void **state)
{
    fx *f = *state;
    put(f, "gone", "x", 1);
    dirsync(f);
    assert_int_equal(f->v->unlink(f->v, p(f, "gone")), 0);
    dirsync(f);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "gone")), -1);
}

/* A file already on disk before the vfs first saw it counts as synced at
 * the size it had when first opened, and its name as durable. */
static void test_preexisting_file_counts_as_synced(void **state)
{
    fx *f = *state;
    char buf[64];
    FILE *fp = fopen(p(f, "pre"), "w");
    assert_non_null(fp);
    fputs("before", fp);
    fclose(fp);
    int fd = -1;
    assert_int_equal(f->v->open(f->v, p(f, "pre"), PLAT_O_RDWR, &fd), 0);
    assert_int_equal(plat_write_all(f->v, fd, "+after", 6, 6), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "pre"), buf, sizeof(buf)), 6);
    assert_string_equal(buf, "before");
    f->v->close(f->v, fd);
}

/* O_TRUNC is modelled as durable at once: the old synced bytes are gone
 * and the new ones are not synced yet. */
static void test_truncating_open_leaves_nothing_synced(void **state)
{
    fx *f = *state;
    put(f, "m", "old synced content", 1);
    dirsync(f);
    put(f, "m", "new", 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "m")), 0);
}

static void test_ftruncate_below_synced_size_is_durable(void **state)
{
    fx *f = *state;
    char buf[64];
    int fd = open_rw(f, "t");
    dirsync(f);
    assert_int_equal(plat_write_all(f->v, fd, "0123456789", 10, 0), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(f->v->ftruncate(f->v, fd, 4), 0);
    assert_int_equal(plat_write_all(f->v, fd, "ABCD", 4, 4), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(slurp(p(f, "t"), buf, sizeof(buf)), 4);
    assert_string_equal(buf, "0123");
    f->v->close(f->v, fd);
}

static void test_torn_crash_keeps_a_prefix_of_unsynced_bytes(void **state)
{
    fx *f = *state;
    enum { SYNCED = 100, TAIL = 1000 };
    char data[SYNCED + TAIL], back[SYNCED + TAIL + 1];
    int partial = 0;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    for (int trial = 0; trial < 20; trial++) {
        int fd = -1;
        assert_int_equal(
            f->v->open(f->v, p(f, "t"), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd), 0);
        assert_int_equal(plat_write_all(f->v, fd, data, SYNCED, 0), 0);
        assert_int_equal(f->v->fdatasync(f->v, fd), 0);
        dirsync(f);
        assert_int_equal(plat_write_all(f->v, fd, data + SYNCED, TAIL, SYNCED), 0);
        assert_int_equal(plat_fault_crash(f->v, 1), 0);
        long n = slurp(p(f, "t"), back, sizeof(back));
        assert_true(n >= SYNCED && n <= SYNCED + TAIL);
        /* Whatever survives is exactly what was written there. */
        assert_memory_equal(back, data, (size_t)n);
        partial += n > SYNCED && n < SYNCED + TAIL;
        f->v->close(f->v, fd);
        plat_fault_revive(f->v);
    }
    /* With 1000 possible cut points, nearly every trial tears mid-tail. */
    assert_true(partial >= 15);
}

static void test_torn_cut_points_follow_the_seed(void **state)
{
    fx *f = *state;
    long sizes[2][5];
    char sh[2][96];
    for (int run = 0; run < 2; run++) {
        snprintf(sh[run], sizeof(sh[run]), "%s/shadow%d", f->base, run);
        plat_vfs *v = plat_fault_new(plat_vfs_default(), sh[run], 1234);
        assert_non_null(v);
        for (int i = 0; i < 5; i++) {
            char big[500];
            int fd = -1;
            memset(big, 'z', sizeof(big));
            assert_int_equal(v->open(v, p(f, "s"), PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd), 0);
            assert_int_equal(v->dirsync(v, f->dir), 0);
            assert_int_equal(plat_write_all(v, fd, big, sizeof(big), 0), 0);
            assert_int_equal(plat_fault_crash(v, 1), 0);
            sizes[run][i] = fsize(p(f, "s"));
            v->close(v, fd);
            plat_fault_revive(v);
        }
        plat_fault_free(v);
    }
    assert_memory_equal(sizes[0], sizes[1], sizeof(sizes[0]));
}

/* Only what the vfs itself made or moved is rolled back: a directory made
 * behind its back (a test's scratch, another fault vfs's shadow inside the
 * tested dir) is left alone, and so is its own shadow. */
static void test_crash_spares_directories_it_never_made(void **state)
{
    fx *f = *state;
    char inner[160], own[160];
    mkd(f, "sub");
    dirsync(f);
    snprintf(inner, sizeof(inner), "%s/.shadow", f->dir);
    plat_vfs *v2 = plat_fault_new(plat_vfs_default(), inner, 1);
    assert_non_null(v2);
    snprintf(own, sizeof(own), "%s/plain", f->dir);
    assert_int_equal(mkdir(own, 0755), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    struct stat st;
    assert_true(is_dir(f, "sub"));
    assert_int_equal(stat(inner, &st), 0);
    assert_true(is_dir(f, "plain"));
    assert_int_equal(stat(f->shadow, &st), 0);
    plat_fault_free(v2);
    /* plat_fault_free removes a shadow dir it created itself. */
    assert_int_equal(stat(inner, &st), -1);
}

/* ---- directories in the power-cut model --------------------------------- */

static void test_crash_removes_directory_made_since_dirsync(void **state)
{
    fx *f = *state;
    dirsync(f);
    mkd(f, "new");
    mkd(f, "new/inner");
    put(f, "new/inner/x", "data", 1);
    sync_sub(f, "new/inner");
    sync_sub(f, "new");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    /* Its own contents were synced, its name in the parent was not. */
    assert_int_equal(fsize(p(f, "new")), -1);
    /* The name is free again, and the vfs goes on modelling it. */
    mkd(f, "new");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "new")), -1);
}

static void test_dirsync_makes_new_directory_durable(void **state)
{
    fx *f = *state;
    mkd(f, "a");
    mkd(f, "b");
    put(f, "a/x", "xxxx", 1);
    sync_sub(f, "a");
    dirsync(f);
    mkd(f, "c"); /* after the dirsync: the contrast */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_true(is_dir(f, "a"));
    assert_true(is_dir(f, "b"));
    assert_int_equal(fsize(p(f, "a/x")), 4);
    assert_int_equal(fsize(p(f, "c")), -1);
}

static void test_crash_undoes_directory_rename_without_dirsync(void **state)
{
    fx *f = *state;
    char buf[16];
    mkd(f, "A");
    put(f, "A/x", "xx", 1);
    put(f, "A/y", "yyy", 1);
    sync_sub(f, "A");
    dirsync(f);
    mv(f, "A", "B");
    assert_true(is_dir(f, "B"));
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "B")), -1);
    assert_int_equal(slurp(p(f, "A/x"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "xx");
    assert_int_equal(slurp(p(f, "A/y"), buf, sizeof(buf)), 3);
    assert_string_equal(buf, "yyy");
    assert_int_equal(count_entries(p(f, "A")), 2);
}

/* What the directory holds is its own business: names it made durable
 * under A stay durable under B, names it never synced are lost. */
static void test_directory_rename_made_durable_by_dirsync_survives(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    put(f, "A/x", "xx", 1);
    sync_sub(f, "A");
    dirsync(f);
    put(f, "A/u", "u", 1); /* data synced, name not */
    mv(f, "A", "B");
    dirsync(f);
    put(f, "B/w", "w", 1); /* name not synced either */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "A")), -1);
    assert_int_equal(fsize(p(f, "B/x")), 2);
    assert_int_equal(fsize(p(f, "B/u")), -1);
    assert_int_equal(fsize(p(f, "B/w")), -1);
    /* And under its new name it goes on as before. */
    put(f, "B/z", "zzz", 1);
    sync_sub(f, "B");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "B/z")), 3);
    assert_int_equal(fsize(p(f, "B/x")), 2);
}

/* Files made and synced inside a renamed directory belong to the directory,
 * not to the path: rolling the rename back takes them along, each one kept
 * or lost by the directory's own dirsync. */
static void test_crash_rolling_back_a_rename_keeps_what_the_directory_synced(void **state)
{
    fx *f = *state;
    char buf[16];
    int fd;
    mkd(f, "A");
    dirsync(f);
    mv(f, "A", "B"); /* never made durable */
    put(f, "B/x", "x1", 1);
    fd = open_rw(f, "B/log");
    assert_int_equal(plat_write_all(f->v, fd, "head", 4, 0), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    sync_sub(f, "B");
    assert_int_equal(plat_write_all(f->v, fd, "tail", 4, 4), 0);
    put(f, "B/y", "y", 1); /* its name never synced */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "B")), -1);
    assert_int_equal(slurp(p(f, "A/x"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "x1");
    assert_int_equal(slurp(p(f, "A/log"), buf, sizeof(buf)), 4);
    assert_string_equal(buf, "head");
    assert_int_equal(fsize(p(f, "A/y")), -1);
    f->v->close(f->v, fd);
}

/* rmdir needs an empty directory, so the unlinks inside came first; the
 * model keeps them (the directory comes back empty) and undoes the rmdir
 * until the parent is synced. */
static void test_crash_brings_removed_directory_back_empty(void **state)
{
    fx *f = *state;
    mkd(f, "gone");
    mkd(f, "back");
    put(f, "back/x", "x", 1);
    sync_sub(f, "back");
    dirsync(f);
    assert_int_equal(f->v->rmdir(f->v, p(f, "gone")), 0);
    dirsync(f);
    assert_int_equal(f->v->unlink(f->v, p(f, "back/x")), 0);
    assert_int_equal(f->v->rmdir(f->v, p(f, "back")), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "gone")), -1);
    assert_true(is_dir(f, "back"));
    assert_int_equal(count_entries(p(f, "back")), 0);
    /* Back for good: the directory is durable where the old one was, and
     * tracked like any other. */
    mkd(f, "back/new");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_true(is_dir(f, "back"));
    assert_int_equal(count_entries(p(f, "back")), 0);
}

static void test_crash_brings_back_a_renamed_then_removed_directory(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    put(f, "A/x", "x", 1);
    sync_sub(f, "A");
    dirsync(f);
    mv(f, "A", "B");
    assert_int_equal(f->v->unlink(f->v, p(f, "B/x")), 0);
    assert_int_equal(f->v->rmdir(f->v, p(f, "B")), 0);
    mkd(f, "B"); /* a new one under the name */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_true(is_dir(f, "A"));
    assert_int_equal(count_entries(p(f, "A")), 0);
    assert_int_equal(fsize(p(f, "B")), -1);
}

static void test_nested_directories_roll_back_level_by_level(void **state)
{
    fx *f = *state;
    /* A durable tree A/B/C/f. */
    mkd(f, "A");
    dirsync(f);
    mkd(f, "A/B");
    sync_sub(f, "A");
    mkd(f, "A/B/C");
    sync_sub(f, "A/B");
    put(f, "A/B/C/f", "ffff", 1);
    sync_sub(f, "A/B/C");
    /* The inner rename made durable, the outer one not. */
    mv(f, "A/B/C", "A/B/C2");
    sync_sub(f, "A/B");
    mv(f, "A", "Z");
    /* A new subtree whose top was never synced in its parent. */
    mkd(f, "Z/N");
    mkd(f, "Z/N/M");
    sync_sub(f, "Z/N");
    put(f, "Z/N/M/g", "g", 1);
    sync_sub(f, "Z/N/M");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "Z")), -1);
    assert_int_equal(fsize(p(f, "A/B/C2/f")), 4);
    assert_int_equal(fsize(p(f, "A/B/C")), -1);
    assert_int_equal(fsize(p(f, "A/N")), -1);
    assert_int_equal(count_entries(p(f, "A")), 1);
}

static void test_crash_undoes_a_swap_of_directories(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    mkd(f, "B");
    put(f, "A/a", "a", 1);
    put(f, "B/b", "bb", 1);
    sync_sub(f, "A");
    sync_sub(f, "B");
    dirsync(f);
    mv(f, "A", "T");
    mv(f, "B", "A");
    mv(f, "T", "B");
    assert_int_equal(fsize(p(f, "A/b")), 2);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "A/a")), 1);
    assert_int_equal(fsize(p(f, "B/b")), 2);
    assert_int_equal(fsize(p(f, "A/b")), -1);
    assert_int_equal(fsize(p(f, "T")), -1);
}

/* The directory renamed over is destroyed; a crash brings it back empty. */
static void test_crash_undoes_rename_over_an_empty_directory(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    mkd(f, "B");
    put(f, "A/x", "x", 1);
    sync_sub(f, "A");
    dirsync(f);
    mv(f, "A", "B");
    assert_int_equal(fsize(p(f, "B/x")), 1);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "A/x")), 1);
    assert_true(is_dir(f, "B"));
    assert_int_equal(count_entries(p(f, "B")), 0);
}

/* A rename is one step: a directory is in one place or the other, never
 * both, never neither. Until either parent is synced it goes back. */
static void test_directory_rename_across_parents(void **state)
{
    fx *f = *state;
    mkd(f, "P");
    mkd(f, "Q");
    dirsync(f);
    mkd(f, "P/D");
    put(f, "P/D/f", "f", 1);
    sync_sub(f, "P/D");
    sync_sub(f, "P");
    mv(f, "P/D", "Q/E");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "P/D/f")), 1);
    assert_int_equal(fsize(p(f, "Q/E")), -1);
    /* Made durable by the new parent's dirsync... */
    mv(f, "P/D", "Q/E");
    sync_sub(f, "Q");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "Q/E/f")), 1);
    assert_int_equal(fsize(p(f, "P/D")), -1);
    /* ...or by the old parent's. */
    mv(f, "Q/E", "P/D");
    sync_sub(f, "Q");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "P/D/f")), 1);
    assert_int_equal(fsize(p(f, "Q/E")), -1);
}

/* A rename made durable by its old parent's dirsync takes its new name for
 * good, even over durable entries the new parent still had there (a
 * directory removed, one renamed away): those steps came first, so they are
 * durable with it. */
static void test_durable_rename_displaces_older_entries_at_its_name(void **state)
{
    fx *f = *state;
    mkd(f, "P");
    mkd(f, "Q");
    dirsync(f);
    mkd(f, "P/n");
    mkd(f, "P/k");
    mkd(f, "Q/m");
    mkd(f, "Q/j");
    put(f, "Q/m/f", "f", 1);
    put(f, "Q/j/g", "gg", 1);
    sync_sub(f, "Q/m");
    sync_sub(f, "Q/j");
    sync_sub(f, "P");
    sync_sub(f, "Q");
    assert_int_equal(f->v->rmdir(f->v, p(f, "P/n")), 0);
    mv(f, "Q/m", "P/n");
    mv(f, "P/k", "P/z");
    mv(f, "Q/j", "P/k");
    sync_sub(f, "Q");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "P/n/f")), 1);
    assert_int_equal(fsize(p(f, "P/k/g")), 2);
    assert_true(is_dir(f, "P/z"));
    assert_int_equal(count_entries(p(f, "Q")), 0);
}

/* Y out of A, then A into Y, the second rename made durable: the first
 * came before it, so it is durable too (a journal commits in order), and a
 * crash must not try to put Y back inside A, i.e. inside itself. */
static void test_durable_rename_into_a_former_child_keeps_the_tree_whole(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    dirsync(f);
    mkd(f, "A/Y");
    put(f, "A/Y/y", "y", 1);
    sync_sub(f, "A/Y");
    sync_sub(f, "A");
    mv(f, "A/Y", "Y");
    mv(f, "A", "Y/A");
    sync_sub(f, "Y");
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "Y/y")), 1);
    assert_true(is_dir(f, "Y/A"));
    assert_int_equal(fsize(p(f, "A")), -1);
}

/* A directory removed comes back empty: what moved out of it before stays
 * moved out, wherever it went. */
static void test_removed_directory_keeps_what_moved_out_of_it(void **state)
{
    fx *f = *state;
    mkd(f, "P");
    mkd(f, "Q");
    dirsync(f);
    mkd(f, "P/C");
    put(f, "P/C/f", "f", 1);
    sync_sub(f, "P/C");
    sync_sub(f, "P");
    mv(f, "P/C", "Q/C");
    assert_int_equal(f->v->rmdir(f->v, p(f, "P")), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_true(is_dir(f, "P"));
    assert_int_equal(count_entries(p(f, "P")), 0);
    assert_int_equal(fsize(p(f, "Q/C/f")), 1);
}

/* After revive what is on disk is durable: directories included. */
static void test_revive_takes_new_directories_as_durable(void **state)
{
    fx *f = *state;
    mkd(f, "A");
    mkd(f, "B");
    dirsync(f);
    mkd(f, "new");
    mv(f, "A", "A2");
    assert_int_equal(f->v->rmdir(f->v, p(f, "B")), 0);
    plat_fault_revive(f->v);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_true(is_dir(f, "new"));
    assert_true(is_dir(f, "A2"));
    assert_int_equal(fsize(p(f, "A")), -1);
    assert_int_equal(fsize(p(f, "B")), -1);
}

/* ---- handles ------------------------------------------------------------ */

static void test_crash_kills_open_handles(void **state)
{
    fx *f = *state;
    char c;
    size_t got = 5;
    plat_stat st;
    int fd = open_rw(f, "h");
    assert_int_equal(plat_write_all(f->v, fd, "x", 1, 0), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(f->v->pread(f->v, fd, &c, 1, 0, &got), -EIO);
    assert_int_equal(got, 0);
    assert_int_equal(plat_write_all(f->v, fd, "y", 1, 0), -EIO);
    assert_int_equal(f->v->fdatasync(f->v, fd), -EIO);
    assert_int_equal(f->v->ftruncate(f->v, fd, 0), -EIO);
    assert_int_equal(f->v->fstat(f->v, fd, &st), -EIO);
    assert_int_equal(f->v->close(f->v, fd), -EIO);
    /* A manual crash needs no revive: the vfs reopens files at once. */
    assert_int_equal(f->v->open(f->v, p(f, "h2"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    assert_int_equal(plat_write_all(f->v, fd, "z", 1, 0), 0);
    f->v->close(f->v, fd);
}

/* A dead handle keeps its number until its owner closes it, so the owner's
 * late close or write can never hit a file opened after the crash. */
static void test_stale_handle_never_reaches_a_file_opened_after_crash(void **state)
{
    fx *f = *state;
    int old = open_rw(f, "old"), fresh = -1;
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    plat_fault_revive(f->v);
    assert_int_equal(f->v->open(f->v, p(f, "fresh"), PLAT_O_RDWR | PLAT_O_CREAT, &fresh), 0);
    assert_true(fresh != old);
    assert_int_equal(plat_write_all(f->v, old, "stale", 5, 0), -EIO);
    assert_int_equal(f->v->close(f->v, old), -EIO);
    assert_int_equal(plat_write_all(f->v, fresh, "new", 3, 0), 0);
    assert_int_equal(fsize(p(f, "fresh")), 3);
    assert_int_equal(f->v->close(f->v, fresh), 0);
}

static void test_crash_releases_the_lock(void **state)
{
    fx *f = *state;
    int fd = -1, fd2 = -1;
    plat_vfs *posix = plat_vfs_default();
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &fd), 0);
    assert_int_equal(posix->lock(posix, p(f, "LOCK"), &fd2), -EBUSY);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    /* The lock file was never dirsynced, so the name went with the power;
     * either way nobody holds a lock after a reboot. */
    assert_int_equal(posix->lock(posix, p(f, "LOCK"), &fd2), 0);
    posix->close(posix, fd2);
    f->v->close(f->v, fd);
}

/* ---- injected errors ---------------------------------------------------- */

static void test_fail_nth_fdatasync_returns_eio(void **state)
{
    fx *f = *state;
    int fd = open_rw(f, "s");
    dirsync(f);
    assert_int_equal(plat_write_all(f->v, fd, "abc", 3, 0), 0);
    plat_fault_fail_nth(f->v, PLAT_FAULT_FDATASYNC, 1, -EIO);
    assert_int_equal(f->v->fdatasync(f->v, fd), -EIO);
    /* The failed sync made nothing durable. */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "s")), 0);
    f->v->close(f->v, fd);
    /* The rule fired once; fsync counts as the same operation. */
    fd = open_rw(f, "s");
    plat_fault_fail_nth(f->v, PLAT_FAULT_FDATASYNC, 2, -EIO);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(f->v->fsync(f->v, fd), -EIO);
    assert_int_equal(f->v->fsync(f->v, fd), 0);
    f->v->close(f->v, fd);
}

static void test_enospc_on_write_writes_nothing(void **state)
{
    fx *f = *state;
    char buf[16];
    int fd = open_rw(f, "w");
    plat_fault_fail_nth(f->v, PLAT_FAULT_PWRITEV, 2, -ENOSPC);
    assert_int_equal(plat_write_all(f->v, fd, "one", 3, 0), 0);
    assert_int_equal(plat_write_all(f->v, fd, "two", 3, 3), -ENOSPC);
    assert_int_equal(fsize(p(f, "w")), 3);
    assert_int_equal(plat_write_all(f->v, fd, "TWO", 3, 3), 0);
    assert_int_equal(slurp(p(f, "w"), buf, sizeof(buf)), 6);
    assert_string_equal(buf, "oneTWO");
    f->v->close(f->v, fd);
}

static void test_fail_nth_rename_and_unlink_change_nothing(void **state)
{
    fx *f = *state;
    put(f, "a", "A", 0);
    put(f, "b", "BB", 0);
    plat_fault_fail_nth(f->v, PLAT_FAULT_RENAME, 1, -EIO);
    assert_int_equal(f->v->rename(f->v, p(f, "a"), p(f, "b")), -EIO);
    assert_int_equal(fsize(p(f, "a")), 1);
    assert_int_equal(fsize(p(f, "b")), 2);
    plat_fault_fail_nth(f->v, PLAT_FAULT_UNLINK, 1, -EACCES);
    assert_int_equal(f->v->unlink(f->v, p(f, "a")), -EACCES);
    assert_int_equal(fsize(p(f, "a")), 1);
    plat_fault_fail_nth(f->v, PLAT_FAULT_OPEN, 1, -EMFILE);
    int fd = -1;
    assert_int_equal(f->v->open(f->v, p(f, "c"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), -EMFILE);
    assert_int_equal(fsize(p(f, "c")), -1);
    plat_fault_fail_nth(f->v, PLAT_FAULT_DIRSYNC, 1, -EIO);
    assert_int_equal(f->v->dirsync(f->v, f->dir), -EIO);
    /* The failed dirsync made no name durable. */
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "a")), -1);
}

static void test_fail_nth_zero_clears_the_rule(void **state)
{
    fx *f = *state;
    int fd = open_rw(f, "z");
    char c;
    size_t got;
    plat_fault_fail_nth(f->v, PLAT_FAULT_PREAD, 1, -EIO);
    plat_fault_fail_nth(f->v, PLAT_FAULT_PREAD, 0, 0);
    assert_int_equal(f->v->pread(f->v, fd, &c, 1, 0, &got), 0);
    plat_fault_fail_nth(f->v, PLAT_FAULT_FTRUNCATE, 1, -EROFS);
    assert_int_equal(f->v->ftruncate(f->v, fd, 10), -EROFS);
    assert_int_equal(fsize(p(f, "z")), 0);
    f->v->close(f->v, fd);
}

/* ---- automatic crash ---------------------------------------------------- */

static void test_crash_at_fails_later_calls(void **state)
{
    fx *f = *state;
    char buf[16];
    size_t got;
    plat_stat st;
    int fd = open_rw(f, "c"), fd2 = -1;
    dirsync(f);
    unsigned long m0 = plat_fault_mutations(f->v);
    plat_fault_crash_at(f->v, 3, 0);
    assert_int_equal(plat_write_all(f->v, fd, "ab", 2, 0), 0); /* 1st mutating call */
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);            /* 2nd */
    assert_int_equal(plat_fault_crashed(f->v), 0);
    /* The 3rd: the power goes before it runs. */
    assert_int_equal(plat_write_all(f->v, fd, "cd", 2, 2), -EIO);
    assert_int_equal(plat_fault_crashed(f->v), 1);
    assert_int_equal(plat_fault_mutations(f->v) - m0, 3);
    assert_int_equal(slurp(p(f, "c"), buf, sizeof(buf)), 2);
    assert_string_equal(buf, "ab");
    /* Every later call fails, reads and fresh opens included. */
    assert_int_equal(f->v->pread(f->v, fd, buf, 1, 0, &got), -EIO);
    assert_int_equal(f->v->open(f->v, p(f, "c"), PLAT_O_RDONLY, &fd2), -EIO);
    assert_int_equal(f->v->stat(f->v, p(f, "c"), &st), -EIO);
    assert_int_equal(f->v->dirsync(f->v, f->dir), -EIO);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), -EIO);
    assert_int_equal(f->v->rename(f->v, p(f, "c"), p(f, "d")), -EIO);
    assert_int_equal(f->v->unlink(f->v, p(f, "c")), -EIO);
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &fd2), -EIO);
    assert_int_equal(fsize(p(f, "c")), 2);
    assert_int_equal(fsize(p(f, "sub")), -1);
    assert_int_equal(plat_fault_mutations(f->v) - m0, 3);
    assert_int_equal(f->v->close(f->v, fd), -EIO);
    /* Until the machine comes back. */
    plat_fault_revive(f->v);
    assert_int_equal(plat_fault_crashed(f->v), 0);
    assert_int_equal(f->v->open(f->v, p(f, "c"), PLAT_O_RDONLY, &fd2), 0);
    assert_int_equal(plat_read_exact(f->v, fd2, buf, 2, 0), 0);
    assert_memory_equal(buf, "ab", 2);
    f->v->close(f->v, fd2);
}

static void test_only_mutating_calls_count_toward_crash_at(void **state)
{
    fx *f = *state;
    char c;
    size_t got;
    plat_stat st;
    int fd = -1, lk = -1;
    put(f, "r", "data", 1);
    unsigned long m = plat_fault_mutations(f->v);
#define SAME() assert_int_equal(plat_fault_mutations(f->v), m)
#define MORE() assert_int_equal(plat_fault_mutations(f->v), ++m)
    assert_int_equal(f->v->open(f->v, p(f, "r"), PLAT_O_RDONLY, &fd), 0);
    SAME();
    assert_int_equal(f->v->pread(f->v, fd, &c, 1, 0, &got), 0);
    assert_int_equal(f->v->fstat(f->v, fd, &st), 0);
    assert_int_equal(f->v->stat(f->v, p(f, "r"), &st), 0);
    assert_int_equal(f->v->lock(f->v, p(f, "LOCK"), &lk), 0);
    SAME();
    f->v->close(f->v, fd);
    f->v->close(f->v, lk);
    /* O_CREAT on a file that exists creates nothing. */
    assert_int_equal(f->v->open(f->v, p(f, "r"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    SAME();
    f->v->close(f->v, fd);
    assert_int_equal(f->v->open(f->v, p(f, "r"), PLAT_O_RDWR | PLAT_O_TRUNC, &fd), 0);
    MORE();
    assert_int_equal(f->v->ftruncate(f->v, fd, 3), 0);
    MORE();
    assert_int_equal(f->v->fsync(f->v, fd), 0);
    MORE();
    f->v->close(f->v, fd);
    assert_int_equal(f->v->open(f->v, p(f, "n"), PLAT_O_RDWR | PLAT_O_CREAT, &fd), 0);
    MORE();
    f->v->close(f->v, fd);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    MORE();
    assert_int_equal(f->v->rename(f->v, p(f, "n"), p(f, "m")), 0);
    MORE();
    assert_int_equal(f->v->unlink(f->v, p(f, "m")), 0);
    MORE();
    dirsync(f);
    MORE();
#undef SAME
#undef MORE
    /* Reads never trip an armed crash; the next mutating call does. */
    assert_int_equal(f->v->open(f->v, p(f, "r"), PLAT_O_RDWR, &fd), 0);
    plat_fault_crash_at(f->v, 1, 0);
    assert_int_equal(f->v->pread(f->v, fd, &c, 1, 0, &got), 0);
    assert_int_equal(plat_fault_crashed(f->v), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), -EIO);
    assert_int_equal(plat_fault_crashed(f->v), 1);
    f->v->close(f->v, fd);
}

static void test_crash_at_zero_disarms(void **state)
{
    fx *f = *state;
    int fd = open_rw(f, "x");
    plat_fault_crash_at(f->v, 1, 0);
    plat_fault_crash_at(f->v, 0, 0);
    assert_int_equal(plat_write_all(f->v, fd, "a", 1, 0), 0);
    assert_int_equal(f->v->fdatasync(f->v, fd), 0);
    assert_int_equal(plat_fault_crashed(f->v), 0);
    f->v->close(f->v, fd);
}

/* ---- revive, limits, cleanup -------------------------------------------- */

/* After revive, what is on disk counts as durable, also for a handle that
 * stayed open because there was no crash. */
static void test_revive_takes_the_disk_as_durable(void **state)
{
    fx *f = *state;
    int fd = open_rw(f, "u");
    assert_int_equal(plat_write_all(f->v, fd, "unsynced", 8, 0), 0);
    plat_fault_revive(f->v);
    assert_int_equal(plat_write_all(f->v, fd, "+more", 5, 8), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "u")), 8);
    f->v->close(f->v, fd);
}

static void test_crash_undoes_rename_across_directories(void **state)
{
    fx *f = *state;
    char sub[160];
    put(f, "a", "aaa", 1);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    dirsync(f);
    snprintf(sub, sizeof(sub), "%s/sub/a", f->dir);
    assert_int_equal(f->v->rename(f->v, p(f, "a"), sub), 0);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "a")), 3);
    assert_int_equal(fsize(sub), -1);
}

static void test_crash_removes_link_made_since_dirsync(void **state)
{
    fx *f = *state;
    char sub[160];
    put(f, "a", "aaa", 1);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    dirsync(f);
    snprintf(sub, sizeof(sub), "%s/sub/a", f->dir);
    assert_int_equal(f->v->link(f->v, p(f, "a"), sub), 0);
    assert_int_equal(fsize(sub), 3);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "a")), 3);
    assert_int_equal(fsize(sub), -1);
}

static void test_link_made_durable_survives_unlink_of_the_original(void **state)
{
    fx *f = *state;
    char sub[160], buf[16];
    put(f, "a", "aaa", 1);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    dirsync(f);
    snprintf(sub, sizeof(sub), "%s/sub", f->dir);
    char to[200];
    snprintf(to, sizeof(to), "%s/a", sub);
    assert_int_equal(f->v->link(f->v, p(f, "a"), to), 0);
    assert_int_equal(f->v->dirsync(f->v, sub), 0);
    assert_int_equal(f->v->unlink(f->v, p(f, "a")), 0);
    dirsync(f);
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    assert_int_equal(fsize(p(f, "a")), -1);
    assert_int_equal(slurp(to, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "aaa");
}

static void test_fail_nth_link_and_rmdir(void **state)
{
    fx *f = *state;
    char sub[160];
    put(f, "a", "aaa", 1);
    assert_int_equal(f->v->mkdir(f->v, p(f, "sub")), 0);
    snprintf(sub, sizeof(sub), "%s/sub/a", f->dir);
    plat_fault_fail_nth(f->v, PLAT_FAULT_LINK, 1, -ENOSPC);
    assert_int_equal(f->v->link(f->v, p(f, "a"), sub), -ENOSPC);
    assert_int_equal(fsize(sub), -1);
    plat_fault_fail_nth(f->v, PLAT_FAULT_RMDIR, 1, -EIO);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), -EIO);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), 0);
    assert_int_equal(f->v->rmdir(f->v, p(f, "sub")), -ENOENT);
}

static void test_statfs_reports_the_cap(void **state)
{
    fx *f = *state;
    uint64_t avail = 0, total = 0;
    assert_int_equal(f->v->statfs(f->v, f->dir, &avail, &total), 0);
    assert_true(total > 0 && avail <= total);
    plat_fault_set_avail(f->v, 12345);
    assert_int_equal(f->v->statfs(f->v, f->dir, &avail, &total), 0);
    assert_true(avail <= 12345);
    plat_fault_set_avail(f->v, UINT64_MAX);
    assert_int_equal(f->v->statfs(f->v, f->dir, &avail, &total), 0);
    assert_true(avail > 12345);
}

/* No fixed table limits: a power-cut test tracks a directory per snapshot
 * (hundreds), every SST it links (thousands of inodes) and the handles two
 * stores keep open (hundreds). */
static void test_hundreds_of_directories_and_thousands_of_files(void **state)
{
    enum { DIRS = 300, DURABLE = 200, FILES = 1500, OPEN = 400 };
    fx *f = *state;
    char name[32];
    int *fds = calloc(OPEN, sizeof(*fds));
    assert_non_null(fds);
    mkd(f, "many");
    for (int i = 0; i < DIRS; i++) {
        snprintf(name, sizeof(name), "s%03d", i);
        mkd(f, name);
        snprintf(name, sizeof(name), "s%03d/f", i);
        put(f, name, "snap", 1);
        snprintf(name, sizeof(name), "s%03d", i);
        sync_sub(f, name);
        if (i == DURABLE - 1)
            dirsync(f);
    }
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "many/%04d", i);
        put(f, name, "sst", 0); /* opened through the vfs: a tracked inode */
    }
    sync_sub(f, "many");
    for (int i = 0; i < OPEN; i++) {
        snprintf(name, sizeof(name), "many/%04d", i);
        fds[i] = open_rw(f, name);
    }
    assert_int_equal(plat_fault_crash(f->v, 0), 0);
    for (int i = 0; i < DIRS; i++) {
        snprintf(name, sizeof(name), "s%03d/f", i);
        assert_int_equal(fsize(p(f, name)), i < DURABLE ? 4 : -1);
        snprintf(name, sizeof(name), "s%03d", i);
        assert_int_equal(is_dir(f, name), i < DURABLE);
    }
    assert_int_equal(count_entries(p(f, "many")), FILES);
    for (int i = 0; i < OPEN; i++) {
        assert_int_equal(plat_write_all(f->v, fds[i], "x", 1, 0), -EIO);
        assert_int_equal(f->v->close(f->v, fds[i]), -EIO);
    }
    free(fds);
}

static void test_free_removes_the_shadow_directory(void **state)
{
    fx *f = *state;
    put(f, "MANIFEST", "v1", 1);
    dirsync(f);
    put(f, "MANIFEST.tmp", "v2", 1);
    assert_int_equal(f->v->rename(f->v, p(f, "MANIFEST.tmp"), p(f, "MANIFEST")), 0);
    assert_int_equal(count_entries(f->shadow), 1); /* v1's inode, kept alive */
    plat_fault_free(f->v);
    f->v = NULL;
    assert_int_equal(count_entries(f->shadow), -1);
    assert_int_equal(fsize(p(f, "MANIFEST")), 2);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_synced_data_survives_crash),
        T(test_crash_drops_unsynced_tail),
        T(test_fsync_counts_as_sync_too),
        T(test_crash_removes_file_created_since_dirsync),
        T(test_dirsynced_name_keeps_only_synced_bytes),
        T(test_crash_restores_name_renamed_over_before_dirsync),
        T(test_rename_made_durable_by_dirsync_survives),
        T(test_crash_undoes_rename_of_a_durable_name),
        T(test_crash_restores_unlinked_durable_file_at_synced_size),
        T(test_unlink_made_durable_by_dirsync_stays),
        T(test_preexisting_file_counts_as_synced),
        T(test_truncating_open_leaves_nothing_synced),
        T(test_ftruncate_below_synced_size_is_durable),
        T(test_torn_crash_keeps_a_prefix_of_unsynced_bytes),
        T(test_torn_cut_points_follow_the_seed),
        T(test_crash_spares_directories_it_never_made),
        T(test_crash_removes_directory_made_since_dirsync),
        T(test_dirsync_makes_new_directory_durable),
        T(test_crash_undoes_directory_rename_without_dirsync),
        T(test_directory_rename_made_durable_by_dirsync_survives),
        T(test_crash_rolling_back_a_rename_keeps_what_the_directory_synced),
        T(test_crash_brings_removed_directory_back_empty),
        T(test_crash_brings_back_a_renamed_then_removed_directory),
        T(test_nested_directories_roll_back_level_by_level),
        T(test_crash_undoes_a_swap_of_directories),
        T(test_crash_undoes_rename_over_an_empty_directory),
        T(test_directory_rename_across_parents),
        T(test_durable_rename_displaces_older_entries_at_its_name),
        T(test_durable_rename_into_a_former_child_keeps_the_tree_whole),
        T(test_removed_directory_keeps_what_moved_out_of_it),
        T(test_revive_takes_new_directories_as_durable),
        T(test_crash_kills_open_handles),
        T(test_stale_handle_never_reaches_a_file_opened_after_crash),
        T(test_crash_releases_the_lock),
        T(test_fail_nth_fdatasync_returns_eio),
        T(test_enospc_on_write_writes_nothing),
        T(test_fail_nth_rename_and_unlink_change_nothing),
        T(test_fail_nth_zero_clears_the_rule),
        T(test_crash_at_fails_later_calls),
        T(test_only_mutating_calls_count_toward_crash_at),
        T(test_crash_at_zero_disarms),
        T(test_revive_takes_the_disk_as_durable),
        T(test_crash_undoes_rename_across_directories),
        T(test_crash_removes_link_made_since_dirsync),
        T(test_link_made_durable_survives_unlink_of_the_original),
        T(test_fail_nth_link_and_rmdir),
        T(test_statfs_reports_the_cap),
        T(test_hundreds_of_directories_and_thousands_of_files),
        T(test_free_removes_the_shadow_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
