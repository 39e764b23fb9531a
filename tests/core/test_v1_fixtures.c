/*
 * test_v1_fixtures.c -- stores written by the format-version-1 code stay
 * readable and writable forever.
 *
 * tests/core/fixtures/v1/ holds two stores made once by gen_v1_fixtures
 * with the v1 code: `store` (three SSTs plus an open WAL segment with
 * unflushed batches, so both the SST reader and the WAL replay are
 * exercised) and `checkpoint` (a ts_checkpoint of it: SSTs only).
 * v1_fixture.h says what they hold. Each test copies one of them into a
 * fresh temporary directory first: the committed files are only ever read.
 *
 * A failure here after a format change means v1 stores in the field would
 * no longer open, or would read differently. Fix the reader; never the
 * fixtures.
 */
#include "test_util.h"
#include "v1_fixture.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#ifndef V1_FIXTURES_DIR
#error "V1_FIXTURES_DIR must name tests/core/fixtures/v1 (set by CMake)"
#endif

/* One committed fixture and what it holds. */
typedef struct fixture {
    const char *name;   /* directory under V1_FIXTURES_DIR */
    size_t n_writes;    /* it holds writes 0..n_writes-1 of v1_fixture.h */
    int has_wal;        /* 1: wal_000003.log is its open segment */
} fixture;

static const fixture store_fixture = {"store", V1_N_WRITES, 1};
static const fixture checkpoint_fixture = {"checkpoint", V1_N_CHECKPOINT, 0};

typedef struct fx {
    const fixture *fix;
    char src[1024];  /* the committed fixture: read only */
    char *dir;       /* the copy the test works on */
    ts_store *s;
} fx;

/* ---- files ---------------------------------------------------------------- */

/* Reads a whole file into a new buffer (caller frees); NULL if unreadable. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
        *len = (size_t)size;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The names of dir's files into names[], sorted; returns how many. */
static int list_files(const char *dir, char names[][64], int max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        assert_true(n < max);
        assert_true(strlen(e->d_name) < 64);
        strcpy(names[n++], e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 64, cmp_name);
    return n;
}

/* 1 when every file of a is in b with the same bytes and vice versa. */
static int same_files(const char *a, const char *b)
{
    char na[16][64], nb[16][64];
    int n = list_files(a, na, 16), same = n == list_files(b, nb, 16);
    for (int i = 0; same && i < n; i++) {
        size_t la = 0, lb = 0;
        uint8_t *x = read_file(tu_path(a, na[i]), &la), *y = read_file(tu_path(b, nb[i]), &lb);
        same = strcmp(na[i], nb[i]) == 0 && x && y && la == lb && memcmp(x, y, la) == 0;
        free(x);
        free(y);
    }
    return same;
}

static void copy_dir(const char *from, const char *to)
{
    char names[16][64];
    int n = list_files(from, names, 16);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        uint8_t *buf = read_file(tu_path(from, names[i]), &len);
        assert_non_null(buf);
        FILE *f = fopen(tu_path(to, names[i]), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        free(buf);
    }
}

