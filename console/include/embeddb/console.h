/*
 * console.h -- the HTTP console: a small web server inside the process
 * that owns a store (`embeddb serve`, and `embeddb-agent` with an `http:`
 * section), serving the page in web/ (embedded in the binary) and a JSON
 * API over the store: store and load tensors, list keys, the live
 * WAL -> MemTable -> SST view, flush, snapshots, Prometheus metrics
 * (console/API.md documents every endpoint and field).
 *
 * Threads: libmicrohttpd runs one internal thread that owns every socket.
 * It never touches the store. A request that needs the store is queued and
 * waits (on that HTTP thread) until the store's owner runs it with
 * console_serve(); the owner does only the engine call and builds the
 * response in memory, so it never waits on a client's socket, and a slow
 * or stalled client costs the owner nothing. Static files and refusals
 * (bad token, oversized body, unknown path) are answered on the HTTP
 * thread alone.
 *
 * Security: the listen address is loopback unless configured otherwise
 * (callers refuse a non-loopback address without a token); with a token,
 * writes (POST) need "Authorization: Bearer TOKEN"; bodies are bounded by
 * max_body; static files come only from the embedded set.
 *
 * Errors: 0 or a negative -errno code plus a message buffer, as elsewhere.
 */
#ifndef EMBEDDB_CONSOLE_H
#define EMBEDDB_CONSOLE_H

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct console console;

/* A growing output buffer; a failed allocation is sticky (oom) and turns
 * the response into a 500. */
typedef struct console_buf {
    char *p;
    size_t n, cap;
    int oom;
} console_buf;

void console_buf_printf(console_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void console_buf_put(console_buf *b, const void *p, size_t len);
/* s as a JSON string, quotes included: '"', '\\' and bytes below 0x20 or
 * above 0x7e escaped (the latter as one \u00XX per byte). */
void console_buf_json_str(console_buf *b, const char *s, size_t len);

/* What a process adds to the console beyond its store. Every hook runs on
 * the owner's thread, inside console_serve; any may be NULL. */
typedef struct console_hooks {
    void *ctx;
    /* Appends Prometheus text (HELP, TYPE and samples) to b. */
    void (*metrics)(void *ctx, console_buf *b);
    /* Appends one JSON object (its members as the page shows them) to b:
     * the "agent" member of GET /api/store. */
    void (*status)(void *ctx, console_buf *b);
    /* POST /api/snapshot: seals one now. 0 and its name, TS_ENOTFOUND when
     * nothing was stored since the last, or another code with err set. */
    int (*snapshot)(void *ctx, char *name, size_t name_len, char *err, size_t errlen);
    /* Saves a batch the API decoded: the agent routes it through its own
     * flash budget and counters. NULL: ts_save_batch on the store. */
    int (*save)(void *ctx, ts_store *s, const ts_tensor *const *t, size_t n);
} console_hooks;

typedef struct console_config {
    const char *listen;       /* "ADDR:PORT" (IPv4 or [IPv6]); port 0 picks
                                 a free one (console_port tells) */
    const char *token;        /* bearer token for writes; NULL = none */
    const char *store_dir;    /* the store's directory (snapshots listing) */
    const char *demo_dir;     /* where the Python demo writes its files;
                                 NULL = not configured */
    const char *role;         /* "serve" or "agent": shown by the page */
    size_t max_body;          /* request body bound in bytes (0 = 16 MiB) */
    size_t max_conn;          /* concurrent connections (0 = 16) */
} console_config;

/* Parses "ADDR:PORT" into a socket address; 1 when ADDR is loopback
 * (127.0.0.0/8 or ::1) in *loopback. 0 or -EINVAL (err says why). */
int console_parse_listen(const char *listen, void *sockaddr_storage, size_t *sa_len,
                         int *loopback, char *err, size_t errlen);

/* Reads a bearer token from path (its one line; a final newline is
 * dropped): 16..4096 printable ASCII bytes without spaces. 0 and *out
 * (malloc'ed, caller frees), or a negative code with err set. The token
 * is never put into err. */
int console_read_token(plat_vfs *vfs, const char *path, char **out, char *err, size_t errlen);

/* Starts the server (its thread listens at once). The strings of cfg are
 * copied. 0 and *out, or a negative code with err set (address in use,
 * bad address). */
int console_start(const console_config *cfg, console **out, char *err, size_t errlen);
/* The bound port. */
uint16_t console_port(const console *c);
/* fn(ctx) is called (from the HTTP thread) whenever a request is queued
 * for the owner: the agent wakes its main loop with it. Set it before
 * requests can arrive. */
void console_set_wake(console *c, void (*fn)(void *ctx), void *ctx);

/* On the store's owner: runs the requests waiting for the store, waiting
 * up to wait_ms for the first when none waits. *s is read before each
 * request, since a hook may replace the store (the agent reopens it after
 * a failed fsync); it may be NULL (closed: they get 503). vfs NULL =
 * plat_vfs_default(). Returns how many were run. */
size_t console_serve(console *c, ts_store *const *s, plat_vfs *vfs, const console_hooks *h,
                     uint64_t wait_ms);

/* Stops listening, answers queued requests with 503, joins the thread and
 * frees c. NULL is a no-op. */
void console_free(console *c);

#endif
