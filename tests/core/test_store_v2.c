/*
 * test_store_v2.c -- the store with format version 2, through the public
 * API only: agent-style workloads (20 topics interleaved in batches of 64,
 * several flushes, overwrites) checked against a model -- every tensor bit
 * exact, previews of packed records, ts_scan_time against brute force
 * (including keys whose newest version left the window), ts_latest, mixed
 * batches written plain, ts_verify on damaged packed frames in an SST and
 * in the WAL, replay of packed batches on reopen, and ts_batch_cost as an
 * upper bound of what a packed batch adds.
 */
#include "test_util.h"

#include "format.h" /* FMT_IDX2_RESTART: the keys per index block, for a read bound */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define TOPICS 20
#define MAXC 400

/* ---- the model -------------------------------------------------------- */

typedef struct mkey {
    int present;
    uint64_t seq;
    int64_t ts;
    uint32_t version;   /* which payload the key holds (data pattern) */
    int in_mt;          /* saved since the last flush */
} mkey;

typedef struct model {
    mkey k[TOPICS][MAXC];
    int next_c[TOPICS];
    int rr;             /* next topic of save_round */
    uint64_t seq_now;   /* ts_get_stats next_seq before the next batch */
} model;

static const ts_dtype topic_dt[4] = {TS_F32, TS_I16, TS_U8, TS_F64};

static void key_of(int topic, int c, char *key, size_t *len)
{
    *len = (size_t)snprintf(key, 64, "sensors/imu%d#%020d", topic, c);
}

/* Tensor (topic, c) at version v: name = topic, per-topic dtype/shape. */
typedef struct gen {
    ts_tensor t;
    char key[64], name[32];
    uint8_t data[2048];
} gen;

static void gen_init(gen *g, int topic, int c, uint32_t v, int64_t ts)
{
    size_t kl;
    memset(g, 0, sizeof(*g));
    key_of(topic, c, g->key, &kl);
    snprintf(g->name, sizeof(g->name), "sensors/imu%d", topic);
    g->t.key = (const uint8_t *)g->key;
    g->t.key_len = kl;
    g->t.name = g->name;
    g->t.dtype = topic_dt[topic % 4];
    g->t.ndim = topic % 3 == 0 ? 0 : (uint32_t)(topic % 3);
    g->t.shape[0] = (uint64_t)(topic % 5 + 1);
    g->t.shape[1] = 3;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < g->t.ndim; d++)
        numel *= g->t.shape[d];
    g->t.data_len = (size_t)numel * ts_dtype_size(g->t.dtype);
    for (size_t j = 0; j < g->t.data_len; j++)
        g->data[j] = (uint8_t)(topic * 131 + c * 7 + v * 61 + j * 13 + 1);
    g->t.data = g->data;
    g->t.timestamp_ns = ts;
}

static void model_sync(ts_store *s, model *m)
{
    ts_stats st;
    ts_get_stats(s, &st);
    m->seq_now = st.next_seq;
}

/* One batch of n (topic, counter, ts) triples; c < 0: the topic's next
 * counter. Updates the model with the seqs the store will give. */
typedef struct item {
    int topic, c;
    int64_t ts;
} item;

static void save_items(ts_store *s, model *m, item *it, size_t n)
{
    gen *g = calloc(n, sizeof(*g));
    const ts_tensor **p = calloc(n, sizeof(*p));
    model_sync(s, m);
    for (size_t i = 0; i < n; i++) {
        if (it[i].c < 0)
            it[i].c = m->next_c[it[i].topic]++;
        assert_true(it[i].c < MAXC);
        mkey *k = &m->k[it[i].topic][it[i].c];
        gen_init(&g[i], it[i].topic, it[i].c, k->version + 1, it[i].ts);
        p[i] = &g[i].t;
    }
    int rc = ts_save_batch(s, p, n);
    if (rc)
        fail_msg("save_batch: %s", ts_errmsg(s));
    for (size_t i = 0; i < n; i++) {
        mkey *k = &m->k[it[i].topic][it[i].c];
        k->present = 1;
        k->version++;
        k->seq = m->seq_now + i;
        k->ts = it[i].ts;
        k->in_mt = 1;
    }
    free(g);
    free(p);
}

static void flush(ts_store *s, model *m)
{
    assert_int_equal(ts_flush(s, NULL, 0, NULL), 0);
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++)
            m->k[t][c].in_mt = 0;
}

/* A batch of 64 round-robin over the topics, timestamps from *ts on. */
static void save_round(ts_store *s, model *m, int64_t *ts, int64_t step)
{
    item it[64];
    for (int i = 0; i < 64; i++, m->rr++)
        it[i] = (item){.topic = m->rr % TOPICS, .c = -1, .ts = (*ts += step)};
    save_items(s, m, it, 64);
}

static void check_tensor(const ts_tensor *t, int topic, int c, const mkey *k, uint64_t max_elems)
{
    gen g;
    gen_init(&g, topic, c, k->version, k->ts);
    assert_int_equal(t->key_len, g.t.key_len);
    assert_memory_equal(t->key, g.t.key, g.t.key_len);
    assert_string_equal(t->name, g.t.name);
    assert_int_equal(t->dtype, g.t.dtype);
    assert_int_equal(t->ndim, g.t.ndim);
    for (uint32_t d = 0; d < g.t.ndim; d++)
        assert_true(t->shape[d] == g.t.shape[d]);
    assert_true(t->timestamp_ns == k->ts);
    assert_true(t->seq == k->seq);
    size_t es = ts_dtype_size(g.t.dtype);
    size_t want = g.t.data_len / es < max_elems ? g.t.data_len : (size_t)max_elems * es;
    assert_int_equal(t->data_len, want);
    if (want)
        assert_memory_equal(t->data, g.data, want);
}

