/*
 * kafka.c - recstream's only contact with librdkafka. It builds the client
 * configuration from [kafka] (recstream's own keys, then every pass-through
 * property, each refused property reported with the file:line it came from),
 * runs the consumer-group poll loop, reading messages in chunks, with explicit
 * offset storing (an offset is stored only after the model has the message),
 * handles eager and cooperative rebalances, and produces keyed messages for
 * `recstream produce`.
 *
 * A consumer with a dead-letter topic also owns a second client, a producer,
 * that copies each bad message there (key and value unchanged, the reason and
 * the source topic/partition/offset in headers) and keeps each copy until the
 * broker has acknowledged it, re-sending after a failed delivery; the owner
 * asks how many are still unacknowledged before it makes offsets durable.
 * The consumer can also be paused and resumed as a whole (back-pressure), and
 * it retries a failed offset commit until a newer one replaces it. Its lag is
 * read from the watermarks librdkafka caches from fetch responses; while
 * paused nothing is fetched, so the log end offsets are asked of the brokers.
 *
 * With `brokers = embedded` the handle also owns a librdkafka mock cluster
 * (rdkafka_mock.h): a small Kafka-protocol broker on loopback inside this
 * process, with the configured topics created up front. Other processes may
 * reach it through rs_kafka_embedded_bootstraps().
 */
#include "recstream/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/log.h"

#define DEAD_LETTER_RETRY_NS 1000000000ull /* wait before re-sending a failed copy */
#define COMMIT_RETRY_NS 1000000000ull      /* wait before retrying a failed commit */
/* While paused: how long asking the brokers for log end offsets may block, and
 * the wait before asking again after a failed ask (the cached answer stands). */
#define END_QUERY_MS 200
#define END_QUERY_RETRY_NS 10000000000ull
/* The producer serves its delivery reports once per this many messages (and
 * whenever its queue is full, and in flush): a poll per message took locks
 * and a clock read for each one, a large share of the producer's CPU. */
#define PRODUCE_POLL_EVERY 1024u

/* A partition's log end offset as the brokers gave it (-1: not known). */
struct end_offset {
    char topic[128];
    int32_t partition;
    int64_t offset;
};

/* One bad message on its way to the dead-letter topic: owned copies, freed
 * once the broker has acknowledged it. */
struct dead_letter {
    struct dead_letter *next; /* in the retry list */
    uint64_t retry_at_ns;
    void *key, *value;
    size_t key_len, value_len;
    char reason[32], partition[16], offset[24];
    char topic[]; /* the source topic */
};

struct rs_kafka {
    rd_kafka_t *rk;            /* consumer or producer */
    rd_kafka_t *mock_rk;       /* owner of the embedded cluster, or NULL */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstraps;          /* embedded cluster address, or NULL */
    rd_kafka_topic_t *rkt;     /* producer: the main topic */
    int is_consumer;
    rd_kafka_queue_t *queue;   /* consumer: the consumer queue, for batch reads */
    uint64_t rebalances;       /* rebalance callbacks so far */
    rs_kafka_prefetch_t prefetch; /* hint for messages ahead, or NULL */
    rs_kafka_offset_fn offset_fn; /* start positions for assigned partitions */
    void *offset_opaque;
    rs_kafka_revoke_fn revoke_fn; /* makes state durable before partitions go */
    void *revoke_opaque;
    char *owner;                  /* commit metadata naming this state's owner */
    uint64_t delivery_errors;
    unsigned unpolled;            /* producer: messages since the last poll */
    struct rs_log_limit err_limit;
    /* dead letters (consumer with dead_letter_topic only) */
    rd_kafka_t *dlq_rk;            /* producer for the dead-letter topic, or NULL */
    rd_kafka_topic_t *dlq_rkt;
    struct dead_letter *retry;     /* failed deliveries waiting to be re-sent */
    uint64_t dl_produced, dl_failed, dl_dropped, dl_pending;
    /* back-pressure */
    int paused;
    uint64_t pauses;
    struct end_offset *ends;   /* log end offsets last asked while paused */
    size_t ends_cnt;
    uint64_t ends_retry_ns;    /* no new ask before this (after a failure) */
    /* the offsets last asked to commit, retried when the commit failed */
    rd_kafka_topic_partition_list_t *want;
    uint64_t commit_retry_at_ns;   /* 0: nothing to retry */
    uint64_t commits_failed;
};

static int set_prop(rd_kafka_conf_t *kconf, const char *origin, const char *key,
                    const char *value, char *errstr, size_t errstr_size)
{
    char kerr[512];
    if (rd_kafka_conf_set(kconf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "%s: kafka property %s: %s", origin, key, kerr);
        return -1;
    }
    return 0;
}

/* Starts the mock cluster and creates the configured topics in it. */
static int start_embedded(struct rs_kafka *kc, const struct rs_config *conf,
                          char *errstr, size_t errstr_size)
{
    char kerr[512];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(mconf, "log_level", "3", kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
        goto err;
    kc->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, kerr, sizeof(kerr));
    if (!kc->mock_rk) goto err; /* on failure the conf is still ours */
    mconf = NULL;               /* owned by mock_rk from here */

    kc->mcluster = rd_kafka_mock_cluster_new(kc->mock_rk, 1);
    if (!kc->mcluster) {
        snprintf(kerr, sizeof(kerr), "could not create the mock cluster");
        goto err;
    }
    for (size_t t = 0; t < conf->topic_cnt; t++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
            kc->mcluster, conf->topics[t], conf->embedded_partitions, 1);
        if (e) {
            snprintf(kerr, sizeof(kerr), "creating topic %s: %s", conf->topics[t],
                     rd_kafka_err2str(e));
            goto err;
        }
    }
    if (conf->dead_letter_topic && *conf->dead_letter_topic)
        rd_kafka_mock_topic_create(kc->mcluster, conf->dead_letter_topic, 1, 1);
    kc->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(kc->mcluster));
    if (!kc->bootstraps) {
        snprintf(kerr, sizeof(kerr), "out of memory");
        goto err;
    }
    rs_info("embedded broker listening on %s (%d partitions per topic)", kc->bootstraps,
            conf->embedded_partitions);
    return 0;

