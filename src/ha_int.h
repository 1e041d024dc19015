/* ha's private header: what its two files share and nothing outside ha uses. ha.c holds the
 * decision (ha_decide and its leader, follower and bootstrap branches), the observation's clocks
 * and the names; ha_promote.c the promotion's guards: the candidate choice and rule 6 (a quorum
 * of the recorded synchronous voters heard, a member further ahead), rule 4 (the voters detached
 * from the previous primary) and the next timeline. Pure, like ha.h: neither libuv nor libraft. */
#ifndef RAFTPG_HA_INT_H
#define RAFTPG_HA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/ha.h"

const struct ha_peer *ha_peer_of(const struct ha_input *in, const char *name);
bool ha_sync_quorum_heard(const struct ha_input *in, char *why, size_t why_size);
const char *ha_sync_voter_pending(const struct ha_input *in);
uint32_t ha_next_timeline(const struct ha_input *in);
bool ha_voters_detached(const struct ha_input *in, char *target, size_t target_size, char *why,
                        size_t why_size);
const struct ha_peer *ha_peer_ahead(const struct ha_input *in);
const char *ha_member_ahead_of(const struct ha_input *in, bool skip_self, uint32_t tl, uint64_t wal,
                               uint32_t *ahead_tl, uint64_t *ahead_wal);

#endif
