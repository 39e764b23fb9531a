/*
 * sendq.h -- a bounded queue of TLS records and the thread that sends them,
 * so that the upload thread encrypts record k+1 while record k is in the
 * kernel (http.c's body; the handshake, request head and response stay on
 * the requesting thread).
 *
 * Bound: at most SENDQ_RECORDS records and SENDQ_BYTES bytes wait in the
 * queue (a ring); a push into a full queue waits until the sender has
 * sent some, so the bytes handed to TLS lead the bytes in the kernel by at
 * most SENDQ_BYTES plus mbedTLS's own record. The sender starts once
 * SENDQ_KICK records wait, at a flush, or when its SENDQ_KICK_MS clock
 * runs out with fewer; the clock starts when a send ends (or, for a sender
 * idle on an empty queue, at the next record). It then sends all that is
 * queued, in as few send(2) calls as the ring allows: one wake-up per
 * SENDQ_KICK records from a steady producer, not per record, and a slow
 * body (under upload.max_rate) waits for the send in progress and then at
 * most SENDQ_KICK_MS.
 *
 * Threads: the producer (the requesting thread) calls every function; the
 * sender thread only sends on the socket and updates the queue under its
 * mutex, never holding it across send(2). The sender's sends wait like
 * plat_sock_send (io_timeout_ms without progress, the caller's cancel flag,
 * PLAT_SEND_UNTIL_READABLE while `watch` is set); a failure, a timeout, a
 * cancel or the server speaking halts it and wakes the producer, which
 * therefore never waits longer than the sender does.
 *
 * Accounting: each record carries the body bytes ("credit") it encrypts;
 * sendq_stop returns the credit of the records that reached the kernel in
 * full, i.e. the body bytes sent.
 *
 * Not here: TLS, the HTTP exchange, retries.
 */
#ifndef EMBEDDB_AGENT_SENDQ_H
#define EMBEDDB_AGENT_SENDQ_H

#include "embeddb/plat_net.h"

#include <stddef.h>
#include <stdint.h>

#define SENDQ_RECORDS 8 /* records queued, at most */
#define SENDQ_KICK 4    /* records queued before an idle sender starts ... */
#define SENDQ_KICK_MS 2 /* ... or after this long with fewer */
#define SENDQ_BYTES (SENDQ_RECORDS * (16384 + 512)) /* ring bytes: as many 16 KiB records
                                    plus header, nonce and tag (29 bytes for AEAD) */
#define SENDQ_SPOKE 1           /* halted: the server sent something while we sent */

typedef struct sendq sendq;

/* Starts the sender on fd (borrowed; it must stay open until sendq_stop).
 * cancel (borrowed, may be NULL) must outlive the queue. 0, -ENOMEM, or
 * pthread_create's error as -errno; *out owned by the caller (sendq_stop). */
int sendq_start(int fd, uint64_t io_timeout_ms, const plat_cancel *cancel, int watch,
                sendq **out);

/* Copies as much of buf into the queue as fits, waiting for room;
 * *taken is how many (> 0 unless an error). When that is all of len (the end of a record), the
 * record carries *credit body bytes and *credit becomes 0. 0; SENDQ_SPOKE
 * (nothing taken: read what the server sent, then sendq_resume); or the
 * sender's error (-ETIMEDOUT, -ECANCELED, -EPIPE, ...), which stays. */
int sendq_push(sendq *q, const uint8_t *buf, size_t len, uint64_t *credit, size_t *taken);

/* Waits until every queued record is in the kernel: 0, SENDQ_SPOKE or the
 * sender's error, as sendq_push. */
int sendq_flush(sendq *q);

/* Sets whether a wait for room ends when the socket turns readable, and
 * ends a SENDQ_SPOKE halt (the producer has read what was there). */
void sendq_resume(sendq *q, int watch);

/* Stops the sender (at once, even inside a wait), joins it and frees q.
 * Returns the credit of the records sent in full; *max_depth (may be NULL)
 * gets the most records ever queued at once. NULL is a no-op (returns 0). */
uint64_t sendq_stop(sendq *q, size_t *max_depth);

#endif
