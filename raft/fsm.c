/* The replicated cluster state: apply (each command validated, then applied, all or nothing)
 * and the libraft glue. The checks every command and state must pass are in fsm_check.c, the
 * wire format in fsm_codec.c. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/fsm.h"

#include "fsm_int.h"

static void member_copy(struct fsm_member *dst, const struct fsm_member *src)
{
    memset(dst, 0, sizeof *dst);
    dst->id = src->id;
    fsm_str_copy(dst->name, src->name, sizeof dst->name);
    fsm_str_copy(dst->raft_address, src->raft_address, sizeof dst->raft_address);
    fsm_str_copy(dst->api_address, src->api_address, sizeof dst->api_address);
    fsm_str_copy(dst->pg_address, src->pg_address, sizeof dst->pg_address);
    dst->tags = src->tags;
    dst->failover_priority = src->failover_priority;
}

/* ---- State ---- */

void fsm_state_init(struct fsm_state *s)
{
    memset(s, 0, sizeof *s);
    s->next_id = 1;
}

const struct fsm_member *fsm_state_member(const struct fsm_state *s, const char *name)
{
    for (unsigned i = 0; i < s->n_members; i++) {
        if (strncmp(s->members[i].name, name, FSM_NAME_MAX) == 0) {
            return &s->members[i];
        }
    }
    return NULL;
}

const struct fsm_member *fsm_state_member_by_id(const struct fsm_state *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n_members; i++) {
        if (s->members[i].id == id) {
            return &s->members[i];
        }
    }
    return NULL;
}

