/*
 * payload.c -- MQTT payload decoders (formats and rules in payload.h).
 *
 * The .npy header is a Python dict literal; it is tokenized here just far
 * enough for its three keys. JSON gets a small recursive-descent reader that
 * accepts only what a tensor needs (objects, lists, numbers, strings,
 * true/false), nested at most TS_MAX_DIMS deep. JSON and CSV are read twice:
 * once to check the syntax and learn the shape and count, once to convert
 * the values into the output buffer, so no intermediate array of doubles is
 * held and a value is converted only when its dtype is known. Integers are
 * parsed exactly from their decimal text; floats with strtof/strtod (the C
 * locale's '.', which the agent never changes).
 */
#include "payload.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const err_names[PAYLOAD_N_ERRS] = {
    "ok", "too_large", "malformed", "unsupported", "mismatch", "no_memory", "topic_too_long",
    "invalid",
};

const char *payload_err_name(payload_err e)
{
    return (unsigned)e < PAYLOAD_N_ERRS ? err_names[e] : "unknown";
}

static const char *const fmt_names[] = {NULL, "npy", "raw", "json", "csv"};

int payload_format_parse(const char *s, payload_format *out)
{
    for (int f = PAYLOAD_NPY; f <= PAYLOAD_CSV; f++)
        if (!strcmp(s, fmt_names[f])) {
            *out = (payload_format)f;
            return 0;
        }
    return -EINVAL;
}

const char *payload_format_name(payload_format f)
{
    return f >= PAYLOAD_NPY && f <= PAYLOAD_CSV ? fmt_names[f] : "?";
}

void payload_free(payload_tensor *t)
{
    free(t->data);
    memset(t, 0, sizeof(*t));
}

static payload_err fail(payload_err e, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static payload_err fail(payload_err e, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why_len)
        vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return e;
}

/* Elements of a shape, or 0 with *bad set on overflow. */
static uint64_t numel(uint32_t ndim, const uint64_t *shape, size_t es, int *bad)
{
    uint64_t n = 1;
    *bad = 0;
    for (uint32_t i = 0; i < ndim; i++) {
        if (shape[i] && n > UINT64_MAX / shape[i]) {
            *bad = 1;
            return 0;
        }
        n *= shape[i];
    }
    if (es && n > SIZE_MAX / es)
        *bad = 1;
    return n;
}

static payload_err take_bytes(payload_tensor *out, const uint8_t *src, size_t len, char *why,
                              size_t why_len)
{
    out->data = malloc(len ? len : 1);
    if (!out->data)
        return fail(PAYLOAD_NO_MEMORY, why, why_len, "out of memory for %zu bytes", len);
    memcpy(out->data, src, len);
    out->data_len = len;
    return PAYLOAD_OK;
}

/* Copies src into dst (cap >= 4) for a message: printable ASCII kept,
 * anything else shown as '?', cut with "..." past cap. */
static const char *shown(char *dst, size_t cap, const char *src, size_t n)
{
    size_t k;
    for (k = 0; k < n && k + 1 < cap; k++)
        dst[k] = (unsigned char)src[k] >= 0x20 && (unsigned char)src[k] < 0x7f ? src[k] : '?';
    if (k < n)
        memcpy(dst + cap - 4, "...", 3);
    dst[k] = 0;
    return dst;
}

/* ---- npy -------------------------------------------------------------- */

/* The header is an ASCII Python dict literal, parsed as Python would read
 * it, limited to what NumPy writes: string keys and values without
 * escapes, True/False, a tuple of non-negative integers. */
typedef struct pycur {
    const char *p, *end;
} pycur;

