#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raftpg/cons.h"
#include "raftpg/log.h"

#define IDENTITY_MAGIC "raftpg-identity 1"
#define RECONCILE_INTERVAL_MS 100

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

/* ---- identity ---------------------------------------------------------------------------- */

static int mkdir_p(const char *dir, char *errmsg)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        return rpg_err(errmsg, RPG_EINVAL, "data directory path too long: %s", dir);
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return rpg_err(errmsg, RPG_EIO, "create directory %s: %s", tmp, strerror(errno));
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return rpg_err(errmsg, RPG_EIO, "create directory %s: %s", tmp, strerror(errno));
    }
    return 0;
}

/* True when dir has entries other than "." and ".." (raft_uv probe files are removed by it). */
static int dir_has_entries(const char *dir, bool *has, char *errmsg)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            *has = false;
            return 0;
        }
        return rpg_err(errmsg, RPG_EIO, "open data directory %s: %s", dir, strerror(errno));
    }
    *has = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            *has = true;
            break;
        }
    }
    closedir(d);
    return 0;
}

int cons_identity_read(const char *dir, const char *scope, const char *name, uint64_t *id,
                       char *errmsg)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, CONS_IDENTITY_FILE);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno != ENOENT) {
            return rpg_err(errmsg, RPG_ECORRUPT, "cannot read %s: %s", path, strerror(errno));
        }
        bool has = false;
        int rv = dir_has_entries(dir, &has, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (has) {
            return rpg_err(errmsg, RPG_ECORRUPT,
                           "data directory %s is not empty but has no %s: it is foreign or "
                           "damaged; refusing to bootstrap over it (move it aside to start "
                           "afresh)",
                           dir, CONS_IDENTITY_FILE);
        }
        return rpg_err(errmsg, RPG_ENOTFOUND, "data directory %s is empty", dir);
    }
    char line[256];
    char got_scope[CONF_NAME_MAX] = "";
    char got_name[CONF_NAME_MAX] = "";
    uint64_t got_id = 0;
    bool magic = false;
    int lineno = 0;
    int rv = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (lineno == 1) {
            magic = strcmp(line, IDENTITY_MAGIC) == 0;
            if (!magic) {
                break;
            }
            continue;
        }
        if (strncmp(line, "scope=", 6) == 0 && n - 6 < sizeof got_scope) {
            memcpy(got_scope, line + 6, n - 6 + 1);
        } else if (strncmp(line, "name=", 5) == 0 && n - 5 < sizeof got_name) {
            memcpy(got_name, line + 5, n - 5 + 1);
        } else if (strncmp(line, "id=", 3) == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(line + 3, &end, 10);
            if (errno != 0 || end == line + 3 || *end != '\0' || v == 0) {
                rv = rpg_err(errmsg, RPG_ECORRUPT, "%s:%d: invalid id \"%s\"", path, lineno,
                             line + 3);
                break;
            }
            got_id = v;
        } else {
            rv = rpg_err(errmsg, RPG_ECORRUPT, "%s:%d: unexpected line \"%.64s\"", path, lineno,
                         line);
            break;
        }
    }
    fclose(f);
    if (rv != 0) {
        return rv;
    }
    if (!magic) {
        return rpg_err(errmsg, RPG_ECORRUPT, "%s: not a raftpg identity file", path);
    }
    if (got_scope[0] == '\0' || got_name[0] == '\0' || got_id == 0) {
        return rpg_err(errmsg, RPG_ECORRUPT, "%s: incomplete identity (scope, name and id needed)",
                       path);
    }
    if (strcmp(got_scope, scope) != 0 || strcmp(got_name, name) != 0) {
        return rpg_err(errmsg, RPG_ECORRUPT,
                       "data directory %s belongs to member \"%s\" of cluster \"%s\", not to "
                       "member \"%s\" of cluster \"%s\"",
                       dir, got_name, got_scope, name, scope);
    }
    *id = got_id;
    return 0;
}

