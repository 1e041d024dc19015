/* One simulated agent: the real struct core behind a simulated struct core_io, raft/cons.c
 * itself attached to the node's raft_fixture server, and what surrounds them in the agent,
 * written for the simulated world: the observer of src/pg.c, the peer poller of src/peers.c, the
 * glue of src/agent.c that fills the core's view, and PostgreSQL's control operations. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/storage.h"
#include "sim.h"

static bool sim_storage_probe(struct sim_world *w, unsigned i);

/* The io data pointer is the agent; it knows its world and index. */
static struct sim_world *world_of_agent(void *data, unsigned *idx)
{
    struct sim_agent *a = data;
    *idx = a->idx;
    return a->w;
}

static const char *role_name(int role)
{
    switch (role) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "unavailable";
}

static struct raft *raft_of(struct sim_world *w, unsigned i)
{
    return raft_fixture_get(&w->fx, w->nodes[i].fx);
}

bool sim_agent_leader(const struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->agent.alive && n->cons.role == CONS_ROLE_LEADER && n->cons.leader_ready;
}

/* ---- what a node reports on GET /status ------------------------------------------------------ */

static void report_of(struct sim_world *w, unsigned j, struct peer_status *s)
{
    const struct sim_node *n = &w->nodes[j];
    const struct sim_agent *a = &n->agent;
    s->id = n->fx + 1;
    const struct cons *c = &n->cons;
    sim_copy(s->raft_role, sizeof s->raft_role, role_name((int)c->role));
    s->term = c->term;
    /* Raft ids are fixture indexes + 1, and node i is fixture server i + 1 (0 is the clock). */
    int l = c->leader_id >= 2 ? (int)c->leader_id - 2 : -1;
    snprintf(s->leader, sizeof s->leader, "%s",
             l >= 0 && (unsigned)l < w->n ? w->nodes[l].name : "");
    snprintf(s->phase, sizeof s->phase, "running");
    s->has_pg = true;
    s->pg_state = a->obs.state;
    s->pg_in_recovery = a->obs.in_recovery;
    s->pg_streaming = a->obs.streaming;
    s->pg_system_id = a->obs.system_id;
    s->pg_timeline = a->obs.timeline;
    s->pg_checkpoint_timeline = a->obs.checkpoint_timeline;
    s->pg_wal_position = a->obs.wal_position;
    s->pg_start_failures = a->obs.start_failures;
    snprintf(s->pg_address, sizeof s->pg_address, "10.0.0.%u:5432", j + 1);
    sim_copy(s->pg_upstream, sizeof s->pg_upstream, a->obs.upstream);
    sim_copy(s->pg_receiver, sizeof s->pg_receiver, a->obs.receiver);
    sim_copy(s->pg_conninfo, sizeof s->pg_conninfo, a->obs.conninfo);
    s->nofailover = false;
    s->failover_priority = 1;
    /* api_view.c: raft_storage.ok, state.diverged */
    s->storage_failed = c->storage.failed;
    s->diverged = c->diverged;
    /* api_view.c: a failover granted, for its candidate to adopt (failover_permit {to, ms_left}).
     */
    rpg_msec now = sim_local_now(w, j);
    bool permit = a->permit.to[0] != '\0' && now < a->permit.until;
    sim_copy(s->permit_to, sizeof s->permit_to, permit ? a->permit.to : "");
    s->permit_ms_left = permit ? a->permit.until - now : 0;
}

/* ---- the peer poller (src/peers.c, agent.c update_peer_targets) -------------------------------
 */

static void update_peer_targets(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct peer_status initial[PEERS_MAX];
    unsigned k = 0;
    for (unsigned m = 0; m < w->n_initial && k < PEERS_MAX; m++) {
        memset(&initial[k], 0, sizeof initial[k]);
        sim_copy(initial[k].name, FSM_NAME_MAX, w->nodes[m].name);
        /* The address the cluster state records (member_of), as a configuration gives both. */
        snprintf(initial[k++].api, sizeof initial[0].api, "10.0.0.%u:8008", m + 1);
    }
    peer_book_update_targets(&n->agent.book, &n->cons.state, n->name, initial, k);
}

/* One GET /status over the simulated network: fills the answer (or the error) as the peer is
 * now and returns how long the request takes. */
static rpg_msec poll_request(struct sim_world *w, unsigned i, struct peer_status *s)
{
    int j = sim_node_by_name(w, s->name);
    rpg_msec cost = SIM_POLL_TIMEOUT_MS;
    s->reachable = false;
    if (j < 0 || !w->nodes[j].up || w->nodes[j].removed) {
        snprintf(s->error, sizeof s->error, "timed out");
    } else if (!w->nodes[j].agent.alive) {
        snprintf(s->error, sizeof s->error, "connection refused");
        cost = 1;
    } else if (w->nodes[j].frozen || w->nodes[j].agent_frozen || !sim_link(w, i, (unsigned)j)) {
        snprintf(s->error, sizeof s->error, "timed out");
    } else {
        report_of(w, (unsigned)j, s);
        s->reachable = true;
        s->error[0] = '\0';
        cost = w->nodes[i].latency + w->nodes[j].latency + 1;
    }
    return cost;
}

/* peers.c ask: the shared bookkeeping (src/peer_book.c) decides; the request's end is an
 * EV_POLL_STEP naming its call. */
static void poll_ask(struct sim_world *w, unsigned i, const struct peer_status *target, bool again)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct peer_call *c = peer_book_ask(&a->book, target, again, sim_local_now(w, i));
    if (c == NULL) {
        return;
    }
    rpg_msec cost = poll_request(w, i, &c->status);
    sim_push(w, sim_now(w) + cost, EV_POLL_STEP, (int)i, a->gen, (uint64_t)(c - a->book.calls));
}

/* peers.c ask_all. */
static void poll_all(struct sim_world *w, unsigned i, bool again)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct peer_status t[PEERS_MAX];
    unsigned n = a->book.n_targets;
    memcpy(t, a->book.targets, n * sizeof t[0]);
    for (unsigned k = 0; k < n; k++) {
        poll_ask(w, i, &t[k], again);
    }
}

static void switchover_event(struct sim_world *w, unsigned i, enum switchover_event_kind kind,
                             bool ok, const char *msg);

/* peers.c on_answer, then agent.c on_peers_round. */
static void poll_answer(struct sim_world *w, unsigned i, uint64_t call)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (call >= sizeof a->book.calls / sizeof a->book.calls[0] || !a->book.calls[call].busy) {
        return;
    }
    struct peer_status next;
    if (peer_book_answer(&a->book, &a->book.calls[call], sim_local_now(w, i), &next)) {
        poll_ask(w, i, &next, false);
    }
    update_peer_targets(w, i);
    /* switchover.c switchover_on_report: a candidate catching up is looked at at once. */
    if (a->so.phase == SWITCHOVER_CATCHUP) {
        switchover_event(w, i, SWITCHOVER_EV_REPORT, true, NULL);
    }
}

/* peers.c peers_poll_now: every peer now (one being asked: again at its answer), then the
 * interval timer starts over. */
static void poll_now(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    poll_all(w, i, true);
    a->poll_gen++;
    sim_push(w, sim_now(w) + SIM_POLL_MS, EV_POLL, (int)i, a->gen, a->poll_gen);
}

/* ---- the observer (src/pg.c observe) ------------------------------------------------------- */

static void set_not_running(struct sim_agent *a, enum ha_pg_state state)
{
    a->promote_pending = false;
    a->receiver_since = 0;
    ha_pg_set_not_running(&a->obs, state, &a->not_streaming_since);
    a->n_replicas = 0;
}

static void observe(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    const struct sim_pg *p = &n->pg;
    struct ha_pg *o = &a->obs;
    if (!p->data) {
        set_not_running(a, HA_PG_ABSENT);
        o->system_id = 0;
        o->timeline = 0;
        o->was_primary = false;
    } else if (p->proc == SIM_PROC_DOWN) {
        set_not_running(a, HA_PG_STOPPED);
        /* pg.c on_controldata: a control file that cannot be read shows no checkpoint. */
        a->ctl_valid = true;
        a->ctl_clean = !p->broken && p->shut_down;
        /* pg_control always names a checkpoint (initdb writes the first): 1 stands for one
         * before any the simulation tracks. */
        a->ctl_lsn = p->broken ? 0 : p->ckpt_lsn != 0 ? p->ckpt_lsn : 1;
        if (p->broken) {
            /* pg_controldata fails: pg.c keeps the last timeline and clears the identifier. */
            o->system_id = 0;
        } else {
            o->system_id = p->system_id;
            o->timeline = sim_pg_stopped_tl(p);
            o->was_primary = p->was_primary;
        }
    } else if (p->proc != SIM_PROC_RUNNING) {
        /* Up but refusing connections (starting, shutting down). */
        o->state = HA_PG_STARTING;
        a->ctl_valid = false;
    } else {
        rpg_msec now = sim_local_now(w, i);
        a->ctl_valid = false;
        o->state = HA_PG_RUNNING;
        o->in_recovery = p->in_recovery;
        if (!o->in_recovery) {
            a->promote_pending = false;
        }
        o->promoting = a->promote_pending;
        o->system_id = p->system_id;
        o->timeline = sim_pg_tl(p);
        o->wal_position = p->end;
        o->streaming = p->in_recovery && p->streaming;
        o->checkpoint_timeline = p->ckpt_tl;
        ha_pg_track_streaming(o, &a->not_streaming_since, now);
        /* pg_stat_wal_receiver: its sender, as the address of the node it streams from. */
        char receiver[FSM_ADDR_MAX] = "";
        if (p->in_recovery && p->streaming && p->streaming_from >= 0) {
            snprintf(receiver, sizeof receiver, "10.0.0.%d:5432", p->streaming_from + 1);
        }
        ha_pg_track_receiver(o, receiver, &a->receiver_since, now);
        /* current_setting('primary_conninfo'): the upstream the last start or reload read. */
        int cu = p->in_recovery ? sim_node_by_name(w, p->conf_upstream) : -1;
        if (cu >= 0) {
            snprintf(o->conninfo, sizeof o->conninfo, "10.0.0.%d:5432", cu + 1);
        } else {
            o->conninfo[0] = '\0';
        }
        o->was_primary = !o->in_recovery;
        o->n_slots = 0;
        for (unsigned s = 0; s < p->n_slots && o->n_slots < HA_SLOTS_MAX; s++) {
            ha_slot_name(p->slots[s], o->slots[o->n_slots++], FSM_NAME_MAX);
        }
        /* current_setting('synchronous_standby_names'), and pg_stat_replication on a primary. */
        sim_copy(a->sync_seen, sizeof a->sync_seen, p->sync_names);
        a->n_replicas = 0;
        for (unsigned j = 0; j < w->n && !o->in_recovery; j++) {
            const struct sim_pg *s = &w->nodes[j].pg;
            if (j != i && s->proc == SIM_PROC_RUNNING && s->streaming &&
                s->streaming_from == (int)i && a->n_replicas < FSM_MEMBERS_MAX) {
                struct quorum_replica *r = &a->replicas[a->n_replicas++];
                sim_copy(r->name, sizeof r->name, w->nodes[j].name);
                r->streaming = true;
                r->flush_position = s->end;
            }
        }
    }
    a->obs_valid = true;
    a->obs_epoch = a->epoch;
}

/* ---- Raft: raft/cons.c itself, on this node's fixture server ----------------------------------
 */

static struct cons *cons_of(struct sim_world *w, unsigned i)
{
    return &w->nodes[i].cons;
}

/* The simulation's nodes each run their own monotonic clock over the fixture's time. */
static rpg_msec cons_now(struct cons *c)
{
    struct sim_agent *a = c->host.data;
    return sim_local_now(a->w, a->idx);
}

