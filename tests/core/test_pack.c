/*
 * test_pack.c -- packed frames (core/src/pack.c), the compact record
 * encoding of format version 2: round trips over every shape the encoder
 * accepts, the frame-closing rules (64 schemas, about 4 KiB), the measure
 * call, and the decoder's rejection of every damaged or malformed frame --
 * including hand-built frames whose CRC is valid but whose fields are not.
 */
#include "crc32c.h"
#include "format.h"
#include "pack.h"

#include "embeddb/tensor_store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* ---- a batch of tensors the test owns -------------------------------- */

typedef struct tb {
    size_t n;
    ts_tensor t[4096];
    const ts_tensor *p[4096];
    int64_t ts[4096];
    void *own[3 * 4096];
    size_t n_own;
} tb;

static tb *tb_new(void)
{
    return calloc(1, sizeof(tb));
}

static void tb_free(tb *b)
{
    for (size_t i = 0; i < b->n_own; i++)
        free(b->own[i]);
    free(b);
}

static void *tb_keep(tb *b, void *p)
{
    assert_non_null(p);
    b->own[b->n_own++] = p;
    return p;
}

/* Adds a tensor: its data is a pattern of (its index, byte). shape has
 * ndim entries; data_len follows from shape and dtype. */
static ts_tensor *tb_add(tb *b, const void *key, size_t key_len, const char *name, ts_dtype dt,
                         uint32_t ndim, const uint64_t *shape, int64_t ts)
{
    size_t i = b->n++;
    ts_tensor *t = &b->t[i];
    uint64_t numel = 1;
    memset(t, 0, sizeof(*t));
    for (uint32_t d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        numel = shape[d] == 0 ? 0 : (numel > UINT64_MAX / shape[d] ? UINT64_MAX : numel * shape[d]);
    }
    size_t len = (size_t)(numel * ts_dtype_size(dt));
    uint8_t *k = tb_keep(b, malloc(key_len ? key_len : 1));
    memcpy(k, key, key_len);
    char *nm = tb_keep(b, strdup(name));
    uint8_t *data = tb_keep(b, malloc(len ? len : 1));
    for (size_t j = 0; j < len; j++)
        data[j] = (uint8_t)(i * 31 + j * 7 + 1);
    *t = (ts_tensor){.key = k, .key_len = key_len, .name = nm, .dtype = dt, .ndim = ndim,
                     .timestamp_ns = ts, .data = data, .data_len = len};
    if (ndim)
        memcpy(t->shape, shape, ndim * sizeof(*shape));
    assert_int_equal(ts_validate(t), 0);
    b->p[i] = t;
    b->ts[i] = ts;
    return t;
}

static ts_tensor *tb_add_s(tb *b, const char *key, const char *name, ts_dtype dt, uint32_t ndim,
                           const uint64_t *shape, int64_t ts)
{
    return tb_add(b, key, strlen(key), name, dt, ndim, shape, ts);
}

/* Checks that record r is tensor t with timestamp ts and seq. */
static void check_rec(const pack_rec *r, const ts_tensor *t, int64_t ts, uint64_t seq)
{
    assert_int_equal(r->seq, seq);
    assert_true(r->timestamp_ns == ts);
    assert_int_equal(r->key_len, t->key_len);
    assert_memory_equal(r->key, t->key, t->key_len);
    assert_int_equal(r->name_len, strlen(t->name));
    assert_memory_equal(r->name, t->name, r->name_len);
    assert_int_equal(r->dtype, t->dtype);
    assert_int_equal(r->ndim, t->ndim);
    for (uint32_t d = 0; d < t->ndim; d++)
        assert_true(r->shape[d] == t->shape[d]);
    assert_int_equal(r->data_len, t->data_len);
    if (t->data_len)
        assert_memory_equal(r->data, t->data, t->data_len);
}

/* Per-frame figures a round trip reports. */
typedef struct frame_info {
    uint64_t off;
    uint32_t len;
    uint32_t n_records, n_schemas;
    uint64_t content;       /* schema table + records */
    uint64_t last_rec;      /* encoded size of its last record */
    uint64_t planned;       /* content with every timestamp delta at 1 byte */
    uint64_t last_planned;  /* the same for its last record */
} frame_info;

/* Bytes of the varint coding the delta from prev to ts. */
static uint64_t dts_len(int64_t ts, int64_t prev)
{
    return fmt_varint_len(fmt_zigzag((int64_t)((uint64_t)ts - (uint64_t)prev)));
}

/* Encodes b (measure first, then write), decodes every frame and checks
 * every record, every loc, the padding, and that exactly body_len bytes
 * were written. Returns the number of frames (fi gets up to fi_cap). */
