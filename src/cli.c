/*
 * cli.c - what the subcommands share: loading the configuration the same way
 * everywhere (defaults, then -c FILE, then each --set in order) and a
 * progress line with rate and ETA for long runs on a terminal.
 */
#include "recstream/cli.h"

#include <stdio.h>
#include <unistd.h>

#include "recstream/log.h"

int rs_cli_add_set(struct rs_cli_conf_opts *o, const char *assignment)
{
    if (o->set_cnt >= sizeof(o->sets) / sizeof(o->sets[0])) {
        fprintf(stderr, "recstream: too many --set options\n");
        return -1;
    }
    o->sets[o->set_cnt++] = assignment;
    return 0;
}

struct rs_config *rs_cli_load_config(const struct rs_cli_conf_opts *o)
{
    char errstr[512];
    struct rs_config *conf = rs_config_create();

    if (!conf) {
        fprintf(stderr, "recstream: out of memory\n");
        return NULL;
    }
    if (o->path && rs_config_load(conf, o->path, errstr, sizeof(errstr)) != RS_OK)
        goto err;
    for (size_t s = 0; s < o->set_cnt; s++)
        if (rs_config_set(conf, o->sets[s], errstr, sizeof(errstr)) != RS_OK) goto err;
    if (o->set_cnt > 0 && rs_config_check(conf, errstr, sizeof(errstr)) != RS_OK) goto err;
    rs_log_set_level((enum rs_log_level)conf->log_level);
    return conf;

err:
    fprintf(stderr, "recstream: %s\n", errstr);
    rs_config_destroy(conf);
    return NULL;
}

void rs_progress_start(struct rs_progress *pg, const char *what)
{
    pg->what = what;
    pg->start_ns = pg->last_ns = rs_mono_ns();
    pg->tty = isatty(STDERR_FILENO);
}

void rs_progress_update(struct rs_progress *pg, uint64_t done, uint64_t total,
                        uint64_t count)
{
    uint64_t now = rs_mono_ns();
    double secs, rate;

    if (!pg->tty || now - pg->last_ns < 200000000ull) return;
    pg->last_ns = now;
    secs = (double)(now - pg->start_ns) / 1e9;
    rate = secs > 0 ? (double)count / secs : 0;
    if (total > 0 && done > 0 && done <= total) {
        double eta = secs * (double)(total - done) / (double)done;
        fprintf(stderr, "\r%s: %5.1f%%  %llu events  %.0f/s  ETA %.0fs   ", pg->what,
                100.0 * (double)done / (double)total, (unsigned long long)count, rate,
                eta);
    } else {
        fprintf(stderr, "\r%s: %llu events  %.0f/s   ", pg->what,
                (unsigned long long)count, rate);
    }
    fflush(stderr);
}

void rs_progress_end(struct rs_progress *pg)
{
    if (pg->tty && pg->last_ns != pg->start_ns) fprintf(stderr, "\n");
}
