/*
 * test_wire.c -- a snapshot's object on the wire (snapshot/src/wire.c), on
 * real files: each codec's stream decompresses (libzstd, zlib) to exactly
 * the tar stream; the bytes, their length and SHA-256 do not depend on how
 * a reader asks for them, so a measure made once still describes the
 * upload; the guard refuses a stream that differs from the measure before
 * its last piece; a cancel ends a measure or a read within one input piece; bad codecs and levels are
 * refused; STATE keeps the measure and drops a malformed one.
 */
#include "../core/test_util.h"

#include "embeddb/snapshot.h"
#include "embeddb/wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <mbedtls/md.h>
#include <zlib.h>
#include <zstd.h>

#define V plat_vfs_default()

typedef struct fx {
    char *base;
    char store[1024], root[1024], name[SNAP_NAME_MAX];
    snap_info si;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    char err[1024];
    ts_checkpoint_info info;
    size_t done = 0;
    f->base = tu_tmpdir("wire");
    snprintf(f->store, sizeof(f->store), "%s/store", f->base);
    snap_root(f->store, f->root, sizeof(f->root));
    ts_store *s = tu_open(f->store, NULL);
    /* ~2.4 MiB of floats: more than one compressor input piece (128 KiB)
     * and output piece (64 KiB), compressible but not trivially. */
    for (int i = 0; i < 200; i++)
        assert_int_equal(tu_save(s, (uint64_t)i, 3000, (float)i * 0.37f), 0);
    assert_int_equal(snap_begin(V, s, f->root, "dev-1", f->name, sizeof(f->name), &info, err,
                                sizeof(err)), 0);
    assert_int_equal(snap_finish_all(V, f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
    ts_close(s);
    assert_int_equal(snap_read(V, f->root, f->name, &f->si), 0);
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

/* The whole object read `step` bytes at a time (step 0: varying sizes). */
static uint8_t *read_all(fx *f, snap_codec c, int level, size_t step, size_t *len)
{
    snap_object *o = NULL;
    char err[512];
    size_t cap = 1 << 20, n = 0, got = 0, k = 1;
    uint8_t *b = malloc(cap);
    assert_int_equal(snap_object_open(V, f->root, f->name, snap_tar_mtime(&f->si),
                                      f->si.tar_bytes, c, level, &o, err, sizeof(err)), 0);
    for (;;) {
        size_t want = step ? step : (k = k * 7 % 40009) + 1;
        if (n + want > cap)
            assert_non_null(b = realloc(b, cap *= 2));
        assert_int_equal(snap_object_read(o, b + n, want, &got), 0);
        if (!got)
            break;
        n += got;
    }
    snap_object_free(o);
    *len = n;
    return b;
}

static void sha_hex(const uint8_t *p, size_t n, char out[65])
{
    uint8_t sum[32];
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), p, n, sum);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

static uint8_t *gunzip(const uint8_t *in, size_t n, size_t cap, size_t *out_len)
{
    uint8_t *out = malloc(cap);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.avail_in, 0); /* one member, nothing after it */
    *out_len = cap - z.avail_out;
    inflateEnd(&z);
    return out;
}

static void test_each_codec_decompresses_to_exactly_the_tar(void **state)
{
    fx *f = *state;
    size_t tar_len, n, out_len;
    char hex[65];
    uint8_t *tar = read_all(f, SNAP_CODEC_NONE, 0, 16384, &tar_len);
    assert_int_equal(tar_len, f->si.tar_bytes);
    sha_hex(tar, tar_len, hex);
    assert_string_equal(hex, f->si.tar_sha256);

    uint8_t *z = read_all(f, SNAP_CODEC_ZSTD, 3, 16384, &n);
    assert_true(n < tar_len / 2);
    assert_int_equal(ZSTD_getFrameContentSize(z, n), tar_len); /* the pledged size */
    uint8_t *out = malloc(tar_len);
    assert_int_equal(ZSTD_decompress(out, tar_len, z, n), tar_len);
    assert_memory_equal(out, tar, tar_len);
    free(out);
    free(z);

    uint8_t *g = read_all(f, SNAP_CODEC_GZIP, 6, 16384, &n);
    assert_true(n < tar_len / 2);
    out = gunzip(g, n, tar_len + 1, &out_len);
    assert_int_equal(out_len, tar_len);
    assert_memory_equal(out, tar, tar_len);
    free(out);
    free(g);
    free(tar);
}

static void test_bytes_do_not_depend_on_read_sizes_and_match_the_measure(void **state)
{
    fx *f = *state;
    static const struct {
        snap_codec c;
        int level;
    } cases[] = {{SNAP_CODEC_ZSTD, 1}, {SNAP_CODEC_ZSTD, 9}, {SNAP_CODEC_GZIP, 1},
                 {SNAP_CODEC_GZIP, 9}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t a_len, b_len, c_len;
        uint64_t bytes = 0;
        char sha[65], hex[65], err[512];
        uint8_t *a = read_all(f, cases[i].c, cases[i].level, 16384, &a_len);
        uint8_t *b = read_all(f, cases[i].c, cases[i].level, 1, &b_len);
        uint8_t *c = read_all(f, cases[i].c, cases[i].level, 0, &c_len);
        assert_int_equal(a_len, b_len);
        assert_int_equal(a_len, c_len);
        assert_memory_equal(a, b, a_len);
        assert_memory_equal(a, c, a_len);
        assert_int_equal(snap_object_measure(V, f->root, f->name, snap_tar_mtime(&f->si),
                                             f->si.tar_bytes, cases[i].c, cases[i].level, NULL,
                                             NULL, &bytes, sha, err, sizeof(err)), 0);
        assert_int_equal(bytes, a_len);
        sha_hex(a, a_len, hex);
        assert_string_equal(sha, hex);
        free(a);
        free(b);
        free(c);
    }
}

/* Reads the object's bytes [from, from + bytes) through a guard for them,
 * as an upload's readahead does (agent/upload.c): never a byte past them,
 * the guard given the object when they must end it (whole), else checking
 * them as a range. The code of the first failure; *handed_on: the bytes
 * that passed the guard. */
static int send_through_check(fx *f, snap_codec c, int level, uint64_t from, uint64_t bytes,
                              const char *sha, int whole, uint64_t *handed_on)
{
    snap_object *o = NULL;
    snap_object_check *ck = snap_object_check_new(bytes, sha);
    uint8_t buf[16384];
    char err[512];
    int rc = 0;
    *handed_on = 0;
    assert_non_null(ck);
    assert_int_equal(snap_object_open(V, f->root, f->name, snap_tar_mtime(&f->si),
                                      f->si.tar_bytes, c, level, &o, err, sizeof(err)), 0);
    for (uint64_t skipped = 0, n; skipped < from; skipped += n) {
        size_t got = 0;
        n = from - skipped < sizeof(buf) ? from - skipped : sizeof(buf);
        assert_int_equal(snap_object_read(o, buf, (size_t)n, &got), 0);
        assert_int_equal(got, n);
    }
    while (*handed_on < bytes) {
        size_t got = 0, want = bytes - *handed_on < sizeof(buf) ? bytes - *handed_on
                                                                 : sizeof(buf);
        if ((rc = snap_object_read(o, buf, want, &got)) ||
            (rc = snap_object_check_piece(ck, whole ? o : NULL, buf, got)) || !got)
            break;
        *handed_on += got;
    }
    snap_object_check_free(ck);
    snap_object_free(o);
    return rc;
}

static void test_guard_refuses_a_stream_unlike_its_measure_before_the_last_piece(void **state)
{
    fx *f = *state;
    uint64_t bytes = 0, sent = 0;
    char sha[65], bad[65], err[512];
    assert_int_equal(snap_object_measure(V, f->root, f->name, snap_tar_mtime(&f->si),
                                         f->si.tar_bytes, SNAP_CODEC_ZSTD, 3, NULL, NULL, &bytes,
                                         sha, err, sizeof(err)), 0);
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, bytes, sha, 1, &sent), 0);
    assert_int_equal(sent, bytes);
    /* Another hash: everything but the last piece goes out. */
    snprintf(bad, sizeof(bad), "%s", sha);
    bad[0] = bad[0] == '0' ? '1' : '0';
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, bytes, bad, 1, &sent),
                     -EBADMSG);
    assert_true(sent < bytes);
    /* Measured shorter or longer than it comes out. */
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, bytes - 1, sha, 1, &sent),
                     -EBADMSG);
    assert_true(sent < bytes - 1);
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, bytes + 1, sha, 1, &sent),
                     -EBADMSG);
    assert_true(sent < bytes);
    /* Another level makes other bytes. */
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 1, 0, bytes, sha, 1, &sent),
                     -EBADMSG);
}

