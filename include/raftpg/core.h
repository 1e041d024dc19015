/* The agent's core: turns what the world looks like (replicated state, Raft role, the local
 * PostgreSQL, the peers' reports, the clock) into one action at a time through the pure decision
 * function, and hands the action to an I/O interface. The real agent plugs in libuv, libpq and
 * processes; tests/sim plugs in a simulated clock, network and PostgreSQL. Beyond log lines,
 * nothing here does I/O. */
#ifndef RAFTPG_CORE_H
#define RAFTPG_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"
#include "raftpg/ha.h"
#include "raftpg/peer_status.h"
#include "raftpg/quorum.h"

/* A peer's report older than this is not trusted. */
#define CORE_PEER_FRESH_MS 2000
/* After a failed action, no new action for this long. */
#define CORE_RETRY_MS 1000
/* A leadership transfer that did not happen is retried after this. */
#define CORE_TRANSFER_RETRY_MS 2000
/* Bound of the fast shutdown of a demotion before it escalates to immediate. */
#define CORE_DEMOTE_BOUND_MS 5000

/* The world's side. Every function returns 0 when the action started (asynchronous ones then
 * end with exactly one core_action_done call, possibly from inside the function) or a negative
 * code with errmsg filled when it could not start. target names a member. */
struct core_io {
    void *data;
    int (*pg_bootstrap)(void *data, char *errmsg);
    int (*pg_start)(void *data, bool standby, const char *target, char *errmsg); /* "": none */
    int (*pg_stop)(void *data, unsigned bound_ms, char *errmsg);
    /* timeline: the id the promotion must create (ids below it that this server does not know
     * are reserved first); 0: whatever PostgreSQL picks. */
    int (*pg_promote)(void *data, uint32_t timeline, char *errmsg);
    int (*pg_checkpoint)(void *data, char *errmsg);
    int (*pg_clone)(void *data, const char *target, bool remove_first, char *errmsg);
    int (*pg_rewind)(void *data, const char *target, char *errmsg);
    int (*pg_follow)(void *data, const char *target, char *errmsg);
    int (*pg_sync_slots)(void *data, const uint64_t *ids, unsigned n, char *errmsg);
    /* synchronous_standby_names and synchronous_commit, written and reloaded. Completes with
     * RPG_EBUSY on a running standby whose configuration an earlier run of the agent wrote. */
    int (*pg_set_sync)(void *data, const char *names, const char *commit, char *errmsg);
    int (*raft_submit)(void *data, const struct fsm_cmd *cmd, char *errmsg);
    /* Synchronous: the outcome shows as a new leader later. */
    int (*raft_transfer)(void *data, uint64_t id, char *errmsg);
};

/* What the world looks like now. Everything is borrowed for the duration of core_tick. */
struct core_view {
    rpg_msec now; /* monotonic loop time */
    const struct fsm_state *state;
    bool leader;        /* Raft leader with its own-term barrier committed */
    bool raft_leader;   /* ... as Raft alone says, before the leader's gate (lead.h) opens */
    bool state_current; /* see cons_state_current() */
    uint64_t term;
    bool pg_ready; /* pg observed since its last operation ended, and idle */
    struct ha_pg pg;
    unsigned n_peers;
    const struct peer_status *peers; /* the peers' last reports */

    /* Synchronous replication, for the primary's quorum driver (quorum.h). */
    enum sync_mode sync_mode; /* in force */
    bool max_lag_set;         /* maximum_lag_on_failover in force (sync_max_lag_in_force) */
    uint64_t max_lag;
    const char *lag_waived_for; /* a member granted a failover (failover.h): no limit for it */
    rpg_msec primary_start_timeout_ms; /* primary_start_timeout (struct ha_input) */
    unsigned sync_k;
    int sync_commit;                 /* FSM_SYNC_COMMIT_* */
    const char *sync_configured;     /* the server's synchronous_standby_names; NULL: unknown */
    const char *sync_commit_written; /* synchronous_commit the agent last wrote ("" none) */
    unsigned n_replicas;             /* the primary's pg_stat_replication */
    const struct quorum_replica *replicas;
    unsigned n_nosync; /* members tagged nosync */
    const char *const *nosync;
    const char *removing;      /* a member on its way out of the cluster, or NULL */
    unsigned transfers_failed; /* cons.h n_transfers_failed: a change ends the backoff of
                                  the transfer it ended */
    unsigned allowed;          /* 0: any action; else the mask (1u << HA_ACT_*) of the actions
                                  it may start (maintenance mode, failover.h); others wait */
};

