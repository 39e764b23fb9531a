/*
 * tar.h -- a POSIX (ustar) tar stream of files on disk, produced on the fly
 * while it is sent: no archive is ever written to flash or held in memory.
 *
 * The stream is deterministic for given files (fixed mode 0644, uid/gid 0,
 * the caller's mtime), so its length and SHA-256 can be computed once when
 * a snapshot is sealed and still describe the bytes uploaded later. Each
 * member is stored as DIR/NAME with DIR in the ustar prefix field, so
 * `tar x` recreates the directory.
 *
 * Reading: tar_header_parse checks one header block; walking an archive
 * (and decompressing it) is objread.h's.
 *
 * Not here: compression, long names (DIR up to 155 bytes,
 * NAME up to 100), sparse or special files.
 */
#ifndef EMBEDDB_TAR_H
#define EMBEDDB_TAR_H

#include "embeddb/plat.h"

#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512

typedef struct tar_member {
    const char *path;   /* file to read (borrowed, must outlive the stream) */
    const char *name;   /* member name inside DIR (borrowed) */
    uint64_t size;      /* its size; the stream fails if the file differs */
    const void *data;   /* when not NULL: the member's size bytes, from memory
                           instead of path (borrowed) */
} tar_member;

/* Bytes the stream of these members will have (headers, data padded to
 * 512, two zero blocks at the end; n = 0: the two blocks alone). */
uint64_t tar_stream_len(const tar_member *m, size_t n);

/* Encodes the ustar header of one member into out. 0, or -ENAMETOOLONG
 * when dir or name do not fit. */
int tar_header(const char *dir, const char *name, uint64_t size, int64_t mtime_s,
               uint8_t out[TAR_BLOCK]);

/* Longest member path: ustar prefix, "/", name, NUL. */
#define TAR_PATH_MAX (155 + 1 + 100 + 1)

/*
 * Parses a header block (any ustar or old-style header, as tar writes
 * them): its checksum, its size (octal, or GNU base-256), its typeflag and
 * its path (prefix "/" name when prefix is set), NUL-terminated. 0, 1 when
 * the block is all zeros (an end-of-archive block), or -EBADMSG with *why a
 * static reason.
 */
int tar_header_parse(const uint8_t in[TAR_BLOCK], char path[TAR_PATH_MAX], uint64_t *size,
                     char *type, const char **why);

typedef struct tar_stream tar_stream;

/* A stream over m[0..n) (borrowed, must outlive it), members under dir.
 * Files are opened through vfs (borrowed) one at a time. NULL on ENOMEM. */
tar_stream *tar_stream_new(plat_vfs *vfs, const char *dir, const tar_member *m, size_t n,
                           int64_t mtime_s);
void tar_stream_free(tar_stream *t);

/*
 * Fills buf with the next up to len bytes (*got = 0 only at the end). The
 * signature matches http_body_fn. Returns 0 or a negative code: -errno from
 * the files, -EIO with tar_stream_error() naming the file when it is
 * shorter or longer than declared.
 */
int tar_stream_read(void *t, uint8_t *buf, size_t len, size_t *got);
const char *tar_stream_error(const tar_stream *t);

/*
 * A hook on member data, for a reader that wants each member apart (the
 * seal hashes every file while it hashes the stream). Called from
 * tar_stream_read with each piece of member i's data as it is copied into
 * the caller's buffer (data borrowed for the call), then once with data
 * NULL and len 0 when member i's data is complete and checked -- for an
 * empty member too, once the read has gone past its header. A non-zero
 * return ends that read with this code (tar_stream_error then says
 * nothing). fn NULL: no hook (the default).
 */
typedef int (*tar_data_fn)(void *ctx, size_t i, const uint8_t *data, size_t len);
void tar_stream_on_data(tar_stream *t, tar_data_fn fn, void *ctx);

#endif
