/*
 * test_control.c -- fleet control's documents and topics (agent/control.c,
 * formats in agent/CONTROL.md): the largest status document fits
 * CONTROL_STATUS_MAX, a buffer one byte short of any document is refused
 * whole (never a cut document), topics on both sides of their buffer; the
 * command decoder's every verb and refusal, its limits on both sides, and
 * replies that escape what they echo.
 * The documents' content over MQTT is tested against mosquitto
 * (tests/integration/test_control.py).
 */
#include "control.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

static control_err dec(const char *verb, const char *body, control_cmd *c)
{
    char why[256];
    control_err e = control_cmd_decode(verb, body, strlen(body), c, why, sizeof(why));
    assert_true(e == CONTROL_OK || why[0]); /* every refusal says why */
    return e;
}

static void test_decode_every_verb_and_refusal(void **state)
{
    (void)state;
    control_cmd c;
    assert_int_equal(dec("status", "", &c), CONTROL_OK);
    assert_int_equal(c.verb, CONTROL_VERB_STATUS);
    assert_int_equal(dec("snapshot", " { } ", &c), CONTROL_OK);
    assert_int_equal(c.verb, CONTROL_VERB_SNAPSHOT);
    assert_int_equal(dec("upload", "{\"id\":\"a\\u0042\\/\",\"origin\":\"ops 1\"}", &c),
                     CONTROL_OK);
    assert_int_equal(c.verb, CONTROL_VERB_UPLOAD);
    assert_string_equal(c.id, "aB/");
    assert_string_equal(c.origin, "ops 1");
    /* an unknown verb still yields the id (3.1.1 replies are matched by it) */
    assert_int_equal(dec("reboot", "{\"id\":\"r1\"}", &c), CONTROL_E_UNKNOWN_VERB);
    assert_string_equal(c.id, "r1");
    assert_int_equal(dec("Status", "", &c), CONTROL_E_UNKNOWN_VERB);
    assert_int_equal(dec("", "", &c), CONTROL_E_UNKNOWN_VERB);
    const char *bad_json[] = {"{", "}", "[]", "{\"id\"}", "{\"id\":\"a\",}", "{\"id\":\"a\"} x",
                              "{\"id\":\"a\\q\"}", "{\"id\":\"a\\u12\"}", "{,}", "null",
                              "{\"id\":\"a\nb\"}", "{\"id\" \"a\"}"};
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
        assert_int_equal(dec("status", bad_json[i], &c), CONTROL_E_BAD_JSON);
    const char *bad_field[] = {"{\"id\":5}", "{\"id\":true}", "{\"id\":[\"a\"]}", "{\"x\":\"a\"}",
                               "{\"id\":\"\"}", "{\"id\":\"a\",\"id\":\"b\"}",
                               "{\"origin\":\"caf\\u00e9\"}", "{\"origin\":\"tab\\t\"}",
                               "{\"a-very-long-key-beyond-sixteen\":\"v\"}"};
    for (size_t i = 0; i < sizeof(bad_field) / sizeof(bad_field[0]); i++)
        assert_int_equal(dec("status", bad_field[i], &c), CONTROL_E_BAD_FIELD);
}

/* Both sides of CONTROL_CMD_MAX and CONTROL_ID_MAX. */
static void test_decode_limits_both_sides(void **state)
{
    (void)state;
    control_cmd c;
    char body[CONTROL_CMD_MAX + 2], why[256];
    memset(body, ' ', sizeof(body));
    body[0] = '{';
    body[CONTROL_CMD_MAX - 1] = '}';
    assert_int_equal(control_cmd_decode("status", body, CONTROL_CMD_MAX, &c, why, sizeof(why)),
                     CONTROL_OK);
    body[CONTROL_CMD_MAX - 1] = ' ';
    body[CONTROL_CMD_MAX] = '}';
    assert_int_equal(control_cmd_decode("status", body, CONTROL_CMD_MAX + 1, &c, why,
                                        sizeof(why)), CONTROL_E_TOO_LARGE);
    /* a body too large is refused unread: NULL with its size */
    assert_int_equal(control_cmd_decode("status", NULL, 1u << 20, &c, why, sizeof(why)),
                     CONTROL_E_TOO_LARGE);
    char doc[128];
    snprintf(doc, sizeof(doc), "{\"id\":\"%.64s\"}", ID64);
    assert_int_equal(dec("status", doc, &c), CONTROL_OK);
    assert_string_equal(c.id, ID64);
    snprintf(doc, sizeof(doc), "{\"id\":\"%.64sx\"}", ID64);
    assert_int_equal(dec("status", doc, &c), CONTROL_E_BAD_FIELD);
}

