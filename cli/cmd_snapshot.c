/*
 * cmd_snapshot.c -- `embeddb snapshot`: seal a snapshot of a store now, list
 * a store's snapshots with their upload state, verify one against its
 * MANIFEST.json, and hand a failed one back to the uploader.
 *
 * Sealing needs the store's write lock. When embeddb-agent holds it, the
 * command asks the agent instead (SIGUSR1 to the pid in DIR/agent.status),
 * so a snapshot is never taken behind the writer's back. Listing and
 * verifying only read.
 */
#include "cli.h"

#include "cli_args.h"
#include "cli_store.h"
#include "embeddb/agent_status.h"
#include "embeddb/snapshot.h"

#include "embeddb/plat.h"
#include "embeddb/plat_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char snapshot_usage[] =
    "usage: embeddb snapshot DIR [--device-id ID]   seal a snapshot now\n"
    "       embeddb snapshot ls DIR                 list snapshots and their state\n"
    "       embeddb snapshot verify DIR NAME        check NAME's files against MANIFEST.json\n"
    "       embeddb snapshot retry DIR NAME         hand a failed snapshot back to the uploader\n"
    "\n"
    "DIR is a store directory; its snapshots live in DIR/snapshots/<device>-<seq>/,\n"
    "each itself a read-only store (embeddb ls/get/verify work on it).\n"
    "Sealing flushes the MemTable and moves every sealed SST into the new\n"
    "snapshot (hard links: no data is copied). When embeddb-agent is running on\n"
    "DIR it is asked to seal (SIGUSR1) and does so within a second.\n"
    "--device-id names the snapshot (default: the agent's, from DIR/agent.status,\n"
    "else \"embeddb\").\n"
    "States: sealed (waiting for upload), uploading, uploaded (confirmed by the\n"
    "server), failed (refused by the server; see the error; `retry` after fixing).\n";

/* The agent's device id and pid from one read of DIR/agent.status ("" when
 * absent). */
static void status_values(const char *dir, char *dev, size_t dev_len, char *pid, size_t pid_len)
{
    char *text = NULL;
    size_t n = 0;
    dev[0] = pid[0] = 0;
    if (agent_status_read(plat_vfs_default(), dir, &text, &n) == 0) {
        agent_status_get(text, "device_id", dev, dev_len);
        agent_status_get(text, "pid", pid, pid_len);
    }
    free(text);
}

static int seal_now(const char *dir, const char *device_id)
{
    char root[4096], err[1024], name[SNAP_NAME_MAX], pid[32], dev[128];
    ts_options o;
    ts_store *s = NULL;
    ts_checkpoint_info info;
    size_t n = 0;
    int ec = CLI_EXIT_STORE, rc, have_status = !device_id; /* read at most once */
    if (have_status) {
        status_values(dir, dev, sizeof(dev), pid, sizeof(pid));
        device_id = dev[0] ? dev : "embeddb";
    }
    if (!snap_device_id_ok(device_id)) {
        fprintf(stderr, "embeddb: snapshot: bad device id '%s' (1-64 of A-Z a-z 0-9 . _ -)\n",
                device_id);
        return CLI_EXIT_USAGE;
    }
    ts_options_init(&o);
    err[0] = 0;
    rc = ts_open(dir, &o, &s, err, sizeof(err));
    if (rc == TS_EBUSY) {
        if (!have_status)
            status_values(dir, dev, sizeof(dev), pid, sizeof(pid));
        int p = atoi(pid);
        if (p > 1 && (rc = plat_signal_usr1(p)) == 0) {
            printf("asked embeddb-agent (pid %d) to seal a snapshot of %s\n", p, dir);
            return CLI_EXIT_OK;
        }
        fprintf(stderr, "embeddb: %s: %s; could not ask its agent%s%s\n", dir, err,
                p > 1 ? ": " : " (no pid in agent.status)", p > 1 ? ts_strerror(rc) : "");
        return CLI_EXIT_STORE;
    }
    if (rc) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, err[0] ? err : ts_strerror(rc));
        return cli_store_exit(rc);
    }
    if ((rc = snap_root(dir, root, sizeof(root))) ||
        (rc = snap_recover(plat_vfs_default(), s, root, &n, err, sizeof(err))) ||
        (rc = snap_begin(plat_vfs_default(), s, root, device_id, name, sizeof(name), &info, err, sizeof(err)))) {
        if (rc == TS_ENOTFOUND) {
            printf("nothing to snapshot: %s holds no tensors\n", dir);
            ec = CLI_EXIT_OK;
        } else {
            fprintf(stderr, "embeddb: snapshot: %s\n", err);
        }
        goto out;
    }
    if ((rc = snap_finish_all(plat_vfs_default(), root, device_id, &n, NULL, err, sizeof(err)))) {
        fprintf(stderr, "embeddb: snapshot: sealing %s: %s (the data is safe; the agent "
                        "or the next `embeddb snapshot` finishes it)\n", name, err);
        goto out;
    }
    printf("sealed %s/%s: %" PRIu64 " SST file(s), %" PRIu64 " bytes, seq %" PRIu64 "..%" PRIu64
           "\n", root, name, info.n_files, info.bytes, info.min_seq, info.max_seq);
    ec = CLI_EXIT_OK;
