/*
 * http.c -- HTTPS/1.1 uploads over mbedTLS 2.28 (contract in http.h).
 *
 * One connection per request: connect (plat_net), TLS handshake, request
 * head, body records straight from the caller's callback, response head.
 * mbedTLS talks to the socket through bio callbacks over plat_net's
 * poll-bounded send/recv; each callback waits at most io_timeout_ms, cut
 * short by the current phase's deadline (connect_timeout over connect and
 * handshake, response_timeout over the response) and by the caller's
 * cancel flag. The callbacks remember the OS error, so a failure is
 * reported as "timed out", "cancelled" or "connection reset" instead of
 * mbedTLS's generic "send failed".
 *
 * While the body goes out, the response is read as it comes (a reader over
 * the head buffer, fed without waiting): before each record, and whenever
 * a wait for room ends because the server spoke. Interim 1xx responses are
 * dropped and sending goes on; a final response, or the server closing,
 * stops it. mbedTLS 2.28 allows reading while a record waits to be flushed
 * (it only flushes first for DTLS), and an interrupted write is resumed by
 * calling it again with the same data.
 *
 * A body of more than one record is sent through a sendq (sendq.h): its
 * thread does the send(2) calls, bio_send only copies each sealed record
 * into the queue, so encrypting record k+1 overlaps sending record k (on
 * loopback the kernel's quarter of the time no longer adds to the
 * cipher's). The rules above hold unchanged: the sender halts when the
 * server speaks (pump reads on this thread, then resumes it), its waits
 * are io_timeout_ms and the cancel flag, its errors are noted in conn as
 * a bio callback notes them, and bytes_sent counts only records that
 * reached the kernel in full. If its thread cannot start, the body goes
 * out on this thread as a short one does.
 *
 * Memory: the client owns two 16 KiB buffers: one for the request head,
 * then the plaintext of each body record; one for the response head (which
 * may arrive while a record is still pending). mbedTLS adds its own record
 * buffers per connection; a body's sendq SENDQ_RECORDS records more.
 *
 * Not here: retries, request signing, logging (the caller logs err).
 */
#include "http.h"
#include "sendq.h"
#include "tls_compat.h"

#include "embeddb/plat.h"
#include "embeddb/plat_net.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_* codes only: plat_net does the I/O */
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_RECORD 16384       /* body bytes per TLS record (the TLS maximum) */
#define HTTP_RAW_BODY_MAX 12288 /* raw (chunked) response body read, bytes */
#define HTTP_INTERIM_WATCH 8    /* 1xx responses after which sending stops watching */
#define HTTP_SPOKE 1            /* internal: a wait for room ended, the server spoke */
_Static_assert(HTTP__HEAD_MAX >= HTTP_RECORD, "the request head fits the record buffer");
_Static_assert(HTTP__HEAD_MAX >= HTTP_RAW_BODY_MAX, "the response body read fits the head buffer");

struct http_client {
    mbedtls_x509_crt ca, cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    char ca_file[256];                 /* for "does not chain to ..." */
    int *suites;                       /* offered, 0-terminated (the conf points at it) */
    unsigned char io[HTTP__HEAD_MAX];  /* request head, then body records */
    unsigned char head[HTTP__HEAD_MAX];/* the response as it arrives */
    size_t pipe_depth;                 /* the last body's most records queued (0: none) */
};

/* What the bio callbacks see during one request. */
typedef struct conn {
    int fd;
    const plat_cancel *cancel;
    uint64_t io_timeout_ms;
    uint64_t deadline_ns;     /* the phase's deadline (mono; 0: none) ... */
    uint64_t deadline_ms;     /* ... its length and name, for messages */
    const char *deadline_name;
    uint64_t send_by_ns;      /* body: next send progress due (0: io_timeout per call) */
    int until_readable;       /* body: a wait for room also ends when the server speaks */
    int no_wait;              /* recv: WANT_READ instead of waiting */
    int spoke;                /* a wait for room ended because the server spoke */
    int os_err;               /* last plat_net error (-ETIMEDOUT, -ECANCELED ...) */
    int deadline_hit;         /* that -ETIMEDOUT was the phase deadline's */
    int eof;                  /* the peer closed its side */
    sendq *q;                 /* body: the sender thread's queue (NULL: send here) */
    uint64_t credit;          /* body bytes in the record being written (for q) */
    unsigned char ip[16];     /* the host as an address, when it is a literal */
    size_t ip_len;
} conn;

