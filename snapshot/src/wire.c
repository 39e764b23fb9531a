/*
 * wire.c -- a snapshot's object as sent: the tar stream, compressed on the
 * fly with libzstd or zlib (contract and the length/hash trade-off in
 * embeddb/wire.h).
 *
 * Determinism is by construction: the compressor is always fed IN_CHUNK
 * bytes at a time from the tar stream (fewer only at its end) and always
 * writes into the object's own OUT_CHUNK buffer, so the calls it sees, and
 * thus the bytes it makes, do not depend on how a reader asks for them.
 */
#include "embeddb/wire.h"

#include "embeddb/snapshot.h"
#include "sha256.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define IN_CHUNK (128u << 10)
#define OUT_CHUNK (64u << 10)

struct snap_object {
    snap_codec codec;
    tar_member *m;         /* owned (snap_members) */
    tar_stream *tar;       /* owned */
    ZSTD_CCtx *zc;         /* zstd: owned */
    z_stream z;            /* gzip */
    int z_live;            /* deflateInit2 succeeded */
    uint8_t *in, *out;     /* IN_CHUNK, OUT_CHUNK (compressed codecs) */
    size_t in_pos, in_len; /* unconsumed input: in[in_pos..in_len) */
    size_t out_pos, out_len;
    int src_end;           /* the tar stream has ended */
    int done;              /* the compressor has written its last byte */
    snap_cancel_fn cancel; /* optional, asked before each input piece */
    void *cancel_ctx;
    char error[256];
};

