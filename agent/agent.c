/*
 * agent.c -- the daemon's main loop: batches decoded messages into the
 * engine, reports to systemd and the status file, handles signals.
 *
 * Threads: libmosquitto's network thread fills ingest's queue; this thread
 * does everything else, so a slow commit (fdatasync) never stalls MQTT
 * keepalives. Keys order each topic's tensors by arrival:
 *     <topic>#<20-digit arrival counter>
 * ('#' cannot occur in an MQTT topic name), so `embeddb ls DIR sensors/cam0#`
 * lists that topic in arrival order. The counter starts at the store's next
 * sequence number, so keys keep rising across restarts.
 *
 * Failure policy: a batch that cannot be committed (full disk, failed
 * fsync) is kept in memory and retried every second, loudly; a store
 * poisoned by a failed fsync is reopened (recovery) before the retry. While
 * the batch is stuck the queue fills and the broker holds new messages.
 *
 * Snapshots and the flash budget are this thread's too: it seals (size,
 * interval, SIGUSR1), applies rolling retention once a second, and makes
 * room before each commit (make_room). The upload worker (upload.c) only
 * finishes seals and uploads; deletions go through upload_delete so the
 * worker never writes into a snapshot being removed.
 */
#include "agent.h"

#include "ingest.h"
#include "log.h"
#include "snapshot.h"
#include "upload.h"

#include "embeddb/plat.h"
#include "embeddb/plat_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_NAME "agent.status"
#define STATUS_PERIOD_MS 1000
#define RETRY_MS 1000
/* Room kept in the budget for the small files (MANIFESTs, STATE, status). */
#define SMALL_FILES_RESERVE (64u << 10)

typedef struct agent {
    agent_config cfg;
    ts_store *store;
    ingest *in;
    ingest_msg *pending, *pending_tail;
    size_t n_pending;
    uint64_t pending_bytes;
    int64_t first_ns;         /* mono time the oldest pending message arrived */
    uint64_t next_key;
    /* counters beyond ingest's */
    uint64_t stored, batches, commit_failures, bytes_stored;
    int ready;
    /* snapshots and the flash budget (retention runs on this thread) */
    char root[4096];
    uploader *up;
    uint64_t last_seal_ms;
    uint64_t snap_bytes;       /* cached: bytes under snapshots/ */
    uint64_t snapshots_sealed, snapshots_dropped, tensors_dropped, bytes_dropped;
    uint64_t budget_refusals;
    log_limit budget_lim;
    int stopping;              /* graceful stop: max_disk yields to "lose nothing" */
} agent;

static uint64_t mono_ms(void)
{
    return plat_mono_ns() / 1000000;
}

/* Opens the store; the first open also starts the key counter at the
 * store's next sequence number (keys keep rising across restarts). */
static int open_store(agent *a, int first)
{
    ts_options o;
    char err[1024];
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.memtable_max = a->cfg.storage.memtable_max;
    o.sync = a->cfg.storage.fsync;
    if (ts_open(a->cfg.storage.dir, &o, &a->store, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "cannot open the store: %s", err);
        return -1;
    }
    if (ts_errmsg(a->store)[0])
        agent_log(LOG_LEVEL_WARNING, "store recovery: %s", ts_errmsg(a->store));
    ts_stats st;
    ts_get_stats(a->store, &st);
    if (first && st.next_seq > a->next_key)
        a->next_key = st.next_seq;
    return 0;
}

/* Writes the counters to DIR/agent.status (temp + rename: readers never see
 * half a file) and mirrors a summary to systemd's STATUS=. */
