/*
 * test_s3_xml.c -- the S3 XML replies of a multipart upload (agent/s3_xml.c)
 * as S3 writes them, and as a lying or cut-short server might: an <Error>
 * in a 200 reply, a missing or hostile upload id or ETag, parts out of
 * range, a ListPartsResult or ListMultipartUploadsResult cut short. Every such reply is -EPROTO, never a
 * success. The fuzzer (tests/fuzz/fuzz_s3_xml.c) checks the same rules on
 * any input.
 */
#include "s3_xml.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static void test_initiate_gives_the_upload_id_and_refuses_the_rest(void **state)
{
    char id[S3_UPLOAD_ID_MAX];
    const char *ok = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult " NS "><Bucket>b"
                     "</Bucket><Key>k</Key><UploadId>VXBsb2Fk.ID_~-9</UploadId>"
                     "</InitiateMultipartUploadResult>";
    (void)state;
    assert_int_equal(s3_xml_initiate(ok, strlen(ok), id), 0);
    assert_string_equal(id, "VXBsb2Fk.ID_~-9");
    const char *bad[] = {
        "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>a/b</UploadId></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>a&amp;b</UploadId></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>abc",
        "<InitiateMultipartUploadResult><Key>k</Key></InitiateMultipartUploadResult>",
        "<InitiateMultipartUploadResult><UploadId>abc</UploadId><Error><Code>X</Code></Error>",
        "<UploadId>abc</UploadId>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(s3_xml_initiate(bad[i], strlen(bad[i]), id), -EPROTO);
    /* An id one byte too long is refused, not cut. */
    char big[S3_UPLOAD_ID_MAX + 100];
    int n = snprintf(big, sizeof(big), "<InitiateMultipartUploadResult><UploadId>");
    memset(big + n, 'a', S3_UPLOAD_ID_MAX);
    snprintf(big + n + S3_UPLOAD_ID_MAX, sizeof(big) - (size_t)n - S3_UPLOAD_ID_MAX, "</UploadId>");
    assert_int_equal(s3_xml_initiate(big, strlen(big), id), -EPROTO);
}

static void test_complete_with_an_error_in_a_200_is_no_success(void **state)
{
    const char *ok = "<?xml version=\"1.0\"?>\n<CompleteMultipartUploadResult " NS "><Location>l"
                     "</Location><ETag>\"abc-3\"</ETag></CompleteMultipartUploadResult>";
    const char *err200 = "<?xml version=\"1.0\"?>\n\n  \n<Error><Code>InternalError</Code>"
                         "<Message>try again</Message></Error>";
    const char *both = "<CompleteMultipartUploadResult></CompleteMultipartUploadResult>"
                       "<Error><Code>InternalError</Code></Error>";
    char code[64];
    (void)state;
    assert_int_equal(s3_xml_complete(ok, strlen(ok)), 0);
    assert_int_equal(s3_xml_complete(err200, strlen(err200)), -EPROTO);
    assert_int_equal(s3_xml_error(err200, strlen(err200), code, sizeof(code)), 1);
    assert_string_equal(code, "InternalError");
    assert_int_equal(s3_xml_complete(both, strlen(both)), -EPROTO);
    assert_int_equal(s3_xml_complete(ok, strlen(ok) - 1), -EPROTO); /* cut short */
    assert_int_equal(s3_xml_complete("", 0), -EPROTO);
    assert_int_equal(s3_xml_error(ok, strlen(ok), code, sizeof(code)), 0);
}

typedef struct got {
    s3_part p[8];
    size_t n;
} got;

static int on_part(void *ctx, const s3_part *p)
{
    got *g = ctx;
    if (g->n < 8)
        g->p[g->n++] = *p;
    return 0;
}

static void test_list_parts_reads_each_part_and_the_page(void **state)
{
    const char *ok = "<ListPartsResult " NS "><UploadId>u</UploadId><NextPartNumberMarker>2"
                     "</NextPartNumberMarker><IsTruncated>true</IsTruncated>"
                     "<Part><PartNumber>1</PartNumber><ETag>&quot;0a1b&quot;</ETag><Size>5242880"
                     "</Size></Part><Part><PartNumber>2</PartNumber><LastModified>x"
                     "</LastModified><ETag>\"ff-2\"</ETag><Size>7</Size></Part></ListPartsResult>";
    got g = {0};
    int trunc = 0;
    unsigned next = 0;
    (void)state;
    assert_int_equal(s3_xml_list_parts(ok, strlen(ok), on_part, &g, &trunc, &next), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.p[0].number, 1);
    assert_int_equal(g.p[0].size, 5242880);
    assert_string_equal(g.p[0].etag, "0a1b");
    assert_string_equal(g.p[1].etag, "ff-2");
    assert_int_equal(trunc, 1);
    assert_int_equal(next, 2);
    /* Cut anywhere before its closing tag: refused. */
    for (size_t cut = 0; cut < strlen(ok); cut++) {
        got h = {0};
        assert_int_equal(s3_xml_list_parts(ok, cut, on_part, &h, &trunc, &next), -EPROTO);
    }
    const char *empty = "<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>";
    got e = {0};
    assert_int_equal(s3_xml_list_parts(empty, strlen(empty), on_part, &e, &trunc, &next), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(trunc, 0);
}

static void test_list_parts_refuses_hostile_parts(void **state)
{
    const char *bad[] = {
        "<ListPartsResult><Part><PartNumber>0</PartNumber><ETag>a</ETag><Size>1</Size></Part>"
        "</ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>a</ETag><Size>1</Size>"
        "</Part></ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>1</PartNumber><Size>1</Size></Part>"
        "</ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>a\"b</ETag><Size>1</Size>"
        "</Part></ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>a</ETag><Size>"
        "99999999999999999999</Size></Part></ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>-1</PartNumber><ETag>a</ETag><Size>1</Size></Part>"
        "</ListPartsResult>",
        "<ListPartsResult><NextPartNumberMarker>x</NextPartNumberMarker></ListPartsResult>",
        "<ListPartsResult><Part><PartNumber>1</PartNumber></ListPartsResult>",
        "<Error><Code>NoSuchUpload</Code></Error><ListPartsResult></ListPartsResult>",
    };
    int trunc;
    unsigned next;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        got g = {0};
        assert_int_equal(s3_xml_list_parts(bad[i], strlen(bad[i]), on_part, &g, &trunc, &next),
                         -EPROTO);
    }
}

typedef struct ids {
    char id[4][S3_UPLOAD_ID_MAX];
    size_t n;
} ids;

static int on_upload(void *ctx, const char *id)
{
    ids *v = ctx;
    if (v->n < 4)
        snprintf(v->id[v->n++], S3_UPLOAD_ID_MAX, "%s", id);
    return 0;
}

static void test_list_uploads_names_only_the_keys_own(void **state)
{
    const char *ok = "<ListMultipartUploadsResult " NS "><Bucket>b</Bucket><IsTruncated>false"
                     "</IsTruncated><Upload><Key>f/d/x.tar</Key><UploadId>one</UploadId></Upload>"
                     "<Upload><Key>f/d/x.tar.zst</Key><UploadId>other</UploadId></Upload>"
                     "<Upload><Key>f/d/x.tar</Key><UploadId>two</UploadId></Upload>"
                     "</ListMultipartUploadsResult>";
    ids v = {0};
    s3_uploads_next next = {.truncated = 1};
    (void)state;
    assert_int_equal(s3_xml_list_uploads(ok, strlen(ok), "f/d/x.tar", on_upload, &v, &next), 0);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.id[0], "one");
    assert_string_equal(v.id[1], "two");
    assert_int_equal(next.truncated, 0);
    assert_null(next.key);
    assert_string_equal(next.upload_id, "");
    for (size_t cut = 0; cut < strlen(ok); cut++) {
        ids w = {0};
        assert_int_equal(s3_xml_list_uploads(ok, cut, "f/d/x.tar", on_upload, &w, &next), -EPROTO);
    }
    const char *bad[] = {
        "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>",
        "<ListMultipartUploadsResult><Upload><UploadId>a</UploadId></Upload>"
        "</ListMultipartUploadsResult>",
        "<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>a b</UploadId></Upload>"
        "</ListMultipartUploadsResult>",
        "<Error><Code>AccessDenied</Code></Error>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ids w = {0};
        assert_int_equal(s3_xml_list_uploads(bad[i], strlen(bad[i]), "k", on_upload, &w, &next),
                         -EPROTO);
        assert_int_equal(w.n, 0);
    }
}

