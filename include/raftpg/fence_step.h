/* One tick of the fence (DESIGN.md rules 2, 3, 5) as both executors run it: the agent
 * (src/agent.c, against the real server, VIP and watchdog) and the simulation
 * (tests/sim/sim_fence.c, against the simulated ones). fence_step judges the lease (loop gaps
 * included), builds fence_plan's input from what the executor observed this tick, remembers
 * what the fence began and carries fence_plan's actions out through the executor's hooks.
 * Everything between an observation and a signal is here, once: a bug in it shows in the
 * simulation too. The executor owns the world (signals, ip and arping, the watchdog device, the
 * log) and only observes and acts. */
#ifndef RAFTPG_FENCE_STEP_H
#define RAFTPG_FENCE_STEP_H

#include <stdbool.h>

#include "raftpg/err.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"

/* What the fence remembers between ticks. Read by the API and metrics; written only by
 * fence_step and fence_vip_done (and fence_step_reset). */
struct fence_memory {
    struct fence_clock clock; /* loop gaps seen by the tick */
    bool lease_ok;            /* may act as primary now */
    bool frozen;              /* the soft layer stopped the server's processes (SIGSTOP) */
    rpg_msec frozen_at;
    unsigned n_freezes;
    bool fencing; /* a fence began and its postmaster had not exited when last seen */
    rpg_msec fence_started;
    bool escalated; /* the fence sent SIGQUIT already */
    unsigned n_fences;
    bool vip_startup_done; /* the start-up release of a VIP a crash left ran */
    bool vip_claiming;     /* a claim is under way */
    bool vip_releasing;    /* a release is under way */
    bool vip_refused;      /* the last claim or release failed (another host answered, say) */
    rpg_msec vip_failed_at;
    rpg_msec vip_renewed_at; /* when the address last got a fresh lifetime (claim or renewal) */
};

/* What the executor observed for this tick. */
struct fence_world {
    rpg_msec now;         /* the agent's clock (CLOCK_BOOTTIME; the node's own in the simulation) */
    bool leader_ready;    /* Raft leader with a barrier of its term committed */
    rpg_msec lease_until; /* cons_lease_until */
    bool lease_pending;   /* a renewal is in flight ... */
    rpg_msec lease_submitted; /* ... since then (for the log line of a lost lease) */
    bool lease_disabled;      /* the simulation's --no-lease: leadership alone, nothing fenced */
    bool writable;            /* pg_may_accept_writes */
    bool pg_busy;             /* a control operation runs */
    bool postmaster;          /* a postmaster runs: the fence has a target */
    int pid;                  /* ... its pid, for the log */
    bool primary_running;     /* observed running and out of recovery */
    bool recorded_primary;    /* the replicated state names this member as primary */
    bool target_gone;         /* the postmaster the fence signalled has exited */
    const char *op_name;      /* the operation that runs, for the log */
    bool vip_open;            /* a vip section is configured */
    bool vip_held;            /* the address is on the interface */
    bool vip_busy;            /* an ip or arping operation runs */
    rpg_msec vip_renew_ms;    /* vip_renew_interval_ms */
    bool vip_probe_due;       /* vip_probe_due, and acting as leader (fence_vip.probe_due) */
};

/* The executor's hooks. data is passed back to each. */
struct fence_exec {
    void *data;
    void (*log)(void *data, enum log_level level, const char *msg);
    /* The lease after a loop gap: a barrier submitted from now (cons_lease_renew_now). */
    void (*lease_renew_now)(void *data);
    /* FENCE_PG_FREEZE: SIGSTOP to the postmaster and its children (the count signalled);
     * FENCE_PG_THAW: SIGCONT to the processes the freeze stopped; FENCE_PG_STOP: SIGINT then
     * SIGCONT to the postmaster, remembered as the fence's target; FENCE_PG_KILL: the same with
     * SIGQUIT; FENCE_PG_ESCALATE: SIGQUIT then SIGCONT to the target. */
    int (*pg_signal)(void *data, enum fence_pg_act act);
    /* What the postmaster pid is, for the log: "postgresql", or a process a killed one left. */
    const char *(*pg_target)(void *data);
    /* watchdog_plan's input: feed (may accept writes under the lease) and unfenced. */
    void (*watchdog)(void *data, bool feed, bool unfenced);
    /* FENCE_VIP_RELEASE and _STARTUP_RELEASE (cut_claim: a claim under way is cut short),
     * FENCE_VIP_CLAIM, FENCE_VIP_RENEW, FENCE_VIP_RETRY (forget the last refusal),
     * FENCE_VIP_PROBE (a probe only; busy stays false meanwhile, a claim takes it over). Its end
     * is reported to fence_vip_done, except a probe's. Non-zero with errmsg when it could not
     * begin. */
    int (*vip)(void *data, enum fence_vip_act act, bool cut_claim, char *errmsg);
};

/* One tick. *unfenced: whether anything on the node may still need fencing, for the guard. */
void fence_step(const struct fence_timing *t, struct fence_memory *m, const struct fence_world *w,
                const struct fence_exec *x, bool *unfenced);

enum fence_vip_result {
    FENCE_VIP_DONE_OK,
    FENCE_VIP_DONE_FAILED,
    FENCE_VIP_DONE_CANCELLED, /* a claim cut short by a release, which reports on its own */
};

/* A VIP operation ended; busy: another still runs, held: the address is on the interface. */
void fence_vip_done(struct fence_memory *m, enum fence_vip_result r, bool busy, bool held,
                    rpg_msec now);

#endif
