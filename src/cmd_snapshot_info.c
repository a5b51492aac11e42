/*
 * cmd_snapshot_info.c - `recstream snapshot-info PATH [--json]`: what a
 * snapshot file holds and whether it verifies, for operators and tests. The
 * file is checked section by section; when it verifies, its state is loaded
 * into a pipeline (as `run` would) to report users, items, events and the
 * stored partition offsets. Exit 1 when the file is corrupt or does not load.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstream/cli.h"
#include "recstream/config.h"
#include "recstream/pipeline.h"
#include "recstream/snapshot.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recstream snapshot-info PATH [--json] [--user-events]\n"
            "\n"
            "Verifies a snapshot file and describes it: format version, size, shape\n"
            "(factors, rating scale), every section with its length and checksum status,\n"
            "users, items, events applied and the offset stored for each partition.\n"
            "\n"
            "      --json          one JSON object instead of text\n"
            "      --user-events   also list every user with the events applied for it\n"
            "  -h, --help          this text\n"
            "\n"
            "exit codes: 0 the file verifies and loads, 1 it does not, 2 usage\n"
            "\n"
            "example:\n"
            "  recstream snapshot-info snapshots/snap-0000000000000007.rsnap --json\n");
}

static char *hex64(char *buf, uint64_t v)
{
    snprintf(buf, 17, "%016llx", (unsigned long long)v);
    return buf;
}

/* Loads snap into a pipeline shaped like it; NULL (errstr) if it does not load. */
static struct rs_pipeline *load_state(const struct rs_snapshot *snap, struct rs_config **conf,
                                      char *errstr, size_t errstr_size)
{
    const struct rs_snapshot_shape *shape = rs_snapshot_shape(snap);
    struct rs_pipeline *p = NULL;

    *conf = rs_config_create();
    if (!*conf) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    (*conf)->factors = (int)shape->factors;
    (*conf)->rating_min = shape->rating_min;
    (*conf)->rating_max = shape->rating_max;
    p = rs_pipeline_create(*conf, NULL, errstr, errstr_size);
    if (p && rs_pipeline_snapshot_load(p, snap, errstr, errstr_size) != RS_OK) {
        rs_pipeline_destroy(p);
        p = NULL;
    }
    return p;
}

static void print_text(const struct rs_snapshot *snap, const struct rs_pipeline *p,
                       const char *load_error, int user_events)
{
    const struct rs_snapshot_shape *shape = rs_snapshot_shape(snap);
    const char *problem = rs_snapshot_problem(snap);
    char hex[17];

    printf("file       %s\n", rs_snapshot_path(snap));
    printf("size       %llu bytes\n", (unsigned long long)rs_snapshot_size(snap));
    printf("version    %u\n", rs_snapshot_version(snap));
    printf("shape      factors %u, rating scale %g..%g\n", shape->factors,
           (double)shape->rating_min, (double)shape->rating_max);
    {
        int64_t ms = rs_snapshot_created_ms(snap);
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char stamp[32] = "?";
        if (gmtime_r(&secs, &tm)) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        printf("created    %s.%03dZ\n", stamp, (int)(ms % 1000));
    }
    printf("status     %s%s\n", problem ? "CORRUPT: " : load_error ? "DOES NOT LOAD: " : "ok",
           problem ? problem : load_error ? load_error : "");
    printf("sections   %zu\n", rs_snapshot_sections(snap));
    for (size_t i = 0; i < rs_snapshot_sections(snap); i++) {
        const struct rs_snapshot_section_info *si = rs_snapshot_section_at(snap, i);
        printf("  %3u %-16s %12llu bytes  xxh3 %s  %s\n", si->id, si->name,
               (unsigned long long)si->length, hex64(hex, si->checksum),
               si->ok ? "ok" : "CHECKSUM MISMATCH");
    }
    if (!p) return;
    {
        const struct rs_pipeline_offset *offs;
        size_t n = rs_pipeline_offsets(p, &offs);
        printf("users      %u\n", rs_idmap_count(rs_pipeline_users(p)));
        printf("items      %u\n", rs_idmap_count(rs_pipeline_items(p)));
        printf("events     %llu applied, %llu rejected\n",
               (unsigned long long)rs_pipeline_stats(p)->events_applied,
               (unsigned long long)rs_pipeline_stats(p)->events_rejected);
        printf("offsets    %zu partition(s)\n", n);
        for (size_t i = 0; i < n; i++)
            printf("  %s[%d] next %lld\n", offs[i].topic, offs[i].partition,
                   (long long)offs[i].next);
    }
    if (user_events) {
        const struct rs_idmap *users = rs_pipeline_users(p);
        for (uint32_t u = 0; u < rs_idmap_span(users); u++) {
            size_t len;
            const char *name = rs_idmap_name(users, u, &len);
            if (!name) continue; /* a removed user's free index */
            printf("user %.*s %u\n", (int)len, name, rs_pipeline_user_events(p, u));
        }
    }
}

