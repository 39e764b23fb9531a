/*
 * test_snapshot_crash.c -- power cuts through the snapshot lifecycle
 * (agent/snapshot.c) on the fault-injecting vfs, at every system call.
 *
 * A workload does what the agent does, on one thread: batches keyed by the
 * store's next sequence number (<t>#<20 digits>, as the agent keys by its
 * arrival counter), seals (snap_begin), finishing (hashes, MANIFEST.json,
 * STATE), upload state transitions (sealed -> uploading -> uploaded),
 * retention deletes of uploaded snapshots, a capture window (snap_capture:
 * copies of the newest few tensors, read from the store and the rolling
 * snapshots; one a workload, in its second half), and flushes. The power is cut
 * at one mutating call; then recovery runs as the agent's start does
 * (reopen, snap_recover, the seq floor, snap_finish_all) and the
 * invariants are checked:
 *   - every acknowledged tensor is in exactly one place -- the live store
 *     or one rolling snapshot -- with its bytes and the seq it was saved
 *     with (a capture never takes a tensor away: it holds copies, with the
 *     right bytes, of acknowledged tensors only, under new seqs);
 *     only a snapshot whose "uploaded" STATE was durable before its
 *     deletion began may have taken its tensors away; a batch whose save
 *     did not return is wholly present once or wholly absent;
 *   - sequence numbers only rise: next_seq lies above every seq anywhere,
 *     and a key made from it is new in the store and in every snapshot;
 *   - every snapshot is whole: listed as sealed or uploaded (nothing
 *     failed, sealing or uploading after recovery), named after its first
 *     seq, its files match MANIFEST.json, its tar length matches STATE;
 *     no .seal-new, .del-* or *.tmp is left;
 *   - the store and the snapshot root take new work (save, seal, finish).
 *
 * A second test cuts the power again during that recovery and the first
 * work after it, at every call, and checks the same after the next one.
 *
 * EMBEDDB_SNAP_CRASH_SEEDS sets how many workloads are cut at every one of
 * their calls (default 3), EMBEDDB_CRASH_SEED the first (default 1).
 */
#include "../core/test_util.h"

#include "embeddb/snapshot.h"

#include "embeddb/plat_fault.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define STEPS 60
#define MAX_KEYS 256
#define MAX_SNAPS 32
#define N_ELEMS 16
#define DEVICE "dev"

typedef struct model {
    int state[MAX_KEYS];        /* 0 never saved, 1 acknowledged, 2 save cut short */
    uint32_t batch[MAX_KEYS];   /* batch number of the key */
    char snap[MAX_KEYS][SNAP_NAME_MAX]; /* sealed into (snap_begin returned 0) */
    char uploaded[MAX_SNAPS][SNAP_NAME_MAX]; /* "uploaded" STATE durable */
    size_t n_uploaded;
    uint64_t next_key;          /* one above the highest counter saved */
} model;

typedef struct rig {
    char *base;
    char store[4096], root[4096], shadow[4096];
    plat_vfs *fv;
    ts_store *s;
} rig;

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void key_of(uint64_t c, char out[32])
{
    snprintf(out, 32, "t#%020llu", (unsigned long long)c);
}

static float value(uint64_t c, size_t k)
{
    return (float)c * 10.0f + (float)k;
}

static int rig_open(rig *r, char *err, size_t errlen)
{
    ts_options o;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.insert_only = 1;
    o.memtable_max = 3000;
    o.vfs = r->fv;
    return ts_open(r->store, &o, &r->s, err, errlen);
}

static void rig_init(rig *r, uint64_t seed)
{
    char err[1024];
    memset(r, 0, sizeof(*r));
    r->base = tu_tmpdir("snapcrash");
    snprintf(r->store, sizeof(r->store), "%s/store", r->base);
    snprintf(r->shadow, sizeof(r->shadow), "%s/shadow", r->base);
    snap_root(r->store, r->root, sizeof(r->root));
    r->fv = plat_fault_new(plat_vfs_default(), r->shadow, seed);
    assert_non_null(r->fv);
    if (rig_open(r, err, sizeof(err)))
        fail_msg("open: %s", err);
}

