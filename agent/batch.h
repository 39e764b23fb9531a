/*
 * batch.h -- the one batch between the ingest queue and the store.
 *
 * The main thread takes decoded messages from the ingest queue into the
 * batch, never more than batch.max_tensors messages and batch.max_bytes
 * tensor bytes (one message alone may be larger), and commits it with one
 * ts_save_batch when it is full or its oldest message has waited
 * batch.max_delay_ms. While a commit cannot go through, the batch stays
 * full, nothing more is taken, the queue fills and the MQTT thread stops
 * reading: the batch plus the queue (ingest.h) bound what the agent holds
 * of messages the broker considers delivered.
 *
 * Keys order each topic's tensors by arrival:
 *     <topic>#<20-digit arrival counter>
 * ('#' cannot occur in an MQTT topic name), so `embeddb ls DIR topic#`
 * lists a topic in arrival order. A key is never cut to fit: ingest refuses
 * topics too long for one (INGEST_KEY_SUFFIX_LEN).
 *
 * Not thread-safe: the main thread's alone.
 */
#ifndef EMBEDDB_AGENT_BATCH_H
#define EMBEDDB_AGENT_BATCH_H

#include "config.h"
#include "ingest.h"

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct batch {
    uint64_t max_tensors, max_bytes, max_delay_ms; /* batch.* of the config */
    ingest_msg *head, *tail;     /* owned */
    size_t n;
    uint64_t bytes;              /* tensor bytes */
    uint64_t first_mono_ns;      /* when the oldest message was taken */
    int blocked;                 /* the queue holds a message that did not fit */
    /* the engine's view of the batch (batch_view), reused */
    ts_tensor *t;
    const ts_tensor **ptrs;
    char *keys;
    size_t cap;
} batch;

/* An empty batch with cfg's batch limits. */
void batch_init(batch *b, const agent_config *cfg);
/* Adopts new limits (SIGHUP); a batch already over them is committed as it is. */
void batch_set_limits(batch *b, const agent_config *cfg);
/* Frees every message and buffer. */
void batch_free(batch *b);

/* How many more messages and tensor bytes the batch takes (0 messages when
 * it is full). */
void batch_room(const batch *b, size_t *n, uint64_t *bytes);
/* Takes ownership of a list from ingest_pop; `more` is its *more. */
void batch_add(batch *b, ingest_msg *list, int more, uint64_t now_mono_ns);
/* 1 when the batch should be committed now. */
int batch_due(const batch *b, uint64_t now_mono_ns);
/* Milliseconds until it is due by age (0 when due or empty). */
uint64_t batch_wait_ms(const batch *b, uint64_t now_mono_ns);

/*
 * The batch as engine tensors, keyed from counter first_key on: *out
 * points at b->n pointers valid until the batch changes. 0, -ENOMEM, or
 * -ENAMETOOLONG with *bad the index of a message whose key would not fit
 * (ingest refuses those; this is the last line).
 */
int batch_view(batch *b, uint64_t first_key, const ts_tensor *const **out, size_t *bad);

/* Removes message i (a tensor the store refused) and returns it; the
 * caller frees it (ingest_msg_free). */
ingest_msg *batch_remove(batch *b, size_t i);
/* Frees every message: the batch was committed. */
void batch_clear(batch *b);

#endif
