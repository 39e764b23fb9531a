/*
 * cli.h -- what the embeddb command's files share: command entry points,
 * exit codes, and the store-opening helper. Each cmd_*.c holds one group of
 * commands; main.c only dispatches.
 */
#ifndef EMBEDDB_CLI_H
#define EMBEDDB_CLI_H

#include "embeddb/tensor_store.h"

/* Exit codes (documented in `embeddb --help`). */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,    /* bad command line or bad input file */
    EXIT_STORE = 2,    /* the store could not be opened, read or written */
    EXIT_NOTFOUND = 3, /* no tensor under that key */
    EXIT_DAMAGED = 4,  /* verify found damage */
};

/* Opens dir read-only (inspection) or read-write (create when asked).
 * Prints "embeddb: DIR: reason" and returns NULL on failure, with the TS_E*
 * code in *rc when rc is given. */
ts_store *cli_open(const char *dir, int read_only, int create, uint64_t memtable_max, int *rc);
/* Maps a TS_E* code to an exit code. */
int cli_exit_for(int rc);
/* 1 when argv has -h/--help. */
int cli_wants_help(int argc, char **argv);
/* Removes a directory tree (scratch stores only). */
void cli_rmtree(const char *dir);
/* A new directory $TMPDIR/embeddb-TAG-XXXXXX (caller frees the string and
 * removes the tree), or NULL after printing why. */
char *cli_scratch_dir(const char *tag);

int cmd_ls(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_preview(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_dryrun(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_numeric_bench(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
