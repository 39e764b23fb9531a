/*
 * test_recovery.c -- reopening after damage, on real files: torn tails are
 * cut cleanly, torn batches are invisible, corruption before the tail fails
 * the open naming file and offset (or is salvaged on request), damaged SSTs
 * never return bad data, and every intermediate state of a flush recovers.
 */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

typedef tu_fx fx;

static int setup(void **state)
{
    fx *f = tu_fx_new("recovery");
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    tu_fx_free(*state);
    return 0;
}

static const char *wal0(fx *f)
{
    return tu_path(f->dir, "wal_000000.log");
}

static int try_open(fx *f, int salvage, char *err, size_t errlen)
{
    ts_options o;
    ts_options_init(&o);
    o.salvage = salvage;
    ts_close(f->s);
    f->s = NULL;
    return ts_open(f->dir, &o, &f->s, err, errlen);
}

static void test_torn_tail_is_cut_and_writes_continue(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 100, 2), 0);
    long good = tu_file_size(wal0(f));
    assert_int_equal(tu_save(f->s, 3, 100, 3), 0);
    tu_truncate(wal0(f), good + 100); /* the writer died mid-batch */
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_non_null(strstr(ts_errmsg(f->s), "cut 100 bytes"));
    ts_stats st;
    ts_get_stats(f->s, &st);
    assert_int_equal(st.recovery_cut_bytes, 100);
    assert_true(tu_check(f->s, 1, 100, 1));
    assert_true(tu_check(f->s, 2, 100, 2));
    assert_false(tu_check(f->s, 3, 100, 3));
    assert_int_equal(tu_file_size(wal0(f)), good);
    assert_int_equal(tu_save(f->s, 4, 100, 4), 0);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 4, 100, 4));
    assert_true(tu_check(f->s, 1, 100, 1));
}

static void test_torn_batch_is_invisible(void **state)
{
    fx *f = *state;
    char err[512];
    tu_tensor x[3];
    const ts_tensor *b[3];
    assert_int_equal(tu_save(f->s, 9, 10, 9), 0);
    long good = tu_file_size(wal0(f));
    for (int i = 0; i < 3; i++) {
        tu_tensor_init(&x[i], (uint64_t)i, 2048, (float)i);
        b[i] = &x[i].t;
    }
    assert_int_equal(ts_save_batch(f->s, b, 3), 0);
    long full = tu_file_size(wal0(f));
    /* Cut inside the second record: the first is complete but must not
     * appear on its own. */
    tu_truncate(wal0(f), good + (full - good) / 2);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        assert_false(tu_check(f->s, (uint64_t)i, 2048, (float)i));
        tu_tensor_free(&x[i]);
    }
    assert_true(tu_check(f->s, 9, 10, 9));
}

static void test_zeroed_tail_is_torn_not_corrupt(void **state)
{
    fx *f = *state;
    char err[512];
    static uint8_t zeros[5000];
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    long good = tu_file_size(wal0(f));
    tu_append(wal0(f), zeros, sizeof(zeros));
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 1, 100, 1));
    assert_int_equal(tu_file_size(wal0(f)), good);
}

static void test_damaged_last_batch_data_is_cut(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    long good = tu_file_size(wal0(f));
    assert_int_equal(tu_save(f->s, 2, 1000, 2), 0);
    tu_flip(wal0(f), tu_file_size(wal0(f)) - 100); /* garbled unsynced page */
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 1, 100, 1));
    assert_false(tu_check(f->s, 2, 1000, 2));
    assert_int_equal(tu_file_size(wal0(f)), good);
}

static void test_corruption_before_tail_fails_open_naming_file_and_offset(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 100, 2), 0);
    long size = tu_file_size(wal0(f));
    tu_flip(wal0(f), 32 + 32 + 200); /* inside batch 1's record */
    assert_int_equal(try_open(f, 0, err, sizeof(err)), TS_ECORRUPT);
    assert_null(f->s);
    assert_non_null(strstr(err, "wal_000000.log"));
    assert_non_null(strstr(err, "offset 32"));
    /* Failing the open changed nothing on disk. */
    assert_int_equal(tu_file_size(wal0(f)), size);
    /* Read-only inspection refuses too, rather than hiding the damage. */
    ts_options o;
    ts_options_init(&o);
    o.read_only = 1;
    assert_int_equal(ts_open(f->dir, &o, &f->s, err, sizeof(err)), TS_ECORRUPT);
}

