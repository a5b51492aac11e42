/*
 * test_filesrc.c - the file source on small files written to a temporary
 * directory, one per layout, with bad records in the middle (reported with
 * their line or record number, then skipped), CRLF, blank lines, a missing
 * final newline, over-long lines, stdin through a pipe, and buffer refills.
 * When RS_TEST_DATA names the shared data folder, the real MovieLens and
 * Last.fm files are read end to end; otherwise those tests skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recstream/filesrc.h"

static char tmpdir[64];
static const struct rs_event_limits lim = {1.0, 5.0, 4096};
static const struct rs_event_limits half_lim = {0.5, 5.0, 4096};

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/rs_filesrc_XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    DIR *d;
    struct dirent *de;
    char path[512];
    (void)state;
    d = opendir(tmpdir);
    if (d == NULL) return -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(tmpdir);
}

/* Writes len bytes to tmpdir/name; returns the path in a static buffer. */
static const char *write_bytes(const char *name, const void *data, size_t len)
{
    static char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

/* What reading a whole source gave. */
struct result {
    size_t good;
    size_t bad;
    struct rs_event ev[16];       /* the first good events */
    enum rs_event_reason why[16]; /* the first bad records... */
    uint64_t line[16];            /* ...and their numbers */
};

static void read_all(struct rs_filesrc *fs, struct result *res)
{
    struct rs_event ev;
    enum rs_event_reason why;
    uint64_t rec;
    rs_err_t err;

    memset(res, 0, sizeof(*res));
    while ((err = rs_filesrc_next(fs, &ev, &why, &rec)) != RS_ENOENT) {
        if (err == RS_OK) {
            assert_int_equal(why, RS_REASON_OK);
            if (res->good < 16) res->ev[res->good] = ev;
            res->good++;
        } else {
            assert_int_equal(err, RS_EPARSE);
            assert_int_not_equal(why, RS_REASON_OK);
            if (res->bad < 16) {
                res->why[res->bad] = why;
                res->line[res->bad] = rec;
            }
            res->bad++;
        }
    }
    /* the end stays the end */
    assert_int_equal(rs_filesrc_next(fs, &ev, &why, &rec), RS_ENOENT);
}

static struct rs_filesrc *open_ok(const char *path, enum rs_filesrc_format format,
                                  const struct rs_event_limits *l)
{
    char err[256] = "";
    struct rs_filesrc *fs = rs_filesrc_open(path, format, l, err, sizeof(err));
    if (fs == NULL) fail_msg("open %s: %s", path, err);
    return fs;
}

static void assert_event(const struct rs_event *ev, enum rs_event_type type,
                         const char *user, const char *item, float value, int64_t ts)
{
    assert_int_equal(ev->type, type);
    assert_string_equal(ev->user, user);
    assert_int_equal(ev->user_len, strlen(user));
    assert_string_equal(ev->item, item);
    assert_int_equal(ev->item_len, strlen(item));
    assert_true(ev->value == value);
    assert_true(ev->ts_ms == ts);
}

/* ---- MovieLens ---- */

static void test_reads_movielens_tab_with_a_bad_line(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("u.data", "196\t242\t3\t881250949\r\n"
                                      "186\t302\tthree\t891717742\r\n"
                                      "\r\n"
                                      "22\t377\t1\t878887116\n"
                                      "7\t8\n"
                                      "244\t51\t9\t880606923\n"
                                      "166\t346\t1\t886397596"),
                 RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_TAB);
    read_all(fs, &res);
    assert_int_equal(res.good, 3);
    assert_event(&res.ev[0], RS_EVENT_RATE, "196", "242", 3.0f, 881250949000LL);
    assert_event(&res.ev[1], RS_EVENT_RATE, "22", "377", 1.0f, 878887116000LL);
    assert_event(&res.ev[2], RS_EVENT_RATE, "166", "346", 1.0f, 886397596000LL);
    assert_int_equal(res.bad, 3);
    assert_int_equal(res.why[0], RS_REASON_BAD_VALUE);
    assert_int_equal(res.line[0], 2);
    assert_int_equal(res.why[1], RS_REASON_MALFORMED);
    assert_int_equal(res.line[1], 5);
    assert_int_equal(res.why[2], RS_REASON_OFF_SCALE);
    assert_int_equal(res.line[2], 6);
    rs_filesrc_close(fs);
}

