/* The rules of DESIGN.md §4, checked after every simulated event (I1, I3), periodically (I4),
 * whenever a server starts accepting writes (I2) and at the end (I2, rejoin). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

/* Warm-up: the cluster must be healthy this long after the agents start. */
#define WARMUP_MAX_MS 30000
/* Faults begin this long after the cluster is first healthy. */
#define FAULTS_AFTER_MS 1000
/* Every fault's duration is at most this (sim_faults.c draws within it). */
#define FAULT_DUR_MAX_MS 6000

const char *sim_check_name(enum sim_check c)
{
    switch (c) {
    case CHK_I1: return "I1 one writer";
    case CHK_I2: return "I2 no lost commit";
    case CHK_I3: return "I3 one VIP holder";
    case CHK_I4: return "I4 liveness";
    case CHK_REJOIN: return "R rejoin";
    case CHK_DIVERGE: return "D divergent WAL";
    case CHK_STATE: return "S state checksums";
    case CHK_PAUSE: return "M maintenance";
    case CHK_KEEP: return "N no failover";
    case CHK_SWITCH: return "W switchover";
    case CHK_SCHED: return "X scheduled switchover";
    case CHK_N: break;
    }
    return "?";
}

void sim_violation(struct sim_world *w, enum sim_check c, const char *fmt, ...)
{
    struct sim_result *res = w->res;
    res->counts[c]++;
    if (res->n_violations < SIM_VIOLATIONS_MAX) {
        struct sim_violation *v = &res->v[res->n_violations];
        v->check = c;
        v->at = sim_now(w);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->what, sizeof v->what, fmt, ap);
        va_end(ap);
        sim_trace(w, -1, "VIOLATION %s: %s", sim_check_name(c), v->what);
    }
    res->n_violations++;
}

static bool accepts_writes(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->exists && n->up && !sim_pg_halted(n) && sim_pg_writable(&n->pg);
}

/* A guest its hypervisor paused with its clocks stopped cannot tell it was paused: it resumes
 * as it stood, its server writable and its address configured, until its agent's first exchange
 * with the others or the lease it believes it holds runs out by its own clock, and then its fence
 * stops the server and drops the address. Nothing on the guest can act sooner, so I1 and I3 are
 * not guaranteed at that instant (README.md, "Fencing"). What is checked instead, as a violation
 * of the same rule: the overlap ends within SIM_VM_RESUME_WINDOW_MS of the resume (one election
 * timeout for the lease, one for the fence), and the resumed server acknowledges no commit while
 * another accepts writes (sim_check_ack; rule 4 makes that impossible, and I2 checks what it
 * acknowledged before). Each such overlap is counted and reported, never waived silently. */
static bool resume_window(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->vm_resumed_at != 0 && sim_now(w) < n->vm_resumed_at + SIM_VM_RESUME_WINDOW_MS;
}

/* Only what the guest resumed with: the same server process, writable since, and the address
 * held since; a promotion or a claim after the resume counts as anywhere else. */
static bool resumed_writer(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return resume_window(w, i) && n->vm_resume_writable && n->pg.inc == n->vm_resume_inc;
}

/* Server i starts accepting writes now. A start as a primary or a promotion that was under way
 * when its guest was paused with its clocks stopped and completes within the resume window is
 * a writer the guest resumed with: its process was already running, and the guest cannot tell
 * the pause from no pause at all. It is checked as one (no commit acknowledged while another
 * accepts writes, the overlap ended within the window), and if it still accepts writes after the
 * window its WAL is checked then (I2). True when that is the case. */
bool sim_resumed_start(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!resume_window(w, i) || !n->vm_resume_pending || n->pg.inc != n->vm_resume_inc) {
        return false;
    }
    n->vm_resume_pending = false;
    n->vm_resume_writable = true;
    n->vm_resume_started = true;
    w->res->resume_starts++;
    sim_trace(w, (int)i,
              "a start or promotion under way at the pause completed %" PRIu64
              " ms after the resume",
              sim_now(w) - n->vm_resumed_at);
    return true;
}

/* The same of the address: a claim (probe, add, announce) under way at the pause that completes
 * within the window leaves a holder the guest resumed with. The probe ran before the pause, and
 * nothing on the guest can tell the pause from no pause at all. */
