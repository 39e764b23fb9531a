/*
 * test_config.c -- loading agent.yaml: the committed example loads, units
 * parse, and every kind of mistake is reported as FILE:LINE:COL with what
 * was expected; secrets are read from their file and never echoed.
 */
#include "config.h"
#include "http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static char dir[64];

static const char *write_yaml(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static const char base_yaml[] = "device_id: d1\n"
                                "storage:\n"
                                "  dir: /tmp/x\n"
                                "mqtt:\n"
                                "  host: localhost\n"
                                "  subscriptions:\n"
                                "    - topic: a/b\n"
                                "      format: npy\n";

/* Loads text (base config plus extra lines) and returns the error, or "" */
static const char *load(const char *text, agent_config *cfg)
{
    static char err[512];
    err[0] = 0;
    const char *path = write_yaml("agent.yaml", text);
    if (agent_config_load(path, cfg, err, sizeof(err)) == 0)
        err[0] = 0;
    return err;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/embeddb-conf-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The example leaves device_id to the host name: the loader's host-name
 * hook stands in for the machine's, so every machine checks all of it. */
static void test_committed_example_loads(void **state)
{
    (void)state;
    agent_config cfg;
    char err[512];
    agent_config_env env = {.hostname = "edge-test-01"};
    if (agent_config_load_env(AGENT_EXAMPLE, &env, &cfg, err, sizeof(err)))
        fail_msg("%s", err);
    assert_string_equal(cfg.device_id, "edge-test-01");
    assert_string_equal(cfg.storage.dir, "/var/lib/embeddb");
    assert_int_equal(cfg.storage.memtable_max, 16u << 20);
    assert_int_equal(cfg.storage.fsync, 1);
    assert_int_equal(cfg.storage.max_disk, 1u << 30);
    assert_int_equal(cfg.storage.min_free, 64u << 20);
    assert_int_equal(cfg.storage.on_full, AGENT_ON_FULL_DROP_OLDEST);
    assert_string_equal(cfg.mqtt.host, "127.0.0.1");
    assert_int_equal(cfg.mqtt.port, 1883);
    assert_string_equal(cfg.mqtt.client_id, "embeddb-edge-test-01");
    assert_int_equal(cfg.mqtt.keepalive_ms, 30000);
    assert_int_equal(cfg.mqtt.clean_session, 0);
    assert_int_equal(cfg.mqtt.protocol, 311);
    assert_null(cfg.mqtt.username);
    assert_null(cfg.mqtt.password);
    assert_int_equal(cfg.mqtt.max_payload, 16u << 20);
    assert_int_equal(cfg.mqtt.tls_enabled, 0);
    assert_int_equal(cfg.mqtt.n_subs, 4);
    static const struct {
        const char *topic;
        int qos;
        payload_format f;
        ts_dtype dt;
    } subs[] = {{"sensors/+/frame", 1, PAYLOAD_NPY, 0},
                {"sensors/imu", 1, PAYLOAD_RAW, TS_F32},
                {"sensors/+/json", 1, PAYLOAD_JSON, 0},
                {"sensors/+/csv", 0, PAYLOAD_CSV, TS_F32}};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(cfg.mqtt.subs[i].topic, subs[i].topic);
        assert_int_equal(cfg.mqtt.subs[i].qos, subs[i].qos);
        assert_int_equal(cfg.mqtt.subs[i].spec.format, subs[i].f);
        assert_int_equal(cfg.mqtt.subs[i].spec.dtype, subs[i].dt);
        assert_int_equal(cfg.mqtt.subs[i].spec.has_shape, i == 1);
        assert_int_equal(cfg.mqtt.subs[i].spec.max_payload, 16u << 20);
    }
    assert_int_equal(cfg.mqtt.subs[1].spec.ndim, 2);
    assert_int_equal(cfg.mqtt.subs[1].spec.shape[0], 4);
    assert_int_equal(cfg.mqtt.subs[1].spec.shape[1], 3);
    assert_int_equal(cfg.batch.max_tensors, 64);
    assert_int_equal(cfg.batch.max_bytes, 4u << 20);
    assert_int_equal(cfg.batch.max_delay_ms, 200);
    assert_int_equal(cfg.snapshot.max_bytes, 64u << 20);
    assert_int_equal(cfg.snapshot.interval_ms, 3600000);
    assert_int_equal(cfg.snapshot.keep, 2);
    assert_false(cfg.upload.enabled);
    assert_int_equal(cfg.log.level, LOG_LEVEL_INFO);
    agent_config_free(&cfg);
    /* Where the host name cannot stand in for device_id, the file says so. */
    env.hostname = "localhost";
    assert_int_equal(agent_config_load_env(AGENT_EXAMPLE, &env, &cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "device_id: not set, and the host name 'localhost'"));
    agent_config_free(&cfg);
}

static void test_device_id_defaults_to_a_usable_host_name(void **state)
{
    (void)state;
    char *id = NULL, err[256];
    assert_int_equal(config_device_id_from_host("board-17.fleet", &id, err, sizeof(err)), 0);
    assert_string_equal(id, "board-17.fleet");
    free(id);
    static const char *const bad[] = {"localhost", "", "board 17", "bo/ard",
        "a-host-name-longer-than-sixty-four-characters-which-no-id-can-be-x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_device_id_from_host(bad[i], &id, err, sizeof(err)), -EINVAL);
        assert_null(id);
        assert_non_null(strstr(err, "set device_id, unique per board"));
    }
}

static void test_defaults_fill_optional_keys(void **state)
{
    (void)state;
    agent_config cfg;
    assert_string_equal(load(base_yaml, &cfg), "");
    assert_int_equal(cfg.storage.fsync, 1);
    assert_int_equal(cfg.mqtt.clean_session, 0);
    assert_int_equal(cfg.batch.max_tensors, 64);
    assert_int_equal(cfg.mqtt.subs[0].qos, 1);
    assert_int_equal(cfg.mqtt.tls_enabled, 0);
    agent_config_free(&cfg);
}

static void test_units(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(config_parse_size("4MiB", &v), 0);
    assert_int_equal(v, 4u << 20);
    assert_int_equal(config_parse_size("512 KiB", &v), 0);
    assert_int_equal(v, 512 * 1024);
    assert_int_equal(config_parse_size("1GB", &v), 0);
    assert_int_equal(v, 1000000000);
    assert_int_equal(config_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(config_parse_size("4 MB/s", &v), -EINVAL);
    assert_int_equal(config_parse_size("-1", &v), -EINVAL);
    assert_int_equal(config_parse_size("99999999999999GiB", &v), -EINVAL);
    assert_int_equal(config_parse_duration_ms("200ms", &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(config_parse_duration_ms("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(config_parse_duration_ms("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(config_parse_duration_ms("200", &v), -EINVAL);
    assert_int_equal(config_parse_duration_ms("fast", &v), -EINVAL);
}

static void expect_error(const char *text, const char *where, const char *what)
{
    agent_config cfg;
    const char *err = load(text, &cfg);
    if (!strstr(err, where) || !strstr(err, what))
        fail_msg("expected '%s' ... '%s', got '%s'", where, what, err);
    agent_config_free(&cfg);
}

static void test_errors_name_file_line_column_and_expectation(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof(text), "%sbatchh:\n  max_tensors: 3\n", base_yaml);
    expect_error(text, "agent.yaml:9:1:", "unknown key 'batchh' (expected one of: device_id,");
    snprintf(text, sizeof(text), "%s  port: abc\n", base_yaml);
    expect_error(text, "agent.yaml:9:9:", "mqtt.port: expected an integer 1..65535, got 'abc'");
    snprintf(text, sizeof(text), "%s  port: 70000\n", base_yaml);
    expect_error(text, ":9:9:", "1..65535");
    snprintf(text, sizeof(text), "%sbatch:\n  max_delay_ms: 200\n", base_yaml);
    expect_error(text, ":10:17:", "batch.max_delay_ms: expected a duration with a unit");
    snprintf(text, sizeof(text), "%sbatch:\n  max_bytes: 4 parsecs\n", base_yaml);
    expect_error(text, ":10:14:", "expected a size like 4MiB");
    snprintf(text, sizeof(text), "%sstorage:\n  dir: /x\n", base_yaml);
    expect_error(text, ":9:1:", "storage: given twice");
    snprintf(text, sizeof(text), "%slog:\n  level: chatty\n", base_yaml);
    expect_error(text, ":10:10:", "log.level: expected error, warning, notice, info or debug");
    expect_error("device_id: d1\nstorage:\n  memtable_max: 1MiB\nmqtt:\n  host: h\n"
                 "  subscriptions: [{topic: t, format: npy}]\n",
                 "agent.yaml:3:3:", "storage: missing required key 'dir'");
    expect_error("device_id: d1\nstorage: {dir: /x}\n", "agent.yaml:1:1:",
                 "missing required key 'mqtt'");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions:\n"
                 "    - topic: t\n      format: raw\n",
                 ":6:7:", "mqtt.subscriptions[0]: format raw needs dtype and shape");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions:\n"
                 "    - topic: t\n      format: xml\n",
                 ":7:15:", "mqtt.subscriptions[0].format: expected npy, raw, json or csv");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions:\n"
                 "    - topic: t\n      format: raw\n      dtype: float128\n      shape: [2]\n",
                 ":8:14:", "unknown dtype 'float128'");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions: []\n",
                 ":5:18:", "expected a non-empty list");
    expect_error("device_id: [a, b]\n", ":1:12:", "device_id: expected a single value");
    expect_error("device_id: d1\n  bad indent: [\n", "agent.yaml:", "YAML syntax");
    snprintf(text, sizeof(text), "%s  tls:\n    ca_file: /nonexistent/ca.pem\n", base_yaml);
    expect_error(text, ":10:14:", "mqtt.tls.ca_file: cannot read '/nonexistent/ca.pem'");
    agent_config cfg;
    char err[256];
    assert_int_equal(agent_config_load("/nonexistent/agent.yaml", &cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "/nonexistent/agent.yaml: cannot read"));
    agent_config_free(&cfg);
}

static void test_password_is_read_from_its_file_and_never_echoed(void **state)
{
    (void)state;
    char text[1024], pw[256];
    const char *pwfile = write_yaml("pw", "s3cret-Value\n");
    snprintf(pw, sizeof(pw), "%s", pwfile);
    agent_config cfg;
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: %s\n", base_yaml, pw);
    assert_string_equal(load(text, &cfg), "");
    assert_string_equal(cfg.mqtt.password, "s3cret-Value");
    agent_config_free(&cfg);
    /* A later error in the same file does not leak the secret. */
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: %s\n  port: x\n", base_yaml,
             pw);
    const char *err = load(text, &cfg);
    assert_non_null(strstr(err, "mqtt.port"));
    assert_null(strstr(err, "s3cret"));
    agent_config_free(&cfg);
    snprintf(text, sizeof(text), "%s  password_file: %s\n", base_yaml, pw);
    expect_error(text, "agent.yaml", "password_file needs mqtt.username");
}

