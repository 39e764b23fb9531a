/*
 * sigv4.c -- AWS Signature Version 4 (contract in sigv4.h).
 *
 * The canonical request is never held whole: a sink streams it through
 * SHA-256 and copies it out only when the caller asked to see it. Sinks keep
 * a sticky error (Redis rio style), so the builders write without checking
 * and the caller looks once at the end. Headers are sorted through an array
 * of pointers on the stack; the canonical query and a normalised path take
 * one heap block each, freed before returning. Hashing and HMAC go through
 * mbedTLS's md layer, whose calls are the same in 2.28 and 3.x (sha256.h
 * renamed its functions between the two).
 */
#include "sigv4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#define ALGO "AWS4-HMAC-SHA256"
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 'a' - 'A' : (c))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_HEX(c) (IS_DIGIT(c) || (LOWER(c) >= 'a' && LOWER(c) <= 'f'))
#define HEXVAL(c) (IS_DIGIT(c) ? (c) - '0' : LOWER(c) - 'a' + 10)
#define UNRESERVED(c) (IS_DIGIT(c) || (LOWER(c) >= 'a' && LOWER(c) <= 'z') || \
                       (c) == '-' || (c) == '_' || (c) == '.' || (c) == '~')

typedef struct sink {
    mbedtls_md_context_t *md;  /* NULL: not hashed */
    char *buf;                 /* NULL: not kept; else NUL-terminated */
    size_t cap, len;
    int err;                   /* first failure; later writes are no-ops */
} sink;

static void fail(sink *s, int err)
{
    if (!s->err)
        s->err = err;
}

static void sink_buf(sink *s, char *buf, size_t cap)
{
    s->buf = buf;
    s->cap = cap;
    s->len = 0;
    if (buf && !cap)
        fail(s, -ENOSPC);
    else if (buf)
        buf[0] = 0;
}

static void put(sink *s, const char *p, size_t n)
{
    if (s->err || !n)
        return;
    if (s->md && mbedtls_md_update(s->md, (const unsigned char *)p, n))
        fail(s, -EINVAL);
    else if (s->buf && n >= s->cap - s->len)
        fail(s, -ENOSPC);
    else if (s->buf) {
        memcpy(s->buf + s->len, p, n);
        s->len += n;
        s->buf[s->len] = 0;
    }
}

/* Writes each string up to the NULL. */
static void put_strs(sink *s, ...) __attribute__((sentinel));
static void put_strs(sink *s, ...)
{
    va_list ap;
    va_start(ap, s);
    for (const char *str; (str = va_arg(ap, const char *));)
        put(s, str, strlen(str));
    va_end(ap);
}

void sigv4_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = "0123456789abcdef"[in[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[in[i] & 15];
    }
    out[2 * n] = 0;
}

static void put_enc(sink *s, const char *p, size_t n, int keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char e[3] = {'%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]};
        if (UNRESERVED(c) || (c == '/' && keep_slash))
            put(s, p + i, 1);
        else
            put(s, e, 3);
    }
}

/* p[0..n) with its percent escapes decoded, then encoded the SigV4 way:
 * the form S3 gives a path and everyone a query. */
static void put_recoded(sink *s, const char *p, size_t n, int keep_slash)
{
    for (size_t i = 0; i < n && !s->err; i++) {
        char c = p[i];
        if (c == '%' && (i + 2 >= n || !IS_HEX(p[i + 1]) || !IS_HEX(p[i + 2]))) {
            fail(s, -EINVAL);   /* a broken escape */
            break;
        } else if (c == '%') {
            c = (char)(HEXVAL(p[i + 1]) << 4 | HEXVAL(p[i + 2]));
            i += 2;
        }
        put_enc(s, &c, 1, keep_slash);
    }
}

/* botocore's normalize_url_path, as AWS's test suite expects: empty and "."
 * segments dropped, ".." drops the segment before it, a trailing '/' kept.
 * p starts with '/'; out has strlen(p) + 2 bytes. */