/* The capture verb: its keys, its rules across keys, and every limit on
 * both sides. */
static void test_decode_capture_and_its_limits(void **state)
{
    (void)state;
    control_cmd c;
    char doc[4096];
    assert_int_equal(dec("capture", "{\"label\":\"alarm-1\",\"topics\":[\"sensors/#\",\"a/+/b\"],"
                                    "\"pre\":\"30s\",\"post\":\"10s\",\"id\":\"x\"}", &c),
                     CONTROL_OK);
    assert_int_equal(c.verb, CONTROL_VERB_CAPTURE);
    assert_string_equal(c.cap.label, "alarm-1");
    assert_int_equal(c.cap.n_filters, 2);
    assert_string_equal(c.cap.filters[1], "a/+/b");
    assert_int_equal(c.cap.pre_ms, 30000);
    assert_int_equal(c.cap.post_ms, 10000);
    assert_false(c.cap.absolute);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":-5,"
                                    "\"to\":1000}", &c), CONTROL_OK);
    assert_true(c.cap.absolute);
    assert_int_equal(c.cap.from_ns, -5);
    assert_int_equal(c.cap.to_ns, 1000);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],"
                                    "\"to\":1764528000123456789,"
                                    "\"from\":1764527999123456789}", &c), CONTROL_OK);
    assert_int_equal(c.cap.to_ns, 1764528000123456789LL);
    /* pre and post: 0 on one side is fine; both limits, both sides */
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"1h\","
                                    "\"post\":\"10m\"}", &c), CONTROL_OK);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"3600001ms\"}",
                         &c), CONTROL_E_BAD_FIELD);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"post\":\"600001ms\"}",
                         &c), CONTROL_E_BAD_FIELD);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"post\":\"1ms\"}",
                         &c), CONTROL_OK);
    /* from..to: at most pre + post limits (4200 s) */
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":0,"
                                    "\"to\":4200000000000}", &c), CONTROL_OK);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":0,"
                                    "\"to\":4200000000001}", &c), CONTROL_E_BAD_FIELD);
    /* eight filters fit, nine do not; a filter of 256 bytes fits, 257 not */
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"pre\":\"1s\",\"topics\":[\"1\",\"2\","
                                    "\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"]}", &c), CONTROL_OK);
    assert_int_equal(dec("capture", "{\"label\":\"L\",\"pre\":\"1s\",\"topics\":[\"1\",\"2\","
                                    "\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}", &c),
                     CONTROL_E_BAD_FIELD);
    char f[258];
    memset(f, 'a', sizeof(f));
    f[256] = 0;
    snprintf(doc, sizeof(doc), "{\"label\":\"L\",\"pre\":\"1s\",\"topics\":[\"%s\"]}", f);
    assert_int_equal(dec("capture", doc, &c), CONTROL_OK);
    f[256] = 'a';
    f[257] = 0;
    snprintf(doc, sizeof(doc), "{\"label\":\"L\",\"pre\":\"1s\",\"topics\":[\"%s\"]}", f);
    assert_int_equal(dec("capture", doc, &c), CONTROL_E_BAD_FIELD);
    /* a label of 64 fits, 65 not */
    snprintf(doc, sizeof(doc), "{\"label\":\"%.64s\",\"pre\":\"1s\",\"topics\":[\"t\"]}", ID64);
    assert_int_equal(dec("capture", doc, &c), CONTROL_OK);
    snprintf(doc, sizeof(doc), "{\"label\":\"%.64sx\",\"pre\":\"1s\",\"topics\":[\"t\"]}",
             ID64);
    assert_int_equal(dec("capture", doc, &c), CONTROL_E_BAD_FIELD);
    const char *bad_field[] = {
        "{\"topics\":[\"t\"],\"pre\":\"1s\"}",                          /* no label */
        "{\"label\":\"L\",\"pre\":\"1s\"}",                             /* no topics */
        "{\"label\":\"L\",\"topics\":[\"t\"]}",                         /* no window */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"0s\",\"post\":\"0ms\"}", /* empty */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"30\"}",           /* no unit */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"-1s\"}",
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":30}",               /* not a string */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"1s\",\"from\":0,\"to\":1}", /* both */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":0}",               /* to missing */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":5,\"to\":5}",       /* from == to */
        "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":1.5,\"to\":9}",
        "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":\"0\",\"to\":9}",
        "{\"label\":\"L\",\"topics\":[\"t\"],\"from\":0,\"to\":99999999999999999999}",
        "{\"label\":\"a b\",\"topics\":[\"t\"],\"pre\":\"1s\"}",          /* label chars */
        "{\"label\":\".x\",\"topics\":[\"t\"],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":[],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":\"t\",\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":[\"a/#/b\"],\"pre\":\"1s\"}",       /* bad filters */
        "{\"label\":\"L\",\"topics\":[\"a+\"],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":[\"\"],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":[5],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"label\":\"M\",\"topics\":[\"t\"],\"pre\":\"1s\"}",
        "{\"label\":\"L\",\"topics\":[\"t\"],\"pre\":\"1s\",\"colour\":\"red\"}",
    };
    for (size_t i = 0; i < sizeof(bad_field) / sizeof(bad_field[0]); i++) {
        if (dec("capture", bad_field[i], &c) != CONTROL_E_BAD_FIELD)
            fail_msg("not bad_field: %s", bad_field[i]);
    }
    const char *bad_json[] = {"{\"label\":\"L\",\"topics\":[\"t\",]}", "{\"topics\":[\"t\"}",
                              "{\"from\":}", "{\"from\":-}", "{\"topics\":[\"t\""};
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        if (dec("capture", bad_json[i], &c) != CONTROL_E_BAD_JSON)
            fail_msg("not bad_json: %s", bad_json[i]);
    }
    /* capture's keys belong to capture alone */
    assert_int_equal(dec("snapshot", "{\"label\":\"L\"}", &c), CONTROL_E_BAD_FIELD);
}

