/*
 * test_payload.c -- the agent's payload decoders: .npy files written by real
 * NumPy (committed samples), every dtype through hand-built v1/v2 headers,
 * raw/json/csv, and each rejection class with its reason.
 */
#include "payload.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static size_t slurp(const char *name, uint8_t *buf, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", NUMPY_SAMPLES, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static payload_err decode(payload_format f, const void *buf, size_t len, payload_tensor *t,
                          char *why)
{
    payload_spec spec = {.format = f, .max_payload = 1 << 20};
    return payload_decode(&spec, buf, len, t, why, 256);
}

/* A .npy image as NumPy writes it: header padded to 64 bytes, newline. */
static size_t make_npy(uint8_t *out, int version, const char *descr, const char *order,
                       const char *shape, const void *data, size_t data_len)
{
    char dict[256];
    int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }",
                     descr, order, shape);
    size_t pre = version == 1 ? 10 : 12;
    size_t total = (pre + (size_t)n + 1 + 63) / 64 * 64;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)version;
    out[7] = 0;
    size_t hlen = total - pre;
    out[8] = (uint8_t)hlen;
    out[9] = (uint8_t)(hlen >> 8);
    if (version != 1) {
        out[10] = 0;
        out[11] = 0;
    }
    memcpy(out + pre, dict, (size_t)n);
    memset(out + pre + n, ' ', total - pre - (size_t)n - 1);
    out[total - 1] = '\n';
    memcpy(out + total, data, data_len);
    return total + data_len;
}

static void test_npy_written_by_numpy_decodes(void **state)
{
    (void)state;
    uint8_t buf[4096];
    payload_tensor t;
    char why[256];
    size_t n = slurp("f32.npy", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_NPY, buf, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_F32);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.data_len, 24);
    assert_true(((float *)t.data)[5] == 5.0f);
    payload_free(&t);
    n = slurp("u8_1d.npy", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_NPY, buf, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.shape[0], 5);
    assert_int_equal(t.data[4], 4);
    payload_free(&t);
}

static void test_npy_big_endian_and_fortran_are_refused_with_reason(void **state)
{
    (void)state;
    uint8_t buf[4096];
    payload_tensor t;
    char why[256];
    size_t n = slurp("big.npy", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_NPY, buf, n, &t, why), PAYLOAD_UNSUPPORTED);
    assert_non_null(strstr(why, "big-endian"));
    assert_null(t.data);
    n = slurp("fortran.npy", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_NPY, buf, n, &t, why), PAYLOAD_UNSUPPORTED);
    assert_non_null(strstr(why, "Fortran"));
}

static void test_npy_every_dtype_v1_and_v2(void **state)
{
    (void)state;
    static const struct {
        const char *descr;
        ts_dtype dt;
    } all[] = {{"<f2", TS_F16}, {"<f4", TS_F32}, {"<f8", TS_F64}, {"|i1", TS_I8},
               {"<i2", TS_I16}, {"<i4", TS_I32}, {"<i8", TS_I64}, {"|u1", TS_U8},
               {"<u2", TS_U16}, {"<u4", TS_U32}, {"<u8", TS_U64}, {"|b1", TS_BOOL},
               {"<c8", TS_C64}, {"<c16", TS_C128}};
    uint8_t data[6 * 16], img[512];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13);
    for (int version = 1; version <= 2; version++) {
        for (size_t d = 0; d < sizeof(all) / sizeof(all[0]); d++) {
            size_t len = 6 * ts_dtype_size(all[d].dt);
            size_t n = make_npy(img, version, all[d].descr, "False", "(2, 3)", data, len);
            payload_tensor t;
            char why[256];
            assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_OK);
            assert_int_equal(t.dtype, all[d].dt);
            assert_int_equal(t.data_len, len);
            assert_memory_equal(t.data, data, len);
            payload_free(&t);
        }
    }
}

static void test_npy_damage_is_malformed_or_mismatch(void **state)
{
    (void)state;
    uint8_t img[512], data[24] = {0};
    payload_tensor t;
    char why[256];
    size_t n = make_npy(img, 1, "<f4", "False", "(2, 3)", data, 24);
    assert_int_equal(decode(PAYLOAD_NPY, img, n - 1, &t, why), PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "needs 24"));
    assert_int_equal(decode(PAYLOAD_NPY, img, 9, &t, why), PAYLOAD_MALFORMED);
    img[8] = 0xff; /* header longer than the payload */
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_MALFORMED);
    n = make_npy(img, 1, "<f4", "False", "(2, 3", data, 24);
    assert_true(decode(PAYLOAD_NPY, img, n, &t, why) != PAYLOAD_OK);
    n = make_npy(img, 1, "<U4", "False", "(2,)", data, 16);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_UNSUPPORTED);
    n = make_npy(img, 1, "<f4", "False", "(99999999999, 99999999999, 99999999999)", data, 24);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_MISMATCH);
    n = make_npy(img, 1, "<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)", data, 4);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_UNSUPPORTED);
    img[6] = 9;
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_UNSUPPORTED);
}

