#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "raftpg/agent.h"
#include "raftpg/api.h"
#include "raftpg/cfgdoc.h"
#include "raftpg/failover.h"
#include "raftpg/health.h"
#include "raftpg/log.h"
#include "raftpg/loopwatch.h"
#include "raftpg/proof.h"
#include "raftpg/reload.h"
#include "raftpg/transport.h"

static bool is_sync_voter(const struct agent *a, const char *name);
static enum health_standby own_standby_kind(const struct agent *a);
static void config_in_force(const struct agent *a, int *mode, unsigned *k, int *commit,
                            bool *recorded);

int api_check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= FSM_NAME_MAX) {
        return RPG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok) {
            return RPG_EINVAL;
        }
    }
    return 0;
}

static void respond_json(struct http_conn *conn, int status, json_t *o)
{
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    if (body == NULL) {
        const char *fallback = "{\"error\":\"out of memory\"}";
        http_respond(conn, 500, NULL, fallback, strlen(fallback));
    } else {
        http_respond(conn, status, NULL, body, strlen(body));
        free(body);
    }
    json_decref(o);
}

static void respond_error(struct http_conn *conn, int status, const char *msg)
{
    respond_json(conn, status, json_pack("{s:s}", "error", msg));
}

/* 405 with the Allow header RFC 9110 requires: the methods the path accepts. */
static void respond_405(struct http_conn *conn, const char *allow)
{
    char msg[128];
    snprintf(msg, sizeof msg, "method not allowed (%s)", allow);
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL) {
        const char *fallback = "{\"error\":\"out of memory\"}";
        http_respond(conn, 500, NULL, fallback, strlen(fallback));
        return;
    }
    http_respond_header(conn, 405, NULL, body, strlen(body), "Allow", allow);
    free(body);
}

/* This member's tags: the known ones typed, user tags (conf.h) as the text written. */
static json_t *own_tags_json(const struct agent *a)
{
    json_t *t = json_pack("{s:b, s:b, s:b, s:i}", "nofailover", a->conf.tags.nofailover, "nosync",
                          a->conf.tags.nosync, "noloadbalance", a->conf.tags.noloadbalance,
                          "failover_priority", a->conf.tags.failover_priority);
    for (unsigned i = 0; t != NULL && i < a->conf.tags.n_user; i++) {
        json_object_set_new(t, a->conf.tags.user[i].key, json_string(a->conf.tags.user[i].value));
    }
    return t;
}

static const char *member_name_of(const struct agent *a, uint64_t id)
{
    return a->cons_open ? cons_member_name(&a->cons, id) : NULL;
}

static void host_of(const char *addr, char *host, size_t size)
{
    snprintf(host, size, "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
}

/* Why this member's PostgreSQL is not as it should be: a refusal, the last failed action, or
 * what the observer last saw; "" when all is well. */
static const char *pg_detail(const struct agent *a)
{
    return a->core.last.action == HA_ACT_REFUSE ? a->core.last.why
           : a->core.error[0] != '\0'           ? a->core.error
                                                : a->pg.state_detail;
}

/* The rejoin pipeline (pg.h enum pg_rejoin_stage): the stage, whether it is under way, how long
 * it has been in it, why the last attempt ended and, while cloning, kB copied of the total. */
static json_t *rejoin_json(const struct agent *a)
{
    const struct pg_rejoin *r = &a->pg.rejoin;
    rpg_msec now = uv_now(a->pg.loop);
    json_t *o = json_pack(
        "{s:s, s:b, s:I, s:s}", "stage", pg_rejoin_stage_name(r->stage), "running", r->running,
        "since_ms", (json_int_t)(r->stage != PG_REJOIN_NONE && now > r->since ? now - r->since : 0),
        "error", r->error);
    if (o != NULL && a->pg.obs.rewind_retries > 0) {
        /* Rewinds that stopped before changing anything, and the back-off before the next. */
        json_object_set_new(o, "retries", json_integer((json_int_t)a->pg.obs.rewind_retries));
        json_object_set_new(
            o, "next_retry_ms",
            json_integer(
                (json_int_t)(a->pg.rewind_retry_at > now ? a->pg.rewind_retry_at - now : 0)));
    }
    if (o != NULL && r->stage == PG_REJOIN_CLONE) {
        json_object_set_new(o, "done_kb", json_integer((json_int_t)r->done_kb));
        json_object_set_new(o, "total_kb",
                            r->total_kb != 0 ? json_integer((json_int_t)r->total_kb) : json_null());
    }
    return o;
}

/* This member's PostgreSQL as published to peers and clients. */
static json_t *pg_json(const struct agent *a)
{
    const struct ha_pg *o = &a->pg.obs;
    char sysid[24];
    snprintf(sysid, sizeof sysid, "%llu", (unsigned long long)o->system_id);
    const char *detail = pg_detail(a);
    json_t *o_json = json_pack(
        "{s:s, s:b, s:s, s:I, s:I, s:I, s:b, s:I, s:s, s:s, s:s, s:s, s:s}", "state",
        ha_pg_state_name(a->pg_open ? o->state : HA_PG_UNKNOWN), "in_recovery", o->in_recovery,
        "system_id", sysid, "timeline", (json_int_t)o->timeline, "checkpoint_timeline",
        (json_int_t)o->checkpoint_timeline, "wal_position", (json_int_t)o->wal_position,
        "streaming", o->streaming, "start_failures", (json_int_t)o->start_failures, "address",
        a->conf.postgresql.connect_address, "upstream", o->upstream, "detail", detail, "action",
        ha_action_name(a->core.last.action), "why", a->core.last.why);
    if (o_json != NULL) {
        json_object_set_new(o_json, "synchronous_standby_names", json_string(a->pg.sync_seen));
        /* pg_settings says a changed setting waits for a restart (the others' /cluster). */
        json_object_set_new(o_json, "pending_restart", json_boolean(a->pg.pending_restart));
        json_object_set_new(o_json, "replay_position",
                            json_integer((json_int_t)o->replay_position));
        json_object_set_new(o_json, "receiver", json_string(o->receiver));
        json_object_set_new(o_json, "conninfo", json_string(o->conninfo));
        /* The rejoin pipeline's stage: the operation under way, and why the data directory
         * last had to be rewound or cloned again. */
        json_object_set_new(o_json, "operation", json_string(pg_op_name(a->pg.op)));
        json_object_set_new(o_json, "rejoin_error", json_string(a->pg.rejoin_error));
        json_object_set_new(o_json, "rejoin", rejoin_json(a));
        /* Why the server cannot write, and since when (storage faults): "" when it can. */
        json_object_set_new(o_json, "unwritable", json_string(o->unwritable));
        json_object_set_new(o_json, "unwritable_ms", json_integer((json_int_t)o->unwritable_ms));
        /* Crashes and failed starts within the crash window (HA_CRASH_WINDOW_MS). */
        json_object_set_new(o_json, "crashes", json_integer((json_int_t)o->crashes));
        /* The primary's server not running as a primary that accepts connections, for how
         * long, and the bound after which another member takes over (primary_start_timeout). */
        json_object_set_new(o_json, "down", json_boolean(o->down));
        json_object_set_new(o_json, "down_ms", json_integer((json_int_t)o->down_ms));
        json_object_set_new(o_json, "primary_start_timeout",
                            json_integer((json_int_t)a->conf.primary_start_timeout_s));
        json_object_set_new(o_json, "start_timeout_handovers",
                            json_integer((json_int_t)a->n_start_timeouts));
    }
    return o_json;
}

static json_t *scheduled_switchover_json(const struct fsm_state *s);

json_t *agent_status_json(const struct agent *a)
{
    uint64_t leader_id = 0;
    const char *leader_address = NULL;
    if (a->cons_open) {
        cons_leader(&a->cons, &leader_id, &leader_address);
    }
    const char *leader = leader_id != 0 ? member_name_of(a, leader_id) : NULL;
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:s}", "name", a->conf.name, "scope",
                          a->conf.scope, "id", (json_int_t)(a->cons_open ? a->cons.id : 0), "phase",
                          agent_phase_name(a->phase), "term",
                          (json_int_t)(a->cons_open ? a->cons.term : 0), "raft_role",
                          cons_role_name(a->cons_open ? a->cons.role : CONS_ROLE_UNAVAILABLE),
                          "leader", leader != NULL ? leader : "");
    if (a->conf.has_postgresql) {
        json_object_set_new(o, "postgresql", pg_json(a));
    }
    {
        /* The Raft transport: whether peers must prove the secret, and what it refused. */
        struct transport_stats ts;
        transport_get_stats(&ts);
        json_object_set_new(
            o, "raft_transport",
            json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "authenticated",
                      a->conf.raft.secret_file[0] != '\0', "accepted", (json_int_t)ts.accepted,
                      "handshakes_ok", (json_int_t)ts.authenticated, "refused",
                      (json_int_t)ts.rejected, "timed_out", (json_int_t)ts.timed_out,
                      "refused_busy", (json_int_t)ts.refused_busy, "connect_failed",
                      (json_int_t)ts.connect_failed, "handshaking", (json_int_t)ts.handshaking,
                      "sessions", (json_int_t)ts.sessions));
    }
    if (a->conf.has_postgresql) {
        rpg_msec until = a->cons_open ? cons_lease_until(&a->cons) : 0;
        rpg_msec now = cons_uv_clock_ms();
        json_object_set_new(
            o, "fencing",
            json_pack("{s:b, s:I, s:I, s:I, s:I, s:b, s:I, s:b, s:I, s:I}", "lease_held",
                      a->fm.lease_ok, "lease_left_ms", (json_int_t)(until > now ? until - now : 0),
                      "lease_ms", (json_int_t)a->fence.lease_ms, "renew_ms",
                      (json_int_t)a->fence.renew_ms, "margin_ms", (json_int_t)a->fence.margin_ms,
                      "fencing", a->fm.fencing, "fences", (json_int_t)a->fm.n_fences, "paused",
                      a->fm.frozen, "pauses", (json_int_t)a->fm.n_freezes, "loop_gaps",
                      (json_int_t)a->fm.clock.n_gaps));
        if (a->conf.has_vip) {
            json_object_set_new(
                o, "vip",
                json_pack("{s:s, s:s, s:b, s:s}", "address", a->conf.vip.address.text, "interface",
                          a->conf.vip.interface, "held", a->vip_open && vip_is_held(&a->vip),
                          "error", a->vip_error));
        }
        json_object_set_new(o, "watchdog",
                            json_pack("{s:s, s:b, s:s}", "mode",
                                      conf_watchdog_mode_name(a->conf.watchdog.mode), "armed",
                                      watchdog_is_armed(&a->watchdog), "error", a->watchdog_error));
    }
    if (a->cons_open) {
        /* Raft storage health and the state checksum peers compare (storage.h). */
        const struct cons *c = &a->cons;
        rpg_msec now = cons_uv_clock_ms();
        json_t *rs = json_pack(
            "{s:b, s:s, s:s, s:i, s:I, s:b, s:I, s:I}", "ok", !c->storage.failed, "dir",
            a->conf.raft.data_dir, "error", c->storage.error, "errno", c->storage.err_no,
            "failing_ms",
            (json_int_t)(c->storage.failed && now > c->storage.since ? now - c->storage.since : 0),
            "low_space", c->storage.low, "segment_size", (json_int_t)c->storage.segment_size,
            "write_errors", (json_int_t)c->storage.n_raft_errors);
        json_object_set_new(rs, "free_bytes",
                            c->storage.measured ? json_integer((json_int_t)c->storage.free_bytes)
                                                : json_null());
        json_object_set_new(o, "raft_storage", rs);
        struct fsm_sum sum;
        char hex[24] = "";
        bool has_sum = fsm_sum_latest(&c->fsm, &sum);
        if (has_sum) {
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sum.sum);
        }
        json_object_set_new(o, "state",
                            json_pack("{s:I, s:s, s:b, s:s}", "applied_index",
                                      (json_int_t)(has_sum ? sum.index : 0), "checksum", hex,
                                      "diverged", c->diverged, "detail", a->diverged_detail));
        /* Name and Raft id of every member it lists: a member learns from the leader's list
         * whether the cluster still knows it under its own id. */
        if (c->state.initialized) {
            json_t *ids = json_object();
            for (unsigned i = 0; i < c->state.n_members; i++) {
                json_object_set_new(ids, c->state.members[i].name,
                                    json_integer((json_int_t)c->state.members[i].id));
            }
            json_object_set_new(json_object_get(o, "state"), "members", ids);
        }
    }
    json_object_set_new(o, "identity_error", json_string(a->identity_error));
    /* Maintenance mode as this member's replicated state has it (ctl pause --wait asks). */
    json_object_set_new(o, "pause",
                        json_boolean(a->cons_open && a->cons.state.initialized &&
                                     a->cons.state.paused));
    json_object_set_new(o, "reinit",
                        json_pack("{s:b, s:s}", "running", a->reinit.phase != REINIT_IDLE, "last",
                                  a->reinit.last));
    json_object_set_new(
        o, "switchover",
        json_pack("{s:s, s:s, s:s, s:s, s:I}", "phase", switchover_phase_name(a->switchover.phase),
                  "to", a->switchover.to, "last", a->switchover.last, "handed_to",
                  a->switchover.handed_to, "handed_term", (json_int_t)a->switchover.handed_term));
    /* The newest replicated-state version this agent reads: the leader records what older
     * agents would reject (the history) only once every member reads it. */
    json_object_set_new(o, "state_version", json_integer(FSM_VERSION));
    json_object_set_new(o, "history_waiting", json_string(a->history.waiting));
    /* The scheduled switchover as this member's replicated state has it, and why a due one
     * waits on this (leading) member. */
    json_t *sched = a->cons_open ? scheduled_switchover_json(&a->cons.state) : NULL;
    json_object_set_new(o, "scheduled_switchover", sched != NULL ? sched : json_null());
    json_object_set_new(o, "schedule_waiting", json_string(a->schedule.waiting));
    /* A failover granted, for its candidate to adopt (failover.h). */
    const struct failover_permit *fp = &a->failover_permit;
    rpg_msec fp_now = cons_uv_clock_ms();
    if (fp->to[0] != '\0' && fp_now < fp->until) {
        json_object_set_new(o, "failover_permit",
                            json_pack("{s:s, s:s, s:I}", "to", fp->to, "from", fp->from, "ms_left",
                                      (json_int_t)(fp->until - fp_now)));
    }
    /* This member's own scheduled restart: the others read it here for their /cluster. */
    json_t *rs = restart_schedule_json(&a->restart.sched);
    json_object_set_new(o, "scheduled_restart", rs != NULL ? rs : json_null());
    if (a->callbacks_open) {
        const struct callbacks *cb = &a->callbacks;
        json_object_set_new(o, "callbacks",
                            json_pack("{s:b, s:I, s:I, s:s}", "running", cb->running, "runs",
                                      (json_int_t)cb->n_runs, "failed", (json_int_t)cb->n_failed,
                                      "last", cb->last));
    }
    json_object_set_new(o, "tags", own_tags_json(a));
    return o;
}

/* Patroni's node status document (GET /patroni, and the body of GET health checks), with the
 * fields that have a meaning here. */
