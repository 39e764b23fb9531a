/*
 * console.c -- the HTTP side of the console (contract in console.h):
 * libmicrohttpd's daemon with one internal polling thread, routing, the
 * bearer token, body bounds, the embedded static files, and the queue of
 * requests handed to the store's owner.
 *
 * Why libmicrohttpd: a small C library kept by GNU, in Debian for every
 * architecture we ship (arm64, armhf), used on embedded boards, with its
 * own event loop on one thread; we write no HTTP parsing of our own.
 *
 * The queue: the HTTP thread puts a request in, calls the wake hook and
 * waits on `done` for at most QUEUE_WAIT_MS while the request is queued
 * (an owner busy elsewhere -- a commit retrying on a full disk -- answers
 * 503 rather than holding the client forever); once the owner took it the
 * HTTP thread waits until it is done, since the owner holds the pointer.
 * Shared state: the queue, each request's state and response, guarded by
 * console.mu.
 */
#include "console_int.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define QUEUE_WAIT_MS 10000
#define DEFAULT_MAX_BODY (16u << 20)
#define DEFAULT_MAX_CONN 16
#define CONN_TIMEOUT_S 30

const char *const console__arg_names[N_ARGS] = {"key",   "name",  "preview", "format",
                                                 "prefix", "limit", "after"};

struct console {
    struct MHD_Daemon *d;
    console_env env;
    char *token;
    uint16_t port;
    void (*wake)(void *);
    void *wake_ctx;
    pthread_mutex_t mu;
    pthread_cond_t queued, done; /* owner waits on queued, HTTP thread on done */
    console_req *head, **tail;
    int stopping;
};

/* ---- buffers ------------------------------------------------------------ */

static int buf_reserve(console_buf *b, size_t more)
{
    if (b->oom)
        return -1;
    if (more > SIZE_MAX / 2 - b->n) {
        b->oom = 1;
        return -1;
    }
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void console_buf_put(console_buf *b, const void *p, size_t len)
{
    if (buf_reserve(b, len))
        return;
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = 0;
}

void console_buf_printf(console_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)k < sizeof(small)) {
        console_buf_put(b, small, (size_t)k);
        return;
    }
    if (buf_reserve(b, (size_t)k))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void console_buf_json_str(console_buf *b, const char *s, size_t len)
{
    console_buf_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            console_buf_put(b, e, 2);
        } else if (c < 0x20 || c > 0x7e) {
            console_buf_printf(b, "\\u%04x", c);
        } else {
            console_buf_put(b, &s[i], 1);
        }
    }
    console_buf_put(b, "\"", 1);
}

void console__error(console_req *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->out.n = 0;
    r->out.oom = 0;
    r->status = status;
    r->ctype = "application/json";
    console_buf_put(&r->out, "{\"error\":", 9);
    console_buf_json_str(&r->out, msg, strlen(msg));
    console_buf_put(&r->out, ",\"code\":", 8);
    console_buf_json_str(&r->out, code, strlen(code));
    console_buf_put(&r->out, "}\n", 2);
}

/* ---- listen address ----------------------------------------------------- */

int console_parse_listen(const char *listen, void *ss, size_t *sa_len, int *loopback, char *err,
                         size_t errlen)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hl;
    char *end = NULL;
    if (!colon || !colon[1])
        goto bad;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
        goto bad;
    hl = (size_t)(colon - listen);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (!hl || hl >= sizeof(host))
        goto bad;
    memcpy(host, h, hl);
    host[hl] = 0;
    memset(ss, 0, sizeof(struct sockaddr_storage));
    struct sockaddr_in *v4 = ss;
    struct sockaddr_in6 *v6 = ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *sa_len = sizeof(*v4);
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *sa_len = sizeof(*v6);
        *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        return 0;
    }
bad:
    snprintf(err, errlen, "listen '%s' is not ADDR:PORT (an IPv4 address or [IPv6] address, "
             "a port 0..65535; names are not resolved)", listen);
    return -EINVAL;
}

int console_read_token(plat_vfs *vfs, const char *path, char **out, char *err, size_t errlen)
{
    char *t = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = plat_file_read(vfs ? vfs : plat_vfs_default(), path, 8192, &t, &len);
    if (rc) {
        snprintf(err, errlen, "token_file %s: cannot read it (%s)", path, strerror(-rc));
        return rc;
    }
    if (len && t[len - 1] == '\n')
        len--;
    if (len && t[len - 1] == '\r')
        len--;
    rc = len < 16 || len > 4096 ? -EINVAL : 0;
    for (size_t i = 0; i < len && !rc; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] > 0x7e)
            rc = -EINVAL;
    if (rc) {
        snprintf(err, errlen, "token_file %s: a token is one line of 16..4096 printable ASCII "
                 "characters without spaces", path);
        free(t);
        return rc;
    }
    t[len] = 0;
    *out = t;
    return 0;
}

