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
 * from that report (or holds it when it was the leader itself). */
struct failover_permit {
    char to[FSM_NAME_MAX]; /* "" none */
    uint64_t until;        /* loop clock (cons_uv_clock_ms) */
    char from[FSM_NAME_MAX];
};

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

struct agent;
struct http_conn;

/* Handles POST /failover on the leader: answers conn (200 through the switchover, 202 once
 * leadership was handed to the candidate, 412 with the reason on refusal). In maintenance mode,
 * without a healthy primary, a candidate that passes failover_check gets a permit to promote
 * (the cluster stays paused); with a healthy primary it is a switchover to it (allowed in pause,
 * as a switchover to a named candidate is). */
void failover_start(struct agent *a, struct http_conn *conn, const char *candidate);

#endif
