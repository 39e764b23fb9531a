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

/* ---- commands (agent/CONTROL.md, "Commands") ----------------------------- */

/* A command body (JSON) larger than this is refused unread. */
#define CONTROL_CMD_MAX INGEST_CMD_BODY_MAX
/* id and origin strings in a body: 1..64 printable ASCII bytes. */
#define CONTROL_ID_MAX 64

typedef enum control_verb {
    CONTROL_VERB_STATUS = 0,   /* publish the status now */
    CONTROL_VERB_SNAPSHOT,     /* seal a snapshot now */
    CONTROL_VERB_UPLOAD,       /* hand failed snapshots back to the uploader, look now */
    CONTROL_VERB_CAPTURE,      /* seal a capture window (control_capture) */
    CONTROL_N_VERBS
} control_verb;

/* Why a command was refused: the "error" word of a reply. */
typedef enum control_err {
    CONTROL_OK = 0,
    CONTROL_E_UNKNOWN_VERB,    /* no such verb */
    CONTROL_E_BAD_JSON,        /* the body is not one JSON object */
    CONTROL_E_BAD_FIELD,       /* an unknown key, a wrong type, a value out of range */
    CONTROL_E_TOO_LARGE,       /* body over CONTROL_CMD_MAX */
    CONTROL_E_RATE_LIMITED,    /* over control.command_rate */
    CONTROL_E_BUSY,            /* the command queue is full */
    CONTROL_E_FAILED,          /* understood, but carrying it out failed */
    CONTROL_N_ERRS
} control_err;

/* A capture window's limits (agent/CONTROL.md, "capture"): how far back
 * and ahead of the command a window may reach. */
#define CONTROL_PRE_MAX_MS AGENT_CAPTURE_PRE_MAX_MS   /* pre: at most 1 h */
#define CONTROL_POST_MAX_MS AGENT_CAPTURE_POST_MAX_MS /* post: at most 10 min */

/* The capture verb's body: a label, 1..SNAP_FILTERS_MAX topic filters, and
 * either pre/post (relative to the command's arrival) or from/to (absolute,
 * ns since the epoch). */
typedef struct control_capture {
    char label[SNAP_LABEL_MAX + 1];
    char filters[SNAP_FILTERS_MAX][SNAP_FILTER_MAX + 1];
    size_t n_filters;
    int absolute;              /* from/to given (else pre/post) */
    uint64_t pre_ms, post_ms;  /* relative: each within its limit, sum > 0 */
    int64_t from_ns, to_ns;    /* absolute: from < to, to - from <= pre + post limits */
} control_capture;

typedef struct control_cmd {
    control_verb verb;
    char id[CONTROL_ID_MAX + 1];     /* "" when absent: echoed in the reply */
    char origin[CONTROL_ID_MAX + 1]; /* "" when absent: who sent it, for the log */
    control_capture cap;             /* CONTROL_VERB_CAPTURE's */
} control_cmd;

const char *control_verb_name(control_verb v);
const char *control_err_name(control_err e);

/* Decodes the command `verb` (the topic's last level, NUL-terminated) with
 * body[0..len) (borrowed; empty means {}). CONTROL_OK with *out set, or
 * the refusal with a one-line reason in why (never the body itself beyond
 * 32 bytes). Pure; any bytes are safe (fuzzed: tests/fuzz/fuzz_command.c). */
control_err control_cmd_decode(const char *verb, const void *body, size_t len, control_cmd *out,
                               char *why, size_t whylen);

/*
 * The storm rule of capture.triggers (agent/CONTROL.md, "Local triggers"):
 * a trigger fired at t_ns, with its pre/post. When a window of it waits
 * (waiting: [*from, *to], first fired at first_ns), *to moves to t_ns +
 * post if later, but never past first_ns + CONTROL_POST_MAX_MS; returns 1
 * (folded). Else *from, *to become a new window [t_ns - pre, t_ns + post),
 * starting no earlier than last_to (the end of the trigger's last window),
 * and it returns 0; -1 when that window is empty (t_ns + post <= last_to).
 */
int control_trigger_window(int waiting, int64_t first_ns, int64_t last_to, int64_t t_ns,
                           uint64_t pre_ms, uint64_t post_ms, int64_t *from, int64_t *to);

/* A reply document into buf (control.h's sticky cursor: -ENOSPC, nothing
 * written, when cap is too small; CONTROL_REPLY_MAX always fits).
 * verb: the topic's last level as received (any bytes; escaped, cut to 48);
 * id: the command's ("" none); err CONTROL_OK with `extra` (a JSON fragment
 * of ,"key":value pairs or "") or an error with message. */
#define CONTROL_REPLY_MAX 1024
int control_reply_json(const char *device_id, const char *verb, const char *id, control_err err,
                       const char *message, const char *extra, char *buf, size_t cap,
                       size_t *len);

#endif
