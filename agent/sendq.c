/*
 * sendq.c -- the bounded record queue and its sender thread (contract in
 * sendq.h).
 *
 * A ring of SENDQ_BYTES bytes under one mutex, with monotonic counters:
 * the producer copies bytes in at `in` and, when a piece ends a record,
 * notes the record's end and credit (rec[], at most SENDQ_RECORDS); the
 * sender sends [out, in) without the lock (the producer never writes
 * there) and, with the lock again, advances `out` and retires the records
 * that ended. `halt` (0, SENDQ_SPOKE or a -errno) stops the sender until
 * sendq_resume, or for good for an error; `quit` ends it. The stop flag is
 * linked to the caller's cancel, so either ends the sender's wait in
 * plat_sock_send at once.
 */
#include "sendq.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sendq {
    int fd;
    uint64_t io_timeout_ms;
    plat_cancel *stop;      /* fired by sendq_stop; linked to the caller's cancel */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t changed; /* in, out, halt, flushing or quit changed */
    /* guarded by mu: */
    uint64_t in, out;       /* bytes queued and sent, ever (ring offset: % SENDQ_BYTES) */
    struct {
        uint64_t end, credit;
    } rec[SENDQ_RECORDS];   /* queued records, oldest at rhead */
    size_t rhead, rn, max_rn;
    int watch, halt, flushing, quit;
    int idle;               /* the sender waits without a clock */
    uint64_t sent_credit;
    uint8_t ring[SENDQ_BYTES];
};

/* Sends ring bytes [start, start + len) (contiguous in the ring, within
 * [out, in)) from *off on; 0 when all went, else the halt reason. Called
 * without the lock: the producer writes only outside [out, in). */
static int send_span(sendq *q, uint64_t start, size_t len, size_t *off, int watch)
{
    const uint8_t *p = q->ring + start % SENDQ_BYTES;
    uint64_t by_ns = plat_mono_ns() + q->io_timeout_ms * 1000000u;
    int rc = 0;
    while (*off < len) {
        uint64_t now = plat_mono_ns();
        size_t n = 0;
        rc = plat_sock_send(q->fd, p + *off, len - *off,
                            by_ns > now ? (by_ns - now + 999999u) / 1000000u : 0,
                            watch ? PLAT_SEND_UNTIL_READABLE : 0, q->stop, &n);
        if (rc == -EAGAIN)
            rc = SENDQ_SPOKE;
        if (rc)
            break;
        *off += n;
        by_ns = plat_mono_ns() + q->io_timeout_ms * 1000000u; /* progress */
    }
    return rc;
}

/* With the lock: enough for an idle sender to start at once. */
static int sender_has_work(const sendq *q)
{
    return q->in > q->out && (q->rn >= SENDQ_KICK || q->flushing || q->in - q->out >= SENDQ_BYTES);
}

/* With the lock: waits until there is something to send (0) or quit (1).
 * Fewer than SENDQ_KICK records wait at most SENDQ_KICK_MS after the
 * sender's last send ended, so a slow producer (upload.max_rate) delays
 * its bytes by no more than that. The clock starts when a send ends, so a
 * steady producer wakes the sender once per SENDQ_KICK records; only a
 * sender whose clock ran out on an empty queue sleeps without one
 * (`idle`), and the next record wakes it to start it. */
static int sender_wait(sendq *q)
{
    struct timespec until = plat_mono_after_ms(SENDQ_KICK_MS);
    int late = 0;
    for (;;) {
        if (q->quit)
            return 1;
        if (!q->halt && (sender_has_work(q) || (late && q->in > q->out)))
            return 0;
        if (q->halt || (late && q->in == q->out)) {
            q->idle = 1;
            pthread_cond_wait(&q->changed, &q->mu);
            q->idle = 0;
            until = plat_mono_after_ms(SENDQ_KICK_MS);
            late = 0;
            continue;
        }
        late = pthread_cond_timedwait(&q->changed, &q->mu, &until) == ETIMEDOUT;
    }
}

