/*
 * filesrc.c - events from a file, for replay, eval and produce. It owns the
 * read buffer, layout detection and the text layouts (MovieLens u.data and
 * ratings.dat, CSV/TSV with a header, JSON lines); JSON lines and msgpack
 * records go through the same decoders as Kafka payloads (event.c), and every
 * text record through rs_event_validate, so a file is held to the same rules.
 *
 * Reading: one fixed buffer per source filled with read(2), so a pipe yields
 * events as they arrive and nothing is allocated per record. A text line
 * longer than the buffer (64 KiB) is one "malformed" record; the rest of it
 * is skipped. CRLF endings, blank lines and a missing final newline are fine.
 * Record numbers are line numbers for text (the header and blank lines count),
 * object numbers (from 1) for msgpack.
 *
 * Detection (RS_FILE_AUTO): by name first - u.data and *.data are MovieLens
 * tab, ratings.dat is MovieLens `::`, *.csv CSV, *.tsv TSV, *.jsonl, *.json
 * and *.ndjson JSON lines, *.msgpack, *.mp and *.msgpackstream msgpack - then
 * by content for other names and stdin ("-"): first non-blank byte '{' is
 * JSON lines; a msgpack map byte (0x80-0x8f, 0xde, 0xdf) is msgpack; a first
 * line holding "::" is MovieLens `::`; one starting with a letter or a quote
 * is a header (TSV if it holds a tab, else CSV if it holds a comma); three or
 * four tab-separated fields are MovieLens tab.
 *
 * MovieLens layouts are user, item, rating[, unix seconds]: rate events, ts in
 * ms. CSV/TSV headers name columns case-insensitively: user|userId|user_id,
 * item|itemId|item_id|movieId|artistId, type, value|rating|weight,
 * ts|timestamp; other columns are ignored. Without a type column, a `rating`
 * column makes rate events, a `value` or `weight` column or none makes plays.
 * A ts column value below 1e11 is unix seconds, anything larger milliseconds
 * (1e11 s is the year 5138; 1e11 ms is March 1973). Quoting is minimal: a
 * field that starts with a double quote runs to the next quote followed by
 * the separator or the line end, and the quotes are stripped ("" is kept as
 * is). Spaces around fields are trimmed. Rows with fewer fields than the
 * columns we use are "malformed"; extra fields are ignored.
 *
 * A `forget` row needs no item and its value is ignored. JSON lines carry ts
 * in ms, as Kafka payloads do.
 *
 * msgpack objects are cut from the buffer with rs_event_msgpack_size and
 * decoded with rs_event_decode_msgpack (not msgpack_unpacker, which would
 * reserve a container's storage before its bytes exist, and would give the
 * file other checks than Kafka payloads). A msgpack stream has no resync
 * point: after bytes that cannot be msgpack, an object bigger than the
 * buffer, or a truncated last object, the error is reported once and the
 * source then ends. Objects that are whole but bad (wrong keys, over
 * max_bytes, ...) are reported and skipped like any record.
 */
#include "recstream/filesrc.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define MAX_COLUMNS 64

struct field {
    const char *p;
    size_t n;
};

struct rs_filesrc {
    int fd;
    int own_fd;
    enum rs_filesrc_format format;
    struct rs_event_limits lim;
    uint64_t bytes_read;
    uint64_t bytes_total;
    uint64_t record; /* number of the last line or object taken */
    int eof;         /* read(2) returned 0 */
    int dead;        /* a msgpack stream lost its framing */
    int skipping;    /* discarding the rest of an over-long line */
    char *buf;
    size_t cap;
    size_t start; /* unread bytes are buf[start..end) */
    size_t end;
    /* CSV/TSV: which column holds what (-1 when absent) */
    char sep;
    int col_user, col_item, col_type, col_value, col_ts;
    int ncols; /* fields a row needs: the largest used index + 1 */
    enum rs_event_type default_type;
};

static void set_err(char *errstr, size_t size, const char *fmt, const char *path,
                    const char *detail)
{
    if (errstr == NULL || size == 0) return;
    snprintf(errstr, size, fmt, path, detail);
}

const char *rs_filesrc_format_name(enum rs_filesrc_format format)
{
    switch (format) {
    case RS_FILE_AUTO: return "auto";
    case RS_FILE_MOVIELENS_TAB: return "movielens-tab";
    case RS_FILE_MOVIELENS_COLON: return "movielens-colon";
    case RS_FILE_CSV: return "csv";
    case RS_FILE_TSV: return "tsv";
    case RS_FILE_JSONL: return "jsonl";
    case RS_FILE_MSGPACK: return "msgpack";
    }
    return "unknown";
}

