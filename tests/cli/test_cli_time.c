/*
 * test_cli_time.c -- the command-line time syntax (cli/cli_time.c): each
 * form's value, both sides of every limit (fraction digits, int64 range,
 * calendar, offsets, ages), that refusals say why, and that every printed
 * time parses back to the same nanosecond. Not tested here: how ls uses the
 * window (tests/cli/test_cli_time.py does that).
 */
#include "cli_time.h"

#include "embeddb/tensor_store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define S INT64_C(1000000000)
/* 2026-11-30T15:04:05Z */
#define T0 (INT64_C(1796051045) * S)
/* An arbitrary "now" for ages. */
#define NOW (T0 + 123456789)

static int64_t ok(const char *s)
{
    char why[256];
    int64_t v = 0;
    int rc = cli_time_parse(s, NOW, &v, why, sizeof(why));
    if (rc)
        fail_msg("'%s' refused: %s", s, why);
    return v;
}

/* Refused, with a reason containing `because`; *out left alone. */
static void refused(const char *s, const char *because)
{
    char why[256];
    int64_t v = 42;
    assert_int_equal(cli_time_parse(s, NOW, &v, why, sizeof(why)), TS_EINVAL);
    assert_int_equal(v, 42);
    if (!strstr(why, because))
        fail_msg("'%s': reason '%s' lacks '%s'", s, why, because);
}

static void test_integers_are_ns_up_to_int64_max(void **state)
{
    (void)state;
    assert_true(ok("0") == 0);
    assert_true(ok("1796051045000000000") == T0);
    assert_true(ok("0001") == 1);
    assert_true(ok("9223372036854775807") == INT64_MAX);
    refused("9223372036854775808", "above the largest int64 timestamp");
    refused("99999999999999999999999", "above the largest int64 timestamp");
    refused("12a", "not a number of nanoseconds");
    refused("1.5", "not a number of nanoseconds");
    refused("+5", "not a number of nanoseconds");
    refused(" 5", "not a number of nanoseconds");
    refused("", "empty");
}

static void test_rfc3339_utc_fractions_and_offsets(void **state)
{
    (void)state;
    assert_true(ok("2026-11-30T15:04:05Z") == T0);
    assert_true(ok("2026-11-30t15:04:05z") == T0);
    assert_true(ok("2026-11-30T16:04:05+01:00") == T0);
    assert_true(ok("2026-11-30T09:34:05-05:30") == T0);
    assert_true(ok("2026-11-30T15:04:05-00:00") == T0);
    assert_true(ok("2026-11-30T15:04:05.5Z") == T0 + 500000000);
    assert_true(ok("2026-11-30T15:04:05.000000001Z") == T0 + 1);
    assert_true(ok("2026-11-30T15:04:05.123456789+00:00") == T0 + 123456789);
    assert_true(ok("1970-01-01T00:00:00Z") == 0);
    assert_true(ok("1969-12-31T23:59:59Z") == -S);
    assert_true(ok("1969-12-31T23:59:59.999999999Z") == -1);
    /* 9 fraction digits are nanoseconds; a 10th would be cut: refused. */
    refused("2026-11-30T15:04:05.1234567890Z", "10 fraction digits; at most 9");
    refused("2026-11-30T15:04:05.0000000000Z", "at most 9");
    refused("2026-11-30T15:04:05.Z", "needs fraction digits");
    /* Offsets: 23:59 is the largest. */
    assert_true(ok("2026-11-30T15:04:05+23:59") == T0 - (23 * 3600 + 59 * 60) * S);
    refused("2026-11-30T15:04:05+24:00", "offset +24:00 does not exist");
    refused("2026-11-30T15:04:05+01:60", "offset +01:60 does not exist");
    refused("2026-11-30T15:04:05+0100", "+HH:MM");
    refused("2026-11-30T15:04:05+01", "+HH:MM");
    refused("2026-11-30T15:04:05+", "+HH:MM");
    refused("2026-11-30T15:04:05", "missing Z");
    refused("2026-11-30T15:04:05Zx", "unexpected 'x'");
    refused("2026-11-30T15:04:05+01:00:00", "unexpected ':00'");
    refused("2026-11-30 15:04:05Z", "not an RFC 3339 time");
    refused("2026-11-30", "not an RFC 3339 time");
    refused("2026-1-30T15:04:05Z", "not an RFC 3339 time");
    refused("2026-11-30T15:4:05Z", "not an RFC 3339 time");
    refused("2026-11-3xT15:04:05Z", "not an RFC 3339 time");
}