static size_t normalize(const char *p, char *out)
{
    size_t o = 0, len = strlen(p);
    for (const char *seg = p; *seg;) {
        while (*seg == '/')
            seg++;
        size_t n = strcspn(seg, "/");
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o && out[--o] != '/')
                ;
        } else if (n && !(n == 1 && seg[0] == '.')) {
            out[o++] = '/';
            memcpy(out + o, seg, n);
            o += n;
        }
        seg += n;
    }
    if (!o || p[len - 1] == '/')
        out[o++] = '/';
    return o;
}

static void put_uri(sink *s, const char *path, int mode)
{
    size_t len = strlen(path);
    char *tmp = mode == SIGV4_S3 || len > SIZE_MAX - 2 ? NULL : malloc(len + 2);

    if (mode == SIGV4_S3)
        put_recoded(s, path, len, 1);
    else if (!tmp)
        fail(s, -ENOMEM);
    else
        put_enc(s, tmp, normalize(path, tmp), 1);   /* the wire's escapes encoded again */
    free(tmp);
}

typedef struct qparam {
    const char *k, *v;   /* canonical key and value */
} qparam;

static int qcmp(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

/* Each '&'-separated parameter is split at its first '=' (none: an empty
 * value), re-encoded, and the list sorted by key, then value. */
static void put_query(sink *s, const char *q)
{
    size_t qlen = strlen(q), np = 0, i;
    /* qlen + 1 parameters at most; each raw byte becomes 3 at most. */
    qparam *ps = qlen > SIZE_MAX / 64 ? NULL : malloc((qlen + 1) * sizeof(*ps) + 5 * qlen + 2);
    sink area = {0};

    if (!ps) {
        fail(s, -ENOMEM);
        return;
    }
    sink_buf(&area, (char *)(ps + qlen + 1), 5 * qlen + 2);
    for (i = 0; i < qlen; i += strcspn(q + i, "&") + 1) {
        size_t n = strcspn(q + i, "&"), kn = strcspn(q + i, "=&");
        if (!n)
            continue;
        ps[np].k = area.buf + area.len;
        put_recoded(&area, q + i, kn, 0);
        put(&area, "", 1);   /* the NUL stays: the next part starts after it */
        ps[np++].v = area.buf + area.len;
        put_recoded(&area, q + i + kn + (kn < n), n - kn - (kn < n), 0);
        put(&area, "", 1);
    }
    fail(s, area.err);
    if (!area.err)
        qsort(ps, np, sizeof(*ps), qcmp);
    for (i = 0; !area.err && i < np; i++)
        put_strs(s, i ? "&" : "", ps[i].k, "=", ps[i].v, NULL);
    free(ps);
}

static int name_cmp(const char *a, const char *b)
{
    while (*a && LOWER(*a) == LOWER(*b))
        a++, b++;
    return LOWER((unsigned char)*a) - LOWER((unsigned char)*b);
}

/* By lowercase name; equal names keep their order (the array's). */
static int hcmp(const void *a, const void *b)
{
    const sigv4_header *x = *(const sigv4_header *const *)a;
    const sigv4_header *y = *(const sigv4_header *const *)b;
    int c = name_cmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

/* Trimmed, runs of blanks as one space; the lines of a folded value are
 * separate values, joined with ',' (AWS's get-header-value-multiline). */
static void put_value(sink *s, const char *v)
{
    int any = 0;
    while (*v) {
        size_t n = strcspn(v, "\n");
        int wrote = 0, blank = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] == ' ' || v[i] == '\t' || v[i] == '\r') {
                blank = wrote;
                continue;
            }
            put(s, ",", any && !wrote);
            put(s, " ", blank);
            put(s, v + i, 1);
            wrote = any = 1;
            blank = 0;
        }
        v += n + (v[n] == '\n');
    }
}

