/*
 * plat_net.h -- TCP sockets for the upload client: connect with a deadline,
 * and send/recv that wait at most a given time for progress, each wait
 * also ended at once by a cancel flag another thread raises.
 *
 * Sockets are non-blocking and close-on-exec; every wait is a poll(2) with a
 * timeout, so a peer that stops reading or answering costs the caller at
 * most that timeout, never a hung thread. Sends use MSG_NOSIGNAL: a peer
 * that resets the connection yields -EPIPE/-ECONNRESET, not SIGPIPE.
 *
 * Cancellation: a plat_cancel is a flag whose raising makes every wait
 * that watches it (it joins the same poll(2) as the socket) return
 * -ECANCELED within microseconds, whatever the peer does: in name
 * resolution, connect, send or recv. That is how a stopping agent gets its
 * upload worker back in bounded time (upload.c).
 *
 * Conventions as in plat.h: 0 or a negative errno value; results through
 * out-parameters; descriptors are owned by the caller and released with
 * plat_sock_close. Timeouts are in milliseconds; 0 means "do not wait".
 * Every `cancel` may be NULL (nothing to watch); it is borrowed.
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

/* A cancel flag: a pipe whose read end is readable while the flag is up. */
typedef struct plat_cancel plat_cancel;

/* A lowered flag in *out (owned by the caller: plat_cancel_free). 0, -errno. */
int plat_cancel_new(plat_cancel **out);
/* Like plat_cancel_new, but the new flag also counts as raised while
 * parent is (waits watch both; parent is borrowed and must outlive it;
 * NULL: none): a helper thread's stop flag that the caller's cancel
 * raises too. Firing or resetting the new flag leaves parent alone. One
 * level only: parent's own parent, if it has one, is not watched, so
 * parent must be a plain flag (plat_cancel_new). */
int plat_cancel_new_linked(const plat_cancel *parent, plat_cancel **out);
/* Frees c; NULL is a no-op. No wait may be watching it any more. */
void plat_cancel_free(plat_cancel *c);
/* Raises the flag; it stays up until plat_cancel_reset. Any thread, and
 * async-signal-safe (one write(2)). */
void plat_cancel_fire(plat_cancel *c);
/* Lowers the flag. Callers serialise it with plat_cancel_fire (a fire
 * racing a reset may be lost). */
void plat_cancel_reset(plat_cancel *c);
/* 1 when the flag is up, else 0. */
int plat_cancel_fired(const plat_cancel *c);
/* Sleeps timeout_ms, or less: -ECANCELED as soon as the flag is up (also
 * when it already was), else 0 once the time has passed (-errno if poll
 * fails). */
int plat_cancel_wait(const plat_cancel *c, uint64_t timeout_ms);

/*
 * Resolves host (a name or an IPv4/IPv6 literal) and connects to port
 * (1..65535), trying each address in the resolver's order until one
 * accepts. timeout_ms bounds the whole call, name resolution included (a
 * name is resolved on a short-lived helper thread, so a resolver that
 * hangs costs the caller at most the timeout; the thread finishes on its
 * own). The socket comes back connected, non-blocking, with TCP_NODELAY.
 *
 * Errors: -ENOENT when the name does not resolve (or resolves to no TCP
 * address), -ETIMEDOUT when the deadline passed, -ECANCELED when cancel
 * was raised, otherwise the last address's connect error (-ECONNREFUSED,
 * -EHOSTUNREACH, -ENETUNREACH, ...); -EINVAL for a bad port or empty host.
 */
int plat_tcp_connect(const char *host, int port, uint64_t timeout_ms, const plat_cancel *cancel,
                     int *fd_out);

/* plat_sock_send flag: also stop waiting for room, with -EAGAIN, as soon
 * as the socket has something to read (the peer answered, closed or
 * failed while we were still sending). */
#define PLAT_SEND_UNTIL_READABLE 1

/*
 * Sends some of buf: waits up to timeout_ms for the socket to take at least
 * one byte, then hands the kernel as much as it takes. *sent (always set)
 * is the number of bytes sent, > 0 on success. -ETIMEDOUT when no byte
 * could be sent in time; -EPIPE or -ECONNRESET when the peer is gone;
 * -ECANCELED; -EAGAIN (nothing sent) with PLAT_SEND_UNTIL_READABLE.
 */
int plat_sock_send(int fd, const void *buf, size_t len, uint64_t timeout_ms, int flags,
                   const plat_cancel *cancel, size_t *sent);

/*
 * Receives up to len bytes, waiting up to timeout_ms for the first one.
 * *got (always set) is the count; 0 with a 0 return means the peer closed
 * its side (end of stream). -ETIMEDOUT when nothing arrived in time;
 * -ECANCELED.
 */
int plat_sock_recv(int fd, void *buf, size_t len, uint64_t timeout_ms, const plat_cancel *cancel,
                   size_t *got);

/* 1 when a recv would not block (data, end of stream or a pending error is
 * there), 0 when not within timeout_ms, -ECANCELED (checked first, so a
 * zero timeout doubles as a cancel check), or a negative errno. */
int plat_sock_readable(int fd, uint64_t timeout_ms, const plat_cancel *cancel);

/* Closes the socket. Never retried on EINTR (see posix_close). 0 or -errno. */
int plat_sock_close(int fd);

#ifdef __cplusplus
}
#endif
#endif
