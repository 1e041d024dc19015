/* The synchronous quorum that follows membership (DESIGN.md rules 6 and 7, I2): which standbys
 * the primary waits for, in which order that set changes in the Raft log and in PostgreSQL, and
 * how many recorded voters a new leader must hear from before it promotes. Pure: no I/O, no
 * clock, no allocation.
 *
 * Three sets are in play:
 *   desired     what membership, tags and health call for now (sync_desired);
 *   configured  what the primary's PostgreSQL runs with: synchronous_standby_names =
 *               'ANY kc (C)', or '' (asynchronous, kc = 0);
 *   recorded    the voters V and k in the Raft log (FSM_CMD_SET_SYNC), what a new leader trusts.
 *
 * The claim the log makes, P: every commit acknowledged to a client so far is on at least k
 * members of V (a primary named in V counts as holding everything), or k = 0 and the log claims
 * nothing.
 *
 * P gives I2 (rule 6): a new leader that hears from |V| - k + 1 members of V, itself included,
 * meets at least one member holding any acknowledged commit, since k + (|V| - k + 1) > |V|; it
 * then promotes the most advanced member it heard from, or hands leadership to it.
 *
 * sync_decide keeps P with one step at a time and this invariant between the steps:
 *   (I) C is a subset of V and kc >= k. An asynchronous PostgreSQL (kc = 0) forces k = 0.
 * A commit acknowledged under ANY kc (C) is on at least kc members of C, all in V, and kc >= k:
 * P holds for it. The steps, in the order of rule 7:
 *   1. RECORD a wider set (voters added, k lowered) first, before PostgreSQL relies on it. A
 *      wider record weakens the claim, so P still holds for every older commit.
 *   2. CONFIGURE PostgreSQL with the desired set, which the record now covers: (I) holds after.
 *   3. RECORD the narrower set (voters dropped, k raised) last, once PostgreSQL no longer relies
 *      on what is dropped, and only when at least k of the new voters have flushed up to the
 *      primary's flush position at the time PostgreSQL took on its current set
 *      (configured_since). Every commit acknowledged under an earlier set lies at or below that
 *      position, so it too is on k of the new voters. Without that wait, a failover right after
 *      the narrowing could promote a voter that never received a commit acknowledged by the
 *      voter just dropped (or, when k rises, by the one voter that acknowledged it alone).
 *
 * Strict mode never becomes asynchronous: with too few healthy standbys PostgreSQL keeps
 * demanding k acknowledgements and writes block until enough standbys return. Quorum mode
 * lowers k down to 0 (asynchronous) and records k = 0 first, so that a new leader knows no
 * standby provably holds every acknowledged commit (sync_quorum_needed) instead of losing some
 * silently.
 *
 * A member leaves the set before it leaves the membership: the caller drops it from the
 * standbys it passes and runs the steps to SYNC_STEP_NONE before committing
 * FSM_CMD_MEMBER_REMOVE, since step 1 may record any name PostgreSQL still waits for and the
 * state machine accepts only members as voters. */
#ifndef RAFTPG_SYNC_H
#define RAFTPG_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"

#define SYNC_WHY_MAX 256

/* Longest synchronous_standby_names value sync_set_format writes, terminator included: every
 * name quoted with each character doubled, separated by ", ". */
#define SYNC_VALUE_MAX (32 + FSM_MEMBERS_MAX * (2 * FSM_NAME_MAX + 4))

/* "off", "quorum", "strict"; "invalid" otherwise. */
const char *sync_mode_name(enum sync_mode mode);

/* Parses the words sync_mode_name gives (exact, lower case). Returns 0, or RPG_EINVAL with
 * "sync mode: expected off, quorum or strict, got \"x\"". */
int sync_mode_parse(const char *word, enum sync_mode *mode, char *errmsg);