static size_t roundtrip(tb *b, uint64_t first_seq, frame_info *fi, size_t fi_cap)
{
    uint64_t len0 = 7, len1 = 9;
    pack_loc *locs = calloc(b->n + 1, sizeof(*locs));
    assert_int_equal(pack_encode(b->p, b->ts, b->n, first_seq, NULL, &len0, NULL), 0);
    assert_int_equal(len0 % FMT_ALIGN, 0);
    uint8_t *buf = malloc(len0 + 64);
    memset(buf, 0xa5, len0 + 64);
    assert_int_equal(pack_encode(b->p, b->ts, b->n, first_seq, buf, &len1, locs), 0);
    assert_int_equal(len0, len1);
    for (uint64_t i = len0; i < len0 + 64; i++)
        assert_int_equal(buf[i], 0xa5); /* not a byte past body_len */
    uint64_t off = 0;
    size_t i = 0, frames = 0;
    pack_dec *d = malloc(sizeof(*d));
    while (i < b->n) {
        pack_rec r;
        const char *why = NULL;
        uint32_t flen = 0;
        assert_true(off < len0);
        int rc = pack_open(d, buf + off, (size_t)(len0 - off), &flen, &why);
        if (rc)
            fail_msg("frame %zu at %llu: %s", frames, (unsigned long long)off, why);
        assert_true(flen <= FMT_FRAME_MAX_LEN && off + flen <= len0);
        frame_info f = {.off = off, .len = flen, .n_records = d->n_records,
                        .n_schemas = d->n_schemas};
        f.content = (uint64_t)(d->end - d->p);
        for (uint32_t s = 0; s < d->n_schemas; s++)
            f.content += fmt_varint_len(d->schemas[s].name_len) + d->schemas[s].name_len + 2;
        for (uint32_t s = 0; s < d->n_schemas; s++)
            for (uint32_t k = 0; k < d->schemas[s].ndim; k++)
                f.content += fmt_varint_len(d->schemas[s].shape[k]);
        size_t first = i;
        const uint8_t *before = d->p;
        int64_t prev_ts = 0;
        f.planned = f.content - (uint64_t)(d->end - d->p);
        while ((rc = pack_next(d, &r, &why)) == 0) {
            assert_true(i < b->n);
            check_rec(&r, b->p[i], b->ts[i], first_seq + i);
            assert_int_equal(r.ord, i - first);
            assert_true(locs[i].frame_off == off);
            assert_int_equal(locs[i].frame_len, flen);
            assert_int_equal(locs[i].ord, i - first);
            f.last_rec = (uint64_t)(d->p - before);
            f.last_planned = f.last_rec - dts_len(r.timestamp_ns, prev_ts) + 1;
            f.planned += f.last_planned;
            prev_ts = r.timestamp_ns;
            before = d->p;
            i++;
        }
        if (rc != 1)
            fail_msg("frame %zu record %zu: %s", frames, i, why);
        assert_int_equal(i - first, f.n_records);
        pack_close(d);
        if (frames < fi_cap)
            fi[frames] = f;
        off += flen;
        frames++;
    }
    assert_true(len0 - off < FMT_ALIGN);
    assert_true(fmt_align8(off) == len0);
    for (uint64_t k = off; k < len0; k++)
        assert_int_equal(buf[k], 0);
    free(d);
    free(buf);
    free(locs);
    return frames;
}

/* Body bytes that are not tensor data: what packing costs. */
static uint64_t overhead(tb *b)
{
    uint64_t len = 0, data = 0;
    assert_int_equal(pack_encode(b->p, b->ts, b->n, 1, NULL, &len, NULL), 0);
    for (size_t i = 0; i < b->n; i++)
        data += b->t[i].data_len;
    return len - data;
}

/* ---- round trips ------------------------------------------------------ */

static void test_pack_eligible_takes_tensors_up_to_1024_bytes(void **state)
{
    (void)state;
    tb *b = tb_new();
    uint64_t s1024[1] = {1024}, s1025[1] = {1025}, s256[1] = {256};
    tb_add_s(b, "a", "x", TS_U8, 1, s1024, 1);
    tb_add_s(b, "b", "x", TS_F32, 1, s256, 1);
    assert_int_equal(pack_eligible(b->p, 2), 1);
    assert_int_equal(pack_eligible(b->p, 0), 0);
    tb_add_s(b, "c", "x", TS_U8, 1, s1025, 1);
    assert_int_equal(pack_eligible(b->p, 3), 0);
    assert_int_equal(pack_eligible(b->p + 2, 1), 0);
    tb_free(b);
}

static void test_one_schema_round_trips_and_codes_keys_against_the_previous(void **state)
{
    (void)state;
    tb *b = tb_new();
    char key[64];
    uint64_t shape[1] = {6};
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "sensors/imu0#%020d", i);
        tb_add_s(b, key, "sensors/imu0", TS_F32, 1, shape, 1700000000000000000ll + i * 1000000ll);
    }
    frame_info fi[64];
    size_t frames = roundtrip(b, 1, fi, 64);
    assert_true(frames > 1);
    /* A 33-byte key whose counter moved costs a few bytes, not 33. */
    assert_true(overhead(b) < 1000 * 8);
    tb_free(b);
}

static void test_interleaved_topics_round_trip_each_key_coded_against_its_own_topic(void **state)
{
    (void)state;
    tb *b = tb_new();
    char key[64], name[32];
    static const ts_dtype dts[4] = {TS_F32, TS_I16, TS_U8, TS_F64};
    int64_t t = 1700000000000000000ll;
    for (int batch = 0; batch < 6; batch++)
        for (int j = 0; j < 64; j++) {
            int k = (batch * 64 + j) % 20, c = (batch * 64 + j) / 20;
            uint64_t shape[2] = {(uint64_t)(k % 3 + 1), 3};
            snprintf(key, sizeof(key), "sensors/imu%d#%020d", k, c);
            snprintf(name, sizeof(name), "sensors/imu%d", k);
            tb_add_s(b, key, name, dts[k % 4], k % 2 + 1, shape, t += 997);
        }
    frame_info fi[64];
    size_t frames = roundtrip(b, 77, fi, 64);
    for (size_t f = 0; f < frames && f < 64; f++)
        assert_true(fi[f].n_schemas <= 20);
    /* Per record: schema index, header, a 1-2 byte key suffix, the delta;
     * plus each frame's 20-entry schema table. Coding a key against the
     * previous record's (another topic) would cost ~20 bytes more. Each
     * frame's first key of a topic is whole (frames are self-contained). */
    assert_true(overhead(b) < b->n * 16);
    tb_free(b);
}

