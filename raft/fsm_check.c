/* The replicated cluster state's checks, apart from apply (fsm.c): a member's fields and its
 * uniqueness, PostgreSQL parameters and pg_hba lines, the bounds of a command's fields
 * (fsm_cmd_check, before encoding and after decoding), a history entry, a scheduled switchover,
 * and the invariants and equality of a whole state (a snapshot's check, the members' comparison).
 * Pure: writes nothing but the reason. */
#include <stdio.h>
#include <string.h>

#include "raftpg/fsm.h"

#include "fsm_int.h"

/* ---- Members ---- */

const char *fsm_member_bad_string(const struct fsm_member *m)
{
    if (!fsm_str_ok(m->name, sizeof m->name)) {
        return "name";
    }
    if (!fsm_str_ok(m->raft_address, sizeof m->raft_address)) {
        return "raft_address";
    }
    if (!fsm_str_ok(m->api_address, sizeof m->api_address)) {
        return "api_address";
    }
    if (!fsm_str_ok(m->pg_address, sizeof m->pg_address)) {
        return "pg_address";
    }
    return NULL;
}

static bool member_equal(const struct fsm_member *a, const struct fsm_member *b)
{
    return a->id == b->id && strncmp(a->name, b->name, sizeof a->name) == 0 &&
           strncmp(a->raft_address, b->raft_address, sizeof a->raft_address) == 0 &&
           strncmp(a->api_address, b->api_address, sizeof a->api_address) == 0 &&
           strncmp(a->pg_address, b->pg_address, sizeof a->pg_address) == 0 && a->tags == b->tags &&
           a->failover_priority == b->failover_priority;
}

static const struct fsm_member *member_by_raft_address(const struct fsm_member *members, unsigned n,
                                                       const char *address)
{
    for (unsigned i = 0; i < n; i++) {
        if (strncmp(members[i].raft_address, address, FSM_ADDR_MAX) == 0) {
            return &members[i];
        }
    }
    return NULL;
}

static const struct fsm_member *member_by_api_address(const struct fsm_member *members, unsigned n,
                                                      const char *address)
{
    for (unsigned i = 0; i < n; i++) {
        if (strncmp(members[i].api_address, address, FSM_ADDR_MAX) == 0) {
            return &members[i];
        }
    }
    return NULL;
}

/* The fields every member needs, whatever the command (DESIGN.md §3). Writes the reason into
 * msg (the body of the rejection message). */
int fsm_member_validate(const struct fsm_member *m, char *msg)
{
    const char *bad = fsm_member_bad_string(m);
    if (bad != NULL) {
        return rpg_err(msg, RPG_EINVAL, "member %s is not terminated", bad);
    }
    if (m->name[0] == '\0') {
        return rpg_err(msg, RPG_EINVAL, "member name is empty (id=%llu)",
                       (unsigned long long)m->id);
    }
    if (m->id == 0) {
        return rpg_err(msg, RPG_EINVAL, "member \"%s\" has id 0", m->name);
    }
    /* next_id = id + 1 must not wrap to 0. */
    if (m->id == UINT64_MAX) {
        return rpg_err(msg, RPG_EINVAL, "member \"%s\" has id %llu, out of range", m->name,
                       (unsigned long long)m->id);
    }
    if (m->raft_address[0] == '\0') {
        return rpg_err(msg, RPG_EINVAL, "member \"%s\" has an empty raft address", m->name);
    }
    if (m->api_address[0] == '\0') {
        return rpg_err(msg, RPG_EINVAL, "member \"%s\" has an empty api address", m->name);
    }
    return 0;
}

/* Checks m against members[0..n): name, id, raft and api address must all be new. */
int fsm_member_unique(const struct fsm_member *members, unsigned n, const struct fsm_member *m,
                      char *msg)
{
    const struct fsm_member *other;
    for (unsigned i = 0; i < n; i++) {
        if (strncmp(members[i].name, m->name, FSM_NAME_MAX) == 0) {
            return rpg_err(msg, RPG_EEXIST, "duplicate member name \"%s\"", m->name);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (members[i].id == m->id) {
            return rpg_err(msg, RPG_EEXIST, "duplicate member id %llu (name=%s other=%s)",
                           (unsigned long long)m->id, m->name, members[i].name);
        }
    }
    if ((other = member_by_raft_address(members, n, m->raft_address)) != NULL) {
        return rpg_err(msg, RPG_EEXIST, "duplicate raft address \"%s\" (name=%s other=%s)",
                       m->raft_address, m->name, other->name);
    }
    if ((other = member_by_api_address(members, n, m->api_address)) != NULL) {
        return rpg_err(msg, RPG_EEXIST, "duplicate api address \"%s\" (name=%s other=%s)",
                       m->api_address, m->name, other->name);
    }
    return 0;
}

/* ---- PostgreSQL parameters ---- */

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || c == '_' || (!first && ((c >= '0' && c <= '9') || c == '$'));
}

