/*
 * v1_fixture.h -- what the committed format-version-1 fixtures hold
 * (tests/core/fixtures/v1/), shared by the program that wrote them
 * (gen_v1_fixtures.c) and the test that reads them (test_v1_fixtures.c).
 *
 * The fixtures are a sequence of V1_N_WRITES writes into one fresh store,
 * grouped by v1_plan[] into batches, single saves, flushes and one
 * checkpoint. Write i is fully described by v1_write(i): key, name, dtype,
 * shape, timestamp and data bytes. Everything is computed from i alone (no
 * clock, no random numbers, no library function such as ts_dtype_name whose
 * output could change), so the expected contents stay what they were when
 * the fixtures were generated.
 *
 * This header is the fixtures' other half: once the fixtures are committed,
 * never change what it computes. Add new fixtures under a new name instead.
 *
 * What the writes cover: every dtype (1..15), ndim 0..8, an empty name, a
 * 1024-byte key and a 1-byte key, 8-byte numeric keys, agent keys
 * "<topic>#<20-digit counter>" named after their topic (and the bare topic
 * as a key that is a prefix of them), tensors of several 4 KiB CRC blocks
 * with a partial last block (one in an SST, one in the WAL), zero-element
 * tensors, negative and extreme timestamps, and keys overwritten in a later
 * SST, in the WAL, twice within one segment and twice within one batch.
 */
#ifndef EMBEDDB_V1_FIXTURE_H
#define EMBEDDB_V1_FIXTURE_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the plan: how the writes were grouped ------------------------------ */

typedef enum v1_op {
    V1_BATCH,      /* the next n writes, one ts_save_batch */
    V1_SINGLES,    /* the next n writes, one ts_save each */
    V1_FLUSH,      /* ts_flush: seal the open segment into an SST */
    V1_CHECKPOINT, /* ts_checkpoint into checkpoint/ (it seals the open
                      segment first, so this is also a flush) */
} v1_op;

typedef struct v1_step {
    v1_op op;
    size_t n;
} v1_step;

/* Each V1_FLUSH / V1_CHECKPOINT seals a non-empty segment, so the SSTs are
 * sst_000000..sst_000002 and the writes after the checkpoint stay in the
 * open segment wal_000003.log, unflushed. */
static const v1_step v1_plan[] = {
    /* segment 0 */
    {V1_BATCH, 15},  /* 0..14: every dtype */
    {V1_SINGLES, 9}, /* 15..23: ndim 0..8 */
    {V1_FLUSH, 0},
    /* segment 1 */
    {V1_BATCH, 6},   /* 24..29: numeric keys */
    {V1_SINGLES, 6}, /* 30..35: long key, 1-byte key, empty name, big, zero elements, topic */
    {V1_BATCH, 4},   /* 36..39: agent keys */
    {V1_BATCH, 2},   /* 40..41: overwrite keys of segment 0 */
    {V1_FLUSH, 0},
    /* segment 2 */
    {V1_SINGLES, 3}, /* 42..44: overwrite again; one key twice in the segment */
    {V1_BATCH, 3},   /* 45..47: agent keys, overwrite a numeric key */
    {V1_CHECKPOINT, 0},
    /* segment 3: the open WAL, never flushed */
    {V1_BATCH, 4},   /* 48..51 */
    {V1_SINGLES, 3}, /* 52..54: a scalar, overwrites, a second big tensor */
    {V1_BATCH, 3},   /* 55..57: one key twice in one batch, zero elements */
    {V1_SINGLES, 1}, /* 58: overwrite a key sealed in segment 2 */
};

#define V1_N_STEPS (sizeof(v1_plan) / sizeof(v1_plan[0]))
#define V1_N_WRITES 59
/* Writes before the checkpoint: exactly what checkpoint/ holds. */
#define V1_N_CHECKPOINT 48
/* The store's segments: SSTs 0..2, open WAL 3. */
#define V1_N_SST 3
#define V1_WAL_NO 3

/* ---- the writes ----------------------------------------------------------- */