static int print_json(const struct rs_snapshot *snap, const struct rs_pipeline *p,
                      const char *load_error, int user_events)
{
    const struct rs_snapshot_shape *shape = rs_snapshot_shape(snap);
    const char *problem = rs_snapshot_problem(snap);
    json_t *o = json_object(), *secs = json_array();
    char hex[17];
    int rc;

    json_object_set_new(o, "path", json_string(rs_snapshot_path(snap)));
    json_object_set_new(o, "size", json_integer((json_int_t)rs_snapshot_size(snap)));
    json_object_set_new(o, "version", json_integer(rs_snapshot_version(snap)));
    json_object_set_new(o, "factors", json_integer(shape->factors));
    json_object_set_new(o, "rating_min", json_real(shape->rating_min));
    json_object_set_new(o, "rating_max", json_real(shape->rating_max));
    json_object_set_new(o, "created_ms", json_integer(rs_snapshot_created_ms(snap)));
    json_object_set_new(o, "ok", json_boolean(!problem && !load_error));
    json_object_set_new(o, "problem", problem      ? json_string(problem)
                                      : load_error ? json_string(load_error)
                                                   : json_null());
    for (size_t i = 0; i < rs_snapshot_sections(snap); i++) {
        const struct rs_snapshot_section_info *si = rs_snapshot_section_at(snap, i);
        json_array_append_new(secs, json_pack("{s:i,s:s,s:I,s:s,s:b}", "id", (int)si->id,
                                              "name", si->name, "length",
                                              (json_int_t)si->length, "checksum",
                                              hex64(hex, si->checksum), "ok", si->ok));
    }
    json_object_set_new(o, "sections", secs);
    if (p) {
        const struct rs_pipeline_offset *offs;
        size_t n = rs_pipeline_offsets(p, &offs);
        json_t *arr = json_array();
        json_object_set_new(o, "users", json_integer(rs_idmap_count(rs_pipeline_users(p))));
        json_object_set_new(o, "items", json_integer(rs_idmap_count(rs_pipeline_items(p))));
        json_object_set_new(o, "events_applied",
                            json_integer((json_int_t)rs_pipeline_stats(p)->events_applied));
        json_object_set_new(o, "events_rejected",
                            json_integer((json_int_t)rs_pipeline_stats(p)->events_rejected));
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s,s:i,s:I}", "topic", offs[i].topic,
                                                 "partition", (int)offs[i].partition, "next",
                                                 (json_int_t)offs[i].next));
        json_object_set_new(o, "offsets", arr);
        if (user_events) {
            const struct rs_idmap *users = rs_pipeline_users(p);
            json_t *ue = json_object();
            for (uint32_t u = 0; u < rs_idmap_span(users); u++) {
                size_t len;
                const char *name = rs_idmap_name(users, u, &len);
                if (!name) continue; /* a removed user's free index */
                json_object_setn_new(ue, name, len, json_integer(rs_pipeline_user_events(p, u)));
            }
            json_object_set_new(o, "user_events", ue);
        }
    }
    rc = json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
    return rc;
}

int rs_cmd_snapshot_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"user-events", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct rs_snapshot *snap = NULL;
    struct rs_pipeline *p = NULL;
    struct rs_config *conf = NULL;
    char errstr[512], load_error[512];
    int opt, json = 0, user_events = 0, rc = RS_EXIT_RUNTIME;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = 1; break;
        case 'u': user_events = 1; break;
        case 'h': usage(stdout); return RS_EXIT_OK;
        default: usage(stderr); return RS_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "recstream snapshot-info: one PATH is required\n");
        usage(stderr);
        return RS_EXIT_USAGE;
    }
    snap = rs_snapshot_open(argv[optind], errstr, sizeof(errstr));
    if (!snap) {
        fprintf(stderr, "recstream snapshot-info: %s\n", errstr);
        return RS_EXIT_RUNTIME;
    }
    load_error[0] = '\0';
    if (!rs_snapshot_problem(snap)) {
        p = load_state(snap, &conf, load_error, sizeof(load_error));
        if (p) load_error[0] = '\0';
    }
    if (json)
        print_json(snap, p, load_error[0] ? load_error : NULL, user_events);
    else
        print_text(snap, p, load_error[0] ? load_error : NULL, user_events);
    if (!rs_snapshot_problem(snap) && p) rc = RS_EXIT_OK;
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    rs_snapshot_close(snap);
    return rc;
}
