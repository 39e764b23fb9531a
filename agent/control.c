/*
 * control.c -- topics and JSON documents of fleet control (control.h; the
 * formats are in agent/CONTROL.md). Documents are built with a
 * sticky-overflow cursor: one that does not fit is refused whole, never
 * published cut.
 */
#include "control.h"

#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static const char *const verb_names[CONTROL_N_VERBS] = {"status", "snapshot", "upload",
                                                         "capture"};
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

/* An integer at j->p: optional '-', digits, no fraction or exponent.
 * 0; -1 not JSON; -2 JSON, but not an integer in int64_t. */
static int jint(jin *j, int64_t *out)
{
    char num[24];
    size_t n = 0;
    int neg = j->p < j->end && *j->p == '-';
    if (neg)
        j->p++;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (n < sizeof(num) - 1)
            num[n] = (char)*j->p;
        n++;
        j->p++;
    }
    if (!n)
        return -1;
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return -2;
    if (n > 19)
        return -2;
    num[n] = 0;
    errno = 0;
    long long v = strtoll(num, NULL, 10);
    if (errno)
        return -2;
    *out = neg ? -v : v;
    return 0;
}

/* The keys a body may hold; a bit each, to refuse repeats. */
enum { K_ID, K_ORIGIN, K_LABEL, K_TOPICS, K_PRE, K_POST, K_FROM, K_TO, K_N };
static const char *const key_names[K_N] = {"id", "origin", "label", "topics",
                                           "pre", "post", "from", "to"};

/* A JSON value that is a string of 1..cap-1 printable ASCII bytes into out:
 * CONTROL_OK, CONTROL_E_BAD_JSON, or CONTROL_E_BAD_FIELD with why. */
static control_err string_value(jin *j, const char *key, char *out, size_t cap, char *why,
                                size_t whylen)
{
    if (j->p >= j->end || !*j->p || !strchr("\"[{-0123456789tfn", *j->p))
        return CONTROL_E_BAD_JSON; /* no JSON value starts so */
    if (*j->p != '"') {
        snprintf(why, whylen, "%s: expected a string", key);
        return CONTROL_E_BAD_FIELD;
    }
    int s = jstring(j, out, cap);
    if (s == -1)
        return CONTROL_E_BAD_JSON;
    if (s) {
        snprintf(why, whylen, "%s: expected 1-%zu printable ASCII characters", key, cap - 1);
        return CONTROL_E_BAD_FIELD;
    }
    return CONTROL_OK;
}

/* "topics": an array of 1..SNAP_FILTERS_MAX MQTT topic filters. */
static control_err topics_value(jin *j, control_capture *cap, char *why, size_t whylen)
{
    char buf[160];
    if (j->p >= j->end)
        return CONTROL_E_BAD_JSON;
    if (*j->p != '[') {
        snprintf(why, whylen, "topics: expected an array of topic filters");
        return CONTROL_E_BAD_FIELD;
    }
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == ']') {
        snprintf(why, whylen, "topics: at least one topic filter");
        return CONTROL_E_BAD_FIELD;
    }
    for (;;) {
        ws(j);
        if (cap->n_filters == SNAP_FILTERS_MAX) {
            snprintf(why, whylen, "topics: at most %d topic filters", SNAP_FILTERS_MAX);
            return CONTROL_E_BAD_FIELD;
        }
        char *f = cap->filters[cap->n_filters];
        control_err e = string_value(j, "topics", f, SNAP_FILTER_MAX + 1, why, whylen);
        if (e)
            return e;
        const char *bad = config_topic_problem(f, buf, sizeof(buf));
        if (bad) {
            snprintf(why, whylen, "topics: '%.48s': %s", f, bad);
            return CONTROL_E_BAD_FIELD;
        }
        cap->n_filters++;
        ws(j);
        if (j->p >= j->end)
            return CONTROL_E_BAD_JSON;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != ']')
            return CONTROL_E_BAD_JSON;
        return CONTROL_OK;
    }
}

/* One key's value, at j->p after the ':'. */
static control_err value(jin *j, int k, control_cmd *out, char *why, size_t whylen)
{
    control_capture *cap = &out->cap;
    char text[32];
    control_err e;
    switch (k) {
    case K_ID:
        return string_value(j, "id", out->id, sizeof(out->id), why, whylen);
    case K_ORIGIN:
        return string_value(j, "origin", out->origin, sizeof(out->origin), why, whylen);
    case K_LABEL:
        if ((e = string_value(j, "label", cap->label, sizeof(cap->label), why, whylen)))
            return e;
        if (!snap_device_id_ok(cap->label)) {
            snprintf(why, whylen, "label: expected 1-%d of A-Z a-z 0-9 . _ - (not starting "
                     "with '.')", SNAP_LABEL_MAX);
            return CONTROL_E_BAD_FIELD;
        }
        return CONTROL_OK;
    case K_TOPICS:
        return topics_value(j, cap, why, whylen);
    case K_PRE:
    case K_POST: {
        uint64_t ms = 0, max = k == K_PRE ? CONTROL_PRE_MAX_MS : CONTROL_POST_MAX_MS;
        if ((e = string_value(j, key_names[k], text, sizeof(text), why, whylen)))
            return e;
        if (config_parse_duration_ms(text, &ms) || ms > max) {
            snprintf(why, whylen, "%s: expected a duration with a unit (500ms, 30s, 2m) of at "
                     "most %" PRIu64 "s", key_names[k], max / 1000);
            return CONTROL_E_BAD_FIELD;
        }
        *(k == K_PRE ? &cap->pre_ms : &cap->post_ms) = ms;
        return CONTROL_OK;
    }
    default: {
        int r = j->p < j->end ? jint(j, k == K_FROM ? &cap->from_ns : &cap->to_ns) : -1;
        if (r == -1 && j->p < j->end && *j->p != '"' && *j->p != '[' && *j->p != '{')
            return CONTROL_E_BAD_JSON;
        if (r) {
            snprintf(why, whylen, "%s: expected an integer, ns since the Unix epoch",
                     key_names[k]);
            return r == -1 && j->p >= j->end ? CONTROL_E_BAD_JSON : CONTROL_E_BAD_FIELD;
        }
        return CONTROL_OK;
    }
    }
}