/* "a:v1,v2\nb:v\n" (canonical headers) or "a;b" (signed headers). */
static void put_headers(sink *s, const sigv4_header *const *h, size_t n, int signed_list)
{
    for (size_t i = 0; i < n; i++) {
        int first = !i || name_cmp(h[i - 1]->name, h[i]->name);
        if (first) {
            put(s, ";", signed_list && i);
            for (const char *p = h[i]->name; *p; p++) {
                char c = (char)LOWER(*p);
                put(s, &c, 1);
            }
        }
        if (signed_list)
            continue;
        put(s, first ? ":" : ",", 1);
        put_value(s, h[i]->value);
        put(s, "\n", i + 1 == n || name_cmp(h[i]->name, h[i + 1]->name));
    }
}

/* s has exactly the shape of pattern: 'd' a digit, 'x' lowercase hex,
 * anything else itself. */
static int shaped(const char *s, const char *pattern)
{
    for (; *pattern; s++, pattern++)
        if (!*s || (*pattern == 'd' ? !IS_DIGIT(*s)
                    : *pattern == 'x' ? !IS_DIGIT(*s) && !(*s >= 'a' && *s <= 'f')
                    : *s != *pattern))
            return 0;
    return !*s;
}

/* 1..SIGV4_MAX_FIELD bytes of printable ASCII, no blanks, none of banned. */
static int field_ok(const char *f, const char *banned)
{
    size_t n = f ? strnlen(f, SIGV4_MAX_FIELD + 1) : 0;
    for (size_t i = 0; i < n; i++)
        if (f[i] <= ' ' || f[i] >= 0x7f || strchr(banned, f[i]))
            return 0;
    return n && n <= SIGV4_MAX_FIELD;
}

/* Validates everything and fills h with the headers sorted. */
static int check(const sigv4_request *r, const sigv4_key *k, const char *amz_date, int mode,
                 const sigv4_header **h)
{
    static const char sha[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    static const char not_token[] = "\"(),/:;<=>?@[\\]{}";   /* RFC 9110 tchar */
    int host = 0, date = 0;
    if (!r || !k || (mode != SIGV4_GENERIC && mode != SIGV4_S3) || !amz_date ||
        !shaped(amz_date, "ddddddddTddddddZ") || !field_ok(r->method, not_token) || !r->path ||
        r->path[0] != '/' || !r->payload_sha256 ||
        (!shaped(r->payload_sha256, sha) && strcmp(r->payload_sha256, SIGV4_UNSIGNED_PAYLOAD)))
        return -EINVAL;
    /* a '/' or ',' would break the Credential= field */
    if (!field_ok(k->access_key, "/,") || !field_ok(k->secret_key, "") ||
        !field_ok(k->region, "/,") || !field_ok(k->service, "/,") || (r->n_headers && !r->headers))
        return -EINVAL;
    if (r->n_headers > SIGV4_MAX_HEADERS)
        return -E2BIG;
    for (size_t i = 0; i < r->n_headers; i++) {
        h[i] = &r->headers[i];
        if (!field_ok(h[i]->name, not_token) || !h[i]->value)
            return -EINVAL;
        host |= !name_cmp(h[i]->name, "host");
        if (!name_cmp(h[i]->name, "x-amz-date") && strcmp(h[i]->value, amz_date))
            return -EINVAL;
        date |= !name_cmp(h[i]->name, "x-amz-date");
    }
    if (!host || !date)
        return -EINVAL;
    qsort(h, r->n_headers, sizeof(*h), hcmp);
    return 0;
}

int sigv4_sign(const sigv4_request *r, const sigv4_key *k, const char *amz_date, int mode,
               char *authz, size_t authz_len, char *creq_out, size_t creq_len, char *sts_out,
               size_t sts_len)
{
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    const sigv4_header *h[SIGV4_MAX_HEADERS];
    mbedtls_md_context_t md;
    unsigned char key[4 + SIGV4_MAX_FIELD], ka[32], kb[32];
    char day[9] = "", hash[65], sts[512];
    sink c = {0}, t = {0}, a = {0};
    size_t key_len;
    int rc;

    mbedtls_md_init(&md);
    rc = check(r, k, amz_date, mode, h);
    if (!rc && !authz)
        rc = -EINVAL;
    if (!rc && (mbedtls_md_setup(&md, sha256, 0) || mbedtls_md_starts(&md)))
        rc = -ENOMEM;
    if (rc)
        goto out;
    memcpy(day, amz_date, 8);

    /* The canonical request, hashed as it is written. */
    c.md = &md;
    sink_buf(&c, creq_out, creq_len);
    put_strs(&c, r->method, "\n", NULL);
    put_uri(&c, r->path, mode);
    put(&c, "\n", 1);
    put_query(&c, r->query ? r->query : "");
    put(&c, "\n", 1);
    put_headers(&c, h, r->n_headers, 0);
    put(&c, "\n", 1);
    put_headers(&c, h, r->n_headers, 1);
    put_strs(&c, "\n", r->payload_sha256, NULL);
    if ((rc = c.err) || (rc = mbedtls_md_finish(&md, ka) ? -EINVAL : 0))
        goto out;
    sigv4_hex(ka, 32, hash);

    sink_buf(&t, sts, sizeof(sts));   /* fits: every field is bounded */
    put_strs(&t, ALGO "\n", amz_date, "\n", day, "/", k->region, "/", k->service,
             "/aws4_request\n", hash, NULL);
    if (sts_out) {
        sink_buf(&t, sts_out, sts_len);
        put_strs(&t, sts, NULL);
    }
    if ((rc = t.err))
        goto out;

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, day), region), service),
     * "aws4_request"); the signature is HMAC(kSigning, sts). */
    key_len = 4 + strlen(k->secret_key);
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, k->secret_key, key_len - 4);
    const char *msgs[] = {day, k->region, k->service, "aws4_request", sts};
    for (size_t i = 0; !rc && i < sizeof(msgs) / sizeof(*msgs); i++) {
        if (mbedtls_md_hmac(sha256, i ? ka : key, i ? sizeof(ka) : key_len,
                            (const unsigned char *)msgs[i], strlen(msgs[i]), kb))
            rc = -EINVAL;
        memcpy(ka, kb, sizeof(ka));
    }
    if (rc)
        goto out;
    sigv4_hex(ka, 32, hash);

    sink_buf(&a, authz, authz_len);
    put_strs(&a, ALGO " Credential=", k->access_key, "/", day, "/", k->region, "/", k->service,
             "/aws4_request, SignedHeaders=", NULL);
    put_headers(&a, h, r->n_headers, 1);
    put_strs(&a, ", Signature=", hash, NULL);
    rc = a.err;
