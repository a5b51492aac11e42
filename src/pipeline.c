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
#include "recstream/publisher.h"
#include "recstream/ranker.h"
#include "recstream/served.h"

#define LOSS_EMA_ALPHA 0.001 /* the training-error average spans ~1000 ratings */
#define PUBLISH_BATCH 256
/* Users ranked together in the streaming path, and the count that makes a batch
 * due; with a backlog of PUBLISH_BATCH users or more, batches of PUBLISH_BATCH
 * (fewer round trips and hand-overs while catching up). */
#define RANK_BATCH 64
/* Batches handed to the writer and not yet acknowledged, at most. */
#define PUBLISH_SLOTS 8
/* Longest a publish step ranks before returning to the consumer. */
#define STEP_BUDGET_NS 4000000ull
/* Similar-items lists written per batch at most, and per second in the
 * streaming path: user lists, whose freshness is the target, come first. */
#define SIM_PER_PUBLISH 1024
#define SIM_PER_SECOND 5000

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
    struct rs_served *served; /* each user's last written list, for the hit rate */
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
    struct rs_publisher *pub;  /* the writer thread; NULL without a sink */
    uint64_t last_items_ns;    /* when similar-items lists, rs:pop and rs:meta were last queued */
    int meta_due;              /* user lists were queued since rs:meta was */
    size_t forgotten_sent;     /* bytes of `forgotten` whose DELs are queued, not yet written */
    uint64_t failures_seen;    /* the writer's failed attempts already in stats */
    /* publish scratch, reused */
    uint32_t batch[PUBLISH_BATCH];
    struct rs_rec *recs;
    size_t counts[PUBLISH_BATCH];
    uint32_t sim_items[SIM_PER_PUBLISH];
    struct rs_rec *sim_recs; /* max(k, top_n) */
    struct rs_buf key;
    struct rs_buf blob;
    struct rs_buf forgotten; /* forgotten users' ids, keys not yet deleted: u16 length + bytes;
                                in snapshots until Redis acknowledged the DEL */
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
    mp->bias_prior = (float)conf->bias_prior;
    mp->adagrad_rate = (float)conf->adagrad_rate;
}

/* What the neighbours take from the configuration rather than from their
 * saved state: the support shrinkage and the order weights (values checked
 * by config). Applied to a new object and to one loaded from a snapshot. */
static void configure_neighbors(struct rs_neighbors *nb, const struct rs_config *conf)
{
    rs_neighbors_set_shrink(nb, conf->neighbors_shrink);
    rs_neighbors_set_order(nb, conf->neighbors_backward_weight, conf->neighbors_gap_decay);
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
    p->served = rs_served_create((size_t)conf->top_n);
    p->sim_recs = calloc(
        (size_t)(conf->neighbors_k > conf->top_n ? conf->neighbors_k : conf->top_n),
        sizeof(*p->sim_recs));
    if (!p->users || !p->items || !p->model || !p->history || !p->dirty || !p->ranker ||
        !p->recs || !p->neighbors || !p->popularity || !p->sim_recs || !p->served)
        goto nomem;
    configure_neighbors(p->neighbors, conf);
    rs_ranker_set_list_staleness(p->ranker, (uint64_t)conf->neighbor_list_max_age_ms,
                                 (uint64_t)conf->neighbor_list_max_events);
    rs_buf_init(&p->key);
    rs_buf_init(&p->blob);
    rs_buf_init(&p->forgotten);
    if (redis && !(p->pub = rs_publisher_create(redis, PUBLISH_SLOTS))) goto nomem;
    p->last_items_ns = rs_mono_ns();
    return p;

nomem:
    snprintf(errstr, errstr_size, "out of memory creating the model");
    rs_pipeline_destroy(p);
    return NULL;
}

