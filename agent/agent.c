/*
 * agent.c -- the daemon's main loop: takes decoded messages into the batch
 * (batch.h), commits it to the engine, seals snapshots and keeps the flash
 * budget (budget.h), reports to systemd and the status file, handles
 * signals.
 *
 * Threads: libmosquitto's network thread fills ingest's queue; this thread
 * does everything else, so a slow commit (fdatasync) never stalls MQTT
 * keepalives. The upload worker (upload.c) finishes seals and uploads.
 *
 * Memory: the batch (one) and the ingest queue (one batch's worth) are all
 * this process holds of messages the broker considers delivered; a stuck
 * commit stops the taking, the queue fills, the network thread stops
 * reading and the broker keeps the rest. A kill -9 loses at most those two
 * batches (README, "Durability").
 *
 * Keys are new by construction: the arrival counter continues from the
 * store's next sequence number, which is raised at start past every seq
 * the snapshots hold (snap_seq_floor, ts_raise_seq), and the store is
 * opened insert_only, so a key that somehow existed is refused
 * (TS_EEXIST), never replaced.
 *
 * De-duplication (watermark.h): before a commit the batch drops messages
 * whose publisher id and message id are already stored, and a batch that
 * adds ids carries the whole table as one more tensor in the same
 * ts_save_batch, so the table on flash is always that of the tensors on
 * flash. The durable watermark is only queued for the network thread.
 *
 * Failure policy: a batch that cannot be committed (full disk, failed
 * fsync) is kept and retried every second, loudly; a store poisoned by a
 * failed fsync is reopened (recovery) before the retry. A tensor the store
 * refuses is dropped from the batch alone and counted; it never blocks the
 * others.
 */
#include "agent.h"

#include "batch.h"
#include "budget.h"
#include "control.h"
#include "ingest.h"
#include "log.h"
#include "status.h"
#include "upload.h"
#include "watermark.h"
#include "wm_store.h"

#include "embeddb/console.h"
#include "embeddb/snapshot.h"

#include "embeddb/plat.h"
#include "embeddb/plat_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_PERIOD_MS 1000
#define RETRY_MS 1000
#define IDLE_WAIT_MS 100    /* the loop's longest wait: signals are seen this fast */
#define INFLIGHT_ROOM 32    /* messages held beyond two batches (agent_run) */
#define CAPTURES_MAX 4      /* capture windows waiting for their end (busy beyond) */
#define CAPTURE_GRACE_MS 5000 /* past a window's end, how long it waits for the
                                 tensors that arrived inside it to be stored */

/* A capture command waiting for the end of its window; its reply goes out
 * when it is sealed. */
typedef struct capture_job {
    int used;
    control_capture cap;
    int64_t trigger_ns, from_ns, to_ns;
    uint64_t due_ms;           /* monotonic: when to_ns will have passed */
    char id[CONTROL_ID_MAX + 1], origin[CONTROL_ID_MAX + 1];
    char *topic, *response_topic; /* the command's topic; MQTT 5 response topic or NULL */
    uint8_t *corr;
    size_t corr_len;
} capture_job;

typedef struct agent {
    agent_config cfg;
    plat_vfs *vfs;            /* every file call of this thread */
    ts_store *store;
    ingest *in;
    batch b;
    uint64_t next_key;
    agent_counts n;           /* counters beyond ingest's and upload's (status.h) */
    int ready;
    /* snapshots and the flash budget (retention runs on this thread) */
    char root[4096];
    uploader *up;
    uint64_t last_seal_ms;
    log_limit budget_lim;
    int stopping;              /* graceful stop: max_disk yields to "lose nothing" */
    char last_snap[SNAP_NAME_MAX]; /* the last seal's name, or why it failed */
    char last_err[1024];
    console *web;              /* the HTTP console (http: section), or NULL */
    console_hooks hooks;
    /* fleet control (control.h): the retained status topic, "" when off */
    char status_topic[CONTROL_TOPIC_MAX];
    uint64_t started_ms, last_pub_ms;
    /* commands: the times of the last command_rate ones (a ring), the
     * outcome of the last seal for the snapshot verb */
    uint64_t *cmd_times;
    size_t cmd_next;
    log_limit cmd_lim;
    char last_seal[SNAP_NAME_MAX];
    int last_seal_rc;
    capture_job captures[CAPTURES_MAX];
    /* capture.triggers: one waiting window each, and the end of the last
     * one sealed (the next never reaches back before it) */
    capture_job trig_jobs[AGENT_TRIGGERS_MAX];
    int64_t trig_last_to[AGENT_TRIGGERS_MAX];
    /* the durable watermark and de-duplication (watermark.h): the table,
     * the topic it is published on ("" when off), the commit's tensors */
    watermark wm;
    char wm_topic[CONTROL_TOPIC_MAX];
    uint64_t last_wm_ms;
    int wm_save_due;          /* a seal took the records: save the table again */
    const ts_tensor **all;
    size_t all_cap;
} agent;

/* Raises the store's seqs past every seq a snapshot holds, so keys and
 * snapshot names never repeat even if the store's count were wrong. */
static void apply_seq_floor(agent *a)
{
    char err[1024];
    uint64_t floor = 1;
    ts_stats st;
    if (snap_seq_floor(a->vfs, a->root, &floor, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "reading the snapshots' sequence numbers: %s", err);
        return;
    }
    ts_get_stats(a->store, &st);
    if (floor <= st.next_seq)
        return;
    agent_log(LOG_LEVEL_ERROR, "the store's next sequence number %" PRIu64 " is below what its "
              "snapshots hold (%" PRIu64 "); raising it", st.next_seq, floor);
    if (ts_raise_seq(a->store, floor))
        agent_log(LOG_LEVEL_ERROR, "raising the sequence numbers: %s", ts_errmsg(a->store));
}

/* Opens the store (insert_only) and makes sure the key counter is at or
 * above its next sequence number. */
static int open_store(agent *a)
{
    ts_options o;
    char err[1024];
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.insert_only = 1;
    o.memtable_max = a->cfg.storage.memtable_max;
    o.sync = a->cfg.storage.fsync;
    o.vfs = a->vfs;
    int rc = ts_open(a->cfg.storage.dir, &o, &a->store, err, sizeof(err));
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "cannot open the store: %s", err);
        return rc;
    }
    if (ts_errmsg(a->store)[0])
        agent_log(LOG_LEVEL_WARNING, "store recovery: %s", ts_errmsg(a->store));
    return 0;
}

/* Startup and after a failed fsync: finish half-done seals, keep seqs
 * above the snapshots', and move the key counter up to the store's. */
static void recover_snapshots(agent *a)
{
    char err[1024];
    size_t n_seals = 0;
    ts_stats st;
    if (snap_recover(a->vfs, a->store, a->root, &n_seals, err, sizeof(err)))
        agent_log(LOG_LEVEL_ERROR, "snapshot recovery: %s (continuing; the others are fine)",
                  err);
    apply_seq_floor(a);
    ts_get_stats(a->store, &st);
    if (st.next_seq > a->next_key)
        a->next_key = st.next_seq;
    if (n_seals && a->up)
        upload_kick(a->up);
}

/* Saves the durable table alone in the live store (after a seal moved the
 * records out with the snapshot; never inside commit, whose keys are
 * counted already). 0 when there is nothing to save. */
static int wm_save(agent *a)
{
    int rc = wm_store_save(&a->wm, a->store, &a->next_key);
    if (rc)
        agent_log(LOG_LEVEL_ERROR, "saving the de-duplication table: %s", ts_errmsg(a->store));
    return rc;
}

