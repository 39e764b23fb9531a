/*
 * http.h -- the HTTPS/1.1 client that uploads snapshots: one request per
 * connection (Connection: close), a body streamed from a callback in TLS
 * records of 16 KiB, and a bounded parse of the response.
 *
 * TLS is mbedTLS 2.28: TLS 1.2 minimum, the server certificate verified
 * against the configured CA bundle and the request's host name (SNI too),
 * an optional client certificate for mutual TLS. Verification can be
 * switched off only by the explicit `insecure` flag.
 *
 * Host names: mbedTLS 2.28 matches only DNS names; this client adds
 * matching of an IP-literal host against the certificate's IP-address
 * subjectAltNames, so https://192.0.2.7/ works with an IP certificate.
 *
 * Time: every wait is bounded by io_timeout_ms (no progress for that
 * long fails the request), the connection as a whole (resolve, TCP
 * connect, TLS handshake) by connect_timeout_ms, and the response as a
 * whole (from the end of the body to the end of the final response head,
 * interim 1xx responses included) by response_timeout_ms, so a server that
 * trickles or floods 1xx lines cannot hold a request forever. A caller's
 * cancel flag (plat_net.h) ends any wait at once.
 *
 * Honesty about the body: the client watches for an answer while it sends
 * (before every record, and while it waits for room), because a server
 * that answers early -- a refusal (401, 413) or a 2xx it has no right to
 * give -- will not read the rest. It then stops sending and reports the
 * answer with `early` set and bytes_sent < content_length. Whether that is
 * a success is the caller's call; a 2xx is one only when !early.
 *
 * Threads: a body of more than one record is encrypted on the calling
 * thread and sent by a helper thread through a bounded queue (sendq.h),
 * started and joined inside http_request_do, so sending overlaps
 * encrypting; the callbacks still run on the calling thread only.
 *
 * Not here: retries, signing (the caller passes Authorization and friends
 * as extra headers), keep-alive, redirects, proxies or reading whole
 * response bodies. Nothing global: a client belongs to one thread at a time.
 * Secrets in header values are never copied into error messages.
 */
#ifndef EMBEDDB_AGENT_HTTP_H
#define EMBEDDB_AGENT_HTTP_H

#include "embeddb/plat_net.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* Every function returns 0 or one of these (mirroring -errno where one
 * exists). The classes tell a caller what to do next: ECONNECT, ETIMEDOUT,
 * EIO are worth a retry later; ETLS and EINVAL need an operator; ECANCELED
 * is the caller's own doing. */
enum {
    HTTP_EINVAL = -EINVAL,       /* bad request or TLS setting (err says which) */
    HTTP_ENOMEM = -ENOMEM,
    HTTP_ETIMEDOUT = -ETIMEDOUT, /* io, connect or response timeout passed (err says which) */
    HTTP_ECANCELED = -ECANCELED, /* the request's cancel flag was raised */
    HTTP_EIO = -EIO,             /* connection broken before a response arrived */
    HTTP_EPROTO = -EPROTO,       /* malformed or oversized response head */
    HTTP_ECONNECT = -20001,      /* name did not resolve, refused, unreachable */
    HTTP_ETLS = -20002,          /* handshake or certificate verification failed */
    HTTP_EBODY = -20003,         /* the body callback failed or ran short */
};

/* Short constant name of a code ("ETLS", "ECONNECT", ...; "unknown"). */
const char *http_err_name(int code);

#define HTTP_MAX_SUITES 32 /* configured cipher suites, at most */

/*
 * Cipher suite by its mbedTLS name ("TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-
 * SHA256"): its id (> 0), HTTP_EINVAL when this mbedTLS does not know it,
 * or -ENOTSUP when it is not an AEAD suite (GCM, CCM, ChaCha20-Poly1305):
 * CBC, RC4 and NULL suites are refused whatever the library would allow.
 */
int http_ciphersuite_id(const char *name);
/* 1 when mbedTLS encrypts AES with CPU instructions here (AES-NI). */
int http_aes_accelerated(void);

/* TLS settings. Paths are borrowed for the duration of http_client_new. */
typedef struct http_tls {
    const char *ca_file;    /* PEM bundle the server must chain to (required unless insecure) */
    const char *cert_file;  /* optional client certificate chain (PEM), for mutual TLS ... */
    const char *key_file;   /* ... and its private key (unencrypted PEM/DER); both or neither */
    int insecure;           /* 1: skip server verification (the caller logs a warning) */
    const int *suites;      /* offered cipher suites in order, n_suites ids from
                               http_ciphersuite_id; n_suites 0: the default -- the
                               library's AEAD suites, ChaCha20-Poly1305 first unless
                               AES is accelerated (http__order_suites) */
    size_t n_suites;
} http_tls;

/* Loaded CA, certificate and key plus a seeded CTR-DRBG, the record buffer
 * and the response head buffer (16 KiB each); reused across requests by one
 * thread at a time. */
typedef struct http_client http_client;

/* Loads the files and seeds the DRBG. 0, HTTP_EINVAL (err names the file
 * and mbedTLS's reason, or the setting), HTTP_ENOMEM. *out is owned by the
 * caller (http_client_free). */
