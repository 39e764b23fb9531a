/*
 * upload.c -- the snapshot worker thread (contract in upload.h).
 *
 * The thread loops: finish any pending seals; if uploads are configured and
 * no backoff is running, upload the oldest sealed snapshot; then sleep until
 * kicked, stopped, or the backoff ends. The tar stream is built on the fly
 * from the snapshot's files (tar.h), so memory stays at one buffer whatever
 * the snapshot's size; its length and SHA-256 were fixed at seal time, which
 * is what S3's x-amz-content-sha256 needs before the first byte is sent. A
 * compressed object (wire.h) gets its own by measure(), kept in STATE.
 * A PUT's body -- the whole object here, one part in multipart.c -- is
 * read (compressed, checked) on a readahead thread (readahead.h) while
 * this one encrypts and sends (upload__put_object).
 *
 * Success is decided here, on two signals: the server answered 2xx AND
 * every byte of the body went out before that answer (http.h's `early`).
 * A 2xx that came first is a server confirming what it never received;
 * believing it would let retention delete data the server does not have.
 *
 * Locking: `mu` guards memory only (counters, flags, the names below); no
 * file or network I/O happens under it, so the main thread's status writes
 * and retention never wait on the worker's fsyncs. The worker "claims" a
 * snapshot by naming it in `c.current` (under mu) before it writes its
 * STATE and keeps that name until its last write is done; upload_delete
 * refuses (-EBUSY, cancelling the upload) a claimed snapshot, and names the
 * one it is deleting in `deleting`, which the worker will not claim.
 */
#include "upload_int.h"

#include "log.h"
#include "multipart.h"
#include "readahead.h"
#include "sigv4.h"

#include "embeddb/plat.h"
#include "embeddb/plat_net.h"
#include "embeddb/wire.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_WAIT_MS 30000  /* rescan now and then even without a kick */
#define DELETE_HOLD_MS 10000 /* a snapshot upload_delete asked for: left alone this long */


int upload_retryable(int rc, int status)
{
    if (rc)
        return rc != -EBADMSG; /* transport trouble, except a snapshot we cannot read */
    return status >= 500 || status == 408 || status == 429;
}

int upload_object_key(const char *prefix, const char *device_id, const char *name,
                      const char *suffix, char *out, size_t len)
{
    size_t pl = strlen(prefix);
    while (pl && prefix[pl - 1] == '/')
        pl--;
    while (pl && prefix[0] == '/') {
        prefix++;
        pl--;
    }
    int n = snprintf(out, len, "%.*s%s%s/%s%s", (int)pl, prefix, pl ? "/" : "", device_id,
                     name, suffix);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = 1;
    return d;
}