static void write_status(agent *a, const char *state)
{
    ingest_counters c;
    char buf[4096], tmp[4112], path[4096], line[256];
    ingest_counters_get(a->in, &c);
    int n = snprintf(buf, sizeof(buf),
                     "state=%s\ndevice_id=%s\nconnected=%d\nsubscribed=%d\nreceived=%" PRIu64
                     "\nstored=%" PRIu64 "\nbatches=%" PRIu64 "\nbytes_stored=%" PRIu64
                     "\npending=%zu\ncommit_failures=%" PRIu64 "\nreconnects=%" PRIu64
                     "\nunmatched=%" PRIu64 "\n",
                     state, a->cfg.device_id, c.connected, c.subscribed, c.received, a->stored,
                     a->batches, a->bytes_stored, a->n_pending, a->commit_failures,
                     c.connects > 0 ? c.connects - 1 : 0, c.unmatched);
    for (int e = 1; e < PAYLOAD_N_ERRS && n > 0 && (size_t)n < sizeof(buf); e++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "rejected_%s=%" PRIu64 "\n",
                      payload_err_name((payload_err)e), c.rejected[e]);
    if (a->store) {
        ts_stats st;
        ts_get_stats(a->store, &st);
        if (n > 0 && (size_t)n < sizeof(buf))
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "fsyncs=%" PRIu64 "\nflushes=%" PRIu64
                          "\nstore_bytes=%" PRIu64 "\n", st.fsyncs, st.flushes, st.disk_bytes);
    }
    if (a->up && n > 0 && (size_t)n < sizeof(buf)) {
        upload_counters u;
        upload_counters_get(a->up, &u);
        n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                      "pid=%d\nsnapshot_bytes=%" PRIu64 "\nsnapshots_sealed=%" PRIu64
                      "\nsnapshots_uploaded=%" PRIu64 "\nsnapshots_failed=%" PRIu64
                      "\nupload_retries=%" PRIu64 "\nbytes_uploaded=%" PRIu64
                      "\nsnapshots_dropped=%" PRIu64 "\ntensors_dropped=%" PRIu64
                      "\nbytes_dropped=%" PRIu64 "\nbudget_refusals=%" PRIu64
                      "\nuploading=%s\n",
                      plat_getpid(), a->snap_bytes, a->snapshots_sealed, u.uploaded, u.failed,
                      u.retries, u.bytes_uploaded, a->snapshots_dropped, a->tensors_dropped,
                      a->bytes_dropped, a->budget_refusals, u.current[0] ? u.current : "-");
    }
    snprintf(path, sizeof(path), "%s/%s", a->cfg.storage.dir, STATUS_NAME);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    plat_vfs *vfs = plat_vfs_default();
    int fd = -1;
    if (n > 0 && vfs->open(vfs, tmp, PLAT_O_RDWR | PLAT_O_CREAT | PLAT_O_TRUNC, &fd) == 0) {
        int rc = plat_write_all(vfs, fd, buf, strlen(buf), 0);
        vfs->close(vfs, fd);
        if (rc == 0)
            vfs->rename(vfs, tmp, path);
    }
    uint64_t rejected = 0;
    for (int e = 1; e < PAYLOAD_N_ERRS; e++)
        rejected += c.rejected[e];
    snprintf(line, sizeof(line), "STATUS=%s: received %" PRIu64 ", stored %" PRIu64
             ", rejected %" PRIu64 ", pending %zu",
             state, c.received, a->stored, rejected, a->n_pending);
    plat_notify(line);
}

/* After a failed fsync the store is poisoned: reopen it (recovery decides
 * what is on disk) and let snapshot recovery finish any half-done seal. */
static void reopen_store(agent *a)
{
    char err[1024];
    size_t n_seals = 0;
    ts_close(a->store);
    a->store = NULL;
    if (open_store(a, 0))
        return;
    if (snap_recover(a->store, a->root, &n_seals, err, sizeof(err)))
        agent_log(LOG_LEVEL_ERROR, "snapshot recovery: %s", err);
    if (n_seals)
        upload_kick(a->up);
}

/* Seals a snapshot of everything stored so far and wakes the worker, which
 * hashes and uploads it. `why` names the trigger in the log. */