static void rig_free(rig *r)
{
    ts_close(r->s);
    plat_fault_free(r->fv);
    tu_rmtree(r->base);
    free(r->base);
}

static uint64_t next_seq(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.next_seq;
}

/* Saves a batch of n tensors keyed from the store's next_seq. */
static int save_batch(rig *r, model *m, uint32_t batch_no, uint32_t n)
{
    char keys[3][32];
    float data[3][N_ELEMS];
    ts_tensor t[3];
    const ts_tensor *b[3];
    uint64_t c0 = next_seq(r->s);
    for (uint32_t j = 0; j < n; j++) {
        key_of(c0 + j, keys[j]);
        for (size_t k = 0; k < N_ELEMS; k++)
            data[j][k] = value(c0 + j, k);
        t[j] = (ts_tensor){.key = (const uint8_t *)keys[j], .key_len = strlen(keys[j]),
                           .name = "t", .dtype = TS_F32, .ndim = 1, .shape = {N_ELEMS},
                           .timestamp_ns = (int64_t)(c0 + j), .data = data[j],
                           .data_len = sizeof(data[j])};
        b[j] = &t[j];
    }
    assert_true(c0 + n < MAX_KEYS);
    int rc = ts_save_batch(r->s, b, n);
    for (uint32_t j = 0; j < n; j++) {
        m->state[c0 + j] = rc ? 2 : 1;
        m->batch[c0 + j] = batch_no;
    }
    if (c0 + n > m->next_key)
        m->next_key = c0 + n;
    return rc;
}

static int was_uploaded(const model *m, const char *name)
{
    for (size_t i = 0; i < m->n_uploaded; i++)
        if (!strcmp(m->uploaded[i], name))
            return 1;
    return 0;
}

/* The workload; stops at the first failed call (the crash). */
static int match_all(void *ctx, const char *filter, const char *name)
{
    (void)ctx;
    (void)filter;
    (void)name;
    return 1;
}

static void workload(rig *r, model *m, uint64_t seed)
{
    char err[1024], name[SNAP_NAME_MAX];
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
    uint32_t batch_no = 0;
    for (int step = 0; step < STEPS && !plat_fault_crashed(r->fv); step++) {
        unsigned op = (unsigned)(rnd(&x) % 12);
        if (step == STEPS / 2) {
            /* one capture a workload (each costs a store of its own: many
             * calls), of the newest few timestamps (a tensor's is its seq) */
            static const char *const all[] = {"#"};
            uint64_t top = next_seq(r->s), n = 0;
            snap_window w = {.label = "cut", .trigger_ns = (int64_t)top,
                             .from_ns = (int64_t)top - 6, .to_ns = (int64_t)top,
                             .filters = all, .n_filters = 1, .match = match_all};
            int rc = snap_capture(r->fv, r->s, r->root, DEVICE, &w, name, sizeof(name), &n,
                                  err, sizeof(err));
            if (rc && rc != TS_ENOTFOUND)
                return;
            continue;
        }
        if (op <= 5) {
            if (save_batch(r, m, ++batch_no, 1 + (uint32_t)(rnd(&x) % 3)))
                return;
        } else if (op == 6) {
            ts_checkpoint_info info;
            int rc = snap_begin(r->fv, r->s, r->root, DEVICE, name, sizeof(name), &info, err,
                                sizeof(err));
            if (rc == TS_ENOTFOUND)
                continue;
            if (rc)
                return;
            for (uint64_t c = 1; c < m->next_key; c++)
                if (m->state[c] == 1 && !m->snap[c][0])
                    snprintf(m->snap[c], SNAP_NAME_MAX, "%s", name);
        } else if (op == 7) {
            size_t done = 0, failed = 0;
            if (snap_finish_all(r->fv, r->root, DEVICE, &done, &failed, err, sizeof(err)))
                return;
        } else if (op == 8) {
            snap_info *v = NULL;
            size_t n = 0;
            if (snap_list(r->fv, r->root, &v, &n, NULL, 1))
                return;
            for (size_t i = 0; i < n; i++)
                if (v[i].state == SNAP_SEALED) {
                    v[i].state = SNAP_UPLOADING;
                    v[i].attempts++;
                    if (snap_write_state(r->fv, r->root, &v[i]))
                        break;
                    v[i].state = SNAP_UPLOADED;
                    if (snap_write_state(r->fv, r->root, &v[i]))
                        break;
                    assert_true(m->n_uploaded < MAX_SNAPS);
                    snprintf(m->uploaded[m->n_uploaded++], SNAP_NAME_MAX, "%s", v[i].name);
                    break;
                }
            free(v);
        } else if (op == 9 || op == 10) {
            snap_info *v = NULL;
            size_t n = 0;
            if (snap_list(r->fv, r->root, &v, &n, NULL, 1))
                return;
            for (size_t i = 0; i < n; i++)
                if (v[i].state == SNAP_UPLOADED && snap_delete(r->fv, r->root, v[i].name))
                    break;
            free(v);
        } else {
            if (ts_flush(r->s, NULL, 0, NULL))
                return;
        }
    }
}

