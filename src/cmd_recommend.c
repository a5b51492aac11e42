/*
 * cmd_recommend.c - `recstream recommend`: one user's list, with blended
 * scores and reasons, or one item's similar items, printed for a person or
 * as JSON. The state is the newest snapshot in [snapshot] dir that verifies
 * (what a running daemon last saved), or, with --input, a fresh pipeline fed
 * an event file. Nothing is written to Redis or to the snapshot directory.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/cli.h"
#include "recstream/filesrc.h"
#include "recstream/listfmt.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"
#include "recstream/snapshot.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: recstream recommend -c FILE (--user U | --item I) [--input PATH]\n"
        "                           [--n N] [--json] [--format F]\n"
        "                           [--set section.key=value]...\n"
        "\n"
        "Prints a user's top-N list with blended scores and reasons (\"because you\n"
        "played X\"), or an item's similar items. A user the model does not know\n"
        "gets the trending list (cold start). The state is the newest snapshot in\n"
        "[snapshot] dir that verifies, or, with --input, a fresh model fed that file.\n"
        "Nothing is written to Redis.\n"
        "\n"
        "  -c, --config FILE   configuration file ([neighbors], [ranking] apply)\n"
        "  -u, --user U        the user whose list to print\n"
        "      --item I        the item whose similar items to print\n"
        "  -i, --input PATH    build the state from these events (as for replay)\n"
        "                      instead of reading the newest snapshot\n"
        "      --format F      auto (default), movielens-tab, movielens-colon, csv,\n"
        "                      tsv, jsonl, msgpack\n"
        "  -n, --n N           entries to print (default [ranking] top_n for a user,\n"
        "                      [neighbors] k for an item; at most k for an item)\n"
        "      --set S.K=V     override one configuration key\n"
        "      --json          print the list as stored in Redis (JSON array)\n"
        "  -h, --help          this text\n"
        "\n"
        "examples:\n"
        "  recstream recommend -c config/recstream.conf --user 196\n"
        "  recstream recommend -c config/recstream.conf --input u.data --item 50 --json\n");
}

/*
 * The state to answer from: every event of input applied, in order, to a
 * fresh pipeline that publishes nowhere. NULL (with a message) on error.
 */
/* The newest snapshot that verifies, into a pipeline without a sink. */
static struct rs_pipeline *load_snapshot(const struct rs_config *conf)
{
    struct rs_snapshot_shape shape;
    char errstr[512], path[4096];
    struct rs_pipeline *p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    rs_err_t err;

    if (!p) {
        fprintf(stderr, "recstream recommend: %s\n", errstr);
        return NULL;
    }
    rs_pipeline_shape(conf, &shape);
    err = rs_snapshot_load_newest(conf->snapshot_dir, &shape, rs_pipeline_snapshot_load, p,
                                  path, sizeof(path), errstr, sizeof(errstr));
    if (err == RS_ENOENT) {
        fprintf(stderr,
                "recstream recommend: no snapshot in %s; pass --input PATH to build the "
                "state from events\n",
                conf->snapshot_dir);
    } else if (err) {
        fprintf(stderr, "recstream recommend: %s\n", errstr);
    } else {
        rs_info("state from %s", path);
        return p;
    }
    rs_pipeline_destroy(p);
    return NULL;
}

static struct rs_pipeline *load_state(const struct rs_config *conf, const char *input,
                                      enum rs_filesrc_format format)
{
    struct rs_event_limits lim = {conf->rating_min, conf->rating_max,
                                  RS_EVENT_MAX_BYTES_DEFAULT};
    struct rs_filesrc *fs = NULL;
    struct rs_pipeline *p = NULL;
    struct rs_event ev;
    char errstr[512];
    rs_err_t err;

    fs = rs_filesrc_open(input, format, &lim, errstr, sizeof(errstr));
    if (!fs) {
        fprintf(stderr, "recstream recommend: %s\n", errstr);
        goto fail;
    }
    p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    if (!p) {
        fprintf(stderr, "recstream recommend: %s\n", errstr);
        goto fail;
    }
    for (;;) {
        enum rs_event_reason reason = RS_REASON_OK;
        uint64_t record = 0;
        err = rs_filesrc_next(fs, &ev, &reason, &record);
        if (err == RS_ENOENT) break;
        if (err == RS_EPARSE) {
            rs_pipeline_reject(p, reason);
            continue;
        }
        if (err) {
            fprintf(stderr, "recstream recommend: %s: read failed: %s\n", input,
                    rs_err_str(err));
            goto fail;
        }
        err = rs_pipeline_apply(p, &ev);
        if (err && err != RS_EFULL) {
            fprintf(stderr, "recstream recommend: applying event: %s\n", rs_err_str(err));
            goto fail;
        }
    }
    rs_filesrc_close(fs);
    return p;

fail:
    rs_filesrc_close(fs);
    rs_pipeline_destroy(p);
    return NULL;
}