/* base_yaml with the subscription's topic line replaced by `topic` (a YAML
 * scalar as written, quotes included) and `extra` appended. */
static const char *sub_yaml(char *out, size_t cap, const char *topic, const char *sub_extra,
                            const char *extra)
{
    snprintf(out, cap, "device_id: d1\nstorage:\n  dir: /tmp/x\nmqtt:\n  host: localhost\n"
             "  subscriptions:\n    - topic: %s\n      format: npy\n%s%s", topic, sub_extra,
             extra);
    return out;
}

static void test_topic_filters_follow_mqtt_and_fit_a_key(void **state)
{
    (void)state;
    static char text[80000], topic[72000];
    agent_config cfg;
    static const char *const good[] = {"a/#", "\"#\"", "+", "a/+/b", "+/+", "$SYS/#", "a//b",
                                       "\"sensors/\\u00fcmlaut\"", "/a", "a/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *err = load(sub_yaml(text, sizeof(text), good[i], "", ""), &cfg);
        if (err[0])
            fail_msg("topic %s: %s", good[i], err);
        agent_config_free(&cfg);
    }
    static const struct {
        const char *topic, *says;
    } bad[] = {
        {"a/#/b", "'#' only as the whole last level"},
        {"\"a/#b\"", "'#' only as the whole last level"},
        {"\"#a\"", "'#' only as the whole last level"},
        {"a+/b", "'+' only as a whole level"},
        {"a/b+", "'+' only as a whole level"},
        {"+a", "'+' only as a whole level"},
        {"\"a/\\0b\"", "NUL"},
        {"\"a\\tb\"", "control character"},
        {"\"a\\x85b\"", "control character"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = load(sub_yaml(text, sizeof(text), bad[i].topic, "", ""), &cfg);
        if (!strstr(err, "agent.yaml:7:14: mqtt.subscriptions[0].topic: ") ||
            !strstr(err, bad[i].says))
            fail_msg("topic %s: '%s', expected '%s'", bad[i].topic, err, bad[i].says);
        agent_config_free(&cfg);
    }
    /* MQTT's limit, 65535 bytes. */
    memset(topic, 'a', 70000);
    topic[70000] = 0;
    expect_error(sub_yaml(text, sizeof(text), topic, "", ""), ":7:14: mqtt.subscriptions[0].topic",
                 "65535");
    /* Keys are <topic>#<20 digits>, at most 1024 bytes: a filter that only
     * matches longer topics can never be stored. */
    memset(topic, 'a', 1003);
    topic[1003] = 0;
    assert_string_equal(load(sub_yaml(text, sizeof(text), topic, "", ""), &cfg), "");
    agent_config_free(&cfg);
    topic[1003] = 'a';
    topic[1004] = 0;
    expect_error(sub_yaml(text, sizeof(text), topic, "", ""), ":7:14: mqtt.subscriptions[0].topic",
                 "at most 1003");
    /* '+' may match an empty level, '/#' nothing: the shortest topic counts. */
    memcpy(topic, "+/", 2);
    memset(topic + 2, 'a', 1002);
    topic[1004] = 0;
    assert_string_equal(load(sub_yaml(text, sizeof(text), topic, "", ""), &cfg), "");
    agent_config_free(&cfg);
    topic[1004] = 'a';
    topic[1005] = 0;
    expect_error(sub_yaml(text, sizeof(text), topic, "", ""), "mqtt.subscriptions[0].topic",
                 "at most 1003");
    /* The same filter twice: the second entry could never be used. */
    expect_error(sub_yaml(text, sizeof(text), "a/+", "    - {topic: a/+, format: csv}\n", ""),
                 ":9:15: mqtt.subscriptions[1].topic", "given twice");
}

static void test_shapes_fit_max_payload(void **state)
{
    (void)state;
    char text[2048];
    agent_config cfg;
    const char *raw = "    - {topic: r, format: raw, dtype: float32, shape: %s}\n";
    char sub[256];
    snprintf(sub, sizeof(sub), raw, "[4294967296, 4294967296, 4294967296]");
    expect_error(sub_yaml(text, sizeof(text), "a", sub, ""),
                 ":9:54: mqtt.subscriptions[1].shape", "overflows");
    /* A raw tensor larger than mqtt.max_payload can never arrive. */
    snprintf(sub, sizeof(sub), raw, "[32, 32]");
    sub_yaml(text, sizeof(text), "a", sub, "");
    strcat(text, "  max_payload: 4KiB\n");
    assert_string_equal(load(text, &cfg), "");
    assert_int_equal(cfg.mqtt.subs[1].spec.shape[1], 32);
    agent_config_free(&cfg);
    sub_yaml(text, sizeof(text), "a", sub, "");
    strcat(text, "  max_payload: 4095\n");
    expect_error(text, ":9:54: mqtt.subscriptions[1].shape", "is 4096 bytes and can never arrive");
    /* csv and bare json need at least two bytes per value but the last. */
    snprintf(sub, sizeof(sub), "    - {topic: c, format: csv, shape: [2, 1024]}\n");
    sub_yaml(text, sizeof(text), "a", sub, "");
    strcat(text, "  max_payload: 4095\n");
    assert_string_equal(load(text, &cfg), "");
    agent_config_free(&cfg);
    sub_yaml(text, sizeof(text), "a", sub, "");
    strcat(text, "  max_payload: 4094\n");
    expect_error(text, ":9:38: mqtt.subscriptions[1].shape", "can never arrive");
    /* npy payloads carry their own dtype and shape: configured ones would be ignored. */
    expect_error(sub_yaml(text, sizeof(text), "a", "    - {topic: n, format: npy, dtype: int8}\n",
                          ""),
                 ":9:38: mqtt.subscriptions[1].dtype", "npy payloads carry their own");
}

static void test_upload_url_and_prefix_stay_in_place(void **state)
{
    (void)state;
    char text[4096], up[2048], prefix[1100];
    agent_config cfg;
    const char *ca = write_yaml("ca.pem", "x");
    static const struct {
        const char *url, *says;
    } bad_urls[] = {
        {"\"https://h/a\\r\\nX-Evil: 1\"", "control character"},
        {"\"https://h/a b\"", "upload.url: "},
        {"\"https://h h/\"", "upload.url: "},
        {"\"https://h/\\tb\"", "control character"},
        {"\"https://h/%zz\"", "upload.url: "},
        {"\"https://h\\x7f/\"", "control character"},
        {"\"https://h/\\u00e9\"", "upload.url: "},
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        snprintf(up, sizeof(up), "upload:\n  url: %s\n  ca_file: %s\n", bad_urls[i].url, ca);
        const char *err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (!strstr(err, "agent.yaml:10:8: upload.url: ") || !strstr(err, bad_urls[i].says))
            fail_msg("url %s: '%s'", bad_urls[i].url, err);
        agent_config_free(&cfg);
    }
    static const char *const good_prefixes[] = {"fleet", "fleet/site=berlin", "a.b-c_d~e/2026",
                                                "..a/b..", "x"};
    for (size_t i = 0; i < sizeof(good_prefixes) / sizeof(good_prefixes[0]); i++) {
        snprintf(up, sizeof(up), "upload:\n  url: https://h/base\n  ca_file: %s\n  prefix: %s\n",
                 ca, good_prefixes[i]);
        const char *err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (err[0])
            fail_msg("prefix %s: %s", good_prefixes[i], err);
        agent_config_free(&cfg);
    }
    static const char *const bad_prefixes[] = {
        "../../admin", "..", ".", "a/../b", "./a", "a/.", "/abs", "a//b", "a/",
        "\"a\\\\b\"", "\"a b\"", "\"a\\x01b\"", "\"a?b\"", "\"a%2e%2e\"", "\"a#b\"",
    };
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++) {
        snprintf(up, sizeof(up), "upload:\n  url: https://h/base\n  ca_file: %s\n  prefix: %s\n",
                 ca, bad_prefixes[i]);
        const char *err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (!strstr(err, "agent.yaml:12:11: upload.prefix: "))
            fail_msg("prefix %s: '%s'", bad_prefixes[i], err);
        agent_config_free(&cfg);
    }
    /* <prefix>/<device_id>/<device_id>-<20 digits>.tar.zst fits in 1023
     * bytes: with device_id d1 the prefix may have 988. */
    memset(prefix, 'p', 988);
    prefix[988] = 0;
    snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: %s\n  prefix: %s\n", ca,
             prefix);
    assert_string_equal(load(sub_yaml(text, sizeof(text), "a", "", up), &cfg), "");
    agent_config_free(&cfg);
    prefix[988] = 'p';
    prefix[989] = 0;
    snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: %s\n  prefix: %s\n", ca,
             prefix);
    expect_error(sub_yaml(text, sizeof(text), "a", "", up), ":12:11: upload.prefix: ",
                 "at most 988");
}

