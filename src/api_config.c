/* api: the dynamic configuration, GET /config and its changes by PATCH and PUT (api_int.h). */
#include "api_int.h"

#include "raftpg/cfgdoc.h"

/* The cluster-wide settings in force: the replicated ones, or this member's file defaults until
 * the first leader has recorded them. */
void api_config_in_force(const struct agent *a, int *mode, unsigned *k, int *commit, bool *recorded)
{
    struct sync_settings s;
    sync_settings_in_force(a->cons_open ? &a->cons.state : NULL, a->conf.sync.mode,
                           a->conf.sync.node_count, a->conf.sync.commit, &s);
    *mode = s.mode;
    *k = s.k;
    *commit = s.commit;
    *recorded = s.recorded;
}

json_t *api_config_json(const struct agent *a)
{
    int mode, commit;
    unsigned k;
    bool recorded;
    api_config_in_force(a, &mode, &k, &commit, &recorded);
    json_t *params = json_object();
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; a->cons_open && s->initialized && i < s->config.n_params; i++) {
        json_object_set_new(params, s->config.params[i].name,
                            json_string(s->config.params[i].value));
    }
    json_t *pgsec = json_pack("{s:o}", "parameters", params);
    if (a->cons_open && s->initialized && s->config.n_hba > 0) {
        json_t *hba = json_array();
        for (unsigned i = 0; i < s->config.n_hba; i++) {
            json_array_append_new(hba, json_string(s->config.hba[i]));
        }
        json_object_set_new(pgsec, "pg_hba", hba);
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:b, s:b, s:o}", "synchronous_mode",
                          conf_sync_mode_name(mode), "synchronous_node_count", (json_int_t)k,
                          "synchronous_commit", conf_sync_commit_name(commit), "recorded", recorded,
                          "pause",
                          a->cons_open && a->cons.state.initialized && a->cons.state.paused,
                          "postgresql", pgsec);
    bool lag_set;
    uint64_t lag;
    sync_max_lag_in_force(a->cons_open ? s : NULL, a->conf.max_lag.set, a->conf.max_lag.bytes,
                          &lag_set, &lag);
    if (o != NULL && lag_set) {
        json_object_set_new(o, "maximum_lag_on_failover", json_integer((json_int_t)lag));
    }
    return o;
}

struct pending_config {
    struct http_conn *conn;
    struct agent *a;
};

static void config_committed(void *data, int rc, const char *msg)
{
    struct pending_config *p = data;
    if (rc == 0) {
        api_respond_json(p->conn, 200, api_config_json(p->a));
    } else {
        api_respond_error(p->conn, rc == RPG_ENOTLEADER ? 503 : rc == RPG_ERAFT ? 500 : 409, msg);
    }
    free(p);
}

static int name_index(const char *v, const char *(*name_of)(int), int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(v, name_of(i)) == 0) {
            return i;
        }
    }
    return -1;
}

/* Submits a configuration command through the leader; the request is answered with the
 * settings in force once it is committed. */
static void submit_config(struct agent *a, struct http_conn *conn, const struct fsm_cmd *cmd)
{
    char msg[RPG_ERRMSG_SIZE];
    if (!api_require_leader(a, conn)) {
        return;
    }
    struct pending_config *p = calloc(1, sizeof *p);
    if (p == NULL) {
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    p->conn = conn;
    p->a = a;
    int rv = cons_submit(&a->cons, cmd, config_committed, p, msg);
    if (rv != 0) {
        free(p);
        api_respond_error(conn, rv == RPG_ENOTLEADER ? 503 : 400, msg);
    }
}

/* The dynamic PostgreSQL parameters being edited, a sorted set as the state keeps it, and the
 * pg_hba lines. */
struct param_set {
    unsigned n;
    struct fsm_param p[FSM_PARAMS_MAX];
    unsigned n_hba;
    char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX];
};

static bool param_set_equal(const struct param_set *a, const struct fsm_state *s)
{
    const struct fsm_param *ps = s->config.params;
    unsigned n = s->config.n_params;
    if (a->n != n || a->n_hba != s->config.n_hba) {
        return false;
    }
    for (unsigned i = 0; i < a->n_hba; i++) {
        if (strcmp(a->hba[i], s->config.hba[i]) != 0) {
            return false;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(a->p[i].name, ps[i].name) != 0 || strcmp(a->p[i].value, ps[i].value) != 0) {
            return false;
        }
    }
    return true;
}

