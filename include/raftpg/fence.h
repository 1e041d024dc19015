/* Fencing arithmetic (DESIGN.md rules 2, 3 and 5): how long a leader's lease lasts, when the old
 * side must begin to fence so that it is done before its lease ends, and how long a new leader
 * waits before it promotes. Pure: callers pass the clock in. */
#ifndef RAFTPG_FENCE_H
#define RAFTPG_FENCE_H

#include <stdbool.h>

#include "raftpg/err.h"

/* Derived from the Raft election timeout (ET). The argument, in the README:
 * - A barrier submitted at t that commits means a majority reset its election timer at or after
 *   t; they refuse votes until ET after that, so no new leader exists before t + ET.
 * - The lease ends at t + lease_ms, lease_ms = 0.8 ET: the 0.2 ET left covers clock-rate drift
 *   between nodes (up to 20 % over one ET) and the loop's millisecond granularity.
 * - The old side starts to fence margin_ms before its lease ends and is done within margin_ms:
 *   the postmaster is told to stop (SIGINT: no new sessions, every session terminated), and after
 *   escalate_ms it is killed outright (SIGQUIT). The VIP is released at the same moment.
 * - The new side promotes only after its own barrier and after last contact + lease_ms +
 *   margin_ms, so even a leader whose lease it helped renew has finished fencing by then. */
struct fence_timing {
    rpg_msec lease_ms;    /* 0.8 ET */
    rpg_msec renew_ms;    /* ET / 4: how often the leader renews */
    rpg_msec margin_ms;   /* 0.2 ET: fencing starts this long before the lease ends */
    rpg_msec escalate_ms; /* margin / 2: fast stop, then immediate */
};

void fence_timing_init(struct fence_timing *t, unsigned election_timeout_ms);

/* True when this node may act as primary at now: it is the ready leader and its lease has more
 * than margin_ms left. */
bool fence_lease_ok(const struct fence_timing *t, bool leader_ready, rpg_msec lease_until,
                    rpg_msec now);

/* The earliest loop time a new leader may promote: last contact with the previous leader (0: none
 * since this process started, then its start counts, as the previous leader may have been heard
 * just before a restart) + lease + margin, + watchdog_ms when the nodes run a watchdog: an old
 * primary whose agent died or hung feeds its device at the latest until its lease ends, and the
 * device resets the node watchdog_ms (its timeout) after the last feed. */
rpg_msec fence_promote_not_before(const struct fence_timing *t, rpg_msec last_heard_leader,
                                  rpg_msec started_at, rpg_msec watchdog_ms);

#endif
