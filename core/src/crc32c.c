/*
 * crc32c.c -- CRC-32C with a hardware path and a portable fallback.
 *
 * The hardware paths are compiled with per-function target attributes so the
 * library still runs on CPUs without the instruction; the choice is made once
 * (a benign race: every thread computes the same answer). Not a general CRC
 * library: only the Castagnoli polynomial, reflected, init/xorout ~0.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#define POLY 0x82f63b78u

static uint32_t table[8][256];
static int table_ready;

static void table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
    table_ready = 1;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Slicing-by-8 (little-endian hosts; big-endian falls back bytewise). */
static uint32_t sw_extend(uint32_t crc, const uint8_t *p, size_t len)
{
    if (!table_ready)
        table_init();
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len >= 8) {
        uint64_t v = load64(p) ^ crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^
              table[2][(v >> 40) & 0xff] ^ table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        len -= 8;
    }
#endif
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HW_CRC 1
#include <nmmintrin.h>
#define HW_ATTR __attribute__((target("sse4.2")))
#define HW_U8(c, v) _mm_crc32_u8((c), (v))
#define HW_U64(c, v) ((uint32_t)_mm_crc32_u64((c), (v)))
static int hw_probe(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
static const char hw_name[] = "sse4.2";
#elif defined(__aarch64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define HW_CRC 1
#include <arm_acle.h>
#define HW_ATTR __attribute__((target("+crc")))
#define HW_U8(c, v) __crc32cb((c), (v))
#define HW_U64(c, v) __crc32cd((c), (v))
static int hw_probe(void)
{
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}
static const char hw_name[] = "armv8-crc";
#endif

#ifdef HW_CRC
/* One buffer as three interleaved streams: the CRC instruction has a
 * latency of about three cycles and a throughput of one per cycle, so one
 * serial chain runs at a third of the unit's speed (a 4 KiB block's check
 * was a sixth of a point load's time). Each round checksums three adjacent
 * SPAN-byte pieces at once, then joins them: the register after A||B is
 * the register after A run through |B| zero bytes, XOR the register of B
 * from zero (the CRC is linear), and "run through SPAN zero bytes" is a
 * fixed linear map, applied by four table lookups (Mark Adler's crc32c.c
 * does the same with longer spans). Rounds of BIG_SPAN come first, so a
 * 4 KiB block is one round and 16 serial bytes, not five rounds and 256
 * serial bytes. */
#define SPAN 256
#define BIG_SPAN 1360 /* 3 x 1360 = 4080: a 4 KiB data block in one round */
static uint32_t span_tab[4][256], big_tab[4][256];
static pthread_once_t span_once = PTHREAD_ONCE_INIT;

/* tab: "run through span zero bytes", byte by byte of the register. */
static void shift_init(uint32_t tab[4][256], int span)
{
    uint32_t basis[32];
    for (int b = 0; b < 32; b++) {
        uint32_t c = 1u << b;
        for (int z = 0; z < 8 * span; z++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        basis[b] = c;
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = 0;
            for (int b = 0; b < 8; b++)
                if (n >> b & 1)
                    c ^= basis[8 * k + b];
            tab[k][n] = c;
        }
}

static void span_init(void)
{
    shift_init(span_tab, SPAN);
    shift_init(big_tab, BIG_SPAN);
}

static uint32_t shift(uint32_t tab[4][256], uint32_t c)
{
    return tab[0][c & 0xff] ^ tab[1][(c >> 8) & 0xff] ^ tab[2][(c >> 16) & 0xff] ^ tab[3][c >> 24];
}

/* Rounds of three span-byte streams while len allows; returns the register. */
HW_ATTR static uint32_t hw_rounds(uint32_t crc, const uint8_t **pp, size_t *len, size_t span,
                                  uint32_t tab[4][256])
{
    const uint8_t *p = *pp;
    while (*len >= 3 * span) {
        uint32_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + span; p < end; p += 8) {
            crc = HW_U64(crc, load64(p));
            c1 = HW_U64(c1, load64(p + span));
            c2 = HW_U64(c2, load64(p + 2 * span));
        }
        crc = shift(tab, shift(tab, crc) ^ c1) ^ c2;
        p += 2 * span;
        *len -= 3 * span;
    }
    *pp = p;
    return crc;
}

HW_ATTR static uint32_t hw_extend(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = HW_U8(crc, *p++);
        len--;
    }
    if (len >= 3 * SPAN) {
        pthread_once(&span_once, span_init);
        crc = hw_rounds(crc, &p, &len, BIG_SPAN, big_tab);
        crc = hw_rounds(crc, &p, &len, SPAN, span_tab);
    }
    while (len >= 8) {
        crc = HW_U64(crc, load64(p));
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = HW_U8(crc, *p++);
    return ~crc;
}

/* Three equal-length streams at once: len must be a multiple of 8. */
HW_ATTR static void hw_three(const uint8_t *a, const uint8_t *b, const uint8_t *c,
                             size_t len, uint32_t out[3])
{
    uint32_t ca = ~0u, cb = ~0u, cc = ~0u;
    for (size_t i = 0; i < len; i += 8) {
        ca = HW_U64(ca, load64(a + i));
        cb = HW_U64(cb, load64(b + i));
        cc = HW_U64(cc, load64(c + i));
    }
    out[0] = ~ca;
    out[1] = ~cb;
    out[2] = ~cc;
}
#endif

#ifdef HW_CRC
/* 0 unknown, 1 hardware, 2 software */
static int impl;

static int use_hw(void)
{
    if (!impl)
        impl = hw_probe() ? 1 : 2;
    return impl == 1;
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
#ifdef HW_CRC
    if (use_hw())
        return hw_extend(crc, buf, len);
#endif
    return sw_extend(crc, buf, len);
}

void crc32c_blocks(const void *buf, size_t len, size_t block_len, uint32_t *out)
{
    const uint8_t *p = buf;
    size_t i = 0;
#ifdef HW_CRC
    if (use_hw() && block_len % 8 == 0) {
        while (len >= 3 * block_len) {
            hw_three(p, p + block_len, p + 2 * block_len, block_len, out + i);
            p += 3 * block_len;
            len -= 3 * block_len;
            i += 3;
        }
    }
#endif
    while (len) {
        size_t n = len < block_len ? len : block_len;
        out[i++] = crc32c_extend(0, p, n);
        p += n;
        len -= n;
    }
}

void crc32c_jobs(const crc32c_job *jobs, size_t n)
{
    size_t i = 0;
#ifdef HW_CRC
    if (use_hw()) {
        while (i + 3 <= n) {
            const crc32c_job *a = &jobs[i], *b = &jobs[i + 1], *c = &jobs[i + 2];
            if (a->len == b->len && b->len == c->len && a->len % 8 == 0) {
                uint32_t out[3];
                hw_three(a->p, b->p, c->p, a->len, out);
                *a->out = out[0];
                *b->out = out[1];
                *c->out = out[2];
                i += 3;
            } else {
                *a->out = hw_extend(0, a->p, a->len);
                i++;
            }
        }
    }
#endif
    for (; i < n; i++)
        *jobs[i].out = crc32c_extend(0, jobs[i].p, jobs[i].len);
}

const char *crc32c_impl(void)
{
#ifdef HW_CRC
    if (use_hw())
        return hw_name;
#endif
    return "table";
}
