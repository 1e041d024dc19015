/* Consensus logic on a libraft server (cons.h): the requests handed to libraft, the lifecycle,
 * leadership observation with the own-term barrier, command submission, leadership transfer and
 * membership reconciliation. The lease is in cons_lease.c, the write fence in cons_wal.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/conf.h"
#include "raftpg/cons.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/storage.h"

#include "cons_int.h"

const char *cons_role_name(enum cons_role role)
{
    switch (role) {
    case CONS_ROLE_UNAVAILABLE: return "unavailable";
    case CONS_ROLE_FOLLOWER: return "follower";
    case CONS_ROLE_CANDIDATE: return "candidate";
    case CONS_ROLE_LEADER: return "leader";
    }
    return "unknown";
}

const char *cons_voting_name(int voting)
{
    switch (voting) {
    case RAFT_VOTER: return "voter";
    case RAFT_STANDBY: return "standby";
    case RAFT_SPARE: return "spare";
    }
    return "none";
}

/* ---- requests ---------------------------------------------------------------------------- */

struct cons_req *cons_req_new(struct cons *c, enum cons_req_kind kind)
{
    struct cons_req *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    q->c = c;
    q->gen = c->gen;
    q->kind = kind;
    q->next = c->reqs;
    if (c->reqs != NULL) {
        c->reqs->prev = q;
    }
    c->reqs = q;
    /* Every libraft request type starts with the same data pointer. */
    q->u.apply.data = q;
    return q;
}

void cons_req_free(struct cons_req *q)
{
    struct cons *c = q->c;
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        c->reqs = q->next;
    }
    if (q->next != NULL) {
        q->next->prev = q->prev;
    }
    free(q);
}

/* The agent that made q is still the attached one. */
bool cons_req_current(const struct cons_req *q)
{
    return q->c->attached && q->c->gen == q->gen;
}