static void py_ws(pycur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int py_char(pycur *c, char ch)
{
    py_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* After a value: ',' (consumed) or the closing `close` (left); 0 or -1. */
static int py_sep(pycur *c, char close)
{
    if (py_char(c, ','))
        return 0;
    py_ws(c);
    return c->p < c->end && *c->p == close ? 0 : -1;
}

/* A quoted string without escapes into out (cap bytes). */
static int py_str(pycur *c, char *out, size_t cap)
{
    py_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap || *c->p == '\\')
            return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    out[n] = 0;
    return 0;
}

/* Python's True or False, ending at a delimiter. 1, 0 or -1. */
static int py_bool(pycur *c)
{
    int v = -1;
    py_ws(c);
    if ((size_t)(c->end - c->p) >= 4 && !memcmp(c->p, "True", 4))
        v = 1, c->p += 4;
    else if ((size_t)(c->end - c->p) >= 5 && !memcmp(c->p, "False", 5))
        v = 0, c->p += 5;
    if (v >= 0 && c->p < c->end && (isalnum((unsigned char)*c->p) || *c->p == '_'))
        return -1;
    return v;
}

/* The dtype of a descr such as '<f4'. 0, or -1 when unknown. Multi-byte
 * types must state little- or big-endian ('<' or '>'): '|' and '=' (the
 * writer's native order) cannot be read without knowing the writer. */
static int npy_dtype(const char *descr, ts_dtype *dt, int *big, int *unstated)
{
    static const struct {
        const char *code;
        ts_dtype dt;
    } map[] = {
        {"f2", TS_F16}, {"f4", TS_F32}, {"f8", TS_F64}, {"i1", TS_I8},  {"i2", TS_I16},
        {"i4", TS_I32}, {"i8", TS_I64}, {"u1", TS_U8},  {"u2", TS_U16}, {"u4", TS_U32},
        {"u8", TS_U64}, {"b1", TS_BOOL}, {"c8", TS_C64}, {"c16", TS_C128},
    };
    if (!descr[0] || !strchr("<>|=", descr[0]))
        return -1;
    *big = descr[0] == '>';
    *unstated = descr[0] == '|' || descr[0] == '=';
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(descr + 1, map[i].code)) {
            *dt = map[i].dt;
            if (ts_dtype_size(*dt) == 1)
                *big = *unstated = 0; /* byte order means nothing for one byte */
            return 0;
        }
    return -1;
}

/* Bool elements are the bytes 0 and 1. */
static payload_err check_bools(const uint8_t *p, size_t n, char *why, size_t why_len)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] > 1)
            return fail(PAYLOAD_MISMATCH, why, why_len,
                        "element %zu of a bool tensor is the byte %u (must be 0 or 1)", i, p[i]);
    return PAYLOAD_OK;
}

/* The header of the .npy file at buf: dtype and shape into out, the
 * offset of its data into *data_off. Every check but the data's length. */
static payload_err npy_head(const uint8_t *buf, size_t len, payload_tensor *out,
                            size_t *data_off, char *why, size_t why_len)
{
    char key[32], descr[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0, big = 0, unstated = 0;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
        return fail(PAYLOAD_MALFORMED, why, why_len, "not a .npy file (bad magic)");
    uint8_t major = buf[6], minor = buf[7];
    size_t hlen, hoff;
    if ((major < 1 || major > 3) || minor != 0)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    ".npy format version %u.%u (1.0, 2.0 and 3.0 are read)", major, minor);
    if (major == 1) {
        hlen = buf[8] | (size_t)buf[9] << 8;
        hoff = 10;
    } else {
        if (len < 12)
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header cut short");
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hoff = 12;
    }
    if (hlen > len - hoff)
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header longer than the payload");
    for (size_t i = 0; i < hlen; i++) {
        uint8_t b = buf[hoff + i];
        if ((b < 0x20 || b > 0x7e) && b != '\n' && b != '\r' && b != '\t')
            return fail(PAYLOAD_MALFORMED, why, why_len,
                        ".npy header holds the byte 0x%02x at offset %zu (it is ASCII text)", b,
                        hoff + i);
    }
    pycur c = {(const char *)buf + hoff, (const char *)buf + hoff + hlen};
    if (!py_char(&c, '{'))
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header is not a dict");
    while (!py_char(&c, '}')) {
        if (py_str(&c, key, sizeof(key)) || !py_char(&c, ':'))
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: bad key");
        py_ws(&c);
        if (!strcmp(key, "descr")) {
            if (have_descr++)
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: descr given twice");
            if (c.p < c.end && *c.p != '\'' && *c.p != '"')
                return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                            ".npy descr is not a simple dtype (structured arrays are refused)");
            if (py_str(&c, descr, sizeof(descr)))
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: bad descr string");
        } else if (!strcmp(key, "fortran_order")) {
            if (have_order++)
                return fail(PAYLOAD_MALFORMED, why, why_len,
                            ".npy header: fortran_order given twice");
            if ((fortran = py_bool(&c)) < 0)
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy fortran_order not a bool");
        } else if (!strcmp(key, "shape")) {
            if (have_shape++)
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: shape given twice");
            if (!py_char(&c, '('))
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy shape is not a tuple");
            out->ndim = 0;
            while (!py_char(&c, ')')) {
                py_ws(&c);
                if (out->ndim == TS_MAX_DIMS)
                    return fail(PAYLOAD_UNSUPPORTED, why, why_len, "more than 8 dimensions");
                if (c.p >= c.end || !isdigit((unsigned char)*c.p))
                    return fail(PAYLOAD_MALFORMED, why, why_len, ".npy shape: bad dimension");
                /* Digits by hand: the header is not NUL-terminated. */
                uint64_t v = 0;
                while (c.p < c.end && isdigit((unsigned char)*c.p)) {
                    if (v > (UINT64_MAX - 9) / 10)
                        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy shape: too large");
                    v = v * 10 + (uint64_t)(*c.p++ - '0');
                }
                out->shape[out->ndim++] = v;
                if (py_sep(&c, ')'))
                    return fail(PAYLOAD_MALFORMED, why, why_len,
                                ".npy shape: expected ',' or ')'");
            }
        } else {
            char k[40];
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: unexpected key '%s'",
                        shown(k, sizeof(k), key, strlen(key)));
        }
        if (py_sep(&c, '}'))
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: expected ',' or '}'");
    }
    py_ws(&c);
    if (c.p != c.end)
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: bytes after the dict");
    if (!have_descr || !have_order || !have_shape)
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header lacks descr/fortran_order/shape");
    if (npy_dtype(descr, &out->dtype, &big, &unstated))
        return fail(PAYLOAD_UNSUPPORTED, why, why_len, ".npy dtype '%s' is not supported", descr);
    if (big)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    "big-endian .npy ('%s') refused: send little-endian ('<%s')", descr, descr + 1);
    if (unstated)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    ".npy descr '%s' does not state the byte order: send '<%s'", descr,
                    descr + 1);
    if (fortran && out->ndim > 1)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    "Fortran-order .npy refused: send C order (numpy.ascontiguousarray)");
    *data_off = hoff + hlen;
    return PAYLOAD_OK;
}

