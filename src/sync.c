#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/sync.h"

const char *sync_mode_name(enum sync_mode mode)
{
    switch (mode) {
    case SYNC_MODE_OFF: return "off";
    case SYNC_MODE_QUORUM: return "quorum";
    case SYNC_MODE_STRICT: return "strict";
    }
    return "invalid";
}

int sync_mode_parse(const char *word, enum sync_mode *mode, char *errmsg)
{
    static const enum sync_mode modes[] = {SYNC_MODE_OFF, SYNC_MODE_QUORUM, SYNC_MODE_STRICT};

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(word, sync_mode_name(modes[i])) == 0) {
            *mode = modes[i];
            return 0;
        }
    }
    return rpg_err(errmsg, RPG_EINVAL, "sync mode: expected off, quorum or strict, got \"%.64s\"",
                   word);
}

const char *sync_step_name(enum sync_step step)
{
    switch (step) {
    case SYNC_STEP_NONE: return "none";
    case SYNC_STEP_RECORD: return "record";
    case SYNC_STEP_CONFIGURE: return "configure";
    case SYNC_STEP_WAIT: return "wait";
    }
    return "invalid";
}

/* ---- Sets ---- */

void sync_set_init(struct sync_set *s, uint32_t k)
{
    memset(s, 0, sizeof *s);
    s->k = k;
}

/* 0 when name can be a synchronous standby's name; else RPG_EINVAL with a message. */
static int name_check(const char *name, char *errmsg)
{
    size_t n = strnlen(name, FSM_NAME_MAX);

    if (n == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "synchronous standby name is empty");
    }
    if (n >= FSM_NAME_MAX) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "synchronous standby name \"%.32s...\" is longer than %d", name,
                       FSM_NAME_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        /* PostgreSQL replaces any other byte of application_name, so such a name never
         * matches a WAL sender. */
        if (ch < 0x20 || ch > 0x7e) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "synchronous standby name has byte 0x%02x at offset %zu: "
                           "application_name keeps printable ASCII only",
                           ch, i);
        }
    }
    return 0;
}

/* Index of name, or of where it would go (*found false). */
static unsigned name_position(const struct sync_set *s, const char *name, bool *found)
{
    unsigned lo = 0;
    unsigned hi = s->n;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int c = strncmp(s->names[mid], name, FSM_NAME_MAX);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int sync_set_add(struct sync_set *s, const char *name, char *errmsg)
{
    bool found;
    unsigned at;
    int rc = name_check(name, errmsg);

    if (rc != 0) {
        return rc;
    }
    at = name_position(s, name, &found);
    if (found) {
        return rpg_err(errmsg, RPG_EEXIST, "synchronous standby \"%s\" listed twice", name);
    }
    if (s->n >= FSM_MEMBERS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "more than %d synchronous standbys", FSM_MEMBERS_MAX);
    }
    memmove(s->names[at + 1], s->names[at], (s->n - at) * sizeof s->names[0]);
    memset(s->names[at], 0, sizeof s->names[at]);
    memcpy(s->names[at], name, strlen(name));
    s->n++;
    return 0;
}

bool sync_set_equal(const struct sync_set *a, const struct sync_set *b)
{
    if (a->k != b->k || a->n != b->n) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (strncmp(a->names[i], b->names[i], FSM_NAME_MAX) != 0) {
            return false;
        }
    }
    return true;
}

bool sync_set_contains(const struct sync_set *s, const char *name)
{
    bool found;
    name_position(s, name, &found);
    return found;
}

/* Whether every name of a is in b. */
static bool names_subset(const struct sync_set *a, const struct sync_set *b)
{
    for (unsigned i = 0; i < a->n; i++) {
        if (!sync_set_contains(b, a->names[i])) {
            return false;
        }
    }
    return true;
}

bool sync_set_covers(const struct sync_set *recorded, const struct sync_set *s)
{
    return names_subset(s, recorded) && s->k >= recorded->k;
}

