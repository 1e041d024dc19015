/* The guard: a small process the agent starts beside itself, which fences the node if the agent
 * dies while it may not be fenced (DESIGN.md rules 2 and 5).
 *
 * The lease fences a live agent's PostgreSQL; nothing fences for an agent killed with kill -9 or
 * crashed, and the watchdog (when there is one) only resets the node a second or more later. The
 * guard reads one byte at a time from a pipe whose write end only the agent holds: 'U' (unfenced:
 * PostgreSQL may accept writes, or the VIP may be on this node) or 'F' (fenced). When the pipe
 * ends (the agent is gone, however it went) and the last byte was 'U', it does what the agent's
 * fence does: SIGINT to the postmaster, SIGQUIT after the escalation bound, and `ip addr del` of
 * the VIP. It ignores SIGINT, SIGTERM and SIGHUP (a terminal's signals reach the whole process
 * group; the agent's own shutdown fences first) and lives in its own session. Only SIGKILL of the
 * guard itself, or losing the node, defeats it: the VIP's lifetime and the watchdog remain. */
#ifndef RAFTPG_GUARD_H
#define RAFTPG_GUARD_H

#include <limits.h>
#include <stdbool.h>

#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"

/* The agent's side. The process is created in libuv's thread pool, as proc.c does (a spawn waits
 * until the child has executed the program, tens of milliseconds on a loaded machine, which the
 * loop and the lease it keeps cannot spend); its exit is watched through a pidfd. */
struct guard {
    uv_loop_t *loop;
    uv_work_t spawn;
    uv_pipe_t pipe;      /* the write end, the agent's only */
    uv_poll_t exit_poll; /* on the pidfd */
    char exe[PATH_MAX];
    char config[PATH_MAX];
    int read_fd;  /* the guard's end until the worker has handed it over and closed it */
    int spawn_rc; /* the worker's results, read once it is done */
    int spawn_pid;
    int spawn_pidfd;
    int pid;       /* 0 until the spawn is done */
    int pidfd;     /* -1 when none */
    bool spawning; /* the worker has not reported yet */
    bool running;  /* the exit is watched */
    bool pipe_open;
    bool exited; /* the guard process is gone, or could not be started */
    char last;   /* last byte sent, 0 before the first */
    int n_open;  /* handles not closed yet, and the spawn while pending */
    void (*close_cb)(struct guard *g);
};

/* Starts `SELF guard -c CONFIG` (SELF: this executable) with the pipe on its stdin, off the loop.
 * Returns 0, or an RPG_E* code with errmsg when the pipe or the work cannot be set up. A spawn
 * that fails later is logged and the guard counts as exited (guard_set then returns false);
 * bytes sent before the guard runs wait in the pipe. */
int guard_start(struct guard *g, uv_loop_t *loop, const char *config_path, char *errmsg);

/* Tells the guard whether the node is fenced; sends a byte only on a change (and again after a
 * failed write). Returns false when the guard is not running (it died: the caller may restart). */
bool guard_set(struct guard *g, bool unfenced);

/* Closes the pipe (the guard sees the end and acts on the last state) and the handles. */
void guard_close(struct guard *g, void (*cb)(struct guard *g));

/* The guard process: `raftpg guard -c FILE`. */
int guard_main(int argc, char **argv);

#endif
