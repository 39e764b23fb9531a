/*
 * cli_time.h -- how points in time are written on the embeddb command line
 * (ls --from/--to) and printed by it (latest). The engine stores
 * timestamp_ns, a signed 64-bit count of nanoseconds since the Unix epoch.
 *
 * Parsing (cli_time_parse) accepts three forms:
 *   1764515045000000000         an integer: ns since the Unix epoch (digits
 *                               only, at most INT64_MAX)
 *   2026-11-30T15:04:05Z        RFC 3339: a fraction of 1 to 9 digits may
 *   2026-11-30T16:04:05.5+01:00 follow the seconds; Z or a numeric offset
 *                               (+HH:MM / -HH:MM) is required; T and Z may
 *                               be lower case
 *   -10s  -5m  -2h  -1d         an age: that long before now_ns
 * Refused, with a reason: a bare negative number ("-10" is neither an age
 * without a unit nor a timestamp: dates before 1970 are written in RFC 3339),
 * a 10th fraction digit (finer than a nanosecond; never rounded away), the
 * leap second :60 (Unix time has no name for it), a date that does not
 * exist (2023-02-29), and anything outside the int64 range (1677-09-21 to
 * 2262-04-11).
 *
 * Printing (cli_time_format) writes RFC 3339 UTC with the fraction trimmed
 * to 0, 3, 6 or 9 digits; every printed time parses back to the same ns.
 *
 * Pure functions: no clock is read here (callers pass now_ns), nothing is
 * printed, so tests/cli/test_cli_time.c checks every limit exactly.
 */
#ifndef EMBEDDB_CLI_TIME_H
#define EMBEDDB_CLI_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "2262-04-11T23:47:16.854775807Z" and NUL fit, with room to spare. */
#define CLI_TIME_TEXT_MAX 40

/*
 * Parses s (one of the forms above; relative ages count back from now_ns).
 * Returns 0 and *out, or TS_EINVAL with a reason in why (always
 * NUL-terminated when why_len > 0; why may be NULL). *out is unchanged on
 * failure.
 */
int cli_time_parse(const char *s, int64_t now_ns, int64_t *out, char *why, size_t why_len);

/* Writes ns as RFC 3339 UTC ("2026-11-30T15:04:05.5Z" prints as
 * "2026-11-30T15:04:05.500Z") into out; always NUL-terminated (cap > 0).
 * With cap >= CLI_TIME_TEXT_MAX nothing is truncated. */
void cli_time_format(int64_t ns, char *out, size_t cap);

#endif