static void check_all(ts_store *s, const model *m)
{
    char key[64];
    size_t kl;
    size_t n = 0;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++) {
            const mkey *k = &m->k[t][c];
            ts_tensor *x = NULL;
            key_of(t, c, key, &kl);
            int rc = ts_load(s, key, kl, &x);
            if (!k->present) {
                if (c < m->next_c[t] + 2)
                    assert_int_equal(rc, TS_ENOTFOUND);
                continue;
            }
            if (rc)
                fail_msg("load %s: %s", key, ts_errmsg(s));
            check_tensor(x, t, c, k, UINT64_MAX);
            ts_tensor_free(x);
            n++;
        }
    assert_true(n > 0);
}

static ts_store *reopen(const char *dir, ts_store *s)
{
    ts_close(s);
    ts_store *r = tu_open(dir, NULL);
    assert_non_null(r);
    return r;
}

typedef struct ws {
    char *dir;
    ts_store *s;
    model *m;
} ws;

static int setup(void **state)
{
    ws *w = calloc(1, sizeof(*w));
    w->dir = tu_tmpdir("v2");
    w->s = tu_open(w->dir, NULL);
    w->m = calloc(1, sizeof(*w->m));
    *state = w;
    return w->s ? 0 : -1;
}

static int teardown(void **state)
{
    ws *w = *state;
    ts_close(w->s);
    tu_rmtree(w->dir);
    free(w->dir);
    free(w->m);
    free(w);
    return 0;
}

/* The agent's workload: 20 topics interleaved, batches of 64, three SSTs
 * plus the WAL, with overwrites of keys in older SSTs. */
static void agent_workload(ws *w)
{
    int64_t ts = 1700000000000000000ll;
    for (int b = 0; b < 40; b++) {
        save_round(w->s, w->m, &ts, 1000003);
        if (b == 9 || b == 19 || b == 29)
            flush(w->s, w->m);
        if (b == 24) { /* overwrite keys of the first SST, timestamps far off */
            item it[30];
            for (int i = 0; i < 30; i++)
                it[i] = (item){.topic = i % TOPICS, .c = i / TOPICS, .ts = -5000000000ll - i};
            save_items(w->s, w->m, it, 30);
        }
        if (b == 35) { /* and keys of the last SST, in the MemTable */
            item it[10];
            for (int i = 0; i < 10; i++)
                it[i] = (item){.topic = (i * 3) % TOPICS, .c = 70 + i, .ts = INT64_MAX - i};
            save_items(w->s, w->m, it, 10);
        }
    }
}

static void test_agent_topics_load_bit_exact_across_flushes_and_reopen(void **state)
{
    ws *w = *state;
    agent_workload(w);
    ts_stats st;
    ts_get_stats(w->s, &st);
    assert_int_equal(st.n_sst, 3);
    assert_true(st.memtable_entries > 0);
    check_all(w->s, w->m);
    uint64_t bad = 9;
    assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
    /* reopen: packed batches replayed from the WAL */
    w->s = reopen(w->dir, w->s);
    ts_stats st2;
    ts_get_stats(w->s, &st2);
    assert_int_equal(st2.memtable_entries, st.memtable_entries);
    assert_true(st2.next_seq == st.next_seq);
    check_all(w->s, w->m);
    /* and once more after sealing what was replayed */
    flush(w->s, w->m);
    w->s = reopen(w->dir, w->s);
    check_all(w->s, w->m);
    assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
}

static void test_preview_of_packed_records_returns_the_first_n_elements(void **state)
{
    ws *w = *state;
    int64_t ts = 1000;
    for (int b = 0; b < 3; b++)
        save_round(w->s, w->m, &ts, 7);
    flush(w->s, w->m);
    save_round(w->s, w->m, &ts, 7); /* some in the WAL too */
    char key[64];
    size_t kl;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < w->m->next_c[t]; c++) {
            key_of(t, c, key, &kl);
            for (uint64_t n = 0; n <= 16; n += (n < 4 ? 1 : 6)) {
                ts_tensor *x = NULL;
                assert_int_equal(ts_load_preview(w->s, key, kl, n, &x), 0);
                check_tensor(x, t, c, &w->m->k[t][c], n);
                ts_tensor_free(x);
            }
            ts_tensor *x = NULL;
            assert_int_equal(ts_load_preview(w->s, key, kl, UINT64_MAX, &x), 0);
            check_tensor(x, t, c, &w->m->k[t][c], UINT64_MAX);
            ts_tensor_free(x);
        }
}

/* ---- scans ------------------------------------------------------------ */

typedef struct got {
    size_t n;
    char key[TOPICS * MAXC][64];
    size_t key_len[TOPICS * MAXC];
    int64_t ts[TOPICS * MAXC];
    uint64_t seq[TOPICS * MAXC];
    int in_mt[TOPICS * MAXC];
} got;

static int collect(void *ctx, const ts_entry *e)
{
    got *g = ctx;
    assert_true(g->n < TOPICS * MAXC && e->key_len < 64);
    memcpy(g->key[g->n], e->key, e->key_len);
    g->key_len[g->n] = e->key_len;
    g->ts[g->n] = e->timestamp_ns;
    g->seq[g->n] = e->seq;
    g->in_mt[g->n] = e->in_memtable;
    g->n++;
    return 0;
}

typedef struct mref {
    char key[64];
    size_t len;
    const mkey *k;
} mref;

static int cmp_mref(const void *a, const void *b)
{
    const mref *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ts_scan_time(prefix, from, to) reports exactly the model's keys with
 * that prefix whose newest version lies in [from, to) (no window when
 * from = INT64_MIN and to = INT64_MAX), in key order. */
static void check_window(ws *w, got *g, const char *prefix, int64_t from, int64_t to)
{
    static mref want[TOPICS * MAXC];
    size_t n = 0, plen = strlen(prefix);
    int all = from == INT64_MIN && to == INT64_MAX;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++) {
            const mkey *k = &w->m->k[t][c];
            if (!k->present || (!all && (k->ts < from || (k->ts >= to && to != INT64_MAX))))
                continue;
            key_of(t, c, want[n].key, &want[n].len);
            if (want[n].len < plen || memcmp(want[n].key, prefix, plen))
                continue;
            want[n++].k = k;
        }
    qsort(want, n, sizeof(*want), cmp_mref);
    g->n = 0;
    int rc = ts_scan_time(w->s, plen ? prefix : NULL, plen, from, to, collect, g);
    if (rc)
        fail_msg("scan_time: %s", ts_errmsg(w->s));
    if (g->n != n)
        fail_msg("window [%lld, %lld) prefix '%s': %zu keys, want %zu", (long long)from,
                 (long long)to, prefix, g->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(g->key_len[i], want[i].len);
        assert_memory_equal(g->key[i], want[i].key, want[i].len);
        assert_true(g->ts[i] == want[i].k->ts);
        assert_true(g->seq[i] == want[i].k->seq);
        assert_int_equal(g->in_mt[i], want[i].k->in_mt);
    }
}

