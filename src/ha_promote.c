/* The promotion's guards, apart from the decision that consults them (ha.c): which member is
 * furthest ahead and may be promoted (ha_choose_candidate), rule 6 (a quorum of the recorded
 * synchronous voters heard, checked again for a member further ahead just before promoting),
 * rule 4 (the recorded voters verifiably detached from the previous primary) and the timeline a
 * promotion creates. Pure: reads struct ha_input only. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/ha.h"
#include "raftpg/sync.h"

#include "ha_int.h"

const struct ha_peer *ha_peer_of(const struct ha_input *in, const char *name)
{
    for (unsigned i = 0; i < in->n_peers; i++) {
        if (strcmp(in->peers[i].name, name) == 0) {
            return &in->peers[i];
        }
    }
    return NULL;
}

/* A peer whose PostgreSQL runs as a standby of this cluster and that may be promoted. */
static bool peer_promotable(const struct ha_input *in, const struct ha_peer *p, const char **why)
{
    if (!p->reachable) {
        *why = "unreachable";
    } else if (p->nofailover || p->failover_priority <= 0) {
        *why = "tagged nofailover";
    } else if (p->start_failures >= HA_START_FAILURES_MAX) {
        *why = "postgresql fails to start";
    } else if (p->unwritable) {
        *why = "its server cannot write";
    } else if (p->identity_mismatch) {
        *why = "its agent runs under another raft id than the cluster lists";
    } else if (p->storage_failed) {
        *why = "its raft storage cannot persist";
    } else if (p->diverged) {
        *why = "its replicated state differs from the other members'";
    } else if (p->pg_state != HA_PG_RUNNING || !p->in_recovery) {
        *why = "not a running standby";
    } else if (p->system_id != in->state->system_id) {
        *why = "data of another system";
    } else if (p->wal_position < in->state->wal_bound) {
        /* The synchronous quorum confirmed WAL up to the bound: below it, acknowledged commits
         * may be missing (DESIGN.md §8). */
        *why = "behind the acknowledged-WAL bound";
    } else {
        return true;
    }
    return false;
}

/* Rule 6: before promoting, a new leader must have heard from |V| - k + 1 of the recorded
 * synchronous voters (itself included), so that one of them holds every acknowledged commit.
 * A record that proves nothing (k = 0: degraded, or never synchronous) allows a failover only in
 * mode off; otherwise the old primary alone may hold acknowledged commits. */
bool ha_sync_quorum_heard(const struct ha_input *in, char *why, size_t why_size)
{
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(in->state, &recorded, errmsg) != 0) {
        snprintf(why, why_size, "%s", errmsg);
        return false;
    }
    if (recorded.k == 0 && recorded.n == 0 && in->sync_mode == SYNC_MODE_OFF) {
        return true;
    }
    /* Heard means its WAL position is known: its server runs. A voter that answers while its
     * server is stopped (crashed, being fenced) may hold the only copy of a commit, and the
     * candidate choice passes over it: counting it would let a member without that commit be
     * promoted (raftpg_sim --seed 203 --faults watchdog). Stopped, it starts again on its own. */
    const char *heard[FSM_MEMBERS_MAX + 1];
    unsigned n = 0;
    if (in->pg.state == HA_PG_RUNNING) {
        heard[n++] = in->self;
    }
    for (unsigned i = 0; i < in->n_peers && n <= FSM_MEMBERS_MAX; i++) {
        if (in->peers[i].reachable && in->peers[i].polled &&
            in->peers[i].pg_state == HA_PG_RUNNING) {
            heard[n++] = in->peers[i].name;
        }
    }
    if (sync_candidate_ok(&recorded, heard, n, why, why_size)) {
        return true;
    }
    return recorded.k == 0 && in->sync_mode == SYNC_MODE_OFF;
}

/* A recorded synchronous voter that answered before this member became leader and whose answer
 * to a poll made since is still on its way (bounded by the poll's time-out, after which it is
 * polled and unreachable): its name, else NULL. */
const char *ha_sync_voter_pending(const struct ha_input *in)
{
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(in->state, &recorded, errmsg) != 0) {
        return NULL;
    }
    for (unsigned i = 0; i < recorded.n; i++) {
        const struct ha_peer *p = ha_peer_of(in, recorded.names[i]);
        if (p != NULL && p->reachable && !p->polled) {
            return p->name;
        }
    }
    return NULL;
}

