/*
 * npy.c -- NumPy .npy v1.0 writer (layout in npy.h; NumPy's own description
 * is numpy.lib.format). The file goes through the platform vfs like every
 * other durable write in EmbedDb.
 */
#include "npy.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    ts_dtype dt;
    const char *descr;
} descrs[] = {
    {TS_F16, "<f2"},  {TS_BF16, "<u2"}, {TS_F32, "<f4"},  {TS_F64, "<f8"},  {TS_I8, "|i1"},
    {TS_I16, "<i2"},  {TS_I32, "<i4"},  {TS_I64, "<i8"},  {TS_U8, "|u1"},   {TS_U16, "<u2"},
    {TS_U32, "<u4"},  {TS_U64, "<u8"},  {TS_BOOL, "|b1"}, {TS_C64, "<c8"},  {TS_C128, "<c16"},
};

const char *npy_descr(ts_dtype dt)
{
    const char *d = NULL;
    for (size_t i = 0; i < sizeof(descrs) / sizeof(descrs[0]) && !d; i++)
        if (descrs[i].dt == dt)
            d = descrs[i].descr;
    return d;
}

/* NumPy's shape tuple: "()", "(3,)", "(32, 32)". */
static void shape_tuple(const ts_tensor *t, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "(");
    for (uint32_t i = 0; i < t->ndim && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%" PRIu64, i ? ", " : "", t->shape[i]);
    if (o < cap)
        snprintf(out + o, cap - o, t->ndim == 1 ? ",)" : ")");
}

int npy_header(const ts_tensor *t, char *buf, size_t cap, size_t *len)
{
    char shape[TS_MAX_DIMS * 22 + 8];
    const char *descr = npy_descr(t->dtype);
    size_t n, total;
    int k, rc = 0;
    if (!descr || t->ndim > TS_MAX_DIMS) {
        rc = TS_EINVAL;
        goto out;
    }
    shape_tuple(t, shape, sizeof(shape));
    /* Magic (6) + version (2) + header length (2) come first; the dict goes
     * straight into buf so padding needs no second copy. */
    k = snprintf(cap > 10 ? buf + 10 : NULL, cap > 10 ? cap - 10 : 0,
                 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    if (k < 0) {
        rc = TS_EINVAL;
        goto out;
    }
    n = (size_t)k;
    total = (10 + n + 1 + 63) / 64 * 64; /* + '\n', padded to 64 */
    if (total > cap || total - 10 > 0xffff) {
        rc = TS_EOVERFLOW;
        goto out;
    }
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memset(buf + 10 + n, ' ', total - 10 - n - 1);
    buf[total - 1] = '\n';
    *len = total;
out:
    return rc;
}

int npy_write_stream(const ts_tensor *t, FILE *fp)
{
    char hdr[NPY_HEADER_MAX];
    size_t hlen = 0;
    int rc = npy_header(t, hdr, sizeof(hdr), &hlen);
    if (rc)
        goto out;
    if (fwrite(hdr, 1, hlen, fp) != hlen ||
        (t->data_len && fwrite(t->data, 1, t->data_len, fp) != t->data_len) || fflush(fp))
        rc = TS_EIO;
out:
    return rc;
}

/* The directory holding path ("." for a bare name), for the dirsync. */
static int parent_dir(const char *path, char **out)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    int rc = 0;
    if (slash && n == 0)
        n = 1; /* "/x.npy": the root */
    if (!(*out = malloc(n + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(*out, slash ? path : ".", n);
    (*out)[n] = 0;
out:
    return rc;
}

int npy_write_file(const ts_tensor *t, const char *path, plat_vfs *vfs)
{
    char hdr[NPY_HEADER_MAX];
    char *tmp = NULL, *dir = NULL;
    size_t hlen = 0, plen = strlen(path);
    int fd = -1, made = 0;
    int rc = npy_header(t, hdr, sizeof(hdr), &hlen);
    if (!vfs)
        vfs = plat_vfs_default();
    if (rc)
        goto out;
    if ((rc = parent_dir(path, &dir)))
        goto out;
    if (!(tmp = malloc(plen + sizeof(".tmp")))) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", sizeof(".tmp"));
    if ((rc = vfs->open(vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd)))
        goto out;
    made = 1;
    if ((rc = plat_write_all(vfs, fd, hdr, hlen, 0)))
        goto out;
    if (t->data_len && (rc = plat_write_all(vfs, fd, t->data, t->data_len, hlen)))
        goto out;
    if ((rc = vfs->fdatasync(vfs, fd)))
        goto out;
    rc = vfs->close(vfs, fd);
    fd = -1;
    if (rc)
        goto out;
    if ((rc = vfs->rename(vfs, tmp, path)))
        goto out;
    made = 0;
    rc = vfs->dirsync(vfs, dir);
out:
    if (fd >= 0)
        vfs->close(vfs, fd);
    if (made)
        vfs->unlink(vfs, tmp);
    free(tmp);
    free(dir);
    return rc;
}
