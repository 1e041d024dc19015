/* The configuration's checks across keys, run once the whole file is read: the defaults that
 * depend on other keys, bootstrap.dcs folded into the keys it shares with the rest of the file,
 * the bootstrap method, TLS and authentication pairs, callbacks, secrets and the VIP. */
#include "raftpg/conf.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "raftpg/fsm_state.h"
#include "raftpg/pg.h"

#include "conf_int.h"

/* A connect address defaults to the listen address, which is useless to other nodes when it is
 * the wildcard. */
static int default_connect(struct parser *p, char *connect, const char *listen, const char *section)
{
    char key[64], listen_key[64];

    if (connect[0] != '\0') {
        return 0;
    }
    if (conf_is_wildcard(listen)) {
        snprintf(key, sizeof key, "%s.connect_address", section);
        snprintf(listen_key, sizeof listen_key, "%s.listen", section);
        return conf_fail_at(p, conf_where_first(p, listen_key, section), key,
                            "required when %s is 0.0.0.0 (listen=%s)", listen_key, listen);
    }
    memcpy(connect, listen, CONF_ADDR_MAX);
    return 0;
}

/* Releasing the VIP deletes its address from the interface: were it a member's own address, a
 * fence would cut that member off the network. */
static int check_vip(struct parser *p)
{
    const struct conf *c = p->c;
    char host[16], key[64];

    for (unsigned i = 0; i < c->raft.n_members; i++) {
        const struct conf_member *m = &c->raft.members[i];
        const char *addrs[2] = {m->raft, m->api};
        for (int j = 0; j < 2; j++) {
            conf_parse_addr(addrs[j], host, NULL);
            if (strcmp(host, c->vip.address.host) != 0) {
                continue;
            }
            snprintf(key, sizeof key, "raft.members[%u].%s", i, j == 0 ? "raft" : "api");
            return conf_fail_at(p, conf_where_first(p, "vip.address", NULL), "vip.address",
                                "must not be a member's own address (address=%s %s=%s)",
                                c->vip.address.text, key, addrs[j]);
        }
    }
    const struct {
        const char *key, *addr;
    } own[] = {
        {"restapi.listen", c->restapi.listen},
        {"restapi.connect_address", c->restapi.connect_address},
        {"postgresql.listen", c->postgresql.listen},
        {"postgresql.connect_address", c->postgresql.connect_address},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        /* Only the primary holds the VIP: a standby could not bind it, and a fence would take
         * the member's API or PostgreSQL off the network. */
        if (own[i].addr[0] == '\0') {
            continue;
        }
        conf_parse_addr(own[i].addr, host, NULL);
        if (strcmp(host, c->vip.address.host) == 0) {
            return conf_fail_at(p, conf_where_first(p, "vip.address", NULL), "vip.address",
                                "must not be this member's own address (address=%s %s=%s)",
                                c->vip.address.text, own[i].key, own[i].addr);
        }
    }
    return 0;
}

/* bootstrap.method names one of the custom method sections (or initdb); post_init is
 * post_bootstrap's older name, and one file gives at most one of the two. */
