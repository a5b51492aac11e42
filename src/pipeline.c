/*
 * pipeline.c - from a decoded event to a list in Redis. Applying an event is
 * cheap and allocation-free in the steady state (id lookup, one SGD step, a
 * history insert, a dirty bit); the expensive part, ranking, is deferred and
 * batched: every publish_interval_ms the dirty users are ranked together with
 * one sgemm per batch and written in one pipelined round trip. A user with a
 * burst of events is therefore ranked once per interval.
 *
 * Each event also feeds the item neighbours (the user's recent-item ring and
 * the co-occurrence sketch) and the decayed popularity, one unit per event
 * whatever its value. A publish writes the dirty users' blended lists
 * (ranker.h), then the similar-items lists of at most SIM_PER_PUBLISH items
 * whose neighbours changed (the rest wait for the next publish), then the
 * trending list `pop` when any event arrived since the last one.
 *
 * Everything here runs on the one thread that owns the model. Snapshots are
 * written from a forked copy of this state (see snapshot.h): the section
 * table below lists what goes in, one line per module.
 */
#include "recstream/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recstream/dirty.h"
#include "recstream/history.h"
#include "recstream/listfmt.h"
#include "recstream/log.h"
#include "recstream/neighbors.h"
#include "recstream/popularity.h"
#include "recstream/ranker.h"

#define LOSS_EMA_ALPHA 0.001 /* the training-error average spans ~1000 ratings */
#define PUBLISH_BATCH 256
/* Similar-items lists written per publish at most. */
#define SIM_PER_PUBLISH 1024

struct rs_pipeline {
    const struct rs_config *conf;
    struct rs_redis *redis;
    struct rs_idmap *users;
    struct rs_idmap *items;
    struct rs_model *model;
    struct rs_history *history;
    struct rs_dirty *dirty;
    struct rs_ranker *ranker;
    struct rs_neighbors *neighbors;
    struct rs_popularity *popularity;
    /* process-local, not in snapshots: for rs:meta and /metrics */
    int64_t last_snapshot_ms;
    struct rs_pipeline_ops ops;
    int pop_changed; /* an event arrived since rs:pop was last written */
    uint32_t *user_events; /* events applied per user index */
    size_t user_events_cap;
    struct rs_pipeline_offset *offsets; /* per topic-partition, topic strings owned */
    size_t offset_cnt;
    size_t offset_last; /* the entry the previous message used */
    struct rs_event_limits limits;
    struct rs_pipeline_stats stats;
    uint64_t last_publish_ns;
    /* publish scratch, reused */
    uint32_t batch[PUBLISH_BATCH];
    struct rs_rec *recs;
    size_t counts[PUBLISH_BATCH];
    uint32_t sim_items[SIM_PER_PUBLISH];
    struct rs_rec *sim_recs; /* max(k, top_n) */
    struct rs_buf key;
    struct rs_buf blob;
    struct rs_buf forgotten; /* forgotten users' ids, keys still to delete: u16 length + bytes */
    struct rs_event ev;
    struct rs_log_limit bad_limit;
    struct rs_log_limit full_limit;
};

void rs_pipeline_model_params(const struct rs_config *conf, struct rs_model_params *mp)
{
    memset(mp, 0, sizeof(*mp));
    mp->factors = conf->factors;
    mp->learning_rate = (float)conf->learning_rate;
    mp->regularization = (float)conf->regularization;
    mp->init_std = (float)conf->init_std;
    mp->rating_min = (float)conf->rating_min;
    mp->rating_max = (float)conf->rating_max;
    mp->negatives = conf->negatives;
    mp->seed = conf->seed;
    mp->max_users = conf->max_users;
    mp->max_items = conf->max_items;
    mp->replay_ratio = (float)conf->replay_ratio;
    mp->replay_size = conf->replay_size;
}

struct rs_pipeline *rs_pipeline_create(const struct rs_config *conf,
                                       struct rs_redis *redis, char *errstr,
                                       size_t errstr_size)
{
    struct rs_pipeline *p = calloc(1, sizeof(*p));
    struct rs_model_params mp;

    if (!p) goto nomem;
    p->conf = conf;
    p->redis = redis;
    rs_pipeline_model_params(conf, &mp);
    p->limits.rating_min = conf->rating_min;
    p->limits.rating_max = conf->rating_max;
    p->limits.max_bytes = RS_EVENT_MAX_BYTES_DEFAULT;
    p->bad_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(10000, 5);
    p->full_limit = (struct rs_log_limit)RS_LOG_LIMIT_INIT(60000, 1);

    p->users = rs_idmap_create(conf->max_users);
    p->items = rs_idmap_create(conf->max_items);
    p->model = rs_model_create(&mp);
    p->history = rs_history_create();
    p->dirty = rs_dirty_create();
    p->ranker = rs_ranker_create(conf->top_n, PUBLISH_BATCH);
    p->recs = calloc((size_t)PUBLISH_BATCH * (size_t)conf->top_n, sizeof(*p->recs));
    p->neighbors = rs_neighbors_create(conf->neighbors_k, conf->neighbors_window,
                                       conf->neighbors_half_life_s);
    p->popularity = rs_popularity_create(conf->popularity_half_life_s);
    p->sim_recs = calloc(
        (size_t)(conf->neighbors_k > conf->top_n ? conf->neighbors_k : conf->top_n),
        sizeof(*p->sim_recs));
    if (!p->users || !p->items || !p->model || !p->history || !p->dirty || !p->ranker ||
        !p->recs || !p->neighbors || !p->popularity || !p->sim_recs)
        goto nomem;
    rs_neighbors_set_shrink(p->neighbors, conf->neighbors_shrink); /* checked by config */
    rs_buf_init(&p->key);
    rs_buf_init(&p->blob);
    rs_buf_init(&p->forgotten);
    p->last_publish_ns = rs_mono_ns();
    return p;

nomem:
    snprintf(errstr, errstr_size, "out of memory creating the model");
    rs_pipeline_destroy(p);
    return NULL;
}

