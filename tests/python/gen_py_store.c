/*
 * gen_py_store.c -- writes, with the real engine and snapshot library, the
 * data the Python reader's cross-implementation tests read (tests/python/):
 * a store of every dtype, 0-d to 8-d, empty tensors, long and binary keys,
 * overwritten keys, plain and packed batches, spread over several SSTs and
 * an open WAL; a snapshot sealed from it; and that snapshot's object (the
 * tar the agent uploads), from the library's own tar encoder. A test
 * fixture, not a tool: it is not installed.
 *
 * usage: gen_py_store OUT SEED [TINY [DEVICE]]
 *   OUT/store                  the store (SSTs + open WAL)
 *   OUT/store/snapshots/NAME   the snapshot (device DEVICE, default "pydev")
 *   OUT/NAME.tar               its object
 * SEED picks the data (xorshift); TINY (default 600) the number of small
 * agent-style tensors ("topic<t>#<20 digits>", 4..64 bytes each, in
 * batches of 50: packed; topic0's shapes vary, topic1's and topic2's not). Data bytes are random, so floats include NaNs
 * with payloads, infinities and subnormals: the comparison is bitwise.
 *
 * usage: gen_py_store live DIR STOPFILE
 *   A writer that does not stop until STOPFILE exists, for the reader's
 *   beside-a-live-writer test: batches of 5 tensors, key "live#<c as 20
 *   digits>" for c = 0, 1, 2, ..., name "live", f32[3] = {c, c + 0.5,
 *   c + 0.25} (packed) or, every 4th batch, f32[300] = c + i (plain),
 *   timestamp 1e18 + c; a flush every 10 batches and whenever the 64 KiB
 *   MemTable fills. Durable batches (sync on).
 *
 * usage: gen_py_store bench OUT DEVICE N SIZE
 *   The benchmarks' object (python/bench): N random f32 tensors of SIZE
 *   bytes in 4 topics "bench/t<i % 4>", sealed into a snapshot of DEVICE,
 *   object OUT/NAME.tar.
 * Exit 0, or 1 with the reason on stderr.
 */
#include "embeddb/snapshot.h"
#include "embeddb/tar.h"
#include "embeddb/tensor_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const size_t dsize[16] = {0, 2, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 8, 16};

typedef struct item {
    uint8_t key[TS_MAX_KEY_LEN];
    char name[TS_MAX_NAME_LEN + 1];
    uint8_t *data;
    ts_tensor t;
} item;

/* Fills it with a random tensor of dtype dt and ndim dims, each dimension
 * below max_dim (0 makes it empty when allow_empty). */
static uint64_t fixed_dim; /* when not 0: the size of every dimension make() draws */

static int make(item *it, const uint8_t *key, size_t key_len, const char *name, int dt,
                uint32_t ndim, uint64_t max_dim, int allow_empty, int64_t ts)
{
    uint64_t numel = 1;
    memset(&it->t, 0, sizeof(it->t));
    memcpy(it->key, key, key_len);
    snprintf(it->name, sizeof(it->name), "%s", name);
    for (uint32_t i = 0; i < ndim; i++) {
        uint64_t d = fixed_dim ? fixed_dim : next() % max_dim + (allow_empty ? 0 : 1);
        it->t.shape[i] = d;
        numel *= d;
    }
    size_t len = (size_t)numel * dsize[dt];
    free(it->data);
    it->data = malloc(len ? len : 1);
    if (!it->data)
        return -1;
    for (size_t i = 0; i < len; i++)
        it->data[i] = (uint8_t)next();
    if (dt == TS_BOOL)
        for (size_t i = 0; i < len; i++)
            it->data[i] &= 1;
    it->t.key = it->key;
    it->t.key_len = key_len;
    it->t.name = it->name;
    it->t.dtype = (ts_dtype)dt;
    it->t.ndim = ndim;
    it->t.timestamp_ns = ts;
    it->t.data = it->data;
    it->t.data_len = len;
    return 0;
}

static int save_all(ts_store *s, item *v, size_t n)
{
    const ts_tensor *p[64];
    for (size_t i = 0; i < n; i++)
        p[i] = &v[i].t;
    return ts_save_batch(s, p, n);
}

