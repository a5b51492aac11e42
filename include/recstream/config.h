/*
 * config.h - the operator's configuration: an INI file (config/recstream.conf
 * documents every key), `${ENV}` expansion in values, and `--set
 * section.key=value` overrides. Every key is declared once in a table in
 * config.c with its type and bounds; unknown keys and out-of-range values are
 * refused with "file:line: message". Keys in [kafka] that recstream does not
 * know are kept, in order, to be handed to librdkafka by the Kafka module.
 */
#ifndef RECSTREAM_CONFIG_H
#define RECSTREAM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"

/* How a published list is stored in Redis (DESIGN.md, "Redis keys"). */
enum rs_list_format {
    RS_FORMAT_JSON = 0,
    RS_FORMAT_MSGPACK,
    RS_FORMAT_ZSET,
};

/* A [kafka] property passed through to librdkafka. */
struct rs_config_prop {
    char *key;
    char *value;
    char *origin; /* "file:line" or "--set", for error messages */
};

struct rs_config {
    char *path; /* the file loaded, or NULL */

    /* [kafka] */
    char *brokers;            /* "embedded" starts the in-process mock cluster */
    char **topics;            /* parsed from the comma-separated `topics` */
    size_t topic_cnt;
    char *group_id;           /* `group.id` */
    char *dead_letter_topic;  /* empty: none */
    int embedded_partitions;  /* partitions per topic on the embedded broker */
    int max_pending_lists;    /* back-pressure: pause at this many unpublished lists; 0: off */
    int max_pending_dead_letters; /* back-pressure: pause at this many unacknowledged ones */
    struct rs_config_prop *kafka_props; /* pass-through properties */
    size_t kafka_prop_cnt;

    /* [redis] */
    char *redis_host;
    int redis_port;
    char *redis_password; /* empty: no AUTH */
    int redis_db;
    char *redis_prefix;
    enum rs_list_format redis_format;
    int redis_ttl_s;           /* 0: no expiry */
    int publish_interval_ms;

    /* [model] */
    int factors;
    double learning_rate;
    double regularization;
    double init_std;
    double rating_min;
    double rating_max;
    int negatives;
    uint64_t seed;
    uint32_t max_users;
    uint32_t max_items;
    double replay_ratio;      /* replayed events per live event; 0: off */
    uint32_t replay_size;     /* recent events kept for replay */
    double bias_prior;        /* ratings: count-based bias rate's prior; 0: off */
    double adagrad_rate;      /* ratings: per-row AdaGrad rate of the factors; 0: off */
    int64_t idle_user_ttl_s;  /* users idle longer are evicted; 0: never */
    int evict_when_full;      /* 1: a new user evicts the least recent one at max_users */

    /* [neighbors] */
    int neighbors_k;
    int neighbors_window;
    double neighbors_half_life_s;
    double neighbors_shrink;
    double neighbors_backward_weight; /* a pair's weight in the later item's row */
    double neighbors_gap_decay;       /* per step between the pair's items */

    /* [popularity] */
    double popularity_half_life_s;

    /* [ranking] */
    int top_n;
    double mf_weight;
    double neighbor_weight;
    double popularity_weight;
    double recency_decay; /* neighbour term: decay per step back in the recent items */
    int neighbor_list_max_age_ms; /* 0: exact neighbour lists */
    int64_t neighbor_list_max_events;

    /* [snapshot] */
    char *snapshot_dir;
    int snapshot_interval_s;
    int64_t snapshot_every_events;
    int snapshot_keep;

    /* [metrics] */
    char *metrics_listen; /* "host:port", empty: off */

    /* [log] */
    int log_level; /* enum rs_log_level */
};

/* A configuration holding every default. NULL on allocation failure. */
struct rs_config *rs_config_create(void);

/* Frees everything; NULL is a no-op. */
void rs_config_destroy(struct rs_config *conf);

/*
 * Reads the INI file at path over the current values. On error returns
 * RS_EIO/RS_EPARSE/RS_EINVAL and writes "path:line: message" to errstr;
 * conf may then hold part of the file and should be destroyed.
 */
rs_err_t rs_config_load(struct rs_config *conf, const char *path, char *errstr,
                        size_t errstr_size);

/*
 * Applies one "section.key=value" override (the `--set` flag), with the same
 * checks as the file. Keys in [kafka] that recstream does not own are added to
 * the pass-through list (replacing an earlier value of the same key).
 */
rs_err_t rs_config_set(struct rs_config *conf, const char *assignment,
                       char *errstr, size_t errstr_size);

/*
 * Checks the rules that span keys (rating_min < rating_max, dead_letter_topic
 * not among topics, some ranking weight above 0, metrics listen is host:port).
 * rs_config_load() runs it at the end of the file; rs_config_set() does not, so
 * that overrides may be applied in any order: call this after the last one.
 * Returns RS_OK or RS_EINVAL with the message in errstr.
 */
rs_err_t rs_config_check(const struct rs_config *conf, char *errstr, size_t errstr_size);

/* Name of a list format ("json", "msgpack", "zset"). */
const char *rs_config_format_name(enum rs_list_format format);

/*
 * Copies into running the settings that may change while the daemon runs
 * (ranking weights, log level, publish interval) from fresh, a newly loaded
 * and checked configuration. Returns how many settings changed; for every
 * other key that differs, logs a warning that it needs a restart.
 */
int rs_config_apply_live(struct rs_config *running, const struct rs_config *fresh);

#endif