void rs_pipeline_destroy(struct rs_pipeline *p)
{
    if (!p) return;
    rs_idmap_destroy(p->users);
    rs_idmap_destroy(p->items);
    rs_model_destroy(p->model);
    rs_history_destroy(p->history);
    rs_dirty_destroy(p->dirty);
    rs_popularity_destroy(p->popularity);
    rs_ranker_destroy(p->ranker);
    rs_neighbors_destroy(p->neighbors);
    free(p->user_events);
    for (size_t o = 0; o < p->offset_cnt; o++) free((char *)p->offsets[o].topic);
    free(p->offsets);
    free(p->recs);
    free(p->sim_recs);
    rs_buf_free(&p->key);
    rs_buf_free(&p->blob);
    rs_buf_free(&p->forgotten);
    free(p);
}

void rs_pipeline_reject(struct rs_pipeline *p, enum rs_event_reason reason)
{
    p->stats.events_rejected++;
    if (reason < RS_REASON_COUNT) p->stats.rejected_by_reason[reason]++;
}

static rs_err_t over_capacity(struct rs_pipeline *p, const char *what)
{
    p->stats.events_over_capacity++;
    rs_log_limited(&p->full_limit, RS_LOG_WARN,
                   "model is full (%s); events for new ids are dropped", what);
    return RS_EFULL;
}

/* Makes user_events cover user u (geometric growth: amortised, not per event). */
static rs_err_t grow_user_events(struct rs_pipeline *p, uint32_t u)
{
    size_t cap = p->user_events_cap ? p->user_events_cap : 1024;
    uint32_t *grown;

    if (u < p->user_events_cap) return RS_OK;
    while (cap <= u) cap *= 2;
    if (!(grown = realloc(p->user_events, cap * sizeof(*grown)))) return RS_ENOMEM;
    memset(grown + p->user_events_cap, 0, (cap - p->user_events_cap) * sizeof(*grown));
    p->user_events = grown;
    p->user_events_cap = cap;
    return RS_OK;
}

/* Eviction: the user leaves the id map, the model, its history and recent items. */
static void evict_user(struct rs_pipeline *p, uint32_t u)
{
    rs_idmap_remove(p->users, u);
    rs_model_forget_user(p->model, u);
    rs_history_clear(p->history, u);
    rs_neighbors_forget(p->neighbors, u);
    if (u < p->user_events_cap) p->user_events[u] = 0; /* the index goes to a new user */
}

/* Evicts users idle past the TTL at event time now_ms (a few per event at most). */
static void evict_idle(struct rs_pipeline *p, int64_t now_ms)
{
    int64_t last, ttl_ms = p->conf->idle_user_ttl_s * 1000;
    uint32_t v;
    for (int n = 0; ttl_ms > 0 && n < 4; n++) {
        v = rs_model_lru_user(p->model, &last);
        if (v == RS_NONE || now_ms - last <= ttl_ms) break;
        evict_user(p, v);
        p->stats.users_evicted++;
    }
}

/*
 * forget: the user is erased everywhere now (when the model holds them) and
 * the key goes at the next publish, by name, also for a user the model no
 * longer holds (evicted earlier, their list may still be in Redis). A forget
 * never adds an id, so it cannot evict anyone.
 */
static rs_err_t forget(struct rs_pipeline *p, const struct rs_event *ev)
{
    uint16_t len16 = ev->user_len;
    size_t mark = p->forgotten.len;
    uint32_t u;

    if (rs_buf_append(&p->forgotten, &len16, sizeof(len16)) ||
        rs_buf_append(&p->forgotten, ev->user, ev->user_len)) {
        p->forgotten.len = mark; /* never a length without its id */
        return RS_ENOMEM;
    }
    if (rs_idmap_find(p->users, ev->user, ev->user_len, &u) == RS_OK) evict_user(p, u);
    p->stats.events_applied++;
    return RS_OK;
}