err:
    if (mconf) rd_kafka_conf_destroy(mconf);
    snprintf(errstr, errstr_size, "embedded broker: %s", kerr);
    return -1;
}

/* The configuration shared by consumer and producer; NULL on error. */
static rd_kafka_conf_t *base_conf(struct rs_kafka *kc, const struct rs_config *conf,
                                  char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    const char *brokers = conf->brokers;

    if (strcmp(conf->brokers, "embedded") == 0) {
        if (start_embedded(kc, conf, errstr, errstr_size)) goto err;
        brokers = kc->bootstraps;
    }
    if (set_prop(kconf, "[kafka] brokers", "bootstrap.servers", brokers, errstr,
                 errstr_size))
        goto err;
    if (set_prop(kconf, "default", "client.id", "recstream", errstr, errstr_size))
        goto err;
    return kconf;

err:
    rd_kafka_conf_destroy(kconf);
    return NULL;
}

/* Sets the pass-through properties, last, so an operator can override our defaults. */
static int apply_passthrough(rd_kafka_conf_t *kconf, const struct rs_config *conf,
                         char *errstr, size_t errstr_size)
{
    for (size_t p = 0; p < conf->kafka_prop_cnt; p++) {
        const struct rs_config_prop *prop = &conf->kafka_props[p];
        if (set_prop(kconf, prop->origin, prop->key, prop->value, errstr, errstr_size))
            return -1;
    }
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        rs_error("kafka %s: %s", fac, buf);
    else if (level <= 4)
        rs_warn("kafka %s: %s", fac, buf);
    else
        rs_debug("kafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct rs_kafka *kc = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rs_error("kafka fatal error: %s", reason);
        return;
    }
    rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: %s: %s",
                   rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void log_partitions(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    char line[512];
    size_t off = 0;
    line[0] = '\0';
    for (int i = 0; i < parts->cnt && off < sizeof(line) - 64; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s[%d]", i ? " " : "",
                                parts->elems[i].topic, parts->elems[i].partition);
    rs_info("kafka: %s %d partition(s): %s", what, parts->cnt, line);
}

/*
 * Where each newly assigned partition starts, when an offset function is set:
 * at the offset the model holds for it (its snapshot), unless the group's
 * committed offset is further and was committed by another owner (commit
 * metadata): then another instance applied the events in between while it
 * held the partition, and they are in its model, not to be applied here.
 * A committed offset of this owner's is never preferred: an older snapshot
 * restored after a corrupt newer one must replay what the newer one held.
 * Partitions the model does not know start from the committed offset.
 */
static void start_positions(struct rs_kafka *kc, rd_kafka_t *rk,
                            rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *committed = NULL;
    int known = 0;

    for (int i = 0; i < parts->cnt; i++) {
        int64_t offset;
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (kc->offset_fn(kc->offset_opaque, tp->topic, tp->partition, &offset)) {
            tp->offset = offset;
            known++;
        }
    }
    if (known) {
        rd_kafka_resp_err_t err;
        committed = rd_kafka_topic_partition_list_copy(parts);
        for (int i = 0; i < committed->cnt; i++) committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        err = rd_kafka_committed(rk, committed, 10000);
        if (err) {
            rs_warn("kafka: reading committed offsets: %s; starting from the snapshot's",
                    rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(committed);
            committed = NULL;
        }
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        const rd_kafka_topic_partition_t *c;
        if (tp->offset < 0) continue; /* unknown here: the committed offset */
        c = committed ? rd_kafka_topic_partition_list_find(committed, tp->topic, tp->partition)
                      : NULL;
        if (c && !c->err && c->offset > tp->offset &&
            !(kc->owner && c->metadata_size == strlen(kc->owner) &&
              memcmp(c->metadata, kc->owner, c->metadata_size) == 0)) {
            rs_warn("kafka: %s[%d]: another instance went on to offset %lld after this "
                    "model's %lld; starting there (the events between are in its model)",
                    tp->topic, tp->partition, (long long)c->offset, (long long)tp->offset);
            tp->offset = c->offset;
        } else {
            rs_info("kafka: %s[%d] starts at offset %lld (snapshot)", tp->topic, tp->partition,
                    (long long)tp->offset);
        }
    }
    if (committed) rd_kafka_topic_partition_list_destroy(committed);
}

/*
 * Rebalances for both protocols: eager assigns/revokes the whole set,
 * cooperative adds/removes increments. Without an offset function, the
 * offsets stored for partitions about to be taken away are committed, so the
 * next owner starts after the events this process has applied. With one,
 * positions come from start_positions() on assignment, and before partitions
 * are revoked (not when they are lost: then another member may own them
 * already) the revoke function makes the state durable and commits it.
 */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    /* NULL when the protocol is not known (yet or any more, e.g. while closing). */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    struct rs_kafka *kc = opaque;

    kc->rebalances++; /* rs_kafka_consume checks the batch it is reading */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", parts);
        if (kc->offset_fn) start_positions(kc, rk, parts);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        /* Back-pressure holds for partitions that arrive while it is on. */
        if (kc->paused && !error && !ret) rd_kafka_pause_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        log_partitions(lost ? "lost" : "revoked", parts);
        if (!kc->offset_fn && !lost) rd_kafka_commit(rk, NULL, 0);
        if (kc->revoke_fn && !lost) kc->revoke_fn(kc->revoke_opaque);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    } else {
        rs_error("kafka: rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    if (error) {
        rs_error("kafka: incremental assignment failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        rs_error("kafka: assignment failed: %s", rd_kafka_err2str(ret));
    }
}

/* ---- offset commits ------------------------------------------------------ */

/* Offset commit results, sync and async alike: a failure is counted and the
 * offsets last asked for are committed again a second later (unless a newer
 * commit replaced them meanwhile). The model never depends on a commit: the
 * snapshot holds the offsets; the commit tells the group (lag, other members). */
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct rs_kafka *kc = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (!err) return;
    kc->commits_failed++;
    if (kc->want) kc->commit_retry_at_ns = rs_mono_ns() + COMMIT_RETRY_NS;
    rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: offset commit failed: %s (retrying)",
                   rd_kafka_err2str(err));
}

