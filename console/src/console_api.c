/*
 * console_api.c -- the console's endpoints, run by the store's owner
 * (console_serve): each reads its arguments, makes the engine calls and
 * writes the whole response into memory. console/API.md documents every
 * endpoint, argument and field; this file does what it says.
 *
 * Input rules are the agent's (codec/payload.h): a tensor's dtype, shape and
 * data are decoded by payload_decode (json or npy) with the same bounds;
 * keys use the CLI's text form (codec/cli_key.h); keys and names are
 * printable ASCII without escapes, up to the engine's limits; the engine's
 * own check (ts_batch_cost) refuses the rest. Nothing is cut to fit.
 */
#include "console_int.h"

#include "cli_key.h"
#include "npy.h"
#include "payload.h"

#include "embeddb/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define SST_SHOWN 256              /* /api/store lists the newest this many */
#define JSON_VALUES_MAX 1000000    /* more: ask for preview=N or format=npy */
#define BATCH_MAX 4096             /* tensors in one POST */
#define SUMMARY_VALUES 8

/* ---- JSON input: just enough to find an object's members --------------- */

typedef struct span {
    const char *p;
    size_t n;
} span;

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string of printable ASCII without escapes (the payload rule): the
 * characters between the quotes in *out. NULL when malformed, *unsup set
 * when it holds an escape or another byte. */
static const char *scan_str(const char *p, const char *e, span *out, int *unsup)
{
    if (p >= e || *p != '"')
        return NULL;
    const char *s = ++p;
    while (p < e && *p != '"') {
        if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *unsup = 1;
        if (*p == '\\' && p + 1 < e)
            p++;
        p++;
    }
    if (p >= e)
        return NULL;
    out->p = s;
    out->n = (size_t)(p - s);
    return p + 1;
}

/* Skips one JSON value (depth bounded); NULL when malformed. */
static const char *skip_value(const char *p, const char *e, int depth)
{
    int unsup = 0;
    span s;
    p = skip_ws(p, e);
    if (p >= e || depth > 16)
        return NULL;
    if (*p == '"')
        return scan_str(p, e, &s, &unsup);
    if (*p == '[' || *p == '{') {
        char close = *p == '[' ? ']' : '}';
        p = skip_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = scan_str(skip_ws(p, e), e, &s, &unsup)))
                    return NULL;
                p = skip_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = skip_value(p, e, depth + 1)))
                return NULL;
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == close)
                return p + 1;
            return NULL;
        }
    }
    const char *s0 = p;
    while (p < e && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\n' &&
           *p != '\t' && *p != '\r')
        p++;
    return p > s0 ? p : NULL;
}

/* One tensor the API was given, before saving. */
typedef struct in_tensor {
    uint8_t key[TS_MAX_KEY_LEN];
    size_t key_len;
    char name[TS_MAX_NAME_LEN + 1];
    payload_tensor pt;
} in_tensor;

/* Key and name rules; 0 or a 400 set on r. */
static int take_key_name(console_req *r, in_tensor *t, const char *key, size_t key_len,
                         const char *name, size_t name_len)
{
    char txt[CLI_KEY_TEXT_MAX];
    if (!key || !key_len) {
        console__error(r, 400, "bad_key", "a key is required");
        return -EINVAL;
    }
    for (size_t i = 0; i < key_len; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e) {
            console__error(r, 400, "bad_key", "a key is printable ASCII (x:HEX for bytes)");
            return -EINVAL;
        }
    if (key_len >= sizeof(txt)) {
        console__error(r, 400, "key_too_long", "the key is longer than %d bytes",
                       TS_MAX_KEY_LEN);
        return -ENAMETOOLONG;
    }
    memcpy(txt, key, key_len);
    txt[key_len] = 0;
    int rc = cli_key_parse(txt, t->key, sizeof(t->key), &t->key_len);
    if (rc == TS_ENAMETOOLONG) {
        console__error(r, 400, "key_too_long", "the key is longer than %d bytes",
                       TS_MAX_KEY_LEN);
        return rc;
    }
    if (rc || !t->key_len) {
        console__error(r, 400, "bad_key", "key '%.200s' is malformed (101, s:TEXT, x:HEX or "
                       "text)", txt);
        return -EINVAL;
    }
    if (!name) { /* the key's text names it */
        name = key;
        name_len = key_len;
    }
    if (!name_len || name_len > TS_MAX_NAME_LEN) {
        console__error(r, 400, name_len ? "name_too_long" : "bad_name",
                       name_len ? "the name is longer than %d bytes" : "the name is empty",
                       TS_MAX_NAME_LEN);
        return -EINVAL;
    }
    for (size_t i = 0; i < name_len; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e) {
            console__error(r, 400, "bad_name", "a name is printable ASCII");
            return -EINVAL;
        }
    memcpy(t->name, name, name_len);
    t->name[name_len] = 0;
    return 0;
}

static void decode_error(console_req *r, int rc, const char *why)
{
    payload_err e = payload_class(rc);
    console__error(r, e == PAYLOAD_TOO_LARGE ? 413 : e == PAYLOAD_NO_MEMORY ? 500 : 400,
                   payload_err_name(e), "%s", why);
}

