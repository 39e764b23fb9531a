/*
 * cli_time.c -- command-line times: parsing the three forms cli_time.h lists
 * and printing RFC 3339 UTC. Calendar arithmetic is proleptic Gregorian on
 * day numbers (Howard Hinnant's days_from_civil), so no libc time function,
 * time zone or locale is involved, and every overflow is checked here rather
 * than left to timegm's range.
 */
#include "cli_time.h"

#include "embeddb/tensor_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_S INT64_C(1000000000)
/* INT64_MAX = 9223372036 s + 854775807 ns; INT64_MIN = -9223372037 s + 145224192 ns. */
#define MAX_S INT64_C(9223372036)
#define MAX_S_FRAC 854775807
#define MIN_S INT64_C(-9223372037)
#define MIN_S_FRAC 145224192

static int fail(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    if (why && why_len) {
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return TS_EINVAL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n digits at s as a number, or -1 when one of them is not a digit. */
static int fixed_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* sec + frac/1e9 as ns (frac 0..999999999), or TS_EINVAL out of range. */
static int to_ns(int64_t sec, int64_t frac, int64_t *out, char *why, size_t why_len)
{
    if (sec > MAX_S || (sec == MAX_S && frac > MAX_S_FRAC) || sec < MIN_S ||
        (sec == MIN_S && frac < MIN_S_FRAC))
        return fail(why, why_len, "outside the range of int64 nanoseconds "
                    "(1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z)");
    /* (sec + 1) * 1e9 cannot overflow for sec >= MIN_S; frac - 1e9 is < 0. */
    *out = sec >= 0 ? sec * NS_PER_S + frac : (sec + 1) * NS_PER_S + (frac - NS_PER_S);
    return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|+HH:MM|-HH:MM), nothing after. */
static int parse_rfc3339(const char *s, int64_t *out, char *why, size_t why_len)
{
    static const char form[] = "YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM";
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, nfrac = 0;
    int64_t frac = 0, total;
    const char *p;
    if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return fail(why, why_len, "not an RFC 3339 time (%s)", form);
    y = fixed_digits(s, 4);
    mo = fixed_digits(s + 5, 2);
    d = fixed_digits(s + 8, 2);
    h = fixed_digits(s + 11, 2);
    mi = fixed_digits(s + 14, 2);
    sec = fixed_digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return fail(why, why_len, "not an RFC 3339 time (%s)", form);
    if (mo < 1 || mo > 12)
        return fail(why, why_len, "month %02d does not exist", mo);
    if (d < 1 || d > days_in_month(y, mo))
        return fail(why, why_len, "day %02d does not exist in %04d-%02d", d, y, mo);
    if (h > 23 || mi > 59)
        return fail(why, why_len, "time of day %02d:%02d does not exist", h, mi);
    if (sec == 60)
        return fail(why, why_len, "leap second :60 has no Unix time; use :59.999999999 or "
                    "the next second");
    if (sec > 59)
        return fail(why, why_len, "second %02d does not exist", sec);
    p = s + 19;
    if (*p == '.') {
        for (p++; is_digit(*p); p++, nfrac++)
            if (nfrac < 9)
                frac = frac * 10 + (*p - '0');
        if (!nfrac)
            return fail(why, why_len, "a '.' needs fraction digits after it");
        if (nfrac > 9)
            return fail(why, why_len, "%d fraction digits; at most 9 (nanoseconds)", nfrac);
        for (int i = nfrac; i < 9; i++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        oh = fixed_digits(p + 1, 2);
        om = p[1] && p[2] && p[3] == ':' ? fixed_digits(p + 4, 2) : -1;
        if (oh < 0 || om < 0)
            return fail(why, why_len, "the offset must read +HH:MM or -HH:MM");
        if (oh > 23 || om > 59)
            return fail(why, why_len, "offset %c%02d:%02d does not exist", *p, oh, om);
        p += 6;
    } else {
        return fail(why, why_len, "missing Z or +HH:MM after the time (times are UTC unless "
                    "an offset says otherwise)");
    }
    if (*p)
        return fail(why, why_len, "unexpected '%s' after the time", p);
    /* Local time minus its offset is UTC; years 0..9999 keep this far from
     * overflow, to_ns checks the int64 range. */
    total = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
            sign * (oh * 3600 + om * 60);
    return to_ns(total, frac, out, why, why_len);
}

/* -N followed by s, m, h or d: now_ns minus that age. */
static int parse_age(const char *s, int64_t now_ns, int64_t *out, char *why, size_t why_len)
{
    const char *p = s + 1;
    uint64_t n = 0, unit = 0;
    int64_t age;
    int big = 0;
    if (!is_digit(*p))
        return fail(why, why_len, "an age reads -10s, -5m, -2h or -1d");
    for (; is_digit(*p); p++) {
        if (n > (UINT64_MAX - 9) / 10)
            big = 1;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    switch (*p) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 0:
        return fail(why, why_len, "an age needs a unit (-%ss, -%sm, -%sh or -%sd); a time "
                    "before 1970 is written in RFC 3339", s + 1, s + 1, s + 1, s + 1);
    default:
        return fail(why, why_len, "unknown unit '%s' (s, m, h or d)", p);
    }
    if (p[1])
        return fail(why, why_len, "unexpected '%s' after the age", p + 1);
    unit *= (uint64_t)NS_PER_S;
    if (big || n > (uint64_t)INT64_MAX / unit)
        return fail(why, why_len, "age longer than int64 nanoseconds reach (about 292 years)");
    age = (int64_t)(n * unit);
    if (now_ns < INT64_MIN + age)
        return fail(why, why_len, "that long before now is before the earliest int64 "
                    "timestamp (1677-09-21)");
    *out = now_ns - age;
    return 0;
}

/* Digits only: ns since the epoch, at most INT64_MAX. */
static int parse_int(const char *s, int64_t *out, char *why, size_t why_len)
{
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p))
            return fail(why, why_len, "not a number of nanoseconds, an RFC 3339 time or an "
                        "age like -10s");
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
            return fail(why, why_len, "above the largest int64 timestamp, "
                        "9223372036854775807 (2262-04-11T23:47:16.854775807Z)");
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = (int64_t)v;
    return 0;
}

int cli_time_parse(const char *s, int64_t now_ns, int64_t *out, char *why, size_t why_len)
{
    int rc;
    int64_t v = 0;
    size_t n_digits = strspn(s, "0123456789");
    if (why && why_len)
        why[0] = 0;
    if (!*s)
        rc = fail(why, why_len, "empty");
    else if (s[0] == '-')
        rc = parse_age(s, now_ns, &v, why, why_len);
    else if (n_digits == 4 && s[4] == '-')
        rc = parse_rfc3339(s, &v, why, why_len);
    else
        rc = parse_int(s, &v, why, why_len);
    if (!rc)
        *out = v;
    return rc;
}

void cli_time_format(int64_t ns, char *out, size_t cap)
{
    int64_t sec = ns / NS_PER_S, frac = ns % NS_PER_S, days, y;
    int m, d, sod;
    char f[12] = "";
    if (frac < 0) {
        frac += NS_PER_S;
        sec--;
    }
    days = sec / 86400;
    sod = (int)(sec % 86400);
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (frac % 1000000 == 0 && frac)
        snprintf(f, sizeof(f), ".%03d", (int)(frac / 1000000));
    else if (frac % 1000 == 0 && frac)
        snprintf(f, sizeof(f), ".%06d", (int)(frac / 1000));
    else if (frac)
        snprintf(f, sizeof(f), ".%09d", (int)frac);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", (int)y, m, d, sod / 3600,
                 sod / 60 % 60, sod % 60, f);
}