static void seal(agent *a, const char *why)
{
    char err[1024], name[SNAP_NAME_MAX];
    ts_checkpoint_info info;
    a->last_seal_ms = mono_ms();
    if (!a->store)
        return;
    int rc = snap_begin(a->store, a->root, a->cfg.device_id, name, sizeof(name), &info, err,
                        sizeof(err));
    if (rc == TS_ENOTFOUND) {
        agent_log(LOG_LEVEL_INFO, "snapshot (%s): nothing stored since the last one", why);
        upload_kick(a->up); /* an operator's request also means "look again" */
        return;
    }
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "snapshot (%s) failed: %s; the data stays in the store", why,
                  err);
        reopen_store(a);
        return;
    }
    a->snapshots_sealed++;
    a->snap_bytes += info.bytes;
    agent_log(LOG_LEVEL_NOTICE, "snapshot %s sealed (%s): %" PRIu64 " SST file(s), %" PRIu64
              " bytes, seq %" PRIu64 "..%" PRIu64, name, why, info.n_files, info.bytes,
              info.min_seq, info.max_seq);
    upload_kick(a->up);
}

/* The snapshots on flash, oldest first; refreshes the cached byte count. */
static snap_info *list_snapshots(agent *a, size_t *n)
{
    snap_info *v = NULL;
    uint64_t pending = 0;
    *n = 0;
    if (snap_list(a->root, &v, n, &pending)) {
        agent_log(LOG_LEVEL_ERROR, "listing %s failed; retention skipped", a->root);
        return NULL;
    }
    a->snap_bytes = pending;
    for (size_t i = 0; i < *n; i++)
        a->snap_bytes += v[i].disk_bytes;
    return v;
}

/* Deletes snapshot v; `lost` when it was never uploaded. 0 when gone. */
static int drop(agent *a, const snap_info *v, int lost)
{
    int rc = upload_delete(a->up, v->name, snap_delete);
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "retention: deleting %s/%s: %s", a->root, v->name,
                  ts_strerror(rc));
        return rc;
    }
    a->snap_bytes = a->snap_bytes > v->disk_bytes ? a->snap_bytes - v->disk_bytes : 0;
    if (lost) {
        a->snapshots_dropped++;
        a->tensors_dropped += v->tensors;
        a->bytes_dropped += v->disk_bytes;
        agent_log(LOG_LEVEL_ERROR, "storage full: dropped snapshot %s before it was uploaded (%s): "
                  "%" PRIu64 " tensor(s), %" PRIu64 " bytes LOST (storage.on_full: drop_oldest)",
                  v->name, snap_state_name(v->state), v->tensors, v->disk_bytes);
    } else {
        agent_log(LOG_LEVEL_INFO, "retention: removed uploaded snapshot %s", v->name);
    }
    return 0;
}

/* Rolling retention: only snapshot.keep uploaded snapshots stay. */
static void retention_tick(agent *a)
{
    size_t n = 0, uploaded = 0;
    snap_info *v = list_snapshots(a, &n);
    for (size_t i = 0; i < n; i++)
        uploaded += v[i].state == SNAP_UPLOADED;
    for (size_t i = 0; i < n && uploaded > a->cfg.snapshot.keep; i++)
        if (v[i].state == SNAP_UPLOADED && drop(a, &v[i], 0) == 0)
            uploaded--;
    free(v);
}

static int over_budget(const agent *a, uint64_t usage, uint64_t avail, uint64_t need)
{
    return (a->cfg.storage.max_disk && !a->stopping && usage + need > a->cfg.storage.max_disk) ||
           avail < a->cfg.storage.min_free + need;
}

/*
 * Makes room for `need` more bytes within storage.max_disk and above
 * storage.min_free: the oldest uploaded snapshots go first, then (on_full:
 * drop_oldest) the oldest ones not uploaded, counted as lost. 0 when the
 * bytes fit, -1 when the commit must wait (reject_new, or nothing left to
 * drop): the batch stays in memory and the broker holds what follows.
 */
