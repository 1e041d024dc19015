/* raftpg_sim: runs seeded fault schedules against simulated clusters, shrinks a failing one to the
 * shortest schedule that still fails, and prints how to replay it. See tests/sim/README.md. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define SHRINK_RUNS_MAX 400

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* The schedule being run, for a crash report: a soak's seeds are random. */
static volatile uint64_t g_seed;
static volatile unsigned g_nodes;

static size_t put_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

/* A crash (in libraft, in the agent's code or here) names its seed, then dies as it would. */
static void on_crash(int sig)
{
    char buf[128];
    size_t n = 0;
    static const char a[] = "raftpg_sim: crashed in seed=";
    static const char b[] = " nodes=";
    memcpy(buf + n, a, sizeof a - 1);
    n += sizeof a - 1;
    n += put_u64(buf + n, g_seed);
    memcpy(buf + n, b, sizeof b - 1);
    n += sizeof b - 1;
    n += put_u64(buf + n, g_nodes);
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

struct args {
    struct sim_options opt;
    uint64_t seed;
    bool have_seed;
    uint64_t from;
    unsigned schedules;
    unsigned node_list[4];
    unsigned n_node_list;
    bool soak;
    double seconds;
    const char *faults;
    const char *keep;
    bool shrink;
};

struct totals {
    unsigned schedules;
    unsigned failed;
    unsigned counts[CHK_N];
    uint64_t virtual_ms;
    unsigned faults_applied, faults_skipped, failovers;
    rpg_msec max_gap;
    uint64_t acked, lost_unchecked, acked_async;
    unsigned raft_restarts, held_changes;
    unsigned resume_overlaps;
    unsigned resume_starts, resume_claims;
    rpg_msec resume_overlap_max;
    rpg_msec paused_ms;
    unsigned fo_asked, fo_granted, fo_granted_paused, fo_took_over, fo_took_over_paused,
        fo_switchover, fo_no_leader, fo_transfer_refused;
    unsigned fo_refused[FAILOVER_REASON_N];
    unsigned rs_asked, rs_done, rs_refused, rs_failed, keep_checked;
    unsigned so_asked, so_refused_409, so_refused_412, so_refused_503, so_done, so_moved, so_cut,
        so_checked;
    unsigned so_abandoned[SWITCHOVER_REASON_N];
    unsigned sc_asked, sc_refused, sc_recorded, sc_run;
    unsigned sc_cancel_asked, sc_cancelled, sc_cancel_failed;
    unsigned sc_dropped[SCHEDULE_DROP_RESTARTED + 1];
    unsigned hook_ok, hook_failed, hook_killed, hook_hung, hook_abandoned;
    rpg_msec waived_ms, waived4_ms;
    unsigned waived_schedules, waived4_schedules;
    rpg_msec *gaps;
    size_t n_gaps, cap_gaps;
};

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: raftpg_sim [OPTIONS]\n"
            "  --seed S          run the schedule of seed S (shrink it if it fails)\n"
            "  --schedules N     run N schedules, seeds --from.. (default 200 from 1)\n"
            "  --from S          first seed of --schedules\n"
            "  --nodes LIST      3, 5, or 3,5 to alternate (default 3)\n"
            "  --soak            random seeds until interrupted or --seconds T\n"
            "  --seconds T       bound of --soak, in wall-clock seconds\n"
            "  --faults LIST     ci (default), watchdog, timeline, slow, vm, storage, operator,\n"
            "                    crash (pg-crash, pg-stop), known (every group but ci),\n"
            "                    all, or kinds: pg-crash, node-crash, agent-crash, pause,\n"
            "                    partition, loss, delay, clock, switchover, crash-in-action,\n"
            "                    member, switchover-any, agent-crash-primary, pause-primary,\n"
            "                    partition-primary, loss-primary, crash-new-primary, slow-link,\n"
            "                    agent-stop-primary, vm-pause-primary, receiver-lag, vm-pause,\n"
            "                    raft-disk-full, raft-read-only, maintenance, failover,\n"
            "                    restart, pg-stop, pg-no-start, switchover-scheduled\n"
            "  --sync-mode M     synchronous_mode off, quorum (default) or strict; I2 is\n"
            "                    checked unless off\n"
            "  --sync K          synchronous_node_count (default 1)\n"
            "  --max-faults N    faults per schedule, 1..N (default 6)\n"
            "  --window MS       faults start within MS after warm-up (default 20000)\n"
            "  --quiet MS        the cluster runs MS after healing (default 25000)\n"
            "  --budget MS       I4: a primary within MS of a healthy majority (default 8000)\n"
            "  --primary-start-timeout MS\n"
            "                    primary_start_timeout (default 300000, the agent's)\n"
            "  --keep LIST       apply only these faults of the schedule (replay of a shrunk one)\n"
            "  --watchdog        watchdog.mode automatic with a device (the agent's default: off)\n"
            "  --hook            an on_switchover callback on every member: each run succeeds,\n"
            "                    fails, runs into its time-out or hangs (drawn per switchover)\n"
            "  --no-lease        the core alone: no lease, fence or Raft start delay\n"
            "  --no-echo         the lease renewed by barriers alone (no lease echo)\n"
            "  --no-shrink       do not shrink failing schedules\n"
            "  --verbose         trace every step of the simulation on stderr\n");
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *v = x;
    return true;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    a->opt.nodes = 3;
    a->opt.sync_mode = SYNC_MODE_QUORUM; /* conf.c defaults */
    a->opt.sync_k = 1;
    a->opt.faults = SIM_FAULTS_CI;
    a->opt.max_faults = 6;
    a->opt.window = 20000;
    a->opt.quiet = 25000;
    a->opt.budget = 8000;
    a->opt.primary_start_timeout = HA_PRIMARY_START_TIMEOUT_MS;
    a->from = 1;
    a->schedules = 200;
    a->faults = "ci";
    a->shrink = true;
    a->node_list[0] = 3;
    a->n_node_list = 1;
    for (int k = 1; k < argc; k++) {
        const char *o = argv[k];
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;
        uint64_t n = 0;
        bool takes = true;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(o, "--soak") == 0) {
            a->soak = true;
            takes = false;
        } else if (strcmp(o, "--verbose") == 0) {
            a->opt.verbose = true;
            takes = false;
        } else if (strcmp(o, "--watchdog") == 0) {
            a->opt.watchdog = true;
            takes = false;
        } else if (strcmp(o, "--hook") == 0) {
            a->opt.hook = true;
            takes = false;
        } else if (strcmp(o, "--no-lease") == 0) {
            a->opt.no_lease = true;
            takes = false;
        } else if (strcmp(o, "--no-echo") == 0) {
            a->opt.no_echo = true;
            takes = false;
        } else if (strcmp(o, "--no-shrink") == 0) {
            a->shrink = false;
            takes = false;
        } else if (v == NULL) {
            fprintf(stderr, "raftpg_sim: %s needs a value\n", o);
            return -1;
        } else if (strcmp(o, "--seed") == 0 && parse_u64(v, &n)) {
            a->seed = n;
            a->have_seed = true;
        } else if (strcmp(o, "--from") == 0 && parse_u64(v, &n)) {
            a->from = n;
        } else if (strcmp(o, "--schedules") == 0 && parse_u64(v, &n) && n > 0) {
            a->schedules = (unsigned)n;
        } else if (strcmp(o, "--seconds") == 0) {
            a->seconds = atof(v);
        } else if (strcmp(o, "--nodes") == 0) {
            a->n_node_list = 0;
            char buf[32];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t != NULL && a->n_node_list < 4;
                 t = strtok_r(NULL, ",", &save)) {
                if (!parse_u64(t, &n) || n < 1 || n > 5) {
                    fprintf(stderr, "raftpg_sim: --nodes: expected 1..5, got \"%s\"\n", t);
                    return -1;
                }
                a->node_list[a->n_node_list++] = (unsigned)n;
            }
        } else if (strcmp(o, "--faults") == 0) {
            a->faults = v;
            a->opt.faults = sim_fault_mask(v);
            if (a->opt.faults == 0) {
                fprintf(stderr, "raftpg_sim: --faults: unknown fault in \"%s\"\n", v);
                return -1;
            }
        } else if (strcmp(o, "--sync") == 0 && parse_u64(v, &n) && n >= 1 && n <= 16) {
            a->opt.sync_k = (unsigned)n;
        } else if (strcmp(o, "--sync-mode") == 0) {
            if (strcmp(v, "off") == 0) {
                a->opt.sync_mode = SYNC_MODE_OFF;
            } else if (strcmp(v, "quorum") == 0) {
                a->opt.sync_mode = SYNC_MODE_QUORUM;
            } else if (strcmp(v, "strict") == 0) {
                a->opt.sync_mode = SYNC_MODE_STRICT;
            } else {
                fprintf(stderr, "raftpg_sim: --sync-mode: expected off, quorum or strict\n");
                return -1;
            }
        } else if (strcmp(o, "--max-faults") == 0 && parse_u64(v, &n) && n <= SIM_FAULTS_MAX) {
            a->opt.max_faults = (unsigned)n;
        } else if (strcmp(o, "--window") == 0 && parse_u64(v, &n) && n > 0) {
            a->opt.window = n;
        } else if (strcmp(o, "--quiet") == 0 && parse_u64(v, &n)) {
            a->opt.quiet = n;
        } else if (strcmp(o, "--budget") == 0 && parse_u64(v, &n)) {
            a->opt.budget = n;
        } else if (strcmp(o, "--primary-start-timeout") == 0 && parse_u64(v, &n)) {
            a->opt.primary_start_timeout = n;
        } else if (strcmp(o, "--keep") == 0) {
            a->keep = v;
        } else {
            fprintf(stderr, "raftpg_sim: bad option or value: %s %s\n", o, v);
            usage(stderr);
            return -1;
        }
        k += takes;
    }
    return 0;
}