static rpg_msec cons_raft_time(struct cons *c, raft_time t)
{
    struct sim_agent *a = c->host.data;
    return sim_local_at(a->w, a->idx, (rpg_msec)t);
}

/* agent.c on_raft_change. */
static void on_raft_change(struct cons *c, void *data)
{
    struct sim_agent *a = data;
    struct sim_world *w = a->w;
    unsigned i = a->idx;
    if ((int)c->role != a->traced_role) {
        sim_trace(w, (int)i, "raft role %s -> %s (term=%" PRIu64 ")", role_name(a->traced_role),
                  role_name((int)c->role), (uint64_t)c->term);
        a->traced_role = (int)c->role;
    }
    if (c->leader_ready != a->traced_ready) {
        if (c->leader_ready) {
            sim_trace(w, (int)i, "leader ready: own-term barrier committed (term=%" PRIu64 ")",
                      (uint64_t)c->term);
        }
        a->traced_ready = c->leader_ready;
    }
    update_peer_targets(w, i);
    /* A new leader chooses the next primary from reports asked for after it became leader. */
    if (c->role == CONS_ROLE_LEADER && c->leader_ready) {
        poll_now(w, i);
    }
    sim_agent_schedule(w, i, 0);
}

/* agent.c pick_voter: lead_pick_voter over the peers' last reports. */
static uint64_t pick_voter(struct cons *c, void *data)
{
    struct sim_agent *a = data;
    return lead_pick_voter(c, a->book.results, a->book.n_results);
}

/* What the agent's conf gives cons_start (cons_uv.c params_of), with the fixture's ids and
 * addresses: node j is fixture server fx, Raft id fx + 1. */
static void member_of(const struct sim_world *w, unsigned j, struct fsm_member *m)
{
    struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, w->nodes[j].fx);
    memset(m, 0, sizeof *m);
    m->id = w->nodes[j].fx + 1;
    sim_copy(m->name, sizeof m->name, w->nodes[j].name);
    sim_copy(m->raft_address, sizeof m->raft_address, r->address);
    snprintf(m->api_address, sizeof m->api_address, "10.0.0.%u:8008", j + 1);
    m->failover_priority = 1;
}

static void attach_cons(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct cons_params p;
    memset(&p, 0, sizeof p);
    sim_copy(p.scope, sizeof p.scope, "sim");
    p.election_timeout_ms = SIM_ELECTION_TIMEOUT_MS;
    for (unsigned j = 0; j < w->n_initial; j++) {
        member_of(w, j, &p.initial[j]);
    }
    p.n_initial = w->n_initial;
    p.initial_self = i < w->n_initial;
    p.sync_mode = (uint8_t)w->opt->sync_mode;
    p.sync_node_count = w->opt->sync_k;
    p.sync_commit = FSM_SYNC_COMMIT_ON;
    struct cons_host host = {
        .now = cons_now,
        .raft_time = cons_raft_time,
        .pick_voter = pick_voter,
        .on_change = on_raft_change,
        .data = a,
    };
    cons_attach(cons_of(w, i), raft_of(w, i), w->nodes[i].fx + 1, &p, &host);
}

/* Raft runs on the node: the agent started it and the fixture server is not killed (a frozen or
 * downed node's server is). */
static bool raft_up(struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    return n->agent.alive && !n->raft_killed && !w->closing;
}

static void raft_reopened(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    attach_cons(w, i);
    sim_trace(w, (int)i,
              "raft reopened from its directory (restart %u; configuration writes held "
              "unwritten so far: %u)",
              w->nodes[i].cons.wal.n_restarts, w->nodes[i].cons.wal.n_held_total);
    /* cons_uv.c reopen_raft: Raft starts once the failure is an election timeout old. */
    sim_push(w, sim_now(w) + (w->opt->no_lease ? 0 : cons_restart_start_delay(&w->nodes[i].cons)),
             EV_RAFT_START, (int)i, a->gen, 0);
}

static void echo_settle(struct sim_world *w, unsigned k);

void sim_raft_monitor(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (n->raft_reload && sim_raft_reload_maybe(w, i)) {
        return;
    }
    if (n->raft_restarting && n->agent.alive && sim_raft_reopen_maybe(w, i)) {
        raft_reopened(w, i);
        return;
    }
    if (raft_up(w, i)) {
        cons_observe(cons_of(w, i));
        for (unsigned k = 0; k < sizeof w->echo / sizeof w->echo[0]; k++) {
            if (w->echo[k].used && w->echo[k].to == i) {
                echo_settle(w, k);
            }
        }
    }
}

/* cons_uv.c restart_raft: the write fence asked for a restart from the directory. */
void sim_raft_restart(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (n->raft_restarting) {
        return;
    }
    sim_trace(w, (int)i, "raft restarts from its directory: %s", n->cons.wal.why);
    n->raft_restarting = true;
    n->cons.running = false; /* cons_uv.c stops its handles */
    sim_raft_kill(w, i);
    if (sim_raft_reopen_maybe(w, i)) {
        raft_reopened(w, i);
    }
}

void sim_raft_started(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (n->raft_reload && !sim_raft_reload_maybe(w, i) && n->raft_reload) {
        /* The old server's requests still run: load the directory once they end. */
        sim_push(w, sim_now(w) + 10, EV_RAFT_START, (int)i, n->agent.gen, 0);
        return;
    }
    cons_set_running(cons_of(w, i));
    sim_raft_revive(w, i);
    n->agent.recv_mark = raft_fixture_n_recv(&w->fx, n->fx, RAFT_IO_APPEND_ENTRIES);
    sim_trace(w, (int)i, "raft started");
    sim_raft_monitor(w, i);
}

/* A held probe answered when its receiver's state says so (lease_echo.c settle); a yes reaches
 * the sender over a working link while its agent and Raft still run. */
static void echo_settle(struct sim_world *w, unsigned k)
{
    struct sim_echo *e = &w->echo[k];
    if (!raft_up(w, e->to) || !raft_up(w, e->from) || w->nodes[e->from].agent.gen != e->gen ||
        sim_local_now(w, e->from) >= e->expires) {
        e->used = false;
        return;
    }
    struct fence_timing t;
    fence_timing_init(&t, SIM_ELECTION_TIMEOUT_MS);
    enum fence_echo ans = cons_echo_answer(cons_of(w, e->to), w->nodes[e->from].fx + 1, e->term,
                                           e->arrived, t.echo_wait_ms);
    if (ans == FENCE_ECHO_WAIT) {
        return;
    }
    e->used = false;
    if (ans == FENCE_ECHO_YES && sim_link(w, e->from, e->to)) {
        cons_echo_yes(cons_of(w, e->from), w->nodes[e->to].fx + 1, e->seq);
    }
}

static void echo_send(struct sim_world *w, unsigned i)
{
    uint64_t seq;
    raft_term term;
    if (w->opt->no_echo || w->opt->no_lease || !cons_echo_begin(cons_of(w, i), &seq, &term)) {
        return;
    }
    struct fence_timing t;
    fence_timing_init(&t, SIM_ELECTION_TIMEOUT_MS);
    for (unsigned j = 0; j < w->n; j++) {
        if (j == i || !w->nodes[j].exists || !raft_up(w, j) || !sim_link(w, i, j)) {
            continue;
        }
        for (unsigned k = 0; k < sizeof w->echo / sizeof w->echo[0]; k++) {
            if (!w->echo[k].used) {
                w->echo[k] = (struct sim_echo){
                    .used = true,
                    .from = i,
                    .to = j,
                    .gen = w->nodes[i].agent.gen,
                    .seq = seq,
                    .term = term,
                    .arrived = cons_echo_clock(cons_of(w, j)),
                    .expires = sim_local_now(w, i) + t.echo_wait_ms + t.renew_ms,
                };
                echo_settle(w, k);
                break;
            }
        }
    }
}

void sim_lease_renew(struct sim_world *w, unsigned i)
{
    if (raft_up(w, i)) {
        cons_lease_renew(cons_of(w, i));
        echo_send(w, i);
    }
    for (unsigned k = 0; k < sizeof w->echo / sizeof w->echo[0]; k++) {
        if (w->echo[k].used) {
            echo_settle(w, k);
        }
    }
}

void sim_lease_renew_now(struct sim_world *w, unsigned i)
{
    if (raft_up(w, i)) {
        cons_lease_renew_now(cons_of(w, i));
    }
}

static bool state_current(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!raft_up(w, i) || !n->cons.running) {
        return false;
    }
    /* A restarted agent knows no leader until it hears from one, or leads with its own barrier
     * committed: raft_fixture revives a server with the volatile state it had (even as a leader
     * of an old term), where a real restart reloads from disk and knows nobody. */
    if (!n->cons.leader_ready &&
        raft_fixture_n_recv(&w->fx, n->fx, RAFT_IO_APPEND_ENTRIES) <= n->agent.recv_mark) {
        return false;
    }
    return cons_state_current(&n->cons);
}

/* agent.c on_submit_done: the core's action completes. */
static void action_done(void *data, int rc, const char *msg)
{
    struct sim_agent *a = data;
    struct sim_world *w = a->w;
    unsigned i = a->idx;
    sim_trace(w, (int)i, "%s %s%s%s",
              a->core.quorum_running ? "quorum" : ha_action_name(a->core.running),
              rc == 0 ? "done" : "failed", rc == 0 ? "" : ": ", msg);
    a->in_action_done = true;
    core_action_done(&a->core, rc, msg, sim_local_now(w, i));
    a->in_action_done = false;
    sim_agent_schedule(w, i, 0);
}

static int submit(struct sim_world *w, unsigned i, const struct fsm_cmd *cmd, cons_submit_cb cb,
                  void *data, char *errmsg)
{
    if (!raft_up(w, i)) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the ready raft leader");
    }
    return cons_submit(cons_of(w, i), cmd, cb, data, errmsg);
}

/* api_config.c PATCH /config {"pause": ...}: the leader submits the replicated pause. */
int sim_set_pause(struct sim_world *w, unsigned leader, bool paused, char *errmsg)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SET_PAUSE;
    cmd.u.set_pause.paused = paused;
    return submit(w, leader, &cmd, NULL, NULL, errmsg);
}

int sim_transfer(struct sim_world *w, unsigned i, uint64_t id, char *errmsg)
{
    if (!raft_up(w, i)) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the raft leader");
    }
    return cons_transfer(cons_of(w, i), id, errmsg);
}

int sim_failover_request(struct sim_world *w, unsigned l, const char *candidate, int fault,
                         struct failover_plan *plan, char *errmsg)
{
    struct sim_node *n = &w->nodes[l];
    struct sim_agent *a = &n->agent;
    memset(plan, 0, sizeof *plan);
    /* api_action.c require_leader */
    if (!sim_agent_leader(w, l) || !raft_up(w, l)) {
        (void)rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the raft leader");
        return 503;
    }
    /* failover_start: every member runs untagged, priority 1 (core_init in sim_agent_start). */
    struct failover_input in = {
        .state = &n->cons.state,
        .self = n->name,
        .candidate = candidate,
        .pg_observed = a->obs_valid,
        .pg = &a->obs,
        .promotable = !n->cons.storage.failed && !n->cons.diverged,
        .book = &a->book,
        .now = sim_local_now(w, l),
        .sync_mode = (int)w->opt->sync_mode,
        .sync_node_count = w->opt->sync_k,
        .sync_commit = FSM_SYNC_COMMIT_ON,
        .max_lag_set = false,
        .max_lag = 0,
        .primary_wal = a->core.lag_wal,
        .switchover_to = a->so.to,
        .switchover_phase = a->so.phase != SWITCHOVER_IDLE ? switchover_phase_name(a->so.phase)
                                                           : NULL,
    };
    failover_decide(&in, plan);
    if (plan->verdict == FAILOVER_SWITCHOVER) {
        /* failover.c failover_start: switchover_start(a, conn, NULL, candidate). */
        int status = sim_switchover_request(w, l, NULL, candidate, fault, errmsg, RPG_ERRMSG_SIZE);
        return status == 0 ? 200 : status;
    }
    if (plan->verdict == FAILOVER_REFUSED) {
        return failover_refusal_status(plan->reason);
    }
    failover_permit_grant(&a->permit, &plan->permit);
    if (plan->transfer_to != 0 && sim_transfer(w, l, plan->transfer_to, errmsg) != 0) {
        /* Refused: no permit stays behind for a later leadership of the candidate. */
        failover_permit_grant(&a->permit, NULL);
        return 503;
    }
    return 202;
}