/* What the agent does at start, after the power came back. */
static void recover(rig *r, unsigned crash_at)
{
    char err[1024];
    size_t n_seals = 0, done = 0, failed = 0;
    uint64_t floor = 0;
    if (rig_open(r, err, sizeof(err)))
        fail_msg("crash at %u: reopen failed: %s", crash_at, err);
    if (snap_recover(r->fv, r->s, r->root, &n_seals, err, sizeof(err)))
        fail_msg("crash at %u: snapshot recovery: %s", crash_at, err);
    if (snap_seq_floor(r->fv, r->root, &floor, err, sizeof(err)))
        fail_msg("crash at %u: seq floor: %s", crash_at, err);
    assert_int_equal(ts_raise_seq(r->s, floor), 0);
    if (snap_finish_all(r->fv, r->root, DEVICE, &done, &failed, err, sizeof(err)))
        fail_msg("crash at %u: finishing seals: %s", crash_at, err);
    assert_int_equal(failed, 0);
}

/* 1 when key c loads from s with its bytes and seq (any seq: a capture's
 * copy); fails if it loads wrong. */
static int holds_as(ts_store *s, uint64_t c, const char *where, unsigned crash_at, int copy)
{
    char key[32];
    ts_tensor *t = NULL;
    key_of(c, key);
    int rc = ts_load(s, key, strlen(key), &t);
    if (rc == TS_ENOTFOUND)
        return 0;
    if (rc)
        fail_msg("crash at %u: %s: key %llu: %s", crash_at, where, (unsigned long long)c,
                 ts_errmsg(s));
    if ((!copy && t->seq != c) || t->data_len != N_ELEMS * sizeof(float))
        fail_msg("crash at %u: %s: key %llu came back as seq %llu, %zu bytes", crash_at, where,
                 (unsigned long long)c, (unsigned long long)t->seq, t->data_len);
    for (size_t k = 0; k < N_ELEMS; k++)
        if (((const float *)t->data)[k] != value(c, k))
            fail_msg("crash at %u: %s: key %llu has wrong data", crash_at, where,
                     (unsigned long long)c);
    ts_tensor_free(t);
    return 1;
}

static int holds(ts_store *s, uint64_t c, const char *where, unsigned crash_at)
{
    return holds_as(s, c, where, crash_at, 0);
}

static int leftover(void *ctx, const char *name)
{
    const char *dir = ctx;
    size_t n = strlen(name);
    if (!strcmp(name, ".seal-new") || !strcmp(name, ".capture-new") ||
        !strncmp(name, ".del-", 5) ||
        !strncmp(name, ".seal-", 6) || (n > 4 && !strcmp(name + n - 4, ".tmp")))
        fail_msg("leftover %s/%s after recovery", dir, name);
    return 0;
}