/* ---- requests ----------------------------------------------------------- */

static void req_free(console_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_keys; i++)
        free(r->keys[i]);
    for (size_t i = 0; i < r->n_names; i++)
        free(r->names[i]);
    free(r->keys);
    free(r->names);
    free(r->key_lens);
    free(r->name_lens);
    for (int i = 0; i < N_ARGS; i++)
        free(r->args[i]);
    free(r->body);
    free(r->out.p);
    free(r);
}

static console_route route_of(const char *url, const char *method, int *post, int *known)
{
    static const struct {
        const char *url;
        int post;
        console_route r;
    } t[] = {
        {"/api/tensors/store", 1, ROUTE_STORE_TENSOR}, {"/api/tensors/load", 0, ROUTE_LOAD},
        {"/api/tensors", 0, ROUTE_LIST},               {"/api/store", 0, ROUTE_STORE},
        {"/api/store/flush", 1, ROUTE_FLUSH},          {"/api/snapshot", 1, ROUTE_SNAPSHOT},
        {"/metrics", 0, ROUTE_METRICS},                {"/api/demo", 0, ROUTE_DEMO},
    };
    int is_post = !strcmp(method, "POST");
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    *known = 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcmp(url, t[i].url))
            continue;
        *known = 1;
        *post = t[i].post;
        if ((t[i].post && is_post) || (!t[i].post && is_get))
            return t[i].r;
    }
    return ROUTE_NONE;
}

static const console_file *static_file(const char *url)
{
    if (!strcmp(url, "/"))
        url = "/index.html";
    for (size_t i = 0; i < console__n_files; i++)
        if (!strcmp(url, console__files[i].path))
            return &console__files[i];
    return NULL;
}

/* 1 when the client takes gzip: "gzip" in Accept-Encoding, not refused with
 * q=0 (every browser sends it). */
static int accepts_gzip(struct MHD_Connection *conn)
{
    const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_ACCEPT_ENCODING);
    const char *g = ae ? strstr(ae, "gzip") : NULL;
    if (!g)
        return 0;
    g += 4;
    while (*g == ' ')
        g++;
    if (*g == ';') {
        const char *q = strstr(g, "q=");
        if (q && strtod(q + 2, NULL) <= 0)
            return 0;
    }
    return 1;
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                console_buf *b)
{
    struct MHD_Response *resp;
    if (b->oom) {
        static const char oom[] = "{\"error\":\"out of memory\",\"code\":\"no_memory\"}\n";
        resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = "application/json";
    } else {
        resp = MHD_create_response_from_buffer(b->n, b->n ? b->p : (void *)"",
                                               b->n ? MHD_RESPMEM_MUST_FREE
                                                    : MHD_RESPMEM_PERSISTENT);
        if (resp && b->n) {
            b->p = NULL; /* the response owns it now */
            b->n = b->cap = 0;
        }
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, console_req *r, unsigned status,
                                  const char *code, const char *msg)
{
    console__error(r, status, code, "%s", msg);
    return send_buf(conn, r->status, r->ctype, &r->out);
}

/* 0 when the request may write: no token configured, or the right one. */
static int check_token(const console *c, struct MHD_Connection *conn, const char **why)
{
    const char *v = NULL;
    size_t vl = 0;
    if (!c->token)
        return 0;
    if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                      strlen(MHD_HTTP_HEADER_AUTHORIZATION), &v,
                                      &vl) != MHD_YES ||
        vl < 7 || strncmp(v, "Bearer ", 7)) {
        *why = "missing";
        return -1;
    }
    size_t tl = strlen(c->token);
    unsigned diff = (unsigned)(vl - 7 != tl);
    for (size_t i = 0; i < tl; i++) /* time independent of where they differ */
        diff |= (unsigned)(c->token[i] ^ (i < vl - 7 ? v[7 + i] : 0));
    if (diff) {
        *why = "wrong";
        return -1;
    }
    return 0;
}

