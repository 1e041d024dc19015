/* Fault schedules: generation from a seed, application at run time, and the constraints that
 * keep the CI set within what the agent handles today. The kinds outside it each expose a known
 * gap (sim.h, README.md): a primary whose agent dies or freezes goes on writing unless a watchdog
 * resets it in time; a primary cut off after writing on a new timeline can see that timeline id
 * reused by the next promotion; a slow link starves the lease. The CI kinds keep every node that
 * writes or leads connected to a live majority by working links, do not take down a node whose
 * new timeline some member has not learnt yet, and skip a fault (saying so) that would. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define DUR_MIN_MS 200
#define DUR_MAX_MS 6000 /* sim_check.c FAULT_DUR_MAX_MS */
#define TRIES 24

static const char *const kind_names[F_KIND_N] = {
    [F_PG_CRASH] = "pg-crash",
    [F_NODE_CRASH] = "node-crash",
    [F_AGENT_CRASH] = "agent-crash",
    [F_PAUSE] = "pause",
    [F_PARTITION] = "partition",
    [F_LOSS] = "loss",
    [F_DELAY] = "delay",
    [F_CLOCK] = "clock",
    [F_SWITCHOVER] = "switchover",
    [F_CRASH_IN_ACTION] = "crash-in-action",
    [F_MEMBER] = "member",
    [F_SWITCHOVER_ANY] = "switchover-any",
    [F_AGENT_CRASH_PRIMARY] = "agent-crash-primary",
    [F_PAUSE_PRIMARY] = "pause-primary",
    [F_PARTITION_PRIMARY] = "partition-primary",
    [F_LOSS_PRIMARY] = "loss-primary",
    [F_CRASH_NEW_PRIMARY] = "crash-new-primary",
    [F_SLOW_LINK] = "slow-link",
    [F_AGENT_STOP_PRIMARY] = "agent-stop-primary",
    [F_VM_PAUSE_PRIMARY] = "vm-pause-primary",
    [F_RECEIVER_LAG] = "receiver-lag",
    [F_RAFT_DISK_FULL] = "raft-disk-full",
    [F_RAFT_READ_ONLY] = "raft-read-only",
    [F_VM_PAUSE] = "vm-pause",
    [F_MAINTENANCE] = "maintenance",
    [F_FAILOVER] = "failover",
    [F_RESTART] = "restart",
    [F_PG_STOP] = "pg-stop",
    [F_PG_NO_START] = "pg-no-start",
    [F_SWITCHOVER_SCHEDULED] = "switchover-scheduled",
};

const char *sim_fault_name(enum sim_fault_kind k)
{
    return k < F_KIND_N ? kind_names[k] : "?";
}

uint32_t sim_fault_mask(const char *list)
{
    uint32_t mask = 0;
    char buf[512];
    sim_copy(buf, sizeof buf, list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        uint32_t m = 0;
        if (strcmp(t, "ci") == 0) {
            m = SIM_FAULTS_CI;
        } else if (strcmp(t, "watchdog") == 0) {
            m = SIM_FAULTS_WATCHDOG;
        } else if (strcmp(t, "timeline") == 0) {
            m = SIM_FAULTS_TIMELINE;
        } else if (strcmp(t, "slow") == 0) {
            m = SIM_FAULTS_SLOW;
        } else if (strcmp(t, "vm") == 0) {
            m = SIM_FAULTS_VM;
        } else if (strcmp(t, "storage") == 0) {
            m = SIM_FAULTS_STORAGE;
        } else if (strcmp(t, "operator") == 0) {
            m = SIM_FAULTS_OPERATOR;
        } else if (strcmp(t, "crash") == 0) {
            m = SIM_FAULTS_CRASH;
        } else if (strcmp(t, "known") == 0) {
            m = SIM_FAULTS_KNOWN;
        } else if (strcmp(t, "all") == 0) {
            m = SIM_FAULTS_ALL;
        } else {
            for (unsigned k = 0; k < F_KIND_N; k++) {
                if (strcmp(t, kind_names[k]) == 0) {
                    m = 1u << k;
                }
            }
        }
        if (m == 0) {
            return 0;
        }
        mask |= m;
    }
    return mask;
}

static bool has_duration(enum sim_fault_kind k)
{
    return k != F_PG_CRASH && k != F_CLOCK && k != F_SWITCHOVER && k != F_SWITCHOVER_ANY &&
           k != F_RESTART && k != F_PG_STOP && k != F_SWITCHOVER_SCHEDULED;
}

/* Scheduled switchovers come from a stream of their own, appended after the other faults: a
 * seed's schedule of the other kinds (and its --keep lists) stays what it was before the kind
 * existed. Each fault of the others brings one with the chance of a kind among them all; alone,
 * 1..max_faults of them. */
static void generate_scheduled(const struct sim_options *opt, uint64_t seed, unsigned n_kinds,
                               struct sim_schedule *s)
{
    if ((opt->faults & (1u << F_SWITCHOVER_SCHEDULED)) == 0 || opt->max_faults == 0) {
        return;
    }
    struct sim_rng rng;
    sim_rng_seed(&rng, seed ^ 0x5c4ed5c4ed5c4edull);
    unsigned max = opt->max_faults < SIM_FAULTS_MAX ? opt->max_faults : SIM_FAULTS_MAX;
    unsigned want = 0;
    if (n_kinds == 0) {
        want = 1 + sim_rng_below(&rng, max);
    } else {
        for (unsigned k = 0; k < s->n; k++) {
            want += sim_rng_below(&rng, n_kinds + 1) == 0;
        }
    }
    unsigned first = s->n;
    for (unsigned k = 0; k < want && s->n < SIM_FAULTS_MAX; k++) {
        struct sim_fault *f = &s->f[s->n];
        f->kind = F_SWITCHOVER_SCHEDULED;
        f->at = sim_rng_below(&rng, (unsigned)opt->window);
        f->dur = 0;
        f->r = sim_rng_next(&rng);
        s->keep[s->n++] = true;
    }
    for (unsigned a = first; a < s->n; a++) {
        for (unsigned b = a + 1; b < s->n; b++) {
            if (s->f[b].at < s->f[a].at) {
                struct sim_fault t = s->f[a];
                s->f[a] = s->f[b];
                s->f[b] = t;
            }
        }
    }
}

void sim_schedule_generate(const struct sim_options *opt, uint64_t seed, struct sim_schedule *s)
{
    struct sim_rng rng;
    sim_rng_seed(&rng, seed ^ 0xfa017fa017fa017full);
    enum sim_fault_kind kinds[F_KIND_N];
    unsigned n_kinds = 0;
    for (unsigned k = 0; k < F_KIND_N; k++) {
        if ((opt->faults & (1u << k)) && k != F_SWITCHOVER_SCHEDULED) {
            kinds[n_kinds++] = (enum sim_fault_kind)k;
        }
    }
    memset(s, 0, sizeof *s);
    if (n_kinds == 0 || opt->max_faults == 0) {
        generate_scheduled(opt, seed, n_kinds, s);
        return;
    }
    s->n = 1 +
           sim_rng_below(&rng, opt->max_faults < SIM_FAULTS_MAX ? opt->max_faults : SIM_FAULTS_MAX);
    for (unsigned k = 0; k < s->n; k++) {
        struct sim_fault *f = &s->f[k];
        f->kind = kinds[sim_rng_below(&rng, n_kinds)];
        f->at = sim_rng_below(&rng, (unsigned)opt->window);
        f->dur = has_duration(f->kind) ? sim_rng_range(&rng, DUR_MIN_MS, DUR_MAX_MS) : 0;
        f->r = sim_rng_next(&rng);
        s->keep[k] = true;
    }
    /* In time order, so that the printed schedule reads as it runs. */
    for (unsigned a = 0; a < s->n; a++) {
        for (unsigned b = a + 1; b < s->n; b++) {
            if (s->f[b].at < s->f[a].at) {
                struct sim_fault t = s->f[a];
                s->f[a] = s->f[b];
                s->f[b] = t;
            }
        }
    }
    generate_scheduled(opt, seed, n_kinds, s);
}

/* ---- the state the faults act on ------------------------------------------------------------- */

static void recompute_links(struct sim_world *w)
{
    memset(w->cut, 0, sizeof w->cut);
    memset(w->lossy, 0, sizeof w->lossy);
    for (unsigned k = 0; k < w->sched->n; k++) {
        const struct sim_fault_state *fs = &w->fs[k];
        if (!fs->active) {
            continue;
        }
        enum sim_fault_kind kind = w->sched->f[k].kind;
        bool loss = kind == F_LOSS || kind == F_LOSS_PRIMARY;
        for (unsigned i = 0; i < w->n; i++) {
            for (unsigned j = 0; j < w->n; j++) {
                if (!fs->links[i][j]) {
                    continue;
                }
                if (loss) {
                    w->lossy[i][j] = true;
                    w->cut[i][j] = w->cut[i][j] || fs->dropping;
                } else {
                    w->cut[i][j] = true;
                }
            }
        }
    }
    sim_net_sync(w);
}

static bool usable(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->exists && !n->removed && n->up;
}

static bool voter(const struct sim_world *w, unsigned i)
{
    for (unsigned j = 0; j < w->n; j++) {
        if (!w->nodes[j].exists) {
            continue;
        }
        struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, w->nodes[j].fx);
        for (unsigned k = 0; k < r->configuration.n; k++) {
            if (r->configuration.servers[k].id == w->nodes[i].fx + 1) {
                return r->configuration.servers[k].role == RAFT_VOTER;
            }
        }
    }
    return false;
}

/* The primary's node: its PostgreSQL accepts writes, is being promoted or is starting as a
 * primary, or it holds the VIP. */
static bool pg_protected(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    const struct sim_pg *p = &n->pg;
    /* The VIP only its agent removes: a node holding it counts as the primary's. */
    if (sim_pg_writable(p) || p->promote_pending ||
        (p->proc == SIM_PROC_STARTING && !p->standby_signal) || n->vip_held) {
        return true;
    }
    /* A program already running finishes without its agent: pg_ctl promote, or a start as a
     * primary. */
    for (unsigned k = 0; k < SIM_OPS_MAX; k++) {
        const struct sim_op *op = &n->ops[k];
        if (op->id != 0 && (op->kind == SOP_PROMOTE || op->kind == SOP_BOOTSTRAP ||
                            (op->kind == SOP_START && !op->standby))) {
            return true;
        }
    }
    return false;
}

static int primary_node(const struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (usable(w, i) && pg_protected(w, i)) {
            return (int)i;
        }
    }
    return -1;
}