/* The response as it arrives, in client->head (its end, the server
 * closing, is conn's eof). */
typedef struct reader {
    size_t have;              /* bytes in head */
    size_t head_len;          /* the final head's length, once final */
    http__framing fr;
    int final;                /* a final (>= 200) head is complete */
} reader;

const char *http_err_name(int code)
{
    switch (code) {
    case 0: return "OK";
    case HTTP_EINVAL: return "EINVAL";
    case HTTP_ENOMEM: return "ENOMEM";
    case HTTP_ETIMEDOUT: return "ETIMEDOUT";
    case HTTP_ECANCELED: return "ECANCELED";
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

int http_ciphersuite_id(const char *name)
{
    int id = mbedtls_ssl_get_ciphersuite_id(name);
    if (id <= 0)
        return HTTP_EINVAL;
    /* By name, the one view of a suite that is the same in 2.28 and 3.x. */
    if (!strstr(name, "-GCM-") && !strstr(name, "-CCM") && !strstr(name, "CHACHA20-POLY1305"))
        return -ENOTSUP;
    return id;
}

int http_aes_accelerated(void)
{
    return tls_compat_aes_accelerated() ? 1 : 0;
}

size_t http__order_suites(const int *all, int aes_accelerated, int *out)
{
    size_t n = 0;
    for (int pass = aes_accelerated ? 1 : 0; pass < 2; pass++)
        for (const int *p = all; *p; p++) {
            const char *name = mbedtls_ssl_get_ciphersuite_name(*p);
            int chacha = name && strstr(name, "CHACHA20-POLY1305") != NULL;
            if (!name || http_ciphersuite_id(name) <= 0)
                continue;
            /* pass 0: ChaCha20-Poly1305 ones; pass 1: the rest (all, when
             * AES is accelerated and the library's order stands). */
            if (pass == 0 ? chacha : (aes_accelerated || !chacha))
                out[n++] = *p;
        }
    out[n] = 0;
    return n;
}

size_t http__pipe_depth(const http_client *c)
{
    return c->pipe_depth;
}

const char *http_client_first_suite(const http_client *c)
{
    const char *name = c->suites[0] ? mbedtls_ssl_get_ciphersuite_name(c->suites[0]) : NULL;
    return name ? name : "";
}

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
        if ((ret = tls_compat_parse_keyfile(&c->key, tls->key_file, &c->drbg))) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "client key %s: %s", tls->key_file, tls_words(ret, why, sizeof(why)));
            goto out;
        }
        if (tls_compat_check_pair(&c->cert.pk, &c->key, &c->drbg)) {
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
    tls_compat_min_tls12(&c->conf); /* TLS 1.2 at least */
    {
        const int *all = mbedtls_ssl_list_ciphersuites();
        size_t n_all = 0;
        while (all[n_all])
            n_all++;
        if (tls->n_suites > HTTP_MAX_SUITES) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "%zu cipher suites: at most %d", tls->n_suites, HTTP_MAX_SUITES);
            goto out;
        }
        if (!(c->suites = calloc((tls->n_suites ? tls->n_suites : n_all) + 1, sizeof(int)))) {
            rc = HTTP_ENOMEM;
            errf(err, errlen, "out of memory");
            goto out;
        }
        if (tls->n_suites)
            memcpy(c->suites, tls->suites, tls->n_suites * sizeof(int));
        else if (!http__order_suites(all, http_aes_accelerated(), c->suites)) {
            rc = HTTP_EINVAL;
            errf(err, errlen, "this mbedTLS offers no AEAD cipher suite");
            goto out;
        }
        mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
    }
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
    free(c->suites);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_pk_free(&c->key);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crt_free(&c->ca);
    free(c);
}