int rs_filesrc_format_parse(const char *name, enum rs_filesrc_format *format)
{
    for (int f = RS_FILE_AUTO; f <= RS_FILE_MSGPACK; f++) {
        if (strcmp(name, rs_filesrc_format_name((enum rs_filesrc_format)f)) == 0) {
            *format = (enum rs_filesrc_format)f;
            return 0;
        }
    }
    return -1;
}

enum rs_filesrc_format rs_filesrc_format(const struct rs_filesrc *fs)
{
    return fs != NULL ? fs->format : RS_FILE_AUTO;
}

uint64_t rs_filesrc_bytes_read(const struct rs_filesrc *fs)
{
    return fs != NULL ? fs->bytes_read : 0;
}

uint64_t rs_filesrc_bytes_total(const struct rs_filesrc *fs)
{
    return fs != NULL ? fs->bytes_total : 0;
}

void rs_filesrc_close(struct rs_filesrc *fs)
{
    if (fs == NULL) return;
    if (fs->own_fd && fs->fd >= 0) close(fs->fd);
    free(fs->buf);
    free(fs);
}

/* ---- buffer ---- */

/* Moves unread bytes to the front and reads more. 1: got bytes, 0: EOF, -1: error. */
static int fill(struct rs_filesrc *fs)
{
    ssize_t n;

    if (fs->start > 0) {
        memmove(fs->buf, fs->buf + fs->start, fs->end - fs->start);
        fs->end -= fs->start;
        fs->start = 0;
    }
    if (fs->end == fs->cap) return 1; /* full: the caller decides */
    do {
        n = read(fs->fd, fs->buf + fs->end, fs->cap - fs->end);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n == 0) {
        fs->eof = 1;
        return 0;
    }
    fs->end += (size_t)n;
    fs->bytes_read += (uint64_t)n;
    return 1;
}

/*
 * Takes the next line (without its '\n') and counts it. Returns 1 with
 * *line and *len, 2 for a line longer than the buffer (counted, its rest will be
 * skipped), 0 at end of input, -1 on a read error.
 */
static int next_line(struct rs_filesrc *fs, const char **line, size_t *len)
{
    char *nl;
    size_t avail;

    for (;;) {
        avail = fs->end - fs->start;
        nl = memchr(fs->buf + fs->start, '\n', avail);
        if (nl != NULL || (fs->eof && avail > 0)) {
            *line = fs->buf + fs->start;
            *len = nl != NULL ? (size_t)(nl - *line) : avail;
            fs->start = nl != NULL ? (size_t)(nl - fs->buf) + 1 : fs->end;
            if (fs->skipping) { /* the tail of an over-long line */
                fs->skipping = 0;
                continue;
            }
            fs->record++;
            return 1;
        }
        if (fs->eof) return 0;
        if (fs->start == 0 && fs->end == fs->cap) {
            /* no newline in a full buffer: drop it, skip to the next newline */
            fs->start = fs->end = 0;
            if (!fs->skipping) {
                fs->skipping = 1;
                fs->record++;
                return 2;
            }
        }
        if (fill(fs) < 0) return -1;
    }
}

static int is_blank(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
    }
    return 1;
}