static payload_err decode_npy(const payload_spec *spec, const uint8_t *buf, size_t len,
                              payload_tensor *out, char *why, size_t why_len)
{
    size_t off = 0;
    int bad = 0;
    (void)spec;
    payload_err e = npy_head(buf, len, out, &off, why, why_len);
    if (e != PAYLOAD_OK)
        return e;
    size_t es = ts_dtype_size(out->dtype);
    uint64_t n = numel(out->ndim, out->shape, es, &bad);
    size_t body = len - off;
    if (bad)
        return fail(PAYLOAD_MISMATCH, why, why_len, ".npy shape x dtype overflows (data is %zu bytes)",
                    body);
    if (n * es != body)
        return fail(PAYLOAD_MISMATCH, why, why_len,
                    ".npy data is %zu bytes but shape x dtype needs %llu", body,
                    (unsigned long long)(n * es));
    if (out->dtype == TS_BOOL) {
        e = check_bools(buf + off, body, why, why_len);
        if (e != PAYLOAD_OK)
            return e;
    }
    return take_bytes(out, buf + off, body, why, why_len);
}

int payload_npy_length(const void *buf, size_t len, size_t *file_len, char *why, size_t why_len)
{
    payload_tensor t;
    size_t off = 0;
    int bad = 0;
    memset(&t, 0, sizeof(t));
    payload_err e = npy_head(buf, len, &t, &off, why, why_len);
    if (e != PAYLOAD_OK)
        return payload_errno(e);
    size_t es = ts_dtype_size(t.dtype);
    uint64_t n = numel(t.ndim, t.shape, es, &bad);
    if (bad || n * es > len - off) {
        fail(PAYLOAD_MISMATCH, why, why_len, ".npy data is cut short: %zu bytes follow its "
             "header, shape x dtype needs more", len - off);
        return payload_errno(PAYLOAD_MISMATCH);
    }
    *file_len = off + (size_t)(n * es);
    return 0;
}

/* ---- raw -------------------------------------------------------------- */

static payload_err decode_raw(const payload_spec *spec, const uint8_t *buf, size_t len,
                              payload_tensor *out, char *why, size_t why_len)
{
    int bad = 0;
    size_t es = ts_dtype_size(spec->dtype);
    if (!es || !spec->has_shape)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len, "raw format needs dtype and shape");
    out->dtype = spec->dtype;
    out->ndim = spec->ndim;
    memcpy(out->shape, spec->shape, sizeof(out->shape));
    uint64_t n = numel(spec->ndim, spec->shape, es, &bad);
    if (bad)
        return fail(PAYLOAD_MISMATCH, why, why_len, "the configured shape x dtype overflows");
    if (n * es != len)
        return fail(PAYLOAD_MISMATCH, why, why_len,
                    "raw payload is %zu bytes but the configured shape needs %llu", len,
                    (unsigned long long)(n * es));
    if (out->dtype == TS_BOOL) {
        payload_err e = check_bools(buf, len, why, why_len);
        if (e != PAYLOAD_OK)
            return e;
    }
    return take_bytes(out, buf, len, why, why_len);
}