/* Sets (value non-NULL) or removes (NULL) name, keeping the names sorted. */
static int param_set_put(struct param_set *set, const char *name, const char *value, char *msg)
{
    unsigned i = 0;
    while (i < set->n && strcmp(set->p[i].name, name) < 0) {
        i++;
    }
    bool found = i < set->n && strcmp(set->p[i].name, name) == 0;
    if (value == NULL) {
        if (found) {
            memmove(&set->p[i], &set->p[i + 1], (set->n - i - 1) * sizeof set->p[0]);
            set->n--;
            memset(&set->p[set->n], 0, sizeof set->p[0]);
        }
        return 0;
    }
    if (!found) {
        if (set->n == FSM_PARAMS_MAX) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters: at most %d parameters in the dynamic "
                           "configuration (adding %s)",
                           FSM_PARAMS_MAX, name);
        }
        memmove(&set->p[i + 1], &set->p[i], (set->n - i) * sizeof set->p[0]);
        set->n++;
    }
    memset(&set->p[i], 0, sizeof set->p[i]);
    rpg_fmt(set->p[i].name, sizeof set->p[i].name, "%s", name);
    rpg_fmt(set->p[i].value, sizeof set->p[i].value, "%s", value);
    return 0;
}

/* Applies {"name": value or null, ...} to set: a string, a number or a boolean (written as on or
 * off) sets it, null removes it. Each name is checked here, before anything is committed:
 * syntax and bounds (fsm_param_check) and what raftpg owns (pg_param_owned). */
static int param_set_apply(struct param_set *set, json_t *o, char *msg)
{
    if (!json_is_object(o)) {
        return rpg_err(msg, RPG_EINVAL, "postgresql.parameters: expected an object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        char name[FSM_PARAM_NAME_MAX + 1], value[FSM_PARAM_VALUE_MAX + 1];
        size_t n = strlen(key);
        if (n >= sizeof name) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%.64s...: name is longer than %d bytes", key,
                           FSM_PARAM_NAME_MAX - 1);
        }
        /* PostgreSQL folds names to lower case. */
        for (size_t i = 0; i <= n; i++) {
            name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] - 'A' + 'a' : key[i]);
        }
        const char *why = pg_param_owned(name);
        if (why != NULL) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: not settable here: %s", name,
                           why);
        }
        char why_bad[RPG_ERRMSG_SIZE];
        if (json_is_null(v)) {
            int rc = fsm_param_check(name, "", why_bad);
            if (rc != 0) {
                return rpg_err(msg, rc, "postgresql.parameters: %s", why_bad);
            }
            param_set_put(set, name, NULL, msg);
            continue;
        }
        int w;
        if (json_is_string(v)) {
            if (strlen(json_string_value(v)) != json_string_length(v)) {
                return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: value holds a NUL byte",
                               name);
            }
            w = snprintf(value, sizeof value, "%s", json_string_value(v));
        } else if (json_is_integer(v)) {
            w = snprintf(value, sizeof value, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            w = snprintf(value, sizeof value, "%.17g", json_real_value(v));
        } else if (json_is_boolean(v)) {
            w = snprintf(value, sizeof value, "%s", json_is_true(v) ? "on" : "off");
        } else {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: expected a string, a number, a boolean or "
                           "null (to remove it)",
                           name);
        }
        if (w < 0 || (size_t)w >= FSM_PARAM_VALUE_MAX) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: value is longer than %d bytes", name,
                           FSM_PARAM_VALUE_MAX - 1);
        }
        int rc = fsm_param_check(name, value, why_bad);
        if (rc != 0) {
            return rpg_err(msg, rc, "postgresql.parameters: %s", why_bad);
        }
        if ((rc = param_set_put(set, name, value, msg)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* The "pg_hba" key: a list of pg_hba.conf lines that replaces the current one, or null (each
 * member's own file again). A line must begin with a connection type: a comment or an include
 * could leave the file without a rule. */
static int hba_apply(struct param_set *set, json_t *v, char *msg)
{
    if (json_is_null(v)) {
        set->n_hba = 0;
        memset(set->hba, 0, sizeof set->hba);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return rpg_err(msg, RPG_EINVAL,
                       "postgresql.pg_hba: expected a non-empty list of lines, or null");
    }
    if (json_array_size(v) > FSM_HBA_MAX) {
        return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba: %zu lines, at most %d",
                       json_array_size(v), FSM_HBA_MAX);
    }
    size_t i;
    json_t *line;
    memset(set->hba, 0, sizeof set->hba);
    json_array_foreach(v, i, line) {
        const char *text = json_string_value(line);
        char why[RPG_ERRMSG_SIZE];
        if (text == NULL || strlen(text) != json_string_length(line)) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba[%zu]: expected a string", i);
        }
        if (fsm_hba_check((unsigned)i, text, why) != 0) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.pg_hba: %s", why);
        }
        size_t skip = strspn(text, " \t"), word = strcspn(text + skip, " \t");
        if (!fsm_hba_type_known(text)) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.pg_hba[%zu]: a line begins with local, host, hostssl, "
                           "hostnossl, hostgssenc or hostnogssenc, got \"%.*s\"",
                           i, (int)(word < 32 ? word : 32), text + skip);
        }
        rpg_fmt(set->hba[i], FSM_HBA_LINE_MAX, "%s", text);
    }
    set->n_hba = (unsigned)json_array_size(v);
    return 0;
}