static int leader_node(const struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (usable(w, i) && w->nodes[i].agent.alive && !w->nodes[i].raft_killed &&
            w->nodes[i].cons.role == CONS_ROLE_LEADER) {
            return (int)i;
        }
    }
    return -1;
}

/* A hypothetical change: agents stopped (down), PostgreSQL servers killed (pg_dead), links cut
 * in both directions (cut). */
struct change {
    unsigned down;
    unsigned pg_dead;
    bool cut[SIM_NODES_MAX][SIM_NODES_MAX];
};

/* Node x, itself a voter, and the live voters it has working links with (after change c) make a
 * majority. */
static bool reaches_majority(const struct sim_world *w, unsigned x, const struct change *c)
{
    unsigned majority = sim_voters(w) / 2 + 1;
    unsigned reach = voter(w, x) && w->nodes[x].storage_fault == 0 ? 1 : 0;
    for (unsigned y = 0; y < w->n; y++) {
        if (y == x || !usable(w, y) || !voter(w, y) || (c->down >> y & 1) ||
            !w->nodes[y].agent.alive || w->nodes[y].frozen || w->nodes[y].raft_killed ||
            w->nodes[y].storage_fault != 0) {
            continue;
        }
        reach += sim_link(w, x, y) && !w->lossy[x][y] && !w->lossy[y][x] && !c->cut[x][y] &&
                 !c->cut[y][x];
    }
    return reach >= majority;
}

/* Without the lease, a node that writes or leads is safe only while it reaches a live majority:
 * that is what the agent handles today. */
static bool safe_after(const struct sim_world *w, const struct change *c)
{
    for (unsigned x = 0; x < w->n; x++) {
        if (!usable(w, x)) {
            continue;
        }
        bool down = (c->down >> x & 1) || !w->nodes[x].agent.alive || w->nodes[x].frozen ||
                    w->nodes[x].raft_killed || w->nodes[x].storage_fault != 0;
        bool writes = pg_protected(w, x) && !(c->pg_dead >> x & 1);
        bool leads = !down && w->nodes[x].cons.role == CONS_ROLE_LEADER;
        if (!writes && !leads) {
            continue;
        }
        if (down || !reaches_majority(w, x, c)) {
            return false;
        }
    }
    /* A majority of live voters that holds together only through cut or lossy links can still
     * elect leaders, and lose them again at any moment: a primary then goes on writing after
     * its leadership is gone. Either the live voters are too few to elect anyone, or a majority
     * of them is fully connected by working links. */
    unsigned live = 0;
    for (unsigned y = 0; y < w->n; y++) {
        if (usable(w, y) && voter(w, y) && !(c->down >> y & 1) && w->nodes[y].agent.alive &&
            !w->nodes[y].frozen && !w->nodes[y].raft_killed && w->nodes[y].storage_fault == 0) {
            live |= 1u << y;
        }
    }
    unsigned majority = sim_voters(w) / 2 + 1;
    if ((unsigned)__builtin_popcount(live) < majority) {
        return true;
    }
    for (unsigned set = live; set != 0; set = (set - 1) & live) {
        if ((unsigned)__builtin_popcount(set) < majority) {
            continue;
        }
        bool clique = true;
        for (unsigned a = 0; a < w->n && clique; a++) {
            for (unsigned b = a + 1; b < w->n && clique; b++) {
                clique = !(set >> a & 1) || !(set >> b & 1) ||
                         (sim_link(w, a, b) && !w->lossy[a][b] && !w->lossy[b][a] &&
                          !c->cut[a][b] && !c->cut[b][a]);
            }
        }
        if (clique) {
            return true;
        }
    }
    return false;
}

static void note(struct sim_world *w, unsigned k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct sim_world *w, unsigned k, const char *fmt, ...)
{
    char msg[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sim_copy(w->res->fault_log[k], sizeof w->res->fault_log[k], msg);
    sim_trace(w, -1, "fault %u %s: %s", k, sim_fault_name(w->sched->f[k].kind), msg);
}

static void skip(struct sim_world *w, unsigned k, const char *why)
{
    w->res->faults_skipped++;
    note(w, k, "skipped: %s", why);
}

/* A random usable node for which accept() holds, or -1. */
static int pick(struct sim_world *w, struct sim_rng *rng,
                bool (*accept)(struct sim_world *w, unsigned i, void *arg), void *arg)
{
    unsigned cand[SIM_NODES_MAX], n = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (usable(w, i) && (accept == NULL || accept(w, i, arg))) {
            cand[n++] = i;
        }
    }
    return n == 0 ? -1 : (int)cand[sim_rng_below(rng, n)];
}

/* After nodes in down go away (agent dead, paused or node down), would no node on the newest
 * timeline stay while one that has not even its history file does? Candidate choice prefers the
 * highest timeline, so a node on it would be chosen; among the others it goes by position, and
 * one without the history file, promoted, picks that timeline id again. pg_rewind later takes the
 * two histories for one ("same timeline", no rewind): the rejoining node streams WAL that diverged
 * (check D). The agent cannot prevent that until a promotion reserves its timeline id beyond any a
 * previous primary may have used (README.md); crash-new-primary and the -primary kinds let it
 * happen on purpose. */
static bool timeline_at_risk(const struct sim_world *w, unsigned down)
{
    uint32_t newest = 0;
    for (unsigned j = 0; j < w->n; j++) {
        const struct sim_node *n = &w->nodes[j];
        if (n->exists && !n->removed && n->pg.data && !n->pg.broken) {
            uint32_t tl = sim_pg_max_tl(&n->pg);
            newest = tl > newest ? tl : newest;
        }
    }
    bool knower = false, unaware = false;
    for (unsigned j = 0; j < w->n; j++) {
        const struct sim_node *n = &w->nodes[j];
        if (!n->exists || n->removed || !n->up || !n->pg.data || n->pg.broken || n->frozen ||
            !n->agent.alive || (down >> j & 1)) {
            continue;
        }
        if (sim_pg_tl(&n->pg) >= newest) {
            knower = true;
        } else if (sim_pg_max_tl(&n->pg) < newest) {
            unaware = true;
        }
    }
    return unaware && !knower;
}

static bool lone_timeline(const struct sim_world *w, unsigned i)
{
    return timeline_at_risk(w, 1u << i);
}

static bool accept_agent_down(struct sim_world *w, unsigned i, void *arg)
{
    bool pg_too = *(bool *)arg;
    struct change c;
    memset(&c, 0, sizeof c);
    c.down = 1u << i;
    c.pg_dead = pg_too ? 1u << i : 0;
    return w->nodes[i].agent.alive && !w->nodes[i].frozen && safe_after(w, &c) &&
           !lone_timeline(w, i);
}

static bool accept_storage_fault(struct sim_world *w, unsigned i, void *arg)
{
    return w->nodes[i].storage_fault == 0 && !w->nodes[i].storage_exited &&
           accept_agent_down(w, i, arg);
}

static bool accept_any_up(struct sim_world *w, unsigned i, void *arg)
{
    (void)arg;
    return w->nodes[i].agent.alive && !w->nodes[i].frozen;
}

static bool accept_pg_running(struct sim_world *w, unsigned i, void *arg)
{
    (void)arg;
    return w->nodes[i].pg.proc != SIM_PROC_DOWN && !w->nodes[i].frozen;
}

/* ---- node-level faults ----------------------------------------------------------------------- */

static void node_crash(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    sim_agent_crash(w, i);
    sim_ops_kill(w, i);
    sim_pg_crash(w, i);
    n->up = false;
    n->frozen = false;
    n->agent_frozen = false;
    n->vm_paused = false;
    n->vip_held = false;       /* the address goes with the machine */
    n->guard_unfenced = false; /* and so does the guard */
    n->wd_armed = false;
    n->wd_gen++;
    sim_trace(w, (int)i, "node down");
}

/* The restart goes through the fault that took the node down when there is one (it restarts it
 * when it ends); a watchdog reset schedules its own. */
void sim_node_reset(struct sim_world *w, unsigned i, rpg_msec down_ms)
{
    node_crash(w, i);
    w->nodes[i].reset_until = sim_now(w) + down_ms;
    sim_push(w, w->nodes[i].reset_until, EV_NODE_BACK, (int)i, 0, 0);
}

void sim_node_restart(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (n->removed || sim_now(w) < n->reset_until) {
        return;
    }
    if (!n->up) {
        n->up = true;
        sim_trace(w, (int)i, "node up");
    }
    if (!n->agent.alive) {
        sim_push(w, sim_now(w), EV_AGENT_START, (int)i, 0, 0);
    }
}

static void freeze(struct sim_world *w, unsigned i, rpg_msec dur)
{
    struct sim_node *n = &w->nodes[i];
    n->frozen = true;
    n->frozen_until = sim_now(w) + dur;
    n->frozen_at = sim_now(w);
    sim_raft_kill(w, i);
    sim_trace(w, (int)i, "node paused");
}

void sim_unfreeze(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->frozen) {
        return;
    }
    n->frozen = false;
    n->frozen_until = sim_now(w);
    if (n->agent.alive) {
        sim_raft_revive(w, i);
    }
    sim_trace(w, (int)i, "node resumed");
}

void sim_decommission(struct sim_world *w, const char *name)
{
    int i = sim_node_by_name(w, name);
    if (i < 0 || w->nodes[i].removed) {
        return;
    }
    struct sim_node *n = &w->nodes[i];
    sim_agent_crash(w, (unsigned)i);
    sim_ops_kill(w, (unsigned)i);
    if (n->pg.proc != SIM_PROC_DOWN) {
        n->pg.proc = SIM_PROC_DOWN;
        n->pg.inc++;
        n->pg.in_recovery = false;
        n->pg.streaming = false;
        n->pg.streaming_from = -1;
    }
    n->removed = true;
    sim_trace(w, i, "decommissioned after its removal");
}

/* ---- crash-in-action ------------------------------------------------------------------------- */

static const enum ha_action trigger_actions[] = {
    HA_ACT_PROMOTE,    HA_ACT_START_PRIMARY,  HA_ACT_START_STANDBY, HA_ACT_REWIND,
    HA_ACT_CLONE,      HA_ACT_REINIT,         HA_ACT_FOLLOW,        HA_ACT_DEMOTE,
    HA_ACT_CHECKPOINT, HA_ACT_RECORD_PRIMARY, HA_ACT_SYNC_SLOTS,
};