static void test_reads_movielens_colon_with_a_bad_line(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("ratings.dat", "1::1193::5::978300760\n"
                                           "1::661::7::978302109\n"
                                           "1::914::3::-5\n"
                                           "2::::3::978301968\n"
                                           "3::914::3::978301968\n"),
                 RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_COLON);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[0], RS_EVENT_RATE, "1", "1193", 5.0f, 978300760000LL);
    assert_event(&res.ev[1], RS_EVENT_RATE, "3", "914", 3.0f, 978301968000LL);
    assert_int_equal(res.bad, 3);
    assert_int_equal(res.why[0], RS_REASON_OFF_SCALE);
    assert_int_equal(res.line[0], 2);
    assert_int_equal(res.why[1], RS_REASON_BAD_TS);
    assert_int_equal(res.line[1], 3);
    assert_int_equal(res.why[2], RS_REASON_MISSING_ITEM);
    assert_int_equal(res.line[2], 4);
    rs_filesrc_close(fs);
}

static void test_detects_movielens_layouts_by_content(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("events.txt", "\n5::6::4::100\n"), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_COLON);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_event(&res.ev[0], RS_EVENT_RATE, "5", "6", 4.0f, 100000);
    rs_filesrc_close(fs);

    fs = open_ok(write_text("events.log", "5\t6\t4\t100\n5\t7\t2\n"), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_TAB);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[1], RS_EVENT_RATE, "5", "7", 2.0f, 0);
    rs_filesrc_close(fs);
}

/* ---- CSV / TSV ---- */

static void test_reads_movielens_csv(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("ratings.csv", "userId,movieId,rating,timestamp\n"
                                           "1,1,4.0,964982703\n"
                                           "1,3,0.5,964981247\n"),
                 RS_FILE_AUTO, &half_lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_CSV);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[0], RS_EVENT_RATE, "1", "1", 4.0f, 964982703000LL);
    assert_event(&res.ev[1], RS_EVENT_RATE, "1", "3", 0.5f, 964981247000LL);
    rs_filesrc_close(fs);
}

static void test_csv_columns_in_any_order_and_case(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("e.csv", "Timestamp,ITEM_ID,Type,extra,User,VALUE\n"
                                     "1700000000123,song,play,x,alice,30\n"
                                     "17,,forget,x,bob,\n"
                                     "0,film,rate,x,carol,2.5\n"),
                 RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 3);
    /* 1700000000123 >= 1e11: already ms; 17 < 1e11: seconds */
    assert_event(&res.ev[0], RS_EVENT_PLAY, "alice", "song", 30.0f, 1700000000123LL);
    assert_event(&res.ev[1], RS_EVENT_FORGET, "bob", "", 0.0f, 17000);
    assert_event(&res.ev[2], RS_EVENT_RATE, "carol", "film", 2.5f, 0);
    rs_filesrc_close(fs);
}

static void test_csv_weight_column_means_play(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("plays.csv", "user_id,artistID,weight\n2,51,13883\n2,52,0\n"),
                 RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "2", "51", 13883.0f, 0);
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_OFF_SCALE);
    assert_int_equal(res.line[0], 3);
    rs_filesrc_close(fs);
}

static void test_csv_without_value_column_plays_weigh_one(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("p.csv", "user,item\nu1,i1\n"), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "u1", "i1", 1.0f, 0);
    rs_filesrc_close(fs);
}

