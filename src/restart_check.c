/* POST /restart's conditions (restart_check.h). */
#include "raftpg/restart_check.h"

#include <stdio.h>
#include <string.h>

int restart_check(const struct restart_check_in *in, char *why, size_t size)
{
    const char *is = in->in_recovery ? "replica" : "primary";
    if (size > 0) {
        why[0] = '\0';
    }
    if (!in->running) {
        snprintf(why, size, "postgresql is not running here");
        return 503;
    }
    if (in->busy) {
        snprintf(why, size, "an operation on this member's postgresql is under way");
        return 409;
    }
    if (in->paused) {
        snprintf(why, size,
                 "the cluster is in maintenance mode: the agent would not start "
                 "postgresql again (ctl resume first)");
        return 503;
    }
    if (in->role != NULL && strcmp(in->role, is) != 0) {
        snprintf(why, size,
                 "restart conditions are not satisfied: this member is a %s, "
                 "not a %s",
                 is, in->role);
        return 412;
    }
    if (in->pending && !in->pending_restart) {
        snprintf(why, size,
                 "restart conditions are not satisfied: no setting waits for a "
                 "restart");
        return 412;
    }
    if (in->below_version > 0 && in->server_version >= in->below_version) {
        snprintf(why, size,
                 "restart conditions are not satisfied: the server's version %d is not below "
                 "%d",
                 in->server_version, in->below_version);
        return 412;
    }
    return 0;
}