void cons_free_requests(struct cons *c)
{
    while (c->reqs != NULL) {
        cons_req_free(c->reqs);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

void cons_setup(struct cons *c)
{
    memset(c, 0, sizeof *c);
    fsm_state_init(&c->state);
    fsm_init(&c->fsm, &c->state);
}

void cons_attach(struct cons *c, struct raft *raft, raft_id id, const struct cons_params *params,
                 const struct cons_host *host)
{
    c->raft = raft;
    c->id = id;
    c->attached = true;
    c->running = false;
    c->gen++;
    c->params = *params;
    c->host = *host;
    c->role = CONS_ROLE_UNAVAILABLE;
    c->term = 0;
    c->leader_id = 0;
    c->leader_ready = false;
    c->barrier_pending = false;
    c->barrier_term = 0;
    c->barrier_submitted = 0;
    c->init_pending = false;
    c->config_pending = false;
    c->seen_pending = false;
    c->change_pending = false;
    c->change_what[0] = '\0';
    c->transfer_pending = false;
    c->lease_pending = false;
    c->lease_term = 0;
    c->lease_submitted = 0;
    c->lease_until = 0;
    /* The sequence goes on: an answer to a probe of an earlier attach matches none. */
    memset(c->echo.probes, 0, sizeof c->echo.probes);
    c->last_heard_leader = 0;
    c->candidate_since = 0;
    c->candidate_warned = 0;
    const char *dir = c->storage.dir;
    size_t segment_size = c->storage.segment_size;
    memset(&c->storage, 0, sizeof c->storage);
    c->storage.dir = dir;
    c->storage.segment_size = segment_size;
    c->diverged = false;
    c->write_confirmed = 0;
    c->storage_tick_at = 0;
    c->storage_stall_end = 0;
    c->stepdown_transfer_at = 0;
    c->n_stepdowns = 0;
    c->fsm.server = raft;
    c->failed = false;
    c->error[0] = '\0';
    c->started_at = c->host.now(c);
    /* A write passed down before the host's clock was there (host_now) has held the disk since
     * this attach at the earliest, as far as the storage bound can tell. */
    for (unsigned k = 0; k < c->wal.n_pending; k++) {
        if (c->wal.pending[k].at == 0) {
            c->wal.pending[k].at = c->started_at;
        }
    }
}

void cons_set_running(struct cons *c)
{
    c->running = true;
}

void cons_detach(struct cons *c)
{
    c->attached = false;
    c->running = false;
    c->gen++;
    c->leader_ready = false;
    c->lease_until = 0;
}

/* The host's clock, or 0 before the first cons_attach: cons_wal_wrap comes first (cons_uv.c
 * bootstraps in between), and nothing keeps libraft from writing or the probe from reporting in
 * that gap. */
rpg_msec cons_host_now(struct cons *c)
{
    return c->host.now != NULL ? c->host.now(c) : 0;
}

bool cons_live(const struct cons *c)
{
    return c->attached && c->running;
}

void cons_changed(struct cons *c)
{
    if (c->host.on_change != NULL) {
        c->host.on_change(c, c->host.data);
    }
}

const char *cons_member_name(const struct cons *c, uint64_t id)
{
    const struct fsm_member *m = fsm_state_member_by_id(&c->state, id);
    if (m != NULL) {
        return m->name;
    }
    if (!c->state.initialized) {
        for (unsigned i = 0; i < c->params.n_initial; i++) {
            if (c->params.initial[i].id == id) {
                return c->params.initial[i].name;
            }
        }
    }
    return NULL;
}

const char *cons_member_name_by_id(const struct cons *c, uint64_t id)
{
    const char *name = cons_member_name(c, id);
    return name != NULL ? name : "?";
}

/* ---- observation ------------------------------------------------------------------------- */

static void barrier_cb(struct raft_barrier *req, int status);

/* A candidate that never wins (a minority side, peers that refuse its pre-votes) leaves the
 * cluster without this voter and, if it was needed, without a leader: said every
 * CONS_CANDIDATE_WARN_ETS election timeouts while it lasts, and once when it ends. */
static void candidate_watch(struct cons *c, enum cons_role role, raft_term term)
{
    rpg_msec now = c->host.now(c);
    if (role == CONS_ROLE_CANDIDATE) {
        if (c->candidate_since == 0) {
            c->candidate_since = now != 0 ? now : 1;
            c->candidate_warned = 0;
        }
        rpg_msec every = (rpg_msec)CONS_CANDIDATE_WARN_ETS * c->params.election_timeout_ms;
        rpg_msec last = c->candidate_warned != 0 ? c->candidate_warned : c->candidate_since;
        if (now - last >= every) {
            c->candidate_warned = now;
            c->n_candidate_warnings++;
            log_warning("candidate for %llu ms without winning an election (term=%llu, election "
                        "timeout %u ms): no majority grants it a vote",
                        (unsigned long long)(now - c->candidate_since), (unsigned long long)term,
                        c->params.election_timeout_ms);
        }
    } else if (c->candidate_since != 0) {
        if (c->candidate_warned != 0) {
            log_info("no longer candidate after %llu ms: now %s (term=%llu)",
                     (unsigned long long)(now - c->candidate_since), cons_role_name(role),
                     (unsigned long long)term);
        }
        c->candidate_since = 0;
        c->candidate_warned = 0;
    }
}

rpg_msec cons_candidate_for(const struct cons *c, rpg_msec now)
{
    return c->candidate_since != 0 && now > c->candidate_since ? now - c->candidate_since : 0;
}

void cons_observe(struct cons *c)
{
    if (!cons_live(c)) {
        return;
    }
    enum cons_role role = (enum cons_role)raft_state(c->raft);
    raft_term term = c->raft->current_term;
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_leader(c->raft, &leader_id, &leader_address);
    if (role == CONS_ROLE_FOLLOWER && leader_id != 0 && leader_id != c->id) {
        /* libraft restarts a follower's election timer on every message from its leader. */
        c->last_heard_leader = c->host.raft_time(c, c->raft->election_timer_start);
    }
    if (role != CONS_ROLE_LEADER || term != c->lease_term) {
        c->lease_until = 0;
    }
    candidate_watch(c, role, term);
    if (c->fsm.restored) {
        /* A snapshot was restored and libraft has now set the applied index to its own. */
        fsm_sum_record(&c->fsm, raft_last_applied(c->raft));
        c->fsm.restored = false;
    }

    if (role == c->role && term == c->term && leader_id == c->leader_id) {
        return;
    }
    if (role != c->role || term != c->term) {
        log_set_context(term, cons_role_name(role));
    }
    if (role == CONS_ROLE_CANDIDATE && c->role == CONS_ROLE_FOLLOWER) {
        /* Why an election starts: the operator's first question after a failover. */
        rpg_msec now = c->host.now(c);
        if (c->leader_id != 0 && c->last_heard_leader != 0) {
            log_warning("no message from leader %s for %llu ms (election timeout %u ms): "
                        "starting an election",
                        cons_member_name_by_id(c, c->leader_id),
                        (unsigned long long)(now - c->last_heard_leader),
                        c->params.election_timeout_ms);
        } else {
            /* Again, without a leader since the last attempt: once is said above. */
            log_debug("no leader heard within the election timeout (%u ms): starting an "
                      "election",
                      c->params.election_timeout_ms);
        }
    }
    if (role != c->role) {
        log_info("raft role %s -> %s (term=%llu leader=%s)", cons_role_name(c->role),
                 cons_role_name(role), (unsigned long long)term,
                 leader_id != 0 ? cons_member_name_by_id(c, leader_id) : "none");
    } else if (leader_id != c->leader_id) {
        log_info("raft leader is now %s (term=%llu, was %s)",
                 leader_id != 0 ? cons_member_name_by_id(c, leader_id) : "none",
                 (unsigned long long)term,
                 c->leader_id != 0 ? cons_member_name_by_id(c, c->leader_id) : "none");
    }
    if (role != CONS_ROLE_LEADER || term != c->term) {
        c->leader_ready = false;
        c->stepdown_transfer_at = 0;
        /* A new leader has until the bound to confirm its first write. */
        c->write_confirmed = c->host.now(c);
    }
    c->role = role;
    c->term = term;
    c->leader_id = leader_id;

    /* A new leader's log may end with entries of older terms whose commit it cannot know yet:
     * it acts only after its own barrier commits. */
    if (role == CONS_ROLE_LEADER && !c->leader_ready && !c->barrier_pending) {
        struct cons_req *q = cons_req_new(c, REQ_BARRIER);
        if (q != NULL) {
            q->term = term;
            q->submitted = c->host.now(c);
            int rv = raft_barrier(c->raft, &q->u.barrier, barrier_cb);
            if (rv == 0) {
                c->barrier_pending = true;
                c->barrier_term = term;
                c->barrier_submitted = q->submitted;
            } else {
                cons_req_free(q);
                log_warning("leader barrier not submitted: %s", raft_strerror(rv));
            }
        }
    }
    cons_changed(c);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct cons_req *q = req->data;
    struct cons *c = q->c;
    if (!cons_req_current(q)) {
        cons_req_free(q);
        return;
    }
    raft_term term = q->term;
    cons_req_free(q);
    c->barrier_pending = false;
    cons_storage_raft_result(c, status, "own-term barrier");
    if (status != 0) {
        log_info("leader barrier failed: %s (term=%llu)", raft_strerror(status),
                 (unsigned long long)term);
        return;
    }
    if (cons_live(c) && raft_state(c->raft) == RAFT_LEADER && c->raft->current_term == term) {
        c->leader_ready = true;
        c->lease_term = term;
        c->lease_until = c->barrier_submitted + cons_lease_length(c);
        log_info("leader ready: own-term barrier committed (term=%llu index=%llu)",
                 (unsigned long long)term, (unsigned long long)c->raft->commit_index);
        cons_changed(c);
    }
}

/* ---- command submission ------------------------------------------------------------------ */

static void submit_done(struct raft_apply *req, int status, void *result)
{
    struct cons_req *q = req->data;
    struct cons *c = q->c;
    bool current = cons_req_current(q);
    cons_submit_cb cb = q->cb;
    void *data = q->data;
    enum fsm_cmd_type type = q->type;
    cons_req_free(q);
    if (!current) {
        return;
    }
    cons_storage_raft_result(c, status, fsm_cmd_type_name(type));
    if (cb == NULL) {
        return;
    }
    int rc = 0;
    char msg[RPG_ERRMSG_SIZE] = "";
    if (status != 0) {
        rc = status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST ? RPG_ENOTLEADER : RPG_ERAFT;
        snprintf(msg, sizeof msg, "%s not committed: %s", fsm_cmd_type_name(type),
                 raft_strerror(status));
    } else {
        rc = fsm_result_code(result);
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", c->fsm.last_error);
        }
    }
    cb(data, rc, msg);
}

int cons_submit(struct cons *c, const struct fsm_cmd *cmd, cons_submit_cb cb, void *data,
                char *errmsg)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the ready raft leader");
    }
    struct fsm_cmd copy = *cmd;
    copy.term = c->raft->current_term;
    struct raft_buffer buf;
    int rv = fsm_cmd_encode(&copy, &buf, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct cons_req *q = cons_req_new(c, REQ_APPLY);
    if (q == NULL) {
        raft_free(buf.base);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    q->cb = cb;
    q->data = data;
    q->type = cmd->type;
    rv = raft_apply(c->raft, &q->u.apply, &buf, 1, submit_done);
    if (rv != 0) {
        raft_free(buf.base);
        cons_req_free(q);
        return rpg_err(errmsg, rv == RAFT_NOTLEADER ? RPG_ENOTLEADER : RPG_ERAFT, "raft apply: %s",
                       raft_strerror(rv));
    }
    return 0;
}

int cons_member_add_cmd(const struct cons *c, const char *name, const char *raft_address,
                        const char *api_address, struct fsm_cmd *cmd, char *errmsg)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_MEMBER_ADD;
    struct fsm_member *m = &cmd->u.member_add;
    m->id = c->state.next_id;
    if (snprintf(m->name, sizeof m->name, "%s", name) >= (int)sizeof m->name ||
        snprintf(m->raft_address, sizeof m->raft_address, "%s", raft_address) >=
            (int)sizeof m->raft_address ||
        snprintf(m->api_address, sizeof m->api_address, "%s", api_address) >=
            (int)sizeof m->api_address) {
        return rpg_err(errmsg, RPG_EINVAL, "member name or address too long");
    }
    m->failover_priority = 1;
    return 0;
}