int fsm_param_check(const char *name, const char *value, char *errmsg)
{
    size_t n = strnlen(name, FSM_PARAM_NAME_MAX);
    if (n == 0 || n >= FSM_PARAM_NAME_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "parameter name must be 1..%d bytes long",
                       FSM_PARAM_NAME_MAX - 1);
    }
    /* Words of [a-z_][a-z0-9_$]*, joined by single dots (an extension's "ext.setting"). */
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '.' && !first && i + 1 < n) {
            first = true;
            continue;
        }
        if (!name_char(name[i], first)) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "parameter \"%.63s\": name is not a lower-case identifier "
                           "([a-z_][a-z0-9_$]*, words joined by '.')",
                           name);
        }
        first = false;
    }
    size_t m = strnlen(value, FSM_PARAM_VALUE_MAX);
    if (m >= FSM_PARAM_VALUE_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "parameter %s: value is longer than %d bytes", name,
                       FSM_PARAM_VALUE_MAX - 1);
    }
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "parameter %s: value holds a control character (byte %zu is 0x%02x)",
                           name, i, c);
        }
    }
    return 0;
}

int fsm_hba_check(unsigned index, const char *line, char *errmsg)
{
    size_t n = strnlen(line, FSM_HBA_LINE_MAX);
    if (n == 0 || n >= FSM_HBA_LINE_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "pg_hba line %u must be 1..%d bytes long", index,
                       FSM_HBA_LINE_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "pg_hba line %u holds a control character (byte %zu is 0x%02x)", index,
                           i, c);
        }
    }
    return 0;
}

bool fsm_hba_type_known(const char *line)
{
    static const char *const types[] = {"local",     "host",       "hostssl",
                                        "hostnossl", "hostgssenc", "hostnogssenc"};
    size_t skip = strspn(line, " \t"), word = strcspn(line + skip, " \t");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        if (strlen(types[t]) == word && strncmp(line + skip, types[t], word) == 0) {
            return true;
        }
    }
    return false;
}

int fsm_hba_lines_check(const char (*lines)[FSM_HBA_LINE_MAX], unsigned n, char *errmsg)
{
    if (n > FSM_HBA_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "%u pg_hba lines, at most %d", n, FSM_HBA_MAX);
    }
    for (unsigned i = 0; i < n; i++) {
        if (!fsm_str_ok(lines[i], FSM_HBA_LINE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "pg_hba line %u is not terminated", i);
        }
        int rc = fsm_hba_check(i, lines[i], errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static bool hba_equal(const char (*a)[FSM_HBA_LINE_MAX], unsigned na,
                      const char (*b)[FSM_HBA_LINE_MAX], unsigned nb)
{
    if (na != nb || na > FSM_HBA_MAX) {
        return false;
    }
    for (unsigned i = 0; i < na; i++) {
        if (strncmp(a[i], b[i], FSM_HBA_LINE_MAX) != 0) {
            return false;
        }
    }
    return true;
}

/* A set of parameters: each valid, names strictly increasing (so each at most once). */
int fsm_params_check(const struct fsm_param *ps, unsigned n, char *errmsg)
{
    if (n > FSM_PARAMS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "%u parameters, at most %d", n, FSM_PARAMS_MAX);
    }
    for (unsigned i = 0; i < n; i++) {
        if (!fsm_str_ok(ps[i].name, FSM_PARAM_NAME_MAX) ||
            !fsm_str_ok(ps[i].value, FSM_PARAM_VALUE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "parameter %u is not terminated", i);
        }
        int rc = fsm_param_check(ps[i].name, ps[i].value, errmsg);
        if (rc != 0) {
            return rc;
        }
        if (i > 0 && strcmp(ps[i - 1].name, ps[i].name) >= 0) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "parameters not in strictly increasing order (%s after %s)", ps[i].name,
                           ps[i - 1].name);
        }
    }
    return 0;
}

static bool params_equal(const struct fsm_param *a, unsigned na, const struct fsm_param *b,
                         unsigned nb)
{
    if (na != nb || na > FSM_PARAMS_MAX) {
        return false;
    }
    for (unsigned i = 0; i < na; i++) {
        if (strncmp(a[i].name, b[i].name, FSM_PARAM_NAME_MAX) != 0 ||
            strncmp(a[i].value, b[i].value, FSM_PARAM_VALUE_MAX) != 0) {
            return false;
        }
    }
    return true;
}

