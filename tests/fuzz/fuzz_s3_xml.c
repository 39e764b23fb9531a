/*
 * fuzz_s3_xml.c -- libFuzzer entry point for the S3 XML replies a multipart
 * upload reads (agent/s3_xml.c): InitiateMultipartUploadResult,
 * ListPartsResult, ListMultipartUploadsResult (with its page markers),
 * CompleteMultipartUploadResult and Error, and the ETag
 * normaliser. Byte 0 picks a cut point; the rest is the server's body,
 * given from a heap copy of exactly its length (ASan sees any read past
 * it). Beyond "no read or write outside the buffers" it checks what the
 * uploader relies on (abort() on a violation, so libFuzzer reports it):
 *   - a reply holding <Error> anywhere is never a success: not an upload
 *     id, not a completed upload, not a list of parts or uploads;
 *   - an accepted upload id (created, listed, or a ListMultipartUploads
 *     page's NextUploadIdMarker) is 1..511 bytes of [A-Za-z0-9._~-], an ETag
 *     1..79 bytes of [A-Za-z0-9-], a listed part numbered 1..10000; a
 *     NextKeyMarker lies inside the body and holds no '<';
 *   - a ListPartsResult or ListMultipartUploadsResult cut anywhere before
 *     its closing tag is refused (a body truncated by the client's buffer
 *     never passes as whole, nor do its markers);
 *   - the same bytes parse the same way again.
 */
#include "s3_xml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int safe(const char *s, const char *extra)
{
    size_t n = strlen(s);
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
            return 0;
    return 1;
}

typedef struct count {
    size_t n;
} count;

static int on_part(void *ctx, const s3_part *p)
{
    count *c = ctx;
    if (p->number < 1 || p->number > S3_MAX_PARTS || !safe(p->etag, "-") ||
        strlen(p->etag) >= S3_ETAG_MAX)
        abort();
    c->n++;
    return 0;
}

typedef struct ids {
    size_t n;
} ids;

static int on_upload(void *ctx, const char *id)
{
    ids *v = ctx;
    if (!safe(id, "._~-") || strlen(id) >= S3_UPLOAD_ID_MAX)
        abort();
    v->n++;
    return 0;
}

static void check(const char *b, size_t len)
{
    char id[S3_UPLOAD_ID_MAX], id2[S3_UPLOAD_ID_MAX], code[64], etag[S3_ETAG_MAX];
    int err = s3_xml_error(b, len, code, sizeof(code)), trunc = 0, trunc2 = 0;
    unsigned next = 0, next2 = 0;
    count c = {0}, c2 = {0};
    if (err != 0 && err != 1)
        abort();
    int init = s3_xml_initiate(b, len, id);
    if (init == 0 && (err || !safe(id, "._~-") || strlen(id) >= S3_UPLOAD_ID_MAX))
        abort();
    if (init != 0 && (init != -EPROTO || id[0]))
        abort();
    if (s3_xml_initiate(b, len, id2) != init || (init == 0 && strcmp(id, id2)))
        abort();
    int done = s3_xml_complete(b, len);
    if (done == 0 && err)
        abort();
    int lp = s3_xml_list_parts(b, len, on_part, &c, &trunc, &next);
    if (lp == 0 && err)
        abort();
    if (lp == 0 && (next > S3_MAX_PARTS || (trunc != 0 && trunc != 1)))
        abort();
    if (s3_xml_list_parts(b, len, on_part, &c2, &trunc2, &next2) != lp || c2.n != c.n ||
        (lp == 0 && (trunc2 != trunc || next2 != next)))
        abort();
    if (lp == 0) { /* cut before the closing tag: refused */
        static const char close[] = "</ListPartsResult>";
        for (size_t i = 0; i + sizeof(close) - 1 <= len; i++)
            if (!memcmp(b + i, close, sizeof(close) - 1)) {
                count c3 = {0};
                if (s3_xml_list_parts(b, i + sizeof(close) - 2, on_part, &c3, &trunc, &next) ==
                    0)
                    abort();
                break;
            }
    }
    ids u = {0}, u2 = {0};
    s3_uploads_next nu, nu2;
    int lu = s3_xml_list_uploads(b, len, "k", on_upload, &u, &nu);
    if (lu == 0 && err)
        abort();
    if (lu == 0 && ((nu.truncated != 0 && nu.truncated != 1) ||
                    (nu.upload_id[0] && !safe(nu.upload_id, "._~-")) ||
                    strlen(nu.upload_id) >= S3_UPLOAD_ID_MAX ||
                    (nu.key && (!nu.key_len || nu.key < b || nu.key + nu.key_len > b + len ||
                                memchr(nu.key, '<', nu.key_len))) ||
                    (!nu.key && nu.key_len)))
        abort();
    if (s3_xml_list_uploads(b, len, "k", on_upload, &u2, &nu2) != lu || u2.n != u.n ||
        (lu == 0 && (nu2.truncated != nu.truncated || nu2.key != nu.key ||
                     nu2.key_len != nu.key_len || strcmp(nu2.upload_id, nu.upload_id))))
        abort();
    if (lu == 0) {
        static const char close[] = "</ListMultipartUploadsResult>";
        for (size_t i = 0; i + sizeof(close) - 1 <= len; i++)
            if (!memcmp(b + i, close, sizeof(close) - 1)) {
                ids u3 = {0};
                if (s3_xml_list_uploads(b, i + sizeof(close) - 2, "k", on_upload, &u3, &nu2) == 0)
                    abort();
                break;
            }
    }
    if (s3_etag_norm(b, len, etag) == 0 && (!safe(etag, "-") || strlen(etag) >= S3_ETAG_MAX))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1, cut = len ? data[0] % (len + 1) : 0;
    char *b = malloc(len ? len : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, len);
    check(b, len);
    check(b, cut);
    free(b);
    return 0;
}
