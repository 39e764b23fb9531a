/*
 * cli_key.c -- the command-line key syntax (rules in cli_key.h). Pure
 * functions on buffers: no I/O, no allocation, so the unit tests and a
 * fuzzer can drive them directly.
 */
#include "cli_key.h"

#include <stdio.h>
#include <string.h>

/* Value of hex digit c, or -1. */
static int hexval(char c)
{
    int v = -1;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
    return v;
}

static int all_digits(const char *s)
{
    int yes = s[0] != 0;
    for (; *s && yes; s++)
        yes = *s >= '0' && *s <= '9';
    return yes;
}

static int parse_number(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    uint64_t v = 0;
    int rc = 0;
    for (const char *p = s; *p && !rc; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            rc = TS_EINVAL; /* above 2^64-1: no numeric key can hold it */
        else
            v = v * 10 + d;
    }
    if (!rc && cap < TS_KEY_U64_LEN)
        rc = TS_ENAMETOOLONG;
    if (!rc) {
        ts_key_from_u64(v, out);
        *len = TS_KEY_U64_LEN;
    }
    return rc;
}

static int parse_hex(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex);
    int rc = 0;
    if (n % 2)
        rc = TS_EINVAL;
    else if (n / 2 > cap)
        rc = TS_ENAMETOOLONG;
    for (size_t i = 0; i < n / 2 && !rc; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            rc = TS_EINVAL;
        else
            out[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!rc)
        *len = n / 2;
    return rc;
}

int cli_key_parse(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    int rc = 0;
    size_t n;
    if (all_digits(s)) {
        rc = parse_number(s, out, cap, len);
        goto out;
    }
    if (!strncmp(s, "x:", 2)) {
        rc = parse_hex(s + 2, out, cap, len);
        goto out;
    }
    if (!strncmp(s, "s:", 2))
        s += 2;
    n = strlen(s);
    if (n > cap) {
        rc = TS_ENAMETOOLONG;
        goto out;
    }
    memcpy(out, s, n);
    *len = n;
out:
    return rc;
}

void cli_key_format(const uint8_t *key, size_t len, char *out, size_t cap)
{
    uint64_t v = 0;
    int printable = len > 0, digits = len > 0;
    size_t o;
    if (!cap)
        goto out;
    if (len == TS_KEY_U64_LEN && key[0] == 0 && ts_key_to_u64(key, len, &v)) {
        snprintf(out, cap, "%llu", (unsigned long long)v);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        printable &= key[i] >= 0x20 && key[i] < 0x7f;
        digits &= key[i] >= '0' && key[i] <= '9';
    }
    if (printable && len <= TS_MAX_KEY_LEN) {
        /* Text that would parse as something else gets an explicit s:. */
        int tag = digits || (len >= 2 && (key[0] == 's' || key[0] == 'x') && key[1] == ':');
        snprintf(out, cap, "%s%.*s", tag ? "s:" : "", (int)len, (const char *)key);
        goto out;
    }
    /* o stays below cap: snprintf of "x:" returns 2, and 2 hex digits are
     * only added while they and the NUL fit. */
    o = (size_t)snprintf(out, cap, "x:");
    for (size_t i = 0; i < len && o + 2 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", key[i]);
out:
    return;
}
