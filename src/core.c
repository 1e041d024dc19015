#include <stdio.h>
#include <string.h>

#include "raftpg/core.h"
#include "raftpg/log.h"
#include "raftpg/quorum.h"

void core_init(struct core *c, const struct core_io *io, const char *self, bool nofailover,
               int failover_priority)
{
    memset(c, 0, sizeof *c);
    c->io = io;
    c->self = self;
    c->nofailover = nofailover;
    c->failover_priority = failover_priority;
}

static const struct peer_status *report_of(const struct core_view *v, const char *name)
{
    for (unsigned i = 0; i < v->n_peers; i++) {
        if (strcmp(v->peers[i].name, name) == 0) {
            return &v->peers[i];
        }
    }
    return NULL;
}

/* Keeps since when a member that may have written as primary has shown in every report that its
 * server accepts no writes, from before this leadership on: a run broken by a report of it
 * writable, or by no report, starts again. Until the run begins it may have had standbys
 * acknowledge commits (its machine frozen with its clocks and resumed, say), and positions
 * reported before are no proof of what they hold. */
static void quiet_track(struct core_quiet *q, const char *name, const struct core_view *v)
{
    if (name[0] == '\0') {
        q->name[0] = '\0';
        q->since = 0;
        return;
    }
    if (strcmp(q->name, name) != 0) {
        snprintf(q->name, sizeof q->name, "%s", name);
        q->since = 0;
    }
    const struct peer_status *p = report_of(v, name);
    bool fresh = p != NULL && p->reachable && p->has_pg && p->last_polled != 0 &&
                 v->now - p->last_seen <= CORE_PEER_FRESH_MS;
    bool quiet = fresh && (p->pg_state == HA_PG_STOPPED || p->pg_state == HA_PG_ABSENT ||
                           (p->pg_state == HA_PG_RUNNING && p->pg_in_recovery));
    if (!quiet) {
        q->since = 0;
    } else if (q->since == 0) {
        q->since = p->last_seen;
    }
}

/* The primary this member replaced in this term (before it recorded itself, the recorded one),
 * and the last member seen running as primary: a recorded primary that never promoted wrote
 * nothing, and the one before it may be the one still writing (seed 897523280553). */
static void quiet_seen(struct core *c, const struct core_view *v)
{
    if (v->pg.state == HA_PG_RUNNING && !v->pg.in_recovery) {
        snprintf(c->last_writer, sizeof c->last_writer, "%s", c->self); /* writers before: moot */
    }
    for (unsigned i = 0; i < v->n_peers; i++) {
        const struct peer_status *p = &v->peers[i];
        if (p->reachable && p->has_pg && p->last_polled != 0 &&
            v->now - p->last_seen <= CORE_PEER_FRESH_MS && p->pg_state == HA_PG_RUNNING &&
            !p->pg_in_recovery && strcmp(p->name, c->self) != 0) {
            snprintf(c->last_writer, sizeof c->last_writer, "%s", p->name);
        }
    }
    const char *prev = v->state->primary.name;
    if (c->prev_primary_term == v->term && c->prev_primary[0] != '\0') {
        prev = c->prev_primary;
    }
    if (strcmp(prev, c->self) == 0) {
        prev = "";
    }
    const char *last = strcmp(c->last_writer, prev) != 0 && strcmp(c->last_writer, c->self) != 0
                           ? c->last_writer
                           : "";
    quiet_track(&c->quiet[0], prev, v);
    quiet_track(&c->quiet[1], last, v);
}

/* Whether a report to a poll started at polled came after every run above began. */
static bool after_quiet(const struct core *c, rpg_msec polled)
{
    bool any = false;
    for (unsigned k = 0; k < 2; k++) {
        if (c->quiet[k].name[0] == '\0') {
            continue;
        }
        if (c->quiet[k].since == 0 || polled <= c->quiet[k].since) {
            return false;
        }
        any = true;
    }
    return any;
}