static void check(rig *r, const model *m, unsigned crash_at)
{
    char err[1024], dir[4400];
    snap_info *v = NULL;
    size_t n = 0;
    ts_store *snaps[MAX_SNAPS] = {0};
    uint64_t top = 0; /* highest seq anywhere */
    assert_int_equal(snap_list(r->fv, r->root, &v, &n, NULL, 1), 0);
    assert_true(n <= MAX_SNAPS);
    r->fv->listdir(r->fv, r->root, leftover, r->root);
    for (size_t i = 0; i < n; i++) {
        ts_options o;
        ts_stats st;
        uint64_t bad = 0, seq = 0;
        if (v[i].state != SNAP_SEALED && v[i].state != SNAP_UPLOADED)
            fail_msg("crash at %u: snapshot %s is %s after recovery (%s)", crash_at, v[i].name,
                     snap_state_name(v[i].state), v[i].error);
        assert_true(snap_name_ok(v[i].name, &seq));
        snprintf(dir, sizeof(dir), "%s/%s", r->root, v[i].name);
        r->fv->listdir(r->fv, dir, leftover, dir);
        if (snap_verify(r->fv, r->root, v[i].name, NULL, NULL, &bad))
            fail_msg("crash at %u: snapshot %s does not verify (%llu bad)", crash_at, v[i].name,
                     (unsigned long long)bad);
        tar_member *tm = NULL;
        size_t ntm = 0;
        assert_int_equal(snap_members(r->fv, r->root, v[i].name, &tm, &ntm), 0);
        assert_int_equal(tar_stream_len(tm, ntm), v[i].tar_bytes);
        free(tm);
        ts_options_init(&o);
        o.read_only = 1;
        o.vfs = r->fv;
        if (ts_open(dir, &o, &snaps[i], err, sizeof(err)))
            fail_msg("crash at %u: snapshot %s does not open: %s", crash_at, v[i].name, err);
        ts_get_stats(snaps[i], &st);
        if (st.next_seq - 1 > top)
            top = st.next_seq - 1;
        (void)seq;
    }
    for (uint64_t c = 1; c < m->next_key; c++) {
        int copies = holds(r->s, c, "store", crash_at), in_snap = -1;
        for (size_t i = 0; i < n; i++) {
            if (v[i].capture[0]) {
                if (holds_as(snaps[i], c, v[i].name, crash_at, 1) && m->state[c] == 0)
                    fail_msg("crash at %u: capture %s holds key %llu, never saved", crash_at,
                             v[i].name, (unsigned long long)c);
                continue;
            }
            if (holds(snaps[i], c, v[i].name, crash_at)) {
                copies++;
                in_snap = (int)i;
            }
        }
        if (copies && c > top)
            top = c;
        if (copies > 1)
            fail_msg("crash at %u: key %llu is in %d places", crash_at, (unsigned long long)c,
                     copies);
        if (in_snap >= 0 && snap_name_ok(v[in_snap].name, NULL)) {
            uint64_t first = 0;
            snap_name_ok(v[in_snap].name, &first);
            if (first > c)
                fail_msg("crash at %u: snapshot %s named after a seq above %llu it holds",
                         crash_at, v[in_snap].name, (unsigned long long)c);
        }
        if (m->state[c] == 1 && !copies && !(m->snap[c][0] && was_uploaded(m, m->snap[c])))
            fail_msg("crash at %u: acknowledged key %llu lost (sealed into '%s')", crash_at,
                     (unsigned long long)c, m->snap[c]);
    }
    /* A batch cut short is wholly there or wholly absent (in the store: a
     * batch never reached a snapshot before its save returned). */
    for (uint64_t c = 2; c < m->next_key; c++)
        if (m->state[c] == 2 && m->batch[c - 1] == m->batch[c] &&
            holds(r->s, c, "store", crash_at) != holds(r->s, c - 1, "store", crash_at))
            fail_msg("crash at %u: batch %u is partly visible", crash_at, m->batch[c]);
    if (next_seq(r->s) <= top)
        fail_msg("crash at %u: next_seq %llu but seq %llu is stored", crash_at,
                 (unsigned long long)next_seq(r->s), (unsigned long long)top);
    /* A key made from next_seq is new everywhere. */
    uint64_t c = next_seq(r->s);
    for (size_t i = 0; i < n; i++) {
        if (c < MAX_KEYS && holds(snaps[i], c, v[i].name, crash_at))
            fail_msg("crash at %u: next_seq %llu names a key in %s", crash_at,
                     (unsigned long long)c, v[i].name);
        ts_close(snaps[i]);
    }
    free(v);
}

