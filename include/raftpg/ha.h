/* The HA decision function (DESIGN.md §2): from the replicated cluster state, the Raft role, the
 * local PostgreSQL observation and what the peers report, choose the one next action. Pure: no
 * I/O, no clock reads (ages come in the input), so it runs unchanged in unit tests and the
 * simulation. The agent carries the action out and calls it again on the next event. */
#ifndef RAFTPG_HA_H
#define RAFTPG_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"
#include "raftpg/pg_state.h"

#define HA_SLOTS_MAX FSM_MEMBERS_MAX
#define HA_WHY_MAX 256

struct ha_pg {
    enum ha_pg_state state;
    bool in_recovery;          /* running as a standby */
    uint64_t system_id;        /* 0: unknown */
    uint32_t timeline;         /* current (running) or last checkpoint's (stopped); 0: unknown */
    bool was_primary;          /* stopped: the control file says it last ran as a primary */
    uint64_t wal_position;     /* primary: current insert LSN; standby: max(received, replayed) */
    uint64_t replay_position;  /* primary: as wal_position; standby: replayed (what reads see) */
    bool streaming;            /* standby: the WAL receiver is streaming */
    rpg_msec not_streaming_ms; /* standby: for how long it has not been streaming (0: it is) */
    uint32_t checkpoint_timeline; /* timeline of the last checkpoint; pg_rewind reads this one */
    char upstream[FSM_NAME_MAX];  /* standby: the member it was configured to follow ("" none) */
    /* standby: where its WAL receiver streams from, as pg_stat_wal_receiver says
     * (sender_host:sender_port); "" when no receiver runs, HA_RECEIVER_UNKNOWN while one runs
     * without a known sender yet. The configuration (upstream) says where it should stream;
     * only this says where it does (DESIGN.md rules 4 and 10). */
    char receiver[FSM_ADDR_MAX];
    /* standby: where its primary_conninfo, as the server has loaded it, points (host:port; ""
     * none): where a receiver that is not running now will connect when it starts again */
    char conninfo[FSM_ADDR_MAX];
    rpg_msec receiver_ms; /* how long receiver has been what it is now, counted afresh from
                             every re-point (so a follow gets the full bound to take effect) */
    bool promoting;       /* a promotion was asked for and is not observed done yet */
    unsigned n_slots;     /* primary: raftpg's replication slots present */
    char slots[HA_SLOTS_MAX][FSM_NAME_MAX];
    unsigned start_failures; /* consecutive failed starts (reset on a successful start) */
    /* standby: the newest timeline history its server holds says timeline `timeline` ended at
     * fork_lsn, where fork_timeline began, yet it replayed past that point: PostgreSQL refuses
     * to follow such a timeline switch ("forked off ... before current recovery point") and
     * retries for ever, its receiver still "streaming" the old timeline now and then. For how
     * long it has been so (0: it is not), and the fork (0: none known). */
    rpg_msec past_fork_ms;
    uint32_t fork_timeline;
    uint64_t fork_lsn;
    bool rewind_failed; /* the last pg_rewind failed: re-clone instead */
    /* Rewinds in a row that stopped before changing the directory (the source not ready, say),
     * and how long until the next may start: retries back off instead of running every tick. */
    unsigned rewind_retries;
    rpg_msec rewind_retry_ms;
    /* Why this server cannot write (its file systems full or read-only, the data directory not
     * writable, the agent's own writes there failing; "" when it can), and for how long. */
    char unwritable[HA_WHY_MAX];
    rpg_msec unwritable_ms;
    /* A restart of this primary with a timeout (POST /restart) saw the server not accept
     * connections within it: stop it and hand over, when another member may take over. */
    bool start_timed_out;
    /* Crashes of this server while it ran as a primary (its postmaster gone or replaced without
     * the agent stopping it) and failed starts, within the last HA_CRASH_WINDOW_MS. */
    unsigned crashes;
    /* This member is the recorded primary, leads in its term and saw its server run as a primary
     * that accepts connections, and the server does not now (stopped, not answering, in
     * recovery); for how long (ha_pg_track_down). Patroni's primary_start_timeout bounds it. */
    bool down;
    rpg_msec down_ms;
};

