/*
 * cmd_inspect.c -- the inspection commands: ls, get, preview, latest, stats,
 * verify.
 *
 * They open stores read-only (no lock, no recovery writes), so they can run
 * beside the daemon that is writing the store and never change it; what they
 * see is the store as of their open. They do not repair anything: verify
 * reports damage, it does not salvage.
 */
#include "cli.h"

#include "embeddb/agent_status.h"
#include "embeddb/plat.h"

#include "cli_args.h"
#include "cli_fmt.h"
#include "cli_key.h"
#include "cli_object.h"
#include "cli_store.h"
#include "cli_time.h"
#include "npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ls --------------------------------------------------------------- */

/* What DIR may also be, in every usage text that takes an object. */
#define OBJECT_NOTE                                                                       \
    "DIR may also be a snapshot object as uploaded (NAME.tar, NAME.tar.zst,\n"            \
    "NAME.tar.gz; the codec is told by its first bytes) or - for one on standard\n"       \
    "input: it is read once, front to back, never unpacked, and every checksum on\n"     \
    "the way is checked; a damaged object fails (exit 4).\n"

static const char ls_usage[] =
    "usage: embeddb ls DIR [PREFIX] [--from T] [--to T]\n"
    "Lists the newest version of every tensor in key order, one per line, tab\n"
    "separated after a header line: key, name, dtype, shape (32x32, or scalar),\n"
    "timestamp_ns, bytes. PREFIX limits the list to keys starting with it, in the\n"
    "key syntax of `embeddb --help` (cam/ for text keys, x:00 for raw bytes).\n"
    "--from/--to keep the keys whose newest version has a timestamp in [from, to)\n"
    "(either may be left out), reading only the index blocks and SSTs whose time\n"
    "range meets that window. A key whose newest version lies outside the window\n"
    "is not listed, even when an older version lies inside. T is one of:\n"
    "  1796051045000000000          ns since the Unix epoch\n"
    "  2026-11-30T15:04:05Z         RFC 3339; a fraction of up to 9 digits and an\n"
    "  2026-11-30T16:04:05.5+01:00  offset (+HH:MM, -HH:MM) instead of Z may be given\n"
    "  -10s  -5m  -2h  -1d          that long before now\n"
    "--from at or after --to is an empty window: the header alone, exit 0 (a note\n"
    "on stderr says so).\n" OBJECT_NOTE;

static int ls_line(void *ctx, const ts_entry *e)
{
    char key[CLI_KEY_TEXT_MAX], shape[CLI_FMT_SHAPE_MAX], name[CLI_FMT_NAME_MAX];
    const char *dt = ts_dtype_name(e->dtype);
    (void)ctx;
    cli_key_format(e->key, e->key_len, key, sizeof(key));
    cli_fmt_shape(e->ndim, e->shape, shape, sizeof(shape));
    cli_fmt_name(e->name, name, sizeof(name));
    printf("%s\t%s\t%s\t%s\t%" PRId64 "\t%" PRIu64 "\n", key, name, dt ? dt : "?", shape,
           e->timestamp_ns, e->data_len);
    return 0;
}

/* Parses --from/--to value s (NULL: absent, *out keeps its default). 0, or
 * TS_EINVAL after printing why. */
static int ls_time(const char *opt, const char *s, int64_t now_ns, int64_t *out)
{
    char why[256];
    int rc = 0;
    if (s && (rc = cli_time_parse(s, now_ns, out, why, sizeof(why))))
        fprintf(stderr, "embeddb: ls: %s '%s': %s\n", opt, s, why);
    return rc;
}