static void check_windows(ws *w, uint64_t seed)
{
    got *g = malloc(sizeof(*g));
    static const char *prefixes[] = {"", "sensors/imu1", "sensors/imu1#", "sensors/imu7#00000000000000000001",
                                     "sensors/imu19#", "zzz", "sensors/imu"};
    /* every key's own timestamp: the narrowest windows */
    for (int t = 0; t < TOPICS; t += 3)
        for (int c = 0; c < w->m->next_c[t]; c += 5) {
            int64_t x = w->m->k[t][c].ts;
            check_window(w, g, "", x, x == INT64_MAX ? x : x + 1);
            check_window(w, g, "", x, x > INT64_MAX - 5000000 ? INT64_MAX : x + 5000000);
        }
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        const char *pf = prefixes[p];
        check_window(w, g, pf, INT64_MIN, INT64_MAX);         /* no window */
        check_window(w, g, pf, INT64_MIN + 1, INT64_MAX);
        check_window(w, g, pf, INT64_MIN, INT64_MAX - 1);
        check_window(w, g, pf, INT64_MIN, 0);                 /* the overwrites */
        check_window(w, g, pf, 0, INT64_MAX);
        check_window(w, g, pf, 1700000000000000000ll, 1700000000000000000ll); /* empty */
        check_window(w, g, pf, 1700000100000000000ll, 1700000000000000000ll); /* from > to */
        check_window(w, g, pf, INT64_MAX, INT64_MIN);
        check_window(w, g, pf, 1700000000000000000ll + 100000000ll * 3,
                     1700000000000000000ll + 100000000ll * 30); /* across SSTs */
    }
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < 60; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int64_t a = 1700000000000000000ll + (int64_t)(r % 3000000000ull) - 100000000;
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int64_t b = a + (int64_t)(r % 400000000ull);
        check_window(w, g, prefixes[i % 5], a, b);
    }
    free(g);
}

static void test_scan_time_reports_exactly_the_keys_whose_newest_version_is_in_the_window(void **state)
{
    ws *w = *state;
    agent_workload(w);
    /* a key moved out of the window by a newer save in the same MemTable,
     * and one moved in */
    item it[2] = {{.topic = 5, .c = 200, .ts = 1700000000500000000ll},
                  {.topic = 6, .c = 201, .ts = 5}};
    save_items(w->s, w->m, it, 2);
    it[0] = (item){.topic = 5, .c = 200, .ts = 3};
    it[1] = (item){.topic = 6, .c = 201, .ts = 1700000000500000001ll};
    save_items(w->s, w->m, it, 2);
    check_windows(w, 1);
    w->s = reopen(w->dir, w->s); /* the MemTable rebuilt from packed batches */
    check_windows(w, 2);
    flush(w->s, w->m);
    check_windows(w, 3);
}

/* Index blocks of an SST holding the keys with seq in [lo, hi] whose
 * time range meets [from, to): what a windowed scan may read. */
static size_t blocks_meeting(const model *m, uint64_t lo, uint64_t hi, int64_t from, int64_t to)
{
    static mref v[TOPICS * MAXC];
    size_t n = 0, hits = 0;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++)
            if (m->k[t][c].present && m->k[t][c].seq >= lo && m->k[t][c].seq <= hi) {
                key_of(t, c, v[n].key, &v[n].len);
                v[n++].k = &m->k[t][c];
            }
    qsort(v, n, sizeof(*v), cmp_mref);
    for (size_t b = 0; b < n; b += FMT_IDX2_RESTART) {
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        for (size_t i = b; i < n && i < b + FMT_IDX2_RESTART; i++) {
            mn = v[i].k->ts < mn ? v[i].k->ts : mn;
            mx = v[i].k->ts > mx ? v[i].k->ts : mx;
        }
        hits += mn < to && mx >= from;
    }
    return hits;
}

/* A window reads only the records of index blocks whose time range meets
 * it (at most one per key of the block), not every record of the store. */
static void test_scan_time_reads_only_blocks_whose_time_range_meets_the_window(void **state)
{
    ws *w = *state;
    int64_t ts = 1700000000000000000ll;
    for (int b = 0; b < 30; b++) {
        save_round(w->s, w->m, &ts, 1000);
        if (b % 10 == 9)
            flush(w->s, w->m);
    }
    ts_close(w->s);
    tu_count_vfs *cv = calloc(1, sizeof(*cv));
    tu_count_vfs_init(cv);
    ts_options o;
    ts_options_init(&o);
    o.vfs = &cv->vfs;
    w->s = tu_open(w->dir, &o);
    assert_non_null(w->s);
    got *g = malloc(sizeof(*g));
    static const struct {
        int topic, c;
        int64_t span;
    } win[] = {{3, 40, 1}, {0, 0, 1}, {19, 95, 1}, {7, 50, 30000}, {12, 10, 200000}};
    for (size_t i = 0; i < sizeof(win) / sizeof(win[0]); i++) {
        const mkey *k = &w->m->k[win[i].topic][win[i].c];
        size_t blocks = 0;
        for (uint64_t j = 0; j < 3; j++)
            blocks += blocks_meeting(w->m, 1 + 640 * j, 640 * (j + 1), k->ts, k->ts + win[i].span);
        unsigned long before = cv->preads;
        g->n = 0;
        assert_int_equal(ts_scan_time(w->s, NULL, 0, k->ts, k->ts + win[i].span, collect, g), 0);
        unsigned long reads = cv->preads - before;
        assert_true(g->n >= 1);
        if (reads > FMT_IDX2_RESTART * blocks)
            fail_msg("window %zu: %lu reads for %zu blocks", i, reads, blocks);
        assert_true(reads < 30 * 64 / 2);
    }
    g->n = 0;
    assert_int_equal(ts_scan_time(w->s, NULL, 0, 1, INT64_MAX, collect, g), 0);
    assert_int_equal(g->n, 30 * 64);
    /* a window before every timestamp reads nothing */
    unsigned long before = cv->preads;
    assert_int_equal(ts_scan_time(w->s, NULL, 0, 1, 1000, collect, g), 0);
    assert_int_equal(cv->preads - before, 0);
    ts_close(w->s);
    free(cv);
    w->s = tu_open(w->dir, NULL);
    free(g);
}