/* ---- setup ---------------------------------------------------------------- */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->fix = *state;
    snprintf(f->src, sizeof(f->src), "%s/%s", V1_FIXTURES_DIR, f->fix->name);
    f->dir = tu_tmpdir("v1");
    copy_dir(f->src, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ts_close(f->s);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Opens the copy: read-only, or writable with the default options (no
 * create_if_missing: it must be found as a store). */
static void open_copy(fx *f, int read_only)
{
    ts_options o;
    char err[512] = "";
    ts_close(f->s);
    f->s = NULL;
    ts_options_init(&o);
    o.read_only = read_only;
    int rc = ts_open(f->dir, &o, &f->s, err, sizeof(err));
    if (rc)
        fail_msg("ts_open(%s, read_only=%d): %s", f->dir, read_only, err);
    /* Nothing to report: no torn tail, no raised seqs. */
    assert_string_equal(ts_errmsg(f->s), "");
}

/* ---- expectations ------------------------------------------------------- */

/* Write i loads exactly as v1_fixture.h describes it. */
static void assert_write_loads(ts_store *s, size_t i)
{
    v1_write w;
    ts_tensor *t = NULL;
    assert_int_equal(v1_write_make(i, &w), 0);
    int rc = ts_load(s, w.t.key, w.t.key_len, &t);
    if (rc)
        fail_msg("write %zu (%s): ts_load: %s", i, v1_specs[i].name, ts_errmsg(s));
    assert_int_equal(t->key_len, w.t.key_len);
    assert_memory_equal(t->key, w.t.key, w.t.key_len);
    assert_string_equal(t->name, w.t.name);
    assert_int_equal(t->dtype, w.t.dtype);
    assert_int_equal(t->ndim, w.t.ndim);
    assert_memory_equal(t->shape, w.t.shape, sizeof(t->shape));
    assert_true(t->timestamp_ns == w.t.timestamp_ns);
    assert_int_equal(t->seq, v1_seq(i));
    assert_int_equal(t->data_len, w.t.data_len);
    if (w.t.data_len)
        assert_memory_equal(t->data, w.data, w.t.data_len);
    ts_tensor_free(t);
    v1_write_free(&w);
}

static int key_is(size_t i, const char *key)
{
    uint8_t k[TS_MAX_KEY_LEN];
    size_t len = v1_key(i, k);
    return len == strlen(key) && memcmp(k, key, len) == 0;
}

/* Every key of the fixture loads its newest version, except `skip` (a key
 * the test overwrote since; NULL for none). */
static void assert_fixture_loads(fx *f, const char *skip)
{
    for (size_t i = 0; i < f->fix->n_writes; i++)
        if (v1_is_newest(i, f->fix->n_writes) && !(skip && key_is(i, skip)))
            assert_write_loads(f->s, i);
}

/* The newest write of key among the fixture's writes. */
static size_t newest_of(const fixture *fix, const char *key)
{
    for (size_t i = fix->n_writes; i-- > 0;)
        if (key_is(i, key))
            return i;
    fail_msg("no write of %s", key);
    return 0;
}

/* ---- the committed files ------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The committed fixture holds exactly the v1 files, each saying version 1
 * (so nobody regenerated it with later code), and no LOCK. */
static void fixture_files_are_format_version_1(fx *f)
{
    char names[16][64];
    int n = list_files(f->src, names, 16);
    const char *want[] = {"MANIFEST", "sst_000000.sst", "sst_000001.sst", "sst_000002.sst",
                          "wal_000003.log"};
    assert_int_equal(n, f->fix->has_wal ? 5 : 4);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        uint8_t *buf = read_file(tu_path(f->src, names[i]), &len);
        assert_string_equal(names[i], want[i]);
        assert_non_null(buf);
        if (i == 0) {
            assert_true(len >= 16);
            assert_memory_equal(buf, "EDBMAN01", 8);
            assert_int_equal(le32(buf + 8), 1);
        } else {
            assert_true(len >= 32);
            assert_memory_equal(buf, "EDBSEG01", 8);
            assert_int_equal(le32(buf + 24), 1);
            if (names[i][0] == 's')
                assert_memory_equal(buf + len - 8, "EDBSST01", 8);
        }
        free(buf);
    }
}

/* ---- read-only ------------------------------------------------------------ */

static void opens_read_only_and_every_tensor_loads(fx *f)
{
    ts_stats st;
    open_copy(f, 1);
    assert_fixture_loads(f, NULL);
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, V1_N_SST);
    assert_int_equal(st.recovery_cut_bytes, 0);
    assert_true(st.next_seq > v1_seq(f->fix->n_writes - 1));
    /* A key the fixture never held is absent, and the open wrote nothing. */
    ts_tensor *t = NULL;
    assert_int_equal(ts_load(f->s, "no/such/key", 11, &t), TS_ENOTFOUND);
    ts_close(f->s);
    f->s = NULL;
    assert_true(same_files(f->src, f->dir));
}

/* A preview of the large tensor (several 4 KiB CRC blocks, last partial)
 * returns its first elements: within the first block, across the first
 * block boundary, and all of it when asked for more. */
static void preview_of_the_large_tensor_returns_its_first_elements(fx *f)
{
    size_t i = newest_of(f->fix, V1_BIG_KEY);
    v1_write w;
    ts_tensor *t = NULL;
    open_copy(f, 1);
    assert_int_equal(v1_write_make(i, &w), 0);
    size_t es = v1_dtype_size(w.t.dtype);
    assert_true(w.t.data_len > 2 * 4096 && w.t.data_len % 4096 != 0);
    const uint64_t counts[] = {3, 4096 / es + 5, 1u << 30};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        size_t want = counts[k] * es < w.t.data_len ? counts[k] * es : w.t.data_len;
        assert_int_equal(ts_load_preview(f->s, w.t.key, w.t.key_len, counts[k], &t), 0);
        assert_int_equal(t->data_len, want);
        assert_memory_equal(t->data, w.data, want);
        assert_int_equal(t->dtype, w.t.dtype);
        assert_int_equal(t->ndim, w.t.ndim);
        assert_memory_equal(t->shape, w.t.shape, sizeof(t->shape));
        assert_int_equal(t->seq, v1_seq(i));
        ts_tensor_free(t);
    }
    v1_write_free(&w);
}

