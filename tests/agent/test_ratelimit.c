/*
 * test_ratelimit.c -- upload.max_rate's token bucket (agent/ratelimit.c) on
 * a virtual clock: a sender that always wants more, sleeping exactly as
 * told, gets the rate within 1 % over 10 s at every rate from the lowest
 * allowed to 1 GiB/s, and never more than rate x T + burst in any span;
 * a record is never split to wait; unlimited means unlimited; idle time
 * does not bank more than one burst; the parser of "2MiB/s" takes both
 * sides of its bounds. No real time passes.
 */
#include "config.h"
#include "ratelimit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define NS 1000000000ull

/* Sends `record`-byte requests for `span_ns` of virtual time starting at
 * t0; returns the bytes granted. *max_ahead gets the largest excess of
 * bytes over rate x elapsed seen along the way. */
static uint64_t run(ratelimit *r, uint64_t t0, uint64_t span_ns, size_t record,
                    int64_t *max_ahead)
{
    uint64_t now = t0, sent = 0;
    *max_ahead = 0;
    while (now - t0 < span_ns) {
        uint64_t wait;
        size_t n = ratelimit_grant(r, now, record, &wait);
        if (!n) {
            assert_true(wait > 0);
            now += wait;
            continue;
        }
        assert_true(n <= record);
        ratelimit_take(r, n);
        sent += n;
        int64_t ahead = (int64_t)sent -
                        (int64_t)((long double)r->rate * (long double)(now - t0) / NS);
        if (ahead > *max_ahead)
            *max_ahead = ahead;
    }
    return sent;
}

static void test_rate_holds_within_one_percent_over_10_s(void **state)
{
    (void)state;
    static const uint64_t rates[] = {CONFIG_RATE_MIN, 16 << 10, 100 << 10, 2 << 20, 4 << 20,
                                     12500000 /* 100 Mbit/s */, 1ull << 30};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        ratelimit r;
        int64_t ahead;
        ratelimit_init(&r, rates[i], 5 * NS);
        uint64_t sent = run(&r, 5 * NS, 10 * NS, 16384, &ahead);
        double want = (double)rates[i] * 10;
        if (sent < want * 0.99 || sent > want * 1.01 + (double)r.burst)
            fail_msg("rate %llu: %llu bytes in 10 s, want %.0f +- 1 %%",
                     (unsigned long long)rates[i], (unsigned long long)sent, want);
        /* Never more than one burst ahead of the rate (plus the record
         * that may be granted from a full bucket). */
        assert_true(ahead <= (int64_t)(r.burst + 16384));
        assert_true(r.burst >= RATELIMIT_MIN_BURST);
        assert_true(r.burst == RATELIMIT_MIN_BURST || r.burst == rates[i] / 10);
    }
}

static void test_a_record_is_not_split_to_wait(void **state)
{
    (void)state;
    ratelimit r;
    uint64_t wait;
    ratelimit_init(&r, 20000, 0); /* burst: 16 KiB */
    assert_int_equal(ratelimit_grant(&r, 0, 16384, &wait), 16384);
    ratelimit_take(&r, 16384);
    /* 1 s later 20000 tokens would have come, but the bucket holds 16 KiB. */
    assert_int_equal(ratelimit_grant(&r, 100 * 1000000ull, 16384, &wait), 0);
    /* 2000 tokens came in 100 ms; the rest of a record takes ~719 ms more. */
    assert_true(wait > 700 * 1000000ull && wait < 740 * 1000000ull);
    assert_int_equal(ratelimit_grant(&r, 100 * 1000000ull + wait, 16384, &wait), 16384);
}

static void test_idle_time_banks_at_most_one_burst(void **state)
{
    (void)state;
    ratelimit r;
    uint64_t wait;
    ratelimit_init(&r, 1 << 20, 0); /* burst 104857 */
    ratelimit_take(&r, ratelimit_grant(&r, 0, 1 << 30, &wait));
    /* An hour idle: one burst, not an hour of bytes. */
    size_t n = ratelimit_grant(&r, 3600 * NS, 1 << 30, &wait);
    assert_int_equal(n, r.burst);
}

static void test_no_rate_is_unlimited(void **state)
{
    (void)state;
    ratelimit r;
    uint64_t wait = 7;
    ratelimit_init(&r, 0, 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ratelimit_grant(&r, 0, 1 << 20, &wait), 1 << 20);
        assert_int_equal(wait, 0);
        ratelimit_take(&r, 1 << 20);
    }
}

static void test_rate_syntax_and_bounds(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(config_parse_rate("2MiB/s", &v), 0);
    assert_int_equal(v, 2 << 20);
    assert_int_equal(config_parse_rate("500KB/s", &v), 0);
    assert_int_equal(v, 500000);
    assert_int_equal(config_parse_rate("1KiB/s", &v), 0); /* the lowest */
    assert_int_equal(config_parse_rate("1023/s", &v), -EINVAL);
    assert_int_equal(config_parse_rate("10GiB/s", &v), 0); /* the highest */
    assert_int_equal(config_parse_rate("10241MiB/s", &v), -EINVAL);
    assert_int_equal(config_parse_rate("2MiB", &v), -EINVAL);
    assert_int_equal(config_parse_rate("2MiB/h", &v), -EINVAL);
    assert_int_equal(config_parse_rate("/s", &v), -EINVAL);
    assert_int_equal(config_parse_rate("fast/s", &v), -EINVAL);
    assert_int_equal(config_parse_rate("-2MiB/s", &v), -EINVAL);
    assert_int_equal(config_parse_rate("2 MiB/s", &v), 0); /* as sizes take "2 MiB" */
    assert_int_equal(v, 2 << 20);
    assert_int_equal(config_parse_rate("", &v), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_holds_within_one_percent_over_10_s),
        cmocka_unit_test(test_a_record_is_not_split_to_wait),
        cmocka_unit_test(test_idle_time_banks_at_most_one_burst),
        cmocka_unit_test(test_no_rate_is_unlimited),
        cmocka_unit_test(test_rate_syntax_and_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