unsigned core_peers(const struct core *c, const struct core_view *v, struct ha_peer *out,
                    unsigned max)
{
    const struct fsm_state *s = v->state;
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_members && n < max; i++) {
        const struct fsm_member *m = &s->members[i];
        if (strcmp(m->name, c->self) == 0) {
            continue;
        }
        struct ha_peer *h = &out[n++];
        memset(h, 0, sizeof *h);
        snprintf(h->name, sizeof h->name, "%s", m->name);
        h->failover_priority = 1;
        const struct peer_status *p = report_of(v, m->name);
        if (p == NULL || p->last_polled == 0) {
            continue;
        }
        h->pg_address_known = p->pg_address[0] != '\0';
        snprintf(h->pg_address, sizeof h->pg_address, "%s", p->pg_address);
        /* A leader trusts only reports asked for after it became leader. */
        h->polled = c->leader_since == 0 || p->last_polled >= c->leader_since;
        h->reachable = p->reachable && p->has_pg && v->now - p->last_seen <= CORE_PEER_FRESH_MS;
        if (!h->reachable) {
            continue;
        }
        h->pg_state = p->pg_state;
        h->in_recovery = p->pg_in_recovery;
        h->system_id = p->pg_system_id;
        h->timeline = p->pg_timeline;
        h->checkpoint_timeline = p->pg_checkpoint_timeline;
        h->streaming = p->pg_streaming;
        snprintf(h->upstream, sizeof h->upstream, "%s", p->pg_upstream);
        snprintf(h->receiver, sizeof h->receiver, "%s", p->pg_receiver);
        snprintf(h->conninfo, sizeof h->conninfo, "%s", p->pg_conninfo);
        h->wal_position = p->pg_wal_position;
        h->start_failures = p->pg_start_failures;
        h->crashes = p->pg_crashes;
        h->unwritable = p->pg_unwritable;
        h->identity_mismatch = p->id != 0 && m->id != 0 && p->id != m->id;
        h->nofailover = p->nofailover;
        h->failover_priority = p->failover_priority;
        h->storage_failed = p->storage_failed;
        h->diverged = p->diverged;
        h->after_prev_quiet = after_quiet(c, p->last_polled);
    }
    return n;
}

/* Keeps the furthest position the recorded primary reported while it ran as primary; a new
 * record (another member or timeline) starts again from nothing. */
static void primary_wal_seen(struct core *c, const struct core_view *v)
{
    const struct fsm_state *s = v->state;
    if (strcmp(c->lag_primary, s->primary.name) != 0 || c->lag_timeline != s->primary.timeline) {
        snprintf(c->lag_primary, sizeof c->lag_primary, "%s", s->primary.name);
        c->lag_timeline = s->primary.timeline;
        c->lag_wal = 0;
    }
    uint64_t pos = 0;
    if (s->primary.name[0] == '\0') {
        return;
    }
    if (strcmp(s->primary.name, c->self) == 0) {
        if (v->pg.state == HA_PG_RUNNING && !v->pg.in_recovery) {
            pos = v->pg.wal_position;
        }
    } else {
        const struct peer_status *p = report_of(v, s->primary.name);
        if (p != NULL && p->has_pg && p->pg_state == HA_PG_RUNNING && !p->pg_in_recovery) {
            pos = p->pg_wal_position;
        }
    }
    if (pos > c->lag_wal) {
        c->lag_wal = pos;
    }
}

static void set_primary_cmd(const struct core *c, struct fsm_cmd *cmd, uint64_t term,
                            uint32_t timeline)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_SET_PRIMARY;
    snprintf(cmd->u.set_primary.name, sizeof cmd->u.set_primary.name, "%s", c->self);
    cmd->u.set_primary.term = term;
    cmd->u.set_primary.timeline = timeline;
}

static void quorum_view_of(const struct core *c, const struct core_view *v, struct quorum_view *q,
                           const char **down);

/* One replication slot for every other member. */
static int sync_slots(struct core *c, const struct fsm_state *s, char *errmsg)
{
    uint64_t ids[FSM_MEMBERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_members; i++) {
        if (strcmp(s->members[i].name, c->self) != 0) {
            ids[n++] = s->members[i].id;
        }
    }
    return c->io->pg_sync_slots(c->io->data, ids, n, errmsg);
}