/* ---- latest ----------------------------------------------------------- */

static void check_latest(ws *w, const char *prefix, size_t plen)
{
    const mkey *best = NULL;
    int bt = 0, bc = 0;
    char key[64];
    size_t kl;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++) {
            const mkey *k = &w->m->k[t][c];
            key_of(t, c, key, &kl);
            if (k->present && kl >= plen && !memcmp(key, prefix, plen) &&
                (!best || k->seq > best->seq))
                best = k, bt = t, bc = c;
        }
    ts_tensor *x = NULL;
    int rc = ts_latest(w->s, plen ? prefix : NULL, plen, &x);
    if (!best) {
        assert_int_equal(rc, TS_ENOTFOUND);
        assert_null(x);
        return;
    }
    if (rc)
        fail_msg("latest '%.*s': %s", (int)plen, prefix, ts_errmsg(w->s));
    check_tensor(x, bt, bc, best, UINT64_MAX);
    ts_tensor_free(x);
    if (!plen) { /* a non-NULL empty prefix too */
        assert_int_equal(ts_latest(w->s, "x", 0, &x), 0);
        check_tensor(x, bt, bc, best, UINT64_MAX);
        ts_tensor_free(x);
    }
}

static void check_latest_all(ws *w)
{
    char p[64];
    for (int t = 0; t < TOPICS; t++) {
        int n = snprintf(p, sizeof(p), "sensors/imu%d#", t);
        check_latest(w, p, (size_t)n);
        check_latest(w, p, (size_t)n - 1); /* imu1 covers imu1x too */
    }
    check_latest(w, "", 0);
    check_latest(w, "sensors/", 8);
    check_latest(w, "sensors/imu3#00000000000000000002", 33); /* a whole key */
    check_latest(w, "sensors/imu3#00000000000000000002x", 34);
    check_latest(w, "zzz", 3);
    check_latest(w, "\xff\xff", 2);
    check_latest(w, "a", 1);
}

static int count_entry(void *ctx, const ts_entry *e)
{
    (void)e;
    ++*(int *)ctx;
    return 0;
}

static int count_window(ts_store *s, int64_t from, int64_t to)
{
    int n = 0;
    assert_int_equal(ts_scan_time(s, "t#", 2, from, to, count_entry, &n), 0);
    return n;
}

/* to = INT64_MAX is no upper bound: a tensor stamped INT64_MAX is in
 * [from, INT64_MAX), even [INT64_MAX, INT64_MAX); other windows stay
 * half-open. In the MemTable and in an SST alike. */
static void test_scan_time_to_int64_max_is_unbounded(void **state)
{
    ws *w = *state;
    static const int64_t stamps[3] = {INT64_MIN, 5, INT64_MAX};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            char key[16];
            float v = (float)i;
            snprintf(key, sizeof(key), "t#%d", i);
            ts_tensor t = {.key = (const uint8_t *)key, .key_len = strlen(key), .name = "t",
                           .dtype = TS_F32, .ndim = 1, .shape = {1}, .data = &v,
                           .data_len = sizeof(v), .timestamp_ns = stamps[i]};
            assert_int_equal(ts_save(w->s, &t), 0);
        }
        assert_int_equal(count_window(w->s, INT64_MIN, INT64_MAX), 3);
        assert_int_equal(count_window(w->s, 0, INT64_MAX), 2);
        assert_int_equal(count_window(w->s, INT64_MAX, INT64_MAX), 1);
        assert_int_equal(count_window(w->s, INT64_MIN, 5), 1);
        assert_int_equal(count_window(w->s, 5, 6), 1);
        assert_int_equal(count_window(w->s, 6, 5), 0);
        assert_int_equal(ts_flush(w->s, NULL, 0, NULL), 0); /* round 2: from an SST */
    }
}

static void test_latest_returns_the_highest_seq_of_a_prefix_across_memtable_and_ssts(void **state)
{
    ws *w = *state;
    check_latest_all(w); /* empty store: TS_ENOTFOUND everywhere */
    int64_t ts = 50;
    for (int b = 0; b < 12; b++) {
        save_round(w->s, w->m, &ts, 3);
        if (b % 4 == 3)
            flush(w->s, w->m);
        check_latest_all(w);
    }
    /* topic 4 last written in the oldest SST, then overwritten there
     * with an older timestamp: latest is about seq, not timestamp */
    item it[3] = {{.topic = 4, .c = 0, .ts = -1}, {.topic = 4, .c = 1, .ts = 7},
                  {.topic = 11, .c = 0, .ts = INT64_MIN}};
    save_items(w->s, w->m, it, 3);
    check_latest_all(w);
    flush(w->s, w->m);
    check_latest_all(w);
    w->s = reopen(w->dir, w->s);
    check_latest_all(w);
}

/* ---- batch kinds, cost, damage ---------------------------------------- */

/* The WAL file of the store (there is one). */
static void wal_path(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = 0;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, "wal_", 4) && strstr(e->d_name, ".log"))
            snprintf(out, len, "%s/%s", dir, e->d_name);
    closedir(d);
    assert_true(out[0]);
}

