/* The health-check endpoints load balancers and probes ask (Patroni's paths and query
 * parameters): which member may take writes, which may take reads, how far behind it is. Pure:
 * the API fills a struct health_input from what it observed and answers the code this returns. */
#ifndef RAFTPG_HEALTH_H
#define RAFTPG_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum health_kind {
    HEALTH_NONE = 0,         /* not a health-check path */
    HEALTH_PRIMARY,          /* /, /primary, /master, /read-write */
    HEALTH_LEADER,           /* /leader: the Raft leader, whatever its PostgreSQL does */
    HEALTH_STANDBY_LEADER,   /* /standby-leader: leader of a standby cluster (none here) */
    HEALTH_REPLICA,          /* /replica */
    HEALTH_READ_ONLY,        /* /read-only: a replica, or the primary */
    HEALTH_SYNC,             /* /sync, /synchronous */
    HEALTH_READ_ONLY_SYNC,   /* /read-only-sync, /read-only-synchronous */
    HEALTH_QUORUM,           /* /quorum */
    HEALTH_READ_ONLY_QUORUM, /* /read-only-quorum */
    HEALTH_ASYNC,            /* /async, /asynchronous */
    HEALTH_HEALTH,           /* /health: PostgreSQL runs */
    HEALTH_READINESS,        /* /readiness: the primary, or a standby caught up */
    HEALTH_LIVENESS,         /* /liveness: the agent runs (not shutting down) */
};

/* How the recorded synchronous set counts this standby (Patroni's roles): every voter needed
 * (k = n) makes it a synchronous standby, fewer a quorum standby. */
enum health_standby { HEALTH_STANDBY_ASYNC = 0, HEALTH_STANDBY_SYNC, HEALTH_STANDBY_QUORUM };

#define HEALTH_TAGS_MAX 8
#define HEALTH_TAG_MAX 64

struct health_query {
    bool has_lag;
    uint64_t lag;               /* ?lag=: bytes, or with a unit (16kB, 64MB, 1GB) */
    bool lag_write;             /* ?mode=write (readiness): count received WAL, not replayed */
    char replication_state[32]; /* ?replication_state=: "" any */
    unsigned n_tags;            /* ?tag_<key>=<value> */
    struct {
        char key[HEALTH_TAG_MAX];
        char value[HEALTH_TAG_MAX];
    } tags[HEALTH_TAGS_MAX];
};

/* A tag of this member, as text the query compares with (booleans as "true"/"false"). */
struct health_tag {
    const char *key;
    const char *value;
};

struct health_input {
    bool alive;   /* the agent is not shutting down */
    bool has_pg;  /* it manages a PostgreSQL */
    bool running; /* its PostgreSQL accepts connections */
    bool in_recovery;
    bool streaming;       /* a standby's WAL receiver streams */
    bool restore_command; /* one is set: not streaming is "in archive recovery" */
    bool ready_leader;    /* Raft leader past its own-term barrier */
    bool raft_leader;     /* Raft leader */
    bool acting;          /* not stopped for a diverged state or a mismatched identity */
    bool storage_failing; /* its Raft directory cannot persist (raft_storage.ok false) */
    enum health_standby standby;
    uint64_t primary_position; /* the primary's WAL position as last heard (0: unknown) */
    uint64_t received_position;
    uint64_t replay_position;
    uint64_t default_lag; /* readiness without ?lag= */
    unsigned n_tags;
    const struct health_tag *tags;
    bool noloadbalance;
};

/* A running standby's replication_state as Patroni words it: "streaming" while its WAL
 * receiver streams, else "in archive recovery" when a restore_command is set, else NULL (none). */
const char *health_replication_state(bool streaming, bool restore_command);

/* The kind of a path, HEALTH_NONE when it is no health check. */
enum health_kind health_kind_of(const char *path);

/* The i-th path health_kind_of knows (from 0, aliases included), NULL past the last. */
const char *health_path(unsigned i);

/* A size as Patroni's lag takes it: digits, then nothing, B, kB, MB, GB or TB (1024-based).
 * 0 or RPG_EINVAL. */
int health_parse_size(const char *text, uint64_t *out);

/* The query string (raw, percent-encoded) of a health check; RPG_EINVAL with errmsg naming the
 * parameter that is wrong or unknown. */
int health_parse_query(const char *query, struct health_query *q, char *errmsg, size_t size);

/* 200 or 503. */
int health_status(enum health_kind kind, const struct health_input *in,
                  const struct health_query *q);

#endif
