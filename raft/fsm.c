/* The replicated cluster state: command codec, apply, snapshot codec and the libraft glue.
 *
 * Wire format (all integers little-endian, written byte by byte so the host layout never
 * leaks into the log):
 *
 *   command  = header payload padding
 *   header   = u8 version, u8 type, u16 reserved (0), u32 payload length
 *   payload  = u64 term, then the fields of the type (see cmd_put)
 *   snapshot = u32 magic "RPGS", u8 version, u8 reserved (0), u16 reserved (0),
 *              u64 payload length, payload (see state_put), padding
 *   string   = u16 length, bytes (no NUL inside, length < the field's buffer size)
 *   member   = u64 id, string name, raft_address, api_address, pg_address, u32 tags,
 *              i32 failover_priority (two's complement)
 *   history  = u32 timeline, u32 prev_timeline, u64 lsn, u64 time_ms (two's complement), u64 term,
 * u8 reason, string primary padding  = zero bytes up to a multiple of 8 (libraft 0.15 corrupts its
 * log otherwise, RAFT-NOTES.md); decoders insist the padding is there and zero.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/fsm.h"

#define CMD_HEADER_SIZE 8
#define SNAP_HEADER_SIZE 16
/* "RPGS" read as a little-endian u32. */
#define SNAP_MAGIC 0x53475052u

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- Encoder primitives ----
 * With base == NULL the encoder only counts, so sizing and writing share one code path. */

struct enc {
    uint8_t *base;
    size_t pos;
};

static void put_u8(struct enc *e, uint8_t v)
{
    if (e->base != NULL) {
        e->base[e->pos] = v;
    }
    e->pos += 1;
}

static void put_u16(struct enc *e, uint16_t v)
{
    put_u8(e, (uint8_t)v);
    put_u8(e, (uint8_t)(v >> 8));
}

static void put_u32(struct enc *e, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        put_u8(e, (uint8_t)(v >> (8 * i)));
    }
}

static void put_u64(struct enc *e, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        put_u8(e, (uint8_t)(v >> (8 * i)));
    }
}

/* s must have been checked with str_ok() for its buffer size (< 65536). */
static void put_str(struct enc *e, const char *s)
{
    size_t n = strlen(s);
    put_u16(e, (uint16_t)n);
    if (e->base != NULL) {
        memcpy(e->base + e->pos, s, n);
    }
    e->pos += n;
}

/* ---- Decoder primitives ----
 * Errors are sticky: after the first one every get_* returns zeros and the first message stays,
 * so field parsers read straight through and check d->rc once. */

struct dec {
    const uint8_t *base;
    size_t pos;
    size_t end;       /* bytes the header promises; never read at or past it */
    const char *what; /* "command" or "snapshot", for messages */
    int rc;
    char *errmsg;
};

static bool need(struct dec *d, size_t n)
{
    if (d->rc != 0) {
        return false;
    }
    if (n > d->end - d->pos) {
        d->rc = rpg_err(d->errmsg, RPG_EPROTO, "%s truncated at byte %zu, need %zu", d->what,
                        d->end, d->pos + n);
        return false;
    }
    return true;
}

static void dec_fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dec_fail(struct dec *d, const char *fmt, ...)
{
    if (d->rc != 0) {
        return;
    }
    d->rc = RPG_EPROTO;
    if (d->errmsg != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->errmsg, RPG_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
}

static uint8_t get_u8(struct dec *d)
{
    if (!need(d, 1)) {
        return 0;
    }
    return d->base[d->pos++];
}

static uint16_t get_u16(struct dec *d)
{
    if (!need(d, 2)) {
        return 0;
    }
    uint16_t v = (uint16_t)(d->base[d->pos] | (d->base[d->pos + 1] << 8));
    d->pos += 2;
    return v;
}

static uint32_t get_u32(struct dec *d)
{
    if (!need(d, 4)) {
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)d->base[d->pos + (size_t)i] << (8 * i);
    }
    d->pos += 4;
    return v;
}

static uint64_t get_u64(struct dec *d)
{
    if (!need(d, 8)) {
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)d->base[d->pos + (size_t)i] << (8 * i);
    }
    d->pos += 8;
    return v;
}

static bool get_bool(struct dec *d, const char *field)
{
    uint8_t v = get_u8(d);
    if (v > 1) {
        dec_fail(d, "%s field %s must be 0 or 1, got %u", d->what, field, (unsigned)v);
    }
    return v == 1;
}

/* Copies a string into dst[size], always terminated; dst is zeroed beyond the string so that
 * decoded structures compare equal bytewise too. */
static void get_str(struct dec *d, char *dst, size_t size, const char *field)
{
    memset(dst, 0, size);
    uint16_t n = get_u16(d);
    if (d->rc != 0) {
        return;
    }
    if (n >= size) {
        dec_fail(d, "%s field %s is %u bytes long, maximum is %zu", d->what, field, (unsigned)n,
                 size - 1);
        return;
    }
    if (!need(d, n)) {
        return;
    }
    if (memchr(d->base + d->pos, '\0', n) != NULL) {
        dec_fail(d, "%s field %s contains a NUL byte", d->what, field);
        return;
    }
    memcpy(dst, d->base + d->pos, n);
    d->pos += n;
}

