/*
 * cmd_run.c - `recstream run`, the daemon: consume the event topics, apply
 * every event to the model, publish dirty users' lists to Redis every
 * publish interval, and commit the consumed offsets once their events are in
 * the model and their users' lists are written. SIGTERM or SIGINT stops it:
 * it drains what it holds, publishes, commits, leaves the group and exits 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/cli.h"
#include "recstream/exposition.h"
#include "recstream/kafka.h"
#include "recstream/log.h"
#include "recstream/metrics.h"
#include "recstream/pipeline.h"
#include "recstream/redis.h"

#define CONSUME_BATCH 10000
#define STATS_EVERY_NS (10ull * 1000000000ull)
#define METRICS_EVERY_NS 1000000000ull
#define SHUTDOWN_PUBLISH_NS (10ull * 1000000000ull) /* Redis may be down at exit */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

/* SIGHUP: re-reads the file (with the same --set overrides) and applies what
 * may change live; a file that does not load is reported and ignored. */
static void reload(struct rs_config *conf, const struct rs_cli_conf_opts *copts)
{
    struct rs_config *fresh;
    int changed;

    rs_info("SIGHUP: reloading %s", copts->path);
    fresh = rs_cli_load_config(copts);
    if (!fresh) {
        rs_error("config reload failed; the running configuration is kept");
        rs_log_set_level((enum rs_log_level)conf->log_level);
        return;
    }
    changed = rs_config_apply_live(conf, fresh);
    rs_log_set_level((enum rs_log_level)conf->log_level);
    rs_info("config reload: %d live setting(s) changed", changed);
    rs_config_destroy(fresh);
}

/* Renders the metrics text and hands it to the HTTP server. */
static void update_metrics(struct rs_metrics *metrics, const struct rs_pipeline *p,
                           const struct rs_exposition_extra *extra, struct rs_buf *text)
{
    rs_buf_reset(text);
    if (rs_exposition_render(text, p, extra) == RS_OK)
        rs_metrics_publish(metrics, text->data, text->len);
}

static int handle_message(void *opaque, const struct rs_kafka_msg *msg)
{
    struct rs_pipeline *p = opaque;
    rs_pipeline_handle(p, msg->payload, msg->len, msg->ts_ms > 0 ? msg->ts_ms : 0);
    return 0; /* applied or counted as bad: either way it is done with */
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recstream run -c FILE [--set section.key=value]... [--brokers-file PATH]\n"
            "                     [--check]\n"
            "\n"
            "Consumes events from Kafka, updates the model after every event and keeps\n"
            "each active user's top-N list in Redis.\n"
            "\n"
            "  -c, --config FILE      configuration file (see config/recstream.conf)\n"
            "      --set S.K=V        override one key, e.g. --set redis.port=6380\n"
            "      --brokers-file P   with brokers = embedded, write the embedded broker's\n"
            "                         address to P so `recstream produce` can reach it\n"
            "      --check            load and check the configuration, then exit\n"
            "  -h, --help             this text\n"
            "\n"
            "Stop with SIGTERM or SIGINT: lists are published and offsets committed first.\n"
            "SIGHUP re-reads the file and applies ranking weights, log level and publish\n"
            "interval at once; other changed keys are reported and wait for a restart.\n"
            "\n"
            "examples:\n"
            "  recstream run -c config/recstream.conf\n"
            "  recstream run -c config/recstream.conf --set kafka.brokers=127.0.0.1:9092\n");
}

static void log_stats(const struct rs_pipeline *p)
{
    const struct rs_pipeline_stats *st = rs_pipeline_stats(p);
    rs_info("events applied %llu, rejected %llu, lists published %llu, users %u, items %u",
            (unsigned long long)st->events_applied, (unsigned long long)st->events_rejected,
            (unsigned long long)st->lists_published, rs_idmap_count(rs_pipeline_users(p)),
            rs_idmap_count(rs_pipeline_items(p)));
}

static int write_brokers_file(const char *path, const char *bootstraps)
{
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0) {
        rs_error("writing %s failed", path);
        return -1;
    }
    return 0;
}

