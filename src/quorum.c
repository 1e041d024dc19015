#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/quorum.h"

const char *quorum_action_name(enum quorum_action a)
{
    switch (a) {
    case QUORUM_NONE: return "none";
    case QUORUM_RECORD: return "record";
    case QUORUM_CONFIGURE: return "configure";
    case QUORUM_RECORD_BOUND: return "record_bound";
    case QUORUM_WAIT: return "wait";
    }
    return "invalid";
}

const char *quorum_commit_name(int commit)
{
    static const char *const names[] = {"on", "remote_write", "remote_apply", "local"};
    return commit >= 0 && commit <= 3 ? names[commit] : "on";
}

static bool is_nosync(const struct quorum_view *v, const char *name)
{
    for (unsigned i = 0; i < v->n_nosync; i++) {
        if (strcmp(v->nosync[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static const struct quorum_replica *replica_of(const struct quorum_view *v, const char *name)
{
    for (unsigned i = 0; i < v->n_replicas; i++) {
        if (strcmp(v->replicas[i].name, name) == 0) {
            return &v->replicas[i];
        }
    }
    return NULL;
}

/* synchronous_commit = local acknowledges without any standby: for the record it is async. */
static enum sync_mode mode_of(enum sync_mode mode, int commit)
{
    return commit == FSM_SYNC_COMMIT_LOCAL ? SYNC_MODE_OFF : mode;
}

/* When name last streamed in this primary's term (0: never), updated from what is seen now. */
static rpg_msec last_streamed(struct quorum_tracker *t, const char *name, bool streaming,
                              rpg_msec now)
{
    for (unsigned i = 0; i < t->n_streamed; i++) {
        if (strcmp(t->streamed[i], name) == 0) {
            if (streaming) {
                t->streamed_at[i] = now;
            }
            return t->streamed_at[i];
        }
    }
    if (streaming && t->n_streamed < FSM_MEMBERS_MAX) {
        snprintf(t->streamed[t->n_streamed], FSM_NAME_MAX, "%s", name);
        t->streamed_at[t->n_streamed++] = now;
        return now;
    }
    return 0;
}

/* Every other member, as a standby of this primary. recorded (may be NULL) is the recorded set:
 * its voters are expected to stream from the first moment of a term, others only once they have
 * (a new member is never waited for before it streamed). */
static unsigned standbys_of(const struct quorum_view *v, struct quorum_tracker *t,
                            const struct sync_set *recorded, struct sync_standby *out)
{
    unsigned n = 0;
    const struct fsm_state *s = v->state;
    for (unsigned i = 0; i < s->n_members && n < FSM_MEMBERS_MAX; i++) {
        const char *name = s->members[i].name;
        if (strcmp(name, v->self) == 0 || (v->removing != NULL && strcmp(name, v->removing) == 0)) {
            continue;
        }
        struct sync_standby *sb = &out[n++];
        memset(sb, 0, sizeof *sb);
        snprintf(sb->name, sizeof sb->name, "%s", name);
        const struct quorum_replica *r = replica_of(v, name);
        sb->streaming = r != NULL && r->streaming;
        sb->flush_position = r != NULL ? r->flush_position : 0;
        bool known_down = false;
        for (unsigned d = 0; d < v->n_down; d++) {
            known_down = known_down || strcmp(v->down[d], name) == 0;
        }
        if (t != NULL && !known_down) {
            rpg_msec since = last_streamed(t, name, sb->streaming, v->now);
            if (since == 0 && recorded != NULL && sync_set_contains(recorded, name)) {
                since = t->term_seen_at;
            }
            sb->expected = !sb->streaming && since != 0 && v->now - since < QUORUM_DEGRADE_GRACE_MS;
        }
        sb->nosync = is_nosync(v, name);
    }
    return n;
}

static void fill_input(const struct quorum_view *v, struct quorum_tracker *t,
                       const struct sync_set *recorded, struct sync_input *in,
                       struct sync_standby *standbys)
{
    memset(in, 0, sizeof *in);
    in->mode = mode_of(v->mode, v->commit);
    in->k_wanted = v->k_wanted;
    in->max_lag_bytes = QUORUM_MAX_LAG_BYTES;
    in->primary = v->self;
    in->primary_flush_position = v->primary_flush;
    in->standbys = standbys;
    in->n_standbys = standbys_of(v, t, recorded, standbys);
}

int quorum_initial_value(const struct quorum_view *v, char *value, size_t size, char *errmsg)
{
    value[0] = '\0';
    if (v->mode == SYNC_MODE_OFF || v->commit == FSM_SYNC_COMMIT_LOCAL) {
        return 0;
    }
    /* Only recorded voters: a commit acknowledged before the driver's first record must be on k
     * of the voters a later leader will ask (invariant (I) of sync.h). */
    struct sync_set recorded, set;
    int rv = sync_set_from_state(v->state, &recorded, errmsg);
    if (rv != 0) {
        return rv;
    }
    sync_set_init(&set, 0);
    for (unsigned i = 0; i < recorded.n; i++) {
        if (strcmp(recorded.names[i], v->self) != 0 &&
            (rv = sync_set_add(&set, recorded.names[i], errmsg)) != 0) {
            return rv;
        }
    }
    uint32_t k = recorded.k;
    if (v->mode == SYNC_MODE_STRICT) {
        /* Strict never acknowledges alone: with no other voter the primary's own name keeps
         * writes blocked, as it never streams from itself. */
        if (set.n == 0 && (rv = sync_set_add(&set, v->self, errmsg)) != 0) {
            return rv;
        }
        k = k > 0 ? k : v->k_wanted;
    } else if (set.n == 0 || k == 0) {
        /* Quorum mode with nothing provable recorded: the record already says k = 0. */
        return 0;
    }
    set.k = k;
    return sync_set_format(&set, value, size, errmsg);
}

/* The k-th highest flush position among the recorded voters: every commit at or below it is on
 * k voters, so a new primary below it could lack acknowledged commits. 0 when not provable. */
static uint64_t quorum_bound(const struct quorum_view *v, const struct sync_set *recorded)
{
    if (recorded->k == 0 || recorded->k > recorded->n) {
        return 0;
    }
    uint64_t pos[FSM_MEMBERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < recorded->n; i++) {
        const struct quorum_replica *r = replica_of(v, recorded->names[i]);
        if (strcmp(recorded->names[i], v->self) == 0) {
            pos[n++] = v->primary_flush;
        } else if (r != NULL) {
            pos[n++] = r->flush_position;
        }
    }
    if (n < recorded->k) {
        return 0;
    }
    /* Sorted high to low; n is at most 16. */
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = i + 1; j < n; j++) {
            if (pos[j] > pos[i]) {
                uint64_t t = pos[i];
                pos[i] = pos[j];
                pos[j] = t;
            }
        }
    }
    return pos[recorded->k - 1];
}

/* Drops from s the names that are no longer members, and one acknowledgement each: a removed
 * member counted at most once towards k, so every commit is still on k - removed of the others,
 * which is what the state machine recorded on the removal. Kept, such a name had to be recorded
 * before anything else, which the state machine refuses: the record stayed degraded for good
 * (raftpg_sim --seed 125878501489 --nodes 5 --faults all --watchdog --keep 0,1,2,4). Returns
 * how many names were dropped. */
static unsigned members_only(struct sync_set *s, const struct fsm_state *st)
{
    struct sync_set kept;
    unsigned dropped = 0;
    char ignored[RPG_ERRMSG_SIZE];
    sync_set_init(&kept, 0);
    for (unsigned i = 0; i < s->n; i++) {
        if (fsm_state_member(st, s->names[i]) == NULL ||
            sync_set_add(&kept, s->names[i], ignored) != 0) {
            dropped++;
        }
    }
    kept.k = s->k > dropped ? s->k - dropped : 0;
    if (dropped > 0) {
        *s = kept;
    }
    return dropped;
}

int quorum_decide(const struct quorum_view *v, struct quorum_tracker *t,
                  struct quorum_decision *out, char *errmsg)
{
    memset(out, 0, sizeof *out);
    out->commit = quorum_commit_name(v->commit);
    if (!v->configured_known) {
        out->action = QUORUM_WAIT;
        snprintf(out->why, sizeof out->why, "waiting to observe postgresql as primary");
        return 0;
    }
    struct sync_set recorded, configured, desired;
    int rv = sync_set_from_state(v->state, &recorded, errmsg);
    if (rv != 0) {
        return rv;
    }
    bool unparsable = false;
    if (sync_set_parse(v->configured_value, &configured, errmsg) != 0) {
        /* Not a value this driver writes: assume the weakest, asynchronous, until replaced. */
        sync_set_init(&configured, 0);
        unparsable = true;
    }
    unsigned stale = members_only(&configured, v->state);
    if (strcmp(v->configured_commit, "local") == 0) {
        /* Running with synchronous_commit = local acknowledges without standbys. */
        configured.k = 0;
    }
    if (!t->seen || strcmp(t->seen_value, v->configured_value) != 0) {
        snprintf(t->seen_value, sizeof t->seen_value, "%s", v->configured_value);
        t->seen = true;
        t->seen_since = v->primary_flush;
    }
    if (t->term != v->state->primary.term || t->term_seen_at == 0) {
        t->term = v->state->primary.term;
        t->term_seen_at = v->now != 0 ? v->now : 1;
        t->n_streamed = 0;
    }
    struct sync_standby standbys[FSM_MEMBERS_MAX];
    struct sync_input in;
    fill_input(v, t, &recorded, &in, standbys);
    bool degraded = false;
    if ((rv = sync_desired(&in, &desired, &degraded, errmsg)) != 0) {
        return rv;
    }
    out->degraded = degraded;
    struct sync_decision d;
    if ((rv = sync_decide(&in, &recorded, &configured, t->seen_since, &desired, &d, errmsg)) != 0) {
        return rv;
    }
    snprintf(out->why, sizeof out->why, "%s", d.why);
    switch (d.step) {
    case SYNC_STEP_RECORD:
        out->action = QUORUM_RECORD;
        sync_set_to_cmd(&d.set, 0, &out->cmd);
        return 0;
    case SYNC_STEP_CONFIGURE:
        out->action = QUORUM_CONFIGURE;
        return sync_set_format(&d.set, out->value, sizeof out->value, errmsg);
    case SYNC_STEP_WAIT: out->action = QUORUM_WAIT; return 0;
    case SYNC_STEP_NONE: break;
    }
    /* The set is settled; a value this driver did not write, or synchronous_commit, may still
     * differ from what is in force. */
    if (unparsable || stale > 0 || strcmp(v->configured_commit, out->commit) != 0) {
        out->action = QUORUM_CONFIGURE;
        if ((rv = sync_set_format(&desired, out->value, sizeof out->value, errmsg)) != 0) {
            return rv;
        }
        if (unparsable) {
            snprintf(out->why, sizeof out->why, "replacing synchronous_standby_names \"%.64s\"",
                     v->configured_value);
            return 0;
        }
        if (stale > 0) {
            snprintf(out->why, sizeof out->why,
                     "synchronous_standby_names \"%.64s\" names %u former member(s)",
                     v->configured_value, stale);
            return 0;
        }
        snprintf(out->why, sizeof out->why, "synchronous_commit %s -> %s",
                 v->configured_commit[0] ? v->configured_commit : "(default)", out->commit);
        return 0;
    }
    uint64_t bound = quorum_bound(v, &recorded);
    if (bound > v->state->wal_bound &&
        (!t->bound_recorded || v->now - t->bound_recorded_at >= QUORUM_BOUND_INTERVAL_MS)) {
        out->action = QUORUM_RECORD_BOUND;
        memset(&out->cmd, 0, sizeof out->cmd);
        out->cmd.type = FSM_CMD_SET_WAL_BOUND;
        out->cmd.u.set_wal_bound.position = bound;
        out->cmd.u.set_wal_bound.timeline = v->state->primary.timeline;
        t->bound_recorded_at = v->now;
        t->bound_recorded = true;
        snprintf(out->why, sizeof out->why, "the quorum has flushed up to %" PRIu64, bound);
        return 0;
    }
    out->action = QUORUM_NONE;
    return 0;
}
