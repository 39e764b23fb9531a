/*
 * ratelimit.c -- upload.max_rate's token bucket (contract in ratelimit.h).
 * Integer arithmetic only: refills carry their sub-byte remainder, so no
 * rounding drifts the rate over a long upload.
 */
#include "ratelimit.h"

#define NS 1000000000ull

void ratelimit_init(ratelimit *r, uint64_t rate, uint64_t now_ns)
{
    r->rate = rate;
    r->burst = rate / 10 > RATELIMIT_MIN_BURST ? rate / 10 : RATELIMIT_MIN_BURST;
    r->tokens = r->burst;
    r->frac = 0;
    r->last_ns = now_ns;
}

static void refill(ratelimit *r, uint64_t now_ns)
{
    if (now_ns <= r->last_ns)
        return;
    uint64_t dt = now_ns - r->last_ns;
    r->last_ns = now_ns;
    if (r->tokens >= r->burst) {
        r->frac = 0;
        return;
    }
    /* dt x rate may not fit 64 bits past ~18 s at 1 GB/s: whole seconds apart. */
    uint64_t add = (dt / NS) * r->rate;
    uint64_t part = (dt % NS) * r->rate + r->frac; /* < 2^64 for rate < 18 GB/s */
    add += part / NS;
    r->frac = part % NS;
    r->tokens = add >= r->burst - r->tokens ? r->burst : r->tokens + add;
    if (r->tokens == r->burst)
        r->frac = 0;
}

size_t ratelimit_grant(ratelimit *r, uint64_t now_ns, size_t want, uint64_t *wait_ns)
{
    *wait_ns = 0;
    if (!r->rate || !want)
        return want;
    refill(r, now_ns);
    uint64_t need = want < r->burst ? want : r->burst;
    if (r->tokens >= need)
        return (size_t)(want < r->tokens ? want : r->tokens);
    /* Time until `need` tokens, rounded up. */
    uint64_t missing = need - r->tokens;
    uint64_t ns_needed = missing * NS;
    ns_needed = ns_needed > r->frac ? ns_needed - r->frac : 0;
    *wait_ns = (ns_needed + r->rate - 1) / r->rate;
    if (!*wait_ns)
        *wait_ns = 1;
    return 0;
}

void ratelimit_take(ratelimit *r, size_t n)
{
    r->tokens = n < r->tokens ? r->tokens - n : 0;
}