static void test_csv_strips_quotes_and_spaces(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("q.csv", "\"user\",\"item\",\"rating\"\n"
                                     "\"u 1\", \"a,b\" , 4\n"
                                     "\"unclosed,x,3\n"),
                 RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_event(&res.ev[0], RS_EVENT_RATE, "u 1", "a,b", 4.0f, 0);
    /* an unclosed quote takes the rest of the line: too few fields */
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_MALFORMED);
    rs_filesrc_close(fs);
}

static void test_csv_bad_rows_are_reported_and_skipped(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    char text[2048];
    char longid[300];
    (void)state;
    memset(longid, 'k', 257);
    longid[257] = '\0';
    snprintf(text, sizeof(text),
             "user,item,type,value,ts\n"
             "u,i,play,2,5\n"    /* 2: good */
             "u,i\n"             /* 3: too few fields */
             "u,i,play,2,soon\n" /* 4: bad ts */
             "u,i,play,lots,5\n" /* 5: bad value */
             "u,i,click,2,5\n"   /* 6: bad type */
             ",i,play,2,5\n"     /* 7: no user */
             "u,i,,2,5\n"        /* 8: no type */
             "%s,i,play,2,5\n"   /* 9: id too long */
             "u,i,rate,,5\n"     /* 10: rate without value */
             "u,i,play,nan,5\n"  /* 11: NaN */
             "u,i,rate,3,-1\n"   /* 12: negative ts */
             "u,j,rate,3,6\r\n", /* 13: good */
             longid);
    fs = open_ok(write_text("bad.csv", text), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "u", "i", 2.0f, 5000);
    assert_event(&res.ev[1], RS_EVENT_RATE, "u", "j", 3.0f, 6000);
    assert_int_equal(res.bad, 10);
    {
        static const enum rs_event_reason want[] = {
            RS_REASON_MALFORMED,   RS_REASON_BAD_TS,        RS_REASON_BAD_VALUE,
            RS_REASON_BAD_TYPE,    RS_REASON_MISSING_USER,  RS_REASON_MISSING_TYPE,
            RS_REASON_ID_TOO_LONG, RS_REASON_MISSING_VALUE, RS_REASON_BAD_VALUE,
            RS_REASON_BAD_TS,
        };
        size_t k;
        for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            assert_int_equal(res.why[k], want[k]);
            assert_int_equal(res.line[k], k + 3);
        }
    }
    rs_filesrc_close(fs);
}

static void test_csv_header_without_user_column_fails_to_open(void **state)
{
    char err[256] = "";
    const char *path = write_text("nouser.csv", "who,item,rating\n1,2,3\n");
    (void)state;
    assert_null(rs_filesrc_open(path, RS_FILE_AUTO, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "nouser.csv"));
    assert_non_null(strstr(err, "user"));
    path = write_text("empty.csv", "\n\n");
    assert_null(rs_filesrc_open(path, RS_FILE_AUTO, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "header"));
}

static void test_reads_tsv_with_header_detected_by_content(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(write_text("user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n"
                                                "2\t52\t11690\n"),
                 RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_TSV);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[1], RS_EVENT_PLAY, "2", "52", 11690.0f, 0);
    rs_filesrc_close(fs);

    fs =
        open_ok(write_text("x.tsv", "item\tuser\trating\ti\tu\t4\n"), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_TSV);
    read_all(fs, &res);
    assert_int_equal(res.good, 0); /* the header is the only line */
    rs_filesrc_close(fs);
}

/* ---- JSON lines ---- */

