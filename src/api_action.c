/* api: the operator actions (POST and DELETE /restart, /switchover, POST /failover, POST /members,
 * DELETE /members/NAME), checked here and handed to their modules or to Raft (api_int.h). */
#include "api_int.h"

#include "raftpg/failover.h"

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
        api_respond_error(p->conn, 503,
                          "agent stopping before the raft configuration dropped the "
                          "member: it may still count as a voter");
    } else if (gone) {
        api_respond_json(p->conn, 200,
                         json_pack("{s:s, s:s}", "member", p->name, "result",
                                   "removed from the member list and the raft configuration"));
    } else if (++p->ticks >= LEAVE_WAIT_TICKS) {
        api_respond_json(p->conn, 202,
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
        api_respond_json(p->conn, p->add ? 201 : 200,
                         json_pack("{s:s, s:s}", "member", p->name, "result",
                                   p->add
                                       ? "added; joins as spare and becomes a voter once caught up"
                                       : "removed; leaves the raft configuration next"));
    } else {
        int status = rc == RPG_ENOTLEADER ? 503 : rc == RPG_ERAFT ? 500 : 409;
        api_respond_error(p->conn, status, msg);
    }
    free(p);
}

/* Mutations go through the leader: others answer 503 and name it so clients can retry there. */
bool api_require_leader(struct agent *a, struct http_conn *conn)
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
    api_respond_json(conn, 503,
                     json_pack("{s:s, s:s?, s:s?}", "error", "this member is not the raft leader",
                               "leader", m != NULL ? m->name : NULL, "leader_api",
                               m != NULL ? m->api_address : NULL));
    return false;
}

/* POST /restart {"role", "restart_pending", "postgres_version", "schedule"} (Patroni's body; all
 * optional). With schedule, the restart is kept by this member and run at that time
 * (schedule.h restart_schedule_tick); answered 202 at once. */
void api_restart_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
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
        api_respond_error(conn, 400, msg);
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
    int64_t now = api_wall_ms();
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
        api_respond_error(conn, status, msg);
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
    api_respond_json(conn, 202, ans);
}

/* DELETE /restart: cancels this member's scheduled restart (Patroni: 200, or 404 when none). */
void api_restart_cancel(struct agent *a, struct http_conn *conn)
{
    struct restart_schedule *sc = &a->restart.sched;
    if (sc->at_ms == 0) {
        api_respond_error(conn, 404, "no restarts are scheduled");
        return;
    }
    char at[48];
    schedule_format_time(sc->at_ms, at, sizeof at);
    memset(sc, 0, sizeof *sc);
    log_info("scheduled restart at %s deleted", at);
    api_respond_json(conn, 200, json_pack("{s:s}", "message", "scheduled restart deleted"));
}

/* ---- scheduled switchover (schedule.h) ------------------------------------------------------ */

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
        api_respond_json(p->conn, 200,
                         json_pack("{s:s}", "message", "scheduled switchover deleted"));
    } else if (rc == 0) {
        json_t *o = json_pack("{s:s}", "message", "Switchover scheduled");
        json_t *w = api_scheduled_switchover_json(s);
        if (w != NULL) {
            json_object_set_new(o, "scheduled_switchover", w);
        }
        api_respond_json(p->conn, 202, o);
    } else {
        int status = rc == RPG_ENOTLEADER               ? 503
                     : rc == RPG_ERAFT                  ? 500
                     : rc == RPG_ENOTFOUND && p->cancel ? 404
                     : rc == RPG_EEXIST                 ? 409
                                                        : 412;
        api_respond_error(p->conn, status, msg);
    }
    free(p);
}