/* ---- numbers shared by json and csv ------------------------------------ */

/* A number is a run of [A-Za-z0-9+-.] bytes (what sits between the
 * separators), checked against the grammar
 *     [+-] (digits [. digits*] | . digits) [(e|E) [+-] digits]
 * or one of nan, inf, infinity (any case, optional sign). Text longer than
 * NUM_MAX_LEN is refused rather than cut. */
#define NUM_MAX_LEN 511

static int num_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '+' || ch == '-' || ch == '.';
}

static size_t num_span(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && num_char(p[n]))
        n++;
    return n;
}

/* s[0..n) is w, in any case (caseless) or exactly. */
static int word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && !strncasecmp(s, w, n);
}

static int word_exact(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && !memcmp(s, w, n);
}

/* 1 when s is nan/inf/infinity (sign allowed); *neg for "-", *nan. */
static int num_special(const char *s, size_t n, int *neg, int *nan)
{
    *neg = 0;
    if (n && (s[0] == '+' || s[0] == '-')) {
        *neg = s[0] == '-';
        s++;
        n--;
    }
    *nan = word_is(s, n, "nan");
    return *nan || word_is(s, n, "inf") || word_is(s, n, "infinity");
}

/* Splits a decimal number: sign, integer digits, fraction digits, exponent
 * (clamped to +-100000, far past any dtype). 0, or -1 if s is not one. */
typedef struct decimal {
    int neg;
    const char *ip, *fp;
    size_t in, fn;
    long exp;
} decimal;

static int num_decimal(const char *s, size_t n, decimal *d)
{
    size_t i = 0;
    memset(d, 0, sizeof(*d));
    if (i < n && (s[i] == '+' || s[i] == '-'))
        d->neg = s[i++] == '-';
    d->ip = s + i;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, d->in++;
    if (i < n && s[i] == '.') {
        d->fp = s + ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, d->fn++;
    }
    if (d->in + d->fn == 0)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        size_t digits = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        while (i < n && isdigit((unsigned char)s[i])) {
            if (d->exp < 100000)
                d->exp = d->exp * 10 + (s[i] - '0');
            i++, digits++;
        }
        if (!digits)
            return -1;
        if (eneg)
            d->exp = -d->exp;
    }
    return i == n ? 0 : -1;
}

/* 0 when text is a number (or, with words, true/false). */
static int num_valid(const char *s, size_t n, int words)
{
    decimal d;
    int neg, nan;
    if (words && (word_exact(s, n, "true") || word_exact(s, n, "false")))
        return 0;
    return n <= NUM_MAX_LEN && (num_special(s, n, &neg, &nan) || !num_decimal(s, n, &d)) ? 0 : -1;
}

/* The exact integer value of d: 0, 1 when it has a fractional part, 2 when
 * its magnitude is 2^64 or more. */
static int num_integer(const decimal *d, uint64_t *mag)
{
    uint64_t v = 0;
    int big = 0;
    long point = (long)d->in + d->exp; /* digits before the decimal point */
    for (size_t k = 0; k < d->in + d->fn; k++) {
        unsigned dig = (unsigned)((k < d->in ? d->ip[k] : d->fp[k - d->in]) - '0');
        if ((long)k >= point) {
            if (dig)
                return 1;
        } else if (!big) {
            if (v > (UINT64_MAX - dig) / 10)
                big = 1;
            else
                v = v * 10 + dig;
        }
    }
    for (long k = (long)(d->in + d->fn); k < point && v && !big; k++) {
        if (v > UINT64_MAX / 10)
            big = 1;
        else
            v *= 10;
    }
    *mag = v;
    return big ? 2 : 0;
}

static int is_float_dtype(ts_dtype dt)
{
    return dt == TS_F16 || dt == TS_BF16 || dt == TS_F32 || dt == TS_F64 || dt == TS_C64 ||
           dt == TS_C128;
}

/* Stores the number text s[0..n) (already num_valid) as element i of dst.
 * PAYLOAD_OK, or PAYLOAD_MISMATCH with why saying which value and why. */