int sim_member_add(struct sim_world *w, unsigned leader, unsigned newcomer, char *errmsg)
{
    struct fsm_member m;
    member_of(w, newcomer, &m);
    struct fsm_cmd cmd;
    int rv = cons_member_add_cmd(cons_of(w, leader), m.name, m.raft_address, m.api_address, &cmd,
                                 errmsg);
    if (rv != 0) {
        return rv;
    }
    /* raft_fixture numbers its servers itself; the id is the one it gave the newcomer. */
    cmd.u.member_add.id = m.id;
    return submit(w, leader, &cmd, NULL, NULL, errmsg);
}

/* api_action.c in_sync_sets. */
static bool in_sync_sets(const struct sim_world *w, unsigned leader, const char *name)
{
    return sync_member_in_sets(&w->nodes[leader].cons.state, w->nodes[leader].agent.sync_seen,
                               name);
}

int sim_member_remove_request(struct sim_world *w, unsigned leader, const char *name, char *errmsg)
{
    struct sim_agent *a = &w->nodes[leader].agent;
    const char *switchover_to = a->so.phase != SWITCHOVER_IDLE ? a->so.to : NULL;
    switch (sync_remove_start(a->removing, name, in_sync_sets(w, leader, name), switchover_to)) {
    case SYNC_REMOVE_NOW: return sim_member_remove(w, leader, name, errmsg);
    case SYNC_REMOVE_SWITCHOVER:
        return rpg_err(errmsg, RPG_EBUSY, "a switchover to %s is under way", name);
    case SYNC_REMOVE_BUSY:
    case SYNC_REMOVE_ALREADY:
        return rpg_err(errmsg, RPG_EBUSY, "member %s is being removed: one removal at a time",
                       a->removing);
    case SYNC_REMOVE_LEAVE_FIRST: break;
    }
    sim_copy(a->removing, sizeof a->removing, name);
    a->remove_ticks = 0;
    sim_push(w, sim_now(w) + SYNC_LEAVE_TICK_MS, EV_REMOVE_TICK, (int)leader, a->gen, 0);
    sim_trace(w, (int)leader, "member remove requested: %s leaves the synchronous set first", name);
    return 0;
}

/* api_action.c pending_remove_tick. */
void sim_remove_tick(struct sim_world *w, unsigned leader)
{
    struct sim_agent *a = &w->nodes[leader].agent;
    char errmsg[RPG_ERRMSG_SIZE];
    enum sync_leave step = sync_leave_tick(sim_agent_leader(w, leader),
                                           in_sync_sets(w, leader, a->removing), &a->remove_ticks);
    switch (step) {
    case SYNC_LEAVE_NOT_LEADER:
        sim_trace(w, (int)leader, "member remove: leadership changed");
        break;
    case SYNC_LEAVE_REMOVE:
        if (sim_member_remove(w, leader, a->removing, errmsg) != 0) {
            sim_trace(w, (int)leader, "member remove: %s", errmsg);
        }
        break;
    case SYNC_LEAVE_TIMEOUT:
        sim_trace(w, (int)leader, "member remove: still in the synchronous set");
        break;
    case SYNC_LEAVE_WAIT: break;
    }
    if (step != SYNC_LEAVE_WAIT) {
        a->removing[0] = '\0';
    } else {
        sim_push(w, sim_now(w) + SYNC_LEAVE_TICK_MS, EV_REMOVE_TICK, (int)leader, a->gen, 0);
    }
}

int sim_member_remove(struct sim_world *w, unsigned leader, const char *name, char *errmsg)
{
    if (!raft_up(w, leader)) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the ready raft leader");
    }
    return cons_member_remove(cons_of(w, leader), name, NULL, NULL, errmsg);
}

/* ---- PostgreSQL control operations (src/pg.c, as the sim's PostgreSQL runs them) ------------ */

static struct sim_op *op_find(struct sim_node *n, uint64_t id)
{
    for (unsigned k = 0; k < SIM_OPS_MAX; k++) {
        if (n->ops[k].id == id && id != 0) {
            return &n->ops[k];
        }
    }
    return NULL;
}

/* The member target names, as a running PostgreSQL the agent can reach. */
static int target_node(struct sim_world *w, unsigned i, const char *target)
{
    int t = sim_node_by_name(w, target);
    if (t < 0) {
        return -1;
    }
    const struct sim_node *n = &w->nodes[t];
    if (!n->up || sim_pg_halted(n) || !sim_link(w, i, (unsigned)t) ||
        n->pg.proc != SIM_PROC_RUNNING) {
        return -1;
    }
    return t;
}

static void op_schedule(struct sim_world *w, unsigned i, struct sim_op *op, rpg_msec dur)
{
    sim_push(w, sim_now(w) + dur, EV_OP_STEP, (int)i, op->id, op->step);
}

static unsigned dur(struct sim_world *w, unsigned lo, unsigned hi)
{
    return sim_rng_range(&w->rng, lo, hi);
}

/* pg.c write_config, the part the simulation keeps: the synchronous settings this agent holds
 * go into raftpg.conf with every start, follow and set_sync. */
static void write_config(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    sim_copy(n->pg.conf_sync_names, sizeof n->pg.conf_sync_names, n->agent.sync_names);
    sim_copy(n->pg.conf_sync_commit, sizeof n->pg.conf_sync_commit, n->agent.sync_commit);
}

/* pg_ctl reload: the server takes on what raftpg.conf says now. */
static void reload(struct sim_pg *p)
{
    sim_copy(p->sync_names, sizeof p->sync_names, p->conf_sync_names);
    sim_copy(p->sync_commit, sizeof p->sync_commit, p->conf_sync_commit);
}

/* Starts the step op->step: the program or statement begins now. */
static void op_begin_step(struct sim_world *w, unsigned i, struct sim_op *op)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_pg *p = &n->pg;
    switch (op->step) {
    case ST_INITDB: op_schedule(w, i, op, dur(w, 300, 800)); return;
    case ST_START: {
        if (!p->data || p->broken || p->proc != SIM_PROC_DOWN) {
            op_schedule(w, i, op, dur(w, 20, 60));
            return;
        }
        if (sim_now(w) < p->no_start_until) {
            /* The postmaster reads its settings and exits: pg_ctl -w sees it gone. */
            op->no_start = true;
            op_schedule(w, i, op, dur(w, 50, 200));
            return;
        }
        /* write_config: the upstream mark, standby.signal, primary_slot_name. */
        int t = op->standby && op->target[0] ? sim_node_by_name(w, op->target) : -1;
        sim_copy(p->conf_upstream, sizeof p->conf_upstream, t >= 0 ? op->target : "");
        p->standby_signal = op->standby;
        p->slot_id = t >= 0 ? op->slot_id : 0;
        write_config(w, i);
        rpg_msec up = dur(w, 100, 500);
        sim_pg_begin_start(w, i, op->standby, up);
        op->pg_inc = p->inc;
        /* pg_ctl -w looks every 100 ms (DESIGN.md §9). */
        op_schedule(w, i, op, up + dur(w, 1, 100));
        return;
    }
    case ST_ROLES: op_schedule(w, i, op, dur(w, 5, 20)); return;
    case ST_STOP: {
        if (p->proc == SIM_PROC_DOWN) {
            op_schedule(w, i, op, dur(w, 5, 20));
            return;
        }
        /* Fast shutdown: sessions are dropped at once, nothing more is written. */
        rpg_msec d = dur(w, 30, 300);
        sim_pg_begin_shutdown(w, i, d);
        op->pg_inc = p->inc;
        op_schedule(w, i, op, d + dur(w, 1, 100));
        return;
    }
    case ST_PROMOTE: op_schedule(w, i, op, dur(w, 5, 15)); return;
    case ST_CHECKPOINT: op_schedule(w, i, op, dur(w, 20, 200)); return;
    case ST_REMOVE: op_schedule(w, i, op, dur(w, 20, 100)); return;
    case ST_BASEBACKUP: {
        int t = target_node(w, i, op->target);
        if (p->data || t < 0) {
            op_schedule(w, i, op, t < 0 ? dur(w, 5, 50) : dur(w, 5, 20));
            return;
        }
        /* pg_basebackup fills the directory as it goes; the control file comes last. */
        p->data = true;
        p->broken = true;
        op_schedule(w, i, op, dur(w, 400, 2500));
        return;
    }
    case ST_REWIND: op_schedule(w, i, op, dur(w, 200, 1500)); return;
    case ST_FOLLOW:
        if (p->proc == SIM_PROC_RUNNING) {
            write_config(w, i);
        }
        op_schedule(w, i, op, dur(w, 20, 60));
        return;
    case ST_SET_SYNC: {
        if (p->proc == SIM_PROC_DOWN) {
            /* Not running: the next start writes it. */
            op_schedule(w, i, op, dur(w, 1, 5));
            return;
        }
        write_config(w, i);
        op_schedule(w, i, op, dur(w, 10, 40));
        return;
    }
    case ST_SLOTS: op_schedule(w, i, op, dur(w, 10, 50)); return;
    }
}

static void op_next(struct sim_world *w, unsigned i, struct sim_op *op, enum sim_step step)
{
    op->step = step;
    op_begin_step(w, i, op);
}

/* The step that just ended: its effect on PostgreSQL, then 0 or a failure with msg. *next says
 * which step follows (or stays op->step when the operation is complete). */
