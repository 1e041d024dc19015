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

const char *switchover_phase_name(enum switchover_phase p)
{
    switch (p) {
    case SWITCHOVER_IDLE: return "idle";
    case SWITCHOVER_HOOK: return "running the on_switchover callback";
    case SWITCHOVER_STOPPING: return "stopping the primary";
    case SWITCHOVER_CATCHUP: return "waiting for the candidate to receive the last WAL";
    case SWITCHOVER_TRANSFER: return "handing over raft leadership";
    case SWITCHOVER_PROMOTING: return "waiting for the candidate to run as primary";
    }
    return "unknown";
}

static bool fits(const struct switchover_peer *p, const struct switchover_limit *limit, char *why,
                 size_t why_size)
{
    /* A report polled from the candidate is up to a poll and an observation older than the
     * primary's position: under heavy writes that alone would count as lag. */
    uint64_t pos = p->seen_by_primary ? p->flush_position : p->wal_position;
    uint64_t lag = limit != NULL && limit->primary_wal > pos ? limit->primary_wal - pos : 0;
    if (!p->reachable) {
        snprintf(why, why_size, "%s does not answer", p->name);
    } else if (!p->running_standby) {
        snprintf(why, why_size, "%s is not a running standby", p->name);
    } else if (!p->streams_from_us) {
        snprintf(why, why_size, "%s does not stream from this primary", p->name);
    } else if (!p->eligible) {
        snprintf(why, why_size,
                 "%s may not be promoted (nofailover, priority 0, or its raft storage, state or "
                 "identity is not sound)",
                 p->name);
    } else if (limit != NULL && lag > limit->max_lag && p->seen_by_primary) {
        snprintf(why, why_size,
                 "%s lags %" PRIu64 " bytes behind primary %s (flushed %" PRIu64
                 " when the primary was at %" PRIu64
                 "), more than maximum_lag_on_failover (%" PRIu64 ")",
                 p->name, lag, limit->primary, pos, limit->primary_wal, limit->max_lag);
    } else if (limit != NULL && lag > limit->max_lag) {
        snprintf(why, why_size,
                 "%s lags %" PRIu64 " bytes behind primary %s (wal position %" PRIu64
                 " against %" PRIu64 "), more than maximum_lag_on_failover (%" PRIu64 ")",
                 p->name, lag, limit->primary, p->wal_position, limit->primary_wal, limit->max_lag);
    } else {
        return true;
    }
    return false;
}

int switchover_choose(const struct switchover_peer *peers, unsigned n, const char *wanted,
                      const struct switchover_limit *limit, char *chosen, size_t chosen_size,
                      char *why, size_t why_size)
{
    const struct switchover_peer *best = NULL;
    /* Without wanted: the member furthest ahead that only the limit kept out, to name it. */
    const struct switchover_peer *lagging = NULL;
    for (unsigned i = 0; i < n; i++) {
        const struct switchover_peer *p = &peers[i];
        if (wanted != NULL) {
            if (strcmp(p->name, wanted) != 0) {
                continue;
            }
            if (!fits(p, limit, why, why_size)) {
                return RPG_EINVAL;
            }
            best = p;
            break;
        }
        char ignored[256];
        if (!fits(p, limit, ignored, sizeof ignored)) {
            if (fits(p, NULL, ignored, sizeof ignored) &&
                (lagging == NULL || p->wal_position > lagging->wal_position)) {
                lagging = p;
            }
            continue;
        }
        if (best == NULL || p->wal_position > best->wal_position ||
            (p->wal_position == best->wal_position &&
             (p->priority > best->priority ||
              (p->priority == best->priority && strcmp(p->name, best->name) < 0)))) {
            best = p;
        }
    }
    if (best == NULL) {
        if (wanted != NULL) {
            snprintf(why, why_size, "%s is not another member of this cluster", wanted);
            return RPG_EINVAL;
        }
        if (lagging != NULL) {
            char lag_why[256];
            (void)fits(lagging, limit, lag_why, sizeof lag_why);
            snprintf(why, why_size, "no standby can take over: the one furthest ahead, %s",
                     lag_why);
            return RPG_ENOTFOUND;
        }
        snprintf(why, why_size,
                 "no standby can take over: none streams from this primary and may "
                 "be promoted");
        return RPG_ENOTFOUND;
    }
    snprintf(chosen, chosen_size, "%s", best->name);
    return 0;
}

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
    json_t *o = json_pack("{s:s, s:s, s:s}", key, msg, "from", s->from, "to", s->to);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(s->conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
    s->conn = NULL;
}

