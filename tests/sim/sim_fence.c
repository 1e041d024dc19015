/* The fence and the write VIP (DESIGN.md rules 2 and 3) as the agent runs them: the old side
 * fences its PostgreSQL the moment it may accept writes without a lease (src/agent.c fence_tick),
 * a new leader waits until the previous lease has surely run out (fence_promote_not_before), and
 * the write VIP follows the lease. The lease itself is raft/cons.c's, ticked as cons_uv.c ticks
 * it; the fence decisions are fence_plan's (raftpg/fence.h). What remains here is agent.c's glue
 * around them, outside struct core, which the simulation mirrors (README.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/fence.h"
#include "raftpg/lead.h"
#include "raftpg/watchdog.h"
#include "sim.h"

#define VIP_LIFETIME_MS 2000    /* conf.c: vip.lifetime; vip.c renews every quarter of it */
#define WATCHDOG_SAFETY_MS 1000 /* conf.c: watchdog.safety_margin */
#define REBOOT_MIN_MS 3000      /* a node reset by its watchdog is back after this long */
#define REBOOT_MAX_MS 8000

static struct fence_timing timing(void)
{
    struct fence_timing t;
    fence_timing_init(&t, SIM_ELECTION_TIMEOUT_MS);
    return t;
}

void sim_fence_start(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct fence_timing t = timing();
    sim_push(w, sim_now(w) + TIMING_FENCE_TICK_MS, EV_FENCE, (int)i, a->gen, 0);
    sim_push(w, sim_now(w) + t.renew_ms, EV_LEASE, (int)i, a->gen, 0);
    /* cons.c: raft_start one election timeout after the agent started, so that a restarted
     * member cannot vote for a new leader while the old one may still hold a lease it granted. */
    sim_push(w, sim_now(w) + (w->opt->no_lease ? 0 : SIM_ELECTION_TIMEOUT_MS), EV_RAFT_START,
             (int)i, a->gen, 0);
}

/* The agent's watchdog section under --watchdog: mode automatic, the default safety margin. */
static const struct conf_watchdog sim_watchdog = {.mode = CONF_WATCHDOG_AUTOMATIC,
                                                  .safety_margin_ms = WATCHDOG_SAFETY_MS};

static rpg_msec watchdog_ms(const struct fence_timing *t)
{
    return watchdog_promote_wait_ms(&sim_watchdog, t->lease_ms + t->margin_ms);
}

/* The executors' data: the world and the node. */
struct fence_x {
    struct sim_world *w;
    unsigned i;
};

static void x_log(void *data, enum log_level level, const char *msg);

/* agent.c ha_tick: the same gate (lead_gate): acting as leader needs the lease, and a new leader
 * waits until the previous one has surely fenced or every other member answered that it stood
 * down. */
bool sim_lead_gate(struct sim_world *w, unsigned i, bool *poll_now)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct fence_timing t = timing();
    struct lead_in in = {
        .cons = &w->nodes[i].cons,
        .self = w->nodes[i].name,
        .peers = a->book.results,
        .n_peers = a->book.n_results,
        .lease_ok = a->fm.lease_ok,
        .watchdog_ok = true,
        .watchdog_ms = w->opt->watchdog ? watchdog_ms(&t) : 0,
        .now = sim_local_now(w, i),
    };
    struct fence_x d = {w, i};
    return lead_gate(&t, &a->lead, &in, poll_now, x_log, &d);
}

/* pg.c pg_may_accept_writes, on what the simulated node shows. */
static bool may_accept_writes(const struct sim_node *n)
{
    bool promoting = n->agent.promote_pending;
    for (unsigned k = 0; k < SIM_OPS_MAX; k++) {
        if (n->ops[k].id != 0 && n->ops[k].id == n->agent.op_id && n->ops[k].kind == SOP_PROMOTE) {
            promoting = true;
        }
    }
    return fence_pg_writable(n->pg.proc != SIM_PROC_DOWN, promoting,
                             n->agent.obs.state == HA_PG_RUNNING && !n->agent.obs.in_recovery,
                             n->pg.standby_signal);
}

/* agent.c watchdog_tick: armed while this node may accept writes under a lease, fed on every
 * fence tick, left armed and unfed while a fence is unfinished, disarmed (magic close) after, and
 * only by the agent process that armed it. The device keeps counting whatever happens to the
 * agent: a crash or a SIGSTOP of the agent leaves it armed and unfed. */