bool sim_resumed_claim(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    bool resumed = n->vm_resume_claim && resume_window(w, i);
    n->vm_resume_claim = false;
    if (!resumed) {
        return false;
    }
    n->vm_resume_vip = true;
    w->res->resume_claims++;
    sim_trace(w, (int)i,
              "a VIP claim under way at the pause completed %" PRIu64 " ms after the resume",
              sim_now(w) - n->vm_resumed_at);
    return true;
}

/* A resumed start (above) that outlived its window is checked as any new writer. */
static void check_resumed_starts(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        if (!n->vm_resume_started || resume_window(w, i)) {
            continue;
        }
        n->vm_resume_started = false;
        if (n->pg.inc == n->vm_resume_inc && accepts_writes(w, i)) {
            sim_check_commits(w, i, "accepts writes past its resume window");
        }
    }
}

static bool resumed_holder(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->vip_held) {
        n->vm_resume_vip = false;
    }
    return resume_window(w, i) && n->vm_resume_vip;
}

/* A paused guest's kernel answers for no address. */
static bool holds_vip(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->exists && n->up && n->vip_held && !n->vm_paused;
}

/* The overlaps of this instant that only resumed guests make: noted, and not a violation. */
static void note_resume_overlap(struct sim_world *w, bool overlap)
{
    if (!overlap) {
        w->resume_overlap_open = false;
        return;
    }
    rpg_msec since = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if ((resumed_writer(w, i) || resumed_holder(w, i)) &&
            sim_now(w) - w->nodes[i].vm_resumed_at > since) {
            since = sim_now(w) - w->nodes[i].vm_resumed_at;
        }
    }
    if (!w->resume_overlap_open) {
        w->resume_overlap_open = true;
        w->res->resume_overlaps++;
        sim_trace(w, -1, "overlap at a clock-stopped resume (I1/I3 not guaranteed)");
    }
    if (since > w->res->resume_overlap_max) {
        w->res->resume_overlap_max = since;
    }
}

/* I3: the VIP is held by at most one node, and not by one node while another node's server
 * accepts writes (a holder whose own server is being fenced releases it a moment later). */
static bool check_vip(struct sim_world *w)
{
    unsigned holders = 0, strict_holders = 0;
    int holder = -1, writer = -1, strict_holder = -1, strict_writer = -1;
    char names[128] = "";
    for (unsigned i = 0; i < w->n; i++) {
        if (holds_vip(w, i)) {
            strict_holders++;
            strict_holder = (int)i;
            if (!resumed_holder(w, i)) {
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", holders > 0 ? " and " : "",
                         w->nodes[i].name);
                holders++;
                holder = (int)i;
            }
        }
        if (accepts_writes(w, i)) {
            strict_writer = (int)i;
            if (!resumed_writer(w, i)) {
                writer = (int)i;
            }
        }
    }
    bool wrong = holders == 1 && writer >= 0 && writer != holder;
    bool strict_wrong = strict_holders == 1 && strict_writer >= 0 && strict_writer != strict_holder;
    if ((holders >= 2 || wrong) && !w->i3_open) {
        w->i3_open = true;
        if (wrong) {
            sim_violation(w, CHK_I3, "the VIP is held by %s while %s accepts writes", names,
                          w->nodes[writer].name);
        } else {
            sim_violation(w, CHK_I3, "the VIP is held by %s", names);
        }
    } else if (holders < 2 && !wrong) {
        w->i3_open = false;
    }
    return (strict_holders >= 2 || strict_wrong) && holders < 2 && !wrong;
}

/* I1 in a resume window: server i, which acknowledges a commit now, is the only one that
 * accepts writes. (Elsewhere the instant check covers it: a writer is one anyway.) */
void sim_check_ack(struct sim_world *w, unsigned i)
{
    if (!resumed_writer(w, i)) {
        return;
    }
    /* Node i may be the cluster's primary by right that resumed too: Raft leader in the newest
     * term any node has seen. Then a writer j that is itself a guest resumed within its window is
     * the stale one, counted as an overlap (note_resume_overlap); i's acknowledgements are the
     * primary's own (seed 806141949353: the new primary paused 2 s and resumed still leading, and
     * the old one resumed 0.4 s later). */
    uint64_t newest = 0;
    for (unsigned j = 0; j < w->n; j++) {
        if (w->nodes[j].exists && w->nodes[j].cons.term > newest) {
            newest = w->nodes[j].cons.term;
        }
    }
    bool by_right = w->nodes[i].cons.role == CONS_ROLE_LEADER && w->nodes[i].cons.term == newest;
    for (unsigned j = 0; j < w->n; j++) {
        if (by_right && resumed_writer(w, j)) {
            continue;
        }
        if (j != i && accepts_writes(w, j)) {
            sim_violation(w, CHK_I1,
                          "%s acknowledged a commit %" PRIu64 " ms after its VM resumed while %s "
                          "accepts writes",
                          w->nodes[i].name, sim_now(w) - w->nodes[i].vm_resumed_at,
                          w->nodes[j].name);
            return;
        }
    }
}

