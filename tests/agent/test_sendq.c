/*
 * test_sendq.c -- the body's record queue and sender thread (agent/sendq.h)
 * over a real AF_UNIX socket pair: every byte arrives in order and only
 * whole records count as sent; the queue's bound is reached and never
 * passed against a peer that stops reading; a stalled sender ends at
 * io_timeout, at the caller's cancel, or at once on sendq_stop; a peer that
 * speaks halts it until the producer resumes it. The HTTPS side (nginx, a
 * stalled TLS server) is in tests/integration/test_http_tls.py.
 */
#include "sendq.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define REC 16413 /* a 16 KiB ChaCha20-Poly1305 record: 5 + 16384 + 16 (+ 8 for GCM) */

/* fds[0]: ours (non-blocking, small send buffer, as plat_tcp_connect's
 * sockets are non-blocking); fds[1]: the peer's. */
static void pair(int fds[2])
{
    int small = 4096;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
    assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
}

static uint8_t byte_at(uint64_t i)
{
    return (uint8_t)(i * 2654435761u >> 13);
}

/* Pushes one record of len bytes carrying `credit`, piece by piece as
 * mbedTLS would. 0 or the first error. */
static int push_record(sendq *q, uint64_t *pos, size_t len, uint64_t credit)
{
    uint8_t *buf = malloc(len);
    size_t off = 0, taken;
    int rc = 0;
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = byte_at(*pos + i);
    while (off < len && !(rc = sendq_push(q, buf + off, len - off, &credit, &taken))) {
        assert_true(taken > 0);
        off += taken;
    }
    if (!rc)
        assert_int_equal(credit, 0); /* the record's end took it */
    *pos += off;
    free(buf);
    return rc;
}

typedef struct drain {
    int fd;
    uint64_t got;
    int bad;
} drain;