/* upload.compression, upload.level and upload.max_rate: both sides of
 * every limit (the rate's own, in test_ratelimit). */
static void test_upload_compression_and_level_are_checked(void **state)
{
    (void)state;
    char text[4096], up[2048];
    agent_config cfg;
    const char *ca = write_yaml("ca.pem", "x");
    static const struct {
        const char *extra, *err; /* err "" = loads */
        int codec, level;
    } cases[] = {
        {"", "", 0, 0},
        {"  compression: none\n", "", 0, 0},
        {"  compression: zstd\n", "", 2, 0},
        {"  compression: zstd\n  level: 1\n", "", 2, 1},
        {"  compression: zstd\n  level: 19\n", "", 2, 19},
        {"  compression: zstd\n  level: 20\n", ":13:10: upload.level: expected an integer 1..19", 0, 0},
        {"  compression: zstd\n  level: 0\n", ":13:10: upload.level: expected an integer 1..19", 0, 0},
        {"  compression: gzip\n  level: 9\n", "", 1, 9},
        {"  compression: gzip\n  level: 10\n", ":13:10: upload.level: gzip takes 1..9, got 10", 0, 0},
        {"  level: 3\n", ":12:10: upload.level: only with upload.compression zstd or gzip", 0, 0},
        {"  compression: xz\n", ":12:16: upload.compression: expected zstd, gzip or none, got 'xz'", 0, 0},
        {"  compression: ZSTD\n", "expected zstd, gzip or none", 0, 0},
        {"  max_rate: 2MiB\n", ":12:13: upload.max_rate: expected a rate like 2MiB/s", 0, 0},
        {"  max_rate: 512/s\n", ":12:13: upload.max_rate: expected a rate like 2MiB/s (1KiB/s", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: %s\n%s", ca,
                 cases[i].extra);
        const char *err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (cases[i].err[0] ? !strstr(err, cases[i].err) : err[0] != 0)
            fail_msg("case %zu: expected '%s', got '%s'", i, cases[i].err, err);
        if (!cases[i].err[0]) {
            assert_int_equal(cfg.upload.max_rate, 0);
            assert_int_equal(cfg.upload.compression, cases[i].codec);
            assert_int_equal(cfg.upload.level, cases[i].level);
        }
        agent_config_free(&cfg);
    }
}

