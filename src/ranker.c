/*
 * ranker.c - turns the model into top-N lists. Users are ranked in batches:
 * their factor rows are gathered into one small matrix U and a single
 * cblas_sgemm per block of item columns gives S = U * Q^T. Each user's row
 * of S is then turned into its final scores in one pass over the block:
 *     score = a_u * (s + b_i) + off_u + extra[c] (+ pop[i])
 * where a_u, off_u put the model score on the blend's scale (ranker.h;
 * 1 and mu + b_u for model-only lists), pop is the weighted popularity
 * computed once per call, and extra is a per-block scratch row in which the
 * user's sparse neighbour candidates are scattered (with their reasons
 * beside them) and the items to exclude are set to -inf, then cleared again.
 * So the pass has no per-item branches but the heap test, and a bounded heap
 * keeps the N best without sorting the catalogue. The pass is vectorised
 * (AVX-512, AVX2 or SSE2, picked for the CPU at run time; see scan_args):
 * a block's scores are compared with the heap's worst a vector at a time and
 * only the survivors are offered (with AVX-512, lists of up to 32 are kept
 * in registers meanwhile, reg_top, and when offers run high a first pass
 * finds a floor for the threshold, scan_floor).
 * The model's scale for a user (mean and max of its scores) comes from one
 * extra small sgemm over a fixed sample of item rows, or, when the catalogue
 * is one block, from the same items in the user's row of the block's sgemm.
 * In that one-block case (blends with neighbours make one block of catalogues
 * up to ONE_PASS_MAX) the neighbour sums are gathered per user just before its
 * pass and read where they lie (score_direct).
 * Neighbour candidates are gathered per user from the top-k lists of the
 * user's recent items into dense accumulators over the items, touched-list
 * cleared, so gathering costs O(window * k) whatever the catalogue size. The
 * top-k lists come from a bounded cache (struct nb_cache), exact for one
 * state of the neighbours or, with a staleness bound, reused for a while
 * after it changed: computing a list (2k similarities, each reading its
 * partner's row head somewhere in memory, and a selection) cost more than
 * the 10K-item sgemm per user; users ranked together share them, and under a
 * steady stream every event changes the state.
 * The ranker owns all its scratch buffers, grown on demand and reused, so
 * ranking allocates nothing once warmed up.
 * Order: higher score first; on equal scores the lower item index wins. NaN
 * scores are never recommended. The naive references below apply the same
 * formulas in the same order of operations.
 */
#include "recstream/ranker.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <xmmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#define RS_SCAN_X86 1
#include <immintrin.h>
#endif

#include "recstream/neighbors.h"
#include "recstream/popularity.h"

/* Item columns per sgemm: bounds S at batch x ITEM_BLOCK floats. */
#define ITEM_BLOCK 4096u
/* Blends with neighbours over catalogues up to this size run in one block, read
 * in place (score_direct): S then takes batch x items floats. */
#define ONE_PASS_MAX 16384u
/* Items sampled to put a user's model scores on the blend's scale. */
#define MF_SAMPLE 512u

enum mode { MODE_RAW, MODE_BLEND };

/* The scoring pass over one user's block row (see scan_args below). */
struct scan_args;
typedef void scan_fn(const struct scan_args *x);
static scan_fn *scan_pick(const char *isa);
static int is_wide(scan_fn *f); /* f is the AVX-512 pass */

/*
 * Items' top-k neighbour lists as rs_neighbors_top gave them, direct-mapped
 * by item index (entry = item & mask, tagged with the item). Users ranked
 * together share most of their recent items, so each list is computed once
 * and reused. Each entry remembers the rs_neighbors_stamp it was computed
 * at and when (the monotonic clock at the start of the call that filled it).
 * With the exact rule (max_age_ns = max_events = 0, the default) an entry is
 * used only while the neighbours are exactly as they were when it was
 * filled, and gives the same list, in the same order, as computing it again.
 * With a staleness bound it is also used after the neighbours changed, while
 * it is at most max_age_ns old and at most max_events events behind (each
 * bound that is not 0). Entries of another neighbours object, list length or
 * allocation belong to an older epoch and are never used. Bounded: at most
 * NB_CACHE_BYTES whatever the catalogue.
 */
#define NB_CACHE_BYTES (8u << 20)
struct nb_entry {
    uint32_t tag, ep, len; /* the item held, its epoch, the list's length */
    uint64_t changes;      /* the stamp's changes and events when filled */
    uint64_t events;
    uint64_t at_ns; /* the call's clock when filled */
};
struct nb_cache {
    struct rs_neighbors_stamp stamp; /* of the current call */
    uint64_t now_ns;                 /* the current call's clock (0: not read) */
    uint64_t max_age_ns, max_events; /* staleness bounds; both 0: exact */
    size_t k;                        /* list length of every entry */
    size_t entries;                  /* a power of two, 0 before the first use */
    uint32_t epoch;                  /* entries of other epochs are never used */
    struct nb_entry *ent;            /* entries */
    struct rs_rec *lists;            /* entries x k */
};

/* One user of the batch being ranked. */
struct slot {
    size_t j; /* index into users[] */
    uint32_t user;
    int active;   /* some signal has something for this user */
    float a, off; /* model term: a * (s + b_i) + off */
    size_t hist_pos;
    /* the user's history (ascending) and recent items, looked up (and their
     * first lines prefetched) when the batch is assembled */
    const uint32_t *hist, *ring;
    size_t nh, rn;
    struct rs_rec *cand; /* neighbour candidates: item, weighted nb score, why */
    size_t cand_n;
    int cand_sorted; /* in item order (then cand_pos is a cursor) */
    size_t cand_pos; /* first candidate not in an earlier block */
};

struct rs_ranker {
    int top_n;
    int batch;
    float *U; /* batch x k */
    size_t U_cap;
    float *S; /* batch x min(items, ITEM_BLOCK), or x items (ONE_PASS_MAX) */
    size_t S_cap;
    float *Qs; /* MF_SAMPLE x k: sampled item rows */
    size_t Qs_cap;
    float *Ss; /* batch x MF_SAMPLE */
    size_t Ss_cap;
    float Bs[MF_SAMPLE];  /* the sampled items' biases */
    uint32_t sample_at[MF_SAMPLE]; /* the sampled items */
    struct rs_rec *heaps; /* batch heaps of top_n entries */
    size_t *heap_len;     /* batch */
    struct slot *slots;   /* batch */
    float *extra;         /* ITEM_BLOCK, all 0 between users */
    uint32_t *extra_why;  /* ITEM_BLOCK */
    float *zeros;         /* zeros: the model row when there is no model term */
    size_t zeros_cap;
    float *popw;  /* items: weighted popularity */
    size_t popw_cap;
    struct rs_rec *cand; /* batch x RS_RANKER_MAX_CANDIDATES */
    size_t cand_cap;
    float *acc, *best; /* items, all 0 between users */
    uint32_t *acc_why; /* items */
    size_t acc_cap;
    uint32_t *touched;
    size_t touched_cap;
    struct rs_rec *cand_all; /* window x k: one user's gathered items */
    size_t cand_all_cap;
    uint32_t *block_at; /* item blocks + 1: counting sort of candidates */
    size_t block_at_cap;
    struct rs_rec *sim; /* k + 2k: a top-k list and its scratch */
    size_t sim_cap;
    struct nb_cache nbc;
    scan_fn *scan; /* the scoring pass (scan_pick) */
    /* Offers per pass of the AVX-512 short-list pass without a floor, a running
     * average; above FLOOR_OFFERS(top_n) the floor pays and is taken, except in
     * one pass of every FLOOR_SAMPLE, which keeps measuring. floor_always: the
     * floor in every pass (rs_ranker_set_isa "avx512-floor"). */
    float offers_avg;
    uint32_t passes;
    int floor_always;
    int wide; /* the AVX-512 pass is in use: so is row_scale512 */
};