rs_err_t rs_pipeline_apply(struct rs_pipeline *p, const struct rs_event *ev)
{
    uint32_t u, i, v;
    rs_err_t err;

    evict_idle(p, ev->ts_ms);
    if (ev->type == RS_EVENT_FORGET) return forget(p, ev);
    err = rs_idmap_intern(p->users, ev->user, ev->user_len, &u, NULL);
    if (err == RS_EFULL && p->conf->evict_when_full &&
        (v = rs_model_lru_user(p->model, NULL)) != RS_NONE) {
        evict_user(p, v);
        p->stats.users_evicted++;
        err = rs_idmap_intern(p->users, ev->user, ev->user_len, &u, NULL);
    }
    if (err == RS_EFULL) return over_capacity(p, "max_users");
    if (err) return err;
    if ((err = grow_user_events(p, u))) return err;


    err = rs_idmap_intern(p->items, ev->item, ev->item_len, &i, NULL);
    if (err == RS_EFULL) return over_capacity(p, "max_items");
    if (err) return err;
    err = rs_model_ensure(p->model, u, i);
    if (err == RS_EFULL) return over_capacity(p, "model bounds");
    if (err) return err;
    rs_model_touch_user(p->model, u, ev->ts_ms);

    if (ev->type == RS_EVENT_RATE) {
        /* Prequential error on live traffic: the error before the step. */
        float e = rs_model_update_rate(p->model, u, i, ev->value);
        if (isfinite(e)) {
            double a = p->ops.rated ? LOSS_EMA_ALPHA : 1.0;
            p->ops.sq_err_ema += a * ((double)e * e - p->ops.sq_err_ema);
            p->ops.rated++;
        }
    } else {
        rs_model_update_play(p->model, u, i, ev->value);
    }
    if (rs_history_add(p->history, u, i) < 0) return RS_ENOMEM;
    if ((err = rs_neighbors_add(p->neighbors, u, i, ev->ts_ms)) ||
        (err = rs_popularity_add(p->popularity, i, 1.0f, ev->ts_ms)))
        return err;
    p->pop_changed = 1;
    p->stats.events_applied++;
    p->user_events[u]++;
    return rs_dirty_mark(p->dirty, u);
}

enum rs_event_reason rs_pipeline_handle(struct rs_pipeline *p, const void *buf,
                                        size_t len, int64_t ts_ms)
{
    enum rs_event_reason reason = rs_event_decode(buf, len, &p->limits, &p->ev);
    rs_err_t err;

    if (reason != RS_REASON_OK) {
        rs_pipeline_reject(p, reason);
        rs_log_limited(&p->bad_limit, RS_LOG_WARN, "bad event (%s): %zu bytes",
                       rs_event_reason_str(reason), len);
        return reason;
    }
    if (p->ev.ts_ms == 0) p->ev.ts_ms = ts_ms;
    err = rs_pipeline_apply(p, &p->ev);
    if (err && err != RS_EFULL)
        rs_log_limited(&p->bad_limit, RS_LOG_ERROR, "applying event: %s",
                       rs_err_str(err));
    return RS_REASON_OK;
}

int rs_pipeline_publish_due(const struct rs_pipeline *p)
{
    uint64_t interval_ns = (uint64_t)p->conf->publish_interval_ms * 1000000ull;
    return rs_pipeline_pending(p) > 0 &&
           rs_mono_ns() - p->last_publish_ns >= interval_ns;
}

/* Writes prefix + kind + name into p->key (NUL-terminated). */
static rs_err_t build_key(struct rs_pipeline *p, const char *kind, const char *name,
                          size_t name_len)
{
    rs_buf_reset(&p->key);
    if (rs_buf_append(&p->key, p->conf->redis_prefix, strlen(p->conf->redis_prefix)) ||
        rs_buf_append(&p->key, kind, strlen(kind)) ||
        rs_buf_append(&p->key, name, name_len) || rs_buf_append(&p->key, "", 1))
        return RS_ENOMEM;
    p->key.len--; /* the NUL is not part of the key */
    return RS_OK;
}

/* Queues the list recs[0..n) under the key in p->key. */
static rs_err_t queue_list(struct rs_pipeline *p, const struct rs_rec *recs, size_t n)
{
    const char *names[1024];
    size_t lens[1024];
    rs_err_t err = RS_OK;

    rs_buf_reset(&p->blob);
    if (p->conf->redis_format == RS_FORMAT_MSGPACK)
        err = rs_listfmt_msgpack(&p->blob, recs, n, p->items);
    else if (p->conf->redis_format == RS_FORMAT_JSON)
        err = rs_listfmt_json(&p->blob, recs, n, p->items);
    if (err) return err;
    for (size_t j = 0; j < n && j < 1024; j++)
        names[j] = rs_idmap_name(p->items, recs[j].item, &lens[j]);
    return rs_redis_append_list(p->redis, p->key.data, p->key.len, p->blob.data,
                                p->blob.len, recs, n, names, lens);
}

/* Queues one user's list (or its deletion). */
static rs_err_t queue_user(struct rs_pipeline *p, uint32_t user,
                           const struct rs_rec *recs, size_t n)
{
    size_t history_len = 0;
    size_t name_len;
    const char *name = rs_idmap_name(p->users, user, &name_len);
    rs_err_t err;

    if (!name) return RS_OK; /* evicted since it was marked */
    if ((err = build_key(p, "rec:", name, name_len))) return err;
    rs_history_items(p->history, user, &history_len);
    if (history_len == 0) {
        p->stats.lists_deleted++;
        return rs_redis_append_del(p->redis, p->key.data, p->key.len);
    }
    p->stats.lists_published++;
    return queue_list(p, recs, n);
}

