/* Node configuration: a libyaml event parser walking static key tables into struct conf. */
#include "raftpg/conf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include "raftpg/fsm_state.h"
#include "raftpg/pg.h"

/* A configuration file is a few kilobytes; the cap keeps a wrong path (a disk image, a log) from
 * being read into memory. */
#define CONF_FILE_MAX (1024 * 1024)

/* postgresql.parameters and postgresql.pg_hba hold at most this many entries, which also bounds
 * the quadratic duplicate-parameter check. */
#define CONF_LIST_MAX 1000

/* How a key's value is checked and stored. */
enum key_type {
    KEY_STRING,  /* text of min..size-1 bytes */
    KEY_NAME,    /* [A-Za-z0-9_.-]{1,size-1} */
    KEY_LISTEN,  /* IPv4 address:port to bind to; 0.0.0.0 allowed */
    KEY_ADDR,    /* IPv4 address:port other nodes connect to; 0.0.0.0 refused */
    KEY_PATH,    /* absolute path */
    KEY_UINT,    /* unsigned, min..max */
    KEY_INT,     /* int, min..max */
    KEY_BOOL,    /* bool: true/false, yes/no, on/off */
    KEY_ENUM,    /* an enum (int-sized), the index of the value in names */
    KEY_SECTION, /* a mapping described by sub, with the same base */
    KEY_MEMBERS, /* a sequence of min..max mappings into struct conf_member, described by sub */
    KEY_PARAMS,  /* a mapping of scalars into a struct conf_kv array, kept as text */
    KEY_STRLIST, /* a sequence of scalars into a char * array */
    KEY_NETLIST, /* a sequence of addresses, networks or host names into a struct conf_net array */
    KEY_CIDR,    /* IPv4 unicast host address/prefix into a struct conf_cidr */
    KEY_IFNAME,  /* a Linux network interface name */
    KEY_OTHER,   /* key "*": any key no other row names, a scalar into a struct conf_kv array */
    KEY_HEADERS, /* a mapping of HTTP header names to values into a struct conf_kv array */
    KEY_MAX_LAG, /* a number of bytes 0..CONF_MAX_LAG_MAX, or null, into a struct conf_max_lag */
    KEY_SYNC_MODE, /* off/quorum/strict, or Patroni's on/true (quorum) and false (off), int-sized */
    KEY_IGNORED,   /* a Patroni key without effect here: any value, a warning saying why */
    KEY_REFUSED,   /* a Patroni key raftpg cannot honour: an error saying why */
    KEY_METHOD,    /* key "*" under bootstrap: a custom method's mapping into methods[] */
    KEY_ARGS,      /* key "*" in a custom method: a scalar passed as --key=value */
};

/* One row of a key table. Offsets are from the base the table is walked with: struct conf for
 * the top level and its sections, struct conf_member for raft.members entries. */
struct conf_key {
    const char *key;
    enum key_type type;
    size_t off;       /* the field */
    size_t size;      /* strings: buffer size; KEY_MEMBERS: element size */
    size_t count_off; /* lists: the unsigned element count */
    long min, max;    /* integers: range; KEY_STRING: minimum length; KEY_MEMBERS: entries */
    const char *def;  /* default, written as in the file and parsed like it; NULL: none */
    bool required;
    const struct conf_key *sub; /* KEY_SECTION, KEY_MEMBERS */
    const char *const *names;   /* KEY_ENUM, NULL-terminated, indexed by value */
    const char *why;            /* KEY_IGNORED, KEY_REFUSED: what stands in its place */
};

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
static const char *const verify_client_names[] = {"none", "optional", "required", NULL};
/* Indexed like CONF_SERVER_TOKENS_*; compared without regard to case, as Patroni does. */
static const char *const server_tokens_names[] = {"Original", "ProductOnly", "Minimal", NULL};

static const struct conf_key member_keys[] = {
    {"name", KEY_NAME, MEMBER_FIELD(name), .required = true},
    {"raft", KEY_ADDR, MEMBER_FIELD(raft), .required = true},
    {"api", KEY_ADDR, MEMBER_FIELD(api), .required = true},
    {.key = NULL},
};

static const struct conf_key raft_keys[] = {
    /* The default and the joiner check live in finish(): they depend on name and members. */
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
     .names = verify_client_names},
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
static const char *const sync_mode_names[] = {"off", "quorum", "strict", NULL};
static const char *const sync_commit_names[] = {"on", "remote_write", "remote_apply", "local",
                                                NULL};

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
    {"synchronous_commit", KEY_ENUM, FIELD(dcs.sync_commit), .names = sync_commit_names},
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
static const struct conf_key method_keys[] = {
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

static const struct conf_key root_keys[] = {
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
    {"synchronous_mode", KEY_ENUM, FIELD(sync.mode), .def = "quorum", .names = sync_mode_names},
    {"synchronous_node_count", KEY_UINT, FIELD(sync.node_count), .min = 1, .max = 16, .def = "1"},
    {"synchronous_commit", KEY_ENUM, FIELD(sync.commit), .def = "on", .names = sync_commit_names},
    {"maximum_lag_on_failover", KEY_MAX_LAG, FIELD(max_lag)},
    {"bootstrap", KEY_SECTION, .sub = bootstrap_keys},
    {"primary_start_timeout", KEY_UINT, FIELD(primary_start_timeout_s), .min = 0, .max = 86400,
     .def = "300"},
    /* Patroni's old name; finish() refuses a file with both. */
    {"master_start_timeout", KEY_UINT, FIELD(primary_start_timeout_s), .min = 0, .max = 86400},
    {.key = NULL},
};

/* A position in the file, counted from 1. */
struct mark {
    unsigned long line, col;
};

/* Upper bound on the table keys, sections, members[i] entries, user tags and bootstrap.dcs list
 * entries (at most 2 * 32 kept) one file can set (under 300 today, all of them set at once);
 * positions past it are not kept and finish() falls back to an enclosing mapping. */
#define WHERE_MAX 384

struct parser {
    yaml_parser_t yaml;
    yaml_event_t ev; /* valid when have_ev */
    bool have_ev;
    const char *file;
    const char *text; /* the input, to place reader errors, which libyaml gives as an offset */
    size_t len;
    char *errmsg;
    struct conf *c;
    char path[256]; /* dotted path of the key being parsed, for messages */
    size_t path_len;
    /* Where each table key's value (and each section) started, for checks that run after the
     * whole file is read. */
    struct {
        char path[96]; /* the longest key path a table holds fits, with room */
        struct mark mark;
    } where[WHERE_MAX];
    unsigned n_where;
};

static struct mark mark_of(yaml_mark_t m)
{
    return (struct mark){m.line + 1, m.column + 1};
}

static struct mark ev_mark(const struct parser *p)
{
    return mark_of(p->ev.start_mark);
}

__attribute__((format(printf, 4, 5))) static int fail_at(struct parser *p, struct mark m,
                                                         const char *key, const char *fmt, ...)
{
    char what[RPG_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (key[0] == '\0') {
        return rpg_err(p->errmsg, RPG_ECONFIG, "%s:%lu:%lu: %s", p->file, m.line, m.col, what);
    }
    return rpg_err(p->errmsg, RPG_ECONFIG, "%s:%lu:%lu: %s: %s", p->file, m.line, m.col, key, what);
}

/* Fails at the current event, naming the current key. */
#define fail(p, ...) fail_at((p), ev_mark(p), (p)->path, __VA_ARGS__)

static int fail_nomem(struct parser *p)
{
    return rpg_err(p->errmsg, RPG_ENOMEM, "%s: out of memory", p->file);
}

/* Appends ".key" (or "key" at the top) or "[i]" to the path; returns the length to restore. */
__attribute__((format(printf, 2, 3))) static size_t path_push(struct parser *p, const char *fmt,
                                                              ...)
{
    size_t old = p->path_len;
    size_t room = sizeof p->path - old;
    va_list ap;
    int n;

    if (fmt[0] == '.' && old == 0) {
        fmt++;
    }
    va_start(ap, fmt);
    n = vsnprintf(p->path + old, room, fmt, ap);
    va_end(ap);
    /* A path cut short by an absurdly long key still makes a readable message. */
    p->path_len = n < 0 ? old : (size_t)n < room ? old + (size_t)n : sizeof p->path - 1;
    p->path[p->path_len] = '\0';
    return old;
}

static void path_pop(struct parser *p, size_t len)
{
    p->path_len = len;
    p->path[len] = '\0';
}

static void where_add(struct parser *p, struct mark m)
{
    if (p->n_where == WHERE_MAX || p->path_len >= sizeof p->where[0].path) {
        return;
    }
    memcpy(p->where[p->n_where].path, p->path, p->path_len + 1);
    p->where[p->n_where].mark = m;
    p->n_where++;
}

/* The position of entry i of a bootstrap.dcs list, for finish()'s checks of what it holds;
 * past the number it may hold, the checks name the list. */
static void where_add_dcs_entry(struct parser *p, unsigned i)
{
    if (i < 32 && strncmp(p->path, "bootstrap.dcs.", 14) == 0) {
        where_add(p, ev_mark(p));
    }
}

static bool where_find(const struct parser *p, const char *path, struct mark *m)
{
    for (unsigned i = 0; i < p->n_where; i++) {
        if (strcmp(p->where[i].path, path) == 0) {
            if (m != NULL) {
                *m = p->where[i].mark;
            }
            return true;
        }
    }
    return false;
}

/* The position of the first of the paths that was set, or 1:1. */
static struct mark where_first(const struct parser *p, const char *a, const char *b)
{
    struct mark m = {1, 1};

    if (!where_find(p, a, &m) && b != NULL) {
        where_find(p, b, &m);
    }
    return m;
}

/* Formats s for a message as "s", cut at 40 bytes (on a UTF-8 boundary) with "..." added. */
static const char *quote(const char *s, char out[48])
{
    size_t n = strlen(s);

    if (n <= 40) {
        snprintf(out, 48, "\"%s\"", s);
        return out;
    }
    n = 40;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    snprintf(out, 48, "\"%.*s...\"", (int)n, s);
    return out;
}

static const char *kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    default: return "no value";
    }
}