/* a ranks before b. */
static inline __attribute__((always_inline)) int better(const struct rs_rec *a,
                                                        const struct rs_rec *b)
{
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

/* ---- bounded heap: the root is the worst kept entry ---- */

/*
 * Inlined everywhere, so that each variant of the scoring pass (scan_args)
 * runs its heap work in its own encoding: called from AVX code, baseline SSE
 * code runs with the vector registers' upper halves dirty, and that cost a
 * third of the throughput.
 */
static inline __attribute__((always_inline)) void sift_down(struct rs_rec *hp, size_t len,
                                                            size_t at)
{
    for (;;) {
        size_t l = 2 * at + 1, r = l + 1, worst = at;
        if (l < len && better(&hp[worst], &hp[l])) worst = l;
        if (r < len && better(&hp[worst], &hp[r])) worst = r;
        if (worst == at) return;
        struct rs_rec t = hp[at];
        hp[at] = hp[worst];
        hp[worst] = t;
        at = worst;
    }
}

static inline __attribute__((always_inline)) void heap_offer(struct rs_rec *hp,
                                                             size_t *len, size_t cap,
                                                             uint32_t item, float score,
                                                             uint32_t why)
{
    struct rs_rec c = {item, score, why};
    if (*len < cap) {
        size_t at = (*len)++;
        while (at > 0) {
            size_t up = (at - 1) / 2;
            if (!better(&hp[up], &c)) break;
            hp[at] = hp[up];
            at = up;
        }
        hp[at] = c;
    } else if (better(&c, &hp[0])) {
        hp[0] = c;
        sift_down(hp, *len, 0);
    }
}

/*
 * Up to this many entries per user are kept sorted instead of in a heap: the
 * scoring pass offers items in increasing item order, so a new entry goes
 * after the kept ones of equal score, and an insertion is one short shift
 * with a single unpredictable branch (the end of the shift) where a sift
 * down a heap took a mispredicted branch per level. Its shift grows with
 * the list, so longer ones stay in a heap.
 */
#define SORTED_MAX 64u

/* Inserts into the best-first kept[0..*len), full at cap; the entry ranks
 * below every kept one of the same score and, when full, above the last. */
static inline __attribute__((always_inline)) void sorted_offer(struct rs_rec *kept,
                                                               size_t *len, size_t cap,
                                                               uint32_t item, float score,
                                                               uint32_t why)
{
    struct rs_rec c = {item, score, why};
    size_t x = *len < cap ? (*len)++ : cap - 1;
    while (x > 0 && kept[x - 1].score < score) {
        kept[x] = kept[x - 1];
        x--;
    }
    kept[x] = c;
}

/* Writes the heap to out best-first (heap sort; the heap is consumed). */
static size_t heap_drain(struct rs_rec *hp, size_t len, struct rs_rec *out)
{
    size_t n = len;
    while (len > 0) {
        out[len - 1] = hp[0];
        hp[0] = hp[--len];
        sift_down(hp, len, 0);
    }
    return n;
}

/* ---- lifecycle ---- */

struct rs_ranker *rs_ranker_create(int top_n, int batch)
{
    if (top_n < 1 || batch < 1) return NULL;
    /* Ranking runs on the thread that owns the model, in batches too small to
     * split: OpenBLAS worker threads would only spin (sched_yield) on the cores
     * ingestion, librdkafka and Redis need. Measured: p50 freshness went from
     * seconds to milliseconds at 10,000 events/s on 2 cores. */
    openblas_set_num_threads(1);
    struct rs_ranker *rk = calloc(1, sizeof(*rk));
    if (rk == NULL) return NULL;
    rk->top_n = top_n;
    rk->scan = scan_pick(NULL);
    rk->wide = is_wide(rk->scan);
    rk->batch = batch;
    size_t b = (size_t)batch;
    if ((size_t)top_n > SIZE_MAX / sizeof(struct rs_rec) / b) goto fail;
    rk->heaps = malloc(b * (size_t)top_n * sizeof(*rk->heaps));
    rk->heap_len = malloc(b * sizeof(*rk->heap_len));
    rk->slots = calloc(b, sizeof(*rk->slots));
    rk->extra = calloc(ITEM_BLOCK, sizeof(*rk->extra));
    rk->extra_why = calloc(ITEM_BLOCK, sizeof(*rk->extra_why));
    rk->zeros = calloc(ITEM_BLOCK, sizeof(*rk->zeros));
    rk->zeros_cap = ITEM_BLOCK;
    if (!rk->heaps || !rk->heap_len || !rk->slots || !rk->extra || !rk->extra_why ||
        !rk->zeros)
        goto fail;
    return rk;
fail:
    rs_ranker_destroy(rk);
    return NULL;
}

void rs_ranker_set_list_staleness(struct rs_ranker *rk, uint64_t max_age_ms,
                                  uint64_t max_events)
{
    if (rk == NULL) return;
    rk->nbc.max_age_ns = max_age_ms > UINT64_MAX / 1000000u ? UINT64_MAX
                                                            : max_age_ms * 1000000u;
    rk->nbc.max_events = max_events;
}

int rs_ranker_set_isa(struct rs_ranker *rk, const char *isa)
{
    int floor = isa != NULL && strcmp(isa, "avx512-floor") == 0;
    scan_fn *f = rk != NULL ? scan_pick(floor ? "avx512" : isa) : NULL;
    if (f == NULL) return -1;
    rk->scan = f;
    rk->floor_always = floor;
    rk->wide = is_wide(f);
    return 0;
}

void rs_ranker_destroy(struct rs_ranker *rk)
{
    if (rk == NULL) return;
    free(rk->U);
    free(rk->S);
    free(rk->Qs);
    free(rk->Ss);
    free(rk->heaps);
    free(rk->heap_len);
    free(rk->slots);
    free(rk->extra);
    free(rk->extra_why);
    free(rk->zeros);
    free(rk->popw);
    free(rk->cand);
    free(rk->acc);
    free(rk->best);
    free(rk->acc_why);
    free(rk->touched);
    free(rk->cand_all);
    free(rk->block_at);
    free(rk->sim);
    free(rk->nbc.ent);
    free(rk->nbc.lists);
    free(rk);
}

/* Grows *buf to at least need elements of elem bytes; new bytes zeroed when zero. */
static rs_err_t reserve_bytes(void *bufp, size_t *cap, size_t need, size_t elem, int zero)
{
    void **buf = bufp;
    if (need <= *cap) return RS_OK;
    if (need > SIZE_MAX / elem) return RS_ENOMEM;
    char *nb = realloc(*buf, need * elem);
    if (nb == NULL) return RS_ENOMEM;
    if (zero) memset(nb + *cap * elem, 0, (need - *cap) * elem);
    *buf = nb;
    *cap = need;
    return RS_OK;
}

static rs_err_t reserve(float **buf, size_t *cap, size_t need)
{
    return reserve_bytes(buf, cap, need, sizeof(float), 0);
}

/* ---- the signals' scales ---- */

/* The item of sample position p among ns samples of n items. */
static uint32_t sample_item(uint32_t p, uint32_t ns, uint32_t n)
{
    return (uint32_t)((uint64_t)p * n / ns);
}

/*
 * From a user's model scores t_p = p_u.q_i + b_i on the sample, the affine
 * map a * t + off = w_mf * (t - mean) / (max - mean). Returns 0 (and a = off
 * = 0) when the scores carry no spread. The sum and the maximum run in
 * SCALE_LANES independent lanes (position p in lane p % SCALE_LANES), added
 * up in lane order at the end: the same result every time, and no chain of
 * dependent additions through the sample (one chain cost as much as the
 * sample's sgemm).
 */
#define SCALE_LANES 8

/* The map from the lanes' sums and maxima, added up in lane order. */
static int scale_from(const double *lane_sum, const float *lane_max, uint32_t ns,
                      float w_mf, float *a, float *off)
{
    double sum = 0;
    float mx = -INFINITY;
    for (int l = 0; l < SCALE_LANES; l++) {
        sum += lane_sum[l];
        if (lane_max[l] > mx) mx = lane_max[l];
    }
    float mean = (float)(sum / ns);
    float d = mx - mean;
    *a = *off = 0.0f;
    if (!(d > 1e-6f * fmaxf(1.0f, fabsf(mx))) || !isfinite(d)) return 0;
    *a = w_mf / d;
    *off = -*a * mean;
    return 1;
}

static int mf_scale(const float *t, uint32_t ns, float w_mf, float *a, float *off)
{
    double lane_sum[SCALE_LANES] = {0};
    float lane_max[SCALE_LANES];
    uint32_t p = 0;
    for (int l = 0; l < SCALE_LANES; l++) lane_max[l] = -INFINITY;
    for (; p + SCALE_LANES <= ns; p += SCALE_LANES)
        for (int l = 0; l < SCALE_LANES; l++) {
            lane_sum[l] += t[p + l];
            lane_max[l] = t[p + l] > lane_max[l] ? t[p + l] : lane_max[l];
        }
    for (; p < ns; p++) {
        lane_sum[p % SCALE_LANES] += t[p];
        if (t[p] > lane_max[p % SCALE_LANES]) lane_max[p % SCALE_LANES] = t[p];
    }
    return scale_from(lane_sum, lane_max, ns, w_mf, a, off);
}

#ifdef RS_SCAN_X86
/*
 * mf_scale of t_p = row[at[p]] + bs[p] (a user's sampled scores read from its
 * row of a one-block sgemm), 16 positions at a time with AVX-512: a gather,
 * then the low and the high 8 into the same 8 lanes in turn, which is the
 * scalar order of each lane. Same result, bit for bit.
 */
__attribute__((target("avx512f"))) static int
row_scale512(const float *row, const uint32_t *at, const float *bs, uint32_t ns,
             float w_mf, float *a, float *off)
{
    double lane_sum[SCALE_LANES];
    float lane_max[SCALE_LANES];
    __m512d acc = _mm512_setzero_pd();
    __m256 mx = _mm256_set1_ps(-INFINITY);
    uint32_t p = 0;
    for (; p + 16 <= ns; p += 16) {
        __m512 t = _mm512_add_ps(_mm512_i32gather_ps(_mm512_loadu_si512(at + p), row, 4),
                                 _mm512_loadu_ps(bs + p));
        __m256 lo = _mm512_castps512_ps256(t);
        __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(lo));
        mx = _mm256_max_ps(lo, mx); /* a NaN t keeps the maximum, as t > max does */
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(hi));
        mx = _mm256_max_ps(hi, mx);
    }
    _mm512_storeu_pd(lane_sum, acc);
    _mm256_storeu_ps(lane_max, mx);
    for (; p < ns; p++) {
        float t = row[at[p]] + bs[p];
        lane_sum[p % SCALE_LANES] += t;
        if (t > lane_max[p % SCALE_LANES]) lane_max[p % SCALE_LANES] = t;
    }
    return scale_from(lane_sum, lane_max, ns, w_mf, a, off);
}
#endif