int cons_member_add(struct cons *c, const char *name, const char *raft_address,
                    const char *api_address, cons_submit_cb cb, void *data, char *errmsg)
{
    struct fsm_cmd cmd;
    int rv = cons_member_add_cmd(c, name, raft_address, api_address, &cmd, errmsg);
    return rv != 0 ? rv : cons_submit(c, &cmd, cb, data, errmsg);
}

int cons_member_remove(struct cons *c, const char *name, cons_submit_cb cb, void *data,
                       char *errmsg)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_MEMBER_REMOVE;
    if (snprintf(cmd.u.member_remove.name, sizeof cmd.u.member_remove.name, "%s", name) >=
        (int)sizeof cmd.u.member_remove.name) {
        return rpg_err(errmsg, RPG_EINVAL, "member name too long");
    }
    return cons_submit(c, &cmd, cb, data, errmsg);
}

/* ---- membership reconciliation (leader only) --------------------------------------------- */

static void init_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->init_pending = false;
    if (rc != 0) {
        log_error("cluster state initialisation failed: %s", msg);
    } else {
        log_info("cluster state initialised: scope=%s members=%u", c->state.scope,
                 c->state.n_members);
    }
}

static const struct raft_server *config_server(const struct cons *c, uint64_t id)
{
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].id == id) {
            return &rc->servers[i];
        }
    }
    return NULL;
}