void sim_trigger_action(struct sim_world *w, unsigned i, enum ha_action a)
{
    struct sim_trigger *t = &w->nodes[i].trigger;
    if (!t->armed || t->action != a || sim_now(w) > t->until) {
        return;
    }
    t->armed = false;
    sim_push(w, sim_now(w) + t->delay_ms, EV_CRASH_ARMED, (int)i, 0, (uint64_t)t->fault);
}

void sim_new_primary(struct sim_world *w, unsigned i)
{
    int k = w->crash_new_primary;
    if (k < 0 || sim_now(w) > w->crash_new_primary_until) {
        return;
    }
    struct sim_fault_state *fs = &w->fs[k];
    struct sim_trigger *t = &w->nodes[i].trigger;
    w->crash_new_primary = -1;
    t->armed = false;
    t->action = HA_ACT_PROMOTE;
    t->what = 1;
    t->delay_ms = sim_rng_below(&fs->rng, 1000);
    t->fault = k;
    t->unguarded = true;
    sim_push(w, sim_now(w) + t->delay_ms, EV_CRASH_ARMED, (int)i, 0, (uint64_t)k);
}

void sim_trigger_fire(struct sim_world *w, unsigned i)
{
    struct sim_trigger *t = &w->nodes[i].trigger;
    unsigned k = (unsigned)t->fault;
    struct sim_fault_state *fs = &w->fs[k];
    if (!usable(w, i)) {
        return;
    }
    if (t->what == 0) {
        sim_pg_crash(w, i);
        note(w, k, "postgresql of %s crashed %u ms into %s", w->nodes[i].name, t->delay_ms,
             ha_action_name(t->action));
        return;
    }
    bool pg_too = t->what == 1;
    if (!t->unguarded && !accept_agent_down(w, i, &pg_too)) {
        skip(w, k,
             lone_timeline(w, i)
                 ? "the others would not know the newest timeline (see crash-new-primary)"
                 : "would leave the primary without a majority");
        return;
    }
    rpg_msec down = sim_rng_range(&fs->rng, 200, 4000);
    if (pg_too) {
        node_crash(w, i);
    } else {
        sim_agent_crash(w, i);
        sim_guard_wake(w, i);
    }
    note(w, k, "%s of %s crashed %u ms into %s, back after %" PRIu64 " ms",
         pg_too ? "node" : "agent", w->nodes[i].name, t->delay_ms,
         t->unguarded ? "its promotion" : ha_action_name(t->action), down);
    fs->crashed |= 1u << i;
    sim_push(w, sim_now(w) + down, EV_FAULT_END, (int)k, 0, 0);
}

/* ---- links ----------------------------------------------------------------------------------- */

/* Draws a partition shape into links: isolate a node, split in two groups, cut random links, or
 * cut one direction of one link. */
static void draw_shape(struct sim_world *w, struct sim_rng *rng, int must_isolate,
                       bool links[SIM_NODES_MAX][SIM_NODES_MAX])
{
    memset(links, 0, sizeof(bool) * SIM_NODES_MAX * SIM_NODES_MAX);
    unsigned nodes[SIM_NODES_MAX], n = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (w->nodes[i].exists && !w->nodes[i].removed) {
            nodes[n++] = i;
        }
    }
    unsigned shape = must_isolate >= 0 ? sim_rng_below(rng, 2) : sim_rng_below(rng, 4);
    if (shape == 0) {
        unsigned x = must_isolate >= 0 ? (unsigned)must_isolate : nodes[sim_rng_below(rng, n)];
        for (unsigned k = 0; k < n; k++) {
            if (nodes[k] != x) {
                links[x][nodes[k]] = links[nodes[k]][x] = true;
            }
        }
    } else if (shape == 1) {
        /* Two groups; an isolated primary lands in the smaller one. */
        bool side[SIM_NODES_MAX] = {false};
        unsigned small = 0;
        for (unsigned k = 0; k < n; k++) {
            side[nodes[k]] = sim_rng_below(rng, 2) == 1;
        }
        if (must_isolate >= 0) {
            for (unsigned k = 0; k < n; k++) {
                small += side[nodes[k]] == side[must_isolate];
            }
            if (2 * small > n) {
                for (unsigned k = 0; k < n; k++) {
                    side[nodes[k]] =
                        nodes[k] == (unsigned)must_isolate ||
                        (side[nodes[k]] != side[must_isolate] ? false : sim_rng_below(rng, 3) == 0);
                }
                side[must_isolate] = true;
            }
        }
        for (unsigned a = 0; a < n; a++) {
            for (unsigned b = 0; b < n; b++) {
                links[nodes[a]][nodes[b]] = a != b && side[nodes[a]] != side[nodes[b]];
            }
        }
    } else if (shape == 2) {
        for (unsigned a = 0; a < n; a++) {
            for (unsigned b = a + 1; b < n; b++) {
                if (sim_rng_below(rng, 3) == 0) {
                    links[nodes[a]][nodes[b]] = links[nodes[b]][nodes[a]] = true;
                }
            }
        }
    } else {
        unsigned a = nodes[sim_rng_below(rng, n)];
        unsigned b = nodes[sim_rng_below(rng, n)];
        if (a != b) {
            links[a][b] = true;
        }
    }
}

static void describe_links(const struct sim_world *w, bool links[SIM_NODES_MAX][SIM_NODES_MAX],
                           char *buf, size_t size)
{
    buf[0] = '\0';
    for (unsigned i = 0; i < w->n; i++) {
        for (unsigned j = 0; j < w->n; j++) {
            if (!links[i][j] || (links[j][i] && j < i)) {
                continue;
            }
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, "%s%s%s%s", l ? " " : "", w->nodes[i].name,
                     links[j][i] ? "-" : ">", w->nodes[j].name);
        }
    }
}

static bool shape_safe(const struct sim_world *w, bool links[SIM_NODES_MAX][SIM_NODES_MAX])
{
    struct change c;
    memset(&c, 0, sizeof c);
    memcpy(c.cut, links, sizeof c.cut);
    /* A node cut off from the majority is out of reach, as good as down for the timeline. */
    unsigned cut_off = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (usable(w, i) && !reaches_majority(w, i, &c)) {
            cut_off |= 1u << i;
        }
    }
    return safe_after(w, &c) && !timeline_at_risk(w, cut_off);
}

static bool any_link(const struct sim_world *w, bool links[SIM_NODES_MAX][SIM_NODES_MAX])
{
    for (unsigned i = 0; i < w->n; i++) {
        for (unsigned j = 0; j < w->n; j++) {
            if (links[i][j]) {
                return true;
            }
        }
    }
    return false;
}

static void begin_links(struct sim_world *w, unsigned k, bool loss, bool on_primary)
{
    struct sim_fault_state *fs = &w->fs[k];
    const struct sim_fault *f = &w->sched->f[k];
    int target = -1;
    if (on_primary) {
        target = primary_node(w);
        target = target >= 0 ? target : leader_node(w);
        if (target < 0) {
            skip(w, k, "no primary or leader to cut off");
            return;
        }
    }
    bool found = false;
    for (unsigned t = 0; t < TRIES && !found; t++) {
        if (loss && on_primary) {
            memset(fs->links, 0, sizeof fs->links);
            for (unsigned j = 0; j < w->n; j++) {
                if ((int)j != target) {
                    fs->links[target][j] = fs->links[j][target] = true;
                }
            }
        } else {
            draw_shape(w, &fs->rng, target, fs->links);
        }
        found = any_link(w, fs->links) && (on_primary || shape_safe(w, fs->links));
    }
    if (!found) {
        skip(w, k, "every shape drawn would leave the primary without a majority");
        return;
    }
    char desc[80];
    describe_links(w, fs->links, desc, sizeof desc);
    fs->active = true;
    fs->dropping = loss;
    note(w, k, "%s %s for %" PRIu64 " ms", loss ? "lossy" : "cut", desc, f->dur);
    recompute_links(w);
    if (loss) {
        sim_push(w, sim_now(w) + sim_rng_range(&fs->rng, 30, 300), EV_FLAP, (int)k, 0, 0);
    }
    sim_push(w, sim_now(w) + f->dur, EV_FAULT_END, (int)k, 0, 0);
    w->res->faults_applied++;
}

void sim_fault_flap(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    if (!fs->active) {
        return;
    }
    fs->dropping = sim_rng_below(&fs->rng, 2) == 1;
    recompute_links(w);
    sim_push(w, sim_now(w) + sim_rng_range(&fs->rng, 30, 300), EV_FLAP, (int)k, 0, 0);
}

/* ---- the operator ---------------------------------------------------------------------------- */

/* `ctl pause` for fault k: asked of the leader, which must be there to take it (ctl says so
 * otherwise); the operator then wants the pause on until the fault ends (sim_operator_tick).
 * Returns the leader asked, or -1 when the fault is skipped. */
static int operator_pause(struct sim_world *w, unsigned k)
{
    char errmsg[RPG_ERRMSG_SIZE];
    int i = leader_node(w);
    if (i < 0 || !sim_agent_leader(w, (unsigned)i)) {
        skip(w, k, "no ready leader to take the pause");
        return -1;
    }
    if (sim_set_pause(w, (unsigned)i, true, errmsg) != 0) {
        skip(w, k, errmsg);
        return -1;
    }
    w->pause_wanted++;
    w->pause_try_at = sim_now(w);
    return i;
}

/* How a failover fault runs: the request alone at a random moment (with or without a healthy
 * primary, as the schedule left the cluster), or a drill that first kills the primary's
 * PostgreSQL (the leader then has no healthy primary until its agent starts it again), or the
 * documented drill in maintenance mode: pause, kill, failover, resume at the fault's end; or the
 * same drill to a standby on a slow link (40..60 ms: its WAL arrives a replication round after
 * the other standbys', which acknowledge without it, so it may lack the last of them). */
enum sim_failover_drill { DRILL_ASK = 0, DRILL_KILL, DRILL_PAUSED_KILL, DRILL_LAG_KILL, DRILL_N };
static const char *const drill_names[DRILL_N] = {"", "kill, ", "pause, kill, ",
                                                 "pause, lag, kill, "};

/* The steps of a drill (EV_OPERATOR's sub). */
enum sim_operator_step {
    OP_WAIT_PAUSE = 0,
    OP_KILL,
    OP_ASK,
    OP_WATCH,
    OP_WATCH_END,
    OP_SO_END,
    OP_SO_CANCEL
};

/* ---- switchovers (switchover.c through the shared steps, switchover_step.h) -------------------
 */

/* How long after the server accepts writes again the cluster is still watched: a failover the
 * stop caused would come within a few election timeouts (a lapsed lease, a hand-over). */
#define WATCH_AFTER_MS 2000

static bool other_fault_in_force(const struct sim_world *w, unsigned k);

