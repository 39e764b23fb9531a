/*
 * manifest.h -- the MANIFEST codec: which SSTs are live and which WAL
 * segment is open. Live SST numbers are stored as inclusive ranges, so the
 * file stays a few dozen bytes however many flushes happened.
 */
#ifndef EMBEDDB_MANIFEST_H
#define EMBEDDB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

/* Most SSTs a manifest may name (bounds what a damaged file can make us
 * allocate). */
#define MAN_MAX_LIVE (1u << 22)

/* Encodes live[0..n) (ascending) and wal_no. *out is malloc'ed. */
int man_encode(const uint64_t *live, size_t n, uint64_t wal_no, uint8_t **out, size_t *len);
/* Decodes; *live is malloc'ed (caller frees). TS_ECORRUPT with *why set when
 * the bytes are not a valid manifest. */
int man_decode(const uint8_t *buf, size_t len, uint64_t *wal_no, uint64_t **live, size_t *n,
               const char **why);

#endif