static void test_raw_uses_configured_dtype_and_shape(void **state)
{
    (void)state;
    int16_t v[6] = {1, -2, 3, -4, 5, -6};
    payload_spec spec = {.format = PAYLOAD_RAW, .dtype = TS_I16, .has_shape = 1, .ndim = 2,
                         .shape = {3, 2}};
    payload_tensor t;
    char why[256];
    assert_int_equal(payload_decode(&spec, v, sizeof(v), &t, why, sizeof(why)), PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_I16);
    assert_int_equal(t.shape[0], 3);
    assert_memory_equal(t.data, v, sizeof(v));
    payload_free(&t);
    assert_int_equal(payload_decode(&spec, v, 10, &t, why, sizeof(why)), PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "needs 12"));
    spec.has_shape = 0;
    assert_int_equal(payload_decode(&spec, v, 12, &t, why, sizeof(why)), PAYLOAD_UNSUPPORTED);
}

static void test_json_object_and_flat_array(void **state)
{
    (void)state;
    uint8_t buf[512];
    payload_tensor t;
    char why[256];
    size_t n = slurp("obj.json", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_JSON, buf, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_I16);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(((int16_t *)t.data)[3], -4);
    payload_free(&t);
    n = slurp("flat.json", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_JSON, buf, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_F32);
    assert_int_equal(t.shape[0], 3);
    assert_true(((float *)t.data)[2] == 2.5f);
    payload_free(&t);
    const char *bad[] = {
        "{\"shape\":[2,2],\"data\":[1,2,3]}",            /* mismatch */
        "{\"shape\":[2],\"dtype\":\"uint8\",\"data\":[1,300]}", /* range */
        "{\"data\":[1,2],}x",                              /* trailing */
        "[1,2",                                            /* cut */
        "{\"shape\":[1.5],\"data\":[1]}",                  /* shape */
        "{\"colour\":1}",                                  /* unknown key */
        "{\"dtype\":\"float128\",\"data\":[1]}",           /* dtype */
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",        /* too deep */
        "nope",
    };
    payload_err want[] = {PAYLOAD_MISMATCH, PAYLOAD_MISMATCH, PAYLOAD_MALFORMED,
                          PAYLOAD_MALFORMED, PAYLOAD_MALFORMED, PAYLOAD_MALFORMED,
                          PAYLOAD_UNSUPPORTED, PAYLOAD_MALFORMED, PAYLOAD_MALFORMED};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(decode(PAYLOAD_JSON, bad[i], strlen(bad[i]), &t, why), want[i]);
        assert_true(why[0] != 0);
        assert_null(t.data);
    }
}

static void test_csv_line_with_configured_shape(void **state)
{
    (void)state;
    payload_tensor t;
    char why[256];
    uint8_t buf[64];
    size_t n = slurp("line.csv", buf, sizeof(buf));
    assert_int_equal(decode(PAYLOAD_CSV, buf, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.shape[0], 4);
    assert_true(((float *)t.data)[3] == -4.0f);
    payload_free(&t);
    payload_spec spec = {.format = PAYLOAD_CSV, .dtype = TS_F64, .has_shape = 1, .ndim = 2,
                         .shape = {2, 2}};
    assert_int_equal(payload_decode(&spec, "1,2,3,4", 7, &t, why, sizeof(why)), PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_F64);
    assert_true(((double *)t.data)[3] == 4.0);
    payload_free(&t);
    assert_int_equal(payload_decode(&spec, "1,2,3", 5, &t, why, sizeof(why)), PAYLOAD_MISMATCH);
    assert_int_equal(decode(PAYLOAD_CSV, "1,,2", 4, &t, why), PAYLOAD_MALFORMED);
    assert_int_equal(decode(PAYLOAD_CSV, "1;2", 3, &t, why), PAYLOAD_MALFORMED);
    assert_int_equal(decode(PAYLOAD_CSV, "", 0, &t, why), PAYLOAD_MALFORMED);
}

static void test_oversized_payload_is_too_large(void **state)
{
    (void)state;
    payload_spec spec = {.format = PAYLOAD_CSV, .max_payload = 4};
    payload_tensor t;
    char why[256];
    assert_int_equal(payload_decode(&spec, "1,2,3", 5, &t, why, sizeof(why)), PAYLOAD_TOO_LARGE);
    assert_non_null(strstr(why, "max_payload"));
    assert_string_equal(payload_err_name(PAYLOAD_TOO_LARGE), "too_large");
    payload_format f;
    assert_int_equal(payload_format_parse("npy", &f), 0);
    assert_int_equal(f, PAYLOAD_NPY);
    assert_int_equal(payload_format_parse("xml", &f), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_written_by_numpy_decodes),
        cmocka_unit_test(test_npy_big_endian_and_fortran_are_refused_with_reason),
        cmocka_unit_test(test_npy_every_dtype_v1_and_v2),
        cmocka_unit_test(test_npy_damage_is_malformed_or_mismatch),
        cmocka_unit_test(test_raw_uses_configured_dtype_and_shape),
        cmocka_unit_test(test_json_object_and_flat_array),
        cmocka_unit_test(test_csv_line_with_configured_shape),
        cmocka_unit_test(test_oversized_payload_is_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
