/* The deterministic simulation tier (tests/sim): three or five agents, each running the agent's
 * real core (struct core, ha_decide, struct fsm on libraft's raft_fixture) over a simulated clock,
 * network and PostgreSQL, driven through a seeded fault schedule and checked after every step
 * against the rules of DESIGN.md §4. What is simulated and what is shared is described in
 * tests/sim/README.md. */
#ifndef RAFTPG_SIM_H
#define RAFTPG_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <raft.h>
#include <raft/fixture.h>

#include "raftpg/cons.h"
#include "raftpg/core.h"
#include "raftpg/failover.h"
#include "raftpg/fence.h"
#include "raftpg/fence_step.h"
#include "raftpg/fsm.h"
#include "raftpg/ha.h"
#include "raftpg/lead.h"
#include "raftpg/peer_book.h"
#include "raftpg/quorum.h"
#include "raftpg/restart.h"
#include "raftpg/schedule.h"
#include "raftpg/switchover_step.h"
#include "raftpg/sync.h"
#include "raftpg/timing.h"

/* raft_fixture holds RAFT_FIXTURE_MAX_SERVERS servers; server 0 is the clock (below). */
#define SIM_NODES_MAX (RAFT_FIXTURE_MAX_SERVERS - 1)
#define SIM_FAULTS_MAX 32
#define SIM_OPS_MAX 4
#define SIM_VIOLATIONS_MAX 8

/* The agent's defaults and periods: the election and heartbeat timeouts mirror conf.c's defaults;
 * the loop cadences are the agent's own (raftpg/timing.h, raftpg/pg.h). */
#define SIM_ELECTION_TIMEOUT_MS 500
#define SIM_VM_RESUME_WINDOW_MS (2 * SIM_ELECTION_TIMEOUT_MS)
#define SIM_HEARTBEAT_MS 100
#define SIM_HA_TICK_MS TIMING_HA_TICK_MS
#define SIM_OBSERVE_MS TIMING_PG_OBSERVE_INTERVAL_MS
#define SIM_POLL_MS TIMING_PEER_POLL_INTERVAL_MS
#define SIM_POLL_TIMEOUT_MS TIMING_PEER_POLL_TIMEOUT_MS
#define SIM_RECONCILE_MS TIMING_RECONCILE_INTERVAL_MS
/* One-way latency of every message on a healthy link. */
#define SIM_BASE_LATENCY_MS 5
/* Period of the checks that are not made after every event (I4, decommissioning). */
#define SIM_CHECK_MS 100

/* Resolution of virtual time: raft_fixture advances only from one of its own events to the next,
 * so an idle server that ticks this often (the clock) bounds how late a simulated event runs. */
#define SIM_CLOCK_TICK_MS 20

/* Every node's wall clock (CLOCK_REALTIME, kept in step by NTP): this epoch plus the world's
 * time, whatever its monotonic clock does. Scheduled switchovers are times on it. */
#define SIM_WALL_EPOCH_MS 1796601600000LL /* 2026-12-07T00:00:00Z */
/* postgresql.callback_timeout here (the agent's default is 30 s): the on_switchover callback
 * (--hook) is killed after it. */
#define SIM_CALLBACK_TIMEOUT_MS 5000

/* Copies the string src into dst (size bytes, truncated, zero-padded). src may lie in the same
 * object as dst, which snprintf must not be given. */
static inline void sim_copy(char *dst, size_t size, const char *src)
{
    size_t n = size > 0 ? strnlen(src, size - 1) : 0;
    memmove(dst, src, n);
    memset(dst + n, 0, size - n);
}

/* ---- deterministic randomness -------------------------------------------------------------- */