/* New work after recovery: a save, a seal, its finishing. */
static void goes_on(rig *r, model *m, unsigned crash_at)
{
    char err[1024], name[SNAP_NAME_MAX];
    ts_checkpoint_info info;
    size_t done = 0, failed = 0;
    if (next_seq(r->s) + 2 >= MAX_KEYS)
        return;
    assert_int_equal(save_batch(r, m, 100000, 2), 0);
    if (snap_begin(r->fv, r->s, r->root, DEVICE, name, sizeof(name), &info, err, sizeof(err)))
        fail_msg("crash at %u: a new seal after recovery: %s", crash_at, err);
    if (snap_finish_all(r->fv, r->root, DEVICE, &done, &failed, err, sizeof(err)) || !done)
        fail_msg("crash at %u: finishing a new seal after recovery: %s", crash_at, err);
}

/* Recovery and the first new work after it, as at the agent's start, with
 * a power cut armed: stops at the first call that fails (the cut). */
static void recover_and_go_on_until_cut(rig *r, model *m)
{
    char err[1024], name[SNAP_NAME_MAX];
    size_t n_seals = 0, done = 0, failed = 0;
    uint64_t floor = 0;
    ts_checkpoint_info info;
    if (rig_open(r, err, sizeof(err)) ||
        snap_recover(r->fv, r->s, r->root, &n_seals, err, sizeof(err)) ||
        snap_seq_floor(r->fv, r->root, &floor, err, sizeof(err)) || ts_raise_seq(r->s, floor) ||
        snap_finish_all(r->fv, r->root, DEVICE, &done, &failed, err, sizeof(err)))
        return;
    if (next_seq(r->s) + 2 >= MAX_KEYS || save_batch(r, m, 100001, 2) ||
        snap_begin(r->fv, r->s, r->root, DEVICE, name, sizeof(name), &info, err, sizeof(err)))
        return;
    for (uint64_t c = 1; c < m->next_key; c++)
        if (m->state[c] == 1 && !m->snap[c][0])
            snprintf(m->snap[c], SNAP_NAME_MAX, "%s", name);
    snap_finish_all(r->fv, r->root, DEVICE, &done, &failed, err, sizeof(err));
}

/* One workload cut at mutating call crash_at (0: not cut). With
 * recovery_cut, the recovery after it (and the new work after that) is cut
 * too, at its mutating call recovery_cut, or right after it when it makes
 * fewer; *recovery_used (optional) gets the number it made. Returns the
 * number of mutating calls the workload made. */
static unsigned long trial_cut(uint64_t seed, unsigned crash_at, unsigned recovery_cut,
                               unsigned long *recovery_used)
{
    rig r;
    model *m = calloc(1, sizeof(*m));
    rig_init(&r, seed);
    m->next_key = 1;
    unsigned long before = plat_fault_mutations(r.fv);
    plat_fault_crash_at(r.fv, crash_at, (int)(seed & 1));
    workload(&r, m, seed);
    unsigned long used = plat_fault_mutations(r.fv) - before;
    if (!plat_fault_crashed(r.fv))
        assert_int_equal(plat_fault_crash(r.fv, (int)(seed & 1)), 0);
    ts_close(r.s);
    r.s = NULL;
    plat_fault_revive(r.fv);
    if (recovery_cut) {
        before = plat_fault_mutations(r.fv);
        plat_fault_crash_at(r.fv, recovery_cut, (int)(seed >> 1 & 1));
        recover_and_go_on_until_cut(&r, m);
        if (recovery_used)
            *recovery_used = plat_fault_mutations(r.fv) - before;
        if (!plat_fault_crashed(r.fv))
            assert_int_equal(plat_fault_crash(r.fv, (int)(seed >> 1 & 1)), 0);
        ts_close(r.s);
        r.s = NULL;
        plat_fault_revive(r.fv);
    }
    plat_fault_crash_at(r.fv, 0, 0);
    /* Failures name the cut: "crash at K", or K * 1000 + J when recovery
     * was cut at its call J too (it makes far fewer than 1000). */
    unsigned id = recovery_cut ? crash_at * 1000 + recovery_cut : crash_at;
    recover(&r, id);
    check(&r, m, id);
    goes_on(&r, m, id);
    rig_free(&r);
    free(m);
    return used;
}

