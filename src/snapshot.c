/*
 * snapshot.c - snapshot files: the format described in snapshot.h, written
 * the way Redis writes its RDB file (temp file, fsync, rename, fsync of the
 * directory, so a crash at any moment leaves either the old set of files or
 * the old set plus one complete new file) and read back with every byte
 * checked before any of it is trusted. Sections are hashed with XXH3 (libxxhash)
 * while they stream out, so a 300 MB model costs one pass over its memory.
 *
 * Background writes fork: the child sees the parent's memory frozen at the
 * fork (copy-on-write) and writes it while the parent goes on consuming; the
 * only pause in the parent is the fork call itself (copying page tables).
 * Reading maps the file and verifies it completely before handing out
 * readers, so a load function never sees a byte that failed its checksum.
 */
#include "recstream/snapshot.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recstream/log.h"

#define MAGIC "RSSNAP\r\n"
#define MAGIC_LEN 8
#define SHAPE_BYTES 12
/* magic, version, shape bytes, shape, created_ms, checksum */
#define HEADER_BYTES (MAGIC_LEN + 4 + 4 + SHAPE_BYTES + 8 + 8)
#define SECTION_HEADER_BYTES (4 + RS_SNAPSHOT_NAME_MAX + 8)
#define END_PAYLOAD_BYTES 16
#define WRITE_BUF (1u << 20)
#define PATH_MAX_LEN 4096

/* ---- writing ---------------------------------------------------------- */

struct rs_snapshot_writer {
    int fd;
    const char *tmp_path;
    uint8_t *buf;
    size_t len;             /* bytes buffered */
    uint64_t flushed;       /* bytes already in the file */
    struct rs_writer w;
    XXH3_state_t hash;
    int in_section;
    uint64_t section_start; /* file position of the section header */
    uint8_t header[SECTION_HEADER_BYTES];
    uint64_t payload_len;
    uint32_t sections;
    int saved_errno;        /* of the first failed write */
};

static rs_err_t write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return RS_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return RS_OK;
}

static rs_err_t flush_buf(struct rs_snapshot_writer *sw)
{
    if (sw->saved_errno) return RS_EIO;
    if (write_all(sw->fd, sw->buf, sw->len)) {
        sw->saved_errno = errno ? errno : EIO;
        return RS_EIO;
    }
    sw->flushed += sw->len;
    sw->len = 0;
    return RS_OK;
}

/* Appends raw bytes, not hashed. */
static rs_err_t put(struct rs_snapshot_writer *sw, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (sw->saved_errno) return RS_EIO;
    if (len >= WRITE_BUF) {
        if (flush_buf(sw)) return RS_EIO;
        if (write_all(sw->fd, p, len)) {
            sw->saved_errno = errno ? errno : EIO;
            return RS_EIO;
        }
        sw->flushed += len;
        return RS_OK;
    }
    if (sw->len + len > WRITE_BUF && flush_buf(sw)) return RS_EIO;
    memcpy(sw->buf + sw->len, p, len);
    sw->len += len;
    return RS_OK;
}

/* The rs_writer handed to save functions: hashed payload bytes. */
static rs_err_t section_write(void *ctx, const void *buf, size_t len)
{
    struct rs_snapshot_writer *sw = ctx;
    if (!sw->in_section) return RS_EINVAL;
    XXH3_64bits_update(&sw->hash, buf, len);
    sw->payload_len += len;
    return put(sw, buf, len);
}

struct rs_writer *rs_snapshot_section_begin(struct rs_snapshot_writer *sw, uint32_t id,
                                            const char *name)
{
    size_t name_len = strlen(name);
    if (sw->in_section || name_len > RS_SNAPSHOT_NAME_MAX) return NULL;
    memset(sw->header, 0, sizeof(sw->header));
    memcpy(sw->header, &id, 4);
    memcpy(sw->header + 4, name, name_len);
    sw->section_start = sw->flushed + sw->len;
    sw->payload_len = 0;
    XXH3_64bits_reset(&sw->hash);
    if (put(sw, sw->header, sizeof(sw->header))) return NULL;
    sw->in_section = 1;
    sw->w.write = section_write;
    sw->w.ctx = sw;
    return &sw->w;
}