/* One JSON object {"key","name","dtype","shape","data"} into t. */
static int parse_obj(console_req *r, const console_env *env, const char *p, const char *e,
                     in_tensor *t)
{
    static const char *const names[] = {"key", "name", "dtype", "shape", "data"};
    span v[5] = {{0}};
    int unsup = 0;
    char buf[1024];
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        goto malformed;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        p++;
    else
        for (;;) {
            span k;
            int ku = 0, i;
            if (!(p = scan_str(skip_ws(p, e), e, &k, &ku)))
                goto malformed;
            for (i = 0; i < 5; i++)
                if (k.n == strlen(names[i]) && !memcmp(k.p, names[i], k.n))
                    break;
            if (i == 5 || ku) {
                console__error(r, 400, "unsupported", "unknown member '%.*s' (key, name, dtype, "
                               "shape, data)", (int)(k.n > 64 ? 64 : k.n), k.p);
                return -EINVAL;
            }
            if (v[i].p) {
                console__error(r, 400, "malformed", "member '%s' twice", names[i]);
                return -EINVAL;
            }
            p = skip_ws(p, e);
            if (p >= e || *p != ':')
                goto malformed;
            const char *vs = skip_ws(p + 1, e);
            if (!(p = skip_value(vs, e, 0)))
                goto malformed;
            v[i].p = vs;
            v[i].n = (size_t)(p - vs);
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            goto malformed;
        }
    span key = {0}, name = {0};
    if (v[0].p && !scan_str(v[0].p, v[0].p + v[0].n, &key, &unsup))
        goto not_str;
    if (v[1].p && !scan_str(v[1].p, v[1].p + v[1].n, &name, &unsup))
        goto not_str;
    if (unsup) {
        console__error(r, 400, "unsupported", "keys and names are printable ASCII without "
                       "escapes");
        return -EINVAL;
    }
    int rc = take_key_name(r, t, v[0].p ? key.p : NULL, key.n, v[1].p ? name.p : NULL, name.n);
    if (rc)
        return rc;
    if (!v[4].p) {
        console__error(r, 400, "malformed", "member 'data' is required");
        return -EINVAL;
    }
    /* The tensor part, as the agent's json payload: {"dtype","shape","data"}. */
    console_buf doc = {0};
    console_buf_put(&doc, "{", 1);
    for (int i = 2; i < 5; i++)
        if (v[i].p) {
            console_buf_printf(&doc, "%s\"%s\":", i > 2 && doc.n > 1 ? "," : "", names[i]);
            console_buf_put(&doc, v[i].p, v[i].n);
        }
    console_buf_put(&doc, "}", 1);
    if (doc.oom) {
        free(doc.p);
        console__error(r, 500, "no_memory", "out of memory");
        return -ENOMEM;
    }
    payload_spec spec = {.format = PAYLOAD_JSON, .dtype = TS_F32, .max_payload = env->max_body};
    rc = payload_decode(&spec, doc.p, doc.n, &t->pt, buf, sizeof(buf));
    free(doc.p);
    if (rc) {
        decode_error(r, rc, buf);
        return rc;
    }
    return 0;
malformed:
    console__error(r, 400, "malformed", "the body is not a JSON tensor object (key, name, "
                   "dtype, shape, data) or an array of them");
    return -EINVAL;
not_str:
    console__error(r, 400, "malformed", "key and name are JSON strings");
    return -EINVAL;
}

/* ---- JSON output helpers ------------------------------------------------- */

static void put_key(console_buf *b, const uint8_t *key, size_t len)
{
    char txt[CLI_KEY_TEXT_MAX];
    cli_key_format(key, len, txt, sizeof(txt));
    console_buf_json_str(b, txt, strlen(txt));
}

static void put_shape(console_buf *b, uint32_t ndim, const uint64_t *shape)
{
    console_buf_put(b, "[", 1);
    for (uint32_t i = 0; i < ndim; i++)
        console_buf_printf(b, "%s%" PRIu64, i ? "," : "", shape[i]);
    console_buf_put(b, "]", 1);
}

static void put_name(console_buf *b, const char *name)
{
    console_buf_json_str(b, name, strlen(name));
}

/* Decimal digits of v into out (no NUL); returns their count. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static size_t fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

/* x, a finite value of a float32 (or float16, bfloat16), in 9 significant
 * digits -- enough for float32 to read back exactly -- without printf: a
 * 32x32 frame is 1024 of these per load. The digits are x scaled by a power
 * of ten in double (exact for float32's range up to a few ulps of double,
 * far below the 9th digit) and rounded; trailing zeros dropped. Plain
 * notation for exponents -5..8, else d.ddde[+-]X. Returns the length (at
 * most 16). */
static size_t fmt_f32(char *out, double x)
{
    size_t n = 0;
    if (x == 0) { /* "-0.0": a JSON reader keeps the sign of a float, not of "-0" */
        memcpy(out, signbit(x) ? "-0.0" : "0", signbit(x) ? 4 : 1);
        return signbit(x) ? 4 : 1;
    }
    if (x < 0) {
        out[n++] = '-';
        x = -x;
    }
    /* float32 spans 1.4e-45..3.4e38: k = 8 - e stays within -31..54 */
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
                                 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
                                 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49,
                                 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56};
    int e = (int)floor(log10(x));
    uint64_t m = 0;
    for (int tries = 0; tries < 3; tries++) { /* log10 may be off by one */
        int k = 8 - e;
        if (k > 56 || k < -56)
            break; /* not a float32 value; callers pass only those */
        double y = k >= 0 ? x * p10[k] : x / p10[-k];
        m = (uint64_t)llround(y);
        if (m >= 1000000000u)
            e++;
        else if (m < 100000000u)
            e--;
        else
            break;
    }
    char d[9];
    int nd = 9;
    for (int i = 8; i >= 0; i--, m /= 10)
        d[i] = (char)('0' + m % 10);
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    if (e >= 0 && e <= 8) {
        for (int i = 0; i <= e; i++)
            out[n++] = i < nd ? d[i] : '0';
        if (nd > e + 1) {
            out[n++] = '.';
            for (int i = e + 1; i < nd; i++)
                out[n++] = d[i];
        }
    } else if (e < 0 && e >= -5) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -e - 1; i++)
            out[n++] = '0';
        for (int i = 0; i < nd; i++)
            out[n++] = d[i];
    } else {
        out[n++] = d[0];
        if (nd > 1) {
            out[n++] = '.';
            for (int i = 1; i < nd; i++)
                out[n++] = d[i];
        }
        out[n++] = 'e';
        n += fmt_i64(out + n, e);
    }
    return n;
}