static void print_text(const struct rs_pipeline *p, const char *what, const char *id,
                       const struct rs_rec *recs, size_t n, int reasons)
{
    const struct rs_idmap *items = rs_pipeline_items(p);
    printf("%s %s: %zu %s\n", what, id, n, n == 1 ? "entry" : "entries");
    if (n == 0) return;
    printf("%4s  %-24s %9s%s\n", "rank", "item", "score", reasons ? "  because of" : "");
    for (size_t j = 0; j < n; j++) {
        size_t len = 0, wlen = 0;
        const char *name = rs_idmap_name(items, recs[j].item, &len);
        const char *why =
            recs[j].why != RS_NONE ? rs_idmap_name(items, recs[j].why, &wlen) : NULL;
        printf("%4zu  %-24.*s %9.4f", j + 1, (int)len, name ? name : "", recs[j].score);
        if (reasons && why) printf("  %.*s", (int)wlen, why);
        printf("\n");
    }
}

int rs_cmd_recommend(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"user", required_argument, NULL, 'u'},
        {"item", required_argument, NULL, 'I'},   {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'}, {"n", required_argument, NULL, 'n'},
        {"set", required_argument, NULL, 's'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct rs_cli_conf_opts copts = {0};
    enum rs_filesrc_format format = RS_FILE_AUTO;
    const char *input = NULL, *user = NULL, *item = NULL;
    char nset[64];
    long want = 0;
    int json = 0, opt, rc = RS_EXIT_RUNTIME;
    struct rs_config *conf = NULL;
    struct rs_pipeline *p = NULL;
    struct rs_rec *recs = NULL;
    struct rs_buf buf;
    size_t n = 0;
    rs_err_t err;

    rs_buf_init(&buf);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:u:i:n:h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'c': copts.path = optarg; break;
        case 'u': user = optarg; break;
        case 'I': item = optarg; break;
        case 'i': input = optarg; break;
        case 'f':
            if (rs_filesrc_format_parse(optarg, &format)) {
                fprintf(stderr, "recstream recommend: unknown format '%s'\n", optarg);
                return RS_EXIT_USAGE;
            }
            break;
        case 'n':
            want = strtol(optarg, &end, 10);
            if (!*optarg || *end || want < 1 || want > 1000) {
                fprintf(stderr, "recstream recommend: --n must be 1..1000\n");
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
    if ((!user == !item) || optind < argc) {
        fprintf(stderr, "recstream recommend: %s\n",
                optind < argc ? "unexpected argument" : "give exactly one of --user and --item");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    if (user && want > 0) {
        /* The list length is the ranker's top_n. */
        snprintf(nset, sizeof(nset), "ranking.top_n=%ld", want);
        if (rs_cli_add_set(&copts, nset)) return RS_EXIT_USAGE;
    }
    conf = rs_cli_load_config(&copts);
    if (!conf) return RS_EXIT_USAGE;
    if (!(p = input ? load_state(conf, input, format) : load_snapshot(conf))) goto out;

    n = user ? (size_t)conf->top_n : (size_t)conf->neighbors_k;
    if (item && want > 0 && (size_t)want < n) n = (size_t)want;
    recs = calloc(n, sizeof(*recs));
    if (!recs) goto out;
    if (user) {
        err = rs_pipeline_recommend(p, user, strlen(user), recs, &n);
    } else {
        err = rs_pipeline_similar(p, item, strlen(item), n, recs, &n);
        if (err == RS_ENOENT) {
            fprintf(stderr, "recstream recommend: item '%s' is not in the model\n", item);
            goto out;
        }
    }
    if (err) {
        fprintf(stderr, "recstream recommend: %s\n", rs_err_str(err));
        goto out;
    }
    if (json) {
        if (rs_listfmt_json(&buf, recs, n, rs_pipeline_items(p)) ||
            rs_buf_append(&buf, "", 1))
            goto out;
        printf("%s\n", buf.data);
    } else {
        print_text(p, user ? "user" : "similar to item", user ? user : item, recs, n,
                   user != NULL);
    }
    rc = RS_EXIT_OK;

out:
    rs_buf_free(&buf);
    free(recs);
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    return rc;
}