static unsigned long trial(uint64_t seed, unsigned crash_at)
{
    return trial_cut(seed, crash_at, 0, NULL);
}

static void test_power_cut_at_every_call_of_the_snapshot_lifecycle(void **state)
{
    (void)state;
    const char *ns = getenv("EMBEDDB_SNAP_CRASH_SEEDS");
    const char *sd = getenv("EMBEDDB_CRASH_SEED");
    unsigned long seeds = ns ? strtoul(ns, NULL, 10) : 3;
    unsigned long first = sd ? strtoul(sd, NULL, 10) : 1;
    unsigned long points = 0;
    for (unsigned long s = first; s < first + seeds; s++) {
        unsigned long n = trial(s, 0);
        assert_true(n >= 20);
        for (unsigned k = 1; k <= n + 1; k++)
            trial(s, k);
        points += n + 1;
    }
    print_message("%lu seeds, %lu crash points through seals, finishing, STATE, deletes\n",
                  seeds, points);
}

/* Recovery itself may be cut short, and so may the first work after it.
 * Each workload is cut at RECOVERY_CUTS points picked from its seed
 * (leaving .seal-new, .del-*, .seal-NAME, uploading STATEs and *.tmp files
 * behind at one point or another); then the recovery after it, and a save,
 * seal and finish after that, are cut at every one of their mutating calls
 * and after all of them; the next recovery must still meet every invariant
 * above. EMBEDDB_SNAP_RECOVERY_CUTS overrides RECOVERY_CUTS; "all" cuts
 * each workload at every one of its calls (long: ~60 recoveries each). */
#define RECOVERY_CUTS 4
static void test_power_cut_during_recovery_and_the_work_after_it(void **state)
{
    (void)state;
    const char *ns = getenv("EMBEDDB_SNAP_CRASH_SEEDS");
    const char *sd = getenv("EMBEDDB_CRASH_SEED");
    const char *nc = getenv("EMBEDDB_SNAP_RECOVERY_CUTS");
    unsigned long seeds = ns ? strtoul(ns, NULL, 10) : 3;
    unsigned long first = sd ? strtoul(sd, NULL, 10) : 1;
    int all = nc && !strcmp(nc, "all");
    unsigned long cuts = nc && !all ? strtoul(nc, NULL, 10) : RECOVERY_CUTS;
    unsigned long points = 0;
    for (unsigned long s = first; s < first + seeds; s++) {
        unsigned long n = trial(s, 0);
        uint64_t x = s * 0x2545f4914f6cdd1dull + 1;
        for (unsigned long c = 0; c < (all ? n + 1 : cuts); c++) {
            unsigned k = all ? (unsigned)c + 1 : 1 + (unsigned)(rnd(&x) % (n + 1));
            unsigned long used = 0;
            for (unsigned j = 1; j == 1 || j <= used + 1; j++) {
                trial_cut(s, k, j, &used);
                points++;
            }
        }
    }
    print_message("%lu seeds, %lu crash points in recovery and the work after it\n", seeds,
                  points);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_cut_at_every_call_of_the_snapshot_lifecycle),
        cmocka_unit_test(test_power_cut_during_recovery_and_the_work_after_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
