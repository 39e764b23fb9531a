/*
 * cmd_demo.c -- the seed's demo modes: --tensor-dryrun, --tensor-train and
 * --tensor-ingest. They drive the engine the way an application would and
 * print what happened.
 *
 * They are not tests (tests/ checks their output) and not benchmarks
 * (bench.c): nothing here is timed. The CSV format --tensor-ingest reads is
 * defined in csv_ingest.h.
 */
#include "cli.h"

#include "cli_args.h"
#include "cli_key.h"
#include "cli_store.h"
#include "csv_ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DIR "./embeddb-data"

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

/* Prints "flushed N to sst_NNNNNN.sst" the way the seed does. */
static int flush_and_say(ts_store *s, const char *dir)
{
    char sst[64];
    uint64_t n = 0;
    int rc = ts_flush(s, sst, sizeof(sst), &n);
    if (rc)
        cli_store_report(dir, s, rc);
    else if (n)
        printf("flushed %" PRIu64 " to %s\n", n, sst);
    else
        printf("nothing to flush\n");
    return rc;
}

/* ---- --tensor-dryrun -------------------------------------------------- */

static const char dryrun_usage[] =
    "usage: embeddb --tensor-dryrun [DIR]\n"
    "The seed's dry run: saves tensors 101 (camera_frame, 32x32 float32) and 202\n"
    "(imu_window, 4x3) in one batch to the WAL, flushes them to sst_000000.sst,\n"
    "reopens the store (replaying it from disk) and prints both summaries.\n"
    "Runs in a fresh temporary directory, removed afterwards, unless DIR (empty or\n"
    "not yet existing) is given.\n";

int cmd_dryrun(int argc, char **argv)
{
    cli_args a;
    char *tmp = NULL;
    int ec = CLI_EXIT_USAGE, rc;
    if (cli_args_parse(argc, argv, NULL, 0, 0, 1, &a) || a.help) {
        ec = cli_args_usage(dryrun_usage, a.help);
        goto out;
    }
    if (!a.n_pos && cli_store_scratch(NULL, "dryrun", &tmp)) {
        ec = CLI_EXIT_STORE;
        goto out;
    }
    rc = ts_dry_run(a.n_pos ? a.pos[0] : tmp, NULL, print_line, NULL);
    ec = cli_store_exit(rc);
out:
    cli_store_rmtree(tmp);
    free(tmp);
    return ec;
}

/* ---- --tensor-train --------------------------------------------------- */

enum { TRAIN_IN = 8, TRAIN_OUT = 4, TRAIN_SAMPLES = 64 };
#define TRAIN_LR 0.3
#define TRAIN_KEY_BASE 1000

static const char train_usage[] =
    "usage: embeddb --tensor-train [DIR] [--epochs N]\n"
    "Trains a dense layer (8 inputs -> 4 outputs, y = xW + b) by gradient descent\n"
    "on synthetic data from a fixed-seed generator, and checkpoints W and b after\n"
    "every epoch with one ts_save_batch: epoch E saves W (dense_w, 8x4 float32)\n"
    "under key 1000+2E and b (dense_b, 4) under 1001+2E. At the end it flushes to\n"
    "an SST, loads the last checkpoint back and prints its summaries.\n"
    "N defaults to 20 (1..100000); DIR to " DEFAULT_DIR ".\n";

/* The synthetic regression problem: y = x W_true + b_true + noise. */
typedef struct train_data {
    float x[TRAIN_SAMPLES][TRAIN_IN];
    float y[TRAIN_SAMPLES][TRAIN_OUT];
} train_data;

