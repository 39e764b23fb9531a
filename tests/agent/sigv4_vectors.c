/*
 * sigv4_vectors.c -- a driver for the SigV4 signer, so Python tests can run
 * AWS's test suite and botocore comparisons through the real C code.
 *
 * Reads one request from stdin, one field per line, "NAME VALUE" (the value
 * is the rest of the line; '\\' is written "\\\\", any byte "\\xHH"):
 *   method PUT              mode s3 | generic
 *   path /b/dev%201/k       the wire path, or
 *   key /b/dev 1/k          a raw key, encoded here with sigv4_uri_encode
 *   query a=1&b=2           header Name value   (repeatable, in order)
 *   payload HEX | UNSIGNED-PAYLOAD, or body BYTES (hashed here)
 *   access AK  secret SK  region R  service S
 *   date YYYYMMDDTHHMMSSZ, or time UNIX_SECONDS (formatted here)
 * Blank lines and lines starting with '#' are skipped. Writes "path",
 * "date", "creq", "sts" and "authz" lines, escaped the same way, and exits
 * 0; or "error CODE" and exits 1. A test tool: it reads the secret from
 * stdin but never prints it.
 */
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS (SIGV4_MAX_HEADERS + 8)

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Unescapes s in place; returns its new length. */
static size_t unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1] == '\\') {
            s[o++] = '\\';
            i++;
        } else if (s[i] == '\\' && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                   hexval(s[i + 3]) >= 0) {
            s[o++] = (char)(hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
            i += 3;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = 0;
    return o;
}

static void print_escaped(const char *name, const char *s)
{
    printf("%s ", name);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\n');
}

int main(void)
{
    static sigv4_header headers[MAX_HEADERS];
    static char authz[1024], creq[65536], sts[1024], path[16384], date[17], body_hash[65];
    sigv4_request r = {.query = ""};
    sigv4_key k = {0};
    const char *key = NULL;
    const struct {
        const char *name;
        const char **dst;
    } fields[] = {
        {"method", &r.method}, {"path", &r.path}, {"query", &r.query},
        {"payload", &r.payload_sha256}, {"access", &k.access_key}, {"secret", &k.secret_key},
        {"region", &k.region}, {"service", &k.service}, {"key", &key},
    };
    char *line = NULL, *lines[256];
    size_t cap = 0, n_lines = 0;
    int mode = SIGV4_GENERIC, rc = 0;

    while (!rc && n_lines < 256 && getline(&line, &cap, stdin) >= 0) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        char *v = line + strcspn(line, " ");
        if (*v)
            *v++ = 0;
        size_t len = unescape(v), f = 0;
        lines[n_lines++] = line;   /* the request points into it: keep it */
        line = NULL;
        cap = 0;
        while (f < sizeof(fields) / sizeof(*fields) && strcmp(lines[n_lines - 1], fields[f].name))
            f++;
        if (f < sizeof(fields) / sizeof(*fields)) {
            *fields[f].dst = v;
        } else if (!strcmp(lines[n_lines - 1], "header") && r.n_headers < MAX_HEADERS) {
            char *val = v + strcspn(v, " ");
            if (*val)
                *val++ = 0;
            headers[r.n_headers].name = v;
            headers[r.n_headers++].value = val;
        } else if (!strcmp(lines[n_lines - 1], "body")) {
            sigv4_sha256_hex(v, len, body_hash);
            r.payload_sha256 = body_hash;
        } else if (!strcmp(lines[n_lines - 1], "time")) {
            rc = sigv4_amz_date(strtoll(v, NULL, 10), date);
        } else if (!strcmp(lines[n_lines - 1], "date")) {
            snprintf(date, sizeof(date), "%s", v);
        } else if (!strcmp(lines[n_lines - 1], "mode")) {
            mode = !strcmp(v, "s3") ? SIGV4_S3 : SIGV4_GENERIC;
        } else {
            fprintf(stderr, "sigv4_vectors: bad line '%s'\n", lines[n_lines - 1]);
            rc = -EINVAL;
        }
    }
    r.headers = headers;
    if (!rc && key) {
        rc = sigv4_uri_encode(key, 1, path, sizeof(path));
        r.path = path;
    }
    if (!rc)
        rc = sigv4_sign(&r, &k, date, mode, authz, sizeof(authz), creq, sizeof(creq), sts,
                        sizeof(sts));
    if (rc) {
        printf("error %d\n", rc);
    } else {
        print_escaped("path", r.path);
        print_escaped("date", date);
        print_escaped("creq", creq);
        print_escaped("sts", sts);
        print_escaped("authz", authz);
    }
    free(line);
    while (n_lines)
        free(lines[--n_lines]);
    return rc ? 1 : 0;
}