/* ---- the wire ---- */

/* Mono time ms from now (saturating). */
static uint64_t after_ms(uint64_t ms)
{
    uint64_t now = plat_mono_ns();
    return ms > (UINT64_MAX - now) / 1000000u ? UINT64_MAX : now + ms * 1000000u;
}

/* How long one bio call may wait: io_timeout from now (or until by_ns),
 * cut at the phase deadline; *limited = 1 when the deadline is what binds. */
static uint64_t wait_ms(const conn *cn, uint64_t by_ns, int *limited)
{
    uint64_t now = plat_mono_ns(), end = by_ns ? by_ns : after_ms(cn->io_timeout_ms);
    *limited = cn->deadline_ns && cn->deadline_ns < end;
    if (*limited)
        end = cn->deadline_ns;
    return end > now ? (end - now + 999999u) / 1000000u : 0;
}

/* Notes a failed send (plat_net's -errno) the way io_failure reads it;
 * returns mbedTLS's code for it. */
static int send_failed(conn *cn, int rc, int limited)
{
    cn->os_err = rc;
    cn->deadline_hit = rc == -ETIMEDOUT && limited;
    return rc == -ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_SEND_FAILED;
}

/* Past the phase deadline the bio callbacks fail at once, as a wait that
 * ran out would, even when the peer's bytes are ready: a peer that never
 * makes us wait (a 1xx flood, a handshake fed byte by byte) cannot outlast
 * the phase, and the loops that call mbedTLS need no clock of their own. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    conn *cn = ctx;
    size_t n = 0;
    int limited = 0, rc;
    uint64_t ms = cn->q ? 0 : wait_ms(cn, cn->send_by_ns, &limited);
    if (cn->q) /* the body phase has no deadline: the sender keeps io_timeout */
        rc = sendq_push(cn->q, buf, len, &cn->credit, &n);
    else
        rc = limited && !ms ? -ETIMEDOUT
                        : plat_sock_send(cn->fd, buf, len > INT_MAX ? INT_MAX : len, ms,
                                         cn->until_readable ? PLAT_SEND_UNTIL_READABLE : 0,
                                         cn->cancel, &n);
    if (rc == -EAGAIN || rc == SENDQ_SPOKE) {
        cn->spoke = 1;
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    if (rc)
        return send_failed(cn, rc, limited);
    if (cn->send_by_ns)
        cn->send_by_ns = after_ms(cn->io_timeout_ms);
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    conn *cn = ctx;
    size_t n = 0;
    int limited = 0, rc;
    uint64_t ms = cn->no_wait ? 0 : wait_ms(cn, 0, &limited);
    rc = limited && !ms ? -ETIMEDOUT
                        : plat_sock_recv(cn->fd, buf, len > INT_MAX ? INT_MAX : len, ms,
                                         cn->cancel, &n);
    if (rc == -ETIMEDOUT && cn->no_wait)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (rc) {
        cn->os_err = rc;
        cn->deadline_hit = rc == -ETIMEDOUT && limited;
        return rc == -ETIMEDOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_RECV_FAILED;
    }
    if (!n)
        cn->eof = 1;
    return (int)n;
}

/* Between two reads or writes: 0, or HTTP_ECANCELED once the caller
 * cancelled, noted in cn the way a bio callback notes it. mbedTLS may
 * answer from what it has buffered without calling a bio callback, so a
 * cancel is looked for here too. */
static int check_cancel(conn *cn)
{
    int rc = 0;
    if (cn->cancel && plat_cancel_fired(cn->cancel)) {
        cn->os_err = -ECANCELED;
        rc = HTTP_ECANCELED;
    }
    return rc;
}