int sync_set_union(const struct sync_set *a, const struct sync_set *b, struct sync_set *out,
                   char *errmsg)
{
    struct sync_set u = *a;

    u.k = a->k < b->k ? a->k : b->k;
    for (unsigned i = 0; i < b->n; i++) {
        if (sync_set_contains(&u, b->names[i])) {
            continue;
        }
        if (u.n >= FSM_MEMBERS_MAX) {
            return rpg_err(errmsg, RPG_EINVAL, "synchronous set would name more than %d members",
                           FSM_MEMBERS_MAX);
        }
        int rc = sync_set_add(&u, b->names[i], errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    *out = u;
    return 0;
}

/* Whether s is as sync_set_add builds it: n in range, names usable, sorted and distinct. */
static int set_check(const struct sync_set *s, const char *what, char *errmsg)
{
    char why[RPG_ERRMSG_SIZE];

    if (s->n > FSM_MEMBERS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "%s synchronous set: %u names, more than %d", what, s->n,
                       FSM_MEMBERS_MAX);
    }
    for (unsigned i = 0; i < s->n; i++) {
        if (name_check(s->names[i], why) != 0) {
            return rpg_err(errmsg, RPG_EINVAL, "%s synchronous set: name %u: %s", what, i, why);
        }
        if (i > 0 && strncmp(s->names[i - 1], s->names[i], FSM_NAME_MAX) >= 0) {
            return rpg_err(errmsg, RPG_EINVAL,
                           "%s synchronous set: names not sorted and distinct at \"%s\"", what,
                           s->names[i]);
        }
    }
    return 0;
}

/* ---- synchronous_standby_names ---- */

/* Appends to buf at *len, keeping room for the terminator; false when it does not fit. */
static bool put(char *buf, size_t size, size_t *len, const char *str, size_t n)
{
    if (*len + n + 1 > size) {
        return false;
    }
    memcpy(buf + *len, str, n);
    *len += n;
    buf[*len] = '\0';
    return true;
}

int sync_set_format(const struct sync_set *s, char *buf, size_t size, char *errmsg)
{
    char head[32];
    size_t len = 0;

    if (size == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "no room for synchronous_standby_names");
    }
    buf[0] = '\0';
    if (s->k == 0) {
        return 0;
    }
    if (s->n == 0) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "synchronous_standby_names cannot ask for k=%" PRIu32 " with no name", s->k);
    }
    snprintf(head, sizeof head, "ANY %" PRIu32 " (", s->k);
    bool ok = put(buf, size, &len, head, strlen(head));
    for (unsigned i = 0; ok && i < s->n; i++) {
        const char *name = s->names[i];
        if (i > 0) {
            ok = put(buf, size, &len, ", ", 2);
        }
        ok = ok && put(buf, size, &len, "\"", 1);
        for (size_t j = 0; ok && name[j] != '\0' && j < FSM_NAME_MAX; j++) {
            /* A quoted identifier doubles its quote characters. */
            if (name[j] == '"') {
                ok = put(buf, size, &len, "\"\"", 2);
            } else {
                ok = put(buf, size, &len, &name[j], 1);
            }
        }
        ok = ok && put(buf, size, &len, "\"", 1);
    }
    ok = ok && put(buf, size, &len, ")", 1);
    if (!ok) {
        buf[0] = '\0';
        return rpg_err(errmsg, RPG_EINVAL, "synchronous_standby_names does not fit in %zu bytes",
                       size);
    }
    return 0;
}

static int parse_fail(const char *value, size_t at, const char *expected, char *errmsg)
{
    return rpg_err(errmsg, RPG_EINVAL,
                   "synchronous_standby_names '%.80s' is not a form raftpg writes: expected %s at "
                   "offset %zu",
                   value, expected, at);
}