int cons_identity_write(const char *dir, const char *scope, const char *name, uint64_t id,
                        char *errmsg)
{
    int rv = mkdir_p(dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/%s", dir, CONS_IDENTITY_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "create %s: %s", tmp, strerror(errno));
    }
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\nscope=%s\nname=%s\nid=%" PRIu64 "\n", IDENTITY_MAGIC,
                     scope, name, id);
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rv;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return rv;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

const char *cons_member_name(const struct cons *c, uint64_t id)
{
    const struct fsm_member *m = fsm_state_member_by_id(&c->state, id);
    if (m != NULL) {
        return m->name;
    }
    /* Before the state is initialised, bootstrap ids are positions in the configured list. */
    if (!c->state.initialized && id >= 1 && id <= c->conf->raft.n_members) {
        return c->conf->raft.members[id - 1].name;
    }
    return NULL;
}

/* ---- observation ------------------------------------------------------------------------- */

static const char *member_name_by_id(const struct cons *c, uint64_t id)
{
    const char *name = cons_member_name(c, id);
    return name != NULL ? name : "?";
}

static void barrier_cb(struct raft_barrier *req, int status);

/* 0.8 ET: the margin covers clock-rate drift between nodes and the loop's time granularity. */
static rpg_msec lease_length(const struct cons *c)
{
    return (rpg_msec)c->conf->raft.election_timeout_ms * 8 / 10;
}

static void monitor_cb(uv_check_t *h)
{
    struct cons *c = h->data;
    enum cons_role role = (enum cons_role)raft_state(&c->raft);
    raft_term term = c->raft.current_term;
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_leader(&c->raft, &leader_id, &leader_address);
    if (role == CONS_ROLE_FOLLOWER && leader_id != 0 && leader_id != c->id) {
        /* libraft restarts a follower's election timer on every message from its leader. */
        c->last_heard_leader = (rpg_msec)c->raft.election_timer_start;
    }
    if (role != CONS_ROLE_LEADER || term != c->lease_term) {
        c->lease_until = 0;
    }

    if (role == c->role && term == c->term && leader_id == c->leader_id) {
        return;
    }
    if (role != c->role || term != c->term) {
        log_set_context(term, cons_role_name(role));
    }
    if (role != c->role) {
        log_info("raft role %s -> %s (term=%llu leader=%s)", cons_role_name(c->role),
                 cons_role_name(role), (unsigned long long)term,
                 leader_id != 0 ? member_name_by_id(c, leader_id) : "none");
    } else if (leader_id != c->leader_id) {
        log_info("raft leader is now %s (term=%llu)",
                 leader_id != 0 ? member_name_by_id(c, leader_id) : "none",
                 (unsigned long long)term);
    }
    if (role != CONS_ROLE_LEADER || term != c->term) {
        c->leader_ready = false;
    }
    c->role = role;
    c->term = term;
    c->leader_id = leader_id;

    /* A new leader's log may end with entries of older terms whose commit it cannot know yet:
     * it acts only after its own barrier commits. */
    if (role == CONS_ROLE_LEADER && !c->leader_ready && !c->barrier_pending) {
        c->barrier_term = term;
        c->barrier_req.data = c;
        uv_update_time(c->loop);
        c->barrier_submitted = uv_now(c->loop);
        int rv = raft_barrier(&c->raft, &c->barrier_req, barrier_cb);
        if (rv == 0) {
            c->barrier_pending = true;
        } else {
            log_warning("leader barrier not submitted: %s", raft_strerror(rv));
        }
    }
    if (c->on_change != NULL) {
        c->on_change(c, c->on_change_data);
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct cons *c = req->data;
    c->barrier_pending = false;
    if (status != 0) {
        log_info("leader barrier failed: %s (term=%llu)", raft_strerror(status),
                 (unsigned long long)c->barrier_term);
        return;
    }
    if (raft_state(&c->raft) == RAFT_LEADER && c->raft.current_term == c->barrier_term) {
        c->leader_ready = true;
        c->lease_term = c->barrier_term;
        c->lease_until = c->barrier_submitted + lease_length(c);
        log_info("leader ready: own-term barrier committed (term=%llu index=%llu)",
                 (unsigned long long)c->barrier_term,
                 (unsigned long long)c->raft.commit_index);
        if (c->on_change != NULL) {
            c->on_change(c, c->on_change_data);
        }
    }
}

/* ---- command submission ------------------------------------------------------------------ */

struct submit_req {
    struct raft_apply req;
    struct cons *c;
    cons_submit_cb cb;
    void *data;
    enum fsm_cmd_type type;
};

static void submit_done(struct raft_apply *req, int status, void *result)
{
    struct submit_req *s = (struct submit_req *)req;
    struct cons *c = s->c;
    int rc = 0;
    char msg[RPG_ERRMSG_SIZE] = "";
    if (status != 0) {
        rc = status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST ? RPG_ENOTLEADER
                                                                       : RPG_ERAFT;
        snprintf(msg, sizeof msg, "%s not committed: %s", fsm_cmd_type_name(s->type),
                 raft_strerror(status));
    } else {
        rc = fsm_result_code(result);
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", c->fsm.last_error);
        }
    }
    if (s->cb != NULL) {
        s->cb(s->data, rc, msg);
    }
    free(s);
}