rs_err_t rs_snapshot_section_end(struct rs_snapshot_writer *sw)
{
    uint64_t sum;
    if (!sw->in_section) return RS_EINVAL;
    sw->in_section = 0;
    memcpy(sw->header + 4 + RS_SNAPSHOT_NAME_MAX, &sw->payload_len, 8);
    XXH3_64bits_update(&sw->hash, sw->header, sizeof(sw->header));
    sum = XXH3_64bits_digest(&sw->hash);
    if (put(sw, &sum, sizeof(sum))) return RS_EIO;
    sw->sections++;
    /* The length was unknown when the header went out: patch it in place. */
    if (sw->section_start >= sw->flushed) {
        memcpy(sw->buf + (sw->section_start - sw->flushed) + 4 + RS_SNAPSHOT_NAME_MAX,
               &sw->payload_len, 8);
        return RS_OK;
    }
    if (pwrite(sw->fd, &sw->payload_len, 8,
               (off_t)(sw->section_start + 4 + RS_SNAPSHOT_NAME_MAX)) != 8) {
        sw->saved_errno = errno ? errno : EIO;
        return RS_EIO;
    }
    return RS_OK;
}

static rs_err_t write_header(struct rs_snapshot_writer *sw, const struct rs_snapshot_shape *shape)
{
    uint8_t h[HEADER_BYTES];
    uint32_t version = RS_SNAPSHOT_VERSION, shape_bytes = SHAPE_BYTES;
    int64_t created = rs_now_ms();
    uint64_t sum;
    size_t o = 0;

    memcpy(h + o, MAGIC, MAGIC_LEN), o += MAGIC_LEN;
    memcpy(h + o, &version, 4), o += 4;
    memcpy(h + o, &shape_bytes, 4), o += 4;
    memcpy(h + o, &shape->factors, 4), o += 4;
    memcpy(h + o, &shape->rating_min, 4), o += 4;
    memcpy(h + o, &shape->rating_max, 4), o += 4;
    memcpy(h + o, &created, 8), o += 8;
    sum = XXH3_64bits(h, o);
    memcpy(h + o, &sum, 8);
    return put(sw, h, sizeof(h));
}

static rs_err_t write_end(struct rs_snapshot_writer *sw)
{
    uint8_t payload[END_PAYLOAD_BYTES] = {0};
    uint32_t count = sw->sections;
    uint64_t before = sw->flushed + sw->len;
    struct rs_writer *w;

    memcpy(payload, &count, 4);
    memcpy(payload + 8, &before, 8);
    if (!(w = rs_snapshot_section_begin(sw, RS_SNAPSHOT_END, "end"))) return RS_EIO;
    if (w->write(w->ctx, payload, sizeof(payload))) return RS_EIO;
    return rs_snapshot_section_end(sw);
}

/* "snap-<16 hex>.rsnap" -> sequence number; 0 if name is not a snapshot. */
static uint64_t snapshot_seq(const char *name)
{
    uint64_t seq = 0;
    if (strncmp(name, "snap-", 5) != 0 || strlen(name) != 5 + 16 + 6 ||
        strcmp(name + 21, ".rsnap") != 0)
        return 0;
    for (int i = 5; i < 21; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        seq = seq * 16 + (uint64_t)d;
    }
    return seq;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* The snapshot file names in dir, newest first. RS_OK (maybe 0 names), RS_EIO, RS_ENOMEM. */
static rs_err_t list_snapshots(const char *dir, char ***names_out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    rs_err_t err = RS_OK;

    *names_out = NULL;
    *n_out = 0;
    if (!d) return errno == ENOENT ? RS_OK : RS_EIO;
    while ((de = readdir(d)) != NULL) {
        if (snapshot_seq(de->d_name) == 0) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **grown = realloc(names, ncap * sizeof(*names));
            if (!grown) {
                err = RS_ENOMEM;
                goto done;
            }
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name))) {
            err = RS_ENOMEM;
            goto done;
        }
        n++;
    }
    if (n > 1) qsort(names, n, sizeof(*names), cmp_desc);