int cmd_ls(int argc, char **argv)
{
    uint8_t prefix[TS_MAX_KEY_LEN];
    const char *from_s = NULL, *to_s = NULL;
    const cli_opt opts[] = {{"--from", &from_s}, {"--to", &to_s}};
    int64_t now_ns = plat_now_ns(), from = INT64_MIN, to = INT64_MAX;
    size_t plen = 0;
    cli_args a;
    ts_store *s = NULL;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, opts, 2, 1, 2, &a) || a.help) {
        ec = cli_args_usage(ls_usage, a.help);
        goto out;
    }
    if (a.n_pos > 1 && cli_key_parse(a.pos[1], prefix, sizeof(prefix), &plen)) {
        fprintf(stderr, "embeddb: ls: bad prefix '%s'\n", a.pos[1]);
        goto out;
    }
    /* One "now" for both ends, so -1h..-0s is exactly an hour. */
    if (ls_time("--from", from_s, now_ns, &from) || ls_time("--to", to_s, now_ns, &to))
        goto out;
    if ((from_s || to_s) && from >= to)
        fprintf(stderr, "embeddb: ls: note: --from is not before --to: the window is empty\n");
    if (cli_object_is(a.pos[0])) {
        /* The lines come only once the whole object read clean. */
        printf("key\tname\tdtype\tshape\ttimestamp_ns\tbytes\n");
        if (!(rc = cli_object_scan(a.pos[0], prefix, plen, from_s || to_s, from, to, ls_line,
                                     NULL)))
            ec = CLI_EXIT_OK;
        goto out;
    }
    if ((rc = cli_store_open(a.pos[0], NULL, &s)))
        goto out;
    printf("key\tname\tdtype\tshape\ttimestamp_ns\tbytes\n");
    /* Without a window, exactly the prefix scan ls always made. */
    if (from_s || to_s)
        rc = ts_scan_time(s, prefix, plen, from, to, ls_line, NULL);
    else
        rc = ts_scan_prefix(s, prefix, plen, ls_line, NULL);
    if (rc)
        cli_store_report(a.pos[0], s, rc);
    else
        ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    return ec;
}

/* ---- get / preview ---------------------------------------------------- */

/* Loads key text `key` from the store in dir: the whole tensor when
 * preview_n is UINT64_MAX, else its first preview_n elements. Returns 0 with
 * *t the caller's, TS_EINVAL after a bad key (printed), or a store error
 * (printed). */
static int load_one(const char *dir, const char *key_text, uint64_t preview_n, ts_tensor **t)
{
    uint8_t key[TS_MAX_KEY_LEN];
    size_t klen = 0;
    ts_store *s = NULL;
    int rc;
    *t = NULL;
    if (cli_key_parse(key_text, key, sizeof(key), &klen) || !klen) {
        fprintf(stderr, "embeddb: bad key '%s' (keys: 101, s:TEXT, x:HEX or text)\n", key_text);
        rc = TS_EINVAL;
        goto out;
    }
    if (preview_n == UINT64_MAX && cli_object_is(dir)) {
        if ((rc = cli_object_load(dir, key, klen, t)) == TS_ENOTFOUND)
            fprintf(stderr, "embeddb: %s: no tensor under key %s\n", dir, key_text);
        goto out;
    }
    if ((rc = cli_store_open(dir, NULL, &s)))
        goto out;
    if (preview_n == UINT64_MAX)
        rc = ts_load(s, key, klen, t);
    else
        rc = ts_load_preview(s, key, klen, preview_n, t);
    if (rc == TS_ENOTFOUND)
        fprintf(stderr, "embeddb: %s: no tensor under key %s\n", dir, key_text);
    else if (rc)
        cli_store_report(dir, s, rc);
out:
    ts_close(s);
    return rc;
}

static const char get_usage[] =
    "usage: embeddb get DIR KEY -o FILE.npy\n"
    "Writes the newest version of KEY as a NumPy .npy file that numpy.load()\n"
    "reads back exactly (dtype, shape, values). The file is replaced atomically\n"
    "(written to FILE.npy.tmp, synced, renamed). -o - writes to stdout.\n"
    "bfloat16 has no NumPy dtype: it is written as uint16 holding the raw bits.\n"
    OBJECT_NOTE;

