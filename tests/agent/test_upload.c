/*
 * test_upload.c -- the upload worker's threads and locks (agent/upload.c)
 * against a server that accepts the TCP connection and never answers (the
 * TLS handshake stalls; the timeouts are far longer than the test):
 *   - upload_delete of the snapshot being uploaded does not delete it: it
 *     cancels the upload and returns -EBUSY at once; the worker lets go, the
 *     snapshot stays sealed, and the next upload_delete deletes it;
 *   - del runs without the worker's lock (upload_counters_get, the main
 *     thread's status read, still answers while it runs);
 *   - upload_stop ends an upload stuck in the handshake, leaving it sealed.
 * Everything waits on conditions (the worker's published state), bounded
 * by long timeouts that only a broken build reaches.
 */
#include "../core/test_util.h"

#include "config.h"
#include "log.h"
#include "embeddb/snapshot.h"
#include "upload.h"

#include "embeddb/plat.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define LONG_MS 600000
#define WAIT_MS 30000 /* for conditions that hold within milliseconds */

typedef struct fx {
    char *base;
    char store[1024], root[1024], name[SNAP_NAME_MAX];
    int lfd, port;
    agent_config cfg;
    uploader *u;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    ts_checkpoint_info info;
    char err[1024];
    size_t done = 0;
    ts_store *s;
    agent_log_set_level(LOG_LEVEL_ERROR);
    f->base = tu_tmpdir("upload");
    snprintf(f->store, sizeof(f->store), "%s/store", f->base);
    snap_root(f->store, f->root, sizeof(f->root));
    s = tu_open(f->store, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tu_save(s, (uint64_t)i, 100, (float)i), 0);
    assert_int_equal(snap_begin(plat_vfs_default(), s, f->root, "dev-1", f->name, sizeof(f->name), &info, err,
                                sizeof(err)), 0);
    assert_int_equal(snap_finish_all(plat_vfs_default(), f->root, "dev-1", &done, NULL, err, sizeof(err)), 0);
    ts_close(s);
    /* Accepts TCP (the kernel does, into the backlog), never speaks TLS. */
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    f->cfg.device_id = "dev-1";
    f->cfg.upload.enabled = 1;
    f->cfg.upload.mode = AGENT_UPLOAD_PUT;
    f->cfg.upload.host = "127.0.0.1";
    f->cfg.upload.port = f->port;
    f->cfg.upload.base_path = "";
    f->cfg.upload.prefix = "p";
    f->cfg.upload.insecure = 1;
    f->cfg.upload.connect_timeout_ms = LONG_MS;
    f->cfg.upload.io_timeout_ms = LONG_MS;
    f->cfg.upload.response_timeout_ms = LONG_MS;
    f->cfg.upload.retry_initial_ms = 1000;
    f->cfg.upload.retry_max_ms = 1000;
    assert_non_null(f->u = upload_new(&f->cfg, plat_vfs_default(), f->root, err, sizeof(err)));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    upload_free(f->u);
    close(f->lfd);
    tu_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

static uint64_t now_ms(void)
{
    return plat_mono_ns() / 1000000;
}

/* Waits until the worker's current upload is (want = 1) or is not (0) name. */
static void wait_current(uploader *u, const char *name, int want)
{
    upload_counters c;
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        upload_counters_get(u, &c);
        if ((strcmp(c.current, name) == 0) == want)
            return;
        if (now_ms() > end)
            fail_msg("the worker's current upload is '%s' (waited for %s'%s')", c.current,
                     want ? "" : "not ", name);
        usleep(2000);
    }
}

static atomic_int del_calls, status_answered_during_del;
static uploader *del_u;

static void *read_status(void *arg)
{
    upload_counters c;
    (void)arg;
    upload_counters_get(del_u, &c);
    atomic_store(&status_answered_during_del, 1);
    return NULL;
}

/* The retention delete: while it runs, the main thread's status read
 * (another thread here) must not wait for it. */
static int del(plat_vfs *vfs, const char *root, const char *name)
{
    pthread_t t;
    uint64_t end = now_ms() + WAIT_MS;
    atomic_fetch_add(&del_calls, 1);
    assert_int_equal(pthread_create(&t, NULL, read_status, NULL), 0);
    while (!atomic_load(&status_answered_during_del) && now_ms() < end)
        usleep(1000);
    int rc = snap_delete(vfs, root, name);
    pthread_join(t, NULL);
    return rc;
}

static void test_delete_of_the_snapshot_being_uploaded_is_busy_then_done(void **state)
{
    fx *f = *state;
    snap_info si;
    uint64_t t0;
    atomic_store(&del_calls, 0);
    atomic_store(&status_answered_during_del, 0);
    del_u = f->u;
    assert_int_equal(upload_start(f->u), 0);
    wait_current(f->u, f->name, 1); /* stuck in the handshake for LONG_MS */
    t0 = now_ms();
    assert_int_equal(upload_delete(f->u, f->name, del), -EBUSY);
    assert_true(now_ms() - t0 < WAIT_MS);
    assert_int_equal(atomic_load(&del_calls), 0);
    wait_current(f->u, f->name, 0); /* the cancel ended the upload */
    assert_int_equal(snap_read(plat_vfs_default(), f->root, f->name, &si), 0);
    assert_int_equal(si.state, SNAP_SEALED);
    assert_string_equal(si.error, "");
    /* The worker keeps off it now; the retry deletes it, without the lock. */
    assert_int_equal(upload_delete(f->u, f->name, del), 0);
    assert_int_equal(atomic_load(&del_calls), 1);
    assert_true(atomic_load(&status_answered_during_del));
    assert_int_equal(snap_read(plat_vfs_default(), f->root, f->name, &si), -ENOENT);
    upload_stop(f->u);
    assert_int_equal(snap_read(plat_vfs_default(), f->root, f->name, &si), -ENOENT); /* never written again */
}

static void test_stop_ends_an_upload_stuck_in_the_handshake(void **state)
{
    fx *f = *state;
    upload_counters c;
    snap_info si;
    assert_int_equal(upload_start(f->u), 0);
    wait_current(f->u, f->name, 1);
    upload_stop(f->u); /* returns only once the worker has let go */
    upload_counters_get(f->u, &c);
    assert_string_equal(c.current, "");
    assert_int_equal(c.retries + c.failed + c.uploaded, 0);
    assert_int_equal(snap_read(plat_vfs_default(), f->root, f->name, &si), 0);
    assert_int_equal(si.state, SNAP_SEALED);
    assert_int_equal(si.attempts, 1);
    assert_string_equal(si.error, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delete_of_the_snapshot_being_uploaded_is_busy_then_done,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_ends_an_upload_stuck_in_the_handshake, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
