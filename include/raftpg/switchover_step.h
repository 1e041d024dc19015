/* The switchover's decisions (DESIGN.md rule 8) as both executors run them: the agent
 * (src/switchover.c, against the real server, callbacks and Raft) and the simulation
 * (tests/sim/sim_agent.c, against the simulated ones). switchover_prepare judges whether a
 * switchover may start and chooses its candidate; switchover_step takes the switchover from
 * phase to phase on what the executor observed and returns the one thing to do next. Every
 * bound and message is here, once. Pure: no loop, no Raft, no I/O. */
#ifndef RAFTPG_SWITCHOVER_STEP_H
#define RAFTPG_SWITCHOVER_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/failover.h"
#include "raftpg/fsm_state.h"
#include "raftpg/peer_status.h"

/* Bounds of each step (README "Switchover"). */
#define SWITCHOVER_STOP_MS 10000   /* the fast shutdown, then immediate */
#define SWITCHOVER_CATCHUP_MS 5000 /* the candidate reports WAL past the final checkpoint */
/* ... unless it stopped answering polls for this long: its agent is gone, and the primary is
 * better started again now than at the end of the bound. */
#define SWITCHOVER_SILENT_MS 1500
#define SWITCHOVER_TRANSFER_MS 5000 /* Raft leadership moves */
#define SWITCHOVER_PRIMARY_MS 20000 /* the candidate runs as primary */
/* Past the stop's own bound, the backstop on a stop that never reports its end. */
#define SWITCHOVER_STOP_BACKSTOP_MS (SWITCHOVER_STOP_MS + 5000)
/* Past the callback's own time-out, the backstop on one that never reports its end. */
#define SWITCHOVER_HOOK_BACKSTOP_MS 5000
/* After the callback, a control operation the core just began (a reload of the synchronous set,
 * a checkpoint) ends before the stop; one still running after this gives the switchover up. */
#define SWITCHOVER_SETTLE_MS 2000
/* A candidate's report older than this does not count as reachable when choosing it. */
#define SWITCHOVER_REPORT_FRESH_MS 2000

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
    bool leaving; /* its removal from the cluster is under way (set by the caller) */
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

/* This primary as a switchover needs it, for the candidate's fitness. */
struct switchover_self {
    const char *name;
    const char *connect_address; /* postgresql.connect_address: where standbys stream from */
    uint32_t timeline;           /* its server's */
    uint64_t system_id;          /* the cluster's (fsm_state.system_id) */
};

/* Member m as a candidate, from its report p (NULL: none yet) at now (the clock of
 * p->last_seen). The flush position this primary saw of it is the caller's to fill in
 * (seen_by_primary, flush_position): executors keep their standbys differently. */
void switchover_peer_of(const struct switchover_self *self, const struct fsm_member *m,
                        const struct peer_status *p, rpg_msec now, struct switchover_peer *out);

/* What prepare judges a request against: the switchover under way and this member as its agent
 * observes it. */
struct switchover_ask {
    enum switchover_phase phase; /* of the switchover under way, if any */
    const char *under_way_to;    /* ... its candidate */
    bool has_pg;                 /* this member manages a postgresql */
    const struct fsm_state *state;
    bool scheduled;           /* a scheduled switchover (schedule.h), not a request */
    const char *self;         /* this member's name */
    const char *leader;       /* the primary the caller believes in (NULL: any) */
    const char *candidate;    /* NULL: the best */
    bool leader_ready;        /* Raft leader, its term's barrier committed */
    bool lease_ok;            /* fence_step's judgement */
    bool pg_running;          /* observed running ... */
    bool pg_in_recovery;      /* ... in recovery */
    bool pg_busy;             /* a control operation runs */
    enum sync_mode sync_mode; /* in force (sync_settings_in_force) */
    /* The other members as candidates (switchover_peer_of), and maximum_lag_on_failover
     * (NULL: none). */
    const struct switchover_peer *peers;
    unsigned n_peers;
    const struct switchover_limit *limit;
};

/* Whether a switchover may start now. Returns 0 with the candidate's name in chosen, or the HTTP
 * status of the refusal (409 one under way, 412, 503) with the reason in why. */
int switchover_prepare(const struct switchover_ask *in, char *chosen, size_t chosen_size, char *why,
                       size_t why_size);

/* What a switchover remembers between steps. Written by switchover_begin and switchover_step. */
struct switchover_mem {
    enum switchover_phase phase;
    char from[FSM_NAME_MAX];
    char to[FSM_NAME_MAX];
    uint64_t to_id;
    uint64_t final_lsn;        /* the stopped primary's last checkpoint */
    unsigned transfers_failed; /* switchover_view.transfers_failed at the last hand-over */
    bool hook_ok;              /* the callback succeeded; the stop waits for a busy server */
    rpg_msec started_ms;       /* executor clock of the request */
    rpg_msec phase_ms;         /* executor clock the phase began */
    rpg_msec silent_ms;        /* since when the candidate answers no poll (catch-up), 0 it does */
};

/* What the executor observed, for one step. */
struct switchover_view {
    rpg_msec now;
    bool leading;        /* Raft role leader */
    bool leader_ready;   /* ... with its term's barrier committed */
    bool lease_ok;       /* fence_step's judgement */
    bool self_recorded;  /* the replicated state names this member primary */
    bool pg_running;     /* this member's server observed running ... */
    bool pg_in_recovery; /* ... in recovery */
    bool pg_busy;        /* a control operation runs */
    bool paused;         /* maintenance mode */
    /* The stopped server's control data, from an observation made after the stop. */
    bool stopped_seen;
    bool clean_shutdown;
    uint64_t checkpoint_lsn;
    /* The candidate's own report: known (NULL peer: false), answered, its WAL position, and
     * whether it runs as the recorded primary now. */
    bool cand_known;
    bool cand_reachable;
    uint64_t cand_wal;
    bool cand_primary;
    bool cand_unfit; /* it reports that its Raft storage cannot persist or its state diverged */
    rpg_msec hook_timeout_ms; /* the callbacks' own time-out (callback_timeout_s) */
    /* Hand-overs that ended with this member still leader (cons.n_transfers_failed): libraft
     * gives one up after an election timeout when its target did not start an election. */
    unsigned transfers_failed;
};