static uint32_t batch_kind_at(const char *path, long off)
{
    uint8_t h[32];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, off, SEEK_SET), 0);
    assert_int_equal(fread(h, 1, 32, fp), 32);
    fclose(fp);
    assert_int_equal(h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24, 0x54414245u);
    return h[24] | h[25] << 8 | h[26] << 16 | (uint32_t)h[27] << 24;
}

static uint64_t index_reserve(const ts_tensor *const *p, size_t n)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += p[i]->key_len + 36;
    return r;
}

static void test_a_batch_with_one_tensor_over_1_kib_is_written_plain(void **state)
{
    ws *w = *state;
    gen *g = calloc(11, sizeof(*g));
    const ts_tensor *p[11];
    for (int i = 0; i < 11; i++) {
        gen_init(&g[i], i, 0, 1, 100 + i);
        p[i] = &g[i].t;
    }
    /* the last: 1025 bytes, one over the packed limit */
    g[10].t.dtype = TS_U8;
    g[10].t.ndim = 1;
    g[10].t.shape[0] = 1025;
    g[10].t.data_len = 1025;
    char path[4096];
    wal_path(w->dir, path, sizeof(path));
    ts_stats s0, s1;
    uint64_t cost;
    assert_int_equal(ts_batch_cost(p, 11, &cost), 0);
    ts_get_stats(w->s, &s0);
    long off = tu_file_size(path);
    assert_int_equal(ts_save_batch(w->s, p, 11), 0);
    ts_get_stats(w->s, &s1);
    assert_int_equal(batch_kind_at(path, off), 0); /* plain */
    assert_true(s1.disk_bytes - s0.disk_bytes == cost - index_reserve(p, 11)); /* exact */
    /* ten at most 1 KiB (one exactly 1024): packed */
    g[10].t.shape[0] = 1024;
    g[10].t.data_len = 1024;
    off = tu_file_size(path);
    assert_int_equal(ts_batch_cost(p, 11, &cost), 0);
    ts_get_stats(w->s, &s0);
    assert_int_equal(ts_save_batch(w->s, p, 11), 0);
    ts_get_stats(w->s, &s1);
    assert_int_equal(batch_kind_at(path, off), 1);
    assert_true(s1.disk_bytes - s0.disk_bytes <= cost - index_reserve(p, 11));
    /* the plain version was replaced; both kinds read back */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 11; i++) {
            ts_tensor *x = NULL;
            assert_int_equal(ts_load(w->s, g[i].key, g[i].t.key_len, &x), 0);
            assert_int_equal(x->data_len, g[i].t.data_len);
            assert_memory_equal(x->data, g[i].data, x->data_len);
            assert_true(x->timestamp_ns == 100 + i);
            ts_tensor_free(x);
        }
        w->s = reopen(w->dir, w->s);
    }
    free(g);
}

/* ts_batch_cost bounds the WAL bytes of a packed batch whatever the
 * timestamps turn out to be (the frames split the same way for any), and
 * the WAL + index bytes once sealed. */
static void test_batch_cost_bounds_a_packed_batch_whatever_its_timestamps(void **state)
{
    ws *w = *state;
    static uint8_t data[1024];
    static char keys[16][400], big_name[1025];
    memset(big_name, 'N', 1024);
    ts_tensor t[16];
    const ts_tensor *p[16];
    static const int64_t patterns[][2] = {{1000, 0}, {INT64_MIN, INT64_MAX}, {INT64_MIN, 1},
                                          {-1, 1}, {5, 5}};
    for (size_t pat = 0; pat < sizeof(patterns) / sizeof(patterns[0]); pat++)
        for (size_t klen = 300; klen < 360; klen += 7) {
            /* three 1 KiB tensors under keys of klen bytes, then two whose
             * 1 KiB schema name lands on a frame boundary */
            size_t n = 5;
            for (size_t i = 0; i < n; i++) {
                memset(keys[i], (int)('a' + i), klen);
                snprintf(keys[i], 16, "%02zu%03zu", pat, klen); /* distinct per round */
                keys[i][5] = (char)('a' + i);
                t[i] = (ts_tensor){.key = (const uint8_t *)keys[i], .key_len = klen,
                                   .name = i < 3 ? "a" : big_name, .dtype = TS_U8,
                                   .ndim = i < 3 ? 1 : 0, .shape = {1024}, .data = data,
                                   .data_len = i < 3 ? 1024 : 1};
                t[i].timestamp_ns = i % 2 ? patterns[pat][1] : patterns[pat][0];
                if (!t[i].timestamp_ns)
                    t[i].timestamp_ns = 1;
                p[i] = &t[i];
            }
            uint64_t cost;
            ts_stats s0, s1, s2;
            assert_int_equal(ts_batch_cost(p, n, &cost), 0);
            ts_get_stats(w->s, &s0);
            assert_int_equal(ts_save_batch(w->s, p, n), 0);
            ts_get_stats(w->s, &s1);
            uint64_t wal = s1.disk_bytes - s0.disk_bytes;
            if (wal > cost - index_reserve(p, n))
                fail_msg("keys of %zu bytes, timestamps %lld/%lld: the batch wrote %llu bytes, "
                         "ts_batch_cost reserved %llu for the WAL",
                         klen, (long long)patterns[pat][0], (long long)patterns[pat][1],
                         (unsigned long long)wal,
                         (unsigned long long)(cost - index_reserve(p, n)));
            /* sealed alone: its index and footer, and the next WAL's header */
            assert_int_equal(ts_flush(w->s, NULL, 0, NULL), 0);
            ts_get_stats(w->s, &s2);
            assert_true(s2.disk_bytes - s0.disk_bytes <= cost + 16 + 7 + 64 + 32);
        }
}

/* A byte flipped inside a packed frame: ts_verify finds it in an SST and
 * in the WAL, and a load of a record of that frame reports it -- or, when
 * the store kept that frame from an earlier (checked) read, returns it
 * intact: never damaged bytes. */
