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
    return payload_class(payload_decode(&spec, buf, len, t, why, 256));
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
    uint8_t bools[6] = {1, 0, 0, 1, 1, 0}; /* a bool byte is 0 or 1 */
    for (int version = 1; version <= 2; version++) {
        for (size_t d = 0; d < sizeof(all) / sizeof(all[0]); d++) {
            size_t len = 6 * ts_dtype_size(all[d].dt);
            const uint8_t *src = all[d].dt == TS_BOOL ? bools : data;
            size_t n = make_npy(img, version, all[d].descr, "False", "(2, 3)", src, len);
            payload_tensor t;
            char why[256];
            assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_OK);
            assert_int_equal(t.dtype, all[d].dt);
            assert_int_equal(t.data_len, len);
            assert_memory_equal(t.data, src, len);
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

static void test_npy_length_finds_each_file_of_a_concatenation(void **state)
{
    (void)state;
    uint8_t img[1024], data[24] = {0};
    char why[256];
    size_t len = 0;
    size_t a = make_npy(img, 1, "<f4", "False", "(2, 3)", data, 24);
    size_t b = make_npy(img + a, 2, "|u1", "False", "(5,)", data, 5);
    /* the first file ends at its data's end, whatever follows */
    assert_int_equal(payload_npy_length(img, a + b, &len, why, sizeof(why)), 0);
    assert_int_equal(len, a);
    assert_int_equal(payload_npy_length(img, a, &len, why, sizeof(why)), 0);
    assert_int_equal(len, a);
    assert_int_equal(payload_npy_length(img + a, b, &len, why, sizeof(why)), 0);
    assert_int_equal(len, b);
    /* one byte short is cut short; the header's refusals are decode's */
    assert_int_equal(payload_class(payload_npy_length(img, a - 1, &len, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
    assert_int_equal(payload_class(payload_npy_length(img, 9, &len, why, sizeof(why))),
                     PAYLOAD_MALFORMED);
    size_t c = make_npy(img, 1, ">f4", "False", "(2, 3)", data, 24);
    assert_int_equal(payload_class(payload_npy_length(img, c, &len, why, sizeof(why))),
                     PAYLOAD_UNSUPPORTED);
    c = make_npy(img, 1, "<f4", "False", "(99999999999, 99999999999, 99999999999)", data, 24);
    assert_int_equal(payload_class(payload_npy_length(img, c, &len, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
}

static void test_raw_uses_configured_dtype_and_shape(void **state)
{
    (void)state;
    int16_t v[6] = {1, -2, 3, -4, 5, -6};
    payload_spec spec = {.format = PAYLOAD_RAW, .dtype = TS_I16, .has_shape = 1, .ndim = 2,
                         .shape = {3, 2}};
    payload_tensor t;
    char why[256];
    assert_int_equal(payload_class(payload_decode(&spec, v, sizeof(v), &t, why, sizeof(why))),
                     PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_I16);
    assert_int_equal(t.shape[0], 3);
    assert_memory_equal(t.data, v, sizeof(v));
    payload_free(&t);
    assert_int_equal(payload_class(payload_decode(&spec, v, 10, &t, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "needs 12"));
    spec.has_shape = 0;
    assert_int_equal(payload_class(payload_decode(&spec, v, 12, &t, why, sizeof(why))),
                     PAYLOAD_UNSUPPORTED);
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
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",        /* 20 dimensions */
        "nope",
    };
    payload_err want[] = {PAYLOAD_MISMATCH, PAYLOAD_MISMATCH, PAYLOAD_MALFORMED,
                          PAYLOAD_MALFORMED, PAYLOAD_MALFORMED, PAYLOAD_MALFORMED,
                          PAYLOAD_UNSUPPORTED, PAYLOAD_UNSUPPORTED, PAYLOAD_MALFORMED};
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
    assert_int_equal(payload_class(payload_decode(&spec, "1,2,3,4", 7, &t, why, sizeof(why))),
                     PAYLOAD_OK);
    assert_int_equal(t.dtype, TS_F64);
    assert_true(((double *)t.data)[3] == 4.0);
    payload_free(&t);
    assert_int_equal(payload_class(payload_decode(&spec, "1,2,3", 5, &t, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
    assert_int_equal(decode(PAYLOAD_CSV, "1,,2", 4, &t, why), PAYLOAD_MALFORMED);
    assert_int_equal(decode(PAYLOAD_CSV, "1;2", 3, &t, why), PAYLOAD_MALFORMED);
    assert_int_equal(decode(PAYLOAD_CSV, "", 0, &t, why), PAYLOAD_MALFORMED);
}

/* Decodes with a spec of the given format and dtype (0 = the default). */
static payload_err decode_as(payload_format f, ts_dtype dt, const void *buf, size_t len,
                             payload_tensor *t, char *why)
{
    payload_spec spec = {.format = f, .dtype = dt, .max_payload = 1 << 20};
    return payload_class(payload_decode(&spec, buf, len, t, why, 256));
}

/* A NUL (or another stray byte) is never read as a 0 or as the end of the
 * text: at every position of a valid payload it makes it malformed. */
static void test_nul_or_stray_byte_anywhere_is_malformed(void **state)
{
    (void)state;
    static const struct {
        payload_format f;
        const char *text;
    } ok[] = {
        {PAYLOAD_CSV, "1,2,3"},
        {PAYLOAD_CSV, "1.5, -2e3 ,3\n"},
        {PAYLOAD_JSON, "[1,2,3]"},
        {PAYLOAD_JSON, "[[1,2],[3,4]]"},
        {PAYLOAD_JSON, "{\"dtype\":\"int16\",\"shape\":[2],\"data\":[1,2]}"},
    };
    static const char stray[] = {0, 1, 0x1b, 0x7f, (char)0x80, (char)0xff};
    char buf[128], why[256];
    payload_tensor t;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        size_t n = strlen(ok[i].text);
        assert_int_equal(decode(ok[i].f, ok[i].text, n, &t, why), PAYLOAD_OK);
        payload_free(&t);
        for (size_t s = 0; s < sizeof(stray); s++)
            for (size_t at = 0; at <= n; at++) {
                memcpy(buf, ok[i].text, at);
                buf[at] = stray[s];
                memcpy(buf + at + 1, ok[i].text + at, n - at);
                payload_err e = decode(ok[i].f, buf, n + 1, &t, why);
                if (e != PAYLOAD_MALFORMED)
                    fail_msg("'%s' with byte 0x%02x at %zu: %s (%s)", ok[i].text,
                             (unsigned char)stray[s], at, payload_err_name(e), why);
                assert_null(t.data);
            }
    }
    /* The two reported cases, by name. */
    assert_int_equal(decode(PAYLOAD_CSV, "1,\0002", 4, &t, why), PAYLOAD_MALFORMED);
    assert_non_null(strstr(why, "byte 2"));
    assert_int_equal(decode(PAYLOAD_JSON, "[1,\0002]", 6, &t, why), PAYLOAD_MALFORMED);
    assert_non_null(strstr(why, "byte 3"));
}

static void test_json_ragged_lists_are_refused_and_nesting_is_the_shape(void **state)
{
    (void)state;
    payload_tensor t;
    char why[256];
    static const char *const ragged[] = {
        "[[1,2],[3]]", "[[1],[2,3]]", "[[1,2],3]", "[1,[2]]", "[[1],[]]", "[[],[1]]",
        "[[[1]],[2]]", "[[], [[]]]", "[[[]], []]", "{\"data\":[[1,2],[3]]}",
    };
    for (size_t i = 0; i < sizeof(ragged) / sizeof(ragged[0]); i++) {
        payload_err e = decode(PAYLOAD_JSON, ragged[i], strlen(ragged[i]), &t, why);
        if (e != PAYLOAD_MALFORMED || !strstr(why, "ragged"))
            fail_msg("'%s': %s (%s)", ragged[i], payload_err_name(e), why);
    }
    const char *m = "[[1,2,3],[4,5,6]]";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_true(((float *)t.data)[5] == 6.0f);
    payload_free(&t);
    m = "[[],[]]";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 0);
    assert_int_equal(t.data_len, 0);
    payload_free(&t);
    /* A declared shape takes flat data of its size, or nesting equal to it. */
    m = "{\"shape\":[2,3],\"data\":[[1,2,3],[4,5,6]]}";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_OK);
    payload_free(&t);
    m = "{\"shape\":[2,3],\"data\":[1,2,3,4,5,6]}";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_OK);
    assert_int_equal(t.shape[1], 3);
    payload_free(&t);
    m = "{\"shape\":[3,2],\"data\":[[1,2,3],[4,5,6]]}";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "(2, 3)"));
    /* A declared scalar is named "()" (the message once showed stack bytes). */
    m = "{\"shape\":[],\"data\":[[1,2],[3,4]]}";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "data nested as (2, 2) but the shape is ()"));
    payload_spec spec = {.format = PAYLOAD_JSON, .has_shape = 1, .ndim = 1, .shape = {4}};
    assert_int_equal(payload_class(payload_decode(&spec, "[[1,2],[3,4]]", 13, &t, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
    /* Eight levels are a tensor; a ninth is more dimensions than the engine has. */
    m = "[[[[[[[[1]]]]]]]]";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 8);
    payload_free(&t);
    m = "[[[[[[[[[1]]]]]]]]]";
    assert_int_equal(decode(PAYLOAD_JSON, m, strlen(m), &t, why), PAYLOAD_UNSUPPORTED);
}

static void test_json_object_keys_once_with_commas(void **state)
{
    (void)state;
    payload_tensor t;
    char why[256];
    static const struct {
        const char *text;
        payload_err want;
    } bad[] = {
        {"{\"data\":[1],\"data\":[2]}", PAYLOAD_MALFORMED},        /* twice: not [1, 2] */
        {"{\"shape\":[1],\"shape\":[1],\"data\":[2]}", PAYLOAD_MALFORMED},
        {"{\"dtype\":\"int8\",\"dtype\":\"int8\",\"data\":[2]}", PAYLOAD_MALFORMED},
        {"{\"data\":[1] \"dtype\":\"int8\"}", PAYLOAD_MALFORMED}, /* no comma */
        {"{\"data\":[1],}", PAYLOAD_MALFORMED},                    /* trailing comma */
        {"{,\"data\":[1]}", PAYLOAD_MALFORMED},
        {"[1,2,]", PAYLOAD_MALFORMED},
        {"[,1]", PAYLOAD_MALFORMED},
        {"{\"da\\ta\":[1]}", PAYLOAD_UNSUPPORTED},                  /* escapes */
        {"{\"dtype\":\"int\\u0038\",\"data\":[1]}", PAYLOAD_UNSUPPORTED},
        {"{\"shape\":[true],\"data\":[1]}", PAYLOAD_MALFORMED},    /* a size is a number */
        {"{\"shape\":[-1],\"data\":[1]}", PAYLOAD_MALFORMED},
        {"{\"shape\":[1,2,3,4,5,6,7,8,9],\"data\":[1]}", PAYLOAD_UNSUPPORTED},
        {"{\"shape\":[[1]],\"data\":[1]}", PAYLOAD_MALFORMED},
        {"{\"data\":[null]}", PAYLOAD_MALFORMED},
        {"[1] [2]", PAYLOAD_MALFORMED},
        {"1", PAYLOAD_MALFORMED},
        {"", PAYLOAD_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        payload_err e = decode(PAYLOAD_JSON, bad[i].text, strlen(bad[i].text), &t, why);
        if (e != bad[i].want)
            fail_msg("'%s': %s (%s), expected %s", bad[i].text, payload_err_name(e), why,
                     payload_err_name(bad[i].want));
        assert_true(why[0] != 0);
    }
}

/* What a number becomes: exactly the value written, or a refusal. */
static void test_numbers_are_exact_or_refused(void **state)
{
    (void)state;
    payload_tensor t;
    char why[256];
    static const struct {
        ts_dtype dt;
        const char *text;
        int64_t i;      /* signed expectation */
        uint64_t u;     /* unsigned expectation */
    } ints[] = {
        {TS_I64, "9007199254740993", 9007199254740993LL, 0},
        {TS_I64, "9223372036854775807", INT64_MAX, 0},
        {TS_I64, "-9223372036854775808", INT64_MIN, 0},
        {TS_I64, "-9007199254740993", -9007199254740993LL, 0},
        {TS_U64, "18446744073709551615", 0, UINT64_MAX},
        {TS_U64, "18446744073709551557", 0, 18446744073709551557ULL},
        {TS_U64, "1.8446744073709551615e19", 0, UINT64_MAX},
        {TS_U64, "-0", 0, 0},
        {TS_I16, "1e3", 1000, 0},
        {TS_I16, "2.50e1", 25, 0},
        {TS_I16, "-32768", -32768, 0},
        {TS_I8, "-128.000", -128, 0},
        {TS_U8, "255", 0, 255},
        {TS_U32, "4294967295", 0, 4294967295u},
        {TS_I32, "0.0000e5", 0, 0},
        {TS_BOOL, "1", 0, 1},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        for (int f = 0; f < 2; f++) {
            char text[96];
            snprintf(text, sizeof(text), f ? "[%s]" : "%s", ints[i].text);
            payload_err e = decode_as(f ? PAYLOAD_JSON : PAYLOAD_CSV, ints[i].dt, text,
                                      strlen(text), &t, why);
            if (e != PAYLOAD_OK)
                fail_msg("%s as %s: %s (%s)", text, ts_dtype_name(ints[i].dt),
                         payload_err_name(e), why);
            int64_t si = 0;
            uint64_t ui = 0;
            switch (ints[i].dt) {
            case TS_I8: si = *(int8_t *)t.data; break;
            case TS_I16: si = *(int16_t *)t.data; break;
            case TS_I32: si = *(int32_t *)t.data; break;
            case TS_I64: si = *(int64_t *)t.data; break;
            case TS_U8: case TS_BOOL: ui = *(uint8_t *)t.data; break;
            case TS_U32: ui = *(uint32_t *)t.data; break;
            case TS_U64: ui = *(uint64_t *)t.data; break;
            default: break;
            }
            if (si != ints[i].i || ui != ints[i].u)
                fail_msg("%s as %s became %lld / %llu", text, ts_dtype_name(ints[i].dt),
                         (long long)si, (unsigned long long)ui);
            payload_free(&t);
        }
    }
    static const struct {
        ts_dtype dt;
        const char *text;
        const char *says;
    } refused[] = {
        {TS_I64, "9223372036854775808", "out of range"},
        {TS_I64, "-9223372036854775809", "out of range"},
        {TS_U64, "18446744073709551616", "out of range"},
        {TS_U64, "1e20", "out of range"},
        {TS_U64, "-1", "out of range"},
        {TS_U8, "256", "out of range"},
        {TS_U8, "-1", "out of range"},
        {TS_I8, "128", "out of range"},
        {TS_I8, "-129", "out of range"},
        {TS_I16, "32768", "out of range"},
        {TS_I16, "1e400", "out of range"},
        {TS_BOOL, "2", "out of range"},
        {TS_I32, "1.5", "not an integer"},
        {TS_I32, "1e-1", "not an integer"},
        {TS_U64, "12345678901234567890.5", "not an integer"},
        {TS_I32, "nan", "not an integer"},
        {TS_I32, "inf", "not an integer"},
        {TS_F64, "1e309", "out of range"},
        {TS_F64, "-1e309", "out of range"},
        {TS_F32, "3.5e38", "out of range"},
        {TS_F16, "65520", "out of range"},
        {TS_C64, "1e39", "out of range"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        for (int f = 0; f < 2; f++) {
            char text[96];
            snprintf(text, sizeof(text), f ? "[%s]" : "%s", refused[i].text);
            payload_err e = decode_as(f ? PAYLOAD_JSON : PAYLOAD_CSV, refused[i].dt, text,
                                      strlen(text), &t, why);
            if (e != PAYLOAD_MISMATCH || !strstr(why, refused[i].says))
                fail_msg("%s as %s: %s (%s), expected mismatch '%s'", text,
                         ts_dtype_name(refused[i].dt), payload_err_name(e), why,
                         refused[i].says);
            assert_null(t.data);
        }
    }
    /* Not numbers at all. */
    static const char *const junk[] = {"0x10", "1e", "--1", "1..2", "e5", ".", "+", "1 2",
                                       "nanx", "infinit", "1,2,", ",1", "1,,2", "1,\n2",
                                       "1\n2", "1;2", "true", "1f"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        payload_err e = decode(PAYLOAD_CSV, junk[i], strlen(junk[i]), &t, why);
        if (e != PAYLOAD_MALFORMED)
            fail_msg("csv '%s': %s (%s)", junk[i], payload_err_name(e), why);
    }
    /* Float dtypes: correctly rounded from the decimal text (not through a
     * double first), and nan/inf are values. */
    const char *s = "1.00000005960464477550";
    assert_int_equal(decode_as(PAYLOAD_CSV, TS_F32, s, strlen(s), &t, why), PAYLOAD_OK);
    uint32_t bits;
    memcpy(&bits, t.data, 4);
    assert_int_equal(bits, 0x3f800001);
    payload_free(&t);
    s = "nan, -inf, Infinity, NaN, +inf, 1e-400";
    assert_int_equal(decode_as(PAYLOAD_CSV, TS_F64, s, strlen(s), &t, why), PAYLOAD_OK);
    double *d = (double *)t.data;
    assert_true(d[0] != d[0] && d[3] != d[3]);
    assert_true(d[1] < 0 && d[1] * 0.5 == d[1]);
    assert_true(d[2] > 0 && d[2] * 0.5 == d[2] && d[4] == d[2]);
    assert_true(d[5] == 0.0); /* below the smallest double: rounds to zero */
    payload_free(&t);
    s = "[NaN, -Infinity, true, false]";
    assert_int_equal(decode_as(PAYLOAD_JSON, TS_F32, s, strlen(s), &t, why), PAYLOAD_OK);
    float *fl = (float *)t.data;
    assert_true(fl[0] != fl[0] && fl[1] < -3.4e38f && fl[2] == 1.0f && fl[3] == 0.0f);
    payload_free(&t);
    /* A long but valid number, and one past the token limit. */
    char longnum[600];
    memset(longnum, '0', sizeof(longnum));
    longnum[0] = '0';
    longnum[1] = '.';
    longnum[200] = '1';
    longnum[201] = 0;
    assert_int_equal(decode_as(PAYLOAD_CSV, TS_F64, longnum, 201, &t, why), PAYLOAD_OK);
    payload_free(&t);
    longnum[201] = '0';
    longnum[599] = '1';
    assert_int_equal(decode_as(PAYLOAD_CSV, TS_F64, longnum, 600, &t, why), PAYLOAD_MALFORMED);
    assert_non_null(strstr(why, "longer than"));
}

static void test_csv_is_one_line_of_fields(void **state)
{
    (void)state;
    payload_tensor t;
    char why[256];
    static const char *const ok[] = {"1,2", " 1 ,\t2 ", "1,2\n", "1,2\r\n", "\n1,2\n\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(decode(PAYLOAD_CSV, ok[i], strlen(ok[i]), &t, why), PAYLOAD_OK);
        assert_int_equal(t.shape[0], 2);
        payload_free(&t);
    }
    static const char *const bad[] = {"1,2,", "1,,2", ",1", ",", "1,\n2", "1\r,2", " , ",
                                      "\n\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        payload_err e = decode(PAYLOAD_CSV, bad[i], strlen(bad[i]), &t, why);
        if (e != PAYLOAD_MALFORMED)
            fail_msg("csv '%s': %s (%s)", bad[i], payload_err_name(e), why);
    }
}

static void test_npy_header_oddities_are_refused(void **state)
{
    (void)state;
    uint8_t img[512], data[24] = {0};
    payload_tensor t;
    char why[256];
    static const struct {
        const char *dict;
        payload_err want;
    } bad[] = {
        /* trailing bytes after the dict, a NUL in it, missing separators, duplicates */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\001", PAYLOAD_MALFORMED},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
         PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'shape': (2, 3)}",
         PAYLOAD_MALFORMED},
        {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 3), }", PAYLOAD_MALFORMED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -3), }", PAYLOAD_MALFORMED},
        /* native or unstated byte order of a multi-byte type, an empty descr */
        {"{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_UNSUPPORTED},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_UNSUPPORTED},
        {"{'descr': '', 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_UNSUPPORTED},
        {"{'descr': '<', 'fortran_order': False, 'shape': (2, 3), }", PAYLOAD_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t hl = strlen(bad[i].dict);
        memcpy(img, "\x93NUMPY\x01\x00", 8);
        img[8] = (uint8_t)(hl + 1);
        img[9] = 0;
        memcpy(img + 10, bad[i].dict, hl);
        img[10 + hl] = '\n';
        memcpy(img + 11 + hl, data, 24);
        payload_err e = decode(PAYLOAD_NPY, img, 11 + hl + 24, &t, why);
        if (e != bad[i].want)
            fail_msg("case %zu '%s': %s (%s)", i, bad[i].dict, payload_err_name(e), why);
    }
    /* A NUL in the padding NumPy fills with spaces. */
    size_t n = make_npy(img, 1, "<f4", "False", "(2, 3)", data, 24);
    img[60] = 0;
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_MALFORMED);
    /* Format versions are 1.0, 2.0 and 3.0: a minor version is refused. */
    n = make_npy(img, 1, "<f4", "False", "(2, 3)", data, 24);
    img[7] = 1;
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_UNSUPPORTED);
    /* A one-element tuple may omit its comma; a 1-byte dtype may state any order. */
    n = make_npy(img, 1, "<u1", "False", "(6)", data, 6);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 1);
    payload_free(&t);
    n = make_npy(img, 3, ">i1", "True", "()", data, 1);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_OK);
    assert_int_equal(t.ndim, 0);
    payload_free(&t);
}

/* A bool element is the byte 0 or 1; any other byte is refused, not kept
 * as a third truth value. */
static void test_bool_bytes_are_zero_or_one(void **state)
{
    (void)state;
    uint8_t img[512], data[3] = {1, 0, 1};
    payload_tensor t;
    char why[256];
    size_t n = make_npy(img, 1, "|b1", "False", "(3,)", data, 3);
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_OK);
    payload_free(&t);
    img[n - 2] = 2;
    assert_int_equal(decode(PAYLOAD_NPY, img, n, &t, why), PAYLOAD_MISMATCH);
    assert_non_null(strstr(why, "0 or 1"));
    payload_spec spec = {.format = PAYLOAD_RAW, .dtype = TS_BOOL, .has_shape = 1, .ndim = 1,
                         .shape = {3}};
    assert_int_equal(payload_class(payload_decode(&spec, data, 3, &t, why, sizeof(why))),
                     PAYLOAD_OK);
    payload_free(&t);
    data[2] = 0xff;
    assert_int_equal(payload_class(payload_decode(&spec, data, 3, &t, why, sizeof(why))),
                     PAYLOAD_MISMATCH);
}

