/*
 * test_snapshot.c - the snapshot file format and directory: what is written
 * reads back byte for byte; every kind of damage (a flipped byte anywhere, a
 * truncation anywhere, an empty file, a wrong version or magic) is detected
 * and the previous snapshot is used instead; a snapshot of another shape is
 * refused; a write that fails (file size limit standing in for a full disk)
 * leaves the older files intact; the forked writer reports success and
 * failure; only the newest `keep` files stay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recstream/log.h"
#include "recstream/snapshot.h"

static const struct rs_snapshot_shape SHAPE = {16, 1.0f, 5.0f};

/* What the test "state" writes: a tag and a payload of n bytes. */
struct fake {
    uint32_t tag;
    size_t n;
    int fail; /* fill returns RS_EIO after the first section */
};

static rs_err_t fill(void *ctx, struct rs_snapshot_writer *sw)
{
    const struct fake *f = ctx;
    struct rs_writer *w = rs_snapshot_section_begin(sw, 1, "tag");
    rs_err_t err;

    if (!w) return RS_EIO;
    if ((err = rs_write_u32(w, f->tag)) || (err = rs_snapshot_section_end(sw))) return err;
    if (f->fail) return RS_EIO;
    if (!(w = rs_snapshot_section_begin(sw, 2, "bulk"))) return RS_EIO;
    for (size_t i = 0; i < f->n && !err; i++) {
        uint8_t b = (uint8_t)(i * 7 + f->tag);
        err = w->write(w->ctx, &b, 1);
    }
    if (!err && (err = rs_write_u64(w, f->n))) return err;
    if (err) return err;
    if ((err = rs_snapshot_section_end(sw))) return err;
    if (!(w = rs_snapshot_section_begin(sw, 3, "empty"))) return RS_EIO;
    return rs_snapshot_section_end(sw);
}

/* rs_snapshot_load_t: reads the tag and checks the bulk section. */
static rs_err_t load(void *ctx, const struct rs_snapshot *snap, char *errstr, size_t size)
{
    uint32_t *tag = ctx;
    struct rs_snapshot_cursor cur;
    struct rs_reader r;
    rs_err_t err;
    (void)errstr;
    (void)size;
    if ((err = rs_snapshot_reader(snap, 1, &cur, &r))) return err;
    return rs_read_u32(&r, tag);
}

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rs-test-snapshot.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    rs_log_set_level(RS_LOG_ERROR);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_one(uint32_t tag, size_t n, char *path, size_t path_size)
{
    struct fake f = {tag, n, 0};
    char errstr[512];
    rs_err_t err = rs_snapshot_write(dir, 100, &SHAPE, fill, &f, path, path_size, errstr,
                                     sizeof(errstr));
    if (err) fail_msg("write: %s", errstr);
}