static void test_salvage_keeps_valid_prefix_and_moves_tail_aside(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    long good = tu_file_size(wal0(f));
    assert_int_equal(tu_save(f->s, 2, 100, 2), 0);
    assert_int_equal(tu_save(f->s, 3, 100, 3), 0);
    long size = tu_file_size(wal0(f));
    tu_flip(wal0(f), good + 40); /* batch 2's first record header */
    assert_int_equal(try_open(f, 1, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 1, 100, 1));
    assert_false(tu_check(f->s, 2, 100, 2));
    assert_false(tu_check(f->s, 3, 100, 3));
    assert_int_equal(tu_file_size(wal0(f)), good);
    assert_int_equal(tu_file_size(tu_path(f->dir, "wal_000000.damaged")), size - good);
    assert_int_equal(tu_save(f->s, 4, 100, 4), 0);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 4, 100, 4));
}

static void test_corrupt_sst_data_is_never_returned(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 1024, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 1024, 2), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    /* Batch 1 sits at 32; its data ends before 32 + 32 + 4200. */
    tu_flip(tu_path(f->dir, "sst_000000.sst"), 32 + 32 + 4000);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    uint8_t key[8];
    ts_tensor *t = NULL;
    ts_key_from_u64(1, key);
    assert_int_equal(ts_load(f->s, key, 8, &t), TS_ECORRUPT);
    assert_null(t);
    assert_non_null(strstr(ts_errmsg(f->s), "sst_000000.sst"));
    assert_non_null(strstr(ts_errmsg(f->s), "checksum"));
    assert_true(tu_check(f->s, 2, 1024, 2)); /* the neighbour is intact */
    uint64_t bad = 0;
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), TS_ECORRUPT);
    assert_true(bad >= 1);
}

static void test_corrupt_sst_index_fails_open(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 16, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    const char *sst = tu_path(f->dir, "sst_000000.sst");
    tu_flip(sst, tu_file_size(sst) - 64 - 4);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), TS_ECORRUPT);
    assert_non_null(strstr(err, "sst_000000.sst"));
    assert_non_null(strstr(err, "offset"));
}

static void test_corrupt_manifest_fails_open(void **state)
{
    fx *f = *state;
    char err[512];
    tu_flip(tu_path(f->dir, "MANIFEST"), 17);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), TS_ECORRUPT);
    assert_non_null(strstr(err, "MANIFEST"));
}

static void test_missing_live_sst_fails_open(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 16, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    remove(tu_path(f->dir, "sst_000000.sst"));
    assert_int_equal(try_open(f, 0, err, sizeof(err)), TS_ECORRUPT);
    assert_non_null(strstr(err, "sst_000000.sst"));
}

/* Reads a whole small file. */
static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static void spit(const char *path, const uint8_t *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

/* Each intermediate state a flush can leave behind: stage 0 = sealed but not
 * renamed, old manifest; 1 = renamed, old manifest, new WAL created;
 * 2 = new manifest but the rename did not land. */
static void flush_interrupted_at(fx *f, int stage)
{
    char err[512];
    uint8_t old_man[256];
    assert_int_equal(tu_save(f->s, 1, 64, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 64, 2), 0);
    size_t man_len = slurp(tu_path(f->dir, "MANIFEST"), old_man, sizeof(old_man));
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    ts_close(f->s);
    f->s = NULL;
    const char *sst = tu_path(f->dir, "sst_000000.sst");
    if (stage == 0 || stage == 2)
        assert_int_equal(rename(sst, wal0(f)), 0);
    if (stage == 0)
        remove(tu_path(f->dir, "wal_000001.log"));
    if (stage == 0 || stage == 1)
        spit(tu_path(f->dir, "MANIFEST"), old_man, man_len);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 1, 64, 1));
    assert_true(tu_check(f->s, 2, 64, 2));
    assert_true(tu_exists(tu_path(f->dir, "sst_000000.sst")));
    assert_false(tu_exists(wal0(f)));
    ts_stats st;
    ts_get_stats(f->s, &st);
    assert_int_equal(st.n_sst, 1);
    assert_int_equal(st.memtable_entries, 0);
    /* And the store goes on normally from there. */
    assert_int_equal(tu_save(f->s, 3, 64, 3), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    for (uint64_t k = 1; k <= 3; k++)
        assert_true(tu_check(f->s, k, 64, (float)k));
}