static void test_oversized_payload_is_too_large(void **state)
{
    (void)state;
    payload_spec spec = {.format = PAYLOAD_CSV, .max_payload = 4};
    payload_tensor t;
    char why[256];
    assert_int_equal(payload_class(payload_decode(&spec, "1,2,3", 5, &t, why, sizeof(why))),
                     PAYLOAD_TOO_LARGE);
    assert_non_null(strstr(why, "max_payload"));
    assert_string_equal(payload_err_name(PAYLOAD_TOO_LARGE), "too_large");
    payload_format f;
    assert_int_equal(payload_format_parse("npy", &f), 0);
    assert_int_equal(f, PAYLOAD_NPY);
    assert_int_equal(payload_format_parse("xml", &f), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_written_by_numpy_decodes),
        cmocka_unit_test(test_npy_big_endian_and_fortran_are_refused_with_reason),
        cmocka_unit_test(test_npy_every_dtype_v1_and_v2),
        cmocka_unit_test(test_npy_damage_is_malformed_or_mismatch),
        cmocka_unit_test(test_npy_length_finds_each_file_of_a_concatenation),
        cmocka_unit_test(test_raw_uses_configured_dtype_and_shape),
        cmocka_unit_test(test_json_object_and_flat_array),
        cmocka_unit_test(test_csv_line_with_configured_shape),
        cmocka_unit_test(test_oversized_payload_is_too_large),
        cmocka_unit_test(test_nul_or_stray_byte_anywhere_is_malformed),
        cmocka_unit_test(test_json_ragged_lists_are_refused_and_nesting_is_the_shape),
        cmocka_unit_test(test_json_object_keys_once_with_commas),
        cmocka_unit_test(test_numbers_are_exact_or_refused),
        cmocka_unit_test(test_csv_is_one_line_of_fields),
        cmocka_unit_test(test_npy_header_oddities_are_refused),
        cmocka_unit_test(test_bool_bytes_are_zero_or_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
