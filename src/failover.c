/* Failover to a named member (failover.h). */
#include "raftpg/failover.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"
#include "raftpg/sync.h"

static const struct failover_member *find(const struct failover_member *m, unsigned n,
                                          const char *name)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(m[i].name, name) == 0) {
            return &m[i];
        }
    }
    return NULL;
}

static bool ahead_of(const struct failover_member *p, const struct failover_member *c)
{
    return p->timeline > c->timeline ||
           (p->timeline == c->timeline && p->wal_position > c->wal_position);
}

const char *failover_reason_name(enum failover_reason r)
{
    switch (r) {
    case FAILOVER_REASON_NONE: return "none";
    case FAILOVER_REASON_NOT_MEMBER: return "not a member";
    case FAILOVER_REASON_NO_ANSWER: return "does not answer";
    case FAILOVER_REASON_NOT_STANDBY: return "not a running standby";
    case FAILOVER_REASON_OTHER_SYSTEM: return "another system";
    case FAILOVER_REASON_NOT_PROMOTABLE: return "may not be promoted";
    case FAILOVER_REASON_BEHIND_BOUND: return "behind the acknowledged-WAL bound";
    case FAILOVER_REASON_SYNC_UNPROVEN: return "synchronous voters not heard";
    case FAILOVER_REASON_VOTER_AHEAD: return "synchronous voter ahead";
    case FAILOVER_REASON_MEMBER_AHEAD: return "promotable member ahead";
    case FAILOVER_REASON_ALREADY_PRIMARY: return "already the primary";
    case FAILOVER_REASON_SWITCHOVER: return "a switchover is under way";
    case FAILOVER_REASON_N: break;
    }
    return "?";
}

int failover_refusal_status(enum failover_reason r)
{
    return r == FAILOVER_REASON_SWITCHOVER ? 409 : 412;
}

/* failover_check, with the reason in a word. */
static enum failover_reason check(const struct fsm_state *s, enum sync_mode sync_mode,
                                  const struct failover_member *m, unsigned n,
                                  const char *candidate, char *why, size_t why_size)
{
    const struct failover_member *c = find(m, n, candidate);
    if (fsm_state_member(s, candidate) == NULL || c == NULL) {
        snprintf(why, why_size, "%s is not a member of this cluster", candidate);
        return FAILOVER_REASON_NOT_MEMBER;
    }
    if (!c->heard) {
        snprintf(why, why_size, "%s does not answer", candidate);
        return FAILOVER_REASON_NO_ANSWER;
    }
    if (!c->running || !c->standby) {
        snprintf(why, why_size, "%s is not a running standby", candidate);
        return FAILOVER_REASON_NOT_STANDBY;
    }
    if (c->system_id != s->system_id) {
        snprintf(why, why_size, "%s holds data of another system", candidate);
        return FAILOVER_REASON_OTHER_SYSTEM;
    }
    if (!c->promotable) {
        snprintf(why, why_size,
                 "%s may not be promoted (nofailover, priority 0, or its raft storage or state "
                 "is not sound)",
                 candidate);
        return FAILOVER_REASON_NOT_PROMOTABLE;
    }
    if (c->wal_position < s->wal_bound) {
        snprintf(why, why_size,
                 "%s is behind the acknowledged-WAL bound (wal position %" PRIu64 " < %" PRIu64
                 "): it lacks acknowledged commits",
                 candidate, c->wal_position, s->wal_bound);
        return FAILOVER_REASON_BEHIND_BOUND;
    }
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(s, &recorded, errmsg) != 0) {
        snprintf(why, why_size, "%s", errmsg);
        return FAILOVER_REASON_SYNC_UNPROVEN;
    }
    /* Rule 6: one of |V| - k + 1 heard voters holds every acknowledged commit; the candidate
     * must hold all that any heard voter holds. */
    const char *heard[FSM_MEMBERS_MAX];
    unsigned n_heard = 0;
    for (unsigned i = 0; i < n && n_heard < FSM_MEMBERS_MAX; i++) {
        if (m[i].heard && m[i].running) {
            heard[n_heard++] = m[i].name;
        }
    }
    char quorum_why[RPG_ERRMSG_SIZE] = "";
    if (!sync_candidate_ok(&recorded, heard, n_heard, quorum_why, sizeof quorum_why) &&
        !(recorded.k == 0 && sync_mode == SYNC_MODE_OFF)) {
        snprintf(why, why_size, "cannot tell whether %s holds every acknowledged commit: %s",
                 candidate, quorum_why);
        return FAILOVER_REASON_SYNC_UNPROVEN;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct failover_member *p = &m[i];
        if (p == c || !p->heard || !p->running || p->system_id != s->system_id || !ahead_of(p, c)) {
            continue;
        }
        if (sync_set_contains(&recorded, p->name)) {
            snprintf(why, why_size,
                     "synchronous voter %s is ahead of %s (timeline %u position %" PRIu64
                     " against timeline %u position %" PRIu64
                     "): %s lacks WAL that may hold acknowledged commits",
                     p->name, candidate, p->timeline, p->wal_position, c->timeline, c->wal_position,
                     candidate);
            return FAILOVER_REASON_VOTER_AHEAD;
        }
        if (p->standby && p->promotable) {
            snprintf(why, why_size,
                     "%s is further ahead than %s (timeline %u position %" PRIu64
                     " against timeline %u position %" PRIu64 "): the leader would promote it "
                     "instead",
                     p->name, candidate, p->timeline, p->wal_position, c->timeline,
                     c->wal_position);
            return FAILOVER_REASON_MEMBER_AHEAD;
        }
    }
    snprintf(why, why_size, "%s holds every acknowledged commit (timeline %u position %" PRIu64 ")",
             candidate, c->timeline, c->wal_position);
    return FAILOVER_REASON_NONE;
}