static void set_phase(struct agent *a, enum switchover_phase p)
{
    a->switchover.phase = p;
    a->switchover.phase_ms = cons_uv_clock_ms();
    if (p != SWITCHOVER_IDLE) {
        log_info("switchover %s -> %s: %s", a->switchover.from, a->switchover.to,
                 switchover_phase_name(p));
    }
}

/* Gives up: this primary starts again as primary (its decisions resume; it is still the recorded
 * primary and, unless leadership moved, the leader). */
static void give_up(struct agent *a, int status, const char *why)
{
    struct switchover *s = &a->switchover;
    log_warning("switchover %s -> %s abandoned %s: %s", s->from, s->to,
                switchover_phase_name(s->phase), why);
    answer(s, status, "error", "switchover to %s abandoned (%s): %s", s->to,
           switchover_phase_name(s->phase), why);
    s->phase = SWITCHOVER_IDLE;
    uv_timer_stop(&s->timer);
    if (s->hook_ran) {
        /* Whatever on_switchover did (a pgbouncer PAUSE) must be undone, whichever step failed;
         * a later on_start of the restarted primary does no harm. */
        s->hook_ran = false;
        if (a->callbacks_open) {
            callbacks_fire(&a->callbacks, CALLBACK_ON_SWITCHOVER_ABANDONED, "primary");
        }
    }
}

static void on_stopped(struct pg *p, int rc, const char *msg, void *data)
{
    (void)p;
    struct agent *a = data;
    if (a->switchover.phase != SWITCHOVER_STOPPING) {
        return;
    }
    if (rc != 0) {
        give_up(a, 503, msg != NULL ? msg : "the fast shutdown failed");
        return;
    }
    set_phase(a, SWITCHOVER_CATCHUP);
}

static void stop_primary(struct agent *a)
{
    set_phase(a, SWITCHOVER_STOPPING);
    a->switchover.paused_stop = a->cons.state.initialized && a->cons.state.paused;
    /* Fast shutdown: sessions end, walsenders send the shutdown checkpoint to the standbys. */
    if (pg_stop(&a->pg, SWITCHOVER_STOP_MS, on_stopped, a) != 0) {
        give_up(a, 503, "another operation on postgresql is under way");
    }
}

/* on_switchover ended: stop the primary, if it still is the settled, leading one. */
static void on_hook_done(void *data, bool ok, const char *what)
{
    struct agent *a = data;
    struct switchover *s = &a->switchover;
    if (s->phase != SWITCHOVER_HOOK) {
        return;
    }
    if (!ok) {
        char why[RPG_ERRMSG_SIZE + 64];
        snprintf(why, sizeof why, "the on_switchover callback failed: %s", what);
        give_up(a, 503, why);
        return;
    }
    const struct ha_pg *o = &a->pg.obs;
    if (a->cons.role != CONS_ROLE_LEADER || !a->cons.leader_ready || !a->fm.lease_ok ||
        strcmp(a->cons.state.primary.name, a->conf.name) != 0 || o->state != HA_PG_RUNNING ||
        o->in_recovery || pg_busy(&a->pg)) {
        give_up(a, 503, "this member no longer runs as the settled, leading primary");
        return;
    }
    stop_primary(a);
}