json_t *agent_patroni_json(const struct agent *a)
{
    json_t *o = json_object();
    const struct fsm_state *st = &a->cons.state;
    bool known = a->cons_open && st->initialized;
    json_t *p = json_pack("{s:s, s:s, s:s}", "version", RAFTPG_VERSION, "scope", a->conf.scope,
                          "name", a->conf.name);
    json_object_set_new(p, "product", json_string("raftpg"));
    if (a->conf.has_postgresql && a->pg_open) {
        const struct ha_pg *g = &a->pg.obs;
        bool running = g->state == HA_PG_RUNNING;
        const char *state = running                      ? "running"
                            : g->state == HA_PG_STARTING ? "starting"
                            : g->state == HA_PG_UNKNOWN  ? "unknown"
                            : a->pg.op == PG_OP_REWIND   ? "rewinding"
                            : a->pg.op == PG_OP_CLONE    ? "creating replica"
                                                         : "stopped";
        json_object_set_new(o, "state", json_string(state));
        if (running) {
            json_object_set_new(o, "postmaster_start_time", json_string(a->pg.start_time));
            json_object_set_new(o, "role", json_string(g->in_recovery ? "replica" : "primary"));
            json_object_set_new(o, "server_version", json_integer(a->pg.server_version));
            json_t *x;
            if (g->in_recovery) {
                x = json_pack("{s:I, s:I, s:b}", "received_location", (json_int_t)g->wal_position,
                              "replayed_location", (json_int_t)g->replay_position, "paused",
                              a->pg.replay_paused);
                json_object_set_new(x, "replayed_timestamp",
                                    a->pg.replay_timestamp[0] != '\0'
                                        ? json_string(a->pg.replay_timestamp)
                                        : json_null());
                const char *rs =
                    health_replication_state(g->streaming, pg_restore_command(&a->conf)[0] != '\0');
                if (rs != NULL) {
                    json_object_set_new(o, "replication_state", json_string(rs));
                }
            } else {
                x = json_pack("{s:I}", "location", (json_int_t)g->wal_position);
                json_t *reps = json_array();
                for (unsigned i = 0; i < a->pg.n_replicas; i++) {
                    const struct pg_replica *r = &a->pg.replicas[i];
                    json_array_append_new(reps, json_pack("{s:s, s:s, s:s}", "application_name",
                                                          r->name, "state", r->state, "sync_state",
                                                          r->sync_state));
                }
                json_object_set_new(o, "replication", reps);
            }
            json_object_set_new(o, "xlog", x);
            /* Patroni sets these only when true: what /sync and /quorum answer 200 on. */
            enum health_standby kind = own_standby_kind(a);
            if (kind != HEALTH_STANDBY_ASYNC) {
                json_object_set_new(o,
                                    kind == HEALTH_STANDBY_SYNC ? "sync_standby" : "quorum_standby",
                                    json_true());
            }
            json_object_set_new(o, "pending_restart", json_boolean(a->pg.pending_restart));
        }
        if (g->timeline != 0) {
            json_object_set_new(o, "timeline", json_integer(g->timeline));
        }
        if (g->system_id != 0) {
            char sysid[24];
            snprintf(sysid, sizeof sysid, "%llu", (unsigned long long)g->system_id);
            json_object_set_new(o, "database_system_identifier", json_string(sysid));
        }
    }
    json_t *sr = restart_schedule_json(&a->restart.sched);
    if (sr != NULL) {
        json_object_set_new(o, "scheduled_restart", sr);
    }
    json_object_set_new(o, "cluster_unlocked", json_boolean(!known || st->primary.name[0] == '\0'));
    /* The last contact with the Raft leader (Patroni: with the DCS), as Unix time. */
    if (a->cons_open) {
        rpg_msec now = cons_uv_clock_ms();
        time_t wall = time(NULL);
        if (a->cons.role == CONS_ROLE_LEADER) {
            json_object_set_new(o, "dcs_last_seen", json_integer((json_int_t)wall));
        } else if (a->cons.last_heard_leader != 0 && now >= a->cons.last_heard_leader) {
            json_object_set_new(
                o, "dcs_last_seen",
                json_integer(
                    (json_int_t)(wall - (time_t)((now - a->cons.last_heard_leader) / 1000))));
        }
    }
    if (known && st->paused) {
        json_object_set_new(o, "pause", json_true());
    }
    json_object_set_new(o, "tags", own_tags_json(a));
    json_object_set_new(o, "patroni", p);
    return o;
}

/* What a member's PostgreSQL looks like from here: its own report, or this agent's view. */
struct pg_view {
    bool known;
    enum ha_pg_state state;
    bool in_recovery;
    bool streaming;
    uint32_t timeline;
    uint64_t wal_position;
    uint64_t replay_position;
    const char *address;
    const char *detail;
    char rejoin[96]; /* "stage" or "clone 1024/4096 kB" while a rejoin runs, else "" */
};

static void rejoin_summary(char *buf, size_t size, bool running, const char *stage,
                           uint64_t done_kb, uint64_t total_kb)
{
    buf[0] = '\0';
    if (!running) {
        return;
    }
    if (strcmp(stage, "clone") == 0 && total_kb > 0) {
        snprintf(buf, size, "clone %llu/%llu kB (%llu%%)", (unsigned long long)done_kb,
                 (unsigned long long)total_kb, (unsigned long long)(done_kb * 100 / total_kb));
    } else {
        snprintf(buf, size, "%s", stage);
    }
}

static bool pg_view_of(const struct agent *a, const char *name, struct pg_view *v)
{
    memset(v, 0, sizeof *v);
    if (strcmp(name, a->conf.name) == 0) {
        if (!a->conf.has_postgresql || !a->pg_open) {
            return false;
        }
        const struct ha_pg *o = &a->pg.obs;
        v->known = true;
        v->state = o->state;
        v->in_recovery = o->in_recovery;
        v->streaming = o->streaming;
        v->timeline = o->timeline;
        v->wal_position = o->wal_position;
        v->replay_position = o->replay_position;
        v->address = a->conf.postgresql.connect_address;
        v->detail = pg_detail(a);
        const struct pg_rejoin *r = &a->pg.rejoin;
        rejoin_summary(v->rejoin, sizeof v->rejoin, r->running, pg_rejoin_stage_name(r->stage),
                       r->done_kb, r->total_kb);
        return true;
    }
    const struct peer_status *p = peers_get(&a->peers, name);
    if (p == NULL || !p->has_pg) {
        return false;
    }
    v->known = p->reachable;
    v->state = p->pg_state;
    v->in_recovery = p->pg_in_recovery;
    v->streaming = p->pg_streaming;
    v->timeline = p->pg_timeline;
    v->wal_position = p->pg_wal_position;
    v->replay_position = p->pg_replay_position;
    v->address = p->pg_address;
    v->detail = p->pg_detail;
    rejoin_summary(v->rejoin, sizeof v->rejoin, p->reachable && p->pg_rejoin_running,
                   p->pg_rejoin_stage, p->pg_rejoin_done_kb, p->pg_rejoin_total_kb);
    return true;
}

static json_t *member_json(const struct agent *a, uint64_t id, const char *name,
                           const char *raft_address, const char *api_address)
{
    char host[FSM_ADDR_MAX], url[FSM_ADDR_MAX + 16];
    host_of(api_address, host, sizeof host);
    snprintf(url, sizeof url, "%s://%s/", a->conf.restapi.certfile[0] != '\0' ? "https" : "http",
             api_address);
    const char *raft_role = "unknown";
    const char *state = "unknown";
    const char *storage = "unknown";
    const char *storage_error = "";
    uint64_t term = 0;
    bool self = strcmp(name, a->conf.name) == 0;
    if (self) {
        raft_role = cons_role_name(a->cons_open ? a->cons.role : CONS_ROLE_UNAVAILABLE);
        state = agent_phase_name(a->phase);
        term = a->cons_open ? a->cons.term : 0;
        if (a->cons_open) {
            storage = a->cons.diverged ? "diverged" : a->cons.storage.failed ? "failing" : "ok";
            storage_error = a->cons.diverged ? a->diverged_detail : a->cons.storage.error;
        }
    } else {
        const struct peer_status *p = peers_get(&a->peers, name);
        if (p != NULL && p->reachable) {
            raft_role = p->raft_role;
            state = p->phase;
            term = p->term;
            storage = p->diverged ? "diverged" : p->storage_failed ? "failing" : "ok";
            storage_error = p->storage_error;
        } else if (p != NULL && p->last_seen != 0) {
            state = "unreachable";
        } else if (p != NULL && p->error[0] != '\0') {
            state = "unreachable";
        }
    }
    uint64_t leader_id = 0;
    const char *leader_address = NULL;
    if (a->cons_open) {
        cons_leader(&a->cons, &leader_id, &leader_address);
    }
    /* The answering member's view of who leads is authoritative for "role". */
    struct pg_view pv;
    bool has_pg = pg_view_of(a, name, &pv);
    const char *role = id != 0 && id == leader_id ? "leader" : has_pg ? "replica" : "follower";
    const struct fsm_state *st = &a->cons.state;
    if (has_pg && strcmp(role, "replica") == 0 && st->sync.k > 0 && is_sync_voter(a, name)) {
        /* Patroni's names: every voter needed (k = n) is a sync standby, else a quorum one. */
        role = st->sync.k >= st->sync.n_voters ? "sync_standby" : "quorum_standby";
    }
    json_t *m =
        json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "name", name, "id",
                  (json_int_t)id, "role", role, "state", state, "api_url", url, "host", host,
                  "raft_address", raft_address, "raft_role", raft_role, "voting",
                  cons_voting_name(a->cons_open ? cons_voting(&a->cons, id) : CONS_VOTING_NONE),
                  "term", (json_int_t)term);
    /* Whether its Raft log has held replicated entries: such a member that comes back empty has
     * lost its log and vote (agent.c refuses to start it under this id). */
    const struct fsm_member *fm =
        a->cons_open && st->initialized && id != 0 ? fsm_state_member_by_id(st, id) : NULL;
    json_object_set_new(m, "raft_state",
                        json_boolean(fm != NULL && (fm->tags & FSM_TAG_RAFT_STATE) != 0));
    /* Its agent answers under another Raft id than the cluster lists for its name: removed and
     * added again while it kept running, say. It takes no part until restarted afresh. */
    const struct peer_status *ps = self ? NULL : peers_get(&a->peers, name);
    if (ps != NULL && ps->reachable && ps->id != 0 && id != 0 && ps->id != id) {
        char why[256];
        snprintf(why, sizeof why,
                 "its agent runs as raft id %llu, the cluster lists id %llu: stop that agent, "
                 "move its raft.data_dir aside and start it again (it joins as id %llu)",
                 (unsigned long long)ps->id, (unsigned long long)id, (unsigned long long)id);
        json_object_set_new(m, "identity_error", json_string(why));
    }
    /* Why this member's last poll of it failed (a time-out, a refused certificate, ...). */
    if (ps != NULL && !ps->reachable && ps->error[0] != '\0') {
        json_object_set_new(m, "poll_error", json_string(ps->error));
    }
    /* "ok", "failing" (its Raft directory cannot persist), "diverged" or "unknown". */
    json_object_set_new(m, "raft_storage", json_string(storage));
    if (storage_error[0] != '\0') {
        json_object_set_new(m, "raft_storage_error", json_string(storage_error));
    }
    if (has_pg) {
        char pghost[FSM_ADDR_MAX];
        uint16_t port = 0;
        conf_parse_addr(pv.address, NULL, &port);
        host_of(pv.address, pghost, sizeof pghost);
        const char *pg_state = !pv.known                        ? "unknown"
                               : pv.state != HA_PG_RUNNING      ? ha_pg_state_name(pv.state)
                               : pv.in_recovery && pv.streaming ? "streaming"
                                                                : "running";
        if (strcmp(state, "unreachable") != 0) {
            json_object_set_new(m, "state", json_string(pg_state));
        }
        json_object_set_new(m, "host", json_string(pghost));
        json_object_set_new(m, "port", json_integer(port));
        json_object_set_new(m, "pg_role",
                            json_string(!pv.known || pv.state != HA_PG_RUNNING ? "none"
                                        : pv.in_recovery                       ? "standby"
                                                                               : "primary"));
        json_object_set_new(m, "timeline", pv.timeline ? json_integer(pv.timeline) : json_null());
        /* Lag: bytes of WAL the member has not replayed yet (what its readers miss) against
         * the recorded primary. */
        struct pg_view prim;
        const char *pname = a->cons.state.primary.name;
        if (pv.known && pv.state == HA_PG_RUNNING && pv.in_recovery && pname[0] != '\0' &&
            pg_view_of(a, pname, &prim) && prim.known && prim.state == HA_PG_RUNNING &&
            !prim.in_recovery) {
            json_int_t replay = prim.wal_position > pv.replay_position
                                    ? (json_int_t)(prim.wal_position - pv.replay_position)
                                    : 0;
            json_int_t receive = prim.wal_position > pv.wal_position
                                     ? (json_int_t)(prim.wal_position - pv.wal_position)
                                     : 0;
            json_object_set_new(m, "lag", json_integer(replay));
            json_object_set_new(m, "receive_lag", json_integer(receive));
            json_object_set_new(m, "replay_lag", json_integer(replay));
        } else if (pv.known && pv.state == HA_PG_RUNNING && !pv.in_recovery) {
            json_object_set_new(m, "lag", json_integer(0));
        } else {
            json_object_set_new(m, "lag", json_null());
        }
        if (pv.detail != NULL && pv.detail[0] != '\0') {
            json_object_set_new(m, "detail", json_string(pv.detail));
        }
        if (pv.rejoin[0] != '\0') {
            json_object_set_new(m, "rejoin", json_string(pv.rejoin));
        }
    }
    /* Its tags, as its own configuration says (this member) or its last report (others). */
    const struct peer_status *tp = self ? NULL : peers_get(&a->peers, name);
    json_t *reported = tp != NULL && tp->tags_json[0] != '\0' ? json_loads(tp->tags_json, 0, NULL)
                                                              : NULL;
    if (self) {
        json_object_set_new(m, "tags", own_tags_json(a));
    } else if (json_is_object(reported)) {
        json_object_set_new(m, "tags", json_incref(reported));
    } else if (tp != NULL && tp->last_seen != 0) {
        json_object_set_new(m, "tags",
                            json_pack("{s:b, s:b, s:b, s:i}", "nofailover", tp->nofailover,
                                      "nosync", tp->nosync, "noloadbalance", tp->noloadbalance,
                                      "failover_priority", tp->failover_priority));
    }
    json_decref(reported);
    /* Patroni's per-member flag, only when true: a setting waits for a restart. */
    if (self ? a->pg_open && a->pg.pending_restart : tp != NULL && tp->pg_pending_restart) {
        json_object_set_new(m, "pending_restart", json_true());
    }
    /* Its scheduled restart (Patroni's per-member field): its own, or its last report's. */
    json_t *sr = NULL;
    if (self) {
        sr = restart_schedule_json(&a->restart.sched);
    } else if (tp != NULL && tp->scheduled_restart[0] != '\0') {
        sr = json_loads(tp->scheduled_restart, 0, NULL);
    }
    if (json_is_object(sr)) {
        json_object_set_new(m, "scheduled_restart", sr);
    } else {
        json_decref(sr);
    }
    return m;
}

