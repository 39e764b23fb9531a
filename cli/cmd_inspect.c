/*
 * cmd_inspect.c -- the read-only commands: ls, get, preview, stats, verify.
 * They open stores read-only so they can run beside the daemon that writes
 * them.
 */
#include "cli.h"

#include "cli_key.h"
#include "npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void shape_str(uint32_t ndim, const uint64_t *shape, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    if (ndim == 0)
        snprintf(out, cap, "scalar");
    for (uint32_t i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, i ? "x%" PRIu64 : "%" PRIu64, shape[i]);
}

static int ls_line(void *ctx, const ts_entry *e)
{
    char key[2 * TS_MAX_KEY_LEN + 8], shape[160];
    (*(uint64_t *)ctx)++;
    cli_key_format(e->key, e->key_len, key, sizeof(key));
    shape_str(e->ndim, e->shape, shape, sizeof(shape));
    printf("%s\t%s\t%s\t%s\t%" PRId64 "\t%" PRIu64 "\n", key, e->name, ts_dtype_name(e->dtype),
           shape, e->timestamp_ns, e->data_len);
    return 0;
}

int cmd_ls(int argc, char **argv)
{
    uint8_t prefix[TS_MAX_KEY_LEN];
    size_t plen = 0;
    uint64_t n = 0;
    if (cli_wants_help(argc, argv) || argc < 2 || argc > 3) {
        fputs("usage: embeddb ls DIR [PREFIX]\n"
              "Lists the newest version of every tensor (whose key starts with PREFIX) in\n"
              "key order: key, name, dtype, shape, timestamp_ns, bytes (tab separated).\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 || argc > 3 ? EXIT_USAGE : EXIT_OK;
    }
    if (argc == 3 && cli_key_parse(argv[2], prefix, sizeof(prefix), &plen)) {
        fprintf(stderr, "embeddb: bad prefix '%s'\n", argv[2]);
        return EXIT_USAGE;
    }
    ts_store *s = cli_open(argv[1], 1, 0, 0, NULL);
    if (!s)
        return EXIT_STORE;
    printf("key\tname\tdtype\tshape\ttimestamp_ns\tbytes\n");
    int rc = ts_scan_prefix(s, prefix, plen, ls_line, &n);
    if (rc)
        fprintf(stderr, "embeddb: %s: %s\n", argv[1], ts_errmsg(s));
    ts_close(s);
    return cli_exit_for(rc);
}

/* Loads KEY from the store DIR (argv[1], argv[2]): the whole tensor when
 * preview_n is UINT64_MAX, else its first preview_n elements. Returns an
 * exit code; on success *t is the caller's. */
static int load_one(char **argv, uint64_t preview_n, ts_tensor **t)
{
    uint8_t key[TS_MAX_KEY_LEN];
    size_t klen = 0;
    *t = NULL;
    if (cli_key_parse(argv[2], key, sizeof(key), &klen) || klen == 0) {
        fprintf(stderr, "embeddb: bad key '%s'\n", argv[2]);
        return EXIT_USAGE;
    }
    int orc = 0;
    ts_store *s = cli_open(argv[1], 1, 0, 0, &orc);
    if (!s)
        return orc == TS_ECORRUPT ? EXIT_DAMAGED : EXIT_STORE;
    int rc = preview_n == UINT64_MAX ? ts_load(s, key, klen, t)
                                     : ts_load_preview(s, key, klen, preview_n, t);
    if (rc)
        fprintf(stderr, "embeddb: %s: %s: %s\n", argv[1], argv[2], ts_errmsg(s));
    ts_close(s);
    return cli_exit_for(rc);
}

static int write_npy(const ts_tensor *t, const char *out)
{
    char hdr[1024], tmp[4096];
    size_t hlen = 0;
    FILE *fp = NULL;
    int rc = EXIT_STORE;
    if (npy_header(t, hdr, sizeof(hdr), &hlen)) {
        fprintf(stderr, "embeddb: cannot describe dtype %d as .npy\n", (int)t->dtype);
        return EXIT_STORE;
    }
    if (t->dtype == TS_BF16)
        fprintf(stderr, "embeddb: note: bfloat16 has no NumPy dtype; written as uint16 bits\n");
    if (!strcmp(out, "-")) {
        fp = stdout;
    } else {
        snprintf(tmp, sizeof(tmp), "%s.tmp", out);
        fp = fopen(tmp, "wb");
        if (!fp) {
            perror(tmp);
            return EXIT_STORE;
        }
    }
    if (fwrite(hdr, 1, hlen, fp) != hlen ||
        (t->data_len && fwrite(t->data, 1, t->data_len, fp) != t->data_len) || fflush(fp)) {
        perror(out);
        goto out;
    }
    if (fp != stdout) {
        if (fsync(fileno(fp)) || fclose(fp)) {
            fp = NULL;
            perror(tmp);
            goto out;
        }
        fp = NULL;
        if (rename(tmp, out)) {
            perror(out);
            goto out;
        }
    }
    rc = EXIT_OK;
out:
    if (fp && fp != stdout)
        fclose(fp);
    if (rc && fp != stdout)
        remove(tmp);
    return rc;
}

int cmd_get(int argc, char **argv)
{
    ts_tensor *t = NULL;
    if (cli_wants_help(argc, argv) || argc != 5 || strcmp(argv[3], "-o")) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb get DIR KEY -o FILE.npy\n"
              "Writes the tensor as a NumPy .npy file (numpy.load reads it back exactly);\n"
              "-o - writes to stdout.\n",
              help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    int ec = load_one(argv, UINT64_MAX, &t);
    if (!ec)
        ec = write_npy(t, argv[4]);
    ts_tensor_free(t);
    return ec;
}

int cmd_preview(int argc, char **argv)
{
    unsigned long long n = 8;
    ts_tensor *t = NULL;
    char *end = NULL;
    int bad = argc != 3 && !(argc == 5 && !strcmp(argv[3], "-n"));
    if (!bad && argc == 5) {
        n = strtoull(argv[4], &end, 10);
        bad = !*argv[4] || *end || n == UINT64_MAX;
    }
    if (cli_wants_help(argc, argv) || bad) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb preview DIR KEY [-n N]\n"
              "Prints the tensor's summary with its first N values (default 8), reading\n"
              "only the 4 KiB blocks that hold them.\n",
              help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    int ec = load_one(argv, n, &t);
    if (!ec) {
        size_t need = (size_t)ts_summarize(t, (size_t)n, NULL, 0) + 1;
        char *line = malloc(need);
        if (line) {
            ts_summarize(t, (size_t)n, line, need);
            printf("%s\n", line);
            free(line);
        }
    }
    ts_tensor_free(t);
    return ec;
}

static int count_key(void *ctx, const ts_entry *e)
{
    uint64_t *c = ctx;
    c[0]++;
    c[1] += e->data_len;
    return 0;
}

/* The agent's live counters, when an embeddb-agent writes into this store
 * (agent.status, replaced atomically every second). */
static void print_agent_status(const char *dir)
{
    char path[4096], line[256];
    snprintf(path, sizeof(path), "%s/agent.status", dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    printf("\nembeddb-agent (agent.status):\n");
    while (fgets(line, sizeof(line), fp)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        printf("  %-20s %s", line, eq + 1);
    }
    fclose(fp);
}

int cmd_stats(int argc, char **argv)
{
    ts_stats st;
    uint64_t uniq[2] = {0, 0};
    if (cli_wants_help(argc, argv) || argc != 2) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb stats DIR\nPrints what the store holds.\n", help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    ts_store *s = cli_open(argv[1], 1, 0, 0, NULL);
    if (!s)
        return EXIT_STORE;
    int rc = ts_scan_prefix(s, NULL, 0, count_key, uniq);
    ts_get_stats(s, &st);
    if (rc) {
        fprintf(stderr, "embeddb: %s: %s\n", argv[1], ts_errmsg(s));
    } else {
        printf("tensors            %" PRIu64 " (distinct keys)\n", uniq[0]);
        printf("tensor_bytes       %" PRIu64 "\n", uniq[1]);
        printf("index_entries      %" PRIu64 "\n", st.n_entries);
        printf("sst_files          %" PRIu64 "\n", st.n_sst);
        printf("memtable_entries   %" PRIu64 "\n", st.memtable_entries);
        printf("memtable_bytes     %" PRIu64 "\n", st.memtable_bytes);
        printf("disk_bytes         %" PRIu64 "\n", st.disk_bytes);
        printf("next_seq           %" PRIu64 "\n", st.next_seq);
        print_agent_status(argv[1]);
    }
    ts_close(s);
    return cli_exit_for(rc);
}

static void print_damage(void *ctx, const char *msg)
{
    (void)ctx;
    printf("damaged: %s\n", msg);
}

int cmd_verify(int argc, char **argv)
{
    uint64_t bad = 0;
    ts_stats st;
    if (cli_wants_help(argc, argv) || argc != 2) {
        int help = cli_wants_help(argc, argv);
        fputs("usage: embeddb verify DIR\n"
              "Reads every record of every live file and checks every checksum and index\n"
              "entry. Exit 0 when clean, 4 when damage was found, 2 on other errors.\n",
              help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    int orc = 0;
    ts_store *s = cli_open(argv[1], 1, 0, 0, &orc);
    if (!s) /* a damaged WAL, index or MANIFEST fails the open itself */
        return orc == TS_ECORRUPT ? EXIT_DAMAGED : EXIT_STORE;
    int rc = ts_verify(s, print_damage, NULL, &bad);
    ts_get_stats(s, &st);
    if (rc == 0)
        printf("ok: %" PRIu64 " SST file(s) + WAL, %" PRIu64 " index entries checked\n", st.n_sst,
               st.n_entries);
    else if (rc == TS_ECORRUPT)
        printf("%" PRIu64 " damaged item(s)\n", bad);
    else
        fprintf(stderr, "embeddb: %s: %s\n", argv[1], ts_errmsg(s));
    ts_close(s);
    return cli_exit_for(rc);
}
