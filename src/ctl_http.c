/* ctl's client side: requests to the members' APIs, the first of the --api endpoints that
 * answers, the leader found through the cluster document and retried across elections, the
 * signature or credentials a change carries, and the waits that poll the cluster document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_int.h"
#include "raftpg/http.h"
#include "raftpg/proof.h"

double ctl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *ctl_str_or(json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : dflt;
}

json_t *ctl_find_member(json_t *cluster, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            return m;
        }
    }
    return NULL;
}

void ctl_take_scope(struct ctl *c, json_t *cluster)
{
    const char *scope = json_string_value(json_object_get(cluster, "scope"));
    snprintf(c->scope, sizeof c->scope, "%s", scope != NULL ? scope : "");
}

void ctl_api_of(json_t *m, char *out, size_t size)
{
    const char *url = ctl_str_or(m, "api_url", "");
    snprintf(out, size, "%s",
             strncmp(url, "http://", 7) == 0    ? url + 7
             : strncmp(url, "https://", 8) == 0 ? url + 8
                                                : url);
    char *slash = strchr(out, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
}

int ctl_leader_api(json_t *cluster, char *out, size_t size)
{
    const char *leader =
        json_string_value(json_object_get(json_object_get(cluster, "raft"), "leader"));
    json_t *m = leader != NULL ? ctl_find_member(cluster, leader) : NULL;
    if (json_string_value(json_object_get(m, "api_url")) == NULL) {
        return RPG_ENOTFOUND;
    }
    ctl_api_of(m, out, size);
    return 0;
}

/* A signature of the request with the cluster secret and this scope at the current time. */
static void sign(const struct ctl *c, const char *scope, const char *method, const char *path,
                 const char *body, char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    proof_sign_request(c->key, scope, method, path, body != NULL ? body : "",
                       (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf, size);
}

/* The Authorization value for a change: a signature with the cluster secret when ctl has it
 * (it also stops replays; made into buf), else restapi.authentication's credentials (HTTP
 * basic), else none (NULL). */
static const char *auth_for(struct ctl *c, const char *method, const char *path, const char *body,
                            char *buf, size_t size)
{
    if (c->has_key) {
        sign(c, c->scope, method, path, body, buf, size);
        return buf;
    }
    return c->basic[0] != '\0' ? c->basic : NULL;
}

json_t *ctl_get_first(struct ctl *c, const char *path, json_type want, char *errmsg)
{
    snprintf(errmsg, RPG_ERRMSG_SIZE, "no API endpoint");
    for (unsigned i = 0; i < c->n_endpoints; i++) {
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        if (http_request_sync(c->endpoints[i], "GET", path, NULL, NULL, c->timeout_ms, &status,
                              &body, &len, errmsg) != 0) {
            continue;
        }
        json_error_t jerr;
        json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        free(body);
        if (o != NULL && json_typeof(o) == want) {
            return o;
        }
        json_decref(o);
        snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: unexpected answer to GET %s (http %d)",
                 c->endpoints[i], path, status);
    }
    return NULL;
}

json_t *ctl_fetch_cluster(struct ctl *c, char *errmsg)
{
    return ctl_get_first(c, "/cluster", JSON_OBJECT, errmsg);
}

int ctl_request(struct ctl *c, const char *method, const char *api, const char *path,
                const char *body, unsigned timeout_ms, int *status, json_t **answer, char *errmsg)
{
    char auth[PROOF_AUTH_MAX] = "";
    char *resp = NULL;
    size_t len = 0;
    int rv = http_request_sync(api, method, path, body,
                               auth_for(c, method, path, body, auth, sizeof auth), timeout_ms,
                               status, &resp, &len, errmsg);
    if (rv != 0) {
        return rv;
    }
    json_error_t jerr;
    *answer = json_loadb(resp, len, 0, &jerr);
    free(resp);
    return 0;
}

int ctl_send_to_leader(struct ctl *c, const char *method, const char *path, const char *body,
                       int *status, json_t **answer, char *errmsg)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        json_t *cluster = ctl_fetch_cluster(c, errmsg);
        if (cluster == NULL) {
            return RPG_ECONN;
        }
        char api[FSM_ADDR_MAX];
        int rv = ctl_leader_api(cluster, api, sizeof api);
        ctl_take_scope(c, cluster);
        json_decref(cluster);
        if (rv != 0) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "the cluster has no leader right now");
            ctl_sleep_ms(300);
            continue;
        }
        if (ctl_request(c, method, api, path, body, c->timeout_ms, status, answer, errmsg) != 0) {
            ctl_sleep_ms(300);
            continue;
        }
        if (*status == 503) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: %s", api,
                     ctl_str_or(*answer, "error", "service unavailable"));
            json_decref(*answer);
            *answer = NULL;
            ctl_sleep_ms(300);
            continue;
        }
        return 0;
    }
    return RPG_ETIMEDOUT;
}