struct core {
    const struct core_io *io;        /* borrowed */
    const char *self;                /* borrowed: this member's name */
    char pg_address[FSM_ADDR_MAX];   /* this member's PostgreSQL address as standbys stream from it
                                        (set by the caller after core_init) */
    char prev_primary[FSM_NAME_MAX]; /* whom this member's last "primary = me" replaced ... */
    uint64_t prev_primary_term;      /* ... in this term */
    /* The last other member a report showed running as primary (its server writable). */
    char last_writer[FSM_NAME_MAX];
    /* The primary recorded before (prev_primary once this member recorded itself), and the last
     * writer above when another: since when every report of each has shown it accepting no
     * writes (the arrival of the first of them), 0 not so. A voter's position reported to a poll
     * started later than both holds whatever it acknowledged. */
    struct core_quiet {
        char name[FSM_NAME_MAX];
        rpg_msec since;
    } quiet[2];
    bool nofailover;
    int failover_priority;
    bool no_pg_rewind; /* postgresql.use_pg_rewind off (set by the caller after core_init) */

    bool busy; /* an asynchronous action is in flight */
    enum ha_action running;
    int step;                      /* of a multi-step action (record_bootstrap, promote) */
    const struct fsm_state *state; /* borrowed from the view of the tick that began the action;
                                      the caller keeps it alive (it is the replicated state) */
    struct ha_decision last;       /* the last decision */
    bool last_changed;             /* the last tick decided something new (for logging) */
    rpg_msec leader_since;         /* when this member became a ready leader, 0 if it is not */
    rpg_msec retry_after;
    enum ha_action backoff;      /* the action retry_after holds back */
    unsigned transfers_failed;   /* core_view's, as of the last tick */
    uint64_t term;               /* of the tick that started the action */
    uint32_t timeline;           /* of the tick that started the action */
    uint32_t promote_timeline;   /* the timeline a promotion in flight creates */
    char error[RPG_ERRMSG_SIZE]; /* the last failed action and why, "" if it succeeded */

    /* The furthest WAL position the recorded primary (name, timeline) reported as a running
     * primary: the reference of maximum_lag_on_failover once it is gone. */
    char lag_primary[FSM_NAME_MAX];
    uint32_t lag_timeline;
    uint64_t lag_wal;

    /* The quorum driver: runs while this member is the primary in its own term. */
    struct quorum_tracker quorum;
    bool quorum_running; /* the action in flight is the driver's, not the decision's */
    struct quorum_decision quorum_last;
};

void core_init(struct core *c, const struct core_io *io, const char *self, bool nofailover,
               int failover_priority);

/* Decides and, unless an action is in flight or backing off, starts the next action. Returns
 * true when it started one. */
bool core_tick(struct core *c, const struct core_view *v);

/* Maintenance mode (the replicated pause, `ctl pause`): the operator owns PostgreSQL, and a tick
 * decides nothing unless `allowed` names actions it may still start (an operator's failover and
 * the re-point to it, failover.h). True when this tick must decide nothing; c->last says why.
 * The fence runs before and whatever this says. */
bool core_paused(struct core *c, const struct fsm_state *s, unsigned allowed);

/* Ends the asynchronous action in flight: rc 0 or a negative code with msg. now is loop time. */
void core_action_done(struct core *c, int rc, const char *msg, rpg_msec now);

/* The decision function's view of the peers, as core_tick builds it (exposed for tests). */
unsigned core_peers(const struct core *c, const struct core_view *v, struct ha_peer *out,
                    unsigned max);

#endif
