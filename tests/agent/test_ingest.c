/*
 * test_ingest.c -- ingest_pop's wait (agent/ingest.c, compiled in here):
 * it waits on the monotonic clock, so a wall clock that is off (a board
 * without RTC before NTP, or NTP stepping it) neither cuts the wait short
 * (the main loop would spin) nor stretches it (ingest would stall).
 *
 * clock_gettime is interposed for this program: CLOCK_REALTIME reads an
 * hour early, as after a step back; the kernel's own clock, which the
 * condition variable's timeout runs on, is untouched.
 */
#define _GNU_SOURCE 1
#include "ingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static long realtime_offset_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    long rc = syscall(SYS_clock_gettime, id, ts);
    if (!rc && id == CLOCK_REALTIME)
        ts->tv_sec -= realtime_offset_s;
    return (int)rc;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_pop_waits_its_time_whatever_the_wall_clock(void **state)
{
    (void)state;
    agent_sub sub = {.topic = "t", .qos = 1, .spec = {.format = PAYLOAD_CSV}};
    agent_config cfg = {0};
    char err[256];
    cfg.mqtt.host = "127.0.0.1";
    cfg.mqtt.port = 1;
    cfg.mqtt.client_id = "test-ingest";
    cfg.mqtt.keepalive_ms = 30000;
    cfg.mqtt.protocol = 311;
    cfg.mqtt.subs = &sub;
    cfg.mqtt.n_subs = 1;
    ingest *in = ingest_new(&cfg, 16, 1 << 20, err, sizeof(err));
    assert_non_null(in);
    for (int shifted = 0; shifted < 2; shifted++) {
        realtime_offset_s = shifted ? 3600 : 0;
        uint64_t t0 = mono_ms();
        assert_null(ingest_pop(in, 300, 16, 1 << 20, NULL));
        uint64_t took = mono_ms() - t0;
        if (took < 250 || took > 5000)
            fail_msg("a 300 ms wait took %llu ms (wall clock %s)", (unsigned long long)took,
                     shifted ? "an hour behind" : "right");
    }
    realtime_offset_s = 0;
    ingest_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_waits_its_time_whatever_the_wall_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
