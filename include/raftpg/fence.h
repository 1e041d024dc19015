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
 * - The old side fences in two layers (DESIGN.md rule 2). Soft, from margin_ms before its lease
 *   ends: every process of its PostgreSQL is stopped (SIGSTOP), so that no commit completes and no
 *   session is accepted, but no session is lost either; a lease renewed in time resumes them
 *   (SIGCONT) and clients see a pause, not an error. Hard, from the end of the lease (the first
 *   moment a successor could exist, as far as this node's clock can tell) or as soon as it is no
 *   longer the leader of its term: the postmaster is told to stop (SIGINT, with SIGCONT: no new
 *   sessions, every session terminated), and after escalate_ms it is killed (SIGQUIT); the VIP
 *   goes at the same moment.
 * - The new side promotes only after its own barrier and after last contact + lease_ms +
 *   margin_ms + hard_ms: 1.25 ET on its clock, which under 20 % drift is at least ET on the old
 *   side's, so the hard layer, begun at 0.8 ET, has 0.2 ET (twice escalate_ms) to be done.
 * - Loop gaps. The lease is only as good as the clock it is measured on. The agent's clock
 *   (CLOCK_BOOTTIME) counts a process stopped or a machine suspended, but a hypervisor may stop
 *   a guest's clocks with it and let them catch up only in part, or not at all, when it resumes.
 *   So the fence tick, due every 10 ms, also measures the time since the previous tick: a gap of
 *   more than gap_ms (ET / 2: two renewals missed, longer than the scheduling stalls of a loaded
 *   machine, 90..130 ms seen, which must not cost a lease) makes the lease untrusted until a
 *   barrier submitted after the gap commits (fence_lease_trusted). A lower bound was tried: under
 *   load, gaps came one after another, each voided the barriers in flight, and the lease ran out
 *   (test_raft_auth's leader fenced). An untrusted lease that has
 *   not lapsed is the soft layer: PostgreSQL is paused, sessions kept, and resumed when the fresh
 *   barrier commits, one round trip later; only a lease that lapses or a lost leadership is hard.
 *   A scheduling stall therefore costs clients a pause, never their sessions. What no gap shows:
 *   a pause that the guest's clocks did not count at all (README.md, "Fencing"). */
struct fence_timing {
    rpg_msec lease_ms;       /* 0.8 ET */
    rpg_msec renew_ms;       /* ET / 4: how often the leader renews */
    rpg_msec margin_ms;      /* 0.2 ET: the soft layer starts this long before the lease ends */
    rpg_msec hard_ms;        /* ET / 4: what a new leader waits for the old side's hard layer */
    rpg_msec escalate_ms;    /* margin / 2: fast stop, then immediate */
    rpg_msec gap_ms;         /* ET / 2: a longer gap between fence ticks distrusts the lease */
    rpg_msec echo_wait_ms;   /* ET / 2: how long a follower holds a lease echo before "no" */
    rpg_msec steady_ms;      /* ET: a lease held this long after a lapse is steady again */
    rpg_msec flap_window_ms; /* FENCE_FLAP_WINDOW_ET x ET: two lapses within it hand over */
};

void fence_timing_init(struct fence_timing *t, unsigned election_timeout_ms);

/* True when this node may act as primary at now: it is the ready leader and its lease has more
 * than margin_ms left. */
bool fence_lease_ok(const struct fence_timing *t, bool leader_ready, rpg_msec lease_until,
                    rpg_msec now);

/* Lease echo, the follower's side (README.md, "Fencing"). The leader sends each voter a probe
 * (its id, its term) about every renew_ms over the API and notes when it sent it, t. The
 * follower says yes only once its election timer restarted strictly after the probe arrived
 * (both on its Raft clock), while it is a follower of that leader in that term: libraft 0.15
 * restarts the timer when it accepts an AppendEntries from its leader, before any disk write,
 * and a follower that knows a leader refuses votes and pre-votes until the timer runs out. A
 * majority of yes (the leader counting itself) therefore proves that no other leader can exist
 * before t + ET, as a committed barrier does, without waiting for fsync. Strictly after: the
 * Raft clock is read once per loop turn, so an equal reading may come from a message handled in
 * the same turn as the probe but sent before t. */
enum fence_echo { FENCE_ECHO_WAIT = 0, FENCE_ECHO_YES, FENCE_ECHO_NO };

struct fence_echo_view {
    bool follower;        /* the Raft role is follower */
    uint64_t term;        /* its current term */
    uint64_t leader_id;   /* the leader it knows, 0: none */
    rpg_msec timer_start; /* its election timer's last restart (Raft clock) */
};

/* The answer to a probe of leader_id in term that arrived at arrived (Raft clock), at now: yes
 * as above; no when this node is in a later term or wait_ms have passed; otherwise wait (the
 * next heartbeat is due). */
enum fence_echo fence_echo_decide(const struct fence_echo_view *v, uint64_t leader_id,
                                  uint64_t term, rpg_msec arrived, rpg_msec now, rpg_msec wait_ms);

/* A gap between two fence ticks (last_tick 0: none yet) longer than gap_ms: the loop or the
 * machine stood still, and the clock may not have counted all of it. */
bool fence_loop_gap(const struct fence_timing *t, rpg_msec last_tick, rpg_msec now);

/* Whether the lease ending at lease_until may be believed after the last loop gap, detected at
 * gap_at (0: none): only a lease granted by a barrier submitted at or after gap_at is (every
 * lease ends lease_ms after its barrier's submission). fence_lease_ok's callers AND it in. */
bool fence_lease_trusted(const struct fence_timing *t, rpg_msec lease_until, rpg_msec gap_at);

/* What a fence tick keeps between ticks to see loop gaps. */
struct fence_clock {
    rpg_msec last_tick; /* the previous tick (0: none yet) */
    rpg_msec gap_at;    /* the last gap ended here (0: none) */
    unsigned n_gaps;
};

/* The lease judged at a fence tick: fence_lease_ok and fence_lease_trusted after noting a gap
 * since the previous tick in k. *gap: this tick found one (the caller then submits a fresh
 * barrier, cons_lease_renew_now, and says so). */
bool fence_lease_check(const struct fence_timing *t, struct fence_clock *k, bool leader_ready,
                       rpg_msec lease_until, rpg_msec now, bool *gap);

/* True when a successor could exist, as far as this node can tell: it holds no lease of its term
 * any more (lease_until 0: not the ready leader) or the lease has ended. The hard layer's trigger.
 */
bool fence_lease_lapsed(rpg_msec lease_until, rpg_msec now);

/* The earliest loop time a new leader may promote: last contact with the previous leader (0: none
 * since this process started, then its start counts, as the previous leader may have been heard
 * just before a restart) + lease + margin + hard, + watchdog_ms when the nodes run a watchdog: an
 * old primary whose agent died or hung feeds its device at the latest until its lease ends, and the
 * device resets the node watchdog_ms (its timeout) after the last feed. */
rpg_msec fence_promote_not_before(const struct fence_timing *t, rpg_msec last_heard_leader,
                                  rpg_msec started_at, rpg_msec watchdog_ms);

/* A leader whose lease keeps lapsing (a lossy link that lets a renewal through now and then):
 * each lapse is a hard fence, each renewal would start PostgreSQL again, and the healthy majority
 * has no primary while this leader holds on. Two rules, over the lapses the fence tick notes
 * (fence_flap_note) and kept across terms:
 * - Steady before acting: after a lapse, the lease must have been held without a lapse for
 *   steady_ms (ET: four renewals in a row) before the leader acts as leader again
 *   (fence_flap_steady, lead_gate), so one renewal that gets through starts nothing.
 * - Hand over when it repeats: after a second lapse within flap_window_ms (20 ET) of the
 *   previous one, the leader hands leadership to a healthy voter (fence_flap_tick, from
 *   cons_storage_tick) as soon as it holds its lease again, and again every steady_ms while it
 *   still leads within the window (libraft gives a transfer up after ET); a node that leads again
 *   within the window does so at its first lapse (the second may have been in an earlier term),
 *   not at once: the others may need it (it holds commits). Never while lapsed: a
 *   leader that resumed stale would ask a node of a later term to stand, and a transfer skips
 *   vote refusal. One lapse alone (a stall that outlived the lease) never hands over. */
#define FENCE_FLAP_WINDOW_ET 20

struct fence_flap {
    bool leading;        /* the last tick saw this node as the ready leader */
    bool lapsed;         /* ... with its lease lapsed */
    rpg_msec last_lapse; /* the last lapse began (0: none) */
    rpg_msec prev_lapse; /* the one before it */
    rpg_msec lead_since; /* this node has been the ready leader since */
    rpg_msec held_since; /* the lease has been held without a lapse since */
    rpg_msec handed_at;  /* the last hand-over this caused */
    unsigned n_lapses;
    unsigned n_handovers;
};

/* Notes what the leader's lease is at now, at every fence tick: leader_ready (the ready Raft
 * leader), its lease's end. A lapse is what the fence sees lapsed (and fences hard); a renewal
 * that ends one between two ticks had its probe sent before the lease ended, so the lease it
 * grants joins the old one without a gap, and nothing was fenced. */
void fence_flap_note(struct fence_flap *f, bool leader_ready, rpg_msec lease_until, rpg_msec now);

/* One tick of the leader's loop (leader_ready as above) after the notes: true when the leader
 * should hand leadership over now. */
bool fence_flap_tick(const struct fence_timing *t, struct fence_flap *f, bool leader_ready,
                     rpg_msec now);

/* Whether the leader's lease has been steady long enough after a lapse (true with no lapse in
 * the window). */
bool fence_flap_steady(const struct fence_timing *t, const struct fence_flap *f, rpg_msec now);

/* What another member of the Raft configuration said of itself, for fence_others_stood_down. */
struct fence_member_report {
    bool fresh;        /* it answered a poll asked for after this member became the ready leader */
    uint64_t term;     /* its Raft term */
    bool leads;        /* it says it is the Raft leader */
    bool server_quiet; /* its PostgreSQL accepts no writes: none managed, stopped, no data
                        * directory, or running in recovery */
};

/* Rule 3 shown rather than waited for: every other member answered, after this member became the
 * ready leader of term, that it is in term or later, does not lead and its server accepts no
 * writes. Then no other node holds a lease (a leader that sees a later term steps down and its
 * lease goes with its term, cons.c) nor runs a writable server, and the wait of
 * fence_promote_not_before can end at once: a switchover's handover, or a leader that stepped
 * aside. Any member silent, stale, leading or writable keeps the wait; with no other member,
 * false (a single node's previous leader is itself before a restart: the wait covers that). */
bool fence_others_stood_down(const struct fence_member_report *r, unsigned n, uint64_t term);

/* Whether a leader may act as the cluster's leader towards PostgreSQL at now (the core's
 * view.leader): it is the ready leader, it holds the lease (fence_lease_ok), and the previous
 * leader has surely fenced (fence_promote_not_before). */
bool fence_may_lead(const struct fence_timing *t, bool leader_ready, bool lease_ok,
                    rpg_msec last_heard_leader, rpg_msec started_at, rpg_msec watchdog_ms,
                    rpg_msec now);

/* Whether PostgreSQL may accept writes, the fence's trigger: a postmaster runs, and a promotion
 * was asked for and not yet observed done (it may take effect at any moment), or the server was
 * last observed as a primary, or it has no standby.signal (not observed yet, or promoted since:
 * PostgreSQL removes the file when a promotion completes, before the observer notices). */
bool fence_pg_writable(bool postmaster, bool promoting, bool observed_primary, bool standby_signal);

/* ---- one fence tick: what the old side does, decided without I/O --------------------------
 * The agent (src/agent.c) runs it every 10 ms and before every decision, the simulation
 * (tests/sim) on its own clock; each then does what it says. */

/* The VIP's bookkeeping, kept by the caller between ticks. */
struct fence_vip {
    bool open;          /* a vip section is configured */
    bool held;          /* the address was on the interface when last seen */
    bool busy;          /* an operation runs or a release waits */
    bool claiming;      /* the operation is a claim */
    bool releasing;     /* the operation is a release */
    bool startup_done;  /* the start-up release of a stale VIP ran */
    bool refused;       /* the last claim failed (another host answered, or an error) */
    rpg_msec failed_at; /* when it failed */
    rpg_msec renewed_at;
    rpg_msec renew_ms; /* vip_renew_interval_ms */
    /* vip_probe_due (no probe runs, none fresh enough for a claim), and the node acts as the
     * leader (lead_gate): no other node may hold the address by right any more. */
    bool probe_due;
};

struct fence_in {
    rpg_msec now;
    bool lease_ok;         /* fence_lease_ok and fence_lease_trusted, judged by the caller */
    bool lease_lapsed;     /* fence_lease_lapsed: a successor could exist */
    bool frozen;           /* the soft layer stopped the server's processes (SIGSTOP) */
    bool writable;         /* pg_may_accept_writes */
    bool pg_busy;          /* a control operation runs */
    bool postmaster;       /* a postmaster runs: the fence has a target */
    bool primary_running;  /* observed running and out of recovery */
    bool recorded_primary; /* the replicated state names this member as primary */
    bool fencing;          /* a fence began and its postmaster is still there */
    bool target_gone;      /* ... no longer: that postmaster has exited */
    bool escalated;        /* the fence sent SIGQUIT already */
    rpg_msec fence_started;
    struct fence_vip vip;
};

enum fence_pg_act {
    FENCE_PG_NONE = 0,
    FENCE_PG_FREEZE,   /* soft layer: SIGSTOP to the postmaster and its children */
    FENCE_PG_THAW,     /* the lease is back (or the server gone): SIGCONT to them */
    FENCE_PG_STOP,     /* begin: SIGINT (no new sessions, every session ends); SIGCONT if frozen */
    FENCE_PG_KILL,     /* begin during an operation (a start, a promotion): SIGQUIT at once */
    FENCE_PG_ESCALATE, /* the fast stop took escalate_ms: SIGQUIT */
    FENCE_PG_DONE,     /* the fenced postmaster is gone */
};

enum fence_vip_act {
    FENCE_VIP_NONE = 0,
    FENCE_VIP_RELEASE,         /* not wanted: release (cutting a claim short) */
    FENCE_VIP_STARTUP_RELEASE, /* the first tick: remove a VIP a crash left */
    FENCE_VIP_CLAIM,
    FENCE_VIP_RETRY, /* a refusal is old enough: forget it, claim next tick */
    FENCE_VIP_RENEW,
    FENCE_VIP_PROBE, /* recorded as primary, not yet promoted: probe ahead of the claim */
};

#define FENCE_VIP_RETRY_MS 2000

struct fence_out {
    enum fence_pg_act pg;
    enum fence_vip_act vip;
    bool feed_watchdog; /* may accept writes under the lease: arm and feed */
    bool unfenced;      /* a server that may accept writes, or the VIP on the interface or an
                           operation on it: the watchdog stays armed, the guard is told so */
    bool want_vip;
};

void fence_plan(const struct fence_timing *t, const struct fence_in *in, struct fence_out *out);

#endif