static int op_end_step(struct sim_world *w, unsigned i, struct sim_op *op, enum sim_step *next,
                       char *msg, size_t size)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_pg *p = &n->pg;
    *next = op->step;
    switch (op->step) {
    case ST_INITDB:
        if (p->data) {
            snprintf(msg, size, "initdb: directory exists but is not empty");
            return RPG_EIO;
        }
        sim_pg_clear_data(p);
        p->data = true;
        p->system_id = sim_rng_next(&w->rng) | 1;
        sim_pg_push(p, 1, sim_new_uid(w), 0);
        p->end = 0;
        p->ckpt_tl = 1;
        p->hist_tl = 1;
        p->was_primary = true;
        op->standby = false;
        op->target[0] = '\0';
        *next = ST_START;
        return 0;
    case ST_START:
        if (p->proc == SIM_PROC_RUNNING && p->inc == op->pg_inc) {
            if (op->kind == SOP_BOOTSTRAP) {
                *next = ST_ROLES;
            }
            return 0;
        }
        if (!p->data || p->broken) {
            snprintf(msg, size, "pg_ctl start: no usable data directory");
        } else if (op->no_start) {
            snprintf(msg, size,
                     "pg_ctl start: server did not start (FATAL: configuration file contains "
                     "errors)");
        } else if (op->pg_inc == 0 || p->inc != op->pg_inc) {
            snprintf(msg, size, "pg_ctl start: another server might be running, or it exited");
        } else {
            snprintf(msg, size, "pg_ctl start: server did not start");
        }
        return RPG_EIO;
    case ST_ROLES:
        if (p->proc != SIM_PROC_RUNNING) {
            snprintf(msg, size, "create roles: postgresql is not running");
            return RPG_ECONN;
        }
        return 0;
    case ST_STOP:
        /* A server already gone (pg_ctl stop: "Is server running?") is stopped: pg.c asks the
         * process table then, and finds no postmaster and no process in the directory. */
        if (p->proc == SIM_PROC_STOPPING) {
            /* pg_ctl -w looks again a little later. */
            *next = ST_STOP;
            return RPG_EBUSY;
        }
        return 0;
    case ST_PROMOTE:
        if (p->proc != SIM_PROC_RUNNING || !p->in_recovery) {
            snprintf(msg, size, "pg_ctl promote: server is not in standby mode");
            return RPG_EIO;
        }
        if (!p->promote_pending) {
            /* pg.c reserve_timelines, just before pg_ctl promote. */
            if (op->timeline > sim_pg_tl(p) + 1 && op->timeline - 1 > p->reserved_tl) {
                p->reserved_tl = op->timeline - 1;
            }
            p->promote_pending = true;
            /* A standby acts on the request after up to wal_retrieve_retry_interval (50 ms). */
            sim_push(w, sim_now(w) + dur(w, 15, 60), EV_PG_PROMOTED, (int)i, p->inc, 0);
        }
        return 0;
    case ST_CHECKPOINT:
        if (p->proc != SIM_PROC_RUNNING) {
            snprintf(msg, size, "checkpoint: postgresql is not running");
            return RPG_ECONN;
        }
        p->ckpt_tl = sim_pg_tl(p);
        return 0;
    case ST_REMOVE:
        if (p->proc != SIM_PROC_DOWN) {
            sim_pg_crash(w, i);
        }
        sim_pg_clear_data(p);
        *next = ST_BASEBACKUP;
        return 0;
    case ST_BASEBACKUP: {
        int t = target_node(w, i, op->target);
        if (!p->broken) {
            snprintf(msg, size, "pg_basebackup: %s",
                     p->data ? "directory exists but is not empty" : "could not connect");
            return RPG_EIO;
        }
        if (t < 0) {
            sim_pg_clear_data(p); /* pg_basebackup removes what it created */
            snprintf(msg, size, "pg_basebackup: connection to %s lost", op->target);
            return RPG_EIO;
        }
        struct sim_pg *src = &w->nodes[t].pg;
        bool slot = op->slot_id == 0;
        for (unsigned s = 0; s < src->n_slots && !slot; s++) {
            slot = src->slots[s] == op->slot_id;
        }
        if (!slot) {
            sim_pg_clear_data(p);
            snprintf(msg, size,
                     "pg_basebackup: replication slot \"raftpg_%" PRIu64 "\" does not exist",
                     op->slot_id);
            return RPG_EIO;
        }
        if (!src->in_recovery) {
            src->ckpt_tl = sim_pg_tl(src); /* -c fast: the backup starts with a checkpoint */
        }
        sim_pg_copy_data(p, src);
        p->was_primary = !src->in_recovery; /* pg_control is copied as it was */
        p->standby_signal = false;
        p->n_slots = 0;
        n->agent.obs.rewind_failed = false;
        op->standby = true;
        *next = ST_START;
        return 0;
    }
    case ST_REWIND: {
        int t = target_node(w, i, op->target);
        bool changed = false;
        if (!p->data || p->broken || p->proc != SIM_PROC_DOWN) {
            snprintf(msg, size, "pg_rewind: target server must be shut down cleanly");
        } else if (t < 0) {
            snprintf(msg, size, "pg_rewind: could not connect to %s", op->target);
        } else if (sim_rng_chance(&w->rng, 30)) {
            snprintf(msg, size, "pg_rewind: could not fetch file (simulated failure)");
        } else if (sim_pg_rewind(p, &w->nodes[t].pg, &changed, msg, size) == 0) {
            if (changed) {
                p->was_primary = false;
            }
            n->agent.obs.rewind_failed = false;
            op->standby = true;
            *next = ST_START;
            return 0;
        }
        n->agent.obs.rewind_failed = true;
        return RPG_EIO;
    }
    case ST_FOLLOW:
        if (p->proc != SIM_PROC_RUNNING) {
            snprintf(msg, size, "pg_ctl reload: no server running");
            return RPG_EIO;
        }
        sim_copy(p->conf_upstream, sizeof p->conf_upstream, op->target);
        p->slot_id = op->slot_id;
        reload(p);
        if (w->receiver_lag > 0 && p->streaming && p->streaming_from >= 0) {
            /* Replay does not ask for WAL: the receiver goes on with the old upstream. */
            p->stale_receiver = true;
            return 0;
        }
        p->streaming = false; /* the walreceiver restarts with the new primary_conninfo */
        p->streaming_from = -1;
        return 0;
    case ST_SET_SYNC:
        if (p->proc != SIM_PROC_DOWN) {
            reload(p);
        }
        return 0;
    case ST_SLOTS:
        if (p->proc != SIM_PROC_RUNNING) {
            snprintf(msg, size, "replication slots: postgresql is not running");
            return RPG_ECONN;
        }
        p->n_slots = op->n_ids;
        memcpy(p->slots, op->ids, op->n_ids * sizeof op->ids[0]);
        return 0;
    }
    return 0;
}

static void restart_stopped(struct sim_world *w, unsigned i, int rc, const char *msg);

static void op_free(struct sim_node *n, struct sim_op *op)
{
    if (n->agent.op_id == op->id) {
        n->agent.op_id = 0;
    }
    memset(op, 0, sizeof *op);
}

void sim_op_step_done(struct sim_world *w, unsigned i, uint64_t op_id)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    struct sim_op *op = op_find(n, op_id);
    if (op == NULL) {
        return;
    }
    bool owned = a->alive && a->gen == op->owner;
    enum sim_step next;
    char msg[RPG_ERRMSG_SIZE] = "";
    int rc = op_end_step(w, i, op, &next, msg, sizeof msg);
    if (rc == RPG_EBUSY && op->step == ST_STOP) {
        op_schedule(w, i, op, 20);
        return;
    }
    bool starting = op->step == ST_START;
    if (owned && starting) {
        /* pg.c counts failed starts and resets the count on a successful one. */
        if (rc != 0) {
            a->obs.start_failures++;
        } else {
            a->obs.start_failures = 0;
        }
    }
    if (owned && starting && op->standby) {
        sim_copy(a->obs.upstream, sizeof a->obs.upstream, n->pg.conf_upstream);
    } else if (owned && starting) {
        a->obs.upstream[0] = '\0';
    }
    if (owned && op->step == ST_FOLLOW && rc == 0) {
        sim_copy(a->obs.upstream, sizeof a->obs.upstream, op->target);
    }
    if (!owned) {
        /* The program finished after its agent died: nothing follows it. */
        op_free(n, op);
        return;
    }
    if (rc == 0 && next != op->step) {
        op_next(w, i, op, next);
        return;
    }
    if (op->kind == SOP_PROMOTE) {
        a->promote_pending = rc == 0; /* pg.c op_finish: pg_ctl promote -W does not wait */
        a->obs.promoting = a->promote_pending;
    }
    if (op->kind == SOP_FOLLOW || op->kind == SOP_START) {
        a->receiver_since = 0; /* pg.c op_finish: the detach bound counts from the re-point */
    }
    bool restart = op->restart;
    bool switchover = op->switchover;
    op_free(n, op);
    a->epoch++;
    if (restart) {
        restart_stopped(w, i, rc, msg);
        return;
    }
    if (switchover) {
        /* switchover.c on_stopped */
        switchover_event(w, i, SWITCHOVER_EV_STOPPED, rc == 0, rc == 0 ? NULL : msg);
        return;
    }
    sim_trace(w, (int)i, "%s %s%s%s",
              a->core.quorum_running ? "quorum step" : ha_action_name(a->core.running),
              rc == 0 ? "done" : "failed", rc == 0 ? "" : ": ", msg);
    /* A step it starts continues the plan under way (check M), as from a Raft submission's end. */
    a->in_action_done = true;
    core_action_done(&a->core, rc, msg, sim_local_now(w, i));
    a->in_action_done = false;
    sim_agent_schedule(w, i, 0);
}

/* A node crash kills the programs too; a copy cut short leaves a directory that cannot start. */
void sim_ops_kill(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    for (unsigned k = 0; k < SIM_OPS_MAX; k++) {
        struct sim_op *op = &n->ops[k];
        if (op->id == 0) {
            continue;
        }
        if ((op->step == ST_BASEBACKUP && n->pg.broken) ||
            (op->step == ST_REWIND && n->pg.data && n->pg.proc == SIM_PROC_DOWN)) {
            n->pg.data = true;
            n->pg.broken = true;
        }
        op_free(n, op);
    }
}

/* Claims an operation slot like pg.c op_begin (one operation at a time). The caller fills the
 * parameters and calls op_go. */
static const char *const op_kind_names[] = {
    [SOP_NONE] = "nothing",
    [SOP_BOOTSTRAP] = "a bootstrap",
    [SOP_START] = "a start",
    [SOP_STOP] = "a stop",
    [SOP_PROMOTE] = "a promotion",
    [SOP_CHECKPOINT] = "a checkpoint",
    [SOP_CLONE] = "a clone",
    [SOP_REWIND] = "a rewind",
    [SOP_FOLLOW] = "a re-point",
    [SOP_SLOTS] = "slot changes",
    [SOP_SET_SYNC] = "a synchronous-set change",
};

/* How long after the grant (on the candidate's clock) check M lets its takeover through: the
 * permit, plus the report's way to the candidate (a poll takes at most SIM_POLL_TIMEOUT_MS) and
 * clock drift. */
#define PERMIT_CHECK_MS (FAILOVER_PERMIT_MS + SIM_POLL_TIMEOUT_MS + 100)

/* What an agent starts in maintenance mode, as README.md ("Maintenance mode") lets it: a
 * takeover step of the candidate of an operator's failover (record, promote, checkpoint, slots,
 * its synchronous quorum), a re-point to a primary recorded during the pause, anything else. */
enum paused_what { PAUSED_TAKEOVER, PAUSED_FOLLOW, PAUSED_OTHER };

/* Maintenance mode: an agent that applied the pause starts nothing new (a plan under way may
 * finish its steps: they start from core_action_done), but what the operator's failover asks for:
 * the candidate's takeover while its permit runs, the others' re-point to the primary recorded
 * since they applied the pause. */
static void paused_check(struct sim_world *w, unsigned i, enum paused_what kind, const char *target,
                         const char *what)
{
    const struct sim_node *n = &w->nodes[i];
    if (!n->cons.state.initialized || !n->cons.state.paused || n->agent.in_action_done) {
        return;
    }
    if (kind == PAUSED_TAKEOVER && n->permit_granted_local != 0 &&
        sim_local_now(w, i) - n->permit_granted_local <= PERMIT_CHECK_MS) {
        return;
    }
    const char *primary = n->cons.state.primary.name;
    if (kind == PAUSED_FOLLOW && target != NULL && strcmp(target, primary) == 0 && n->pause_seen &&
        strcmp(primary, n->pause_seen_primary) != 0) {
        return;
    }
    sim_violation(w, CHK_PAUSE, "%s started %s in maintenance mode", n->name, what);
}

#define PAUSED_CHECK_IO(data, kind, what)                                                          \
    do {                                                                                           \
        unsigned pi_;                                                                              \
        struct sim_world *pw_ = world_of_agent(data, &pi_);                                        \
        paused_check(pw_, pi_, kind, NULL, what);                                                  \
    } while (0)

/* pg.c op_begin: claims the slot. Operations the agent's decisions start go through op_prepare
 * (check M); an operator's restart comes here directly. */
