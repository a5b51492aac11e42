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
 * Everything here runs on the one thread that owns the model.
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
    struct rs_rank_weights weights;
    int pop_changed; /* an event arrived since rs:pop was last written */
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
    struct rs_event ev;
    struct rs_log_limit bad_limit;
    struct rs_log_limit full_limit;
};

struct rs_pipeline *rs_pipeline_create(const struct rs_config *conf,
                                       struct rs_redis *redis, char *errstr,
                                       size_t errstr_size)
{
    struct rs_pipeline *p = calloc(1, sizeof(*p));
    struct rs_model_params mp;

    if (!p) goto nomem;
    p->conf = conf;
    p->redis = redis;
    mp.factors = conf->factors;
    mp.learning_rate = (float)conf->learning_rate;
    mp.regularization = (float)conf->regularization;
    mp.init_std = (float)conf->init_std;
    mp.rating_min = (float)conf->rating_min;
    mp.rating_max = (float)conf->rating_max;
    mp.negatives = conf->negatives;
    mp.seed = conf->seed;
    mp.max_users = conf->max_users;
    mp.max_items = conf->max_items;
    mp.replay_ratio = (float)conf->replay_ratio;
    mp.replay_size = conf->replay_size;
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
    p->popularity = rs_popularity_create(conf->neighbors_half_life_s);
    p->sim_recs = calloc(
        (size_t)(conf->neighbors_k > conf->top_n ? conf->neighbors_k : conf->top_n),
        sizeof(*p->sim_recs));
    p->weights.mf = (float)conf->mf_weight;
    p->weights.neighbor = (float)conf->neighbor_weight;
    p->weights.popularity = (float)conf->popularity_weight;
    if (!p->users || !p->items || !p->model || !p->history || !p->dirty || !p->ranker ||
        !p->recs || !p->neighbors || !p->popularity || !p->sim_recs)
        goto nomem;
    rs_buf_init(&p->key);
    rs_buf_init(&p->blob);
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
    rs_ranker_destroy(p->ranker);
    rs_neighbors_destroy(p->neighbors);
    rs_popularity_destroy(p->popularity);
    free(p->recs);
    free(p->sim_recs);
    rs_buf_free(&p->key);
    rs_buf_free(&p->blob);
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

/* Eviction: the user leaves the id map, the model, its history and recent items. */
static void evict_user(struct rs_pipeline *p, uint32_t u)
{
    rs_idmap_remove(p->users, u);
    rs_model_forget_user(p->model, u);
    rs_history_clear(p->history, u);
    rs_neighbors_forget(p->neighbors, u);
    p->stats.users_evicted++;
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
    }
}

rs_err_t rs_pipeline_apply(struct rs_pipeline *p, const struct rs_event *ev)
{
    uint32_t u, i, v;
    rs_err_t err;

    evict_idle(p, ev->ts_ms);
    err = rs_idmap_intern(p->users, ev->user, ev->user_len, &u, NULL);
    if (err == RS_EFULL && p->conf->evict_when_full &&
        (v = rs_model_lru_user(p->model, NULL)) != RS_NONE) {
        evict_user(p, v);
        err = rs_idmap_intern(p->users, ev->user, ev->user_len, &u, NULL);
    }
    if (err == RS_EFULL) return over_capacity(p, "max_users");
    if (err) return err;

    if (ev->type == RS_EVENT_FORGET) {
        /* The list goes at the next publish: a user without history has none. */
        rs_history_clear(p->history, u);
        rs_neighbors_forget(p->neighbors, u);
        p->stats.events_applied++;
        return rs_dirty_mark(p->dirty, u);
    }

    err = rs_idmap_intern(p->items, ev->item, ev->item_len, &i, NULL);
    if (err == RS_EFULL) return over_capacity(p, "max_items");
    if (err) return err;
    err = rs_model_ensure(p->model, u, i);
    if (err == RS_EFULL) return over_capacity(p, "model bounds");
    if (err) return err;
    rs_model_touch_user(p->model, u, ev->ts_ms);

    if (ev->type == RS_EVENT_RATE)
        rs_model_update_rate(p->model, u, i, ev->value);
    else
        rs_model_update_play(p->model, u, i, ev->value);
    if (rs_history_add(p->history, u, i) < 0) return RS_ENOMEM;
    if ((err = rs_neighbors_add(p->neighbors, u, i, ev->ts_ms)) ||
        (err = rs_popularity_add(p->popularity, i, 1.0f, ev->ts_ms)))
        return err;
    p->pop_changed = 1;
    p->stats.events_applied++;
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
    return (rs_dirty_count(p->dirty) > 0 || rs_neighbors_changed(p->neighbors) > 0 ||
            p->pop_changed) &&
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

static rs_err_t queue_meta(struct rs_pipeline *p)
{
    char applied[24], users[16], items[16], now[24];
    const char *fields[] = {"version", "events_applied", "users", "items",
                            "updated_at_ms"};
    const char *values[] = {RS_VERSION, applied, users, items, now};

    snprintf(applied, sizeof(applied), "%llu",
             (unsigned long long)p->stats.events_applied);
    snprintf(users, sizeof(users), "%u", rs_idmap_count(p->users));
    snprintf(items, sizeof(items), "%u", rs_idmap_count(p->items));
    snprintf(now, sizeof(now), "%lld", (long long)rs_now_ms());
    if (build_key(p, "meta", "", 0)) return RS_ENOMEM;
    return rs_redis_append_hset(p->redis, p->key.data, 5, fields, values);
}

/* The blended lists of users[0..n) (ranker.h). */
static rs_err_t rank(struct rs_pipeline *p, const uint32_t *users, size_t n,
                     struct rs_rec *out, size_t *counts)
{
    struct rs_rank_sources src = {p->model, p->history, p->neighbors, p->popularity};
    return rs_ranker_blend(p->ranker, &src, &p->weights, users, n, out, counts);
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
    return rs_pipeline_recommend_with(p, user, len, &p->weights, out, n);
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

rs_err_t rs_pipeline_publish(struct rs_pipeline *p)
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
        return RS_OK;
    }
    if (rs_redis_connect(p->redis) != RS_OK) {
        p->stats.publish_errors++;
        return RS_EREDIS;
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
           (p->pop_changed ? 1 : 0);
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