static int execute(struct core *c, const struct core_view *v, const struct ha_decision *d,
                   char *errmsg)
{
    const struct core_io *io = c->io;
    struct fsm_cmd cmd;
    switch (d->action) {
    case HA_ACT_WAIT:
    case HA_ACT_REFUSE: return 0;
    case HA_ACT_BOOTSTRAP: return io->pg_bootstrap(io->data, errmsg);
    case HA_ACT_START_STANDBY: return io->pg_start(io->data, true, d->target, errmsg);
    case HA_ACT_START_PRIMARY:
    case HA_ACT_PROMOTE: {
        c->promote_timeline = d->action == HA_ACT_PROMOTE ? d->timeline : 0;
        if (io->pg_set_sync == NULL) {
            return d->action == HA_ACT_PROMOTE ? io->pg_promote(io->data, d->timeline, errmsg)
                                               : io->pg_start(io->data, false, "", errmsg);
        }
        /* Synchronous before it is a primary: it never acknowledges a commit the record does
         * not cover (quorum_initial_value), then the driver narrows in rule-7 order. */
        struct quorum_view q;
        const char *down[FSM_MEMBERS_MAX];
        char value[SYNC_VALUE_MAX];
        quorum_view_of(c, v, &q, down);
        int rv = quorum_initial_value(&q, value, sizeof value, errmsg);
        if (rv != 0) {
            return rv;
        }
        log_info("%s: synchronous_standby_names = '%s' first", ha_action_name(d->action), value);
        return io->pg_set_sync(io->data, value, quorum_commit_name(v->sync_commit), errmsg);
    }
    case HA_ACT_CHECKPOINT: return io->pg_checkpoint(io->data, errmsg);
    case HA_ACT_DEMOTE: return io->pg_stop(io->data, CORE_DEMOTE_BOUND_MS, errmsg);
    case HA_ACT_CLONE: return io->pg_clone(io->data, d->target, false, errmsg);
    case HA_ACT_REINIT: return io->pg_clone(io->data, d->target, true, errmsg);
    case HA_ACT_REWIND: return io->pg_rewind(io->data, d->target, errmsg);
    case HA_ACT_FOLLOW: return io->pg_follow(io->data, d->target, errmsg);
    case HA_ACT_SYNC_SLOTS: return sync_slots(c, v->state, errmsg);
    case HA_ACT_RECORD_BOOTSTRAP:
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_SET_SYSTEM_ID;
        cmd.u.set_system_id.system_id = d->system_id;
        return io->raft_submit(io->data, &cmd, errmsg);
    case HA_ACT_RECORD_PRIMARY:
        snprintf(c->prev_primary, sizeof c->prev_primary, "%s", v->state->primary.name);
        c->prev_primary_term = v->term;
        set_primary_cmd(c, &cmd, v->term, d->timeline);
        return io->raft_submit(io->data, &cmd, errmsg);
    case HA_ACT_TRANSFER: {
        const struct fsm_member *m = fsm_state_member(v->state, d->target);
        if (m == NULL) {
            return rpg_err(errmsg, RPG_ENOTFOUND, "no member named %s", d->target);
        }
        return io->raft_transfer(io->data, m->id, errmsg);
    }
    }
    return rpg_err(errmsg, RPG_EINVAL, "unknown action %d", (int)d->action);
}

/* The quorum driver's view: the primary in its own term, observed running as primary. */
static bool quorum_applies(const struct core *c, const struct core_view *v)
{
    return v->leader && v->pg.state == HA_PG_RUNNING && !v->pg.in_recovery &&
           v->sync_configured != NULL && strcmp(v->state->primary.name, c->self) == 0 &&
           v->state->primary.term == v->term && c->io->pg_set_sync != NULL;
}

/* The quorum driver's view. down (FSM_MEMBERS_MAX entries, the caller's) gets the members whose
 * agents answer, freshly, that their server is not running: known down, they get no degrade
 * grace. */
