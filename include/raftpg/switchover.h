/* Switchover (DESIGN.md rule 8): a planned move of the primary to a caught-up standby, asked of
 * the leader (POST /switchover, raftpg ctl switchover). The leader stops taking writes by
 * stopping its PostgreSQL cleanly (a fast shutdown lets the walsenders send everything first),
 * reads the final checkpoint from its control file, waits until the candidate's own report says
 * it received WAL past it, then hands Raft leadership to the candidate, which promotes it as in
 * any failover (with every acknowledged commit, by construction). If any step fails in time, the
 * old primary starts again as primary and the request gets the reason. Before the stop, the
 * on_switchover callback runs (when configured) and the stop waits for it: a pgbouncer hook
 * pauses its clients there; a failed one abandons the switchover, and an abandoned switchover
 * fires on_switchover_abandoned so that the hook resumes them. */
#ifndef RAFTPG_SWITCHOVER_H
#define RAFTPG_SWITCHOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"

/* Bounds of each step (README "Switchover"). */
#define SWITCHOVER_STOP_MS 10000    /* the fast shutdown, then immediate */
#define SWITCHOVER_CATCHUP_MS 5000  /* the candidate reports WAL past the final checkpoint */
#define SWITCHOVER_TRANSFER_MS 5000 /* Raft leadership moves */
#define SWITCHOVER_PRIMARY_MS 20000 /* the candidate runs as primary */

/* What the leader knows of a possible candidate, from the candidate's own report. */
struct switchover_peer {
    const char *name;
    bool reachable;       /* its report is fresh */
    bool running_standby; /* its PostgreSQL accepts connections in recovery */
    bool streams_from_us; /* its WAL receiver streams from this primary (pg_stat_wal_receiver) */
    bool eligible;        /* not nofailover, priority > 0, storage, state and identity sound */
    uint64_t
        wal_position; /* its report: received or replayed, up to a poll and an observation old */
    int priority;
    /* What this primary's last observation showed of it (pg_stat_replication), read in the same
     * query as switchover_limit.primary_wal: the two are positions of one moment. */
    bool seen_by_primary;
    uint64_t flush_position;
};

/* maximum_lag_on_failover as a switchover applies it: as Patroni's, a candidate further than
 * max_lag bytes behind the primary's WAL position may not take over. The lag is measured like
 * with like: primary_wal against the flush position the same observation showed for the
 * candidate, or, when it showed none, against the candidate's report (older than primary_wal,
 * so it can only overstate the lag). */
struct switchover_limit {
    const char *primary;  /* its name, for messages */
    uint64_t primary_wal; /* its WAL position at its last observation */
    uint64_t max_lag;
};

/* Chooses the candidate: wanted (NULL: the best) must be among peers, reachable, a running
 * standby streaming from this primary, eligible and, with a limit (NULL: none), no further
 * behind the primary than it; without wanted, the fitting standby furthest ahead, then of
 * higher priority, then first by name. Returns 0 with its name in chosen, or RPG_EINVAL (wanted
 * unknown or unfit) / RPG_ENOTFOUND (none fit), with why (naming the lag and the limit when the
 * limit is what refuses). */
int switchover_choose(const struct switchover_peer *peers, unsigned n, const char *wanted,
                      const struct switchover_limit *limit, char *chosen, size_t chosen_size,
                      char *why, size_t why_size);

enum switchover_phase {
    SWITCHOVER_IDLE = 0,
    SWITCHOVER_HOOK,      /* the on_switchover callback runs; postgresql untouched */
    SWITCHOVER_STOPPING,  /* fast shutdown of this primary */
    SWITCHOVER_CATCHUP,   /* waiting for the candidate to report the final WAL */
    SWITCHOVER_TRANSFER,  /* Raft leadership handed over */
    SWITCHOVER_PROMOTING, /* waiting for the candidate to run as primary */
};
const char *switchover_phase_name(enum switchover_phase p);

struct http_conn;
struct agent;

struct switchover {
    enum switchover_phase phase;
    struct http_conn *conn; /* the request to answer, NULL once answered */
    char from[FSM_NAME_MAX];
    char to[FSM_NAME_MAX];
    uint64_t to_id;
    uint64_t final_lsn;  /* the stopped primary's last checkpoint */
    uint64_t started_ms; /* loop time of the request */
    uint64_t phase_ms;   /* loop time the phase began */
    bool hook_ran;       /* on_switchover was started: abandoning fires on_switchover_abandoned */
    uv_timer_t timer;
    bool timer_open;
    char last[256]; /* the last switchover's outcome, for /status */
    /* The last handover of Raft leadership: to whom, in which term (this member's term as
     * leader). Peers read it to record the new primary's promotion as a switchover. */
    char handed_to[FSM_NAME_MAX];
    uint64_t handed_term;
    /* This primary was stopped by a switchover in maintenance mode: until its server runs again
     * (or the pause ends), maintenance mode lets this agent start it again, as the primary it
     * still is after an abandon, or as a standby of the new one (switchover_paused_allows). */
    bool paused_stop;
};

/* Starts a switchover on this (leading) agent, answering conn when it is over. leader: the
 * member the caller believes is primary (NULL: any); candidate: NULL for the best. */
void switchover_start(struct agent *a, struct http_conn *conn, const char *leader,
                      const char *candidate);

/* Starts a scheduled switchover (schedule.h) on this (leading) agent: the same checks and steps
 * as switchover_start, with no request to answer; the outcome is logged and kept in last.
 * Returns 0 when it started, or RPG_EINVAL with the refusal in why. */
int switchover_start_scheduled(struct agent *a, const char *leader, const char *candidate,
                               char *why, size_t why_size);

/* Called with each member's report: a switchover waiting for its candidate to catch up looks at
 * it at once. */
void switchover_on_report(struct agent *a);

/* The actions maintenance mode lets through for a primary this agent stopped for a switchover
 * (core_view allowed bits, 0: none): starting it again as primary while it is still the
 * recorded one, or its rejoin as a standby once another member is (Patroni's demote in a
 * manual switchover while paused). Ends once its server runs or the pause ends. */
unsigned switchover_paused_allows(struct agent *a);

/* True while this agent's decisions must wait: between stopping its primary and losing
 * leadership (or giving up). */
bool switchover_holds(const struct agent *a);

/* Ends any switchover for shutdown (answers its request) and closes the timer. */
void switchover_close(struct agent *a, void (*cb)(uv_handle_t *h));

#endif
