/*
 * test_store.c -- the engine's API on real files: save/load round trips for
 * every dtype, batches, flush naming and replay, previews and the bytes they
 * read, scans, statistics, and every bad input being rejected with the
 * store unchanged.
 */
#include "test_util.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

typedef tu_fx fx;

static int setup(void **state)
{
    fx *f = tu_fx_new("store");
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    tu_fx_free(*state);
    return 0;
}

static void reopen(fx *f, ts_options *o)
{
    ts_close(f->s);
    f->s = tu_open(f->dir, o);
    assert_non_null(f->s);
}

static void test_save_load_roundtrip_every_dtype(void **state)
{
    fx *f = *state;
    static const ts_dtype all[] = {TS_F16, TS_BF16, TS_F32, TS_F64, TS_I8,  TS_I16, TS_I32, TS_I64,
                                   TS_U8,  TS_U16,  TS_U32, TS_U64, TS_BOOL, TS_C64, TS_C128};
    for (size_t d = 0; d < sizeof(all) / sizeof(all[0]); d++) {
        size_t es = ts_dtype_size(all[d]);
        uint8_t data[3 * 5 * 16];
        uint8_t key[8];
        for (size_t i = 0; i < sizeof(data); i++)
            data[i] = (uint8_t)(i * 7 + d);
        ts_key_from_u64(d, key);
        ts_tensor t = {.key = key, .key_len = 8, .name = ts_dtype_name(all[d]), .dtype = all[d],
                       .ndim = 2, .shape = {3, 5}, .timestamp_ns = 42 + (int64_t)d,
                       .data = data, .data_len = 15 * es};
        assert_int_equal(ts_save(f->s, &t), 0);
    }
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
        if (pass == 2)
            reopen(f, NULL);
        for (size_t d = 0; d < sizeof(all) / sizeof(all[0]); d++) {
            uint8_t key[8], data[3 * 5 * 16];
            ts_tensor *t = NULL;
            size_t es = ts_dtype_size(all[d]);
            for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 7 + d);
            ts_key_from_u64(d, key);
            assert_int_equal(ts_load(f->s, key, 8, &t), 0);
            assert_int_equal(t->dtype, all[d]);
            assert_string_equal(t->name, ts_dtype_name(all[d]));
            assert_int_equal(t->ndim, 2);
            assert_int_equal(t->shape[0], 3);
            assert_int_equal(t->shape[1], 5);
            assert_int_equal(t->timestamp_ns, 42 + (int64_t)d);
            assert_int_equal(t->data_len, 15 * es);
            assert_memory_equal(t->data, data, 15 * es);
            assert_int_equal(t->key_len, 8);
            assert_memory_equal(t->key, key, 8);
            ts_tensor_free(t);
        }
    }
}

