/* Node configuration: one YAML file -> a validated struct; errors carry file:line:column. */
#ifndef RAFTPG_CONF_H
#define RAFTPG_CONF_H

#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"

#define CONF_NAME_MAX 64      /* member and scope names, including the NUL */
#define CONF_ADDR_MAX 24      /* "255.255.255.255:65535" plus NUL */
#define CONF_MEMBERS_MAX 9    /* initial Raft members */
#define CONF_CIDR_MAX 19      /* "255.255.255.255/32" plus NUL */
#define CONF_CALLBACK_MAX 512 /* a callback command line, including the NUL */
#define CONF_IFNAME_MAX 16    /* IFNAMSIZ: 15 characters plus NUL */
#define CONF_ALLOWLIST_MAX 64 /* addresses and networks in restapi.allowlist, names resolved */
#define CONF_SECRET_SIZE 32   /* bytes of a cluster secret; its file holds them as 64 hex digits */

/* Where a value was written in the file (line and column from 1; 0 when not given), for checks
 * made after loading, such as the mode of a secret file, which only the agent's user can read. */
struct conf_pos {
    unsigned line, col;
};

/* A member of the initial Raft configuration. Addresses are IPv4 dotted quad ":" port, never
 * 0.0.0.0. Names, raft addresses and api addresses are each unique among the members. */
struct conf_member {
    char name[CONF_NAME_MAX];
    char raft[CONF_ADDR_MAX]; /* Raft transport address */
    char api[CONF_ADDR_MAX];  /* REST API address other members and ctl use */
};

#define CONF_USER_TAGS_MAX 32
#define CONF_WARNINGS_MAX 16    /* messages about ignored keys kept */
#define CONF_BOOT_METHODS_MAX 4 /* custom method sections under bootstrap */

struct conf_kv {
    char *key;   /* owned */
    char *value; /* owned; scalars are kept as the text written in the file */
};

enum conf_log_format { CONF_LOG_TEXT = 0, CONF_LOG_JSON };
enum conf_log_level { CONF_LOG_DEBUG = 0, CONF_LOG_INFO, CONF_LOG_WARNING, CONF_LOG_ERROR };

/* How the Linux watchdog is used (DESIGN.md rule 5), as in Patroni: off never opens the device;
 * automatic uses it when it can be armed and runs on without it otherwise; required refuses to
 * run as primary without it. */
enum conf_watchdog_mode { CONF_WATCHDOG_OFF = 0, CONF_WATCHDOG_AUTOMATIC, CONF_WATCHDOG_REQUIRED };

/* An IPv4 host address with its prefix length, as written: "10.0.0.100/24". */
struct conf_cidr {
    char text[CONF_CIDR_MAX]; /* canonical: no leading zeros, so equal addresses compare equal */
    char host[16];            /* "10.0.0.100" */
    unsigned prefix;          /* 1..32 */
};

/* How the API treats TLS client certificates (Patroni's restapi.verify_client): none asks for
 * none; optional verifies one that is presented (a bad one fails the handshake) and requires one
 * for every change; required refuses the handshake to a client without a valid one. */
enum conf_verify_client { CONF_VERIFY_NONE = 0, CONF_VERIFY_OPTIONAL, CONF_VERIFY_REQUIRED };

/* The API's Server header (Patroni's restapi.server_tokens): original sends what the HTTP
 * library sends (libmicrohttpd sends none), product_only "raftpg", minimal "raftpg/VERSION". */
enum conf_server_tokens {
    CONF_SERVER_TOKENS_ORIGINAL = 0,
    CONF_SERVER_TOKENS_PRODUCT_ONLY,
    CONF_SERVER_TOKENS_MINIMAL
};

#define CONF_HEADERS_MAX 32        /* entries in each of restapi.http(s)_extra_headers */
#define CONF_HEADER_NAME_MAX 64    /* a header name, including the NUL */
#define CONF_HEADER_VALUE_MAX 1024 /* a header value, including the NUL */