static void test_reads_json_lines(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_ok(
        write_text("e.jsonl",
                   "{\"user\":\"a\",\"item\":\"x\",\"type\":\"play\",\"ts\":5}\r\n"
                   "\n"
                   "   \n"
                   "{\"user\":\"a\",\"type\":\"play\"}\n"
                   "not json\n"
                   "{\"user\":7,\"item\":8,\"type\":\"rate\",\"value\":4}"),
        RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_JSONL);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "a", "x", 1.0f, 5);
    assert_event(&res.ev[1], RS_EVENT_RATE, "7", "8", 4.0f, 0);
    assert_int_equal(res.bad, 2);
    assert_int_equal(res.why[0], RS_REASON_MISSING_ITEM);
    assert_int_equal(res.line[0], 4);
    assert_int_equal(res.why[1], RS_REASON_MALFORMED);
    assert_int_equal(res.line[1], 5);
    rs_filesrc_close(fs);
}

static void test_line_longer_than_buffer_is_malformed_and_skipped(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    size_t n = 200000;
    char *text = malloc(n + 200);
    size_t len;
    (void)state;
    assert_non_null(text);
    len = (size_t)sprintf(text, "{\"user\":\"a\",\"item\":\"x\",\"type\":\"play\"}\n");
    memset(text + len, ' ', n);
    len += n;
    len += (size_t)sprintf(text + len,
                           "\n{\"user\":\"b\",\"item\":\"y\",\"type\":\"play\"}\n");
    fs = open_ok(write_bytes("long.jsonl", text, len), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_string_equal(res.ev[1].user, "b");
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_MALFORMED);
    assert_int_equal(res.line[0], 2);
    rs_filesrc_close(fs);
    free(text);
}

static void test_json_line_over_max_bytes_is_too_large(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    char text[6000];
    int n;
    (void)state;
    n = snprintf(text, sizeof(text),
                 "{\"user\":\"a\",\"item\":\"x\",\"type\":\"play\",\"pad\":\"");
    memset(text + n, 'p', 4200);
    strcpy(text + n + 4200, "\"}\n{\"user\":\"b\",\"item\":\"y\",\"type\":\"play\"}\n");
    fs = open_ok(write_text("big.jsonl", text), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_TOO_LARGE);
    rs_filesrc_close(fs);
}

/* ---- msgpack ---- */

/* Appends the msgpack encoding of ev to buf at *len. */
static void append_event(char *buf, size_t cap, size_t *len, enum rs_event_type type,
                         const char *user, const char *item, float value, int64_t ts)
{
    struct rs_event ev;
    size_t n;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.user_len = (uint16_t)strlen(user);
    strcpy(ev.user, user);
    ev.item_len = (uint16_t)strlen(item);
    strcpy(ev.item, item);
    ev.value = value;
    ev.ts_ms = ts;
    n = rs_event_encode_msgpack(&ev, buf + *len, cap - *len);
    assert_true(n > 0);
    *len += n;
}

static void test_reads_msgpack_stream_with_a_bad_object(void **state)
{
    char buf[1024];
    size_t len = 0;
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    append_event(buf, sizeof(buf), &len, RS_EVENT_PLAY, "u1", "i1", 2.0f, 10);
    append_event(buf, sizeof(buf), &len, RS_EVENT_RATE, "u2", "i2", 9.0f,
                 0);                       /* off scale */
    memcpy(buf + len, "\x81\xa1k\x01", 4); /* a map, but no event in it */
    len += 4;
    memcpy(buf + len, "\x93\x01\x02\x03", 4); /* not a map */
    len += 4;
    append_event(buf, sizeof(buf), &len, RS_EVENT_FORGET, "u3", "", 0.0f, 0);
    fs = open_ok(write_bytes("e.msgpack", buf, len), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MSGPACK);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "u1", "i1", 2.0f, 10);
    assert_event(&res.ev[1], RS_EVENT_FORGET, "u3", "", 0.0f, 0);
    assert_int_equal(res.bad, 3);
    assert_int_equal(res.why[0], RS_REASON_OFF_SCALE);
    assert_int_equal(res.line[0], 2);
    assert_int_equal(res.why[1], RS_REASON_MISSING_TYPE);
    assert_int_equal(res.line[1], 3);
    assert_int_equal(res.why[2], RS_REASON_NOT_OBJECT);
    assert_int_equal(res.line[2], 4);
    rs_filesrc_close(fs);

    /* detected by content under a name that says nothing */
    fs = open_ok(write_bytes("events.bin", buf, len), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MSGPACK);
    rs_filesrc_close(fs);
}

