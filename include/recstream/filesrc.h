/*
 * filesrc.h - events read from a file, for replay, eval and produce. The
 * layout is detected from the name and first line: MovieLens `u.data`
 * (tab-separated user, item, rating, seconds), `ratings.dat` (`::`-separated),
 * `ratings.csv` (header userId,movieId,rating,timestamp), CSV/TSV with a header
 * naming user,item[,type][,value][,ts], JSON lines, and a msgpack stream.
 * A bad record is reported with its line (or record) number and skipped; it
 * never ends the read.
 */
#ifndef RECSTREAM_FILESRC_H
#define RECSTREAM_FILESRC_H

#include <stdio.h>

#include "recstream/common.h"
#include "recstream/event.h"

enum rs_filesrc_format {
    RS_FILE_AUTO = 0,
    RS_FILE_MOVIELENS_TAB,   /* u.data */
    RS_FILE_MOVIELENS_COLON, /* ratings.dat */
    RS_FILE_CSV,             /* header line, comma separated (ratings.csv too) */
    RS_FILE_TSV,             /* header line, tab separated */
    RS_FILE_JSONL,
    RS_FILE_MSGPACK,
};

struct rs_filesrc;

/*
 * Opens path ("-" for stdin). format RS_FILE_AUTO detects it. Returns NULL
 * and fills errstr if the file cannot be opened or its layout is unknown.
 */
struct rs_filesrc *rs_filesrc_open(const char *path, enum rs_filesrc_format format,
                                   const struct rs_event_limits *lim,
                                   char *errstr, size_t errstr_size);

void rs_filesrc_close(struct rs_filesrc *fs);

/*
 * Reads the next event into ev. Returns RS_OK, RS_ENOENT at end of file,
 * RS_EPARSE for a bad record (reason and record number in *reason and
 * *record; the caller counts it and reads on), or RS_EIO.
 */
rs_err_t rs_filesrc_next(struct rs_filesrc *fs, struct rs_event *ev,
                         enum rs_event_reason *reason, uint64_t *record);

/* The detected format, its name, bytes read so far and total size (0 if unknown). */
enum rs_filesrc_format rs_filesrc_format(const struct rs_filesrc *fs);
const char *rs_filesrc_format_name(enum rs_filesrc_format format);

/* The format named name (as rs_filesrc_format_name writes it); 0, or -1 if unknown. */
int rs_filesrc_format_parse(const char *name, enum rs_filesrc_format *format);
uint64_t rs_filesrc_bytes_read(const struct rs_filesrc *fs);
uint64_t rs_filesrc_bytes_total(const struct rs_filesrc *fs);

#endif
