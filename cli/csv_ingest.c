/*
 * csv_ingest.c -- the CSV tensor payload reader (format and limits in
 * csv_ingest.h). It turns text into ts_tensor values ready for one
 * ts_save_batch, and explains every refusal as "FILE:LINE: reason" so that a
 * person can fix the file. Element conversion and range checks are the
 * engine's (ts_dtype_set), so the CLI and the agent agree on them; this file
 * adds what text needs on top: exact 64-bit integers, complex literals, and
 * refusing floats that would overflow to infinity.
 */
#include "csv_ingest.h"

#include "cli_key.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits off the next comma-separated field of *s (NUL-terminating it, and
 * trimming blanks both sides); NULL when the line has no more fields. */
static char *next_field(char **s)
{
    char *f = *s, *c, *e;
    if (!f)
        goto out;
    c = strchr(f, ',');
    if (c) {
        *c = 0;
        *s = c + 1;
    } else {
        *s = NULL;
    }
    while (is_blank(*f))
        f++;
    e = f + strlen(f);
    while (e > f && is_blank(e[-1]))
        *--e = 0;
out:
    return f;
}

static int is_float_dtype(ts_dtype dt)
{
    return dt == TS_F16 || dt == TS_BF16 || dt == TS_F32 || dt == TS_F64 || dt == TS_C64 ||
           dt == TS_C128;
}

/* "32x32" / "4" / "" / "scalar" into t's ndim and shape; *numel gets the
 * element count. */
static int parse_shape(char *f, ts_tensor *t, uint64_t *numel, char *why, size_t why_len)
{
    const char *orig = f;
    int rc = 0;
    *numel = 1;
    t->ndim = 0;
    if (!*f || !strcmp(f, "scalar"))
        goto out;
    for (;;) {
        char *end = NULL;
        unsigned long long v;
        if (t->ndim == TS_MAX_DIMS) {
            say(why, why_len, "more than %d dimensions in shape '%s'", TS_MAX_DIMS, orig);
            rc = TS_EINVAL;
            break;
        }
        errno = 0;
        v = *f >= '0' && *f <= '9' ? strtoull(f, &end, 10) : 0;
        if (!end || errno || (*end && *end != 'x')) {
            say(why, why_len, "bad shape '%s' (expected dimensions joined by x, e.g. 32x32)",
                orig);
            rc = TS_EINVAL;
            break;
        }
        t->shape[t->ndim++] = v;
        if (v && *numel > UINT64_MAX / v) {
            say(why, why_len, "shape '%s' has too many elements", orig);
            rc = TS_EOVERFLOW;
            break;
        }
        *numel *= v;
        if (!*end)
            break;
        f = end + 1;
    }
out:
    return rc;
}

/* Python's complex literals: "1.5", "2j", "(1.5-2j)", "(nan+infj)". */
static int parse_complex(char *f, double *re, double *im)
{
    size_t n = strlen(f);
    char *end = NULL;
    int rc = -1;
    *re = *im = 0;
    if (f[0] == '(') {
        if (n < 2 || f[n - 1] != ')')
            goto out;
        f[n - 1] = 0;
        f++;
    }
    *re = strtod(f, &end);
    if (end == f)
        goto out;
    if (!strcmp(end, "j")) {
        *im = *re;
        *re = 0;
        rc = 0;
    } else if (!*end) {
        rc = 0;
    } else if (*end == '+' || *end == '-') {
        char *imag = end;
        *im = strtod(imag, &end);
        rc = end != imag && !strcmp(end, "j") ? 0 : -1;
    }
out:
    return rc;
}

/* Whole numbers for the 64-bit integer dtypes, which a double cannot hold
 * exactly past 2^53. Returns 1 when f was one and stored (or *rc set), 0
 * when f is not a plain integer literal (the caller tries it as a double). */
