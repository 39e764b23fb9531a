/*
 * ingest.h -- the MQTT side of the agent: one libmosquitto client with a
 * persistent session on a network thread of ours (keepalives go on while
 * the main thread commits batches to flash), payload decoding in the
 * message callback, and a queue of decoded tensors for the main thread.
 *
 * Bounds (ingest.c has the how): at most hold_n messages and hold_bytes
 * tensor bytes, plus the one message the network thread waits with, are
 * ever acknowledged to the broker and not yet stored -- the queue plus the
 * main thread's batch, which reports what it stored with ingest_done.
 * Beyond that nothing more is read and the broker keeps the rest in the
 * session. A QoS 1 message is taken from the queue only once the broker has
 * processed its PUBACK (the settle barrier), so a stored message is never
 * sent again; what cannot be proven so (the connection dropped, the
 * broker sent far past its window) is stored all the same and counted in
 * maybe_duplicated.
 *
 * Every message in the queue can be stored: a tensor the engine would
 * refuse (its key <topic>#<20 digits> or its name too long, or anything
 * ts_batch_cost rejects: ts_validate's checks and the record size limit)
 * is refused here, alone, and counted by reason.
 *
 * Shared state (the queue, counters, a posted subscription table) is
 * guarded by one mutex inside ingest.c; nothing else is shared between the
 * threads (the table in use is the network thread's alone).
 */
#ifndef EMBEDDB_AGENT_INGEST_H
#define EMBEDDB_AGENT_INGEST_H

#include "config.h"
#include "payload.h"

#include <stdint.h>

typedef struct ingest ingest;

/* A tensor's key is "<topic>#" and 20 digits: this many bytes beyond the
 * topic (the agent's batch.c builds them). */
#define INGEST_KEY_SUFFIX_LEN 21

/* A decoded message, owned by whoever popped it (ingest_msg_free). */
typedef struct ingest_msg {
    char *topic;
    payload_tensor t;
    int64_t recv_ns;         /* wall clock at arrival: the tensor's timestamp */
    uint64_t need;           /* settle barrier it waits for (0: none); ingest's */
    size_t sub;              /* the subscription it matched (index in the table
                                of its arrival; watermark.h) */
    char *pub;               /* its publisher id (watermark.h), NULL: untagged */
    uint64_t seq;            /* and message id */
    int64_t pub_time_ns;     /* the publisher's time, 0 when it sent none */
    int tag_bad;             /* tagged wrongly: stored as untagged */
    struct ingest_msg *next;
} ingest_msg;

typedef struct ingest_counters {
    uint64_t received;                   /* messages delivered to us */
    uint64_t decoded;
    uint64_t rejected[PAYLOAD_N_ERRS];   /* by reason (index PAYLOAD_OK unused) */
    uint64_t unmatched;                  /* no subscription matched the topic */
    uint64_t connects, disconnects;
    uint64_t connect_failures;           /* connection attempts that failed or
                                            were refused (TLS, CONNACK) */
    size_t held;                         /* read and not yet stored */
    uint64_t maybe_duplicated;           /* handed over without the broker's
                                            proof: it may send them again */
    uint64_t commands, commands_dropped; /* queued for the main thread; dropped
                                            (queue full, retained, no memory) */
    int connected, subscribed;
} ingest_counters;

/* The engine's view of m stored under key (borrowed: m and key outlive it). */
void ingest_msg_tensor(const ingest_msg *m, const uint8_t *key, size_t key_len, ts_tensor *out);

/* Sets up the client from cfg (borrowed for the call), holding at most
 * hold_n messages / hold_bytes as above. NULL with err set. */
ingest *ingest_new(const agent_config *cfg, size_t hold_n, uint64_t hold_bytes, char *err,
                   size_t errlen);
/* Connects (asynchronously; reconnects with exponential backoff forever)
 * and starts the network thread. 0 or -errno with err set. */
int ingest_start(ingest *in, char *err, size_t errlen);
/* Waits up to wait_ms for settled messages, then returns the oldest ones
 * queued (a list, oldest first), at most max_n of them and max_bytes
 * tensor bytes (the first one always, when max_n > 0), or NULL. *more (optional) is set
 * when messages stay queued because they did not fit. With max_n == 0 it
 * only waits (wait_ms, or until ingest_stop). */
ingest_msg *ingest_pop(ingest *in, uint64_t wait_ms, size_t max_n, uint64_t max_bytes,
                       int *more);
