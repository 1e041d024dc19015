/* Whether a Raft leader may act as the cluster's leader now (DESIGN.md rule 3), and whom a
 * leader that cannot persist hands leadership to: shared by the agent (src/agent.c) and the
 * simulation (tests/sim/sim_agent.c), over cons.c's view of Raft and the peers' last reports. */
#ifndef RAFTPG_LEAD_H
#define RAFTPG_LEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "raftpg/cons.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/peer_status.h"

/* What the gate remembers between ticks. */
struct lead_memory {
    uint64_t ready_term;  /* the term in which this member became the ready leader ... */
    rpg_msec ready_since; /* ... when: reports asked for later count for the early end */
    uint64_t wait_term;   /* the term whose wait was logged */
    uint64_t early_term;  /* the term in which the wait ended early */
};

struct lead_in {
    const struct cons *cons;
    const char *self;                /* this member's name */
    const struct peer_status *peers; /* the peers' last reports */
    unsigned n_peers;
    bool lease_ok;        /* fence_step's judgement this tick */
    bool watchdog_ok;     /* armed when it must be, or not required */
    rpg_msec watchdog_ms; /* watchdog_promote_wait_ms: 0 without a watchdog */
    rpg_msec now;
};

/* The report of the named peer among n, NULL when there is none. */
const struct peer_status *lead_peer(const struct peer_status *peers, unsigned n, const char *name);

/* fence_others_stood_down over every other member of the Raft configuration and the recorded
 * primary when it is another node outside it (a leader that removed itself keeps its server
 * until it fences), from the reports asked for since ready_since. A member whose report names
 * another Raft id, or none, counts as silent. */
bool lead_others_stood_down(const struct lead_in *in, rpg_msec ready_since);

/* A voter to hand leadership to when this one cannot: reachable under the id the configuration
 * lists, its storage persists and its state agrees. 0 lets libraft pick. */
uint64_t lead_pick_voter(const struct cons *c, const struct peer_status *peers, unsigned n);

/* One tick of the gate: true when this member acts as leader (core_view.leader). It needs the
 * lease and a working watchdog, and waits until the previous leader's lease and fence have surely
 * ended (fence_may_lead), or until every other member answered that it stood down. *poll_now:
 * it just became the ready leader, so the peers should be asked at once. Logs through log. */
bool lead_gate(const struct fence_timing *t, struct lead_memory *m, const struct lead_in *in,
               bool *poll_now, void (*log)(void *data, enum log_level level, const char *msg),
               void *log_data);

#endif
