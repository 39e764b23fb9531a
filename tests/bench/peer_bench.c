/*
 * peer_bench.c -- EmbedDb beside its peers, in one process run: raw
 * write()+fdatasync(), LevelDB, LMDB and (when built with it) SQLite. A
 * command that measures and prints; it fails only when an engine fails or a
 * loaded tensor comes back different, never on a figure.
 *
 * Workload, the agent's: tensors of f32[3] (12 B, an IMU sample), f32[32]
 * (128 B) and f32[1024] (4 KiB) under keys "sensors/imu<k>#<20-digit
 * counter>" (one topic by default; --topics T interleaves T topics round
 * robin), name = the topic, timestamps 1 ms apart plus a deterministic
 * jitter of 0..8 us (arrival stamps), pseudo-random values (nothing for a
 * compressor to find beyond what real sensor floats offer).
 *
 * Ingest: batches of 64 tensors, one durable commit per batch, into a fresh
 * store: EmbedDb ts_save_batch (default options: sync on, memtable_max
 * 64 MiB); LevelDB a WriteBatch written with sync = true (C API, default
 * options plus create_if_missing: Debian's build compresses with Snappy);
 * LMDB one write transaction (default flags: durable commit); SQLite one
 * transaction in WAL mode, synchronous=FULL, INSERT into a BLOB-keyed table;
 * raw one write() of the batch's data bytes (payload only) + fdatasync() to
 * one file. LevelDB, LMDB and SQLite store the key and a value holding
 * what an EmbedDb record holds: name, dtype, shape, timestamp, then the data.
 * Only the save calls are timed (not generating the batch, open, the final
 * flush or close; work an engine does inside a save, such as EmbedDb's
 * flush at memtable_max, counts): tensors/s, and its ratio to raw.
 *
 * Bytes written per payload byte: the /proc/self/io write_bytes delta (page
 * cache pages this process dirtied, 4 KiB each, all threads, so LevelDB's
 * background compactions count; a page re-dirtied after each fdatasync
 * counts each time, which is why raw exceeds 1 for small batches) from before open to after close -- what each engine writes by
 * itself until closed; nothing forces a compaction. For EmbedDb, which is
 * flushed before close so its data sits in SSTs, also its own count
 * (ts_stats.bytes_written: records, indexes, footers, MANIFESTs). Disk
 * bytes: allocated blocks (du) of the engine's directory after close.
 *
 * Point loads: the store is reopened and --loads uniformly random existing
 * keys (fixed seed) are loaded and decoded into an owned tensor (EmbedDb
 * ts_load, through pread and, as engine embeddb-mmap, through mappings of
 * every SST (ts_options.mmap_bytes), and as embeddb-cache, mapped and
 * through the cache of small tensors (ts_options.frame_cache_bytes);
 * LevelDB leveldb_get; LMDB mdb_get in a read transaction per load;
 * SQLite a prepared SELECT), checked (timestamp, dtype, shape) and freed.
 * The page cache is warm: the data was just written.
 *
 * Engines run in an order rotated every round, so none always follows
 * another's deletes; every figure is the median over the rounds (these VMs
 * are noisy). Each run starts after a sync() so none pays for its
 * predecessor's writeback. The load average is printed at start and end.
 *
 * Output: '#' comment lines, then one key=value line per engine and size.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "bench_util.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <leveldb/c.h>
#include <lmdb.h>
#ifdef PEER_BENCH_SQLITE
#include <sqlite3.h>
#define SQLITE_NOTE "; sqlite " SQLITE_VERSION ": WAL, synchronous=FULL"
#else
#define SQLITE_NOTE ""
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 64
#define KEY_CAP 64
#define NAME_CAP 32
#define MAX_ROUNDS 99
#define MAX_SIZES 8
#define BASE_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
/* u16 name_len, name, u8 dtype, u8 ndim, u64 shape[1], i64 timestamp */
#define VAL_HDR_MAX (2 + NAME_CAP + 2 + 8 + 8)

typedef struct cfg {
    uint64_t n_small, n_4k, rounds, loads, topics, verbose;
    uint64_t sizes[MAX_SIZES]; /* elements per tensor */
    size_t n_sizes;
    const char *dir;
    char *work; /* DIR/peer_bench.XXXXXX, removed at the end */
} cfg;

