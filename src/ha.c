/* The HA decision (DESIGN.md): ha_decide and its bootstrap, leader and follower branches, the
 * clocks the observation is tracked by (streaming, fork, unwritable, down, crashes) and the
 * names. The promotion's guards it consults (the candidate choice, rules 6 and 4, the next
 * timeline) are in ha_promote.c, behind ha_int.h. Pure: no libuv, no libraft. Still over 900
 * lines: decide_leader and decide_follower are each one ordered list of rules, read top down. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/ha.h"

#include "ha_int.h"

const char *ha_pg_state_name(enum ha_pg_state s)
{
    switch (s) {
    case HA_PG_UNKNOWN: return "unknown";
    case HA_PG_ABSENT: return "absent";
    case HA_PG_STOPPED: return "stopped";
    case HA_PG_STARTING: return "starting";
    case HA_PG_RUNNING: return "running";
    }
    return "invalid";
}

enum ha_pg_state ha_pg_state_parse(const char *name)
{
    for (int s = HA_PG_UNKNOWN; name != NULL && s <= HA_PG_RUNNING; s++) {
        if (strcmp(name, ha_pg_state_name((enum ha_pg_state)s)) == 0) {
            return (enum ha_pg_state)s;
        }
    }
    return HA_PG_UNKNOWN;
}

const char *ha_action_name(enum ha_action a)
{
    switch (a) {
    case HA_ACT_WAIT: return "wait";
    case HA_ACT_BOOTSTRAP: return "bootstrap";
    case HA_ACT_START_PRIMARY: return "start_primary";
    case HA_ACT_RECORD_BOOTSTRAP: return "record_bootstrap";
    case HA_ACT_RECORD_PRIMARY: return "record_primary";
    case HA_ACT_PROMOTE: return "promote";
    case HA_ACT_SYNC_SLOTS: return "sync_slots";
    case HA_ACT_CHECKPOINT: return "checkpoint";
    case HA_ACT_TRANSFER: return "transfer";
    case HA_ACT_DEMOTE: return "demote";
    case HA_ACT_CLONE: return "clone";
    case HA_ACT_REINIT: return "reinit";
    case HA_ACT_REWIND: return "rewind";
    case HA_ACT_START_STANDBY: return "start_standby";
    case HA_ACT_FOLLOW: return "follow";
    case HA_ACT_REFUSE: return "refuse";
    }
    return "invalid";
}

void ha_pg_set_not_running(struct ha_pg *o, enum ha_pg_state state, rpg_msec *not_streaming_since)
{
    *not_streaming_since = 0;
    o->not_streaming_ms = 0;
    o->checkpoint_timeline = 0;
    o->state = state;
    o->in_recovery = false;
    o->streaming = false;
    o->wal_position = 0;
    o->n_slots = 0;
    o->receiver[0] = '\0';
    o->conninfo[0] = '\0';
    o->receiver_ms = 0;
    o->promoting = false;
}

void ha_pg_track_receiver(struct ha_pg *o, const char *receiver, rpg_msec *since, rpg_msec now)
{
    if (*since == 0 || strcmp(o->receiver, receiver) != 0) {
        *since = now;
        snprintf(o->receiver, sizeof o->receiver, "%s", receiver);
    }
    o->receiver_ms = now - *since;
}

void ha_pg_track_streaming(struct ha_pg *o, rpg_msec *since, rpg_msec now)
{
    if (o->streaming || !o->in_recovery) {
        *since = 0;
        o->not_streaming_ms = 0;
        return;
    }
    if (*since == 0) {
        *since = now;
    }
    o->not_streaming_ms = now - *since;
}

bool ha_pg_track_rewind_retries(struct ha_pg *o, rpg_msec *retry_at)
{
    /* A standby past a fork also looks streaming between its receiver's restarts. */
    if (o->state != HA_PG_RUNNING || !o->in_recovery || !o->streaming || o->past_fork_ms > 0 ||
        (o->rewind_retries == 0 && o->rewind_retry_ms == 0 && *retry_at == 0)) {
        return false;
    }
    o->rewind_retries = 0;
    o->rewind_retry_ms = 0;
    *retry_at = 0;
    return true;
}

void ha_pg_track_fork(struct ha_pg *o, enum ha_fork_reading r, rpg_msec *since, rpg_msec now)
{
    if (r == HA_FORK_CLEAR || !o->in_recovery) {
        *since = 0;
        o->past_fork_ms = 0;
        return;
    }
    if (r == HA_FORK_PAST && *since == 0) {
        *since = now;
    }
    o->past_fork_ms = *since != 0 ? now - *since : 0;
}

void ha_pg_track_unwritable(struct ha_pg *o, const char *why, rpg_msec *since, rpg_msec now)
{
    if (why[0] == '\0') {
        *since = 0;
        o->unwritable[0] = '\0';
        o->unwritable_ms = 0;
        return;
    }
    if (*since == 0) {
        *since = now;
    }
    snprintf(o->unwritable, sizeof o->unwritable, "%s", why);
    o->unwritable_ms = now - *since;
}

void ha_pg_track_down(struct ha_pg *o, bool counting, struct ha_down_clock *c, rpg_msec now)
{
    o->down = false;
    o->down_ms = 0;
    if (!counting) {
        c->armed = false;
        c->since = 0;
        return;
    }
    if (o->state == HA_PG_RUNNING && !o->in_recovery) {
        /* A primary that answers resets the clock. */
        c->armed = true;
        c->since = 0;
        return;
    }
    if (!c->armed) {
        /* Not seen as a primary in this leadership yet (a promotion under way): no failure to
         * recover from. */
        return;
    }
    if (c->since == 0) {
        c->since = now;
    }
    o->down = true;
    o->down_ms = now > c->since ? now - c->since : 0;
}