const char *ha_choose_candidate(const struct ha_input *in, bool self_eligible, bool *wait,
                                char *why, size_t why_size)
{
    const struct fsm_state *s = in->state;
    const char *best = NULL;
    uint32_t best_tl = 0;
    uint64_t best_wal = 0;
    int best_prio = 0;
    bool best_crashing = false;
    *wait = false;
    snprintf(why, why_size, "no member can be promoted");
    if (self_eligible) {
        best = in->self;
        best_tl = in->pg.timeline;
        best_wal = in->pg.wal_position;
        best_prio = in->failover_priority;
        best_crashing = in->pg.crashes >= HA_CRASHES_MAX;
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        const char *name = s->members[i].name;
        if (strcmp(name, in->self) == 0) {
            continue;
        }
        const struct ha_peer *p = ha_peer_of(in, name);
        if (p == NULL || !p->polled) {
            /* Its WAL position could be the highest: choosing now could lose commits. */
            *wait = true;
            snprintf(why, why_size, "no report from %s yet", name);
            return NULL;
        }
        const char *reason = NULL;
        if (!peer_promotable(in, p, &reason)) {
            continue;
        }
        /* A higher timeline wins over a higher position: WAL past a fork on an older timeline
         * is history the newer primary never had. Among members as far ahead, one whose server
         * keeps crashing comes last: it would likely crash again as primary. */
        bool same = p->timeline == best_tl && p->wal_position == best_wal;
        bool crashing = p->crashes >= HA_CRASHES_MAX;
        bool same_health = crashing == best_crashing;
        bool better = best == NULL || p->timeline > best_tl ||
                      (p->timeline == best_tl && p->wal_position > best_wal) ||
                      (same && !crashing && best_crashing) ||
                      (same && same_health && p->failover_priority > best_prio) ||
                      (same && same_health && p->failover_priority == best_prio &&
                       best != in->self && strcmp(name, best) < 0);
        if (better) {
            best = name;
            best_tl = p->timeline;
            best_wal = p->wal_position;
            best_prio = p->failover_priority;
            best_crashing = crashing;
        }
    }
    if (best == NULL) {
        return NULL;
    }
    /* Rule 6 counts every running voter heard, promotable or not, and one of them holds every
     * acknowledged commit. A recorded synchronous voter ahead of the member chosen that cannot
     * be promoted itself (its Raft storage fails, it cannot write, ...) may hold commits no other
     * member has: promoting one behind it would lose them (raftpg_sim --seed 968316409756
     * --nodes 3 --faults all --watchdog: a voter whose Raft directory was full held 8). */
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(s, &recorded, errmsg) == 0) {
        for (unsigned i = 0; i < in->n_peers; i++) {
            const struct ha_peer *p = &in->peers[i];
            const char *reason = NULL;
            bool ahead = p->timeline > best_tl ||
                         (p->timeline == best_tl && p->wal_position > best_wal);
            if (!p->reachable || !p->polled || p->pg_state != HA_PG_RUNNING || !p->in_recovery ||
                p->system_id != s->system_id || !ahead || !sync_set_contains(&recorded, p->name) ||
                peer_promotable(in, p, &reason)) {
                continue;
            }
            *wait = true;
            snprintf(why, why_size,
                     "synchronous voter %s is further ahead (timeline %u, wal position %" PRIu64
                     ") than %s but cannot be promoted (%s): promoting a member behind it could "
                     "lose acknowledged commits",
                     p->name, p->timeline, p->wal_position, best, reason);
            return NULL;
        }
    }
    /* maximum_lag_on_failover only holds a failover back, after rule 6: the member chosen is
     * the furthest ahead, so when it lags too far every other member does too. */
    uint64_t ref = in->primary_wal > s->wal_bound ? in->primary_wal : s->wal_bound;
    bool waived = in->lag_waived_for != NULL && strcmp(in->lag_waived_for, best) == 0;
    if (in->max_lag_set && !waived && ref > best_wal && ref - best_wal > in->max_lag) {
        *wait = true;
        snprintf(why, why_size,
                 "%s, the member furthest ahead, lags %" PRIu64 " bytes behind the last position "
                 "of primary %s (%" PRIu64 "), more than maximum_lag_on_failover (%" PRIu64
                 "): not promoted",
                 best, ref - best_wal, s->primary.name[0] != '\0' ? s->primary.name : "(none)", ref,
                 in->max_lag);
        return NULL;
    }
    snprintf(why, why_size,
             "%s is furthest ahead (timeline %u, wal position %" PRIu64 ", priority %d)", best,
             best_tl, best_wal, best_prio);
    return best;
}

