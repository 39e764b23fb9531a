/*
 * wire.h -- a snapshot as the object that goes on the wire: its tar stream
 * (tar.h), optionally compressed with zstd (libzstd) or gzip (zlib) while
 * it is read. The compressed bytes exist only in a fixed-size buffer on
 * their way to the socket: no compressed copy is ever written to flash or
 * held whole in memory.
 *
 * Length and hash: a PUT needs Content-Length and S3 the SHA-256 of the
 * payload before the first byte goes out, which a compressor only knows at
 * its end. The trade-off chosen: snap_object_measure makes one counting and
 * hashing pass (read the files, compress, hash, throw away) and the caller
 * keeps the result in STATE (object_* keys, snapshot/FORMAT.md); the
 * upload compresses again and sends. That costs a second compression of
 * every snapshot (CPU, and a second read of its files: reads do not wear
 * flash) instead of a copy on flash or a part buffer in memory. It relies
 * on the stream being deterministic: same files, codec, level and library
 * version -> same bytes. This file makes it so by feeding the compressor
 * in fixed-size pieces and draining it through its own buffer, whatever
 * sizes the reader asks for. A libzstd or zlib upgrade between measuring
 * and sending could still change the bytes, so a reader of the stream can
 * check them against what was measured before it hands on the last piece
 * (snap_object_check_end).
 *
 * Memory: zstd's context (ZSTD_estimateCStreamSize: about 1.3 MiB at
 * level 1, 3 MiB at 3, 8 MiB at 9 for a snapshot above a few MiB; less for
 * small ones, whose length is pledged so the window shrinks) or zlib's
 * (about 270 KiB), plus 192 KiB of buffers and the tar stream's.
 *
 * Not here: decompression (the CLI reads objects), the network.
 */
#ifndef EMBEDDB_WIRE_H
#define EMBEDDB_WIRE_H

#include "embeddb/plat.h"

#include <stddef.h>
#include <stdint.h>

typedef enum snap_codec {
    SNAP_CODEC_NONE = 0, /* the tar stream itself: NAME.tar */
    SNAP_CODEC_GZIP = 1, /* one gzip member (RFC 1952): NAME.tar.gz */
    SNAP_CODEC_ZSTD = 2, /* one zstd frame with its content size: NAME.tar.zst */
} snap_codec;

/* "none", "gzip", "zstd" -> codec: 0 or -EINVAL. */
int snap_codec_parse(const char *s, snap_codec *out);
const char *snap_codec_name(snap_codec c);
/* The object name's suffix: ".tar", ".tar.gz", ".tar.zst". */
const char *snap_codec_suffix(snap_codec c);
/* Its Content-Type: application/x-tar, application/gzip, application/zstd. */
const char *snap_codec_mime(snap_codec c);
/* The levels a codec takes (none: 0..0; gzip 1..9; zstd 1..19) and its
 * default (0, 6, 7). */
void snap_codec_levels(snap_codec c, int *lo, int *hi, int *dflt);

typedef struct snap_object snap_object;

/* Asked before every 128 KiB of input a compressed object takes in (and
 * between pieces of snap_object_measure): non-zero ends the read with
 * -ECANCELED, so a stop never waits for a compressor working through data
 * that shrinks to little output. */
typedef int (*snap_cancel_fn)(void *ctx);

/*
 * The object of snapshot `name` under root (its files read through vfs,
 * borrowed: it outlives the object) compressed with codec at level. The
 * tar stream must be tar_bytes long (STATE's), else -EBADMSG ("files
 * changed since sealing"). A compressed object's first piece is compressed
 * here, on the calling thread (where the compressor's workspace is
 * allocated: open on the thread whose malloc arena should hold it), and a
 * failure to read it is -EBADMSG like one of its MANIFEST.json. 0 with *out
 * owned by the caller (snap_object_free), or a negative code with err set.
 */
int snap_object_open(plat_vfs *vfs, const char *root, const char *name, int64_t mtime_s,
                     uint64_t tar_bytes, snap_codec codec, int level, snap_object **out,
                     char *err, size_t errlen);
/* Next up to len bytes of the object (*got = 0 only at its end); matches
 * http_body_fn. 0 or a negative code (snap_object_error says what). */
int snap_object_read(void *o, uint8_t *buf, size_t len, size_t *got);
/* Compressed codecs: 1 when every byte of the object has been read, else
 * 0. May compress ahead (into the object's own buffer) to find out; a
 * negative code on failure, -EINVAL for SNAP_CODEC_NONE (the tar stream
 * cannot look ahead; its hash was fixed by the seal). */
int snap_object_at_end(snap_object *o);
/* Sets o's cancel check (fn NULL: none, the default). */
void snap_object_set_cancel(snap_object *o, snap_cancel_fn fn, void *ctx);
/* "" or what the last failure was (a file, or the compressor). */
const char *snap_object_error(const snap_object *o);
void snap_object_free(snap_object *o);


/*
 * One counting and hashing pass over the object: *bytes and sha256 (64
 * lower-case hex digits and a NUL). 0, -ECANCELED when cancel said so, or
 * the failure (err set).
 */
int snap_object_measure(plat_vfs *vfs, const char *root, const char *name, int64_t mtime_s,
                        uint64_t tar_bytes, snap_codec codec, int level, snap_cancel_fn cancel,
                        void *cancel_ctx, uint64_t *bytes, char sha256[65], char *err,
                        size_t errlen);

/*
 * A reader's guard for sending a compressed object whose length and hash were
 * measured earlier: feed it each piece as it is read (before the piece is
 * handed on); when the object is at its end it compares the whole with
 * bytes/sha256 and returns -EBADMSG on a difference (more bytes than
 * measured fail at once), so the last piece of a changed object is never
 * sent and no server can take it as complete. With o NULL it checks a
 * range of the object instead (a multipart upload's part): the range ends
 * after `bytes`, whatever follows, and a piece of 0 bytes (the object
 * ended) before that is a difference.
 */
typedef struct snap_object_check snap_object_check;
snap_object_check *snap_object_check_new(uint64_t bytes, const char sha256[65]);
int snap_object_check_piece(snap_object_check *c, snap_object *o, const uint8_t *piece,
                            size_t len);
void snap_object_check_free(snap_object_check *c);

#endif
