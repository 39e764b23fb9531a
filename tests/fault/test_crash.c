/*
 * test_crash.c -- power cuts and failing system calls under the engine,
 * through the fault-injecting vfs (platform/plat_fault.h).
 *
 * The crash test runs a random workload of batches and flushes, cuts the
 * power at a random system call (dropping every byte and directory entry not
 * yet synced, sometimes keeping a torn prefix of unsynced bytes), reopens,
 * and asserts: the open succeeds, every acknowledged batch is present with
 * its exact bytes, no batch is partly visible, what is present is a prefix
 * of what was written, verify finds nothing, and the store takes new writes.
 * Sequence numbers: every tensor that came back carries the seq it was
 * given when it was saved; the reopened store's next_seq lies above every
 * seq it ever handed out for a batch that is present; and a key made from
 * next_seq (as the agent makes its keys) is new: no committed key is ever
 * replaced by a later save.
 *
 * EMBEDDB_CRASH_TRIALS sets the number of trials (default 300);
 * EMBEDDB_CRASH_SEED the first seed (default 1).
 */
#include "../core/test_util.h"
#include "../core/v1_fixture.h"

#include "embeddb/plat_fault.h"

#include <dirent.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define MAX_BATCHES 120
#define MAX_PER_BATCH 4

typedef struct rig {
    char *base;
    char store[4096];
    char shadow[4096];
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

static void rig_init(rig *r, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->base = tu_tmpdir("crash");
    snprintf(r->store, sizeof(r->store), "%s/store", r->base);
    snprintf(r->shadow, sizeof(r->shadow), "%s/shadow", r->base);
    r->fv = plat_fault_new(plat_vfs_default(), r->shadow, seed);
    assert_non_null(r->fv);
}

static void rig_free(rig *r)
{
    ts_close(r->s);
    plat_fault_free(r->fv);
    tu_rmtree(r->base);
    free(r->base);
}

static int rig_open(rig *r, uint64_t memtable_max, char *err, size_t errlen)
{
    ts_options o;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.vfs = r->fv;
    o.memtable_max = memtable_max;
    return ts_open(r->store, &o, &r->s, err, errlen);
}

/* Tensor j of batch i: f32 values derived from (i, j). Even batches hold
 * 3..27 values (12..108 bytes: packed frames), odd ones 37..333 (up to
 * 1332 bytes: mostly plain records, some packed). */
static size_t elems(uint32_t i, uint32_t j)
{
    return (size_t)((i * 7 + j * 13) % 9 + 1) * (i % 2 ? 37 : 3);
}

static float value(uint32_t i, uint32_t j, size_t k)
{
    return (float)(i * 1000 + j * 100) + (float)k * 0.5f;
}

static uint32_t batch_size(uint32_t i)
{
    return i % MAX_PER_BATCH + 1;
}

static int save_batch(ts_store *s, uint32_t i)
{
    tu_tensor x[MAX_PER_BATCH];
    const ts_tensor *b[MAX_PER_BATCH];
    uint32_t n = batch_size(i);
    for (uint32_t j = 0; j < n; j++) {
        size_t m = elems(i, j);
        tu_tensor_init(&x[j], (uint64_t)i * 16 + j, m, 0);
        for (size_t k = 0; k < m; k++)
            x[j].data[k] = value(i, j, k);
        b[j] = &x[j].t;
    }
    int rc = ts_save_batch(s, b, n);
    for (uint32_t j = 0; j < n; j++)
        tu_tensor_free(&x[j]);
    return rc;
}

/* 1 if tensor j of batch i is present with exact contents (and, when
 * want_seq is not 0, that sequence number), 0 if absent; fails the test if
 * present but different. */
static int present_seq(ts_store *s, uint32_t i, uint32_t j, uint64_t want_seq)
{
    uint8_t key[8];
    ts_tensor *t = NULL;
    ts_key_from_u64((uint64_t)i * 16 + j, key);
    int rc = ts_load(s, key, 8, &t);
    if (rc == TS_ENOTFOUND)
        return 0;
    if (rc)
        fail_msg("batch %u tensor %u: load failed: %s", i, j, ts_errmsg(s));
    size_t m = elems(i, j);
    assert_int_equal(t->data_len, m * sizeof(float));
    for (size_t k = 0; k < m; k++)
        assert_true(((const float *)t->data)[k] == value(i, j, k));
    if (want_seq && t->seq != want_seq)
        fail_msg("batch %u tensor %u: seq %llu, saved as %llu", i, j, (unsigned long long)t->seq,
                 (unsigned long long)want_seq);
    ts_tensor_free(t);
    return 1;
}

static int present(ts_store *s, uint32_t i, uint32_t j)
{
    return present_seq(s, i, j, 0);
}

static uint64_t next_seq(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.next_seq;
}

/* The agent's way: a key made from the store's next_seq must not exist yet,
 * and saving under it must get exactly that seq. Fails the test otherwise. */
static void save_keyed_by_next_seq(ts_store *s, const char *what)
{
    uint64_t seq = next_seq(s);
    uint8_t key[16] = "agent#";
    ts_key_from_u64(seq, key + 6);
    ts_tensor *old = NULL;
    if (ts_load(s, key, 14, &old) == 0)
        fail_msg("%s: key for next_seq %llu already holds seq %llu: a new save would replace a "
                 "committed tensor", what, (unsigned long long)seq, (unsigned long long)old->seq);
    float v = 1.5f;
    ts_tensor t = {.key = key, .key_len = 14, .name = "agent", .dtype = TS_F32, .ndim = 1,
                   .shape = {1}, .data = &v, .data_len = sizeof(v)};
    assert_int_equal(ts_save(s, &t), 0);
    assert_int_equal(ts_load(s, key, 14, &old), 0);
    if (old->seq != seq)
        fail_msg("%s: saved at next_seq %llu but got seq %llu", what, (unsigned long long)seq,
                 (unsigned long long)old->seq);
    ts_tensor_free(old);
}

/* One trial: returns through cmocka failures. */
static void crash_trial(uint64_t seed, unsigned long *crash_points)
{
    rig r;
    char err[1024];
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    uint32_t acked = 0, attempted = 0;
    uint64_t base[MAX_BATCHES + 2] = {0}; /* seq of each batch's first tensor */
    /* Small MemTables so flushes (and their renames) are often in flight. */
    uint64_t memtable_max = 2048 + rnd(&x) % 16384;
    rig_init(&r, seed);
    assert_int_equal(rig_open(&r, memtable_max, err, sizeof(err)), 0);
    int torn = (int)(rnd(&x) & 1);
    unsigned crash_at = 1 + (unsigned)(rnd(&x) % 400);
    plat_fault_crash_at(r.fv, crash_at, torn);
    for (uint32_t i = 1; i <= MAX_BATCHES && !plat_fault_crashed(r.fv); i++) {
        attempted = i;
        base[i] = next_seq(r.s);
        int rc = save_batch(r.s, i);
        if (rc)
            break;
        acked = i;
        if (rnd(&x) % 16 == 0)
            ts_flush(r.s, NULL, 0, NULL);
    }
    if (!plat_fault_crashed(r.fv))
        assert_int_equal(plat_fault_crash(r.fv, torn), 0);
    else
        (*crash_points)++;
    ts_close(r.s);
    r.s = NULL;
    plat_fault_revive(r.fv);

    if (rig_open(&r, memtable_max, err, sizeof(err)))
        fail_msg("seed %llu: reopen after crash failed: %s", (unsigned long long)seed, err);
    uint32_t last_present = 0;
    for (uint32_t i = 1; i <= attempted; i++) {
        uint32_t n = batch_size(i), have = 0;
        for (uint32_t j = 0; j < n; j++)
            have += (uint32_t)present_seq(r.s, i, j, base[i] + j);
        if (have != 0 && have != n)
            fail_msg("seed %llu: batch %u is partly visible (%u of %u)", (unsigned long long)seed,
                     i, have, n);
        if (have) {
            if (last_present != i - 1)
                fail_msg("seed %llu: batch %u present after missing batch %u",
                         (unsigned long long)seed, i, last_present + 1);
            last_present = i;
        }
    }
    if (last_present < acked)
        fail_msg("seed %llu: acknowledged batch %u lost (recovered up to %u)",
                 (unsigned long long)seed, acked, last_present);
    if (last_present && next_seq(r.s) < base[last_present] + batch_size(last_present))
        fail_msg("seed %llu: next_seq %llu after reopen, but batch %u holds seq up to %llu",
                 (unsigned long long)seed, (unsigned long long)next_seq(r.s), last_present,
                 (unsigned long long)(base[last_present] + batch_size(last_present) - 1));
    uint64_t bad = 0;
    if (ts_verify(r.s, NULL, NULL, &bad))
        fail_msg("seed %llu: verify after recovery: %s", (unsigned long long)seed, ts_errmsg(r.s));
    save_keyed_by_next_seq(r.s, "after recovery");
    /* The recovered store takes writes and keeps them. */
    assert_int_equal(save_batch(r.s, attempted + 1), 0);
    assert_int_equal(ts_flush(r.s, NULL, 0, NULL), 0);
    ts_close(r.s);
    r.s = NULL;
    assert_int_equal(rig_open(&r, memtable_max, err, sizeof(err)), 0);
    assert_int_equal(present(r.s, attempted + 1, 0), 1);
    if (last_present)
        assert_int_equal(present(r.s, last_present, 0), 1);
    rig_free(&r);
}

static void test_power_cut_at_random_points_keeps_acknowledged_prefix(void **state)
{
    (void)state;
    const char *t = getenv("EMBEDDB_CRASH_TRIALS");
    const char *sd = getenv("EMBEDDB_CRASH_SEED");
    unsigned long trials = t ? strtoul(t, NULL, 10) : 300;
    unsigned long first = sd ? strtoul(sd, NULL, 10) : 1;
    unsigned long crash_points = 0;
    for (unsigned long k = 0; k < trials; k++)
        crash_trial(first + k, &crash_points);
    /* Most trials must have died inside the engine, not after it. */
    assert_true(crash_points * 2 >= trials);
    print_message("%lu trials, %lu crashed mid-operation\n", trials, crash_points);
}

static void test_enospc_on_write_commits_nothing_and_store_goes_on(void **state)
{
    (void)state;
    rig r;
    char err[512];
    rig_init(&r, 7);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(save_batch(r.s, 1), 0);
    plat_fault_fail_nth(r.fv, PLAT_FAULT_PWRITEV, 1, -ENOSPC);
    assert_int_equal(save_batch(r.s, 2), TS_ENOSPC);
    assert_non_null(strstr(ts_errmsg(r.s), "No space"));
    assert_int_equal(present(r.s, 2, 0), 0);
    assert_int_equal(save_batch(r.s, 3), 0);
    ts_close(r.s);
    r.s = NULL;
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(present(r.s, 1, 0), 1);
    assert_int_equal(present(r.s, 2, 0), 0);
    assert_int_equal(present(r.s, 3, 0), 1);
    rig_free(&r);
}

static void test_failed_fdatasync_poisons_until_reopen(void **state)
{
    (void)state;
    rig r;
    char err[512];
    rig_init(&r, 8);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(save_batch(r.s, 1), 0);
    plat_fault_fail_nth(r.fv, PLAT_FAULT_FDATASYNC, 1, -EIO);
    assert_int_equal(save_batch(r.s, 2), TS_EIO);
    assert_non_null(strstr(ts_errmsg(r.s), "fdatasync"));
    assert_int_equal(save_batch(r.s, 3), TS_EFAILED);
    assert_int_equal(ts_flush(r.s, NULL, 0, NULL), TS_EFAILED);
    /* Reads still work on a poisoned store. */
    assert_int_equal(present(r.s, 1, 0), 1);
    ts_close(r.s);
    r.s = NULL;
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(present(r.s, 1, 0), 1);
    assert_int_equal(present(r.s, 3, 0), 0);
    assert_int_equal(save_batch(r.s, 4), 0);
    rig_free(&r);
}

static void test_enospc_while_sealing_keeps_memtable(void **state)
{
    (void)state;
    rig r;
    char err[512];
    rig_init(&r, 9);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(save_batch(r.s, 1), 0);
    plat_fault_fail_nth(r.fv, PLAT_FAULT_PWRITEV, 1, -ENOSPC);
    assert_int_equal(ts_flush(r.s, NULL, 0, NULL), TS_ENOSPC);
    assert_int_equal(present(r.s, 1, 1), 1);
    assert_int_equal(save_batch(r.s, 2), 0);
    char name[64];
    assert_int_equal(ts_flush(r.s, name, sizeof(name), NULL), 0);
    assert_string_equal(name, "sst_000000.sst");
    ts_close(r.s);
    r.s = NULL;
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(present(r.s, 1, 1), 1);
    assert_int_equal(present(r.s, 2, 0), 1);
    rig_free(&r);
}

static void test_failed_rename_in_flush_recovers_on_reopen(void **state)
{
    (void)state;
    rig r;
    char err[512];
    rig_init(&r, 10);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(save_batch(r.s, 1), 0);
    plat_fault_fail_nth(r.fv, PLAT_FAULT_RENAME, 1, -EIO);
    assert_int_equal(ts_flush(r.s, NULL, 0, NULL), TS_EIO);
    assert_int_equal(save_batch(r.s, 2), TS_EFAILED);
    ts_close(r.s);
    r.s = NULL;
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    assert_int_equal(present(r.s, 1, 0), 1);
    assert_int_equal(save_batch(r.s, 3), 0);
    rig_free(&r);
}

/* Five saves, a flush, five saves, then a power cut at mutating call
 * `crash_at` of the next flush (0: none). All ten were acknowledged, so all
 * ten come back with their seqs, next_seq is 11, and a key made from it is
 * new. Returns the number of mutating calls the flush made. */
static unsigned long flush_trial(unsigned crash_at)
{
    rig r;
    char err[1024];
    rig_init(&r, crash_at + 500);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    for (uint32_t i = 1; i <= 10; i++) {
        assert_int_equal(next_seq(r.s), i);
        tu_tensor x;
        tu_tensor_init(&x, (uint64_t)i * 16, 8, 0);
        assert_int_equal(ts_save(r.s, &x.t), 0);
        tu_tensor_free(&x);
        if (i == 5)
            assert_int_equal(ts_flush(r.s, NULL, 0, NULL), 0);
    }
    unsigned long before = plat_fault_mutations(r.fv);
    plat_fault_crash_at(r.fv, crash_at, 1);
    int rc = ts_flush(r.s, NULL, 0, NULL);
    unsigned long used = plat_fault_mutations(r.fv) - before;
    if (!plat_fault_crashed(r.fv)) {
        assert_int_equal(rc, 0);
        assert_int_equal(plat_fault_crash(r.fv, 1), 0);
    }
    ts_close(r.s);
    r.s = NULL;
    plat_fault_revive(r.fv);
    plat_fault_crash_at(r.fv, 0, 0);
    if (rig_open(&r, 0, err, sizeof(err)))
        fail_msg("crash at %u of a flush: reopen failed: %s", crash_at, err);
    for (uint32_t i = 1; i <= 10; i++) {
        uint8_t key[8];
        ts_tensor *t = NULL;
        ts_key_from_u64((uint64_t)i * 16, key);
        if (ts_load(r.s, key, 8, &t))
            fail_msg("crash at %u of a flush: acknowledged save %u lost: %s", crash_at, i,
                     ts_errmsg(r.s));
        if (t->seq != i)
            fail_msg("crash at %u of a flush: save %u came back as seq %llu", crash_at, i,
                     (unsigned long long)t->seq);
        ts_tensor_free(t);
    }
    if (next_seq(r.s) != 11)
        fail_msg("crash at %u of a flush: next_seq %llu after reopen, but seq 10 is stored",
                 crash_at, (unsigned long long)next_seq(r.s));
    save_keyed_by_next_seq(r.s, "after a flush cut short");
    rig_free(&r);
    return used;
}

static void test_power_cut_during_flush_keeps_sequence_numbers_rising(void **state)
{
    (void)state;
    unsigned long n = flush_trial(0);
    assert_true(n >= 5); /* seal write, sync, rename, new WAL, MANIFEST ... */
    for (unsigned k = 1; k <= n + 1; k++)
        flush_trial(k);
    print_message("%lu crash points through a flush\n", n);
}

/* ts_raise_seq(20) after three saves, with the power cut at mutating call
 * `crash_at`: the saves survive with their seqs, and next_seq is either
 * still 4 (the raise did not land) or 20; never anything that would reuse
 * seqs 1..3. */
static unsigned long raise_trial(unsigned crash_at)
{
    rig r;
    char err[1024];
    rig_init(&r, crash_at + 900);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    for (uint32_t i = 1; i <= 3; i++) {
        tu_tensor x;
        tu_tensor_init(&x, (uint64_t)i * 16, 8, 0);
        assert_int_equal(ts_save(r.s, &x.t), 0);
        tu_tensor_free(&x);
    }
    unsigned long before = plat_fault_mutations(r.fv);
    plat_fault_crash_at(r.fv, crash_at, 1);
    int rc = ts_raise_seq(r.s, 20);
    unsigned long used = plat_fault_mutations(r.fv) - before;
    if (!plat_fault_crashed(r.fv)) {
        assert_int_equal(rc, 0);
        assert_int_equal(plat_fault_crash(r.fv, 1), 0);
    }
    ts_close(r.s);
    r.s = NULL;
    plat_fault_revive(r.fv);
    plat_fault_crash_at(r.fv, 0, 0);
    if (rig_open(&r, 0, err, sizeof(err)))
        fail_msg("crash at %u of a seq raise: reopen failed: %s", crash_at, err);
    for (uint32_t i = 1; i <= 3; i++) {
        uint8_t key[8];
        ts_tensor *t = NULL;
        ts_key_from_u64((uint64_t)i * 16, key);
        if (ts_load(r.s, key, 8, &t) || t->seq != i)
            fail_msg("crash at %u of a seq raise: save %u lost or renumbered", crash_at, i);
        ts_tensor_free(t);
    }
    uint64_t ns = next_seq(r.s);
    if (ns != 4 && ns != 20)
        fail_msg("crash at %u of a seq raise: next_seq %llu", crash_at, (unsigned long long)ns);
    if (!crash_at && ns != 20)
        fail_msg("a completed seq raise did not last: next_seq %llu", (unsigned long long)ns);
    save_keyed_by_next_seq(r.s, "after a seq raise");
    rig_free(&r);
    return used;
}

/* Copies the regular files of directory from into directory to. */
static void copy_files(const char *from, const char *to)
{
    struct dirent *e;
    char a[4400], b[4400], buf[65536];
    DIR *d = opendir(from);
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md"))
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        assert_non_null(in);
        assert_non_null(out);
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
        assert_int_equal(fclose(out), 0);
    }
    closedir(d);
}