static int syntax_error(struct parser *p)
{
    const char *problem = p->yaml.problem != NULL ? p->yaml.problem : "unknown error";
    struct mark m = mark_of(p->yaml.problem_mark);

    if (p->yaml.error == YAML_MEMORY_ERROR) {
        return fail_nomem(p);
    }
    if (p->yaml.error == YAML_READER_ERROR) {
        /* The reader reports a byte offset only; columns count characters, as libyaml's do. */
        size_t end = p->yaml.problem_offset < p->len ? p->yaml.problem_offset : p->len;
        m = (struct mark){1, 1};
        for (size_t i = 0; i < end; i++) {
            if (p->text[i] == '\n') {
                m = (struct mark){m.line + 1, 1};
            } else if (((unsigned char)p->text[i] & 0xC0) != 0x80) {
                m.col++;
            }
        }
    }
    return fail_at(p, m, "", "invalid YAML: %s", problem);
}

/* Moves to the next event. Aliases are refused here, once for every place a value can be: the
 * tables describe a tree, and resolving aliases would let a small file expand without bound. */
static int next(struct parser *p)
{
    if (p->have_ev) {
        yaml_event_delete(&p->ev);
        p->have_ev = false;
    }
    if (!yaml_parser_parse(&p->yaml, &p->ev)) {
        return syntax_error(p);
    }
    p->have_ev = true;
    if (p->ev.type == YAML_ALIAS_EVENT) {
        return fail(p, "aliases are not supported");
    }
    return 0;
}

/* The current event as text, checked to hold no NUL or other control bytes (a tab is fine): they
 * would silently cut a C string short or break the files other modules write from these values. */
static int scalar_text(struct parser *p, const char **out)
{
    const unsigned char *s = p->ev.data.scalar.value;

    for (size_t i = 0; i < p->ev.data.scalar.length; i++) {
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F) {
            return fail(p, "expected text without control characters");
        }
    }
    *out = (const char *)s;
    return 0;
}

static int expect(struct parser *p, yaml_event_type_t type, const char *what)
{
    if (p->ev.type != type) {
        return fail(p, "expected %s, got %s", what, kind(&p->ev));
    }
    return 0;
}

/* Reads 1..max_digits decimal digits with no leading zero (so "010" is never read as octal, as
 * YAML 1.1 would) and returns the end, or NULL. */
static const char *scan_decimal(const char *s, int max_digits, unsigned long *v)
{
    int n = 0;

    *v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == max_digits) {
            return NULL;
        }
        *v = *v * 10 + (unsigned long)(s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0')) {
        return NULL;
    }
    return s + n;
}

int conf_parse_addr(const char *addr, char host[16], uint16_t *port)
{
    const char *s = addr;
    unsigned long v;

    if (addr == NULL) {
        return RPG_EINVAL;
    }
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.') {
            return RPG_EINVAL;
        }
        s = scan_decimal(s, 3, &v);
        if (s == NULL || v > 255) {
            return RPG_EINVAL;
        }
    }
    if (*s != ':') {
        return RPG_EINVAL;
    }
    /* At most 4 * 3 digits + 3 dots, so the host fits in 16 bytes. */
    size_t host_len = (size_t)(s - addr);
    s = scan_decimal(s + 1, 5, &v);
    if (s == NULL || *s != '\0' || v < 1 || v > 65535) {
        return RPG_EINVAL;
    }
    if (host != NULL) {
        memcpy(host, addr, host_len);
        host[host_len] = '\0';
    }
    if (port != NULL) {
        *port = (uint16_t)v;
    }
    return 0;
}

/* Reads a dotted quad and returns its end, or NULL. */
static const char *scan_ipv4(const char *s)
{
    unsigned long v;

    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.') {
            return NULL;
        }
        s = scan_decimal(s, 3, &v);
        if (s == NULL || v > 255) {
            return NULL;
        }
    }
    return s;
}

int conf_parse_cidr(const char *cidr, char host[16], unsigned *prefix)
{
    const char *s = NULL;
    unsigned long v;

    if (cidr == NULL || (s = scan_ipv4(cidr)) == NULL || *s != '/') {
        return RPG_EINVAL;
    }
    size_t host_len = (size_t)(s - cidr);
    s = scan_decimal(s + 1, 2, &v);
    if (s == NULL || *s != '\0' || v < 1 || v > 32) {
        return RPG_EINVAL;
    }
    if (host != NULL) {
        memcpy(host, cidr, host_len);
        host[host_len] = '\0';
    }
    if (prefix != NULL) {
        *prefix = (unsigned)v;
    }
    return 0;
}

/* The dotted quad at the start of s as a number, s being known to start with one. */
static uint32_t ipv4_value(const char *s)
{
    uint32_t v = 0;
    char *end;

    for (int i = 0; i < 4; i++) {
        v = v * 256 + (uint32_t)strtoul(s, &end, 10);
        s = *end == '.' ? end + 1 : end;
    }
    return v;
}

/* Why cidr cannot be the VIP, or NULL when it can. ip addr would take a network or broadcast
 * address, but no client could reach it, and 0/8, 127/8 and 224/4 and up are not unicast on a
 * LAN. Prefixes 31 and 32 have no network or broadcast address (RFC 3021). */
static const char *cidr_not_host(const char *cidr, unsigned prefix)
{
    uint32_t a = ipv4_value(cidr);
    uint32_t host_mask = prefix == 32 ? 0 : UINT32_MAX >> prefix;

    if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 24) >= 224) {
        return "a unicast host address";
    }
    if (prefix <= 30 && (a & host_mask) == 0) {
        return "a host address, not the network address of its prefix";
    }
    if (prefix <= 30 && (a & host_mask) == host_mask) {
        return "a host address, not the broadcast address of its prefix";
    }
    return NULL;
}

static bool is_wildcard(const char *addr)
{
    return strncmp(addr, "0.0.0.0:", 8) == 0;
}

static bool is_name(const char *s, size_t max_len)
{
    size_t n = strlen(s);

    if (n == 0 || n > max_len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-')) {
            return false;
        }
    }
    return true;
}

/* A name the kernel takes for a network interface (dev_valid_name in net/core/dev.c): it refuses
 * "." and "..", '/', ':' and white space. The other characters, and a leading '-', are refused
 * here because ip and arping take the name as an argument, where "-x" would read as an option. */
static bool is_ifname(const char *s)
{
    return is_name(s, CONF_IFNAME_MAX - 1) && s[0] != '-' && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* A PostgreSQL setting name: plain or "extension.name" (GUC names are case-insensitive). */
static bool is_param_name(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) {
        return false;
    }
    for (s++; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.')) {
            return false;
        }
    }
    return true;
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};

    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* Converts s into the field k describes at base. On failure returns false and writes what was
 * expected into why; the caller adds the position and the key. Used for defaults too, so a
 * default is checked exactly like a value in the file. */
