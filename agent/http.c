/*
 * http.c -- HTTPS/1.1 uploads over mbedTLS 2.28 (contract in http.h).
 *
 * One connection per request: connect (plat_net), TLS handshake, request
 * head, body records straight from the caller's callback, response head.
 * mbedTLS talks to the socket through bio callbacks over plat_net's
 * poll-bounded send/recv, so every wait is bounded by io_timeout_ms; the
 * callbacks remember the OS error, so a failure is reported as "timed out"
 * or "connection reset" instead of mbedTLS's generic "send failed".
 *
 * Memory: the client owns one 16 KiB buffer, used first for the request
 * head, then as the plaintext of each body record, then for the response
 * head; mbedTLS adds its own record buffers per connection.
 *
 * Not here: retries, request signing, logging (the caller logs err).
 */
#include "http.h"

#include "embeddb/plat_net.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_* codes only: plat_net does the I/O */
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_RECORD 16384       /* body bytes per TLS record (the TLS maximum) */
#define HTTP_RAW_BODY_MAX 4096  /* raw response body read for the log, bytes */
#define HTTP_PEEK_EVERY 4       /* records between checks for an early response */
_Static_assert(HTTP__HEAD_MAX >= HTTP_RECORD, "one buffer serves both");

struct http_client {
    mbedtls_x509_crt ca, cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    char ca_file[256];                 /* for "does not chain to ..." */
    unsigned char io[HTTP__HEAD_MAX];  /* >= HTTP_RECORD */
};

/* What the bio callbacks see during one request. */
typedef struct conn {
    int fd;
    uint64_t io_timeout_ms;
    int os_err;               /* last plat_net error (-ETIMEDOUT, -ECONNRESET ...) */
    int eof;                  /* the peer closed its side */
    unsigned char ip[16];     /* the host as an address, when it is a literal */
    size_t ip_len;
} conn;

const char *http_err_name(int code)
{
    switch (code) {
    case 0: return "OK";
    case HTTP_EINVAL: return "EINVAL";
    case HTTP_ENOMEM: return "ENOMEM";
    case HTTP_ETIMEDOUT: return "ETIMEDOUT";
    case HTTP_EIO: return "EIO";
    case HTTP_EPROTO: return "EPROTO";
    case HTTP_ECONNECT: return "ECONNECT";
    case HTTP_ETLS: return "ETLS";
    case HTTP_EBODY: return "EBODY";
    default: return "unknown";
    }
}

__attribute__((format(printf, 3, 4)))
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* mbedTLS's words for ret (a static-length buffer the caller provides). */
static const char *tls_words(int ret, char *buf, size_t len)
{
    mbedtls_strerror(ret, buf, len);
    return buf;
}

static const char *os_words(int neg_errno, char *buf, size_t len)
{
    if (strerror_r(-neg_errno, buf, len))
        snprintf(buf, len, "error %d", -neg_errno);
    return buf;
}

/* ---- the client ---- */

int http_client_new(const http_tls *tls, http_client **out, char *err, size_t errlen)
{
    static const unsigned char pers[] = "embeddb-agent http";
    http_client *c = NULL;
    char why[160];
    int rc = 0, ret;

    *out = NULL;
    errf(err, errlen, "ok");
    if (!tls || (!tls->insecure && (!tls->ca_file || !*tls->ca_file))) {
        rc = HTTP_EINVAL;
        errf(err, errlen, "no CA file set (verification needs one; insecure skips it)");
        goto out;
    }
    if (!tls->cert_file != !tls->key_file) {
        rc = HTTP_EINVAL;
        errf(err, errlen, "a client certificate needs both cert_file and key_file");
        goto out;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        rc = HTTP_ENOMEM;
        errf(err, errlen, "out of memory");
        goto out;
    }
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_ssl_config_init(&c->conf);
    if ((ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, pers,
                                     sizeof(pers) - 1))) {
        rc = HTTP_ETLS;
        errf(err, errlen, "seeding the random generator: %s", tls_words(ret, why, sizeof(why)));
        goto out;
    }
    if (tls->ca_file && *tls->ca_file) {
        snprintf(c->ca_file, sizeof(c->ca_file), "%s", tls->ca_file);
        /* > 0: some entries of a system bundle did not parse; fine if any did */
        ret = mbedtls_x509_crt_parse_file(&c->ca, tls->ca_file);
        if (ret < 0 || c->ca.version == 0) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "CA file %s: %s", tls->ca_file,
                 ret < 0 ? tls_words(ret, why, sizeof(why)) : "no certificate in it");
            goto out;
        }
    }
    if (tls->cert_file) {
        if ((ret = mbedtls_x509_crt_parse_file(&c->cert, tls->cert_file))) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "client certificate %s: %s", tls->cert_file,
                 ret < 0 ? tls_words(ret, why, sizeof(why)) : "an entry did not parse");
            goto out;
        }
        if ((ret = mbedtls_pk_parse_keyfile(&c->key, tls->key_file, NULL))) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "client key %s: %s", tls->key_file, tls_words(ret, why, sizeof(why)));
            goto out;
        }
        if (mbedtls_pk_check_pair(&c->cert.pk, &c->key)) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "client key %s does not belong to certificate %s", tls->key_file,
                 tls->cert_file);
            goto out;
        }
    }
    if ((ret = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                           MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT))) {
        rc = HTTP_ETLS;
        errf(err, errlen, "TLS configuration: %s", tls_words(ret, why, sizeof(why)));
        goto out;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
    mbedtls_ssl_conf_authmode(&c->conf, tls->insecure ? MBEDTLS_SSL_VERIFY_NONE
                                                      : MBEDTLS_SSL_VERIFY_REQUIRED);
    if (c->ca.version)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    if (tls->cert_file && (ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key))) {
        rc = HTTP_ETLS;
        errf(err, errlen, "client certificate %s: %s", tls->cert_file,
             tls_words(ret, why, sizeof(why)));
        goto out;
    }
    *out = c;
    c = NULL;