/* The format version in the header of dir's open WAL segment (-1: none). */
static int wal_version(const char *dir)
{
    struct dirent *e;
    char path[4400];
    unsigned char h[32];
    int v = -1;
    DIR *d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "wal_", 4) && strstr(e->d_name, ".log")) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            FILE *f = fopen(path, "rb");
            assert_non_null(f);
            if (fread(h, 1, sizeof(h), f) == sizeof(h))
                v = h[24] | h[25] << 8;
            fclose(f);
        }
    closedir(d);
    return v;
}

/* Opens r's store with the power cut at mutating call `crash_at` of that
 * open (0: cut right after it), then reopens it whole. Returns the number
 * of mutating calls the first open made. */
static unsigned long open_cut_reopen(rig *r, unsigned crash_at)
{
    char err[1024];
    unsigned long before = plat_fault_mutations(r->fv);
    plat_fault_crash_at(r->fv, crash_at, 1);
    int rc = rig_open(r, 0, err, sizeof(err));
    unsigned long used = plat_fault_mutations(r->fv) - before;
    if (!plat_fault_crashed(r->fv)) {
        if (rc)
            fail_msg("upgrade open failed: %s", err);
        assert_int_equal(plat_fault_crash(r->fv, 1), 0);
    }
    ts_close(r->s);
    r->s = NULL;
    plat_fault_revive(r->fv);
    plat_fault_crash_at(r->fv, 0, 0);
    if (rig_open(r, 0, err, sizeof(err)))
        fail_msg("crash at %u: reopen failed: %s", crash_at, err);
    return used;
}