int cons_submit(struct cons *c, const struct fsm_cmd *cmd, cons_submit_cb cb, void *data,
                char *errmsg)
{
    if (!c->started || raft_state(&c->raft) != RAFT_LEADER || !c->leader_ready) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the ready raft leader");
    }
    struct fsm_cmd copy = *cmd;
    copy.term = c->raft.current_term;
    struct raft_buffer buf;
    int rv = fsm_cmd_encode(&copy, &buf, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct submit_req *s = calloc(1, sizeof *s);
    if (s == NULL) {
        raft_free(buf.base);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    s->c = c;
    s->cb = cb;
    s->data = data;
    s->type = cmd->type;
    rv = raft_apply(&c->raft, &s->req, &buf, 1, submit_done);
    if (rv != 0) {
        raft_free(buf.base);
        free(s);
        return rpg_err(errmsg, rv == RAFT_NOTLEADER ? RPG_ENOTLEADER : RPG_ERAFT,
                       "raft apply: %s", raft_strerror(rv));
    }
    return 0;
}

int cons_member_add(struct cons *c, const char *name, const char *raft_address,
                    const char *api_address, cons_submit_cb cb, void *data, char *errmsg)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_MEMBER_ADD;
    struct fsm_member *m = &cmd.u.member_add;
    m->id = c->state.next_id;
    if (snprintf(m->name, sizeof m->name, "%s", name) >= (int)sizeof m->name ||
        snprintf(m->raft_address, sizeof m->raft_address, "%s", raft_address) >=
            (int)sizeof m->raft_address ||
        snprintf(m->api_address, sizeof m->api_address, "%s", api_address) >=
            (int)sizeof m->api_address) {
        return rpg_err(errmsg, RPG_EINVAL, "member name or address too long");
    }
    m->failover_priority = 1;
    return cons_submit(c, &cmd, cb, data, errmsg);
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

/* The first ready leader of a fresh cluster records the configured initial members, checking
 * that they agree with the bootstrapped Raft configuration (ids are positions in the list). */
static void submit_init(struct cons *c)
{
    const struct conf *conf = c->conf;
    const struct raft_configuration *rc = &c->raft.configuration;
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_INIT;
    snprintf(cmd.u.init.scope, sizeof cmd.u.init.scope, "%s", conf->scope);
    if (conf->raft.n_members != rc->n) {
        log_error("refusing to initialise the cluster state: %u configured members but the raft "
                  "configuration has %u servers",
                  conf->raft.n_members, rc->n);
        return;
    }
    for (unsigned i = 0; i < conf->raft.n_members; i++) {
        const struct conf_member *cm = &conf->raft.members[i];
        bool found = false;
        for (unsigned j = 0; j < rc->n; j++) {
            if (rc->servers[j].id == i + 1 && strcmp(rc->servers[j].address, cm->raft) == 0) {
                found = true;
            }
        }
        if (!found) {
            log_error("refusing to initialise the cluster state: member %s (id=%u raft=%s) is "
                      "not in the raft configuration; do all members have the same "
                      "raft.members list?",
                      cm->name, i + 1, cm->raft);
            return;
        }
        struct fsm_member *m = &cmd.u.init.members[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "%s", cm->name);
        snprintf(m->raft_address, sizeof m->raft_address, "%s", cm->raft);
        snprintf(m->api_address, sizeof m->api_address, "%s", cm->api);
        m->failover_priority = 1;
    }
    cmd.u.init.n_members = conf->raft.n_members;
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
        log_info("dynamic configuration recorded from this member's file: synchronous_mode=%s "
                 "synchronous_node_count=%u synchronous_commit=%s",
                 conf_sync_mode_name(c->state.config.sync_mode), c->state.config.sync_node_count,
                 conf_sync_commit_name(c->state.config.sync_commit));
    }
}