int failover_check(const struct fsm_state *s, enum sync_mode sync_mode,
                   const struct failover_member *m, unsigned n, const char *candidate, char *why,
                   size_t why_size)
{
    return check(s, sync_mode, m, n, candidate, why, why_size) == FAILOVER_REASON_NONE ? 0
                                                                                       : RPG_EINVAL;
}

static void answer(struct http_conn *conn, int status, const char *key, const char *msg,
                   const char *candidate)
{
    json_t *o = json_pack("{s:s, s:s}", key, msg, "candidate", candidate);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
}

void failover_decide(const struct failover_input *in, struct failover_plan *out)
{
    const struct fsm_state *s = in->state;
    const struct ha_pg *o = in->pg;
    const char *self = in->self;
    const char *candidate = in->candidate;
    memset(out, 0, sizeof *out);
    if (in->switchover_phase != NULL) {
        /* Its primary stops on purpose: a failover now would race the switchover's own
         * hand-over. */
        out->verdict = FAILOVER_REFUSED;
        out->reason = FAILOVER_REASON_SWITCHOVER;
        snprintf(out->why, sizeof out->why, "a switchover to %s is under way (%s)",
                 in->switchover_to != NULL ? in->switchover_to : "?", in->switchover_phase);
        return;
    }
    bool healthy = in->pg_observed && strcmp(s->primary.name, self) == 0 &&
                   o->state == HA_PG_RUNNING && !o->in_recovery;
    if (healthy) {
        if (strcmp(candidate, self) == 0) {
            out->verdict = FAILOVER_REFUSED;
            out->reason = FAILOVER_REASON_ALREADY_PRIMARY;
            snprintf(out->why, sizeof out->why, "%s is already the primary", candidate);
            return;
        }
        /* Patroni's meaning: with a healthy primary, a failover is a switchover. */
        out->verdict = FAILOVER_SWITCHOVER;
        return;
    }
    struct failover_member m[FSM_MEMBERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_members && n < FSM_MEMBERS_MAX; i++) {
        struct failover_member *f = &m[n++];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", s->members[i].name);
        if (strcmp(f->name, self) == 0) {
            f->heard = in->pg_observed;
            f->running = o->state == HA_PG_RUNNING;
            f->standby = o->in_recovery;
            f->promotable = in->promotable;
            f->system_id = o->system_id;
            f->timeline = o->timeline;
            f->wal_position = o->wal_position;
            continue;
        }
        const struct peer_status *p = in->book != NULL ? peer_book_get(in->book, f->name) : NULL;
        if (p == NULL) {
            continue;
        }
        f->heard = p->reachable && p->has_pg && in->now - p->last_seen <= CORE_PEER_FRESH_MS;
        f->running = p->pg_state == HA_PG_RUNNING;
        f->standby = p->pg_in_recovery;
        f->promotable = !p->nofailover && p->failover_priority > 0 && !p->storage_failed &&
                        !p->diverged;
        f->system_id = p->pg_system_id;
        f->timeline = p->pg_timeline;
        f->wal_position = p->pg_wal_position;
    }
    struct sync_settings in_force;
    sync_settings_in_force(s, in->sync_mode, in->sync_node_count, in->sync_commit, &in_force);
    out->reason = check(s, in_force.mode, m, n, candidate, out->why, sizeof out->why);
    if (out->reason != FAILOVER_REASON_NONE) {
        out->verdict = FAILOVER_REFUSED;
        return;
    }
    out->verdict = FAILOVER_GRANTED;
    /* The permit: in pause, only the candidate may take over and the cluster stays paused;
     * either way, maximum_lag_on_failover does not hold it back (Patroni's manual failover
     * without a leader promotes its candidate whatever its lag). Granted before the hand-over,
     * so that the candidate finds it in this member's report as soon as it leads. */
    struct failover_permit *fp = &out->permit;
    snprintf(fp->to, sizeof fp->to, "%s", candidate);
    snprintf(fp->from, sizeof fp->from, "%s", self);
    fp->until = in->now + FAILOVER_PERMIT_MS;
    const struct failover_member *c = find(m, n, candidate);
    bool lag_set;
    uint64_t max_lag;
    sync_max_lag_in_force(s, in->max_lag_set, in->max_lag, &lag_set, &max_lag);
    uint64_t ref = in->primary_wal > s->wal_bound ? in->primary_wal : s->wal_bound;
    if (lag_set && c != NULL && ref > c->wal_position && ref - c->wal_position > max_lag) {
        snprintf(out->lag_note, sizeof out->lag_note,
                 "; it lags %" PRIu64 " bytes behind the last position of primary %s (%" PRIu64
                 "), more than maximum_lag_on_failover (%" PRIu64 "): promoted as asked",
                 ref - c->wal_position, s->primary.name[0] != '\0' ? s->primary.name : "(none)",
                 ref, max_lag);
    }
    if (strcmp(candidate, self) != 0) {
        out->transfer_to = fsm_state_member(s, candidate)->id;
    }
}