uploader *upload_new(const agent_config *cfg, plat_vfs *vfs, const char *root, char *err,
                     size_t errlen)
{
    uploader *u = calloc(1, sizeof(*u));
    int oom = 0;
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&u->mu, NULL);
    plat_cond_init_mono(&u->cv);
    u->vfs = vfs;
    u->root = dup_or_null(root, &oom);
    u->device_id = dup_or_null(cfg->device_id, &oom);
    u->enabled = cfg->upload.enabled;
    u->captures_only = cfg->snapshot.on_trigger;
    u->mode = cfg->upload.mode;
    u->virtual_host = cfg->upload.virtual_host;
    u->insecure = cfg->upload.insecure;
    u->port = cfg->upload.port;
    u->host = dup_or_null(cfg->upload.host, &oom);
    u->base_path = dup_or_null(cfg->upload.base_path, &oom);
    u->prefix = dup_or_null(cfg->upload.prefix ? cfg->upload.prefix : "", &oom);
    u->token = dup_or_null(cfg->upload.token, &oom);
    u->region = dup_or_null(cfg->upload.region, &oom);
    u->bucket = dup_or_null(cfg->upload.bucket, &oom);
    u->access_key = dup_or_null(cfg->upload.access_key, &oom);
    u->secret = dup_or_null(cfg->upload.secret, &oom);
    u->connect_timeout_ms = cfg->upload.connect_timeout_ms;
    u->io_timeout_ms = cfg->upload.io_timeout_ms;
    u->response_timeout_ms = cfg->upload.response_timeout_ms;
    u->retry_initial_ms = cfg->upload.retry_initial_ms;
    u->retry_max_ms = cfg->upload.retry_max_ms;
    u->part_size = cfg->upload.part_size;
    u->codec = (snap_codec)cfg->upload.compression;
    {
        int lo, hi, dflt;
        snap_codec_levels(u->codec, &lo, &hi, &dflt);
        u->level = cfg->upload.level ? cfg->upload.level : dflt;
    }
    u->rng = plat_mono_ns() | 1;
    ratelimit_init(&u->rl, cfg->upload.max_rate, plat_mono_ns());
    if (oom || plat_cancel_new(&u->cancel)) {
        snprintf(err, errlen, "out of memory (or descriptors)");
        upload_free(u);
        return NULL;
    }
    if (u->enabled) {
        http_tls tls = {.ca_file = cfg->upload.ca_file, .cert_file = cfg->upload.cert_file,
                        .key_file = cfg->upload.key_file, .insecure = cfg->upload.insecure,
                        .suites = cfg->upload.ciphersuites,
                        .n_suites = cfg->upload.n_ciphersuites};
        char msg[512];
        if (http_client_new(&tls, &u->http, msg, sizeof(msg))) {
            snprintf(err, errlen, "upload: %s", msg);
            upload_free(u);
            return NULL;
        }
        agent_log(LOG_LEVEL_INFO, "upload: TLS cipher suites: %s, first %s", cfg->upload.n_ciphersuites
                  ? "as configured" : http_aes_accelerated() ? "mbedTLS's AEAD order (AES "
                  "instructions here)" : "ChaCha20-Poly1305 first (no AES instructions here)",
                  http_client_first_suite(u->http));
    }
    return u;
}

/* ---- one attempt --------------------------------------------------------- */

void upload__answer(const http_response *rsp, const char *what, char *msg, size_t msglen)
{
    /* One line of the server's body, for the operator. */
    char first[200];
    snprintf(first, sizeof(first), "%.*s", (int)rsp->body_len, rsp->body);
    first[strcspn(first, "\r\n")] = 0;
    snprintf(msg, msglen, "%s: HTTP %d %s%s%s", what, rsp->status, rsp->reason,
             first[0] ? ": " : "", first);
}

int upload__cancel_fired(void *ctx)
{
    return plat_cancel_fired(ctx);
}

int upload__pace(uploader *u, size_t len, size_t *allow)
{
    uint64_t wait_ns;
    int rc;
    /* upload.max_rate: wait for tokens on the cancel flag, so a stop or a
     * delete never waits for the bucket. */
    while (!(*allow = ratelimit_grant(&u->rl, plat_mono_ns(), len, &wait_ns)))
        if ((rc = plat_cancel_wait(u->cancel, (wait_ns + 999999) / 1000000)))
            return rc;
    return 0;
}

int upload__key(const uploader *u, const snap_info *si, char *ekey, size_t ekey_len, char *msg,
                size_t msglen)
{
    char key[1024];
    int rc;
    if ((rc = upload_object_key(u->prefix, u->device_id, si->name, snap_codec_suffix(u->codec),
                                key, sizeof(key))) ||
        (rc = sigv4_uri_encode(key, 1, ekey, ekey_len)))
        snprintf(msg, msglen, "%s: object name too long", si->name);
    return rc;
}