/* The first ready leader records its file's defaults of the cluster-wide settings; from then on
 * the replicated values rule, and change only through the API. */
static void submit_config(struct cons *c)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SET_CONFIG;
    cmd.u.set_config.sync_mode = (uint8_t)c->conf->sync.mode;
    cmd.u.set_config.sync_node_count = c->conf->sync.node_count;
    cmd.u.set_config.sync_commit = (uint8_t)c->conf->sync.commit;
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(c, &cmd, config_done, c, errmsg) == 0) {
        c->config_pending = true;
    } else {
        log_warning("dynamic configuration not submitted: %s", errmsg);
    }
}

static void change_done(struct raft_change *req, int status)
{
    struct cons *c = req->data;
    c->change_pending = false;
    if (status != 0) {
        log_warning("membership change failed: %s: %s", c->change_what, raft_strerror(status));
    } else {
        log_info("membership change done: %s", c->change_what);
    }
}

static void transfer_done(struct raft_transfer *req)
{
    struct cons *c = req->data;
    c->transfer_pending = false;
    raft_id id = 0;
    const char *address = NULL;
    raft_leader(&c->raft, &id, &address);
    log_info("leadership transfer finished (leader=%s)", id != 0 ? member_name_by_id(c, id)
                                                                 : "none");
}

static const struct raft_server *config_server(const struct cons *c, uint64_t id)
{
    const struct raft_configuration *rc = &c->raft.configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].id == id) {
            return &rc->servers[i];
        }
    }
    return NULL;
}