static size_t read_file(const char *path, uint8_t **data)
{
    FILE *f = fopen(path, "rb");
    long size;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)size + 1);
    assert_int_equal(fread(*data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return (size_t)size;
}

static void write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* 1 when the file at path verifies. */
static int verifies(const char *path, char *problem, size_t problem_size)
{
    char errstr[512];
    struct rs_snapshot *snap = rs_snapshot_open(path, errstr, sizeof(errstr));
    int ok;
    assert_non_null(snap);
    ok = rs_snapshot_problem(snap) == NULL;
    if (!ok && problem) snprintf(problem, problem_size, "%s", rs_snapshot_problem(snap));
    rs_snapshot_close(snap);
    return ok;
}

static size_t count_files(const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void test_what_is_written_reads_back_with_its_shape_and_sections(void **state)
{
    char path[512], errstr[512];
    struct rs_snapshot *snap;
    struct rs_snapshot_cursor cur;
    struct rs_reader r;
    struct stat st;
    uint8_t b;
    uint64_t n;
    (void)state;

    write_one(7, 3000000, path, sizeof(path)); /* larger than the write buffer */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snap = rs_snapshot_open(path, errstr, sizeof(errstr));
    assert_non_null(snap);
    assert_null(rs_snapshot_problem(snap));
    assert_int_equal(rs_snapshot_version(snap), RS_SNAPSHOT_VERSION);
    assert_int_equal(rs_snapshot_shape(snap)->factors, 16);
    assert_int_equal(rs_snapshot_sections(snap), 3);
    assert_string_equal(rs_snapshot_section_at(snap, 1)->name, "bulk");
    assert_int_equal(rs_snapshot_section_at(snap, 1)->length, 3000000 + 8);
    assert_int_equal(rs_snapshot_section_at(snap, 2)->length, 0);
    assert_int_equal(rs_snapshot_reader(snap, 2, &cur, &r), RS_OK);
    for (size_t i = 0; i < 3000000; i++) {
        assert_int_equal(r.read(r.ctx, &b, 1), RS_OK);
        if (b != (uint8_t)(i * 7 + 7)) fail_msg("byte %zu differs", i);
    }
    assert_int_equal(rs_read_u64(&r, &n), RS_OK);
    assert_int_equal(n, 3000000);
    assert_int_equal(r.remaining(r.ctx), 0);
    assert_int_equal(rs_read_u64(&r, &n), RS_ECORRUPT); /* past the end of the section */
    assert_int_equal(rs_snapshot_reader(snap, 99, &cur, &r), RS_ENOENT);
    rs_snapshot_close(snap);
}

static void test_a_flipped_byte_anywhere_is_detected(void **state)
{
    char path[512], damaged[600];
    uint8_t *data;
    size_t size;
    (void)state;

    write_one(1, 100, path, sizeof(path));
    size = read_file(path, &data);
    snprintf(damaged, sizeof(damaged), "%s/damaged", dir);
    for (size_t pos = 0; pos < size; pos++) {
        for (int bit = 0; bit < 8; bit += 3) {
            data[pos] ^= (uint8_t)(1u << bit);
            write_file(damaged, data, size);
            if (verifies(damaged, NULL, 0)) fail_msg("flip of bit %d at byte %zu not detected", bit, pos);
            data[pos] ^= (uint8_t)(1u << bit);
        }
    }
    write_file(damaged, data, size);
    assert_true(verifies(damaged, NULL, 0));
    free(data);
}

static void test_a_truncation_anywhere_is_detected(void **state)
{
    char path[512], damaged[600], problem[512];
    uint8_t *data;
    size_t size;
    (void)state;

    write_one(1, 100, path, sizeof(path));
    size = read_file(path, &data);
    snprintf(damaged, sizeof(damaged), "%s/damaged", dir);
    /* every length, so every section boundary among them */
    for (size_t len = 0; len < size; len++) {
        write_file(damaged, data, len);
        if (verifies(damaged, NULL, 0)) fail_msg("truncation to %zu bytes not detected", len);
    }
    /* and a boundary exactly after the header: no end marker */
    write_file(damaged, data, 44);
    assert_false(verifies(damaged, problem, sizeof(problem)));
    assert_non_null(strstr(problem, "no end marker"));
    /* extra bytes after the end marker */
    data = realloc(data, size + 1);
    data[size] = 0;
    write_file(damaged, data, size + 1);
    assert_false(verifies(damaged, problem, sizeof(problem)));
    assert_non_null(strstr(problem, "after the end marker"));
    free(data);
}

static void test_empty_file_wrong_magic_and_wrong_version_are_named(void **state)
{
    char path[512], damaged[600], problem[512];
    uint8_t *data;
    size_t size;
    uint32_t version = 2;
    (void)state;

    write_one(1, 10, path, sizeof(path));
    size = read_file(path, &data);
    snprintf(damaged, sizeof(damaged), "%s/damaged", dir);

    write_file(damaged, data, 0);
    assert_false(verifies(damaged, problem, sizeof(problem)));
    assert_non_null(strstr(problem, "empty file"));

    data[0] = 'X';
    write_file(damaged, data, size);
    assert_false(verifies(damaged, problem, sizeof(problem)));
    assert_non_null(strstr(problem, "bad magic"));
    data[0] = 'R';

    memcpy(data + 8, &version, 4);
    write_file(damaged, data, size);
    assert_false(verifies(damaged, problem, sizeof(problem)));
    assert_non_null(strstr(problem, "format version 2"));
    free(data);
}

static void test_corrupt_newest_snapshots_fall_back_to_the_previous_one(void **state)
{
    char p1[512], p2[512], p3[512], p4[512], loaded[512], errstr[512];
    uint8_t *data;
    size_t size;
    uint32_t tag = 0;
    (void)state;

    write_one(1, 50, p1, sizeof(p1));
    write_one(2, 50, p2, sizeof(p2));
    write_one(3, 50, p3, sizeof(p3));
    write_one(4, 50, p4, sizeof(p4));
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, loaded, sizeof(loaded),
                                             errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(tag, 4);

    /* newest: a flipped byte; next: truncated; next: empty -> the oldest is used */
    size = read_file(p4, &data);
    data[size / 2] ^= 0x40;
    write_file(p4, data, size);
    write_file(p3, data, size - 9);
    write_file(p2, data, 0);
    free(data);
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, loaded, sizeof(loaded),
                                             errstr, sizeof(errstr)),
                     RS_OK);
    assert_int_equal(tag, 1);
    assert_string_equal(loaded, p1);

    /* none left that verifies: refused, not an empty start */
    write_file(p1, (const uint8_t *)"junk", 4);
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, loaded, sizeof(loaded),
                                             errstr, sizeof(errstr)),
                     RS_ECORRUPT);
    assert_non_null(strstr(errstr, "none of the 4"));
}