/* A writable open of a format-1 store (tests/core/fixtures/v1/store: three
 * SSTs and a WAL segment holding 11 tensors) seals its version-1 segment
 * and starts a version-2 one (FORMAT.md recovery step 8). The power is cut
 * at mutating call `crash_at` of that open (0: after it). Whatever the cut,
 * the next open holds every fixture tensor with its bytes and its seq, is
 * clean, hands out seqs above all of them and takes new (packed and plain)
 * batches. Returns the number of mutating calls the open made. */
static unsigned long upgrade_trial(unsigned crash_at)
{
    rig r;
    rig_init(&r, crash_at + 300);
    assert_int_equal(mkdir(r.store, 0755), 0);
    copy_files(V1_FIXTURES_DIR "/store", r.store);
    unsigned long used = open_cut_reopen(&r, crash_at);
    for (size_t i = 0; i < V1_N_WRITES; i++) {
        v1_write w;
        ts_tensor *t = NULL;
        if (!v1_is_newest(i, V1_N_WRITES))
            continue;
        assert_int_equal(v1_write_make(i, &w), 0);
        if (ts_load(r.s, w.t.key, w.t.key_len, &t))
            fail_msg("crash at %u: fixture write %zu lost: %s", crash_at, i, ts_errmsg(r.s));
        if (t->seq != v1_seq(i) || t->data_len != w.t.data_len ||
            (w.t.data_len && memcmp(t->data, w.data, w.t.data_len)) ||
            strcmp(t->name, w.t.name) || t->timestamp_ns != w.t.timestamp_ns)
            fail_msg("crash at %u: fixture write %zu comes back changed", crash_at, i);
        ts_tensor_free(t);
        v1_write_free(&w);
    }
    uint64_t n_bad = 0;
    if (ts_verify(r.s, NULL, NULL, &n_bad))
        fail_msg("crash at %u: verify found %llu damaged items: %s", crash_at,
                 (unsigned long long)n_bad, ts_errmsg(r.s));
    if (next_seq(r.s) <= v1_seq(V1_N_WRITES - 1))
        fail_msg("crash at %u: next_seq %llu does not rise above the fixture's", crash_at,
                 (unsigned long long)next_seq(r.s));
    if (wal_version(r.store) != 2)
        fail_msg("crash at %u: the open segment is still version %d", crash_at,
                 wal_version(r.store));
    save_keyed_by_next_seq(r.s, "after upgrade");
    assert_int_equal(save_batch(r.s, 2), 0); /* packed */
    assert_int_equal(save_batch(r.s, 3), 0); /* mostly plain */
    assert_int_equal(present(r.s, 2, 0), 1);
    assert_int_equal(present(r.s, 3, 0), 1);
    rig_free(&r);
    return used;
}

