/*
 * neighbors.c - item-item co-occurrence in bounded memory (the definition is
 * in neighbors.h). It owns, per item, one contiguous row: a 16-byte head (the
 * decayed occurrence count N_i, the used-slot count with a "changed" flag)
 * and S = 2k Space-Saving slots (partner ids, then decayed counts, then
 * errors), so an update touches adjacent cache lines that are prefetched for
 * all the ring's rows at once; a FIFO of changed items; and per user, a ring
 * of the last `window` distinct items. A pair's weight by order is the event's
 * decay weight times a per-gap factor from a table of `window` entries
 * (rs_neighbors_set_order), scaled by the backward weight in the later item's row.
 *
 * Decay is kept the way popularity.c keeps it: counts are stored relative to
 * a reference time t_ref, so an increment at time t is d = 2^((t - t_ref)/h)
 * and nothing is rescaled per event. When d would pass 2^32 every count is
 * multiplied by 2^(-(t - t_ref)/h) and t_ref moves to t (one pass over the
 * item state per 32 half-lives of event time); the float counts therefore
 * stay far below FLT_MAX. Similarities are ratios of counts with the same
 * reference, so they never need the current time; only the support
 * shrinkage does (a count in events at the clock, the latest event time,
 * is the stored count times 2^(-(clock - t_ref)/h), computed once per list).
 * A stamp (instance number, change counter) lets a reader cache top lists.
 */
#include "recstream/neighbors.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define RESCALE_EXPONENT 32.0
/* A partner with at most this many times the increment's weight in (decayed)
 * occurrences is always admitted. */
#define FRESH_OCCURRENCES 1.0
#define USED_MASK 0xffffu
#define CHANGED_BIT 0x80000000u
#define INITIAL_ITEMS 256u
#define INITIAL_USERS 256u

struct rs_neighbors {
    int k;
    int window;
    uint32_t slots; /* S = 2k */
    double half_life_ms;
    int64_t t_ref;
    int have_ref;
    int64_t last_ts; /* d(last_ts) cached in last_d */
    float last_d;
    uint64_t rng; /* replacement draws; saved, so a loaded state continues the same */
    uint64_t instance, changes, events; /* rs_neighbors_stamp */
    double shrink;              /* lambda of the support factor; 0: none */
    float backward;             /* rs_neighbors_set_order: weight in the later item's row */
    float *gap_w;               /* window: (1 - gap_decay)^g, g steps back from the newest */
    int64_t clock;              /* the latest event time seen */

    uint32_t n_items, cap_items;
    unsigned char *rows; /* cap_items rows of row_bytes: head, ids[S], cnt[S], err[S] */
    size_t row_bytes;    /* 16 + 12 S */
    uint32_t *queue;     /* cap_items: FIFO ring of changed items */
    size_t q_head, q_count;

    uint32_t n_users, cap_users;
    uint32_t *ring;   /* cap_users x window, oldest first */
    uint32_t *ring_n; /* cap_users */
};

/* The head of an item's row. */
struct row_head {
    double occ;     /* N_i */
    uint32_t meta;  /* used slots | CHANGED_BIT */
    float min_hint; /* <= the smallest count of a full row (counts only grow) */
};

static inline unsigned char *row_at(const struct rs_neighbors *nb, uint32_t i)
{
    return nb->rows + (size_t)i * nb->row_bytes;
}

static inline struct row_head *head(const struct rs_neighbors *nb, uint32_t i)
{
    return (struct row_head *)(void *)row_at(nb, i);
}

static inline uint32_t *row_ids(const struct rs_neighbors *nb, uint32_t i)
{
    return (uint32_t *)(void *)(row_at(nb, i) + sizeof(struct row_head));
}

static inline float *row_cnt(const struct rs_neighbors *nb, uint32_t i)
{
    return (float *)(void *)(row_at(nb, i) + sizeof(struct row_head) + 4u * nb->slots);
}

static inline float *row_err(const struct rs_neighbors *nb, uint32_t i)
{
    return (float *)(void *)(row_at(nb, i) + sizeof(struct row_head) + 8u * nb->slots);
}

/* Instance numbers of rs_neighbors_stamp, unique in the process. */
static atomic_uint_fast64_t next_instance = 1;