/* Starts a phase bounded as a whole by ms (0: no deadline) named `name`. */
static void set_phase(conn *cn, uint64_t ms, const char *name)
{
    cn->deadline_ns = ms ? after_ms(ms) : 0;
    cn->deadline_ms = ms;
    cn->deadline_name = name;
    cn->deadline_hit = 0;
    cn->os_err = 0;
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

/* Writes buf as TLS records. 0 when all of it went out (*done = len);
 * HTTP_SPOKE when a wait for room ended because the server spoke (*done
 * bytes went out: call again with the rest, as mbedTLS requires, once the
 * server's bytes are read); else the mbedTLS error. */
static int tls_write_all(mbedtls_ssl_context *ssl, conn *cn, const unsigned char *buf, size_t len,
                         size_t *done)
{
    int max = mbedtls_ssl_get_max_out_record_payload(ssl);
    *done = 0;
    while (*done < len) {
        cn->spoke = 0;
        cn->credit = max > 0 && len - *done > (size_t)max ? (size_t)max : len - *done;
        int n = mbedtls_ssl_write(ssl, buf + *done, len - *done);
        if (n == MBEDTLS_ERR_SSL_WANT_WRITE && cn->spoke)
            return HTTP_SPOKE;
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n <= 0)
            return n ? n : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        *done += (size_t)n;
    }
    return 0;
}

/* Reads some plaintext: 0 with *got (0 = the server closed, or with
 * cn->no_wait: nothing there yet), or the mbedTLS error. */
static int tls_read(mbedtls_ssl_context *ssl, conn *cn, unsigned char *buf, size_t len,
                    size_t *got)
{
    *got = 0;
    for (;;) {
        int n = mbedtls_ssl_read(ssl, buf, len);
        if ((n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) && cn->no_wait)
            return 0;
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF) {
            cn->eof = 1;
            return 0;
        }
        if (n < 0)
            return n;
        *got = (size_t)n;
        return 0;
    }
}