static bool switchover_equal(const struct fsm_switchover *a, const struct fsm_switchover *b)
{
    return a->at_ms == b->at_ms && strncmp(a->from, b->from, FSM_NAME_MAX) == 0 &&
           strncmp(a->to, b->to, FSM_NAME_MAX) == 0;
}

static bool history_equal(const struct fsm_history_entry *a, const struct fsm_history_entry *b)
{
    return a->timeline == b->timeline && a->prev_timeline == b->prev_timeline && a->lsn == b->lsn &&
           a->time_ms == b->time_ms && a->term == b->term && a->reason == b->reason &&
           strncmp(a->primary, b->primary, FSM_NAME_MAX) == 0;
}

int fsm_config_check(unsigned mode, uint32_t count, unsigned commit, char *errmsg)
{
    if (mode > SYNC_MODE_STRICT) {
        return rpg_err(errmsg, RPG_EINVAL, "set_config: sync mode %u out of range 0..2", mode);
    }
    if (count < 1 || count > FSM_MEMBERS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "set_config: synchronous_node_count %u out of range 1..%d", (unsigned)count,
                       FSM_MEMBERS_MAX);
    }
    if (commit > FSM_SYNC_COMMIT_LOCAL) {
        return rpg_err(errmsg, RPG_EINVAL, "set_config: synchronous_commit %u out of range 0..3",
                       commit);
    }
    return 0;
}