static void test_upload_ciphersuites_are_known_aead_names(void **state)
{
    (void)state;
    char text[8192], up[6144];
    agent_config cfg;
    const char *ca = write_yaml("ca.pem", "x");
    snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: %s\n  ciphersuites:\n"
             "    - TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256\n"
             "    - TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256\n", ca);
    const char *err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
    assert_string_equal(err, "");
    assert_int_equal(cfg.upload.n_ciphersuites, 2);
    assert_int_equal(cfg.upload.ciphersuites[0],
                     http_ciphersuite_id("TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"));
    assert_int_equal(cfg.upload.ciphersuites[1],
                     http_ciphersuite_id("TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"));
    agent_config_free(&cfg);
    static const struct {
        const char *list, *err;
    } bad[] = {
        {"[TLS-NO-SUCH]", ":12:18: upload.ciphersuites: unknown cipher suite 'TLS-NO-SUCH'"},
        {"[TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256]", "is not an AEAD suite"},
        {"[]", "upload.ciphersuites: expected a non-empty list"},
        {"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "expected a non-empty list"},
        {"[[TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256]]", "a suite name must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: %s\n  ciphersuites: %s\n",
                 ca, bad[i].list);
        err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (!strstr(err, bad[i].err))
            fail_msg("%s: expected '%s', got '%s'", bad[i].list, bad[i].err, err);
        agent_config_free(&cfg);
    }
    /* 32 suites load, 33 do not. */
    for (int n = 32; n <= 33; n++) {
        size_t off = (size_t)snprintf(up, sizeof(up), "upload:\n  url: https://h/\n  ca_file: "
                                      "%s\n  ciphersuites:\n", ca);
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(up + off, sizeof(up) - off,
                                    "    - TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256\n");
        err = load(sub_yaml(text, sizeof(text), "a", "", up), &cfg);
        if (n == 32)
            assert_string_equal(err, "");
        else if (!strstr(err, "more than 32 suites"))
            fail_msg("33 suites: '%s'", err);
        agent_config_free(&cfg);
    }
}