static void watchdog_tick(struct sim_world *w, unsigned i, bool primary, bool unfenced)
{
    struct sim_node *n = &w->nodes[i];
    if (!w->opt->watchdog) {
        return;
    }
    struct fence_timing t = timing();
    unsigned timeout_s = (unsigned)(watchdog_ms(&t) / 1000u);
    switch (watchdog_plan(primary, n->agent.wd_mine, unfenced)) {
    case WATCHDOG_STEP_ARM:
    case WATCHDOG_STEP_FEED:
        if (!n->wd_armed) {
            sim_trace(w, (int)i, "watchdog armed (%u s)", timeout_s);
        }
        n->wd_armed = true;
        n->agent.wd_mine = true;
        n->wd_gen++;
        n->wd_deadline = sim_now(w) + timeout_s * 1000u;
        sim_push(w, n->wd_deadline, EV_WATCHDOG, (int)i, n->wd_gen, 0);
        break;
    case WATCHDOG_STEP_DISARM:
        n->wd_armed = false;
        n->agent.wd_mine = false;
        n->wd_gen++;
        sim_trace(w, (int)i, "watchdog disarmed");
        break;
    case WATCHDOG_STEP_NONE: break;
    }
}

/* The event's sub: the operation's sequence number, whether it claims, and whether the release
 * already took effect in the world while the agent was stopped (its result in the bits above). */
#define VIP_SUB_CLAIM 1u
#define VIP_SUB_APPLIED 2u
#define VIP_SUB_RESULT_SHIFT 2
#define VIP_SUB_SEQ_SHIFT 4
static void vip_op(struct sim_world *w, unsigned i, bool claim)
{
    struct sim_agent *a = &w->nodes[i].agent;
    a->vip_busy = true;
    a->vip_seq++;
    w->nodes[i].vm_resume_claim = false; /* a claim begun after the resume is no resumed one */
    /* ip addr del is quick; a claim probes with arping -D first, then adds and announces. */
    rpg_msec dur = claim ? sim_rng_range(&w->rng, 60, 200) : sim_rng_range(&w->rng, 2, 15);
    sim_push(w, sim_now(w) + dur, EV_VIP_DONE, (int)i, a->gen,
             (int)(a->vip_seq << VIP_SUB_SEQ_SHIFT | (claim ? VIP_SUB_CLAIM : 0)));
}

/* ip addr add / change with valid_lft: the kernel drops the address unless renewed, checking
 * lifetimes about once a second. */
static void vip_set_lifetime(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    n->vip_gen++;
    sim_push(w, sim_now(w) + VIP_LIFETIME_MS + sim_rng_range(&w->rng, 0, 1000), EV_VIP_EXPIRE,
             (int)i, n->vip_gen, 0);
}

/* agent.c may_write_soon: before a bootstrap, a start as primary or a promotion, the guard hears
 * of it and the watchdog is armed at once. */
void sim_guard_unfenced(struct sim_world *w, unsigned i)
{
    w->nodes[i].guard_unfenced = true;
    watchdog_tick(w, i, true, true);
}

/* guard.c guard_main: the pipe ends when the agent dies; if the last word was "unfenced", SIGINT
 * to the postmaster, SIGQUIT after the escalation bound, and ip addr del of the VIP. */
void sim_guard_wake(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->guard_unfenced) {
        return;
    }
    n->guard_unfenced = false;
    /* Reading the end of the pipe and reading postmaster.pid take a few milliseconds. */
    sim_push(w, sim_now(w) + sim_rng_range(&w->rng, 1, 10), EV_GUARD, (int)i, 0, 0);
}

static void guard_event(struct sim_world *w, unsigned i, uint64_t step)
{
    struct sim_node *n = &w->nodes[i];
    struct fence_timing t = timing();
    if (step == 0) {
        n->pg.sigstopped = false; /* guard.c: SIGCONT with each signal */
        if (n->pg.proc != SIM_PROC_DOWN) {
            sim_trace(w, (int)i, "guard: the agent is gone: stopping postgresql");
            n->guard_pg_inc = n->pg.inc;
            sim_pg_begin_shutdown(w, i, sim_rng_range(&w->rng, 10, 120));
            sim_push(w, sim_now(w) + t.escalate_ms, EV_GUARD, (int)i, 0, 1);
        }
        if (n->vip_held) {
            n->vip_held = false;
            sim_trace(w, (int)i, "guard: vip released");
        }
        return;
    }
    if (n->pg.proc != SIM_PROC_DOWN && n->pg.inc == n->guard_pg_inc) {
        sim_trace(w, (int)i, "guard: fast stop not done: immediate stop");
        sim_pg_crash(w, i);
    }
}

static void x_log(void *data, enum log_level level, const char *msg)
{
    struct fence_x *x = data;
    (void)level;
    sim_trace(x->w, (int)x->i, "%s", msg);
}

static void x_renew_now(void *data)
{
    struct fence_x *x = data;
    sim_lease_renew_now(x->w, x->i);
}