struct rs_neighbors *rs_neighbors_create(int k, int window, double half_life_s)
{
    struct rs_neighbors *nb;
    if (k < 1 || k > 1000 || window < 1 || window > 1000 || !(half_life_s > 0) ||
        !isfinite(half_life_s))
        return NULL;
    nb = calloc(1, sizeof(*nb));
    if (!nb) return NULL;
    nb->k = k;
    nb->window = window;
    nb->slots = RS_NEIGHBORS_SLOTS(k);
    nb->row_bytes = sizeof(struct row_head) + 12u * (size_t)nb->slots;
    nb->half_life_ms = half_life_s * 1000.0;
    nb->rng = 0x9e3779b97f4a7c15ull;
    nb->instance = atomic_fetch_add(&next_instance, 1);
    nb->shrink = RS_NEIGHBORS_SHRINK_DEFAULT;
    nb->clock = INT64_MIN;
    nb->backward = 1.0f;
    nb->gap_w = malloc((size_t)window * sizeof(*nb->gap_w));
    if (!nb->gap_w) {
        free(nb);
        return NULL;
    }
    for (int g = 0; g < window; g++) nb->gap_w[g] = 1.0f;
    return nb;
}

void rs_neighbors_destroy(struct rs_neighbors *nb)
{
    if (!nb) return;
    free(nb->rows);
    free(nb->queue);
    free(nb->ring);
    free(nb->ring_n);
    free(nb->gap_w);
    free(nb);
}

/* realloc that leaves *p alone on failure and zeroes the new tail. */
static int grow_array(void *pp, size_t elem, size_t old_n, size_t new_n)
{
    void **p = pp;
    char *q;
    if (new_n > SIZE_MAX / elem) return -1;
    q = realloc(*p, new_n * elem);
    if (!q) return -1;
    memset(q + old_n * elem, 0, (new_n - old_n) * elem);
    *p = q;
    return 0;
}