static void test_64_schemas_fit_one_frame_and_a_65th_starts_the_next(void **state)
{
    (void)state;
    tb *b = tb_new();
    char key[32], name[32];
    for (int i = 0; i < 65; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        snprintf(name, sizeof(name), "schema%02d", i);
        tb_add_s(b, key, name, TS_U8, 0, NULL, i);
    }
    /* 64 distinct schemas: one frame. */
    b->n = 64;
    frame_info fi[4];
    assert_int_equal(roundtrip(b, 1, fi, 4), 1);
    assert_int_equal(fi[0].n_schemas, 64);
    /* A 65th: a second frame, although the first is far from 4 KiB. */
    b->n = 65;
    assert_int_equal(roundtrip(b, 1, fi, 4), 2);
    assert_int_equal(fi[0].n_records, 64);
    assert_int_equal(fi[0].n_schemas, 64);
    assert_int_equal(fi[1].n_records, 1);
    assert_true(fi[0].len < 2048);
    /* A schema of the first frame coming back lands in the second. */
    tb_add_s(b, "k99", "schema00", TS_U8, 0, NULL, 99);
    assert_int_equal(roundtrip(b, 1, fi, 4), 2);
    assert_int_equal(fi[1].n_records, 2);
    assert_int_equal(fi[1].n_schemas, 2);
    /* Reused schemas do not count twice toward the 64. */
    tb *c = tb_new();
    for (int i = 0; i < 128; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        snprintf(name, sizeof(name), "schema%02d", i % 64);
        tb_add_s(c, key, name, TS_U8, 0, NULL, i);
    }
    assert_int_equal(roundtrip(c, 1, fi, 4), 1);
    tb_free(c);
    tb_free(b);
}

/* A frame closes with the record that takes its schema table + records,
 * each timestamp delta counted as 1 byte, to FMT_FRAME_TARGET bytes or
 * more: never earlier (no frame but the last is under 4 KiB so counted),
 * never later (without its last record it was under). */
static void test_frames_close_once_they_reach_4_kib(void **state)
{
    (void)state;
    int exact = 0;
    char key[48];
    for (uint64_t len = 1; len <= FMT_PACK_MAX_DATA; len++) {
        tb *b = tb_new();
        uint64_t shape[1] = {len};
        for (int i = 0; i < 40; i++) {
            snprintf(key, sizeof(key), "dev/%d#%06d", i % 3, i * 37);
            tb_add_s(b, key, i % 3 ? "a" : "bb", TS_U8, 1, shape, (int64_t)(i % 2 ? 0 : INT64_MIN));
        }
        frame_info fi[64];
        size_t frames = roundtrip(b, UINT64_MAX - 1000, fi, 64);
        assert_true(frames < 64);
        for (size_t f = 0; f < frames; f++) {
            if (f + 1 < frames)
                assert_true(fi[f].planned >= FMT_FRAME_TARGET);
            assert_true(fi[f].planned - fi[f].last_planned < FMT_FRAME_TARGET);
            /* Real deltas take 1..10 bytes where the plan counts 1. */
            assert_true(fi[f].content >= fi[f].planned);
            assert_true(fi[f].content <= fi[f].planned + (FMT_VARINT_MAX - 1) * fi[f].n_records);
            exact += fi[f].planned == FMT_FRAME_TARGET;
        }
        tb_free(b);
    }
    /* The sweep hits a frame of exactly 4096 bytes: closed at, not past. */
    assert_true(exact > 0);
}

/* Where frames end depends on the tensors only, not on their timestamps:
 * so a body measured with worst-case timestamps (ts_batch_cost) is at
 * least the body of any timestamps. */
static void test_frames_split_the_same_whatever_the_timestamps(void **state)
{
    (void)state;
    static const int64_t pat[][2] = {{INT64_MIN, 0}, {1, 1}, {1000, 1001}, {-1, 1},
                                     {1700000000000000000ll, 1700000000000000007ll},
                                     {INT64_MAX, INT64_MIN}};
    static char big[TS_MAX_NAME_LEN + 1];
    memset(big, 'N', TS_MAX_NAME_LEN);
    char key[400];
    for (int shape = 0; shape < 40; shape++) {
        tb *b = tb_new();
        uint64_t s1024[1] = {1024}, sd[1] = {(uint64_t)(shape * 23 % 1000 + 1)};
        for (int i = 0; i < 60; i++) {
            size_t kl = (size_t)(20 + (shape * 7 + i) % 340);
            memset(key, 'a' + i % 26, kl);
            snprintf(key, 8, "%03d", i);
            key[3] = '/';
            if (i % 5 == 3)
                tb_add(b, key, kl, big, TS_U8, 0, NULL, 0); /* 1 KiB schema names */
            else
                tb_add(b, key, kl, i % 2 ? "a" : "b", TS_U8, 1, i % 3 ? sd : s1024, 0);
        }
        pack_loc *ref = calloc(b->n, sizeof(*ref)), *locs = calloc(b->n, sizeof(*locs));
        uint64_t worst = 0, len = 0;
        for (size_t p = 0; p < sizeof(pat) / sizeof(pat[0]); p++) {
            for (size_t i = 0; i < b->n; i++)
                b->ts[i] = pat[p][i % 2] + (p == 2 ? (int64_t)i * 997 : 0);
            assert_int_equal(pack_encode(b->p, b->ts, b->n, p ? 1 : UINT64_MAX - b->n, NULL, &len,
                                         p ? locs : ref), 0);
            if (!p) {
                worst = len;
                continue;
            }
            assert_true(len <= worst);
            for (size_t i = 0; i < b->n; i++) {
                assert_int_equal(locs[i].ord, ref[i].ord);
                assert_int_equal(locs[i].ord == 0, ref[i].ord == 0);
            }
            roundtrip(b, 1, NULL, 0);
        }
        free(ref);
        free(locs);
        tb_free(b);
    }
}