/* A multipart upload's parts: ranges, checked apart, at boundaries that are
 * no piece's (16 KiB) nor the compressor's (64 KiB output). */
static void test_guard_checks_a_range_without_reading_past_it(void **state)
{
    fx *f = *state;
    size_t n;
    char sha1[65], sha2[65], bad[65];
    uint64_t sent = 0;
    uint8_t *z = read_all(f, SNAP_CODEC_ZSTD, 3, 16384, &n);
    size_t k = n / 2 + 12345; /* the first range: [0, k), the second [k, n) */
    sha_hex(z, k, sha1);
    sha_hex(z + k, n - k, sha2);
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, k, sha1, 0, &sent), 0);
    assert_int_equal(sent, k);
    /* The second range goes on exactly where the first ended; it must end
     * the object (the last part). */
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, k, n - k, sha2, 1, &sent), 0);
    assert_int_equal(sent, n - k);
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, k, n - k, sha2, 0, &sent), 0);
    /* Another hash: all but the range's last piece. */
    snprintf(bad, sizeof(bad), "%s", sha1);
    bad[63] = bad[63] == '0' ? '1' : '0';
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, k, bad, 0, &sent), -EBADMSG);
    assert_true(sent < k && sent + 16384 >= k);
    /* A range one byte shorter is another range (its hash differs). */
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, 0, k - 1, sha1, 0, &sent),
                     -EBADMSG);
    assert_true(sent < k - 1);
    /* A part planned longer than the object: as a range, the object's end
     * (a 0-byte piece) inside it fails (its bytes went, the part is one
     * short: never whole); as the object's end, its last piece is held. */
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, k, n - k + 1, sha2, 0, &sent),
                     -EBADMSG);
    assert_int_equal(sent, n - k);
    assert_int_equal(send_through_check(f, SNAP_CODEC_ZSTD, 3, k, n - k + 1, sha2, 1, &sent),
                     -EBADMSG);
    assert_true(sent < n - k);
    free(z);
}