/* Checks that cmd can be encoded: known type, counts in range, every string terminated. */
int fsm_cmd_check(const struct fsm_cmd *cmd, char *errmsg)
{
    const char *tn = fsm_cmd_type_name(cmd->type);
    const char *bad;

    switch (cmd->type) {
    case FSM_CMD_INIT:
        if (!fsm_str_ok(cmd->u.init.scope, sizeof cmd->u.init.scope)) {
            return rpg_err(errmsg, RPG_EINVAL, "init: scope is longer than %d bytes",
                           FSM_NAME_MAX - 1);
        }
        if (cmd->u.init.n_members > FSM_MEMBERS_MAX) {
            return rpg_err(errmsg, RPG_EINVAL, "init: member count %u out of range 0..%d",
                           cmd->u.init.n_members, FSM_MEMBERS_MAX);
        }
        for (unsigned i = 0; i < cmd->u.init.n_members; i++) {
            if ((bad = fsm_member_bad_string(&cmd->u.init.members[i])) != NULL) {
                return rpg_err(errmsg, RPG_EINVAL, "init: member %u: %s is too long", i, bad);
            }
        }
        return 0;
    case FSM_CMD_MEMBER_ADD:
        if ((bad = fsm_member_bad_string(&cmd->u.member_add)) != NULL) {
            return rpg_err(errmsg, RPG_EINVAL, "member_add: %s is too long", bad);
        }
        return 0;
    case FSM_CMD_MEMBER_REMOVE:
        if (!fsm_str_ok(cmd->u.member_remove.name, sizeof cmd->u.member_remove.name)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: name is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_PRIMARY:
        if (!fsm_str_ok(cmd->u.set_primary.name, sizeof cmd->u.set_primary.name)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: name is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_SYNC:
        if (cmd->u.set_sync.n_voters > FSM_MEMBERS_MAX) {
            return rpg_err(errmsg, RPG_EINVAL, "set_sync: voter count %u out of range 0..%d",
                           cmd->u.set_sync.n_voters, FSM_MEMBERS_MAX);
        }
        for (unsigned i = 0; i < cmd->u.set_sync.n_voters; i++) {
            if (!fsm_str_ok(cmd->u.set_sync.voters[i], FSM_NAME_MAX)) {
                return rpg_err(errmsg, RPG_EINVAL, "set_sync: voter %u is too long", i);
            }
        }
        return 0;
    case FSM_CMD_SET_PAUSE:
    case FSM_CMD_SET_SYSTEM_ID:
    case FSM_CMD_SET_WAL_BOUND:
    case FSM_CMD_MEMBER_SEEN: return 0;
    case FSM_CMD_ADD_HISTORY:
        if (!fsm_str_ok(cmd->u.add_history.primary, FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: primary is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_CONFIG:
        return fsm_config_check(cmd->u.set_config.sync_mode, cmd->u.set_config.sync_node_count,
                                cmd->u.set_config.sync_commit, errmsg);
    case FSM_CMD_SCHEDULE_SWITCHOVER:
        if (!fsm_str_ok(cmd->u.schedule_switchover.from, FSM_NAME_MAX) ||
            !fsm_str_ok(cmd->u.schedule_switchover.to, FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: member name is too long", tn);
        }
        return 0;
    case FSM_CMD_CLEAR_SWITCHOVER: return 0;
    case FSM_CMD_SET_DYNAMIC:
    case FSM_CMD_SET_DYNAMIC_LAG: {
        int rc = fsm_config_check(cmd->u.set_dynamic.sync_mode, cmd->u.set_dynamic.sync_node_count,
                                  cmd->u.set_dynamic.sync_commit, errmsg);
        if (rc == 0 && cmd->u.set_dynamic.n_params > FSM_PARAMS_MAX) {
            rc = rpg_err(errmsg, RPG_EINVAL, "%s: %u parameters, at most %d", tn,
                         cmd->u.set_dynamic.n_params, FSM_PARAMS_MAX);
        }
        for (unsigned i = 0; rc == 0 && i < cmd->u.set_dynamic.n_params; i++) {
            if (!fsm_str_ok(cmd->u.set_dynamic.params[i].name, FSM_PARAM_NAME_MAX) ||
                !fsm_str_ok(cmd->u.set_dynamic.params[i].value, FSM_PARAM_VALUE_MAX)) {
                rc = rpg_err(errmsg, RPG_EINVAL, "%s: parameter %u is too long", tn, i);
            }
        }
        if (rc == 0 && cmd->u.set_dynamic.n_hba > FSM_HBA_MAX) {
            rc = rpg_err(errmsg, RPG_EINVAL, "%s: %u pg_hba lines, at most %d", tn,
                         cmd->u.set_dynamic.n_hba, FSM_HBA_MAX);
        }
        for (unsigned i = 0; rc == 0 && i < cmd->u.set_dynamic.n_hba; i++) {
            if (!fsm_str_ok(cmd->u.set_dynamic.hba[i], FSM_HBA_LINE_MAX)) {
                rc = rpg_err(errmsg, RPG_EINVAL, "%s: pg_hba line %u is too long", tn, i);
            }
        }
        return rc;
    }
    case FSM_CMD_TYPE_MAX: break;
    }
    return rpg_err(errmsg, RPG_EINVAL, "unknown command type %d", (int)cmd->type);
}

/* ---- History entries and switchovers ---- */

/* Checks one history entry against the one before it (NULL: none). */
int fsm_history_entry_check(const struct fsm_history_entry *h, const struct fsm_history_entry *prev,
                            char *msg)
{
    if (!fsm_str_ok(h->primary, FSM_NAME_MAX)) {
        return rpg_err(msg, RPG_EINVAL, "history primary is not terminated");
    }
    if (h->primary[0] == '\0') {
        return rpg_err(msg, RPG_EINVAL, "history primary is empty (timeline=%u)", h->timeline);
    }
    if (h->reason >= FSM_HISTORY_REASON_MAX) {
        return rpg_err(msg, RPG_EINVAL, "history reason %u out of range 0..%d", (unsigned)h->reason,
                       FSM_HISTORY_REASON_MAX - 1);
    }
    if (h->timeline == 0) {
        return rpg_err(msg, RPG_EINVAL, "history timeline is 0 (primary=%s)", h->primary);
    }
    if (h->prev_timeline >= h->timeline) {
        return rpg_err(msg, RPG_EINVAL, "history timeline %u does not follow timeline %u",
                       h->timeline, h->prev_timeline);
    }
    if (prev != NULL && h->timeline <= prev->timeline) {
        return rpg_err(msg, RPG_EEXIST,
                       "timeline %u is not after the last recorded one, %u (primary=%s)",
                       h->timeline, prev->timeline, h->primary);
    }
    return 0;
}

/* A scheduled switchover's fields, whatever the state (also for snapshots): a time when and
 * only when something is scheduled, and distinct members. */
int fsm_switchover_check(const struct fsm_switchover *w, char *msg)
{
    if (w->at_ms <= 0) {
        return rpg_err(msg, RPG_EINVAL, "switchover time %lld is not after the epoch",
                       (long long)w->at_ms);
    }
    if (w->from[0] != '\0' && strncmp(w->from, w->to, FSM_NAME_MAX) == 0) {
        return rpg_err(msg, RPG_EINVAL, "switchover from and to are the same member (%s)", w->from);
    }
    return 0;
}

/* ---- Snapshot checks ---- */

int fsm_state_check(const struct fsm_state *s, char *errmsg)
{
    const char *bad;
    uint64_t max_id = 0;

    if (!s->initialized && s->n_members != 0) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot is not initialized but has %u members",
                       s->n_members);
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        const struct fsm_member *m = &s->members[i];
        char msg[RPG_ERRMSG_SIZE];
        if ((bad = fsm_member_bad_string(m)) != NULL) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot member %u: %s not terminated", i, bad);
        }
        if (fsm_member_validate(m, msg) != 0 || fsm_member_unique(s->members, i, m, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot member %u: %s", i, msg);
        }
        if (m->id > max_id) {
            max_id = m->id;
        }
    }
    if (s->n_members > 0 && s->next_id <= max_id) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot next_id=%llu is not above member id %llu",
                       (unsigned long long)s->next_id, (unsigned long long)max_id);
    }
    if (s->primary.name[0] != '\0' && fsm_state_member(s, s->primary.name) == NULL) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot primary \"%s\" is not a member",
                       s->primary.name);
    }
    if (s->sync.k > s->sync.n_voters) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot sync k=%u exceeds voters=%u",
                       (unsigned)s->sync.k, s->sync.n_voters);
    }
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (fsm_state_member(s, s->sync.voters[i]) == NULL) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot sync voter \"%s\" is not a member",
                           s->sync.voters[i]);
        }
        if (fsm_sync_voter_index(s, s->sync.voters[i]) != (int)i) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot duplicate sync voter \"%s\"",
                           s->sync.voters[i]);
        }
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        char msg[RPG_ERRMSG_SIZE];
        if (fsm_history_entry_check(&s->history[i], i > 0 ? &s->history[i - 1] : NULL, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot history entry %u: %s", i, msg);
        }
    }
    if (s->switchover.at_ms != 0 || s->switchover.from[0] != '\0' || s->switchover.to[0] != '\0') {
        char msg[RPG_ERRMSG_SIZE];
        if (fsm_switchover_check(&s->switchover, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot scheduled switchover: %s", msg);
        }
    }
    {
        char msg[RPG_ERRMSG_SIZE];
        if (fsm_params_check(s->config.params, s->config.n_params, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot parameters: %s", msg);
        }
        if (fsm_hba_lines_check(s->config.hba, s->config.n_hba, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot pg_hba: %s", msg);
        }
    }
    if (s->n_rejected > s->n_applied) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot n_rejected=%llu exceeds n_applied=%llu",
                       (unsigned long long)s->n_rejected, (unsigned long long)s->n_applied);
    }
    return 0;
}

