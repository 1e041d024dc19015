/* What ctl asks the cluster to do: switchover (at once or scheduled) and its flush, failover,
 * restart (rolling or scheduled) and its flush, reinit, reload, pause and resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "raftpg/schedule.h"

/* Whether every member the cluster lists answers GET /status with "pause" as wanted. */
static bool all_paused(struct ctl *c, bool want, char *lagging, size_t size)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    if (cluster == NULL) {
        snprintf(lagging, size, "no member answered: %.200s", errmsg);
        return false;
    }
    bool ok = true;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m) {
        json_t *st = ctl_member_get(c, m, "/status", errmsg);
        json_t *p = json_object_get(st, "pause");
        if (!json_is_boolean(p) || json_is_true(p) != want) {
            snprintf(lagging, size, "%s has not applied it yet", ctl_str_or(m, "name", "?"));
            ok = false;
        }
        json_decref(st);
        if (!ok) {
            break;
        }
    }
    json_decref(cluster);
    return ok;
}

static bool is_streaming(json_t *cluster, const char *name)
{
    json_t *m = ctl_find_member(cluster, name);
    return m != NULL && strcmp(ctl_str_or(m, "state", ""), "streaming") == 0;
}

/* patronictl reinit: asked of the member itself, which clones the primary again. */
static int cmd_reinit(struct ctl *c, const char *name, bool wait)
{
    char errmsg[RPG_ERRMSG_SIZE];
    json_t *cluster = ctl_fetch_cluster(c, errmsg);
    json_t *m = cluster != NULL ? ctl_find_member(cluster, name) : NULL;
    if (m == NULL) {
        fprintf(stderr, "raftpg ctl reinit: %s\n",
                cluster == NULL ? errmsg : "no such member in the cluster");
        json_decref(cluster);
        return 1;
    }
    char api[FSM_ADDR_MAX];
    ctl_api_of(m, api, sizeof api);
    ctl_take_scope(c, cluster);
    json_decref(cluster);
    int status = 0;
    json_t *answer = NULL;
    if (ctl_request(c, "POST", api, "/reinitialize", NULL, c->timeout_ms, &status, &answer,
                    errmsg) != 0) {
        fprintf(stderr, "raftpg ctl reinit: %s\n", errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl reinit: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    printf("%s: %s\n", name, ctl_str_or(answer, "message", "reinitialize started"));
    json_decref(answer);
    if (!wait) {
        return 0;
    }
    /* The member leaves streaming first (its server stops), then streams again. */
    ctl_sleep_ms(500);
    if (ctl_wait_for(c, name, is_streaming, "to stream again", NULL) != 0) {
        return 1;
    }
    printf("%s streams again\n", name);
    return 0;
}

struct restart_request {
    const char *body;
    bool later;
    unsigned wait_ms; /* the agent answers within its stop bound and the timeout (or its 60 s) */
};

static bool restart_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    const struct restart_request *r = arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (ctl_request(c, "POST", api, "/restart", r->body, r->wait_ms, &status, &answer, errmsg) !=
        0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (r->later && status == 202) {
        printf("%s: %s at %s\n", name, ctl_str_or(answer, "message", "Restart scheduled"),
               ctl_str_or(json_object_get(answer, "scheduled_restart"), "schedule", "?"));
    } else if (status == 200) {
        printf("%s: %s\n", name, ctl_str_or(answer, "message", "restarted"));
    } else if (status == 412) {
        printf("%s: skipped: %s\n", name, ctl_str_or(answer, "error", "?"));
    } else {
        printf("%s: failed (http %d): %s\n", name, status, ctl_str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl restart: one member at a time, standbys first, the primary last; each answers once
 * its server accepts connections again. With scheduled (and not "now"), every member named (or
 * all) records the restart at that time and answers at once. */
static int cmd_restart(struct ctl *c, char **names, int n, const char *role, bool pending,
                       const char *version, const char *scheduled, const char *timeout)
{
    char errmsg[RPG_ERRMSG_SIZE];
    unsigned timeout_s = 0;
    if (timeout != NULL && schedule_parse_timeout(timeout, &timeout_s, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl restart: --timeout: %s\n", errmsg);
        return 2;
    }
    bool later = scheduled != NULL && strcmp(scheduled, "now") != 0;
    char when[48] = "";
    if (later) {
        /* patronictl's reading: a time without a zone is local time. */
        int64_t at_ms;
        if (schedule_parse_time(scheduled, true, &at_ms, errmsg) != 0) {
            fprintf(stderr, "raftpg ctl restart: --scheduled: %s\n", errmsg);
            return 2;
        }
        schedule_format_time(at_ms, when, sizeof when);
    }
    json_t *body = json_object();
    if (role != NULL) {
        json_object_set_new(body, "role", json_string(role));
    }
    if (pending) {
        json_object_set_new(body, "restart_pending", json_true());
    }
    if (version != NULL) {
        json_object_set_new(body, "postgres_version", json_string(version));
    }
    if (later) {
        json_object_set_new(body, "schedule", json_string(when));
    }
    if (timeout_s > 0) {
        json_object_set_new(body, "timeout", json_integer((json_int_t)timeout_s));
    }
    /* 10 s of stop, the wait, and some. */
    unsigned wait_ms = timeout_s > 60 ? timeout_s * 1000 + 20000 : 80000;
    struct restart_request r = {
        .body = json_dumps(body, JSON_COMPACT), .later = later, .wait_ms = wait_ms};
    json_decref(body);
    int rc = ctl_each_member(c, "restart", names, n, true, restart_member, &r);
    free((char *)r.body);
    return rc;
}

static bool flush_restart_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    (void)arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (ctl_request(c, "DELETE", api, "/restart", NULL, c->timeout_ms, &status, &answer, errmsg) !=
        0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (status == 200) {
        printf("Success: flush scheduled restart for member %s\n", name);
    } else if (status == 404) {
        printf("%s: no scheduled restart\n", name);
    } else {
        printf("%s: failed (http %d): %s\n", name, status, ctl_str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl flush restart: DELETE /restart on every member named (or all). */
static int cmd_flush_restart(struct ctl *c, char **names, int n)
{
    return ctl_each_member(c, "flush", names, n, false, flush_restart_member, NULL);
}

/* A scheduled switchover (scheduled_at): recorded by the leader, answered at once. */
static int schedule_switchover(struct ctl *c, const char *body)
{
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    if (ctl_send_to_leader(c, "POST", "/switchover", body, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl switchover: %s\n", errmsg);
        return 1;
    }
    if (status != 202) {
        fprintf(stderr, "raftpg ctl switchover: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_t *w = json_object_get(answer, "scheduled_switchover");
    printf("%s at %s (from %s to %s)\n", ctl_str_or(answer, "message", "Switchover scheduled"),
           ctl_str_or(w, "at", "?"), ctl_str_or(w, "from", "the primary then"),
           ctl_str_or(w, "to", "the best standby then"));
    json_decref(answer);
    return 0;
}

/* patronictl flush switchover: DELETE /switchover through the leader. */
static int cmd_flush_switchover(struct ctl *c)
{
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    if (ctl_send_to_leader(c, "DELETE", "/switchover", NULL, &status, &answer, errmsg) != 0) {
        fprintf(stderr, "raftpg ctl flush: %s\n", errmsg);
        return 1;
    }
    int rc = 0;
    if (status == 200) {
        printf("Success: %s\n", ctl_str_or(answer, "message", "scheduled switchover deleted"));
    } else if (status == 404) {
        printf("No pending scheduled switchover\n");
    } else {
        fprintf(stderr, "raftpg ctl flush: failed (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
        rc = 1;
    }
    json_decref(answer);
    return rc;
}

/* A planned switchover, asked of the leader once (never retried: a second request while the
 * first runs would only be refused). scheduled: NULL or "now" for at once. */
static int cmd_switchover(struct ctl *c, const char *leader, const char *candidate,
                          const char *scheduled)
{
    json_t *o = json_object();
    if (leader != NULL) {
        json_object_set_new(o, "leader", json_string(leader));
    }
    if (candidate != NULL) {
        json_object_set_new(o, "candidate", json_string(candidate));
    }
    if (scheduled != NULL && strcmp(scheduled, "now") != 0) {
        int64_t at_ms;
        char when[48], errmsg[RPG_ERRMSG_SIZE];
        if (schedule_parse_time(scheduled, true, &at_ms, errmsg) != 0) {
            fprintf(stderr, "raftpg ctl switchover: --scheduled: %s\n", errmsg);
            json_decref(o);
            return 2;
        }
        schedule_format_time(at_ms, when, sizeof when);
        json_object_set_new(o, "scheduled_at", json_string(when));
        char *body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        int rc = body != NULL ? schedule_switchover(c, body) : 1;
        free(body);
        return rc;
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    /* Each step has its own bound on the agent (switchover.h), and on_switchover its
     * callback_timeout (30 s by default): their sum, and some. */
    int rc = ctl_post_to_leader(c, "switchover", "/switchover", body, 90000, "switched over");
    free(body);
    return rc;
}

/* patronictl failover: POST /failover {"candidate"} through the leader. */
static int cmd_failover(struct ctl *c, const char *candidate)
{
    json_t *o = json_pack("{s:s}", "candidate", candidate);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = ctl_post_to_leader(c, "failover", "/failover", body, 60000, "failed over");
    free(body);
    return rc;
}

static bool reload_member(struct ctl *c, const char *name, const char *api, void *arg)
{
    (void)arg;
    char errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    json_t *answer = NULL;
    bool failed = false;
    if (ctl_request(c, "POST", api, "/reload", "{}", c->timeout_ms, &status, &answer, errmsg) !=
        0) {
        printf("%s: %s\n", name, errmsg);
        failed = true;
    } else if (status == 200) {
        const char *applied = ctl_str_or(answer, "applied", "");
        const char *restart = ctl_str_or(answer, "restart_needed", "");
        printf("%s: reloaded; applied: %s; needs a restart of the agent: %s\n", name,
               applied[0] != '\0' ? applied : "nothing", restart[0] != '\0' ? restart : "nothing");
    } else {
        printf("%s: failed (http %d): %s\n", name, status, ctl_str_or(answer, "error", "?"));
        failed = true;
    }
    json_decref(answer);
    return failed;
}

/* patronictl reload: POST /reload to each member named (every member without names). */
static int cmd_reload(struct ctl *c, char **names, int n)
{
    return ctl_each_member(c, "reload", names, n, false, reload_member, NULL);
}

/* Maintenance mode (Patroni's pause/resume): PATCH /config {"pause": ...} through the leader. */
static int cmd_pause(struct ctl *c, bool on, bool wait)
{
    const char *verb = on ? "pause" : "resume";
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = ctl_send_to_leader(c, "PATCH", "/config",
                                on ? "{\"pause\":true}" : "{\"pause\":false}", &status, &answer,
                                errmsg);
    if (rv != 0) {
        fprintf(stderr, "raftpg ctl %s: %s\n", verb, errmsg);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl %s: refused (http %d): %s\n", verb, status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    if (wait) {
        double deadline = ctl_now_s() + (double)c->timeout_ms * 30 / 1000.0;
        char lagging[RPG_ERRMSG_SIZE] = "";
        while (!all_paused(c, on, lagging, sizeof lagging)) {
            if (ctl_now_s() >= deadline) {
                fprintf(stderr, "raftpg ctl %s: recorded, but %s\n", verb, lagging);
                return 1;
            }
            ctl_sleep_ms(200);
        }
    }
    printf(on ? "Maintenance mode: on (no failover; PostgreSQL is left to the operator)\n"
              : "Maintenance mode: off\n");
    return 0;
}

int ctl_run_restart(struct ctl *c, int argc, char **argv)
{
    char *names[CTL_MAX_ENDPOINTS];
    int n = 0;
    const char *role = NULL, *scheduled = NULL, *version = NULL, *timeout = NULL;
    bool pending = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            role = argv[++i];
            if (strcmp(role, "master") == 0) {
                role = "primary";
            }
            if (strcmp(role, "primary") != 0 && strcmp(role, "replica") != 0 &&
                strcmp(role, "any") != 0) {
                fprintf(stderr,
                        "raftpg ctl restart: --role: expected primary, replica or "
                        "any, got \"%s\"\n",
                        role);
                return 2;
            }
            if (strcmp(role, "any") == 0) {
                role = NULL;
            }
        } else if (strcmp(argv[i], "--pending") == 0) {
            pending = true;
        } else if (strcmp(argv[i], "--force") == 0) {
            /* patronictl's "do not ask": raftpg ctl never asks. */
        } else if (strcmp(argv[i], "--scheduled") == 0 && i + 1 < argc) {
            scheduled = argv[++i];
        } else if (strcmp(argv[i], "--pg-version") == 0 && i + 1 < argc) {
            version = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = argv[++i];
        } else if (argv[i][0] != '-' && n < CTL_MAX_ENDPOINTS) {
            names[n++] = argv[i];
        } else {
            fprintf(stderr, "raftpg ctl restart: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    return cmd_restart(c, names, n, role, pending, version, scheduled, timeout);
}

int ctl_run_reinit(struct ctl *c, int argc, char **argv)
{
    const char *name = NULL;
    bool wait = true;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--no-wait") == 0) {
            wait = false;
        } else if (strcmp(argv[i], "--force") == 0) {
            /* patronictl's "do not ask": raftpg ctl never asks. */
        } else if (argv[i][0] != '-' && name == NULL) {
            name = argv[i];
        } else {
            fprintf(stderr, "raftpg ctl reinit: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (name == NULL) {
        fprintf(stderr, "raftpg ctl reinit: MEMBER is required\n");
        return 2;
    }
    return cmd_reinit(c, name, wait);
}

int ctl_run_switchover(struct ctl *c, int argc, char **argv)
{
    const char *leader = NULL, *candidate = NULL, *scheduled = NULL;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--leader") == 0 || strcmp(argv[i], "--primary") == 0) &&
            i + 1 < argc) {
            leader = argv[++i];
        } else if (strcmp(argv[i], "--candidate") == 0 && i + 1 < argc) {
            candidate = argv[++i];
        } else if (strcmp(argv[i], "--force") == 0) {
            /* patronictl's "do not ask": raftpg ctl never asks. */
        } else if (strcmp(argv[i], "--scheduled") == 0 && i + 1 < argc) {
            scheduled = argv[++i];
        } else {
            fprintf(stderr, "raftpg ctl switchover: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    return cmd_switchover(c, leader, candidate, scheduled);
}

int ctl_run_flush_other(struct ctl *c, int argc, char **argv)
{
    (void)c;
    (void)argc;
    (void)argv;
    fprintf(stderr, "raftpg ctl flush: expected \"restart [MEMBER...]\" or "
                    "\"switchover\"\n");
    return 2;
}

int ctl_run_flush_switchover(struct ctl *c, int argc, char **argv)
{
    return argc > 0 ? ctl_run_flush_other(c, argc, argv) : cmd_flush_switchover(c);
}

int ctl_run_flush_restart(struct ctl *c, int argc, char **argv)
{
    char *names[CTL_MAX_ENDPOINTS];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            /* patronictl's "do not ask": raftpg ctl never asks. */
        } else if (argv[i][0] != '-' && n < CTL_MAX_ENDPOINTS) {
            names[n++] = argv[i];
        } else {
            fprintf(stderr, "raftpg ctl flush restart: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    return cmd_flush_restart(c, names, n);
}

int ctl_run_failover(struct ctl *c, int argc, char **argv)
{
    const char *candidate = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--candidate") == 0 && i + 1 < argc) {
            candidate = argv[++i];
        } else if (strcmp(argv[i], "--force") == 0) {
            /* patronictl's "do not ask": raftpg ctl never asks. */
        } else {
            fprintf(stderr, "raftpg ctl failover: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (candidate == NULL) {
        fprintf(stderr, "raftpg ctl failover: --candidate NAME is required\n");
        return 2;
    }
    return cmd_failover(c, candidate);
}

int ctl_run_reload(struct ctl *c, int argc, char **argv)
{
    for (int k = 0; k < argc; k++) {
        if (argv[k][0] == '-') {
            fprintf(stderr, "raftpg ctl reload: unexpected option \"%s\"\n", argv[k]);
            return 2;
        }
    }
    return cmd_reload(c, argv, argc);
}

/* pause and resume: --wait only. */
static int run_pause(struct ctl *c, bool on, int argc, char **argv)
{
    bool wait = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else {
            fprintf(stderr, "raftpg ctl %s: unexpected argument \"%s\"\n", on ? "pause" : "resume",
                    argv[i]);
            return 2;
        }
    }
    return cmd_pause(c, on, wait);
}

int ctl_run_pause(struct ctl *c, int argc, char **argv)
{
    return run_pause(c, true, argc, argv);
}

int ctl_run_resume(struct ctl *c, int argc, char **argv)
{
    return run_pause(c, false, argc, argv);
}
