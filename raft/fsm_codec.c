/* The replicated cluster state's wire format: the command and snapshot codecs and the checksum
 * of a state (its encoding). The checks are in fsm_check.c, apply in fsm.c.
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

#include "fsm_int.h"

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

/* s must have been checked with fsm_str_ok() for its buffer size (< 65536). */
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

/* ---- PostgreSQL parameters and pg_hba lines ---- */

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
    int rc = fsm_cmd_check(cmd, errmsg);
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
    if (!fsm_cmd_type_known(type)) {
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

/* ---- Snapshot ---- */

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
        !fsm_str_ok(s->scope, sizeof s->scope) || !fsm_str_ok(s->primary.name, FSM_NAME_MAX) ||
        s->n_history > FSM_HISTORY_MAX || !fsm_str_ok(s->switchover.from, FSM_NAME_MAX) ||
        !fsm_str_ok(s->switchover.to, FSM_NAME_MAX) || s->config.n_params > FSM_PARAMS_MAX ||
        s->config.n_hba > FSM_HBA_MAX) {
        return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: state is malformed");
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        if (fsm_member_bad_string(&s->members[i]) != NULL) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: member %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (!fsm_str_ok(s->sync.voters[i], FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: sync voter %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        if (!fsm_str_ok(s->history[i].primary, FSM_NAME_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: history entry %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->config.n_params; i++) {
        if (!fsm_str_ok(s->config.params[i].name, FSM_PARAM_NAME_MAX) ||
            !fsm_str_ok(s->config.params[i].value, FSM_PARAM_VALUE_MAX)) {
            return rpg_err(errmsg, RPG_EINVAL, "encode snapshot: parameter %u is malformed", i);
        }
    }
    for (unsigned i = 0; i < s->config.n_hba; i++) {
        if (!fsm_str_ok(s->config.hba[i], FSM_HBA_LINE_MAX)) {
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
    int rc = fsm_state_check(&t, errmsg);
    if (rc != 0) {
        return rc;
    }
    *s = t;
    return 0;
}

/* FNV-1a over the snapshot encoding: equal states give equal sums on every member. */
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
