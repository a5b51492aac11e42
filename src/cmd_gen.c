/*
 * cmd_gen.c - `recstream gen`: write a synthetic event stream with planted
 * cluster structure (gen.h) as JSON lines, a msgpack stream or CSV, of any
 * size, for the quick start, tests and benchmarks.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/cli.h"
#include "recstream/gen.h"
#include "recstream/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recstream gen --output PATH [--events N] [--users N] [--items N]\n"
            "                     [--clusters N] [--seed S] [--rate-share F] [--noise F]\n"
            "                     [--format jsonl|msgpack|csv]\n"
            "\n"
            "Writes a synthetic event stream: users and items fall into clusters and a\n"
            "user mostly plays or rates items of their own cluster. Ids are u<n>, i<n>.\n"
            "\n"
            "  -o, --output PATH    file to write (- for stdout)\n"
            "      --events N       number of events (default 50000)\n"
            "      --users N        distinct users (default 1000)\n"
            "      --items N        distinct items (default 500)\n"
            "      --clusters N     planted clusters (default 10)\n"
            "      --seed S         random seed (default 1)\n"
            "      --rate-share F   share of `rate` events, the rest `play` (default 0.5)\n"
            "      --noise F        share of events outside the user's cluster (default 0.1)\n"
            "      --format F       jsonl (default), msgpack or csv; also taken from the\n"
            "                       file name's extension\n"
            "  -h, --help           this text\n"
            "\n"
            "example:\n"
            "  recstream gen --events 100000 --output events.jsonl\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end || *s == '-') return -1;
    *out = v;
    return 0;
}

static int parse_share(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !(v >= 0 && v <= 1)) return -1;
    *out = v;
    return 0;
}

static const char *ext_format(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return NULL;
    if (strcmp(dot, ".msgpack") == 0 || strcmp(dot, ".mp") == 0) return "msgpack";
    if (strcmp(dot, ".csv") == 0) return "csv";
    if (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".json") == 0) return "jsonl";
    return NULL;
}

static int write_event(FILE *f, const char *format, const struct rs_event *ev)
{
    if (strcmp(format, "msgpack") == 0) {
        char buf[1024];
        size_t len = rs_event_encode_msgpack(ev, buf, sizeof(buf));
        return len && fwrite(buf, 1, len, f) == len ? 0 : -1;
    }
    /* Generated ids are plain ASCII ("u12"), so they need no escaping. */
    if (strcmp(format, "csv") == 0)
        return fprintf(f, "%s,%s,%s,%g,%lld\n", ev->user, ev->item,
                       rs_event_type_str(ev->type), ev->value, (long long)ev->ts_ms) < 0;
    return fprintf(f, "{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"%s\",\"value\":%g,"
                      "\"ts\":%lld}\n",
                   ev->user, ev->item, rs_event_type_str(ev->type), ev->value,
                   (long long)ev->ts_ms) < 0;
}

int rs_cmd_gen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},   {"events", required_argument, NULL, 'e'},
        {"users", required_argument, NULL, 'u'},    {"items", required_argument, NULL, 'i'},
        {"clusters", required_argument, NULL, 'k'}, {"seed", required_argument, NULL, 's'},
        {"rate-share", required_argument, NULL, 'r'},
        {"noise", required_argument, NULL, 'n'},    {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct rs_gen_params gp;
    const char *output = NULL, *format = NULL;
    uint64_t v = 0;
    int opt, rc = RS_EXIT_RUNTIME;
    struct rs_gen *g = NULL;
    struct rs_event ev;
    struct rs_progress pg;
    uint64_t n = 0;
    FILE *f = NULL;

    rs_gen_defaults(&gp);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'o': output = optarg; break;
        case 'e': bad = parse_u64(optarg, &gp.events); break;
        case 'u': bad = parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX; gp.users = (uint32_t)v; break;
        case 'i': bad = parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX; gp.items = (uint32_t)v; break;
        case 'k': bad = parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX; gp.clusters = (uint32_t)v; break;
        case 's': bad = parse_u64(optarg, &gp.seed); break;
        case 'r': bad = parse_share(optarg, &gp.rate_share); break;
        case 'n': bad = parse_share(optarg, &gp.noise); break;
        case 'f':
            format = optarg;
            bad = strcmp(format, "jsonl") && strcmp(format, "msgpack") && strcmp(format, "csv");
            break;
        case 'h': usage(stdout); return RS_EXIT_OK;
        default: usage(stderr); return RS_EXIT_USAGE;
        }
        if (bad) {
            fprintf(stderr, "recstream gen: bad value '%s' (see --help)\n", optarg);
            return RS_EXIT_USAGE;
        }
    }
    if (!output || optind < argc) {
        fprintf(stderr, "recstream gen: %s\n",
                output ? "unexpected argument" : "--output PATH is required");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    if (gp.clusters > gp.users || gp.clusters > gp.items) {
        fprintf(stderr, "recstream gen: --clusters must not exceed --users or --items\n");
        return RS_EXIT_USAGE;
    }
    if (!format) format = ext_format(output);
    if (!format) format = "jsonl";

    f = strcmp(output, "-") == 0 ? stdout : fopen(output, "wb");
    if (!f) {
        perror(output);
        return RS_EXIT_RUNTIME;
    }
    g = rs_gen_create(&gp);
    if (!g) {
        fprintf(stderr, "recstream gen: out of memory\n");
        goto out;
    }
    if (strcmp(format, "csv") == 0) fprintf(f, "user,item,type,value,ts\n");
    rs_progress_start(&pg, "gen");
    while (rs_gen_next(g, &ev) == RS_OK) {
        if (write_event(f, format, &ev)) {
            perror(output);
            goto out;
        }
        n++;
        rs_progress_update(&pg, n, gp.events, n);
    }
    rs_progress_end(&pg);
    rc = RS_EXIT_OK;

out:
    rs_gen_destroy(g);
    if (f && f != stdout && fclose(f) != 0 && rc == RS_EXIT_OK) {
        perror(output);
        rc = RS_EXIT_RUNTIME;
    }
    return rc;
}
