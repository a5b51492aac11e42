/*
 * config.c - the operator's configuration. Every key recstream owns is declared
 * once in `opts[]` below (section, key, C type, field, default, bounds, a line of
 * documentation); the defaults, the INI file and `--set` overrides all go through
 * the same code that parses, checks and stores a value, so a default can never
 * escape the bounds a file is held to. Unknown keys in [kafka] are librdkafka
 * properties: they are kept in order with their origin and checked later by the
 * Kafka module.
 *
 * The INI grammar is inih's (ini_parse_stream), fed by read_line(), which counts
 * lines for "file:line: message" errors (Debian's inih does not pass line numbers
 * to the handler) and normalises each line before inih sees it:
 *   - leading blanks are dropped, so an indented line is never an inih
 *     "multi-line continuation" of the previous value;
 *   - a comment starts at `;` or `#` at the start of a line or after a blank,
 *     outside double quotes (Debian's inih strips only ` ;`, and not quote-aware);
 *   - section headers are checked here, so an unknown section is reported at its
 *     header even when it holds no key;
 *   - inih reads into a fixed 200-byte buffer; a longer `key = value` line is
 *     handed to inih as `key =` alone, because the value is always taken from
 *     our own copy of the line (see on_entry()), so long values (broker lists,
 *     sasl.jaas.config) have no length limit.
 * A value wrapped in double quotes loses them (there are no escapes inside);
 * then `${NAME}` is replaced by the environment variable and `$$` by `$`.
 */
#include "recstream/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "recstream/log.h"

enum opt_type {
    OPT_STRING, /* char *; imin is the minimum length */
    OPT_LIST,   /* char ** and a size_t count, comma-separated; imin items at least */
    OPT_INT,    /* int in [imin, imax] */
    OPT_INT64,  /* int64_t in [imin, imax] */
    OPT_UINT32, /* uint32_t in [imin, imax] */
    OPT_UINT64, /* uint64_t, any value */
    OPT_DOUBLE, /* finite double in [dmin, dmax], or (dmin, dmax] when dmin_open */
    OPT_ENUM,   /* an int-sized enum: the index of the value in names[] */
};

struct opt {
    const char *section;
    const char *key;
    enum opt_type type;
    size_t offset;     /* of the field in struct rs_config */
    size_t cnt_offset; /* OPT_LIST: of its item count */
    const char *def;   /* the default, as text: parsed like a value in a file */
    int64_t imin, imax;
    double dmin, dmax;
    bool dmin_open;
    const char *const *names; /* OPT_ENUM: NULL-terminated */
    const char *doc;
};

static const char *const format_names[] = {"json", "msgpack", "zset", NULL};
static const char *const when_full_names[] = {"refuse", "evict", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

_Static_assert(RS_FORMAT_JSON == 0 && RS_FORMAT_MSGPACK == 1 && RS_FORMAT_ZSET == 2,
               "format_names[] follows enum rs_list_format");
_Static_assert(RS_LOG_ERROR == 0 && RS_LOG_WARN == 1 && RS_LOG_INFO == 2 &&
                   RS_LOG_DEBUG == 3,
               "level_names[] follows enum rs_log_level");
_Static_assert(sizeof(enum rs_list_format) == sizeof(int), "enums are stored as int");

/*
 * offsetof(struct rs_config, f), refusing to compile unless f has type T: a
 * comparison of distinct pointer types is a warning, and warnings are errors.
 */
#define FIELD(f, T)                                                                      \
    (offsetof(struct rs_config, f) + 0 * sizeof(&((struct rs_config *)0)->f == (T *)0))

#define STR(s, k, f, def_, minlen, doc_)                                                 \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_STRING, .offset = FIELD(f, char *),          \
        .def = def_, .imin = minlen, .doc = doc_                                         \
    }
#define LIST(s, k, f, cnt, def_, mincnt, doc_)                                           \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_LIST, .offset = FIELD(f, char **),           \
        .cnt_offset = FIELD(cnt, size_t), .def = def_, .imin = mincnt, .doc = doc_       \
    }
#define INT(s, k, f, def_, lo, hi, doc_)                                                 \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_INT, .offset = FIELD(f, int), .def = def_,   \
        .imin = lo, .imax = hi, .doc = doc_                                              \
    }
#define INT64(s, k, f, def_, lo, hi, doc_)                                               \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_INT64, .offset = FIELD(f, int64_t),          \
        .def = def_, .imin = lo, .imax = hi, .doc = doc_                                 \
    }
#define UINT32(s, k, f, def_, lo, hi, doc_)                                              \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_UINT32, .offset = FIELD(f, uint32_t),        \
        .def = def_, .imin = lo, .imax = hi, .doc = doc_                                 \
    }
#define UINT64(s, k, f, def_, doc_)                                                      \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_UINT64, .offset = FIELD(f, uint64_t),        \
        .def = def_, .doc = doc_                                                         \
    }