static void test_keys_of_1_and_1024_bytes_and_prefix_keys_round_trip(void **state)
{
    (void)state;
    tb *b = tb_new();
    uint8_t k[TS_MAX_KEY_LEN];
    uint64_t shape[1] = {3};
    memset(k, 'z', sizeof(k));
    /* One schema: each key is coded against the one before. */
    tb_add(b, "a", 1, "s", TS_U8, 1, shape, 1);
    tb_add(b, k, TS_MAX_KEY_LEN, "s", TS_U8, 1, shape, 2);     /* nothing shared */
    tb_add(b, k, TS_MAX_KEY_LEN, "s", TS_U8, 1, shape, 3);     /* the same key again */
    k[TS_MAX_KEY_LEN - 1] = 'y';
    tb_add(b, k, TS_MAX_KEY_LEN, "s", TS_U8, 1, shape, 4);     /* last byte differs */
    k[0] = 'y';
    tb_add(b, k, TS_MAX_KEY_LEN, "s", TS_U8, 1, shape, 5);     /* first byte differs */
    tb_add(b, k, 1, "s", TS_U8, 1, shape, 6);                  /* a 1-byte prefix of it */
    tb_add(b, k, TS_MAX_KEY_LEN, "s", TS_U8, 1, shape, 7);     /* extends its prefix */
    tb_add(b, "ab", 2, "s", TS_U8, 1, shape, 8);
    tb_add(b, "abc", 3, "s", TS_U8, 1, shape, 9);
    tb_add(b, "ab", 2, "s", TS_U8, 1, shape, 10);
    tb_add(b, "a", 1, "s", TS_U8, 1, shape, 11);
    tb_add(b, "b", 1, "s", TS_U8, 1, shape, 12);               /* same length, no share */
    tb_add(b, "abcd", 4, "s", TS_U8, 1, shape, 13);
    tb_add(b, "\0", 1, "s", TS_U8, 1, shape, 14);              /* NUL bytes are key bytes */
    tb_add(b, "\0\0", 2, "s", TS_U8, 1, shape, 15);
    tb_add(b, "\xff", 1, "s", TS_U8, 1, shape, 16);
    /* The same keys under a second schema, interleaved with the first. */
    size_t n = b->n;
    for (size_t i = 0; i < n; i++) {
        tb_add(b, b->t[i].key, b->t[i].key_len, "t", TS_I16, 1, shape, (int64_t)i);
        tb_add(b, b->t[n - 1 - i].key, b->t[n - 1 - i].key_len, "s", TS_U8, 1, shape, 0);
    }
    roundtrip(b, 5, NULL, 0);
    tb_free(b);
}

static void test_scalars_empty_tensors_and_1024_byte_tensors_round_trip(void **state)
{
    (void)state;
    tb *b = tb_new();
    uint64_t s0[1] = {0}, s503[3] = {5, 0, 3}, s2000_0[2] = {2000, 0}, smax_0[2] = {UINT64_MAX, 0};
    uint64_t s0_huge[2] = {0, UINT64_MAX}, s1024[1] = {1024}, s128[1] = {128}, s64[1] = {64};
    uint64_t s2x512[2] = {2, 512}, s8d[8] = {2, 2, 2, 2, 2, 2, 2, 2}, s8d0[8] = {9, 9, 9, 9, 9, 9, 9, 0};
    uint64_t s4x4x4x4[4] = {4, 4, 4, 4};
    tb_add_s(b, "scalar/f32", "f", TS_F32, 0, NULL, 1);
    tb_add_s(b, "scalar/c128", "c", TS_C128, 0, NULL, 2);
    tb_add_s(b, "scalar/bool", "b", TS_BOOL, 0, NULL, 3);
    tb_add_s(b, "empty/1", "e", TS_F32, 1, s0, 4);
    tb_add_s(b, "empty/3", "e", TS_F64, 3, s503, 5);
    /* numel passes 1024 on the first dim and comes back to 0 on the next */
    tb_add_s(b, "empty/2000x0", "e", TS_U8, 2, s2000_0, 6);
    tb_add_s(b, "empty/maxx0", "e", TS_C128, 2, smax_0, 7);
    tb_add_s(b, "empty/0xmax", "e", TS_C128, 2, s0_huge, 8);
    tb_add_s(b, "full/u8", "u", TS_U8, 1, s1024, 9);
    tb_add_s(b, "full/f64", "u", TS_F64, 1, s128, 10);
    tb_add_s(b, "full/c128", "u", TS_C128, 1, s64, 11);
    tb_add_s(b, "full/2x512", "u", TS_U8, 2, s2x512, 12);
    tb_add_s(b, "full/8d", "u", TS_F32, 8, s8d, 13);
    tb_add_s(b, "empty/8d", "u", TS_C128, 8, s8d0, 14);
    tb_add_s(b, "full/4d", "u", TS_F32, 4, s4x4x4x4, 15);
    for (size_t i = 0; i < b->n; i++)
        assert_true(b->t[i].data_len <= FMT_PACK_MAX_DATA);
    assert_int_equal(b->t[8].data_len, FMT_PACK_MAX_DATA);
    assert_int_equal(pack_eligible(b->p, b->n), 1);
    roundtrip(b, 1, NULL, 0);
    /* And each alone: a frame of one record. */
    for (size_t i = 0; i < b->n; i++) {
        tb *c = tb_new();
        tb_add(c, b->t[i].key, b->t[i].key_len, b->t[i].name, b->t[i].dtype, b->t[i].ndim,
               b->t[i].shape, b->ts[i]);
        assert_int_equal(roundtrip(c, 1 + i, NULL, 0), 1);
        tb_free(c);
    }
    tb_free(b);
}

static void test_extreme_timestamps_round_trip_through_wrapping_deltas(void **state)
{
    (void)state;
    static const int64_t v[] = {INT64_MIN, INT64_MAX, INT64_MIN, INT64_MIN, -1, 0, 1, INT64_MAX,
                                INT64_MAX, -5, INT64_MIN + 1, INT64_MAX - 1, 0, 0,
                                -1700000000000000000ll, 1700000000000000000ll, INT64_MIN, 42};
    size_t nv = sizeof(v) / sizeof(v[0]);
    tb *b = tb_new();
    char key[32];
    uint64_t shape[1] = {200};
    /* Twice over, then with frames of a few records so deltas restart. */
    for (size_t i = 0; i < 2 * nv; i++) {
        snprintf(key, sizeof(key), "t/%04zu", i);
        tb_add_s(b, key, i % 2 ? "odd" : "even", TS_U8, 1, shape, v[i % nv]);
    }
    assert_true(roundtrip(b, 1, NULL, 0) > 1);
    shape[0] = 1;
    tb *c = tb_new();
    for (size_t i = 0; i < 2 * nv; i++) {
        snprintf(key, sizeof(key), "t/%04zu", i);
        tb_add_s(c, key, "one", TS_U8, 1, shape, v[(i * 7) % nv]);
    }
    assert_int_equal(roundtrip(c, 1, NULL, 0), 1);
    tb_free(c);
    tb_free(b);
}

