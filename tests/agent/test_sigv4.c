/*
 * test_sigv4.c -- the SigV4 signer against the examples AWS publishes with
 * their signatures (S3's "Signature Calculations for the Authorization
 * Header: Transferring Payload in a Single Chunk", and vectors of the SigV4
 * test suite the npm package lacks), the S3/generic path rules, the helper
 * functions, and every kind of bad input and short buffer. The whole AWS
 * suite and botocore comparisons run from tests/integration.
 */
#include "sigv4.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

/* The credentials of the S3 documentation examples. */
static const sigv4_key s3_key = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                 "us-east-1", "s3"};
/* ... and of the SigV4 test suite. */
static const sigv4_key suite_key = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                    "us-east-1", "service"};

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_DATE "20130524T000000Z"
#define SUITE_DATE "20150830T123600Z"
#define PUT_BODY_SHA256 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

static const sigv4_header put_headers[] = {
    {"Host", "examplebucket.s3.amazonaws.com"},
    {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
    {"x-amz-date", S3_DATE},
    {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
    {"x-amz-content-sha256", PUT_BODY_SHA256},
};

static sigv4_request put_request(const char *path)
{
    sigv4_request r = {"PUT", path, "", put_headers, 5, PUT_BODY_SHA256};
    return r;
}

static char authz[512], creq[2048], sts[512];

static int sign(const sigv4_request *r, const sigv4_key *k, const char *date, int mode)
{
    return sigv4_sign(r, k, date, mode, authz, sizeof(authz), creq, sizeof(creq), sts, sizeof(sts));
}

static void test_s3_put_object_example_matches_aws_docs(void **state)
{
    (void)state;
    char body_hash[65];
    sigv4_sha256_hex("Welcome to Amazon S3.", 21, body_hash);
    assert_string_equal(body_hash, PUT_BODY_SHA256);

    sigv4_request r = put_request("/test%24file.text");
    assert_int_equal(sign(&r, &s3_key, S3_DATE, SIGV4_S3), 0);
    assert_string_equal(creq, "PUT\n/test%24file.text\n\n"
                              "date:Fri, 24 May 2013 00:00:00 GMT\n"
                              "host:examplebucket.s3.amazonaws.com\n"
                              "x-amz-content-sha256:" PUT_BODY_SHA256 "\n"
                              "x-amz-date:20130524T000000Z\n"
                              "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                              "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                              PUT_BODY_SHA256);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                             "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    assert_string_equal(authz,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

    /* '$' sent unescaped is the same key to S3: same signature. */
    char again[512];
    strcpy(again, authz);
    r = put_request("/test$file.text");
    assert_int_equal(sign(&r, &s3_key, S3_DATE, SIGV4_S3), 0);
    assert_string_equal(authz, again);
    assert_null(strstr(creq, s3_key.secret_key));
    assert_null(strstr(sts, s3_key.secret_key));
    assert_null(strstr(authz, s3_key.secret_key));
}

static int starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* The signature at the end of authz. */
static const char *signature(void)
{
    const char *p = strstr(authz, "Signature=");
    return p ? p + 10 : "";
}

static void test_s3_get_examples_with_range_and_query_match_aws_docs(void **state)
{
    (void)state;
    sigv4_header h[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-date", S3_DATE},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", EMPTY_SHA256},
    };
    sigv4_request r = {"GET", "/test.txt", "", h, 4, EMPTY_SHA256};
    assert_int_equal(sign(&r, &s3_key, S3_DATE, SIGV4_S3), 0);
    assert_string_equal(signature(), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

    /* GET ?lifecycle: a parameter without '=' has an empty value. */
    h[2] = h[3];   /* no Range */
    sigv4_request lc = {"GET", "/", "lifecycle", h, 3, EMPTY_SHA256};
    assert_int_equal(sign(&lc, &s3_key, S3_DATE, SIGV4_S3), 0);
    assert_non_null(strstr(creq, "\n/\nlifecycle=\n"));
    assert_string_equal(signature(), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

    /* List objects: the parameters are sorted. */
    sigv4_request ls = {"GET", "/", "prefix=J&max-keys=2", h, 3, EMPTY_SHA256};
    assert_int_equal(sign(&ls, &s3_key, S3_DATE, SIGV4_S3), 0);
    assert_non_null(strstr(creq, "\nmax-keys=2&prefix=J\n"));
    assert_string_equal(signature(), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

/* get-header-value-multiline of AWS's suite (missing from the npm package):
 * folded lines are separate values. Duplicates join in order, blanks trim. */
static void test_header_values_are_trimmed_joined_and_unfolded(void **state)
{
    (void)state;
    sigv4_header h[] = {
        {"Host", "example.amazonaws.com"},
        {"My-Header1", "value1\n  value2\n     value3"},
        {"X-Amz-Date", SUITE_DATE},
    };
    sigv4_request r = {"GET", "/", "", h, 3, EMPTY_SHA256};
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_GENERIC), 0);
    assert_non_null(strstr(creq, "\nmy-header1:value1,value2,value3\n"));
    assert_string_equal(signature(), "ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790");

    sigv4_header d[] = {
        {"x-b", "  two   words\t\there  "}, {"HOST", "h"}, {"X-A", "2"}, {"x-a", ""},
        {"x-a", "1"}, {"x-amz-date", SUITE_DATE}, {"x-c", " \r\n "},
    };
    sigv4_request r2 = {"GET", "/", NULL, d, 7, EMPTY_SHA256};
    assert_int_equal(sign(&r2, &suite_key, SUITE_DATE, SIGV4_GENERIC), 0);
    assert_string_equal(creq, "GET\n/\n\nhost:h\nx-a:2,,1\nx-amz-date:" SUITE_DATE "\n"
                              "x-b:two words here\nx-c:\n\nhost;x-a;x-amz-date;x-b;x-c\n" EMPTY_SHA256);
}

static void test_s3_path_is_not_normalised_and_generic_is(void **state)
{
    (void)state;
    sigv4_header h[] = {{"host", "h"}, {"x-amz-date", SUITE_DATE}};
    sigv4_request r = {"PUT", "/b/a//./x/../k%7e%2a+=~ \xc3\xa9", "", h, 2, "UNSIGNED-PAYLOAD"};
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_S3), 0);
    assert_true(starts(creq, "PUT\n/b/a//./x/../k~%2A%2B%3D~%20%C3%A9\n\nhost:h\n"));
    assert_true(!strcmp(creq + strlen(creq) - 17, "\nUNSIGNED-PAYLOAD"));

    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_GENERIC), 0);
    assert_true(starts(creq, "PUT\n/b/a/k%257e%252a%2B%3D~%20%C3%A9\n\nhost:h\n"));

    r.path = "/a/b/../../..//c/./";
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_GENERIC), 0);
    assert_true(starts(creq, "PUT\n/c/\n\n"));
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_S3), 0);
    assert_true(starts(creq, "PUT\n/a/b/../../..//c/./\n\n"));
    r.path = "/";
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_S3), 0);
    assert_true(starts(creq, "PUT\n/\n\n"));
}