/* The "postgresql" key of PATCH or PUT: {"parameters": {...} or null, "pg_hba": [...] or null};
 * null removes them all. */
static int postgresql_apply(struct param_set *set, json_t *v, char *msg)
{
    if (json_is_null(v)) {
        memset(set, 0, sizeof *set);
        return 0;
    }
    if (!json_is_object(v)) {
        return rpg_err(msg, RPG_EINVAL, "postgresql: expected an object");
    }
    int hrc = 0;
    const char *key;
    json_t *sub;
    json_object_foreach(v, key, sub) {
        if (strcmp(key, "parameters") == 0) {
            if (json_is_null(sub)) {
                set->n = 0;
                memset(set->p, 0, sizeof set->p);
                continue;
            }
            int rc = param_set_apply(set, sub, msg);
            if (rc != 0) {
                return rc;
            }
        } else if (strcmp(key, "pg_hba") == 0) {
            if ((hrc = hba_apply(set, sub, msg)) != 0) {
                return hrc;
            }
        } else {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.%.64s: unknown key (settable: postgresql.parameters, "
                           "postgresql.pg_hba)",
                           key);
        }
    }
    return 0;
}

/* Each parameter set anew or changed must be one this member's PostgreSQL knows, with a value
 * that reads as its type (pg_settings, as read once per run of the server): an unknown name or
 * an unreadable value in the configuration file would stop every member's server from starting
 * again. Names with a dot are an extension's, which PostgreSQL takes as placeholders; without a
 * list (no server observed running here) nothing is checked. */
static int params_known(const struct agent *a, const struct param_set *set, char *msg)
{
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; i < set->n; i++) {
        const struct fsm_param *p = &set->p[i];
        bool same = false;
        for (unsigned j = 0; a->cons_open && s->initialized && j < s->config.n_params; j++) {
            same = same || (strcmp(s->config.params[j].name, p->name) == 0 &&
                            strcmp(s->config.params[j].value, p->value) == 0);
        }
        char context[32], why[RPG_ERRMSG_SIZE];
        if (same || strchr(p->name, '.') != NULL) {
            continue;
        }
        int rc = pg_setting_check(a->pg.settings, p->name, p->value, context, sizeof context, why,
                                  sizeof why);
        if (rc == 0) {
            return rpg_err(msg, RPG_EINVAL,
                           "postgresql.parameters.%s: unrecognized configuration parameter (the "
                           "PostgreSQL server of %s has no such setting)",
                           p->name, a->conf.name);
        }
        if (rc == RPG_EINVAL) {
            return rpg_err(msg, RPG_EINVAL, "postgresql.parameters.%s: %s", p->name, why);
        }
    }
    return 0;
}

/* A SET_DYNAMIC entry is read only by agents of state version 6, SET_DYNAMIC_LAG by version 7:
 * every other member must have reported one, or its state would part from the others'. */