done:
    closedir(d);
    if (err) {
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        return err;
    }
    *names_out = names;
    *n_out = n;
    return RS_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static rs_err_t fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc;
    if (fd < 0) return RS_EIO;
    rc = fsync(fd);
    close(fd);
    return rc == 0 ? RS_OK : RS_EIO;
}

/* Deletes all but the newest keep snapshots; failures are only logged. */
static void prune(const char *dir, int keep)
{
    char **names;
    size_t n;
    char path[PATH_MAX_LEN];

    if (list_snapshots(dir, &names, &n)) return;
    for (size_t i = (size_t)keep; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (unlink(path) != 0) rs_warn("snapshot: removing old %s: %s", path, strerror(errno));
    }
    free_names(names, n);
}

rs_err_t rs_snapshot_write(const char *dir, int keep, const struct rs_snapshot_shape *shape,
                           rs_snapshot_fill_t fill, void *ctx, char *path, size_t path_size,
                           char *errstr, size_t errstr_size)
{
    struct rs_snapshot_writer *sw = calloc(1, sizeof(*sw));
    char tmp[PATH_MAX_LEN], final[PATH_MAX_LEN];
    const char *step = "allocating the write buffer";
    char **names = NULL;
    size_t n = 0;
    uint64_t seq = 1;
    rs_err_t err = RS_ENOMEM;
    int saved;

    tmp[0] = '\0';
    if (!sw || !(sw->buf = malloc(WRITE_BUF))) goto fail;
    sw->fd = -1;
    step = "creating the directory";
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) goto io_fail;
    step = "listing the directory";
    if ((err = list_snapshots(dir, &names, &n))) goto fail;
    if (n > 0) seq = snapshot_seq(names[0]) + 1;
    free_names(names, n);
    snprintf(final, sizeof(final), "%s/snap-%016llx.rsnap", dir, (unsigned long long)seq);
    snprintf(tmp, sizeof(tmp), "%s/.snap-%016llx.rsnap.%d.tmp", dir, (unsigned long long)seq,
             (int)getpid());

    step = "creating the temp file";
    sw->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sw->fd < 0) goto io_fail;
    if (fchmod(sw->fd, 0600) != 0) goto io_fail;
    sw->tmp_path = tmp;

    step = "writing";
    err = write_header(sw, shape);
    if (!err) err = fill(ctx, sw);
    if (!err && sw->in_section) err = RS_EINVAL;
    if (!err) err = write_end(sw);
    if (!err) err = flush_buf(sw);
    if (err) {
        if (sw->saved_errno) {
            errno = sw->saved_errno;
            goto io_fail;
        }
        goto fail;
    }
    step = "fsync of the temp file";
    if (fsync(sw->fd) != 0) goto io_fail;
    step = "closing the temp file";
    saved = close(sw->fd);
    sw->fd = -1;
    if (saved != 0) goto io_fail;
    step = "renaming the temp file";
    if (rename(tmp, final) != 0) goto io_fail;
    tmp[0] = '\0';
    step = "fsync of the directory";
    if (fsync_dir(dir)) goto io_fail;
    if (path) snprintf(path, path_size, "%s", final);
    free(sw->buf);
    free(sw);
    prune(dir, keep);
    return RS_OK;

io_fail:
    err = RS_EIO;
    snprintf(errstr, errstr_size, "snapshot in %s: %s: %s", dir, step, strerror(errno));
    goto cleanup;