/* xorshift64: fixed seed, so every run trains on the same numbers. */
static double frand(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (double)(*state >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static void train_data_make(train_data *d)
{
    uint64_t rng = 0x2545f4914f6cdd1dull;
    float w_true[TRAIN_IN][TRAIN_OUT], b_true[TRAIN_OUT];
    for (int i = 0; i < TRAIN_IN; i++)
        for (int j = 0; j < TRAIN_OUT; j++)
            w_true[i][j] = (float)frand(&rng);
    for (int j = 0; j < TRAIN_OUT; j++)
        b_true[j] = (float)frand(&rng);
    for (int s = 0; s < TRAIN_SAMPLES; s++) {
        for (int i = 0; i < TRAIN_IN; i++)
            d->x[s][i] = (float)frand(&rng);
        for (int j = 0; j < TRAIN_OUT; j++) {
            double v = b_true[j] + 0.01 * frand(&rng);
            for (int i = 0; i < TRAIN_IN; i++)
                v += d->x[s][i] * w_true[i][j];
            d->y[s][j] = (float)v;
        }
    }
}

/* One epoch of full-batch gradient descent on the mean squared error.
 * Returns the loss before the step. */
static double train_epoch(const train_data *d, float w[TRAIN_IN][TRAIN_OUT], float b[TRAIN_OUT])
{
    double gw[TRAIN_IN][TRAIN_OUT] = {{0}}, gb[TRAIN_OUT] = {0}, loss = 0;
    for (int s = 0; s < TRAIN_SAMPLES; s++) {
        for (int j = 0; j < TRAIN_OUT; j++) {
            double p = b[j], e;
            for (int i = 0; i < TRAIN_IN; i++)
                p += d->x[s][i] * w[i][j];
            e = p - d->y[s][j];
            loss += e * e;
            gb[j] += 2 * e / TRAIN_SAMPLES;
            for (int i = 0; i < TRAIN_IN; i++)
                gw[i][j] += 2 * e * d->x[s][i] / TRAIN_SAMPLES;
        }
    }
    for (int j = 0; j < TRAIN_OUT; j++) {
        b[j] -= (float)(TRAIN_LR * gb[j]);
        for (int i = 0; i < TRAIN_IN; i++)
            w[i][j] -= (float)(TRAIN_LR * gw[i][j]);
    }
    return loss / (TRAIN_SAMPLES * TRAIN_OUT);
}

/* Loads keys kw and kb back and prints their summaries. */
static int train_show(ts_store *s, const char *dir, const uint8_t *kw, const uint8_t *kb)
{
    const uint8_t *keys[2] = {kw, kb};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        ts_tensor *t = NULL;
        char line[256];
        if ((rc = ts_load(s, keys[k], TS_KEY_U64_LEN, &t))) {
            cli_store_report(dir, s, rc);
            break;
        }
        ts_summarize(t, 4, line, sizeof(line));
        printf("%s\n", line);
        ts_tensor_free(t);
    }
    return rc;
}

int cmd_train(int argc, char **argv)
{
    const char *epochs_s = "20";
    const cli_opt opts[] = {{"--epochs", &epochs_s}};
    cli_args a;
    train_data *d = NULL;
    float w[TRAIN_IN][TRAIN_OUT] = {{0}}, b[TRAIN_OUT] = {0};
    uint8_t kw[TS_KEY_U64_LEN], kb[TS_KEY_U64_LEN];
    uint64_t epochs = 0;
    ts_store *s = NULL;
    ts_options o;
    const char *dir;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, opts, 1, 0, 1, &a) || a.help) {
        ec = cli_args_usage(train_usage, a.help);
        goto out;
    }
    if (cli_args_u64("--epochs", epochs_s, 1, 100000, &epochs))
        goto out;
    dir = a.n_pos ? a.pos[0] : DEFAULT_DIR;
    ec = CLI_EXIT_STORE;
    if (!(d = malloc(sizeof(*d)))) {
        fprintf(stderr, "embeddb: out of memory\n");
        goto out;
    }
    train_data_make(d);
    ts_options_init(&o);
    o.create_if_missing = 1;
    if ((rc = cli_store_open(dir, &o, &s)))
        goto out;
    for (uint64_t e = 1; e <= epochs; e++) {
        ts_tensor tw = {.key = kw, .key_len = TS_KEY_U64_LEN, .name = "dense_w",
                        .dtype = TS_F32, .ndim = 2, .shape = {TRAIN_IN, TRAIN_OUT},
                        .data = w, .data_len = sizeof(w)};
        ts_tensor tb = {.key = kb, .key_len = TS_KEY_U64_LEN, .name = "dense_b",
                        .dtype = TS_F32, .ndim = 1, .shape = {TRAIN_OUT},
                        .data = b, .data_len = sizeof(b)};
        const ts_tensor *batch[2] = {&tw, &tb};
        double loss = train_epoch(d, w, b);
        ts_key_from_u64(TRAIN_KEY_BASE + 2 * e, kw);
        ts_key_from_u64(TRAIN_KEY_BASE + 2 * e + 1, kb);
        if ((rc = ts_save_batch(s, batch, 2))) {
            cli_store_report(dir, s, rc);
            goto out;
        }
        printf("epoch %" PRIu64 " loss %.6f (checkpoint keys %" PRIu64 ", %" PRIu64 ")\n", e,
               loss, TRAIN_KEY_BASE + 2 * e, TRAIN_KEY_BASE + 2 * e + 1);
    }
    if ((rc = flush_and_say(s, dir)))
        goto out;
    printf("last checkpoint (epoch %" PRIu64 ") loaded back:\n", epochs);
    if (!(rc = train_show(s, dir, kw, kb)))
        ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    free(d);
    return ec;
}

/* ---- --tensor-ingest -------------------------------------------------- */