out:
    ts_close(s);
    return ec;
}

static int list(const char *dir)
{
    char root[4096], when[32];
    snap_info *v = NULL;
    size_t n = 0;
    uint64_t pending = 0;
    int rc;
    if ((rc = snap_root(dir, root, sizeof(root))) || (rc = snap_list(plat_vfs_default(), root, &v, &n, &pending, 1))) {
        fprintf(stderr, "embeddb: snapshot ls: %s: %s\n", root, cli_store_strerror(rc));
        return CLI_EXIT_STORE;
    }
    printf("name\tstate\ttensors\tbytes\ttar_bytes\tcreated\tattempts\terror\n");
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)(v[i].created_ns / 1000000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\t%" PRIu64 "\t%s\n", v[i].name,
               snap_state_name(v[i].state), v[i].tensors, v[i].disk_bytes, v[i].tar_bytes, when,
               v[i].attempts, v[i].error[0] ? v[i].error : "-");
    }
    if (pending)
        printf("# %" PRIu64 " bytes in snapshots still being sealed\n", pending);
    free(v);
    return CLI_EXIT_OK;
}

static void print_bad(void *ctx, const char *msg)
{
    (void)ctx;
    printf("damaged: %s\n", msg);
}

static int verify(const char *dir, const char *name)
{
    char root[4096];
    uint64_t bad = 0;
    snap_info si;
    int rc;
    if ((rc = snap_root(dir, root, sizeof(root))) || (rc = snap_read(plat_vfs_default(), root, name, &si))) {
        fprintf(stderr, "embeddb: snapshot verify: %s/%s: %s\n", root, name,
                rc == -ENOENT ? "no such snapshot" : cli_store_strerror(rc));
        return rc == -ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_STORE;
    }
    rc = snap_verify(plat_vfs_default(), root, name, print_bad, NULL, &bad);
    if (rc == 0) {
        printf("ok: %s: every file matches MANIFEST.json\n", name);
        return CLI_EXIT_OK;
    }
    if (rc == TS_ECORRUPT) {
        printf("%" PRIu64 " damaged item%s found\n", bad, bad == 1 ? "" : "s");
        return CLI_EXIT_DAMAGED;
    }
    fprintf(stderr, "embeddb: snapshot verify: %s: %s\n", name, cli_store_strerror(rc));
    return CLI_EXIT_STORE;
}

static int retry(const char *dir, const char *name)
{
    char root[4096];
    snap_info si;
    int rc;
    if ((rc = snap_root(dir, root, sizeof(root))) ||
        (rc = snap_retry(plat_vfs_default(), root, name, &si))) {
        if (rc == -EINVAL)
            fprintf(stderr, "embeddb: snapshot retry: %s is %s, not failed\n", name,
                    snap_state_name(si.state));
        else
            fprintf(stderr, "embeddb: snapshot retry: %s/%s: %s\n", root, name,
                    rc == -ENOENT ? "no such snapshot" : cli_store_strerror(rc));
        return rc == -ENOENT ? CLI_EXIT_NOTFOUND : rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
    }
    if (si.state == SNAP_SEALING)
        printf("%s: handed back to be sealed again; the agent finishes and uploads it\n", name);
    else
        printf("%s: sealed again; the agent uploads it on its next pass\n", name);
    return CLI_EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
    const char *device_id = NULL;
    const cli_opt opts[] = {{"--device-id", &device_id}};
    cli_args a;
    if (cli_args_parse(argc, argv, opts, 1, 1, 3, &a) || a.help)
        return cli_args_usage(snapshot_usage, a.help);
    const char *sub = a.pos[0];
    if (!strcmp(sub, "ls") && a.n_pos == 2)
        return list(a.pos[1]);
    if (!strcmp(sub, "verify") && a.n_pos == 3)
        return verify(a.pos[1], a.pos[2]);
    if (!strcmp(sub, "retry") && a.n_pos == 3)
        return retry(a.pos[1], a.pos[2]);
    if (strcmp(sub, "ls") && strcmp(sub, "verify") && strcmp(sub, "retry") && a.n_pos == 1)
        return seal_now(sub, device_id);
    return cli_args_usage(snapshot_usage, 0);
}
