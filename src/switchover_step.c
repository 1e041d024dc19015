/* The switchover's decisions (switchover_step.h). */
#include "raftpg/switchover_step.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/ha.h"
#include "raftpg/pg_state.h"

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
    if (p->leaving) {
        snprintf(why, why_size, "%s is being removed from the cluster", p->name);
    } else if (!p->reachable) {
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

void switchover_peer_of(const struct switchover_self *self, const struct fsm_member *m,
                        const struct peer_status *p, rpg_msec now, struct switchover_peer *out)
{
    memset(out, 0, sizeof *out);
    out->name = m->name;
    if (p == NULL) {
        return;
    }
    out->reachable = p->reachable && p->last_seen != 0 &&
                     now - p->last_seen <= SWITCHOVER_REPORT_FRESH_MS;
    out->running_standby = p->pg_state == HA_PG_RUNNING && p->pg_in_recovery;
    out->streams_from_us = p->pg_streaming && strcmp(p->pg_receiver, self->connect_address) == 0;
    /* On this primary's timeline already: one still crossing to it is not settled. */
    out->streams_from_us = out->streams_from_us && p->pg_timeline == self->timeline;
    out->eligible = !p->nofailover && p->failover_priority > 0 && !p->storage_failed &&
                    !p->diverged && (p->id == 0 || p->id == m->id) &&
                    p->pg_system_id == self->system_id;
    out->wal_position = p->pg_wal_position;
    out->priority = p->failover_priority;
}

/* The candidate, once leader, promotes only after hearing from |V| - k + 1 voters with their
 * servers running (rule 6): with fewer streaming now, it would wait or hand leadership back.
 * Returns 0, or 503 with why. */
static int sync_check(const struct switchover_ask *in, char *why, size_t why_size)
{
    const struct fsm_state *st = in->state;
    if (st->sync.k == 0 && in->sync_mode == SYNC_MODE_OFF) {
        return 0;
    }
    if (st->sync.k == 0) {
        /* The candidate would find nothing that proves it holds every commit and hand
         * leadership back, after the primary had stopped (rule 6). */
        snprintf(why, why_size,
                 "synchronous replication is degraded (k=0): no standby is recorded as holding "
                 "every commit, so none may take over: try again once a standby streams and is "
                 "recorded as synchronous");
        return 503;
    }
    unsigned heard = 0;
    for (unsigned v = 0; v < st->sync.n_voters; v++) {
        for (unsigned j = 0; j < in->n_peers; j++) {
            const struct switchover_peer *p = &in->peers[j];
            if (strcmp(p->name, st->sync.voters[v]) == 0 && p->reachable && p->running_standby &&
                p->streams_from_us) {
                heard++;
            }
        }
    }
    unsigned need = st->sync.n_voters - st->sync.k + 1;
    if (heard >= need) {
        return 0;
    }
    snprintf(why, why_size,
             "%u of the %u synchronous standbys stream from this primary, %u needed for a new "
             "primary to be sure it has every commit: try again once they stream",
             heard, st->sync.n_voters, need);
    return 503;
}

int switchover_prepare(const struct switchover_ask *in, char *chosen, size_t chosen_size, char *why,
                       size_t why_size)
{
    const struct fsm_state *st = in->state;
    int status = 412;
    if (in->phase != SWITCHOVER_IDLE) {
        snprintf(why, why_size, "a switchover to %s is under way (%s)", in->under_way_to,
                 switchover_phase_name(in->phase));
        status = 409;
    } else if (!in->has_pg) {
        snprintf(why, why_size, "this member manages no postgresql");
    } else if (!st->initialized) {
        snprintf(why, why_size, "the cluster state is not known yet");
        status = 503;
    } else if (st->paused && (in->scheduled || in->candidate == NULL)) {
        /* Patroni: in pause no scheduled action runs, and a switchover needs its candidate. */
        snprintf(why, why_size,
                 in->scheduled ? "the cluster is in maintenance mode: no scheduled switchover runs "
                                 "(ctl resume)"
                               : "the cluster is in maintenance mode: a switchover needs a "
                                 "candidate (--candidate), or ctl resume");
        status = in->scheduled ? 503 : 412;
    } else if (!in->leader_ready || !in->lease_ok) {
        snprintf(why, why_size, "this member is not the ready leader");
        status = 503;
    } else if (strcmp(st->primary.name, in->self) != 0 || !in->pg_running || in->pg_in_recovery ||
               in->pg_busy) {
        snprintf(why, why_size, "this member does not run as a settled primary");
        status = 503;
    } else if (in->leader != NULL && strcmp(in->leader, in->self) != 0) {
        snprintf(why, why_size, "%s is not the primary (%s is)", in->leader, in->self);
    } else {
        /* Patroni refuses a switchover to a candidate that lags more than the limit behind the
         * primary (its leader's is_failover_possible): so does raftpg, at once. */
        if (switchover_choose(in->peers, in->n_peers, in->candidate, in->limit, chosen, chosen_size,
                              why, why_size) != 0) {
            return 412;
        }
        return sync_check(in, why, why_size);
    }
    return status;
}

void switchover_view_candidate(struct switchover_view *v, const struct fsm_state *st,
                               const char *to, const struct peer_status *p)
{
    v->cand_known = p != NULL;
    v->cand_reachable = p != NULL && p->reachable;
    v->cand_wal = p != NULL ? p->pg_wal_position : 0;
    v->cand_primary = strcmp(st->primary.name, to) == 0 && p != NULL && p->reachable &&
                      p->pg_state == HA_PG_RUNNING && !p->pg_in_recovery;
    v->cand_unfit = p != NULL && p->reachable && (p->storage_failed || p->diverged);
}

/* ---- the steps ------------------------------------------------------------------------------- */

static void to_phase(struct switchover_mem *m, enum switchover_phase p, rpg_msec now,
                     struct switchover_action *out)
{
    m->phase = p;
    m->phase_ms = now;
    m->silent_ms = 0;
    out->phase_changed = true;
}

static void give_up(struct switchover_mem *m, struct switchover_action *out,
                    enum switchover_reason r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Every give-up answers 503: the request was sound, the cluster did not follow in time. */
static void give_up(struct switchover_mem *m, struct switchover_action *out,
                    enum switchover_reason r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->msg, sizeof out->msg, fmt, ap);
    va_end(ap);
    out->kind = SWITCHOVER_ACT_GIVE_UP;
    out->reason = r;
    out->status = 503;
    out->phase_changed = false;
    m->phase = SWITCHOVER_IDLE;
}

/* A candidate that says it cannot lead (its Raft storage fails, its replicated state diverged)
 * would have leadership handed to it in vain until the bound: the primary starts again now
 * (raftpg_sim --seed 40127 --nodes 5 --faults all --watchdog: 4.6 s of refused hand-overs to a
 * member whose Raft directory was read-only, then 8.1 s without a primary). */
static bool candidate_unfit(struct switchover_mem *m, const struct switchover_view *v,
                            struct switchover_action *out)
{
    if (!v->cand_unfit) {
        return false;
    }
    give_up(m, out, SWITCHOVER_REASON_CANDIDATE_UNFIT,
            "%s reports that its raft storage cannot persist or its replicated state differs "
            "from the others': it cannot take leadership",
            m->to);
    return true;
}

void switchover_begin(struct switchover_mem *m, const char *from, const char *to, uint64_t to_id,
                      rpg_msec now)
{
    memset(m, 0, sizeof *m);
    snprintf(m->from, sizeof m->from, "%s", from);
    snprintf(m->to, sizeof m->to, "%s", to);
    m->to_id = to_id;
    m->started_ms = now;
    m->phase_ms = now;
    m->phase = SWITCHOVER_HOOK;
}

/* Still the leading primary a switchover starts from (a control operation aside). */
static bool settled(const struct switchover_view *v)
{
    return v->leading && v->leader_ready && v->lease_ok && v->self_recorded && v->pg_running &&
           !v->pg_in_recovery;
}

static void hook_step(struct switchover_mem *m, const struct switchover_view *v,
                      const struct switchover_event *e, struct switchover_action *out)
{
    switch (e->kind) {
    case SWITCHOVER_EV_TICK:
        if (m->hook_ok) {
            if (!settled(v)) {
                give_up(m, out, SWITCHOVER_REASON_UNSETTLED,
                        "this member no longer runs as the settled, leading primary");
                return;
            }
            if (v->pg_busy) {
                if (v->now - m->phase_ms > SWITCHOVER_SETTLE_MS) {
                    give_up(m, out, SWITCHOVER_REASON_UNSETTLED,
                            "a control operation on the primary did not end within %d ms of the "
                            "on_switchover callback",
                            SWITCHOVER_SETTLE_MS);
                }
                return;
            }
            break;
        }
        /* The callback's own time-out ends it first; this is the backstop. */
        if (v->now - m->phase_ms > v->hook_timeout_ms + SWITCHOVER_HOOK_BACKSTOP_MS) {
            give_up(m, out, SWITCHOVER_REASON_HOOK_TIMEOUT,
                    "the on_switchover callback did not end");
        }
        return;
    case SWITCHOVER_EV_HOOK_BUSY:
        give_up(m, out, SWITCHOVER_REASON_HOOK_BUSY,
                "the on_switchover callback is already running");
        return;
    case SWITCHOVER_EV_HOOK_DONE:
        if (!e->ok) {
            give_up(m, out, SWITCHOVER_REASON_HOOK_FAILED, "the on_switchover callback failed: %s",
                    e->msg != NULL ? e->msg : "");
            return;
        }
        /* The callback took a while: stop the primary only if it still is the settled,
         * leading one. A control operation begun meanwhile (a reload for a standby that just
         * came back) is waited for: given up, the switchover failed for a 28 ms reload (raftpg_sim
         * --seed 3613 --nodes 5 --faults switchover,switchover-any,switchover-scheduled --hook). */
        if (!settled(v)) {
            give_up(m, out, SWITCHOVER_REASON_UNSETTLED,
                    "this member no longer runs as the settled, leading primary");
            return;
        }
        if (v->pg_busy) {
            m->hook_ok = true;
            m->phase_ms = v->now;
            return;
        }
        break;
    case SWITCHOVER_EV_HOOK_NONE: break;
    default: return;
    }
    /* Fast shutdown: sessions end, walsenders send the shutdown checkpoint to the standbys. */
    to_phase(m, SWITCHOVER_STOPPING, v->now, out);
    out->kind = SWITCHOVER_ACT_STOP;
}

/* The candidate's report against the final WAL position: hands Raft leadership over once the
 * candidate holds all of it, gives up past the bound. */
static void catchup_step(struct switchover_mem *m, const struct switchover_view *v,
                         const struct switchover_event *e, struct switchover_action *out)
{
    if (e->kind != SWITCHOVER_EV_TICK && e->kind != SWITCHOVER_EV_REPORT) {
        return;
    }
    /* The final WAL position comes from the stopped server's own control file, observed after
     * the stop; the candidate's from its own report. */
    if (m->final_lsn == 0 && v->stopped_seen && v->checkpoint_lsn != 0) {
        if (!v->clean_shutdown) {
            give_up(m, out, SWITCHOVER_REASON_UNCLEAN, "the primary did not shut down cleanly");
            return;
        }
        m->final_lsn = v->checkpoint_lsn;
        out->final_noted = true;
    }
    if (candidate_unfit(m, v, out)) {
        return;
    }
    if (m->final_lsn != 0 && v->cand_known && v->cand_reachable && v->cand_wal > m->final_lsn) {
        to_phase(m, SWITCHOVER_TRANSFER, v->now, out);
        out->kind = SWITCHOVER_ACT_TRANSFER;
        m->transfers_failed = v->transfers_failed;
        if (v->paused) {
            /* Maintenance mode holds every member's decisions: the candidate may take over
             * (record, promote) by the same permit as a failover in pause, granted before the
             * hand-over so that it finds it as soon as it leads. */
            out->grant = true;
            snprintf(out->permit.to, sizeof out->permit.to, "%s", m->to);
            snprintf(out->permit.from, sizeof out->permit.from, "%s", m->from);
            out->permit.until = v->now + FAILOVER_PERMIT_MS;
        }
        return;
    }
    if (v->cand_known && !v->cand_reachable) {
        m->silent_ms = m->silent_ms != 0 ? m->silent_ms : v->now;
    } else {
        m->silent_ms = 0;
    }
    if (m->silent_ms != 0 && v->now - m->silent_ms > SWITCHOVER_SILENT_MS) {
        /* Its agent crashed or its node is cut off: waiting out the bound only keeps the cluster
         * without a primary longer (raftpg_sim --seed 58684973031 --nodes 5 --faults all
         * --watchdog --keep 2,3,4: 4.2 s waited for an agent that had died). */
        give_up(m, out, SWITCHOVER_REASON_CANDIDATE_SILENT,
                "%s answered no poll for %d ms while the primary waited for it to report WAL past "
                "the final checkpoint (%" PRIu64 ")",
                m->to, SWITCHOVER_SILENT_MS, m->final_lsn);
        return;
    }
    if (v->now - m->phase_ms > SWITCHOVER_CATCHUP_MS) {
        give_up(m, out, SWITCHOVER_REASON_CATCHUP_TIMEOUT,
                "%s did not report WAL past the final checkpoint (%" PRIu64 ") within %d ms "
                "(last reported %" PRIu64 ")",
                m->to, m->final_lsn, SWITCHOVER_CATCHUP_MS, v->cand_known ? v->cand_wal : 0);
        return;
    }
    /* Clients wait through this phase: the candidate is asked again at once. */
    out->kind = e->kind == SWITCHOVER_EV_TICK ? SWITCHOVER_ACT_POLL : SWITCHOVER_ACT_NONE;
}

void switchover_step(struct switchover_mem *m, const struct switchover_view *v,
                     const struct switchover_event *e, struct switchover_action *out)
{
    memset(out, 0, sizeof *out);
    out->was = m->phase;
    rpg_msec in_phase = v->now - m->phase_ms;
    switch (m->phase) {
    case SWITCHOVER_IDLE: return;
    case SWITCHOVER_HOOK: hook_step(m, v, e, out); return;
    case SWITCHOVER_STOPPING:
        if (e->kind == SWITCHOVER_EV_STOPPED && !e->ok) {
            give_up(m, out, SWITCHOVER_REASON_STOP_FAILED, "%s",
                    e->msg != NULL ? e->msg : "the fast shutdown failed");
        } else if (e->kind == SWITCHOVER_EV_STOPPED) {
            to_phase(m, SWITCHOVER_CATCHUP, v->now, out);
        } else if (e->kind == SWITCHOVER_EV_TICK && in_phase > SWITCHOVER_STOP_BACKSTOP_MS) {
            give_up(m, out, SWITCHOVER_REASON_STOP_TIMEOUT, "the primary did not stop");
        }
        return;
    case SWITCHOVER_CATCHUP: catchup_step(m, v, e, out); return;
    case SWITCHOVER_TRANSFER:
        if (e->kind == SWITCHOVER_EV_TRANSFER_FAILED) {
            give_up(m, out, SWITCHOVER_REASON_TRANSFER_REFUSED, "%s",
                    e->msg != NULL ? e->msg : "the hand-over was refused");
        } else if (e->kind != SWITCHOVER_EV_TICK) {
            return;
        } else if (!v->leading) {
            to_phase(m, SWITCHOVER_PROMOTING, v->now, out);
        } else if (candidate_unfit(m, v, out)) {
            return;
        } else if (in_phase > SWITCHOVER_TRANSFER_MS) {
            give_up(m, out, SWITCHOVER_REASON_TRANSFER_TIMEOUT, "raft leadership did not move");
        } else if (v->transfers_failed != m->transfers_failed) {
            /* libraft gave the hand-over up (its target had not started an election: one
             * just resumed from a pause, say) and this member still leads: ask again within
             * the bound, as cons_transfer's callers do. */
            m->transfers_failed = v->transfers_failed;
            out->kind = SWITCHOVER_ACT_TRANSFER;
        }
        return;
    case SWITCHOVER_PROMOTING:
        if (e->kind != SWITCHOVER_EV_TICK) {
            return;
        }
        if (v->cand_primary) {
            out->kind = SWITCHOVER_ACT_DONE;
            out->status = 200;
            snprintf(out->msg, sizeof out->msg, "switched over from %s to %s in %" PRIu64 " ms",
                     m->from, m->to, v->now - m->started_ms);
            m->phase = SWITCHOVER_IDLE;
        } else if (in_phase > SWITCHOVER_PRIMARY_MS) {
            /* Leadership moved: the cluster decides as after any leader change. */
            out->kind = SWITCHOVER_ACT_MOVED;
            out->status = 503;
            snprintf(out->msg, sizeof out->msg,
                     "raft leadership moved to %s, which does not run as primary yet: see raftpg "
                     "ctl list",
                     m->to);
            m->phase = SWITCHOVER_IDLE;
        }
        return;
    }
}

const char *switchover_reason_name(enum switchover_reason r)
{
    switch (r) {
    case SWITCHOVER_REASON_NONE: return "none";
    case SWITCHOVER_REASON_HOOK_FAILED: return "hook failed";
    case SWITCHOVER_REASON_HOOK_BUSY: return "hook busy";
    case SWITCHOVER_REASON_HOOK_TIMEOUT: return "hook did not end";
    case SWITCHOVER_REASON_UNSETTLED: return "not the settled leading primary";
    case SWITCHOVER_REASON_STOP_FAILED: return "stop failed";
    case SWITCHOVER_REASON_STOP_TIMEOUT: return "stop did not end";
    case SWITCHOVER_REASON_UNCLEAN: return "not shut down cleanly";
    case SWITCHOVER_REASON_CATCHUP_TIMEOUT: return "candidate did not catch up";
    case SWITCHOVER_REASON_CANDIDATE_SILENT: return "candidate stopped answering";
    case SWITCHOVER_REASON_CANDIDATE_UNFIT: return "candidate cannot lead";
    case SWITCHOVER_REASON_TRANSFER_REFUSED: return "hand-over refused";
    case SWITCHOVER_REASON_TRANSFER_TIMEOUT: return "leadership did not move";
    case SWITCHOVER_REASON_N: break;
    }
    return "unknown";
}

unsigned switchover_paused_mask(bool *paused_stop, bool paused, bool pg_running, bool self_recorded)
{
    if (!*paused_stop) {
        return 0;
    }
    /* Asked of the server: once it runs, in whichever role, the operator owns it again. */
    if (!paused || pg_running) {
        *paused_stop = false;
        return 0;
    }
    if (self_recorded) {
        return 1u << HA_ACT_START_PRIMARY;
    }
    /* The rejoin pipeline (rewind checks, then a standby start); never a clone or a reinit,
     * which would remove a directory the operator may want. */
    return 1u << HA_ACT_REWIND | 1u << HA_ACT_START_STANDBY;
}

bool switchover_phase_holds(enum switchover_phase p)
{
    return p == SWITCHOVER_STOPPING || p == SWITCHOVER_CATCHUP || p == SWITCHOVER_TRANSFER;
}