/* The partitions of list in the current assignment, offsets and metadata
 * included (a revoked partition's offsets are its new owner's to commit);
 * NULL when none. */
static rd_kafka_topic_partition_list_t *assigned_only(rd_kafka_t *rk,
                                                      const rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_topic_partition_list_t *owned = NULL, *keep = NULL;

    if (rd_kafka_assignment(rk, &owned) || !owned) return NULL;
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        rd_kafka_topic_partition_t *kept;
        if (!rd_kafka_topic_partition_list_find(owned, tp->topic, tp->partition)) {
            rs_debug("kafka: not committing %s[%d]@%lld: no longer assigned", tp->topic,
                     tp->partition, (long long)tp->offset);
            continue;
        }
        if (!keep) keep = rd_kafka_topic_partition_list_new(list->cnt);
        kept = rd_kafka_topic_partition_list_add(keep, tp->topic, tp->partition);
        kept->offset = tp->offset;
        if (tp->metadata_size && (kept->metadata = malloc(tp->metadata_size))) {
            memcpy(kept->metadata, tp->metadata, tp->metadata_size);
            kept->metadata_size = tp->metadata_size;
        }
    }
    rd_kafka_topic_partition_list_destroy(owned);
    return keep;
}

/* Commits kc->want (the assigned part of it). */
static rd_kafka_resp_err_t commit_wanted(struct rs_kafka *kc, int sync)
{
    rd_kafka_topic_partition_list_t *list = assigned_only(kc->rk, kc->want);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    kc->commit_retry_at_ns = 0;
    if (!list) return RD_KAFKA_RESP_ERR_NO_ERROR;
    err = rd_kafka_commit(kc->rk, list, !sync);
    rd_kafka_topic_partition_list_destroy(list);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) err = RD_KAFKA_RESP_ERR_NO_ERROR;
    return err;
}

/* ---- dead letters -------------------------------------------------------- */

static void dead_letter_free(struct dead_letter *dl)
{
    if (!dl) return;
    free(dl->key);
    free(dl->value);
    free(dl);
}

/*
 * A copy that was not delivered goes to the retry list, to be re-sent a
 * second later: the snapshot waits for it. One larger than the dead-letter
 * topic accepts can never be delivered, so it is dropped (counted, logged)
 * rather than holding every later snapshot back.
 */
static void dead_letter_failed(struct rs_kafka *kc, struct dead_letter *dl,
                               rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        kc->dl_dropped++;
        kc->dl_pending--;
        rs_log_limited(&kc->err_limit, RS_LOG_ERROR,
                       "kafka: dead letter %s[%s]@%s dropped: %zu bytes, larger than the "
                       "dead-letter topic accepts",
                       dl->topic, dl->partition, dl->offset, dl->value_len);
        dead_letter_free(dl);
        return;
    }
    kc->dl_failed++;
    rs_log_limited(&kc->err_limit, RS_LOG_ERROR, "kafka: dead letter %s[%s]@%s: %s (re-sending)",
                   dl->topic, dl->partition, dl->offset, rd_kafka_err2str(err));
    dl->retry_at_ns = rs_mono_ns() + DEAD_LETTER_RETRY_NS;
    dl->next = kc->retry;
    kc->retry = dl;
}

/* Queues dl for the dead-letter topic; on a local error it goes through
 * dead_letter_failed. dl stays owned by kc either way. */
