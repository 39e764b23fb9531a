/*
 * tar.c -- the ustar stream generator (contract in embeddb/tar.h): the one
 * place that knows the tar layout; the seal's hashing pass and the upload
 * both read this stream.
 *
 * State machine over members: header block, then the file's bytes read
 * straight into the caller's buffer (and shown to the data hook there),
 * then zero padding to 512, and after the last member two zero blocks. One
 * file is open at a time; memory use is one 512-byte header.
 */
#include "embeddb/tar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t pad512(uint64_t n)
{
    return (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK;
}

uint64_t tar_stream_len(const tar_member *m, size_t n)
{
    uint64_t len = 2 * TAR_BLOCK;
    for (size_t i = 0; i < n; i++)
        len += TAR_BLOCK + m[i].size + pad512(m[i].size);
    return len;
}

/* Octal, NUL-terminated, right-aligned in a field of w bytes; values that
 * do not fit in w-1 octal digits use the base-256 form GNU tar and POSIX
 * pax readers accept (high bit set, big-endian). */
static void put_num(uint8_t *f, size_t w, uint64_t v)
{
    if (w - 1 >= 22 || v < (1ull << (3 * (w - 1)))) {
        for (size_t i = w - 1; i-- > 0; v >>= 3)
            f[i] = (uint8_t)('0' + (v & 7));
        f[w - 1] = 0;
        return;
    }
    for (size_t i = w; i-- > 1; v >>= 8)
        f[i] = (uint8_t)(v & 0xff);
    f[0] = 0x80;
}

int tar_header(const char *dir, const char *name, uint64_t size, int64_t mtime_s,
               uint8_t out[TAR_BLOCK])
{
    size_t dl = strlen(dir), nl = strlen(name);
    unsigned sum = 0;
    if (dl > 155 || nl > 100 || nl == 0)
        return -ENAMETOOLONG;
    memset(out, 0, TAR_BLOCK);
    memcpy(out, name, nl);
    put_num(out + 100, 8, 0644);
    put_num(out + 108, 8, 0);
    put_num(out + 116, 8, 0);
    put_num(out + 124, 12, size);
    put_num(out + 136, 12, mtime_s > 0 ? (uint64_t)mtime_s : 0);
    out[156] = '0';
    memcpy(out + 257, "ustar", 6);
    memcpy(out + 263, "00", 2);
    memcpy(out + 265, "root", 4);
    memcpy(out + 297, "root", 4);
    memcpy(out + 345, dir, dl);
    memset(out + 148, ' ', 8);
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += out[i];
    snprintf((char *)out + 148, 8, "%06o", sum & 0777777);
    out[155] = ' ';
    return 0;
}

/* A numeric field: octal digits (leading spaces, ended by NUL or space), or
 * base-256 when the first byte has its high bit set. 0 or -EBADMSG. */
static int get_num(const uint8_t *f, size_t w, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    if (f[0] & 0x80) {
        if (f[0] != 0x80)
            return -EBADMSG; /* negative, or more than 64 bits */
        for (i = 1; i < w; i++) {
            if (v >> 56)
                return -EBADMSG;
            v = v << 8 | f[i];
        }
        *out = v;
        return 0;
    }
    while (i < w && f[i] == ' ')
        i++;
    for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 61)
            return -EBADMSG;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    if (i < w && f[i] != 0 && f[i] != ' ')
        return -EBADMSG;
    *out = v;
    return 0;
}

int tar_header_parse(const uint8_t in[TAR_BLOCK], char path[TAR_PATH_MAX], uint64_t *size,
                     char *type, const char **why)
{
    uint64_t want = 0, sum = 0;
    size_t pl = 0, nl = 0, i;
    for (i = 0; i < TAR_BLOCK && !in[i]; i++)
        ;
    if (i == TAR_BLOCK)
        return 1;
    for (i = 0; i < TAR_BLOCK; i++)
        sum += i >= 148 && i < 156 ? ' ' : in[i];
    if (get_num(in + 148, 8, &want) || want != sum) {
        *why = "tar header checksum mismatch";
        return -EBADMSG;
    }
    if (get_num(in + 124, 12, size)) {
        *why = "tar header size field is not a number";
        return -EBADMSG;
    }
    *type = (char)in[156];
    while (nl < 100 && in[nl])
        nl++;
    if (!memcmp(in + 257, "ustar", 5))
        while (pl < 155 && in[345 + pl])
            pl++;
    memcpy(path, in + 345, pl);
    if (pl)
        path[pl++] = '/';
    memcpy(path + pl, in, nl);
    path[pl + nl] = 0;
    return 0;
}

