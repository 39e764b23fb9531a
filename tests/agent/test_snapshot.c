/*
 * test_snapshot.c -- snapshots on flash (agent/snapshot.c), the tar stream
 * (agent/tar.c), the upload worker's pure helpers and the snapshot/upload
 * configuration, on real files in a temporary directory.
 */
#include "../core/test_util.h"

#include "config.h"
#include "snapshot.h"
#include "tar.h"
#include "upload.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mbedtls/sha256.h>

typedef struct fx {
    char *base;
    char store[1024], root[1024];
    ts_store *s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->base = tu_tmpdir("snap");
    snprintf(f->store, sizeof(f->store), "%s/store", f->base);
    snap_root(f->store, f->root, sizeof(f->root));
    f->s = tu_open(f->store, NULL);
    *state = f;
    return f->s ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    ts_close(f->s);
    tu_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

/* Saves tensors k0..k0+n-1 named topic, 300 floats each. */
static void fill(fx *f, uint64_t k0, int n, const char *topic)
{
    for (int i = 0; i < n; i++) {
        tu_tensor x;
        tu_tensor_init(&x, k0 + (uint64_t)i, 300, (float)(k0 + (uint64_t)i));
        x.t.name = topic;
        assert_int_equal(ts_save(f->s, &x.t), 0);
        tu_tensor_free(&x);
    }
}

/* Seals everything and finishes it; returns the snapshot's name. */
static void seal(fx *f, char *name, size_t len)
{
    char err[1024];
    ts_checkpoint_info info;
    size_t done = 0;
    assert_int_equal(snap_begin(f->s, f->root, "dev-1", name, len, &info, err, sizeof(err)), 0);
    assert_int_equal(snap_finish_all(f->root, "dev-1", &done, err, sizeof(err)), 0);
    assert_int_equal(done, 1);
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

static void sha_hex(const uint8_t sum[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

/* ---- sealing ------------------------------------------------------------ */

static void test_seal_moves_every_tensor_into_a_read_only_store(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], dir[2048], err[512];
    fill(f, 1, 5, "cam/a");
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    fill(f, 6, 3, "imu");
    seal(f, name, sizeof(name));
    assert_string_equal(name, "dev-1-00000000000000000001");
    /* Gone from the store, present in the snapshot. */
    assert_false(tu_check(f->s, 1, 300, 1));
    snprintf(dir, sizeof(dir), "%s/%s", f->root, name);
    ts_options ro;
    ts_options_init(&ro);
    ro.read_only = 1;
    ts_store *c = NULL;
    assert_int_equal(ts_open(dir, &ro, &c, err, sizeof(err)), 0);
    for (uint64_t k = 1; k <= 8; k++)
        assert_true(tu_check(c, k, 300, (float)k));
    ts_close(c);
    snap_info si;
    assert_int_equal(snap_read(f->root, name, &si), 0);
    assert_int_equal(si.state, SNAP_SEALED);
    assert_int_equal(si.tensors, 8);
    assert_int_equal(si.seq, 1);
    assert_int_equal(strlen(si.tar_sha256), 64);
    /* MANIFEST.json counts per topic and hashes every file. */
    char *json = tu_path(dir, "MANIFEST.json");
    char buf[8192];
    FILE *fp = fopen(json, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    assert_non_null(strstr(buf, "\"cam/a\": 5"));
    assert_non_null(strstr(buf, "\"imu\": 3"));
    assert_non_null(strstr(buf, "\"device_id\": \"dev-1\""));
    assert_non_null(strstr(buf, "\"seq_range\": [1, 8]"));
    uint64_t bad = 9;
    assert_int_equal(snap_verify(f->root, name, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
    /* Nothing left: a second seal finds nothing to do. */
    ts_checkpoint_info info;
    assert_int_equal(snap_begin(f->s, f->root, "dev-1", name, sizeof(name), &info, err,
                                sizeof(err)),
                     TS_ENOTFOUND);
}

static void count_bad(void *ctx, const char *msg)
{
    (void)msg;
    (*(int *)ctx)++;
}

static void test_verify_names_a_damaged_file(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], dir[2048];
    int seen = 0;
    uint64_t bad = 0;
    fill(f, 1, 4, "t");
    seal(f, name, sizeof(name));
    snprintf(dir, sizeof(dir), "%s/%s", f->root, name);
    char *sst = tu_path(dir, "sst_000000.sst");
    tu_flip(sst, 200);
    assert_int_equal(snap_verify(f->root, name, count_bad, &seen, &bad), TS_ECORRUPT);
    assert_int_equal(bad, 1);
    assert_int_equal(seen, 1);
}

static void test_recover_releases_a_committed_seal_and_drops_a_half_made_one(void **state)
{
    fx *f = *state;
    char err[512], tmp[2048], dst[2048], leftover[2048];
    ts_checkpoint_info info;
    size_t n_seals = 0, done = 0;
    fill(f, 1, 3, "t");
    /* As if the process died between committing .seal-NAME and ts_release. */
    assert_int_equal(mkdir(f->root, 0755), 0);
    snprintf(tmp, sizeof(tmp), "%s/.seal-new", f->root);
    assert_int_equal(ts_checkpoint(f->s, tmp, &info), 0);
    snprintf(dst, sizeof(dst), "%s/.seal-dev-1-00000000000000000001", f->root);
    assert_int_equal(rename(tmp, dst), 0);
    /* ... and a later checkpoint that never got its rename. */
    fill(f, 10, 2, "t");
    assert_int_equal(ts_checkpoint(f->s, tmp, &info), 0);
    snprintf(leftover, sizeof(leftover), "%s", tmp);
    assert_true(tu_check(f->s, 1, 300, 1));
    assert_int_equal(snap_recover(f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_int_equal(n_seals, 1);
    assert_false(tu_exists(leftover));
    assert_false(tu_check(f->s, 1, 300, 1));  /* released: lives in the seal */
    assert_true(tu_check(f->s, 10, 300, 10)); /* never committed: still here */
    assert_int_equal(snap_finish_all(f->root, "dev-1", &done, err, sizeof(err)), 0);
    assert_int_equal(done, 1);
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(f->root, &v, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].tensors, 3);
    free(v);
}

static void test_recover_turns_uploading_back_into_sealed(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], err[512];
    size_t n_seals = 0;
    snap_info si;
    fill(f, 1, 2, "t");
    seal(f, name, sizeof(name));
    assert_int_equal(snap_read(f->root, name, &si), 0);
    si.state = SNAP_UPLOADING;
    si.attempts = 3;
    snprintf(si.error, sizeof(si.error), "line one\nline two");
    assert_int_equal(snap_write_state(f->root, &si), 0);
    assert_int_equal(snap_recover(f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_int_equal(snap_read(f->root, name, &si), 0);
    assert_int_equal(si.state, SNAP_SEALED);
    assert_int_equal(si.attempts, 3);
    assert_string_equal(si.error, "line one line two");
}

static void test_list_is_oldest_first_and_delete_removes(void **state)
{
    fx *f = *state;
    char a[SNAP_NAME_MAX], b[SNAP_NAME_MAX], dir[2048];
    fill(f, 1, 2, "t");
    seal(f, a, sizeof(a));
    fill(f, 3, 2, "t");
    seal(f, b, sizeof(b));
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(f->root, &v, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, a);
    assert_string_equal(v[1].name, b);
    assert_true(v[0].disk_bytes > 2 * 300 * 4);
    free(v);
    assert_int_equal(snap_delete(f->root, a), 0);
    snprintf(dir, sizeof(dir), "%s/%s", f->root, a);
    assert_false(tu_exists(dir));
    assert_int_equal(snap_list(f->root, &v, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, b);
    free(v);
}

/* ---- the tar stream ------------------------------------------------------- */

static void test_tar_stream_has_the_length_and_sha256_fixed_at_seal(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], hexsum[65];
    uint8_t buf[1000], sum[32];
    tar_member *m = NULL;
    size_t n = 0, got = 0;
    uint64_t total = 0;
    snap_info si;
    fill(f, 1, 7, "t");
    seal(f, name, sizeof(name));
    assert_int_equal(snap_read(f->root, name, &si), 0);
    assert_int_equal(snap_members(f->root, name, &m, &n), 0);
    assert_int_equal(n, 3); /* sst, MANIFEST, MANIFEST.json */
    assert_string_equal(m[n - 1].name, "MANIFEST.json");
    assert_int_equal(tar_stream_len(m, n), si.tar_bytes);
    tar_stream *t = tar_stream_new(plat_vfs_default(), name, m, n, snap_tar_mtime(&si));
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    /* An odd chunk size crosses every header/data/pad boundary. */
    do {
        assert_int_equal(tar_stream_read(t, buf, sizeof(buf) - 3, &got), 0);
        mbedtls_sha256_update_ret(&c, buf, got);
        total += got;
    } while (got);
    mbedtls_sha256_finish_ret(&c, sum);
    mbedtls_sha256_free(&c);
    sha_hex(sum, hexsum);
    assert_int_equal(total, si.tar_bytes);
    assert_string_equal(hexsum, si.tar_sha256);
    tar_stream_free(t);
    free(m);
}

static void test_tar_header_is_ustar_with_a_valid_checksum(void **state)
{
    (void)state;
    uint8_t h[TAR_BLOCK];
    unsigned sum = 0;
    assert_int_equal(tar_header("dev-1-0001", "sst_000000.sst", 1234, 1700000000, h), 0);
    assert_memory_equal(h + 257, "ustar\0" "00", 8);
    assert_string_equal((char *)h, "sst_000000.sst");
    assert_string_equal((char *)h + 345, "dev-1-0001");
    assert_string_equal((char *)h + 124, "00000002322"); /* 1234 octal */
    assert_int_equal(h[156], '0');
    unsigned stored = (unsigned)strtoul((char *)h + 148, NULL, 8);
    memset(h + 148, ' ', 8);
    for (int i = 0; i < TAR_BLOCK; i++)
        sum += h[i];
    assert_int_equal(stored, sum);
    /* Sizes past 8 GiB take the base-256 form. */
    assert_int_equal(tar_header("d", "big", 1ull << 40, 0, h), 0);
    assert_int_equal(h[124], 0x80);
    assert_int_equal(h[124 + 6], 1); /* 2^40 = byte 5 from the end of 12 */
    char longname[120];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(tar_header("d", longname, 1, 0, h), -ENAMETOOLONG);
}

static void test_tar_stream_fails_on_a_file_shorter_than_declared(void **state)
{
    fx *f = *state;
    char *path = put(f->base, "short", "abc");
    tar_member m = {.path = path, .name = "short", .size = 10};
    tar_stream *t = tar_stream_new(plat_vfs_default(), "d", &m, 1, 0);
    uint8_t buf[4096];
    size_t got = 0;
    assert_int_equal(tar_stream_read(t, buf, sizeof(buf), &got), -EIO);
    assert_non_null(strstr(tar_stream_error(t), "shorter"));
    tar_stream_free(t);
    free(path);
}

/* ---- parsers ------------------------------------------------------------- */

static void test_state_and_manifest_lines_parse_strictly(void **state)
{
    (void)state;
    snap_info si;
    memset(&si, 0, sizeof(si));
    const char *ok = "state=uploaded\ntensors=12\ntar_bytes=3072\nattempts=2\nerror=HTTP 500\n";
    assert_int_equal(snap_parse_state(ok, strlen(ok), &si), 0);
    assert_int_equal(si.state, SNAP_UPLOADED);
    assert_int_equal(si.tensors, 12);
    assert_int_equal(si.attempts, 2);
    assert_string_equal(si.error, "HTTP 500");
    assert_int_equal(snap_parse_state("state=gone\n", 11, &si), TS_ECORRUPT);
    assert_int_equal(snap_parse_state("garbage\n", 8, &si), TS_ECORRUPT);
    char name[64], sha[65];
    uint64_t bytes = 0;
    const char *line = "    {\"name\": \"sst_000001.sst\", \"bytes\": 42, \"sha256\": "
                       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"},";
    assert_int_equal(snap_parse_file_line(line, name, sizeof(name), &bytes, sha), 1);
    assert_string_equal(name, "sst_000001.sst");
    assert_int_equal(bytes, 42);
    assert_int_equal(snap_parse_file_line("{\"name\": \"../x\", \"bytes\": 1, \"sha256\": \"00\"}",
                                          name, sizeof(name), &bytes, sha),
                     0);
    assert_int_equal(snap_parse_file_line("  \"files\": [", name, sizeof(name), &bytes, sha), 0);
}

static void test_device_ids_that_cannot_name_files_are_refused(void **state)
{
    (void)state;
    assert_true(snap_device_id_ok("edge-demo_01.a"));
    assert_false(snap_device_id_ok(""));
    assert_false(snap_device_id_ok(".hidden"));
    assert_false(snap_device_id_ok("a/b"));
    assert_false(snap_device_id_ok("space here"));
    char big[80];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_false(snap_device_id_ok(big));
}

/* ---- upload helpers -------------------------------------------------------- */

static void test_retry_classes_follow_the_status(void **state)
{
    (void)state;
    assert_true(upload_retryable(500));
    assert_true(upload_retryable(503));
    assert_true(upload_retryable(408));
    assert_true(upload_retryable(429));
    assert_true(upload_retryable(-110)); /* a transport error */
    assert_false(upload_retryable(400));
    assert_false(upload_retryable(403));
    assert_false(upload_retryable(404));
    assert_false(upload_retryable(301));
}

static void test_object_key_joins_prefix_device_and_name(void **state)
{
    (void)state;
    char k[256];
    assert_int_equal(upload_object_key("fleet/", "dev-1", "dev-1-0001", k, sizeof(k)), 0);
    assert_string_equal(k, "fleet/dev-1/dev-1-0001.tar");
    assert_int_equal(upload_object_key("", "dev-1", "dev-1-0001", k, sizeof(k)), 0);
    assert_string_equal(k, "dev-1/dev-1-0001.tar");
    assert_int_equal(upload_object_key("/a/b/", "d", "n", k, sizeof(k)), 0);
    assert_string_equal(k, "a/b/d/n.tar");
    assert_int_equal(upload_object_key("p", "d", "n", k, 5), -ENAMETOOLONG);
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
    agent_config_free(&cfg);
    snprintf(extra, sizeof(extra),
             "upload:\n  url: https://s3.local:9443/base/\n  mode: s3\n  ca_file: %s\n"
             "  prefix: fleet\n  response_timeout: 90s\n"
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
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(extra, sizeof(extra), bad[i].extra, ca);
        assert_int_equal(load(f, bad[i].storage, extra, &cfg, err, sizeof(err)), -1);
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
    assert_int_equal(agent_config_load(path, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "device_id"));
    agent_config_free(&cfg);
    free(ca);
    free(sec);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_seal_moves_every_tensor_into_a_read_only_store),
        T(test_verify_names_a_damaged_file),
        T(test_recover_releases_a_committed_seal_and_drops_a_half_made_one),
        T(test_recover_turns_uploading_back_into_sealed),
        T(test_list_is_oldest_first_and_delete_removes),
        T(test_tar_stream_has_the_length_and_sha256_fixed_at_seal),
        cmocka_unit_test(test_tar_header_is_ustar_with_a_valid_checksum),
        T(test_tar_stream_fails_on_a_file_shorter_than_declared),
        cmocka_unit_test(test_state_and_manifest_lines_parse_strictly),
        cmocka_unit_test(test_device_ids_that_cannot_name_files_are_refused),
        cmocka_unit_test(test_retry_classes_follow_the_status),
        cmocka_unit_test(test_object_key_joins_prefix_device_and_name),
        T(test_upload_config_is_checked_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