static int in_ring(const uint32_t *ring, size_t n, uint32_t item)
{
    for (size_t r = 0; r < n; r++)
        if (ring[r] == item) return 1;
    return 0;
}

/* 1 if x is in the ascending a[0..n): a branch-free binary search. */
static int in_sorted(const uint32_t *a, size_t n, uint32_t x)
{
    const uint32_t *base = a;
    if (n == 0) return 0;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half - 1] < x ? base + half : base;
        n -= half;
    }
    return *base == x;
}

/* ---- neighbour candidates ---- */

/*
 * Makes the cache fit the neighbours and the catalogue, and takes the call's
 * stamp and clock: another neighbours object or list length starts a new
 * epoch; a catalogue that outgrew the entries (up to NB_CACHE_BYTES)
 * reallocates them. On ENOMEM the cache is off (entries 0) and lists are
 * computed each time.
 */
static void cache_prepare(struct nb_cache *c, const struct rs_neighbors *nb, size_t k,
                          uint32_t n_items)
{
    struct rs_neighbors_stamp st = rs_neighbors_stamp(nb);
    size_t per = sizeof(struct nb_entry) + k * sizeof(struct rs_rec), want = 64;
    while (want < n_items && 2 * want * per <= NB_CACHE_BYTES)
        want *= 2;
    if (want > c->entries || k != c->k) {
        free(c->ent);
        free(c->lists);
        c->ent = calloc(want, sizeof(*c->ent));
        c->lists = malloc(want * k * sizeof(*c->lists));
        c->entries = c->ent && c->lists ? want : 0;
        c->k = k;
        c->epoch = 0; /* every entry unused: the epoch below is 1 */
    }
    if (c->entries == 0) return;
    if (st.instance != c->stamp.instance || c->epoch == 0) {
        if (++c->epoch == 0) { /* wrapped: clear the old epochs */
            for (size_t e = 0; e < c->entries; e++)
                c->ent[e].ep = 0;
            c->epoch = 1;
        }
    }
    c->stamp = st;
    c->now_ns = c->max_age_ns > 0 ? rs_mono_ns() : 0;
}

/* Entry x (of this epoch) may serve the current call. */
static inline int entry_usable(const struct nb_cache *c, const struct nb_entry *x)
{
    if (x->changes == c->stamp.changes) return 1; /* exact */
    if (c->max_age_ns == 0 && c->max_events == 0) return 0;
    if (c->max_age_ns > 0 && c->now_ns - x->at_ns > c->max_age_ns) return 0;
    if (c->max_events > 0 && c->stamp.events - x->events > c->max_events) return 0;
    return 1;
}

/* Item's top-k neighbours (rs_neighbors_top), from the cache when it holds them. */
static const struct rs_rec *top_of(struct rs_ranker *rk, const struct rs_neighbors *nb,
                                   uint32_t item, size_t k, size_t *m)
{
    struct nb_cache *c = &rk->nbc;
    struct nb_entry *x;
    struct rs_rec *list;
    size_t e;

    if (c->entries == 0) {
        *m = rs_neighbors_top(nb, item, k, rk->sim, rk->sim + k);
        return rk->sim;
    }
    e = item & (c->entries - 1);
    x = &c->ent[e];
    list = c->lists + e * k;
    if (x->tag != item || x->ep != c->epoch || !entry_usable(c, x)) {
        x->len = (uint32_t)rs_neighbors_top(nb, item, k, list, rk->sim + k);
        x->tag = item;
        x->ep = c->epoch;
        x->changes = c->stamp.changes;
        x->events = c->stamp.events;
        x->at_ns = c->now_ns;
    }
    *m = x->len;
    return list;
}

/* Histories up to this long are marked in the accumulators; longer ones are searched. */
#define MARK_HISTORY_MAX 1024u

/* Sets acc at the recent items and the first nh history items to v. */
static void mark_seen(float *acc, const uint32_t *ring, size_t rn, const uint32_t *hist,
                      size_t nh, uint32_t n_items, float v)
{
    for (size_t r = 0; r < rn; r++)
        if (ring[r] < n_items) acc[ring[r]] = v;
    for (size_t h = 0; h < nh && hist[h] < n_items; h++)
        acc[hist[h]] = v;
}

/*
 * Sums keep^age(h) * sim(h, j) over the user's recent items h (newest first,
 * age 0; the factor is multiplied by keep once per step back, so keep = 1
 * gives the plain sums) into the dense accumulators; returns the number of
 * distinct unseen items touched, listed in rk->touched. acc_why[j] is the h
 * with the largest term (newest on ties). Terms that are not above 0 (the
 * factor underflows far back with a steep decay) touch nothing. The recent
 * items, and with mark the history items (hist[0..nh), ascending), must be
 * marked -inf in acc (mark_seen) so they are skipped; without mark, history
 * items are searched in hist.
 */
static size_t gather_sums(struct rs_ranker *rk, const struct rs_neighbors *nb,
                          const uint32_t *ring, size_t rn, const uint32_t *hist,
                          size_t nh, uint32_t n_items, int mark, float keep)
{
    size_t t = 0, k = (size_t)rs_neighbors_k(nb);
    float *acc = rk->acc, *best = rk->best, f = 1.0f; /* f: keep^age of ring[r] */
    uint32_t *why = rk->acc_why, *touched = rk->touched;
    for (size_t r = rn; r-- > 0; f *= keep) {
        size_t m;
        const struct rs_rec *top = top_of(rk, nb, ring[r], k, &m);
        uint32_t h = ring[r];
        for (size_t x = 0; x < m; x++) {
            uint32_t j = top[x].item;
            float v = top[x].score * f;
            if (j >= n_items || acc[j] < 0.0f || !(v > 0.0f))
                continue; /* not in the model yet, seen; no weight */
            if (acc[j] == 0.0f) {
                if (!mark && in_sorted(hist, nh, j)) continue;
                touched[t++] = j;
                best[j] = v;
                why[j] = h;
            } else if (v > best[j]) {
                best[j] = v;
                why[j] = h;
            }
            acc[j] += v;
        }
    }
    return t;
}

/* gather_sums with the marking done and undone around it. */
static size_t gather(struct rs_ranker *rk, const struct rs_neighbors *nb,
                     const uint32_t *ring, size_t rn, const uint32_t *hist, size_t nh,
                     uint32_t n_items, float keep)
{
    int mark = nh <= MARK_HISTORY_MAX;
    size_t t;
    mark_seen(rk->acc, ring, rn, hist, mark ? nh : 0, n_items, -INFINITY);
    t = gather_sums(rk, nb, ring, rn, hist, nh, n_items, mark, keep);
    mark_seen(rk->acc, ring, rn, hist, mark ? nh : 0, n_items, 0.0f);
    return t;
}

static int cmp_rec_desc(const void *x, const void *y);

/* Fills slot s's candidates: unseen gathered items, w_nb * their nb (ranker.h). */
static void build_candidates(struct rs_ranker *rk, const struct rs_rank_sources *src,
                             const struct rs_rank_weights *w, struct slot *sl,
                             struct rs_rec *cand, uint32_t blocks)
{
    float w_nb = w->neighbor;
    size_t rn = sl->rn, t, n = 0, nh = sl->nh;
    const uint32_t *ring = sl->ring, *hist = sl->hist;

