/* The replicated cluster state (DESIGN.md §3) and its commands, as types and pure functions over
 * them: what the deciders (ha, sync, quorum, failover, history, the core) read. No libraft, no
 * loop: the codec towards libraft and the state machine itself are fsm.h's. */
#ifndef RAFTPG_FSM_STATE_H
#define RAFTPG_FSM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"

#define FSM_NAME_MAX 64
#define FSM_ADDR_MAX 64
#define FSM_MEMBERS_MAX 16

/* Decoders accept 1..FSM_VERSION. Version 2 adds the dynamic configuration and the
 * acknowledged-WAL bound; a version-1 snapshot reads with their defaults. Version 3 adds
 * MEMBER_SEEN (the RAFT_STATE tag). Version 4 adds ADD_HISTORY and the history. Version 5
 * adds SCHEDULE_SWITCHOVER, CLEAR_SWITCHOVER and the scheduled switchover. Version 6 adds
 * SET_DYNAMIC and the PostgreSQL parameters of the dynamic configuration. Version 7 adds
 * SET_DYNAMIC_LAG and maximum_lag_on_failover.
 * A command or snapshot is written with the lowest version that holds it, never below
 * FSM_VERSION_BASE: an agent of the previous release (which reads 1..3) keeps decoding every
 * command it knows from a newer leader, and loads every snapshot without a history. */
#define FSM_VERSION 7
#define FSM_VERSION_BASE 3

/* Promotions kept in the history (the oldest is dropped first). */
#define FSM_HISTORY_MAX 32

enum fsm_history_reason {
    FSM_HISTORY_BOOTSTRAP = 0,  /* the first primary of the cluster */
    FSM_HISTORY_FAILOVER = 1,   /* the previous primary was lost, or an operator's failover */
    FSM_HISTORY_SWITCHOVER = 2, /* a planned handover from a running primary */
    FSM_HISTORY_REASON_MAX
};
/* "bootstrap", "failover", "switchover"; "unknown" otherwise. */
const char *fsm_history_reason_name(int reason);

/* One promotion: the primary that began a timeline. */
struct fsm_history_entry {
    uint32_t timeline;      /* the timeline the promotion began */
    uint32_t prev_timeline; /* the timeline it branched from (0 for a bootstrap) */
    uint64_t lsn;           /* where the previous timeline ended; 0 for a bootstrap */
    int64_t time_ms;        /* wall-clock time of the promotion, ms since the Unix epoch */
    uint64_t term;          /* Raft term in which the new primary was chosen */
    uint8_t reason;         /* enum fsm_history_reason */
    char primary[FSM_NAME_MAX];
};

/* PostgreSQL parameters of the dynamic configuration: bounded so that a command and a snapshot
 * stay small. A name is a PostgreSQL identifier (letters, digits, '_', '.' between words, at most
 * NAMEDATALEN - 1 bytes); a value is printable text without a line break. */
#define FSM_PARAMS_MAX 32
#define FSM_PARAM_NAME_MAX 64
#define FSM_PARAM_VALUE_MAX 256

/* pg_hba.conf lines of the dynamic configuration: printable text (tabs allowed), 1..255 bytes. */
#define FSM_HBA_MAX 32
#define FSM_HBA_LINE_MAX 256

struct fsm_param {
    char name[FSM_PARAM_NAME_MAX];   /* lower case, as PostgreSQL folds it */
    char value[FSM_PARAM_VALUE_MAX]; /* as written after "name = " (quoted when written) */
};

/* Checks one parameter's syntax: 0, or RPG_EINVAL with a message naming it ("parameter
 * \"work mem\": name is not an identifier"). What raftpg itself owns is the API's to refuse. */
int fsm_param_check(const char *name, const char *value, char *errmsg);
/* Checks one pg_hba line: 0, or RPG_EINVAL naming its index and what is wrong. */
int fsm_hba_check(unsigned index, const char *line, char *errmsg);
/* Whether line begins with a connection type (local, host, hostssl, hostnossl, hostgssenc,
 * hostnogssenc): a comment or an include could leave pg_hba.conf without a rule. */
bool fsm_hba_type_known(const char *line);

/* A switchover planned for a wall-clock time: the leader at that time runs it (schedule.h). */
struct fsm_switchover {
    int64_t at_ms;           /* ms since the Unix epoch, > 0; 0: nothing scheduled */
    char from[FSM_NAME_MAX]; /* the primary it must move from; empty: whichever runs then */
    char to[FSM_NAME_MAX];   /* the candidate; empty: the best standby then */
};

/* FSM_TAG_RAFT_STATE: the member's Raft log has held replicated entries (MEMBER_SEEN). A member
 * so marked that comes back with an empty Raft data directory has lost its log and its vote, and
 * may not rejoin under the same id. */
enum { FSM_TAG_NOFAILOVER = 1u << 0, FSM_TAG_NOSYNC = 1u << 1, FSM_TAG_RAFT_STATE = 1u << 2 };