int cmd_get(int argc, char **argv)
{
    const char *path = NULL;
    const cli_opt opts[] = {{"-o", &path}};
    cli_args a;
    ts_tensor *t = NULL;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, opts, 1, 2, 2, &a) || a.help || !path) {
        if (!a.help && !path)
            fprintf(stderr, "embeddb: get: -o FILE.npy (or -o -) is required\n");
        ec = cli_args_usage(get_usage, a.help);
        goto out;
    }
    if ((rc = load_one(a.pos[0], a.pos[1], UINT64_MAX, &t)))
        goto out;
    if (t->dtype == TS_BF16)
        fprintf(stderr, "embeddb: note: bfloat16 has no NumPy dtype; written as uint16 ('<u2') "
                "holding the raw bits\n");
    if (!strcmp(path, "-"))
        rc = npy_write_stream(t, stdout);
    else
        rc = npy_write_file(t, path, NULL);
    if (rc) {
        fprintf(stderr, "embeddb: %s: %s\n", path, cli_store_strerror(rc));
        rc = TS_EIO;
        goto out;
    }
    if (strcmp(path, "-"))
        printf("wrote %s: %s %s, %zu bytes of data\n", path, t->name, ts_dtype_name(t->dtype),
               t->data_len);
    ec = CLI_EXIT_OK;
out:
    if (rc == TS_EINVAL)
        ec = CLI_EXIT_USAGE;
    else if (rc)
        ec = cli_store_exit(rc);
    ts_tensor_free(t);
    return ec;
}

static const char preview_usage[] =
    "usage: embeddb preview DIR KEY [-n N]\n"
    "Prints the tensor's summary line with its first N values (default 8),\n"
    "reading only the 4 KiB blocks that hold them: name (shape) -> v0, v1, ...\n";

/* Prints the seed's summary line of t with its first n values. 0 or
 * TS_ENOMEM (printed). */
static int print_summary(const ts_tensor *t, uint64_t n)
{
    char *line = NULL;
    int need = ts_summarize(t, (size_t)n, NULL, 0), rc = 0;
    if (need < 0 || !(line = malloc((size_t)need + 1))) {
        fprintf(stderr, "embeddb: out of memory\n");
        rc = TS_ENOMEM;
    } else {
        ts_summarize(t, (size_t)n, line, (size_t)need + 1);
        printf("%s\n", line);
    }
    free(line);
    return rc;
}

int cmd_preview(int argc, char **argv)
{
    const char *n_s = "8";
    const cli_opt opts[] = {{"-n", &n_s}};
    cli_args a;
    ts_tensor *t = NULL;
    uint64_t n = 0;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, opts, 1, 2, 2, &a) || a.help) {
        ec = cli_args_usage(preview_usage, a.help);
        goto out;
    }
    /* The bound keeps the printed line (about 14 bytes a value) under 2^31. */
    if (cli_args_u64("-n", n_s, 0, 10000000, &n))
        goto out;
    if ((rc = load_one(a.pos[0], a.pos[1], n, &t)) || (rc = print_summary(t, n)))
        goto out;
    ec = CLI_EXIT_OK;
out:
    if (rc == TS_EINVAL)
        ec = CLI_EXIT_USAGE;
    else if (rc)
        ec = cli_store_exit(rc);
    ts_tensor_free(t);
    return ec;
}

/* ---- latest ----------------------------------------------------------- */

static const char latest_usage[] =
    "usage: embeddb latest DIR PREFIX [-n N]\n"
    "Prints the most recently saved tensor (highest seq) among the keys starting\n"
    "with PREFIX -- for an agent's store, a topic's newest message -- as the\n"
    "summary line with its first N values (default 8), then its key, seq and\n"
    "timestamp (ns and RFC 3339 UTC):\n"
    "  sensors/imu0 (3) -> 0.1, 0.2, 0.3\n"
    "  key           sensors/imu0#00000000000000001234\n"
    "  seq           1234\n"
    "  timestamp_ns  1796051045000000000 (2026-11-30T15:04:05Z)\n"
    "PREFIX is in the key syntax of `embeddb --help`. Exit 3 when no key starts\n"
    "with it. It reads the MemTable, then SSTs newest first up to the first that\n"
    "holds the prefix.\n";