static int make_room(agent *a, uint64_t need)
{
    plat_vfs *vfs = plat_vfs_default();
    uint64_t avail = UINT64_MAX, total = 0, usage;
    ts_stats st;
    ts_get_stats(a->store, &st);
    if (vfs->statfs(vfs, a->cfg.storage.dir, &avail, &total))
        avail = UINT64_MAX; /* cannot tell: only max_disk applies */
    usage = st.disk_bytes + a->snap_bytes + SMALL_FILES_RESERVE;
    if (!over_budget(a, usage, avail, need))
        return 0;
    size_t n = 0;
    snap_info *v = list_snapshots(a, &n);
    usage = st.disk_bytes + a->snap_bytes + SMALL_FILES_RESERVE;
    for (int pass = 0; pass < 2 && over_budget(a, usage, avail, need); pass++) {
        if (pass == 1 && a->cfg.storage.on_full != AGENT_ON_FULL_DROP_OLDEST)
            break;
        for (size_t i = 0; i < n && over_budget(a, usage, avail, need); i++) {
            if (!v[i].name[0] || (pass == 0) != (v[i].state == SNAP_UPLOADED))
                continue;
            if (drop(a, &v[i], pass == 1) == 0) {
                usage -= v[i].disk_bytes < usage ? v[i].disk_bytes : usage;
                avail = avail == UINT64_MAX ? avail : avail + v[i].disk_bytes;
            }
            v[i].name[0] = 0;
        }
    }
    free(v);
    if (!over_budget(a, usage, avail, need))
        return 0;
    a->budget_refusals++;
    agent_log_limited(&a->budget_lim, 1, 10000, LOG_LEVEL_WARNING,
                      "storage full: %" PRIu64 " of storage.max_disk %" PRIu64 " bytes used, %"
                      PRIu64 " free (min_free %" PRIu64 "); new data waits until %s",
                      usage, a->cfg.storage.max_disk, avail == UINT64_MAX ? 0 : avail,
                      a->cfg.storage.min_free,
                      a->cfg.storage.on_full == AGENT_ON_FULL_REJECT_NEW
                          ? "a snapshot is uploaded (storage.on_full: reject_new)"
                          : "space frees up (nothing left to drop)");
    return -1;
}

/* Bytes a batch may add on disk: records (header, CRCs, padding), the
 * batch frame, and its share of the SST index written at flush. */
static uint64_t batch_cost(const ts_tensor *t, size_t n)
{
    uint64_t c = 32 + 64;
    for (size_t i = 0; i < n; i++)
        c += 128 + 2 * t[i].key_len + strlen(t[i].name) + 8 * t[i].ndim + t[i].data_len +
             t[i].data_len / 1024 + 8;
    return c;
}

static void take(agent *a, ingest_msg *list)
{
    while (list) {
        ingest_msg *m = list;
        list = list->next;
        m->next = NULL;
        if (!a->pending)
            a->first_ns = (int64_t)plat_mono_ns();
        if (a->pending_tail)
            a->pending_tail->next = m;
        else
            a->pending = m;
        a->pending_tail = m;
        a->n_pending++;
        a->pending_bytes += m->t.data_len;
    }
}

/* Commits the oldest pending messages as one batch of at most
 * batch.max_tensors tensors and batch.max_bytes bytes (at least one
 * message). 0, or -1 when the batch is kept for a retry. */