/* The candidate's report against the final WAL position: hands Raft leadership over once the
 * candidate holds all of it, gives up past the bound. True when the phase ended either way. */
static bool catchup_check(struct agent *a, rpg_msec now, rpg_msec in_phase)
{
    struct switchover *s = &a->switchover;
    /* The final WAL position comes from the stopped server's own control file, observed
     * after the stop; the candidate's from its own report. */
    const struct pg *pg = &a->pg;
    if (s->final_lsn == 0 && pg->obs_epoch == pg->epoch && pg->obs.state == HA_PG_STOPPED &&
        pg->controldata_valid && pg->checkpoint_lsn != 0) {
        if (!pg->clean_shutdown) {
            give_up(a, 503, "the primary did not shut down cleanly");
            return true;
        }
        s->final_lsn = pg->checkpoint_lsn;
        log_info("switchover %s -> %s: final checkpoint at %llu, waiting for %s to report it",
                 s->from, s->to, (unsigned long long)s->final_lsn, s->to);
    }
    const struct peer_status *p = peers_get(&a->peers, s->to);
    if (s->final_lsn != 0 && p != NULL && p->reachable && p->pg_wal_position > s->final_lsn) {
        char errmsg[RPG_ERRMSG_SIZE];
        set_phase(a, SWITCHOVER_TRANSFER);
        snprintf(s->handed_to, sizeof s->handed_to, "%s", s->to);
        s->handed_term = a->cons.term;
        struct failover_permit before = a->failover_permit;
        if (a->cons.state.paused) {
            /* Maintenance mode holds every member's decisions: the candidate may take
             * over (record, promote) by the same permit as a failover in pause, granted
             * before the hand-over so that it finds it as soon as it leads. */
            struct failover_permit grant;
            memset(&grant, 0, sizeof grant);
            snprintf(grant.to, sizeof grant.to, "%s", s->to);
            snprintf(grant.from, sizeof grant.from, "%s", a->conf.name);
            grant.until = now + FAILOVER_PERMIT_MS;
            failover_permit_grant(&a->failover_permit, &grant);
        }
        if (cons_transfer(&a->cons, s->to_id, errmsg) != 0) {
            /* Refused: the grant goes back to what it was; a permit this member adopted (it
             * took over by one in this pause) is not the switchover's to drop. */
            failover_permit_grant(&a->failover_permit, &before);
            give_up(a, 503, errmsg);
        }
        return true;
    }
    if (in_phase > SWITCHOVER_CATCHUP_MS) {
        char why[160];
        snprintf(why, sizeof why,
                 "%s did not report WAL past the final checkpoint (%llu) within %d ms "
                 "(last reported %llu)",
                 s->to, (unsigned long long)s->final_lsn, SWITCHOVER_CATCHUP_MS,
                 (unsigned long long)(p != NULL ? p->pg_wal_position : 0));
        give_up(a, 503, why);
        return true;
    }
    return false;
}

/* A member's report came in: a candidate catching up is looked at at once, not at the next tick
 * (clients wait through this phase). */
void switchover_on_report(struct agent *a)
{
    struct switchover *s = &a->switchover;
    if (s->phase == SWITCHOVER_CATCHUP) {
        rpg_msec now = cons_uv_clock_ms();
        (void)catchup_check(a, now, now - s->phase_ms);
    }
}