static void test_query_is_reencoded_and_sorted_by_key_then_value(void **state)
{
    (void)state;
    sigv4_header h[] = {{"host", "h"}, {"x-amz-date", SUITE_DATE}};
    sigv4_request r = {"GET", "/", "b=2&a=z&a=y&&c&d=x=y&%7e=%2f+&k%20e=a-b&\xe1\x88\xb4=", h, 2,
                       EMPTY_SHA256};
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_GENERIC), 0);
    assert_true(starts(creq, "GET\n/\n%E1%88%B4=&a=y&a=z&b=2&c=&d=x%3Dy&k%20e=a-b&~=%2F%2B\nhost:"));
}

static void test_bad_input_is_einval_and_leaves_outputs_empty(void **state)
{
    (void)state;
    sigv4_header h[] = {{"Host", "h"}, {"x-amz-date", SUITE_DATE}, {"x-ok", "v"}};
    sigv4_request good = {"PUT", "/b/k", "", h, 3, EMPTY_SHA256};
    sigv4_key k = suite_key;
    char long_secret[SIGV4_MAX_FIELD + 2];
    memset(long_secret, 'a', sizeof(long_secret) - 1);
    long_secret[sizeof(long_secret) - 1] = 0;

    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), 0);
    assert_int_equal(sign(NULL, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    assert_string_equal(authz, "");
    assert_int_equal(sign(&good, NULL, SUITE_DATE, SIGV4_S3), -EINVAL);
    assert_int_equal(sign(&good, &k, SUITE_DATE, 7), -EINVAL);
    assert_int_equal(sigv4_sign(&good, &k, SUITE_DATE, 0, NULL, 9, NULL, 0, NULL, 0), -EINVAL);
    const char *bad_dates[] = {NULL, "", "20150830T123600", "20150830T123600ZZ", "20150830 123600Z",
                               "2015083XT123600Z", "20150830T123600z"};
    for (size_t i = 0; i < sizeof(bad_dates) / sizeof(*bad_dates); i++)
        assert_int_equal(sign(&good, &k, bad_dates[i], SIGV4_S3), -EINVAL);

    const char *bad_hashes[] = {NULL, "", "unsigned-payload", EMPTY_SHA256 "0",
                                "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"};
    for (size_t i = 0; i < sizeof(bad_hashes) / sizeof(*bad_hashes); i++) {
        sigv4_request r = good;
        r.payload_sha256 = bad_hashes[i];
        assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    }
    const char *bad_paths[] = {NULL, "", "b/k", "/b/%", "/b/%4", "/b/%zz", "/b/%4g"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(*bad_paths); i++) {
        sigv4_request r = good;
        r.path = bad_paths[i];
        assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    }
    sigv4_request r = good;
    r.query = "a=%g1";
    assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    r = good;
    r.method = "P UT";
    assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);

    const char *bad_names[] = {NULL, "", "x ok", "x:ok", "x-\xc3\xa9", "x\n"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
        h[2].name = bad_names[i];
        assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    }
    h[2].name = "x-ok";
    h[2].value = NULL;
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    h[2].value = "v";

    /* host and x-amz-date are required; x-amz-date must be the signing date */
    r = good;
    r.headers = h + 1;
    r.n_headers = 2;
    assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    h[1].name = "date";
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    h[1].name = "X-Amz-Date";
    assert_int_equal(sign(&good, &k, "20150830T123601Z", SIGV4_S3), -EINVAL);
    r = good;
    r.headers = NULL;
    assert_int_equal(sign(&r, &k, SUITE_DATE, SIGV4_S3), -EINVAL);

    k.region = "us/east";
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    k = suite_key;
    k.access_key = "AK ID";
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    k = suite_key;
    k.service = "";
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    k = suite_key;
    k.secret_key = long_secret;
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), -EINVAL);
    long_secret[SIGV4_MAX_FIELD] = 0;
    assert_int_equal(sign(&good, &k, SUITE_DATE, SIGV4_S3), 0);

    sigv4_header many[SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < SIGV4_MAX_HEADERS + 1; i++)
        many[i] = h[i % 3];
    r = good;
    r.headers = many;
    r.n_headers = SIGV4_MAX_HEADERS + 1;
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_S3), -E2BIG);
    r.n_headers = SIGV4_MAX_HEADERS;
    assert_int_equal(sign(&r, &suite_key, SUITE_DATE, SIGV4_S3), 0);
}