struct sim_rng {
    uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
unsigned sim_rng_below(struct sim_rng *r, unsigned n);
/* Uniform in [lo, hi]. */
unsigned sim_rng_range(struct sim_rng *r, unsigned lo, unsigned hi);
bool sim_rng_chance(struct sim_rng *r, unsigned per_mille);

/* ---- the event queue ------------------------------------------------------------------------- */

enum sim_ev_type {
    EV_AGENT_START = 1, /* an agent process starts (boot, restart after a crash) */
    EV_TICK,            /* the agent's HA timer (sub: timer generation) */
    EV_OBSERVE,         /* the agent's PostgreSQL observer */
    EV_POLL,            /* the agent's peer poll timer */
    EV_POLL_STEP,       /* a poll round ends: its slowest request answered or timed out */
    EV_RECONCILE,       /* the agent's membership reconciliation timer */
    EV_OP_STEP,         /* a step of a PostgreSQL control operation ends (gen: op id) */
    EV_PG_UP,           /* the postmaster accepts connections (gen: process incarnation) */
    EV_PG_PROMOTED,     /* the promotion requested earlier takes effect */
    EV_PG_CHECKPOINT,   /* the lazy checkpoint after a promotion ends */
    EV_CRASH_ARMED,     /* a crash triggered by an action fires */
    EV_FENCE,           /* the agent's fence timer (TIMING_FENCE_TICK_MS) */
    EV_LEASE,           /* the agent's lease renewal timer (cons.c, every ET / 4) */
    EV_RAFT_START,      /* the agent starts Raft, one election timeout after it started */
    EV_PG_SHUTDOWN,     /* a fast shutdown ends (gen: process incarnation) */
    EV_VIP_DONE,        /* ip addr add/del and arping finished (sub: 1 claim, 0 release) */
    EV_WATCHDOG,        /* the watchdog's deadline (gen: arm generation) */
    EV_VIP_EXPIRE,      /* the kernel drops a VIP nobody renewed (gen: lifetime generation) */
    EV_GUARD,           /* the guard of a dead agent fences (sub: 0 begin, 1 escalate) */
    EV_NODE_BACK,       /* a node reset by its watchdog is up again */
    EV_REMOVE_TICK, /* api_action.c: a removal waits for the member to leave the synchronous set */
    EV_REPL,        /* WAL streaming and synchronous acknowledgements, every node */
    EV_CLIENT,      /* the client writes to every node that accepts writes */
    EV_CHECK,       /* periodic checks (I4, end of warm-up) */
    EV_FAULT,       /* a fault of the schedule begins (node: fault index) */
    EV_FAULT_END,   /* a fault with a duration ends */
    EV_OPERATOR,    /* a step of an operator's failover drill (node: fault index, sub: step) */
    EV_FLAP,        /* a lossy link changes state */
    EV_HEAL,        /* every fault ends */
    EV_HOOK_DONE,   /* the on_switchover callback ends (gen: agent, sub: run << 2 | outcome) */
    EV_END,
};

struct sim_event {
    rpg_msec at;
    uint64_t seq; /* ties at the same time run in scheduling order */
    enum sim_ev_type type;
    int node;
    uint64_t gen; /* generation the event belongs to (agent, process, op), checked on delivery */
    uint64_t sub;
};

struct sim_queue {
    struct sim_event *v;
    size_t n, cap;
    uint64_t seq;
};

/* ---- simulated PostgreSQL -------------------------------------------------------------------- */

/* WAL content from lsn begin on, up to the next segment: the records one primary process wrote
 * (uid) on timeline tl. A new uid starts whenever a process starts writing, even on the same
 * timeline, so content that PostgreSQL cannot tell apart (it compares timeline ids and switch
 * points only) is still told apart by the checks. */
struct sim_seg {
    uint32_t tl;
    uint32_t uid;
    uint64_t begin;
};

enum sim_proc { SIM_PROC_DOWN = 0, SIM_PROC_STARTING, SIM_PROC_RUNNING, SIM_PROC_STOPPING };

struct sim_pg {
    /* The data directory. */
    bool data;   /* PG_VERSION present */
    bool broken; /* a copy interrupted midway: no usable control file, cannot start */
    uint64_t system_id;
    struct sim_seg *segs;
    unsigned n_segs, cap_segs;
    uint64_t end;        /* WAL end: one record (one client commit) per lsn below it */
    bool sigstopped;     /* the fence's soft layer stopped its processes (SIGSTOP) */
    bool stale_receiver; /* its WAL receiver stays with streaming_from, not conf_upstream */
    uint32_t ckpt_tl;    /* timeline of the last checkpoint (pg_control) */
    uint32_t hist_tl;    /* highest timeline with a history file in pg_wal: a promotion picks
                          * the next id above it and the segments' */
    bool was_primary;    /* pg_control says in production or shut down (not in recovery) */
    bool stop_in_start;  /* a shutdown began while it was still starting */
    bool standby_signal;
    char conf_upstream[FSM_NAME_MAX];     /* raftpg.conf: the member primary_conninfo points at */
    uint64_t slot_id;                     /* primary_slot_name raftpg_<id>, 0: none */
    char conf_sync_names[SYNC_VALUE_MAX]; /* raftpg.conf: synchronous_standby_names */
    char conf_sync_commit[16];            /* raftpg.conf: synchronous_commit ("" not set) */
    unsigned n_slots;
    uint64_t slots[FSM_MEMBERS_MAX]; /* replication slots on this server */
    /* The server process. */
    enum sim_proc proc;
    uint64_t inc; /* process incarnation: bumped by every start, stop and crash */
    bool in_recovery;
    bool promote_pending;
    uint32_t reserved_tl; /* pg.c reserve_timelines: the highest id reserved, 0: none */
    bool streaming;
    int streaming_from; /* node index, -1 */
    uint64_t mark;      /* end at the previous replication round: what a standby may have */
    uint64_t acked;     /* primary: records below it are acknowledged or not this process's */
    char sync_names[SYNC_VALUE_MAX]; /* in force: loaded at start and at every reload */
    char sync_commit[16];
    bool shut_down;          /* pg_control "shut down": a primary's last stop was clean */
    uint64_t ckpt_lsn;       /* pg_control's latest checkpoint: a clean stop's shutdown
                              * checkpoint is the last record, end - 1 */
    uint64_t diverged_inc;   /* incarnation for which a divergence was reported */
    rpg_msec no_start_until; /* pg-stop: a start exits at once until then (a broken setting) */
};

/* ---- the agent ------------------------------------------------------------------------------- */

enum sim_op_kind {
    SOP_NONE = 0,
    SOP_BOOTSTRAP,
    SOP_START,
    SOP_STOP,
    SOP_PROMOTE,
    SOP_CHECKPOINT,
    SOP_CLONE,
    SOP_REWIND,
    SOP_FOLLOW,
    SOP_SLOTS,
    SOP_SET_SYNC,
};
enum sim_step {
    ST_INITDB = 0,
    ST_START,
    ST_ROLES,
    ST_STOP,
    ST_PROMOTE,
    ST_CHECKPOINT,
    ST_REMOVE,
    ST_BASEBACKUP,
    ST_REWIND,
    ST_FOLLOW,
    ST_SLOTS,
    ST_SET_SYNC,
};

/* A control operation as pg.c runs it: a sequence of programs or statements. Programs are
 * detached (proc.c), so one that is running when the agent dies still finishes; what the agent
 * would have done next does not happen. */
struct sim_op {
    uint64_t id;    /* 0: free slot */
    uint64_t owner; /* agent generation that started it */
    enum sim_op_kind kind;
    enum sim_step step;
    bool standby;
    bool remove_first;
    char target[FSM_NAME_MAX];
    uint64_t slot_id;
    uint32_t timeline; /* promote: the id it must create, 0: any */
    unsigned n_ids;
    uint64_t ids[FSM_MEMBERS_MAX];
    uint64_t pg_inc; /* process incarnation the step acts on */
    bool restart;    /* restart.c's stop: its end goes to the restart, not to the core */
    bool switchover; /* switchover.c's stop: its end goes to the switchover */
    bool no_start;   /* the start's server exited at once (sim_pg no_start_until) */
};

struct sim_agent {
    struct sim_world *w; /* the io data pointer is the agent: these find the rest */
    unsigned idx;
    bool alive;
    uint64_t gen; /* bumped at every start and crash: stale events are dropped */
    struct core core;
    struct core_io io;
    /* The observer, as src/pg.c keeps it. */
    struct ha_pg obs;
    bool obs_valid;
    uint64_t epoch, obs_epoch;
    rpg_msec not_streaming_since;
    rpg_msec receiver_since;
    uint64_t op_id; /* the control operation in flight, 0: none */
    /* Synchronous replication, as pg.c keeps it: what this agent writes into raftpg.conf on every
     * start, follow and set_sync, what the server was last seen running with, its standbys. */
    char sync_names[SYNC_VALUE_MAX];
    char sync_commit[16];
    char sync_seen[SYNC_VALUE_MAX];
    unsigned n_replicas;
    struct quorum_replica replicas[FSM_MEMBERS_MAX];
    char removing[FSM_NAME_MAX]; /* api_action.c: a member leaving the synchronous set before
                                    removal */
    unsigned remove_ticks;
    uint64_t tick_gen;
    uint64_t poll_gen;
    /* The fence's memory (src/fence_step.c, as the agent keeps it) and what the simulated
     * executor keeps beside it, as agent.c keeps pids. The lease is raft/cons.c's (node->cons). */
    struct fence_memory fm;
    struct lead_memory lead;   /* agent.c's gate to acting as leader (src/lead.c) */
    uint64_t fence_inc;        /* the process the fence signalled */
    uint64_t frozen_inc;       /* the process the soft layer stopped */
    struct ha_down_clock down; /* primary_start_timeout's clock, as agent.c keeps it */
    bool vip_busy;
    unsigned vip_seq;       /* of the last claim or release started */
    unsigned vip_cancelled; /* a claim cut short by a release: its end changes nothing */
    bool wd_mine;           /* this agent process armed the device (only it can disarm it) */
    bool promote_pending;   /* pg.c: promotion asked for, not yet observed done */
    /* What the trace last said of Raft (--verbose). */
    int traced_role;
    bool traced_ready;
    bool maintenance;                 /* agent.c a->maintenance: the pause it last logged */
    bool in_action_done;              /* core_action_done runs: a step it starts continues a plan */
    char pause_primary[FSM_NAME_MAX]; /* agent.c: the recorded primary when the pause began */
    struct failover_permit permit;    /* agent.c a->failover_permit (failover.h) */
    unsigned recv_mark;               /* AppendEntries received when the agent started Raft */
    /* The peer polls' bookkeeping, the agent's own (src/peer_book.c). */
    struct peer_book book;
    /* restart.c's request under way (POST /restart), as struct restart keeps it. */
    enum restart_phase restart_phase;
    rpg_msec restart_started; /* its own clock */
    uint64_t restart_epoch;   /* the epoch after the stop: a later observation counts */
    int restart_status;       /* the answer, once given (0: none yet) */
    /* pg.c's cached pg_controldata of the stopped directory (checkpoint_lsn, clean_shutdown). */
    bool ctl_valid;
    bool ctl_clean;
    uint64_t ctl_lsn;
    /* switchover.c's switchover under way (struct switchover): the shared steps' memory, the
     * fault that asked for it (-1: none), paused_stop (switchover_paused_allows). */
    struct switchover_mem so;
    int so_fault;
    bool so_paused_stop;
    /* callback.c's wait for on_switchover (--hook): a run whose end is still to come (its
     * waiter set: another cannot start), the last run's number, and switchover.c hook_ran. */
    bool hook_wait;
    uint64_t hook_run;
    bool so_hook_ran;
    /* What the switchover's outcome must be in a healthy cluster with no other fault (check W):
     * SWITCHOVER_REASON_NONE done, else given up for that reason; the primary's incarnation
     * when it began (a given-up hook leaves the server untouched). */
    enum switchover_reason so_expect;
    uint64_t so_pg_inc;
    /* schedule.c's leader side (struct schedule), and why it clears the entry. */
    struct schedule sched;
    char sched_why[RPG_ERRMSG_SIZE];
    int sched_fault; /* the operator fault that recorded the schedule being started (-1: none) */
};

/* A crash armed by a crash-in-action fault: it fires when the agent starts the action. */
struct sim_trigger {
    bool armed;
    enum ha_action action;
    unsigned what; /* 0: PostgreSQL, 1: the node, 2: the agent */
    unsigned delay_ms;
    rpg_msec until;
    int fault;
    bool unguarded; /* fire even where the CI constraints would skip it */
};

struct sim_node {
    char name[FSM_NAME_MAX];
    unsigned fx; /* raft_fixture index; the raft id and member id are fx + 1 */
    bool exists;
    bool member;      /* has been in the replicated member list */
    bool removed;     /* decommissioned after a membership change */
    struct cons cons; /* raft/cons.c on this node's fixture server: its fsm and state live as
                       * long as the server, the logic is attached per agent run */
    struct sim_pg pg;
    struct sim_agent agent;
    bool up;             /* the machine runs (a node crash takes it down) */
    bool frozen;         /* paused: nothing on the node runs */
    bool agent_frozen;   /* the agent alone is stopped: its server and the guard run */
    bool vm_paused;      /* frozen by its hypervisor: its kernel's timers stop too */
    int storage_fault;   /* its Raft directory fails: RAFT_NOSPACE (full), RAFT_IOERR (read-only) */
    bool storage_exited; /* its agent left the Raft group over it (cons.failed): back at the end */
    rpg_msec probe_at;   /* cons_uv.c's storage probe: when it last ran */
    bool raft_restarting; /* cons_uv.c restart_raft: the server closes once its requests end */
    bool raft_reload;     /* its agent died: the server starts again from its directory alone */
    rpg_msec frozen_until;
    rpg_msec frozen_at;      /* when its pause began */
    rpg_msec vm_resumed_at;  /* when its hypervisor last resumed it (0: never paused so) */
    uint64_t vm_resume_inc;  /* its server's incarnation then */
    bool vm_resume_writable; /* its server accepted writes then */
    bool vm_resume_pending; /* a start as primary or a promotion of its server was under way then */
    bool vm_resume_started; /* that completed within the window, and is yet to be checked (I2) */
    bool vm_resume_vip;     /* it held the VIP then, and has held it since */
    bool vm_resume_claim;   /* a claim of the VIP was under way then */
    bool raft_killed;
    int64_t clock_offset; /* the node's monotonic clock: global time + offset, drift applied */
    int32_t drift_ppm;
    unsigned latency;      /* ms, for everything the node sends */
    bool vip_held;         /* the write VIP is on this machine's interface */
    uint64_t vip_gen;      /* bumped by every add or renewal: an older expiry event is void */
    bool guard_unfenced;   /* the last word the agent gave its guard (guard.h) */
    uint64_t guard_pg_inc; /* the server incarnation the guard is fencing */
    bool wd_armed; /* the watchdog device is open and armed (the kernel's, not the agent's) */
    uint64_t wd_gen;
    rpg_msec wd_deadline; /* global time the node resets unless fed */
    rpg_msec reset_until; /* a reset node is down until then */
    /* Check M: the primary its state recorded when it applied the pause (its standbys may follow
     * a primary recorded since), and its own clock when an operator's failover to it was granted
     * (its takeover may go on while the permit runs; 0: none). */
    bool pause_seen;
    char pause_seen_primary[FSM_NAME_MAX];
    rpg_msec permit_granted_local;
    struct sim_op ops[SIM_OPS_MAX];
    struct sim_trigger trigger;
};

/* ---- faults and schedules -------------------------------------------------------------------- */

enum sim_fault_kind {
    F_PG_CRASH = 0,        /* kill -9 of PostgreSQL; the agent restarts it */
    F_NODE_CRASH,          /* agent and PostgreSQL die together; the node restarts after dur */
    F_AGENT_CRASH,         /* the agent of a node whose PostgreSQL is not primary dies */
    F_PAUSE,               /* a node that is not the primary's freezes (SIGSTOP of everything) */
    F_PARTITION,           /* cut links; the primary and the leader keep a majority */
    F_LOSS,                /* links drop and recover at random; same constraint */
    F_DELAY,               /* a node's messages take 20-60 ms */
    F_CLOCK,               /* a node's monotonic clock jumps forward, its rate drifts */
    F_SWITCHOVER,          /* the leader of a healthy cluster hands leadership to a standby */
    F_CRASH_IN_ACTION,     /* PostgreSQL, node or agent crash when the agent starts an action */
    F_MEMBER,              /* a new member is added, then a standby member removed */
    F_SWITCHOVER_ANY,      /* raft_transfer at any moment, even while a promotion is under way */
    F_AGENT_CRASH_PRIMARY, /* the agent of the primary's node dies, PostgreSQL runs on */
    F_PAUSE_PRIMARY,       /* the primary's node freezes */
    F_PARTITION_PRIMARY,   /* the primary's node (or the leader) is cut off from the majority */
    F_LOSS_PRIMARY,        /* the primary's links become lossy */
    F_CRASH_NEW_PRIMARY,   /* the next promoted node crashes before any other knows its timeline */
    F_SLOW_LINK,           /* a node's messages take 100-150 ms */
    F_AGENT_STOP_PRIMARY,  /* the primary's agent is stopped (SIGSTOP): its PostgreSQL runs on and
                            * its guard, whose pipe stays open, does nothing */
    F_VM_PAUSE_PRIMARY,    /* the primary's node paused by its hypervisor: its clocks stop too, so
                            * once resumed it cannot tell that time passed */
    F_RECEIVER_LAG,        /* while it lasts, a re-pointed standby's WAL receiver stays with its
                            * old upstream (paused replay, a recovery conflict) until its server
                            * restarts: the configuration says one thing, the receiver another */
    F_RAFT_DISK_FULL,      /* a node's Raft directory is full: libraft's writes fail (RAFT_NOSPACE),
                            * the agent's probe finds no space */
    F_RAFT_READ_ONLY,      /* a node's Raft directory is read-only: writes fail (RAFT_IOERR), the
                            * probe gets EROFS */
    F_VM_PAUSE,            /* a node that is not the primary's paused by its hypervisor, clocks
                            * and all (as F_PAUSE, but its clocks do not count the pause) */
    F_MAINTENANCE, /* an operator's `ctl pause` for dur, then `ctl resume` (retried until the
                    * cluster has it): no failover, start, stop or promotion meanwhile */
    F_FAILOVER,    /* an operator's `ctl failover --candidate N` (POST /failover through the
                    * leader), at once, after a kill of the primary's PostgreSQL, or in a pause
                    * (for dur) after that kill */
    F_RESTART,     /* an operator's `ctl restart MEMBER` (POST /restart to that member): a fast
                    * stop, after which its agent starts the server again in its role */
    F_PG_STOP,     /* PostgreSQL stopped from outside (pg_ctl stop -m fast, or a kill -9) while
                    * its agent runs on: the agent notices and starts it again */
    F_PG_NO_START, /* as F_PG_STOP's fast shutdown, and every start fails for dur (a broken
                    * setting): the primary's agent hands over after HA_START_FAILURES_MAX */
    F_SWITCHOVER_SCHEDULED, /* an operator's `ctl switchover --scheduled` (POST /switchover
                             * {"scheduled_at"} through the leader) 1..5 s ahead: whichever
                             * member leads then runs it (schedule.h). Drawn from a stream of
                             * its own and appended to the schedule (sim_schedule_generate) */
    F_KIND_N,
};
const char *sim_fault_name(enum sim_fault_kind k);
/* Parses "ci", "watchdog", "timeline", "slow", "known", "all" or a comma-separated list of kinds
 * into a mask; 0 on error. */
uint32_t sim_fault_mask(const char *list);
/* Kinds that break a rule with the agent as it is, each group for one reason (README.md):
 * without a watchdog nothing stops the PostgreSQL of a primary whose agent is gone or frozen,
 * and with one the new side does not wait for it (I1); a new primary can reuse the timeline id of
 * a primary that wrote and was then cut off (D); the lease is not renewed when a barrier takes
 * longer than its renewal period (I4). */
#define SIM_FAULTS_WATCHDOG ((1u << F_PAUSE_PRIMARY) | (1u << F_AGENT_STOP_PRIMARY))
#define SIM_FAULTS_TIMELINE (1u << F_LOSS_PRIMARY)
#define SIM_FAULTS_SLOW (1u << F_SLOW_LINK)
#define SIM_FAULTS_VM ((1u << F_VM_PAUSE_PRIMARY) | (1u << F_VM_PAUSE))
#define SIM_FAULTS_STORAGE ((1u << F_RAFT_DISK_FULL) | (1u << F_RAFT_READ_ONLY))
#define SIM_FAULTS_OPERATOR                                                                        \
    ((1u << F_MAINTENANCE) | (1u << F_FAILOVER) | (1u << F_RESTART) |                              \
     (1u << F_SWITCHOVER_SCHEDULED))
/* PostgreSQL stopped beside a live agent; kept out of "ci" so that sim_ci's seeds keep their
 * schedules (sim_ci_operator runs pg-stop). Two servers in a row that cannot start take longer
 * than I4's budget now and then: each costs HA_START_FAILURES_MAX failed starts (README.md). */
#define SIM_FAULTS_PG_STOP ((1u << F_PG_STOP) | (1u << F_PG_NO_START))
#define SIM_FAULTS_CRASH ((1u << F_PG_CRASH) | (1u << F_PG_STOP))
#define SIM_FAULTS_KNOWN                                                                           \
    (SIM_FAULTS_WATCHDOG | SIM_FAULTS_TIMELINE | SIM_FAULTS_SLOW | SIM_FAULTS_VM |                 \
     SIM_FAULTS_STORAGE | SIM_FAULTS_OPERATOR | SIM_FAULTS_PG_STOP)
#define SIM_FAULTS_ALL ((1u << F_KIND_N) - 1)
#define SIM_FAULTS_CI (SIM_FAULTS_ALL & ~SIM_FAULTS_KNOWN)

struct sim_fault {
    enum sim_fault_kind kind;
    rpg_msec at; /* offset from the start of the fault window */
    rpg_msec dur;
    uint64_t r; /* the fault's own randomness: targets and shapes are drawn at run time */
};

/* What an applied fault changed, to undo it. */
struct sim_fault_state {
    bool active;
    int node;
    unsigned crashed; /* nodes a triggered crash took down, restarted when the fault ends */
    bool links[SIM_NODES_MAX][SIM_NODES_MAX]; /* directed links it cuts or makes lossy */
    bool dropping;                            /* loss: the links drop right now */
    unsigned drill;                           /* failover: which drill (sim_faults.c) */
    bool pause_held;                          /* failover: it wants the pause on */
    /* restart, pg-stop of a healthy primary with no other fault in force (check N): what the
     * cluster was when it began, and how many faults had begun then. */
    bool watch;
    bool watch_back; /* its server accepts writes again (and a restart answered) */
    rpg_msec watch_from;
    int watch_leader;
    uint64_t watch_term;
    unsigned watch_failovers;
    unsigned watch_begun;
    /* switchover, switchover-any, failover to a healthy primary (check W): begun in a healthy
     * cluster with no other fault in force, asked of so_leader at so_from. */
    bool so_watch;
    unsigned so_begun;
    rpg_msec so_from;
    int so_leader;
    int64_t so_at_ms;   /* switchover-scheduled: the time it asked for (0: none recorded) */
    struct sim_rng rng; /* draws made while the fault runs */
};

struct sim_schedule {
    unsigned n;
    struct sim_fault f[SIM_FAULTS_MAX];
    bool keep[SIM_FAULTS_MAX]; /* faults removed by shrinking are not applied */
};

/* ---- raft_fixture's log ordering --------------------------------------------------------- */

/* raft_fixture 0.15 applies a truncation at once, to the entries its earlier appends have
 * already stored: when raft truncates entries that are still being appended, the fixture reads
 * past the end of its array (AddressSanitizer: ioMethodTruncate). A real raft_io orders the
 * truncation after the earlier appends; this shim around each fixture server's raft_io does the
 * same. */
struct sim_shim_append {
    struct raft_io_append *req;
    raft_io_append_cb cb;
    int status; /* the write failed (the node's storage fault when it was submitted) */
    unsigned n; /* entries */
};
struct sim_shim_truncate {
    raft_index index;
    unsigned ahead; /* earlier appends still to complete */
};
/* The fixture's io is also the node's Raft directory: an append that failed leaves nothing in
 * it (as raft_uv rolls its next index back), and the appends queued behind a failed one fail too
 * (raft_uv fails every pending append when it cannot prepare a segment). Sends are counted so a
 * restart of the server (cons.h, wal) waits until libraft has no request left in the fixture. */
struct sim_shim_send {
    struct raft_io_send *req;
    raft_io_send_cb cb;
};
struct sim_shim {
    struct raft_io *io;
    int (*append)(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
                  unsigned n, raft_io_append_cb cb);
    int (*truncate)(struct raft_io *io, raft_index index);
    int (*send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                raft_io_send_cb cb);
    int (*bootstrap)(struct raft_io *io, const struct raft_configuration *conf);
    int (*set_term)(struct raft_io *io, raft_term term);
    int (*set_vote)(struct raft_io *io, raft_id server_id);
    int (*snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
    struct sim_shim_append *pending;
    unsigned n_pending, cap_pending;
    struct sim_shim_send *sends;
    unsigned n_sends, cap_sends;
    struct sim_shim_truncate deferred[16];
    unsigned n_deferred;
    raft_index stored; /* entries the fixture holds: its "directory" */
    int fail;          /* appends submitted now fail with this status (a storage fault) */
};

/* ---- options, results ------------------------------------------------------------------------ */

struct sim_options {
    unsigned nodes;
    enum sync_mode sync_mode; /* synchronous_mode: the agent's default is quorum */
    unsigned sync_k;          /* synchronous_node_count */
    uint32_t faults;          /* mask of enum sim_fault_kind */
    unsigned max_faults;
    rpg_msec window; /* faults start within this long after warm-up */
    rpg_msec quiet;  /* after every fault healed, how long the cluster runs */
    rpg_msec budget; /* I4: a primary within this long after a majority is healthy */
    bool no_lease;   /* run the core without the agent's lease, fence and start delay */
    bool no_echo;    /* renew the lease with barriers alone (the agent without a secret) */
    bool watchdog;   /* watchdog.mode automatic with a device (the agent's default is off) */
    bool hook;       /* postgresql.callbacks.on_switchover set on every member */
    rpg_msec primary_start_timeout; /* primary_start_timeout (the agent's default: 300 s) */
    bool verbose;
};

enum sim_check {
    CHK_I1 = 0,  /* one writer */
    CHK_I2,      /* no acknowledged commit lost (synchronous mode only) */
    CHK_I3,      /* one VIP holder */
    CHK_I4,      /* a primary within the budget once a majority is healthy */
    CHK_REJOIN,  /* rule 9: every member is a streaming standby of the primary at the end */
    CHK_DIVERGE, /* rule 9: no standby streams WAL that diverged from its upstream's */
    CHK_STATE,   /* issue 18: every member's state checksum is the same at the same applied index */
    CHK_PAUSE,   /* maintenance mode: an agent that applied the pause starts no new action */
    CHK_KEEP,    /* a stop or restart of a healthy primary's server alone causes no failover */
    CHK_SWITCH,  /* a switchover of a healthy cluster with no other fault ends as asked */
    CHK_SCHED,   /* a scheduled switchover runs at most once and is not left recorded */
    CHK_N,
};
const char *sim_check_name(enum sim_check c);

struct sim_violation {
    enum sim_check check;
    rpg_msec at;
    char what[320];
};

struct sim_result {
    unsigned counts[CHK_N];
    unsigned n_violations;
    struct sim_violation v[SIM_VIOLATIONS_MAX];
    rpg_msec virtual_ms;
    unsigned faults_applied, faults_skipped;
    unsigned failovers; /* promotions after the warm-up */
    rpg_msec max_gap;   /* longest time without a primary while a majority was healthy */
    unsigned n_gaps;
    rpg_msec gaps[64];           /* each such time, when it ended (failover times) */
    uint64_t acked;              /* commits acknowledged to the client */
    uint64_t lost_unchecked;     /* acknowledged commits missing at the end with synchronous mode
                                  * off (not covered by I2) */
    uint64_t acked_async;        /* commits acknowledged asynchronously */
    rpg_msec waived_ms;          /* time a healthy majority had no primary because none of its
                                  * members could prove it held every acknowledged commit (rule 6) */
    rpg_msec waived4_ms;         /* ... or that the previous primary, which none of them can see,
                                  * gets no acknowledgement from a voter none of them can see
                                  * either (rule 4) */
    unsigned raft_restarts;      /* Raft restarted from a node's directory (the write fence) */
    unsigned held_changes;       /* leader writes of a configuration entry the fence held */
    unsigned resume_overlaps;    /* I1 or I3 broken only by a guest resumed from a clock-stopped
                                  * pause, within SIM_VM_RESUME_WINDOW_MS (not guaranteed) */
    rpg_msec resume_overlap_max; /* the latest such instant after its resume */
    unsigned resume_starts;      /* a start or promotion under way at such a pause that completed
                                  * within the window: a writer the guest resumed with */
    unsigned resume_claims;      /* the same of a VIP claim: a holder the guest resumed with */
    rpg_msec paused_ms;          /* time the committed state was paused (I4 owes no primary) */
    /* The operator's failovers (F_FAILOVER) and their answers. */
    unsigned fo_asked;
    unsigned fo_granted, fo_granted_paused; /* 202, and of those asked in maintenance mode */
    unsigned fo_took_over;                  /* the candidate became primary within the permit */
    unsigned fo_took_over_paused;           /* ... with the cluster still paused */
    unsigned fo_switchover;                 /* a healthy primary: a switchover (so_*) */
    unsigned fo_no_leader;                  /* 503: the member asked does not lead, or none */
    unsigned fo_transfer_refused;           /* 503: the hand-over was refused */
    unsigned fo_refused[FAILOVER_REASON_N]; /* 412, by reason */
    /* The operator's restarts (F_RESTART) and the primaries stopped alone (check N). */
    unsigned rs_asked, rs_done, rs_refused, rs_failed; /* 200 once running, refused, failed later */
    unsigned keep_checked; /* primaries stopped or restarted with no other fault: checked */
    /* Switchovers (F_SWITCHOVER, F_SWITCHOVER_ANY, F_FAILOVER to a healthy primary): refused by
     * status, and how the accepted ones ended (switchover_step.h). */
    unsigned so_asked, so_refused_409, so_refused_412, so_refused_503;
    unsigned so_done, so_moved, so_cut; /* 200, 503 leadership moved, cut short by a crash */
    unsigned so_abandoned[SWITCHOVER_REASON_N];
    unsigned so_checked; /* begun healthy with no other fault, and none began until the end */
    /* Scheduled switchovers (F_SWITCHOVER_SCHEDULED): asked, refused at once, recorded, run by
     * a leader (then as above), dropped by verdict (schedule.h). */
    unsigned sc_asked, sc_refused, sc_recorded, sc_run;
    /* ... and the operator's cancels of them: asked, committed, refused or too late. */
    unsigned sc_cancel_asked, sc_cancelled, sc_cancel_failed;
    unsigned sc_dropped[SCHEDULE_DROP_RESTARTED + 1];
    /* on_switchover runs (--hook) by outcome: ok, failed, killed at its time-out, hung past the
     * switchover's backstop; and on_switchover_abandoned fired. */
    unsigned hook_ok, hook_failed, hook_killed, hook_hung, hook_abandoned;
    char fault_log[SIM_FAULTS_MAX][96]; /* what each applied fault did, for the report */
};

/* ---- the world ------------------------------------------------------------------------------- */

struct sim_commit {
    uint64_t lsn;
    uint32_t uid;
};

enum sim_phase { SIM_WARMUP = 0, SIM_FAULTS, SIM_QUIET };

struct sim_world {
    struct raft_fixture fx; /* first: the fixture hook finds the world from it */
    const struct sim_options *opt;
    const struct sim_schedule *sched;
    uint64_t seed;
    struct sim_rng rng;
    struct sim_queue q;
    unsigned n; /* nodes created so far */
    unsigned n_initial;
    struct sim_node nodes[SIM_NODES_MAX];
    bool cut[SIM_NODES_MAX][SIM_NODES_MAX];   /* messages from i to j are dropped */
    bool lossy[SIM_NODES_MAX][SIM_NODES_MAX]; /* a lossy link: counted as cut by the checks */
    struct sim_fault_state fs[SIM_FAULTS_MAX];
    struct sim_shim shims[RAFT_FIXTURE_MAX_SERVERS];
    uint32_t next_uid;
    uint64_t next_op;
    unsigned faults_begun;            /* faults of the schedule begun so far (check N) */
    rpg_msec fault_at, prev_fault_at; /* when the last two faults began (check N) */
    enum sim_phase phase;
    rpg_msec t0, t_heal, t_end;
    bool done;
    bool closing;
    /* Acknowledged commits. */
    struct sim_commit *acked;
    size_t n_acked, cap_acked;
    /* Check state. */
    bool i1_open, i3_open, resume_overlap_open;
    rpg_msec gap_start;
    bool i4_reported;
    bool state_reported; /* CHK_STATE reported (once per run: it would repeat every check) */
    bool waived_open;    /* I4 is waived by rule 6 right now */
    bool waived4_open;   /* ... by rule 4 */
    char recorded[FSM_NAME_MAX];      /* the recorded primary at the last check ... */
    char prev_recorded[FSM_NAME_MAX]; /* ... and the one it replaced (rule 4's previous primary) */
    bool paused_open;                 /* the committed state is paused: no primary is owed (I4) */
    unsigned pause_wanted; /* maintenance faults in force: the operator wants the pause on */
    rpg_msec pause_try_at; /* the operator's last pause or resume request */
    int last_primary;
    int crash_new_primary; /* fault index of an armed crash-new-primary, -1 */
    rpg_msec crash_new_primary_until;
    int receiver_lag; /* F_RECEIVER_LAG faults in force */
    /* Lease echo probes held by their receivers (lease_echo.c over the network's links). */
    struct sim_echo {
        bool used;
        unsigned from, to;
        uint64_t gen; /* the sender's agent */
        uint64_t seq;
        uint64_t term;
        rpg_msec arrived; /* the receiver's Raft clock */
        rpg_msec expires; /* the sender's clock: its request times out */
    } echo[64];
    /* Schedules recorded (F_SWITCHOVER_SCHEDULED): their time, the fault, and how many times a
     * leader cleared one to run it (check X: at most once). */
    struct sim_sched_rec {
        int64_t at_ms;
        int fault;
        unsigned runs;
        int ran_on;
        bool cancelled; /* the operator's cancel (DELETE /switchover) committed */
    } scheds[SIM_FAULTS_MAX];
    unsigned n_scheds;
    /* The operator's cancels in flight: what their commit callbacks need. */
    struct sim_cancel {
        struct sim_world *w;
        int64_t at_ms;
    } cancels[SIM_FAULTS_MAX];
    unsigned n_cancels;
    rpg_msec so_ended_at; /* when a switchover last ended (sim_switchover_ended) */
    struct sim_result *res;
};

/* sim_world.c */
int sim_run(const struct sim_options *opt, uint64_t seed, const struct sim_schedule *sched,
            struct sim_result *res);
void sim_push(struct sim_world *w, rpg_msec at, enum sim_ev_type type, int node, uint64_t gen,
              uint64_t sub);
rpg_msec sim_now(const struct sim_world *w);
rpg_msec sim_local_now(const struct sim_world *w, unsigned i);
/* Node i's monotonic clock at global time t. */
rpg_msec sim_local_at(const struct sim_world *w, unsigned i, rpg_msec t);
void sim_trace(struct sim_world *w, int node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* snprintf for messages, where cutting a long one short is accepted. */
void sim_fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool sim_link(const struct sim_world *w, unsigned i, unsigned j); /* both directions work */
void sim_net_sync(struct sim_world *w);
void sim_raft_kill(struct sim_world *w, unsigned i);
void sim_raft_revive(struct sim_world *w, unsigned i);
int sim_node_by_name(const struct sim_world *w, const char *name);
unsigned sim_voters(const struct sim_world *w);
uint32_t sim_new_uid(struct sim_world *w);
int sim_node_create(struct sim_world *w, unsigned i);
int sim_node_start_raft(struct sim_world *w, unsigned i);

/* sim_pg.c */
void sim_pg_init(struct sim_pg *p);
void sim_pg_free(struct sim_pg *p);
uint32_t sim_pg_tl(const struct sim_pg *p);
uint32_t sim_pg_max_tl(const struct sim_pg *p);
uint32_t sim_pg_uid_at(const struct sim_pg *p, uint64_t lsn);
void sim_pg_push(struct sim_pg *p, uint32_t tl, uint32_t uid, uint64_t begin);
void sim_pg_copy_data(struct sim_pg *dst, const struct sim_pg *src);
void sim_pg_clear_data(struct sim_pg *p);
bool sim_pg_writable(const struct sim_pg *p);
/* A start as a primary or a promotion is under way: the server accepts writes once it completes. */
bool sim_pg_pending_primary(const struct sim_pg *p);
bool sim_resumed_start(struct sim_world *w, unsigned i);
/* Node i's claim of the VIP succeeds now; true when it was under way at a clock-stopped pause. */
bool sim_resumed_claim(struct sim_world *w, unsigned i);
/* Nothing of node n's PostgreSQL runs: the node is paused, or the fence stopped the server. */
bool sim_pg_halted(const struct sim_node *n);
bool sim_pg_prefix_of(const struct sim_pg *s, const struct sim_pg *p, uint64_t *diverge_at);
int sim_pg_stream_check(const struct sim_pg *s, const struct sim_pg *u, char *why, size_t size);
void sim_pg_stream(struct sim_pg *s, const struct sim_pg *u, uint64_t upto);
int sim_pg_rewind(struct sim_pg *target, const struct sim_pg *source, bool *changed, char *why,
                  size_t size);
uint32_t sim_pg_stopped_tl(const struct sim_pg *p);

/* sim_agent.c */
void sim_agent_start(struct sim_world *w, unsigned i);
void sim_agent_crash(struct sim_world *w, unsigned i);
/* The agent process alone died (its guard lives on): the guard fences if it was told so. */
void sim_guard_wake(struct sim_world *w, unsigned i);
/* What the agent tells its guard before it starts a server that may accept writes. */
void sim_guard_unfenced(struct sim_world *w, unsigned i);
void sim_agent_event(struct sim_world *w, const struct sim_event *e);
void sim_agent_schedule(struct sim_world *w, unsigned i, rpg_msec delay);
void sim_raft_monitor(struct sim_world *w, unsigned i);
/* EV_RAFT_START: Raft starts one election timeout after the agent (cons_uv.c). */
void sim_raft_started(struct sim_world *w, unsigned i);
/* cons_uv.c restart_raft / reopen_raft on the fixture: the agent's server restarts from the
 * fixture's log (its directory) once no request of it is left in the fixture. */
void sim_raft_restart(struct sim_world *w, unsigned i);
bool sim_raft_reopen_maybe(struct sim_world *w, unsigned i);
bool sim_raft_reload_maybe(struct sim_world *w, unsigned i);
bool sim_shim_idle(struct sim_world *w, unsigned fx);
/* EV_LEASE: the lease renewal, every ET/4 (cons_uv.c). */
void sim_lease_renew(struct sim_world *w, unsigned i);
void sim_lease_renew_now(struct sim_world *w, unsigned i); /* cons_lease_renew_now */
/* A storage fault of node i begins (status RAFT_NOSPACE or RAFT_IOERR) or ends (0). */
void sim_storage_fault(struct sim_world *w, unsigned i, int status);
void sim_op_step_done(struct sim_world *w, unsigned i, uint64_t op_id);
void sim_ops_kill(struct sim_world *w, unsigned i);
bool sim_agent_leader(const struct sim_world *w, unsigned i);
int sim_transfer(struct sim_world *w, unsigned i, uint64_t id, char *errmsg);
/* api_action.c POST /failover on node l, failover.c failover_start: the shared decision (plan),
 * then the permit and the hand-over. Returns the HTTP status: 503 when l is not the ready leader or
 * the hand-over is refused (errmsg), 412 refused (plan->why), 202 granted. When the healthy
 * primary makes it a switchover (plan->verdict FAILOVER_SWITCHOVER), 200 once it began (its
 * answer comes at its end, for fault), else its refusal's status with why in errmsg. */
int sim_failover_request(struct sim_world *w, unsigned l, const char *candidate, int fault,
                         struct failover_plan *plan, char *errmsg);
/* POST /switchover to node l (switchover.c switchover_start): switchover_prepare over what the
 * agent observes, then the shared steps (switchover_step) on the simulated server and Raft, with
 * the on_switchover callback when --hook. fault: the fault that asked. Returns 0 once it began
 * (its end comes to sim_switchover_ended), or the refusal's status with why. */
int sim_switchover_request(struct sim_world *w, unsigned l, const char *leader,
                           const char *candidate, int fault, char *why, size_t size);
/* api_action.c DELETE /switchover on node l: 0 submitted, or the status (404 none, 503) with
 * why. The commit's outcome goes to sim_schedule_cancelled. */
int sim_switchover_cancel(struct sim_world *w, unsigned l, char *why, size_t size);
/* The cancel of the schedule at at_ms ended: committed (rc 0) or not. */
void sim_schedule_cancelled(struct sim_world *w, int64_t at_ms, int rc, const char *msg);
/* POST /switchover {"scheduled_at"} to node l (api_action.c switchover_schedule): its checks,
 * then the SCHEDULE_SWITCHOVER entry. Returns 0 once submitted, or the status with why. */
int sim_switchover_schedule(struct sim_world *w, unsigned l, const char *leader,
                            const char *candidate, int64_t at_ms, char *why, size_t size);
/* The world's wall clock (SIM_WALL_EPOCH_MS). */
int64_t sim_wall_ms(const struct sim_world *w);
int sim_member_add(struct sim_world *w, unsigned leader, unsigned newcomer, char *errmsg);
int sim_member_remove(struct sim_world *w, unsigned leader, const char *name, char *errmsg);
/* api_action.c member_remove: a member in the synchronous set leaves it first. */
int sim_member_remove_request(struct sim_world *w, unsigned leader, const char *name, char *errmsg);
void sim_remove_tick(struct sim_world *w, unsigned leader);
/* POST /restart to node i (restart.c restart_start): the shared conditions (restart_check), then
 * a fast stop once no operation runs, after which the agent's own decisions start the server
 * again. 0 when accepted (the answer comes later: restart_status), else the status with why. */
int sim_restart_request(struct sim_world *w, unsigned i, const char *role, char *why, size_t size);

/* sim_pgctl.c: PostgreSQL-level events and faults. */
void sim_pg_event(struct sim_world *w, const struct sim_event *e);
void sim_pg_crash(struct sim_world *w, unsigned i);
void sim_pg_begin_start(struct sim_world *w, unsigned i, bool standby, rpg_msec dur);
/* Fast shutdown: sessions end and writes stop at once, the server is down after dur. */
void sim_pg_begin_shutdown(struct sim_world *w, unsigned i, rpg_msec dur);
void sim_repl_round(struct sim_world *w);
void sim_client_round(struct sim_world *w);
void sim_pg_became_primary(struct sim_world *w, unsigned i);

/* sim_fence.c: the lease's old side, the new side's wait and the VIP (agent.c, cons.c). */
void sim_fence_start(struct sim_world *w, unsigned i);
void sim_fence_tick(struct sim_world *w, unsigned i);
void sim_fence_event(struct sim_world *w, const struct sim_event *e);
bool sim_lead_gate(struct sim_world *w, unsigned i, bool *poll_now);

/* sim_faults.c */
void sim_schedule_generate(const struct sim_options *opt, uint64_t seed, struct sim_schedule *s);
void sim_fault_begin(struct sim_world *w, unsigned k);
void sim_fault_end(struct sim_world *w, unsigned k);
void sim_fault_flap(struct sim_world *w, unsigned k);
/* EV_OPERATOR: the next step of failover fault k. */
void sim_fault_step(struct sim_world *w, unsigned k, unsigned step);
void sim_heal_all(struct sim_world *w);
void sim_node_restart(struct sim_world *w, unsigned i);
/* The node goes down now (power loss, a watchdog reset) and comes back after down_ms. */
void sim_node_reset(struct sim_world *w, unsigned i, rpg_msec down_ms);
void sim_unfreeze(struct sim_world *w, unsigned i);
void sim_trigger_action(struct sim_world *w, unsigned i, enum ha_action a);
void sim_trigger_fire(struct sim_world *w, unsigned i);
void sim_new_primary(struct sim_world *w, unsigned i);
void sim_decommission(struct sim_world *w, const char *name);
/* A switchover that fault asked of node l ended: x is its DONE, MOVED or GIVE_UP. */
void sim_switchover_ended(struct sim_world *w, unsigned l, int fault,
                          const struct switchover_action *x);
/* Node l's leader side cleared the schedule at at_ms (schedule.c on_cleared): verdict v (RUN:
 * it starts the switchover now; a drop: why). Returns the fault that recorded it, -1 none. */
int sim_schedule_cleared(struct sim_world *w, unsigned l, int64_t at_ms, enum schedule_verdict v,
                         const char *why);
/* The scheduled switchover of fault could not start on node l: prepare refused it (status,
 * why). */
void sim_schedule_refused(struct sim_world *w, unsigned l, int fault, int status, const char *why);

/* sim_check.c */
void sim_violation(struct sim_world *w, enum sim_check c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_check_instant(struct sim_world *w);
void sim_check_ack(struct sim_world *w, unsigned i);
/* The operator: makes the cluster's pause what the maintenance faults want (EV_CHECK). */
void sim_operator_tick(struct sim_world *w);
int sim_set_pause(struct sim_world *w, unsigned leader, bool paused, char *errmsg);
void sim_check_periodic(struct sim_world *w);
void sim_check_commits(struct sim_world *w, unsigned i, const char *when);
void sim_check_end(struct sim_world *w);
bool sim_cluster_healthy(struct sim_world *w, int *primary);

#endif
