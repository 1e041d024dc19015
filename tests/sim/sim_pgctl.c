/* The simulated PostgreSQL servers at run time: process start and crash, promotion, streaming
 * replication with synchronous acknowledgement, and the client that writes to every server that
 * accepts writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* A postmaster that fails to come up, per mille of starts (a transient failure: the agent's
 * start-failure accounting and retries are exercised). */
#define START_FAILURE_PER_MILLE 20
/* The lazy checkpoint a promotion requests ends this long after it. */
#define LAZY_CHECKPOINT_MIN_MS 1000
#define LAZY_CHECKPOINT_MAX_MS 5000

void sim_pg_crash(struct sim_world *w, unsigned i)
{
    struct sim_pg *p = &w->nodes[i].pg;
    if (p->proc == SIM_PROC_DOWN) {
        return;
    }
    /* pg_control keeps the state it had: a primary crashes "in production". */
    p->was_primary = !p->in_recovery && p->proc != SIM_PROC_STARTING ? true : p->was_primary;
    p->proc = SIM_PROC_DOWN;
    p->inc++;
    p->shut_down = false;
    p->sigstopped = false;
    p->stale_receiver = false;
    p->in_recovery = false;
    p->promote_pending = false;
    p->streaming = false;
    p->streaming_from = -1;
    sim_trace(w, (int)i, "postgresql crashed");
}

void sim_pg_begin_start(struct sim_world *w, unsigned i, bool standby, rpg_msec dur)
{
    struct sim_pg *p = &w->nodes[i].pg;
    (void)standby;
    p->proc = SIM_PROC_STARTING;
    p->inc++;
    p->shut_down = false; /* pg_control: in production, or in recovery */
    p->stale_receiver = false;
    p->reserved_tl = 0; /* pg.c drop_reservations */
    p->in_recovery = false;
    p->streaming = false;
    p->streaming_from = -1;
    sim_push(w, sim_now(w) + dur, EV_PG_UP, (int)i, p->inc, 0);
}

void sim_pg_begin_shutdown(struct sim_world *w, unsigned i, rpg_msec dur)
{
    struct sim_pg *p = &w->nodes[i].pg;
    if (p->proc == SIM_PROC_DOWN || p->proc == SIM_PROC_STOPPING) {
        return;
    }
    p->stop_in_start = p->proc == SIM_PROC_STARTING;
    p->proc = SIM_PROC_STOPPING;
    p->inc++;
    p->promote_pending = false;
    sim_push(w, sim_now(w) + dur, EV_PG_SHUTDOWN, (int)i, p->inc, 0);
}

/* The shutdown checkpoint is written once the walsenders have sent everything to the standbys
 * that stream from this server. */
static void finish_shutdown(struct sim_world *w, unsigned i)
{
    struct sim_pg *p = &w->nodes[i].pg;
    for (unsigned j = 0; j < w->n; j++) {
        struct sim_pg *s = &w->nodes[j].pg;
        if (s->proc == SIM_PROC_RUNNING && s->streaming && s->streaming_from == (int)i &&
            !sim_pg_halted(&w->nodes[j])) {
            sim_pg_stream(s, p, p->end);
        }
    }
    p->proc = SIM_PROC_DOWN;
    p->inc++;
    p->ckpt_tl = sim_pg_tl(p);
    /* A server stopped before its start ended (in_recovery is not known then) leaves pg_control
     * as the start found it, as a crash does: a standby's start is "in archive recovery". */
    if (!p->stop_in_start) {
        p->was_primary = !p->in_recovery;
    }
    /* pg_control: "shut down" after a primary's stop ("shut down in recovery" a standby's), its
     * latest checkpoint the shutdown checkpoint, the last record: a standby that received all of
     * the WAL reports a position past it. */
    p->shut_down = !p->stop_in_start && p->was_primary;
    p->ckpt_lsn = p->end > 0 ? p->end - 1 : 0;
    p->in_recovery = false;
    p->streaming = false;
    p->streaming_from = -1;
    sim_trace(w, (int)i, "postgresql stopped");
}

/* A server starts accepting writes (promotion or start as a primary): every acknowledged commit
 * must be in its WAL (I2), and it writes from now on under a new uid. */
void sim_pg_became_primary(struct sim_world *w, unsigned i)
{
    struct sim_pg *p = &w->nodes[i].pg;
    p->acked = p->end;
    if (w->phase != SIM_WARMUP) {
        w->res->failovers += w->last_primary != (int)i;
        /* The candidate of an operator's failover took over while its permit ran. */
        rpg_msec granted = w->nodes[i].permit_granted_local;
        bool took_over = w->last_primary != (int)i && granted != 0 &&
                         sim_local_now(w, i) - granted <= FAILOVER_PERMIT_MS;
        w->res->fo_took_over += took_over;
        w->res->fo_took_over_paused += took_over && w->nodes[i].cons.state.paused;
    }
    w->last_primary = (int)i;
    if (!sim_resumed_start(w, i)) {
        sim_check_commits(w, i, "became primary");
    }
    sim_new_primary(w, i);
}