/* Every output is exact-fit or -ENOSPC, never truncated. */
static void test_short_buffers_are_enospc_never_truncated(void **state)
{
    (void)state;
    sigv4_request r = put_request("/test%24file.text");
    char a[512], c[1024], s[256], want_a[512], want_c[1024], want_s[256];
    assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, want_a, sizeof(want_a), want_c,
                                sizeof(want_c), want_s, sizeof(want_s)), 0);
    size_t la = strlen(want_a), lc = strlen(want_c), ls = strlen(want_s);
    for (size_t n = 0; n <= la; n++) {
        memset(a, 'x', sizeof(a));
        assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, a, n, NULL, 0, NULL, 0), -ENOSPC);
        if (n)
            assert_int_equal(a[0], 0);
    }
    assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, a, la + 1, NULL, 0, NULL, 0), 0);
    assert_string_equal(a, want_a);
    for (size_t n = 0; n <= lc; n++) {
        memset(a, 'x', sizeof(a));
        assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, a, sizeof(a), c, n, NULL, 0),
                         -ENOSPC);
        assert_int_equal(a[0], 0);
    }
    assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, a, sizeof(a), c, lc + 1, s, ls), -ENOSPC);
    assert_int_equal(c[0], 0);
    assert_int_equal(sigv4_sign(&r, &s3_key, S3_DATE, SIGV4_S3, a, sizeof(a), c, lc + 1, s, ls + 1), 0);
    assert_string_equal(c, want_c);
    assert_string_equal(s, want_s);
    assert_string_equal(a, want_a);

    char e[16];
    assert_int_equal(sigv4_uri_encode("a b", 1, e, 5), -ENOSPC);
    assert_string_equal(e, "");
    assert_int_equal(sigv4_uri_encode("a b", 1, e, 0), -ENOSPC);
    assert_int_equal(sigv4_uri_encode("a b", 1, e, 6), 0);
    assert_string_equal(e, "a%20b");
    assert_int_equal(sigv4_uri_encode(NULL, 1, e, sizeof(e)), -EINVAL);
}