/* How long an accepted switchover may take at most: each step's bound, with the ticks' slack;
 * with on_switchover (--hook), its time-out and backstop before. */
#define SO_END_MS                                                                                  \
    (SWITCHOVER_STOP_BACKSTOP_MS + SWITCHOVER_CATCHUP_MS + SWITCHOVER_TRANSFER_MS +                \
     SWITCHOVER_PRIMARY_MS + 1000)
#define SO_HOOK_MS (SIM_CALLBACK_TIMEOUT_MS + SWITCHOVER_HOOK_BACKSTOP_MS)
static rpg_msec so_end_ms(const struct sim_world *w)
{
    return SO_END_MS + (w->opt->hook ? SO_HOOK_MS : 0);
}

/* Check W holds for the switchover fault k asks of node l when l is the ready leader running the
 * primary of a healthy cluster, no other fault is in force and none began in the last
 * WATCH_AFTER_MS: then, as long as no other fault begins, the switchover ends within SO_END_MS,
 * answered 200 with its candidate accepting writes. */
static bool switchover_watch_begin(struct sim_world *w, unsigned k, int l)
{
    struct sim_fault_state *fs = &w->fs[k];
    int p;
    fs->so_watch = w->phase == SIM_FAULTS && !other_fault_in_force(w, k) &&
                   sim_cluster_healthy(w, &p) && p == l &&
                   (w->prev_fault_at == 0 || sim_now(w) - w->prev_fault_at >= WATCH_AFTER_MS);
    fs->so_begun = w->faults_begun;
    fs->so_from = sim_now(w);
    fs->so_leader = l;
    return fs->so_watch;
}

/* Ends the watch of fs's switchover: whether its outcome is to be checked, that is no other
 * fault began since (the outcome is then not the switchover's alone). */
static bool so_watch_ends(struct sim_world *w, struct sim_fault_state *fs)
{
    fs->so_watch = false;
    if (w->faults_begun != fs->so_begun) {
        return false;
    }
    w->res->so_checked++;
    return true;
}

/* A switchover was asked of node l: status 200 or 0 begun, else refused. */
static void switchover_asked(struct sim_world *w, unsigned k, int l, int status, bool watch)
{
    struct sim_result *res = w->res;
    res->so_asked++;
    if (status != 0 && status != 200) {
        w->fs[k].so_watch = false;
        res->so_refused_409 += status == 409;
        res->so_refused_412 += status == 412;
        res->so_refused_503 += status != 409 && status != 412;
        return;
    }
    (void)l;
    w->res->faults_applied++;
    if (watch) {
        sim_push(w, sim_now(w) + so_end_ms(w), EV_OPERATOR, (int)k, 0, OP_SO_END);
    }
}

void sim_switchover_ended(struct sim_world *w, unsigned l, int fault,
                          const struct switchover_action *x)
{
    struct sim_result *res = w->res;
    const struct sim_agent *a = &w->nodes[l].agent;
    w->so_ended_at = sim_now(w);
    switch (x->kind) {
    case SWITCHOVER_ACT_DONE: res->so_done++; break;
    case SWITCHOVER_ACT_MOVED: res->so_moved++; break;
    default: res->so_abandoned[x->reason < SWITCHOVER_REASON_N ? x->reason : 0]++; break;
    }
    if (fault < 0 || (unsigned)fault >= w->sched->n) {
        return;
    }
    struct sim_fault_state *fs = &w->fs[fault];
    if (!fs->so_watch || fs->so_leader != (int)l) {
        return;
    }
    if (!so_watch_ends(w, fs)) {
        return;
    }
    int c = sim_node_by_name(w, a->so.to);
    if (a->so_expect != SWITCHOVER_REASON_NONE) {
        /* on_switchover failed, hung or could not start: given up for that reason, before
         * postgresql was touched (the same server accepts writes). */
        const struct sim_node *n = &w->nodes[l];
        if (x->kind != SWITCHOVER_ACT_GIVE_UP || x->reason != a->so_expect) {
            sim_violation(
                w, CHK_SWITCH,
                "switchover %s -> %s of a healthy cluster with no other fault, whose "
                "on_switchover callback %s: %d %s, expected abandoned (%s)",
                a->so.from, a->so.to,
                a->so_expect == SWITCHOVER_REASON_HOOK_BUSY ? "could not start" : "did not succeed",
                x->status,
                x->kind == SWITCHOVER_ACT_GIVE_UP ? switchover_reason_name(x->reason) : x->msg,
                switchover_reason_name(a->so_expect));
        } else if (n->pg.inc != a->so_pg_inc || !sim_pg_writable(&n->pg)) {
            sim_violation(w, CHK_SWITCH,
                          "switchover %s -> %s abandoned (%s), but its server was touched (%s)",
                          a->so.from, a->so.to, switchover_reason_name(x->reason),
                          n->pg.inc != a->so_pg_inc ? "stopped or restarted"
                                                    : "it does not accept writes");
        }
    } else if (x->kind != SWITCHOVER_ACT_DONE) {
        sim_violation(
            w, CHK_SWITCH, "switchover %s -> %s of a healthy cluster with no other fault: %d %s",
            a->so.from, a->so.to, x->status,
            x->kind == SWITCHOVER_ACT_GIVE_UP ? switchover_reason_name(x->reason) : x->msg);
    } else if (c < 0 || !sim_pg_writable(&w->nodes[c].pg)) {
        sim_violation(w, CHK_SWITCH,
                      "switchover %s -> %s answered 200, but %s does not accept writes", a->so.from,
                      a->so.to, a->so.to);
    }
}

/* OP_SO_END: a checked switchover that has not ended by now. */
static void switchover_deadline(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    if (!fs->so_watch) {
        return;
    }
    if (!so_watch_ends(w, fs)) {
        return;
    }
    const struct sim_agent *a = &w->nodes[fs->so_leader].agent;
    sim_violation(w, CHK_SWITCH,
                  "%sswitchover asked of %s at %.3f s has not ended %" PRIu64 " ms after %s (%s)",
                  fs->so_at_ms != 0 ? "scheduled " : "", w->nodes[fs->so_leader].name,
                  (double)fs->so_from / 1000, so_end_ms(w), fs->so_at_ms != 0 ? "its time" : "it",
                  a->alive ? switchover_phase_name(a->so.phase) : "its agent died");
}

/* ---- scheduled switchovers (schedule.h) ------------------------------------------------------ */

/* A leader's HA tick finds a due schedule within this long of its time (ticks, the clear's
 * commit). */
#define SCHED_SLACK_MS 2000

/* `raftpg ctl switchover --scheduled`: through the leader, 1..5 s ahead on the world's wall
 * clock, to the best standby then or a named other member, naming the primary to move from or
 * not. Check W watches it as a switchover asked of that leader at that time (a healthy cluster,
 * no other fault in force or begun until it ends): it must run, once, and end as asked. */
static void operator_schedule(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    struct sim_result *res = w->res;
    int l = leader_node(w);
    if (l < 0 || !sim_agent_leader(w, (unsigned)l) || w->nodes[l].frozen ||
        w->nodes[l].agent_frozen) {
        skip(w, k, "no ready raft leader answers");
        return;
    }
    const struct fsm_state *st = &w->nodes[l].cons.state;
    char cand[FSM_NAME_MAX] = "", from[FSM_NAME_MAX] = "";
    if (st->n_members > 0 && sim_rng_chance(&fs->rng, 500)) {
        sim_copy(cand, sizeof cand, st->members[sim_rng_below(&fs->rng, st->n_members)].name);
        if (strcmp(cand, w->nodes[l].name) == 0) {
            cand[0] = '\0'; /* the operator names another member */
        }
    }
    if (sim_rng_chance(&fs->rng, 300)) {
        sim_copy(from, sizeof from, st->primary.name);
    }
    int64_t at = sim_wall_ms(w) + sim_rng_range(&fs->rng, 1000, 5000);
    char at_s[48];
    schedule_format_time(at, at_s, sizeof at_s);
    /* Unlike a request, a schedule is taken while a switchover runs (its on_switchover callback
     * may take seconds), and a new primary's first operations may still be under way when it is
     * due: watched only with none under way and none ended in the last WATCH_AFTER_MS. */
    bool under_way = w->so_ended_at != 0 && sim_now(w) - w->so_ended_at < WATCH_AFTER_MS;
    for (unsigned j = 0; j < w->n; j++) {
        under_way = under_way || w->nodes[j].agent.so.phase != SWITCHOVER_IDLE;
        /* A member removal under way is a membership change, not a healthy cluster: its member
         * may be the candidate (seed 756063540148). */
        under_way = under_way || w->nodes[j].agent.removing[0] != '\0';
    }
    bool watch = switchover_watch_begin(w, k, l) && !under_way;
    fs->so_watch = watch;
    char why[RPG_ERRMSG_SIZE];
    res->sc_asked++;
    int status = sim_switchover_schedule(w, (unsigned)l, from[0] != '\0' ? from : NULL,
                                         cand[0] != '\0' ? cand : NULL, at, why, sizeof why);
    if (status != 0) {
        fs->so_watch = false;
        res->sc_refused++;
        note(w, k, "ctl switchover --scheduled %s%s%s%s%s asked of %s: %d %s", at_s,
             from[0] != '\0' ? " --leader " : "", from, cand[0] != '\0' ? " --candidate " : "",
             cand, w->nodes[l].name, status, why);
        return;
    }
    res->sc_recorded++;
    res->faults_applied++;
    fs->so_at_ms = at;
    if (w->n_scheds < SIM_FAULTS_MAX) {
        w->scheds[w->n_scheds++] =
            (struct sim_sched_rec){.at_ms = at, .fault = (int)k, .ran_on = -1};
    }
    if (watch) {
        sim_push(w, sim_now(w) + (rpg_msec)(at - sim_wall_ms(w)) + SCHED_SLACK_MS + so_end_ms(w),
                 EV_OPERATOR, (int)k, 0, OP_SO_END);
    }
    if (sim_rng_chance(&fs->rng, 300)) {
        /* `ctl flush switchover` (DELETE /switchover) at some moment until shortly after its
         * time: before it is due, or racing the leader's own clear. */
        rpg_msec until = (rpg_msec)(at - sim_wall_ms(w)) + 500;
        sim_push(w, sim_now(w) + sim_rng_below(&fs->rng, (unsigned)until), EV_OPERATOR, (int)k, 0,
                 OP_SO_CANCEL);
    }
    note(w, k, "ctl switchover --scheduled %s%s%s%s%s asked of %s: recorded%s", at_s,
         from[0] != '\0' ? " --leader " : "", from, cand[0] != '\0' ? " --candidate " : "", cand,
         w->nodes[l].name, watch ? " (a healthy cluster: checked)" : "");
}