static void test_list_uploads_gives_the_next_page_markers(void **state)
{
    const char *page = "<ListMultipartUploadsResult " NS "><Bucket>b</Bucket><KeyMarker>"
                       "</KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>f/d/x.tar"
                       "</NextKeyMarker><NextUploadIdMarker>two</NextUploadIdMarker><MaxUploads>2"
                       "</MaxUploads><IsTruncated>true</IsTruncated>"
                       "<Upload><Key>f/d/x.tar</Key><UploadId>one</UploadId></Upload>"
                       "<Upload><Key>f/d/x.tar</Key><UploadId>two</UploadId></Upload>"
                       "</ListMultipartUploadsResult>";
    const char *last = "<ListMultipartUploadsResult><NextKeyMarker/><NextUploadIdMarker>"
                       "</NextUploadIdMarker><IsTruncated>false</IsTruncated>"
                       "</ListMultipartUploadsResult>";
    const char *bad_marker = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                             "<NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>a&amp;b"
                             "</NextUploadIdMarker></ListMultipartUploadsResult>";
    s3_uploads_next next;
    ids v = {0};
    (void)state;
    assert_int_equal(s3_xml_list_uploads(page, strlen(page), "f/d/x.tar", on_upload, &v, &next),
                     0);
    assert_int_equal(v.n, 2);
    assert_int_equal(next.truncated, 1);
    assert_non_null(next.key);
    assert_int_equal(next.key_len, strlen("f/d/x.tar"));
    assert_memory_equal(next.key, "f/d/x.tar", next.key_len);
    assert_string_equal(next.upload_id, "two");
    /* Empty markers are absent ones: the caller decides what a truncated
     * page without them means. */
    assert_int_equal(s3_xml_list_uploads(last, strlen(last), "k", on_upload, &v, &next), 0);
    assert_int_equal(next.truncated, 0);
    assert_null(next.key);
    assert_string_equal(next.upload_id, "");
    /* A marker the agent would have to send back is refused, never cut. */
    assert_int_equal(s3_xml_list_uploads(bad_marker, strlen(bad_marker), "k", on_upload, &v,
                                         &next), -EPROTO);
}

