/* The consensus logic's private header: what its files share and nothing outside them uses.
 * cons.c holds the requests handed to libraft, the lifecycle, leadership observation with the
 * own-term barrier, command submission and membership reconciliation; cons_lease.c the leader
 * lease, its echo and the leader's stepping aside; cons_wal.c the storage health and the write
 * fence around libraft's io (the restart from the directory and its check). */
#ifndef RAFTPG_CONS_INT_H
#define RAFTPG_CONS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

#include "raftpg/cons.h"

/* ---- requests (cons.c) ---- */

enum cons_req_kind { REQ_APPLY, REQ_BARRIER, REQ_LEASE, REQ_CHANGE, REQ_TRANSFER };

/* One request handed to libraft. It lives until libraft completes it, which may be after the
 * agent that made it is gone (the simulation's servers outlive their agents): it then completes
 * silently. */
struct cons_req {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
        struct raft_transfer transfer;
    } u;
    struct cons *c;
    uint64_t gen;
    struct cons_req *next, *prev;
    enum cons_req_kind kind;
    cons_submit_cb cb;
    void *data;
    enum fsm_cmd_type type;
    raft_term term;
    rpg_msec submitted;
    bool done; /* completed; kept until cons_free_requests (transfer_done says why) */
};

/* A request of kind linked into c's list; NULL when out of memory. */
struct cons_req *cons_req_new(struct cons *c, enum cons_req_kind kind);
/* Unlinks and frees q. */
void cons_req_free(struct cons_req *q);
/* The agent that made q is still the attached one. */
bool cons_req_current(const struct cons_req *q);

/* ---- helpers (cons.c) ---- */

/* The host's clock, or 0 before the first cons_attach. */
rpg_msec cons_host_now(struct cons *c);
/* Attached and running. */
bool cons_live(const struct cons *c);
/* Tells the host something changed (cons_host on_change). */
void cons_changed(struct cons *c);
/* cons_member_name, or "?" for an unknown id. */
const char *cons_member_name_by_id(const struct cons *c, uint64_t id);
/* Starts a leadership transfer to id (0: libraft picks); 0 or a libraft error code. */
int cons_start_transfer(struct cons *c, uint64_t id);

/* ---- storage health (cons_wal.c) ---- */

/* A write libraft refused when it was submitted. */
void cons_storage_raft_refused(struct cons *c, int status, const char *what);
/* A libraft callback reported status for a write. */
void cons_storage_raft_result(struct cons *c, int status, const char *what);

/* ---- the lease (cons_lease.c) ---- */

/* fence.h's lease_ms for this server's election timeout. */
rpg_msec cons_lease_length(const struct cons *c);

#endif
