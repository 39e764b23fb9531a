/*
 * test_dedup_crash.c -- power cuts under the de-duplication table
 * (agent/watermark.h, agent/wm_store.h) through the fault-injecting vfs.
 *
 * A workload commits batches the way the agent does (wm_begin, wm_take
 * per tagged message, the data tensors plus wm_record's record in one
 * ts_save_batch, wm_commit once it returned) from two publishers, with
 * republished copies mixed in, and now and then seals a snapshot
 * (snap_begin) and saves the table alone (wm_store_save), as the agent's
 * main loop does after a seal, sometimes sealing a capture window of the
 * data (snap_capture) in between, as a window that comes due right after a
 * size seal is. The power is cut before every one of its
 * mutating calls in turn, dropping what was not synced (torn on odd
 * seeds). After the agent's start sequence (ts_open, snap_recover,
 * wm_store_recover) it asserts the invariant:
 *   - the table read back is exactly the set of ids on flash (store and
 *     snapshots), per publisher: "id recorded, tensor lost" and "tensor
 *     stored, id lost" never happen;
 *   - no id is on flash twice; every batch whose save returned is there;
 * and then, republishing every id once more through the recovered table,
 * that every id ends up on flash exactly once.
 *
 * Each tensor carries its message id as its timestamp and its publisher in
 * its name, so a key scan tells them apart. EMBEDDB_CRASH_SEED: first seed.
 */
#include "../core/test_util.h"

#include "watermark.h"
#include "wm_store.h"

#include "embeddb/plat_fault.h"
#include "embeddb/snapshot.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define STEPS 24
#define SEEDS 2
#define NPUB 2
#define MAXSEQ 128

typedef struct rig {
    char *base;
    char store[4096], shadow[4096], root[4096];
    plat_vfs *fv;
    ts_store *s;
    watermark w;
    uint64_t next_key;
    int acked[NPUB][MAXSEQ + 1];  /* in a batch whose save returned 0 */
    int count[NPUB][MAXSEQ + 1];  /* on flash, counted by scan */
} rig;

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int rig_open(rig *r)
{
    ts_options o;
    char err[512];
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.insert_only = 1;
    o.vfs = r->fv;
    o.memtable_max = 8192; /* flushes happen within the workload */
    int rc = ts_open(r->store, &o, &r->s, err, sizeof(err));
    if (rc)
        return rc;
    ts_stats st;
    ts_get_stats(r->s, &st);
    r->next_key = st.next_seq;
    return 0;
}

/* One batch of messages (pub, seq) as the agent commits it: 0 or a save error. */
static int commit(rig *r, const int *pub, const uint64_t *seq, size_t n)
{
    static const char *const names[NPUB] = {"d/0", "d/1"};
    char keys[8][48];
    uint64_t one = 1;
    ts_tensor t[8];
    const ts_tensor *p[9];
    size_t k = 0;
    int err = 0;
    wm_begin(&r->w);
    for (size_t i = 0; i < n; i++) {
        char id[8];
        snprintf(id, sizeof(id), "p%d", pub[i]);
        if (wm_take(&r->w, id, seq[i], r->next_key + k))
            continue;
        snprintf(keys[k], sizeof(keys[k]), "%s#%020llu", names[pub[i]],
                 (unsigned long long)(r->next_key + k));
        t[k] = (ts_tensor){.key = (const uint8_t *)keys[k], .key_len = strlen(keys[k]),
                           .name = names[pub[i]], .dtype = TS_U64, .ndim = 1,
                           .timestamp_ns = (int64_t)seq[i], .data = &one, .data_len = 8};
        t[k].shape[0] = 1;
        p[k] = &t[k];
        k++;
    }
    if (!k)
        return 0;
    p[k] = wm_record(&r->w, 1, r->next_key + k, 0, &err);
    assert_non_null(p[k]);
    int rc = ts_save_batch(r->s, p, k + 1);
    if (rc)
        return rc;
    wm_commit(&r->w);
    r->next_key += k + 1;
    for (size_t i = 0; i < k; i++)
        r->acked[t[i].name[2] - '0'][t[i].timestamp_ns] = 1;
    return 0;
}

static int match_prefix(void *ctx, const char *filter, const char *name)
{
    (void)ctx;
    return !strncmp(name, filter, strlen(filter));
}