int cmd_latest(int argc, char **argv)
{
    uint8_t prefix[TS_MAX_KEY_LEN];
    char key[CLI_KEY_TEXT_MAX], when[CLI_TIME_TEXT_MAX];
    const char *n_s = "8";
    const cli_opt opts[] = {{"-n", &n_s}};
    size_t plen = 0;
    uint64_t n = 0;
    cli_args a;
    ts_store *s = NULL;
    ts_tensor *t = NULL;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, opts, 1, 2, 2, &a) || a.help) {
        ec = cli_args_usage(latest_usage, a.help);
        goto out;
    }
    if (cli_args_u64("-n", n_s, 0, 10000000, &n))
        goto out;
    if (cli_key_parse(a.pos[1], prefix, sizeof(prefix), &plen)) {
        fprintf(stderr, "embeddb: latest: bad prefix '%s'\n", a.pos[1]);
        goto out;
    }
    if ((rc = cli_store_open(a.pos[0], NULL, &s)))
        goto out;
    if ((rc = ts_latest(s, prefix, plen, &t))) {
        if (rc == TS_ENOTFOUND)
            fprintf(stderr, "embeddb: %s: no tensor under a key starting with %s\n", a.pos[0],
                    a.pos[1]);
        else
            cli_store_report(a.pos[0], s, rc);
        goto out;
    }
    if ((rc = print_summary(t, n)))
        goto out;
    cli_key_format(t->key, t->key_len, key, sizeof(key));
    cli_time_format(t->timestamp_ns, when, sizeof(when));
    printf("key           %s\n", key);
    printf("seq           %" PRIu64 "\n", t->seq);
    printf("timestamp_ns  %" PRId64 " (%s)\n", t->timestamp_ns, when);
    ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_tensor_free(t);
    ts_close(s);
    return ec;
}

/* ---- stats ------------------------------------------------------------ */

static const char stats_usage[] =
    "usage: embeddb stats DIR\n"
    "Prints what the store holds: distinct keys (counted by a scan), their bytes,\n"
    "and the engine's statistics (ts_stats). The counters \"since open\" describe\n"
    "this read-only open, so they are zero. When an embeddb-agent writes into the\n"
    "store, its live counters (agent.status) follow.\n";

typedef struct key_count {
    uint64_t keys, bytes;
} key_count;

static int count_key(void *ctx, const ts_entry *e)
{
    key_count *c = ctx;
    c->keys++;
    c->bytes += e->data_len;
    return 0;
}

static void print_status_line(void *ctx, const char *key, const char *value)
{
    (void)ctx;
    printf("  %-20s %s\n", key, value);
}

/* The agent's live counters when an embeddb-agent writes into this store
 * (agent.status, embeddb/agent_status.h). */
static void print_agent_status(const char *dir)
{
    char *text = NULL;
    size_t n = 0;
    if (agent_status_read(plat_vfs_default(), dir, &text, &n) == 0) {
        printf("\nembeddb-agent (agent.status):\n");
        agent_status_each(text, print_status_line, NULL);
    }
    free(text);
}

