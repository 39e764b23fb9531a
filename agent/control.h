/*
 * control.h -- the agent's side of fleet control over MQTT: the topics
 * under <control.prefix>/<device_id>/ and the JSON it publishes there (every
 * field in agent/CONTROL.md). Pure functions: no I/O, no locks, no
 * libmosquitto; the main thread builds a document here and hands it to the
 * network thread through ingest_publish, which alone touches the MQTT
 * handle.
 */
#ifndef EMBEDDB_AGENT_CONTROL_H
#define EMBEDDB_AGENT_CONTROL_H

#include "ingest.h"
#include "status.h"

#include "embeddb/snapshot.h"

#include <stddef.h>
#include <stdint.h>

/* Version 1 of every document in agent/CONTROL.md ("v" field). */
#define CONTROL_FORMAT_VERSION 1
/* The largest status document: it has a fixed set of fields, numbers of at
 * most 20 digits and a device id of at most 64 bytes, well under this. */
#define CONTROL_STATUS_MAX 2048
/* <prefix>/<device_id>/<leaf>: prefix <= 128, device_id <= 64, leaf <= 48. */
#define CONTROL_TOPIC_MAX 256

/* What a status document says (all borrowed for the call). */
typedef struct control_status {
    const char *device_id;
    int online;
    const char *reason;        /* offline: "stopped" or "lost"; NULL when online */
    int64_t time_ns;           /* wall clock when built */
    uint64_t uptime_ms;
    const ingest_counters *in; /* NULL in an offline document */
    const agent_counts *a;
    uint64_t flash_used, flash_limit, flash_free; /* limit 0: none; free UINT64_MAX: unknown */
    uint64_t snapshots[SNAP_SEALING + 1];         /* by snap_state */
    uint64_t backlog_bytes;    /* bytes of snapshots not yet uploaded */
} control_status;

/* <prefix>/<device_id>/<leaf> into buf. 0, or -ENAMETOOLONG when it does
 * not fit cap bytes (with its NUL). */
int control_topic(char *buf, size_t cap, const char *prefix, const char *device_id,
                  const char *leaf);

/* The status document of s into buf (NUL-terminated), its length in *len.
 * 0, or -ENOSPC when cap is too small (buf then holds no document). */
int control_status_json(const control_status *s, char *buf, size_t cap, size_t *len);

#endif