static void test_budget_keys_agree(void **state)
{
    (void)state;
    char text[2048];
    agent_config cfg;
    /* max_disk holds the small-files reserve. */
    const char *fmt = "device_id: d1\nstorage:\n  dir: /tmp/x\n  max_disk: %u\n"
                      "mqtt: {host: h, subscriptions: [{topic: t, format: npy}]}\n"
                      "snapshot: {max_bytes: 16KiB}\nbatch: {max_bytes: %s}\n";
    snprintf(text, sizeof(text), fmt, AGENT_SMALL_FILES_RESERVE, "16KiB");
    assert_string_equal(load(text, &cfg), "");
    agent_config_free(&cfg);
    snprintf(text, sizeof(text), fmt, AGENT_SMALL_FILES_RESERVE - 1, "16KiB");
    expect_error(text, ":4:13: storage.max_disk: ", "reserve");
    /* A batch larger than the whole budget could never be committed. */
    snprintf(text, sizeof(text), fmt, 100000u, "100000");
    assert_string_equal(load(text, &cfg), "");
    agent_config_free(&cfg);
    snprintf(text, sizeof(text), fmt, 100000u, "100001");
    expect_error(text, ":7:20: batch.max_bytes: ", "storage.max_disk");
    /* A snapshot holds at most AGENT_MAX_SSTS_PER_SNAPSHOT SSTs. */
    const char *snap = "device_id: d1\nstorage: {dir: /tmp/x, memtable_max: 4KiB}\n"
                       "mqtt: {host: h, subscriptions: [{topic: t, format: npy}]}\n"
                       "snapshot:\n  max_bytes: %llu\n";
    snprintf(text, sizeof(text), snap, (unsigned long long)AGENT_MAX_SSTS_PER_SNAPSHOT * 4096);
    assert_string_equal(load(text, &cfg), "");
    agent_config_free(&cfg);
    snprintf(text, sizeof(text), snap, (unsigned long long)AGENT_MAX_SSTS_PER_SNAPSHOT * 4096 + 1);
    expect_error(text, ":5:14: snapshot.max_bytes: ", "4096 SSTs");
    /* The default snapshot size against a memtable_max that is too small. */
    expect_error("device_id: d1\nstorage: {dir: /tmp/x, memtable_max: 8KiB}\n"
                 "mqtt: {host: h, subscriptions: [{topic: t, format: npy}]}\n",
                 ":2:38: storage.memtable_max: ", "4096 SSTs");
}