static const char ingest_usage[] =
    "usage: embeddb --tensor-ingest FILE [DIR]\n"
    "Ingests a CSV tensor payload into the store DIR (default " DEFAULT_DIR ",\n"
    "created if missing): every line is checked first, then all tensors are saved\n"
    "in ONE atomic ts_save_batch and flushed to an SST. Nothing is saved unless\n"
    "every line is valid; a bad line is reported as FILE:LINE: reason.\n"
    "\n"
    "One tensor per line:  key,name,dtype,shape,v0,v1,...\n"
    "  key    101 (numeric), s:TEXT, x:HEX or text (see embeddb --help)\n"
    "  name   up to 1024 bytes, no commas\n"
    "  dtype  NumPy or short name: float32/f32, float16, bfloat16, float64,\n"
    "         int8..int64, uint8..uint64, bool, complex64, complex128\n"
    "  shape  dimensions joined by x (32x32, 4, 2x3x4); scalar or empty = 0-d\n"
    "  values product(shape) numbers in C order; bool: 0/1/true/false;\n"
    "         complex: 1.5, 2j or (1.5-2j)\n"
    "'#' starts a comment line; blank lines are ignored. Example:\n"
    "  # key,name,dtype,shape,values...\n"
    "  101,camera_frame,float32,2x2,0.25,0.25,0.25,0.25\n"
    "  s:imu/0,imu_window,int16,3,1,-2,3\n"
    "Limits: 64 MiB per line, 256 MiB of tensor data per file.\n"
    "python3 examples/python_demo/dl_model_demo.py writes such a file.\n";

/* Prints "saved KEY: SUMMARY" for each tensor and the totals. */
static void ingest_say(const csv_payload *p, const char *file, const char *dir, const ts_stats *st0,
                       const ts_stats *st1)
{
    for (size_t i = 0; i < p->n; i++) {
        char key[CLI_KEY_TEXT_MAX], sum[512];
        cli_key_format(p->v[i].t.key, p->v[i].t.key_len, key, sizeof(key));
        ts_summarize(&p->v[i].t, 4, sum, sizeof(sum));
        printf("saved %s: %s\n", key, sum);
    }
    printf("ingested %zu tensor%s (%" PRIu64 " bytes of tensor data) from %s into %s in one "
           "batch: %" PRIu64 " fdatasync, %" PRIu64 " bytes written\n",
           p->n, p->n == 1 ? "" : "s", p->data_bytes, file, dir, st1->fsyncs - st0->fsyncs,
           st1->bytes_written - st0->bytes_written);
}

int cmd_ingest(int argc, char **argv)
{
    cli_args a;
    csv_payload p;
    const ts_tensor **batch = NULL;
    const char *file, *dir;
    char err[1024];
    FILE *fp = NULL;
    ts_store *s = NULL;
    ts_options o;
    ts_stats st0, st1;
    int ec = CLI_EXIT_USAGE, rc = 0, prc;
    memset(&p, 0, sizeof(p));
    if (cli_args_parse(argc, argv, NULL, 0, 1, 2, &a) || a.help) {
        ec = cli_args_usage(ingest_usage, a.help);
        goto out;
    }
    file = a.pos[0];
    dir = a.n_pos > 1 ? a.pos[1] : DEFAULT_DIR;
    if (!(fp = fopen(file, "r"))) {
        if (errno == ENOENT)
            fprintf(stderr, "embeddb: no such file: %s (generate one with: python3 "
                    "examples/python_demo/dl_model_demo.py)\n", file);
        else
            fprintf(stderr, "embeddb: %s: %s\n", file, strerror(errno));
        goto out;
    }
    if ((prc = csv_read(fp, file, &p, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        ec = prc == TS_EIO || prc == TS_ENOMEM ? CLI_EXIT_STORE : CLI_EXIT_USAGE;
        goto out;
    }
    ec = CLI_EXIT_STORE;
    if (!(batch = malloc(p.n * sizeof(*batch)))) {
        fprintf(stderr, "embeddb: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < p.n; i++)
        batch[i] = &p.v[i].t;
    ts_options_init(&o);
    o.create_if_missing = 1;
    if ((rc = cli_store_open(dir, &o, &s)))
        goto out;
    ts_get_stats(s, &st0);
    if ((rc = ts_save_batch(s, batch, p.n))) {
        cli_store_report(dir, s, rc);
        goto out;
    }
    ts_get_stats(s, &st1);
    ingest_say(&p, file, dir, &st0, &st1);
    if (!(rc = flush_and_say(s, dir)))
        ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    if (fp)
        fclose(fp);
    free(batch);
    csv_free(&p);
    return ec;
}