/* The first ready leader of a fresh cluster records the initial members, checking that they
 * agree with the bootstrapped Raft configuration. */
static void submit_init(struct cons *c)
{
    const struct cons_params *p = &c->params;
    const struct raft_configuration *rc = &c->raft->configuration;
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_INIT;
    snprintf(cmd.u.init.scope, sizeof cmd.u.init.scope, "%s", p->scope);
    if (p->n_initial != rc->n) {
        log_error("refusing to initialise the cluster state: %u configured members but the raft "
                  "configuration has %u servers",
                  p->n_initial, rc->n);
        return;
    }
    for (unsigned i = 0; i < p->n_initial; i++) {
        const struct fsm_member *m = &p->initial[i];
        const struct raft_server *s = config_server(c, m->id);
        if (s == NULL || strcmp(s->address, m->raft_address) != 0) {
            log_error("refusing to initialise the cluster state: member %s (id=%llu raft=%s) is "
                      "not in the raft configuration; do all members have the same "
                      "raft.members list?",
                      m->name, (unsigned long long)m->id, m->raft_address);
            return;
        }
        cmd.u.init.members[i] = *m;
    }
    cmd.u.init.n_members = p->n_initial;
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(c, &cmd, init_done, c, errmsg) == 0) {
        c->init_pending = true;
    } else {
        log_warning("cluster state initialisation not submitted: %s", errmsg);
    }
}