static void test_power_cut_while_a_v1_store_is_upgraded_loses_nothing(void **state)
{
    (void)state;
    unsigned long n = upgrade_trial(0);
    assert_true(n >= 4);
    for (unsigned k = 1; k <= n + 1; k++)
        upgrade_trial(k);
    print_message("%lu crash points through a v1 store's upgrade\n", n);
}

static void test_power_cut_during_seq_raise_never_reuses_seqs(void **state)
{
    (void)state;
    unsigned long n = raise_trial(0);
    assert_true(n >= 4);
    for (unsigned k = 1; k <= n + 1; k++)
        raise_trial(k);
    print_message("%lu crash points through a seq raise\n", n);
}

/* CRC-32C, bitwise (the test patches a segment header by hand). */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* Rewrites the header of segment file path as format version 1. */
static void make_segment_v1(const char *path)
{
    uint8_t h[32];
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    h[24] = 1;
    h[25] = h[26] = h[27] = 0;
    uint32_t c = crc32c_bitwise(h, 28);
    for (int i = 0; i < 4; i++)
        h[28 + i] = (uint8_t)(c >> (8 * i));
    assert_int_equal(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
}

/* A format-1 store whose open segment is empty and whose seqs were raised
 * to 1000 above its one SST (a checkpoint moved seqs up to 999 out): only
 * that segment's header remembers 1000. Its writable open rewrites the
 * header in version 2 (recovery step 8); the power is cut at mutating call
 * `crash_at` of that open. The next open must still hand out seqs from
 * 1000 on. Returns the number of mutating calls the open made. */
static unsigned long empty_upgrade_trial(unsigned crash_at)
{
    rig r;
    char err[1024];
    rig_init(&r, crash_at + 1300);
    assert_int_equal(rig_open(&r, 0, err, sizeof(err)), 0);
    tu_tensor x;
    tu_tensor_init(&x, 16, 8, 0);
    assert_int_equal(ts_save(r.s, &x.t), 0);
    tu_tensor_free(&x);
    assert_int_equal(ts_raise_seq(r.s, 1000), 0);
    assert_int_equal(next_seq(r.s), 1000);
    ts_close(r.s);
    r.s = NULL;
    make_segment_v1(tu_path(r.store, "wal_000001.log"));
    assert_int_equal(wal_version(r.store), 1);
    plat_fault_revive(r.fv); /* what is on disk now is durable */
    unsigned long used = open_cut_reopen(&r, crash_at);
    if (next_seq(r.s) < 1000)
        fail_msg("crash at %u of an empty v1 segment's upgrade: next_seq fell from 1000 to %llu",
                 crash_at, (unsigned long long)next_seq(r.s));
    if (wal_version(r.store) != 2)
        fail_msg("crash at %u: the open segment is still version %d", crash_at,
                 wal_version(r.store));
    save_keyed_by_next_seq(r.s, "after an empty segment's upgrade");
    rig_free(&r);
    return used;
}

static void test_power_cut_while_an_empty_v1_segment_is_upgraded_keeps_raised_seqs(void **state)
{
    (void)state;
    unsigned long n = empty_upgrade_trial(0);
    assert_true(n >= 2);
    for (unsigned k = 1; k <= n + 1; k++)
        empty_upgrade_trial(k);
    print_message("%lu crash points through an empty v1 segment's upgrade\n", n);
}

/* Counts sst_ files in dir. */
static int count_ssts(const char *dir)
{
    struct dirent *e;
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, "sst_", 4);
    closedir(d);
    return n;
}