static uint32_t next_cap(uint32_t cap, uint32_t idx, uint32_t initial)
{
    uint64_t c = cap ? cap : initial;
    while (c <= idx)
        c *= 2;
    return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* Makes room for item index idx. On failure nothing observable changes. */
static rs_err_t grow_items(struct rs_neighbors *nb, uint32_t idx)
{
    uint32_t cap = next_cap(nb->cap_items, idx, INITIAL_ITEMS);
    size_t old = nb->cap_items;
    uint32_t *queue;

    if (grow_array(&nb->rows, nb->row_bytes, old, cap)) return RS_ENOMEM;
    /* The queue is a ring: copy it out in order into the new array. */
    queue = malloc((size_t)cap * sizeof(*queue));
    if (!queue) return RS_ENOMEM;
    for (size_t q = 0; q < nb->q_count; q++)
        queue[q] = nb->queue[(nb->q_head + q) % old];
    free(nb->queue);
    nb->queue = queue;
    nb->q_head = 0;
    nb->cap_items = cap;
    return RS_OK;
}

static rs_err_t grow_users(struct rs_neighbors *nb, uint32_t idx)
{
    uint32_t cap = next_cap(nb->cap_users, idx, INITIAL_USERS);
    size_t old = nb->cap_users;
    if (grow_array(&nb->ring, (size_t)nb->window * sizeof(uint32_t), old, cap) ||
        grow_array(&nb->ring_n, sizeof(uint32_t), old, cap))
        return RS_ENOMEM;
    nb->cap_users = cap;
    return RS_OK;
}

/*
 * 1 / d(clock): turns a stored count into events weighed at the clock. Computed
 * where similarities are read (once per list), not per event.
 */
static double now_scale(const struct rs_neighbors *nb)
{
    if (nb->shrink <= 0 || nb->clock == INT64_MIN || !nb->have_ref) return 1.0;
    return exp2(-(double)(nb->clock - nb->t_ref) / nb->half_life_ms);
}

/* Moves the clock forward to ts (sims weigh support at the clock: they change). */
static void advance_clock(struct rs_neighbors *nb, int64_t ts)
{
    if (ts <= nb->clock) return;
    nb->clock = ts;
    nb->changes++;
}

/* Moves the reference time to t, rescaling every stored count. */
static void rebase(struct rs_neighbors *nb, int64_t t)
{
    double f = exp2(-(double)(t - nb->t_ref) / nb->half_life_ms);
    for (uint32_t i = 0; i < nb->n_items; i++) {
        float *cnt = row_cnt(nb, i), *err = row_err(nb, i);
        for (uint32_t s = 0; s < nb->slots; s++) {
            cnt[s] = (float)(cnt[s] * f);
            err[s] = (float)(err[s] * f);
        }
        head(nb, i)->occ *= f;
        head(nb, i)->min_hint = (float)(head(nb, i)->min_hint * f);
    }
    nb->t_ref = t;
}

/* d(t) relative to t_ref, rebasing first if it would grow too large. */
static float decay_weight(struct rs_neighbors *nb, int64_t t)
{
    double e;
    if (!nb->have_ref) {
        nb->t_ref = t;
        nb->have_ref = 1;
        nb->last_ts = t;
        nb->last_d = 1.0f;
        return 1.0f;
    }
    if (t == nb->last_ts) return nb->last_d;
    e = (double)(t - nb->t_ref) / nb->half_life_ms;
    if (e > RESCALE_EXPONENT) {
        rebase(nb, t);
        e = 0;
    }
    nb->last_ts = t;
    nb->last_d = (float)exp2(e);
    return nb->last_d;
}

/* A uniform draw in [0, 1) from the module's xorshift64* generator. */
static double uniform(struct rs_neighbors *nb)
{
    uint64_t x = nb->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    nb->rng = x;
    return (double)((x * 0x2545f4914f6cdd1dull) >> 11) * 0x1p-53;
}

static void mark_changed(struct rs_neighbors *nb, uint32_t item)
{
    struct row_head *hd = head(nb, item);
    if (hd->meta & CHANGED_BIT) return;
    hd->meta |= CHANGED_BIT;
    nb->queue[(nb->q_head + nb->q_count) % nb->cap_items] = item;
    nb->q_count++;
}

/* The position of x among ids[0..used), or used. Four at a time with SSE2. */
static inline uint32_t find_slot(const uint32_t *ids, uint32_t used, uint32_t x)
{
    uint32_t s = 0;
#ifdef __SSE2__
    __m128i key = _mm_set1_epi32((int)x);
    for (; s + 4 <= used; s += 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(ids + s));
        int mask = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, key)));
        if (mask) return s + (uint32_t)__builtin_ctz((unsigned)mask);
    }
#endif
    for (; s < used; s++)
        if (ids[s] == x) return s;
    return used;
}

/* The position of the smallest of cnt[0..n), n >= 1 (the first on ties). */
static inline uint32_t min_slot(const float *cnt, uint32_t n)
{
    uint32_t s = 0, m = 0;
    float best;
#ifdef __SSE2__
    if (n >= 4) {
        __m128 mn = _mm_loadu_ps(cnt);
        for (s = 4; s + 4 <= n; s += 4)
            mn = _mm_min_ps(mn, _mm_loadu_ps(cnt + s));
        for (; s < n; s++)
            mn = _mm_min_ps(mn, _mm_set1_ps(cnt[s]));
        mn = _mm_min_ps(mn, _mm_shuffle_ps(mn, mn, _MM_SHUFFLE(2, 3, 0, 1)));
        mn = _mm_min_ps(mn, _mm_shuffle_ps(mn, mn, _MM_SHUFFLE(1, 0, 3, 2)));
        best = _mm_cvtss_f32(mn);
        for (s = 0; s < n; s++)
            if (cnt[s] == best) return s;
    }
#endif
    best = cnt[0];
    for (s = 1; s < n; s++)
        if (cnt[s] < best) {
            best = cnt[s];
            m = s;
        }
    return m;
}

