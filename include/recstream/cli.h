/*
 * cli.h - the subcommands behind `recstream <command>` and what they share:
 * loading the config with `--set` overrides, the exit codes, and a progress
 * line for long work on a terminal. src/main.c only dispatches to these.
 */
#ifndef RECSTREAM_CLI_H
#define RECSTREAM_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/config.h"

/* Exit codes of every command. */
#define RS_EXIT_OK 0
#define RS_EXIT_RUNTIME 1 /* runtime error: broker, Redis, file i/o */
#define RS_EXIT_USAGE 2   /* bad command line or configuration */

/* The options every config-reading command accepts. */
struct rs_cli_conf_opts {
    const char *path;     /* -c FILE, NULL: defaults only */
    const char *sets[64]; /* --set section.key=value, in order */
    size_t set_cnt;
};

/* Records one --set; returns -1 (with a message on stderr) if there are too many. */
int rs_cli_add_set(struct rs_cli_conf_opts *o, const char *assignment);

/* Loads defaults, the file, then the overrides; prints the error and returns NULL on failure.
 * Also applies [log] level. */
struct rs_config *rs_cli_load_config(const struct rs_cli_conf_opts *o);

/* A progress line on stderr, redrawn at most every 200 ms, only when stderr is a terminal. */
struct rs_progress {
    const char *what;
    uint64_t start_ns;
    uint64_t last_ns;
    int tty;
};

void rs_progress_start(struct rs_progress *pg, const char *what);
/* done/total in bytes or events (total 0: unknown); count is events so far. */
void rs_progress_update(struct rs_progress *pg, uint64_t done, uint64_t total, uint64_t count);
void rs_progress_end(struct rs_progress *pg);

int rs_cmd_run(int argc, char **argv);
int rs_cmd_replay(int argc, char **argv);
int rs_cmd_produce(int argc, char **argv);
int rs_cmd_gen(int argc, char **argv);
int rs_cmd_recommend(int argc, char **argv);
int rs_cmd_snapshot_info(int argc, char **argv);
int rs_cmd_eval(int argc, char **argv);

#endif