static bool convert(const struct conf_key *k, void *base, const char *s, char *why, size_t n)
{
    char *f = (char *)base + k->off;
    size_t len = strlen(s);
    char q[48];
    unsigned long v;
    bool b;

    switch (k->type) {
    case KEY_STRING:
        /* The value is not echoed: it may be a password. */
        if (len < (size_t)k->min || len >= k->size) {
            snprintf(why, n, "expected %ld..%zu bytes, got %zu", k->min, k->size - 1, len);
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_NAME:
        if (!is_name(s, k->size - 1)) {
            snprintf(why, n, "expected a name of 1..%zu characters from [A-Za-z0-9_.-], got %s",
                     k->size - 1, quote(s, q));
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_LISTEN:
    case KEY_ADDR:
        if (conf_parse_addr(s, NULL, NULL) != 0) {
            snprintf(why, n, "expected IPv4 address:port, got %s", quote(s, q));
            return false;
        }
        if (k->type == KEY_ADDR && is_wildcard(s)) {
            snprintf(why, n, "expected an address other nodes can connect to, got %s", quote(s, q));
            return false;
        }
        assert(len < k->size);
        memcpy(f, s, len + 1);
        return true;
    case KEY_PATH:
        if (s[0] != '/') {
            snprintf(why, n, "expected an absolute path, got %s", quote(s, q));
            return false;
        }
        if (len >= k->size) {
            snprintf(why, n, "expected a path of at most %zu bytes, got %zu", k->size - 1, len);
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_UINT:
    case KEY_INT: {
        const char *end = scan_decimal(s, 9, &v);
        if (end == NULL || *end != '\0' || v < (unsigned long)k->min || v > (unsigned long)k->max) {
            snprintf(why, n, "expected an integer %ld..%ld, got %s", k->min, k->max, quote(s, q));
            return false;
        }
        if (k->type == KEY_UINT) {
            *(unsigned *)f = (unsigned)v;
        } else {
            *(int *)f = (int)v;
        }
        return true;
    }
    case KEY_BOOL:
        if (!parse_bool(s, &b)) {
            snprintf(why, n, "expected true or false (or yes/no, on/off), got %s", quote(s, q));
            return false;
        }
        *(bool *)f = b;
        return true;
    case KEY_ENUM: {
        char list[96] = "";
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcasecmp(s, k->names[i]) == 0) {
                memcpy(f, &i, sizeof i);
                return true;
            }
            if (i > 0) {
                strncat(list, "|", sizeof list - strlen(list) - 1);
            }
            strncat(list, k->names[i], sizeof list - strlen(list) - 1);
        }
        snprintf(why, n, "expected one of %s, got %s", list, quote(s, q));
        return false;
    }
    case KEY_CIDR: {
        struct conf_cidr *cidr = (struct conf_cidr *)f;
        const char *end = scan_ipv4(s);
        const char *what;
        unsigned prefix;
        assert(k->size == sizeof *cidr);
        if (conf_parse_cidr(s, cidr->host, &prefix) != 0) {
            /* A well-formed address with a prefix length outside 1..32 gets its own message. */
            if (end != NULL && *end == '/' && (end = scan_decimal(end + 1, 3, &v)) != NULL &&
                *end == '\0') {
                snprintf(why, n, "expected a prefix length 1..32, got %s", quote(s, q));
            } else {
                snprintf(why, n, "expected IPv4 address/prefix, got %s", quote(s, q));
            }
            return false;
        }
        if ((what = cidr_not_host(s, prefix)) != NULL) {
            snprintf(why, n, "expected %s, got %s", what, quote(s, q));
            return false;
        }
        assert(len < sizeof cidr->text);
        memcpy(cidr->text, s, len + 1);
        cidr->prefix = prefix;
        return true;
    }
    case KEY_IFNAME:
        if (strchr(s, ':') != NULL) {
            snprintf(why, n,
                     "expected an interface name, got %s (a name with ':' is an address label, "
                     "name the interface itself)",
                     quote(s, q));
            return false;
        }
        if (!is_ifname(s)) {
            snprintf(why, n,
                     "expected an interface name of 1..%zu characters from [A-Za-z0-9_.-] not "
                     "starting with '-', got %s",
                     k->size - 1, quote(s, q));
            return false;
        }
        memcpy(f, s, len + 1);
        return true;
    case KEY_MAX_LAG: {
        struct conf_max_lag *ml = (struct conf_max_lag *)f;
        assert(k->size == sizeof *ml);
        /* YAML's null (Patroni's way to say no limit). */
        if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0) {
            ml->set = false;
            ml->bytes = 0;
            return true;
        }
        uint64_t bytes = 0;
        bool ok = len > 0 && len <= 19;
        for (size_t i = 0; ok && i < len; i++) {
            ok = s[i] >= '0' && s[i] <= '9';
            bytes = bytes * 10 + (uint64_t)(s[i] - '0');
        }
        if (!ok || bytes > CONF_MAX_LAG_MAX) {
            snprintf(why, n, "expected a number of bytes 0..%llu, or null (no limit), got %s",
                     (unsigned long long)CONF_MAX_LAG_MAX, quote(s, q));
            return false;
        }
        ml->set = true;
        ml->bytes = bytes;
        return true;
    }
    case KEY_SYNC_MODE: {
        /* Patroni's synchronous_mode is on, off or quorum (YAML 1.1 reads on as true): its
         * non-strict modes degrade to asynchronous as raftpg's quorum does. */
        static const struct {
            const char *word;
            int mode;
        } words[] = {{"off", 0}, {"false", 0}, {"no", 0},  {"quorum", 1},
                     {"on", 1},  {"true", 1},  {"yes", 1}, {"strict", 2}};
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
            if (strcasecmp(s, words[i].word) == 0) {
                memcpy(f, &words[i].mode, sizeof words[i].mode);
                return true;
            }
        }
        snprintf(why, n,
                 "expected off, quorum or strict (or Patroni's on/true, read as quorum), got %s",
                 quote(s, q));
        return false;
    }
    case KEY_SECTION:
    case KEY_MEMBERS:
    case KEY_PARAMS:
    case KEY_STRLIST:
    case KEY_NETLIST:
    case KEY_HEADERS:
    case KEY_OTHER:
    case KEY_IGNORED:
    case KEY_REFUSED:
    case KEY_METHOD:
    case KEY_ARGS: break;
    }
    assert(!"convert called on a container key");
    return false;
}

static void apply_defaults(const struct conf_key *table, void *base)
{
    char why[RPG_ERRMSG_SIZE];

    for (const struct conf_key *k = table; k->key != NULL; k++) {
        if (k->type == KEY_SECTION) {
            apply_defaults(k->sub, base);
        } else if (k->def != NULL) {
            bool ok = convert(k, base, k->def, why, sizeof why);
            assert(ok && "a default in a key table is invalid");
            (void)ok;
        }
    }
}

static int parse_mapping(struct parser *p, const struct conf_key *table, void *base);

static int parse_scalar(struct parser *p, const struct conf_key *k, void *base)
{
    char why[RPG_ERRMSG_SIZE];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 || (rv = scalar_text(p, &s)) != 0) {
        return rv;
    }
    if (!convert(k, base, s, why, sizeof why)) {
        return fail(p, "%s", why);
    }
    return 0;
}

/* A member's name, raft address and api address must each differ from every earlier member's:
 * libraft identifies nodes by these, and two members on one address could never both run. */
static int check_member(struct parser *p, const struct conf_member *members, unsigned i)
{
    static const struct {
        const char *key, *what;
        size_t off;
    } fields[] = {
        {"name", "member name", offsetof(struct conf_member, name)},
        {"raft", "raft address", offsetof(struct conf_member, raft)},
        {"api", "api address", offsetof(struct conf_member, api)},
    };
    char q[48];

    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        const char *mine = (const char *)&members[i] + fields[f].off;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(mine, (const char *)&members[j] + fields[f].off) != 0) {
                continue;
            }
            struct mark m = where_first(p, p->path, NULL); /* the entry, then the field */
            path_push(p, ".%s", fields[f].key);
            where_find(p, p->path, &m);
            return fail_at(p, m, p->path, "duplicate %s %s", fields[f].what, quote(mine, q));
        }
    }
    return 0;
}

static int parse_members(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_member *members = (struct conf_member *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    struct mark start = ev_mark(p);
    int rv;

    assert(k->size == sizeof *members);
    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            break;
        }
        if (*n == (unsigned)k->max) {
            return fail(p, "expected %ld..%ld members, got more", k->min, k->max);
        }
        size_t saved = path_push(p, "[%u]", *n);
        where_add(p, ev_mark(p));
        if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping")) != 0 ||
            (rv = parse_mapping(p, k->sub, &members[*n])) != 0) {
            return rv;
        }
        (*n)++;
        if ((rv = check_member(p, members, *n - 1)) != 0) {
            return rv;
        }
        path_pop(p, saved);
    }
    if (*n < (unsigned)k->min) {
        return fail_at(p, start, p->path, "expected %ld..%ld members, got %u", k->min, k->max, *n);
    }
    return 0;
}

/* postgresql.parameters: values are kept as written, so "128MB" or "on" reach PostgreSQL
 * unchanged; YAML 1.1 typing ("on" -> true) would change them. */
static int parse_params(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char q[48];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            return 0;
        }
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar key")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        if (!is_param_name(s)) {
            return fail(p, "expected a parameter name, got %s", quote(s, q));
        }
        if (*n == CONF_LIST_MAX) {
            return fail(p, "expected at most %d parameters", CONF_LIST_MAX);
        }
        size_t saved = path_push(p, ".%s", s);
        for (unsigned i = 0; i < *n; i++) {
            /* PostgreSQL reads Work_Mem and work_mem as one setting. */
            if (strcasecmp((*kv)[i].key, s) == 0) {
                return fail(p, "duplicate key");
            }
        }
        char *key = strdup(s);
        if (key == NULL) {
            return fail_nomem(p);
        }
        if ((rv = next(p)) != 0 || (rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            free(key);
            return rv;
        }
        where_add_dcs_entry(p, *n);
        char *value = strdup(s);
        struct conf_kv *grown = value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv) : NULL;
        if (grown == NULL) {
            free(key);
            free(value);
            return fail_nomem(p);
        }
        *kv = grown;
        grown[*n] = (struct conf_kv){key, value};
        (*n)++;
        path_pop(p, saved);
    }
}

/* The characters of an HTTP token (RFC 9110 §5.6.2), which a header name is. */
#define HEADER_TCHARS                                                                              \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"

/* restapi.http_extra_headers and https_extra_headers: names and values checked by
 * conf_header_check, a name given twice (in any case: HTTP names are case-insensitive) refused. */