/* Adds w to C_row,partner in row's Space-Saving slots. */
static void bump(struct rs_neighbors *nb, uint32_t row, uint32_t partner, float w)
{
    struct row_head *hd = head(nb, row);
    uint32_t *ids = row_ids(nb, row);
    float *cnt = row_cnt(nb, row);
    uint32_t used = hd->meta & USED_MASK;
    uint32_t s, m;

    s = find_slot(ids, used, partner);
    if (s < used) {
        cnt[s] += w;
        return;
    }
    if (used < nb->slots) {
        ids[used] = partner;
        cnt[used] = w;
        row_err(nb, row)[used] = 0;
        hd->meta++;
        return;
    }
    /*
     * Full: a fresh partner, or else one drawn with probability w / (m + w),
     * takes the slot with the smallest count m, inheriting m as its error;
     * otherwise the increment is dropped (it belonged to no held partner).
     * Fresh means at most w occurrences: a new item takes a slot at once
     * where its pair counts in full (the row of the item just before it).
     * The draw uses the row's min_hint for m, a lower bound of it that is
     * exact after each scan: admission is at most slightly more likely, and
     * the scan runs only when a partner is admitted.
     */
    if (head(nb, partner)->occ > FRESH_OCCURRENCES * (double)w &&
        uniform(nb) * (double)(hd->min_hint + w) >= (double)w)
        return;
    m = min_slot(cnt, used);
    hd->min_hint = cnt[m];
    ids[m] = partner;
    row_err(nb, row)[m] = cnt[m];
    cnt[m] += w;
}

rs_err_t rs_neighbors_add(struct rs_neighbors *nb, uint32_t user, uint32_t item,
                          int64_t ts_ms)
{
    uint32_t W = (uint32_t)nb->window;
    uint32_t *ring, n, pos;
    float d;

    if (user == RS_NONE || item == RS_NONE) return RS_EINVAL;
    if (item >= nb->cap_items && grow_items(nb, item) != RS_OK) return RS_ENOMEM;
    if (user >= nb->cap_users && grow_users(nb, user) != RS_OK) return RS_ENOMEM;
    nb->events++;
    if (item >= nb->n_items) nb->n_items = item + 1;
    if (user >= nb->n_users) nb->n_users = user + 1;

    ring = nb->ring + (size_t)user * W;
    n = nb->ring_n[user];
    pos = find_slot(ring, n, item);
    if (pos < n) {
        advance_clock(nb, ts_ms);
        /* Already recent: only its place changes. */
        memmove(ring + pos, ring + pos + 1, (size_t)(n - pos - 1) * sizeof(*ring));
        ring[n - 1] = item;
        return RS_OK;
    }
    /* The ring's rows are scattered in memory: ask for them all at once. */
    __builtin_prefetch(row_at(nb, item), 1);
    for (uint32_t r = 0; r < n; r++) {
        /* The head and the ids (scanned), and the start of the counts. */
        const unsigned char *rp = row_at(nb, ring[r]);
        size_t end = sizeof(struct row_head) + 4u * (size_t)nb->slots + 64;
        if (end > nb->row_bytes) end = nb->row_bytes;
        for (size_t off = 0; off < end; off += 64)
            __builtin_prefetch(rp + off, 1);
    }
    d = decay_weight(nb, ts_ms);
    advance_clock(nb, ts_ms);
    nb->changes++;
    head(nb, item)->occ += d;
    for (uint32_t r = 0; r < n; r++) {
        uint32_t j = ring[r];
        float w = d * nb->gap_w[n - 1 - r]; /* j came before item */
        if (w * nb->backward > 0.0f) bump(nb, item, j, w * nb->backward);
        if (w > 0.0f) bump(nb, j, item, w);
        mark_changed(nb, j);
    }
    if (n > 0) mark_changed(nb, item);
    if (n == W) {
        memmove(ring, ring + 1, (size_t)(W - 1) * sizeof(*ring));
        n--;
    }
    ring[n] = item;
    nb->ring_n[user] = n + 1;
    return RS_OK;
}

void rs_neighbors_forget(struct rs_neighbors *nb, uint32_t user)
{
    if (nb && user < nb->n_users) nb->ring_n[user] = 0;
}

void rs_neighbors_prefetch_user(const struct rs_neighbors *nb, uint32_t user)
{
    if (!nb || user >= nb->n_users) return;
    const uint32_t *ring = nb->ring + (size_t)user * (size_t)nb->window;
    __builtin_prefetch(&nb->ring_n[user], 1);
    for (int w = 0; w < nb->window; w += 16)
        __builtin_prefetch(ring + w, 1);
}