static struct field trim(const char *p, size_t n)
{
    struct field f;
    while (n > 0 && (*p == ' ' || *p == '\r')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\r'))
        n--;
    f.p = p;
    f.n = n;
    return f;
}

/* Splits a CSV/TSV line on sep with minimal quoting; returns the field count. */
static size_t split_sep(const char *line, size_t len, char sep, struct field *out,
                        size_t max)
{
    size_t pos = 0;
    size_t n = 0;
    size_t q;
    const char *e;
    struct field f;

    while (n < max) {
        while (pos < len && line[pos] == ' ')
            pos++;
        if (pos < len && line[pos] == '"') {
            for (q = pos + 1; q < len; q++) {
                if (line[q] == '"' && (q + 1 == len || line[q + 1] == sep ||
                                       line[q + 1] == ' ' || line[q + 1] == '\r'))
                    break;
            }
            if (q < len) {
                f.p = line + pos + 1;
                f.n = q - pos - 1;
                pos = q + 1;
                while (pos < len && line[pos] != sep)
                    pos++;
            } else { /* no closing quote: the raw rest */
                f = trim(line + pos, len - pos);
                pos = len;
            }
        } else {
            e = memchr(line + pos, sep, len - pos);
            q = e != NULL ? (size_t)(e - line) : len;
            f = trim(line + pos, q - pos);
            pos = q;
        }
        out[n++] = f;
        if (pos >= len) break;
        pos++; /* the separator */
    }
    return n;
}

/* Splits a MovieLens `::` line. */
static size_t split_colons(const char *line, size_t len, struct field *out, size_t max)
{
    size_t pos = 0;
    size_t n = 0;
    size_t q;

    while (n < max) {
        for (q = pos; q + 1 < len && !(line[q] == ':' && line[q + 1] == ':'); q++) {
        }
        if (q + 1 >= len) q = len;
        out[n++] = trim(line + pos, q - pos);
        if (q >= len) break;
        pos = q + 2;
    }
    return n;
}

/* ---- fields to event ---- */

static enum rs_event_reason set_id(char *dst, uint16_t *len, struct field f)
{
    if (f.n > RS_ID_MAX) return RS_REASON_ID_TOO_LONG;
    memcpy(dst, f.p, f.n);
    dst[f.n] = '\0';
    *len = (uint16_t)f.n;
    return RS_REASON_OK;
}

static int parse_double(struct field f, double *out)
{
    char tmp[64];
    char *end;

    if (f.n == 0 || f.n >= sizeof(tmp)) return -1;
    memcpy(tmp, f.p, f.n);
    tmp[f.n] = '\0';
    errno = 0;
    *out = strtod(tmp, &end);
    if (end != tmp + f.n) return -1;
    return 0;
}

static int parse_int(struct field f, int64_t *out)
{
    char tmp[32];
    char *end;
    long long v;

    if (f.n == 0 || f.n >= sizeof(tmp)) return -1;
    memcpy(tmp, f.p, f.n);
    tmp[f.n] = '\0';
    errno = 0;
    v = strtoll(tmp, &end, 10);
    if (end != tmp + f.n || errno == ERANGE) return -1;
    *out = (int64_t)v;
    return 0;
}

/* Sets ev->ts_ms from unix seconds (or, with ms_if_large, from ms when >= 1e11). */
static enum rs_event_reason set_ts(struct rs_event *ev, struct field f, int ms_if_large)
{
    int64_t v;

    if (parse_int(f, &v) != 0 || v < 0) return RS_REASON_BAD_TS;
    if (ms_if_large && v >= 100000000000LL) {
        ev->ts_ms = v;
    } else {
        if (v > INT64_MAX / 1000) return RS_REASON_BAD_TS;
        ev->ts_ms = v * 1000;
    }
    return RS_REASON_OK;
}

static enum rs_event_reason set_value(struct rs_event *ev, struct field f)
{
    double v;