/* A capture window of every d/ tensor; the key counter moves past its
 * copies' as the agent's does. 0 or snap_capture's error. */
static int capture(rig *r)
{
    static const char *const filters[] = {"d/"};
    char name[SNAP_NAME_MAX], err[512];
    uint64_t n = 0;
    snap_window w = {.label = "w", .from_ns = 0, .to_ns = MAXSEQ + 1, .filters = filters,
                     .n_filters = 1, .match = match_prefix};
    ts_stats st;
    int rc = snap_capture(r->fv, r->s, r->root, "dev", &w, name, sizeof(name), &n, err,
                          sizeof(err));
    ts_get_stats(r->s, &st);
    if (st.next_seq > r->next_key)
        r->next_key = st.next_seq;
    return rc == TS_ENOTFOUND ? 0 : rc;
}

/* The workload of seed x until it is done or the power is cut. */
static void workload(rig *r, uint64_t x)
{
    uint64_t next[NPUB] = {1, 1};
    for (int step = 0; step < STEPS && !plat_fault_crashed(r->fv); step++) {
        int pub[4];
        uint64_t seq[4];
        size_t n = 1 + rnd(&x) % 4;
        for (size_t i = 0; i < n; i++) {
            pub[i] = (int)(rnd(&x) % NPUB);
            /* a republished copy one time in three */
            if (next[pub[i]] > 1 && rnd(&x) % 3 == 0)
                seq[i] = 1 + rnd(&x) % (next[pub[i]] - 1);
            else
                seq[i] = next[pub[i]]++;
        }
        if (commit(r, pub, seq, n))
            return;
        if (rnd(&x) % 6 == 0) {
            char name[SNAP_NAME_MAX], err[512];
            ts_checkpoint_info info;
            int rc = snap_begin(r->fv, r->s, r->root, "dev", name, sizeof(name), &info, err,
                                sizeof(err));
            if (rc && rc != TS_ENOTFOUND)
                return;
            /* A capture window that comes due in the same loop turn is
             * sealed before the table is saved again (the agent's
             * capture_due commits, which may seal, then captures): the
             * newest snapshot is then a copy of d/ data without a record. */
            if (!rc && rnd(&x) % 4 == 0 && capture(r))
                return;
            if (!rc && wm_store_save(&r->w, r->s, &r->next_key))
                return;
        }
    }
}

static int count_one(void *ctx, const ts_entry *e)
{
    rig *r = ctx;
    assert_true(e->timestamp_ns >= 1 && e->timestamp_ns <= MAXSEQ);
    r->count[e->name[2] - '0'][e->timestamp_ns]++;
    return 0;
}