/* Queues the similar-items list of item (or its deletion when it has none). */
static rs_err_t queue_sim(struct rs_pipeline *p, uint32_t item)
{
    size_t name_len;
    const char *name = rs_idmap_name(p->items, item, &name_len);
    size_t n = rs_neighbors_similar(p->neighbors, item, (size_t)p->conf->neighbors_k,
                                    p->sim_recs);
    rs_err_t err;

    if (!name) return RS_OK;
    if ((err = build_key(p, "sim:", name, name_len))) return err;
    if (n == 0) return rs_redis_append_del(p->redis, p->key.data, p->key.len);
    p->stats.sim_lists_published++;
    return queue_list(p, p->sim_recs, n);
}

/* Queues the trending list. */
static rs_err_t queue_pop(struct rs_pipeline *p)
{
    size_t n = rs_popularity_top(p->popularity, rs_popularity_clock(p->popularity),
                                 (size_t)p->conf->top_n, p->sim_recs);
    rs_err_t err;
    if ((err = build_key(p, "pop", "", 0))) return err;
    if (n == 0) return rs_redis_append_del(p->redis, p->key.data, p->key.len);
    return queue_list(p, p->sim_recs, n);
}

/* Publishes up to SIM_PER_PUBLISH similar-items lists and the trending list. */
static rs_err_t publish_items(struct rs_pipeline *p)
{
    size_t n = rs_neighbors_take_changed(p->neighbors, p->sim_items, SIM_PER_PUBLISH);
    rs_err_t err = RS_OK;

    for (size_t j = 0; j < n && !err; j++)
        err = queue_sim(p, p->sim_items[j]);
    if (!err && p->pop_changed) err = queue_pop(p);
    if (!err) err = rs_redis_flush(p->redis);
    if (err) {
        rs_redis_flush(p->redis);
        for (size_t j = 0; j < n; j++)
            rs_neighbors_mark_changed(p->neighbors, p->sim_items[j]);
        p->stats.publish_errors++;
        rs_warn("publishing %zu similar-items lists failed: %s", n,
                err == RS_EREDIS ? rs_redis_errstr(p->redis) : rs_err_str(err));
        return err;
    }
    p->pop_changed = 0;
    return RS_OK;
}

/* Queues DEL of the list of every user forgotten since the last publish. */
static rs_err_t queue_forgotten(struct rs_pipeline *p)
{
    rs_err_t err = RS_OK;
    for (size_t off = 0; off < p->forgotten.len && !err;) {
        uint16_t len;
        memcpy(&len, p->forgotten.data + off, sizeof(len));
        off += sizeof(len);
        if (!(err = build_key(p, "rec:", p->forgotten.data + off, len))) {
            err = rs_redis_append_del(p->redis, p->key.data, p->key.len);
            p->stats.lists_deleted++;
        }
        off += len;
    }
    return err;
}

static rs_err_t queue_meta(struct rs_pipeline *p)
{
    char applied[24], users[16], items[16], now[24], snap[24];
    const char *fields[] = {"version", "events_applied", "users", "items",
                            "updated_at_ms", "last_snapshot_ms"};
    const char *values[] = {RS_VERSION, applied, users, items, now, snap};

    snprintf(applied, sizeof(applied), "%llu",
             (unsigned long long)p->stats.events_applied);
    snprintf(users, sizeof(users), "%u", rs_idmap_count(p->users));
    snprintf(items, sizeof(items), "%u", rs_idmap_count(p->items));
    snprintf(now, sizeof(now), "%lld", (long long)rs_now_ms());
    snprintf(snap, sizeof(snap), "%lld", (long long)p->last_snapshot_ms);
    if (build_key(p, "meta", "", 0)) return RS_ENOMEM;
    return rs_redis_append_hset(p->redis, p->key.data, 6, fields, values);
}

/* The [ranking] weights, read at each use: SIGHUP may change them. */
static struct rs_rank_weights conf_weights(const struct rs_config *conf)
{
    struct rs_rank_weights w = {(float)conf->mf_weight, (float)conf->neighbor_weight,
                                (float)conf->popularity_weight};
    return w;
}

/* The blended lists of users[0..n) (ranker.h). */
static rs_err_t rank(struct rs_pipeline *p, const uint32_t *users, size_t n,
                     struct rs_rec *out, size_t *counts)
{
    struct rs_rank_sources src = {p->model, p->history, p->neighbors, p->popularity};
    struct rs_rank_weights w = conf_weights(p->conf);
    return rs_ranker_blend(p->ranker, &src, &w, users, n, out, counts);
}

