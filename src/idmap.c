/*
 * idmap.c - the dictionary from external ids to dense indices. Every event
 * passes through two lookups here (user and item), so a lookup touches only
 * flat arrays and never allocates. This file owns the hash table (linear
 * probing over a power-of-two array of uint32 slots holding index + 1, 0 for
 * empty), the per-index cached hash, and the arena holding every name once.
 * Growth doubles the table and rehashes from the cached hashes, so indices
 * never move. The hash is 64-bit FNV-1a folded with a final mix; it needs no
 * extra library and ids are short.
 *
 * Removal (idle-user eviction) deletes the slot by backward shifting, so no
 * tombstones slow later probes, and pushes the index on a free list (linked
 * through the cached-hash array) that the next new id pops: the dense index
 * space, and everything sized by it, stays bounded by max_ids however many
 * distinct ids pass through. A removed id's name bytes become garbage in the
 * arena; the arena is compacted when garbage outweighs live names, so it too
 * stays bounded. A free index has length 0 (a live id is never empty).
 */
#include "recstream/idmap.h"

#include <stdlib.h>
#include <string.h>

#include "recstream/serial.h"

#define INITIAL_SLOTS 16u
#define INITIAL_IDS 8u
#define INITIAL_ARENA 256u
/* Largest table: 2^31 slots, so slot positions and masks fit in uint32. */
#define MAX_SLOTS ((uint64_t)1 << 31)