bool fsm_state_equal(const struct fsm_state *a, const struct fsm_state *b)
{
    if (a->initialized != b->initialized || a->paused != b->paused ||
        strncmp(a->scope, b->scope, FSM_NAME_MAX) != 0 || a->system_id != b->system_id ||
        a->next_id != b->next_id || a->n_applied != b->n_applied ||
        a->n_rejected != b->n_rejected || a->n_members != b->n_members ||
        strncmp(a->primary.name, b->primary.name, FSM_NAME_MAX) != 0 ||
        a->primary.term != b->primary.term || a->primary.timeline != b->primary.timeline ||
        a->sync.k != b->sync.k || a->sync.n_voters != b->sync.n_voters ||
        a->config.set != b->config.set || a->config.sync_mode != b->config.sync_mode ||
        a->config.sync_commit != b->config.sync_commit ||
        a->config.sync_node_count != b->config.sync_node_count || a->wal_bound != b->wal_bound ||
        a->wal_bound_timeline != b->wal_bound_timeline || a->n_history != b->n_history ||
        !switchover_equal(&a->switchover, &b->switchover) ||
        !params_equal(a->config.params, a->config.n_params, b->config.params, b->config.n_params) ||
        !hba_equal(a->config.hba, a->config.n_hba, b->config.hba, b->config.n_hba) ||
        a->config.max_lag_set != b->config.max_lag_set || a->config.max_lag != b->config.max_lag) {
        return false;
    }
    if (a->n_history > FSM_HISTORY_MAX) {
        return false;
    }
    for (unsigned i = 0; i < a->n_history; i++) {
        if (!history_equal(&a->history[i], &b->history[i])) {
            return false;
        }
    }
    if (a->n_members > FSM_MEMBERS_MAX || a->sync.n_voters > FSM_MEMBERS_MAX) {
        return false;
    }
    for (unsigned i = 0; i < a->n_members; i++) {
        if (!member_equal(&a->members[i], &b->members[i])) {
            return false;
        }
    }
    for (unsigned i = 0; i < a->sync.n_voters; i++) {
        if (strncmp(a->sync.voters[i], b->sync.voters[i], FSM_NAME_MAX) != 0) {
            return false;
        }
    }
    return true;
}