int upload__request(uploader *u, const char *method, const char *ekey, const char *query,
                    const char *sha, uint64_t len, http_body_fn fn, void *ctx,
                    const char *content_type, http_response *rsp, char *what, size_t what_len,
                    char *herr, size_t herr_len)
{
    char path[4096], host[512], hosthdr[600], date[17], authz[1024];
    char h_date[64], h_sha[128], h_auth[1100], h_type[64];
    const char *headers[4];
    size_t nh = 0;
    int rc, s3 = u->mode == AGENT_UPLOAD_S3;
    memset(rsp, 0, sizeof(*rsp));
    snprintf(host, sizeof(host), "%s%s%s", s3 && u->virtual_host ? u->bucket : "",
             s3 && u->virtual_host ? "." : "", u->host);
    if (s3 && !u->virtual_host)
        rc = snprintf(path, sizeof(path), "%s/%s/%s", u->base_path, u->bucket, ekey);
    else
        rc = snprintf(path, sizeof(path), "%s/%s", u->base_path, ekey);
    size_t pl = (size_t)rc;
    if (rc < 0 || pl >= sizeof(path) ||
        (query[0] && (size_t)snprintf(path + pl, sizeof(path) - pl, "?%s", query) >=
                         sizeof(path) - pl)) {
        snprintf(herr, herr_len, "request path too long");
        snprintf(what, what_len, "%s %s", method, ekey);
        return HTTP_EINVAL;
    }
    snprintf(what, what_len, "%s %.200s to %.100s:%d", method, path, host, u->port);
    if (content_type) {
        snprintf(h_type, sizeof(h_type), "Content-Type: %s", content_type);
        headers[nh++] = h_type;
    }
    if (s3) {
        /* The Host header http.c sends: the port only when not 443. */
        if (u->port == 443)
            snprintf(hosthdr, sizeof(hosthdr), "%s", host);
        else
            snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, u->port);
        sigv4_amz_date(plat_now_ns() / 1000000000, date);
        sigv4_header sh[] = {{"host", hosthdr}, {"x-amz-content-sha256", sha},
                             {"x-amz-date", date}};
        path[pl] = 0; /* signed apart from the query */
        sigv4_request sr = {.method = method, .path = path, .query = query, .headers = sh,
                            .n_headers = 3, .payload_sha256 = sha};
        sigv4_key k = {.access_key = u->access_key, .secret_key = u->secret,
                       .region = u->region, .service = "s3"};
        rc = sigv4_sign(&sr, &k, date, SIGV4_S3, authz, sizeof(authz), NULL, 0, NULL, 0);
        if (query[0])
            path[pl] = '?';
        if (rc) {
            snprintf(herr, herr_len, "signing failed: %s", strerror(-rc));
            return HTTP_EINVAL;
        }
        snprintf(h_date, sizeof(h_date), "x-amz-date: %s", date);
        snprintf(h_sha, sizeof(h_sha), "x-amz-content-sha256: %s", sha);
        snprintf(h_auth, sizeof(h_auth), "Authorization: %s", authz);
        headers[nh++] = h_date;
        headers[nh++] = h_sha;
        headers[nh++] = h_auth;
    } else if (u->token) {
        snprintf(h_auth, sizeof(h_auth), "Authorization: Bearer %s", u->token);
        headers[nh++] = h_auth;
    }
    if (u->insecure)
        agent_log(LOG_LEVEL_WARNING, "upload: connecting to %s:%d WITHOUT verifying its "
                  "certificate (upload.insecure is set)", host, u->port);
    http_request rq = {.method = method, .host = host, .port = u->port, .path = path,
                       .headers = headers, .n_headers = nh, .content_length = len,
                       .body = fn, .body_ctx = ctx,
                       .connect_timeout_ms = u->connect_timeout_ms,
                       .io_timeout_ms = u->io_timeout_ms,
                       .response_timeout_ms = u->response_timeout_ms, .cancel = u->cancel};
    rc = http_request_do(u->http, &rq, rsp, herr, herr_len);
    if (rsp->suite[0])
        agent_log(LOG_LEVEL_DEBUG, "upload: %s: TLS suite %s", what, rsp->suite);
    memset(h_auth, 0, sizeof(h_auth));
    return rc;
}

/* The body (upload_int.h): read (compressed, checked) on a readahead
 * thread while this one encrypts and sends: on one thread zstd at its
 * default level could not keep a 100 Mbit/s link full here. */