static int put_int64(ts_dtype dt, char *f, uint8_t *data, size_t i, int *rc)
{
    char *end = NULL;
    int done = 0;
    errno = 0;
    if (dt == TS_I64) {
        long long v = strtoll(f, &end, 10);
        if (end != f && !*end) {
            int64_t x = (int64_t)v;
            done = 1;
            *rc = errno ? TS_EOVERFLOW : 0;
            if (!*rc)
                memcpy(data + i * 8, &x, 8);
        }
    } else if (dt == TS_U64 && f[0] != '-') {
        unsigned long long v = strtoull(f, &end, 10);
        if (end != f && !*end) {
            uint64_t x = (uint64_t)v;
            done = 1;
            *rc = errno ? TS_EOVERFLOW : 0;
            if (!*rc)
                memcpy(data + i * 8, &x, 8);
        }
    }
    return done;
}

/* Element i of dtype dt from the text f. */
static int put_value(ts_dtype dt, char *f, uint8_t *data, size_t i, char *why, size_t why_len)
{
    double v = 0, im = 0;
    char *end = NULL;
    int rc = 0;
    if (!*f) {
        say(why, why_len, "value %zu is empty", i + 1);
        rc = TS_EINVAL;
        goto out;
    }
    if ((dt == TS_I64 || dt == TS_U64) && put_int64(dt, f, data, i, &rc))
        goto check;
    if (dt == TS_BOOL && (!strcmp(f, "true") || !strcmp(f, "True"))) {
        v = 1;
    } else if (dt == TS_BOOL && (!strcmp(f, "false") || !strcmp(f, "False"))) {
        v = 0;
    } else if (dt == TS_C64 || dt == TS_C128) {
        if (parse_complex(f, &v, &im)) {
            say(why, why_len, "value %zu '%s' is not a number", i + 1, f);
            rc = TS_EINVAL;
            goto out;
        }
    } else {
        v = strtod(f, &end);
        if (end == f || *end) {
            say(why, why_len, "value %zu '%s' is not a number", i + 1, f);
            rc = TS_EINVAL;
            goto out;
        }
    }
    rc = ts_dtype_set(dt, data, i, v);
    /* ts_dtype_set rounds a finite float past the dtype's range to infinity:
     * refuse that, it is never what the file meant. */
    if (!rc && is_float_dtype(dt) && isfinite(v) && !isfinite(ts_dtype_get(dt, data, i)))
        rc = TS_EOVERFLOW;
    if (!rc && dt == TS_C64) {
        float fi = (float)im;
        if (isfinite(im) && !isfinite(fi))
            rc = TS_EOVERFLOW;
        memcpy(data + i * 8 + 4, &fi, 4);
    } else if (!rc && dt == TS_C128) {
        memcpy(data + i * 16 + 8, &im, 8);
    }
check:
    if (rc == TS_EOVERFLOW)
        say(why, why_len, "value %zu '%s' is out of range for %s", i + 1, f, ts_dtype_name(dt));
    else if (rc)
        say(why, why_len, "value %zu '%s' is not an integer (dtype %s)", i + 1, f,
            ts_dtype_name(dt));
out:
    return rc;
}

