/*
 * cli_util.c -- helpers every embeddb command uses: --help detection, exit
 * codes, opening a store with a printed error, scratch directories.
 */
#define _GNU_SOURCE 1
#include "cli.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

int cli_exit_for(int rc)
{
    switch (rc) {
    case TS_OK: return EXIT_OK;
    case TS_ENOTFOUND: return EXIT_NOTFOUND;
    case TS_ECORRUPT: return EXIT_DAMAGED;
    case TS_EINVAL: return EXIT_USAGE;
    default: return EXIT_STORE;
    }
}

ts_store *cli_open(const char *dir, int read_only, int create, uint64_t memtable_max, int *rc_out)
{
    ts_options o;
    ts_store *s = NULL;
    char err[1024];
    ts_options_init(&o);
    o.read_only = read_only;
    o.create_if_missing = create;
    if (memtable_max)
        o.memtable_max = memtable_max;
    int rc = ts_open(dir, &o, &s, err, sizeof(err));
    if (rc_out)
        *rc_out = rc;
    if (rc) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, err);
        return NULL;
    }
    return s;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cli_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *cli_scratch_dir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    if (!p)
        return NULL;
    snprintf(p, 4096, "%s/embeddb-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        free(p);
        return NULL;
    }
    return p;
}