    struct rs_rec *all = rk->cand_all; /* window * k: every gathered item */

    t = gather(rk, src->neighbors, ring, rn, hist, nh, rs_model_items(src->model),
               1.0f - w->recency_decay);
    for (size_t x = 0; x < t; x++) {
        uint32_t j = rk->touched[x];
        all[n].item = j;
        all[n].score = w_nb * rk->acc[j];
        all[n].why = rk->acc_why[j];
        n++;
        rk->acc[j] = 0.0f; /* best[j] is set again at its next first touch */
    }
    if (n > RS_RANKER_MAX_CANDIDATES) {
        qsort(all, n, sizeof(*all), cmp_rec_desc);
        n = RS_RANKER_MAX_CANDIDATES;
    }
    /*
     * With more than one item block, group them by block (a counting sort:
     * blocks in increasing order, any order inside one) so each block takes
     * its candidates from a cursor: scanning them all per block, twice
     * (scatter and clear), cost more than the sort already at 3 blocks.
     */
    sl->cand_sorted = blocks > 1;
    if (sl->cand_sorted) {
        uint32_t *at = rk->block_at; /* blocks + 1 */
        memset(at, 0, ((size_t)blocks + 1) * sizeof(*at));
        for (size_t x = 0; x < n; x++)
            at[all[x].item / ITEM_BLOCK + 1]++;
        for (uint32_t b = 1; b <= blocks; b++)
            at[b] += at[b - 1];
        for (size_t x = 0; x < n; x++)
            cand[at[all[x].item / ITEM_BLOCK]++] = all[x];
    } else {
        memcpy(cand, all, n * sizeof(*cand));
    }
    sl->cand = cand;
    sl->cand_n = n;
}

/* ---- ranking ---- */

struct call {
    enum mode mode;
    const struct rs_rank_sources *src;
    const struct rs_rank_weights *w;
    const struct rs_model *m;
    int use_mf;        /* the sgemm runs */
    int use_nb;        /* neighbour candidates are gathered */
    const float *popw; /* NULL: no popularity term */
    /* A blend over a catalogue of one item block: each user's model scale is
     * read from its row of the block's sgemm (no sample sgemm), and with
     * direct its neighbour sums are gathered just before its pass and scored
     * where they lie, in the dense accumulators (see score_direct). */
    int one_block, direct;
};

/* The score an item must beat to be kept: the worst kept entry's once cap
 * entries are kept (the last of a sorted list, the root of a heap). */
static inline float worst_kept(const struct rs_rec *kept, size_t len, size_t cap)
{
    if (len < cap) return -INFINITY;
    return cap <= SORTED_MAX ? kept[cap - 1].score : kept[0].score;
}

/* Offers the item at column c with the score v; returns the new threshold. */
static inline __attribute__((always_inline)) float
offer_one(struct rs_rec *heap, size_t *len, size_t cap, uint32_t i0, uint32_t c, float v,
          const float *extra, const uint32_t *extra_why)
{
    uint32_t why = extra[c] > 0 ? extra_why[c] : RS_NONE;
    if (cap <= SORTED_MAX)
        sorted_offer(heap, len, cap, i0 + c, v, why);
    else
        heap_offer(heap, len, cap, i0 + c, v, why);
    return worst_kept(heap, *len, cap);
}

/*
 * The scoring pass over one user's block row: each item's final score, then
 * a compare with the heap's worst; only the few above it are offered. The
 * pass exists three times: AVX-512 (16 items at a time, the last partial
 * vector with masked loads), AVX2 (8 at a time) and the baseline (4 at a
 * time with SSE2 where the target has it); the ranker picks the widest the
 * CPU runs (scan_pick). All three apply the same operations in the same
 * order as the scalar tail, without fused multiply-adds (C11 keeps a*b+c
 * uncontracted and no variant enables FMA), so they give the same floats.
 * Items come in increasing index order, so an item tying the worst kept one
 * ranks after it: "above" is strict. -inf (excluded) and NaN never pass.
 * b, extra, extra_why and pw (NULL: no popularity term) start at the
 * block's first column.
 */
struct scan_args {
    struct rs_rec *heap;
    size_t *len, cap;
    const float *row, *b, *extra, *pw;
    const uint32_t *extra_why;
    float a, off;
    uint32_t i0, nb;
    int floor;        /* the AVX-512 short-list pass: take the floor first (scan_floor) */
    uint32_t *offers; /* the AVX-512 short-list pass counts its offers here */
};

/* Offers the candidates of one vector (bits of mask, lowest first); returns the
 * threshold. */
static inline __attribute__((always_inline)) float offer_mask(const struct scan_args *x,
                                                              uint32_t c, const float *vs,
                                                              uint32_t mask, float thr)
{
    while (mask) {
        uint32_t q = (uint32_t)__builtin_ctz(mask);
        mask &= mask - 1;
        if (vs[q] > thr) /* the threshold may have risen within the vector */
            thr = offer_one(x->heap, x->len, x->cap, x->i0, c + q, vs[q], x->extra,
                            x->extra_why);
    }
    return thr;
}

/* The scalar tail: from column c on. */
static inline __attribute__((always_inline)) void scan_tail(const struct scan_args *x,
                                                            uint32_t c, float thr)
{
    for (; c < x->nb; c++) {
        float v = x->a * (x->row[c] + x->b[c]) + x->off + x->extra[c];
        if (x->pw) v += x->pw[c];
        if (v > thr)
            thr = offer_one(x->heap, x->len, x->cap, x->i0, c, v, x->extra, x->extra_why);
    }
}

static inline float scan_threshold(const struct scan_args *x)
{
    return worst_kept(x->heap, *x->len, x->cap);
}

static inline __attribute__((always_inline)) void
scan_base_body(const struct scan_args *x, int with_pop)
{
    float thr = scan_threshold(x);
    uint32_t c = 0;
#ifdef __SSE2__
    const float *row = x->row, *b = x->b, *extra = x->extra, *pw = x->pw;
    __m128 va = _mm_set1_ps(x->a), voff = _mm_set1_ps(x->off), vthr = _mm_set1_ps(thr);
    for (; c + 4 <= x->nb; c += 4) {
        __m128 v = _mm_add_ps(_mm_loadu_ps(row + c), _mm_loadu_ps(b + c));
        v = _mm_add_ps(_mm_add_ps(_mm_mul_ps(va, v), voff), _mm_loadu_ps(extra + c));
        if (with_pop) v = _mm_add_ps(v, _mm_loadu_ps(pw + c));
        uint32_t mask = (uint32_t)_mm_movemask_ps(_mm_cmpgt_ps(v, vthr));
        if (mask) {
            float vs[4];
            _mm_storeu_ps(vs, v);
            thr = offer_mask(x, c, vs, mask, thr);
            vthr = _mm_set1_ps(thr);
        }
    }
#else
    (void)with_pop;
#endif
    scan_tail(x, c, thr);
}

static void scan_base(const struct scan_args *x)
{
    if (x->pw)
        scan_base_body(x, 1);
    else
        scan_base_body(x, 0);
}

#ifdef RS_SCAN_X86
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void
scan_avx2_body(const struct scan_args *x, int with_pop)
{
    float thr = scan_threshold(x);
    uint32_t c = 0;
    const float *row = x->row, *b = x->b, *extra = x->extra, *pw = x->pw;
    __m256 va = _mm256_set1_ps(x->a), voff = _mm256_set1_ps(x->off),
           vthr = _mm256_set1_ps(thr);
    for (; c + 8 <= x->nb; c += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(b + c));
        v = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(va, v), voff),
                          _mm256_loadu_ps(extra + c));
        if (with_pop) v = _mm256_add_ps(v, _mm256_loadu_ps(pw + c));
        uint32_t mask = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, vthr, _CMP_GT_OQ));
        if (mask) {
            float vs[8];
            _mm256_storeu_ps(vs, v);
            thr = offer_mask(x, c, vs, mask, thr);
            vthr = _mm256_set1_ps(thr);
        }
    }
    scan_tail(x, c, thr);
}

