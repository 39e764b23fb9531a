/*
 * readahead.h -- runs a body source (http_body_fn's shape) on a thread of
 * its own, a few pieces ahead of the reader, so that producing the bytes
 * (zstd at level 7 is the costliest step of an upload: about 40 MB/s of
 * input on the bench VM against the 31 MB/s a 100 Mbit/s link needs) and
 * sending them (encrypting, the socket) run on two cores instead of
 * taking turns on one.
 *
 * The reader sees exactly the bytes, the end and the error the source
 * gave, in order: a piece that came with an error is not handed on (the
 * source's "withhold the last piece if the stream is not the measured one"
 * holds). Nothing is read past the source's end or its first error.
 *
 * Threads and ownership: the producer thread is the only caller of the
 * source from readahead_new until readahead_free returns; the source's
 * state (its ctx) must not be touched by anyone else meanwhile, and is the
 * caller's again after readahead_free (which joins the thread). The reader
 * is one thread. A reader waiting for a piece waits for the source: cancel
 * the source (snap_object_set_cancel) to cut a wait short.
 *
 * Pace: a producer that filled the ring sleeps until at most n / 2
 * (rounded down) pieces are unread, then refills it: one wake-up per
 * n - n / 2 pieces, not one per piece, when the source is faster than the
 * reader (for n = 1, one per piece).
 *
 * Memory: n pieces of piece_len bytes, allocated once.
 */
#ifndef EMBEDDB_AGENT_READAHEAD_H
#define EMBEDDB_AGENT_READAHEAD_H

#include <stddef.h>
#include <stdint.h>

/* Fills up to len bytes of buf: 0 with *got (0 only at the end), or a
 * negative code. Called on the producer thread. */
typedef int (*readahead_fn)(void *ctx, uint8_t *buf, size_t len, size_t *got);

typedef struct readahead readahead;

/* Starts the producer over fn/ctx (borrowed: they outlive the readahead),
 * n >= 1 pieces of piece_len > 0 bytes. 0 with *out owned by the caller,
 * or -ENOMEM / -EINVAL / the pthread_create error (negated). */
int readahead_new(readahead_fn fn, void *ctx, size_t piece_len, unsigned n, readahead **out);
/* The next up to len bytes, as the source gave them; blocks until a piece
 * is ready. Matches http_body_fn (ra is a readahead *). After the end or
 * an error, every call repeats it. */
int readahead_read(void *ra, uint8_t *buf, size_t len, size_t *got);
/* Stops the producer (after the source call in progress returns), joins
 * it and frees everything. NULL is a no-op. */
void readahead_free(readahead *ra);

#endif