static int finish_bootstrap(struct parser *p)
{
    struct conf *c = p->c;
    struct mark m;
    if (conf_where_find(p, "bootstrap.post_bootstrap", NULL) &&
        conf_where_find(p, "bootstrap.post_init", &m)) {
        return conf_fail_at(p, m, "bootstrap.post_init",
                            "given with bootstrap.post_bootstrap, which is the same key: keep one");
    }
    if (c->bootstrap.post_init[0] != '\0') {
        memcpy(c->bootstrap.post_bootstrap, c->bootstrap.post_init,
               sizeof c->bootstrap.post_bootstrap);
    }
    const char *method = c->bootstrap.method;
    bool found = method[0] == '\0' || strcmp(method, "initdb") == 0;
    for (unsigned i = 0; i < c->bootstrap.n_methods; i++) {
        const struct conf_boot_method *bm = &c->bootstrap.methods[i];
        char key[96];
        snprintf(key, sizeof key, "bootstrap.%s", bm->name);
        if (strcmp(bm->name, method) != 0) {
            /* Patroni reads only the section bootstrap.method names. */
            if (c->n_warnings < CONF_WARNINGS_MAX) {
                m = conf_where_first(p, key, "bootstrap");
                rpg_fmt(c->warnings[c->n_warnings], sizeof c->warnings[0],
                        "%s:%lu:%lu: %s: ignored: bootstrap.method names %s", p->file, m.line,
                        m.col, key, method[0] != '\0' ? method : "no custom method (initdb)");
            }
            c->n_warnings++;
            continue;
        }
        found = true;
        c->bootstrap.custom = true;
        c->bootstrap.custom_index = i;
        if (bm->keep_existing_recovery_conf) {
            char kkey[128];
            snprintf(kkey, sizeof kkey, "%s.keep_existing_recovery_conf", key);
            return conf_fail_at(p, conf_where_first(p, kkey, key), kkey,
                                "true is not supported: raftpg starts the directory the command "
                                "leaves as a primary, without recovery settings (have the command "
                                "recover it to its target and promote it)");
        }
    }
    if (!found) {
        return conf_fail_at(p, conf_where_first(p, "bootstrap.method", "bootstrap"),
                            "bootstrap.method",
                            "names no custom method: add a section bootstrap.%s with a command, or "
                            "use initdb",
                            method);
    }
    return 0;
}

/* A value of a key bootstrap.dcs shares with the rest of the file, as the file writes it. */
static const char *dcs_value_text(enum key_type type, const void *f, const char *const *names,
                                  char *buf, size_t n)
{
    switch (type) {
    case KEY_ENUM: return names[*(const int *)f];
    case KEY_UINT: snprintf(buf, n, "%u", *(const unsigned *)f); return buf;
    case KEY_BOOL: return *(const bool *)f ? "true" : "false";
    case KEY_MAX_LAG: {
        const struct conf_max_lag *ml = f;
        if (!ml->set) {
            return "null";
        }
        snprintf(buf, n, "%llu", (unsigned long long)ml->bytes);
        return buf;
    }
    default: break;
    }
    assert(!"no text for this key type");
    return "?";
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct conf_kv *)a)->key, ((const struct conf_kv *)b)->key);
}

/* bootstrap.dcs: Patroni writes it into the DCS once, when it initialises the cluster; raftpg's
 * first leader records it in the Raft log the same way. A key that raftpg also takes elsewhere in
 * the file is folded into that key, and refused when the two places disagree. */
