/* What a member said of itself when another polled its API (GET /status): types only, for the
 * deciders (the core, the leader's gate) and the poller (peers.h) alike. */
#ifndef RAFTPG_PEER_STATUS_H
#define RAFTPG_PEER_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"
#include "raftpg/pg_state.h"

#define PEERS_MAX FSM_MEMBERS_MAX
#define PEER_RTT_SAMPLES 8 /* answered polls whose round trips are kept per peer */

struct peer_status {
    char name[FSM_NAME_MAX];
    char api[FSM_ADDR_MAX];
    bool reachable;     /* the last poll got a valid answer */
    rpg_msec last_seen; /* agent clock (cons_uv_clock_ms) of the last valid answer, 0 never */
    char error[RPG_ERRMSG_SIZE]; /* why the last poll failed */
    /* What the peer reported about itself. */
    uint64_t id;
    char raft_role[16];
    uint64_t term;
    char leader[FSM_NAME_MAX];
    char phase[16];
    rpg_msec last_polled; /* agent clock: when the last completed poll started if answered, or
                           * ended if not (peers.c keep()) */
    /* Its PostgreSQL, when it manages one (has_pg). */
    bool has_pg;
    enum ha_pg_state pg_state; /* as reported; HA_PG_UNKNOWN for a word this agent does not know */
    bool pg_in_recovery;
    bool pg_streaming;
    uint64_t pg_system_id;
    uint32_t pg_timeline;
    uint32_t pg_checkpoint_timeline;
    uint64_t pg_wal_position;
    uint64_t pg_replay_position;
    unsigned pg_start_failures;
    unsigned pg_crashes;     /* its crashes and failed starts within the crash window */
    bool pg_unwritable;      /* it says its server cannot write (ha_pg.unwritable) */
    bool pg_pending_restart; /* a changed setting waits for a restart (pg_settings) */
    char pg_address[FSM_ADDR_MAX];
    char pg_upstream[FSM_NAME_MAX];
    char pg_receiver[FSM_ADDR_MAX]; /* where its WAL receiver streams from (ha_pg.receiver) */
    char pg_conninfo[FSM_ADDR_MAX]; /* where its primary_conninfo points (ha_pg.conninfo) */
    char pg_detail[RPG_ERRMSG_SIZE];
    char pg_rejoin_stage[24]; /* its rejoin pipeline (pg.h pg_rejoin): stage, ... */
    bool pg_rejoin_running;   /* ... whether under way, and a clone's progress in kB */
    uint64_t pg_rejoin_done_kb;
    uint64_t pg_rejoin_total_kb;
    char tags_json[2048];        /* its "tags" object as it reported it, user tags included */
    char scheduled_restart[256]; /* its "scheduled_restart" object as it reported it, or "" */
    bool nofailover;
    bool nosync;
    bool noloadbalance;
    int failover_priority;
    /* Its Raft storage and replicated state, as it reports them. */
    bool storage_failed;
    char storage_error[RPG_ERRMSG_SIZE];
    bool state_known;       /* it reported a checksum */
    uint64_t state_index;   /* the applied index of ... */
    uint64_t state_sum;     /* ... this checksum of its replicated state */
    bool diverged;          /* it found its state differs from the others' */
    unsigned state_version; /* the newest replicated-state version it reads (0: older agent) */
    char handed_to[FSM_NAME_MAX]; /* its last switchover handed leadership to ... */
    uint64_t handed_term;         /* ... in this term (switchover.h) */
    /* The round trips of its last answered polls (the poller's own measure, peer_book.h): the
     * least of them, and whether that is too long for the election timeout. */
    rpg_msec rtt_samples[PEER_RTT_SAMPLES];
    unsigned rtt_n;
    rpg_msec rtt_min_ms;
    bool rtt_slow;
    char permit_to[FSM_NAME_MAX]; /* a failover it granted while paused, to ... (failover.h) */
    uint64_t permit_ms_left;      /* ... for this long from its report */
    /* The members its replicated state lists, name and Raft id (n_members 0: not reported). */
    unsigned n_members;
    struct {
        char name[FSM_NAME_MAX];
        uint64_t id;
    } members[FSM_MEMBERS_MAX];
};

#endif