static int calls;
static int cancel_after_3(void *ctx)
{
    (void)ctx;
    return ++calls > 3;
}

static void test_cancel_ends_a_measure(void **state)
{
    fx *f = *state;
    uint64_t bytes = 0;
    char sha[65], err[512];
    calls = 0;
    assert_int_equal(snap_object_measure(V, f->root, f->name, snap_tar_mtime(&f->si),
                                         f->si.tar_bytes, SNAP_CODEC_GZIP, 9, cancel_after_3,
                                         NULL, &bytes, sha, err, sizeof(err)), -ECANCELED);
    assert_int_equal(calls, 4);
    assert_non_null(strstr(err, "cancelled"));
    /* A read too: asked per input piece, so one read call that would take
     * in the whole snapshot ends at the fourth piece. */
    snap_object *o = NULL;
    size_t got = 99;
    uint8_t *buf = malloc(4 << 20);
    calls = 0;
    assert_int_equal(snap_object_open(V, f->root, f->name, snap_tar_mtime(&f->si),
                                      f->si.tar_bytes, SNAP_CODEC_ZSTD, 19, &o, err, sizeof(err)),
                     0);
    snap_object_set_cancel(o, cancel_after_3, NULL);
    assert_int_equal(snap_object_read(o, buf, 4 << 20, &got), -ECANCELED);
    assert_int_equal(calls, 4);
    assert_string_equal(snap_object_error(o), "cancelled");
    snap_object_free(o);
    free(buf);
}

static int always(void *ctx)
{
    (void)ctx;
    return 1;
}

/* snap_object_open compresses the first piece itself, on its caller's
 * thread (where zstd allocates its workspace, in that thread's malloc
 * arena): a read right after it needs no input, so even a cancel raised
 * already does not stop it; and a snapshot whose first piece cannot be
 * read fails the open. */