static void test_the_calendar_has_no_invented_days(void **state)
{
    (void)state;
    assert_true(ok("2000-02-29T00:00:00Z") == INT64_C(951782400) * S); /* 400-year leap */
    assert_true(ok("2024-02-29T00:00:00Z") == ok("2024-03-01T00:00:00Z") - 86400 * S);
    refused("2023-02-29T00:00:00Z", "day 29 does not exist in 2023-02");
    refused("1900-02-29T00:00:00Z", "day 29 does not exist in 1900-02"); /* 100-year rule */
    assert_true(ok("1900-03-01T00:00:00Z") == INT64_C(-2203891200) * S);
    assert_true(ok("2026-04-30T00:00:00Z") + 86400 * S == ok("2026-05-01T00:00:00Z"));
    refused("2026-04-31T00:00:00Z", "day 31 does not exist");
    assert_true(ok("2026-12-31T23:59:59Z") + S == ok("2027-01-01T00:00:00Z"));
    refused("2026-13-01T00:00:00Z", "month 13 does not exist");
    refused("2026-00-01T00:00:00Z", "month 00 does not exist");
    refused("2026-11-00T00:00:00Z", "day 00 does not exist");
    refused("2026-11-30T24:00:00Z", "24:00 does not exist");
    refused("2026-11-30T23:60:00Z", "23:60 does not exist");
    refused("2026-11-30T23:59:60Z", "leap second");
    refused("2026-11-30T23:59:61Z", "second 61 does not exist");
}

static void test_rfc3339_reaches_exactly_the_int64_range(void **state)
{
    (void)state;
    assert_true(ok("2262-04-11T23:47:16.854775807Z") == INT64_MAX);
    refused("2262-04-11T23:47:16.854775808Z", "outside the range of int64");
    assert_true(ok("1677-09-21T00:12:43.145224192Z") == INT64_MIN);
    refused("1677-09-21T00:12:43.145224191Z", "outside the range of int64");
    /* The offset moves a time across the limit in both directions. */
    assert_true(ok("2262-04-12T00:47:16.854775807+01:00") == INT64_MAX);
    refused("2262-04-12T00:47:16.854775808+01:00", "outside the range");
    assert_true(ok("1677-09-20T23:12:43.145224192-01:00") == INT64_MIN);
    refused("1677-09-20T23:12:43.145224191-01:00", "outside the range");
    refused("9999-12-31T23:59:59Z", "outside the range");
    refused("0000-01-01T00:00:00Z", "outside the range");
}