json_t *agent_cluster_json(const struct agent *a)
{
    json_t *members = json_array();
    const struct fsm_state *s = &a->cons.state;
    bool known = a->cons_open && s->initialized;
    if (known) {
        for (unsigned i = 0; i < s->n_members; i++) {
            const struct fsm_member *m = &s->members[i];
            json_array_append_new(members,
                                  member_json(a, m->id, m->name, m->raft_address, m->api_address));
        }
    } else {
        for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
            const struct conf_member *m = &a->conf.raft.members[i];
            json_array_append_new(members, member_json(a, 0, m->name, m->raft, m->api));
        }
        if (conf_self(&a->conf) == NULL) {
            json_array_append_new(members, member_json(a, 0, a->conf.name, a->conf.raft.listen,
                                                       a->conf.restapi.connect_address));
        }
    }
    uint64_t leader_id = 0;
    const char *leader_address = NULL;
    if (a->cons_open) {
        cons_leader(&a->cons, &leader_id, &leader_address);
    }
    const char *leader = leader_id != 0 ? member_name_of(a, leader_id) : NULL;
    /* A leader past its own-term barrier has applied every entry of the terms before it: only
     * its state says for sure whether a change was committed (ctl committed()). */
    bool ready = a->cons_open && a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready;
    json_t *raft = json_pack("{s:I, s:s?, s:I, s:I, s:I, s:I, s:s, s:s, s:b, s:b}", "term",
                             (json_int_t)(a->cons_open ? a->cons.term : 0), "leader", leader,
                             "leader_id", (json_int_t)leader_id, "commit_index",
                             (json_int_t)cons_commit_index(&a->cons), "applied_index",
                             (json_int_t)cons_applied_index(&a->cons), "last_index",
                             (json_int_t)cons_last_index(&a->cons), "member", a->conf.name, "role",
                             cons_role_name(a->cons_open ? a->cons.role : CONS_ROLE_UNAVAILABLE),
                             "state_known", known, "leader_ready", ready);
    /* No cluster history: no Raft state at all, or a running log that holds nothing past the
     * bootstrap configuration (index 1). A member restarting from its directory is not fresh:
     * it knows no cluster state only until a leader is back. A member without state may
     * bootstrap a new cluster only on such an answer (agent.c join_lookup). One that has just
     * bootstrapped is fresh before raft_start too (its log is loaded only then): otherwise the
     * other initial members would wait a retry for nothing. */
    bool fresh = a->raft_fresh || (a->cons_open && (a->cons.running || a->raft_bootstrapped) &&
                                   !known && cons_last_index(&a->cons) <= 1);
    json_object_set_new(raft, "fresh", json_boolean(fresh));
    json_t *o =
        json_pack("{s:s, s:o, s:o}", "scope", a->conf.scope, "members", members, "raft", raft);
    if (known && s->system_id != 0) {
        char sysid[24];
        snprintf(sysid, sizeof sysid, "%llu", (unsigned long long)s->system_id);
        json_object_set_new(o, "system_id", json_string(sysid));
    }
    if (known && a->conf.has_postgresql) {
        json_t *voters = json_array();
        for (unsigned i = 0; i < s->sync.n_voters; i++) {
            json_array_append_new(voters, json_string(s->sync.voters[i]));
        }
        int mode, commit;
        unsigned k;
        bool recorded;
        config_in_force(a, &mode, &k, &commit, &recorded);
        char bound[24];
        snprintf(bound, sizeof bound, "%llu", (unsigned long long)s->wal_bound);
        json_object_set_new(
            o, "sync",
            json_pack("{s:s, s:I, s:o, s:b, s:I, s:s, s:s}", "mode", conf_sync_mode_name(mode), "k",
                      (json_int_t)s->sync.k, "voters", voters, "degraded",
                      mode != SYNC_MODE_OFF && s->sync.k == 0, "wanted", (json_int_t)k, "commit",
                      conf_sync_commit_name(commit), "wal_bound", bound));
        json_object_set_new(o, "pause", json_boolean(s->paused));
    }
    if (known) {
        json_object_set_new(o, "primary",
                            json_pack("{s:s?, s:I, s:I}", "name",
                                      s->primary.name[0] ? s->primary.name : NULL, "term",
                                      (json_int_t)s->primary.term, "timeline",
                                      (json_int_t)s->primary.timeline));
    }
    json_t *w = known ? scheduled_switchover_json(s) : NULL;
    if (w != NULL) {
        json_object_set_new(o, "scheduled_switchover", w);
    }
    if (a->phase == AGENT_PHASE_JOINING) {
        json_object_set_new(o, "join_status", json_string(a->join_status));
    }
    return o;
}

/* ---- membership changes ------------------------------------------------------------------ */

struct pending_change {
    struct http_conn *conn;
    char name[FSM_NAME_MAX];
    bool add;
    /* A removal: the member's server id, and the wait for the Raft configuration to drop it. */
    uint64_t id;
    struct agent *a;
    uv_timer_t timer;
    unsigned ticks;
};

/* A removal is answered once the Raft configuration no longer has the member: an operator who
 * stops it earlier, while it still counts as a voter, takes a vote from the majority. */
#define LEAVE_WAIT_TICKS 150
#define LEAVE_TICK_MS 100

static void pending_change_closed(uv_handle_t *h)
{
    free(h->data);
}

static void leave_tick(uv_timer_t *t)
{
    struct pending_change *p = t->data;
    struct agent *a = p->a;
    bool gone = a->cons_open && !cons_config_has(&a->cons, p->id);
    if (a->cons_open && p->id == a->cons.id && a->cons.role != CONS_ROLE_LEADER) {
        /* This member removed itself: it handed leadership over, and the next leader drops it
         * from the configuration first thing (a configuration without it is never sent here). */
        uint64_t leader = 0;
        const char *address = NULL;
        cons_leader(&a->cons, &leader, &address);
        gone = leader != 0 && leader != p->id;
    }
    if (a->phase != AGENT_PHASE_RUNNING) {
        /* Answered even when the server is closing: answering is what frees the connection. */
        respond_error(p->conn, 503,
                      "agent stopping before the raft configuration dropped the "
                      "member: it may still count as a voter");
    } else if (gone) {
        respond_json(p->conn, 200,
                     json_pack("{s:s, s:s}", "member", p->name, "result",
                               "removed from the member list and the raft configuration"));
    } else if (++p->ticks >= LEAVE_WAIT_TICKS) {
        respond_json(p->conn, 202,
                     json_pack("{s:s, s:s}", "member", p->name, "result",
                               "removed from the member list; the raft configuration still has "
                               "it (it still counts as a voter): do not stop it yet"));
    } else {
        return;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, pending_change_closed);
}

static void change_committed(void *data, int rc, const char *msg)
{
    struct pending_change *p = data;
    if (rc == 0 && !p->add && p->a != NULL) {
        uv_timer_init(p->a->loop, &p->timer);
        p->timer.data = p;
        uv_timer_start(&p->timer, leave_tick, 0, LEAVE_TICK_MS);
        return;
    }
    if (rc == 0) {
        respond_json(p->conn, p->add ? 201 : 200,
                     json_pack("{s:s, s:s}", "member", p->name, "result",
                               p->add ? "added; joins as spare and becomes a voter once caught up"
                                      : "removed; leaves the raft configuration next"));
    } else {
        int status = rc == RPG_ENOTLEADER ? 503 : rc == RPG_ERAFT ? 500 : 409;
        respond_error(p->conn, status, msg);
    }
    free(p);
}

/* Mutations go through the leader: others answer 503 and name it so clients can retry there. */
static bool require_leader(struct agent *a, struct http_conn *conn)
{
    if (a->cons_open && a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready) {
        return true;
    }
    uint64_t leader_id = 0;
    const char *leader_address = NULL;
    if (a->cons_open) {
        cons_leader(&a->cons, &leader_id, &leader_address);
    }
    const struct fsm_member *m = fsm_state_member_by_id(&a->cons.state, leader_id);
    respond_json(conn, 503,
                 json_pack("{s:s, s:s?, s:s?}", "error", "this member is not the raft leader",
                           "leader", m != NULL ? m->name : NULL, "leader_api",
                           m != NULL ? m->api_address : NULL));
    return false;
}

static int64_t wall_ms(void);

/* POST /restart {"role", "restart_pending", "postgres_version", "schedule"} (Patroni's body; all
 * optional). With schedule, the restart is kept by this member and run at that time
 * (schedule.h restart_schedule_tick); answered 202 at once. */
static void restart_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    json_error_t jerr;
    json_t *o = req->body_len > 0
                    ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)
                    : json_object();
    char msg[RPG_ERRMSG_SIZE] = "";
    char why[RPG_ERRMSG_SIZE];
    const char *key;
    json_t *v;
    int below_version = 0;
    unsigned timeout_s = 0;
    int64_t at_ms = 0;
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
    } else {
        json_object_foreach(o, key, v) {
            if (strcmp(key, "role") == 0) {
                const char *r = json_string_value(v);
                if (r == NULL || (strcmp(r, "primary") != 0 && strcmp(r, "replica") != 0 &&
                                  strcmp(r, "master") != 0)) {
                    snprintf(msg, sizeof msg, "role: expected primary or replica");
                    break;
                }
            } else if (strcmp(key, "restart_pending") == 0) {
                if (!json_is_boolean(v)) {
                    snprintf(msg, sizeof msg, "restart_pending: expected true or false");
                    break;
                }
            } else if (strcmp(key, "postgres_version") == 0) {
                if (!json_is_string(v)) {
                    snprintf(msg, sizeof msg, "postgres_version: expected a string as \"15.4\"");
                    break;
                }
                if (schedule_parse_pg_version(json_string_value(v), &below_version, why) != 0) {
                    snprintf(msg, sizeof msg, "postgres_version: %.200s", why);
                    break;
                }
            } else if (strcmp(key, "timeout") == 0) {
                char text[32];
                if (json_is_integer(v)) {
                    snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                } else {
                    snprintf(text, sizeof text, "%s",
                             json_is_string(v) ? json_string_value(v) : "(not a number)");
                }
                if (schedule_parse_timeout(text, &timeout_s, why) != 0) {
                    snprintf(msg, sizeof msg, "timeout: %.200s", why);
                    break;
                }
            } else if (strcmp(key, "schedule") == 0) {
                if (!json_is_string(v)) {
                    snprintf(msg, sizeof msg, "schedule: expected an ISO 8601 time string");
                    break;
                }
                if (schedule_parse_time(json_string_value(v), false, &at_ms, why) != 0) {
                    snprintf(msg, sizeof msg, "schedule: %.200s", why);
                    break;
                }
            } else {
                snprintf(msg, sizeof msg,
                         "unknown key \"%.64s\" (role, restart_pending, postgres_version, "
                         "timeout, schedule)",
                         key);
                break;
            }
        }
    }
    if (msg[0] != '\0') {
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    const char *role = json_string_value(json_object_get(o, "role"));
    if (role != NULL && strcmp(role, "master") == 0) {
        role = "primary";
    }
    bool pending = json_is_true(json_object_get(o, "restart_pending"));
    if (at_ms == 0) {
        restart_set_timeout(a, timeout_s);
        restart_start(a, conn, role, pending, below_version);
        json_decref(o);
        return;
    }
    struct restart_schedule *sc = &a->restart.sched;
    char at[48], now_s[48];
    int64_t now = wall_ms();
    schedule_format_time(at_ms, at, sizeof at);
    schedule_format_time(now, now_s, sizeof now_s);
    int status = 0;
    if (!a->conf.has_postgresql) {
        snprintf(msg, sizeof msg, "this member runs no postgresql");
        status = 400;
    } else if (a->cons_open && a->cons.state.initialized && a->cons.state.paused) {
        snprintf(msg, sizeof msg,
                 "schedule: cannot schedule a restart in maintenance mode (ctl resume)");
        status = 400;
    } else if (at_ms < now) {
        snprintf(msg, sizeof msg, "schedule: %s is in the past (now %s)", at, now_s);
        status = 422;
    } else if (sc->at_ms != 0) {
        char other[48];
        schedule_format_time(sc->at_ms, other, sizeof other);
        snprintf(msg, sizeof msg,
                 "another restart is already scheduled at %s: cancel it first (DELETE /restart, "
                 "raftpg ctl flush restart)",
                 other);
        status = 409;
    }
    if (status != 0) {
        json_decref(o);
        log_info("scheduled restart refused: %s", msg);
        respond_error(conn, status, msg);
        return;
    }
    memset(sc, 0, sizeof *sc);
    sc->at_ms = at_ms;
    snprintf(sc->role, sizeof sc->role, "%s", role != NULL ? role : "");
    sc->pending = pending;
    sc->below_version = below_version;
    sc->timeout_s = timeout_s;
    /* A restart before the time makes it moot (restart_schedule_decide). */
    bool running = a->pg_open && a->pg.obs_valid && a->pg.obs.state == HA_PG_RUNNING;
    snprintf(sc->start_time, sizeof sc->start_time, "%s", running ? a->pg.start_time : "");
    log_info("restart scheduled at %s (role %s%s)", at, role != NULL ? role : "any",
             pending ? ", only if a setting waits for it" : "");
    json_decref(o);
    json_t *ans = json_pack("{s:s}", "message", "Restart scheduled");
    json_t *w = restart_schedule_json(sc);
    if (ans != NULL && w != NULL) {
        json_object_set_new(ans, "scheduled_restart", w);
    } else {
        json_decref(w);
    }
    respond_json(conn, 202, ans);
}

/* DELETE /restart: cancels this member's scheduled restart (Patroni: 200, or 404 when none). */
static void restart_cancel(struct agent *a, struct http_conn *conn)
{
    struct restart_schedule *sc = &a->restart.sched;
    if (sc->at_ms == 0) {
        respond_error(conn, 404, "no restarts are scheduled");
        return;
    }
    char at[48];
    schedule_format_time(sc->at_ms, at, sizeof at);
    memset(sc, 0, sizeof *sc);
    log_info("scheduled restart at %s deleted", at);
    respond_json(conn, 200, json_pack("{s:s}", "message", "scheduled restart deleted"));
}

/* ---- scheduled switchover (schedule.h) ------------------------------------------------------ */

/* Patroni's "scheduled_switchover" of GET /cluster: {at, from, to}, from and to when named;
 * NULL when none is scheduled. */
static json_t *scheduled_switchover_json(const struct fsm_state *s)
{
    if (!s->initialized || s->switchover.at_ms == 0) {
        return NULL;
    }
    char at[48];
    schedule_format_time(s->switchover.at_ms, at, sizeof at);
    json_t *o = json_pack("{s:s, s:I}", "at", at, "at_ms", (json_int_t)s->switchover.at_ms);
    if (s->switchover.from[0] != '\0') {
        json_object_set_new(o, "from", json_string(s->switchover.from));
    }
    if (s->switchover.to[0] != '\0') {
        json_object_set_new(o, "to", json_string(s->switchover.to));
    }
    return o;
}

struct pending_schedule {
    struct http_conn *conn;
    struct agent *a;
    bool cancel;
};

static void schedule_committed(void *data, int rc, const char *msg)
{
    struct pending_schedule *p = data;
    const struct fsm_state *s = &p->a->cons.state;
    if (rc == 0 && p->cancel) {
        log_info("scheduled switchover deleted");
        respond_json(p->conn, 200, json_pack("{s:s}", "message", "scheduled switchover deleted"));
    } else if (rc == 0) {
        json_t *o = json_pack("{s:s}", "message", "Switchover scheduled");
        json_t *w = scheduled_switchover_json(s);
        if (w != NULL) {
            json_object_set_new(o, "scheduled_switchover", w);
        }
        respond_json(p->conn, 202, o);
    } else {
        int status = rc == RPG_ENOTLEADER               ? 503
                     : rc == RPG_ERAFT                  ? 500
                     : rc == RPG_ENOTFOUND && p->cancel ? 404
                     : rc == RPG_EEXIST                 ? 409
                                                        : 412;
        respond_error(p->conn, status, msg);
    }
    free(p);
}