static void load_corrupt_or_intact(ws *w, int topic, int c)
{
    char key[64];
    size_t kl;
    ts_tensor *x = NULL;
    key_of(topic, c, key, &kl);
    int rc = ts_load(w->s, key, kl, &x);
    if (rc == 0)
        check_tensor(x, topic, c, &w->m->k[topic][c], UINT64_MAX);
    else
        assert_int_equal(rc, TS_ECORRUPT);
    ts_tensor_free(x);
}

static void test_verify_finds_a_flipped_byte_in_a_packed_frame_of_an_sst_and_of_the_wal(void **state)
{
    ws *w = *state;
    int64_t ts = 1000;
    for (int b = 0; b < 4; b++)
        save_round(w->s, w->m, &ts, 11);
    flush(w->s, w->m);
    for (int b = 0; b < 3; b++)
        save_round(w->s, w->m, &ts, 11);
    uint64_t bad = 0;
    assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
    char sst[4096], wal[4096];
    snprintf(sst, sizeof(sst), "%s/sst_000000.sst", w->dir);
    wal_path(w->dir, wal, sizeof(wal));
    assert_int_equal(batch_kind_at(sst, 32), 1);
    assert_int_equal(batch_kind_at(wal, 32), 1);
    char key[64];
    size_t kl;
    key_of(0, 0, key, &kl); /* the first record of the first frame */
    /* in the SST: the first frame's records, then its length field */
    static const long at[] = {64 + 40, 64 + 300, 64 + 1};
    for (size_t i = 0; i < 3; i++) {
        tu_flip(sst, at[i]);
        bad = 0;
        assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), TS_ECORRUPT);
        assert_true(bad >= 1);
        assert_non_null(strstr(ts_errmsg(w->s), "damaged"));
        load_corrupt_or_intact(w, 0, 0);
        tu_flip(sst, at[i]);
        ts_tensor *x = NULL;
        assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
        assert_int_equal(ts_load(w->s, key, kl, &x), 0);
        ts_tensor_free(x);
    }
    /* in the WAL: a frame of its first batch (two more follow) */
    model_sync(w->s, w->m);
    key_of(4 * 64 % TOPICS, 4 * 64 / TOPICS, key, &kl);
    for (size_t i = 0; i < 3; i++) {
        tu_flip(wal, at[i]);
        bad = 0;
        assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), TS_ECORRUPT);
        assert_true(bad >= 1);
        load_corrupt_or_intact(w, 4 * 64 % TOPICS, 4 * 64 / TOPICS);
        tu_flip(wal, at[i]);
        ts_tensor *x = NULL;
        assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
        assert_int_equal(ts_load(w->s, key, kl, &x), 0);
        check_tensor(x, 4 * 64 % TOPICS, 4 * 64 / TOPICS, &w->m->k[4 * 64 % TOPICS][4 * 64 / TOPICS],
                     UINT64_MAX);
        ts_tensor_free(x);
    }
}

/* ---- reads through memory mappings (ts_options.mmap_bytes) ----------- */

static uint64_t sst_file_bytes(const char *dir, uint64_t *smallest)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t sum = 0;
    *smallest = UINT64_MAX;
    assert_non_null(d);
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "sst_", 4)) {
            uint64_t n = (uint64_t)tu_file_size(tu_path(dir, de->d_name));
            sum += n;
            if (n < *smallest)
                *smallest = n;
        }
    closedir(d);
    return sum;
}

static int count_any(void *ctx, const ts_entry *e)
{
    (void)e;
    ++*(uint64_t *)ctx;
    return 0;
}

#define BIG_LEN 5000 /* a plain record: over the packed limit, two blocks */

static void big_fill(uint8_t *d)
{
    for (size_t i = 0; i < BIG_LEN; i++)
        d[i] = (uint8_t)(i * 7 + 3) ^ (uint8_t)(i >> 8);
}

static void check_big(ts_store *s, int want_rc)
{
    static uint8_t want[BIG_LEN];
    ts_tensor *x = NULL;
    big_fill(want);
    assert_int_equal(ts_load(s, "big/plain", 9, &x), want_rc);
    if (!want_rc) {
        assert_int_equal(x->data_len, BIG_LEN);
        assert_memory_equal(x->data, want, BIG_LEN);
    }
    ts_tensor_free(x);
}

/* Every read through a mapping returns what pread returns: loads of packed
 * and plain records, scans, verify. The budget is a bound on the bytes
 * mapped, tested on both sides: exactly the SSTs' bytes maps them all, one
 * byte less leaves at least one to pread, and a budget below the smallest
 * SST maps none. A released SST gives its mapping back. */