static payload_err num_store(ts_dtype dt, uint8_t *dst, size_t i, const char *s, size_t n,
                             char *why, size_t why_len)
{
    char tok[NUM_MAX_LEN + 1], shown_tok[48];
    const char *problem = "is out of range";
    int neg, nan;
    if (word_exact(s, n, "true") || word_exact(s, n, "false")) {
        int rc = ts_dtype_set(dt, dst, i, s[0] == 't' ? 1.0 : 0.0);
        return rc ? fail(PAYLOAD_MISMATCH, why, why_len, "value %zu (%s) does not fit %s", i,
                         shown(shown_tok, sizeof(shown_tok), s, n), ts_dtype_name(dt))
                  : PAYLOAD_OK;
    }
    if (is_float_dtype(dt)) {
        double v;
        memcpy(tok, s, n);
        tok[n] = 0;
        if (num_special(s, n, &neg, &nan)) {
            v = nan ? NAN : neg ? -INFINITY : INFINITY;
        } else if (dt == TS_F32 || dt == TS_C64) {
            /* Straight to float: through a double first can round twice. */
            float f = strtof(tok, NULL);
            if (isinf(f))
                goto refuse;
            v = f;
        } else {
            v = strtod(tok, NULL);
            if (isinf(v))
                goto refuse;
        }
        if (ts_dtype_set(dt, dst, i, v))
            goto refuse;
        return PAYLOAD_OK;
    }
    /* Integer dtypes: the decimal value exactly, never through a double. */
    decimal d = {0};
    uint64_t mag = 0;
    int r = num_special(s, n, &neg, &nan) ? 1 : (num_decimal(s, n, &d), num_integer(&d, &mag));
    if (r == 1) {
        problem = "is not an integer";
        goto refuse;
    }
    size_t es = ts_dtype_size(dt);
    int is_signed = dt == TS_I8 || dt == TS_I16 || dt == TS_I32 || dt == TS_I64;
    uint64_t umax = dt == TS_BOOL ? 1 : es == 8 ? UINT64_MAX : (1ull << (8 * es)) - 1;
    uint64_t pos_max = is_signed ? umax >> 1 : umax;
    uint64_t neg_max = is_signed ? (umax >> 1) + 1 : 0;
    if (r == 2 || (d.neg ? mag > neg_max : mag > pos_max))
        goto refuse;
    uint64_t bits = d.neg ? 0 - mag : mag; /* two's complement, cut to es bytes below */
    uint8_t *p = dst + i * es;
    switch (es) {
    case 1: { uint8_t x = (uint8_t)bits; memcpy(p, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)bits; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)bits; memcpy(p, &x, 4); break; }
    default: memcpy(p, &bits, 8); break;
    }
    return PAYLOAD_OK;
refuse: /* shown only when refused: every value of every message passes here */
    return fail(PAYLOAD_MISMATCH, why, why_len, "value %zu (%s) %s for %s", i,
                shown(shown_tok, sizeof(shown_tok), s, n), problem, ts_dtype_name(dt));
}

/* The sizes of a shape as "2, 3, 4" in buf (cap bytes; 175 hold any
 * TS_MAX_DIMS sizes). "" for no dimensions. */
static const char *fmt_shape(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < ndim; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    return buf;
}

/* The shape a payload gets: the declared one (JSON "shape", else the
 * config's) if any, checked against what the data holds (`ndim`/`shape`
 * its nesting, n its values); else the nesting. */
static payload_err settle_shape(const payload_spec *spec, int declared, payload_tensor *out,
                                uint32_t ndim, const uint64_t *shape, uint64_t n, char *why,
                                size_t why_len)
{
    int bad = 0;
    if (!declared && spec->has_shape) {
        out->ndim = spec->ndim;
        memcpy(out->shape, spec->shape, sizeof(out->shape));
        declared = 1;
    }
    if (!declared) {
        out->ndim = ndim;
        memcpy(out->shape, shape, ndim * sizeof(shape[0]));
    } else if (ndim > 1 && (ndim != out->ndim ||
                            memcmp(shape, out->shape, ndim * sizeof(shape[0])))) {
        char got[200], want[200];
        return fail(PAYLOAD_MISMATCH, why, why_len, "data nested as (%s) but the shape is (%s)",
                    fmt_shape(got, sizeof(got), ndim, shape),
                    fmt_shape(want, sizeof(want), out->ndim, out->shape));
    }
    uint64_t want = numel(out->ndim, out->shape, ts_dtype_size(out->dtype), &bad);
    if (bad || want != n)
        return fail(PAYLOAD_MISMATCH, why, why_len, "%llu values for a shape of %s%llu elements",
                    (unsigned long long)n, bad ? "over " : "",
                    (unsigned long long)(bad ? UINT64_MAX : want));
    size_t len = (size_t)n * ts_dtype_size(out->dtype);
    out->data = malloc(len ? len : 1);
    if (!out->data)
        return fail(PAYLOAD_NO_MEMORY, why, why_len, "out of memory for %zu bytes", len);
    out->data_len = len;
    return PAYLOAD_OK;
}