/* What another member's agent last reported about itself. */
struct ha_peer {
    char name[FSM_NAME_MAX];
    bool reachable;        /* answered a poll made after this agent became leader, or recently */
    bool polled;           /* a poll completed (answer or failure) since this agent became leader */
    bool pg_address_known; /* some report gave its PostgreSQL address (a standby can point at it) */
    enum ha_pg_state pg_state;
    bool in_recovery;
    uint64_t system_id;
    uint32_t timeline;
    uint32_t checkpoint_timeline;
    uint64_t wal_position;
    bool streaming;                /* its WAL receiver streams */
    char upstream[FSM_NAME_MAX];   /* the member it is configured to follow */
    char receiver[FSM_ADDR_MAX];   /* where its WAL receiver streams from (struct ha_pg) */
    char conninfo[FSM_ADDR_MAX];   /* where its primary_conninfo points (struct ha_pg) */
    char pg_address[FSM_ADDR_MAX]; /* its PostgreSQL address as it reports it ("" unknown) */
    unsigned start_failures;
    bool unwritable;        /* it reports that its server cannot write */
    bool identity_mismatch; /* its agent answers under another Raft id than the cluster lists */
    bool nofailover;
    int failover_priority;
    bool storage_failed;   /* its Raft directory cannot persist */
    bool diverged;         /* its replicated state differs from the others' */
    unsigned crashes;      /* its crashes and failed starts within HA_CRASH_WINDOW_MS */
    bool after_prev_quiet; /* its report answers a poll started after the previous primary and
                            * the last writer (ha_input) began to show, in every report since,
                            * that they accept no writes */
};

struct ha_input {
    const struct fsm_state *state; /* borrowed */
    const char *self;              /* this member's name */
    const char *pg_address;        /* this member's PostgreSQL address (NULL or "": unknown) */
    const char *prev_primary;      /* the primary recorded before this member recorded itself in
                                    * this term (NULL or "": not known, e.g. after a restart) */
    const char *last_writer;       /* the last other member a report showed running as primary
                                    * (NULL or "": none seen since this agent started) */
    bool leader;                   /* Raft leader with its own-term barrier committed */
    bool leader_waiting;           /* ... but not acting yet: the previous leader's lease and
                                    * fence may not have ended (lead.h lead_gate) */
    bool state_current;            /* state is as current as this node can tell (a leader is
                                    * known and what is committed is applied); a leader's is */
    uint64_t term;                 /* current Raft term */
    bool nofailover;               /* this member's tags (from the replicated state if there) */
    int failover_priority;
    struct ha_pg pg;
    unsigned n_peers;
    const struct ha_peer *peers; /* borrowed, n_peers entries: every other member */
    rpg_msec leader_ms;          /* how long this member has been the ready leader */
    enum sync_mode sync_mode;    /* in force: with it off, a record that proves
                                  * nothing (k = 0) does not stop a failover */
    bool no_pg_rewind;           /* postgresql.use_pg_rewind is off: a directory that last ran
                                  * as a primary is cloned again, never rewound */
    uint64_t primary_wal;        /* the furthest WAL position the recorded primary reported
                                  * while running as primary (0: none seen): what
                                  * maximum_lag_on_failover measures a candidate against */
    bool max_lag_set;            /* maximum_lag_on_failover in force (false: no limit) */
    uint64_t max_lag;
    const char *lag_waived_for;        /* the candidate of an operator's failover (NULL: none): as
                                        * Patroni's manual failover, the limit does not hold it back */
    rpg_msec primary_start_timeout_ms; /* Patroni's primary_start_timeout: how long pg.down may
                                        * last before leadership goes to another member */
};

