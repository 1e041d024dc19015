/* The replicated cluster state (DESIGN.md §3) towards libraft: the codec of commands and
 * snapshots and the state machine (apply, snapshot, restore, checksums). The state and its
 * commands are fsm_state.h's. Pure: no I/O, no clock. The same commands applied in the same order
 * give the same state. */
#ifndef RAFTPG_FSM_H
#define RAFTPG_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "raftpg/err.h"

#include "raftpg/fsm_state.h"

/* Encodes cmd into out->base (raft_malloc'ed, caller or raft frees) with out->len a multiple of 8
 * (libraft 0.15 corrupts its log otherwise). Returns 0, RPG_EINVAL (a string too long, a count
 * out of range, unknown type) or RPG_ENOMEM. */
int fsm_cmd_encode(const struct fsm_cmd *cmd, struct raft_buffer *out, char *errmsg);

/* Serialises the whole state (snapshot). out->base is raft_malloc'ed, len a multiple of 8. */
int fsm_state_encode(const struct fsm_state *s, struct raft_buffer *out, char *errmsg);

/* The state's checksum after the entry at index was applied. */
struct fsm_sum {
    uint64_t index;
    uint64_t sum;
};
/* How many recent checksums a state machine keeps, so that members polled at different moments
 * still find an index they both applied. */
#define FSM_SUMS_MAX 64

/* A libraft state machine (version 1) over *state (borrowed, must outlive fsm).
 * apply never fails towards libraft (a non-zero return would stall 0.15's apply loop): a rejected
 * command still counts as applied, and *result carries the code as (void *)(intptr_t)rc, 0 on
 * success; read it with fsm_result_code(). snapshot/restore use fsm_state_encode/decode. */
struct fsm {
    struct raft_fsm raft;             /* must be first: libraft hands back &raft */
    struct fsm_state *state;          /* borrowed */
    char last_error[RPG_ERRMSG_SIZE]; /* last rejected command, or failed snapshot/restore */
    /* The server applying entries (set by its owner, may be NULL): each apply records the
     * checksum at the entry's index (libraft advances last_applied after apply returns). */
    struct raft *server;
    struct fsm_sum sums[FSM_SUMS_MAX]; /* ring of the most recent checksums */
    unsigned n_sums;
    unsigned next_sum;
    bool restored; /* a snapshot was restored: its index is known once libraft sets it */
};
void fsm_init(struct fsm *f, struct fsm_state *state);
/* Records the checksum of the current state at index (after a restore, the owner calls it with
 * the snapshot's index once libraft has set it). */
void fsm_sum_record(struct fsm *f, uint64_t index);
/* The checksum recorded at index, if still kept. */
bool fsm_sum_at(const struct fsm *f, uint64_t index, uint64_t *sum);
/* The most recent checksum; false when none was recorded yet. */
bool fsm_sum_latest(const struct fsm *f, struct fsm_sum *out);
static inline int fsm_result_code(void *result)
{
    return (int)(intptr_t)result;
}

#endif
