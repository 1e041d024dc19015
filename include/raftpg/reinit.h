/* Reinitialize a standby (POST /reinitialize, raftpg ctl reinit MEMBER), as Patroni's: the
 * member stops its PostgreSQL, removes the data directory and clones the primary again. Refused
 * on the primary and on the Raft leader; while it runs, the agent's own decisions wait. */
#ifndef RAFTPG_REINIT_H
#define RAFTPG_REINIT_H

#include <stdbool.h>

#include "raftpg/fsm.h"

enum reinit_phase { REINIT_IDLE = 0, REINIT_STOPPING, REINIT_CLONING };

struct reinit {
    enum reinit_phase phase;
    char from[FSM_NAME_MAX]; /* the primary it clones */
    char last[256];          /* the last reinit's outcome, for /status */
};

struct agent;
struct http_conn;

/* Checks and starts; answers conn at once (200 started, or the refusal and its reason). */
void reinit_start(struct agent *a, struct http_conn *conn);

/* True while the agent's decisions must wait for it. */
bool reinit_holds(const struct agent *a);

#endif
