/* Scheduled switchovers (Patroni's POST /switchover {"scheduled_at"}): the time, the primary to
 * move from and the candidate are a Raft entry (fsm_state.h SCHEDULE_SWITCHOVER), so whichever
 * member leads at that time runs it, and every member shows it. At the time the leader first
 * clears the entry (CLEAR_SWITCHOVER names the time it clears, so a late one never drops a newer
 * schedule), then runs the ordinary switchover (switchover.h): whatever the outcome, it runs
 * once. As in Patroni, a schedule is left alone during maintenance mode, and dropped with a log
 * line when its primary is no longer the primary, when its candidate already is, or when it is
 * found more than SCHEDULE_STALE_MS late. */
#ifndef RAFTPG_SCHEDULE_H
#define RAFTPG_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"

/* A schedule found this late is stale (Patroni: 1.5 loop_wait, 15 s by default). */
#define SCHEDULE_STALE_MS 15000

/* Parses an ISO 8601 time: YYYY-MM-DD, then T or a space, HH:MM, optional :SS and fraction,
 * then a zone: Z, +HH, +HHMM or +HH:MM (or -). Without a zone: RPG_EINVAL, unless local is true
 * (the local time zone then, as patronictl). Returns 0 with *ms since the Unix epoch, or
 * RPG_EINVAL with errmsg saying what is wrong and where. */
int schedule_parse_time(const char *text, bool local, int64_t *ms, char *errmsg);

/* Writes ms (since the epoch) as ISO 8601 in UTC: "2026-12-06T17:30:00.000+00:00". */
void schedule_format_time(int64_t ms, char *buf, size_t size);

enum schedule_verdict {
    SCHEDULE_NONE = 0,       /* nothing is scheduled */
    SCHEDULE_WAIT,           /* not yet, or maintenance mode */
    SCHEDULE_RUN,            /* due: clear it and switch over */
    SCHEDULE_DROP_STALE,     /* found too late: clear it without switching over */
    SCHEDULE_DROP_LEADER,    /* its primary no longer is: clear it */
    SCHEDULE_DROP_ALREADY,   /* its candidate is the primary already: clear it */
    SCHEDULE_DROP_RESTARTED, /* a restart: the server was started again since: clear it */
};
const char *schedule_verdict_name(enum schedule_verdict v);

/* What the leader does with s's schedule at wall-clock now_ms, with the reason in why. */
enum schedule_verdict schedule_decide(const struct fsm_state *s, int64_t now_ms, char *why,
                                      size_t why_size);

/* A due switchover whose entry was cleared, but whose start was refused for a moment (a
 * checkpoint or reload the core began as the clear committed, a record not raised yet: 503), is
 * started again on a later tick: SCHEDULE_RUN to try now, SCHEDULE_WAIT while this member is not
 * the settled primary, or a drop as schedule_decide's (stale, from a member no longer primary,
 * to the primary already), and SCHEDULE_DROP_LEADER once this member no longer leads (the entry
 * is gone from the log: no other leader runs it). Why says so. */
enum schedule_verdict schedule_retry_decide(const struct fsm_switchover *due,
                                            const struct fsm_state *s, bool leading, bool settled,
                                            int64_t now_ms, char *why, size_t why_size);

/* Whether a due switchover refused with this HTTP status is tried again (503: not settled yet). */
bool schedule_retry_refusal(int status);

struct schedule {
    bool clearing;                 /* a CLEAR_SWITCHOVER is on its way through Raft */
    enum schedule_verdict verdict; /* what follows once it is committed */
    struct fsm_switchover entry;   /* the schedule being cleared */
    char waiting[RPG_ERRMSG_SIZE]; /* why a due switchover waits ("" none), logged once */
    bool retrying;                 /* entry is cleared, due, and its start was refused (503) */
};

/* A member's scheduled restart (Patroni's POST /restart {"schedule"}): kept by that member's
 * agent in memory, shown in its status report (which every member polls, so every /cluster and
 * `ctl list` shows it), run through the ordinary restart (restart.h) at its time with its
 * conditions checked then, and lost if the agent restarts (as Patroni's). */
struct restart_schedule {
    int64_t at_ms;       /* wall clock, since the epoch; 0: none */
    char role[16];       /* "" any, "primary" or "replica" */
    bool pending;        /* only if a setting waits for a restart */
    int below_version;   /* only if the server's version number is below it; 0: any */
    unsigned timeout_s;  /* the restart's timeout (0: none) */
    char start_time[48]; /* pg_postmaster_start_time() when it was scheduled ("" unknown) */
};

/* What the member does with its scheduled restart at wall-clock now_ms: as for a switchover
 * (nothing while paused, run once due, drop when more than SCHEDULE_STALE_MS late), and
 * SCHEDULE_DROP_RESTARTED when the server runs with another start time than when it was
 * scheduled (start_time, "" when not running: not compared). Why says so. */
enum schedule_verdict restart_schedule_decide(const struct restart_schedule *r, int64_t now_ms,
                                              bool paused, const char *start_time, char *why,
                                              size_t why_size);

/* Patroni's postgres_version: "MAJOR.MINOR" (10 and later) or "9.X.Y", into PostgreSQL's
 * server_version_num (150004, 90624). Returns 0, or RPG_EINVAL with errmsg saying what is
 * wrong. */
int schedule_parse_pg_version(const char *text, int *num, char *errmsg);

/* Patroni's restart timeout: a whole number of seconds, as a number or a string with an
 * optional unit ("30", "30s", "2min", "1h"), 1..SCHEDULE_TIMEOUT_MAX_S. Returns 0, or RPG_EINVAL
 * with errmsg saying what is wrong. */
#define SCHEDULE_TIMEOUT_MAX_S 86400
int schedule_parse_timeout(const char *text, unsigned *seconds, char *errmsg);

struct agent;

/* On the ready leader, from the agent's HA tick (not in maintenance mode): acts on the verdict
 * above. A due switchover waits while this member does not run as a settled primary (a leader
 * just elected, say), up to SCHEDULE_STALE_MS. */
void schedule_tick(struct agent *a);

/* On every member, from the agent's HA tick (not in maintenance mode): runs or drops its own
 * scheduled restart (a->restart.sched) per restart_schedule_decide. */
void restart_schedule_tick(struct agent *a);

#endif
