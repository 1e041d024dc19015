/* The REST API (api.h): the dispatch and the health checks. The answers
 * live by concept in api_view.c, api_action.c, api_config.c, api_auth.c and api_metrics.c
 * (api_int.h). */
#include "api_int.h"

#include "raftpg/history.h"
#include "raftpg/lease_echo.h"
#include "raftpg/proof.h"
#include "raftpg/reinit.h"
#include "raftpg/reload.h"

void api_respond_json(struct http_conn *conn, int status, json_t *o)
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

void api_respond_error(struct http_conn *conn, int status, const char *msg)
{
    api_respond_json(conn, status, json_pack("{s:s}", "error", msg));
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
        in.standby = api_own_standby_kind(a);
        struct api_pg_view prim;
        const char *pname = a->cons_open ? st->primary.name : "";
        if (pname[0] != '\0' && strcmp(pname, a->conf.name) != 0 &&
            api_pg_view_of(a, pname, &prim) && prim.known && prim.state == HA_PG_RUNNING &&
            !prim.in_recovery) {
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
        api_respond_error(conn, 400, err);
        return;
    }
    int code = health_code(a, kind, &q);
    if (req->method == HTTP_M_OPTIONS) {
        http_respond(conn, code, "text/plain; charset=utf-8", "", 0);
    } else if (kind == HEALTH_LIVENESS) {
        api_respond_json(conn, code, json_pack("{s:s}", "state", agent_phase_name(a->phase)));
    } else {
        api_respond_json(conn, code, agent_patroni_json(a));
    }
}

/* The bootstrap question from a member starting without Raft state: the cluster document,
 * proven with the cluster secret for the asker's nonce (proof.h). */
static void respond_bootstrap(struct agent *a, struct http_conn *conn,
                              const struct http_request *req)
{
    const char *query = req->query;
    if (!a->has_secret) {
        api_respond_error(conn, 404, "no cluster secret is configured (raft.secret_file)");
        return;
    }
    const char *nonce = strncmp(query, "nonce=", 6) == 0 ? query + 6 : "";
    if (!proof_nonce_valid(nonce)) {
        api_respond_error(conn, 400, "query: expected nonce= and 64 lower-case hex digits");
        return;
    }
    json_t *doc = agent_cluster_json(a);
    char *answer = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (answer == NULL) {
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    char proof[PROOF_HEX + 1];
    proof_make(a->secret, a->conf.scope, nonce, answer, strlen(answer), proof);
    api_respond_json(conn, 200, json_pack("{s:s,s:s}", "answer", answer, "proof", proof));
    free(answer);
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
        (!api_change_permitted(a, conn, req) || !api_signed_request(a, conn, req))) {
        return;
    }

    if (strcmp(path, "/cluster") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        api_respond_json(conn, 200, agent_cluster_json(a));
    } else if (strcmp(path, "/patroni") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        api_respond_json(conn, 200, agent_patroni_json(a));
    } else if (strcmp(path, "/metrics") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        api_respond_metrics(a, conn);
    } else if (strcmp(path, "/history") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        api_respond_json(conn, 200, history_json(&a->cons.state));
    } else if (strcmp(path, "/raftpg/bootstrap") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        respond_bootstrap(a, conn, req);
    } else if (strcmp(path, "/status") == 0) {
        if (!get) {
            respond_405(conn, "GET, HEAD");
            return;
        }
        api_respond_json(conn, 200, agent_status_json(a));
    } else if (strcmp(path, "/config") == 0) {
        if (get) {
            api_respond_json(conn, 200, api_config_json(a));
        } else if (req->method == HTTP_M_PATCH || req->method == HTTP_M_PUT) {
            api_config_change(a, conn, req, req->method == HTTP_M_PUT);
        } else {
            respond_405(conn, "GET, HEAD, PATCH, PUT");
        }
    } else if (strcmp(path, "/restart") == 0) {
        if (req->method == HTTP_M_DELETE) {
            api_restart_cancel(a, conn);
            return;
        }
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST, DELETE");
            return;
        }
        api_restart_request(a, conn, req);
    } else if (strcmp(path, "/reinitialize") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        reinit_start(a, conn);
    } else if (strcmp(path, "/switchover") == 0) {
        if (req->method == HTTP_M_DELETE) {
            api_switchover_cancel(a, conn);
            return;
        }
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST, DELETE");
            return;
        }
        api_switchover_request(a, conn, req);
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
        api_failover_request(a, conn, req);
    } else if (strcmp(path, "/members") == 0) {
        if (req->method != HTTP_M_POST) {
            respond_405(conn, "POST");
            return;
        }
        api_member_add(a, conn, req);
    } else if (strncmp(path, "/members/", 9) == 0) {
        if (req->method != HTTP_M_DELETE) {
            respond_405(conn, "DELETE");
            return;
        }
        api_member_remove(a, conn, path + 9);
    } else {
        api_respond_error(conn, 404, "no such endpoint");
    }
}