static int x_pg_signal(void *data, enum fence_pg_act act)
{
    struct fence_x *x = data;
    struct sim_world *w = x->w;
    struct sim_node *n = &w->nodes[x->i];
    struct sim_agent *a = &n->agent;
    switch (act) {
    case FENCE_PG_FREEZE:
        a->frozen_inc = n->pg.inc;
        n->pg.sigstopped = true;
        return 1;
    case FENCE_PG_THAW:
        if (n->pg.inc == a->frozen_inc) {
            n->pg.sigstopped = false;
        }
        return 1;
    case FENCE_PG_STOP:
        n->pg.sigstopped = false; /* SIGCONT with the signal */
        sim_pg_begin_shutdown(w, x->i, sim_rng_range(&w->rng, 10, 120));
        a->fence_inc = n->pg.inc;
        return 1;
    case FENCE_PG_KILL:
        n->pg.sigstopped = false;
        sim_pg_crash(w, x->i);
        a->fence_inc = n->pg.inc;
        return 1;
    case FENCE_PG_ESCALATE: sim_pg_crash(w, x->i); return 1;
    case FENCE_PG_DONE:
    case FENCE_PG_NONE: break;
    }
    return 0;
}

static const char *x_pg_target(void *data)
{
    (void)data;
    return "postgresql";
}

static void x_watchdog(void *data, bool feed, bool unfenced)
{
    struct fence_x *x = data;
    watchdog_tick(x->w, x->i, feed, unfenced);
}

static int x_vip(void *data, enum fence_vip_act act, bool cut_claim, char *errmsg)
{
    struct fence_x *x = data;
    struct sim_world *w = x->w;
    struct sim_agent *a = &w->nodes[x->i].agent;
    (void)errmsg;
    switch (act) {
    case FENCE_VIP_RELEASE:
    case FENCE_VIP_STARTUP_RELEASE:
        if (cut_claim) {
            a->vip_cancelled = a->vip_seq; /* its end changes nothing */
        }
        vip_op(w, x->i, false);
        return 0;
    case FENCE_VIP_CLAIM: vip_op(w, x->i, true); return 0;
    case FENCE_VIP_RENEW:
        /* vip_renew: a lookup, then ip addr change; quick enough to count as instant. */
        vip_set_lifetime(w, x->i);
        return 0;
    case FENCE_VIP_RETRY:
    case FENCE_VIP_PROBE: /* never due here: vip_probe_due stays false */
    case FENCE_VIP_NONE: break;
    }
    return 0;
}

/* agent.c fence_tick_inner: false when it did not run; *unfenced for the guard. */
static bool fence_tick_inner(struct sim_world *w, unsigned i, bool *unfenced)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    if (!a->alive || n->frozen) {
        return false;
    }
    struct fence_timing t = timing();
    const struct cons *c = &n->cons;
    const struct ha_pg *o = &a->obs;
    struct fence_world fw = {
        .now = sim_local_now(w, i),
        .leader_ready = c->attached && c->role == CONS_ROLE_LEADER && c->leader_ready,
        .lease_until = cons_lease_fence(&n->cons, sim_local_now(w, i)),
        .lease_pending = c->lease_pending,
        .lease_submitted = c->lease_submitted,
        .lease_disabled = w->opt->no_lease,
        .writable = may_accept_writes(n),
        .pg_busy = a->op_id != 0,
        .postmaster = n->pg.proc != SIM_PROC_DOWN,
        .primary_running = o->state == HA_PG_RUNNING && !o->in_recovery,
        .recorded_primary = strcmp(n->cons.state.primary.name, n->name) == 0,
        .target_gone = n->pg.proc == SIM_PROC_DOWN || n->pg.inc != a->fence_inc,
        .op_name = "an operation",
        .vip_open = true,
        .vip_held = n->vip_held,
        .vip_busy = a->vip_busy,
        .vip_renew_ms = VIP_LIFETIME_MS / 4,
    };
    struct fence_x xd = {w, i};
    const struct fence_exec x = {
        .data = &xd,
        .log = x_log,
        .lease_renew_now = x_renew_now,
        .pg_signal = x_pg_signal,
        .pg_target = x_pg_target,
        .watchdog = x_watchdog,
        .vip = x_vip,
    };
    fence_step(&t, &a->fm, &fw, &x, unfenced);
    return true;
}

/* agent.c fence_tick: then the guard hears whether anything needs fencing. */
void sim_fence_tick(struct sim_world *w, unsigned i)
{
    bool unfenced = false;
    if (fence_tick_inner(w, i, &unfenced)) {
        w->nodes[i].guard_unfenced = unfenced;
    }
}