int sync_set_parse(const char *value, struct sync_set *out, char *errmsg)
{
    struct sync_set s;
    const char *p = value;
    uint32_t k = 0;
    char why[RPG_ERRMSG_SIZE];

    sync_set_init(&s, 0);
    if (*p == '\0') {
        *out = s;
        return 0;
    }
    if (strncmp(p, "ANY ", 4) != 0) {
        return parse_fail(value, 0, "'ANY '", errmsg);
    }
    p += 4;
    if (*p < '1' || *p > '9') {
        return parse_fail(value, (size_t)(p - value), "k in 1..16", errmsg);
    }
    while (*p >= '0' && *p <= '9') {
        k = k * 10 + (uint32_t)(*p - '0');
        if (k > FSM_MEMBERS_MAX) {
            return parse_fail(value, (size_t)(p - value), "k in 1..16", errmsg);
        }
        p++;
    }
    s.k = k;
    if (strncmp(p, " (", 2) != 0) {
        return parse_fail(value, (size_t)(p - value), "' ('", errmsg);
    }
    p += 2;
    for (;;) {
        char name[FSM_NAME_MAX];
        size_t n = 0;

        if (*p != '"') {
            return parse_fail(value, (size_t)(p - value), "a quoted name", errmsg);
        }
        p++;
        for (;;) {
            if (*p == '\0') {
                return parse_fail(value, (size_t)(p - value), "a closing quote", errmsg);
            }
            if (*p == '"' && p[1] != '"') {
                break;
            }
            if (n + 1 >= FSM_NAME_MAX) {
                return parse_fail(value, (size_t)(p - value), "a name of at most 63 characters",
                                  errmsg);
            }
            name[n++] = *p;
            p += *p == '"' ? 2 : 1;
        }
        name[n] = '\0';
        p++;
        int rc = sync_set_add(&s, name, why);
        if (rc != 0) {
            return rpg_err(errmsg, RPG_EINVAL, "synchronous_standby_names '%.80s': %s", value, why);
        }
        if (strncmp(p, ", ", 2) == 0) {
            p += 2;
            continue;
        }
        if (p[0] == ')' && p[1] == '\0') {
            break;
        }
        return parse_fail(value, (size_t)(p - value), "', ' or a final ')'", errmsg);
    }
    *out = s;
    return 0;
}

/* ---- The replicated state ---- */

int sync_set_from_state(const struct fsm_state *state, struct sync_set *out, char *errmsg)
{
    struct sync_set s;
    char why[RPG_ERRMSG_SIZE];

    sync_set_init(&s, state->sync.k);
    if (state->sync.n_voters > FSM_MEMBERS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "recorded synchronous set: %u voters, more than %d",
                       state->sync.n_voters, FSM_MEMBERS_MAX);
    }
    for (unsigned i = 0; i < state->sync.n_voters; i++) {
        if (sync_set_add(&s, state->sync.voters[i], why) != 0) {
            return rpg_err(errmsg, RPG_EINVAL, "recorded synchronous set: voter %u: %s", i, why);
        }
    }
    *out = s;
    return 0;
}

void sync_set_to_cmd(const struct sync_set *s, uint64_t term, struct fsm_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_SET_SYNC;
    cmd->term = term;
    cmd->u.set_sync.k = s->k;
    cmd->u.set_sync.n_voters = s->n;
    memcpy(cmd->u.set_sync.voters, s->names, s->n * sizeof s->names[0]);
}

/* ---- The desired set ---- */

static bool caught_up(const struct sync_input *in, const struct sync_standby *sb)
{
    if (sb->flush_position >= in->primary_flush_position) {
        return true;
    }
    return in->primary_flush_position - sb->flush_position <= in->max_lag_bytes;
}