static void submit_schedule(struct agent *a, struct http_conn *conn, const struct fsm_cmd *cmd,
                            bool cancel)
{
    char msg[RPG_ERRMSG_SIZE];
    struct pending_schedule *p = calloc(1, sizeof *p);
    if (p == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->a = a;
    p->cancel = cancel;
    int rv = cons_submit(&a->cons, cmd, schedule_committed, p, msg);
    if (rv != 0) {
        free(p);
        respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
    }
}

/* POST /switchover with scheduled_at, on the leader: checks what it can now (the members named,
 * the primary, the time, maintenance mode, one schedule at a time), then records it in Raft. */
static void switchover_schedule(struct agent *a, struct http_conn *conn, const char *leader,
                                const char *candidate, int64_t at_ms)
{
    const struct fsm_state *s = &a->cons.state;
    const struct fsm_member *m;
    char msg[RPG_ERRMSG_SIZE] = "", at[48], now_s[48];
    int status = 412;
    int64_t now = wall_ms();
    schedule_format_time(at_ms, at, sizeof at);
    schedule_format_time(now, now_s, sizeof now_s);
    if (!s->initialized || s->primary.name[0] == '\0') {
        snprintf(msg, sizeof msg, "the cluster has no primary recorded yet");
        status = 503;
    } else if (s->paused) {
        snprintf(msg, sizeof msg,
                 "scheduled_at: cannot schedule a switchover in maintenance mode (ctl resume)");
    } else if (at_ms <= now) {
        snprintf(msg, sizeof msg, "scheduled_at: %s is in the past (now %s)", at, now_s);
    } else if (leader != NULL && fsm_state_member(s, leader) == NULL) {
        snprintf(msg, sizeof msg, "leader: %s is not a member of this cluster", leader);
    } else if (leader != NULL && strcmp(leader, s->primary.name) != 0) {
        snprintf(msg, sizeof msg, "leader: %s is not the primary (%s is)", leader, s->primary.name);
    } else if (candidate != NULL && (m = fsm_state_member(s, candidate)) == NULL) {
        snprintf(msg, sizeof msg, "candidate: %s is not a member of this cluster", candidate);
    } else if (candidate != NULL && (m->tags & FSM_TAG_NOFAILOVER) != 0) {
        snprintf(msg, sizeof msg, "candidate: %s is tagged nofailover", candidate);
    } else if (candidate != NULL && strcmp(candidate, s->primary.name) == 0) {
        snprintf(msg, sizeof msg, "candidate: %s is the primary already", candidate);
    } else if (s->switchover.at_ms != 0) {
        char other[48];
        schedule_format_time(s->switchover.at_ms, other, sizeof other);
        snprintf(msg, sizeof msg,
                 "a switchover is already scheduled at %s: cancel it first (DELETE /switchover, "
                 "raftpg ctl flush switchover)",
                 other);
        status = 409;
    } else {
        /* An agent that reads fewer versions would reject the entry and its state differ. */
        for (unsigned i = 0; i < s->n_members && msg[0] == '\0'; i++) {
            const char *name = s->members[i].name;
            if (strcmp(name, a->conf.name) == 0) {
                continue;
            }
            const struct peer_status *p = peers_get(&a->peers, name);
            if (p == NULL || p->last_seen == 0) {
                snprintf(msg, sizeof msg,
                         "no report from %s yet: every member must read state version 5", name);
                status = 503;
            } else if (p->state_version < 5) {
                snprintf(msg, sizeof msg,
                         "%s runs an agent that cannot read a scheduled switchover (state "
                         "version %u): upgrade it first",
                         name, p->state_version);
                status = 503;
            }
        }
    }
    if (msg[0] != '\0') {
        log_info("scheduled switchover refused: %s", msg);
        respond_error(conn, status, msg);
        return;
    }
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SCHEDULE_SWITCHOVER;
    cmd.term = a->cons.term;
    cmd.u.schedule_switchover.at_ms = at_ms;
    snprintf(cmd.u.schedule_switchover.from, FSM_NAME_MAX, "%s", leader != NULL ? leader : "");
    snprintf(cmd.u.schedule_switchover.to, FSM_NAME_MAX, "%s", candidate != NULL ? candidate : "");
    log_info("switchover scheduled at %s requested (from=%s to=%s)", at,
             leader != NULL ? leader : "(the primary then)",
             candidate != NULL ? candidate : "(the best standby then)");
    submit_schedule(a, conn, &cmd, false);
}

/* DELETE /switchover: cancels the scheduled switchover (Patroni: 200, or 404 when none). */
static void switchover_cancel(struct agent *a, struct http_conn *conn)
{
    if (!require_leader(a, conn)) {
        return;
    }
    const struct fsm_state *s = &a->cons.state;
    if (s->switchover.at_ms == 0) {
        respond_error(conn, 404, "no switchover is scheduled");
        return;
    }
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_CLEAR_SWITCHOVER;
    cmd.term = a->cons.term;
    cmd.u.clear_switchover.at_ms = s->switchover.at_ms;
    submit_schedule(a, conn, &cmd, true);
}

/* POST /switchover {"leader", "candidate", "scheduled_at"} (Patroni's body; all optional here:
 * without scheduled_at it runs now and answers when it is over). */
static void switchover_request(struct agent *a, struct http_conn *conn,
                               const struct http_request *req)
{
    json_error_t jerr;
    json_t *o = req->body_len > 0
                    ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr)
                    : json_object();
    char msg[RPG_ERRMSG_SIZE] = "";
    const char *key;
    json_t *v;
    int64_t at_ms = 0;
    bool scheduled = false;
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
    } else {
        json_object_foreach(o, key, v) {
            if (strcmp(key, "leader") == 0 || strcmp(key, "candidate") == 0) {
                if (!json_is_string(v) || api_check_name(json_string_value(v)) != 0) {
                    snprintf(msg, sizeof msg, "%s: expected a member name", key);
                    break;
                }
            } else if (strcmp(key, "scheduled_at") == 0) {
                char why[RPG_ERRMSG_SIZE];
                if (json_is_null(v)) {
                    continue; /* Patroni: null means now */
                }
                if (!json_is_string(v)) {
                    snprintf(msg, sizeof msg, "scheduled_at: expected an ISO 8601 time string");
                    break;
                }
                if (schedule_parse_time(json_string_value(v), false, &at_ms, why) != 0) {
                    snprintf(msg, sizeof msg, "scheduled_at: %.200s", why);
                    break;
                }
                scheduled = true;
            } else {
                snprintf(msg, sizeof msg, "unknown key \"%.64s\" (leader, candidate, scheduled_at)",
                         key);
                break;
            }
        }
        const char *l = json_string_value(json_object_get(o, "leader"));
        const char *c = json_string_value(json_object_get(o, "candidate"));
        if (msg[0] == '\0' && l != NULL && c != NULL && strcmp(l, c) == 0) {
            snprintf(msg, sizeof msg, "candidate: %s is the leader named too", c);
        }
    }
    if (msg[0] != '\0') {
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    if (!require_leader(a, conn)) {
        json_decref(o);
        return;
    }
    if (scheduled) {
        switchover_schedule(a, conn, json_string_value(json_object_get(o, "leader")),
                            json_string_value(json_object_get(o, "candidate")), at_ms);
    } else {
        switchover_start(a, conn, json_string_value(json_object_get(o, "leader")),
                         json_string_value(json_object_get(o, "candidate")));
    }
    json_decref(o);
}

/* POST /failover {"candidate", "leader"} (Patroni's body: candidate required; a leader, when
 * given, must be the member this one knows as primary). */
static void failover_request(struct agent *a, struct http_conn *conn,
                             const struct http_request *req)
{
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[RPG_ERRMSG_SIZE] = "";
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
    } else {
        json_object_foreach(o, key, v) {
            if (strcmp(key, "leader") == 0 || strcmp(key, "candidate") == 0) {
                if (!json_is_string(v) || api_check_name(json_string_value(v)) != 0) {
                    snprintf(msg, sizeof msg, "%s: expected a member name", key);
                    break;
                }
            } else if (strcmp(key, "scheduled_at") == 0) {
                snprintf(msg, sizeof msg,
                         "scheduled_at: a failover cannot be scheduled (use "
                         "POST /switchover)");
                break;
            } else {
                snprintf(msg, sizeof msg, "unknown key \"%.64s\" (candidate, leader)", key);
                break;
            }
        }
        if (msg[0] == '\0' && json_object_get(o, "candidate") == NULL) {
            snprintf(msg, sizeof msg, "candidate: required (the member to promote)");
        }
    }
    if (msg[0] != '\0') {
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    if (!require_leader(a, conn)) {
        json_decref(o);
        return;
    }
    const char *leader = json_string_value(json_object_get(o, "leader"));
    const char *candidate = json_string_value(json_object_get(o, "candidate"));
    if (leader != NULL && strcmp(leader, a->cons.state.primary.name) != 0) {
        snprintf(msg, sizeof msg, "leader: %s is not the primary (the primary is %s)", leader,
                 a->cons.state.primary.name[0] != '\0' ? a->cons.state.primary.name : "none");
        respond_error(conn, 412, msg);
    } else if (leader != NULL) {
        /* Patroni: a failover that names the leader is a switchover. */
        switchover_start(a, conn, leader, candidate);
    } else {
        failover_start(a, conn, candidate);
    }
    json_decref(o);
}

static void member_add(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[RPG_ERRMSG_SIZE];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    const char *keys[] = {"name", "raft", "api"};
    const char *vals[3];
    for (int i = 0; i < 3; i++) {
        vals[i] = json_string_value(json_object_get(o, keys[i]));
        if (vals[i] == NULL) {
            snprintf(msg, sizeof msg, "request body: \"%s\" must be a string", keys[i]);
            json_decref(o);
            respond_error(conn, 400, msg);
            return;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "raft") != 0 && strcmp(key, "api") != 0) {
            snprintf(msg, sizeof msg, "request body: unknown key \"%.64s\"", key);
            json_decref(o);
            respond_error(conn, 400, msg);
            return;
        }
    }
    char host[16];
    uint16_t port;
    if (api_check_name(vals[0]) != 0) {
        snprintf(msg, sizeof msg,
                 "name: expected 1..63 characters of [A-Za-z0-9_.-], got \"%.64s\"", vals[0]);
    } else if (conf_parse_addr(vals[1], host, &port) != 0) {
        snprintf(msg, sizeof msg, "raft: expected IPv4 address:port, got \"%.64s\"", vals[1]);
    } else if (conf_parse_addr(vals[2], host, &port) != 0) {
        snprintf(msg, sizeof msg, "api: expected IPv4 address:port, got \"%.64s\"", vals[2]);
    } else {
        msg[0] = '\0';
    }
    if (msg[0] != '\0') {
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    if (!require_leader(a, conn)) {
        json_decref(o);
        return;
    }
    struct pending_change *p = calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(o);
        respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->add = true;
    snprintf(p->name, sizeof p->name, "%s", vals[0]);
    int rv = cons_member_add(&a->cons, vals[0], vals[1], vals[2], change_committed, p, msg);
    json_decref(o);
    if (rv != 0) {
        free(p);
        respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
        return;
    }
    log_info("member add requested: %s", p->name);
}

/* In the recorded synchronous voters, or in what the primary's PostgreSQL waits for. */
static bool in_sync_sets(const struct agent *a, const char *name)
{
    return sync_member_in_sets(&a->cons.state, a->pg.sync_seen, name);
}

struct pending_remove {
    uv_timer_t timer;
    struct agent *a;
    struct http_conn *conn;
    char name[FSM_NAME_MAX];
    unsigned ticks;
};

static void pending_remove_closed(uv_handle_t *h)
{
    free(h->data);
}

static void submit_remove(struct agent *a, struct http_conn *conn, const char *name)
{
    char msg[RPG_ERRMSG_SIZE];
    struct pending_change *p = calloc(1, sizeof *p);
    if (p == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    snprintf(p->name, sizeof p->name, "%s", name);
    const struct fsm_member *m = fsm_state_member(&a->cons.state, name);
    p->id = m != NULL ? m->id : 0;
    p->a = a;
    int rv = cons_member_remove(&a->cons, name, change_committed, p, msg);
    if (rv != 0) {
        free(p);
        respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
        return;
    }
    log_info("member remove requested: %s", name);
}

static void pending_remove_tick(uv_timer_t *t)
{
    struct pending_remove *p = t->data;
    struct agent *a = p->a;
    bool leader = a->cons_open && a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready &&
                  a->phase == AGENT_PHASE_RUNNING;
    enum sync_leave step = sync_leave_tick(leader, in_sync_sets(a, p->name), &p->ticks);
    switch (step) {
    case SYNC_LEAVE_NOT_LEADER:
        respond_error(p->conn, 503, "leadership changed while the member left the synchronous set");
        break;
    case SYNC_LEAVE_REMOVE: submit_remove(a, p->conn, p->name); break;
    case SYNC_LEAVE_TIMEOUT:
        respond_error(p->conn, 503, "the member is still in the synchronous set: try again");
        break;
    case SYNC_LEAVE_WAIT: break;
    }
    if (step != SYNC_LEAVE_WAIT) {
        if (strcmp(a->removing, p->name) == 0) {
            a->removing[0] = '\0';
        }
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, pending_remove_closed);
    }
}