static int write_object(const char *root, const char *name, const char *out)
{
    plat_vfs *vfs = plat_vfs_default();
    tar_member *m = NULL;
    tar_stream *ts = NULL;
    snap_info si;
    size_t n = 0, got = 0;
    uint8_t buf[65536];
    FILE *f = NULL;
    int rc = -1;
    if (snap_members(vfs, root, name, &m, &n) || snap_read(vfs, root, name, &si))
        goto out;
    if (!(ts = tar_stream_new(vfs, name, m, n, snap_tar_mtime(&si))) || !(f = fopen(out, "wb")))
        goto out;
    do {
        if (tar_stream_read(ts, buf, sizeof(buf), &got) || fwrite(buf, 1, got, f) != got)
            goto out;
    } while (got);
    rc = 0;
out:
    if (f && fclose(f))
        rc = -1;
    tar_stream_free(ts);
    free(m);
    return rc;
}

/* Seals everything in s into a snapshot of device and writes its object
 * to OUT/NAME.tar. 0 or -1 (err says why). */
static int seal_and_write(ts_store *s, const char *dir, const char *device, const char *out,
                          char *err, size_t errlen)
{
    char root[4096], name[256], path[4096];
    ts_checkpoint_info info;
    size_t done = 0;
    if (snap_root(dir, root, sizeof(root)) ||
        snap_begin(plat_vfs_default(), s, root, device, name, sizeof(name), &info, err, errlen) ||
        snap_finish_all(plat_vfs_default(), root, device, &done, NULL, err, errlen))
        return -1;
    snprintf(path, sizeof(path), "%s/%s.tar", out, name);
    if (write_object(root, name, path)) {
        snprintf(err, errlen, "writing the object failed");
        return -1;
    }
    return 0;
}

/* The benchmark's object: n tensors of size bytes (f32, random), keys
 * "bench/t<i % 4>#<i as 20 digits>", batches of 16, timestamps 1 ms apart. */
static int bench(const char *out, const char *device, uint64_t n, uint64_t size)
{
    char err[512] = "", dir[4096];
    ts_options o;
    ts_store *s = NULL;
    item *v = calloc(16, sizeof(*v));
    int rc = v ? 0 : -1;
    snprintf(dir, sizeof(dir), "%s/store", out);
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    if (!rc)
        rc = ts_open(dir, &o, &s, err, sizeof(err));
    fixed_dim = size / 4 ? size / 4 : 1;
    for (uint64_t c = 0; c < n && !rc; c += 16) {
        size_t k = 0;
        for (uint64_t j = c; j < c + 16 && j < n && !rc; j++, k++) {
            char key[64], nm[32];
            snprintf(nm, sizeof(nm), "bench/t%d", (int)(j % 4));
            snprintf(key, sizeof(key), "%s#%020" PRIu64, nm, j);
            rc = make(&v[k], (const uint8_t *)key, strlen(key), nm, TS_F32, 1, 1, 0,
                      1796043628000000000 + (int64_t)j * 1000000);
        }
        rc = rc ? rc : save_all(s, v, k);
    }
    fixed_dim = 0;
    if (!rc)
        rc = seal_and_write(s, dir, device, out, err, sizeof(err));
    if (rc)
        fprintf(stderr, "gen_py_store bench: failed (%d): %s\n", rc, err[0] ? err : ts_errmsg(s));
    ts_close(s);
    for (int i = 0; v && i < 16; i++)
        free(v[i].data);
    free(v);
    return rc ? 1 : 0;
}