static void *drainer(void *arg)
{
    drain *d = arg;
    uint8_t buf[8192];
    ssize_t n;
    while ((n = read(d->fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++, d->got++)
            d->bad |= buf[i] != byte_at(d->got);
    return NULL;
}

/* Closes our end, waits for the drainer to read the rest, and checks it
 * got exactly the pos bytes pushed, in order. */
static void drain_end(int fds[2], pthread_t t, const drain *d, uint64_t pos)
{
    close(fds[0]);
    pthread_join(t, NULL);
    close(fds[1]);
    assert_int_equal(d->got, pos);
    assert_int_equal(d->bad, 0);
}

static void test_every_byte_arrives_in_order_and_whole_records_count(void **state)
{
    int fds[2];
    sendq *q = NULL;
    drain d = {0};
    pthread_t t;
    uint64_t pos = 0, credit = 0;
    size_t depth = 0;
    (void)state;
    pair(fds);
    d.fd = fds[1];
    assert_int_equal(pthread_create(&t, NULL, drainer, &d), 0);
    assert_int_equal(sendq_start(fds[0], 5000, NULL, 1, &q), 0);
    /* Records of odd sizes, some larger than the whole ring (pushed in
     * pieces), some of one byte. */
    for (int i = 0; i < 200; i++) {
        size_t len = i % 50 == 7 ? SENDQ_BYTES + 12345 : i % 9 == 0 ? 1 : REC - (size_t)(i % 13);
        assert_int_equal(push_record(q, &pos, len, len / 2), 0);
        credit += len / 2;
    }
    assert_int_equal(sendq_flush(q), 0);
    assert_int_equal(sendq_stop(q, &depth), credit);
    assert_true(depth >= 1 && depth <= SENDQ_RECORDS);
    drain_end(fds, t, &d, pos);
}

/* Against a peer that never reads: pushes fill the kernel's buffers and
 * then the queue -- exactly SENDQ_RECORDS records, never more -- and the
 * push that finds it full ends when the sender's io_timeout passes. */
static void test_a_stalled_peer_fills_the_queue_to_its_bound_and_times_out(void **state)
{
    int fds[2], rc;
    sendq *q = NULL;
    uint64_t pos = 0, n = 0, t0, sent;
    size_t depth = 0;
    int in_kernel = 0;
    (void)state;
    pair(fds);
    assert_int_equal(sendq_start(fds[0], 300, NULL, 1, &q), 0);
    t0 = plat_mono_ns();
    while (!(rc = push_record(q, &pos, REC, REC - 29)))
        n++;
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(plat_mono_ns() - t0 >= 300 * 1000000ull);
    assert_int_equal(sendq_push(q, (const uint8_t *)"x", 1, &(uint64_t){1}, &(size_t){0}),
                     -ETIMEDOUT); /* the error stays */
    sent = sendq_stop(q, &depth);
    assert_int_equal(depth, SENDQ_RECORDS);
    assert_int_equal(sent % (REC - 29), 0);
    assert_int_equal(ioctl(fds[1], FIONREAD, &in_kernel), 0);
    /* whole records sent + the queue's bound (+ the piece being pushed) */
    assert_true(sent / (REC - 29) <= (uint64_t)in_kernel / REC);
    assert_true(n <= (uint64_t)in_kernel / REC + 1 + SENDQ_RECORDS);
    assert_true(n >= SENDQ_RECORDS);
    close(fds[0]);
    close(fds[1]);
}

/* A peer that writes while we wait for room halts the sender: the
 * producer sees SENDQ_SPOKE, reads, resumes, and everything arrives. */
static void test_a_peer_that_speaks_halts_the_sender_until_resumed(void **state)
{
    int fds[2], rc = 0;
    sendq *q = NULL;
    drain d = {0};
    pthread_t t;
    uint64_t pos = 0;
    char c;
    (void)state;
    pair(fds);
    assert_int_equal(sendq_start(fds[0], 5000, NULL, 1, &q), 0);
    assert_int_equal(write(fds[1], "1", 1), 1); /* an interim answer, say */
    for (int i = 0; i < 64 && !rc; i++)
        rc = push_record(q, &pos, REC, 1);
    if (!rc)
        rc = sendq_flush(q);
    assert_int_equal(rc, SENDQ_SPOKE);
    assert_int_equal(sendq_push(q, (const uint8_t *)"x", 1, &(uint64_t){1}, &(size_t){0}),
                     SENDQ_SPOKE); /* until resumed */
    assert_int_equal(read(fds[0], &c, 1), 1);
    d.fd = fds[1];
    assert_int_equal(pthread_create(&t, NULL, drainer, &d), 0);
    sendq_resume(q, 1);
    rc = 0;
    while (!rc && pos < 64 * (uint64_t)REC)
        rc = push_record(q, &pos, REC, 1);
    assert_int_equal(rc, 0);
    assert_int_equal(sendq_flush(q), 0);
    sendq_stop(q, NULL);
    drain_end(fds, t, &d, pos);
}

/* The caller's cancel ends a stalled sender, and the push waiting on it,
 * long before io_timeout (30 s). */
static void test_cancel_ends_a_stalled_push_long_before_io_timeout(void **state)
{
    int fds[2], rc;
    sendq *q = NULL;
    plat_cancel *cancel = NULL;
    uint64_t pos = 0, t0;
    (void)state;
    pair(fds);
    assert_int_equal(plat_cancel_new(&cancel), 0);
    assert_int_equal(sendq_start(fds[0], 30000, cancel, 1, &q), 0);
    plat_cancel_fire(cancel);
    t0 = plat_mono_ns();
    while (!(rc = push_record(q, &pos, REC, 1))) {
    }
    assert_int_equal(rc, -ECANCELED);
    assert_true(plat_mono_ns() - t0 < 5000 * 1000000ull);
    sendq_stop(q, NULL);
    assert_true(plat_cancel_fired(cancel)); /* the sender's stop left it as it was */
    plat_cancel_free(cancel);
    close(fds[0]);
    close(fds[1]);
}

/* sendq_stop ends a sender stuck in a wait for room at once, not after
 * io_timeout (30 s), and fires nothing the caller owns. */
static void test_stop_ends_a_sender_waiting_for_room_at_once(void **state)
{
    int fds[2], in_kernel = 0;
    sendq *q = NULL;
    plat_cancel *cancel = NULL;
    uint64_t pos = 0, t0;
    struct pollfd p;
    (void)state;
    pair(fds);
    assert_int_equal(plat_cancel_new(&cancel), 0);
    assert_int_equal(sendq_start(fds[0], 30000, cancel, 0, &q), 0);
    for (int i = 0; i < SENDQ_RECORDS; i++)
        assert_int_equal(push_record(q, &pos, REC, 1), 0);
    p = (struct pollfd){.fd = fds[1], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1); /* the sender is at it */
    assert_int_equal(ioctl(fds[1], FIONREAD, &in_kernel), 0);
    assert_true((uint64_t)in_kernel < pos); /* so it has to wait for room */
    t0 = plat_mono_ns();
    sendq_stop(q, NULL);
    assert_true(plat_mono_ns() - t0 < 5000 * 1000000ull);
    assert_false(plat_cancel_fired(cancel));
    plat_cancel_free(cancel);
    close(fds[0]);
    close(fds[1]);
}

/* Fewer than SENDQ_KICK records leave within SENDQ_KICK_MS without a
 * flush: a body held back by upload.max_rate keeps flowing. */
static void test_a_lone_record_leaves_without_a_flush(void **state)
{
    int fds[2];
    sendq *q = NULL;
    uint64_t pos = 0;
    char buf[200];
    struct pollfd p;
    (void)state;
    pair(fds);
    assert_int_equal(sendq_start(fds[0], 5000, NULL, 1, &q), 0);
    for (int i = 0; i < 3; i++) {
        /* i = 1: after a flush, the sender's clock runs with nothing queued;
         * i = 2: 20 ms later it has run out and the sender sleeps without
         * one (idle), so only the push can wake it. The pause sets up that
         * state; it waits for no result, and the record must still arrive. */
        if (i == 2)
            nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
        assert_int_equal(push_record(q, &pos, 100, 100), 0);
        p = (struct pollfd){.fd = fds[1], .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        assert_int_equal(recv(fds[1], buf, sizeof(buf), 0), 100);
        assert_int_equal(sendq_flush(q), 0);
    }
    assert_int_equal(sendq_stop(q, NULL), 300);
    close(fds[0]);
    close(fds[1]);
}

static void test_stop_of_null_is_a_no_op(void **state)
{
    (void)state;
    assert_int_equal(sendq_stop(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_arrives_in_order_and_whole_records_count),
        cmocka_unit_test(test_a_stalled_peer_fills_the_queue_to_its_bound_and_times_out),
        cmocka_unit_test(test_a_peer_that_speaks_halts_the_sender_until_resumed),
        cmocka_unit_test(test_cancel_ends_a_stalled_push_long_before_io_timeout),
        cmocka_unit_test(test_stop_ends_a_sender_waiting_for_room_at_once),
        cmocka_unit_test(test_a_lone_record_leaves_without_a_flush),
        cmocka_unit_test(test_stop_of_null_is_a_no_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