#define DBL(s, k, f, def_, lo, hi, doc_)                                                 \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_DOUBLE, .offset = FIELD(f, double),          \
        .def = def_, .dmin = lo, .dmax = hi, .doc = doc_                                 \
    }
#define DBL_POS(s, k, f, def_, hi, doc_) /* (0, hi] */                                   \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_DOUBLE, .offset = FIELD(f, double),          \
        .def = def_, .dmin = 0, .dmax = hi, .dmin_open = true, .doc = doc_               \
    }
#define ENUM(s, k, f, def_, names_, doc_)                                                \
    {                                                                                    \
        .section = s, .key = k, .type = OPT_ENUM,                                        \
        .offset = offsetof(struct rs_config, f), .def = def_, .names = names_,           \
        .doc = doc_                                                                      \
    }

static const struct opt opts[] = {
    STR("kafka", "brokers", brokers, "embedded", 1,
        "bootstrap host:port list; \"embedded\" runs the in-process mock cluster"),
    LIST("kafka", "topics", topics, topic_cnt, "recstream-events", 1,
         "comma-separated topics to consume"),
    STR("kafka", "group.id", group_id, "recstream", 1, "consumer group"),
    STR("kafka", "dead_letter_topic", dead_letter_topic, "", 0,
        "topic that receives bad events with the reason; empty: none"),
    INT("kafka", "embedded.partitions", embedded_partitions, "4", 1, 64,
        "partitions per topic on the embedded broker"),
    INT("kafka", "max_pending_lists", max_pending_lists, "200000", 0, 100000000,
        "pause consuming while this many lists wait to be published; resume at half; 0: "
        "never"),
    INT("kafka", "max_pending_dead_letters", max_pending_dead_letters, "10000", 1, 1000000,
        "pause consuming while this many dead letters wait for the broker; resume at half"),

    STR("redis", "host", redis_host, "127.0.0.1", 1, "Redis server host"),
    INT("redis", "port", redis_port, "6379", 1, 65535, "Redis server TCP port"),
    STR("redis", "password", redis_password, "", 0, "AUTH password; empty: no AUTH"),
    INT("redis", "db", redis_db, "0", 0, 15, "database index (SELECT)"),
    STR("redis", "prefix", redis_prefix, "rs:", 0, "prefix of every key written"),
    ENUM("redis", "format", redis_format, "json", format_names,
         "how a list is stored: json, msgpack or zset"),
    INT("redis", "ttl_s", redis_ttl_s, "0", 0, 31536000,
        "expiry of published lists in seconds; 0: none"),
    INT("redis", "publish_interval_ms", publish_interval_ms, "100", 1, 60000,
        "longest wait of a dirty user before its list is written, ms"),

    INT("model", "factors", factors, "64", 1, 1024, "latent factors per user and item"),
    DBL_POS("model", "learning_rate", learning_rate, "0.045", 1, "SGD step size"),
    DBL("model", "regularization", regularization, "0.1", 0, 10, "L2 penalty"),
    DBL("model", "init_std", init_std, "0.05", 0, 10,
        "standard deviation of the random initial factors"),
    DBL("model", "rating_min", rating_min, "1", -1e6, 1e6, "lowest valid rating"),
    DBL("model", "rating_max", rating_max, "5", -1e6, 1e6, "highest valid rating"),
    INT("model", "negatives", negatives, "4", 0, 100,
        "sampled negative items per implicit (play) event"),
    UINT64("model", "seed", seed, "42", "random seed, any unsigned 64-bit number"),
    UINT32("model", "max_users", max_users, "10000000", 1, 2147483648,
           "users kept at most"),
    UINT32("model", "max_items", max_items, "1000000", 1, 2147483648,
           "items kept at most"),
    DBL("model", "replay_ratio", replay_ratio, "0", 0, 100,
        "recent events replayed after each live event; 0: off"),
    UINT32("model", "replay_size", replay_size, "100000", 0, 67108864,
           "recent events kept for replay"),
    DBL("model", "bias_prior", bias_prior, "5", 0, 1000000,
        "ratings: a bias steps at max(learning_rate, 1/(n + bias_prior)) after n ratings; "
        "0: off"),
    DBL("model", "adagrad_rate", adagrad_rate, "0.12", 0, 1,
        "ratings: per-row AdaGrad step of the factors; 0: off (learning_rate)"),
    INT64("model", "idle_user_ttl_s", idle_user_ttl_s, "0", 0, 315360000,
          "users without events for this long (event time) are evicted; 0: never"),
    ENUM("model", "when_full", evict_when_full, "evict", when_full_names,
         "a new user at max_users: evict the least recently seen (evict) or drop the event (refuse)"),

    INT("neighbors", "k", neighbors_k, "20", 1, 1000, "similar items kept per item"),
    INT("neighbors", "window", neighbors_window, "20", 1, 1000,
        "recent items per user that co-occur with a new one"),
    DBL_POS("neighbors", "half_life_s", neighbors_half_life_s, "315360000", HUGE_VAL,
            "half-life of co-occurrence weights, seconds"),
    DBL("neighbors", "shrink", neighbors_shrink, "2", 0, 1000000,
        "support shrinkage: similarities are scaled by c / (c + shrink), c the co-occurrences"),
    DBL("neighbors", "backward_weight", neighbors_backward_weight, "0.25", 0, 1,
        "weight of a pair in the later item's row (1 in the earlier one's); "
        "1 with gap_decay 0: symmetric"),
    DBL("neighbors", "gap_decay", neighbors_gap_decay, "0.1", 0, 0.99,
        "each step between two items of a user's recent history scales their pair "
        "by 1 - gap_decay; 0: every pair in the window counts alike"),

    DBL_POS("popularity", "half_life_s", popularity_half_life_s, "604800", HUGE_VAL,
            "half-life of popularity (trending) weights, seconds"),

    INT("ranking", "top_n", top_n, "20", 1, 1000, "items in each published list"),
    DBL("ranking", "mf_weight", mf_weight, "0.02", 0, 1000,
        "weight of the matrix-factorisation score"),
    DBL("ranking", "neighbor_weight", neighbor_weight, "1.0", 0, 1000,
        "weight of the item-neighbour score"),
    DBL("ranking", "popularity_weight", popularity_weight, "0.025", 0, 1000,
        "weight of the popularity score"),
    DBL("ranking", "recency_decay", recency_decay, "0.1", 0, 0.99,
        "each step back in a user's recent items scales that item's neighbour "
        "similarities by 1 - recency_decay; 0: all recent items count alike"),
    INT("ranking", "neighbor_list_max_age_ms", neighbor_list_max_age_ms, "250", 0, 60000,
        "a cached top-k neighbour list is reused for up to this long after the "
        "neighbours changed, ms; 0: exact (recomputed after any change)"),
    INT64("ranking", "neighbor_list_max_events", neighbor_list_max_events, "0", 0, INT64_MAX,
          "and for at most this many events; 0: no bound in events"),

    STR("snapshot", "dir", snapshot_dir, "./snapshots", 1, "directory of snapshots"),
    INT("snapshot", "interval_s", snapshot_interval_s, "60", 0, 86400,
        "seconds between snapshots; 0: not by time"),
    INT64("snapshot", "every_events", snapshot_every_events, "0", 0, INT64_MAX,
          "messages consumed between snapshots; 0: not by count"),
    INT("snapshot", "keep", snapshot_keep, "3", 1, 1000, "snapshots kept on disk"),

    STR("metrics", "listen", metrics_listen, "127.0.0.1:9464", 0,
        "host:port of the HTTP metrics endpoint; empty: off"),

    ENUM("log", "level", log_level, "info", level_names,
         "most verbose level logged: error, warn, info or debug"),
};

