/* Node configuration: one YAML file -> a validated struct; errors carry file:line:column. */
#ifndef RAFTPG_CONF_H
#define RAFTPG_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"

#define CONF_NAME_MAX 64    /* member and scope names, including the NUL */
#define CONF_ADDR_MAX 24    /* "255.255.255.255:65535" plus NUL */
#define CONF_MEMBERS_MAX 9  /* initial Raft members */

/* A member of the initial Raft configuration. Addresses are IPv4 dotted quad ":" port. */
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
        char listen[CONF_ADDR_MAX];   /* default: this member's entry in members, if any */
        char data_dir[PATH_MAX];      /* required */
        unsigned election_timeout_ms; /* default 500, range 50..60000 */
        unsigned heartbeat_timeout_ms;/* default 100, range 10..10000, must be < election/2 */
        bool pre_vote;                /* default true */
        struct conf_member members[CONF_MEMBERS_MAX];
        unsigned n_members;           /* 1..CONF_MEMBERS_MAX, required */
    } raft;

    struct {
        char listen[CONF_ADDR_MAX];          /* default: this member's api address, if any */
        char connect_address[CONF_ADDR_MAX]; /* default: listen */
    } restapi;

    struct {
        enum conf_log_level level; /* default info */
        enum conf_log_format format; /* default text */
    } log;

    /* postgresql: optional section; has_postgresql says whether it was given. */
    bool has_postgresql;
    struct {
        char bin_dir[PATH_MAX];          /* default /usr/lib/postgresql/15/bin */
        char data_dir[PATH_MAX];         /* required when the section is present */
        char listen[CONF_ADDR_MAX];      /* host:port, required */
        char connect_address[CONF_ADDR_MAX]; /* default: listen */
        struct conf_kv *parameters;      /* owned array */
        unsigned n_parameters;
        char **pg_hba;                   /* owned array of owned strings */
        unsigned n_pg_hba;
        char superuser_name[CONF_NAME_MAX];    /* default "postgres" */
        char superuser_password[256];          /* default empty */
        char replication_name[CONF_NAME_MAX];  /* default "replicator" */
        char replication_password[256];        /* default empty */
        char passfile[PATH_MAX];               /* default empty */
    } postgresql;

    struct {
        bool nofailover;       /* default false */
        bool nosync;           /* default false */
        int failover_priority; /* default 1, range 0..1000; 0 means never promote */
    } tags;
};

/* Loads and validates the YAML file at path into *c (which it initialises first, so
 * conf_free() is always safe afterwards). On error returns RPG_ECONFIG and writes one message
 * "FILE:LINE:COL: KEY: what is wrong" into errmsg (RPG_ERRMSG_SIZE bytes); a missing or unreadable
 * file is "FILE: cannot read: strerror". */
int conf_load(const char *path, struct conf *c, char *errmsg);

/* Same as conf_load but from a string; name is used in messages in place of the path. */
int conf_load_string(const char *name, const char *text, struct conf *c, char *errmsg);

/* Frees what conf_load allocated; leaves *c zeroed. */
void conf_free(struct conf *c);

/* The entry for this node in raft.members, or NULL when the node joins an existing cluster. */
const struct conf_member *conf_self(const struct conf *c);

/* Splits "a.b.c.d:port" into host (16 bytes) and port; returns 0 or RPG_EINVAL. */
int conf_parse_addr(const char *addr, char host[16], uint16_t *port);

#endif