/* Element i exactly: integers from their bytes, floats in as many digits as
 * round-trip their dtype, non-finite as null. */
static void put_value(console_buf *b, ts_dtype dt, const void *data, size_t i)
{
    char s[40];
    size_t n;
    const uint8_t *p = data;
    switch (dt) {
    case TS_I8: n = fmt_i64(s, ((const int8_t *)p)[i]); break;
    case TS_U8: case TS_BOOL: n = fmt_u64(s, p[i]); break;
    case TS_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); n = fmt_i64(s, v); break; }
    case TS_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); n = fmt_u64(s, v); break; }
    case TS_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); n = fmt_i64(s, v); break; }
    case TS_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); n = fmt_u64(s, v); break; }
    case TS_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); n = fmt_i64(s, v); break; }
    case TS_U64: { uint64_t v; memcpy(&v, p + 8 * i, 8); n = fmt_u64(s, v); break; }
    default: {
        double v = ts_dtype_get(dt, data, i);
        if (!isfinite(v))
            n = (size_t)snprintf(s, sizeof(s), "null");
        else if ((dt == TS_F64 || dt == TS_C128) && v != 0)
            n = (size_t)snprintf(s, sizeof(s), "%.17g", v);
        else
            n = fmt_f32(s, v);
    }
    }
    console_buf_put(b, s, n);
}

static const char *file_name(char *buf, size_t len, int wal, uint64_t no)
{
    snprintf(buf, len, wal ? "wal_%06" PRIu64 ".log" : "sst_%06" PRIu64 ".sst", no);
    return buf;
}

/* ---- POST /api/tensors/store --------------------------------------------- */

typedef struct wal_pos {
    uint64_t no, end;
    int have;
} wal_pos;

static int find_wal(void *ctx, const ts_file_info *f)
{
    wal_pos *w = ctx;
    if (f->is_wal) {
        w->no = f->file_no;
        w->end = f->bytes;
        w->have = 1;
    }
    return 1; /* the WAL comes first: stop */
}

static unsigned save_status(int rc, const char **code)
{
    switch (rc) {
    case TS_EEXIST: *code = "exists"; return 409;
    case TS_EINVAL: *code = "invalid"; return 400;
    case TS_ENAMETOOLONG: *code = "too_long"; return 400;
    case TS_EOVERFLOW: *code = "too_large"; return 413;
    case TS_ENOSPC: *code = "no_space"; return 507;
    case TS_ENOMEM: *code = "no_memory"; return 500;
    case TS_EROFS: *code = "read_only"; return 403;
    default: *code = "store_error"; return 500;
    }
}

