/*
 * test_upload_config.c -- the upload worker's pure helpers (agent/upload.c) and the
 * upload and snapshot sections of the configuration (agent/config.c).
 */
#include "../core/test_util.h"

#include "config.h"
#include "upload.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

typedef struct fx {
    char *base;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->base = tu_tmpdir("upload");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tu_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

/* Creates path holding the NUL-terminated text; returns a heap copy of the
 * path (tu_path's buffers are reused). */
static char *put(const char *dir, const char *name, const char *text)
{
    char *path = strdup(tu_path(dir, name));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* ---- upload helpers -------------------------------------------------------- */

static void test_retry_classes_follow_the_status(void **state)
{
    (void)state;
    assert_true(upload_retryable(0, 500));
    assert_true(upload_retryable(0, 503));
    assert_true(upload_retryable(0, 408));
    assert_true(upload_retryable(0, 429));
    assert_true(upload_retryable(-110, 0)); /* a transport error */
    assert_false(upload_retryable(-EBADMSG, 0)); /* a snapshot that cannot be read */
    assert_false(upload_retryable(0, 400));
    assert_false(upload_retryable(0, 403));
    assert_false(upload_retryable(0, 404));
    assert_false(upload_retryable(0, 301));
}

static void test_object_key_joins_prefix_device_and_name(void **state)
{
    (void)state;
    char k[256];
    assert_int_equal(upload_object_key("fleet/", "dev-1", "dev-1-0001", ".tar", k, sizeof(k)), 0);
    assert_string_equal(k, "fleet/dev-1/dev-1-0001.tar");
    assert_int_equal(upload_object_key("", "dev-1", "dev-1-0001", ".tar", k, sizeof(k)), 0);
    assert_string_equal(k, "dev-1/dev-1-0001.tar");
    assert_int_equal(upload_object_key("/a/b/", "d", "n", ".tar.zst", k, sizeof(k)), 0);
    assert_string_equal(k, "a/b/d/n.tar.zst");
    assert_int_equal(upload_object_key("p", "d", "n", ".tar", k, 5), -ENAMETOOLONG);
    assert_int_equal(upload_object_key("p", "d", "n", ".tar.gz", k, 12), -ENAMETOOLONG);
    assert_int_equal(upload_object_key("p", "d", "n", ".tar.gz", k, 13), 0);
}

/* ---- configuration ---------------------------------------------------------- */

static const char base_yaml[] = "device_id: dev-1\n"
                                "storage: {dir: /tmp/x%s}\n"
                                "mqtt:\n  host: h\n  subscriptions: [{topic: t, format: npy}]\n"
                                "%s";

/* Loads base_yaml with extra storage keys and extra top-level text. */
static int load(fx *f, const char *storage, const char *extra, agent_config *cfg, char *err,
                size_t errlen)
{
    char *path = tu_path(f->base, "agent.yaml");
    FILE *fp = fopen(path, "w");
    fprintf(fp, base_yaml, storage, extra);
    fclose(fp);
    int rc = agent_config_load(path, cfg, err, errlen);
    return rc;
}

static void test_upload_config_is_checked_whole(void **state)
{
    fx *f = *state;
    agent_config cfg;
    char err[1024], extra[1024];
    char *ca = put(f->base, "ca.pem", "x"), *sec = put(f->base, "secret", "s3cr3t\n");
    /* Defaults: no upload, snapshots of 64 MiB hourly, keep 2. */
    assert_int_equal(load(f, "", "", &cfg, err, sizeof(err)), 0);
    assert_false(cfg.upload.enabled);
    assert_int_equal(cfg.snapshot.max_bytes, 64u << 20);
    assert_int_equal(cfg.snapshot.interval_ms, 3600000);
    assert_int_equal(cfg.snapshot.keep, 2);
    assert_int_equal(cfg.storage.on_full, AGENT_ON_FULL_DROP_OLDEST);
    assert_int_equal(cfg.upload.response_timeout_ms, 60000);
    assert_int_equal(cfg.upload.part_size, 8u << 20);
    agent_config_free(&cfg);
    snprintf(extra, sizeof(extra),
             "upload:\n  url: https://s3.local:9443/base/\n  mode: s3\n  ca_file: %s\n"
             "  prefix: fleet\n  response_timeout: 90s\n  part_size: 5MiB\n"
             "  s3: {region: eu-1, bucket: b, access_key: AK, secret_file: %s, "
             "addressing: virtual}\n",
             ca, sec);
    assert_int_equal(load(f, ", on_full: reject_new", extra, &cfg, err, sizeof(err)), 0);
    assert_true(cfg.upload.enabled);
    assert_string_equal(cfg.upload.host, "s3.local");
    assert_int_equal(cfg.upload.port, 9443);
    assert_string_equal(cfg.upload.base_path, "/base");
    assert_string_equal(cfg.upload.secret, "s3cr3t");
    assert_true(cfg.upload.virtual_host);
    assert_int_equal(cfg.upload.response_timeout_ms, 90000);
    assert_int_equal(cfg.upload.part_size, 5u << 20); /* S3's minimum: taken */
    assert_int_equal(cfg.storage.on_full, AGENT_ON_FULL_REJECT_NEW);
    agent_config_free(&cfg);
    /* Each rule, with the key it is about in the message. */
    struct {
        const char *storage, *extra, *says;
    } bad[] = {
        {"", "upload: {url: http://h/, ca_file: %s}\n", "upload.url"},
        {"", "upload: {url: https://h/}\n", "ca_file is required"},
        {"", "upload: {url: https://h/, ca_file: %s, mode: s3}\n", "needs an s3 section"},
        {"", "upload: {url: https://h:0/, ca_file: %s}\n", "upload.url"},
        {"", "upload: {url: https://h/, ca_file: %s, mode: ftp}\n", "expected put or s3"},
        {", max_disk: 100MiB", "snapshot: {max_bytes: 64MiB}\n", "at least twice"},
        {", on_full: maybe", "", "drop_oldest or reject_new"},
        {"", "upload: {url: https://h/, ca_file: %s, retry: {initial: 10s, max: 1s}}\n",
         "initial must not exceed max"},
        /* upload.part_size: S3's 5 MiB..5 GiB, and only for s3. */
        {"", "upload: {url: https://h/, ca_file: %s, mode: s3, part_size: 5242879, s3: "
             "{region: r, bucket: b, access_key: a, secret_file: /dev/null}}\n",
         "upload.part_size: 5242879 is out of range"},
        {"", "upload: {url: https://h/, ca_file: %s, mode: s3, part_size: 6GiB, s3: "
             "{region: r, bucket: b, access_key: a, secret_file: /dev/null}}\n",
         "upload.part_size: 6GiB is out of range"},
        {"", "upload: {url: https://h/, ca_file: %s, part_size: 8MiB}\n",
         "upload.part_size: only with upload.mode s3"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(extra, sizeof(extra), bad[i].extra, ca);
        assert_int_equal(load(f, bad[i].storage, extra, &cfg, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].says);
        agent_config_free(&cfg);
    }
    /* The device id becomes a file name. */
    char *path = tu_path(f->base, "bad.yaml");
    FILE *fp = fopen(path, "w");
    fprintf(fp, "device_id: a/b\nstorage: {dir: /tmp/x}\nmqtt: {host: h, subscriptions: "
                "[{topic: t, format: npy}]}\n");
    fclose(fp);
    assert_int_equal(agent_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "device_id"));
    agent_config_free(&cfg);
    free(ca);
    free(sec);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_classes_follow_the_status),
        cmocka_unit_test(test_object_key_joins_prefix_device_and_name),
        T(test_upload_config_is_checked_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