struct rs_idmap {
    uint32_t *slots;    /* index + 1 of the id stored there, 0 when empty */
    uint64_t nslots;    /* power of two */
    uint32_t *hashes;   /* cached hash of each live index; next free index of a free one */
    uint64_t *offsets;  /* where each index's name starts in arena */
    uint16_t *lens;     /* length of each index's name, 0 for a free index */
    uint32_t count;     /* ids held */
    uint32_t span;      /* indices handed out so far: 0..span-1 are live or free */
    uint32_t free_head; /* most recently freed index, RS_NONE if none */
    uint32_t ids_cap;   /* capacity of hashes/offsets/lens */
    uint32_t max_ids;   /* 0: no limit */
    char *arena;
    uint64_t arena_len;  /* bytes used, live and garbage */
    uint64_t arena_live; /* bytes of live names */
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

uint32_t rs_idmap_prefetch(const struct rs_idmap *map, const char *id, size_t len,
                           int stage)
{
    const uint32_t *slot;
    uint32_t idx;

    if (map == NULL || map->nslots == 0) return RS_NONE;
    slot = &map->slots[hash_id(id, len) & (map->nslots - 1)];
    if (stage == 0) {
        __builtin_prefetch(slot);
        return RS_NONE;
    }
    if (*slot == 0) return RS_NONE;
    idx = *slot - 1;
    if (stage == 1) {
        __builtin_prefetch(&map->hashes[idx]);
        __builtin_prefetch(&map->lens[idx]);
        __builtin_prefetch(&map->offsets[idx]);
    } else {
        __builtin_prefetch(map->arena + map->offsets[idx]);
    }
    return idx;
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
    for (uint32_t idx = 0; idx < map->span; idx++) {
        if (map->lens[idx] == 0)
            continue;
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
    if (map->span < map->ids_cap)
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

/* Rewrites the arena with live names only, in index order. */
static rs_err_t compact_arena(struct rs_idmap *map)
{
    char *arena = malloc((size_t)map->arena_cap);
    if (arena == NULL)
        return RS_ENOMEM;
    uint64_t at = 0;
    for (uint32_t idx = 0; idx < map->span; idx++) {
        if (map->lens[idx] == 0)
            continue;
        memcpy(arena + at, map->arena + map->offsets[idx], map->lens[idx]);
        map->offsets[idx] = at;
        at += map->lens[idx];
    }
    free(map->arena);
    map->arena = arena;
    map->arena_len = at;
    return RS_OK;
}

/* Makes room for len more bytes in the arena. */
static rs_err_t grow_arena(struct rs_idmap *map, size_t len)
{
    if (map->arena_cap - map->arena_len >= len)
        return RS_OK;
    /* Full: if most of it is garbage from removed ids, compact instead of growing. */
    if (map->arena_len - map->arena_live > map->arena_live) {
        rs_err_t err = compact_arena(map);
        if (err != RS_OK)
            return err;
        if (map->arena_cap - map->arena_len >= len)
            return RS_OK;
    }
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
    map->free_head = RS_NONE;
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

/*
 * Makes room for one more id of len bytes (the table, the per-index arrays,
 * the arena) and picks its index: the free list first, else a new one. Does
 * not change the map's contents, so a failure leaves it as it was.
 */
static rs_err_t make_room(struct rs_idmap *map, size_t len, uint32_t *idx)
{
    rs_err_t err;
    if (map->free_head == RS_NONE) {
        /* Slots hold index + 1, so UINT32_MAX - 1 indices is the hard ceiling. */
        if (map->span >= UINT32_MAX - 1)
            return RS_EFULL;
        if ((err = grow_ids(map)) != RS_OK)
            return err;
    }
    if ((err = grow_arena(map, len)) != RS_OK)
        return err;
    /* Keep the load factor at or below 0.7 after this insert. */
    if (((uint64_t)map->count + 1) * 10 > map->nslots * 7) {
        if ((err = grow_table(map)) != RS_OK)
            return err;
    }
    *idx = map->free_head != RS_NONE ? map->free_head : map->span;
    return RS_OK;
}

/* Stores id at index n (from make_room) in slot pos. */
static void place(struct rs_idmap *map, uint32_t n, const char *id, size_t len,
                  uint32_t hash, uint64_t pos)
{
    if (n == map->free_head)
        map->free_head = map->hashes[n];
    else
        map->span = n + 1;
    memcpy(map->arena + map->arena_len, id, len);
    map->offsets[n] = map->arena_len;
    map->lens[n] = (uint16_t)len;
    map->hashes[n] = hash;
    map->arena_len += len;
    map->arena_live += len;
    map->slots[pos] = n + 1;
    map->count++;
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
    if (map->max_ids != 0 && map->count >= map->max_ids)
        return RS_EFULL;

    uint32_t n;
    uint64_t nslots = map->nslots;
    rs_err_t err = make_room(map, len, &n);
    if (err != RS_OK)
        return err;
    if (map->nslots != nslots)
        pos = probe(map, id, len, hash, &found);
    place(map, n, id, len, hash, pos);
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

rs_err_t rs_idmap_remove(struct rs_idmap *map, uint32_t idx)
{
    if (map == NULL || idx >= map->span || map->lens[idx] == 0)
        return RS_ENOENT;
    uint64_t mask = map->nslots - 1;
    uint64_t pos = map->hashes[idx] & mask;
    while (map->slots[pos] != idx + 1)
        pos = (pos + 1) & mask;
    /*
     * Backward-shift deletion: walk the run after the hole and move back every
     * entry whose home slot is not cyclically in (hole, j], so every remaining
     * id is still reachable from its home without tombstones.
     */
    uint64_t j = pos;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t slot = map->slots[j];
        if (slot == 0)
            break;
        uint64_t home = map->hashes[slot - 1] & mask;
        int stays = pos <= j ? (home > pos && home <= j) : (home > pos || home <= j);
        if (!stays) {
            map->slots[pos] = slot;
            pos = j;
        }
    }
    map->slots[pos] = 0;
    map->arena_live -= map->lens[idx];
    map->lens[idx] = 0;
    map->hashes[idx] = map->free_head;
    map->free_head = idx;
    map->count--;
    return RS_OK;
}

const char *rs_idmap_name(const struct rs_idmap *map, uint32_t idx, size_t *len)
{
    if (map == NULL || idx >= map->span || map->lens[idx] == 0) {
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

uint32_t rs_idmap_span(const struct rs_idmap *map)
{
    return map == NULL ? 0 : map->span;
}

size_t rs_idmap_bytes(const struct rs_idmap *map)
{
    if (map == NULL)
        return 0;
    return sizeof(*map) + (size_t)map->nslots * sizeof(*map->slots) +
           (size_t)map->ids_cap * (sizeof(*map->hashes) + sizeof(*map->offsets) +
                                   sizeof(*map->lens)) +
           (size_t)map->arena_cap;
}

/*
 * Snapshot format: max_ids, span, count, then per index a u16 length (0 for
 * a free index) and the name bytes, then the free list from its head.
 */
rs_err_t rs_idmap_save(const struct rs_idmap *map, struct rs_writer *w)
{
    rs_err_t err;
    if ((err = rs_write_u32(w, map->max_ids)) || (err = rs_write_u32(w, map->span)) ||
        (err = rs_write_u32(w, map->count)))
        return err;
    for (uint32_t idx = 0; idx < map->span; idx++) {
        uint16_t len = map->lens[idx];
        if ((err = w->write(w->ctx, &len, sizeof(len))))
            return err;
        if (len && (err = w->write(w->ctx, map->arena + map->offsets[idx], len)))
            return err;
    }
    for (uint32_t f = map->free_head; f != RS_NONE; f = map->hashes[f])
        if ((err = rs_write_u32(w, f)))
            return err;
    return RS_OK;
}

struct rs_idmap *rs_idmap_load(struct rs_reader *r, rs_err_t *err)
{
    uint32_t max_ids, span, count;
    struct rs_idmap *map = NULL;
    char name[RS_ID_MAX];

    if ((*err = rs_read_u32(r, &max_ids)) || (*err = rs_read_u32(r, &span)) ||
        (*err = rs_read_u32(r, &count)))
        return NULL;
    /* Every index costs at least its 2-byte length; every free one 4 more. */
    if (count > span || span >= UINT32_MAX - 1 ||
        (uint64_t)span * 2 + (uint64_t)(span - count) * 4 > r->remaining(r->ctx) ||
        (max_ids != 0 && count > max_ids)) {
        *err = RS_ECORRUPT;
        return NULL;
    }
    map = rs_idmap_create(max_ids);
    if (map == NULL) {
        *err = RS_ENOMEM;
        return NULL;
    }
    /* Free indices are marked in lens (0) and collected; the list is rebuilt below. */
    for (uint32_t idx = 0; idx < span; idx++) {
        uint16_t len;
        if ((*err = r->read(r->ctx, &len, sizeof(len))))
            goto fail;
        if (len > RS_ID_MAX || len > r->remaining(r->ctx)) {
            *err = RS_ECORRUPT;
            goto fail;
        }
        if ((*err = grow_ids(map)))
            goto fail;
        if (len == 0) {
            map->lens[idx] = 0;
            map->hashes[idx] = RS_NONE;
            map->span = idx + 1;
            continue;
        }
        if ((*err = r->read(r->ctx, name, len)))
            goto fail;
        uint32_t hash = hash_id(name, len);
        int found;
        uint64_t pos = probe(map, name, len, hash, &found);
        if (found) {
            *err = RS_ECORRUPT; /* the same name twice */
            goto fail;
        }
        uint64_t nslots = map->nslots;
        if ((*err = grow_arena(map, len)))
            goto fail;
        if (((uint64_t)map->count + 1) * 10 > map->nslots * 7 && (*err = grow_table(map)))
            goto fail;
        if (map->nslots != nslots)
            pos = probe(map, name, len, hash, &found);
        place(map, idx, name, len, hash, pos);
    }
    if (map->count != count) {
        *err = RS_ECORRUPT;
        goto fail;
    }
    /* The free list, head first: each free index exactly once. */
    uint32_t nfree = span - count, prev = RS_NONE;
    for (uint32_t f = 0; f < nfree; f++) {
        uint32_t idx;
        if ((*err = rs_read_u32(r, &idx)))
            goto fail;
        /* A listed index has hashes == RS_NONE until linked; linking marks it. */
        if (idx >= span || map->lens[idx] != 0 || map->hashes[idx] != RS_NONE ||
            idx == prev) {
            *err = RS_ECORRUPT;
            goto fail;
        }
        map->hashes[idx] = idx; /* visited marker, replaced by the link below */
        if (prev == RS_NONE)
            map->free_head = idx;
        else
            map->hashes[prev] = idx;
        prev = idx;
    }
    if (prev != RS_NONE)
        map->hashes[prev] = RS_NONE;
    *err = RS_OK;
    return map;

fail:
    rs_idmap_destroy(map);
    return NULL;
}
