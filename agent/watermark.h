/*
 * watermark.h -- what is durable, per subscription and per publisher: the
 * durable watermark the agent publishes on <prefix>/<device_id>/durable and
 * the de-duplication of republished messages (agent/CONTROL.md, "Durable
 * watermark"). Pure: no I/O, no locks, no libmosquitto; the main thread's
 * alone.
 *
 * A publisher tags a message with two MQTT 5 user properties:
 * WM_PROP_PUB (its publisher id) and WM_PROP_SEQ (its message id: a
 * publisher id names one sequence 1, 2, 3, ..., one more per message). Per publisher the table keeps `through`
 * (every id <= through is stored, or was given up by the publisher) and a
 * bitmap of the ids stored in (through, through + WM_WINDOW]. A message
 * whose id is at or below `through` or set in the bitmap is a duplicate and
 * is not stored again.
 *
 * The invariant: the table on flash is exactly the table of the tensors on
 * flash. It is not a file of its own: every batch holding a tagged message
 * carries one more tensor, WM_RECORD_PREFIX<20-digit counter>, the whole
 * table after that batch, in the same ts_save_batch (one frame, one
 * fdatasync: after a power cut both are there or neither). At start the
 * agent takes the newest record (ts_latest); after a seal moved the records
 * into the snapshot it saves the table again in the live store, and at
 * start a store without a record takes the newest snapshot's (a kill
 * between the two).
 *
 * Memory: at most max_publishers entries of sizeof(wm_pub); a new
 * publisher past that evicts the one seen longest ago (counted: its
 * republished duplicates may then be stored twice). An id more than
 * WM_WINDOW above `through` moves the window up: the ids it passes over are
 * given up (a publisher keeping at most WM_WINDOW unconfirmed messages,
 * as examples/durable_publisher.py does, never republishes those).
 */
#ifndef EMBEDDB_AGENT_WATERMARK_H
#define EMBEDDB_AGENT_WATERMARK_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

#define WM_PROP_PUB "embeddb-pub"
#define WM_PROP_SEQ "embeddb-seq"
#define WM_PROP_TIME "embeddb-time"    /* optional: the publisher's clock, ns */
#define WM_PUB_ID_MAX 64           /* bytes of [A-Za-z0-9._:-] */
#define WM_WINDOW 1024             /* ids tracked above `through` */
#define WM_RECORD_PREFIX "$embeddb/dedup#"
#define WM_PUBLISHERS_MAX 4096     /* control.dedup_publishers at most */

typedef struct wm_pub {
    char id[WM_PUB_ID_MAX + 1];
    uint64_t through;
    uint64_t bits[WM_WINDOW / 64]; /* bit i: id through + 1 + i is stored */
    uint64_t used;                 /* arrival counter of its newest message: LRU */
} wm_pub;

typedef struct wm_topic {
    uint64_t key;                  /* arrival counter of the newest durable tensor */
    int64_t time_ns;               /* its timestamp (arrival at the agent) */
    int64_t pub_time_ns;           /* the publisher's, or 0 when it sent none */
} wm_topic;

typedef struct wm_counters {
    uint64_t duplicates;           /* skipped: already stored */
    uint64_t untracked;            /* tagged wrongly: stored as untagged */
    uint64_t evicted;              /* publishers forgotten (the table was full) */
    uint64_t given_up;             /* ids passed over by a window move */
} wm_counters;

typedef struct watermark {
    size_t max_pubs;               /* 0: de-duplication off */
    wm_pub *pubs, *work;           /* durable table and the batch's; owned */
    size_t n, n_work;
    wm_counters c;
    wm_topic *topics;              /* one per subscription filter; owned */
    size_t n_topics;
    int dirty;                     /* changed since the last publication */
    /* record tensors: [0] of the durable table, [1] of the working one */
    struct wm_rec {
        char *data;
        char key[TS_MAX_KEY_LEN + 1];
        ts_tensor t;
    } rec[2];
} watermark;

/* An empty table for max_pubs publishers and n_topics filters. 0 or -ENOMEM. */
int wm_init(watermark *w, size_t max_pubs, size_t n_topics);
void wm_free(watermark *w);
/* SIGHUP: new limits; topics are reset (their filters may have changed),
 * publishers past the new cap are evicted oldest first. 0 or -ENOMEM. */
int wm_resize(watermark *w, size_t max_pubs, size_t n_topics);

/* Reads the tag of a message (the two property values, NULL when absent):
 * 1 with id / *out set when both are there and well formed, 0 when the
 * message carries neither, -1 when it is tagged wrongly (an id not 1..64
 * bytes of [A-Za-z0-9._:-], a seq not 1..2^64-1 in plain decimal, one
 * without the other). Pure, any bytes. */
int wm_tag_parse(const char *pub, const char *seq, char id[WM_PUB_ID_MAX + 1], uint64_t *out);
/* The optional publisher time: 1 with *ns set for plain decimal 0..2^63-1. */
int wm_time_parse(const char *s, int64_t *ns);

/* Starts a batch: the working table is the durable one. */
void wm_begin(watermark *w);
/* 1 when the message (id, seq) is a duplicate of what is stored or of an
 * earlier message of this batch; else records it in the working table and
 * returns 0. `used` is its arrival counter. */
int wm_take(watermark *w, const char *id, uint64_t seq, uint64_t used);
/* The record tensor of the working table (work 1) or the durable one
 * (work 0) under key counter `key`, or NULL when that table is empty (*err
 * -ENOMEM when it could not be built). Valid until the next wm_record of
 * the same table or wm_free; the two never disturb each other. */
const ts_tensor *wm_record(watermark *w, int work, uint64_t key, int64_t now_ns, int *err);
/* The batch was committed: the working table is now the durable one. */
void wm_commit(watermark *w);
/* A topic filter (index) now has `key` durable, with these times. */
void wm_topic_durable(watermark *w, size_t i, uint64_t key, int64_t time_ns, int64_t pub_time_ns);

/* Replaces the durable table with the one in a record tensor's data. 0, or
 * -EINVAL (corrupt: the table is left empty). Any bytes are safe. */
int wm_load(watermark *w, const void *data, size_t len);

/* The document for <prefix>/<device_id>/durable (CONTROL.md) into a buffer
 * it allocates (*out, caller frees), its length in *len. filters[i] names
 * topic i. 0 or -ENOMEM. */
int wm_json(const watermark *w, const char *device_id, const char *const *filters,
            int64_t now_ns, char **out, size_t *len);

#endif
