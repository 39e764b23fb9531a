/*
 * upload.h -- the snapshot worker: one thread that finishes seals (hashing
 * is slow on a small board, so it never runs on the ingest thread) and
 * uploads each sealed snapshot, oldest first, as one tar object over TLS
 * (http.h), with a bearer token (mode put) or AWS Signature V4 (mode s3),
 * compressed on the fly when upload.compression says so (wire.h); in mode
 * s3 an object larger than upload.part_size goes up as a resumable
 * multipart upload (multipart.h). A
 * compressed object's length and SHA-256 are measured by one counting pass
 * before its first attempt (cancelled by a stop like a request) and kept in
 * STATE; an object that comes out different from its measure is stopped
 * before its last byte and retried (measured again). With upload.max_rate
 * the body waits for a token bucket (ratelimit.h), on the cancel flag.
 *
 * Outcomes per attempt, persisted in the snapshot's STATE (snapshot.h):
 *   2xx after the whole body   -> uploaded
 *   2xx before the whole body  -> sealed again, retried (the server
 *                                 confirmed bytes it never got: logged as
 *                                 an error, never taken as an upload)
 *   5xx, 408, 429, network/TLS,
 *   any timeout                -> sealed again; retried after a backoff
 *                                 doubling from upload.retry.initial to
 *                                 .max, with jitter (half to all of it)
 *   other statuses             -> failed, with the server's reason; left for
 *                                 an operator (`embeddb snapshot retry`)
 *   our own stop               -> sealed, not counted (the next start retries)
 * Nothing is deleted here: retention is the main thread's (agent.c), which
 * deletes through upload_delete.
 *
 * Threads and locks: one mutex inside upload.c guards memory only -- the
 * counters, the name being uploaded, the kick/stop flags. No file or
 * network I/O happens under it, so upload_counters_get and upload_delete
 * never wait for the worker's fsyncs or the network. upload_stop and
 * upload_delete end a request in flight through a cancel flag every wait
 * of http.c watches, so the worker lets go within milliseconds, whatever
 * the server does (connect, handshake, body or response).
 */
#ifndef EMBEDDB_AGENT_UPLOAD_H
#define EMBEDDB_AGENT_UPLOAD_H

#include "config.h"
#include "embeddb/snapshot.h"

#include <stdint.h>

typedef struct uploader uploader;

typedef struct upload_counters {
    uint64_t sealed;          /* snapshots the worker finished sealing */
    uint64_t seal_failures;   /* seals set aside as failed (damaged) */
    uint64_t uploaded;        /* confirmed by the server */
    uint64_t failed;          /* refused (4xx) */
    uint64_t retries;         /* attempts that will be retried */
    uint64_t bytes_uploaded;  /* object bytes (as sent: tar or compressed) of confirmed
                                 uploads */
    char current[SNAP_NAME_MAX]; /* being uploaded now, "" when idle */
    char last_error[256];
} upload_counters;

/* A worker for the snapshots under root (borrowed copy taken) with cfg's
 * device_id and upload section (copied); every snapshot file call goes
 * through vfs (borrowed: it outlives the worker). Loads the CA, certificate
 * and key when uploads are configured. NULL with err set on failure. */
uploader *upload_new(const agent_config *cfg, plat_vfs *vfs, const char *root, char *err,
                     size_t errlen);
/* Starts the thread. 0 or -errno. */
int upload_start(uploader *u);
/* Something changed (a seal began, a state was reset): look now, except
 * that a backoff in progress is honoured. */
void upload_kick(uploader *u);
/*
 * Main thread (one caller at a time), to delete snapshot `name`; never
 * waits for the worker's disk or network I/O.
 *  - The worker is not on `name`: calls del(root, name) without the lock
 *    (the worker will not start on `name` until del returns) and returns
 *    del's result.
 *  - The worker is on `name` (uploading it, or writing its STATE): does NOT
 *    call del; cancels that upload and returns -EBUSY. The worker lets go
 *    within milliseconds, leaves the snapshot `sealed` (or `uploaded`, if
 *    the server had already confirmed the whole body) and then keeps off it
 *    for DELETE_HOLD_MS (10 s) unless it is deleted first. Call again
 *    later, e.g. at the next retention tick: the snapshot is still there
 *    and no byte of it was lost; re-list first, its state may have become
 *    `uploaded`.
 */
int upload_delete(uploader *u, const char *name,
                  int (*del)(plat_vfs *vfs, const char *root, const char *name));
void upload_counters_get(uploader *u, upload_counters *out);
/* Asks the thread to stop (an upload in flight is cancelled at once,
 * wherever it waits, and retried at the next start) and joins it. The
 * join waits at most for a STATE write, or for the seal being finished
 * (hashing). Safe to call twice. */
void upload_stop(uploader *u);
void upload_free(uploader *u);

/* Pure helpers, exposed for the unit tests. */
/* 1 when an attempt is worth a retry: a transport error (rc < 0, except
 * -EBADMSG, a snapshot that cannot be read), or a final answer (rc 0) of
 * status 5xx, 408 or 429. */
int upload_retryable(int rc, int status);
/* Object key "<prefix>/<device>/<name><suffix>" (prefix may be empty;
 * suffix ".tar", ".tar.gz" or ".tar.zst"). */
int upload_object_key(const char *prefix, const char *device_id, const char *name,
                      const char *suffix, char *out, size_t len);

#endif
