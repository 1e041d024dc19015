/* Restart a member's PostgreSQL (restart.h). */
#include "raftpg/restart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

static void respond(struct restart *r, int status, const char *key, const char *msg)
{
    snprintf(r->last, sizeof r->last, "%s", msg);
    if (r->conn == NULL) {
        return;
    }
    json_t *o = json_pack("{s:s}", key, msg);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(r->conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
    r->conn = NULL;
}

static void end(struct agent *a, int status, const char *key, const char *msg)
{
    struct restart *r = &a->restart;
    respond(r, status, key, msg);
    r->phase = RESTART_IDLE;
    r->timeout_ms = 0;
    if (status != 200) {
        /* Done, the callbacks turn the start they observe into on_restart and clear it; this
         * tick may have seen the server run before they did. */
        a->callbacks.restarting = false;
    }
    uv_timer_stop(&r->timer);
}

static void stopped(struct pg *p, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    struct restart *r = &a->restart;
    if (r->phase != RESTART_STOPPING) {
        return;
    }
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "the stop failed: %s", msg != NULL ? msg : "?");
        end(a, 503, "error", why);
        return;
    }
    /* The agent's decisions start it again, in its role; this waits to see it run. */
    r->phase = RESTART_STARTING;
    r->epoch = p->epoch;
    r->stopped_ms = cons_uv_clock_ms();
    log_info("restart: postgresql stopped, starting it again");
}

static void stop_now(struct agent *a)
{
    struct restart *r = &a->restart;
    r->phase = RESTART_STOPPING;
    a->callbacks.restarting = true;
    log_info("restart: stopping postgresql (%s) to start it again",
             a->pg.obs.in_recovery ? "a standby" : "the primary");
    if (pg_stop(&a->pg, RESTART_STOP_MS, stopped, a) != 0) {
        end(a, 409, "error", "another operation on postgresql is under way");
    }
}

static void tick(uv_timer_t *t)
{
    struct agent *a = t->data;
    struct restart *r = &a->restart;
    uint64_t now = cons_uv_clock_ms();
    const struct pg *pg = &a->pg;
    if (r->phase == RESTART_WAITING) {
        /* The agent's decisions wait meanwhile, so no new operation starts. */
        if (!pg_busy(pg)) {
            stop_now(a);
        } else if (now - r->started_ms > RESTART_BUSY_MS) {
            end(a, 409, "error", "another operation on postgresql is still under way");
        }
        return;
    }
    /* Started again (an operation ended after the stop) and observed running since. */
    if (r->phase == RESTART_STARTING && pg->epoch > r->epoch && pg->obs_epoch == pg->epoch &&
        pg->obs.state == HA_PG_RUNNING) {
        char msg[128];
        snprintf(msg, sizeof msg, "restarted in %llu ms as %s",
                 (unsigned long long)(now - r->started_ms),
                 pg->obs.in_recovery ? "a standby" : "the primary");
        log_info("restart: %s", msg);
        end(a, 200, "message", msg);
    } else if (r->phase == RESTART_STARTING && r->timeout_ms > 0 &&
               now - r->stopped_ms > r->timeout_ms) {
        char msg[256];
        if (r->was_primary) {
            r->handover_until = now + RESTART_HANDOVER_MS;
            snprintf(msg, sizeof msg,
                     "postgresql did not accept connections within the timeout (%llu s): the "
                     "primary is handed over to a standby if one may take over (see raftpg ctl "
                     "list)",
                     (unsigned long long)(r->timeout_ms / 1000));
        } else {
            snprintf(msg, sizeof msg,
                     "postgresql did not accept connections within the timeout (%llu s): it is "
                     "still starting (see raftpg ctl list)",
                     (unsigned long long)(r->timeout_ms / 1000));
        }
        log_warning("restart: %s", msg);
        end(a, 503, "error", msg);
    } else if (r->timeout_ms == 0 && now - r->started_ms > RESTART_STOP_MS + RESTART_WAIT_MS) {
        end(a, 503, "error",
            "postgresql does not accept connections again yet: see raftpg ctl list");
    }
}