static void test_yaml_depth_documents_and_size_are_bounded(void **state)
{
    (void)state;
    static char text[1 << 21];
    agent_config cfg;
    /* The shape list sits 5 levels deep; 27 more make 32 (allowed, and the
     * walker then says what is wrong), 28 more make 33. */
    char shape[128];
    for (int extra = 27; extra <= 28; extra++) {
        memset(shape, '[', (size_t)extra + 1);
        shape[extra + 1] = '1';
        memset(shape + extra + 2, ']', (size_t)extra + 1);
        shape[2 * extra + 3] = 0;
        snprintf(text, sizeof(text), "device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n"
                 "  subscriptions:\n    - topic: t\n      format: raw\n      shape: %s\n", shape);
        const char *err = load(text, &cfg);
        if (extra == 27 && !strstr(err, "mqtt.subscriptions[0].shape: expected a size"))
            fail_msg("32 levels: %s", err);
        if (extra == 28 && !strstr(err, "agent.yaml:8:42: mqtt.subscriptions[0].shape: nested "
                                        "deeper than 32 levels"))
            fail_msg("33 levels: %s", err);
        agent_config_free(&cfg);
    }
    /* 100,000 levels: refused at once, not after a quadratic parse. */
    size_t n = 100000;
    memcpy(text, "device_id: ", 11);
    memset(text + 11, '[', n);
    memset(text + 11 + n, ']', n);
    text[11 + 2 * n] = 0;
    uint64_t t0 = (uint64_t)time(NULL);
    expect_error(text, "agent.yaml:1:43: device_id: ", "nested deeper than 32 levels");
    assert_true((uint64_t)time(NULL) - t0 < 3);
    /* Only one document is read: a second one is refused, not ignored. */
    snprintf(text, sizeof(text), "%s---\nlog: {level: debug}\n", base_yaml);
    expect_error(text, "agent.yaml:9:1: ", "one YAML document");
    /* A file past AGENT_CONFIG_MAX_BYTES is not a configuration. */
    snprintf(text, sizeof(text), "%s", base_yaml);
    size_t len = strlen(text);
    memset(text + len, '#', AGENT_CONFIG_MAX_BYTES - len - 1);
    text[AGENT_CONFIG_MAX_BYTES - 1] = '\n';
    text[AGENT_CONFIG_MAX_BYTES] = 0;
    assert_string_equal(load(text, &cfg), "");
    agent_config_free(&cfg);
    text[AGENT_CONFIG_MAX_BYTES] = '\n';
    text[AGENT_CONFIG_MAX_BYTES + 1] = 0;
    expect_error(text, "agent.yaml: ", "larger than");
}

static void test_strings_hold_no_nul_or_control_characters(void **state)
{
    (void)state;
    expect_error("device_id: d1\nstorage:\n  dir: \"/tmp/x\\0y\"\nmqtt: {host: h, "
                 "subscriptions: [{topic: t, format: npy}]}\n",
                 "agent.yaml:3:8: storage.dir: ", "NUL");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: \"h\\nevil\"\n"
                 "  subscriptions: [{topic: t, format: npy}]\n",
                 "agent.yaml:4:9: mqtt.host: ", "control character");
    expect_error("device_id: d1\n\"stor\\0age\": {dir: /x}\n", "agent.yaml:2:1: ", "NUL");
}

/* The broker's address is a host name or an IP address (v4 or v6), as
 * libmosquitto's connect takes it; anything else would fail only then. */
static void test_mqtt_host_is_a_host_name_or_address(void **state)
{
    (void)state;
    char text[1024];
    agent_config cfg;
    static const char *const good[] = {"broker.local", "10.0.0.1", "\"::1\"", "fe80::1",
                                       "my_broker-2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: %s\n"
                 "  subscriptions: [{topic: t, format: npy}]\n", good[i]);
        const char *err = load(text, &cfg);
        if (err[0])
            fail_msg("host %s: %s", good[i], err);
        agent_config_free(&cfg);
    }
    static const char *const bad[] = {"\"bro ker\"", "\"h/x\"", "\"[::1]\"", "mqtt://h",
                                      "\"h@x\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: %s\n"
                 "  subscriptions: [{topic: t, format: npy}]\n", bad[i]);
        expect_error(text, "agent.yaml:4:9: mqtt.host: ", "host name or IP address");
    }
}

/* Secrets: a regular file, read whole (never cut), never a FIFO that would
 * block the loader or a device. */