static void member_remove(struct agent *a, struct http_conn *conn, const char *name)
{
    char msg[RPG_ERRMSG_SIZE];
    if (api_check_name(name) != 0) {
        respond_error(conn, 400, "member name: expected 1..63 characters of [A-Za-z0-9_.-]");
        return;
    }
    if (!require_leader(a, conn)) {
        return;
    }
    if (fsm_state_member(&a->cons.state, name) == NULL) {
        snprintf(msg, sizeof msg, "no member named \"%s\"", name);
        respond_error(conn, 404, msg);
        return;
    }
    if (a->cons.state.n_members <= 1) {
        respond_error(conn, 409, "refusing to remove the last member");
        return;
    }
    switch (sync_remove_start(a->removing, name, a->conf.has_postgresql && in_sync_sets(a, name))) {
    case SYNC_REMOVE_NOW: submit_remove(a, conn, name); return;
    case SYNC_REMOVE_BUSY:
        snprintf(msg, sizeof msg, "member %s is being removed: one removal at a time", a->removing);
        respond_error(conn, 409, msg);
        return;
    case SYNC_REMOVE_ALREADY:
        snprintf(msg, sizeof msg,
                 "member %s is being removed already: it is leaving the synchronous set", name);
        respond_error(conn, 409, msg);
        return;
    case SYNC_REMOVE_LEAVE_FIRST: break;
    }
    struct pending_remove *p = calloc(1, sizeof *p);
    if (p == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    p->a = a;
    p->conn = conn;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(a->removing, sizeof a->removing, "%s", name);
    uv_timer_init(a->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, pending_remove_tick, SYNC_LEAVE_TICK_MS, SYNC_LEAVE_TICK_MS);
    log_info("member remove requested: %s leaves the synchronous set first", name);
}

/* How the recorded synchronous set counts this member's running standby (Patroni's roles):
 * every voter needed (k = n) makes a synchronous standby, fewer a quorum standby. */
static enum health_standby own_standby_kind(const struct agent *a)
{
    const struct fsm_state *st = &a->cons.state;
    bool standby = a->conf.has_postgresql && a->pg_open && a->pg.obs.state == HA_PG_RUNNING &&
                   a->pg.obs.in_recovery;
    if (!standby || !a->cons_open || st->sync.k == 0 || !is_sync_voter(a, a->conf.name)) {
        return HEALTH_STANDBY_ASYNC;
    }
    return st->sync.k >= st->sync.n_voters ? HEALTH_STANDBY_SYNC : HEALTH_STANDBY_QUORUM;
}

static bool is_sync_voter(const struct agent *a, const char *name)
{
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        if (strcmp(s->sync.voters[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- dynamic configuration (GET /config, PATCH /config) ---------------------------------- */

/* The cluster-wide settings in force: the replicated ones, or this member's file defaults until
 * the first leader has recorded them. */
static void config_in_force(const struct agent *a, int *mode, unsigned *k, int *commit,
                            bool *recorded)
{
    struct sync_settings s;
    sync_settings_in_force(a->cons_open ? &a->cons.state : NULL, a->conf.sync.mode,
                           a->conf.sync.node_count, a->conf.sync.commit, &s);
    *mode = s.mode;
    *k = s.k;
    *commit = s.commit;
    *recorded = s.recorded;
}

static json_t *config_json(const struct agent *a)
{
    int mode, commit;
    unsigned k;
    bool recorded;
    config_in_force(a, &mode, &k, &commit, &recorded);
    json_t *params = json_object();
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; a->cons_open && s->initialized && i < s->config.n_params; i++) {
        json_object_set_new(params, s->config.params[i].name,
                            json_string(s->config.params[i].value));
    }
    json_t *pgsec = json_pack("{s:o}", "parameters", params);
    if (a->cons_open && s->initialized && s->config.n_hba > 0) {
        json_t *hba = json_array();
        for (unsigned i = 0; i < s->config.n_hba; i++) {
            json_array_append_new(hba, json_string(s->config.hba[i]));
        }
        json_object_set_new(pgsec, "pg_hba", hba);
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:b, s:b, s:o}", "synchronous_mode",
                          conf_sync_mode_name(mode), "synchronous_node_count", (json_int_t)k,
                          "synchronous_commit", conf_sync_commit_name(commit), "recorded", recorded,
                          "pause",
                          a->cons_open && a->cons.state.initialized && a->cons.state.paused,
                          "postgresql", pgsec);
    bool lag_set;
    uint64_t lag;
    sync_max_lag_in_force(a->cons_open ? s : NULL, a->conf.max_lag.set, a->conf.max_lag.bytes,
                          &lag_set, &lag);
    if (o != NULL && lag_set) {
        json_object_set_new(o, "maximum_lag_on_failover", json_integer((json_int_t)lag));
    }
    return o;
}

struct pending_config {
    struct http_conn *conn;
    struct agent *a;
};

static void config_committed(void *data, int rc, const char *msg)
{
    struct pending_config *p = data;
    if (rc == 0) {
        respond_json(p->conn, 200, config_json(p->a));
    } else {
        respond_error(p->conn, rc == RPG_ENOTLEADER ? 503 : rc == RPG_ERAFT ? 500 : 409, msg);
    }
    free(p);
}

static int name_index(const char *v, const char *(*name_of)(int), int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(v, name_of(i)) == 0) {
            return i;
        }
    }
    return -1;
}

/* Submits a configuration command through the leader; the request is answered with the
 * settings in force once it is committed. */
static void submit_config(struct agent *a, struct http_conn *conn, const struct fsm_cmd *cmd)
{
    char msg[RPG_ERRMSG_SIZE];
    if (!require_leader(a, conn)) {
        return;
    }
    struct pending_config *p = calloc(1, sizeof *p);
    if (p == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->a = a;
    int rv = cons_submit(&a->cons, cmd, config_committed, p, msg);
    if (rv != 0) {
        free(p);
        respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
    }
}

/* The dynamic PostgreSQL parameters being edited, a sorted set as the state keeps it, and the
 * pg_hba lines. */
struct param_set {
    unsigned n;
    struct fsm_param p[FSM_PARAMS_MAX];
    unsigned n_hba;
    char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX];
};

static bool param_set_equal(const struct param_set *a, const struct fsm_state *s)
{
    const struct fsm_param *ps = s->config.params;
    unsigned n = s->config.n_params;
    if (a->n != n || a->n_hba != s->config.n_hba) {
        return false;
    }
    for (unsigned i = 0; i < a->n_hba; i++) {
        if (strcmp(a->hba[i], s->config.hba[i]) != 0) {
            return false;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(a->p[i].name, ps[i].name) != 0 || strcmp(a->p[i].value, ps[i].value) != 0) {
            return false;
        }
    }
    return true;
}

/* Sets (value non-NULL) or removes (NULL) name, keeping the names sorted. */
static int param_set_put(struct param_set *set, const char *name, const char *value, char *msg)
{
    unsigned i = 0;
    while (i < set->n && strcmp(set->p[i].name, name) < 0) {
        i++;
    }
    bool found = i < set->n && strcmp(set->p[i].name, name) == 0;
    if (value == NULL) {
        if (found) {
            memmove(&set->p[i], &set->p[i + 1], (set->n - i - 1) * sizeof set->p[0]);
            set->n--;
            memset(&set->p[set->n], 0, sizeof set->p[0]);
        }
        return 0;
    }
    if (!found) {
        if (set->n == FSM_PARAMS_MAX) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters: at most %d parameters in the dynamic "
                           "configuration (adding %s)",
                           FSM_PARAMS_MAX, name);
        }
        memmove(&set->p[i + 1], &set->p[i], (set->n - i) * sizeof set->p[0]);
        set->n++;
    }
    memset(&set->p[i], 0, sizeof set->p[i]);
    rpg_fmt(set->p[i].name, sizeof set->p[i].name, "%s", name);
    rpg_fmt(set->p[i].value, sizeof set->p[i].value, "%s", value);
    return 0;
}

/* Applies {"name": value or null, ...} to set: a string, a number or a boolean (written as on or
 * off) sets it, null removes it. Each name is checked here, before anything is committed:
 * syntax and bounds (fsm_param_check) and what raftpg owns (pg_param_owned). */
static int param_set_apply(struct param_set *set, json_t *o, char *msg)
{
    if (!json_is_object(o)) {
        return rpg_err(msg, RPG_EINVAL, "postgresql.parameters: expected an object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        char name[FSM_PARAM_NAME_MAX + 1], value[FSM_PARAM_VALUE_MAX + 1];
        size_t n = strlen(key);
        if (n >= sizeof name) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%.64s...: name is longer than %d bytes", key,
                           FSM_PARAM_NAME_MAX - 1);
        }
        /* PostgreSQL folds names to lower case. */
        for (size_t i = 0; i <= n; i++) {
            name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] - 'A' + 'a' : key[i]);
        }
        const char *why = pg_param_owned(name);
        if (why != NULL) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: not settable here: %s", name,
                           why);
        }
        char why_bad[RPG_ERRMSG_SIZE];
        if (json_is_null(v)) {
            int rc = fsm_param_check(name, "", why_bad);
            if (rc != 0) {
                return rpg_err(msg, rc, "postgresql.parameters: %s", why_bad);
            }
            param_set_put(set, name, NULL, msg);
            continue;
        }
        int w;
        if (json_is_string(v)) {
            if (strlen(json_string_value(v)) != json_string_length(v)) {
                return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: value holds a NUL byte",
                               name);
            }
            w = snprintf(value, sizeof value, "%s", json_string_value(v));
        } else if (json_is_integer(v)) {
            w = snprintf(value, sizeof value, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            w = snprintf(value, sizeof value, "%.17g", json_real_value(v));
        } else if (json_is_boolean(v)) {
            w = snprintf(value, sizeof value, "%s", json_is_true(v) ? "on" : "off");
        } else {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: expected a string, a number, a boolean or "
                           "null (to remove it)",
                           name);
        }
        if (w < 0 || (size_t)w >= FSM_PARAM_VALUE_MAX) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: value is longer than %d bytes", name,
                           FSM_PARAM_VALUE_MAX - 1);
        }
        int rc = fsm_param_check(name, value, why_bad);
        if (rc != 0) {
            return rpg_err(msg, rc, "postgresql.parameters: %s", why_bad);
        }
        if ((rc = param_set_put(set, name, value, msg)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* The "pg_hba" key: a list of pg_hba.conf lines that replaces the current one, or null (each
 * member's own file again). A line must begin with a connection type: a comment or an include
 * could leave the file without a rule. */
static int hba_apply(struct param_set *set, json_t *v, char *msg)
{
    if (json_is_null(v)) {
        set->n_hba = 0;
        memset(set->hba, 0, sizeof set->hba);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return rpg_err(msg, RPG_EINVAL,
                       "postgresql.pg_hba: expected a non-empty list of lines, or null");
    }
    if (json_array_size(v) > FSM_HBA_MAX) {
        return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba: %zu lines, at most %d",
                       json_array_size(v), FSM_HBA_MAX);
    }
    size_t i;
    json_t *line;
    memset(set->hba, 0, sizeof set->hba);
    json_array_foreach(v, i, line) {
        const char *text = json_string_value(line);
        char why[RPG_ERRMSG_SIZE];
        if (text == NULL || strlen(text) != json_string_length(line)) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba[%zu]: expected a string", i);
        }
        if (fsm_hba_check((unsigned)i, text, why) != 0) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba: %s", why);
        }
        size_t skip = strspn(text, " \t"), word = strcspn(text + skip, " \t");
        if (!fsm_hba_type_known(text)) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.pg_hba[%zu]: a line begins with local, host, hostssl, "
                           "hostnossl, hostgssenc or hostnogssenc, got \"%.*s\"",
                           i, (int)(word < 32 ? word : 32), text + skip);
        }
        rpg_fmt(set->hba[i], FSM_HBA_LINE_MAX, "%s", text);
    }
    set->n_hba = (unsigned)json_array_size(v);
    return 0;
}

/* The "postgresql" key of PATCH or PUT: {"parameters": {...} or null, "pg_hba": [...] or null};
 * null removes them all. */
static int postgresql_apply(struct param_set *set, json_t *v, char *msg)
{
    if (json_is_null(v)) {
        memset(set, 0, sizeof *set);
        return 0;
    }
    if (!json_is_object(v)) {
        return rpg_err(msg, RPG_EINVAL, "postgresql: expected an object");
    }
    int hrc = 0;
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub) {
        if (strcmp(key, "parameters") == 0) {
            if (json_is_null(sub)) {
                set->n = 0;
                memset(set->p, 0, sizeof set->p);
                continue;
            }
            int rc = param_set_apply(set, sub, msg);
            if (rc != 0) {
                return rc;
            }
        } else if (strcmp(key, "pg_hba") == 0) {
            if ((hrc = hba_apply(set, sub, msg)) != 0) {
                return hrc;
            }
        } else {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.%.64s: unknown key (settable: postgresql.parameters, "
                           "postgresql.pg_hba)",
                           key);
        }
    }
    return 0;
}

/* Each parameter set anew or changed must be one this member's PostgreSQL knows, with a value
 * that reads as its type (pg_settings, as read once per run of the server): an unknown name or
 * an unreadable value in the configuration file would stop every member's server from starting
 * again. Names with a dot are an extension's, which PostgreSQL takes as placeholders; without a
 * list (no server observed running here) nothing is checked. */
static int params_known(const struct agent *a, const struct param_set *set, char *msg)
{
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; i < set->n; i++) {
        const struct fsm_param *p = &set->p[i];
        bool same = false;
        for (unsigned j = 0; a->cons_open && s->initialized && j < s->config.n_params; j++) {
            same = same || (strcmp(s->config.params[j].name, p->name) == 0 &&
                            strcmp(s->config.params[j].value, p->value) == 0);
        }
        char context[32], why[RPG_ERRMSG_SIZE];
        if (same || strchr(p->name, '.') != NULL) {
            continue;
        }
        int rc = pg_setting_check(a->pg.settings, p->name, p->value, context, sizeof context, why,
                                  sizeof why);
        if (rc == 0) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: unrecognized configuration parameter (the "
                           "PostgreSQL server of %s has no such setting)",
                           p->name, a->conf.name);
        }
        if (rc == RPG_EINVAL) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: %s", p->name, why);
        }
    }
    return 0;
}

/* A SET_DYNAMIC entry is read only by agents of state version 6, SET_DYNAMIC_LAG by version 7:
 * every other member must have reported one, or its state would part from the others'. */
static int members_read_dynamic(const struct agent *a, unsigned need, char *msg, int *status)
{
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; i < s->n_members; i++) {
        const char *name = s->members[i].name;
        if (strcmp(name, a->conf.name) == 0) {
            continue;
        }
        const struct peer_status *p = peers_get(&a->peers, name);
        if (p == NULL || p->last_seen == 0) {
            *status = 503;
            return rpg_err(msg, RPG_EBUSY,
                           "%s: no report from %s yet: every member must read state "
                           "version %u",
                           need >= 7 ? "maximum_lag_on_failover" : "postgresql", name, need);
        }
        if (p->state_version < need) {
            *status = 503;
            return rpg_err(msg, RPG_EBUSY,
                           "%s: %s runs an agent that cannot read %s (state version %u): "
                           "upgrade it first",
                           need >= 7 ? "maximum_lag_on_failover" : "postgresql", name,
                           need >= 7 ? "it" : "parameters or pg_hba lines", p->state_version);
        }
    }
    return 0;
}

/* PATCH /config changes the keys it names (a null parameter is removed); PUT /config replaces
 * the whole dynamic configuration: a synchronous key it leaves out takes this member's file
 * value, and the parameters it leaves out are removed. */