static void test_mmap_reads_return_what_pread_returns_within_the_budget(void **state)
{
    ws *w = *state;
    static uint8_t big[BIG_LEN];
    big_fill(big);
    ts_tensor bt = {.key = (const uint8_t *)"big/plain", .key_len = 9, .name = "big",
                    .dtype = TS_U8, .ndim = 1, .shape = {BIG_LEN}, .data = big,
                    .data_len = BIG_LEN, .timestamp_ns = 7};
    assert_int_equal(ts_save(w->s, &bt), 0);
    agent_workload(w);
    uint64_t want_n = 0, smallest;
    assert_int_equal(ts_scan_prefix(w->s, "", 0, count_any, &want_n), 0);
    ts_close(w->s);
    w->s = NULL;
    uint64_t total = sst_file_bytes(w->dir, &smallest);
    const uint64_t budgets[] = {total, total - 1, smallest, smallest - 1};
    for (size_t b = 0; b < 4; b++) {
        ts_options o;
        ts_options_init(&o);
        o.mmap_bytes = budgets[b];
        w->s = tu_open(w->dir, &o);
        assert_non_null(w->s);
        check_all(w->s, w->m);
        check_big(w->s, 0);
        uint64_t n = 0, bad = 9;
        assert_int_equal(ts_scan_prefix(w->s, "", 0, count_any, &n), 0);
        assert_true(n == want_n);
        assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), 0);
        ts_stats st;
        ts_get_stats(w->s, &st);
        assert_true(st.mapped_bytes <= budgets[b]);
        if (b == 0)
            assert_true(st.mapped_bytes == total);
        if (b == 1)
            assert_true(st.mapped_bytes < total && st.mapped_bytes > 0);
        if (b == 2)
            assert_true(st.mapped_bytes > 0);
        if (b == 3)
            assert_true(st.mapped_bytes == 0);
        if (b == 0) {
            /* damage under the mapping is caught: the plain record's data,
             * then a packed frame's records */
            char path[4096];
            snprintf(path, sizeof(path), "%s/sst_000000.sst", w->dir);
            FILE *fp = fopen(path, "rb");
            static uint8_t file[1 << 20];
            size_t len = fread(file, 1, sizeof(file), fp);
            fclose(fp);
            uint8_t *at = memmem(file, len, big + 4096, 64);
            assert_non_null(at);
            tu_flip(path, (long)(at - file) + 10);
            check_big(w->s, TS_ECORRUPT);
            assert_non_null(strstr(ts_errmsg(w->s), "checksum"));
            tu_flip(path, (long)(at - file) + 10);
            check_big(w->s, 0);
            snprintf(path, sizeof(path), "%s/sst_000001.sst", w->dir);
            tu_flip(path, 64 + 300);
            load_corrupt_or_intact(w, 0, 0);
            load_corrupt_or_intact(w, 1, 0);
            tu_flip(path, 64 + 300);
            check_all(w->s, w->m);
            /* release every SST: the mappings go with them */
            char dest[4096];
            ts_checkpoint_info ci;
            snprintf(dest, sizeof(dest), "%s/ckpt", w->dir);
            assert_int_equal(ts_checkpoint(w->s, dest, &ci), 0);
            check_big(w->s, 0);
            ts_get_stats(w->s, &st);
            assert_true(st.mapped_bytes <= budgets[b]);
            assert_int_equal(ts_release(w->s, ci.last_file), 0);
            ts_get_stats(w->s, &st);
            assert_true(st.mapped_bytes == 0);
            check_big(w->s, TS_ENOTFOUND);
            tu_rmtree(dest);
            ts_close(w->s);
            w->s = NULL;
            /* put the store back as it was for the next budget */
            teardown(state);
            setup(state);
            w = *state;
            assert_int_equal(ts_save(w->s, &bt), 0);
            agent_workload(w);
            ts_close(w->s);
            w->s = NULL;
            uint64_t again = sst_file_bytes(w->dir, &smallest);
            assert_true(again == total);
            continue;
        }
        ts_close(w->s);
        w->s = NULL;
    }
    w->s = tu_open(w->dir, NULL);
}

/* ---- the cache of small tensors (ts_options.frame_cache_bytes) ------ */

static ts_store *open_cached(ws *w, uint64_t budget, int mmap)
{
    ts_options o;
    ts_options_init(&o);
    o.frame_cache_bytes = budget;
    o.mmap_bytes = mmap ? UINT64_MAX : 0;
    ts_store *s = tu_open(w->dir, &o);
    assert_non_null(s);
    return s;
}

static uint64_t cache_held(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.frame_cache_bytes;
}

/* Previews through the cache: the first n elements of a few keys. */
static void check_previews(ts_store *s, const model *m)
{
    char key[64];
    size_t kl;
    for (int c = 0; c < MAXC; c += 7) {
        const mkey *k = &m->k[1][c];
        ts_tensor *x = NULL;
        if (!k->present)
            continue;
        key_of(1, c, key, &kl);
        assert_int_equal(ts_load_preview(s, key, kl, 1, &x), 0);
        check_tensor(x, 1, c, k, 1);
        ts_tensor_free(x);
    }
}

/* Loads through the cache return what the frames hold, field for field,
 * and the cache never holds more than its budget, tested on both sides:
 * the bytes that hold every tensor keep them all, one byte less drops at
 * least one, 4 KiB keeps a few, a budget below its hash table keeps
 * nothing (loads still work). A frame is checked when it is read: damage
 * found then is an error and nothing is kept; damage after its tensors
 * were kept is served from the checked copies, and ts_verify (which never
 * uses the cache) reports it. */
static void test_frame_cache_loads_return_what_the_frames_hold_within_the_budget(void **state)
{
    ws *w = *state;
    agent_workload(w);
    ts_close(w->s);
    w->s = NULL;
    w->s = open_cached(w, UINT64_MAX, 0);
    check_all(w->s, w->m);
    uint64_t full = cache_held(w->s);
    assert_true(full > 0);
    check_all(w->s, w->m); /* hits */
    assert_true(cache_held(w->s) == full);
    ts_close(w->s);
    const uint64_t budgets[] = {full, full - 1, 4096, 100};
    for (size_t b = 0; b < 4; b++)
        for (int mmap = 0; mmap < 2; mmap++) {
            w->s = open_cached(w, budgets[b], mmap);
            for (int pass = 0; pass < 2; pass++) {
                check_all(w->s, w->m);
                check_previews(w->s, w->m);
                uint64_t held = cache_held(w->s);
                assert_true(held <= budgets[b]);
                if (b == 0)
                    assert_true(held == full);
                if (b == 1)
                    assert_true(held < full && held > 0);
                if (b == 3)
                    assert_true(held == 0);
            }
            ts_close(w->s);
        }
    /* damage to a frame before it is cached, then after */
    char path[4096];
    snprintf(path, sizeof(path), "%s/sst_000001.sst", w->dir);
    w->s = open_cached(w, UINT64_MAX, 0);
    tu_flip(path, 64 + 300);
    int bad_loads = 0;
    for (int t = 0; t < TOPICS; t++)
        for (int c = 0; c < MAXC; c++) {
            char key[64];
            size_t kl;
            ts_tensor *x = NULL;
            if (!w->m->k[t][c].present)
                continue;
            key_of(t, c, key, &kl);
            int rc = ts_load(w->s, key, kl, &x);
            if (rc == 0)
                check_tensor(x, t, c, &w->m->k[t][c], UINT64_MAX);
            else
                bad_loads += rc == TS_ECORRUPT;
            assert_true(rc == 0 || rc == TS_ECORRUPT);
            ts_tensor_free(x);
        }
    assert_true(bad_loads > 0);
    tu_flip(path, 64 + 300);
    check_all(w->s, w->m); /* the frame is read again, intact */
    tu_flip(path, 64 + 300);
    check_all(w->s, w->m); /* served from the checked copy */
    uint64_t bad = 0;
    assert_int_equal(ts_verify(w->s, NULL, NULL, &bad), TS_ECORRUPT);
    assert_true(bad > 0);
    tu_flip(path, 64 + 300);
    ts_close(w->s);
    w->s = tu_open(w->dir, NULL);
}