/* One batch: tensors whose data lies back to back in `data`. */
typedef struct batch {
    size_t n, tensor_len;
    uint64_t elems;
    ts_tensor t[BATCH];
    const ts_tensor *ptrs[BATCH];
    char keys[BATCH][KEY_CAP];
    char names[BATCH][NAME_CAP];
    float *data;  /* BATCH * tensor_len bytes */
    uint8_t *val; /* one encoded value: VAL_HDR_MAX + tensor_len bytes */
} batch;

/* ---- the workload ----------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int64_t stamp_of(uint64_t i)
{
    return BASE_NS + (int64_t)i * 1000000 + (int64_t)(mix64(i) % 8000);
}

/* Key and name (topic) of tensor i; returns the key length. */
static size_t key_of(const cfg *c, uint64_t i, char key[KEY_CAP], char name[NAME_CAP])
{
    snprintf(name, NAME_CAP, "sensors/imu%" PRIu64, i % c->topics);
    return (size_t)snprintf(key, KEY_CAP, "%s#%020" PRIu64, name, i);
}

/* Tensors first .. first+n-1 into b. */
static void batch_fill(const cfg *c, batch *b, uint64_t first, size_t n)
{
    b->n = n;
    for (size_t j = 0; j < n; j++) {
        uint64_t i = first + j, x = mix64(i);
        float *d = b->data + j * b->elems;
        size_t key_len = key_of(c, i, b->keys[j], b->names[j]);
        for (uint64_t k = 0; k < b->elems; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            d[k] = (float)((int64_t)(x >> 40) - (1 << 23)) * (9.81f / 8388608.0f);
        }
        b->t[j] = (ts_tensor){.key = (const uint8_t *)b->keys[j], .key_len = key_len,
                              .name = b->names[j], .dtype = TS_F32, .ndim = 1,
                              .shape = {b->elems}, .timestamp_ns = stamp_of(i),
                              .data = d, .data_len = b->tensor_len};
        b->ptrs[j] = &b->t[j];
    }
}

/* The peers' value: what an EmbedDb record holds besides key and checksums,
 * in host byte order. Returns its length. */
static size_t value_encode(const ts_tensor *t, uint8_t *out)
{
    uint16_t name_len = (uint16_t)strlen(t->name);
    uint8_t *p = out;
    memcpy(p, &name_len, 2), p += 2;
    memcpy(p, t->name, name_len), p += name_len;
    *p++ = (uint8_t)t->dtype;
    *p++ = (uint8_t)t->ndim;
    memcpy(p, t->shape, 8 * t->ndim), p += 8 * t->ndim;
    memcpy(p, &t->timestamp_ns, 8), p += 8;
    memcpy(p, t->data, t->data_len), p += t->data_len;
    return (size_t)(p - out);
}

/* Decodes a value into one allocation holding tensor, key, name and data,
 * like ts_load's (the caller frees it with free()). */
static int value_decode(const char *key, size_t key_len, const void *v, size_t len,
                        ts_tensor **out)
{
    const uint8_t *p = v, *end = p + len;
    uint16_t name_len;
    ts_tensor *t = NULL;
    uint8_t *heap;
    int rc = TS_ECORRUPT;
    *out = NULL;
    if (len < 2)
        goto out;
    memcpy(&name_len, p, 2), p += 2;
    if ((size_t)(end - p) < (size_t)name_len + 2 || p[name_len + 1] > TS_MAX_DIMS ||
        (size_t)(end - p) < (size_t)name_len + 2 + 8u * p[name_len + 1] + 8)
        goto out;
    rc = TS_ENOMEM;
    if (!(t = calloc(1, sizeof(*t) + key_len + name_len + 1 + len)))
        goto out;
    heap = (uint8_t *)(t + 1);
    memcpy(heap, key, key_len);
    t->key = heap, t->key_len = key_len, heap += key_len;
    memcpy(heap, p, name_len), heap[name_len] = 0;
    t->name = (const char *)heap, heap += name_len + 1, p += name_len;
    t->dtype = (ts_dtype)*p++;
    t->ndim = *p++;
    memcpy(t->shape, p, 8 * t->ndim), p += 8 * t->ndim;
    memcpy(&t->timestamp_ns, p, 8), p += 8;
    t->data_len = (size_t)(end - p);
    memcpy(heap, p, t->data_len);
    t->data = heap;
    *out = t;
    t = NULL;
    rc = 0;
out:
    free(t);
    return rc;
}

/* ---- the engines -------------------------------------------------------- */

