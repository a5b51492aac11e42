/*
 * cmd_run.c - `recstream run`, the daemon: restore the newest snapshot that
 * verifies, consume every partition from the offset stored in it, apply each
 * event to the model, publish dirty users' lists to Redis every publish
 * interval, and snapshot the state every interval_s / every_events in a forked
 * child. Kafka offsets are committed only once a snapshot holding them is on
 * disk, so after any crash each event is in the model exactly once. SIGTERM
 * or SIGINT stops it: it publishes, writes a final snapshot, commits its
 * offsets, leaves the group and exits 0. SIGHUP re-reads the config file;
 * with [metrics] listen set, /metrics is served from the model's counters.
 * Bad messages are copied to the dead-letter topic (when set), and no
 * snapshot is taken while a copy is unacknowledged, so no offset past a bad
 * message is made durable or committed before its dead letter is. When
 * unpublished lists or unacknowledged dead letters pile up, consumption is
 * paused until they drain (back-pressure).
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recstream/blas.h"
#include "recstream/cli.h"
#include "recstream/exposition.h"
#include "recstream/kafka.h"
#include "recstream/log.h"
#include "recstream/metrics.h"
#include "recstream/pipeline.h"
#include "recstream/redis.h"
#include "recstream/snapshot.h"

/* Messages applied between two publish steps at most (~30 ms of work). Applying
 * comes first: under overload the model stays current and the dirty set
 * coalesces, so a user with several events is ranked once. */
#define CONSUME_BATCH 10000
/* Longest the loop blocks in Kafka's poll. */
#define POLL_MAX_MS 100
#define STATS_EVERY_NS (10ull * 1000000000ull)
#define METRICS_EVERY_NS 1000000000ull
#define SHUTDOWN_PUBLISH_NS (10ull * 1000000000ull) /* Redis may be down at exit */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;
static int offsets_lost; /* an applied event's offset could not be recorded */

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

#define MAX_LAG_PARTITIONS 1024

/* Renders the metrics text (with the consumer lag) and hands it to the HTTP server. */
static void update_metrics(struct rs_metrics *metrics, const struct rs_pipeline *p,
                           struct rs_kafka *kc, struct rs_exposition_extra *extra,
                           struct rs_buf *text)
{
    static struct rs_kafka_lag lags[MAX_LAG_PARTITIONS];
    static struct rs_kafka_stats kst;
    extra->lags = lags;
    extra->lag_cnt = kc ? rs_kafka_lag(kc, lags, MAX_LAG_PARTITIONS) : 0;
    if (kc) rs_kafka_stats(kc, &kst);
    extra->kafka = kc ? &kst : NULL;
    extra->have_sched = rs_thread_sched_ns(&extra->model_run_ns, &extra->model_wait_ns) == 0;
    rs_buf_reset(text);
    if (rs_exposition_render(text, p, extra) == RS_OK)
        rs_metrics_publish(metrics, text->data, text->len);
}

/* The snapshot side of the loop: the writer in flight and what it will make durable. */
struct snap_state {
    const struct rs_config *conf;
    struct rs_pipeline *p;
    struct rs_kafka *kc;
    struct rs_snapshot_shape shape;
    pid_t child;                     /* 0: none in flight */
    struct rs_kafka_offset *pending; /* the offsets the child's snapshot holds */
    size_t pending_cnt;
    uint64_t handled;                /* messages since the last snapshot started */
    uint64_t last_ns;                /* when the last snapshot started */
    uint64_t fork_max_ns;            /* longest ingestion stall taking one */
    uint64_t fork_ns;                /* the stall of the one in flight */
    uint64_t written, failed;
    uint64_t dl_retry_ns;            /* next try to settle dead letters before a snapshot */
    int closing;                     /* the final snapshot is done (or skipped) */
    struct rs_log_limit dl_limit;
};

/* ---- dead letters -------------------------------------------------------- */

/* A bad message goes to the dead-letter topic, when one is set. */
static void dead_letter(struct snap_state *ss, const struct rs_kafka_msg *msg,
                        enum rs_event_reason reason)
{
    rs_err_t err;