static void api_store_tensor(console_req *r, ts_store *s, const console_hooks *h,
                             const console_env *env)
{
    in_tensor *in = NULL;
    ts_tensor *tv = NULL;
    const ts_tensor **tp = NULL;
    size_t n = 0, cap = 0;
    char why[1024];
    const char *p = (const char *)r->body, *e = p + r->body_len;
    if (!r->body_len) {
        console__error(r, 400, "malformed", "the body is empty");
        goto out;
    }
    if (r->body_npy) {
        /* One .npy file per key= (in order), each named by the name= at its
         * place (or its key): several make one batch. */
        size_t nk = r->n_keys ? r->n_keys : 1, off = 0;
        if (r->n_names && r->n_names != r->n_keys) {
            console__error(r, 400, "bad_name", "%zu name= for %zu key=: give one per key or "
                           "none", r->n_names, r->n_keys);
            goto out;
        }
        if (!(in = calloc(nk, sizeof(*in))))
            goto nomem;
        for (; n < nk; n++) {
            size_t flen = 0;
            int rc = take_key_name(r, &in[n], r->n_keys ? r->keys[n] : NULL,
                                   r->n_keys ? r->key_lens[n] : 0,
                                   r->n_names ? r->names[n] : NULL,
                                   r->n_names ? r->name_lens[n] : 0);
            if (rc)
                goto out;
            rc = payload_npy_length(r->body + off, r->body_len - off, &flen, why, sizeof(why));
            payload_spec spec = {.format = PAYLOAD_NPY, .max_payload = env->max_body};
            if (!rc)
                rc = payload_decode(&spec, r->body + off, flen, &in[n].pt, why, sizeof(why));
            if (rc) {
                char w2[1100];
                snprintf(w2, sizeof(w2), ".npy file %zu of %zu: %s", n + 1, nk, why);
                decode_error(r, rc, w2);
                goto out;
            }
            off += flen;
        }
        if (off != r->body_len) {
            console__error(r, 400, "mismatch", "%zu bytes follow the %zu .npy file(s) named by "
                           "key= (one key= per file)", r->body_len - off, nk);
            goto out;
        }
    } else {
        p = skip_ws(p, e);
        int array = p < e && *p == '[';
        if (array)
            p = skip_ws(p + 1, e);
        if (array && p < e && *p == ']') {
            console__error(r, 400, "malformed", "an empty batch");
            goto out;
        }
        for (;;) {
            if (n == BATCH_MAX) {
                console__error(r, 413, "too_large", "more than %d tensors in one batch",
                               BATCH_MAX);
                goto out;
            }
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 4;
                in_tensor *m = realloc(in, nc * sizeof(*in));
                if (!m)
                    goto nomem;
                in = m;
                cap = nc;
            }
            memset(&in[n], 0, sizeof(in[n]));
            const char *end = skip_value(p, e, 0);
            if (!end) {
                console__error(r, 400, "malformed", "the body is not valid JSON");
                n++;
                goto out;
            }
            if (parse_obj(r, env, p, end, &in[n++]))
                goto out;
            p = skip_ws(end, e);
            if (!array)
                break;
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == ']') {
                p = skip_ws(p + 1, e);
                break;
            }
            console__error(r, 400, "malformed", "the body is not valid JSON");
            goto out;
        }
        if (p != e) {
            console__error(r, 400, "malformed", "text after the JSON value");
            goto out;
        }
    }
    if (!(tv = calloc(n, sizeof(*tv))) || !(tp = calloc(n, sizeof(*tp))))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        ts_tensor *t = &tv[i];
        uint64_t cost;
        t->key = in[i].key;
        t->key_len = in[i].key_len;
        t->name = in[i].name;
        t->dtype = in[i].pt.dtype;
        t->ndim = in[i].pt.ndim;
        memcpy(t->shape, in[i].pt.shape, sizeof(t->shape));
        t->data = in[i].pt.data;
        t->data_len = in[i].pt.data_len;
        tp[i] = t;
        int rc = ts_batch_cost(&tp[i], 1, &cost);
        if (rc) {
            const char *code;
            unsigned st = save_status(rc, &code);
            console__error(r, st, code, "tensor %zu ('%.200s') refused: %s", i, t->name,
                           ts_strerror(rc));
            goto out;
        }
    }
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        goto out;
    }
    ts_stats before, after;
    wal_pos w = {0};
    ts_get_stats(s, &before);
    ts_list_files(s, find_wal, &w);
    int rc = h && h->save ? h->save(h->ctx, s, tp, n) : ts_save_batch(s, tp, n);
    if (rc) {
        const char *code;
        unsigned st = save_status(rc, &code);
        console__error(r, st, code, "not stored: %s (%s)", ts_strerror(rc), ts_errmsg(s));
        goto out;
    }
    ts_get_stats(s, &after);
    char wal[64];
    console_buf *b = &r->out;
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(b, "{\"stored\":%zu,\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
                       ",\"wal\":", n, after.next_seq - n, after.next_seq - 1);
    if (w.have) {
        file_name(wal, sizeof(wal), 1, w.no);
        console_buf_json_str(b, wal, strlen(wal));
        console_buf_printf(b, ",\"offset\":%" PRIu64, w.end);
    } else {
        console_buf_printf(b, "null,\"offset\":null");
    }
    console_buf_printf(b, ",\"bytes_written\":%" PRIu64 ",\"fsyncs\":%" PRIu64
                       ",\"flushed\":%s,\"tensors\":[",
                       after.bytes_written - before.bytes_written, after.fsyncs - before.fsyncs,
                       after.flushes > before.flushes ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        console_buf_printf(b, "%s{\"key\":", i ? "," : "");
        put_key(b, tv[i].key, tv[i].key_len);
        console_buf_printf(b, ",\"name\":");
        put_name(b, tv[i].name);
        console_buf_printf(b, ",\"seq\":%" PRIu64 ",\"bytes\":%zu}", after.next_seq - n + i,
                           tv[i].data_len);
    }
    console_buf_put(b, "]}\n", 3);
    goto out;
nomem:
    console__error(r, 500, "no_memory", "out of memory");
out:
    for (size_t i = 0; i < n; i++)
        payload_free(&in[i].pt);
    free(in);
    free(tv);
    free(tp);
}

/* ---- GET /api/tensors/load ----------------------------------------------- */

static int parse_u64(const char *s, uint64_t *v)
{
    char *end = NULL;
    if (!s || !*s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno)
        return -EINVAL;
    *v = x;
    return 0;
}

static int key_arg(console_req *r, int arg, uint8_t *key, size_t *len, int required)
{
    *len = 0;
    if (!r->args[arg]) {
        if (required)
            console__error(r, 400, "bad_key", "the %s argument is required",
                           console__arg_names[arg]);
        return required ? -EINVAL : 0;
    }
    int rc = cli_key_parse(r->args[arg], key, TS_MAX_KEY_LEN, len);
    if (rc || (required && !*len)) {
        console__error(r, 400, rc == TS_ENAMETOOLONG ? "key_too_long" : "bad_key",
                       "%s '%.200s' is not a key (101, s:TEXT, x:HEX or text)",
                       console__arg_names[arg], r->args[arg]);
        return -EINVAL;
    }
    return 0;
}