void rs_pipeline_destroy(struct rs_pipeline *p)
{
    if (!p) return;
    rs_publisher_destroy(p->pub); /* first: the writer may still be reading a batch */
    rs_idmap_destroy(p->users);
    rs_idmap_destroy(p->items);
    rs_model_destroy(p->model);
    rs_history_destroy(p->history);
    rs_dirty_destroy(p->dirty);
    rs_popularity_destroy(p->popularity);
    rs_ranker_destroy(p->ranker);
    rs_neighbors_destroy(p->neighbors);
    rs_served_destroy(p->served);
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
    rs_served_clear(p->served, u);
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

/* Online hit rate: was the event's item on the list the user was last served? */
static void note_hit(struct rs_pipeline *p, uint32_t u, uint32_t i)
{
    int on_list = rs_served_contains(p->served, u, i);
    if (on_list < 0) return;
    p->ops.hit_checks++;
    p->ops.hits += (uint64_t)on_list;
}

void rs_pipeline_prefetch(struct rs_pipeline *p, const void *user, size_t len, int stage)
{
    uint32_t u = rs_idmap_prefetch(p->users, user, len, stage);
    if (u == RS_NONE) return;
    if (stage == 1) {
        rs_history_prefetch(p->history, u, 1);
        rs_model_prefetch_user(p->model, u, 1);
        rs_neighbors_prefetch_user(p->neighbors, u);
        if (u < p->user_events_cap) __builtin_prefetch(&p->user_events[u], 1);
    } else if (stage == 2) {
        rs_history_prefetch(p->history, u, 2);
        rs_model_prefetch_user(p->model, u, 2);
    }
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
    note_hit(p, u, i);

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

    p->ops.events_consumed++;
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

/* Encodes the list recs[0..n) under the key in p->key into b. */
static rs_err_t batch_list(struct rs_pipeline *p, struct rs_pub_batch *b,
                           const struct rs_rec *recs, size_t n)
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
    if (rs_redis_needs_names(p->redis))
        for (size_t j = 0; j < n && j < 1024; j++)
            names[j] = rs_idmap_name(p->items, recs[j].item, &lens[j]);
    return rs_redis_batch_list(p->redis, &b->cmds, p->key.data, p->key.len, p->blob.data,
                               p->blob.len, recs, n, names, lens);
}

/* Notes in b what user is served: recs[0..n) items, or a deletion when recs is NULL. */
static rs_err_t note_served(struct rs_pub_batch *b, uint32_t user, const struct rs_rec *recs,
                            size_t n)
{
    uint32_t head[2] = {user, recs ? (uint32_t)n : UINT32_MAX};
    size_t mark = b->note.len;

    if (rs_buf_append(&b->note, head, sizeof(head))) return RS_ENOMEM;
    for (size_t j = 0; recs && j < n; j++)
        if (rs_buf_append(&b->note, &recs[j].item, sizeof(uint32_t))) {
            b->note.len = mark;
            return RS_ENOMEM;
        }
    return RS_OK;
}

/* Encodes one user's list (or its deletion) into b. */
static rs_err_t batch_user(struct rs_pipeline *p, struct rs_pub_batch *b, uint32_t user,
                           const struct rs_rec *recs, size_t n)
{
    size_t history_len = 0;
    size_t name_len;
    const char *name = rs_idmap_name(p->users, user, &name_len);
    rs_err_t err;

    if (!name) return RS_OK; /* evicted since it was marked */
    if ((err = build_key(p, "rec:", name, name_len))) return err;
    rs_history_items(p->history, user, &history_len);
    if ((err = note_served(b, user, history_len ? recs : NULL, history_len ? n : 0))) return err;
    b->users[b->n_users++] = user;
    if (history_len == 0) {
        b->deleted++;
        return rs_redis_batch_del(&b->cmds, p->key.data, p->key.len);
    }
    b->lists++;
    return batch_list(p, b, recs, n);
}

/* Encodes the similar-items list of item (or its deletion when it has none). */
static rs_err_t batch_sim(struct rs_pipeline *p, struct rs_pub_batch *b, uint32_t item)
{
    size_t name_len;
    const char *name = rs_idmap_name(p->items, item, &name_len);
    size_t n = rs_neighbors_similar(p->neighbors, item, (size_t)p->conf->neighbors_k,
                                    p->sim_recs);
    rs_err_t err;

    if (!name) return RS_OK;
    if ((err = build_key(p, "sim:", name, name_len))) return err;
    if (n == 0) return rs_redis_batch_del(&b->cmds, p->key.data, p->key.len);
    b->sims++;
    return batch_list(p, b, p->sim_recs, n);
}

/* Encodes the trending list. */
static rs_err_t batch_pop(struct rs_pipeline *p, struct rs_pub_batch *b)
{
    size_t n = rs_popularity_top(p->popularity, rs_popularity_clock(p->popularity),
                                 (size_t)p->conf->top_n, p->sim_recs);
    rs_err_t err;
    if ((err = build_key(p, "pop", "", 0))) return err;
    if (n == 0) return rs_redis_batch_del(&b->cmds, p->key.data, p->key.len);
    return batch_list(p, b, p->sim_recs, n);
}

static rs_err_t batch_meta(struct rs_pipeline *p, struct rs_pub_batch *b)
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
    return rs_redis_batch_hset(&b->cmds, p->key.data, 6, fields, values);
}

