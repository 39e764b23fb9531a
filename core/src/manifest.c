/*
 * manifest.c -- MANIFEST encoding (layout in FORMAT.md). Pure codec; the
 * store writes it with write-temp + fdatasync + rename + directory fsync.
 */
#include "manifest.h"

#include "crc32c.h"
#include "format.h"

#include "embeddb/tensor_store.h"

#include <stdlib.h>
#include <string.h>

int man_encode(const uint64_t *live, size_t n, uint64_t wal_no, uint8_t **out, size_t *len)
{
    size_t n_ranges = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || live[i] != live[i - 1] + 1)
            n_ranges++;
    size_t total = FMT_MAN_FIXED_LEN + 16 * n_ranges + 4;
    uint8_t *buf = calloc(1, total);
    if (!buf)
        return TS_ENOMEM;
    memcpy(buf, FMT_MAN_MAGIC, 8);
    put32(buf + 8, FMT_VERSION);
    put32(buf + 12, (uint32_t)n_ranges);
    put64(buf + 16, wal_no);
    uint8_t *p = buf + FMT_MAN_FIXED_LEN;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && live[j + 1] == live[j] + 1)
            j++;
        put64(p, live[i]);
        put64(p + 8, live[j]);
        p += 16;
        i = j + 1;
    }
    put32(p, crc32c(buf, total - 4));
    *out = buf;
    *len = total;
    return 0;
}

int man_decode(const uint8_t *buf, size_t len, uint64_t *wal_no, uint64_t **live, size_t *n,
               const char **why)
{
    uint64_t *v = NULL;
    size_t count = 0;
    int rc = TS_ECORRUPT;
    *live = NULL;
    *n = 0;
    if (len < FMT_MAN_FIXED_LEN + 4 || memcmp(buf, FMT_MAN_MAGIC, 8)) {
        *why = "not a MANIFEST (bad magic or too short)";
        goto out;
    }
    if (crc32c(buf, len - 4) != get32(buf + len - 4)) {
        *why = "MANIFEST checksum mismatch";
        goto out;
    }
    if (get32(buf + 8) != FMT_VERSION && get32(buf + 8) != FMT_VERSION_V1) {
        *why = "unsupported MANIFEST version";
        goto out;
    }
    uint32_t n_ranges = get32(buf + 12);
    if ((uint64_t)n_ranges * 16 + FMT_MAN_FIXED_LEN + 4 != len) {
        *why = "MANIFEST length does not match its range count";
        goto out;
    }
    *wal_no = get64(buf + 16);
    const uint8_t *p = buf + FMT_MAN_FIXED_LEN;
    uint64_t prev_hi = 0;
    for (uint32_t r = 0; r < n_ranges; r++) {
        uint64_t lo = get64(p + 16 * r), hi = get64(p + 16 * r + 8);
        if (lo > hi || hi >= *wal_no || (r && lo <= prev_hi) || hi - lo >= MAN_MAX_LIVE ||
            count + (hi - lo + 1) > MAN_MAX_LIVE) {
            *why = "MANIFEST ranges out of order or out of bounds";
            goto out;
        }
        count += (size_t)(hi - lo + 1);
        prev_hi = hi;
    }
    v = malloc((count ? count : 1) * sizeof(*v));
    if (!v) {
        rc = TS_ENOMEM;
        *why = "out of memory";
        goto out;
    }
    count = 0;
    for (uint32_t r = 0; r < n_ranges; r++)
        for (uint64_t x = get64(p + 16 * r); x <= get64(p + 16 * r + 8); x++)
            v[count++] = x;
    *live = v;
    *n = count;
    v = NULL;
    rc = 0;
out:
    free(v);
    return rc;
}