static void config_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->config_pending = false;
    if (rc != 0) {
        log_warning("recording the dynamic configuration failed: %s", msg);
    } else {
        char lag[32] = "none";
        if (c->state.config.max_lag_set) {
            snprintf(lag, sizeof lag, "%llu", (unsigned long long)c->state.config.max_lag);
        }
        log_info("dynamic configuration recorded from this member's file: synchronous_mode=%s "
                 "synchronous_node_count=%u synchronous_commit=%s maximum_lag_on_failover=%s "
                 "parameters=%u pg_hba_lines=%u",
                 conf_sync_mode_name(c->state.config.sync_mode), c->state.config.sync_node_count,
                 conf_sync_commit_name(c->state.config.sync_commit), lag, c->state.config.n_params,
                 c->state.config.n_hba);
    }
}

/* The first ready leader records its file's defaults of the cluster-wide settings; from then on
 * the replicated values rule, and change only through the API. A file with
 * maximum_lag_on_failover records it too, in the entry that carries it (SET_DYNAMIC_LAG, state
 * version 7, with bootstrap.dcs's parameters and pg_hba lines); with only parameters or lines,
 * SET_DYNAMIC (version 6); with neither, the entry every release reads. */
static void submit_config(struct cons *c)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    if (c->params.max_lag_set || c->params.n_params > 0 || c->params.n_hba > 0) {
        cmd.type = c->params.max_lag_set ? FSM_CMD_SET_DYNAMIC_LAG : FSM_CMD_SET_DYNAMIC;
        cmd.u.set_dynamic.n_params = c->params.n_params;
        memcpy(cmd.u.set_dynamic.params, c->params.params, sizeof cmd.u.set_dynamic.params);
        cmd.u.set_dynamic.n_hba = c->params.n_hba;
        memcpy(cmd.u.set_dynamic.hba, c->params.hba, sizeof cmd.u.set_dynamic.hba);
        cmd.u.set_dynamic.sync_mode = c->params.sync_mode;
        cmd.u.set_dynamic.sync_node_count = c->params.sync_node_count;
        cmd.u.set_dynamic.sync_commit = c->params.sync_commit;
        cmd.u.set_dynamic.max_lag_set = c->params.max_lag_set;
        cmd.u.set_dynamic.max_lag = c->params.max_lag;
    } else {
        cmd.type = FSM_CMD_SET_CONFIG;
        cmd.u.set_config.sync_mode = c->params.sync_mode;
        cmd.u.set_config.sync_node_count = c->params.sync_node_count;
        cmd.u.set_config.sync_commit = c->params.sync_commit;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(c, &cmd, config_done, c, errmsg) == 0) {
        c->config_pending = true;
    } else {
        log_warning("dynamic configuration not submitted: %s", errmsg);
    }
}

static void seen_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->seen_pending = false;
    if (rc != 0) {
        log_warning("recording a member's raft state failed: %s", msg);
    }
}

/* Whether server id's log holds entries past the bootstrap configuration (index 1), as far as
 * this leader knows: it could have counted towards a commit. */
static bool holds_entries(const struct cons *c, raft_id id)
{
    if (id == c->id) {
        return raft_last_index(c->raft) >= 2;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].id == id) {
            return c->raft->leader_state.progress[i].match_index >= 2;
        }
    }
    return false;
}

/* Records, one member at a time, that a member's Raft log holds replicated entries: should it
 * come back with an empty data directory, it has lost its log and vote and is refused (agent.c). */
static void submit_seen(struct cons *c)
{
    for (unsigned i = 0; i < c->state.n_members; i++) {
        const struct fsm_member *m = &c->state.members[i];
        if ((m->tags & FSM_TAG_RAFT_STATE) != 0 || !holds_entries(c, m->id)) {
            continue;
        }
        struct fsm_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_MEMBER_SEEN;
        cmd.u.member_seen.id = m->id;
        char errmsg[RPG_ERRMSG_SIZE];
        if (cons_submit(c, &cmd, seen_done, c, errmsg) == 0) {
            c->seen_pending = true;
            log_info("recording that %s holds raft state", m->name);
        } else {
            log_warning("raft state of %s not recorded: %s", m->name, errmsg);
        }
        return;
    }
}