#define BODY_PIECE (64u << 10) /* wire.c's output chunk */
/* 1 MiB ahead, 80 ms of a 100 Mbit/s link: with 4 pieces (20 ms) a sender
 * kept waiting for a CPU on a loaded machine stalled the compressor, and
 * the pair did worse than one thread had. */
#define BODY_PIECES 16u

/* On the readahead thread: at most b->left bytes, never past them. */
static int body_produce(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    upload_body *b = ctx;
    int rc;
    *got = 0;
    if (len > b->left)
        len = (size_t)b->left;
    if (!len)
        return 0;
    rc = snap_object_read(b->obj, buf, len, got);
    if (!rc && b->check &&
        (rc = snap_object_check_piece(b->check, b->whole ? b->obj : NULL, buf, *got)))
        b->mismatch = rc == -EBADMSG;
    b->left -= *got;
    return rc;
}

static int body(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    upload_body *b = ctx;
    size_t allow;
    int rc;
    *got = 0;
    if ((rc = upload__pace(b->u, len, &allow)))
        return rc;
    rc = readahead_read(b->ra, buf, allow, got);
    ratelimit_take(&b->u->rl, *got);
    return rc;
}

int upload__put_object(uploader *u, upload_body *b, const char *ekey, const char *query,
                       const char *sha, uint64_t len, const char *content_type,
                       http_response *rsp, char *what, size_t what_len, char *herr,
                       size_t herr_len)
{
    int rc;
    b->u = u;
    b->left = len;
    if ((rc = readahead_new(body_produce, b, BODY_PIECE, BODY_PIECES, &b->ra))) {
        snprintf(what, what_len, "PUT %s", ekey);
        snprintf(herr, herr_len, "starting the readahead thread: %s", strerror(-rc));
        return rc;
    }
    rc = upload__request(u, "PUT", ekey, query, sha, len, body, b, content_type, rsp, what,
                         what_len, herr, herr_len);
    readahead_free(b->ra); /* joined: b's object, check and mismatch are ours again */
    b->ra = NULL;
    return rc;
}

/* Uploads si in one PUT. 0 when a final answer came (*status: its HTTP
 * status, a 2xx only for the whole body), else a negative code (transport,
 * TLS, a snapshot that cannot be read, an answer before the body); msg says
 * what happened. A compressed object is checked against what was measured
 * (length, SHA-256): one that came out different (a library upgrade since
 * it was measured) is never sent whole. */
static int attempt(uploader *u, snap_info *si, int *status, char *msg, size_t msglen)
{
    char ekey[3072], what[400], herr[512];
    upload_body src = {.whole = 1};
    http_response rsp;
    int rc, plain = u->codec == SNAP_CODEC_NONE;
    uint64_t len = plain ? si->tar_bytes : si->object_bytes;
    const char *sha = plain ? si->tar_sha256 : si->object_sha256;
    *status = 0;
    if ((rc = snap_object_open(u->vfs, u->root, si->name, snap_tar_mtime(si), si->tar_bytes,
                               u->codec, u->level, &src.obj, msg, msglen)))
        goto out;
    snap_object_set_cancel(src.obj, upload__cancel_fired, u->cancel);
    if (!plain && !(src.check = snap_object_check_new(len, sha))) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = upload__key(u, si, ekey, sizeof(ekey), msg, msglen)))
        goto out;
    rc = upload__put_object(u, &src, ekey, "", sha, len, snap_codec_mime(u->codec), &rsp, what,
                            sizeof(what), herr, sizeof(herr));
    if (rc == HTTP_EBODY && plat_cancel_fired(u->cancel)) {
        snprintf(msg, msglen, "%s: cancelled", what);
        rc = HTTP_ECANCELED;
    } else if (rc == HTTP_EBODY && src.mismatch) {
        /* Retried: the next attempt measures again (STATE loses the old
         * figures in settle). */
        snprintf(msg, msglen, "%s: its %s object came out different from the one measured "
                 "(%" PRIu64 " bytes, SHA-256 %.12s...): not sent whole; measured again next",
                 si->name, snap_codec_name(u->codec), len, sha);
        si->object_codec[0] = 0;
        rc = -EAGAIN;
    } else if (rc == HTTP_EBODY && snap_object_error(src.obj)[0]) {
        snprintf(msg, msglen, "%s: reading the snapshot: %s", si->name,
                 snap_object_error(src.obj));
        rc = -EBADMSG;
    } else if (rc) {
        snprintf(msg, msglen, "%s: %s", what, herr);
    } else if (rsp.status >= 200 && rsp.status < 300 && rsp.bytes_sent != len) {
        /* A confirmation of bytes the server never got: not an upload. The
         * promise itself (every byte sent), checked where it is decided,
         * not through http.c's early flag that follows from it. */
        snprintf(msg, msglen, "%s: HTTP %d %s before the whole body was sent (%" PRIu64 " of %"
                 PRIu64 " bytes): not taken as uploaded", what, rsp.status, rsp.reason,
                 rsp.bytes_sent, len);
        agent_log(LOG_LEVEL_ERROR, "upload: %s: the server answered %d after only %" PRIu64
                  " of %" PRIu64 " body bytes (%s); it cannot have stored the snapshot, so "
                  "it is NOT counted as uploaded and will be sent again", si->name, rsp.status,
                  rsp.bytes_sent, len, what);
        rc = -EPROTO;
    } else {
        upload__answer(&rsp, what, msg, msglen);
        *status = rsp.status;
    }