/* Applies --keep to a generated schedule. */
static int apply_keep(struct sim_schedule *s, const char *list)
{
    for (unsigned k = 0; k < s->n; k++) {
        s->keep[k] = false;
    }
    if (list[0] == '\0' || strcmp(list, "none") == 0) {
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        uint64_t n;
        if (!parse_u64(t, &n) || n >= s->n) {
            fprintf(stderr, "raftpg_sim: --keep: no fault %s in a schedule of %u\n", t, s->n);
            return -1;
        }
        s->keep[n] = true;
    }
    return 0;
}

static void add(struct totals *t, const struct sim_result *r)
{
    t->schedules++;
    t->failed += r->n_violations > 0;
    for (unsigned c = 0; c < CHK_N; c++) {
        t->counts[c] += r->counts[c];
    }
    t->virtual_ms += r->virtual_ms;
    t->faults_applied += r->faults_applied;
    t->faults_skipped += r->faults_skipped;
    t->failovers += r->failovers;
    t->max_gap = r->max_gap > t->max_gap ? r->max_gap : t->max_gap;
    t->acked += r->acked;
    t->lost_unchecked += r->lost_unchecked;
    t->acked_async += r->acked_async;
    t->raft_restarts += r->raft_restarts;
    t->held_changes += r->held_changes;
    t->resume_overlaps += r->resume_overlaps;
    t->resume_starts += r->resume_starts;
    t->resume_claims += r->resume_claims;
    t->paused_ms += r->paused_ms;
    t->fo_asked += r->fo_asked;
    t->fo_granted += r->fo_granted;
    t->fo_granted_paused += r->fo_granted_paused;
    t->fo_took_over += r->fo_took_over;
    t->fo_took_over_paused += r->fo_took_over_paused;
    t->fo_switchover += r->fo_switchover;
    t->fo_no_leader += r->fo_no_leader;
    t->fo_transfer_refused += r->fo_transfer_refused;
    for (unsigned k = 0; k < FAILOVER_REASON_N; k++) {
        t->fo_refused[k] += r->fo_refused[k];
    }
    t->rs_asked += r->rs_asked;
    t->rs_done += r->rs_done;
    t->rs_refused += r->rs_refused;
    t->rs_failed += r->rs_failed;
    t->keep_checked += r->keep_checked;
    t->so_asked += r->so_asked;
    t->so_refused_409 += r->so_refused_409;
    t->so_refused_412 += r->so_refused_412;
    t->so_refused_503 += r->so_refused_503;
    t->so_done += r->so_done;
    t->so_moved += r->so_moved;
    t->so_cut += r->so_cut;
    t->so_checked += r->so_checked;
    t->sc_asked += r->sc_asked;
    t->sc_refused += r->sc_refused;
    t->sc_recorded += r->sc_recorded;
    t->sc_run += r->sc_run;
    t->sc_cancel_asked += r->sc_cancel_asked;
    t->sc_cancelled += r->sc_cancelled;
    t->sc_cancel_failed += r->sc_cancel_failed;
    for (unsigned k = 0; k <= SCHEDULE_DROP_RESTARTED; k++) {
        t->sc_dropped[k] += r->sc_dropped[k];
    }
    t->hook_ok += r->hook_ok;
    t->hook_failed += r->hook_failed;
    t->hook_killed += r->hook_killed;
    t->hook_hung += r->hook_hung;
    t->hook_abandoned += r->hook_abandoned;
    for (unsigned k = 0; k < SWITCHOVER_REASON_N; k++) {
        t->so_abandoned[k] += r->so_abandoned[k];
    }
    if (r->resume_overlap_max > t->resume_overlap_max) {
        t->resume_overlap_max = r->resume_overlap_max;
    }
    t->waived_ms += r->waived_ms;
    t->waived_schedules += r->waived_ms > 0;
    t->waived4_ms += r->waived4_ms;
    t->waived4_schedules += r->waived4_ms > 0;
    for (unsigned g = 0; g < r->n_gaps; g++) {
        if (t->n_gaps == t->cap_gaps) {
            size_t cap = t->cap_gaps ? 2 * t->cap_gaps : 1024;
            rpg_msec *v = realloc(t->gaps, cap * sizeof *v);
            if (v == NULL) {
                return;
            }
            t->gaps = v;
            t->cap_gaps = cap;
        }
        t->gaps[t->n_gaps++] = r->gaps[g];
    }
}

