/*
 * test_http.c -- the HTTPS client's pure parts: the response head parser and
 * the chunked-body decoder, fed complete, truncated, oversized and malformed
 * input. Every bad input must come back as HTTP_EPROTO (or "need more"),
 * never a crash or a read past the given length (run under ASan in CI).
 * The network side is tested against nginx in tests/integration.
 */
#include "http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Parses text from a heap copy of exactly its length, so ASan sees any
 * read past the end. */
static int parse(const char *text, size_t len, http_response *rsp, http__framing *fr,
                 size_t *head_len)
{
    char *copy = malloc(len ? len : 1);
    int rc;
    assert_non_null(copy);
    memcpy(copy, text, len);
    memset(rsp, 0, sizeof(*rsp));
    rc = http__parse_head(copy, len, rsp, fr, head_len);
    free(copy);
    return rc;
}

static void test_etag_header_is_kept_whole_or_not_at_all(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nETag:  \"0a1b-2\" \r\nContent-Length: 0\r\n\r\n";
    char big[400];
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    assert_int_equal(parse(head, sizeof(head) - 1, &rsp, &fr, &hl), 0);
    assert_string_equal(rsp.etag, "\"0a1b-2\"");
    /* Longer than the field: empty (the uploader then refuses the part),
     * never cut to fit. */
    int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nETag: ");
    memset(big + n, 'a', sizeof(rsp.etag));
    snprintf(big + n + sizeof(rsp.etag), sizeof(big) - (size_t)n - sizeof(rsp.etag), "\r\n\r\n");
    assert_int_equal(parse(big, strlen(big), &rsp, &fr, &hl), 0);
    assert_string_equal(rsp.etag, "");
    static const char none[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse(none, sizeof(none) - 1, &rsp, &fr, &hl), 0);
    assert_string_equal(rsp.etag, "");
}

static void test_complete_head_gives_status_reason_and_length(void **state)
{
    static const char head[] = "HTTP/1.1 201 Created\r\nServer: nginx\r\nContent-Length: 12\r\n"
                               "Connection: close\r\n\r\nbody follows";
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    assert_int_equal(parse(head, sizeof(head) - 1, &rsp, &fr, &hl), 0);
    assert_int_equal(rsp.status, 201);
    assert_string_equal(rsp.reason, "Created");
    assert_int_equal(fr.content_length, 12);
    assert_int_equal(fr.chunked, 0);
    assert_int_equal(hl, sizeof(head) - 1 - strlen("body follows"));
}

static void test_every_prefix_of_a_head_asks_for_more(void **state)
{
    static const char head[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\n";
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    for (size_t n = 0; n < sizeof(head) - 1; n++)
        assert_int_equal(parse(head, n, &rsp, &fr, &hl), 1);
    assert_int_equal(parse(head, sizeof(head) - 1, &rsp, &fr, &hl), 0);
    assert_int_equal(rsp.status, 500);
}

static void test_head_without_end_within_limit_is_eproto(void **state)
{
    size_t len = HTTP__HEAD_MAX + 100;
    char *big = malloc(len);
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    assert_non_null(big);
    memset(big, 'a', len);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    assert_int_equal(parse(big, HTTP__HEAD_MAX - 1, &rsp, &fr, &hl), 1);
    assert_int_equal(parse(big, HTTP__HEAD_MAX, &rsp, &fr, &hl), HTTP_EPROTO);
    /* a terminator just past the limit does not count */
    memcpy(big + HTTP__HEAD_MAX - 1, "\r\n\r\n", 4);
    assert_int_equal(parse(big, len, &rsp, &fr, &hl), HTTP_EPROTO);
    free(big);
}

static void test_malformed_status_lines_are_eproto(void **state)
{
    static const char *const bad[] = {
        "\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 600 High\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
    };
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], strlen(bad[i]), &rsp, &fr, &hl);
        if (rc != HTTP_EPROTO)
            fail_msg("case %zu (%s) gave %d", i, bad[i], rc);
    }
}

static void test_nul_in_head_is_eproto(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    assert_int_equal(parse(head, sizeof(head) - 1, &rsp, &fr, &hl), HTTP_EPROTO);
}

