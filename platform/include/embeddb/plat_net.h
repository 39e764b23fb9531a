/*
 * plat_net.h -- TCP sockets for the upload client: connect with a deadline,
 * and send/recv that wait at most a given time for progress.
 *
 * Sockets are non-blocking and close-on-exec; every wait is a poll(2) with a
 * timeout, so a peer that stops reading or answering costs the caller at
 * most that timeout, never a hung thread. Sends use MSG_NOSIGNAL: a peer
 * that resets the connection yields -EPIPE/-ECONNRESET, not SIGPIPE.
 *
 * Conventions as in plat.h: 0 or a negative errno value; results through
 * out-parameters; descriptors are owned by the caller and released with
 * plat_sock_close. Timeouts are in milliseconds; 0 means "do not wait".
 *
 * Not here: TLS (agent/http.c layers mbedTLS over these), retries, or
 * logging. Callers decide those.
 */
#ifndef EMBEDDB_PLAT_NET_H
#define EMBEDDB_PLAT_NET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Resolves host (a name or an IPv4/IPv6 literal) and connects to port
 * (1..65535), trying each address in the resolver's order until one
 * accepts. timeout_ms bounds the whole call (resolution excepted: the
 * system resolver has its own timeouts). The socket comes back connected,
 * non-blocking, with TCP_NODELAY set.
 *
 * Errors: -ENOENT when the name does not resolve (or resolves to no TCP
 * address), -ETIMEDOUT when the deadline passed, otherwise the last
 * address's connect error (-ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, ...);
 * -EINVAL for a bad port or empty host.
 */
int plat_tcp_connect(const char *host, int port, uint64_t timeout_ms, int *fd_out);

/*
 * Sends some of buf: waits up to timeout_ms for the socket to take at least
 * one byte, then hands the kernel as much as it takes. *sent (always set)
 * is the number of bytes sent, > 0 on success. -ETIMEDOUT when no byte
 * could be sent in time; -EPIPE or -ECONNRESET when the peer is gone.
 */
int plat_sock_send(int fd, const void *buf, size_t len, uint64_t timeout_ms, size_t *sent);

/*
 * Receives up to len bytes, waiting up to timeout_ms for the first one.
 * *got (always set) is the count; 0 with a 0 return means the peer closed
 * its side (end of stream). -ETIMEDOUT when nothing arrived in time.
 */
int plat_sock_recv(int fd, void *buf, size_t len, uint64_t timeout_ms, size_t *got);

/* 1 when a recv would not block (data, end of stream or a pending error is
 * there), 0 when not within timeout_ms, or a negative errno. */
int plat_sock_readable(int fd, uint64_t timeout_ms);

/* Closes the socket. Never retried on EINTR (see posix_close). 0 or -errno. */
int plat_sock_close(int fd);

#ifdef __cplusplus
}
#endif
#endif