/* A quorum: k acknowledgements out of the named members. Names are kept sorted (strcmp) and
 * distinct, so that two sets compare and print the same way whatever order they were built in.
 * k = 0 means asynchronous: no acknowledgement is waited for (names may still be listed in a
 * recorded set on its way to or from asynchronous). k may exceed n in a configured set (strict
 * mode blocking writes), never in a recorded one. */
struct sync_set {
    uint32_t k;
    unsigned n;
    char names[FSM_MEMBERS_MAX][FSM_NAME_MAX];
};

/* Makes *s the empty set with this k. */
void sync_set_init(struct sync_set *s, uint32_t k);

/* Inserts name in sorted position (copied). Returns 0, RPG_EEXIST when already there, or
 * RPG_EINVAL when the set is full or the name is empty, too long (FSM_NAME_MAX - 1 at most) or
 * holds a character other than printable ASCII, which PostgreSQL's application_name cannot carry
 * and so could never match. */
int sync_set_add(struct sync_set *s, const char *name, char *errmsg);

/* Same k and same names. */
bool sync_set_equal(const struct sync_set *a, const struct sync_set *b);

/* Whether name is one of the set's names. */
bool sync_set_contains(const struct sync_set *s, const char *name);

/* Whether recorded covers s, which is invariant (I) with s as the configured set: every name
 * of s is recorded and s->k >= recorded->k. */
bool sync_set_covers(const struct sync_set *recorded, const struct sync_set *s);

/* The smallest record that covers both a and b: the union of their names with the smaller of
 * their k. out may be a or b. Returns 0, or RPG_EINVAL when the union exceeds FSM_MEMBERS_MAX
 * names (out is then untouched). */
int sync_set_union(const struct sync_set *a, const struct sync_set *b, struct sync_set *out,
                   char *errmsg);

/* Writes the synchronous_standby_names value for s into buf (size bytes): 'ANY 1 ("node2",
 * "node3")', names quoted as identifiers ('"' doubled); "" when k = 0 (asynchronous). Returns 0,
 * or RPG_EINVAL when k > 0 with no name (PostgreSQL has no way to say it) or buf is too small
 * (SYNC_VALUE_MAX always suffices). */
int sync_set_format(const struct sync_set *s, char *buf, size_t size, char *errmsg);

/* Parses a synchronous_standby_names value of the forms sync_set_format writes ('' or
 * 'ANY k ("a", "b")' with k in 1..FSM_MEMBERS_MAX and names in any order), as PostgreSQL
 * reports it with current_setting(). Returns 0, or RPG_EINVAL naming the offset for anything
 * else (FIRST, a bare list, '*', unquoted names, duplicates): such a value was not written by
 * this module, and the caller should treat PostgreSQL as asynchronous (configured k = 0),
 * the weakest assumption, until it has set its own value. */
int sync_set_parse(const char *value, struct sync_set *out, char *errmsg);

/* The recorded set from the replicated state (voters sorted). Returns 0, or RPG_EINVAL for a
 * voter that sync_set_add refuses or a duplicate. */
int sync_set_from_state(const struct fsm_state *state, struct sync_set *out, char *errmsg);

/* Fills *cmd with the FSM_CMD_SET_SYNC command that records s, decided in Raft term term. */
void sync_set_to_cmd(const struct sync_set *s, uint64_t term, struct fsm_cmd *cmd);

/* A standby as the primary sees it. */
struct sync_standby {
    char name[FSM_NAME_MAX];
    bool streaming;          /* its WAL receiver is connected to the primary */
    bool nosync;             /* tagged nosync: never a synchronous standby */
    bool expected;           /* not streaming, but not known to be gone either (it streamed, or
                              * this primary began, less than the degrade grace ago): quorum mode
                              * keeps it in the set rather than degrade (quorum.h) */
    uint64_t flush_position; /* WAL it has flushed, as the primary last heard
                              * (pg_stat_replication.flush_lsn); a lower bound, 0 if unknown */
};

