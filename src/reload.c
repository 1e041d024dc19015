/* Configuration reload (reload.h). */
#include "raftpg/reload.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

/* Appends name to the comma-separated list unless it is there already. */
static void list_add(char *list, size_t size, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == list || (p >= list + 2 && p[-2] == ',' && p[-1] == ' ');
        if (starts && (p[n] == '\0' || p[n] == ',')) {
            return;
        }
    }
    size_t len = strlen(list);
    snprintf(list + len, size - len, "%s%s", len > 0 ? ", " : "", name);
}

/* Fields compared byte for byte: conf_load zeroes the structure first, so equal text gives
 * equal bytes. Position records (where a key stood in the file) are left out. */
#define F(key, field)                                                                              \
    {                                                                                              \
        key, offsetof(struct conf, field), sizeof(((struct conf *)0)->field)                       \
    }
static const struct {
    const char *key;
    size_t off, size;
} restart_fields[] = {
    F("scope", scope),
    F("name", name),
    F("raft.listen", raft.listen),
    F("raft.data_dir", raft.data_dir),
    F("raft.election_timeout", raft.election_timeout_ms),
    F("raft.heartbeat_timeout", raft.heartbeat_timeout_ms),
    F("raft.pre_vote", raft.pre_vote),
    F("raft.secret_file", raft.secret_file),
    F("raft.secret_file_previous", raft.secret_file_previous),
    F("raft.members", raft.members),
    F("raft.members", raft.n_members),
    F("restapi", restapi),
    F("ctl", ctl),
    F("log.format", log.format),
    F("postgresql", has_postgresql),
    F("postgresql.bin_dir", postgresql.bin_dir),
    F("postgresql.data_dir", postgresql.data_dir),
    F("postgresql.listen", postgresql.listen),
    F("postgresql.connect_address", postgresql.connect_address),
    F("postgresql.authentication", postgresql.superuser_name),
    F("postgresql.authentication", postgresql.superuser_password),
    F("postgresql.authentication", postgresql.replication_name),
    F("postgresql.authentication", postgresql.replication_password),
    F("postgresql.passfile", postgresql.passfile),
    F("postgresql.use_pg_rewind", postgresql.use_pg_rewind),
    F("postgresql.remove_data_directory_on_rewind_failure",
      postgresql.remove_data_directory_on_rewind_failure),
    F("postgresql.remove_data_directory_on_diverged_timelines",
      postgresql.remove_data_directory_on_diverged_timelines),
    F("postgresql.basebackup", postgresql.basebackup_max_rate),
    F("postgresql.recovery_conf", postgresql.restore_command),
    F("vip", has_vip),
    F("vip", vip),
    F("watchdog", watchdog),
    F("synchronous_mode", sync),
};
#undef F

static bool kv_equal(const struct conf_kv *a, unsigned na, const struct conf_kv *b, unsigned nb)
{
    if (na != nb) {
        return false;
    }
    for (unsigned i = 0; i < na; i++) {
        if (strcmp(a[i].key, b[i].key) != 0 || strcmp(a[i].value, b[i].value) != 0) {
            return false;
        }
    }
    return true;
}