out:
    snap_object_check_free(src.check);
    snap_object_free(src.obj);
    return rc;
}

/* ---- the thread ------------------------------------------------------------ */

static uint64_t jitter(uploader *u, uint64_t ms)
{
    u->rng ^= u->rng << 13;
    u->rng ^= u->rng >> 7;
    u->rng ^= u->rng << 17;
    return ms / 2 + (ms ? u->rng % (ms / 2 + 1) : 0);
}

/* Sleeps until kicked/stopped or until mono time `until_ms` (0: no limit
 * beyond IDLE_WAIT_MS). Called with mu held. */
static void wait_locked(uploader *u, uint64_t until_ms)
{
    uint64_t now = plat_mono_ms();
    uint64_t wake = now + IDLE_WAIT_MS;
    if (until_ms && until_ms < wake)
        wake = until_ms;
    struct timespec ts = plat_mono_after_ms(wake - now);
    while (!u->kicked && !u->stop && plat_mono_ms() < wake)
        pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    u->kicked = 0;
}

/* Bytes of the object as sent. */
static uint64_t wire_bytes(const uploader *u, const snap_info *si)
{
    return u->codec == SNAP_CODEC_NONE ? si->tar_bytes : si->object_bytes;
}

/* Records an attempt's outcome: STATE first (the worker still holds its
 * claim, so nothing deletes the snapshot meanwhile), then the counters, so
 * a reader of the counters finds STATE already written; then releases the
 * claim. A snapshot upload_delete asked for is left sealed (unless the
 * server did confirm it) and held back from the next attempts for a while,
 * so the main thread's next try can delete it. */