__attribute__((target("avx2"))) static void scan_avx2(const struct scan_args *x)
{
    if (x->pw)
        scan_avx2_body(x, 1);
    else
        scan_avx2_body(x, 0);
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
scan_avx512_body(const struct scan_args *x, int with_pop)
{
    float thr = scan_threshold(x);
    const float *row = x->row, *b = x->b, *extra = x->extra, *pw = x->pw;
    __m512 va = _mm512_set1_ps(x->a), voff = _mm512_set1_ps(x->off),
           vthr = _mm512_set1_ps(thr);
    for (uint32_t c = 0; c < x->nb; c += 16) {
        /* The last vector may be partial: its missing lanes are loaded as 0 and masked
         * out. */
        __mmask16 live =
            x->nb - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (x->nb - c)) - 1);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(live, row + c),
                                 _mm512_maskz_loadu_ps(live, b + c));
        v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(va, v), voff),
                          _mm512_maskz_loadu_ps(live, extra + c));
        if (with_pop) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, pw + c));
        uint32_t mask = _mm512_mask_cmp_ps_mask(live, v, vthr, _CMP_GT_OQ);
        if (mask) {
            float vs[16];
            _mm512_storeu_ps(vs, v);
            thr = offer_mask(x, c, vs, mask, thr);
            vthr = _mm512_set1_ps(thr);
        }
    }
}

/*
 * Lists of up to REG_TOP_MAX entries are kept in vector registers during the
 * AVX-512 pass: scores, items and reasons in two 16-lane registers each,
 * best first, lanes from len on at -inf. An offer counts the kept scores at
 * or above it (they form a prefix, so that count is the new entry's place),
 * shifts the lanes after that place by one and writes the entry in: a few
 * permutes and no data-dependent branch, where shifting a list in memory took
 * a mispredicted branch per offer and most of the pass's time. The list goes
 * back to memory at the end of the block.
 */
#define REG_TOP_MAX 32u

struct reg_top {
    __m512 s0, s1;  /* scores, lanes 0-15 and 16-31 */
    __m512i i0, i1; /* items */
    __m512i w0, w1; /* reasons */
};

/* Lanes l > pos of the 32-lane pair (r0, r1) take lane l - 1 (masks a0, a1:
 * from within the low register, or across from the low one into the high
 * one) and lane pos takes v (masks p0, p1): an insertion at pos. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
shift_in_epi32(__m512i *r0, __m512i *r1, __mmask16 a0, __mmask16 a1, __mmask16 p0,
               __mmask16 p1, uint32_t v)
{
    const __m512i lo = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    const __m512i hi =
        _mm512_set_epi32(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15);
    __m512i vv = _mm512_set1_epi32((int)v);
    __m512i x1 =
        _mm512_mask_blend_epi32(a1, *r1, _mm512_permutex2var_epi32(*r0, hi, *r1));
    __m512i x0 = _mm512_mask_permutexvar_epi32(*r0, a0, lo, *r0);
    *r0 = _mm512_mask_mov_epi32(x0, p0, vv);
    *r1 = _mm512_mask_mov_epi32(x1, p1, vv);
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
reg_top_insert(struct reg_top *t, uint32_t valid, float score, uint32_t item,
               uint32_t why)
{
    __m512 v = _mm512_set1_ps(score);
    uint32_t ge = ((uint32_t)_mm512_cmp_ps_mask(t->s0, v, _CMP_GE_OQ) |
                   (uint32_t)_mm512_cmp_ps_mask(t->s1, v, _CMP_GE_OQ) << 16) &
                  valid;
    uint32_t pos = (uint32_t)__builtin_popcount(ge), bits;
    uint32_t after = ~((2u << pos) - 1u), at = 1u << pos;
    __mmask16 a0 = (__mmask16)after, a1 = (__mmask16)(after >> 16);
    __mmask16 p0 = (__mmask16)at, p1 = (__mmask16)(at >> 16);
    /* The scores move as bits, like the items and reasons. */
    __m512i s0 = _mm512_castps_si512(t->s0), s1 = _mm512_castps_si512(t->s1);

    memcpy(&bits, &score, sizeof(bits));
    shift_in_epi32(&s0, &s1, a0, a1, p0, p1, bits);
    t->s0 = _mm512_castsi512_ps(s0);
    t->s1 = _mm512_castsi512_ps(s1);
    shift_in_epi32(&t->i0, &t->i1, a0, a1, p0, p1, item);
    shift_in_epi32(&t->w0, &t->w1, a0, a1, p0, p1, why);
}

/* The block's scores at columns c..c+15 (lanes past nb masked out in *live). */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512
score_vec512(const struct scan_args *x, int with_pop, uint32_t c, __m512 va, __m512 voff,
             __mmask16 *live)
{
    __mmask16 l =
        x->nb - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (x->nb - c)) - 1);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(l, x->row + c),
                             _mm512_maskz_loadu_ps(l, x->b + c));
    v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(va, v), voff),
                      _mm512_maskz_loadu_ps(l, x->extra + c));
    if (with_pop) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(l, x->pw + c));
    *live = l;
    return v;
}

/*
 * A floor for the block's cap-th best score, from a first pass: the maxima of
 * two running vectors of scores, 32 lanes over disjoint sets of items, are
 * scores of 32 distinct items (or -inf; a NaN is never a maximum), so at
 * least cap items reach the cap-th largest of them and no item below it can
 * be among the cap best. Offering only the items at or above it spares most
 * offers when the best items lie all over the block, at the price of the
 * extra pass (see rk->offers_avg for when that pays).
 */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) float
scan_floor(const struct scan_args *x, int with_pop, __m512 va, __m512 voff, size_t cap)
{
    float ms[32], t0 = -INFINITY;
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    for (uint32_t c = 0; c < x->nb; c += 32) {
        __mmask16 live;
        __m512 v = score_vec512(x, with_pop, c, va, voff, &live);
        m0 = _mm512_mask_max_ps(m0, live, v, m0);
        if (c + 16 < x->nb) {
            v = score_vec512(x, with_pop, c + 16, va, voff, &live);
            m1 = _mm512_mask_max_ps(m1, live, v, m1);
        }
    }
    _mm512_storeu_ps(ms, m0);
    _mm512_storeu_ps(ms + 16, m1);
    for (int i = 0; i < 32; i++) { /* the largest maximum that at least cap reach */
        __m512 vi = _mm512_set1_ps(ms[i]);
        uint32_t n =
            (uint32_t)__builtin_popcount(_mm512_cmp_ps_mask(m0, vi, _CMP_GE_OQ)) +
            (uint32_t)__builtin_popcount(_mm512_cmp_ps_mask(m1, vi, _CMP_GE_OQ));
        t0 = n >= cap && ms[i] > t0 ? ms[i] : t0;
    }
    return t0;
}

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
scan_avx512_reg_body(const struct scan_args *x, int with_pop, int floor)
{
    uint32_t offers = 0;
    float ks[REG_TOP_MAX];
    uint32_t ki[REG_TOP_MAX], kw[REG_TOP_MAX];
    size_t len = *x->len, cap = x->cap;
    uint32_t valid = cap >= REG_TOP_MAX ? ~0u : (1u << cap) - 1u;
    for (size_t e = 0; e < REG_TOP_MAX; e++) {
        ks[e] = e < len ? x->heap[e].score : -INFINITY;
        ki[e] = e < len ? x->heap[e].item : 0;
        kw[e] = e < len ? x->heap[e].why : 0;
    }
    struct reg_top t = {_mm512_loadu_ps(ks),
                        _mm512_loadu_ps(ks + 16),
                        _mm512_loadu_si512(ki),
                        _mm512_loadu_si512(ki + 16),
                        _mm512_loadu_si512(kw),
                        _mm512_loadu_si512(kw + 16)};
    /* The worst kept score in every lane, once the list is full. */
    const __m512i last = _mm512_set1_epi32((int)cap - 1);
    __m512 vthr = len < cap ? _mm512_set1_ps(-INFINITY)
                            : _mm512_permutex2var_ps(t.s0, last, t.s1);
    float thr = _mm512_cvtss_f32(vthr);
    __m512 va = _mm512_set1_ps(x->a), voff = _mm512_set1_ps(x->off);
    __m512 vt0 =
        _mm512_set1_ps(floor ? scan_floor(x, with_pop, va, voff, cap) : -INFINITY);
    for (uint32_t c = 0; c < x->nb; c += 16) {
        __mmask16 live;
        __m512 v = score_vec512(x, with_pop, c, va, voff, &live);
        if (floor) live = _mm512_mask_cmp_ps_mask(live, v, vt0, _CMP_GE_OQ);
        uint32_t mask = _mm512_mask_cmp_ps_mask(live, v, vthr, _CMP_GT_OQ);
        if (mask) {
            float vs[16];
            _mm512_storeu_ps(vs, v);
            while (mask) {
                uint32_t q = (uint32_t)__builtin_ctz(mask), col = c + q;
                mask &= mask - 1;
                if (!(vs[q] > thr)) continue; /* the threshold rose within the vector */
                offers++;
                reg_top_insert(&t, valid, vs[q], x->i0 + col,
                               x->extra[col] > 0 ? x->extra_why[col] : RS_NONE);
                if (len < cap) len++;
                if (len == cap) {
                    vthr = _mm512_permutex2var_ps(t.s0, last, t.s1);
                    thr = _mm512_cvtss_f32(vthr);
                }
            }
        }
    }
    _mm512_storeu_ps(ks, t.s0);
    _mm512_storeu_ps(ks + 16, t.s1);
    _mm512_storeu_si512(ki, t.i0);
    _mm512_storeu_si512(ki + 16, t.i1);
    _mm512_storeu_si512(kw, t.w0);
    _mm512_storeu_si512(kw + 16, t.w1);
    for (size_t e = 0; e < len; e++) {
        x->heap[e].item = ki[e];
        x->heap[e].score = ks[e];
        x->heap[e].why = kw[e];
    }
    *x->len = len;
    if (x->offers) *x->offers = offers;
}