/* The storm rule: folding moves the end up to 10 min past the first
 * firing (both sides), never back; a new window never starts before the
 * last one's end; an empty one is refused. */
static void test_trigger_window_folds_and_never_overlaps(void **state)
{
    (void)state;
    const int64_t S = 1000000000, MAX = (int64_t)CONTROL_POST_MAX_MS * 1000000;
    int64_t from = 0, to = 0;
    /* a first firing at 100 s: [70 s, 110 s) */
    assert_int_equal(control_trigger_window(0, 0, 0, 100 * S, 30000, 10000, &from, &to), 0);
    assert_int_equal(from, 70 * S);
    assert_int_equal(to, 110 * S);
    /* folded: the end follows the storm ... */
    assert_int_equal(control_trigger_window(1, 100 * S, 0, 150 * S, 30000, 10000, &from, &to), 1);
    assert_int_equal(from, 70 * S);
    assert_int_equal(to, 160 * S);
    /* ... never backwards ... */
    assert_int_equal(control_trigger_window(1, 100 * S, 0, 120 * S, 30000, 10000, &from, &to), 1);
    assert_int_equal(to, 160 * S);
    /* ... up to exactly 10 min past the first firing, and no further */
    assert_int_equal(control_trigger_window(1, 100 * S, 0, 100 * S + MAX - 10 * S, 30000, 10000,
                                            &from, &to), 1);
    assert_int_equal(to, 100 * S + MAX);
    assert_int_equal(control_trigger_window(1, 100 * S, 0, 100 * S + MAX - 10 * S + 1, 30000,
                                            10000, &from, &to), 1);
    assert_int_equal(to, 100 * S + MAX);
    assert_int_equal(control_trigger_window(1, 100 * S, 0, 100 * S + 2 * MAX, 30000, 10000, &from,
                                            &to), 1);
    assert_int_equal(to, 100 * S + MAX);
    /* the next window starts at the last one's end, not before */
    int64_t last = to;
    assert_int_equal(control_trigger_window(0, 0, last, last + 5 * S, 30000, 10000, &from, &to), 0);
    assert_int_equal(from, last);
    assert_int_equal(to, last + 15 * S);
    assert_int_equal(control_trigger_window(0, 0, last, last + 31 * S, 30000, 10000, &from, &to),
                     0);
    assert_int_equal(from, last + S);
    /* a firing whose whole window lies in the last one: none (both sides) */
    assert_int_equal(control_trigger_window(0, 0, last, last - 10 * S, 30000, 10000, &from, &to),
                     -1);
    assert_int_equal(control_trigger_window(0, 0, last, last - 10 * S + 1, 30000, 10000, &from,
                                            &to), 0);
    assert_int_equal(to - from, 1);
}

