/* External programs on the loop: spawned by argv (no shell) off the loop, bounded by a timeout,
 * their output kept for error messages. The exit is an event like any other (DESIGN.md §1). */
#ifndef RAFTPG_PROC_H
#define RAFTPG_PROC_H

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "raftpg/err.h"

/* How much of the combined stdout+stderr is kept: the last PROC_OUTPUT_MAX - 1 bytes. A failed
 * pg_rewind (with its crash recovery) or pg_basebackup says why well within this; callers that log
 * the output whole say when the start was cut off (output_wrapped). */
#define PROC_OUTPUT_MAX 16384

/* Time between SIGTERM and SIGKILL after a timeout, unless proc.kill_grace_ms says otherwise. */
#define PROC_KILL_GRACE_MS 2000

struct proc;

/* Outcome of a finished program. exit_status is valid when term_signal is 0 (-1 after a spawn
 * error). timed_out: the program ran past its timeout and was killed (SIGTERM, then SIGKILL
 * after kill_grace_ms). spawn_error: the spawn itself failed (e.g. no such file); proc_describe
 * then says why. output is the tail of what the program printed, NUL-terminated, trailing
 * newlines removed (borrowed, valid during the callback only). */
struct proc_result {
    int exit_status;
    int term_signal;
    bool timed_out;
    int spawn_error; /* 0 or a libuv error code */
    rpg_msec elapsed_ms;
    const char *output;
};

/* Fires exactly once per successful proc_run, from the loop, after every handle of the run is
 * closed; p may be reused or freed inside the callback. */
typedef void (*proc_cb)(struct proc *p, const struct proc_result *res, void *data);

/* One program run at a time. Zero it before its first run; the fields are the module's except
 * kill_grace_ms, which the caller may set (0 means PROC_KILL_GRACE_MS). */
struct proc {
    uv_loop_t *loop;
    /* The spawn runs in libuv's thread pool: creating a process waits until the child has
     * executed the program, tens of milliseconds on a loaded machine, which the loop (and the
     * lease it keeps) cannot spend. The exit is watched through a pidfd. */
    uv_work_t spawn;
    char **spawn_argv; /* deep copies for the worker, freed when the spawn is done */
    char **spawn_env;
    int spawn_out; /* the child's end of the output pipe, closed by the worker */
    int spawn_rc;  /* the worker's results, read once it is done */
    int spawn_pid;
    int spawn_pidfd;
    int pid;          /* 0 until the spawn is done */
    int pidfd;        /* -1 when none */
    int kill_pending; /* a proc_kill signal that came while spawning */
    uv_poll_t exit_poll;
    uv_pipe_t out;
    uv_timer_t timer;
    int n_open; /* handles not closed yet */
    bool running;
    bool exited;
    bool timed_out;
    int64_t exit_status;
    int term_signal;
    int spawn_error;
    uint64_t start_ms;
    unsigned timeout_ms;
    unsigned kill_grace_ms;
    char output[PROC_OUTPUT_MAX];
    size_t output_len; /* ring write position while running, text length in the callback */
    bool output_wrapped;
    char name[64]; /* basename of argv[0], for messages */
    proc_cb cb;
    void *data;
};

/* Runs argv[0] (a path; PATH is not searched unless argv[0] has no '/'), with argv and extra
 * environment entries env ("KEY=value", NULL-terminated, may be NULL: the agent's environment is
 * inherited and env entries are added or override). stdin is /dev/null, stdout and stderr are
 * captured together. timeout_ms 0 means no timeout. The child runs in a new process group so a
 * timeout kills its children too. The run ends once the program has exited and its output reached
 * end of file, or 100 ms after the exit if a child it left behind holds the output open. argv
 * and env are borrowed until return. Returns 0 and will call cb once; or, with errmsg and cb not
 * called, RPG_EBUSY if p is running, RPG_EINVAL if argv is empty, RPG_ENOMEM, or RPG_EIO if the
 * output pipe could not be created. A failed spawn (missing binary) is reported through cb
 * with spawn_error set, so callers handle one path. */
int proc_run(struct proc *p, uv_loop_t *loop, char *const argv[], char *const env[],
             unsigned timeout_ms, proc_cb cb, void *data, char *errmsg);

/* While p runs: copies the most recent output (at most size - 1 bytes, oldest first) into buf,
 * NUL-terminated, for progress reports; "" when nothing came yet. Returns the length copied. */
size_t proc_output_peek(const struct proc *p, char *buf, size_t size);

/* Sends sig to the running program's process group; no-op if not running or already exited. */
void proc_kill(struct proc *p, int sig);

/* Describes a result in one line for logs and errors: "pg_ctl exited 1: <last output line>",
 * "initdb killed by signal 9", "pg_rewind timed out after 60000 ms", "cannot run pg_ctl: ...". */
void proc_describe(const struct proc *p, const struct proc_result *res, char *buf, size_t size);

/* Whether process pid runs: it exists and is not a zombie. A daemon that is not our child (the
 * postmaster after pg_ctl) stays a zombie until init reaps it, which can take a while. */
bool proc_alive(int pid);

/* For a worker thread: starts argv[0] (looked up in PATH when it has no '/', as execvp) in a new
 * session with default signal dispositions and an empty mask, with the caller's file actions, and
 * opens its pidfd. 0 with *pid and *pidfd set, or an errno value (a child that started but cannot
 * be watched is killed and reaped). */
int proc_spawn_session(char *const argv[], char *const env[], const posix_spawn_file_actions_t *fa,
                       pid_t *pid, int *pidfd);

/* The state letter and the parent of process pid, from /proc/PID/stat (its command name, in
 * parentheses, may hold spaces and parentheses: read from the last ')'). False when it is gone
 * or the file does not read as expected. */
bool proc_stat(long pid, char *state, long *ppid);

/* True when the result is a clean exit 0. */
static inline bool proc_ok(const struct proc_result *res)
{
    return res->spawn_error == 0 && !res->timed_out && res->term_signal == 0 &&
           res->exit_status == 0;
}

#endif