/* An IPv4 or IPv6 network: the address with its host bits cleared, and the prefix length. A host
 * address is a network with the full prefix (32 or 128). */
struct conf_net {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; the first 4 bytes for AF_INET */
    unsigned prefix;  /* 0..32 or 0..128 */
};

/* The write VIP (DESIGN.md §8): the address the primary holds, claimed with ip and arping. */
struct conf_vip {
    /* Required. A unicast host address (not 0/8, 127/8, 224/4 and up, nor the network or
     * broadcast address of its prefix when the prefix is 30 or less) that is no member's own
     * address: releasing the VIP deletes it from the interface. */
    struct conf_cidr address;
    char interface[CONF_IFNAME_MAX]; /* required; a Linux interface name, no ':' aliases */
    unsigned arping_count;           /* probes before a claim; default 3, range 1..100 */
    unsigned announce_repeats;       /* gratuitous ARP rounds; default 3, range 0..100 */
    unsigned announce_interval_ms;   /* between rounds, start to start; default 1000 */
    /* Seconds the kernel keeps the address without a renewal (valid_lft): a VIP whose agent
     * died goes away by itself. Default 2, range 1..3600. */
    unsigned lifetime_s;
    char ip_bin[PATH_MAX];     /* default /usr/sbin/ip */
    char arping_bin[PATH_MAX]; /* Thomas Habets' arping; default /usr/sbin/arping */
};

struct conf_watchdog {
    enum conf_watchdog_mode mode; /* default off */
    char device[PATH_MAX];        /* default /dev/watchdog */
    unsigned safety_margin_ms;    /* between the watchdog firing and the lease's end;
                                     default 1000, range 100..60000 */
};

/* The largest maximum_lag_on_failover taken: 2^62 bytes (cfgdoc.h CFGDOC_MAX_LAG_MAX). */
#define CONF_MAX_LAG_MAX ((uint64_t)1 << 62)

struct conf {
    char path[PATH_MAX]; /* the file this came from */
    char scope[CONF_NAME_MAX];
    char name[CONF_NAME_MAX];

    struct {
        /* This member's raft address in members (must equal it when given); required, and
         * never 0.0.0.0, when name is not in members (the node joins an existing cluster). */
        char listen[CONF_ADDR_MAX];
        char data_dir[PATH_MAX];       /* required */
        unsigned election_timeout_ms;  /* default 500, range 50..60000 */
        unsigned heartbeat_timeout_ms; /* default 100, range 10..10000, must be < election/2 */
        bool pre_vote;                 /* default true */
        /* The cluster secret that authenticates and encrypts Raft traffic (transport.h); empty:
         * the unauthenticated libraft TCP transport, with a warning. */
        char secret_file[PATH_MAX];
        struct conf_pos secret_file_pos;
        /* A second secret accepted from peers during a rotation; requires secret_file. */
        char secret_file_previous[PATH_MAX];
        struct conf_pos secret_file_previous_pos;
        struct conf_member members[CONF_MEMBERS_MAX];
        unsigned n_members; /* 1..CONF_MEMBERS_MAX, required */
    } raft;