static void dead_letter_send(struct rs_kafka *kc, struct dead_letter *dl)
{
    rd_kafka_resp_err_t err;

    for (;;) {
        err = rd_kafka_producev(
            kc->dlq_rk, RD_KAFKA_V_RKT(kc->dlq_rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_KEY(dl->key, dl->key_len),
            RD_KAFKA_V_VALUE(dl->value, dl->value_len),
            RD_KAFKA_V_HEADER(RS_KAFKA_HDR_REASON, dl->reason, -1),
            RD_KAFKA_V_HEADER(RS_KAFKA_HDR_TOPIC, dl->topic, -1),
            RD_KAFKA_V_HEADER(RS_KAFKA_HDR_PARTITION, dl->partition, -1),
            RD_KAFKA_V_HEADER(RS_KAFKA_HDR_OFFSET, dl->offset, -1), RD_KAFKA_V_OPAQUE(dl),
            RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(kc->dlq_rk, 100); /* local queue full: let deliveries drain */
    }
    if (err) dead_letter_failed(kc, dl, err);
}

/* Delivery reports of the dead-letter producer (served by rd_kafka_poll). */
static void dead_letter_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct rs_kafka *kc = opaque;
    struct dead_letter *dl = rkm->_private;
    (void)rk;
    if (!rkm->err) {
        kc->dl_produced++;
        kc->dl_pending--;
        dead_letter_free(dl);
        return;
    }
    dead_letter_failed(kc, dl, rkm->err);
}

/* Serves delivery reports, re-sends failed copies whose wait is over and
 * retries a failed offset commit. */
static void serve_side_jobs(struct rs_kafka *kc, int timeout_ms)
{
    uint64_t now = rs_mono_ns();
    if (kc->rk && kc->commit_retry_at_ns && now >= kc->commit_retry_at_ns && kc->want) {
        rd_kafka_resp_err_t err = commit_wanted(kc, 0);
        if (err) {
            kc->commits_failed++;
            kc->commit_retry_at_ns = now + COMMIT_RETRY_NS;
        }
    }
    if (!kc->dlq_rk) return;
    rd_kafka_poll(kc->dlq_rk, timeout_ms);
    if (kc->retry) {
        struct dead_letter *due = NULL, **pp = &kc->retry;
        while (*pp) { /* unlink those due first: a failed send re-links them */
            struct dead_letter *dl = *pp;
            if (dl->retry_at_ns <= now) {
                *pp = dl->next;
                dl->next = due;
                due = dl;
            } else {
                pp = &dl->next;
            }
        }
        while (due) {
            struct dead_letter *dl = due;
            due = dl->next;
            dl->next = NULL;
            dead_letter_send(kc, dl);
        }
    }
}

/* The dead-letter producer gets the consumer's pass-through properties: the
 * consumer-only ones are expected there, not worth a warning. */
static void dead_letter_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                               const char *buf)
{
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "consumer property"))
        level = 7;
    log_cb(rk, level, fac, buf);
}

/* The dead-letter producer: same brokers and pass-through properties (SASL,
 * TLS) as the consumer, a short linger so acknowledgements come quickly. */