/* The capture verb's rules across keys (control_capture). */
static control_err capture_check(control_capture *c, unsigned seen, char *why,
                                 size_t whylen)
{
    unsigned rel = 1u << K_PRE | 1u << K_POST, abs = 1u << K_FROM | 1u << K_TO;
    if (!(seen & 1u << K_LABEL) || !(seen & 1u << K_TOPICS)) {
        snprintf(why, whylen, "capture needs a label and topics");
        return CONTROL_E_BAD_FIELD;
    }
    if ((seen & rel) && (seen & abs)) {
        snprintf(why, whylen, "give pre/post or from/to, not both");
        return CONTROL_E_BAD_FIELD;
    }
    c->absolute = (seen & abs) != 0;
    if (seen & abs) {
        if ((seen & abs) != abs || c->from_ns >= c->to_ns) {
            snprintf(why, whylen, "from and to: both, with from < to");
            return CONTROL_E_BAD_FIELD;
        }
        if ((uint64_t)c->to_ns - (uint64_t)c->from_ns >
            (CONTROL_PRE_MAX_MS + CONTROL_POST_MAX_MS) * 1000000) {
            snprintf(why, whylen, "from..to spans more than %llus",
                     (CONTROL_PRE_MAX_MS + CONTROL_POST_MAX_MS) / 1000);
            return CONTROL_E_BAD_FIELD;
        }
        return CONTROL_OK;
    }
    if (c->pre_ms + c->post_ms == 0) {
        snprintf(why, whylen, "an empty window: give pre and/or post (or from/to)");
        return CONTROL_E_BAD_FIELD;
    }
    return CONTROL_OK;
}

/* The body: every verb takes id and origin; capture its own keys too. */
static control_err decode_body(const void *body, size_t len, int capture, control_cmd *out,
                               char *why, size_t whylen)
{
    jin j = {.p = body, .end = (const unsigned char *)body + len};
    unsigned seen = 0;
    control_err e;
    if (len > CONTROL_CMD_MAX) {
        snprintf(why, whylen, "a %zu-byte body; at most %d", len, CONTROL_CMD_MAX);
        return CONTROL_E_TOO_LARGE;
    }
    ws(&j);
    if (j.p == j.end)
        goto done; /* an empty body is {} */
    if (*j.p++ != '{')
        goto bad_json;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
        goto tail;
    }
    for (;;) {
        char key[16];
        int k = K_N;
        ws(&j);
        int r = jstring(&j, key, sizeof(key));
        if (r == -1)
            goto bad_json;
        if (!r)
            for (k = 0; k < K_N && strcmp(key, key_names[k]); k++)
                ;
        if (k == K_N || (k > K_ORIGIN && !capture)) {
            snprintf(why, whylen, "unknown key%s%s%s (expected id, origin%s)", r ? "" : " '",
                     r ? "" : key, r ? "" : "'",
                     capture ? ", label, topics, pre, post, from, to" : "");
            return CONTROL_E_BAD_FIELD;
        }
        if (seen & 1u << k) {
            snprintf(why, whylen, "key '%s' given twice", key);
            return CONTROL_E_BAD_FIELD;
        }
        seen |= 1u << k;
        ws(&j);
        if (j.p >= j.end || *j.p++ != ':')
            goto bad_json;
        ws(&j);
        if ((e = value(&j, k, out, why, whylen)) == CONTROL_E_BAD_JSON)
            goto bad_json;
        if (e)
            return e;
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
    if (j.p != j.end)
        goto bad_json;
done:
    return capture ? capture_check(&out->cap, seen, why, whylen) : CONTROL_OK;
bad_json:
    snprintf(why, whylen, "the body is not one JSON object of the documented shape (at byte "
             "%zu)", (size_t)(j.p - (const unsigned char *)body));
    return CONTROL_E_BAD_JSON;
}

control_err control_cmd_decode(const char *verb, const void *body, size_t len, control_cmd *out,
                               char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    why[0] = 0;
    int v = 0;
    while (v < CONTROL_N_VERBS && strcmp(verb, verb_names[v]))
        v++;
    /* The body first, so that even an unknown verb's reply carries the
     * id a 3.1.1 operator matches replies by. */
    control_err e = decode_body(body, len, v == CONTROL_VERB_CAPTURE, out, why, whylen);
    if (v == CONTROL_N_VERBS) {
        snprintf(why, whylen, "no such verb (expected status, snapshot, upload or capture)");
        return CONTROL_E_UNKNOWN_VERB;
    }
    out->verb = (control_verb)v;
    return e;
}

int control_trigger_window(int waiting, int64_t first_ns, int64_t last_to, int64_t t_ns,
                           uint64_t pre_ms, uint64_t post_ms, int64_t *from, int64_t *to)
{
    int64_t end = t_ns + (int64_t)post_ms * 1000000;
    if (waiting) {
        int64_t cap = first_ns + (int64_t)CONTROL_POST_MAX_MS * 1000000;
        if (end > cap)
            end = cap;
        if (end > *to)
            *to = end;
        return 1;
    }
    int64_t start = t_ns - (int64_t)pre_ms * 1000000;
    if (start < last_to)
        start = last_to;
    if (start >= end)
        return -1;
    *from = start;
    *to = end;
    return 0;
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