/* At start: the table of the newest record (wm_store_recover). */
static void wm_recover(agent *a)
{
    char from[SNAP_NAME_MAX + 32], err[1024];
    if (!a->cfg.control.dedup_publishers)
        return;
    if (wm_store_recover(&a->wm, a->vfs, a->store, a->root, &a->next_key, from, sizeof(from),
                         err, sizeof(err)))
        agent_log(LOG_LEVEL_ERROR, "reading the de-duplication table: %s; starting with %s "
                  "(republished messages may be stored twice)", err,
                  a->wm.n ? "what was read" : "an empty table");
    else if (from[0])
        agent_log(LOG_LEVEL_INFO, "de-duplication table of %zu publisher(s) from %s", a->wm.n,
                  from);
}

/* agent.status and systemd's STATUS= line (status.c). */
static void write_status(agent *a, const char *state)
{
    ingest_counters c;
    upload_counters u;
    ts_stats st;
    ingest_counters_get(a->in, &c);
    if (a->store)
        ts_get_stats(a->store, &st);
    if (a->up)
        upload_counters_get(a->up, &u);
    status_write(a->vfs, a->cfg.storage.dir, state, a->cfg.device_id, &a->n, &c,
                 a->store ? &st : NULL, a->up ? &u : NULL);
}

static snap_info *list_snapshots(agent *a, size_t *n, uint64_t *pending);

/* The retained status document (control.h) for the broker: built here,
 * published by the network thread. Lists the snapshots (one directory
 * read), so it runs every control.status_interval, not every second. */
static void publish_status(agent *a)
{
    char doc[CONTROL_STATUS_MAX];
    size_t len = 0, n = 0;
    uint64_t pending = 0, avail = UINT64_MAX, total = 0;
    ingest_counters c;
    ts_stats st = {0};
    control_status s = {.device_id = a->cfg.device_id, .online = 1, .time_ns = plat_now_ns(),
                        .uptime_ms = plat_mono_ms() - a->started_ms, .in = &c, .a = &a->n,
                        .flash_limit = a->cfg.storage.max_disk};
    a->last_pub_ms = plat_mono_ms();
    if (!a->status_topic[0])
        return;
    ingest_counters_get(a->in, &c);
    if (a->store)
        ts_get_stats(a->store, &st);
    snap_info *v = list_snapshots(a, &n, &pending);
    for (size_t i = 0; i < n; i++) {
        s.snapshots[v[i].state <= SNAP_SEALING ? v[i].state : SNAP_FAILED]++;
        if (v[i].state == SNAP_SEALED || v[i].state == SNAP_UPLOADING ||
            v[i].state == SNAP_SEALING)
            s.backlog_bytes += v[i].disk_bytes;
    }
    free(v);
    s.flash_used = st.disk_bytes + a->n.snap_bytes;
    if (a->vfs->statfs(a->vfs, a->cfg.storage.dir, &avail, &total))
        avail = UINT64_MAX;
    s.flash_free = avail;
    if (control_status_json(&s, doc, sizeof(doc), &len) ||
        ingest_publish(a->in, a->status_topic, doc, len, 1))
        agent_log(LOG_LEVEL_WARNING, "status on %s not published", a->status_topic);
}

/* The Last Will (offline, "lost") and a graceful stop's goodbye
 * (offline, "stopped"), both retained on the status topic. */
static int set_will(agent *a, char *err, size_t errlen)
{
    char will[256], bye[256];
    size_t wl = 0, bl = 0;
    control_status s = {.device_id = a->cfg.device_id, .online = 0, .reason = "lost"};
    if (!a->cfg.control.status_interval_ms)
        return 0;
    if (control_topic(a->status_topic, sizeof(a->status_topic), a->cfg.control.prefix,
                      a->cfg.device_id, "status")) {
        snprintf(err, errlen, "control.prefix: the status topic is too long");
        return -ENAMETOOLONG;
    }
    int rc = control_status_json(&s, will, sizeof(will), &wl);
    s.reason = "stopped";
    if (!rc)
        rc = control_status_json(&s, bye, sizeof(bye), &bl);
    if (!rc)
        rc = ingest_set_will(a->in, a->status_topic, will, wl, bye, bl);
    if (rc)
        snprintf(err, errlen, "setting the MQTT Last Will on %s: %s", a->status_topic,
                 strerror(-rc));
    return rc;
}

/* Commands (control.commands): subscribes to the board's and the fleet's
 * command filters. */
static int set_commands(agent *a, char *err, size_t errlen)
{
    char own[CONTROL_TOPIC_MAX], fleet[CONTROL_TOPIC_MAX];
    if (!a->cfg.control.commands)
        return 0;
    if (control_topic(own, sizeof(own), a->cfg.control.prefix, a->cfg.device_id, "cmd/+") ||
        control_topic(fleet, sizeof(fleet), a->cfg.control.prefix, "fleet", "cmd/+") ||
        !(a->cmd_times = calloc(a->cfg.control.command_rate, sizeof(*a->cmd_times))) ||
        ingest_set_commands(a->in, own, fleet)) {
        snprintf(err, errlen, "setting up commands: out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* After a failed fsync the store is poisoned: reopen it (recovery decides
 * what is on disk) and let snapshot recovery finish any half-done seal. */
static void reopen_store(agent *a)
{
    ts_close(a->store);
    a->store = NULL;
    if (open_store(a))
        return;
    recover_snapshots(a);
}

/* Seals a snapshot of everything stored so far and wakes the worker, which
 * hashes and uploads it. `why` names the trigger in the log. 0 (its name in
 * last_snap), TS_ENOTFOUND when nothing was stored since the last one, or
 * another code (why in last_err). */
static int seal(agent *a, const char *why)
{
    char *err = a->last_err, *name = a->last_snap;
    ts_checkpoint_info info;
    a->last_seal_ms = plat_mono_ms();
    a->last_seal[0] = 0;
    a->last_seal_rc = -EAGAIN;
    if (!a->store) {
        snprintf(err, sizeof(a->last_err), "the store is closed");
        return -EAGAIN;
    }
    int rc = snap_begin(a->vfs, a->store, a->root, a->cfg.device_id, name,
                        sizeof(a->last_snap), &info, err, sizeof(a->last_err));
    a->last_seal_rc = rc;
    if (rc == TS_ENOTFOUND) {
        agent_log(LOG_LEVEL_INFO, "snapshot (%s): nothing stored since the last one", why);
        upload_kick(a->up); /* an operator's request also means "look again" */
        return rc;
    }
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "snapshot (%s) failed: %s; the data stays in the store", why,
                  err);
        reopen_store(a);
        return rc;
    }
    a->n.snapshots_sealed++;
    a->n.snap_bytes += info.bytes;
    a->wm_save_due = 1; /* the records left with the snapshot (main loop) */
    snprintf(a->last_seal, sizeof(a->last_seal), "%s", name);
    agent_log(LOG_LEVEL_NOTICE, "snapshot %s sealed (%s): %" PRIu64 " SST file(s), %" PRIu64
              " bytes, seq %" PRIu64 "..%" PRIu64, name, why, info.n_files, info.bytes,
              info.min_seq, info.max_seq);
    upload_kick(a->up);
    return 0;
}

/* The snapshots on flash, oldest first; refreshes the cached byte count. */
static snap_info *list_snapshots(agent *a, size_t *n, uint64_t *pending)
{
    snap_info *v = NULL;
    *n = 0;
    *pending = 0;
    if (snap_list(a->vfs, a->root, &v, n, pending, 1)) {
        agent_log(LOG_LEVEL_ERROR, "listing %s failed; retention skipped", a->root);
        return NULL;
    }
    a->n.snap_bytes = *pending;
    for (size_t i = 0; i < *n; i++)
        a->n.snap_bytes += v[i].disk_bytes;
    return v;
}

/* Deletes snapshot v; `lost` (BUDGET_DROP_LOST) when it was never
 * uploaded, or expired from the ring (BUDGET_EXPIRE). 0 when gone. */
