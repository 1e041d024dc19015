#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/api.h"
#include "raftpg/log.h"

#define PEER_POLL_INTERVAL_MS 500
#define PEER_POLL_TIMEOUT_MS 400
#define JOIN_RETRY_MS 1000

const char *agent_phase_name(enum agent_phase phase)
{
    switch (phase) {
    case AGENT_PHASE_JOINING: return "joining";
    case AGENT_PHASE_RUNNING: return "running";
    case AGENT_PHASE_STOPPING: return "stopping";
    }
    return "unknown";
}

/* Peers to poll: every member of the replicated state but this one, or, before the state is
 * known, the configured initial members. */
static void update_peer_targets(struct agent *a)
{
    struct peer_status t[PEERS_MAX];
    unsigned n = 0;
    const struct fsm_state *s = &a->cons.state;
    if (a->cons_open && s->initialized) {
        for (unsigned i = 0; i < s->n_members && n < PEERS_MAX; i++) {
            if (strcmp(s->members[i].name, a->conf.name) == 0) {
                continue;
            }
            memset(&t[n], 0, sizeof t[n]);
            snprintf(t[n].name, sizeof t[n].name, "%s", s->members[i].name);
            snprintf(t[n].api, sizeof t[n].api, "%s", s->members[i].api_address);
            n++;
        }
    } else {
        for (unsigned i = 0; i < a->conf.raft.n_members && n < PEERS_MAX; i++) {
            const struct conf_member *m = &a->conf.raft.members[i];
            if (strcmp(m->name, a->conf.name) == 0) {
                continue;
            }
            memset(&t[n], 0, sizeof t[n]);
            snprintf(t[n].name, sizeof t[n].name, "%s", m->name);
            snprintf(t[n].api, sizeof t[n].api, "%s", m->api);
            n++;
        }
    }
    /* Only replace when something changed, so the last results are kept. */
    bool same = n == a->peers.n_targets;
    for (unsigned i = 0; same && i < n; i++) {
        same = strcmp(t[i].name, a->peers.targets[i].name) == 0 &&
               strcmp(t[i].api, a->peers.targets[i].api) == 0;
    }
    if (!same) {
        peers_set_targets(&a->peers, t, n);
    }
}

static void on_raft_change(struct cons *c, void *data)
{
    (void)c;
    update_peer_targets(data);
}

static void on_peers_round(struct peers *p, void *data)
{
    (void)p;
    struct agent *a = data;
    if (a->phase == AGENT_PHASE_RUNNING) {
        update_peer_targets(a);
    }
}