static void test_msgpack_stream_across_many_refills(void **state)
{
    size_t cap = 40000 * 64;
    char *buf = malloc(cap);
    size_t len = 0;
    char user[32], item[32];
    struct result res;
    struct rs_filesrc *fs;
    int i;
    (void)state;
    assert_non_null(buf);
    for (i = 0; i < 40000; i++) {
        snprintf(user, sizeof(user), "user-%d", i % 977);
        snprintf(item, sizeof(item), "item-%d", i);
        append_event(buf, cap, &len, RS_EVENT_PLAY, user, item, 1.0f + (float)(i % 5),
                     i + 1);
    }
    assert_true(len > 4 * 65536);
    fs = open_ok(write_bytes("many.mp", buf, len), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 40000);
    assert_int_equal(res.bad, 0);
    assert_int_equal(rs_filesrc_bytes_read(fs), len);
    assert_int_equal(rs_filesrc_bytes_total(fs), len);
    rs_filesrc_close(fs);
    free(buf);
}

static void test_msgpack_stream_truncated_tail_is_reported_once(void **state)
{
    char buf[256];
    size_t len = 0;
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    append_event(buf, sizeof(buf), &len, RS_EVENT_PLAY, "u1", "i1", 2.0f, 10);
    append_event(buf, sizeof(buf), &len, RS_EVENT_PLAY, "u2", "i2", 2.0f, 10);
    fs = open_ok(write_bytes("cut.msgpack", buf, len - 3), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_MALFORMED);
    assert_int_equal(res.line[0], 2);
    rs_filesrc_close(fs);
}

static void test_msgpack_stream_garbage_ends_the_read(void **state)
{
    char buf[256];
    size_t len = 0;
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    append_event(buf, sizeof(buf), &len, RS_EVENT_PLAY, "u1", "i1", 2.0f, 10);
    buf[len++] = '\xc1';
    append_event(buf, sizeof(buf), &len, RS_EVENT_PLAY, "u2", "i2", 2.0f, 10);
    fs = open_ok(write_bytes("junk.msgpack", buf, len), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_MALFORMED);
    rs_filesrc_close(fs);
}

static void test_msgpack_object_bigger_than_the_buffer_is_too_large(void **state)
{
    size_t n = 100000;
    char *buf = malloc(n + 16);
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    assert_non_null(buf);
    /* a str 32 of n bytes: more than the reader can hold */
    buf[0] = '\xdb';
    buf[1] = 0;
    buf[2] = (char)((n >> 16) & 0xff);
    buf[3] = (char)((n >> 8) & 0xff);
    buf[4] = (char)(n & 0xff);
    memset(buf + 5, 'a', n);
    fs = open_ok(write_bytes("huge.msgpack", buf, n + 5), RS_FILE_MSGPACK, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 0);
    assert_int_equal(res.bad, 1);
    assert_int_equal(res.why[0], RS_REASON_TOO_LARGE);
    rs_filesrc_close(fs);
    free(buf);
}

/* ---- opening ---- */

static void test_reads_stdin_from_a_pipe(void **state)
{
    const char *text = "user,item,rating\nu,i,4\nu,j,5\n";
    struct result res;
    struct rs_filesrc *fs;
    int p[2];
    int saved;
    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    saved = dup(STDIN_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(p[0], STDIN_FILENO) >= 0);
    close(p[0]);
    fs = open_ok("-", RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_CSV);
    read_all(fs, &res);
    assert_int_equal(res.good, 2);
    assert_event(&res.ev[1], RS_EVENT_RATE, "u", "j", 5.0f, 0);
    assert_int_equal(rs_filesrc_bytes_total(fs), 0);
    assert_int_equal(rs_filesrc_bytes_read(fs), strlen(text));
    rs_filesrc_close(fs);
    assert_true(dup2(saved, STDIN_FILENO) >= 0);
    close(saved);
}