/* The world sync_desired and sync_decide look at. */
struct sync_input {
    enum sync_mode mode;
    uint32_t k_wanted;               /* acknowledgements wanted, 1..FSM_MEMBERS_MAX (not off) */
    uint64_t max_lag_bytes;          /* a standby this far behind the primary or less is
                                      * caught up */
    const char *primary;             /* this member's name: the primary */
    uint64_t primary_flush_position; /* the primary's own flushed WAL position */
    unsigned n_standbys;
    const struct sync_standby *standbys; /* borrowed, n_standbys entries: every other member
                                          * except one being removed; names distinct */
};

/* The set the primary should wait for now, into *out, and whether that falls short of
 * k_wanted healthy standbys (*degraded). A standby is eligible when it is streaming, not
 * nosync, and caught up (primary_flush_position - flush_position <= max_lag_bytes; a standby
 * ahead of the primary is caught up); in quorum mode an expected standby is eligible too. By
 * mode:
 *   off     k = 0, no name: asynchronous, not degraded.
 *   quorum  every eligible standby, k = min(k_wanted, eligible). Degraded when fewer than
 *           k_wanted are eligible; k = 0 (asynchronous) when none is.
 *   strict  k_wanted over the eligible standbys when there are enough. Otherwise, degraded,
 *           k_wanted over every standby that is not nosync, healthy or not, so that writes
 *           block until enough of them are back: never asynchronous. With no such standby at
 *           all, k_wanted over the primary's own name, which never streams from itself, so that
 *           PostgreSQL still blocks; recorded, it says that only the primary holds everything.
 * Returns 0, or RPG_EINVAL (unknown mode, k_wanted out of range, no primary name, a standby
 * named like the primary, a duplicate or unusable name, more than FSM_MEMBERS_MAX standbys). */
int sync_desired(const struct sync_input *in, struct sync_set *out, bool *degraded, char *errmsg);

/* The next step towards desired, in the order of rule 7. */
enum sync_step {
    SYNC_STEP_NONE = 0,  /* recorded, configured and desired agree; nothing to do */
    SYNC_STEP_RECORD,    /* commit decision.set to the Raft log (sync_set_to_cmd) */
    SYNC_STEP_CONFIGURE, /* set synchronous_standby_names to decision.set and reload */
    SYNC_STEP_WAIT,      /* the narrower record waits for voters to flush; why says which */
};

/* "none", "record", "configure", "wait"; "invalid" otherwise. */
const char *sync_step_name(enum sync_step step);

struct sync_decision {
    enum sync_step step;
    struct sync_set set; /* RECORD: the set to record; CONFIGURE: the set to configure */
    char why[SYNC_WHY_MAX];
};

/* Chooses the one next step, given recorded (from the replicated state), configured (parsed
 * from PostgreSQL, k = 0 when asynchronous or not parsed), configured_since and desired (from
 * sync_desired). configured_since is the primary's flush position read once PostgreSQL was seen
 * running with configured: no commit acknowledged under an earlier value lies above it. The
 * caller reads it again whenever the observed value changes, after current_setting shows the
 * new value and each WAL sender has handled one more standby reply: a WAL sender applies a
 * reload at the top of its loop, so until then it may release commits once more under the old
 * value. Of in, only primary and the standbys' flush positions are used.
 *   1. Recorded does not cover desired or configured: RECORD the union of the three sets with
 *      the smallest of their k.
 *   2. Configured differs from desired: CONFIGURE desired.
 *   3. Recorded differs from desired (with k lowered to the number of names, the most a record
 *      can claim): RECORD it once that many of its names have flushed up to configured_since
 *      (the primary counts as flushed), else WAIT.
 *   Otherwise NONE.
 * Applied until NONE, it ends with configured = desired and recorded = desired (k lowered as
 * above) after at most three steps, and keeps invariant (I) after each step when it held
 * before. Returns 0, or RPG_EINVAL when a set is malformed (unsorted, duplicate or unterminated
 * names, n out of range) or a union would exceed FSM_MEMBERS_MAX names. */
