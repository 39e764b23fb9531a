/*
 * test_config.c -- loading agent.yaml: the committed example loads, units
 * parse, and every kind of mistake is reported as FILE:LINE:COL with what
 * was expected; secrets are read from their file and never echoed.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void test_committed_example_loads(void **state)
{
    (void)state;
    agent_config cfg;
    char err[512];
    /* It leaves device_id to the host name, so it loads where that is a
     * valid id, and says why not elsewhere. */
    char host[256] = "", *id = NULL, why[256];
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    if (config_device_id_from_host(host, &id, why, sizeof(why))) {
        assert_int_equal(agent_config_load(AGENT_EXAMPLE, &cfg, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "device_id: not set"));
        agent_config_free(&cfg);
        return;
    }
    assert_int_equal(agent_config_load(AGENT_EXAMPLE, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.device_id, id);
    free(id);
    assert_int_equal(cfg.storage.memtable_max, 16u << 20);
    assert_int_equal(cfg.mqtt.port, 1883);
    assert_string_equal(cfg.mqtt.client_id + strlen("embeddb-"), cfg.device_id);
    assert_int_equal(cfg.mqtt.keepalive_ms, 30000);
    assert_int_equal(cfg.mqtt.protocol, 311);
    assert_int_equal(cfg.mqtt.n_subs, 4);
    assert_int_equal(cfg.mqtt.subs[1].spec.format, PAYLOAD_RAW);
    assert_int_equal(cfg.mqtt.subs[1].spec.dtype, TS_F32);
    assert_int_equal(cfg.mqtt.subs[1].spec.shape[1], 3);
    assert_int_equal(cfg.mqtt.subs[3].qos, 0);
    assert_int_equal(cfg.mqtt.subs[0].spec.max_payload, 16u << 20);
    assert_int_equal(cfg.batch.max_delay_ms, 200);
    assert_int_equal(cfg.log.level, LOG_LEVEL_INFO);
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
        assert_int_equal(config_device_id_from_host(bad[i], &id, err, sizeof(err)), -1);
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
    assert_int_equal(config_parse_size("4 MB/s", &v), -1);
    assert_int_equal(config_parse_size("-1", &v), -1);
    assert_int_equal(config_parse_size("99999999999999GiB", &v), -1);
    assert_int_equal(config_parse_duration_ms("200ms", &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(config_parse_duration_ms("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(config_parse_duration_ms("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_int_equal(config_parse_duration_ms("200", &v), -1);
    assert_int_equal(config_parse_duration_ms("fast", &v), -1);
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
    assert_int_equal(agent_config_load("/nonexistent/agent.yaml", &cfg, err, sizeof(err)), -1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_example_loads),
        cmocka_unit_test(test_device_id_defaults_to_a_usable_host_name),
        cmocka_unit_test(test_defaults_fill_optional_keys),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_errors_name_file_line_column_and_expectation),
        cmocka_unit_test(test_password_is_read_from_its_file_and_never_echoed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