static int members_read_dynamic(const struct agent *a, unsigned need, char *msg, int *status)
{
    const struct fsm_state *s = &a->cons.state;
    for (unsigned i = 0; i < s->n_members; i++) {
        const char *name = s->members[i].name;
        if (strcmp(name, a->conf.name) == 0) {
            continue;
        }
        const struct peer_status *p = peers_get(&a->peers, name);
        if (p == NULL || p->last_seen == 0) {
            *status = 503;
            return rpg_err(msg, RPG_EBUSY,
                           "%s: no report from %s yet: every member must read state "
                           "version %u",
                           need >= 7 ? "maximum_lag_on_failover" : "postgresql", name, need);
        }
        if (p->state_version < need) {
            *status = 503;
            return rpg_err(msg, RPG_EBUSY,
                           "%s: %s runs an agent that cannot read %s (state version %u): "
                           "upgrade it first",
                           need >= 7 ? "maximum_lag_on_failover" : "postgresql", name,
                           need >= 7 ? "it" : "parameters or pg_hba lines", p->state_version);
        }
    }
    return 0;
}

/* PATCH /config changes the keys it names (a null parameter is removed); PUT /config replaces
 * the whole dynamic configuration: a synchronous key it leaves out takes this member's file
 * value, and the parameters it leaves out are removed. */
