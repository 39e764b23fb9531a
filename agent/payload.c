/*
 * payload.c -- MQTT payload decoders (formats and rules in payload.h).
 *
 * The .npy header is a Python dict literal; it is tokenized here just far
 * enough for its three keys. JSON gets a small recursive-descent reader that
 * accepts only what a tensor needs (objects, arrays, numbers, strings,
 * true/false) with a nesting limit. Numbers are converted with
 * ts_dtype_set, so range rules match the CLI's CSV ingest.
 */
#include "payload.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 16

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
    return -1;
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

/* ---- npy -------------------------------------------------------------- */

typedef struct pycur {
    const char *p, *end;
} pycur;

static void py_ws(pycur *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p))
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

/* A quoted Python string into out (cap bytes). */
static int py_str(pycur *c, char *out, size_t cap)
{
    py_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap)
            return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    out[n] = 0;
    return 0;
}

static int npy_dtype(const char *descr, ts_dtype *dt, int *big)
{
    static const struct {
        const char *code;
        ts_dtype dt;
    } map[] = {
        {"f2", TS_F16}, {"f4", TS_F32}, {"f8", TS_F64}, {"i1", TS_I8},  {"i2", TS_I16},
        {"i4", TS_I32}, {"i8", TS_I64}, {"u1", TS_U8},  {"u2", TS_U16}, {"u4", TS_U32},
        {"u8", TS_U64}, {"b1", TS_BOOL}, {"c8", TS_C64}, {"c16", TS_C128},
    };
    if (!strchr("<>|=", descr[0]))
        return -1;
    *big = descr[0] == '>';
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(descr + 1, map[i].code)) {
            *dt = map[i].dt;
            if (ts_dtype_size(*dt) == 1)
                *big = 0; /* byte order means nothing for one byte */
            return 0;
        }
    return -1;
}

static payload_err decode_npy(const payload_spec *spec, const uint8_t *buf, size_t len,
                              payload_tensor *out, char *why, size_t why_len)
{
    char key[32], descr[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0, big = 0, bad = 0;
    (void)spec;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
        return fail(PAYLOAD_MALFORMED, why, why_len, "not a .npy file (bad magic)");
    uint8_t major = buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = buf[8] | (size_t)buf[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header cut short");
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hoff = 12;
    } else {
        return fail(PAYLOAD_UNSUPPORTED, why, why_len, ".npy format version %u", major);
    }
    if (hlen > len - hoff)
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header longer than the payload");
    pycur c = {(const char *)buf + hoff, (const char *)buf + hoff + hlen};
    if (!py_char(&c, '{'))
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header is not a dict");
    while (!py_char(&c, '}')) {
        if (py_str(&c, key, sizeof(key)) || !py_char(&c, ':'))
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: bad key");
        py_ws(&c);
        if (!strcmp(key, "descr")) {
            if (py_str(&c, descr, sizeof(descr)))
                return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                            ".npy descr is not a simple dtype (structured arrays are refused)");
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if ((size_t)(c.end - c.p) >= 4 && !memcmp(c.p, "True", 4)) {
                fortran = 1;
                c.p += 4;
            } else if ((size_t)(c.end - c.p) >= 5 && !memcmp(c.p, "False", 5)) {
                c.p += 5;
            } else {
                return fail(PAYLOAD_MALFORMED, why, why_len, ".npy fortran_order not a bool");
            }
            have_order = 1;
        } else if (!strcmp(key, "shape")) {
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
                py_char(&c, ',');
            }
            have_shape = 1;
        } else {
            return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header: unexpected key '%s'", key);
        }
        py_char(&c, ',');
    }
    if (!have_descr || !have_order || !have_shape)
        return fail(PAYLOAD_MALFORMED, why, why_len, ".npy header lacks descr/fortran_order/shape");
    if (npy_dtype(descr, &out->dtype, &big))
        return fail(PAYLOAD_UNSUPPORTED, why, why_len, ".npy dtype '%s' is not supported", descr);
    if (big)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    "big-endian .npy ('%s') refused: send little-endian ('<%s')", descr, descr + 1);
    if (fortran && out->ndim > 1)
        return fail(PAYLOAD_UNSUPPORTED, why, why_len,
                    "Fortran-order .npy refused: send C order (numpy.ascontiguousarray)");
    size_t es = ts_dtype_size(out->dtype);
    uint64_t n = numel(out->ndim, out->shape, es, &bad);
    size_t body = len - hoff - hlen;
    if (bad || n * es != body)
        return fail(PAYLOAD_MISMATCH, why, why_len,
                    ".npy data is %zu bytes but shape x dtype needs %llu", body,
                    (unsigned long long)(n * es));
    return take_bytes(out, buf + hoff + hlen, body, why, why_len);
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
    if (bad || n * es != len)
        return fail(PAYLOAD_MISMATCH, why, why_len,
                    "raw payload is %zu bytes but the configured shape needs %llu", len,
                    (unsigned long long)(n * es));
    return take_bytes(out, buf, len, why, why_len);
}