__attribute__((target("avx512f"))) static void scan_avx512(const struct scan_args *x)
{
    if (x->cap <= REG_TOP_MAX) {
        if (x->floor && x->pw)
            scan_avx512_reg_body(x, 1, 1);
        else if (x->floor)
            scan_avx512_reg_body(x, 0, 1);
        else if (x->pw)
            scan_avx512_reg_body(x, 1, 0);
        else
            scan_avx512_reg_body(x, 0, 0);
        return;
    }
    if (x->pw)
        scan_avx512_body(x, 1);
    else
        scan_avx512_body(x, 0);
}
#endif

static int is_wide(scan_fn *f)
{
#ifdef RS_SCAN_X86
    return f == scan_avx512;
#else
    (void)f;
    return 0;
#endif
}

/* The widest pass the CPU runs, or the one isa names ("avx512", "avx2", "base"). */
static scan_fn *scan_pick(const char *isa)
{
#ifdef RS_SCAN_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f"), has2 = __builtin_cpu_supports("avx2");
    if (isa == NULL) return has512 ? scan_avx512 : has2 ? scan_avx2 : scan_base;
    if (strcmp(isa, "avx512") == 0) return has512 ? scan_avx512 : NULL;
    if (strcmp(isa, "avx2") == 0) return has2 ? scan_avx2 : NULL;
#endif
    if (isa == NULL || strcmp(isa, "base") == 0) return scan_base;
    return NULL;
}

/* Measured (docs/BENCHMARKS.md, "Ranking throughput"): the floor's extra pass costs
 * about what 45 offers do, and leaves about 1.3 top_n of them. */
#define FLOOR_OFFERS(n) (48.0f + 1.5f * (float)(n))
#define FLOOR_SAMPLE 8u

/* Whether the next pass takes the floor (see struct rs_ranker). */
static int floor_next(struct rs_ranker *rk)
{
    if (rk->floor_always) return 1;
    return (rk->passes++ % FLOOR_SAMPLE) != 0 && rk->offers_avg > FLOOR_OFFERS(rk->top_n);
}

/* Runs the pass x, taking the floor when that pays, and keeps the average. */
static void run_scan(struct rs_ranker *rk, struct scan_args *x)
{
    uint32_t offers = UINT32_MAX;
    x->floor = floor_next(rk);
    x->offers = &offers;
    rk->scan(x);
    if (!x->floor && offers != UINT32_MAX)
        rk->offers_avg += ((float)offers - rk->offers_avg) / 64.0f;
}

/* blend_scales for one user of a one-block blend, from its row of the block's
 * sgemm, where the sampled items' scores already are. */
static void row_scale(struct rs_ranker *rk, const struct call *cl, struct slot *sl,
                      const float *row)
{
    uint32_t ns = rs_model_items(cl->m) < MF_SAMPLE ? rs_model_items(cl->m) : MF_SAMPLE;
    float *t = rk->Ss;
    sl->a = sl->off = 0.0f;
    if (sl->user >= rs_model_users(cl->m)) return;
#ifdef RS_SCAN_X86
    if (rk->wide) {
        row_scale512(row, rk->sample_at, rk->Bs, ns, cl->w->mf, &sl->a, &sl->off);
        return;
    }
#endif
    for (uint32_t p = 0; p < ns; p++)
        t[p] = row[rk->sample_at[p]] + rk->Bs[p];
    mf_scale(t, ns, cl->w->mf, &sl->a, &sl->off);
}

/*
 * The pass for user s of a one-block blend with neighbours: its neighbour
 * sums are gathered into the dense accumulators, which then serve as the
 * pass's extra row as they lie (seen items marked -inf, candidates at
 * w_nb * sum, their reasons in acc_why) and are cleared after it. No
 * candidate list is built, scattered and cleared again: that cost as much as
 * the pass itself at a few thousand items.
 */
static void score_direct(struct rs_ranker *rk, const struct call *cl, struct slot *sl,
                         const float *row, size_t s)
{
    const struct rs_rank_sources *src = cl->src;
    uint32_t n_items = rs_model_items(cl->m);
    size_t rn = sl->rn, nh = sl->nh, t, cap = (size_t)rk->top_n;
    const uint32_t *ring = sl->ring, *hist = sl->hist;

    mark_seen(rk->acc, ring, rn, hist, nh, n_items, -INFINITY);
    t = gather_sums(rk, src->neighbors, ring, rn, hist, nh, n_items, 1,
                    1.0f - cl->w->recency_decay);
    for (size_t x = 0; x < t; x++)
        rk->acc[rk->touched[x]] *= cl->w->neighbor;
    if (sl->a != 0.0f || t > 0 || cl->popw != NULL) {
        struct scan_args x = {rk->heaps + s * cap,
                              &rk->heap_len[s],
                              cap,
                              row,
                              rs_model_item_biases(cl->m),
                              rk->acc,
                              cl->popw,
                              rk->acc_why,
                              sl->a,
                              sl->off,
                              0,
                              n_items,
                              0,
                              NULL};
        run_scan(rk, &x);
    }
    for (size_t x = 0; x < t; x++)
        rk->acc[rk->touched[x]] = 0.0f; /* best is set again at a first touch */
    mark_seen(rk->acc, ring, rn, hist, nh, n_items, 0.0f);
}

/* Scores one block of columns [i0, i0+nb) for the b users of the batch. */
static void score_block(struct rs_ranker *rk, const struct call *cl, size_t b,
                        uint32_t i0, uint32_t nb)
{
    const struct rs_model *m = cl->m;
    int k = rs_model_factors(m);
    const float *bi = rs_model_item_biases(m);
    size_t cap = (size_t)rk->top_n;
    uint32_t iend = i0 + nb;

    if (cl->use_mf)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)nb, k, 1.0f,
                    rk->U, k, rs_model_item_matrix(m) + (size_t)i0 * (size_t)k, k, 0.0f,
                    rk->S, (int)nb);

    for (size_t s = 0; s < b; s++) {
        struct slot *sl = &rk->slots[s];
        const float *row = cl->use_mf ? rk->S + s * nb : rk->zeros;
        size_t nh = sl->nh, rn = sl->rn, hp0 = sl->hist_pos, hp, cp0 = sl->cand_pos, cp;
        const uint32_t *hist = sl->hist, *ring = sl->ring;

        if (cl->one_block) {
            if (cl->use_mf) row_scale(rk, cl, sl, row);
            if (cl->direct) {
                score_direct(rk, cl, sl, row, s);
                continue;
            }
            sl->active = sl->a != 0.0f || sl->cand_n > 0 || cl->popw != NULL;
        }
        if (!sl->active) continue;

        /* Scatter: candidates, then the exclusions over them. */
        for (cp = cp0; cp < sl->cand_n && (!sl->cand_sorted || sl->cand[cp].item < iend);
             cp++) {
            uint32_t j = sl->cand[cp].item;
            if (j < i0 || j >= iend) continue;
            rk->extra[j - i0] = sl->cand[cp].score;
            rk->extra_why[j - i0] = sl->cand[cp].why;
        }
        for (hp = hp0; hp < nh && hist[hp] < iend; hp++)
            if (hist[hp] >= i0) rk->extra[hist[hp] - i0] = -INFINITY;
        for (size_t r = 0; r < rn; r++)
            if (ring[r] >= i0 && ring[r] < iend) rk->extra[ring[r] - i0] = -INFINITY;

        struct scan_args x = {rk->heaps + s * cap,
                              &rk->heap_len[s],
                              cap,
                              row,
                              bi + i0,
                              rk->extra,
                              cl->popw ? cl->popw + i0 : NULL,
                              rk->extra_why,
                              sl->a,
                              sl->off,
                              i0,
                              nb,
                              0,
                              NULL};
        run_scan(rk, &x);

        /* Clear what was scattered. */
        for (cp = cp0; cp < sl->cand_n && (!sl->cand_sorted || sl->cand[cp].item < iend);
             cp++) {
            uint32_t j = sl->cand[cp].item;
            if (j >= i0 && j < iend) rk->extra[j - i0] = 0.0f;
        }
        if (sl->cand_sorted) sl->cand_pos = cp;
        for (hp = hp0; hp < nh && hist[hp] < iend; hp++)
            if (hist[hp] >= i0) rk->extra[hist[hp] - i0] = 0.0f;
        for (size_t r = 0; r < rn; r++)
            if (ring[r] >= i0 && ring[r] < iend) rk->extra[ring[r] - i0] = 0.0f;
        sl->hist_pos = hp;
    }
}