static int drop(agent *a, const snap_info *v, budget_action why)
{
    int lost = why == BUDGET_DROP_LOST;
    int rc = upload_delete(a->up, v->name, snap_delete);
    if (rc == -EBUSY) {
        /* Being uploaded: the worker lets go of it; the next tick tries again
         * (and re-lists, its state may have changed). */
        agent_log(LOG_LEVEL_DEBUG, "retention: %s is being uploaded; deleting it later",
                  v->name);
        return rc;
    }
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "retention: deleting %s/%s: %s", a->root, v->name,
                  ts_strerror(rc));
        return rc;
    }
    a->n.snap_bytes = a->n.snap_bytes > v->disk_bytes ? a->n.snap_bytes - v->disk_bytes : 0;
    if (why == BUDGET_EXPIRE) {
        a->n.snapshots_expired++;
        a->n.tensors_expired += v->tensors;
        a->n.bytes_expired += v->disk_bytes;
        agent_log(LOG_LEVEL_INFO, "ring: snapshot %s expired (%" PRIu64 " tensor(s), %" PRIu64
                  " bytes; snapshot.mode: on_trigger)", v->name, v->tensors, v->disk_bytes);
    } else if (lost) {
        a->n.snapshots_dropped++;
        a->n.tensors_dropped += v->tensors;
        a->n.bytes_dropped += v->disk_bytes;
        agent_log(LOG_LEVEL_ERROR, "storage full: dropped snapshot %s before it was uploaded (%s): "
                  "%" PRIu64 " tensor(s), %" PRIu64 " bytes LOST (storage.on_full: drop_oldest)",
                  v->name, snap_state_name(v->state), v->tensors, v->disk_bytes);
    } else {
        agent_log(LOG_LEVEL_INFO, "retention: removed uploaded snapshot %s", v->name);
    }
    return 0;
}

/* Carries out budget actions: uploaded and expired ones first, then lost
 * ones, oldest first; stops at the first deletion that fails. 0 when all
 * went, else that deletion's code (-EBUSY: being uploaded, try again
 * later). */
static int apply(agent *a, const snap_info *v, const budget_action *act, size_t n)
{
    int rc = 0;
    for (int lost = 0; lost < 2 && !rc; lost++)
        for (size_t i = 0; i < n && !rc; i++)
            if (act[i] != BUDGET_KEEP && (act[i] == BUDGET_DROP_LOST) == lost)
                rc = drop(a, &v[i], act[i]);
    return rc;
}

/* Rolling retention: only snapshot.keep uploaded snapshots stay. */
static void retention_tick(agent *a)
{
    size_t n = 0;
    uint64_t pending = 0;
    snap_info *v = list_snapshots(a, &n, &pending);
    budget_action *act = calloc(n ? n : 1, sizeof(*act));
    if (v && act) {
        budget_retention(v, n, a->cfg.snapshot.keep, act);
        apply(a, v, act, n);
    }
    free(act);
    free(v);
}

/* Makes room for `need` more bytes within storage.max_disk and above
 * storage.min_free (budget_plan decides, this carries it out). 0 when the
 * bytes fit, else -ENOSPC. */
static int free_room(agent *a, const ts_stats *st, uint64_t need)
{
    uint64_t avail = UINT64_MAX, total = 0, pending = 0;
    size_t n = 0;
    int fits = 0;
    if (a->vfs->statfs(a->vfs, a->cfg.storage.dir, &avail, &total))
        avail = UINT64_MAX; /* cannot tell: only max_disk applies */
    budget_in in = {.max_disk = a->cfg.storage.max_disk, .min_free = a->cfg.storage.min_free,
                    .drop_oldest = a->cfg.storage.on_full == AGENT_ON_FULL_DROP_OLDEST,
                    .ring = a->cfg.snapshot.on_trigger,
                    .keep_newest_rolling = a->wm_save_due && a->wm.n,
                    .stopping = a->stopping, .avail = avail, .need = need};
    /* Cheap check first, from the cached snapshot bytes. */
    in.used = st->disk_bytes + a->n.snap_bytes;
    if (budget_plan(&in, NULL))
        return 0;
    snap_info *v = list_snapshots(a, &n, &pending);
    budget_action *act = calloc(n ? n : 1, sizeof(*act));
    in.used = st->disk_bytes + pending;
    in.snaps = v;
    in.n = n;
    if (act && (v || !n) && budget_plan(&in, act) && apply(a, v, act, n) == 0)
        fits = 1;
    free(act);
    free(v);
    return fits ? 0 : -ENOSPC;
}

/* free_room for a commit: -ENOSPC when it must wait (the batch stays, the
 * queue fills and the broker holds what follows), counted and logged. */
static int make_room(agent *a, const ts_stats *st, uint64_t need)
{
    uint64_t avail = UINT64_MAX, total = 0;
    if (!free_room(a, st, need))
        return 0;
    if (a->vfs->statfs(a->vfs, a->cfg.storage.dir, &avail, &total))
        avail = UINT64_MAX;
    a->n.budget_refusals++;
    agent_log_limited(&a->budget_lim, 1, 10000, LOG_LEVEL_WARNING,
                      "storage full: %" PRIu64 " of storage.max_disk %" PRIu64 " bytes used, %"
                      PRIu64 " free (min_free %" PRIu64 "); new data waits until %s",
                      st->disk_bytes + a->n.snap_bytes, a->cfg.storage.max_disk,
                      avail == UINT64_MAX ? 0 : avail, a->cfg.storage.min_free,
                      a->cfg.storage.on_full == AGENT_ON_FULL_REJECT_NEW
                          ? "a snapshot is uploaded (storage.on_full: reject_new)"
                          : "space frees up (nothing left to drop)");
    return -ENOSPC;
}

/* Frees a message taken out of the batch unstored. */
static void forget(agent *a, ingest_msg *m)
{
    if (m)
        ingest_done(a->in, 1, m->t.data_len);
    ingest_msg_free(m);
}

/* Drops the members the store refuses (ts_batch_cost, the engine's own
 * check) from the batch, each counted and logged; 1 when one was dropped.
 * Ingest refuses these already: this is the last line, so that one tensor
 * never holds up the others. */
static int drop_refused(agent *a, const ts_tensor *const *t)
{
    int dropped = 0;
    for (size_t i = a->b.n; i-- > 0;) {
        uint64_t cost;
        int v = ts_batch_cost(&t[i], 1, &cost);
        if (!v)
            continue;
        agent_log(LOG_LEVEL_ERROR, "the store refused a tensor on %.200s: %s; dropped",
                  t[i]->name ? t[i]->name : "?", ts_strerror(v));
        ingest_count_rejected(a->in, v == TS_ENAMETOOLONG ? PAYLOAD_TOPIC_TOO_LONG
                                                          : PAYLOAD_INVALID);
        forget(a, batch_remove(&a->b, i));
        dropped = 1;
    }
    return dropped;
}

/* After TS_EEXIST: 1 when the store already holds this very batch (a
 * commit whose fsync was reported failed did reach the disk, and the store
 * was reopened), judged by its first tensor's name, time and size. */
static int already_stored(agent *a, const ts_tensor *first)
{
    ts_tensor *t = NULL;
    int same = 0;
    if (ts_load(a->store, first->key, first->key_len, &t) == 0)
        same = !strcmp(t->name, first->name) && t->timestamp_ns == first->timestamp_ns &&
               t->data_len == first->data_len && t->dtype == first->dtype;
    ts_tensor_free(t);
    return same;
}

static void triggers_seen(agent *a);

