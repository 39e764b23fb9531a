/*
 * agent_status.c -- writing and reading agent.status (contract in
 * embeddb/agent_status.h, the keys in snapshot/FORMAT.md). The writer is
 * the agent's status.c; every reader goes through here.
 */
#include "embeddb/agent_status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int agent_status_write(plat_vfs *vfs, const char *dir, const char *text, size_t len)
{
    return plat_file_replace(vfs, dir, AGENT_STATUS_NAME, text, len, 0);
}

int agent_status_read(plat_vfs *vfs, const char *dir, char **text, size_t *len)
{
    char path[4096];
    int rc = plat_path_join(path, sizeof(path), dir, AGENT_STATUS_NAME);
    *text = NULL;
    *len = 0;
    return rc ? rc : plat_file_read(vfs, path, AGENT_STATUS_MAX, text, len);
}

typedef struct lookup {
    const char *key;
    char *out;
    size_t outlen;
    int found;
} lookup;

static void find(void *ctx, const char *key, const char *value)
{
    lookup *l = ctx;
    if (!l->found && !strcmp(key, l->key)) {
        snprintf(l->out, l->outlen, "%s", value);
        l->found = 1;
    }
}

int agent_status_get(const char *text, const char *key, char *out, size_t outlen)
{
    lookup l = {key, out, outlen, 0};
    if (outlen)
        out[0] = 0;
    agent_status_each(text, find, &l);
    return l.found;
}

void agent_status_each(const char *text, agent_status_fn fn, void *ctx)
{
    char line[1024];
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n < sizeof(line)) {
            memcpy(line, p, n);
            line[n] = 0;
            char *eq = strchr(line, '=');
            if (eq) {
                *eq = 0;
                fn(ctx, line, eq + 1);
            }
        }
        p = nl ? nl + 1 : NULL;
    }
}