static int parse_headers(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char why[RPG_ERRMSG_SIZE];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping of header names to values")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            return 0;
        }
        /* Raw text, not scalar_text: conf_header_check says why a control character is
         * refused here (an embedded NUL counts as one). */
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a header name")) != 0) {
            return rv;
        }
        s = (const char *)p->ev.data.scalar.value;
        if (strlen(s) != p->ev.data.scalar.length) {
            return fail(p, "expected a header name, got one with a NUL byte (at offset %zu)",
                        strlen(s));
        }
        if (*n == CONF_HEADERS_MAX) {
            return fail(p, "expected at most %d headers", CONF_HEADERS_MAX);
        }
        /* A name is part of the key in messages once it is known to be a token. */
        size_t len = strlen(s);
        bool token = len > 0 && len < CONF_HEADER_NAME_MAX && strspn(s, HEADER_TCHARS) == len;
        size_t saved = token ? path_push(p, ".%s", s) : p->path_len;
        if (!conf_header_check(s, "x", why, sizeof why)) {
            return fail(p, "%s", why);
        }
        for (unsigned i = 0; i < *n; i++) {
            if (strcasecmp((*kv)[i].key, s) == 0) {
                return fail(p, "duplicate header (names are compared without regard to case)");
            }
        }
        char *key = strdup(s);
        if (key == NULL) {
            return fail_nomem(p);
        }
        if ((rv = next(p)) != 0 || (rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0) {
            free(key);
            return rv;
        }
        s = (const char *)p->ev.data.scalar.value;
        if (strlen(s) != p->ev.data.scalar.length) {
            free(key);
            return fail(p,
                        "the value has a control character (a NUL byte at offset %zu): a CR or LF "
                        "would let it write headers of its own",
                        strlen(s));
        }
        if (!conf_header_check(key, s, why, sizeof why)) {
            free(key);
            return fail(p, "%s", why);
        }
        char *value = strdup(s);
        struct conf_kv *grown = value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv) : NULL;
        if (grown == NULL) {
            free(key);
            free(value);
            return fail_nomem(p);
        }
        *kv = grown;
        grown[*n] = (struct conf_kv){key, value};
        (*n)++;
        path_pop(p, saved);
    }
}

/* The value of one key of a "*" row (user tags; parse_mapping checked the name): a scalar,
 * kept as text. */
static int parse_other(struct parser *p, const struct conf_key *k, void *base, const char *name)
{
    struct conf_kv **kv = (struct conf_kv **)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    const char *s = NULL;
    int rv;
    bool arg = k->type == KEY_ARGS;
    if (*n == CONF_USER_TAGS_MAX) {
        return fail(p, "expected at most %d %s", CONF_USER_TAGS_MAX,
                    arg ? "arguments" : "user tags");
    }
    if ((rv = expect(p, YAML_SCALAR_EVENT,
                     arg ? "a scalar (an argument's value)" : "a scalar (a user tag's value)")) !=
            0 ||
        (rv = scalar_text(p, &s)) != 0) {
        return rv;
    }
    char *key = strdup(name), *value = strdup(s);
    struct conf_kv *grown = key != NULL && value != NULL ? realloc(*kv, (*n + 1) * sizeof **kv)
                                                         : NULL;
    if (grown == NULL) {
        free(key);
        free(value);
        return fail_nomem(p);
    }
    *kv = grown;
    grown[(*n)++] = (struct conf_kv){key, value};
    return 0;
}

static int parse_strlist(struct parser *p, const struct conf_key *k, void *base)
{
    char ***list = (char ***)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }
        if (*n == CONF_LIST_MAX) {
            return fail(p, "expected at most %d entries", CONF_LIST_MAX);
        }
        size_t saved = path_push(p, "[%u]", *n);
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        where_add_dcs_entry(p, *n);
        char *copy = strdup(s);
        char **grown = copy != NULL ? realloc(*list, (*n + 1) * sizeof **list) : NULL;
        if (grown == NULL) {
            free(copy);
            return fail_nomem(p);
        }
        *list = grown;
        grown[(*n)++] = copy;
        path_pop(p, saved);
    }
}

/* Whether s can be a DNS host name: labels of [A-Za-z0-9-] separated by dots, 1..253 bytes. */
static bool is_hostname(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 253) {
        return false;
    }
    for (const char *c = s; *c != '\0'; c++) {
        if (*c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                   (*c >= '0' && *c <= '9') || *c == '-') {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

/* A sequence of allowlist entries (Patroni's restapi.allowlist): an address, a network
 * ADDR/PREFIX, or a host name resolved now, each of its addresses a host network. */
static int parse_netlist(struct parser *p, const struct conf_key *k, void *base)
{
    struct conf_net *list = (struct conf_net *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char why[RPG_ERRMSG_SIZE], q[48];
    const char *s = NULL;
    int rv;

    if ((rv = expect(p, YAML_SEQUENCE_START_EVENT, "a sequence")) != 0) {
        return rv;
    }
    for (unsigned entry = 0;; entry++) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }
        size_t saved = path_push(p, "[%u]", entry);
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        struct conf_net nets[16];
        unsigned got = 0;
        if (conf_net_parse(s, &nets[0], why, sizeof why) == 0) {
            got = 1;
        } else if (strchr(s, '/') != NULL || strchr(s, ':') != NULL || !is_hostname(s)) {
            return fail(p, "%s", why);
        } else {
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int gai = getaddrinfo(s, NULL, &hints, &res);
            if (gai != 0) {
                return fail(p, "cannot resolve the host name %s: %s", quote(s, q),
                            gai_strerror(gai));
            }
            for (struct addrinfo *ai = res; ai != NULL && got < 16; ai = ai->ai_next) {
                char text[INET6_ADDRSTRLEN];
                const void *a =
                    ai->ai_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    inet_ntop(ai->ai_family, a, text, sizeof text) == NULL ||
                    conf_net_parse(text, &nets[got], why, sizeof why) != 0) {
                    continue;
                }
                bool dup = false;
                for (unsigned i = 0; i < got && !dup; i++) {
                    dup = memcmp(&nets[i], &nets[got], sizeof nets[i]) == 0;
                }
                got += dup ? 0 : 1;
            }
            freeaddrinfo(res);
            if (got == 0) {
                return fail(p, "the host name %s has no IPv4 or IPv6 address", quote(s, q));
            }
        }
        if (*n + got > CONF_ALLOWLIST_MAX) {
            return fail(p,
                        "expected at most %d addresses and networks (host names count as many "
                        "as they resolve to)",
                        CONF_ALLOWLIST_MAX);
        }
        memcpy(list + *n, nets, got * sizeof nets[0]);
        *n += got;
        path_pop(p, saved);
    }
}

/* Skips the value that starts at the current event, however deep. */
static int skip_value(struct parser *p)
{
    int depth = 0, rv;
    do {
        if (p->ev.type == YAML_MAPPING_START_EVENT || p->ev.type == YAML_SEQUENCE_START_EVENT) {
            depth++;
        } else if (p->ev.type == YAML_MAPPING_END_EVENT || p->ev.type == YAML_SEQUENCE_END_EVENT) {
            depth--;
        }
        if (depth > 0 && (rv = next(p)) != 0) {
            return rv;
        }
    } while (depth > 0);
    return 0;
}

/* A key that is read but has no effect: noted for the log and check-config. */
static int ignore_value(struct parser *p, const struct conf_key *k)
{
    struct conf *c = p->c;
    struct mark m = ev_mark(p);
    if (c->n_warnings < CONF_WARNINGS_MAX) {
        rpg_fmt(c->warnings[c->n_warnings], sizeof c->warnings[0], "%s:%lu:%lu: %s: ignored: %s",
                p->file, m.line, m.col, p->path, k->why);
    }
    c->n_warnings++;
    return skip_value(p);
}

static int parse_mapping(struct parser *p, const struct conf_key *table, void *base);

/* Patroni passes any other key of a custom bootstrap method as --key=value; a dash is common
 * there (barman-server). */
static bool is_arg_name(const char *s)
{
    if (s[0] == '\0' || s[0] == '-') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-')) {
            return false;
        }
    }
    return true;
}

/* A key of bootstrap that no row names: a custom method's section (Patroni's
 * bootstrap.<method>), whose value the current event after the key starts. */
static int parse_method(struct parser *p, const struct conf_key *k, void *base, const char *key)
{
    struct conf_boot_method *m = (struct conf_boot_method *)((char *)base + k->off);
    unsigned *n = (unsigned *)((char *)base + k->count_off);
    char name[CONF_NAME_MAX];
    int rv;
    /* key lives in the current event, which next() frees. */
    snprintf(name, sizeof name, "%s", key);
    if (strlen(key) >= sizeof m->name || !is_arg_name(key)) {
        return fail(p, "unknown key (a custom bootstrap method's name is 1..63 characters from "
                       "[A-Za-z0-9_.-])");
    }
    for (unsigned i = 0; i < *n; i++) {
        if (strcmp(m[i].name, name) == 0) {
            return fail(p, "duplicate key");
        }
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
        return fail(p,
                    "unknown key (a custom bootstrap method, which bootstrap.method names, is "
                    "a mapping with a command; got %s)",
                    kind(&p->ev));
    }
    if (*n == (unsigned)k->max) {
        return fail(p, "expected at most %ld custom bootstrap methods", k->max);
    }
    where_add(p, ev_mark(p));
    snprintf(m[*n].name, sizeof m[*n].name, "%s", name);
    (*n)++;
    return parse_mapping(p, method_keys, &m[*n - 1]);
}