/* The end of an ip or arping operation in the world: whether it left the address held. */
static enum fence_vip_result vip_done(struct sim_world *w, unsigned i, bool claim)
{
    struct sim_node *n = &w->nodes[i];
    if (!claim) {
        if (n->vip_held) {
            sim_trace(w, (int)i, "vip released");
        }
        n->vip_held = false;
        return FENCE_VIP_DONE_OK;
    }
    /* arping -D: another host that answers for the address makes the claim fail. Its kernel
     * answers even while its processes are stopped, but not while its hypervisor pauses it. */
    for (unsigned j = 0; j < w->n; j++) {
        if (j != i && w->nodes[j].exists && w->nodes[j].up && w->nodes[j].vip_held &&
            !w->nodes[j].vm_paused) {
            sim_trace(w, (int)i, "vip claim refused: %s answers for it", w->nodes[j].name);
            return FENCE_VIP_DONE_FAILED;
        }
    }
    n->vip_held = true;
    vip_set_lifetime(w, i);
    sim_trace(w, (int)i, "vip held");
    (void)sim_resumed_claim(w, i);
    return FENCE_VIP_DONE_OK;
}

void sim_fence_event(struct sim_world *w, const struct sim_event *e)
{
    unsigned i = (unsigned)e->node;
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    struct fence_timing t = timing();
    if (e->type == EV_WATCHDOG) {
        /* The kernel's timer, not the agent's: it fires on a paused or agentless node too. */
        if (n->up && n->wd_armed && n->wd_gen == e->gen) {
            sim_trace(w, (int)i, "watchdog expired: node reset");
            sim_node_reset(w, i, sim_rng_range(&w->rng, REBOOT_MIN_MS, REBOOT_MAX_MS));
        }
        return;
    }
    if (e->type == EV_GUARD) {
        if (n->up) {
            guard_event(w, i, e->sub);
        }
        return;
    }
    if (e->type == EV_VIP_EXPIRE) {
        if (n->up && n->vip_held && n->vip_gen == e->gen) {
            sim_trace(w, (int)i, "vip expired: nobody renewed it");
            n->vip_held = false;
        }
        return;
    }
    if (e->type == EV_VIP_DONE) {
        unsigned sub = (unsigned)e->sub;
        unsigned seq = sub >> VIP_SUB_SEQ_SHIFT;
        bool claim = sub & VIP_SUB_CLAIM;
        bool mine = a->alive && a->gen == e->gen;
        if (claim && mine && seq == a->vip_cancelled) {
            return; /* cut short: the release that cancelled it ends the operation */
        }
        if (claim && mine && n->agent_frozen) {
            /* The claim's steps (probe, add, announce) are the agent's to start: a stopped
             * agent starts none. */
            sim_push(w, sim_now(w) + 10, e->type, e->node, e->gen, e->sub);
            return;
        }
        /* ip and arping run on their own: a release in flight still happens if the agent died
         * or is stopped. A claim's add does not: it follows a probe of about a second, and a dead
         * agent starts no next step (an add already running lasts milliseconds, and the guard's
         * deletion comes after its fence of PostgreSQL, later still). */
        enum fence_vip_result r = FENCE_VIP_DONE_OK;
        if (sub & VIP_SUB_APPLIED) {
            r = (enum fence_vip_result)(sub >> VIP_SUB_RESULT_SHIFT & 3u);
        } else if (n->up && (mine || !claim)) {
            r = vip_done(w, i, claim);
        }
        if (mine && n->agent_frozen) {
            /* Done in the world; the stopped agent learns it when it continues. */
            sim_push(w, sim_now(w) + 10, e->type, e->node, e->gen,
                     (int)(seq << VIP_SUB_SEQ_SHIFT | VIP_SUB_APPLIED |
                           (unsigned)r << VIP_SUB_RESULT_SHIFT));
            return;
        }
        if (mine) {
            a->vip_busy = false;
            fence_vip_done(&a->fm, r, false, n->vip_held, sim_local_now(w, i));
            sim_fence_tick(w, i);
        }
        return;
    }
    if (!a->alive || a->gen != e->gen) {
        return;
    }
    switch (e->type) {
    case EV_FENCE:
        sim_fence_tick(w, i);
        sim_push(w, sim_now(w) + TIMING_FENCE_TICK_MS, EV_FENCE, (int)i, a->gen, 0);
        return;
    case EV_LEASE:
        sim_lease_renew(w, i);
        sim_push(w, sim_now(w) + t.renew_ms, EV_LEASE, (int)i, a->gen, 0);
        return;
    case EV_RAFT_START: sim_raft_started(w, i); return;
    default: return;
    }
}
