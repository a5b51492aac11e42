/*
 * eval.h - the offline evaluation harness behind `recstream eval`: events read
 * once into memory with dense ids, then either k-fold cross-validation of
 * rating prediction (as Surprise's cross_validate: shuffle, split, E passes
 * over each training fold) or a prequential replay in time order (each event
 * first predicted or recommended for, then learnt). Models compared in the
 * prequential replay: the recstream model, plain positive-only SGD (ISGD,
 * Vinagre et al. 2014) and time-decayed popularity.
 */
#ifndef RECSTREAM_EVAL_H
#define RECSTREAM_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/config.h"
#include "recstream/idmap.h"
#include "recstream/model.h"
#include "recstream/ranker.h"

/* One event with dense ids. */
struct rs_eval_event {
    uint32_t u, i;
    float value;
    uint32_t play; /* 1 play, 0 rating */
    int64_t ts_ms;
};

struct rs_eval_data {
    struct rs_eval_event *ev;
    size_t n;
    struct rs_idmap *users, *items;
    uint64_t bad_records; /* skipped by the reader */
    uint64_t dropped;     /* ratings below the implicit threshold, and forgets */
};

/*
 * Reads every event of path (any layout the file source knows). With
 * implicit_threshold > 0, ratings >= it become plays of weight 1 and the
 * others are dropped. Ratings are checked against [rating_min, rating_max].
 * RS_OK, or an error with the message in errstr.
 */
rs_err_t rs_eval_load(const char *path, double implicit_threshold, double rating_min,
                      double rating_max, struct rs_eval_data *d, char *errstr,
                      size_t errstr_size);
void rs_eval_data_free(struct rs_eval_data *d);

/* Stable sort of the events by time (ties keep file order). */
void rs_eval_sort_by_time(struct rs_eval_data *d);

#define RS_EVAL_MAX_FOLDS 100

struct rs_eval_cv {
    int folds;
    double rmse[RS_EVAL_MAX_FOLDS], mae[RS_EVAL_MAX_FOLDS], fit_s[RS_EVAL_MAX_FOLDS];
    size_t test_n[RS_EVAL_MAX_FOLDS];
    double rmse_mean, mae_mean, fit_s_total;
};

/*
 * k-fold cross-validation of the rating events: shuffled with seed, fold f is
 * the f-th contiguous slice of the shuffled order; each training fold trains a
 * fresh model (params, replay off) with `epochs` passes in that order, then
 * the test fold is predicted. With export_dir, fold f's training and test
 * events are written first to export_dir/fold<f>.train and .test
 * ("user<TAB>item<TAB>rating<TAB>seconds" lines, original ids).
 */
rs_err_t rs_eval_cross_validate(const struct rs_eval_data *d,
                                const struct rs_model_params *params, int folds,
                                int epochs, uint64_t seed, const char *export_dir,
                                struct rs_eval_cv *out, char *errstr, size_t errstr_size);

enum rs_eval_model {
    RS_EVAL_DEFAULT = 0, /* the recstream model */
    RS_EVAL_ISGD,        /* plain positive-only SGD, no biases, no negatives */
    RS_EVAL_POPULARITY,  /* time-decayed item counts */
};

/* The figures of one window of a prequential replay: events (end - window, end]. */
struct rs_eval_window {
    uint64_t end;        /* events replayed when the window closed */
    uint64_t n_rated;    /* ratings predicted in the window */
    uint64_t n_ranked;   /* events ranked for in the window */
    double rmse;         /* NAN if none */
    double recall, ndcg; /* NAN if none */
};

/* How a prequential replay is run and reported. */
struct rs_eval_preq_opts {
    uint64_t window;     /* > 0: figures per window of this many events (series) */
    uint32_t rank_every; /* rank for one eligible event in this many (0 or 1: all) */
};

struct rs_eval_preq {
    double rmse;         /* over rating events predicted (NAN if none) */
    double recall, ndcg; /* over events ranked (NAN if none) */
    uint64_t n;          /* events replayed */
    uint64_t n_rated;    /* ratings predicted */
    uint64_t n_ranked;   /* events whose item was ranked for: known user, new item */
    uint64_t n_eligible; /* events that could be ranked for (all with rank_every 1) */
    double seconds;
    double events_per_second;
    struct rs_eval_window *series; /* one per window when opts->window > 0, owned */
    size_t n_series;
};

/* Frees out->series; the rest of out stays readable. NULL is a no-op. */
void rs_eval_preq_free(struct rs_eval_preq *out);

/*
 * Prequential replay in the order of d (sort it first): for each event the
 * rating is predicted (rate events), and when top_n > 0 and the user has
 * history, the top_n items the user has not had yet are ranked and the hit
 * and its discounted gain counted; then the model learns the event.
 * half_life_s is the popularity baseline's decay. opts (may be NULL) asks
 * for per-window figures and for ranking only every n-th eligible event (the
 * same events whatever the model, so runs compare); every event is learnt.
 * Free out with rs_eval_preq_free.
 */
rs_err_t rs_eval_prequential(const struct rs_eval_data *d,
                             const struct rs_model_params *params,
                             enum rs_eval_model model, int top_n, double half_life_s,
                             const struct rs_eval_preq_opts *opts,
                             struct rs_eval_preq *out, char *errstr, size_t errstr_size);

/*
 * The same replay through the daemon's own pipeline (model, neighbours,
 * popularity, histories, eviction: everything `recstream run` does per
 * event, without Redis), ranking with the blend weights w: what a user of
 * recstream is served. An event counts as ranked by the same rule as above
 * (the user has history, the item is new to them) and is a hit when the item
 * is in the user's list of conf->top_n; the rating of a rate event is
 * predicted by the pipeline's model. conf is borrowed; opts as above.
 * The ranker's cached neighbour lists ignore [ranking]
 * neighbor_list_max_age_ms (a replay runs faster than real time and must be
 * repeatable); neighbor_list_max_events applies (0: exact lists).
 */
rs_err_t rs_eval_prequential_pipeline(const struct rs_eval_data *d,
                                      const struct rs_config *conf,
                                      const struct rs_rank_weights *w,
                                      const struct rs_eval_preq_opts *opts,
                                      struct rs_eval_preq *out, char *errstr,
                                      size_t errstr_size);

#endif