/* Counts every data tensor in the store and its snapshots. */
static void count_all(rig *r)
{
    char **names = NULL, path[8192], err[512];
    size_t n = 0;
    memset(r->count, 0, sizeof(r->count));
    assert_int_equal(ts_scan_prefix(r->s, "d/", 2, count_one, r), 0);
    plat_stat st;
    if (r->fv->stat(r->fv, r->root, &st) == -ENOENT)
        return;
    assert_int_equal(plat_dir_list(r->fv, r->root, "", &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        /* after snap_recover only finished snapshots and .seal-NAME remain;
         * a capture window holds copies, not the data itself */
        if (!snap_name_ok(names[i], NULL) &&
            !(strncmp(names[i], ".seal-", 6) == 0 && snap_name_ok(names[i] + 6, NULL)))
            continue;
        snprintf(path, sizeof(path), "%s/%s", r->root, names[i]);
        if (snap_is_capture(r->fv, path))
            continue;
        ts_options o;
        ts_store *c = NULL;
        ts_options_init(&o);
        o.read_only = 1;
        o.vfs = r->fv;
        assert_int_equal(ts_open(path, &o, &c, err, sizeof(err)), 0);
        assert_int_equal(ts_scan_prefix(c, "d/", 2, count_one, r), 0);
        ts_close(c);
    }
    free(names);
}

/* The table says exactly what is on flash, nothing is there twice, every
 * acknowledged batch is there. */
static void check_invariant(rig *r)
{
    count_all(r);
    for (int p = 0; p < NPUB; p++) {
        char id[8];
        const wm_pub *e = NULL;
        snprintf(id, sizeof(id), "p%d", p);
        for (size_t i = 0; i < r->w.n; i++)
            if (!strcmp(r->w.pubs[i].id, id))
                e = &r->w.pubs[i];
        for (uint64_t s = 1; s <= MAXSEQ; s++) {
            int in_table = e && (s <= e->through ||
                                 (s - e->through - 1 < WM_WINDOW &&
                                  (e->bits[(s - e->through - 1) / 64] >>
                                   ((s - e->through - 1) % 64) & 1)));
            if (r->count[p][s] > 1)
                fail_msg("p%d id %llu on flash %d times", p, (unsigned long long)s,
                         r->count[p][s]);
            if (in_table != r->count[p][s])
                fail_msg("p%d id %llu: %s the table, %s flash", p, (unsigned long long)s,
                         in_table ? "in" : "not in", r->count[p][s] ? "on" : "not on");
            if (r->acked[p][s] && !r->count[p][s])
                fail_msg("p%d id %llu acknowledged, lost", p, (unsigned long long)s);
        }
    }
}

static void trial(uint64_t seed, unsigned cut, unsigned long *used)
{
    rig r;
    char from[64], err[1024];
    size_t n_seals;
    memset(&r, 0, sizeof(r));
    r.base = tu_tmpdir("dedupcrash");
    snprintf(r.store, sizeof(r.store), "%s/store", r.base);
    snprintf(r.shadow, sizeof(r.shadow), "%s/shadow", r.base);
    assert_int_equal(snap_root(r.store, r.root, sizeof(r.root)), 0);
    assert_non_null(r.fv = plat_fault_new(plat_vfs_default(), r.shadow, seed));
    assert_int_equal(wm_init(&r.w, 8, 1), 0);
    assert_int_equal(rig_open(&r), 0);
    unsigned long before = plat_fault_mutations(r.fv);
    plat_fault_crash_at(r.fv, cut, (int)(seed & 1));
    workload(&r, seed * 0x9E3779B97F4A7C15ull + 1);
    if (used)
        *used = plat_fault_mutations(r.fv) - before;
    if (!plat_fault_crashed(r.fv))
        assert_int_equal(plat_fault_crash(r.fv, (int)(seed & 1)), 0);
    plat_fault_crash_at(r.fv, 0, 0);
    plat_fault_revive(r.fv);
    ts_close(r.s);
    r.s = NULL;
    /* the agent's start: open, snapshot recovery, the table */
    wm_free(&r.w);
    assert_int_equal(wm_init(&r.w, 8, 1), 0);
    assert_int_equal(rig_open(&r), 0);
    if (snap_recover(r.fv, r.s, r.root, &n_seals, err, sizeof(err)))
        fail_msg("snap_recover: %s", err);
    ts_stats st;
    ts_get_stats(r.s, &st);
    r.next_key = st.next_seq;
    if (wm_store_recover(&r.w, r.fv, r.s, r.root, &r.next_key, from, sizeof(from), err,
                         sizeof(err)))
        fail_msg("seed %llu cut %u: %s", (unsigned long long)seed, cut, err);
    check_invariant(&r);
    /* the publishers send everything again: each id once on flash */
    for (int p = 0; p < NPUB; p++)
        for (uint64_t s = 1; s <= MAXSEQ; s++)
            if (r.acked[p][s] || r.count[p][s] || s <= 12)
                assert_int_equal(commit(&r, &p, &s, 1), 0);
    count_all(&r);
    for (int p = 0; p < NPUB; p++)
        for (uint64_t s = 1; s <= 12; s++)
            assert_int_equal(r.count[p][s], 1);
    check_invariant(&r);
    wm_free(&r.w);
    ts_close(r.s);
    plat_fault_free(r.fv);
    tu_rmtree(r.base);
    free(r.base);
}

static void test_table_matches_flash_at_every_cut(void **state)
{
    (void)state;
    const char *env = getenv("EMBEDDB_CRASH_SEED");
    uint64_t first = env ? strtoull(env, NULL, 10) : 1;
    for (uint64_t seed = first; seed < first + SEEDS; seed++) {
        unsigned long total = 0;
        trial(seed, 0, &total); /* no cut: how many calls the workload makes */
        assert_true(total > 20);
        for (unsigned cut = 1; cut <= total + 1; cut++)
            trial(seed, cut, NULL);
        print_message("seed %llu: cut at each of %lu calls\n", (unsigned long long)seed, total);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_flash_at_every_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