int cmd_stats(int argc, char **argv)
{
    cli_args a;
    key_count c = {0, 0};
    ts_stats st;
    ts_store *s = NULL;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, NULL, 0, 1, 1, &a) || a.help) {
        ec = cli_args_usage(stats_usage, a.help);
        goto out;
    }
    if ((rc = cli_store_open(a.pos[0], NULL, &s)))
        goto out;
    if ((rc = ts_scan_prefix(s, NULL, 0, count_key, &c))) {
        cli_store_report(a.pos[0], s, rc);
        goto out;
    }
    ts_get_stats(s, &st);
    printf("unique_keys         %" PRIu64 "\n", c.keys);
    printf("unique_key_bytes    %" PRIu64 " (tensor data of the newest versions)\n", c.bytes);
    printf("n_sst               %" PRIu64 "\n", st.n_sst);
    printf("n_entries           %" PRIu64 " (index entries; a key in two files counts twice)\n",
           st.n_entries);
    printf("memtable_entries    %" PRIu64 "\n", st.memtable_entries);
    printf("memtable_bytes      %" PRIu64 "\n", st.memtable_bytes);
    printf("disk_bytes          %" PRIu64 "\n", st.disk_bytes);
    printf("next_seq            %" PRIu64 "\n", st.next_seq);
    printf("recovery_cut_bytes  %" PRIu64 " (torn WAL tail this open would cut)\n",
           st.recovery_cut_bytes);
    printf("since open: batches %" PRIu64 ", tensors_saved %" PRIu64 ", payload_bytes %" PRIu64
           ", bytes_written %" PRIu64 ", fsyncs %" PRIu64 ", flushes %" PRIu64 "\n",
           st.batches, st.tensors_saved, st.payload_bytes, st.bytes_written, st.fsyncs,
           st.flushes);
    print_agent_status(a.pos[0]);
    ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    return ec;
}

/* ---- verify ----------------------------------------------------------- */

static const char verify_usage[] =
    "usage: embeddb verify DIR\n"
    "Reads every record of every live file (the SSTs and the WAL) and checks\n"
    "every checksum and index entry. Prints each damaged item with its file and\n"
    "offset. Exit 0 when clean, 4 when damage was found (including damage that\n"
    "stops the store from opening), 2 on other errors. It repairs nothing.\n"
    OBJECT_NOTE
    "On an object it also checks the tar and the compressed stream, that the SSTs\n"
    "are the MANIFEST's and that every file matches MANIFEST.json (bytes, SHA-256);\n"
    "it goes on past a damaged SST to report the others.\n";

static void print_damage(void *ctx, const char *msg)
{
    (void)ctx;
    printf("damaged: %s\n", msg);
}

int cmd_verify(int argc, char **argv)
{
    cli_args a;
    uint64_t bad = 0;
    char err[1024];
    ts_options o;
    ts_stats st;
    ts_store *s = NULL;
    int ec = CLI_EXIT_USAGE, rc = 0;
    if (cli_args_parse(argc, argv, NULL, 0, 1, 1, &a) || a.help) {
        ec = cli_args_usage(verify_usage, a.help);
        goto out;
    }
    if (cli_object_is(a.pos[0])) {
        if (!(rc = cli_object_verify(a.pos[0])))
            ec = CLI_EXIT_OK;
        goto out;
    }
    ts_options_init(&o);
    o.read_only = 1;
    err[0] = 0;
    /* Damage in the MANIFEST, an SST footer or the middle of the WAL stops
     * the open itself: that is a verify finding, not a tool failure. */
    if ((rc = ts_open(a.pos[0], &o, &s, err, sizeof(err)))) {
        if (rc == TS_ECORRUPT)
            printf("damaged: %s\n1 damaged item found (the store cannot be opened)\n", err);
        else
            fprintf(stderr, "embeddb: %s: %s\n", a.pos[0], err[0] ? err : ts_strerror(rc));
        goto out;
    }
    rc = ts_verify(s, print_damage, NULL, &bad);
    ts_get_stats(s, &st);
    if (!rc)
        /* ts_verify reports no counts; the index entries are what it
         * followed, and it read every record of the n_sst + 1 files. */
        printf("ok: %" PRIu64 " files, %" PRIu64 " indexed records checked\n", st.n_sst + 1,
               st.n_entries);
    else if (rc == TS_ECORRUPT)
        printf("%" PRIu64 " damaged item%s found\n", bad, bad == 1 ? "" : "s");
    else
        cli_store_report(a.pos[0], s, rc);
    ec = CLI_EXIT_OK;
out:
    if (rc)
        ec = cli_store_exit(rc);
    ts_close(s);
    return ec;
}