static void api_load(console_req *r, ts_store *s)
{
    uint8_t key[TS_MAX_KEY_LEN];
    size_t key_len;
    uint64_t preview = 0;
    ts_tensor *t = NULL;
    int rc, npy = 0;
    char summary[512];
    if (key_arg(r, ARG_KEY, key, &key_len, 1))
        return;
    if (r->args[ARG_PREVIEW] && parse_u64(r->args[ARG_PREVIEW], &preview)) {
        console__error(r, 400, "bad_argument", "preview is a count of values");
        return;
    }
    if (r->args[ARG_FORMAT]) {
        if (!strcmp(r->args[ARG_FORMAT], "npy"))
            npy = 1;
        else if (strcmp(r->args[ARG_FORMAT], "json")) {
            console__error(r, 400, "bad_argument", "format is json or npy");
            return;
        }
    }
    if (npy && r->args[ARG_PREVIEW]) {
        console__error(r, 400, "bad_argument", "format=npy returns the whole tensor");
        return;
    }
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        return;
    }
    rc = r->args[ARG_PREVIEW] ? ts_load_preview(s, key, key_len, preview, &t)
                              : ts_load(s, key, key_len, &t);
    if (rc == TS_ENOTFOUND) {
        console__error(r, 404, "not_found", "no tensor under key '%.200s'", r->args[ARG_KEY]);
        return;
    }
    if (rc) {
        console__error(r, 500, rc == TS_ECORRUPT ? "corrupt" : "store_error", "%s: %s",
                       ts_strerror(rc), ts_errmsg(s));
        return;
    }
    console_buf *b = &r->out;
    uint64_t numel = 0;
    ts_tensor_numel(t, &numel);
    size_t esz = ts_dtype_size(t->dtype);
    size_t shown = esz ? t->data_len / esz : 0;
    if (npy) {
        char hdr[NPY_HEADER_MAX];
        size_t hl = 0;
        if (npy_header(t, hdr, sizeof(hdr), &hl)) {
            console__error(r, 500, "store_error", "cannot describe this tensor as .npy");
            goto out;
        }
        console_buf_put(b, hdr, hl);
        console_buf_put(b, t->data, t->data_len);
        r->status = 200;
        r->ctype = "application/x-npy";
        goto out;
    }
    if (shown > JSON_VALUES_MAX) {
        console__error(r, 413, "too_large", "%zu values are more than JSON shows (%d): use "
                       "preview=N or format=npy", shown, JSON_VALUES_MAX);
        goto out;
    }
    ts_summarize(t, SUMMARY_VALUES, summary, sizeof(summary));
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(b, "{\"key\":");
    put_key(b, t->key, t->key_len);
    console_buf_printf(b, ",\"name\":");
    put_name(b, t->name);
    console_buf_printf(b, ",\"dtype\":\"%s\",\"shape\":", ts_dtype_name(t->dtype));
    put_shape(b, t->ndim, t->shape);
    console_buf_printf(b, ",\"numel\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seq\":%" PRIu64
                       ",\"timestamp_ns\":%" PRId64 ",\"preview\":%s,\"summary\":",
                       numel, numel * esz, t->seq, t->timestamp_ns,
                       r->args[ARG_PREVIEW] ? "true" : "false");
    console_buf_json_str(b, summary, strlen(summary));
    console_buf_put(b, ",\"values\":[", 11);
    for (size_t i = 0; i < shown; i++) {
        if (i)
            console_buf_put(b, ",", 1);
        put_value(b, t->dtype, t->data, i);
    }
    console_buf_put(b, "]}\n", 3);
out:
    ts_tensor_free(t);
}

/* ---- GET /api/tensors ---------------------------------------------------- */

typedef struct list_ctx {
    console_buf *b;
    uint64_t limit, n;
    const uint8_t *prefix;
    size_t prefix_len;
    uint8_t last[TS_MAX_KEY_LEN];
    size_t last_len;
    int more;
} list_ctx;

static int list_one(void *ctx, const ts_entry *e)
{
    list_ctx *l = ctx;
    char fn[64];
    if (e->key_len < l->prefix_len || memcmp(e->key, l->prefix, l->prefix_len))
        return 1; /* past the prefix: keys are in order */
    if (l->n == l->limit) {
        l->more = 1;
        return 1;
    }
    console_buf_printf(l->b, "%s{\"key\":", l->n ? "," : "");
    put_key(l->b, e->key, e->key_len);
    console_buf_printf(l->b, ",\"name\":");
    put_name(l->b, e->name);
    console_buf_printf(l->b, ",\"dtype\":\"%s\",\"shape\":", ts_dtype_name(e->dtype));
    put_shape(l->b, e->ndim, e->shape);
    console_buf_printf(l->b, ",\"bytes\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"timestamp_ns\":%"
                       PRId64 ",\"file\":\"%s\"}", e->data_len, e->seq, e->timestamp_ns,
                       file_name(fn, sizeof(fn), e->in_memtable, e->file_no));
    memcpy(l->last, e->key, e->key_len);
    l->last_len = e->key_len;
    l->n++;
    return 0;
}