/* The timeline a promotion of this member creates: past its own and past every one recorded so
 * far. A recorded primary may have written on its timeline and been lost before anyone else saw
 * that timeline's history; PostgreSQL tells histories apart by timeline ids only, so the id must
 * not come again (pg.c reserves the ids in between before it promotes). */
uint32_t ha_next_timeline(const struct ha_input *in)
{
    uint32_t tl = in->pg.timeline;
    if (in->state->primary.timeline > tl) {
        tl = in->state->primary.timeline;
    }
    return tl + 1;
}

/* Whether the server at address addr verifiably accepts no writes: a member reporting it as a
 * standby (a cascading upstream passes no acknowledgement on to a primary). */
static bool address_of_standby(const struct ha_input *in, const char *addr)
{
    for (unsigned i = 0; i < in->n_peers; i++) {
        const struct ha_peer *q = &in->peers[i];
        if (q->pg_address[0] != '\0' && strcmp(q->pg_address, addr) == 0) {
            return q->reachable && q->polled && q->pg_state == HA_PG_RUNNING && q->in_recovery;
        }
    }
    return false;
}

/* Whether peer p verifiably cannot acknowledge another primary's commits (rule 4): its server is
 * stopped, or runs without a WAL receiver, or its receiver streams from self_addr or from a
 * standby, as the PostgreSQL servers reported after this member became leader. What it was told
 * to follow counts for nothing. */
static bool peer_detached(const struct ha_input *in, const struct ha_peer *p, const char *self_addr,
                          char *why, size_t why_size)
{
    if (!p->reachable || !p->polled) {
        snprintf(why, why_size, "no report from %s since this member became leader", p->name);
        return false;
    }
    switch (p->pg_state) {
    case HA_PG_STOPPED:
    case HA_PG_ABSENT: return true;
    case HA_PG_STARTING:
    case HA_PG_UNKNOWN:
        snprintf(why, why_size,
                 "postgresql of %s is starting: where it will stream from is not "
                 "known",
                 p->name);
        return false;
    case HA_PG_RUNNING: break;
    }
    if (!p->in_recovery) {
        return true;
    }
    if (p->receiver[0] == '\0') {
        /* No receiver now; one starts again where primary_conninfo points, which must not be a
         * server that could still accept writes. */
        if (p->conninfo[0] == '\0' ||
            (self_addr[0] != '\0' && strcmp(p->conninfo, self_addr) == 0) ||
            address_of_standby(in, p->conninfo)) {
            return true;
        }
        snprintf(why, why_size, "the WAL receiver of %s is not running and would reconnect to %s",
                 p->name, p->conninfo);
        return false;
    }
    if ((self_addr[0] != '\0' && strcmp(p->receiver, self_addr) == 0) ||
        address_of_standby(in, p->receiver)) {
        return true;
    }
    if (strcmp(p->receiver, HA_RECEIVER_UNKNOWN) == 0) {
        snprintf(why, why_size, "the WAL receiver of %s is connecting to an unknown sender",
                 p->name);
    } else {
        snprintf(why, why_size, "the WAL receiver of %s still streams from %s", p->name,
                 p->receiver);
    }
    return false;
}

/* Whether member name verifiably accepts no writes, as its agent said since this member led. */
static bool peer_quiet(const struct ha_input *in, const char *name)
{
    const struct ha_peer *p = ha_peer_of(in, name);
    return p != NULL && p->reachable && p->polled &&
           (p->pg_state == HA_PG_STOPPED || p->pg_state == HA_PG_ABSENT ||
            (p->pg_state == HA_PG_RUNNING && p->in_recovery));
}

/* Rule 4 before a promotion: the previous primary waits for k acknowledgements from the
 * recorded voters V. Promoting is safe once at most k - 1 voters besides this member and the
 * previous primary could still send them: the others are verifiably detached. This member's own
 * receiver may stream until the promotion ends it; what it acknowledged, it holds. Returns false
 * and names the member waited for otherwise. */