int ctl_post_to_leader(struct ctl *c, const char *verb, const char *path, const char *body,
                       unsigned min_timeout_ms, const char *done_text)
{
    char errmsg[RPG_ERRMSG_SIZE] = "out of memory";
    json_t *cluster = body != NULL ? ctl_fetch_cluster(c, errmsg) : NULL;
    char api[FSM_ADDR_MAX];
    if (cluster == NULL || ctl_leader_api(cluster, api, sizeof api) != 0) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb,
                cluster == NULL ? errmsg : "the cluster has no raft leader right now");
        json_decref(cluster);
        return 1;
    }
    ctl_take_scope(c, cluster);
    json_decref(cluster);
    int status = 0;
    json_t *answer = NULL;
    /* The agent bounds each step itself: wait at least that long. */
    unsigned timeout = c->timeout_ms > min_timeout_ms ? c->timeout_ms : min_timeout_ms;
    if (ctl_request(c, "POST", api, path, body, timeout, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl %s: %s (see raftpg ctl list)\n", verb, errmsg);
        return 1;
    }
    if (status != 200 && status != 202) {
        fprintf(stderr, "raftpg ctl %s: refused (http %d): %s\n", verb, status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    printf("%s\n", ctl_str_or(answer, "message", done_text));
    json_decref(answer);
    return 0;
}

json_t *ctl_member_get(struct ctl *c, json_t *m, const char *path, char *errmsg)
{
    char api[FSM_ADDR_MAX];
    ctl_api_of(m, api, sizeof api);
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    if (http_request_sync(api, "GET", path, NULL, NULL, c->timeout_ms, &status, &body, &len,
                          errmsg) == 0) {
        json_error_t jerr;
        doc = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        if (doc == NULL) {
            snprintf(errmsg, RPG_ERRMSG_SIZE, "%s: unexpected answer to GET %s (http %d)", api,
                     path, status);
        }
    }
    free(body);
    return doc;
}

/* How long a member's identity_error must stay before a wait gives up on it: the flag comes from
 * the answering member's own poll of it, which can lag a restart by a poll or two. */
#define CTL_IDENTITY_GIVE_UP_S 3.0

/* A member whose agent runs under another Raft id than the cluster lists (identity_error) cannot
 * get there until restarted afresh: that ends the wait, printing the flag with its remedy. */
int ctl_wait_for(struct ctl *c, const char *name, bool (*done)(json_t *cluster, const char *name),
                 const char *what, const char *hint)
{
    double deadline = ctl_now_s() + (double)c->timeout_ms * 30 / 1000.0;
    char errmsg[RPG_ERRMSG_SIZE];
    char identity[1024] = "";
    double identity_since = 0;
    while (ctl_now_s() < deadline) {
        json_t *cluster = ctl_fetch_cluster(c, errmsg);
        bool ok = cluster != NULL && done(cluster, name);
        json_t *m = cluster != NULL ? ctl_find_member(cluster, name) : NULL;
        const char *ident = m != NULL ? ctl_str_or(m, "identity_error", "") : "";
        if (cluster != NULL && ident[0] == '\0') {
            identity[0] = '\0';
        } else if (ident[0] != '\0') {
            if (identity[0] == '\0') {
                identity_since = ctl_now_s();
            }
            snprintf(identity, sizeof identity, "%s", ident);
        }
        json_decref(cluster);
        if (ok) {
            return 0;
        }
        if (identity[0] != '\0' && ctl_now_s() - identity_since >= CTL_IDENTITY_GIVE_UP_S) {
            break;
        }
        ctl_sleep_ms(200);
    }
    if (identity[0] != '\0') {
        fprintf(stderr, "raftpg ctl: stopped waiting for %s %s: identity: %s\n", name, what,
                identity);
    } else {
        fprintf(stderr, "raftpg ctl: timed out waiting for %s %s%s%s\n", name, what,
                hint != NULL ? " " : "", hint != NULL ? hint : "");
    }
    return 1;
}

/* patronictl's loop over the members a command names. A name the cluster does not list stops
 * the command before any member is asked; 1 when no member answered, a name is unknown or an
 * action failed. */
int ctl_each_member(struct ctl *c, const char *verb, char **names, int n, bool primary_last,
                    ctl_member_action act, void *arg)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb, errmsg);
        return 1;
    }
    ctl_take_scope(c, cluster);
    for (int k = 0; k < n; k++) {
        if (ctl_find_member(cluster, names[k]) == NULL) {
            fprintf(stderr, "raftpg ctl %s: %s is not a member of the cluster\n", verb, names[k]);
            json_decref(cluster);
            return 1;
        }
    }
    int failed = 0;
    /* Pass 0: every member but the primary; pass 1: the primary (or everyone, in one pass). */
    for (int pass = primary_last ? 0 : 1; pass < 2; pass++) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(cluster, "members"), i, m) {
            const char *name = ctl_str_or(m, "name", "?");
            bool primary = strcmp(ctl_str_or(m, "pg_role", ""), "primary") == 0;
            if (primary_last && primary != (pass == 1)) {
                continue;
            }
            bool wanted = n == 0;
            for (int k = 0; k < n && !wanted; k++) {
                wanted = strcmp(names[k], name) == 0;
            }
            if (!wanted) {
                continue;
            }
            char api[FSM_ADDR_MAX];
            ctl_api_of(m, api, sizeof api);
            failed += act(c, name, api, arg) ? 1 : 0;
        }
    }
    json_decref(cluster);
    return failed > 0 ? 1 : 0;
}

/* sign METHOD PATH [BODY]: an Authorization value for curl, signed for the cluster's scope. */
int ctl_run_sign(struct ctl *c, int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "raftpg ctl sign: expected METHOD PATH [BODY]\n");
        return 2;
    }
    if (!c->has_key) {
        fprintf(stderr, "raftpg ctl sign: no secret: give -c FILE or --secret-file FILE\n");
        return 2;
    }
    char errmsg[RPG_ERRMSG_SIZE], auth[PROOF_AUTH_MAX];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    const char *scope = json_string_value(json_object_get(cluster, "scope"));
    if (scope == NULL) {
        fprintf(stderr, "raftpg ctl sign: %s\n", cluster == NULL ? errmsg : "no scope");
        json_decref(cluster);
        return 1;
    }
    sign(c, scope, argv[0], argv[1], argc > 2 ? argv[2] : "", auth, sizeof auth);
    json_decref(cluster);
    printf("%s\n", auth);
    return 0;
}
