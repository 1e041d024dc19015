/* Benchmark of the Raft transport (scripts/bench-transport.sh runs it): three libraft servers on
 * one loop in this process, on 127.0.0.1, over the authenticated transport (transport.h) or
 * libraft's plain TCP one. Once a leader is elected it commits COUNT barriers one after the
 * other, then COUNT entries of SIZE bytes, and prints the commit latencies and the process's CPU
 * time per commit (all three servers' work) as one JSON line. Asserts nothing.
 *
 * usage: bench_transport plain|secret DIR BASE_PORT [COUNT] [SIZE] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/uv.h>

#include "raftpg/transport.h"

#define N 3

struct server {
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm;
    char dir[512];
    char address[32];
    bool closed;
};

static struct server servers[N];
static bool secured;
static uv_loop_t loop;
static unsigned count = 1000, done_ops;
static size_t size = 4096;
static uint64_t *latencies;
static uint64_t started;
static int phase; /* 0 barriers, 1 entries */
static struct raft *leader;

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    return 0;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double cpu_start;
static char report[2][256];

static void submit(void);

static void summarise(void)
{
    qsort(latencies, count, sizeof *latencies, cmp);
    double sum = 0;
    for (unsigned i = 0; i < count; i++) {
        sum += (double)latencies[i];
    }
    snprintf(report[phase], sizeof report[phase],
             "{\"count\": %u, \"mean_us\": %.0f, \"p50_us\": %.0f, \"p99_us\": %.0f, "
             "\"cpu_us_per_commit\": %.1f}",
             count, sum / count / 1e3, (double)latencies[count / 2] / 1e3,
             (double)latencies[count * 99 / 100] / 1e3, (cpu_ms() - cpu_start) * 1e3 / count);
}

static void closed_cb(struct raft *r)
{
    for (int i = 0; i < N; i++) {
        if (&servers[i].raft == r) {
            raft_uv_close(&servers[i].io);
            if (secured) {
                transport_close(&servers[i].transport);
            } else {
                raft_uv_tcp_close(&servers[i].transport);
            }
            servers[i].closed = true;
        }
    }
}

static void close_all(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
    for (int i = 0; i < N; i++) {
        raft_close(&servers[i].raft, closed_cb);
    }
}

static void finish(void)
{
    printf("{\"transport\": \"%s\", \"entry_bytes\": %zu, \"barrier\": %s, \"apply\": %s}\n",
           secured ? "authenticated+encrypted" : "plain libraft tcp", size, report[0], report[1]);
    fflush(stdout);
    /* Closing while followers still append can trip libraft 0.15's segment writer (it stops a
     * closing poll handle): let the last appends finish first. */
    static uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, close_all, 500, 0);
}

static void op_done(int status)
{
    if (status != 0) {
        fprintf(stderr, "commit failed: %s\n", raft_strerror(status));
        exit(1);
    }
    latencies[done_ops++] = uv_hrtime() - started;
    if (done_ops == count) {
        summarise();
        done_ops = 0;
        if (++phase == 2) {
            finish();
            return;
        }
        cpu_start = cpu_ms();
    }
    submit();
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    free(req);
    op_done(status);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    free(req);
    op_done(status);
}

static void submit(void)
{
    int rv;
    started = uv_hrtime();
    if (phase == 0) {
        struct raft_barrier *req = malloc(sizeof *req);
        rv = raft_barrier(leader, req, barrier_cb);
    } else {
        struct raft_apply *req = malloc(sizeof *req);
        struct raft_buffer buf = {.base = raft_malloc(size), .len = size};
        memset(buf.base, 0x5a, size);
        rv = raft_apply(leader, req, &buf, 1, apply_cb);
    }
    if (rv != 0) {
        fprintf(stderr, "submit: %s\n", raft_strerror(rv));
        exit(1);
    }
}

static void wait_leader(uv_timer_t *t)
{
    for (int i = 0; i < N; i++) {
        if (raft_state(&servers[i].raft) == RAFT_LEADER) {
            leader = &servers[i].raft;
            uv_timer_stop(t);
            uv_close((uv_handle_t *)t, NULL);
            cpu_start = cpu_ms();
            submit();
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_transport plain|secret DIR BASE_PORT [COUNT] [SIZE]\n");
        return 2;
    }
    secured = strcmp(argv[1], "secret") == 0;
    int base = atoi(argv[3]);
    if (argc > 4) {
        count = (unsigned)atoi(argv[4]);
    }
    if (argc > 5) {
        size = (size_t)atoi(argv[5]) / 8 * 8; /* libraft 0.15 wants multiples of 8 */
    }
    latencies = calloc(count, sizeof *latencies);
    uv_loop_init(&loop);
    struct transport_secrets secrets;
    memset(&secrets, 0, sizeof secrets);
    randombytes_buf(secrets.primary, sizeof secrets.primary);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 0; i < N; i++) {
        snprintf(servers[i].address, sizeof servers[i].address, "127.0.0.1:%d", base + i);
        raft_configuration_add(&conf, (raft_id)(i + 1), servers[i].address, RAFT_VOTER);
    }
    char errmsg[RPG_ERRMSG_SIZE];
    for (int i = 0; i < N; i++) {
        struct server *s = &servers[i];
        snprintf(s->dir, sizeof s->dir, "%s/s%d", argv[2], i + 1);
        mkdir(s->dir, 0700);
        int rv = secured ? transport_init(&s->transport, &loop, "bench", &secrets, errmsg)
                         : raft_uv_tcp_init(&s->transport, &loop);
        if (rv != 0 || raft_uv_init(&s->io, &loop, s->dir, &s->transport) != 0) {
            fprintf(stderr, "server %d: cannot set up raft io\n", i + 1);
            return 1;
        }
        s->fsm.version = 1;
        s->fsm.apply = fsm_apply;
        if (raft_init(&s->raft, &s->io, &s->fsm, (raft_id)(i + 1), s->address) != 0) {
            fprintf(stderr, "server %d: raft_init: %s\n", i + 1, raft_errmsg(&s->raft));
            return 1;
        }
        raft_set_election_timeout(&s->raft, 500);
        raft_set_heartbeat_timeout(&s->raft, 100);
        raft_set_pre_vote(&s->raft, true);
        raft_set_snapshot_threshold(&s->raft, 1u << 30);
        if (raft_bootstrap(&s->raft, &conf) != 0 || raft_start(&s->raft) != 0) {
            fprintf(stderr, "server %d: cannot start\n", i + 1);
            return 1;
        }
    }
    raft_configuration_close(&conf);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, wait_leader, 50, 50);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(latencies);
    return 0;
}