/* n tensors of `bytes` and `keys` keys (the record too) are durable. */
static void committed(agent *a, size_t n, uint64_t keys, uint64_t bytes)
{
    size_t i = 0;
    triggers_seen(a);
    for (ingest_msg *m = a->b.head; m; m = m->next, i++)
        wm_topic_durable(&a->wm, m->sub, a->next_key + i, m->recv_ns, m->pub_time_ns);
    wm_commit(&a->wm);
    a->next_key += keys;
    a->n.stored += n;
    a->n.batches++;
    a->n.bytes_stored += bytes;
    batch_clear(&a->b);
    ingest_done(a->in, n, bytes);
}

/* Drops the batch's messages that are already stored (watermark.h) and
 * starts the batch's table; 1 when the table changed (a record is due). */
static int dedup(agent *a)
{
    size_t i = 0;
    int changed = 0;
    wm_begin(&a->wm);
    for (ingest_msg *m = a->b.head, *next; m; m = next) {
        next = m->next;
        a->wm.c.untracked += (uint64_t)m->tag_bad;
        m->tag_bad = 0; /* counted once, not at every retry */
        if (!m->pub) {
            i++;
        } else if (wm_take(&a->wm, m->pub, m->seq, a->next_key + i)) {
            forget(a, batch_remove(&a->b, i));
        } else {
            i++;
            changed = 1;
        }
    }
    return changed;
}

/* The batch's tensors *t (b.n of them) and, when the table changed, the
 * record after them (key counter next_key + b.n): *t then holds *n_keys
 * pointers. 0 or -ENOMEM. */
static int with_record(agent *a, int changed, const ts_tensor *const **t, size_t *n_keys)
{
    int err = 0;
    size_t n = a->b.n;
    *n_keys = n;
    const ts_tensor *rec = changed ? wm_record(&a->wm, 1, a->next_key + n, plat_now_ns(), &err)
                                   : NULL;
    if (!rec)
        return err;
    if (a->all_cap < n + 1) {
        const ts_tensor **p = realloc(a->all, (n + 1) * sizeof(*p));
        if (!p)
            return -ENOMEM;
        a->all = p;
        a->all_cap = n + 1;
    }
    memcpy(a->all, *t, n * sizeof(a->all[0]));
    a->all[n] = rec;
    *t = a->all;
    *n_keys = n + 1;
    return 0;
}

/* Commits the batch with one saveBatch. 0, or -EAGAIN when it is kept for a
 * retry (the caller waits RETRY_MS). */
static int commit(agent *a)
{
    const ts_tensor *const *t = NULL;
    size_t bad = 0;
    uint64_t cost = 0;
    size_t n_keys = 0;
    int rc;
    if (!a->b.n)
        return 0;
    if (!a->store) {
        reopen_store(a);
        if (!a->store)
            return -EAGAIN;
    }
    int changed = dedup(a);
    for (;;) {
        rc = batch_view(&a->b, a->next_key, &t, &bad);
        if (rc == -ENAMETOOLONG) {
            ingest_count_rejected(a->in, PAYLOAD_TOPIC_TOO_LONG);
            forget(a, batch_remove(&a->b, bad));
            continue;
        }
        if (rc) {
            agent_log(LOG_LEVEL_ERROR, "out of memory building a batch of %zu; retrying", a->b.n);
            return -EAGAIN;
        }
        if (!a->b.n)
            return 0;
        rc = ts_batch_cost(t, a->b.n, &cost);
        if (rc && drop_refused(a, t))
            continue;
        break;
    }
    if (with_record(a, changed, &t, &n_keys) || ts_batch_cost(t, n_keys, &cost)) {
        agent_log(LOG_LEVEL_ERROR, "out of memory building a batch of %zu; retrying", a->b.n);
        return -EAGAIN;
    }
    ts_stats st;
    ts_get_stats(a->store, &st);
    if (st.disk_bytes > 4096 && st.disk_bytes + cost > a->cfg.snapshot.max_bytes) {
        seal(a, "size");
        if (!a->store)
            return -EAGAIN;
        ts_get_stats(a->store, &st);
    }
    if (make_room(a, &st, cost))
        return -EAGAIN;
    size_t n = a->b.n;
    uint64_t bytes = a->b.bytes;
    rc = ts_save_batch(a->store, t, n_keys);
    if (rc == 0) {
        committed(a, n, n_keys, bytes);
        return 0;
    }
    if (rc == TS_EEXIST) {
        if (already_stored(a, t[0])) {
            agent_log(LOG_LEVEL_NOTICE, "a batch of %zu whose commit was reported failed is on "
                      "disk after all; not storing it twice", n);
            committed(a, n, n_keys, bytes);
            return 0;
        }
        /* Keys are new by construction: a store that holds one already is
         * wrong about its seqs. Move past everything it holds; never
         * replace a tensor. */
        ts_get_stats(a->store, &st);
        uint64_t was = a->next_key;
        a->next_key = st.next_seq > a->next_key + n_keys ? st.next_seq : a->next_key + n_keys;
        agent_log(LOG_LEVEL_ERROR, "key counter %" PRIu64 " collides with stored keys (%s); "
                  "continuing at %" PRIu64, was, ts_errmsg(a->store), a->next_key);
        return commit(a);
    }
    a->n.commit_failures++;
    agent_log(LOG_LEVEL_ERROR, "commit of %zu tensor(s) failed: %s; kept in memory, retrying", n,
              ts_errmsg(a->store));
    if (rc == TS_EFAILED || rc == TS_EIO) {
        /* The store is poisoned: reopen it, recovery decides what is on
         * disk. The retry reuses the same keys; if the batch did reach the
         * disk, insert_only says so (TS_EEXIST) and already_stored sees it. */
        reopen_store(a);
    }
    return -EAGAIN;
}

/* ---- the HTTP console's hooks (console.h): run on this thread ---------- */

static void web_wake(void *ctx)
{
    ingest_wake(ctx);
}

static int web_snapshot(void *ctx, char *name, size_t name_len, char *err, size_t errlen)
{
    agent *a = ctx;
    int rc = seal(a, "http");
    if (!rc)
        snprintf(name, name_len, "%s", a->last_snap);
    else
        snprintf(err, errlen, "%s", a->last_err);
    return rc;
}

/* A batch stored over HTTP goes through the flash budget like MQTT's. */
static int web_save(void *ctx, ts_store *s, const ts_tensor *const *t, size_t n)
{
    agent *a = ctx;
    uint64_t cost = 0, bytes = 0;
    ts_stats st;
    int rc = ts_batch_cost(t, n, &cost);
    if (rc)
        return rc;
    ts_get_stats(s, &st);
    if (make_room(a, &st, cost))
        return TS_ENOSPC;
    rc = ts_save_batch(s, t, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        bytes += t[i]->data_len;
    a->n.http_stored += n;
    a->n.http_bytes += bytes;
    return 0;
}

static void prom(console_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    console_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                       name, v);
}

/* What /metrics and /api/store report: the MQTT thread's and the upload
 * worker's counters, and the live store's bytes (the return). */
static uint64_t web_counters(agent *a, ingest_counters *c, upload_counters *u)
{
    ts_stats st;
    memset(u, 0, sizeof(*u));
    ingest_counters_get(a->in, c);
    if (a->up)
        upload_counters_get(a->up, u);
    if (!a->store)
        return 0;
    ts_get_stats(a->store, &st);
    return st.disk_bytes;
}