/* One checkpoint + release with the power cut at mutating call `crash_at`
 * (0: no crash). Every tensor must be in the store or in the checkpoint
 * (once ts_checkpoint returned, the checkpoint is committed), never lost;
 * released files must be gone after the reopen; sequence numbers go on
 * rising. Returns the number of mutating calls the sequence made. */
static unsigned long checkpoint_trial(unsigned crash_at)
{
    enum { N = 12 };
    rig r;
    char err[1024], ckpt[4200];
    ts_checkpoint_info info;
    ts_store *ck = NULL;
    ts_options ro;
    rig_init(&r, crash_at + 100);
    snprintf(ckpt, sizeof(ckpt), "%s/ckpt", r.base);
    assert_int_equal(rig_open(&r, 4096, err, sizeof(err)), 0);
    for (uint32_t i = 1; i <= N; i++)
        assert_int_equal(save_batch(r.s, i), 0);
    uint64_t seq_hi = next_seq(r.s) - 1;
    unsigned long before = plat_fault_mutations(r.fv);
    plat_fault_crash_at(r.fv, crash_at, 1);
    int ck_rc = ts_checkpoint(r.s, ckpt, &info);
    /* The checkpoint's own name is the caller's to make durable (the
     * agent renames it into place and syncs the parent): committed only
     * once that sync returned. */
    if (!ck_rc)
        ck_rc = r.fv->dirsync(r.fv, r.base);
    int rel_rc = ck_rc ? -1 : ts_release(r.s, info.last_file);
    unsigned long used = plat_fault_mutations(r.fv) - before;
    if (!plat_fault_crashed(r.fv)) {
        assert_int_equal(ck_rc, 0);
        assert_int_equal(rel_rc, 0);
        assert_int_equal(plat_fault_crash(r.fv, 1), 0);
    }
    ts_close(r.s);
    r.s = NULL;
    plat_fault_revive(r.fv);
    plat_fault_crash_at(r.fv, 0, 0);
    if (rig_open(&r, 4096, err, sizeof(err)))
        fail_msg("crash at %u: reopen failed: %s", crash_at, err);
    if (ck_rc == 0) {
        ts_options_init(&ro);
        ro.read_only = 1;
        if (ts_open(ckpt, &ro, &ck, err, sizeof(err)))
            fail_msg("crash at %u: committed checkpoint does not open: %s", crash_at, err);
    }
    for (uint32_t i = 1; i <= N; i++)
        for (uint32_t j = 0; j < batch_size(i); j++) {
            int here = present(r.s, i, j), there = ck ? present(ck, i, j) : 0;
            if (!here && !there)
                fail_msg("crash at %u: batch %u tensor %u lost", crash_at, i, j);
            if (rel_rc == 0 && here)
                fail_msg("crash at %u: batch %u still in the store after release", crash_at, i);
        }
    ts_stats st;
    ts_get_stats(r.s, &st);
    assert_int_equal(count_ssts(r.store), (int)st.n_sst);
    if (st.next_seq <= seq_hi)
        fail_msg("crash at %u: next_seq %llu after reopen, but seq up to %llu was committed",
                 crash_at, (unsigned long long)st.next_seq, (unsigned long long)seq_hi);
    save_keyed_by_next_seq(r.s, "after checkpoint");
    assert_int_equal(save_batch(r.s, N + 1), 0);
    assert_int_equal(present(r.s, N + 1, 0), 1);
    ts_close(ck);
    rig_free(&r);
    return used;
}

