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

int failover_check(const struct fsm_state *s, enum sync_mode sync_mode,
                   const struct failover_member *m, unsigned n, const char *candidate, char *why,
                   size_t why_size)
{
    const struct failover_member *c = find(m, n, candidate);
    if (fsm_state_member(s, candidate) == NULL || c == NULL) {
        snprintf(why, why_size, "%s is not a member of this cluster", candidate);
        return RPG_EINVAL;
    }
    if (!c->heard) {
        snprintf(why, why_size, "%s does not answer", candidate);
        return RPG_EINVAL;
    }
    if (!c->running || !c->standby) {
        snprintf(why, why_size, "%s is not a running standby", candidate);
        return RPG_EINVAL;
    }
    if (c->system_id != s->system_id) {
        snprintf(why, why_size, "%s holds data of another system", candidate);
        return RPG_EINVAL;
    }
    if (!c->promotable) {
        snprintf(why, why_size,
                 "%s may not be promoted (nofailover, priority 0, or its raft storage or state "
                 "is not sound)",
                 candidate);
        return RPG_EINVAL;
    }
    if (c->wal_position < s->wal_bound) {
        snprintf(why, why_size,
                 "%s is behind the acknowledged-WAL bound (wal position %" PRIu64 " < %" PRIu64
                 "): it lacks acknowledged commits",
                 candidate, c->wal_position, s->wal_bound);
        return RPG_EINVAL;
    }
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(s, &recorded, errmsg) != 0) {
        snprintf(why, why_size, "%s", errmsg);
        return RPG_EINVAL;
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
        return RPG_EINVAL;
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
            return RPG_EINVAL;
        }
        if (p->standby && p->promotable) {
            snprintf(why, why_size,
                     "%s is further ahead than %s (timeline %u position %" PRIu64
                     " against timeline %u position %" PRIu64 "): the leader would promote it "
                     "instead",
                     p->name, candidate, p->timeline, p->wal_position, c->timeline,
                     c->wal_position);
            return RPG_EINVAL;
        }
    }
    snprintf(why, why_size, "%s holds every acknowledged commit (timeline %u position %" PRIu64 ")",
             candidate, c->timeline, c->wal_position);
    return 0;
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

