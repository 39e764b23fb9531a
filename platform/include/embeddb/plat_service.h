/*
 * plat_service.h -- what a daemon needs from the OS beyond files: the
 * systemd notify datagram (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1) and
 * termination/reload signals turned into flags the main loop polls.
 *
 * The notify protocol needs no libsystemd: one datagram to the AF_UNIX
 * socket named by $NOTIFY_SOCKET (a leading '@' means the abstract
 * namespace). Without $NOTIFY_SOCKET every call is a silent no-op.
 */
#ifndef EMBEDDB_PLAT_SERVICE_H
#define EMBEDDB_PLAT_SERVICE_H

#include <stdint.h>

/* Sends msg ("READY=1\nSTATUS=...") to systemd. 0, or -errno. */
int plat_notify(const char *msg);
/* The watchdog interval systemd asked for ($WATCHDOG_USEC), in ms; 0 if none. */
uint64_t plat_watchdog_ms(void);

enum {
    PLAT_SIG_STOP = 1,    /* SIGTERM or SIGINT */
    PLAT_SIG_RELOAD = 2,  /* SIGHUP */
    PLAT_SIG_USR1 = 4,    /* SIGUSR1 */
};
/* Installs handlers for SIGTERM, SIGINT, SIGHUP, SIGUSR1 (and ignores
 * SIGPIPE). 0 or -errno. */
int plat_signals_install(void);
/* Returns and clears the PLAT_SIG_* bits raised since the last call. */
int plat_signals_take(void);

/* Sends SIGUSR1 to process pid (> 1), e.g. the agent holding a store, to
 * ask it for a snapshot. 0 or -errno (-ESRCH: no such process). */
int plat_signal_usr1(int pid);
/* This process's id. */
int plat_getpid(void);

#endif
