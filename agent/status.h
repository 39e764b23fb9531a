/*
 * status.h -- what the agent tells about itself: agent.status in the store
 * directory (written through embeddb/agent_status.h, every key in
 * snapshot/FORMAT.md) and the STATUS= line systemd shows. The main thread
 * calls status_write about once a second and at the stop.
 */
#ifndef EMBEDDB_AGENT_STATUS_WRITER_H
#define EMBEDDB_AGENT_STATUS_WRITER_H

#include "ingest.h"
#include "upload.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stdint.h>

/* The main thread's own counters (ingest and upload keep theirs). */
typedef struct agent_counts {
    uint64_t stored, batches, bytes_stored, commit_failures;
    uint64_t snap_bytes;       /* bytes under snapshots/ */
    uint64_t snapshots_sealed, snapshots_dropped, tensors_dropped, bytes_dropped;
    uint64_t snapshots_expired, tensors_expired, bytes_expired; /* left the ring (on_trigger) */
    uint64_t budget_refusals;
    uint64_t http_stored, http_bytes; /* stored through the HTTP console */
} agent_counts;

/* Writes DIR/agent.status from the counters (st and u may be NULL: a store
 * not open, no upload worker) and sends systemd the summary line. Failures
 * to write are ignored: the file is a window, not data. */
void status_write(plat_vfs *vfs, const char *dir, const char *state, const char *device_id,
                  const agent_counts *a, const ingest_counters *c, const ts_stats *st,
                  const upload_counters *u);

#endif
