/* The primary's synchronous-quorum driver (DESIGN.md rules 6 and 7, §8): from the replicated
 * settings and sync record, what PostgreSQL runs with, and the primary's view of its standbys,
 * the one next step: record a set, configure PostgreSQL, or record the acknowledged-WAL bound.
 * Pure: the caller observes and acts (core.c). */
#ifndef RAFTPG_QUORUM_H
#define RAFTPG_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"
#include "raftpg/sync.h"

/* A standby this far behind the primary, or less, counts as caught up. */
#define QUORUM_MAX_LAG_BYTES (16u * 1024 * 1024)
/* The bound is recorded at most this often, and only when it moved. */
#define QUORUM_BOUND_INTERVAL_MS 1000
/* Quorum mode degrades only for a standby gone this long, or known to be down (its agent says its
 * server is not running): one that stopped streaming less than this ago, or a recorded voter in
 * the first this-long of a primary's term (after a failover the survivors re-point within
 * HA_DETACH_BOUND_MS plus a restart), stays in the set and writes wait for it rather than be
 * acknowledged by the primary alone. */
#define QUORUM_DEGRADE_GRACE_MS 5000

/* A standby as pg_stat_replication shows it (application_name = member name). */
struct quorum_replica {
    char name[FSM_NAME_MAX];
    bool streaming;
    uint64_t flush_position;
};

struct quorum_view {
    rpg_msec now;
    const struct fsm_state *state; /* borrowed: members, sync record, settings, bound */
    const char *self;              /* the primary */
    enum sync_mode mode;           /* in force */
    unsigned k_wanted;
    int commit;                    /* FSM_SYNC_COMMIT_* */
    bool configured_known;         /* PostgreSQL was observed running as this primary */
    const char *configured_value;  /* its synchronous_standby_names */
    const char *configured_commit; /* the synchronous_commit the agent last wrote ("" none) */
    uint64_t primary_flush;        /* the primary's WAL position */
    unsigned n_replicas;
    const struct quorum_replica *replicas;
    unsigned n_nosync; /* members tagged nosync */
    const char *const *nosync;
    const char *removing; /* a member on its way out, kept out of the set; or NULL */
    unsigned n_down;      /* members known to be down (their agents say their server is
                           * not running): no degrade grace for them */
    const char *const *down;
};

/* What the driver remembers between calls: when PostgreSQL took on its current value. */
struct quorum_tracker {
    uint64_t term;         /* the primary's term these facts belong to (reset on change) */
    rpg_msec term_seen_at; /* when this driver first ran in that term */
    char streamed[FSM_MEMBERS_MAX][FSM_NAME_MAX];
    rpg_msec streamed_at[FSM_MEMBERS_MAX]; /* when each last streamed */
    unsigned n_streamed;
    char seen_value[SYNC_VALUE_MAX];
    bool seen;
    uint64_t seen_since; /* the primary's position when that value was first seen */
    rpg_msec bound_recorded_at;
    bool bound_recorded;
};

enum quorum_action {
    QUORUM_NONE = 0,
    QUORUM_RECORD,       /* commit cmd (SET_SYNC) */
    QUORUM_CONFIGURE,    /* write value and commit to PostgreSQL and reload */
    QUORUM_RECORD_BOUND, /* commit cmd (SET_WAL_BOUND) */
    QUORUM_WAIT,         /* why says what for */
};
const char *quorum_action_name(enum quorum_action a);

struct quorum_decision {
    enum quorum_action action;
    struct fsm_cmd cmd;         /* RECORD, RECORD_BOUND */
    char value[SYNC_VALUE_MAX]; /* CONFIGURE: synchronous_standby_names */
    const char *commit;         /* CONFIGURE: synchronous_commit (synchronous_commit = local
                                 * counts as asynchronous for the record) */
    bool degraded;              /* fewer healthy standbys than wanted */
    char why[SYNC_WHY_MAX];
};

/* The next step. Returns 0, or a negative code with errmsg when the inputs are malformed (the
 * caller logs it and tries again later). */
int quorum_decide(const struct quorum_view *v, struct quorum_tracker *t,
                  struct quorum_decision *out, char *errmsg);

/* What a standby about to be promoted configures before it promotes, so that nothing it
 * acknowledges before the driver's first step falls outside the record: the recorded k over the
 * recorded voters other than itself. Strict mode with no other voter names the primary itself
 * (writes block); quorum mode with nothing provable recorded, mode off and synchronous_commit =
 * local give "" (the record already says k = 0, or no promise is made). */
int quorum_initial_value(const struct quorum_view *v, char *value, size_t size, char *errmsg);

/* "on", "remote_write", "remote_apply", "local". */
const char *quorum_commit_name(int commit);

#endif