static void settle(uploader *u, snap_info *si, int rc, int status, const char *msg,
                   uint64_t took_ms)
{
    int stopping, cancelled, ok = !rc && status >= 200 && status < 300, retry = 0, failed = 0, w;
    uint64_t d = 0;
    pthread_mutex_lock(&u->mu);
    stopping = u->stop;
    cancelled = u->cancelled;
    pthread_mutex_unlock(&u->mu);

    if (ok) {
        si->state = SNAP_UPLOADED;
        si->error[0] = 0;
        u->backoff_ms = 0;
        u->next_attempt_ms = 0;
        agent_log(LOG_LEVEL_NOTICE, "upload: %s uploaded (%" PRIu64 " bytes%s%s in %" PRIu64
                  " ms, attempt %" PRIu64 ")", si->name, wire_bytes(u, si),
                  u->codec == SNAP_CODEC_NONE ? "" : ", ", u->codec == SNAP_CODEC_NONE ? ""
                  : snap_codec_name(u->codec), took_ms, si->attempts);
    } else if (cancelled) {
        si->state = SNAP_SEALED; /* wanted gone: no retry, no failure */
        agent_log(LOG_LEVEL_INFO, "upload: %s: upload cancelled, the snapshot is to be deleted",
                  si->name);
    } else if (stopping && rc < 0) {
        si->state = SNAP_SEALED; /* interrupted by our own stop: not a failure */
    } else if (upload_retryable(rc, status)) {
        si->state = SNAP_SEALED;
        snprintf(si->error, sizeof(si->error), "%.255s", msg);
        retry = 1;
        u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : u->retry_initial_ms;
        if (u->backoff_ms > u->retry_max_ms)
            u->backoff_ms = u->retry_max_ms;
        d = jitter(u, u->backoff_ms);
        u->next_attempt_ms = plat_mono_ms() + d;
        agent_log(LOG_LEVEL_WARNING, "upload: %s (attempt %" PRIu64 "); retrying in %" PRIu64
                  " ms", msg, si->attempts, d);
    } else {
        si->state = SNAP_FAILED;
        snprintf(si->error, sizeof(si->error), "%.255s", msg);
        failed = 1;
        u->backoff_ms = 0;
        u->next_attempt_ms = 0;
        agent_log(LOG_LEVEL_ERROR, "upload: %s failed for good: %s; kept for an operator "
                  "(embeddb snapshot retry)", si->name, msg);
    }
    si->updated_ns = plat_now_ns();
    if ((w = snap_write_state(u->vfs, u->root, si)))
        agent_log(LOG_LEVEL_ERROR, "upload: writing %s/%s/STATE: %s", u->root, si->name,
                  ts_strerror(w));
    else if (ok)
        multipart_done(u, si->name);
    if (failed && (w = snap_queue_abort(u->vfs, u->root, si->name)))
        agent_log(LOG_LEVEL_ERROR, "upload: %s: setting its multipart upload aside for an "
                  "abort: %s", si->name, ts_strerror(w));

    pthread_mutex_lock(&u->mu);
    if (ok) {
        u->c.uploaded++;
        u->c.bytes_uploaded += wire_bytes(u, si);
    }
    u->c.retries += (uint64_t)retry;
    u->c.failed += (uint64_t)failed;
    if (!ok && !cancelled && !(stopping && rc < 0))
        snprintf(u->c.last_error, sizeof(u->c.last_error), "%.255s", msg);
    if (u->cancelled && !ok) { /* also when asked while STATE was being written */
        snprintf(u->held, sizeof(u->held), "%s", si->name);
        u->held_until_ms = plat_mono_ms() + DELETE_HOLD_MS;
    }
    u->c.current[0] = 0;
    u->cancelled = 0;
    pthread_mutex_unlock(&u->mu);
}

/* The oldest capture window waiting for upload, else the oldest other
 * snapshot, except one held back; 0 when there is one. */
static int next_candidate(uploader *u, snap_info *out)
{
    char held[SNAP_NAME_MAX];
    snap_info *v = NULL;
    size_t n = 0;
    int found = -1;
    pthread_mutex_lock(&u->mu);
    if (u->held[0] && plat_mono_ms() >= u->held_until_ms)
        u->held[0] = 0;
    snprintf(held, sizeof(held), "%s", u->held);
    pthread_mutex_unlock(&u->mu);
    /* Capture windows first (agent/CONTROL.md, "capture"), then the rest
     * (with snapshot.mode: on_trigger, nothing else). */
    if (snap_list(u->vfs, u->root, &v, &n, NULL, 0) == 0)
        for (int pass = 0; pass < 2 - u->captures_only && found; pass++)
            for (size_t i = 0; i < n && found; i++)
                if ((v[i].state == SNAP_SEALED || v[i].state == SNAP_UPLOADING) &&
                    (pass || v[i].capture[0]) && strcmp(v[i].name, held)) {
                    *out = v[i];
                    found = 0;
                }
    free(v);
    return found;
}

