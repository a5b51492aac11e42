/*
 * idmap.h - external ids (strings up to RS_ID_MAX bytes) to dense indices
 * 0..n-1 and back. Users and items each have one. Open addressing over a
 * power-of-two table; names live in one growing arena, so a lookup does no
 * allocation. An index stays with its id until the id is removed (idle-user
 * eviction); a removed index is handed to a later new id, so indices stay
 * dense and bounded by max_ids however many ids pass through.
 */
#ifndef RECSTREAM_IDMAP_H
#define RECSTREAM_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "recstream/common.h"
#include "recstream/serial.h"

struct rs_idmap;

/* An empty map that will hold at most max_ids ids (0: no limit). */
struct rs_idmap *rs_idmap_create(uint32_t max_ids);
void rs_idmap_destroy(struct rs_idmap *map);

/*
 * Finds id or adds it. Returns RS_OK with *idx (and *created = 1 if it was
 * added, when created is not NULL), RS_EFULL when the map holds max_ids ids,
 * RS_EINVAL for an empty or over-long id, RS_ENOMEM.
 */
rs_err_t rs_idmap_intern(struct rs_idmap *map, const char *id, size_t len,
                         uint32_t *idx, int *created);

/* RS_OK with *idx, or RS_ENOENT. */
rs_err_t rs_idmap_find(const struct rs_idmap *map, const char *id, size_t len,
                       uint32_t *idx);

/*
 * Starts fetching what looking id up will read, in stages a few lookups
 * ahead (each reads what the one before fetched): 0, its table slot; 1, the
 * index data of the id in that slot; 2, that id's name. Returns the index in
 * the slot, a guess (RS_NONE when empty): another id there only makes the
 * guess wrong. Changes nothing.
 */
uint32_t rs_idmap_prefetch(const struct rs_idmap *map, const char *id, size_t len,
                           int stage);

/*
 * Removes the id at idx; idx is given to a later new id (most recently
 * removed first). RS_OK, or RS_ENOENT if idx holds no id.
 */
rs_err_t rs_idmap_remove(struct rs_idmap *map, uint32_t idx);

/* The id of idx (not NUL-terminated; *len set), or NULL if idx holds no id. */
const char *rs_idmap_name(const struct rs_idmap *map, uint32_t idx, size_t *len);

/* Number of ids held. */
uint32_t rs_idmap_count(const struct rs_idmap *map);

/* One past the highest index handed out: indices below it are held or free. */
uint32_t rs_idmap_span(const struct rs_idmap *map);

/* Bytes of memory the map holds (tables, arrays, arena). */
size_t rs_idmap_bytes(const struct rs_idmap *map);

/* Snapshot: every id at its index and the free list, so later ids get the same indices. */
rs_err_t rs_idmap_save(const struct rs_idmap *map, struct rs_writer *w);
struct rs_idmap *rs_idmap_load(struct rs_reader *r, rs_err_t *err);

#endif