void api_config_change(struct agent *a, struct http_conn *conn, const struct http_request *req,
                       bool replace)
{
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char msg[RPG_ERRMSG_SIZE];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "request body: %s", o == NULL ? jerr.text : "expected an object");
        json_decref(o);
        api_respond_error(conn, 400, msg);
        return;
    }
    int mode, commit;
    unsigned k;
    bool recorded;
    api_config_in_force(a, &mode, &k, &commit, &recorded);
    const struct fsm_state *s = &a->cons.state;
    bool paused = a->cons_open && s->initialized && s->paused;
    struct param_set *set = calloc(1, sizeof *set);
    if (set == NULL) {
        json_decref(o);
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    /* Until the configuration is recorded, the file's limit is in force: a change starts from
     * it, so that the first entry records it (lag_changed below compares with the entry's). */
    bool lag_set;
    uint64_t lag;
    sync_max_lag_in_force(a->cons_open ? s : NULL, a->conf.max_lag.set, a->conf.max_lag.bytes,
                          &lag_set, &lag);
    int status = 400;
    if (replace) {
        lag_set = false;
        lag = 0;
        mode = a->conf.sync.mode;
        k = a->conf.sync.node_count;
        commit = a->conf.sync.commit;
    } else if (a->cons_open && s->initialized) {
        set->n = s->config.n_params;
        memcpy(set->p, s->config.params, sizeof set->p);
        set->n_hba = s->config.n_hba;
        memcpy(set->hba, s->config.hba, sizeof set->hba);
    }
    const char *key;
    json_t *v;
    msg[0] = '\0';
    /* Maintenance mode (Patroni's {"pause": true}) is its own Raft entry: changed alone. */
    json_t *pause = json_object_get(o, "pause");
    if (pause != NULL && !replace && (!json_is_boolean(pause) || json_object_size(o) != 1)) {
        api_respond_error(conn, 400,
                          json_is_boolean(pause)
                              ? "pause: change it alone ({\"pause\": true} or {\"pause\": false})"
                              : "pause: expected true or false");
        json_decref(o);
        free(set);
        return;
    }
    if (pause != NULL && !replace) {
        struct fsm_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_SET_PAUSE;
        cmd.u.set_pause.paused = json_is_true(pause);
        json_decref(o);
        free(set);
        log_info("maintenance mode %s requested", cmd.u.set_pause.paused ? "on" : "off");
        submit_config(a, conn, &cmd);
        return;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "synchronous_mode") == 0) {
            mode = json_is_string(v) ? name_index(json_string_value(v), conf_sync_mode_name, 3)
                                     : -1;
            if (mode < 0) {
                snprintf(msg, sizeof msg, "synchronous_mode: expected off, quorum or strict");
            }
        } else if (strcmp(key, "synchronous_node_count") == 0) {
            json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
            if (n < 1 || n > FSM_MEMBERS_MAX) {
                snprintf(msg, sizeof msg, "synchronous_node_count: expected an integer 1..%d",
                         FSM_MEMBERS_MAX);
            }
            k = (unsigned)n;
        } else if (strcmp(key, "synchronous_commit") == 0) {
            commit = json_is_string(v) ? name_index(json_string_value(v), conf_sync_commit_name, 4)
                                       : -1;
            if (commit < 0) {
                snprintf(msg, sizeof msg,
                         "synchronous_commit: expected on, remote_write, remote_apply or local");
            }
        } else if (strcmp(key, "maximum_lag_on_failover") == 0) {
            (void)cfgdoc_max_lag(v, &lag_set, &lag, msg);
        } else if (cfgdoc_interval_refusal(key) != NULL) {
            status = 422;
            snprintf(msg, sizeof msg, "%s", cfgdoc_interval_refusal(key));
        } else if (strcmp(key, "postgresql") == 0) {
            (void)postgresql_apply(set, v, msg);
        } else if (replace && strcmp(key, "pause") == 0) {
            /* GET's document put back as it is: maintenance mode changes only with PATCH. */
            if (!json_is_boolean(pause) || json_is_true(pause) != paused) {
                snprintf(msg, sizeof msg,
                         "pause: change it alone with PATCH ({\"pause\": true} or {\"pause\": "
                         "false})");
            }
        } else if (replace && strcmp(key, "recorded") == 0) {
            /* GET's report of where the settings come from: nothing to set. */
        } else {
            snprintf(msg, sizeof msg,
                     "unknown key \"%.64s\" (settable: synchronous_mode, "
                     "synchronous_node_count, synchronous_commit, maximum_lag_on_failover, "
                     "postgresql.parameters, postgresql.pg_hba, pause)",
                     key);
        }
        if (msg[0] != '\0') {
            break;
        }
    }
    json_decref(o);
    if (msg[0] != '\0') {
        free(set);
        api_respond_error(conn, status, msg);
        return;
    }
    if (params_known(a, set, msg) != 0) {
        free(set);
        api_respond_error(conn, 400, msg);
        return;
    }
    struct fsm_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        free(set);
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    bool same_params = a->cons_open && s->initialized && param_set_equal(set, s);
    bool had_lag = a->cons_open && s->initialized && s->config.max_lag_set;
    bool lag_changed = lag_set != had_lag || (lag_set && lag != s->config.max_lag);
    if (same_params && !lag_changed) {
        /* The parameters stay: the entry every release reads. */
        cmd->type = FSM_CMD_SET_CONFIG;
        cmd->u.set_config.sync_mode = (uint8_t)mode;
        cmd->u.set_config.sync_node_count = k;
        cmd->u.set_config.sync_commit = (uint8_t)commit;
    } else {
        /* With the limit changed, the whole set and the limit in one entry, which only
         * version-7 agents read; otherwise the whole set, which version 6 reads. */
        unsigned need = lag_changed ? 7 : 6;
        if (a->cons_open && s->initialized && members_read_dynamic(a, need, msg, &status) != 0) {
            free(set);
            free(cmd);
            log_info("configuration change refused: %s", msg);
            api_respond_error(conn, status, msg);
            return;
        }
        cmd->type = lag_changed ? FSM_CMD_SET_DYNAMIC_LAG : FSM_CMD_SET_DYNAMIC;
        cmd->u.set_dynamic.sync_mode = (uint8_t)mode;
        cmd->u.set_dynamic.sync_node_count = k;
        cmd->u.set_dynamic.sync_commit = (uint8_t)commit;
        cmd->u.set_dynamic.n_params = set->n;
        memcpy(cmd->u.set_dynamic.params, set->p, sizeof set->p);
        cmd->u.set_dynamic.n_hba = set->n_hba;
        memcpy(cmd->u.set_dynamic.hba, set->hba, sizeof set->hba);
        if (lag_changed) {
            cmd->u.set_dynamic.max_lag_set = lag_set;
            cmd->u.set_dynamic.max_lag = lag;
        }
    }
    char lag_text[32] = "none";
    if (lag_set) {
        snprintf(lag_text, sizeof lag_text, "%llu", (unsigned long long)lag);
    }
    log_info("configuration change requested: synchronous_mode=%s synchronous_node_count=%u "
             "synchronous_commit=%s maximum_lag_on_failover=%s parameters=%u pg_hba_lines=%u%s",
             conf_sync_mode_name(mode), k, conf_sync_commit_name(commit), lag_text, set->n,
             set->n_hba, same_params && !lag_changed ? " (unchanged)" : "");
    free(set);
    submit_config(a, conn, cmd);
    free(cmd);
}
