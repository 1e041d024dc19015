/* Internal to the replicated state machine (fsm.c, fsm_codec.c): what the codec and the
 * checks share. */
#ifndef RAFTPG_FSM_INT_H
#define RAFTPG_FSM_INT_H

#include <stdbool.h>
#include <stddef.h>
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

#endif