    struct {
        /* default: this member's api address; required when name is not in members */
        char listen[CONF_ADDR_MAX];
        /* default: this member's api address, else listen; never 0.0.0.0 */
        char connect_address[CONF_ADDR_MAX];
        /* above it, a new connection closes the oldest one still waiting for its request */
        unsigned max_connections; /* default 1000 */
        /* a complete request must arrive within this of the accept or the previous response */
        unsigned request_timeout_s; /* default 5 */
        /* TLS (both or neither): the API speaks HTTPS, and the agents ask each other over
         * HTTPS, verifying with cafile (default: the system's CAs) */
        char certfile[PATH_MAX];
        char keyfile[PATH_MAX];
        char keyfile_password[256]; /* Patroni's key: decrypts keyfile; "" not encrypted */
        char cafile[PATH_MAX];
        /* Patroni's restapi.ciphers, as a GnuTLS priority string ("" GnuTLS's defaults) */
        char ciphers[512];
        /* Patroni's restapi.authentication: HTTP basic credentials that authorise a change
         * (as a cluster-secret signature does); "" none */
        char auth_username[CONF_NAME_MAX];
        char auth_password[128];
        /* Patroni's restapi.verify_client: requires certfile and cafile (the CA that signs the
         * client certificates); required also needs ctl.certfile, which the agents present to
         * each other. Default none. */
        enum conf_verify_client verify_client;
        /* Patroni's restapi.allowlist: the networks changes may come from (host names are
         * resolved at load, each address a host network); empty with allowlist_include_members
         * false: from anywhere. An array, not a pointer: reload compares the section's bytes. */
        struct conf_net allowlist[CONF_ALLOWLIST_MAX];
        unsigned n_allowlist;
        /* Patroni's restapi.allowlist_include_members: the hosts of the members' API addresses
         * (from the cluster state) may send changes too. Default false. */
        bool allowlist_include_members;
        enum conf_server_tokens server_tokens; /* default original */
        /* Certificate revocation lists (PEM or DER) signed by a CA of cafile: a client
         * certificate they revoke is refused in the handshake; also the agents' and ctl's list
         * for the members' certificates when ctl.cacert is not set. "" none. */
        char crlfile[PATH_MAX];
    } restapi;

    /* Patroni's restapi.http_extra_headers and https_extra_headers: sent on every API answer
     * (https: only when the API speaks TLS, replacing a same-named http one). Names are HTTP
     * tokens, none the server sets itself (conf_header_check); values have no control
     * characters. Owned arrays, apart from restapi because reload compares that section's
     * bytes. */
    struct {
        struct conf_kv *http;
        unsigned n_http;
        struct conf_kv *https;
        unsigned n_https;
    } restapi_headers;

    /* Patroni's ctl section: how this node's clients (raftpg ctl -c, and the agent when it asks
     * the other members) speak to the API. */
    struct {
        char certfile[PATH_MAX];    /* client certificate (PEM), with keyfile; "" none */
        char keyfile[PATH_MAX];     /* its key; must not be accessible to others */
        char keyfile_password[256]; /* decrypts keyfile; "" not encrypted */
        char cacert[PATH_MAX];      /* verifies the members' certificates; "" restapi.cafile */
        /* revocation lists (PEM: libcurl reads no other) for the members' certificates, signed
         * by a CA of cacert (else restapi.cafile); "" restapi.crlfile when cacert is not set */
        char crlfile[PATH_MAX];
        bool insecure; /* HTTPS without verifying the server's certificate (ctl only) */
        char auth_username[CONF_NAME_MAX]; /* basic credentials for changes; "" take restapi's */
        char auth_password[128];
    } ctl;

    struct {
        enum conf_log_level level;   /* default info */
        enum conf_log_format format; /* default text */
    } log;

