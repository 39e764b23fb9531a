/*
 * log.c -- journald-friendly log lines (see log.h).
 *
 * The level is the one piece of shared state: the main thread sets it (at
 * start and on SIGHUP) while the main, MQTT network and upload threads read
 * it. It is an atomic int; relaxed order is enough, as a line logged or
 * dropped around a reload orders nothing else. A log_limit belongs to its
 * caller, who serialises its use (ingest's under its mutex).
 */
#include "log.h"

#include "embeddb/plat.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int current = LOG_LEVEL_INFO;

static log_level level(void)
{
    return (log_level)atomic_load_explicit(&current, memory_order_relaxed);
}

void agent_log_set_level(log_level lv)
{
    atomic_store_explicit(&current, (int)lv, memory_order_relaxed);
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
    if (lv > level())
        return;
    va_start(ap, fmt);
    vlog(lv, fmt, ap);
    va_end(ap);
}

void agent_log_limited(log_limit *lim, unsigned burst, uint64_t interval_ms, log_level lv,
                       const char *fmt, ...)
{
    va_list ap;
    uint64_t now = plat_mono_ms();
    if (lv > level())
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