enum ha_action {
    HA_ACT_WAIT = 0,         /* nothing to do now; why says what it waits for */
    HA_ACT_BOOTSTRAP,        /* initdb, start as primary, create the roles */
    HA_ACT_START_PRIMARY,    /* start the existing data directory as a primary */
    HA_ACT_RECORD_BOOTSTRAP, /* commit the system identifier, then "primary = me" */
    HA_ACT_RECORD_PRIMARY,   /* commit "primary = me, term T, timeline"; on taking over, the
                              * timeline its promotion will create */
    HA_ACT_PROMOTE,          /* pg_promote the local standby */
    HA_ACT_SYNC_SLOTS,       /* create/drop replication slots to match the members */
    HA_ACT_CHECKPOINT,       /* CHECKPOINT, so that the new timeline is in the control file */
    HA_ACT_TRANSFER,         /* hand Raft leadership to target */
    HA_ACT_DEMOTE,           /* stop the local PostgreSQL (fast, then immediate) */
    HA_ACT_CLONE,            /* pg_basebackup from the primary (target), start as its standby */
    HA_ACT_REINIT,           /* remove the local data directory, then clone */
    HA_ACT_REWIND,           /* pg_rewind from the primary (target), start as its standby */
    HA_ACT_START_STANDBY,    /* start as a standby of target ("" none yet) */
    HA_ACT_FOLLOW,           /* re-point the running standby at target and reload */
    HA_ACT_REFUSE,           /* the data directory cannot be used; why says why; no action */
};
const char *ha_action_name(enum ha_action a);

struct ha_decision {
    enum ha_action action;
    char target[FSM_NAME_MAX]; /* member the action refers to, "" if none */
    uint64_t system_id;        /* RECORD_BOOTSTRAP */
    uint32_t timeline;         /* RECORD_BOOTSTRAP, RECORD_PRIMARY; PROMOTE: the one to create */
    char why[HA_WHY_MAX];
};

/* Number of start failures after which a leader gives up and hands leadership over. */
#define HA_START_FAILURES_MAX 3

/* ha_pg.receiver of a WAL receiver whose sender is not known yet (it is connecting). */
#define HA_RECEIVER_UNKNOWN "?"

/* The detach bound (DESIGN.md rule 4). A standby told to follow a new primary whose WAL receiver
 * still streams from another server this long after the re-point (PostgreSQL restarts the
 * receiver only when replay next asks for WAL: paused replay, a recovery conflict or a backlog
 * delay it) is stopped and started again as a standby of the new primary. The new primary never
 * promotes on a timer: it waits until the voters it relies on are detached, which this bound
 * (plus a fast stop and a start) keeps short. */
#define HA_DETACH_BOUND_MS 1500

/* A standby on an older timeline than its primary that has not streamed for this long cannot
 * follow (its WAL went past the fork point): it is stopped and rewound. */
#define HA_STUCK_STANDBY_MS 5000

/* A primary whose server cannot write this long (ha_pg.unwritable: a full or read-only file
 * system, a data directory it may not write to) hands over to a standby that holds every
 * acknowledged commit; an unwritable standby is not promoted. Long enough for a log rotation or
 * a cleanup to free space, short against the minutes an operator needs. */
#define HA_UNWRITABLE_BOUND_MS 10000

/* A primary whose server crashed or failed to start HA_CRASHES_MAX times within
 * HA_CRASH_WINDOW_MS (a PANIC loop, a postmaster killed again and again) hands over to a standby
 * that holds every acknowledged commit, when one may take over; otherwise it is restarted again.
 * A single crash only gets a restart. */
#define HA_CRASHES_MAX 3
#define HA_CRASH_WINDOW_MS 60000

/* The default of primary_start_timeout, as Patroni's: 300 s. */
#define HA_PRIMARY_START_TIMEOUT_MS 300000

/* The bookkeeping of ha_pg_track_down, kept by the caller between ticks. */
struct ha_down_clock {
    bool armed;     /* the server ran as a primary that accepts connections since counting began */
    rpg_msec since; /* when it was first seen down after that (0: it is not down) */
};
/* Sets o->down and o->down_ms. counting: this member is the recorded primary and the ready
 * leader in the primary's term, and nothing of its own holds the server (a restart, a
 * switchover, maintenance mode, the fence's pause); otherwise the clock is cleared. A server
 * seen running as a primary (o->state running, not in recovery) arms it and clears the count;
 * once armed, any other observation counts from the first such one. */