/* I1: at no instant do two servers accept writes. */
/* Check M's record: the primary each member's state named when it applied the pause. */
static void note_pauses(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        const struct fsm_state *st = &n->cons.state;
        bool paused = n->exists && st->initialized && st->paused;
        if (paused && !n->pause_seen) {
            sim_copy(n->pause_seen_primary, sizeof n->pause_seen_primary, st->primary.name);
        }
        n->pause_seen = paused;
    }
}

void sim_check_instant(struct sim_world *w)
{
    note_pauses(w);
    check_resumed_starts(w);
    bool overlap = check_vip(w);
    unsigned n = 0, strict = 0;
    char names[128] = "";
    for (unsigned i = 0; i < w->n; i++) {
        if (!accepts_writes(w, i)) {
            continue;
        }
        strict++;
        if (!resumed_writer(w, i)) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", n > 0 ? " and " : "", w->nodes[i].name);
            n++;
        }
    }
    note_resume_overlap(w, overlap || (strict >= 2 && n < 2));
    if (n >= 2 && !w->i1_open) {
        w->i1_open = true;
        sim_violation(w, CHK_I1, "%s accept writes at the same time", names);
    } else if (n < 2) {
        w->i1_open = false;
    }
}

/* I2: every acknowledged commit is in the WAL of server i, which now accepts writes. */
void sim_check_commits(struct sim_world *w, unsigned i, const char *when)
{
    const struct sim_pg *p = &w->nodes[i].pg;
    uint64_t missing = 0;
    const struct sim_commit *first = NULL;
    for (size_t k = 0; k < w->n_acked; k++) {
        const struct sim_commit *c = &w->acked[k];
        /* Every acknowledged commit, also those of a primary that ran asynchronously: quorum
         * mode degrades only after recording k = 0, and a record that proves nothing allows no
         * failover but to the recorded primary (rule 6), so none may be lost either. */
        if (p->end <= c->lsn || sim_pg_uid_at(p, c->lsn) != c->uid) {
            missing++;
            first = first == NULL ? c : first;
        }
    }
    if (missing == 0 || w->opt->sync_mode == SYNC_MODE_OFF) {
        return;
    }
    sim_violation(w, CHK_I2,
                  "%s %s without %" PRIu64 " acknowledged commit(s), the first at lsn %" PRIu64
                  " (its wal ends at %" PRIu64 ", timeline %u)",
                  w->nodes[i].name, when, missing, first->lsn, p->end, sim_pg_tl(p));
}

static bool is_voter(const struct sim_world *w, unsigned i)
{
    for (unsigned j = 0; j < w->n; j++) {
        if (!w->nodes[j].exists || w->nodes[j].raft_killed) {
            continue;
        }
        struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, w->nodes[j].fx);
        for (unsigned k = 0; k < r->configuration.n; k++) {
            if (r->configuration.servers[k].id == w->nodes[i].fx + 1 &&
                r->configuration.servers[k].role == RAFT_VOTER) {
                return true;
            }
        }
    }
    return false;
}

static bool node_healthy(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    /* A voter whose Raft directory cannot be written is no part of a working majority; nor is
     * one whose server cannot start (pg-no-start): it may hold the only proof of the
     * acknowledged commits, and it can neither stream nor be promoted. */
    return n->exists && !n->removed && n->up && !n->frozen && n->agent.alive &&
           n->storage_fault == 0 && sim_now(w) >= n->pg.no_start_until && is_voter(w, i);
}

static bool linked(const struct sim_world *w, unsigned i, unsigned j)
{
    return sim_link(w, i, j) && !w->lossy[i][j] && !w->lossy[j][i];
}

/* The replicated state as far as it is applied anywhere: the record rule 6 reads. */
static const struct fsm_state *committed_state(const struct sim_world *w)
{
    const struct fsm_state *best = NULL;
    raft_index applied = 0;
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *n = &w->nodes[i];
        if (!n->exists || !n->cons.state.initialized) {
            continue;
        }
        struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, n->fx);
        if (best == NULL || r->last_applied > applied) {
            best = &n->cons.state;
            applied = r->last_applied;
        }
    }
    return best;
}