fail:
    snprintf(errstr, errstr_size, "snapshot in %s: %s: %s", dir, step, rs_err_str(err));
cleanup:
    saved = errno;
    if (sw && sw->fd >= 0) close(sw->fd);
    if (tmp[0]) unlink(tmp);
    if (sw) free(sw->buf);
    free(sw);
    errno = saved;
    return err;
}

/* The directory lock this process holds: a writer child closes its copy, so a
 * restart after the parent died never waits for a dying child. */
static int held_lock_fd = -1;

static void remove_temps(const char *dir);

int rs_snapshot_lock_dir(const char *dir, char *errstr, size_t errstr_size)
{
    char path[PATH_MAX_LEN];
    int fd;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errstr, errstr_size, "creating %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "opening %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(errstr, errstr_size,
                 "%s is in use by another recstream process (%s); each instance needs its "
                 "own [snapshot] dir",
                 dir, errno == EWOULDBLOCK ? "locked" : strerror(errno));
        close(fd);
        return -1;
    }
    held_lock_fd = fd;
    /* Only the lock holder may clear what an interrupted write left: a reader
     * (recstream recommend) must not touch a running daemon's temp file. */
    remove_temps(dir);
    return fd;
}

/* ---- background writing ----------------------------------------------- */

rs_err_t rs_snapshot_bg_start(const char *dir, int keep, const struct rs_snapshot_shape *shape,
                              rs_snapshot_fill_t fill, void *ctx, pid_t *pid)
{
    pid_t parent = getpid();
    pid_t child = fork();
    char errstr[512];

    if (child < 0) return RS_EIO;
    if (child > 0) {
        *pid = child;
        return RS_OK;
    }
    /* The child: only this thread exists here, and it touches nothing but
     * its frozen copy of the state and the snapshot file. It dies with the
     * parent, so a killed daemon never leaves a writer behind. */
    if (held_lock_fd >= 0) close(held_lock_fd);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(3);
    if (rs_snapshot_write(dir, keep, shape, fill, ctx, NULL, 0, errstr, sizeof(errstr))) {
        rs_error("%s", errstr);
        _exit(1);
    }
    _exit(0);
}

enum rs_snapshot_bg_state rs_snapshot_bg_poll(pid_t pid, int wait)
{
    int status;
    pid_t r;