static int cmp_msec(const void *a, const void *b)
{
    rpg_msec x = *(const rpg_msec *)a, y = *(const rpg_msec *)b;
    return x < y ? -1 : x > y;
}

static bool fails_with(const struct sim_options *opt, uint64_t seed, const struct sim_schedule *s,
                       enum sim_check c, struct sim_result *r)
{
    if (sim_run(opt, seed, s, r) != 0) {
        return false;
    }
    return r->counts[c] > 0;
}

static unsigned kept(const struct sim_schedule *s, unsigned *idx)
{
    unsigned n = 0;
    for (unsigned k = 0; k < s->n; k++) {
        if (s->keep[k]) {
            idx[n++] = k;
        }
    }
    return n;
}

/* Delta debugging over the faults of the schedule: the result fails the same check and no
 * single fault can be removed from it. */
static void shrink(const struct sim_options *opt, uint64_t seed, struct sim_schedule *s,
                   enum sim_check c, unsigned *runs)
{
    struct sim_result r;
    unsigned idx[SIM_FAULTS_MAX];
    unsigned n = kept(s, idx);
    unsigned parts = 2;
    while (n >= 2 && *runs < SHRINK_RUNS_MAX) {
        bool reduced = false;
        unsigned chunk = (n + parts - 1) / parts;
        for (unsigned start = 0; start < n && !reduced && *runs < SHRINK_RUNS_MAX; start += chunk) {
            struct sim_schedule t = *s;
            for (unsigned k = start; k < start + chunk && k < n; k++) {
                t.keep[idx[k]] = false;
            }
            (*runs)++;
            if (fails_with(opt, seed, &t, c, &r)) {
                *s = t;
                n = kept(s, idx);
                parts = parts > 2 ? parts - 1 : 2;
                reduced = true;
            }
        }
        if (!reduced) {
            if (parts >= n) {
                break;
            }
            parts = 2 * parts < n ? 2 * parts : n;
        }
    }
    /* A failure without any fault is the most telling of all. */
    if (n == 1 && *runs < SHRINK_RUNS_MAX) {
        struct sim_schedule t = *s;
        t.keep[idx[0]] = false;
        (*runs)++;
        if (fails_with(opt, seed, &t, c, &r)) {
            *s = t;
        }
    }
}

