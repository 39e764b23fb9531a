/*
 * test_control.c -- fleet control's documents and topics (agent/control.c,
 * formats in agent/CONTROL.md): the largest status document fits
 * CONTROL_STATUS_MAX, a buffer one byte short of any document is refused
 * whole (never a cut document), and topics on both sides of their buffer.
 * The documents' content over MQTT is tested against mosquitto
 * (tests/integration/test_control.py).
 */
#include "control.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

static const char ID64[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._";

/* Every count at its largest, the longest device id. */
static control_status largest(ingest_counters *c, agent_counts *a)
{
    memset(c, 0xff, sizeof(*c));
    memset(a, 0xff, sizeof(*a));
    c->connected = 1;
    control_status s = {.device_id = ID64, .online = 1, .time_ns = INT64_MIN,
                        .uptime_ms = UINT64_MAX, .in = c, .a = a, .flash_used = UINT64_MAX,
                        .flash_limit = UINT64_MAX, .flash_free = UINT64_MAX - 1,
                        .backlog_bytes = UINT64_MAX};
    for (int i = 0; i <= SNAP_SEALING; i++)
        s.snapshots[i] = UINT64_MAX;
    return s;
}

static void test_largest_status_fits_its_bound(void **state)
{
    (void)state;
    ingest_counters c;
    agent_counts a;
    control_status s = largest(&c, &a);
    char buf[CONTROL_STATUS_MAX];
    size_t len = 0;
    assert_int_equal(strlen(ID64), 64);
    assert_int_equal(control_status_json(&s, buf, sizeof(buf), &len), 0);
    assert_int_equal(strlen(buf), len);
    assert_true(len < CONTROL_STATUS_MAX);
    assert_non_null(strstr(buf, "\"time_ns\":-9223372036854775808,"));
    assert_non_null(strstr(buf, "\"upload_backlog_bytes\":18446744073709551615}"));
    assert_int_equal(buf[0], '{');
    assert_int_equal(buf[len - 1], '}');
}

/* At every buffer size below the document's length + 1 it is refused and
 * the buffer holds an empty string; at length + 1 it is written whole. */
static void test_short_buffer_refuses_the_whole_document(void **state)
{
    (void)state;
    ingest_counters c;
    agent_counts a;
    control_status on = largest(&c, &a);
    control_status off = {.device_id = ID64, .online = 0, .reason = "stopped"};
    const control_status *docs[] = {&on, &off};
    for (size_t d = 0; d < 2; d++) {
        char full[CONTROL_STATUS_MAX], buf[CONTROL_STATUS_MAX];
        size_t len = 0, got = 7;
        assert_int_equal(control_status_json(docs[d], full, sizeof(full), &len), 0);
        for (size_t cap = 0; cap <= len; cap++) {
            memset(buf, 'x', sizeof(buf));
            assert_int_equal(control_status_json(docs[d], buf, cap, &got), -ENOSPC);
            assert_int_equal(got, 0);
            if (cap)
                assert_int_equal(buf[0], 0);
        }
        assert_int_equal(control_status_json(docs[d], buf, len + 1, &got), 0);
        assert_int_equal(got, len);
        assert_string_equal(buf, full);
    }
}

static void test_offline_document_is_exact(void **state)
{
    (void)state;
    char buf[256];
    size_t len;
    control_status s = {.device_id = "b-7", .online = 0, .reason = "lost"};
    assert_int_equal(control_status_json(&s, buf, sizeof(buf), &len), 0);
    assert_string_equal(buf, "{\"v\":1,\"device_id\":\"b-7\",\"online\":false,\"version\":\""
                             EMBEDDB_TEST_VERSION "\",\"reason\":\"lost\"}");
}

static void test_unknown_free_space_is_null(void **state)
{
    (void)state;
    ingest_counters c;
    agent_counts a;
    control_status s = largest(&c, &a);
    char buf[CONTROL_STATUS_MAX];
    size_t len;
    s.flash_free = UINT64_MAX;
    assert_int_equal(control_status_json(&s, buf, sizeof(buf), &len), 0);
    assert_non_null(strstr(buf, "\"free\":null}"));
}

static void test_topic_bounds(void **state)
{
    (void)state;
    char buf[CONTROL_TOPIC_MAX];
    char prefix[AGENT_CONTROL_PREFIX_MAX + 1];
    memset(prefix, 'p', AGENT_CONTROL_PREFIX_MAX);
    prefix[AGENT_CONTROL_PREFIX_MAX] = 0;
    /* the longest prefix and device id with a 48-byte leaf fit */
    char leaf[49];
    memset(leaf, 'l', 48);
    leaf[48] = 0;
    assert_int_equal(control_topic(buf, sizeof(buf), prefix, ID64, leaf), 0);
    assert_int_equal(strlen(buf), 128 + 1 + 64 + 1 + 48);
    assert_int_equal(control_topic(buf, 7, "a", "b", "cd"), 0);
    assert_string_equal(buf, "a/b/cd");
    assert_int_equal(control_topic(buf, 6, "a", "b", "cd"), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_largest_status_fits_its_bound),
        cmocka_unit_test(test_short_buffer_refuses_the_whole_document),
        cmocka_unit_test(test_offline_document_is_exact),
        cmocka_unit_test(test_unknown_free_space_is_null),
        cmocka_unit_test(test_topic_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
