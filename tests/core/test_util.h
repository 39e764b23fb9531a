/*
 * test_util.h -- helpers shared by the core and fault tests: temporary
 * store directories on real disk, tensor builders, a vfs that counts reads,
 * and small file surgery (flip a byte, cut a file) for corruption tests.
 * Header-only so each test program stays one file plus this.
 */
#ifndef EMBEDDB_TEST_UTIL_H
#define EMBEDDB_TEST_UTIL_H

#define _GNU_SOURCE 1
#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tu__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a directory tree (test scratch only). */
static inline void tu_rmtree(const char *dir)
{
    nftw(dir, tu__rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR (or /tmp); caller frees and removes. */
static inline char *tu_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/embeddb-%s-XXXXXX", base && base[0] ? base : "/tmp", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline char *tu_path(const char *dir, const char *name)
{
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ & 3];
    int n = snprintf(p, 4096, "%s/%s", dir, name);
    if (n <= 0 || n >= 4096) /* test paths are short; a cut one is a test bug */
        abort();
    return p;
}

static inline long tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

static inline int tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* XORs one byte of a file at off with 0x5a. */
static inline void tu_flip(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    if (fd < 0 || pread(fd, &c, 1, off) != 1)
        abort();
    c ^= 0x5a;
    if (pwrite(fd, &c, 1, off) != 1)
        abort();
    close(fd);
}

static inline void tu_truncate(const char *path, long len)
{
    if (truncate(path, len))
        abort();
}

static inline void tu_append(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        abort();
    close(fd);
}

static inline ts_store *tu_open(const char *dir, ts_options *o_in)
{
    ts_options o;
    char err[512];
    ts_store *s = NULL;
    if (o_in)
        o = *o_in;
    else
        ts_options_init(&o);
    o.create_if_missing = 1;
    int rc = ts_open(dir, &o, &s, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ts_open(%s): %s\n", dir, err);
        return NULL;
    }
    return s;
}

/* A float32 tensor of n elements, value base + i, under numeric key k.
 * Buffers are owned by the returned struct (free with tu_tensor_free). */
typedef struct tu_tensor {
    ts_tensor t;
    uint8_t key[8];
    float *data;
} tu_tensor;

static inline void tu_tensor_init(tu_tensor *x, uint64_t k, size_t n, float base)
{
    memset(x, 0, sizeof(*x));
    ts_key_from_u64(k, x->key);
    x->data = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        x->data[i] = base + (float)i;
    x->t.key = x->key;
    x->t.key_len = 8;
    x->t.name = "t";
    x->t.dtype = TS_F32;
    x->t.ndim = 1;
    x->t.shape[0] = n;
    x->t.data = x->data;
    x->t.data_len = n * sizeof(float);
    x->t.timestamp_ns = 1000 + (int64_t)k;
}

static inline void tu_tensor_free(tu_tensor *x)
{
    free(x->data);
}

/* Saves a numeric-key f32 tensor; returns the ts_save code. */
static inline int tu_save(ts_store *s, uint64_t k, size_t n, float base)
{
    tu_tensor x;
    tu_tensor_init(&x, k, n, base);
    int rc = ts_save(s, &x.t);
    tu_tensor_free(&x);
    return rc;
}

/* 1 when key k loads with n elements of base + i. */
static inline int tu_check(ts_store *s, uint64_t k, size_t n, float base)
{
    uint8_t key[8];
    ts_tensor *t = NULL;
    ts_key_from_u64(k, key);
    if (ts_load(s, key, 8, &t))
        return 0;
    int ok = t->data_len == n * sizeof(float) && t->dtype == TS_F32;
    for (size_t i = 0; ok && i < n; i++)
        ok = ((const float *)t->data)[i] == base + (float)i;
    ts_tensor_free(t);
    return ok;
}

/* A vfs that counts preads and the bytes they asked for. */
typedef struct tu_count_vfs {
    plat_vfs vfs;
    plat_vfs *base;
    unsigned long preads;
    unsigned long long pread_bytes;
    unsigned long fdatasyncs;
} tu_count_vfs;

static int tu__cnt_pread(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    tu_count_vfs *c = (tu_count_vfs *)self;
    c->preads++;
    c->pread_bytes += len;
    return c->base->pread(c->base, fd, buf, len, off, got);
}

static int tu__cnt_fdatasync(plat_vfs *self, int fd)
{
    tu_count_vfs *c = (tu_count_vfs *)self;
    c->fdatasyncs++;
    return c->base->fdatasync(c->base, fd);
}

static inline void tu_count_vfs_init(tu_count_vfs *c)
{
    memset(c, 0, sizeof(*c));
    c->base = plat_vfs_default();
    c->vfs = *c->base;
    c->vfs.pread = tu__cnt_pread;
    c->vfs.fdatasync = tu__cnt_fdatasync;
}

/* The store fixture most core tests use: a fresh directory and an open
 * store in it. Needs cmocka.h included before this header's users call it. */
typedef struct tu_fx {
    char *dir;
    ts_store *s;
    tu_count_vfs count; /* for tests that reopen f->s on it: lives as long as f->s */
} tu_fx;

static inline tu_fx *tu_fx_new(const char *tag)
{
    tu_fx *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir(tag);
    f->s = tu_open(f->dir, NULL);
    return f;
}

static inline void tu_fx_free(tu_fx *f)
{
    ts_close(f->s);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
}

#endif