/* Frees a completed request; its cons when the agent that made it is still attached, else NULL. */
static struct cons *req_end(struct cons_req *q)
{
    struct cons *c = cons_req_current(q) ? q->c : NULL;
    cons_req_free(q);
    return c;
}

static void change_done(struct raft_change *req, int status)
{
    struct cons *c = req_end(req->data);
    if (c == NULL) {
        return;
    }
    c->change_pending = false;
    if (status != 0) {
        log_warning("membership change failed: %s: %s", c->change_what, raft_strerror(status));
    } else {
        log_info("membership change done: %s", c->change_what);
    }
}

static void transfer_done(struct raft_transfer *req)
{
    /* Not freed here: libraft completes the transfer when the new leader is known, which can be
     * before the TimeoutNow message, sent from inside this same request (req->send), has been
     * written; its send callback then reads the request. A finished transfer request stays on
     * the list (a few hundred bytes per transfer) until cons_free_requests, after the server is
     * closed and every callback has run. */
    struct cons_req *q = req->data;
    struct cons *c = cons_req_current(q) ? q->c : NULL;
    q->done = true;
    if (c == NULL) {
        return;
    }
    c->transfer_pending = false;
    raft_id id = 0;
    const char *address = NULL;
    raft_leader(c->raft, &id, &address);
    if (id == c->id) {
        c->n_transfers_failed++;
    }
    log_info("leadership transfer finished (leader=%s)",
             id != 0 ? cons_member_name_by_id(c, id) : "none");
}

int cons_start_transfer(struct cons *c, uint64_t id)
{
    struct cons_req *q = cons_req_new(c, REQ_TRANSFER);
    if (q == NULL) {
        return RAFT_NOMEM;
    }
    int rv = raft_transfer(c->raft, &q->u.transfer, id, transfer_done);
    if (rv != 0) {
        cons_req_free(q);
        return rv;
    }
    c->transfer_pending = true;
    return 0;
}

void cons_reconcile(struct cons *c)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
        return;
    }
    if (!c->state.initialized) {
        if (!c->init_pending && c->params.initial_self) {
            submit_init(c);
        }
        return;
    }
    if (!c->state.config.set && !c->config_pending) {
        submit_config(c);
    }
    if (!c->seen_pending) {
        submit_seen(c);
    }
    /* No configuration change from a leader that cannot persist: it hands leadership over
     * (cons_storage_tick). A change submitted just before its storage is known to fail meets
     * libraft 0.15's error path for a refused write of the change's entry (wal_hold_change:
     * the fence holds that write rather than refuse it, so the path is not taken). */
    if (c->change_pending || c->transfer_pending || c->storage.failed) {
        return;
    }
    struct cons_req *q = cons_req_new(c, REQ_CHANGE);
    if (q == NULL) {
        return;
    }
    int rv = 0;
    /* Remove what the configuration has and the member list no longer does, before any
     * addition: a removed member is stopped by its operator once the member list drops it, and
     * a promotion that cannot finish (a spare that is down never catches up) must not keep
     * those departed voters in the configuration, where they count against the majority. */
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        raft_id id = rc->servers[i].id;
        if (fsm_state_member_by_id(&c->state, id) != NULL) {
            continue;
        }
        cons_req_free(q);
        if (id == c->id) {
            /* A leader does not remove itself: it hands over and lets the next one do it. */
            rv = cons_start_transfer(c, 0);
            if (rv == 0) {
                log_info("handing leadership over before this member is removed");
            } else {
                log_warning("leadership transfer failed: %s", raft_strerror(rv));
            }
            return;
        }
        q = cons_req_new(c, REQ_CHANGE);
        if (q == NULL) {
            return;
        }
        snprintf(c->change_what, sizeof c->change_what, "remove server id=%llu address=%s",
                 (unsigned long long)id, rc->servers[i].address);
        rv = raft_remove(c->raft, &q->u.change, id, change_done);
        goto submitted;
    }
    /* Add what the member list has and the configuration lacks, all of it before any promotion:
     * a spare that never catches up (its agent is gone) must not keep the next member out. */
    for (unsigned i = 0; i < c->state.n_members; i++) {
        const struct fsm_member *m = &c->state.members[i];
        if (config_server(c, m->id) == NULL) {
            snprintf(c->change_what, sizeof c->change_what, "add %s (id=%llu raft=%s) as spare",
                     m->name, (unsigned long long)m->id, m->raft_address);
            rv = raft_add(c->raft, &q->u.change, m->id, m->raft_address, change_done);
            goto submitted;
        }
    }
    /* Promote spares, each in turn after the last one tried, so that one that cannot catch up
     * does not hold back the others. */
    for (unsigned n = 0; n < c->state.n_members; n++) {
        unsigned i = (c->promote_next + n) % c->state.n_members;
        const struct fsm_member *m = &c->state.members[i];
        const struct raft_server *s = config_server(c, m->id);
        if (s == NULL || s->role == RAFT_VOTER) {
            continue;
        }
        c->promote_next = i + 1;
        snprintf(c->change_what, sizeof c->change_what,
                 "promote %s (id=%llu) to voter after catch-up", m->name,
                 (unsigned long long)m->id);
        rv = raft_assign(c->raft, &q->u.change, m->id, RAFT_VOTER, change_done);
        goto submitted;
    }
    cons_req_free(q);
    return;

