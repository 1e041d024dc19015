#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "raftpg/agent.h"
#include "raftpg/reload.h"
#include "raftpg/api.h"
#include "raftpg/fence_step.h"
#include "raftpg/lead.h"
#include "raftpg/log.h"
#include "raftpg/loopwatch.h"
#include "raftpg/proof.h"
#include "raftpg/storage.h"
#include "raftpg/timing.h"

#define JOIN_RETRY_MS 1000

bool agent_acting(const struct agent *a, char *why, size_t size)
{
    if (a->cons_open && a->cons.diverged) {
        snprintf(why, size,
                 "this member takes no action: its replicated state diverged (%s); move its "
                 "raft.data_dir aside, then remove and re-add the member",
                 a->diverged_detail);
        return false;
    }
    if (a->identity_error[0] != '\0') {
        snprintf(why, size, "this member takes no action: identity mismatch: %s",
                 a->identity_error);
        return false;
    }
    if (size > 0) {
        why[0] = '\0';
    }
    return true;
}

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
    struct peer_status initial[CONF_MEMBERS_MAX];
    unsigned n = a->conf.raft.n_members < CONF_MEMBERS_MAX ? a->conf.raft.n_members
                                                           : CONF_MEMBERS_MAX;
    for (unsigned i = 0; i < n; i++) {
        snprintf(initial[i].name, sizeof initial[i].name, "%s", a->conf.raft.members[i].name);
        snprintf(initial[i].api, sizeof initial[i].api, "%s", a->conf.raft.members[i].api);
    }
    peer_book_update_targets(&a->peers.book, a->cons_open ? &a->cons.state : NULL, a->conf.name,
                             initial, n);
}

static void ha_schedule(struct agent *a, unsigned delay_ms);
static void maybe_exit(struct agent *a);

static void on_raft_change(struct cons *c, void *data)
{
    struct agent *a = data;
    if (c->failed) {
        log_error("%s", c->error);
        agent_stop(a, 1);
        return;
    }
    update_peer_targets(a);
    /* A new leader chooses the next primary from reports asked for after it became leader. */
    if (c->role == CONS_ROLE_LEADER && c->leader_ready && a->peers_open) {
        peers_poll_now(&a->peers);
    }
    /* Leadership changes are acted on at once, not at the next tick. */
    ha_schedule(data, 0);
}

/* Compares this member's state checksums with those the peers reported at indexes both have
 * applied. Divergence is sticky: the state stays wrong until an operator repairs the member and
 * restarts it. */
static void state_compare(struct agent *a)
{
    struct cons *c = &a->cons;
    if (!a->cons_open || c->diverged) {
        return;
    }
    const char *leader = c->leader_id != 0 ? cons_member_name(c, c->leader_id) : NULL;
    unsigned n_same = 0, n_differ = 0;
    bool leader_differs = false;
    char detail[RPG_ERRMSG_SIZE] = "";
    for (unsigned i = 0; i < a->peers.book.n_results; i++) {
        const struct peer_status *p = &a->peers.book.results[i];
        uint64_t mine = 0;
        if (!p->reachable || !p->state_known || p->diverged ||
            !fsm_sum_at(&c->fsm, p->state_index, &mine)) {
            continue;
        }
        if (mine == p->state_sum) {
            n_same++;
            continue;
        }
        n_differ++;
        leader_differs = leader_differs || (leader != NULL && strcmp(leader, p->name) == 0);
        snprintf(detail, sizeof detail,
                 "at applied index %llu this member's state checksum is %016llx, %s's is %016llx",
                 (unsigned long long)p->state_index, (unsigned long long)mine, p->name,
                 (unsigned long long)p->state_sum);
    }
    if (!storage_state_diverged(n_same, n_differ, leader_differs)) {
        return;
    }
    c->diverged = true;
    snprintf(a->diverged_detail, sizeof a->diverged_detail, "%s", detail);
    log_error("replicated state diverged: %s (%u member(s) differ, %u agree); this member no "
              "longer acts and hands over leadership; repair it: stop it, move its raft "
              "directory aside, remove it and add it again as a new member",
              detail, n_differ, n_same);
}

/* Asks the leader, not this member's own state (which stops at its removal), under which Raft
 * id the cluster lists this member's name. Another id means it was removed and added again while
 * this agent kept running: its Raft log and vote belong to an id the cluster no longer has. */
static void identity_check(struct agent *a)
{
    const struct cons *c = &a->cons;
    if (!a->cons_open || c->id == 0 || a->identity_error[0] != '\0') {
        return;
    }
    for (unsigned i = 0; i < a->peers.book.n_results; i++) {
        const struct peer_status *p = &a->peers.book.results[i];
        if (!p->reachable || strcmp(p->raft_role, "leader") != 0 || p->term < c->term) {
            continue;
        }
        for (unsigned j = 0; j < p->n_members; j++) {
            if (strcmp(p->members[j].name, a->conf.name) != 0 || p->members[j].id == c->id ||
                p->members[j].id == 0) {
                continue;
            }
            snprintf(a->identity_error, sizeof a->identity_error,
                     "this agent runs as raft id %llu, the cluster (leader %s, term %llu) lists "
                     "%s as id %llu: stop this agent, move its raft.data_dir aside and start it "
                     "again (it joins as id %llu)",
                     (unsigned long long)c->id, p->name, (unsigned long long)p->term, a->conf.name,
                     (unsigned long long)p->members[j].id, (unsigned long long)p->members[j].id);
            log_error("identity mismatch: %s; until then this member takes no action",
                      a->identity_error);
            return;
        }
    }
}

static void on_peers_round(struct peers *p, void *data)
{
    (void)p;
    struct agent *a = data;
    if (a->phase == AGENT_PHASE_RUNNING) {
        update_peer_targets(a);
        state_compare(a);
        identity_check(a);
        switchover_on_report(a);
        /* A leader that does not run the primary yet decides on the members' reports: each new
         * one is acted on at once, not at the next tick (a switchover's or failover's pause). */
        if (a->cons_open && a->cons.role == CONS_ROLE_LEADER && a->conf.has_postgresql &&
            (strcmp(a->cons.state.primary.name, a->conf.name) != 0 ||
             a->pg.obs.state != HA_PG_RUNNING || a->pg.obs.in_recovery)) {
            ha_schedule(a, 0);
        }
    }
}

/* lead_pick_voter over the peers' last reports. */
static uint64_t pick_voter(struct cons *c, void *data)
{
    struct agent *a = data;
    return lead_pick_voter(c, a->peers.book.results, a->peers.book.n_results);
}