static int dead_letter_create(struct rs_kafka *kc, const struct rs_config *conf, char *errstr,
                              size_t errstr_size)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    const char *brokers = kc->bootstraps ? kc->bootstraps : conf->brokers;

    if (set_prop(kconf, "[kafka] brokers", "bootstrap.servers", brokers, errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "client.id", "recstream-dead-letters", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "linger.ms", "5", errstr, errstr_size) ||
        apply_passthrough(kconf, conf, errstr, errstr_size))
        goto err;
    rd_kafka_conf_set_opaque(kconf, kc);
    rd_kafka_conf_set_log_cb(kconf, dead_letter_log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_dr_msg_cb(kconf, dead_letter_dr);
    kc->dlq_rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
    if (!kc->dlq_rk) goto err;
    kconf = NULL; /* owned by dlq_rk */
    kc->dlq_rkt = rd_kafka_topic_new(kc->dlq_rk, conf->dead_letter_topic, NULL);
    if (!kc->dlq_rkt) {
        snprintf(errstr, errstr_size, "dead-letter topic %s: %s", conf->dead_letter_topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    rs_info("kafka: bad messages go to dead-letter topic %s", conf->dead_letter_topic);
    return 0;

err:
    if (kconf) rd_kafka_conf_destroy(kconf);
    return -1;
}

rs_err_t rs_kafka_dead_letter(struct rs_kafka *kc, const struct rs_kafka_msg *msg,
                              const char *reason)
{
    size_t tlen = strlen(msg->topic);
    struct dead_letter *dl;

    if (!kc->dlq_rk) return RS_EINVAL;
    dl = calloc(1, sizeof(*dl) + tlen + 1);
    if (!dl) return RS_ENOMEM;
    memcpy(dl->topic, msg->topic, tlen + 1);
    snprintf(dl->reason, sizeof(dl->reason), "%s", reason);
    snprintf(dl->partition, sizeof(dl->partition), "%d", (int)msg->partition);
    snprintf(dl->offset, sizeof(dl->offset), "%lld", (long long)msg->offset);
    if ((msg->key_len && !(dl->key = malloc(msg->key_len))) ||
        (msg->len && !(dl->value = malloc(msg->len)))) {
        dead_letter_free(dl);
        return RS_ENOMEM;
    }
    if (msg->key_len) memcpy(dl->key, msg->key, msg->key_len);
    if (msg->len) memcpy(dl->value, msg->payload, msg->len);
    dl->key_len = msg->key ? msg->key_len : 0;
    dl->value_len = msg->len;
    kc->dl_pending++;
    dead_letter_send(kc, dl);
    return RS_OK;
}

uint64_t rs_kafka_dead_letters_flush(struct rs_kafka *kc, int timeout_ms)
{
    uint64_t deadline = rs_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

    while (kc->dl_pending > 0) {
        uint64_t now = rs_mono_ns();
        if (now >= deadline) break;
        serve_side_jobs(kc, 10);
    }
    return kc->dl_pending;
}

uint64_t rs_kafka_dead_letters_pending(const struct rs_kafka *kc)
{
    return kc->dl_pending;
}

/* ---- back-pressure ------------------------------------------------------- */

static void pause_resume(struct rs_kafka *kc, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err;

    if (rd_kafka_assignment(kc->rk, &parts) || !parts) return;
    err = pause ? rd_kafka_pause_partitions(kc->rk, parts)
                : rd_kafka_resume_partitions(kc->rk, parts);
    if (err)
        rs_warn("kafka: %s partitions: %s", pause ? "pausing" : "resuming",
                rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(parts);
}

void rs_kafka_pause(struct rs_kafka *kc)
{
    if (kc->paused) return;
    kc->paused = 1;
    kc->pauses++;
    kc->ends_retry_ns = 0;
    pause_resume(kc, 1);
}

void rs_kafka_resume(struct rs_kafka *kc)
{
    if (!kc->paused) return;
    kc->paused = 0;
    pause_resume(kc, 0);
}

void rs_kafka_stats(const struct rs_kafka *kc, struct rs_kafka_stats *st)
{
    st->dead_letters_produced = kc->dl_produced;
    st->dead_letters_failed = kc->dl_failed;
    st->dead_letters_dropped = kc->dl_dropped;
    st->dead_letters_pending = kc->dl_pending;
    st->commits_failed = kc->commits_failed;
    st->pauses = kc->pauses;
    st->paused = kc->paused;
}

struct rs_kafka *rs_kafka_consumer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size)
{
    struct rs_kafka *kc = calloc(1, sizeof(*kc));
    rd_kafka_conf_t *kconf = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;

    if (!kc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kc->is_consumer = 1;
    kc->err_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 5);
    kconf = base_conf(kc, conf, errstr, errstr_size);
    if (!kconf) goto err;

    /* recstream decides which offsets are safe: nothing is stored or
     * committed behind its back. Range assignment is the safe default on
     * librdkafka 2.0.2 (cooperative-sticky can abort on close there). */
    if (set_prop(kconf, "default", "group.id", conf->group_id, errstr, errstr_size) ||
        set_prop(kconf, "default", "enable.auto.commit", "false", errstr, errstr_size) ||
        set_prop(kconf, "default", "enable.auto.offset.store", "false", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "auto.offset.reset", "earliest", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "partition.assignment.strategy", "range", errstr,
                 errstr_size) ||
        set_prop(kconf, "default", "enable.partition.eof", "false", errstr,
                 errstr_size) ||
        /* Measured (docs/BENCHMARKS.md, "Ingestion"): librdkafka's default prefetch
         * target (100000 messages) made backlog catch-up several times slower than
         * 1000000; the queue stays bounded by queued.max.messages.kbytes. */
        set_prop(kconf, "default", "queued.min.messages", "1000000", errstr,
                 errstr_size) ||
        /* Measured (docs/BENCHMARKS.md, "Freshness"): with librdkafka's defaults
         * (answer a fetch as soon as there is one byte) a busy stream is read in
         * small fetches, about a thousand a second, and at 100,000 events/s
         * the broker took 0.1-0.25 of a core more; waiting for 64 KB or 5 ms
         * adds at most 5 ms to an event's way. */
        set_prop(kconf, "default", "fetch.min.bytes", "65536", errstr, errstr_size) ||
        set_prop(kconf, "default", "fetch.wait.max.ms", "5", errstr, errstr_size) ||
        apply_passthrough(kconf, conf, errstr, errstr_size))
        goto err;

    rd_kafka_conf_set_opaque(kconf, kc);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_rebalance_cb(kconf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(kconf, commit_cb);

    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, errstr_size);
    if (!kc->rk) goto err;
    kconf = NULL; /* owned by rk */
    rd_kafka_poll_set_consumer(kc->rk);
    kc->queue = rd_kafka_queue_get_consumer(kc->rk);
    if (conf->dead_letter_topic && *conf->dead_letter_topic &&
        dead_letter_create(kc, conf, errstr, errstr_size))
        goto err;

    topics = rd_kafka_topic_partition_list_new((int)conf->topic_cnt);
    for (size_t t = 0; t < conf->topic_cnt; t++)
        rd_kafka_topic_partition_list_add(topics, conf->topics[t], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(kc->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribing: %s", rd_kafka_err2str(err));
        goto err;
    }
    return kc;

err:
    if (kconf) rd_kafka_conf_destroy(kconf);
    rs_kafka_destroy(kc);
    return NULL;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct rs_kafka *kc = opaque;
    (void)rk;
    if (rkm->err) {
        kc->delivery_errors++;
        rs_log_limited(&kc->err_limit, RS_LOG_ERROR, "kafka: delivery failed: %s",
                       rd_kafka_err2str(rkm->err));
    }
}

struct rs_kafka *rs_kafka_producer_create(const struct rs_config *conf, char *errstr,
                                          size_t errstr_size)
{
    struct rs_kafka *kc = calloc(1, sizeof(*kc));
    rd_kafka_conf_t *kconf = NULL;

    if (!kc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kc->err_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 5);
    kconf = base_conf(kc, conf, errstr, errstr_size);
    if (!kconf) goto err;
    /* Throughput defaults for bulk loading; pass-through keys may override. */
    if (set_prop(kconf, "default", "linger.ms", "20", errstr, errstr_size) ||
        set_prop(kconf, "default", "batch.num.messages", "10000", errstr, errstr_size) ||
        set_prop(kconf, "default", "compression.codec", "lz4", errstr, errstr_size) ||
        apply_passthrough(kconf, conf, errstr, errstr_size))
        goto err;
    rd_kafka_conf_set_opaque(kconf, kc);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_dr_msg_cb(kconf, dr_msg_cb);

    kc->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
    if (!kc->rk) goto err;
    kconf = NULL;
    kc->rkt = rd_kafka_topic_new(kc->rk, conf->topics[0], NULL);
    if (!kc->rkt) {
        snprintf(errstr, errstr_size, "topic %s: %s", conf->topics[0],
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto err;
    }
    return kc;

err:
    if (kconf) rd_kafka_conf_destroy(kconf);
    rs_kafka_destroy(kc);
    return NULL;
}

void rs_kafka_destroy(struct rs_kafka *kc)
{
    if (!kc) return;
    if (kc->rk) {
        if (kc->is_consumer) {
            rd_kafka_resp_err_t err = rd_kafka_consumer_close(kc->rk);
            if (err) rs_warn("kafka: closing consumer: %s", rd_kafka_err2str(err));
            if (kc->queue) rd_kafka_queue_destroy(kc->queue);
        } else {
            int left;
            rd_kafka_flush(kc->rk, 10000);
            left = rd_kafka_outq_len(kc->rk);
            if (left > 0) rs_warn("kafka: %d message(s) not delivered at close", left);
        }
        if (kc->rkt) rd_kafka_topic_destroy(kc->rkt);
        rd_kafka_destroy(kc->rk);
        kc->rk = NULL; /* no commit retry from here on */
    }
    if (kc->dlq_rk) {
        /* Copies not acknowledged by now are in no snapshot's offsets: their
         * messages are consumed, and dead-lettered, again after a restart. */
        if (rs_kafka_dead_letters_flush(kc, 5000) > 0)
            rs_warn("kafka: %llu dead letter(s) not acknowledged at close",
                    (unsigned long long)kc->dl_pending);
        if (kc->dlq_rkt) rd_kafka_topic_destroy(kc->dlq_rkt);
        rd_kafka_purge(kc->dlq_rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(kc->dlq_rk, 0); /* purged messages' reports free their copies */
        rd_kafka_destroy(kc->dlq_rk);
    }
    while (kc->retry) {
        struct dead_letter *dl = kc->retry;
        kc->retry = dl->next;
        dead_letter_free(dl);
    }
    if (kc->want) rd_kafka_topic_partition_list_destroy(kc->want);
    free(kc->ends);
    if (kc->mcluster) rd_kafka_mock_cluster_destroy(kc->mcluster);
    if (kc->mock_rk) rd_kafka_destroy(kc->mock_rk);
    free(kc->bootstraps);
    free(kc->owner);
    free(kc);
}

/* ---- consuming ------------------------------------------------------------ */

/*
 * Messages come in chunks: the first through rd_kafka_consumer_poll() (it
 * blocks up to the timeout, so a lone event is handled as soon as it
 * arrives), the rest through rd_kafka_consume_batch_queue() without waiting,
 * up to CHUNK at a time: one queue call per chunk instead of one per message.
 * The offset of the last applied message of each partition is stored once
 * per chunk, before the next call into librdkafka, so every stored offset is
 * in the model and nothing applied is left unstored when a rebalance callback
 * runs (only ever inside those calls).
 *
 * librdkafka serves rebalance callbacks inside a batch call too, and the
 * messages it took from the queue before a revocation come back with the
 * batch. So when a rebalance ran during the call, the messages of partitions
 * no longer assigned are dropped, unapplied and unstored: their next owner,
 * this process included, reads them again from the offset the revocation
 * made durable. (Messages taken after the revocation are discarded by
 * librdkafka itself: the partition's fetch version changed. A partition
 * revoked and assigned again within one call would need a whole group round
 * trip to complete while the call drains what is already queued, without
 * waiting.)
 */
#define CHUNK 1024
#define HELD_MAX 16 /* partitions whose stored offset is pending in a chunk */

struct held {
    rd_kafka_message_t *m[HELD_MAX];
    int n;
};

static void store_offset(struct rs_kafka *kc, const rd_kafka_message_t *rkm)
{
    /* Stores offset + 1: the next message not yet in the model. */
    rd_kafka_resp_err_t err =
        rd_kafka_offset_store(rkm->rkt, rkm->partition, rkm->offset);
    if (err)
        rs_log_limited(&kc->err_limit, RS_LOG_WARN,
                       "kafka: storing offset %s[%d]@%lld: %s",
                       rd_kafka_topic_name(rkm->rkt), rkm->partition,
                       (long long)rkm->offset, rd_kafka_err2str(err));
}

static void held_flush(struct rs_kafka *kc, struct held *h)
{
    for (int j = 0; j < h->n; j++) {
        store_offset(kc, h->m[j]);
        rd_kafka_message_destroy(h->m[j]);
    }
    h->n = 0;
}

/* Keeps an applied message as its partition's latest (its offset to store). */
static void held_put(struct rs_kafka *kc, struct held *h, rd_kafka_message_t *rkm)
{
    for (int j = 0; j < h->n; j++) {
        if (h->m[j]->partition == rkm->partition && h->m[j]->rkt == rkm->rkt) {
            rd_kafka_message_destroy(h->m[j]);
            h->m[j] = rkm;
            return;
        }
    }
    if (h->n < HELD_MAX) {
        h->m[h->n++] = rkm;
        return;
    }
    store_offset(kc, rkm);
    rd_kafka_message_destroy(rkm);
}

/* Hands one message to handler; 1 if it was a message, 0 for an error event. */
static int handle(struct rs_kafka *kc, struct held *h, rd_kafka_message_t *rkm,
                  rs_kafka_handler_t handler, void *opaque)
{
    struct rs_kafka_msg msg;
    rd_kafka_timestamp_type_t tstype;

    if (rkm->err) {
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: consume: %s",
                           rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        return 0;
    }
    msg.payload = rkm->payload;
    msg.len = rkm->len;
    msg.key = rkm->key;
    msg.key_len = rkm->key_len;
    msg.topic = rd_kafka_topic_name(rkm->rkt);
    msg.partition = rkm->partition;
    msg.offset = rkm->offset;
    msg.ts_ms = rd_kafka_message_timestamp(rkm, &tstype);
    if (handler(opaque, &msg) == 0)
        held_put(kc, h, rkm);
    else
        rd_kafka_message_destroy(rkm);
    return 1;
}

/* After a rebalance inside a batch call: drops the messages of partitions no
 * longer assigned, compacting the rest; returns how many are left. */
static size_t drop_unassigned(struct rs_kafka *kc, rd_kafka_message_t **batch, size_t n)
{
    rd_kafka_topic_partition_list_t *owned = NULL;
    size_t kept = 0, dropped = 0;

    if (rd_kafka_assignment(kc->rk, &owned)) owned = NULL;
    for (size_t j = 0; j < n; j++) {
        rd_kafka_message_t *rkm = batch[j];
        if (rkm->err ||
            (owned && rd_kafka_topic_partition_list_find(
                          owned, rd_kafka_topic_name(rkm->rkt), rkm->partition))) {
            batch[kept++] = rkm;
        } else {
            rd_kafka_message_destroy(rkm);
            dropped++;
        }
    }
    if (owned) rd_kafka_topic_partition_list_destroy(owned);
    if (dropped)
        rs_info("kafka: %zu message(s) of revoked partitions left to their next owner",
                dropped);
    return kept;
}

void rs_kafka_set_prefetch(struct rs_kafka *kc, rs_kafka_prefetch_t fn)
{
    if (kc) kc->prefetch = fn;
}

/* Hints stage `stage` for message m when it has a key (see kafka.h). */
static void hint(const struct rs_kafka *kc, const rd_kafka_message_t *m, int stage,
                 void *opaque)
{
    if (!m->err && m->key) kc->prefetch(opaque, m->key, m->key_len, stage);
}

/* Hints the prefetch stages for the messages after batch[j]: stage s for the
 * one 3 - s places ahead. */
static void prefetch_ahead(const struct rs_kafka *kc, rd_kafka_message_t **batch,
                           size_t j, size_t n, void *opaque)
{
    for (int stage = 0; stage < 3; stage++)
        if (j + 3 - (size_t)stage < n)
            hint(kc, batch[j + 3 - (size_t)stage], stage, opaque);
}

int rs_kafka_consume(struct rs_kafka *kc, int timeout_ms, size_t max,
                     rs_kafka_handler_t handler, void *opaque)
{
    rd_kafka_message_t *batch[CHUNK], *rkm;
    struct held h = {.n = 0};
    int handled = 0;

    serve_side_jobs(kc, 0);
    if (max == 0) return 0;
    if (!(rkm = rd_kafka_consumer_poll(kc->rk, timeout_ms))) return 0;
    handled += handle(kc, &h, rkm, handler, opaque);
    max--;
    while (max > 0) {
        size_t want = max < CHUNK ? max : CHUNK;
        uint64_t rebalances = kc->rebalances;
        ssize_t got;

        held_flush(kc, &h);
        got = rd_kafka_consume_batch_queue(kc->queue, 0, batch, want);
        if (got <= 0) break;
        max -= (size_t)got;
        if (kc->rebalances != rebalances) {
            size_t left = drop_unassigned(kc, batch, (size_t)got);
            for (size_t j = 0; j < left; j++)
                handled += handle(kc, &h, batch[j], handler, opaque);
            break;
        }
        if (kc->prefetch) /* the earlier stages of the second and third */
            for (size_t j = 1; j < 3 && j < (size_t)got; j++)
                for (int stage = 0; stage < 3 - (int)j; stage++)
                    hint(kc, batch[j], stage, opaque);
        for (ssize_t j = 0; j < got; j++) {
            if (kc->prefetch) prefetch_ahead(kc, batch, (size_t)j, (size_t)got, opaque);
            handled += handle(kc, &h, batch[j], handler, opaque);
        }
        if ((size_t)got < want) break;
    }
    held_flush(kc, &h);
    return handled;
}

rs_err_t rs_kafka_commit(struct rs_kafka *kc, int sync)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(kc->rk, NULL, !sync);
    /* _NO_OFFSET: nothing new since the last commit. */
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: commit: %s",
                       rd_kafka_err2str(err));
        return RS_EKAFKA;
    }
    return RS_OK;
}

rs_err_t rs_kafka_commit_offsets(struct rs_kafka *kc, const struct rs_kafka_offset *offs,
                                 size_t n, int sync)
{
    rd_kafka_resp_err_t err;

    if (n == 0) return RS_OK;
    if (kc->want) rd_kafka_topic_partition_list_destroy(kc->want);
    kc->want = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(kc->want, offs[i].topic, offs[i].partition);
        tp->offset = offs[i].offset;
        if (kc->owner && (tp->metadata = strdup(kc->owner)))
            tp->metadata_size = strlen(kc->owner);
    }
    err = commit_wanted(kc, sync);
    if (err) {
        /* sync or not, commit_cb counts it and schedules the retry */
        rs_log_limited(&kc->err_limit, RS_LOG_WARN, "kafka: commit: %s",
                       rd_kafka_err2str(err));
        if (!kc->commit_retry_at_ns) kc->commit_retry_at_ns = rs_mono_ns() + COMMIT_RETRY_NS;
        return RS_EKAFKA;
    }
    return RS_OK;
}

void rs_kafka_set_offset_fn(struct rs_kafka *kc, rs_kafka_offset_fn fn, void *opaque)
{
    kc->offset_fn = fn;
    kc->offset_opaque = opaque;
}

void rs_kafka_set_revoke_fn(struct rs_kafka *kc, rs_kafka_revoke_fn fn, void *opaque)
{
    kc->revoke_fn = fn;
    kc->revoke_opaque = opaque;
}

rs_err_t rs_kafka_set_owner(struct rs_kafka *kc, const char *owner)
{
    char *copy = strdup(owner);
    if (!copy) return RS_ENOMEM;
    free(kc->owner);
    kc->owner = copy;
    return RS_OK;
}

rs_err_t rs_kafka_produce(struct rs_kafka *kc, const void *key, size_t key_len,
                          const void *payload, size_t len)
{
    for (;;) {
        if (rd_kafka_produce(kc->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                             (void *)payload, len, key, key_len, NULL) == 0)
            break;
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rs_log_limited(&kc->err_limit, RS_LOG_ERROR, "kafka: produce: %s",
                           rd_kafka_err2str(rd_kafka_last_error()));
            return RS_EKAFKA;
        }
        rd_kafka_poll(kc->rk, 100); /* queue full: let deliveries drain */
        kc->unpolled = 0;
    }
    if (++kc->unpolled >= PRODUCE_POLL_EVERY) {
        rd_kafka_poll(kc->rk, 0);
        kc->unpolled = 0;
    }
    return RS_OK;
}