/* ---- json ------------------------------------------------------------- */

typedef struct jcur {
    const char *p, *end;
    const char *err;          /* static text, or msg */
    payload_err cls;          /* class of err (MALFORMED unless set) */
    char msg[160];
} jcur;

/* A data array read twice: first to check it and learn its shape, then
 * (dst set) to convert its values. */
typedef struct jdata {
    uint32_t ndim;            /* levels down to the numbers; 0 = not known yet */
    uint64_t shape[TS_MAX_DIMS];
    unsigned known;           /* bit L: shape[L] is known */
    uint64_t n;               /* values so far */
    ts_dtype dt;
    uint8_t *dst;             /* second pass */
} jdata;

static int j_fail(jcur *c, payload_err cls, const char *err)
{
    c->cls = cls;
    c->err = err;
    return -1;
}

static void j_ws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* After a list element: 1 past a ',' (another follows), 0 past the ']'
 * that ends the list, else a failure. */
static int j_next(jcur *c)
{
    j_ws(c);
    if (c->p < c->end && (*c->p == ',' || *c->p == ']'))
        return *c->p++ == ',';
    return j_fail(c, PAYLOAD_MALFORMED, "expected ',' or ']'");
}

/* A string: printable ASCII, no escapes (keys and dtype names need none).
 * *s, *n point into the payload. */
static int j_string(jcur *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"')
        return j_fail(c, PAYLOAD_MALFORMED, "expected a string");
    *s = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\')
            return j_fail(c, PAYLOAD_UNSUPPORTED,
                          "escape sequences in strings are not supported (keys and dtype "
                          "names need none)");
        if ((unsigned char)*c->p < 0x20 || (unsigned char)*c->p > 0x7e)
            return j_fail(c, PAYLOAD_MALFORMED, "a string holds a byte other than printable "
                                                "ASCII");
        c->p++;
    }
    if (c->p >= c->end)
        return j_fail(c, PAYLOAD_MALFORMED, "unterminated string");
    *n = (size_t)(c->p - *s);
    c->p++;
    return 0;
}

/* The array at c->p ('[') at nesting level `level`: its values into d
 * (counted, or converted when d->dst is set), its lengths checked to make
 * a rectangular tensor. */
static int j_array(jcur *c, jdata *d, uint32_t level)
{
    uint64_t count = 0;
    if (level == TS_MAX_DIMS)
        return j_fail(c, PAYLOAD_UNSUPPORTED, "lists nested more than 8 deep (a tensor has at "
                                              "most 8 dimensions)");
    c->p++; /* '[' */
    j_ws(c);
    if (c->p < c->end && *c->p == ']')
        c->p++;
    else
        for (;;) {
            j_ws(c);
            if (c->p < c->end && *c->p == '[') {
                if (d->ndim && level + 1 >= d->ndim)
                    return j_fail(c, PAYLOAD_MALFORMED, "ragged lists: a list where the other "
                                                        "lists hold numbers");
                if (j_array(c, d, level + 1))
                    return -1;
            } else {
                size_t n = num_span(c->p, c->end);
                /* The second pass (dst set) walks what the first checked. */
                if (!n || (!d->dst && num_valid(c->p, n, 1)))
                    return j_fail(c, PAYLOAD_MALFORMED,
                                  n > NUM_MAX_LEN ? "a number longer than 511 characters"
                                                  : "expected a number, true, false or a list");
                if (!d->ndim)
                    d->ndim = level + 1;
                else if (d->ndim != level + 1)
                    return j_fail(c, PAYLOAD_MALFORMED, "ragged lists: a number where the "
                                                        "other elements are lists");
                if (d->dst) {
                    payload_err e = num_store(d->dt, d->dst, (size_t)d->n, c->p, n, c->msg,
                                              sizeof(c->msg));
                    if (e != PAYLOAD_OK)
                        return j_fail(c, e, c->msg);
                }
                d->n++;
                c->p += n;
            }
            count++;
            int more = j_next(c);
            if (more < 0)
                return more;
            if (!more)
                break;
        }
    if (!count) {
        if (!d->ndim)
            d->ndim = level + 1;
        else if (d->ndim != level + 1)
            return j_fail(c, PAYLOAD_MALFORMED, "ragged lists: an empty list where the others "
                                                "hold lists");
    }
    if (!(d->known & 1u << level)) {
        d->known |= 1u << level;
        d->shape[level] = count;
    } else if (d->shape[level] != count) {
        return j_fail(c, PAYLOAD_MALFORMED, "ragged lists: lists of one level differ in length");
    }
    return 0;
}