static void test_scalar_and_empty_tensors(void **state)
{
    fx *f = *state;
    double v = 3.5;
    ts_tensor sc = {.key = (const uint8_t *)"scalar", .key_len = 6, .name = "s", .dtype = TS_F64,
                    .ndim = 0, .data = &v, .data_len = 8};
    ts_tensor em = {.key = (const uint8_t *)"empty", .key_len = 5, .name = "e", .dtype = TS_F32,
                    .ndim = 2, .shape = {0, 4}, .data = NULL, .data_len = 0};
    assert_int_equal(ts_save(f->s, &sc), 0);
    assert_int_equal(ts_save(f->s, &em), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    ts_tensor *t = NULL;
    assert_int_equal(ts_load(f->s, "scalar", 6, &t), 0);
    assert_int_equal(t->ndim, 0);
    assert_true(*(const double *)t->data == 3.5);
    ts_tensor_free(t);
    assert_int_equal(ts_load(f->s, "empty", 5, &t), 0);
    assert_int_equal(t->data_len, 0);
    assert_int_equal(t->shape[0], 0);
    ts_tensor_free(t);
}

static void test_zero_timestamp_is_stamped_now(void **state)
{
    fx *f = *state;
    tu_tensor x;
    tu_tensor_init(&x, 1, 4, 0);
    x.t.timestamp_ns = 0;
    int64_t before = plat_now_ns();
    assert_int_equal(ts_save(f->s, &x.t), 0);
    ts_tensor *t = NULL;
    assert_int_equal(ts_load(f->s, x.key, 8, &t), 0);
    assert_true(t->timestamp_ns >= before && t->timestamp_ns <= plat_now_ns());
    ts_tensor_free(t);
    tu_tensor_free(&x);
}

static void test_batch_costs_one_fdatasync(void **state)
{
    fx *f = *state;
    tu_count_vfs *c = &f->count;
    tu_count_vfs_init(c);
    ts_options o;
    ts_options_init(&o);
    o.vfs = &c->vfs;
    reopen(f, &o);
    tu_tensor x[64];
    const ts_tensor *b[64];
    for (int i = 0; i < 64; i++) {
        tu_tensor_init(&x[i], (uint64_t)i, 1024, (float)i);
        b[i] = &x[i].t;
    }
    unsigned long before = c->fdatasyncs;
    ts_stats st0, st1;
    ts_get_stats(f->s, &st0);
    assert_int_equal(ts_save_batch(f->s, b, 64), 0);
    ts_get_stats(f->s, &st1);
    assert_int_equal(c->fdatasyncs - before, 1);
    assert_int_equal(st1.fsyncs - st0.fsyncs, 1);
    assert_int_equal(st1.batches - st0.batches, 1);
    assert_int_equal(st1.payload_bytes - st0.payload_bytes, 64 * 4096);
    /* Record headers are the only bytes beyond the payload. */
    assert_true(st1.bytes_written - st0.bytes_written < 64 * 4096 * 103 / 100);
    for (int i = 0; i < 64; i++) {
        assert_true(tu_check(f->s, (uint64_t)i, 1024, (float)i));
        tu_tensor_free(&x[i]);
    }
}

/* ts_batch_cost is exact for the WAL and covers the index the seal adds. */
static void test_batch_cost_matches_the_bytes_written(void **state)
{
    fx *f = *state;
    tu_tensor x[5];
    const ts_tensor *b[5];
    static const size_t sizes[5] = {1, 3, 1000, 1024, 5000};
    for (int i = 0; i < 5; i++) {
        tu_tensor_init(&x[i], (uint64_t)i, sizes[i], (float)i);
        b[i] = &x[i].t;
    }
    uint64_t cost = 0;
    ts_stats st0, st1, st2;
    assert_int_equal(ts_batch_cost(b, 5, &cost), 0);
    ts_get_stats(f->s, &st0);
    assert_int_equal(ts_save_batch(f->s, b, 5), 0);
    ts_get_stats(f->s, &st1);
    /* A plain batch (one tensor is over 1 KiB): WAL bytes are exact, and
     * the rest is the index reserve (each 8-byte key + 36). */
    assert_int_equal(st1.disk_bytes - st0.disk_bytes, cost - 5 * (8 + 36));
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    ts_get_stats(f->s, &st2);
    /* The sealed SST (plus the next segment's header and the footer). */
    assert_true(st2.disk_bytes - st0.disk_bytes <= cost + 64 + 32);
    ts_tensor bad = x[0].t;
    bad.data_len = 3;
    const ts_tensor *bb[2] = {b[0], &bad};
    assert_int_equal(ts_batch_cost(bb, 2, &cost), TS_EINVAL);
    assert_int_equal(cost, 0);
    for (int i = 0; i < 5; i++)
        tu_tensor_free(&x[i]);
}

/* insert_only turns a save that would replace a stored key into TS_EEXIST
 * with nothing written: in the MemTable, in an SST, twice in one batch. */
static void test_insert_only_refuses_a_stored_key_and_writes_nothing(void **state)
{
    fx *f = *state;
    ts_options o;
    ts_options_init(&o);
    o.insert_only = 1;
    reopen(f, &o);
    assert_int_equal(tu_save(f->s, 1, 10, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 10, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(tu_save(f->s, 3, 10, 3), 0);
    ts_stats st0, st1;
    ts_get_stats(f->s, &st0);
    assert_int_equal(tu_save(f->s, 3, 10, 99), TS_EEXIST); /* in the MemTable */
    assert_non_null(strstr(ts_errmsg(f->s), "already stored"));
    assert_int_equal(tu_save(f->s, 1, 10, 99), TS_EEXIST); /* in an SST */
    tu_tensor x[3];
    const ts_tensor *b[3];
    for (int i = 0; i < 3; i++) {
        tu_tensor_init(&x[i], i == 2 ? 10 : (uint64_t)(10 + i), 10, 50);
        b[i] = &x[i].t;
    }
    assert_int_equal(ts_save_batch(f->s, b, 3), TS_EEXIST); /* key 10 twice */
    assert_non_null(strstr(ts_errmsg(f->s), "twice"));
    ts_get_stats(f->s, &st1);
    assert_int_equal(st1.bytes_written, st0.bytes_written);
    assert_int_equal(st1.next_seq, st0.next_seq);
    assert_true(tu_check(f->s, 1, 10, 1));
    assert_true(tu_check(f->s, 3, 10, 3));
    assert_int_equal(tu_save(f->s, 10, 10, 10), 0); /* new keys still go in */
    for (int i = 0; i < 3; i++)
        tu_tensor_free(&x[i]);
    /* Without the option a save replaces, as before. */
    reopen(f, NULL);
    assert_int_equal(tu_save(f->s, 1, 10, 7), 0);
    assert_true(tu_check(f->s, 1, 10, 7));
}

static uint64_t seq_of(ts_store *s, uint64_t k)
{
    uint8_t key[8];
    ts_tensor *t = NULL;
    ts_key_from_u64(k, key);
    assert_int_equal(ts_load(s, key, 8, &t), 0);
    uint64_t seq = t->seq;
    ts_tensor_free(t);
    return seq;
}

/* ts_raise_seq moves next_seq up (never down), with or without tensors in
 * the open segment, and it holds across a reopen. */
static void test_raise_seq_moves_next_seq_up_and_it_stays(void **state)
{
    fx *f = *state;
    ts_stats st;
    assert_int_equal(tu_save(f->s, 1, 4, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 4, 2), 0);
    assert_int_equal(ts_raise_seq(f->s, 100), 0); /* seals seqs 1..2 first */
    ts_get_stats(f->s, &st);
    assert_int_equal(st.next_seq, 100);
    assert_int_equal(st.n_sst, 1);
    assert_int_equal(ts_raise_seq(f->s, 50), 0); /* never down */
    assert_int_equal(tu_save(f->s, 3, 4, 3), 0);
    assert_int_equal(seq_of(f->s, 3), 100);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(ts_raise_seq(f->s, 1000), 0); /* empty segment: no seal */
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, 2);
    reopen(f, NULL);
    ts_get_stats(f->s, &st);
    assert_int_equal(st.next_seq, 1000);
    assert_int_equal(seq_of(f->s, 1), 1);
    assert_int_equal(seq_of(f->s, 3), 100);
    assert_int_equal(tu_save(f->s, 4, 4, 4), 0);
    assert_int_equal(seq_of(f->s, 4), 1000);
    uint64_t bad = 0;
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), 0);
}