/* DESIGN.md rule 6, read on the facts: the members of set can prove that one of them holds every
 * acknowledged commit, so a failover among them loses none. The recorded primary holds them all;
 * otherwise |V| - k + 1 of the recorded voters must be there (sync.h). Rule 7 lets quorum mode
 * degrade to k = 0 "so that no failover silently loses data": then only the recorded primary
 * (or an operator) can end the outage, and I2 takes precedence over I4 (sync.h says so). */
static bool set_may_fail_over(const struct sim_world *w, unsigned set, const struct fsm_state *st)
{
    if (st == NULL) {
        return true;
    }
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(st, &recorded, errmsg) != 0) {
        return false;
    }
    const char *heard[SIM_NODES_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (set >> i & 1) {
            if (strcmp(w->nodes[i].name, st->primary.name) == 0 && w->nodes[i].pg.data &&
                !w->nodes[i].pg.broken) {
                return true;
            }
            heard[n++] = w->nodes[i].name;
        }
    }
    char why[HA_WHY_MAX];
    if (sync_candidate_ok(&recorded, heard, n, why, sizeof why)) {
        return true;
    }
    return recorded.k == 0 && w->opt->sync_mode == SYNC_MODE_OFF;
}

/* Whether node v can tell the members of set what its server does: its agent runs and answers
 * one of them. */
static bool observable(const struct sim_world *w, unsigned set, unsigned v)
{
    const struct sim_node *n = &w->nodes[v];
    if (!n->exists || !n->up || n->frozen || !n->agent.alive) {
        return false;
    }
    for (unsigned s = 0; s < w->n; s++) {
        if (set >> s & 1 && (s == v || linked(w, s, v))) {
            return true;
        }
    }
    return false;
}