static struct sim_op *op_claim(struct sim_world *w, unsigned i, enum sim_op_kind kind,
                               enum sim_step step, const char *target, char *errmsg)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    if (a->op_id != 0) {
        (void)rpg_err(errmsg, RPG_EBUSY, "another postgresql operation is running");
        return NULL;
    }
    struct sim_op *op = NULL;
    for (unsigned k = 0; k < SIM_OPS_MAX && op == NULL; k++) {
        op = n->ops[k].id == 0 ? &n->ops[k] : NULL;
    }
    if (op == NULL) {
        (void)rpg_err(errmsg, RPG_EBUSY, "too many postgresql programs running");
        return NULL;
    }
    memset(op, 0, sizeof *op);
    op->id = ++w->next_op;
    op->owner = a->gen;
    op->kind = kind;
    op->step = step;
    sim_copy(op->target, sizeof op->target, target != NULL ? target : "");
    const struct fsm_member *self = fsm_state_member(&n->cons.state, n->name);
    op->slot_id = self != NULL ? self->id : 0;
    return op;
}

static struct sim_op *op_prepare(struct sim_world *w, unsigned i, enum sim_op_kind kind,
                                 enum sim_step step, const char *target, char *errmsg)
{
    /* A primary a switchover stopped in the pause: its start again (with the synchronous
     * settings the synchronous quorum driver writes first), or its rejoin as a standby
     * (switchover_paused_mask), is the operator's switchover still. */
    bool so_allowed =
        w->nodes[i].agent.so_paused_stop &&
        (kind == SOP_START || kind == SOP_REWIND || kind == SOP_SET_SYNC || kind == SOP_SLOTS);
    if (w->nodes[i].agent.op_id == 0 && !so_allowed) {
        paused_check(w, i,
                     kind == SOP_PROMOTE || kind == SOP_CHECKPOINT || kind == SOP_SLOTS ||
                             kind == SOP_SET_SYNC
                         ? PAUSED_TAKEOVER
                     : kind == SOP_FOLLOW ? PAUSED_FOLLOW
                                          : PAUSED_OTHER,
                     target, op_kind_names[kind]);
    }
    return op_claim(w, i, kind, step, target, errmsg);
}

static int op_go(struct sim_world *w, unsigned i, struct sim_op *op)
{
    w->nodes[i].agent.op_id = op->id;
    op_begin_step(w, i, op);
    return 0;
}

static int op_start(struct sim_world *w, unsigned i, enum sim_op_kind kind, enum sim_step step,
                    const char *target, char *errmsg)
{
    struct sim_op *op = op_prepare(w, i, kind, step, target, errmsg);
    return op == NULL ? RPG_EBUSY : op_go(w, i, op);
}

/* ---- POST /restart (src/restart.c) ---------------------------------------------------------- */

/* restart.c end: the answer. */
static void restart_end(struct sim_world *w, unsigned i, int status, const char *msg)
{
    struct sim_agent *a = &w->nodes[i].agent;
    a->restart_phase = RESTART_IDLE;
    a->restart_status = status;
    if (status == 200) {
        w->res->rs_done++;
    } else {
        w->res->rs_failed++;
    }
    sim_trace(w, (int)i, "restart: %d %s", status, msg);
}

/* restart.c stop_now: a fast stop (pg_stop), after which the agent's decisions start it again. */
static void restart_stop_now(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    char errmsg[RPG_ERRMSG_SIZE];
    a->restart_phase = RESTART_STOPPING;
    sim_trace(w, (int)i, "restart: stopping postgresql (%s) to start it again",
              a->obs.in_recovery ? "a standby" : "the primary");
    struct sim_op *op = op_claim(w, i, SOP_STOP, ST_STOP, NULL, errmsg);
    if (op == NULL) {
        restart_end(w, i, 409, "another operation on postgresql is under way");
        return;
    }
    op->restart = true;
    (void)op_go(w, i, op);
}

/* restart.c stopped */
static void restart_stopped(struct sim_world *w, unsigned i, int rc, const char *msg)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (a->restart_phase != RESTART_STOPPING) {
        return;
    }
    if (rc != 0) {
        char why[RPG_ERRMSG_SIZE + 32];
        sim_fmt(why, sizeof why, "the stop failed: %s", msg);
        restart_end(w, i, 503, why);
        return;
    }
    a->restart_phase = RESTART_STARTING;
    a->restart_epoch = a->epoch;
    sim_trace(w, (int)i, "restart: postgresql stopped, starting it again");
    sim_agent_schedule(w, i, 0);
}

/* restart.c tick, every 100 ms (no timeout asked: RESTART_WAIT_MS after the stop's bound). */
static void restart_tick(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    rpg_msec now = sim_local_now(w, i);
    if (a->restart_phase == RESTART_WAITING) {
        if (a->op_id == 0) {
            restart_stop_now(w, i);
        } else if (now - a->restart_started > RESTART_BUSY_MS) {
            restart_end(w, i, 409, "another operation on postgresql is still under way");
        }
        return;
    }
    if (a->restart_phase == RESTART_STARTING && a->epoch > a->restart_epoch &&
        a->obs_epoch == a->epoch && a->obs.state == HA_PG_RUNNING) {
        char msg[96];
        sim_fmt(msg, sizeof msg, "restarted in %" PRIu64 " ms as %s", now - a->restart_started,
                a->obs.in_recovery ? "a standby" : "the primary");
        restart_end(w, i, 200, msg);
    } else if (a->restart_phase == RESTART_STARTING &&
               now - a->restart_started > RESTART_STOP_MS + RESTART_WAIT_MS) {
        restart_end(w, i, 503, "postgresql does not accept connections again yet");
    }
}

int sim_restart_request(struct sim_world *w, unsigned i, const char *role, char *why, size_t size)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    /* agent.c agent_acting: a member whose replicated state diverged takes no action. */
    if (n->cons.diverged) {
        sim_fmt(why, size, "this member takes no action: its replicated state diverged");
        return 503;
    }
    struct restart_check_in in = {
        .running = a->obs_valid && a->obs.state == HA_PG_RUNNING,
        .in_recovery = a->obs.in_recovery,
        .busy = a->restart_phase != RESTART_IDLE,
        .paused = n->cons.state.initialized && n->cons.state.paused,
        .role = role,
    };
    int status = restart_check(&in, why, size);
    if (status != 0) {
        return status;
    }
    a->restart_started = sim_local_now(w, i);
    a->restart_status = 0;
    sim_trace(w, (int)i, "restart requested (%s)", in.in_recovery ? "replica" : "primary");
    if (a->op_id != 0) {
        a->restart_phase = RESTART_WAITING;
        return 0;
    }
    restart_stop_now(w, i);
    return 0;
}

/* ---- POST /switchover (src/switchover.c) ------------------------------------------------------
 */

/* switchover.c view_of. */
static void switchover_view(struct sim_world *w, unsigned i, struct switchover_view *v)
{
    const struct sim_node *n = &w->nodes[i];
    const struct sim_agent *a = &n->agent;
    const struct fsm_state *st = &n->cons.state;
    memset(v, 0, sizeof *v);
    v->now = sim_local_now(w, i);
    v->leading = n->cons.role == CONS_ROLE_LEADER;
    v->leader_ready = n->cons.leader_ready;
    v->lease_ok = a->fm.lease_ok;
    v->self_recorded = strcmp(st->primary.name, n->name) == 0;
    v->pg_running = a->obs.state == HA_PG_RUNNING;
    v->pg_in_recovery = a->obs.in_recovery;
    v->pg_busy = a->op_id != 0;
    v->paused = st->paused;
    v->stopped_seen = a->obs_epoch == a->epoch && a->obs.state == HA_PG_STOPPED && a->ctl_valid;
    v->clean_shutdown = a->ctl_clean;
    v->checkpoint_lsn = a->ctl_lsn;
    switchover_view_candidate(v, st, a->so.to, peer_book_get(&a->book, a->so.to));
    v->hook_timeout_ms = SIM_CALLBACK_TIMEOUT_MS;
    v->transfers_failed = n->cons.n_transfers_failed;
}

/* switchover.c perform: a switchover that ran on_switchover undoes it whatever ended it. */
static void hook_abandoned(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (!a->so_hook_ran) {
        return;
    }
    a->so_hook_ran = false;
    w->res->hook_abandoned++;
    sim_trace(w, (int)i, "callback on_switchover_abandoned primary started");
}

/* switchover.c perform: what the step decided, on the simulated server and Raft. */
static void switchover_perform(struct sim_world *w, unsigned i, const struct switchover_action *x)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    if (x->phase_changed) {
        sim_trace(w, (int)i, "switchover %s -> %s: %s", a->so.from, a->so.to,
                  switchover_phase_name(a->so.phase));
    }
    if (x->final_noted) {
        sim_trace(w, (int)i,
                  "switchover %s -> %s: final checkpoint at %" PRIu64
                  ", waiting for %s to report it",
                  a->so.from, a->so.to, a->so.final_lsn, a->so.to);
    }
    char errmsg[RPG_ERRMSG_SIZE];
    switch (x->kind) {
    case SWITCHOVER_ACT_NONE: return;
    case SWITCHOVER_ACT_POLL: poll_now(w, i); return;
    case SWITCHOVER_ACT_STOP: {
        a->so_paused_stop = n->cons.state.initialized && n->cons.state.paused;
        /* pg_stop, asked by the operator: not one of the decisions check M watches. */
        struct sim_op *op = op_claim(w, i, SOP_STOP, ST_STOP, NULL, errmsg);
        if (op == NULL) {
            switchover_event(w, i, SWITCHOVER_EV_STOPPED, false,
                             "another operation on postgresql is under way");
            return;
        }
        op->switchover = true;
        (void)op_go(w, i, op);
        return;
    }
    case SWITCHOVER_ACT_TRANSFER: {
        if (!x->phase_changed) {
            sim_trace(w, (int)i,
                      "switchover %s -> %s: raft gave the hand-over up, handing over again",
                      a->so.from, a->so.to);
        }
        struct failover_permit before = a->permit;
        if (x->grant) {
            failover_permit_grant(&a->permit, &x->permit);
            int c = sim_node_by_name(w, a->so.to);
            if (c >= 0) {
                w->nodes[c].permit_granted_local = sim_local_now(w, (unsigned)c);
            }
        }
        if (sim_transfer(w, i, a->so.to_id, errmsg) != 0) {
            failover_permit_grant(&a->permit, &before);
            switchover_event(w, i, SWITCHOVER_EV_TRANSFER_FAILED, false, errmsg);
        }
        return;
    }
    case SWITCHOVER_ACT_GIVE_UP:
        sim_trace(w, (int)i, "switchover %s -> %s abandoned %s: %s", a->so.from, a->so.to,
                  switchover_phase_name(x->was), x->msg);
        hook_abandoned(w, i);
        sim_switchover_ended(w, i, a->so_fault, x);
        return;
    case SWITCHOVER_ACT_DONE:
    case SWITCHOVER_ACT_MOVED:
        /* Not abandoned: whoever runs as primary next fires on_start or on_role_change. */
        a->so_hook_ran = false;
        sim_trace(w, (int)i, "switchover: %d %s", x->status, x->msg);
        sim_switchover_ended(w, i, a->so_fault, x);
        return;
    }
}

/* switchover.c step: one step of the shared decisions, carried out. */
static void switchover_event(struct sim_world *w, unsigned i, enum switchover_event_kind kind,
                             bool ok, const char *msg)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct switchover_view v;
    switchover_view(w, i, &v);
    struct switchover_event e = {.kind = kind, .ok = ok, .msg = msg};
    struct switchover_action x;
    switchover_step(&a->so, &v, &e, &x);
    switchover_perform(w, i, &x);
}

/* How an on_switchover run ends (EV_HOOK_DONE's outcome). */
enum hook_outcome { HOOK_OK = 0, HOOK_FAILS, HOOK_KILLED, HOOK_HANGS };

