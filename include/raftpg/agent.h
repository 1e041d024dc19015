/* The agent: one libuv loop tying the configuration, consensus, peer polling and the API. */
#ifndef RAFTPG_AGENT_H
#define RAFTPG_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/api.h"
#include "raftpg/callback.h"
#include "raftpg/conf.h"
#include "raftpg/cons_uv.h"
#include "raftpg/core.h"
#include "raftpg/fence.h"
#include "raftpg/failover.h"
#include "raftpg/fence_step.h"
#include "raftpg/lead.h"
#include "raftpg/lease_echo.h"
#include "raftpg/guard.h"
#include "raftpg/ha.h"
#include "raftpg/history.h"
#include "raftpg/http.h"
#include "raftpg/peers.h"
#include "raftpg/reinit.h"
#include "raftpg/restart.h"
#include "raftpg/schedule.h"
#include "raftpg/switchover.h"
#include "raftpg/pg.h"
#include "raftpg/vip.h"
#include "raftpg/watchdog.h"

enum agent_phase {
    AGENT_PHASE_JOINING = 0, /* waiting to learn its id from the cluster (not an initial member) */
    AGENT_PHASE_RUNNING,
    AGENT_PHASE_STOPPING,
};

const char *agent_phase_name(enum agent_phase phase);

struct agent {
    uv_loop_t *loop; /* borrowed, owned by main */
    struct conf conf;
    enum agent_phase phase;
    struct cons cons;
    bool cons_open;
    struct http_server api;
    bool api_open;
    struct peers peers;
    bool peers_open;
    uv_signal_t sig_int;
    uv_signal_t sig_term;
    uv_signal_t sig_hup; /* reloads the configuration file (reload.h) */
    uv_timer_t join_timer;
    int exit_code;
    char join_status[2 * RPG_ERRMSG_SIZE]; /* why the agent is still joining, for the API */
    bool raft_fresh; /* started without Raft state and has not started Raft yet */
    /* This process bootstrapped an empty directory: until raft_start loads it (ET later), the
     * log holds the bootstrap configuration and nothing else. */
    bool raft_bootstrapped;
    /* The cluster secret(s), for proving and checking answers to the bootstrap question
     * (proof.h); none without raft.secret_file. */
    uint8_t secret[CONF_SECRET_SIZE];
    uint8_t secret_previous[CONF_SECRET_SIZE];
    bool has_secret;
    bool has_secret_previous;

    /* PostgreSQL under the HA decision function (only with a postgresql: section). */
    struct pg pg;
    bool pg_open;
    struct callbacks callbacks; /* postgresql.callbacks */
    bool callbacks_open;
    uint64_t reloads_seen; /* pg.n_reloads on_reload was last fired for */
    uv_timer_t ha_timer;
    bool ha_timer_open;
    struct core core; /* decisions and the action in flight */
    struct core_io io;
    bool stopping_pg;
    bool stop_pg_when_idle;      /* shutdown came while an operation ran: stop once it ends */
    char removing[FSM_NAME_MAX]; /* a member whose removal waits for the synchronous set */
    uv_timer_t notify_timer;     /* systemd watchdog pings */
    bool notify_timer_open;

    /* Fencing (DESIGN.md rules 2, 3, 5): checked on every loop turn and every few ms. */
    struct fence_timing fence;
    uv_timer_t fence_timer;
    bool fence_timer_open;
    struct lead_memory lead; /* the gate to acting as leader (lead.h) */
    struct lease_echo echo;  /* lease renewals that wait for no disk (lease_echo.h) */
    struct fence_memory
        fm;         /* the fence's own state: lease, soft layer, fence, VIP (fence_step.h) */
    int frozen_pid; /* the postmaster the soft layer stopped */
    int fence_pid;  /* the postmaster the fence signalled */
    /* primary_start_timeout: how long the primary's server has been down (ha_pg_track_down),
     * and the hand-overs begun because it was down past the bound. */
    struct ha_down_clock pg_down;
    uint64_t n_start_timeouts;
    struct vip vip;
    bool vip_open;
    struct guard guard; /* fences the node if this process dies unfenced (guard.h) */
    bool guard_open;
    bool guard_restarting; /* a guard that died is being closed, to start another */
    bool guard_lost;       /* its replacement could not be started: tried again */
    rpg_msec guard_restarted_at;
    char vip_error[RPG_ERRMSG_SIZE];
    bool vip_probe_answered;   /* a probe before this promotion found the address answered */
    uint64_t lead_acting_term; /* the term lead_gate last let this node act as leader in, or 0 */
    struct watchdog watchdog;
    bool watchdog_ok;                     /* armed when it must be, or not required */
    char watchdog_error[RPG_ERRMSG_SIZE]; /* shutdown waits for PostgreSQL to stop */
    /* The state-checksum comparison with the peers (storage.h): why this member is held to have
     * diverged (cons.diverged), for the log and the API. */
    char diverged_detail[RPG_ERRMSG_SIZE];
    /* The cluster's leader lists this member's name under another Raft id: removed and added
     * again while this agent kept running. Sticky: it does not act until restarted afresh. */
    char identity_error[2 * RPG_ERRMSG_SIZE];
    bool maintenance; /* the replicated state says paused, as last seen by ha_tick */
    char pause_primary[FSM_NAME_MAX];       /* the recorded primary when the pause began */
    struct failover_permit failover_permit; /* a failover asked for while paused (failover.h) */
    rpg_msec params_retry_at;               /* after a failed write of the dynamic parameters */
    struct switchover switchover;
    struct reinit reinit;
    struct restart restart;
    struct history history;   /* recording this member's promotions */
    struct schedule schedule; /* running the scheduled switchover when it is due */
    /* API answers by endpoint (API_ENDPOINTS, the last for any other path) and status. */
    uint64_t api_answers[API_ENDPOINTS + 1][API_STATUSES + 1];
    /* This member's promotions by history reason (fsm_history_reason), counted from the
     * replicated history up to timeline promotions_timeline: they only grow, though the history
     * drops its oldest entries. */
    uint64_t promotions[FSM_HISTORY_REASON_MAX];
    uint32_t promotions_timeline;
};

/* Loads nothing: conf must already be loaded into a->conf. Starts the API, peer polling and
 * Raft (or the join procedure). Returns 0 or a negative code with errmsg; on error the caller
 * still runs agent_stop and the loop to release what was opened. */
int agent_start(struct agent *a, uv_loop_t *loop, char *errmsg);

/* Whether this member acts (ha_tick decides and records): false for a diverged replicated state
 * or a mismatched identity, with why (for an operator refused on the API) in why. */
bool agent_acting(const struct agent *a, char *why, size_t size);

/* Begins an orderly shutdown; the loop ends when every handle is closed. */
void agent_stop(struct agent *a, int exit_code);

/* The JSON document served on GET /cluster (caller frees with json_decref). */
struct json_t;
struct json_t *agent_cluster_json(const struct agent *a);

/* The short self-status served on GET /status and read by peers. */
struct json_t *agent_status_json(const struct agent *a);

/* Patroni's node status document: GET /patroni and the body of GET health checks. */
struct json_t *agent_patroni_json(const struct agent *a);

#endif