static int live(const char *dir, const char *stop)
{
    char err[512] = "";
    ts_options o;
    ts_store *s = NULL;
    static float vals[5][300];
    static char keys[5][64];
    ts_tensor t[5];
    const ts_tensor *p[5];
    int rc = 0;
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.memtable_max = 64 << 10;
    if ((rc = ts_open(dir, &o, &s, err, sizeof(err))))
        goto out;
    for (uint64_t b = 0, c = 0; !rc; b++) {
        FILE *f = fopen(stop, "r");
        if (f) {
            fclose(f);
            break;
        }
        uint64_t n = b % 4 == 3 ? 300 : 3;
        for (int i = 0; i < 5; i++, c++) {
            snprintf(keys[i], sizeof(keys[i]), "live#%020" PRIu64, c);
            for (uint64_t k = 0; k < n; k++)
                vals[i][k] = n == 3 ? (float)c + (k == 1 ? 0.5f : k == 2 ? 0.25f : 0.f)
                                    : (float)(c + k);
            t[i] = (ts_tensor){.key = (const uint8_t *)keys[i], .key_len = strlen(keys[i]),
                               .name = "live", .dtype = TS_F32, .ndim = 1, .shape = {n},
                               .timestamp_ns = 1000000000000000000 + (int64_t)c,
                               .data = vals[i], .data_len = n * 4};
            p[i] = &t[i];
        }
        rc = ts_save_batch(s, p, 5);
        if (!rc && b % 10 == 9)
            rc = ts_flush(s, NULL, 0, NULL);
    }
out:
    if (rc)
        fprintf(stderr, "gen_py_store live: failed (%d): %s\n", rc, err[0] ? err : ts_errmsg(s));
    ts_close(s);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    char err[512] = "", dir[4096];
    ts_options o;
    ts_store *s = NULL;
    item *v = NULL;
    uint64_t tiny = 600;
    int64_t ts = 1796043628000000000;
    const char *device = "pydev";
    int rc = 0;
    if (argc == 4 && !strcmp(argv[1], "live"))
        return live(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "bench"))
        return bench(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10));
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: gen_py_store OUT SEED [TINY [DEVICE]]\n");
        return 1;
    }
    rng ^= strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ull;
    if (argc >= 4)
        tiny = strtoull(argv[3], NULL, 10);
    if (argc == 5)
        device = argv[4];
    /* Devices' clocks differ: their tensors interleave in time. */
    ts += (int64_t)(strtoull(argv[2], NULL, 10) % 7) * 333;
    if (!(v = calloc(64, sizeof(*v))))
        return 1;
    snprintf(dir, sizeof(dir), "%s/store", argv[1]);
    ts_options_init(&o);
    o.create_if_missing = 1;
    o.sync = 0;
    if ((rc = ts_open(dir, &o, &s, err, sizeof(err))))
        goto out;
    /* 1. Every dtype at every rank, one batch per dtype (large ones plain,
     * a batch of only small ones packed), some empty. */
    for (int dt = 1; dt <= 15 && !rc; dt++) {
        size_t n = 0;
        for (uint32_t nd = 0; nd <= TS_MAX_DIMS; nd++, n++) {
            char key[64], nm[64];
            snprintf(key, sizeof(key), "dt%02d/rank%u", dt, nd);
            snprintf(nm, sizeof(nm), "dtype_%d", dt);
            if ((rc = make(&v[n], (const uint8_t *)key, strlen(key), nm, dt, nd,
                           nd > 4 ? 3 : 5, nd % 3 == 2, ts + (int64_t)(next() % 1000000))))
                goto out;
        }
        rc = save_all(s, v, n);
    }
    /* 2. Large tensors: several 4 KiB data blocks, the last one short. */
    for (int i = 0; i < 4 && !rc; i++) {
        char key[64];
        snprintf(key, sizeof(key), "big/%d", i);
        fixed_dim = 1000 + 3001 * (uint64_t)i; /* 4000 .. 40012 bytes */
        rc = make(&v[0], (const uint8_t *)key, strlen(key), "big", TS_F32, 1, 1, 0, ts);
        fixed_dim = 0;
        if (rc)
            goto out;
        rc = save_all(s, v, 1);
    }
    if (!rc)
        rc = ts_flush(s, NULL, 0, NULL);
    /* 3. Keys: 1024 bytes, binary (with NUL), numeric; names: empty,
     * 1024 bytes, UTF-8, control characters; extreme timestamps. */
    if (!rc) {
        uint8_t k[TS_MAX_KEY_LEN];
        char longname[TS_MAX_NAME_LEN + 1];
        memset(k, 'k', sizeof(k));
        memset(longname, 'n', TS_MAX_NAME_LEN);
        longname[TS_MAX_NAME_LEN] = 0;
        rc = make(&v[0], k, sizeof(k), longname, TS_F64, 2, 4, 0, INT64_MAX);
        k[0] = 0;
        k[1] = 0xff;
        k[2] = '\n';
        rc = rc ? rc : make(&v[1], k, 3, "", TS_U8, 1, 8, 0, INT64_MIN);
        ts_key_from_u64(101, k);
        rc = rc ? rc : make(&v[2], k, TS_KEY_U64_LEN, "caf\xc3\xa9 \\ \t", TS_I16, 1, 8, 0, -5);
        rc = rc ? rc : make(&v[3], (const uint8_t *)"s:x", 3, "tag", TS_C64, 1, 3, 0, 1);
        rc = rc ? rc : make(&v[4], (const uint8_t *)"12345", 5, "digits", TS_BOOL, 1, 9, 0, 2);
        /* A key of the first SST again, with another dtype and shape. */
        rc = rc ? rc : make(&v[5], (const uint8_t *)"dt03/rank1", 10, "again", TS_I8, 2, 4, 0, 3);
        rc = rc ? rc : save_all(s, v, 6);
    }
    /* 4. Tiny tensors, agent style: packed batches of 50, in two SSTs and
     * the WAL. */
    for (uint64_t c = 0; c < tiny && !rc; c += 50) {
        size_t n = 0;
        for (uint64_t j = c; j < c + 50 && j < tiny; j++, n++) {
            char key[64], nm[32];
            int t = (int)(j % 3);
            snprintf(nm, sizeof(nm), "topic%d", t);
            snprintf(key, sizeof(key), "%s#%020" PRIu64, nm, j);
            /* topic0's shapes vary (several schemas a frame), topic1's
             * and topic2's do not (they stack along time). */
            fixed_dim = (uint64_t)(1 + t + (t ? 0 : j % 4));
            rc = make(&v[n], (const uint8_t *)key, strlen(key), nm,
                      t == 0 ? TS_F32 : t == 1 ? TS_I64 : TS_F16, 1, 1, 0,
                      ts + (int64_t)j * 1000 - (int64_t)(next() % 500));
            fixed_dim = 0;
            if (rc)
                goto out;
        }
        rc = save_all(s, v, n);
        if (!rc && c == 250)
            rc = ts_flush(s, NULL, 0, NULL);
    }
    if (!rc)
        rc = ts_flush(s, NULL, 0, NULL);
    /* 5. The snapshot of everything so far, and its object. */
    if (!rc && seal_and_write(s, dir, device, argv[1], err, sizeof(err)))
        rc = -1;
    /* 6. After the snapshot: overwrites across an SST and the WAL (a key
     * rewritten with another dtype and shape, plain over packed and back),
     * more tiny tensors; the last batches stay in the open WAL. */
    /* A key twice in one segment, far apart in time: the index's block
     * time range covers only the newest (core/FORMAT.md, index v2). */
    rc = rc ? rc : make(&v[0], (const uint8_t *)"dup/k", 5, "dup", TS_U8, 1, 4, 0,
                        INT64_C(-7000000000000000000));
    rc = rc ? rc : save_all(s, v, 1);
    rc = rc ? rc : make(&v[0], (const uint8_t *)"dup/k", 5, "dup", TS_U8, 1, 4, 0,
                        INT64_C(7000000000000000000));
    rc = rc ? rc : save_all(s, v, 1);
    for (int round = 0; round < 3 && !rc; round++) {
        size_t n = 0;
        char key[64];
        snprintf(key, sizeof(key), "over/a");
        rc = make(&v[n++], (const uint8_t *)key, strlen(key), "over", round == 1 ? TS_F64 : TS_U16,
                  round + 1, round == 1 ? 40 : 4, 0, ts + round);
        snprintf(key, sizeof(key), "topic0#%020d", round);
        rc = rc ? rc : make(&v[n++], (const uint8_t *)key, strlen(key), "topic0", TS_F32, 1, 3, 0,
                            ts + 100 + round);
        rc = rc ? rc : save_all(s, v, n);
        if (!rc && round < 2)
            rc = ts_flush(s, NULL, 0, NULL);
    }
    for (uint64_t c = 0; c < 120 && !rc; c += 40) {
        size_t n = 0;
        for (uint64_t j = c; j < c + 40; j++, n++) {
            char key[64];
            snprintf(key, sizeof(key), "wal/t#%020" PRIu64, j);
            if ((rc = make(&v[n], (const uint8_t *)key, strlen(key), "wal", TS_U8, 2, 4, 0,
                           ts + (int64_t)j)))
                goto out;
        }
        rc = save_all(s, v, n);
    }
out:
    if (rc)
        fprintf(stderr, "gen_py_store: failed (%d): %s\n", rc, err[0] ? err : ts_errmsg(s));
    ts_close(s);
    for (int i = 0; i < 64; i++)
        free(v[i].data);
    free(v);
    return rc ? 1 : 0;
}
