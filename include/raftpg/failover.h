/* An operator's failover to a named member (POST /failover, `raftpg ctl failover`), with
 * Patroni's meaning: while the primary is healthy it is a switchover to that member
 * (switchover.h); without one, the member is promoted only if that loses no acknowledged commit
 * (DESIGN.md rules 6 and 7). */
#ifndef RAFTPG_FAILOVER_H
#define RAFTPG_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/fsm_state.h"
#include "raftpg/ha.h"
#include "raftpg/peer_book.h"

struct agent;

/* What the leader knows of one member when it judges a failover. */
struct failover_member {
    char name[FSM_NAME_MAX];
    bool heard;      /* its agent answered recently (or it is the leader itself) */
    bool running;    /* its PostgreSQL runs ... */
    bool standby;    /* ... in recovery */
    bool promotable; /* not nofailover, priority above 0, its Raft storage and state sound */
    uint64_t system_id;
    uint32_t timeline;
    uint64_t wal_position; /* received or replayed, whichever is further */
};

/* Why a failover is refused (failover_check's reasons, then failover_decide's own), each with a
 * failover_reason_name(). */
enum failover_reason {
    FAILOVER_REASON_NONE = 0,        /* not refused */
    FAILOVER_REASON_NOT_MEMBER,      /* the candidate is not a member of the cluster */
    FAILOVER_REASON_NO_ANSWER,       /* its agent does not answer */
    FAILOVER_REASON_NOT_STANDBY,     /* its PostgreSQL is not a running standby */
    FAILOVER_REASON_OTHER_SYSTEM,    /* its data is another system's */
    FAILOVER_REASON_NOT_PROMOTABLE,  /* nofailover, priority 0, its storage or state unsound */
    FAILOVER_REASON_BEHIND_BOUND,    /* its WAL ends before the acknowledged-WAL bound */
    FAILOVER_REASON_SYNC_UNPROVEN,   /* too few recorded synchronous voters heard (rule 6) */
    FAILOVER_REASON_VOTER_AHEAD,     /* a synchronous voter is ahead of it */
    FAILOVER_REASON_MEMBER_AHEAD,    /* a promotable standby is ahead of it */
    FAILOVER_REASON_ALREADY_PRIMARY, /* it is the healthy primary already */
    FAILOVER_REASON_SWITCHOVER,      /* a switchover asked of this member is under way */
    FAILOVER_REASON_N,
};
const char *failover_reason_name(enum failover_reason r);

/* The HTTP status of a refusal: 409 while a switchover is under way, else 412. */
int failover_refusal_status(enum failover_reason r);

/* Whether candidate may be promoted without a healthy primary: it is a heard, running,
 * promotable standby of the cluster's system at or past the acknowledged-WAL bound; enough
 * recorded synchronous voters were heard (|V| - k + 1, sync.h sync_candidate_ok; a record that
 * proves nothing passes only with sync_mode off) and none of the heard ones is ahead of it; and
 * no other promotable standby is ahead of it (the automatic choice would take that one).
 * Returns 0 with why saying so, or RPG_EINVAL with why naming the reason. */
int failover_check(const struct fsm_state *s, enum sync_mode sync_mode,
                   const struct failover_member *m, unsigned n, const char *candidate, char *why,
                   size_t why_size);

/* How long a failover asked for in maintenance mode lets its candidate act: it becomes leader,
 * waits out the previous lease (rule 3), records itself, promotes and sets its synchronous
 * quorum within this; a permit that runs out leaves the cluster paused as it is. */
#define FAILOVER_PERMIT_MS 30000

/* A failover asked for (in pause, Patroni allows one to a named candidate): the leader that
 * checked it grants it, and reports it in /status ("failover_permit"); the candidate adopts it
 * from that report (or holds it when it was the leader itself). The grant and the adopted permit
 * are kept apart: a member that took over by one permit and then, as leader, grants the next
 * failover must go on reporting that grant while the first granter still reports its own. */
struct failover_permit {
    char to[FSM_NAME_MAX]; /* the grant this member made: "" none */
    uint64_t until;        /* loop clock (cons_uv_clock_ms) */
    char from[FSM_NAME_MAX];
    char held_from[FSM_NAME_MAX]; /* a permit for this member adopted from this member's report:
                                   * "" none */
    uint64_t held_until;          /* loop clock */
};

/* Makes grant (a plan's permit) the grant of permit, or with NULL, clears that grant; the permit
 * adopted from another member stays as it is. */