/* One engine: open (creating) the store in the existing directory `path`,
 * save a batch durably, optionally flush before close (reporting the
 * engine's own count of bytes written), load one key into an owned tensor
 * (NULL: not a store), release it, close. All return 0 or -errno/TS_E*. */
typedef struct peer {
    const char *name;
    int (*open)(const char *path, uint64_t n, size_t tensor_len, void **db);
    int (*save)(void *db, batch *b);
    int (*flush)(void *db, uint64_t *bytes_written);
    int (*load)(void *db, const char *key, size_t key_len, ts_tensor **out);
    void (*release)(ts_tensor *t);
    int (*close)(void *db);
} peer;

static void release_free(ts_tensor *t)
{
    free(t);
}

/* raw: the bound -- no engine, nothing but the data bytes. */
typedef struct raw_db {
    int fd;
} raw_db;

static int raw_open(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    char file[4096];
    raw_db *r = calloc(1, sizeof(*r));
    int rc = -ENOMEM;
    (void)n, (void)tensor_len;
    if (!r)
        goto out;
    snprintf(file, sizeof(file), "%s/raw.dat", path);
    if ((r->fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        fprintf(stderr, "peer_bench: open %s: %s\n", file, strerror(errno));
        goto out;
    }
    *db = r;
    r = NULL;
    rc = 0;
out:
    free(r);
    return rc;
}

static int raw_save(void *db, batch *b)
{
    raw_db *r = db;
    int rc = bench_util_write_all(r->fd, b->data, b->n * b->tensor_len);
    if (!rc && fdatasync(r->fd))
        rc = -errno;
    return rc;
}

static int raw_close(void *db)
{
    raw_db *r = db;
    int rc = 0;
    if (r && close(r->fd))
        rc = -errno;
    free(r);
    return rc;
}

/* EmbedDb, with default options, or reading through memory mappings
 * (ts_options.mmap_bytes, every SST mapped): what LMDB always does and
 * LevelDB does for up to 1000 table files on 64-bit hosts; or mapped and
 * with the cache of small tensors (ts_options.frame_cache_bytes) of
 * EDB_CACHE_BYTES, which holds every small tensor of these runs, as LMDB's
 * page cache holds its file. The
 * ingest is the same code every way. */
#define EDB_CACHE_BYTES (UINT64_C(64) << 20)

static int edb_open_with(const char *path, uint64_t mmap_bytes, uint64_t cache_bytes, void **db)
{
    char err[512];
    ts_options o;
    int rc;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.mmap_bytes = mmap_bytes;
    o.frame_cache_bytes = cache_bytes;
    if ((rc = ts_open(path, &o, (ts_store **)db, err, sizeof(err))))
        fprintf(stderr, "peer_bench: embeddb: %s\n", err);
    return rc;
}

static int edb_open(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    (void)n, (void)tensor_len;
    return edb_open_with(path, 0, 0, db);
}

static int edb_open_mmap(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    (void)n, (void)tensor_len;
    return edb_open_with(path, UINT64_MAX, 0, db);
}

static int edb_open_cache(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    (void)n, (void)tensor_len;
    return edb_open_with(path, UINT64_MAX, EDB_CACHE_BYTES, db);
}

static int edb_report(void *db, int rc)
{
    if (rc)
        fprintf(stderr, "peer_bench: embeddb: %s (%s)\n", ts_errmsg(db), ts_strerror(rc));
    return rc;
}

static int edb_save(void *db, batch *b)
{
    return edb_report(db, ts_save_batch(db, b->ptrs, b->n));
}

static int edb_flush(void *db, uint64_t *bytes_written)
{
    ts_stats st;
    int rc = edb_report(db, ts_flush(db, NULL, 0, NULL));
    ts_get_stats(db, &st);
    *bytes_written = st.bytes_written;
    return rc;
}

static int edb_load(void *db, const char *key, size_t key_len, ts_tensor **out)
{
    return edb_report(db, ts_load(db, key, key_len, out));
}

static int edb_close(void *db)
{
    ts_stats st;
    ts_get_stats(db, &st);
    if (st.frame_cache_bytes)
        printf("# embeddb-cache: the cache of small tensors held %.1f MiB\n",
               (double)st.frame_cache_bytes / (1 << 20));
    return ts_close(db);
}

/* LevelDB, through its C API */
typedef struct ldb_db {
    leveldb_t *db;
    leveldb_options_t *o;
    leveldb_writeoptions_t *wo;
    leveldb_readoptions_t *ro;
    leveldb_writebatch_t *wb;
} ldb_db;

static int ldb_err(char *err)
{
    int rc = 0;
    if (err) {
        fprintf(stderr, "peer_bench: leveldb: %s\n", err);
        leveldb_free(err);
        rc = -EIO;
    }
    return rc;
}

static int ldb_close(void *db)
{
    ldb_db *l = db;
    if (l) {
        if (l->db)
            leveldb_close(l->db);
        if (l->wb)
            leveldb_writebatch_destroy(l->wb);
        if (l->ro)
            leveldb_readoptions_destroy(l->ro);
        if (l->wo)
            leveldb_writeoptions_destroy(l->wo);
        if (l->o)
            leveldb_options_destroy(l->o);
    }
    free(l);
    return 0;
}

static int ldb_open(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    ldb_db *l = calloc(1, sizeof(*l));
    char *err = NULL;
    int rc = -ENOMEM;
    (void)n, (void)tensor_len;
    if (!l || !(l->o = leveldb_options_create()) || !(l->wo = leveldb_writeoptions_create()) ||
        !(l->ro = leveldb_readoptions_create()) || !(l->wb = leveldb_writebatch_create()))
        goto out;
    leveldb_options_set_create_if_missing(l->o, 1);
    leveldb_writeoptions_set_sync(l->wo, 1);
    l->db = leveldb_open(l->o, path, &err);
    if ((rc = ldb_err(err)))
        goto out;
    *db = l;
    l = NULL;
out:
    ldb_close(l);
    return rc;
}

static int ldb_save(void *db, batch *b)
{
    ldb_db *l = db;
    char *err = NULL;
    leveldb_writebatch_clear(l->wb);
    for (size_t j = 0; j < b->n; j++) {
        size_t len = value_encode(&b->t[j], b->val);
        leveldb_writebatch_put(l->wb, b->keys[j], b->t[j].key_len, (const char *)b->val, len);
    }
    leveldb_write(l->db, l->wo, l->wb, &err);
    return ldb_err(err);
}

static int ldb_load(void *db, const char *key, size_t key_len, ts_tensor **out)
{
    ldb_db *l = db;
    char *err = NULL, *v;
    size_t len = 0;
    int rc;
    v = leveldb_get(l->db, l->ro, key, key_len, &len, &err);
    if (!(rc = ldb_err(err)))
        rc = v ? value_decode(key, key_len, v, len, out) : TS_ENOTFOUND;
    leveldb_free(v);
    return rc;
}

/* LMDB */
typedef struct lm_db {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* reset between loads, renewed for the next */
} lm_db;

static int lm_rc(const char *call, int rc)
{
    if (rc) {
        fprintf(stderr, "peer_bench: lmdb: %s: %s\n", call, mdb_strerror(rc));
        rc = rc > 0 ? -rc : -EIO;
    }
    return rc;
}

static int lm_close(void *db)
{
    lm_db *m = db;
    if (m) {
        if (m->rtxn)
            mdb_txn_abort(m->rtxn);
        if (m->env)
            mdb_env_close(m->env);
    }
    free(m);
    return 0;
}

static int lm_open(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    /* Room for every value on its own pages (4 KiB ones take two) four
     * times over: copy-on-write needs some; the map is only address space. */
    uint64_t map = n * 4 * (tensor_len + 4096 + 2 * (KEY_CAP + VAL_HDR_MAX)) + (256u << 20);
    lm_db *m = calloc(1, sizeof(*m));
    MDB_txn *txn = NULL;
    int rc = -ENOMEM;
    if (!m)
        goto out;
    if (map > SIZE_MAX / 2) {
        rc = -EOVERFLOW;
        goto out;
    }
    if ((rc = lm_rc("env_create", mdb_env_create(&m->env))) ||
        (rc = lm_rc("set_mapsize", mdb_env_set_mapsize(m->env, (size_t)map))) ||
        (rc = lm_rc("env_open", mdb_env_open(m->env, path, 0, 0644))) ||
        (rc = lm_rc("txn_begin", mdb_txn_begin(m->env, NULL, 0, &txn))) ||
        (rc = lm_rc("dbi_open", mdb_dbi_open(txn, NULL, 0, &m->dbi))))
        goto out;
    rc = lm_rc("txn_commit", mdb_txn_commit(txn));
    txn = NULL;
    if (rc)
        goto out;
    *db = m;
    m = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    lm_close(m);
    return rc;
}

static int lm_save(void *db, batch *b)
{
    lm_db *m = db;
    MDB_txn *txn = NULL;
    int rc;
    if ((rc = lm_rc("txn_begin", mdb_txn_begin(m->env, NULL, 0, &txn))))
        goto out;
    for (size_t j = 0; j < b->n && !rc; j++) {
        MDB_val k = {b->t[j].key_len, b->keys[j]};
        MDB_val v = {value_encode(&b->t[j], b->val), b->val};
        rc = lm_rc("put", mdb_put(txn, m->dbi, &k, &v, 0));
    }
    if (!rc)
        rc = lm_rc("txn_commit", mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
out:
    return rc;
}

static int lm_load(void *db, const char *key, size_t key_len, ts_tensor **out)
{
    lm_db *m = db;
    MDB_val k = {key_len, (void *)key}, v;
    int rc;
    if (m->rtxn)
        rc = lm_rc("txn_renew", mdb_txn_renew(m->rtxn));
    else
        rc = lm_rc("txn_begin", mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->rtxn));
    if (rc)
        goto out;
    rc = mdb_get(m->rtxn, m->dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        rc = TS_ENOTFOUND;
    else if (!(rc = lm_rc("get", rc)))
        rc = value_decode(key, key_len, v.mv_data, v.mv_size, out);
    mdb_txn_reset(m->rtxn);
out:
    return rc;
}

#ifdef PEER_BENCH_SQLITE
/* SQLite: WAL mode, synchronous=FULL (the WAL is synced at every commit). */
typedef struct sql_db {
    sqlite3 *db;
    sqlite3_stmt *ins, *sel;
} sql_db;

static int sql_rc(sql_db *q, int rc)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "peer_bench: sqlite: %s\n", q->db ? sqlite3_errmsg(q->db) : "open");
        return -EIO;
    }
    return 0;
}