void reload_apply(struct conf *cur, struct conf *next, char *applied, size_t applied_size,
                  char *restart, size_t restart_size)
{
    applied[0] = '\0';
    restart[0] = '\0';
    for (size_t i = 0; i < sizeof restart_fields / sizeof restart_fields[0]; i++) {
        if (memcmp((const char *)cur + restart_fields[i].off,
                   (const char *)next + restart_fields[i].off, restart_fields[i].size) != 0) {
            list_add(restart, restart_size, restart_fields[i].key);
        }
    }
    if (!kv_equal(cur->postgresql.parameters, cur->postgresql.n_parameters,
                  next->postgresql.parameters, next->postgresql.n_parameters)) {
        list_add(restart, restart_size, "postgresql.parameters");
    }
    bool hba_same = cur->postgresql.n_pg_hba == next->postgresql.n_pg_hba;
    for (unsigned i = 0; hba_same && i < cur->postgresql.n_pg_hba; i++) {
        hba_same = strcmp(cur->postgresql.pg_hba[i], next->postgresql.pg_hba[i]) == 0;
    }
    if (!hba_same) {
        list_add(restart, restart_size, "postgresql.pg_hba");
    }
    /* Read when the API starts, as the rest of the restapi section. */
    if (!kv_equal(cur->restapi_headers.http, cur->restapi_headers.n_http,
                  next->restapi_headers.http, next->restapi_headers.n_http)) {
        list_add(restart, restart_size, "restapi.http_extra_headers");
    }
    if (!kv_equal(cur->restapi_headers.https, cur->restapi_headers.n_https,
                  next->restapi_headers.https, next->restapi_headers.n_https)) {
        list_add(restart, restart_size, "restapi.https_extra_headers");
    }

    /* Applied: swapped, so that each structure still owns what it points to. */
    if (cur->tags.nofailover != next->tags.nofailover || cur->tags.nosync != next->tags.nosync ||
        cur->tags.noloadbalance != next->tags.noloadbalance ||
        cur->tags.failover_priority != next->tags.failover_priority ||
        !kv_equal(cur->tags.user, cur->tags.n_user, next->tags.user, next->tags.n_user)) {
        list_add(applied, applied_size, "tags");
        __typeof__(cur->tags) t = cur->tags;
        cur->tags = next->tags;
        next->tags = t;
    }
    if (cur->primary_start_timeout_s != next->primary_start_timeout_s) {
        /* Read by every decision: in force from the next one. */
        list_add(applied, applied_size, "primary_start_timeout");
        cur->primary_start_timeout_s = next->primary_start_timeout_s;
    }
    if (cur->log.level != next->log.level) {
        list_add(applied, applied_size, "log.level");
        __typeof__(cur->log.level) l = cur->log.level;
        cur->log.level = next->log.level;
        next->log.level = l;
    }
    if (memcmp(&cur->postgresql.callbacks, &next->postgresql.callbacks,
               sizeof cur->postgresql.callbacks) != 0 ||
        cur->postgresql.callback_timeout_s != next->postgresql.callback_timeout_s) {
        list_add(applied, applied_size, "postgresql.callbacks");
        __typeof__(cur->postgresql.callbacks) cb = cur->postgresql.callbacks;
        cur->postgresql.callbacks = next->postgresql.callbacks;
        next->postgresql.callbacks = cb;
        unsigned to = cur->postgresql.callback_timeout_s;
        cur->postgresql.callback_timeout_s = next->postgresql.callback_timeout_s;
        next->postgresql.callback_timeout_s = to;
    }
}

int reload_run(struct agent *a, char *applied, size_t applied_size, char *restart,
               size_t restart_size, char *errmsg)
{
    struct conf next;
    char why[RPG_ERRMSG_SIZE];
    applied[0] = '\0';
    restart[0] = '\0';
    if (conf_load(a->conf.path, &next, why) != 0) {
        log_warning("reload refused: %s", why);
        return rpg_err(errmsg, RPG_ECONFIG, "%s", why);
    }
    reload_apply(&a->conf, &next, applied, applied_size, restart, restart_size);
    conf_free(&next);
    /* The core keeps its own copy of the tags that decide promotion. */
    a->core.nofailover = a->conf.tags.nofailover;
    a->core.failover_priority = a->conf.tags.failover_priority;
    log_setup(a->conf.name, (enum log_level)a->conf.log.level, a->conf.log.format == CONF_LOG_JSON);
    log_info("configuration reloaded from %s: applied: %s; needs a restart of the agent: %s",
             a->conf.path, applied[0] != '\0' ? applied : "nothing",
             restart[0] != '\0' ? restart : "nothing");
    /* The API's certificate, key, client CAs and revocation lists are read again from the paths
     * in force (a new path is a restapi change, which needs a restart): renewed files take
     * effect without one. */
    const __typeof__(a->conf.restapi) *r = &a->conf.restapi;
    if (r->certfile[0] != '\0' && a->api.mhd != NULL) {
        int rv =
            http_server_reload_tls(&a->api, r->certfile, r->keyfile, r->cafile, r->crlfile, why);
        if (rv != 0) {
            log_error("reload: the API's TLS files were not read again (the ones in force are "
                      "kept): %s",
                      why);
            return rpg_err(errmsg, rv,
                           "the API's TLS files were not read again (the ones in force are "
                           "kept): %s",
                           why);
        }
        log_info("reload: the API's TLS files were read again (%s%s%s)", r->certfile,
                 a->api.crl != NULL ? ", " : "", a->api.crl != NULL ? r->crlfile : "");
    }
    return 0;
}

void reload_request(struct agent *a, struct http_conn *conn)
{
    char errmsg[RPG_ERRMSG_SIZE], applied[512], restart[1024];
    json_t *o;
    int status = 200;
    if (reload_run(a, applied, sizeof applied, restart, sizeof restart, errmsg) != 0) {
        /* The configuration may have been applied all the same (applied says what). */
        o = json_pack("{s:s, s:s, s:s}", "error", errmsg, "applied", applied, "restart_needed",
                      restart);
        status = 400;
    } else {
        o = json_pack("{s:s, s:s, s:s}", "message",
                      restart[0] != '\0' ? "reloaded; some changes need a restart of the agent"
                                         : "reloaded",
                      "applied", applied, "restart_needed", restart);
    }
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(conn, body != NULL ? status : 500, NULL, body != NULL ? body : "{}",
                 body != NULL ? strlen(body) : 2);
    free(body);
}