static void test_an_empty_directory_means_no_snapshot(void **state)
{
    char errstr[512], missing[600];
    uint32_t tag = 0;
    (void)state;
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_ENOENT);
    snprintf(missing, sizeof(missing), "%s/not-there", dir);
    assert_int_equal(rs_snapshot_load_newest(missing, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_ENOENT);
}

static void test_a_snapshot_of_another_shape_is_refused(void **state)
{
    char path[512], errstr[512];
    struct rs_snapshot_shape other = SHAPE;
    uint32_t tag = 0;
    (void)state;

    write_one(5, 10, path, sizeof(path));
    other.factors = 32;
    assert_int_equal(rs_snapshot_load_newest(dir, &other, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_EINVAL);
    assert_int_equal(tag, 0);
    assert_non_null(strstr(errstr, "factors = 16"));
    assert_non_null(strstr(errstr, "factors = 32"));
}

static void test_a_failed_write_leaves_the_old_snapshots_intact(void **state)
{
    char p1[512], errstr[512];
    struct fake big = {9, 1 << 20, 0}, failing = {9, 10, 1};
    struct rlimit old, lim;
    uint32_t tag = 0;
    (void)state;

    write_one(1, 100, p1, sizeof(p1));

    /* A full disk: the file size limit makes write() fail with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_int_equal(rs_snapshot_write(dir, 1, &SHAPE, fill, &big, NULL, 0, errstr,
                                       sizeof(errstr)),
                     RS_EIO);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_non_null(strstr(errstr, "writing"));

    /* A section that fails half-way. */
    assert_int_equal(rs_snapshot_write(dir, 1, &SHAPE, fill, &failing, NULL, 0, errstr,
                                       sizeof(errstr)),
                     RS_EIO);

    /* An unusable directory (a file where the directory should be). */
    {
        char notdir[600];
        snprintf(notdir, sizeof(notdir), "%s", p1);
        assert_int_equal(rs_snapshot_write(notdir, 1, &SHAPE, fill, &big, NULL, 0, errstr,
                                           sizeof(errstr)),
                         RS_EIO);
    }

    assert_int_equal(count_files("snap-"), 1);
    assert_int_equal(count_files(".snap-"), 0); /* no temp file left */
    assert_true(verifies(p1, NULL, 0));
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_OK);
    assert_int_equal(tag, 1);
}