void failover_start(struct agent *a, struct http_conn *conn, const char *candidate)
{
    const struct fsm_state *s = &a->cons.state;
    const char *self = a->conf.name;
    struct failover_input in = {
        .state = s,
        .self = self,
        .candidate = candidate,
        .pg_observed = a->conf.has_postgresql && a->pg_open && a->pg.obs_valid,
        .pg = &a->pg.obs,
        .promotable = !a->conf.tags.nofailover && a->conf.tags.failover_priority > 0 &&
                      !a->cons.storage.failed && !a->cons.diverged,
        .book = &a->peers.book,
        .now = cons_uv_clock_ms(),
        .sync_mode = a->conf.sync.mode,
        .sync_node_count = a->conf.sync.node_count,
        .sync_commit = a->conf.sync.commit,
        .max_lag_set = a->conf.max_lag.set,
        .max_lag = a->conf.max_lag.bytes,
        .primary_wal = a->core.lag_wal,
        .switchover_to = a->switchover.m.to,
        .switchover_phase = a->switchover.m.phase != SWITCHOVER_IDLE
                                ? switchover_phase_name(a->switchover.m.phase)
                                : NULL,
    };
    struct failover_plan plan;
    failover_decide(&in, &plan);
    if (plan.verdict == FAILOVER_SWITCHOVER) {
        switchover_start(a, conn, NULL, candidate);
        return;
    }
    if (plan.verdict == FAILOVER_REFUSED) {
        if (plan.reason != FAILOVER_REASON_ALREADY_PRIMARY) {
            log_warning("failover to %s refused: %s", candidate, plan.why);
        }
        answer(conn, failover_refusal_status(plan.reason), "error", plan.why, candidate);
        return;
    }
    failover_permit_grant(&a->failover_permit, &plan.permit);
    if (plan.transfer_to != 0) {
        char errmsg[RPG_ERRMSG_SIZE];
        if (cons_transfer(&a->cons, plan.transfer_to, errmsg) != 0) {
            /* Refused: no permit stays behind for a later leadership of the candidate. */
            failover_permit_grant(&a->failover_permit, NULL);
            answer(conn, 503, "error", errmsg, candidate);
            return;
        }
    }
    log_info("failover to %s%s: %s%s; %s", candidate, s->paused ? " in maintenance mode" : "",
             plan.why, plan.lag_note,
             plan.transfer_to != 0 ? "raft leadership handed to it" : "it leads already");
    char msg[RPG_ERRMSG_SIZE + 480];
    snprintf(msg, sizeof msg, "%s%s; it promotes itself as leader%s (see raftpg ctl list)",
             plan.why, plan.lag_note,
             s->paused ? " within 30 s, and the cluster stays in maintenance mode" : "");
    answer(conn, 202, "message", msg, candidate);
}

