/*
 * test_cli_key.c -- the command-line key syntax (cli/cli_key.c): what each
 * form parses to, how keys print, and that every printed key parses back to
 * the same bytes. Not tested here: how commands use keys (the end-to-end
 * test does that).
 */
#include "cli_key.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Parses `in`, prints it, checks the text and that the text parses back. */
static void assert_prints_as(const char *in, const char *printed)
{
    uint8_t key[TS_MAX_KEY_LEN], again[TS_MAX_KEY_LEN];
    size_t len = 0, len2 = 0;
    char out[CLI_KEY_TEXT_MAX];
    assert_int_equal(cli_key_parse(in, key, sizeof(key), &len), 0);
    cli_key_format(key, len, out, sizeof(out));
    assert_string_equal(out, printed);
    assert_int_equal(cli_key_parse(out, again, sizeof(again), &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(again, key, len);
}

static void test_digits_are_numeric_keys_big_endian(void **state)
{
    uint8_t key[16], want[TS_KEY_U64_LEN];
    size_t len = 0;
    (void)state;
    assert_int_equal(cli_key_parse("101", key, sizeof(key), &len), 0);
    assert_int_equal(len, TS_KEY_U64_LEN);
    ts_key_from_u64(101, want);
    assert_memory_equal(key, want, TS_KEY_U64_LEN);
    assert_int_equal(cli_key_parse("18446744073709551615", key, sizeof(key), &len), 0);
    assert_memory_equal(key, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    assert_int_equal(cli_key_parse("007", key, sizeof(key), &len), 0);
    assert_int_equal(key[7], 7);
}

static void test_prefixed_and_plain_text_forms(void **state)
{
    uint8_t key[16];
    size_t len = 0;
    (void)state;
    assert_int_equal(cli_key_parse("s:123", key, sizeof(key), &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(key, "123", 3);
    assert_int_equal(cli_key_parse("x:00Ff10", key, sizeof(key), &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(key, "\x00\xff\x10", 3);
    assert_int_equal(cli_key_parse("cam/0", key, sizeof(key), &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(key, "cam/0", 5);
    assert_int_equal(cli_key_parse("s:", key, sizeof(key), &len), 0);
    assert_int_equal(len, 0); /* empty: callers that need a key refuse it */
}

static void test_every_printed_key_parses_back(void **state)
{
    (void)state;
    assert_prints_as("101", "101");
    assert_prints_as("0", "0");
    assert_prints_as("72057594037927935", "72057594037927935"); /* 2^56-1: first byte 0 */
    assert_prints_as("72057594037927936", "x:0100000000000000"); /* 2^56 */
    assert_prints_as("sensors/cam0", "sensors/cam0");
    assert_prints_as("s:123", "s:123");
    assert_prints_as("s:s:abc", "s:s:abc");
    assert_prints_as("s:x:ab", "s:x:ab");
    assert_prints_as("x:00ff10", "x:00ff10");
    assert_prints_as("x:41", "A");
    assert_prints_as("x:09", "x:09"); /* a tab would break ls lines */
    assert_prints_as("x:0000000000000001", "1");
    assert_prints_as("x:00000000000001", "x:00000000000001"); /* 7 bytes: not numeric */
}

static void test_malformed_keys_are_refused(void **state)
{
    uint8_t key[8];
    size_t len = 0;
    (void)state;
    assert_int_equal(cli_key_parse("18446744073709551616", key, sizeof(key), &len), TS_EINVAL);
    assert_int_equal(cli_key_parse("x:abc", key, sizeof(key), &len), TS_EINVAL);
    assert_int_equal(cli_key_parse("x:zz", key, sizeof(key), &len), TS_EINVAL);
    assert_int_equal(cli_key_parse("far-too-long-for-eight", key, sizeof(key), &len),
                     TS_ENAMETOOLONG);
    assert_int_equal(cli_key_parse("x:000102030405060708", key, sizeof(key), &len),
                     TS_ENAMETOOLONG);
    assert_int_equal(cli_key_parse("1", key, 4, &len), TS_ENAMETOOLONG);
}

static void test_format_never_overruns_a_small_buffer(void **state)
{
    uint8_t key[64];
    char out[8];
    (void)state;
    memset(key, 0xab, sizeof(key));
    memset(out, 'Z', sizeof(out));
    cli_key_format(key, sizeof(key), out, 7);
    assert_int_equal(out[7], 'Z');
    assert_string_equal(out, "x:abab");
    cli_key_format((const uint8_t *)"hello world", 11, out, 7);
    assert_string_equal(out, "hello ");
    cli_key_format(key, sizeof(key), out, 0); /* writes nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits_are_numeric_keys_big_endian),
        cmocka_unit_test(test_prefixed_and_plain_text_forms),
        cmocka_unit_test(test_every_printed_key_parses_back),
        cmocka_unit_test(test_malformed_keys_are_refused),
        cmocka_unit_test(test_format_never_overruns_a_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