out:
    if (rc && authz && authz_len)
        authz[0] = 0;
    if (rc && creq_out && creq_len)
        creq_out[0] = 0;
    if (rc && sts_out && sts_len)
        sts_out[0] = 0;
    mbedtls_md_free(&md);
    mbedtls_platform_zeroize(key, sizeof(key));
    mbedtls_platform_zeroize(ka, sizeof(ka));
    mbedtls_platform_zeroize(kb, sizeof(kb));
    return rc;
}

static void digits(char *p, int64_t v, int n)
{
    while (n--) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

int sigv4_amz_date(int64_t unix_seconds, char out[17])
{
    /* Howard Hinnant's civil_from_days; z counts days from 0000-03-01. */
    int64_t s = unix_seconds % 86400, z = unix_seconds / 86400 + 719468;
    int64_t era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;

    out[0] = 0;
    if (unix_seconds < 0 || unix_seconds > INT64_C(253402300799))
        return -EINVAL;
    digits(out, yoe + era * 400 + (m <= 2), 4);
    digits(out + 4, m, 2);
    digits(out + 6, doy - (153 * mp + 2) / 5 + 1, 2);
    digits(out + 9, s / 3600 * 10000 + s / 60 % 60 * 100 + s % 60, 6);
    out[8] = 'T';
    out[15] = 'Z';
    out[16] = 0;
    return 0;
}

int sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t out_len)
{
    sink s = {0};
    if (!in || !out)
        return -EINVAL;
    sink_buf(&s, out, out_len);
    put_enc(&s, in, strlen(in), keep_slash);
    if (s.err && out_len)
        out[0] = 0;
    return s.err;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), data, len, d))
        out[0] = 0;
    else
        sigv4_hex(d, 32, out);
}