    /* postgresql: optional section; has_postgresql says whether it was given. */
    bool has_postgresql;
    struct {
        char bin_dir[PATH_MAX];              /* default /usr/lib/postgresql/15/bin */
        char data_dir[PATH_MAX];             /* required when the section is present */
        char listen[CONF_ADDR_MAX];          /* address:port, required; 0.0.0.0 allowed */
        char connect_address[CONF_ADDR_MAX]; /* default: listen; never 0.0.0.0 */
        struct conf_kv *parameters;          /* owned array */
        unsigned n_parameters;
        char **pg_hba; /* owned array of owned strings */
        unsigned n_pg_hba;
        char superuser_name[CONF_NAME_MAX];   /* default "postgres" */
        char superuser_password[256];         /* default empty */
        char replication_name[CONF_NAME_MAX]; /* default "replicator" */
        char replication_password[256];       /* default empty */
        char passfile[PATH_MAX];              /* default empty */
        /* Patroni's key, true by default here: false, a directory that last ran as primary is
         * cloned again instead of rewound. */
        bool use_pg_rewind;
        /* Patroni's key: a data directory that must be re-cloned (pg_rewind failed, or a copy was
         * cut short) is deleted; false (the default): it is moved aside once, beside itself. */
        bool remove_data_directory_on_rewind_failure;
        /* Patroni's key: a data directory whose timeline diverged from the primary's and that
         * pg_rewind could not bring back is deleted; false (the default): moved aside once. */
        bool remove_data_directory_on_diverged_timelines;
        /* Patroni's postgresql.basebackup.max-rate: pg_basebackup --max-rate for a clone, as
         * pg_basebackup takes it (kB/s, or with k or M); "" (the default): unthrottled. */
        char basebackup_max_rate[16];
        /* Patroni's postgresql.recovery_conf.restore_command (PostgreSQL 12 and later read it from
         * the configuration, where raftpg writes it): the standby fetches archived WAL with it,
         * and pg_rewind the WAL the old primary no longer has (--restore-target-wal). "" (the
         * default): none. */
        char restore_command[1024];
        /* Patroni's postgresql.callbacks: a command (an absolute path, then arguments split on
         * blanks, no shell) run as COMMAND... ACTION ROLE SCOPE when this member's PostgreSQL
         * starts, stops or changes role; "" none. raftpg's own: on_switchover (run on the primary
         * before a switchover stops it, waited for) and on_switchover_abandoned. */
        struct {
            char on_start[CONF_CALLBACK_MAX];
            char on_stop[CONF_CALLBACK_MAX];
            char on_restart[CONF_CALLBACK_MAX];
            char on_reload[CONF_CALLBACK_MAX];
            char on_role_change[CONF_CALLBACK_MAX];
            char on_switchover[CONF_CALLBACK_MAX];
            char on_switchover_abandoned[CONF_CALLBACK_MAX];
        } callbacks;
        unsigned callback_timeout_s; /* a callback still running after this is killed; 30 */
    } postgresql;

    /* vip: optional section; has_vip says whether it was given. */
    bool has_vip;
    struct conf_vip vip;

    struct conf_watchdog watchdog; /* optional section; defaults to mode off */

    /* Synchronous replication: defaults for the cluster-wide settings kept in the replicated
     * state (the first leader records them; `ctl edit-config` changes them later). */
    struct {
        int mode; /* enum sync_mode (int-sized for the key table): off, quorum (default), strict */
        unsigned node_count; /* k of ANY k (...); default 1, range 1..16 */
        int commit; /* FSM_SYNC_COMMIT_*: on (default), remote_write, remote_apply, local */
    } sync;

    /* maximum_lag_on_failover: in force while the replicated configuration is not recorded,
     * and the value its first recording starts from. Absent or null: no limit. */
    struct conf_max_lag {
        bool set;
        uint64_t bytes; /* 0..CONF_MAX_LAG_MAX */
    } max_lag;

    /* Patroni's bootstrap.dcs: the dynamic configuration the first leader records (README
     * "Configuration"). finish() folds the keys raftpg also takes elsewhere in the file into
     * those fields (sync, max_lag, postgresql.use_pg_rewind, ...), refusing a key given in both
     * places with different values; the parameters and pg_hba lines seed the replicated ones. */
    struct {
        int sync_mode; /* enum sync_mode; Patroni's on/true read as quorum */
        bool sync_strict;
        unsigned sync_node_count;
        int sync_commit;
        struct conf_max_lag max_lag;
        bool use_pg_rewind;
        unsigned primary_start_timeout_s; /* each member's own, as the top-level key */
        bool remove_data_directory_on_rewind_failure;
        bool remove_data_directory_on_diverged_timelines;
        /* Checked as PATCH /config checks them (syntax, raftpg's own parameters refused), names
         * folded to lower case and sorted, as the replicated state keeps them. Owned. */
        struct conf_kv *parameters;
        unsigned n_parameters;
        char **pg_hba; /* owned */
        unsigned n_pg_hba;
    } dcs;