static void tick(uv_timer_t *t)
{
    struct agent *a = t->data;
    struct switchover *s = &a->switchover;
    rpg_msec now = cons_uv_clock_ms();
    rpg_msec in_phase = now - s->phase_ms;
    switch (s->phase) {
    case SWITCHOVER_IDLE: uv_timer_stop(t); return;
    case SWITCHOVER_HOOK:
        /* The callback's own time-out ends it first; this is the backstop. */
        if (in_phase > a->conf.postgresql.callback_timeout_s * 1000ULL + 5000) {
            give_up(a, 503, "the on_switchover callback did not end");
        }
        return;
    case SWITCHOVER_STOPPING:
        if (in_phase > SWITCHOVER_STOP_MS + 5000) {
            give_up(a, 503, "the primary did not stop");
        }
        return;
    case SWITCHOVER_CATCHUP:
        if (!catchup_check(a, now, in_phase)) {
            peers_poll_now(&a->peers);
        }
        return;
    case SWITCHOVER_TRANSFER:
        if (a->cons.role != CONS_ROLE_LEADER) {
            set_phase(a, SWITCHOVER_PROMOTING);
        } else if (in_phase > SWITCHOVER_TRANSFER_MS) {
            give_up(a, 503, "raft leadership did not move");
        }
        return;
    case SWITCHOVER_PROMOTING: {
        const struct peer_status *p = peers_get(&a->peers, s->to);
        if (strcmp(a->cons.state.primary.name, s->to) == 0 && p != NULL && p->reachable &&
            p->pg_state == HA_PG_RUNNING && !p->pg_in_recovery) {
            log_info("switchover %s -> %s done in %llu ms", s->from, s->to,
                     (unsigned long long)(now - s->started_ms));
            answer(s, 200, "message", "switched over from %s to %s in %llu ms", s->from, s->to,
                   (unsigned long long)(now - s->started_ms));
            s->phase = SWITCHOVER_IDLE;
            s->hook_ran = false;
            uv_timer_stop(t);
        } else if (in_phase > SWITCHOVER_PRIMARY_MS) {
            /* Leadership moved: the cluster decides as after any leader change. */
            answer(s, 503, "error",
                   "raft leadership moved to %s, which does not run as primary yet: see raftpg "
                   "ctl list",
                   s->to);
            /* Not abandoned: whoever runs as primary next fires on_start or on_role_change. */
            s->phase = SWITCHOVER_IDLE;
            s->hook_ran = false;
            uv_timer_stop(t);
        }
        return;
    }
    }
}

static void begin(struct agent *a, struct http_conn *conn);

/* Checks that a switchover from leader (NULL: this primary) to candidate (NULL: the best) may
 * start now and fills s->from and s->to. Returns 0, or the HTTP status of the refusal with the
 * reason in why. */