static int sql_close(void *db)
{
    sql_db *q = db;
    if (q) {
        sqlite3_finalize(q->ins);
        sqlite3_finalize(q->sel);
        sqlite3_close(q->db);
    }
    free(q);
    return 0;
}

static int sql_open(const char *path, uint64_t n, size_t tensor_len, void **db)
{
    char file[4096];
    sql_db *q = calloc(1, sizeof(*q));
    int rc = -ENOMEM;
    (void)n, (void)tensor_len;
    if (!q)
        goto out;
    snprintf(file, sizeof(file), "%s/store.db", path);
    if ((rc = sql_rc(q, sqlite3_open_v2(file, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                        NULL))) ||
        (rc = sql_rc(q, sqlite3_exec(q->db,
                                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     "CREATE TABLE IF NOT EXISTS t(k BLOB PRIMARY KEY, v BLOB)",
                                     NULL, NULL, NULL))) ||
        (rc = sql_rc(q, sqlite3_prepare_v2(q->db, "INSERT OR REPLACE INTO t VALUES(?, ?)", -1,
                                           &q->ins, NULL))) ||
        (rc = sql_rc(q, sqlite3_prepare_v2(q->db, "SELECT v FROM t WHERE k = ?", -1, &q->sel,
                                           NULL))))
        goto out;
    *db = q;
    q = NULL;
out:
    sql_close(q);
    return rc;
}

