/*
 * cli_key.h -- how keys are written on the embeddb command line and printed
 * by it. Keys are byte strings to the engine; people need a text form.
 *
 * Parsing (cli_key_parse):
 *   101        all digits: a numeric key, 8 bytes big-endian (ts_key_from_u64)
 *   s:TEXT     the bytes of TEXT (use it for text that looks like a number)
 *   x:HEX      raw bytes, two hex digits each (x:00ff10)
 *   other      its own bytes (sensors/cam0)
 *
 * Printing (cli_key_format) is the inverse, so every printed key parses back
 * to the same bytes: an 8-byte key whose first byte is 0 prints as its
 * number; a key of printable ASCII prints as text, with "s:" in front when it
 * is all digits or starts with "s:" or "x:"; anything else prints as x:HEX.
 * (A numeric key of 2^56 or more therefore prints as x:HEX.)
 *
 * Not here: key order or storage, which belong to the engine.
 */
#ifndef EMBEDDB_CLI_KEY_H
#define EMBEDDB_CLI_KEY_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* Enough for any key cli_key_format prints: "x:" + 2 hex digits a byte. */
#define CLI_KEY_TEXT_MAX (2 + 2 * TS_MAX_KEY_LEN + 1)

/*
 * Parses s into out (cap bytes). Returns 0 and *len (0 for an empty key,
 * which callers that need a key reject), TS_EINVAL when malformed (bad hex,
 * a number above 2^64-1) or TS_ENAMETOOLONG when it needs more than cap bytes.
 */
int cli_key_parse(const char *s, uint8_t *out, size_t cap, size_t *len);

/* Prints key into out (cap bytes, always NUL-terminated when cap > 0). With
 * cap >= CLI_KEY_TEXT_MAX nothing is truncated. */
void cli_key_format(const uint8_t *key, size_t len, char *out, size_t cap);

#endif