    /* Patroni's bootstrap.method, .post_bootstrap (.post_init) and custom method sections: how
     * the member that initialises the cluster makes its data directory, and what runs once it
     * first serves as primary (README "bootstrap.method and post_bootstrap"). */
    struct {
        /* The custom method bootstrap.method names; unset (no command) means initdb. */
        struct conf_boot_method {
            char name[CONF_NAME_MAX];
            char command[CONF_CALLBACK_MAX];  /* run instead of initdb, split at blanks */
            bool no_params;                   /* leave out --scope= and --datadir= */
            bool keep_existing_recovery_conf; /* only false is accepted (finish checks) */
            /* Any other key: passed as --key=value, in file order. Owned. */
            struct conf_kv *args;
            unsigned n_args;
        } methods[CONF_BOOT_METHODS_MAX];
        unsigned n_methods;
        char method[CONF_NAME_MAX]; /* "" or "initdb": initdb */
        bool custom;                /* a custom method: methods[custom_index] */
        unsigned custom_index;
        char post_bootstrap[CONF_CALLBACK_MAX]; /* "" when none (post_init is the same key) */
        char post_init[CONF_CALLBACK_MAX];      /* folded into post_bootstrap by finish */
        unsigned post_bootstrap_timeout_s;      /* default 600 */
    } bootstrap;

    /* Keys read but without effect (Patroni's ttl, loop_wait, ...), one message each
     * ("FILE:LINE:COL: KEY: ignored: why"), for the agent's log and check-config; n_warnings
     * counts them all, the first CONF_WARNINGS_MAX are kept. */
    char warnings[CONF_WARNINGS_MAX][RPG_ERRMSG_SIZE];
    unsigned n_warnings;

    /* primary_start_timeout (Patroni's; master_start_timeout, its old name, too): seconds the
     * primary's PostgreSQL may be down before its leader hands over; 0 at once. Default 300. */
    unsigned primary_start_timeout_s;

    struct {
        bool nofailover;       /* default false */
        bool nosync;           /* default false */
        bool noloadbalance;    /* default false: /replica and /read-only answer 503 */
        int failover_priority; /* default 1, range 0..1000; 0 means never promote */
        /* Any other key (Patroni's user tags): names as for PostgreSQL settings, at most 63
         * bytes; scalar values kept as the text written; at most CONF_USER_TAGS_MAX. Owned. */
        struct conf_kv *user;
        unsigned n_user;
    } tags;
};

/* Loads and validates the YAML file at path into *c (which it initialises first, so
 * conf_free() is always safe afterwards). On error returns RPG_ECONFIG (or RPG_ENOMEM), leaves *c
 * freed and zeroed, and writes one message "FILE:LINE:COL: KEY: what is wrong" into errmsg
 * (RPG_ERRMSG_SIZE bytes). LINE and COL count from 1. KEY is the dotted path of the key, with
 * 0-based list indexes: "raft.members[1].api". A missing key is reported at the start of the
 * mapping that lacks it; a missing or unreadable file is "FILE: cannot read: strerror". */
int conf_load(const char *path, struct conf *c, char *errmsg);

/* Same as conf_load but from a string; name is used in messages in place of the path. */
int conf_load_string(const char *name, const char *text, struct conf *c, char *errmsg);

/* Frees what conf_load allocated; leaves *c zeroed. Safe on a zeroed struct and after an error. */
void conf_free(struct conf *c);

/* The entry for this node in raft.members, or NULL when the node joins an existing cluster. */
const struct conf_member *conf_self(const struct conf *c);

/* Splits "a.b.c.d:port" into host (16 bytes) and port; returns 0 or RPG_EINVAL. Octets are
 * 0..255 and the port 1..65535, both in decimal without leading zeros, so the text form of a
 * valid address is canonical and two addresses are equal exactly when their strings are. Host
 * names and IPv6 are refused (libraft cannot use them). host and port may be NULL to only check. */
int conf_parse_addr(const char *addr, char host[16], uint16_t *port);

/* Splits "a.b.c.d/prefix" into host (16 bytes) and prefix; returns 0 or RPG_EINVAL. Octets are
 * 0..255 and the prefix 1..32, in decimal without leading zeros. Only the syntax is checked: the
 * vip.address key adds the unicast and host-part checks. host and prefix may be NULL. */
