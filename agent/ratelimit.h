/*
 * ratelimit.h -- the token bucket behind upload.max_rate: bytes of upload
 * bodies per second, so snapshots never fill a board's uplink.
 *
 * Tokens (bytes) accrue at `rate` per second up to `burst`; a sender asks
 * for up to `want` bytes and is told how long to wait before any may go,
 * then takes what it sends. Over any span T the bytes taken are at most
 * rate x T + burst, and a sender that always asks gets at least rate x T
 * minus one request: with burst = max(16 KiB, rate / 10) the rate holds
 * within 1 % over 10 s for any rate from 16 KiB/s up.
 *
 * Pure: the caller passes the monotonic time in; the upload worker sleeps
 * on its cancel flag (plat_cancel_wait) so a stop never waits for tokens.
 * One owner (the upload worker); no locks.
 */
#ifndef EMBEDDB_AGENT_RATELIMIT_H
#define EMBEDDB_AGENT_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_MIN_BURST (16u << 10) /* one TLS record: never split a record to wait */

typedef struct ratelimit {
    uint64_t rate;      /* bytes per second; 0 = no limit */
    uint64_t burst;     /* bucket size, bytes */
    uint64_t tokens;    /* bytes available at last_ns */
    uint64_t frac;      /* sub-byte remainder of the last refill, in byte-nanoseconds */
    uint64_t last_ns;   /* mono time of the last refill */
} ratelimit;

/* A full bucket for rate bytes/s (0: unlimited) at mono time now_ns. */
void ratelimit_init(ratelimit *r, uint64_t rate, uint64_t now_ns);
/* How many bytes may go now (at most want): 0 with *wait_ns set to how long
 * until min(want, burst) are there. Unlimited: want. */
size_t ratelimit_grant(ratelimit *r, uint64_t now_ns, size_t want, uint64_t *wait_ns);
/* n bytes went (n <= what ratelimit_grant allowed). */
void ratelimit_take(ratelimit *r, size_t n);

#endif