const uint32_t *rs_neighbors_recent(const struct rs_neighbors *nb, uint32_t user,
                                    size_t *n)
{
    if (!nb || user >= nb->n_users) {
        *n = 0;
        return NULL;
    }
    *n = nb->ring_n[user];
    return nb->ring + (size_t)user * (size_t)nb->window;
}

/* sim of row i's slot s. */
static inline __attribute__((always_inline)) float
slot_sim(const struct rs_neighbors *nb, uint32_t i, uint32_t s, double scale)
{
    uint32_t j = row_ids(nb, i)[s];
    double lower = (double)row_cnt(nb, i)[s] - (double)row_err(nb, i)[s];
    double den = head(nb, i)->occ * head(nb, j)->occ;
    if (!(lower > 0) || !(den > 0)) return 0.0f;
    if (nb->shrink > 0) {
        double c = lower * scale; /* co-occurrences, weighed at the clock */
        return (float)(lower / sqrt(den) * (c / (c + nb->shrink)));
    }
    return (float)(lower / sqrt(den));
}

rs_err_t rs_neighbors_set_shrink(struct rs_neighbors *nb, double shrink)
{
    if (!nb || !(shrink >= 0) || !isfinite(shrink)) return RS_EINVAL;
    if (shrink != nb->shrink) nb->changes++;
    nb->shrink = shrink;
    return RS_OK;
}

rs_err_t rs_neighbors_set_order(struct rs_neighbors *nb, double backward_weight,
                                double gap_decay)
{
    if (!nb || !(backward_weight >= 0 && backward_weight <= 1) ||
        !(gap_decay >= 0 && gap_decay < 1))
        return RS_EINVAL;
    nb->backward = (float)backward_weight;
    for (int g = 0; g < nb->window; g++) {
        double f = pow(1.0 - gap_decay, g);
        nb->gap_w[g] = f < 1e-30 ? 0.0f : (float)f; /* no subnormal weights: 0 adds nothing */
    }
    return RS_OK;
}

void rs_neighbors_set_clock(struct rs_neighbors *nb, int64_t ts_ms)
{
    if (nb) advance_clock(nb, ts_ms);
}

int64_t rs_neighbors_clock(const struct rs_neighbors *nb)
{
    return nb->clock;
}

struct rs_neighbors_stamp rs_neighbors_stamp(const struct rs_neighbors *nb)
{
    struct rs_neighbors_stamp st = {nb->instance, nb->changes, nb->events};
    return st;
}

float rs_neighbors_sim(const struct rs_neighbors *nb, uint32_t i, uint32_t j)
{
    uint32_t used;
    const uint32_t *ids;
    if (!nb || i >= nb->n_items) return 0.0f;
    used = head(nb, i)->meta & USED_MASK;
    ids = row_ids(nb, i);
    for (uint32_t s = 0; s < used; s++)
        if (ids[s] == j) return slot_sim(nb, i, s, now_scale(nb));
    return 0.0f;
}

/* a before b in a similar-items list: higher sim, then lower index. */
static int rec_before(const struct rs_rec *a, const struct rs_rec *b)
{
    return a->score > b->score || (a->score == b->score && a->item < b->item);
}

/*
 * The order of rec_before as one integer, for entries of positive score:
 * larger key first. A positive float's bits order as its value; ties go to
 * the lower index.
 */
static inline uint64_t rec_key(const struct rs_rec *a)
{
    uint32_t bits;
    memcpy(&bits, &a->score, sizeof(bits));
    return (uint64_t)bits << 32 | (uint32_t)~a->item;
}

/*
 * Moves the max best of c[0..n) to the front, in no order; n > max, every
 * score > 0, items distinct. A quickselect whose partition has no
 * data-dependent branch (each entry is swapped, the boundary advances by
 * the comparison): the branchy one mispredicted about every other entry.
 */
static void select_best(struct rs_rec *c, size_t n, size_t max)
{
    size_t lo = 0, hi = n; /* lo < max < hi: [0, lo) beat [lo, hi), which beat [hi, n) */
    for (;;) {
        size_t mid = lo + (hi - lo) / 2, i = lo;
        struct rs_rec t = c[mid];
        c[mid] = c[hi - 1];
        c[hi - 1] = t;
        uint64_t pk = rec_key(&c[hi - 1]);
        for (size_t j = lo; j < hi - 1; j++) {
            struct rs_rec e = c[j];
            size_t up = rec_key(&e) > pk;
            c[j] = c[i];
            c[i] = e;
            i += up;
        }
        t = c[i]; /* the pivot to its place: [lo, i) beat it, (i, hi) do not */
        c[i] = c[hi - 1];
        c[hi - 1] = t;
        if (i == max || i + 1 == max) return;
        if (i > max)
            hi = i;
        else
            lo = i + 1;
    }
}