static void print_nodes_faults(const struct args *a, unsigned nodes, char *buf, size_t size)
{
    snprintf(buf, size, "--nodes %u --faults %s%s", nodes, a->faults,
             a->opt.no_lease   ? " --no-lease"
             : a->opt.watchdog ? " --watchdog"
                               : "");
    if (a->opt.no_echo && !a->opt.no_lease) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, " --no-echo");
    }
    if (a->opt.hook) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, " --hook");
    }
    if (a->opt.primary_start_timeout != HA_PRIMARY_START_TIMEOUT_MS) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, " --primary-start-timeout %llu",
                 (unsigned long long)a->opt.primary_start_timeout);
    }
    static const char *const modes[] = {"off", "quorum", "strict"};
    if (a->opt.sync_mode != SYNC_MODE_QUORUM || a->opt.sync_k != 1) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, " --sync-mode %s --sync %u", modes[a->opt.sync_mode],
                 a->opt.sync_k);
    }
}

static void report_failure(const struct args *a, const struct sim_options *opt, uint64_t seed,
                           struct sim_schedule *s, const struct sim_result *r)
{
    char common[640]; /* --faults takes up to 511 characters (sim_fault_mask) */
    print_nodes_faults(a, opt->nodes, common, sizeof common);
    printf("FAIL seed=%" PRIu64 " nodes=%u: %u violation(s)\n", seed, opt->nodes, r->n_violations);
    for (unsigned v = 0; v < r->n_violations && v < SIM_VIOLATIONS_MAX; v++) {
        printf("  %s at %.3f s: %s\n", sim_check_name(r->v[v].check), (double)r->v[v].at / 1000.0,
               r->v[v].what);
    }
    enum sim_check c = r->v[0].check;
    unsigned runs = 0;
    unsigned before = 0;
    for (unsigned k = 0; k < s->n; k++) {
        before += s->keep[k];
    }
    if (a->shrink) {
        shrink(opt, seed, s, c, &runs);
    }
    struct sim_result fin;
    struct sim_options quiet = *opt;
    quiet.verbose = false;
    sim_run(&quiet, seed, s, &fin);
    unsigned after = 0;
    char keep[128] = "";
    for (unsigned k = 0; k < s->n; k++) {
        if (s->keep[k]) {
            size_t l = strlen(keep);
            snprintf(keep + l, sizeof keep - l, "%s%u", after ? "," : "", k);
            after++;
        }
    }
    printf("  shortest schedule (%u of %u faults, %u shrinking runs), still failing %s:\n", after,
           before, runs, sim_check_name(c));
    if (after == 0) {
        printf("    (no fault at all)\n");
    }
    for (unsigned k = 0; k < s->n; k++) {
        if (s->keep[k]) {
            printf("    #%u +%.3f s %s: %s\n", k, (double)s->f[k].at / 1000.0,
                   sim_fault_name(s->f[k].kind), fin.fault_log[k][0] ? fin.fault_log[k] : "-");
        }
    }
    if (fin.n_violations > 0) {
        printf("    -> %s at %.3f s: %s\n", sim_check_name(fin.v[0].check),
               (double)fin.v[0].at / 1000.0, fin.v[0].what);
    }
    printf("  replay: raftpg_sim --seed %" PRIu64 " %s --keep %s --verbose\n", seed, common,
           after ? keep : "none");
    fflush(stdout);
}