static void api_list(console_req *r, ts_store *s)
{
    uint8_t prefix[TS_MAX_KEY_LEN], after[TS_MAX_KEY_LEN + 1];
    size_t prefix_len = 0, after_len = 0;
    uint64_t limit = LIST_DEFAULT;
    list_ctx l = {.b = &r->out};
    if (r->args[ARG_PREFIX] && r->arg_len[ARG_PREFIX]) {
        /* A prefix is text, or x:HEX for bytes (digits are not a number
         * here: "10" is every key starting with "10"). */
        const char *pa = r->args[ARG_PREFIX];
        if (!strncmp(pa, "x:", 2) || !strncmp(pa, "s:", 2)) {
            if (cli_key_parse(pa, prefix, sizeof(prefix), &prefix_len)) {
                console__error(r, 400, "bad_key", "prefix '%.200s' is malformed", pa);
                return;
            }
        } else {
            if (r->arg_len[ARG_PREFIX] > sizeof(prefix)) {
                console__error(r, 400, "key_too_long", "the prefix is longer than a key");
                return;
            }
            prefix_len = r->arg_len[ARG_PREFIX];
            memcpy(prefix, pa, prefix_len);
        }
    }
    if (key_arg(r, ARG_AFTER, after, &after_len, 0))
        return;
    if (r->args[ARG_LIMIT] && (parse_u64(r->args[ARG_LIMIT], &limit) || !limit ||
                               limit > LIST_MAX)) {
        console__error(r, 400, "bad_argument", "limit is 1..%d", LIST_MAX);
        return;
    }
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        return;
    }
    /* Start at the prefix, or just past `after` (after + 0x00), whichever
     * is later. */
    const uint8_t *lo = prefix;
    size_t lo_len = prefix_len;
    if (r->args[ARG_AFTER]) {
        after[after_len++] = 0;
        int c = memcmp(after, prefix, after_len < prefix_len ? after_len : prefix_len);
        if (c > 0 || (c == 0 && after_len > prefix_len)) {
            lo = after;
            lo_len = after_len;
        }
    }
    l.limit = limit;
    l.prefix = prefix;
    l.prefix_len = prefix_len;
    console_buf_put(&r->out, "{\"tensors\":[", 12);
    int rc = ts_scan_range(s, lo_len ? lo : NULL, lo_len, NULL, 0, list_one, &l);
    if (rc < 0) {
        console__error(r, 500, "store_error", "%s: %s", ts_strerror(rc), ts_errmsg(s));
        return;
    }
    console_buf_put(&r->out, "],\"next_after\":", 15);
    if (l.more)
        put_key(&r->out, l.last, l.last_len);
    else
        console_buf_put(&r->out, "null", 4);
    console_buf_put(&r->out, "}\n", 2);
    r->status = 200;
    r->ctype = "application/json";
}

/* ---- GET /api/store ------------------------------------------------------ */

typedef struct files_ctx {
    console_buf *b;
    size_t n_sst, skip, shown;
    int wal_done;
} files_ctx;

static int count_ssts(void *ctx, const ts_file_info *f)
{
    files_ctx *fc = ctx;
    if (!f->is_wal)
        fc->n_sst++;
    return 0;
}

static int put_wal(void *ctx, const ts_file_info *f)
{
    files_ctx *fc = ctx;
    char fn[64];
    if (f->is_wal) {
        console_buf_printf(fc->b, "\"wal\":{\"name\":\"%s\",\"bytes\":%" PRIu64
                           ",\"tensors\":%" PRIu64 "},",
                           file_name(fn, sizeof(fn), 1, f->file_no), f->bytes, f->n_entries);
        fc->wal_done = 1;
    }
    return 1;
}

static int put_sst(void *ctx, const ts_file_info *f)
{
    files_ctx *fc = ctx;
    char fn[64];
    if (f->is_wal)
        return 0;
    if (fc->skip) {
        fc->skip--;
        return 0;
    }
    console_buf_printf(fc->b, "%s{\"name\":\"%s\",\"tensors\":%" PRIu64 ",\"bytes\":%" PRIu64
                       ",\"min_seq\":%" PRIu64 ",\"max_seq\":%" PRIu64 ",\"first_key\":",
                       fc->shown ? "," : "", file_name(fn, sizeof(fn), 0, f->file_no),
                       f->n_entries, f->bytes, f->min_seq, f->max_seq);
    if (f->first_key)
        put_key(fc->b, f->first_key, f->first_len);
    else
        console_buf_put(fc->b, "null", 4);
    console_buf_put(fc->b, ",\"last_key\":", 12);
    if (f->last_key)
        put_key(fc->b, f->last_key, f->last_len);
    else
        console_buf_put(fc->b, "null", 4);
    console_buf_put(fc->b, "}", 1);
    fc->shown++;
    return 0;
}

static void put_snapshots(console_buf *b, plat_vfs *vfs, const console_env *env)
{
    char root[4096];
    snap_info *v = NULL;
    size_t n = 0;
    console_buf_put(b, "\"snapshots\":[", 13);
    if (env->store_dir && !snap_root(env->store_dir, root, sizeof(root)) &&
        !snap_list(vfs, root, &v, &n, NULL, 0)) {
        for (size_t i = 0; i < n; i++) {
            console_buf_printf(b, "%s{\"name\":", i ? "," : "");
            console_buf_json_str(b, v[i].name, strlen(v[i].name));
            console_buf_printf(b, ",\"state\":\"%s\",\"seq\":%" PRIu64 ",\"tensors\":%" PRIu64
                               ",\"tar_bytes\":%" PRIu64 ",\"attempts\":%" PRIu64 ",\"error\":",
                               snap_state_name(v[i].state), v[i].seq, v[i].tensors,
                               v[i].tar_bytes, v[i].attempts);
            console_buf_json_str(b, v[i].error, strlen(v[i].error));
            console_buf_put(b, "}", 1);
        }
    }
    free(v);
    console_buf_put(b, "]", 1);
}

