/* api: the JSON documents of a member (GET /status, /patroni, /cluster and each member in it),
 * and the small views of this member's state that health checks and metrics read (api_int.h). */
#include "api_int.h"

#include <time.h>

#include "raftpg/failover.h"
#include "raftpg/transport.h"

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

/* How the recorded synchronous set counts this member's running standby (Patroni's roles):
 * every voter needed (k = n) makes a synchronous standby, fewer a quorum standby. */
enum health_standby api_own_standby_kind(const struct agent *a)
{
    const struct fsm_state *st = &a->cons.state;
    bool standby = a->conf.has_postgresql && a->pg_open && a->pg.obs.state == HA_PG_RUNNING &&
                   a->pg.obs.in_recovery;
    if (!standby || !a->cons_open || st->sync.k == 0 || !is_sync_voter(a, a->conf.name)) {
        return HEALTH_STANDBY_ASYNC;
    }
    return st->sync.k >= st->sync.n_voters ? HEALTH_STANDBY_SYNC : HEALTH_STANDBY_QUORUM;
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
    json_object_set_new(o, "switchover",
                        json_pack("{s:s, s:s, s:s, s:s, s:I}", "phase",
                                  switchover_phase_name(a->switchover.m.phase), "to",
                                  a->switchover.m.to, "last", a->switchover.last, "handed_to",
                                  a->switchover.handed_to, "handed_term",
                                  (json_int_t)a->switchover.handed_term));
    /* The newest replicated-state version this agent reads: the leader records what older
     * agents would reject (the history) only once every member reads it. */
    json_object_set_new(o, "state_version", json_integer(FSM_VERSION));
    json_object_set_new(o, "history_waiting", json_string(a->history.waiting));
    /* The scheduled switchover as this member's replicated state has it, and why a due one
     * waits on this (leading) member. */
    json_t *sched = a->cons_open ? api_scheduled_switchover_json(&a->cons.state) : NULL;
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
            enum health_standby kind = api_own_standby_kind(a);
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

bool api_pg_view_of(const struct agent *a, const char *name, struct api_pg_view *v)
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
    struct api_pg_view pv;
    bool has_pg = api_pg_view_of(a, name, &pv);
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
        struct api_pg_view prim;
        const char *pname = a->cons.state.primary.name;
        if (pv.known && pv.state == HA_PG_RUNNING && pv.in_recovery && pname[0] != '\0' &&
            api_pg_view_of(a, pname, &prim) && prim.known && prim.state == HA_PG_RUNNING &&
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
        api_config_in_force(a, &mode, &k, &commit, &recorded);
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
    json_t *w = known ? api_scheduled_switchover_json(s) : NULL;
    if (w != NULL) {
        json_object_set_new(o, "scheduled_switchover", w);
    }
    if (a->phase == AGENT_PHASE_JOINING) {
        json_object_set_new(o, "join_status", json_string(a->join_status));
    }
    return o;
}

/* Patroni's "scheduled_switchover" of GET /cluster: {at, from, to}, from and to when named;
 * NULL when none is scheduled. */
json_t *api_scheduled_switchover_json(const struct fsm_state *s)
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