int snap_codec_parse(const char *s, snap_codec *out)
{
    static const snap_codec all[] = {SNAP_CODEC_NONE, SNAP_CODEC_GZIP, SNAP_CODEC_ZSTD};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (!strcmp(s, snap_codec_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -EINVAL;
}

const char *snap_codec_name(snap_codec c)
{
    return c == SNAP_CODEC_GZIP ? "gzip" : c == SNAP_CODEC_ZSTD ? "zstd" : "none";
}

const char *snap_codec_suffix(snap_codec c)
{
    return c == SNAP_CODEC_GZIP ? ".tar.gz" : c == SNAP_CODEC_ZSTD ? ".tar.zst" : ".tar";
}

const char *snap_codec_mime(snap_codec c)
{
    return c == SNAP_CODEC_GZIP   ? "application/gzip"
           : c == SNAP_CODEC_ZSTD ? "application/zstd"
                                  : "application/x-tar";
}

void snap_codec_levels(snap_codec c, int *lo, int *hi, int *dflt)
{
    /* zstd above 19 is its "ultra" range: windows of 64 MiB and more, not
     * for a board. */
    *lo = c == SNAP_CODEC_NONE ? 0 : 1;
    *hi = c == SNAP_CODEC_GZIP ? 9 : c == SNAP_CODEC_ZSTD ? 19 : 0;
    *dflt = c == SNAP_CODEC_GZIP ? 6 : c == SNAP_CODEC_ZSTD ? 7 : 0;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int produce(snap_object *o);

void snap_object_free(snap_object *o)
{
    if (!o)
        return;
    tar_stream_free(o->tar);
    free(o->m);
    ZSTD_freeCCtx(o->zc);
    if (o->z_live)
        deflateEnd(&o->z);
    free(o->in);
    free(o->out);
    free(o);
}

int snap_object_open(plat_vfs *vfs, const char *root, const char *name, int64_t mtime_s,
                     uint64_t tar_bytes, snap_codec codec, int level, snap_object **out,
                     char *err, size_t errlen)
{
    snap_object *o = calloc(1, sizeof(*o));
    size_t n = 0;
    int lo, hi, dflt, rc = 0;
    *out = NULL;
    if (!o)
        return fail(err, errlen, "out of memory"), -ENOMEM;
    o->codec = codec;
    snap_codec_levels(codec, &lo, &hi, &dflt);
    if (codec != SNAP_CODEC_NONE && codec != SNAP_CODEC_GZIP && codec != SNAP_CODEC_ZSTD) {
        fail(err, errlen, "unknown codec %d", (int)codec);
        rc = -EINVAL;
        goto out;
    }
    if (level < lo || level > hi) {
        fail(err, errlen, "%s level %d: expected %d..%d", snap_codec_name(codec), level, lo, hi);
        rc = -EINVAL;
        goto out;
    }
    if ((rc = snap_members(vfs, root, name, &o->m, &n))) {
        fail(err, errlen, "%s: cannot read its MANIFEST.json: %s", name, ts_strerror(rc));
        rc = -EBADMSG;
        goto out;
    }
    uint64_t len = tar_stream_len(o->m, n);
    if (len != tar_bytes) {
        fail(err, errlen, "%s: files changed since sealing (tar of %" PRIu64 " bytes, STATE "
             "says %" PRIu64 ")", name, len, tar_bytes);
        rc = -EBADMSG;
        goto out;
    }
    if (!(o->tar = tar_stream_new(vfs, name, o->m, n, mtime_s))) {
        rc = -ENOMEM;
        goto out;
    }
    if (codec != SNAP_CODEC_NONE &&
        (!(o->in = malloc(IN_CHUNK)) || !(o->out = malloc(OUT_CHUNK)))) {
        rc = -ENOMEM;
        goto out;
    }
    if (codec == SNAP_CODEC_ZSTD) {
        size_t r;
        if (!(o->zc = ZSTD_createCCtx())) {
            rc = -ENOMEM;
            goto out;
        }
        /* The pledged size goes into the frame header (zstd -l shows it)
         * and lets zstd size its window down for a small snapshot. */
        if (ZSTD_isError(r = ZSTD_CCtx_setParameter(o->zc, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(r = ZSTD_CCtx_setParameter(o->zc, ZSTD_c_checksumFlag, 1)) ||
            ZSTD_isError(r = ZSTD_CCtx_setPledgedSrcSize(o->zc, len))) {
            fail(err, errlen, "zstd: %s", ZSTD_getErrorName(r));
            rc = -EINVAL;
            goto out;
        }
    } else if (codec == SNAP_CODEC_GZIP) {
        /* windowBits 15 + 16: a gzip wrapper (mtime 0, no name), so the
         * bytes depend on the tar alone. */
        int zr = deflateInit2(&o->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (zr != Z_OK) {
            rc = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
            goto out;
        }
        o->z_live = 1;
    }
    /* The first piece, here: zstd allocates its workspace (about 9 MiB at
     * level 7) when it first compresses, and glibc takes that from the
     * calling thread's malloc arena. On the opener's thread it goes where
     * the measuring pass's went before it, not into a new arena of the
     * thread that reads the object (the agent's readahead), where it would
     * stay resident beside that one (an upload's peak RSS: 21 -> 29 MiB).
     * No cancel check is set yet: this is one input piece or two. */
    if (codec != SNAP_CODEC_NONE && (rc = produce(o))) {
        fail(err, errlen, "%s: reading its %s object: %s", name, snap_codec_name(codec),
             o->error);
        if (rc != -ENOMEM) /* out of memory is retried, not the snapshot's fault */
            rc = -EBADMSG;
    }
out:
    if (rc == -ENOMEM)
        fail(err, errlen, "%s: out of memory opening its object", name);
    if (rc)
        snap_object_free(o);
    else
        *out = o;
    return rc;
}

/* Refills o->out from the compressor (feeding it IN_CHUNK pieces of the
 * tar stream). 0 with out_len > 0 or done set, or a negative code. */
static int produce(snap_object *o)
{
    o->out_pos = o->out_len = 0;
    while (!o->out_len && !o->done) {
        if (o->in_pos == o->in_len && !o->src_end) {
            size_t got = 0, fill = 0;
            int rc;
            /* Highly compressible data makes little output from much
             * input: a stop is looked for per input piece, not per output. */
            if (o->cancel && o->cancel(o->cancel_ctx)) {
                snprintf(o->error, sizeof(o->error), "cancelled");
                return -ECANCELED;
            }
            /* Exactly IN_CHUNK unless the stream ends: tar_stream_read may
             * stop short at a member boundary. */
            while (fill < IN_CHUNK) {
                if ((rc = tar_stream_read(o->tar, o->in + fill, IN_CHUNK - fill, &got))) {
                    snprintf(o->error, sizeof(o->error), "%s", tar_stream_error(o->tar)[0]
                             ? tar_stream_error(o->tar) : strerror(rc < 0 ? -rc : rc));
                    return rc < 0 ? rc : -EIO;
                }
                if (!got) {
                    o->src_end = 1;
                    break;
                }
                fill += got;
            }
            o->in_pos = 0;
            o->in_len = fill;
        }
        if (o->codec == SNAP_CODEC_ZSTD) {
            ZSTD_inBuffer in = {o->in, o->in_len, o->in_pos};
            ZSTD_outBuffer out = {o->out, OUT_CHUNK, 0};
            int last = o->src_end && o->in_pos == o->in_len;
            size_t r = ZSTD_compressStream2(o->zc, &out, &in, last ? ZSTD_e_end
                                                                   : ZSTD_e_continue);
            if (ZSTD_isError(r)) {
                snprintf(o->error, sizeof(o->error), "zstd: %s", ZSTD_getErrorName(r));
                return -EIO;
            }
            o->in_pos = in.pos;
            o->out_len = out.pos;
            if (last && r == 0)
                o->done = 1;
        } else {
            o->z.next_in = o->in + o->in_pos;
            o->z.avail_in = (uInt)(o->in_len - o->in_pos);
            o->z.next_out = o->out;
            o->z.avail_out = OUT_CHUNK;
            int last = o->src_end;
            int zr = deflate(&o->z, last ? Z_FINISH : Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                snprintf(o->error, sizeof(o->error), "zlib: deflate returned %d", zr);
                return -EIO;
            }
            o->in_pos = o->in_len - o->z.avail_in;
            o->out_len = OUT_CHUNK - o->z.avail_out;
            if (zr == Z_STREAM_END)
                o->done = 1;
        }
    }
    return 0;
}

int snap_object_read(void *vo, uint8_t *buf, size_t len, size_t *got)
{
    snap_object *o = vo;
    size_t have = 0;
    int rc;
    *got = 0;
    if (o->codec == SNAP_CODEC_NONE) {
        if ((rc = tar_stream_read(o->tar, buf, len, got)))
            snprintf(o->error, sizeof(o->error), "%s", tar_stream_error(o->tar));
        else if (!*got)
            o->done = 1;
        return rc;
    }
    while (have < len) {
        if (o->out_pos == o->out_len) {
            if (o->done)
                break;
            if ((rc = produce(o)))
                return rc;
            continue;
        }
        size_t k = o->out_len - o->out_pos;
        if (k > len - have)
            k = len - have;
        memcpy(buf + have, o->out + o->out_pos, k);
        o->out_pos += k;
        have += k;
    }
    *got = have;
    return 0;
}

int snap_object_at_end(snap_object *o)
{
    if (o->codec == SNAP_CODEC_NONE)
        return -EINVAL; /* the tar stream cannot look ahead; its hash is the seal's */
    if (o->out_pos == o->out_len && !o->done) {
        int rc = produce(o);
        if (rc)
            return rc;
    }
    return o->out_pos == o->out_len && o->done;
}

void snap_object_set_cancel(snap_object *o, snap_cancel_fn fn, void *ctx)
{
    o->cancel = fn;
    o->cancel_ctx = ctx;
}

const char *snap_object_error(const snap_object *o)
{
    return o->error;
}

int snap_object_measure(plat_vfs *vfs, const char *root, const char *name, int64_t mtime_s,
                        uint64_t tar_bytes, snap_codec codec, int level, snap_cancel_fn cancel,
                        void *cancel_ctx, uint64_t *bytes, char sha256_out[65], char *err,
                        size_t errlen)
{
    snap_object *o = NULL;
    uint8_t *buf = malloc(OUT_CHUNK), sum[32];
    uint64_t total = 0;
    sha256 h;
    int rc, hrc = sha256_init(&h);
    if (!buf || hrc) {
        rc = -ENOMEM;
        fail(err, errlen, "out of memory");
        goto out;
    }
    if ((rc = snap_object_open(vfs, root, name, mtime_s, tar_bytes, codec, level, &o, err,
                               errlen)))
        goto out;
    snap_object_set_cancel(o, cancel, cancel_ctx);
    for (;;) {
        size_t got = 0;
        if (cancel && cancel(cancel_ctx)) {
            rc = -ECANCELED;
            fail(err, errlen, "%s: measuring its %s object: cancelled", name,
                 snap_codec_name(codec));
            goto out;
        }
        if ((rc = snap_object_read(o, buf, OUT_CHUNK, &got))) {
            fail(err, errlen, "%s: %s its %s object: %s", name,
                 rc == -ECANCELED ? "measuring" : "reading", snap_codec_name(codec),
                 snap_object_error(o));
            goto out;
        }
        if (!got)
            break;
        sha256_update(&h, buf, got);
        total += got;
    }
    if ((rc = sha256_finish(&h, sum))) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    sha256_hex(sum, sizeof(sum), sha256_out);
    *bytes = total;
out:
    sha256_free(&h);
    snap_object_free(o);
    free(buf);
    return rc;
}

struct snap_object_check {
    uint64_t want_bytes, seen;
    int verdict;          /* 1: the end was seen and matched; -EBADMSG: it did not */
    char want_sha[65];
    sha256 h;
};

snap_object_check *snap_object_check_new(uint64_t bytes, const char sha[65])
{
    snap_object_check *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (sha256_init(&c->h)) {
        sha256_free(&c->h);
        free(c);
        return NULL;
    }
    c->want_bytes = bytes;
    snprintf(c->want_sha, sizeof(c->want_sha), "%s", sha);
    return c;
}

int snap_object_check_piece(snap_object_check *c, snap_object *o, const uint8_t *piece,
                            size_t len)
{
    uint8_t sum[32];
    char hex[65];
    int end;
    if (c->verdict)
        return len ? -EBADMSG : c->verdict == 1 ? 0 : c->verdict; /* nothing comes after the end */
    if (len > c->want_bytes - c->seen)
        return c->verdict = -EBADMSG;
    sha256_update(&c->h, piece, len);
    c->seen += len;
    if (!o) /* a range: it ends at its length, or short where the object did */
        end = c->seen == c->want_bytes || !len;
    else if ((end = snap_object_at_end(o)) < 0)
        return end;
    if (!end && c->seen == c->want_bytes)
        return c->verdict = -EBADMSG; /* more is coming: longer than measured */
    if (!end)
        return 0;
    if (c->seen != c->want_bytes || sha256_finish(&c->h, sum))
        return c->verdict = -EBADMSG;
    sha256_hex(sum, sizeof(sum), hex);
    c->verdict = strcmp(hex, c->want_sha) ? -EBADMSG : 1;
    return c->verdict == 1 ? 0 : c->verdict;
}

void snap_object_check_free(snap_object_check *c)
{
    if (!c)
        return;
    sha256_free(&c->h);
    free(c);
}