/* A compressed object's length and SHA-256, unless STATE already has them
 * for this codec and level: one counting pass (wire.h), cut short by the
 * cancel flag like a request, then written to STATE so a restart does not
 * pay it again. 0, or a code for settle (msg set). */
static int measure(uploader *u, snap_info *si, char *msg, size_t msglen)
{
    uint64_t bytes = 0, t0 = plat_mono_ms();
    char sha[65];
    int rc, w;
    if (u->codec == SNAP_CODEC_NONE ||
        (!strcmp(si->object_codec, snap_codec_name(u->codec)) && si->object_level == u->level))
        return 0;
    if ((rc = snap_object_measure(u->vfs, u->root, si->name, snap_tar_mtime(si), si->tar_bytes,
                                  u->codec, u->level, upload__cancel_fired, u->cancel, &bytes, sha, msg,
                                  msglen)))
        return rc;
    snprintf(si->object_codec, sizeof(si->object_codec), "%s", snap_codec_name(u->codec));
    si->object_level = u->level;
    si->object_bytes = bytes;
    snprintf(si->object_sha256, sizeof(si->object_sha256), "%s", sha);
    agent_log(LOG_LEVEL_INFO, "upload: %s: %s level %d object of %" PRIu64 " bytes (tar %" PRIu64
              ", ratio %.2f), measured in %" PRIu64 " ms", si->name, si->object_codec, u->level,
              bytes, si->tar_bytes, bytes ? (double)si->tar_bytes / (double)bytes : 0.0,
              plat_mono_ms() - t0);
    if ((w = snap_write_state(u->vfs, u->root, si))) {
        snprintf(msg, msglen, "%s: writing STATE: %s", si->name, ts_strerror(w));
        return -EIO;
    }
    return 0;
}

/* Claims si (see the top of the file) and uploads it. 1 when it could not
 * be claimed (being deleted, or stopping), else 0. */
static int upload_one(uploader *u, snap_info *si)
{
    char msg[1024];
    snap_info fresh;
    int w;
    pthread_mutex_lock(&u->mu);
    if (u->stop || !strcmp(u->deleting, si->name)) {
        pthread_mutex_unlock(&u->mu);
        return 1;
    }
    snprintf(u->c.current, sizeof(u->c.current), "%s", si->name);
    u->cancelled = 0;
    plat_cancel_reset(u->cancel);
    pthread_mutex_unlock(&u->mu);
    /* Claimed: re-read it, the listing may predate a deletion or an
     * operator's change. */
    if (snap_read(u->vfs, u->root, si->name, &fresh) ||
        (fresh.state != SNAP_SEALED && fresh.state != SNAP_UPLOADING)) {
        pthread_mutex_lock(&u->mu);
        u->c.current[0] = 0;
        pthread_mutex_unlock(&u->mu);
        return 0;
    }
    *si = fresh;
    si->state = SNAP_UPLOADING;
    si->attempts++;
    si->updated_ns = plat_now_ns();
    if ((w = snap_write_state(u->vfs, u->root, si))) {
        snprintf(msg, sizeof(msg), "%s: writing STATE: %s", si->name, ts_strerror(w));
        settle(u, si, -EIO, 0, msg, 0);
        return 0;
    }
    uint64_t t0 = plat_mono_ms();
    int status = 0, rc = measure(u, si, msg, sizeof(msg));
    if (rc) {
        settle(u, si, rc, 0, msg, plat_mono_ms() - t0);
        return 0;
    }
    if (multipart_wanted(u, si))
        rc = multipart_attempt(u, si, &status, msg, sizeof(msg));
    else
        rc = attempt(u, si, &status, msg, sizeof(msg));
    settle(u, si, rc, status, msg, plat_mono_ms() - t0);
    return 0;
}