/* switchover.c begin: callbacks_fire_wait(on_switchover), with a simulated command whose time
 * and outcome are drawn from rng: it succeeds or fails within 3 s, runs into its time-out and is
 * killed (a failure), or hangs past the switchover's backstop (a process in uninterruptible
 * sleep ignores the kill) and keeps the wait, so that the next switchover finds it busy. The
 * outcome the switchover must then have goes to so_expect (check W). */
static void hook_begin(struct sim_world *w, unsigned l, struct sim_rng *rng)
{
    struct sim_agent *a = &w->nodes[l].agent;
    a->so_hook_ran = true;
    if (!w->opt->hook) {
        a->so_hook_ran = false; /* none configured */
        a->so_expect = SWITCHOVER_REASON_NONE;
        switchover_event(w, l, SWITCHOVER_EV_HOOK_NONE, true, NULL);
        return;
    }
    if (a->hook_wait) {
        a->so_hook_ran = false;
        a->so_expect = SWITCHOVER_REASON_HOOK_BUSY;
        switchover_event(w, l, SWITCHOVER_EV_HOOK_BUSY, false, NULL);
        return;
    }
    unsigned r = sim_rng_below(rng, 100);
    enum hook_outcome o = r < 70   ? HOOK_OK
                          : r < 85 ? HOOK_FAILS
                          : r < 95 ? HOOK_KILLED
                                   : HOOK_HANGS;
    rpg_msec dur = o == HOOK_KILLED  ? SIM_CALLBACK_TIMEOUT_MS
                   : o == HOOK_HANGS ? SIM_CALLBACK_TIMEOUT_MS + SWITCHOVER_HOOK_BACKSTOP_MS +
                                           sim_rng_range(rng, 1000, 20000)
                                     : sim_rng_range(rng, 5, 3000);
    static const enum switchover_reason expect[] = {
        [HOOK_OK] = SWITCHOVER_REASON_NONE,
        [HOOK_FAILS] = SWITCHOVER_REASON_HOOK_FAILED,
        [HOOK_KILLED] = SWITCHOVER_REASON_HOOK_FAILED,
        [HOOK_HANGS] = SWITCHOVER_REASON_HOOK_TIMEOUT,
    };
    static const char *const outcome_names[] = {"succeeds", "fails", "runs into its time-out",
                                                "hangs"};
    a->so_expect = expect[o];
    a->hook_wait = true;
    a->hook_run++;
    sim_push(w, sim_now(w) + dur, EV_HOOK_DONE, (int)l, a->gen, a->hook_run << 2 | (unsigned)o);
    sim_trace(w, (int)l, "callback on_switchover primary started (it %s after %" PRIu64 " ms)",
              outcome_names[o], dur);
    if (a->so.phase == SWITCHOVER_HOOK) {
        sim_trace(w, (int)l, "switchover %s -> %s: %s", a->so.from, a->so.to,
                  switchover_phase_name(SWITCHOVER_HOOK));
    }
}

/* callback.c done, wait_end: the waited run ended; switchover.c on_hook_done steps with it
 * (nothing, once the switchover it was started for is over). */
static void hook_done(struct sim_world *w, unsigned i, uint64_t sub)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (!a->hook_wait || sub >> 2 != a->hook_run) {
        return;
    }
    a->hook_wait = false;
    enum hook_outcome o = (enum hook_outcome)(sub & 3);
    struct sim_result *res = w->res;
    static const char *const what[] = {"", "exited with status 1", "timed out: killed",
                                       "killed by signal 9"};
    res->hook_ok += o == HOOK_OK;
    res->hook_failed += o == HOOK_FAILS;
    res->hook_killed += o == HOOK_KILLED;
    res->hook_hung += o == HOOK_HANGS;
    sim_trace(w, (int)i, "callback on_switchover primary %s%s",
              o == HOOK_OK ? "done" : "failed: ", what[o]);
    switchover_event(w, i, SWITCHOVER_EV_HOOK_DONE, o == HOOK_OK, o == HOOK_OK ? NULL : what[o]);
}

static int switchover_request(struct sim_world *w, unsigned l, const char *leader,
                              const char *candidate, bool scheduled, int fault, char *why,
                              size_t size);

int sim_switchover_request(struct sim_world *w, unsigned l, const char *leader,
                           const char *candidate, int fault, char *why, size_t size)
{
    return switchover_request(w, l, leader, candidate, false, fault, why, size);
}

/* switchover.c prepare and begin; scheduled: switchover_start_scheduled's. */
static int switchover_request(struct sim_world *w, unsigned l, const char *leader,
                              const char *candidate, bool scheduled, int fault, char *why,
                              size_t size)
{
    struct sim_node *n = &w->nodes[l];
    struct sim_agent *a = &n->agent;
    const struct fsm_state *st = &n->cons.state;
    /* switchover.c prepare: every member reports untagged, priority 1 (report_of). */
    char self_address[FSM_ADDR_MAX];
    snprintf(self_address, sizeof self_address, "10.0.0.%u:5432", l + 1);
    struct switchover_self self = {.name = n->name,
                                   .connect_address = self_address,
                                   .timeline = a->obs.timeline,
                                   .system_id = st->system_id};
    struct switchover_peer peers[FSM_MEMBERS_MAX];
    unsigned np = 0;
    rpg_msec now = sim_local_now(w, l);
    for (unsigned m = 0; m < st->n_members && np < FSM_MEMBERS_MAX; m++) {
        if (strcmp(st->members[m].name, n->name) == 0) {
            continue;
        }
        struct switchover_peer *sp = &peers[np++];
        switchover_peer_of(&self, &st->members[m], peer_book_get(&a->book, st->members[m].name),
                           now, sp);
        sp->leaving = strcmp(a->removing, st->members[m].name) == 0;
        for (unsigned r = 0; r < a->n_replicas; r++) {
            if (strcmp(a->replicas[r].name, st->members[m].name) == 0 &&
                a->replicas[r].flush_position > 0) {
                sp->seen_by_primary = true;
                sp->flush_position = a->replicas[r].flush_position;
            }
        }
    }
    struct sync_settings in_force;
    sync_settings_in_force(st, w->opt->sync_mode, w->opt->sync_k, FSM_SYNC_COMMIT_ON, &in_force);
    struct switchover_ask in = {
        .phase = a->so.phase,
        .under_way_to = a->so.to,
        .has_pg = true,
        .state = st,
        .scheduled = scheduled,
        .self = n->name,
        .leader = leader,
        .candidate = candidate,
        .leader_ready = sim_agent_leader(w, l) && raft_up(w, l),
        .lease_ok = a->fm.lease_ok,
        .pg_running = a->obs.state == HA_PG_RUNNING,
        .pg_in_recovery = a->obs.in_recovery,
        .pg_busy = a->op_id != 0,
        .sync_mode = in_force.mode,
        .peers = peers,
        .n_peers = np,
        .limit = NULL, /* maximum_lag_on_failover is not set here */
    };
    char to[FSM_NAME_MAX];
    int status = switchover_prepare(&in, to, sizeof to, why, size);
    if (status != 0) {
        sim_trace(w, (int)l, "switchover refused: %s", why);
        return status;
    }
    const struct fsm_member *target = fsm_state_member(st, to);
    switchover_begin(&a->so, n->name, to, target != NULL ? target->id : 0, now);
    a->so_fault = fault;
    a->so_pg_inc = n->pg.inc;
    sim_trace(w, (int)l, "switchover %s -> %s requested", n->name, to);
    hook_begin(w, l, fault >= 0 && (unsigned)fault < w->sched->n ? &w->fs[fault].rng : &w->rng);
    return 0;
}

/* ---- scheduled switchovers (src/schedule.c, src/api_action.c) -------------------------------- */

int64_t sim_wall_ms(const struct sim_world *w)
{
    return SIM_WALL_EPOCH_MS + (int64_t)sim_now(w);
}

static void cancel_committed(void *data, int rc, const char *msg)
{
    struct sim_cancel *c = data;
    sim_schedule_cancelled(c->w, c->at_ms, rc, msg);
}

int sim_switchover_cancel(struct sim_world *w, unsigned l, char *why, size_t size)
{
    const struct sim_node *n = &w->nodes[l];
    const struct fsm_state *s = &n->cons.state;
    /* api_require_leader, then api_switchover_cancel. */
    if (!sim_agent_leader(w, l) || !raft_up(w, l)) {
        sim_fmt(why, size, "this member is not the raft leader");
        return 503;
    }
    if (s->switchover.at_ms == 0) {
        sim_fmt(why, size, "no switchover is scheduled");
        return 404;
    }
    if (w->n_cancels >= SIM_FAULTS_MAX) {
        sim_fmt(why, size, "too many cancels in one schedule");
        return 503;
    }
    struct sim_cancel *c = &w->cancels[w->n_cancels++];
    c->w = w;
    c->at_ms = s->switchover.at_ms;
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_CLEAR_SWITCHOVER;
    cmd.term = n->cons.term;
    cmd.u.clear_switchover.at_ms = s->switchover.at_ms;
    char errmsg[RPG_ERRMSG_SIZE];
    if (submit(w, l, &cmd, cancel_committed, c, errmsg) != 0) {
        sim_fmt(why, size, "%s", errmsg);
        return 503;
    }
    char at[48];
    schedule_format_time(c->at_ms, at, sizeof at);
    sim_trace(w, (int)l, "cancel of the switchover scheduled at %s requested", at);
    return 0;
}

int sim_switchover_schedule(struct sim_world *w, unsigned l, const char *leader,
                            const char *candidate, int64_t at_ms, char *why, size_t size)
{
    const struct sim_node *n = &w->nodes[l];
    const struct fsm_state *s = &n->cons.state;
    const struct fsm_member *m;
    char at[48], now_s[48];
    int64_t now = sim_wall_ms(w);
    schedule_format_time(at_ms, at, sizeof at);
    schedule_format_time(now, now_s, sizeof now_s);
    int status = 412;
    why[0] = '\0';
    /* api_require_leader, then api_action.c switchover_schedule's checks. Every member runs
     * this agent: the state version check passes. */
    if (!sim_agent_leader(w, l) || !raft_up(w, l)) {
        sim_fmt(why, size, "this member is not the raft leader");
        status = 503;
    } else if (!s->initialized || s->primary.name[0] == '\0') {
        sim_fmt(why, size, "the cluster has no primary recorded yet");
        status = 503;
    } else if (s->paused) {
        sim_fmt(why, size,
                "scheduled_at: cannot schedule a switchover in maintenance mode (ctl resume)");
    } else if (at_ms <= now) {
        sim_fmt(why, size, "scheduled_at: %s is in the past (now %s)", at, now_s);
    } else if (leader != NULL && fsm_state_member(s, leader) == NULL) {
        sim_fmt(why, size, "leader: %s is not a member of this cluster", leader);
    } else if (leader != NULL && strcmp(leader, s->primary.name) != 0) {
        sim_fmt(why, size, "leader: %s is not the primary (%s is)", leader, s->primary.name);
    } else if (candidate != NULL && (m = fsm_state_member(s, candidate)) == NULL) {
        sim_fmt(why, size, "candidate: %s is not a member of this cluster", candidate);
    } else if (candidate != NULL && (m->tags & FSM_TAG_NOFAILOVER) != 0) {
        sim_fmt(why, size, "candidate: %s is tagged nofailover", candidate);
    } else if (candidate != NULL && strcmp(candidate, s->primary.name) == 0) {
        sim_fmt(why, size, "candidate: %s is the primary already", candidate);
    } else if (s->switchover.at_ms != 0) {
        char other[48];
        schedule_format_time(s->switchover.at_ms, other, sizeof other);
        sim_fmt(why, size, "a switchover is already scheduled at %s: cancel it first", other);
        status = 409;
    }
    if (why[0] != '\0') {
        sim_trace(w, (int)l, "scheduled switchover refused: %s", why);
        return status;
    }
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SCHEDULE_SWITCHOVER;
    cmd.term = n->cons.term;
    cmd.u.schedule_switchover.at_ms = at_ms;
    sim_copy(cmd.u.schedule_switchover.from, FSM_NAME_MAX, leader != NULL ? leader : "");
    sim_copy(cmd.u.schedule_switchover.to, FSM_NAME_MAX, candidate != NULL ? candidate : "");
    char errmsg[RPG_ERRMSG_SIZE];
    if (submit(w, l, &cmd, NULL, NULL, errmsg) != 0) {
        sim_fmt(why, size, "%s", errmsg);
        return 503;
    }
    sim_trace(w, (int)l, "switchover scheduled at %s requested (from=%s to=%s)", at,
              leader != NULL ? leader : "(the primary then)",
              candidate != NULL ? candidate : "(the best standby then)");
    return 0;
}