/* "shape": a flat list of up to 8 non-negative integers. */
static int j_shape(jcur *c, payload_tensor *out)
{
    if (c->p >= c->end || *c->p != '[')
        return j_fail(c, PAYLOAD_MALFORMED, "\"shape\" must be a list of sizes");
    c->p++;
    out->ndim = 0;
    j_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 0;
    }
    for (;;) {
        decimal d;
        uint64_t v;
        j_ws(c);
        size_t n = num_span(c->p, c->end);
        if (!n || n > NUM_MAX_LEN || num_decimal(c->p, n, &d) || d.neg || num_integer(&d, &v))
            return j_fail(c, PAYLOAD_MALFORMED, "\"shape\" holds something other than a "
                                                "non-negative integer size");
        if (out->ndim == TS_MAX_DIMS)
            return j_fail(c, PAYLOAD_UNSUPPORTED, "\"shape\" has more than 8 dimensions");
        out->shape[out->ndim++] = v;
        c->p += n;
        int more = j_next(c);
        if (more <= 0)
            return more;
    }
}

static payload_err decode_json(const payload_spec *spec, const uint8_t *buf, size_t len,
                               payload_tensor *out, char *why, size_t why_len)
{
    jcur c = {(const char *)buf, (const char *)buf + len, NULL, PAYLOAD_MALFORMED, ""};
    jdata d = {0};
    const char *data_at = NULL;
    int have_shape = 0, have_dtype = 0;
    payload_err e;
    out->dtype = spec->dtype ? spec->dtype : TS_F32;
    j_ws(&c);
    if (c.p < c.end && *c.p == '[') {
        data_at = c.p;
        if (j_array(&c, &d, 0))
            goto bad;
    } else if (c.p < c.end && *c.p == '{') {
        c.p++;
        j_ws(&c);
        if (c.p < c.end && *c.p == '}')
            c.p++;
        else
            for (;;) {
                const char *key, *sval;
                size_t klen, slen;
                j_ws(&c);
                if (j_string(&c, &key, &klen))
                    goto bad;
                j_ws(&c);
                if (c.p >= c.end || *c.p++ != ':') {
                    c.err = "expected ':'";
                    goto bad;
                }
                j_ws(&c);
                if (word_exact(key, klen, "data")) {
                    if (data_at) {
                        c.err = "\"data\" given twice";
                        goto bad;
                    }
                    if (c.p >= c.end || *c.p != '[') {
                        c.err = "\"data\" must be a list";
                        goto bad;
                    }
                    data_at = c.p;
                    if (j_array(&c, &d, 0))
                        goto bad;
                } else if (word_exact(key, klen, "shape")) {
                    if (have_shape++) {
                        c.err = "\"shape\" given twice";
                        goto bad;
                    }
                    if (j_shape(&c, out))
                        goto bad;
                } else if (word_exact(key, klen, "dtype")) {
                    char name[32];
                    if (have_dtype++) {
                        c.err = "\"dtype\" given twice";
                        goto bad;
                    }
                    if (j_string(&c, &sval, &slen))
                        goto bad;
                    shown(name, sizeof(name), sval, slen);
                    if (slen >= sizeof(name) || ts_dtype_parse(name, &out->dtype)) {
                        e = fail(PAYLOAD_UNSUPPORTED, why, why_len,
                                 "json dtype '%s' not supported", name);
                        goto out;
                    }
                } else {
                    char name[40];
                    e = fail(PAYLOAD_MALFORMED, why, why_len,
                             "json key '%s' (expected shape, dtype, data)",
                             shown(name, sizeof(name), key, klen));
                    goto out;
                }
                j_ws(&c);
                if (c.p < c.end && *c.p == ',') {
                    c.p++;
                    continue;
                }
                if (c.p < c.end && *c.p == '}') {
                    c.p++;
                    break;
                }
                c.err = "expected ',' or '}'";
                goto bad;
            }
        if (!data_at) {
            c.err = "no \"data\"";
            goto bad;
        }
    } else {
        c.err = "expected an object or a list";
        goto bad;
    }
    j_ws(&c);
    if (c.p != c.end) {
        c.err = "trailing bytes after the JSON value";
        goto bad;
    }
    e = settle_shape(spec, have_shape, out, d.ndim, d.shape, d.n, why, why_len);
    if (e != PAYLOAD_OK)
        goto out;
    /* Second pass over the data list: the values, now that dtype is known. */
    d = (jdata){.dt = out->dtype, .dst = out->data};
    c.p = data_at;
    if (j_array(&c, &d, 0)) {
        e = fail(c.cls, why, why_len, "%s", c.err);
        goto out;
    }
    e = PAYLOAD_OK;
    goto out;
bad:
    e = fail(c.cls, why, why_len, "json at byte %zu: %s", (size_t)(c.p - (const char *)buf),
             c.err ? c.err : "syntax error");
out:
    return e;
}