enum { V1_KEY_TEXT, V1_KEY_U64, V1_KEY_LONG };

typedef struct v1_spec {
    int key_kind;         /* V1_KEY_* */
    const char *key;      /* V1_KEY_TEXT: the key; V1_KEY_LONG: its first bytes */
    uint64_t num;         /* V1_KEY_U64: the number (ts_key_from_u64) */
    const char *name;
    ts_dtype dtype;
    uint32_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    int64_t ts;           /* 0: V1_TS_BASE + 1000 * i (never 0 on disk) */
} v1_spec;

#define V1_TS_BASE INT64_C(1700000000000000000)
#define V1_BIG_KEY "big/f32"

/* Spelled out (not built from the dtype enum) so the table is the record. */
static const v1_spec v1_specs[V1_N_WRITES] = {
    /* segment 0, batch: every dtype, shape 2x3 */
    {V1_KEY_TEXT, "dtype/f16", 0, "f16", TS_F16, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/bf16", 0, "bf16", TS_BF16, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/f32", 0, "f32", TS_F32, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/f64", 0, "f64", TS_F64, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/i8", 0, "i8", TS_I8, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/i16", 0, "i16", TS_I16, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/i32", 0, "i32", TS_I32, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/i64", 0, "i64", TS_I64, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/u8", 0, "u8", TS_U8, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/u16", 0, "u16", TS_U16, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/u32", 0, "u32", TS_U32, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/u64", 0, "u64", TS_U64, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/bool", 0, "bool", TS_BOOL, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/c64", 0, "c64", TS_C64, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "dtype/c128", 0, "c128", TS_C128, 2, {2, 3}, 0},
    /* segment 0, singles: ndim 0 (a scalar) to 8 */
    {V1_KEY_TEXT, "ndim/0", 0, "scalar", TS_F64, 0, {0}, -1},
    {V1_KEY_TEXT, "ndim/1", 0, "ndim 1", TS_I16, 1, {5}, 0},
    {V1_KEY_TEXT, "ndim/2", 0, "ndim 2", TS_U32, 2, {2, 3}, 0},
    {V1_KEY_TEXT, "ndim/3", 0, "ndim 3", TS_F32, 3, {2, 1, 3}, 0},
    {V1_KEY_TEXT, "ndim/4", 0, "ndim 4", TS_U8, 4, {1, 2, 1, 2}, 0},
    {V1_KEY_TEXT, "ndim/5", 0, "ndim 5", TS_BF16, 5, {2, 1, 1, 1, 2}, 0},
    {V1_KEY_TEXT, "ndim/6", 0, "ndim 6", TS_I64, 6, {1, 1, 2, 1, 1, 3}, 0},
    {V1_KEY_TEXT, "ndim/7", 0, "ndim 7", TS_C64, 7, {1, 2, 1, 1, 1, 1, 2}, 0},
    {V1_KEY_TEXT, "ndim/8", 0, "ndim 8", TS_I8, 8, {2, 1, 1, 2, 1, 1, 1, 2}, INT64_MAX},
    /* segment 1, batch: 8-byte numeric keys, out of order */
    {V1_KEY_U64, NULL, 101, "counter", TS_F64, 1, {2}, 0},
    {V1_KEY_U64, NULL, 0, "counter", TS_F64, 1, {2}, 0},
    {V1_KEY_U64, NULL, UINT64_MAX, "counter", TS_F64, 1, {2}, INT64_MIN},
    {V1_KEY_U64, NULL, 202, "counter", TS_F64, 1, {2}, 0},
    {V1_KEY_U64, NULL, UINT64_C(0x0000010000000003), "counter", TS_F64, 1, {2}, 0},
    {V1_KEY_U64, NULL, 1, "counter", TS_F64, 1, {2}, 0},
    /* segment 1, singles */
    {V1_KEY_LONG, "long/", 0, "1024-byte key", TS_U16, 1, {3}, 0},
    {V1_KEY_TEXT, "z", 0, "1-byte key", TS_U8, 1, {1}, 0},
    {V1_KEY_TEXT, "name/empty", 0, "", TS_I32, 1, {2}, 0},
    /* 18000 bytes: four 4 KiB CRC blocks and a partial one of 1616 */
    {V1_KEY_TEXT, V1_BIG_KEY, 0, "big", TS_F32, 2, {3, 1500}, 0},
    {V1_KEY_TEXT, "zero/elems", 0, "zero elements", TS_F32, 2, {0, 4}, 0},
    {V1_KEY_TEXT, "sensors/imu0", 0, "bare topic", TS_U8, 1, {2}, 0},
    /* segment 1, batch: agent keys, name = topic */
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000041", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000042", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    {V1_KEY_TEXT, "sensors/cam/front#00000000000000000007", 0, "sensors/cam/front", TS_U8, 2,
     {4, 4}, 0},
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000040", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    /* segment 1, batch: overwrite two keys of segment 0 (new dtype, shape) */
    {V1_KEY_TEXT, "dtype/f32", 0, "f32 v2", TS_F64, 1, {4}, 0},
    {V1_KEY_TEXT, "ndim/3", 0, "ndim 3 v2", TS_I32, 3, {3, 1, 1}, 0},
    /* segment 2, singles */
    {V1_KEY_TEXT, "dtype/f32", 0, "f32 v3", TS_F32, 2, {2, 2}, 0},
    {V1_KEY_TEXT, "dup/in-segment", 0, "dup v1", TS_U8, 1, {3}, 0},
    {V1_KEY_TEXT, "dup/in-segment", 0, "dup v2", TS_U16, 1, {2}, 0},
    /* segment 2, batch */
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000043", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000044", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    {V1_KEY_U64, NULL, 101, "counter v2", TS_I32, 1, {3}, 0},
    /* segment 3 (open WAL), batch */
    {V1_KEY_TEXT, "sensors/imu0#00000000000000000045", 0, "sensors/imu0", TS_F32, 1, {6}, 0},
    {V1_KEY_TEXT, "sensors/cam/front#00000000000000000008", 0, "sensors/cam/front", TS_U8, 2,
     {4, 4}, 0},
    {V1_KEY_TEXT, "dtype/u8", 0, "u8 v2", TS_U8, 1, {7}, 0},
    {V1_KEY_TEXT, "wal/batch", 0, "in the WAL", TS_I64, 2, {2, 2}, 0},
    /* segment 3, singles */
    {V1_KEY_TEXT, "wal/scalar", 0, "scalar in the WAL", TS_C128, 0, {0}, 0},
    {V1_KEY_U64, NULL, 0, "counter v2", TS_U64, 1, {1}, 0},
    /* 10400 bytes: two 4 KiB CRC blocks and a partial one of 2208 */
    {V1_KEY_TEXT, V1_BIG_KEY, 0, "big v2", TS_F64, 1, {1300}, 0},
    /* segment 3, batch: one key twice (the later record wins) */
    {V1_KEY_TEXT, "dup/in-batch", 0, "dup v1", TS_I8, 1, {2}, 0},
    {V1_KEY_TEXT, "wal/zero", 0, "zero elements in the WAL", TS_BOOL, 2, {3, 0}, 0},
    {V1_KEY_TEXT, "dup/in-batch", 0, "dup v2", TS_I8, 1, {3}, 0},
    /* segment 3, single */
    {V1_KEY_TEXT, "dup/in-segment", 0, "dup v3", TS_U32, 1, {1}, 0},
};

/* Write i as a tensor plus the buffers it points into (owned). */
typedef struct v1_write {
    ts_tensor t;
    uint8_t key[TS_MAX_KEY_LEN];
    uint8_t *data; /* malloc'd; NULL when data_len is 0 */
} v1_write;

static inline size_t v1_dtype_size(ts_dtype dt)
{
    static const uint8_t size[16] = {0, 2, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 8, 16};
    return (unsigned)dt < 16 ? size[dt] : 0;
}

/* Byte j of write i's data: a hash, so a block read from the wrong place
 * never matches by accident (a pattern with a period dividing 4096 would).
 * bool elements are 0 or 1. */
static inline uint8_t v1_data_byte(size_t i, size_t j, ts_dtype dt)
{
    uint32_t h = (uint32_t)j * 0x9e3779b1u + ((uint32_t)i + 1) * 0x85ebca77u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return dt == TS_BOOL ? (uint8_t)(h & 1) : (uint8_t)(h >> 8);
}

/* The key of write i into key[] (TS_MAX_KEY_LEN bytes); its length. */
static inline size_t v1_key(size_t i, uint8_t *key)
{
    const v1_spec *sp = &v1_specs[i];
    size_t len = 0;
    switch (sp->key_kind) {
    case V1_KEY_U64:
        ts_key_from_u64(sp->num, key);
        len = TS_KEY_U64_LEN;
        break;
    case V1_KEY_LONG:
        /* TS_MAX_KEY_LEN bytes: a text prefix, then every byte value
         * (0x00 and 0xff included) */
        len = strlen(sp->key);
        memcpy(key, sp->key, len);
        for (size_t j = len; j < TS_MAX_KEY_LEN; j++)
            key[j] = (uint8_t)(j * 7 + 3);
        len = TS_MAX_KEY_LEN;
        break;
    default:
        len = strlen(sp->key);
        memcpy(key, sp->key, len);
        break;
    }
    return len;
}

static inline int64_t v1_timestamp(size_t i)
{
    return v1_specs[i].ts ? v1_specs[i].ts : V1_TS_BASE + 1000 * (int64_t)i;
}

/* The sequence number write i got: a new store starts at 1 and every record
 * takes the next one, across flushes and the checkpoint. */
static inline uint64_t v1_seq(size_t i)
{
    return (uint64_t)i + 1;
}

/* The segment (file number) write i went to. */
static inline uint64_t v1_file_no(size_t i)
{
    uint64_t file_no = 0;
    size_t w = 0;
    for (size_t k = 0; k < V1_N_STEPS; k++) {
        if (v1_plan[k].op == V1_FLUSH || v1_plan[k].op == V1_CHECKPOINT) {
            file_no++;
            continue;
        }
        w += v1_plan[k].n;
        if (i < w)
            break;
    }
    return file_no;
}

/* Fills w with write i (i < V1_N_WRITES). 0, or -1 when out of memory.
 * Free with v1_write_free (also after a failure). */
static inline int v1_write_make(size_t i, v1_write *w)
{
    const v1_spec *sp = &v1_specs[i];
    uint64_t numel = 1;
    memset(w, 0, sizeof(*w));
    for (uint32_t d = 0; d < sp->ndim; d++)
        numel *= sp->shape[d];
    w->t.key = w->key;
    w->t.key_len = v1_key(i, w->key);
    w->t.name = sp->name;
    w->t.dtype = sp->dtype;
    w->t.ndim = sp->ndim;
    memcpy(w->t.shape, sp->shape, sizeof(w->t.shape));
    w->t.timestamp_ns = v1_timestamp(i);
    w->t.data_len = (size_t)numel * v1_dtype_size(sp->dtype);
    if (w->t.data_len) {
        if (!(w->data = malloc(w->t.data_len)))
            return -1;
        for (size_t j = 0; j < w->t.data_len; j++)
            w->data[j] = v1_data_byte(i, j, sp->dtype);
    }
    w->t.data = w->data;
    return 0;
}

static inline void v1_write_free(v1_write *w)
{
    free(w->data);
    w->data = NULL;
}

/* 1 when write i is the newest of its key among writes 0..n-1 (what a
 * store holding exactly those writes returns for that key). */
static inline int v1_is_newest(size_t i, size_t n)
{
    uint8_t a[TS_MAX_KEY_LEN], b[TS_MAX_KEY_LEN];
    size_t alen = v1_key(i, a);
    for (size_t j = i + 1; j < n; j++)
        if (v1_key(j, b) == alen && memcmp(a, b, alen) == 0)
            return 0;
    return 1;
}

#endif