rs_err_t rs_pipeline_recommend_with(struct rs_pipeline *p, const char *user, size_t len,
                                    const struct rs_rank_weights *w, struct rs_rec *out,
                                    size_t *n)
{
    struct rs_rank_sources src = {p->model, p->history, p->neighbors, p->popularity};
    uint32_t u = RS_NONE; /* unknown: ranked as a cold-start user */
    rs_idmap_find(p->users, user, len, &u);
    return rs_ranker_blend(p->ranker, &src, w, &u, 1, out, n);
}

rs_err_t rs_pipeline_recommend(struct rs_pipeline *p, const char *user, size_t len,
                               struct rs_rec *out, size_t *n)
{
    struct rs_rank_weights w = conf_weights(p->conf);
    return rs_pipeline_recommend_with(p, user, len, &w, out, n);
}

rs_err_t rs_pipeline_similar(const struct rs_pipeline *p, const char *item, size_t len,
                             size_t max, struct rs_rec *out, size_t *n)
{
    uint32_t i;
    rs_err_t err = rs_idmap_find(p->items, item, len, &i);
    *n = 0;
    if (err) return err;
    *n = rs_neighbors_similar(p->neighbors, i, max, out);
    return RS_OK;
}

static rs_err_t publish(struct rs_pipeline *p);

rs_err_t rs_pipeline_publish(struct rs_pipeline *p)
{
    uint64_t t0 = rs_mono_ns();
    rs_err_t err = publish(p);
    if (p->redis) rs_histogram_observe(&p->ops.publish_seconds, (double)(rs_mono_ns() - t0) / 1e9);
    return err;
}

static rs_err_t publish(struct rs_pipeline *p)
{
    int top_n = p->conf->top_n;
    rs_err_t err = RS_OK;

    p->last_publish_ns = rs_mono_ns();
    if (!p->redis) {
        /* Nothing to publish to: drain the set so it stays bounded. */
        while (rs_dirty_take(p->dirty, p->batch, PUBLISH_BATCH) > 0) {
        }
        while (rs_neighbors_take_changed(p->neighbors, p->sim_items, SIM_PER_PUBLISH) >
               0) {
        }
        p->pop_changed = 0;
        rs_buf_reset(&p->forgotten);
        return RS_OK;
    }
    if (rs_redis_connect(p->redis) != RS_OK) {
        p->stats.publish_errors++;
        return RS_EREDIS;
    }
    if (p->forgotten.len > 0) {
        if ((err = queue_forgotten(p)) || (err = rs_redis_flush(p->redis))) {
            p->stats.publish_errors++;
            rs_warn("deleting forgotten users' lists failed: %s",
                    err == RS_EREDIS ? rs_redis_errstr(p->redis) : rs_err_str(err));
            return err;
        }
        rs_buf_reset(&p->forgotten);
    }
    while (rs_dirty_count(p->dirty) > 0) {
        size_t n = rs_dirty_take(p->dirty, p->batch, PUBLISH_BATCH);
        if ((err = rank(p, p->batch, n, p->recs, p->counts))) goto requeue;
        for (size_t j = 0; j < n; j++)
            if ((err = queue_user(p, p->batch[j], p->recs + j * (size_t)top_n,
                                  p->counts[j])))
                goto requeue;
        if ((err = rs_redis_flush(p->redis))) goto requeue;
        continue;

    requeue:
        /* Nothing in this batch is known to be written: keep them all dirty. */
        rs_redis_flush(p->redis);
        for (size_t j = 0; j < n; j++)
            rs_dirty_mark(p->dirty, p->batch[j]);
        p->stats.publish_errors++;
        rs_warn("publishing %zu lists failed: %s", n,
                err == RS_EREDIS ? rs_redis_errstr(p->redis) : rs_err_str(err));
        return err;
    }
    if ((err = publish_items(p))) return err;
    if (queue_meta(p) == RS_OK && rs_redis_flush(p->redis) != RS_OK)
        p->stats.publish_errors++;
    return RS_OK;
}

size_t rs_pipeline_pending(const struct rs_pipeline *p)
{
    return rs_dirty_count(p->dirty) + rs_neighbors_changed(p->neighbors) +
           (p->pop_changed ? 1 : 0) + (p->forgotten.len > 0 ? 1 : 0);
}

size_t rs_pipeline_dirty(const struct rs_pipeline *p)
{
    return rs_dirty_count(p->dirty);
}

const struct rs_pipeline_stats *rs_pipeline_stats(const struct rs_pipeline *p)
{
    return &p->stats;
}

const struct rs_idmap *rs_pipeline_users(const struct rs_pipeline *p)
{
    return p->users;
}

const struct rs_idmap *rs_pipeline_items(const struct rs_pipeline *p)
{
    return p->items;
}

const struct rs_model *rs_pipeline_model(const struct rs_pipeline *p)
{
    return p->model;
}

/* ---- offsets ----------------------------------------------------------- */

static struct rs_pipeline_offset *find_offset(const struct rs_pipeline *p, const char *topic,
                                              int32_t partition)
{
    for (size_t o = 0; o < p->offset_cnt; o++)
        if (p->offsets[o].partition == partition && strcmp(p->offsets[o].topic, topic) == 0)
            return &p->offsets[o];
    return NULL;
}