static void test_secret_files_are_regular_bounded_and_whole(void **state)
{
    (void)state;
    char text[2048], path[300], big[1100];
    agent_config cfg;
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10); /* the old loader blocked here forever */
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: %s\n", base_yaml, path);
    expect_error(text, "agent.yaml:10:18: mqtt.password_file: ", "not a regular file");
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: %s\n", base_yaml, dir);
    expect_error(text, "agent.yaml:10:18: mqtt.password_file: ", "not a regular file");
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: /dev/zero\n", base_yaml);
    expect_error(text, "agent.yaml:10:18: mqtt.password_file: ", "not a regular file");
    alarm(0);
    memset(big, 'p', 1023);
    big[1023] = 0;
    const char *pw = write_yaml("pw", big);
    snprintf(path, sizeof(path), "%s", pw);
    snprintf(text, sizeof(text), "%s  username: u\n  password_file: %s\n", base_yaml, path);
    assert_string_equal(load(text, &cfg), "");
    assert_int_equal(strlen(cfg.mqtt.password), 1023);
    agent_config_free(&cfg);
    big[1023] = 'p';
    big[1024] = 0;
    write_yaml("pw", big);
    expect_error(text, "agent.yaml:10:18: mqtt.password_file: ", "longer than 1023 bytes");
    write_yaml("pw", "ab\0cd"); /* fputs stops at the NUL: write it by hand */
    FILE *fp = fopen(path, "wb");
    fwrite("ab\0cd\n", 1, 6, fp);
    fclose(fp);
    expect_error(text, "agent.yaml:10:18: mqtt.password_file: ", "NUL");
    /* A bearer token goes into a header line: no line breaks inside. */
    const char *tok = write_yaml("tok", "abc\r\nX-Evil: 1\n");
    snprintf(path, sizeof(path), "%s", tok);
    const char *ca = write_yaml("ca.pem", "x");
    snprintf(text, sizeof(text), "%supload:\n  url: https://h/\n  ca_file: %s\n  token_file: %s\n",
             base_yaml, ca, path);
    expect_error(text, "agent.yaml:12:15: upload.token_file: ", "control character");
}

/* control.watermark_interval and control.dedup_publishers: both sides of
 * each limit; topics under $embeddb/ are the agent's own keys. */
static void test_watermark_keys_are_bounded(void **state)
{
    (void)state;
    char text[1024];
    agent_config cfg;
    assert_string_equal(load(base_yaml, &cfg), "");
    assert_int_equal(cfg.control.watermark_interval_ms, 1000);
    assert_int_equal(cfg.control.dedup_publishers, 64);
    agent_config_free(&cfg);
    static const struct {
        const char *v;
        uint64_t ms;
    } ok[] = {{"0s", 0}, {"100ms", 100}, {"1h", 3600000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "%scontrol:\n  watermark_interval: %s\n", base_yaml, ok[i].v);
        assert_string_equal(load(text, &cfg), "");
        assert_int_equal(cfg.control.watermark_interval_ms, ok[i].ms);
        agent_config_free(&cfg);
    }
    snprintf(text, sizeof(text), "%scontrol:\n  watermark_interval: 99ms\n", base_yaml);
    expect_error(text, ":10:23:", "control.watermark_interval: 99ms is too often (at least 100ms");
    snprintf(text, sizeof(text), "%scontrol:\n  watermark_interval: 3600001ms\n", base_yaml);
    expect_error(text, ":10:23:", "control.watermark_interval");
    for (uint64_t n = 0; n <= 4096; n += 4096) {
        snprintf(text, sizeof(text), "%scontrol:\n  dedup_publishers: %" PRIu64 "\n", base_yaml, n);
        assert_string_equal(load(text, &cfg), "");
        assert_int_equal(cfg.control.dedup_publishers, n);
        agent_config_free(&cfg);
    }
    snprintf(text, sizeof(text), "%scontrol:\n  dedup_publishers: 4097\n", base_yaml);
    expect_error(text, ":10:21:", "0..4096");
    snprintf(text, sizeof(text), "%scontrol:\n  dedup_publishers: -1\n", base_yaml);
    expect_error(text, ":10:21:", "0..4096");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions:\n"
                 "    - topic: $embeddb/dedup\n      format: npy\n",
                 ":6:14:", "topics under '$embeddb/' are the agent's own keys");
    expect_error("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n  subscriptions:\n"
                 "    - topic: $embeddb/#\n      format: npy\n",
                 ":6:14:", "'$embeddb/'");
    /* $embeddb alone, and other $ topics, are still topics */
    assert_string_equal(load("device_id: d1\nstorage: {dir: /x}\nmqtt:\n  host: h\n"
                             "  subscriptions:\n    - topic: $embeddb\n      format: npy\n", &cfg),
                        "");
    agent_config_free(&cfg);
}

/* capture.triggers: every key, both sides of every limit, and the trigger
 * filter's place inside a subscription. */