static void print_totals(struct totals *t, double secs, const struct args *a)
{
    printf("schedules: %u  seconds: %.1f  schedules/s: %.1f  virtual time: %.0f s  "
           "faults: %u applied, %u skipped\n",
           t->schedules, secs, secs > 0 ? t->schedules / secs : 0.0, (double)t->virtual_ms / 1000.0,
           t->faults_applied, t->faults_skipped);
    printf("failovers: %u  acknowledged commits: %" PRIu64 "\n", t->failovers, t->acked);
    if (t->n_gaps > 0) {
        qsort(t->gaps, t->n_gaps, sizeof t->gaps[0], cmp_msec);
        printf("time without a primary while a majority was healthy (%zu gaps): p50 %" PRIu64
               " ms, p90 %" PRIu64 " ms, p99 %" PRIu64 " ms, max %" PRIu64 " ms\n",
               t->n_gaps, t->gaps[t->n_gaps / 2], t->gaps[t->n_gaps * 9 / 10],
               t->gaps[t->n_gaps * 99 / 100], t->max_gap);
    }
    printf("acknowledged while the primary ran asynchronously: %" PRIu64
           "; lost with synchronous mode off (not covered by I2): %" PRIu64 "\n",
           t->acked_async, t->lost_unchecked);
    printf("raft restarts from a directory (write fence): %u; configuration writes held by the "
           "fence: %u\n",
           t->raft_restarts, t->held_changes);
    printf("I1/I3 broken only at a clock-stopped resume (not guaranteed, README \"Fencing\"): "
           "%u time(s), ended at most %" PRIu64 " ms after the resume (bound %d ms)\n",
           t->resume_overlaps, t->resume_overlap_max, SIM_VM_RESUME_WINDOW_MS);
    if (t->resume_starts > 0) {
        printf("of which a start or promotion under way at the pause completed at the resume: "
               "%u time(s)\n",
               t->resume_starts);
    }
    if (t->resume_claims > 0) {
        printf("of which a VIP claim under way at the pause completed at the resume: %u "
               "time(s)\n",
               t->resume_claims);
    }
    if (t->paused_ms > 0) {
        printf("maintenance mode (no primary owed): %" PRIu64 " ms\n", t->paused_ms);
    }
    if (t->fo_asked > 0) {
        unsigned refused = 0;
        for (unsigned k = 0; k < FAILOVER_REASON_N; k++) {
            refused += t->fo_refused[k];
        }
        printf(
            "operator failovers: %u asked; %u granted (%u in maintenance mode), %u candidates "
            "primary within the permit (%u still paused); %u switchovers (healthy primary: below); "
            "%u not the leader or none; %u hand-overs refused; %u refused:",
            t->fo_asked, t->fo_granted, t->fo_granted_paused, t->fo_took_over,
            t->fo_took_over_paused, t->fo_switchover, t->fo_no_leader, t->fo_transfer_refused,
            refused);
        const char *sep = " ";
        for (unsigned k = 0; k < FAILOVER_REASON_N; k++) {
            if (t->fo_refused[k] > 0) {
                printf("%s%s %u", sep, failover_reason_name((enum failover_reason)k),
                       t->fo_refused[k]);
                sep = ", ";
            }
        }
        printf("\n");
    }
    if (t->rs_asked > 0 || t->keep_checked > 0) {
        printf("operator restarts: %u asked; %u restarted (200), %u refused at once (or no "
               "answer), %u failed later; healthy primaries stopped or restarted with no other "
               "fault, checked for no failover (N): %u\n",
               t->rs_asked, t->rs_done, t->rs_refused, t->rs_failed, t->keep_checked);
    }
    if (t->so_asked > 0) {
        unsigned abandoned = 0;
        for (unsigned k = 0; k < SWITCHOVER_REASON_N; k++) {
            abandoned += t->so_abandoned[k];
        }
        printf("switchovers: %u asked; refused at once %u (409), %u (412), %u (503); %u switched "
               "over (200), %u leadership moved, not yet primary (503), %u cut short by the "
               "leader's agent dying, %u abandoned:",
               t->so_asked, t->so_refused_409, t->so_refused_412, t->so_refused_503, t->so_done,
               t->so_moved, t->so_cut, abandoned);
        const char *sep = " ";
        for (unsigned k = 0; k < SWITCHOVER_REASON_N; k++) {
            if (t->so_abandoned[k] > 0) {
                printf("%s%s %u", sep, switchover_reason_name((enum switchover_reason)k),
                       t->so_abandoned[k]);
                sep = ", ";
            }
        }
        printf("; of a healthy cluster with no other fault, checked (W): %u\n", t->so_checked);
    }
    if (t->sc_asked > 0) {
        printf("scheduled switchovers: %u asked; %u refused at once, %u recorded; %u run by a "
               "leader (counted above), dropped:",
               t->sc_asked, t->sc_refused, t->sc_recorded, t->sc_run);
        const char *sep = " ";
        unsigned dropped = 0;
        for (unsigned k = SCHEDULE_DROP_STALE; k <= SCHEDULE_DROP_RESTARTED; k++) {
            if (t->sc_dropped[k] > 0) {
                printf("%s%s %u", sep, schedule_verdict_name((enum schedule_verdict)k),
                       t->sc_dropped[k]);
                sep = ", ";
                dropped += t->sc_dropped[k];
            }
        }
        printf("%s\n", dropped == 0 ? " none" : "");
        printf("cancels of scheduled switchovers (ctl flush switchover): %u asked; %u committed, "
               "%u refused or too late (the leader's own clear came first)\n",
               t->sc_cancel_asked, t->sc_cancelled, t->sc_cancel_failed);
    }
    if (a->opt.hook) {
        printf("on_switchover runs: %u succeeded, %u failed, %u killed at the time-out, %u hung "
               "past the backstop; on_switchover_abandoned fired %u time(s)\n",
               t->hook_ok, t->hook_failed, t->hook_killed, t->hook_hung, t->hook_abandoned);
    }
    printf("I4 waived by rule 6 (no healthy majority could prove it held every acknowledged "
           "commit): %" PRIu64 " ms in %u schedule(s)\n",
           t->waived_ms, t->waived_schedules);
    printf("I4 waived by rule 4 (the previous primary and a synchronous voter attached to it, "
           "as far as any healthy majority can tell, out of its sight): %" PRIu64
           " ms in %u schedule(s)\n",
           t->waived4_ms, t->waived4_schedules);
    printf("violations: %u schedule(s) failed;", t->failed);
    for (unsigned c = 0; c < CHK_N; c++) {
        printf(" %s=%u%s", sim_check_name(c), t->counts[c],
               c == CHK_I2 && a->opt.sync_mode == SYNC_MODE_OFF ? " (unchecked)" : "");
        printf(c + 1 < CHK_N ? "," : "\n");
    }
}