static void test_framing_variants(void **state)
{
    static const char chunked[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n"
                                  "Transfer-Encoding: gzip, Chunked\r\n\r\n";
    static const char lf_only[] = "HTTP/1.0 404\nContent-Length: 5\ncontent-length:  5 \n\n";
    static const char none[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    (void)state;
    assert_int_equal(parse(chunked, sizeof(chunked) - 1, &rsp, &fr, &hl), 0);
    assert_int_equal(fr.chunked, 1);
    assert_int_equal(fr.content_length, -1);
    assert_int_equal(parse(lf_only, sizeof(lf_only) - 1, &rsp, &fr, &hl), 0);
    assert_int_equal(rsp.status, 404);
    assert_string_equal(rsp.reason, "");
    assert_int_equal(fr.content_length, 5);
    assert_int_equal(hl, sizeof(lf_only) - 1);
    assert_int_equal(parse(none, sizeof(none) - 1, &rsp, &fr, &hl), 0);
    assert_int_equal(fr.chunked, 0);
    assert_int_equal(fr.content_length, -1);
}

static void test_reason_is_truncated_and_printable(void **state)
{
    char head[600];
    http_response rsp;
    http__framing fr;
    size_t hl = 0;
    int n;
    (void)state;
    n = snprintf(head, sizeof(head), "HTTP/1.1 413 %s\x01\x7f%0300d\r\n\r\n", "Too Large", 7);
    assert_int_equal(parse(head, (size_t)n, &rsp, &fr, &hl), 0);
    assert_int_equal(strlen(rsp.reason), sizeof(rsp.reason) - 1);
    assert_memory_equal(rsp.reason, "Too Large??000", 14);
}

static void test_dechunk_decodes_until_last_chunk(void **state)
{
    static const char in[] = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    char out[64];
    int done = 0;
    size_t n;
    (void)state;
    n = http__dechunk(in, sizeof(in) - 1, out, sizeof(out), &done);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "hello, world", 12);
    assert_int_equal(done, 1);
    /* every prefix decodes a prefix of the data and wants more */
    for (size_t len = 0; len < sizeof(in) - 1 - 5; len++) {
        n = http__dechunk(in, len, out, sizeof(out), &done);
        assert_true(n <= 12);
        assert_memory_equal(out, "hello, world", n);
        if (done)
            fail_msg("prefix %zu claims done", len);
    }
}

static void test_dechunk_stops_when_out_is_full_or_input_bad(void **state)
{
    static const char in[] = "a\r\n0123456789\r\n0\r\n\r\n";
    static const char *const bad[] = {"zz\r\nabc", "\r\nabc", "3\r\nabcX\r\n",
                                      "ffffffffffffffff1\r\n", "3x\r\nabc\r\n"};
    char out[4];
    int done = 0;
    (void)state;
    assert_int_equal(http__dechunk(in, sizeof(in) - 1, out, sizeof(out), &done), 4);
    assert_memory_equal(out, "0123", 4);
    assert_int_equal(done, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        done = 0;
        http__dechunk(bad[i], strlen(bad[i]), out, sizeof(out), &done);
        if (!done)
            fail_msg("bad chunk case %zu not flagged done", i);
    }
}

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(http_err_name(HTTP_ETLS), "ETLS");
    assert_string_equal(http_err_name(HTTP_ECONNECT), "ECONNECT");
    assert_string_equal(http_err_name(HTTP_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(http_err_name(HTTP_ECANCELED), "ECANCELED");
    assert_string_equal(http_err_name(12345), "unknown");
}

static void test_bad_tls_settings_are_einval_naming_the_file(void **state)
{
    http_tls tls = {.ca_file = "/nonexistent/ca.pem"};
    http_client *c = (http_client *)&tls; /* must be reset to NULL */
    char err[256];
    (void)state;
    assert_int_equal(http_client_new(&tls, &c, err, sizeof(err)), HTTP_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    tls.ca_file = NULL;
    assert_int_equal(http_client_new(&tls, &c, err, sizeof(err)), HTTP_EINVAL);
    tls.insecure = 1;
    tls.cert_file = "/x.pem";
    assert_int_equal(http_client_new(&tls, &c, err, sizeof(err)), HTTP_EINVAL);
    assert_non_null(strstr(err, "key_file"));
    tls.cert_file = NULL;
    assert_int_equal(http_client_new(&tls, &c, err, sizeof(err)), 0);
    http_client_free(c);
    http_client_free(NULL);
}

static void test_bad_requests_are_einval_without_echoing_values(void **state)
{
    static const char *const inject[] = {"Authorization: AWS4 secret\r\nX-Evil: 1"};
    static const char *const own[] = {"content-length: 5"};
    http_tls tls = {.insecure = 1};
    http_client *c = NULL;
    http_request rq = {.method = "PUT", .host = "127.0.0.1", .port = 1, .path = "/a",
                       .connect_timeout_ms = 100, .io_timeout_ms = 100};
    http_response rsp;
    char err[256];
    (void)state;
    assert_int_equal(http_client_new(&tls, &c, err, sizeof(err)), 0);
    rq.headers = inject;
    rq.n_headers = 1;
    assert_int_equal(http_request_do(c, &rq, &rsp, err, sizeof(err)), HTTP_EINVAL);
    assert_null(strstr(err, "secret"));
    rq.headers = own;
    assert_int_equal(http_request_do(c, &rq, &rsp, err, sizeof(err)), HTTP_EINVAL);
    rq.n_headers = 0;
    rq.path = "/a b";
    assert_int_equal(http_request_do(c, &rq, &rsp, err, sizeof(err)), HTTP_EINVAL);
    rq.path = "/a";
    rq.host = "evil/host";
    assert_int_equal(http_request_do(c, &rq, &rsp, err, sizeof(err)), HTTP_EINVAL);
    rq.host = "127.0.0.1";
    rq.content_length = 5; /* and no body source */
    assert_int_equal(http_request_do(c, &rq, &rsp, err, sizeof(err)), HTTP_EINVAL);
    http_client_free(c);
}

/* Cipher suites: names checked (AEAD only), the default offer's order. */
static void test_cipher_suites_are_aead_and_chacha_leads_without_aes(void **state)
{
    (void)state;
    int chacha = http_ciphersuite_id("TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256");
    int gcm256 = http_ciphersuite_id("TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384");
    int gcm128 = http_ciphersuite_id("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
    assert_true(chacha > 0 && gcm256 > 0 && gcm128 > 0);
    assert_int_equal(http_ciphersuite_id("TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256"), -ENOTSUP);
    assert_true(http_ciphersuite_id("TLS-RSA-WITH-NULL-SHA256") < 0); /* not built in, or not AEAD */
    assert_int_equal(http_ciphersuite_id("TLS-NO-SUCH-SUITE"), HTTP_EINVAL);
    assert_int_equal(http_ciphersuite_id(""), HTTP_EINVAL);
    int cbc = 0xC027; /* TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256 */
    int all[] = {gcm256, cbc, chacha, gcm128, 0}, out[5];
    assert_int_equal(http__order_suites(all, 0, out), 3);
    assert_int_equal(out[0], chacha);
    assert_int_equal(out[1], gcm256);
    assert_int_equal(out[2], gcm128);
    assert_int_equal(out[3], 0);
    assert_int_equal(http__order_suites(all, 1, out), 3);
    assert_int_equal(out[0], gcm256);
    assert_int_equal(out[1], chacha);
    assert_int_equal(out[2], gcm128);
    assert_int_equal(out[3], 0);
    int none[] = {cbc, 0};
    assert_int_equal(http__order_suites(none, 0, out), 0);
    assert_int_equal(out[0], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_head_gives_status_reason_and_length),
        cmocka_unit_test(test_etag_header_is_kept_whole_or_not_at_all),
        cmocka_unit_test(test_every_prefix_of_a_head_asks_for_more),
        cmocka_unit_test(test_head_without_end_within_limit_is_eproto),
        cmocka_unit_test(test_malformed_status_lines_are_eproto),
        cmocka_unit_test(test_nul_in_head_is_eproto),
        cmocka_unit_test(test_framing_variants),
        cmocka_unit_test(test_reason_is_truncated_and_printable),
        cmocka_unit_test(test_dechunk_decodes_until_last_chunk),
        cmocka_unit_test(test_dechunk_stops_when_out_is_full_or_input_bad),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_cipher_suites_are_aead_and_chacha_leads_without_aes),
        cmocka_unit_test(test_bad_tls_settings_are_einval_naming_the_file),
        cmocka_unit_test(test_bad_requests_are_einval_without_echoing_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
