/*
 * cli_store.c -- opening stores with a printed error, exit codes for engine
 * errors, scratch directories (see cli_store.h).
 *
 * Scratch directories use libc's mkdtemp and nftw directly: the platform
 * layer has no call for either, and these are throw-away trees the CLI made
 * itself, not stores whose durability matters.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cli_store.h"

#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_store_open(const char *dir, const ts_options *o, ts_store **out)
{
    ts_options ro;
    char err[1024];
    int rc;
    err[0] = 0;
    if (!o) {
        ts_options_init(&ro);
        ro.read_only = 1;
        o = &ro;
    }
    rc = ts_open(dir, o, out, err, sizeof(err));
    if (rc)
        fprintf(stderr, "embeddb: %s: %s\n", dir, err[0] ? err : ts_strerror(rc));
    return rc;
}

void cli_store_report(const char *dir, const ts_store *s, int rc)
{
    const char *msg = s ? ts_errmsg(s) : "";
    fprintf(stderr, "embeddb: %s: %s\n", dir, msg && msg[0] ? msg : ts_strerror(rc));
}

const char *cli_store_strerror(int rc)
{
    /* TS_E* codes below -4096 are the engine's own; the rest are -errno. */
    return rc < 0 && rc > -4096 ? strerror(-rc) : ts_strerror(rc);
}

int cli_store_exit(int rc)
{
    int ec;
    switch (rc) {
    case TS_OK:
        ec = CLI_EXIT_OK;
        break;
    case TS_ENOTFOUND:
        ec = CLI_EXIT_NOTFOUND;
        break;
    case TS_ECORRUPT:
        ec = CLI_EXIT_DAMAGED;
        break;
    default:
        ec = CLI_EXIT_STORE;
        break;
    }
    return ec;
}

int cli_store_scratch(const char *base, const char *tag, char **out)
{
    const char *tmp = getenv("TMPDIR");
    char *p = NULL;
    size_t len;
    int rc = 0;
    *out = NULL;
    if (!base)
        base = tmp && tmp[0] ? tmp : "/tmp";
    len = strlen(base) + strlen(tag) + sizeof("/embeddb--XXXXXX");
    if (!(p = malloc(len))) {
        rc = -ENOMEM;
        fprintf(stderr, "embeddb: out of memory\n");
        goto out;
    }
    snprintf(p, len, "%s/embeddb-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        rc = -errno;
        fprintf(stderr, "embeddb: cannot create a scratch directory in %s: %s\n", base,
                strerror(errno));
        goto out;
    }
    *out = p;
    p = NULL;
out:
    free(p);
    return rc;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    /* Keep going past a file that will not go: remove what can be removed. */
    remove(path);
    return 0;
}

void cli_store_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
