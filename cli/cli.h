/*
 * cli.h -- the embeddb command's entry points and exit codes.
 *
 * Each cmd_*.c / bench.c file holds one group of commands; main.c only
 * dispatches to them. A command takes the argument vector starting at its own
 * name (argv[0] is "ls", "--tensor-ingest", ...) and returns the process exit
 * code below, never a TS_E* code: it has already printed why it failed.
 *
 * This header is not the place for helpers: argument parsing lives in
 * cli_args.h, store opening in cli_store.h, key syntax in cli_key.h.
 */
#ifndef EMBEDDB_CLI_H
#define EMBEDDB_CLI_H

/* Exit codes, documented in `embeddb --help`. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 1,    /* bad command line or bad input file */
    CLI_EXIT_STORE = 2,    /* the store or a file could not be opened, read or written */
    CLI_EXIT_NOTFOUND = 3, /* no tensor under that key */
    CLI_EXIT_DAMAGED = 4,  /* damage found: verify, or data failing its checksum */
};

/* cmd_inspect.c: read-only inspection. */
int cmd_ls(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_preview(int argc, char **argv);
int cmd_latest(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_verify(int argc, char **argv);

/* cmd_snapshot.c: seal, list, verify and retry snapshots. */
int cmd_snapshot(int argc, char **argv);

/* cmd_demo.c: the seed's demo modes. */
int cmd_dryrun(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_ingest(int argc, char **argv);

/* cmd_serve.c: the HTTP console on a store (embeddb serve). */
int cmd_serve(int argc, char **argv);

/* bench.c: benchmarks. argv[0] of cmd_numeric_bench is N itself. */
int cmd_bench(int argc, char **argv);
int cmd_numeric_bench(int argc, char **argv);

#endif
