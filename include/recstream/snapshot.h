/*
 * snapshot.h - the snapshot file: how recstream's state reaches the disk so a
 * crash loses nothing and counts nothing twice. This module owns the format
 * (magic, version, the shape parameters the model was built with, checksummed
 * sections, an end marker), the crash-safe write (temp file, fsync, rename,
 * directory fsync, mode 0600, the last `keep` files retained), verification on
 * read, the choice of the newest snapshot that verifies, and the background
 * write in a forked child. It knows nothing about what the sections hold:
 * the pipeline fills them through serial.h writers and reads them back.
 *
 * File layout (little-endian):
 *   header   "RSSNAP\r\n", u32 version, u32 shape bytes, shape, i64 created_ms,
 *            u64 XXH3 of the header bytes before it
 *   section  u32 id, char name[16], u64 length, payload, u64 XXH3 of
 *            (payload, then the section header)            ... repeated
 *   end      a section with id RS_SNAPSHOT_END whose payload is u32 section
 *            count, u32 0, u64 bytes before the end section; nothing follows.
 */
#ifndef RECSTREAM_SNAPSHOT_H
#define RECSTREAM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "recstream/common.h"
#include "recstream/serial.h"

#define RS_SNAPSHOT_VERSION 1
#define RS_SNAPSHOT_END UINT32_MAX
#define RS_SNAPSHOT_NAME_MAX 16

/* The parameters that decide the model's layout: a snapshot is only loaded
 * into a configuration that agrees on all of them. */
struct rs_snapshot_shape {
    uint32_t factors;
    float rating_min;
    float rating_max;
};

/* ---- writing ---------------------------------------------------------- */

struct rs_snapshot_writer;

/*
 * Starts a section: returns the writer its payload goes through (valid until
 * rs_snapshot_section_end). name is at most RS_SNAPSHOT_NAME_MAX bytes.
 */
struct rs_writer *rs_snapshot_section_begin(struct rs_snapshot_writer *sw, uint32_t id,
                                            const char *name);
/* Closes the current section (length and checksum). RS_OK or RS_EIO. */
rs_err_t rs_snapshot_section_end(struct rs_snapshot_writer *sw);

/* Writes every section of one snapshot through sw. */
typedef rs_err_t (*rs_snapshot_fill_t)(void *ctx, struct rs_snapshot_writer *sw);

/*
 * Writes a complete snapshot into dir (created if missing): a temp file in
 * dir filled by fill, fsynced, renamed to the next snap-<seq>.rsnap, the
 * directory fsynced; then all but the newest keep snapshots are deleted. On
 * any error the temp file is removed, older snapshots are untouched, and
 * errstr names the step and the reason (e.g. "writing ...: No space left on
 * device"). path (may be NULL) receives the final file name.
 */
rs_err_t rs_snapshot_write(const char *dir, int keep, const struct rs_snapshot_shape *shape,
                           rs_snapshot_fill_t fill, void *ctx, char *path, size_t path_size,
                           char *errstr, size_t errstr_size);

/*
 * Takes an exclusive lock on dir (creating it), so two processes never write
 * snapshots into one directory, then removes the temp files an interrupted
 * write left there. Returns the lock's file descriptor (held until
 * closed or the process dies), or -1 with errstr filled.
 */
int rs_snapshot_lock_dir(const char *dir, char *errstr, size_t errstr_size);

/* ---- background writing (fork, as Redis BGSAVE) ----------------------- */

/*
 * Forks; the child calls rs_snapshot_write from its copy-on-write image of
 * the process and _exit()s with 0 on success. The parent returns at once
 * with *pid set (RS_EIO if fork failed). The caller must not start another
 * until rs_snapshot_bg_poll has reported this one finished.
 */
rs_err_t rs_snapshot_bg_start(const char *dir, int keep, const struct rs_snapshot_shape *shape,
                              rs_snapshot_fill_t fill, void *ctx, pid_t *pid);