int sync_decide(const struct sync_input *in, const struct sync_set *recorded,
                const struct sync_set *configured, uint64_t configured_since,
                const struct sync_set *desired, struct sync_decision *out, char *errmsg);

/* How many members of the recorded voters a new leader must hear from, itself included, to be
 * sure one of them holds every acknowledged commit: |V| - k + 1. *provable is false, and 0
 * returned, when k = 0 (asynchronous or degraded: no member but the old primary provably holds
 * every commit) or k > |V| (not a record sync_decide makes). */
unsigned sync_quorum_needed(const struct sync_set *recorded, bool *provable);

/* Whether a new leader that heard from the members named in heard (n_heard names, itself
 * included; duplicates and non-voters are ignored) may promote without losing an acknowledged
 * commit (rule 6). Explains in why either way, e.g. "heard from 1 of the synchronous voters
 * (node2, node3) with k=1: need 2". When the record proves nothing (k = 0) it is false: the
 * caller decides by the sync mode whether to promote anyway (off) or to wait for the old
 * primary or an operator (quorum, strict). */
bool sync_candidate_ok(const struct sync_set *recorded, const char *const *heard, unsigned n_heard,
                       char *why, size_t why_size);

/* The cluster-wide synchronous settings in force: the replicated ones once a leader recorded
 * them (recorded), this member's file defaults (file_*) until then. Commit levels are
 * FSM_SYNC_COMMIT_*. */
struct sync_settings {
    enum sync_mode mode;
    unsigned k;
    int commit;
    bool recorded;
};
/* maximum_lag_on_failover in force, as the synchronous settings: the recorded configuration's
 * once it is recorded (state->config.set), this member's file value (file_set, file_lag) until
 * then. *set false: no limit. */
void sync_max_lag_in_force(const struct fsm_state *state, bool file_set, uint64_t file_lag,
                           bool *set, uint64_t *lag);
void sync_settings_in_force(const struct fsm_state *state, int file_mode, unsigned file_k,
                            int file_commit, struct sync_settings *out);

/* Whether member name is still in a synchronous set: a recorded voter, or named in configured,
 * the synchronous_standby_names the primary runs with (NULL: unknown). A member leaves both
 * before its removal is committed (rule 7). */
bool sync_member_in_sets(const struct fsm_state *state, const char *configured, const char *name);

/* The wait of a member removal for the member to leave the synchronous sets: one tick every
 * SYNC_LEAVE_TICK_MS, at most SYNC_LEAVE_MAX_TICKS (30 s). */
#define SYNC_LEAVE_TICK_MS 100
#define SYNC_LEAVE_MAX_TICKS 300
enum sync_leave {
    SYNC_LEAVE_WAIT = 0,   /* still in a set: tick again */
    SYNC_LEAVE_REMOVE,     /* out of every set: commit the removal now */
    SYNC_LEAVE_NOT_LEADER, /* leadership changed: give up (the caller answers 503) */
    SYNC_LEAVE_TIMEOUT,    /* still in a set after the last tick: give up */
};
/* One tick; *ticks counts them (start at 0). */
enum sync_leave sync_leave_tick(bool leader, bool in_sets, unsigned *ticks);

/* How the leader begins a removal of name (the agent's API and the simulation's operator):
 * removing is the removal waiting for its member to leave the synchronous sets ("" none). */
enum sync_remove_start {
    SYNC_REMOVE_NOW = 0,     /* in no set: commit the removal at once */
    SYNC_REMOVE_LEAVE_FIRST, /* wait for it to leave the sets first (sync_leave_tick) */
    SYNC_REMOVE_BUSY,        /* another member's removal waits already: one at a time */
    SYNC_REMOVE_ALREADY,     /* this member's removal waits already */
    SYNC_REMOVE_SWITCHOVER,  /* a switchover to this member is under way */
};
/* switchover_to: the candidate of the switchover under way on this leader ("" or NULL: none). */
enum sync_remove_start sync_remove_start(const char *removing, const char *name, bool in_sets,
                                         const char *switchover_to);

#endif