static int parse_value(struct parser *p, const struct conf_key *k, void *base)
{
    switch (k->type) {
    case KEY_IGNORED: return ignore_value(p, k);
    case KEY_REFUSED: return fail(p, "not supported: %s", k->why);
    case KEY_SECTION: {
        int rv = expect(p, YAML_MAPPING_START_EVENT, "a mapping");
        return rv != 0 ? rv : parse_mapping(p, k->sub, base);
    }
    case KEY_MEMBERS: return parse_members(p, k, base);
    case KEY_PARAMS: return parse_params(p, k, base);
    case KEY_HEADERS: return parse_headers(p, k, base);
    case KEY_STRLIST: return parse_strlist(p, k, base);
    case KEY_NETLIST: return parse_netlist(p, k, base);
    default: return parse_scalar(p, k, base);
    }
}

/* Parses the mapping whose MAPPING-START is the current event, keys from table. Unknown and
 * duplicate keys are errors; missing required keys are reported at the mapping's start. */
static int parse_mapping(struct parser *p, const struct conf_key *table, void *base)
{
    struct mark start = ev_mark(p);
    uint64_t seen = 0;
    const char *s = NULL;
    int rv;

    for (;;) {
        if ((rv = next(p)) != 0) {
            return rv;
        }
        if (p->ev.type == YAML_MAPPING_END_EVENT) {
            break;
        }
        if ((rv = expect(p, YAML_SCALAR_EVENT, "a scalar key")) != 0 ||
            (rv = scalar_text(p, &s)) != 0) {
            return rv;
        }
        const struct conf_key *k = table, *other = NULL;
        while (k->key != NULL && strcmp(k->key, s) != 0) {
            other = strcmp(k->key, "*") == 0 ? k : other;
            k++;
        }
        if (k->key == NULL && other != NULL && other->type == KEY_METHOD) {
            size_t saved = path_push(p, ".%.40s", s);
            if ((rv = parse_method(p, other, base, s)) != 0) {
                return rv;
            }
            path_pop(p, saved);
            continue;
        }
        if (k->key == NULL && other != NULL) {
            /* A custom bootstrap method's extra arguments, or user tags. */
            bool args = other->type == KEY_ARGS;
            char name[64];
            size_t saved = path_push(p, ".%.40s", s);
            if (!(args ? is_arg_name(s) : is_param_name(s)) || strlen(s) >= sizeof name) {
                return fail(p, args ? "expected an argument name of 1..63 characters from "
                                      "[A-Za-z0-9_.-] (passed to command as --name=value) or one "
                                      "of command, no_params, keep_existing_recovery_conf"
                                    : "expected a key of 1..63 characters from [A-Za-z0-9_.] (a "
                                      "user tag) or one of the known keys");
            }
            const struct conf_kv *kv = *(struct conf_kv **)((char *)base + other->off);
            for (unsigned i = 0; i < *(unsigned *)((char *)base + other->count_off); i++) {
                if (strcmp(kv[i].key, s) == 0) {
                    return fail(p, "duplicate key");
                }
            }
            snprintf(name, sizeof name, "%s", s);
            if ((rv = next(p)) != 0) {
                return rv;
            }
            where_add(p, ev_mark(p));
            if ((rv = parse_other(p, other, base, name)) != 0) {
                return rv;
            }
            path_pop(p, saved);
            continue;
        }
        if (k->key == NULL) {
            path_push(p, ".%.40s", s); /* cut short: the key is whatever the file says */
            return fail(p, "unknown key");
        }
        size_t bit = (size_t)(k - table);
        assert(bit < 64 && "a key table has more than 64 rows");
        size_t saved = path_push(p, ".%s", k->key);
        if (seen & (UINT64_C(1) << bit)) {
            return fail(p, "duplicate key");
        }
        seen |= UINT64_C(1) << bit;
        if ((rv = next(p)) != 0) {
            return rv;
        }
        where_add(p, ev_mark(p));
        if ((rv = parse_value(p, k, base)) != 0) {
            return rv;
        }
        path_pop(p, saved);
    }
    for (const struct conf_key *k = table; k->key != NULL; k++) {
        if (k->required && !(seen & (UINT64_C(1) << (k - table)))) {
            path_push(p, ".%s", k->key);
            return fail_at(p, start, p->path, "required key is missing");
        }
    }
    return 0;
}

/* A connect address defaults to the listen address, which is useless to other nodes when it is
 * the wildcard. */
