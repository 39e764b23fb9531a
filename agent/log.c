/*
 * log.c -- journald-friendly log lines (see log.h).
 */
#include "log.h"

#include "embeddb/plat.h"

#include <stdarg.h>
#include <stdio.h>

static log_level current = LOG_LEVEL_INFO;

void agent_log_set_level(log_level lv)
{
    current = lv;
}

static void vlog(log_level lv, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "<%d>embeddb-agent: %s\n", (int)lv, line);
}

void agent_log(log_level lv, const char *fmt, ...)
{
    va_list ap;
    if (lv > current)
        return;
    va_start(ap, fmt);
    vlog(lv, fmt, ap);
    va_end(ap);
}

void agent_log_limited(log_limit *lim, unsigned burst, uint64_t interval_ms, log_level lv,
                       const char *fmt, ...)
{
    va_list ap;
    uint64_t now = plat_mono_ns() / 1000000;
    if (lv > current)
        return;
    if (now - lim->window_start_ms >= interval_ms) {
        if (lim->suppressed)
            agent_log(lv, "(%lu similar messages suppressed)", lim->suppressed);
        lim->window_start_ms = now;
        lim->used = 0;
        lim->suppressed = 0;
    }
    if (lim->used >= burst) {
        lim->suppressed++;
        return;
    }
    lim->used++;
    va_start(ap, fmt);
    vlog(lv, fmt, ap);
    va_end(ap);
}
