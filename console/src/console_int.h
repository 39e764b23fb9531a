/*
 * console_int.h -- what console.c (the HTTP side: sockets, routing, the
 * queue) and console_api.c (the store side: the endpoints, run by the
 * store's owner) share: a request and its response, the routes, the
 * embedded static files.
 */
#ifndef EMBEDDB_CONSOLE_INT_H
#define EMBEDDB_CONSOLE_INT_H

#include "embeddb/console.h"

#include <stddef.h>
#include <stdint.h>

typedef enum console_route {
    ROUTE_NONE = 0,
    ROUTE_STORE_TENSOR,   /* POST /api/tensors/store */
    ROUTE_LOAD,           /* GET  /api/tensors/load */
    ROUTE_LIST,           /* GET  /api/tensors */
    ROUTE_STORE,          /* GET  /api/store */
    ROUTE_FLUSH,          /* POST /api/store/flush */
    ROUTE_SNAPSHOT,       /* POST /api/snapshot */
    ROUTE_METRICS,        /* GET  /metrics */
    ROUTE_DEMO,           /* GET  /api/demo */
} console_route;

/* The query arguments the API reads, copied with their lengths (a value
 * holding a NUL is refused, not cut). */
enum { ARG_KEY, ARG_NAME, ARG_PREVIEW, ARG_FORMAT, ARG_PREFIX, ARG_LIMIT, ARG_AFTER, N_ARGS };
extern const char *const console__arg_names[N_ARGS];

typedef struct console_req {
    struct console_req *next;
    console_route route;
    char *args[N_ARGS];        /* NULL when absent; owned */
    size_t arg_len[N_ARGS];
    /* every key= and name= of a store request, in order (the batch form
     * of .npy bodies); owned */
    char **keys, **names;
    size_t *key_lens, *name_lens;
    size_t n_keys, n_names;
    int too_many_args;
    int body_npy;              /* Content-Type application/x-npy or
                                  application/octet-stream */
    uint8_t *body;             /* owned */
    size_t body_len, body_cap;
    int too_large;
    int state;                 /* REQ_NEW, REQ_QUEUED, REQ_RUNNING, REQ_DONE */
    /* the response, filled by console__run */
    unsigned status;
    const char *ctype;         /* static string */
    console_buf out;
} console_req;

enum { REQ_NEW, REQ_QUEUED, REQ_RUNNING, REQ_DONE };

/* What console_api.c needs of the configuration (console.c owns it). */
typedef struct console_env {
    char *store_dir, *demo_dir, *role;
    size_t max_body;
} console_env;

/* Runs r against s on the owner's thread (s may be NULL: 503). */
void console__run(console_req *r, ts_store *s, plat_vfs *vfs, const console_hooks *h,
                  const console_env *env);

/* Sets r's response to {"error": msg, "code": code} with the status. */
void console__error(console_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The page, embedded at build time from web/ (console/web_embed.cmake). */
typedef struct console_file {
    const char *path;          /* "/index.html" */
    const char *ctype;
    const unsigned char *data; /* gzip-compressed */
    size_t len;
} console_file;
extern const console_file console__files[];
extern const size_t console__n_files;

#endif