/* ---- numbers shared by json and csv ------------------------------------ */

typedef struct numbers {
    double *v;
    size_t n, cap, limit;
} numbers;

static int push(numbers *nb, double v)
{
    if (nb->n == nb->limit)
        return -1;
    if (nb->n == nb->cap) {
        size_t cap = nb->cap ? 2 * nb->cap : 64;
        double *p = realloc(nb->v, cap * sizeof(*p));
        if (!p)
            return -1;
        nb->v = p;
        nb->cap = cap;
    }
    nb->v[nb->n++] = v;
    return 0;
}

/* Converts the collected numbers into out (dtype, shape already set). */
static payload_err store_numbers(const numbers *nb, payload_tensor *out, char *why,
                                 size_t why_len)
{
    int bad = 0;
    size_t es = ts_dtype_size(out->dtype);
    uint64_t n = numel(out->ndim, out->shape, es, &bad);
    if (bad || n != nb->n)
        return fail(PAYLOAD_MISMATCH, why, why_len, "%zu values for a shape of %llu elements",
                    nb->n, (unsigned long long)n);
    out->data = malloc(n * es + 1);
    if (!out->data)
        return fail(PAYLOAD_NO_MEMORY, why, why_len, "out of memory");
    out->data_len = n * es;
    for (size_t i = 0; i < nb->n; i++) {
        int rc = ts_dtype_set(out->dtype, out->data, i, nb->v[i]);
        if (rc) {
            free(out->data);
            out->data = NULL;
            return fail(PAYLOAD_MISMATCH, why, why_len, "value %zu (%g) %s for %s", i, nb->v[i],
                        rc == TS_EOVERFLOW ? "is out of range" : "is not an integer",
                        ts_dtype_name(out->dtype));
        }
    }
    return PAYLOAD_OK;
}

static void default_shape(const payload_spec *spec, payload_tensor *out, size_t n)
{
    if (spec->has_shape) {
        out->ndim = spec->ndim;
        memcpy(out->shape, spec->shape, sizeof(out->shape));
    } else {
        out->ndim = 1;
        out->shape[0] = n;
    }
}

/* ---- json ------------------------------------------------------------- */

typedef struct jcur {
    const char *p, *end;
    const char *err;
} jcur;

static void j_ws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int j_lit(jcur *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, lit, n)) {
        c->p += n;
        return 1;
    }
    return 0;
}

static int j_number(jcur *c, double *v)
{
    char tmp[64];
    size_t n = 0;
    while (c->p + n < c->end && n < sizeof(tmp) - 1 && strchr("+-0123456789.eE", c->p[n]))
        n++;
    if (!n) {
        c->err = "expected a number";
        return -1;
    }
    memcpy(tmp, c->p, n);
    tmp[n] = 0;
    char *e;
    *v = strtod(tmp, &e);
    if (*e) {
        c->err = "bad number";
        return -1;
    }
    c->p += n;
    return 0;
}

static int j_string(jcur *c, char *out, size_t cap)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') {
        c->err = "expected a string";
        return -1;
    }
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && c->p + 1 < c->end)
            c->p++;
        if (n + 1 < cap)
            out[n++] = *c->p;
        c->p++;
    }
    if (c->p >= c->end) {
        c->err = "unterminated string";
        return -1;
    }
    c->p++;
    out[n] = 0;
    return 0;
}

/* An array of numbers or of such arrays, flattened into nb (C order). */
static int j_array(jcur *c, numbers *nb, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        c->err = "arrays nested too deeply";
        return -1;
    }
    c->p++; /* '[' */
    j_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 0;
    }
    for (;;) {
        j_ws(c);
        if (c->p < c->end && *c->p == '[') {
            if (j_array(c, nb, depth + 1))
                return -1;
        } else {
            double v;
            if (j_lit(c, "true"))
                v = 1;
            else if (j_lit(c, "false"))
                v = 0;
            else if (j_number(c, &v))
                return -1;
            if (push(nb, v)) {
                c->err = "too many values";
                return -1;
            }
        }
        j_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return 0;
        }
        c->err = "expected ',' or ']'";
        return -1;
    }
}

