/* The REST API (api.h): the route table and its dispatch, and the health checks. The answers
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

/* How a route's path is matched against the request's. */
enum api_match {
    API_MATCH_EXACT,  /* the path itself */
    API_MATCH_PREFIX, /* the path and a remainder (a member's name) */
    API_MATCH_HEALTH, /* any of Patroni's health-check paths (health_kind_of) */
    API_MATCH_ANY,    /* anything: the last row, answering 404 */
};

/* Who may send a route's requests. */
enum api_access {
    API_ACCESS_OPEN,   /* anyone, with any method: the handler checks what it needs */
    API_ACCESS_CHANGE, /* a method other than GET, HEAD and OPTIONS needs change_permitted and
                          signed_request first, before the method is checked */
};

/* A set of methods: API_METHOD(HTTP_M_GET) | ... */
#define API_METHOD(m) (1u << (m))
#define API_GET (API_METHOD(HTTP_M_GET) | API_METHOD(HTTP_M_HEAD))
/* Every enum http_method, HTTP_M_OTHER too (HTTP_M_OPTIONS is the last). */
#define API_ANY_METHOD 0xffu
_Static_assert(HTTP_M_OPTIONS == 7, "API_ANY_METHOD covers enum http_method");

/* DELETE /members/NAME: the rest of the path names the member. */
#define API_MEMBERS_PREFIX "/members/"

typedef void api_handler(struct agent *a, struct http_conn *conn, const struct http_request *req);

struct api_route {
    const char *path;
    enum api_match match;
    unsigned methods; /* any other answers 405, its Allow header listing these */
    enum api_access access;
    api_handler *handler;
};

static void route_health(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    respond_health(a, conn, req, health_kind_of(req->path));
}

static void route_cluster(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    api_respond_json(conn, 200, agent_cluster_json(a));
}

static void route_patroni(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    api_respond_json(conn, 200, agent_patroni_json(a));
}

static void route_metrics(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    api_respond_metrics(a, conn);
}

static void route_history(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    api_respond_json(conn, 200, history_json(&a->cons.state));
}

static void route_status(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    api_respond_json(conn, 200, agent_status_json(a));
}

static void route_config(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    if (req->method == HTTP_M_GET || req->method == HTTP_M_HEAD) {
        api_respond_json(conn, 200, api_config_json(a));
    } else {
        api_config_change(a, conn, req, req->method == HTTP_M_PUT);
    }
}

static void route_restart(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    if (req->method == HTTP_M_DELETE) {
        api_restart_cancel(a, conn);
    } else {
        api_restart_request(a, conn, req);
    }
}

static void route_reinitialize(struct agent *a, struct http_conn *conn,
                               const struct http_request *req)
{
    (void)req;
    reinit_start(a, conn);
}

static void route_switchover(struct agent *a, struct http_conn *conn,
                             const struct http_request *req)
{
    if (req->method == HTTP_M_DELETE) {
        api_switchover_cancel(a, conn);
    } else {
        api_switchover_request(a, conn, req);
    }
}

static void route_reload(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)req;
    reload_request(a, conn);
}

static void route_member_remove(struct agent *a, struct http_conn *conn,
                                const struct http_request *req)
{
    api_member_remove(a, conn, req->path + strlen(API_MEMBERS_PREFIX));
}

static void route_not_found(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    (void)a;
    (void)req;
    api_respond_error(conn, 404, "no such endpoint");
}

/* The first row that matches a request's path answers it. */
static const struct api_route api_routes[] = {
    /* Health checks change nothing: any client may ask, with the methods load balancers use. */
    {"", API_MATCH_HEALTH, API_GET | API_METHOD(HTTP_M_OPTIONS), API_ACCESS_OPEN, route_health},
    /* Members only: the answer carries a proof under the cluster secret (lease_echo.h). */
    {LEASE_ECHO_PATH, API_MATCH_EXACT, API_ANY_METHOD, API_ACCESS_OPEN, lease_echo_handle},
    {"/cluster", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, route_cluster},
    {"/patroni", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, route_patroni},
    {"/metrics", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, route_metrics},
    {"/history", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, route_history},
    {"/raftpg/bootstrap", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, respond_bootstrap},
    {"/status", API_MATCH_EXACT, API_GET, API_ACCESS_CHANGE, route_status},
    {"/config", API_MATCH_EXACT, API_GET | API_METHOD(HTTP_M_PATCH) | API_METHOD(HTTP_M_PUT),
     API_ACCESS_CHANGE, route_config},
    {"/restart", API_MATCH_EXACT, API_METHOD(HTTP_M_POST) | API_METHOD(HTTP_M_DELETE),
     API_ACCESS_CHANGE, route_restart},
    {"/reinitialize", API_MATCH_EXACT, API_METHOD(HTTP_M_POST), API_ACCESS_CHANGE,
     route_reinitialize},
    {"/switchover", API_MATCH_EXACT, API_METHOD(HTTP_M_POST) | API_METHOD(HTTP_M_DELETE),
     API_ACCESS_CHANGE, route_switchover},
    {"/reload", API_MATCH_EXACT, API_METHOD(HTTP_M_POST), API_ACCESS_CHANGE, route_reload},
    {"/failover", API_MATCH_EXACT, API_METHOD(HTTP_M_POST), API_ACCESS_CHANGE,
     api_failover_request},
    {"/members", API_MATCH_EXACT, API_METHOD(HTTP_M_POST), API_ACCESS_CHANGE, api_member_add},
    {API_MEMBERS_PREFIX, API_MATCH_PREFIX, API_METHOD(HTTP_M_DELETE), API_ACCESS_CHANGE,
     route_member_remove},
    /* An unknown path: a change to it is authorized first, as to any other, then 404. */
    {"", API_MATCH_ANY, API_ANY_METHOD, API_ACCESS_CHANGE, route_not_found},
};