static void test_capture_triggers_are_checked(void **state)
{
    (void)state;
    char text[4096];
    agent_config cfg;
    static const char subs[] = "device_id: d1\nstorage:\n  dir: /tmp/x\nmqtt:\n  host: h\n"
                               "  subscriptions:\n    - {topic: \"alarms/#\", format: json}\n"
                               "    - {topic: \"s/+/v\", format: npy}\ncapture:\n  triggers:\n";
    snprintf(text, sizeof(text), "%s    - {on: alarms/fire, topics: [\"s/#\", x], pre: 1h, "
             "post: 10m, label: fire-1}\n    - {on: s/+/v, topics: [a]}\n", subs);
    const char *err = load(text, &cfg);
    assert_string_equal(err, "");
    assert_int_equal(cfg.capture.n_triggers, 2);
    assert_string_equal(cfg.capture.triggers[0].label, "fire-1");
    assert_int_equal(cfg.capture.triggers[0].n_topics, 2);
    assert_int_equal(cfg.capture.triggers[0].pre_ms, 3600000);
    assert_int_equal(cfg.capture.triggers[0].post_ms, 600000);
    assert_string_equal(cfg.capture.triggers[1].label, "trigger-1");
    assert_int_equal(cfg.capture.triggers[1].pre_ms, 30000); /* defaults */
    assert_int_equal(cfg.capture.triggers[1].post_ms, 10000);
    agent_config_free(&cfg);
    static const struct {
        const char *item, *what;
    } bad[] = {
        {"{on: alarms/x, topics: [a], pre: 3600001ms}", "out of range"},
        {"{on: alarms/x, topics: [a], post: 601s}", "out of range"},
        {"{on: alarms/x, topics: [a], pre: 0s, post: 0s}", "an empty window"},
        {"{on: alarms/x, topics: []}", "non-empty list"},
        {"{on: alarms/x, topics: [a, b, c, d, e, f, g, h, i]}", "more than 8"},
        {"{on: alarms/x, topics: [\"a/#/b\"]}", "'#' only as the whole last level"},
        {"{on: alarms/x, topics: [a], label: \".x\"}", "expected 1-64 of"},
        {"{on: alarms/x}", "missing required key 'topics'"},
        {"{topics: [a]}", "missing required key 'on'"},
        {"{on: alarms/x, topics: [a], colour: red}", "unknown key"},
        {"{on: other/x, topics: [a]}", "within no subscription"},
        {"{on: \"s/#\", topics: [a]}", "within no subscription"},
        {"{on: \"+/x\", topics: [a]}", "within no subscription"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%s    - %s\n", subs, bad[i].item);
        expect_error(text, "agent.yaml:", bad[i].what);
    }
    /* eight triggers fit, nine do not */
    size_t n = (size_t)snprintf(text, sizeof(text), "%s", subs);
    for (int i = 0; i < 9; i++) {
        if (i == 8) {
            assert_string_equal(load(text, &cfg), "");
            agent_config_free(&cfg);
        }
        n += (size_t)snprintf(text + n, sizeof(text) - n, "    - {on: alarms/a, topics: [a]}\n");
    }
    expect_error(text, "agent.yaml:", "more than 8 triggers");
    /* the filter-within rule itself */
    assert_true(config_filter_within("a/b", "a/b"));
    assert_true(config_filter_within("a/b", "a/+"));
    assert_true(config_filter_within("a/+", "a/+"));
    assert_true(config_filter_within("a/b/c", "a/#"));
    assert_true(config_filter_within("a", "a/#"));
    assert_true(config_filter_within("a/#", "#"));
    assert_false(config_filter_within("a/+", "a/b"));
    assert_false(config_filter_within("a/#", "a/+"));
    assert_false(config_filter_within("a/b/c", "a/+"));
    assert_false(config_filter_within("a", "a/+"));
    assert_false(config_filter_within("b", "a/#"));
}

/* snapshot.mode: on_trigger needs a ring bound, and room for four of its
 * snapshots (both sides). */
static void test_on_trigger_mode_needs_a_bounded_ring(void **state)
{
    (void)state;
    char text[1024];
    agent_config cfg;
    static const char disk[] = "device_id: d1\nstorage:\n  dir: /tmp/x\n  max_disk: 64MiB\n"
                               "mqtt:\n  host: h\n  subscriptions:\n"
                               "    - {topic: a, format: npy}\n";
    snprintf(text, sizeof(text), "%ssnapshot:\n  mode: on_trigger\n  max_bytes: 16MiB\n", disk);
    assert_string_equal(load(text, &cfg), "");
    assert_int_equal(cfg.snapshot.on_trigger, 1);
    agent_config_free(&cfg);
    snprintf(text, sizeof(text), "%ssnapshot:\n  mode: on_trigger\n  max_bytes: 16777217\n",
             disk);
    expect_error(text, "agent.yaml:", "at most a quarter of storage.max_disk");
    snprintf(text, sizeof(text), "%ssnapshot:\n  mode: on_trigger\n", base_yaml);
    expect_error(text, "agent.yaml:", "storage.max_disk, which must be set");
    snprintf(text, sizeof(text), "%ssnapshot:\n  mode: sometimes\n", base_yaml);
    expect_error(text, "agent.yaml:", "expected continuous or on_trigger");
    snprintf(text, sizeof(text), "%ssnapshot:\n  mode: continuous\n", base_yaml);
    assert_string_equal(load(text, &cfg), "");
    assert_int_equal(cfg.snapshot.on_trigger, 0);
    agent_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_example_loads),
        cmocka_unit_test(test_device_id_defaults_to_a_usable_host_name),
        cmocka_unit_test(test_defaults_fill_optional_keys),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_errors_name_file_line_column_and_expectation),
        cmocka_unit_test(test_password_is_read_from_its_file_and_never_echoed),
        cmocka_unit_test(test_topic_filters_follow_mqtt_and_fit_a_key),
        cmocka_unit_test(test_shapes_fit_max_payload),
        cmocka_unit_test(test_upload_url_and_prefix_stay_in_place),
        cmocka_unit_test(test_upload_compression_and_level_are_checked),
        cmocka_unit_test(test_upload_ciphersuites_are_known_aead_names),
        cmocka_unit_test(test_budget_keys_agree),
        cmocka_unit_test(test_yaml_depth_documents_and_size_are_bounded),
        cmocka_unit_test(test_strings_hold_no_nul_or_control_characters),
        cmocka_unit_test(test_mqtt_host_is_a_host_name_or_address),
        cmocka_unit_test(test_secret_files_are_regular_bounded_and_whole),
        cmocka_unit_test(test_watermark_keys_are_bounded),
        cmocka_unit_test(test_capture_triggers_are_checked),
        cmocka_unit_test(test_on_trigger_mode_needs_a_bounded_ring),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