bool ha_voters_detached(const struct ha_input *in, char *target, size_t target_size, char *why,
                        size_t why_size)
{
    const struct fsm_state *s = in->state;
    struct sync_set recorded;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_from_state(s, &recorded, errmsg) != 0) {
        snprintf(why, why_size, "%s", errmsg);
        return false;
    }
    if (recorded.k == 0) {
        return true; /* no commit waits for a standby: there is no second fence to hold */
    }
    /* The fence guards against the previous primary. This member, a standby now, was it; or it
     * verifiably accepts no writes (stopped, or a standby), as its agent said since. Then a voter
     * needs no detaching, but its position must be reported to a poll started after that: the
     * primary may have had it acknowledge commits until it stopped (its machine frozen with its
     * clocks and resumed: raftpg_sim --seed 603811464079 --nodes 3 --faults all --watchdog), and
     * the check for a member further ahead reads that position. */
    const char *prev = in->prev_primary != NULL ? in->prev_primary : "";
    bool prev_self = strcmp(prev, in->self) == 0;
    /* So must the last member seen running as primary, when another: a recorded primary that
     * never promoted wrote nothing, and the one before it may still write (its machine frozen:
     * raftpg_sim --seed 897523280553 --nodes 3 --faults all --watchdog --keep 0,1, where an
     * operator's failover in maintenance mode followed a take-over that had not promoted yet). */
    const char *last = in->last_writer != NULL ? in->last_writer : "";
    bool last_other = last[0] != '\0' && strcmp(last, in->self) != 0 && strcmp(last, prev) != 0;
    if (prev_self && !last_other) {
        return true;
    }
    bool old_quiet = (prev_self || (prev[0] != '\0' && peer_quiet(in, prev))) &&
                     (!last_other || peer_quiet(in, last));
    const char *named = prev_self ? last : prev;
    const char *self_addr = in->pg_address != NULL ? in->pg_address : "";
    unsigned attached = 0;
    for (unsigned i = 0; i < recorded.n; i++) {
        const char *name = recorded.names[i];
        if (strcmp(name, in->self) == 0 || strcmp(name, s->primary.name) == 0) {
            continue;
        }
        const struct ha_peer *p = ha_peer_of(in, name);
        char reason[HA_WHY_MAX];
        if (p == NULL) {
            snprintf(reason, sizeof reason, "no report from %s", name);
        } else if (old_quiet && p->after_prev_quiet) {
            continue;
        } else if (peer_detached(in, p, self_addr, reason, sizeof reason)) {
            continue;
        } else if (old_quiet) {
            snprintf(reason, sizeof reason,
                     "no report from %s since %s stopped accepting writes (it may hold commits "
                     "that primary acknowledged last)",
                     name, named);
        }
        if (attached++ == 0) {
            snprintf(target, target_size, "%s", name);
            snprintf(why, why_size, "%s", reason);
        }
    }
    return attached < recorded.k;
}

/* Rule 6 checked again just before pg_ctl promote: a promotable member that has received more WAL
 * (or a later timeline) than this one since the candidate was chosen. */
const struct ha_peer *ha_peer_ahead(const struct ha_input *in)
{
    const struct ha_peer *best = NULL;
    uint32_t tl = in->pg.timeline;
    uint64_t wal = in->pg.wal_position;
    for (unsigned i = 0; i < in->n_peers; i++) {
        const struct ha_peer *p = &in->peers[i];
        const char *reason = NULL;
        if (!p->polled || !peer_promotable(in, p, &reason)) {
            continue;
        }
        if (p->timeline > tl || (p->timeline == tl && p->wal_position > wal)) {
            best = p;
            tl = p->timeline;
            wal = p->wal_position;
        }
    }
    return best;
}

/* A member known to have received WAL past (tl, wal): this member's own server (unless skip_self)
 * or a peer, by its last report even from before this leadership (WAL only grows on a
 * timeline). Such WAL may hold commits that the previous primary acknowledged after the recorded
 * primary was recorded and before it promoted (a previous primary that went on writing: its agent
 * stopped, its machine frozen with its clocks), through standbys that had not detached yet. */
const char *ha_member_ahead_of(const struct ha_input *in, bool skip_self, uint32_t tl, uint64_t wal,
                               uint32_t *ahead_tl, uint64_t *ahead_wal)
{
    const struct ha_pg *pg = &in->pg;
    if (!skip_self && pg->state == HA_PG_RUNNING && pg->in_recovery &&
        (pg->timeline > tl || (pg->timeline == tl && pg->wal_position > wal))) {
        *ahead_tl = pg->timeline;
        *ahead_wal = pg->wal_position;
        return in->self;
    }
    for (unsigned i = 0; i < in->n_peers; i++) {
        const struct ha_peer *p = &in->peers[i];
        if (!p->reachable || p->system_id != in->state->system_id) {
            continue; /* no report with its position */
        }
        if (p->timeline > tl || (p->timeline == tl && p->wal_position > wal)) {
            *ahead_tl = p->timeline;
            *ahead_wal = p->wal_position;
            return p->name;
        }
    }
    return NULL;
}