/* OP_SO_CANCEL: the operator cancels the scheduled switchover through the leader of the moment. */
static void operator_cancel(struct sim_world *w, unsigned k)
{
    int l = leader_node(w);
    if (l < 0 || !sim_agent_leader(w, (unsigned)l) || w->nodes[l].frozen ||
        w->nodes[l].agent_frozen) {
        note(w, k, "ctl flush switchover: no ready raft leader answers");
        return;
    }
    char why[RPG_ERRMSG_SIZE];
    w->res->sc_cancel_asked++;
    int status = sim_switchover_cancel(w, (unsigned)l, why, sizeof why);
    if (status != 0) {
        w->res->sc_cancel_failed++;
        note(w, k, "ctl flush switchover asked of %s: %d %s", w->nodes[l].name, status, why);
        return;
    }
    note(w, k, "ctl flush switchover asked of %s: submitted", w->nodes[l].name);
}

void sim_schedule_cancelled(struct sim_world *w, int64_t at_ms, int rc, const char *msg)
{
    char at_s[48];
    schedule_format_time(at_ms, at_s, sizeof at_s);
    if (rc != 0) {
        /* The leader's own clear came first (it runs or dropped it), or leadership moved. */
        w->res->sc_cancel_failed++;
        sim_trace(w, -1, "cancel of the switchover scheduled at %s not committed: %s", at_s,
                  msg != NULL ? msg : "");
        return;
    }
    w->res->sc_cancelled++;
    sim_trace(w, -1, "switchover scheduled at %s cancelled", at_s);
    for (unsigned k = 0; k < w->n_scheds; k++) {
        struct sim_sched_rec *r = &w->scheds[k];
        if (r->at_ms != at_ms) {
            continue;
        }
        r->cancelled = true;
        if (r->runs > 0) {
            /* The state machine clears an entry once: a cancel and a run exclude each other. */
            sim_violation(w, CHK_SCHED,
                          "the switchover scheduled at %s was cancelled after it ran on %s", at_s,
                          w->nodes[r->ran_on].name);
        }
        if (r->fault >= 0 && (unsigned)r->fault < w->sched->n) {
            w->fs[r->fault].so_watch = false; /* cancelled: check W owes it nothing */
        }
    }
}

/* A watched schedule that did not run as asked. */
static void schedule_unrun(struct sim_world *w, int fault, const char *fmt, const char *why)
{
    if (fault < 0 || (unsigned)fault >= w->sched->n) {
        return;
    }
    struct sim_fault_state *fs = &w->fs[fault];
    if (!fs->so_watch) {
        return;
    }
    if (!so_watch_ends(w, fs)) {
        return;
    }
    char at_s[48];
    schedule_format_time(fs->so_at_ms, at_s, sizeof at_s);
    sim_violation(w, CHK_SWITCH, fmt, at_s, why);
}

int sim_schedule_cleared(struct sim_world *w, unsigned l, int64_t at_ms, enum schedule_verdict v,
                         const char *why)
{
    struct sim_sched_rec *r = NULL;
    for (unsigned k = 0; k < w->n_scheds; k++) {
        if (w->scheds[k].at_ms == at_ms) {
            r = &w->scheds[k];
        }
    }
    if (v != SCHEDULE_RUN) {
        w->res->sc_dropped[v <= SCHEDULE_DROP_RESTARTED ? v : 0]++;
        schedule_unrun(w, r != NULL ? r->fault : -1,
                       "the switchover scheduled at %s of a healthy cluster with no other fault "
                       "was dropped: %s",
                       why);
        return r != NULL ? r->fault : -1;
    }
    w->res->sc_run++;
    w->res->so_asked++; /* as a switchover from here on */
    /* The operator's switchover begins now, as if a fault began: what other checks watch is no
     * longer their fault's alone. Its own watch goes on if nothing else began since. */
    bool own = r != NULL && r->fault >= 0 && w->fs[r->fault].so_watch &&
               w->fs[r->fault].so_begun == w->faults_begun;
    w->faults_begun++;
    w->prev_fault_at = w->fault_at;
    w->fault_at = sim_now(w);
    if (own) {
        w->fs[r->fault].so_begun = w->faults_begun;
    }
    if (r == NULL) {
        return -1;
    }
    if (r->cancelled) {
        char at_s[48];
        schedule_format_time(at_ms, at_s, sizeof at_s);
        sim_violation(w, CHK_SCHED, "the switchover scheduled at %s ran on %s after its cancel",
                      at_s, w->nodes[l].name);
    }
    if (++r->runs > 1) {
        char at_s[48];
        schedule_format_time(at_ms, at_s, sizeof at_s);
        sim_violation(w, CHK_SCHED,
                      "the switchover scheduled at %s ran more than once: on %s, then on %s", at_s,
                      w->nodes[r->ran_on].name, w->nodes[l].name);
    }
    r->ran_on = (int)l;
    return r->fault;
}

void sim_schedule_refused(struct sim_world *w, unsigned l, int fault, int status, const char *why)
{
    (void)l;
    struct sim_result *res = w->res;
    res->so_refused_409 += status == 409;
    res->so_refused_412 += status == 412;
    res->so_refused_503 += status != 409 && status != 412;
    schedule_unrun(w, fault,
                   "the switchover scheduled at %s of a healthy cluster with no other fault was "
                   "refused when due: %s",
                   why);
}

/* `raftpg ctl failover --candidate N`: ctl asks the member its configuration names (any member
 * whose agent answers) which member leads, and posts to that one (ctl.c post_to_leader); the
 * candidate is one of the members `ctl list` shows. */
static void operator_failover(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    struct sim_result *res = w->res;
    const char *drill = drill_names[fs->drill];
    res->fo_asked++;
    int asked = pick(w, &fs->rng, accept_any_up, NULL);
    if (asked < 0 || w->nodes[asked].agent_frozen) {
        res->fo_no_leader++;
        note(w, k, "%sctl failover: no member answers", drill);
        return;
    }
    const struct sim_node *a = &w->nodes[asked];
    /* Raft ids are fixture indexes + 1, and node i is fixture server i + 1. */
    int l = a->cons.leader_id >= 2 ? (int)a->cons.leader_id - 2 : -1;
    if (l < 0 || (unsigned)l >= w->n || !usable(w, (unsigned)l) || !w->nodes[l].agent.alive ||
        w->nodes[l].frozen || w->nodes[l].agent_frozen) {
        res->fo_no_leader++;
        note(w, k, "%sctl failover (through %s): no raft leader answers", drill, a->name);
        return;
    }
    const struct fsm_state *st = &w->nodes[l].cons.state;
    if (st->n_members == 0) {
        res->fo_no_leader++;
        note(w, k, "%sctl failover (through %s): no member listed", drill, a->name);
        return;
    }
    char candidate[FSM_NAME_MAX];
    sim_copy(candidate, sizeof candidate,
             fs->drill == DRILL_LAG_KILL && fs->node >= 0
                 ? w->nodes[fs->node].name
                 : st->members[sim_rng_below(&fs->rng, st->n_members)].name);
    bool paused = st->initialized && st->paused;
    struct failover_plan plan;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    bool watch = switchover_watch_begin(w, k, l);
    int status = sim_failover_request(w, (unsigned)l, candidate, (int)k, &plan, errmsg);
    const char *word = "";
    if (plan.verdict == FAILOVER_SWITCHOVER) {
        /* failover.c: a healthy primary makes it a switchover, answered at its end. */
        res->fo_switchover++;
        switchover_asked(w, k, l, status, watch);
        sim_trace(w, l, "failover to %s: the primary is healthy, a switchover: %s", candidate,
                  status == 200 ? "begun" : errmsg);
        note(w, k, "%s%s asked of %s: a switchover, %s%s", drill, candidate, w->nodes[l].name,
             status == 200 ? "begun" : "refused: ", status == 200 ? "" : errmsg);
        return;
    }
    w->fs[k].so_watch = false;
    switch (status) {
    case 202: {
        res->fo_granted++;
        res->fo_granted_paused += paused;
        int c = sim_node_by_name(w, candidate);
        if (c >= 0) {
            w->nodes[c].permit_granted_local = sim_local_now(w, (unsigned)c);
        }
        word = "granted";
        sim_trace(w, l, "failover to %s%s: %s%s; %s", candidate,
                  paused ? " in maintenance mode" : "", plan.why, plan.lag_note,
                  plan.transfer_to != 0 ? "raft leadership handed to it" : "it leads already");
        break;
    }
    case 409:
    case 412:
        res->fo_refused[plan.reason]++;
        word = failover_reason_name(plan.reason);
        sim_trace(w, l, "failover to %s refused: %s", candidate, plan.why);
        break;
    default:
        if (sim_agent_leader(w, (unsigned)l)) {
            res->fo_transfer_refused++;
        } else {
            res->fo_no_leader++;
        }
        word = errmsg;
        sim_trace(w, l, "failover to %s: %s", candidate, errmsg);
        break;
    }
    note(w, k, "%s%s asked of %s: %d %s", drill, candidate, w->nodes[l].name, status, word);
}

/* A running standby other than the primary's node. */
static bool accept_standby(struct sim_world *w, unsigned i, void *arg)
{
    (void)arg;
    const struct sim_pg *p = &w->nodes[i].pg;
    return w->nodes[i].agent.alive && !w->nodes[i].frozen && p->proc == SIM_PROC_RUNNING &&
           p->in_recovery && !pg_protected(w, i);
}

/* ---- a healthy primary's server stopped alone (check N) ----------------------------------------
 */

/* Longer than this without the server back is a failure of its own. */
#define WATCH_MAX_MS 20000

static bool other_fault_in_force(const struct sim_world *w, unsigned k)
{
    for (unsigned j = 0; j < w->sched->n; j++) {
        if (j != k && w->fs[j].active && has_duration(w->sched->f[j].kind)) {
            return true;
        }
    }
    return w->pause_wanted > 0 || w->receiver_lag > 0;
}

/* Before a restart or a stop of node i's server: the check holds for it when node i is the
 * primary of a healthy cluster, its agent the ready Raft leader that recorded it, settled (no
 * operation under way, no failed start counted: three hand over; no leadership transfer under
 * way), no other fault is in force and none began in the last WATCH_AFTER_MS (an instant one,
 * a switchover, may still be taking effect). Then, as long as no other fault begins, the same
 * leader starts the server again as primary in the same term and nobody is promoted (README.md: a
 * restart is no failover; a stopped primary is started again in place within
 * primary_start_timeout). */
