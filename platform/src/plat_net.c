/*
 * plat_net.c -- TCP sockets with deadlines (contract in plat_net.h).
 *
 * Every socket is non-blocking from birth; a call first tries the operation
 * and only polls when the kernel says EAGAIN, so a fast bulk upload costs
 * one send(2) per TLS record and no poll(2) at all. Waits are measured
 * against an absolute monotonic deadline, so EINTR never stretches them.
 *
 * Not here: TLS, name caching, retries or logging.
 */
#include "embeddb/plat.h"
#include "embeddb/plat_net.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* An absolute monotonic deadline timeout_ms from now (saturating). */
static uint64_t deadline_after(uint64_t timeout_ms)
{
    uint64_t now = plat_mono_ns();
    if (timeout_ms > (UINT64_MAX - now) / 1000000u)
        return UINT64_MAX;
    return now + timeout_ms * 1000000u;
}

/* Waits until fd has one of events or the deadline passes: 0 when ready,
 * -ETIMEDOUT, or -errno from poll. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    for (;;) {
        uint64_t now = plat_mono_ns();
        uint64_t left_ms = now >= deadline_ns ? 0 : (deadline_ns - now + 999999u) / 1000000u;
        int n = poll(&p, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n > 0) {  /* POLLERR/POLLHUP count: the next call reports them */
            rc = 0;
            goto out;
        }
        if (left_ms == 0 || plat_mono_ns() >= deadline_ns) {  /* polls once even for 0 */
            rc = -ETIMEDOUT;
            goto out;
        }
    }
out:
    return rc;
}

/* One non-blocking connect to one address, finished within the deadline. */
static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns, int *fd_out)
{
    int fd = -1, rc = 0, soerr = 0, one = 1;
    socklen_t sl = sizeof(soerr);
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        /* EINTR: the connect goes on asynchronously, like EINPROGRESS. */
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            goto out;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline_ns)))
            goto out;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            rc = -errno;
            goto out;
        }
        if (soerr) {
            rc = -soerr;
            goto out;
        }
    }
    /* TLS sends whole records; Nagle would only delay the last one. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        rc = -errno;
        goto out;
    }
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int plat_tcp_connect(const char *host, int port, uint64_t timeout_ms, int *fd_out)
{
    struct addrinfo hints, *res = NULL;
    uint64_t deadline_ns = deadline_after(timeout_ms);
    char service[16];
    int rc = -ENOENT, g;

    *fd_out = -1;
    if (!host || !*host || port < 1 || port > 65535) {
        rc = -EINVAL;
        goto out;
    }
    snprintf(service, sizeof(service), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    g = getaddrinfo(host, service, &hints, &res);
    if (g) {
        rc = g == EAI_SYSTEM ? (errno ? -errno : -EIO) : g == EAI_MEMORY ? -ENOMEM : -ENOENT;
        goto out;
    }
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline_ns, fd_out);
        if (rc == 0 || rc == -ETIMEDOUT)
            break;
    }
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

int plat_sock_send(int fd, const void *buf, size_t len, uint64_t timeout_ms, size_t *sent)
{
    uint64_t deadline_ns = deadline_after(timeout_ms);
    int rc = 0;
    *sent = 0;
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            *sent = (size_t)n;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline_ns)))
            break;
    }
    return rc;
}

int plat_sock_recv(int fd, void *buf, size_t len, uint64_t timeout_ms, size_t *got)
{
    uint64_t deadline_ns = deadline_after(timeout_ms);
    int rc = 0;
    *got = 0;
    while (len) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0) {
            *got = (size_t)n;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        if ((rc = wait_fd(fd, POLLIN, deadline_ns)))
            break;
    }
    return rc;
}

int plat_sock_readable(int fd, uint64_t timeout_ms)
{
    int rc = wait_fd(fd, POLLIN, deadline_after(timeout_ms));
    if (rc == 0)
        rc = 1;
    else if (rc == -ETIMEDOUT)
        rc = 0;
    return rc;
}

int plat_sock_close(int fd)
{
    int rc = 0;
    if (close(fd) && errno != EINTR)
        rc = -errno;
    return rc;
}