static void reconcile(struct cons *c)
{
    if (raft_state(&c->raft) != RAFT_LEADER || !c->leader_ready) {
        return;
    }
    if (!c->state.initialized) {
        if (!c->init_pending && conf_self(c->conf) != NULL) {
            submit_init(c);
        }
        return;
    }
    if (!c->state.config.set && !c->config_pending) {
        submit_config(c);
    }
    if (c->change_pending || c->transfer_pending) {
        return;
    }
    int rv = 0;
    c->change_req.data = c;
    /* Remove what the configuration has and the member list no longer does, before any
     * addition: a removed member is stopped by its operator once the member list drops it, and
     * a promotion that cannot finish (a spare that is down never catches up) must not keep
     * those departed voters in the configuration, where they count against the majority. */
    const struct raft_configuration *rc = &c->raft.configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        raft_id id = rc->servers[i].id;
        if (fsm_state_member_by_id(&c->state, id) != NULL) {
            continue;
        }
        if (id == c->id) {
            /* A leader does not remove itself: it hands over and lets the next one do it. */
            c->transfer_req.data = c;
            rv = raft_transfer(&c->raft, &c->transfer_req, 0, transfer_done);
            if (rv == 0) {
                c->transfer_pending = true;
                log_info("handing leadership over before this member is removed");
            } else {
                log_warning("leadership transfer failed: %s", raft_strerror(rv));
            }
            return;
        }
        snprintf(c->change_what, sizeof c->change_what, "remove server id=%llu address=%s",
                 (unsigned long long)id, rc->servers[i].address);
        rv = raft_remove(&c->raft, &c->change_req, id, change_done);
        goto submitted;
    }
    /* Add what the member list has and the configuration lacks; promote spares. */
    for (unsigned i = 0; i < c->state.n_members; i++) {
        const struct fsm_member *m = &c->state.members[i];
        const struct raft_server *s = config_server(c, m->id);
        if (s == NULL) {
            snprintf(c->change_what, sizeof c->change_what, "add %s (id=%llu raft=%s) as spare",
                     m->name, (unsigned long long)m->id, m->raft_address);
            rv = raft_add(&c->raft, &c->change_req, m->id, m->raft_address, change_done);
        } else if (s->role != RAFT_VOTER) {
            snprintf(c->change_what, sizeof c->change_what,
                     "promote %s (id=%llu) to voter after catch-up", m->name,
                     (unsigned long long)m->id);
            rv = raft_assign(&c->raft, &c->change_req, m->id, RAFT_VOTER, change_done);
        } else {
            continue;
        }
        goto submitted;
    }
    return;

submitted:
    if (rv == 0) {
        c->change_pending = true;
        log_info("membership change started: %s", c->change_what);
    } else if (rv != RAFT_CANTCHANGE) {
        log_warning("membership change refused: %s: %s", c->change_what, raft_strerror(rv));
    }
}

int cons_transfer(struct cons *c, uint64_t id, char *errmsg)
{
    if (!c->started || raft_state(&c->raft) != RAFT_LEADER) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the raft leader");
    }
    if (c->transfer_pending) {
        return rpg_err(errmsg, RPG_EBUSY, "a leadership transfer is already in progress");
    }
    const struct raft_server *s = config_server(c, id);
    if (s == NULL || s->role != RAFT_VOTER) {
        return rpg_err(errmsg, RPG_EINVAL, "server id=%llu is not a voter",
                       (unsigned long long)id);
    }
    c->transfer_req.data = c;
    int rv = raft_transfer(&c->raft, &c->transfer_req, id, transfer_done);
    if (rv != 0) {
        return rpg_err(errmsg, RPG_ERAFT, "leadership transfer to %s: %s",
                       member_name_by_id(c, id), raft_strerror(rv));
    }
    c->transfer_pending = true;
    return 0;
}

static void reconcile_cb(uv_timer_t *t)
{
    reconcile(t->data);
}

static void lease_cb(struct raft_barrier *req, int status)
{
    struct cons *c = req->data;
    c->lease_pending = false;
    if (status != 0 || !c->running || raft_state(&c->raft) != RAFT_LEADER ||
        c->raft.current_term != c->lease_term) {
        return;
    }
    rpg_msec until = c->lease_submitted + lease_length(c);
    if (until > c->lease_until) {
        c->lease_until = until;
    }
}

static void lease_timer_cb(uv_timer_t *t)
{
    struct cons *c = t->data;
    if (!c->running || raft_state(&c->raft) != RAFT_LEADER || !c->leader_ready ||
        c->lease_pending) {
        return;
    }
    c->lease_req.data = c;
    uv_update_time(c->loop);
    c->lease_submitted = uv_now(c->loop);
    c->lease_term = c->raft.current_term;
    if (raft_barrier(&c->raft, &c->lease_req, lease_cb) == 0) {
        c->lease_pending = true;
    }
}

rpg_msec cons_lease_until(const struct cons *c)
{
    return c->running && c->role == CONS_ROLE_LEADER && c->leader_ready ? c->lease_until : 0;
}