#define OPT_CNT (sizeof(opts) / sizeof(opts[0]))

/*
 * Where the values being applied come from, and where the first error goes.
 * Messages are "path:line: msg" for a file, "--set assignment: msg" for an
 * override, and bare for rs_config_check().
 */
struct ctx {
    const char *path;   /* file being read, or NULL */
    const char *set;    /* the --set assignment, or NULL */
    int line;           /* current line of path */
    int lines[OPT_CNT]; /* line of path that last set each option (0: none) */
    char *errstr;
    size_t errstr_size;
    rs_err_t err; /* first error, RS_OK until then */
    int err_line;
};

/* State of one rs_config_load(). */
struct parse {
    struct ctx c;
    struct rs_config *conf;
    FILE *fp;
    char *buf; /* the current line as read */
    size_t buf_cap;
    char *text; /* the current line, normalised, inside buf */
};

static rs_err_t fail(struct ctx *c, int line, rs_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static rs_err_t fail(struct ctx *c, int line, rs_err_t err, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    c->err = err;
    c->err_line = line;
    if (!c->errstr || c->errstr_size == 0) return err;
    if (c->set)
        n = snprintf(c->errstr, c->errstr_size, "--set %s: ", c->set);
    else if (c->path && line > 0)
        n = snprintf(c->errstr, c->errstr_size, "%s:%d: ", c->path, line);
    else if (c->path)
        n = snprintf(c->errstr, c->errstr_size, "%s: ", c->path);
    if (n < 0 || (size_t)n >= c->errstr_size) return err;
    va_start(ap, fmt);
    vsnprintf(c->errstr + n, c->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    return err;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' ||
           ch == '\f';
}

static const char *skip_blanks(const char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

static void rstrip(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        s[--len] = '\0';
}

static bool section_known(const char *section, size_t len)
{
    for (size_t i = 0; i < OPT_CNT; i++)
        if (strlen(opts[i].section) == len && memcmp(opts[i].section, section, len) == 0)
            return true;
    return false;
}

static const struct opt *find_opt(const char *section, const char *key)
{
    for (size_t i = 0; i < OPT_CNT; i++)
        if (strcmp(opts[i].section, section) == 0 && strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

/* Edit distance between a and b, or a large number when either is long. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];

    if (la > 64 || lb > 64) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The key of section closest to a misspelt key, if one is two edits away or less. */
static const struct opt *suggest(const char *section, const char *key)
{
    const struct opt *best = NULL;
    size_t best_d = 3;

    for (size_t i = 0; i < OPT_CNT; i++) {
        size_t d;
        if (strcmp(opts[i].section, section) != 0) continue;
        d = distance(opts[i].key, key);
        if (d < best_d) {
            best = &opts[i];
            best_d = d;
        }
    }
    return best;
}

static const struct opt *opt_at(size_t offset)
{
    for (size_t i = 0; i < OPT_CNT; i++)
        if (opts[i].offset == offset) return &opts[i];
    return NULL;
}

/* A growable string for expanding values. */
struct buf {
    char *p;
    size_t len, cap;
};

static bool buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

/*
 * The value of text as stored: outer double quotes removed, `${NAME}` replaced
 * from the environment, `$$` turned into `$`. *out is a heap string.
 */
static rs_err_t expand(struct ctx *c, const char *text, char **out)
{
    struct buf b = {NULL, 0, 0};
    size_t len = strlen(text), i = 0;
    rs_err_t err = RS_OK;

    if (len > 0 && text[0] == '"') {
        if (len < 2 || text[len - 1] != '"') {
            err = fail(c, c->line, RS_EPARSE, "unterminated double quote in %s", text);
            goto out;
        }
        text++;
        len -= 2;
    }
    if (!buf_add(&b, "", 0)) goto nomem;
    while (i < len) {
        const char *dollar = memchr(text + i, '$', len - i);
        size_t plain = dollar ? (size_t)(dollar - (text + i)) : len - i;

        if (!buf_add(&b, text + i, plain)) goto nomem;
        i += plain;
        if (i >= len) break;
        if (i + 1 < len && text[i + 1] == '$') {
            if (!buf_add(&b, "$", 1)) goto nomem;
            i += 2;
        } else if (i + 1 < len && text[i + 1] == '{') {
            const char *name = text + i + 2;
            const char *close = memchr(name, '}', len - (i + 2));
            char var[128];
            size_t nlen;
            const char *env;

            if (!close) {
                err = fail(c, c->line, RS_EPARSE, "unterminated ${ in %.*s", (int)len,
                           text);
                goto out;
            }
            nlen = (size_t)(close - name);
            if (nlen == 0 || nlen >= sizeof(var) ||
                strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789_") < nlen ||
                (name[0] >= '0' && name[0] <= '9')) {
                err = fail(c, c->line, RS_EPARSE, "bad environment variable name ${%.*s}",
                           (int)nlen, name);
                goto out;
            }
            memcpy(var, name, nlen);
            var[nlen] = '\0';
            env = getenv(var);
            if (!env) {
                err = fail(c, c->line, RS_EINVAL, "environment variable %s is not set",
                           var);
                goto out;
            }
            if (!buf_add(&b, env, strlen(env))) goto nomem;
            i += nlen + 3;
        } else {
            if (!buf_add(&b, "$", 1)) goto nomem; /* a lone $ is itself */
            i++;
        }
    }
    *out = b.p;
    b.p = NULL;
    goto out;
nomem:
    err = fail(c, c->line, RS_ENOMEM, "out of memory");
out:
    free(b.p);
    return err;
}

static rs_err_t parse_i64(struct ctx *c, const struct opt *o, const char *s, int64_t *v)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (end == s) return fail(c, c->line, RS_EPARSE, "'%s' is not a number", s);
    if (*end)
        return fail(c, c->line, RS_EPARSE, "'%s' is not a number (trailing garbage '%s')",
                    s, end);
    if (errno == ERANGE || n < o->imin || n > o->imax)
        return fail(c, c->line, RS_EINVAL, "value %s out of range [%lld, %lld]", s,
                    (long long)o->imin, (long long)o->imax);
    *v = n;
    return RS_OK;
}

static rs_err_t parse_u64(struct ctx *c, const char *s, uint64_t *v)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(s, &end, 10);
    if (end == s) return fail(c, c->line, RS_EPARSE, "'%s' is not a number", s);
    if (*end)
        return fail(c, c->line, RS_EPARSE, "'%s' is not a number (trailing garbage '%s')",
                    s, end);
    if (errno == ERANGE || strchr(s, '-'))
        return fail(c, c->line, RS_EINVAL, "value %s out of range [0, %llu]", s,
                    (unsigned long long)UINT64_MAX);
    *v = n;
    return RS_OK;
}

static rs_err_t parse_double(struct ctx *c, const struct opt *o, const char *s, double *v)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (end == s) return fail(c, c->line, RS_EPARSE, "'%s' is not a number", s);
    if (*end)
        return fail(c, c->line, RS_EPARSE, "'%s' is not a number (trailing garbage '%s')",
                    s, end);
    if (!isfinite(d) && errno != ERANGE) /* "nan", "inf", not an overflow */
        return fail(c, c->line, RS_EPARSE, "'%s' is not a finite number", s);
    if (errno == ERANGE || d < o->dmin || (o->dmin_open && d == o->dmin) || d > o->dmax)
        return fail(c, c->line, RS_EINVAL, "value %s out of range %c%g, %g]", s,
                    o->dmin_open ? '(' : '[', o->dmin, o->dmax);
    *v = d;
    return RS_OK;
}

static void free_list(char **items, size_t cnt)
{
    if (!items) return;
    for (size_t i = 0; i < cnt; i++)
        free(items[i]);
    free(items);
}

/* Splits "a, b,c" into trimmed, non-empty, distinct items. */
static rs_err_t parse_list(struct ctx *c, const struct opt *o, const char *s, char ***out,
                           size_t *out_cnt)
{
    char **items = NULL;
    size_t cnt = 0;
    rs_err_t err = RS_OK;
    const char *p = skip_blanks(s);

    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char **grown;
        char *item;

        while (n > 0 && is_blank(p[n - 1]))
            n--;
        if (n == 0) {
            err = fail(c, c->line, RS_EINVAL, "empty item in list '%s'", s);
            goto out;
        }
        for (size_t i = 0; i < cnt; i++) {
            if (strlen(items[i]) == n && memcmp(items[i], p, n) == 0) {
                err = fail(c, c->line, RS_EINVAL, "'%.*s' is listed twice", (int)n, p);
                goto out;
            }
        }
        grown = realloc(items, (cnt + 1) * sizeof(*items));
        if (!grown) goto nomem;
        items = grown;
        item = strndup(p, n);
        if (!item) goto nomem;
        items[cnt++] = item;
        if (!comma) break;
        p = skip_blanks(comma + 1);
        if (!*p) {
            err = fail(c, c->line, RS_EINVAL, "empty item in list '%s'", s);
            goto out;
        }
    }
    if (cnt < (size_t)o->imin) {
        err = fail(c, c->line, RS_EINVAL, "%s is empty: at least %lld item%s needed",
                   o->key, (long long)o->imin, o->imin == 1 ? " is" : "s are");
        goto out;
    }
    *out = items;
    *out_cnt = cnt;
    items = NULL;
    cnt = 0;
    goto out;
nomem:
    err = fail(c, c->line, RS_ENOMEM, "out of memory");
out:
    free_list(items, cnt);
    return err;
}

/* Parses value as o's type, checks its bounds and stores it in conf. */
static rs_err_t set_opt(struct rs_config *conf, struct ctx *c, const struct opt *o,
                        const char *value)
{
    void *field = (char *)conf + o->offset;
    int64_t i64 = 0;
    uint64_t u64 = 0;
    double d = 0;
    rs_err_t err = RS_OK;

    switch (o->type) {
    case OPT_STRING: {
        char *copy;
        if (strlen(value) < (size_t)o->imin)
            return fail(c, c->line, RS_EINVAL, "%s must not be empty", o->key);
        copy = strdup(value);
        if (!copy) return fail(c, c->line, RS_ENOMEM, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        break;
    }
    case OPT_LIST: {
        char **items = NULL;
        size_t cnt = 0;
        size_t *old_cnt = (size_t *)((char *)conf + o->cnt_offset);
        err = parse_list(c, o, value, &items, &cnt);
        if (err) return err;
        free_list(*(char ***)field, *old_cnt);
        *(char ***)field = items;
        *old_cnt = cnt;
        break;
    }
    case OPT_INT:
        err = parse_i64(c, o, value, &i64);
        if (!err) *(int *)field = (int)i64;
        break;
    case OPT_INT64:
        err = parse_i64(c, o, value, &i64);
        if (!err) *(int64_t *)field = i64;
        break;
    case OPT_UINT32:
        err = parse_i64(c, o, value, &i64);
        if (!err) *(uint32_t *)field = (uint32_t)i64;
        break;
    case OPT_UINT64:
        err = parse_u64(c, value, &u64);
        if (!err) *(uint64_t *)field = u64;
        break;
    case OPT_DOUBLE:
        err = parse_double(c, o, value, &d);
        if (!err) *(double *)field = d;
        break;
    case OPT_ENUM: {
        char expected[128] = "";
        for (int i = 0; o->names[i]; i++) {
            if (strcasecmp(value, o->names[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return RS_OK;
            }
            if (i > 0) strncat(expected, "|", sizeof(expected) - strlen(expected) - 1);
            strncat(expected, o->names[i], sizeof(expected) - strlen(expected) - 1);
        }
        return fail(c, c->line, RS_EINVAL, "bad value '%s' for %s (expected %s)", value,
                    o->key, expected);
    }
    }
    return err;
}

/* Adds or replaces the librdkafka pass-through property key. */
static rs_err_t set_prop(struct rs_config *conf, struct ctx *c, const char *key,
                         const char *value)
{
    struct rs_config_prop *prop;
    char *k = NULL, *v = NULL, *origin = NULL;
    rs_err_t err = RS_OK;
    size_t i = 0;
    int n;

    while (i < conf->kafka_prop_cnt && strcmp(conf->kafka_props[i].key, key) != 0)
        i++;
    v = strdup(value);
    if (c->set) {
        origin = strdup("--set");
    } else {
        n = snprintf(NULL, 0, "%s:%d", c->path, c->line);
        origin = n < 0 ? NULL : malloc((size_t)n + 1);
        if (origin) snprintf(origin, (size_t)n + 1, "%s:%d", c->path, c->line);
    }
    if (!v || !origin) goto nomem;
    if (i == conf->kafka_prop_cnt) {
        prop = realloc(conf->kafka_props, (i + 1) * sizeof(*prop));
        if (!prop) goto nomem;
        conf->kafka_props = prop;
        k = strdup(key);
        if (!k) goto nomem;
        prop[i].key = k;
        prop[i].value = prop[i].origin = NULL;
        conf->kafka_prop_cnt++;
        k = NULL;
    }
    prop = &conf->kafka_props[i];
    free(prop->value);
    free(prop->origin);
    prop->value = v;
    prop->origin = origin;
    v = origin = NULL;
    goto out;
nomem:
    err = fail(c, c->line, RS_ENOMEM, "out of memory");
out:
    free(k);
    free(v);
    free(origin);
    return err;
}

/* Applies "section.key = text" from a file or --set. */
static rs_err_t apply(struct rs_config *conf, struct ctx *c, const char *section,
                      const char *key, const char *text)
{
    const struct opt *o = NULL;
    char *value = NULL;
    rs_err_t err;

    if (!section[0]) {
        err = fail(c, c->line, RS_EPARSE, "key '%s' is outside any [section]", key);
        goto out;
    }
    if (!section_known(section, strlen(section))) {
        err = fail(c, c->line, RS_EINVAL, "unknown section [%s]", section);
        goto out;
    }
    if (!key[0]) {
        err = fail(c, c->line, RS_EPARSE, "missing key name");
        goto out;
    }
    o = find_opt(section, key);
    if (!o && strcmp(section, "kafka") != 0) {
        const struct opt *near = suggest(section, key);
        if (near)
            err = fail(c, c->line, RS_EINVAL,
                       "unknown key '%s' in section [%s]; did you mean '%s' (%s)?", key,
                       section, near->key, near->doc);
        else
            err = fail(c, c->line, RS_EINVAL, "unknown key '%s' in section [%s]", key,
                       section);
        goto out;
    }
    err = expand(c, text, &value);
    if (err) goto out;
    if (o) {
        err = set_opt(conf, c, o, value);
        if (!err) c->lines[o - opts] = c->line;
    } else {
        err = set_prop(conf, c, key, value);
    }
out:
    free(value);
    return err;
}

/* The last line of path that set one of the fields at offs[] (0: none did). */
static int line_of(const struct ctx *c, const size_t *offs, size_t n)
{
    int line = 0;
    for (size_t i = 0; i < n; i++) {
        const struct opt *o = opt_at(offs[i]);
        if (o && c->lines[o - opts] > line) line = c->lines[o - opts];
    }
    return line;
}

#define LINE_OF(c, ...)                                                                  \
    line_of(c, (const size_t[]){__VA_ARGS__},                                            \
            sizeof((const size_t[]){__VA_ARGS__}) / sizeof(size_t))
#define OFF(f) offsetof(struct rs_config, f)

/* Rules that involve more than one key, or more than a key's bounds. */
static rs_err_t check(const struct rs_config *conf, struct ctx *c)
{
    if (!(conf->rating_min < conf->rating_max))
        return fail(c, LINE_OF(c, OFF(rating_min), OFF(rating_max)), RS_EINVAL,
                    "[model] rating_min (%g) must be less than rating_max (%g)",
                    conf->rating_min, conf->rating_max);
    if (conf->topic_cnt == 0)
        return fail(c, LINE_OF(c, OFF(topics)), RS_EINVAL, "[kafka] topics is empty");
    for (size_t i = 0; i < conf->topic_cnt; i++)
        if (strcmp(conf->dead_letter_topic, conf->topics[i]) == 0)
            return fail(c, LINE_OF(c, OFF(dead_letter_topic), OFF(topics)), RS_EINVAL,
                        "[kafka] dead_letter_topic '%s' is also in topics: bad events "
                        "would be consumed again",
                        conf->dead_letter_topic);
    if (conf->mf_weight + conf->neighbor_weight + conf->popularity_weight <= 0)
        return fail(
            c, LINE_OF(c, OFF(mf_weight), OFF(neighbor_weight), OFF(popularity_weight)),
            RS_EINVAL,
            "[ranking] mf_weight, neighbor_weight and popularity_weight are all 0: "
            "nothing to rank by");
    if (conf->metrics_listen[0]) {
        const char *colon = strrchr(conf->metrics_listen, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || end == colon + 1 || *end || port < 1 || port > 65535)
            return fail(c, LINE_OF(c, OFF(metrics_listen)), RS_EINVAL,
                        "[metrics] listen '%s' is not host:port (port 1..65535)",
                        conf->metrics_listen);
    }
    return RS_OK;
}

/*
 * The ini_reader: one line per call, counted, normalised (see the top of the
 * file) and checked for an unknown section header. NULL ends the parse: at the
 * end of the file, or after an error, which is then recorded in p->c.
 */
static char *read_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    ssize_t n;
    char *line;
    bool quoted = false;
    size_t len;

    if (p->c.err || num < 3) return NULL;
    errno = 0;
    n = getline(&p->buf, &p->buf_cap, p->fp);
    if (n < 0) {
        if (ferror(p->fp))
            fail(&p->c, p->c.line + 1, RS_EIO, "read error: %s", strerror(errno));
        return NULL;
    }
    p->c.line++;
    if (strlen(p->buf) != (size_t)n) {
        fail(&p->c, p->c.line, RS_EPARSE, "line contains a NUL byte");
        return NULL;
    }
    line = p->buf;
    if (p->c.line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* UTF-8 BOM */
    line = (char *)skip_blanks(line);
    for (char *s = line; *s; s++) {
        if (*s == '"') quoted = !quoted;
        if (!quoted && (*s == ';' || *s == '#') && (s == line || is_blank(s[-1]))) {
            *s = '\0';
            break;
        }
    }
    rstrip(line);
    p->text = line;

    if (line[0] == '[') {
        char *close = strchr(line, ']');
        if (close && !section_known(line + 1, (size_t)(close - line - 1))) {
            fail(&p->c, p->c.line, RS_EINVAL, "unknown section %.*s",
                 (int)(close - line + 1), line);
            return NULL;
        }
        if (close && close[1]) {
            fail(&p->c, p->c.line, RS_EPARSE, "unexpected text after %.*s",
                 (int)(close - line + 1), line);
            return NULL;
        }
    }

    len = strlen(line);
    if (len + 2 > (size_t)num) {
        /* inih only needs the key: on_entry() reads the value from p->text. */
        char *sep = strpbrk(line, "=:");
        if (line[0] == '[' || !sep || (size_t)(sep - line) + 3 > (size_t)num) {
            fail(&p->c, p->c.line, RS_EPARSE, "line too long");
            return NULL;
        }
        len = (size_t)(sep - line) + 1;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* The ini_handler: applies one key of the line read_line() just returned. */
static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    const char *sep = strpbrk(p->text, "=:");

    (void)value; /* possibly cut short by inih: see read_line() */
    if (p->c.err) return 0;
    return apply(p->conf, &p->c, section, name, sep ? skip_blanks(sep + 1) : "") == RS_OK;
}

struct rs_config *rs_config_create(void)
{
    struct rs_config *conf = calloc(1, sizeof(*conf));
    struct ctx c = {0};

    if (!conf) return NULL;
    for (size_t i = 0; i < OPT_CNT; i++) {
        if (set_opt(conf, &c, &opts[i], opts[i].def) != RS_OK) {
            rs_config_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

void rs_config_destroy(struct rs_config *conf)
{
    if (!conf) return;
    for (size_t i = 0; i < OPT_CNT; i++) {
        void *field = (char *)conf + opts[i].offset;
        if (opts[i].type == OPT_STRING)
            free(*(char **)field);
        else if (opts[i].type == OPT_LIST)
            free_list(*(char ***)field, *(size_t *)((char *)conf + opts[i].cnt_offset));
    }
    for (size_t i = 0; i < conf->kafka_prop_cnt; i++) {
        free(conf->kafka_props[i].key);
        free(conf->kafka_props[i].value);
        free(conf->kafka_props[i].origin);
    }
    free(conf->kafka_props);
    free(conf->path);
    free(conf);
}

rs_err_t rs_config_load(struct rs_config *conf, const char *path, char *errstr,
                        size_t errstr_size)
{
    struct parse p = {.conf = conf};
    char *copy = NULL;
    int ret;

    p.c.path = path;
    p.c.errstr = errstr;
    p.c.errstr_size = errstr_size;
    p.fp = fopen(path, "r");
    if (!p.fp) {
        fail(&p.c, 0, RS_EIO, "cannot open: %s", strerror(errno));
        goto out;
    }
    ret = ini_parse_stream(read_line, &p, on_entry, &p);
    if (ret > 0 && (!p.c.err || ret < p.c.err_line)) {
        /* inih refused the line: not blank, a comment, [section] or key = value */
        fail(&p.c, ret, RS_EPARSE, "syntax error: expected [section] or key = value");
        goto out;
    }
    if (ret < 0 && !p.c.err) {
        fail(&p.c, 0, RS_ENOMEM, "out of memory");
        goto out;
    }
    if (p.c.err) goto out;
    copy = strdup(path);
    if (!copy) {
        fail(&p.c, 0, RS_ENOMEM, "out of memory");
        goto out;
    }
    free(conf->path);
    conf->path = copy;
    check(conf, &p.c);
out:
    if (p.fp) fclose(p.fp);
    free(p.buf);
    return p.c.err;
}

rs_err_t rs_config_set(struct rs_config *conf, const char *assignment, char *errstr,
                       size_t errstr_size)
{
    struct ctx c = {.set = assignment, .errstr = errstr, .errstr_size = errstr_size};
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    char *section = NULL, *key = NULL, *value = NULL;

    if (!dot) {
        fail(&c, 0, RS_EPARSE, "expected section.key=value");
        goto out;
    }
    section = strndup(assignment, (size_t)(dot - assignment));
    key = strndup(dot + 1, (size_t)(eq - dot - 1));
    value = strdup(skip_blanks(eq + 1));
    if (!section || !key || !value) {
        fail(&c, 0, RS_ENOMEM, "out of memory");
        goto out;
    }
    rstrip(section);
    rstrip(key);
    rstrip(value);
    apply(conf, &c, skip_blanks(section), skip_blanks(key), value);
out:
    free(section);
    free(key);
    free(value);
    return c.err;
}

rs_err_t rs_config_check(const struct rs_config *conf, char *errstr, size_t errstr_size)
{
    struct ctx c = {.errstr = errstr, .errstr_size = errstr_size};
    return check(conf, &c);
}

const char *rs_config_format_name(enum rs_list_format format)
{
    if ((unsigned)format < sizeof(format_names) / sizeof(format_names[0]) - 1)
        return format_names[format];
    return "unknown";
}

/* Writes the value of o in conf as text, for comparing and reporting. */
static void format_value(const struct rs_config *conf, const struct opt *o, char *out,
                         size_t size)
{
    const void *field = (const char *)conf + o->offset;
    size_t len = 0;

    out[0] = '\0';
    switch (o->type) {
    case OPT_STRING: snprintf(out, size, "%s", *(char *const *)field ? *(char *const *)field : ""); break;
    case OPT_LIST: {
        char *const *items = *(char *const *const *)field;
        size_t cnt = *(const size_t *)((const char *)conf + o->cnt_offset);
        for (size_t j = 0; j < cnt && len < size; j++)
            len += (size_t)snprintf(out + len, size - len, "%s%s", j ? "," : "", items[j]);
        break;
    }
    case OPT_INT: snprintf(out, size, "%d", *(const int *)field); break;
    case OPT_INT64: snprintf(out, size, "%lld", (long long)*(const int64_t *)field); break;
    case OPT_UINT32: snprintf(out, size, "%u", *(const uint32_t *)field); break;
    case OPT_UINT64: snprintf(out, size, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case OPT_DOUBLE: snprintf(out, size, "%.17g", *(const double *)field); break;
    case OPT_ENUM: snprintf(out, size, "%s", o->names[*(const int *)field]); break;
    }
}

/* Copies one live setting; returns 1 if it changed. */
#define LIVE(field)                                                                   \
    (running->field != fresh->field ? (running->field = fresh->field, 1) : 0)

int rs_config_apply_live(struct rs_config *running, const struct rs_config *fresh)
{
    int changed = LIVE(mf_weight) + LIVE(neighbor_weight) + LIVE(popularity_weight) +
                  LIVE(recency_decay) + LIVE(log_level) + LIVE(publish_interval_ms);
    struct rs_config probe = *fresh;

    /* Whatever still differs once the live keys agree needs a restart. */
    probe.mf_weight = running->mf_weight;
    probe.neighbor_weight = running->neighbor_weight;
    probe.popularity_weight = running->popularity_weight;
    probe.recency_decay = running->recency_decay;
    probe.log_level = running->log_level;
    probe.publish_interval_ms = running->publish_interval_ms;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const struct opt *o = &opts[i];
        char a[512], b[512];
        format_value(running, o, a, sizeof(a));
        format_value(&probe, o, b, sizeof(b));
        if (strcmp(a, b) != 0)
            rs_warn("config reload: [%s] %s changed (%s -> %s); it takes effect on restart",
                    o->section, o->key, a, b);
    }
    return changed;
}