/* Sequence numbers run to UINT64_MAX: the frame header's first_seq plus
 * the records of the frame must not be refused as an overflow while the
 * last record's seq still fits. */
static void test_first_seq_near_uint64_max_round_trips(void **state)
{
    (void)state;
    tb *b = tb_new();
    char key[32];
    uint64_t shape[1] = {300};
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "s/%03d", i);
        tb_add_s(b, key, "n", TS_U8, 1, shape, i);
    }
    assert_true(roundtrip(b, UINT64_MAX - 40, NULL, 0) > 1); /* last: UINT64_MAX - 1 */
    assert_true(roundtrip(b, UINT64_MAX - 39, NULL, 0) > 1); /* last: UINT64_MAX */
    b->n = 1;
    assert_int_equal(roundtrip(b, UINT64_MAX, NULL, 0), 1);
    assert_int_equal(roundtrip(b, (uint64_t)1 << 63, NULL, 0), 1);
    assert_int_equal(roundtrip(b, 0, NULL, 0), 1);
    tb_free(b);
}

static void test_measure_only_gives_exactly_the_written_length(void **state)
{
    (void)state;
    uint64_t len = 99;
    assert_int_equal(pack_encode(NULL, NULL, 0, 1, NULL, &len, NULL), 0);
    assert_int_equal(len, 0);
    char key[32];
    for (int n = 1; n < 300; n += 7) {
        tb *b = tb_new();
        for (int i = 0; i < n; i++) {
            uint64_t shape[1] = {(uint64_t)(i * 13 % 300)};
            snprintf(key, sizeof(key), "m/%d/%d", i % 5, i);
            tb_add_s(b, key, i % 4 ? "x" : "yy", TS_U16, 1, shape, (int64_t)i * i * 1000003);
        }
        roundtrip(b, (uint64_t)n * 1000, NULL, 0); /* checks measure == written */
        tb_free(b);
    }
}

/* ---- damage ----------------------------------------------------------- */

/* Opens the frame at buf[0..avail) and decodes every record: 0 when all
 * decode and the frame ends exactly after the last, else the error. */
static int decode_all(const uint8_t *buf, size_t avail, uint32_t *n_out)
{
    pack_dec *d = malloc(sizeof(*d));
    pack_rec r;
    const char *why = NULL;
    uint32_t flen = 0, n = 0;
    int rc = pack_open(d, buf, avail, &flen, &why);
    while (!rc && (rc = pack_next(d, &r, &why)) == 0)
        n++;
    pack_close(d);
    free(d);
    if (n_out)
        *n_out = n;
    if (rc && rc != 1)
        assert_non_null(why);
    return rc == 1 ? 0 : rc;
}

/* A sample frame: three schemas, keys sharing prefixes, data. */
static uint8_t *sample_frame(size_t *len)
{
    tb *b = tb_new();
    char key[48];
    uint64_t sh[2] = {3, 5};
    for (int i = 0; i < 24; i++) {
        snprintf(key, sizeof(key), "plant/line%d#%020d", i % 3, i);
        tb_add_s(b, key, i % 3 == 0 ? "temp" : i % 3 == 1 ? "vibration" : "p", i % 3 ? TS_I16 : TS_F32,
                 (uint32_t)(i % 3), sh, 1000 - i * 77);
    }
    uint64_t body = 0;
    pack_loc locs[24];
    assert_int_equal(pack_encode(b->p, b->ts, b->n, 500, NULL, &body, NULL), 0);
    uint8_t *buf = malloc(body);
    assert_int_equal(pack_encode(b->p, b->ts, b->n, 500, buf, &body, locs), 0);
    assert_int_equal(locs[23].frame_off, 0); /* one frame */
    *len = locs[0].frame_len;
    tb_free(b);
    return buf;
}

static void test_every_bit_flip_of_a_frame_is_rejected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *f = sample_frame(&len);
    uint32_t n = 0;
    assert_int_equal(decode_all(f, len, &n), 0);
    assert_int_equal(n, 24);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            f[i] ^= (uint8_t)(1u << bit);
            int rc = decode_all(f, len, NULL);
            if (rc != TS_ECORRUPT)
                fail_msg("flip of bit %d at byte %zu accepted (rc %d)", bit, i, rc);
            f[i] ^= (uint8_t)(1u << bit);
        }
    assert_int_equal(decode_all(f, len, NULL), 0);
    free(f);
}

/* A frame's length field is checked against what is there; and a frame cut
 * short and resealed (its CRC valid again) still fails, since its header
 * promises records that are not all there. */
static void test_every_truncation_of_a_frame_is_rejected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *f = sample_frame(&len);
    for (size_t k = 0; k < len; k++) {
        uint8_t *c = malloc(k ? k : 1); /* exactly k bytes: ASan sees an over-read */
        memcpy(c, f, k);
        assert_int_equal(decode_all(c, k, NULL), TS_ECORRUPT);
        free(c);
    }
    for (size_t k = 4; k + 4 < len; k++) {
        uint8_t *c = malloc(k + 4);
        memcpy(c, f, k);
        put32(c, (uint32_t)k);
        put32(c + k, crc32c(c, k));
        assert_int_equal(decode_all(c, k + 4, NULL), TS_ECORRUPT);
        free(c);
    }
    free(f);
}

