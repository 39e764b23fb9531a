/*
 * cli_key.h -- how keys are written on the command line and printed.
 *
 * Parsing: all digits -> numeric key (8 bytes big-endian, e.g. 101);
 * "s:TEXT" -> the bytes of TEXT; "x:HEX" -> raw bytes; anything else -> its
 * own bytes. Printing is the inverse: an 8-byte key whose first byte is 0
 * prints as a number, printable ASCII prints as text (with "s:" when it
 * would otherwise read as a number or a prefixed form), the rest as "x:HEX".
 */
#ifndef EMBEDDB_CLI_KEY_H
#define EMBEDDB_CLI_KEY_H

#include <stddef.h>
#include <stdint.h>

/* Parses s into out (cap bytes). 0 and *len, or -1 when malformed or too
 * long. A numeric key needs all digits and fits in 64 bits. */
int cli_key_parse(const char *s, uint8_t *out, size_t cap, size_t *len);
/* Prints key into out (always NUL-terminated; truncates). */
void cli_key_format(const uint8_t *key, size_t len, char *out, size_t cap);

#endif