/* Reads a u16 count and checks it against max. */
static unsigned get_count(struct dec *d, unsigned max, const char *field)
{
    uint16_t n = get_u16(d);
    if (d->rc == 0 && n > max) {
        dec_fail(d, "%s field %s=%u out of range 0..%u", d->what, field, (unsigned)n, max);
        return 0;
    }
    return n;
}

/* After the fields: the payload must be consumed exactly and the padding must be zero. */
static void dec_finish(struct dec *d, size_t total)
{
    if (d->rc != 0) {
        return;
    }
    if (d->pos != d->end) {
        dec_fail(d, "%s has trailing garbage: %zu bytes after its fields at byte %zu", d->what,
                 d->end - d->pos, d->pos);
        return;
    }
    for (size_t i = d->end; i < total; i++) {
        if (d->base[i] != 0) {
            dec_fail(d, "%s padding byte %zu is not zero", d->what, i);
            return;
        }
    }
}

/* ---- Strings ---- */

/* A string held in a char[size] is valid when it is terminated inside the buffer. */
static bool str_ok(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void str_copy(char *dst, const char *src, size_t size)
{
    size_t n = strnlen(src, size - 1);
    memset(dst, 0, size);
    memcpy(dst, src, n);
}

/* ---- Members ---- */

static void member_put(struct enc *e, const struct fsm_member *m)
{
    put_u64(e, m->id);
    put_str(e, m->name);
    put_str(e, m->raft_address);
    put_str(e, m->api_address);
    put_str(e, m->pg_address);
    put_u32(e, m->tags);
    put_u32(e, (uint32_t)m->failover_priority);
}

static void member_get(struct dec *d, struct fsm_member *m)
{
    m->id = get_u64(d);
    get_str(d, m->name, sizeof m->name, "member.name");
    get_str(d, m->raft_address, sizeof m->raft_address, "member.raft_address");
    get_str(d, m->api_address, sizeof m->api_address, "member.api_address");
    get_str(d, m->pg_address, sizeof m->pg_address, "member.pg_address");
    m->tags = get_u32(d);
    /* Two's complement, spelled out because converting values above INT32_MAX to int32_t is
     * implementation-defined. */
    uint32_t prio = get_u32(d);
    m->failover_priority = prio <= INT32_MAX ? (int32_t)prio : -(int32_t)(UINT32_MAX - prio) - 1;
}

/* Returns the name of the first string field of m that is not terminated, or NULL. */
static const char *member_bad_string(const struct fsm_member *m)
{
    if (!str_ok(m->name, sizeof m->name)) {
        return "name";
    }
    if (!str_ok(m->raft_address, sizeof m->raft_address)) {
        return "raft_address";
    }
    if (!str_ok(m->api_address, sizeof m->api_address)) {
        return "api_address";
    }
    if (!str_ok(m->pg_address, sizeof m->pg_address)) {
        return "pg_address";
    }
    return NULL;
}

static void member_copy(struct fsm_member *dst, const struct fsm_member *src)
{
    memset(dst, 0, sizeof *dst);
    dst->id = src->id;
    str_copy(dst->name, src->name, sizeof dst->name);
    str_copy(dst->raft_address, src->raft_address, sizeof dst->raft_address);
    str_copy(dst->api_address, src->api_address, sizeof dst->api_address);
    str_copy(dst->pg_address, src->pg_address, sizeof dst->pg_address);
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

/* ---- Commands ---- */

const char *fsm_cmd_type_name(enum fsm_cmd_type type)
{
    switch (type) {
    case FSM_CMD_INIT: return "init";
    case FSM_CMD_MEMBER_ADD: return "member_add";
    case FSM_CMD_MEMBER_REMOVE: return "member_remove";
    case FSM_CMD_SET_PRIMARY: return "set_primary";
    case FSM_CMD_SET_SYNC: return "set_sync";
    case FSM_CMD_SET_PAUSE: return "set_pause";
    case FSM_CMD_SET_SYSTEM_ID: return "set_system_id";
    case FSM_CMD_SET_CONFIG: return "set_config";
    case FSM_CMD_SET_WAL_BOUND: return "set_wal_bound";
    case FSM_CMD_MEMBER_SEEN: return "member_seen";
    case FSM_CMD_ADD_HISTORY: return "add_history";
    case FSM_CMD_SCHEDULE_SWITCHOVER: return "schedule_switchover";
    case FSM_CMD_CLEAR_SWITCHOVER: return "clear_switchover";
    case FSM_CMD_SET_DYNAMIC: return "set_dynamic";
    case FSM_CMD_SET_DYNAMIC_LAG: return "set_dynamic_lag";
    case FSM_CMD_TYPE_MAX: break;
    }
    return "unknown";
}

static bool cmd_type_known(unsigned type)
{
    return type >= FSM_CMD_INIT && type < FSM_CMD_TYPE_MAX;
}

/* The version a command of this type is written with (FSM_VERSION_BASE unless it needs more). */
static unsigned cmd_version(unsigned type)
{
    switch (type) {
    case FSM_CMD_ADD_HISTORY: return 4;
    case FSM_CMD_SCHEDULE_SWITCHOVER:
    case FSM_CMD_CLEAR_SWITCHOVER: return 5;
    case FSM_CMD_SET_DYNAMIC: return 6;
    case FSM_CMD_SET_DYNAMIC_LAG: return 7;
    default: return FSM_VERSION_BASE;
    }
}

const char *fsm_history_reason_name(int reason)
{
    switch (reason) {
    case FSM_HISTORY_BOOTSTRAP: return "bootstrap";
    case FSM_HISTORY_FAILOVER: return "failover";
    case FSM_HISTORY_SWITCHOVER: return "switchover";
    }
    return "unknown";
}

static void history_put(struct enc *e, const struct fsm_history_entry *h)
{
    put_u32(e, h->timeline);
    put_u32(e, h->prev_timeline);
    put_u64(e, h->lsn);
    put_u64(e, (uint64_t)h->time_ms);
    put_u64(e, h->term);
    put_u8(e, h->reason);
    put_str(e, h->primary);
}

static void history_get(struct dec *d, struct fsm_history_entry *h)
{
    h->timeline = get_u32(d);
    h->prev_timeline = get_u32(d);
    h->lsn = get_u64(d);
    uint64_t t = get_u64(d);
    h->time_ms = t <= INT64_MAX ? (int64_t)t : -(int64_t)(UINT64_MAX - t) - 1;
    h->term = get_u64(d);
    h->reason = get_u8(d);
    get_str(d, h->primary, sizeof h->primary, "history.primary");
}

static void switchover_put(struct enc *e, const struct fsm_switchover *w)
{
    put_u64(e, (uint64_t)w->at_ms);
    put_str(e, w->from);
    put_str(e, w->to);
}

static int64_t i64_of(uint64_t t)
{
    return t <= INT64_MAX ? (int64_t)t : -(int64_t)(UINT64_MAX - t) - 1;
}

static void switchover_get(struct dec *d, struct fsm_switchover *w)
{
    w->at_ms = i64_of(get_u64(d));
    get_str(d, w->from, sizeof w->from, "switchover.from");
    get_str(d, w->to, sizeof w->to, "switchover.to");
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
        if (!str_ok(lines[i], FSM_HBA_LINE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "pg_hba line %u is not terminated", i);
        }
        int rc = fsm_hba_check(i, lines[i], errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void hba_put(struct enc *e, const char (*lines)[FSM_HBA_LINE_MAX], unsigned n)
{
    put_u16(e, (uint16_t)n);
    for (unsigned i = 0; i < n; i++) {
        put_str(e, lines[i]);
    }
}

static unsigned hba_get(struct dec *d, char (*lines)[FSM_HBA_LINE_MAX])
{
    unsigned n = get_count(d, FSM_HBA_MAX, "n_hba");
    for (unsigned i = 0; i < n && d->rc == 0; i++) {
        get_str(d, lines[i], FSM_HBA_LINE_MAX, "hba");
    }
    return d->rc == 0 ? n : 0;
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
        if (!str_ok(ps[i].name, FSM_PARAM_NAME_MAX) || !str_ok(ps[i].value, FSM_PARAM_VALUE_MAX)) {
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

static void params_put(struct enc *e, const struct fsm_param *ps, unsigned n)
{
    put_u16(e, (uint16_t)n);
    for (unsigned i = 0; i < n; i++) {
        put_str(e, ps[i].name);
        put_str(e, ps[i].value);
    }
}

static unsigned params_get(struct dec *d, struct fsm_param *ps)
{
    unsigned n = get_count(d, FSM_PARAMS_MAX, "n_params");
    for (unsigned i = 0; i < n && d->rc == 0; i++) {
        get_str(d, ps[i].name, FSM_PARAM_NAME_MAX, "param.name");
        get_str(d, ps[i].value, FSM_PARAM_VALUE_MAX, "param.value");
    }
    return d->rc == 0 ? n : 0;
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
static int cmd_check(const struct fsm_cmd *cmd, char *errmsg)
{
    const char *tn = fsm_cmd_type_name(cmd->type);
    const char *bad;

    switch (cmd->type) {
    case FSM_CMD_INIT:
        if (!str_ok(cmd->u.init.scope, sizeof cmd->u.init.scope)) {
            return rpg_err(errmsg, RPG_EINVAL, "init: scope is longer than %d bytes",
                           FSM_NAME_MAX - 1);
        }
        if (cmd->u.init.n_members > FSM_MEMBERS_MAX) {
            return rpg_err(errmsg, RPG_EINVAL, "init: member count %u out of range 0..%d",
                           cmd->u.init.n_members, FSM_MEMBERS_MAX);
        }
        for (unsigned i = 0; i < cmd->u.init.n_members; i++) {
            if ((bad = member_bad_string(&cmd->u.init.members[i])) != NULL) {
                return rpg_err(errmsg, RPG_EINVAL, "init: member %u: %s is too long", i, bad);
            }
        }
        return 0;
    case FSM_CMD_MEMBER_ADD:
        if ((bad = member_bad_string(&cmd->u.member_add)) != NULL) {
            return rpg_err(errmsg, RPG_EINVAL, "member_add: %s is too long", bad);
        }
        return 0;
    case FSM_CMD_MEMBER_REMOVE:
        if (!str_ok(cmd->u.member_remove.name, sizeof cmd->u.member_remove.name)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: name is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_PRIMARY:
        if (!str_ok(cmd->u.set_primary.name, sizeof cmd->u.set_primary.name)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: name is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_SYNC:
        if (cmd->u.set_sync.n_voters > FSM_MEMBERS_MAX) {
            return rpg_err(errmsg, RPG_EINVAL, "set_sync: voter count %u out of range 0..%d",
                           cmd->u.set_sync.n_voters, FSM_MEMBERS_MAX);
        }
        for (unsigned i = 0; i < cmd->u.set_sync.n_voters; i++) {
            if (!str_ok(cmd->u.set_sync.voters[i], FSM_NAME_MAX)) {
                return rpg_err(errmsg, RPG_EINVAL, "set_sync: voter %u is too long", i);
            }
        }
        return 0;
    case FSM_CMD_SET_PAUSE:
    case FSM_CMD_SET_SYSTEM_ID:
    case FSM_CMD_SET_WAL_BOUND:
    case FSM_CMD_MEMBER_SEEN: return 0;
    case FSM_CMD_ADD_HISTORY:
        if (!str_ok(cmd->u.add_history.primary, FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "%s: primary is too long", tn);
        }
        return 0;
    case FSM_CMD_SET_CONFIG:
        return config_check(cmd->u.set_config.sync_mode, cmd->u.set_config.sync_node_count,
                            cmd->u.set_config.sync_commit, errmsg);
    case FSM_CMD_SCHEDULE_SWITCHOVER:
        if (!str_ok(cmd->u.schedule_switchover.from, FSM_NAME_MAX) ||
            !str_ok(cmd->u.schedule_switchover.to, FSM_NAME_MAX)) {
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
            if (!str_ok(cmd->u.set_dynamic.params[i].name, FSM_PARAM_NAME_MAX) ||
                !str_ok(cmd->u.set_dynamic.params[i].value, FSM_PARAM_VALUE_MAX)) {
                rc = rpg_err(errmsg, RPG_EINVAL, "%s: parameter %u is too long", tn, i);
            }
        }
        if (rc == 0 && cmd->u.set_dynamic.n_hba > FSM_HBA_MAX) {
            rc = rpg_err(errmsg, RPG_EINVAL, "%s: %u pg_hba lines, at most %d", tn,
                         cmd->u.set_dynamic.n_hba, FSM_HBA_MAX);
        }
        for (unsigned i = 0; rc == 0 && i < cmd->u.set_dynamic.n_hba; i++) {
            if (!str_ok(cmd->u.set_dynamic.hba[i], FSM_HBA_LINE_MAX)) {
                rc = rpg_err(errmsg, RPG_EINVAL, "%s: pg_hba line %u is too long", tn, i);
            }
        }
        return rc;
    }
    case FSM_CMD_TYPE_MAX: break;
    }
    return rpg_err(errmsg, RPG_EINVAL, "unknown command type %d", (int)cmd->type);
}

/* The payload of a checked command. */
static void cmd_put(struct enc *e, const struct fsm_cmd *cmd)
{
    put_u64(e, cmd->term);
    switch (cmd->type) {
    case FSM_CMD_INIT:
        put_str(e, cmd->u.init.scope);
        put_u16(e, (uint16_t)cmd->u.init.n_members);
        for (unsigned i = 0; i < cmd->u.init.n_members; i++) {
            member_put(e, &cmd->u.init.members[i]);
        }
        break;
    case FSM_CMD_MEMBER_ADD: member_put(e, &cmd->u.member_add); break;
    case FSM_CMD_MEMBER_REMOVE: put_str(e, cmd->u.member_remove.name); break;
    case FSM_CMD_SET_PRIMARY:
        put_str(e, cmd->u.set_primary.name);
        put_u64(e, cmd->u.set_primary.term);
        put_u32(e, cmd->u.set_primary.timeline);
        break;
    case FSM_CMD_SET_SYNC:
        put_u32(e, cmd->u.set_sync.k);
        put_u16(e, (uint16_t)cmd->u.set_sync.n_voters);
        for (unsigned i = 0; i < cmd->u.set_sync.n_voters; i++) {
            put_str(e, cmd->u.set_sync.voters[i]);
        }
        break;
    case FSM_CMD_SET_PAUSE: put_u8(e, cmd->u.set_pause.paused ? 1 : 0); break;
    case FSM_CMD_SET_SYSTEM_ID: put_u64(e, cmd->u.set_system_id.system_id); break;
    case FSM_CMD_SET_CONFIG:
        put_u8(e, cmd->u.set_config.sync_mode);
        put_u8(e, cmd->u.set_config.sync_commit);
        put_u32(e, cmd->u.set_config.sync_node_count);
        break;
    case FSM_CMD_SET_WAL_BOUND:
        put_u64(e, cmd->u.set_wal_bound.position);
        put_u32(e, cmd->u.set_wal_bound.timeline);
        break;
    case FSM_CMD_MEMBER_SEEN: put_u64(e, cmd->u.member_seen.id); break;
    case FSM_CMD_ADD_HISTORY: history_put(e, &cmd->u.add_history); break;
    case FSM_CMD_SCHEDULE_SWITCHOVER: switchover_put(e, &cmd->u.schedule_switchover); break;
    case FSM_CMD_CLEAR_SWITCHOVER: put_u64(e, (uint64_t)cmd->u.clear_switchover.at_ms); break;
    case FSM_CMD_SET_DYNAMIC:
    case FSM_CMD_SET_DYNAMIC_LAG:
        put_u8(e, cmd->u.set_dynamic.sync_mode);
        put_u8(e, cmd->u.set_dynamic.sync_commit);
        put_u32(e, cmd->u.set_dynamic.sync_node_count);
        params_put(e, cmd->u.set_dynamic.params, cmd->u.set_dynamic.n_params);
        hba_put(e, cmd->u.set_dynamic.hba, cmd->u.set_dynamic.n_hba);
        if (cmd->type == FSM_CMD_SET_DYNAMIC_LAG) {
            put_u8(e, cmd->u.set_dynamic.max_lag_set ? 1 : 0);
            put_u64(e, cmd->u.set_dynamic.max_lag);
        }
        break;
    case FSM_CMD_TYPE_MAX: assert(false); break;
    }
}

int fsm_cmd_encode(const struct fsm_cmd *cmd, struct raft_buffer *out, char *errmsg)
{
    int rc = cmd_check(cmd, errmsg);
    if (rc != 0) {
        return rc;
    }

    struct enc count = {NULL, 0};
    cmd_put(&count, cmd);
    size_t payload = count.pos;
    size_t total = pad8(CMD_HEADER_SIZE + payload);

    /* Zeroed so the padding is zero. */
    uint8_t *base = raft_malloc(total);
    if (base == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "encode %s: out of memory (bytes=%zu)",
                       fsm_cmd_type_name(cmd->type), total);
    }
    memset(base, 0, total);

    struct enc e = {base, 0};
    put_u8(&e, (uint8_t)cmd_version(cmd->type));
    put_u8(&e, (uint8_t)cmd->type);
    put_u16(&e, 0);
    put_u32(&e, (uint32_t)payload);
    cmd_put(&e, cmd);
    assert(e.pos == CMD_HEADER_SIZE + payload);

    out->base = base;
    out->len = total;
    return 0;
}

int fsm_cmd_decode(const void *buf, size_t len, struct fsm_cmd *cmd, char *errmsg)
{
    const uint8_t *p = buf;

    if (len < CMD_HEADER_SIZE) {
        return rpg_err(errmsg, RPG_EPROTO, "command truncated at byte %zu, need %d", len,
                       CMD_HEADER_SIZE);
    }
    unsigned version = p[0];
    unsigned type = p[1];
    unsigned reserved = (unsigned)p[2] | ((unsigned)p[3] << 8);
    uint64_t payload = (uint64_t)p[4] | ((uint64_t)p[5] << 8) | ((uint64_t)p[6] << 16) |
                       ((uint64_t)p[7] << 24);

    if (version == 0 || version > FSM_VERSION) {
        return rpg_err(errmsg, RPG_EPROTO, "unsupported command version %u (supported=1..%d)",
                       version, FSM_VERSION);
    }
    if (!cmd_type_known(type)) {
        return rpg_err(errmsg, RPG_EPROTO, "unknown command type %u", type);
    }
    if (version < cmd_version(type) && cmd_version(type) > FSM_VERSION_BASE) {
        return rpg_err(errmsg, RPG_EPROTO, "command type %u needs version %u, got %u", type,
                       cmd_version(type), version);
    }
    if (reserved != 0) {
        return rpg_err(errmsg, RPG_EPROTO, "command reserved header field is %u, expected 0",
                       reserved);
    }
    /* payload < 2^32, so this cannot overflow a 64-bit size_t. */
    size_t total = pad8(CMD_HEADER_SIZE + (size_t)payload);
    if (len < total) {
        return rpg_err(errmsg, RPG_EPROTO, "command truncated at byte %zu, need %zu", len, total);
    }
    if (len > total) {
        return rpg_err(errmsg, RPG_EPROTO,
                       "command has trailing garbage: %zu bytes after its end at byte %zu",
                       len - total, total);
    }

    /* Decode into a zeroed copy so a failure leaves *cmd untouched. */
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = (enum fsm_cmd_type)type;

    struct dec d = {p, CMD_HEADER_SIZE, CMD_HEADER_SIZE + (size_t)payload, "command", 0, errmsg};
    c.term = get_u64(&d);
    switch (c.type) {
    case FSM_CMD_INIT:
        get_str(&d, c.u.init.scope, sizeof c.u.init.scope, "init.scope");
        c.u.init.n_members = get_count(&d, FSM_MEMBERS_MAX, "init.n_members");
        for (unsigned i = 0; i < c.u.init.n_members && d.rc == 0; i++) {
            member_get(&d, &c.u.init.members[i]);
        }
        break;
    case FSM_CMD_MEMBER_ADD: member_get(&d, &c.u.member_add); break;
    case FSM_CMD_MEMBER_REMOVE:
        get_str(&d, c.u.member_remove.name, sizeof c.u.member_remove.name, "member_remove.name");
        break;
    case FSM_CMD_SET_PRIMARY:
        get_str(&d, c.u.set_primary.name, sizeof c.u.set_primary.name, "set_primary.name");
        c.u.set_primary.term = get_u64(&d);
        c.u.set_primary.timeline = get_u32(&d);
        break;
    case FSM_CMD_SET_SYNC:
        c.u.set_sync.k = get_u32(&d);
        c.u.set_sync.n_voters = get_count(&d, FSM_MEMBERS_MAX, "set_sync.n_voters");
        for (unsigned i = 0; i < c.u.set_sync.n_voters && d.rc == 0; i++) {
            get_str(&d, c.u.set_sync.voters[i], FSM_NAME_MAX, "set_sync.voters");
        }
        break;
    case FSM_CMD_SET_PAUSE: c.u.set_pause.paused = get_bool(&d, "set_pause.paused"); break;
    case FSM_CMD_SET_SYSTEM_ID: c.u.set_system_id.system_id = get_u64(&d); break;
    case FSM_CMD_SET_CONFIG:
        c.u.set_config.sync_mode = get_u8(&d);
        c.u.set_config.sync_commit = get_u8(&d);
        c.u.set_config.sync_node_count = get_u32(&d);
        break;
    case FSM_CMD_SET_WAL_BOUND:
        c.u.set_wal_bound.position = get_u64(&d);
        c.u.set_wal_bound.timeline = get_u32(&d);
        break;
    case FSM_CMD_MEMBER_SEEN: c.u.member_seen.id = get_u64(&d); break;
    case FSM_CMD_ADD_HISTORY: history_get(&d, &c.u.add_history); break;
    case FSM_CMD_SCHEDULE_SWITCHOVER: switchover_get(&d, &c.u.schedule_switchover); break;
    case FSM_CMD_CLEAR_SWITCHOVER: c.u.clear_switchover.at_ms = i64_of(get_u64(&d)); break;
    case FSM_CMD_SET_DYNAMIC:
    case FSM_CMD_SET_DYNAMIC_LAG:
        c.u.set_dynamic.sync_mode = get_u8(&d);
        c.u.set_dynamic.sync_commit = get_u8(&d);
        c.u.set_dynamic.sync_node_count = get_u32(&d);
        c.u.set_dynamic.n_params = params_get(&d, c.u.set_dynamic.params);
        c.u.set_dynamic.n_hba = hba_get(&d, c.u.set_dynamic.hba);
        if (c.type == FSM_CMD_SET_DYNAMIC_LAG) {
            c.u.set_dynamic.max_lag_set = get_bool(&d, "set_dynamic_lag.max_lag_set");
            c.u.set_dynamic.max_lag = get_u64(&d);
        }
        break;
    case FSM_CMD_TYPE_MAX: assert(false); break;
    }
    dec_finish(&d, total);
    if (d.rc != 0) {
        return d.rc;
    }
    *cmd = c;
    return 0;
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
    const char *bad = member_bad_string(m);
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
    if (!str_ok(scope, FSM_NAME_MAX)) {
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
    str_copy(s->scope, scope, sizeof s->scope);
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

    if (!str_ok(name, FSM_NAME_MAX)) {
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

    if (!str_ok(name, FSM_NAME_MAX)) {
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
    str_copy(s->primary.name, name, sizeof s->primary.name);
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
        if (!str_ok(v, FSM_NAME_MAX)) {
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
        str_copy(s->sync.voters[i], cmd->u.set_sync.voters[i], FSM_NAME_MAX);
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
    if (!str_ok(h->primary, FSM_NAME_MAX)) {
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
    str_copy(dst->primary, h->primary, sizeof dst->primary);
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
    str_copy(s->switchover.from, w->from, sizeof s->switchover.from);
    str_copy(s->switchover.to, w->to, sizeof s->switchover.to);
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
        str_copy(s->config.params[i].name, ps[i].name, FSM_PARAM_NAME_MAX);
        str_copy(s->config.params[i].value, ps[i].value, FSM_PARAM_VALUE_MAX);
    }
    memset(s->config.hba, 0, sizeof s->config.hba);
    s->config.n_hba = cmd->u.set_dynamic.n_hba;
    for (unsigned i = 0; i < s->config.n_hba; i++) {
        str_copy(s->config.hba[i], cmd->u.set_dynamic.hba[i], FSM_HBA_LINE_MAX);
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
    if (!cmd_type_known((unsigned)cmd->type)) {
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
                cmd_type_known((unsigned)cmd->type) ? fsm_cmd_type_name(cmd->type) : "command",
                msg);
    }
    return rc;
}

/* ---- Snapshot ---- */

/* Invariants every state reached by fsm_state_apply keeps; a snapshot that breaks one is not
 * ours or is corrupt. */
static int state_check(const struct fsm_state *s, char *errmsg)
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
        if ((bad = member_bad_string(m)) != NULL) {
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

/* The version a snapshot of s is written with: a state without history and without a
 * scheduled switchover keeps the layout an agent of an earlier release loads. */
static unsigned state_version(const struct fsm_state *s)
{
    if (s->config.max_lag_set) {
        return 7;
    }
    if (s->config.n_params > 0 || s->config.n_hba > 0) {
        return 6;
    }
    if (s->switchover.at_ms != 0) {
        return 5;
    }
    return s->n_history > 0 ? 4 : FSM_VERSION_BASE;
}

static void state_put(struct enc *e, const struct fsm_state *s)
{
    put_u8(e, s->initialized ? 1 : 0);
    put_u8(e, s->paused ? 1 : 0);
    put_str(e, s->scope);
    put_u64(e, s->system_id);
    put_u64(e, s->next_id);
    put_u64(e, s->n_applied);
    put_u64(e, s->n_rejected);
    put_u16(e, (uint16_t)s->n_members);
    for (unsigned i = 0; i < s->n_members; i++) {
        member_put(e, &s->members[i]);
    }
    put_str(e, s->primary.name);
    put_u64(e, s->primary.term);
    put_u32(e, s->primary.timeline);
    put_u32(e, s->sync.k);
    put_u16(e, (uint16_t)s->sync.n_voters);
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        put_str(e, s->sync.voters[i]);
    }
    /* Version 2. */
    put_u8(e, s->config.set ? 1 : 0);
    put_u8(e, s->config.sync_mode);
    put_u8(e, s->config.sync_commit);
    put_u32(e, s->config.sync_node_count);
    put_u64(e, s->wal_bound);
    put_u32(e, s->wal_bound_timeline);
    if (state_version(s) >= 4) {
        put_u16(e, (uint16_t)s->n_history);
        for (unsigned i = 0; i < s->n_history; i++) {
            history_put(e, &s->history[i]);
        }
    }
    if (state_version(s) >= 5) {
        switchover_put(e, &s->switchover);
    }
    if (state_version(s) >= 6) {
        params_put(e, s->config.params, s->config.n_params);
        hba_put(e, s->config.hba, s->config.n_hba);
    }
    if (state_version(s) >= 7) {
        put_u8(e, s->config.max_lag_set ? 1 : 0);
        put_u64(e, s->config.max_lag);
    }
}

int fsm_state_encode(const struct fsm_state *s, struct raft_buffer *out, char *errmsg)
{
    if (s->n_members > FSM_MEMBERS_MAX || s->sync.n_voters > FSM_MEMBERS_MAX ||
        !str_ok(s->scope, sizeof s->scope) || !str_ok(s->primary.name, FSM_NAME_MAX) ||
        s->n_history > FSM_HISTORY_MAX || !str_ok(s->switchover.from, FSM_NAME_MAX) ||
        !str_ok(s->switchover.to, FSM_NAME_MAX) || s->config.n_params > FSM_PARAMS_MAX ||
        s->config.n_hba > FSM_HBA_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: state is malformed");
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        if (member_bad_string(&s->members[i]) != NULL) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: member %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (!str_ok(s->sync.voters[i], FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: sync voter %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        if (!str_ok(s->history[i].primary, FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: history entry %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->config.n_params; i++) {
        if (!str_ok(s->config.params[i].name, FSM_PARAM_NAME_MAX) ||
            !str_ok(s->config.params[i].value, FSM_PARAM_VALUE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: parameter %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->config.n_hba; i++) {
        if (!str_ok(s->config.hba[i], FSM_HBA_LINE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: pg_hba line %u is malformed", i);
        }
    }

    struct enc count = {NULL, 0};
    state_put(&count, s);
    size_t payload = count.pos;
    size_t total = pad8(SNAP_HEADER_SIZE + payload);

    uint8_t *base = raft_malloc(total);
    if (base == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "encode snapshot: out of memory (bytes=%zu)", total);
    }
    memset(base, 0, total);

    struct enc e = {base, 0};
    put_u32(&e, SNAP_MAGIC);
    put_u8(&e, (uint8_t)state_version(s));
    put_u8(&e, 0);
    put_u16(&e, 0);
    put_u64(&e, payload);
    state_put(&e, s);
    assert(e.pos == SNAP_HEADER_SIZE + payload);

    out->base = base;
    out->len = total;
    return 0;
}

int fsm_state_decode(const void *buf, size_t len, struct fsm_state *s, char *errmsg)
{
    const uint8_t *p = buf;

    if (len < SNAP_HEADER_SIZE) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot truncated at byte %zu, need %d", len,
                       SNAP_HEADER_SIZE);
    }
    struct dec h = {p, 0, SNAP_HEADER_SIZE, "snapshot", 0, errmsg};
    uint32_t magic = get_u32(&h);
    unsigned version = get_u8(&h);
    unsigned reserved = get_u8(&h);
    reserved |= get_u16(&h);
    uint64_t payload = get_u64(&h);

    if (magic != SNAP_MAGIC) {
        return rpg_err(errmsg, RPG_EPROTO, "not a raftpg snapshot (magic=0x%08x)", (unsigned)magic);
    }
    if (version == 0 || version > FSM_VERSION) {
        return rpg_err(errmsg, RPG_EPROTO, "unsupported snapshot version %u (supported=1..%d)",
                       version, FSM_VERSION);
    }
    if (reserved != 0) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot reserved header fields are not zero");
    }
    /* Bounded so the padded total below cannot wrap; real snapshots are a few kilobytes. */
    if (payload > UINT32_MAX) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot payload length %llu is too large",
                       (unsigned long long)payload);
    }
    size_t total = pad8(SNAP_HEADER_SIZE + (size_t)payload);
    if (len < total) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot truncated at byte %zu, need %zu", len, total);
    }
    if (len > total) {
        return rpg_err(errmsg, RPG_EPROTO,
                       "snapshot has trailing garbage: %zu bytes after its end at byte %zu",
                       len - total, total);
    }

    struct fsm_state t;
    memset(&t, 0, sizeof t);
    struct dec d = {p, SNAP_HEADER_SIZE, SNAP_HEADER_SIZE + (size_t)payload, "snapshot", 0, errmsg};
    t.initialized = get_bool(&d, "initialized");
    t.paused = get_bool(&d, "paused");
    get_str(&d, t.scope, sizeof t.scope, "scope");
    t.system_id = get_u64(&d);
    t.next_id = get_u64(&d);
    t.n_applied = get_u64(&d);
    t.n_rejected = get_u64(&d);
    t.n_members = get_count(&d, FSM_MEMBERS_MAX, "n_members");
    for (unsigned i = 0; i < t.n_members && d.rc == 0; i++) {
        member_get(&d, &t.members[i]);
    }
    get_str(&d, t.primary.name, sizeof t.primary.name, "primary.name");
    t.primary.term = get_u64(&d);
    t.primary.timeline = get_u32(&d);
    t.sync.k = get_u32(&d);
    t.sync.n_voters = get_count(&d, FSM_MEMBERS_MAX, "sync.n_voters");
    for (unsigned i = 0; i < t.sync.n_voters && d.rc == 0; i++) {
        get_str(&d, t.sync.voters[i], FSM_NAME_MAX, "sync.voters");
    }
    if (version >= 2) {
        t.config.set = get_bool(&d, "config.set");
        t.config.sync_mode = get_u8(&d);
        t.config.sync_commit = get_u8(&d);
        t.config.sync_node_count = get_u32(&d);
        t.wal_bound = get_u64(&d);
        t.wal_bound_timeline = get_u32(&d);
    }
    if (version >= 4) {
        t.n_history = get_count(&d, FSM_HISTORY_MAX, "n_history");
        for (unsigned i = 0; i < t.n_history && d.rc == 0; i++) {
            history_get(&d, &t.history[i]);
        }
    }
    if (version >= 5) {
        switchover_get(&d, &t.switchover);
    }
    if (version >= 6) {
        t.config.n_params = params_get(&d, t.config.params);
        t.config.n_hba = hba_get(&d, t.config.hba);
    }
    if (version >= 7) {
        t.config.max_lag_set = get_bool(&d, "config.max_lag_set");
        t.config.max_lag = get_u64(&d);
    }
    dec_finish(&d, total);
    if (d.rc != 0) {
        return d.rc;
    }
    if (t.next_id == 0) {
        return rpg_err(errmsg, RPG_EPROTO, "snapshot next_id is 0");
    }
    int rc = state_check(&t, errmsg);
    if (rc != 0) {
        return rc;
    }
    *s = t;
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

uint64_t fsm_state_checksum(const struct fsm_state *s)
{
    struct enc count = {NULL, 0};
    state_put(&count, s);
    uint8_t stack[8192];
    uint8_t *buf = count.pos <= sizeof stack ? stack : malloc(count.pos);
    if (buf == NULL) {
        return 0;
    }
    struct enc e = {buf, 0};
    state_put(&e, s);
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < e.pos; i++) {
        h = (h ^ buf[i]) * 1099511628211ull;
    }
    if (buf != stack) {
        free(buf);
    }
    return h;
}

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