static const struct api_route *route_find(const char *path)
{
    size_t n = sizeof api_routes / sizeof api_routes[0];
    for (size_t i = 0; i < n; i++) {
        const struct api_route *r = &api_routes[i];
        bool hit = false;
        switch (r->match) {
        case API_MATCH_EXACT: hit = strcmp(path, r->path) == 0; break;
        case API_MATCH_PREFIX: hit = strncmp(path, r->path, strlen(r->path)) == 0; break;
        case API_MATCH_HEALTH: hit = health_kind_of(path) != HEALTH_NONE; break;
        case API_MATCH_ANY: hit = true; break;
        }
        if (hit) {
            return r;
        }
    }
    return &api_routes[n - 1];
}

/* ---- the request counters' endpoints ---------------------------------------------------- */

/* raftpg_api_requests_total's endpoints, derived from api_routes at the first use: an exact
 * row's path, each path of the health-check row (health_path), and a prefix row's path without
 * its trailing '/' (DELETE /members/NAME counts with POST /members); the catch-all row's requests
 * are "other" (API_ENDPOINTS). */
#define API_ENDPOINT_NAME_MAX 32
static struct {
    bool built;
    unsigned n; /* named by the table, counted on past API_ENDPOINTS */
    char name[API_ENDPOINTS][API_ENDPOINT_NAME_MAX];
} endpoints;

/* The length of the part of a route's path that names its endpoint (exact and prefix rows). */
static size_t endpoint_len(const struct api_route *r)
{
    size_t len = strlen(r->path);
    return r->match == API_MATCH_PREFIX && len > 1 && r->path[len - 1] == '/' ? len - 1 : len;
}

static unsigned endpoint_find(const char *name, size_t len)
{
    unsigned n = endpoints.n < API_ENDPOINTS ? endpoints.n : API_ENDPOINTS;
    for (unsigned k = 0; k < n; k++) {
        if (strlen(endpoints.name[k]) == len && strncmp(endpoints.name[k], name, len) == 0) {
            return k;
        }
    }
    return API_ENDPOINTS;
}

static void endpoint_add(const char *name, size_t len)
{
    if (endpoint_find(name, len) != API_ENDPOINTS) {
        return;
    }
    if (endpoints.n < API_ENDPOINTS) {
        snprintf(endpoints.name[endpoints.n], API_ENDPOINT_NAME_MAX, "%.*s", (int)len, name);
    }
    endpoints.n++;
}

static void endpoints_build(void)
{
    if (endpoints.built) {
        return;
    }
    endpoints.built = true;
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        const struct api_route *r = &api_routes[i];
        switch (r->match) {
        case API_MATCH_EXACT:
        case API_MATCH_PREFIX: endpoint_add(r->path, endpoint_len(r)); break;
        case API_MATCH_HEALTH:
            for (unsigned k = 0; health_path(k) != NULL; k++) {
                endpoint_add(health_path(k), strlen(health_path(k)));
            }
            break;
        case API_MATCH_ANY: break;
        }
    }
}

unsigned api_endpoint_of(const char *path)
{
    endpoints_build();
    /* The row that answers the request is the one it counts under. */
    const struct api_route *r = route_find(path);
    switch (r->match) {
    case API_MATCH_EXACT:
    case API_MATCH_PREFIX: return endpoint_find(r->path, endpoint_len(r));
    case API_MATCH_HEALTH: return endpoint_find(path, strlen(path));
    case API_MATCH_ANY: break;
    }
    return API_ENDPOINTS;
}

const char *api_endpoint_name(unsigned e)
{
    endpoints_build();
    return e < endpoints.n && e < API_ENDPOINTS ? endpoints.name[e] : "other";
}

unsigned api_endpoints_named(void)
{
    endpoints_build();
    return endpoints.n;
}

/* The Allow header of a route's 405 ("GET, HEAD, PATCH, PUT"), in a fixed order. */
static void route_allow(unsigned methods, char *buf, size_t size)
{
    static const struct {
        enum http_method m;
        const char *name;
    } order[] = {
        {HTTP_M_GET, "GET"},       {HTTP_M_HEAD, "HEAD"},   {HTTP_M_OPTIONS, "OPTIONS"},
        {HTTP_M_POST, "POST"},     {HTTP_M_PATCH, "PATCH"}, {HTTP_M_PUT, "PUT"},
        {HTTP_M_DELETE, "DELETE"},
    };
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if ((methods & API_METHOD(order[i].m)) != 0 && len < size) {
            int n = snprintf(buf + len, size - len, "%s%s", len > 0 ? ", " : "", order[i].name);
            len += n > 0 ? (size_t)n : 0;
        }
    }
}

void api_handle(struct http_conn *conn, const struct http_request *req, void *data)
{
    struct agent *a = data;
    const struct api_route *r = route_find(req->path);
    bool change = req->method != HTTP_M_GET && req->method != HTTP_M_HEAD &&
                  req->method != HTTP_M_OPTIONS;
    if (r->access == API_ACCESS_CHANGE && change &&
        (!api_change_permitted(a, conn, req) || !api_signed_request(a, conn, req))) {
        return;
    }
    if ((r->methods & API_METHOD(req->method)) == 0) {
        char allow[64];
        route_allow(r->methods, allow, sizeof allow);
        respond_405(conn, allow);
        return;
    }
    r->handler(a, conn, req);
}
