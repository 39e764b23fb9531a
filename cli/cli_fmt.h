/*
 * cli_fmt.h -- how the embeddb commands write tensor metadata as text:
 * shapes in the "32x32" syntax the CSV payload uses ("scalar" for 0-d), and
 * names escaped so that one tensor stays on one tab-separated line.
 *
 * Not here: keys (cli_key.h) and values (the engine's ts_summarize).
 */
#ifndef EMBEDDB_CLI_FMT_H
#define EMBEDDB_CLI_FMT_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* Longest shape text: 8 dims of 20 digits, 7 'x', NUL. */
#define CLI_FMT_SHAPE_MAX (TS_MAX_DIMS * 21 + 1)
/* Longest escaped name: 4 bytes ("\xNN") per name byte, NUL. */
#define CLI_FMT_NAME_MAX (4 * TS_MAX_NAME_LEN + 1)

/* Writes "32x32" (or "scalar") into out; always NUL-terminated (cap > 0). */
void cli_fmt_shape(uint32_t ndim, const uint64_t *shape, char *out, size_t cap);

/* Copies name into out with control bytes and DEL written as \xNN and a
 * backslash as \\, so tabs and newlines in a name cannot break a line.
 * Always NUL-terminated (cap > 0); truncates at a whole character. */
void cli_fmt_name(const char *name, char *out, size_t cap);

#endif