int sync_desired(const struct sync_input *in, struct sync_set *out, bool *degraded, char *errmsg)
{
    struct sync_set eligible;
    struct sync_set candidates; /* every standby that is not nosync */
    struct sync_set seen;       /* every standby, to find duplicates */
    char why[RPG_ERRMSG_SIZE];
    int rc;

    if (in->mode != SYNC_MODE_OFF && in->mode != SYNC_MODE_QUORUM && in->mode != SYNC_MODE_STRICT) {
        return rpg_err(errmsg, RPG_EINVAL, "unknown sync mode %d", (int)in->mode);
    }
    if (in->mode != SYNC_MODE_OFF && (in->k_wanted < 1 || in->k_wanted > FSM_MEMBERS_MAX)) {
        return rpg_err(errmsg, RPG_EINVAL, "sync mode %s: k=%" PRIu32 " out of range 1..%d",
                       sync_mode_name(in->mode), in->k_wanted, FSM_MEMBERS_MAX);
    }
    if (in->primary == NULL || name_check(in->primary, why) != 0) {
        return rpg_err(errmsg, RPG_EINVAL, "primary: %s", in->primary == NULL ? "no name" : why);
    }
    if (in->n_standbys > FSM_MEMBERS_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "%u standbys, more than %d", in->n_standbys,
                       FSM_MEMBERS_MAX);
    }
    sync_set_init(&eligible, 0);
    sync_set_init(&candidates, 0);
    sync_set_init(&seen, 0);
    for (unsigned i = 0; i < in->n_standbys; i++) {
        const struct sync_standby *sb = &in->standbys[i];
        if (strncmp(sb->name, in->primary, FSM_NAME_MAX) == 0) {
            return rpg_err(errmsg, RPG_EINVAL, "standby \"%s\" is the primary", sb->name);
        }
        rc = sync_set_add(&seen, sb->name, why);
        if (rc != 0) {
            return rpg_err(errmsg, RPG_EINVAL, "standby %u: %s", i, why);
        }
        if (sb->nosync) {
            continue;
        }
        sync_set_add(&candidates, sb->name, NULL);
        if ((sb->streaming && caught_up(in, sb)) ||
            (in->mode == SYNC_MODE_QUORUM && !sb->streaming && sb->expected)) {
            sync_set_add(&eligible, sb->name, NULL);
        }
    }

    switch (in->mode) {
    case SYNC_MODE_OFF:
        sync_set_init(out, 0);
        *degraded = false;
        return 0;
    case SYNC_MODE_QUORUM:
        *degraded = eligible.n < in->k_wanted;
        if (eligible.n == 0) {
            sync_set_init(out, 0);
        } else {
            *out = eligible;
            out->k = *degraded ? eligible.n : in->k_wanted;
        }
        return 0;
    case SYNC_MODE_STRICT:
        *degraded = eligible.n < in->k_wanted;
        if (!*degraded) {
            *out = eligible;
        } else if (candidates.n > 0) {
            *out = candidates;
        } else {
            sync_set_init(out, 0);
            sync_set_add(out, in->primary, NULL);
        }
        out->k = in->k_wanted;
        return 0;
    }
    return rpg_err(errmsg, RPG_EINVAL, "unknown sync mode %d", (int)in->mode);
}

/* ---- The next step ---- */

/* "node2, node3" into buf, truncated to fit. */
static const char *names_list(const struct sync_set *s, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < s->n && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i > 0 ? ", " : "", s->names[i]);
        if (w < 0) {
            break;
        }
        len += (size_t)w;
    }
    return buf;
}