size_t rs_neighbors_top(const struct rs_neighbors *nb, uint32_t item, size_t max,
                        struct rs_rec *out, struct rs_rec *scratch)
{
    size_t n = 0;
    uint32_t used;
    const uint32_t *ids;
    double scale;

    if (!nb || item >= nb->n_items || max == 0) return 0;
    if (max > (size_t)nb->k) max = (size_t)nb->k;
    scale = now_scale(nb);
    used = head(nb, item)->meta & USED_MASK;
    ids = row_ids(nb, item);
    /* Each sim reads its partner's N_j, scattered in memory: ask for all first. */
    for (uint32_t s = 0; s < used; s++)
        __builtin_prefetch(row_at(nb, ids[s]));
    for (uint32_t s = 0; s < used; s++) {
        struct rs_rec c = {ids[s], slot_sim(nb, item, s, scale), RS_NONE};
        if (c.score > 0) scratch[n++] = c;
    }
    if (n > max) {
        select_best(scratch, n, max);
        n = max;
    }
    memcpy(out, scratch, n * sizeof(*out));
    return n;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rs_rec *x = a, *y = b;
    return rec_before(x, y) ? -1 : rec_before(y, x) ? 1 : 0;
}

size_t rs_neighbors_similar(const struct rs_neighbors *nb, uint32_t item, size_t max,
                            struct rs_rec *out)
{
    struct rs_rec scratch[RS_NEIGHBORS_SLOTS(1000)];
    size_t n = rs_neighbors_top(nb, item, max, out, scratch);
    qsort(out, n, sizeof(*out), cmp_rec);
    return n;
}

size_t rs_neighbors_take_changed(struct rs_neighbors *nb, uint32_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && nb->q_count > 0) {
        uint32_t item = nb->queue[nb->q_head];
        nb->q_head = (nb->q_head + 1) % nb->cap_items;
        nb->q_count--;
        head(nb, item)->meta &= ~CHANGED_BIT;
        out[n++] = item;
    }
    return n;
}

void rs_neighbors_mark_changed(struct rs_neighbors *nb, uint32_t item)
{
    if (nb && item < nb->n_items) mark_changed(nb, item);
}

size_t rs_neighbors_changed(const struct rs_neighbors *nb)
{
    return nb->q_count;
}

int rs_neighbors_k(const struct rs_neighbors *nb)
{
    return nb->k;
}

int rs_neighbors_window(const struct rs_neighbors *nb)
{
    return nb->window;
}

uint32_t rs_neighbors_items(const struct rs_neighbors *nb)
{
    return nb->n_items;
}

size_t rs_neighbors_state_bytes(const struct rs_neighbors *nb)
{
    return (size_t)nb->n_items * RS_NEIGHBORS_ITEM_BYTES(nb->k) +
           (size_t)nb->n_users * RS_NEIGHBORS_USER_BYTES(nb->window);
}

/* ---- snapshots: parameters, clock, then the item and user arrays ---- */

