/*
 * plat_file.c -- whole-file and whole-directory helpers over any vfs: the
 * durable replace of a small file, reading one back, a sorted listing, the
 * bytes of a directory, and removing a flat directory. Declared in plat.h.
 *
 * They make no system call of their own -- everything goes through the vfs
 * they are handed -- so the fault vfs sees (and can cut) every step, as it
 * does for the engine. Errors are -errno; messages are the caller's.
 */
#include "embeddb/plat.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_LEN 4096

int plat_file_replace(plat_vfs *vfs, const char *dir, const char *name, const void *buf,
                      size_t len, int sync)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    int fd = -1, rc;
    if ((rc = plat_path_join(path, sizeof(path), dir, name)))
        return rc;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((rc = vfs->open(vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd)))
        goto out;
    if ((rc = plat_write_all(vfs, fd, buf, len, 0)) || (sync && (rc = vfs->fdatasync(vfs, fd))))
        goto out;
    rc = vfs->rename(vfs, tmp, path);
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    return rc;
}

int plat_file_read(plat_vfs *vfs, const char *path, size_t limit, char **out, size_t *len)
{
    plat_stat st;
    char *buf = NULL;
    int fd = -1, rc;
    *out = NULL;
    *len = 0;
    if ((rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd)) || (rc = vfs->fstat(vfs, fd, &st)))
        goto out;
    if (st.size > limit) {
        rc = -EFBIG;
        goto out;
    }
    if (!(buf = malloc((size_t)st.size + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = plat_read_exact(vfs, fd, buf, (size_t)st.size, 0)))
        goto out;
    buf[st.size] = 0;
    *len = (size_t)st.size;
    *out = buf;
    buf = NULL;
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    free(buf);
    return rc;
}

typedef struct listing {
    char *names; /* owned: the matching names back to back, NULs included */
    size_t len, cap;
    size_t n;
    const char *prefix;
} listing;

static int collect(void *ctx, const char *name)
{
    listing *l = ctx;
    size_t k;
    if (strncmp(name, l->prefix, strlen(l->prefix)))
        return 0;
    k = strlen(name) + 1;
    if (k > l->cap - l->len) {
        size_t cap = l->cap ? l->cap : 256;
        char *p;
        while (k > cap - l->len) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        if (!(p = realloc(l->names, cap)))
            return -ENOMEM;
        l->names = p;
        l->cap = cap;
    }
    memcpy(l->names + l->len, name, k);
    l->len += k;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int plat_dir_list(plat_vfs *vfs, const char *dir, const char *prefix, char ***out, size_t *n)
{
    listing l = {.prefix = prefix ? prefix : ""};
    char **v = NULL;
    int rc = vfs->listdir(vfs, dir, collect, &l);
    *out = NULL;
    *n = 0;
    if (!rc && (l.n >= SIZE_MAX / sizeof(*v) || (l.n + 1) * sizeof(*v) > SIZE_MAX - l.len))
        rc = -ENOMEM;
    if (!rc && !(v = malloc((l.n + 1) * sizeof(*v) + l.len)))
        rc = -ENOMEM;
    if (!rc) {
        /* One block: the pointers, then the strings they point at, in order.
         * The pointers are sorted while they still lead into l.names. */
        char *s = (char *)(v + l.n + 1), *name = l.names;
        for (size_t i = 0; i < l.n; i++) {
            v[i] = name;
            name += strlen(name) + 1;
        }
        qsort(v, l.n, sizeof(*v), cmp_str); /* v is never NULL, even when l.n is 0 */
        for (size_t i = 0; i < l.n; i++) {
            size_t k = strlen(v[i]) + 1;
            memcpy(s, v[i], k);
            v[i] = s;
            s += k;
        }
        v[l.n] = NULL;
        *out = v;
        *n = l.n;
    }
    free(l.names);
    return rc;
}

uint64_t plat_dir_bytes(plat_vfs *vfs, const char *dir)
{
    char **names = NULL, path[PATH_LEN];
    size_t n = 0;
    plat_stat st;
    uint64_t total = 0;
    if (plat_dir_list(vfs, dir, "", &names, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (!plat_path_join(path, sizeof(path), dir, names[i]) &&
                !vfs->stat(vfs, path, &st) && st.is_reg)
                total += st.size;
    free(names);
    return total;
}

int plat_dir_remove(plat_vfs *vfs, const char *dir)
{
    char **names = NULL, path[PATH_LEN];
    size_t n = 0;
    int rc = plat_dir_list(vfs, dir, "", &names, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        if ((rc = plat_path_join(path, sizeof(path), dir, names[i])))
            break;
        if ((rc = vfs->unlink(vfs, path)) == -ENOENT)
            rc = 0;
    }
    free(names);
    if (!rc)
        rc = vfs->rmdir(vfs, dir);
    return rc == -ENOENT ? 0 : rc;
}
