/*
 * test_snapshot.c -- the snapshot library (snapshot/): sealing, recovery,
 * finishing, listing, state, verification, the tar stream and the metadata
 * parsers, on real files in a temporary directory.
 */
#include "../core/test_util.h"

#include "embeddb/snapshot.h"
#include "embeddb/tar.h"

#include "snap_meta.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define V plat_vfs_default()

#include <mbedtls/md.h>

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
    assert_int_equal(snap_begin(V, f->s, f->root, "dev-1", name, len, &info, err, sizeof(err)), 0);
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
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
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
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
    assert_int_equal(snap_verify(V, f->root, name, NULL, NULL, &bad), 0);
    assert_int_equal(bad, 0);
    /* Nothing left: a second seal finds nothing to do. */
    ts_checkpoint_info info;
    assert_int_equal(snap_begin(V, f->s, f->root, "dev-1", name, sizeof(name), &info, err,
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
    assert_int_equal(snap_verify(V, f->root, name, count_bad, &seen, &bad), TS_ECORRUPT);
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
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_int_equal(n_seals, 1);
    assert_false(tu_exists(leftover));
    assert_false(tu_check(f->s, 1, 300, 1));  /* released: lives in the seal */
    assert_true(tu_check(f->s, 10, 300, 10)); /* never committed: still here */
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
    assert_int_equal(done, 1);
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
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
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
    si.state = SNAP_UPLOADING;
    si.attempts = 3;
    snprintf(si.error, sizeof(si.error), "line one\nline two");
    assert_int_equal(snap_write_state(V, f->root, &si), 0);
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
    assert_int_equal(si.state, SNAP_SEALED);
    assert_int_equal(si.attempts, 3);
    assert_string_equal(si.error, "line one line two");
}

/* Recovery rewrites only a STATE it can read: an unreadable one stays as it
 * is, for snap_list to show as failed and an operator to look at. */
static void test_recover_leaves_an_unreadable_state_alone(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], dir[2048], err[512], text[64] = {0};
    size_t n_seals = 0;
    fill(f, 1, 2, "t");
    seal(f, name, sizeof(name));
    snprintf(dir, sizeof(dir), "%s/%s", f->root, name);
    free(put(dir, "STATE", "state=uploading\nnot a key value line\n"));
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), 0);
    FILE *fp = fopen(tu_path(dir, "STATE"), "r");
    assert_non_null(fp);
    assert_true(fread(text, 1, sizeof(text) - 1, fp) > 0);
    fclose(fp);
    assert_string_equal(text, "state=uploading\nnot a key value line\n");
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].state, SNAP_FAILED);
    assert_non_null(strstr(v[0].error, "STATE unreadable"));
    free(v);
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
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, a);
    assert_string_equal(v[1].name, b);
    assert_true(v[0].disk_bytes > 2 * 300 * 4);
    free(v);
    assert_int_equal(snap_delete(V, f->root, a), 0);
    snprintf(dir, sizeof(dir), "%s/%s", f->root, a);
    assert_false(tu_exists(dir));
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, b);
    free(v);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A deleted snapshot's multipart upload is set aside for an abort, each one
 * under a name of its own, so none is left on the server unaborted. */