submitted:
    if (rv == 0) {
        c->change_pending = true;
        log_info("membership change started: %s", c->change_what);
        return;
    }
    cons_req_free(q);
    if (rv == RAFT_IOERR || rv == RAFT_NOSPACE) {
        /* Only if the fence could not hold the write (out of memory): libraft 0.15 freed the
         * configuration it had installed (wal_hold_change), closing this server would free it
         * again, so Raft is not restarted in this process. */
        c->wal.config_freed = true;
        log_error("membership change refused by the raft log: %s: %s; libraft 0.15 keeps a "
                  "freed configuration after this, raft will not be restarted in this process",
                  c->change_what, raft_strerror(rv));
    } else if (rv != RAFT_CANTCHANGE) {
        log_warning("membership change refused: %s: %s", c->change_what, raft_strerror(rv));
    }
}

int cons_transfer(struct cons *c, uint64_t id, char *errmsg)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the raft leader");
    }
    if (c->transfer_pending) {
        return rpg_err(errmsg, RPG_EBUSY, "a leadership transfer is already in progress");
    }
    const struct raft_server *s = config_server(c, id);
    if (s == NULL || s->role != RAFT_VOTER) {
        return rpg_err(errmsg, RPG_EINVAL, "server id=%llu is not a voter", (unsigned long long)id);
    }
    int rv = cons_start_transfer(c, id);
    if (rv != 0) {
        return rpg_err(errmsg, RPG_ERAFT, "leadership transfer to %s: %s",
                       cons_member_name_by_id(c, id), raft_strerror(rv));
    }
    return 0;
}

/* ---- observations ------------------------------------------------------------------------ */

uint64_t cons_commit_index(const struct cons *c)
{
    return c->attached ? c->raft->commit_index : 0;
}

uint64_t cons_applied_index(const struct cons *c)
{
    return c->attached ? raft_last_applied(c->raft) : 0;
}

bool cons_state_current(const struct cons *c)
{
    if (!c->attached || !c->state.initialized) {
        return false;
    }
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(c->raft, &leader, &address);
    return leader != 0 && raft_last_applied(c->raft) >= c->raft->commit_index;
}

uint64_t cons_last_index(const struct cons *c)
{
    return c->attached ? raft_last_index(c->raft) : 0;
}

bool cons_config_has(const struct cons *c, uint64_t id)
{
    return cons_live(c) && config_server(c, id) != NULL;
}

void cons_leader(const struct cons *c, uint64_t *id, const char **address)
{
    *id = 0;
    *address = NULL;
    if (c->attached) {
        raft_id lid = 0;
        raft_leader(c->raft, &lid, address);
        *id = lid;
    }
}

int cons_voting(const struct cons *c, uint64_t id)
{
    if (!c->attached) {
        return CONS_VOTING_NONE;
    }
    const struct raft_server *s = config_server(c, id);
    return s != NULL ? s->role : CONS_VOTING_NONE;
}

unsigned cons_config_ids(const struct cons *c, uint64_t *ids, unsigned max)
{
    if (!c->attached) {
        return 0;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n && i < max; i++) {
        ids[i] = rc->servers[i].id;
    }
    return rc->n;
}
