/*
 * main.c -- the embeddb command: dispatches to the cmd_* files, prints help,
 * owns the exit codes. No store logic lives here.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: embeddb COMMAND [ARGS]\n"
    "\n"
    "Inspect and drive an EmbedDb TensorStore directory.\n"
    "\n"
    "Demo modes (the seed's):\n"
    "  --tensor-dryrun [DIR]             WAL keys 101 and 202, flush, replay, summaries\n"
    "  --tensor-train [DIR] [--epochs N] dense-layer training, one saveBatch per epoch\n"
    "  --tensor-ingest FILE [DIR]        ingest a CSV tensor payload (see ingest --help)\n"
    "  N DIM BATCH MEMTABLE_MAX [DIR]    numeric benchmark, e.g. embeddb 500000 32 1 20000\n"
    "\n"
    "Inspection (read-only; safe beside a running writer):\n"
    "  ls DIR [PREFIX]                   one line per tensor\n"
    "  get DIR KEY -o FILE.npy           export a tensor as NumPy .npy (-o - for stdout)\n"
    "  preview DIR KEY [-n N]            summary with the first N values (default 8)\n"
    "  stats DIR                         store statistics\n"
    "  verify DIR                        check every checksum\n"
    "\n"
    "Benchmark:\n"
    "  bench [--dir DIR] [--tensors N] [--batch B] [--runs R] [--memtable-max BYTES]\n"
    "                                    durable ingest vs plain write+fdatasync\n"
    "\n"
    "Keys: all digits = numeric key (8 bytes big-endian, e.g. 101); s:TEXT = text;\n"
    "x:HEX = raw bytes; anything else = its text. ls prints keys the same way.\n"
    "\n"
    "Exit codes: 0 ok, 1 usage or bad input, 2 store or I/O error,\n"
    "3 key not found, 4 verify found damage.\n"
    "`embeddb COMMAND --help` describes one command.\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"--tensor-dryrun", cmd_dryrun}, {"--tensor-train", cmd_train},
        {"--tensor-ingest", cmd_ingest}, {"ls", cmd_ls},
        {"get", cmd_get},                {"preview", cmd_preview},
        {"stats", cmd_stats},            {"verify", cmd_verify},
        {"bench", cmd_bench},
    };
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    if (argv[1][0] >= '0' && argv[1][0] <= '9')
        return cmd_numeric_bench(argc - 1, argv + 1);
    fprintf(stderr, "embeddb: unknown command '%s'\n\n%s", argv[1], usage);
    return EXIT_USAGE;
}
