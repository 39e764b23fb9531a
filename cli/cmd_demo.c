/*
 * cmd_demo.c -- the seed's demo modes: --tensor-dryrun, --tensor-train and
 * --tensor-ingest. They drive the engine the way an application would and
 * print what happened; none of them is a test or a benchmark.
 *
 * The CSV tensor payload read by --tensor-ingest (and written by
 * examples/python_demo/dl_model_demo.py) has one tensor per line:
 *
 *     key,name,dtype,shape,v0,v1,...
 *
 * key    a CLI key (101, s:text, x:hex, or text; see `embeddb --help`)
 * name   the tensor's name (no commas)
 * dtype  a NumPy or short name: float32, f32, int16, uint8, bool, ...
 * shape  dimensions joined by 'x' (32x32, 4, 2x3x4); "scalar" or empty for 0-d
 * values decimal numbers in C order, exactly product(shape) of them
 *        (bool: 0/1/true/false; complex dtypes take the real part, imag 0)
 *
 * Lines starting with '#' and blank lines are ignored. Every line is parsed
 * and checked before anything is saved; all tensors go in one saveBatch.
 */
#define _GNU_SOURCE 1
#include "cli.h"

#include "cli_key.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_DIR "embeddb-data"

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

int cmd_dryrun(int argc, char **argv)
{
    char *tmp = NULL;
    const char *dir;
    if (cli_wants_help(argc, argv) || argc > 2) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb --tensor-dryrun [DIR]\n"
              "Saves tensors 101 (camera_frame 32x32) and 202 (imu_window 4x3) in one batch,\n"
              "flushes them to sst_000000.sst, reopens (replay) and summarizes both.\n"
              "Runs in a fresh temporary directory unless DIR (empty or new) is given.\n",
              help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    if (argc == 2) {
        dir = argv[1];
    } else {
        if (!(tmp = cli_scratch_dir("demo")))
            return EXIT_STORE;
        dir = tmp;
    }
    int rc = ts_dry_run(dir, NULL, print_line, NULL);
    if (tmp)
        cli_rmtree(tmp);
    free(tmp);
    return cli_exit_for(rc);
}

/* ---- --tensor-train --------------------------------------------------- */

enum { IN = 8, OUT = 4, SAMPLES = 64 };

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static double frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

int cmd_train(int argc, char **argv)
{
    const char *dir = DEFAULT_DIR;
    int epochs = 20;
    float x[SAMPLES][IN], y[SAMPLES][OUT], w[IN][OUT] = {{0}}, b[OUT] = {0};
    float w_true[IN][OUT], b_true[OUT];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
            epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || argv[i][0] == '-' ||
                   i > 1) {
            int help = !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
            fputs("usage: embeddb --tensor-train [DIR] [--epochs N]\n"
                  "Trains a dense layer (8 -> 4, y = xW + b) by gradient descent on synthetic\n"
                  "data; each epoch checkpoints W and b with one saveBatch (keys 1000+2e and\n"
                  "1001+2e). Flushes at the end, reloads the last checkpoint and summarizes it.\n"
                  "DIR defaults to ./" DEFAULT_DIR ".\n",
                  help ? stdout : stderr);
            return help ? EXIT_OK : EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (epochs < 1 || epochs > 100000) {
        fprintf(stderr, "embeddb: --epochs must be 1..100000\n");
        return EXIT_USAGE;
    }
    for (int i = 0; i < IN; i++)
        for (int j = 0; j < OUT; j++)
            w_true[i][j] = (float)frand();
    for (int j = 0; j < OUT; j++)
        b_true[j] = (float)frand();
    for (int s = 0; s < SAMPLES; s++) {
        for (int i = 0; i < IN; i++)
            x[s][i] = (float)frand();
        for (int j = 0; j < OUT; j++) {
            double v = b_true[j] + 0.01 * frand();
            for (int i = 0; i < IN; i++)
                v += x[s][i] * w_true[i][j];
            y[s][j] = (float)v;
        }
    }
    ts_store *st = cli_open(dir, 0, 1, 0, NULL);
    if (!st)
        return EXIT_STORE;
    int rc = 0;
    uint8_t kw[8], kb[8];
    for (int e = 0; e < epochs; e++) {
        double gw[IN][OUT] = {{0}}, gb[OUT] = {0}, loss = 0;
        for (int s = 0; s < SAMPLES; s++) {
            for (int j = 0; j < OUT; j++) {
                double p = b[j];
                for (int i = 0; i < IN; i++)
                    p += x[s][i] * w[i][j];
                double d = p - y[s][j];
                loss += d * d;
                gb[j] += 2 * d / SAMPLES;
                for (int i = 0; i < IN; i++)
                    gw[i][j] += 2 * d * x[s][i] / SAMPLES;
            }
        }
        loss /= SAMPLES * OUT;
        for (int j = 0; j < OUT; j++) {
            b[j] -= (float)(0.3 * gb[j]);
            for (int i = 0; i < IN; i++)
                w[i][j] -= (float)(0.3 * gw[i][j]);
        }
        ts_key_from_u64(1000 + 2 * (uint64_t)e, kw);
        ts_key_from_u64(1001 + 2 * (uint64_t)e, kb);
        ts_tensor tw = {.key = kw, .key_len = 8, .name = "dense_w", .dtype = TS_F32, .ndim = 2,
                        .shape = {IN, OUT}, .data = w, .data_len = sizeof(w)};
        ts_tensor tb = {.key = kb, .key_len = 8, .name = "dense_b", .dtype = TS_F32, .ndim = 1,
                        .shape = {OUT}, .data = b, .data_len = sizeof(b)};
        const ts_tensor *batch[] = {&tw, &tb};
        if ((rc = ts_save_batch(st, batch, 2))) {
            fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(st));
            goto out;
        }
        printf("epoch %d loss %.6f (checkpoint keys %" PRIu64 ",%" PRIu64 ")\n", e + 1, loss,
               1000 + 2 * (uint64_t)e, 1001 + 2 * (uint64_t)e);
    }
    char name[64];
    uint64_t n = 0;
    if ((rc = ts_flush(st, name, sizeof(name), &n))) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(st));
        goto out;
    }
    if (n)
        printf("flushed %" PRIu64 " to %s\n", n, name);
    for (int k = 0; k < 2; k++) {
        ts_tensor *t = NULL;
        char line[256];
        if ((rc = ts_load(st, k ? kb : kw, 8, &t))) {
            fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(st));
            goto out;
        }
        ts_summarize(t, 4, line, sizeof(line));
        printf("%s\n", line);
        ts_tensor_free(t);
    }
