/*
 * cmd_produce.c - `recstream produce`: read a file of events and write each
 * one to the first configured topic as a msgpack map keyed by user id, so a
 * user's events stay ordered in one partition. Optionally paced to a target
 * rate; ends with a report of events sent, bad records and delivery errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/cli.h"
#include "recstream/filesrc.h"
#include "recstream/kafka.h"
#include "recstream/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recstream produce -c FILE --input PATH [--rate EPS] [--json]\n"
            "                         [--set section.key=value]...\n"
            "\n"
            "Writes a file's events to the first topic of [kafka] topics, msgpack-encoded\n"
            "and keyed by user id.\n"
            "\n"
            "  -c, --config FILE   configuration file\n"
            "  -i, --input PATH    events file (formats as for replay); - for stdin\n"
            "      --rate EPS      at most EPS events per second (default: as fast as possible)\n"
            "      --set S.K=V     override one key, e.g. --set kafka.brokers=HOST:PORT\n"
            "      --json          print the report as one JSON object\n"
            "  -h, --help          this text\n"
            "\n"
            "An embedded broker lives inside `recstream run`: start it with\n"
            "--brokers-file PATH and pass that address here with --set kafka.brokers=...\n"
            "\n"
            "example:\n"
            "  recstream produce -c config/recstream.conf --input events.jsonl --rate 5000\n");
}

static void pace(uint64_t start_ns, uint64_t sent, double rate)
{
    uint64_t due_ns = start_ns + (uint64_t)((double)sent / rate * 1e9);
    uint64_t now = rs_mono_ns();
    if (due_ns > now + 1000000) {
        struct timespec ts = {(time_t)((due_ns - now) / 1000000000ull),
                              (long)((due_ns - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

int rs_cmd_produce(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"input", required_argument, NULL, 'i'},
        {"rate", required_argument, NULL, 'r'},   {"set", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct rs_cli_conf_opts copts = {0};
    const char *input = NULL;
    double rate = 0;
    int json = 0, opt, rc = RS_EXIT_RUNTIME, left;
    struct rs_config *conf = NULL;
    struct rs_filesrc *fs = NULL;
    struct rs_kafka *kc = NULL;
    struct rs_event_limits lim;
    struct rs_event ev;
    struct rs_progress pg;
    char errstr[512], payload[2048], *end;
    uint64_t sent = 0, bad = 0, failed = 0, start_ns;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:i:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': copts.path = optarg; break;
        case 'i': input = optarg; break;
        case 'r':
            rate = strtod(optarg, &end);
            if (*end || !(rate > 0)) {
                fprintf(stderr, "recstream produce: --rate needs a positive number\n");
                return RS_EXIT_USAGE;
            }
            break;
        case 's':
            if (rs_cli_add_set(&copts, optarg)) return RS_EXIT_USAGE;
            break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return RS_EXIT_OK;
        default: usage(stderr); return RS_EXIT_USAGE;
        }
    }
    if (!input || optind < argc) {
        fprintf(stderr, "recstream produce: %s\n",
                input ? "unexpected argument" : "--input PATH is required");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    conf = rs_cli_load_config(&copts);
    if (!conf) return RS_EXIT_USAGE;
    if (strcmp(conf->brokers, "embedded") == 0) {
        fprintf(stderr, "recstream produce: brokers = embedded names no reachable broker; "
                        "pass --set kafka.brokers=HOST:PORT (see --help)\n");
        rc = RS_EXIT_USAGE;
        goto out;
    }
    lim.rating_min = conf->rating_min;
    lim.rating_max = conf->rating_max;
    lim.max_bytes = RS_EVENT_MAX_BYTES_DEFAULT;
    fs = rs_filesrc_open(input, RS_FILE_AUTO, &lim, errstr, sizeof(errstr));
    if (!fs) {
        fprintf(stderr, "recstream produce: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }
    kc = rs_kafka_producer_create(conf, errstr, sizeof(errstr));
    if (!kc) {
        fprintf(stderr, "recstream produce: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }

    start_ns = rs_mono_ns();
    rs_progress_start(&pg, "produce");
    for (;;) {
        enum rs_event_reason reason;
        uint64_t record;
        size_t len;
        rs_err_t err = rs_filesrc_next(fs, &ev, &reason, &record);
        if (err == RS_ENOENT) break;
        if (err == RS_EPARSE) {
            bad++;
            continue;
        }
        if (err) {
            rs_error("%s: read failed: %s", input, rs_err_str(err));
            goto out;
        }
        len = rs_event_encode_msgpack(&ev, payload, sizeof(payload));
        if (len == 0 || rs_kafka_produce(kc, ev.user, ev.user_len, payload, len) != RS_OK) {
            failed++;
            continue;
        }
        sent++;
        if (rate > 0) pace(start_ns, sent, rate);
        rs_progress_update(&pg, rs_filesrc_bytes_read(fs), rs_filesrc_bytes_total(fs),
                           sent);
    }
    rs_progress_end(&pg);
    left = rs_kafka_flush(kc, 30000);
    {
        double secs = (double)(rs_mono_ns() - start_ns) / 1e9;
        uint64_t undelivered = rs_kafka_delivery_errors(kc) + (uint64_t)(left > 0 ? left : 0);
        uint64_t delivered = sent >= undelivered ? sent - undelivered : 0;
        failed += undelivered;
        if (json)
            printf("{\"sent\":%llu,\"delivered\":%llu,\"bad_records\":%llu,"
                   "\"errors\":%llu,\"seconds\":%.3f}\n",
                   (unsigned long long)sent, (unsigned long long)delivered,
                   (unsigned long long)bad, (unsigned long long)failed, secs);
        else
            printf("produced %llu events to %s in %.2f s (%llu bad records skipped, "
                   "%llu errors)\n",
                   (unsigned long long)delivered, conf->topics[0], secs,
                   (unsigned long long)bad, (unsigned long long)failed);
    }
    rc = failed ? RS_EXIT_RUNTIME : RS_EXIT_OK;

out:
    rs_kafka_destroy(kc);
    rs_filesrc_close(fs);
    rs_config_destroy(conf);
    return rc;
}