static void test_only_the_newest_keep_snapshots_stay(void **state)
{
    struct fake f = {0, 10, 0};
    char path[512], errstr[512];
    uint32_t tag = 0;
    (void)state;

    for (uint32_t i = 1; i <= 5; i++) {
        f.tag = i;
        assert_int_equal(rs_snapshot_write(dir, 3, &SHAPE, fill, &f, path, sizeof(path), errstr,
                                           sizeof(errstr)),
                         RS_OK);
    }
    assert_int_equal(count_files("snap-"), 3);
    assert_non_null(strstr(path, "snap-0000000000000005.rsnap"));
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_OK);
    assert_int_equal(tag, 5);
}

static void test_the_forked_writer_reports_success_and_failure(void **state)
{
    struct fake good = {11, 1000, 0}, bad = {12, 10, 1};
    char errstr[512];
    uint32_t tag = 0;
    pid_t pid;
    (void)state;

    assert_int_equal(rs_snapshot_bg_start(dir, 3, &SHAPE, fill, &good, &pid), RS_OK);
    assert_int_equal(rs_snapshot_bg_poll(pid, 1), RS_SNAPSHOT_BG_DONE);
    assert_int_equal(rs_snapshot_bg_start(dir, 3, &SHAPE, fill, &bad, &pid), RS_OK);
    assert_int_equal(rs_snapshot_bg_poll(pid, 1), RS_SNAPSHOT_BG_FAILED);
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_OK);
    assert_int_equal(tag, 11);
    assert_int_equal(count_files(".snap-"), 0);
}

static void test_leftover_temp_files_are_removed_by_the_lock_holder_only(void **state)
{
    char tmp[600], errstr[512];
    uint32_t tag = 0;
    int fd;
    (void)state;
    write_one(3, 10, NULL, 0);
    snprintf(tmp, sizeof(tmp), "%s/.snap-0000000000000002.rsnap.4242.tmp", dir);
    write_file(tmp, (const uint8_t *)"partial", 7);
    /* A reader (recommend) leaves a running writer's temp file alone. */
    assert_int_equal(rs_snapshot_load_newest(dir, &SHAPE, load, &tag, NULL, 0, errstr,
                                             sizeof(errstr)),
                     RS_OK);
    assert_int_equal(count_files(".snap-"), 1);
    /* The process that takes the directory clears it. */
    fd = rs_snapshot_lock_dir(dir, errstr, sizeof(errstr));
    assert_true(fd >= 0);
    assert_int_equal(count_files(".snap-"), 0);
    close(fd);
}

static void test_a_directory_is_locked_for_one_process(void **state)
{
    char errstr[512];
    int fd;
    (void)state;
    fd = rs_snapshot_lock_dir(dir, errstr, sizeof(errstr));
    assert_true(fd >= 0);
    /* A second lock (a new open file description) is refused while the first is held. */
    assert_int_equal(rs_snapshot_lock_dir(dir, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "in use by another recstream"));
    close(fd);
    fd = rs_snapshot_lock_dir(dir, errstr, sizeof(errstr));
    assert_true(fd >= 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_what_is_written_reads_back_with_its_shape_and_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_flipped_byte_anywhere_is_detected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_truncation_anywhere_is_detected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_wrong_magic_and_wrong_version_are_named,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_corrupt_newest_snapshots_fall_back_to_the_previous_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_empty_directory_means_no_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_of_another_shape_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_leaves_the_old_snapshots_intact,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_the_newest_keep_snapshots_stay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_forked_writer_reports_success_and_failure,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_temp_files_are_removed_by_the_lock_holder_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_directory_is_locked_for_one_process, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
