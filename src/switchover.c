/* Switchover (switchover.h). */
#include "raftpg/switchover.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

/* ---- the agent's side ------------------------------------------------------------------------ */

static void answer(struct switchover *s, int status, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer(struct switchover *s, int status, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(s->last, sizeof s->last, "%s", msg);
    if (s->conn == NULL) {
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s}", key, msg, "from", s->m.from, "to", s->m.to);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(s->conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
    s->conn = NULL;
}

static void step(struct agent *a, enum switchover_event_kind kind, bool ok, const char *msg);

/* What the step needs of this agent now. */
static void view_of(const struct agent *a, struct switchover_view *v)
{
    const struct switchover *s = &a->switchover;
    const struct pg *pg = &a->pg;
    const struct fsm_state *st = &a->cons.state;
    memset(v, 0, sizeof *v);
    v->now = cons_uv_clock_ms();
    v->leading = a->cons.role == CONS_ROLE_LEADER;
    v->leader_ready = a->cons.leader_ready;
    v->lease_ok = a->fm.lease_ok;
    v->self_recorded = strcmp(st->primary.name, a->conf.name) == 0;
    v->pg_running = pg->obs.state == HA_PG_RUNNING;
    v->pg_in_recovery = pg->obs.in_recovery;
    v->pg_busy = pg_busy(pg);
    v->paused = st->paused;
    /* The stopped server's control file, read by an observation after the stop. */
    v->stopped_seen = pg->obs_epoch == pg->epoch && pg->obs.state == HA_PG_STOPPED &&
                      pg->controldata_valid;
    v->clean_shutdown = pg->clean_shutdown;
    v->checkpoint_lsn = pg->checkpoint_lsn;
    switchover_view_candidate(v, st, s->m.to, peers_get(&a->peers, s->m.to));
    v->hook_timeout_ms = a->conf.postgresql.callback_timeout_s * 1000ULL;
    v->transfers_failed = a->cons.n_transfers_failed;
}

static void on_stopped(struct pg *p, int rc, const char *msg, void *data);

/* Carries out what the step decided. */
static void perform(struct agent *a, const struct switchover_action *x)
{
    struct switchover *s = &a->switchover;
    if (x->phase_changed) {
        log_info("switchover %s -> %s: %s", s->m.from, s->m.to, switchover_phase_name(s->m.phase));
    }
    if (x->final_noted) {
        log_info("switchover %s -> %s: final checkpoint at %llu, waiting for %s to report it",
                 s->m.from, s->m.to, (unsigned long long)s->m.final_lsn, s->m.to);
    }
    switch (x->kind) {
    case SWITCHOVER_ACT_NONE: return;
    case SWITCHOVER_ACT_POLL: peers_poll_now(&a->peers); return;
    case SWITCHOVER_ACT_STOP:
        s->paused_stop = a->cons.state.initialized && a->cons.state.paused;
        if (pg_stop(&a->pg, SWITCHOVER_STOP_MS, on_stopped, a) != 0) {
            step(a, SWITCHOVER_EV_STOPPED, false, "another operation on postgresql is under way");
        }
        return;
    case SWITCHOVER_ACT_TRANSFER: {
        char errmsg[RPG_ERRMSG_SIZE];
        if (!x->phase_changed) {
            log_info("switchover %s -> %s: raft gave the hand-over up, handing over again",
                     s->m.from, s->m.to);
        }
        snprintf(s->handed_to, sizeof s->handed_to, "%s", s->m.to);
        s->handed_term = a->cons.term;
        struct failover_permit before = a->failover_permit;
        if (x->grant) {
            failover_permit_grant(&a->failover_permit, &x->permit);
        }
        if (cons_transfer(&a->cons, s->m.to_id, errmsg) != 0) {
            /* Refused: the grant goes back to what it was; a permit this member adopted (it
             * took over by one in this pause) is not the switchover's to drop. */
            failover_permit_grant(&a->failover_permit, &before);
            step(a, SWITCHOVER_EV_TRANSFER_FAILED, false, errmsg);
        }
        return;
    }
    case SWITCHOVER_ACT_GIVE_UP:
        /* This primary starts again as primary (its decisions resume; it is still the
         * recorded primary and, unless leadership moved, the leader). */
        log_warning("switchover %s -> %s abandoned %s: %s", s->m.from, s->m.to,
                    switchover_phase_name(x->was), x->msg);
        answer(s, x->status, "error", "switchover to %s abandoned (%s): %s", s->m.to,
               switchover_phase_name(x->was), x->msg);
        uv_timer_stop(&s->timer);
        if (s->hook_ran) {
            /* Whatever on_switchover did (a pgbouncer PAUSE) must be undone, whichever step
             * failed; a later on_start of the restarted primary does no harm. */
            s->hook_ran = false;
            if (a->callbacks_open) {
                callbacks_fire(&a->callbacks, CALLBACK_ON_SWITCHOVER_ABANDONED, "primary");
            }
        }
        return;
    case SWITCHOVER_ACT_DONE:
        log_info("switchover %s -> %s done in %llu ms", s->m.from, s->m.to,
                 (unsigned long long)(cons_uv_clock_ms() - s->m.started_ms));
        answer(s, x->status, "message", "%s", x->msg);
        s->hook_ran = false;
        uv_timer_stop(&s->timer);
        return;
    case SWITCHOVER_ACT_MOVED:
        answer(s, x->status, "error", "%s", x->msg);
        /* Not abandoned: whoever runs as primary next fires on_start or on_role_change. */
        s->hook_ran = false;
        uv_timer_stop(&s->timer);
        return;
    }
}

/* One step of the switchover on event kind, carried out. */
static void step(struct agent *a, enum switchover_event_kind kind, bool ok, const char *msg)
{
    struct switchover_view v;
    view_of(a, &v);
    struct switchover_event e = {.kind = kind, .ok = ok, .msg = msg};
    struct switchover_action x;
    switchover_step(&a->switchover.m, &v, &e, &x);
    perform(a, &x);
}

static void on_stopped(struct pg *p, int rc, const char *msg, void *data)
{
    (void)p;
    step(data, SWITCHOVER_EV_STOPPED, rc == 0, msg);
}

static void on_hook_done(void *data, bool ok, const char *what)
{
    step(data, SWITCHOVER_EV_HOOK_DONE, ok, what);
}

/* A member's report came in: a candidate catching up is looked at at once, not at the next tick
 * (clients wait through this phase). */
void switchover_on_report(struct agent *a)
{
    if (a->switchover.m.phase == SWITCHOVER_CATCHUP) {
        step(a, SWITCHOVER_EV_REPORT, true, NULL);
    }
}

static void tick(uv_timer_t *t)
{
    struct agent *a = t->data;
    if (a->switchover.m.phase == SWITCHOVER_IDLE) {
        uv_timer_stop(t);
        return;
    }
    step(a, SWITCHOVER_EV_TICK, true, NULL);
}

/* Checks that a switchover from leader (NULL: this primary) to candidate (NULL: the best) may
 * start now; the candidate chosen goes to chosen. Returns 0, or the HTTP status of the refusal
 * with the reason in why. */
static int prepare(struct agent *a, const char *leader, const char *candidate, bool scheduled,
                   char *chosen, size_t chosen_size, char *why, size_t why_size)
{
    const struct fsm_state *st = &a->cons.state;
    const struct ha_pg *o = &a->pg.obs;
    struct switchover_self self = {.name = a->conf.name,
                                   .connect_address = a->conf.postgresql.connect_address,
                                   .timeline = o->timeline,
                                   .system_id = st->system_id};
    struct switchover_peer peers[FSM_MEMBERS_MAX];
    unsigned n = 0;
    rpg_msec now = cons_uv_clock_ms();
    for (unsigned i = 0; i < st->n_members && n < FSM_MEMBERS_MAX; i++) {
        const struct fsm_member *m = &st->members[i];
        if (strcmp(m->name, a->conf.name) == 0) {
            continue;
        }
        struct switchover_peer *sp = &peers[n++];
        switchover_peer_of(&self, m, peers_get(&a->peers, m->name), now, sp);
        sp->leaving = strcmp(a->removing, m->name) == 0;
        /* The flush position the primary saw in the observation that gave o->wal_position; a
         * walsender that has had no reply yet shows none. */
        for (unsigned r = 0; r < a->pg.n_replicas && r < FSM_MEMBERS_MAX; r++) {
            if (strcmp(a->pg.replicas[r].name, m->name) == 0 &&
                a->pg.replicas[r].flush_position > 0) {
                sp->seen_by_primary = true;
                sp->flush_position = a->pg.replicas[r].flush_position;
            }
        }
    }
    bool lag_set;
    struct switchover_limit limit = {.primary = a->conf.name, .primary_wal = o->wal_position};
    sync_max_lag_in_force(st, a->conf.max_lag.set, a->conf.max_lag.bytes, &lag_set, &limit.max_lag);
    struct sync_settings in_force;
    sync_settings_in_force(st, a->conf.sync.mode, a->conf.sync.node_count, a->conf.sync.commit,
                           &in_force);
    struct switchover_ask in = {
        .phase = a->switchover.m.phase,
        .under_way_to = a->switchover.m.to,
        .has_pg = a->conf.has_postgresql && a->pg_open,
        .state = st,
        .scheduled = scheduled,
        .self = a->conf.name,
        .leader = leader,
        .candidate = candidate,
        .leader_ready = a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready,
        .lease_ok = a->fm.lease_ok,
        .pg_running = o->state == HA_PG_RUNNING,
        .pg_in_recovery = o->in_recovery,
        .pg_busy = pg_busy(&a->pg),
        .sync_mode = in_force.mode,
        .peers = peers,
        .n_peers = n,
        .limit = lag_set ? &limit : NULL,
    };
    int status = switchover_prepare(&in, chosen, chosen_size, why, why_size);
    if (status != 0 && a->switchover.m.phase == SWITCHOVER_IDLE) {
        /* /status shows the last request's members, refused ones too. */
        snprintf(a->switchover.m.from, sizeof a->switchover.m.from, "%s", a->conf.name);
        snprintf(a->switchover.m.to, sizeof a->switchover.m.to, "%s",
                 candidate != NULL ? candidate : "");
    }
    return status;
}

static void begin(struct agent *a, struct http_conn *conn, const char *to);

void switchover_start(struct agent *a, struct http_conn *conn, const char *leader,
                      const char *candidate)
{
    char why[512], to[FSM_NAME_MAX];
    int status = prepare(a, leader, candidate, false, to, sizeof to, why, sizeof why);
    if (status != 0) {
        log_info("switchover refused: %s", why);
        json_t *o2 = json_pack("{s:s}", "error", why);
        char *body = o2 != NULL ? json_dumps(o2, JSON_COMPACT) : NULL;
        json_decref(o2);
        http_respond(conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                     body != NULL ? strlen(body) : 2);
        free(body);
        return;
    }
    begin(a, conn, to);
}

int switchover_start_scheduled(struct agent *a, const char *leader, const char *candidate,
                               char *why, size_t why_size)
{
    char to[FSM_NAME_MAX];
    int status = prepare(a, leader, candidate, true, to, sizeof to, why, why_size);
    if (status != 0) {
        snprintf(a->switchover.last, sizeof a->switchover.last, "scheduled switchover refused: %s",
                 why);
        return status;
    }
    /* No request to answer: the outcome is logged and kept for /status (answer()). */
    begin(a, NULL, to);
    return 0;
}

/* Starts the on_switchover callback, then follows the switchover's steps (tick), answering conn
 * (NULL: none). */
static void begin(struct agent *a, struct http_conn *conn, const char *to)
{
    struct switchover *s = &a->switchover;
    const struct fsm_member *target = fsm_state_member(&a->cons.state, to);
    switchover_begin(&s->m, a->conf.name, to, target != NULL ? target->id : 0, cons_uv_clock_ms());
    s->conn = conn;
    if (!s->timer_open) {
        uv_timer_init(a->loop, &s->timer);
        s->timer.data = a;
        s->timer_open = true;
    }
    uv_timer_start(&s->timer, tick, 50, 50);
    /* Logged only if a callback runs; a run that cannot start calls on_hook_done at once. */
    s->hook_ran = true;
    int rv = a->callbacks_open ? callbacks_fire_wait(&a->callbacks, CALLBACK_ON_SWITCHOVER,
                                                     "primary", on_hook_done, a)
                               : RPG_ENOTFOUND;
    if (rv == 0 && s->m.phase == SWITCHOVER_HOOK) {
        log_info("switchover %s -> %s: %s", s->m.from, s->m.to,
                 switchover_phase_name(SWITCHOVER_HOOK));
    } else if (rv == RPG_ENOTFOUND) {
        s->hook_ran = false; /* none configured */
        step(a, SWITCHOVER_EV_HOOK_NONE, true, NULL);
    } else if (rv != 0) {
        s->hook_ran = false;
        step(a, SWITCHOVER_EV_HOOK_BUSY, false, NULL);
    }
}

unsigned switchover_paused_allows(struct agent *a)
{
    const struct fsm_state *st = &a->cons.state;
    return switchover_paused_mask(&a->switchover.paused_stop, st->paused,
                                  a->pg.obs_valid && a->pg.obs.state == HA_PG_RUNNING,
                                  strcmp(st->primary.name, a->conf.name) == 0);
}

bool switchover_holds(const struct agent *a)
{
    return switchover_phase_holds(a->switchover.m.phase);
}

void switchover_close(struct agent *a, void (*cb)(uv_handle_t *h))
{
    struct switchover *s = &a->switchover;
    if (s->m.phase != SWITCHOVER_IDLE) {
        answer(s, 503, "error", "the agent is shutting down");
        s->m.phase = SWITCHOVER_IDLE;
    }
    if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_close((uv_handle_t *)&s->timer, cb);
    }
}