static int finish_dcs(struct parser *p)
{
    static const struct {
        const char *top, *dcs;
        enum key_type type;
        size_t top_off, dcs_off;
        const char *const *names;
    } pairs[] = {
        {"synchronous_mode", "bootstrap.dcs.synchronous_mode", KEY_ENUM,
         offsetof(struct conf, sync.mode), offsetof(struct conf, dcs.sync_mode),
         conf_sync_mode_names},
        {"synchronous_node_count", "bootstrap.dcs.synchronous_node_count", KEY_UINT,
         offsetof(struct conf, sync.node_count), offsetof(struct conf, dcs.sync_node_count), NULL},
        {"synchronous_commit", "bootstrap.dcs.synchronous_commit", KEY_ENUM,
         offsetof(struct conf, sync.commit), offsetof(struct conf, dcs.sync_commit),
         conf_sync_commit_names},
        {"maximum_lag_on_failover", "bootstrap.dcs.maximum_lag_on_failover", KEY_MAX_LAG,
         offsetof(struct conf, max_lag), offsetof(struct conf, dcs.max_lag), NULL},
        /* The top level may use the old name too. */
        {"master_start_timeout", "bootstrap.dcs.primary_start_timeout", KEY_UINT,
         offsetof(struct conf, primary_start_timeout_s),
         offsetof(struct conf, dcs.primary_start_timeout_s), NULL},
        {"master_start_timeout", "bootstrap.dcs.master_start_timeout", KEY_UINT,
         offsetof(struct conf, primary_start_timeout_s),
         offsetof(struct conf, dcs.primary_start_timeout_s), NULL},
        {"primary_start_timeout", "bootstrap.dcs.primary_start_timeout", KEY_UINT,
         offsetof(struct conf, primary_start_timeout_s),
         offsetof(struct conf, dcs.primary_start_timeout_s), NULL},
        {"primary_start_timeout", "bootstrap.dcs.master_start_timeout", KEY_UINT,
         offsetof(struct conf, primary_start_timeout_s),
         offsetof(struct conf, dcs.primary_start_timeout_s), NULL},
        {"postgresql.use_pg_rewind", "bootstrap.dcs.postgresql.use_pg_rewind", KEY_BOOL,
         offsetof(struct conf, postgresql.use_pg_rewind), offsetof(struct conf, dcs.use_pg_rewind),
         NULL},
        {"postgresql.remove_data_directory_on_rewind_failure",
         "bootstrap.dcs.postgresql.remove_data_directory_on_rewind_failure", KEY_BOOL,
         offsetof(struct conf, postgresql.remove_data_directory_on_rewind_failure),
         offsetof(struct conf, dcs.remove_data_directory_on_rewind_failure), NULL},
        {"postgresql.remove_data_directory_on_diverged_timelines",
         "bootstrap.dcs.postgresql.remove_data_directory_on_diverged_timelines", KEY_BOOL,
         offsetof(struct conf, postgresql.remove_data_directory_on_diverged_timelines),
         offsetof(struct conf, dcs.remove_data_directory_on_diverged_timelines), NULL},
    };
    static const size_t sizes[] = {[KEY_ENUM] = sizeof(int),
                                   [KEY_UINT] = sizeof(unsigned),
                                   [KEY_BOOL] = sizeof(bool),
                                   [KEY_MAX_LAG] = sizeof(struct conf_max_lag)};
    struct conf *c = p->c;
    struct mark dm, tm;

    /* Both names would write one value: the later would win unseen. */
    if (conf_where_find(p, "bootstrap.dcs.primary_start_timeout", NULL) &&
        conf_where_find(p, "bootstrap.dcs.master_start_timeout", &dm)) {
        return conf_fail_at(p, dm, "bootstrap.dcs.master_start_timeout",
                            "is primary_start_timeout's old name: set only one of them");
    }

    /* Patroni's synchronous_mode_strict: only with a synchronous mode on. */
    if (conf_where_find(p, "bootstrap.dcs.synchronous_mode_strict", &dm) && c->dcs.sync_strict) {
        if (!conf_where_find(p, "bootstrap.dcs.synchronous_mode", NULL) || c->dcs.sync_mode == 0) {
            return conf_fail_at(p, dm, "bootstrap.dcs.synchronous_mode_strict",
                                "requires bootstrap.dcs.synchronous_mode on (or quorum): strict "
                                "means nothing with asynchronous replication");
        }
        c->dcs.sync_mode = 2;
    }
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (!conf_where_find(p, pairs[i].dcs, &dm)) {
            continue;
        }
        void *top = (char *)c + pairs[i].top_off;
        const void *dcs = (const char *)c + pairs[i].dcs_off;
        size_t size = sizes[pairs[i].type];
        bool same = size == sizeof(struct conf_max_lag)
                        ? ((const struct conf_max_lag *)top)->set ==
                                  ((const struct conf_max_lag *)dcs)->set &&
                              ((const struct conf_max_lag *)top)->bytes ==
                                  ((const struct conf_max_lag *)dcs)->bytes
                        : memcmp(top, dcs, size) == 0;
        if (conf_where_find(p, pairs[i].top, &tm) && !same) {
            char a[32], b[32];
            return conf_fail_at(p, dm, pairs[i].dcs,
                                "%s differs from %s at %s:%lu:%lu (%s): give it in one place",
                                dcs_value_text(pairs[i].type, dcs, pairs[i].names, a, sizeof a),
                                pairs[i].top, p->file, tm.line, tm.col,
                                dcs_value_text(pairs[i].type, top, pairs[i].names, b, sizeof b));
        }
    }
    /* Copied once every pair is compared: two pairs may share a field (the old and new names of
     * one key). */
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (conf_where_find(p, pairs[i].dcs, NULL)) {
            memcpy((char *)c + pairs[i].top_off, (const char *)c + pairs[i].dcs_off,
                   sizes[pairs[i].type]);
        }
    }

    /* The parameters as PATCH /config takes them: folded to lower case (PostgreSQL's names),
     * each checked, raftpg's own refused; sorted, as the replicated state keeps them. */
    struct conf_kv *kv = c->dcs.parameters;
    char q[48];
    if (c->dcs.n_parameters > FSM_PARAMS_MAX) {
        return conf_fail_at(p, conf_where_first(p, "bootstrap.dcs.postgresql.parameters", NULL),
                            "bootstrap.dcs.postgresql.parameters", "%u parameters, at most %d",
                            c->dcs.n_parameters, FSM_PARAMS_MAX);
    }
    for (unsigned i = 0; i < c->dcs.n_parameters; i++) {
        char key[128], why[RPG_ERRMSG_SIZE];
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.parameters.%.60s", kv[i].key);
        struct mark m = conf_where_first(p, key, "bootstrap.dcs.postgresql.parameters");
        for (char *ch = kv[i].key; *ch != '\0'; ch++) {
            *ch = (char)(*ch >= 'A' && *ch <= 'Z' ? *ch - 'A' + 'a' : *ch);
        }
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.parameters.%.60s", kv[i].key);
        const char *owned = pg_param_owned(kv[i].key);
        if (owned != NULL) {
            return conf_fail_at(p, m, key, "not settable here: %s", owned);
        }
        if (strlen(kv[i].key) >= FSM_PARAM_NAME_MAX || strlen(kv[i].value) >= FSM_PARAM_VALUE_MAX) {
            return conf_fail_at(p, m, key,
                                "expected a name of at most %d bytes and a value of at most %d",
                                FSM_PARAM_NAME_MAX - 1, FSM_PARAM_VALUE_MAX - 1);
        }
        if (fsm_param_check(kv[i].key, kv[i].value, why) != 0) {
            return conf_fail_at(p, m, key, "%s", why);
        }
    }
    if (c->dcs.n_parameters > 1) {
        qsort(kv, c->dcs.n_parameters, sizeof kv[0], cmp_kv);
    }
    if (c->dcs.n_pg_hba > FSM_HBA_MAX) {
        return conf_fail_at(p, conf_where_first(p, "bootstrap.dcs.postgresql.pg_hba", NULL),
                            "bootstrap.dcs.postgresql.pg_hba", "%u lines, at most %d",
                            c->dcs.n_pg_hba, FSM_HBA_MAX);
    }
    for (unsigned i = 0; i < c->dcs.n_pg_hba; i++) {
        char key[64], why[RPG_ERRMSG_SIZE];
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.pg_hba[%u]", i);
        struct mark m = conf_where_first(p, key, "bootstrap.dcs.postgresql.pg_hba");
        if (fsm_hba_check(i, c->dcs.pg_hba[i], why) != 0) {
            return conf_fail_at(p, m, key, "%s", why);
        }
        if (!fsm_hba_type_known(c->dcs.pg_hba[i])) {
            return conf_fail_at(p, m, key,
                                "expected a line beginning with local, host, hostssl, hostnossl, "
                                "hostgssenc or hostnogssenc, got %s",
                                conf_quote(c->dcs.pg_hba[i], q));
        }
    }
    return 0;
}

