/*
 * gen.c - a synthetic event stream whose right answer is known. User u
 * belongs to cluster u % clusters and item i to cluster i % clusters. Each
 * event picks a user uniformly; with probability 1 - noise the item comes
 * from the user's cluster, skewed so that low ranks are popular (rank =
 * floor(r^2 * size) for uniform r), otherwise uniformly from the items outside
 * the cluster (with a single cluster there is no outside, so every event is
 * in-cluster). `rate` events are 4 or 5 on own-cluster items and 1 or 2
 * elsewhere; `play` events have value 1. Event n has ts start_ms + n*step_ms.
 * The generator owns its PRNG (xoshiro256** seeded through splitmix64), so a
 * seed gives the same stream on every platform.
 */
#include "recstream/gen.h"

#include <stdlib.h>
#include <string.h>

struct rs_gen {
    struct rs_gen_params p;
    uint64_t n; /* events produced */
    uint64_t s[4];
};

void rs_gen_defaults(struct rs_gen_params *p)
{
    p->users = 1000;
    p->items = 500;
    p->clusters = 10;
    p->events = 50000;
    p->seed = 1;
    p->rate_share = 0.5;
    p->noise = 0.1;
    p->start_ms = 1700000000000;
    p->step_ms = 10;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(struct rs_gen *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double next_unit(struct rs_gen *g)
{
    return (double)(next_u64(g) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint32_t next_below(struct rs_gen *g, uint32_t n)
{
    /* Reject draws from the incomplete top band of 2^64 so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = next_u64(g);
    } while (x >= limit);
    return (uint32_t)(x % n);
}

/* Number of indices below total that fall in cluster c of k. */
static uint32_t cluster_size(uint32_t total, uint32_t k, uint32_t c)
{
    return total / k + (c < total % k ? 1 : 0);
}

/* Writes 'prefix' then the decimal digits of v, NUL-terminated; returns the length. */
static uint16_t format_id(char *buf, char prefix, uint32_t v)
{
    char digits[10];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf[0] = prefix;
    for (int i = 0; i < nd; i++)
        buf[1 + i] = digits[nd - 1 - i];
    buf[1 + nd] = '\0';
    return (uint16_t)(1 + nd);
}

struct rs_gen *rs_gen_create(const struct rs_gen_params *p)
{
    if (p == NULL || p->users == 0 || p->items == 0 || p->clusters == 0 ||
        p->clusters > p->items || !(p->rate_share >= 0.0 && p->rate_share <= 1.0) ||
        !(p->noise >= 0.0 && p->noise <= 1.0) || p->start_ms < 0 || p->step_ms < 0)
        return NULL;
    /* The last timestamp must fit in int64. */
    if (p->step_ms > 0 && p->events > 0 &&
        p->events - 1 > (uint64_t)((INT64_MAX - p->start_ms) / p->step_ms))
        return NULL;

    struct rs_gen *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->p = *p;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);
    return g;
}

void rs_gen_destroy(struct rs_gen *g)
{
    free(g);
}

rs_err_t rs_gen_next(struct rs_gen *g, struct rs_event *ev)
{
    if (g == NULL || ev == NULL)
        return RS_EINVAL;
    if (g->n >= g->p.events)
        return RS_ENOENT;
    const struct rs_gen_params *p = &g->p;
    uint32_t k = p->clusters;

    uint32_t user = next_below(g, p->users);
    uint32_t c = user % k;
    uint32_t item;
    if (k > 1 && next_unit(g) < p->noise) {
        /* Exact; k > 1 clusters, none empty, so some item lies outside c. */
        do {
            item = next_below(g, p->items);
        } while (item % k == c);
    } else {
        uint32_t size = cluster_size(p->items, k, c);
        double r = next_unit(g);
        uint32_t rank = (uint32_t)(r * r * size);
        if (rank >= size)
            rank = size - 1;
        item = c + rank * k;
    }

    int own = item % k == c;
    if (next_unit(g) < p->rate_share) {
        ev->type = RS_EVENT_RATE;
        ev->value = (float)((own ? 4 : 1) + (int)(next_u64(g) >> 63));
    } else {
        ev->type = RS_EVENT_PLAY;
        ev->value = 1.0f;
    }
    ev->user_len = format_id(ev->user, 'u', user);
    ev->item_len = format_id(ev->item, 'i', item);
    ev->ts_ms = p->start_ms + (int64_t)g->n * p->step_ms;
    g->n++;
    return RS_OK;
}

uint32_t rs_gen_user_cluster(const struct rs_gen *g, uint32_t user)
{
    return user % g->p.clusters;
}

uint32_t rs_gen_item_cluster(const struct rs_gen *g, uint32_t item)
{
    return item % g->p.clusters;
}
