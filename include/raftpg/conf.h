/* Node configuration: one YAML file -> a validated struct; errors carry file:line:column. */
#ifndef RAFTPG_CONF_H
#define RAFTPG_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"

#define CONF_NAME_MAX 64   /* member and scope names, including the NUL */
#define CONF_ADDR_MAX 24   /* "255.255.255.255:65535" plus NUL */
#define CONF_MEMBERS_MAX 9 /* initial Raft members */

/* A member of the initial Raft configuration. Addresses are IPv4 dotted quad ":" port, never
 * 0.0.0.0. Names, raft addresses and api addresses are each unique among the members. */
struct conf_member {
    char name[CONF_NAME_MAX];
    char raft[CONF_ADDR_MAX]; /* Raft transport address */
    char api[CONF_ADDR_MAX];  /* REST API address other members and ctl use */
};

struct conf_kv {
    char *key;   /* owned */
    char *value; /* owned; scalars are kept as the text written in the file */
};

enum conf_log_format { CONF_LOG_TEXT = 0, CONF_LOG_JSON };
enum conf_log_level { CONF_LOG_DEBUG = 0, CONF_LOG_INFO, CONF_LOG_WARNING, CONF_LOG_ERROR };

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
        struct conf_member members[CONF_MEMBERS_MAX];
        unsigned n_members; /* 1..CONF_MEMBERS_MAX, required */
    } raft;

    struct {
        /* default: this member's api address; required when name is not in members */
        char listen[CONF_ADDR_MAX];
        /* default: this member's api address, else listen; never 0.0.0.0 */
        char connect_address[CONF_ADDR_MAX];
    } restapi;

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
    } postgresql;

    struct {
        bool nofailover;       /* default false */
        bool nosync;           /* default false */
        int failover_priority; /* default 1, range 0..1000; 0 means never promote */
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

/* "debug", "info", "warning", "error"; "unknown" for other values. */
const char *conf_log_level_name(enum conf_log_level level);

/* "text", "json"; "unknown" for other values. */
const char *conf_log_format_name(enum conf_log_format format);

#endif