/* keymap.h's test hook (that header's sst type clashes with names here). */
extern uint64_t (*keymap__hash_hook)(const uint8_t *key, size_t key_len);

/* Few distinct hashes (the key's last byte): long bucket chains. */
static uint64_t last_byte_hash(const uint8_t *key, size_t key_len)
{
    return key[key_len - 1];
}

/* Rows (fcache.h) hold a key's newest version only: a load fills rows for
 * the whole frame it reads, skipping records a newer SST shadows; a newer
 * version in the MemTable wins over a row; an SST holding the key drops
 * its row; ts_release drops every row. Each check runs with the real hash
 * and with one of ten values, where rows share bucket chains. */
static void test_cache_rows_hold_only_each_keys_newest_version(void **state)
{
    ws *w = *state;
    int64_t ts = 1000;
    for (int hook = 0; hook < 2; hook++) {
        keymap__hash_hook = hook ? last_byte_hash : NULL;
        ts_close(w->s);
        w->s = open_cached(w, UINT64_MAX, hook);
        for (int b = 0; b < 8; b++)
            save_round(w->s, w->m, &ts, 7);
        flush(w->s, w->m);
        check_all(w->s, w->m); /* fills rows */
        /* New versions of every third key, in the MemTable: they win. */
        item it[64];
        size_t n = 0;
        for (int t = 0; t < TOPICS; t++)
            for (int c = 0; c < w->m->next_c[t]; c += 3)
                if (n < 64)
                    it[n++] = (item){.topic = t, .c = c, .ts = ts += 7};
        save_items(w->s, w->m, it, n);
        check_all(w->s, w->m);
        flush(w->s, w->m); /* their rows go */
        check_all(w->s, w->m);
        /* Reopened, cache empty: the first loads read frames of the older
         * SST, whose records of the re-saved keys are shadowed. */
        ts_close(w->s);
        w->s = open_cached(w, UINT64_MAX, hook);
        check_all(w->s, w->m);
        assert_true(cache_held(w->s) > 0);
        /* Released: no row survives its SST. */
        char dest[4096];
        ts_checkpoint_info info;
        snprintf(dest, sizeof(dest), "%s.cp%d", w->dir, hook);
        assert_int_equal(ts_checkpoint(w->s, dest, &info), 0);
        assert_int_equal(ts_release(w->s, info.last_file), 0);
        tu_rmtree(dest);
        for (int t = 0; t < TOPICS; t++)
            for (int c = 0; c < w->m->next_c[t]; c++) {
                char key[64];
                size_t kl;
                ts_tensor *x = NULL;
                w->m->k[t][c].present = 0;
                key_of(t, c, key, &kl);
                assert_int_equal(ts_load(w->s, key, kl, &x), TS_ENOTFOUND);
            }
    }
    keymap__hash_hook = NULL;
}

/* A flipped byte in a v2 index: the store will not open the SST. */
static void test_open_refuses_an_sst_whose_v2_index_has_a_flipped_byte(void **state)
{
    ws *w = *state;
    int64_t ts = 1000;
    for (int b = 0; b < 3; b++)
        save_round(w->s, w->m, &ts, 11);
    flush(w->s, w->m);
    ts_close(w->s);
    w->s = NULL;
    char sst[4096];
    snprintf(sst, sizeof(sst), "%s/sst_000000.sst", w->dir);
    long size = tu_file_size(sst);
    uint8_t ft[64];
    FILE *fp = fopen(sst, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, size - 64, SEEK_SET), 0);
    assert_int_equal(fread(ft, 1, 64, fp), 64);
    fclose(fp);
    assert_memory_equal(ft + 56, "EDBSST02", 8);
    long index_off = 0;
    for (int i = 7; i >= 0; i--)
        index_off = index_off << 8 | ft[i];
    for (long off = index_off; off < size - 64; off += (size - 64 - index_off) / 7 + 1) {
        ts_options o;
        ts_options_init(&o);
        o.read_only = 1;
        char err[512];
        ts_store *s = NULL;
        tu_flip(sst, off);
        assert_int_equal(ts_open(w->dir, &o, &s, err, sizeof(err)), TS_ECORRUPT);
        assert_non_null(strstr(err, "sst_000000"));
        tu_flip(sst, off);
    }
    w->s = tu_open(w->dir, NULL);
    check_all(w->s, w->m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_topics_load_bit_exact_across_flushes_and_reopen,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_preview_of_packed_records_returns_the_first_n_elements,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_scan_time_reports_exactly_the_keys_whose_newest_version_is_in_the_window, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_scan_time_reads_only_blocks_whose_time_range_meets_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_latest_returns_the_highest_seq_of_a_prefix_across_memtable_and_ssts, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_scan_time_to_int64_max_is_unbounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_with_one_tensor_over_1_kib_is_written_plain,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_batch_cost_bounds_a_packed_batch_whatever_its_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_finds_a_flipped_byte_in_a_packed_frame_of_an_sst_and_of_the_wal, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_mmap_reads_return_what_pread_returns_within_the_budget,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_frame_cache_loads_return_what_the_frames_hold_within_the_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_rows_hold_only_each_keys_newest_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_an_sst_whose_v2_index_has_a_flipped_byte,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