/* ---- hand-built frames with a valid CRC ------------------------------- */

typedef struct fb {
    uint8_t b[FMT_FRAME_MAX_LEN + 64];
    size_t len;
} fb;

static fb *fb_new(uint64_t n_records, uint64_t first_seq, uint64_t n_schemas)
{
    fb *f = calloc(1, sizeof(*f));
    f->len = 4;
    f->len = (size_t)(fmt_put_varint(f->b + f->len, n_records) - f->b);
    f->len = (size_t)(fmt_put_varint(f->b + f->len, first_seq) - f->b);
    f->len = (size_t)(fmt_put_varint(f->b + f->len, n_schemas) - f->b);
    return f;
}
static void fb_v(fb *f, uint64_t v) { f->len = (size_t)(fmt_put_varint(f->b + f->len, v) - f->b); }
static void fb_u8(fb *f, uint8_t v) { f->b[f->len++] = v; }
static void fb_mem(fb *f, const void *p, size_t n)
{
    memcpy(f->b + f->len, p, n);
    f->len += n;
}
static void fb_fill(fb *f, uint8_t c, size_t n)
{
    memset(f->b + f->len, c, n);
    f->len += n;
}
/* A schema: name, dtype, ndim, dims. */
static void fb_schema(fb *f, const char *name, size_t name_len, uint8_t dt, uint8_t ndim,
                      const uint64_t *shape)
{
    fb_v(f, name_len);
    fb_mem(f, name, name_len);
    fb_u8(f, dt);
    fb_u8(f, ndim);
    for (uint8_t d = 0; d < ndim; d++)
        fb_v(f, shape[d]);
}
/* A record's header: schema (or "same as the previous record" when < 0),
 * the key as (shared, suffix) or (same_len, suffix), the timestamp delta. */
static void fb_rec(fb *f, int schema, int same_len, uint64_t shared, const char *suffix,
                   size_t suffix_len, int64_t dts)
{
    fb_v(f, (uint64_t)suffix_len << 2 | (uint64_t)(same_len != 0) << 1 | (uint64_t)(schema < 0));
    if (schema >= 0)
        fb_v(f, (uint64_t)schema);
    if (!same_len)
        fb_v(f, shared);
    fb_mem(f, suffix, suffix_len);
    fb_v(f, fmt_zigzag(dts));
}
/* Writes the length field and the CRC; returns the frame length. */
static size_t fb_seal(fb *f)
{
    put32(f->b, (uint32_t)f->len);
    put32(f->b + f->len, crc32c(f->b, f->len));
    f->len += 4;
    return f->len;
}
/* Seals f, decodes it from an allocation of exactly its length, frees f. */
static int fb_check(fb *f, uint32_t *n)
{
    size_t len = fb_seal(f);
    uint8_t *c = malloc(len);
    memcpy(c, f->b, len);
    free(f);
    int rc = decode_all(c, len, n);
    free(c);
    return rc;
}

static const uint64_t SH4[1] = {4};

/* The builder itself: a frame it builds by the rules decodes as written. */
static void test_hand_built_frame_decodes_as_written(void **state)
{
    (void)state;
    fb *f = fb_new(4, 10, 2);
    fb_schema(f, "temp", 4, TS_U8, 1, SH4);
    fb_schema(f, "vib", 3, TS_I16, 0, NULL);
    fb_rec(f, 0, 0, 0, "abc", 3, -5);
    fb_fill(f, 1, 4);
    fb_rec(f, -1, 1, 0, "d", 1, 7);        /* "abd": same schema, same length */
    fb_fill(f, 2, 4);
    fb_rec(f, 1, 0, 0, "zz", 2, 0);
    fb_fill(f, 3, 2);
    fb_rec(f, 0, 0, 2, "cdef", 4, INT64_MIN); /* "ab" + "cdef" against "abd" */
    fb_fill(f, 4, 4);
    size_t len = fb_seal(f);
    pack_dec *d = malloc(sizeof(*d));
    pack_rec r;
    const char *why;
    uint32_t flen;
    assert_int_equal(pack_open(d, f->b, len, &flen, &why), 0);
    assert_int_equal(flen, len);
    assert_int_equal(pack_next(d, &r, &why), 0);
    assert_int_equal(r.seq, 10);
    assert_true(r.timestamp_ns == -5);
    assert_int_equal(r.key_len, 3);
    assert_memory_equal(r.key, "abc", 3);
    assert_int_equal(r.data_len, 4);
    assert_int_equal(pack_next(d, &r, &why), 0);
    assert_memory_equal(r.key, "abd", 3);
    assert_true(r.timestamp_ns == 2);
    assert_int_equal(pack_next(d, &r, &why), 0);
    assert_int_equal(r.key_len, 2);
    assert_int_equal(r.dtype, TS_I16);
    assert_int_equal(r.ndim, 0);
    assert_int_equal(r.data_len, 2);
    assert_int_equal(pack_next(d, &r, &why), 0);
    assert_int_equal(r.seq, 13);
    assert_int_equal(r.key_len, 6);
    assert_memory_equal(r.key, "abcdef", 6);
    assert_true(r.timestamp_ns == (int64_t)((uint64_t)2 + (uint64_t)INT64_MIN));
    assert_memory_equal(r.data, "\4\4\4\4", 4);
    assert_int_equal(pack_next(d, &r, &why), 1);
    pack_close(d);
    free(d);
    free(f);
}

/* One good record of schema 0 (u8[4]) under key "k". */
static fb *one_schema(uint64_t n_records)
{
    fb *f = fb_new(n_records, 1, 1);
    fb_schema(f, "s", 1, TS_U8, 1, SH4);
    return f;
}