static int prepare(struct agent *a, const char *leader, const char *candidate, bool scheduled,
                   char *why, size_t why_size)
{
    struct switchover *s = &a->switchover;
    const struct fsm_state *st = &a->cons.state;
    const struct ha_pg *o = &a->pg.obs;
    int status = 412;
    if (s->phase != SWITCHOVER_IDLE) {
        snprintf(why, why_size, "a switchover to %s is under way (%s)", s->to,
                 switchover_phase_name(s->phase));
        status = 409;
    } else if (!a->conf.has_postgresql || !a->pg_open) {
        snprintf(why, why_size, "this member manages no postgresql");
    } else if (!st->initialized) {
        snprintf(why, why_size, "the cluster state is not known yet");
        status = 503;
    } else if (st->paused && (scheduled || candidate == NULL)) {
        /* Patroni: in pause no scheduled action runs, and a switchover needs its candidate. */
        snprintf(why, why_size,
                 scheduled ? "the cluster is in maintenance mode: no scheduled switchover runs "
                             "(ctl resume)"
                           : "the cluster is in maintenance mode: a switchover needs a candidate "
                             "(--candidate), or ctl resume");
        status = scheduled ? 503 : 412;
    } else if (a->cons.role != CONS_ROLE_LEADER || !a->cons.leader_ready || !a->fm.lease_ok) {
        snprintf(why, why_size, "this member is not the ready leader");
        status = 503;
    } else if (strcmp(st->primary.name, a->conf.name) != 0 || o->state != HA_PG_RUNNING ||
               o->in_recovery || pg_busy(&a->pg)) {
        snprintf(why, why_size, "this member does not run as a settled primary");
        status = 503;
    } else if (leader != NULL && strcmp(leader, a->conf.name) != 0) {
        snprintf(why, why_size, "%s is not the primary (%s is)", leader, a->conf.name);
    } else {
        why[0] = '\0';
    }
    memset(s->from, 0, sizeof s->from);
    snprintf(s->from, sizeof s->from, "%s", a->conf.name);
    snprintf(s->to, sizeof s->to, "%s", candidate != NULL ? candidate : "");
    if (why[0] == '\0') {
        struct switchover_peer peers[FSM_MEMBERS_MAX];
        unsigned n = 0;
        rpg_msec now = cons_uv_clock_ms();
        for (unsigned i = 0; i < st->n_members && n < FSM_MEMBERS_MAX; i++) {
            const struct fsm_member *m = &st->members[i];
            if (strcmp(m->name, a->conf.name) == 0) {
                continue;
            }
            const struct peer_status *p = peers_get(&a->peers, m->name);
            struct switchover_peer *sp = &peers[n++];
            memset(sp, 0, sizeof *sp);
            sp->name = m->name;
            if (p == NULL) {
                continue;
            }
            sp->reachable = p->reachable && p->last_seen != 0 && now - p->last_seen <= 2000;
            sp->running_standby = p->pg_state == HA_PG_RUNNING && p->pg_in_recovery;
            sp->streams_from_us = p->pg_streaming &&
                                  strcmp(p->pg_receiver, a->conf.postgresql.connect_address) == 0;
            /* On this primary's timeline already: one still crossing to it is not settled. */
            sp->streams_from_us = sp->streams_from_us && p->pg_timeline == o->timeline;
            sp->eligible = !p->nofailover && p->failover_priority > 0 && !p->storage_failed &&
                           !p->diverged && (p->id == 0 || p->id == m->id) &&
                           p->pg_system_id == st->system_id;
            sp->wal_position = p->pg_wal_position;
            sp->priority = p->failover_priority;
            /* The flush position the primary saw in the observation that gave o->wal_position;
             * a walsender that has had no reply yet shows none. */
            for (unsigned r = 0; r < a->pg.n_replicas && r < FSM_MEMBERS_MAX; r++) {
                if (strcmp(a->pg.replicas[r].name, m->name) == 0 &&
                    a->pg.replicas[r].flush_position > 0) {
                    sp->seen_by_primary = true;
                    sp->flush_position = a->pg.replicas[r].flush_position;
                }
            }
        }
        /* Patroni refuses a switchover to a candidate that lags more than the limit behind
         * the primary (its leader's is_failover_possible): so does raftpg, at once. */
        bool lag_set;
        struct switchover_limit limit = {.primary = a->conf.name, .primary_wal = o->wal_position};
        sync_max_lag_in_force(st, a->conf.max_lag.set, a->conf.max_lag.bytes, &lag_set,
                              &limit.max_lag);
        int rv = switchover_choose(peers, n, candidate, lag_set ? &limit : NULL, s->to,
                                   sizeof s->to, why, why_size);
        if (rv != 0) {
            status = 412;
        } else if (st->sync.k > 0) {
            /* The candidate, once leader, promotes only after hearing from |V| - k + 1 voters
             * with their servers running (rule 6): with fewer streaming now, it would wait or
             * hand leadership back. */
            unsigned heard = 0;
            for (unsigned v = 0; v < st->sync.n_voters; v++) {
                for (unsigned j = 0; j < n; j++) {
                    if (strcmp(peers[j].name, st->sync.voters[v]) == 0 && peers[j].reachable &&
                        peers[j].running_standby && peers[j].streams_from_us) {
                        heard++;
                    }
                }
            }
            unsigned need = st->sync.n_voters - st->sync.k + 1;
            if (heard < need) {
                snprintf(why, why_size,
                         "%u of the %u synchronous standbys stream from this primary, %u needed "
                         "for a new primary to be sure it has every commit: try again once they "
                         "stream",
                         heard, st->sync.n_voters, need);
                status = 503;
            }
        }
    }
    return why[0] != '\0' ? status : 0;
}