static void test_delete_sets_a_multipart_upload_aside_for_its_abort(void **state)
{
    fx *f = *state;
    char a[SNAP_NAME_MAX], p[2048], q[2048];
    fill(f, 1, 2, "t");
    seal(f, a, sizeof(a));
    assert_int_equal(snap_queue_abort(V, f->root, a), 0); /* none: nothing to do */
    snprintf(p, sizeof(p), "%s/%s/" SNAP_MULTIPART_NAME, f->root, a);
    write_text(p, "upload_id=one\n");
    assert_int_equal(snap_queue_abort(V, f->root, a), 0); /* as when it failed */
    assert_false(tu_exists(p));
    write_text(p, "upload_id=two\n");
    assert_int_equal(snap_delete(V, f->root, a), 0);
    for (int k = 1; k <= 2; k++) {
        char *text = NULL;
        size_t len = 0;
        snprintf(q, sizeof(q), "%s/" SNAP_ABORT_PREFIX "%s.%d", f->root, a, k);
        assert_int_equal(plat_file_read(V, q, 1024, &text, &len), 0);
        assert_string_equal(text, k == 1 ? "upload_id=one\n" : "upload_id=two\n");
        free(text);
    }
    /* Neither is a snapshot, and recovery leaves them for the uploader. */
    snap_info *v = NULL;
    size_t n = 9, n_seals = 0;
    char err[512];
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_true(tu_exists(q));
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
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
    assert_int_equal(snap_members(V, f->root, name, &m, &n), 0);
    assert_int_equal(n, 3); /* sst, MANIFEST, MANIFEST.json */
    assert_string_equal(m[n - 1].name, "MANIFEST.json");
    assert_int_equal(tar_stream_len(m, n), si.tar_bytes);
    tar_stream *t = tar_stream_new(plat_vfs_default(), name, m, n, snap_tar_mtime(&si));
    mbedtls_md_context_t c;
    mbedtls_md_init(&c);
    assert_int_equal(mbedtls_md_setup(&c, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0), 0);
    assert_int_equal(mbedtls_md_starts(&c), 0);
    /* An odd chunk size crosses every header/data/pad boundary. */
    do {
        assert_int_equal(tar_stream_read(t, buf, sizeof(buf) - 3, &got), 0);
        assert_int_equal(mbedtls_md_update(&c, buf, got), 0);
        total += got;
    } while (got);
    assert_int_equal(mbedtls_md_finish(&c, sum), 0);
    mbedtls_md_free(&c);
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

/* What the data hook saw: each member's bytes, then its end. */
typedef struct seen {
    char data[4][1200];
    size_t len[4];
    int ended[4];
    size_t calls_after_end;
    size_t stop_at; /* member whose first data the hook refuses (4: none) */
} seen;

static int on_data(void *ctx, size_t i, const uint8_t *data, size_t len)
{
    seen *s = ctx;
    assert_true(i < 4);
    if (i == s->stop_at)
        return -ECANCELED;
    for (size_t j = i + 1; j < 4; j++)
        s->calls_after_end += s->ended[j] || s->len[j]; /* members come in order */
    if (!data) {
        assert_int_equal(len, 0);
        s->ended[i]++;
        return 0;
    }
    s->calls_after_end += s->ended[i] != 0;
    assert_true(s->len[i] + len <= sizeof(s->data[i]));
    memcpy(s->data[i] + s->len[i], data, len);
    s->len[i] += len;
    return 0;
}

/* The hook sees every member's data once, in order, from files and memory
 * alike, and every member's end -- an empty last one's too -- whatever the
 * read sizes; the stream's bytes are the same as without it. */
static void test_tar_stream_hands_each_members_data_to_its_hook(void **state)
{
    fx *f = *state;
    char big[1001];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    char *p_big = put(f->base, "big", big), *p_empty = put(f->base, "empty", "");
    const tar_member m[4] = {
        {.name = "mem", .size = 5, .data = "hello"},
        {.path = p_big, .name = "big", .size = 1000},
        {.name = "nothing", .size = 0, .data = ""},
        {.path = p_empty, .name = "empty", .size = 0},
    };
    const size_t reads[] = {1, 7, TAR_BLOCK, 4096};
    uint8_t plain[8192], hooked[8192];
    size_t n_plain = 0, got = 0;
    tar_stream *t = tar_stream_new(V, "d", m, 4, 0);
    do {
        assert_int_equal(tar_stream_read(t, plain + n_plain, sizeof(plain) - n_plain, &got), 0);
        n_plain += got;
    } while (got);
    tar_stream_free(t);
    assert_int_equal(n_plain, tar_stream_len(m, 4));
    for (size_t r = 0; r < sizeof(reads) / sizeof(reads[0]); r++) {
        seen s = {.stop_at = 4};
        size_t n_hooked = 0;
        t = tar_stream_new(V, "d", m, 4, 0);
        tar_stream_on_data(t, on_data, &s);
        do {
            size_t room = sizeof(hooked) - n_hooked, want = reads[r] < room ? reads[r] : room;
            assert_int_equal(tar_stream_read(t, hooked + n_hooked, want, &got), 0);
            n_hooked += got;
        } while (got);
        tar_stream_free(t);
        assert_int_equal(n_hooked, n_plain);
        assert_memory_equal(hooked, plain, n_plain);
        assert_int_equal(s.calls_after_end, 0);
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(s.ended[i], 1);
            assert_int_equal(s.len[i], m[i].size);
        }
        assert_memory_equal(s.data[0], "hello", 5);
        assert_memory_equal(s.data[1], big, 1000);
    }
    /* A hook's refusal ends the read with its code. */
    seen s = {.stop_at = 1};
    t = tar_stream_new(V, "d", m, 4, 0);
    tar_stream_on_data(t, on_data, &s);
    assert_int_equal(tar_stream_read(t, hooked, sizeof(hooked), &got), -ECANCELED);
    assert_int_equal(s.ended[0], 1);
    tar_stream_free(t);
    free(p_big);
    free(p_empty);
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

static void test_snapshot_names_must_match_exactly(void **state)
{
    (void)state;
    uint64_t seq = 0;
    assert_true(snap_name_ok("dev-1-00000000000000000042", &seq));
    assert_int_equal(seq, 42);
    assert_true(snap_name_ok("a-18446744073709551615", &seq)); /* UINT64_MAX fits */
    assert_int_equal(seq, UINT64_MAX);
    assert_false(snap_name_ok("a-18446744073709551616", &seq)); /* one past: refused */
    assert_false(snap_name_ok("dev-1-0000000000000000042", NULL));   /* 19 digits */
    assert_false(snap_name_ok("dev-1-000000000000000000042", NULL)); /* 21 digits */
    assert_false(snap_name_ok("dev-1/../../../evil-00000000000000000001", NULL));
    assert_false(snap_name_ok("../evil-00000000000000000001", NULL));
    assert_false(snap_name_ok(".seal-dev-00000000000000000001", NULL));
    assert_false(snap_name_ok("-00000000000000000001", NULL));
    assert_false(snap_name_ok("dev-0000000000000000000x", NULL));
    char big[120];
    memset(big, 'a', 64);
    snprintf(big + 64, sizeof(big) - 64, "-00000000000000000001");
    assert_true(snap_name_ok(big, NULL)); /* a 64-byte device id */
    memset(big, 'a', 65);
    snprintf(big + 65, sizeof(big) - 65, "-00000000000000000001");
    assert_false(snap_name_ok(big, NULL)); /* 65 */
}

/* A retry by name never reaches outside ROOT. */
static void test_retry_refuses_a_name_outside_the_pattern(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX];
    snap_info si;
    fill(f, 1, 2, "t");
    seal(f, name, sizeof(name));
    assert_int_equal(snap_retry(V, f->root, "dev-1/../dev-1-00000000000000000001", &si), -ENOENT);
    assert_int_equal(snap_retry(V, f->root, name, &si), -EINVAL); /* sealed, not failed */
    assert_int_equal(snap_read(V, f->root, "../store", &si), -ENOENT);
}