static rs_err_t add_offset(struct rs_pipeline *p, const char *topic, size_t topic_len,
                           int32_t partition, int64_t next)
{
    struct rs_pipeline_offset *grown = realloc(p->offsets, (p->offset_cnt + 1) * sizeof(*grown));
    char *name;

    if (!grown) return RS_ENOMEM;
    p->offsets = grown;
    if (!(name = malloc(topic_len + 1))) return RS_ENOMEM;
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    p->offsets[p->offset_cnt].topic = name;
    p->offsets[p->offset_cnt].partition = partition;
    p->offsets[p->offset_cnt].next = next;
    p->offset_last = p->offset_cnt++;
    return RS_OK;
}

rs_err_t rs_pipeline_set_offset(struct rs_pipeline *p, const char *topic, int32_t partition,
                                int64_t next)
{
    struct rs_pipeline_offset *o;

    /* Messages come in runs from one partition: try the previous entry first. */
    if (p->offset_last < p->offset_cnt) {
        o = &p->offsets[p->offset_last];
        if (o->partition == partition && strcmp(o->topic, topic) == 0) {
            o->next = next;
            return RS_OK;
        }
    }
    if ((o = find_offset(p, topic, partition))) {
        o->next = next;
        p->offset_last = (size_t)(o - p->offsets);
        return RS_OK;
    }
    return add_offset(p, topic, strlen(topic), partition, next);
}

int rs_pipeline_offset(const struct rs_pipeline *p, const char *topic, int32_t partition,
                       int64_t *next)
{
    const struct rs_pipeline_offset *o = find_offset(p, topic, partition);
    if (!o) return 0;
    *next = o->next;
    return 1;
}

size_t rs_pipeline_offsets(const struct rs_pipeline *p, const struct rs_pipeline_offset **out)
{
    *out = p->offsets;
    return p->offset_cnt;
}

uint32_t rs_pipeline_user_events(const struct rs_pipeline *p, uint32_t u)
{
    return u < p->user_events_cap ? p->user_events[u] : 0;
}

void rs_pipeline_shape(const struct rs_config *conf, struct rs_snapshot_shape *shape)
{
    shape->factors = (uint32_t)conf->factors;
    shape->rating_min = (float)conf->rating_min;
    shape->rating_max = (float)conf->rating_max;
}

/* ---- snapshot sections -------------------------------------------------
 * One save and one load per section. A load fills the staging pipeline `to`,
 * replacing the empty module it was created with; nothing reaches the live
 * pipeline until every section has loaded and the sections agree. A module
 * with rs_<module>_save/load joins with three lines: MODULE_SECTION(module,
 * member), its row in sections[] and SWAP(member) in swap_state(). */

#define SECTION_META 1
#define SECTION_OFFSETS 2
#define SECTION_USERS 3
#define SECTION_ITEMS 4
#define SECTION_MODEL 5
#define SECTION_HISTORY 6
#define SECTION_DIRTY 7
#define SECTION_POPULARITY 8
#define SECTION_USER_EVENTS 9
#define SECTION_NEIGHBORS 10

static rs_err_t save_meta(const struct rs_pipeline *p, struct rs_writer *w)
{
    const struct rs_pipeline_stats *st = &p->stats;
    const uint64_t fixed[] = {st->events_applied,  st->events_rejected,
                              st->events_over_capacity, st->users_evicted,
                              st->lists_published, st->lists_deleted,
                              st->publish_errors};
    rs_err_t err;

    if ((err = rs_write_u32(w, (uint32_t)(sizeof(fixed) / sizeof(fixed[0])))) ||
        (err = w->write(w->ctx, fixed, sizeof(fixed))) ||
        (err = rs_write_u32(w, RS_REASON_COUNT)))
        return err;
    return w->write(w->ctx, st->rejected_by_reason, sizeof(st->rejected_by_reason));
}

static rs_err_t load_meta(struct rs_pipeline *to, struct rs_reader *r)
{
    struct rs_pipeline_stats *st = &to->stats;
    uint64_t fixed[7], reason;
    uint32_t nfixed, nreasons;
    rs_err_t err;

    if ((err = rs_read_u32(r, &nfixed))) return err;
    if (nfixed != 7) return RS_ECORRUPT;
    if ((err = r->read(r->ctx, fixed, sizeof(fixed))) || (err = rs_read_u32(r, &nreasons)))
        return err;
    if (nreasons > r->remaining(r->ctx) / 8) return RS_ECORRUPT;
    for (uint32_t i = 0; i < nreasons; i++) {
        if ((err = rs_read_u64(r, &reason))) return err;
        if (i < RS_REASON_COUNT) st->rejected_by_reason[i] = reason;
    }
    st->events_applied = fixed[0];
    st->events_rejected = fixed[1];
    st->events_over_capacity = fixed[2];
    st->users_evicted = fixed[3];
    st->lists_published = fixed[4];
    st->lists_deleted = fixed[5];
    st->publish_errors = fixed[6];
    return RS_OK;
}