static void submit_schedule(struct agent *a, struct http_conn *conn, const struct fsm_cmd *cmd,
                            bool cancel)
{
    char msg[RPG_ERRMSG_SIZE];
    struct pending_schedule *p = calloc(1, sizeof *p);
    if (p == NULL) {
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->a = a;
    p->cancel = cancel;
    int rv = cons_submit(&a->cons, cmd, schedule_committed, p, msg);
    if (rv != 0) {
        free(p);
        api_respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
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
    int64_t now = api_wall_ms();
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
        api_respond_error(conn, status, msg);
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
void api_switchover_cancel(struct agent *a, struct http_conn *conn)
{
    if (!api_require_leader(a, conn)) {
        return;
    }
    const struct fsm_state *s = &a->cons.state;
    if (s->switchover.at_ms == 0) {
        api_respond_error(conn, 404, "no switchover is scheduled");
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
void api_switchover_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
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
        api_respond_error(conn, 400, msg);
        return;
    }
    if (!api_require_leader(a, conn)) {
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
void api_failover_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
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
        api_respond_error(conn, 400, msg);
        return;
    }
    if (!api_require_leader(a, conn)) {
        json_decref(o);
        return;
    }
    const char *leader = json_string_value(json_object_get(o, "leader"));
    const char *candidate = json_string_value(json_object_get(o, "candidate"));
    if (leader != NULL && strcmp(leader, a->cons.state.primary.name) != 0) {
        snprintf(msg, sizeof msg, "leader: %s is not the primary (the primary is %s)", leader,
                 a->cons.state.primary.name[0] != '\0' ? a->cons.state.primary.name : "none");
        api_respond_error(conn, 412, msg);
    } else if (leader != NULL) {
        /* Patroni: a failover that names the leader is a switchover. */
        switchover_start(a, conn, leader, candidate);
    } else {
        failover_start(a, conn, candidate);
    }
    json_decref(o);
}

void api_member_add(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[RPG_ERRMSG_SIZE];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
        json_decref(o);
        api_respond_error(conn, 400, msg);
        return;
    }
    const char *keys[] = {"name", "raft", "api"};
    const char *vals[3];
    for (int i = 0; i < 3; i++) {
        vals[i] = json_string_value(json_object_get(o, keys[i]));
        if (vals[i] == NULL) {
            snprintf(msg, sizeof msg, "request body: \"%s\" must be a string", keys[i]);
            json_decref(o);
            api_respond_error(conn, 400, msg);
            return;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "raft") != 0 && strcmp(key, "api") != 0) {
            snprintf(msg, sizeof msg, "request body: unknown key \"%.64s\"", key);
            json_decref(o);
            api_respond_error(conn, 400, msg);
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
        api_respond_error(conn, 400, msg);
        return;
    }
    if (!api_require_leader(a, conn)) {
        json_decref(o);
        return;
    }
    struct pending_change *p = calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(o);
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->add = true;
    snprintf(p->name, sizeof p->name, "%s", vals[0]);
    int rv = cons_member_add(&a->cons, vals[0], vals[1], vals[2], change_committed, p, msg);
    json_decref(o);
    if (rv != 0) {
        free(p);
        api_respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
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
        api_respond_error(conn, 500, "out of memory");
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
        api_respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
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
        api_respond_error(p->conn, 503,
                          "leadership changed while the member left the synchronous set");
        break;
    case SYNC_LEAVE_REMOVE: submit_remove(a, p->conn, p->name); break;
    case SYNC_LEAVE_TIMEOUT:
        api_respond_error(p->conn, 503, "the member is still in the synchronous set: try again");
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

void api_member_remove(struct agent *a, struct http_conn *conn, const char *name)
{
    char msg[RPG_ERRMSG_SIZE];
    if (api_check_name(name) != 0) {
        api_respond_error(conn, 400, "member name: expected 1..63 characters of [A-Za-z0-9_.-]");
        return;
    }
    if (!api_require_leader(a, conn)) {
        return;
    }
    if (fsm_state_member(&a->cons.state, name) == NULL) {
        snprintf(msg, sizeof msg, "no member named \"%s\"", name);
        api_respond_error(conn, 404, msg);
        return;
    }
    if (a->cons.state.n_members <= 1) {
        api_respond_error(conn, 409, "refusing to remove the last member");
        return;
    }
    const char *switchover_to = a->switchover.m.phase != SWITCHOVER_IDLE ? a->switchover.m.to
                                                                         : NULL;
    switch (sync_remove_start(a->removing, name, a->conf.has_postgresql && in_sync_sets(a, name),
                              switchover_to)) {
    case SYNC_REMOVE_NOW: submit_remove(a, conn, name); return;
    case SYNC_REMOVE_SWITCHOVER:
        snprintf(msg, sizeof msg,
                 "a switchover to %s is under way (%s): remove it once the switchover ends", name,
                 switchover_phase_name(a->switchover.m.phase));
        api_respond_error(conn, 409, msg);
        return;
    case SYNC_REMOVE_BUSY:
        snprintf(msg, sizeof msg, "member %s is being removed: one removal at a time", a->removing);
        api_respond_error(conn, 409, msg);
        return;
    case SYNC_REMOVE_ALREADY:
        snprintf(msg, sizeof msg,
                 "member %s is being removed already: it is leaving the synchronous set", name);
        api_respond_error(conn, 409, msg);
        return;
    case SYNC_REMOVE_LEAVE_FIRST: break;
    }
    struct pending_remove *p = calloc(1, sizeof *p);
    if (p == NULL) {
        api_respond_error(conn, 500, "out of memory");
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