rs_err_t rs_neighbors_save(const struct rs_neighbors *nb, struct rs_writer *w)
{
    rs_err_t err;

    if ((err = rs_write_u32(w, (uint32_t)nb->k)) ||
        (err = rs_write_u32(w, (uint32_t)nb->window)) ||
        (err = w->write(w->ctx, &nb->half_life_ms, sizeof(nb->half_life_ms))) ||
        (err = w->write(w->ctx, &nb->t_ref, sizeof(nb->t_ref))) ||
        (err = rs_write_u64(w, nb->rng)) ||
        (err = rs_write_u32(w, (uint32_t)nb->have_ref)) ||
        (err = rs_write_u32(w, nb->n_items)) || (err = rs_write_u32(w, nb->n_users)))
        return err;
    /* Rows one by one, without the changed flag (publishing state, not model state). */
    for (uint32_t i = 0; i < nb->n_items; i++) {
        const struct row_head *hd = head(nb, i);
        uint32_t used = hd->meta & USED_MASK;
        if ((err = w->write(w->ctx, &hd->occ, sizeof(hd->occ))) ||
            (err = rs_write_u32(w, used)) ||
            (err = w->write(w->ctx, &hd->min_hint, sizeof(hd->min_hint))) ||
            (err = w->write(w->ctx, row_ids(nb, i), 12u * (size_t)nb->slots)))
            return err;
    }
    if (nb->n_users &&
        ((err = w->write(w->ctx, nb->ring_n, (size_t)nb->n_users * sizeof(uint32_t))) ||
         (err = w->write(w->ctx, nb->ring,
                         (size_t)nb->n_users * (size_t)nb->window * sizeof(uint32_t)))))
        return err;
    return RS_OK;
}

struct rs_neighbors *rs_neighbors_load(struct rs_reader *r, rs_err_t *err)
{
    uint32_t k, window, have_ref, n_items, n_users;
    double half_life_ms;
    int64_t t_ref;
    struct rs_neighbors *nb = NULL;
    uint64_t need, rng;

    if ((*err = rs_read_u32(r, &k)) || (*err = rs_read_u32(r, &window)) ||
        (*err = r->read(r->ctx, &half_life_ms, sizeof(half_life_ms))) ||
        (*err = r->read(r->ctx, &t_ref, sizeof(t_ref))) ||
        (*err = rs_read_u64(r, &rng)) || (*err = rs_read_u32(r, &have_ref)) ||
        (*err = rs_read_u32(r, &n_items)) || (*err = rs_read_u32(r, &n_users)))
        return NULL;
    *err = RS_ECORRUPT;
    if (k < 1 || k > 1000 || window < 1 || window > 1000 || !(half_life_ms > 0) ||
        !isfinite(half_life_ms) || rng == 0)
        return NULL;
    need = (uint64_t)n_items * (16 + 12ull * RS_NEIGHBORS_SLOTS(k)) +
           (uint64_t)n_users * (4 + 4ull * window);
    if (need > r->remaining(r->ctx)) return NULL;
    nb = rs_neighbors_create((int)k, (int)window, half_life_ms / 1000.0);
    if (!nb || (n_items && grow_items(nb, n_items - 1)) ||
        (n_users && grow_users(nb, n_users - 1))) {
        *err = RS_ENOMEM;
        goto fail;
    }
    nb->t_ref = t_ref;
    nb->rng = rng;
    nb->have_ref = have_ref != 0;
    nb->last_ts = t_ref;
    nb->last_d = 1.0f;
    nb->n_items = n_items;
    nb->n_users = n_users;
    for (uint32_t i = 0; i < n_items; i++) {
        struct row_head *hd = head(nb, i);
        if ((*err = r->read(r->ctx, &hd->occ, sizeof(hd->occ))) ||
            (*err = rs_read_u32(r, &hd->meta)) ||
            (*err = r->read(r->ctx, &hd->min_hint, sizeof(hd->min_hint))) ||
            (*err = r->read(r->ctx, row_ids(nb, i), 12u * (size_t)nb->slots)))
            goto fail;
    }
    if (n_users &&
        ((*err = r->read(r->ctx, nb->ring_n, (size_t)n_users * sizeof(uint32_t))) ||
         (*err = r->read(r->ctx, nb->ring, (size_t)n_users * window * sizeof(uint32_t)))))
        goto fail;
    *err = RS_ECORRUPT;
    for (uint32_t i = 0; i < n_items; i++) {
        uint32_t used = head(nb, i)->meta;
        if (used > nb->slots) goto fail;
        for (uint32_t s = 0; s < used; s++)
            if (row_ids(nb, i)[s] >= n_items) goto fail;
    }
    for (uint32_t u = 0; u < n_users; u++) {
        if (nb->ring_n[u] > window) goto fail;
        for (uint32_t p = 0; p < nb->ring_n[u]; p++)
            if (nb->ring[(size_t)u * window + p] >= n_items) goto fail;
    }
    *err = RS_OK;
    return nb;

fail:
    rs_neighbors_destroy(nb);
    return NULL;
}