out:
    http_client_free(c);
    return rc;
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_pk_free(&c->key);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crt_free(&c->ca);
    free(c);
}

/* ---- the wire ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    conn *cn = ctx;
    size_t n = 0;
    int rc = plat_sock_send(cn->fd, buf, len > INT_MAX ? INT_MAX : len, cn->io_timeout_ms, 0, NULL,
                            &n);
    if (rc) {
        cn->os_err = rc;
        return rc == -ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    conn *cn = ctx;
    size_t n = 0;
    int rc = plat_sock_recv(cn->fd, buf, len > INT_MAX ? INT_MAX : len, cn->io_timeout_ms, NULL,
                            &n);
    if (rc) {
        cn->os_err = rc;
        return rc == -ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_RECV_FAILED;
    }
    if (!n)
        cn->eof = 1;
    return (int)n;
}

/* mbedTLS 2.28 compares the host with DNS names only; when the host is an
 * address literal, an IP-address subjectAltName equal to it is a match. */
static int verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const conn *cn = ctx;
    if (depth != 0 || !(*flags & MBEDTLS_X509_BADCERT_CN_MISMATCH))
        return 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next)
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
            s->buf.len == cn->ip_len && s->buf.p && !memcmp(s->buf.p, cn->ip, cn->ip_len)) {
            *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
            break;
        }
    return 0;
}

/* Writes all of buf as TLS records: 0 or the mbedTLS error. */
static int tls_write_all(mbedtls_ssl_context *ssl, const unsigned char *buf, size_t len)
{
    while (len) {
        int n = mbedtls_ssl_write(ssl, buf, len);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n <= 0)
            return n ? n : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads some plaintext: 0 with *got (0 = the server closed), or the error. */
static int tls_read(mbedtls_ssl_context *ssl, unsigned char *buf, size_t len, size_t *got)
{
    *got = 0;
    for (;;) {
        int n = mbedtls_ssl_read(ssl, buf, len);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF)
            return 0;
        if (n < 0)
            return n;
        *got = (size_t)n;
        return 0;
    }
}

/* The class and words of a failed send/recv after the handshake. */
static int io_failure(const conn *cn, int ret, char *why, size_t len)
{
    if (cn->os_err == -ETIMEDOUT) {
        snprintf(why, len, "no progress for %llu ms", (unsigned long long)cn->io_timeout_ms);
        return HTTP_ETIMEDOUT;
    }
    if (cn->os_err)
        os_words(cn->os_err, why, len);
    else if (cn->eof)
        snprintf(why, len, "connection closed by the server");
    else
        tls_words(ret, why, len);
    return HTTP_EIO;
}

/* Appends to the NUL-terminated string in buf (truncating). */
__attribute__((format(printf, 3, 4)))
static void cat(char *buf, size_t len, const char *fmt, ...)
{
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (n < len)
        vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

/* Human words for X.509 verification flags. */
static void verify_words(const http_client *c, const char *host, uint32_t flags, char *buf,
                         size_t len)
{
    char info[512];
    buf[0] = 0;
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        cat(buf, len, "certificate not trusted (it does not chain to %s)",
            c->ca_file[0] ? c->ca_file : "the CA file");
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        cat(buf, len, "%shost name mismatch (the certificate is not for %s)", buf[0] ? "; " : "",
            host);
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_CN_MISMATCH);
    if (flags && mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) > 0) {
        for (char *p = info; *p; p++)
            if (*p == '\n')
                *p = p[1] ? ';' : 0;
        cat(buf, len, "%s%s", buf[0] ? "; " : "", info);
    }
}