    do {
        r = waitpid(pid, &status, wait ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return RS_SNAPSHOT_BG_RUNNING;
    if (r < 0) {
        rs_error("snapshot: waiting for writer %d: %s", (int)pid, strerror(errno));
        return RS_SNAPSHOT_BG_FAILED;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return RS_SNAPSHOT_BG_DONE;
    if (WIFSIGNALED(status))
        rs_error("snapshot: writer %d killed by signal %d", (int)pid, WTERMSIG(status));
    return RS_SNAPSHOT_BG_FAILED;
}

/* ---- reading ---------------------------------------------------------- */

struct rs_snapshot {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version;
    struct rs_snapshot_shape shape;
    int64_t created_ms;
    struct rs_snapshot_section_info *sections;
    size_t nsections;
    int bad;
    char problem[512];
};

static void problem(struct rs_snapshot *snap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct rs_snapshot *snap, const char *fmt, ...)
{
    va_list ap;
    if (snap->bad) return; /* keep the first: later ones follow from it */
    snap->bad = 1;
    va_start(ap, fmt);
    vsnprintf(snap->problem, sizeof(snap->problem), fmt, ap);
    va_end(ap);
}

static int add_section(struct rs_snapshot *snap, const struct rs_snapshot_section_info *si)
{
    struct rs_snapshot_section_info *grown =
        realloc(snap->sections, (snap->nsections + 1) * sizeof(*grown));
    if (!grown) return -1;
    snap->sections = grown;
    snap->sections[snap->nsections++] = *si;
    return 0;
}

static void verify(struct rs_snapshot *snap)
{
    const uint8_t *m = snap->map;
    uint64_t size = snap->size, pos, sum;
    uint32_t shape_bytes;

    if (size == 0) {
        problem(snap, "empty file (0 bytes)");
        return;
    }
    if (size < MAGIC_LEN || memcmp(m, MAGIC, MAGIC_LEN) != 0) {
        problem(snap, "not a recstream snapshot (bad magic)");
        return;
    }
    if (size < MAGIC_LEN + 8) {
        problem(snap, "truncated header: %llu bytes", (unsigned long long)size);
        return;
    }
    memcpy(&snap->version, m + MAGIC_LEN, 4);
    memcpy(&shape_bytes, m + MAGIC_LEN + 4, 4);
    if (snap->version != RS_SNAPSHOT_VERSION) {
        problem(snap, "format version %u, this build reads version %u", snap->version,
                RS_SNAPSHOT_VERSION);
        return;
    }
    if (shape_bytes != SHAPE_BYTES) {
        problem(snap, "header: shape is %u bytes, version %u has %u", shape_bytes,
                snap->version, SHAPE_BYTES);
        return;
    }
    if (size < HEADER_BYTES) {
        problem(snap, "truncated header: %llu bytes of %u", (unsigned long long)size,
                HEADER_BYTES);
        return;
    }
    memcpy(&snap->shape.factors, m + 16, 4);
    memcpy(&snap->shape.rating_min, m + 20, 4);
    memcpy(&snap->shape.rating_max, m + 24, 4);
    memcpy(&snap->created_ms, m + 28, 8);
    memcpy(&sum, m + 36, 8);
    if (XXH3_64bits(m, 36) != sum) {
        problem(snap, "header checksum mismatch");
        return;
    }

    pos = HEADER_BYTES;
    for (;;) {
        struct rs_snapshot_section_info si;
        uint8_t hdr[SECTION_HEADER_BYTES];
        XXH3_state_t st;

        memset(&si, 0, sizeof(si));
        if (pos == size) {
            problem(snap, "truncated after %zu section(s) at byte %llu: no end marker",
                    snap->nsections, (unsigned long long)pos);
            return;
        }
        if (size - pos < SECTION_HEADER_BYTES + 8) {
            problem(snap, "truncated section header at byte %llu (%llu bytes left)",
                    (unsigned long long)pos, (unsigned long long)(size - pos));
            return;
        }
        memcpy(hdr, m + pos, sizeof(hdr));
        memcpy(&si.id, hdr, 4);
        memcpy(si.name, hdr + 4, RS_SNAPSHOT_NAME_MAX);
        si.name[RS_SNAPSHOT_NAME_MAX] = '\0';
        memcpy(&si.length, hdr + 4 + RS_SNAPSHOT_NAME_MAX, 8);
        si.offset = pos + SECTION_HEADER_BYTES;
        if (si.length > size - si.offset - 8) {
            problem(snap,
                    "section %zu (id %u, '%s') at byte %llu: length %llu runs past the end "
                    "of the file (%llu bytes): truncated or corrupt",
                    snap->nsections + 1, si.id, si.name, (unsigned long long)pos,
                    (unsigned long long)si.length, (unsigned long long)size);
            return;
        }
        memcpy(&si.checksum, m + si.offset + si.length, 8);
        XXH3_64bits_reset(&st);
        XXH3_64bits_update(&st, m + si.offset, (size_t)si.length);
        XXH3_64bits_update(&st, hdr, sizeof(hdr));
        si.ok = XXH3_64bits_digest(&st) == si.checksum;
        if (!si.ok)
            problem(snap, "section %zu (id %u, '%s') at byte %llu: checksum mismatch",
                    snap->nsections + 1, si.id, si.name, (unsigned long long)pos);
        if (si.id == RS_SNAPSHOT_END) {
            uint32_t count = 0;
            uint64_t before = 0, end = si.offset + si.length + 8;
            if (si.length == END_PAYLOAD_BYTES) {
                memcpy(&count, m + si.offset, 4);
                memcpy(&before, m + si.offset + 8, 8);
            }
            if (si.length != END_PAYLOAD_BYTES || count != snap->nsections || before != pos)
                problem(snap, "end marker at byte %llu does not match the file (%u sections "
                        "recorded, %zu found)",
                        (unsigned long long)pos, count, snap->nsections);
            if (end != size)
                problem(snap, "%llu unexpected bytes after the end marker",
                        (unsigned long long)(size - end));
            return;
        }
        if (add_section(snap, &si)) {
            problem(snap, "out of memory");
            return;
        }
        pos = si.offset + si.length + 8;
    }
}

struct rs_snapshot *rs_snapshot_open(const char *path, char *errstr, size_t errstr_size)
{
    struct rs_snapshot *snap = calloc(1, sizeof(*snap));
    struct stat st;
    int fd = -1;

    if (!snap || !(snap->path = strdup(path))) {
        snprintf(errstr, errstr_size, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto fail;
    }
    snap->size = (size_t)st.st_size;
    if (snap->size > 0) {
        void *map = mmap(NULL, snap->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(errstr, errstr_size, "%s: mmap: %s", path, strerror(errno));
            goto fail;
        }
        snap->map = map;
        madvise(map, snap->size, MADV_SEQUENTIAL);
    }
    close(fd);
    verify(snap);
    return snap;

fail:
    if (fd >= 0) close(fd);
    rs_snapshot_close(snap);
    return NULL;
}

void rs_snapshot_close(struct rs_snapshot *snap)
{
    if (!snap) return;
    if (snap->map) munmap(snap->map, snap->size);
    free(snap->sections);
    free(snap->path);
    free(snap);
}

const char *rs_snapshot_problem(const struct rs_snapshot *snap)
{
    return snap->bad ? snap->problem : NULL;
}

const char *rs_snapshot_path(const struct rs_snapshot *snap) { return snap->path; }
uint32_t rs_snapshot_version(const struct rs_snapshot *snap) { return snap->version; }
int64_t rs_snapshot_created_ms(const struct rs_snapshot *snap) { return snap->created_ms; }
uint64_t rs_snapshot_size(const struct rs_snapshot *snap) { return snap->size; }
size_t rs_snapshot_sections(const struct rs_snapshot *snap) { return snap->nsections; }

const struct rs_snapshot_shape *rs_snapshot_shape(const struct rs_snapshot *snap)
{
    return &snap->shape;
}

const struct rs_snapshot_section_info *rs_snapshot_section_at(const struct rs_snapshot *snap,
                                                              size_t idx)
{
    return idx < snap->nsections ? &snap->sections[idx] : NULL;
}

static rs_err_t cursor_read(void *ctx, void *buf, size_t len)
{
    struct rs_snapshot_cursor *c = ctx;
    if (len > c->left) return RS_ECORRUPT;
    memcpy(buf, c->p, len);
    c->p += len;
    c->left -= len;
    return RS_OK;
}

static uint64_t cursor_remaining(void *ctx)
{
    return ((struct rs_snapshot_cursor *)ctx)->left;
}

rs_err_t rs_snapshot_reader(const struct rs_snapshot *snap, uint32_t id,
                            struct rs_snapshot_cursor *cursor, struct rs_reader *r)
{
    for (size_t i = 0; i < snap->nsections; i++) {
        const struct rs_snapshot_section_info *si = &snap->sections[i];
        if (si->id != id) continue;
        if (!si->ok || snap->bad) return RS_ECORRUPT;
        cursor->p = snap->map + si->offset;
        cursor->left = si->length;
        r->read = cursor_read;
        r->remaining = cursor_remaining;
        r->ctx = cursor;
        return RS_OK;
    }
    return RS_ENOENT;
}

int rs_snapshot_shape_matches(const struct rs_snapshot_shape *have,
                              const struct rs_snapshot_shape *want, char *errstr,
                              size_t errstr_size)
{
    if (have->factors == want->factors && have->rating_min == want->rating_min &&
        have->rating_max == want->rating_max)
        return 1;
    snprintf(errstr, errstr_size,
             "snapshot has factors = %u, rating scale %g..%g; the configuration has "
             "factors = %u, rating scale %g..%g",
             have->factors, (double)have->rating_min, (double)have->rating_max,
             want->factors, (double)want->rating_min, (double)want->rating_max);
    return 0;
}

/* ---- the snapshot directory ------------------------------------------- */

/* Removes temp files left by a write that was interrupted. */
static void remove_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX_LEN];
    size_t len;

    if (!d) return;
    while ((de = readdir(d)) != NULL) {
        len = strlen(de->d_name);
        if (strncmp(de->d_name, ".snap-", 6) != 0 || len < 4 ||
            strcmp(de->d_name + len - 4, ".tmp") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) == 0) rs_info("snapshot: removed unfinished %s", path);
    }
    closedir(d);
}

rs_err_t rs_snapshot_load_newest(const char *dir, const struct rs_snapshot_shape *want,
                                 rs_snapshot_load_t load, void *ctx, char *path,
                                 size_t path_size, char *errstr, size_t errstr_size)
{
    char **names = NULL;
    size_t n = 0;
    char full[PATH_MAX_LEN], why[512];
    rs_err_t err;
    uint64_t t0;

    if ((err = list_snapshots(dir, &names, &n))) {
        snprintf(errstr, errstr_size, "listing snapshots in %s: %s", dir,
                 err == RS_EIO ? strerror(errno) : rs_err_str(err));
        return err;
    }
    err = n ? RS_ECORRUPT : RS_ENOENT;
    if (n == 0) snprintf(errstr, errstr_size, "no snapshot in %s", dir);
    for (size_t i = 0; i < n; i++) {
        struct rs_snapshot *snap;
        snprintf(full, sizeof(full), "%s/%s", dir, names[i]);
        t0 = rs_mono_ns();
        snap = rs_snapshot_open(full, why, sizeof(why));
        rs_debug("snapshot: %s read and verified in %.1f ms", full, (rs_mono_ns() - t0) / 1e6);
        if (!snap) {
            rs_error("snapshot %s cannot be read: %s; trying an older one", full, why);
            continue;
        }
        if (rs_snapshot_problem(snap)) {
            rs_error("snapshot %s is corrupt: %s; trying an older one", full,
                     rs_snapshot_problem(snap));
            rs_snapshot_close(snap);
            continue;
        }
        if (!rs_snapshot_shape_matches(&snap->shape, want, why, sizeof(why))) {
            snprintf(errstr, errstr_size,
                     "refusing snapshot %s: %s. Start with the configuration it was "
                     "written with, or move the snapshots away to start an empty model",
                     full, why);
            rs_snapshot_close(snap);
            err = RS_EINVAL;
            break;
        }
        t0 = rs_mono_ns();
        err = load(ctx, snap, why, sizeof(why));
        rs_snapshot_close(snap);
        rs_debug("snapshot: state loaded in %.1f ms", (rs_mono_ns() - t0) / 1e6);
        if (err == RS_ECORRUPT) {
            rs_error("snapshot %s does not load: %s; trying an older one", full, why);
            continue;
        }
        if (err) {
            snprintf(errstr, errstr_size, "loading snapshot %s: %s", full, why);
            break;
        }
        if (path) snprintf(path, path_size, "%s", full);
        break;
    }
    if (err == RS_ECORRUPT)
        snprintf(errstr, errstr_size,
                 "none of the %zu snapshot(s) in %s verifies (see above); move them "
                 "away to start an empty model",
                 n, dir);
    free_names(names, n);
    return err;
}