int csv_parse_line(char *line, csv_tensor *out, char *why, size_t why_len)
{
    uint8_t key[TS_MAX_KEY_LEN];
    size_t key_len = 0, name_len, es, data_len, n_extra = 0;
    uint64_t numel = 1;
    char *rest = line, *f, *name;
    uint8_t *mem = NULL;
    ts_tensor t;
    int rc = TS_EINVAL;
    memset(out, 0, sizeof(*out));
    memset(&t, 0, sizeof(t));
    f = next_field(&rest);
    if (!f || !*f || cli_key_parse(f, key, sizeof(key), &key_len) || !key_len) {
        say(why, why_len, "bad or missing key '%s' (keys: 101, s:TEXT, x:HEX or text)",
            f ? f : "");
        goto out;
    }
    if (!(name = next_field(&rest))) {
        say(why, why_len, "missing name, dtype and shape after the key");
        goto out;
    }
    if ((name_len = strlen(name)) > TS_MAX_NAME_LEN) {
        say(why, why_len, "name longer than %d bytes", TS_MAX_NAME_LEN);
        rc = TS_ENAMETOOLONG;
        goto out;
    }
    f = next_field(&rest);
    if (!f || ts_dtype_parse(f, &t.dtype)) {
        say(why, why_len,
            "unknown dtype '%s' (use a NumPy or short name: float32, f32, int16, uint8, bool, "
            "complex64, ...)", f ? f : "");
        goto out;
    }
    if (!(f = next_field(&rest))) {
        say(why, why_len, "missing shape (e.g. 32x32, or scalar)");
        goto out;
    }
    if ((rc = parse_shape(f, &t, &numel, why, why_len)))
        goto out;
    es = ts_dtype_size(t.dtype);
    if (numel > PAYLOAD_MAX_BYTES / es) {
        say(why, why_len, "tensor larger than the %llu MiB payload limit",
            (unsigned long long)(PAYLOAD_MAX_BYTES >> 20));
        rc = TS_EOVERFLOW;
        goto out;
    }
    data_len = (size_t)numel * es;
    /* One block: data first (malloc's alignment), then key, then name. */
    if (!(mem = malloc(data_len + key_len + name_len + 1))) {
        say(why, why_len, "out of memory");
        rc = TS_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < numel; i++) {
        if (!(f = next_field(&rest))) {
            say(why, why_len, "fewer values than the shape needs (%llu of %llu)",
                (unsigned long long)i, (unsigned long long)numel);
            rc = TS_EINVAL;
            goto out;
        }
        if ((rc = put_value(t.dtype, f, mem, (size_t)i, why, why_len)))
            goto out;
    }
    while (next_field(&rest))
        n_extra++;
    if (n_extra) {
        say(why, why_len, "more values than the shape holds (%llu for %llu)",
            (unsigned long long)(numel + n_extra), (unsigned long long)numel);
        rc = TS_EINVAL;
        goto out;
    }
    memcpy(mem + data_len, key, key_len);
    memcpy(mem + data_len + key_len, name, name_len + 1);
    t.key = mem + data_len;
    t.key_len = key_len;
    t.name = (const char *)(mem + data_len + key_len);
    t.data = mem;
    t.data_len = data_len;
    if ((rc = ts_validate(&t))) {
        say(why, why_len, "invalid tensor: %s", ts_strerror(rc));
        goto out;
    }
    out->t = t;
    out->mem = mem;
    mem = NULL;
out:
    free(mem);
    return rc;
}

/* Reads one line into *buf (without the '\n'). Returns 1 for a line, 0 at
 * the end of the file, TS_EOVERFLOW past PAYLOAD_MAX_LINE, TS_EINVAL for a
 * NUL byte (it would cut the line short unseen), TS_EIO, TS_ENOMEM. */
static int read_line(FILE *fp, char **buf, size_t *cap, size_t *len)
{
    int c = 0, rc = 0;
    *len = 0;
    /* The buffer always has room for the NUL, even for an empty line. */
    if (!*cap) {
        if (!(*buf = malloc(4096))) {
            rc = TS_ENOMEM;
            goto out;
        }
        *cap = 4096;
    }
    while ((c = getc_unlocked(fp)) != EOF) {
        rc = 1;
        if (c == '\n')
            break;
        if (c == 0) {
            rc = TS_EINVAL;
            goto out;
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap * 2;
            char *nb;
            if (*cap > PAYLOAD_MAX_LINE) {
                rc = TS_EOVERFLOW;
                goto out;
            }
            if (ncap > PAYLOAD_MAX_LINE + 2)
                ncap = PAYLOAD_MAX_LINE + 2;
            if (!(nb = realloc(*buf, ncap))) {
                rc = TS_ENOMEM;
                goto out;
            }
            *buf = nb;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)c;
    }
    if (c == EOF && ferror(fp)) {
        rc = TS_EIO;
        goto out;
    }
    if (rc == 1) {
        if (*len && (*buf)[*len - 1] == '\r')
            (*len)--;
        (*buf)[*len] = 0;
    }
out:
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    const csv_tensor *x = *(const csv_tensor *const *)a;
    const csv_tensor *y = *(const csv_tensor *const *)b;
    size_t n = x->t.key_len < y->t.key_len ? x->t.key_len : y->t.key_len;
    int c = memcmp(x->t.key, y->t.key, n);
    if (!c)
        c = (x->t.key_len > y->t.key_len) - (x->t.key_len < y->t.key_len);
    if (!c)
        c = (x->line > y->line) - (x->line < y->line);
    return c;
}