/* Appends one value to a list of a store request's arguments. */
static int push_arg(char ***v, size_t **lens, size_t *n, const char *val, size_t len)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -1;
    *v = nv;
    size_t *nl = realloc(*lens, (*n + 1) * sizeof(**lens));
    if (!nl)
        return -1;
    *lens = nl;
    if (!(nv[*n] = malloc(len + 1)))
        return -1;
    memcpy(nv[*n], val, len);
    nv[*n][len] = 0;
    nl[(*n)++] = len;
    return 0;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    console_req *r = cls;
    (void)kind;
    int is_key = key_size == 3 && !memcmp(key, "key", 3);
    int is_name = key_size == 4 && !memcmp(key, "name", 4);
    if (!is_key && !is_name)
        return MHD_YES;
    if (!value)
        value = "";
    if (r->n_keys + r->n_names >= 2 * 4096 || memchr(value, 0, value_size)) {
        r->too_many_args = 1;
        return MHD_NO;
    }
    if (is_key ? push_arg(&r->keys, &r->key_lens, &r->n_keys, value, value_size)
               : push_arg(&r->names, &r->name_lens, &r->n_names, value, value_size)) {
        r->too_many_args = 2;
        return MHD_NO;
    }
    return MHD_YES;
}

static int copy_args(console_req *r, struct MHD_Connection *conn)
{
    if (r->route == ROUTE_STORE_TENSOR) {
        MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
        if (r->too_many_args)
            return r->too_many_args == 2 ? -ENOMEM : -EINVAL;
    }
    for (int i = 0; i < N_ARGS; i++) {
        const char *v = NULL;
        size_t vl = 0;
        if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, console__arg_names[i],
                                          strlen(console__arg_names[i]), &v, &vl) != MHD_YES)
            continue;
        if (!v)
            v = "";
        if (memchr(v, 0, vl))
            return -EINVAL;
        if (!(r->args[i] = malloc(vl + 1)))
            return -ENOMEM;
        memcpy(r->args[i], v, vl);
        r->args[i][vl] = 0;
        r->arg_len[i] = vl;
    }
    return 0;
}

/* Hands r to the owner and waits for its answer (see the file comment). */
static void run_on_owner(console *c, console_req *r)
{
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        console__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping", "the server is stopping");
        return;
    }
    r->state = REQ_QUEUED;
    r->next = NULL;
    *c->tail = r;
    c->tail = &r->next;
    pthread_cond_signal(&c->queued);
    pthread_mutex_unlock(&c->mu);
    if (c->wake)
        c->wake(c->wake_ctx);
    pthread_mutex_lock(&c->mu);
    struct timespec until = plat_mono_after_ms(QUEUE_WAIT_MS);
    while (r->state == REQ_QUEUED)
        if (pthread_cond_timedwait(&c->done, &c->mu, &until) == ETIMEDOUT)
            break;
    if (r->state == REQ_QUEUED) { /* never taken: unlink it */
        for (console_req **p = &c->head; *p; p = &(*p)->next)
            if (*p == r) {
                *p = r->next;
                if (!*p)
                    c->tail = p;
                break;
            }
        r->state = REQ_DONE;
        console__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
                       "the store's owner did not take the request within %d ms",
                       QUEUE_WAIT_MS);
    }
    while (r->state != REQ_DONE)
        pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    console *c = cls;
    console_req *r = *con_cls;
    (void)version;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        *con_cls = r;
        int post = 0, known = 0;
        r->route = route_of(url, method, &post, &known);
        if (r->route == ROUTE_NONE) {
            const console_file *f = NULL;
            if (!known && (!strcmp(method, "GET") || !strcmp(method, "HEAD")) &&
                (f = static_file(url))) {
                if (!accepts_gzip(conn))
                    return send_error(conn, r, MHD_HTTP_NOT_ACCEPTABLE, "gzip",
                                      "the page is served gzip-compressed: open it in a browser "
                                      "(or curl --compressed)");
                struct MHD_Response *resp = MHD_create_response_from_buffer(
                    f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
                if (!resp)
                    return MHD_NO;
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->ctype);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
                MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
                MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
                enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, resp);
                MHD_destroy_response(resp);
                return ok;
            }
            if (known)
                return send_error(conn, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method",
                                  post ? "this endpoint takes POST" : "this endpoint takes GET");
            return send_error(conn, r, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
        }
        if (post) {
            const char *why = NULL;
            if (check_token(c, conn, &why))
                return send_error(conn, r, MHD_HTTP_UNAUTHORIZED, "token",
                                  !strcmp(why, "missing")
                                      ? "this endpoint needs Authorization: Bearer TOKEN"
                                      : "wrong token");
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > c->env.max_body)
                return send_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                  "the request body is over the limit");
            const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_TYPE);
            r->body_npy = ct && (!strncmp(ct, "application/x-npy", 17) ||
                                 !strncmp(ct, "application/octet-stream", 24));
        }
        int rc = copy_args(r, conn);
        if (rc)
            return send_error(conn, r, rc == -ENOMEM ? 500 : MHD_HTTP_BAD_REQUEST,
                              rc == -ENOMEM ? "no_memory" : "bad_argument",
                              rc == -ENOMEM ? "out of memory"
                                            : "a query argument holds a NUL byte (or there are "
                                              "more than 4096 keys)");
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || n > c->env.max_body - r->body_len) {
            r->too_large = 1;
            return MHD_YES;
        }
        if (r->body_len + n > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n)
                cap *= 2;
            if (cap > c->env.max_body)
                cap = c->env.max_body;
            uint8_t *p = realloc(r->body, cap);
            if (!p) {
                r->too_large = 2;
                return MHD_YES;
            }
            r->body = p;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        return MHD_YES;
    }
    if (r->state != REQ_NEW)
        return MHD_NO;
    if (r->too_large == 1)
        return send_error(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                          "the request body is over the limit");
    if (r->too_large == 2)
        return send_error(conn, r, 500, "no_memory", "out of memory for the request body");
    run_on_owner(c, r);
    return send_buf(conn, r->status, r->ctype, &r->out);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req_free(*con_cls);
    *con_cls = NULL;
}