static void api_store(console_req *r, ts_store *s, plat_vfs *vfs, const console_hooks *h,
                      const console_env *env)
{
    console_buf *b = &r->out;
    ts_stats st;
    files_ctx fc = {.b = b};
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        return;
    }
    ts_get_stats(s, &st);
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(b, "{\"role\":");
    console_buf_json_str(b, env->role, strlen(env->role));
    console_buf_printf(b, ",\"dir\":");
    console_buf_json_str(b, env->store_dir ? env->store_dir : "",
                         env->store_dir ? strlen(env->store_dir) : 0);
    console_buf_put(b, ",", 1);
    ts_list_files(s, put_wal, &fc);
    if (!fc.wal_done)
        console_buf_printf(b, "\"wal\":null,");
    console_buf_printf(b, "\"memtable\":{\"tensors\":%" PRIu64 ",\"bytes\":%" PRIu64
                       ",\"max\":%" PRIu64 "},", st.memtable_entries, st.memtable_bytes,
                       ts_memtable_max(s));
    ts_list_files(s, count_ssts, &fc);
    fc.skip = fc.n_sst > SST_SHOWN ? fc.n_sst - SST_SHOWN : 0;
    console_buf_printf(b, "\"ssts_total\":%zu,\"ssts\":[", fc.n_sst);
    ts_list_files(s, put_sst, &fc);
    console_buf_printf(b, "],\"stats\":{\"tensors\":%" PRIu64 ",\"disk_bytes\":%" PRIu64
                       ",\"batches\":%" PRIu64 ",\"tensors_saved\":%" PRIu64
                       ",\"payload_bytes\":%" PRIu64 ",\"bytes_written\":%" PRIu64
                       ",\"fsyncs\":%" PRIu64 ",\"flushes\":%" PRIu64 ",\"next_seq\":%" PRIu64
                       "},", st.n_entries, st.disk_bytes, st.batches, st.tensors_saved,
                       st.payload_bytes, st.bytes_written, st.fsyncs, st.flushes, st.next_seq);
    put_snapshots(b, vfs, env);
    console_buf_put(b, ",\"agent\":", 9);
    if (h && h->status)
        h->status(h->ctx, b);
    else
        console_buf_put(b, "null", 4);
    console_buf_put(b, "}\n", 2);
}

/* ---- POST /api/store/flush, POST /api/snapshot --------------------------- */

static void api_flush(console_req *r, ts_store *s)
{
    char name[64] = "";
    uint64_t n = 0;
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        return;
    }
    int rc = ts_flush(s, name, sizeof(name), &n);
    if (rc) {
        const char *code;
        unsigned st = save_status(rc, &code);
        console__error(r, st, code, "flush failed: %s (%s)", ts_strerror(rc), ts_errmsg(s));
        return;
    }
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(&r->out, "{\"sst\":");
    if (n)
        console_buf_json_str(&r->out, name, strlen(name));
    else
        console_buf_put(&r->out, "null", 4);
    console_buf_printf(&r->out, ",\"tensors\":%" PRIu64 "}\n", n);
}

static void api_snapshot(console_req *r, ts_store *s, const console_hooks *h)
{
    char name[SNAP_NAME_MAX], err[1024] = "";
    if (!h || !h->snapshot) {
        console__error(r, 404, "no_snapshots", "snapshots are the agent's (embeddb-agent)");
        return;
    }
    if (!s) {
        console__error(r, 503, "store_closed", "the store is closed (being reopened)");
        return;
    }
    int rc = h->snapshot(h->ctx, name, sizeof(name), err, sizeof(err));
    if (rc == TS_ENOTFOUND) {
        console__error(r, 409, "nothing_stored", "nothing was stored since the last snapshot");
        return;
    }
    if (rc) {
        console__error(r, 500, "snapshot_failed", "%s", err);
        return;
    }
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(&r->out, "{\"snapshot\":");
    console_buf_json_str(&r->out, name, strlen(name));
    console_buf_put(&r->out, "}\n", 2);
}

/* ---- GET /metrics -------------------------------------------------------- */

static void metric(console_buf *b, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    console_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                       name, v);
}

static void api_metrics(console_req *r, ts_store *s, plat_vfs *vfs, const console_hooks *h,
                        const console_env *env)
{
    console_buf *b = &r->out;
    ts_stats st;
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (s) {
        ts_get_stats(s, &st);
        metric(b, "embeddb_store_tensors_saved_total", "counter",
               "Tensors saved since the store was opened.", st.tensors_saved);
        metric(b, "embeddb_store_batches_total", "counter",
               "Batches committed since the store was opened.", st.batches);
        metric(b, "embeddb_store_payload_bytes_total", "counter",
               "Tensor data bytes saved since the store was opened.", st.payload_bytes);
        metric(b, "embeddb_store_written_bytes_total", "counter",
               "Bytes written to disk since the store was opened.", st.bytes_written);
        metric(b, "embeddb_store_fsyncs_total", "counter",
               "fdatasync, fsync and directory syncs since the store was opened.", st.fsyncs);
        metric(b, "embeddb_store_flushes_total", "counter",
               "WAL segments sealed into SSTs since the store was opened.", st.flushes);
        metric(b, "embeddb_store_memtable_tensors", "gauge",
               "Tensors in the open WAL segment.", st.memtable_entries);
        metric(b, "embeddb_store_memtable_bytes", "gauge",
               "Record bytes in the open WAL segment.", st.memtable_bytes);
        metric(b, "embeddb_store_memtable_max_bytes", "gauge",
               "The MemTable size that triggers a flush.", ts_memtable_max(s));
        metric(b, "embeddb_store_ssts", "gauge", "Live SST files.", st.n_sst);
        metric(b, "embeddb_store_disk_bytes", "gauge", "Bytes of live WAL and SST files.",
               st.disk_bytes);
    }
    metric(b, "embeddb_store_open", "gauge", "1 when the store is open.", s ? 1 : 0);
    /* Snapshots by state: every state, present or not, so a rate is sound. */
    char root[4096];
    snap_info *v = NULL;
    size_t n = 0;
    uint64_t by[SNAP_SEALING + 1] = {0};
    if (env->store_dir && !snap_root(env->store_dir, root, sizeof(root)) &&
        !snap_list(vfs, root, &v, &n, NULL, 0))
        for (size_t i = 0; i < n; i++)
            if ((unsigned)v[i].state <= SNAP_SEALING)
                by[v[i].state]++;
    free(v);
    console_buf_printf(b, "# HELP embeddb_snapshots Snapshots on flash by state.\n"
                       "# TYPE embeddb_snapshots gauge\n");
    for (int i = 0; i <= SNAP_SEALING; i++)
        console_buf_printf(b, "embeddb_snapshots{state=\"%s\"} %" PRIu64 "\n",
                           snap_state_name((snap_state)i), by[i]);
    if (h && h->metrics)
        h->metrics(h->ctx, b);
}

