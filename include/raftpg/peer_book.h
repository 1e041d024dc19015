/* The bookkeeping of the peer polls, shared by the agent's poller (src/peers.c, over libcurl on
 * the loop) and the simulation's (over the simulated network): which peer to ask now, one
 * request per peer at most, an answer kept the moment it arrives, and the times a leader compares
 * with its own start (last_polled). Pure: the executor sends the requests and reports their ends.
 */
#ifndef RAFTPG_PEER_BOOK_H
#define RAFTPG_PEER_BOOK_H

#include <stdbool.h>

#include "raftpg/err.h"
#include "raftpg/peer_status.h"

/* A request in flight. */
struct peer_call {
    bool busy;
    bool again;                /* asked for again while in flight: ask again at its end */
    rpg_msec started;          /* when it was sent */
    struct peer_status status; /* the target as it was when asked; the executor writes the answer */
    void *owner;               /* the executor's, for its callbacks */
    bool rtt_changed;          /* set by peer_book_answer: the peer's rtt_slow changed */
};

struct peer_book {
    unsigned n_targets;
    struct peer_status targets[PEERS_MAX];
    unsigned n_results;
    struct peer_status results[PEERS_MAX]; /* what the deciders read */
    /* Twice the peers: a request to a peer dropped from the targets still runs until its answer
     * or its time-out. */
    struct peer_call calls[2 * PEERS_MAX];
    /* A peer whose least round trip exceeds this is slow for the election timeout (0: not
     * judged). The executor sets it: ET/6, README "Choosing the election timeout". */
    rpg_msec rtt_bound_ms;
};

/* Whether a least round trip of min is slow against bound: above it; once slow, until it is
 * back under half of it (so that a round trip near the bound does not flap). */
bool peer_rtt_judge(rpg_msec min, rpg_msec bound, bool was_slow);

/* Replaces the targets; a target kept at the same address keeps its last report. */
void peer_book_set_targets(struct peer_book *b, const struct peer_status *targets, unsigned n);

/* Whether targets (name and API address, in order) are the ones held already. */
bool peer_book_same_targets(const struct peer_book *b, const struct peer_status *targets,
                            unsigned n);

/* Points the polls at every member of s but self, in s's order; before s is known (NULL or not
 * initialized), at the initial members (name and API address) but self. The targets are replaced
 * only when they changed, so that the last reports are kept. Returns whether they changed. */
bool peer_book_update_targets(struct peer_book *b, const struct fsm_state *s, const char *self,
                              const struct peer_status *initial, unsigned n_initial);

/* The last report of the named peer, NULL when it is no target. */
const struct peer_status *peer_book_get(const struct peer_book *b, const char *name);

/* A request to target begins at now: the call to send, NULL when that peer is being asked
 * already (then, with again, it is asked again at the end) or every slot waits for a time-out
 * (the next round tries again). */
struct peer_call *peer_book_ask(struct peer_book *b, const struct peer_status *target, bool again,
                                rpg_msec now);

/* The request of c ended at now, its answer (reachable) or failure (error) in c->status: kept
 * for its peer if that peer is still a target at the same address, an answer's round trip
 * (now - started) among its samples (c->rtt_changed says whether rtt_slow changed). Frees the
 * call. Returns the target to ask again (into *next) when it was asked for again meanwhile. */
bool peer_book_answer(struct peer_book *b, struct peer_call *c, rpg_msec now,
                      struct peer_status *next);

#endif