static void web_metrics(void *ctx, console_buf *b)
{
    agent *a = ctx;
    ingest_counters c;
    upload_counters u;
    uint64_t store_bytes = web_counters(a, &c, &u);
    prom(b, "embeddb_agent_received_total", "counter", "MQTT messages delivered to the agent.",
         c.received);
    prom(b, "embeddb_agent_stored_total", "counter", "Tensors from MQTT stored durably.",
         a->n.stored);
    prom(b, "embeddb_agent_stored_bytes_total", "counter",
         "Tensor data bytes from MQTT stored durably.", a->n.bytes_stored);
    prom(b, "embeddb_agent_http_stored_total", "counter",
         "Tensors stored through the HTTP API.", a->n.http_stored);
    prom(b, "embeddb_agent_batches_total", "counter", "Batches committed from MQTT.",
         a->n.batches);
    prom(b, "embeddb_agent_commit_failures_total", "counter",
         "Batch commits that failed and were retried.", a->n.commit_failures);
    console_buf_printf(b, "# HELP embeddb_agent_rejected_total Payloads rejected, by reason.\n"
                       "# TYPE embeddb_agent_rejected_total counter\n");
    for (int e = 1; e < PAYLOAD_N_ERRS; e++)
        console_buf_printf(b, "embeddb_agent_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                           payload_err_name((payload_err)e), c.rejected[e]);
    prom(b, "embeddb_agent_unmatched_total", "counter",
         "Messages on a topic no subscription matched.", c.unmatched);
    prom(b, "embeddb_agent_queue_depth", "gauge",
         "Messages read from the broker and not yet stored.", (uint64_t)c.held);
    prom(b, "embeddb_agent_connected", "gauge", "1 while connected to the broker.",
         (uint64_t)c.connected);
    prom(b, "embeddb_agent_reconnects_total", "counter", "Reconnections to the broker.",
         c.connects > 0 ? c.connects - 1 : 0);
    prom(b, "embeddb_agent_snapshots_sealed_total", "counter", "Snapshots sealed.",
         a->n.snapshots_sealed);
    prom(b, "embeddb_agent_snapshots_dropped_total", "counter",
         "Snapshots deleted before upload to make room.", a->n.snapshots_dropped);
    prom(b, "embeddb_agent_upload_bytes_total", "counter", "Tar bytes of confirmed uploads.",
         u.bytes_uploaded);
    prom(b, "embeddb_agent_uploads_total", "counter", "Snapshots the server confirmed.",
         u.uploaded);
    prom(b, "embeddb_agent_upload_failures_total", "counter",
         "Snapshots the server refused (4xx).", u.failed);
    prom(b, "embeddb_agent_upload_retries_total", "counter",
         "Upload attempts that will be retried.", u.retries);
    prom(b, "embeddb_agent_budget_used_bytes", "gauge",
         "Bytes the flash budget counts: live store and snapshots.",
         store_bytes + a->n.snap_bytes);
    prom(b, "embeddb_agent_budget_limit_bytes", "gauge",
         "storage.max_disk (0: no budget).", a->cfg.storage.max_disk);
    prom(b, "embeddb_agent_budget_refusals_total", "counter",
         "Commits that waited for room in the budget.", a->n.budget_refusals);
}

static void web_status(void *ctx, console_buf *b)
{
    agent *a = ctx;
    ingest_counters c;
    upload_counters u;
    uint64_t store_bytes = web_counters(a, &c, &u);
    console_buf_printf(b, "{\"device_id\":");
    console_buf_json_str(b, a->cfg.device_id, strlen(a->cfg.device_id));
    console_buf_printf(b, ",\"connected\":%s,\"subscribed\":%s,\"received\":%" PRIu64
                       ",\"stored\":%" PRIu64 ",\"http_stored\":%" PRIu64 ",\"batches\":%" PRIu64
                       ",\"pending\":%zu,\"rejected\":{",
                       c.connected ? "true" : "false", c.subscribed ? "true" : "false",
                       c.received, a->n.stored, a->n.http_stored, a->n.batches, c.held);
    for (int e = 1; e < PAYLOAD_N_ERRS; e++)
        console_buf_printf(b, "%s\"%s\":%" PRIu64, e > 1 ? "," : "",
                           payload_err_name((payload_err)e), c.rejected[e]);
    console_buf_printf(b, "},\"budget\":{\"used\":%" PRIu64 ",\"max_disk\":%" PRIu64
                       ",\"min_free\":%" PRIu64 ",\"refusals\":%" PRIu64 "}"
                       ",\"upload\":{\"enabled\":%s,\"uploaded\":%" PRIu64 ",\"failed\":%" PRIu64
                       ",\"retries\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"current\":",
                       store_bytes + a->n.snap_bytes, a->cfg.storage.max_disk,
                       a->cfg.storage.min_free, a->n.budget_refusals,
                       a->cfg.upload.enabled ? "true" : "false", u.uploaded, u.failed, u.retries,
                       u.bytes_uploaded);
    console_buf_json_str(b, u.current, strlen(u.current));
    console_buf_printf(b, ",\"last_error\":");
    console_buf_json_str(b, u.last_error, strlen(u.last_error));
    console_buf_put(b, "}}", 2);
}

/* Starts the console when the config has an http section. */
static int start_web(agent *a)
{
    char err[1024];
    if (!a->cfg.http.enabled)
        return 0;
    console_config cc = {.listen = a->cfg.http.listen, .token = a->cfg.http.token,
                         .store_dir = a->cfg.storage.dir, .demo_dir = a->cfg.http.demo_dir,
                         .role = "agent", .max_body = (size_t)a->cfg.mqtt.max_payload};
    a->hooks = (console_hooks){.ctx = a, .metrics = web_metrics, .status = web_status,
                               .snapshot = web_snapshot, .save = web_save};
    if (console_start(&cc, &a->web, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "http: %s", err);
        return -1;
    }
    console_set_wake(a->web, web_wake, a->in);
    agent_log(LOG_LEVEL_NOTICE, "http: console on port %u (%s)%s",
              (unsigned)console_port(a->web), a->cfg.http.listen,
              a->cfg.http.token ? "; writes need the token" : "");
    return 0;
}

/* 1 when a command may run now: fewer than control.command_rate in the
 * last 60 s (exact: the ring holds the times of the last command_rate). */
static int command_allowed(agent *a)
{
    uint64_t now = plat_mono_ms(), n = a->cfg.control.command_rate;
    uint64_t *oldest = &a->cmd_times[a->cmd_next];
    if (*oldest && now - *oldest < 60000)
        return 0;
    *oldest = now ? now : 1;
    a->cmd_next = (a->cmd_next + 1) % n;
    return 1;
}

/* Hands every failed snapshot back to the uploader (snap_retry); the
 * count retried, or -errno when the listing failed. */
static int retry_failed(agent *a)
{
    size_t n = 0;
    uint64_t pending = 0;
    int retried = 0;
    snap_info *v = list_snapshots(a, &n, &pending);
    if (!v && n)
        return -EIO;
    for (size_t i = 0; i < n; i++) {
        snap_info si;
        if (v[i].state == SNAP_FAILED && snap_retry(a->vfs, a->root, v[i].name, &si) == 0)
            retried++;
    }
    free(v);
    upload_kick(a->up);
    return retried;
}

/* Logs a command's outcome and queues its reply: on the MQTT 5 response
 * topic (with the correlation data) when there is one, else on
 * <prefix>/<device_id>/reply. */
static void answer(agent *a, const char *topic, const char *verb, const char *id,
                   const char *origin, const char *response_topic, const uint8_t *corr,
                   size_t corr_len, control_err e, const char *why, const char *extra)
{
    char doc[CONTROL_REPLY_MAX], reply_topic[CONTROL_TOPIC_MAX];
    size_t len = 0;
    agent_log_limited(&a->cmd_lim, 20, 10000, e ? LOG_LEVEL_WARNING : LOG_LEVEL_NOTICE,
                      "command on %.200s (origin '%s', id '%s', reply to %.200s): %s%s%s",
                      topic, origin[0] ? origin : "-", id[0] ? id : "-",
                      response_topic ? response_topic : "the reply topic",
                      control_err_name(e), e ? ": " : "", why);
    control_topic(reply_topic, sizeof(reply_topic), a->cfg.control.prefix, a->cfg.device_id,
                  "reply");
    if (control_reply_json(a->cfg.device_id, verb, id, e, why, extra, doc, sizeof(doc), &len) ||
        ingest_reply(a->in, response_topic ? response_topic : reply_topic, corr, corr_len, doc,
                     len))
        agent_log(LOG_LEVEL_WARNING, "the reply to a command on %.200s was not sent", topic);
}

static void capture_job_free(capture_job *j)
{
    free(j->topic);
    free(j->response_topic);
    free(j->corr);
    memset(j, 0, sizeof(*j));
}

/* Takes a capture command: its window is fixed now (pre/post around the
 * arrival, or from/to), its seal waits for the window's end
 * (capture_tick). CONTROL_OK when queued (the reply comes with the seal). */
static control_err capture_take(agent *a, const ingest_cmd *c, const control_cmd *cmd, char *why,
                                size_t whylen)
{
    const control_capture *k = &cmd->cap;
    capture_job *j = NULL;
    int64_t now = plat_now_ns();
    for (size_t i = 0; i < CAPTURES_MAX && !j; i++)
        if (!a->captures[i].used)
            j = &a->captures[i];
    if (!j) {
        snprintf(why, whylen, "%d capture windows are already waiting for their end",
                 CAPTURES_MAX);
        return CONTROL_E_BUSY;
    }
    int64_t from = k->absolute ? k->from_ns : now - (int64_t)k->pre_ms * 1000000;
    int64_t to = k->absolute ? k->to_ns : now + (int64_t)k->post_ms * 1000000;
    if (to > now && (uint64_t)(to - now) > CONTROL_POST_MAX_MS * 1000000) {
        snprintf(why, whylen, "to is more than %llus ahead of the board's clock",
                 CONTROL_POST_MAX_MS / 1000);
        return CONTROL_E_BAD_FIELD;
    }
    memset(j, 0, sizeof(*j));
    j->cap = *k;
    j->trigger_ns = now;
    j->from_ns = from;
    j->to_ns = to;
    j->due_ms = plat_mono_ms() + (to > now ? (uint64_t)(to - now) / 1000000 + 1 : 0);
    memcpy(j->id, cmd->id, sizeof(j->id));
    memcpy(j->origin, cmd->origin, sizeof(j->origin));
    j->topic = strdup(c->topic);
    j->response_topic = c->response_topic ? strdup(c->response_topic) : NULL;
    j->corr = c->corr ? malloc(c->corr_len ? c->corr_len : 1) : NULL;
    if (!j->topic || (c->response_topic && !j->response_topic) || (c->corr && !j->corr)) {
        capture_job_free(j);
        snprintf(why, whylen, "out of memory");
        return CONTROL_E_FAILED;
    }
    if (c->corr)
        memcpy(j->corr, c->corr, c->corr_len);
    j->corr_len = c->corr_len;
    j->used = 1;
    agent_log(LOG_LEVEL_INFO, "capture '%s': window %" PRId64 "..%" PRId64 " ns, sealed in %"
              PRIu64 " ms", k->label, from, to, j->due_ms - plat_mono_ms());
    return CONTROL_OK;
}

static int capture_match(void *ctx, const char *filter, const char *name)
{
    (void)ctx;
    return ingest_topic_matches(filter, name);
}

static int commit(agent *a);

/* Seals capture window j if its end has passed, once every tensor that
 * arrived before that end is stored (the batch committed, the queue past
 * it), or CAPTURE_GRACE_MS later with what is stored then; answers a
 * command's. 1 when it is done with (j then freed; *end gets its to_ns). */
static int capture_due(agent *a, capture_job *j, uint64_t now, int64_t *end)
{
    char name[SNAP_NAME_MAX], err[512] = "", extra[SNAP_NAME_MAX + 128] = "", why[300] = "";
    const char *filters[SNAP_FILTERS_MAX];
    uint64_t n = 0;
    control_err e = CONTROL_OK;
    if (!j->used || now < j->due_ms)
        return 0;
    int late = now >= j->due_ms + CAPTURE_GRACE_MS;
    if (a->b.n && commit(a) && !late)
        return 0;
    /* the commit may have fired j's trigger again, moving its end */
    if (now < j->due_ms || (ingest_oldest_ns(a->in) < j->to_ns && !late))
        return 0;
    *end = j->to_ns;
    if (!a->store) {
        if (!late)
            return 0;
        e = CONTROL_E_FAILED;
        snprintf(why, sizeof(why), "the store is closed (see the agent's log)");
        agent_log(LOG_LEVEL_ERROR, "capture '%s' failed: the store is closed", j->cap.label);
        goto reply;
    }
    /* Room first, as for a commit, so that the budget is passed by at most
     * the one window being copied (counted from here on). */
    ts_stats st;
    ts_get_stats(a->store, &st);
    free_room(a, &st, 0);
    for (size_t f = 0; f < j->cap.n_filters; f++)
        filters[f] = j->cap.filters[f];
    snap_window w = {.label = j->cap.label, .trigger_ns = j->trigger_ns, .from_ns = j->from_ns,
                     .to_ns = j->to_ns, .filters = filters, .n_filters = j->cap.n_filters,
                     .match = capture_match};
    int rc = snap_capture(a->vfs, a->store, a->root, a->cfg.device_id, &w, name, sizeof(name),
                          &n, err, sizeof(err));
    ts_get_stats(a->store, &st);
    if (st.next_seq > a->next_key)
        a->next_key = st.next_seq;
    if (rc == TS_ENOTFOUND) {
        agent_log(LOG_LEVEL_NOTICE, "capture '%s': no tensor in the window", j->cap.label);
        snprintf(extra, sizeof(extra), ",\"snapshot\":null,\"tensors\":0,\"window_ns\":[%" PRId64
                 ",%" PRId64 "]", j->from_ns, j->to_ns);
    } else if (rc && !name[0]) {
        e = CONTROL_E_FAILED;
        snprintf(why, sizeof(why), "the capture failed: %s (see the agent's log)",
                 ts_strerror(rc));
        agent_log(LOG_LEVEL_ERROR, "capture '%s' failed: %s", j->cap.label, err);
    } else {
        if (rc)
            agent_log(LOG_LEVEL_ERROR, "capture '%s': %s", j->cap.label, err);
        a->n.snapshots_sealed++;
        agent_log(LOG_LEVEL_NOTICE, "capture '%s' sealed as %s: %" PRIu64 " tensor(s)%s",
                  j->cap.label, name, n, late ? " (some may have arrived too late)" : "");
        snprintf(extra, sizeof(extra), ",\"snapshot\":\"%s\",\"tensors\":%" PRIu64
                 ",\"window_ns\":[%" PRId64 ",%" PRId64 "]", name, n, j->from_ns, j->to_ns);
        upload_kick(a->up);
    }
reply:
    if (j->topic) /* a command's; a trigger's has no one to answer */
        answer(a, j->topic, "capture", j->id, j->origin, j->response_topic, j->corr,
               j->corr_len, e, why, extra);
    capture_job_free(j);
    return 1;
}

static void capture_tick(agent *a)
{
    uint64_t now = plat_mono_ms();
    int64_t end = 0;
    for (size_t i = 0; i < CAPTURES_MAX; i++)
        capture_due(a, &a->captures[i], now, &end);
    for (size_t i = 0; i < a->cfg.capture.n_triggers; i++)
        if (capture_due(a, &a->trig_jobs[i], now, &end))
            a->trig_last_to[i] = end;
}

/*
 * Trigger i fired: a message on its `on` filter arrived at t_ns and was
 * stored. The storm rule (control_trigger_window): at most one window
 * waiting per trigger, later firings folded into it (its end moves, at most
 * 10 min past the first firing), and windows that never overlap; so a
 * storm makes at most one capture per trigger per 10 min + post.
 */
static void trigger_fire(agent *a, size_t i, int64_t t_ns)
{
    const agent_trigger *t = &a->cfg.capture.triggers[i];
    capture_job *j = &a->trig_jobs[i];
    int64_t from = j->from_ns, to = j->to_ns, now = plat_now_ns();
    int r = control_trigger_window(j->used, j->trigger_ns, a->trig_last_to[i], t_ns, t->pre_ms,
                                   t->post_ms, &from, &to);
    if (r == 1) {
        j->due_ms += (uint64_t)(to - j->to_ns) / 1000000;
        j->to_ns = to;
        agent_log(LOG_LEVEL_DEBUG, "capture trigger '%s': folded into the waiting window "
                  "(ends %" PRId64 ")", t->label, j->to_ns);
        return;
    }
    if (r < 0)
        return; /* inside the last window already */
    memset(j, 0, sizeof(*j));
    snprintf(j->cap.label, sizeof(j->cap.label), "%s", t->label);
    for (size_t k = 0; k < t->n_topics; k++)
        snprintf(j->cap.filters[k], sizeof(j->cap.filters[k]), "%s", t->topics[k]);
    j->cap.n_filters = t->n_topics;
    j->trigger_ns = t_ns;
    j->from_ns = from;
    j->to_ns = to;
    j->due_ms = plat_mono_ms() + (to > now ? (uint64_t)(to - now) / 1000000 + 1 : 0);
    j->used = 1;
    agent_log(LOG_LEVEL_NOTICE, "capture trigger '%s' fired: window %" PRId64 "..%" PRId64 " ns",
              t->label, from, to);
}

/* The triggers among n just-stored messages (the batch). */
static void triggers_seen(agent *a)
{
    for (const ingest_msg *m = a->b.head; m && a->cfg.capture.n_triggers; m = m->next)
        for (size_t i = 0; i < a->cfg.capture.n_triggers; i++)
            if (ingest_topic_matches(a->cfg.capture.triggers[i].on, m->topic))
                trigger_fire(a, i, m->recv_ns);
}

/* One command from the broker (control.h; agent/CONTROL.md): rate, decode,
 * carry out, answer on the MQTT 5 response topic with its correlation data,
 * else on <prefix>/<device_id>/reply. Every outcome is logged with the
 * command's topic and origin. */
static void run_command(agent *a, const ingest_cmd *c)
{
    control_cmd cmd;
    char why[256] = "", extra[SNAP_NAME_MAX + 32] = "";
    control_err e = CONTROL_OK;
    /* Decoded first (cheap, bounded) so that every reply carries the id. */
    e = control_cmd_decode(c->verb, c->body, c->len, &cmd, why, sizeof(why));
    if (c->retained) {
        /* a retained command would run again at every connect */
        e = CONTROL_E_BAD_FIELD;
        snprintf(why, sizeof(why), "retained commands are refused");
    } else if (!command_allowed(a)) {
        e = CONTROL_E_RATE_LIMITED;
        snprintf(why, sizeof(why), "more than %" PRIu64 " commands in 60 s (control.command_rate)",
                 a->cfg.control.command_rate);
    }
    if (e == CONTROL_OK) {
        switch (cmd.verb) {
        case CONTROL_VERB_STATUS:
            publish_status(a);
            break;
        case CONTROL_VERB_SNAPSHOT:
            seal(a, "command");
            if (a->last_seal[0])
                snprintf(extra, sizeof(extra), ",\"snapshot\":\"%s\"", a->last_seal);
            else if (a->last_seal_rc == TS_ENOTFOUND)
                snprintf(extra, sizeof(extra), ",\"snapshot\":null");
            else {
                e = CONTROL_E_FAILED;
                snprintf(why, sizeof(why), "the seal failed: %s (see the agent's log)",
                         ts_strerror(a->last_seal_rc));
            }
            break;
        case CONTROL_VERB_UPLOAD: {
            int k = retry_failed(a);
            if (k < 0) {
                e = CONTROL_E_FAILED;
                snprintf(why, sizeof(why), "listing the snapshots failed");
            } else {
                snprintf(extra, sizeof(extra), ",\"retried\":%d", k);
            }
            break;
        }
        case CONTROL_VERB_CAPTURE:
            e = capture_take(a, c, &cmd, why, sizeof(why));
            if (e == CONTROL_OK)
                return; /* answered when sealed (capture_tick) */
            break;
        default:
            break;
        }
    }
    answer(a, c->topic, c->verb, cmd.id, cmd.origin, c->response_topic, c->corr, c->corr_len, e,
           why, extra);
}

static void take_commands(agent *a)
{
    for (ingest_cmd *c; (c = ingest_take_command(a->in));) {
        run_command(a, c);
        ingest_cmd_free(c);
    }
}

static void reload(agent *a, const char *path)
{
    agent_config fresh;
    char err[1024];
    if (agent_config_load(path, &fresh, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "reload refused, keeping the running configuration: %s", err);
        agent_config_free(&fresh);
        return;
    }
    if (strcmp(fresh.storage.dir, a->cfg.storage.dir) || strcmp(fresh.mqtt.host, a->cfg.mqtt.host) ||
        fresh.mqtt.port != a->cfg.mqtt.port)
        agent_log(LOG_LEVEL_NOTICE, "reload: storage and broker changes take a restart");
    if (fresh.http.enabled != a->cfg.http.enabled ||
        (fresh.http.enabled && (strcmp(fresh.http.listen, a->cfg.http.listen) ||
                                !fresh.http.token != !a->cfg.http.token ||
                                (fresh.http.token && strcmp(fresh.http.token, a->cfg.http.token)))))
        agent_log(LOG_LEVEL_NOTICE, "reload: http changes take a restart");
    if (ingest_update(a->in, &fresh)) {
        agent_log(LOG_LEVEL_ERROR, "reload: out of memory; keeping the running configuration");
        agent_config_free(&fresh);
        return;
    }
    /* The queue keeps the bound it was made with (the old batch limits)
     * until a restart; the batch takes the new ones now. */
    a->cfg.batch = fresh.batch;
    batch_set_limits(&a->b, &a->cfg);
    a->cfg.log = fresh.log;
    agent_log_set_level(fresh.log.level);
    /* Keep the running storage/mqtt settings, adopt the new subscriptions. */
    agent_sub *subs = a->cfg.mqtt.subs;
    size_t n = a->cfg.mqtt.n_subs;
    a->cfg.mqtt.subs = fresh.mqtt.subs;
    a->cfg.mqtt.n_subs = fresh.mqtt.n_subs;
    fresh.mqtt.subs = subs;
    fresh.mqtt.n_subs = n;
    agent_config_free(&fresh);
    /* The topics' watermarks start over (their filters may have changed). */
    if (wm_resize(&a->wm, a->wm.max_pubs, a->cfg.mqtt.n_subs))
        agent_log(LOG_LEVEL_ERROR, "reload: out of memory for the watermark's topics");
    agent_log(LOG_LEVEL_NOTICE, "configuration reloaded: %zu subscription(s)", a->cfg.mqtt.n_subs);
}

/* Publishes the durable watermark (retained) when it changed and
 * control.watermark_interval has passed, or at once after a connection
 * (`now`). Only queues it for the network thread: never waits on it. */
static void publish_watermark(agent *a, int now)
{
    char *doc = NULL;
    size_t len = 0, n = a->wm.n_topics;
    uint64_t now_ms = plat_mono_ms();
    if (!a->wm_topic[0] || (!now && (!a->wm.dirty ||
                                     now_ms - a->last_wm_ms < a->cfg.control.watermark_interval_ms)))
        return;
    const char **filters = calloc(n ? n : 1, sizeof(*filters));
    for (size_t i = 0; filters && i < n; i++)
        filters[i] = i < a->cfg.mqtt.n_subs ? a->cfg.mqtt.subs[i].topic : "";
    if (filters && !wm_json(&a->wm, a->cfg.device_id, filters, plat_now_ns(), &doc, &len) &&
        !ingest_publish(a->in, a->wm_topic, doc, len, 1)) {
        a->wm.dirty = 0;
        a->last_wm_ms = now_ms;
    }
    free(filters);
    free(doc);
}

/* Takes from the queue what the batch has room for, waiting at most
 * wait_ms; with no room it only waits. */
static void fill(agent *a, uint64_t wait_ms)
{
    size_t room_n;
    uint64_t room_b;
    int more = 0;
    batch_room(&a->b, &room_n, &room_b);
    ingest_msg *list = ingest_pop(a->in, wait_ms, room_n, room_b, &more);
    if (room_n)
        batch_add(&a->b, list, more, plat_mono_ns());
}

int agent_run(const char *config_path)
{
    agent a;
    char err[1024];
    int rc = 1;
    memset(&a, 0, sizeof(a));
    a.vfs = plat_vfs_default();
    if (agent_config_load(config_path, &a.cfg, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "%s", err);
        agent_config_free(&a.cfg);
        return 1;
    }
    agent_log_set_level(a.cfg.log.level);
    batch_init(&a.b, &a.cfg);
    if (wm_init(&a.wm, a.cfg.control.dedup_publishers, a.cfg.mqtt.n_subs)) {
        agent_log(LOG_LEVEL_ERROR, "out of memory");
        goto out;
    }
    if (a.cfg.control.watermark_interval_ms &&
        control_topic(a.wm_topic, sizeof(a.wm_topic), a.cfg.control.prefix, a.cfg.device_id,
                      "durable")) {
        agent_log(LOG_LEVEL_ERROR, "control.prefix and device_id make too long a topic");
        goto out;
    }
    if (plat_signals_install() || snap_root(a.cfg.storage.dir, a.root, sizeof(a.root)) ||
        open_store(&a))
        goto out;
    recover_snapshots(&a);
    wm_recover(&a);
    if (!(a.up = upload_new(&a.cfg, a.vfs, a.root, err, sizeof(err))) || upload_start(a.up)) {
        agent_log(LOG_LEVEL_ERROR, "%s", a.up ? "cannot start the upload thread" : err);
        goto out;
    }
    if (!a.cfg.upload.enabled)
        agent_log(LOG_LEVEL_NOTICE, "no upload section: snapshots stay on flash");
    a.last_seal_ms = a.started_ms = plat_mono_ms();
    retention_tick(&a);
    /* Acknowledged and not yet stored: this batch and the next, plus room
     * for the broker's in-flight window ahead of a settle barrier's answer
     * (mosquitto's default is 20), no more. */
    if (!(a.in = ingest_new(&a.cfg, 2 * (size_t)a.cfg.batch.max_tensors + INFLIGHT_ROOM,
                            2 * a.cfg.batch.max_bytes, err, sizeof(err))) ||
        set_will(&a, err, sizeof(err)) || set_commands(&a, err, sizeof(err)) ||
        ingest_start(a.in, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "%s", err);
        goto out;
    }
    if (start_web(&a))
        goto out;
    agent_log(LOG_LEVEL_INFO, "device_id %s; storing into %s; broker %s:%d", a.cfg.device_id,
              a.cfg.storage.dir, a.cfg.mqtt.host, a.cfg.mqtt.port);
    uint64_t watchdog_ms = plat_watchdog_ms(), last_status = 0, last_retry = 0;
    for (;;) {
        int sig = plat_signals_take();
        if (sig & PLAT_SIG_STOP)
            break;
        if (sig & PLAT_SIG_RELOAD)
            reload(&a, config_path);
        if (sig & PLAT_SIG_USR1)
            seal(&a, "SIGUSR1");
        if (a.cfg.snapshot.interval_ms &&
            plat_mono_ms() - a.last_seal_ms >= a.cfg.snapshot.interval_ms)
            seal(&a, "interval");
        uint64_t now = plat_mono_ns(), wait = IDLE_WAIT_MS;
        if (a.b.n && batch_wait_ms(&a.b, now) < wait)
            wait = batch_wait_ms(&a.b, now);
        if (last_retry) {
            uint64_t since = plat_mono_ms() - last_retry;
            wait = since >= RETRY_MS ? 0 : (RETRY_MS - since < wait ? RETRY_MS - since : wait);
        }
        fill(&a, wait);
        if (batch_due(&a.b, plat_mono_ns()) &&
            (!last_retry || plat_mono_ms() - last_retry >= RETRY_MS)) {
            last_retry = commit(&a) ? plat_mono_ms() : 0;
        }
        /* Before anything can delete the snapshot that holds the table. */
        if (a.wm_save_due && a.store && !wm_save(&a))
            a.wm_save_due = 0;
        if (a.web)
            console_serve(a.web, &a.store, a.vfs, &a.hooks, 0);
        if (!a.ready) {
            ingest_counters c;
            ingest_counters_get(a.in, &c);
            if (c.subscribed) {
                a.ready = 1;
                plat_notify("READY=1");
                agent_log(LOG_LEVEL_NOTICE, "ready: subscribed");
            }
        }
        uint64_t now_ms = plat_mono_ms();
        if (now_ms - last_status >= STATUS_PERIOD_MS ||
            (watchdog_ms && now_ms - last_status >= watchdog_ms / 2)) {
            last_status = now_ms;
            if (a.store)
                retention_tick(&a);
            write_status(&a, a.ready ? "running" : "starting");
            if (watchdog_ms)
                plat_notify("WATCHDOG=1");
        }
        int connected = ingest_take_connected(a.in);
        if (a.status_topic[0] &&
            (connected || now_ms - a.last_pub_ms >= a.cfg.control.status_interval_ms))
            publish_status(&a);
        publish_watermark(&a, connected);
        take_commands(&a);
        capture_tick(&a);
    }
    /* Graceful stop: no new messages; commit what the broker handed over
     * (the batch and the queue: at most two batches), then seal it. */
    plat_notify("STOPPING=1");
    console_free(a.web); /* waiting requests get 503 */
    a.web = NULL;
    ingest_stop(a.in);
    /* What the broker already handed us is stored even past max_disk (the
     * file system's min_free still holds): a stop must not lose it. */
    a.stopping = 1;
    size_t left = 0;
    for (int fails = 0; fails < 3;) {
        fill(&a, 0);
        if (!a.b.n)
            break;
        if (commit(&a))
            fails++;
    }
    for (ingest_msg *m; (m = ingest_pop(a.in, 0, SIZE_MAX, UINT64_MAX, NULL));) {
        for (ingest_msg *k = m; k; k = k->next)
            left++;
        ingest_msg_free(m);
    }
    left += a.b.n;
    if (left) {
        agent_log(LOG_LEVEL_ERROR, "%zu tensor(s) could not be stored before exit", left);
        goto out;
    }
    if (a.store && ts_flush(a.store, NULL, 0, NULL))
        agent_log(LOG_LEVEL_WARNING, "final flush: %s (data is safe in the WAL)",
                  ts_errmsg(a.store));
    upload_stop(a.up);
    write_status(&a, "stopped");
    agent_log(LOG_LEVEL_NOTICE, "stopped: %" PRIu64 " tensor(s) stored in %" PRIu64 " batch(es)",
              a.n.stored, a.n.batches);
    rc = 0;
out:
    console_free(a.web);
    upload_free(a.up);
    ingest_free(a.in);
    free(a.cmd_times);
    for (size_t i = 0; i < CAPTURES_MAX; i++)
        capture_job_free(&a.captures[i]);
    for (size_t i = 0; i < AGENT_TRIGGERS_MAX; i++)
        capture_job_free(&a.trig_jobs[i]);
    free(a.all);
    wm_free(&a.wm);
    batch_free(&a.b);
    ts_close(a.store);
    agent_config_free(&a.cfg);
    return rc;
}
