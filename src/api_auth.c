/* api: who may change something: the client allow-list, client certificates, HTTP basic
 * credentials and requests signed with the cluster secret (api_int.h). */
#include "api_int.h"

#include <time.h>

#include <sodium.h>

#include "raftpg/proof.h"

/* Nonces of accepted signed requests, kept for as long as their time stamp is acceptable, so
 * that a captured request cannot be sent again. */
#define SEEN_NONCES 512
static struct {
    char nonce[PROOF_NONCE_HEX + 1];
    int64_t until_ms;
} g_seen[SEEN_NONCES];

int64_t api_wall_ms(void)
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
bool api_change_permitted(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    const char *peer = http_conn_peer(conn);
    char msg[200];
    if ((a->conf.restapi.n_allowlist > 0 || a->conf.restapi.allowlist_include_members) &&
        !client_allowed(a, peer)) {
        snprintf(msg, sizeof msg, "access is denied: %s is not in restapi.allowlist%s", peer,
                 a->conf.restapi.allowlist_include_members ? " nor a member's API address" : "");
        log_warning("api: refused %s %s from %s: not in restapi.allowlist",
                    method_name(req->method), req->path, peer);
        api_respond_error(conn, 403, msg);
        return false;
    }
    if (a->conf.restapi.verify_client != CONF_VERIFY_NONE && a->conf.restapi.certfile[0] != '\0' &&
        !req->client_cert) {
        log_warning("api: refused %s %s from %s: no client certificate", method_name(req->method),
                    req->path, peer);
        api_respond_error(conn, 403,
                          "a client certificate is required for changes (restapi.verify_client)");
        return false;
    }
    return true;
}

/* A change needs a signature with the cluster secret or restapi.authentication's credentials,
 * when either is configured; with neither, changes are open. */
bool api_signed_request(struct agent *a, struct http_conn *conn, const struct http_request *req)
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
    int64_t now = api_wall_ms();
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
            api_respond_error(conn, 401, msg);
        }
        return false;
    }
    snprintf(g_seen[free_slot].nonce, sizeof g_seen[free_slot].nonce, "%s", nonce);
    g_seen[free_slot].until_ms = now + 2 * PROOF_SKEW_MS;
    return true;
}