/* schedule.c on_cleared: once the entry is cleared, a due switchover starts (whatever its
 * outcome, it ran once); a dropped one was logged when its clear was submitted. */
static void sched_start_due(struct sim_world *w, unsigned i);

static void sched_cleared(void *data, int rc, const char *msg)
{
    struct sim_agent *a = data;
    struct sim_world *w = a->w;
    unsigned i = a->idx;
    struct schedule *sc = &a->sched;
    const struct fsm_switchover *e = &sc->entry;
    sc->clearing = false;
    char at[48];
    schedule_format_time(e->at_ms, at, sizeof at);
    if (rc != 0) {
        /* Still recorded: the next tick, or the next leader, decides again. */
        sim_trace(w, (int)i, "scheduled switchover at %s: clearing it failed: %s", at, msg);
        return;
    }
    int fault = sim_schedule_cleared(w, i, e->at_ms, sc->verdict, a->sched_why);
    if (sc->verdict != SCHEDULE_RUN) {
        return;
    }
    sim_trace(w, (int)i, "scheduled switchover at %s: starting (from=%s to=%s)", at,
              e->from[0] != '\0' ? e->from : w->nodes[i].name, e->to[0] != '\0' ? e->to : "(best)");
    a->sched_fault = fault;
    sched_start_due(w, i);
}

/* schedule.c start_due: a refusal for a moment (schedule_retry_refusal) keeps it for a later
 * tick. */
static void sched_start_due(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    struct schedule *sc = &a->sched;
    struct fsm_switchover due = sc->entry;
    char at[48];
    char why[3 * RPG_ERRMSG_SIZE];
    schedule_format_time(due.at_ms, at, sizeof at);
    int status = switchover_request(w, i, due.from[0] != '\0' ? due.from : NULL,
                                    due.to[0] != '\0' ? due.to : NULL, true, a->sched_fault, why,
                                    sizeof why);
    bool again = status != 0 && schedule_retry_refusal(status);
    if (status != 0 && (!again || !sc->retrying)) {
        sim_trace(w, (int)i, "scheduled switchover at %s %s: %s", at,
                  again ? "refused for now, tried again while it is due" : "not done", why);
    }
    if (status != 0 && !again) {
        sim_schedule_refused(w, i, a->sched_fault, status, why);
    }
    sc->retrying = again;
}

/* schedule.c settled_primary. */
static bool settled_primary(struct sim_world *w, unsigned i)
{
    const struct sim_node *n = &w->nodes[i];
    const struct sim_agent *a = &n->agent;
    return a->fm.lease_ok && strcmp(n->cons.state.primary.name, n->name) == 0 && a->obs_valid &&
           a->obs.state == HA_PG_RUNNING && !a->obs.in_recovery && a->op_id == 0 &&
           a->so.phase == SWITCHOVER_IDLE;
}

/* schedule.c schedule_tick, from the HA tick where agent.c calls it: the shared verdict
 * (schedule_decide) on the ready leader, at the world's wall clock. */
static void sched_tick(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    struct schedule *sc = &a->sched;
    const struct fsm_state *s = &n->cons.state;
    char why[RPG_ERRMSG_SIZE];
    if (sc->retrying && s->initialized && !sc->clearing) {
        bool leading = n->cons.role == CONS_ROLE_LEADER && n->cons.leader_ready;
        enum schedule_verdict rv = schedule_retry_decide(
            &sc->entry, s, leading, settled_primary(w, i), sim_wall_ms(w), why, sizeof why);
        if (rv == SCHEDULE_RUN) {
            sched_start_due(w, i);
        } else if (rv != SCHEDULE_WAIT) {
            sim_trace(w, (int)i, "%s", why);
            sim_schedule_refused(w, i, a->sched_fault, 503, why);
            sc->retrying = false;
        }
        return;
    }
    if (!s->initialized || sc->clearing || n->cons.role != CONS_ROLE_LEADER ||
        !n->cons.leader_ready) {
        return;
    }
    enum schedule_verdict v = schedule_decide(s, sim_wall_ms(w), why, sizeof why);
    if (v == SCHEDULE_NONE || v == SCHEDULE_WAIT) {
        sc->waiting[0] = '\0';
        return;
    }
    if (v == SCHEDULE_RUN && !settled_primary(w, i)) {
        if (strcmp(sc->waiting, why) != 0) {
            sim_trace(w, (int)i, "%s: waiting for this member to run as a settled primary", why);
            sim_copy(sc->waiting, sizeof sc->waiting, why);
        }
        return;
    }
    sc->waiting[0] = '\0';
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_CLEAR_SWITCHOVER;
    cmd.term = n->cons.term;
    cmd.u.clear_switchover.at_ms = s->switchover.at_ms;
    char errmsg[RPG_ERRMSG_SIZE];
    if (submit(w, i, &cmd, sched_cleared, a, errmsg) != 0) {
        sim_trace(w, (int)i, "%s: clearing it failed: %s", why, errmsg);
        return;
    }
    sc->clearing = true;
    sc->verdict = v;
    sc->entry = s->switchover;
    sim_copy(a->sched_why, sizeof a->sched_why, why);
    sim_trace(w, (int)i, "%s%s", why,
              v == SCHEDULE_RUN ? ": clearing it, then switching over" : "");
}

/* agent.c upstream_of: following a member needs its PostgreSQL address from its report. */
static int upstream_known(struct sim_world *w, unsigned i, const char *target, char *errmsg)
{
    const struct sim_agent *a = &w->nodes[i].agent;
    for (unsigned k = 0; k < a->book.n_results; k++) {
        if (strcmp(a->book.results[k].name, target) == 0 &&
            a->book.results[k].pg_address[0] != '\0') {
            return 0;
        }
    }
    return rpg_err(errmsg, RPG_ENOTFOUND, "no postgresql address known for %s", target);
}

static int io_pg_bootstrap(void *data, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    sim_guard_unfenced(w, i);
    return op_start(w, i, SOP_BOOTSTRAP, ST_INITDB, NULL, errmsg);
}

static int io_pg_start(void *data, bool standby, const char *target, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    if (target[0] != '\0' && upstream_known(w, i, target, errmsg) != 0) {
        return RPG_ENOTFOUND;
    }
    if (!standby) {
        sim_guard_unfenced(w, i);
    }
    struct sim_op *op = op_prepare(w, i, SOP_START, ST_START, target, errmsg);
    if (op == NULL) {
        return RPG_EBUSY;
    }
    op->standby = standby;
    return op_go(w, i, op);
}

static int io_pg_stop(void *data, unsigned bound_ms, char *errmsg)
{
    (void)bound_ms;
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    return op_start(w, i, SOP_STOP, ST_STOP, NULL, errmsg);
}

static int io_pg_promote(void *data, uint32_t timeline, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    sim_guard_unfenced(w, i);
    struct sim_op *op = op_prepare(w, i, SOP_PROMOTE, ST_PROMOTE, NULL, errmsg);
    if (op == NULL) {
        return RPG_EBUSY;
    }
    op->timeline = timeline;
    return op_go(w, i, op);
}

static int io_pg_checkpoint(void *data, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    return op_start(w, i, SOP_CHECKPOINT, ST_CHECKPOINT, NULL, errmsg);
}

static int io_pg_clone(void *data, const char *target, bool remove_first, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    if (upstream_known(w, i, target, errmsg) != 0) {
        return RPG_ENOTFOUND;
    }
    return op_start(w, i, SOP_CLONE, remove_first ? ST_REMOVE : ST_BASEBACKUP, target, errmsg);
}

static int io_pg_rewind(void *data, const char *target, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    if (upstream_known(w, i, target, errmsg) != 0) {
        return RPG_ENOTFOUND;
    }
    return op_start(w, i, SOP_REWIND, ST_REWIND, target, errmsg);
}

static int io_pg_follow(void *data, const char *target, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    if (upstream_known(w, i, target, errmsg) != 0) {
        return RPG_ENOTFOUND;
    }
    return op_start(w, i, SOP_FOLLOW, ST_FOLLOW, target, errmsg);
}

static int io_pg_sync_slots(void *data, const uint64_t *ids, unsigned n, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    struct sim_op *op = op_prepare(w, i, SOP_SLOTS, ST_SLOTS, NULL, errmsg);
    if (op == NULL) {
        return RPG_EBUSY;
    }
    op->n_ids = n < FSM_MEMBERS_MAX ? n : FSM_MEMBERS_MAX;
    memcpy(op->ids, ids, op->n_ids * sizeof *ids);
    return op_go(w, i, op);
}

static int io_pg_set_sync(void *data, const char *names, const char *commit, char *errmsg)
{
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    struct sim_op *op = op_prepare(w, i, SOP_SET_SYNC, ST_SET_SYNC, NULL, errmsg);
    if (op == NULL) {
        return RPG_EBUSY;
    }
    struct sim_agent *a = &w->nodes[i].agent;
    sim_trace(w, (int)i, "set synchronous_standby_names '%s' synchronous_commit '%s'", names,
              commit != NULL ? commit : "");
    sim_copy(a->sync_names, sizeof a->sync_names, names);
    sim_copy(a->sync_commit, sizeof a->sync_commit, commit != NULL ? commit : "");
    return op_go(w, i, op);
}

static int io_raft_submit(void *data, const struct fsm_cmd *cmd, char *errmsg)
{
    PAUSED_CHECK_IO(data, PAUSED_TAKEOVER, "a raft submission");
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    return submit(w, i, cmd, action_done, data, errmsg);
}

static int io_raft_transfer(void *data, uint64_t id, char *errmsg)
{
    PAUSED_CHECK_IO(data, PAUSED_OTHER, "a leadership transfer");
    unsigned i;
    struct sim_world *w = world_of_agent(data, &i);
    return sim_transfer(w, i, id, errmsg);
}

/* ---- lifecycle and timers -------------------------------------------------------------------- */

void sim_agent_schedule(struct sim_world *w, unsigned i, rpg_msec delay)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (!a->alive) {
        return;
    }
    a->tick_gen++;
    sim_push(w, sim_now(w) + delay, EV_TICK, (int)i, a->gen, a->tick_gen);
}

/* agent.c failover_permit_held: the permit this agent holds or adopts from a fresh report. */
static bool permit_held(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    uint64_t until = a->permit.held_until;
    bool held = failover_permit_take(&a->permit, w->nodes[i].name, &a->book, sim_local_now(w, i));
    if (held && a->permit.held_until != until) {
        sim_trace(w, (int)i,
                  "%s granted a failover to this member: it may take over for %" PRIu64 " ms",
                  a->permit.held_from, a->permit.held_until - sim_local_now(w, i));
    }
    return held;
}

