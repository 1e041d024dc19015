/* Internal to the replicated state machine (fsm.c apply and the libraft glue, fsm_check.c the
 * checks, fsm_codec.c the wire format): what they share. */
#ifndef RAFTPG_FSM_INT_H
#define RAFTPG_FSM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "raftpg/fsm.h"

/* A string held in a char[size] is valid when it is terminated inside the buffer. */
static inline bool fsm_str_ok(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static inline void fsm_str_copy(char *dst, const char *src, size_t size)
{
    size_t n = strnlen(src, size - 1);
    memset(dst, 0, size);
    memcpy(dst, src, n);
}

static inline bool fsm_cmd_type_known(unsigned type)
{
    return type >= FSM_CMD_INIT && type < FSM_CMD_TYPE_MAX;
}

/* The name of the first string field of m that is not terminated, or NULL. */
const char *fsm_member_bad_string(const struct fsm_member *m);
/* A command's fields are within their bounds for its type (before encoding, after decoding). */
int fsm_cmd_check(const struct fsm_cmd *cmd, char *errmsg);
/* Invariants every state reached by fsm_state_apply keeps; a snapshot that breaks one is not
 * ours or is corrupt. */
int fsm_state_check(const struct fsm_state *s, char *errmsg);

/* Checks apply and a snapshot's check share (fsm_check.c); msg receives the body of the
 * rejection message. */
int fsm_member_validate(const struct fsm_member *m, char *msg);
int fsm_member_unique(const struct fsm_member *members, unsigned n, const struct fsm_member *m,
                      char *msg);
int fsm_params_check(const struct fsm_param *ps, unsigned n, char *errmsg);
int fsm_hba_lines_check(const char (*lines)[FSM_HBA_LINE_MAX], unsigned n, char *errmsg);
int fsm_config_check(unsigned mode, uint32_t count, unsigned commit, char *errmsg);
int fsm_history_entry_check(const struct fsm_history_entry *h, const struct fsm_history_entry *prev,
                            char *msg);
int fsm_switchover_check(const struct fsm_switchover *w, char *msg);
/* The index of name among the recorded synchronous voters, or -1 (fsm.c). */
int fsm_sync_voter_index(const struct fsm_state *s, const char *name);

#endif