void ha_pg_track_down(struct ha_pg *o, bool counting, struct ha_down_clock *c, rpg_msec now);

/* The observer's record of crashes and failed starts: the latest HA_CRASHES_MAX times. */
struct ha_crash_log {
    rpg_msec at[HA_CRASHES_MAX];
    unsigned n; /* how many were noted in all */
};
/* Notes a crash or a failed start at now. */
void ha_crash_note(struct ha_crash_log *l, rpg_msec now);
/* How many of the noted ones lie within HA_CRASH_WINDOW_MS before now (at most HA_CRASHES_MAX). */
unsigned ha_crash_count(const struct ha_crash_log *l, rpg_msec now);

/* The decision. Never fails: an input it cannot act on gives WAIT or REFUSE with a reason. */
void ha_decide(const struct ha_input *in, struct ha_decision *out);

/* Candidate choice (DESIGN.md rule 6, before synchronous replication): among this member and the
 * peers that can be promoted (reachable, a running standby of the cluster's system, so that its
 * WAL position is known; not nofailover, priority > 0, fewer than HA_START_FAILURES_MAX start
 * failures), the one with the highest (timeline, WAL position); ties go to a member with fewer
 * than HA_CRASHES_MAX crashes within HA_CRASH_WINDOW_MS, then to the higher failover_priority,
 * then to self, then to the lowest name. self_eligible says whether this member
 * may be promoted. Returns the chosen member's name (borrowed from in), or NULL when no member may
 * be promoted, and explains in why. A member of the replicated state that has not been polled since
 * leadership began makes the choice wait (NULL, *wait = true). */
const char *ha_choose_candidate(const struct ha_input *in, bool self_eligible, bool *wait,
                                char *why, size_t why_size);

/* The observer's part of an observation: a server that is not running (state) knows no recovery,
 * streaming, position, slots or checkpoint timeline; *not_streaming_since restarts. */
void ha_pg_set_not_running(struct ha_pg *o, enum ha_pg_state state, rpg_msec *not_streaming_since);

/* For a running server: how long a standby has not been streaming, from *since (the first
 * observation without streaming, 0 while it streams or is a primary). */
void ha_pg_track_streaming(struct ha_pg *o, rpg_msec *since, rpg_msec now);
/* A server that streams as a standby again, however it got there (a plain start may supersede a
 * rejoin), ends pg_rewind's back-off: o->rewind_retries, o->rewind_retry_ms and *retry_at go to 0,
 * so the next failover's rewind starts afresh. Returns whether a back-off was cleared. */
bool ha_pg_track_rewind_retries(struct ha_pg *o, rpg_msec *retry_at);
/* Sets o->unwritable to why ("" when the server can write) and o->unwritable_ms to how long it
 * has been so, *since holding when that began. */
void ha_pg_track_unwritable(struct ha_pg *o, const char *why, rpg_msec *since, rpg_msec now);

/* For a running standby: records where its WAL receiver streams from now (receiver, "" none) and
 * for how long it has (o->receiver_ms); *since is when that began, 0 to count afresh from now
 * (after a re-point). */
void ha_pg_track_receiver(struct ha_pg *o, const char *receiver, rpg_msec *since, rpg_msec now);

/* How long a standby may sit past a fork before it is stopped and rewound: a few observations,
 * so that a reading taken while the receiver switches timelines never counts. */
#define HA_PAST_FORK_MS 2000

/* From one observation: past (the replay position is past the fork), clear (it is not, or no
 * newer timeline is known) or unknown (no WAL receiver runs, so the timeline replayed is not
 * known for sure). Keeps o->past_fork_ms. */
enum ha_fork_reading { HA_FORK_UNKNOWN = 0, HA_FORK_CLEAR, HA_FORK_PAST };
void ha_pg_track_fork(struct ha_pg *o, enum ha_fork_reading r, rpg_msec *since, rpg_msec now);

/* The replication slot name of a member: "raftpg_" + member id. Names of members can hold
 * characters that slot names cannot, ids cannot. */
void ha_slot_name(uint64_t member_id, char *buf, size_t size);

#endif
