/* The agent's loop cadences: how often each part of a node's work runs. The agent arms its timers
 * with them and the simulation ticks its agents at the same instants, so the two cannot drift
 * apart. Types-only: no I/O header. */
#ifndef RAFTPG_TIMING_H
#define RAFTPG_TIMING_H

/* The fence: the lease, the VIP's renewal and the watchdog's feeding are looked at this often. */
#define TIMING_FENCE_TICK_MS 10
/* The PostgreSQL observer's look at the server (one query round). */
#define TIMING_PG_OBSERVE_INTERVAL_MS 200
/* The decision tick (ha_decide, the quorum driver, membership steps). */
#define TIMING_HA_TICK_MS 100
/* The peers' status reports: a round this often, each request bounded. */
#define TIMING_PEER_POLL_INTERVAL_MS 250
#define TIMING_PEER_POLL_TIMEOUT_MS 400
/* Raft membership reconciliation (cons.c), run by cons_uv.c on the leader. */
#define TIMING_RECONCILE_INTERVAL_MS 100
/* The Raft directory's probe (statvfs and a small write, off the loop), and while the write
 * fence is closed (cons.h, wal): the restart follows the first good probe. */
#define TIMING_STORAGE_PROBE_INTERVAL_MS 1000
#define TIMING_STORAGE_PROBE_FENCED_MS 250

#endif
