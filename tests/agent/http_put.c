/*
 * http_put.c -- a command-line driver of agent/http.c for the integration
 * tests and the upload benchmark: PUTs one file, streamed from disk through
 * the body callback, and reports the outcome in a form a script can check.
 *
 *   http_put --host H --port P --path /x (--ca FILE | --insecure)
 *            [--cert F --key F] [--header 'N: v']... [--connect-timeout-ms N]
 *            [--io-timeout-ms N] [--response-timeout-ms N] [--length N] --file FILE
 *
 * stdout: "status=NNN", "bytes_sent=N", "early=0|1", "interim=N",
 * "pipe_depth=N" (the most body records queued for the sender thread at
 * once, http__pipe_depth), "reason=..." and "body=..." (the first bytes of
 * the response body on one line) when a response arrived; "error=ECLASS",
 * "bytes_sent=N" and "pipe_depth=N" otherwise, with the message on stderr. --length claims a Content-Length
 * other than the file's size (to exercise a short body source). SIGTERM
 * raises the request's cancel flag (the request ends with ECANCELED), the
 * way the agent's stop cancels an upload.
 *
 * Exit codes: 0 a response arrived (any status), 2 usage or TLS setting,
 * 3 ECONNECT, 4 ETIMEDOUT, 5 ETLS, 6 EIO, 7 EPROTO, 8 EBODY, 9 ECANCELED,
 * 1 anything else.
 */
#include "http.h"

#include "embeddb/plat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plat_cancel *cancel;

static void on_term(int sig)
{
    (void)sig;
    plat_cancel_fire(cancel);
}

typedef struct file_src {
    plat_vfs *vfs;
    int fd;
    uint64_t off;
} file_src;

static int file_read(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    file_src *f = ctx;
    int rc = f->vfs->pread(f->vfs, f->fd, buf, len, f->off, got);
    f->off += *got;
    return rc;
}

static int exit_code(int rc)
{
    switch (rc) {
    case HTTP_EINVAL: return 2;
    case HTTP_ECONNECT: return 3;
    case HTTP_ETIMEDOUT: return 4;
    case HTTP_ETLS: return 5;
    case HTTP_EIO: return 6;
    case HTTP_EPROTO: return 7;
    case HTTP_EBODY: return 8;
    case HTTP_ECANCELED: return 9;
    default: return 1;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: http_put --host H --port P --path /x (--ca FILE | --insecure) "
                    "[--cert F --key F] [--header 'N: v']... [--connect-timeout-ms N] "
                    "[--io-timeout-ms N] [--response-timeout-ms N] [--length N] --file FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    http_tls tls = {0};
    http_request rq = {.method = "PUT", .connect_timeout_ms = 10000, .io_timeout_ms = 30000};
    http_response rsp;
    http_client *c = NULL;
    file_src src = {.vfs = plat_vfs_default(), .fd = -1};
    const char **headers = calloc((size_t)argc, sizeof(*headers));
    const char *file = NULL, *length = NULL;
    plat_stat st;
    char err[1024];
    int rc = 2, hrc;

    if (!headers)
        goto out;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--insecure")) {
            tls.insecure = 1;
            continue;
        }
        if (!v) {
            rc = usage();
            goto out;
        }
        i++;
        if (!strcmp(a, "--host"))
            rq.host = v;
        else if (!strcmp(a, "--port"))
            rq.port = atoi(v);
        else if (!strcmp(a, "--path"))
            rq.path = v;
        else if (!strcmp(a, "--ca"))
            tls.ca_file = v;
        else if (!strcmp(a, "--cert"))
            tls.cert_file = v;
        else if (!strcmp(a, "--key"))
            tls.key_file = v;
        else if (!strcmp(a, "--header"))
            headers[rq.n_headers++] = v;
        else if (!strcmp(a, "--connect-timeout-ms"))
            rq.connect_timeout_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--io-timeout-ms"))
            rq.io_timeout_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--response-timeout-ms"))
            rq.response_timeout_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--length"))
            length = v;
        else if (!strcmp(a, "--file"))
            file = v;
        else {
            rc = usage();
            goto out;
        }
    }
    if (!rq.host || !rq.path || !file) {
        rc = usage();
        goto out;
    }
    rq.headers = headers;
    if (plat_cancel_new(&cancel)) {
        fprintf(stderr, "http_put: cannot make a cancel flag\n");
        goto out;
    }
    rq.cancel = cancel;
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_term;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
    if (src.vfs->open(src.vfs, file, PLAT_O_RDONLY, &src.fd) ||
        src.vfs->fstat(src.vfs, src.fd, &st)) {
        fprintf(stderr, "http_put: cannot read %s\n", file);
        goto out;
    }
    rq.content_length = length ? strtoull(length, NULL, 10) : st.size;
    rq.body = file_read;
    rq.body_ctx = &src;
    if ((hrc = http_client_new(&tls, &c, err, sizeof(err)))) {
        printf("error=%s\n", http_err_name(hrc));
        fprintf(stderr, "http_put: %s\n", err);
        rc = exit_code(hrc);
        goto out;
    }
    if ((hrc = http_request_do(c, &rq, &rsp, err, sizeof(err)))) {
        printf("error=%s\nbytes_sent=%llu\npipe_depth=%zu\n", http_err_name(hrc),
               (unsigned long long)rsp.bytes_sent, http__pipe_depth(c));
        fprintf(stderr, "http_put: %s\n", err);
        rc = exit_code(hrc);
        goto out;
    }
    /* one line: CR/LF become spaces, trailing ones go */
    for (size_t i = 0; i < rsp.body_len; i++)
        if (rsp.body[i] == '\r' || rsp.body[i] == '\n' || rsp.body[i] == 0)
            rsp.body[i] = ' ';
    while (rsp.body_len && rsp.body[rsp.body_len - 1] == ' ')
        rsp.body[--rsp.body_len] = 0;
    printf("status=%d\nbytes_sent=%llu\nearly=%d\ninterim=%u\npipe_depth=%zu\nreason=%s\n"
           "body=%s\n", rsp.status, (unsigned long long)rsp.bytes_sent, rsp.early, rsp.interim,
           http__pipe_depth(c), rsp.reason, rsp.body);
    rc = 0;
out:
    http_client_free(c);
    signal(SIGTERM, SIG_DFL);
    plat_cancel_free(cancel);
    if (src.fd >= 0)
        src.vfs->close(src.vfs, src.fd);
    free(headers);
    return rc;
}