int fsm_sync_voter_index(const struct fsm_state *s, const char *name)
{
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (strncmp(s->sync.voters[i], name, FSM_NAME_MAX) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Each apply_* function validates everything first and only then mutates s, so a rejection
 * leaves s as it was. msg receives the body of the rejection message. */

static int apply_init(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const char *scope = cmd->u.init.scope;
    unsigned n = cmd->u.init.n_members;
    int rc;

    if (s->initialized) {
        return rpg_err(msg, RPG_EEXIST, "cluster already initialized (scope=%s)", s->scope);
    }
    if (!fsm_str_ok(scope, FSM_NAME_MAX)) {
        return rpg_err(msg, RPG_EINVAL, "scope is not terminated");
    }
    if (scope[0] == '\0') {
        return rpg_err(msg, RPG_EINVAL, "scope is empty");
    }
    if (n < 1 || n > FSM_MEMBERS_MAX) {
        return rpg_err(msg, RPG_EINVAL, "member count %u out of range 1..%d", n, FSM_MEMBERS_MAX);
    }
    uint64_t max_id = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct fsm_member *m = &cmd->u.init.members[i];
        if ((rc = fsm_member_validate(m, msg)) != 0) {
            return rc;
        }
        if ((rc = fsm_member_unique(cmd->u.init.members, i, m, msg)) != 0) {
            return rc;
        }
        if (m->id > max_id) {
            max_id = m->id;
        }
    }

    /* Only counters survive: an uninitialized state holds nothing else that matters. */
    uint64_t n_applied = s->n_applied;
    uint64_t n_rejected = s->n_rejected;
    fsm_state_init(s);
    s->n_applied = n_applied;
    s->n_rejected = n_rejected;
    s->initialized = true;
    fsm_str_copy(s->scope, scope, sizeof s->scope);
    for (unsigned i = 0; i < n; i++) {
        member_copy(&s->members[i], &cmd->u.init.members[i]);
    }
    s->n_members = n;
    s->next_id = max_id + 1;
    return 0;
}

static int apply_member_add(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_member *m = &cmd->u.member_add;
    int rc;

    if ((rc = fsm_member_validate(m, msg)) != 0) {
        return rc;
    }
    if ((rc = fsm_member_unique(s->members, s->n_members, m, msg)) != 0) {
        return rc;
    }
    if (m->id < s->next_id) {
        return rpg_err(msg, RPG_EINVAL,
                       "member id %llu was used before, ids are never reused (name=%s "
                       "next_id=%llu)",
                       (unsigned long long)m->id, m->name, (unsigned long long)s->next_id);
    }
    if (s->n_members >= FSM_MEMBERS_MAX) {
        return rpg_err(msg, RPG_EINVAL, "cluster is full (name=%s members=%u)", m->name,
                       s->n_members);
    }
    member_copy(&s->members[s->n_members], m);
    s->n_members++;
    s->next_id = m->id + 1;
    return 0;
}

static int apply_member_remove(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const char *name = cmd->u.member_remove.name;

    if (!fsm_str_ok(name, FSM_NAME_MAX)) {
        return rpg_err(msg, RPG_EINVAL, "name is not terminated");
    }
    const struct fsm_member *m = fsm_state_member(s, name);
    if (m == NULL) {
        return rpg_err(msg, RPG_ENOTFOUND, "no member named \"%s\"", name);
    }

    unsigned idx = (unsigned)(m - s->members);
    memmove(&s->members[idx], &s->members[idx + 1],
            (s->n_members - idx - 1) * sizeof s->members[0]);
    s->n_members--;
    memset(&s->members[s->n_members], 0, sizeof s->members[0]);

    int v = fsm_sync_voter_index(s, name);
    if (v >= 0) {
        memmove(s->sync.voters[v], s->sync.voters[v + 1],
                (s->sync.n_voters - (unsigned)v - 1) * sizeof s->sync.voters[0]);
        s->sync.n_voters--;
        memset(s->sync.voters[s->sync.n_voters], 0, sizeof s->sync.voters[0]);
        /* The removed voter may hold acknowledged commits that the others lack: only k - 1 of
         * the remaining voters surely have every one (DESIGN.md rule 6), and k <= n_voters
         * keeps holding. */
        if (s->sync.k > 0) {
            s->sync.k--;
        }
    }
    /* The term and timeline stay, so a later SET_PRIMARY still has to be at least as new. */
    if (strncmp(s->primary.name, name, FSM_NAME_MAX) == 0) {
        memset(s->primary.name, 0, sizeof s->primary.name);
    }
    return 0;
}

static int apply_set_primary(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const char *name = cmd->u.set_primary.name;
    uint64_t term = cmd->u.set_primary.term;

    if (!fsm_str_ok(name, FSM_NAME_MAX)) {
        return rpg_err(msg, RPG_EINVAL, "name is not terminated");
    }
    if (name[0] != '\0' && fsm_state_member(s, name) == NULL) {
        return rpg_err(msg, RPG_ENOTFOUND, "no member named \"%s\"", name);
    }
    if (term < s->primary.term) {
        return rpg_err(msg, RPG_EINVAL,
                       "term %llu is older than the recorded primary term %llu (primary=%s)",
                       (unsigned long long)term, (unsigned long long)s->primary.term,
                       s->primary.name[0] != '\0' ? s->primary.name : "none");
    }
    fsm_str_copy(s->primary.name, name, sizeof s->primary.name);
    s->primary.term = term;
    s->primary.timeline = cmd->u.set_primary.timeline;
    return 0;
}

static int apply_set_sync(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    unsigned n = cmd->u.set_sync.n_voters;
    uint32_t k = cmd->u.set_sync.k;

    if (n > FSM_MEMBERS_MAX) {
        return rpg_err(msg, RPG_EINVAL, "voter count %u out of range 0..%d", n, FSM_MEMBERS_MAX);
    }
    if (k > n) {
        return rpg_err(msg, RPG_EINVAL, "k=%u exceeds the number of voters (voters=%u)",
                       (unsigned)k, n);
    }
    for (unsigned i = 0; i < n; i++) {
        const char *v = cmd->u.set_sync.voters[i];
        if (!fsm_str_ok(v, FSM_NAME_MAX)) {
            return rpg_err(msg, RPG_EINVAL, "voter %u is not terminated", i);
        }
        if (fsm_state_member(s, v) == NULL) {
            return rpg_err(msg, RPG_ENOTFOUND, "voter \"%s\" is not a member", v);
        }
        for (unsigned j = 0; j < i; j++) {
            if (strncmp(cmd->u.set_sync.voters[j], v, FSM_NAME_MAX) == 0) {
                return rpg_err(msg, RPG_EEXIST, "duplicate voter \"%s\"", v);
            }
        }
    }
    memset(&s->sync, 0, sizeof s->sync);
    s->sync.k = k;
    s->sync.n_voters = n;
    for (unsigned i = 0; i < n; i++) {
        fsm_str_copy(s->sync.voters[i], cmd->u.set_sync.voters[i], FSM_NAME_MAX);
    }
    return 0;
}

static int apply_set_system_id(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    uint64_t id = cmd->u.set_system_id.system_id;

    if (id == 0) {
        return rpg_err(msg, RPG_EINVAL, "system id 0 is not valid");
    }
    /* Setting the same value again is harmless and makes the command idempotent for a leader
     * that retries after losing the reply. */
    if (s->system_id != 0 && s->system_id != id) {
        return rpg_err(msg, RPG_EEXIST, "system id already set (current=%llu new=%llu)",
                       (unsigned long long)s->system_id, (unsigned long long)id);
    }
    s->system_id = id;
    return 0;
}

/* WAL positions only grow, across timelines too, so a bound never moves back: a smaller one is a
 * stale command from an earlier leader. */
static int apply_set_wal_bound(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    uint64_t pos = cmd->u.set_wal_bound.position;
    if (pos < s->wal_bound) {
        return rpg_err(msg, RPG_EINVAL, "position %llu is below the recorded bound %llu",
                       (unsigned long long)pos, (unsigned long long)s->wal_bound);
    }
    s->wal_bound = pos;
    s->wal_bound_timeline = cmd->u.set_wal_bound.timeline;
    return 0;
}

/* Marks a member whose Raft log held replicated entries. Idempotent: a leader that lost the reply
 * may submit it again. */
static int apply_member_seen(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    uint64_t id = cmd->u.member_seen.id;
    for (unsigned i = 0; i < s->n_members; i++) {
        if (s->members[i].id == id) {
            s->members[i].tags |= FSM_TAG_RAFT_STATE;
            return 0;
        }
    }
    return rpg_err(msg, RPG_ENOTFOUND, "no member with id %llu", (unsigned long long)id);
}

/* Appends a promotion; timelines only grow, so a proposal made twice is rejected the second
 * time. The oldest entry makes room when the history is full. */
static int apply_add_history(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_history_entry *h = &cmd->u.add_history;
    int rc =
        fsm_history_entry_check(h, s->n_history > 0 ? &s->history[s->n_history - 1] : NULL, msg);
    if (rc != 0) {
        return rc;
    }
    if (s->n_history == FSM_HISTORY_MAX) {
        memmove(&s->history[0], &s->history[1], (FSM_HISTORY_MAX - 1) * sizeof s->history[0]);
        s->n_history--;
    }
    struct fsm_history_entry *dst = &s->history[s->n_history++];
    memset(dst, 0, sizeof *dst);
    dst->timeline = h->timeline;
    dst->prev_timeline = h->prev_timeline;
    dst->lsn = h->lsn;
    dst->time_ms = h->time_ms;
    dst->term = h->term;
    dst->reason = h->reason;
    fsm_str_copy(dst->primary, h->primary, sizeof dst->primary);
    return 0;
}

/* Records a switchover to run at a time; one at a time, so a second is refused until the first
 * is cleared (run, abandoned or cancelled). */
static int apply_schedule_switchover(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_switchover *w = &cmd->u.schedule_switchover;
    int rc = fsm_switchover_check(w, msg);
    if (rc != 0) {
        return rc;
    }
    if (w->from[0] != '\0' && fsm_state_member(s, w->from) == NULL) {
        return rpg_err(msg, RPG_ENOTFOUND, "from: %s is not a member", w->from);
    }
    if (w->to[0] != '\0' && fsm_state_member(s, w->to) == NULL) {
        return rpg_err(msg, RPG_ENOTFOUND, "to: %s is not a member", w->to);
    }
    if (s->switchover.at_ms != 0) {
        return rpg_err(msg, RPG_EEXIST, "a switchover is already scheduled (at_ms=%lld)",
                       (long long)s->switchover.at_ms);
    }
    memset(&s->switchover, 0, sizeof s->switchover);
    s->switchover.at_ms = w->at_ms;
    fsm_str_copy(s->switchover.from, w->from, sizeof s->switchover.from);
    fsm_str_copy(s->switchover.to, w->to, sizeof s->switchover.to);
    return 0;
}

static int apply_clear_switchover(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    int64_t at = cmd->u.clear_switchover.at_ms;
    if (s->switchover.at_ms == 0) {
        return rpg_err(msg, RPG_ENOTFOUND, "no switchover is scheduled");
    }
    if (s->switchover.at_ms != at) {
        return rpg_err(msg, RPG_ENOTFOUND, "the scheduled switchover is at_ms=%lld, not at_ms=%lld",
                       (long long)s->switchover.at_ms, (long long)at);
    }
    memset(&s->switchover, 0, sizeof s->switchover);
    return 0;
}

/* The whole dynamic configuration: the synchronous settings and the parameters, replaced
 * together so that one PATCH is one entry. */
static int apply_set_dynamic(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_param *ps = cmd->u.set_dynamic.params;
    unsigned n = cmd->u.set_dynamic.n_params;
    int rc = fsm_config_check(cmd->u.set_dynamic.sync_mode, cmd->u.set_dynamic.sync_node_count,
                              cmd->u.set_dynamic.sync_commit, msg);
    if (rc == 0) {
        rc = fsm_params_check(ps, n, msg);
    }
    if (rc == 0) {
        rc = fsm_hba_lines_check(cmd->u.set_dynamic.hba, cmd->u.set_dynamic.n_hba, msg);
    }
    if (rc != 0) {
        return rc;
    }
    s->config.set = true;
    s->config.sync_mode = cmd->u.set_dynamic.sync_mode;
    s->config.sync_node_count = cmd->u.set_dynamic.sync_node_count;
    s->config.sync_commit = cmd->u.set_dynamic.sync_commit;
    memset(s->config.params, 0, sizeof s->config.params);
    s->config.n_params = n;
    for (unsigned i = 0; i < n; i++) {
        fsm_str_copy(s->config.params[i].name, ps[i].name, FSM_PARAM_NAME_MAX);
        fsm_str_copy(s->config.params[i].value, ps[i].value, FSM_PARAM_VALUE_MAX);
    }
    memset(s->config.hba, 0, sizeof s->config.hba);
    s->config.n_hba = cmd->u.set_dynamic.n_hba;
    for (unsigned i = 0; i < s->config.n_hba; i++) {
        fsm_str_copy(s->config.hba[i], cmd->u.set_dynamic.hba[i], FSM_HBA_LINE_MAX);
    }
    /* SET_DYNAMIC leaves the limit as it is: an agent that does not know it keeps it. */
    if (cmd->type == FSM_CMD_SET_DYNAMIC_LAG) {
        s->config.max_lag_set = cmd->u.set_dynamic.max_lag_set;
        s->config.max_lag = cmd->u.set_dynamic.max_lag_set ? cmd->u.set_dynamic.max_lag : 0;
    }
    return 0;
}

int fsm_state_apply(struct fsm_state *s, const struct fsm_cmd *cmd, char *errmsg)
{
    char msg[RPG_ERRMSG_SIZE] = "";
    int rc;

    s->n_applied++;
    if (!fsm_cmd_type_known((unsigned)cmd->type)) {
        rc = rpg_err(msg, RPG_EINVAL, "unknown command type %d", (int)cmd->type);
    } else if (cmd->type != FSM_CMD_INIT && !s->initialized) {
        rc = rpg_err(msg, RPG_EINVAL, "cluster not initialized");
    } else {
        switch (cmd->type) {
        case FSM_CMD_INIT: rc = apply_init(s, cmd, msg); break;
        case FSM_CMD_MEMBER_ADD: rc = apply_member_add(s, cmd, msg); break;
        case FSM_CMD_MEMBER_REMOVE: rc = apply_member_remove(s, cmd, msg); break;
        case FSM_CMD_SET_PRIMARY: rc = apply_set_primary(s, cmd, msg); break;
        case FSM_CMD_SET_SYNC: rc = apply_set_sync(s, cmd, msg); break;
        case FSM_CMD_SET_PAUSE:
            s->paused = cmd->u.set_pause.paused;
            rc = 0;
            break;
        case FSM_CMD_SET_SYSTEM_ID: rc = apply_set_system_id(s, cmd, msg); break;
        case FSM_CMD_SET_CONFIG:
            rc = fsm_config_check(cmd->u.set_config.sync_mode, cmd->u.set_config.sync_node_count,
                                  cmd->u.set_config.sync_commit, msg);
            if (rc == 0) {
                s->config.set = true;
                s->config.sync_mode = cmd->u.set_config.sync_mode;
                s->config.sync_node_count = cmd->u.set_config.sync_node_count;
                s->config.sync_commit = cmd->u.set_config.sync_commit;
            }
            break;
        case FSM_CMD_SET_WAL_BOUND: rc = apply_set_wal_bound(s, cmd, msg); break;
        case FSM_CMD_MEMBER_SEEN: rc = apply_member_seen(s, cmd, msg); break;
        case FSM_CMD_ADD_HISTORY: rc = apply_add_history(s, cmd, msg); break;
        case FSM_CMD_SCHEDULE_SWITCHOVER: rc = apply_schedule_switchover(s, cmd, msg); break;
        case FSM_CMD_CLEAR_SWITCHOVER: rc = apply_clear_switchover(s, cmd, msg); break;
        case FSM_CMD_SET_DYNAMIC:
        case FSM_CMD_SET_DYNAMIC_LAG: rc = apply_set_dynamic(s, cmd, msg); break;
        default: rc = RPG_EINVAL; break; /* unreachable: type checked above */
        }
    }
    if (rc != 0) {
        s->n_rejected++;
        rpg_err(errmsg, rc, "%s rejected: %s",
                fsm_cmd_type_known((unsigned)cmd->type) ? fsm_cmd_type_name(cmd->type) : "command",
                msg);
    }
    return rc;
}

/* ---- libraft glue (struct raft_fsm version 1) ---- */

void fsm_sum_record(struct fsm *f, uint64_t index)
{
    struct fsm_sum *slot = &f->sums[f->next_sum];
    slot->index = index;
    slot->sum = fsm_state_checksum(f->state);
    f->next_sum = (f->next_sum + 1) % FSM_SUMS_MAX;
    if (f->n_sums < FSM_SUMS_MAX) {
        f->n_sums++;
    }
}

bool fsm_sum_at(const struct fsm *f, uint64_t index, uint64_t *sum)
{
    for (unsigned i = 0; i < f->n_sums; i++) {
        if (f->sums[i].index == index) {
            *sum = f->sums[i].sum;
            return true;
        }
    }
    return false;
}

bool fsm_sum_latest(const struct fsm *f, struct fsm_sum *out)
{
    if (f->n_sums == 0) {
        return false;
    }
    *out = f->sums[(f->next_sum + FSM_SUMS_MAX - 1) % FSM_SUMS_MAX];
    return true;
}

static struct fsm *fsm_of(struct raft_fsm *raft_fsm)
{
    return raft_fsm->data;
}

static int fsm_raft_apply(struct raft_fsm *raft_fsm, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = fsm_of(raft_fsm);
    struct fsm_cmd cmd;
    char msg[RPG_ERRMSG_SIZE];

    int rc = fsm_cmd_decode(buf->base, buf->len, &cmd, msg);
    if (rc == 0) {
        rc = fsm_state_apply(f->state, &cmd, msg);
    } else {
        /* A malformed entry is committed like any other: count it as applied and rejected on
         * every node so the states stay equal. */
        f->state->n_applied++;
        f->state->n_rejected++;
    }
    if (rc != 0) {
        snprintf(f->last_error, sizeof f->last_error, "%s", msg);
    }
    if (result != NULL) {
        *result = (void *)(intptr_t)rc;
    }
    if (f->server != NULL) {
        fsm_sum_record(f, raft_last_applied(f->server) + 1);
        f->restored = false;
    }
    /* Always 0: a non-zero return stalls libraft 0.15's apply loop (RAFT-NOTES.md). */
    return 0;
}

/* Version 1: libraft frees each bufs[i].base and then bufs itself with raft_free once the
 * snapshot is written (or fails), so both are raft_malloc'ed here. */
static int fsm_raft_snapshot(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[],
                             unsigned *n_bufs)
{
    struct fsm *f = fsm_of(raft_fsm);
    char msg[RPG_ERRMSG_SIZE];

    struct raft_buffer *array = raft_malloc(sizeof *array);
    if (array == NULL) {
        return RAFT_NOMEM;
    }
    int rc = fsm_state_encode(f->state, &array[0], msg);
    if (rc != 0) {
        raft_free(array);
        snprintf(f->last_error, sizeof f->last_error, "snapshot: %.230s", msg);
        return rc == RPG_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
    }
    *bufs = array;
    *n_bufs = 1;
    return 0;
}

/* On success the buffer is ours to free; on failure libraft keeps ownership and frees it. */
static int fsm_raft_restore(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    struct fsm *f = fsm_of(raft_fsm);
    char msg[RPG_ERRMSG_SIZE];

    int rc = fsm_state_decode(buf->base, buf->len, f->state, msg);
    if (rc != 0) {
        snprintf(f->last_error, sizeof f->last_error, "restore: %.230s", msg);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    /* Checksums of the replaced state no longer describe this one. */
    f->n_sums = 0;
    f->next_sum = 0;
    f->restored = true;
    return 0;
}

void fsm_init(struct fsm *f, struct fsm_state *state)
{
    memset(f, 0, sizeof *f);
    f->raft.version = 1;
    f->raft.data = f;
    f->raft.apply = fsm_raft_apply;
    f->raft.snapshot = fsm_raft_snapshot;
    f->raft.restore = fsm_raft_restore;
    f->state = state;
}