static int node_named(const struct sim_world *w, const char *name)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (w->nodes[i].exists && strcmp(w->nodes[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* DESIGN.md rule 4, read on what the members of set can see: a new primary promotes only once at
 * most k - 1 recorded voters besides itself could still acknowledge the previous primary's
 * commits, and a voter nobody in set hears from may (a guest paused with its clocks stopped
 * resumes streaming from a previous primary resumed with it). Nothing can prove otherwise while
 * that previous primary is out of sight too, so a failover then waits for one of them to come
 * back, whatever the world did to them meanwhile (src/ha_promote.c ha_voters_detached). */
static bool set_may_detach(const struct sim_world *w, unsigned set, const struct fsm_state *st)
{
    if (st == NULL || !st->initialized) {
        return true;
    }
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(st, &recorded, errmsg) != 0 || recorded.k == 0) {
        return true;
    }
    int p = node_named(w, st->primary.name);
    const char *prev = p >= 0 && !(set >> p & 1) ? st->primary.name : w->prev_recorded;
    int o = node_named(w, prev);
    if (o < 0 || set >> o & 1 || observable(w, set, (unsigned)o)) {
        return true;
    }
    unsigned blind = 0;
    for (unsigned v = 0; v < recorded.n; v++) {
        int i = node_named(w, recorded.names[v]);
        if (i >= 0 && i != o && i != p && !(set >> i & 1) && !observable(w, set, (unsigned)i)) {
            blind++;
        }
    }
    return blind < recorded.k;
}

/* Whether some majority of the voters is healthy (up, running an agent, not paused) with every
 * pair connected by links that work (not cut, not lossy), and able to fail over under rule 6
 * (*waived: such majorities exist, but none is); and whether a server accepts writes on a
 * healthy node that reaches a majority itself (an old primary cut off from the majority does not
 * count). */
static void healthy_majority(const struct sim_world *w, unsigned majority, bool *found,
                             bool *waived, bool *waived4, bool *primary)
{
    unsigned healthy = 0;
    for (unsigned i = 0; i < w->n; i++) {
        healthy |= node_healthy(w, i) ? 1u << i : 0;
    }
    const struct fsm_state *st = committed_state(w);
    *found = false;
    *waived = false;
    *waived4 = false;
    for (unsigned s = healthy; s != 0 && !*found; s = (s - 1) & healthy) {
        if ((unsigned)__builtin_popcount(s) < majority) {
            continue;
        }
        bool ok = true;
        for (unsigned i = 0; i < w->n && ok; i++) {
            for (unsigned j = i + 1; j < w->n && ok; j++) {
                ok = !(s >> i & 1) || !(s >> j & 1) || linked(w, i, j);
            }
        }
        if (ok && !set_may_fail_over(w, s, st)) {
            *waived = true;
            ok = false;
        }
        if (ok && !set_may_detach(w, s, st)) {
            *waived4 = true;
            ok = false;
        }
        *found = ok;
    }
    *waived = *waived && !*found;
    *waived4 = *waived4 && !*found && !*waived;
    *primary = false;
    for (unsigned x = 0; x < w->n && !*primary; x++) {
        if (!(healthy >> x & 1) || !accepts_writes(w, x)) {
            continue;
        }
        /* A lossy link that delivers right now counts: the primary serves through it. */
        unsigned reach = 1;
        for (unsigned y = 0; y < w->n; y++) {
            reach += y != x && (healthy >> y & 1) && sim_link(w, x, y);
        }
        *primary = reach >= majority;
    }
}

bool sim_cluster_healthy(struct sim_world *w, int *primary)
{
    int p = -1;
    for (unsigned i = 0; i < w->n; i++) {
        if (accepts_writes(w, i)) {
            if (p >= 0) {
                return false;
            }
            p = (int)i;
        }
    }
    *primary = p;
    if (p < 0) {
        return false;
    }
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *n = &w->nodes[i];
        uint64_t at;
        if (!n->exists || n->removed || (int)i == p) {
            continue;
        }
        if (!n->agent.alive || n->pg.proc != SIM_PROC_RUNNING || !n->pg.in_recovery ||
            !n->pg.streaming || n->pg.streaming_from != p ||
            !sim_pg_prefix_of(&n->pg, &w->nodes[p].pg, &at)) {
            return false;
        }
    }
    return true;
}

static void start_faults(struct sim_world *w)
{
    const struct sim_schedule *s = w->sched;
    w->phase = SIM_FAULTS;
    w->t0 = sim_now(w) + FAULTS_AFTER_MS;
    for (unsigned k = 0; k < s->n; k++) {
        if (s->keep[k]) {
            sim_push(w, w->t0 + s->f[k].at, EV_FAULT, (int)k, 0, 0);
        }
    }
    w->t_heal = w->t0 + w->opt->window + FAULT_DUR_MAX_MS;
    w->t_end = w->t_heal + w->opt->quiet;
    sim_push(w, w->t_heal, EV_HEAL, -1, 0, 0);
    sim_push(w, w->t_end, EV_END, -1, 0, 0);
    sim_trace(w, -1, "cluster healthy: faults from %.3f, healed at %.3f, end at %.3f",
              (double)w->t0 / 1000.0, (double)w->t_heal / 1000.0, (double)w->t_end / 1000.0);
}

/* I4: whenever a majority of voters is up and connected, a server in it accepts writes again
 * within the budget. */
/* The replicated state never diverges: any two members that both applied an index hold the same
 * state checksum there (each state machine keeps the checksums of its last FSM_SUMS_MAX applied
 * entries, so members at different indexes are compared where they overlap). Every member counts,
 * whatever its agent or storage does: one whose log was loaded at wrong indexes differs here. */
static void check_states(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n && !w->state_reported; i++) {
        if (!w->nodes[i].exists) {
            continue;
        }
        const struct fsm *fi = &w->nodes[i].cons.fsm;
        for (unsigned k = 0; k < fi->n_sums && !w->state_reported; k++) {
            const struct fsm_sum *s = &fi->sums[k];
            for (unsigned j = i + 1; j < w->n && !w->state_reported; j++) {
                uint64_t other = 0;
                if (w->nodes[j].exists && fsm_sum_at(&w->nodes[j].cons.fsm, s->index, &other) &&
                    other != s->sum) {
                    w->state_reported = true;
                    sim_violation(w, CHK_STATE,
                                  "state checksums differ at applied index %" PRIu64
                                  ": %s %016" PRIx64 ", %s %016" PRIx64,
                                  s->index, w->nodes[i].name, s->sum, w->nodes[j].name, other);
                }
            }
        }
    }
}

