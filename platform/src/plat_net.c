/*
 * plat_net.c -- TCP sockets with deadlines and cancellation (contract in
 * plat_net.h).
 *
 * Every socket is non-blocking from birth; a call first tries the operation
 * and only polls when the kernel says EAGAIN, so a fast bulk upload costs
 * one send(2) per TLS record and no poll(2) at all. Waits are measured
 * against an absolute monotonic deadline, so EINTR never stretches them,
 * and each poll(2) also watches the cancel flag's pipe.
 *
 * Name resolution: getaddrinfo(3) blocks for as long as the system
 * resolver likes (several seconds per unreachable name server) and cannot
 * be interrupted, so a name (not an address literal) is resolved on a
 * detached helper thread that signals a pipe when done; the caller waits on
 * that pipe like on a socket. A caller that gives up leaves the job to the
 * thread, which frees it: the job is reference-counted (caller + thread).
 *
 * Not here: TLS, name caching, retries or logging.
 */
#define _GNU_SOURCE 1 /* pipe2 */
#include "embeddb/plat.h"
#include "embeddb/plat_net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct plat_cancel {
    int rd, wr;                /* a pipe: readable while the flag is up */
    const plat_cancel *parent; /* also up while this one is (NULL: none) */
};

/* The pipes to poll for c (read ends, -1 for none): its own and its
 * parent's. */
static void cancel_fds(const plat_cancel *c, struct pollfd p[2])
{
    p[0] = (struct pollfd){.fd = c ? c->rd : -1, .events = POLLIN};
    p[1] = (struct pollfd){.fd = c && c->parent ? c->parent->rd : -1, .events = POLLIN};
}

/* An absolute monotonic deadline timeout_ms from now (saturating). */
static uint64_t deadline_after(uint64_t timeout_ms)
{
    uint64_t now = plat_mono_ns();
    if (timeout_ms > (UINT64_MAX - now) / 1000000u)
        return UINT64_MAX;
    return now + timeout_ms * 1000000u;
}

/* Waits until fd has one of events (*revents gets them, unless revents is
 * NULL) or the deadline passes: 0 when ready, -ETIMEDOUT, -ECANCELED
 * (preferred when both are ready), or -errno from poll. */