static void test_power_cut_during_checkpoint_and_release_loses_nothing(void **state)
{
    (void)state;
    unsigned long n = checkpoint_trial(0);
    assert_true(n >= 6); /* links, MANIFESTs, syncs: many points to cut at */
    for (unsigned k = 1; k <= n + 1; k++)
        checkpoint_trial(k);
    print_message("%lu crash points through checkpoint + release\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enospc_on_write_commits_nothing_and_store_goes_on),
        cmocka_unit_test(test_failed_fdatasync_poisons_until_reopen),
        cmocka_unit_test(test_enospc_while_sealing_keeps_memtable),
        cmocka_unit_test(test_failed_rename_in_flush_recovers_on_reopen),
        cmocka_unit_test(test_power_cut_during_flush_keeps_sequence_numbers_rising),
        cmocka_unit_test(test_power_cut_during_seq_raise_never_reuses_seqs),
        cmocka_unit_test(test_power_cut_while_a_v1_store_is_upgraded_loses_nothing),
        cmocka_unit_test(test_power_cut_while_an_empty_v1_segment_is_upgraded_keeps_raised_seqs),
        cmocka_unit_test(test_power_cut_at_random_points_keeps_acknowledged_prefix),
        cmocka_unit_test(test_power_cut_during_checkpoint_and_release_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
