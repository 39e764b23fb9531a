/*
 * budget.h -- the flash budget as pure decisions: which snapshots to delete
 * so that a batch fits, or that it must wait; which uploaded snapshots
 * rolling retention removes. No I/O: agent.c gathers the figures, asks
 * here, and carries the answer out (deleting in the order given).
 *
 * The rules (README, "One flash budget"):
 *   - storage.max_disk bounds WAL + SSTs + snapshots + a reserve for the
 *     small files; storage.min_free is a floor for the file system;
 *   - when a batch would not fit, the oldest uploaded snapshots go first;
 *     then, with storage.on_full: drop_oldest, the oldest ones not uploaded
 *     (sealed, uploading, failed), which are lost; snapshots still being
 *     sealed are never dropped; with reject_new the batch waits instead;
 *   - snapshot.mode: on_trigger makes the rolling snapshots a ring: they
 *     are never uploaded and expire, oldest first, in the first pass with
 *     the uploaded ones (capture windows are kept to be uploaded);
 *   - a graceful stop may pass max_disk (what the broker already handed
 *     over is stored) but never min_free;
 *   - the newest rolling snapshot stays while it holds the only record of
 *     the de-duplication table (between a seal and the table's save in the
 *     live store): dropping it then would leave an older table to a restart.
 */
#ifndef EMBEDDB_AGENT_BUDGET_H
#define EMBEDDB_AGENT_BUDGET_H

#include "config.h" /* AGENT_SMALL_FILES_RESERVE: room kept for the small files */

#include "embeddb/snapshot.h"

#include <stddef.h>
#include <stdint.h>

typedef enum budget_action {
    BUDGET_KEEP = 0,
    BUDGET_DROP,        /* uploaded: deleting it loses nothing */
    BUDGET_DROP_LOST,   /* not uploaded: deleting it loses its tensors */
    BUDGET_EXPIRE,      /* ring: a rolling snapshot that is never uploaded
                           (snapshot.mode: on_trigger) leaves the ring */
} budget_action;

typedef struct budget_in {
    uint64_t max_disk;         /* 0: no limit */
    uint64_t min_free;
    int drop_oldest;           /* storage.on_full == drop_oldest */
    int ring;                  /* snapshot.mode: on_trigger: rolling snapshots
                                  (not captures) expire oldest first, with
                                  the uploaded ones */
    int stopping;              /* a graceful stop: max_disk yields */
    int keep_newest_rolling;   /* the newest rolling snapshot (not a capture)
                                  holds the only record of the de-duplication
                                  table on flash (sealed, not saved again
                                  yet): it stays whatever its state */
    uint64_t used;             /* bytes counted against max_disk besides the
                                  snapshots listed (live store, dot-dirs;
                                  the reserve is added here) */
    uint64_t avail;            /* free on the file system; UINT64_MAX unknown */
    uint64_t need;             /* the batch's cost (ts_batch_cost) */
    const snap_info *snaps;    /* oldest first (snap_list), borrowed */
    size_t n;
} budget_in;

/* Fills act[0..n) and returns 1 when the batch fits once the snapshots
 * marked are deleted, or 0 when it must wait (act then marks nothing). */
int budget_plan(const budget_in *in, budget_action *act);

/* Rolling retention: marks BUDGET_DROP on the uploaded snapshots beyond
 * the newest `keep`. */
void budget_retention(const snap_info *snaps, size_t n, uint64_t keep, budget_action *act);

#endif
