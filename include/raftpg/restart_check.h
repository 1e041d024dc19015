/* POST /restart's conditions (Patroni's "role", "restart_pending", "postgres_version"), checked
 * against the member as its agent observes it: pure, so that the agent's restart.c and the
 * simulation (tests/sim) run the same decision. */
#ifndef RAFTPG_RESTART_CHECK_H
#define RAFTPG_RESTART_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* What POST /restart's conditions are checked against: the member as its agent observes it. */
struct restart_check_in {
    bool running;         /* its PostgreSQL accepts connections */
    bool in_recovery;     /* ... as a standby */
    bool busy;            /* a restart, reinit or switchover of it is under way */
    bool paused;          /* maintenance mode */
    const char *role;     /* the request's role: "primary", "replica" or NULL (any) */
    bool pending;         /* the request's restart_pending */
    bool pending_restart; /* a setting waits for a restart */
    int below_version;    /* the request's postgres_version (0: any) */
    int server_version;
};

/* 0 when a restart may begin, else the HTTP status to answer (503, 409 or 412) with why. The
 * agent's restart_start runs it, and so does the simulation (tests/sim). */
int restart_check(const struct restart_check_in *in, char *why, size_t size);

#endif
