/* Reinitialize a standby (reinit.h). */
#include "raftpg/reinit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

static void respond(struct http_conn *conn, int status, const char *key, const char *msg)
{
    json_t *o = json_pack("{s:s}", key, msg);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
}

static void finished(struct pg *p, int rc, const char *msg, void *data)
{
    (void)p;
    struct agent *a = data;
    struct reinit *r = &a->reinit;
    if (rc != 0) {
        snprintf(r->last, sizeof r->last, "failed: %s", msg != NULL ? msg : "?");
        log_error("reinit from %s failed: %s", r->from, msg != NULL ? msg : "?");
    } else {
        snprintf(r->last, sizeof r->last, "cloned from %s", r->from);
        log_info("reinit: cloned from %s, started as its standby", r->from);
    }
    r->phase = REINIT_IDLE;
}

static void clone_now(struct agent *a)
{
    struct reinit *r = &a->reinit;
    const struct peer_status *p = peers_get(&a->peers, r->from);
    struct pg_upstream up;
    memset(&up, 0, sizeof up);
    snprintf(up.name, sizeof up.name, "%s", r->from);
    snprintf(up.address, sizeof up.address, "%s", p != NULL ? p->pg_address : "");
    const struct fsm_member *self = fsm_state_member(&a->cons.state, a->conf.name);
    up.slot_id = self != NULL ? self->id : 0;
    r->phase = REINIT_CLONING;
    if (pg_reinit_remove(&a->pg, &up, finished, a) != 0) {
        finished(&a->pg, RPG_EBUSY, "another operation on postgresql is under way", a);
    }
}

static void stopped(struct pg *p, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    if (rc != 0) {
        finished(p, rc, msg, a);
        return;
    }
    clone_now(a);
}

void reinit_start(struct agent *a, struct http_conn *conn)
{
    struct reinit *r = &a->reinit;
    const struct fsm_state *st = &a->cons.state;
    char why[3 * RPG_ERRMSG_SIZE] = "";
    int status = 412;
    const char *primary = st->primary.name;
    const struct peer_status *p = primary[0] != '\0' ? peers_get(&a->peers, primary) : NULL;
    if (!agent_acting(a, why, sizeof why)) {
        /* Its agent would not start or follow the clone (ha_tick decides nothing): the cause is
         * what the operator must fix first. */
        status = 503;
    } else if (!a->conf.has_postgresql || !a->pg_open) {
        snprintf(why, sizeof why, "this member manages no postgresql");
    } else if (!a->cons_open || !st->initialized) {
        snprintf(why, sizeof why, "the cluster state is not known yet");
        status = 503;
    } else if (r->phase != REINIT_IDLE || switchover_holds(a) || pg_busy(&a->pg)) {
        snprintf(why, sizeof why, "an operation on this member's postgresql is under way");
        status = 409;
    } else if (strcmp(primary, a->conf.name) == 0 || a->cons.role == CONS_ROLE_LEADER) {
        snprintf(why, sizeof why,
                 "this member is the primary (or the raft leader): reinitialize "
                 "runs on a standby");
    } else if (p == NULL || !p->reachable || p->pg_state != HA_PG_RUNNING || p->pg_in_recovery ||
               p->pg_address[0] == '\0') {
        snprintf(why, sizeof why, "no running primary to clone from (recorded: %s)",
                 primary[0] != '\0' ? primary : "none");
        status = 503;
    }
    if (why[0] != '\0') {
        log_info("reinit refused: %s", why);
        respond(conn, status, "error", why);
        return;
    }
    snprintf(r->from, sizeof r->from, "%s", primary);
    log_warning("reinit requested: stopping postgresql, removing %s and cloning %s again",
                a->conf.postgresql.data_dir, primary);
    char msg[256];
    snprintf(msg, sizeof msg, "reinitialize started: cloning %s", primary);
    respond(conn, 200, "message", msg);
    if (a->pg.obs.state == HA_PG_RUNNING || a->pg.obs.state == HA_PG_STARTING ||
        pg_postmaster_pid(&a->pg) != 0) {
        r->phase = REINIT_STOPPING;
        if (pg_stop(&a->pg, 10000, stopped, a) != 0) {
            finished(&a->pg, RPG_EBUSY, "another operation on postgresql is under way", a);
        }
        return;
    }
    clone_now(a);
}

bool reinit_holds(const struct agent *a)
{
    return a->reinit.phase != REINIT_IDLE;
}