/* A repeated key would silently keep only its last line's tensor: refuse. */
static int check_unique(const csv_payload *p, const char *file, char *err, size_t err_len)
{
    const csv_tensor **v = NULL;
    int rc = 0;
    if (p->n < 2)
        goto out;
    if (!(v = malloc(p->n * sizeof(*v)))) { /* n * pointer: p->v is bigger */
        snprintf(err, err_len, "%s: out of memory", file);
        rc = TS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < p->n; i++)
        v[i] = &p->v[i];
    qsort(v, p->n, sizeof(*v), cmp_key);
    for (size_t i = 1; i < p->n && !rc; i++) {
        if (v[i]->t.key_len == v[i - 1]->t.key_len &&
            !memcmp(v[i]->t.key, v[i - 1]->t.key, v[i]->t.key_len)) {
            char key[CLI_KEY_TEXT_MAX];
            cli_key_format(v[i]->t.key, v[i]->t.key_len, key, sizeof(key));
            snprintf(err, err_len, "%s:%zu: key %s already used on line %zu", file, v[i]->line,
                     key, v[i - 1]->line);
            rc = TS_EINVAL;
        }
    }
out:
    free(v);
    return rc;
}

int csv_read(FILE *fp, const char *file, csv_payload *p, char *err, size_t err_len)
{
    char *line = NULL, why[512];
    size_t cap = 0, len = 0, lineno = 0;
    int rc;
    while ((rc = read_line(fp, &line, &cap, &len)) == 1) {
        char *s = line;
        csv_tensor pt;
        lineno++;
        while (is_blank(*s))
            s++;
        if (!*s || *s == '#')
            continue;
        if (p->n == p->cap) {
            size_t ncap = p->cap ? 2 * p->cap : 16;
            csv_tensor *nv;
            if (ncap > SIZE_MAX / sizeof(*nv) || !(nv = realloc(p->v, ncap * sizeof(*nv)))) {
                snprintf(err, err_len, "%s:%zu: out of memory", file, lineno);
                rc = TS_ENOMEM;
                goto out;
            }
            p->v = nv;
            p->cap = ncap;
        }
        if ((rc = csv_parse_line(s, &pt, why, sizeof(why)))) {
            snprintf(err, err_len, "%s:%zu: %s", file, lineno, why);
            goto out;
        }
        pt.line = lineno;
        p->v[p->n++] = pt;
        p->data_bytes += pt.t.data_len;
        if (p->data_bytes > PAYLOAD_MAX_BYTES) {
            snprintf(err, err_len, "%s:%zu: more than %llu MiB of tensor data in the file; "
                     "split it", file, lineno, (unsigned long long)(PAYLOAD_MAX_BYTES >> 20));
            rc = TS_EOVERFLOW;
            goto out;
        }
    }
    if (rc == TS_EOVERFLOW)
        snprintf(err, err_len, "%s:%zu: line longer than %zu MiB", file, lineno + 1,
                 PAYLOAD_MAX_LINE >> 20);
    else if (rc == TS_EINVAL)
        snprintf(err, err_len, "%s:%zu: NUL byte in the line", file, lineno + 1);
    else if (rc == TS_EIO)
        snprintf(err, err_len, "%s: read error: %s", file, strerror(errno));
    else if (rc)
        snprintf(err, err_len, "%s:%zu: out of memory", file, lineno + 1);
    if (rc)
        goto out;
    if (!p->n) {
        snprintf(err, err_len, "%s: no tensors in the file", file);
        rc = TS_EINVAL;
        goto out;
    }
    rc = check_unique(p, file, err, err_len);
out:
    free(line);
    return rc;
}

void csv_free(csv_payload *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].mem);
    free(p->v);
    memset(p, 0, sizeof(*p));
}