static int sql_save(void *db, batch *b)
{
    sql_db *q = db;
    int rc = sql_rc(q, sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL));
    for (size_t j = 0; j < b->n && !rc; j++) {
        size_t len = value_encode(&b->t[j], b->val);
        sqlite3_bind_blob(q->ins, 1, b->keys[j], (int)b->t[j].key_len, SQLITE_STATIC);
        sqlite3_bind_blob(q->ins, 2, b->val, (int)len, SQLITE_STATIC);
        rc = sql_rc(q, sqlite3_step(q->ins));
        sqlite3_reset(q->ins);
    }
    if (!rc)
        rc = sql_rc(q, sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL));
    else
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sql_load(void *db, const char *key, size_t key_len, ts_tensor **out)
{
    sql_db *q = db;
    int rc;
    sqlite3_bind_blob(q->sel, 1, key, (int)key_len, SQLITE_STATIC);
    rc = sqlite3_step(q->sel);
    if (rc == SQLITE_ROW)
        rc = value_decode(key, key_len, sqlite3_column_blob(q->sel, 0),
                          (size_t)sqlite3_column_bytes(q->sel, 0), out);
    else
        rc = rc == SQLITE_DONE ? TS_ENOTFOUND : sql_rc(q, rc);
    sqlite3_reset(q->sel);
    return rc;
}
#endif

