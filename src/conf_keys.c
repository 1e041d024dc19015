/* The configuration's key tables: each section's keys with their type, field, range, default
 * and, for Patroni's keys raftpg does not take, why; and the names of the enum values they
 * store, which the public *_name helpers give back. */
#include "raftpg/conf.h"

#include <stddef.h>

#include "conf_int.h"

#define FIELD(f) .off = offsetof(struct conf, f), .size = sizeof(((struct conf *)0)->f)
#define MEMBER_FIELD(f)                                                                            \
    .off = offsetof(struct conf_member, f), .size = sizeof(((struct conf_member *)0)->f)

/* Enums are stored through an int; this holds for GCC and Clang on every ABI raftpg targets. */
_Static_assert(sizeof(enum conf_log_level) == sizeof(int), "enum conf_log_level is not int-sized");
_Static_assert(sizeof(enum conf_log_format) == sizeof(int),
               "enum conf_log_format is not int-sized");
_Static_assert(sizeof(enum conf_watchdog_mode) == sizeof(int),
               "enum conf_watchdog_mode is not int-sized");
_Static_assert(sizeof(enum conf_verify_client) == sizeof(int),
               "enum conf_verify_client is not int-sized");
_Static_assert(sizeof(enum conf_server_tokens) == sizeof(int),
               "enum conf_server_tokens is not int-sized");