int rs_kafka_flush(struct rs_kafka *kc, int timeout_ms)
{
    rd_kafka_flush(kc->rk, timeout_ms);
    return rd_kafka_outq_len(kc->rk);
}

uint64_t rs_kafka_delivery_errors(const struct rs_kafka *kc)
{
    return kc->delivery_errors;
}

const char *rs_kafka_embedded_bootstraps(const struct rs_kafka *kc)
{
    return kc->bootstraps;
}

/* While paused nothing is fetched, so the cached high watermarks stop where
 * the last fetch left them: asks the brokers for the log end offsets of parts
 * (one ListOffsets request per leader) into kc->ends. After a failure the
 * last answer stands and the next ask waits END_QUERY_RETRY_NS, so that an
 * unreachable broker does not block the caller every time. */
static void ask_ends(struct rs_kafka *kc, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *q;
    struct end_offset *ends;
    rd_kafka_resp_err_t err;
    uint64_t now = rs_mono_ns();

    if (now < kc->ends_retry_ns) return;
    q = rd_kafka_topic_partition_list_copy(parts);
    for (int i = 0; i < q->cnt; i++) q->elems[i].offset = RD_KAFKA_OFFSET_END;
    err = rd_kafka_offsets_for_times(kc->rk, q, END_QUERY_MS);
    ends = err ? NULL : calloc((size_t)q->cnt, sizeof(*ends));
    if (!ends) {
        rs_log_limited(&kc->err_limit, RS_LOG_WARN,
                       "kafka: asking the log end offsets for the lag: %s",
                       err ? rd_kafka_err2str(err) : "out of memory");
        rd_kafka_topic_partition_list_destroy(q);
        kc->ends_retry_ns = now + END_QUERY_RETRY_NS;
        return;
    }
    for (int i = 0; i < q->cnt; i++) {
        snprintf(ends[i].topic, sizeof(ends[i].topic), "%s", q->elems[i].topic);
        ends[i].partition = q->elems[i].partition;
        ends[i].offset = q->elems[i].err ? -1 : q->elems[i].offset;
    }
    free(kc->ends);
    kc->ends = ends;
    kc->ends_cnt = (size_t)q->cnt;
    kc->ends_retry_ns = 0;
    rd_kafka_topic_partition_list_destroy(q);
}