/* Encodes DEL of the list of every user forgotten and not yet queued. */
static rs_err_t batch_forgotten(struct rs_pipeline *p, struct rs_pub_batch *b)
{
    size_t off = p->forgotten_sent;
    rs_err_t err = RS_OK;

    while (off < p->forgotten.len) {
        uint16_t len;
        memcpy(&len, p->forgotten.data + off, sizeof(len));
        if ((err = build_key(p, "rec:", p->forgotten.data + off + sizeof(len), len)) ||
            (err = rs_redis_batch_del(&b->cmds, p->key.data, p->key.len)))
            break;
        b->deleted++;
        off += sizeof(len) + len;
    }
    b->forgotten_bytes = off - p->forgotten_sent;
    p->forgotten_sent = off;
    return err;
}

/* Read at each use: SIGHUP may change them. */
struct rs_rank_weights rs_pipeline_weights(const struct rs_config *conf)
{
    struct rs_rank_weights w = {(float)conf->mf_weight, (float)conf->neighbor_weight,
                                (float)conf->popularity_weight,
                                (float)conf->recency_decay};
    return w;
}

/* The blended lists of users[0..n) (ranker.h). */
static rs_err_t rank(struct rs_pipeline *p, const uint32_t *users, size_t n,
                     struct rs_rec *out, size_t *counts)
{
    struct rs_rank_sources src = {p->model, p->history, p->neighbors, p->popularity};
    struct rs_rank_weights w = rs_pipeline_weights(p->conf);
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
    struct rs_rank_weights w = rs_pipeline_weights(p->conf);
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


/* ---- publishing --------------------------------------------------------
 * The model's thread ranks and encodes; the publisher's writer thread sends
 * (publisher.h). A batch of users is due when RANK_BATCH users wait or the
 * oldest has waited publish_interval_ms: the interval bounds the coalescing
 * window instead of delaying every event by it. Counts (lists published,
 * deleted) are taken when Redis acknowledged the batch. */

/* Once Redis has acknowledged batch b: each of its users was served the items
 * noted for them (or nothing, their key deleted), for the online hit rate. */
static void apply_served(struct rs_pipeline *p, const struct rs_pub_batch *b)
{
    const unsigned char *at = (const unsigned char *)b->note.data;
    const unsigned char *end = at + b->note.len;
    uint32_t head[2]; /* user, number of items or UINT32_MAX for a deletion */
    uint32_t items[1024];

    while (end - at >= (ptrdiff_t)sizeof(head)) {
        size_t n;
        memcpy(head, at, sizeof(head));
        at += sizeof(head);
        if (head[1] == UINT32_MAX) {
            rs_served_clear(p->served, head[0]);
            continue;
        }
        n = head[1] < 1024 ? head[1] : 1024;
        memcpy(items, at, n * sizeof(uint32_t));
        at += head[1] * sizeof(uint32_t);
        /* A user evicted while the batch was in flight is gone (an index reused that
         * quickly by a new user would be credited with the old list: rare, metric only). */
        if (rs_idmap_name(p->users, head[0], NULL) == NULL ||
            rs_served_set(p->served, head[0], items, n))
            rs_served_clear(p->served, head[0]); /* gone, or no memory: not counted */
    }
}

/* Folds written batches into the statistics and frees their slots. */
static void reap(struct rs_pipeline *p)
{
    struct rs_pub_batch *b;
    uint64_t failures;

    while ((b = rs_publisher_reap(p->pub))) {
        apply_served(p, b);
        p->stats.lists_published += b->lists;
        p->stats.lists_deleted += b->deleted;
        p->stats.sim_lists_published += b->sims;
        if (b->forgotten_bytes) {
            memmove(p->forgotten.data, p->forgotten.data + b->forgotten_bytes,
                    p->forgotten.len - b->forgotten_bytes);
            p->forgotten.len -= b->forgotten_bytes;
            p->forgotten_sent -= b->forgotten_bytes;
        }
        rs_histogram_observe(&p->ops.publish_seconds,
                             (double)(b->written_ns - b->submitted_ns) / 1e9);
        rs_publisher_release(p->pub, b);
    }
    failures = rs_publisher_failures(p->pub);
    p->stats.publish_errors += failures - p->failures_seen;
    p->failures_seen = failures;
}

static int users_due(const struct rs_pipeline *p)
{
    size_t n = rs_dirty_count(p->dirty);
    return n >= RANK_BATCH ||
           (n > 0 && rs_dirty_oldest_ms(p->dirty) >= (uint32_t)p->conf->publish_interval_ms);
}

static int items_pending(const struct rs_pipeline *p)
{
    return rs_neighbors_changed(p->neighbors) > 0 || p->pop_changed || p->meta_due;
}

static int items_due(const struct rs_pipeline *p)
{
    return items_pending(p) &&
           rs_mono_ns() - p->last_items_ns >= (uint64_t)p->conf->publish_interval_ms * 1000000ull;
}

/* Ranks a batch of the oldest dirty users into b. */
static rs_err_t batch_users(struct rs_pipeline *p, struct rs_pub_batch *b)
{
    int top_n = p->conf->top_n;
    uint32_t waited_ms = rs_dirty_oldest_ms(p->dirty);
    uint64_t t0 = rs_mono_ns();
    size_t n = rs_dirty_take(p->dirty, p->batch,
                             rs_dirty_count(p->dirty) >= PUBLISH_BATCH ? PUBLISH_BATCH
                                                                       : RANK_BATCH);
    rs_err_t err;

    if ((err = rs_pub_batch_reserve_users(b, n)) ||
        (err = rank(p, p->batch, n, p->recs, p->counts)))
        goto requeue;
    for (size_t j = 0; j < n; j++)
        if ((err = batch_user(p, b, p->batch[j], p->recs + j * (size_t)top_n, p->counts[j])))
            goto requeue;
    p->meta_due = 1;
    rs_histogram_observe(&p->ops.dirty_wait_seconds, (double)waited_ms / 1e3);
    rs_histogram_observe(&p->ops.rank_seconds, (double)(rs_mono_ns() - t0) / 1e9);
    return RS_OK;

requeue:
    /* Out of memory: none of them is queued; they stay dirty. */
    rs_redis_batch_reset(&b->cmds);
    b->n_users = 0;
    b->lists = b->deleted = 0;
    for (size_t j = 0; j < n; j++) rs_dirty_mark(p->dirty, p->batch[j]);
    return err;
}

/* Similar-items lists of up to max changed items, rs:pop, rs:meta. */
static rs_err_t batch_items(struct rs_pipeline *p, struct rs_pub_batch *b, size_t max)
{
    size_t n = rs_neighbors_take_changed(p->neighbors, p->sim_items, max);
    rs_err_t err = rs_pub_batch_reserve_items(b, n);

    if (!err && n) { /* in the snapshots while in flight: see save_sims_in_flight */
        memcpy(b->items + b->n_items, p->sim_items, n * sizeof(uint32_t));
        b->n_items += n;
    }
    for (size_t j = 0; j < n && !err; j++) err = batch_sim(p, b, p->sim_items[j]);
    if (!err && p->pop_changed) err = batch_pop(p, b);
    if (!err) err = batch_meta(p, b);
    if (err) {
        rs_redis_batch_reset(&b->cmds);
        b->sims = 0;
        b->n_items = 0;
        for (size_t j = 0; j < n; j++) rs_neighbors_mark_changed(p->neighbors, p->sim_items[j]);
        return err;
    }
    p->pop_changed = 0;
    p->meta_due = 0;
    p->last_items_ns = rs_mono_ns();
    return RS_OK;
}

/* Fills and submits batches while work is due (all of it when force) and a slot
 * is free, for at most budget_ns of ranking. */
static rs_err_t step(struct rs_pipeline *p, int force, uint64_t budget_ns)
{
    uint64_t t0 = rs_mono_ns();
    struct rs_pub_batch *b;
    rs_err_t err = RS_OK;

    reap(p);
    /* Deletions first: a forgotten user's DEL must not wait behind lists. */
    if (p->forgotten.len > p->forgotten_sent && (b = rs_publisher_acquire(p->pub))) {
        err = batch_forgotten(p, b);
        if (b->cmds.replies) rs_publisher_submit(p->pub, b);
        if (err) return err;
    }
    while (rs_dirty_count(p->dirty) > 0 && (force || users_due(p)) &&
           rs_mono_ns() - t0 < budget_ns && (b = rs_publisher_acquire(p->pub))) {
        if ((err = batch_users(p, b))) return err;
        if (b->cmds.replies) rs_publisher_submit(p->pub, b);
    }
    if ((force ? items_pending(p) : items_due(p)) && (b = rs_publisher_acquire(p->pub))) {
        size_t sims = SIM_PER_PUBLISH;
        if (!force) {
            sims = (size_t)SIM_PER_SECOND * (size_t)p->conf->publish_interval_ms / 1000;
            if (sims < 1) sims = 1;
            if (sims > SIM_PER_PUBLISH) sims = SIM_PER_PUBLISH;
        }
        if ((err = batch_items(p, b, sims))) return err;
        rs_publisher_submit(p->pub, b);
    }
    return RS_OK;
}

/* Without a sink: drains what would be published so it stays bounded. */
static void drain(struct rs_pipeline *p)
{
    while (rs_dirty_take(p->dirty, p->batch, PUBLISH_BATCH) > 0) {
    }
    while (rs_neighbors_take_changed(p->neighbors, p->sim_items, SIM_PER_PUBLISH) > 0) {
    }
    p->pop_changed = 0;
    p->meta_due = 0;
    rs_buf_reset(&p->forgotten);
    p->forgotten_sent = 0;
}

rs_err_t rs_pipeline_publish_step(struct rs_pipeline *p)
{
    if (!p->pub) {
        if (rs_pipeline_publish_due(p)) drain(p);
        return RS_OK;
    }
    return step(p, 0, STEP_BUDGET_NS);
}

int rs_pipeline_publish_due(const struct rs_pipeline *p)
{
    return users_due(p) || items_due(p) || p->forgotten.len > p->forgotten_sent;
}

int rs_pipeline_publish_wait_ms(const struct rs_pipeline *p)
{
    int interval = p->conf->publish_interval_ms, wait = interval;
    uint64_t since_items;

    if (p->pub && rs_publisher_in_flight(p->pub) == rs_publisher_slots(p->pub))
        return 1; /* the writer's queue is full: poll again soon */
    if (p->forgotten.len > p->forgotten_sent || users_due(p)) return 0;
    if (p->pub && rs_publisher_in_flight(p->pub) > 0) wait = 1; /* acknowledgements to fold in */
    if (rs_dirty_count(p->dirty) > 0) {
        int left = interval - (int)rs_dirty_oldest_ms(p->dirty);
        if (left < wait) wait = left;
    }
    if (items_pending(p)) {
        since_items = (rs_mono_ns() - p->last_items_ns) / 1000000u;
        if (since_items >= (uint64_t)interval) return 0;
        if (interval - (int)since_items < wait) wait = interval - (int)since_items;
    }
    return wait < 0 ? 0 : wait;
}

rs_err_t rs_pipeline_publish(struct rs_pipeline *p)
{
    uint64_t failures;
    rs_err_t err;

    if (!p->pub) {
        drain(p);
        return RS_OK;
    }
    failures = rs_publisher_failures(p->pub);
    for (;;) {
        if ((err = step(p, 1, UINT64_MAX))) return err;
        if (rs_dirty_count(p->dirty) == 0 && !items_pending(p) &&
            p->forgotten.len == p->forgotten_sent && rs_publisher_in_flight(p->pub) == 0)
            return RS_OK;
        if (rs_publisher_failures(p->pub) != failures) {
            /* An attempt failed during this call: the writer keeps retrying. */
            char why[256];
            reap(p); /* the failed attempts into publish_errors */
            rs_publisher_errstr(p->pub, why, sizeof(why));
            rs_warn("publishing: %s; %zu lists wait for Redis", why, rs_pipeline_dirty(p));
            return RS_EREDIS;
        }
        rs_publisher_wait(p->pub, 100);
    }
}

size_t rs_pipeline_publish_queued(const struct rs_pipeline *p)
{
    return p->pub ? rs_publisher_queued(p->pub) : 0;
}

size_t rs_pipeline_publish_in_flight(const struct rs_pipeline *p)
{
    return p->pub ? rs_publisher_in_flight(p->pub) : 0;
}

size_t rs_pipeline_publish_slots(const struct rs_pipeline *p)
{
    return p->pub ? rs_publisher_slots(p->pub) : 0;
}

/* Users in batches not yet acknowledged by Redis. */
static size_t users_in_flight(const struct rs_pipeline *p)
{
    size_t n = 0, batches = p->pub ? rs_publisher_in_flight(p->pub) : 0;
    for (size_t i = 0; i < batches; i++) n += rs_publisher_in_flight_at(p->pub, i)->n_users;
    return n;
}

size_t rs_pipeline_pending(const struct rs_pipeline *p)
{
    return rs_dirty_count(p->dirty) + users_in_flight(p) + rs_neighbors_changed(p->neighbors) +
           (p->pop_changed ? 1 : 0) + (p->forgotten.len > p->forgotten_sent ? 1 : 0);
}

size_t rs_pipeline_dirty(const struct rs_pipeline *p)
{
    return rs_dirty_count(p->dirty) + users_in_flight(p);
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
#define SECTION_FORGOTTEN 11
#define SECTION_SIMS_IN_FLIGHT 12

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
MODULE_SECTION(popularity, popularity)
MODULE_SECTION(neighbors, neighbors)

/* The dirty users, oldest first, after those in batches Redis has not yet
 * acknowledged: a snapshot must not forget a list that was taken from the
 * dirty set but never written. */
static rs_err_t save_dirty(const struct rs_pipeline *p, struct rs_writer *w)
{
    size_t batches = p->pub ? rs_publisher_in_flight(p->pub) : 0;
    struct rs_dirty *all;
    rs_err_t err = RS_OK;

    if (users_in_flight(p) == 0) return rs_dirty_save(p->dirty, w);
    if (!(all = rs_dirty_create())) return RS_ENOMEM;
    for (size_t i = 0; i < batches && !err; i++) {
        const struct rs_pub_batch *b = rs_publisher_in_flight_at(p->pub, i);
        for (size_t j = 0; j < b->n_users && !err; j++) err = rs_dirty_mark(all, b->users[j]);
    }
    for (size_t i = 0; i < rs_dirty_count(p->dirty) && !err; i++)
        err = rs_dirty_mark(all, rs_dirty_at(p->dirty, i));
    if (!err) err = rs_dirty_save(all, w);
    rs_dirty_destroy(all);
    return err;
}

static rs_err_t load_dirty(struct rs_pipeline *to, struct rs_reader *r)
{
    rs_err_t err;
    struct rs_dirty *loaded = rs_dirty_load(r, &err);
    if (!loaded) return err;
    rs_dirty_destroy(to->dirty);
    to->dirty = loaded;
    return RS_OK;
}

/* Forgotten users whose DEL Redis has not acknowledged: u32 byte count, then
 * the queue as it is kept (u16 length + id, repeated). */
static rs_err_t save_forgotten(const struct rs_pipeline *p, struct rs_writer *w)
{
    rs_err_t err = rs_write_u32(w, (uint32_t)p->forgotten.len);
    if (err || p->forgotten.len == 0) return err;
    return w->write(w->ctx, p->forgotten.data, p->forgotten.len);
}

static rs_err_t load_forgotten(struct rs_pipeline *to, struct rs_reader *r)
{
    uint32_t n, off = 0;
    uint16_t len;
    rs_err_t err;

    if ((err = rs_read_u32(r, &n))) return err;
    if (n > r->remaining(r->ctx)) return RS_ECORRUPT;
    rs_buf_reset(&to->forgotten);
    while (off < n) {
        char id[RS_ID_MAX];
        if (n - off < sizeof(len)) return RS_ECORRUPT;
        if ((err = r->read(r->ctx, &len, sizeof(len)))) return err;
        if (len == 0 || len > RS_ID_MAX || len > n - off - sizeof(len)) return RS_ECORRUPT;
        if ((err = r->read(r->ctx, id, len))) return err;
        if (rs_buf_append(&to->forgotten, &len, sizeof(len)) ||
            rs_buf_append(&to->forgotten, id, len))
            return RS_ENOMEM;
        off += (uint32_t)sizeof(len) + len;
    }
    return RS_OK;
}

/* Items whose similar-items lists are in batches Redis has not acknowledged
 * (taken from the neighbours' changed set, so not marked there): u32 count,
 * then the item indices. Loaded after the neighbours, which mark them changed
 * again, so a restore writes those lists anew. */
static rs_err_t save_sims_in_flight(const struct rs_pipeline *p, struct rs_writer *w)
{
    size_t batches = p->pub ? rs_publisher_in_flight(p->pub) : 0;
    uint32_t n = 0;
    rs_err_t err;

    for (size_t i = 0; i < batches; i++)
        n += (uint32_t)rs_publisher_in_flight_at(p->pub, i)->n_items;
    if ((err = rs_write_u32(w, n))) return err;
    for (size_t i = 0; i < batches && !err; i++) {
        const struct rs_pub_batch *b = rs_publisher_in_flight_at(p->pub, i);
        if (b->n_items) err = w->write(w->ctx, b->items, b->n_items * sizeof(uint32_t));
    }
    return err;
}

static rs_err_t load_sims_in_flight(struct rs_pipeline *to, struct rs_reader *r)
{
    uint32_t n, item;
    rs_err_t err;

    if ((err = rs_read_u32(r, &n))) return err;
    if (n > r->remaining(r->ctx) / 4) return RS_ECORRUPT;
    for (uint32_t j = 0; j < n; j++) {
        if ((err = rs_read_u32(r, &item))) return err;
        if (item >= rs_neighbors_items(to->neighbors)) return RS_ECORRUPT;
        rs_neighbors_mark_changed(to->neighbors, item);
    }
    return RS_OK;
}

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
    int optional; /* absent from snapshots written before it existed: loads as empty */
    rs_err_t (*save)(const struct rs_pipeline *p, struct rs_writer *w);
    rs_err_t (*load)(struct rs_pipeline *to, struct rs_reader *r);
} sections[] = {
    {SECTION_META, "meta", 0, save_meta, load_meta},
    {SECTION_OFFSETS, "offsets", 0, save_offsets, load_offsets},
    {SECTION_USERS, "users", 0, save_users, load_users},
    {SECTION_ITEMS, "items", 0, save_items, load_items},
    {SECTION_MODEL, "model", 0, save_model, load_model},
    {SECTION_HISTORY, "history", 0, save_history, load_history},
    {SECTION_DIRTY, "dirty", 0, save_dirty, load_dirty},
    {SECTION_POPULARITY, "popularity", 0, save_popularity, load_popularity},
    {SECTION_NEIGHBORS, "neighbors", 0, save_neighbors, load_neighbors},
    {SECTION_USER_EVENTS, "user_events", 0, save_user_events, load_user_events},
    {SECTION_FORGOTTEN, "forgotten", 1, save_forgotten, load_forgotten},
    {SECTION_SIMS_IN_FLIGHT, "sims_in_flight", 1, save_sims_in_flight, load_sims_in_flight},
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
    SWAP(served); /* the restored users get a fresh, empty record */
    SWAP(user_events);
    SWAP(user_events_cap);
    SWAP(offsets);
    SWAP(offset_cnt);
    SWAP(stats);
    SWAP(forgotten);
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
        if (err == RS_ENOENT && sections[s].optional) continue;
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
    /* None is in the neighbours' section: the shrinkage and the order weights
     * are configuration, and their clock (the latest event time) is
     * popularity's, which saw every event. */
    configure_neighbors(to->neighbors, p->conf);
    rs_neighbors_set_clock(to->neighbors, rs_popularity_clock(to->popularity));
    swap_state(p, to);
    p->forgotten_sent = 0;
    p->last_items_ns = rs_mono_ns();
    err = RS_OK;

done:
    rs_pipeline_destroy(to);
    return err;
}

void rs_pipeline_note_event_lag(struct rs_pipeline *p, int64_t at_ms)
{
    int64_t lag = rs_now_ms() - at_ms;
    rs_histogram_observe(&p->ops.event_lag_seconds, lag > 0 ? (double)lag / 1e3 : 0.0);
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

void rs_pipeline_note_snapshot_duration(struct rs_pipeline *p, uint64_t ns)
{
    p->ops.snapshot_last_ns = ns;
}

const struct rs_pipeline_ops *rs_pipeline_ops(const struct rs_pipeline *p)
{
    return &p->ops;
}