static void test_crafted_record_fields_out_of_range_are_corrupt(void **state)
{
    (void)state;
    fb *f;
    uint32_t n;
    char big[TS_MAX_KEY_LEN + 1];
    memset(big, 'k', sizeof(big));
    /* schema index: 0 of 1 is fine, 1 is not */
    f = one_schema(1), fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, &n), 0);
    assert_int_equal(n, 1);
    f = one_schema(1), fb_rec(f, 1, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    f = one_schema(1), fb_rec(f, 64, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* "same schema as the previous record" on the first record */
    f = one_schema(1), fb_rec(f, -1, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* shared: up to the previous key's length, not past it */
    f = one_schema(2), fb_rec(f, 0, 0, 0, "ab", 2, 0), fb_fill(f, 0, 4);
    fb_rec(f, -1, 0, 2, "x", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), 0);
    f = one_schema(2), fb_rec(f, 0, 0, 0, "ab", 2, 0), fb_fill(f, 0, 4);
    fb_rec(f, -1, 0, 3, "x", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* shared counts against the key of the same schema, not the previous
     * record's: schema 1's first record shares nothing */
    f = fb_new(2, 1, 2);
    fb_schema(f, "s", 1, TS_U8, 1, SH4), fb_schema(f, "t", 1, TS_U8, 1, SH4);
    fb_rec(f, 0, 0, 0, "abc", 3, 0), fb_fill(f, 0, 4);
    fb_rec(f, 1, 0, 1, "x", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* same_len with no previous key of that schema: empty key or overrun */
    f = one_schema(1), fb_rec(f, 0, 1, 0, "", 0, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    f = one_schema(1), fb_rec(f, 0, 1, 0, "kk", 2, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* same_len with a suffix longer than the previous key */
    f = one_schema(2), fb_rec(f, 0, 0, 0, "ab", 2, 0), fb_fill(f, 0, 4);
    fb_rec(f, -1, 1, 0, "xyz", 3, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* key length 0 */
    f = one_schema(1), fb_rec(f, 0, 0, 0, "", 0, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* key length 1024 is fine, 1025 is not (whole, or shared + suffix) */
    f = one_schema(1), fb_rec(f, 0, 0, 0, big, TS_MAX_KEY_LEN, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), 0);
    f = one_schema(1), fb_rec(f, 0, 0, 0, big, TS_MAX_KEY_LEN + 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    f = one_schema(2), fb_rec(f, 0, 0, 0, big, TS_MAX_KEY_LEN, 0), fb_fill(f, 0, 4);
    fb_rec(f, -1, 0, TS_MAX_KEY_LEN, "x", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* a suffix running past the frame */
    f = one_schema(1), fb_v(f, (uint64_t)3000 << 2), fb_v(f, 0), fb_v(f, 0), fb_fill(f, 'k', 10);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* data past the end of the frame: 3 of 4 bytes */
    f = one_schema(1), fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 3);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* a timestamp varint cut by the frame's end, or over 10 bytes */
    f = one_schema(1), fb_v(f, 1 << 2), fb_v(f, 0), fb_v(f, 0), fb_u8(f, 'k'), fb_u8(f, 0x80);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    f = one_schema(1), fb_v(f, 1 << 2), fb_v(f, 0), fb_v(f, 0), fb_u8(f, 'k');
    fb_fill(f, 0xff, 10), fb_u8(f, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* bytes after the last record */
    f = one_schema(1), fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 4), fb_u8(f, 0);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* fewer records than the header says */
    f = one_schema(2), fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
}

static void test_crafted_frame_headers_and_schemas_out_of_range_are_corrupt(void **state)
{
    (void)state;
    fb *f;
    char name[TS_MAX_NAME_LEN + 1];
    memset(name, 'n', sizeof(name));
    /* n_records 0 */
    f = fb_new(0, 1, 1), fb_schema(f, "s", 1, TS_U8, 1, SH4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* n_schemas 0 */
    f = fb_new(1, 1, 0), fb_rec(f, 0, 0, 0, "k", 1, 0);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* more schemas than records */
    f = fb_new(1, 1, 2), fb_schema(f, "s", 1, TS_U8, 1, SH4), fb_schema(f, "t", 1, TS_U8, 1, SH4);
    fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* 64 schemas: fine; 65: not */
    for (int ns = 64; ns <= 65; ns++) {
        f = fb_new((uint64_t)ns, 1, (uint64_t)ns);
        for (int s = 0; s < ns; s++) {
            char nm[8];
            snprintf(nm, sizeof(nm), "s%02d", s);
            fb_schema(f, nm, 3, TS_U8, 0, NULL);
        }
        for (int s = 0; s < ns; s++)
            fb_rec(f, s, 0, 0, "k", 1, 0), fb_u8(f, 7);
        assert_int_equal(fb_check(f, NULL), ns == 64 ? 0 : TS_ECORRUPT);
    }
    /* seqs: the last record's may be UINT64_MAX, not past it */
    f = fb_new(2, UINT64_MAX - 1, 1), fb_schema(f, "s", 1, TS_U8, 0, NULL);
    fb_rec(f, 0, 0, 0, "k", 1, 0), fb_u8(f, 0), fb_rec(f, -1, 1, 0, "j", 1, 0), fb_u8(f, 0);
    assert_int_equal(fb_check(f, NULL), 0);
    f = fb_new(2, UINT64_MAX, 1), fb_schema(f, "s", 1, TS_U8, 0, NULL);
    fb_rec(f, 0, 0, 0, "k", 1, 0), fb_u8(f, 0), fb_rec(f, -1, 1, 0, "j", 1, 0), fb_u8(f, 0);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* name of 1024 bytes: fine; 1025: not */
    for (size_t nl = TS_MAX_NAME_LEN; nl <= TS_MAX_NAME_LEN + 1; nl++) {
        f = fb_new(1, 1, 1), fb_schema(f, name, nl, TS_U8, 1, SH4);
        fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, 4);
        assert_int_equal(fb_check(f, NULL), nl == TS_MAX_NAME_LEN ? 0 : TS_ECORRUPT);
    }
    /* a name running past the frame */
    f = fb_new(1, 1, 1), fb_v(f, 500), fb_fill(f, 'n', 20);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* dtypes: 1..15 exist, 0 and 16 do not */
    for (int dt = 0; dt <= 16; dt++) {
        f = fb_new(1, 1, 1), fb_schema(f, "s", 1, (uint8_t)dt, 0, NULL);
        fb_rec(f, 0, 0, 0, "k", 1, 0), fb_fill(f, 0, ts_dtype_size((ts_dtype)dt));
        assert_int_equal(fb_check(f, NULL), dt >= 1 && dt <= 15 ? 0 : TS_ECORRUPT);
    }
    f = fb_new(1, 1, 1), fb_schema(f, "s", 1, 0xff, 0, NULL), fb_rec(f, 0, 0, 0, "k", 1, 0);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* rank 8: fine; 9: not */
    uint64_t ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    f = fb_new(1, 1, 1), fb_schema(f, "s", 1, TS_U8, 8, ones), fb_rec(f, 0, 0, 0, "k", 1, 0);
    fb_u8(f, 0);
    assert_int_equal(fb_check(f, NULL), 0);
    f = fb_new(1, 1, 1), fb_schema(f, "s", 1, TS_U8, 9, ones), fb_rec(f, 0, 0, 0, "k", 1, 0);
    fb_u8(f, 0);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* a dim varint cut by the end of the frame */
    f = fb_new(1, 1, 1), fb_v(f, 1), fb_u8(f, 's'), fb_u8(f, TS_U8), fb_u8(f, 2), fb_v(f, 3);
    fb_u8(f, 0x80);
    assert_int_equal(fb_check(f, NULL), TS_ECORRUPT);
    /* data size: 1024 bytes fine; 1025, or any dims whose product passes
     * 1024 elements (even on the way, before a 0), not */
    static const struct {
        uint8_t dt, ndim;
        uint64_t shape[3];
        int ok;
    } sz[] = {
        {TS_U8, 1, {1024}, 1},           {TS_U8, 1, {1025}, 0},
        {TS_F32, 1, {256}, 1},           {TS_F32, 1, {257}, 0},
        {TS_C128, 1, {64}, 1},           {TS_C128, 1, {65}, 0},
        {TS_C128, 0, {0}, 1},            {TS_U8, 2, {32, 32}, 1},
        {TS_U8, 2, {32, 33}, 0},         {TS_U8, 2, {1ull << 32, 1ull << 32}, 0},
        {TS_U8, 3, {1ull << 40, 1ull << 40, 2}, 0},
        {TS_U8, 2, {UINT64_MAX, UINT64_MAX}, 0},
        {TS_U8, 3, {UINT64_MAX, UINT64_MAX, 0}, 1}, /* zero elements */
        {TS_F64, 2, {0, UINT64_MAX}, 1},
    };
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        uint64_t numel = 1;
        for (int d = 0; d < sz[i].ndim; d++)
            numel = sz[i].shape[d] == 0 ? 0 : numel * (sz[i].shape[d] > 4096 ? 1 : sz[i].shape[d]);
        f = fb_new(1, 1, 1), fb_schema(f, "s", 1, sz[i].dt, sz[i].ndim, sz[i].shape);
        fb_rec(f, 0, 0, 0, "k", 1, 0);
        if (sz[i].ok)
            fb_fill(f, 0, (size_t)numel * ts_dtype_size((ts_dtype)sz[i].dt));
        else
            fb_fill(f, 0, 2048);
        int rc = fb_check(f, NULL);
        if (rc != (sz[i].ok ? 0 : TS_ECORRUPT))
            fail_msg("schema case %zu: rc %d", i, rc);
    }
    /* frame length field: under the 11-byte minimum, or over 64 KiB */
    uint8_t small[16] = {0};
    put32(small, 6);
    put32(small + 6, crc32c(small, 6));
    assert_int_equal(decode_all(small, 10, NULL), TS_ECORRUPT);
    uint8_t *huge = calloc(1, FMT_FRAME_MAX_LEN + 8);
    put32(huge, FMT_FRAME_MAX_LEN - 3);
    put32(huge + FMT_FRAME_MAX_LEN + 1, crc32c(huge, FMT_FRAME_MAX_LEN + 1));
    assert_int_equal(decode_all(huge, FMT_FRAME_MAX_LEN + 8, NULL), TS_ECORRUPT);
    free(huge);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_eligible_takes_tensors_up_to_1024_bytes),
        cmocka_unit_test(test_one_schema_round_trips_and_codes_keys_against_the_previous),
        cmocka_unit_test(test_interleaved_topics_round_trip_each_key_coded_against_its_own_topic),
        cmocka_unit_test(test_64_schemas_fit_one_frame_and_a_65th_starts_the_next),
        cmocka_unit_test(test_frames_close_once_they_reach_4_kib),
        cmocka_unit_test(test_frames_split_the_same_whatever_the_timestamps),
        cmocka_unit_test(test_keys_of_1_and_1024_bytes_and_prefix_keys_round_trip),
        cmocka_unit_test(test_scalars_empty_tensors_and_1024_byte_tensors_round_trip),
        cmocka_unit_test(test_extreme_timestamps_round_trip_through_wrapping_deltas),
        cmocka_unit_test(test_first_seq_near_uint64_max_round_trips),
        cmocka_unit_test(test_measure_only_gives_exactly_the_written_length),
        cmocka_unit_test(test_every_bit_flip_of_a_frame_is_rejected),
        cmocka_unit_test(test_every_truncation_of_a_frame_is_rejected),
        cmocka_unit_test(test_hand_built_frame_decodes_as_written),
        cmocka_unit_test(test_crafted_record_fields_out_of_range_are_corrupt),
        cmocka_unit_test(test_crafted_frame_headers_and_schemas_out_of_range_are_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
