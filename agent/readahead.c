/*
 * readahead.c -- a body source run a few pieces ahead on its own thread
 * (contract in readahead.h).
 *
 * A ring of n pieces: the reader owns the `filled` pieces from `head` on
 * (it copies out of them without the lock; the producer never touches
 * them), the producer owns the next free one while it calls the source
 * (without the lock, so a slow source never blocks the reader's progress
 * through what is ready). The source's end or first error is kept apart
 * from the ring (`done`, `done_rc`) and reported once the ring is drained.
 * One mutex and one condition variable guard the indices and flags.
 *
 * Wake-ups: a producer that filled the ring sleeps until at most n / 2
 * pieces are unread, not until one piece is free: the reader wakes it once
 * per n - n / 2 pieces rather than once per piece (a wake-up is a futex
 * call and, on a VM, an interrupt to the other CPU; the kernel's share of
 * the uploading thread's samples, mostly such wake-ups here and in the
 * send queue, was 16.5 % with one per piece and 8.4 % without).
 */
#include "readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct readahead {
    readahead_fn fn;
    void *ctx;
    size_t piece_len;
    unsigned n;
    uint8_t *mem;      /* n pieces */
    size_t *len;       /* bytes in each filled piece */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a piece filled or drained, the end, or stop */
    unsigned head;     /* the reader's piece */
    unsigned filled;   /* pieces ready for the reader, from head on */
    size_t off;        /* bytes of head already read */
    int done;          /* the source ended (done_rc 0) or failed */
    int done_rc;
    int stop;          /* readahead_free: no more source calls */
    pthread_t thread;
};

static void *produce(void *arg)
{
    readahead *ra = arg;
    pthread_mutex_lock(&ra->mu);
    for (;;) {
        if (ra->filled == ra->n) /* full: sleep until at most n / 2 are unread */
            while (!ra->stop && ra->filled > ra->n / 2)
                pthread_cond_wait(&ra->cv, &ra->mu);
        if (ra->stop)
            break;
        unsigned slot = (ra->head + ra->filled) % ra->n;
        pthread_mutex_unlock(&ra->mu);
        size_t got = 0;
        int rc = ra->fn(ra->ctx, ra->mem + (size_t)slot * ra->piece_len, ra->piece_len, &got);
        if (!rc && got > ra->piece_len)
            rc = -EOVERFLOW; /* a source that overran its buffer: never hand that on */
        pthread_mutex_lock(&ra->mu);
        if (rc || !got) {
            ra->done = 1;
            ra->done_rc = rc;
            pthread_cond_broadcast(&ra->cv);
            break;
        }
        ra->len[slot] = got;
        ra->filled++;
        pthread_cond_broadcast(&ra->cv);
    }
    pthread_mutex_unlock(&ra->mu);
    return NULL;
}

int readahead_new(readahead_fn fn, void *ctx, size_t piece_len, unsigned n, readahead **out)
{
    readahead *ra = NULL;
    int rc = -EINVAL;
    *out = NULL;
    if (!fn || !piece_len || !n || piece_len > SIZE_MAX / n)
        goto out;
    rc = -ENOMEM;
    if (!(ra = calloc(1, sizeof(*ra))) || !(ra->mem = malloc(piece_len * n)) ||
        !(ra->len = calloc(n, sizeof(*ra->len))))
        goto out;
    ra->fn = fn;
    ra->ctx = ctx;
    ra->piece_len = piece_len;
    ra->n = n;
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->cv, NULL);
    if ((rc = pthread_create(&ra->thread, NULL, produce, ra))) {
        rc = -rc;
        pthread_cond_destroy(&ra->cv);
        pthread_mutex_destroy(&ra->mu);
        goto out;
    }
    *out = ra;
    ra = NULL;
out:
    if (ra) {
        free(ra->len);
        free(ra->mem);
        free(ra);
    }
    return rc;
}

int readahead_read(void *vra, uint8_t *buf, size_t len, size_t *got)
{
    readahead *ra = vra;
    int rc = 0;
    *got = 0;
    if (!len)
        return 0;
    pthread_mutex_lock(&ra->mu);
    while (!ra->filled && !ra->done)
        pthread_cond_wait(&ra->cv, &ra->mu);
    if (!ra->filled) {
        rc = ra->done_rc;
        pthread_mutex_unlock(&ra->mu);
        return rc;
    }
    size_t k = ra->len[ra->head] - ra->off;
    const uint8_t *src = ra->mem + (size_t)ra->head * ra->piece_len + ra->off;
    pthread_mutex_unlock(&ra->mu);
    if (k > len)
        k = len;
    memcpy(buf, src, k); /* the reader's piece: the producer keeps off it */
    *got = k;
    pthread_mutex_lock(&ra->mu);
    ra->off += k;
    if (ra->off == ra->len[ra->head]) {
        ra->off = 0;
        ra->head = (ra->head + 1) % ra->n;
        /* a producer waits only on a full ring, which passes n / 2 on
         * its way down: it is woken there, and the wake-up is not lost */
        if (--ra->filled == ra->n / 2)
            pthread_cond_broadcast(&ra->cv);
    }
    pthread_mutex_unlock(&ra->mu);
    return rc;
}

void readahead_free(readahead *ra)
{
    if (!ra)
        return;
    pthread_mutex_lock(&ra->mu);
    ra->stop = 1;
    pthread_cond_broadcast(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    pthread_join(ra->thread, NULL);
    pthread_cond_destroy(&ra->cv);
    pthread_mutex_destroy(&ra->mu);
    free(ra->len);
    free(ra->mem);
    free(ra);
}