static void test_open_compresses_the_first_piece_itself(void **state)
{
    fx *f = *state;
    snap_object *o = NULL;
    tar_member *m = NULL;
    size_t n = 0, got = 0;
    uint8_t b[1];
    char err[512];
    for (snap_codec c = SNAP_CODEC_GZIP; c <= SNAP_CODEC_ZSTD; c++) {
        assert_int_equal(snap_object_open(V, f->root, f->name, snap_tar_mtime(&f->si),
                                          f->si.tar_bytes, c, 1, &o, err, sizeof(err)), 0);
        snap_object_set_cancel(o, always, NULL);
        assert_int_equal(snap_object_read(o, b, sizeof(b), &got), 0);
        assert_int_equal(got, 1);
        snap_object_free(o);
    }
    /* The first SST (the first member, in the first input piece) cut
     * short since the seal. */
    assert_int_equal(snap_members(V, f->root, f->name, &m, &n), 0);
    assert_true(n > 1 && !m[0].data && m[0].size > 0);
    assert_int_equal(truncate(m[0].path, 0), 0);
    assert_int_equal(snap_object_open(V, f->root, f->name, snap_tar_mtime(&f->si),
                                      f->si.tar_bytes, SNAP_CODEC_ZSTD, 1, &o, err, sizeof(err)),
                     -EBADMSG);
    assert_null(o);
    assert_non_null(strstr(err, "reading its zstd object"));
    assert_non_null(strstr(err, "shorter than"));
    free(m);
}

static void test_bad_codec_level_and_changed_files_are_refused(void **state)
{
    fx *f = *state;
    snap_object *o = NULL;
    char err[512];
    snap_codec c;
    assert_int_equal(snap_codec_parse("zstd", &c), 0);
    assert_int_equal(c, SNAP_CODEC_ZSTD);
    assert_int_equal(snap_codec_parse("gzip", &c), 0);
    assert_int_equal(snap_codec_parse("none", &c), 0);
    assert_int_equal(snap_codec_parse("xz", &c), -EINVAL);
    assert_int_equal(snap_codec_parse("", &c), -EINVAL);
    assert_int_equal(snap_object_open(V, f->root, f->name, 0, f->si.tar_bytes, SNAP_CODEC_GZIP,
                                      10, &o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "gzip level 10: expected 1..9"));
    assert_int_equal(snap_object_open(V, f->root, f->name, 0, f->si.tar_bytes, SNAP_CODEC_ZSTD,
                                      20, &o, err, sizeof(err)), -EINVAL);
    assert_int_equal(snap_object_open(V, f->root, f->name, 0, f->si.tar_bytes, SNAP_CODEC_ZSTD,
                                      0, &o, err, sizeof(err)), -EINVAL);
    assert_int_equal(snap_object_open(V, f->root, f->name, 0, f->si.tar_bytes, (snap_codec)7, 1,
                                      &o, err, sizeof(err)), -EINVAL);
    assert_int_equal(snap_object_open(V, f->root, f->name, 0, f->si.tar_bytes + 512,
                                      SNAP_CODEC_ZSTD, 3, &o, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "files changed since sealing"));
    assert_null(o);
}

static void test_state_keeps_the_measure_and_drops_a_malformed_one(void **state)
{
    fx *f = *state;
    snap_info si = f->si, back;
    snprintf(si.object_codec, sizeof(si.object_codec), "zstd");
    si.object_level = 19;
    si.object_bytes = 123456789012ull;
    memset(si.object_sha256, 'a', 64);
    si.object_sha256[64] = 0;
    assert_int_equal(snap_write_state(V, f->root, &si), 0);
    assert_int_equal(snap_read(V, f->root, f->name, &back), 0);
    assert_string_equal(back.object_codec, "zstd");
    assert_int_equal(back.object_level, 19);
    assert_int_equal(back.object_bytes, 123456789012ull);
    assert_string_equal(back.object_sha256, si.object_sha256);
    assert_string_equal(back.tar_sha256, f->si.tar_sha256);
    /* No measure: no object lines. */
    si.object_codec[0] = 0;
    assert_int_equal(snap_write_state(V, f->root, &si), 0);
    assert_int_equal(snap_read(V, f->root, f->name, &back), 0);
    assert_string_equal(back.object_codec, "");
    static const char *bad[] = {"object=zstd\n", "object=:3\n", "object=zstd:\n",
                                "object=zstd:3x\n", "object=zstd:-1\n",
                                "object=averyverylongcodec:3\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snap_info p = {0};
        assert_int_equal(snap_parse_state(bad[i], strlen(bad[i]), &p), 0);
        assert_string_equal(p.object_codec, "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_codec_decompresses_to_exactly_the_tar, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_bytes_do_not_depend_on_read_sizes_and_match_the_measure, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_guard_refuses_a_stream_unlike_its_measure_before_the_last_piece, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_guard_checks_a_range_without_reading_past_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_ends_a_measure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_compresses_the_first_piece_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_codec_level_and_changed_files_are_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_keeps_the_measure_and_drops_a_malformed_one,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