    if (parse_double(f, &v) != 0) return RS_REASON_BAD_VALUE;
    if (!isfinite(v) || fabs(v) > FLT_MAX) return RS_REASON_BAD_VALUE;
    ev->value = (float)v;
    return RS_REASON_OK;
}

static enum rs_event_reason parse_movielens(struct rs_filesrc *fs, const char *line,
                                            size_t len, struct rs_event *ev)
{
    struct field f[5];
    size_t n;
    enum rs_event_reason r;

    if (fs->format == RS_FILE_MOVIELENS_COLON)
        n = split_colons(line, len, f, 5);
    else
        n = split_sep(line, len, '\t', f, 5);
    if (n < 3 || n > 4) return RS_REASON_MALFORMED;
    memset(ev, 0, offsetof(struct rs_event, user));
    ev->type = RS_EVENT_RATE;
    if ((r = set_id(ev->user, &ev->user_len, f[0])) != RS_REASON_OK) return r;
    if ((r = set_id(ev->item, &ev->item_len, f[1])) != RS_REASON_OK) return r;
    if (f[2].n == 0) return RS_REASON_MISSING_VALUE;
    if ((r = set_value(ev, f[2])) != RS_REASON_OK) return r;
    if (n == 4 && (r = set_ts(ev, f[3], 0)) != RS_REASON_OK) return r;
    return rs_event_validate(ev, &fs->lim);
}

static enum rs_event_reason parse_type(struct field f, enum rs_event_type *type)
{
    if (f.n == 0) return RS_REASON_MISSING_TYPE;
    if (f.n == 4 && memcmp(f.p, "play", 4) == 0)
        *type = RS_EVENT_PLAY;
    else if (f.n == 4 && memcmp(f.p, "rate", 4) == 0)
        *type = RS_EVENT_RATE;
    else if (f.n == 6 && memcmp(f.p, "forget", 6) == 0)
        *type = RS_EVENT_FORGET;
    else
        return RS_REASON_BAD_TYPE;
    return RS_REASON_OK;
}

static enum rs_event_reason parse_table(struct rs_filesrc *fs, const char *line,
                                        size_t len, struct rs_event *ev)
{
    struct field f[MAX_COLUMNS];
    size_t n;
    enum rs_event_reason r;

    n = split_sep(line, len, fs->sep, f, MAX_COLUMNS);
    if (n < (size_t)fs->ncols) return RS_REASON_MALFORMED;
    memset(ev, 0, offsetof(struct rs_event, user));
    ev->type = fs->default_type;
    if (fs->col_type >= 0 && (r = parse_type(f[fs->col_type], &ev->type)) != RS_REASON_OK)
        return r;
    if ((r = set_id(ev->user, &ev->user_len, f[fs->col_user])) != RS_REASON_OK) return r;
    if (ev->type == RS_EVENT_FORGET) {
        ev->item_len = 0;
        ev->item[0] = '\0';
    } else {
        if ((r = set_id(ev->item, &ev->item_len, f[fs->col_item])) != RS_REASON_OK)
            return r;
        if (fs->col_value >= 0 && f[fs->col_value].n > 0) {
            if ((r = set_value(ev, f[fs->col_value])) != RS_REASON_OK) return r;
        } else if (ev->type == RS_EVENT_RATE) {
            return ev->user_len == 0   ? RS_REASON_MISSING_USER
                   : ev->item_len == 0 ? RS_REASON_MISSING_ITEM
                                       : RS_REASON_MISSING_VALUE;
        } else {
            ev->value = 1.0f;
        }
    }
    if (fs->col_ts >= 0 && f[fs->col_ts].n > 0 &&
        (r = set_ts(ev, f[fs->col_ts], 1)) != RS_REASON_OK)
        return r;
    return rs_event_validate(ev, &fs->lim);
}

static int name_is(struct field f, const char *const *names)
{
    size_t i;
    for (i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == f.n && strncasecmp(f.p, names[i], f.n) == 0) return 1;
    }
    return 0;
}

/* Reads the column roles from a header line; returns 0 or -1 with errstr filled. */
static int parse_header(struct rs_filesrc *fs, const char *line, size_t len,
                        const char *path, char *errstr, size_t errstr_size)
{
    static const char *const user_names[] = {"user", "userid", "user_id", NULL};
    static const char *const item_names[] = {"item",    "itemid",   "item_id",
                                             "movieid", "artistid", NULL};
    static const char *const type_names[] = {"type", NULL};
    static const char *const value_names[] = {"value", "rating", "weight", NULL};
    static const char *const rating_names[] = {"rating", NULL};
    static const char *const ts_names[] = {"ts", "timestamp", NULL};
    struct field f[MAX_COLUMNS];
    size_t n, i;
    int rating = 0;

    fs->col_user = fs->col_item = fs->col_type = fs->col_value = fs->col_ts = -1;
    n = split_sep(line, len, fs->sep, f, MAX_COLUMNS);
    for (i = 0; i < n; i++) {
        int c = (int)i;
        if (fs->col_user < 0 && name_is(f[i], user_names))
            fs->col_user = c;
        else if (fs->col_item < 0 && name_is(f[i], item_names))
            fs->col_item = c;
        else if (fs->col_type < 0 && name_is(f[i], type_names))
            fs->col_type = c;
        else if (fs->col_value < 0 && name_is(f[i], value_names)) {
            fs->col_value = c;
            rating = name_is(f[i], rating_names);
        } else if (fs->col_ts < 0 && name_is(f[i], ts_names))
            fs->col_ts = c;
    }
    if (fs->col_user < 0 || fs->col_item < 0) {
        set_err(errstr, errstr_size, "%s: %s", path,
                "the header names no user or no item column (user|userId|user_id, "
                "item|itemId|item_id|movieId|artistId)");
        return -1;
    }
    fs->default_type = rating ? RS_EVENT_RATE : RS_EVENT_PLAY;
    fs->ncols = 0;
    if (fs->col_user + 1 > fs->ncols) fs->ncols = fs->col_user + 1;
    if (fs->col_item + 1 > fs->ncols) fs->ncols = fs->col_item + 1;
    if (fs->col_type + 1 > fs->ncols) fs->ncols = fs->col_type + 1;
    if (fs->col_value + 1 > fs->ncols) fs->ncols = fs->col_value + 1;
    if (fs->col_ts + 1 > fs->ncols) fs->ncols = fs->col_ts + 1;
    return 0;
}

