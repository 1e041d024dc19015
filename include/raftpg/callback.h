/* Patroni's postgresql.callbacks: a user's command run when this member's PostgreSQL starts,
 * stops or changes role, as COMMAND [ARGS...] ACTION ROLE SCOPE. What happened is taken from the
 * server as observed (running, in recovery), never from what the agent asked for. Callbacks run
 * asynchronously on the loop, one at a time: a newer event kills a callback still running (its
 * news is stale) and runs after it; a callback past postgresql.callback_timeout is killed. None
 * ever delays a fence or a promotion. */
#ifndef RAFTPG_CALLBACK_H
#define RAFTPG_CALLBACK_H

#include <stdbool.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"
#include "raftpg/proc.h"

enum callback_action {
    CALLBACK_NONE = -1,
    CALLBACK_ON_START = 0,
    CALLBACK_ON_STOP,
    CALLBACK_ON_RESTART,
    CALLBACK_ON_RELOAD,
    CALLBACK_ON_ROLE_CHANGE,
    /* raftpg's own, fired by a switchover on its primary (never from observation). */
    CALLBACK_ON_SWITCHOVER,
    CALLBACK_ON_SWITCHOVER_ABANDONED,
};
const char *callback_action_name(enum callback_action a);

/* What the server was last seen doing, to turn observations into events. Pure. */
struct callback_tracker {
    bool known;    /* a first observation was made: it is the baseline, no event */
    bool running;  /* accepting connections */
    bool primary;  /* running (or last ran) as primary */
    bool ever_ran; /* it ran at least once since the baseline or in it */
};

/* Feeds one observation (running: accepts connections; known: the observer has a result at
 * all). Returns the event it makes, with *role "primary" or "replica":
 * running -> not running: on_stop (the role it had); not running -> running: on_start, or
 * on_role_change when it comes back in another role than it last ran in; running with the other
 * role: on_role_change. The first observation is the baseline and makes none. */
enum callback_action callback_track(struct callback_tracker *t, bool known, bool running,
                                    bool in_recovery, const char **role);

/* Splits a configured command on blanks into argv (at most max - 4 words, leaving room for
 * ACTION ROLE SCOPE and the NULL), writing into buf. Returns the word count, or 0 if empty or
 * too long. */
int callback_argv(const char *command, char *buf, size_t size, char **argv, int max);

struct callbacks {
    uv_loop_t *loop;
    const struct conf *conf;
    struct proc proc;
    bool running;
    bool closing;
    void (*close_cb)(struct callbacks *cb);
    bool has_pending;
    enum callback_action pending;
    char pending_role[16];
    enum callback_action current;
    char current_role[16];
    unsigned n_runs, n_failed;
    char last[RPG_ERRMSG_SIZE + 64]; /* the last finished callback's outcome, for /status */
    struct callback_tracker tracker;
    /* A restart the operator asked for runs: its stop makes no on_stop, its start on_restart. */
    bool restarting;
    /* One run someone waits for (callbacks_fire_wait): its action, and whether it started. */
    void (*wait_cb)(void *data, bool ok, const char *what);
    void *wait_data;
    enum callback_action wait_action;
    bool wait_started;
};

void callbacks_init(struct callbacks *cb, uv_loop_t *loop, const struct conf *conf);

/* Runs the command configured for action (nothing if none), now or after the running one. */
void callbacks_fire(struct callbacks *cb, enum callback_action action, const char *role);

/* As callbacks_fire, and calls on_done exactly once when that run ends: ok if it exited 0; not ok
 * if it failed, timed out, could not start, or was killed or replaced by a newer event. Returns
 * RPG_ENOTFOUND (on_done is never called) if no command is configured for action or the callbacks
 * are closing, RPG_EBUSY if a waited run is already under way. Closing drops the waiter without
 * calling it. */
int callbacks_fire_wait(struct callbacks *cb, enum callback_action action, const char *role,
                        void (*on_done)(void *data, bool ok, const char *what), void *data);

/* Feeds an observation to the tracker and fires the event it makes. */
void callbacks_observe(struct callbacks *cb, bool known, bool running, bool in_recovery);

/* Kills a running callback; close_cb fires once nothing runs (at once if nothing does). */
void callbacks_close(struct callbacks *cb, void (*close_cb)(struct callbacks *cb));

#endif