static void config_change(struct agent *a, struct http_conn *conn, const struct http_request *req,
                          bool replace)
{
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[RPG_ERRMSG_SIZE];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
        json_decref(o);
        respond_error(conn, 400, msg);
        return;
    }
    int mode, commit;
    unsigned k;
    bool recorded;
    config_in_force(a, &mode, &k, &commit, &recorded);
    const struct fsm_state *s = &a->cons.state;
    bool paused = a->cons_open && s->initialized && s->paused;
    struct param_set *set = calloc(1, sizeof *set);
    if (set == NULL) {
        json_decref(o);
        respond_error(conn, 500, "out of memory");
        return;
    }
    /* Until the configuration is recorded, the file's limit is in force: a change starts from
     * it, so that the first entry records it (lag_changed below compares with the entry's). */
    bool lag_set;
    uint64_t lag;
    sync_max_lag_in_force(a->cons_open ? s : NULL, a->conf.max_lag.set, a->conf.max_lag.bytes,
                          &lag_set, &lag);
    int status = 400;
    if (replace) {
        lag_set = false;
        lag = 0;
        mode = a->conf.sync.mode;
        k = a->conf.sync.node_count;
        commit = a->conf.sync.commit;
    } else if (a->cons_open && s->initialized) {
        set->n = s->config.n_params;
        memcpy(set->p, s->config.params, sizeof set->p);
        set->n_hba = s->config.n_hba;
        memcpy(set->hba, s->config.hba, sizeof set->hba);
    }
    const char *key;
    json_t *v;
    msg[0] = '\0';
    /* Maintenance mode (Patroni's {"pause": true}) is its own Raft entry: changed alone. */
    json_t *pause = json_object_get(o, "pause");
    if (pause != NULL && !replace && (!json_is_boolean(pause) || json_object_size(o) != 1)) {
        respond_error(conn, 400,
                      json_is_boolean(pause)
                          ? "pause: change it alone ({\"pause\": true} or {\"pause\": false})"
                          : "pause: expected true or false");
        json_decref(o);
        free(set);
        return;
    }
    if (pause != NULL && !replace) {
        struct fsm_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_SET_PAUSE;
        cmd.u.set_pause.paused = json_is_true(pause);
        json_decref(o);
        free(set);
        log_info("maintenance mode %s requested", cmd.u.set_pause.paused ? "on" : "off");
        submit_config(a, conn, &cmd);
        return;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "synchronous_mode") == 0) {
            mode = json_is_string(v) ? name_index(json_string_value(v), conf_sync_mode_name, 3)
                                     : -1;
            if (mode < 0) {
                snprintf(msg, sizeof msg, "synchronous_mode: expected off, quorum or strict");
            }
        } else if (strcmp(key, "synchronous_node_count") == 0) {
            json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
            if (n < 1 || n > FSM_MEMBERS_MAX) {
                snprintf(msg, sizeof msg, "synchronous_node_count: expected an integer 1..%d",
                         FSM_MEMBERS_MAX);
            }
            k = (unsigned)n;
        } else if (strcmp(key, "synchronous_commit") == 0) {
            commit = json_is_string(v) ? name_index(json_string_value(v), conf_sync_commit_name, 4)
                                       : -1;
            if (commit < 0) {
                snprintf(msg, sizeof msg,
                         "synchronous_commit: expected on, remote_write, remote_apply or local");
            }
        } else if (strcmp(key, "maximum_lag_on_failover") == 0) {
            (void)cfgdoc_max_lag(v, &lag_set, &lag, msg);
        } else if (cfgdoc_interval_refusal(key) != NULL) {
            status = 422;
            snprintf(msg, sizeof msg, "%s", cfgdoc_interval_refusal(key));
        } else if (strcmp(key, "postgresql") == 0) {
            (void)postgresql_apply(set, v, msg);
        } else if (replace && strcmp(key, "pause") == 0) {
            /* GET's document put back as it is: maintenance mode changes only with PATCH. */
            if (!json_is_boolean(pause) || json_is_true(pause) != paused) {
                snprintf(msg, sizeof msg,
                         "pause: change it alone with PATCH ({\"pause\": true} or {\"pause\": "
                         "false})");
            }
        } else if (replace && strcmp(key, "recorded") == 0) {
            /* GET's report of where the settings come from: nothing to set. */
        } else {
            snprintf(msg, sizeof msg,
                     "unknown key \"%.64s\" (settable: synchronous_mode, "
                     "synchronous_node_count, synchronous_commit, maximum_lag_on_failover, "
                     "postgresql.parameters, postgresql.pg_hba, pause)",
                     key);
        }
        if (msg[0] != '\0') {
            break;
        }
    }
    json_decref(o);
    if (msg[0] != '\0') {
        free(set);
        respond_error(conn, status, msg);
        return;
    }
    if (params_known(a, set, msg) != 0) {
        free(set);
        respond_error(conn, 400, msg);
        return;
    }
    struct fsm_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        free(set);
        respond_error(conn, 500, "out of memory");
        return;
    }
    bool same_params = a->cons_open && s->initialized && param_set_equal(set, s);
    bool had_lag = a->cons_open && s->initialized && s->config.max_lag_set;
    bool lag_changed = lag_set != had_lag || (lag_set && lag != s->config.max_lag);
    if (same_params && !lag_changed) {
        /* The parameters stay: the entry every release reads. */
        cmd->type = FSM_CMD_SET_CONFIG;
        cmd->u.set_config.sync_mode = (uint8_t)mode;
        cmd->u.set_config.sync_node_count = k;
        cmd->u.set_config.sync_commit = (uint8_t)commit;
    } else {
        /* With the limit changed, the whole set and the limit in one entry, which only
         * version-7 agents read; otherwise the whole set, which version 6 reads. */
        unsigned need = lag_changed ? 7 : 6;
        if (a->cons_open && s->initialized && members_read_dynamic(a, need, msg, &status) != 0) {
            free(set);
            free(cmd);
            log_info("configuration change refused: %s", msg);
            respond_error(conn, status, msg);
            return;
        }
        cmd->type = lag_changed ? FSM_CMD_SET_DYNAMIC_LAG : FSM_CMD_SET_DYNAMIC;
        cmd->u.set_dynamic.sync_mode = (uint8_t)mode;
        cmd->u.set_dynamic.sync_node_count = k;
        cmd->u.set_dynamic.sync_commit = (uint8_t)commit;
        cmd->u.set_dynamic.n_params = set->n;
        memcpy(cmd->u.set_dynamic.params, set->p, sizeof set->p);
        cmd->u.set_dynamic.n_hba = set->n_hba;
        memcpy(cmd->u.set_dynamic.hba, set->hba, sizeof set->hba);
        if (lag_changed) {
            cmd->u.set_dynamic.max_lag_set = lag_set;
            cmd->u.set_dynamic.max_lag = lag;
        }
    }
    char lag_text[32] = "none";
    if (lag_set) {
        snprintf(lag_text, sizeof lag_text, "%llu", (unsigned long long)lag);
    }
    log_info("configuration change requested: synchronous_mode=%s synchronous_node_count=%u "
             "synchronous_commit=%s maximum_lag_on_failover=%s parameters=%u pg_hba_lines=%u%s",
             conf_sync_mode_name(mode), k, conf_sync_commit_name(commit), lag_text, set->n,
             set->n_hba, same_params && !lag_changed ? " (unchanged)" : "");
    free(set);
    submit_config(a, conn, cmd);
    free(cmd);
}

/* ---- health checks (Patroni's paths, for haproxy, probes and scripts) --------------------- */

/* Readiness without ?lag= and without maximum_lag_on_failover: Patroni's default for it. */
#define HEALTH_DEFAULT_LAG (1024 * 1024)

static int health_code(const struct agent *a, enum health_kind kind, const struct health_query *q)
{
    struct health_input in;
    memset(&in, 0, sizeof in);
    in.alive = a->phase != AGENT_PHASE_STOPPING;
    char why[8];
    in.acting = agent_acting(a, why, sizeof why);
    in.storage_failing = a->cons_open && a->cons.storage.failed;
    in.raft_leader = a->cons_open && a->cons.role == CONS_ROLE_LEADER;
    in.ready_leader = in.raft_leader && a->cons.leader_ready;
    in.has_pg = a->conf.has_postgresql && a->pg_open;
    /* As Patroni: readiness without ?lag= takes maximum_lag_on_failover. */
    bool lag_set;
    uint64_t lag;
    sync_max_lag_in_force(a->cons_open ? &a->cons.state : NULL, a->conf.max_lag.set,
                          a->conf.max_lag.bytes, &lag_set, &lag);
    in.default_lag = lag_set ? lag : HEALTH_DEFAULT_LAG;
    in.noloadbalance = a->conf.tags.noloadbalance;
    if (in.has_pg) {
        const struct ha_pg *o = &a->pg.obs;
        in.running = o->state == HA_PG_RUNNING;
        in.in_recovery = o->in_recovery;
        in.streaming = o->streaming;
        in.restore_command = pg_restore_command(&a->conf)[0] != '\0';
        in.received_position = o->wal_position;
        in.replay_position = o->replay_position;
        const struct fsm_state *st = &a->cons.state;
        in.standby = own_standby_kind(a);
        struct pg_view prim;
        const char *pname = a->cons_open ? st->primary.name : "";
        if (pname[0] != '\0' && strcmp(pname, a->conf.name) != 0 && pg_view_of(a, pname, &prim) &&
            prim.known && prim.state == HA_PG_RUNNING && !prim.in_recovery) {
            in.primary_position = prim.wal_position;
        }
    }
    char prio[16];
    snprintf(prio, sizeof prio, "%d", a->conf.tags.failover_priority);
    struct health_tag tags[4 + CONF_USER_TAGS_MAX] = {
        {"nofailover", a->conf.tags.nofailover ? "true" : "false"},
        {"nosync", a->conf.tags.nosync ? "true" : "false"},
        {"noloadbalance", a->conf.tags.noloadbalance ? "true" : "false"},
        {"failover_priority", prio},
    };
    unsigned n_tags = 4;
    for (unsigned i = 0; i < a->conf.tags.n_user && n_tags < 4 + CONF_USER_TAGS_MAX; i++) {
        tags[n_tags++] = (struct health_tag){a->conf.tags.user[i].key, a->conf.tags.user[i].value};
    }
    in.tags = tags;
    in.n_tags = n_tags;
    return health_status(kind, &in, q);
}

/* GET answers the code and this member's status; HEAD and OPTIONS (haproxy's httpchk) the code
 * alone. */
static void respond_health(struct agent *a, struct http_conn *conn, const struct http_request *req,
                           enum health_kind kind)
{
    struct health_query q;
    char err[RPG_ERRMSG_SIZE];
    if (health_parse_query(req->query, &q, err, sizeof err) != 0) {
        respond_error(conn, 400, err);
        return;
    }
    int code = health_code(a, kind, &q);
    if (req->method == HTTP_M_OPTIONS) {
        http_respond(conn, code, "text/plain; charset=utf-8", "", 0);
    } else if (kind == HEALTH_LIVENESS) {
        respond_json(conn, code, json_pack("{s:s}", "state", agent_phase_name(a->phase)));
    } else {
        respond_json(conn, code, agent_patroni_json(a));
    }
}

/* The bootstrap question from a member starting without Raft state: the cluster document,
 * proven with the cluster secret for the asker's nonce (proof.h). */
static void respond_bootstrap(struct agent *a, struct http_conn *conn, const char *query)
{
    if (!a->has_secret) {
        respond_error(conn, 404, "no cluster secret is configured (raft.secret_file)");
        return;
    }
    const char *nonce = strncmp(query, "nonce=", 6) == 0 ? query + 6 : "";
    if (!proof_nonce_valid(nonce)) {
        respond_error(conn, 400, "query: expected nonce= and 64 lower-case hex digits");
        return;
    }
    json_t *doc = agent_cluster_json(a);
    char *answer = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (answer == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    char proof[PROOF_HEX + 1];
    proof_make(a->secret, a->conf.scope, nonce, answer, strlen(answer), proof);
    respond_json(conn, 200, json_pack("{s:s,s:s}", "answer", answer, "proof", proof));
    free(answer);
}

/* Nonces of accepted signed requests, kept for as long as their time stamp is acceptable, so
 * that a captured request cannot be sent again. */
#define SEEN_NONCES 512
static struct {
    char nonce[PROOF_NONCE_HEX + 1];
    int64_t until_ms;
} g_seen[SEEN_NONCES];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_M_GET: return "GET";
    case HTTP_M_HEAD: return "HEAD";
    case HTTP_M_POST: return "POST";
    case HTTP_M_PUT: return "PUT";
    case HTTP_M_PATCH: return "PATCH";
    case HTTP_M_DELETE: return "DELETE";
    case HTTP_M_OPTIONS: return "OPTIONS";
    case HTTP_M_OTHER: break;
    }
    return "OTHER";
}

/* With a cluster secret, a request that changes something must be signed with it (proof.h):
 * false after answering 401 when it is not. */
/* Whether authorization carries restapi.authentication's credentials (constant time). */
static bool basic_ok(const struct agent *a, const char *authorization)
{
    const char *user = a->conf.restapi.auth_username;
    if (user[0] == '\0' || authorization == NULL || strncmp(authorization, "Basic ", 6) != 0) {
        return false;
    }
    unsigned char got[256];
    size_t n = 0;
    const char *b64 = authorization + 6;
    if (sodium_base642bin(got, sizeof got - 1, b64, strlen(b64), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        return false;
    }
    char want[sizeof a->conf.restapi.auth_username + sizeof a->conf.restapi.auth_password + 2];
    int wn = snprintf(want, sizeof want, "%s:%s", user, a->conf.restapi.auth_password);
    bool ok = wn > 0 && (size_t)wn == n && sodium_memcmp(got, want, n) == 0;
    sodium_memzero(want, sizeof want);
    sodium_memzero(got, sizeof got);
    return ok;
}

/* Whether host (an IPv4 "a.b.c.d", from an API address) is the client's address. */
static bool member_host_is(const char *api_address, const struct conf_net *client)
{
    char host[16];
    struct conf_net net;
    return conf_parse_addr(api_address, host, NULL) == 0 &&
           conf_net_parse(host, &net, NULL, 0) == 0 && conf_net_contains(&net, client);
}

/* Patroni's restapi.allowlist and allowlist_include_members: where a change may come from. */
static bool client_allowed(const struct agent *a, const char *peer)
{
    struct conf_net client;
    if (conf_net_parse(peer, &client, NULL, 0) != 0) {
        return false;
    }
    for (unsigned i = 0; i < a->conf.restapi.n_allowlist; i++) {
        if (conf_net_contains(&a->conf.restapi.allowlist[i], &client)) {
            return true;
        }
    }
    if (!a->conf.restapi.allowlist_include_members) {
        return false;
    }
    /* The members the cluster state lists; before it is known, the initial ones. */
    const struct fsm_state *st = &a->cons.state;
    if (a->cons_open && st->initialized) {
        for (unsigned i = 0; i < st->n_members; i++) {
            if (member_host_is(st->members[i].api_address, &client)) {
                return true;
            }
        }
        return false;
    }
    for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
        if (member_host_is(a->conf.raft.members[i].api, &client)) {
            return true;
        }
    }
    return false;
}

/* Before any credential is looked at, as Patroni's check_access: a change from an address the
 * allowlist does not name, or without a client certificate when restapi.verify_client asks for
 * one, gets 403. False after answering. */
static bool change_permitted(struct agent *a, struct http_conn *conn,
                             const struct http_request *req)
{
    const char *peer = http_conn_peer(conn);
    char msg[200];
    if ((a->conf.restapi.n_allowlist > 0 || a->conf.restapi.allowlist_include_members) &&
        !client_allowed(a, peer)) {
        snprintf(msg, sizeof msg, "access is denied: %s is not in restapi.allowlist%s", peer,
                 a->conf.restapi.allowlist_include_members ? " nor a member's API address" : "");
        log_warning("api: refused %s %s from %s: not in restapi.allowlist",
                    method_name(req->method), req->path, peer);
        respond_error(conn, 403, msg);
        return false;
    }
    if (a->conf.restapi.verify_client != CONF_VERIFY_NONE && a->conf.restapi.certfile[0] != '\0' &&
        !req->client_cert) {
        log_warning("api: refused %s %s from %s: no client certificate", method_name(req->method),
                    req->path, peer);
        respond_error(conn, 403,
                      "a client certificate is required for changes (restapi.verify_client)");
        return false;
    }
    return true;
}

/* A change needs a signature with the cluster secret or restapi.authentication's credentials,
 * when either is configured; with neither, changes are open. */
