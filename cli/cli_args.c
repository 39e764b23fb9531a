/*
 * cli_args.c -- table-driven argument parsing for the embeddb commands (see
 * cli_args.h). It prints its own error messages, so a command only decides
 * whether to show its usage text afterwards.
 */
#include "cli_args.h"

#include "cli.h"

#include "embeddb/tensor_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt *find_opt(const cli_opt *opts, size_t n_opts, const char *arg)
{
    const cli_opt *found = NULL;
    for (size_t i = 0; i < n_opts && !found; i++)
        if (!strcmp(opts[i].name, arg))
            found = &opts[i];
    return found;
}

int cli_args_parse(int argc, char **argv, const cli_opt *opts, size_t n_opts, size_t min_pos,
                   size_t max_pos, cli_args *out)
{
    const char *cmd = argc > 0 ? argv[0] : "embeddb";
    int only_pos = 0;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const cli_opt *o;
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            /* Keep counting past the limit so the message can say so. */
            if (out->n_pos < CLI_ARGS_MAX_POS)
                out->pos[out->n_pos] = a;
            out->n_pos++;
        } else if (!strcmp(a, "--")) {
            only_pos = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            out->help = 1;
        } else if ((o = find_opt(opts, n_opts, a))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "embeddb: %s: option %s needs a value\n", cmd, a);
                rc = TS_EINVAL;
            } else {
                *o->value = argv[++i];
            }
        } else {
            fprintf(stderr, "embeddb: %s: unknown option '%s'\n", cmd, a);
            rc = TS_EINVAL;
        }
    }
    if (!rc && !out->help && (out->n_pos < min_pos || out->n_pos > max_pos)) {
        fprintf(stderr, "embeddb: %s: %s\n", cmd,
                out->n_pos < min_pos ? "missing argument" : "too many arguments");
        rc = TS_EINVAL;
    }
    if (out->n_pos > CLI_ARGS_MAX_POS)
        out->n_pos = CLI_ARGS_MAX_POS;
    return rc;
}

int cli_args_u64(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = 0;
    int rc = TS_EINVAL;
    /* strtoull accepts "-1" (wrapping it) and leading spaces: refuse both. */
    if (s[0] >= '0' && s[0] <= '9') {
        errno = 0;
        v = strtoull(s, &end, 10);
        if (!errno && !*end && v >= lo && v <= hi) {
            *out = v;
            rc = 0;
        }
    }
    if (rc)
        fprintf(stderr, "embeddb: %s must be a whole number in %" PRIu64 "..%" PRIu64
                ", not '%s'\n", what, lo, hi, s);
    return rc;
}

int cli_args_usage(const char *text, int help)
{
    fputs(text, help ? stdout : stderr);
    return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
