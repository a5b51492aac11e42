/*
 * idmap.c - the dictionary from external ids to dense indices. Every event
 * passes through two lookups here (user and item), so a lookup touches only
 * flat arrays and never allocates. This file owns the hash table (linear
 * probing over a power-of-two array of uint32 slots holding index + 1, 0 for
 * empty), the per-index cached hash, and the arena holding every name once.
 * Growth doubles the table and rehashes from the cached hashes, so indices
 * never move. The hash is 64-bit FNV-1a folded with a final mix; it needs no
 * extra library and ids are short.
 */
#include "recstream/idmap.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 16u
#define INITIAL_IDS 8u
#define INITIAL_ARENA 256u
/* Largest table: 2^31 slots, so slot positions and masks fit in uint32. */
#define MAX_SLOTS ((uint64_t)1 << 31)

struct rs_idmap {
    uint32_t *slots;    /* index + 1 of the id stored there, 0 when empty */
    uint64_t nslots;    /* power of two */
    uint32_t *hashes;   /* cached hash of each index */
    uint64_t *offsets;  /* where each index's name starts in arena */
    uint16_t *lens;     /* length of each index's name */
    uint32_t count;     /* ids held */
    uint32_t ids_cap;   /* capacity of hashes/offsets/lens */
    uint32_t max_ids;   /* 0: no limit */
    char *arena;
    uint64_t arena_len;
    uint64_t arena_cap;
};

static uint32_t hash_id(const char *id, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ull;
    }
    /* FNV-1a mixes the high bits best; fold them into the low ones we mask. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/*
 * The slot holding id, or the empty slot where it would go. Returns the slot
 * position; *found says which.
 */
static uint64_t probe(const struct rs_idmap *map, const char *id, size_t len,
                      uint32_t hash, int *found)
{
    uint64_t mask = map->nslots - 1;
    uint64_t pos = hash & mask;
    for (;;) {
        uint32_t slot = map->slots[pos];
        if (slot == 0) {
            *found = 0;
            return pos;
        }
        uint32_t idx = slot - 1;
        if (map->hashes[idx] == hash && map->lens[idx] == len &&
            memcmp(map->arena + map->offsets[idx], id, len) == 0) {
            *found = 1;
            return pos;
        }
        pos = (pos + 1) & mask;
    }
}

/* Doubles the table and reinserts every index from its cached hash. */
static rs_err_t grow_table(struct rs_idmap *map)
{
    uint64_t nslots = map->nslots * 2;
    if (nslots > MAX_SLOTS)
        return RS_EFULL;
    uint32_t *slots = calloc((size_t)nslots, sizeof(*slots));
    if (slots == NULL)
        return RS_ENOMEM;
    uint64_t mask = nslots - 1;
    for (uint32_t idx = 0; idx < map->count; idx++) {
        uint64_t pos = map->hashes[idx] & mask;
        while (slots[pos] != 0)
            pos = (pos + 1) & mask;
        slots[pos] = idx + 1;
    }
    free(map->slots);
    map->slots = slots;
    map->nslots = nslots;
    return RS_OK;
}

/* Makes room for one more index in the per-index arrays. */
static rs_err_t grow_ids(struct rs_idmap *map)
{
    if (map->count < map->ids_cap)
        return RS_OK;
    uint64_t cap = (uint64_t)map->ids_cap * 2;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (cap <= map->ids_cap)
        return RS_EFULL;
    /* Each array is kept as soon as it is resized: a later failure leaves the map intact. */
    uint32_t *hashes = realloc(map->hashes, (size_t)cap * sizeof(*hashes));
    if (hashes == NULL)
        return RS_ENOMEM;
    map->hashes = hashes;
    uint64_t *offsets = realloc(map->offsets, (size_t)cap * sizeof(*offsets));
    if (offsets == NULL)
        return RS_ENOMEM;
    map->offsets = offsets;
    uint16_t *lens = realloc(map->lens, (size_t)cap * sizeof(*lens));
    if (lens == NULL)
        return RS_ENOMEM;
    map->lens = lens;
    /* Only now are all three at least cap long. */
    map->ids_cap = (uint32_t)cap;
    return RS_OK;
}

