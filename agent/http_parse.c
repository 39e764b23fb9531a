/*
 * http_parse.c -- the pure half of the HTTPS client (contract in http.h):
 * the response head parser and the chunked-body decoder.
 *
 * Input comes from the network, so every length is bounded by what the
 * caller passes (never past len, never a head over HTTP__HEAD_MAX) and every
 * malformed input is HTTP_EPROTO, never a crash. Strict where ambiguity
 * could mislead framing: conflicting Content-Length values, obsolete line
 * folding and NUL or bare CR inside a line are refused; LF-only line ends
 * are tolerated. No I/O, no allocation.
 */
#include "http.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

int http__is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int parse_status(const char *p, size_t n, http_response *rsp)
{
    size_t k = 0;
    if (n < 12 || memcmp(p, "HTTP/1.", 7) || !isdigit((unsigned char)p[7]) || p[8] != ' ' ||
        !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]) || (n > 12 && p[12] != ' '))
        return HTTP_EPROTO;
    rsp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (rsp->status < 100 || rsp->status > 599)
        return HTTP_EPROTO;
    for (size_t i = 13; i < n && k < sizeof(rsp->reason) - 1; i++) /* printable for logs */
        rsp->reason[k++] = (unsigned char)p[i] >= 0x20 && p[i] != 0x7f ? p[i] : '?';
    rsp->reason[k] = 0;
    return 0;
}

int http__parse_head(const char *buf, size_t len, http_response *rsp, http__framing *fr,
                     size_t *head_len)
{
    size_t scan = len < HTTP__HEAD_MAX ? len : HTTP__HEAD_MAX, end = 0, line = 0;
    int rc = HTTP_EPROTO;
    /* The head ends at the first empty line; lines end in LF, CR optional. */
    for (size_t i = 1; i < scan && !end; i++)
        if (buf[i] == '\n' && (buf[i - 1] == '\n' || (i >= 2 && buf[i - 1] == '\r' &&
                                                      buf[i - 2] == '\n')))
            end = i + 1;
    if (!end) {
        rc = len >= HTTP__HEAD_MAX ? HTTP_EPROTO : 1;
        goto out;
    }
    fr->chunked = 0;
    fr->content_length = -1;
    rsp->etag[0] = 0;
    for (size_t pos = 0; pos < end; line++) {
        const char *p = buf + pos, *nl = memchr(p, '\n', end - pos), *colon, *v, *ve;
        size_t n = (size_t)(nl - p);
        pos += n + 1;
        if (n && p[n - 1] == '\r')
            n--;
        if (memchr(p, '\0', n) || memchr(p, '\r', n))
            goto out;
        if (line == 0) {
            if (parse_status(p, n, rsp))
                goto out;
            continue;
        }
        if (n == 0)
            break;
        if (!(colon = memchr(p, ':', n)) || colon == p)
            goto out; /* also obs-fold continuation lines: refused */
        for (const char *q = p; q < colon; q++)
            if (!http__is_tchar((unsigned char)*q))
                goto out;
        for (v = colon + 1, ve = p + n; v < ve && (*v == ' ' || *v == '\t'); v++) {
        }
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (colon - p == 14 && !strncasecmp(p, "content-length", 14)) {
            int64_t cl = 0;
            if (v == ve || ve - v > 18)
                goto out;
            for (const char *q = v; q < ve; q++) {
                if (!isdigit((unsigned char)*q))
                    goto out;
                cl = cl * 10 + (*q - '0');
            }
            if (fr->content_length >= 0 && fr->content_length != cl)
                goto out;
            fr->content_length = cl;
        } else if (colon - p == 4 && !strncasecmp(p, "etag", 4)) {
            size_t el = (size_t)(ve - v);
            if (el < sizeof(rsp->etag)) {
                memcpy(rsp->etag, v, el);
                rsp->etag[el] = 0;
            } else {
                rsp->etag[0] = 0;
            }
        } else if (colon - p == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
            const char *last = ve;
            while (last > v && last[-1] != ',' && last[-1] != ' ' && last[-1] != '\t')
                last--;
            fr->chunked = ve - last == 7 && !strncasecmp(last, "chunked", 7);
        }
    }
    if (fr->chunked) /* RFC 9112 6.3: Transfer-Encoding overrides Content-Length */
        fr->content_length = -1;
    *head_len = end;
    rc = 0;
out:
    return rc;
}

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

size_t http__dechunk(const char *in, size_t len, char *out, size_t outlen, int *done)
{
    size_t i = 0, n = 0;
    *done = 0;
    while (n < outlen) {
        uint64_t size = 0;
        size_t digits = 0, take;
        const char *lf;
        for (; i < len && hexval((unsigned char)in[i]) >= 0; i++, digits++) {
            if (digits == 15)
                goto bad;
            size = size * 16 + (uint64_t)hexval((unsigned char)in[i]);
        }
        if (i == len)
            goto out;
        if (!digits || (in[i] != ';' && in[i] != '\r' && in[i] != '\n' && in[i] != ' ' &&
                        in[i] != '\t'))
            goto bad;
        if (!(lf = memchr(in + i, '\n', len - i)))
            goto out; /* extensions go on: need more */
        i = (size_t)(lf - in) + 1;
        if (size == 0) {
            *done = 1;
            goto out;
        }
        take = len - i < size ? len - i : (size_t)size;
        take = take < outlen - n ? take : outlen - n;
        memcpy(out + n, in + i, take);
        n += take;
        if (len - i < size) /* the chunk goes on past our bytes (or out is full) */
            goto out;
        i += (size_t)size;
        if (i < len && in[i] == '\r')
            i++;
        if (i == len)
            goto out;
        if (in[i++] != '\n')
            goto bad;
    }
    goto out; /* out is full */
bad:
    *done = 1;
out:
    if (n == outlen)
        *done = 1;
    return n;
}