void restart_start(struct agent *a, struct http_conn *conn, const char *role, bool pending,
                   int below_version)
{
    struct restart *r = &a->restart;
    const struct ha_pg *o = &a->pg.obs;
    char why[3 * RPG_ERRMSG_SIZE] = "";
    int status = 503;
    const char *is = o->in_recovery ? "replica" : "primary";
    if (!agent_acting(a, why, sizeof why)) {
        /* Its agent would not start the server again (ha_tick decides nothing): the cause is
         * what the operator must fix first. */
    } else {
        struct restart_check_in in = {
            .running = a->conf.has_postgresql && a->pg_open && o->state == HA_PG_RUNNING,
            .in_recovery = o->in_recovery,
            .busy = r->phase != RESTART_IDLE || reinit_holds(a) || switchover_holds(a),
            .paused = a->cons_open && a->cons.state.initialized && a->cons.state.paused,
            .role = role,
            .pending = pending,
            .pending_restart = a->pg.pending_restart,
            .below_version = below_version,
            .server_version = a->pg.server_version,
        };
        status = restart_check(&in, why, sizeof why);
    }
    if (why[0] != '\0') {
        if (r->phase == RESTART_IDLE) {
            r->timeout_ms = 0;
        }
        struct http_conn *saved = r->conn;
        r->conn = conn;
        respond(r, status, "error", why);
        r->conn = saved;
        return;
    }
    if (!r->timer_open) {
        uv_timer_init(a->loop, &r->timer);
        r->timer.data = a;
        r->timer_open = true;
    }
    r->conn = conn;
    r->started_ms = cons_uv_clock_ms();
    r->stopped_ms = r->started_ms;
    r->was_primary = !o->in_recovery;
    r->handover_until = 0;
    log_info("restart requested (%s)", is);
    uv_timer_start(&r->timer, tick, 100, 100);
    if (pg_busy(&a->pg)) {
        r->phase = RESTART_WAITING;
        return;
    }
    stop_now(a);
}

void restart_set_timeout(struct agent *a, unsigned timeout_s)
{
    if (a->restart.phase == RESTART_IDLE) {
        a->restart.timeout_ms = (uint64_t)timeout_s * 1000;
    }
}

bool restart_start_timed_out(const struct agent *a)
{
    const struct restart *r = &a->restart;
    return r->handover_until != 0 && cons_uv_clock_ms() < r->handover_until &&
           !(a->pg.obs.state == HA_PG_RUNNING && a->pg_open);
}

json_t *restart_schedule_json(const struct restart_schedule *s)
{
    if (s->at_ms == 0) {
        return NULL;
    }
    char at[48];
    schedule_format_time(s->at_ms, at, sizeof at);
    json_t *o = json_pack("{s:s}", "schedule", at);
    if (o == NULL) {
        return NULL;
    }
    if (s->role[0] != '\0') {
        json_object_set_new(o, "role", json_string(s->role));
    }
    if (s->pending) {
        json_object_set_new(o, "restart_pending", json_true());
    }
    if (s->timeout_s > 0) {
        json_object_set_new(o, "timeout", json_integer((json_int_t)s->timeout_s));
    }
    if (s->below_version > 0) {
        char v[32];
        if (s->below_version >= 100000) {
            snprintf(v, sizeof v, "%d.%d", s->below_version / 10000, s->below_version % 10000);
        } else {
            snprintf(v, sizeof v, "%d.%d.%d", s->below_version / 10000,
                     s->below_version / 100 % 100, s->below_version % 100);
        }
        json_object_set_new(o, "postgres_version", json_string(v));
    }
    return o;
}

bool restart_holds(const struct agent *a)
{
    return a->restart.phase == RESTART_WAITING || a->restart.phase == RESTART_STOPPING;
}

void restart_close(struct agent *a, void (*cb)(uv_handle_t *h))
{
    struct restart *r = &a->restart;
    if (r->phase != RESTART_IDLE) {
        respond(r, 503, "error", "the agent is shutting down");
        r->phase = RESTART_IDLE;
    }
    if (r->timer_open && !uv_is_closing((uv_handle_t *)&r->timer)) {
        uv_close((uv_handle_t *)&r->timer, cb);
    }
}