static void decision_set(struct sync_decision *out, enum sync_step step, const struct sync_set *set,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void decision_set(struct sync_decision *out, enum sync_step step, const struct sync_set *set,
                         const char *fmt, ...)
{
    va_list ap;

    out->step = step;
    if (set != NULL) {
        out->set = *set;
    } else {
        sync_set_init(&out->set, 0);
    }
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
}

/* How many names of s have flushed up to position; the primary counts as having flushed all. */
static unsigned count_flushed(const struct sync_input *in, const struct sync_set *s,
                              uint64_t position)
{
    unsigned count = 0;

    for (unsigned i = 0; i < s->n; i++) {
        if (strncmp(s->names[i], in->primary, FSM_NAME_MAX) == 0) {
            count++;
            continue;
        }
        for (unsigned j = 0; j < in->n_standbys; j++) {
            if (strncmp(s->names[i], in->standbys[j].name, FSM_NAME_MAX) == 0) {
                if (in->standbys[j].flush_position >= position) {
                    count++;
                }
                break;
            }
        }
    }
    return count;
}

int sync_decide(const struct sync_input *in, const struct sync_set *recorded,
                const struct sync_set *configured, uint64_t configured_since,
                const struct sync_set *desired, struct sync_decision *out, char *errmsg)
{
    char names[SYNC_WHY_MAX];
    char value[SYNC_VALUE_MAX];
    struct sync_set target;
    int rc;

    if ((rc = set_check(recorded, "recorded", errmsg)) != 0 ||
        (rc = set_check(configured, "configured", errmsg)) != 0 ||
        (rc = set_check(desired, "desired", errmsg)) != 0) {
        return rc;
    }
    if (in->primary == NULL) {
        return rpg_err(errmsg, RPG_EINVAL, "primary: no name");
    }
    if (configured->k > 0 && configured->n == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "configured synchronous set: k=%" PRIu32 " with no name",
                       configured->k);
    }
    if (desired->k > 0 && desired->n == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "desired synchronous set: k=%" PRIu32 " with no name",
                       desired->k);
    }

    /* 1. Widen the log first (rule 7): the record must cover what PostgreSQL is about to rely
     * on. Covering configured too repairs a record that PostgreSQL already outruns (a value
     * set before this leader, or an asynchronous PostgreSQL under a record with k > 0): the
     * weaker record is the true one. */
    if (!sync_set_covers(recorded, desired) || !sync_set_covers(recorded, configured)) {
        struct sync_set wide;
        if ((rc = sync_set_union(recorded, configured, &wide, errmsg)) != 0 ||
            (rc = sync_set_union(&wide, desired, &wide, errmsg)) != 0) {
            return rc;
        }
        if (!sync_set_covers(recorded, configured)) {
            decision_set(out, SYNC_STEP_RECORD, &wide,
                         "record k=%" PRIu32 " (%s): PostgreSQL runs with a set the log does not "
                         "cover",
                         wide.k, names_list(&wide, names, sizeof names));
        } else {
            decision_set(out, SYNC_STEP_RECORD, &wide,
                         "record k=%" PRIu32 " (%s) before PostgreSQL relies on it (rule 7)",
                         wide.k, names_list(&wide, names, sizeof names));
        }
        return 0;
    }

    /* 2. PostgreSQL next: the record covers desired, so (I) holds once it runs with it. */
    if (!sync_set_equal(configured, desired)) {
        if ((rc = sync_set_format(desired, value, sizeof value, errmsg)) != 0) {
            return rc;
        }
        decision_set(out, SYNC_STEP_CONFIGURE, desired, "set synchronous_standby_names to '%s'",
                     value);
        return 0;
    }

    /* 3. Narrow the log last. A record cannot claim more acknowledgements than it has voters
     * (the state machine refuses it), so a strict set asking for more keeps k = n there. */
    target = *desired;
    if (target.k > target.n) {
        target.k = target.n;
    }
    if (!sync_set_equal(recorded, &target)) {
        /* Here target names no voter that recorded lacks and asks no fewer acknowledgements
         * (else step 1 had fired), so it claims more: commits acknowledged under an earlier
         * PostgreSQL value must be on target.k of its voters first. */
        unsigned flushed = target.k > 0 ? count_flushed(in, &target, configured_since) : 0;
        if (flushed < target.k) {
            decision_set(out, SYNC_STEP_WAIT, NULL,
                         "waiting to record k=%" PRIu32 " (%s): %u of its voters flushed up to "
                         "%X/%X, need %" PRIu32,
                         target.k, names_list(&target, names, sizeof names), flushed,
                         (unsigned)(configured_since >> 32), (unsigned)configured_since, target.k);
            return 0;
        }
        decision_set(out, SYNC_STEP_RECORD, &target,
                     "record k=%" PRIu32 " (%s) now that PostgreSQL relies on no other voter",
                     target.k, names_list(&target, names, sizeof names));
        return 0;
    }

    if ((rc = sync_set_format(desired, value, sizeof value, errmsg)) != 0) {
        return rc;
    }
    decision_set(out, SYNC_STEP_NONE, NULL, "synchronous set is current: %s",
                 desired->k == 0 ? "asynchronous" : value);
    return 0;
}

/* ---- Candidate choice ---- */

unsigned sync_quorum_needed(const struct sync_set *recorded, bool *provable)
{
    if (recorded->k == 0 || recorded->k > recorded->n) {
        *provable = false;
        return 0;
    }
    *provable = true;
    return recorded->n - recorded->k + 1;
}