/* What a scan reported for one key (copied out of the callback). */
typedef struct seen {
    uint8_t key[TS_MAX_KEY_LEN];
    size_t key_len;
    char name[TS_MAX_NAME_LEN + 1];
    ts_dtype dtype;
    uint32_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    int64_t timestamp_ns;
    uint64_t data_len, seq, file_no;
    int in_memtable;
} seen;

typedef struct scan_log {
    seen e[V1_N_WRITES + 1];
    size_t n;
} scan_log;

static int log_entry(void *ctx, const ts_entry *e)
{
    scan_log *l = ctx;
    if (l->n == sizeof(l->e) / sizeof(l->e[0]))
        return 1; /* more keys than the fixture holds: the test fails on n */
    seen *x = &l->e[l->n++];
    x->key_len = e->key_len <= TS_MAX_KEY_LEN ? e->key_len : TS_MAX_KEY_LEN;
    memcpy(x->key, e->key, x->key_len);
    snprintf(x->name, sizeof(x->name), "%s", e->name);
    x->dtype = e->dtype;
    x->ndim = e->ndim;
    memcpy(x->shape, e->shape, sizeof(x->shape));
    x->timestamp_ns = e->timestamp_ns;
    x->data_len = e->data_len;
    x->seq = e->seq;
    x->file_no = e->file_no;
    x->in_memtable = e->in_memtable;
    return 0;
}