/* ---- detection ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static enum rs_filesrc_format format_from_name(const char *path)
{
    const char *base = strrchr(path, '/');

    base = base != NULL ? base + 1 : path;
    if (strcmp(base, "u.data") == 0 || ends_with(base, ".data"))
        return RS_FILE_MOVIELENS_TAB;
    if (strcmp(base, "ratings.dat") == 0) return RS_FILE_MOVIELENS_COLON;
    if (ends_with(base, ".csv")) return RS_FILE_CSV;
    if (ends_with(base, ".tsv")) return RS_FILE_TSV;
    if (ends_with(base, ".jsonl") || ends_with(base, ".json") ||
        ends_with(base, ".ndjson"))
        return RS_FILE_JSONL;
    if (ends_with(base, ".msgpack") || ends_with(base, ".mp") ||
        ends_with(base, ".msgpackstream"))
        return RS_FILE_MSGPACK;
    return RS_FILE_AUTO;
}

static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static enum rs_filesrc_format format_from_content(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    const char *nl;
    size_t i, len, tabs = 0;

    for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n');
         i++) {
    }
    if (i == n) return RS_FILE_AUTO;
    if (u[i] == '{') return RS_FILE_JSONL;
    if ((u[i] >= 0x80 && u[i] <= 0x8f) || u[i] == 0xde || u[i] == 0xdf)
        return RS_FILE_MSGPACK;
    while (i > 0 && p[i - 1] != '\n')
        i--; /* back to the start of that line */
    nl = memchr(p + i, '\n', n - i);
    len = nl != NULL ? (size_t)(nl - (p + i)) : n - i;
    p += i;
    u += i;
    for (i = 0; i + 1 < len; i++) {
        if (p[i] == ':' && p[i + 1] == ':') return RS_FILE_MOVIELENS_COLON;
    }
    for (i = 0; i < len; i++)
        tabs += p[i] == '\t';
    if (is_letter(u[0]) || u[0] == '"') {
        if (tabs > 0) return RS_FILE_TSV;
        if (memchr(p, ',', len) != NULL) return RS_FILE_CSV;
        return RS_FILE_AUTO;
    }
    if (tabs == 2 || tabs == 3) return RS_FILE_MOVIELENS_TAB;
    return RS_FILE_AUTO;
}

/* Whether buf holds enough to tell the layout: the first non-blank byte when
 * it is '{' or msgpack, else the whole line it starts. */
static int sniff_ready(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i;

    for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n');
         i++) {
    }
    if (i == n) return 0;
    if (u[i] == '{' || (u[i] >= 0x80 && u[i] <= 0x8f) || u[i] == 0xde || u[i] == 0xdf)
        return 1;
    return memchr(p + i, '\n', n - i) != NULL;
}