static void test_sealed_wal_not_renamed_is_adopted(void **state)
{
    flush_interrupted_at(*state, 0);
}

static void test_renamed_sst_with_old_manifest_is_adopted(void **state)
{
    flush_interrupted_at(*state, 1);
}

static void test_manifest_ahead_of_rename_rolls_forward(void **state)
{
    flush_interrupted_at(*state, 2);
}

static void test_stray_files_of_unfinished_flush_are_removed(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 64, 1), 0);
    spit(tu_path(f->dir, "wal_000007.log"), (const uint8_t *)"junk", 4);
    spit(tu_path(f->dir, "MANIFEST.tmp"), (const uint8_t *)"junk", 4);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_false(tu_exists(tu_path(f->dir, "wal_000007.log")));
    assert_false(tu_exists(tu_path(f->dir, "MANIFEST.tmp")));
    assert_true(tu_check(f->s, 1, 64, 1));
}

static void test_wal_with_unsynced_header_and_no_batch_is_empty(void **state)
{
    fx *f = *state;
    char err[512];
    static const uint8_t zeros[32];
    assert_int_equal(tu_save(f->s, 1, 64, 1), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    ts_close(f->s);
    f->s = NULL;
    /* The header of the segment a flush created never reached the disk. */
    spit(tu_path(f->dir, "wal_000001.log"), zeros, sizeof(zeros));
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 1, 64, 1));
    assert_int_equal(tu_save(f->s, 2, 64, 2), 0);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_true(tu_check(f->s, 2, 64, 2));
}

static void test_damaged_wal_header_with_batches_fails_open(void **state)
{
    fx *f = *state;
    char err[512];
    assert_int_equal(tu_save(f->s, 1, 64, 1), 0);
    tu_flip(wal0(f), 3);
    assert_int_equal(try_open(f, 0, err, sizeof(err)), TS_ECORRUPT);
    assert_non_null(strstr(err, "wal_000000.log: bad segment header at offset 0"));
}

static uint64_t next_seq_of(ts_store *s)
{
    ts_stats st;
    ts_get_stats(s, &st);
    return st.next_seq;
}

/* A store written by a version that did not raise next_seq past an SST it
 * adopted holds an open segment whose seqs run below a sealed SST's. It
 * opens with every tensor, new saves get seqs above all of them, and the
 * segment stays readable (its seqs still run on without a gap). */