/* Puts the model scores of the batch on the blend's scale (sets a, off per slot). */
static void blend_scales(struct rs_ranker *rk, const struct call *cl, size_t b,
                         uint32_t ns)
{
    const struct rs_model *m = cl->m;
    int k = rs_model_factors(m);
    uint32_t n_users = rs_model_users(m);

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)ns, k, 1.0f, rk->U,
                k, rk->Qs, k, 0.0f, rk->Ss, (int)ns);
    for (size_t s = 0; s < b; s++) {
        struct slot *sl = &rk->slots[s];
        float *t = rk->Ss + s * ns;
        sl->a = sl->off = 0.0f;
        if (sl->user >= n_users) continue;
        for (uint32_t p = 0; p < ns; p++)
            t[p] += rk->Bs[p];
        mf_scale(t, ns, cl->w->mf, &sl->a, &sl->off);
    }
}

static rs_err_t run(struct rs_ranker *rk, struct call *cl, const uint32_t *users,
                    size_t n, struct rs_rec *out, size_t *counts)
{
    const struct rs_model *m = cl->m;
    int k = rs_model_factors(m);
    uint32_t n_users = rs_model_users(m), n_items = rs_model_items(m);
    size_t batch = (size_t)rk->batch, top = (size_t)rk->top_n;
    size_t kk = cl->use_nb ? (size_t)rs_neighbors_k(cl->src->neighbors) : 0;
    size_t win = cl->use_nb ? (size_t)rs_neighbors_window(cl->src->neighbors) : 0;
    /* Direct only where no candidate can be cut (RS_RANKER_MAX_CANDIDATES). */
    int direct =
        cl->mode == MODE_BLEND && cl->use_nb && kk * win <= RS_RANKER_MAX_CANDIDATES;
    size_t block = direct && n_items <= ONE_PASS_MAX ? n_items
                   : n_items < ITEM_BLOCK            ? n_items
                                                     : ITEM_BLOCK;
    uint32_t ns = n_items < MF_SAMPLE ? n_items : MF_SAMPLE;
    int pop_any = 0;
    rs_err_t err = RS_OK;

    if (n_items == 0) goto out;
    if (cl->mode == MODE_RAW && n_users == 0) goto out;
    if (cl->use_mf && ((err = reserve(&rk->U, &rk->U_cap, batch * (size_t)k)) ||
                       (err = reserve(&rk->S, &rk->S_cap, batch * block))))
        goto out;
    if ((err = reserve_bytes(&rk->zeros, &rk->zeros_cap, block, sizeof(float), 1)))
        goto out;
    cl->one_block = cl->mode == MODE_BLEND && n_items <= block;
    if (cl->mode == MODE_BLEND && cl->use_mf) {
        const float *Q = rs_model_item_matrix(m);
        if ((!cl->one_block && (err = reserve(&rk->Qs, &rk->Qs_cap, (size_t)ns * (size_t)k))) ||
            (err = reserve(&rk->Ss, &rk->Ss_cap, batch * ns)))
            goto out;
        for (uint32_t p = 0; p < ns; p++) {
            uint32_t i = sample_item(p, ns, n_items);
            if (!cl->one_block)
                memcpy(rk->Qs + (size_t)p * (size_t)k, Q + (size_t)i * (size_t)k,
                       (size_t)k * sizeof(float));
            rk->sample_at[p] = i;
            rk->Bs[p] = rs_model_item_biases(m)[i];
        }
    }
    if (cl->popw) {
        if ((err = reserve(&rk->popw, &rk->popw_cap, n_items))) goto out;
        rs_popularity_normalized(cl->src->popularity, 0, rk->popw, n_items);
        for (uint32_t i = 0; i < n_items; i++) {
            pop_any |= rk->popw[i] > 0;
            rk->popw[i] *= cl->w->popularity;
        }
        cl->popw = pop_any ? rk->popw : NULL;
    }
    if (cl->use_nb) {
        size_t cells = batch * RS_RANKER_MAX_CANDIDATES;
        if ((err =
                 reserve_bytes(&rk->cand, &rk->cand_cap, cells, sizeof(*rk->cand), 0)) ||
            (err = reserve_bytes(&rk->sim, &rk->sim_cap, kk + RS_NEIGHBORS_SLOTS(kk),
                                 sizeof(*rk->sim), 0)) ||
            (err = reserve_bytes(&rk->touched, &rk->touched_cap, kk * win,
                                 sizeof(*rk->touched), 0)) ||
            (err = reserve_bytes(&rk->cand_all, &rk->cand_all_cap, kk * win,
                                 sizeof(*rk->cand_all), 0)) ||
            (err = reserve_bytes(&rk->block_at, &rk->block_at_cap,
                                 (n_items + block - 1) / block + 1, sizeof(*rk->block_at),
                                 0)))
            goto out;
        /* Three arrays of one capacity: the new tails are zero whichever grew. */
        size_t acc_cap = rk->acc_cap, best_cap = rk->acc_cap, why_cap = rk->acc_cap;
        if ((err = reserve_bytes(&rk->acc, &acc_cap, n_items, sizeof(float), 1)) ||
            (err = reserve_bytes(&rk->best, &best_cap, n_items, sizeof(float), 1)) ||
            (err = reserve_bytes(&rk->acc_why, &why_cap, n_items, sizeof(uint32_t), 1)))
            goto out;
        rk->acc_cap = acc_cap;
        cache_prepare(&rk->nbc, cl->src->neighbors, kk, n_items);
        cl->direct = cl->one_block && direct;
    }

    size_t j = 0;
    while (j < n) {
        /* Gather up to `batch` users into U. */
        size_t b = 0;
        for (; j < n && b < batch; j++) {
            uint32_t u = users[j];
            struct slot *sl = &rk->slots[b];
            if (cl->mode == MODE_RAW && u >= n_users) continue;
            memset(sl, 0, sizeof(*sl));
            sl->j = j;
            sl->user = u;
            /* Users come in any order: each one's rows are elsewhere in memory.
             * Their lookups here overlap, and their first lines are fetched
             * while the sgemm runs. */
            sl->hist = rs_history_items(cl->src->history, u, &sl->nh);
            if (sl->nh > 0) __builtin_prefetch(sl->hist);
            if (cl->use_nb) {
                sl->ring = rs_neighbors_recent(cl->src->neighbors, u, &sl->rn);
                if (sl->rn > 0) __builtin_prefetch(sl->ring);
            }
            if (cl->use_mf && j + 4 < n && users[j + 4] < n_users)
                for (int f = 0; f < k; f += 16)
                    __builtin_prefetch(rs_model_user_factors(m, users[j + 4]) + f);
            if (cl->use_mf) {
                if (u < n_users)
                    memcpy(rk->U + b * (size_t)k, rs_model_user_factors(m, u),
                           (size_t)k * sizeof(float));
                else
                    memset(rk->U + b * (size_t)k, 0, (size_t)k * sizeof(float));
            }
            if (cl->mode == MODE_RAW) {
                sl->a = 1.0f;
                sl->off = rs_model_global_mean(m) + rs_model_user_bias(m, u);
                sl->active = 1;
            }
            rk->heap_len[b] = 0;
            b++;
        }
        if (b == 0) break;
        if (cl->mode == MODE_BLEND) {
            if (cl->use_mf && !cl->one_block) blend_scales(rk, cl, b, ns);
            for (size_t s = 0; s < b; s++) {
                struct slot *sl = &rk->slots[s];
                if (cl->use_nb && !cl->direct)
                    build_candidates(rk, cl->src, cl->w, sl,
                                     rk->cand + s * RS_RANKER_MAX_CANDIDATES,
                                     (uint32_t)((n_items + block - 1) / block));
                sl->active = sl->a != 0.0f || sl->cand_n > 0 || cl->popw != NULL;
            }
        }
        for (uint32_t i0 = 0; i0 < n_items; i0 += (uint32_t)block) {
            uint32_t nb = n_items - i0 < block ? n_items - i0 : (uint32_t)block;
            score_block(rk, cl, b, i0, nb);
        }
        for (size_t s = 0; s < b; s++) {
            size_t uj = rk->slots[s].j;
            struct rs_rec *kept = rk->heaps + s * top;
            if (top <= SORTED_MAX) {
                memcpy(out + uj * top, kept, rk->heap_len[s] * sizeof(*kept));
                counts[uj] = rk->heap_len[s];
            } else {
                counts[uj] = heap_drain(kept, rk->heap_len[s], out + uj * top);
            }
        }
    }
out:
    return err;
}