static int no_sync(plat_vfs *self, int fd)
{
    (void)self;
    (void)fd;
    return 0;
}

static int no_dirsync(plat_vfs *self, const char *dir)
{
    (void)self;
    (void)dir;
    return 0;
}

/* A seal is not limited by a file count: 5000 SSTs (memtable_max 4 KiB
 * against a 64 MiB snapshot once jammed it with E2BIG) seal and verify. */
static void test_seal_of_thousands_of_ssts_goes_through(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX];
    /* Making 5000 SSTs takes 15,000 syncs; this test is about the seal. */
    plat_vfs fast = *plat_vfs_default();
    fast.fdatasync = fast.fsync = no_sync;
    fast.dirsync = no_dirsync;
    ts_options o;
    ts_options_init(&o);
    o.vfs = &fast;
    ts_close(f->s);
    f->s = tu_open(f->store, &o);
    for (uint64_t k = 1; k <= 5000; k++) {
        assert_int_equal(tu_save(f->s, k, 4, (float)k), 0);
        assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    }
    seal(f, name, sizeof(name));
    snap_info si;
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
    assert_int_equal(si.tensors, 5000);
    uint64_t bad = 1;
    assert_int_equal(snap_verify(V, f->root, name, NULL, NULL, &bad), 0);
    tar_member *m = NULL;
    size_t n = 0;
    assert_int_equal(snap_members(V, f->root, name, &m, &n), 0);
    assert_int_equal(n, 5002); /* SSTs, MANIFEST, MANIFEST.json */
    assert_int_equal(tar_stream_len(m, n), si.tar_bytes);
    free(m);
    ts_close(f->s);
    f->s = tu_open(f->store, NULL); /* off the local vfs before it goes */
}