static void tick(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    /* agent.c ha_tick: the lease is judged afresh before any decision; the soft layer holds
     * decisions back. */
    sim_fence_tick(w, i);
    bool paused = n->cons.state.initialized && n->cons.state.paused;
    if (paused != a->maintenance) {
        a->maintenance = paused;
        sim_copy(a->pause_primary, sizeof a->pause_primary, n->cons.state.primary.name);
        sim_trace(w, (int)i, "maintenance mode %s", paused ? "on" : "off");
    }
    /* agent.c ha_tick: restart_holds, while the restart waits for an operation and while its
     * stop runs: the decisions would start the server again. */
    if (a->restart_phase == RESTART_WAITING || a->restart_phase == RESTART_STOPPING ||
        switchover_phase_holds(a->so.phase)) {
        ha_pg_track_down(&a->obs, false, &a->down, sim_local_now(w, i));
        return;
    }
    /* agent.c ha_tick: what an operator's failover lets through the pause (failover.h), and
     * what a switchover that stopped this primary in the pause does (switchover_paused_allows). */
    unsigned allowed =
        paused ? failover_paused_mask(permit_held(w, i), &n->cons.state, a->pause_primary) |
                     switchover_paused_mask(&a->so_paused_stop, paused,
                                            a->obs_valid && a->obs.state == HA_PG_RUNNING,
                                            strcmp(n->cons.state.primary.name, n->name) == 0)
               : 0;
    if (core_paused(&a->core, &n->cons.state, allowed)) {
        return;
    }
    if (a->fm.frozen) {
        ha_pg_track_down(&a->obs, false, &a->down, sim_local_now(w, i));
        return;
    }
    sched_tick(w, i);
    if (!a->alive) {
        return;
    }
    struct core_view v;
    memset(&v, 0, sizeof v);
    v.now = sim_local_now(w, i);
    v.state = &n->cons.state;
    bool poll = false;
    bool gate = sim_lead_gate(w, i, &poll);
    if (poll) {
        poll_now(w, i);
    }
    v.leader = sim_agent_leader(w, i) && !n->raft_killed && (w->opt->no_lease || gate);
    v.raft_leader = sim_agent_leader(w, i) && !n->raft_killed;
    v.state_current = state_current(w, i);
    v.term = n->cons.term;
    v.pg_ready = a->obs_valid && a->op_id == 0 && a->obs_epoch == a->epoch;
    /* agent.c ha_tick: primary_start_timeout's clock, on the recorded primary's ready leader. */
    const struct fsm_state *st = &n->cons.state;
    bool counting = v.leader && !paused && st->initialized &&
                    strcmp(st->primary.name, a->core.self) == 0 && st->primary.term == n->cons.term;
    ha_pg_track_down(&a->obs, counting, &a->down, v.now);
    v.primary_start_timeout_ms = w->opt->primary_start_timeout;
    v.pg = a->obs;
    v.peers = a->book.results;
    v.n_peers = a->book.n_results;
    /* agent.c ha_tick: the synchronous settings in force (replicated, or this member's file until
     * the first leader records them), what the server runs with, its standbys. */
    const struct fsm_state *s = &n->cons.state;
    struct sync_settings in_force;
    sync_settings_in_force(s, w->opt->sync_mode, w->opt->sync_k, FSM_SYNC_COMMIT_ON, &in_force);
    v.sync_mode = in_force.mode;
    v.sync_k = in_force.k;
    v.sync_commit = in_force.commit;
    bool observed = a->obs.state == HA_PG_RUNNING && !a->obs.in_recovery;
    v.sync_configured = observed ? a->sync_seen : NULL;
    v.sync_commit_written = a->sync_commit;
    v.replicas = a->replicas;
    v.n_replicas = a->n_replicas;
    v.nosync = NULL;
    v.n_nosync = 0;
    v.removing = a->removing[0] != '\0' ? a->removing : NULL;
    v.transfers_failed = w->nodes[i].cons.n_transfers_failed;
    /* agent.c ha_tick: an operator's failover waives maximum_lag_on_failover for its candidate
     * (never set here), and lets only what it allows through the pause. */
    v.lag_waived_for = permit_held(w, i) ? a->core.self : NULL;
    v.allowed = allowed;
    bool decides = !a->core.busy && v.pg_ready;
    rpg_msec leading = a->core.leader_since;
    bool started = core_tick(&a->core, &v);
    /* agent.c ha_tick: a round as soon as the core acts as leader. */
    if (leading == 0 && a->core.leader_since != 0) {
        poll_now(w, i);
    }
    if (decides && (a->core.last_changed || started)) {
        sim_trace(w, (int)i, "%s%s%s: %s", ha_action_name(a->core.last.action),
                  a->core.last.target[0] ? " " : "", a->core.last.target, a->core.last.why);
    }
    if (started) {
        sim_trigger_action(w, i, a->core.running);
    }
}

void sim_agent_event(struct sim_world *w, const struct sim_event *e)
{
    unsigned i = (unsigned)e->node;
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    if (!a->alive || a->gen != e->gen) {
        return;
    }
    switch (e->type) {
    case EV_TICK:
        if (e->sub != a->tick_gen) {
            return;
        }
        /* restart.c's own timer, every 100 ms like this one; switchover.c's, every 50 ms there,
         * here at this tick too (its bounds are seconds). */
        restart_tick(w, i);
        if (!a->alive || a->gen != e->gen) {
            return;
        }
        if (a->so.phase != SWITCHOVER_IDLE) {
            switchover_event(w, i, SWITCHOVER_EV_TICK, true, NULL);
        }
        if (!a->alive || a->gen != e->gen) {
            return;
        }
        tick(w, i);
        sim_push(w, sim_now(w) + SIM_HA_TICK_MS, EV_TICK, (int)i, a->gen, a->tick_gen);
        return;
    case EV_OBSERVE:
        observe(w, i);
        sim_push(w, sim_now(w) + SIM_OBSERVE_MS, EV_OBSERVE, (int)i, a->gen, 0);
        return;
    case EV_POLL:
        if (e->sub != a->poll_gen) {
            return;
        }
        poll_all(w, i, false);
        sim_push(w, sim_now(w) + SIM_POLL_MS, EV_POLL, (int)i, a->gen, a->poll_gen);
        return;
    case EV_POLL_STEP: poll_answer(w, i, e->sub); return;
    case EV_REMOVE_TICK: sim_remove_tick(w, i); return;
    case EV_HOOK_DONE: hook_done(w, i, e->sub); return;
    case EV_RECONCILE:
        if (raft_up(w, i)) {
            cons_reconcile(cons_of(w, i));
            cons_storage_tick(cons_of(w, i));
            if (sim_storage_probe(w, i)) {
                return; /* the agent left */
            }
        }
        sim_push(w, sim_now(w) + SIM_RECONCILE_MS, EV_RECONCILE, (int)i, a->gen, 0);
        return;
    default: return;
    }
}

/* cons_uv.c storage_timer_cb / probe_after_cb: once a second, statvfs and a 4 KiB write probe
 * of the Raft directory, whose answers the world gives here; then agent.c on_raft_change: a
 * leader still leading long after it handed leadership over leaves (cons.failed: agent_stop with
 * exit 1, which stops PostgreSQL). True when the agent left. */
#define STORAGE_FREE_BYTES (1ull << 30)

static bool sim_storage_probe(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    struct cons *c = cons_of(w, i);
    rpg_msec now = sim_now(w);
    if (n->probe_at == 0 || now - n->probe_at >= TIMING_STORAGE_PROBE_INTERVAL_MS ||
        (c->wal.fenced && now - n->probe_at >= TIMING_STORAGE_PROBE_FENCED_MS)) {
        n->probe_at = now;
        cons_storage_probe_begin(c);
        char msg[RPG_ERRMSG_SIZE] = "";
        int err_no = 0;
        if (n->storage_fault == RAFT_NOSPACE) {
            err_no = ENOSPC;
        } else if (n->storage_fault != 0) {
            err_no = EROFS;
        }
        if (err_no != 0) {
            snprintf(msg, sizeof msg, "write raft/%s: %s (errno=%d)", STORAGE_PROBE_FILE,
                     strerror(err_no), err_no);
        }
        cons_storage_report(c, err_no != 0 ? RPG_EIO : 0, err_no, msg, true,
                            n->storage_fault == RAFT_NOSPACE ? 0 : STORAGE_FREE_BYTES);
        if (c->wal.restart_wanted && c->attached) {
            sim_raft_restart(w, i);
        }
    }
    if (!c->failed) {
        return false;
    }
    sim_trace(w, (int)i, "agent leaves: %s", c->error);
    if (n->pg.proc != SIM_PROC_DOWN) {
        sim_pg_begin_shutdown(w, i, sim_rng_range(&w->rng, 10, 120));
    }
    n->vip_held = false;
    n->guard_unfenced = false; /* a clean stop: the guard exits without fencing */
    sim_agent_crash(w, i);
    n->storage_exited = true;
    return true;
}

void sim_storage_fault(struct sim_world *w, unsigned i, int status)
{
    struct sim_node *n = &w->nodes[i];
    n->storage_fault = status;
    w->shims[n->fx].fail = status;
    if (status == 0 && n->storage_exited) {
        /* systemd's Restart=on-failure brings the agent back once the directory can be written
         * (in the agent, a log that lost entries is refused then: README.md of tests/sim). */
        n->storage_exited = false;
        sim_node_restart(w, i);
    }
}

void sim_agent_start(struct sim_world *w, unsigned i)
{
    static const struct core_io io_template = {
        .pg_bootstrap = io_pg_bootstrap,
        .pg_start = io_pg_start,
        .pg_stop = io_pg_stop,
        .pg_promote = io_pg_promote,
        .pg_checkpoint = io_pg_checkpoint,
        .pg_clone = io_pg_clone,
        .pg_rewind = io_pg_rewind,
        .pg_follow = io_pg_follow,
        .pg_sync_slots = io_pg_sync_slots,
        .pg_set_sync = io_pg_set_sync,
        .raft_submit = io_raft_submit,
        .raft_transfer = io_raft_transfer,
    };
    struct sim_node *n = &w->nodes[i];
    struct sim_agent *a = &n->agent;
    uint64_t gen = a->gen + 1;
    memset(a, 0, sizeof *a);
    a->w = w;
    a->idx = i;
    a->alive = true;
    a->gen = gen;
    a->io = io_template;
    a->io.data = a;
    core_init(&a->core, &a->io, n->name, false, 1);
    snprintf(a->core.pg_address, sizeof a->core.pg_address, "10.0.0.%u:5432", i + 1);
    a->traced_role = RAFT_UNAVAILABLE;
    attach_cons(w, i);
    /* pg_init reads the upstream back from raftpg.conf. */
    sim_copy(a->obs.upstream, sizeof a->obs.upstream, n->pg.data ? n->pg.conf_upstream : "");
    update_peer_targets(w, i);
    rpg_msec now = sim_now(w);
    sim_push(w, now, EV_OBSERVE, (int)i, a->gen, 0);
    sim_push(w, now, EV_POLL, (int)i, a->gen, 0);
    sim_push(w, now + SIM_RECONCILE_MS, EV_RECONCILE, (int)i, a->gen, 0);
    sim_agent_schedule(w, i, SIM_HA_TICK_MS);
    sim_fence_start(w, i);
    sim_trace(w, (int)i, "agent started");
}

void sim_agent_crash(struct sim_world *w, unsigned i)
{
    struct sim_agent *a = &w->nodes[i].agent;
    if (!a->alive) {
        return;
    }
    if (a->so.phase != SWITCHOVER_IDLE) {
        w->res->so_cut++; /* nobody answers: the cluster decides as after any leader loss */
    }
    a->alive = false;
    a->gen++;
    a->op_id = 0;                        /* its programs finish on their own (sim_op_step_done) */
    w->nodes[i].raft_restarting = false; /* the next agent restarts it if still fenced */
    cons_detach(cons_of(w, i));
    sim_raft_kill(w, i);
    /* The process and its memory are gone: the server reloads from its directory. */
    w->nodes[i].raft_reload = true;
    sim_raft_reload_maybe(w, i);
    sim_trace(w, (int)i, "agent died");
}
