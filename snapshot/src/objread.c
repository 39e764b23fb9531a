/*
 * objread.c -- an uploaded object read front to back (contract in
 * embeddb/objread.h).
 *
 * Three layers, each pulling from the one below: the source's bytes into
 * `in`; the decoder (nothing, libzstd or zlib) into `out`; the tar walk,
 * which takes bytes out of `out` -- copied to the caller for member data,
 * or passed over in place (hashed all the same) when the caller moves on.
 * A stream that ends mid-frame (zstd) or mid-member (gzip) is truncated;
 * one that ends exactly at a frame's or member's end is whole.
 */
#include "embeddb/objread.h"

#include "embeddb/tar.h"
#include "sha256.h"
#include "snap_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define IN_LEN (128u << 10)
#define OUT_LEN (64u << 10)

struct objread {
    ts_pull_fn src;
    void *src_ctx;
    snap_codec codec;
    int started;            /* the codec is known */
    int src_eof;
    int mid;                /* the decoder is inside a frame / member */
    int gz_reset;           /* zlib: a member ended; reset before more input */
    int dec_eof;            /* the decoded stream ended (whole) */
    ZSTD_DCtx *zd;          /* owned */
    z_stream z;
    int z_live;             /* inflateInit2 succeeded */
    uint8_t *in, *out;      /* IN_LEN, OUT_LEN: owned */
    size_t in_pos, in_len, out_pos, out_len;
    uint64_t off;           /* bytes of the tar stream taken so far */
    /* the current member */
    int in_member;
    uint64_t data_left, pad_left, size;
    const char *name;       /* in path; NULL for pax headers and directories */
    sha256 h;
    int h_live;
    char sha[65];
    char path[TAR_PATH_MAX], dir[TAR_PATH_MAX];
    int have_dir;
    snap_file *seen;        /* every member whose data was read: name, size, hash */
    size_t n_seen, cap_seen;
    char err[512];
};

static int fail(objread *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(objread *r, int rc, const char *fmt, ...)
{
    va_list ap;
    if (!r->err[0]) {
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof(r->err), fmt, ap);
        va_end(ap);
    }
    return rc;
}

objread *objread_new(ts_pull_fn src, void *ctx)
{
    objread *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->src = src;
    r->src_ctx = ctx;
    r->in = malloc(IN_LEN);
    r->out = malloc(OUT_LEN);
    if (!r->in || !r->out) {
        objread_free(r);
        return NULL;
    }
    return r;
}

void objread_free(objread *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->zd);
    if (r->z_live)
        inflateEnd(&r->z);
    if (r->h_live)
        sha256_free(&r->h);
    free(r->in);
    free(r->out);
    free(r->seen);
    free(r);
}

const char *objread_error(const objread *r)
{
    return r->err;
}

const char *objread_sha256(const objread *r)
{
    return r->sha;
}

snap_codec objread_codec(const objread *r)
{
    return r->codec;
}

/* Refills `in` when it is empty; sets src_eof at the source's end. */
static int src_fill(objread *r)
{
    size_t got = 0;
    int rc;
    if (r->in_pos < r->in_len || r->src_eof)
        return 0;
    if ((rc = r->src(r->src_ctx, r->in, IN_LEN, &got)))
        return fail(r, rc, "reading the object: %s", strerror(-rc > 0 && -rc < 4096 ? -rc : EIO));
    r->in_pos = 0;
    r->in_len = got;
    r->src_eof = got == 0;
    return 0;
}

/* The first bytes tell the codec; sets up its decoder. */
static int start(objread *r)
{
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd}, gz_magic[2] = {0x1f, 0x8b};
    int rc;
    /* Up to 4 bytes, however the source splits them. */
    while (r->in_len < 4 && !r->src_eof) {
        size_t got = 0;
        if ((rc = r->src(r->src_ctx, r->in + r->in_len, IN_LEN - r->in_len, &got)))
            return fail(r, rc, "reading the object: %s", strerror(-rc > 0 && -rc < 4096 ? -rc : EIO));
        r->in_len += got;
        r->src_eof = got == 0;
    }
    r->started = 1;
    if (r->in_len == 0)
        return fail(r, -EBADMSG, "empty object");
    if (r->in_len >= 4 && !memcmp(r->in, zstd_magic, 4)) {
        r->codec = SNAP_CODEC_ZSTD;
        if (!(r->zd = ZSTD_createDCtx()))
            return fail(r, -ENOMEM, "out of memory");
        if (ZSTD_isError(ZSTD_DCtx_setParameter(r->zd, ZSTD_d_windowLogMax,
                                                OBJREAD_ZSTD_WINDOW_LOG)))
            return fail(r, -ENOMEM, "zstd: cannot bound the window");
        r->mid = 1;
    } else if (r->in_len >= 2 && !memcmp(r->in, gz_magic, 2)) {
        r->codec = SNAP_CODEC_GZIP;
        if (inflateInit2(&r->z, 15 + 16) != Z_OK) /* + 16: gzip wrapper only */
            return fail(r, -ENOMEM, "out of memory");
        r->z_live = 1;
        r->mid = 1;
    }
    return 0;
}