struct tar_stream {
    plat_vfs *vfs;
    const char *dir;
    const tar_member *m;
    size_t n;
    int64_t mtime_s;
    size_t i;          /* current member; n = trailer */
    int phase;         /* 0 header, 1 data, 2 pad */
    uint64_t pos;      /* bytes of the current phase already produced */
    int fd;
    tar_data_fn on_data; /* optional hook, with its ctx */
    void *on_data_ctx;
    uint8_t hdr[TAR_BLOCK];
    char err[512];
};

tar_stream *tar_stream_new(plat_vfs *vfs, const char *dir, const tar_member *m, size_t n,
                           int64_t mtime_s)
{
    tar_stream *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (tar_stream){.vfs = vfs, .dir = dir, .m = m, .n = n, .mtime_s = mtime_s, .fd = -1};
    return t;
}

void tar_stream_free(tar_stream *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        t->vfs->close(t->vfs, t->fd);
    free(t);
}

const char *tar_stream_error(const tar_stream *t)
{
    return t->err;
}

void tar_stream_on_data(tar_stream *t, tar_data_fn fn, void *ctx)
{
    t->on_data = fn;
    t->on_data_ctx = ctx;
}

/* The current member's data p[0..len) to the hook, then its end if done. */
static int feed(tar_stream *t, const uint8_t *p, size_t len, int done)
{
    int rc = 0;
    if (t->on_data && len)
        rc = t->on_data(t->on_data_ctx, t->i, p, len);
    if (t->on_data && done && !rc)
        rc = t->on_data(t->on_data_ctx, t->i, NULL, 0);
    return rc;
}

static size_t take(uint64_t left, size_t room)
{
    return left < room ? (size_t)left : room;
}

int tar_stream_read(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    tar_stream *t = ctx;
    size_t out = 0;
    int rc = 0;
    while (out < len && !rc) {
        if (t->i == t->n) { /* trailer: two zero blocks */
            size_t k = take(2 * TAR_BLOCK - t->pos, len - out);
            if (!k)
                break;
            memset(buf + out, 0, k);
            out += k;
            t->pos += k;
            continue;
        }
        const tar_member *m = &t->m[t->i];
        if (t->phase == 0) {
            if (t->pos == 0 && (rc = tar_header(t->dir, m->name, m->size, t->mtime_s, t->hdr))) {
                snprintf(t->err, sizeof(t->err), "%s/%s: name too long for tar", t->dir, m->name);
                break;
            }
            size_t k = take(TAR_BLOCK - t->pos, len - out);
            memcpy(buf + out, t->hdr + t->pos, k);
            out += k;
            if ((t->pos += k) == TAR_BLOCK) {
                t->phase = 1;
                t->pos = 0;
            }
        } else if (t->phase == 1 && m->data) {
            size_t k = take(m->size - t->pos, len - out);
            memcpy(buf + out, (const uint8_t *)m->data + t->pos, k);
            int done = (t->pos += k) == m->size;
            if ((rc = feed(t, buf + out, k, done)))
                break;
            out += k;
            if (done) {
                t->phase = 2;
                t->pos = 0;
            }
        } else if (t->phase == 1) {
            if (t->fd < 0 && (rc = t->vfs->open(t->vfs, m->path, PLAT_O_RDONLY, &t->fd))) {
                snprintf(t->err, sizeof(t->err), "open(%s): %s", m->path, strerror(-rc));
                break;
            }
            size_t k = take(m->size - t->pos, len - out), n = 0;
            if (k && (rc = t->vfs->pread(t->vfs, t->fd, buf + out, k, t->pos, &n))) {
                snprintf(t->err, sizeof(t->err), "pread(%s): %s", m->path, strerror(-rc));
                break;
            }
            if (n < k) {
                rc = -EIO;
                snprintf(t->err, sizeof(t->err), "%s: shorter than its %" PRIu64 " bytes",
                         m->path, m->size);
                break;
            }
            if ((rc = feed(t, buf + out, n, 0)))
                break;
            out += n;
            if ((t->pos += n) == m->size) {
                plat_stat st;
                if (t->vfs->fstat(t->vfs, t->fd, &st) == 0 && st.size != m->size) {
                    rc = -EIO;
                    snprintf(t->err, sizeof(t->err), "%s: size changed to %" PRIu64 " bytes",
                             m->path, st.size);
                    break;
                }
                if ((rc = feed(t, NULL, 0, 1)))
                    break;
                t->vfs->close(t->vfs, t->fd);
                t->fd = -1;
                t->phase = 2;
                t->pos = 0;
            }
        } else {
            size_t k = take(pad512(m->size) - t->pos, len - out);
            memset(buf + out, 0, k);
            out += k;
            if ((t->pos += k) == pad512(m->size)) {
                t->i++;
                t->phase = 0;
                t->pos = 0;
            }
        }
    }
    *got = out;
    return rc;
}