static void *sender(void *arg)
{
    sendq *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!sender_wait(q)) {
        uint64_t start = q->out, end = q->in, sent = 0;
        int watch = q->watch, rc = 0;
        pthread_mutex_unlock(&q->mu);
        /* all that was queued: up to the ring's end, then from its start */
        while (!rc && start + sent < end) {
            uint64_t at = start + sent;
            size_t wrap = SENDQ_BYTES - (size_t)(at % SENDQ_BYTES), off = 0;
            size_t len = end - at < wrap ? (size_t)(end - at) : wrap;
            rc = send_span(q, at, len, &off, watch);
            sent += off;
        }
        pthread_mutex_lock(&q->mu);
        q->out += sent;
        while (q->rn && q->rec[q->rhead].end <= q->out) {
            q->sent_credit += q->rec[q->rhead].credit;
            q->rhead = (q->rhead + 1) % SENDQ_RECORDS;
            q->rn--;
        }
        if (rc)
            q->halt = rc;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int sendq_start(int fd, uint64_t io_timeout_ms, const plat_cancel *cancel, int watch,
                sendq **out)
{
    sendq *q = calloc(1, sizeof(*q));
    int rc = -ENOMEM, mu = 0, cv = 0;
    *out = NULL;
    if (!q)
        goto out;
    q->fd = fd;
    q->io_timeout_ms = io_timeout_ms;
    q->watch = watch;
    if ((rc = plat_cancel_new_linked(cancel, &q->stop)))
        goto out;
    if ((rc = -pthread_mutex_init(&q->mu, NULL)))
        goto out;
    mu = 1;
    if ((rc = -plat_cond_init_mono(&q->changed)))
        goto out;
    cv = 1;
    if ((rc = -pthread_create(&q->thread, NULL, sender, q)))
        goto out;
    *out = q;
    q = NULL;
out:
    if (q) {
        if (cv)
            pthread_cond_destroy(&q->changed);
        if (mu)
            pthread_mutex_destroy(&q->mu);
        plat_cancel_free(q->stop);
        free(q);
    }
    return rc;
}

int sendq_push(sendq *q, const uint8_t *buf, size_t len, uint64_t *credit, size_t *taken)
{
    int rc;
    *taken = 0;
    pthread_mutex_lock(&q->mu);
    while (!q->halt && (q->in - q->out == SENDQ_BYTES || q->rn == SENDQ_RECORDS))
        pthread_cond_wait(&q->changed, &q->mu);
    if (!(rc = q->halt)) {
        int was_empty = q->in == q->out;
        size_t at = (size_t)(q->in % SENDQ_BYTES), room = SENDQ_BYTES - (size_t)(q->in - q->out);
        size_t n = len < room ? len : room, first = n < SENDQ_BYTES - at ? n : SENDQ_BYTES - at;
        /* [in, in + n) is free ring space: the sender reads only [out, in) */
        memcpy(q->ring + at, buf, first);
        memcpy(q->ring, buf + first, n - first);
        q->in += n;
        *taken = n;
        if (n == len) { /* the end of a record */
            size_t i = (q->rhead + q->rn) % SENDQ_RECORDS;
            q->rec[i].end = q->in;
            q->rec[i].credit = *credit;
            *credit = 0;
            if (++q->rn > q->max_rn)
                q->max_rn = q->rn;
        }
        if ((was_empty && q->idle) || sender_has_work(q)) /* it starts its clock, or sends */
            pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int sendq_flush(sendq *q)
{
    int rc;
    pthread_mutex_lock(&q->mu);
    q->flushing = 1;
    pthread_cond_broadcast(&q->changed);
    while (!q->halt && q->in > q->out)
        pthread_cond_wait(&q->changed, &q->mu);
    q->flushing = 0; /* the sender is waiting for more, or halted */
    rc = q->halt;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void sendq_resume(sendq *q, int watch)
{
    pthread_mutex_lock(&q->mu);
    q->watch = watch;
    if (q->halt == SENDQ_SPOKE)
        q->halt = 0;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

uint64_t sendq_stop(sendq *q, size_t *max_depth)
{
    uint64_t sent = 0;
    if (!q)
        return 0;
    pthread_mutex_lock(&q->mu);
    q->quit = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
    plat_cancel_fire(q->stop); /* ends a send(2) wait at once */
    pthread_join(q->thread, NULL);
    sent = q->sent_credit;
    if (max_depth)
        *max_depth = q->max_rn;
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->mu);
    plat_cancel_free(q->stop);
    free(q);
    return sent;
}