/* Decodes more into `out` (which is used up). Leaves out_len = 0 and sets
 * dec_eof at the end of a whole stream; -EBADMSG on a damaged or cut one. */
static int dec_fill(objread *r)
{
    int rc;
    r->out_pos = r->out_len = 0;
    while (!r->out_len && !r->dec_eof) {
        if ((rc = src_fill(r)))
            return rc;
        size_t avail = r->in_len - r->in_pos;
        if (!avail && r->src_eof) {
            if (r->mid)
                return fail(r, -EBADMSG, "%s stream truncated (it ends inside a %s)",
                            snap_codec_name(r->codec),
                            r->codec == SNAP_CODEC_ZSTD ? "frame" : "member");
            r->dec_eof = 1;
            break;
        }
        if (r->codec == SNAP_CODEC_NONE) {
            memcpy(r->out, r->in + r->in_pos, avail < OUT_LEN ? avail : OUT_LEN);
            r->out_len = avail < OUT_LEN ? avail : OUT_LEN;
            r->in_pos += r->out_len;
        } else if (r->codec == SNAP_CODEC_ZSTD) {
            ZSTD_inBuffer i = {r->in, r->in_len, r->in_pos};
            ZSTD_outBuffer o = {r->out, OUT_LEN, 0};
            size_t ret = ZSTD_decompressStream(r->zd, &o, &i);
            if (ZSTD_isError(ret))
                return fail(r, -EBADMSG, "zstd stream damaged: %s", ZSTD_getErrorName(ret));
            r->mid = ret != 0;
            r->in_pos = i.pos;
            r->out_len = o.pos;
        } else {
            if (r->gz_reset) { /* another member follows (gzip -d takes those) */
                if (inflateReset(&r->z) != Z_OK)
                    return fail(r, -EBADMSG, "gzip: cannot reset");
                r->gz_reset = 0;
                r->mid = 1;
            }
            r->z.next_in = r->in + r->in_pos;
            r->z.avail_in = (uInt)avail;
            r->z.next_out = r->out;
            r->z.avail_out = OUT_LEN;
            int zr = inflate(&r->z, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
                return fail(r, -EBADMSG, "gzip stream damaged: %s",
                            r->z.msg ? r->z.msg : "inflate failed");
            r->in_pos = r->in_len - r->z.avail_in;
            r->out_len = OUT_LEN - r->z.avail_out;
            if (zr == Z_STREAM_END) {
                r->mid = 0;
                r->gz_reset = 1;
            }
        }
    }
    return 0;
}

/* Takes up to len decoded bytes into dst (NULL: passes over them), hashing
 * them while a member's data is open. *got < len only at the stream's end. */
static int take(objread *r, uint8_t *dst, size_t len, int hash, size_t *got)
{
    int rc;
    *got = 0;
    while (*got < len) {
        if (r->out_pos == r->out_len && (rc = dec_fill(r)))
            return rc;
        if (!r->out_len)
            break;
        size_t n = r->out_len - r->out_pos;
        if (n > len - *got)
            n = len - *got;
        if (hash)
            sha256_update(&r->h, r->out + r->out_pos, n);
        if (dst)
            memcpy(dst + *got, r->out + r->out_pos, n);
        r->out_pos += n;
        *got += n;
        r->off += n;
    }
    return 0;
}

int objread_read(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    objread *r = ctx;
    uint8_t d[32];
    int rc;
    *got = 0;
    if (!r->in_member || r->err[0])
        return r->err[0] ? -EBADMSG : 0;
    if (len > r->data_left)
        len = (size_t)r->data_left;
    if ((rc = take(r, buf, len, 1, got)))
        return rc;
    r->data_left -= *got;
    if (*got < len)
        return fail(r, -EBADMSG, "offset %" PRIu64 ": tar stream truncated inside member "
                    "%s/%s", r->off, r->dir, r->name ? r->name : "");
    if (!r->data_left && !r->sha[0]) {
        if (sha256_finish(&r->h, d))
            return fail(r, -ENOMEM, "sha256 failed");
        sha256_hex(d, sizeof(d), r->sha);
        if (!r->name)
            return 0; /* a pax header or directory entry */
        if (r->n_seen == r->cap_seen) {
            size_t cap = r->cap_seen ? 2 * r->cap_seen : 16;
            snap_file *q = realloc(r->seen, cap * sizeof(*q));
            if (!q)
                return fail(r, -ENOMEM, "out of memory");
            r->seen = q;
            r->cap_seen = cap;
        }
        snap_file *f = &r->seen[r->n_seen++];
        snprintf(f->name, sizeof(f->name), "%s", r->name);
        f->bytes = r->size;
        memcpy(f->sha256, r->sha, sizeof(f->sha256));
    }
    return 0;
}

int objread_skip(objread *r)
{
    uint8_t dummy[1];
    size_t got = 0;
    int rc;
    while (r->data_left) {
        uint64_t before = r->data_left;
        size_t n = before < OUT_LEN ? (size_t)before : OUT_LEN;
        /* take() with dst NULL passes over bytes in place. */
        if ((rc = take(r, NULL, n, 1, &got)))
            return rc;
        r->data_left -= got;
        if (got < n)
            return fail(r, -EBADMSG, "offset %" PRIu64 ": tar stream truncated inside member "
                        "%s/%s", r->off, r->dir, r->name ? r->name : "");
        if (!r->data_left && (rc = objread_read(r, dummy, 0, &got)))
            return rc;
    }
    if (!r->sha[0] && (rc = objread_read(r, dummy, 0, &got))) /* an empty member */
        return rc;
    if ((rc = take(r, NULL, (size_t)r->pad_left, 0, &got)))
        return rc;
    if (got < r->pad_left)
        return fail(r, -EBADMSG, "offset %" PRIu64 ": tar stream truncated in a member's padding",
                    r->off);
    r->pad_left = 0;
    r->in_member = 0;
    return 0;
}

/* A path component of [A-Za-z0-9._-], at most max bytes, not . or .. */
static int name_ok(const char *s, size_t n, size_t max)
{
    if (!n || n > max || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* Splits r->path into its directory and name: "DIR/NAME" (a directory
 * entry "DIR/" gives an empty name), DIR the same for every member. */
static int split_path(objread *r, uint64_t at, const char **name)
{
    char *slash = strchr(r->path, '/');
    if (!slash || !name_ok(r->path, (size_t)(slash - r->path), 155) ||
        (slash[1] && !name_ok(slash + 1, strlen(slash + 1), sizeof(r->seen->name) - 1)))
        return fail(r, -EBADMSG, "offset %" PRIu64 ": tar member path '%.300s' is not DIR/NAME "
                    "of [A-Za-z0-9._-] (absolute, '..', nested or odd names are refused)",
                    at, r->path);
    *slash = 0;
    if (!r->have_dir) {
        memcpy(r->dir, r->path, strlen(r->path) + 1);
        r->have_dir = 1;
    } else if (strcmp(r->dir, r->path)) {
        return fail(r, -EBADMSG, "offset %" PRIu64 ": tar holds members of two directories "
                    "('%s', '%s')", at, r->dir, r->path);
    }
    *name = slash + 1;
    return 0;
}

/* After the first zero block: the second, then nothing but zeros to the
 * (whole) end of the stream. 1, or the failure. */
static int finish(objread *r)
{
    uint8_t blk[TAR_BLOCK];
    size_t got = 0;
    int rc;
    uint64_t at = r->off;
    if ((rc = take(r, blk, TAR_BLOCK, 0, &got)))
        return rc;
    if (got < TAR_BLOCK)
        return fail(r, -EBADMSG, "offset %" PRIu64 ": tar stream truncated (one end-of-archive "
                    "block of two)", at);
    do {
        for (size_t i = 0; i < got; i++)
            if (blk[i])
                return fail(r, -EBADMSG, "offset %" PRIu64 ": data after the end of the "
                            "archive", r->off - got + i);
        at = r->off;
        if ((rc = take(r, blk, TAR_BLOCK, 0, &got)))
            return rc;
    } while (got);
    return 1;
}

int objread_next(objread *r, objread_member *m)
{
    uint8_t blk[TAR_BLOCK];
    const char *why = NULL, *name = NULL;
    uint64_t size = 0, at;
    size_t got = 0;
    char type = 0;
    int rc;
    if (r->err[0])
        return -EBADMSG;
    if (!r->started && (rc = start(r)))
        return rc;
    for (;;) {
        if (r->in_member && (rc = objread_skip(r)))
            return rc;
        at = r->off;
        if ((rc = take(r, blk, TAR_BLOCK, 0, &got)))
            return rc;
        if (got < TAR_BLOCK)
            return fail(r, -EBADMSG, "offset %" PRIu64 ": %s", at,
                        at == 0 && got ? "not a snapshot object (neither zstd, gzip nor tar)"
                                       : "tar stream truncated (no end-of-archive blocks)");
        rc = tar_header_parse(blk, r->path, &size, &type, &why);
        if (rc == 1)
            return finish(r);
        if (rc)
            return fail(r, rc, "offset %" PRIu64 ": %s", at,
                        at == 0 && memcmp(blk + 257, "ustar", 5)
                            ? "not a snapshot object (neither zstd, gzip nor tar)" : why);
        if (size >= (1ull << 62))
            return fail(r, -EBADMSG, "offset %" PRIu64 ": tar member size %" PRIu64
                        " is not believable", at, size);
        if (r->h_live)
            sha256_free(&r->h);
        r->h_live = 1;
        if (sha256_init(&r->h))
            return fail(r, -ENOMEM, "out of memory");
        r->sha[0] = 0;
        r->in_member = 1;
        r->data_left = r->size = size;
        r->name = NULL;
        r->pad_left = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
        if (type == 'x' || type == 'g') /* pax headers of a re-packed object */
            continue;
        if ((rc = split_path(r, at, &name)))
            return rc;
        if (type == '5' && !name[0])
            continue;
        if ((type != '0' && type != 0) || !name[0])
            return fail(r, -EBADMSG, "offset %" PRIu64 ": tar member %s/%s of type '%c' is "
                        "not a regular file", at, r->dir, name, type >= 32 && type < 127 ? type : '?');
        r->name = name;
        *m = (objread_member){.dir = r->dir, .name = name, .size = size, .offset = at};
        return 0;
    }
}

static void report(objread_report_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(objread_report_fn fn, void *ctx, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (fn)
        fn(ctx, msg);
}

int objread_check_manifest(const objread *r, const char *json, objread_report_fn fn, void *ctx)
{
    snap_file *files = NULL;
    size_t nf = 0, i;
    int bad = 0, rc = snap_manifest_files(json, &files, &nf);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        report(fn, ctx, "%s/MANIFEST.json: no file list", r->dir);
        return 1;
    }
    for (i = 0; i < nf; i++) {
        const snap_file *m = i < r->n_seen ? &r->seen[i] : NULL;
        if (!m || strcmp(m->name, files[i].name))
            report(fn, ctx, "%s/%s: listed in MANIFEST.json as file %zu, the object has %s there",
                   r->dir, files[i].name, i + 1, m ? m->name : "nothing");
        else if (m->bytes != files[i].bytes)
            report(fn, ctx, "%s/%s: %" PRIu64 " bytes, MANIFEST.json says %" PRIu64, r->dir,
                   m->name, m->bytes, files[i].bytes);
        else if (strcmp(m->sha256, files[i].sha256))
            report(fn, ctx, "%s/%s: SHA-256 %s, MANIFEST.json says %s", r->dir, m->name,
                   m->sha256, files[i].sha256);
        else
            continue;
        bad++;
    }
    for (; i < r->n_seen; i++) {
        if (i == r->n_seen - 1 && !strcmp(r->seen[i].name, "MANIFEST.json"))
            continue;
        report(fn, ctx, "%s/%s: in the object but not where MANIFEST.json lists its files "
               "(MANIFEST.json last)", r->dir, r->seen[i].name);
        bad++;
    }
    free(files);
    return bad;
}
