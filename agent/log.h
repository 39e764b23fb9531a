/*
 * log.h -- the agent's log lines: stderr, one line each, prefixed with the
 * syslog priority ("<6>") so journald files them at the right level. Never
 * pass secrets. agent_log_limited drops repeats of one kind of message
 * beyond a few per interval (bad payloads can arrive thousands a second).
 * Threads: any thread may log and set the level (it is atomic); a
 * log_limit is used by one thread at a time (its owner's lock).
 */
#ifndef EMBEDDB_AGENT_LOG_H
#define EMBEDDB_AGENT_LOG_H

#include "config.h"

void agent_log_set_level(log_level lv);
void agent_log(log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit of `burst` lines per `interval_ms`; zero-initialise. */
typedef struct log_limit {
    uint64_t window_start_ms;
    unsigned used;
    unsigned long suppressed;
} log_limit;

void agent_log_limited(log_limit *lim, unsigned burst, uint64_t interval_ms, log_level lv,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
