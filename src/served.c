/*
 * served.c - the items last published for each user, for the online hit
 * rate. One row of width item indices per user index and a count per user
 * (0xffff: no list), grown with the highest user seen, so a lookup is a scan
 * of at most top_n integers in one cache line or two. Memory is
 * (4 * top_n + 2) bytes per user index.
 */
#include "recstream/served.h"

#include <stdlib.h>
#include <string.h>

#define NO_LIST 0xffffu

struct rs_served {
    size_t width;
    size_t cap;        /* user indices covered */
    uint32_t *items;   /* cap rows of width */
    uint16_t *count;   /* per user; NO_LIST when none */
};

struct rs_served *rs_served_create(size_t width)
{
    struct rs_served *s;
    if (width == 0 || width >= NO_LIST) return NULL;
    if (!(s = calloc(1, sizeof(*s)))) return NULL;
    s->width = width;
    return s;
}

void rs_served_destroy(struct rs_served *s)
{
    if (!s) return;
    free(s->items);
    free(s->count);
    free(s);
}

static rs_err_t grow(struct rs_served *s, uint32_t user)
{
    size_t cap = s->cap ? s->cap : 1024;
    uint32_t *items;
    uint16_t *count;

    while (cap <= user) cap *= 2;
    if (!(items = realloc(s->items, cap * s->width * sizeof(*items)))) return RS_ENOMEM;
    s->items = items;
    if (!(count = realloc(s->count, cap * sizeof(*count)))) return RS_ENOMEM;
    s->count = count;
    for (size_t u = s->cap; u < cap; u++) count[u] = NO_LIST;
    s->cap = cap;
    return RS_OK;
}

rs_err_t rs_served_set(struct rs_served *s, uint32_t user, const uint32_t *items, size_t n)
{
    rs_err_t err;
    if (user >= s->cap && (err = grow(s, user))) return err;
    if (n > s->width) n = s->width;
    memcpy(s->items + (size_t)user * s->width, items, n * sizeof(*items));
    s->count[user] = (uint16_t)n;
    return RS_OK;
}

void rs_served_clear(struct rs_served *s, uint32_t user)
{
    if (user < s->cap) s->count[user] = NO_LIST;
}

int rs_served_contains(const struct rs_served *s, uint32_t user, uint32_t item)
{
    const uint32_t *row;
    if (user >= s->cap || s->count[user] == NO_LIST) return -1;
    row = s->items + (size_t)user * s->width;
    for (size_t j = 0; j < s->count[user]; j++)
        if (row[j] == item) return 1;
    return 0;
}

size_t rs_served_bytes(const struct rs_served *s)
{
    return s->cap * (s->width * sizeof(uint32_t) + sizeof(uint16_t));
}