static int wait_fd(int fd, short events, uint64_t deadline_ns, const plat_cancel *cancel,
                   short *revents)
{
    struct pollfd p[3] = {{.fd = fd, .events = events}};
    int rc;
    cancel_fds(cancel, p + 1);
    for (;;) {
        uint64_t now = plat_mono_ns();
        uint64_t left_ms = now >= deadline_ns ? 0 : (deadline_ns - now + 999999u) / 1000000u;
        int n = poll(p, 3, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (p[1].revents || p[2].revents) {
            rc = -ECANCELED;
            goto out;
        }
        if (n > 0) {  /* POLLERR/POLLHUP count: the next call reports them */
            if (revents)
                *revents = p[0].revents;
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

/* ---- the cancel flag ---- */

int plat_cancel_new(plat_cancel **out)
{
    return plat_cancel_new_linked(NULL, out);
}

int plat_cancel_new_linked(const plat_cancel *parent, plat_cancel **out)
{
    plat_cancel *c = calloc(1, sizeof(*c));
    int p[2], rc;
    *out = NULL;
    if (!c)
        return -ENOMEM;
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) {
        rc = -errno;
        free(c);
        return rc;
    }
    c->rd = p[0];
    c->wr = p[1];
    c->parent = parent;
    *out = c;
    return 0;
}

void plat_cancel_free(plat_cancel *c)
{
    if (!c)
        return;
    close(c->rd);
    close(c->wr);
    free(c);
}

void plat_cancel_fire(plat_cancel *c)
{
    int saved = errno; /* async-signal-safe: a handler must not change errno */
    ssize_t n = write(c->wr, "!", 1); /* a full pipe is as good as a written byte */
    (void)n;
    errno = saved;
}

void plat_cancel_reset(plat_cancel *c)
{
    char buf[64];
    while (read(c->rd, buf, sizeof(buf)) > 0) {
    }
}

int plat_cancel_wait(const plat_cancel *c, uint64_t timeout_ms)
{
    uint64_t end = deadline_after(timeout_ms);
    struct pollfd p[2];
    cancel_fds(c, p);
    for (;;) {
        uint64_t now = plat_mono_ns();
        if (now >= end)
            return plat_cancel_fired(c) ? -ECANCELED : 0;
        uint64_t left_ms = (end - now + 999999u) / 1000000u;
        int n = poll(p, 2, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n > 0)
            return -ECANCELED;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int plat_cancel_fired(const plat_cancel *c)
{
    struct pollfd p[2];
    int n;
    cancel_fds(c, p);
    while ((n = poll(p, 2, 0)) < 0 && errno == EINTR) {
    }
    return n > 0;
}

/* ---- name resolution ---- */

static int gai_errno(int g, int sys_errno)
{
    return g == EAI_SYSTEM ? (sys_errno ? -sys_errno : -EIO) : g == EAI_MEMORY ? -ENOMEM : -ENOENT;
}

/* getaddrinfo(3) for a TCP connection to a numeric port; `flags` adds to
 * the hints' AI_NUMERICSERV. Its return value. */
static int lookup(const char *host, const char *service, int flags, struct addrinfo **res)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | flags;
    return getaddrinfo(host, service, &hints, res);
}

/* One name being resolved; freed by whichever of caller and thread lets go last. */
typedef struct resolve_job {
    pthread_mutex_t mu;
    int refs;              /* 2: the caller and the thread */
    int rc;                /* 0 or -errno, once done */
    struct addrinfo *res;  /* the answer, until the caller takes it */
    int done[2];           /* a pipe: the thread writes one byte when done */
    char host[256];
    char service[16];
} resolve_job;

static void job_release(resolve_job *j)
{
    int last;
    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    if (j->res)
        freeaddrinfo(j->res);
    close(j->done[0]);
    close(j->done[1]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void job_run(resolve_job *j)
{
    struct addrinfo *res = NULL;
    int g = lookup(j->host, j->service, 0, &res);
    pthread_mutex_lock(&j->mu);
    j->rc = g ? gai_errno(g, errno) : 0;
    j->res = g ? NULL : res;
    pthread_mutex_unlock(&j->mu);
}

static void *resolve_thread(void *arg)
{
    resolve_job *j = arg;
    ssize_t n;
    job_run(j);
    n = write(j->done[1], "!", 1); /* wakes the caller, if it still waits */
    (void)n;
    job_release(j);
    return NULL;
}

/* Resolves host:service into *res (freeaddrinfo) by the deadline. */
static int resolve(const char *host, const char *service, uint64_t deadline_ns,
                   const plat_cancel *cancel, struct addrinfo **res)
{
    resolve_job *j = NULL;
    pthread_attr_t attr;
    pthread_t t;
    int g, rc;

    *res = NULL;
    g = lookup(host, service, AI_NUMERICHOST, res); /* literals: no resolver, no thread */
    if (g != EAI_NONAME) {
        rc = g ? gai_errno(g, errno) : 0;
        goto out;
    }
    if (strlen(host) >= sizeof(j->host)) {
        rc = -ENOENT; /* longer than any DNS name */
        goto out;
    }
    if (!(j = calloc(1, sizeof(*j)))) {
        rc = -ENOMEM;
        goto out;
    }
    if (pipe2(j->done, O_NONBLOCK | O_CLOEXEC)) {
        rc = -errno;
        free(j);
        j = NULL;
        goto out;
    }
    pthread_mutex_init(&j->mu, NULL);
    snprintf(j->host, sizeof(j->host), "%s", host);
    snprintf(j->service, sizeof(j->service), "%s", service);
    j->refs = 2;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, resolve_thread, j);
        pthread_attr_destroy(&attr);
    } else {
        rc = EAGAIN;
    }
    if (rc) { /* no thread to spare: resolve here, unbounded, rather than fail */
        j->refs = 1;
        job_run(j);
    } else if ((rc = wait_fd(j->done[0], POLLIN, deadline_ns, cancel, NULL))) {
        goto out; /* timed out or cancelled: the thread finishes and frees */
    }
    pthread_mutex_lock(&j->mu);
    rc = j->rc;
    *res = j->res;
    j->res = NULL;
    pthread_mutex_unlock(&j->mu);
out:
    if (j)
        job_release(j);
    return rc;
}

/* ---- sockets ---- */

/* One non-blocking connect to one address, finished within the deadline. */
static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns, const plat_cancel *cancel,
                       int *fd_out)
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
        if ((rc = wait_fd(fd, POLLOUT, deadline_ns, cancel, NULL)))
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

int plat_tcp_connect(const char *host, int port, uint64_t timeout_ms, const plat_cancel *cancel,
                     int *fd_out)
{
    struct addrinfo *res = NULL;
    uint64_t deadline_ns = deadline_after(timeout_ms);
    char service[16];
    int rc;

    *fd_out = -1;
    if (!host || !*host || port < 1 || port > 65535) {
        rc = -EINVAL;
        goto out;
    }
    snprintf(service, sizeof(service), "%d", port);
    if ((rc = resolve(host, service, deadline_ns, cancel, &res)))
        goto out;
    rc = -ENOENT;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline_ns, cancel, fd_out);
        if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED)
            break;
    }
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

int plat_sock_send(int fd, const void *buf, size_t len, uint64_t timeout_ms, int flags,
                   const plat_cancel *cancel, size_t *sent)
{
    uint64_t deadline_ns = deadline_after(timeout_ms);
    short events = POLLOUT | ((flags & PLAT_SEND_UNTIL_READABLE) ? POLLIN : 0), rev = 0;
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
        if ((rc = wait_fd(fd, events, deadline_ns, cancel, &rev)))
            break;
        if ((flags & PLAT_SEND_UNTIL_READABLE) && (rev & POLLIN)) {
            rc = -EAGAIN;
            break;
        }
    }
    return rc;
}

int plat_sock_recv(int fd, void *buf, size_t len, uint64_t timeout_ms, const plat_cancel *cancel,
                   size_t *got)
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
        if ((rc = wait_fd(fd, POLLIN, deadline_ns, cancel, NULL)))
            break;
    }
    return rc;
}

int plat_sock_readable(int fd, uint64_t timeout_ms, const plat_cancel *cancel)
{
    int rc = wait_fd(fd, POLLIN, deadline_after(timeout_ms), cancel, NULL);
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