void sim_check_periodic(struct sim_world *w)
{
    rpg_msec now = sim_now(w);
    check_states(w);
    if (w->phase == SIM_WARMUP) {
        int p;
        if (sim_cluster_healthy(w, &p)) {
            start_faults(w);
        } else if (now > WARMUP_MAX_MS) {
            sim_violation(w, CHK_I4, "the cluster is not healthy %d s after the agents started",
                          WARMUP_MAX_MS / 1000);
            w->done = true;
        }
        return;
    }
    /* The operator stops a member once its removal is done: the leader's state no longer lists
     * it and its Raft configuration no longer has it (api_action.c answers `member remove` only
     * then), whoever submitted the removal. The operator asks the leader of the newest term whose
     * agent answers: a paused node still believes it leads, with a state that may lack a member
     * added since (its list says nothing about a removal). */
    int newest = -1;
    for (unsigned l = 0; l < w->n; l++) {
        if (sim_agent_leader(w, l) && !w->nodes[l].frozen && !w->nodes[l].agent_frozen &&
            (newest < 0 || w->nodes[l].cons.term > w->nodes[newest].cons.term)) {
            newest = (int)l;
        }
    }
    for (unsigned l = 0; l < w->n; l++) {
        if ((int)l != newest) {
            continue;
        }
        const struct fsm_state *st = &w->nodes[l].cons.state;
        const struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, w->nodes[l].fx);
        for (unsigned i = 0; i < w->n; i++) {
            struct sim_node *n = &w->nodes[i];
            bool listed = fsm_state_member(st, n->name) != NULL;
            bool configured = false;
            for (unsigned k = 0; k < r->configuration.n; k++) {
                configured = configured || r->configuration.servers[k].id == n->fx + 1;
            }
            if (listed) {
                n->member = true;
            } else if (n->member && !n->removed && st->initialized && !configured) {
                sim_decommission(w, n->name);
            }
        }
    }
    unsigned voters = sim_voters(w);
    const struct fsm_state *rs = committed_state(w);
    if (rs != NULL && rs->initialized && strcmp(rs->primary.name, w->recorded) != 0) {
        snprintf(w->prev_recorded, sizeof w->prev_recorded, "%s", w->recorded);
        snprintf(w->recorded, sizeof w->recorded, "%s", rs->primary.name);
    }
    bool majority = false, waived = false, waived4 = false, primary = false;
    if (voters > 0) {
        healthy_majority(w, voters / 2 + 1, &majority, &waived, &waived4, &primary);
    }
    if (waived4 && !primary) {
        if (!w->waived4_open) {
            sim_trace(w, -1,
                      "I4 waived: no healthy majority can prove that the previous primary, out "
                      "of its sight, gets no acknowledgement from a voter out of its sight too "
                      "(rule 4)");
        }
        w->waived4_open = true;
        w->res->waived4_ms += SIM_CHECK_MS;
    } else {
        w->waived4_open = false;
    }
    if (waived && !primary) {
        if (!w->waived_open) {
            sim_trace(w, -1,
                      "I4 waived: no healthy majority can prove it holds every "
                      "acknowledged commit (rule 6)");
        }
        w->waived_open = true;
        w->res->waived_ms += SIM_CHECK_MS;
    } else {
        w->waived_open = false;
    }
    /* Maintenance mode: the operator owns PostgreSQL and no failover is owed; the budget starts
     * again at the resume. */
    const struct fsm_state *cs = committed_state(w);
    bool paused = cs != NULL && cs->initialized && cs->paused;
    if (paused) {
        if (!w->paused_open) {
            sim_trace(w, -1, "I4 not owed: the cluster is in maintenance mode");
        }
        w->paused_open = true;
        w->res->paused_ms += SIM_CHECK_MS;
    } else {
        w->paused_open = false;
    }
    if (!majority || primary || paused) {
        if (w->gap_start != 0 && primary) {
            rpg_msec gap = now - w->gap_start;
            w->res->max_gap = gap > w->res->max_gap ? gap : w->res->max_gap;
            if (w->res->n_gaps < 64) {
                w->res->gaps[w->res->n_gaps++] = gap;
            }
        }
        w->gap_start = 0;
        w->i4_reported = false;
        return;
    }
    if (w->gap_start == 0) {
        w->gap_start = now;
    }
    rpg_msec gap = now - w->gap_start;
    if (gap > w->res->max_gap) {
        w->res->max_gap = gap;
    }
    if (gap > w->opt->budget && !w->i4_reported) {
        w->i4_reported = true;
        char why[200] = "";
        for (unsigned i = 0; i < w->n; i++) {
            const struct sim_agent *a = &w->nodes[i].agent;
            if (a->alive && w->nodes[i].cons.role == CONS_ROLE_LEADER) {
                sim_fmt(why, sizeof why, "; leader %s: %s %s: %s", w->nodes[i].name,
                        ha_action_name(a->core.last.action), a->core.last.target, a->core.last.why);
            }
        }
        sim_violation(w, CHK_I4,
                      "a majority of the %u voters has been healthy for %" PRIu64
                      " ms without a primary%s",
                      voters, gap, why);
    }
}