/* ---- GET /api/demo ------------------------------------------------------- */

static void demo_file(console_buf *b, plat_vfs *vfs, const char *dir, const char *name,
                      int payload)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    console_buf_printf(b, "{\"name\":\"%s\",", name);
    if (!dir || plat_path_join(path, sizeof(path), dir, name) ||
        plat_file_read(vfs, path, 64u << 20, &text, &len)) {
        console_buf_printf(b, "\"found\":false}");
        return;
    }
    console_buf_printf(b, "\"found\":true,\"bytes\":%zu", len);
    if (payload) {
        /* key,name,dtype,shape,v0,... per line: the first four fields and
         * the value count, for the page's table. */
        uint64_t values = 0;
        size_t k = 0;
        console_buf_put(b, ",\"tensors\":[", 12);
        for (char *line = text, *nl; line < text + len; line = nl + 1) {
            nl = memchr(line, '\n', (size_t)(text + len - line));
            if (!nl)
                nl = text + len;
            if (nl == line || *line == '#') { /* blank, or a comment */
                if (nl == text + len)
                    break;
                continue;
            }
            span f[4] = {{0}};
            size_t nf = 0, commas = 0;
            const char *q = line;
            for (const char *c = line; c <= nl; c++)
                if (c == nl || *c == ',') {
                    if (nf < 4)
                        f[nf++] = (span){q, (size_t)(c - q)};
                    else
                        commas++;
                    q = c + 1;
                }
            values += commas;
            if (nf == 4) {
                console_buf_printf(b, "%s{", k++ ? "," : "");
                static const char *const fnames[] = {"key", "name", "dtype", "shape"};
                for (int i = 0; i < 4; i++) {
                    console_buf_printf(b, "%s\"%s\":", i ? "," : "", fnames[i]);
                    console_buf_json_str(b, f[i].p, f[i].n > 200 ? 200 : f[i].n);
                }
                console_buf_put(b, "}", 1);
            }
            if (nl == text + len)
                break;
        }
        console_buf_printf(b, "],\"values\":%" PRIu64, values);
    }
    console_buf_put(b, "}", 1);
    free(text);
}

static void api_demo(console_req *r, plat_vfs *vfs, const console_env *env)
{
    console_buf *b = &r->out;
    char store[4096];
    plat_stat st;
    r->status = 200;
    r->ctype = "application/json";
    console_buf_printf(b, "{\"dir\":");
    if (env->demo_dir)
        console_buf_json_str(b, env->demo_dir, strlen(env->demo_dir));
    else
        console_buf_put(b, "null", 4);
    console_buf_put(b, ",\"files\":[", 10);
    demo_file(b, vfs, env->demo_dir, "weights_baseline.json", 0);
    console_buf_put(b, ",", 1);
    demo_file(b, vfs, env->demo_dir, "tensor_payload.txt", 1);
    console_buf_put(b, "],\"store\":", 10);
    if (env->demo_dir && !plat_path_join(store, sizeof(store), env->demo_dir, "store") &&
        !vfs->stat(vfs, store, &st) && st.is_dir)
        console_buf_printf(b, "{\"found\":true,\"bytes\":%" PRIu64 "}",
                           plat_dir_bytes(vfs, store));
    else
        console_buf_put(b, "{\"found\":false}", 15);
    console_buf_printf(b, ",\"regenerate\":");
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "python3 examples/python_demo/dl_model_demo.py --out %s",
             env->demo_dir ? env->demo_dir : "python_demo_out");
    console_buf_json_str(b, cmd, strlen(cmd));
    console_buf_put(b, "}\n", 2);
}

void console__run(console_req *r, ts_store *s, plat_vfs *vfs, const console_hooks *h,
                  const console_env *env)
{
    switch (r->route) {
    case ROUTE_STORE_TENSOR: api_store_tensor(r, s, h, env); break;
    case ROUTE_LOAD: api_load(r, s); break;
    case ROUTE_LIST: api_list(r, s); break;
    case ROUTE_STORE: api_store(r, s, vfs, h, env); break;
    case ROUTE_FLUSH: api_flush(r, s); break;
    case ROUTE_SNAPSHOT: api_snapshot(r, s, h); break;
    case ROUTE_METRICS: api_metrics(r, s, vfs, h, env); break;
    case ROUTE_DEMO: api_demo(r, vfs, env); break;
    default: console__error(r, 404, "not_found", "no such path"); break;
    }
    if (!r->status)
        console__error(r, 500, "internal", "no response");
}