/* The class and words of a failed send/recv after the handshake. */
static int io_failure(const conn *cn, int ret, char *why, size_t len)
{
    if (cn->os_err == -ECANCELED) {
        snprintf(why, len, "cancelled");
        return HTTP_ECANCELED;
    }
    if (cn->os_err == -ETIMEDOUT && cn->deadline_hit) {
        snprintf(why, len, "the %s of %llu ms passed", cn->deadline_name,
                 (unsigned long long)cn->deadline_ms);
        return HTTP_ETIMEDOUT;
    }
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

/* ---- the response ---- */

/* Drops complete interim (1xx) heads from the front of c->head until a
 * final head is complete or more bytes are needed. 0 or HTTP_EPROTO (also
 * for 101: we asked for no protocol switch). */
static int reader_parse(http_client *c, reader *r, http_response *rsp)
{
    int rc = 0;
    while (!r->final) {
        int prc = http__parse_head((const char *)c->head, r->have, rsp, &r->fr, &r->head_len);
        if (prc == 1)
            break;
        if (prc != 0 || rsp->status == 101) {
            rc = HTTP_EPROTO;
            break;
        }
        if (rsp->status >= 200) {
            r->final = 1;
            break;
        }
        memmove(c->head, c->head + r->head_len, r->have - r->head_len);
        r->have -= r->head_len;
        rsp->interim++;
        rsp->status = 0;
        rsp->reason[0] = 0;
    }
    return rc;
}

/* Reads once into c->head (cn->eof set at end of stream). 0 or the
 * mbedTLS error. */
static int reader_fill(http_client *c, mbedtls_ssl_context *ssl, conn *cn, reader *r,
                       size_t *got)
{
    int ret;
    if (r->have >= sizeof(c->head)) { /* reader_parse refuses a full buffer first */
        *got = 0;
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    }
    ret = tls_read(ssl, cn, c->head + r->have, sizeof(c->head) - r->have, got);
    r->have += *got;
    return ret;
}

/* While sending: takes in what the server has sent so far, without
 * waiting and at most one buffer's worth. 1 when sending must stop (a final
 * head is complete, the server closed, or reading failed: read_response
 * then reports which), 0 to go on. */
static int pump(http_client *c, mbedtls_ssl_context *ssl, conn *cn, reader *r,
                http_response *rsp)
{
    size_t got = 0, taken = 0;
    int stop = 0;
    cn->no_wait = 1;
    for (;;) {
        if (reader_parse(c, r, rsp) || r->final || cn->eof) {
            stop = 1;
            break;
        }
        if (taken >= sizeof(c->head))
            break;
        if (reader_fill(c, ssl, cn, r, &got)) {
            stop = 1;
            break;
        }
        if (!got && !cn->eof)
            break;
        taken += got;
    }
    cn->no_wait = 0;
    cn->until_readable = rsp->interim < HTTP_INTERIM_WATCH;
    if (cn->q && !stop)
        sendq_resume(cn->q, cn->until_readable);
    return stop;
}

/* Ends the body's sender, if any: bytes_sent becomes what reached the
 * kernel. */
static void stop_sender(http_client *c, conn *cn, http_response *rsp)
{
    if (cn->q)
        rsp->bytes_sent = sendq_stop(cn->q, &c->pipe_depth);
    cn->q = NULL;
}

/* Sends the body in full records, watching for an answer: stops early
 * when a final response (or the end of the connection) comes first. */
static int send_body(http_client *c, mbedtls_ssl_context *ssl, conn *cn, reader *r,
                     const http_request *rq, http_response *rsp, const char *hp, char *err,
                     size_t errlen)
{
    uint64_t left = rq->content_length;
    char why[160];
    int rc = 0, ret;
    cn->send_by_ns = after_ms(cn->io_timeout_ms);
    cn->until_readable = 1;
    if (left > HTTP_RECORD && sendq_start(cn->fd, cn->io_timeout_ms, cn->cancel, 1, &cn->q))
        cn->q = NULL; /* no thread: the body goes out from here */
    while (left) {
        size_t want = left < HTTP_RECORD ? (size_t)left : HTTP_RECORD, have = 0, got, off, done;
        /* Before each record: a cancel, or an answer already there? A
         * server that refuses (401, 413) or lies (a 2xx without the body)
         * answers and reads no more: stop instead of pushing hundreds of
         * MiB at it. One poll(2) per record is nothing next to encrypting it. */
        int rd = plat_sock_readable(cn->fd, 0, cn->cancel);
        if (rd == -ECANCELED) {
            cn->os_err = rd; /* as a bio callback notes it */
            ret = 0;
            goto broken;
        }
        if (rd == 1 && cn->until_readable && pump(c, ssl, cn, r, rsp))
            goto out;
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
        for (off = 0; off < have; off += done) {
            ret = tls_write_all(ssl, cn, c->io + off, have - off, &done);
            if (ret == HTTP_SPOKE && !pump(c, ssl, cn, r, rsp))
                continue; /* interim 1xx or part of a head: resume the same write */
            if (ret == HTTP_SPOKE) {
                rsp->bytes_sent += off + done;
                goto out;
            }
            if (ret) {
                rsp->bytes_sent += off + done;
                goto broken;
            }
        }
        rsp->bytes_sent += have; /* with a sender: handed to it, until stop_sender */
        left -= have;
    }
    while (cn->q && (ret = sendq_flush(cn->q))) { /* a 2xx counts only after every byte */
        if (ret != SENDQ_SPOKE) {
            ret = send_failed(cn, ret, 0);
            goto broken;
        }
        if (pump(c, ssl, cn, r, rsp))
            goto out;
    }
    goto out;
broken: /* the connection failed or the caller cancelled */
    stop_sender(c, cn, rsp);
    rc = io_failure(cn, ret, why, sizeof(why));
    errf(err, errlen, "sending the body to %s after %llu of %llu bytes: %s", hp,
         (unsigned long long)rsp->bytes_sent, (unsigned long long)rq->content_length, why);
out:
    stop_sender(c, cn, rsp);
    cn->until_readable = 0;
    cn->send_by_ns = 0;
    return rc;
}

/* Reads the response head (skipping 1xx) within the response timeout,
 * then, best effort, the first body bytes. */
static int read_response(http_client *c, mbedtls_ssl_context *ssl, conn *cn, reader *r,
                         const http_request *rq, http_response *rsp, const char *hp, char *err,
                         size_t errlen)
{
    size_t got, raw, want;
    char why[160];
    int rc = 0, ret, done = 0;
    set_phase(cn, rq->response_timeout_ms, "response timeout");
    for (;;) {
        if (reader_parse(c, r, rsp)) {
            rc = HTTP_EPROTO;
            errf(err, errlen, "response from %s: malformed or oversized status line/headers "
                 "(limit %d bytes)", hp, HTTP__HEAD_MAX);
            goto out;
        }
        if (r->final)
            break;
        if (cn->eof) {
            rc = r->have ? HTTP_EPROTO : HTTP_EIO;
            errf(err, errlen, "%s closed the connection %s (%llu of %llu body bytes sent)", hp,
                 r->have ? "inside the response head" : "without a response",
                 (unsigned long long)rsp->bytes_sent, (unsigned long long)rq->content_length);
            goto out;
        }
        if ((ret = check_cancel(cn)) || (ret = reader_fill(c, ssl, cn, r, &got))) {
            rc = io_failure(cn, ret, why, sizeof(why));
            errf(err, errlen, "waiting for the response from %s (%llu of %llu body bytes "
                 "sent, %u interim 1xx responses): %s", hp, (unsigned long long)rsp->bytes_sent,
                 (unsigned long long)rq->content_length, rsp->interim, why);
            goto out;
        }
    }
    /* Best effort from here, within the same deadline: the body is only
     * for the log. */
    raw = r->have - r->head_len;
    memmove(c->head, c->head + r->head_len, raw);
    if (rsp->status == 204 || rsp->status == 304 || r->fr.content_length == 0 ||
        !strcmp(rq->method, "HEAD")) /* a HEAD's Content-Length is the object's */
        want = 0;
    else if (r->fr.chunked)
        want = HTTP_RAW_BODY_MAX;
    else if (r->fr.content_length > 0 && (uint64_t)r->fr.content_length < sizeof(rsp->body) - 1)
        want = (size_t)r->fr.content_length;
    else
        want = sizeof(rsp->body) - 1;
    while (raw < want) {
        if (r->fr.chunked) {
            http__dechunk((const char *)c->head, raw, rsp->body, sizeof(rsp->body) - 1, &done);
            if (done)
                break;
        }
        if (check_cancel(cn) || tls_read(ssl, cn, c->head + raw, want - raw, &got) || !got)
            break;
        raw += got;
    }
    raw = raw < want ? raw : want;
    if (r->fr.chunked)
        rsp->body_len = http__dechunk((const char *)c->head, raw, rsp->body,
                                      sizeof(rsp->body) - 1, &done);
    else
        memcpy(rsp->body, c->head,
               rsp->body_len = raw < sizeof(rsp->body) ? raw : sizeof(rsp->body) - 1);
    rsp->body[rsp->body_len] = 0;
out:
    return rc;
}

int http_request_do(http_client *c, const http_request *rq, http_response *rsp, char *err,
                    size_t errlen)
{
    mbedtls_ssl_context ssl;
    conn cn = {.fd = -1};
    reader r = {.fr = {0, -1}};
    char hp[300], why[600];
    size_t head_len = 0, done = 0;
    int rc, ret, v6;

    mbedtls_ssl_init(&ssl);
    memset(rsp, 0, sizeof(*rsp));
    c->pipe_depth = 0;
    errf(err, errlen, "ok");
    if ((rc = build_head(c, rq, &head_len, err, errlen)))
        goto out;
    v6 = strchr(rq->host, ':') != NULL;
    snprintf(hp, sizeof(hp), "%s%s%s:%d", v6 ? "[" : "", rq->host, v6 ? "]" : "", rq->port);
    cn.io_timeout_ms = rq->io_timeout_ms;
    cn.cancel = rq->cancel;
    if (inet_pton(AF_INET, rq->host, cn.ip) == 1)
        cn.ip_len = 4;
    else if (inet_pton(AF_INET6, rq->host, cn.ip) == 1)
        cn.ip_len = 16;

    set_phase(&cn, rq->connect_timeout_ms, "connect timeout"); /* connect + handshake */
    if ((rc = plat_tcp_connect(rq->host, rq->port, rq->connect_timeout_ms, rq->cancel, &cn.fd))) {
        if (rc == -ETIMEDOUT)
            errf(err, errlen, "connecting to %s: timed out after %llu ms", hp,
                 (unsigned long long)rq->connect_timeout_ms);
        else if (rc == -ECANCELED)
            errf(err, errlen, "connecting to %s: cancelled", hp);
        else if (rc == -ENOENT)
            errf(err, errlen, "connecting to %s: the host name does not resolve", hp);
        else
            errf(err, errlen, "connecting to %s: %s", hp, os_words(rc, why, sizeof(why)));
        rc = rc == -ETIMEDOUT ? HTTP_ETIMEDOUT : rc == -ECANCELED ? HTTP_ECANCELED
           : rc == -ENOMEM ? HTTP_ENOMEM : HTTP_ECONNECT;
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
        if ((ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) &&
            !check_cancel(&cn))
            continue;
        rc = HTTP_ETLS;
        if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            verify_words(c, rq->host, mbedtls_ssl_get_verify_result(&ssl), why, sizeof(why));
            errf(err, errlen, "TLS handshake with %s: certificate verification failed: %s", hp,
                 why);
        } else if (cn.os_err == -ECANCELED) {
            rc = HTTP_ECANCELED;
            errf(err, errlen, "TLS handshake with %s: cancelled", hp);
        } else if (cn.os_err == -ETIMEDOUT && cn.deadline_hit) {
            rc = HTTP_ETIMEDOUT;
            errf(err, errlen, "TLS handshake with %s: not finished within the connect timeout "
                 "of %llu ms", hp, (unsigned long long)rq->connect_timeout_ms);
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
    set_phase(&cn, 0, NULL); /* the body: io_timeout per wait, no deadline as a whole */
    snprintf(rsp->suite, sizeof(rsp->suite), "%s", mbedtls_ssl_get_ciphersuite(&ssl));

    if ((ret = tls_write_all(&ssl, &cn, c->io, head_len, &done))) {
        rc = io_failure(&cn, ret, why, sizeof(why));
        errf(err, errlen, "sending the request to %s: %s", hp, why);
        goto out;
    }
    rc = send_body(c, &ssl, &cn, &r, rq, rsp, hp, err, errlen);
    if (rc == HTTP_EBODY || rc == HTTP_ETIMEDOUT || rc == HTTP_ECANCELED)
        goto out;
    /* Also after a broken send: the server may have said why before closing. */
    {
        char err2[sizeof(why)];
        int rrc = read_response(c, &ssl, &cn, &r, rq, rsp, hp, err2, sizeof(err2));
        if (rrc == 0 || rc == 0 || rrc == HTTP_ECANCELED) {
            rc = rrc;
            if (rrc)
                errf(err, errlen, "%s", err2);
        }
    }
    if (rc == 0) {
        rsp->early = rsp->bytes_sent < rq->content_length;
        if (rsp->early)
            errf(err, errlen, "%s answered %d before the whole body was sent (%llu of %llu "
                 "bytes)", hp, rsp->status, (unsigned long long)rsp->bytes_sent,
                 (unsigned long long)rq->content_length);
        else
            errf(err, errlen, "%s answered %d", hp, rsp->status);
    }
out:
    mbedtls_ssl_free(&ssl);
    if (cn.fd >= 0)
        plat_sock_close(cn.fd);
    return rc;
}