static void test_counts_bytes_read_against_the_total(void **state)
{
    const char *text = "1\t2\t3\t4\n5\t6\t3\t4\n";
    struct rs_filesrc *fs;
    struct rs_event ev;
    (void)state;
    fs = open_ok(write_text("b.data", text), RS_FILE_AUTO, &lim);
    assert_int_equal(rs_filesrc_bytes_total(fs), strlen(text));
    assert_int_equal(rs_filesrc_next(fs, &ev, NULL, NULL), RS_OK);
    assert_true(rs_filesrc_bytes_read(fs) <= rs_filesrc_bytes_total(fs));
    assert_int_equal(rs_filesrc_next(fs, &ev, NULL, NULL), RS_OK);
    assert_int_equal(rs_filesrc_next(fs, &ev, NULL, NULL), RS_ENOENT);
    assert_int_equal(rs_filesrc_bytes_read(fs), strlen(text));
    rs_filesrc_close(fs);
}

static void test_unknown_layout_or_missing_file_fails_to_open(void **state)
{
    char err[256] = "";
    char path[256];
    (void)state;
    assert_null(rs_filesrc_open(write_text("notes.txt", "hello world\n"), RS_FILE_AUTO,
                                &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "notes.txt"));
    assert_non_null(strstr(err, "layout"));
    snprintf(path, sizeof(path), "%s/absent.csv", tmpdir);
    assert_null(rs_filesrc_open(path, RS_FILE_AUTO, &lim, err, sizeof(err)));
    assert_non_null(strstr(err, "absent.csv"));
    assert_non_null(strstr(err, strerror(ENOENT)));
}

static void test_explicit_format_overrides_the_name(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs =
        open_ok(write_text("data.jsonl", "user,item,rating\nu,i,3\n"), RS_FILE_CSV, &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_CSV);
    read_all(fs, &res);
    assert_int_equal(res.good, 1);
    rs_filesrc_close(fs);
}

static void test_many_lines_across_buffer_refills(void **state)
{
    size_t cap = 30000 * 40;
    char *text = malloc(cap);
    size_t len;
    struct result res;
    struct rs_filesrc *fs;
    int i;
    (void)state;
    assert_non_null(text);
    len = (size_t)sprintf(text, "user,item,rating,timestamp\n");
    for (i = 0; i < 30000; i++) {
        if (i % 1000 == 999)
            len += (size_t)sprintf(text + len, "%d,%d,six,1\n", i, i);
        else
            len += (size_t)sprintf(text + len, "%d,%d,%d,%d\n", i % 300, i, 1 + i % 5, i);
    }
    fs = open_ok(write_bytes("many.csv", text, len), RS_FILE_AUTO, &lim);
    read_all(fs, &res);
    assert_int_equal(res.good, 30000 - 30);
    assert_int_equal(res.bad, 30);
    assert_int_equal(res.line[0], 1001); /* record i is on line i + 2 */
    assert_int_equal(res.line[1], 2001);
    rs_filesrc_close(fs);
    free(text);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_string_equal(rs_filesrc_format_name(RS_FILE_AUTO), "auto");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_MOVIELENS_TAB), "movielens-tab");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_MOVIELENS_COLON),
                        "movielens-colon");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_CSV), "csv");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_TSV), "tsv");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_JSONL), "jsonl");
    assert_string_equal(rs_filesrc_format_name(RS_FILE_MSGPACK), "msgpack");
}

/* ---- the shared data sets ---- */