void failover_permit_grant(struct failover_permit *fp, const struct failover_permit *grant)
{
    memset(fp->to, 0, sizeof fp->to);
    memset(fp->from, 0, sizeof fp->from);
    fp->until = 0;
    if (grant != NULL) {
        snprintf(fp->to, sizeof fp->to, "%s", grant->to);
        snprintf(fp->from, sizeof fp->from, "%s", grant->from);
        fp->until = grant->until;
    }
}

bool failover_permit_take(struct failover_permit *fp, const char *self,
                          const struct peer_book *book, rpg_msec now)
{
    bool held = (fp->to[0] != '\0' && strcmp(fp->to, self) == 0 && now < fp->until) ||
                (fp->held_from[0] != '\0' && now < fp->held_until);
    for (unsigned i = 0; !held && book != NULL && i < book->n_results; i++) {
        const struct peer_status *p = &book->results[i];
        rpg_msec age = now - p->last_seen;
        if (p->reachable && p->last_seen != 0 && age <= CORE_PEER_FRESH_MS &&
            strcmp(p->permit_to, self) == 0 && p->permit_ms_left > age) {
            snprintf(fp->held_from, sizeof fp->held_from, "%s", p->name);
            fp->held_until = now + (p->permit_ms_left - age);
            held = true;
            log_info("%s granted a failover to this member: it may take over for %llu ms", p->name,
                     (unsigned long long)(p->permit_ms_left - age));
        }
    }
    return held;
}

bool failover_permit_held(struct agent *a)
{
    return failover_permit_take(&a->failover_permit, a->conf.name,
                                a->peers_open ? &a->peers.book : NULL, cons_uv_clock_ms());
}

unsigned failover_paused_mask(bool permit_held, const struct fsm_state *s,
                              const char *pause_primary)
{
    if (permit_held) {
        return 1u << HA_ACT_RECORD_PRIMARY | 1u << HA_ACT_PROMOTE | 1u << HA_ACT_CHECKPOINT |
               1u << HA_ACT_SYNC_SLOTS;
    }
    if (s->primary.name[0] != '\0' && strcmp(s->primary.name, pause_primary) != 0) {
        return 1u << HA_ACT_FOLLOW;
    }
    return 0;
}

unsigned failover_paused_allows(struct agent *a, const char *pause_primary)
{
    return failover_paused_mask(failover_permit_held(a), &a->cons.state, pause_primary);
}