static int commit(agent *a)
{
    size_t n = 0, i = 0;
    uint64_t bytes = 0;
    for (ingest_msg *m = a->pending; m && n < a->cfg.batch.max_tensors; m = m->next) {
        if (n && bytes + m->t.data_len > a->cfg.batch.max_bytes)
            break;
        bytes += m->t.data_len;
        n++;
    }
    ts_tensor *t = calloc(n ? n : 1, sizeof(*t));
    const ts_tensor **b = calloc(n ? n : 1, sizeof(*b));
    char *keys = malloc((n ? n : 1) * (TS_MAX_KEY_LEN + 1));
    int rc = n ? -1 : 0;
    if (!t || !b || !keys || !n)
        goto out;
    ingest_msg *m = a->pending;
    for (i = 0; i < n; i++, m = m->next) {
        char *k = keys + i * (TS_MAX_KEY_LEN + 1);
        int len = snprintf(k, TS_MAX_KEY_LEN + 1, "%s#%020" PRIu64, m->topic, a->next_key + i);
        if (len < 0 || len > TS_MAX_KEY_LEN)
            len = TS_MAX_KEY_LEN; /* absurdly long topic: truncated key still unique */
        t[i] = (ts_tensor){.key = (const uint8_t *)k, .key_len = (size_t)len, .name = m->topic,
                           .dtype = m->t.dtype, .ndim = m->t.ndim, .timestamp_ns = m->recv_ns,
                           .data = m->t.data, .data_len = m->t.data_len};
        memcpy(t[i].shape, m->t.shape, sizeof(t[i].shape));
        b[i] = &t[i];
    }
    uint64_t cost = batch_cost(t, n);
    ts_stats st;
    ts_get_stats(a->store, &st);
    if (st.disk_bytes > 4096 && st.disk_bytes + cost > a->cfg.snapshot.max_bytes) {
        seal(a, "size");
        if (!a->store) {
            rc = -1;
            goto out;
        }
    }
    if (make_room(a, cost)) {
        rc = -1;
        goto out;
    }
    rc = ts_save_batch(a->store, b, n);
    if (rc) {
        a->commit_failures++;
        agent_log(LOG_LEVEL_ERROR, "commit of %zu tensor(s) failed: %s; kept in memory, retrying",
                  n, ts_errmsg(a->store));
        if (rc == TS_EFAILED || rc == TS_EIO) {
            /* The store is poisoned: reopen it, recovery decides what is on
             * disk. The retry reuses the same keys, so a batch that did
             * reach the disk is overwritten, not duplicated. */
            reopen_store(a);
        }
        rc = -1;
        goto out;
    }
    a->next_key += n;
    a->stored += n;
    a->batches++;
    a->bytes_stored += bytes;
    /* Detach the committed head of the list. */
    ingest_msg *rest = a->pending;
    for (i = 0; i + 1 < n; i++)
        rest = rest->next;
    ingest_msg *done = a->pending;
    a->pending = rest->next;
    rest->next = NULL;
    ingest_msg_free(done);
    if (!a->pending)
        a->pending_tail = NULL;
    a->n_pending -= n;
    a->pending_bytes -= bytes;
out:
    free(t);
    free(b);
    free(keys);
    return rc;
}

static int batch_due(const agent *a)
{
    if (!a->n_pending)
        return 0;
    return a->n_pending >= a->cfg.batch.max_tensors || a->pending_bytes >= a->cfg.batch.max_bytes ||
           (plat_mono_ns() - (uint64_t)a->first_ns) / 1000000 >= a->cfg.batch.max_delay_ms;
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
    if (ingest_update(a->in, &fresh)) {
        agent_log(LOG_LEVEL_ERROR, "reload: out of memory; keeping the running configuration");
        agent_config_free(&fresh);
        return;
    }
    a->cfg.batch = fresh.batch;
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
    agent_log(LOG_LEVEL_NOTICE, "configuration reloaded: %zu subscription(s)", a->cfg.mqtt.n_subs);
}

