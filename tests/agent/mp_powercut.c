/*
 * mp_powercut.c -- a driver for the power-cut test of multipart uploads
 * (tests/integration/test_multipart_upload.py): runs the upload worker
 * (agent/upload.c) over the fault-injecting vfs (plat_fault.h) on the
 * snapshots under ROOT, with the power cut right before the NTH mutating
 * file call (0: never), then "reboots" -- the disk is what a real power cut
 * could leave, a new worker on the same files -- and uploads until every
 * snapshot is uploaded.
 *
 *   mp_powercut ROOT SHADOW NTH HOST PORT CA SECRET PREFIX PART_SIZE
 *
 * S3 mode, region us-east-1, bucket snaps, access key S3RVER, path
 * addressing, retries after 50..200 ms. stdout: "crashed=0|1" (the cut came
 * before the first worker had uploaded everything) and "mutations=N" (the
 * mutating calls of the first worker: with NTH 0, the range of crash
 * points). Exit 0 when everything was uploaded in the end, 1 otherwise.
 *
 * The worker runs on its own thread and the fault vfs is not thread-safe,
 * so the main thread never calls the vfs while a worker runs: it watches
 * the worker's counters (a crash fails every later call, so the attempt
 * fails and is counted) and reads the vfs only after upload_stop.
 */
#include "config.h"
#include "log.h"
#include "upload.h"

#include "embeddb/plat.h"
#include "embeddb/plat_fault.h"
#include "embeddb/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 60000

/* Snapshots under root not yet uploaded (read through the default vfs,
 * after the worker stopped). */
static size_t pending(const char *root)
{
    snap_info *v = NULL;
    size_t n = 0, left = 0;
    if (snap_list(plat_vfs_default(), root, &v, &n, NULL, 0))
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        left += v[i].state != SNAP_UPLOADED;
    free(v);
    return left;
}

/* Runs a worker until `want` uploads or (stop_on_failure) any failed
 * attempt, or WAIT_MS. */
static void run(agent_config *cfg, plat_vfs *vfs, const char *root, uint64_t want,
                int stop_on_failure)
{
    char err[1024];
    upload_counters c;
    uploader *u = upload_new(cfg, vfs, root, err, sizeof(err));
    uint64_t end = plat_mono_ms() + WAIT_MS;
    if (!u || upload_start(u)) {
        fprintf(stderr, "mp_powercut: %s\n", u ? "thread" : err);
        exit(1);
    }
    do {
        usleep(5000);
        upload_counters_get(u, &c);
    } while (c.uploaded < want && !(stop_on_failure && (c.retries || c.failed)) &&
             plat_mono_ms() < end);
    upload_free(u);
}

int main(int argc, char **argv)
{
    agent_config cfg;
    if (argc != 10) {
        fprintf(stderr, "usage: mp_powercut ROOT SHADOW NTH HOST PORT CA SECRET PREFIX "
                        "PART_SIZE\n");
        return 2;
    }
    const char *root = argv[1];
    memset(&cfg, 0, sizeof(cfg));
    cfg.device_id = "itest-dev";
    cfg.upload.enabled = 1;
    cfg.upload.mode = AGENT_UPLOAD_S3;
    cfg.upload.host = argv[4];
    cfg.upload.port = atoi(argv[5]);
    cfg.upload.ca_file = argv[6];
    cfg.upload.secret = argv[7];
    cfg.upload.prefix = argv[8];
    cfg.upload.part_size = strtoull(argv[9], NULL, 10);
    cfg.upload.base_path = "";
    cfg.upload.region = "us-east-1";
    cfg.upload.bucket = "snaps";
    cfg.upload.access_key = "S3RVER";
    cfg.upload.connect_timeout_ms = 5000;
    cfg.upload.io_timeout_ms = 5000;
    cfg.upload.response_timeout_ms = 5000;
    cfg.upload.retry_initial_ms = 50;
    cfg.upload.retry_max_ms = 200;
    agent_log_set_level(LOG_LEVEL_WARNING);
    size_t want = pending(root);
    plat_vfs *fv = plat_fault_new(plat_vfs_default(), argv[2], 1);
    if (!fv || want == (size_t)-1)
        return 1;
    plat_fault_crash_at(fv, (unsigned)strtoul(argv[3], NULL, 10), 1);
    run(&cfg, fv, root, want, 1);
    int crashed = plat_fault_crashed(fv);
    printf("crashed=%d\nmutations=%lu\n", crashed, plat_fault_mutations(fv));
    /* Reboot: the disk as the cut left it; a new worker on it. */
    plat_fault_crash_at(fv, 0, 0);
    plat_fault_revive(fv);
    run(&cfg, fv, root, pending(root), 0);
    plat_fault_free(fv);
    return pending(root) ? 1 : 0;
}