bool sync_candidate_ok(const struct sync_set *recorded, const char *const *heard, unsigned n_heard,
                       char *why, size_t why_size)
{
    char names[SYNC_WHY_MAX];
    bool provable;
    unsigned needed = sync_quorum_needed(recorded, &provable);
    unsigned count = 0;

    names_list(recorded, names, sizeof names);
    if (!provable) {
        if (recorded->k == 0) {
            snprintf(why, why_size,
                     "synchronous replication was off or degraded (k=0): no standby provably "
                     "holds every acknowledged commit");
        } else {
            snprintf(why, why_size,
                     "recorded synchronous set asks k=%" PRIu32 " of %u voters (%s): no standby "
                     "provably holds every acknowledged commit",
                     recorded->k, recorded->n, names);
        }
        return false;
    }
    for (unsigned i = 0; i < recorded->n; i++) {
        for (unsigned j = 0; j < n_heard; j++) {
            if (heard[j] != NULL && strncmp(heard[j], recorded->names[i], FSM_NAME_MAX) == 0) {
                count++;
                break;
            }
        }
    }
    snprintf(why, why_size,
             "heard from %u of the synchronous voters (%s) with k=%" PRIu32 ": need %u", count,
             names, recorded->k, needed);
    return count >= needed;
}

void sync_settings_in_force(const struct fsm_state *state, int file_mode, unsigned file_k,
                            int file_commit, struct sync_settings *out)
{
    out->recorded = state != NULL && state->config.set;
    out->mode = out->recorded ? state->config.sync_mode : file_mode;
    out->k = out->recorded ? state->config.sync_node_count : file_k;
    out->commit = out->recorded ? state->config.sync_commit : file_commit;
}

void sync_max_lag_in_force(const struct fsm_state *state, bool file_set, uint64_t file_lag,
                           bool *set, uint64_t *lag)
{
    bool recorded = state != NULL && state->initialized && state->config.set;
    *set = recorded ? state->config.max_lag_set : file_set;
    *lag = *set ? (recorded ? state->config.max_lag : file_lag) : 0;
}

bool sync_member_in_sets(const struct fsm_state *state, const char *configured, const char *name)
{
    for (unsigned i = 0; i < state->sync.n_voters; i++) {
        if (strcmp(state->sync.voters[i], name) == 0) {
            return true;
        }
    }
    if (configured == NULL || configured[0] == '\0') {
        return false;
    }
    struct sync_set set;
    char errmsg[RPG_ERRMSG_SIZE];
    if (sync_set_parse(configured, &set, errmsg) == 0) {
        return sync_set_contains(&set, name);
    }
    /* A value this module did not write: the name quoted anywhere in it counts. */
    char quoted[FSM_NAME_MAX + 3];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    return strstr(configured, quoted) != NULL;
}

enum sync_leave sync_leave_tick(bool leader, bool in_sets, unsigned *ticks)
{
    if (!leader) {
        return SYNC_LEAVE_NOT_LEADER;
    }
    if (!in_sets) {
        return SYNC_LEAVE_REMOVE;
    }
    return ++*ticks >= SYNC_LEAVE_MAX_TICKS ? SYNC_LEAVE_TIMEOUT : SYNC_LEAVE_WAIT;
}

enum sync_remove_start sync_remove_start(const char *removing, const char *name, bool in_sets,
                                         const char *switchover_to)
{
    /* Removed, the candidate could never take over: the switchover would stop the primary for
     * nothing and end in its time-out. Its end comes first. */
    if (switchover_to != NULL && strcmp(switchover_to, name) == 0) {
        return SYNC_REMOVE_SWITCHOVER;
    }
    /* Out of every set, no wait is needed, whichever removal waits meanwhile. */
    if (!in_sets) {
        return SYNC_REMOVE_NOW;
    }
    if (removing[0] != '\0') {
        return strcmp(removing, name) == 0 ? SYNC_REMOVE_ALREADY : SYNC_REMOVE_BUSY;
    }
    return SYNC_REMOVE_LEAVE_FIRST;
}