/* Commits a checkpoint of everything in f->s as ROOT/.seal-NAME (what
 * snap_begin does before the worker finishes it) and releases it. */
static void begin_seal(fx *f, char *name, size_t len)
{
    char err[512];
    ts_checkpoint_info info;
    assert_int_equal(snap_begin(V, f->s, f->root, "dev-1", name, len, &info, err, sizeof(err)), 0);
}

/* A seal whose checkpoint is damaged is set aside as failed, shown by ls,
 * and the seals after it are finished all the same. */
static void test_a_damaged_seal_is_set_aside_and_never_blocks_the_next(void **state)
{
    fx *f = *state;
    char a[SNAP_NAME_MAX], b[SNAP_NAME_MAX], err[1024], dir[2048];
    size_t done = 0, failed = 0;
    fill(f, 1, 3, "t");
    begin_seal(f, a, sizeof(a));
    fill(f, 10, 3, "t");
    begin_seal(f, b, sizeof(b));
    snprintf(dir, sizeof(dir), "%s/.seal-%s", f->root, a);
    tu_flip(tu_path(dir, "sst_000000.sst"), 100); /* its index or a record: damaged */
    tu_truncate(tu_path(dir, "sst_000000.sst"), 50);
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, &failed, err, sizeof(err)),
                     TS_ECORRUPT);
    assert_non_null(strstr(err, "set aside"));
    assert_int_equal(done, 1);
    assert_int_equal(failed, 1);
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, a);
    assert_int_equal(v[0].state, SNAP_FAILED);
    assert_non_null(strstr(v[0].error, "sealing failed"));
    assert_string_equal(v[1].name, b);
    assert_int_equal(v[1].state, SNAP_SEALED);
    free(v);
    /* Nothing left to finish; a retry hands it back to the finisher. */
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, &failed, err, sizeof(err)), 0);
    assert_int_equal(done + failed, 0);
    snap_info si;
    assert_int_equal(snap_retry(V, f->root, a, &si), 0);
    assert_int_equal(si.state, SNAP_SEALING);
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(v[0].state, SNAP_SEALING);
    free(v);
}

/* Recovery goes on past a seal it cannot open: that one is set aside
 * (nothing released for it), the next is released and finished. */
static void test_recover_goes_on_past_a_damaged_seal(void **state)
{
    fx *f = *state;
    char err[1024], tmp[2048], d1[2048], d2[2048];
    ts_checkpoint_info info;
    size_t n_seals = 0, done = 0;
    assert_int_equal(mkdir(f->root, 0755), 0);
    snprintf(tmp, sizeof(tmp), "%s/.seal-new", f->root);
    fill(f, 1, 3, "t");
    assert_int_equal(ts_checkpoint(f->s, tmp, &info), 0);
    snprintf(d1, sizeof(d1), "%s/.seal-dev-1-00000000000000000001", f->root);
    assert_int_equal(rename(tmp, d1), 0);
    assert_int_equal(ts_release(f->s, info.last_file), 0);
    fill(f, 10, 2, "t");
    assert_int_equal(ts_checkpoint(f->s, tmp, &info), 0);
    snprintf(d2, sizeof(d2), "%s/.seal-dev-1-00000000000000000004", f->root);
    assert_int_equal(rename(tmp, d2), 0);
    /* The power went before the release of the second; the first is damaged. */
    assert_int_equal(unlink(tu_path(d1, "MANIFEST")), 0);
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), TS_ENOTSTORE);
    assert_non_null(strstr(err, "set aside"));
    assert_int_equal(n_seals, 1);
    assert_false(tu_check(f->s, 10, 300, 10)); /* released: lives in the second seal */
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
    assert_int_equal(done, 1);
    snap_info *v = NULL;
    size_t n = 0;
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].state, SNAP_FAILED);
    assert_int_equal(v[1].state, SNAP_SEALED);
    assert_int_equal(v[1].tensors, 2);
    free(v);
}

/* snap_seq_floor sees past every snapshot: names, MANIFEST.json's
 * seq_range, and checkpoints still being sealed. */
