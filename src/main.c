/*
 * main.c - the `recstream` binary: picks the subcommand and hands over.
 * Each command parses its own options (src/cmd_*.c). First of all it makes
 * sure OpenBLAS runs kernels this CPU supports (blas.h).
 */
#include <stdio.h>
#include <string.h>

#include "recstream/blas.h"
#include "recstream/cli.h"
#include "recstream/common.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", rs_cmd_run, "the daemon: Kafka -> model -> Redis"},
    {"replay", rs_cmd_replay, "the same pipeline fed from a file (backfill)"},
    {"produce", rs_cmd_produce, "write a file's events into the Kafka topic"},
    {"gen", rs_cmd_gen, "write a synthetic event stream with planted structure"},
    {"snapshot-info", rs_cmd_snapshot_info, "verify and describe a snapshot file"},
    {"eval", rs_cmd_eval, "measure the model: cross-validation or prequential replay"},
    {"recommend", rs_cmd_recommend, "a user's list with reasons, or an item's similar items"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: recstream <command> [options]\n"
                 "       recstream --help | --version\n\n"
                 "A streaming recommender: events from Kafka, an online model updated\n"
                 "after every event, each active user's top-N list kept in Redis.\n\n"
                 "commands:\n");
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
        fprintf(out, "  %-13s %s\n", commands[c].name, commands[c].summary);
    fprintf(out, "\n`recstream <command> --help` describes each one.\n"
                 "exit codes: 0 ok, 1 runtime error, 2 usage or configuration error\n");
}

int main(int argc, char **argv)
{
    rs_blas_fix_kernels(argv); /* before any thread starts */
    if (argc < 2) {
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return RS_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("recstream %s (OpenBLAS %s kernels)\n", RS_VERSION, rs_blas_core());
        return RS_EXIT_OK;
    }
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
        if (strcmp(argv[1], commands[c].name) == 0) return commands[c].fn(argc - 1, argv + 1);
    fprintf(stderr, "recstream: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return RS_EXIT_USAGE;
}
