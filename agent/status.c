/*
 * status.c -- agent.status and systemd's STATUS= line (contract in
 * status.h). The text is built with a sticky-overflow cursor: a status too
 * long for its buffer is cut at a line, never written half-formed.
 */
#include "status.h"

#include "embeddb/agent_status.h"
#include "embeddb/plat_service.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

typedef struct cursor {
    char buf[4096];
    size_t n;
    int full;
} cursor;

static void put(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(cursor *c, const char *fmt, ...)
{
    va_list ap;
    if (c->full)
        return;
    va_start(ap, fmt);
    int k = vsnprintf(c->buf + c->n, sizeof(c->buf) - c->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof(c->buf) - c->n) {
        c->full = 1;
        c->buf[c->n] = 0; /* drop the cut line */
        return;
    }
    c->n += (size_t)k;
}

void status_write(plat_vfs *vfs, const char *dir, const char *state, const char *device_id,
                  const agent_counts *a, const ingest_counters *c, const ts_stats *st,
                  const upload_counters *u)
{
    cursor k = {.n = 0};
    char line[256];
    uint64_t rejected = 0;
    put(&k, "state=%s\ndevice_id=%s\npid=%d\nconnected=%d\nsubscribed=%d\nreceived=%" PRIu64
        "\nstored=%" PRIu64 "\nbatches=%" PRIu64 "\nbytes_stored=%" PRIu64 "\npending=%zu"
        "\ncommit_failures=%" PRIu64 "\nreconnects=%" PRIu64 "\nconnect_failures=%" PRIu64
        "\nunmatched=%" PRIu64 "\nmaybe_duplicated=%" PRIu64 "\n",
        state, device_id, plat_getpid(), c->connected, c->subscribed, c->received, a->stored,
        a->batches, a->bytes_stored, c->held, a->commit_failures,
        c->connects > 0 ? c->connects - 1 : 0, c->connect_failures, c->unmatched,
        c->maybe_duplicated);
    for (int e = 1; e < PAYLOAD_N_ERRS; e++) {
        put(&k, "rejected_%s=%" PRIu64 "\n", payload_err_name((payload_err)e), c->rejected[e]);
        rejected += c->rejected[e];
    }
    if (st)
        put(&k, "fsyncs=%" PRIu64 "\nflushes=%" PRIu64 "\nstore_bytes=%" PRIu64 "\n",
            st->fsyncs, st->flushes, st->disk_bytes);
    put(&k, "snapshots_expired=%" PRIu64 "\ntensors_expired=%" PRIu64 "\nbytes_expired=%" PRIu64
        "\n", a->snapshots_expired, a->tensors_expired, a->bytes_expired);
    put(&k, "snapshot_bytes=%" PRIu64 "\nsnapshots_sealed=%" PRIu64 "\nsnapshots_dropped=%" PRIu64
        "\ntensors_dropped=%" PRIu64 "\nbytes_dropped=%" PRIu64 "\nbudget_refusals=%" PRIu64 "\n",
        a->snap_bytes, a->snapshots_sealed, a->snapshots_dropped, a->tensors_dropped,
        a->bytes_dropped, a->budget_refusals);
    if (u)
        put(&k, "snapshots_uploaded=%" PRIu64 "\nsnapshots_failed=%" PRIu64
            "\nupload_retries=%" PRIu64 "\nbytes_uploaded=%" PRIu64 "\nseals_set_aside=%" PRIu64
            "\nuploading=%s\n",
            u->uploaded, u->failed, u->retries, u->bytes_uploaded, u->seal_failures,
            u->current[0] ? u->current : "-");
    agent_status_write(vfs, dir, k.buf, k.n);
    snprintf(line, sizeof(line), "STATUS=%s: received %" PRIu64 ", stored %" PRIu64
             ", rejected %" PRIu64 ", pending %zu", state, c->received, a->stored, rejected,
             c->held);
    plat_notify(line);
}