/* Checks that span keys, and fills the defaults that depend on other keys. */
int conf_finish(struct parser *p)
{
    struct conf *c = p->c;
    const struct conf_member *self = conf_self(c);
    int rv;

    c->has_postgresql = conf_where_find(p, "postgresql", NULL);
    c->has_vip = conf_where_find(p, "vip", NULL);
    if ((rv = finish_dcs(p)) != 0) {
        return rv;
    }
    if ((rv = finish_bootstrap(p)) != 0) {
        return rv;
    }

    /* A follower must hear a heartbeat within every election timeout even when one is late or
     * lost, or it deposes a healthy leader (Raft paper §5.6: broadcast time << election
     * timeout); raftpg asks for a margin of two heartbeats. */
    if (2UL * c->raft.heartbeat_timeout_ms >= c->raft.election_timeout_ms) {
        return conf_fail_at(p,
                            conf_where_first(p, "raft.heartbeat_timeout", "raft.election_timeout"),
                            "raft.heartbeat_timeout",
                            "must be less than half of raft.election_timeout "
                            "(heartbeat_timeout=%u election_timeout=%u)",
                            c->raft.heartbeat_timeout_ms, c->raft.election_timeout_ms);
    }

    struct mark m0;
    if (conf_where_find(p, "primary_start_timeout", NULL) &&
        conf_where_find(p, "master_start_timeout", &m0)) {
        return conf_fail_at(p, m0, "master_start_timeout",
                            "is primary_start_timeout's old name: set only one of them");
    }

    /* A claim refreshes the address's lifetime once an announcement round: rounds further apart
     * than the lifetime would let it lapse in between. */
    if (c->has_vip && c->vip.announce_repeats > 1 &&
        c->vip.announce_interval_ms >= c->vip.lifetime_s * 1000UL) {
        return conf_fail_at(
            p, conf_where_first(p, "vip.announce_interval", "vip.lifetime"),
            "vip.announce_interval",
            "must be shorter than vip.lifetime (announce_interval=%u ms lifetime=%u s)",
            c->vip.announce_interval_ms, c->vip.lifetime_s);
    }

    struct mark m;
    if (c->postgresql.basebackup_max_rate[0] != '\0' &&
        !conf_rate_valid(c->postgresql.basebackup_max_rate)) {
        return conf_fail_at(p, conf_where_first(p, "postgresql.basebackup.max-rate", NULL),
                            "postgresql.basebackup.max-rate",
                            "expected 32 to 1048576 kB/s written N, Nk or NM (as pg_basebackup "
                            "--max-rate takes it), got \"%s\"",
                            c->postgresql.basebackup_max_rate);
    }
    if ((c->restapi.auth_username[0] != '\0') != (c->restapi.auth_password[0] != '\0') ||
        strchr(c->restapi.auth_username, ':') != NULL) {
        return conf_fail_at(p, conf_where_first(p, "restapi.authentication", NULL),
                            "restapi.authentication",
                            "expected both username and password, and no ':' in the username");
    }
    static const struct {
        const char *key;
        size_t off;
    } callbacks[] = {
        {"postgresql.callbacks.on_start", offsetof(struct conf, postgresql.callbacks.on_start)},
        {"postgresql.callbacks.on_stop", offsetof(struct conf, postgresql.callbacks.on_stop)},
        {"postgresql.callbacks.on_restart", offsetof(struct conf, postgresql.callbacks.on_restart)},
        {"postgresql.callbacks.on_reload", offsetof(struct conf, postgresql.callbacks.on_reload)},
        {"postgresql.callbacks.on_role_change",
         offsetof(struct conf, postgresql.callbacks.on_role_change)},
        {"postgresql.callbacks.on_switchover",
         offsetof(struct conf, postgresql.callbacks.on_switchover)},
        {"postgresql.callbacks.on_switchover_abandoned",
         offsetof(struct conf, postgresql.callbacks.on_switchover_abandoned)},
    };
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++) {
        const char *cmd = (const char *)c + callbacks[i].off;
        /* No shell and no PATH search: what runs is what the file names. */
        if (cmd[0] != '\0' && cmd[0] != '/') {
            return conf_fail_at(p, conf_where_first(p, callbacks[i].key, NULL), callbacks[i].key,
                                "expected an absolute path to a program, then its arguments "
                                "(no shell), got \"%s\"",
                                cmd);
        }
    }
    if (conf_where_find(p, "raft.secret_file", &m)) {
        c->raft.secret_file_pos = (struct conf_pos){(unsigned)m.line, (unsigned)m.col};
    }
    if (conf_where_find(p, "raft.secret_file_previous", &m)) {
        c->raft.secret_file_previous_pos = (struct conf_pos){(unsigned)m.line, (unsigned)m.col};
        /* Peers are always asked to prove the primary secret first: a previous one alone would
         * leave nothing to rotate to. */
        if (c->raft.secret_file[0] == '\0') {
            return conf_fail_at(p, m, "raft.secret_file_previous", "requires raft.secret_file");
        }
        if (strcmp(c->raft.secret_file, c->raft.secret_file_previous) == 0) {
            return conf_fail_at(p, m, "raft.secret_file_previous",
                                "must name another file than raft.secret_file (file=%s)",
                                c->raft.secret_file);
        }
    }

    if (self != NULL) {
        /* libraft binds to the address it gives the other members, so the two cannot differ. */
        if (c->raft.listen[0] == '\0') {
            memcpy(c->raft.listen, self->raft, sizeof c->raft.listen);
        } else if (strcmp(c->raft.listen, self->raft) != 0) {
            return conf_fail_at(p, conf_where_first(p, "raft.listen", NULL), "raft.listen",
                                "must equal this member's address raft.members[%u].raft "
                                "(listen=%s raft=%s)",
                                (unsigned)(self - c->raft.members), c->raft.listen, self->raft);
        }
        if (c->restapi.listen[0] == '\0') {
            memcpy(c->restapi.listen, self->api, sizeof c->restapi.listen);
        }
        if (c->restapi.connect_address[0] == '\0') {
            memcpy(c->restapi.connect_address, self->api, sizeof c->restapi.connect_address);
        }
    } else {
        if (c->raft.listen[0] == '\0') {
            return conf_fail_at(p, conf_where_first(p, "raft", NULL), "raft.listen",
                                "required when name is not in raft.members (name=%s)", c->name);
        }
        if (c->restapi.listen[0] == '\0') {
            return conf_fail_at(p, conf_where_first(p, "restapi", ""), "restapi.listen",
                                "required when name is not in raft.members (name=%s)", c->name);
        }
        rv = default_connect(p, c->restapi.connect_address, c->restapi.listen, "restapi");
        if (rv != 0) {
            return rv;
        }
    }
    if ((c->restapi.certfile[0] != '\0') != (c->restapi.keyfile[0] != '\0')) {
        const char *given = c->restapi.certfile[0] != '\0' ? "restapi.certfile" : "restapi.keyfile";
        const char *missing = c->restapi.certfile[0] != '\0' ? "restapi.keyfile"
                                                             : "restapi.certfile";
        return conf_fail_at(p, conf_where_first(p, given, NULL), missing, "required with %s",
                            given);
    }
    if ((c->ctl.certfile[0] != '\0') != (c->ctl.keyfile[0] != '\0')) {
        const char *given = c->ctl.certfile[0] != '\0' ? "ctl.certfile" : "ctl.keyfile";
        const char *missing = c->ctl.certfile[0] != '\0' ? "ctl.keyfile" : "ctl.certfile";
        return conf_fail_at(p, conf_where_first(p, given, NULL), missing, "required with %s",
                            given);
    }
    if (c->restapi.ciphers[0] != '\0') {
        struct mark cm = conf_where_first(p, "restapi.ciphers", NULL);
        if (c->restapi.certfile[0] == '\0') {
            return conf_fail_at(p, cm, "restapi.ciphers",
                                "requires restapi.certfile and restapi.keyfile");
        }
        /* GnuTLS speaks TLS here: Patroni's OpenSSL cipher lists mean nothing to it. */
        gnutls_priority_t prio;
        const char *bad = NULL;
        if (gnutls_priority_init(&prio, c->restapi.ciphers, &bad) != 0) {
            return conf_fail_at(p, cm, "restapi.ciphers",
                                "not a GnuTLS priority string (at \"%.40s\"): write one such as "
                                "\"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1\" or \"SECURE256\" (an OpenSSL "
                                "cipher list, as Patroni takes, is not understood)",
                                bad != NULL ? bad : c->restapi.ciphers);
        }
        gnutls_priority_deinit(prio);
    }
    if (c->restapi.keyfile_password[0] != '\0' && c->restapi.keyfile[0] == '\0') {
        return conf_fail_at(p, conf_where_first(p, "restapi.keyfile_password", NULL),
                            "restapi.keyfile_password", "requires restapi.keyfile");
    }
    if (c->ctl.keyfile_password[0] != '\0' && c->ctl.keyfile[0] == '\0') {
        return conf_fail_at(p, conf_where_first(p, "ctl.keyfile_password", NULL),
                            "ctl.keyfile_password", "requires ctl.keyfile");
    }
    if ((c->ctl.auth_username[0] != '\0') != (c->ctl.auth_password[0] != '\0') ||
        strchr(c->ctl.auth_username, ':') != NULL) {
        return conf_fail_at(p, conf_where_first(p, "ctl.authentication", NULL),
                            "ctl.authentication",
                            "expected both username and password, and no ':' in the username");
    }
    if (c->restapi.verify_client != CONF_VERIFY_NONE) {
        struct mark vm = conf_where_first(p, "restapi.verify_client", NULL);
        const char *mode = conf_verify_client_names[c->restapi.verify_client];
        if (c->restapi.certfile[0] == '\0') {
            return conf_fail_at(
                p, vm, "restapi.verify_client",
                "%s requires restapi.certfile and restapi.keyfile: client certificates "
                "exist only over TLS",
                mode);
        }
        if (c->restapi.cafile[0] == '\0') {
            return conf_fail_at(
                p, vm, "restapi.verify_client",
                "%s requires restapi.cafile, the CA that signs the client certificates", mode);
        }
        /* The agents poll each other's API; refused handshakes would leave every other member
         * unreachable to this one (Patroni's documentation asks for the same). */
        if (c->restapi.verify_client == CONF_VERIFY_REQUIRED && c->ctl.certfile[0] == '\0') {
            return conf_fail_at(
                p, vm, "restapi.verify_client",
                "required needs ctl.certfile and ctl.keyfile: the agents present that "
                "certificate when they ask the other members");
        }
    }
    if (c->restapi.crlfile[0] != '\0') {
        struct mark xm = conf_where_first(p, "restapi.crlfile", NULL);
        if (c->restapi.certfile[0] == '\0' || c->restapi.cafile[0] == '\0') {
            return conf_fail_at(p, xm, "restapi.crlfile",
                                "requires restapi.certfile, restapi.keyfile and restapi.cafile: it "
                                "lists certificates that restapi.cafile's CA revoked");
        }
    }
    if (c->ctl.crlfile[0] != '\0') {
        struct mark xm = conf_where_first(p, "ctl.crlfile", NULL);
        if (c->ctl.cacert[0] == '\0' && c->restapi.cafile[0] == '\0') {
            return conf_fail_at(p, xm, "ctl.crlfile",
                                "requires ctl.cacert or restapi.cafile: it lists certificates that "
                                "CA revoked");
        }
        if (c->ctl.insecure) {
            return conf_fail_at(p, xm, "ctl.crlfile",
                                "means nothing with ctl.insecure, which checks no certificate");
        }
    }
    if (c->has_postgresql) {
        rv = default_connect(p, c->postgresql.connect_address, c->postgresql.listen, "postgresql");
        if (rv != 0) {
            return rv;
        }
    }
    if (c->has_vip) {
        return check_vip(p);
    }
    return 0;
}