/* The reply escapes what it echoes and never passes its bound. */
static void test_reply_escapes_and_fits(void **state)
{
    (void)state;
    char buf[CONTROL_REPLY_MAX], verb[300], msg[600];
    size_t len;
    assert_int_equal(control_reply_json("b", "st\"a\\t\x01\xc3\xa9", "i\"d", CONTROL_E_UNKNOWN_VERB,
                                        "m\"\n", NULL, buf, sizeof(buf), &len), 0);
    assert_string_equal(buf, "{\"v\":1,\"device_id\":\"b\",\"verb\":\"st\\\"a\\\\t???\","
                             "\"id\":\"i\\\"d\",\"ok\":false,\"error\":\"unknown_verb\","
                             "\"message\":\"m\\\"?\"}");
    memset(verb, '"', sizeof(verb) - 1);
    verb[sizeof(verb) - 1] = 0;
    memset(msg, '\\', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = 0;
    char id[CONTROL_ID_MAX + 1];
    memset(id, '"', CONTROL_ID_MAX);
    id[CONTROL_ID_MAX] = 0;
    assert_int_equal(control_reply_json(ID64, verb, id, CONTROL_E_BAD_FIELD, msg, NULL, buf,
                                        sizeof(buf), &len), 0);
    assert_true(len < CONTROL_REPLY_MAX);
    assert_int_equal(control_reply_json("b", "status", "", CONTROL_OK, NULL,
                                        ",\"snapshot\":null", buf, sizeof(buf), &len), 0);
    assert_string_equal(buf, "{\"v\":1,\"device_id\":\"b\",\"verb\":\"status\",\"ok\":true,"
                             "\"snapshot\":null}");
    size_t cap = len; /* one byte short: no room for the NUL */
    assert_int_equal(control_reply_json("b", "status", "", CONTROL_OK, NULL, ",\"snapshot\":null",
                                        buf, cap, &len), -ENOSPC);
    assert_int_equal(len, 0);
    assert_int_equal(control_reply_json("b", "status", "", CONTROL_OK, NULL, ",\"snapshot\":null",
                                        buf, cap + 1, &len), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_largest_status_fits_its_bound),
        cmocka_unit_test(test_short_buffer_refuses_the_whole_document),
        cmocka_unit_test(test_offline_document_is_exact),
        cmocka_unit_test(test_unknown_free_space_is_null),
        cmocka_unit_test(test_topic_bounds),
        cmocka_unit_test(test_decode_every_verb_and_refusal),
        cmocka_unit_test(test_decode_limits_both_sides),
        cmocka_unit_test(test_decode_capture_and_its_limits),
        cmocka_unit_test(test_trigger_window_folds_and_never_overlaps),
        cmocka_unit_test(test_reply_escapes_and_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