static int default_connect(struct parser *p, char *connect, const char *listen, const char *section)
{
    char key[64], listen_key[64];

    if (connect[0] != '\0') {
        return 0;
    }
    if (is_wildcard(listen)) {
        snprintf(key, sizeof key, "%s.connect_address", section);
        snprintf(listen_key, sizeof listen_key, "%s.listen", section);
        return fail_at(p, where_first(p, listen_key, section), key,
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
            return fail_at(p, where_first(p, "vip.address", NULL), "vip.address",
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
            return fail_at(p, where_first(p, "vip.address", NULL), "vip.address",
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
    if (where_find(p, "bootstrap.post_bootstrap", NULL) &&
        where_find(p, "bootstrap.post_init", &m)) {
        return fail_at(p, m, "bootstrap.post_init",
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
                m = where_first(p, key, "bootstrap");
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
            return fail_at(p, where_first(p, kkey, key), kkey,
                           "true is not supported: raftpg starts the directory the command "
                           "leaves as a primary, without recovery settings (have the command "
                           "recover it to its target and promote it)");
        }
    }
    if (!found) {
        return fail_at(p, where_first(p, "bootstrap.method", "bootstrap"), "bootstrap.method",
                       "names no custom method: add a section bootstrap.%s with a command, or "
                       "use initdb",
                       method);
    }
    return 0;
}

/* Checks that span keys, and fills the defaults that depend on other keys. */
bool conf_rate_valid(const char *s)
{
    unsigned long long v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 10; i++) {
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (i == 0) {
        return false;
    }
    if (s[i] == 'k' && s[i + 1] == '\0') {
        i++;
    } else if (s[i] == 'M' && s[i + 1] == '\0') {
        v *= 1024;
        i++;
    }
    return s[i] == '\0' && v >= 32 && v <= 1048576;
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
         offsetof(struct conf, sync.mode), offsetof(struct conf, dcs.sync_mode), sync_mode_names},
        {"synchronous_node_count", "bootstrap.dcs.synchronous_node_count", KEY_UINT,
         offsetof(struct conf, sync.node_count), offsetof(struct conf, dcs.sync_node_count), NULL},
        {"synchronous_commit", "bootstrap.dcs.synchronous_commit", KEY_ENUM,
         offsetof(struct conf, sync.commit), offsetof(struct conf, dcs.sync_commit),
         sync_commit_names},
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
    if (where_find(p, "bootstrap.dcs.primary_start_timeout", NULL) &&
        where_find(p, "bootstrap.dcs.master_start_timeout", &dm)) {
        return fail_at(p, dm, "bootstrap.dcs.master_start_timeout",
                       "is primary_start_timeout's old name: set only one of them");
    }

    /* Patroni's synchronous_mode_strict: only with a synchronous mode on. */
    if (where_find(p, "bootstrap.dcs.synchronous_mode_strict", &dm) && c->dcs.sync_strict) {
        if (!where_find(p, "bootstrap.dcs.synchronous_mode", NULL) || c->dcs.sync_mode == 0) {
            return fail_at(p, dm, "bootstrap.dcs.synchronous_mode_strict",
                           "requires bootstrap.dcs.synchronous_mode on (or quorum): strict "
                           "means nothing with asynchronous replication");
        }
        c->dcs.sync_mode = 2;
    }
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (!where_find(p, pairs[i].dcs, &dm)) {
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
        if (where_find(p, pairs[i].top, &tm) && !same) {
            char a[32], b[32];
            return fail_at(p, dm, pairs[i].dcs,
                           "%s differs from %s at %s:%lu:%lu (%s): give it in one place",
                           dcs_value_text(pairs[i].type, dcs, pairs[i].names, a, sizeof a),
                           pairs[i].top, p->file, tm.line, tm.col,
                           dcs_value_text(pairs[i].type, top, pairs[i].names, b, sizeof b));
        }
    }
    /* Copied once every pair is compared: two pairs may share a field (the old and new names of
     * one key). */
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (where_find(p, pairs[i].dcs, NULL)) {
            memcpy((char *)c + pairs[i].top_off, (const char *)c + pairs[i].dcs_off,
                   sizes[pairs[i].type]);
        }
    }

    /* The parameters as PATCH /config takes them: folded to lower case (PostgreSQL's names),
     * each checked, raftpg's own refused; sorted, as the replicated state keeps them. */
    struct conf_kv *kv = c->dcs.parameters;
    char q[48];
    if (c->dcs.n_parameters > FSM_PARAMS_MAX) {
        return fail_at(p, where_first(p, "bootstrap.dcs.postgresql.parameters", NULL),
                       "bootstrap.dcs.postgresql.parameters", "%u parameters, at most %d",
                       c->dcs.n_parameters, FSM_PARAMS_MAX);
    }
    for (unsigned i = 0; i < c->dcs.n_parameters; i++) {
        char key[128], why[RPG_ERRMSG_SIZE];
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.parameters.%.60s", kv[i].key);
        struct mark m = where_first(p, key, "bootstrap.dcs.postgresql.parameters");
        for (char *ch = kv[i].key; *ch != '\0'; ch++) {
            *ch = (char)(*ch >= 'A' && *ch <= 'Z' ? *ch - 'A' + 'a' : *ch);
        }
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.parameters.%.60s", kv[i].key);
        const char *owned = pg_param_owned(kv[i].key);
        if (owned != NULL) {
            return fail_at(p, m, key, "not settable here: %s", owned);
        }
        if (strlen(kv[i].key) >= FSM_PARAM_NAME_MAX || strlen(kv[i].value) >= FSM_PARAM_VALUE_MAX) {
            return fail_at(p, m, key,
                           "expected a name of at most %d bytes and a value of at most %d",
                           FSM_PARAM_NAME_MAX - 1, FSM_PARAM_VALUE_MAX - 1);
        }
        if (fsm_param_check(kv[i].key, kv[i].value, why) != 0) {
            return fail_at(p, m, key, "%s", why);
        }
    }
    if (c->dcs.n_parameters > 1) {
        qsort(kv, c->dcs.n_parameters, sizeof kv[0], cmp_kv);
    }
    if (c->dcs.n_pg_hba > FSM_HBA_MAX) {
        return fail_at(p, where_first(p, "bootstrap.dcs.postgresql.pg_hba", NULL),
                       "bootstrap.dcs.postgresql.pg_hba", "%u lines, at most %d", c->dcs.n_pg_hba,
                       FSM_HBA_MAX);
    }
    for (unsigned i = 0; i < c->dcs.n_pg_hba; i++) {
        char key[64], why[RPG_ERRMSG_SIZE];
        snprintf(key, sizeof key, "bootstrap.dcs.postgresql.pg_hba[%u]", i);
        struct mark m = where_first(p, key, "bootstrap.dcs.postgresql.pg_hba");
        if (fsm_hba_check(i, c->dcs.pg_hba[i], why) != 0) {
            return fail_at(p, m, key, "%s", why);
        }
        if (!fsm_hba_type_known(c->dcs.pg_hba[i])) {
            return fail_at(p, m, key,
                           "expected a line beginning with local, host, hostssl, hostnossl, "
                           "hostgssenc or hostnogssenc, got %s",
                           quote(c->dcs.pg_hba[i], q));
        }
    }
    return 0;
}

static int finish(struct parser *p)
{
    struct conf *c = p->c;
    const struct conf_member *self = conf_self(c);
    int rv;

    c->has_postgresql = where_find(p, "postgresql", NULL);
    c->has_vip = where_find(p, "vip", NULL);
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
        return fail_at(p, where_first(p, "raft.heartbeat_timeout", "raft.election_timeout"),
                       "raft.heartbeat_timeout",
                       "must be less than half of raft.election_timeout "
                       "(heartbeat_timeout=%u election_timeout=%u)",
                       c->raft.heartbeat_timeout_ms, c->raft.election_timeout_ms);
    }

    struct mark m0;
    if (where_find(p, "primary_start_timeout", NULL) &&
        where_find(p, "master_start_timeout", &m0)) {
        return fail_at(p, m0, "master_start_timeout",
                       "is primary_start_timeout's old name: set only one of them");
    }

    /* A claim refreshes the address's lifetime once an announcement round: rounds further apart
     * than the lifetime would let it lapse in between. */
    if (c->has_vip && c->vip.announce_repeats > 1 &&
        c->vip.announce_interval_ms >= c->vip.lifetime_s * 1000UL) {
        return fail_at(p, where_first(p, "vip.announce_interval", "vip.lifetime"),
                       "vip.announce_interval",
                       "must be shorter than vip.lifetime (announce_interval=%u ms lifetime=%u s)",
                       c->vip.announce_interval_ms, c->vip.lifetime_s);
    }

    struct mark m;
    if (c->postgresql.basebackup_max_rate[0] != '\0' &&
        !conf_rate_valid(c->postgresql.basebackup_max_rate)) {
        return fail_at(p, where_first(p, "postgresql.basebackup.max-rate", NULL),
                       "postgresql.basebackup.max-rate",
                       "expected 32 to 1048576 kB/s written N, Nk or NM (as pg_basebackup "
                       "--max-rate takes it), got \"%s\"",
                       c->postgresql.basebackup_max_rate);
    }
    if ((c->restapi.auth_username[0] != '\0') != (c->restapi.auth_password[0] != '\0') ||
        strchr(c->restapi.auth_username, ':') != NULL) {
        return fail_at(p, where_first(p, "restapi.authentication", NULL), "restapi.authentication",
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
            return fail_at(p, where_first(p, callbacks[i].key, NULL), callbacks[i].key,
                           "expected an absolute path to a program, then its arguments "
                           "(no shell), got \"%s\"",
                           cmd);
        }
    }
    if (where_find(p, "raft.secret_file", &m)) {
        c->raft.secret_file_pos = (struct conf_pos){(unsigned)m.line, (unsigned)m.col};
    }
    if (where_find(p, "raft.secret_file_previous", &m)) {
        c->raft.secret_file_previous_pos = (struct conf_pos){(unsigned)m.line, (unsigned)m.col};
        /* Peers are always asked to prove the primary secret first: a previous one alone would
         * leave nothing to rotate to. */
        if (c->raft.secret_file[0] == '\0') {
            return fail_at(p, m, "raft.secret_file_previous", "requires raft.secret_file");
        }
        if (strcmp(c->raft.secret_file, c->raft.secret_file_previous) == 0) {
            return fail_at(p, m, "raft.secret_file_previous",
                           "must name another file than raft.secret_file (file=%s)",
                           c->raft.secret_file);
        }
    }

    if (self != NULL) {
        /* libraft binds to the address it gives the other members, so the two cannot differ. */
        if (c->raft.listen[0] == '\0') {
            memcpy(c->raft.listen, self->raft, sizeof c->raft.listen);
        } else if (strcmp(c->raft.listen, self->raft) != 0) {
            return fail_at(p, where_first(p, "raft.listen", NULL), "raft.listen",
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
            return fail_at(p, where_first(p, "raft", NULL), "raft.listen",
                           "required when name is not in raft.members (name=%s)", c->name);
        }
        if (c->restapi.listen[0] == '\0') {
            return fail_at(p, where_first(p, "restapi", ""), "restapi.listen",
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
        return fail_at(p, where_first(p, given, NULL), missing, "required with %s", given);
    }
    if ((c->ctl.certfile[0] != '\0') != (c->ctl.keyfile[0] != '\0')) {
        const char *given = c->ctl.certfile[0] != '\0' ? "ctl.certfile" : "ctl.keyfile";
        const char *missing = c->ctl.certfile[0] != '\0' ? "ctl.keyfile" : "ctl.certfile";
        return fail_at(p, where_first(p, given, NULL), missing, "required with %s", given);
    }
    if (c->restapi.ciphers[0] != '\0') {
        struct mark cm = where_first(p, "restapi.ciphers", NULL);
        if (c->restapi.certfile[0] == '\0') {
            return fail_at(p, cm, "restapi.ciphers",
                           "requires restapi.certfile and restapi.keyfile");
        }
        /* GnuTLS speaks TLS here: Patroni's OpenSSL cipher lists mean nothing to it. */
        gnutls_priority_t prio;
        const char *bad = NULL;
        if (gnutls_priority_init(&prio, c->restapi.ciphers, &bad) != 0) {
            return fail_at(p, cm, "restapi.ciphers",
                           "not a GnuTLS priority string (at \"%.40s\"): write one such as "
                           "\"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1\" or \"SECURE256\" (an OpenSSL "
                           "cipher list, as Patroni takes, is not understood)",
                           bad != NULL ? bad : c->restapi.ciphers);
        }
        gnutls_priority_deinit(prio);
    }
    if (c->restapi.keyfile_password[0] != '\0' && c->restapi.keyfile[0] == '\0') {
        return fail_at(p, where_first(p, "restapi.keyfile_password", NULL),
                       "restapi.keyfile_password", "requires restapi.keyfile");
    }
    if (c->ctl.keyfile_password[0] != '\0' && c->ctl.keyfile[0] == '\0') {
        return fail_at(p, where_first(p, "ctl.keyfile_password", NULL), "ctl.keyfile_password",
                       "requires ctl.keyfile");
    }
    if ((c->ctl.auth_username[0] != '\0') != (c->ctl.auth_password[0] != '\0') ||
        strchr(c->ctl.auth_username, ':') != NULL) {
        return fail_at(p, where_first(p, "ctl.authentication", NULL), "ctl.authentication",
                       "expected both username and password, and no ':' in the username");
    }
    if (c->restapi.verify_client != CONF_VERIFY_NONE) {
        struct mark vm = where_first(p, "restapi.verify_client", NULL);
        const char *mode = verify_client_names[c->restapi.verify_client];
        if (c->restapi.certfile[0] == '\0') {
            return fail_at(p, vm, "restapi.verify_client",
                           "%s requires restapi.certfile and restapi.keyfile: client certificates "
                           "exist only over TLS",
                           mode);
        }
        if (c->restapi.cafile[0] == '\0') {
            return fail_at(p, vm, "restapi.verify_client",
                           "%s requires restapi.cafile, the CA that signs the client certificates",
                           mode);
        }
        /* The agents poll each other's API; refused handshakes would leave every other member
         * unreachable to this one (Patroni's documentation asks for the same). */
        if (c->restapi.verify_client == CONF_VERIFY_REQUIRED && c->ctl.certfile[0] == '\0') {
            return fail_at(p, vm, "restapi.verify_client",
                           "required needs ctl.certfile and ctl.keyfile: the agents present that "
                           "certificate when they ask the other members");
        }
    }
    if (c->restapi.crlfile[0] != '\0') {
        struct mark xm = where_first(p, "restapi.crlfile", NULL);
        if (c->restapi.certfile[0] == '\0' || c->restapi.cafile[0] == '\0') {
            return fail_at(p, xm, "restapi.crlfile",
                           "requires restapi.certfile, restapi.keyfile and restapi.cafile: it "
                           "lists certificates that restapi.cafile's CA revoked");
        }
    }
    if (c->ctl.crlfile[0] != '\0') {
        struct mark xm = where_first(p, "ctl.crlfile", NULL);
        if (c->ctl.cacert[0] == '\0' && c->restapi.cafile[0] == '\0') {
            return fail_at(p, xm, "ctl.crlfile",
                           "requires ctl.cacert or restapi.cafile: it lists certificates that "
                           "CA revoked");
        }
        if (c->ctl.insecure) {
            return fail_at(p, xm, "ctl.crlfile",
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

static int parse_document(struct parser *p)
{
    int rv;

    if ((rv = next(p)) != 0) { /* STREAM-START */
        return rv;
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type == YAML_STREAM_END_EVENT) {
        return fail_at(p, (struct mark){1, 1}, "", "empty configuration, expected a mapping");
    }
    assert(p->ev.type == YAML_DOCUMENT_START_EVENT);
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type == YAML_SCALAR_EVENT && p->ev.data.scalar.length == 0) {
        return fail_at(p, (struct mark){1, 1}, "", "empty configuration, expected a mapping");
    }
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
        return fail(p, "expected a mapping at the top level, got %s", kind(&p->ev));
    }
    where_add(p, ev_mark(p));
    if ((rv = parse_mapping(p, root_keys, p->c)) != 0) {
        return rv;
    }
    if ((rv = next(p)) != 0) { /* DOCUMENT-END */
        return rv;
    }
    if ((rv = next(p)) != 0) {
        return rv;
    }
    if (p->ev.type != YAML_STREAM_END_EVENT) {
        return fail(p, "expected one YAML document, got more");
    }
    return finish(p);
}

/* Reads the whole stream once for syntax alone. libyaml emits a scalar before it finds that the
 * next line breaks the syntax ("scope: demo" then " name: x" reads as "demo name"), so without
 * this pass a mangled value would be reported instead of the real mistake. */
static int check_syntax(struct parser *p)
{
    yaml_event_type_t type;

    do {
        if (!yaml_parser_parse(&p->yaml, &p->ev)) {
            return syntax_error(p);
        }
        type = p->ev.type;
        yaml_event_delete(&p->ev);
    } while (type != YAML_STREAM_END_EVENT);
    return 0;
}

static void conf_init(struct conf *c, const char *path)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    apply_defaults(root_keys, c);
}

/* Runs one pass over the input with a fresh libyaml parser. */
static int run_pass(struct parser *p, int (*pass)(struct parser *))
{
    int rv;

    if (!yaml_parser_initialize(&p->yaml)) {
        return fail_nomem(p);
    }
    yaml_parser_set_input_string(&p->yaml, (const unsigned char *)p->text, p->len);
    rv = pass(p);
    if (p->have_ev) {
        yaml_event_delete(&p->ev);
        p->have_ev = false;
    }
    yaml_parser_delete(&p->yaml);
    return rv;
}

static int load(const char *file, const char *text, size_t len, struct conf *c, char *errmsg)
{
    struct parser *p = calloc(1, sizeof *p);
    int rv;

    if (p == NULL) {
        rv = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", file);
        goto out;
    }
    p->file = file;
    p->text = text;
    p->len = len;
    p->errmsg = errmsg;
    p->c = c;
    rv = run_pass(p, check_syntax);
    if (rv == 0) {
        rv = run_pass(p, parse_document);
    }
    free(p);
out:
    if (rv != 0) {
        conf_free(c);
    }
    return rv;
}

int conf_load_string(const char *name, const char *text, struct conf *c, char *errmsg)
{
    if (name == NULL) {
        name = "<string>";
    }
    conf_init(c, name);
    if (text == NULL) {
        return rpg_err(errmsg, RPG_EINVAL, "%s: no configuration text", name);
    }
    return load(name, text, strlen(text), c, errmsg);
}

int conf_load(const char *path, struct conf *c, char *errmsg)
{
    char *text = NULL;
    size_t len = 0;
    ssize_t got;
    int fd;
    int rv;

    memset(c, 0, sizeof *c);
    if (path == NULL) {
        return rpg_err(errmsg, RPG_EINVAL, "conf_load: no path");
    }
    if (strlen(path) >= sizeof c->path) {
        return rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: path too long", path);
    }
    conf_init(c, path);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto err_errno;
    }
    /* One byte past the cap tells a file of exactly CONF_FILE_MAX bytes from a larger one. */
    text = malloc(CONF_FILE_MAX + 1);
    if (text == NULL) {
        close(fd);
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", path);
    }
    while (len <= CONF_FILE_MAX) {
        got = read(fd, text + len, CONF_FILE_MAX + 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            goto err_errno;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    if (len > CONF_FILE_MAX) {
        free(text);
        memset(c, 0, sizeof *c);
        return rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: larger than %d bytes", path,
                       CONF_FILE_MAX);
    }
    rv = load(path, text, len, c, errmsg);
    free(text);
    return rv;

err_errno:
    rv = rpg_err(errmsg, RPG_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    free(text);
    memset(c, 0, sizeof *c);
    return rv;
}

void conf_free(struct conf *c)
{
    for (unsigned i = 0; i < c->postgresql.n_parameters; i++) {
        free(c->postgresql.parameters[i].key);
        free(c->postgresql.parameters[i].value);
    }
    free(c->postgresql.parameters);
    for (unsigned i = 0; i < c->postgresql.n_pg_hba; i++) {
        free(c->postgresql.pg_hba[i]);
    }
    free(c->postgresql.pg_hba);
    for (unsigned i = 0; i < c->dcs.n_parameters; i++) {
        free(c->dcs.parameters[i].key);
        free(c->dcs.parameters[i].value);
    }
    free(c->dcs.parameters);
    for (unsigned i = 0; i < c->dcs.n_pg_hba; i++) {
        free(c->dcs.pg_hba[i]);
    }
    free(c->dcs.pg_hba);
    for (unsigned i = 0; i < c->tags.n_user; i++) {
        free(c->tags.user[i].key);
        free(c->tags.user[i].value);
    }
    free(c->tags.user);
    for (unsigned m = 0; m < c->bootstrap.n_methods; m++) {
        struct conf_boot_method *bm = &c->bootstrap.methods[m];
        for (unsigned i = 0; i < bm->n_args; i++) {
            free(bm->args[i].key);
            free(bm->args[i].value);
        }
        free(bm->args);
    }
    struct conf_kv *lists[] = {c->restapi_headers.http, c->restapi_headers.https};
    unsigned counts[] = {c->restapi_headers.n_http, c->restapi_headers.n_https};
    for (int l = 0; l < 2; l++) {
        for (unsigned i = 0; i < counts[l]; i++) {
            free(lists[l][i].key);
            free(lists[l][i].value);
        }
        free(lists[l]);
    }
    sodium_memzero(c->restapi.auth_password, sizeof c->restapi.auth_password);
    sodium_memzero(c->ctl.auth_password, sizeof c->ctl.auth_password);
    sodium_memzero(c->restapi.keyfile_password, sizeof c->restapi.keyfile_password);
    sodium_memzero(c->ctl.keyfile_password, sizeof c->ctl.keyfile_password);
    memset(c, 0, sizeof *c);
}

const char *conf_verify_client_name(enum conf_verify_client mode)
{
    if ((unsigned)mode < sizeof verify_client_names / sizeof verify_client_names[0] - 1) {
        return verify_client_names[mode];
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

const char *conf_server_header(enum conf_server_tokens tokens)
{
    switch (tokens) {
    case CONF_SERVER_TOKENS_PRODUCT_ONLY: return "raftpg";
    case CONF_SERVER_TOKENS_MINIMAL: return "raftpg/" RAFTPG_VERSION;
    case CONF_SERVER_TOKENS_ORIGINAL: break;
    }
    return NULL;
}

/* Headers the server writes itself, and why an extra header may not name them. */
static const struct {
    const char *name, *why;
} managed_headers[] = {
    {"Content-Length", "frames every answer (libmicrohttpd writes it)"},
    {"Transfer-Encoding", "frames every answer (libmicrohttpd writes it)"},
    {"Connection", "frames every answer (libmicrohttpd writes it)"},
    {"Keep-Alive", "frames every answer (libmicrohttpd writes it)"},
    {"Upgrade", "frames every answer (libmicrohttpd writes it)"},
    {"Trailer", "frames every answer (libmicrohttpd writes it)"},
    {"Content-Type", "describes each answer's body (the agent writes it)"},
    {"Content-Encoding", "describes each answer's body (the agent writes it)"},
    {"Date", "libmicrohttpd writes it"},
    {"Server", "restapi.server_tokens sets it"},
    {"WWW-Authenticate", "the agent writes it on each 401 answer"},
};

bool conf_header_check(const char *name, const char *value, char *why, size_t n)
{
    char q[48];
    size_t len = strlen(name);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7F) {
            /* Not echoed: the message goes to a terminal or a log. */
            snprintf(why, n,
                     "expected a header name, got one with a control character (byte "
                     "0x%02X at offset %zu)",
                     ch, i);
            return false;
        }
    }
    if (len == 0 || len >= CONF_HEADER_NAME_MAX || strspn(name, HEADER_TCHARS) != len) {
        snprintf(why, n,
                 "expected a header name of 1..%d characters from letters, digits and "
                 "!#$%%&'*+-.^_`|~ (an HTTP token), got %s",
                 CONF_HEADER_NAME_MAX - 1, quote(name, q));
        return false;
    }
    for (size_t i = 0; i < sizeof managed_headers / sizeof managed_headers[0]; i++) {
        if (strcasecmp(name, managed_headers[i].name) == 0) {
            snprintf(why, n, "%s cannot be an extra header: %s", managed_headers[i].name,
                     managed_headers[i].why);
            return false;
        }
    }
    size_t vlen = strlen(value);
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7F) {
            snprintf(why, n,
                     "the value has a control character (byte 0x%02X at offset %zu): a CR or LF "
                     "would let it write headers of its own",
                     ch, i);
            return false;
        }
    }
    if (vlen == 0 || vlen >= CONF_HEADER_VALUE_MAX) {
        snprintf(why, n, "expected a value of 1..%d bytes, got %zu", CONF_HEADER_VALUE_MAX - 1,
                 vlen);
        return false;
    }
    if (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' || value[vlen - 1] == '\t') {
        snprintf(why, n, "the value begins or ends with white space, which HTTP drops");
        return false;
    }
    return true;
}

const char *conf_client_crlfile(const struct conf *c)
{
    if (c->ctl.crlfile[0] != '\0') {
        return c->ctl.crlfile;
    }
    return c->ctl.cacert[0] == '\0' ? c->restapi.crlfile : "";
}

int conf_net_parse(const char *text, struct conf_net *net, char *why, size_t n)
{
    char addr[INET6_ADDRSTRLEN + 1], q[48];
    struct conf_net r;
    const char *slash = strchr(text, '/');
    size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);

    memset(&r, 0, sizeof r);
    if (alen == 0 || alen >= sizeof addr) {
        goto bad;
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, r.addr) == 1) {
        r.family = AF_INET;
        r.prefix = 32;
    } else if (inet_pton(AF_INET6, addr, r.addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        r.family = AF_INET6;
        r.prefix = 128;
        if (slash == NULL && memcmp(r.addr, mapped, sizeof mapped) == 0) {
            memmove(r.addr, r.addr + 12, 4);
            memset(r.addr + 4, 0, 12);
            r.family = AF_INET;
            r.prefix = 32;
        }
    } else {
        goto bad;
    }
    if (slash != NULL) {
        const char *d = slash + 1;
        unsigned long v = 0;
        size_t digits = strspn(d, "0123456789");
        if (digits == 0 || digits > 3 || d[digits] != '\0' || (digits > 1 && d[0] == '0')) {
            goto bad_prefix;
        }
        v = strtoul(d, NULL, 10);
        if (v > r.prefix) {
            goto bad_prefix;
        }
        r.prefix = (unsigned)v;
    }
    /* Clear the host bits, as Patroni's ip_network(strict=False) does. */
    unsigned size = r.family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < size; i++) {
        unsigned keep = r.prefix >= 8 * (i + 1) ? 8 : r.prefix > 8 * i ? r.prefix - 8 * i : 0;
        r.addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    if (net != NULL) {
        *net = r;
    }
    return 0;
bad_prefix:
    if (why != NULL) {
        snprintf(why, n, "expected a prefix length 0..%u after the address, got %s",
                 r.family == AF_INET ? 32u : 128u, quote(text, q));
    }
    return RPG_EINVAL;
bad:
    if (why != NULL) {
        snprintf(why, n,
                 "expected an IPv4 or IPv6 address, a network ADDRESS/PREFIX or a host name, "
                 "got %s",
                 quote(text, q));
    }
    return RPG_EINVAL;
}

bool conf_net_contains(const struct conf_net *net, const struct conf_net *addr)
{
    if (net->family != addr->family) {
        return false;
    }
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, addr->addr, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (net->addr[full] & mask) == (addr->addr[full] & mask);
}

const struct conf_member *conf_self(const struct conf *c)
{
    for (unsigned i = 0; i < c->raft.n_members && i < CONF_MEMBERS_MAX; i++) {
        if (strcmp(c->raft.members[i].name, c->name) == 0) {
            return &c->raft.members[i];
        }
    }
    return NULL;
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
    return mode >= 0 && mode <= 2 ? sync_mode_names[mode] : "unknown";
}

const char *conf_sync_commit_name(int commit)
{
    return commit >= 0 && commit <= 3 ? sync_commit_names[commit] : "unknown";
}

const char *conf_watchdog_mode_name(enum conf_watchdog_mode mode)
{
    if ((unsigned)mode < sizeof watchdog_mode_names / sizeof watchdog_mode_names[0] - 1) {
        return watchdog_mode_names[mode];
    }
    return "unknown";
}

/* ---- cluster secrets ------------------------------------------------------------------------ */

#define SECRET_FILE_MAX 1024 /* 64 hex digits and some white space; anything longer is wrong */

static int hex_value(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Why the secret file text cannot be a key, or NULL after writing the key. */
static const char *secret_parse(const char *text, size_t len, uint8_t key[CONF_SECRET_SIZE])
{
    size_t i = 0, n = 0;

    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    for (; i + 1 < len && n < CONF_SECRET_SIZE; i += 2, n++) {
        int hi = hex_value((unsigned char)text[i]), lo = hex_value((unsigned char)text[i + 1]);
        if (hi < 0 || lo < 0) {
            break;
        }
        key[n] = (uint8_t)(hi * 16 + lo);
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    if (n != CONF_SECRET_SIZE || i != len) {
        sodium_memzero(key, CONF_SECRET_SIZE);
        return "expected exactly 64 hex digits (raftpg gen-secret FILE writes one)";
    }
    return NULL;
}

int conf_secret_read(const struct conf *c, bool previous, bool any_owner,
                     uint8_t key[CONF_SECRET_SIZE], char *errmsg)
{
    const char *path = previous ? c->raft.secret_file_previous : c->raft.secret_file;
    struct conf_pos pos = previous ? c->raft.secret_file_previous_pos : c->raft.secret_file_pos;
    const char *name = previous ? "raft.secret_file_previous" : "raft.secret_file";
    char text[SECRET_FILE_MAX];
    const char *why = NULL;
    struct stat st;
    ssize_t got;
    int rv = RPG_ECONFIG;

    if (path[0] == '\0') {
        return RPG_ENOTFOUND;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot read %s: %s", c->path, pos.line,
                       pos.col, name, path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot stat %s: %s", c->path, pos.line, pos.col,
                name, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: %s is not a regular file", c->path, pos.line,
                pos.col, name, path);
        goto out;
    }
    if (!any_owner && st.st_uid != geteuid()) {
        rpg_err(errmsg, RPG_ECONFIG,
                "%s:%u:%u: %s: %s must be owned by the agent's user (owner uid=%u, agent uid=%u)",
                c->path, pos.line, pos.col, name, path, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rpg_err(errmsg, RPG_ECONFIG,
                "%s:%u:%u: %s: %s is accessible to its group or to others (mode %04o); "
                "chmod 600 it",
                c->path, pos.line, pos.col, name, path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    got = read(fd, text, sizeof text);
    if (got < 0) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot read %s: %s", c->path, pos.line, pos.col,
                name, path, strerror(errno));
        goto out;
    }
    why = (size_t)got == sizeof text ? "expected exactly 64 hex digits, the file is too long"
                                     : secret_parse(text, (size_t)got, key);
    if (why != NULL) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: %s: %s", c->path, pos.line, pos.col, name, path,
                why);
        goto out;
    }
    rv = 0;
out:
    sodium_memzero(text, sizeof text);
    close(fd);
    return rv;
}

int conf_secret_generate(const char *path, char *errmsg)
{
    uint8_t key[CONF_SECRET_SIZE];
    char hex[2 * CONF_SECRET_SIZE + 2];
    int rv = 0;

    if (sodium_init() < 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot initialise libsodium");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return rpg_err(errmsg, errno == EEXIST ? RPG_EEXIST : RPG_EIO, "create %s: %s%s", path,
                       strerror(errno), errno == EEXIST ? " (refusing to overwrite a secret)" : "");
    }
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    /* The umask may have narrowed the mode further, never widened it; fchmod makes it exact. */
    if (fchmod(fd, 0600) != 0 || write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "write %s: %s", path, strerror(errno));
        unlink(path);
    }
    close(fd);
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    return rv;
}