int http_client_new(const http_tls *tls, http_client **out, char *err, size_t errlen);
/* Frees c; NULL is a no-op. */
void http_client_free(http_client *c);

/*
 * Body source: fill buf with up to len bytes, set *got; *got = 0 only at the
 * end. Return 0, or any non-zero value to abort the request (HTTP_EBODY).
 * Called on the requesting thread; it never owns buf.
 */
typedef int (*http_body_fn)(void *ctx, uint8_t *buf, size_t len, size_t *got);

/* One request; every pointer is borrowed for the duration of the call. */
typedef struct http_request {
    const char *method;           /* token, e.g. "PUT" */
    const char *host;             /* connect target, SNI and certificate name */
    int port;                     /* 1..65535; the Host header carries it unless 443 */
    const char *path;             /* "/bucket/key", already percent-encoded */
    const char *const *headers;   /* n_headers extra "Name: value" lines, no CRLF;
                                     Host, Content-Length, Connection and
                                     Transfer-Encoding are the client's own */
    size_t n_headers;
    uint64_t content_length;      /* exactly this many bytes come from body */
    http_body_fn body;            /* may be NULL when content_length is 0 */
    void *body_ctx;
    uint64_t connect_timeout_ms;  /* resolve + TCP connect + TLS handshake, as a whole */
    uint64_t io_timeout_ms;       /* max wait for any single send/recv progress */
    uint64_t response_timeout_ms; /* end of the body -> end of the final response head,
                                     1xx included (0: no limit but io_timeout) */
    const plat_cancel *cancel;    /* optional: raised -> HTTP_ECANCELED at once */
} http_request;

#define HTTP_BODY_MAX 8192 /* response body bytes kept, NUL included */

typedef struct http_response {
    int status;          /* e.g. 200 */
    char reason[128];    /* the status line's reason phrase (truncated) */
    char body[HTTP_BODY_MAX]; /* first bytes of the response body, NUL-terminated
                            (enough for one page of an S3 XML reply) */
    size_t body_len;     /* bytes in body (the body may hold NULs) */
    uint64_t bytes_sent; /* request body bytes handed to TLS and the kernel */
    int early;           /* 1: the final response came before the whole body was
                            sent (then bytes_sent < content_length): the server
                            answered without having the body */
    unsigned interim;    /* interim 1xx responses skipped */
    char suite[64];      /* the negotiated cipher suite ("" before the handshake) */
    char etag[128];      /* the ETag header's value as sent ("" when absent, or when
                            longer than 127 bytes: never cut to fit) */
} http_response;

/*
 * Sends the request and reads the response head. Returns 0 when a complete
 * final status line and headers arrived, whatever the status and however
 * much of the body went out: a server that answers before the whole body is
 * sent (401, 413, or a premature 2xx) still yields its status, with early
 * set and bytes_sent < content_length. A caller must treat a 2xx as success
 * only when !early. Otherwise a negative HTTP_E* code (bytes_sent still
 * set); err (always written when errlen > 0) says what happened, naming
 * host:port and which timeout passed, and never contains header values.
 * Costs one TCP + TLS handshake per call; the body is never held in memory
 * beyond one record. "Before the whole body" is judged at record
 * boundaries: an answer that lands while the last record is being written
 * counts as after it.
 */
int http_request_do(http_client *c, const http_request *rq, http_response *rsp, char *err,
                    size_t errlen);

/* ---- internals, exposed for the unit tests (test_http.c) ---- */

/* The default offer: the AEAD suites of all[] (0-terminated, the library's
 * preference) into out (room for as many + 1, 0-terminated), in all's
 * order, except that without AES acceleration the ChaCha20-Poly1305 ones
 * come first. Returns the count. Pure. */
size_t http__order_suites(const int *all, int aes_accelerated, int *out);
/* The most records the last request's body had queued for its sender
 * thread at once (sendq.h; <= SENDQ_RECORDS), 0 when it was sent without
 * one (a body of one record or less). */
size_t http__pipe_depth(const http_client *c);
/* The suite a client offers first ("" before the first offer): for logs. */
const char *http_client_first_suite(const http_client *c);

#define HTTP__HEAD_MAX 16384  /* response status line + headers, bytes */

/* 1 when ch may appear in an HTTP token (method, header name). */
int http__is_tchar(int ch);

typedef struct http__framing {
    int chunked;             /* Transfer-Encoding ends in chunked */
    int64_t content_length;  /* -1 when absent (then: chunked or until close) */
} http__framing;

/* Parses a response head at the start of buf[0..len): 0 when complete
 * (status, reason, *fr and *head_len, which counts the blank line, are set),
 * 1 when more bytes are needed, HTTP_EPROTO when malformed or when no end
 * appears within HTTP__HEAD_MAX bytes. Pure. */
int http__parse_head(const char *buf, size_t len, http_response *rsp, http__framing *fr,
                     size_t *head_len);

/* Decodes the chunked body prefix in[0..len) into out (at most outlen bytes)
 * and returns the count. *done = 1 once no more input could change the
 * result (last chunk seen, out full, or malformed input). Pure. */
size_t http__dechunk(const char *in, size_t len, char *out, size_t outlen, int *done);

#endif
