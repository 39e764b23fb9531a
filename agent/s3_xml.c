/*
 * s3_xml.c -- the S3 XML replies of a multipart upload (contract in
 * s3_xml.h). Elements are found by their literal open and close tags
 * within [body, body + len); a value is the bytes between them, taken only
 * when it is plain text (no '<').
 */
#include "s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* First occurrence of s (NUL-terminated) in b[0..len), or NULL. */
static const char *find(const char *b, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (b[i] == s[0] && !memcmp(b + i, s, n))
            return b + i;
    return NULL;
}

/* The text of the first <tag>...</tag> in b[0..len): 0 with *v, *vl set,
 * else -EPROTO (absent, unclosed, or not plain text). *after (optional)
 * points past the closing tag. */
static int elem(const char *b, size_t len, const char *tag, const char **v, size_t *vl,
                const char **after)
{
    char open[40], close[41];
    const char *o, *c;
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if (!(o = find(b, len, open)))
        return -EPROTO;
    o += strlen(open);
    if (!(c = find(o, len - (size_t)(o - b), close)) || memchr(o, '<', (size_t)(c - o)))
        return -EPROTO;
    *v = o;
    *vl = (size_t)(c - o);
    if (after)
        *after = c + strlen(close);
    return 0;
}

/* Decimal digits only, no more than max. */
static int number(const char *v, size_t vl, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (!vl || vl > 20)
        return -EPROTO;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9' || x > (max - (uint64_t)(v[i] - '0')) / 10)
            return -EPROTO;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

int s3_xml_error(const char *body, size_t len, char *code, size_t code_len)
{
    const char *e = find(body, len, "<Error>"), *v;
    size_t vl;
    if (code_len)
        code[0] = 0;
    if (!e)
        return 0;
    if (!elem(e, len - (size_t)(e - body), "Code", &v, &vl, NULL) && vl < code_len) {
        memcpy(code, v, vl);
        code[vl] = 0;
    }
    return 1;
}

/* An upload id: 1..S3_UPLOAD_ID_MAX-1 bytes of [A-Za-z0-9._~-] into id. */
static int upload_id(const char *v, size_t vl, char id[S3_UPLOAD_ID_MAX])
{
    if (!vl || vl >= S3_UPLOAD_ID_MAX)
        return -EPROTO;
    for (size_t i = 0; i < vl; i++)
        if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
              (v[i] >= '0' && v[i] <= '9') || strchr("._~-", v[i]) != NULL) || !v[i])
            return -EPROTO;
    memcpy(id, v, vl);
    id[vl] = 0;
    return 0;
}

int s3_xml_initiate(const char *body, size_t len, char id[S3_UPLOAD_ID_MAX])
{
    const char *r, *v;
    size_t vl;
    id[0] = 0;
    if (s3_xml_error(body, len, NULL, 0) || !(r = find(body, len, "<InitiateMultipartUploadResult")) ||
        elem(r, len - (size_t)(r - body), "UploadId", &v, &vl, NULL))
        return -EPROTO;
    return upload_id(v, vl, id);
}

int s3_xml_list_uploads(const char *body, size_t len, const char *key,
                        int (*fn)(void *ctx, const char *upload_id), void *ctx,
                        s3_uploads_next *next)
{
    const char *r, *end, *v, *p;
    size_t vl;
    int rc;
    memset(next, 0, sizeof(*next));
    if (s3_xml_error(body, len, NULL, 0) || !(r = find(body, len, "<ListMultipartUploadsResult")) ||
        !(end = find(r, len - (size_t)(r - body), "</ListMultipartUploadsResult>")))
        return -EPROTO;
    if (!elem(r, (size_t)(end - r), "IsTruncated", &v, &vl, NULL))
        next->truncated = vl == 4 && !memcmp(v, "true", 4);
    if (!elem(r, (size_t)(end - r), "NextKeyMarker", &v, &vl, NULL) && vl) {
        next->key = v;
        next->key_len = vl;
    }
    if (!elem(r, (size_t)(end - r), "NextUploadIdMarker", &v, &vl, NULL) && vl &&
        upload_id(v, vl, next->upload_id))
        return -EPROTO;
    for (p = r; (p = find(p, (size_t)(end - p), "<Upload>")) != NULL;) {
        const char *ue = find(p, (size_t)(end - p), "</Upload>");
        char id[S3_UPLOAD_ID_MAX];
        if (!ue || elem(p, (size_t)(ue - p), "Key", &v, &vl, NULL))
            return -EPROTO;
        int mine = vl == strlen(key) && !memcmp(v, key, vl);
        if (elem(p, (size_t)(ue - p), "UploadId", &v, &vl, NULL) || upload_id(v, vl, id))
            return -EPROTO;
        if (mine && (rc = fn(ctx, id)))
            return rc;
        p = ue + strlen("</Upload>");
    }
    return 0;
}

