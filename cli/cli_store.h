/*
 * cli_store.h -- how the embeddb commands open stores, report engine errors
 * and turn them into exit codes, and make and remove scratch directories for
 * the demo and benchmark modes.
 *
 * Not here: anything that reads or writes tensors (the commands do that
 * through the engine API directly).
 */
#ifndef EMBEDDB_CLI_STORE_H
#define EMBEDDB_CLI_STORE_H

#include "embeddb/tensor_store.h"

/*
 * Opens the store in dir. With o NULL the store is opened read-only, as every
 * inspection command does so that it can run beside a writing daemon. On
 * failure prints "embeddb: DIR: reason" (the engine's errbuf) to stderr.
 * Returns 0 with *out owned by the caller (ts_close), or the TS_E* code.
 */
int cli_store_open(const char *dir, const ts_options *o, ts_store **out);

/* Prints "embeddb: DIR: <ts_errmsg(s)>" (or the code's text when the store
 * left no message) to stderr. */
void cli_store_report(const char *dir, const ts_store *s, int rc);

/* Words for a TS_E* code or a negative errno from the platform layer. */
const char *cli_store_strerror(int rc);

/* The exit code for a TS_E* code (see cli.h). */
int cli_store_exit(int rc);

/*
 * Creates a new directory BASE/embeddb-TAG-XXXXXX, BASE being base or, when
 * NULL, $TMPDIR or /tmp. Returns 0 and *out (malloc'd, caller frees) or a
 * negative errno after printing why.
 */
int cli_store_scratch(const char *base, const char *tag, char **out);

/* Removes a directory tree the CLI created (a scratch store). Best effort:
 * scratch leftovers are not worth failing a command over. NULL is a no-op. */
void cli_store_rmtree(const char *dir);

#endif