static void test_seq_floor_lies_above_every_snapshot(void **state)
{
    fx *f = *state;
    char name[SNAP_NAME_MAX], err[512];
    uint64_t floor = 0;
    assert_int_equal(snap_seq_floor(V, f->root, &floor, err, sizeof(err)), 0);
    assert_int_equal(floor, 1); /* no snapshots yet */
    fill(f, 1, 4, "t");
    seal(f, name, sizeof(name)); /* seqs 1..4, finished */
    assert_int_equal(snap_seq_floor(V, f->root, &floor, err, sizeof(err)), 0);
    assert_int_equal(floor, 5);
    fill(f, 10, 3, "t");
    begin_seal(f, name, sizeof(name)); /* seqs 5..7, not finished */
    assert_int_equal(snap_seq_floor(V, f->root, &floor, err, sizeof(err)), 0);
    assert_int_equal(floor, 8);
    /* A store that lost its count gets it back from the floor. */
    assert_int_equal(ts_raise_seq(f->s, floor), 0);
    assert_int_equal(tu_save(f->s, 20, 4, 20), 0);
    ts_tensor *t = NULL;
    uint8_t key[8];
    ts_key_from_u64(20, key);
    assert_int_equal(ts_load(f->s, key, 8, &t), 0);
    assert_int_equal(t->seq, 8);
    ts_tensor_free(t);
}

/* Sizes cost a stat of every file: measured only when asked for (the
 * upload worker lists without them), the rest of the listing the same. */
static void test_list_measures_sizes_only_when_asked(void **state)
{
    fx *f = *state;
    char a[SNAP_NAME_MAX], b[SNAP_NAME_MAX];
    snap_info *v = NULL, *w = NULL, si;
    size_t n = 0, nw = 0;
    fill(f, 1, 2, "t");
    seal(f, a, sizeof(a));
    fill(f, 3, 2, "t");
    begin_seal(f, b, sizeof(b)); /* still .seal-NAME */
    assert_int_equal(snap_list(V, f->root, &v, &n, NULL, 1), 0);
    assert_int_equal(snap_list(V, f->root, &w, &nw, NULL, 0), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nw, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i].disk_bytes > 2 * 300 * 4);
        assert_int_equal(w[i].disk_bytes, 0);
        w[i].disk_bytes = v[i].disk_bytes;
        assert_memory_equal(&v[i], &w[i], sizeof(v[i]));
    }
    assert_int_equal(w[1].state, SNAP_SEALING);
    assert_int_equal(snap_read(V, f->root, a, &si), 0);
    assert_int_equal(si.disk_bytes, 0);
    free(v);
    free(w);
}

/* What snap_list shows of each kind of entry in ROOT: NAME with its STATE,
 * .seal-NAME as sealing with a failed try's STATE, .seal-new and .del-*
 * only in pending_bytes, and nothing for anything else. */
static void test_list_shows_each_kind_of_entry(void **state)
{
    fx *f = *state;
    char a[SNAP_NAME_MAX], b[SNAP_NAME_MAX], d[2048];
    fill(f, 1, 2, "t");
    seal(f, a, sizeof(a));
    fill(f, 3, 2, "t");
    begin_seal(f, b, sizeof(b));
    snprintf(d, sizeof(d), "%s/.seal-%s", f->root, b);
    free(put(d, "STATE", "state=sealed\nattempts=2\nerror=sealing: disk full\n"));
    const char *other[] = {".seal-new", ".del-dev-1-00000000000000000009", "junk",
                           "dev-1-00000000000000000007"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(d, sizeof(d), "%s/%s", f->root, other[i]);
        assert_int_equal(mkdir(d, 0755), 0);
        free(put(d, "x", "12345"));
    }
    snap_info *v = NULL;
    size_t n = 0;
    uint64_t pending = 0;
    assert_int_equal(snap_list(V, f->root, &v, &n, &pending, 1), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pending, 10);
    assert_string_equal(v[0].name, a);
    assert_int_equal(v[0].seq, 1);
    assert_int_equal(v[0].state, SNAP_SEALED);
    assert_int_equal(v[0].tensors, 2);
    assert_string_equal(v[1].name, b);
    assert_int_equal(v[1].seq, 3);
    assert_int_equal(v[1].state, SNAP_SEALING);
    assert_int_equal(v[1].attempts, 2);
    assert_string_equal(v[1].error, "sealing: disk full");
    assert_true(v[1].disk_bytes > 2 * 300 * 4);
    free(v);
}

