#include "raftpg/fence.h"

void fence_timing_init(struct fence_timing *t, unsigned election_timeout_ms)
{
    rpg_msec et = election_timeout_ms;
    t->lease_ms = et * 8 / 10;
    t->renew_ms = et / 4 > 0 ? et / 4 : 1;
    t->margin_ms = et * 2 / 10 > 0 ? et * 2 / 10 : 1;
    t->escalate_ms = t->margin_ms / 2 > 0 ? t->margin_ms / 2 : 1;
}

bool fence_lease_ok(const struct fence_timing *t, bool leader_ready, rpg_msec lease_until,
                    rpg_msec now)
{
    return leader_ready && lease_until > now + t->margin_ms;
}

rpg_msec fence_promote_not_before(const struct fence_timing *t, rpg_msec last_heard_leader,
                                  rpg_msec started_at, rpg_msec watchdog_ms)
{
    rpg_msec from = last_heard_leader != 0 ? last_heard_leader : started_at;
    return from + t->lease_ms + t->margin_ms + watchdog_ms;
}