static uint64_t random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x % 1000000000000ull;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (a.soak) {
        /* Only for soaks, whose seeds are random: elsewhere the seed is known, and a sanitizer's
         * own handler reports more. */
        signal(SIGSEGV, on_crash);
        signal(SIGBUS, on_crash);
        signal(SIGABRT, on_crash);
        signal(SIGFPE, on_crash);
    }
    struct totals t;
    memset(&t, 0, sizeof t);
    double start = wall_seconds();
    unsigned total = a.have_seed ? 1 : a.schedules;
    for (unsigned k = 0; !g_stop; k++) {
        if (!a.soak && k >= total) {
            break;
        }
        if (a.soak && a.seconds > 0 && wall_seconds() - start >= a.seconds) {
            break;
        }
        uint64_t seed = a.have_seed ? a.seed : a.soak ? random_seed() : a.from + k;
        struct sim_options opt = a.opt;
        opt.nodes = a.node_list[k % a.n_node_list];
        g_seed = seed;
        g_nodes = opt.nodes;
        struct sim_schedule s;
        sim_schedule_generate(&opt, seed, &s);
        if (a.keep != NULL && apply_keep(&s, a.keep) != 0) {
            return 2;
        }
        struct sim_result r;
        if (sim_run(&opt, seed, &s, &r) != 0) {
            return 2;
        }
        add(&t, &r);
        if (r.n_violations > 0) {
            report_failure(&a, &opt, seed, &s, &r);
        } else if (a.have_seed) {
            printf("ok seed=%" PRIu64 " nodes=%u: no violation; faults:\n", seed, opt.nodes);
            for (unsigned f = 0; f < s.n; f++) {
                if (s.keep[f]) {
                    printf("    #%u +%.3f s %s: %s\n", f, (double)s.f[f].at / 1000.0,
                           sim_fault_name(s.f[f].kind), r.fault_log[f]);
                }
            }
        }
        if (a.soak && t.schedules % 500 == 0) {
            print_totals(&t, wall_seconds() - start, &a);
        }
    }
    print_totals(&t, wall_seconds() - start, &a);
    free(t.gaps);
    return t.failed > 0 ? 1 : 0;
}
