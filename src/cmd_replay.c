/*
 * cmd_replay.c - `recstream replay`: the daemon's pipeline fed from a file
 * instead of Kafka, for backfills. Events are applied in file order, lists
 * are published every publish interval and once more at the end, bad records
 * are counted and reported by line, and progress is shown on a terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "recstream/cli.h"
#include "recstream/filesrc.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"
#include "recstream/redis.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recstream replay -c FILE --input PATH [--format F] [--no-publish]\n"
            "                        [--set section.key=value]... [--json]\n"
            "\n"
            "Feeds the events of a file through the model and publishes the lists to\n"
            "Redis, as `run` does for Kafka.\n"
            "\n"
            "  -c, --config FILE   configuration file\n"
            "  -i, --input PATH    events: u.data, ratings.dat, ratings.csv, CSV/TSV with\n"
            "                      a header, JSON lines, msgpack stream; - for stdin\n"
            "      --format F      auto (default), movielens-tab, movielens-colon, csv,\n"
            "                      tsv, jsonl, msgpack\n"
            "      --no-publish    train only, write nothing to Redis\n"
            "      --set S.K=V     override one configuration key\n"
            "      --json          print the summary as one JSON object\n"
            "  -h, --help          this text\n"
            "\n"
            "example:\n"
            "  recstream replay -c config/recstream.conf --input events.jsonl\n");
}

int rs_cmd_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'}, {"set", required_argument, NULL, 's'},
        {"no-publish", no_argument, NULL, 'n'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct rs_cli_conf_opts copts = {0};
    enum rs_filesrc_format format = RS_FILE_AUTO;
    const char *input = NULL;
    int json = 0, publish = 1, opt, rc = RS_EXIT_RUNTIME;
    struct rs_config *conf = NULL;
    struct rs_redis *redis = NULL;
    struct rs_pipeline *p = NULL;
    struct rs_filesrc *fs = NULL;
    struct rs_event_limits lim;
    struct rs_event ev;
    struct rs_progress pg;
    struct rs_log_limit bad_limit = RS_LOG_LIMIT_INIT(10000, 10);
    char errstr[512];
    uint64_t records = 0, bad = 0, start_ns;
    rs_err_t err;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:i:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': copts.path = optarg; break;
        case 'i': input = optarg; break;
        case 'f':
            if (rs_filesrc_format_parse(optarg, &format)) {
                fprintf(stderr, "recstream replay: unknown format '%s'\n", optarg);
                return RS_EXIT_USAGE;
            }
            break;
        case 's':
            if (rs_cli_add_set(&copts, optarg)) return RS_EXIT_USAGE;
            break;
        case 'n': publish = 0; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return RS_EXIT_OK;
        default: usage(stderr); return RS_EXIT_USAGE;
        }
    }
    if (!input || optind < argc) {
        fprintf(stderr, "recstream replay: %s\n",
                input ? "unexpected argument" : "--input PATH is required");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    conf = rs_cli_load_config(&copts);
    if (!conf) return RS_EXIT_USAGE;

    lim.rating_min = conf->rating_min;
    lim.rating_max = conf->rating_max;
    lim.max_bytes = RS_EVENT_MAX_BYTES_DEFAULT;
    fs = rs_filesrc_open(input, format, &lim, errstr, sizeof(errstr));
    if (!fs) {
        fprintf(stderr, "recstream replay: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }
    if (publish && !(redis = rs_redis_create(conf))) goto out;
    p = rs_pipeline_create(conf, redis, errstr, sizeof(errstr));
    if (!p) {
        rs_error("%s", errstr);
        goto out;
    }
    rs_info("replaying %s (%s)", input, rs_filesrc_format_name(rs_filesrc_format(fs)));

    start_ns = rs_mono_ns();
    rs_progress_start(&pg, "replay");
    for (;;) {
        enum rs_event_reason reason = RS_REASON_OK;
        uint64_t record = 0;
        err = rs_filesrc_next(fs, &ev, &reason, &record);
        if (err == RS_ENOENT) break;
        if (err == RS_EPARSE) {
            bad++;
            rs_pipeline_reject(p, reason);
            rs_log_limited(&bad_limit, RS_LOG_WARN, "%s: record %llu: %s", input,
                           (unsigned long long)record, rs_event_reason_str(reason));
            continue;
        }
        if (err) {
            rs_error("%s: read failed: %s", input, rs_err_str(err));
            goto out;
        }
        records++;
        err = rs_pipeline_apply(p, &ev);
        if (err && err != RS_EFULL) {
            rs_error("applying event: %s", rs_err_str(err));
            goto out;
        }
        if (rs_pipeline_publish_due(p) && rs_pipeline_publish_step(p) == RS_ENOMEM) {
            rs_error("publishing: out of memory");
            goto out;
        }
        rs_progress_update(&pg, rs_filesrc_bytes_read(fs), rs_filesrc_bytes_total(fs),
                           records);
    }
    rs_progress_end(&pg);
    while (rs_pipeline_pending(p) > 0) {
        if (rs_pipeline_publish(p) != RS_OK) {
            rs_error("final publish failed (see above)");
            goto out;
        }
    }
    {
        const struct rs_pipeline_stats *st = rs_pipeline_stats(p);
        double secs = (double)(rs_mono_ns() - start_ns) / 1e9;
        if (json)
            printf("{\"events\":%llu,\"applied\":%llu,\"rejected\":%llu,"
                   "\"over_capacity\":%llu,\"users\":%u,\"items\":%u,"
                   "\"lists_published\":%llu,\"seconds\":%.3f}\n",
                   (unsigned long long)records, (unsigned long long)st->events_applied,
                   (unsigned long long)st->events_rejected,
                   (unsigned long long)st->events_over_capacity,
                   rs_idmap_count(rs_pipeline_users(p)),
                   rs_idmap_count(rs_pipeline_items(p)),
                   (unsigned long long)st->lists_published, secs);
        else
            printf("replayed %llu events (%llu bad records skipped) in %.2f s: "
                   "%u users, %u items, %llu lists published\n",
                   (unsigned long long)records, (unsigned long long)bad, secs,
                   rs_idmap_count(rs_pipeline_users(p)),
                   rs_idmap_count(rs_pipeline_items(p)),
                   (unsigned long long)st->lists_published);
    }
    rc = RS_EXIT_OK;

out:
    rs_filesrc_close(fs);
    rs_pipeline_destroy(p);
    rs_redis_destroy(redis);
    rs_config_destroy(conf);
    return rc;
}