static void test_uri_encode_keeps_unreserved_and_optionally_slash(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(sigv4_uri_encode("dev 1/snap+x=y~z_.-\xe6\x97\xa5.tar", 1, out, sizeof(out)), 0);
    assert_string_equal(out, "dev%201/snap%2Bx%3Dy~z_.-%E6%97%A5.tar");
    assert_int_equal(sigv4_uri_encode("a/b%c", 0, out, sizeof(out)), 0);
    assert_string_equal(out, "a%2Fb%25c");
    assert_int_equal(sigv4_uri_encode("AZaz09!*'();:@&=+$,?#[]", 1, out, sizeof(out)), 0);
    assert_string_equal(out, "AZaz09%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%3F%23%5B%5D");
    assert_int_equal(sigv4_uri_encode("", 1, out, 1), 0);
    assert_string_equal(out, "");
}

static void test_amz_date_is_utc_and_agrees_with_gmtime(void **state)
{
    (void)state;
    char d[17];
    assert_int_equal(sigv4_amz_date(0, d), 0);
    assert_string_equal(d, "19700101T000000Z");
    assert_int_equal(sigv4_amz_date(1369353600, d), 0);
    assert_string_equal(d, S3_DATE);
    assert_int_equal(sigv4_amz_date(1440938160, d), 0);
    assert_string_equal(d, SUITE_DATE);
    assert_int_equal(sigv4_amz_date(951782399, d), 0);
    assert_string_equal(d, "20000228T235959Z");
    assert_int_equal(sigv4_amz_date(INT64_C(4107542400), d), 0);   /* 2100 is not a leap year */
    assert_string_equal(d, "21000301T000000Z");
    assert_int_equal(sigv4_amz_date(INT64_C(253402300799), d), 0);
    assert_string_equal(d, "99991231T235959Z");
    assert_int_equal(sigv4_amz_date(-1, d), -EINVAL);
    assert_string_equal(d, "");
    assert_int_equal(sigv4_amz_date(INT64_C(253402300800), d), -EINVAL);

    /* A sweep across leap years, month ends and 2038 (as far as time_t goes). */
    for (int64_t t = 0; t < INT64_C(4102444800); t += 86400 * 3 + 3607) {
        time_t tt = (time_t)t;
        struct tm tm;
        char want[32];
        if ((int64_t)tt != t || !gmtime_r(&tt, &tm))
            break;
        strftime(want, sizeof(want), "%Y%m%dT%H%M%SZ", &tm);
        assert_int_equal(sigv4_amz_date(t, d), 0);
        assert_string_equal(d, want);
    }
}

static void test_sha256_hex_known_answers(void **state)
{
    (void)state;
    char h[65];
    sigv4_sha256_hex(NULL, 0, h);
    assert_string_equal(h, EMPTY_SHA256);
    sigv4_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_put_object_example_matches_aws_docs),
        cmocka_unit_test(test_s3_get_examples_with_range_and_query_match_aws_docs),
        cmocka_unit_test(test_header_values_are_trimmed_joined_and_unfolded),
        cmocka_unit_test(test_s3_path_is_not_normalised_and_generic_is),
        cmocka_unit_test(test_query_is_reencoded_and_sorted_by_key_then_value),
        cmocka_unit_test(test_bad_input_is_einval_and_leaves_outputs_empty),
        cmocka_unit_test(test_short_buffers_are_enospc_never_truncated),
        cmocka_unit_test(test_uri_encode_keeps_unreserved_and_optionally_slash),
        cmocka_unit_test(test_amz_date_is_utc_and_agrees_with_gmtime),
        cmocka_unit_test(test_sha256_hex_known_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