void switchover_start(struct agent *a, struct http_conn *conn, const char *leader,
                      const char *candidate)
{
    char why[512];
    int status = prepare(a, leader, candidate, false, why, sizeof why);
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
    begin(a, conn);
}

int switchover_start_scheduled(struct agent *a, const char *leader, const char *candidate,
                               char *why, size_t why_size)
{
    if (prepare(a, leader, candidate, true, why, why_size) != 0) {
        snprintf(a->switchover.last, sizeof a->switchover.last, "scheduled switchover refused: %s",
                 why);
        return RPG_EINVAL;
    }
    /* No request to answer: the outcome is logged and kept for /status (answer()). */
    begin(a, NULL);
    return 0;
}

/* Stops this primary and follows the switchover's steps (tick), answering conn (NULL: none). */
static void begin(struct agent *a, struct http_conn *conn)
{
    struct switchover *s = &a->switchover;
    const struct fsm_state *st = &a->cons.state;
    const struct fsm_member *target = fsm_state_member(st, s->to);
    s->to_id = target != NULL ? target->id : 0;
    s->conn = conn;
    s->final_lsn = 0;
    s->started_ms = cons_uv_clock_ms();
    if (!s->timer_open) {
        uv_timer_init(a->loop, &s->timer);
        s->timer.data = a;
        s->timer_open = true;
    }
    uv_timer_start(&s->timer, tick, 50, 50);
    /* Logged only if a callback runs; a run that cannot start calls on_hook_done at once. */
    s->phase = SWITCHOVER_HOOK;
    s->phase_ms = cons_uv_clock_ms();
    s->hook_ran = true;
    int rv = a->callbacks_open ? callbacks_fire_wait(&a->callbacks, CALLBACK_ON_SWITCHOVER,
                                                     "primary", on_hook_done, a)
                               : RPG_ENOTFOUND;
    if (rv == 0 && s->phase == SWITCHOVER_HOOK) {
        set_phase(a, SWITCHOVER_HOOK);
    } else if (rv == RPG_ENOTFOUND) {
        s->hook_ran = false; /* none configured */
        stop_primary(a);
    } else if (rv != 0) {
        s->hook_ran = false;
        give_up(a, 503, "the on_switchover callback is already running");
    }
}

unsigned switchover_paused_allows(struct agent *a)
{
    struct switchover *s = &a->switchover;
    const struct fsm_state *st = &a->cons.state;
    if (!s->paused_stop) {
        return 0;
    }
    /* Asked of the server: once it runs, in whichever role, the operator owns it again. */
    if (!st->paused || (a->pg.obs_valid && a->pg.obs.state == HA_PG_RUNNING)) {
        s->paused_stop = false;
        return 0;
    }
    if (strcmp(st->primary.name, a->conf.name) == 0) {
        return 1u << HA_ACT_START_PRIMARY;
    }
    /* The rejoin pipeline (rewind checks, then a standby start); never a clone or a reinit,
     * which would remove a directory the operator may want. */
    return 1u << HA_ACT_REWIND | 1u << HA_ACT_START_STANDBY;
}

bool switchover_holds(const struct agent *a)
{
    enum switchover_phase p = a->switchover.phase;
    return p == SWITCHOVER_STOPPING || p == SWITCHOVER_CATCHUP || p == SWITCHOVER_TRANSFER;
}

void switchover_close(struct agent *a, void (*cb)(uv_handle_t *h))
{
    struct switchover *s = &a->switchover;
    if (s->phase != SWITCHOVER_IDLE) {
        answer(s, 503, "error", "the agent is shutting down");
        s->phase = SWITCHOVER_IDLE;
    }
    if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_close((uv_handle_t *)&s->timer, cb);
    }
}