/* ---- capture windows ------------------------------------------------------ */

/* MQTT-ish for the test: "cam/+" matches names under cam/, else exact. */
static int match_test(void *ctx, const char *filter, const char *name)
{
    (void)ctx;
    size_t n = strlen(filter);
    if (n && filter[n - 1] == '+')
        return !strncmp(filter, name, n - 1) && !strchr(name + n - 1, '/');
    return !strcmp(filter, name);
}

static int capture(fx *f, const char *label, int64_t from, int64_t to, char *name, size_t len,
                   uint64_t *n)
{
    static const char *const filters[] = {"cam/+"};
    char err[1024];
    snap_window w = {.label = label, .trigger_ns = to - 1, .from_ns = from, .to_ns = to,
                     .filters = filters, .n_filters = 1, .match = match_test};
    return snap_capture(V, f->s, f->root, "dev-1", &w, name, len, n, err, sizeof(err));
}

static void test_capture_copies_exactly_the_window_from_store_and_snapshots(void **state)
{
    fx *f = *state;
    char rolling[SNAP_NAME_MAX], name[SNAP_NAME_MAX], dir[2048], err[512];
    uint64_t n = 0;
    size_t n_seals = 0, done = 0;
    /* keys 1..10 cam/a and 11..20 imu sealed into a rolling snapshot (a
     * tensor's timestamp is 1000 + its key); 21..30 cam/a, 31..35 cam/b live */
    fill(f, 1, 10, "cam/a");
    fill(f, 11, 10, "imu");
    seal(f, rolling, sizeof(rolling));
    fill(f, 21, 10, "cam/a");
    fill(f, 31, 5, "cam/b");
    ts_stats st;
    ts_get_stats(f->s, &st);
    uint64_t next = st.next_seq;
    /* [1005, 1033): cam 5..10 from the snapshot, 21..30 and 31..32 live */
    assert_int_equal(capture(f, "alarm", 1005, 1033, name, sizeof(name), &n), 0);
    assert_int_equal(n, 18);
    char want[64];
    snprintf(want, sizeof(want), "dev-1-%020llu", (unsigned long long)next);
    assert_string_equal(name, want);
    /* nothing left the store; its seqs moved past the copies' */
    for (uint64_t k = 21; k <= 35; k++)
        assert_true(tu_check(f->s, k, 300, (float)k));
    ts_get_stats(f->s, &st);
    assert_true(st.next_seq >= next + 18);
    /* recovery releases nothing for a capture's seal */
    assert_int_equal(snap_recover(V, f->s, f->root, &n_seals, err, sizeof(err)), 0);
    assert_int_equal(n_seals, 1);
    assert_true(tu_check(f->s, 21, 300, 21));
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
    assert_int_equal(done, 1);
    snap_info si;
    assert_int_equal(snap_read(V, f->root, name, &si), 0);
    assert_string_equal(si.capture, "alarm");
    assert_int_equal(si.tensors, 18);
    assert_int_equal(snap_read(V, f->root, rolling, &si), 0);
    assert_string_equal(si.capture, "");
    /* exactly the window: both edges, and nothing of imu */
    snprintf(dir, sizeof(dir), "%s/%s", f->root, name);
    ts_options ro;
    ts_options_init(&ro);
    ro.read_only = 1;
    ts_store *c = NULL;
    assert_int_equal(ts_open(dir, &ro, &c, err, sizeof(err)), 0);
    for (uint64_t k = 1; k <= 35; k++) {
        int in = (k >= 5 && k <= 10) || (k >= 21 && k <= 32);
        assert_int_equal(tu_check(c, k, 300, (float)k), in);
    }
    ts_close(c);
    char *json = tu_path(dir, "MANIFEST.json");
    char buf[8192];
    FILE *fp = fopen(json, "r");
    size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[len] = 0;
    assert_non_null(strstr(buf, "\"capture\": {\"label\": \"alarm\", \"trigger_ns\": 1032, "
                                "\"window_ns\": [1005, 1033], \"filters\": [\"cam/+\"]},\n"));
    assert_non_null(strstr(buf, "\"time_range_ns\": [1005, 1032]"));
    uint64_t bad = 9;
    assert_int_equal(snap_verify(V, f->root, name, NULL, NULL, &bad), 0);
    /* a second window never reads the first capture's copies */
    assert_int_equal(capture(f, "again", 1005, 1033, name, sizeof(name), &n), 0);
    assert_int_equal(n, 18);
    /* an empty window creates nothing */
    assert_int_equal(capture(f, "none", 2000, 3000, name, sizeof(name), &n), TS_ENOTFOUND);
    assert_int_equal(n, 0);
    assert_false(tu_exists(tu_path(f->root, ".capture-new")));
    assert_false(tu_exists(tu_path(f->root, ".seal-new")));
    /* a bad window is refused before anything is made */
    assert_int_equal(capture(f, ".bad", 1, 2, name, sizeof(name), &n), -EINVAL);
    assert_int_equal(capture(f, "ok", 2, 2, name, sizeof(name), &n), -EINVAL);
}

