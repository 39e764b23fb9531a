/*
 * plat_service.c -- systemd notify datagrams and signal flags (contract in
 * plat_service.h). Handlers only set an atomic flag; the daemon's main loop
 * acts on them, so no work runs in signal context.
 */
#define _GNU_SOURCE 1
#include "embeddb/plat_service.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

int plat_notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    int fd, rc = 0;
    size_t len;
    if (!path || !*path)
        return 0;
    len = strlen(path);
    if (len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return -EINVAL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Never block: a notify reader that stopped reading must not stall the
     * daemon (an AF_UNIX datagram queue holds only a few messages). */
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

uint64_t plat_watchdog_ms(void)
{
    const char *v = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    if (!v || (pid && strtol(pid, NULL, 10) != (long)getpid()))
        return 0;
    return strtoull(v, NULL, 10) / 1000;
}

static atomic_int raised;

static void on_signal(int sig)
{
    int bit = sig == SIGHUP ? PLAT_SIG_RELOAD : sig == SIGUSR1 ? PLAT_SIG_USR1 : PLAT_SIG_STOP;
    atomic_fetch_or(&raised, bit);
}

int plat_signals_install(void)
{
    struct sigaction sa;
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL))
            return -errno;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL))
        return -errno;
    return 0;
}

int plat_signals_take(void)
{
    return atomic_exchange(&raised, 0);
}

int plat_signal_usr1(int pid)
{
    if (pid <= 1)
        return -EINVAL;
    return kill((pid_t)pid, SIGUSR1) ? -errno : 0;
}

int plat_getpid(void)
{
    return (int)getpid();
}