static void start_timer_cb(uv_timer_t *t)
{
    struct cons *c = t->data;
    int rv = raft_start(&c->raft);
    if (rv != 0) {
        c->failed = true;
        rpg_err(c->error, rv == RAFT_CORRUPT ? RPG_ECORRUPT : RPG_ERAFT,
                "raft start (data directory %s): %s", c->conf->raft.data_dir,
                raft_errmsg(&c->raft));
        if (c->on_change != NULL) {
            c->on_change(c, c->on_change_data);
        }
        return;
    }
    c->running = true;
    uv_check_start(&c->monitor, monitor_cb);
    uv_timer_start(&c->reconcile_timer, reconcile_cb, RECONCILE_INTERVAL_MS,
                   RECONCILE_INTERVAL_MS);
    unsigned every = c->conf->raft.election_timeout_ms / 4;
    uv_timer_start(&c->lease_timer, lease_timer_cb, every, every > 0 ? every : 1);
}

static void raft_closed(struct raft *r);

/* ---- lifecycle --------------------------------------------------------------------------- */

int cons_start(struct cons *c, uv_loop_t *loop, const struct conf *conf, uint64_t id,
               cons_change_cb on_change, void *data, char *errmsg)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->conf = conf;
    c->id = id;
    c->on_change = on_change;
    c->on_change_data = data;
    fsm_state_init(&c->state);
    fsm_init(&c->fsm, &c->state);

    const char *dir = conf->raft.data_dir;
    int rv = mkdir_p(dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = raft_uv_tcp_init(&c->transport, loop);
    if (rv != 0) {
        return rpg_err(errmsg, RPG_ERAFT, "raft transport: %s", raft_strerror(rv));
    }
    rv = raft_uv_init(&c->io, loop, dir, &c->transport);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft storage %s: %s%s", dir, c->io.errmsg,
                strstr(c->io.errmsg, "probe") != NULL
                    ? " (the file system must support direct/async I/O; check "
                      "/proc/sys/fs/aio-max-nr)"
                    : "");
        raft_uv_tcp_close(&c->transport);
        return RPG_ERAFT;
    }
    /* A corrupt segment must stop the agent, not be renamed aside silently (RAFT-NOTES). */
    raft_uv_set_auto_recovery(&c->io, false);

    rv = raft_init(&c->raft, &c->io, &c->fsm.raft, id, conf->raft.listen);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft init: %s", raft_errmsg(&c->raft));
        raft_uv_close(&c->io);
        raft_uv_tcp_close(&c->transport);
        return RPG_ERAFT;
    }
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, conf->raft.election_timeout_ms);
    raft_set_heartbeat_timeout(&c->raft, conf->raft.heartbeat_timeout_ms);
    raft_set_pre_vote(&c->raft, conf->raft.pre_vote);
    raft_set_snapshot_threshold(&c->raft, 1024);
    raft_set_snapshot_trailing(&c->raft, 256);
    raft_set_max_catch_up_rounds(&c->raft, 10);
    raft_set_max_catch_up_round_duration(&c->raft, 5 * conf->raft.election_timeout_ms);

    int code = RPG_ERAFT;
    const struct conf_member *self = conf_self(conf);
    if (self != NULL) {
        struct raft_configuration configuration;
        raft_configuration_init(&configuration);
        for (unsigned i = 0; i < conf->raft.n_members && rv == 0; i++) {
            rv = raft_configuration_add(&configuration, i + 1, conf->raft.members[i].raft,
                                        RAFT_VOTER);
        }
        if (rv == 0) {
            rv = raft_bootstrap(&c->raft, &configuration);
            if (rv == 0) {
                log_info("bootstrapped raft with %u initial members", conf->raft.n_members);
            } else if (rv == RAFT_CANTBOOTSTRAP) {
                rv = 0; /* state already present: a restart, never bootstrap twice */
            }
        }
        raft_configuration_close(&configuration);
        if (rv != 0) {
            rpg_err(errmsg, RPG_ERAFT, "raft bootstrap: %s", raft_strerror(rv));
            goto err_close;
        }
    }
    c->started = true;
    c->started_at = uv_now(loop);

    uv_check_init(loop, &c->monitor);
    c->monitor.data = c;
    uv_timer_init(loop, &c->reconcile_timer);
    c->reconcile_timer.data = c;
    uv_timer_init(loop, &c->lease_timer);
    c->lease_timer.data = c;
    uv_timer_init(loop, &c->start_timer);
    c->start_timer.data = c;
    c->n_handles_open = 4;
    uv_timer_start(&c->start_timer, start_timer_cb, conf->raft.election_timeout_ms, 0);
    return 0;