void failover_permit_grant(struct failover_permit *permit, const struct failover_permit *grant);

/* The actions maintenance mode lets through on this member (core_view allowed, 0: none): while
 * it holds a permit for itself, what a takeover needs (record, promote, checkpoint, slots);
 * once the recorded primary changed during the pause, a standby's re-point to it (Patroni: the
 * replicas switch to the manually promoted primary). pause_primary is the recorded primary when
 * the pause began. */
unsigned failover_paused_allows(struct agent *a, const char *pause_primary);

/* Whether this member holds a failover permit for itself (its own, or adopted from the fresh
 * report of the member that granted it). Outside maintenance mode the permit only waives
 * maximum_lag_on_failover for it: the operator chose it. */
bool failover_permit_held(struct agent *a);

/* What the leader has in hand when an operator asks it for a failover: its replicated state, its
 * own server as its observer sees it, the reports of the others, and its configuration. All
 * borrowed. */
struct failover_input {
    const struct fsm_state *state;
    const char *self;      /* this member (the leader asked) */
    const char *candidate; /* the member to promote */
    /* This member's own PostgreSQL: whether it manages one and its observation is valid, and
     * that observation. */
    bool pg_observed;
    const struct ha_pg *pg;
    bool promotable;              /* not nofailover, priority above 0, Raft storage and state
                                   * sound */
    const struct peer_book *book; /* the others' /status reports (NULL: none) */
    rpg_msec now;                 /* loop clock, as the reports' last_seen */
    /* This member's configuration, for the settings in force (sync.h). */
    int sync_mode;
    unsigned sync_node_count;
    int sync_commit;
    bool max_lag_set;
    uint64_t max_lag;
    uint64_t primary_wal; /* the furthest the primary was seen writing (core.h lag_wal) */
    /* A switchover this member runs: its candidate and phase (switchover_phase_name); NULL when
     * none. Its stopped primary must not read as a lost one. */
    const char *switchover_to;
    const char *switchover_phase;
};

enum failover_verdict {
    FAILOVER_REFUSED = 0, /* answered 412 with why */
    FAILOVER_SWITCHOVER,  /* the primary is healthy: Patroni's failover is a switchover to it */
    FAILOVER_GRANTED,     /* permit granted, leadership to hand over (or kept) */
};

/* What the leader does about it. */
struct failover_plan {
    enum failover_verdict verdict;
    enum failover_reason reason; /* FAILOVER_REFUSED: why in a word */
    char why[RPG_ERRMSG_SIZE];   /* the refusal, or what the candidate holds */
    char lag_note[320]; /* granted beyond maximum_lag_on_failover: "; it lags ..." (else "") */
    /* FAILOVER_GRANTED: the grant to make (failover_permit_grant) before leadership is handed
     * over, and the candidate's Raft id to hand it to (0: the candidate is this member, which
     * leads already). */
    struct failover_permit permit;
    uint64_t transfer_to;
};

/* The decision of failover_start, without its I/O: whether a healthy primary makes it a
 * switchover, else the failover_member view built from the own observation and the fresh
 * reports, failover_check, the permit for FAILOVER_PERMIT_MS from now, the lag note, and whom to
 * hand Raft leadership to. Pure: in is only read. */
void failover_decide(const struct failover_input *in, struct failover_plan *out);

/* failover_permit_held without the agent: whether permit (this member's, updated in place) is a
 * permit for self: its own grant to itself, or one adopted (now, from a fresh report in book,
 * NULL: none, of the member that granted it, or earlier). Adopting leaves the grant as it is.
 * Logs the adoption. */
bool failover_permit_take(struct failover_permit *permit, const char *self,
                          const struct peer_book *book, rpg_msec now);

/* failover_paused_allows without the agent: the mask for a member that holds a permit
 * (permit_held) or not, with replicated state s and the primary recorded when the pause began. */
unsigned failover_paused_mask(bool permit_held, const struct fsm_state *s,
                              const char *pause_primary);

struct http_conn;

/* Handles POST /failover on the leader: answers conn (200 through the switchover, 202 once
 * leadership was handed to the candidate, 412 with the reason on refusal). In maintenance mode,
 * without a healthy primary, a candidate that passes failover_check gets a permit to promote
 * (the cluster stays paused); with a healthy primary it is a switchover to it (allowed in pause,
 * as a switchover to a named candidate is). */
void failover_start(struct agent *a, struct http_conn *conn, const char *candidate);

#endif