static void describe(const struct sim_world *w, unsigned i, char *buf, size_t size)
{
    const struct sim_node *n = &w->nodes[i];
    const struct sim_pg *p = &n->pg;
    static const char *const procs[] = {"down", "starting", "running", "stopping"};
    sim_fmt(buf, size,
            "%s: postgresql %s%s%s tl=%u end=%" PRIu64 " upstream=%s streaming=%d; agent %s: "
            "%s %s: %s%s%s",
            n->name, p->data ? (p->broken ? "broken " : "") : "absent ", procs[p->proc],
            p->in_recovery ? " standby" : "", sim_pg_tl(p), p->end,
            p->conf_upstream[0] ? p->conf_upstream : "-", p->streaming,
            n->agent.alive ? "up" : "down", ha_action_name(n->agent.core.last.action),
            n->agent.core.last.target, n->agent.core.last.why,
            n->agent.core.error[0] ? "; last error: " : "", n->agent.core.error);
}

/* Check X at the end: a ready leader, not paused, left no schedule recorded past its stale bound
 * (schedule.h: it runs it or drops it by then). */
static void check_schedule_end(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *n = &w->nodes[i];
        const struct fsm_state *st = &n->cons.state;
        if (!n->exists || !sim_agent_leader(w, i) || n->frozen || !st->initialized || st->paused ||
            st->switchover.at_ms == 0) {
            continue;
        }
        int64_t late = sim_wall_ms(w) - st->switchover.at_ms;
        if (late > SCHEDULE_STALE_MS + 5000) {
            char at[48];
            schedule_format_time(st->switchover.at_ms, at, sizeof at);
            sim_violation(w, CHK_SCHED,
                          "the switchover scheduled at %s is still recorded at the end, %" PRId64
                          " ms after its time, with %s the ready leader",
                          at, late, n->name);
        }
    }
}

void sim_check_end(struct sim_world *w)
{
    check_states(w);
    check_schedule_end(w);
    for (unsigned i = 0; i < w->n; i++) {
        if (w->nodes[i].exists) {
            w->res->raft_restarts += w->nodes[i].cons.wal.n_restarts;
            w->res->held_changes += w->nodes[i].cons.wal.n_held_total;
        }
    }
    int p = -1;
    unsigned writers = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (accepts_writes(w, i)) {
            p = (int)i;
            writers++;
        }
    }
    if (writers != 1) {
        if (!w->i4_reported) {
            sim_violation(w, CHK_I4, "%u servers accept writes at the end", writers);
        }
        return;
    }
    sim_check_commits(w, (unsigned)p, "is the primary at the end");
    const struct sim_pg *pg = &w->nodes[p].pg;
    for (size_t k = 0; k < w->n_acked; k++) {
        const struct sim_commit *c = &w->acked[k];
        bool lost = pg->end <= c->lsn || sim_pg_uid_at(pg, c->lsn) != c->uid;
        w->res->lost_unchecked += lost && w->opt->sync_mode == SYNC_MODE_OFF;
    }
    /* DESIGN.md rule 9: every member rejoined as a streaming standby of the primary. A node whose
     * addition never committed (its leader died with it) is no member: it waits to be added. */
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *n = &w->nodes[i];
        uint64_t at;
        if (!n->exists || n->removed || (int)i == p ||
            fsm_state_member(&w->nodes[p].cons.state, n->name) == NULL) {
            continue;
        }
        if (n->pg.proc == SIM_PROC_RUNNING && n->pg.in_recovery && n->pg.streaming &&
            n->pg.streaming_from == p && sim_pg_prefix_of(&n->pg, &w->nodes[p].pg, &at)) {
            continue;
        }
        char what[300];
        describe(w, i, what, sizeof what);
        sim_violation(w, CHK_REJOIN,
                      "not a streaming standby of %s %" PRIu64 " s after healing: %s",
                      w->nodes[p].name, w->opt->quiet / 1000, what);
    }
}
