/*
 * control.c -- topics and JSON documents of fleet control (control.h; the
 * formats are in agent/CONTROL.md). Documents are built with a
 * sticky-overflow cursor: one that does not fit is refused whole, never
 * published cut.
 */
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef EMBEDDB_VERSION
#define EMBEDDB_VERSION "unknown"
#endif

typedef struct jcur {
    char *buf;
    size_t cap, n;
    int full;
} jcur;

static void put(jcur *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(jcur *c, const char *fmt, ...)
{
    va_list ap;
    if (c->full)
        return;
    va_start(ap, fmt);
    int k = vsnprintf(c->buf + c->n, c->cap - c->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= c->cap - c->n) {
        c->full = 1;
        return;
    }
    c->n += (size_t)k;
}

int control_topic(char *buf, size_t cap, const char *prefix, const char *device_id,
                  const char *leaf)
{
    int k = snprintf(buf, cap, "%s/%s/%s", prefix, device_id, leaf);
    return k < 0 || (size_t)k >= cap ? -ENAMETOOLONG : 0;
}

int control_status_json(const control_status *s, char *buf, size_t cap, size_t *len)
{
    jcur c = {.buf = buf, .cap = cap};
    *len = 0;
    if (!cap)
        return -ENOSPC;
    /* device_id is [A-Za-z0-9._-] (snap_device_id_ok) and reason one of two
     * words: neither needs escaping. */
    put(&c, "{\"v\":%d,\"device_id\":\"%s\",\"online\":%s,\"version\":\"%s\"",
        CONTROL_FORMAT_VERSION, s->device_id, s->online ? "true" : "false", EMBEDDB_VERSION);
    if (!s->online) {
        put(&c, ",\"reason\":\"%s\"}", s->reason ? s->reason : "lost");
        goto done;
    }
    put(&c, ",\"time_ns\":%" PRId64 ",\"uptime_s\":%" PRIu64, s->time_ns, s->uptime_ms / 1000);
    if (s->in) {
        const ingest_counters *in = s->in;
        uint64_t rejected = 0;
        for (int e = 1; e < PAYLOAD_N_ERRS; e++)
            rejected += in->rejected[e];
        put(&c, ",\"mqtt\":{\"connected\":%s,\"received\":%" PRIu64 ",\"stored\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"rejected_by\":{",
            in->connected ? "true" : "false", in->received, s->a->stored, rejected);
        for (int e = 1; e < PAYLOAD_N_ERRS; e++)
            put(&c, "%s\"%s\":%" PRIu64, e > 1 ? "," : "", payload_err_name((payload_err)e),
                in->rejected[e]);
        put(&c, "},\"unmatched\":%" PRIu64 ",\"held\":%zu,\"maybe_duplicated\":%" PRIu64
            ",\"reconnects\":%" PRIu64 "}",
            in->unmatched, in->held, in->maybe_duplicated,
            in->connects > 0 ? in->connects - 1 : 0);
    }
    put(&c, ",\"flash\":{\"used\":%" PRIu64 ",\"limit\":%" PRIu64 ",\"free\":", s->flash_used,
        s->flash_limit);
    if (s->flash_free == UINT64_MAX)
        put(&c, "null}");
    else
        put(&c, "%" PRIu64 "}", s->flash_free);
    put(&c, ",\"snapshots\":{");
    for (int st = SNAP_SEALED; st <= SNAP_SEALING; st++)
        put(&c, "%s\"%s\":%" PRIu64, st ? "," : "", snap_state_name((snap_state)st),
            s->snapshots[st]);
    put(&c, "},\"upload_backlog_bytes\":%" PRIu64 "}", s->backlog_bytes);
done:
    if (c.full) {
        buf[0] = 0;
        return -ENOSPC;
    }
    *len = c.n;
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

static const char *const verb_names[CONTROL_N_VERBS] = {"status", "snapshot", "upload"};
static const char *const err_names[CONTROL_N_ERRS] = {
    "ok", "unknown_verb", "bad_json", "bad_field", "too_large", "rate_limited", "busy", "failed",
};

const char *control_verb_name(control_verb v)
{
    return (unsigned)v < CONTROL_N_VERBS ? verb_names[v] : "?";
}

const char *control_err_name(control_err e)
{
    return (unsigned)e < CONTROL_N_ERRS ? err_names[e] : "?";
}

/* A strict reader of the one JSON shape commands use: an object of string
 * values (RFC 8259 whitespace; escapes allowed, but the decoded strings
 * must be printable ASCII). */
typedef struct jin {
    const unsigned char *p, *end;
} jin;

static void ws(jin *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* A string at j->p (which is at '"') into out (cap bytes, NUL included):
 * 0; -1 not JSON; -2 JSON, but not 1..cap-1 printable ASCII bytes. */
static int jstring(jin *j, char *out, size_t cap)
{
    size_t n = 0;
    int bad = 0;
    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    for (;;) {
        if (j->p >= j->end)
            return -1;
        unsigned c = *j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (j->p >= j->end)
                return -1;
            unsigned e = *j->p++;
            switch (e) {
            case '"': case '\\': case '/': c = e; break;
            case 'b': case 'f': case 'n': case 'r': case 't': c = 1; break; /* not printable */
            case 'u':
                if (j->end - j->p < 4 || hex4(j->p, &c))
                    return -1;
                j->p += 4;
                break;
            default:
                return -1;
            }
        }
        if (c < 0x20 || c > 0x7e) {
            bad = 1; /* keep reading: the document may still be malformed */
            continue;
        }
        if (n + 1 < cap)
            out[n] = (char)c;
        n++;
    }
    if (cap)
        out[n < cap ? n : cap - 1] = 0;
    return bad || n == 0 || n >= cap ? -2 : 0;
}

/* The body: every verb takes the same keys (id, origin). */
static control_err decode_body(const void *body, size_t len, control_cmd *out, char *why,
                               size_t whylen)
{
    jin j = {.p = body, .end = (const unsigned char *)body + len};
    if (len > CONTROL_CMD_MAX) {
        snprintf(why, whylen, "a %zu-byte body; at most %d", len, CONTROL_CMD_MAX);
        return CONTROL_E_TOO_LARGE;
    }
    ws(&j);
    if (j.p == j.end)
        return CONTROL_OK; /* an empty body is {} */
    if (*j.p++ != '{')
        goto bad_json;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
        goto tail;
    }
    for (;;) {
        char key[16], val[CONTROL_ID_MAX + 1];
        ws(&j);
        int k = jstring(&j, key, sizeof(key));
        if (k == -1)
            goto bad_json;
        char *dst = k ? NULL : !strcmp(key, "id") ? out->id
                           : !strcmp(key, "origin") ? out->origin : NULL;
        if (!dst) {
            snprintf(why, whylen, "unknown key%s%s%s (expected id, origin)", k ? "" : " '",
                     k ? "" : key, k ? "" : "'");
            return CONTROL_E_BAD_FIELD;
        }
        if (dst[0]) {
            snprintf(why, whylen, "key '%s' given twice", key);
            return CONTROL_E_BAD_FIELD;
        }
        ws(&j);
        if (j.p >= j.end || *j.p++ != ':')
            goto bad_json;
        ws(&j);
        if (j.p >= j.end)
            goto bad_json;
        if (*j.p != '"') {
            snprintf(why, whylen, "%s: expected a string", key);
            return CONTROL_E_BAD_FIELD;
        }
        int s = jstring(&j, val, sizeof(val));
        if (s == -1)
            goto bad_json;
        if (s) {
            snprintf(why, whylen, "%s: expected 1-%d printable ASCII characters", key,
                     CONTROL_ID_MAX);
            return CONTROL_E_BAD_FIELD;
        }
        memcpy(dst, val, sizeof(val));
        ws(&j);
        if (j.p >= j.end)
            goto bad_json;
        if (*j.p == ',') {
            j.p++;
            continue;
        }
        if (*j.p++ != '}')
            goto bad_json;
        break;
    }
tail:
    ws(&j);
    if (j.p == j.end)
        return CONTROL_OK;
bad_json:
    snprintf(why, whylen, "the body is not one JSON object of string values (at byte %zu)",
             (size_t)(j.p - (const unsigned char *)body));
    return CONTROL_E_BAD_JSON;
}

control_err control_cmd_decode(const char *verb, const void *body, size_t len, control_cmd *out,
                               char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    why[0] = 0;
    /* The body first, so that even an unknown verb's reply carries the
     * id a 3.1.1 operator matches replies by. */
    control_err e = decode_body(body, len, out, why, whylen);
    int v = 0;
    while (v < CONTROL_N_VERBS && strcmp(verb, verb_names[v]))
        v++;
    if (v == CONTROL_N_VERBS) {
        snprintf(why, whylen, "no such verb (expected status, snapshot or upload)");
        return CONTROL_E_UNKNOWN_VERB;
    }
    out->verb = (control_verb)v;
    return e;
}

/* s as a JSON string's content: printable ASCII kept (" and \ escaped),
 * anything else '?', at most max bytes of s. */
static void put_str(jcur *c, const char *s, size_t max)
{
    put(c, "\"");
    for (size_t i = 0; s[i] && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            put(c, "\\%c", ch);
        else
            put(c, "%c", ch >= 0x20 && ch <= 0x7e ? ch : '?');
    }
    put(c, "\"");
}

int control_reply_json(const char *device_id, const char *verb, const char *id, control_err err,
                       const char *message, const char *extra, char *buf, size_t cap,
                       size_t *len)
{
    jcur c = {.buf = buf, .cap = cap};
    *len = 0;
    if (!cap)
        return -ENOSPC;
    put(&c, "{\"v\":%d,\"device_id\":\"%s\",\"verb\":", CONTROL_FORMAT_VERSION, device_id);
    put_str(&c, verb, 48);
    if (id && id[0]) {
        put(&c, ",\"id\":");
        put_str(&c, id, CONTROL_ID_MAX);
    }
    put(&c, ",\"ok\":%s", err == CONTROL_OK ? "true" : "false");
    if (err != CONTROL_OK) {
        put(&c, ",\"error\":\"%s\",\"message\":", control_err_name(err));
        put_str(&c, message ? message : "", 300); /* worst case, all escaped: ~980 bytes */
    } else if (extra) {
        put(&c, "%s", extra);
    }
    put(&c, "}");
    if (c.full) {
        buf[0] = 0;
        return -ENOSPC;
    }
    *len = c.n;
    return 0;
}