static void quorum_view_of(const struct core *c, const struct core_view *v, struct quorum_view *q,
                           const char **down)
{
    memset(q, 0, sizeof *q);
    for (unsigned i = 0; i < v->n_peers && q->n_down < FSM_MEMBERS_MAX; i++) {
        const struct peer_status *p = &v->peers[i];
        enum ha_pg_state st = p->pg_state;
        if (p->reachable && p->has_pg && p->last_polled != 0 &&
            v->now - p->last_seen <= CORE_PEER_FRESH_MS &&
            (st == HA_PG_STOPPED || st == HA_PG_ABSENT)) {
            down[q->n_down++] = p->name;
        }
    }
    q->down = down;
    q->now = v->now;
    q->state = v->state;
    q->self = c->self;
    q->mode = v->sync_mode;
    q->k_wanted = v->sync_k;
    q->commit = v->sync_commit;
    q->configured_known = v->sync_configured != NULL;
    q->configured_value = v->sync_configured != NULL ? v->sync_configured : "";
    q->configured_commit = v->sync_commit_written != NULL ? v->sync_commit_written : "";
    q->primary_flush = v->pg.wal_position;
    q->n_replicas = v->n_replicas;
    q->replicas = v->replicas;
    q->n_nosync = v->n_nosync;
    q->nosync = v->nosync;
    q->removing = v->removing;
}