int agent_run(const char *config_path)
{
    agent a;
    char err[1024];
    int rc = 1;
    memset(&a, 0, sizeof(a));
    if (agent_config_load(config_path, &a.cfg, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "%s", err);
        agent_config_free(&a.cfg);
        return 1;
    }
    agent_log_set_level(a.cfg.log.level);
    if (plat_signals_install() || open_store(&a, 1))
        goto out;
    size_t n_seals = 0;
    if (snap_root(a.cfg.storage.dir, a.root, sizeof(a.root)) ||
        snap_recover(a.store, a.root, &n_seals, err, sizeof(err)))
        agent_log(LOG_LEVEL_ERROR, "snapshot recovery: %s (continuing; that snapshot is left "
                  "alone)", err);
    if (!(a.up = upload_new(&a.cfg, a.root, err, sizeof(err))) || upload_start(a.up)) {
        agent_log(LOG_LEVEL_ERROR, "%s", a.up ? "cannot start the upload thread" : err);
        goto out;
    }
    if (!a.cfg.upload.enabled)
        agent_log(LOG_LEVEL_NOTICE, "no upload section: snapshots stay on flash");
    a.last_seal_ms = mono_ms();
    retention_tick(&a);
    /* Room for two batches plus one message in flight. */
    uint64_t limit = 2 * a.cfg.batch.max_bytes + a.cfg.mqtt.max_payload;
    if (!(a.in = ingest_new(&a.cfg, limit, err, sizeof(err))) ||
        ingest_start(a.in, err, sizeof(err))) {
        agent_log(LOG_LEVEL_ERROR, "%s", err);
        goto out;
    }
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
        if (a.cfg.snapshot.interval_ms && mono_ms() - a.last_seal_ms >= a.cfg.snapshot.interval_ms)
            seal(&a, "interval");
        uint64_t wait = a.n_pending ? 10 : 200;
        take(&a, ingest_pop(a.in, wait));
        while (batch_due(&a) && (!last_retry || mono_ms() - last_retry >= RETRY_MS)) {
            last_retry = 0;
            if (!a.store || commit(&a)) {
                last_retry = mono_ms();
                break;
            }
        }
        ingest_counters c;
        ingest_counters_get(a.in, &c);
        if (!a.ready && c.subscribed) {
            a.ready = 1;
            plat_notify("READY=1");
            agent_log(LOG_LEVEL_NOTICE, "ready: subscribed");
        }
        uint64_t now = mono_ms();
        if (now - last_status >= STATUS_PERIOD_MS ||
            (watchdog_ms && now - last_status >= watchdog_ms / 2)) {
            last_status = now;
            if (a.store)
                retention_tick(&a);
            write_status(&a, a.ready ? "running" : "starting");
            if (watchdog_ms)
                plat_notify("WATCHDOG=1");
        }
    }
    /* Graceful stop: no new messages, commit what arrived, seal it. */
    plat_notify("STOPPING=1");
    agent_log(LOG_LEVEL_NOTICE, "stopping: committing %zu pending tensor(s)", a.n_pending);
    ingest_stop(a.in);
    take(&a, ingest_pop(a.in, 0));
    /* What the broker already handed us is stored even past max_disk (the
     * file system's min_free still holds): a stop must not lose it. */
    a.stopping = 1;
    for (int fails = 0; a.n_pending && fails < 3;)
        if (!a.store || commit(&a))
            fails++;
    if (a.n_pending) {
        agent_log(LOG_LEVEL_ERROR, "%zu tensor(s) could not be stored before exit", a.n_pending);
        goto out;
    }
    if (a.store && ts_flush(a.store, NULL, 0, NULL))
        agent_log(LOG_LEVEL_WARNING, "final flush: %s (data is safe in the WAL)",
                  ts_errmsg(a.store));
    upload_stop(a.up);
    write_status(&a, "stopped");
    agent_log(LOG_LEVEL_NOTICE, "stopped: %" PRIu64 " tensor(s) stored in %" PRIu64 " batch(es)",
              a.stored, a.batches);
    rc = 0;
out:
    upload_free(a.up);
    ingest_free(a.in);
    ingest_msg_free(a.pending);
    ts_close(a.store);
    agent_config_free(&a.cfg);
    return rc;
}
