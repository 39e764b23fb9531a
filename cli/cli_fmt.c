/*
 * cli_fmt.c -- shapes and names as text (see cli_fmt.h). Pure functions on
 * buffers.
 */
#include "cli_fmt.h"

#include <inttypes.h>
#include <stdio.h>

void cli_fmt_shape(uint32_t ndim, const uint64_t *shape, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        goto out;
    out[0] = 0;
    if (ndim == 0)
        snprintf(out, cap, "scalar");
    for (uint32_t i = 0; i < ndim && i < TS_MAX_DIMS && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, i ? "x%" PRIu64 : "%" PRIu64, shape[i]);
out:
    return;
}

void cli_fmt_name(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        goto out;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char esc[8];
        size_t n;
        if (*p < 0x20 || *p == 0x7f)
            n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
        else if (*p == '\\')
            n = (size_t)snprintf(esc, sizeof(esc), "\\\\");
        else
            n = (size_t)snprintf(esc, sizeof(esc), "%c", *p);
        if (o + n >= cap)
            break;
        for (size_t i = 0; i < n; i++)
            out[o++] = esc[i];
    }
    out[o] = 0;
out:
    return;
}