/* One step of the primary's synchronous quorum (rule 7). Returns true when it started one. */
static bool quorum_tick(struct core *c, const struct core_view *v)
{
    struct quorum_view q;
    struct quorum_decision d;
    const char *down[FSM_MEMBERS_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    quorum_view_of(c, v, &q, down);
    if (quorum_decide(&q, &c->quorum, &d, errmsg) != 0) {
        log_error("synchronous quorum: %s", errmsg);
        return false;
    }
    bool changed = d.action != c->quorum_last.action || strcmp(d.why, c->quorum_last.why) != 0;
    c->quorum_last = d;
    if (d.action == QUORUM_NONE || d.action == QUORUM_WAIT) {
        if (changed && d.action == QUORUM_WAIT) {
            log_info("synchronous quorum: waiting: %s", d.why);
        }
        return false;
    }
    if (v->now < c->retry_after) {
        return false;
    }
    int rv;
    c->busy = true;
    c->quorum_running = true;
    if (d.action == QUORUM_CONFIGURE) {
        log_info("synchronous quorum: synchronous_standby_names = '%s' synchronous_commit = %s "
                 "(%s)",
                 d.value, d.commit, d.why);
        rv = c->io->pg_set_sync(c->io->data, d.value, d.commit, errmsg);
    } else {
        if (d.action == QUORUM_RECORD) {
            log_info("synchronous quorum: recording k=%u over %u voters (%s)",
                     (unsigned)d.cmd.u.set_sync.k, d.cmd.u.set_sync.n_voters, d.why);
        }
        rv = c->io->raft_submit(c->io->data, &d.cmd, errmsg);
    }
    if (rv != 0) {
        c->busy = false;
        c->quorum_running = false;
        (void)rpg_err(c->error, 0, "synchronous quorum %s failed: %s", quorum_action_name(d.action),
                      errmsg);
        log_error("%s", c->error);
        c->retry_after = v->now + CORE_RETRY_MS;
        c->backoff = HA_ACT_WAIT; /* the driver's step, not a decision's */
        return false;
    }
    return true;
}

bool core_paused(struct core *c, const struct fsm_state *s, unsigned allowed)
{
    if (!s->initialized || !s->paused || allowed != 0) {
        return false;
    }
    memset(&c->last, 0, sizeof c->last);
    c->last.action = HA_ACT_WAIT;
    snprintf(c->last.why, sizeof c->last.why,
             "maintenance mode: the cluster is paused (raftpg ctl resume)");
    return true;
}

bool core_tick(struct core *c, const struct core_view *v)
{
    quiet_seen(c, v); /* every tick, busy or not: a run it misses a break in proves nothing */
    if (c->busy || !v->pg_ready) {
        return false;
    }
    if (v->transfers_failed != c->transfers_failed) {
        /* libraft gave the transfer up (its target never started an election) and this member
         * still leads: nothing is in flight any more, so nothing to wait for. */
        c->transfers_failed = v->transfers_failed;
        if (c->backoff == HA_ACT_TRANSFER) {
            c->retry_after = 0;
        }
    }
    if (v->leader && c->leader_since == 0) {
        c->leader_since = v->now;
    } else if (!v->leader) {
        c->leader_since = 0;
    }
    struct ha_peer peers[FSM_MEMBERS_MAX];
    struct ha_input in;
    memset(&in, 0, sizeof in);
    in.state = v->state;
    in.self = c->self;
    in.pg_address = c->pg_address;
    in.prev_primary = c->prev_primary_term == v->term ? c->prev_primary : "";
    in.last_writer = c->last_writer;
    in.leader = v->leader;
    in.leader_waiting = v->raft_leader && !v->leader;
    in.state_current = v->leader || v->state_current;
    in.term = v->term;
    in.nofailover = c->nofailover;
    in.no_pg_rewind = c->no_pg_rewind;
    in.failover_priority = c->failover_priority;
    in.pg = v->pg;
    in.peers = peers;
    in.n_peers = core_peers(c, v, peers, FSM_MEMBERS_MAX);
    in.sync_mode = v->sync_mode;
    in.max_lag_set = v->max_lag_set;
    in.max_lag = v->max_lag;
    in.lag_waived_for = v->lag_waived_for;
    in.primary_start_timeout_ms = v->primary_start_timeout_ms;
    in.leader_ms = c->leader_since != 0 ? v->now - c->leader_since : 0;
    primary_wal_seen(c, v);
    in.primary_wal = c->lag_wal;

    struct ha_decision d;
    ha_decide(&in, &d);
    c->last_changed = d.action != c->last.action || strcmp(d.why, c->last.why) != 0 ||
                      strcmp(d.target, c->last.target) != 0;
    c->last = d;
    if (d.action == HA_ACT_WAIT && quorum_applies(c, v) && quorum_tick(c, v)) {
        return true;
    }
    if (v->allowed != 0 && d.action != HA_ACT_WAIT && d.action != HA_ACT_REFUSE &&
        (v->allowed & (1u << d.action)) == 0) {
        /* Maintenance mode lets only some actions through (a failover the operator asked for,
         * the standbys' re-point to its primary): the others wait for resume. */
        if (c->last_changed) {
            log_info("maintenance mode: %s%s%s held back until resume: %s",
                     ha_action_name(d.action), d.target[0] ? " " : "", d.target, d.why);
        }
        return false;
    }
    if (d.action == HA_ACT_WAIT || d.action == HA_ACT_REFUSE) {
        if (c->last_changed) {
            if (d.action == HA_ACT_REFUSE) {
                log_error("refusing to act: %s", d.why);
            } else {
                log_info("waiting: %s", d.why);
            }
        }
        return false;
    }
    /* The backoff keeps the core from repeating what just failed (or from a new transfer before
     * the last one shows). A demotion is never held back by another action's backoff: a primary
     * that must stop writing stops now, whatever failed before it (a second promote request
     * made on an observation older than the promotion, say). Nor is a transfer: it is the way
     * out of what failed (the last failed start of a recorded primary), not a repeat of it, and
     * it backs off on its own; held, the cluster stays without a primary meanwhile. */
    bool exempt = (d.action == HA_ACT_DEMOTE || d.action == HA_ACT_TRANSFER) &&
                  c->backoff != d.action;
    if (v->now < c->retry_after && !exempt) {
        return false;
    }
    char errmsg[RPG_ERRMSG_SIZE] = "";
    log_info("%s%s%s: %s", ha_action_name(d.action), d.target[0] ? " " : "", d.target, d.why);
    c->running = d.action;
    c->step = 0;
    c->term = v->term;
    c->timeline = v->pg.timeline;
    c->state = v->state;
    c->busy = d.action != HA_ACT_TRANSFER;
    int rv = execute(c, v, &d, errmsg);
    if (rv != 0) {
        c->busy = false;
        (void)rpg_err(c->error, 0, "%s failed: %s", ha_action_name(d.action), errmsg);
        log_error("%s", c->error);
        c->retry_after = v->now + CORE_RETRY_MS;
        c->backoff = d.action;
        return false;
    }
    if (d.action == HA_ACT_TRANSFER) {
        /* The outcome shows as a new leader; try again later if none comes. */
        c->retry_after = v->now + CORE_TRANSFER_RETRY_MS;
        c->backoff = d.action;
    }
    return true;
}

void core_action_done(struct core *c, int rc, const char *msg, rpg_msec now)
{
    if (!c->busy) {
        return;
    }
    if (c->quorum_running) {
        c->busy = false;
        c->quorum_running = false;
        if (rc != 0) {
            (void)rpg_err(c->error, 0, "synchronous quorum %s failed: %s",
                          quorum_action_name(c->quorum_last.action), msg != NULL ? msg : "");
            log_error("%s", c->error);
            c->retry_after = now + CORE_RETRY_MS;
            c->backoff = HA_ACT_WAIT; /* the driver's step, not a decision's */
        } else {
            c->error[0] = '\0';
        }
        return;
    }
    if (c->running == HA_ACT_PROMOTE && c->step == 0 && rc == 0 && c->io->pg_set_sync != NULL &&
        c->io->pg_sync_slots != NULL) {
        /* The other members' slots exist before the first write, so that the standbys that
         * re-point find theirs at once (a standby may create physical slots; they survive the
         * promotion). A failure here delays nothing: the primary's own slot step comes later. */
        char errmsg[RPG_ERRMSG_SIZE];
        c->step = 1;
        if (sync_slots(c, c->state, errmsg) == 0) {
            return;
        }
        log_warning("promote: replication slots not created first: %s", errmsg);
    } else if (c->running == HA_ACT_PROMOTE && c->step == 1 && rc != 0) {
        log_warning("promote: replication slots not created first: %s", msg != NULL ? msg : "");
        rc = 0;
    }
    if (rc == 0 && (c->running == HA_ACT_PROMOTE || c->running == HA_ACT_START_PRIMARY) &&
        c->step <= 1 && c->io->pg_set_sync != NULL) {
        char errmsg[RPG_ERRMSG_SIZE];
        c->step = 2;
        rc = c->running == HA_ACT_PROMOTE
                 ? c->io->pg_promote(c->io->data, c->promote_timeline, errmsg)
                 : c->io->pg_start(c->io->data, false, "", errmsg);
        if (rc == 0) {
            return;
        }
        c->busy = false;
        (void)rpg_err(c->error, 0, "%s failed: %s", ha_action_name(c->running), errmsg);
        log_error("%s", c->error);
        c->retry_after = now + CORE_RETRY_MS;
        c->backoff = c->running;
        return;
    }
    const char *what = ha_action_name(c->running);
    if (rc == 0 && c->running == HA_ACT_RECORD_BOOTSTRAP && c->step == 0) {
        /* The system identifier is in; now "primary = me" in the same term. */
        struct fsm_cmd cmd;
        char errmsg[RPG_ERRMSG_SIZE];
        c->step = 1;
        set_primary_cmd(c, &cmd, c->term, c->timeline);
        rc = c->io->raft_submit(c->io->data, &cmd, errmsg);
        if (rc == 0) {
            return;
        }
        msg = errmsg;
        c->busy = false;
        (void)rpg_err(c->error, 0, "%s failed: %s", what, msg);
        log_error("%s", c->error);
        c->retry_after = now + CORE_RETRY_MS;
        c->backoff = c->running;
        return;
    }
    c->busy = false;
    if (rc != 0) {
        (void)rpg_err(c->error, 0, "%s failed: %s", what, msg != NULL ? msg : "");
        log_error("%s", c->error);
        c->retry_after = now + CORE_RETRY_MS;
        c->backoff = c->running;
    } else {
        c->error[0] = '\0';
        log_info("%s done", what);
    }
}