static void watch_begin(struct sim_world *w, unsigned k, unsigned i)
{
    struct sim_fault_state *fs = &w->fs[k];
    int p;
    const struct sim_node *n = &w->nodes[i];
    fs->watch = false;
    /* A switchover still running its on_switchover callback (--hook) stops this primary once
     * the callback ends: not a stop alone. */
    bool hooked = false;
    for (unsigned j = 0; j < w->n; j++) {
        hooked = hooked || w->nodes[j].agent.so.phase == SWITCHOVER_HOOK;
    }
    if (hooked || w->phase != SIM_FAULTS || other_fault_in_force(w, k) ||
        !sim_cluster_healthy(w, &p) || p != (int)i || leader_node(w) != (int)i ||
        !sim_agent_leader(w, i) || n->agent.op_id != 0 || n->agent.obs.start_failures != 0 ||
        n->cons.transfer_pending ||
        (w->prev_fault_at != 0 && sim_now(w) - w->prev_fault_at < WATCH_AFTER_MS) ||
        !n->cons.state.initialized || strcmp(n->cons.state.primary.name, n->name) != 0) {
        return;
    }
    fs->watch = true;
    fs->watch_back = false;
    fs->watch_from = sim_now(w);
    fs->watch_leader = (int)i;
    fs->watch_term = n->cons.term;
    fs->watch_failovers = w->res->failovers;
    fs->watch_begun = w->faults_begun;
    sim_push(w, sim_now(w) + SIM_CHECK_MS, EV_OPERATOR, (int)k, 0, OP_WATCH);
}

static void watch_step(struct sim_world *w, unsigned k, unsigned step)
{
    struct sim_fault_state *fs = &w->fs[k];
    if (!fs->watch) {
        return;
    }
    if (w->faults_begun != fs->watch_begun || w->phase != SIM_FAULTS) {
        /* Another fault (or the heal) came: the outcome is no longer the stop's alone. */
        fs->watch = false;
        return;
    }
    unsigned i = (unsigned)fs->watch_leader;
    const struct sim_node *n = &w->nodes[i];
    const char *what = w->sched->f[k].kind == F_RESTART ? "restart" : "stop";
    bool moved = leader_node(w) != (int)i || n->cons.term != fs->watch_term ||
                 w->res->failovers != fs->watch_failovers;
    if (moved) {
        int l = leader_node(w);
        fs->watch = false;
        w->res->keep_checked++;
        sim_violation(w, CHK_KEEP,
                      "the %s of the primary %s's server alone moved the primary: leader %s term "
                      "%" PRIu64 " -> leader %s term %" PRIu64 ", %u promotion(s)",
                      what, n->name, n->name, fs->watch_term, l >= 0 ? w->nodes[l].name : "none",
                      (uint64_t)n->cons.term, w->res->failovers - fs->watch_failovers);
        return;
    }
    if (step == OP_WATCH_END) {
        fs->watch = false;
        w->res->keep_checked++;
        return;
    }
    bool answered = w->sched->f[k].kind != F_RESTART || n->agent.restart_phase == RESTART_IDLE;
    if (sim_pg_writable(&n->pg) && answered) {
        if (!fs->watch_back) {
            fs->watch_back = true;
            sim_push(w, sim_now(w) + WATCH_AFTER_MS, EV_OPERATOR, (int)k, 0, OP_WATCH_END);
        }
    } else if (sim_now(w) - fs->watch_from > WATCH_MAX_MS) {
        fs->watch = false;
        w->res->keep_checked++;
        sim_violation(w, CHK_KEEP,
                      "the %s of the primary %s's server alone: not accepting writes again after "
                      "%d ms",
                      what, n->name, WATCH_MAX_MS);
        return;
    }
    if (!fs->watch_back || step == OP_WATCH) {
        sim_push(w, sim_now(w) + SIM_CHECK_MS, EV_OPERATOR, (int)k, 0, OP_WATCH);
    }
}

/* A member `ctl restart` can reach: its agent answers. */
static bool accept_restartable(struct sim_world *w, unsigned i, void *arg)
{
    (void)arg;
    return w->nodes[i].agent.alive && !w->nodes[i].frozen && !w->nodes[i].agent_frozen;
}

/* `raftpg ctl restart MEMBER [--role R]`: the primary's member half the time, else any member;
 * now and then with a role condition, which the member checks itself. */
static void operator_restart(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    int p = primary_node(w);
    int i = p >= 0 && sim_rng_chance(&fs->rng, 500) ? p : pick(w, &fs->rng, NULL, NULL);
    w->res->rs_asked++;
    if (i < 0 || !accept_restartable(w, (unsigned)i, NULL)) {
        w->res->rs_refused++;
        skip(w, k, i < 0 ? "no member" : "the member's agent does not answer");
        return;
    }
    static const char *const roles[] = {NULL, NULL, NULL, NULL, "primary", "replica"};
    const char *role = roles[sim_rng_below(&fs->rng, 6)];
    watch_begin(w, k, (unsigned)i);
    char why[3 * RPG_ERRMSG_SIZE];
    int status = sim_restart_request(w, (unsigned)i, role, why, sizeof why);
    if (status != 0) {
        fs->watch = false;
        w->res->rs_refused++;
        note(w, k, "ctl restart %s%s%s: %d %s", w->nodes[i].name, role != NULL ? " --role " : "",
             role != NULL ? role : "", status, why);
        return;
    }
    note(w, k, "ctl restart %s%s%s: accepted%s", w->nodes[i].name, role != NULL ? " --role " : "",
         role != NULL ? role : "", fs->watch ? " (the primary of a healthy cluster: checked)" : "");
    fs->node = i;
    w->res->faults_applied++;
}

/* PostgreSQL stopped from outside its agent: pg_ctl stop -m fast (a clean shutdown), or killed.
 * The primary's server half the time. */
static void outside_stop(struct sim_world *w, unsigned k)
{
    struct sim_fault_state *fs = &w->fs[k];
    int p = primary_node(w);
    int i = p >= 0 && accept_pg_running(w, (unsigned)p, NULL) && w->nodes[p].agent.alive &&
                    sim_rng_chance(&fs->rng, 500)
                ? p
                : pick(w, &fs->rng, accept_pg_running, NULL);
    if (i < 0 || !w->nodes[i].agent.alive) {
        skip(w, k, i < 0 ? "no postgresql runs" : "its agent is not running");
        return;
    }
    bool clean = sim_rng_chance(&fs->rng, 600);
    if (w->sched->f[k].kind == F_PG_NO_START) {
        /* Stopped with a setting that keeps it from starting until the fault ends: not N's case
         * (the primary's agent hands over after its failed starts). */
        rpg_msec d = sim_rng_range(&fs->rng, 30, 300);
        note(w, k,
             "postgresql of %s stopped from outside (fast shutdown, %" PRIu64
             " ms); it cannot start for %" PRIu64 " ms",
             w->nodes[i].name, d, w->sched->f[k].dur);
        w->nodes[i].pg.no_start_until = sim_now(w) + w->sched->f[k].dur;
        sim_pg_begin_shutdown(w, (unsigned)i, d);
        fs->node = i;
        fs->active = true;
        w->res->faults_applied++;
        sim_push(w, sim_now(w) + w->sched->f[k].dur, EV_FAULT_END, (int)k, 0, 0);
        return;
    }
    watch_begin(w, k, (unsigned)i);
    if (clean) {
        rpg_msec d = sim_rng_range(&fs->rng, 30, 300);
        note(w, k, "postgresql of %s stopped from outside (fast shutdown, %" PRIu64 " ms)%s",
             w->nodes[i].name, d, fs->watch ? "; the primary of a healthy cluster: checked" : "");
        sim_pg_begin_shutdown(w, (unsigned)i, d);
    } else {
        note(w, k, "postgresql of %s killed from outside%s", w->nodes[i].name,
             fs->watch ? "; the primary of a healthy cluster: checked" : "");
        sim_pg_crash(w, (unsigned)i);
    }
    fs->node = i;
    w->res->faults_applied++;
}

void sim_fault_step(struct sim_world *w, unsigned k, unsigned step)
{
    if (step == OP_WATCH || step == OP_WATCH_END) {
        watch_step(w, k, step);
        return;
    }
    if (step == OP_SO_END) {
        switchover_deadline(w, k);
        return;
    }
    struct sim_fault_state *fs = &w->fs[k];
    /* The pause is waited for while the fault lasts; a kill or a request once under way is
     * carried out even after it (not after every fault healed). */
    if ((!fs->active && step == OP_WAIT_PAUSE) || w->phase != SIM_FAULTS) {
        return;
    }
    int p;
    switch ((enum sim_operator_step)step) {
    case OP_WAIT_PAUSE: {
        /* The kill waits until the leader's state has the pause (the operator's `ctl pause
         * --wait`). */
        int l = leader_node(w);
        bool paused = l >= 0 && w->nodes[l].cons.state.paused;
        sim_push(w, sim_now(w) + (paused ? 0 : SIM_CHECK_MS), EV_OPERATOR, (int)k, 0,
                 paused ? OP_KILL : OP_WAIT_PAUSE);
        return;
    }
    case OP_KILL:
        if (fs->drill == DRILL_LAG_KILL && fs->node >= 0) {
            /* The lag is what it is now: the link is fast again when the candidate leads. */
            w->nodes[fs->node].latency = SIM_BASE_LATENCY_MS;
            sim_net_sync(w);
        }
        p = primary_node(w);
        if (p >= 0 && w->nodes[p].pg.proc != SIM_PROC_DOWN && !w->nodes[p].frozen) {
            sim_trace(w, -1, "fault %u failover: postgresql of the primary %s killed", k,
                      w->nodes[p].name);
            sim_pg_crash(w, (unsigned)p);
        }
        /* The operator asks within the next 0.6 s: before the agent starts it again, or not. */
        sim_push(w, sim_now(w) + sim_rng_below(&fs->rng, 600), EV_OPERATOR, (int)k, 0, OP_ASK);
        return;
    case OP_ASK: operator_failover(w, k); return;
    case OP_SO_CANCEL: operator_cancel(w, k); return;
    case OP_WATCH:
    case OP_WATCH_END:
    case OP_SO_END: return;
    }
}

/* ---- applying and ending faults -------------------------------------------------------------- */

