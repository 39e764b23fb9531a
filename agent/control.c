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