struct rs_filesrc *rs_filesrc_open(const char *path, enum rs_filesrc_format format,
                                   const struct rs_event_limits *lim, char *errstr,
                                   size_t errstr_size)
{
    struct rs_filesrc *fs = NULL;
    struct stat st;
    const char *line;
    size_t len;
    int r;

    if (path == NULL) {
        set_err(errstr, errstr_size, "%s%s", "", "no input path");
        return NULL;
    }
    fs = calloc(1, sizeof(*fs));
    if (fs == NULL) goto nomem;
    fs->fd = -1;
    fs->cap = BUF_SIZE;
    if (lim != NULL) {
        fs->lim = *lim;
    } else {
        fs->lim.rating_min = -HUGE_VAL;
        fs->lim.rating_max = HUGE_VAL;
    }
    if (fs->lim.max_bytes == 0) fs->lim.max_bytes = RS_EVENT_MAX_BYTES_DEFAULT;
    if (fs->lim.max_bytes > fs->cap / 2) fs->cap = fs->lim.max_bytes * 2;
    fs->buf = malloc(fs->cap);
    if (fs->buf == NULL) goto nomem;

    if (strcmp(path, "-") == 0) {
        fs->fd = STDIN_FILENO;
    } else {
        fs->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fs->fd < 0) {
            set_err(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
            goto fail;
        }
        fs->own_fd = 1;
    }
    if (fstat(fs->fd, &st) == 0 && S_ISREG(st.st_mode))
        fs->bytes_total = (uint64_t)st.st_size;

    if (format == RS_FILE_AUTO && strcmp(path, "-") != 0) format = format_from_name(path);
    if (format == RS_FILE_AUTO) {
        /* read until the first line is whole (or the buffer is full, or EOF) */
        do {
            r = fill(fs);
            if (r < 0) {
                set_err(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
                goto fail;
            }
        } while (r > 0 && fs->end < fs->cap && !sniff_ready(fs->buf, fs->end));
        format = format_from_content(fs->buf, fs->end);
        if (format == RS_FILE_AUTO) {
            set_err(errstr, errstr_size, "%s: %s", path,
                    fs->end == 0 ? "the file is empty, its layout cannot be told"
                                 : "unknown layout (expected MovieLens, CSV/TSV with a "
                                   "header, JSON lines or msgpack)");
            goto fail;
        }
    }
    fs->format = format;
    if (format == RS_FILE_CSV || format == RS_FILE_TSV) {
        fs->sep = format == RS_FILE_CSV ? ',' : '\t';
        do {
            r = next_line(fs, &line, &len);
        } while (r == 1 && is_blank(line, len));
        if (r != 1) {
            set_err(errstr, errstr_size, "%s: %s", path,
                    r < 0    ? strerror(errno)
                    : r == 0 ? "no header line"
                             : "the header line is too long");
            goto fail;
        }
        if (parse_header(fs, line, len, path, errstr, errstr_size) != 0) goto fail;
    }
    return fs;

nomem:
    set_err(errstr, errstr_size, "%s: %s", path, "out of memory");
fail:
    rs_filesrc_close(fs);
    return NULL;
}

static rs_err_t next_msgpack(struct rs_filesrc *fs, struct rs_event *ev,
                             enum rs_event_reason *reason)
{
    size_t size = 0;
    int m;
    int r;

    for (;;) {
        if (fs->dead) return RS_ENOENT;
        m = rs_event_msgpack_size(fs->buf + fs->start, fs->end - fs->start, &size);
        if (m == 1) {
            fs->record++;
            *reason = rs_event_decode_msgpack(fs->buf + fs->start, size, &fs->lim, ev);
            fs->start += size;
            return *reason == RS_REASON_OK ? RS_OK : RS_EPARSE;
        }
        if (m < 0 || (m == 0 && fs->eof && fs->end > fs->start) ||
            (m == 0 && fs->start == 0 && fs->end == fs->cap)) {
            /* not msgpack, truncated at the end, or bigger than the buffer */
            fs->dead = 1;
            fs->record++;
            *reason = m == 0 && !fs->eof ? RS_REASON_TOO_LARGE : RS_REASON_MALFORMED;
            return RS_EPARSE;
        }
        if (fs->eof) return RS_ENOENT;
        r = fill(fs);
        if (r < 0) return RS_EIO;
    }
}

rs_err_t rs_filesrc_next(struct rs_filesrc *fs, struct rs_event *ev,
                         enum rs_event_reason *reason, uint64_t *record)
{
    enum rs_event_reason why = RS_REASON_OK;
    rs_err_t err;
    const char *line;
    size_t len;
    int r;

    if (fs == NULL || ev == NULL) return RS_EINVAL;
    if (fs->format == RS_FILE_MSGPACK) {
        err = next_msgpack(fs, ev, &why);
    } else {
        for (;;) {
            r = next_line(fs, &line, &len);
            if (r < 0) {
                err = RS_EIO;
                break;
            }
            if (r == 0) {
                err = RS_ENOENT;
                break;
            }
            if (r == 2) {
                why = RS_REASON_MALFORMED;
                err = RS_EPARSE;
                break;
            }
            if (len > 0 && line[len - 1] == '\r') len--;
            if (is_blank(line, len)) continue;
            switch (fs->format) {
            case RS_FILE_JSONL:
                why = rs_event_decode_json(line, len, &fs->lim, ev);
                break;
            case RS_FILE_MOVIELENS_TAB:
            case RS_FILE_MOVIELENS_COLON: why = parse_movielens(fs, line, len, ev); break;
            default: why = parse_table(fs, line, len, ev); break;
            }
            err = why == RS_REASON_OK ? RS_OK : RS_EPARSE;
            break;
        }
    }
    if (reason != NULL) *reason = why;
    if (record != NULL) *record = fs->record;
    return err;
}