static bool signed_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    bool basic = a->conf.restapi.auth_username[0] != '\0';
    if (basic && basic_ok(a, req->authorization)) {
        return true;
    }
    if (!a->has_secret) {
        if (!basic) {
            return true;
        }
        log_warning("api: refused %s %s from %s: no valid credentials", method_name(req->method),
                    req->path, http_conn_peer(conn));
        static const char body[] =
            "{\"error\":\"a change needs restapi.authentication's credentials (HTTP basic)\"}";
        http_respond_header(conn, 401, NULL, body, sizeof body - 1, "WWW-Authenticate",
                            "Basic realm=\"raftpg\"");
        return false;
    }
    uint8_t keys[2][CONF_SECRET_SIZE];
    memcpy(keys[0], a->secret, CONF_SECRET_SIZE);
    memcpy(keys[1], a->secret_previous, CONF_SECRET_SIZE);
    char path[2 * HTTP_PATH_MAX + 2], nonce[PROOF_NONCE_HEX + 1], why[160], msg[400];
    snprintf(path, sizeof path, "%s%s%s", req->path, req->query[0] != '\0' ? "?" : "", req->query);
    int64_t now = wall_ms();
    bool ok = proof_check_request((const uint8_t(*)[CONF_SECRET_SIZE])keys,
                                  a->has_secret_previous ? 2 : 1, a->conf.scope, req->authorization,
                                  method_name(req->method), path, req->body, now, nonce, why,
                                  sizeof why);
    sodium_memzero(keys, sizeof keys);
    unsigned free_slot = 0;
    for (unsigned i = 0; ok && i < SEEN_NONCES; i++) {
        if (g_seen[i].until_ms > now && strcmp(g_seen[i].nonce, nonce) == 0) {
            snprintf(why, sizeof why, "the request was sent before (a replay)");
            ok = false;
        } else if (g_seen[i].until_ms < g_seen[free_slot].until_ms) {
            free_slot = i;
        }
    }
    if (!ok) {
        log_warning("api: refused %s %s from %s: %s", method_name(req->method), req->path,
                    http_conn_peer(conn), why);
        snprintf(msg, sizeof msg,
                 "%s: a change needs the cluster secret (raftpg ctl -c CONFIG, or --secret-file "
                 "FILE)%s",
                 why, basic ? " or restapi.authentication's credentials" : "");
        if (basic) {
            json_t *o = json_pack("{s:s}", "error", msg);
            char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            http_respond_header(conn, 401, NULL, body != NULL ? body : "{}",
                                body != NULL ? strlen(body) : 2, "WWW-Authenticate",
                                "Basic realm=\"raftpg\"");
            free(body);
        } else {
            respond_error(conn, 401, msg);
        }
        return false;
    }
    snprintf(g_seen[free_slot].nonce, sizeof g_seen[free_slot].nonce, "%s", nonce);
    g_seen[free_slot].until_ms = now + 2 * PROOF_SKEW_MS;
    return true;
}

/* ---- metrics (Prometheus text format 0.0.4) -------------------------------------------------- */

static void metric(FILE *f, const char *name, const char *type, const char *help,
                   const char *labels, double value)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help, name, type, name, labels,
            value);
}

static double dir_free_bytes(const char *dir)
{
    struct statvfs st;
    return statvfs(dir, &st) == 0 ? (double)st.f_bavail * (double)st.f_frsize : -1;
}

/* ---- request counters -------------------------------------------------------------------- */

/* Paths as they are counted; anything else (scanners' guesses, say) is "other", so that the
 * label set stays bounded whatever clients send. */
static const char *const api_endpoints[API_ENDPOINTS] = {
    "/",
    "/primary",
    "/master",
    "/read-write",
    "/leader",
    "/standby-leader",
    "/replica",
    "/read-only",
    "/sync",
    "/read-only-sync",
    "/quorum",
    "/read-only-quorum",
    "/async",
    "/health",
    "/readiness",
    "/liveness",
    "/patroni",
    "/cluster",
    "/status",
    "/metrics",
    "/config",
    "/members",
    "/switchover",
    "/restart",
    "/reinitialize",
    "/raftpg/bootstrap",
    "/synchronous",
    "/asynchronous",
    "/history",
    "/failover",
    "/reload",
    "/standby_leader",
    "/read-only-synchronous",
    LEASE_ECHO_PATH,
};
static const int api_statuses[API_STATUSES] = {200, 201, 202, 400, 401, 403, 404, 405, 409,
                                               412, 413, 414, 415, 422, 431, 500, 503, 504};

void api_answered(void *data, const struct http_request *req, int status)
{
    struct agent *a = data;
    unsigned e = API_ENDPOINTS, s = API_STATUSES;
    for (unsigned i = 0; i < API_ENDPOINTS; i++) {
        if (strcmp(req->path, api_endpoints[i]) == 0 ||
            (strcmp(api_endpoints[i], "/members") == 0 &&
             strncmp(req->path, "/members/", 9) == 0)) {
            e = i;
            break;
        }
    }
    for (unsigned i = 0; i < API_STATUSES; i++) {
        if (api_statuses[i] == status) {
            s = i;
            break;
        }
    }
    a->api_answers[e][s]++;
}

static void api_answers_metric(const struct agent *a, FILE *f, const char *labels)
{
    fprintf(f, "# HELP raftpg_api_requests_total API requests answered, by endpoint and status.\n"
               "# TYPE raftpg_api_requests_total counter\n");
    for (unsigned e = 0; e <= API_ENDPOINTS; e++) {
        for (unsigned s = 0; s <= API_STATUSES; s++) {
            if (a->api_answers[e][s] == 0) {
                continue;
            }
            char status[8];
            if (s < API_STATUSES) {
                snprintf(status, sizeof status, "%d", api_statuses[s]);
            } else {
                snprintf(status, sizeof status, "other");
            }
            fprintf(f, "raftpg_api_requests_total{%s,endpoint=\"%s\",status=\"%s\"} %llu\n", labels,
                    e < API_ENDPOINTS ? api_endpoints[e] : "other", status,
                    (unsigned long long)a->api_answers[e][s]);
        }
    }
}

/* The loop-stall detector's counters (loopwatch.h): how often the loop thread was held past the
 * bound, in which phase, and where the held time went. Absent without a watcher. */
static void loop_stall_metrics(FILE *f, const char *labels)
{
    const struct loopwatch *w = loopwatch_current();
    if (w == NULL) {
        return;
    }
    fprintf(f,
            "# HELP raftpg_loop_stalls_total Loop phases that held the loop thread longer than "
            "%d ms, by phase.\n# TYPE raftpg_loop_stalls_total counter\n",
            LOOPWATCH_BOUND_MS);
    fprintf(f, "raftpg_loop_stalls_total{%s,phase=\"timers\"} %llu\n", labels,
            (unsigned long long)w->n_stalls_phase[LOOPWATCH_PHASE_TIMERS]);
    fprintf(f, "raftpg_loop_stalls_total{%s,phase=\"poll\"} %llu\n", labels,
            (unsigned long long)w->n_stalls_phase[LOOPWATCH_PHASE_POLL]);
    const struct {
        const char *cause;
        uint64_t ns;
    } held[] = {{"cpu", w->held.cpu_ns},
                {"runqueue", w->held.runq_ns},
                {"blocked", w->held.blocked_ns},
                {"unknown", w->held.unknown_ns}};
    fprintf(f, "# HELP raftpg_loop_stall_seconds_total Time those phases held the loop thread, by "
               "where it went: running, waiting for a CPU, blocked or stopped.\n"
               "# TYPE raftpg_loop_stall_seconds_total counter\n");
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
        fprintf(f, "raftpg_loop_stall_seconds_total{%s,cause=\"%s\"} %.17g\n", labels,
                held[i].cause, (double)held[i].ns / 1e9);
    }
    metric(f, "raftpg_loop_stall_max_seconds", "gauge",
           "The longest time one loop phase held the loop thread since the agent started.", labels,
           (double)w->max_ns / 1e9);
}

/* The least round trip of each peer's last polls, and whether it is too long for the election
 * timeout (peer_book.h). A peer not answered yet is left out. */
static void peer_rtt_metrics(const struct agent *a, FILE *f, const char *labels)
{
    if (!a->peers_open) {
        return;
    }
    const struct peer_book *b = &a->peers.book;
    fprintf(f,
            "# HELP raftpg_peer_rtt_seconds The least round trip of the last %d answered polls "
            "of each peer.\n# TYPE raftpg_peer_rtt_seconds gauge\n",
            PEER_RTT_SAMPLES);
    for (unsigned i = 0; i < b->n_results; i++) {
        if (b->results[i].rtt_n > 0) {
            fprintf(f, "raftpg_peer_rtt_seconds{%s,peer=\"%s\"} %.17g\n", labels,
                    b->results[i].name, (double)b->results[i].rtt_min_ms / 1000.0);
        }
    }
    fprintf(f, "# HELP raftpg_peer_rtt_slow Value is 1 while that round trip is above a sixth of "
               "the election timeout.\n# TYPE raftpg_peer_rtt_slow gauge\n");
    for (unsigned i = 0; i < b->n_results; i++) {
        if (b->results[i].rtt_n > 0) {
            fprintf(f, "raftpg_peer_rtt_slow{%s,peer=\"%s\"} %d\n", labels, b->results[i].name,
                    b->results[i].rtt_slow ? 1 : 0);
        }
    }
}

/* A timestamptz as PostgreSQL writes it in the ISO style ("2026-01-02 03:04:05.678+01",
 * "...+05:30"), in Unix seconds; 0 for "" or anything else. */
static double pg_time_epoch(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    double sec = 0;
    int n = 0;
    if (sscanf(text, "%d-%d-%d %d:%d:%lf%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &sec, &n) != 6 ||
        (text[n] != '+' && text[n] != '-')) {
        return 0;
    }
    int sign = text[n] == '-' ? -1 : 1;
    int oh = 0, om = 0, os = 0;
    if (sscanf(text + n + 1, "%d:%d:%d", &oh, &om, &os) < 1) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = 0;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return 0;
    }
    return (double)t + sec - sign * (double)(oh * 3600 + om * 60 + os);
}

/* "1.2.3" as Patroni's patroni_version writes a version: two digits a part (010203). */
static double padded_version(const char *v)
{
    unsigned major = 0, minor = 0, patch = 0;
    (void)sscanf(v, "%u.%u.%u", &major, &minor, &patch);
    return (double)(major % 100) * 10000 + (double)(minor % 100) * 100 + (double)(patch % 100);
}

/* Adds this member's promotions the replicated history recorded since the last count. */
static void promotions_count(struct agent *a)
{
    const struct fsm_state *s = &a->cons.state;
    if (!a->cons_open) {
        return;
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        const struct fsm_history_entry *e = &s->history[i];
        if (e->timeline <= a->promotions_timeline) {
            continue;
        }
        a->promotions_timeline = e->timeline;
        if (strcmp(e->primary, a->conf.name) == 0 && e->reason < FSM_HISTORY_REASON_MAX) {
            a->promotions[e->reason]++;
        }
    }
}

/* Patroni's names where Patroni has one (dashboards and alerts carry over), raftpg_* for the
 * rest. Every value is this member's own view. */