static void *run(void *arg)
{
    uploader *u = arg;
    log_limit seal_lim = {0};
    for (;;) {
        char err[1024];
        size_t done = 0, failed = 0;
        pthread_mutex_lock(&u->mu);
        int stop = u->stop;
        pthread_mutex_unlock(&u->mu);
        if (stop)
            break;
        if (snap_finish_all(u->vfs, u->root, u->device_id, &done, &failed, err, sizeof(err)))
            agent_log_limited(&seal_lim, 3, 60000, LOG_LEVEL_ERROR,
                              "snapshot: finishing a seal failed (retried): %s", err);
        if (done || failed) {
            pthread_mutex_lock(&u->mu);
            u->c.sealed += done;
            u->c.seal_failures += failed;
            pthread_mutex_unlock(&u->mu);
        }
        uint64_t until = 0;
        snap_info si;
        if (u->enabled && u->mode == AGENT_UPLOAD_S3 && plat_mono_ms() >= u->next_attempt_ms) {
            /* Multipart uploads of snapshots deleted or given up. */
            pthread_mutex_lock(&u->mu);
            stop = u->stop;
            if (!stop)
                plat_cancel_reset(u->cancel);
            pthread_mutex_unlock(&u->mu);
            if (!stop)
                multipart_abort_pending(u);
        }
        if (u->enabled && plat_mono_ms() >= u->next_attempt_ms && next_candidate(u, &si) == 0) {
            if (upload_one(u, &si) == 0)
                continue;
            pthread_mutex_lock(&u->mu); /* being deleted: wait for upload_delete's kick */
            while (!u->stop && u->deleting[0])
                pthread_cond_wait(&u->cv, &u->mu);
            pthread_mutex_unlock(&u->mu);
            continue;
        }
        if (u->enabled && u->next_attempt_ms > plat_mono_ms())
            until = u->next_attempt_ms;
        pthread_mutex_lock(&u->mu);
        if (u->enabled && u->held[0] && (!until || u->held_until_ms < until))
            until = u->held_until_ms;
        if (!u->stop)
            wait_locked(u, until);
        pthread_mutex_unlock(&u->mu);
    }
    return NULL;
}

int upload_start(uploader *u)
{
    int rc = pthread_create(&u->thread, NULL, run, u);
    if (rc)
        return -rc;
    u->started = 1;
    return 0;
}

void upload_kick(uploader *u)
{
    pthread_mutex_lock(&u->mu);
    u->kicked = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

int upload_delete(uploader *u, const char *name,
                  int (*del)(plat_vfs *vfs, const char *root, const char *name))
{
    int rc;
    pthread_mutex_lock(&u->mu);
    if (!strcmp(u->c.current, name)) {
        u->cancelled = 1;
        plat_cancel_fire(u->cancel);
        pthread_mutex_unlock(&u->mu);
        return -EBUSY;
    }
    snprintf(u->deleting, sizeof(u->deleting), "%s", name);
    pthread_mutex_unlock(&u->mu);
    rc = del(u->vfs, u->root, name);
    pthread_mutex_lock(&u->mu);
    u->deleting[0] = 0;
    if (!strcmp(u->held, name))
        u->held[0] = 0;
    u->kicked = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    return rc;
}

void upload_counters_get(uploader *u, upload_counters *out)
{
    pthread_mutex_lock(&u->mu);
    *out = u->c;
    pthread_mutex_unlock(&u->mu);
}

void upload_stop(uploader *u)
{
    if (!u || !u->started)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    plat_cancel_fire(u->cancel);
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    u->started = 0;
}

void upload_free(uploader *u)
{
    if (!u)
        return;
    upload_stop(u);
    http_client_free(u->http);
    plat_cancel_free(u->cancel);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    char *strs[] = {u->root, u->device_id, u->host, u->base_path, u->prefix, u->region,
                    u->bucket, u->access_key};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    char *secrets[] = {u->token, u->secret};
    for (size_t i = 0; i < 2; i++)
        if (secrets[i]) {
            memset(secrets[i], 0, strlen(secrets[i]));
            free(secrets[i]);
        }
    free(u);
}