    if (!ss->conf->dead_letter_topic[0]) return;
    err = rs_kafka_dead_letter(ss->kc, msg, rs_event_reason_str(reason));
    if (err) {
        /* Its offset is in the pipeline already: a snapshot now would skip
         * it without a dead letter. Stop without one, as for a lost offset. */
        rs_error("dead letter for %s[%d]@%lld: %s: stopping", msg->topic, msg->partition,
                 (long long)msg->offset, rs_err_str(err));
        offsets_lost = 1;
        stop_requested = 1;
    }
}

/*
 * 1 when every dead letter is acknowledged, so a snapshot may take the
 * current offsets. Otherwise waits for them briefly (nothing is consumed
 * meanwhile, so none are added), at most once a second while the broker does
 * not acknowledge them; the snapshot waits until they are.
 */
static int dead_letters_settled(struct snap_state *ss)
{
    uint64_t left, now = rs_mono_ns();

    if (rs_kafka_dead_letters_pending(ss->kc) == 0) return 1;
    if (now < ss->dl_retry_ns) return 0;
    left = rs_kafka_dead_letters_flush(ss->kc, 500);
    if (left == 0) return 1;
    ss->dl_retry_ns = now + 1000000000ull;
    rs_log_limited(&ss->dl_limit, RS_LOG_WARN,
                   "snapshot postponed: %llu dead letter(s) not acknowledged yet",
                   (unsigned long long)left);
    return 0;
}

/* ---- back-pressure ------------------------------------------------------- */

/*
 * Pauses consumption when the lists waiting to be published (the publisher
 * is behind: Redis slow or down) or the dead letters waiting for the broker
 * reach their limit, and resumes once both are down to half of it. The
 * consumer keeps polling while paused, so the group membership stays alive.
 */
static void apply_backpressure(struct rs_kafka *kc, const struct rs_pipeline *p,
                               const struct rs_config *conf)
{
    struct rs_kafka_stats st;
    size_t lists = rs_pipeline_pending(p);
    size_t max_lists = (size_t)conf->max_pending_lists;
    uint64_t max_dl = (uint64_t)conf->max_pending_dead_letters;

    rs_kafka_stats(kc, &st);
    if (!st.paused && ((max_lists > 0 && lists >= max_lists) ||
                       st.dead_letters_pending >= max_dl)) {
        rs_info("back-pressure: pausing consumption (%zu lists to publish, %llu dead "
                "letters unacknowledged)",
                lists, (unsigned long long)st.dead_letters_pending);
        rs_kafka_pause(kc);
    } else if (st.paused && lists <= max_lists / 2 && st.dead_letters_pending <= max_dl / 2) {
        rs_info("back-pressure: resuming consumption (%zu lists to publish)", lists);
        rs_kafka_resume(kc);
    }
}

/* rs_kafka_prefetch_t: messages are keyed by user. */
static void prefetch_message(void *opaque, const void *key, size_t key_len, int stage)
{
    struct snap_state *ss = opaque;
    rs_pipeline_prefetch(ss->p, key, key_len, stage);
}

static int handle_message(void *opaque, const struct rs_kafka_msg *msg)
{
    struct snap_state *ss = opaque;
    enum rs_event_reason reason =
        rs_pipeline_handle(ss->p, msg->payload, msg->len, msg->ts_ms > 0 ? msg->ts_ms : 0);
    if (reason != RS_REASON_OK) dead_letter(ss, msg, reason);
    if (msg->ts_ms > 0) rs_pipeline_note_event_lag(ss->p, msg->ts_ms);
    if (rs_pipeline_set_offset(ss->p, msg->topic, msg->partition, msg->offset + 1)) {
        /* The event is in the model but not its position: a snapshot now would
         * replay it after a restart. Stop without one; the last good snapshot
         * and its offsets stay the truth. */
        rs_error("out of memory tracking %s[%d]: stopping", msg->topic, msg->partition);
        offsets_lost = 1;
        stop_requested = 1;
    }
    ss->handled++;
    return 0; /* applied or counted as bad: either way it is done with */
}

/* rs_kafka_offset_fn: partitions the snapshot knows resume where it stopped. */
static int snapshot_offset(void *opaque, const char *topic, int32_t partition, int64_t *offset)
{
    return rs_pipeline_offset(opaque, topic, partition, offset);
}