/* Makes room for len more bytes in the arena. */
static rs_err_t grow_arena(struct rs_idmap *map, size_t len)
{
    if (map->arena_cap - map->arena_len >= len)
        return RS_OK;
    uint64_t cap = map->arena_cap;
    while (cap - map->arena_len < len) {
        if (cap > SIZE_MAX / 2)
            return RS_ENOMEM;
        cap *= 2;
    }
    char *arena = realloc(map->arena, (size_t)cap);
    if (arena == NULL)
        return RS_ENOMEM;
    map->arena = arena;
    map->arena_cap = cap;
    return RS_OK;
}

struct rs_idmap *rs_idmap_create(uint32_t max_ids)
{
    struct rs_idmap *map = calloc(1, sizeof(*map));
    if (map == NULL)
        return NULL;
    map->max_ids = max_ids;
    map->nslots = INITIAL_SLOTS;
    map->ids_cap = INITIAL_IDS;
    map->arena_cap = INITIAL_ARENA;
    map->slots = calloc(INITIAL_SLOTS, sizeof(*map->slots));
    map->hashes = malloc(INITIAL_IDS * sizeof(*map->hashes));
    map->offsets = malloc(INITIAL_IDS * sizeof(*map->offsets));
    map->lens = malloc(INITIAL_IDS * sizeof(*map->lens));
    map->arena = malloc(INITIAL_ARENA);
    if (map->slots == NULL || map->hashes == NULL || map->offsets == NULL ||
        map->lens == NULL || map->arena == NULL)
        goto fail;
    return map;

fail:
    rs_idmap_destroy(map);
    return NULL;
}

void rs_idmap_destroy(struct rs_idmap *map)
{
    if (map == NULL)
        return;
    free(map->slots);
    free(map->hashes);
    free(map->offsets);
    free(map->lens);
    free(map->arena);
    free(map);
}

rs_err_t rs_idmap_intern(struct rs_idmap *map, const char *id, size_t len,
                         uint32_t *idx, int *created)
{
    if (map == NULL || id == NULL || idx == NULL || len == 0 || len > RS_ID_MAX)
        return RS_EINVAL;
    uint32_t hash = hash_id(id, len);
    int found;
    uint64_t pos = probe(map, id, len, hash, &found);
    if (found) {
        *idx = map->slots[pos] - 1;
        if (created != NULL)
            *created = 0;
        return RS_OK;
    }
    /* Slots hold index + 1, so UINT32_MAX - 1 indices is the hard ceiling. */
    if ((map->max_ids != 0 && map->count >= map->max_ids) || map->count >= UINT32_MAX - 1)
        return RS_EFULL;

    rs_err_t err = grow_ids(map);
    if (err != RS_OK)
        return err;
    err = grow_arena(map, len);
    if (err != RS_OK)
        return err;
    /* Keep the load factor at or below 0.7 after this insert. */
    if (((uint64_t)map->count + 1) * 10 > map->nslots * 7) {
        err = grow_table(map);
        if (err != RS_OK)
            return err;
        pos = probe(map, id, len, hash, &found);
    }

    uint32_t n = map->count;
    memcpy(map->arena + map->arena_len, id, len);
    map->offsets[n] = map->arena_len;
    map->lens[n] = (uint16_t)len;
    map->hashes[n] = hash;
    map->arena_len += len;
    map->slots[pos] = n + 1;
    map->count = n + 1;
    *idx = n;
    if (created != NULL)
        *created = 1;
    return RS_OK;
}

rs_err_t rs_idmap_find(const struct rs_idmap *map, const char *id, size_t len,
                       uint32_t *idx)
{
    if (map == NULL || id == NULL || len == 0 || len > RS_ID_MAX)
        return RS_ENOENT;
    int found;
    uint64_t pos = probe(map, id, len, hash_id(id, len), &found);
    if (!found)
        return RS_ENOENT;
    if (idx != NULL)
        *idx = map->slots[pos] - 1;
    return RS_OK;
}

const char *rs_idmap_name(const struct rs_idmap *map, uint32_t idx, size_t *len)
{
    if (map == NULL || idx >= map->count) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = map->lens[idx];
    return map->arena + map->offsets[idx];
}

uint32_t rs_idmap_count(const struct rs_idmap *map)
{
    return map == NULL ? 0 : map->count;
}