/* ---- the owner's side --------------------------------------------------- */

size_t console_serve(console *c, ts_store *const *s, plat_vfs *vfs, const console_hooks *h,
                     uint64_t wait_ms)
{
    size_t n = 0;
    if (!vfs)
        vfs = plat_vfs_default();
    pthread_mutex_lock(&c->mu);
    if (!c->head && wait_ms) {
        struct timespec until = plat_mono_after_ms(wait_ms);
        while (!c->head && !c->stopping)
            if (pthread_cond_timedwait(&c->queued, &c->mu, &until) == ETIMEDOUT)
                break;
    }
    while (c->head) {
        console_req *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = &c->head;
        r->state = REQ_RUNNING;
        pthread_mutex_unlock(&c->mu);
        console__run(r, *s, vfs, h, &c->env);
        n++;
        pthread_mutex_lock(&c->mu);
        r->state = REQ_DONE;
        pthread_cond_broadcast(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- lifetime ----------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int console_start(const console_config *cfg, console **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    size_t sa_len = 0;
    int loopback = 0, rc;
    console *c = NULL;
    *out = NULL;
    if ((rc = console_parse_listen(cfg->listen, &ss, &sa_len, &loopback, err, errlen)))
        return rc;
    if (!(c = calloc(1, sizeof(*c))))
        goto nomem;
    pthread_mutex_init(&c->mu, NULL);
    plat_cond_init_mono(&c->queued);
    plat_cond_init_mono(&c->done);
    c->tail = &c->head;
    c->env.max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    if ((cfg->token && !(c->token = strdup(cfg->token))) ||
        (cfg->store_dir && !(c->env.store_dir = strdup(cfg->store_dir))) ||
        (cfg->demo_dir && !(c->env.demo_dir = strdup(cfg->demo_dir))) ||
        !(c->env.role = dup_or_null(cfg->role ? cfg->role : "serve")))
        goto nomem;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    c->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, c,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)(cfg->max_conn ? cfg->max_conn : DEFAULT_MAX_CONN),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, c, MHD_OPTION_END);
    if (!c->d) {
        snprintf(err, errlen, "cannot listen on %s (address in use, or not this host's)",
                 cfg->listen);
        console_free(c);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(c->d, MHD_DAEMON_INFO_BIND_PORT);
    c->port = di ? di->port : 0;
    *out = c;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory starting the console");
    console_free(c);
    return -ENOMEM;
}

uint16_t console_port(const console *c)
{
    return c->port;
}

void console_set_wake(console *c, void (*fn)(void *ctx), void *ctx)
{
    c->wake = fn;
    c->wake_ctx = ctx;
}

void console_free(console *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    for (console_req *r; (r = c->head);) { /* nobody will run these */
        c->head = r->next;
        console__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping", "the server is stopping");
        r->state = REQ_DONE;
    }
    c->tail = &c->head;
    pthread_cond_broadcast(&c->done);
    pthread_cond_broadcast(&c->queued);
    pthread_mutex_unlock(&c->mu);
    if (c->d)
        MHD_stop_daemon(c->d);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->queued);
    pthread_cond_destroy(&c->done);
    free(c->token);
    free(c->env.store_dir);
    free(c->env.demo_dir);
    free(c->env.role);
    free(c);
}