static const peer peers[] = {
    {"raw", raw_open, raw_save, NULL, NULL, NULL, raw_close},
    {"embeddb", edb_open, edb_save, edb_flush, edb_load, ts_tensor_free, edb_close},
    {"embeddb-mmap", edb_open_mmap, edb_save, edb_flush, edb_load, ts_tensor_free, edb_close},
    {"embeddb-cache", edb_open_cache, edb_save, edb_flush, edb_load, ts_tensor_free, edb_close},
    {"leveldb", ldb_open, ldb_save, NULL, ldb_load, release_free, ldb_close},
    {"lmdb", lm_open, lm_save, NULL, lm_load, release_free, lm_close},
#ifdef PEER_BENCH_SQLITE
    {"sqlite", sql_open, sql_save, NULL, sql_load, release_free, sql_close},
#endif
};
#define N_PEERS (sizeof(peers) / sizeof(peers[0]))

/* ---- measuring ---------------------------------------------------------- */

/* What one engine's run in one round measured (0 where not applicable). */
typedef struct sample {
    double tps, loads_s, io_amp, eng_amp, disk_amp;
} sample;

static void loadavg(char *buf, size_t len)
{
    FILE *fp = fopen("/proc/loadavg", "r");
    float a = 0, b = 0, c = 0;
    if (fp && fscanf(fp, "%f %f %f", &a, &b, &c) == 3)
        snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
    else
        snprintf(buf, len, "unknown");
    if (fp)
        fclose(fp);
}

/* nftw callbacks take no context: du_bytes is du()'s accumulator. */
static uint64_t du_bytes;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path, (void)flag, (void)ftw;
    du_bytes += (uint64_t)st->st_blocks * 512;
    return 0;
}

