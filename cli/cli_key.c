/*
 * cli_key.c -- command-line key syntax (rules in cli_key.h).
 */
#include "cli_key.h"

#include "embeddb/tensor_store.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int cli_key_parse(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    if (all_digits(s)) {
        uint64_t v = 0;
        for (const char *p = s; *p; p++) {
            if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                return -1;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        if (cap < TS_KEY_U64_LEN)
            return -1;
        ts_key_from_u64(v, out);
        *len = TS_KEY_U64_LEN;
        return 0;
    }
    if (!strncmp(s, "x:", 2)) {
        size_t n = strlen(s + 2);
        if (n % 2 || n / 2 > cap)
            return -1;
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
            if (hi < 0 || lo < 0)
                return -1;
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        *len = n / 2;
        return 0;
    }
    if (!strncmp(s, "s:", 2))
        s += 2;
    size_t n = strlen(s);
    if (n > cap)
        return -1;
    memcpy(out, s, n);
    *len = n;
    return 0;
}

void cli_key_format(const uint8_t *key, size_t len, char *out, size_t cap)
{
    uint64_t v;
    int printable = len > 0;
    int digits = len > 0;
    if (!cap)
        return;
    if (len == TS_KEY_U64_LEN && key[0] == 0 && ts_key_to_u64(key, len, &v)) {
        snprintf(out, cap, "%llu", (unsigned long long)v);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        printable &= key[i] >= 0x20 && key[i] < 0x7f;
        digits &= key[i] >= '0' && key[i] <= '9';
    }
    if (printable) {
        int prefixed = digits || (len >= 2 && (key[0] == 's' || key[0] == 'x') && key[1] == ':');
        snprintf(out, cap, "%s%.*s", prefixed ? "s:" : "", (int)len, (const char *)key);
        return;
    }
    size_t o = (size_t)snprintf(out, cap, "x:");
    for (size_t i = 0; i < len && o + 3 <= cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", key[i]);
}