static rs_err_t save_offsets(const struct rs_pipeline *p, struct rs_writer *w)
{
    rs_err_t err = rs_write_u32(w, (uint32_t)p->offset_cnt);
    for (size_t o = 0; o < p->offset_cnt && !err; o++) {
        const struct rs_pipeline_offset *off = &p->offsets[o];
        uint32_t len = (uint32_t)strlen(off->topic);
        if ((err = rs_write_u32(w, len)) || (err = w->write(w->ctx, off->topic, len)) ||
            (err = rs_write_u32(w, (uint32_t)off->partition)))
            break;
        err = rs_write_u64(w, (uint64_t)off->next);
    }
    return err;
}

static rs_err_t load_offsets(struct rs_pipeline *to, struct rs_reader *r)
{
    char topic[256];
    uint32_t n, len, partition;
    uint64_t next;
    rs_err_t err;

    if ((err = rs_read_u32(r, &n))) return err;
    if (n > r->remaining(r->ctx) / 16) return RS_ECORRUPT;
    for (uint32_t o = 0; o < n; o++) {
        if ((err = rs_read_u32(r, &len))) return err;
        if (len == 0 || len >= sizeof(topic)) return RS_ECORRUPT;
        if ((err = r->read(r->ctx, topic, len)) || (err = rs_read_u32(r, &partition)) ||
            (err = rs_read_u64(r, &next)))
            return err;
        topic[len] = '\0';
        if ((int32_t)partition < 0 || (int64_t)next < 0 ||
            find_offset(to, topic, (int32_t)partition))
            return RS_ECORRUPT;
        if ((err = add_offset(to, topic, len, (int32_t)partition, (int64_t)next))) return err;
    }
    return RS_OK;
}

/* save_<member> / load_<member> for a module with the serial.h save/load pair:
 * load replaces the staging pipeline's empty module with the loaded one. */
#define MODULE_SECTION(module, member)                                                 \
    static rs_err_t save_##member(const struct rs_pipeline *p, struct rs_writer *w)    \
    {                                                                                  \
        return rs_##module##_save(p->member, w);                                       \
    }                                                                                  \
    static rs_err_t load_##member(struct rs_pipeline *to, struct rs_reader *r)         \
    {                                                                                  \
        rs_err_t err;                                                                  \
        struct rs_##module *loaded = rs_##module##_load(r, &err);                      \
        if (!loaded) return err;                                                       \
        rs_##module##_destroy(to->member);                                             \
        to->member = loaded;                                                           \
        return RS_OK;                                                                  \
    }

MODULE_SECTION(idmap, users)
MODULE_SECTION(idmap, items)
MODULE_SECTION(model, model)
MODULE_SECTION(history, history)
MODULE_SECTION(dirty, dirty)
MODULE_SECTION(popularity, popularity)
MODULE_SECTION(neighbors, neighbors)

static rs_err_t save_user_events(const struct rs_pipeline *p, struct rs_writer *w)
{
    uint32_t n = rs_idmap_span(p->users);
    size_t have = n < p->user_events_cap ? n : p->user_events_cap;
    rs_err_t err = rs_write_u32(w, n);
    uint32_t zero = 0;

    if (err || n == 0) return err;
    if ((err = w->write(w->ctx, p->user_events, have * sizeof(uint32_t)))) return err;
    /* A user interned just before the counter could grow (ENOMEM) has 0. */
    for (size_t u = have; u < n && !err; u++) err = w->write(w->ctx, &zero, sizeof(zero));
    return err;
}

static rs_err_t load_user_events(struct rs_pipeline *to, struct rs_reader *r)
{
    uint32_t n;
    rs_err_t err;

    if ((err = rs_read_u32(r, &n))) return err;
    if (n > r->remaining(r->ctx) / 4) return RS_ECORRUPT;
    if (n == 0) return RS_OK;
    if ((err = grow_user_events(to, n - 1))) return err;
    return r->read(r->ctx, to->user_events, (size_t)n * sizeof(uint32_t));
}

static const struct section {
    uint32_t id;
    const char *name;
    rs_err_t (*save)(const struct rs_pipeline *p, struct rs_writer *w);
    rs_err_t (*load)(struct rs_pipeline *to, struct rs_reader *r);
} sections[] = {
    {SECTION_META, "meta", save_meta, load_meta},
    {SECTION_OFFSETS, "offsets", save_offsets, load_offsets},
    {SECTION_USERS, "users", save_users, load_users},
    {SECTION_ITEMS, "items", save_items, load_items},
    {SECTION_MODEL, "model", save_model, load_model},
    {SECTION_HISTORY, "history", save_history, load_history},
    {SECTION_DIRTY, "dirty", save_dirty, load_dirty},
    {SECTION_POPULARITY, "popularity", save_popularity, load_popularity},
    {SECTION_NEIGHBORS, "neighbors", save_neighbors, load_neighbors},
    {SECTION_USER_EVENTS, "user_events", save_user_events, load_user_events},
};

