/*
 * test_cli_csv.c -- the CSV tensor payload reader (cli/csv_ingest.c): what a
 * good line turns into, the reason given for each kind of bad line, and that
 * a file is read all-or-nothing with FILE:LINE messages. Not tested here:
 * saving (the end-to-end test runs --tensor-ingest).
 */
#include "csv_ingest.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Parses a copy of text; returns the code and leaves *pt for the caller to
 * free (pt->mem). */
static int parse(const char *text, csv_tensor *pt, char *why, size_t why_len)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s", text);
    return csv_parse_line(line, pt, why, why_len);
}

static void assert_refused(const char *text, const char *reason)
{
    csv_tensor pt;
    char why[512] = "";
    assert_int_not_equal(parse(text, &pt, why, sizeof(why)), 0);
    if (!strstr(why, reason))
        fail_msg("'%s': got '%s', wanted '%s'", text, why, reason);
    assert_null(pt.mem);
}

static void test_good_line_becomes_a_tensor(void **state)
{
    csv_tensor pt;
    char why[512];
    uint8_t key[TS_KEY_U64_LEN];
    const float *v;
    (void)state;
    assert_int_equal(parse(" 101 , camera_frame , float32 , 2x2 , 0.25,0.5, -1 ,1e3", &pt, why,
                           sizeof(why)), 0);
    ts_key_from_u64(101, key);
    assert_int_equal(pt.t.key_len, 8);
    assert_memory_equal(pt.t.key, key, 8);
    assert_string_equal(pt.t.name, "camera_frame");
    assert_int_equal(pt.t.dtype, TS_F32);
    assert_int_equal(pt.t.ndim, 2);
    assert_int_equal(pt.t.shape[0], 2);
    assert_int_equal(pt.t.shape[1], 2);
    assert_int_equal(pt.t.data_len, 16);
    v = pt.t.data;
    assert_true(v[0] == 0.25f && v[1] == 0.5f && v[2] == -1.0f && v[3] == 1000.0f);
    assert_int_equal(ts_validate(&pt.t), 0);
    free(pt.mem);
}

static void test_scalars_bools_complex_and_exact_int64(void **state)
{
    csv_tensor pt;
    char why[512];
    (void)state;
    assert_int_equal(parse("s:7,s,float64,scalar,2.5", &pt, why, sizeof(why)), 0);
    assert_int_equal(pt.t.ndim, 0);
    assert_int_equal(pt.t.key_len, 1);
    assert_true(*(const double *)pt.t.data == 2.5);
    free(pt.mem);
    assert_int_equal(parse("7,s,f64,,-1", &pt, why, sizeof(why)), 0);
    assert_int_equal(pt.t.ndim, 0);
    free(pt.mem);
    assert_int_equal(parse("b,b,bool,4,true,0,False,1.0", &pt, why, sizeof(why)), 0);
    assert_memory_equal(pt.t.data, "\x01\x00\x00\x01", 4);
    free(pt.mem);
    assert_int_equal(parse("c,c,complex64,3,1.5,2j,(1.5-2j)", &pt, why, sizeof(why)), 0);
    {
        const float *c = pt.t.data;
        assert_true(c[0] == 1.5f && c[1] == 0 && c[2] == 0 && c[3] == 2.0f && c[4] == 1.5f &&
                    c[5] == -2.0f);
    }
    free(pt.mem);
    assert_int_equal(parse("i,i,int64,2,9223372036854775807,-9223372036854775808", &pt, why,
                           sizeof(why)), 0);
    assert_true(((const int64_t *)pt.t.data)[0] == INT64_MAX);
    assert_true(((const int64_t *)pt.t.data)[1] == INT64_MIN);
    free(pt.mem);
    assert_int_equal(parse("u,u,uint64,1,18446744073709551615", &pt, why, sizeof(why)), 0);
    assert_true(*(const uint64_t *)pt.t.data == UINT64_MAX);
    free(pt.mem);
    assert_int_equal(parse("z,empty,float32,0", &pt, why, sizeof(why)), 0);
    assert_int_equal(pt.t.data_len, 0);
    free(pt.mem);
}