/* The caller stored (or gave up on) n popped messages of `bytes` tensor
 * bytes: they no longer count against the hold bound. */
void ingest_done(ingest *in, size_t n, uint64_t bytes);
/* Ends a wait in ingest_pop now (it returns what is there, maybe nothing):
 * the HTTP console queued a request for the main thread. Any thread. */
void ingest_wake(ingest *in);
/* Counts a tensor refused after it left the queue (the agent's commit). */
void ingest_count_rejected(ingest *in, payload_err why);
void ingest_msg_free(ingest_msg *m);
/* Replaces the subscriptions (SIGHUP): the network thread takes the new
 * table at its next loop pass (within 100 ms, or once it may read again),
 * unsubscribes what went away, subscribes to it and decodes with its specs
 * from then on. 0 or -ENOMEM. */
int ingest_update(ingest *in, const agent_config *cfg);
void ingest_counters_get(ingest *in, ingest_counters *out);
/* Fleet control (control.h): the network thread is the only one to touch
 * the MQTT handle, so the main thread's publications pass through here.
 *
 * ingest_set_will, before ingest_start: the Last Will (retained, QoS 1) on
 * topic, and `bye`, published retained on that topic by a graceful stop
 * (a DISCONNECT discards the will). Copies are taken. 0, -ENOMEM, or
 * -EINVAL from libmosquitto (a bad topic). */
int ingest_set_will(ingest *in, const char *topic, const void *will, size_t will_len,
                    const void *bye, size_t bye_len);
/* Queues a copy of payload for the network thread to publish at QoS 1 at its
 * next loop pass (within ~100 ms) once connected. A retained publication
 * replaces one still queued on the same topic (a newer status supersedes
 * an older one), so the queue holds at most INGEST_OUTBOX_MAX entries.
 * 0, -ENOMEM, or -EAGAIN when full (the caller drops or retries). */
#define INGEST_OUTBOX_MAX 64
int ingest_publish(ingest *in, const char *topic, const void *payload, size_t len, int retain);
/* Commands (control.h, agent/CONTROL.md "Commands"): messages on the
 * command filters are not data. The network thread queues them (at most
 * INGEST_CMD_QUEUE; beyond that they are dropped, counted and logged) for
 * the main thread, which decodes, carries out and answers them; a body over
 * INGEST_CMD_BODY_MAX is not copied (body NULL, len its size). */
#define INGEST_CMD_BODY_MAX 4096
#define INGEST_CMD_QUEUE 16
typedef struct ingest_cmd {
    char *topic;              /* as received */
    const char *verb;         /* its last level (points into topic) */
    uint8_t *body;            /* NULL when len > INGEST_CMD_BODY_MAX */
    size_t len;
    int retained;             /* the broker kept it: never carried out */
    char *response_topic;     /* MQTT 5's, or NULL */
    uint8_t *corr;            /* MQTT 5 correlation data, or NULL */
    size_t corr_len;
    struct ingest_cmd *next;
} ingest_cmd;
/* Before ingest_start: subscribe (QoS 1) to these two filters (copied) and
 * treat what arrives on them as commands. 0 or -ENOMEM. */
int ingest_set_commands(ingest *in, const char *own_filter, const char *fleet_filter);
/* The oldest queued command (the caller frees it) or NULL. */
ingest_cmd *ingest_take_command(ingest *in);
void ingest_cmd_free(ingest_cmd *c);
/* Queues a reply (not retained, QoS 1) on topic, with MQTT 5 correlation
 * data when corr is not NULL; as ingest_publish. */
int ingest_reply(ingest *in, const char *topic, const void *corr, size_t corr_len,
                 const void *payload, size_t len);
/* 1 once after each accepted connection (the main thread then publishes a
 * fresh status), else 0. */
int ingest_take_connected(ingest *in);
/* The arrival time (recv_ns) of the oldest message still queued, settled
 * or not; INT64_MAX when none is. A capture window waits for this to pass
 * its end, so that every tensor that arrived inside it is stored first. */
int64_t ingest_oldest_ns(ingest *in);
/* 1 when topic matches the MQTT filter (libmosquitto's rules), else 0. */
int ingest_topic_matches(const char *filter, const char *topic);
/* Disconnects and joins the network thread; queued messages stay poppable. */
void ingest_stop(ingest *in);
void ingest_free(ingest *in);

#endif
