/*
 * test_plat_net.c -- the TCP layer's waits (platform/src/plat_net.c) on
 * loopback: the cancel flag ends a wait in connect (the peer's accept queue
 * full, so the kernel drops our SYN), in name resolution, in send and in
 * recv; a send waiting for room stops when the peer speaks (on a UNIX
 * stream pair, whose buffers do not drain behind our back). Every case is
 * decided by socket state, never by how long something took: the timeouts
 * given are far longer than the test.
 */
#include "embeddb/plat.h"
#include "embeddb/plat_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define LONG_MS 600000 /* never reached: something else must end the wait */

/* A listener on 127.0.0.1 with the given backlog; its port in *port. */
static int listener(int backlog, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A connected pair over loopback: *c from plat_tcp_connect, *s accepted. */
static void pair(int *c, int *s)
{
    int port, l = listener(4, &port);
    assert_int_equal(plat_tcp_connect("127.0.0.1", port, LONG_MS, NULL, c), 0);
    *s = accept(l, NULL, NULL);
    assert_true(*s >= 0);
    close(l);
}

static void test_cancel_flag_is_sticky_until_reset(void **state)
{
    plat_cancel *c = NULL;
    (void)state;
    assert_int_equal(plat_cancel_new(&c), 0);
    assert_false(plat_cancel_fired(c));
    plat_cancel_fire(c);
    plat_cancel_fire(c);
    assert_true(plat_cancel_fired(c));
    assert_true(plat_cancel_fired(c));
    plat_cancel_reset(c);
    assert_false(plat_cancel_fired(c));
    plat_cancel_free(c);
    plat_cancel_free(NULL);
}

/* A linked flag is up while it or its parent is; firing it leaves the
 * parent alone, and every kind of wait watches both. */
static void test_linked_cancel_is_up_while_it_or_its_parent_is(void **state)
{
    plat_cancel *parent = NULL, *c = NULL;
    char buf[8];
    size_t got = 1;
    int cfd, sfd;
    (void)state;
    assert_int_equal(plat_cancel_new(&parent), 0);
    assert_int_equal(plat_cancel_new_linked(parent, &c), 0);
    assert_false(plat_cancel_fired(c));
    plat_cancel_fire(c);
    assert_true(plat_cancel_fired(c));
    assert_false(plat_cancel_fired(parent));
    plat_cancel_reset(c);
    pair(&cfd, &sfd);
    assert_int_equal(plat_sock_recv(cfd, buf, sizeof(buf), 0, c, &got), -ETIMEDOUT);
    plat_cancel_fire(parent);
    assert_true(plat_cancel_fired(c));
    assert_int_equal(plat_sock_recv(cfd, buf, sizeof(buf), LONG_MS, c, &got), -ECANCELED);
    assert_int_equal(plat_cancel_wait(c, LONG_MS), -ECANCELED);
    assert_int_equal(plat_sock_readable(cfd, LONG_MS, c), -ECANCELED);
    plat_cancel_free(c);
    plat_cancel_free(parent);
    plat_sock_close(cfd);
    plat_sock_close(sfd);
}

static void *fire_soon(void *arg)
{
    plat_cancel_fire(arg);
    return NULL;
}

static void test_cancel_ends_recv_and_readable_waits(void **state)
{
    plat_cancel *c = NULL;
    pthread_t t;
    char buf[8];
    size_t got = 1;
    int cfd, sfd;
    (void)state;
    assert_int_equal(plat_cancel_new(&c), 0);
    pair(&cfd, &sfd);
    /* raised by another thread while (or before) the wait runs */
    assert_int_equal(pthread_create(&t, NULL, fire_soon, c), 0);
    assert_int_equal(plat_sock_recv(cfd, buf, sizeof(buf), LONG_MS, c, &got), -ECANCELED);
    assert_int_equal(got, 0);
    pthread_join(t, NULL);
    assert_int_equal(plat_sock_readable(cfd, LONG_MS, c), -ECANCELED);
    assert_int_equal(plat_sock_readable(cfd, 0, c), -ECANCELED); /* a zero wait checks it too */
    plat_cancel_reset(c);
    assert_int_equal(plat_sock_readable(cfd, 0, c), 0);
    /* data that is there is data: taken without waiting, flag or not */
    assert_int_equal(write(sfd, "hi", 2), 2);
    assert_int_equal(plat_sock_readable(cfd, LONG_MS, c), 1);
    assert_int_equal(plat_sock_recv(cfd, buf, sizeof(buf), LONG_MS, c, &got), 0);
    assert_int_equal(got, 2);
    close(cfd);
    close(sfd);
    plat_cancel_free(c);
}

/* The rate limiter's sleep: a raised flag (before or during) ends it. */
static void test_cancel_wait_ends_at_the_flag_or_the_time(void **state)
{
    plat_cancel *c = NULL;
    pthread_t t;
    (void)state;
    assert_int_equal(plat_cancel_new(&c), 0);
    uint64_t t0 = plat_mono_ns();
    assert_int_equal(plat_cancel_wait(c, 20), 0);
    assert_true(plat_mono_ns() - t0 >= 20000000u); /* a lower bound only: never a speed */
    assert_int_equal(plat_cancel_wait(c, 0), 0);
    assert_int_equal(pthread_create(&t, NULL, fire_soon, c), 0);
    assert_int_equal(plat_cancel_wait(c, LONG_MS), -ECANCELED);
    pthread_join(t, NULL);
    assert_int_equal(plat_cancel_wait(c, LONG_MS), -ECANCELED); /* sticky */
    assert_int_equal(plat_cancel_wait(c, 0), -ECANCELED);
    plat_cancel_free(c);
}

/* Fills fd's send buffer until the kernel takes no more (the peer reads nothing). */
static void fill(int fd)
{
    static char junk[65536];
    size_t sent;
    while (plat_sock_send(fd, junk, sizeof(junk), 0, 0, NULL, &sent) == 0) {
    }
}

static void test_send_waiting_for_room_stops_when_peer_speaks_or_cancel(void **state)
{
    plat_cancel *c = NULL;
    size_t sent = 1;
    int sv[2], cfd, sfd;
    (void)state;
    assert_int_equal(plat_cancel_new(&c), 0);
    /* A UNIX stream pair: no data in flight, so a full buffer stays full
     * until the peer reads (TCP's would drain into the peer's window). */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cfd = sv[0];
    sfd = sv[1];
    fill(cfd);
    assert_int_equal(plat_sock_send(cfd, "x", 1, 0, PLAT_SEND_UNTIL_READABLE, c, &sent),
                     -ETIMEDOUT);
    assert_int_equal(write(sfd, "HTTP/1.1 200 OK\r\n", 17), 17);
    assert_int_equal(plat_sock_send(cfd, "x", 1, LONG_MS, PLAT_SEND_UNTIL_READABLE, c, &sent),
                     -EAGAIN);
    assert_int_equal(sent, 0);
    plat_cancel_fire(c);
    assert_int_equal(plat_sock_send(cfd, "x", 1, LONG_MS, 0, c, &sent), -ECANCELED);
    close(cfd);
    close(sfd);
    plat_cancel_free(c);
}

static void test_cancel_ends_a_connect_the_peer_never_answers(void **state)
{
    plat_cancel *c = NULL;
    int port, l = listener(0, &port), filler = -1, fd = 5;
    (void)state;
    /* Backlog 0 plus one waiting connection: Linux drops further SYNs. */
    assert_int_equal(plat_tcp_connect("127.0.0.1", port, LONG_MS, NULL, &filler), 0);
    assert_int_equal(plat_cancel_new(&c), 0);
    plat_cancel_fire(c);
    assert_int_equal(plat_tcp_connect("127.0.0.1", port, LONG_MS, c, &fd), -ECANCELED);
    assert_int_equal(fd, -1);
    /* a name goes through the resolver thread: cancelled there or in connect */
    assert_int_equal(plat_tcp_connect("localhost", port, LONG_MS, c, &fd), -ECANCELED);
    assert_int_equal(fd, -1);
    plat_cancel_reset(c);
    assert_int_equal(plat_tcp_connect("127.0.0.1", port, 0, c, &fd), -ETIMEDOUT);
    close(filler);
    close(l);
    plat_cancel_free(c);
}

static void test_names_resolve_on_the_helper_thread(void **state)
{
    int port, l = listener(4, &port), fd = -1;
    (void)state;
    assert_int_equal(plat_tcp_connect("localhost", port, LONG_MS, NULL, &fd), 0);
    assert_true(fd >= 0);
    plat_sock_close(fd);
    assert_int_equal(plat_tcp_connect("no-such-host.invalid", port, LONG_MS, NULL, &fd),
                     -ENOENT);
    assert_int_equal(plat_tcp_connect("", port, LONG_MS, NULL, &fd), -EINVAL);
    assert_int_equal(plat_tcp_connect("localhost", 0, LONG_MS, NULL, &fd), -EINVAL);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_flag_is_sticky_until_reset),
        cmocka_unit_test(test_linked_cancel_is_up_while_it_or_its_parent_is),
        cmocka_unit_test(test_cancel_ends_recv_and_readable_waits),
        cmocka_unit_test(test_cancel_wait_ends_at_the_flag_or_the_time),
        cmocka_unit_test(test_send_waiting_for_room_stops_when_peer_speaks_or_cancel),
        cmocka_unit_test(test_cancel_ends_a_connect_the_peer_never_answers),
        cmocka_unit_test(test_names_resolve_on_the_helper_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