out:
    ts_close(st);
    return cli_exit_for(rc);
}

/* ---- --tensor-ingest -------------------------------------------------- */

typedef struct parsed {
    ts_tensor t;
    uint8_t key[TS_MAX_KEY_LEN];
    char *name;
    uint8_t *data;
} parsed;

/* Next comma-separated field of *s (NUL-terminates it), or NULL at end. */
static char *field(char **s)
{
    char *f = *s;
    if (!f)
        return NULL;
    char *c = strchr(f, ',');
    if (c) {
        *c = 0;
        *s = c + 1;
    } else {
        *s = NULL;
    }
    while (*f == ' ' || *f == '\t')
        f++;
    return f;
}

static int parse_line(char *line, parsed *p, const char **why)
{
    char *rest = line, *f;
    uint64_t numel = 1;
    size_t es;
    memset(p, 0, sizeof(*p));
    line[strcspn(line, "\r\n")] = 0;
    if (!(f = field(&rest)) || cli_key_parse(f, p->key, sizeof(p->key), &p->t.key_len) ||
        !p->t.key_len) {
        *why = "bad or missing key";
        return -1;
    }
    p->t.key = p->key;
    if (!(f = field(&rest))) {
        *why = "missing name";
        return -1;
    }
    p->name = strdup(f);
    p->t.name = p->name;
    if (!(f = field(&rest)) || ts_dtype_parse(f, &p->t.dtype)) {
        *why = "unknown dtype (use a NumPy name such as float32, int16, uint8, bool)";
        return -1;
    }
    if (!(f = field(&rest))) {
        *why = "missing shape";
        return -1;
    }
    if (*f && strcmp(f, "scalar")) {
        for (char *d = f;;) {
            char *end;
            if (p->t.ndim == TS_MAX_DIMS) {
                *why = "more than 8 dimensions";
                return -1;
            }
            errno = 0;
            unsigned long long v = strtoull(d, &end, 10);
            if (end == d || errno || (*end && *end != 'x') || *d == '-') {
                *why = "bad shape (expected e.g. 32x32)";
                return -1;
            }
            p->t.shape[p->t.ndim++] = v;
            if (v && numel > UINT64_MAX / v) {
                *why = "shape too large";
                return -1;
            }
            numel *= v;
            if (!*end)
                break;
            d = end + 1;
        }
    }
    es = ts_dtype_size(p->t.dtype);
    if (numel > (1ull << 31) / es) {
        *why = "tensor too large for a CSV payload";
        return -1;
    }
    p->data = malloc(numel * es + 1);
    if (!p->data) {
        *why = "out of memory";
        return -1;
    }
    for (uint64_t i = 0; i < numel; i++) {
        char *end;
        if (!(f = field(&rest)) || !*f) {
            *why = "fewer values than the shape needs";
            return -1;
        }
        double v;
        if (p->t.dtype == TS_BOOL && (!strcmp(f, "true") || !strcmp(f, "false"))) {
            v = f[0] == 't';
        } else {
            v = strtod(f, &end);
            while (*end == ' ' || *end == '\t')
                end++;
            if (end == f || *end) {
                *why = "value is not a number";
                return -1;
            }
        }
        int src = ts_dtype_set(p->t.dtype, p->data, (size_t)i, v);
        if (src) {
            *why = src == TS_EOVERFLOW ? "out of range for the dtype" : "not an integer";
            return -1;
        }
    }
    if (rest && *rest) {
        *why = "more values than the shape holds";
        return -1;
    }
    p->t.data = p->data;
    p->t.data_len = (size_t)(numel * es);
    return 0;
}