/* The log end offset of topic[partition] last asked while paused, or -1. */
static int64_t asked_end(const struct rs_kafka *kc, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < kc->ends_cnt; i++)
        if (kc->ends[i].partition == partition && strcmp(kc->ends[i].topic, topic) == 0)
            return kc->ends[i].offset;
    return -1;
}

size_t rs_kafka_lag(struct rs_kafka *kc, struct rs_kafka_lag *out, size_t max)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    size_t n = 0;

    if (!kc->is_consumer || rd_kafka_assignment(kc->rk, &parts) || !parts) return 0;
    rd_kafka_position(kc->rk, parts);
    if (kc->paused && parts->cnt > 0) ask_ends(kc, parts);
    for (int i = 0; i < parts->cnt && n < max; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t lo = -1, hi = -1, end;
        snprintf(out[n].topic, sizeof(out[n].topic), "%s", tp->topic);
        out[n].partition = tp->partition;
        out[n].lag = -1;
        if (rd_kafka_get_watermark_offsets(kc->rk, tp->topic, tp->partition, &lo, &hi))
            hi = -1;
        end = kc->paused ? asked_end(kc, tp->topic, tp->partition) : -1;
        if (end > hi) hi = end;
        if (hi >= 0 && tp->offset >= 0) out[n].lag = hi > tp->offset ? hi - tp->offset : 0;
        n++;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}