void sim_pg_event(struct sim_world *w, const struct sim_event *e)
{
    unsigned i = (unsigned)e->node;
    struct sim_pg *p = &w->nodes[i].pg;
    if (e->gen != p->inc) {
        return;
    }
    switch (e->type) {
    case EV_PG_UP:
        if (p->proc != SIM_PROC_STARTING) {
            return;
        }
        if (sim_rng_chance(&w->rng, START_FAILURE_PER_MILLE)) {
            p->proc = SIM_PROC_DOWN;
            p->inc++;
            sim_trace(w, (int)i, "postgresql failed to start");
            return;
        }
        p->proc = SIM_PROC_RUNNING;
        p->in_recovery = p->standby_signal;
        sim_copy(p->sync_names, sizeof p->sync_names, p->conf_sync_names);
        sim_copy(p->sync_commit, sizeof p->sync_commit, p->conf_sync_commit);
        if (p->in_recovery) {
            p->was_primary = false;
            sim_trace(w, (int)i, "postgresql up as a standby of %s",
                      p->conf_upstream[0] ? p->conf_upstream : "nobody");
        } else {
            /* Without standby.signal a standby's data directory comes up as a primary on the
             * same timeline: no new timeline is chosen (only promotion does that). */
            sim_pg_push(p, sim_pg_tl(p), sim_new_uid(w), p->end);
            p->was_primary = true;
            sim_trace(w, (int)i, "postgresql up as a primary on timeline %u", sim_pg_tl(p));
            sim_pg_became_primary(w, i);
        }
        return;
    case EV_PG_PROMOTED:
        if (p->proc != SIM_PROC_RUNNING || !p->in_recovery || !p->promote_pending) {
            return;
        }
        p->promote_pending = false;
        /* The first id past its own with no history file: reservations included. */
        uint32_t newest = sim_pg_max_tl(p) > p->reserved_tl ? sim_pg_max_tl(p) : p->reserved_tl;
        sim_pg_push(p, newest + 1, sim_new_uid(w), p->end);
        p->hist_tl = sim_pg_tl(p);
        p->in_recovery = false;
        p->standby_signal = false;
        p->streaming = false;
        p->streaming_from = -1;
        p->was_primary = true;
        sim_trace(w, (int)i, "postgresql promoted to timeline %u at %" PRIu64, sim_pg_tl(p),
                  p->end);
        sim_push(
            w, sim_now(w) + sim_rng_range(&w->rng, LAZY_CHECKPOINT_MIN_MS, LAZY_CHECKPOINT_MAX_MS),
            EV_PG_CHECKPOINT, (int)i, p->inc, 0);
        sim_pg_became_primary(w, i);
        return;
    case EV_PG_CHECKPOINT:
        if (p->proc == SIM_PROC_RUNNING) {
            p->ckpt_tl = sim_pg_tl(p);
        }
        return;
    case EV_PG_SHUTDOWN:
        if (p->proc == SIM_PROC_STOPPING) {
            finish_shutdown(w, i);
        }
        return;
    default: return;
    }
}

/* ---- streaming replication ------------------------------------------------------------------- */

static bool has_slot(const struct sim_pg *u, uint64_t id)
{
    for (unsigned k = 0; k < u->n_slots; k++) {
        if (u->slots[k] == id) {
            return true;
        }
    }
    return false;
}

/* One standby's walreceiver for this round: connect, check, receive. */
static void stream_one(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_pg *s = &n->pg;
    int u = s->stale_receiver && s->streaming_from >= 0 ? s->streaming_from
                                                        : sim_node_by_name(w, s->conf_upstream);
    char why[RPG_ERRMSG_SIZE];
    if (s->streaming && s->streaming_from == u && u >= 0 && w->nodes[u].up &&
        (sim_pg_halted(&w->nodes[u]) || w->nodes[u].pg.proc == SIM_PROC_STOPPING) &&
        sim_link(w, i, (unsigned)u)) {
        /* A stopped or paused upstream keeps its connections open and sends nothing: the
         * receiver waits (wal_receiver_timeout, 60 s) and goes on when it continues. So does
         * one shutting down: its walsenders stay until they sent the shutdown checkpoint
         * (finish_shutdown). */
        return;
    }
    bool ok = u >= 0 && (unsigned)u != i && w->nodes[u].up && !sim_pg_halted(&w->nodes[u]) &&
              sim_link(w, i, (unsigned)u) && w->nodes[u].pg.proc == SIM_PROC_RUNNING &&
              w->nodes[u].pg.system_id == s->system_id &&
              (s->slot_id == 0 || has_slot(&w->nodes[u].pg, s->slot_id));
    if (u >= 0 && (unsigned)u != i && w->nodes[u].up && !sim_pg_halted(&w->nodes[u]) &&
        sim_link(w, i, (unsigned)u) && w->nodes[u].pg.proc == SIM_PROC_RUNNING &&
        w->nodes[u].pg.system_id == s->system_id && sim_pg_tl(&w->nodes[u].pg) >= sim_pg_tl(s)) {
        /* The walreceiver fetches the upstream's missing history files before it asks to
         * stream (and before a missing slot makes that fail). */
        uint32_t tl = sim_pg_tl(&w->nodes[u].pg);
        s->hist_tl = tl > s->hist_tl ? tl : s->hist_tl;
    }
    if (ok && sim_pg_stream_check(s, &w->nodes[u].pg, why, sizeof why) != 0) {
        ok = false;
    }
    if (!ok) {
        s->streaming = false;
        s->streaming_from = -1;
        s->stale_receiver = false; /* a new receiver reads the configuration */
        return;
    }
    struct sim_pg *up = &w->nodes[u].pg;
    bool fresh = !s->streaming || s->streaming_from != u;
    s->streaming = true;
    s->streaming_from = u;
    uint64_t before = s->end;
    /* A slow link delivers later: the standby gets what the upstream had a round earlier. */
    uint64_t upto = w->nodes[u].latency + n->latency > 40 && !fresh ? up->mark : up->end;
    if (upto > s->end) {
        sim_pg_stream(s, up, upto);
    }
    uint64_t at;
    if (!sim_pg_prefix_of(s, up, &at) && s->diverged_inc != s->inc) {
        s->diverged_inc = s->inc;
        sim_violation(w, CHK_DIVERGE,
                      "%s streams from %s but their WAL differs from lsn %" PRIu64
                      " (timeline %u on both sides, received from %" PRIu64 ")",
                      n->name, w->nodes[u].name, at, sim_pg_tl(s), before);
    }
}