static void test_etag_loses_its_quotes_and_nothing_else(void **state)
{
    char e[S3_ETAG_MAX];
    char big[S3_ETAG_MAX + 2];
    (void)state;
    assert_int_equal(s3_etag_norm("\"abc-1\"", 7, e), 0);
    assert_string_equal(e, "abc-1");
    assert_int_equal(s3_etag_norm("&quot;abc&quot;", 15, e), 0);
    assert_string_equal(e, "abc");
    assert_int_equal(s3_etag_norm("abc", 3, e), 0);
    assert_int_equal(s3_etag_norm("\"\"", 2, e), -EPROTO);
    assert_int_equal(s3_etag_norm("", 0, e), -EPROTO);
    assert_int_equal(s3_etag_norm("W/\"abc\"", 7, e), -EPROTO);
    assert_int_equal(s3_etag_norm("a<b", 3, e), -EPROTO);
    memset(big, 'a', sizeof(big));
    assert_int_equal(s3_etag_norm(big, S3_ETAG_MAX - 1, e), 0);
    assert_int_equal(s3_etag_norm(big, S3_ETAG_MAX, e), -EPROTO); /* refused, never cut */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initiate_gives_the_upload_id_and_refuses_the_rest),
        cmocka_unit_test(test_complete_with_an_error_in_a_200_is_no_success),
        cmocka_unit_test(test_list_parts_reads_each_part_and_the_page),
        cmocka_unit_test(test_list_parts_refuses_hostile_parts),
        cmocka_unit_test(test_list_uploads_names_only_the_keys_own),
        cmocka_unit_test(test_list_uploads_gives_the_next_page_markers),
        cmocka_unit_test(test_etag_loses_its_quotes_and_nothing_else),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