static void test_ages_count_back_from_now(void **state)
{
    char why[256];
    int64_t v = 0;
    (void)state;
    assert_true(ok("-10s") == NOW - 10 * S);
    assert_true(ok("-5m") == NOW - 300 * S);
    assert_true(ok("-2h") == NOW - 7200 * S);
    assert_true(ok("-1d") == NOW - 86400 * S);
    assert_true(ok("-0s") == NOW);
    /* 106751 days fit in int64 ns, 106752 do not. */
    assert_true(ok("-106751d") == NOW - INT64_C(106751) * 86400 * S);
    refused("-106752d", "age longer than int64 nanoseconds reach");
    assert_true(ok("-9223372036s") == NOW - INT64_C(9223372036) * S);
    refused("-9223372037s", "age longer");
    refused("-99999999999999999999999s", "age longer");
    refused("-10", "needs a unit (-10s, -10m, -10h or -10d)");
    refused("-10x", "unknown unit 'x'");
    refused("-10ms", "unexpected 's' after the age");
    refused("-1.5h", "unknown unit '.5h'");
    refused("-", "an age reads");
    refused("--1s", "an age reads");
    refused("10s", "not a number of nanoseconds");
    /* The result must stay an int64 too: now near INT64_MIN. */
    assert_int_equal(cli_time_parse("-1s", INT64_MIN + S, &v, why, sizeof(why)), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(cli_time_parse("-1s", INT64_MIN + S - 1, &v, why, sizeof(why)), TS_EINVAL);
    assert_non_null(strstr(why, "before the earliest int64 timestamp"));
}

static void test_a_small_or_missing_reason_buffer_is_safe(void **state)
{
    char why[8];
    int64_t v = 0;
    (void)state;
    memset(why, 'Z', sizeof(why));
    assert_int_equal(cli_time_parse("bad", 0, &v, why, 4), TS_EINVAL);
    assert_int_equal(why[3], 0);
    assert_int_equal(why[4], 'Z');
    assert_int_equal(cli_time_parse("bad", 0, &v, NULL, 0), TS_EINVAL);
    assert_int_equal(cli_time_parse("5", 0, &v, NULL, 0), 0);
    assert_true(v == 5);
}

static void assert_formats_as(int64_t ns, const char *text)
{
    char out[CLI_TIME_TEXT_MAX];
    int64_t back = 0;
    cli_time_format(ns, out, sizeof(out));
    assert_string_equal(out, text);
    assert_int_equal(cli_time_parse(out, 0, &back, NULL, 0), 0);
    assert_true(back == ns);
}

static void test_formatting_is_utc_and_parses_back(void **state)
{
    char small[11];
    (void)state;
    assert_formats_as(T0, "2026-11-30T15:04:05Z");
    assert_formats_as(T0 + 500000000, "2026-11-30T15:04:05.500Z");
    assert_formats_as(T0 + 123456000, "2026-11-30T15:04:05.123456Z");
    assert_formats_as(T0 + 1, "2026-11-30T15:04:05.000000001Z");
    assert_formats_as(0, "1970-01-01T00:00:00Z");
    assert_formats_as(-1, "1969-12-31T23:59:59.999999999Z");
    assert_formats_as(-S, "1969-12-31T23:59:59Z");
    assert_formats_as(-86400 * S - 1, "1969-12-30T23:59:59.999999999Z");
    assert_formats_as(INT64_MAX, "2262-04-11T23:47:16.854775807Z");
    assert_formats_as(INT64_MIN, "1677-09-21T00:12:43.145224192Z");
    assert_formats_as(INT64_C(951782400) * S, "2000-02-29T00:00:00Z");
    cli_time_format(T0, small, sizeof(small));
    assert_string_equal(small, "2026-11-30");
}

/* Every day of a 400-year cycle (and around the int64 edges) round-trips. */
static void test_every_day_round_trips(void **state)
{
    char out[CLI_TIME_TEXT_MAX];
    (void)state;
    for (int64_t day = -146097 / 2; day < 146097 / 2; day++) {
        int64_t ns = day * 86400 * S + 3723 * S + 7, back = 0;
        cli_time_format(ns, out, sizeof(out));
        assert_int_equal(cli_time_parse(out, 0, &back, NULL, 0), 0);
        assert_true(back == ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_are_ns_up_to_int64_max),
        cmocka_unit_test(test_rfc3339_utc_fractions_and_offsets),
        cmocka_unit_test(test_the_calendar_has_no_invented_days),
        cmocka_unit_test(test_rfc3339_reaches_exactly_the_int64_range),
        cmocka_unit_test(test_ages_count_back_from_now),
        cmocka_unit_test(test_a_small_or_missing_reason_buffer_is_safe),
        cmocka_unit_test(test_formatting_is_utc_and_parses_back),
        cmocka_unit_test(test_every_day_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