static void respond_metrics(struct agent *a, struct http_conn *conn)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    /* Scope and name are [A-Za-z0-9_.-] by configuration: nothing to escape in a label. */
    char labels[2 * CONF_NAME_MAX + 32];
    snprintf(labels, sizeof labels, "scope=\"%s\",name=\"%s\"", a->conf.scope, a->conf.name);
    const struct ha_pg *o = &a->pg.obs;
    bool pg = a->conf.has_postgresql && a->pg_open;
    bool running = pg && o->state == HA_PG_RUNNING;
    bool leader = a->cons_open && a->cons.role == CONS_ROLE_LEADER;
    metric(f, "patroni_version", "gauge",
           "raftpg's version, two digits a part without periods (0.1.0 is 000100).", labels,
           padded_version(RAFTPG_VERSION));
    metric(f, "patroni_postgres_running", "gauge",
           "Value is 1 if PostgreSQL is running, 0 otherwise.", labels, running);
    metric(f, "patroni_postmaster_start_time", "gauge",
           "Unix time PostgreSQL's postmaster started (0 if not running).", labels,
           running ? pg_time_epoch(a->pg.start_time) : 0);
    metric(f, "patroni_postgres_server_version", "gauge",
           "PostgreSQL's server_version_num if running, 0 otherwise.", labels,
           running ? a->pg.server_version : 0);
    /* raftpg runs no standby cluster: never a standby leader. */
    metric(f, "patroni_standby_leader", "gauge",
           "Value is 1 if this node is a standby leader (raftpg has none), 0 otherwise.", labels,
           0);
    {
        bool standby = running && o->in_recovery;
        const char *rs =
            health_replication_state(o->streaming, pg_restore_command(&a->conf)[0] != '\0');
        metric(f, "patroni_postgres_streaming", "gauge",
               "Value is 1 if this standby streams WAL from its upstream, 0 otherwise.", labels,
               standby && rs != NULL && strcmp(rs, "streaming") == 0);
        metric(f, "patroni_postgres_in_archive_recovery", "gauge",
               "Value is 1 if this standby does not stream and replays from the archive "
               "(restore_command), 0 otherwise.",
               labels, standby && rs != NULL && strcmp(rs, "in archive recovery") == 0);
        metric(f, "patroni_xlog_replayed_timestamp", "gauge",
               "Unix time of the last transaction this standby replayed (0 on a primary or "
               "none).",
               labels, standby ? pg_time_epoch(a->pg.replay_timestamp) : 0);
    }
    promotions_count(a);
    fprintf(f, "# HELP raftpg_promotions_total Promotions of this member's PostgreSQL the "
               "cluster's history recorded, by reason.\n"
               "# TYPE raftpg_promotions_total counter\n");
    for (int r = 0; r < FSM_HISTORY_REASON_MAX; r++) {
        fprintf(f, "raftpg_promotions_total{%s,reason=\"%s\"} %llu\n", labels,
                fsm_history_reason_name(r), (unsigned long long)a->promotions[r]);
    }
    metric(f, "patroni_primary", "gauge",
           "Value is 1 if this node is the leader and its PostgreSQL is a primary, 0 otherwise.",
           labels, leader && running && !o->in_recovery);
    metric(f, "patroni_replica", "gauge",
           "Value is 1 if PostgreSQL runs as a standby, 0 otherwise.", labels,
           running && o->in_recovery);
    /* Patroni 4's meaning, as the /sync and /quorum checks: every voter needed (k = n) makes
     * synchronous standbys, fewer quorum standbys. */
    const struct fsm_state *sst = &a->cons.state;
    enum health_standby kind = own_standby_kind(a);
    metric(f, "patroni_sync_standby", "gauge",
           "Value is 1 if this node is a synchronous standby (in the recorded set, k equal to the "
           "number of voters), 0 otherwise.",
           labels, kind == HEALTH_STANDBY_SYNC);
    metric(f, "patroni_quorum_standby", "gauge",
           "Value is 1 if this node is a quorum standby (in the recorded set, k below the number "
           "of voters), 0 otherwise.",
           labels, kind == HEALTH_STANDBY_QUORUM);
    metric(f, "patroni_xlog_location", "counter",
           "Current WAL position of the primary (bytes), 0 on a standby.", labels,
           running && !o->in_recovery ? (double)o->wal_position : 0);
    metric(f, "patroni_xlog_received_location", "counter",
           "WAL position received or replayed by a standby (bytes), 0 on a primary.", labels,
           running && o->in_recovery ? (double)o->wal_position : 0);
    metric(f, "patroni_xlog_replayed_location", "counter",
           "WAL position replayed by a standby (bytes), 0 on a primary.", labels,
           running && o->in_recovery ? (double)o->replay_position : 0);
    metric(f, "patroni_postgres_timeline", "gauge",
           "Postgres timeline of this node (if running), 0 otherwise.", labels,
           pg ? o->timeline : 0);
    metric(f, "patroni_xlog_paused", "gauge",
           "Value is 1 if WAL replay is paused on this standby, 0 otherwise.", labels,
           running && o->in_recovery && a->pg.replay_paused);
    metric(f, "patroni_pending_restart", "gauge",
           "Value is 1 if PostgreSQL has a setting waiting for a restart, 0 otherwise.", labels,
           running && a->pg.pending_restart);
    metric(f, "patroni_is_paused", "gauge",
           "Value is 1 if the cluster is in maintenance (paused), 0 otherwise.", labels,
           a->cons_open && sst->initialized && sst->paused);
    {
        /* Patroni's "last contact with the DCS": here, with the Raft leader (Unix time). */
        rpg_msec now = cons_uv_clock_ms();
        double seen = 0;
        if (a->cons_open && a->cons.role == CONS_ROLE_LEADER) {
            seen = (double)time(NULL);
        } else if (a->cons_open && a->cons.last_heard_leader != 0 &&
                   now >= a->cons.last_heard_leader) {
            seen = (double)time(NULL) - (double)(now - a->cons.last_heard_leader) / 1000.0;
        }
        metric(f, "patroni_dcs_last_seen", "gauge",
               "Unix time of the last contact with the Raft leader (0 never).", labels, seen);
        rpg_msec until = a->cons_open ? cons_lease_until(&a->cons) : 0;
        metric(f, "raftpg_lease_remaining_seconds", "gauge",
               "Seconds left on this member's primary lease (0 without one).", labels,
               a->fm.lease_ok && until > now ? (double)(until - now) / 1000.0 : 0);
    }
    metric(f, "raftpg_sync_k", "gauge", "Recorded synchronous quorum k (ANY k of the voters).",
           labels, a->cons_open ? sst->sync.k : 0);
    metric(f, "raftpg_sync_voters", "gauge", "Members in the recorded synchronous set.", labels,
           a->cons_open ? sst->sync.n_voters : 0);
    {
        int mode, commit;
        unsigned want;
        bool recorded;
        config_in_force(a, &mode, &want, &commit, &recorded);
        metric(f, "raftpg_sync_degraded", "gauge",
               "Value is 1 while synchronous replication is wanted but recorded as k=0 "
               "(asynchronous).",
               labels,
               a->cons_open && sst->initialized && mode != SYNC_MODE_OFF && sst->sync.k == 0);
    }
    metric(f, "raftpg_vip_held", "gauge", "Value is 1 while this member holds the write VIP.",
           labels, a->conf.has_vip && a->vip_open && vip_is_held(&a->vip));
    if (a->callbacks_open) {
        metric(f, "raftpg_callbacks_total", "counter", "postgresql.callbacks run to their end.",
               labels, a->callbacks.n_runs);
        metric(f, "raftpg_callbacks_failed_total", "counter",
               "postgresql.callbacks that failed, timed out or were killed.", labels,
               a->callbacks.n_failed);
    }
    if (running && !o->in_recovery && a->pg.n_replicas > 0) {
        /* Per standby, from pg_stat_replication on this primary: bytes not yet replayed. */
        fprintf(f, "# HELP raftpg_standby_replay_lag_bytes WAL bytes a connected standby has not "
                   "replayed yet.\n"
                   "# TYPE raftpg_standby_replay_lag_bytes gauge\n");
        for (unsigned i = 0; i < a->pg.n_replicas; i++) {
            const struct pg_replica *r = &a->pg.replicas[i];
            if (api_check_name(r->name) != 0) {
                continue; /* application_name is the client's word: only member-like names */
            }
            fprintf(f, "raftpg_standby_replay_lag_bytes{%s,standby=\"%s\"} %.17g\n", labels,
                    r->name,
                    o->wal_position > r->replay_position
                        ? (double)(o->wal_position - r->replay_position)
                        : 0.0);
        }
    }
    metric(f, "patroni_cluster_unlocked", "gauge",
           "Value is 1 if no member is recorded as primary (or the state is not known yet), 0 "
           "otherwise.",
           labels, !(a->cons_open && sst->initialized) || sst->primary.name[0] == '\0');
    metric(f, "raftpg_raft_leader", "gauge", "Value is 1 if this member is the Raft leader.",
           labels, leader);
    metric(f, "raftpg_raft_term", "counter", "Current Raft term.", labels,
           a->cons_open ? (double)a->cons.term : 0);
    metric(f, "raftpg_raft_commit_index", "counter", "Raft commit index.", labels,
           (double)cons_commit_index(&a->cons));
    metric(f, "raftpg_raft_applied_index", "counter", "Raft index applied to the replicated state.",
           labels, (double)cons_applied_index(&a->cons));
    metric(f, "raftpg_lease_held", "gauge", "Value is 1 while this member holds the primary lease.",
           labels, a->fm.lease_ok);
    {
        /* Submit to commit of the barriers that renew the lease (every ET/4; the lease is
         * 0.8 ET from the submission): how much of it a renewal uses. */
        const struct cons *c = &a->cons;
        fprintf(f, "# HELP raftpg_lease_renewal_seconds Time from submitting a lease barrier to "
                   "its commit (millisecond resolution; the barrier path only, see "
                   "raftpg_lease_renewals_total).\n"
                   "# TYPE raftpg_lease_renewal_seconds histogram\n");
        uint64_t cum = 0;
        for (unsigned i = 0; i < CONS_LEASE_BUCKETS; i++) {
            cum += c->lease_stats.bucket[i];
            fprintf(f, "raftpg_lease_renewal_seconds_bucket{%s,le=\"%g\"} %llu\n", labels,
                    cons_lease_bucket_ms[i] / 1000.0, (unsigned long long)cum);
        }
        fprintf(f, "raftpg_lease_renewal_seconds_bucket{%s,le=\"+Inf\"} %llu\n", labels,
                (unsigned long long)c->lease_stats.count);
        fprintf(f, "raftpg_lease_renewal_seconds_sum{%s} %.17g\n", labels,
                (double)c->lease_stats.sum_ms / 1000.0);
        fprintf(f, "raftpg_lease_renewal_seconds_count{%s} %llu\n", labels,
                (unsigned long long)c->lease_stats.count);
        fprintf(f,
                "# HELP raftpg_lease_renewals_total Renewals that extended the lease: a lease "
                "barrier committed (via=barrier) or a majority of voters answered a lease echo "
                "(via=echo).\n"
                "# TYPE raftpg_lease_renewals_total counter\n"
                "raftpg_lease_renewals_total{%s,via=\"barrier\"} %llu\n"
                "raftpg_lease_renewals_total{%s,via=\"echo\"} %llu\n",
                labels, (unsigned long long)c->lease_stats.via_barrier, labels,
                (unsigned long long)c->lease_stats.via_echo);
        fprintf(f,
                "# HELP raftpg_lease_echoes_total Lease echo probes this member sent as leader, "
                "by answer (yes, no, failed: no answer, an error, or a proof that does not "
                "verify).\n"
                "# TYPE raftpg_lease_echoes_total counter\n"
                "raftpg_lease_echoes_total{%s,answer=\"yes\"} %llu\n"
                "raftpg_lease_echoes_total{%s,answer=\"no\"} %llu\n"
                "raftpg_lease_echoes_total{%s,answer=\"failed\"} %llu\n",
                labels, (unsigned long long)a->echo.n_yes, labels, (unsigned long long)a->echo.n_no,
                labels, (unsigned long long)a->echo.n_failed);
        metric(f, "raftpg_lease_echoes_refused_total", "counter",
               "Lease echo probes this member refused as a voter: unsigned, a proof that does not "
               "verify, or not newer than one taken (a replay).",
               labels, (double)a->echo.n_refused);
        rpg_msec now = cons_uv_clock_ms();
        metric(f, "raftpg_lease_renewal_max_seconds", "gauge",
               "Longest lease barrier commit of the last one to two minutes.", labels,
               (double)cons_lease_renewal_max(c, now) / 1000.0);
        metric(f, "raftpg_raft_candidate_seconds", "gauge",
               "How long this member has been a Raft candidate without winning (0 when it is "
               "not one).",
               labels, a->cons_open ? (double)cons_candidate_for(c, now) / 1000.0 : 0);
        metric(f, "raftpg_raft_candidate_warnings_total", "counter",
               "Warnings of a member that stayed candidate (one per 10 election timeouts).", labels,
               c->n_candidate_warnings);
    }
    metric(f, "raftpg_fences_total", "counter", "Fences of this member's PostgreSQL.", labels,
           a->fm.n_fences);
    metric(f, "raftpg_fence_pauses_total", "counter",
           "Soft-layer pauses (SIGSTOP) of this member's PostgreSQL.", labels, a->fm.n_freezes);
    metric(f, "raftpg_loop_gaps_total", "counter",
           "Gaps between fence ticks longer than the bound (the lease then waits for a fresh "
           "barrier).",
           labels, a->fm.clock.n_gaps);
    loop_stall_metrics(f, labels);
    peer_rtt_metrics(a, f, labels);
    struct transport_stats ts;
    transport_get_stats(&ts);
    metric(f, "raftpg_raft_transport_accepted_total", "counter", "Incoming Raft connections.",
           labels, (double)ts.accepted);
    metric(f, "raftpg_raft_transport_authenticated_total", "counter",
           "Raft handshakes that succeeded.", labels, (double)ts.authenticated);
    metric(f, "raftpg_raft_transport_refused_total", "counter",
           "Incoming Raft connections closed by a failed handshake or frame.", labels,
           (double)ts.rejected);
    metric(f, "raftpg_raft_transport_timed_out_total", "counter",
           "Incoming Raft connections closed for an unfinished handshake.", labels,
           (double)ts.timed_out);
    metric(f, "raftpg_raft_storage_failing", "gauge",
           "Value is 1 while the Raft directory cannot persist.", labels,
           a->cons_open && a->cons.storage.failed);
    metric(f, "raftpg_raft_state_diverged", "gauge",
           "Value is 1 when this member's replicated state differs from the others'.", labels,
           a->cons_open && a->cons.diverged);
    metric(f, "raftpg_raft_dir_free_bytes", "gauge",
           "Free bytes in the Raft directory's file system (-1 unknown).", labels,
           dir_free_bytes(a->conf.raft.data_dir));
    api_answers_metric(a, f, labels);
    int64_t cert_not_after, crl_next_update;
    http_server_tls_times(&a->api, &cert_not_after, &crl_next_update);
    if (cert_not_after >= 0) {
        metric(f, "raftpg_tls_certificate_expiry_timestamp_seconds", "gauge",
               "When the API's server certificate (restapi.certfile) expires, in Unix time.",
               labels, (double)cert_not_after);
    }
    if (crl_next_update >= 0) {
        metric(f, "raftpg_tls_crl_next_update_timestamp_seconds", "gauge",
               "The least nextUpdate of the API's revocation lists in force (restapi.crlfile), in "
               "Unix time.",
               labels, (double)crl_next_update);
    }
    if (a->conf.has_postgresql) {
        char wal[PATH_MAX + 16];
        snprintf(wal, sizeof wal, "%s/pg_wal", a->conf.postgresql.data_dir);
        metric(f, "raftpg_data_dir_free_bytes", "gauge",
               "Free bytes in the data directory's file system (-1 unknown).", labels,
               dir_free_bytes(a->conf.postgresql.data_dir));
        metric(f, "raftpg_wal_dir_free_bytes", "gauge",
               "Free bytes in pg_wal's file system (-1 unknown).", labels, dir_free_bytes(wal));
        metric(f, "raftpg_postgres_unwritable", "gauge",
               "Value is 1 while PostgreSQL cannot write (see /status unwritable).", labels,
               pg && o->unwritable[0] != '\0');
        metric(f, "raftpg_postgres_crashes", "gauge",
               "Crashes of PostgreSQL as primary and failed starts in the last 60 s (see /status "
               "crashes).",
               labels, pg ? o->crashes : 0);
        metric(f, "raftpg_postgres_down_seconds", "gauge",
               "How long the primary's PostgreSQL has not run as a primary that accepts "
               "connections (0: it does; see /status down_ms).",
               labels, pg && o->down ? (double)o->down_ms / 1000.0 : 0);
        metric(f, "raftpg_primary_start_timeout_seconds", "gauge",
               "primary_start_timeout: how long the primary's PostgreSQL may be down before "
               "another member takes over.",
               labels, (double)a->conf.primary_start_timeout_s);
        metric(f, "raftpg_primary_start_timeout_handovers_total", "counter",
               "Hand-overs this agent began because its PostgreSQL was down past "
               "primary_start_timeout.",
               labels, (double)a->n_start_timeouts);
    }
    fclose(f);
    if (buf == NULL) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    http_respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
}

/* ---- routing ----------------------------------------------------------------------------- */

void api_handle(struct http_conn *conn, const struct http_request *req, void *data)
{
    struct agent *a = data;
    const char *path = req->path;
    bool get = req->method == HTTP_M_GET || req->method == HTTP_M_HEAD;
    /* Health checks change nothing: any client may ask, with the methods load balancers use. */
    enum health_kind hk = health_kind_of(path);
    if (hk != HEALTH_NONE) {
        if (!get && req->method != HTTP_M_OPTIONS) {
            respond_405(conn, "GET, HEAD, OPTIONS");
        } else {
            respond_health(a, conn, req, hk);
        }
        return;
    }
    /* Members only: the answer carries a proof under the cluster secret (lease_echo.h). */
    if (strcmp(path, LEASE_ECHO_PATH) == 0) {
        lease_echo_handle(a, conn, req);
        return;
    }
    if (!get && req->method != HTTP_M_OPTIONS &&
        (!change_permitted(a, conn, req) || !signed_request(a, conn, req))) {
        return;
    }

    if (strcmp(path, "/cluster") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_json(conn, 200, agent_cluster_json(a));
    } else if (strcmp(path, "/patroni") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_json(conn, 200, agent_patroni_json(a));
    } else if (strcmp(path, "/metrics") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_metrics(a, conn);
    } else if (strcmp(path, "/history") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_json(conn, 200, history_json(&a->cons.state));
    } else if (strcmp(path, "/raftpg/bootstrap") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_bootstrap(a, conn, req->query);
    } else if (strcmp(path, "/status") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_json(conn, 200, agent_status_json(a));
    } else if (strcmp(path, "/config") == 0) {
        if (get) {
            respond_json(conn, 200, config_json(a));
        } else if (req->method == HTTP_M_PATCH || req->method == HTTP_M_PUT) {
            config_change(a, conn, req, req->method == HTTP_M_PUT);
        } else {
            respond_405(conn, "GET, HEAD, PATCH, PUT");
        }
    } else if (strcmp(path, "/restart") == 0) {
        if (req->method == HTTP_M_DELETE) {
            restart_cancel(a, conn);
            return;
        }
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST, DELETE");
            return;
        }
        restart_request(a, conn, req);
    } else if (strcmp(path, "/reinitialize") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        reinit_start(a, conn);
    } else if (strcmp(path, "/switchover") == 0) {
        if (req->method == HTTP_M_DELETE) {
            switchover_cancel(a, conn);
            return;
        }
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST, DELETE");
            return;
        }
        switchover_request(a, conn, req);
    } else if (strcmp(path, "/reload") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        reload_request(a, conn);
    } else if (strcmp(path, "/failover") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        failover_request(a, conn, req);
    } else if (strcmp(path, "/members") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        member_add(a, conn, req);
    } else if (strncmp(path, "/members/", 9) == 0) {
        if (req->method != HTTP_M_DELETE) {
            respond_405(conn, "DELETE");
            return;
        }
        member_remove(a, conn, path + 9);
    } else {
        respond_error(conn, 404, "no such endpoint");
    }
}
