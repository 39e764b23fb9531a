/*
 * cli_args.h -- the embeddb commands' argument parsing, declared as a table.
 *
 * Each command lists the options it takes (all of them take one value, like
 * "-o FILE" or "--epochs 20") and how many positional arguments it wants;
 * cli_args_parse does the rest, so the commands hold no hand-rolled loops
 * over argv. -h/--help is recognised everywhere; "--" ends the options.
 *
 * This is not getopt: no bundled short flags, no "--opt=value", no
 * permutation rules beyond "options may come anywhere".
 */
#ifndef EMBEDDB_CLI_ARGS_H
#define EMBEDDB_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define CLI_ARGS_MAX_POS 8

/* One option that takes a value. *value is set to the argument after it
 * (borrowed from argv); it keeps its previous value when the option is
 * absent, so callers preset defaults. */
typedef struct cli_opt {
    const char *name;
    const char **value;
} cli_opt;

typedef struct cli_args {
    const char *pos[CLI_ARGS_MAX_POS]; /* positionals, borrowed from argv */
    size_t n_pos;
    int help;                          /* -h or --help was given */
} cli_args;

/*
 * Parses argv[1..argc-1] (argv[0] is the command's name, used in messages)
 * against opts. Returns 0, or TS_EINVAL after printing the reason to stderr
 * (unknown option, missing value, wrong number of positionals). With help
 * set the positional count is not checked.
 */
int cli_args_parse(int argc, char **argv, const cli_opt *opts, size_t n_opts, size_t min_pos,
                   size_t max_pos, cli_args *out);

/* Parses s as a decimal integer in [lo, hi]. Returns 0 and *out, or
 * TS_EINVAL after printing "embeddb: WHAT must be ..." to stderr. */
int cli_args_u64(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Prints a command's usage text: to stdout when help was asked for (returns
 * CLI_EXIT_OK), else to stderr after a usage error (returns CLI_EXIT_USAGE). */
int cli_args_usage(const char *text, int help);

#endif
