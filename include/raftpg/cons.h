/* Consensus: libraft + raft_uv lifecycle, node identity, bootstrap, membership reconciliation
 * and leadership observation. Every libraft call and read of a struct raft field lives here
 * (RAFT-NOTES.md), so a libraft upgrade touches this file only. */
#ifndef RAFTPG_CONS_H
#define RAFTPG_CONS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"
#include "raftpg/fsm.h"

/* Name of the identity file kept in the Raft data directory. */
#define CONS_IDENTITY_FILE "raftpg.identity"

enum cons_role { CONS_ROLE_UNAVAILABLE = 0, CONS_ROLE_FOLLOWER, CONS_ROLE_CANDIDATE,
                 CONS_ROLE_LEADER };

/* "unavailable", "follower", "candidate", "leader". */
const char *cons_role_name(enum cons_role role);

/* Raft voting role of a server in the configuration: "voter", "standby", "spare", or "none". */
const char *cons_voting_name(int voting);
#define CONS_VOTING_NONE (-1)

struct cons;
/* Completion of a submitted command: rc is 0 when committed and applied, the fsm's rejection
 * code, or RPG_ENOTLEADER/RPG_ERAFT when it could not be committed; msg explains non-zero rc. */
typedef void (*cons_submit_cb)(void *data, int rc, const char *msg);
/* Fires from the loop after the Raft role, term or leader changed. */
typedef void (*cons_change_cb)(struct cons *c, void *data);

struct cons {
    uv_loop_t *loop;         /* borrowed */
    const struct conf *conf; /* borrowed */
    raft_id id;
    bool started;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct fsm fsm;
    struct fsm_state state; /* the replicated cluster state, read-only outside fsm */

    /* Observed on every loop iteration (0.15 has no state callback). */
    uv_check_t monitor;
    enum cons_role role;
    raft_term term;
    raft_id leader_id;
    cons_change_cb on_change;
    void *on_change_data;

    /* A leader acts only once a barrier of its own term has committed (RAFT-NOTES). */
    bool leader_ready;
    bool barrier_pending;
    raft_term barrier_term;
    struct raft_barrier barrier_req;

    /* Membership: the leader drives the Raft configuration towards the member list of the
     * replicated state, one change at a time. */
    uv_timer_t reconcile_timer;
    bool init_pending;
    bool config_pending;
    bool change_pending;
    struct raft_change change_req;
    char change_what[RPG_ERRMSG_SIZE];
    bool transfer_pending;
    struct raft_transfer transfer_req;

    /* Leader lease (RAFT-NOTES): a barrier submitted at t that commits proves a majority reset
     * its election timer at or after t, so no other leader can exist before t + ET. The lease
     * ends at t + 0.8 ET (drift margin). Renewed every ET/4 while leader. */
    uv_timer_t lease_timer;
    bool lease_pending;
    raft_term lease_term;
    rpg_msec lease_submitted;
    rpg_msec lease_until; /* loop time; 0: no lease */
    struct raft_barrier lease_req;
    rpg_msec barrier_submitted; /* of the own-term barrier, which also grants a lease */

    /* Follower side: loop time this node last heard from a leader (0: never since start). */
    rpg_msec last_heard_leader;
    rpg_msec started_at;        /* loop time cons_start ran */

    /* raft_start runs ET after the process starts: a restarted node could otherwise vote at once
     * for a candidate while the leader it acknowledged just before the restart still holds its
     * lease (RAFT-NOTES, "Holes to close"). */
    uv_timer_t start_timer;
    bool running;               /* raft_start succeeded */
    bool failed;                /* raft_start failed; error says why; on_change fires */
    char error[RPG_ERRMSG_SIZE];

    int n_handles_open;
    void (*close_cb)(struct cons *c);
};

/* Reads the identity file of dir. Returns 0 with *id set; RPG_ENOTFOUND when dir is empty or
 * absent (a fresh node); RPG_ECORRUPT when dir holds Raft files without an identity, the identity
 * is unreadable, or it names another cluster or member (the message says which). */
int cons_identity_read(const char *dir, const char *scope, const char *name, uint64_t *id,
                       char *errmsg);

/* Creates dir (0700) if needed and durably writes the identity (write, fsync, rename). */
int cons_identity_write(const char *dir, const char *scope, const char *name, uint64_t id,
                        char *errmsg);

/* Starts Raft as server id. When the node is one of the configured initial members, bootstraps
 * the configured members as voters first unless the directory already holds Raft state (never
 * bootstraps twice). Returns 0 or a negative code; on error nothing is left open. Raft itself
 * starts one election timeout later; if that fails (a corrupt log, say), failed and error are set
 * and on_change fires. */
int cons_start(struct cons *c, uv_loop_t *loop, const struct conf *conf, uint64_t id,
               cons_change_cb on_change, void *data, char *errmsg);

/* Stops Raft and closes every handle; cb fires when done. Safe if cons_start never succeeded. */
void cons_close(struct cons *c, void (*cb)(struct cons *c));

/* Submits a command through the leader. RPG_ENOTLEADER if this node is not a ready leader. The
 * callback fires exactly once unless submit itself fails. */
int cons_submit(struct cons *c, const struct fsm_cmd *cmd, cons_submit_cb cb, void *data,
                char *errmsg);

/* Commits a MEMBER_ADD for a new member with the next free id; the leader then adds it to the
 * Raft configuration as spare and promotes it to voter after catch-up. */
int cons_member_add(struct cons *c, const char *name, const char *raft_address,
                    const char *api_address, cons_submit_cb cb, void *data, char *errmsg);

/* Commits a MEMBER_REMOVE; the leader then removes it from the Raft configuration (handing
 * leadership over first when it removes itself). */
int cons_member_remove(struct cons *c, const char *name, cons_submit_cb cb, void *data,
                       char *errmsg);

/* Hands Raft leadership to voter id (raft_transfer). The outcome shows in the role and leader
 * observed later; a transfer that does not happen is retried by the caller. */
int cons_transfer(struct cons *c, uint64_t id, char *errmsg);

/* The end of this leader's lease in loop time, 0 when it holds none (not leader, or no majority
 * confirmed it recently). */
rpg_msec cons_lease_until(const struct cons *c);

/* Observations for the API. */
uint64_t cons_commit_index(const struct cons *c);
uint64_t cons_applied_index(const struct cons *c);
uint64_t cons_last_index(const struct cons *c);
/* True when a leader is known and everything this node knows to be committed is applied: the
 * replicated state is as current as this node can tell. A restarted node replaying its log is
 * not current until then. */
bool cons_state_current(const struct cons *c);
/* The leader's id and address (address borrowed), 0/NULL when unknown. */
void cons_leader(const struct cons *c, uint64_t *id, const char **address);

/* Whether this node's view of the Raft configuration has server id (as a voter, standby or
 * spare). Followers see configuration changes as they replicate. */
bool cons_config_has(const struct cons *c, uint64_t id);
/* Raft voting role of server id in this node's current configuration, or CONS_VOTING_NONE. */
int cons_voting(const struct cons *c, uint64_t id);
/* Name of member id from the replicated state (or, before it is initialised, from the
 * configured initial members); NULL if unknown. Borrowed. */
const char *cons_member_name(const struct cons *c, uint64_t id);
/* Number of servers in the current configuration and their ids (up to max). */
unsigned cons_config_ids(const struct cons *c, uint64_t *ids, unsigned max);

#endif
