/* The cluster's promotions (fsm.h history): the primary records its own once it runs on its new
 * timeline; GET /history shows them in Patroni's shape and `raftpg ctl history` as a table. */
#ifndef RAFTPG_HISTORY_H
#define RAFTPG_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"

struct history {
    uint32_t timeline; /* the timeline this member was last seen running on as primary ... */
    int64_t at_ms;     /* ... since this wall-clock time (ms since the epoch) */
    bool submitting;   /* an ADD_HISTORY is on its way through Raft */
    /* The last primary the replicated state named other than this member, and its term: the
     * promotion that replaced it was a switchover when it says it handed leadership here in
     * that term. */
    char prev_primary[FSM_NAME_MAX];
    uint64_t prev_term;
    char waiting[RPG_ERRMSG_SIZE]; /* why the current promotion is not recorded yet ("" none) */
};

/* Reads a PostgreSQL timeline history file (pg_wal/NNNNNNNN.history, text of len bytes) of
 * timeline: its last entry says from which timeline it branched and at which LSN that one
 * ended. Returns 0, or RPG_EPROTO with errmsg naming the line that does not parse. */
int history_switchpoint(const char *text, size_t len, uint32_t *prev_timeline, uint64_t *lsn,
                        char *errmsg);

struct agent;

/* On the leader whose PostgreSQL runs as the recorded primary on a timeline the history lacks:
 * proposes the entry, once every member's agent reads state version 4 (an older one would reject
 * it and its state would differ). Called from the agent's HA tick. */
void history_tick(struct agent *a);

/* Patroni's GET /history: a list of [previous timeline, LSN where it ended, reason, ISO 8601
 * time, new primary], oldest first (caller frees). */
struct json_t;
struct json_t *history_json(const struct fsm_state *s);

#endif