int cmd_ingest(int argc, char **argv)
{
    const char *dir = argc > 2 ? argv[2] : DEFAULT_DIR;
    parsed *ps = NULL;
    const ts_tensor **batch = NULL;
    size_t n = 0, cap = 0, lineno = 0, linecap = 0;
    char *line = NULL;
    FILE *fp = NULL;
    ts_store *st = NULL;
    int ec = EXIT_USAGE;
    if (cli_wants_help(argc, argv) || argc < 2 || argc > 3) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb --tensor-ingest FILE [DIR]\n"
              "Ingests a CSV tensor payload into DIR (default ./" DEFAULT_DIR ") as one\n"
              "atomic saveBatch, then flushes. One tensor per line:\n"
              "  key,name,dtype,shape,v0,v1,...\n"
              "e.g.  101,camera_frame,float32,2x2,0.25,0.25,0.25,0.25\n"
              "shape: dims joined by 'x', or 'scalar'; '#' lines are comments.\n"
              "Nothing is saved unless every line is valid.\n",
              help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    fp = fopen(argv[1], "r");
    if (!fp) {
        if (errno == ENOENT)
            fprintf(stderr, "embeddb: no such file: %s (generate one with: python3 "
                            "examples/python_demo/dl_model_demo.py)\n", argv[1]);
        else
            fprintf(stderr, "embeddb: %s: %s\n", argv[1], strerror(errno));
        return EXIT_USAGE;
    }
    while (getline(&line, &linecap, fp) > 0) {
        const char *why = NULL;
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\r' || !*s)
            continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            parsed *np = realloc(ps, nc * sizeof(*np));
            if (!np) {
                fprintf(stderr, "embeddb: out of memory\n");
                goto out;
            }
            ps = np;
            cap = nc;
        }
        if (parse_line(s, &ps[n], &why)) {
            fprintf(stderr, "%s:%zu: %s\n", argv[1], lineno, why);
            free(ps[n].name);
            free(ps[n].data);
            goto out;
        }
        if (ts_validate(&ps[n].t)) {
            fprintf(stderr, "%s:%zu: invalid tensor (key or name too long?)\n", argv[1], lineno);
            free(ps[n].name);
            free(ps[n].data);
            goto out;
        }
        ps[n].t.timestamp_ns = plat_now_ns();
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no tensors in the file\n", argv[1]);
        goto out;
    }
    batch = malloc(n * sizeof(*batch));
    if (!batch)
        goto out;
    for (size_t i = 0; i < n; i++)
        batch[i] = &ps[i].t;
    ec = EXIT_STORE;
    if (!(st = cli_open(dir, 0, 1, 0, NULL)))
        goto out;
    int rc = ts_save_batch(st, batch, n);
    char name[64];
    uint64_t flushed = 0;
    if (!rc)
        rc = ts_flush(st, name, sizeof(name), &flushed);
    if (rc) {
        fprintf(stderr, "embeddb: %s: %s\n", dir, ts_errmsg(st));
        ec = cli_exit_for(rc);
        goto out;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char sum[256], key[64];
        ts_summarize(&ps[i].t, 4, sum, sizeof(sum));
        cli_key_format(ps[i].t.key, ps[i].t.key_len, key, sizeof(key));
        printf("saved %s: %s\n", key, sum);
        bytes += ps[i].t.data_len;
    }
    printf("ingested %zu tensor(s), %" PRIu64 " bytes, in one batch; flushed %" PRIu64 " to %s\n",
           n, bytes, flushed, flushed ? name : "(nothing)");
    ec = EXIT_OK;
out:
    for (size_t i = 0; i < n; i++) {
        free(ps[i].name);
        free(ps[i].data);
    }
    free(ps);
    free(batch);
    free(line);
    if (fp)
        fclose(fp);
    ts_close(st);
    return ec;
}