rs_err_t rs_ranker_rank(struct rs_ranker *rk, const struct rs_model *m,
                        const struct rs_history *h, const uint32_t *users, size_t n,
                        struct rs_rec *out, size_t *counts)
{
    struct rs_rank_sources src = {m, h, NULL, NULL};
    struct call cl = {MODE_RAW, &src, NULL, m, 1, 0, NULL, 0, 0};

    if (rk == NULL || m == NULL ||
        (n > 0 && (users == NULL || out == NULL || counts == NULL)))
        return RS_EINVAL;
    for (size_t j = 0; j < n; j++)
        counts[j] = 0;
    return run(rk, &cl, users, n, out, counts);
}

static int weight_ok(float w)
{
    return isfinite(w) && w >= 0.0f;
}

rs_err_t rs_ranker_blend(struct rs_ranker *rk, const struct rs_rank_sources *src,
                         const struct rs_rank_weights *w, const uint32_t *users, size_t n,
                         struct rs_rec *out, size_t *counts)
{
    struct call cl;

    if (rk == NULL || src == NULL || src->model == NULL || w == NULL ||
        !weight_ok(w->mf) || !weight_ok(w->neighbor) || !weight_ok(w->popularity) ||
        !(w->recency_decay >= 0.0f && w->recency_decay < 1.0f) ||
        (n > 0 && (users == NULL || out == NULL || counts == NULL)))
        return RS_EINVAL;
    for (size_t j = 0; j < n; j++)
        counts[j] = 0;
    cl.mode = MODE_BLEND;
    cl.src = src;
    cl.w = w;
    cl.m = src->model;
    cl.use_mf = w->mf > 0 && rs_model_users(src->model) > 0;
    cl.use_nb = w->neighbor > 0 && src->neighbors != NULL;
    cl.popw = w->popularity > 0 && src->popularity != NULL ? (const float *)1 : NULL;
    cl.one_block = cl.direct = 0;
    return run(rk, &cl, users, n, out, counts);
}

/* ---- the naive references ---- */

static int cmp_rec(const void *a, const void *b)
{
    const struct rs_rec *x = a, *y = b;
    if (better(x, y)) return -1;
    if (better(y, x)) return 1;
    return 0;
}

static int cmp_rec_desc(const void *a, const void *b)
{
    return cmp_rec(a, b);
}

static float dot(const float *p, const float *q, int k)
{
    float d = 0.0f;
    for (int f = 0; f < k; f++)
        d += p[f] * q[f];
    return d;
}

size_t rs_ranker_rank_naive(const struct rs_model *m, const struct rs_history *h,
                            uint32_t user, int top_n, struct rs_rec *out)
{
    size_t n = 0;
    struct rs_rec *all = NULL;

    if (m == NULL || out == NULL || top_n < 1 || user >= rs_model_users(m) ||
        rs_model_items(m) == 0)
        goto out;
    uint32_t n_items = rs_model_items(m);
    int k = rs_model_factors(m);
    all = malloc((size_t)n_items * sizeof(*all));
    if (all == NULL) goto out;

    const float *p = rs_model_user_factors(m, user);
    const float *Q = rs_model_item_matrix(m);
    const float *bi = rs_model_item_biases(m);
    float base = rs_model_global_mean(m) + rs_model_user_bias(m, user);
    size_t cnt = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        if (h != NULL && rs_history_contains(h, user, i)) continue;
        float score = 1.0f * (dot(p, Q + (size_t)i * (size_t)k, k) + bi[i]) + base;
        if (isnan(score)) continue;
        all[cnt].item = i;
        all[cnt].score = score;
        all[cnt].why = RS_NONE;
        cnt++;
    }
    qsort(all, cnt, sizeof(*all), cmp_rec);
    n = cnt < (size_t)top_n ? cnt : (size_t)top_n;
    memcpy(out, all, n * sizeof(*out));
out:
    free(all);
    return n;
}

size_t rs_ranker_blend_naive(const struct rs_rank_sources *src,
                             const struct rs_rank_weights *w, uint32_t user, int top_n,
                             struct rs_rec *out)
{
    size_t n = 0, cnt = 0, rn = 0;
    struct rs_rec *all = NULL, *sim = NULL;
    float *nbv = NULL, *best = NULL, *popw = NULL, *t = NULL;
    uint32_t *why = NULL;
    const uint32_t *ring = NULL;
    float a = 0.0f, off = 0.0f;
    int has_nb = 0, has_pop = 0;

    if (src == NULL || src->model == NULL || w == NULL || out == NULL || top_n < 1 ||
        rs_model_items(src->model) == 0)
        goto out;
    const struct rs_model *m = src->model;
    uint32_t n_items = rs_model_items(m);
    int k = rs_model_factors(m);
    const float *Q = rs_model_item_matrix(m);
    const float *bi = rs_model_item_biases(m);
    all = malloc((size_t)n_items * sizeof(*all));
    nbv = calloc(n_items, sizeof(*nbv));
    best = calloc(n_items, sizeof(*best));
    why = malloc((size_t)n_items * sizeof(*why));
    popw = calloc(n_items, sizeof(*popw));
    t = malloc(MF_SAMPLE * sizeof(*t));
    if (!all || !nbv || !best || !why || !popw || !t) goto out;

    /* Model term. */
    const float *p = NULL;
    if (w->mf > 0 && user < rs_model_users(m)) {
        uint32_t ns = n_items < MF_SAMPLE ? n_items : MF_SAMPLE;
        p = rs_model_user_factors(m, user);
        for (uint32_t s = 0; s < ns; s++) {
            uint32_t i = sample_item(s, ns, n_items);
            t[s] = dot(p, Q + (size_t)i * (size_t)k, k) + bi[i];
        }
        if (!mf_scale(t, ns, w->mf, &a, &off)) p = NULL;
    }
    /* Neighbour term: sums over the recent items, newest first. */
    if (w->neighbor > 0 && src->neighbors) {
        size_t kk = (size_t)rs_neighbors_k(src->neighbors);
        ring = rs_neighbors_recent(src->neighbors, user, &rn);
        sim = malloc(kk * sizeof(*sim));
        if (!sim) goto out;
        float f = 1.0f, keep = 1.0f - w->recency_decay;
        for (size_t r = rn; r-- > 0; f *= keep) {
            size_t ms = rs_neighbors_similar(src->neighbors, ring[r], kk, sim);
            for (size_t x = 0; x < ms; x++) {
                uint32_t j = sim[x].item;
                float v = sim[x].score * f;
                if (j >= n_items || !(v > 0.0f)) continue;
                if (nbv[j] == 0.0f || v > best[j]) {
                    best[j] = v;
                    why[j] = ring[r];
                }
                nbv[j] += v;
            }
        }
        for (uint32_t j = 0; j < n_items; j++) {
            nbv[j] = nbv[j] > 0 ? w->neighbor * nbv[j] : 0.0f;
            has_nb |= nbv[j] > 0 && !in_ring(ring, rn, j) &&
                      !rs_history_contains(src->history, user, j);
        }
    }
    /* Popularity term. */
    if (w->popularity > 0 && src->popularity) {
        rs_popularity_normalized(src->popularity, 0, popw, n_items);
        for (uint32_t i = 0; i < n_items; i++) {
            has_pop |= popw[i] > 0;
            popw[i] *= w->popularity;
        }
    }
    if (!p && !has_nb && !has_pop) goto out;
    for (uint32_t i = 0; i < n_items; i++) {
        if (in_ring(ring, rn, i) || rs_history_contains(src->history, user, i)) continue;
        float mf = p ? dot(p, Q + (size_t)i * (size_t)k, k) : 0.0f;
        float score = a * (mf + bi[i]) + off + nbv[i];
        if (has_pop) score += popw[i];
        if (isnan(score)) continue;
        all[cnt].item = i;
        all[cnt].score = score;
        all[cnt].why = nbv[i] > 0 ? why[i] : RS_NONE;
        cnt++;
    }
    qsort(all, cnt, sizeof(*all), cmp_rec);
    n = cnt < (size_t)top_n ? cnt : (size_t)top_n;
    memcpy(out, all, n * sizeof(*out));
out:
    free(all);
    free(sim);
    free(nbv);
    free(best);
    free(why);
    free(popw);
    free(t);
    return n;
}
