/* ctl member add and member remove: the change asked of the leader, what the leader's state
 * holds when its answer is lost, and the wait until the member is a voter or gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "raftpg/api.h"
#include "raftpg/http.h"

static bool is_voter(json_t *cluster, const char *name)
{
    json_t *m = ctl_find_member(cluster, name);
    return m != NULL && strcmp(ctl_str_or(m, "voting", ""), "voter") == 0;
}

static bool is_gone(json_t *cluster, const char *name)
{
    return ctl_find_member(cluster, name) == NULL;
}

/* The leader's own cluster document: its state holds everything committed (a follower's may lag,
 * an old leader's may be gone). NULL while no leader answers. */
static json_t *leader_cluster(struct ctl *c)
{
    char errmsg[RPG_ERRMSG_SIZE], api[FSM_ADDR_MAX];
    json_t *any = ctl_fetch_cluster(c, errmsg);
    int rv = any != NULL ? ctl_leader_api(any, api, sizeof api) : RPG_ENOTFOUND;
    json_decref(any);
    if (rv != 0) {
        return NULL;
    }
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    if (http_request_sync(api, "GET", "/cluster", NULL, NULL, c->timeout_ms, &status, &body, &len,
                          errmsg) != 0) {
        return NULL;
    }
    json_error_t jerr;
    json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
    free(body);
    /* A leader that has not committed its own-term barrier may not have applied the previous
     * term's entries yet: it would call a change that commits a moment later not done. An agent
     * without leader_ready (older) is taken at its state_known. */
    json_t *r = json_object_get(o, "raft");
    json_t *ready = json_object_get(r, "leader_ready");
    bool is_leader = strcmp(ctl_str_or(r, "role", ""), "leader") == 0 &&
                     json_is_true(json_object_get(r, "state_known")) &&
                     (ready == NULL || json_is_true(ready));
    if (!is_leader) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* After a request whose answer was lost (the leader died or changed under it), what did the
 * cluster commit? 1: done() holds in a leader's state, 0: it does not, -1: no leader answered
 * in time. */
static int committed(struct ctl *c, const char *name,
                     bool (*done)(json_t *cluster, const char *name))
{
    double deadline = ctl_now_s() + (double)c->timeout_ms * 10 / 1000.0;
    while (ctl_now_s() < deadline) {
        json_t *o = leader_cluster(c);
        if (o != NULL) {
            int r = done(o, name) ? 1 : 0;
            json_decref(o);
            return r;
        }
        ctl_sleep_ms(300);
    }
    return -1;
}

static bool is_listed(json_t *cluster, const char *name)
{
    return ctl_find_member(cluster, name) != NULL;
}

static int cmd_member_add(struct ctl *c, const char *name, const char *raft, const char *api,
                          bool wait)
{
    char host[16];
    uint16_t port;
    if (api_check_name(name) != 0) {
        fprintf(stderr,
                "raftpg ctl member add: NAME: expected 1..63 characters of "
                "[A-Za-z0-9_.-], got \"%s\"\n",
                name);
        return 2;
    }
    if (raft == NULL || conf_parse_addr(raft, host, &port) != 0) {
        fprintf(stderr, "raftpg ctl member add: --raft: expected IPv4 address:port, got \"%s\"\n",
                raft != NULL ? raft : "");
        return 2;
    }
    if (api == NULL || conf_parse_addr(api, host, &port) != 0) {
        fprintf(stderr, "raftpg ctl member add: --api: expected IPv4 address:port, got \"%s\"\n",
                api != NULL ? api : "");
        return 2;
    }
    json_t *req = json_pack("{s:s, s:s, s:s}", "name", name, "raft", raft, "api", api);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = ctl_send_to_leader(c, "POST", "/members", body, &status, &answer, errmsg);
    free(body);
    if (rv != 0) {
        /* The answer is lost, not necessarily the change: ask the leader's state. */
        int r = committed(c, name, is_listed);
        if (r == 1) {
            printf("member %s added (no answer came: %s; the leader's state lists it)\n", name,
                   errmsg);
            status = 201;
        } else {
            fprintf(stderr, "raftpg ctl member add: %s; %s\n", errmsg,
                    r == 0 ? "the leader's state does not list it: the addition was not "
                             "committed, run the command again"
                           : "no leader answered since: whether it was added is not known yet, "
                             "see raftpg ctl list");
            return 1;
        }
    }
    if (status != 201) {
        fprintf(stderr, "raftpg ctl member add: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    printf("member %s added; ", name);
    if (!wait) {
        printf("it becomes a voter once it runs and has caught up\n");
        return 0;
    }
    printf("waiting for it to catch up and become a voter...\n");
    fflush(stdout);
    rv = ctl_wait_for(c, name, is_voter, "to become a voter", "(is its agent running?)");
    if (rv == 0) {
        printf("member %s is a voter\n", name);
    }
    return rv;
}

static int cmd_member_remove(struct ctl *c, const char *name, bool wait)
{
    if (api_check_name(name) != 0) {
        fprintf(stderr,
                "raftpg ctl member remove: NAME: expected 1..63 characters of "
                "[A-Za-z0-9_.-], got \"%s\"\n",
                name);
        return 2;
    }
    char path[FSM_NAME_MAX + 16];
    snprintf(path, sizeof path, "/members/%s", name);
    int status = 0;
    json_t *answer = NULL;
    char errmsg[RPG_ERRMSG_SIZE];
    /* The leader answers once the member has left the synchronous set and its removal is
     * committed, which can take a few seconds. */
    /* Asked of the leader: a follower may not have applied a recent addition yet. */
    json_t *before = leader_cluster(c);
    if (before != NULL && json_object_get(before, "members") != NULL &&
        ctl_find_member(before, name) == NULL) {
        fprintf(stderr, "raftpg ctl member remove: no member named \"%s\"\n", name);
        json_decref(before);
        return 1;
    }
    json_decref(before);
    unsigned saved = c->timeout_ms;
    c->timeout_ms = saved > 35000 ? saved : 35000;
    int rv = ctl_send_to_leader(c, "DELETE", path, NULL, &status, &answer, errmsg);
    c->timeout_ms = saved;
    if (rv != 0 || status == 404) {
        /* The answer is lost, or a retry found it gone: ask the leader's state what holds. */
        int r = committed(c, name, is_gone);
        if (r == 1) {
            printf("member %s removed (%s; the leader's state no longer lists it)\n", name,
                   rv != 0 ? errmsg : "already gone when asked again");
            json_decref(answer);
            return 0;
        }
        fprintf(stderr, "raftpg ctl member remove: %s; %s\n",
                rv != 0 ? errmsg : ctl_str_or(answer, "error", "not found"),
                r == 0 ? "the leader's state still lists it: the removal was not committed, run "
                         "the command again"
                       : "no leader answered since: whether it was removed is not known yet, "
                         "see raftpg ctl list");
        json_decref(answer);
        return 1;
    }
    if (status == 202) {
        fprintf(stderr, "raftpg ctl member remove: %s: %s\n", name,
                ctl_str_or(answer, "result", "?"));
        json_decref(answer);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "raftpg ctl member remove: refused (http %d): %s\n", status,
                ctl_str_or(answer, "error", "?"));
        json_decref(answer);
        return 1;
    }
    json_decref(answer);
    printf("member %s removed from the cluster state and the raft configuration\n", name);
    if (!wait) {
        return 0;
    }
    rv = ctl_wait_for(c, name, is_gone, "to leave", NULL);
    if (rv == 0) {
        printf("member %s has left\n", name);
    }
    return rv;
}

struct member_args {
    const char *name, *raft, *api;
    bool wait;
};

/* The arguments add and remove share; sub names the subcommand in errors. 0, or 2 after an
 * error on stderr. */
static int member_args(const char *sub, int argc, char **argv, struct member_args *a)
{
    *a = (struct member_args){.wait = true};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--raft") == 0 && i + 1 < argc) {
            a->raft = argv[++i];
        } else if (strcmp(argv[i], "--api") == 0 && i + 1 < argc) {
            a->api = argv[++i];
        } else if (strcmp(argv[i], "--no-wait") == 0) {
            a->wait = false;
        } else if (argv[i][0] != '-' && a->name == NULL) {
            a->name = argv[i];
        } else {
            fprintf(stderr, "raftpg ctl member %s: unexpected argument \"%s\"\n", sub, argv[i]);
            return 2;
        }
    }
    if (a->name == NULL) {
        fprintf(stderr, "raftpg ctl member %s: NAME is required\n", sub);
        return 2;
    }
    return 0;
}

int ctl_run_member_add(struct ctl *c, int argc, char **argv)
{
    struct member_args a;
    if (member_args("add", argc, argv, &a) != 0) {
        return 2;
    }
    return cmd_member_add(c, a.name, a.raft, a.api, a.wait);
}

int ctl_run_member_remove(struct ctl *c, int argc, char **argv)
{
    struct member_args a;
    if (member_args("remove", argc, argv, &a) != 0) {
        return 2;
    }
    if (a.raft != NULL || a.api != NULL) {
        fprintf(stderr, "raftpg ctl member remove: --raft/--api do not apply\n");
        return 2;
    }
    return cmd_member_remove(c, a.name, a.wait);
}

int ctl_run_member_other(struct ctl *c, int argc, char **argv)
{
    (void)c;
    if (argc == 0) {
        fprintf(stderr, "raftpg ctl member: expected add or remove\n");
        return 2;
    }
    /* The arguments are checked first, as for add and remove. */
    struct member_args a;
    if (member_args(argv[0], argc - 1, argv + 1, &a) != 0) {
        return 2;
    }
    fprintf(stderr, "raftpg ctl member: expected add or remove, got \"%s\"\n", argv[0]);
    return 2;
}