static void test_capture_file_parses_strictly(void **state)
{
    (void)state;
    static const char good[] = "label=a\ntrigger_ns=5\nfrom_ns=-1\nto_ns=9\nfilter=x/#\n";
    static const char *const bad[] = {
        "trigger_ns=5\nfrom_ns=1\nto_ns=9\nfilter=x\n",            /* no label */
        "label=a\ntrigger_ns=5\nfrom_ns=1\nto_ns=9\n",             /* no filter */
        "label=a\ntrigger_ns=5\nfrom_ns=9\nto_ns=9\nfilter=x\n",   /* from == to */
        "label=a\ntrigger_ns=5x\nfrom_ns=1\nto_ns=9\nfilter=x\n",
        "label=.a\ntrigger_ns=5\nfrom_ns=1\nto_ns=9\nfilter=x\n",
        "label=a\ntrigger_ns=5\nfrom_ns=1\nto_ns=9\nfilter=\n",
        "label=a\ntrigger_ns=5\nfrom_ns=1\nto_ns=9\nfilter=x\nnoequals\n",
    };
    snap_capture_meta c;
    assert_int_equal(snap_parse_capture(good, strlen(good), &c), 0);
    assert_string_equal(c.label, "a");
    assert_int_equal(c.from_ns, -1);
    assert_int_equal(c.n_filters, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (snap_parse_capture(bad[i], strlen(bad[i]), &c) != TS_ECORRUPT)
            fail_msg("accepted: %s", bad[i]);
    char nine[512] = "label=a\ntrigger_ns=5\nfrom_ns=1\nto_ns=9\n";
    for (int i = 0; i < 9; i++)
        strcat(nine, "filter=x\n");
    assert_int_equal(snap_parse_capture(nine, strlen(nine), &c), TS_ECORRUPT);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_seal_moves_every_tensor_into_a_read_only_store),
        T(test_verify_names_a_damaged_file),
        T(test_recover_releases_a_committed_seal_and_drops_a_half_made_one),
        T(test_recover_turns_uploading_back_into_sealed),
        T(test_recover_leaves_an_unreadable_state_alone),
        T(test_list_is_oldest_first_and_delete_removes),
        T(test_delete_sets_a_multipart_upload_aside_for_its_abort),
        T(test_tar_stream_has_the_length_and_sha256_fixed_at_seal),
        cmocka_unit_test(test_tar_header_is_ustar_with_a_valid_checksum),
        T(test_tar_stream_fails_on_a_file_shorter_than_declared),
        T(test_tar_stream_hands_each_members_data_to_its_hook),
        cmocka_unit_test(test_state_and_manifest_lines_parse_strictly),
        cmocka_unit_test(test_device_ids_that_cannot_name_files_are_refused),
        cmocka_unit_test(test_snapshot_names_must_match_exactly),
        T(test_retry_refuses_a_name_outside_the_pattern),
        T(test_seal_of_thousands_of_ssts_goes_through),
        T(test_a_damaged_seal_is_set_aside_and_never_blocks_the_next),
        T(test_recover_goes_on_past_a_damaged_seal),
        T(test_seq_floor_lies_above_every_snapshot),
        T(test_list_measures_sizes_only_when_asked),
        T(test_list_shows_each_kind_of_entry),
        T(test_capture_copies_exactly_the_window_from_store_and_snapshots),
        cmocka_unit_test(test_capture_file_parses_strictly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