/* How the primary waits for standbys (synchronous_mode): the one type from the configuration
 * file and the replicated state (where the numbers are stored: never renumber) to the
 * deciders. */
enum sync_mode {
    SYNC_MODE_OFF = 0,    /* asynchronous replication; failover may lose recent commits */
    SYNC_MODE_QUORUM = 1, /* ANY k over the healthy standbys; asynchronous (recorded) when none */
    SYNC_MODE_STRICT = 2, /* ANY k, and writes block rather than go asynchronous */
};
enum {
    FSM_SYNC_COMMIT_ON = 0,
    FSM_SYNC_COMMIT_REMOTE_WRITE = 1,
    FSM_SYNC_COMMIT_REMOTE_APPLY = 2,
    FSM_SYNC_COMMIT_LOCAL = 3
};

struct fsm_member {
    uint64_t id; /* Raft server id, unique, never reused within a cluster */
    char name[FSM_NAME_MAX];
    char raft_address[FSM_ADDR_MAX];
    char api_address[FSM_ADDR_MAX];
    char pg_address[FSM_ADDR_MAX]; /* empty until the member reports it */
    uint32_t tags;                 /* FSM_TAG_* bits */
    int32_t failover_priority;
};

struct fsm_state {
    bool initialized; /* set by the first FSM_CMD_INIT */
    char scope[FSM_NAME_MAX];
    uint64_t system_id; /* PostgreSQL system identifier, 0 until bootstrap */
    uint64_t next_id;   /* the id the next added member gets; ids are never reused */
    unsigned n_members;
    struct fsm_member members[FSM_MEMBERS_MAX];
    struct {
        char name[FSM_NAME_MAX]; /* empty: no primary recorded */
        uint64_t term;           /* Raft term in which it was chosen */
        uint32_t timeline;
    } primary;
    struct {
        uint32_t k;
        unsigned n_voters;
        char voters[FSM_MEMBERS_MAX][FSM_NAME_MAX];
    } sync;
    bool paused;
    /* Dynamic configuration (SET_CONFIG); until set, each agent uses its file's values. */
    struct {
        bool set;
        uint8_t sync_mode;        /* enum sync_mode */
        uint32_t sync_node_count; /* k wanted, 1..FSM_MEMBERS_MAX */
        uint8_t sync_commit;      /* FSM_SYNC_COMMIT_* */
        /* PostgreSQL parameters (SET_DYNAMIC), names strictly increasing. */
        unsigned n_params;
        struct fsm_param params[FSM_PARAMS_MAX];
        /* pg_hba.conf lines (SET_DYNAMIC); none: each member's own file. */
        unsigned n_hba;
        char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX];
        /* maximum_lag_on_failover (SET_DYNAMIC_LAG): a standby further behind than this many
         * bytes is not promoted by a failover; unset: no limit. */
        bool max_lag_set;
        uint64_t max_lag;
    } config;
    /* The WAL position that the synchronous quorum confirmed (SET_WAL_BOUND): every commit
     * acknowledged up to there is on a quorum standby; a new primary must have reached it. */
    uint64_t wal_bound;
    uint32_t wal_bound_timeline;
    /* Promotions, oldest first, timelines increasing (ADD_HISTORY); at most FSM_HISTORY_MAX. */
    unsigned n_history;
    struct fsm_history_entry history[FSM_HISTORY_MAX];
    /* The scheduled switchover (SCHEDULE_SWITCHOVER, CLEAR_SWITCHOVER): at_ms 0 when none. */
    struct fsm_switchover switchover;
    uint64_t n_applied; /* commands applied (accepted or rejected) */
    uint64_t n_rejected;
};

enum fsm_cmd_type {
    FSM_CMD_INIT = 1,            /* scope and the initial members; ids come with the members */
    FSM_CMD_MEMBER_ADD,          /* one member */
    FSM_CMD_MEMBER_REMOVE,       /* by name */
    FSM_CMD_SET_PRIMARY,         /* primary name, term, timeline */
    FSM_CMD_SET_SYNC,            /* k and voters */
    FSM_CMD_SET_PAUSE,           /* paused flag */
    FSM_CMD_SET_SYSTEM_ID,       /* system identifier; only once */
    FSM_CMD_SET_CONFIG,          /* dynamic configuration (version 2) */
    FSM_CMD_SET_WAL_BOUND,       /* acknowledged-WAL bound; never moves back (version 2) */
    FSM_CMD_MEMBER_SEEN,         /* member id: its Raft log holds replicated entries (version 3) */
    FSM_CMD_ADD_HISTORY,         /* one promotion, appended to the history (version 4) */
    FSM_CMD_SCHEDULE_SWITCHOVER, /* time, from, to: a switchover to run then (version 5) */
    FSM_CMD_CLEAR_SWITCHOVER,    /* the time of the scheduled one it drops (version 5) */
    FSM_CMD_SET_DYNAMIC,         /* SET_CONFIG's settings and the PostgreSQL parameters, the
                                    whole set (version 6) */
    FSM_CMD_SET_DYNAMIC_LAG,     /* SET_DYNAMIC's payload and maximum_lag_on_failover (version 7) */
    FSM_CMD_TYPE_MAX
};