/* ---- the request ---- */

/* Builds the request head into c->io. Header values are never echoed. */
static int build_head(http_client *c, const http_request *rq, size_t *out_len, char *err,
                      size_t errlen)
{
    char *b = (char *)c->io;
    size_t cap = HTTP_RECORD, n = 0;
    int v6 = rq->host && strchr(rq->host, ':') != NULL, rc = HTTP_EINVAL;
    static const char *const own[] = {"host", "content-length", "connection",
                                      "transfer-encoding"};

    if (!rq->method || !*rq->method || !rq->host || !*rq->host || !rq->path ||
        rq->path[0] != '/' || rq->port < 1 || rq->port > 65535 ||
        (rq->content_length && !rq->body) || (rq->n_headers && !rq->headers)) {
        errf(err, errlen, "bad request: method, host, port 1..65535, a path starting with '/' "
                          "and a body source are required");
        goto out;
    }
    for (const char *p = rq->method; *p; p++)
        if (!http__is_tchar((unsigned char)*p))
            goto bad_method;
    if (strlen(rq->host) > 255 ||
        strspn(rq->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%") !=
            strlen(rq->host)) {
        errf(err, errlen, "bad request: host name has characters a host name cannot have");
        goto out;
    }
    for (const char *p = rq->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            errf(err, errlen, "bad request: the path has spaces or control characters");
            goto out;
        }
    n = (size_t)snprintf(b, cap, "%s %s HTTP/1.1\r\nHost: %s%s%s", rq->method, rq->path,
                         v6 ? "[" : "", rq->host, v6 ? "]" : "");
    if (n < cap && rq->port != 443)
        n += (size_t)snprintf(b + n, cap - n, ":%d", rq->port);
    if (n < cap)
        n += (size_t)snprintf(b + n, cap - n, "\r\nUser-Agent: embeddb-agent/0.1\r\n"
                              "Content-Length: %llu\r\nConnection: close\r\n",
                              (unsigned long long)rq->content_length);
    for (size_t i = 0; i < rq->n_headers && n < cap; i++) {
        const char *h = rq->headers[i], *colon = h ? strchr(h, ':') : NULL;
        if (!colon || colon == h) {
            errf(err, errlen, "bad request: extra header %zu is not \"Name: value\"", i);
            goto out;
        }
        for (const char *p = h; p < colon; p++)
            if (!http__is_tchar((unsigned char)*p)) {
                errf(err, errlen, "bad request: extra header %zu has a bad name", i);
                goto out;
            }
        for (const char *p = colon + 1; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
                errf(err, errlen, "bad request: extra header %zu has a control character "
                                  "(CR/LF?) in its value", i);
                goto out;
            }
        for (size_t k = 0; k < sizeof(own) / sizeof(own[0]); k++)
            if ((size_t)(colon - h) == strlen(own[k]) && !strncasecmp(h, own[k], strlen(own[k]))) {
                errf(err, errlen, "bad request: extra header %zu sets %s, which the client sends",
                     i, own[k]);
                goto out;
            }
        n += (size_t)snprintf(b + n, cap - n, "%s\r\n", h);
    }
    if (n < cap)
        n += (size_t)snprintf(b + n, cap - n, "\r\n");
    if (n >= cap) {
        errf(err, errlen, "bad request: the request head exceeds %d bytes", HTTP_RECORD);
        goto out;
    }
    *out_len = n;
    rc = 0;
    goto out;
bad_method:
    errf(err, errlen, "bad request: the method is not an HTTP token");
out:
    return rc;
}

/* Sends the body in full records; stops early when the server has already
 * answered (the caller then reads that answer). */
static int send_body(http_client *c, mbedtls_ssl_context *ssl, conn *cn, const http_request *rq,
                     http_response *rsp, const char *hp, char *err, size_t errlen)
{
    uint64_t left = rq->content_length;
    unsigned records = 0;
    char why[160];
    int rc = 0, ret;
    while (left) {
        size_t want = left < HTTP_RECORD ? (size_t)left : HTTP_RECORD, have = 0, got;
        while (have < want) {
            got = 0;
            if ((ret = rq->body(rq->body_ctx, c->io + have, want - have, &got)) ||
                got > want - have) {
                rc = HTTP_EBODY;
                errf(err, errlen, "%s to %s: the body source %s after %llu of %llu bytes",
                     rq->method, hp, ret ? "failed" : "overran its buffer",
                     (unsigned long long)(rsp->bytes_sent + have),
                     (unsigned long long)rq->content_length);
                goto out;
            }
            if (!got)
                break;
            have += got;
        }
        if (have < want) {
            rc = HTTP_EBODY;
            errf(err, errlen, "%s to %s: the body source ended after %llu of %llu bytes",
                 rq->method, hp, (unsigned long long)(rsp->bytes_sent + have),
                 (unsigned long long)rq->content_length);
            goto out;
        }
        if ((ret = tls_write_all(ssl, c->io, have))) {
            rc = io_failure(cn, ret, why, sizeof(why));
            errf(err, errlen, "sending the body to %s after %llu of %llu bytes: %s", hp,
                 (unsigned long long)rsp->bytes_sent, (unsigned long long)rq->content_length,
                 why);
            goto out;
        }
        rsp->bytes_sent += have;
        left -= have;
        /* A server that refuses (401, 413 ...) answers at once; do not push
         * hundreds of MiB at it. One poll(2) per 64 KiB costs nothing. */
        if (++records % HTTP_PEEK_EVERY == 0 && plat_sock_readable(cn->fd, 0, NULL) == 1)
            break;
    }
out:
    return rc;
}

/* Reads the response head (skipping 1xx) and the first body bytes. */
static int read_response(http_client *c, mbedtls_ssl_context *ssl, conn *cn,
                         const http_request *rq, http_response *rsp, const char *hp, char *err,
                         size_t errlen)
{
    size_t have = 0, head_len = 0, got, raw, want;
    http__framing fr = {0, -1};
    char why[160];
    int rc = 0, ret, done = 0;
    for (;;) {
        int prc = http__parse_head((const char *)c->io, have, rsp, &fr, &head_len);
        if (prc == 0 && rsp->status != 101 && rsp->status >= 200)
            break;
        if (prc == 0 && rsp->status != 101) { /* interim 1xx: drop it */
            memmove(c->io, c->io + head_len, have - head_len);
            have -= head_len;
            continue;
        }
        if (prc != 1) {
            rc = HTTP_EPROTO;
            errf(err, errlen, "response from %s: malformed or oversized status line/headers "
                 "(limit %d bytes)", hp, HTTP__HEAD_MAX);
            goto out;
        }
        if ((ret = tls_read(ssl, c->io + have, sizeof(c->io) - have, &got))) {
            rc = io_failure(cn, ret, why, sizeof(why));
            errf(err, errlen, "waiting for the response from %s (%llu of %llu body bytes "
                 "sent): %s", hp, (unsigned long long)rsp->bytes_sent,
                 (unsigned long long)rq->content_length, why);
            goto out;
        }
        if (!got) {
            rc = have ? HTTP_EPROTO : HTTP_EIO;
            errf(err, errlen, "%s closed the connection %s (%llu of %llu body bytes sent)", hp,
                 have ? "inside the response head" : "without a response",
                 (unsigned long long)rsp->bytes_sent, (unsigned long long)rq->content_length);
            goto out;
        }
        have += got;
    }
    /* Best effort from here: the body is only for the log. */
    raw = have - head_len;
    memmove(c->io, c->io + head_len, raw);
    if (rsp->status == 204 || rsp->status == 304 || fr.content_length == 0)
        want = 0;
    else if (fr.chunked)
        want = HTTP_RAW_BODY_MAX;
    else if (fr.content_length > 0 && (uint64_t)fr.content_length < sizeof(rsp->body) - 1)
        want = (size_t)fr.content_length;
    else
        want = sizeof(rsp->body) - 1;
    while (raw < want) {
        if (fr.chunked) {
            http__dechunk((const char *)c->io, raw, rsp->body, sizeof(rsp->body) - 1, &done);
            if (done)
                break;
        }
        if (tls_read(ssl, c->io + raw, want - raw, &got) || !got)
            break;
        raw += got;
    }
    raw = raw < want ? raw : want;
    if (fr.chunked)
        rsp->body_len = http__dechunk((const char *)c->io, raw, rsp->body, sizeof(rsp->body) - 1,
                                      &done);
    else
        memcpy(rsp->body, c->io, rsp->body_len = raw < sizeof(rsp->body) ? raw : sizeof(rsp->body) - 1);
    rsp->body[rsp->body_len] = 0;
out:
    return rc;
}

int http_request_do(http_client *c, const http_request *rq, http_response *rsp, char *err,
                    size_t errlen)
{
    mbedtls_ssl_context ssl;
    conn cn = {.fd = -1};
    char hp[300], why[600];
    size_t head_len = 0;
    int rc, ret, v6;

    mbedtls_ssl_init(&ssl);
    memset(rsp, 0, sizeof(*rsp));
    errf(err, errlen, "ok");
    if ((rc = build_head(c, rq, &head_len, err, errlen)))
        goto out;
    v6 = strchr(rq->host, ':') != NULL;
    snprintf(hp, sizeof(hp), "%s%s%s:%d", v6 ? "[" : "", rq->host, v6 ? "]" : "", rq->port);
    cn.io_timeout_ms = rq->io_timeout_ms;
    if (inet_pton(AF_INET, rq->host, cn.ip) == 1)
        cn.ip_len = 4;
    else if (inet_pton(AF_INET6, rq->host, cn.ip) == 1)
        cn.ip_len = 16;

    if ((rc = plat_tcp_connect(rq->host, rq->port, rq->connect_timeout_ms, NULL, &cn.fd))) {
        if (rc == -ETIMEDOUT)
            errf(err, errlen, "connecting to %s: timed out after %llu ms", hp,
                 (unsigned long long)rq->connect_timeout_ms);
        else if (rc == -ENOENT)
            errf(err, errlen, "connecting to %s: the host name does not resolve", hp);
        else
            errf(err, errlen, "connecting to %s: %s", hp, os_words(rc, why, sizeof(why)));
        rc = rc == -ETIMEDOUT ? HTTP_ETIMEDOUT : rc == -ENOMEM ? HTTP_ENOMEM : HTTP_ECONNECT;
        goto out;
    }

    if ((ret = mbedtls_ssl_setup(&ssl, &c->conf)) || (ret = mbedtls_ssl_set_hostname(&ssl, rq->host))) {
        rc = ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? HTTP_ENOMEM : HTTP_ETLS;
        errf(err, errlen, "TLS setup for %s: %s", hp, tls_words(ret, why, sizeof(why)));
        goto out;
    }
    if (cn.ip_len)
        mbedtls_ssl_set_verify(&ssl, verify_ip, &cn);
    mbedtls_ssl_set_bio(&ssl, &cn, bio_send, bio_recv, NULL);
    while ((ret = mbedtls_ssl_handshake(&ssl))) {
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        rc = HTTP_ETLS;
        if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            verify_words(c, rq->host, mbedtls_ssl_get_verify_result(&ssl), why, sizeof(why));
            errf(err, errlen, "TLS handshake with %s: certificate verification failed: %s", hp,
                 why);
        } else if (cn.os_err == -ETIMEDOUT) {
            rc = HTTP_ETIMEDOUT;
            errf(err, errlen, "TLS handshake with %s: no answer for %llu ms", hp,
                 (unsigned long long)rq->io_timeout_ms);
        } else if (cn.os_err) {
            rc = HTTP_EIO;
            errf(err, errlen, "TLS handshake with %s: %s", hp, os_words(cn.os_err, why, sizeof(why)));
        } else if (cn.eof) {
            errf(err, errlen, "TLS handshake with %s: the server closed the connection (not "
                 "TLS, or it refused our TLS version, ciphers or certificate)", hp);
        } else {
            errf(err, errlen, "TLS handshake with %s: %s", hp, tls_words(ret, why, sizeof(why)));
        }
        goto out;
    }

    if ((ret = tls_write_all(&ssl, c->io, head_len))) {
        rc = io_failure(&cn, ret, why, sizeof(why));
        errf(err, errlen, "sending the request to %s: %s", hp, why);
        goto out;
    }
    rc = send_body(c, &ssl, &cn, rq, rsp, hp, err, errlen);
    if (rc == HTTP_EBODY || rc == HTTP_ETIMEDOUT)
        goto out;
    /* Also after a broken send: the server may have said why before closing. */
    {
        char err2[sizeof(why)];
        int rrc = read_response(c, &ssl, &cn, rq, rsp, hp, err2, sizeof(err2));
        if (rrc == 0 || rc == 0) {
            rc = rrc;
            if (rrc)
                errf(err, errlen, "%s", err2);
        }
    }
    if (rc == 0)
        errf(err, errlen, "%s answered %d", hp, rsp->status);
out:
    mbedtls_ssl_free(&ssl);
    if (cn.fd >= 0)
        plat_sock_close(cn.fd);
    return rc;
}