static int start_raft(struct agent *a, uint64_t id, char *errmsg)
{
    int rv = cons_start(&a->cons, a->loop, &a->conf, id, on_raft_change, a, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->cons_open = true;
    a->phase = AGENT_PHASE_RUNNING;
    log_info("raft started (id=%llu address=%s data_dir=%s)", (unsigned long long)id,
             a->conf.raft.listen, a->conf.raft.data_dir);
    return 0;
}

/* ---- joining an existing cluster --------------------------------------------------------- */

struct join_work {
    uv_work_t work;
    struct agent *a;
    char apis[CONF_MEMBERS_MAX][CONF_ADDR_MAX];
    unsigned n_apis;
    char name[CONF_NAME_MAX];
    char raft[CONF_ADDR_MAX];
    char api[CONF_ADDR_MAX];
    char scope[CONF_NAME_MAX];
    uint64_t id;
    bool fatal;
    char status[RPG_ERRMSG_SIZE];
};

/* Threadpool side: asks the initial members for the cluster state and looks for this member. */
static void join_lookup(uv_work_t *w)
{
    struct join_work *j = w->data;
    snprintf(j->status, sizeof j->status, "no initial member answered");
    for (unsigned i = 0; i < j->n_apis; i++) {
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        char errmsg[RPG_ERRMSG_SIZE];
        if (http_request_sync(j->apis[i], "GET", "/cluster", NULL, NULL, 1000, &status, &body,
                              &len, errmsg) != 0) {
            snprintf(j->status, sizeof j->status, "%s", errmsg);
            continue;
        }
        json_error_t jerr;
        json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
        free(body);
        const char *scope = json_string_value(json_object_get(o, "scope"));
        json_t *members = json_object_get(o, "members");
        if (scope == NULL || !json_is_array(members)) {
            json_decref(o);
            continue;
        }
        if (strcmp(scope, j->scope) != 0) {
            snprintf(j->status, sizeof j->status,
                     "%s belongs to cluster \"%s\", not \"%s\"", j->apis[i], scope, j->scope);
            j->fatal = true;
            json_decref(o);
            return;
        }
        size_t k;
        json_t *m;
        json_array_foreach(members, k, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *raft = json_string_value(json_object_get(m, "raft_address"));
            if (name == NULL || strcmp(name, j->name) != 0) {
                continue;
            }
            if (raft == NULL || strcmp(raft, j->raft) != 0) {
                snprintf(j->status, sizeof j->status,
                         "member %s is registered with raft address %s but raft.listen is %s",
                         j->name, raft != NULL ? raft : "?", j->raft);
                j->fatal = true;
            } else {
                j->id = (uint64_t)json_integer_value(json_object_get(m, "id"));
            }
            json_decref(o);
            return;
        }
        snprintf(j->status, sizeof j->status,
                 "not a member yet: run 'raftpg ctl member add %s --raft %s --api %s'", j->name,
                 j->raft, j->api);
        json_decref(o);
        return;
    }
}

static void join_try(uv_timer_t *t);

static void join_done(uv_work_t *w, int status)
{
    struct join_work *j = w->data;
    struct agent *a = j->a;
    char errmsg[RPG_ERRMSG_SIZE];
    if (a->phase != AGENT_PHASE_JOINING || status != 0) {
        free(j);
        return;
    }
    bool changed = strcmp(a->join_status, j->status) != 0;
    snprintf(a->join_status, sizeof a->join_status, "%s", j->status);
    if (j->fatal) {
        log_error("cannot join: %s", j->status);
        free(j);
        agent_stop(a, 1);
        return;
    }
    if (j->id == 0) {
        if (changed) {
            log_info("waiting to be added to the cluster: %s", j->status);
        }
        free(j);
        uv_timer_start(&a->join_timer, join_try, JOIN_RETRY_MS, 0);
        return;
    }
    uint64_t id = j->id;
    free(j);
    log_info("this member was added to the cluster with id=%llu", (unsigned long long)id);
    int rv = cons_identity_write(a->conf.raft.data_dir, a->conf.scope, a->conf.name, id, errmsg);
    if (rv == 0) {
        rv = start_raft(a, id, errmsg);
    }
    if (rv != 0) {
        log_error("%s", errmsg);
        agent_stop(a, 1);
    }
}

static void join_try(uv_timer_t *t)
{
    struct agent *a = t->data;
    struct join_work *j = calloc(1, sizeof *j);
    if (j == NULL) {
        uv_timer_start(&a->join_timer, join_try, JOIN_RETRY_MS, 0);
        return;
    }
    j->a = a;
    j->work.data = j;
    for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
        snprintf(j->apis[i], sizeof j->apis[i], "%s", a->conf.raft.members[i].api);
    }
    j->n_apis = a->conf.raft.n_members;
    snprintf(j->name, sizeof j->name, "%s", a->conf.name);
    snprintf(j->raft, sizeof j->raft, "%s", a->conf.raft.listen);
    snprintf(j->api, sizeof j->api, "%s", a->conf.restapi.connect_address);
    snprintf(j->scope, sizeof j->scope, "%s", a->conf.scope);
    if (uv_queue_work(a->loop, &j->work, join_lookup, join_done) != 0) {
        free(j);
        uv_timer_start(&a->join_timer, join_try, JOIN_RETRY_MS, 0);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;
    log_info("received signal %d, shutting down", signum);
    agent_stop(a, 0);
}

int agent_start(struct agent *a, uv_loop_t *loop, char *errmsg)
{
    a->loop = loop;
    a->phase = AGENT_PHASE_JOINING;
    uv_signal_init(loop, &a->sig_int);
    uv_signal_init(loop, &a->sig_term);
    a->sig_int.data = a;
    a->sig_term.data = a;
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_timer_init(loop, &a->join_timer);
    a->join_timer.data = a;

    /* Find out who we are before opening any port: a foreign data directory stops here. */
    uint64_t id = 0;
    int rv = cons_identity_read(a->conf.raft.data_dir, a->conf.scope, a->conf.name, &id, errmsg);
    if (rv != 0 && rv != RPG_ENOTFOUND) {
        return rv;
    }
    bool fresh = rv == RPG_ENOTFOUND;
    const struct conf_member *self = conf_self(&a->conf);
    if (fresh && self != NULL) {
        id = 0;
        for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
            if (&a->conf.raft.members[i] == self) {
                id = i + 1;
            }
        }
        /* Identity first: a crash before the bootstrap leaves a directory that the next start
         * recognises and bootstraps (libraft refuses a second bootstrap of non-empty state). */
        rv = cons_identity_write(a->conf.raft.data_dir, a->conf.scope, a->conf.name, id, errmsg);
        if (rv != 0) {
            return rv;
        }
    }

    rv = http_server_start(&a->api, loop, a->conf.restapi.listen, api_handle, a, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->api_open = true;
    rv = peers_start(&a->peers, loop, PEER_POLL_INTERVAL_MS, PEER_POLL_TIMEOUT_MS, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->peers.round_cb = on_peers_round;
    a->peers.data = a;
    a->peers_open = true;
    update_peer_targets(a);
    log_info("api listening on %s", a->conf.restapi.listen);

    if (fresh && self == NULL) {
        snprintf(a->join_status, sizeof a->join_status, "looking up this member");
        log_info("not an initial member and no raft state: joining an existing cluster");
        uv_timer_start(&a->join_timer, join_try, 0, 0);
        return 0;
    }
    return start_raft(a, id, errmsg);
}

static void maybe_exit(struct agent *a)
{
    if (a->cons_open || a->api_open || a->peers_open) {
        return;
    }
    uv_close((uv_handle_t *)&a->sig_int, NULL);
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    uv_close((uv_handle_t *)&a->join_timer, NULL);
}

static struct agent *agent_of_cons(struct cons *c)
{
    return (struct agent *)((char *)c - offsetof(struct agent, cons));
}

static void cons_closed(struct cons *c)
{
    struct agent *a = agent_of_cons(c);
    a->cons_open = false;
    maybe_exit(a);
}

static void api_closed(struct http_server *s)
{
    struct agent *a = (struct agent *)((char *)s - offsetof(struct agent, api));
    a->api_open = false;
    maybe_exit(a);
}

static void peers_closed(struct peers *p)
{
    struct agent *a = (struct agent *)((char *)p - offsetof(struct agent, peers));
    a->peers_open = false;
    maybe_exit(a);
}

void agent_stop(struct agent *a, int exit_code)
{
    if (a->phase == AGENT_PHASE_STOPPING) {
        return;
    }
    a->phase = AGENT_PHASE_STOPPING;
    a->exit_code = exit_code;
    uv_timer_stop(&a->join_timer);
    bool any = a->cons_open || a->api_open || a->peers_open;
    if (a->cons_open) {
        cons_close(&a->cons, cons_closed);
    }
    if (a->api_open) {
        http_server_close(&a->api, api_closed);
    }
    if (a->peers_open) {
        peers_close(&a->peers, peers_closed);
    }
    if (!any) {
        maybe_exit(a);
    }
}