void sim_fault_begin(struct sim_world *w, unsigned k)
{
    const struct sim_fault *f = &w->sched->f[k];
    struct sim_fault_state *fs = &w->fs[k];
    memset(fs, 0, sizeof *fs);
    sim_rng_seed(&fs->rng, f->r);
    fs->node = -1;
    char errmsg[RPG_ERRMSG_SIZE];
    int i = -1;
    bool pg_too;
    w->faults_begun++;
    w->prev_fault_at = w->fault_at;
    w->fault_at = sim_now(w);
    switch (f->kind) {
    case F_RESTART: operator_restart(w, k); return;
    case F_SWITCHOVER_SCHEDULED: operator_schedule(w, k); return;
    case F_PG_STOP:
    case F_PG_NO_START: outside_stop(w, k); return;
    case F_PG_CRASH:
        i = pick(w, &fs->rng, accept_pg_running, NULL);
        if (i < 0) {
            skip(w, k, "no postgresql runs");
            return;
        }
        note(w, k, "postgresql of %s killed", w->nodes[i].name);
        sim_pg_crash(w, (unsigned)i);
        break;
    case F_NODE_CRASH:
    case F_AGENT_CRASH:
        pg_too = f->kind == F_NODE_CRASH;
        i = pick(w, &fs->rng, accept_agent_down, &pg_too);
        if (i < 0) {
            skip(w, k, "every node's loss would leave the primary without a majority");
            return;
        }
        note(w, k, "%s of %s down for %" PRIu64 " ms", pg_too ? "node" : "agent", w->nodes[i].name,
             f->dur);
        if (pg_too) {
            node_crash(w, (unsigned)i);
        } else {
            sim_agent_crash(w, (unsigned)i);
            sim_guard_wake(w, (unsigned)i);
        }
        break;
    case F_AGENT_CRASH_PRIMARY:
    case F_PAUSE_PRIMARY:
    case F_VM_PAUSE_PRIMARY:
        i = primary_node(w);
        i = i >= 0 ? i : leader_node(w);
        if (i < 0 || !w->nodes[i].agent.alive || w->nodes[i].frozen) {
            skip(w, k, "no primary with a running agent");
            return;
        }
        note(w, k, "%s of the primary %s for %" PRIu64 " ms",
             f->kind == F_PAUSE_PRIMARY      ? "pause"
             : f->kind == F_VM_PAUSE_PRIMARY ? "hypervisor pause (clocks stopped)"
                                             : "agent crash",
             w->nodes[i].name, f->dur);
        if (f->kind == F_VM_PAUSE_PRIMARY) {
            w->nodes[i].vm_paused = true;
        }
        if (f->kind == F_PAUSE_PRIMARY || f->kind == F_VM_PAUSE_PRIMARY) {
            freeze(w, (unsigned)i, f->dur);
        } else {
            sim_agent_crash(w, (unsigned)i);
            sim_guard_wake(w, (unsigned)i);
        }
        break;
    case F_PAUSE:
        pg_too = false;
        i = pick(w, &fs->rng, accept_agent_down, &pg_too);
        if (i < 0 || pg_protected(w, (unsigned)i)) {
            skip(w, k, "every node's pause would leave the primary without a majority");
            return;
        }
        note(w, k, "%s paused for %" PRIu64 " ms", w->nodes[i].name, f->dur);
        freeze(w, (unsigned)i, f->dur);
        break;
    case F_PARTITION:
    case F_PARTITION_PRIMARY: begin_links(w, k, false, f->kind == F_PARTITION_PRIMARY); return;
    case F_LOSS:
    case F_LOSS_PRIMARY: begin_links(w, k, true, f->kind == F_LOSS_PRIMARY); return;
    case F_DELAY:
    case F_SLOW_LINK:
        i = pick(w, &fs->rng, NULL, NULL);
        if (i < 0) {
            skip(w, k, "no node");
            return;
        }
        w->nodes[i].latency = f->kind == F_DELAY ? sim_rng_range(&fs->rng, 20, 60)
                                                 : sim_rng_range(&fs->rng, 100, 150);
        note(w, k, "%s's messages take %u ms for %" PRIu64 " ms", w->nodes[i].name,
             w->nodes[i].latency, f->dur);
        sim_net_sync(w);
        break;
    case F_CLOCK: {
        i = pick(w, &fs->rng, NULL, NULL);
        if (i < 0) {
            skip(w, k, "no node");
            return;
        }
        unsigned step = sim_rng_range(&fs->rng, 1, 250);
        w->nodes[i].clock_offset += step;
        w->nodes[i].drift_ppm = (int32_t)sim_rng_below(&fs->rng, 1001) - 500;
        note(w, k, "%s's monotonic clock jumps %u ms, drift now %d ppm", w->nodes[i].name, step,
             w->nodes[i].drift_ppm);
        w->res->faults_applied++;
        return;
    }
    case F_SWITCHOVER:
    case F_SWITCHOVER_ANY: {
        /* `raftpg ctl switchover` asked of the Raft leader, the agent's own switchover.c steps
         * (switchover_step.h): switchover to a healthy cluster's best standby or a named one;
         * switchover-any at any moment, to a named member (itself, one down or not streaming
         * too) or the best, where prepare's refusals are part of the outcome. */
        int l = leader_node(w);
        int p;
        if (l < 0 || !sim_agent_leader(w, (unsigned)l) || w->nodes[l].frozen ||
            w->nodes[l].agent_frozen) {
            skip(w, k, "no ready raft leader answers");
            return;
        }
        if (f->kind == F_SWITCHOVER && !sim_cluster_healthy(w, &p)) {
            skip(w, k, "the cluster is not healthy (a switchover would be refused)");
            return;
        }
        const struct fsm_state *st = &w->nodes[l].cons.state;
        const char *candidate = NULL;
        if (st->n_members > 0 && sim_rng_chance(&fs->rng, 500)) {
            i = (int)sim_rng_below(&fs->rng, st->n_members);
            candidate = st->members[i].name;
            if (f->kind == F_SWITCHOVER && strcmp(candidate, w->nodes[l].name) == 0) {
                candidate = NULL; /* the operator names another member */
            }
        }
        char cand[FSM_NAME_MAX];
        sim_copy(cand, sizeof cand, candidate != NULL ? candidate : "");
        bool watch = switchover_watch_begin(w, k, l);
        char why[3 * RPG_ERRMSG_SIZE];
        int status = sim_switchover_request(w, (unsigned)l, NULL, candidate != NULL ? cand : NULL,
                                            (int)k, why, sizeof why);
        switchover_asked(w, k, l, status, watch);
        if (status != 0) {
            note(w, k, "ctl switchover%s%s asked of %s: %d %s",
                 candidate != NULL ? " --candidate " : "", cand, w->nodes[l].name, status, why);
            return;
        }
        note(w, k, "ctl switchover%s%s asked of %s: begun%s",
             candidate != NULL ? " --candidate " : "", cand, w->nodes[l].name,
             watch ? " (a healthy cluster: checked)" : "");
        return;
    }
    case F_CRASH_IN_ACTION: {
        i = pick(w, &fs->rng, NULL, NULL);
        if (i < 0) {
            skip(w, k, "no node");
            return;
        }
        struct sim_trigger *t = &w->nodes[i].trigger;
        t->armed = true;
        t->action = trigger_actions[sim_rng_below(
            &fs->rng, (unsigned)(sizeof trigger_actions / sizeof trigger_actions[0]))];
        unsigned r = sim_rng_below(&fs->rng, 100);
        t->what = r < 60 ? 0 : r < 85 ? 1 : 2;
        t->delay_ms = sim_rng_below(&fs->rng, 120);
        t->until = sim_now(w) + f->dur;
        t->fault = (int)k;
        t->unguarded = false;
        static const char *const whats[] = {"postgresql", "node", "agent"};
        note(w, k, "armed: %s of %s crashes %u ms into its next %s (within %" PRIu64 " ms)",
             whats[t->what], w->nodes[i].name, t->delay_ms, ha_action_name(t->action), f->dur);
        fs->active = true;
        fs->node = -1;
        w->res->faults_applied++;
        return;
    }
    case F_CRASH_NEW_PRIMARY:
        /* The primary's node goes down (a failover), then the node promoted next goes down too
         * before everybody knows its new timeline. */
        i = primary_node(w);
        if (i < 0 || !w->nodes[i].agent.alive) {
            skip(w, k, "no primary");
            return;
        }
        node_crash(w, (unsigned)i);
        fs->crashed |= 1u << i;
        w->crash_new_primary = (int)k;
        w->crash_new_primary_until = sim_now(w) + f->dur;
        note(w, k, "node of the primary %s down; the next node promoted goes down within 1 s",
             w->nodes[i].name);
        fs->active = true;
        w->res->faults_applied++;
        sim_push(w, sim_now(w) + f->dur, EV_FAULT_END, (int)k, 0, 0);
        return;
    case F_MEMBER: {
        int l = leader_node(w);
        if (w->n >= SIM_NODES_MAX || l < 0 || !sim_agent_leader(w, (unsigned)l)) {
            skip(w, k,
                 w->n >= SIM_NODES_MAX ? "no room for another server in raft_fixture"
                                       : "no ready leader");
            return;
        }
        unsigned j = w->n;
        if (sim_node_create(w, j) != 0 || sim_node_start_raft(w, j) != 0) {
            skip(w, k, "cannot grow raft_fixture");
            return;
        }
        if (sim_member_add(w, (unsigned)l, j, errmsg) != 0) {
            /* The server exists but is in no configuration: it stays idle. */
            w->nodes[j].removed = true;
            skip(w, k, errmsg);
            return;
        }
        sim_push(w, sim_now(w), EV_AGENT_START, (int)j, 0, 0);
        note(w, k, "%s added through %s; a standby is removed after %" PRIu64 " ms",
             w->nodes[j].name, w->nodes[l].name, f->dur);
        fs->node = (int)j;
        break;
    }
    case F_AGENT_STOP_PRIMARY:
        i = primary_node(w);
        if (i < 0 || !w->nodes[i].agent.alive || w->nodes[i].frozen || w->nodes[i].agent_frozen) {
            skip(w, k, "no primary with a running agent");
            return;
        }
        note(w, k, "agent of the primary %s stopped for %" PRIu64 " ms", w->nodes[i].name, f->dur);
        w->nodes[i].agent_frozen = true;
        sim_raft_kill(w, (unsigned)i); /* Raft runs in the agent */
        break;
    case F_RAFT_DISK_FULL:
    case F_RAFT_READ_ONLY:
        /* Any node, the leader and the primary included, whose loss the cluster survives: one
         * that cannot persist is no part of a working majority. */
        pg_too = true;
        i = pick(w, &fs->rng, accept_storage_fault, &pg_too);
        if (i < 0) {
            skip(w, k,
                 "no node's raft storage can fail without leaving the rest without a majority");
            return;
        }
        note(w, k, "%s's raft directory %s for %" PRIu64 " ms", w->nodes[i].name,
             f->kind == F_RAFT_DISK_FULL ? "full" : "read-only", f->dur);
        sim_storage_fault(w, (unsigned)i, f->kind == F_RAFT_DISK_FULL ? RAFT_NOSPACE : RAFT_IOERR);
        break;
    case F_VM_PAUSE:
        pg_too = false;
        i = pick(w, &fs->rng, accept_agent_down, &pg_too);
        if (i < 0 || pg_protected(w, (unsigned)i)) {
            skip(w, k, "every node's pause would leave the primary without a majority");
            return;
        }
        note(w, k, "%s paused by its hypervisor (clocks stopped) for %" PRIu64 " ms",
             w->nodes[i].name, f->dur);
        w->nodes[i].vm_paused = true;
        freeze(w, (unsigned)i, f->dur);
        break;
    case F_FAILOVER:
        fs->drill = sim_rng_below(&fs->rng, DRILL_N);
        fs->node = -1;
        if (fs->drill == DRILL_LAG_KILL) {
            i = pick(w, &fs->rng, accept_standby, NULL);
            if (i < 0) {
                skip(w, k, "no running standby to slow down");
                return;
            }
            fs->node = i;
        }
        if (fs->drill == DRILL_PAUSED_KILL || fs->drill == DRILL_LAG_KILL) {
            /* `ctl pause` first, as the documented drill does (nothing restarts the killed
             * server then, from which a lagging standby would catch up). */
            i = operator_pause(w, k);
            if (i < 0) {
                return;
            }
            fs->pause_held = true;
            if (fs->node >= 0) {
                struct sim_node *c = &w->nodes[fs->node];
                c->latency = sim_rng_range(&fs->rng, 40, 60);
                sim_net_sync(w);
                note(w, k,
                     "drill: ctl pause (asked of %s) for %" PRIu64 " ms, %s's messages take %u ms",
                     w->nodes[i].name, f->dur, c->name, c->latency);
            } else {
                note(w, k, "drill: ctl pause (asked of %s) for %" PRIu64 " ms", w->nodes[i].name,
                     f->dur);
            }
            sim_push(w, sim_now(w) + SIM_CHECK_MS, EV_OPERATOR, (int)k, 0, OP_WAIT_PAUSE);
        } else {
            sim_push(w, sim_now(w), EV_OPERATOR, (int)k, 0,
                     fs->drill == DRILL_KILL ? OP_KILL : OP_ASK);
        }
        i = fs->node;
        break;
    case F_MAINTENANCE:
        /* Any moment, a failover under way included. */
        i = operator_pause(w, k);
        if (i < 0) {
            return;
        }
        note(w, k, "maintenance mode on for %" PRIu64 " ms (ctl pause, asked of %s)", f->dur,
             w->nodes[i].name);
        break;
    case F_RECEIVER_LAG:
        w->receiver_lag++;
        note(w, k, "re-pointed WAL receivers stay with their old upstream for %" PRIu64 " ms",
             f->dur);
        break;
    case F_KIND_N: return;
    }
    fs->active = true;
    if (fs->node < 0) {
        fs->node = i;
    }
    w->res->faults_applied++;
    if (has_duration(f->kind)) {
        sim_push(w, sim_now(w) + f->dur, EV_FAULT_END, (int)k, 0, 0);
    }
}