void failover_start(struct agent *a, struct http_conn *conn, const char *candidate)
{
    const struct fsm_state *s = &a->cons.state;
    const struct ha_pg *o = &a->pg.obs;
    const char *self = a->conf.name;
    char why[RPG_ERRMSG_SIZE];
    bool healthy = a->conf.has_postgresql && a->pg_open && a->pg.obs_valid &&
                   strcmp(s->primary.name, self) == 0 && o->state == HA_PG_RUNNING &&
                   !o->in_recovery;
    if (healthy) {
        if (strcmp(candidate, self) == 0) {
            snprintf(why, sizeof why, "%s is already the primary", candidate);
            answer(conn, 412, "error", why, candidate);
            return;
        }
        /* Patroni's meaning: with a healthy primary, a failover is a switchover. */
        switchover_start(a, conn, NULL, candidate);
        return;
    }
    struct failover_member m[FSM_MEMBERS_MAX];
    unsigned n = 0;
    rpg_msec now = cons_uv_clock_ms();
    for (unsigned i = 0; i < s->n_members && n < FSM_MEMBERS_MAX; i++) {
        struct failover_member *f = &m[n++];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", s->members[i].name);
        if (strcmp(f->name, self) == 0) {
            f->heard = a->conf.has_postgresql && a->pg_open && a->pg.obs_valid;
            f->running = o->state == HA_PG_RUNNING;
            f->standby = o->in_recovery;
            f->promotable = !a->conf.tags.nofailover && a->conf.tags.failover_priority > 0 &&
                            !a->cons.storage.failed && !a->cons.diverged;
            f->system_id = o->system_id;
            f->timeline = o->timeline;
            f->wal_position = o->wal_position;
            continue;
        }
        const struct peer_status *p = peers_get(&a->peers, f->name);
        if (p == NULL) {
            continue;
        }
        f->heard = p->reachable && p->has_pg && now - p->last_seen <= CORE_PEER_FRESH_MS;
        f->running = p->pg_state == HA_PG_RUNNING;
        f->standby = p->pg_in_recovery;
        f->promotable = !p->nofailover && p->failover_priority > 0 && !p->storage_failed &&
                        !p->diverged;
        f->system_id = p->pg_system_id;
        f->timeline = p->pg_timeline;
        f->wal_position = p->pg_wal_position;
    }
    struct sync_settings in_force;
    sync_settings_in_force(s, a->conf.sync.mode, a->conf.sync.node_count, a->conf.sync.commit,
                           &in_force);
    if (failover_check(s, in_force.mode, m, n, candidate, why, sizeof why) != 0) {
        log_warning("failover to %s refused: %s", candidate, why);
        answer(conn, 412, "error", why, candidate);
        return;
    }
    const struct fsm_member *target = fsm_state_member(s, candidate);
    /* The permit: in pause, only the candidate may take over and the cluster stays paused;
     * either way, maximum_lag_on_failover does not hold it back (Patroni's manual failover
     * without a leader promotes its candidate whatever its lag). Granted before the hand-over,
     * so that the candidate finds it in this member's report as soon as it leads. */
    struct failover_permit *fp = &a->failover_permit;
    snprintf(fp->to, sizeof fp->to, "%s", candidate);
    snprintf(fp->from, sizeof fp->from, "%s", self);
    fp->until = now + FAILOVER_PERMIT_MS;
    char lag_note[320] = "";
    const struct failover_member *c = NULL;
    for (unsigned i = 0; i < n && c == NULL; i++) {
        c = strcmp(m[i].name, candidate) == 0 ? &m[i] : NULL;
    }
    bool lag_set;
    uint64_t max_lag;
    sync_max_lag_in_force(s, a->conf.max_lag.set, a->conf.max_lag.bytes, &lag_set, &max_lag);
    uint64_t ref = a->core.lag_wal > s->wal_bound ? a->core.lag_wal : s->wal_bound;
    if (lag_set && c != NULL && ref > c->wal_position && ref - c->wal_position > max_lag) {
        snprintf(lag_note, sizeof lag_note,
                 "; it lags %" PRIu64 " bytes behind the last position of primary %s (%" PRIu64
                 "), more than maximum_lag_on_failover (%" PRIu64 "): promoted as asked",
                 ref - c->wal_position, s->primary.name[0] != '\0' ? s->primary.name : "(none)",
                 ref, max_lag);
    }
    if (strcmp(candidate, self) != 0) {
        char errmsg[RPG_ERRMSG_SIZE];
        if (cons_transfer(&a->cons, target->id, errmsg) != 0) {
            /* Refused: no permit stays behind for a later leadership of the candidate. */
            memset(&a->failover_permit, 0, sizeof a->failover_permit);
            answer(conn, 503, "error", errmsg, candidate);
            return;
        }
    }
    log_info("failover to %s%s: %s%s; %s", candidate, s->paused ? " in maintenance mode" : "", why,
             lag_note,
             strcmp(candidate, self) != 0 ? "raft leadership handed to it" : "it leads already");
    char msg[RPG_ERRMSG_SIZE + 480];
    snprintf(msg, sizeof msg, "%s%s; it promotes itself as leader%s (see raftpg ctl list)", why,
             lag_note, s->paused ? " within 30 s, and the cluster stays in maintenance mode" : "");
    answer(conn, 202, "message", msg, candidate);
}

bool failover_permit_held(struct agent *a)
{
    struct failover_permit *fp = &a->failover_permit;
    const char *self = a->conf.name;
    rpg_msec now = cons_uv_clock_ms();
    bool held = fp->to[0] != '\0' && strcmp(fp->to, self) == 0 && now < fp->until;
    for (unsigned i = 0; !held && a->peers_open && i < a->peers.book.n_results; i++) {
        const struct peer_status *p = &a->peers.book.results[i];
        rpg_msec age = now - p->last_seen;
        if (p->reachable && p->last_seen != 0 && age <= CORE_PEER_FRESH_MS &&
            strcmp(p->permit_to, self) == 0 && p->permit_ms_left > age) {
            snprintf(fp->to, sizeof fp->to, "%s", self);
            snprintf(fp->from, sizeof fp->from, "%s", p->name);
            fp->until = now + (p->permit_ms_left - age);
            held = true;
            log_info("%s granted a failover to this member: it may take over for %llu ms", p->name,
                     (unsigned long long)(p->permit_ms_left - age));
        }
    }
    return held;
}

unsigned failover_paused_allows(struct agent *a, const char *pause_primary)
{
    if (failover_permit_held(a)) {
        return 1u << HA_ACT_RECORD_PRIMARY | 1u << HA_ACT_PROMOTE | 1u << HA_ACT_CHECKPOINT |
               1u << HA_ACT_SYNC_SLOTS;
    }
    const struct fsm_state *s = &a->cons.state;
    if (s->primary.name[0] != '\0' && strcmp(s->primary.name, pause_primary) != 0) {
        return 1u << HA_ACT_FOLLOW;
    }
    return 0;
}