static void test_segment_below_an_sst_gets_seqs_raised_past_it(void **state)
{
    fx *f = *state;
    char err[512], cmd[9000];
    /* This store: sst_000000 with seqs 1..5, wal_000001 with seqs 6..7. */
    for (uint64_t k = 1; k <= 5; k++)
        assert_int_equal(tu_save(f->s, k, 16, (float)k), 0);
    assert_int_equal(ts_flush(f->s, NULL, 0, NULL), 0);
    assert_int_equal(tu_save(f->s, 6, 16, 6), 0);
    assert_int_equal(tu_save(f->s, 7, 16, 7), 0);
    ts_close(f->s);
    f->s = NULL;
    /* Another store's sst_000000 with seqs 1..10 takes its place: now the
     * live SST holds seq 10 while the open segment continues at 8. */
    char *other = tu_tmpdir("recovery-other");
    ts_store *o = tu_open(other, NULL);
    for (uint64_t k = 1; k <= 10; k++)
        assert_int_equal(tu_save(o, 100 + k, 16, (float)k), 0);
    assert_int_equal(ts_flush(o, NULL, 0, NULL), 0);
    ts_close(o);
    snprintf(cmd, sizeof(cmd), "cp %s/sst_000000.sst %s/sst_000000.sst", other, f->dir);
    assert_int_equal(system(cmd), 0);
    tu_rmtree(other);
    free(other);

    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_non_null(strstr(ts_errmsg(f->s), "raised from 8 to 11"));
    assert_int_equal(next_seq_of(f->s), 11);
    assert_true(tu_check(f->s, 6, 16, 6));
    assert_true(tu_check(f->s, 7, 16, 7));
    assert_true(tu_check(f->s, 110, 16, 10));
    assert_int_equal(tu_save(f->s, 8, 16, 8), 0);
    ts_tensor *t = NULL;
    uint8_t key[8];
    ts_key_from_u64(8, key);
    assert_int_equal(ts_load(f->s, key, 8, &t), 0);
    assert_int_equal(t->seq, 11);
    ts_tensor_free(t);
    /* Both segments replay cleanly and the seqs keep rising. */
    assert_int_equal(try_open(f, 0, err, sizeof(err)), 0);
    assert_int_equal(next_seq_of(f->s), 12);
    assert_true(tu_check(f->s, 6, 16, 6));
    assert_true(tu_check(f->s, 8, 16, 8));
    uint64_t bad = 0;
    assert_int_equal(ts_verify(f->s, NULL, NULL, &bad), 0);
}

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A last batch whose (CRC-valid) header claims 2^28 packed records in
 * a 512 MiB body of zeros (a sparse file): replay must not size anything by
 * that claim before the frames bear it out. It is a torn tail like any
 * damaged last batch: cut, and the batches before it kept. (Sizing the
 * record table by the claim asked for 12 GiB here; on a 32-bit size_t the
 * product wraps and the table came out too small. The file stays under
 * 2 GiB so that the test runs where off_t is 32 bits.) */
static void test_batch_header_claiming_a_huge_record_count_is_cut_not_allocated(void **state)
{
    fx *f = *state;
    char err[512];
    uint8_t h[32] = {0};
    assert_int_equal(tu_save(f->s, 1, 100, 1), 0);
    assert_int_equal(tu_save(f->s, 2, 100, 2), 0);
    long good = tu_file_size(wal0(f));
    ts_close(f->s);
    f->s = NULL;
    uint64_t n = 1u << 28, body = 1ull << 29, seq = 3;
    h[0] = 0x45, h[1] = 0x42, h[2] = 0x41, h[3] = 0x54; /* "EBAT" */
    for (int i = 0; i < 4; i++)
        h[4 + i] = (uint8_t)(n >> (8 * i));
    for (int i = 0; i < 8; i++) {
        h[8 + i] = (uint8_t)(body >> (8 * i));
        h[16 + i] = (uint8_t)(seq >> (8 * i));
    }
    h[24] = 1; /* packed */
    uint32_t c = crc32c_bitwise(h, 28);
    for (int i = 0; i < 4; i++)
        h[28 + i] = (uint8_t)(c >> (8 * i));
    int fd = open(wal0(f), O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, h, sizeof(h), good), (ssize_t)sizeof(h));
    assert_int_equal(ftruncate(fd, (off_t)good + 32 + (off_t)body), 0);
    close(fd);
    int rc = try_open(f, 0, err, sizeof(err));
    if (rc)
        fail_msg("open failed: %s", err);
    assert_non_null(strstr(ts_errmsg(f->s), "cut "));
    assert_true(tu_check(f->s, 1, 100, 1));
    assert_true(tu_check(f->s, 2, 100, 2));
    assert_int_equal(tu_file_size(wal0(f)), good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut_and_writes_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_batch_is_invisible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_tail_is_torn_not_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_last_batch_data_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_before_tail_fails_open_naming_file_and_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salvage_keeps_valid_prefix_and_moves_tail_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sst_data_is_never_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sst_index_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_manifest_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_live_sst_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_wal_not_renamed_is_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renamed_sst_with_old_manifest_is_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_ahead_of_rename_rolls_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_files_of_unfinished_flush_are_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_with_unsynced_header_and_no_batch_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_wal_header_with_batches_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_below_an_sst_gets_seqs_raised_past_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_header_claiming_a_huge_record_count_is_cut_not_allocated,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