static void test_each_bad_line_says_why(void **state)
{
    (void)state;
    assert_refused("1,a,float32,2,1", "fewer values than the shape needs (1 of 2)");
    assert_refused("1,a,float32,2,1,2,3", "more values than the shape holds (3 for 2)");
    assert_refused("1,a,float32,2,1,2,", "more values");
    assert_refused("1,a,float99,2,1,2", "unknown dtype 'float99'");
    assert_refused("1,a,int8,1,300", "out of range for i8");
    assert_refused("1,a,uint8,1,-1", "out of range for u8");
    assert_refused("1,a,float16,1,70000", "out of range for f16");
    assert_refused("1,a,float32,1,1e39", "out of range for f32");
    assert_refused("1,a,uint64,1,18446744073709551616", "out of range");
    assert_refused("1,a,int8,1,1.5", "not an integer");
    assert_refused("1,a,bool,1,2", "out of range");
    assert_refused("1,a,float32,2xq,1,2", "bad shape '2xq'");
    assert_refused("1,a,float32,-2,1,2", "bad shape");
    assert_refused("1,a,float32,1,abc", "value 1 'abc' is not a number");
    assert_refused("1,a,float32,2,1,", "value 2 is empty");
    assert_refused("1,a,complex64,1,(1+2)", "not a number");
    assert_refused("1,a,float32,1x1x1x1x1x1x1x1x1,1", "more than 8 dimensions");
    assert_refused("x:zz,a,float32,1,1", "bad or missing key");
    assert_refused(",a,float32,1,1", "bad or missing key");
    assert_refused("1", "missing name");
    assert_refused("1,a,float32", "missing shape");
    assert_refused("1,a,float32,100000x100000,1", "payload limit");
    assert_refused("1,a,float32,4294967296x4294967296x4294967296,1", "too many elements");
}

/* Writes len bytes of text to a temporary FILE and reads it as a payload. */
static int read_bytes(const char *text, size_t len, csv_payload *p, char *err, size_t err_len)
{
    FILE *fp = tmpfile();
    int rc;
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    rewind(fp);
    memset(p, 0, sizeof(*p));
    rc = csv_read(fp, "in.csv", p, err, err_len);
    fclose(fp);
    return rc;
}

static int read_text(const char *text, csv_payload *p, char *err, size_t err_len)
{
    return read_bytes(text, strlen(text), p, err, err_len);
}

static void test_file_skips_comments_and_blank_lines(void **state)
{
    csv_payload p;
    char err[1024];
    (void)state;
    assert_int_equal(read_text("# header\n\n  \n202,imu,int16,2x3,1,2,3,4,5,-6\r\n"
                               "  # indented comment\n101,cam,f32,1,0.25", &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.v[0].line, 4);
    assert_int_equal(p.v[1].line, 6);
    assert_int_equal(p.data_bytes, 12 + 4);
    assert_int_equal(((const int16_t *)p.v[0].t.data)[5], -6);
    csv_free(&p);
    assert_int_equal(p.n, 0);
    /* A first line that is empty once allocated nothing yet. */
    assert_int_equal(read_text("\n\n5,a,f32,1,1\n", &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.v[0].line, 3);
    csv_free(&p);
}

static void test_file_errors_name_file_and_line(void **state)
{
    csv_payload p;
    char err[1024];
    (void)state;
    assert_int_equal(read_text("5,good,float32,1,1\n\n5,bad,float32,2,1\n", &p, err,
                               sizeof(err)), TS_EINVAL);
    assert_string_equal(err, "in.csv:3: fewer values than the shape needs (1 of 2)");
    csv_free(&p);
    assert_int_equal(read_text("5,a,float32,1,1\n6,b,float32,1,1\n5,c,float32,1,2\n", &p, err,
                               sizeof(err)), TS_EINVAL);
    assert_string_equal(err, "in.csv:3: key 5 already used on line 1");
    csv_free(&p);
    assert_int_equal(read_text("# only a comment\n", &p, err, sizeof(err)), TS_EINVAL);
    assert_string_equal(err, "in.csv: no tensors in the file");
    csv_free(&p);
    {
        static const char nul[] = "5,a,float32,1,1\n6,b\0,float32,1,1\n";
        assert_int_equal(read_bytes(nul, sizeof(nul) - 1, &p, err, sizeof(err)), TS_EINVAL);
        assert_string_equal(err, "in.csv:2: NUL byte in the line");
        csv_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_line_becomes_a_tensor),
        cmocka_unit_test(test_scalars_bools_complex_and_exact_int64),
        cmocka_unit_test(test_each_bad_line_says_why),
        cmocka_unit_test(test_file_skips_comments_and_blank_lines),
        cmocka_unit_test(test_file_errors_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