enum rs_snapshot_bg_state {
    RS_SNAPSHOT_BG_RUNNING = 0,
    RS_SNAPSHOT_BG_DONE,   /* the child wrote and renamed the file */
    RS_SNAPSHOT_BG_FAILED, /* the child failed (it logged why) or was killed */
};

/* Reaps pid without blocking (or blocking, when wait is set). */
enum rs_snapshot_bg_state rs_snapshot_bg_poll(pid_t pid, int wait);

/* ---- reading ---------------------------------------------------------- */

struct rs_snapshot_section_info {
    uint32_t id;
    char name[RS_SNAPSHOT_NAME_MAX + 1];
    uint64_t offset;   /* of the payload in the file */
    uint64_t length;   /* of the payload */
    uint64_t checksum; /* as stored */
    int ok;            /* the stored checksum matches the bytes */
};

struct rs_snapshot;

/*
 * Opens and verifies path: header, every section's checksum, the end marker
 * and that nothing follows it. Returns NULL only when the file cannot be
 * read at all (errstr says why); a file that fails a check is returned
 * with rs_snapshot_problem() saying what is wrong and where, and its sections
 * up to the damage listed.
 */
struct rs_snapshot *rs_snapshot_open(const char *path, char *errstr, size_t errstr_size);
void rs_snapshot_close(struct rs_snapshot *snap);

/* NULL when the file verified, else what is wrong ("section 3 (model) at byte
 * 120: checksum mismatch"). */
const char *rs_snapshot_problem(const struct rs_snapshot *snap);

const char *rs_snapshot_path(const struct rs_snapshot *snap);
uint32_t rs_snapshot_version(const struct rs_snapshot *snap);
const struct rs_snapshot_shape *rs_snapshot_shape(const struct rs_snapshot *snap);
int64_t rs_snapshot_created_ms(const struct rs_snapshot *snap);
uint64_t rs_snapshot_size(const struct rs_snapshot *snap);
size_t rs_snapshot_sections(const struct rs_snapshot *snap);
const struct rs_snapshot_section_info *rs_snapshot_section_at(const struct rs_snapshot *snap,
                                                              size_t idx);

/* A reader over one section's payload; keeps its position in cursor. */
struct rs_snapshot_cursor {
    const uint8_t *p;
    uint64_t left;
};

/*
 * Points r at section id's payload. RS_OK, RS_ENOENT if the file has no such
 * section, RS_ECORRUPT if it did not verify.
 */
rs_err_t rs_snapshot_reader(const struct rs_snapshot *snap, uint32_t id,
                            struct rs_snapshot_cursor *cursor, struct rs_reader *r);

/* 1 when shape agrees with want; else 0 with the differences in errstr. */
int rs_snapshot_shape_matches(const struct rs_snapshot_shape *have,
                              const struct rs_snapshot_shape *want, char *errstr,
                              size_t errstr_size);

/* ---- the snapshot directory ------------------------------------------- */

/*
 * Loads one verified snapshot into the caller's state; RS_ECORRUPT (with
 * errstr) if its content does not hold together, making the caller fall back.
 */
typedef rs_err_t (*rs_snapshot_load_t)(void *ctx, const struct rs_snapshot *snap,
                                       char *errstr, size_t errstr_size);

/*
 * Loads the newest snapshot in dir that verifies: each one that does not (or
 * whose load reports RS_ECORRUPT) is reported in the log and the next older
 * one is tried. Nothing in dir is changed (rs_snapshot_lock_dir clears the
 * temp files an interrupted write left).
 * Returns RS_OK with path filled, RS_ENOENT when dir holds no snapshot,
 * RS_EINVAL when the newest good one's shape disagrees with want (refused,
 * not mixed; errstr says how), RS_ECORRUPT when snapshots exist but none
 * verifies, RS_EIO/RS_ENOMEM.
 */
rs_err_t rs_snapshot_load_newest(const char *dir, const struct rs_snapshot_shape *want,
                                 rs_snapshot_load_t load, void *ctx, char *path,
                                 size_t path_size, char *errstr, size_t errstr_size);

#endif
