/*
 * dryrun.c -- dryRunScenario, the seed's end-to-end walk through the engine:
 * two tensors (keys 101 and 202) into the WAL as one batch, a flush to
 * sst_000000.sst, a reopen that replays the store from disk, and the
 * summaries of what came back. Used by `embeddb --tensor-dryrun` and as a
 * smoke test; it only touches the directory it is given.
 */
#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FRAME_DIM 32
#define IMU_ROWS 4
#define IMU_COLS 3

static void say(ts_line_fn out, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(ts_line_fn out, void *ctx, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    out(ctx, line);
}

int ts_dry_run(const char *dir, struct plat_vfs *vfs, ts_line_fn out, void *ctx)
{
    static float frame[FRAME_DIM * FRAME_DIM];
    static float imu[IMU_ROWS * IMU_COLS];
    uint8_t k101[TS_KEY_U64_LEN], k202[TS_KEY_U64_LEN];
    char err[512], sst_name[64], line[256];
    ts_store *s = NULL;
    ts_options o;
    ts_stats st;
    uint64_t n = 0;
    int rc;
    for (size_t i = 0; i < FRAME_DIM * FRAME_DIM; i++)
        frame[i] = 0.25f;
    for (size_t i = 0; i < IMU_ROWS * IMU_COLS; i++)
        imu[i] = (float)i * 0.5f - 1.0f;
    ts_key_from_u64(101, k101);
    ts_key_from_u64(202, k202);
    ts_tensor a = {.key = k101, .key_len = 8, .name = "camera_frame", .dtype = TS_F32, .ndim = 2,
                   .shape = {FRAME_DIM, FRAME_DIM}, .data = frame, .data_len = sizeof(frame)};
    ts_tensor b = {.key = k202, .key_len = 8, .name = "imu_window", .dtype = TS_F32, .ndim = 2,
                   .shape = {IMU_ROWS, IMU_COLS}, .data = imu, .data_len = sizeof(imu)};
    const ts_tensor *batch[] = {&a, &b};

    ts_options_init(&o);
    o.create_if_missing = 1;
    o.vfs = vfs;
    if ((rc = ts_open(dir, &o, &s, err, sizeof(err)))) {
        say(out, ctx, "error: %s", err);
        goto out;
    }
    say(out, ctx, "store %s opened", dir);
    ts_stats before;
    ts_get_stats(s, &before);
    if ((rc = ts_save_batch(s, batch, 2))) {
        say(out, ctx, "error: %s", ts_errmsg(s));
        goto out;
    }
    for (size_t i = 0; i < 2; i++) {
        const ts_tensor *t = batch[i];
        say(out, ctx, "WAL record key=%d %s %s %" PRIu64 "x%" PRIu64 " (%zu bytes)",
            i ? 202 : 101, t->name, ts_dtype_name(t->dtype), t->shape[0], t->shape[1], t->data_len);
    }
    ts_get_stats(s, &st);
    say(out, ctx, "WAL batch committed: %" PRIu64 " fdatasync, %" PRIu64 " bytes written",
        st.fsyncs - before.fsyncs, st.bytes_written - before.bytes_written);
    if ((rc = ts_flush(s, sst_name, sizeof(sst_name), &n))) {
        say(out, ctx, "error: %s", ts_errmsg(s));
        goto out;
    }
    say(out, ctx, "flushed %" PRIu64 " to %s", n, sst_name);
    ts_close(s);
    s = NULL;

    if ((rc = ts_open(dir, &o, &s, err, sizeof(err)))) {
        say(out, ctx, "error: %s", err);
        goto out;
    }
    ts_get_stats(s, &st);
    say(out, ctx, "replay: reopened with %" PRIu64 " SST(s), %" PRIu64 " tensor(s)", st.n_sst,
        st.n_entries);
    for (size_t i = 0; i < 2; i++) {
        ts_tensor *t = NULL;
        if ((rc = ts_load(s, batch[i]->key, 8, &t))) {
            say(out, ctx, "error: %s", ts_errmsg(s));
            goto out;
        }
        if (t->data_len != batch[i]->data_len || memcmp(t->data, batch[i]->data, t->data_len)) {
            rc = TS_ECORRUPT;
            say(out, ctx, "error: key %d came back different", i ? 202 : 101);
            ts_tensor_free(t);
            goto out;
        }
        ts_summarize(t, 2, line, sizeof(line));
        say(out, ctx, "%s", line);
        ts_tensor_free(t);
    }
out:
    ts_close(s);
    return rc;
}
