/*
 * test_codec.c -- the pure codecs under core/src: CRC-32C against published
 * vectors, record and batch encoding and their damage detection, the
 * MANIFEST range encoding, the MemTable's ordering, dtypes and keys.
 */
#include "crc32c.h"
#include "format.h"
#include "manifest.h"
#include "memtable.h"
#include "record.h"

#include "embeddb/tensor_store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void test_crc32c_matches_published_vectors(void **state)
{
    (void)state;
    uint8_t buf[32];
    assert_int_equal(crc32c("123456789", 9), 0xe3069283u);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(crc32c(buf, 32), 0x8a9136aau); /* RFC 3720 B.4 */
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(crc32c(buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(crc32c(buf, 32), 0x46dd794eu);
    /* Extending in pieces equals one pass. */
    assert_int_equal(crc32c_extend(crc32c(buf, 5), buf + 5, 27), 0x46dd794eu);
}

static void test_crc32c_blocks_equal_per_block_crcs(void **state)
{
    (void)state;
    size_t len = 7 * 4096 + 123;
    uint8_t *buf = malloc(len);
    uint32_t out[8];
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    crc32c_blocks(buf, len, 4096, out);
    for (size_t b = 0; b < 8; b++) {
        size_t n = b < 7 ? 4096 : 123;
        assert_int_equal(out[b], crc32c(buf + b * 4096, n));
    }
    free(buf);
}

/* Bit by bit, straight from the definition: the reference for the fast
 * paths (slicing-by-8, the CRC instruction, three interleaved streams). */
static uint32_t crc_bitwise(const uint8_t *p, size_t len)
{
    uint32_t c = ~0u;
    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c_every_length_and_alignment_matches_bitwise(void **state)
{
    (void)state;
    size_t cap = 2 * 3 * 1360 + 3 * 3 * 256 + 64;
    uint8_t *buf = malloc(cap + 8);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < cap + 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    /* Both sides of every threshold: 8-byte words, a three-stream round of
     * 256-byte spans (768 bytes) and of 1360-byte spans (4080), and their
     * sums; every start alignment. */
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= cap;
             len += (len < 40 || (len % 4080 % 768) < 24 || (len % 4080 % 768) > 744 ||
                     (len % 4080) < 24 || (len % 4080) > 4056) ? 1 : 37) {
            uint32_t want = crc_bitwise(buf + off, len);
            assert_int_equal(crc32c(buf + off, len), want);
            /* and in two pieces, split anywhere */
            size_t cut = len / 3;
            assert_int_equal(crc32c_extend(crc32c(buf + off, cut), buf + off + cut, len - cut), want);
        }
    free(buf);
}

static void test_record_roundtrip_and_every_header_byte_is_checked(void **state)
{
    (void)state;
    uint16_t data[6 * 700];
    for (size_t i = 0; i < 6 * 700; i++)
        data[i] = (uint16_t)i;
    ts_tensor t = {.key = (const uint8_t *)"sensor/1", .key_len = 8, .name = "imu", .dtype = TS_U16,
                   .ndim = 2, .shape = {6, 700}, .data = data, .data_len = sizeof(data)};
    uint32_t hdr_len;
    uint64_t rec_len;
    assert_int_equal(rec_size(&t, &hdr_len, &rec_len), 0);
    assert_int_equal(hdr_len % 8, 0);
    assert_int_equal(rec_len, hdr_len + sizeof(data)); /* 8400 is 8-aligned */
    uint8_t *buf = malloc(hdr_len);
    assert_int_equal(rec_encode(&t, 77, 123456789, buf, hdr_len), 0);
    rec_meta m;
    size_t need = 0;
    const char *why = NULL;
    assert_int_equal(rec_parse(buf, FMT_REC_FIXED_LEN - 1, &m, &need, &why), REC_SHORT);
    assert_int_equal(rec_parse(buf, FMT_REC_FIXED_LEN, &m, &need, &why), REC_SHORT);
    assert_int_equal(need, hdr_len);
    assert_int_equal(rec_parse(buf, hdr_len, &m, &need, &why), 0);
    assert_int_equal(m.seq, 77);
    assert_int_equal(m.timestamp_ns, 123456789);
    assert_int_equal(m.dtype, TS_U16);
    assert_int_equal(m.shape[1], 700);
    assert_memory_equal(m.key, "sensor/1", 8);
    assert_memory_equal(m.name, "imu", 3);
    assert_int_equal(m.n_blocks, 3);
    uint64_t bad = 0;
    assert_int_equal(rec_verify_data(&m, (const uint8_t *)data, sizeof(data), &bad), 0);
    /* A preview's partial read checks only the whole blocks it holds. */
    assert_int_equal(rec_verify_data(&m, (const uint8_t *)data, 4096 + 10, &bad), 0);
    ((uint8_t *)data)[5000] ^= 1;
    assert_int_equal(rec_verify_data(&m, (const uint8_t *)data, sizeof(data), &bad), TS_ECORRUPT);
    assert_int_equal(bad, 4096);
    for (uint32_t i = 0; i < hdr_len; i++) {
        buf[i] ^= 0x10;
        int rc = rec_parse(buf, hdr_len, &m, &need, &why);
        assert_true(rc != 0);
        buf[i] ^= 0x10;
    }
    free(buf);
}

static void test_batch_header_detects_damage(void **state)
{
    (void)state;
    uint8_t h[32];
    batch_hdr b = {.n_records = 3, .body_len = 9004, .first_seq = 41}, out;
    /* Bodies are whole multiples of 8. */
    rec_batch_encode(&b, h);
    assert_int_equal(rec_batch_parse(h, &out), TS_ECORRUPT);
    b.body_len = 9008;
    rec_batch_encode(&b, h);
    assert_int_equal(rec_batch_parse(h, &out), 0);
    assert_int_equal(out.n_records, 3);
    assert_int_equal(out.body_len, 9008);
    assert_int_equal(out.kind, FMT_BATCH_PLAIN);
    assert_int_equal(out.first_seq, 41);
    for (int i = 0; i < 32; i++) {
        h[i] ^= 0x01;
        assert_int_equal(rec_batch_parse(h, &out), TS_ECORRUPT);
        h[i] ^= 0x01;
    }
    /* A packed batch's records may be as short as 2 bytes; no kind past 1. */
    b = (batch_hdr){.n_records = 8, .body_len = 16, .first_seq = 1, .kind = FMT_BATCH_PACKED};
    rec_batch_encode(&b, h);
    assert_int_equal(rec_batch_parse(h, &out), 0);
    assert_int_equal(out.kind, FMT_BATCH_PACKED);
    b.n_records = 9;
    rec_batch_encode(&b, h);
    assert_int_equal(rec_batch_parse(h, &out), TS_ECORRUPT);
    b = (batch_hdr){.n_records = 1, .body_len = 64, .first_seq = 1, .kind = 2};
    rec_batch_encode(&b, h);
    assert_int_equal(rec_batch_parse(h, &out), TS_ECORRUPT);
    uint64_t no = 0, base = 0;
    uint32_t version = 0;
    seg_hdr_encode(12, 99, h);
    assert_int_equal(seg_hdr_parse(h, &no, &base, &version), 0);
    assert_int_equal(no, 12);
    assert_int_equal(base, 99);
    assert_int_equal(version, FMT_VERSION);
    h[9] ^= 1;
    assert_int_equal(seg_hdr_parse(h, &no, &base, NULL), TS_ECORRUPT);
}

static void test_manifest_stores_ranges_and_rejects_damage(void **state)
{
    (void)state;
    uint64_t live[] = {0, 1, 2, 3, 7, 9, 10};
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    uint64_t wal = 0, *got = NULL;
    const char *why = NULL;
    assert_int_equal(man_encode(live, 7, 11, &buf, &len), 0);
    assert_int_equal(len, FMT_MAN_FIXED_LEN + 3 * 16 + 4); /* 3 ranges */
    assert_int_equal(man_decode(buf, len, &wal, &got, &n, &why), 0);
    assert_int_equal(wal, 11);
    assert_int_equal(n, 7);
    assert_memory_equal(got, live, sizeof(live));
    free(got);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x40;
        assert_int_equal(man_decode(buf, len, &wal, &got, &n, &why), TS_ECORRUPT);
        assert_null(got);
        buf[i] ^= 0x40;
    }
    assert_int_equal(man_decode(buf, len - 1, &wal, &got, &n, &why), TS_ECORRUPT);
    free(buf);
    /* A live SST numbered at or above the open WAL is impossible. */
    uint64_t bad[] = {5};
    assert_int_equal(man_encode(bad, 1, 5, &buf, &len), 0);
    assert_int_equal(man_decode(buf, len, &wal, &got, &n, &why), TS_ECORRUPT);
    free(buf);
}

static void test_memtable_sorted_view_and_overwrite(void **state)
{
    (void)state;
    memtable mt;
    mt_init(&mt);
    char key[16];
    for (int i = 999; i >= 0; i--) {
        int len = snprintf(key, sizeof(key), "k%03d", (i * 7) % 1000);
        mt_entry v = {.rec_off = (uint64_t)i, .rec_len = 10, .hdr_len = 8, .seq = (uint64_t)i,
                      .dtype = 3};
        assert_int_equal(mt_put(&mt, (uint8_t *)key, (size_t)len, &v), 0);
    }
    mt_entry v = {.rec_off = 5555, .rec_len = 10, .hdr_len = 8, .seq = 2000, .dtype = 3};
    assert_int_equal(mt_put(&mt, (const uint8_t *)"k005", 4, &v), 0);
    assert_int_equal(mt.n, 1000);
    const mt_entry *e = mt_get(&mt, (const uint8_t *)"k005", 4);
    assert_non_null(e);
    assert_int_equal(e->rec_off, 5555);
    assert_null(mt_get(&mt, (const uint8_t *)"k1000", 5));
    size_t n = 0;
    uint32_t *order = mt_sorted(&mt, &n);
    assert_int_equal(n, 1000);
    for (size_t i = 1; i < n; i++) {
        const mt_entry *a = &mt.entries[order[i - 1]], *b = &mt.entries[order[i]];
        assert_true(mt_key_cmp(mt_key(&mt, a), a->key_len, mt_key(&mt, b), b->key_len) < 0);
    }
    free(order);
    mt_clear(&mt);
    assert_null(mt_get(&mt, (const uint8_t *)"k005", 4));
    mt_free(&mt);
}

static void test_key_cmp_orders_bytewise_shorter_first(void **state)
{
    (void)state;
    assert_true(mt_key_cmp((const uint8_t *)"ab", 2, (const uint8_t *)"abc", 3) < 0);
    assert_true(mt_key_cmp((const uint8_t *)"b", 1, (const uint8_t *)"abc", 3) > 0);
    assert_true(mt_key_cmp((const uint8_t *)"\xff", 1, (const uint8_t *)"\x01", 1) > 0);
    uint8_t a[8], b[8];
    uint64_t v = 0;
    ts_key_from_u64(101, a);
    ts_key_from_u64(202, b);
    assert_true(mt_key_cmp(a, 8, b, 8) < 0);
    ts_key_from_u64(1ull << 40, b);
    assert_true(mt_key_cmp(a, 8, b, 8) < 0);
    assert_int_equal(ts_key_to_u64(b, 8, &v), 1);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(ts_key_to_u64(b, 7, &v), 0);
}

static void test_dtype_names_sizes_and_values(void **state)
{
    (void)state;
    ts_dtype d;
    assert_int_equal(ts_dtype_parse("float32", &d), 0);
    assert_int_equal(d, TS_F32);
    assert_int_equal(ts_dtype_parse("bf16", &d), 0);
    assert_int_equal(ts_dtype_size(d), 2);
    assert_int_equal(ts_dtype_parse("complex128", &d), 0);
    assert_int_equal(ts_dtype_size(d), 16);
    assert_int_equal(ts_dtype_parse("float128", &d), TS_EINVAL);
    assert_int_equal(ts_dtype_size((ts_dtype)0), 0);
    assert_null(ts_dtype_name((ts_dtype)77));
    uint16_t h[3] = {0x3c00, 0xc000, 0x3555}; /* 1.0, -2.0, ~0.333 */
    assert_true(ts_dtype_get(TS_F16, h, 0) == 1.0);
    assert_true(ts_dtype_get(TS_F16, h, 1) == -2.0);
    assert_true(ts_dtype_get(TS_F16, h, 2) > 0.333 && ts_dtype_get(TS_F16, h, 2) < 0.334);
    uint16_t bf = 0x3fc0; /* 1.5 */
    assert_true(ts_dtype_get(TS_BF16, &bf, 0) == 1.5);
    int64_t big = -5;
    assert_true(ts_dtype_get(TS_I64, &big, 0) == -5.0);
}

static void test_dtype_set_converts_and_checks_range(void **state)
{
    (void)state;
    uint8_t buf[16];
    assert_int_equal(ts_dtype_set(TS_I8, buf, 0, -128), 0);
    assert_true(ts_dtype_get(TS_I8, buf, 0) == -128);
    assert_int_equal(ts_dtype_set(TS_I8, buf, 0, 128), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_U16, buf, 1, 1.5), TS_EINVAL);
    assert_int_equal(ts_dtype_set(TS_U16, buf, 1, 65535), 0);
    assert_true(ts_dtype_get(TS_U16, buf, 1) == 65535);
    assert_int_equal(ts_dtype_set(TS_BOOL, buf, 0, 2), TS_EOVERFLOW);
    for (double v = -65000; v <= 65000; v += 0.37) {
        /* Half and bfloat16 round to nearest: the error stays within half
         * an ulp of the target format. */
        assert_int_equal(ts_dtype_set(TS_F16, buf, 0, v), 0);
        double h = ts_dtype_get(TS_F16, buf, 0);
        if (fabs(v) < 65504)
            assert_true(fabs(h - v) <= fabs(v) / 2048 + 3e-8);
        assert_int_equal(ts_dtype_set(TS_BF16, buf, 0, v), 0);
        assert_true(fabs(ts_dtype_get(TS_BF16, buf, 0) - v) <= fabs(v) / 256 + 1e-30);
    }
    assert_int_equal(ts_dtype_set(TS_C64, buf, 0, 2.5), 0);
    assert_true(ts_dtype_get(TS_C64, buf, 0) == 2.5);
    assert_int_equal(ts_dtype_set((ts_dtype)77, buf, 0, 1), TS_EINVAL);
    /* 2^63 and 2^64 are one past the largest integers; as doubles they are
     * exactly what INT64_MAX/UINT64_MAX would round to. */
    assert_int_equal(ts_dtype_set(TS_I64, buf, 0, 9223372036854775808.0), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_U64, buf, 0, 18446744073709551616.0), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_I64, buf, 0, -9223372036854775808.0), 0);
    assert_int_equal(ts_dtype_set(TS_F32, buf, 0, 1e39), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_F16, buf, 0, 70000), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_F16, buf, 0, 65504), 0);
    assert_int_equal(ts_dtype_set(TS_BF16, buf, 0, 1e39), TS_EOVERFLOW);
    assert_int_equal(ts_dtype_set(TS_F32, buf, 0, INFINITY), 0); /* inf stays inf */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_published_vectors),
        cmocka_unit_test(test_crc32c_blocks_equal_per_block_crcs),
        cmocka_unit_test(test_crc32c_every_length_and_alignment_matches_bitwise),
        cmocka_unit_test(test_record_roundtrip_and_every_header_byte_is_checked),
        cmocka_unit_test(test_batch_header_detects_damage),
        cmocka_unit_test(test_manifest_stores_ranges_and_rejects_damage),
        cmocka_unit_test(test_memtable_sorted_view_and_overwrite),
        cmocka_unit_test(test_key_cmp_orders_bytewise_shorter_first),
        cmocka_unit_test(test_dtype_names_sizes_and_values),
        cmocka_unit_test(test_dtype_set_converts_and_checks_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
