/*
 * main.c -- the embeddb command: picks the command from argv[1], prints the
 * top-level help, and is the only place the process exits. No store logic
 * lives here; the commands are in cmd_inspect.c, cmd_demo.c, cmd_snapshot.c,
 * cmd_serve.c and bench.c.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: embeddb COMMAND [ARGS]    (embeddb COMMAND --help for one command)\n"
    "\n"
    "Drives and inspects an EmbedDb TensorStore directory.\n"
    "\n"
    "Demo modes (the seed's):\n"
    "  --tensor-dryrun [DIR]              keys 101 and 202 to the WAL, flush, replay\n"
    "  --tensor-train [DIR] [--epochs N]  dense-layer training, one batch per epoch\n"
    "  --tensor-ingest FILE [DIR]         ingest a CSV tensor payload (one batch)\n"
    "  N DIM BATCH MEMTABLE_MAX [DIR]     numeric benchmark, sync off\n"
    "                                     (e.g. embeddb 500000 32 1 20000)\n"
    "\n"
    "Inspection (opens the store read-only, so it works beside a running writer):\n"
    "  ls DIR [PREFIX] [--from T] [--to T]\n"
    "                                     one line per tensor, tab separated; --from\n"
    "                                     and --to keep timestamps in [from, to): T is\n"
    "                                     ns since the epoch, 2026-11-30T15:04:05Z or\n"
    "                                     an age -10s, -5m, -2h, -1d\n"
    "  get DIR KEY -o FILE.npy            export a tensor as NumPy .npy (-o - = stdout)\n"
    "  preview DIR KEY [-n N]             summary with the first N values (default 8)\n"
    "  latest DIR PREFIX [-n N]           the newest tensor (highest seq) of a prefix\n"
    "  stats DIR                          store statistics and distinct keys\n"
    "  verify DIR                         check every checksum and index entry\n"
    "  (ls, get and verify also take a snapshot object as uploaded -- NAME.tar,\n"
    "  NAME.tar.zst, NAME.tar.gz, or - for standard input -- read as a stream,\n"
    "  never unpacked)\n"
    "\n"
    "The console (a web page and a JSON API over HTTP; console/API.md):\n"
    "  serve DIR [--listen ADDR:PORT]     open DIR and serve it (default\n"
    "                                     127.0.0.1:8080); see serve --help\n"
    "\n"
    "Snapshots (DIR/snapshots/<device>-<seq>/, each a read-only store):\n"
    "  snapshot DIR                       seal one now (asks a running agent)\n"
    "  snapshot ls DIR                    list them: state, tensors, bytes\n"
    "  snapshot verify DIR NAME           check files against MANIFEST.json\n"
    "  snapshot retry DIR NAME            hand a failed upload back to the agent\n"
    "\n"
    "Benchmark:\n"
    "  bench [--dir DIR] [--tensors N] [--batch B] [--runs R] [--memtable-max BYTES]\n"
    "                                     durable ingest vs plain write()+fdatasync()\n"
    "  bench small [--topics T] [...]     the same for agent-style 12 B/128 B/4 KiB tensors\n"
    "  bench reads [--topics T] [--samples S] [--max-ssts M]\n"
    "                                     point loads, a time-window query and latest\n"
    "                                     on stores of 10, 100 and 1000 SSTs\n"
    "  bench all                          ingest, small and reads in turn\n"
    "\n"
    "Keys on the command line:\n"
    "  101        all digits: a numeric key (8 bytes big-endian, as the engine's\n"
    "             ts_key_from_u64 makes them)\n"
    "  s:TEXT     the bytes of TEXT, for text keys that look like numbers\n"
    "  x:HEX      raw bytes, two hex digits each (x:00ff10)\n"
    "  other      its own bytes (sensors/cam0)\n"
    "Keys print the same way: an 8-byte key starting with byte 0 as its number,\n"
    "printable text as itself (s:-prefixed when it would read as something else),\n"
    "anything else as x:HEX. Every printed key can be pasted back.\n"
    "\n"
    "CSV payload for --tensor-ingest: key,name,dtype,shape,v0,v1,... per line\n"
    "(e.g. 101,camera_frame,float32,2x2,0.25,0.25,0.25,0.25); see\n"
    "embeddb --tensor-ingest --help.\n"
    "\n"
    "Exit codes:\n"
    "  0  ok\n"
    "  1  usage error (bad command line or bad input file)\n"
    "  2  store or I/O error (cannot open, read or write)\n"
    "  3  not found (no tensor under that key, or that prefix for latest)\n"
    "  4  corruption found (by verify, or data failing its checksum on get/preview)\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"--tensor-dryrun", cmd_dryrun}, {"--tensor-train", cmd_train},
        {"--tensor-ingest", cmd_ingest}, {"ls", cmd_ls},
        {"get", cmd_get},                {"preview", cmd_preview},
        {"latest", cmd_latest},          {"stats", cmd_stats},
        {"verify", cmd_verify},
        {"bench", cmd_bench},            {"snapshot", cmd_snapshot},
        {"serve", cmd_serve},
    };
    int ec = -1;
    if (argc < 2) {
        fputs(usage, stderr);
        ec = CLI_EXIT_USAGE;
        goto out;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        ec = CLI_EXIT_OK;
        goto out;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]) && ec < 0; i++)
        if (!strcmp(argv[1], cmds[i].name))
            ec = cmds[i].fn(argc - 1, argv + 1);
    if (ec < 0 && argv[1][0] >= '0' && argv[1][0] <= '9')
        ec = cmd_numeric_bench(argc - 1, argv + 1);
    if (ec < 0) {
        fprintf(stderr, "embeddb: unknown command '%s' (embeddb --help lists them)\n", argv[1]);
        ec = CLI_EXIT_USAGE;
    }
out:
    return ec;
}