int s3_xml_complete(const char *body, size_t len)
{
    const char *r;
    if (s3_xml_error(body, len, NULL, 0) || !(r = find(body, len, "<CompleteMultipartUploadResult")) ||
        !find(r, len - (size_t)(r - body), "</CompleteMultipartUploadResult>"))
        return -EPROTO;
    return 0;
}

int s3_etag_norm(const char *in, size_t len, char out[S3_ETAG_MAX])
{
    out[0] = 0;
    if (len >= 12 && !memcmp(in, "&quot;", 6) && !memcmp(in + len - 6, "&quot;", 6)) {
        in += 6;
        len -= 12;
    } else if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
        in++;
        len -= 2;
    }
    if (!len || len >= S3_ETAG_MAX)
        return -EPROTO;
    for (size_t i = 0; i < len; i++)
        if (!((in[i] >= 'A' && in[i] <= 'Z') || (in[i] >= 'a' && in[i] <= 'z') ||
              (in[i] >= '0' && in[i] <= '9') || in[i] == '-'))
            return -EPROTO;
    memcpy(out, in, len);
    out[len] = 0;
    return 0;
}

int s3_xml_list_parts(const char *body, size_t len, int (*fn)(void *ctx, const s3_part *p),
                      void *ctx, int *truncated, unsigned *next_marker)
{
    const char *r, *end, *v, *p;
    size_t vl;
    uint64_t x;
    int rc;
    *truncated = 0;
    *next_marker = 0;
    if (s3_xml_error(body, len, NULL, 0) || !(r = find(body, len, "<ListPartsResult")) ||
        !(end = find(r, len - (size_t)(r - body), "</ListPartsResult>")))
        return -EPROTO;
    if (!elem(r, (size_t)(end - r), "IsTruncated", &v, &vl, NULL))
        *truncated = vl == 4 && !memcmp(v, "true", 4);
    if (!elem(r, (size_t)(end - r), "NextPartNumberMarker", &v, &vl, NULL)) {
        if (number(v, vl, S3_MAX_PARTS, &x))
            return -EPROTO;
        *next_marker = (unsigned)x;
    }
    for (p = r; (p = find(p, (size_t)(end - p), "<Part>")) != NULL;) {
        const char *pe = find(p, (size_t)(end - p), "</Part>");
        s3_part part;
        if (!pe)
            return -EPROTO;
        if (elem(p, (size_t)(pe - p), "PartNumber", &v, &vl, NULL) ||
            number(v, vl, S3_MAX_PARTS, &x) || !x)
            return -EPROTO;
        part.number = (unsigned)x;
        if (elem(p, (size_t)(pe - p), "Size", &v, &vl, NULL) ||
            number(v, vl, UINT64_MAX, &part.size))
            return -EPROTO;
        if (elem(p, (size_t)(pe - p), "ETag", &v, &vl, NULL) || s3_etag_norm(v, vl, part.etag))
            return -EPROTO;
        if ((rc = fn(ctx, &part)))
            return rc;
        p = pe + strlen("</Part>");
    }
    return 0;
}
