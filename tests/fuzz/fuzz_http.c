/*
 * fuzz_http.c -- libFuzzer entry point for the HTTPS client's pure half
 * (agent/http_parse.c), which reads whatever a server sends: the response
 * head parser and the chunked-body decoder. Byte 0 picks the decoder's
 * output size and a cut point; the rest is the server's bytes. Beyond "no
 * read or write outside the buffers" it checks the properties http.c
 * relies on (abort() on a violation, so libFuzzer reports it):
 *   - a parsed head lies within the input and HTTP__HEAD_MAX, its status is
 *     100..599, its reason a NUL-terminated string, its framing sane;
 *   - the head is found only once complete: one byte less asks for more
 *     (or is refused), and the same bytes parse the same way again;
 *   - interim 1xx heads can be dropped one after another, as the client
 *     does, each time making progress;
 *   - the decoder never writes past its output and decodes a prefix of
 *     the input into a prefix of what the whole input decodes to (the
 *     client calls it again on a growing buffer).
 */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_head(const char *in, size_t len)
{
    http_response rsp, again;
    http__framing fr = {0, -1}, fr2 = {0, -1};
    size_t hl = 0, hl2 = 0;
    memset(&rsp, 0, sizeof(rsp));
    int rc = http__parse_head(in, len, &rsp, &fr, &hl);
    if (rc != 0 && rc != 1 && rc != HTTP_EPROTO)
        abort();
    if (rc == 1 && len >= HTTP__HEAD_MAX)
        abort(); /* "need more" past the limit would read forever */
    if (rc != 0)
        return;
    if (hl == 0 || hl > len || hl > HTTP__HEAD_MAX || rsp.status < 100 || rsp.status > 599 ||
        memchr(rsp.reason, 0, sizeof(rsp.reason)) == NULL || fr.content_length < -1 ||
        (fr.chunked && fr.content_length != -1))
        abort();
    /* Found only once complete; stable on the same bytes. */
    memset(&again, 0, sizeof(again));
    if (http__parse_head(in, hl - 1, &again, &fr2, &hl2) == 0)
        abort();
    memset(&again, 0, sizeof(again));
    if (http__parse_head(in, hl, &again, &fr2, &hl2) != 0 || hl2 != hl ||
        again.status != rsp.status || strcmp(again.reason, rsp.reason) ||
        fr2.chunked != fr.chunked || fr2.content_length != fr.content_length)
        abort();
}

/* Drops interim heads the way http.c's reader does. */
static void drop_interim(const char *in, size_t len)
{
    for (;;) {
        http_response rsp;
        http__framing fr = {0, -1};
        size_t hl = 0;
        memset(&rsp, 0, sizeof(rsp));
        if (http__parse_head(in, len, &rsp, &fr, &hl) != 0 || rsp.status >= 200 ||
            rsp.status == 101)
            return;
        if (hl == 0 || hl > len)
            abort(); /* no progress: the client would loop */
        in += hl;
        len -= hl;
    }
}

static void check_dechunk(const char *in, size_t len, size_t outlen, size_t cut)
{
    char *full = malloc(outlen ? outlen : 1), *part = malloc(outlen ? outlen : 1);
    int done = 0, done2 = 0;
    if (!full || !part)
        goto out;
    size_t n = http__dechunk(in, len, full, outlen, &done);
    if (n > outlen)
        abort();
    if (cut > len)
        cut = len;
    size_t m = http__dechunk(in, cut, part, outlen, &done2);
    if (m > n || memcmp(part, full, m))
        abort();
out:
    free(full);
    free(part);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t outlen = data[0] % 64 * 9, len = size - 1;
    /* A heap copy of exactly the input, so ASan sees any over-read. */
    char *in = malloc(len ? len : 1);
    if (!in)
        return 0;
    memcpy(in, data + 1, len);
    check_head(in, len);
    drop_interim(in, len);
    check_dechunk(in, len, outlen, len ? (size_t)data[0] * 131 % (len + 1) : 0);
    free(in);
    return 0;
}