static const char *const log_level_names[] = {"debug", "info", "warning", "error", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const watchdog_mode_names[] = {"off", "automatic", "required", NULL};
const char *const conf_verify_client_names[] = {"none", "optional", "required", NULL};
/* Indexed like CONF_SERVER_TOKENS_*; compared without regard to case, as Patroni does. */
static const char *const server_tokens_names[] = {"Original", "ProductOnly", "Minimal", NULL};

static const struct conf_key member_keys[] = {
    {"name", KEY_NAME, MEMBER_FIELD(name), .required = true},
    {"raft", KEY_ADDR, MEMBER_FIELD(raft), .required = true},
    {"api", KEY_ADDR, MEMBER_FIELD(api), .required = true},
    {.key = NULL},
};

static const struct conf_key raft_keys[] = {
    /* The default and the joiner check live in conf_finish(): they depend on name and members. */
    {"listen", KEY_ADDR, FIELD(raft.listen)},
    {"data_dir", KEY_PATH, FIELD(raft.data_dir), .required = true},
    {"election_timeout", KEY_UINT, FIELD(raft.election_timeout_ms), .min = 50, .max = 60000,
     .def = "500"},
    {"heartbeat_timeout", KEY_UINT, FIELD(raft.heartbeat_timeout_ms), .min = 10, .max = 10000,
     .def = "100"},
    {"pre_vote", KEY_BOOL, FIELD(raft.pre_vote), .def = "true"},
    {"secret_file", KEY_PATH, FIELD(raft.secret_file)},
    {"secret_file_previous", KEY_PATH, FIELD(raft.secret_file_previous)},
    {"members", KEY_MEMBERS, .off = offsetof(struct conf, raft.members),
     .size = sizeof(struct conf_member), .count_off = offsetof(struct conf, raft.n_members),
     .min = 1, .max = CONF_MEMBERS_MAX, .required = true, .sub = member_keys},
    {.key = NULL},
};

static const struct conf_key restapi_auth_keys[] = {
    {"username", KEY_STRING, FIELD(restapi.auth_username), .min = 1},
    {"password", KEY_STRING, FIELD(restapi.auth_password), .min = 1},
    {.key = NULL},
};

static const struct conf_key restapi_keys[] = {
    {"listen", KEY_LISTEN, FIELD(restapi.listen)},
    {"connect_address", KEY_ADDR, FIELD(restapi.connect_address)},
    {"max_connections", KEY_UINT, FIELD(restapi.max_connections), .min = 16, .max = 100000,
     .def = "1000"},
    {"request_timeout", KEY_UINT, FIELD(restapi.request_timeout_s), .min = 1, .max = 3600,
     .def = "5"},
    {"certfile", KEY_PATH, FIELD(restapi.certfile)},
    {"keyfile", KEY_PATH, FIELD(restapi.keyfile)},
    {"keyfile_password", KEY_STRING, FIELD(restapi.keyfile_password), .min = 1},
    {"cafile", KEY_PATH, FIELD(restapi.cafile)},
    {"ciphers", KEY_STRING, FIELD(restapi.ciphers), .min = 1},
    {"authentication", KEY_SECTION, .sub = restapi_auth_keys},
    {"verify_client", KEY_ENUM, FIELD(restapi.verify_client), .def = "none",
     .names = conf_verify_client_names},
    {"allowlist", KEY_NETLIST, FIELD(restapi.allowlist),
     .count_off = offsetof(struct conf, restapi.n_allowlist)},
    {"allowlist_include_members", KEY_BOOL, FIELD(restapi.allowlist_include_members),
     .def = "false"},
    {"http_extra_headers", KEY_HEADERS, .off = offsetof(struct conf, restapi_headers.http),
     .count_off = offsetof(struct conf, restapi_headers.n_http)},
    {"https_extra_headers", KEY_HEADERS, .off = offsetof(struct conf, restapi_headers.https),
     .count_off = offsetof(struct conf, restapi_headers.n_https)},
    {"server_tokens", KEY_ENUM, FIELD(restapi.server_tokens), .def = "Original",
     .names = server_tokens_names},
    {"crlfile", KEY_PATH, FIELD(restapi.crlfile)},
    {.key = NULL},
};

static const struct conf_key ctl_auth_keys[] = {
    {"username", KEY_STRING, FIELD(ctl.auth_username), .min = 1},
    {"password", KEY_STRING, FIELD(ctl.auth_password), .min = 1},
    {.key = NULL},
};

static const struct conf_key ctl_keys[] = {
    {"certfile", KEY_PATH, FIELD(ctl.certfile)},
    {"keyfile", KEY_PATH, FIELD(ctl.keyfile)},
    {"keyfile_password", KEY_STRING, FIELD(ctl.keyfile_password), .min = 1},
    {"cacert", KEY_PATH, FIELD(ctl.cacert)},
    {"crlfile", KEY_PATH, FIELD(ctl.crlfile)},
    {"insecure", KEY_BOOL, FIELD(ctl.insecure), .def = "false"},
    {"authentication", KEY_SECTION, .sub = ctl_auth_keys},
    {.key = NULL},
};

static const struct conf_key log_keys[] = {
    {"level", KEY_ENUM, FIELD(log.level), .def = "info", .names = log_level_names},
    {"format", KEY_ENUM, FIELD(log.format), .def = "text", .names = log_format_names},
    {.key = NULL},
};

static const struct conf_key superuser_keys[] = {
    {"username", KEY_STRING, FIELD(postgresql.superuser_name), .min = 1, .def = "postgres"},
    {"password", KEY_STRING, FIELD(postgresql.superuser_password)},
    {.key = NULL},
};

static const struct conf_key replication_keys[] = {
    {"username", KEY_STRING, FIELD(postgresql.replication_name), .min = 1, .def = "replicator"},
    {"password", KEY_STRING, FIELD(postgresql.replication_password)},
    {.key = NULL},
};

static const struct conf_key authentication_keys[] = {
    {"superuser", KEY_SECTION, .sub = superuser_keys},
    {"replication", KEY_SECTION, .sub = replication_keys},
    {.key = NULL},
};

static const struct conf_key basebackup_keys[] = {
    {"max-rate", KEY_STRING, FIELD(postgresql.basebackup_max_rate)},
    {.key = NULL},
};

/* Patroni's recovery_conf holds any recovery setting; raftpg writes the recovery settings it
 * owns itself, and takes the one that is the operator's to give. */
static const struct conf_key recovery_conf_keys[] = {
    {"restore_command", KEY_STRING, FIELD(postgresql.restore_command)},
    {.key = NULL},
};

static const struct conf_key callbacks_keys[] = {
    {"on_start", KEY_STRING, FIELD(postgresql.callbacks.on_start)},
    {"on_stop", KEY_STRING, FIELD(postgresql.callbacks.on_stop)},
    {"on_restart", KEY_STRING, FIELD(postgresql.callbacks.on_restart)},
    {"on_reload", KEY_STRING, FIELD(postgresql.callbacks.on_reload)},
    {"on_role_change", KEY_STRING, FIELD(postgresql.callbacks.on_role_change)},
    {"on_switchover", KEY_STRING, FIELD(postgresql.callbacks.on_switchover)},
    {"on_switchover_abandoned", KEY_STRING, FIELD(postgresql.callbacks.on_switchover_abandoned)},
    {.key = NULL},
};

static const struct conf_key postgresql_keys[] = {
    {"bin_dir", KEY_PATH, FIELD(postgresql.bin_dir), .def = "/usr/lib/postgresql/15/bin"},
    {"data_dir", KEY_PATH, FIELD(postgresql.data_dir), .required = true},
    {"listen", KEY_LISTEN, FIELD(postgresql.listen), .required = true},
    {"connect_address", KEY_ADDR, FIELD(postgresql.connect_address)},
    {"parameters", KEY_PARAMS, .off = offsetof(struct conf, postgresql.parameters),
     .count_off = offsetof(struct conf, postgresql.n_parameters)},
    {"pg_hba", KEY_STRLIST, .off = offsetof(struct conf, postgresql.pg_hba),
     .count_off = offsetof(struct conf, postgresql.n_pg_hba)},
    {"authentication", KEY_SECTION, .sub = authentication_keys},
    {"passfile", KEY_PATH, FIELD(postgresql.passfile)},
    {"use_pg_rewind", KEY_BOOL, FIELD(postgresql.use_pg_rewind), .def = "true"},
    {"remove_data_directory_on_rewind_failure", KEY_BOOL,
     FIELD(postgresql.remove_data_directory_on_rewind_failure), .def = "false"},
    {"remove_data_directory_on_diverged_timelines", KEY_BOOL,
     FIELD(postgresql.remove_data_directory_on_diverged_timelines), .def = "false"},
    {"basebackup", KEY_SECTION, .sub = basebackup_keys},
    {"recovery_conf", KEY_SECTION, .sub = recovery_conf_keys},
    {"callbacks", KEY_SECTION, .sub = callbacks_keys},
    {"callback_timeout", KEY_UINT, FIELD(postgresql.callback_timeout_s), .min = 1, .max = 3600,
     .def = "30"},
    {.key = NULL},
};

static const struct conf_key tags_keys[] = {
    {"nofailover", KEY_BOOL, FIELD(tags.nofailover), .def = "false"},
    {"nosync", KEY_BOOL, FIELD(tags.nosync), .def = "false"},
    {"noloadbalance", KEY_BOOL, FIELD(tags.noloadbalance), .def = "false"},
    {"failover_priority", KEY_INT, FIELD(tags.failover_priority), .min = 0, .max = 1000,
     .def = "1"},
    {"*", KEY_OTHER, .off = offsetof(struct conf, tags.user),
     .count_off = offsetof(struct conf, tags.n_user)},
    {.key = NULL},
};

static const struct conf_key vip_keys[] = {
    {"address", KEY_CIDR, FIELD(vip.address), .required = true},
    {"interface", KEY_IFNAME, FIELD(vip.interface), .required = true},
    {"arping_count", KEY_UINT, FIELD(vip.arping_count), .min = 1, .max = 100, .def = "3"},
    {"announce_repeats", KEY_UINT, FIELD(vip.announce_repeats), .min = 0, .max = 100, .def = "3"},
    {"announce_interval", KEY_UINT, FIELD(vip.announce_interval_ms), .min = 10, .max = 60000,
     .def = "1000"},
    {"lifetime", KEY_UINT, FIELD(vip.lifetime_s), .min = 1, .max = 3600, .def = "2"},
    {"ip_bin", KEY_PATH, FIELD(vip.ip_bin), .def = "/usr/sbin/ip"},
    {"arping_bin", KEY_PATH, FIELD(vip.arping_bin), .def = "/usr/sbin/arping"},
    {.key = NULL},
};

static const struct conf_key watchdog_keys[] = {
    {"mode", KEY_ENUM, FIELD(watchdog.mode), .def = "off", .names = watchdog_mode_names},
    {"device", KEY_PATH, FIELD(watchdog.device), .def = "/dev/watchdog"},
    {"safety_margin", KEY_UINT, FIELD(watchdog.safety_margin_ms), .min = 100, .max = 60000,
     .def = "1000"},
    {.key = NULL},
};

/* Indexed like SYNC_MODE_* and FSM_SYNC_COMMIT_*. */
const char *const conf_sync_mode_names[] = {"off", "quorum", "strict", NULL};
const char *const conf_sync_commit_names[] = {"on", "remote_write", "remote_apply", "local", NULL};

/* Patroni's bootstrap.dcs.postgresql. The first three are each member's own keys here
 * (postgresql.*), which this section sets when the member's postgresql section does not. */
static const struct conf_key dcs_postgresql_keys[] = {
    {"parameters", KEY_PARAMS, .off = offsetof(struct conf, dcs.parameters),
     .count_off = offsetof(struct conf, dcs.n_parameters)},
    {"pg_hba", KEY_STRLIST, .off = offsetof(struct conf, dcs.pg_hba),
     .count_off = offsetof(struct conf, dcs.n_pg_hba)},
    {"use_pg_rewind", KEY_BOOL, FIELD(dcs.use_pg_rewind)},
    {"remove_data_directory_on_rewind_failure", KEY_BOOL,
     FIELD(dcs.remove_data_directory_on_rewind_failure)},
    {"remove_data_directory_on_diverged_timelines", KEY_BOOL,
     FIELD(dcs.remove_data_directory_on_diverged_timelines)},
    {"use_slots", KEY_IGNORED, .why = "raftpg always keeps one replication slot per member"},
    {"recovery_conf", KEY_REFUSED,
     .why = "give restore_command under postgresql.recovery_conf of each member's file; raftpg "
            "writes the other recovery settings itself"},
    {"pg_ident", KEY_REFUSED,
     .why = "raftpg does not write pg_ident.conf: keep the file in each data directory"},
    {"parameters_primary", KEY_REFUSED, .why = "role-specific parameters are not supported"},
    {"parameters_replica", KEY_REFUSED, .why = "role-specific parameters are not supported"},
    {"parameters_standby_leader", KEY_REFUSED, .why = "raftpg runs no standby clusters"},
    {"pg_hba_primary", KEY_REFUSED, .why = "role-specific pg_hba lines are not supported"},
    {"pg_hba_replica", KEY_REFUSED, .why = "role-specific pg_hba lines are not supported"},
    {"pg_hba_standby_leader", KEY_REFUSED, .why = "raftpg runs no standby clusters"},
    {.key = NULL},
};

/* Patroni's bootstrap.dcs: the dynamic configuration the first leader records (README
 * "Configuration" has the table). */
static const struct conf_key dcs_keys[] = {
    {"synchronous_mode", KEY_SYNC_MODE, FIELD(dcs.sync_mode)},
    {"synchronous_mode_strict", KEY_BOOL, FIELD(dcs.sync_strict)},
    {"synchronous_node_count", KEY_UINT, FIELD(dcs.sync_node_count), .min = 1, .max = 16},
    {"synchronous_commit", KEY_ENUM, FIELD(dcs.sync_commit), .names = conf_sync_commit_names},
    {"maximum_lag_on_failover", KEY_MAX_LAG, FIELD(dcs.max_lag)},
    {"postgresql", KEY_SECTION, .sub = dcs_postgresql_keys},
    {"ttl", KEY_IGNORED,
     .why = "raftpg has no leader key with a time to live: the primary's lease is Raft "
            "leadership, set by raft.election_timeout in each member's file"},
    {"loop_wait", KEY_IGNORED,
     .why = "no loop sleeps here: each agent decides every 100 ms and on every change"},
    {"retry_timeout", KEY_IGNORED,
     .why = "no store is retried here: a primary that loses a Raft majority for "
            "raft.election_timeout is fenced"},
    {"failsafe_mode", KEY_IGNORED,
     .why = "the members are the store: a primary that keeps a Raft majority is never demoted "
            "for want of it"},
    {"maximum_lag_on_syncnode", KEY_IGNORED,
     .why = "a standby more than 16 MiB behind leaves the synchronous set"},
    {"max_timelines_history", KEY_IGNORED, .why = "the history keeps the last 32 promotions"},
    /* Each member's own here (not replicated): folded into the top-level key by finish_dcs. */
    {"primary_start_timeout", KEY_UINT, FIELD(dcs.primary_start_timeout_s), .min = 0, .max = 86400},
    {"master_start_timeout", KEY_UINT, FIELD(dcs.primary_start_timeout_s), .min = 0, .max = 86400},
    {"primary_stop_timeout", KEY_IGNORED, .why = "a stop turns immediate after raftpg's own bound"},
    {"primary_race_backoff", KEY_IGNORED,
     .why = "a new leader hands over to the member furthest ahead instead"},
    {"standby_cluster", KEY_REFUSED,
     .why = "raftpg runs no standby clusters: this file would bootstrap a new primary"},
    {"slots", KEY_REFUSED, .why = "permanent replication slots are not supported"},
    {.key = NULL},
};

#define METHOD_FIELD(f)                                                                            \
    .off = offsetof(struct conf_boot_method, f), .size = sizeof(((struct conf_boot_method *)0)->f)

/* A custom bootstrap method (Patroni's bootstrap.<method>), walked with a struct
 * conf_boot_method as base. */
const struct conf_key conf_method_keys[] = {
    {"command", KEY_STRING, METHOD_FIELD(command), .min = 1, .required = true},
    {"no_params", KEY_BOOL, METHOD_FIELD(no_params), .def = "false"},
    {"keep_existing_recovery_conf", KEY_BOOL, METHOD_FIELD(keep_existing_recovery_conf),
     .def = "false"},
    {"recovery_conf", KEY_REFUSED,
     .why = "raftpg starts the directory the command leaves as a primary, without recovery "
            "settings: have the command recover it to its target and promote it"},
    {"scope", KEY_IGNORED, .why = "raftpg passes --scope itself unless no_params is true"},
    {"datadir", KEY_IGNORED, .why = "raftpg passes --datadir itself unless no_params is true"},
    {"*", KEY_ARGS, .off = offsetof(struct conf_boot_method, args),
     .count_off = offsetof(struct conf_boot_method, n_args)},
    {.key = NULL},
};

static const struct conf_key bootstrap_keys[] = {
    {"dcs", KEY_SECTION, .sub = dcs_keys},
    {"initdb", KEY_IGNORED,
     .why = "raftpg runs initdb with --data-checksums --encoding=UTF8 and its own "
            "authentication"},
    {"method", KEY_NAME, FIELD(bootstrap.method)},
    {"post_bootstrap", KEY_STRING, FIELD(bootstrap.post_bootstrap), .min = 1},
    {"post_init", KEY_STRING, FIELD(bootstrap.post_init), .min = 1},
    {"post_bootstrap_timeout", KEY_UINT, FIELD(bootstrap.post_bootstrap_timeout_s), .min = 1,
     .max = 86400, .def = "600"},
    {"users", KEY_REFUSED,
     .why = "Patroni 4 removed it: create the roles in a bootstrap.post_bootstrap script, which "
            "runs once as the superuser when the cluster is new"},
    {"*", KEY_METHOD, .off = offsetof(struct conf, bootstrap.methods),
     .size = sizeof(struct conf_boot_method),
     .count_off = offsetof(struct conf, bootstrap.n_methods), .max = CONF_BOOT_METHODS_MAX},
    {.key = NULL},
};

const struct conf_key conf_root_keys[] = {
    {"scope", KEY_NAME, FIELD(scope), .required = true},
    {"name", KEY_NAME, FIELD(name), .required = true},
    {"raft", KEY_SECTION, .required = true, .sub = raft_keys},
    {"restapi", KEY_SECTION, .sub = restapi_keys},
    {"ctl", KEY_SECTION, .sub = ctl_keys},
    {"log", KEY_SECTION, .sub = log_keys},
    {"postgresql", KEY_SECTION, .sub = postgresql_keys},
    {"tags", KEY_SECTION, .sub = tags_keys},
    {"vip", KEY_SECTION, .sub = vip_keys},
    {"watchdog", KEY_SECTION, .sub = watchdog_keys},
    {"synchronous_mode", KEY_ENUM, FIELD(sync.mode), .def = "quorum",
     .names = conf_sync_mode_names},
    {"synchronous_node_count", KEY_UINT, FIELD(sync.node_count), .min = 1, .max = 16, .def = "1"},
    {"synchronous_commit", KEY_ENUM, FIELD(sync.commit), .def = "on",
     .names = conf_sync_commit_names},
    {"maximum_lag_on_failover", KEY_MAX_LAG, FIELD(max_lag)},
    {"bootstrap", KEY_SECTION, .sub = bootstrap_keys},
    {"primary_start_timeout", KEY_UINT, FIELD(primary_start_timeout_s), .min = 0, .max = 86400,
     .def = "300"},
    /* Patroni's old name; conf_finish() refuses a file with both. */
    {"master_start_timeout", KEY_UINT, FIELD(primary_start_timeout_s), .min = 0, .max = 86400},
    {.key = NULL},
};

const char *conf_verify_client_name(enum conf_verify_client mode)
{
    if ((unsigned)mode < sizeof conf_verify_client_names / sizeof conf_verify_client_names[0] - 1) {
        return conf_verify_client_names[mode];
    }
    return "unknown";
}

const char *conf_server_tokens_name(enum conf_server_tokens tokens)
{
    if ((unsigned)tokens < sizeof server_tokens_names / sizeof server_tokens_names[0] - 1) {
        return server_tokens_names[tokens];
    }
    return "unknown";
}

const char *conf_log_level_name(enum conf_log_level level)
{
    if ((unsigned)level < sizeof log_level_names / sizeof log_level_names[0] - 1) {
        return log_level_names[level];
    }
    return "unknown";
}

const char *conf_log_format_name(enum conf_log_format format)
{
    if ((unsigned)format < sizeof log_format_names / sizeof log_format_names[0] - 1) {
        return log_format_names[format];
    }
    return "unknown";
}

const char *conf_sync_mode_name(int mode)
{
    return mode >= 0 && mode <= 2 ? conf_sync_mode_names[mode] : "unknown";
}

const char *conf_sync_commit_name(int commit)
{
    return commit >= 0 && commit <= 3 ? conf_sync_commit_names[commit] : "unknown";
}

const char *conf_watchdog_mode_name(enum conf_watchdog_mode mode)
{
    if ((unsigned)mode < sizeof watchdog_mode_names / sizeof watchdog_mode_names[0] - 1) {
        return watchdog_mode_names[mode];
    }
    return "unknown";
}
