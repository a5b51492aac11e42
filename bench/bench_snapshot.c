/*
 * bench_snapshot.c - what snapshots cost at production size, measured on a
 * synthetic state built straight through the pipeline (no Kafka): USERS users
 * with a few events each over ITEMS items at k factors. It reports the
 * foreground write time, file size and restore time (each the median of
 * RUNS), the same bytes written and read back with plain write+fsync / read
 * as the peer (what the disk alone costs), and the ingestion stall while
 * background snapshots are taken: events are applied in a loop, a forked
 * snapshot is started whenever none is running, and both the fork call and
 * the longest gap between two applied events are recorded.
 *   snapshot_bench DIR [USERS ITEMS FACTORS FORKS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recstream/config.h"
#include "recstream/log.h"
#include "recstream/pipeline.h"
#include "recstream/snapshot.h"

#define RUNS 3

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static uint64_t median(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

static void event(struct rs_event *ev, uint32_t u, uint32_t i, int64_t ts)
{
    ev->type = RS_EVENT_PLAY;
    ev->value = 1.0f;
    ev->ts_ms = ts;
    ev->user_len = (uint16_t)snprintf(ev->user, sizeof(ev->user), "u%u", u);
    ev->item_len = (uint16_t)snprintf(ev->item, sizeof(ev->item), "i%u", i);
}

/* Plain sequential write + fsync of size bytes, then read back: the disk's own cost. */
static void peer_io(const char *dir, uint64_t size, uint64_t *write_ns, uint64_t *read_ns)
{
    char path[4096];
    size_t chunk = 1u << 20;
    char *buf = calloc(1, chunk);
    uint64_t t0, left;
    int fd;

    snprintf(path, sizeof(path), "%s/peer.bin", dir);
    t0 = rs_mono_ns();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (left = size; left > 0;) {
        size_t n = left < chunk ? (size_t)left : chunk;
        memset(buf, (int)(left & 0xff), 64);
        if (write(fd, buf, n) != (ssize_t)n) break;
        left -= n;
    }
    fsync(fd);
    close(fd);
    *write_ns = rs_mono_ns() - t0;
    t0 = rs_mono_ns();
    fd = open(path, O_RDONLY);
    while (read(fd, buf, chunk) > 0) {
    }
    close(fd);
    *read_ns = rs_mono_ns() - t0;
    unlink(path);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "bench-snapshots";
    uint32_t users = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000000;
    uint32_t items = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 100000;
    int factors = argc > 4 ? atoi(argv[4]) : 64;
    int forks = argc > 5 ? atoi(argv[5]) : 20;
    struct rs_config *conf = rs_config_create();
    struct rs_pipeline *p, *q;
    struct rs_snapshot_shape shape;
    struct rs_event ev;
    char errstr[512], path[4096], set[64];
    uint64_t wt[RUNS], rt[RUNS], pw[RUNS], pr[RUNS], t0, size = 0;
    uint64_t *fork_ns = calloc((size_t)forks, sizeof(uint64_t));
    uint64_t *gap_ns = calloc((size_t)forks, sizeof(uint64_t));
    uint64_t events = 0, seed = 1;
    struct stat st;

    rs_log_set_level(getenv("RS_BENCH_DEBUG") ? RS_LOG_DEBUG : RS_LOG_WARN);
    snprintf(set, sizeof(set), "model.factors=%d", factors);
    if (rs_config_set(conf, set, errstr, sizeof(errstr))) return 2;
    snprintf(set, sizeof(set), "snapshot.keep=2");
    rs_config_set(conf, set, errstr, sizeof(errstr));
    p = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
    if (!p) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    rs_pipeline_shape(conf, &shape);

    /* The state: every item once, then 3 events per user. */
    t0 = rs_mono_ns();
    for (uint32_t i = 0; i < items; i++, events++) {
        event(&ev, i % users, i, 1700000000000 + (int64_t)events);
        rs_pipeline_apply(p, &ev);
    }
    for (int round = 0; round < 3; round++)
        for (uint32_t u = 0; u < users; u++, events++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            event(&ev, u, (uint32_t)(seed >> 33) % items, 1700000000000 + (int64_t)events);
            rs_pipeline_apply(p, &ev);
        }
    rs_pipeline_set_offset(p, "events", 0, (int64_t)events);
    rs_pipeline_publish(p); /* drains the dirty set: no sink */
    printf("state: %u users, %u items, k=%d, %llu events applied in %.1f s\n",
           rs_idmap_count(rs_pipeline_users(p)), rs_idmap_count(rs_pipeline_items(p)), factors,
           (unsigned long long)events, ms(rs_mono_ns() - t0) / 1000);

    for (int r = 0; r < RUNS; r++) {
        t0 = rs_mono_ns();
        if (rs_snapshot_write(dir, 2, &shape, rs_pipeline_snapshot_fill, p, path, sizeof(path),
                              errstr, sizeof(errstr))) {
            fprintf(stderr, "%s\n", errstr);
            return 1;
        }
        wt[r] = rs_mono_ns() - t0;
        stat(path, &st);
        size = (uint64_t)st.st_size;
        q = rs_pipeline_create(conf, NULL, errstr, sizeof(errstr));
        t0 = rs_mono_ns();
        if (rs_snapshot_load_newest(dir, &shape, rs_pipeline_snapshot_load, q, NULL, 0, errstr,
                                    sizeof(errstr))) {
            fprintf(stderr, "%s\n", errstr);
            return 1;
        }
        rt[r] = rs_mono_ns() - t0;
        if (rs_idmap_count(rs_pipeline_users(q)) != rs_idmap_count(rs_pipeline_users(p))) {
            fprintf(stderr, "restored state differs\n");
            return 1;
        }
        rs_pipeline_destroy(q);
        peer_io(dir, size, &pw[r], &pr[r]);
    }
    printf("file size: %.1f MB\n", (double)size / 1e6);
    printf("write (temp, fsync, rename, dir fsync), median of %d: %.0f ms; "
           "peer plain write+fsync of the same bytes: %.0f ms; ratio %.2f\n",
           RUNS, ms(median(wt, RUNS)), ms(median(pw, RUNS)),
           (double)median(wt, RUNS) / (double)median(pw, RUNS));
    printf("restore (verify + load), median of %d: %.0f ms; "
           "peer plain read of the same bytes: %.0f ms; ratio %.2f\n",
           RUNS, ms(median(rt, RUNS)), ms(median(pr, RUNS)),
           (double)median(rt, RUNS) / (double)median(pr, RUNS));

    /* Ingestion with background snapshots: the stall is the fork. */
    {
        pid_t child = 0;
        int started = 0;
        uint64_t last = rs_mono_ns(), max_gap = 0, gap_total = 0, t_start = rs_mono_ns();
        uint64_t applied = 0;
        while (started < forks || child) {
            uint64_t now;
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            event(&ev, (uint32_t)(seed >> 20) % users, (uint32_t)(seed >> 40) % items,
                  1700000000000 + (int64_t)events++);
            rs_pipeline_apply(p, &ev);
            applied++;
            now = rs_mono_ns();
            if (now - last > max_gap) max_gap = now - last;
            last = now;
            if ((applied & 255) == 0) rs_pipeline_publish(p);
            if (child && (applied & 1023) == 0 &&
                rs_snapshot_bg_poll(child, 0) != RS_SNAPSHOT_BG_RUNNING) {
                child = 0;
                gap_ns[started - 1] = max_gap;
            }
            if (!child && started < forks) {
                max_gap = 0;
                t0 = rs_mono_ns();
                if (rs_snapshot_bg_start(dir, 2, &shape, rs_pipeline_snapshot_fill, p, &child)) {
                    fprintf(stderr, "fork failed\n");
                    return 1;
                }
                fork_ns[started++] = rs_mono_ns() - t0; /* the gap to the next event holds it */
            }
        }
        gap_total = rs_mono_ns() - t_start;
        qsort(fork_ns, (size_t)forks, sizeof(uint64_t), cmp_u64);
        qsort(gap_ns, (size_t)forks, sizeof(uint64_t), cmp_u64);
        printf("background snapshots: %d taken while applying %llu events in %.1f s\n", forks,
               (unsigned long long)applied, ms(gap_total) / 1000);
        printf("fork (ingestion stall) ms: p50 %.2f, p99 %.2f, max %.2f\n",
               ms(fork_ns[forks / 2]), ms(fork_ns[(forks * 99) / 100]),
               ms(fork_ns[forks - 1]));
        printf("longest gap between two applied events per snapshot ms: p50 %.2f, "
               "p99 %.2f, max %.2f\n",
               ms(gap_ns[forks / 2]), ms(gap_ns[(forks * 99) / 100]), ms(gap_ns[forks - 1]));
    }
    rs_pipeline_destroy(p);
    rs_config_destroy(conf);
    free(fork_ns);
    free(gap_ns);
    return 0;
}
