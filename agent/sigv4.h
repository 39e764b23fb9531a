/*
 * sigv4.h -- AWS Signature Version 4 for the snapshot uploader: the
 * Authorization header of a request to an S3-compatible store (AWS S3,
 * MinIO, Ceph RGW).
 *
 * Header signing only: no presigned URLs, no chunked (aws-chunked) uploads.
 * The caller hashes the body (sigv4_sha256_hex, or "UNSIGNED-PAYLOAD" over
 * TLS) and sends exactly the headers it asked to sign, with the path and
 * query it gave here. Pure functions over memory: no I/O, no clock, no
 * logging; the secret never reaches an output and the derived keys are
 * wiped. The int functions return 0 or a negative errno code:
 *   -EINVAL   bad input: a NULL field, a malformed date, hash, method,
 *             header name or percent escape, host or x-amz-date missing, a
 *             key field empty, over SIGV4_MAX_FIELD or holding blanks or
 *             control bytes (or '/' or ',', except in the secret)
 *   -ENOSPC   an output buffer is too small (it then holds "")
 *   -E2BIG    more than SIGV4_MAX_HEADERS headers
 *   -ENOMEM   out of memory (the query and the normalised path are copied)
 */
#ifndef EMBEDDB_AGENT_SIGV4_H
#define EMBEDDB_AGENT_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define SIGV4_MAX_HEADERS 64   /* signed headers per request */
#define SIGV4_MAX_FIELD 128    /* longest key field, method or header name */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

typedef struct sigv4_header {
    const char *name;    /* any case; duplicates are joined with ',' in order */
    const char *value;   /* trimmed, inner runs of spaces/tabs become one space,
                            lines of a multi-line value are joined with ','
                            (signed as AWS says; sending one is the HTTP
                            client's business, and it should refuse) */
} sigv4_header;

/* Everything is borrowed for the duration of the call. */
typedef struct sigv4_request {
    const char *method;          /* "PUT" */
    const char *path;            /* as sent on the wire, starting with '/',
                                    e.g. "/bucket/dev%201/snap.tar" */
    const char *query;           /* as sent, without '?'; "" or NULL for none;
                                    '+' is a plus sign, not a space */
    const sigv4_header *headers; /* every header to sign, including host and
                                    x-amz-date (which must equal amz_date) */
    size_t n_headers;
    const char *payload_sha256;  /* 64 lowercase hex digits or "UNSIGNED-PAYLOAD" */
} sigv4_request;

typedef struct sigv4_key {
    const char *access_key;
    const char *secret_key;      /* never copied into any output */
    const char *region;          /* "us-east-1"; MinIO's default too */
    const char *service;         /* "s3" */
} sigv4_key;

/* How the canonical URI is made from the wire path:
 *   SIGV4_S3       no normalisation ("a//b/./c" is a valid key); the path's
 *                  percent escapes are decoded and it is encoded once with
 *                  uppercase hex, as S3, MinIO and botocore do
 *   SIGV4_GENERIC  other AWS services and AWS's test suite: "." and ".."
 *                  segments and repeated '/' removed, then the (already
 *                  encoded) path encoded again */
enum { SIGV4_GENERIC = 0, SIGV4_S3 = 1 };

/* Signs r with k at amz_date ("YYYYMMDDTHHMMSSZ") and writes the
 * Authorization header value ("AWS4-HMAC-SHA256 Credential=..., ...,
 * Signature=<64 hex>") into authz. creq_out and sts_out, if not NULL,
 * receive the canonical request and the string to sign (tests, debugging;
 * neither holds a secret). The query is canonicalised (decoded, re-encoded,
 * sorted by key then value). Cost: one pass over each input, one SHA-256 of
 * the canonical request, five HMACs. */
int sigv4_sign(const sigv4_request *r, const sigv4_key *k, const char *amz_date, int mode,
               char *authz, size_t authz_len, char *creq_out, size_t creq_len, char *sts_out,
               size_t sts_len);

/* Formats a Unix time as "YYYYMMDDTHHMMSSZ" (UTC) without time_t, so it is
 * right on 32-bit time_t targets too. -EINVAL (and "") outside years
 * 1970..9999. */
int sigv4_amz_date(int64_t unix_seconds, char out[17]);

/* Percent-encodes in (an object key, say) for a path or query: A-Z a-z 0-9
 * - _ . ~ kept, '/' kept when keep_slash, every other byte %XX uppercase.
 * Worst case out_len is 3 * strlen(in) + 1. */
int sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t out_len);

/* in[0..n) as 2n lowercase hex digits and a NUL into out. */
void sigv4_hex(const unsigned char *in, size_t n, char *out);

/* Lowercase hex SHA-256 of data[0..len) ("" if mbedTLS fails). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