/* A decoded command. term: the Raft term in which the leader decided it (carried for audit). */
struct fsm_cmd {
    enum fsm_cmd_type type;
    uint64_t term;
    union {
        struct {
            char scope[FSM_NAME_MAX];
            unsigned n_members;
            struct fsm_member members[FSM_MEMBERS_MAX];
        } init;
        struct fsm_member member_add;
        struct {
            char name[FSM_NAME_MAX];
        } member_remove;
        struct {
            char name[FSM_NAME_MAX];
            uint64_t term;
            uint32_t timeline;
        } set_primary;
        struct {
            uint32_t k;
            unsigned n_voters;
            char voters[FSM_MEMBERS_MAX][FSM_NAME_MAX];
        } set_sync;
        struct {
            bool paused;
        } set_pause;
        struct {
            uint64_t system_id;
        } set_system_id;
        struct {
            uint8_t sync_mode;
            uint32_t sync_node_count;
            uint8_t sync_commit;
        } set_config;
        struct {
            uint8_t sync_mode; /* enum sync_mode */
            uint32_t sync_node_count;
            uint8_t sync_commit;
            unsigned n_params;
            struct fsm_param params[FSM_PARAMS_MAX];
            unsigned n_hba;
            char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX];
            /* SET_DYNAMIC_LAG only. */
            bool max_lag_set;
            uint64_t max_lag;
        } set_dynamic;
        struct {
            uint64_t position;
            uint32_t timeline;
        } set_wal_bound;
        struct {
            uint64_t id;
        } member_seen;
        struct fsm_history_entry add_history;
        struct fsm_switchover schedule_switchover;
        struct {
            int64_t at_ms;
        } clear_switchover;
    } u;
};

/* Name of a command type ("init", "member_add", ...), "unknown" otherwise. */
const char *fsm_cmd_type_name(enum fsm_cmd_type type);

/* Decodes len bytes. Returns 0 or RPG_EPROTO with a message naming what is wrong (truncated,
 * unknown version, unknown type, string not terminated, count out of range). Never reads past
 * len. */
int fsm_cmd_decode(const void *buf, size_t len, struct fsm_cmd *cmd, char *errmsg);

/* Resets *s to the empty state (not initialized, next_id 1). */
void fsm_state_init(struct fsm_state *s);

/* Applies cmd to s. A command that is invalid in the current state (INIT twice, duplicate
 * member name/id/address, removing an unknown member, system id set twice, ...) leaves s
 * unchanged except n_applied/n_rejected and returns a negative code with a message
 * ("member_add rejected: duplicate member name \"node2\""). MEMBER_REMOVE of a sync voter also
 * drops it from the voters and lowers k by one (the removed voter may have held acknowledged
 * commits the others lack); of the primary, it clears primary.name but keeps primary.term.
 * ADD_HISTORY needs a known reason, a primary name and a timeline above the last entry's (so a
 * repeated proposal is rejected); a full history drops its oldest entry. SCHEDULE_SWITCHOVER
 * needs a time above 0, a from that is empty or a member, a to that is empty or a member other
 * than from, and no switchover scheduled already (RPG_EEXIST); CLEAR_SWITCHOVER drops the
 * scheduled one only if its time is at_ms (RPG_ENOTFOUND otherwise), so a late clear never drops
 * a newer schedule. SET_DYNAMIC sets what SET_CONFIG sets and replaces the parameters and the
 * pg_hba lines: each parameter passes fsm_param_check and the names are strictly increasing (so
 * unique), each line passes fsm_hba_check; SET_CONFIG leaves both as they are. */
int fsm_state_apply(struct fsm_state *s, const struct fsm_cmd *cmd, char *errmsg);

/* Finds a member by name or id; NULL if absent. */
const struct fsm_member *fsm_state_member(const struct fsm_state *s, const char *name);
const struct fsm_member *fsm_state_member_by_id(const struct fsm_state *s, uint64_t id);

/* Parses a snapshot into *s; on error *s is left untouched and RPG_EPROTO returned. */
int fsm_state_decode(const void *buf, size_t len, struct fsm_state *s, char *errmsg);

/* Deep equality of two states (for tests and restore checks). */
bool fsm_state_equal(const struct fsm_state *a, const struct fsm_state *b);

/* A checksum of the whole state (FNV-1a 64 over its snapshot encoding): equal states give equal
 * checksums on every member. */
uint64_t fsm_state_checksum(const struct fsm_state *s);

#endif