/* The k of the synchronous_standby_names in force, and its names; 0 when the server runs
 * asynchronously ('' or synchronous_commit = local). A value the agent never writes counts as
 * asynchronous, as sync.h says PostgreSQL should be assumed to be. */
static unsigned sync_in_force(const struct sim_pg *p, struct sync_set *set)
{
    char errmsg[RPG_ERRMSG_SIZE];
    if (strcmp(p->sync_commit, "local") == 0 || p->sync_names[0] == '\0' ||
        sync_set_parse(p->sync_names, set, errmsg) != 0) {
        return 0;
    }
    return set->k;
}

/* Synchronous replication: with synchronous_standby_names = 'ANY k (names)' the primary
 * acknowledges a commit once k of the named standbys streaming from it have received it;
 * asynchronous, once it has it itself. */
static void acknowledge(struct sim_world *w, unsigned i)
{
    struct sim_pg *p = &w->nodes[i].pg;
    struct sync_set set;
    unsigned k = sync_in_force(p, &set);
    uint64_t upto = p->end;
    if (k > 0) {
        uint64_t pos[SIM_NODES_MAX];
        unsigned n = 0;
        for (unsigned j = 0; j < w->n; j++) {
            const struct sim_pg *s = &w->nodes[j].pg;
            if (j != i && s->proc == SIM_PROC_RUNNING && s->in_recovery && s->streaming &&
                s->streaming_from == (int)i && !sim_pg_halted(&w->nodes[j]) &&
                sync_set_contains(&set, w->nodes[j].name)) {
                pos[n++] = s->end;
            }
        }
        if (n < k) {
            return;
        }
        /* The k-th highest position. */
        for (unsigned a = 0; a < n; a++) {
            for (unsigned b = a + 1; b < n; b++) {
                if (pos[b] > pos[a]) {
                    uint64_t t = pos[a];
                    pos[a] = pos[b];
                    pos[b] = t;
                }
            }
        }
        upto = pos[k - 1] < p->end ? pos[k - 1] : p->end;
    }
    for (uint64_t lsn = p->acked; lsn < upto; lsn++) {
        if (w->n_acked == w->cap_acked) {
            size_t cap = w->cap_acked ? 2 * w->cap_acked : 256;
            struct sim_commit *c = realloc(w->acked, cap * sizeof *c);
            if (c == NULL) {
                abort();
            }
            w->acked = c;
            w->cap_acked = cap;
        }
        w->acked[w->n_acked++] = (struct sim_commit){.lsn = lsn, .uid = sim_pg_uid_at(p, lsn)};
        w->res->acked++;
        w->res->acked_async += k == 0;
    }
    if (upto > p->acked) {
        sim_check_ack(w, i);
        p->acked = upto;
    }
}

void sim_repl_round(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *n = &w->nodes[i];
        if (n->exists && n->up && !sim_pg_halted(n) && n->pg.proc == SIM_PROC_RUNNING &&
            n->pg.in_recovery) {
            stream_one(w, i);
        }
    }
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->exists && n->up && !sim_pg_halted(n) && sim_pg_writable(&n->pg)) {
            acknowledge(w, i);
        }
        n->pg.mark = n->pg.end;
    }
}

/* The client writes one row to every server that accepts writes (DESIGN.md §7: through the VIP
 * and directly to every node). */
void sim_client_round(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        if (!n->exists || !n->up || sim_pg_halted(n) || !sim_pg_writable(&n->pg)) {
            continue;
        }
        n->pg.end++;
        acknowledge(w, i);
    }
}