static uint64_t du(const char *path)
{
    du_bytes = 0;
    nftw(path, du_one, 16, FTW_PHYS);
    return du_bytes;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

static void rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Random loads of existing keys from the reopened store. */
static int run_loads(const cfg *c, const peer *p, void *db, uint64_t n, size_t tensor_len,
                     double *loads_s)
{
    char key[KEY_CAP], name[NAME_CAP];
    uint64_t x = 88172645463325252ull, t0 = plat_mono_ns();
    int rc = 0;
    for (uint64_t l = 0; l < c->loads && !rc; l++) {
        ts_tensor *t = NULL;
        uint64_t i;
        size_t key_len;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        i = x % n;
        key_len = key_of(c, i, key, name);
        if (!(rc = p->load(db, key, key_len, &t)) &&
            (t->timestamp_ns != stamp_of(i) || t->dtype != TS_F32 || t->ndim != 1 ||
             t->data_len != tensor_len || strcmp(t->name, name))) {
            fprintf(stderr, "peer_bench: %s: %s came back different\n", p->name, key);
            rc = TS_ECORRUPT;
        }
        if (t)
            p->release(t);
    }
    *loads_s = (double)c->loads / ((double)(plat_mono_ns() - t0) / 1e9);
    return rc;
}

/* One engine, one size, one round: ingest into a fresh directory, flush,
 * close, count, reopen, load. */
static int run_one(const cfg *c, const peer *p, batch *b, uint64_t n, sample *s)
{
    char path[4096];
    double payload = (double)n * (double)b->tensor_len;
    uint64_t io0, ns = 0, eng_bytes = 0;
    void *db = NULL;
    int rc;
    memset(s, 0, sizeof(*s));
    snprintf(path, sizeof(path), "%s/%s", c->work, p->name);
    rmtree(path);
    if (mkdir(path, 0755)) {
        rc = -errno;
        fprintf(stderr, "peer_bench: mkdir %s: %s\n", path, strerror(errno));
        goto out;
    }
    sync(); /* no run pays for its predecessor's writeback */
    io0 = bench_util_io_write_bytes();
    if ((rc = p->open(path, n, b->tensor_len, &db)))
        goto out;
    for (uint64_t i = 0; i < n && !rc; i += BATCH) {
        uint64_t t0;
        batch_fill(c, b, i, (size_t)(n - i < BATCH ? n - i : BATCH));
        t0 = plat_mono_ns();
        rc = p->save(db, b);
        ns += plat_mono_ns() - t0;
    }
    if (!rc && p->flush)
        rc = p->flush(db, &eng_bytes);
    if (rc)
        goto out;
    rc = p->close(db);
    db = NULL;
    if (rc)
        goto out;
    s->tps = (double)n / ((double)ns / 1e9);
    s->io_amp = (double)(bench_util_io_write_bytes() - io0) / payload;
    s->eng_amp = (double)eng_bytes / payload;
    s->disk_amp = (double)du(path) / payload;
    if (p->load && c->loads) {
        if ((rc = p->open(path, n, b->tensor_len, &db)))
            goto out;
        rc = run_loads(c, p, db, n, b->tensor_len, &s->loads_s);
    }
out:
    if (db)
        p->close(db);
    rmtree(path);
    return rc;
}

/* Median of field `off` of samples s[0..n-1]. */
static double median(const sample *s, size_t n, size_t off)
{
    double v[MAX_ROUNDS];
    for (size_t i = 0; i < n; i++)
        memcpy(&v[i], (const char *)&s[i] + off, sizeof(double));
    return bench_util_median(v, n);
}

/* Every engine, every round, one size; prints one line per engine. */
static int run_size(const cfg *c, batch *b, uint64_t elems)
{
    static sample res[N_PEERS][MAX_ROUNDS];
    uint64_t n = elems * sizeof(float) >= 4096 ? c->n_4k : c->n_small;
    double raw_tps = 0;
    int rc = 0;
    b->elems = elems;
    b->tensor_len = (size_t)elems * sizeof(float);
    for (uint64_t r = 0; r < c->rounds && !rc; r++) {
        for (size_t k = 0; k < N_PEERS && !rc; k++) {
            size_t e = (size_t)((r + k) % N_PEERS);
            sample *s = &res[e][r];
            if ((rc = run_one(c, &peers[e], b, n, s)))
                fprintf(stderr, "peer_bench: %s, %zu B, round %" PRIu64 " failed: %s\n",
                        peers[e].name, b->tensor_len, r + 1, ts_strerror(rc));
            else if (c->verbose)
                printf("# round=%" PRIu64 " engine=%s size=%zu ingest_tps=%.0f io_per_payload=%.3f"
                       " loads_per_s=%.0f\n", r + 1, peers[e].name, b->tensor_len, s->tps,
                       s->io_amp, s->loads_s);
            fflush(stdout);
        }
    }
    if (rc)
        goto out;
    for (size_t e = 0; e < N_PEERS; e++) {
        const sample *s = res[e];
        double tps = median(s, (size_t)c->rounds, offsetof(sample, tps));
        if (e == 0)
            raw_tps = tps; /* peers[0] is raw */
        printf("engine=%s size=%zu n=%" PRIu64 " ingest_tps=%.0f ratio_raw=%.3f"
               " io_per_payload=%.3f disk_per_payload=%.3f", peers[e].name, b->tensor_len, n,
               tps, tps / raw_tps, median(s, (size_t)c->rounds, offsetof(sample, io_amp)),
               median(s, (size_t)c->rounds, offsetof(sample, disk_amp)));
        if (peers[e].flush)
            printf(" own_per_payload=%.3f", median(s, (size_t)c->rounds, offsetof(sample, eng_amp)));
        if (peers[e].load && c->loads)
            printf(" loads_per_s=%.0f", median(s, (size_t)c->rounds, offsetof(sample, loads_s)));
        else
            printf(" loads_per_s=-");
        printf("\n");
    }
    fflush(stdout);
out:
    return rc;
}

/* ---- the command -------------------------------------------------------- */

static const char usage[] =
    "usage: peer_bench [--n N] [--n4k N] [--rounds R] [--loads L] [--topics T]\n"
    "                  [--sizes E,E,...] [--dir DIR] [--verbose]\n"
    "EmbedDb beside raw write+fdatasync, LevelDB, LMDB (and SQLite when built with\n"
    "it): durable ingest in batches of 64 (one commit each), bytes written and on\n"
    "disk per payload byte, random point loads. Sizes are float32 element counts\n"
    "(3,32,1024 = 12 B, 128 B, 4 KiB); N tensors per run (200000; --n4k for\n"
    "tensors of 4 KiB and more: 50000), R rounds (5, medians), L loads (100000),\n"
    "T topics (1), in a scratch directory under DIR (.), removed afterwards.\n";

static int parse_sizes(const char *s, cfg *c)
{
    char *end;
    int rc = 0;
    c->n_sizes = 0;
    while (*s && !rc) {
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || v < 1 || v > (1u << 24) || c->n_sizes == MAX_SIZES ||
            (*end && *end != ','))
            rc = -EINVAL;
        else
            c->sizes[c->n_sizes++] = v;
        s = *end ? end + 1 : end;
    }
    return rc || !c->n_sizes ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, cfg *c)
{
    const struct {
        const char *name;
        uint64_t *dst, min, max;
    } opts[] = {{"--n", &c->n_small, 1, UINT64_C(1) << 32},
                {"--n4k", &c->n_4k, 1, UINT64_C(1) << 32},
                {"--rounds", &c->rounds, 1, MAX_ROUNDS},
                {"--loads", &c->loads, 0, UINT64_C(1) << 40},
                {"--topics", &c->topics, 1, 1000000}};
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        size_t o = 0;
        char *end;
        if (!strcmp(argv[i], "--verbose")) {
            c->verbose = 1;
            continue;
        }
        if (i + 1 >= argc) {
            rc = -EINVAL;
            break;
        }
        if (!strcmp(argv[i], "--dir")) {
            c->dir = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--sizes")) {
            rc = parse_sizes(argv[++i], c);
            continue;
        }
        while (o < sizeof(opts) / sizeof(opts[0]) && strcmp(argv[i], opts[o].name))
            o++;
        if (o == sizeof(opts) / sizeof(opts[0])) {
            rc = -EINVAL;
            break;
        }
        errno = 0;
        *opts[o].dst = strtoull(argv[++i], &end, 10);
        if (errno || *end || end == argv[i] || *opts[o].dst < opts[o].min ||
            *opts[o].dst > opts[o].max)
            rc = -EINVAL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    cfg c = {.n_small = 200000, .n_4k = 50000, .rounds = 5, .loads = 100000, .topics = 1,
             .sizes = {3, 32, 1024}, .n_sizes = 3, .dir = "."};
    batch *b = NULL;
    char la[64];
    uint64_t max_elems = 0;
    int rc = 0, ec = 2;
    if (parse_args(argc, argv, &c)) {
        fputs(usage, stderr);
        goto out;
    }
    ec = 1;
    for (size_t i = 0; i < c.n_sizes; i++)
        max_elems = c.sizes[i] > max_elems ? c.sizes[i] : max_elems;
    if (!(b = calloc(1, sizeof(*b))) ||
        !(b->data = malloc(BATCH * (size_t)max_elems * sizeof(float))) ||
        !(b->val = malloc(VAL_HDR_MAX + (size_t)max_elems * sizeof(float))) ||
        !(c.work = malloc(strlen(c.dir) + 32))) {
        fprintf(stderr, "peer_bench: out of memory\n");
        goto out;
    }
    sprintf(c.work, "%s/peer_bench.XXXXXX", c.dir);
    if (!mkdtemp(c.work)) {
        fprintf(stderr, "peer_bench: mkdtemp %s: %s\n", c.work, strerror(errno));
        free(c.work);
        c.work = NULL;
        goto out;
    }
    loadavg(la, sizeof(la));
    printf("# peer_bench: batches of %d, one durable commit each; N %" PRIu64 " (%" PRIu64
           " for 4 KiB); %" PRIu64 " rounds, medians; %" PRIu64 " loads, page cache warm; %"
           PRIu64 " topic(s); in %s\n", BATCH, c.n_small, c.n_4k, c.rounds, c.loads, c.topics,
           c.work);
    printf("# leveldb %d.%d: C API, default options + create_if_missing (compression: the "
           "default, Snappy in Debian's build), sync=true; lmdb %d.%d.%d: default flags%s\n",
           leveldb_major_version(), leveldb_minor_version(), MDB_VERSION_MAJOR, MDB_VERSION_MINOR,
           MDB_VERSION_PATCH, SQLITE_NOTE);
    printf("# loadavg_start=%s\n", la);
    fflush(stdout);
    for (size_t i = 0; i < c.n_sizes && !rc; i++)
        rc = run_size(&c, b, c.sizes[i]);
    loadavg(la, sizeof(la));
    printf("# loadavg_end=%s\n", la);
    if (!rc)
        ec = 0;
out:
    rmtree(c.work);
    free(c.work);
    if (b) {
        free(b->data);
        free(b->val);
    }
    free(b);
    return ec;
}
