/* The replicated cluster state: the checks every command and state must pass, apply, and the
 * libraft glue. The wire format is in fsm_codec.c. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
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

static bool member_equal(const struct fsm_member *a, const struct fsm_member *b)
{
    return a->id == b->id && strncmp(a->name, b->name, sizeof a->name) == 0 &&
           strncmp(a->raft_address, b->raft_address, sizeof a->raft_address) == 0 &&
           strncmp(a->api_address, b->api_address, sizeof a->api_address) == 0 &&
           strncmp(a->pg_address, b->pg_address, sizeof a->pg_address) == 0 && a->tags == b->tags &&
           a->failover_priority == b->failover_priority;
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

static int hba_check(const char (*lines)[FSM_HBA_LINE_MAX], unsigned n, char *errmsg)
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
static int params_check(const struct fsm_param *ps, unsigned n, char *errmsg)
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

static int config_check(unsigned mode, uint32_t count, unsigned commit, char *errmsg)
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
        return config_check(cmd->u.set_config.sync_mode, cmd->u.set_config.sync_node_count,
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
        int rc = config_check(cmd->u.set_dynamic.sync_mode, cmd->u.set_dynamic.sync_node_count,
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

static int sync_voter_index(const struct fsm_state *s, const char *name)
{
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (strncmp(s->sync.voters[i], name, FSM_NAME_MAX) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The fields every member needs, whatever the command (DESIGN.md §3). Writes the reason into
 * msg (the body of the rejection message). */
static int member_validate(const struct fsm_member *m, char *msg)
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
static int member_unique(const struct fsm_member *members, unsigned n, const struct fsm_member *m,
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
        if ((rc = member_validate(m, msg)) != 0) {
            return rc;
        }
        if ((rc = member_unique(cmd->u.init.members, i, m, msg)) != 0) {
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

    if ((rc = member_validate(m, msg)) != 0) {
        return rc;
    }
    if ((rc = member_unique(s->members, s->n_members, m, msg)) != 0) {
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

    int v = sync_voter_index(s, name);
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

/* Checks one history entry against the one before it (NULL: none). */
static int history_entry_check(const struct fsm_history_entry *h,
                               const struct fsm_history_entry *prev, char *msg)
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

/* Appends a promotion; timelines only grow, so a proposal made twice is rejected the second
 * time. The oldest entry makes room when the history is full. */
static int apply_add_history(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_history_entry *h = &cmd->u.add_history;
    int rc = history_entry_check(h, s->n_history > 0 ? &s->history[s->n_history - 1] : NULL, msg);
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

/* A scheduled switchover's fields, whatever the state (also for snapshots): a time when and
 * only when something is scheduled, and distinct members. */
static int switchover_check(const struct fsm_switchover *w, char *msg)
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

/* Records a switchover to run at a time; one at a time, so a second is refused until the first
 * is cleared (run, abandoned or cancelled). */
static int apply_schedule_switchover(struct fsm_state *s, const struct fsm_cmd *cmd, char *msg)
{
    const struct fsm_switchover *w = &cmd->u.schedule_switchover;
    int rc = switchover_check(w, msg);
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
    int rc = config_check(cmd->u.set_dynamic.sync_mode, cmd->u.set_dynamic.sync_node_count,
                          cmd->u.set_dynamic.sync_commit, msg);
    if (rc == 0) {
        rc = params_check(ps, n, msg);
    }
    if (rc == 0) {
        rc = hba_check(cmd->u.set_dynamic.hba, cmd->u.set_dynamic.n_hba, msg);
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
            rc = config_check(cmd->u.set_config.sync_mode, cmd->u.set_config.sync_node_count,
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
        if (member_validate(m, msg) != 0 || member_unique(s->members, i, m, msg) != 0) {
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
        if (sync_voter_index(s, s->sync.voters[i]) != (int)i) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot duplicate sync voter \"%s\"",
                           s->sync.voters[i]);
        }
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        char msg[RPG_ERRMSG_SIZE];
        if (history_entry_check(&s->history[i], i > 0 ? &s->history[i - 1] : NULL, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot history entry %u: %s", i, msg);
        }
    }
    if (s->switchover.at_ms != 0 || s->switchover.from[0] != '\0' || s->switchover.to[0] != '\0') {
        char msg[RPG_ERRMSG_SIZE];
        if (switchover_check(&s->switchover, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot scheduled switchover: %s", msg);
        }
    }
    {
        char msg[RPG_ERRMSG_SIZE];
        if (params_check(s->config.params, s->config.n_params, msg) != 0) {
            return rpg_err(errmsg, RPG_EPROTO, "snapshot parameters: %s", msg);
        }
        if (hba_check(s->config.hba, s->config.n_hba, msg) != 0) {
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