static bool accept_removable(struct sim_world *w, unsigned i, void *arg)
{
    int newcomer = *(int *)arg;
    struct change c;
    memset(&c, 0, sizeof c);
    c.down = 1u << i;
    c.pg_dead = 1u << i;
    return (int)i != newcomer && !pg_protected(w, i) && w->nodes[i].cons.role != CONS_ROLE_LEADER &&
           voter(w, i) && safe_after(w, &c) && !lone_timeline(w, i);
}

void sim_fault_end(struct sim_world *w, unsigned k)
{
    const struct sim_fault *f = &w->sched->f[k];
    struct sim_fault_state *fs = &w->fs[k];
    if (!fs->active && f->kind != F_CRASH_IN_ACTION && f->kind != F_CRASH_NEW_PRIMARY) {
        return;
    }
    int i = fs->node;
    char errmsg[RPG_ERRMSG_SIZE];
    switch (f->kind) {
    case F_NODE_CRASH:
    case F_AGENT_CRASH:
    case F_AGENT_CRASH_PRIMARY: sim_node_restart(w, (unsigned)i); break;
    case F_CRASH_IN_ACTION:
    case F_CRASH_NEW_PRIMARY:
        for (unsigned j = 0; j < w->n; j++) {
            if (w->nodes[j].trigger.fault == (int)k) {
                w->nodes[j].trigger.armed = false;
            }
            if (fs->crashed >> j & 1) {
                sim_node_restart(w, j);
            }
        }
        fs->crashed = 0;
        if (w->crash_new_primary == (int)k && sim_now(w) >= w->crash_new_primary_until) {
            w->crash_new_primary = -1;
        }
        break;
    case F_PAUSE:
    case F_PAUSE_PRIMARY: sim_unfreeze(w, (unsigned)i); break;
    case F_RAFT_DISK_FULL:
    case F_RAFT_READ_ONLY: sim_storage_fault(w, (unsigned)i, 0); break;
    case F_VM_PAUSE:
    case F_VM_PAUSE_PRIMARY:
        w->nodes[i].vm_paused = false;
        if (w->nodes[i].frozen) {
            /* The guest's clocks did not count the pause. */
            w->nodes[i].clock_offset -= (int64_t)(sim_now(w) - w->nodes[i].frozen_at);
            w->nodes[i].vm_resumed_at = sim_now(w);
            w->nodes[i].vm_resume_inc = w->nodes[i].pg.inc;
            w->nodes[i].vm_resume_writable = sim_pg_writable(&w->nodes[i].pg);
            w->nodes[i].vm_resume_pending = sim_pg_pending_primary(&w->nodes[i].pg);
            w->nodes[i].vm_resume_started = false;
            w->nodes[i].vm_resume_vip = w->nodes[i].vip_held;
            w->nodes[i].vm_resume_claim = w->nodes[i].agent.vip_busy &&
                                          w->nodes[i].agent.fm.vip_claiming;
        }
        sim_unfreeze(w, (unsigned)i);
        break;
    case F_PARTITION:
    case F_PARTITION_PRIMARY:
    case F_LOSS:
    case F_LOSS_PRIMARY:
        fs->active = false;
        recompute_links(w);
        return;
    case F_DELAY:
    case F_SLOW_LINK:
        w->nodes[i].latency = SIM_BASE_LATENCY_MS;
        sim_net_sync(w);
        break;
    case F_AGENT_STOP_PRIMARY:
        w->nodes[i].agent_frozen = false;
        if (w->nodes[i].agent.alive && w->nodes[i].up && !w->nodes[i].frozen) {
            sim_raft_revive(w, (unsigned)i);
        }
        sim_trace(w, i, "agent continued");
        break;
    case F_MAINTENANCE:
        if (--w->pause_wanted == 0) {
            w->pause_try_at = 0; /* sim_operator_tick asks for the resume */
        }
        break;
    case F_FAILOVER:
        if (fs->pause_held && --w->pause_wanted == 0) {
            w->pause_try_at = 0;
        }
        fs->pause_held = false;
        if (fs->drill == DRILL_LAG_KILL && i >= 0) {
            w->nodes[i].latency = SIM_BASE_LATENCY_MS;
            sim_net_sync(w);
        }
        break;
    case F_PG_NO_START: w->nodes[i].pg.no_start_until = 0; break;
    case F_RECEIVER_LAG:
        if (--w->receiver_lag == 0) {
            /* Replay resumes: each receiver restarts with what its configuration says. */
            for (unsigned j = 0; j < w->n; j++) {
                w->nodes[j].pg.stale_receiver = false;
            }
        }
        break;
    case F_MEMBER: {
        int l = leader_node(w);
        int newcomer = i;
        int victim = pick(w, &fs->rng, accept_removable, &newcomer);
        if (l < 0 || !sim_agent_leader(w, (unsigned)l) || victim < 0) {
            sim_trace(w, -1, "fault %u member: no standby can be removed now", k);
        } else if (sim_member_remove_request(w, (unsigned)l, w->nodes[victim].name, errmsg) != 0) {
            sim_trace(w, -1, "fault %u member: remove %s: %s", k, w->nodes[victim].name, errmsg);
        } else {
            size_t len = strlen(w->res->fault_log[k]);
            snprintf(w->res->fault_log[k] + len, sizeof w->res->fault_log[k] - len, "; %s removed",
                     w->nodes[victim].name);
        }
        break;
    }
    default: break;
    }
    fs->active = false;
}

/* The operator repeats `ctl pause` or `ctl resume` (every 300 ms, as a script would) until the
 * leader's state has what the maintenance faults want: a leader change can drop a request. */
void sim_operator_tick(struct sim_world *w)
{
    int l = leader_node(w);
    if (l < 0 || !sim_agent_leader(w, (unsigned)l) || !w->nodes[l].cons.state.initialized) {
        return;
    }
    bool wanted = w->pause_wanted > 0;
    if (w->nodes[l].cons.state.paused == wanted ||
        (w->pause_try_at != 0 && sim_now(w) - w->pause_try_at < 300)) {
        return;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    w->pause_try_at = sim_now(w);
    if (sim_set_pause(w, (unsigned)l, wanted, errmsg) != 0) {
        sim_trace(w, l, "ctl %s: %s", wanted ? "pause" : "resume", errmsg);
    } else {
        sim_trace(w, l, "ctl %s asked of %s", wanted ? "pause" : "resume", w->nodes[l].name);
    }
}

/* Everything ends: nodes restart and resume, links heal, delays go. */
void sim_heal_all(struct sim_world *w)
{
    for (unsigned k = 0; k < w->sched->n; k++) {
        if (w->fs[k].active) {
            sim_fault_end(w, k);
        }
        w->fs[k].active = false;
    }
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        n->trigger.armed = false;
        if (!n->exists || n->removed) {
            continue;
        }
        sim_unfreeze(w, i);
        sim_node_restart(w, i);
        n->latency = SIM_BASE_LATENCY_MS;
    }
    recompute_links(w);
    w->phase = SIM_QUIET;
    w->gap_start = 0;
    w->i4_reported = false;
    sim_trace(w, -1, "every fault healed");
}
