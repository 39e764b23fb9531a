/*
 * objread.h -- reading an uploaded snapshot object (snapshot/FORMAT.md, "The
 * uploaded object") front to back from any byte source (a file, a pipe, a
 * fuzzer's buffer), member by member, without unpacking it anywhere: the
 * reading half of wire.h and tar.h.
 *
 * The codec is told by the first bytes, not a name: zstd (28 b5 2f fd, one
 * or more frames; libzstd), gzip (1f 8b, one or more members; zlib), else a
 * plain tar. Every member's SHA-256 is computed as it passes, for the
 * caller to compare with MANIFEST.json (which comes last).
 *
 * Refused, with a message naming the offset in the tar stream (after
 * decompression): a damaged or truncated compressed stream, a header whose
 * checksum or size is bad, a member that is not a regular file (directory
 * entries and pax headers of a re-packed object are passed over), a path
 * that is absolute, has "..", more than one directory or a name outside
 * [A-Za-z0-9._-], members from two directories, a stream that ends before
 * its two zero blocks or inside a member (whatever size a header declares,
 * nothing is allocated from it), and non-zero bytes after the end.
 *
 * Memory: about 200 KiB of buffers, plus zlib's 44 KiB or libzstd's
 * context with its window, which a stream may not ask above 16 MiB
 * (OBJREAD_ZSTD_WINDOW_LOG; `zstd --long` objects are refused).
 */
#ifndef EMBEDDB_OBJREAD_H
#define EMBEDDB_OBJREAD_H

#include "embeddb/sst_stream.h"
#include "embeddb/wire.h"

#include <stddef.h>
#include <stdint.h>

#define OBJREAD_ZSTD_WINDOW_LOG 24

typedef struct objread objread;

typedef struct objread_member {
    const char *dir;    /* the directory of every member: the snapshot NAME */
    const char *name;   /* its file name in dir */
    uint64_t size;      /* bytes of data */
    uint64_t offset;    /* its header's offset in the tar stream */
} objread_member;

/* A reader of the object src yields (src and ctx borrowed, must outlive
 * it). NULL on ENOMEM. */
objread *objread_new(ts_pull_fn src, void *ctx);
void objread_free(objread *r);

/*
 * The next member: 0 and *m (borrowed until the next call), 1 at the end
 * of the archive (the end blocks, the padding after them and the
 * compressed stream's own end all checked), -EBADMSG with objread_error,
 * or the source's negative code. Data of the previous member not read is
 * read (and hashed) first.
 */
int objread_next(objread *r, objread_member *m);
/* The current member's data: up to len bytes, *got = 0 at its end. The
 * signature of ts_pull_fn. 0, -EBADMSG (truncated, damaged stream) or the
 * source's code. */
int objread_read(void *r, uint8_t *buf, size_t len, size_t *got);
/* Reads (and hashes) what is left of the current member, so that its
 * SHA-256 is known. 0 or as objread_read. */
int objread_skip(objread *r);
/* The current member's SHA-256 (64 lower-case hex digits), once its data
 * has been read to the end (objread_skip); "" before. */
const char *objread_sha256(const objread *r);

/* Called with each finding of objread_check_manifest (msg borrowed). */
typedef void (*objread_report_fn)(void *ctx, const char *msg);
/*
 * Once objread_next returned 1: compares the members read with the
 * MANIFEST.json text (NUL-terminated, the object's own) -- the files it
 * lists, in its order, each with its byte count and SHA-256, then
 * MANIFEST.json, and nothing else. Reports each difference through fn and
 * returns how many there were (0: all match), or -ENOMEM.
 */
int objread_check_manifest(const objread *r, const char *json, objread_report_fn fn, void *ctx);
/* What the object turned out to be (known after the first objread_next). */
snap_codec objread_codec(const objread *r);
/* "" or what went wrong, with the offset. */
const char *objread_error(const objread *r);

#endif
