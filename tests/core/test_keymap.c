/*
 * test_keymap.c -- point loads and insert_only through the key map
 * (core/src/keymap.h) with thousands of live SSTs: numeric keys (disjoint
 * ranges) and agent keys (topic#counter, every SST spanning every topic),
 * overwrites across SSTs, forced hash collisions, ts_release, and the
 * fallback to walking the SSTs when the map gets no memory.
 *
 * Durability is not under test here, so the stores run on a vfs whose
 * syncs do nothing: thousands of flushes then take seconds, not minutes.
 */
#include "test_util.h"

#include "keymap.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define N_TOPICS 40

static int nosync(plat_vfs *self, int fd)
{
    (void)self;
    (void)fd;
    return 0;
}

static int nodirsync(plat_vfs *self, const char *dir)
{
    (void)self;
    (void)dir;
    return 0;
}

typedef struct fx {
    char *dir;
    ts_store *s;
    plat_vfs vfs;
} fx;

static ts_store *open_store(fx *f, int insert_only, int read_only)
{
    ts_options o;
    ts_options_init(&o);
    o.vfs = &f->vfs;
    o.sync = 0;
    o.insert_only = insert_only;
    o.read_only = read_only;
    return tu_open(f->dir, &o);
}

static void reopen(fx *f, int insert_only, int read_only)
{
    ts_close(f->s);
    f->s = open_store(f, insert_only, read_only);
    assert_non_null(f->s);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir("keymap");
    f->vfs = *plat_vfs_default();
    f->vfs.fdatasync = nosync;
    f->vfs.dirsync = nodirsync;
    f->s = open_store(f, 0, 0);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    keymap__hash_hook = NULL;
    keymap__fail_alloc_hook = NULL;
    ts_close(f->s);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Key k: numeric (8 bytes, big-endian) or agent style "topicNN#<20 digits>"
 * with k % N_TOPICS the topic and k / N_TOPICS the counter. */
static size_t make_key(int agent, uint64_t k, uint8_t *out)
{
    if (!agent) {
        ts_key_from_u64(k, out);
        return 8;
    }
    return (size_t)snprintf((char *)out, 64, "sensors/t%02u#%020" PRIu64,
                            (unsigned)(k % N_TOPICS), k / N_TOPICS);
}

/* A 12-byte tensor (3 float32) whose values tell key and version apart. */
static void fill_values(uint64_t k, unsigned version, float v[3])
{
    v[0] = (float)(k % 1000003);
    v[1] = (float)version;
    v[2] = (float)(k % 7) + 0.5f;
}

/* Saves keys[0..n) as version `version`, as one batch. */
static int save_keys(ts_store *s, int agent, const uint64_t *keys, size_t n, unsigned version)
{
    uint8_t kb[64][64];
    float v[64][3];
    ts_tensor t[64];
    const ts_tensor *p[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        size_t len = make_key(agent, keys[i], kb[i]);
        fill_values(keys[i], version, v[i]);
        t[i] = (ts_tensor){.key = kb[i], .key_len = len, .name = "v", .dtype = TS_F32,
                           .ndim = 1, .shape = {3}, .data = v[i], .data_len = sizeof(v[i]),
                           .timestamp_ns = 1};
        p[i] = &t[i];
    }
    return ts_save_batch(s, p, n);
}

/* 1 when key k loads as `version`, 0 when it is not found; fails otherwise. */
static int load_version(ts_store *s, int agent, uint64_t k, unsigned version)
{
    uint8_t kb[64];
    float want[3];
    ts_tensor *t = NULL;
    size_t len = make_key(agent, k, kb);
    int rc = ts_load(s, kb, len, &t);
    if (rc == TS_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    fill_values(k, version, want);
    assert_int_equal(t->data_len, sizeof(want));
    assert_memory_equal(t->data, want, sizeof(want));
    ts_tensor_free(t);
    return 1;
}

/* n_ssts SSTs of `per` keys each: SST b holds keys b*per .. b*per+per-1,
 * so with agent keys every SST spans (nearly) every topic. */
static void make_ssts(ts_store *s, int agent, size_t n_ssts, size_t per, unsigned version)
{
    uint64_t keys[64];
    for (size_t b = 0; b < n_ssts; b++) {
        for (size_t i = 0; i < per; i++)
            keys[i] = b * per + i;
        assert_int_equal(save_keys(s, agent, keys, per, version), 0);
        assert_int_equal(ts_flush(s, NULL, 0, NULL), 0);
    }
}

static uint64_t n_sst(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.n_sst;
}

static uint64_t fallbacks(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.keymap_fallbacks;
}

static void check_all(ts_store *s, int agent, uint64_t n_keys, unsigned version)
{
    for (uint64_t k = 0; k < n_keys; k++)
        assert_int_equal(load_version(s, agent, k, version), 1);
    for (uint64_t k = n_keys; k < n_keys + 100; k++)
        assert_int_equal(load_version(s, agent, k, version), 0);
}

/* Loads, reopened (the map built at open), read-only too, then insert_only
 * refusing every stored key and taking a new one. */
static void thousands_of_ssts(fx *f, int agent, size_t n_ssts, size_t per)
{
    uint64_t n_keys = n_ssts * per, k;
    make_ssts(f->s, agent, n_ssts, per, 1);
    assert_int_equal(n_sst(f->s), n_ssts);
    check_all(f->s, agent, n_keys, 1);
    reopen(f, 0, 1);
    check_all(f->s, agent, n_keys, 1);
    reopen(f, 1, 0);
    check_all(f->s, agent, n_keys, 1);
    for (k = 0; k < n_keys; k += 97)
        assert_int_equal(save_keys(f->s, agent, &k, 1, 2), TS_EEXIST);
    k = n_keys - 1;
    assert_int_equal(save_keys(f->s, agent, &k, 1, 2), TS_EEXIST);
    k = n_keys;
    assert_int_equal(save_keys(f->s, agent, &k, 1, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(load_version(f->s, agent, n_keys, 2), 1);
    assert_int_equal(save_keys(f->s, agent, &k, 1, 3), TS_EEXIST);
    assert_int_equal(fallbacks(f->s), 0); /* the map answered every lookup */
}

static void test_numeric_keys_load_and_insert_only_across_thousands_of_ssts(void **state)
{
    thousands_of_ssts(*state, 0, 2000, 4);
}

static void test_overlapping_agent_keys_load_and_insert_only_across_thousands_of_ssts(
    void **state)
{
    thousands_of_ssts(*state, 1, 2000, N_TOPICS);
}

/* Keys saved in SST 0, then a third of them again in each of several newer
 * SSTs: every key loads its newest version, before and after a reopen. */
static void overwrites(fx *f, int agent)
{
    const size_t per = 60, rounds = 5;
    uint64_t keys[64];
    unsigned want[60];
    for (size_t i = 0; i < per; i++) {
        keys[i] = i;
        want[i] = 1;
    }
    assert_int_equal(save_keys(f->s, agent, keys, per, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    for (unsigned r = 2; r < 2 + rounds; r++) {
        size_t n = 0;
        for (size_t i = r % 3; i < per; i += 3) {
            keys[n++] = i;
            want[i] = r;
        }
        assert_int_equal(save_keys(f->s, agent, keys, n, r), 0);
        assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < per; i++)
            assert_int_equal(load_version(f->s, agent, i, want[i]), 1);
        assert_int_equal(load_version(f->s, agent, per, 1), 0);
        reopen(f, 0, 0);
    }
    assert_int_equal(fallbacks(f->s), 0);
}

static void test_key_overwritten_in_a_newer_sst_loads_the_newest(void **state)
{
    overwrites(*state, 0);
    overwrites(*state, 1);
}

/* Hashes whose high 32 bits (the tag) are the same for every key; the low
 * bits still spread keys over the table (FNV-1a). */
static uint64_t same_tag_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (0x5eedull << 32) | (h & 0xffffffffu);
}

/* Every key hashes alike: one cluster, every slot a tag match. */
static uint64_t same_hash(const uint8_t *key, size_t len)
{
    (void)key;
    (void)len;
    return 0x5eed00000042ull;
}

/* Several keys with one tag in one SST, some of them overwritten later:
 * each still loads its own newest version. */
static void test_equal_tags_still_load_the_right_tensor(void **state)
{
    fx *f = *state;
    uint64_t (*hooks[2])(const uint8_t *, size_t) = {same_tag_hash, same_hash};
    size_t n_ssts[2] = {300, 20};
    for (int h = 0; h < 2; h++) {
        keymap__hash_hook = hooks[h];
        for (int agent = 0; agent < 2; agent++) {
            ts_close(f->s);
            tu_rmtree(f->dir);
            assert_int_equal(mkdir(f->dir, 0700), 0);
            f->s = open_store(f, 0, 0);
            assert_non_null(f->s);
            make_ssts(f->s, agent, n_ssts[h], 10, 1);
            uint64_t n_keys = n_ssts[h] * 10;
            /* Rewrite every third key in newer SSTs. */
            for (uint64_t k = 0; k < n_keys; k += 30) {
                uint64_t keys[10];
                size_t n = 0;
                for (uint64_t j = k; j < k + 30 && j < n_keys; j += 3)
                    keys[n++] = j;
                assert_int_equal(save_keys(f->s, agent, keys, n, 2), 0);
                assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
            }
            for (int pass = 0; pass < 2; pass++) {
                for (uint64_t k = 0; k < n_keys; k++)
                    assert_int_equal(load_version(f->s, agent, k, k % 3 ? 1 : 2), 1);
                assert_int_equal(load_version(f->s, agent, n_keys, 1), 0);
                reopen(f, 1, 0);
            }
            uint64_t k = 1;
            assert_int_equal(save_keys(f->s, agent, &k, 1, 3), TS_EEXIST);
            k = n_keys;
            assert_int_equal(save_keys(f->s, agent, &k, 1, 3), 0);
            assert_int_equal(fallbacks(f->s), 0);
        }
    }
}

/* Releasing the oldest SSTs forgets their keys unless a kept SST holds a
 * newer version; releasing all leaves an empty store that fills again. */
static void test_release_forgets_released_keys_and_keeps_the_rest(void **state)
{
    fx *f = *state;
    const size_t n = 1000, per = 5;
    uint64_t k;
    make_ssts(f->s, 1, n, per, 1); /* files 0 .. n-1 */
    /* A newer version of key 7 (first released in SST 1) in file n. */
    k = 7;
    assert_int_equal(save_keys(f->s, 1, &k, 1, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(ts_release(f->s, n / 2 - 1), 0);
    assert_int_equal(n_sst(f->s), n / 2 + 1);
    for (k = 0; k < n * per; k++) {
        if (k == 7)
            assert_int_equal(load_version(f->s, 1, k, 2), 1);
        else
            assert_int_equal(load_version(f->s, 1, k, 1), k >= n / 2 * per);
    }
    reopen(f, 1, 0);
    k = 3; /* released: insert_only takes it again */
    assert_int_equal(save_keys(f->s, 1, &k, 1, 3), 0);
    k = n * per - 1;
    assert_int_equal(save_keys(f->s, 1, &k, 1, 3), TS_EEXIST);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(load_version(f->s, 1, 3, 3), 1);
    assert_int_equal(ts_release(f->s, UINT64_MAX - 1), 0);
    assert_int_equal(n_sst(f->s), 0);
    for (k = 0; k < n * per; k += 7)
        assert_int_equal(load_version(f->s, 1, k, 1), 0);
    make_ssts(f->s, 1, 3, per, 4);
    check_all(f->s, 1, 3 * per, 4);
    assert_int_equal(fallbacks(f->s), 0);
}

static int fail_all(size_t bytes)
{
    (void)bytes;
    return 1;
}

/* Fails the table once it would pass 64 KiB: the map works while small. */
static int fail_big(size_t bytes)
{
    return bytes > (64u << 10);
}

/* Without memory for the map, loads and insert_only walk the SSTs (and are
 * counted); once memory is back the next flush rebuilds the map. */
static void test_keymap_without_memory_falls_back_and_recovers(void **state)
{
    fx *f = *state;
    const size_t per = 20;
    uint64_t k, n_keys;
    keymap__fail_alloc_hook = fail_big;
    make_ssts(f->s, 1, 600, per, 1); /* 12,000 keys: past 64 KiB of slots */
    n_keys = 600 * per;
    assert_int_equal(fallbacks(f->s), 0); /* nothing looked up yet */
    for (k = 0; k < n_keys; k += 13)
        assert_int_equal(load_version(f->s, 1, k, 1), 1);
    assert_true(fallbacks(f->s) > 0);

    keymap__fail_alloc_hook = fail_all;
    reopen(f, 1, 0); /* the open itself gets no map */
    uint64_t before = fallbacks(f->s);
    assert_int_equal(before, 0);
    k = 5;
    assert_int_equal(save_keys(f->s, 1, &k, 1, 2), TS_EEXIST);
    assert_int_equal(load_version(f->s, 1, n_keys - 1, 1), 1);
    assert_int_equal(load_version(f->s, 1, n_keys, 1), 0);
    assert_int_equal(fallbacks(f->s), 3);
    /* A release remaps; still no memory: still correct. */
    assert_int_equal(ts_release(f->s, 99), 0);
    assert_int_equal(load_version(f->s, 1, 5, 1), 0);
    assert_int_equal(load_version(f->s, 1, 100 * per, 1), 1);
    assert_int_equal(fallbacks(f->s), 5);

    keymap__fail_alloc_hook = NULL;
    k = n_keys;
    assert_int_equal(save_keys(f->s, 1, &k, 1, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0); /* rebuilds the map */
    before = fallbacks(f->s);
    for (k = 100 * per; k < n_keys; k += 11)
        assert_int_equal(load_version(f->s, 1, k, 1), 1);
    assert_int_equal(load_version(f->s, 1, n_keys, 2), 1);
    assert_int_equal(load_version(f->s, 1, 5, 1), 0);
    assert_int_equal(fallbacks(f->s), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_numeric_keys_load_and_insert_only_across_thousands_of_ssts, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_overlapping_agent_keys_load_and_insert_only_across_thousands_of_ssts, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_key_overwritten_in_a_newer_sst_loads_the_newest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal_tags_still_load_the_right_tensor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release_forgets_released_keys_and_keeps_the_rest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_keymap_without_memory_falls_back_and_recovers,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
