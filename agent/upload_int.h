/*
 * upload_int.h -- the uploader's insides, shared by upload.c (the worker
 * thread, PUT and single-request S3 uploads) and multipart.c (S3 multipart
 * uploads). Not an API: nothing outside agent/upload*.c and multipart.c
 * includes it.
 */
#ifndef EMBEDDB_AGENT_UPLOAD_INT_H
#define EMBEDDB_AGENT_UPLOAD_INT_H

#include "http.h"
#include "ratelimit.h"
#include "upload.h"

#include "embeddb/plat_net.h"
#include "embeddb/wire.h"

#include <pthread.h>

struct uploader {
    /* immutable after upload_new */
    plat_vfs *vfs;            /* every snapshot file call goes through it */
    char *root, *device_id;
    int enabled;
    int mode, virtual_host, insecure, port;
    char *host, *base_path, *prefix, *token, *region, *bucket, *access_key, *secret;
    uint64_t connect_timeout_ms, io_timeout_ms, response_timeout_ms;
    uint64_t retry_initial_ms, retry_max_ms;
    uint64_t part_size;       /* upload.part_size: S3 multipart above this (multipart.h) */
    snap_codec codec;         /* upload.compression */
    int level;                /* its level (the codec's default when not configured) */
    int captures_only;        /* snapshot.mode: on_trigger */
    http_client *http;
    plat_cancel *cancel;      /* raised (under mu) by upload_stop and upload_delete */
    /* shared, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked, stop;
    int cancelled;            /* upload_delete wants `c.current` gone */
    char deleting[SNAP_NAME_MAX]; /* upload_delete is deleting it: never claim it */
    char held[SNAP_NAME_MAX]; /* cancelled for deletion: not claimed before ... */
    uint64_t held_until_ms;   /* ... this mono time, unless deleted first */
    upload_counters c;        /* c.current: the snapshot the worker has claimed */
    pthread_t thread;
    int started;
    /* worker-only */
    uint64_t backoff_ms;      /* next delay (0: none running) */
    uint64_t next_attempt_ms; /* mono; 0 = now */
    uint64_t rng;
    ratelimit rl;             /* upload.max_rate, across attempts */
};

/* The object key of si as uploaded (prefix, device, name, codec suffix),
 * percent-encoded for a path into ekey. 0 or -ENAMETOOLONG (msg set). */
int upload__key(const uploader *u, const snap_info *si, char *ekey, size_t ekey_len, char *msg,
                size_t msglen);

/*
 * One request of the uploader's mode for the object at ekey (from
 * upload__key), with query (no '?'; "" for none): the bearer token (put)
 * or a SigV4 signature over payload SHA-256 sha (s3, required there). The
 * body, len bytes, comes from fn (NULL when len is 0). content_type may be
 * NULL. what gets "METHOD /path?query to host:port" for messages.
 * Returns http_request_do's code, with herr its message.
 */
int upload__request(uploader *u, const char *method, const char *ekey, const char *query,
                    const char *sha, uint64_t len, http_body_fn fn, void *ctx,
                    const char *content_type, http_response *rsp, char *what, size_t what_len,
                    char *herr, size_t herr_len);

/*
 * A PUT whose body is the next len bytes of an open object (the whole
 * object, or one part of a multipart upload). They are read (compressed,
 * hashed, checked) on a readahead thread (readahead.h) while the calling
 * thread encrypts and sends them, and never a byte past them: the next
 * part goes on from there. With a check, the piece that completes them is
 * handed on only when they are what was measured or planned (else
 * `mismatch`), so bytes that differ are never sent whole.
 */
typedef struct upload_body {
    snap_object *obj;         /* borrowed; the readahead thread's during the request */
    snap_object_check *check; /* borrowed, for these bytes; NULL: not checked */
    int whole;                /* the object must end with them (check against its end) */
    int mismatch;             /* set when the check failed */
    /* upload__put_object's */
    uploader *u;
    uint64_t left;
    struct readahead *ra;
} upload_body;

/* upload__request("PUT", ...) with b's bytes as the body: starts the
 * readahead, sends, and joins it before returning, so b's object, check
 * and mismatch are the caller's again. Its code, or the readahead's
 * (herr set). */
int upload__put_object(uploader *u, upload_body *b, const char *ekey, const char *query,
                       const char *sha, uint64_t len, const char *content_type,
                       http_response *rsp, char *what, size_t what_len, char *herr,
                       size_t herr_len);

/* msg: "<what>: HTTP <status> <reason>: <first line of the body>". */
void upload__answer(const http_response *rsp, const char *what, char *msg, size_t msglen);

/* Body pacing shared by every request: waits (on the cancel flag) for
 * upload.max_rate's tokens for up to len bytes; 0 with *allow > 0, or the
 * cancel's code. */
int upload__pace(uploader *u, size_t len, size_t *allow);

/* Cancel check for snap_object_set_cancel (ctx: the plat_cancel). */
int upload__cancel_fired(void *ctx);

#endif