/* Copies the pipeline's offsets: what a snapshot taken now will hold. */
static rs_err_t capture_offsets(struct snap_state *ss)
{
    const struct rs_pipeline_offset *offs;
    size_t n = rs_pipeline_offsets(ss->p, &offs);
    struct rs_kafka_offset *copy = n ? malloc(n * sizeof(*copy)) : NULL;

    if (n && !copy) return RS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        copy[i].topic = offs[i].topic; /* pipeline-owned, never freed while it lives */
        copy[i].partition = offs[i].partition;
        copy[i].offset = offs[i].next;
    }
    free(ss->pending);
    ss->pending = copy;
    ss->pending_cnt = n;
    return RS_OK;
}

static int snapshot_due(const struct snap_state *ss)
{
    const struct rs_config *conf = ss->conf;
    if (ss->child || ss->handled == 0) return 0;
    if (conf->snapshot_every_events > 0 &&
        ss->handled >= (uint64_t)conf->snapshot_every_events)
        return 1;
    return conf->snapshot_interval_s > 0 &&
           rs_mono_ns() - ss->last_ns >= (uint64_t)conf->snapshot_interval_s * 1000000000ull;
}

/* Forks the writer. The fork is the only pause ingestion sees. */
static void snapshot_start(struct snap_state *ss)
{
    uint64_t t0;
    rs_err_t err;

    ss->last_ns = rs_mono_ns();
    ss->handled = 0;
    if (capture_offsets(ss)) {
        rs_error("snapshot: out of memory");
        return;
    }
    t0 = rs_mono_ns();
    err = rs_snapshot_bg_start(ss->conf->snapshot_dir, ss->conf->snapshot_keep, &ss->shape,
                               rs_pipeline_snapshot_fill, ss->p, &ss->child);
    t0 = rs_mono_ns() - t0;
    if (t0 > ss->fork_max_ns) ss->fork_max_ns = t0;
    ss->fork_ns = t0;
    if (err) {
        rs_pipeline_note_snapshot(ss->p, 0, rs_now_ms(), t0);
        rs_error("snapshot: fork failed: %s; offsets stay at the last snapshot",
                 strerror(errno));
        ss->child = 0;
        ss->failed++;
        return;
    }
    rs_debug("snapshot: writer %d started, fork took %.2f ms", (int)ss->child, t0 / 1e6);
}

/* Reaps the writer; on success its offsets become the committed ones. */
static void snapshot_reap(struct snap_state *ss, int wait)
{
    enum rs_snapshot_bg_state st;

    if (!ss->child) return;
    st = rs_snapshot_bg_poll(ss->child, wait);
    if (st == RS_SNAPSHOT_BG_RUNNING) return;
    ss->child = 0;
    rs_pipeline_note_snapshot(ss->p, st == RS_SNAPSHOT_BG_DONE, rs_now_ms(), ss->fork_ns);
    if (st == RS_SNAPSHOT_BG_DONE) {
        ss->written++;
        rs_pipeline_note_snapshot_duration(ss->p, rs_mono_ns() - ss->last_ns);
        rs_kafka_commit_offsets(ss->kc, ss->pending, ss->pending_cnt, 0);
        rs_debug("snapshot written; %zu partition offset(s) committed", ss->pending_cnt);
    } else {
        ss->failed++;
        rs_error("snapshot failed (see above): nothing committed past the last good "
                 "snapshot; ingestion goes on");
    }
}

/* A snapshot in the foreground (nothing is consumed meanwhile); on success its
 * offsets are in ss->pending, ready to commit. */
static rs_err_t snapshot_foreground(struct snap_state *ss, char *path, size_t path_size,
                                    char *errstr, size_t errstr_size)
{
    rs_err_t err = capture_offsets(ss);
    if (err) {
        snprintf(errstr, errstr_size, "out of memory");
    } else {
        err = rs_snapshot_write(ss->conf->snapshot_dir, ss->conf->snapshot_keep, &ss->shape,
                                rs_pipeline_snapshot_fill, ss->p, path, path_size, errstr,
                                errstr_size);
    }
    rs_pipeline_note_snapshot(ss->p, err == RS_OK, rs_now_ms(), 0);
    if (err) return err;
    ss->written++;
    ss->handled = 0;
    ss->last_ns = rs_mono_ns();
    return RS_OK;
}

/* ---- rebalances ---------------------------------------------------------- */

/*
 * rs_kafka_revoke_fn: partitions are about to go to another member. The
 * state so far is made durable and its offsets committed while this process
 * still owns them, so their next owner starts exactly where this model ends.
 * If that fails, the next owner starts at the last commit and the events
 * since are in both models (logged).
 */
