/*
 * ingest.h -- the MQTT side of the agent: one libmosquitto client with a
 * persistent session, its own network thread (so keepalives go on while the
 * main thread commits batches to flash), payload decoding in the message
 * callback, and a bounded queue of decoded tensors for the main thread.
 *
 * Queue policy when full (it holds at most `limit_bytes`): the network
 * thread waits for the main thread to drain it, so the broker holds further
 * messages (QoS 1/2 flow control) instead of this process growing.
 *
 * Shared state (the queue, counters, the subscription table) is guarded by
 * one mutex inside ingest.c; nothing else is shared between the threads.
 */
#ifndef EMBEDDB_AGENT_INGEST_H
#define EMBEDDB_AGENT_INGEST_H

#include "config.h"
#include "payload.h"

#include <stdint.h>

typedef struct ingest ingest;

/* A decoded message, owned by whoever popped it (ingest_msg_free). */
typedef struct ingest_msg {
    char *topic;
    payload_tensor t;
    int64_t recv_ns;         /* wall clock at arrival: the tensor's timestamp */
    struct ingest_msg *next;
} ingest_msg;

typedef struct ingest_counters {
    uint64_t received;                   /* messages delivered to us */
    uint64_t decoded;
    uint64_t rejected[PAYLOAD_N_ERRS];   /* by reason (index PAYLOAD_OK unused) */
    uint64_t unmatched;                  /* no subscription matched the topic */
    uint64_t connects, disconnects;
    int connected, subscribed;
} ingest_counters;

/* Sets up the client from cfg (borrowed for the call). NULL with err set. */
ingest *ingest_new(const agent_config *cfg, uint64_t limit_bytes, char *err, size_t errlen);
/* Connects (asynchronously; reconnects with exponential backoff forever)
 * and starts the network thread. 0 or -1 with err set. */
int ingest_start(ingest *in, char *err, size_t errlen);
/* Waits up to wait_ms for messages and returns all that are queued (a
 * list, oldest first), or NULL. */
ingest_msg *ingest_pop(ingest *in, uint64_t wait_ms);
void ingest_msg_free(ingest_msg *m);
/* Replaces the subscriptions (SIGHUP): unsubscribes what went away,
 * subscribes what is new, and decodes with the new specs from now on. */
int ingest_update(ingest *in, const agent_config *cfg);
void ingest_counters_get(ingest *in, ingest_counters *out);
/* Disconnects and joins the network thread; queued messages stay poppable. */
void ingest_stop(ingest *in);
void ingest_free(ingest *in);

#endif