static payload_err decode_json(const payload_spec *spec, const uint8_t *buf, size_t len,
                               payload_tensor *out, char *why, size_t why_len)
{
    jcur c = {(const char *)buf, (const char *)buf + len, NULL};
    numbers nb = {.limit = len}; /* at most one value per byte */
    payload_err e = PAYLOAD_MALFORMED;
    int have_data = 0, have_shape = 0;
    out->dtype = spec->dtype ? spec->dtype : TS_F32;
    j_ws(&c);
    if (c.p < c.end && *c.p == '[') {
        if (j_array(&c, &nb, 0))
            goto bad;
        default_shape(spec, out, nb.n);
        have_data = 1;
    } else if (c.p < c.end && *c.p == '{') {
        c.p++;
        for (;;) {
            char key[32], sval[32];
            j_ws(&c);
            if (c.p < c.end && *c.p == '}' ) {
                c.p++;
                break;
            }
            if (j_string(&c, key, sizeof(key)))
                goto bad;
            j_ws(&c);
            if (c.p >= c.end || *c.p++ != ':') {
                c.err = "expected ':'";
                goto bad;
            }
            j_ws(&c);
            if (!strcmp(key, "data")) {
                if (c.p >= c.end || *c.p != '[') {
                    c.err = "\"data\" must be an array";
                    goto bad;
                }
                if (j_array(&c, &nb, 0))
                    goto bad;
                have_data = 1;
            } else if (!strcmp(key, "shape")) {
                numbers sh = {.limit = TS_MAX_DIMS};
                if (c.p >= c.end || *c.p != '[' || j_array(&c, &sh, JSON_MAX_DEPTH)) {
                    free(sh.v);
                    c.err = c.err ? c.err : "\"shape\" must be an array of up to 8 sizes";
                    goto bad;
                }
                out->ndim = (uint32_t)sh.n;
                for (size_t i = 0; i < sh.n; i++) {
                    if (sh.v[i] < 0 || sh.v[i] > 9007199254740992.0 ||
                        sh.v[i] != (double)(uint64_t)sh.v[i]) {
                        free(sh.v);
                        c.err = "\"shape\" holds a non-integer or negative size";
                        goto bad;
                    }
                    out->shape[i] = (uint64_t)sh.v[i];
                }
                free(sh.v);
                have_shape = 1;
            } else if (!strcmp(key, "dtype")) {
                if (j_string(&c, sval, sizeof(sval)))
                    goto bad;
                if (ts_dtype_parse(sval, &out->dtype)) {
                    e = fail(PAYLOAD_UNSUPPORTED, why, why_len, "json dtype '%s' not supported",
                             sval);
                    goto out;
                }
            } else {
                e = fail(PAYLOAD_MALFORMED, why, why_len,
                         "json key '%s' (expected shape, dtype, data)", key);
                goto out;
            }
            j_ws(&c);
            if (c.p < c.end && *c.p == ',')
                c.p++;
        }
        if (!have_data) {
            c.err = "no \"data\"";
            goto bad;
        }
        if (!have_shape)
            default_shape(spec, out, nb.n);
    } else {
        c.err = "expected an object or an array";
        goto bad;
    }
    j_ws(&c);
    if (c.p != c.end) {
        c.err = "trailing bytes after the JSON value";
        goto bad;
    }
    e = store_numbers(&nb, out, why, why_len);
    goto out;
bad:
    e = fail(PAYLOAD_MALFORMED, why, why_len, "json at byte %zu: %s",
             (size_t)(c.p - (const char *)buf), c.err ? c.err : "syntax error");
out:
    free(nb.v);
    return e;
}

/* ---- csv -------------------------------------------------------------- */

static payload_err decode_csv(const payload_spec *spec, const uint8_t *buf, size_t len,
                              payload_tensor *out, char *why, size_t why_len)
{
    numbers nb = {.limit = len};
    const char *p = (const char *)buf, *end = p + len;
    payload_err e = PAYLOAD_OK;
    out->dtype = spec->dtype ? spec->dtype : TS_F32;
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    while (p < end && e == PAYLOAD_OK) {
        jcur c = {p, end, NULL};
        double v;
        j_ws(&c);
        if (j_number(&c, &v) || push(&nb, v)) {
            e = fail(PAYLOAD_MALFORMED, why, why_len, "csv at byte %zu: expected a number",
                     (size_t)(c.p - (const char *)buf));
            break;
        }
        j_ws(&c);
        if (c.p < end && *c.p != ',') {
            e = fail(PAYLOAD_MALFORMED, why, why_len, "csv at byte %zu: expected ','",
                     (size_t)(c.p - (const char *)buf));
            break;
        }
        p = c.p < end ? c.p + 1 : end;
    }
    if (e == PAYLOAD_OK) {
        default_shape(spec, out, nb.n);
        e = nb.n ? store_numbers(&nb, out, why, why_len)
                 : fail(PAYLOAD_MALFORMED, why, why_len, "empty csv payload");
    }
    free(nb.v);
    return e;
}

payload_err payload_decode(const payload_spec *spec, const void *buf, size_t len,
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