static void on_revoke(void *opaque)
{
    struct snap_state *ss = opaque;
    char path[4096], errstr[512];

    if (ss->closing || offsets_lost) return;
    snapshot_reap(ss, 1); /* a snapshot in flight commits its offsets first */
    if (ss->handled > 0) {
        if (rs_kafka_dead_letters_flush(ss->kc, 10000) > 0) {
            rs_error("rebalance: dead letters not acknowledged; no snapshot, the next "
                     "owner starts at the last commit");
            return;
        }
        if (snapshot_foreground(ss, path, sizeof(path), errstr, sizeof(errstr))) {
            ss->failed++;
            rs_error("rebalance: snapshot failed: %s; the next owner starts at the last "
                     "commit",
                     errstr);
            return;
        }
        rs_info("rebalance: snapshot %s written", path);
    }
    if (ss->pending_cnt == 0) return;
    rs_kafka_commit_offsets(ss->kc, ss->pending, ss->pending_cnt, 1);
    rs_info("rebalance: the last snapshot's offsets committed before partitions are revoked");
}

/* Names this state's owner in commit metadata: host and snapshot directory. */
static void set_owner(struct rs_kafka *kc, const char *dir)
{
    char host[256], real[PATH_MAX], owner[1024];

    if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    if (!realpath(dir, real)) snprintf(real, sizeof(real), "%s", dir);
    snprintf(owner, sizeof(owner), "recstream %.200s:%.760s", host, real);
    if (rs_kafka_set_owner(kc, owner)) rs_warn("kafka: out of memory naming the owner");
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
            "Start-up restores the newest snapshot in [snapshot] dir that verifies and\n"
            "resumes each partition where it stopped. Stop with SIGTERM or SIGINT: lists\n"
            "are published, a final snapshot is written and its offsets committed.\n"
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
    struct snap_state ss;
    char errstr[512], path[4096];
    int opt, rc = RS_EXIT_RUNTIME, lock_fd = -1;
    uint64_t last_stats, deadline;
    rs_err_t err;
    struct sigaction sa;
    struct rs_metrics *metrics = NULL;
    struct rs_exposition_extra extra = {.start_time_ms = rs_now_ms()};
    struct rs_buf text;
    uint64_t last_metrics = 0;

    rs_buf_init(&text);
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
    memset(&ss, 0, sizeof(ss));
    ss.conf = conf;
    ss.dl_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 1);
    rs_pipeline_shape(conf, &ss.shape);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* over a file size limit a snapshot fails (EFBIG), loudly */

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
    ss.p = p;
    lock_fd = rs_snapshot_lock_dir(conf->snapshot_dir, errstr, sizeof(errstr));
    if (lock_fd < 0) {
        fprintf(stderr, "recstream: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }
    err = rs_snapshot_load_newest(conf->snapshot_dir, &ss.shape, rs_pipeline_snapshot_load, p,
                                  path, sizeof(path), errstr, sizeof(errstr));
    if (err == RS_OK) {
        rs_info("restored %s: %llu events, %u users, %u items", path,
                (unsigned long long)rs_pipeline_stats(p)->events_applied,
                rs_idmap_count(rs_pipeline_users(p)), rs_idmap_count(rs_pipeline_items(p)));
    } else if (err == RS_ENOENT) {
        rs_info("no snapshot in %s: starting with an empty model", conf->snapshot_dir);
    } else {
        fprintf(stderr, "recstream: %s\n", errstr);
        rc = err == RS_EINVAL ? RS_EXIT_USAGE : RS_EXIT_RUNTIME;
        goto out;
    }
    if (conf->metrics_listen && *conf->metrics_listen) {
        metrics = rs_metrics_create(conf->metrics_listen, errstr, sizeof(errstr));
        if (!metrics) { /* the form was checked with the config: this is a bind error */
            fprintf(stderr, "recstream: %s\n", errstr);
            goto out;
        }
    }
    kc = rs_kafka_consumer_create(conf, errstr, sizeof(errstr));
    if (!kc) {
        fprintf(stderr, "recstream: %s\n", errstr);
        rc = RS_EXIT_USAGE;
        goto out;
    }
    rs_kafka_set_prefetch(kc, prefetch_message);
    ss.kc = kc;
    rs_kafka_set_offset_fn(kc, snapshot_offset, p);
    rs_kafka_set_revoke_fn(kc, on_revoke, &ss);
    set_owner(kc, conf->snapshot_dir);
    if (brokers_file && rs_kafka_embedded_bootstraps(kc) &&
        write_brokers_file(brokers_file, rs_kafka_embedded_bootstraps(kc)))
        goto out;
    rs_info("recstream %s running: topics %s..., group %s, redis %s:%d, OpenBLAS %s kernels",
            RS_VERSION, conf->topics[0], conf->group_id, conf->redis_host, conf->redis_port,
            rs_blas_core());

    last_stats = ss.last_ns = rs_mono_ns();
    while (!stop_requested) {
        /* Block in poll only until the next publish batch is due. */
        int timeout = rs_pipeline_publish_wait_ms(p);
        rs_kafka_consume(kc, timeout < POLL_MAX_MS ? timeout : POLL_MAX_MS, CONSUME_BATCH,
                         handle_message, &ss);
        if (rs_pipeline_publish_step(p) == RS_ENOMEM)
            rs_error("publishing: out of memory; the lists stay pending");
        apply_backpressure(kc, p, conf);
        snapshot_reap(&ss, 0);
        if (snapshot_due(&ss) && dead_letters_settled(&ss)) snapshot_start(&ss);
        if (reload_requested) {
            reload_requested = 0;
            reload(conf, &copts);
        }
        if (metrics && rs_mono_ns() - last_metrics >= METRICS_EVERY_NS) {
            update_metrics(metrics, p, kc, &extra, &text);
            last_metrics = rs_mono_ns();
        }
        if (rs_mono_ns() - last_stats >= STATS_EVERY_NS) {
            log_stats(p);
            rs_info("snapshots written %llu, failed %llu, longest fork %.2f ms",
                    (unsigned long long)ss.written, (unsigned long long)ss.failed,
                    ss.fork_max_ns / 1e6);
            last_stats = rs_mono_ns();
        }
    }

    rs_info("stopping: publishing %zu pending lists", rs_pipeline_dirty(p));
    snapshot_reap(&ss, 1);
    if (offsets_lost) goto out; /* no final snapshot: it would double-count */
    deadline = rs_mono_ns() + SHUTDOWN_PUBLISH_NS;
    while (rs_pipeline_publish(p) != RS_OK && rs_mono_ns() < deadline) {
        struct timespec pause = {0, 200000000};
        nanosleep(&pause, NULL);
    }
    if (rs_pipeline_dirty(p) > 0)
        rs_warn("%zu lists could not be written; they are kept in the snapshot",
                rs_pipeline_dirty(p));
    if (rs_kafka_dead_letters_flush(kc, SHUTDOWN_PUBLISH_NS / 1000000) > 0) {
        rs_error("final snapshot skipped: %llu dead letter(s) not acknowledged; offsets "
                 "stay at the last snapshot (the messages after it are consumed, and bad "
                 "ones dead-lettered, again at the next start)",
                 (unsigned long long)rs_kafka_dead_letters_pending(kc));
        log_stats(p);
        goto out;
    }
    /* The final snapshot, in the foreground: nothing is consumed any more. */
    if (snapshot_foreground(&ss, path, sizeof(path), errstr, sizeof(errstr))) {
        rs_error("final snapshot failed: %s; offsets stay at the last snapshot", errstr);
        log_stats(p);
        goto out;
    }
    rs_kafka_commit_offsets(kc, ss.pending, ss.pending_cnt, 1);
    rs_info("final snapshot %s written, %zu partition offset(s) committed", path,
            ss.pending_cnt);
    log_stats(p);
    if (metrics) update_metrics(metrics, p, kc, &extra, &text);
    rc = RS_EXIT_OK;

out:
    ss.closing = 1; /* leaving the group revokes the partitions: nothing more to save */
    if (ss.child) snapshot_reap(&ss, 1);
    free(ss.pending);
    rs_kafka_destroy(kc);
    rs_metrics_destroy(metrics);
    rs_buf_free(&text);
    rs_pipeline_destroy(p);
    rs_redis_destroy(redis);
    rs_config_destroy(conf);
    if (lock_fd >= 0) close(lock_fd);
    return rc;
}