/* Opens RS_TEST_DATA/rel, or skips the test when it is not there. */
static struct rs_filesrc *open_data(const char *rel, const struct rs_event_limits *l)
{
    const char *dir = getenv("RS_TEST_DATA");
    char path[1024];
    if (dir == NULL || *dir == '\0') skip();
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (access(path, R_OK) != 0) skip();
    return open_ok(path, RS_FILE_AUTO, l);
}

static void test_reads_ml_100k(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_data("ml-100k/u.data", &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_TAB);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 100000);
    assert_event(&res.ev[0], RS_EVENT_RATE, "196", "242", 3.0f, 881250949000LL);
    assert_int_equal(rs_filesrc_bytes_read(fs), 1979173);
    rs_filesrc_close(fs);
}

static void test_reads_ml_1m_partial(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_data("ml-1m-partial/ratings.dat", &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_MOVIELENS_COLON);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 487650);
    assert_event(&res.ev[0], RS_EVENT_RATE, "1", "1193", 5.0f, 978300760000LL);
    rs_filesrc_close(fs);
}

static void test_reads_ml_latest_small(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_data("ml-latest-small/ratings.csv", &half_lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_CSV);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 100836);
    assert_event(&res.ev[0], RS_EVENT_RATE, "1", "1", 4.0f, 964982703000LL);
    rs_filesrc_close(fs);
}

static void test_reads_lastfm_user_artists(void **state)
{
    struct result res;
    struct rs_filesrc *fs;
    (void)state;
    fs = open_data("hetrec2011-lastfm-2k/user_artists.dat", &lim);
    assert_int_equal(rs_filesrc_format(fs), RS_FILE_TSV);
    read_all(fs, &res);
    assert_int_equal(res.bad, 0);
    assert_int_equal(res.good, 92834);
    assert_event(&res.ev[0], RS_EVENT_PLAY, "2", "51", 13883.0f, 0);
    rs_filesrc_close(fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_movielens_tab_with_a_bad_line),
        cmocka_unit_test(test_reads_movielens_colon_with_a_bad_line),
        cmocka_unit_test(test_detects_movielens_layouts_by_content),
        cmocka_unit_test(test_reads_movielens_csv),
        cmocka_unit_test(test_csv_columns_in_any_order_and_case),
        cmocka_unit_test(test_csv_weight_column_means_play),
        cmocka_unit_test(test_csv_without_value_column_plays_weigh_one),
        cmocka_unit_test(test_csv_strips_quotes_and_spaces),
        cmocka_unit_test(test_csv_bad_rows_are_reported_and_skipped),
        cmocka_unit_test(test_csv_header_without_user_column_fails_to_open),
        cmocka_unit_test(test_reads_tsv_with_header_detected_by_content),
        cmocka_unit_test(test_reads_json_lines),
        cmocka_unit_test(test_line_longer_than_buffer_is_malformed_and_skipped),
        cmocka_unit_test(test_json_line_over_max_bytes_is_too_large),
        cmocka_unit_test(test_reads_msgpack_stream_with_a_bad_object),
        cmocka_unit_test(test_msgpack_stream_across_many_refills),
        cmocka_unit_test(test_msgpack_stream_truncated_tail_is_reported_once),
        cmocka_unit_test(test_msgpack_stream_garbage_ends_the_read),
        cmocka_unit_test(test_msgpack_object_bigger_than_the_buffer_is_too_large),
        cmocka_unit_test(test_reads_stdin_from_a_pipe),
        cmocka_unit_test(test_counts_bytes_read_against_the_total),
        cmocka_unit_test(test_unknown_layout_or_missing_file_fails_to_open),
        cmocka_unit_test(test_explicit_format_overrides_the_name),
        cmocka_unit_test(test_many_lines_across_buffer_refills),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_reads_ml_100k),
        cmocka_unit_test(test_reads_ml_1m_partial),
        cmocka_unit_test(test_reads_ml_latest_small),
        cmocka_unit_test(test_reads_lastfm_user_artists),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