static int start_raft(struct agent *a, uint64_t id, bool bootstrap, char *errmsg)
{
    a->raft_fresh = false; /* from here on the directory holds Raft state (or is refused) */
    a->raft_bootstrapped = bootstrap;
    int rv = cons_start(&a->cons, a->loop, &a->conf, id, bootstrap, on_raft_change, a, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->cons_open = true;
    a->cons.host.pick_voter = pick_voter;
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
    bool initial;   /* a configured initial member: it may bootstrap a cluster not yet there */
    uint64_t id;    /* the id the cluster lists this member under */
    bool bootstrap; /* no cluster exists yet: bootstrap it (initial members only) */
    bool fatal;
    char status[2 * RPG_ERRMSG_SIZE];
    /* With a cluster secret only answers proven with it count (proof.h). */
    uint8_t secret[CONF_SECRET_SIZE];
    uint8_t secret_previous[CONF_SECRET_SIZE];
    bool has_secret;
    bool has_secret_previous;
};

static void join_free(struct join_work *j)
{
    sodium_memzero(j, sizeof *j);
    free(j);
}

/* GET the bootstrap answer of the member at api: with a secret, one proven with it for a fresh
 * nonce (NULL and a reason in why when it is not); without, the plain cluster document. */
static json_t *ask_member(const struct join_work *j, const char *api, char *why, size_t why_size)
{
    char nonce[PROOF_NONCE_HEX + 1], path[128], errmsg[RPG_ERRMSG_SIZE];
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    json_error_t jerr;
    if (j->has_secret) {
        proof_nonce(nonce);
        snprintf(path, sizeof path, "/raftpg/bootstrap?nonce=%s", nonce);
    }
    if (http_request_sync(api, "GET", j->has_secret ? path : "/cluster", NULL, NULL, 1000, &status,
                          &body, &len, errmsg) != 0) {
        snprintf(why, why_size, "%s did not answer: %s", api, errmsg);
        return NULL;
    }
    json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
    free(body);
    if (!j->has_secret) {
        if (o == NULL) {
            snprintf(why, why_size, "%s gave no cluster document (HTTP %d)", api, status);
        }
        return o;
    }
    const char *answer = json_string_value(json_object_get(o, "answer"));
    const char *proof = json_string_value(json_object_get(o, "proof"));
    json_t *doc = NULL;
    if (answer != NULL &&
        (proof_check(j->secret, j->scope, nonce, answer, strlen(answer), proof) ||
         (j->has_secret_previous &&
          proof_check(j->secret_previous, j->scope, nonce, answer, strlen(answer), proof)))) {
        doc = json_loads(answer, 0, &jerr);
    } else {
        snprintf(why, why_size,
                 "%s did not prove that it knows the cluster secret (HTTP %d): its answer is "
                 "ignored",
                 api, status);
    }
    json_decref(o);
    return doc;
}

/* Threadpool side: asks the other initial members for the cluster state and looks for this
 * member. A member whose Raft log held replicated entries (raft_state) and that comes back
 * without Raft state has lost its log and its vote: it may not rejoin under that id, since it
 * could have been one of the majority that committed an entry and would now vote for a leader
 * lacking it. An initial member bootstraps only once every other initial member has answered
 * that it has no cluster history either: one that does not answer may be the one holding the
 * log (two members that lost theirs must not start a second history while it is down). */
static void join_lookup(uv_work_t *w)
{
    struct join_work *j = w->data;
    /* A cluster of one has nobody to ask, and nothing to lose that another member holds. */
    unsigned fresh = 0;
    char silent[2 * RPG_ERRMSG_SIZE] = "";
    snprintf(j->status, sizeof j->status, "no other initial member answered");
    for (unsigned i = 0; i < j->n_apis; i++) {
        char why[2 * RPG_ERRMSG_SIZE];
        json_t *o = ask_member(j, j->apis[i], why, sizeof why);
        if (o == NULL) {
            if (silent[0] == '\0') {
                snprintf(silent, sizeof silent, "%s", why);
            }
            continue;
        }
        const char *scope = json_string_value(json_object_get(o, "scope"));
        json_t *members = json_object_get(o, "members");
        if (scope == NULL || !json_is_array(members)) {
            json_decref(o);
            continue;
        }
        if (strcmp(scope, j->scope) != 0) {
            snprintf(j->status, sizeof j->status, "%s belongs to cluster \"%s\", not \"%s\"",
                     j->apis[i], scope, j->scope);
            j->fatal = true;
            json_decref(o);
            return;
        }
        json_t *raft_o = json_object_get(o, "raft");
        if (!json_is_true(json_object_get(raft_o, "state_known"))) {
            /* Only a member without cluster history (api.c "fresh") says the cluster does not
             * exist yet: one restarting from its directory knows nothing until a leader is back. */
            if (json_is_true(json_object_get(raft_o, "fresh"))) {
                fresh++;
            } else {
                /* The stronger reason: a cluster exists, its leader is not back yet. */
                snprintf(silent, sizeof silent, "%s has raft state but knows no cluster state yet",
                         j->apis[i]);
            }
            json_decref(o);
            continue;
        }
        size_t k;
        json_t *m;
        json_array_foreach(members, k, m) {
            const char *name = json_string_value(json_object_get(m, "name"));
            const char *raft = json_string_value(json_object_get(m, "raft_address"));
            if (name == NULL || strcmp(name, j->name) != 0) {
                continue;
            }
            uint64_t id = (uint64_t)json_integer_value(json_object_get(m, "id"));
            if (raft == NULL || strcmp(raft, j->raft) != 0) {
                snprintf(j->status, sizeof j->status,
                         "member %s is registered with raft address %s but raft.listen is %s",
                         j->name, raft != NULL ? raft : "?", j->raft);
                j->fatal = true;
            } else if (json_is_true(json_object_get(m, "raft_state"))) {
                snprintf(j->status, sizeof j->status,
                         "this member (id=%llu) has lost its raft state: its log held "
                         "replicated entries and its data directory has none; rejoining under "
                         "the same id could lose committed entries. Remove it and add it again: "
                         "raftpg ctl member remove %s; raftpg ctl member add %s --raft %s --api "
                         "%s; then start it",
                         (unsigned long long)id, j->name, j->name, j->raft, j->api);
                j->fatal = true;
            } else {
                j->id = id;
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
    j->bootstrap = j->initial && fresh == j->n_apis;
    if (j->bootstrap) {
        snprintf(j->status, sizeof j->status, "every other initial member has no raft state");
    } else if (j->initial) {
        snprintf(j->status, sizeof j->status,
                 "%u of %u other initial members answered that they have no cluster history "
                 "(%.400s)",
                 fresh, j->n_apis, silent[0] != '\0' ? silent : "the others did not answer");
    } else if (silent[0] != '\0') {
        snprintf(j->status, sizeof j->status, "%s", silent);
    }
}

static void join_try(uv_timer_t *t);

/* A configured initial member's bootstrap id: its position in raft.members, from 1. */
static uint64_t initial_id(const struct agent *a)
{
    const struct conf_member *self = conf_self(&a->conf);
    for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
        if (&a->conf.raft.members[i] == self) {
            return i + 1;
        }
    }
    return 0;
}

static void join_done(uv_work_t *w, int status)
{
    struct join_work *j = w->data;
    struct agent *a = j->a;
    char errmsg[RPG_ERRMSG_SIZE];
    if (a->phase != AGENT_PHASE_JOINING || status != 0) {
        join_free(j);
        return;
    }
    bool changed = strcmp(a->join_status, j->status) != 0;
    snprintf(a->join_status, sizeof a->join_status, "%s", j->status);
    if (j->fatal) {
        log_error("cannot join: %s", j->status);
        join_free(j);
        agent_stop(a, 1);
        return;
    }
    bool bootstrap = j->bootstrap;
    uint64_t id = bootstrap ? initial_id(a) : j->id;
    if (id == 0) {
        if (changed) {
            log_info("%s: %s",
                     j->initial ? "waiting to form the cluster"
                                : "waiting to be added to the cluster",
                     j->status);
        }
        join_free(j);
        uv_timer_start(&a->join_timer, join_try, JOIN_RETRY_MS, 0);
        return;
    }
    join_free(j);
    if (bootstrap) {
        log_info("no cluster state exists yet: bootstrapping as initial member id=%llu",
                 (unsigned long long)id);
    } else {
        log_info("this member is in the cluster with id=%llu: joining without bootstrapping",
                 (unsigned long long)id);
    }
    /* Identity first: a crash before Raft writes anything leaves a directory that the next
     * start looks up again (libraft also refuses a second bootstrap of non-empty state). */
    int rv = cons_identity_write(a->conf.raft.data_dir, a->conf.scope, a->conf.name, id, errmsg);
    if (rv == 0) {
        rv = start_raft(a, id, bootstrap, errmsg);
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
    const struct conf_member *self = conf_self(&a->conf);
    j->n_apis = 0;
    for (unsigned i = 0; i < a->conf.raft.n_members; i++) {
        if (&a->conf.raft.members[i] != self) {
            snprintf(j->apis[j->n_apis++], sizeof j->apis[0], "%s", a->conf.raft.members[i].api);
        }
    }
    j->initial = self != NULL;
    snprintf(j->name, sizeof j->name, "%s", a->conf.name);
    snprintf(j->raft, sizeof j->raft, "%s", a->conf.raft.listen);
    snprintf(j->api, sizeof j->api, "%s", a->conf.restapi.connect_address);
    snprintf(j->scope, sizeof j->scope, "%s", a->conf.scope);
    j->has_secret = a->has_secret;
    j->has_secret_previous = a->has_secret_previous;
    memcpy(j->secret, a->secret, sizeof j->secret);
    memcpy(j->secret_previous, a->secret_previous, sizeof j->secret_previous);
    if (uv_queue_work(a->loop, &j->work, join_lookup, join_done) != 0) {
        join_free(j);
        uv_timer_start(&a->join_timer, join_try, JOIN_RETRY_MS, 0);
    }
}

/* ---- fencing, the write VIP and the watchdog (DESIGN.md rules 2, 3, 5) ------------------- */

#define GUARD_RESTART_MS 1000

static void fence_tick(struct agent *a);

static void on_vip_done(struct vip *v, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    rpg_msec now = cons_uv_clock_ms();
    fence_vip_done(&a->fm,
                   rc == RPG_EBUSY ? FENCE_VIP_DONE_CANCELLED
                   : rc != 0       ? FENCE_VIP_DONE_FAILED
                                   : FENCE_VIP_DONE_OK,
                   vip_busy(v), vip_is_held(v), now);
    if (rc != 0 && rc != RPG_EBUSY) {
        snprintf(a->vip_error, sizeof a->vip_error, "%s", msg);
        log_error("vip: %s", msg);
    } else if (rc == 0) {
        a->vip_error[0] = '\0';
        log_info("vip %s %s", a->conf.vip.address.text, vip_is_held(v) ? "held" : "released");
    }
    if (a->phase == AGENT_PHASE_RUNNING) {
        fence_tick(a);
    }
}

/* A renewal is routine: only its failures and a vanished address are worth a line. */
static void on_vip_renewed(struct vip *v, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    if (rc == 0 && vip_is_held(v)) {
        a->fm.vip_renewed_at = cons_uv_clock_ms();
    } else if (rc == 0) {
        log_warning("vip: %s", msg);
    } else if (rc != RPG_EBUSY) {
        log_error("vip: %s", msg);
    }
    if (a->phase == AGENT_PHASE_RUNNING) {
        fence_tick(a);
    }
}

/* Arms the watchdog while this node may accept writes under its lease and feeds it on every tick.
 * Without the lease it stops feeding but stays armed until the fence is complete (no server that
 * may accept writes, no VIP): an agent that hangs halfway through a fence still gets its node
 * reset. Disarmed after that. */
static void watchdog_tick(struct agent *a, bool primary, bool unfenced)
{
    if (a->conf.watchdog.mode == CONF_WATCHDOG_OFF) {
        a->watchdog_ok = true;
        return;
    }
    char errmsg[RPG_ERRMSG_SIZE] = "";
    switch (watchdog_plan(primary, watchdog_is_armed(&a->watchdog), unfenced)) {
    case WATCHDOG_STEP_ARM: {
        unsigned timeout_s =
            watchdog_lease_timeout_s(&a->conf.watchdog, a->fence.lease_ms + a->fence.margin_ms);
        int rv = watchdog_arm(&a->watchdog, timeout_s, errmsg);
        a->watchdog_ok = rv == 0 && (watchdog_is_armed(&a->watchdog) ||
                                     a->conf.watchdog.mode != CONF_WATCHDOG_REQUIRED);
        if (errmsg[0] != '\0' && strcmp(errmsg, a->watchdog_error) != 0) {
            log_warning("watchdog: %s", errmsg);
        }
        snprintf(a->watchdog_error, sizeof a->watchdog_error, "%s", errmsg);
        break;
    }
    case WATCHDOG_STEP_FEED:
        if (watchdog_keepalive(&a->watchdog, errmsg) != 0) {
            log_error("watchdog: %s", errmsg);
        }
        break;
    case WATCHDOG_STEP_DISARM:
        if (watchdog_disarm(&a->watchdog, errmsg) != 0) {
            log_error("watchdog: %s", errmsg);
        }
        break;
    case WATCHDOG_STEP_NONE: break;
    }
}

/* The executor of fence_step (fence_step.h) against the real world: signals to the postmaster and
 * its children, ip and arping, the watchdog device, the log. */
static void fence_log(void *data, enum log_level level, const char *msg)
{
    (void)data;
    log_msg(level, "%s", msg);
}

static void fence_renew_now(void *data)
{
    struct agent *a = data;
    cons_lease_renew_now(&a->cons);
}

static int fence_pg_signal(void *data, enum fence_pg_act act)
{
    struct agent *a = data;
    int pid = pg_postmaster_pid(&a->pg);
    switch (act) {
    case FENCE_PG_FREEZE: a->frozen_pid = pid; return pg_signal_server(pid, SIGSTOP);
    case FENCE_PG_THAW: return pg_signal_server(a->frozen_pid, SIGCONT);
    case FENCE_PG_STOP:
    case FENCE_PG_KILL:
        a->fence_pid = pid;
        pg_crash_forget(&a->pg); /* the fence's stop is no crash */
        kill(pid, act == FENCE_PG_STOP ? SIGINT : SIGQUIT);
        /* This agent's soft layer, or an earlier agent's that died, may have stopped it. */
        return pg_signal_server(pid, SIGCONT);
    case FENCE_PG_ESCALATE:
        pg_crash_forget(&a->pg);
        kill(a->fence_pid, SIGQUIT);
        return pg_signal_server(a->fence_pid, SIGCONT);
    case FENCE_PG_DONE:
    case FENCE_PG_NONE: break;
    }
    return 0;
}

static const char *fence_pg_target(void *data)
{
    struct agent *a = data;
    return pg_is_orphan_child(pg_postmaster_pid(&a->pg))
               ? "a process a killed postgresql left behind"
               : "postgresql";
}

static void fence_watchdog(void *data, bool feed, bool unfenced)
{
    watchdog_tick(data, feed, unfenced);
}

/* A probe before a promotion: a claim follows, so only what it found is worth a line (an
 * answer once, not each retry). */
static void on_vip_probed(struct vip *v, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    (void)v;
    if (rc == 0) {
        log_info("vip: %s", msg);
        a->vip_probe_answered = false;
    } else if (rc != RPG_EBUSY && !a->vip_probe_answered) {
        log_warning("vip: %s", msg);
        a->vip_probe_answered = true;
    }
    if (a->phase == AGENT_PHASE_RUNNING) {
        fence_tick(a);
    }
}

static int fence_vip(void *data, enum fence_vip_act act, bool cut_claim, char *errmsg)
{
    struct agent *a = data;
    (void)cut_claim; /* vip_release cuts a claim short itself */
    switch (act) {
    case FENCE_VIP_RELEASE:
    case FENCE_VIP_STARTUP_RELEASE: return vip_release(&a->vip, on_vip_done, a, errmsg);
    case FENCE_VIP_CLAIM: return vip_claim(&a->vip, on_vip_done, a, errmsg);
    case FENCE_VIP_RENEW: return vip_renew(&a->vip, on_vip_renewed, a, errmsg);
    case FENCE_VIP_PROBE: return vip_probe(&a->vip, on_vip_probed, a, errmsg);
    case FENCE_VIP_RETRY: a->vip_error[0] = '\0'; return 0;
    case FENCE_VIP_NONE: break;
    }
    return 0;
}

/* One fence tick (fence_step); false when it did not run. *unfenced: whether anything on the
 * node may still need fencing, for the guard. */
static bool fence_tick_inner(struct agent *a, bool *unfenced)
{
    if (!a->conf.has_postgresql || !a->pg_open || a->phase == AGENT_PHASE_STOPPING) {
        return false;
    }
    int pid = pg_postmaster_pid(&a->pg);
    const struct ha_pg *o = &a->pg.obs;
    rpg_msec now = cons_uv_clock_ms();
    struct fence_world w = {
        .now = now,
        .leader_ready = a->cons_open && a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready,
        .lease_until = cons_lease_fence(&a->cons, now),
        .lease_pending = a->cons.lease_pending,
        .lease_submitted = a->cons.lease_submitted,
        .writable = pg_may_accept_writes(&a->pg),
        .pg_busy = pg_busy(&a->pg),
        .postmaster = pid > 0,
        .pid = pid,
        .primary_running = o->state == HA_PG_RUNNING && !o->in_recovery,
        .recorded_primary = strcmp(a->cons.state.primary.name, a->conf.name) == 0,
        .target_gone = a->fm.fencing && !proc_alive(a->fence_pid),
        .op_name = pg_op_name(a->pg.op),
    };
    if (a->vip_open) {
        w.vip_open = true;
        w.vip_held = vip_is_held(&a->vip);
        /* A claim takes a probe over: the fence may ask for one while it runs. */
        w.vip_busy = vip_busy(&a->vip) && !vip_probing(&a->vip);
        w.vip_renew_ms = vip_renew_interval_ms(&a->conf.vip);
        w.vip_probe_due = vip_probe_due(&a->vip) && w.leader_ready &&
                          a->lead_acting_term == a->cons.term;
    }
    const struct fence_exec x = {
        .data = a,
        .log = fence_log,
        .lease_renew_now = fence_renew_now,
        .pg_signal = fence_pg_signal,
        .pg_target = fence_pg_target,
        .watchdog = fence_watchdog,
        .vip = fence_vip,
    };
    fence_step(&a->fence, &a->fm, &w, &x, unfenced);
    if (a->vip_open && (!a->fm.lease_ok || !w.recorded_primary)) {
        /* What a probe showed stands only under the lease it was taken under. */
        vip_probe_forget(&a->vip);
        a->vip_probe_answered = false;
    }
    return true;
}

static void guard_restart(struct agent *a);

static void guard_restart_closed(struct guard *g)
{
    struct agent *a = (struct agent *)((char *)g - offsetof(struct agent, guard));
    a->guard_restarting = false;
    a->guard_open = false;
    if (a->phase == AGENT_PHASE_STOPPING) {
        maybe_exit(a);
        return;
    }
    guard_restart(a);
}

/* Starts the replacement; on failure the fence tick tries again a second later. */
static void guard_restart(struct agent *a)
{
    char errmsg[RPG_ERRMSG_SIZE];
    if (guard_start(&a->guard, a->loop, a->conf.path, errmsg) != 0) {
        log_error("guard not restarted (trying again): %s", errmsg);
        a->guard_lost = true;
        return;
    }
    a->guard_lost = false;
    a->guard_open = true;
    log_info("guard restarted");
}

/* A guard that died is replaced, at most once a second: until then nothing fences this node if
 * the agent dies too. */
static void guard_replace(struct agent *a, rpg_msec now)
{
    if (a->guard_restarting || a->phase != AGENT_PHASE_RUNNING ||
        (a->guard_restarted_at != 0 && now - a->guard_restarted_at < GUARD_RESTART_MS)) {
        return;
    }
    a->guard_restarting = true;
    a->guard_restarted_at = now;
    guard_close(&a->guard, guard_restart_closed);
}

static void fence_tick(struct agent *a)
{
    bool unfenced = false;
    if (!fence_tick_inner(a, &unfenced)) {
        return;
    }
    rpg_msec now = uv_now(a->loop);
    if (a->guard_open && !a->guard_restarting && !guard_set(&a->guard, unfenced)) {
        guard_replace(a, now);
    } else if (a->guard_lost && a->phase == AGENT_PHASE_RUNNING &&
               now - a->guard_restarted_at >= GUARD_RESTART_MS) {
        a->guard_restarted_at = now;
        guard_restart(a);
    }
}

static void on_fence_timer(uv_timer_t *t)
{
    LOOPWATCH_SPAN("fence tick", fence_tick(t->data));
}

static int start_fencing(struct agent *a, char *errmsg)
{
    fence_timing_init(&a->fence, a->conf.raft.election_timeout_ms);
    watchdog_init(&a->watchdog, &a->conf.watchdog);
    a->watchdog_ok = true;
    if (a->conf.watchdog.mode == CONF_WATCHDOG_REQUIRED &&
        watchdog_check(&a->watchdog, errmsg) != 0) {
        return RPG_ECONFIG;
    }
    if (a->conf.has_vip) {
        int rv = vip_init(&a->vip, a->loop, &a->conf.vip, errmsg);
        if (rv != 0) {
            return rv;
        }
        a->vip_open = true;
    }
    if (a->conf.has_postgresql) {
        int rv = guard_start(&a->guard, a->loop, a->conf.path, errmsg);
        if (rv != 0) {
            return rv;
        }
        a->guard_open = true;
    }
    uv_timer_init(a->loop, &a->fence_timer);
    a->fence_timer.data = a;
    a->fence_timer_open = true;
    uv_timer_start(&a->fence_timer, on_fence_timer, TIMING_FENCE_TICK_MS, TIMING_FENCE_TICK_MS);
    return 0;
}

/* ---- PostgreSQL under the core (the real I/O side of struct core_io) -------------------- */

#define SHUTDOWN_STOP_BOUND_MS 10000

static void ha_schedule(struct agent *a, unsigned delay_ms);

static void action_done(struct agent *a, int rc, const char *msg)
{
    core_action_done(&a->core, rc, msg, cons_uv_clock_ms());
    if (a->phase == AGENT_PHASE_RUNNING) {
        ha_schedule(a, 0);
    }
}

static void shutdown_stop_pg(struct agent *a);

/* on_reload after each pg_ctl reload the agent ran (follow, synchronous set, parameters). */
static void reload_callback(struct agent *a)
{
    if (a->pg.n_reloads == a->reloads_seen) {
        return;
    }
    a->reloads_seen = a->pg.n_reloads;
    if (a->callbacks_open) {
        callbacks_fire(&a->callbacks, CALLBACK_ON_RELOAD,
                       a->pg.obs.state == HA_PG_RUNNING && !a->pg.obs.in_recovery ? "primary"
                                                                                  : "replica");
    }
}

/* Callbacks follow the server as observed: at once, not at the next HA tick (a new primary's
 * on_role_change is what points pgbouncer's clients at it). */
static void on_pg_observed(struct pg *p, void *data)
{
    struct agent *a = data;
    if (a->phase != AGENT_PHASE_RUNNING || !a->callbacks_open) {
        return;
    }
    callbacks_observe(&a->callbacks, p->obs.state != HA_PG_UNKNOWN, p->obs.state == HA_PG_RUNNING,
                      p->obs.in_recovery);
}

static void on_pg_done(struct pg *p, int rc, const char *msg, void *data)
{
    (void)p;
    struct agent *a = data;
    reload_callback(a);
    if (!a->stopping_pg) {
        action_done(a, rc, msg);
    }
    if (a->stop_pg_when_idle) {
        a->stop_pg_when_idle = false;
        shutdown_stop_pg(a);
    }
}

static void on_submit_done(void *data, int rc, const char *msg)
{
    action_done(data, rc, msg);
}

/* The upstream for following target: its PostgreSQL address as it reports it, and the slot
 * named after this member. */
static int upstream_of(struct agent *a, const char *target, struct pg_upstream *up, char *errmsg)
{
    memset(up, 0, sizeof *up);
    const struct peer_status *p = peers_get(&a->peers, target);
    if (p == NULL || p->pg_address[0] == '\0') {
        return rpg_err(errmsg, RPG_ENOTFOUND, "no postgresql address known for %s", target);
    }
    snprintf(up->name, sizeof up->name, "%s", target);
    snprintf(up->address, sizeof up->address, "%s", p->pg_address);
    const struct fsm_member *self = fsm_state_member(&a->cons.state, a->conf.name);
    up->slot_id = self != NULL ? self->id : 0;
    return 0;
}

static int busy_err(int rv, char *errmsg)
{
    return rv == RPG_EBUSY ? rpg_err(errmsg, rv, "another postgresql operation is running") : rv;
}

/* Before a server that may accept writes exists (a bootstrap, a start as primary, a promotion):
 * the guard hears of it and the watchdog is armed now, not at the next fence tick, so that an
 * agent that stops in between still has its node fenced (raftpg_sim, agent-stop-primary). */
static void may_write_soon(struct agent *a)
{
    if (a->guard_open) {
        guard_set(&a->guard, true);
    }
    watchdog_tick(a, true, true);
}

/* A server about to be written a configuration and (re)started or re-pointed gets the replicated
 * parameters in force now, not those of the last reload: a standby must not start with less of
 * a cluster-wide setting than its primary runs. Not while an operation runs (its write is done
 * or to come with what it has; params_tick catches up). */
static void params_for_start(struct agent *a)
{
    const struct fsm_state *s = &a->cons.state;
    if (s->initialized && !pg_busy(&a->pg)) {
        pg_params_store(&a->pg, s->config.params, s->config.n_params, s->config.hba,
                        s->config.n_hba);
    }
}

static int io_pg_bootstrap(void *data, char *errmsg)
{
    struct agent *a = data;
    may_write_soon(a);
    params_for_start(a);
    return busy_err(pg_bootstrap(&a->pg, on_pg_done, a), errmsg);
}

static int io_pg_start(void *data, bool standby, const char *target, char *errmsg)
{
    struct agent *a = data;
    struct pg_upstream up;
    if (!standby) {
        may_write_soon(a);
    }
    params_for_start(a);
    if (target[0] == '\0') {
        return busy_err(pg_start(&a->pg, standby, NULL, on_pg_done, a), errmsg);
    }
    int rv = upstream_of(a, target, &up, errmsg);
    return rv != 0 ? rv : busy_err(pg_start(&a->pg, standby, &up, on_pg_done, a), errmsg);
}

static int io_pg_stop(void *data, unsigned bound_ms, char *errmsg)
{
    struct agent *a = data;
    return busy_err(pg_stop(&a->pg, bound_ms, on_pg_done, a), errmsg);
}

static int io_pg_promote(void *data, uint32_t timeline, char *errmsg)
{
    struct agent *a = data;
    may_write_soon(a);
    return busy_err(pg_promote(&a->pg, timeline, on_pg_done, a), errmsg);
}

static int io_pg_checkpoint(void *data, char *errmsg)
{
    struct agent *a = data;
    return busy_err(pg_checkpoint(&a->pg, on_pg_done, a), errmsg);
}

static int io_pg_clone(void *data, const char *target, bool remove_first, char *errmsg)
{
    struct agent *a = data;
    struct pg_upstream up;
    int rv = upstream_of(a, target, &up, errmsg);
    if (rv != 0) {
        return rv;
    }
    params_for_start(a);
    rv = remove_first ? pg_reinit(&a->pg, &up, on_pg_done, a)
                      : pg_clone(&a->pg, &up, on_pg_done, a);
    return busy_err(rv, errmsg);
}

static int io_pg_rewind(void *data, const char *target, char *errmsg)
{
    struct agent *a = data;
    struct pg_upstream up;
    int rv = upstream_of(a, target, &up, errmsg);
    if (rv == 0) {
        params_for_start(a);
    }
    return rv != 0 ? rv : busy_err(pg_rewind(&a->pg, &up, on_pg_done, a), errmsg);
}

static int io_pg_follow(void *data, const char *target, char *errmsg)
{
    struct agent *a = data;
    struct pg_upstream up;
    int rv = upstream_of(a, target, &up, errmsg);
    if (rv == 0) {
        params_for_start(a);
    }
    return rv != 0 ? rv : busy_err(pg_follow(&a->pg, &up, on_pg_done, a), errmsg);
}

static int io_pg_sync_slots(void *data, const uint64_t *ids, unsigned n, char *errmsg)
{
    struct agent *a = data;
    return busy_err(pg_sync_slots(&a->pg, ids, n, on_pg_done, a), errmsg);
}

static int io_pg_set_sync(void *data, const char *names, const char *commit, char *errmsg)
{
    struct agent *a = data;
    return busy_err(pg_set_sync(&a->pg, names, commit, on_pg_done, a), errmsg);
}

static int io_raft_submit(void *data, const struct fsm_cmd *cmd, char *errmsg)
{
    struct agent *a = data;
    return cons_submit(&a->cons, cmd, on_submit_done, a, errmsg);
}

static int io_raft_transfer(void *data, uint64_t id, char *errmsg)
{
    struct agent *a = data;
    return cons_transfer(&a->cons, id, errmsg);
}

static void on_params_done(struct pg *p, int rc, const char *msg, void *data)
{
    struct agent *a = data;
    reload_callback(a);
    if (rc == 0) {
        log_info("dynamic parameters written (count=%u pg_hba_lines=%u)%s", p->n_params, p->n_hba,
                 pg_postmaster_pid(p) != 0 ? " and reloaded" : "");
    } else {
        log_error("dynamic parameters not applied: %s", msg != NULL ? msg : "");
        a->params_retry_at = cons_uv_clock_ms() + 5000;
    }
    if (a->stop_pg_when_idle) {
        a->stop_pg_when_idle = false;
        shutdown_stop_pg(a);
    }
}

/* The replicated PostgreSQL parameters: raftpg.conf rewritten and the server reloaded when they
 * change, between actions so that it never holds one up. Also in maintenance mode: a reload
 * neither starts, stops nor promotes. */
static void params_tick(struct agent *a)
{
    const struct fsm_state *s = &a->cons.state;
    if (!s->initialized || a->core.busy || pg_busy(&a->pg) || !a->pg.obs_valid ||
        !pg_params_stale(&a->pg, s->config.params, s->config.n_params, s->config.hba,
                         s->config.n_hba) ||
        (a->pg.params_failed && cons_uv_clock_ms() < a->params_retry_at)) {
        return;
    }
    int rv = pg_set_params(&a->pg, s->config.params, s->config.n_params, s->config.hba,
                           s->config.n_hba, on_params_done, a);
    if (rv != 0) {
        log_error("dynamic parameters not applied: %s", rpg_strerror(rv));
    }
}

/* primary_start_timeout's clock (ha_pg_track_down), on the observation itself so that /status
 * shows it. Logged when the count begins. */
static void track_primary_down(struct agent *a, bool counting)
{
    bool was_down = a->pg.obs.down;
    ha_pg_track_down(&a->pg.obs, counting, &a->pg_down, cons_uv_clock_ms());
    if (a->pg.obs.down && !was_down) {
        log_warning("postgresql does not run as a primary that accepts connections (%s): "
                    "another member takes over after primary_start_timeout (%u s)",
                    ha_pg_state_name(a->pg.obs.state), a->conf.primary_start_timeout_s);
    } else if (!a->pg.obs.down && was_down && a->pg.obs.state == HA_PG_RUNNING &&
               !a->pg.obs.in_recovery) {
        log_info("postgresql runs as a primary that accepts connections again");
    }
}

static void ha_tick(struct agent *a)
{
    if (a->phase != AGENT_PHASE_RUNNING || !a->conf.has_postgresql || !a->pg_open ||
        !a->cons_open) {
        return;
    }
    /* The lease is judged afresh before any decision: after a pause (SIGSTOP, a stalled VM) the
     * first thing this agent does is fence, never act on a lease it no longer holds. */
    fence_tick(a);
    /* Callbacks follow the server as observed, whatever this agent decides next. */
    const struct ha_pg *obs = &a->pg.obs;
    callbacks_observe(&a->callbacks, obs->state != HA_PG_UNKNOWN, obs->state == HA_PG_RUNNING,
                      obs->in_recovery);
    if (a->cons.diverged) {
        /* Its replicated state cannot be trusted: no decision, no record; the fence still runs
         * and leadership is handed away (cons_storage_tick). */
        track_primary_down(a, false); /* counted only once nothing holds the server */
        return;
    }
    if (a->identity_error[0] != '\0') {
        track_primary_down(a, false);
        /* Its state stopped when the cluster removed its id: acting on it would follow or
         * promote on a history it no longer receives. The fence still runs. */
        return;
    }
    bool paused = a->cons.state.initialized && a->cons.state.paused;
    if (paused != a->maintenance) {
        a->maintenance = paused;
        snprintf(a->pause_primary, sizeof a->pause_primary, "%s", a->cons.state.primary.name);
        log_info("maintenance mode %s: %s", paused ? "on" : "off",
                 paused ? "no failover, no start, stop, promotion or re-point of postgresql; the "
                          "fence still runs"
                        : "decisions resume");
    }
    if (switchover_holds(a) || reinit_holds(a) || restart_holds(a)) {
        /* Its primary is being stopped and handed over: restarting it now would undo that. */
        track_primary_down(a, false); /* counted only once nothing holds the server */
        return;
    }
    params_tick(a);
    unsigned allowed =
        paused ? failover_paused_allows(a, a->pause_primary) | switchover_paused_allows(a) : 0;
    if (core_paused(&a->core, &a->cons.state, allowed)) {
        /* The operator owns PostgreSQL now. Only what keeps two primaries apart still acts: the
         * lease, the fence and the VIP (fence_tick above). */
        track_primary_down(a, false); /* counted only once nothing holds the server */
        return;
    }
    if (a->fm.frozen) {
        /* The soft layer holds: the lease comes back (resume, nothing to decide) or ends (the
         * hard layer stops the server); a decision now would act on a server that cannot. */
        track_primary_down(a, false); /* counted only once nothing holds the server */
        return;
    }
    history_tick(a);
    schedule_tick(a);
    restart_schedule_tick(a);
    struct core_view v;
    memset(&v, 0, sizeof v);
    v.now = cons_uv_clock_ms();
    v.state = &a->cons.state;
    /* Acting as primary needs the lease, and a new leader also waits until the previous one
     * has surely fenced (DESIGN.md rule 3): lead_gate. */
    /* Every member runs the same watchdog mode: with one, the old primary's node may still be
     * counting down to its reset. */
    rpg_msec wd_ms =
        watchdog_promote_wait_ms(&a->conf.watchdog, a->fence.lease_ms + a->fence.margin_ms);
    struct lead_in lin = {
        .cons = &a->cons,
        .self = a->conf.name,
        .peers = a->peers_open ? a->peers.book.results : NULL,
        .n_peers = a->peers_open ? a->peers.book.n_results : 0,
        .lease_ok = a->fm.lease_ok,
        .watchdog_ok = a->watchdog_ok,
        .watchdog_ms = wd_ms,
        .now = v.now,
    };
    bool poll_now = false;
    v.leader = lead_gate(&a->fence, &a->lead, &lin, &poll_now, fence_log, a);
    v.raft_leader = a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready;
    a->lead_acting_term = v.leader ? a->cons.term : 0;
    if (poll_now && a->peers_open) {
        /* The early end counts only reports asked for from now. */
        peers_poll_now(&a->peers);
    }
    v.state_current = cons_state_current(&a->cons);
    v.term = a->cons.term;
    v.pg_ready = a->pg.obs_valid && !pg_busy(&a->pg) && a->pg.obs_epoch == a->pg.epoch;
    /* Maintenance mode's operator-granted failover leaves the server to the operator. */
    bool down_counted = v.leader && !paused && a->cons.state.initialized &&
                        strcmp(a->cons.state.primary.name, a->conf.name) == 0 &&
                        a->cons.state.primary.term == a->cons.term;
    track_primary_down(a, down_counted);
    v.primary_start_timeout_ms = (rpg_msec)a->conf.primary_start_timeout_s * 1000;
    v.pg = a->pg.obs;
    v.pg.start_timed_out = restart_start_timed_out(a);
    v.peers = a->peers.book.results;
    v.n_peers = a->peers.book.n_results;

    /* Synchronous replication: the settings in force, what the server runs with, its standbys
     * and who is tagged nosync. */
    const struct fsm_state *s = &a->cons.state;
    struct sync_settings in_force;
    sync_settings_in_force(s, a->conf.sync.mode, a->conf.sync.node_count, a->conf.sync.commit,
                           &in_force);
    v.sync_mode = in_force.mode;
    sync_max_lag_in_force(s, a->conf.max_lag.set, a->conf.max_lag.bytes, &v.max_lag_set,
                          &v.max_lag);
    v.lag_waived_for = failover_permit_held(a) ? a->conf.name : NULL;
    v.sync_k = in_force.k;
    v.sync_commit = in_force.commit;
    bool observed = a->pg.obs.state == HA_PG_RUNNING && !a->pg.obs.in_recovery;
    v.sync_configured = observed ? a->pg.sync_seen : NULL;
    v.sync_commit_written = a->pg.sync_commit;
    struct quorum_replica replicas[FSM_MEMBERS_MAX];
    for (unsigned i = 0; i < a->pg.n_replicas && i < FSM_MEMBERS_MAX; i++) {
        snprintf(replicas[i].name, sizeof replicas[i].name, "%s", a->pg.replicas[i].name);
        replicas[i].streaming = strcmp(a->pg.replicas[i].state, "streaming") == 0;
        replicas[i].flush_position = a->pg.replicas[i].flush_position;
    }
    v.replicas = replicas;
    v.n_replicas = a->pg.n_replicas < FSM_MEMBERS_MAX ? a->pg.n_replicas : FSM_MEMBERS_MAX;
    const char *nosync[FSM_MEMBERS_MAX];
    unsigned n_nosync = 0;
    if (a->conf.tags.nosync) {
        nosync[n_nosync++] = a->conf.name;
    }
    for (unsigned i = 0; i < a->peers.book.n_results && n_nosync < FSM_MEMBERS_MAX; i++) {
        if (a->peers.book.results[i].nosync) {
            nosync[n_nosync++] = a->peers.book.results[i].name;
        }
    }
    v.nosync = nosync;
    v.n_nosync = n_nosync;
    v.removing = a->removing[0] != '\0' ? a->removing : NULL;
    v.transfers_failed = a->cons.n_transfers_failed;
    /* Maintenance mode: only a failover the operator asked for, and the re-point to it. */
    v.allowed = allowed;
    rpg_msec leading = a->core.leader_since;
    if (core_tick(&a->core, &v) && a->core.running == HA_ACT_TRANSFER && v.pg.down &&
        v.pg.down_ms >= v.primary_start_timeout_ms) {
        a->n_start_timeouts++;
    }
    /* The core trusts only reports asked for once it acts as leader, after the previous lease
     * and fence surely ended: the round asked for when Raft leadership came is too early. */
    if (leading == 0 && a->core.leader_since != 0 && a->peers_open) {
        peers_poll_now(&a->peers);
    }
}

static void on_ha_timer(uv_timer_t *t)
{
    LOOPWATCH_SPAN("ha tick", ha_tick(t->data));
}

static void ha_schedule(struct agent *a, unsigned delay_ms)
{
    if (a->ha_timer_open && a->phase == AGENT_PHASE_RUNNING) {
        uv_timer_start(&a->ha_timer, on_ha_timer, delay_ms, TIMING_HA_TICK_MS);
    }
}

static int start_pg(struct agent *a, char *errmsg)
{
    if (!a->conf.has_postgresql) {
        return 0;
    }
    static const struct core_io io_template = {
        .pg_bootstrap = io_pg_bootstrap,
        .pg_start = io_pg_start,
        .pg_stop = io_pg_stop,
        .pg_promote = io_pg_promote,
        .pg_checkpoint = io_pg_checkpoint,
        .pg_clone = io_pg_clone,
        .pg_rewind = io_pg_rewind,
        .pg_follow = io_pg_follow,
        .pg_sync_slots = io_pg_sync_slots,
        .pg_set_sync = io_pg_set_sync,
        .raft_submit = io_raft_submit,
        .raft_transfer = io_raft_transfer,
    };
    a->io = io_template;
    a->io.data = a;
    core_init(&a->core, &a->io, a->conf.name, a->conf.tags.nofailover,
              a->conf.tags.failover_priority);
    snprintf(a->core.pg_address, sizeof a->core.pg_address, "%s",
             a->conf.postgresql.connect_address);
    a->core.no_pg_rewind = !a->conf.postgresql.use_pg_rewind;
    int rv = pg_init(&a->pg, a->loop, &a->conf, a->conf.name, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->pg_open = true;
    callbacks_init(&a->callbacks, a->loop, &a->conf);
    a->callbacks_open = true;
    a->pg.observed_cb = on_pg_observed;
    a->pg.observed_data = a;
    rv = start_fencing(a, errmsg);
    if (rv != 0) {
        return rv;
    }
    uv_timer_init(a->loop, &a->ha_timer);
    a->ha_timer.data = a;
    a->ha_timer_open = true;
    ha_schedule(a, TIMING_HA_TICK_MS);
    return 0;
}

/* ---- systemd (Type=notify, WatchdogSec=) -------------------------------------------------- */

static void on_notify_timer(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

/* Tells systemd the agent is up, and pings its watchdog at half the interval when one is set.
 * Without NOTIFY_SOCKET both are no-ops. */
static void notify_start(struct agent *a)
{
    sd_notify(0, "READY=1");
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uv_timer_init(a->loop, &a->notify_timer);
        a->notify_timer.data = a;
        a->notify_timer_open = true;
        uv_timer_start(&a->notify_timer, on_notify_timer, 0, usec / 2000);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;
    log_info("received signal %d, shutting down", signum);
    agent_stop(a, 0);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    char applied[512], restart[1024], errmsg[RPG_ERRMSG_SIZE];
    /* reload_run logs the outcome either way. */
    (void)reload_run(s->data, applied, sizeof applied, restart, sizeof restart, errmsg);
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
    uv_signal_init(loop, &a->sig_hup);
    a->sig_hup.data = a;
    uv_signal_start(&a->sig_hup, on_sighup, SIGHUP);
    /* main blocks both until now; one that came meanwhile is delivered to the handlers. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    uv_timer_init(loop, &a->join_timer);
    a->join_timer.data = a;

    /* Find out who we are before opening any port: a foreign data directory stops here. */
    uint64_t id = 0;
    int rv = cons_identity_read(a->conf.raft.data_dir, a->conf.scope, a->conf.name, &id, errmsg);
    if (rv != 0 && rv != RPG_ENOTFOUND) {
        return rv;
    }
    bool has_state = false;
    if (rv == 0) {
        rv = cons_has_raft_state(a->conf.raft.data_dir, &has_state, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    a->raft_fresh = !has_state; /* answered on the API, which starts next */
    rv = conf_secret_read(&a->conf, false, false, a->secret, errmsg);
    a->has_secret = rv == 0;
    if (rv == 0) {
        rv = conf_secret_read(&a->conf, true, false, a->secret_previous, errmsg);
        a->has_secret_previous = rv == 0;
    }
    if (rv != 0 && rv != RPG_ENOTFOUND) {
        return rv;
    }
    if (sodium_init() < 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot initialise libsodium");
    }
    struct stat dir_st;
    if (stat(a->conf.raft.data_dir, &dir_st) == 0) {
        /* Refused here, before any lookup: a directory that cannot hold the log (or would load
         * it wrongly) is the first thing the operator must hear about. */
        size_t segment_size = 0;
        uint64_t free_bytes = 0;
        rv = cons_storage_check(a->conf.raft.data_dir, &segment_size, &free_bytes, errmsg);
        if (rv != 0) {
            return rv;
        }
    }

    /* With TLS the members' APIs all speak HTTPS: the agent asks them so, verifying them with
     * ctl.cacert or restapi.cafile and presenting ctl.certfile (Patroni's choice of keys). */
    bool tls = a->conf.restapi.certfile[0] != '\0';
    rv = http_client_set_tls(
        tls, a->conf.ctl.cacert[0] != '\0' ? a->conf.ctl.cacert : a->conf.restapi.cafile, false,
        errmsg);
    if (rv == 0) {
        rv = http_client_set_cert(a->conf.ctl.certfile, a->conf.ctl.keyfile,
                                  a->conf.ctl.keyfile_password, errmsg);
    }
    if (rv == 0) {
        const char *crl = conf_client_crlfile(&a->conf);
        rv = http_client_set_crl(
            crl, a->conf.ctl.crlfile[0] != '\0' ? "ctl.crlfile" : "restapi.crlfile",
            a->conf.ctl.cacert[0] != '\0' ? a->conf.ctl.cacert : a->conf.restapi.cafile,
            a->conf.ctl.cacert[0] != '\0' ? "ctl.cacert" : "restapi.cafile", errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    if (tls) {
        rv = http_server_set_tls(&a->api, a->conf.restapi.certfile, a->conf.restapi.keyfile,
                                 a->conf.restapi.keyfile_password, errmsg);
        if (rv == 0) {
            rv = http_server_set_tls_priorities(&a->api, a->conf.restapi.ciphers, errmsg);
        }
        if (rv == 0) {
            static const enum http_client_cert modes[] = {
                [CONF_VERIFY_NONE] = HTTP_CLIENT_CERT_NONE,
                [CONF_VERIFY_OPTIONAL] = HTTP_CLIENT_CERT_OPTIONAL,
                [CONF_VERIFY_REQUIRED] = HTTP_CLIENT_CERT_REQUIRED,
            };
            rv = http_server_set_client_ca(&a->api, a->conf.restapi.cafile,
                                           modes[a->conf.restapi.verify_client], errmsg);
        }
        /* Without client certificates there is nothing for the server to check them against
         * (the clients may still use them, above). */
        if (rv == 0 && a->conf.restapi.crlfile[0] != '\0' &&
            a->conf.restapi.verify_client != CONF_VERIFY_NONE) {
            rv = http_server_set_crl(&a->api, a->conf.restapi.crlfile, "restapi.crlfile",
                                     a->conf.restapi.cafile, "restapi.cafile", errmsg);
        }
        if (rv != 0) {
            return rv;
        }
    }
    /* Patroni's order: the http headers, then over TLS the https ones, which replace a header
     * of the same name. */
    for (unsigned i = 0; rv == 0 && i < a->conf.restapi_headers.n_http; i++) {
        rv = http_server_add_header(&a->api, a->conf.restapi_headers.http[i].key,
                                    a->conf.restapi_headers.http[i].value, errmsg);
    }
    for (unsigned i = 0; rv == 0 && tls && i < a->conf.restapi_headers.n_https; i++) {
        rv = http_server_add_header(&a->api, a->conf.restapi_headers.https[i].key,
                                    a->conf.restapi_headers.https[i].value, errmsg);
    }
    const char *server = conf_server_header(a->conf.restapi.server_tokens);
    if (rv == 0 && server != NULL) {
        rv = http_server_add_header(&a->api, "Server", server, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    a->api.max_conns = a->conf.restapi.max_connections;
    a->api.idle_timeout_ms = (uint64_t)a->conf.restapi.request_timeout_s * 1000;
    a->api.answered = api_answered;
    rv = http_server_start(&a->api, loop, a->conf.restapi.listen, api_handle, a, errmsg);
    if (rv != 0) {
        return rv;
    }
    a->api_open = true;
    rv = peers_start(&a->peers, loop, TIMING_PEER_POLL_INTERVAL_MS, TIMING_PEER_POLL_TIMEOUT_MS,
                     errmsg);
    if (rv != 0) {
        return rv;
    }
    a->peers.round_cb = on_peers_round;
    a->peers.data = a;
    /* README "Choosing the election timeout": a round trip above ET/6 starves the lease. */
    a->peers.election_timeout_ms = a->conf.raft.election_timeout_ms;
    a->peers.book.rtt_bound_ms = a->conf.raft.election_timeout_ms / 6;
    a->peers_open = true;
    lease_echo_start(a);
    update_peer_targets(a);
    log_info("api listening on %s", a->conf.restapi.listen);
    rv = start_pg(a, errmsg);
    if (rv != 0) {
        return rv;
    }

    if (!has_state) {
        /* No Raft state: the other members say whether to bootstrap a new cluster, to join one
         * (and under which id), or that this member lost its state. */
        snprintf(a->join_status, sizeof a->join_status, "looking up this member");
        log_info("no raft state: asking the other members whether the cluster exists (%s)",
                 conf_self(&a->conf) != NULL ? "initial member" : "joining");
        uv_timer_start(&a->join_timer, join_try, 0, 0);
        notify_start(a);
        return 0;
    }
    rv = start_raft(a, id, false, errmsg);
    if (rv == 0) {
        notify_start(a);
    }
    return rv;
}

static void maybe_exit(struct agent *a)
{
    if (a->cons_open || a->api_open || a->peers_open || a->pg_open || a->ha_timer_open ||
        a->fence_timer_open || a->vip_open || a->notify_timer_open || a->guard_open ||
        a->callbacks_open || a->switchover.timer_open || a->restart.timer_open ||
        a->echo.timer_open) {
        return;
    }
    uv_close((uv_handle_t *)&a->sig_int, NULL);
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    uv_close((uv_handle_t *)&a->sig_hup, NULL);
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

static void restart_timer_closed(uv_handle_t *h)
{
    struct agent *a = (struct agent *)((char *)h - offsetof(struct agent, restart.timer));
    a->restart.timer_open = false;
    maybe_exit(a);
}

static void switchover_timer_closed(uv_handle_t *h)
{
    struct agent *a = (struct agent *)((char *)h - offsetof(struct agent, switchover.timer));
    a->switchover.timer_open = false;
    maybe_exit(a);
}

static void callbacks_closed(struct callbacks *cb)
{
    struct agent *a = (struct agent *)((char *)cb - offsetof(struct agent, callbacks));
    a->callbacks_open = false;
    maybe_exit(a);
}

static void pg_closed(struct pg *p)
{
    struct agent *a = (struct agent *)((char *)p - offsetof(struct agent, pg));
    a->pg_open = false;
    maybe_exit(a);
}

static void ha_timer_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    a->ha_timer_open = false;
    maybe_exit(a);
}

static void close_rest(struct agent *a);

/* Shutdown stops PostgreSQL first: the other members promote only once Raft goes, and by then
 * this node no longer accepts writes. */
static void on_shutdown_pg_stopped(struct pg *p, int rc, const char *msg, void *data)
{
    (void)p;
    struct agent *a = data;
    if (rc != 0) {
        log_error("stopping postgresql at shutdown failed: %s", msg);
    } else {
        log_info("postgresql stopped");
    }
    close_rest(a);
}

#define STOP_SLOW_MS 15000

static void log_active_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_active(h) && !uv_is_closing(h)) {
        log_warning("shutdown: still active: %s handle %p", uv_handle_type_name(h->type),
                    (void *)h);
    }
}

/* A shutdown that does not finish says what it waits for (it never forces the exit). */
static void on_stop_slow(uv_timer_t *t)
{
    struct agent *a = t->data;
    log_warning("shutdown: not done after %d ms: open: cons=%d api=%d peers=%d pg=%d (op=%s) "
                "ha_timer=%d fence_timer=%d vip=%d notify=%d guard=%d",
                STOP_SLOW_MS, a->cons_open, a->api_open, a->peers_open, a->pg_open,
                a->pg_open ? pg_op_name(a->pg.op) : "-", a->ha_timer_open, a->fence_timer_open,
                a->vip_open, a->notify_timer_open, a->guard_open);
    uv_walk(a->loop, log_active_handle, NULL);
    if (a->cons_open && !a->api_open && !a->peers_open && !a->pg_open && !a->ha_timer_open &&
        !a->fence_timer_open && !a->vip_open && !a->notify_timer_open && !a->guard_open) {
        /* Everything that fences is done: PostgreSQL stopped, the VIP and the guard gone. Only
         * libraft's close waits, on a disk write whose completion never comes (libraft 0.15
         * after a SIGSTOP/SIGCONT of the agent, its AIO eventfd still polled). Its log is
         * crash-safe by design, so leaving now is what a crash at this point would be. */
        log_warning("shutdown: raft did not close within %d ms (libraft waits for a disk write): "
                    "exiting without it; its log is crash-safe",
                    STOP_SLOW_MS);
        fflush(NULL);
        _exit(a->exit_code);
    }
}

void agent_stop(struct agent *a, int exit_code)
{
    if (a->phase == AGENT_PHASE_STOPPING) {
        return;
    }
    a->phase = AGENT_PHASE_STOPPING;
    a->exit_code = exit_code;
    sd_notify(0, "STOPPING=1");
    uv_timer_stop(&a->join_timer);
    /* Unreferenced: it never keeps the loop alive, only reports a shutdown that hangs. */
    a->join_timer.data = a;
    uv_timer_start(&a->join_timer, on_stop_slow, STOP_SLOW_MS, 0);
    uv_unref((uv_handle_t *)&a->join_timer);
    if (a->ha_timer_open) {
        uv_timer_stop(&a->ha_timer);
    }
    if (a->fence_timer_open) {
        uv_timer_stop(&a->fence_timer);
    }
    if (a->fm.frozen) {
        pg_signal_server(a->frozen_pid, SIGCONT);
        a->fm.frozen = false;
    }
    if (a->pg_open && pg_busy(&a->pg)) {
        /* The operation may be starting the server or changing its settings: let it end (cut
         * short), then stop whatever runs, so no server outlives its agent. */
        log_info("shutdown: waiting for %s to end before stopping postgresql",
                 pg_op_name(a->pg.op));
        a->stop_pg_when_idle = true;
        pg_cancel(&a->pg);
        return;
    }
    shutdown_stop_pg(a);
}

static void shutdown_stop_pg(struct agent *a)
{
    if (a->pg_open && pg_postmaster_pid(&a->pg) > 0) {
        a->stopping_pg = true;
        log_info("stopping postgresql before shutdown");
        if (pg_stop(&a->pg, SHUTDOWN_STOP_BOUND_MS, on_shutdown_pg_stopped, a) == 0) {
            return;
        }
    }
    close_rest(a);
}

static void notify_timer_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    a->notify_timer_open = false;
    maybe_exit(a);
}

static void fence_timer_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    a->fence_timer_open = false;
    maybe_exit(a);
}

static void echo_timer_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    a->echo.timer_open = false;
    maybe_exit(a);
}

static void guard_closed(struct guard *g)
{
    struct agent *a = (struct agent *)((char *)g - offsetof(struct agent, guard));
    a->guard_open = false;
    maybe_exit(a);
}

static void vip_closed(struct vip *v)
{
    struct agent *a = (struct agent *)((char *)v - offsetof(struct agent, vip));
    a->vip_open = false;
    maybe_exit(a);
}

static void close_rest(struct agent *a)
{
    if (a->notify_timer_open && !uv_is_closing((uv_handle_t *)&a->notify_timer)) {
        uv_close((uv_handle_t *)&a->notify_timer, notify_timer_closed);
    }
    if (a->fence_timer_open && !uv_is_closing((uv_handle_t *)&a->fence_timer)) {
        uv_close((uv_handle_t *)&a->fence_timer, fence_timer_closed);
    }
    if (watchdog_is_armed(&a->watchdog)) {
        char errmsg[RPG_ERRMSG_SIZE];
        if (watchdog_disarm(&a->watchdog, errmsg) != 0) {
            log_error("watchdog: %s", errmsg);
        }
    }
    if (a->vip_open) {
        vip_close(&a->vip, vip_closed);
    }
    if (a->guard_open && !a->guard_restarting) {
        /* The guard reads the end of its pipe: unless the last word was "fenced", it fences. */
        guard_close(&a->guard, guard_closed);
    }
    if (a->ha_timer_open && !uv_is_closing((uv_handle_t *)&a->ha_timer)) {
        uv_close((uv_handle_t *)&a->ha_timer, ha_timer_closed);
    }
    if (a->pg_open) {
        pg_close(&a->pg, pg_closed);
    }
    bool any = a->cons_open || a->api_open || a->peers_open || a->pg_open || a->ha_timer_open ||
               a->fence_timer_open || a->vip_open || a->notify_timer_open || a->guard_open ||
               a->callbacks_open || a->switchover.timer_open || a->restart.timer_open ||
               a->echo.timer_open;
    lease_echo_close(a, echo_timer_closed);
    switchover_close(a, switchover_timer_closed);
    restart_close(a, restart_timer_closed);
    if (a->callbacks_open && !a->callbacks.closing) {
        callbacks_close(&a->callbacks, callbacks_closed);
    }
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