/* ---- csv -------------------------------------------------------------- */

/* One line: numbers separated by ',', spaces and tabs around them; blank
 * space (line endings included) before and after the line is ignored. */
static payload_err csv_walk(const char *p, const char *end, const char *base, ts_dtype dt,
                            uint8_t *dst, uint64_t *n, char *why, size_t why_len)
{
    *n = 0;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        size_t k = num_span(p, end);
        /* The second pass (dst set) walks what the first checked. */
        if (!k || (!dst && num_valid(p, k, 0)))
            return fail(PAYLOAD_MALFORMED, why, why_len, "csv at byte %zu: %s",
                        (size_t)(p - base),
                        k > NUM_MAX_LEN ? "a number longer than 511 characters"
                        : k             ? "not a number"
                        : p < end && *p == ','       ? "empty field"
                        : p == end                   ? "empty field at the end"
                                                     : "expected a number");
        if (dst) {
            payload_err e = num_store(dt, dst, (size_t)*n, p, k, why, why_len);
            if (e != PAYLOAD_OK)
                return e;
        }
        ++*n;
        p += k;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            return PAYLOAD_OK;
        if (*p != ',')
            return fail(PAYLOAD_MALFORMED, why, why_len, "csv at byte %zu: expected ','%s",
                        (size_t)(p - base),
                        *p == '\n' || *p == '\r' ? " (one line of numbers)" : "");
        p++;
    }
}

static payload_err decode_csv(const payload_spec *spec, const uint8_t *buf, size_t len,
                              payload_tensor *out, char *why, size_t why_len)
{
    const char *p = (const char *)buf, *end = p + len;
    uint64_t n = 0;
    payload_err e;
    out->dtype = spec->dtype ? spec->dtype : TS_F32;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    if (p == end)
        return fail(PAYLOAD_MALFORMED, why, why_len, "empty csv payload");
    e = csv_walk(p, end, (const char *)buf, out->dtype, NULL, &n, why, why_len);
    if (e == PAYLOAD_OK)
        e = settle_shape(spec, 0, out, 1, &n, n, why, why_len);
    if (e == PAYLOAD_OK)
        e = csv_walk(p, end, (const char *)buf, out->dtype, out->data, &n, why, why_len);
    return e;
}

static const int err_codes[PAYLOAD_N_ERRS] = {
    0, -EFBIG, -EBADMSG, -ENOTSUP, -EINVAL, -ENOMEM, -ENAMETOOLONG, -EDOM,
};

int payload_errno(payload_err e)
{
    return (unsigned)e < PAYLOAD_N_ERRS ? err_codes[e] : -EINVAL;
}

payload_err payload_class(int rc)
{
    for (int e = 0; e < PAYLOAD_N_ERRS; e++)
        if (err_codes[e] == rc)
            return (payload_err)e;
    return PAYLOAD_MALFORMED;
}

static payload_err decode(const payload_spec *spec, const void *buf, size_t len,
                          payload_tensor *out, char *why, size_t why_len)
{
    payload_err e;
    memset(out, 0, sizeof(*out));
    if (why_len)
        why[0] = 0;
    if (spec->max_payload && len > spec->max_payload)
        return fail(PAYLOAD_TOO_LARGE, why, why_len, "payload of %zu bytes exceeds max_payload %zu",
                    len, spec->max_payload);
    switch (spec->format) {
    case PAYLOAD_NPY: e = decode_npy(spec, buf, len, out, why, why_len); break;
    case PAYLOAD_RAW: e = decode_raw(spec, buf, len, out, why, why_len); break;
    case PAYLOAD_JSON: e = decode_json(spec, buf, len, out, why, why_len); break;
    case PAYLOAD_CSV: e = decode_csv(spec, buf, len, out, why, why_len); break;
    default: e = fail(PAYLOAD_UNSUPPORTED, why, why_len, "unknown payload format"); break;
    }
    if (e != PAYLOAD_OK)
        payload_free(out);
    return e;
}

int payload_decode(const payload_spec *spec, const void *buf, size_t len, payload_tensor *out,
                   char *why, size_t why_len)
{
    return payload_errno(decode(spec, buf, len, out, why, why_len));
}