err_close:
    /* raft_init succeeded, so raft must be closed through the loop before io is released. */
    c->started = true;
    raft_close(&c->raft, raft_closed);
    for (int i = 0; i < 1000 && c->started; i++) {
        uv_run(loop, UV_RUN_ONCE);
    }
    return code;
}

static void cons_finish(struct cons *c)
{
    if (c->n_handles_open == 0 && !c->started && c->close_cb != NULL) {
        void (*cb)(struct cons *) = c->close_cb;
        c->close_cb = NULL;
        cb(c);
    }
}

static void handle_closed(uv_handle_t *h)
{
    struct cons *c = h->data;
    c->n_handles_open--;
    cons_finish(c);
}

static void raft_closed(struct raft *r)
{
    struct cons *c = r->data;
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    c->started = false;
    cons_finish(c);
}

void cons_close(struct cons *c, void (*cb)(struct cons *c))
{
    c->close_cb = cb;
    if (c->n_handles_open > 0) {
        uv_close((uv_handle_t *)&c->monitor, handle_closed);
        uv_close((uv_handle_t *)&c->reconcile_timer, handle_closed);
        uv_close((uv_handle_t *)&c->lease_timer, handle_closed);
        uv_close((uv_handle_t *)&c->start_timer, handle_closed);
    }
    if (c->started) {
        raft_close(&c->raft, raft_closed);
    } else {
        cons_finish(c);
    }
}

/* ---- observations ------------------------------------------------------------------------ */

uint64_t cons_commit_index(const struct cons *c)
{
    return c->started ? c->raft.commit_index : 0;
}

uint64_t cons_applied_index(const struct cons *c)
{
    return c->started ? raft_last_applied((struct raft *)&c->raft) : 0;
}

bool cons_state_current(const struct cons *c)
{
    if (!c->started || !c->state.initialized) {
        return false;
    }
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader((struct raft *)&c->raft, &leader, &address);
    return leader != 0 && raft_last_applied((struct raft *)&c->raft) >= c->raft.commit_index;
}

uint64_t cons_last_index(const struct cons *c)
{
    return c->started ? raft_last_index((struct raft *)&c->raft) : 0;
}

bool cons_config_has(const struct cons *c, uint64_t id)
{
    return c->running && config_server(c, id) != NULL;
}

void cons_leader(const struct cons *c, uint64_t *id, const char **address)
{
    *id = 0;
    *address = NULL;
    if (c->started) {
        raft_id lid = 0;
        raft_leader((struct raft *)&c->raft, &lid, address);
        *id = lid;
    }
}

int cons_voting(const struct cons *c, uint64_t id)
{
    if (!c->started) {
        return CONS_VOTING_NONE;
    }
    const struct raft_server *s = config_server(c, id);
    return s != NULL ? s->role : CONS_VOTING_NONE;
}

unsigned cons_config_ids(const struct cons *c, uint64_t *ids, unsigned max)
{
    if (!c->started) {
        return 0;
    }
    const struct raft_configuration *rc = &c->raft.configuration;
    for (unsigned i = 0; i < rc->n && i < max; i++) {
        ids[i] = rc->servers[i].id;
    }
    return c->raft.configuration.n;
}