/* Fills the candidate's part of v from its report p (NULL: none) and the replicated state st:
 * known, answered, its WAL position, and whether it runs as the recorded primary. */
void switchover_view_candidate(struct switchover_view *v, const struct fsm_state *st,
                               const char *to, const struct peer_status *p);

enum switchover_event_kind {
    SWITCHOVER_EV_TICK,            /* the executor's timer (every 50 ms) */
    SWITCHOVER_EV_REPORT,          /* a member's report came in */
    SWITCHOVER_EV_HOOK_NONE,       /* no on_switchover configured */
    SWITCHOVER_EV_HOOK_BUSY,       /* on_switchover could not start: one runs already */
    SWITCHOVER_EV_HOOK_DONE,       /* on_switchover ended (ok, msg: what failed) */
    SWITCHOVER_EV_STOPPED,         /* the stop ended (ok, msg: why not; NULL: none given) */
    SWITCHOVER_EV_TRANSFER_FAILED, /* the hand-over was refused (msg) */
};

struct switchover_event {
    enum switchover_event_kind kind;
    bool ok;
    const char *msg;
};

enum switchover_act_kind {
    SWITCHOVER_ACT_NONE = 0,
    SWITCHOVER_ACT_STOP,     /* fast stop of this primary within SWITCHOVER_STOP_MS */
    SWITCHOVER_ACT_POLL,     /* ask every member for its report now */
    SWITCHOVER_ACT_TRANSFER, /* grant the permit (when grant), then hand Raft leadership to to_id
                              * (again, when libraft gave the last hand-over up) */
    SWITCHOVER_ACT_GIVE_UP,  /* abandoned: answer status with why; the primary starts again */
    SWITCHOVER_ACT_DONE,     /* answer 200 with msg */
    SWITCHOVER_ACT_MOVED,    /* answer 503 with msg: leadership moved, no primary yet */
};

/* Why a switchover was abandoned (SWITCHOVER_ACT_GIVE_UP). */
enum switchover_reason {
    SWITCHOVER_REASON_NONE = 0,
    SWITCHOVER_REASON_HOOK_FAILED,      /* on_switchover failed */
    SWITCHOVER_REASON_HOOK_BUSY,        /* ... could not start */
    SWITCHOVER_REASON_HOOK_TIMEOUT,     /* ... did not end */
    SWITCHOVER_REASON_UNSETTLED,        /* after it, no longer the settled leading primary */
    SWITCHOVER_REASON_STOP_FAILED,      /* the fast stop failed or could not start */
    SWITCHOVER_REASON_STOP_TIMEOUT,     /* ... did not end */
    SWITCHOVER_REASON_UNCLEAN,          /* the stopped server did not shut down cleanly */
    SWITCHOVER_REASON_CATCHUP_TIMEOUT,  /* the candidate did not report the final WAL */
    SWITCHOVER_REASON_CANDIDATE_SILENT, /* ... and stopped answering polls meanwhile */
    SWITCHOVER_REASON_CANDIDATE_UNFIT,  /* it reports it cannot lead (storage, state) */
    SWITCHOVER_REASON_TRANSFER_REFUSED, /* Raft refused the hand-over */
    SWITCHOVER_REASON_TRANSFER_TIMEOUT, /* leadership did not move */
    SWITCHOVER_REASON_N,
};
const char *switchover_reason_name(enum switchover_reason r);

struct switchover_action {
    enum switchover_act_kind kind;
    enum switchover_reason reason; /* GIVE_UP */
    bool phase_changed;        /* mem->phase is a new phase, other than idle: worth a log line */
    bool final_noted;          /* mem->final_lsn was read from the stopped server just now */
    enum switchover_phase was; /* the phase the switchover was in (GIVE_UP: the one that failed) */
    int status;
    char msg[256]; /* GIVE_UP: why (the executor frames it); DONE and MOVED: the answer */
    bool grant;    /* TRANSFER: grant permit before the hand-over (maintenance mode) */
    struct failover_permit permit;
};

/* A switchover prepared by switchover_prepare begins at now: the on_switchover callback is
 * started next (phase HOOK), whose outcome is an event. */
void switchover_begin(struct switchover_mem *m, const char *from, const char *to, uint64_t to_id,
                      rpg_msec now);

/* One step: the event against what v shows, in m's phase. Events of another phase change
 * nothing. */
void switchover_step(struct switchover_mem *m, const struct switchover_view *v,
                     const struct switchover_event *e, struct switchover_action *out);

/* The actions maintenance mode lets through for a primary this member stopped for a
 * switchover (core_view allowed bits, 0: none), while *paused_stop: starting it again as primary
 * while it is still the recorded one (self_recorded), or its rejoin as a standby once another
 * member is. *paused_stop ends once its server runs (pg_running) or the pause ends. */
unsigned switchover_paused_mask(bool *paused_stop, bool paused, bool pg_running,
                                bool self_recorded);

/* Whether the executor's decisions must wait: between stopping its primary and losing
 * leadership (or giving up). */
bool switchover_phase_holds(enum switchover_phase p);

#endif
