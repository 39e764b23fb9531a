/*
 * test_cli_npy.c -- the .npy writer (cli/npy.c): headers byte-for-byte as
 * NumPy 1.24's np.save writes them, NumPy's descr for every dtype, refusals,
 * and the durable replace of npy_write_file under injected faults and a
 * simulated power cut. Not tested here: that NumPy loads the files (the
 * end-to-end test does that with numpy.load).
 */
#include "npy.h"

#include "embeddb/plat.h"
#include "embeddb/plat_fault.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* What np.save writes before the data: 10 bytes, the dict, spaces, '\n',
 * 128 bytes in all for these small shapes. */
static void assert_header_is(const ts_tensor *t, const char *dict)
{
    char buf[NPY_HEADER_MAX], want[128];
    size_t len = 0, n = strlen(dict);
    assert_int_equal(npy_header(t, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, sizeof(want));
    memcpy(want, "\x93NUMPY\x01\x00v\x00", 10); /* 'v' = 118 = 128 - 10 */
    memcpy(want + 10, dict, n);
    memset(want + 10 + n, ' ', sizeof(want) - 11 - n);
    want[sizeof(want) - 1] = '\n';
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_header_matches_numpy_save_byte_for_byte(void **state)
{
    ts_tensor t = {.dtype = TS_F32, .ndim = 2, .shape = {32, 32}};
    (void)state;
    assert_header_is(&t, "{'descr': '<f4', 'fortran_order': False, 'shape': (32, 32), }");
    t = (ts_tensor){.dtype = TS_BOOL, .ndim = 1, .shape = {3}};
    assert_header_is(&t, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }");
    t = (ts_tensor){.dtype = TS_C128, .ndim = 0};
    assert_header_is(&t, "{'descr': '<c16', 'fortran_order': False, 'shape': (), }");
    t = (ts_tensor){.dtype = TS_I16, .ndim = 8, .shape = {1, 2, 3, 4, 5, 6, 7, 8}};
    assert_header_is(&t, "{'descr': '<i2', 'fortran_order': False, "
                         "'shape': (1, 2, 3, 4, 5, 6, 7, 8), }");
}

static void test_every_dtype_has_numpys_descr(void **state)
{
    static const struct {
        ts_dtype dt;
        const char *descr;
    } want[] = {
        {TS_F16, "<f2"}, {TS_BF16, "<u2"}, {TS_F32, "<f4"},  {TS_F64, "<f8"},
        {TS_I8, "|i1"},  {TS_I16, "<i2"},  {TS_I32, "<i4"},  {TS_I64, "<i8"},
        {TS_U8, "|u1"},  {TS_U16, "<u2"},  {TS_U32, "<u4"},  {TS_U64, "<u8"},
        {TS_BOOL, "|b1"}, {TS_C64, "<c8"}, {TS_C128, "<c16"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(npy_descr(want[i].dt), want[i].descr);
    assert_null(npy_descr((ts_dtype)0));
    assert_null(npy_descr((ts_dtype)99));
}

static void test_longest_header_fits_and_stays_64_aligned(void **state)
{
    ts_tensor t = {.dtype = TS_C128, .ndim = TS_MAX_DIMS};
    char buf[NPY_HEADER_MAX];
    size_t len = 0;
    (void)state;
    for (int i = 0; i < TS_MAX_DIMS; i++)
        t.shape[i] = UINT64_MAX;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), 0);
    assert_int_equal(len % 64, 0);
    assert_int_equal((size_t)((unsigned char)buf[8] | (unsigned char)buf[9] << 8), len - 10);
    assert_int_equal(buf[len - 1], '\n');
}

static void test_bad_dtype_or_small_buffer_is_refused(void **state)
{
    ts_tensor t = {.dtype = (ts_dtype)99, .ndim = 1, .shape = {3}};
    char buf[NPY_HEADER_MAX];
    size_t len = 0;
    (void)state;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), TS_EINVAL);
    t.dtype = TS_F32;
    t.ndim = TS_MAX_DIMS + 1;
    assert_int_equal(npy_header(&t, buf, sizeof(buf), &len), TS_EINVAL);
    t.ndim = 1;
    assert_int_equal(npy_header(&t, buf, 100, &len), TS_EOVERFLOW);
    assert_int_equal(npy_header(&t, buf, 5, &len), TS_EOVERFLOW);
}

/* ---- npy_write_file: durable replace ---------------------------------- */

typedef struct fixture {
    char dir[64], shadow[80], path[96], tmp[112];
    plat_vfs *fault;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_cli_npy-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->shadow, sizeof(f->shadow), "%s/.shadow", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/x.npy", f->dir);
    snprintf(f->tmp, sizeof(f->tmp), "%s/x.npy.tmp", f->dir);
    f->fault = plat_fault_new(plat_vfs_default(), f->shadow, 1);
    *state = f;
    return f->fault ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    plat_fault_free(f->fault);
    unlink(f->path);
    unlink(f->tmp);
    rmdir(f->shadow);
    rmdir(f->dir);
    free(f);
    return 0;
}

static long file_size(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n = -1;
    if (fp && !fseek(fp, 0, SEEK_END))
        n = ftell(fp);
    if (fp)
        fclose(fp);
    return n;
}

static const float values[4] = {0.5f, -1.25f, 3.0f, 1e-3f};
static const ts_tensor frame = {.name = "f", .dtype = TS_F32, .ndim = 2, .shape = {2, 2},
                                .data = values, .data_len = sizeof(values)};

static void test_file_is_header_then_data(void **state)
{
    fixture *f = *state;
    char buf[256];
    FILE *fp;
    assert_int_equal(npy_write_file(&frame, f->path, NULL), 0);
    assert_int_equal(file_size(f->path), 128 + 16);
    assert_int_equal(file_size(f->tmp), -1);
    fp = fopen(f->path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof(buf), fp), 144);
    fclose(fp);
    assert_memory_equal(buf + 128, values, sizeof(values));
}

static void test_failed_sync_keeps_the_old_file_and_no_temp(void **state)
{
    fixture *f = *state;
    ts_tensor big = frame;
    big.ndim = 1;
    big.shape[0] = 2;
    big.data_len = 8;
    assert_int_equal(npy_write_file(&frame, f->path, f->fault), 0);
    plat_fault_fail_nth(f->fault, PLAT_FAULT_FDATASYNC, 1, -EIO);
    assert_int_equal(npy_write_file(&big, f->path, f->fault), -EIO);
    assert_int_equal(file_size(f->path), 144);
    assert_int_equal(file_size(f->tmp), -1);
    plat_fault_fail_nth(f->fault, PLAT_FAULT_RENAME, 1, -ENOSPC);
    assert_int_equal(npy_write_file(&big, f->path, f->fault), -ENOSPC);
    assert_int_equal(file_size(f->path), 144);
    assert_int_equal(file_size(f->tmp), -1);
}

static void test_written_file_survives_a_power_cut(void **state)
{
    fixture *f = *state;
    assert_int_equal(npy_write_file(&frame, f->path, f->fault), 0);
    assert_int_equal(plat_fault_crash(f->fault, 0), 0);
    plat_fault_revive(f->fault);
    assert_int_equal(file_size(f->path), 144);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_matches_numpy_save_byte_for_byte),
        cmocka_unit_test(test_every_dtype_has_numpys_descr),
        cmocka_unit_test(test_longest_header_fits_and_stays_64_aligned),
        cmocka_unit_test(test_bad_dtype_or_small_buffer_is_refused),
        cmocka_unit_test_setup_teardown(test_file_is_header_then_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_keeps_the_old_file_and_no_temp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_written_file_survives_a_power_cut, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
