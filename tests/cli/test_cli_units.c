/*
 * test_cli_units.c -- the CLI's pure helpers: key syntax round trips and the
 * .npy header layout NumPy expects.
 */
#include "cli_key.h"
#include "npy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void roundtrip(const char *in, const char *printed)
{
    uint8_t key[64];
    size_t len = 0;
    char out[160];
    assert_int_equal(cli_key_parse(in, key, sizeof(key), &len), 0);
    cli_key_format(key, len, out, sizeof(out));
    assert_string_equal(out, printed);
    uint8_t again[64];
    size_t len2 = 0;
    assert_int_equal(cli_key_parse(out, again, sizeof(again), &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(again, key, len);
}

static void test_keys_parse_and_print_back(void **state)
{
    (void)state;
    roundtrip("101", "101");
    roundtrip("0", "0");
    roundtrip("18446744073709551615", "x:ffffffffffffffff");
    roundtrip("sensors/cam0", "sensors/cam0");
    roundtrip("s:123", "s:123");
    roundtrip("s:x:ab", "s:x:ab");
    roundtrip("x:00ff10", "x:00ff10");
    uint8_t key[8];
    size_t len;
    assert_int_equal(cli_key_parse("101", key, sizeof(key), &len), 0);
    assert_int_equal(len, 8);
    assert_int_equal(key[7], 101);
    assert_int_equal(key[0], 0);
}

static void test_bad_keys_are_rejected(void **state)
{
    (void)state;
    uint8_t key[8];
    size_t len;
    assert_int_equal(cli_key_parse("18446744073709551616", key, sizeof(key), &len), -1);
    assert_int_equal(cli_key_parse("x:abc", key, sizeof(key), &len), -1);
    assert_int_equal(cli_key_parse("x:zz", key, sizeof(key), &len), -1);
    assert_int_equal(cli_key_parse("far-too-long-for-eight", key, sizeof(key), &len), -1);
}

static void test_npy_header_is_64_aligned_numpy_dict(void **state)
{
    (void)state;
    char buf[256];
    size_t len = 0;
    ts_tensor t = {.dtype = TS_F32, .ndim = 2, .shape = {32, 32}};
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), 0);
    assert_int_equal(len % 64, 0);
    assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
    assert_int_equal((unsigned char)buf[8] | (unsigned char)buf[9] << 8, len - 10);
    assert_int_equal(buf[len - 1], '\n');
    assert_non_null(strstr(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (32, 32), }"));
    t.ndim = 1;
    t.shape[0] = 3;
    t.dtype = TS_BOOL;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), 0);
    assert_non_null(strstr(buf + 10, "'descr': '|b1'"));
    assert_non_null(strstr(buf + 10, "'shape': (3,)"));
    t.ndim = 0;
    t.dtype = TS_C128;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), 0);
    assert_non_null(strstr(buf + 10, "'shape': ()"));
    assert_non_null(strstr(buf + 10, "'<c16'"));
    t.dtype = (ts_dtype)99;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_parse_and_print_back),
        cmocka_unit_test(test_bad_keys_are_rejected),
        cmocka_unit_test(test_npy_header_is_64_aligned_numpy_dict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