int rs_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"brokers-file", required_argument, NULL, 'b'},
        {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct rs_cli_conf_opts copts = {0};
    const char *brokers_file = NULL;
    int check_only = 0;
    struct rs_config *conf = NULL;
    struct rs_redis *redis = NULL;
    struct rs_pipeline *p = NULL;
    struct rs_kafka *kc = NULL;
    char errstr[512];
    int opt, rc = RS_EXIT_RUNTIME;
    uint64_t last_stats, last_commit, deadline;
    struct sigaction sa;
    struct rs_metrics *metrics = NULL;
    struct rs_exposition_extra extra = {rs_now_ms()};
    struct rs_buf text;
    uint64_t last_metrics = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': copts.path = optarg; break;
        case 's':
            if (rs_cli_add_set(&copts, optarg)) return RS_EXIT_USAGE;
            break;
        case 'b': brokers_file = optarg; break;
        case 'k': check_only = 1; break;
        case 'h': usage(stdout); return RS_EXIT_OK;
        default: usage(stderr); return RS_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recstream run: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    if (!copts.path) {
        fprintf(stderr, "recstream run: -c FILE is required\n");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    conf = rs_cli_load_config(&copts);
    if (!conf) return RS_EXIT_USAGE;
    if (check_only) {
        printf("%s: configuration OK\n", copts.path);
        rs_config_destroy(conf);
        return RS_EXIT_OK;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    rs_buf_init(&text);
    signal(SIGPIPE, SIG_IGN);

    redis = rs_redis_create(conf);
    if (!redis) goto out;
    if (rs_redis_connect(redis) != RS_OK)
        rs_warn("redis: %s (will retry; lists are kept until it is back)",
                rs_redis_errstr(redis));
    p = rs_pipeline_create(conf, redis, errstr, sizeof(errstr));
    if (!p) {
        rs_error("%s", errstr);
        goto out;
    }
    if (conf->metrics_listen && *conf->metrics_listen) {
        metrics = rs_metrics_create(conf->metrics_listen, errstr, sizeof(errstr));
        if (!metrics) {
            fprintf(stderr, "recstream: %s\n", errstr);
            rc = RS_EXIT_USAGE;
            goto out;
        }
    }
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    if (!kc) {
        fprintf(stderr, "recstream: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }
    if (brokers_file && rs_kafka_embedded_bootstraps(kc) &&
        write_brokers_file(brokers_file, rs_kafka_embedded_bootstraps(kc)))
        goto out;
    rs_info("recstream %s running: topics %s..., group %s, redis %s:%d", RS_VERSION,
            conf->topics[0], conf->group_id, conf->redis_host, conf->redis_port);

    last_stats = last_commit = rs_mono_ns();
    while (!stop_requested) {
        int timeout = conf->publish_interval_ms < 100 ? conf->publish_interval_ms : 100;
        rs_kafka_consume(kc, timeout, CONSUME_BATCH, handle_message, p);
        /* Every stored offset belongs to an event consumed before this
         * publish, so after a good publish they may all be committed. */
        if (rs_pipeline_publish_due(p) && rs_pipeline_publish(p) == RS_OK) {
            rs_kafka_commit(kc, 0);
            last_commit = rs_mono_ns();
        } else if (rs_pipeline_dirty(p) == 0 && rs_mono_ns() - last_commit >= STATS_EVERY_NS / 10) {
            rs_kafka_commit(kc, 0); /* e.g. only bad messages since the last one */
            last_commit = rs_mono_ns();
        }
        if (reload_requested) {
            reload_requested = 0;
            reload(conf, &copts);
        }
        if (metrics && rs_mono_ns() - last_metrics >= METRICS_EVERY_NS) {
            update_metrics(metrics, p, &extra, &text);
            last_metrics = rs_mono_ns();
        }
        if (rs_mono_ns() - last_stats >= STATS_EVERY_NS) {
            log_stats(p);
            last_stats = last_commit = rs_mono_ns();
        }
    }

    rs_info("stopping: publishing %zu pending lists", rs_pipeline_dirty(p));
    deadline = rs_mono_ns() + SHUTDOWN_PUBLISH_NS;
    while (rs_pipeline_publish(p) != RS_OK && rs_mono_ns() < deadline) {
        struct timespec pause = {0, 200000000};
        nanosleep(&pause, NULL);
    }
    if (rs_pipeline_dirty(p) == 0)
        rs_kafka_commit(kc, 1);
    else
        rs_warn("%zu lists could not be written; offsets not committed",
                rs_pipeline_dirty(p));
    log_stats(p);
    if (metrics) update_metrics(metrics, p, &extra, &text);
    rc = RS_EXIT_OK;

out:
    rs_kafka_destroy(kc);
    rs_metrics_destroy(metrics);
    rs_buf_free(&text);
    rs_pipeline_destroy(p);
    rs_redis_destroy(redis);
    rs_config_destroy(conf);
    return rc;
}