rs_err_t rs_pipeline_snapshot_fill(void *ctx, struct rs_snapshot_writer *sw)
{
    const struct rs_pipeline *p = ctx;
    rs_err_t err;

    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        struct rs_writer *w = rs_snapshot_section_begin(sw, sections[s].id, sections[s].name);
        if (!w) return RS_EIO;
        if ((err = sections[s].save(p, w)) || (err = rs_snapshot_section_end(sw))) return err;
    }
    return RS_OK;
}

/* The sections must describe one state: sizes that agree with the id maps. */
static int consistent(const struct rs_pipeline *to, char *errstr, size_t errstr_size)
{
    uint32_t users = rs_idmap_span(to->users), items = rs_idmap_span(to->items);

    if (rs_model_factors(to->model) != to->conf->factors) {
        snprintf(errstr, errstr_size, "the model has %d factors, the header says %d",
                 rs_model_factors(to->model), to->conf->factors);
        return 0;
    }
    if (rs_model_users(to->model) > users || rs_model_items(to->model) > items) {
        snprintf(errstr, errstr_size, "the model has %u users and %u items, the id maps %u and %u",
                 rs_model_users(to->model), rs_model_items(to->model), users, items);
        return 0;
    }
    if (rs_popularity_items(to->popularity) > items) {
        snprintf(errstr, errstr_size, "popularity holds %u items, the id map %u",
                 rs_popularity_items(to->popularity), items);
        return 0;
    }
    if (rs_neighbors_items(to->neighbors) > items) {
        snprintf(errstr, errstr_size, "the neighbours hold %u items, the id map %u",
                 rs_neighbors_items(to->neighbors), items);
        return 0;
    }
    if (users > 0 && users > to->user_events_cap) {
        snprintf(errstr, errstr_size, "event counts for fewer users than the id map's %u",
                 users);
        return 0;
    }
    return 1;
}

static void swap_bytes(void *x, void *y, size_t n)
{
    unsigned char *p = x, *q = y, t;
    for (size_t i = 0; i < n; i++) t = p[i], p[i] = q[i], q[i] = t;
}

#define SWAP(member) swap_bytes(&a->member, &b->member, sizeof(a->member))

/* Exchanges the snapshot state of a and b (not the configuration, sink or scratch). */
static void swap_state(struct rs_pipeline *a, struct rs_pipeline *b)
{
    SWAP(users);
    SWAP(items);
    SWAP(model);
    SWAP(history);
    SWAP(dirty);
    SWAP(popularity);
    SWAP(neighbors);
    SWAP(user_events);
    SWAP(user_events_cap);
    SWAP(offsets);
    SWAP(offset_cnt);
    SWAP(stats);
    a->offset_last = b->offset_last = 0;
    a->pop_changed = b->pop_changed = 1; /* rs:pop is written again after a restore */
}

rs_err_t rs_pipeline_snapshot_load(void *ctx, const struct rs_snapshot *snap, char *errstr,
                                   size_t errstr_size)
{
    struct rs_pipeline *p = ctx;
    struct rs_pipeline *to = rs_pipeline_create(p->conf, NULL, errstr, errstr_size);
    struct rs_snapshot_cursor cur;
    struct rs_reader r;
    rs_err_t err = RS_ENOMEM;
    uint64_t t0;

    if (!to) goto done;
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        err = rs_snapshot_reader(snap, sections[s].id, &cur, &r);
        if (err == RS_ENOENT) {
            snprintf(errstr, errstr_size, "section '%s' is missing", sections[s].name);
            err = RS_ECORRUPT;
            goto done;
        }
        t0 = rs_mono_ns();
        if (!err) err = sections[s].load(to, &r);
        if (!err && r.remaining(r.ctx) != 0) err = RS_ECORRUPT;
        rs_debug("snapshot: section '%s' loaded in %.1f ms", sections[s].name,
                 (rs_mono_ns() - t0) / 1e6);
        if (err) {
            snprintf(errstr, errstr_size, "section '%s': %s", sections[s].name,
                     err == RS_ECORRUPT ? "content does not parse" : rs_err_str(err));
            goto done;
        }
    }
    if (!consistent(to, errstr, errstr_size)) {
        err = RS_ECORRUPT;
        goto done;
    }
    /* Neither is in the neighbours' section: the shrinkage is configuration, and
     * their clock (the latest event time) is popularity's, which saw every event. */
    rs_neighbors_set_shrink(to->neighbors, p->conf->neighbors_shrink);
    rs_neighbors_set_clock(to->neighbors, rs_popularity_clock(to->popularity));
    swap_state(p, to);
    p->last_publish_ns = rs_mono_ns();
    err = RS_OK;

done:
    rs_pipeline_destroy(to);
    return err;
}

void rs_pipeline_note_snapshot(struct rs_pipeline *p, int ok, int64_t at_ms, uint64_t fork_ns)
{
    if (ok) {
        p->ops.snapshots_written++;
        p->last_snapshot_ms = at_ms;
        p->ops.last_snapshot_ms = at_ms;
    } else {
        p->ops.snapshots_failed++;
    }
    if (fork_ns > p->ops.fork_max_ns) p->ops.fork_max_ns = fork_ns;
}

const struct rs_pipeline_ops *rs_pipeline_ops(const struct rs_pipeline *p)
{
    return &p->ops;
}