void ha_crash_note(struct ha_crash_log *l, rpg_msec now)
{
    l->at[l->n % HA_CRASHES_MAX] = now;
    l->n++;
}

unsigned ha_crash_count(const struct ha_crash_log *l, rpg_msec now)
{
    unsigned count = 0;
    unsigned kept = l->n < HA_CRASHES_MAX ? l->n : HA_CRASHES_MAX;
    for (unsigned i = 0; i < kept; i++) {
        /* Times come from one monotonic clock; one from the future counts as now. */
        if (l->at[i] >= now || now - l->at[i] < HA_CRASH_WINDOW_MS) {
            count++;
        }
    }
    return count;
}

void ha_slot_name(uint64_t member_id, char *buf, size_t size)
{
    snprintf(buf, size, "raftpg_%" PRIu64, member_id);
}

static void set(struct ha_decision *out, enum ha_action action, const char *target, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static void set(struct ha_decision *out, enum ha_action action, const char *target, const char *fmt,
                ...)
{
    out->action = action;
    snprintf(out->target, sizeof out->target, "%s", target != NULL ? target : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
}

static bool slots_match(const struct ha_input *in)
{
    const struct fsm_state *s = in->state;
    unsigned expected = 0;
    for (unsigned i = 0; i < s->n_members; i++) {
        if (strcmp(s->members[i].name, in->self) == 0) {
            continue;
        }
        expected++;
        char name[FSM_NAME_MAX];
        ha_slot_name(s->members[i].id, name, sizeof name);
        bool found = false;
        for (unsigned j = 0; j < in->pg.n_slots && !found; j++) {
            found = strcmp(in->pg.slots[j], name) == 0;
        }
        if (!found) {
            return false;
        }
    }
    return expected == in->pg.n_slots;
}

/* A stopped data directory whose control file cannot be read (pg_controldata failed, so no
 * system identifier): a copy cut short, as pg_basebackup sends pg_control last. It never starts;
 * only a new copy helps. */
static bool unreadable(const struct ha_pg *pg)
{
    return pg->state == HA_PG_STOPPED && pg->system_id == 0;
}

static bool self_may_promote(const struct ha_input *in)
{
    return !in->nofailover && in->failover_priority > 0 &&
           in->pg.start_failures < HA_START_FAILURES_MAX &&
           in->pg.unwritable_ms < HA_UNWRITABLE_BOUND_MS;
}

/* Whether this member is one of the recorded synchronous voters. */
static bool recorded_voter(const struct ha_input *in)
{
    for (unsigned v = 0; v < in->state->sync.n_voters; v++) {
        if (strcmp(in->state->sync.voters[v], in->self) == 0) {
            return true;
        }
    }
    return false;
}

/* Rule 6 lets no member but the recorded primary take over: the record proves nothing (k = 0
 * in quorum or strict mode) or too few of its voters are heard. Handing leadership over then
 * only moves the wait elsewhere. */
static bool sole_holder(const struct ha_input *in)
{
    char why[HA_WHY_MAX];
    return !ha_sync_quorum_heard(in, why, sizeof why);
}

/* Leadership goes to the best promotable peer, or the leader waits saying why. */
static void hand_over(const struct ha_input *in, struct ha_decision *out, const char *reason)
{
    bool wait = false;
    char why[HA_WHY_MAX];
    const char *c = ha_choose_candidate(in, false, &wait, why, sizeof why);
    if (c != NULL) {
        set(out, HA_ACT_TRANSFER, c, "%s; %s", reason, why);
    } else {
        set(out, HA_ACT_WAIT, NULL, "%s; %s", reason, why);
    }
}

/* The recorded primary in its term whose server has not been able to write for the bound: it
 * hands over when another member holds every acknowledged commit (rule 6), and says why. */
static bool unwritable_primary(const struct ha_input *in, struct ha_decision *out)
{
    const struct ha_pg *pg = &in->pg;
    if (pg->unwritable[0] == '\0' || pg->unwritable_ms < HA_UNWRITABLE_BOUND_MS) {
        return false;
    }
    char reason[HA_WHY_MAX];
    snprintf(reason, sizeof reason, "postgresql cannot write for %u s: %.200s",
             (unsigned)(pg->unwritable_ms / 1000), pg->unwritable);
    if (sole_holder(in)) {
        set(out, HA_ACT_WAIT, NULL, "%s; no other member holds every acknowledged commit", reason);
    } else {
        hand_over(in, out, reason);
    }
    return true;
}

/* The recorded primary in its term whose server keeps crashing or failing to start: leadership
 * goes to a member that may take over without losing an acknowledged commit (rule 6). With
 * none, false: restarting is then the only way back to a primary. */
static bool crashing_primary(const struct ha_input *in, struct ha_decision *out)
{
    if (in->pg.crashes < HA_CRASHES_MAX || sole_holder(in)) {
        return false;
    }
    bool wait = false;
    char why[HA_WHY_MAX];
    const char *c = ha_choose_candidate(in, false, &wait, why, sizeof why);
    if (c == NULL) {
        return false;
    }
    set(out, HA_ACT_TRANSFER, c,
        "postgresql crashed or failed to start %u times within %u s; %.180s", in->pg.crashes,
        (unsigned)(HA_CRASH_WINDOW_MS / 1000), why);
    return true;
}

/* Patroni's primary_start_timeout: the recorded primary in its term whose server has not run as a
 * primary that accepts connections for the bound (stopped, hung, stopped by a signal, in a long
 * crash recovery, up in recovery) hands leadership to a member that may take over without losing
 * an acknowledged commit (rule 6). The old side's fence stops whatever runs there before the new
 * leader promotes (rules 2-3). With no such member, false: restarting is then the only way back
 * to a primary. */
static bool down_primary(const struct ha_input *in, struct ha_decision *out)
{
    if (!in->pg.down || in->pg.down_ms < in->primary_start_timeout_ms || sole_holder(in)) {
        return false;
    }
    bool wait = false;
    char why[HA_WHY_MAX];
    const char *c = ha_choose_candidate(in, false, &wait, why, sizeof why);
    if (c == NULL) {
        return false;
    }
    set(out, HA_ACT_TRANSFER, c,
        "postgresql has not run as a primary that accepts connections for %u.%u s, "
        "primary_start_timeout is %u s; %.150s",
        (unsigned)(in->pg.down_ms / 1000), (unsigned)(in->pg.down_ms % 1000 / 100),
        (unsigned)(in->primary_start_timeout_ms / 1000), why);
    return true;
}

/* The primary's restart timed out (POST /restart timeout, Patroni's meaning): as long as a
 * member may take over without risking acknowledged commits, the server still starting is
 * stopped, then leadership is handed to that member. Otherwise false: the primary goes on
 * starting, as Patroni keeps waiting when no failover is possible. */
static bool restart_handover(const struct ha_input *in, struct ha_decision *out, bool starting)
{
    bool wait = false;
    char why[HA_WHY_MAX];
    if (sole_holder(in)) {
        return false;
    }
    const char *c = ha_choose_candidate(in, false, &wait, why, sizeof why);
    if (c == NULL) {
        return false;
    }
    if (starting) {
        set(out, HA_ACT_DEMOTE, NULL,
            "postgresql did not start within the restart's timeout: stopping it so that %s "
            "takes over",
            c);
    } else {
        set(out, HA_ACT_TRANSFER, c, "postgresql did not start within the restart's timeout; %s",
            why);
    }
    return true;
}

static bool peer_may_promote(const struct ha_peer *p)
{
    return !p->nofailover && p->failover_priority > 0 && p->start_failures < HA_START_FAILURES_MAX;
}

/* A new cluster adopts an existing data directory only where no member can show more WAL (issue:
 * storage faults, rule I2): every other member must have reported, a member with a data
 * directory must run it (read-only, as a standby of nobody) so that its end of WAL is known, and
 * the furthest one is chosen. NULL: this member may go on; otherwise *target names the member to
 * hand over to ("" to wait) and why says why. */
static bool bootstrap_must_yield(const struct ha_input *in, const char **target, char *why,
                                 size_t why_size)
{
    const struct ha_pg *pg = &in->pg;
    bool self_running = pg->state == HA_PG_RUNNING && pg->in_recovery;
    *target = "";
    for (unsigned i = 0; i < in->state->n_members; i++) {
        const char *name = in->state->members[i].name;
        if (strcmp(name, in->self) == 0) {
            continue;
        }
        const struct ha_peer *p = ha_peer_of(in, name);
        /* A recent report will do: a directory is not made in the meantime by anyone but its
         * own agent, which waits for this leader. */
        if (p == NULL || !p->reachable) {
            snprintf(why, why_size,
                     "new cluster: waiting for a report from %s (its data directory may hold "
                     "commits this one lacks)",
                     name);
            return true;
        }
        if (p->pg_state == HA_PG_ABSENT) {
            continue;
        }
        if (pg->state == HA_PG_ABSENT) {
            /* initdb here would start an empty history beside one that exists. */
            if (peer_may_promote(p)) {
                *target = p->name;
            }
            snprintf(why, why_size, "new cluster: %s has a data directory and this member none",
                     name);
            return true;
        }
        if (p->pg_state != HA_PG_RUNNING || !p->in_recovery) {
            snprintf(why, why_size, "new cluster: waiting for %s to report how far its WAL goes",
                     name);
            return true;
        }
        if (!self_running) {
            continue;
        }
        if (p->system_id != pg->system_id) {
            snprintf(why, why_size,
                     "new cluster: %s holds data of another system (%" PRIu64 ", this one %" PRIu64
                     "): move one of the two data directories aside",
                     name, p->system_id, pg->system_id);
            return true;
        }
        if (p->timeline > pg->timeline ||
            (p->timeline == pg->timeline && p->wal_position > pg->wal_position)) {
            if (peer_may_promote(p)) {
                *target = p->name;
            }
            snprintf(why, why_size,
                     "new cluster: %s is further ahead (timeline %u, wal position %" PRIu64
                     ") than this member (timeline %u, wal position %" PRIu64 ")",
                     name, p->timeline, p->wal_position, pg->timeline, pg->wal_position);
            return true;
        }
    }
    return false;
}

static void decide_bootstrap(const struct ha_input *in, struct ha_decision *out)
{
    const struct ha_pg *pg = &in->pg;
    if (!self_may_promote(in)) {
        for (unsigned i = 0; i < in->n_peers; i++) {
            const struct ha_peer *p = &in->peers[i];
            if (p->reachable && peer_may_promote(p)) {
                set(out, HA_ACT_TRANSFER, p->name,
                    "this member may not bootstrap the cluster (nofailover or failing)");
                return;
            }
        }
        set(out, HA_ACT_WAIT, NULL, "no member that may bootstrap the cluster is reachable");
        return;
    }
    if (pg->state == HA_PG_STARTING || pg->state == HA_PG_UNKNOWN) {
        set(out, HA_ACT_WAIT, NULL, "waiting for postgresql to accept connections");
        return;
    }
    if (pg->state == HA_PG_RUNNING && !pg->in_recovery && pg->system_id != 0) {
        /* Already writable (started so before this rule, or by hand): recorded as it is. */
        set(out, HA_ACT_RECORD_BOOTSTRAP, NULL, "new cluster: recording system %" PRIu64,
            pg->system_id);
        out->system_id = pg->system_id;
        out->timeline = pg->timeline;
        return;
    }
    if (unreadable(pg)) {
        set(out, HA_ACT_WAIT, NULL,
            "new cluster: the data directory's control file cannot be read (see the log)");
        return;
    }
    char why[HA_WHY_MAX];
    const char *target = "";
    if (bootstrap_must_yield(in, &target, why, sizeof why)) {
        if (target[0] != '\0') {
            set(out, HA_ACT_TRANSFER, target, "%s: handing over", why);
        } else {
            set(out, HA_ACT_WAIT, NULL, "%s", why);
        }
        return;
    }
    switch (pg->state) {
    case HA_PG_ABSENT:
        set(out, HA_ACT_BOOTSTRAP, NULL, "new cluster: initialising postgresql");
        return;
    case HA_PG_STOPPED:
        /* Read-only first: its end of WAL is compared with every other member's. */
        set(out, HA_ACT_START_STANDBY, NULL,
            "new cluster: starting the existing data directory read-only to compare its WAL");
        return;
    default: break;
    }
    if (pg->system_id == 0) {
        set(out, HA_ACT_WAIT, NULL, "waiting for the system identifier");
    } else if (pg->promoting) {
        set(out, HA_ACT_WAIT, NULL, "waiting for the promotion to complete");
    } else {
        set(out, HA_ACT_PROMOTE, NULL,
            "new cluster: the existing data directory is furthest ahead (timeline %u, wal "
            "position %" PRIu64 ")",
            pg->timeline, pg->wal_position);
    }
}

static void decide_leader(const struct ha_input *in, struct ha_decision *out)
{
    const struct fsm_state *s = in->state;
    const struct ha_pg *pg = &in->pg;
    bool recorded_me = strcmp(s->primary.name, in->self) == 0;
    bool running_primary = pg->state == HA_PG_RUNNING && !pg->in_recovery;

    if (s->system_id == 0) {
        decide_bootstrap(in, out);
        return;
    }
    if (recorded_me && s->primary.term == in->term) {
        if (pg->state != HA_PG_ABSENT &&
            (unwritable_primary(in, out) || crashing_primary(in, out) || down_primary(in, out))) {
            return;
        }
        switch (pg->state) {
        case HA_PG_RUNNING:
            if (pg->in_recovery) {
                char target[FSM_NAME_MAX] = "", why[HA_WHY_MAX] = "";
                const struct ha_peer *ahead;
                if (pg->promoting) {
                    set(out, HA_ACT_WAIT, NULL, "waiting for the promotion to complete");
                    return;
                }
                /* A standby still streaming from the previous primary would acknowledge its
                 * commits: the second fence (rule 4) holds only once enough voters detached. */
                if (!ha_voters_detached(in, target, sizeof target, why, sizeof why)) {
                    set(out, HA_ACT_WAIT, target, "waiting before promoting: %s", why);
                    return;
                }
                if ((ahead = ha_peer_ahead(in)) != NULL) {
                    set(out, HA_ACT_TRANSFER, ahead->name,
                        "%s received more WAL than this member (timeline %u position %" PRIu64
                        " against timeline %u position %" PRIu64 "): it becomes the primary",
                        ahead->name, ahead->timeline, ahead->wal_position, pg->timeline,
                        pg->wal_position);
                    return;
                }
                set(out, HA_ACT_PROMOTE, NULL, "recorded as primary in term %" PRIu64, in->term);
                out->timeline = s->primary.timeline;
            } else if (pg->timeline != 0 && pg->timeline != s->primary.timeline) {
                set(out, HA_ACT_RECORD_PRIMARY, NULL, "recording timeline %u", pg->timeline);
                out->timeline = pg->timeline;
            } else if (pg->checkpoint_timeline != 0 && pg->checkpoint_timeline < pg->timeline) {
                /* After a promotion the server checkpoints lazily; until it does, pg_rewind
                 * from here sees the old timeline and rewinds nothing. */
                set(out, HA_ACT_CHECKPOINT, NULL, "timeline %u is not checkpointed yet",
                    pg->timeline);
            } else if (!slots_match(in)) {
                set(out, HA_ACT_SYNC_SLOTS, NULL, "replication slots differ from the members");
            } else {
                set(out, HA_ACT_WAIT, NULL, "running as primary");
            }
            return;
        case HA_PG_STOPPED:
            if (pg->start_timed_out && restart_handover(in, out, false)) {
                return;
            }
            if (pg->start_failures >= HA_START_FAILURES_MAX && !sole_holder(in)) {
                hand_over(in, out, "postgresql fails to start");
            } else if (!pg->was_primary) {
                /* Recorded, but stopped before its promotion took effect: the data directory is
                 * still a standby's. Started without standby.signal it would come up as a
                 * primary on the old timeline, and a standby that had received more of that
                 * timeline would take the new writes for its own history. It starts as a standby
                 * and is promoted, to a timeline of its own. */
                set(out, HA_ACT_START_STANDBY, NULL,
                    "recorded as primary but stopped before its promotion: starting as a standby "
                    "to promote it");
            } else {
                set(out, HA_ACT_START_PRIMARY, NULL, "primary is stopped");
            }
            return;
        case HA_PG_ABSENT: hand_over(in, out, "the primary's data directory is missing"); return;
        case HA_PG_STARTING:
        case HA_PG_UNKNOWN:
            if (pg->start_timed_out && restart_handover(in, out, true)) {
                return;
            }
            set(out, HA_ACT_WAIT, NULL, "waiting for postgresql to accept connections");
            return;
        }
    }

    /* This leader must take over as primary, or hand leadership to a better member. */
    if (running_primary) {
        if (recorded_me) {
            /* Nobody was recorded as primary since this member was, so it still holds every
             * commit: it keeps the role in the new term. */
            set(out, HA_ACT_RECORD_PRIMARY, NULL, "re-elected while primary");
            out->timeline = pg->timeline;
        } else {
            set(out, HA_ACT_DEMOTE, NULL, "running as primary but %s is the recorded primary",
                s->primary.name[0] != '\0' ? s->primary.name : "no member");
        }
        return;
    }
    if (s->primary.name[0] != '\0' && !recorded_me) {
        const struct ha_peer *old = ha_peer_of(in, s->primary.name);
        if (old != NULL && old->reachable && old->pg_state == HA_PG_RUNNING && !old->in_recovery) {
            set(out, HA_ACT_WAIT, s->primary.name,
                "waiting for the previous primary %s to stop accepting writes", s->primary.name);
            return;
        }
    }
    /* Start failures do not disqualify the only member that can prove it holds every
     * acknowledged commit: nobody else may take over, so it keeps trying. */
    bool may_promote = self_may_promote(in) || (recorded_me && !in->nofailover &&
                                                in->failover_priority > 0 && sole_holder(in));
    bool usable = pg->state != HA_PG_ABSENT && !pg->rewind_failed && may_promote && !unreadable(pg);
    if (usable && pg->state == HA_PG_STOPPED) {
        /* Its WAL position is known only once it runs; it replays what it has first. Also for a
         * directory that last ran as primary, even while its pg_rewind backs off: a standby of
         * nobody, never a primary. A member on a newer timeline wins the choice below, and
         * PostgreSQL refuses to stream a timeline that forked before its end of WAL, so WAL past
         * the fork is found as a follower (past-fork, cannot-follow) and rewound then. */
        set(out, HA_ACT_START_STANDBY, NULL, "starting as a standby to learn the wal position");
        return;
    }
    const struct ha_peer *rec = recorded_me ? NULL : ha_peer_of(in, s->primary.name);
    bool rec_usable = rec != NULL && rec->reachable && rec->polled &&
                      rec->system_id == s->system_id && !rec->nofailover &&
                      rec->failover_priority > 0;
    if (!usable && !rec_usable && pg->state == HA_PG_STOPPED && !pg->rewind_failed &&
        !unreadable(pg) && pg->start_failures >= HA_START_FAILURES_MAX && recorded_voter(in)) {
        /* Failed starts keep it from being promoted, not from counting: while the recorded
         * primary cannot take over (below, it would be handed leadership back), a recorded
         * voter's WAL position may be what the synchronous quorum lacks, and nobody else can
         * supply it (raftpg_sim --seed 968969564632: the recorded primary removed, this leader
         * waited for its own report for good). The core's back-off spaces the attempts. */
        char qwhy[HA_WHY_MAX];
        if (!ha_sync_quorum_heard(in, qwhy, sizeof qwhy)) {
            set(out, HA_ACT_START_STANDBY, NULL,
                "starting as a standby so that its wal position counts as a synchronous voter's "
                "(%u failed starts: it may not be promoted)",
                pg->start_failures);
            return;
        }
    }
    if (usable && (pg->state == HA_PG_STARTING || pg->state == HA_PG_UNKNOWN)) {
        set(out, HA_ACT_WAIT, NULL, "waiting for postgresql to accept connections");
        return;
    }
    bool self_eligible = usable && pg->state == HA_PG_RUNNING && pg->in_recovery &&
                         pg->wal_position >= s->wal_bound;
    bool wait = false;
    char why[HA_WHY_MAX];
    char qwhy[HA_WHY_MAX];
    bool rec_stopped = rec_usable && rec->pg_state == HA_PG_STOPPED &&
                       rec->start_failures < HA_START_FAILURES_MAX;
    bool rec_standby = rec_usable && rec->pg_state == HA_PG_RUNNING && rec->in_recovery;
    if (!ha_sync_quorum_heard(in, qwhy, sizeof qwhy)) {
        /* Failed starts (a fence that killed a start under way counts as one) do not stop the
         * hand-back here: the recorded primary is the only member that may take over. */
        rec_stopped = rec_usable && rec->pg_state == HA_PG_STOPPED;
        /* The recorded primary holds every acknowledged commit: it acknowledged them, or was
         * recorded only once it was proven to hold them. It needs no synchronous voter to vouch
         * for it; without this, a switchover while a voter is away leaves the majority with no
         * primary for as long as that voter stays away. */
        uint32_t a_tl = 0;
        uint64_t a_wal = 0;
        const char *ahead = NULL;
        if (recorded_me && self_eligible) {
            ahead = ha_member_ahead_of(in, true, pg->timeline, pg->wal_position, &a_tl, &a_wal);
        } else if (rec_standby) {
            ahead = ha_member_ahead_of(in, false, rec->timeline, rec->wal_position, &a_tl, &a_wal);
        }
        if (ahead != NULL) {
            /* Recorded, it held every commit acknowledged until then; a member with more WAL
             * shows that the previous primary went on writing, so it may lack some since. */
            set(out, HA_ACT_WAIT, ahead,
                "cannot promote without risking acknowledged commits: %s; the recorded primary "
                "%s is behind %s (timeline %u position %" PRIu64 " against timeline %u position "
                "%" PRIu64 "), which may hold commits acknowledged after its record",
                qwhy, recorded_me ? in->self : rec->name, ahead, a_tl, a_wal,
                recorded_me ? pg->timeline : rec->timeline,
                recorded_me ? pg->wal_position : rec->wal_position);
        } else if (recorded_me && self_eligible) {
            set(out, HA_ACT_RECORD_PRIMARY, NULL,
                "taking over as primary: the recorded primary holds every acknowledged commit "
                "(%s)",
                qwhy);
            out->timeline = ha_next_timeline(in);
        } else if ((rec_stopped || rec_standby) && ha_sync_voter_pending(in) != NULL) {
            /* A leadership that just moved here (a switchover) has the answers on their way:
             * handing it straight back would undo the move. */
            set(out, HA_ACT_WAIT, NULL,
                "cannot promote yet: %s; waiting for %s's report before handing over to the "
                "recorded primary %s",
                qwhy, ha_sync_voter_pending(in), rec->name);
        } else if (rec_stopped || rec_standby) {
            /* Stopped, or started again as a standby of its own data to learn its position
             * (by a leadership it lost since): either way its data is the primary's. */
            set(out, HA_ACT_TRANSFER, rec->name,
                "cannot promote without risking acknowledged commits: %s; the recorded primary "
                "%s holds them: handing over so that it takes over again",
                qwhy, rec->name);
        } else {
            set(out, HA_ACT_WAIT, NULL, "cannot promote without risking acknowledged commits: %s",
                qwhy);
        }
        return;
    }
    const char *c = ha_choose_candidate(in, self_eligible, &wait, why, sizeof why);
    /* The timeline the chosen member will be on: its own, or once promoted the next one. */
    uint32_t chosen_tl = 0;
    if (c != NULL) {
        const struct ha_peer *p = strcmp(c, in->self) == 0 ? NULL : ha_peer_of(in, c);
        chosen_tl = p != NULL ? p->timeline : pg->timeline;
    }
    /* A choice held back only because a member has not reported yet may still find that member
     * ahead. Held back for any other reason (a synchronous voter ahead that cannot be promoted,
     * maximum_lag_on_failover), the stopped recorded primary may still start: its data holds
     * every commit it acknowledged, and no member on its timeline received WAL it did not have.
     * A leader that superseded its own rejoin (a start as a standby of nobody) with a
     * nofailover voter ahead waited for ever here (test_pg_rejoin_superseded). */
    bool reports_pending = false;
    for (unsigned i = 0; i < s->n_members && !reports_pending; i++) {
        const char *name = s->members[i].name;
        const struct ha_peer *m = strcmp(name, in->self) == 0 ? NULL : ha_peer_of(in, name);
        reports_pending = strcmp(name, in->self) != 0 && (m == NULL || !m->polled);
    }
    bool rec_startable = (!wait || !reports_pending) && rec_stopped;
    if (rec_startable && c == NULL) {
        /* The recorded primary's data holds every commit recorded so far, but stopped it is no
         * candidate, and as a follower it never starts its former primary's data on its own:
         * without this the cluster waits for ever. As leader it starts and takes over. */
        /* The hand-over first: the reason why no one else may be chosen can be long. */
        set(out, HA_ACT_TRANSFER, rec->name,
            "the recorded primary %s is stopped: handing over so that it starts again (%s)",
            rec->name, why);
    } else if (rec_startable && s->sync.k == 0 && chosen_tl < s->primary.timeline) {
        /* The recorded primary may have written on its timeline (it is recorded before the
         * promotion that creates it) and the member chosen does not know that timeline. Without
         * a synchronous record (mode off) nothing proves that member holds the commits
         * acknowledged there, and the recorded primary's data does: it starts again. With one,
         * the quorum heard proves it, and the promotion skips the recorded timeline's id
         * (ha_next_timeline): handing back only cost a transfer, a lease wait and a start
         * (raftpg_sim --seed 346450497860 --nodes 5 --faults all --watchdog). */
        set(out, HA_ACT_TRANSFER, rec->name,
            "%s is on timeline %u but the recorded primary %s is on timeline %u and stopped: "
            "handing over so that it starts again",
            c, chosen_tl, rec->name, s->primary.timeline);
    } else if (c == NULL) {
        set(out, HA_ACT_WAIT, NULL, "cannot choose a new primary: %s", why);
    } else if (strcmp(c, in->self) != 0) {
        set(out, HA_ACT_TRANSFER, c, "%s", why);
    } else {
        /* Recorded with the timeline its promotion is about to create, before it exists: a
         * primary that writes on it and dies before it could record it again must not leave the
         * next leader unaware of it (see above). */
        set(out, HA_ACT_RECORD_PRIMARY, NULL, "taking over as primary: %s", why);
        out->timeline = ha_next_timeline(in);
    }
}

static void decide_follower(const struct ha_input *in, struct ha_decision *out)
{
    const struct fsm_state *s = in->state;
    const struct ha_pg *pg = &in->pg;
    if (pg->state == HA_PG_RUNNING && !pg->in_recovery) {
        set(out, HA_ACT_DEMOTE, NULL, "running as primary but not the raft leader");
        return;
    }
    if (!in->state_current) {
        /* A node replaying its log may still see itself or a dead member as primary. */
        set(out, HA_ACT_WAIT, NULL, "waiting for the replicated state to catch up");
        return;
    }
    if (s->system_id == 0) {
        /* A data directory from before runs read-only, so that the leader can compare how far
         * its WAL goes before any member's is adopted. */
        if (pg->state == HA_PG_STOPPED && !pg->rewind_failed && !unreadable(pg)) {
            set(out, HA_ACT_START_STANDBY, NULL,
                "new cluster: starting the existing data directory read-only to compare its WAL");
        } else {
            set(out, HA_ACT_WAIT, NULL, "waiting for the leader to bootstrap the cluster");
        }
        return;
    }
    const char *primary = s->primary.name;
    if (primary[0] == '\0' || strcmp(primary, in->self) == 0) {
        /* A former primary never starts without a primary to rewind from, even when the state
         * names it: a follower's state can be older than the leader's (it may have been deposed
         * since), and its WAL may have gone past the new primary's fork point. */
        bool startable = pg->state == HA_PG_STOPPED && !pg->rewind_failed && !unreadable(pg);
        if (startable && !pg->was_primary) {
            set(out, HA_ACT_START_STANDBY, NULL, "no primary yet: starting as a standby");
        } else if (startable && primary[0] != '\0' && in->leader_waiting &&
                   s->primary.term < in->term &&
                   (self_may_promote(in) ||
                    (!in->nofailover && in->failover_priority > 0 && sole_holder(in)))) {
            /* The Raft leader's state is current: nobody was recorded as primary after this
             * member, so no newer timeline forked from its WAL. Recorded in an earlier term, the
             * first thing it does once it acts (decide_leader's take-over) is this start, which
             * writes nothing: it runs during the wait instead of after it (raftpg_sim --seed
             * 403555103523 --nodes 3 --faults all --watchdog --keep 0,3,4,5: 8.1 s without a
             * primary, 0.3 s of it this start). Recorded in this term, it starts again as the
             * primary it was once the gate opens: as a standby now it would be promoted to a
             * timeline nobody recorded (raftpg_sim --seed 41080 --nodes 3 --faults all
             * --watchdog: divergent WAL). */
            set(out, HA_ACT_START_STANDBY, NULL,
                "leading, waiting out the previous leader's lease: starting as a standby meanwhile "
                "to learn the wal position");
        } else {
            set(out, HA_ACT_WAIT, NULL, "waiting for a primary to be chosen");
        }
        return;
    }
    const struct ha_peer *p = ha_peer_of(in, primary);
    bool usable = p != NULL && p->reachable && p->pg_state == HA_PG_RUNNING && !p->in_recovery &&
                  p->system_id == s->system_id;
    switch (pg->state) {
    case HA_PG_UNKNOWN:
    case HA_PG_STARTING:
        set(out, HA_ACT_WAIT, NULL, "waiting for postgresql to accept connections");
        return;
    case HA_PG_ABSENT:
        if (usable) {
            set(out, HA_ACT_CLONE, primary, "no data directory: cloning from %s", primary);
        } else {
            set(out, HA_ACT_WAIT, primary, "no data directory: waiting for primary %s", primary);
        }
        return;
    case HA_PG_STOPPED: {
        if (unreadable(pg)) {
            if (usable) {
                set(out, HA_ACT_REINIT, primary,
                    "no readable control file (an interrupted copy): re-cloning from %s", primary);
            } else {
                set(out, HA_ACT_WAIT, primary,
                    "no readable control file: waiting for primary %s to re-clone", primary);
            }
            return;
        }
        if (pg->rewind_failed) {
            if (usable) {
                set(out, HA_ACT_REINIT, primary, "pg_rewind failed: re-cloning from %s", primary);
            } else {
                set(out, HA_ACT_WAIT, primary, "pg_rewind failed: waiting for primary %s", primary);
            }
            return;
        }
        bool behind = usable && pg->timeline != 0 && p->timeline != 0 && pg->timeline < p->timeline;
        if (pg->was_primary && in->no_pg_rewind) {
            /* Without pg_rewind nothing can tell whether its WAL went past the fork. */
            if (usable) {
                set(out, HA_ACT_REINIT, primary,
                    "last ran as primary and postgresql.use_pg_rewind is off: re-cloning from %s",
                    primary);
            } else {
                set(out, HA_ACT_WAIT, primary,
                    "last ran as primary and postgresql.use_pg_rewind is off: waiting for "
                    "primary %s to re-clone",
                    primary);
            }
            return;
        }
        if ((pg->was_primary || behind) && !in->no_pg_rewind) {
            if (usable && pg->rewind_retry_ms > 0) {
                set(out, HA_ACT_WAIT, primary,
                    "pg_rewind stopped before changing anything %u time%s in a row: trying "
                    "again in %llu ms",
                    pg->rewind_retries, pg->rewind_retries == 1 ? "" : "s",
                    (unsigned long long)pg->rewind_retry_ms);
            } else if (usable && p->checkpoint_timeline != 0 &&
                       p->checkpoint_timeline < p->timeline) {
                set(out, HA_ACT_WAIT, primary,
                    "must rewind: waiting for primary %s to checkpoint timeline %u", primary,
                    p->timeline);
            } else if (usable) {
                set(out, HA_ACT_REWIND, primary, "%s: rewinding from %s",
                    pg->was_primary ? "last ran as primary" : "on an older timeline", primary);
            } else {
                set(out, HA_ACT_WAIT, primary,
                    "must rewind before following: waiting for primary %s", primary);
            }
            return;
        }
        if (p == NULL || !p->pg_address_known) {
            /* Its address comes with its first report. A standby of nobody until then, rather
             * than a start that fails and backs off: a new leader counts a voter as heard only
             * while its server runs (rule 6), and it follows once the primary is back. */
            set(out, HA_ACT_START_STANDBY, NULL,
                "starting as a standby: no address known for primary %s yet", primary);
            return;
        }
        set(out, HA_ACT_START_STANDBY, primary, "starting as a standby of %s", primary);
        return;
    }
    case HA_PG_RUNNING: break;
    }
    /* The recorded primary may still be a standby about to promote: streaming from it already
     * (cascading) stops this standby from acknowledging the previous primary's commits. */
    bool followable = p != NULL && p->reachable && p->pg_state == HA_PG_RUNNING &&
                      p->system_id == s->system_id;
    if (strcmp(pg->upstream, primary) != 0) {
        if (usable || followable) {
            set(out, HA_ACT_FOLLOW, primary, "re-pointing replication to %s", primary);
        } else {
            set(out, HA_ACT_WAIT, primary, "waiting for primary %s to follow it", primary);
        }
        return;
    }
    const char *primary_addr = p != NULL ? p->pg_address : "";
    if (pg->in_recovery && pg->receiver[0] != '\0' && primary_addr[0] != '\0' &&
        strcmp(pg->receiver, primary_addr) != 0 && pg->receiver_ms >= HA_DETACH_BOUND_MS) {
        /* Reloaded, but the receiver restarts only when replay asks for WAL: until then this
         * server could acknowledge the previous primary's commits (rule 4). */
        set(out, HA_ACT_DEMOTE, primary,
            "the WAL receiver still streams from %s %" PRIu64 " ms after re-pointing to %s: "
            "stopping to start as its standby",
            strcmp(pg->receiver, HA_RECEIVER_UNKNOWN) == 0 ? "an unknown sender" : pg->receiver,
            (uint64_t)pg->receiver_ms, primary);
        return;
    }
    if (usable && pg->in_recovery && pg->past_fork_ms >= HA_PAST_FORK_MS) {
        /* Its receiver connects, streams the old timeline up to the fork and starts again, so
         * it looks streaming most of the time while it replays nothing (rule: ask the world). */
        set(out, HA_ACT_DEMOTE, primary,
            "replayed timeline %u up to %X/%X, past %X/%X where timeline %u of %s forked from "
            "it: it cannot follow, stopping to rewind",
            pg->timeline, (unsigned)(pg->replay_position >> 32), (unsigned)pg->replay_position,
            (unsigned)(pg->fork_lsn >> 32), (unsigned)pg->fork_lsn, pg->fork_timeline, primary);
        return;
    }
    if (usable && !pg->streaming && pg->not_streaming_ms >= HA_STUCK_STANDBY_MS &&
        pg->timeline != 0 && pg->timeline < p->timeline) {
        set(out, HA_ACT_DEMOTE, primary,
            "cannot follow timeline %u of %s from timeline %u: stopping to rewind", p->timeline,
            primary, pg->timeline);
        return;
    }
    set(out, HA_ACT_WAIT, primary, "following %s", primary);
}

void ha_decide(const struct ha_input *in, struct ha_decision *out)
{
    memset(out, 0, sizeof *out);
    const struct fsm_state *s = in->state;
    const struct ha_pg *pg = &in->pg;
    if (s == NULL || !s->initialized) {
        set(out, HA_ACT_WAIT, NULL, "cluster state not known yet");
        return;
    }
    if (pg->state == HA_PG_UNKNOWN) {
        set(out, HA_ACT_WAIT, NULL, "postgresql not observed yet");
        return;
    }
    if (s->system_id != 0 && pg->system_id != 0 && pg->system_id != s->system_id) {
        if (pg->state == HA_PG_RUNNING && !pg->in_recovery) {
            set(out, HA_ACT_DEMOTE, NULL, "running as primary of another system");
        } else if (in->leader) {
            hand_over(in, out, "the data directory belongs to another cluster");
        } else {
            set(out, HA_ACT_REFUSE, NULL,
                "data directory belongs to another cluster (system identifier %" PRIu64
                ", the cluster's is %" PRIu64 "): move it aside to re-clone",
                pg->system_id, s->system_id);
        }
        return;
    }
    if (in->leader) {
        decide_leader(in, out);
    } else {
        decide_follower(in, out);
    }
}