int conf_parse_cidr(const char *cidr, char host[16], unsigned *prefix);

/* Parses an allowlist entry's address form: "ADDR" (a host network) or "ADDR/PREFIX", ADDR an
 * IPv4 dotted quad or an IPv6 address, PREFIX decimal without leading zeros, 0..32 or 0..128.
 * Host bits set after the prefix are cleared (10.1.2.3/8 is 10.0.0.0/8). An IPv4-mapped IPv6
 * address without a prefix (::ffff:10.0.0.1) is taken as its IPv4 address. Returns 0, or
 * RPG_EINVAL with why (n bytes) saying what is wrong. net may be NULL to only check. */
int conf_net_parse(const char *text, struct conf_net *net, char *why, size_t n);

/* Whether the host address addr (a conf_net_parse result with the full prefix) is in net. An
 * IPv4 address is never in an IPv6 network and the other way round, except through the mapping
 * conf_net_parse applies. */
bool conf_net_contains(const struct conf_net *net, const struct conf_net *addr);

/* Reads the cluster secret named by raft.secret_file (with previous, raft.secret_file_previous)
 * into key. Returns 0; RPG_ENOTFOUND when that key is not set; RPG_ECONFIG with
 * "FILE:LINE:COL: raft.secret_file: ..." when the file cannot be read, is not a regular file, is
 * not owned by the effective user (unless any_owner: root checking a file for the agent's user),
 * is accessible to its group or to others, or does not hold exactly 64 hex digits (white space
 * around them allowed). The key is never put in a message. */
int conf_secret_read(const struct conf *c, bool previous, bool any_owner,
                     uint8_t key[CONF_SECRET_SIZE], char *errmsg);

/* Whether s is a transfer rate pg_basebackup --max-rate takes: 32..1048576 kB/s, written N, Nk or
 * NM. */
bool conf_rate_valid(const char *s);

/* Writes a new random secret (64 hex digits and a newline) to path, created with mode 0600 and
 * synced; refuses an existing path (RPG_EEXIST). Returns 0 or a negative code with errmsg. */
int conf_secret_generate(const char *path, char *errmsg);

/* "debug", "info", "warning", "error"; "unknown" for other values. */
const char *conf_log_level_name(enum conf_log_level level);

/* "text", "json"; "unknown" for other values. */
const char *conf_log_format_name(enum conf_log_format format);

/* "off", "automatic", "required"; "unknown" for other values. */
/* "off", "quorum", "strict" / "on", "remote_write", "remote_apply", "local"; "unknown" else. */
const char *conf_sync_mode_name(int mode);
const char *conf_sync_commit_name(int commit);

const char *conf_watchdog_mode_name(enum conf_watchdog_mode mode);

/* "none", "optional", "required"; "unknown" for other values. */
const char *conf_verify_client_name(enum conf_verify_client mode);

/* "Original", "ProductOnly", "Minimal" (as Patroni writes them); "unknown" for other values. */
const char *conf_server_tokens_name(enum conf_server_tokens tokens);

/* The Server header restapi.server_tokens asks for ("raftpg", "raftpg/0.1.0"), or NULL for
 * original (none added). */
const char *conf_server_header(enum conf_server_tokens tokens);

/* Whether name: value may be an extra header of the API's answers: name an HTTP token (RFC 9110
 * tchar) of 1..CONF_HEADER_NAME_MAX-1 bytes, not one the server sets itself (framing, body
 * description, Date, Server, WWW-Authenticate); value 1..CONF_HEADER_VALUE_MAX-1 bytes without
 * control characters other than a tab (a CR or LF would write headers of its own) and without
 * white space at either end. Returns true, or false with why (n bytes). */
bool conf_header_check(const char *name, const char *value, char *why, size_t n);

/* The client side's revocation list file: ctl.crlfile, else restapi.crlfile when ctl.cacert is
 * not set (the members are then verified with restapi.cafile); "" none. Borrowed. */
const char *conf_client_crlfile(const struct conf *c);

#endif