static void test_flush_names_sst_and_replay_restores(void **state)
{
    fx *f = *state;
    char name[64];
    uint64_t n = 0;
    assert_int_equal(tu_save(f->s, 101, 16, 1), 0);
    assert_int_equal(tu_save(f->s, 202, 16, 2), 0);
    assert_int_equal(ts_flush(f->s, name, sizeof(name), &n), 0);
    assert_string_equal(name, "sst_000000.sst");
    assert_int_equal(n, 2);
    assert_true(tu_exists(tu_path(f->dir, "sst_000000.sst")));
    assert_false(tu_exists(tu_path(f->dir, "wal_000000.log")));
    assert_true(tu_exists(tu_path(f->dir, "wal_000001.log")));
    /* An empty MemTable flushes to nothing. */
    assert_int_equal(ts_flush(f->s, name, sizeof(name), &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(name, "");
    assert_int_equal(tu_save(f->s, 303, 16, 3), 0); /* stays in the WAL */
    reopen(f, NULL);
    assert_true(tu_check(f->s, 101, 16, 1));
    assert_true(tu_check(f->s, 202, 16, 2));
    assert_true(tu_check(f->s, 303, 16, 3));
    ts_stats st;
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, 1);
    assert_int_equal(st.memtable_entries, 1);
}

static void test_newest_version_wins_across_memtable_and_ssts(void **state)
{
    fx *f = *state;
    assert_int_equal(tu_save(f->s, 7, 8, 100), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(tu_save(f->s, 7, 8, 200), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_true(tu_check(f->s, 7, 8, 200));
    assert_int_equal(tu_save(f->s, 7, 4, 300), 0);
    assert_int_equal(tu_save(f->s, 7, 4, 400), 0); /* twice in one segment */
    assert_true(tu_check(f->s, 7, 4, 400));
    reopen(f, NULL);
    assert_true(tu_check(f->s, 7, 4, 400));
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    reopen(f, NULL);
    assert_true(tu_check(f->s, 7, 4, 400));
}

static void test_memtable_max_triggers_flush(void **state)
{
    fx *f = *state;
    ts_options o;
    ts_options_init(&o);
    o.memtable_max = 64 * 1024;
    reopen(f, &o);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tu_save(f->s, (uint64_t)i, 1024, (float)i), 0);
    ts_stats st;
    ts_get_stats(f->s, &st);
    assert_true(st.flushes >= 5);
    assert_int_equal(st.n_sst, st.flushes);
    reopen(f, &o);
    for (int i = 0; i < 100; i++)
        assert_true(tu_check(f->s, (uint64_t)i, 1024, (float)i));
}

static void test_point_load_from_sst_is_one_pread(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 50; i++)
        assert_int_equal(tu_save(f->s, (uint64_t)i, 1024, (float)i), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    tu_count_vfs *c = &f->count;
    tu_count_vfs_init(c);
    ts_options o;
    ts_options_init(&o);
    o.vfs = &c->vfs;
    reopen(f, &o);
    unsigned long before = c->preads;
    assert_true(tu_check(f->s, 33, 1024, 33));
    assert_int_equal(c->preads - before, 1);
}

static void test_preview_reads_only_needed_blocks(void **state)
{
    fx *f = *state;
    enum { N = 64 * 1024 }; /* 256 KiB of f32 */
    assert_int_equal(tu_save(f->s, 5, N, 0.5f), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    tu_count_vfs *c = &f->count;
    tu_count_vfs_init(c);
    ts_options o;
    ts_options_init(&o);
    o.vfs = &c->vfs;
    reopen(f, &o);
    uint8_t key[8];
    ts_key_from_u64(5, key);
    ts_tensor *t = NULL;
    unsigned long long bytes0 = c->pread_bytes;
    unsigned long preads0 = c->preads;
    assert_int_equal(ts_load_preview(f->s, key, 8, 3, &t), 0);
    assert_int_equal(c->preads - preads0, 1);
    /* Header (with 64 block CRCs) plus one 4 KiB block, not 256 KiB. */
    assert_true(c->pread_bytes - bytes0 <= 4096 + 512);
    assert_int_equal(t->data_len, 3 * sizeof(float));
    assert_true(((const float *)t->data)[2] == 2.5f);
    assert_int_equal(t->shape[0], N);
    char line[128];
    ts_summarize(t, 3, line, sizeof(line));
    assert_string_equal(line, "t (65536) -> 0.5, 1.5, 2.5, ...");
    ts_tensor_free(t);
    /* A preview larger than the tensor returns the whole tensor. */
    assert_int_equal(ts_load_preview(f->s, key, 8, 1u << 30, &t), 0);
    assert_int_equal(t->data_len, N * sizeof(float));
    ts_tensor_free(t);
}

static void test_summarize_matches_seed_format(void **state)
{
    (void)state;
    float frame[32 * 32];
    for (int i = 0; i < 32 * 32; i++)
        frame[i] = 0.25f;
    ts_tensor t = {.name = "camera_frame", .dtype = TS_F32, .ndim = 2, .shape = {32, 32},
                   .data = frame, .data_len = sizeof(frame)};
    char line[128];
    int need = ts_summarize(&t, 2, line, sizeof(line));
    assert_string_equal(line, "camera_frame (32x32) -> 0.25, 0.25, ...");
    assert_int_equal(need, (int)strlen(line));
    char small[8];
    assert_int_equal(ts_summarize(&t, 2, small, sizeof(small)), need);
    assert_string_equal(small, "camera_");
    int16_t v[2] = {-3, 7};
    ts_tensor u = {.name = "v", .dtype = TS_I16, .ndim = 1, .shape = {2}, .data = v, .data_len = 4};
    ts_summarize(&u, 8, line, sizeof(line));
    assert_string_equal(line, "v (2) -> -3, 7");
}

typedef struct collected {
    char keys[64][32];
    int n;
} collected;

static int collect(void *ctx, const ts_entry *e)
{
    collected *c = ctx;
    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%.*s", (int)e->key_len, (const char *)e->key);
    c->n++;
    return 0;
}

static int save_text(ts_store *s, const char *key, float v)
{
    ts_tensor t = {.key = (const uint8_t *)key, .key_len = strlen(key), .name = key,
                   .dtype = TS_F32, .ndim = 1, .shape = {1}, .data = &v, .data_len = 4};
    return ts_save(s, &t);
}

static void test_scan_prefix_merges_sources_in_key_order(void **state)
{
    fx *f = *state;
    assert_int_equal(save_text(f->s, "cam/b", 1), 0);
    assert_int_equal(save_text(f->s, "cam/d", 1), 0);
    assert_int_equal(save_text(f->s, "imu/a", 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(save_text(f->s, "cam/a", 2), 0);
    assert_int_equal(save_text(f->s, "cam/d", 2), 0); /* overwrites, newer */
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(save_text(f->s, "cam/c", 3), 0);
    assert_int_equal(save_text(f->s, "cal", 3), 0);
    collected c = {0};
    assert_int_equal(ts_scan_prefix(f->s, "cam/", 4, collect, &c), 0);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.keys[0], "cam/a");
    assert_string_equal(c.keys[1], "cam/b");
    assert_string_equal(c.keys[2], "cam/c");
    assert_string_equal(c.keys[3], "cam/d");
    memset(&c, 0, sizeof(c));
    assert_int_equal(ts_scan_prefix(f->s, NULL, 0, collect, &c), 0);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.keys[0], "cal");
    assert_string_equal(c.keys[5], "imu/a");
    memset(&c, 0, sizeof(c));
    assert_int_equal(ts_scan_range(f->s, "cam/b", 5, "cam/d", 5, collect, &c), 0);
    assert_int_equal(c.n, 2);
}

static int newest_seq(void *ctx, const ts_entry *e)
{
    *(uint64_t *)ctx = e->seq;
    return 0;
}

static void test_scan_reports_newest_version(void **state)
{
    fx *f = *state;
    assert_int_equal(save_text(f->s, "k", 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(save_text(f->s, "k", 2), 0);
    uint64_t seq = 0;
    assert_int_equal(ts_scan_prefix(f->s, "k", 1, newest_seq, &seq), 0);
    assert_int_equal(seq, 2);
}

static void test_bad_inputs_are_rejected_and_change_nothing(void **state)
{
    fx *f = *state;
    uint8_t longkey[TS_MAX_KEY_LEN + 1];
    memset(longkey, 'k', sizeof(longkey));
    float d[4] = {0};
    const char *wal = tu_path(f->dir, "wal_000000.log");
    long size0 = tu_file_size(wal);
    ts_tensor good = {.key = (const uint8_t *)"g", .key_len = 1, .name = "g", .dtype = TS_F32,
                      .ndim = 1, .shape = {4}, .data = d, .data_len = 16};
    ts_tensor bad;

    bad = good; bad.data_len = 12;                    /* size/shape mismatch */
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    assert_non_null(strstr(ts_errmsg(f->s), "does not match"));
    bad = good; bad.dtype = (ts_dtype)99;             /* unknown dtype */
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    assert_non_null(strstr(ts_errmsg(f->s), "dtype"));
    bad = good; bad.dtype = TS_F64;                   /* dtype mismatch */
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    bad = good; bad.key = longkey; bad.key_len = sizeof(longkey);
    assert_int_equal(ts_save(f->s, &bad), TS_ENAMETOOLONG);
    assert_non_null(strstr(ts_errmsg(f->s), "key longer"));
    bad = good; bad.key_len = 0;
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    bad = good; bad.ndim = 9;
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    assert_non_null(strstr(ts_errmsg(f->s), "8 dimensions"));
    bad = good; bad.ndim = 3; bad.shape[0] = 1ull << 40; bad.shape[1] = 1ull << 40;
    bad.shape[2] = 1ull << 40;                        /* overflowing sizes */
    assert_int_equal(ts_save(f->s, &bad), TS_EOVERFLOW);
    bad = good; bad.data = NULL;
    assert_int_equal(ts_save(f->s, &bad), TS_EINVAL);
    /* One bad tensor rejects the whole batch. */
    bad = good; bad.data_len = 8;
    const ts_tensor *batch[] = {&good, &bad};
    assert_int_equal(ts_save_batch(f->s, batch, 2), TS_EINVAL);
    assert_non_null(strstr(ts_errmsg(f->s), "tensor 1"));
    assert_int_equal(tu_file_size(wal), size0);
    ts_tensor *t = NULL;
    assert_int_equal(ts_load(f->s, "g", 1, &t), TS_ENOTFOUND);
    assert_null(t);
    assert_int_equal(ts_load(f->s, "", 0, &t), TS_EINVAL);
    /* The store still works. */
    assert_int_equal(ts_save(f->s, &good), 0);
    assert_int_equal(ts_load(f->s, "g", 1, &t), 0);
    ts_tensor_free(t);
}

static void test_second_writer_is_refused(void **state)
{
    fx *f = *state;
    ts_options o;
    ts_store *s2 = NULL;
    char err[512];
    ts_options_init(&o);
    assert_int_equal(ts_open(f->dir, &o, &s2, err, sizeof(err)), TS_EBUSY);
    assert_null(s2);
    assert_non_null(strstr(err, "locked"));
    /* Readers are welcome beside the writer. */
    assert_int_equal(tu_save(f->s, 1, 4, 1), 0);
    o.read_only = 1;
    assert_int_equal(ts_open(f->dir, &o, &s2, err, sizeof(err)), 0);
    assert_true(tu_check(s2, 1, 4, 1));
    assert_int_equal(tu_save(s2, 2, 4, 1), TS_EROFS);
    assert_int_equal(ts_flush(s2, NULL, 0, NULL), TS_EROFS);
    ts_close(s2);
}

static void test_bad_store_paths(void **state)
{
    fx *f = *state;
    ts_options o;
    ts_store *s2 = NULL;
    char err[512];
    ts_options_init(&o);
    /* Missing directory without create. */
    assert_int_equal(ts_open(tu_path(f->dir, "nope"), &o, &s2, err, sizeof(err)), TS_ENOENT);
    /* A file where a directory should be. */
    tu_append(tu_path(f->dir, "LOCK"), "", 0);
    o.create_if_missing = 1;
    assert_int_equal(ts_open(tu_path(f->dir, "LOCK"), &o, &s2, err, sizeof(err)), TS_ENOTDIR);
    assert_non_null(strstr(err, "not a directory"));
    /* Store files without a MANIFEST. */
    char *d2 = tu_tmpdir("nomanifest");
    FILE *fp = fopen(tu_path(d2, "wal_000000.log"), "w");
    fclose(fp);
    assert_int_equal(ts_open(d2, &o, &s2, err, sizeof(err)), TS_ENOTSTORE);
    assert_non_null(strstr(err, "MANIFEST"));
    /* An empty directory is not a store unless asked to create one. */
    char *d3 = tu_tmpdir("empty");
    o.create_if_missing = 0;
    assert_int_equal(ts_open(d3, &o, &s2, err, sizeof(err)), TS_ENOENT);
    o.read_only = 1;
    assert_int_equal(ts_open(d3, &o, &s2, err, sizeof(err)), TS_ENOENT);
    assert_false(tu_exists(tu_path(d3, "MANIFEST")));
    tu_rmtree(d2);
    tu_rmtree(d3);
    free(d2);
    free(d3);
}

static void test_stats_and_verify_clean_store(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(tu_save(f->s, (uint64_t)i, 256, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    for (int i = 5; i < 15; i++)
        assert_int_equal(tu_save(f->s, (uint64_t)i, 256, 2), 0);
    ts_stats st;
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, 1);
    assert_int_equal(st.n_entries, 20);
    assert_int_equal(st.memtable_entries, 10);
    assert_int_equal(st.tensors_saved, 20);
    assert_int_equal(st.payload_bytes, 20 * 1024);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.next_seq, 21);
    uint64_t bad = 99;
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
}

typedef struct lines_ctx {
    char l[16][256];
    int n;
} lines_ctx;

static void collect_line(void *ctx, const char *line)
{
    lines_ctx *c = ctx;
    if (c->n < 16)
        snprintf(c->l[c->n++], sizeof(c->l[0]), "%s", line);
}

static void test_dry_run_prints_seed_lines(void **state)
{
    (void)state;
    char *d = tu_tmpdir("dry");
    lines_ctx c = {.n = 0};
    assert_int_equal(ts_dry_run(d, NULL, collect_line, &c), 0);
    int flushed = 0, frame = 0;
    for (int i = 0; i < c.n; i++) {
        flushed |= !strcmp(c.l[i], "flushed 2 to sst_000000.sst");
        frame |= !strcmp(c.l[i], "camera_frame (32x32) -> 0.25, 0.25, ...");
    }
    assert_true(flushed);
    assert_true(frame);
    tu_rmtree(d);
    free(d);
}

static void test_checkpoint_is_a_read_only_store_and_release_drops_it(void **state)
{
    fx *f = *state;
    char ck[4000], err[512];
    ts_checkpoint_info info;
    ts_store *c = NULL;
    ts_options ro;
    ts_stats st;
    snprintf(ck, sizeof(ck), "%s.ckpt", f->dir);
    assert_int_equal(tu_save(f->s, 1, 300, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(tu_save(f->s, 2, 300, 2), 0); /* still in the MemTable */
    assert_int_equal(ts_checkpoint(f->s, ck, &info), 0);
    assert_int_equal(info.n_files, 2);
    assert_int_equal(info.first_file, 0);
    assert_int_equal(info.last_file, 1);
    assert_int_equal(info.min_seq, 1);
    assert_int_equal(info.max_seq, 2);
    assert_int_equal(tu_file_size(tu_path(ck, "sst_000000.sst")) +
                         tu_file_size(tu_path(ck, "sst_000001.sst")),
                     (long)info.bytes);
    /* Until released, both hold the tensors; the store takes writes. */
    assert_true(tu_check(f->s, 1, 300, 1));
    assert_int_equal(tu_save(f->s, 3, 10, 3), 0);
    ts_options_init(&ro);
    ro.read_only = 1;
    assert_int_equal(ts_open(ck, &ro, &c, err, sizeof(err)), 0);
    assert_true(tu_check(c, 1, 300, 1));
    assert_true(tu_check(c, 2, 300, 2));
    assert_false(tu_check(c, 3, 10, 3));
    uint64_t bad = 1;
    assert_int_equal(ts_verify(c, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(tu_save(c, 9, 1, 9), TS_EROFS);
    ts_checkpoint_info none;
    assert_int_equal(ts_checkpoint(c, "/nonexistent/x", &none), TS_EROFS);
    assert_int_equal(ts_release(f->s, info.last_file), 0);
    assert_false(tu_check(f->s, 1, 300, 1));
    assert_false(tu_check(f->s, 2, 300, 2));
    assert_true(tu_check(f->s, 3, 10, 3));
    assert_false(tu_exists(tu_path(f->dir, "sst_000000.sst")));
    assert_false(tu_exists(tu_path(f->dir, "sst_000001.sst")));
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, 0);
    /* The checkpoint outlives the store's names for its files. */
    assert_true(tu_check(c, 2, 300, 2));
    ts_close(c);
    reopen(f, NULL);
    assert_true(tu_check(f->s, 3, 10, 3));
    assert_false(tu_check(f->s, 1, 300, 1));
    ts_get_stats(f->s, &st);
    assert_true(st.next_seq > 3);
    /* Releasing again, or below every live file, is a no-op. */
    assert_int_equal(ts_release(f->s, info.last_file), 0);
    assert_true(tu_check(f->s, 3, 10, 3));
    tu_rmtree(ck);
}

static void test_checkpoint_refuses_empty_store_and_existing_dir(void **state)
{
    fx *f = *state;
    char ck[4000];
    ts_checkpoint_info info;
    snprintf(ck, sizeof(ck), "%s.ckpt", f->dir);
    assert_int_equal(ts_checkpoint(f->s, ck, &info), TS_ENOTFOUND);
    assert_false(tu_exists(ck));
    assert_int_equal(tu_save(f->s, 1, 8, 1), 0);
    assert_int_equal(mkdir(ck, 0755), 0);
    assert_int_equal(ts_checkpoint(f->s, ck, &info), -EEXIST);
    assert_non_null(strstr(ts_errmsg(f->s), "mkdir"));
    /* Nothing was lost or released by the failure. */
    assert_true(tu_check(f->s, 1, 8, 1));
    tu_rmtree(ck);
}

static void test_open_removes_released_sst_left_behind(void **state)
{
    fx *f = *state;
    char ck[4000], name[64];
    ts_checkpoint_info info;
    snprintf(ck, sizeof(ck), "%s.ckpt", f->dir);
    assert_int_equal(tu_save(f->s, 1, 8, 1), 0);
    assert_int_equal(ts_flush(f->s, name, sizeof(name), NULL), 0);
    assert_int_equal(ts_checkpoint(f->s, ck, &info), 0);
    assert_int_equal(ts_release(f->s, info.last_file), 0);
    /* As if a crash came between the MANIFEST and the unlink. */
    assert_int_equal(link(tu_path(ck, name), tu_path(f->dir, name)), 0);
    reopen(f, NULL);
    assert_false(tu_exists(tu_path(f->dir, name)));
    assert_true(tu_exists(tu_path(ck, name)));
    tu_rmtree(ck);
}

typedef struct files_seen {
    ts_file_info f[4];
    uint8_t first[4][TS_KEY_U64_LEN], last[4][TS_KEY_U64_LEN];
    size_t n;
} files_seen;

static int see_file(void *ctx, const ts_file_info *fi)
{
    files_seen *v = ctx;
    if (v->n == 4)
        return 7;
    v->f[v->n] = *fi;
    if (fi->first_key && fi->first_len == TS_KEY_U64_LEN)
        memcpy(v->first[v->n], fi->first_key, TS_KEY_U64_LEN);
    if (fi->last_key && fi->last_len == TS_KEY_U64_LEN)
        memcpy(v->last[v->n], fi->last_key, TS_KEY_U64_LEN);
    v->n++;
    return 0;
}

static void test_list_files_reports_wal_then_ssts_with_key_ranges(void **state)
{
    fx *f = *state;
    files_seen v = {.n = 0};
    uint8_t k101[TS_KEY_U64_LEN], k202[TS_KEY_U64_LEN];
    ts_key_from_u64(101, k101);
    ts_key_from_u64(202, k202);
    assert_int_equal(ts_memtable_max(f->s), 64u << 20); /* the default */
    assert_int_equal(tu_save(f->s, 202, 16, 1), 0);
    assert_int_equal(tu_save(f->s, 101, 16, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(tu_save(f->s, 303, 16, 3), 0);
    assert_int_equal(ts_list_files(f->s, see_file, &v), 0);
    assert_int_equal(v.n, 2);
    /* the open WAL first: its append offset is its size, its one tensor */
    assert_true(v.f[0].is_wal);
    assert_int_equal(v.f[0].file_no, 1);
    assert_int_equal(v.f[0].n_entries, 1);
    assert_int_equal(v.f[0].bytes, tu_file_size(tu_path(f->dir, "wal_000001.log")));
    assert_null(v.f[0].first_key);
    /* then the SST: its size, records, seqs and key range */
    assert_false(v.f[1].is_wal);
    assert_int_equal(v.f[1].file_no, 0);
    assert_int_equal(v.f[1].n_entries, 2);
    assert_int_equal(v.f[1].bytes, tu_file_size(tu_path(f->dir, "sst_000000.sst")));
    assert_int_equal(v.f[1].min_seq, 1);
    assert_int_equal(v.f[1].max_seq, 2);
    assert_memory_equal(v.first[1], k101, TS_KEY_U64_LEN);
    assert_memory_equal(v.last[1], k202, TS_KEY_U64_LEN);
    /* a callback's non-zero return stops the walk and is returned */
    v.n = 4;
    assert_int_equal(ts_list_files(f->s, see_file, &v), 7);
}

/* Descriptors this process has open now. */
static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Flushes with no loads in between still keep at most STORE_MAX_OPEN_SSTS
 * (64) SST descriptors open: one past the bound closes the least recently
 * used (a writer that never reads ran out of descriptors at 1024). */
static void test_flushes_without_loads_keep_the_open_sst_bound(void **state)
{
    fx *f = *state;
    int before = open_fds();
    for (uint64_t k = 0; k < 200; k++) {
        assert_int_equal(tu_save(f->s, k, 4, 1.0f), 0);
        assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    }
    int after = open_fds();
    assert_true(after - before <= 64 + 1);
    assert_true(after - before >= 64 - 1);
    for (uint64_t k = 0; k < 200; k++)
        assert_true(tu_check(f->s, k, 4, 1.0f));
    assert_true(open_fds() - before <= 64 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip_every_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flushes_without_loads_keep_the_open_sst_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scalar_and_empty_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_files_reports_wal_then_ssts_with_key_ranges,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_timestamp_is_stamped_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_costs_one_fdatasync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_cost_matches_the_bytes_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_only_refuses_a_stored_key_and_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raise_seq_moves_next_seq_up_and_it_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_names_sst_and_replay_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_version_wins_across_memtable_and_ssts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memtable_max_triggers_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point_load_from_sst_is_one_pread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preview_reads_only_needed_blocks, setup, teardown),
        cmocka_unit_test(test_summarize_matches_seed_format),
        cmocka_unit_test_setup_teardown(test_scan_prefix_merges_sources_in_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_reports_newest_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs_are_rejected_and_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_store_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_verify_clean_store, setup, teardown),
        cmocka_unit_test(test_dry_run_prints_seed_lines),
        cmocka_unit_test_setup_teardown(test_checkpoint_is_a_read_only_store_and_release_drops_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refuses_empty_store_and_existing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_removes_released_sst_left_behind, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
