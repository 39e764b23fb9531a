/*
 * agent_status.h -- agent.status: the file embeddb-agent rewrites in its
 * store directory about once a second with its live counters, one
 * "key=value" line each (snapshot/FORMAT.md lists every key), and the one
 * reader of it: `embeddb stats` prints it, `embeddb snapshot` finds the
 * agent's pid and device id in it, the tests wait on it.
 *
 * It holds counters, not data: it is replaced atomically (a temporary file
 * renamed over it, so a reader never sees half of one) but not synced; after
 * a power cut it may be a second old, or missing.
 */
#ifndef EMBEDDB_AGENT_STATUS_H
#define EMBEDDB_AGENT_STATUS_H

#include "embeddb/plat.h"

#include <stddef.h>

#define AGENT_STATUS_NAME "agent.status"
#define AGENT_STATUS_MAX (64u << 10) /* a reader refuses a larger file */

/* Replaces DIR/agent.status with text[0..len). 0 or -errno. */
int agent_status_write(plat_vfs *vfs, const char *dir, const char *text, size_t len);
/* Reads DIR/agent.status into *text (NUL-terminated, malloc'ed: the caller
 * frees it). 0, -ENOENT when there is none, -EFBIG, or another -errno. */
int agent_status_read(plat_vfs *vfs, const char *dir, char **text, size_t *len);

/* The value of key in text (as read above) into out, always
 * NUL-terminated; 1 when the key is there, 0 when not (out is ""). */
int agent_status_get(const char *text, const char *key, char *out, size_t outlen);

/* Calls fn with each key and value in file order (lines without '=' are
 * skipped). Both strings are borrowed for the call. */
typedef void (*agent_status_fn)(void *ctx, const char *key, const char *value);
void agent_status_each(const char *text, agent_status_fn fn, void *ctx);

#endif
