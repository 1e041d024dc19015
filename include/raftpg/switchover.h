/* Switchover (DESIGN.md rule 8): a planned move of the primary to a caught-up standby, asked of
 * the leader (POST /switchover, raftpg ctl switchover). The leader stops taking writes by
 * stopping its PostgreSQL cleanly (a fast shutdown lets the walsenders send everything first),
 * reads the final checkpoint from its control file, waits until the candidate's own report says
 * it received WAL past it, then hands Raft leadership to the candidate, which promotes it as in
 * any failover (with every acknowledged commit, by construction). If any step fails in time, the
 * old primary starts again as primary and the request gets the reason. Before the stop, the
 * on_switchover callback runs (when configured) and the stop waits for it: a pgbouncer hook
 * pauses its clients there; a failed one abandons the switchover, and an abandoned switchover
 * fires on_switchover_abandoned so that the hook resumes them. */
#ifndef RAFTPG_SWITCHOVER_H
#define RAFTPG_SWITCHOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/err.h"
#include "raftpg/fsm_state.h"
#include "raftpg/switchover_step.h"

struct http_conn;
struct agent;

struct switchover {
    struct switchover_mem m; /* phase, from, to, ... (switchover_step.h; loop clock) */
    struct http_conn *conn;  /* the request to answer, NULL once answered */
    bool hook_ran; /* on_switchover was started: abandoning fires on_switchover_abandoned */
    uv_timer_t timer;
    bool timer_open;
    char last[256]; /* the last switchover's outcome, for /status */
    /* The last handover of Raft leadership: to whom, in which term (this member's term as
     * leader). Peers read it to record the new primary's promotion as a switchover. */
    char handed_to[FSM_NAME_MAX];
    uint64_t handed_term;
    /* This primary was stopped by a switchover in maintenance mode: until its server runs again
     * (or the pause ends), maintenance mode lets this agent start it again, as the primary it
     * still is after an abandon, or as a standby of the new one (switchover_paused_allows). */
    bool paused_stop;
};

/* Starts a switchover on this (leading) agent, answering conn when it is over. leader: the
 * member the caller believes is primary (NULL: any); candidate: NULL for the best. */
void switchover_start(struct agent *a, struct http_conn *conn, const char *leader,
                      const char *candidate);

/* Starts a scheduled switchover (schedule.h) on this (leading) agent: the same checks and steps
 * as switchover_start, with no request to answer; the outcome is logged and kept in last.
 * Returns 0 when it started, or the HTTP status of the refusal (409, 412, 503) with it in why. */
int switchover_start_scheduled(struct agent *a, const char *leader, const char *candidate,
                               char *why, size_t why_size);

/* Called with each member's report: a switchover waiting for its candidate to catch up looks at
 * it at once. */
void switchover_on_report(struct agent *a);

/* The actions maintenance mode lets through for a primary this agent stopped for a switchover
 * (core_view allowed bits, 0: none): starting it again as primary while it is still the
 * recorded one, or its rejoin as a standby once another member is (Patroni's demote in a
 * manual switchover while paused). Ends once its server runs or the pause ends. */
unsigned switchover_paused_allows(struct agent *a);

/* True while this agent's decisions must wait: between stopping its primary and losing
 * leadership (or giving up). */
bool switchover_holds(const struct agent *a);

/* Ends any switchover for shutdown (answers its request) and closes the timer. */
void switchover_close(struct agent *a, void (*cb)(uv_handle_t *h));

#endif