/* Bytewise, a shorter key first when it is a prefix of the other. */
static int cmp_writes(const void *a, const void *b)
{
    uint8_t ka[TS_MAX_KEY_LEN], kb[TS_MAX_KEY_LEN];
    size_t la = v1_key(*(const size_t *)a, ka), lb = v1_key(*(const size_t *)b, kb);
    int c = memcmp(ka, kb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

/* Scans `prefix` and checks it visits exactly the fixture's keys with that
 * prefix, in key order, each with its newest version's metadata. */
static void assert_scan(fx *f, const char *prefix)
{
    size_t want[V1_N_WRITES], n_want = 0, plen = strlen(prefix);
    uint8_t key[TS_MAX_KEY_LEN];
    scan_log *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    for (size_t i = 0; i < f->fix->n_writes; i++)
        if (v1_is_newest(i, f->fix->n_writes) && v1_key(i, key) >= plen &&
            memcmp(key, prefix, plen) == 0)
            want[n_want++] = i;
    qsort(want, n_want, sizeof(want[0]), cmp_writes);
    assert_true(n_want > 0);
    assert_int_equal(ts_scan_prefix(f->s, prefix, plen, log_entry, l), 0);
    assert_int_equal(l->n, n_want);
    for (size_t k = 0; k < n_want; k++) {
        v1_write w;
        const seen *x = &l->e[k];
        size_t i = want[k];
        assert_int_equal(v1_write_make(i, &w), 0);
        assert_int_equal(x->key_len, w.t.key_len);
        assert_memory_equal(x->key, w.t.key, w.t.key_len);
        assert_string_equal(x->name, w.t.name);
        assert_int_equal(x->dtype, w.t.dtype);
        assert_int_equal(x->ndim, w.t.ndim);
        assert_memory_equal(x->shape, w.t.shape, sizeof(x->shape));
        assert_true(x->timestamp_ns == w.t.timestamp_ns);
        assert_int_equal(x->data_len, w.t.data_len);
        assert_int_equal(x->seq, v1_seq(i));
        assert_int_equal(x->file_no, v1_file_no(i));
        assert_int_equal(x->in_memtable, v1_file_no(i) == V1_WAL_NO);
        v1_write_free(&w);
    }
    free(l);
}

static void scan_visits_every_key_in_order_with_newest_versions(fx *f)
{
    open_copy(f, 1);
    assert_scan(f, "");
    assert_scan(f, "sensors/imu0");  /* the bare topic, then its counters */
    assert_scan(f, "sensors/imu0#");
    assert_scan(f, "dtype/");
    assert_scan(f, "dup/");
}

static void verify_finds_nothing_bad(fx *f)
{
    uint64_t bad = 1;
    open_copy(f, 1);
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
}

/* ---- writable --------------------------------------------------------------- */

/* New tensors written into the v1 store by today's code. */
static const char *const new_keys[] = {"new/batch/0", "dtype/f16", "new/batch/1", "new/single"};
static const float new_data[4][2] = {{1.5f, 2.5f}, {-1, -2}, {3, 4}, {5, 6}};

static void make_new(size_t k, ts_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->key = (const uint8_t *)new_keys[k];
    t->key_len = strlen(new_keys[k]);
    t->name = "written after v1";
    t->dtype = TS_F32;
    t->ndim = 1;
    t->shape[0] = 2;
    t->timestamp_ns = V1_TS_BASE + 1000 * (int64_t)(V1_N_WRITES + k);
    t->data = new_data[k];
    t->data_len = sizeof(new_data[k]);
}

/* The new tensors load, each with a seq above every seq of the fixture. */
static void assert_new_load(fx *f, uint64_t *seqs)
{
    for (size_t k = 0; k < 4; k++) {
        ts_tensor *t = NULL, want;
        make_new(k, &want);
        assert_int_equal(ts_load(f->s, want.key, want.key_len, &t), 0);
        assert_string_equal(t->name, want.name);
        assert_int_equal(t->dtype, TS_F32);
        assert_int_equal(t->data_len, want.data_len);
        assert_memory_equal(t->data, want.data, want.data_len);
        assert_true(t->timestamp_ns == want.timestamp_ns);
        assert_true(t->seq > v1_seq(f->fix->n_writes - 1));
        if (seqs[k])
            assert_int_equal(t->seq, seqs[k]);
        seqs[k] = t->seq;
        ts_tensor_free(t);
    }
}

static void opens_writable_and_takes_new_tensors_above_old_seqs(fx *f)
{
    ts_tensor t[4];
    const ts_tensor *batch[3] = {&t[0], &t[1], &t[2]};
    uint64_t seqs[4] = {0}, bad = 1;
    open_copy(f, 0);
    assert_fixture_loads(f, NULL);
    for (size_t k = 0; k < 4; k++)
        make_new(k, &t[k]);
    /* A batch holding a new key and an overwrite of a v1 key, then a single. */
    assert_int_equal(ts_save_batch(f->s, batch, 3), 0);
    assert_int_equal(ts_save(f->s, &t[3]), 0);
    assert_new_load(f, seqs);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    open_copy(f, 0);
    assert_fixture_loads(f, "dtype/f16");
    assert_new_load(f, seqs);
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
    /* And a read-only open of the result agrees. */
    open_copy(f, 1);
    assert_fixture_loads(f, "dtype/f16");
    assert_new_load(f, seqs);
}

/* ---- the tests, once per fixture ----------------------------------------- */

/* test_v1_<fixture>_<behaviour>: each behaviour above, on each fixture. */
#define V1_TEST(fixture_name, body)                           \
    static void test_v1_##fixture_name##_##body(void **state) \
    {                                                         \
        body(*state);                                         \
    }
#define V1_TESTS(fixture_name)                                                           \
    V1_TEST(fixture_name, fixture_files_are_format_version_1)                            \
    V1_TEST(fixture_name, opens_read_only_and_every_tensor_loads)                        \
    V1_TEST(fixture_name, preview_of_the_large_tensor_returns_its_first_elements)        \
    V1_TEST(fixture_name, scan_visits_every_key_in_order_with_newest_versions)           \
    V1_TEST(fixture_name, verify_finds_nothing_bad)                                      \
    V1_TEST(fixture_name, opens_writable_and_takes_new_tensors_above_old_seqs)

V1_TESTS(store)
V1_TESTS(checkpoint)

#define T(fixture_name, body)                                                      \
    cmocka_unit_test_prestate_setup_teardown(test_v1_##fixture_name##_##body, setup, \
                                             teardown, (void *)&fixture_name##_fixture)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(store, fixture_files_are_format_version_1),
        T(store, opens_read_only_and_every_tensor_loads),
        T(store, preview_of_the_large_tensor_returns_its_first_elements),
        T(store, scan_visits_every_key_in_order_with_newest_versions),
        T(store, verify_finds_nothing_bad),
        T(store, opens_writable_and_takes_new_tensors_above_old_seqs),
        T(checkpoint, fixture_files_are_format_version_1),
        T(checkpoint, opens_read_only_and_every_tensor_loads),
        T(checkpoint, preview_of_the_large_tensor_returns_its_first_elements),
        T(checkpoint, scan_visits_every_key_in_order_with_newest_versions),
        T(checkpoint, verify_finds_nothing_bad),
        T(checkpoint, opens_writable_and_takes_new_tensors_above_old_seqs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
