/* The guard (guard.h): the agent's side starts it and keeps it told; guard_main is the process. */
#include "raftpg/guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/pg.h"
#include "raftpg/proc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

#define GUARD_IP_TIMEOUT_MS 5000
#define GUARD_POLL_MS 5

/* ---- the agent's side ------------------------------------------------------------------------ */

static void maybe_closed(struct guard *g)
{
    if (g->n_open == 0 && g->close_cb != NULL) {
        void (*cb)(struct guard *) = g->close_cb;
        g->close_cb = NULL;
        cb(g);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct guard *g = h->data;
    g->n_open--;
    maybe_closed(g);
}

static void exit_poll_closed(uv_handle_t *h)
{
    struct guard *g = h->data;
    if (g->pidfd >= 0) {
        close(g->pidfd);
        g->pidfd = -1;
    }
    on_handle_closed(h);
}

/* The pidfd is readable once the guard has exited: reap it. */
static void on_guard_exit(uv_poll_t *h, int status, int events)
{
    struct guard *g = h->data;
    (void)status;
    (void)events;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (syscall(SYS_waitid, P_PIDFD, g->pidfd, &si, WEXITED | WNOHANG, NULL) != 0) {
        if (errno == EINTR) {
            return;
        }
        si.si_code = CLD_KILLED; /* nothing to reap (ECHILD): it is gone */
        si.si_status = SIGKILL;
        si.si_pid = g->pid;
    }
    if (si.si_pid == 0) {
        return; /* not yet */
    }
    g->exited = true;
    if (g->close_cb == NULL) {
        log_error("guard exited (status %d, signal %d): nothing fences this node if the agent "
                  "dies now",
                  si.si_code == CLD_EXITED ? si.si_status : 0,
                  si.si_code == CLD_EXITED ? 0 : si.si_status);
    }
    if (g->running) {
        g->running = false;
        uv_close((uv_handle_t *)&g->exit_poll, exit_poll_closed);
    }
}

/* Worker thread: starts the guard in its own session (a terminal's Ctrl-C goes to the agent,
 * which fences on its own) with default signal dispositions and an empty mask, the pipe's read
 * end as its stdin, the agent's stdout and stderr; opens its pidfd. */
static void guard_spawn_work(uv_work_t *w)
{
    struct guard *g = w->data;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* The read end is close-on-exec (no other child may hold it): dup2 clears that on fd 0. */
    posix_spawn_file_actions_adddup2(&fa, g->read_fd, 0);
    char *argv[] = {g->exe, "guard", "-c", g->config, NULL};
    pid_t pid = 0;
    int pidfd = -1;
    g->spawn_rc = proc_spawn_session(argv, environ, &fa, &pid, &pidfd);
    posix_spawn_file_actions_destroy(&fa);
    /* The guard holds its end now (or nobody will): a write after it is gone fails (EPIPE). */
    close(g->read_fd);
    g->read_fd = -1;
    g->spawn_pid = pid;
    g->spawn_pidfd = pidfd;
}

/* Back on the loop: watch the guard's exit, or say it could not be started. */
static void guard_spawn_done(uv_work_t *w, int status)
{
    struct guard *g = w->data;
    g->spawning = false;
    g->n_open--;
    g->pid = g->spawn_pid;
    g->pidfd = g->spawn_pidfd;
    int rc = status != 0 ? -status : g->spawn_rc;
    if (rc == 0 && g->close_cb == NULL) {
        int urc = uv_poll_init(g->loop, &g->exit_poll, g->pidfd);
        if (urc == 0) {
            g->exit_poll.data = g;
            g->running = true;
            g->n_open++;
            urc = uv_poll_start(&g->exit_poll, UV_READABLE, on_guard_exit);
            if (urc != 0) {
                g->running = false;
                uv_close((uv_handle_t *)&g->exit_poll, exit_poll_closed);
                g->pid = 0; /* the close callback closes the pidfd; the guard ends at EOF */
            }
        } else {
            close(g->pidfd);
            g->pidfd = -1;
        }
        if (urc != 0) {
            g->exited = true;
            log_error("guard: cannot watch pid %d: %s: nothing fences this node if the agent "
                      "dies now",
                      g->spawn_pid, uv_strerror(urc));
        } else {
            log_info("guard started (pid=%d)", g->pid);
        }
    } else if (rc == 0) {
        /* Closed while it started: it has seen or will see the end of the pipe and act on the
         * last byte; it is not watched. */
        close(g->pidfd);
        g->pidfd = -1;
        waitpid(g->pid, NULL, WNOHANG);
    } else {
        g->exited = true;
        log_error("guard: cannot start %s: %s: nothing fences this node if the agent dies now",
                  g->exe, strerror(rc));
    }
    maybe_closed(g);
}

int guard_start(struct guard *g, uv_loop_t *loop, const char *config_path, char *errmsg)
{
    memset(g, 0, sizeof *g);
    g->loop = loop;
    g->read_fd = -1;
    g->pidfd = -1;
    size_t size = sizeof g->exe;
    int rc = uv_exepath(g->exe, &size);
    if (rc != 0) {
        return rpg_err(errmsg, RPG_EIO, "guard: cannot find this executable: %s", uv_strerror(rc));
    }
    if (strlen(config_path) >= sizeof g->config) {
        return rpg_err(errmsg, RPG_EINVAL, "guard: configuration path too long: %s", config_path);
    }
    snprintf(g->config, sizeof g->config, "%s", config_path);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return rpg_err(errmsg, RPG_EIO, "guard: pipe: %s", strerror(errno));
    }
    rc = uv_pipe_init(loop, &g->pipe, 0);
    if (rc == 0) {
        rc = uv_pipe_open(&g->pipe, fds[1]); /* makes it non-blocking */
        if (rc != 0) {
            uv_close((uv_handle_t *)&g->pipe, NULL); /* g is not reused before the next turn */
        }
    }
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        return rpg_err(errmsg, RPG_EIO, "guard: pipe: %s", uv_strerror(rc));
    }
    g->pipe.data = g;
    g->pipe_open = true;
    g->n_open = 1;
    g->read_fd = fds[0];
    g->spawn.data = g;
    rc = uv_queue_work(loop, &g->spawn, guard_spawn_work, guard_spawn_done);
    if (rc != 0) {
        close(g->read_fd);
        g->read_fd = -1;
        g->pipe_open = false;
        uv_close((uv_handle_t *)&g->pipe, on_handle_closed);
        return rpg_err(errmsg, RPG_EIO, "guard: cannot start %s: %s", g->exe, uv_strerror(rc));
    }
    g->spawning = true;
    g->n_open++;
    return 0;
}

bool guard_set(struct guard *g, bool unfenced)
{
    /* While it starts, the byte waits in the pipe. */
    if (g->exited || !g->pipe_open || (!g->running && !g->spawning)) {
        return false;
    }
    char c = unfenced ? 'U' : 'F';
    if (c == g->last) {
        return true;
    }
    uv_buf_t b = uv_buf_init(&c, 1);
    int rc = uv_try_write((uv_stream_t *)&g->pipe, &b, 1);
    if (rc == 1) {
        g->last = c;
        return true;
    }
    /* A full pipe (EAGAIN) only delays: the next tick sends again. */
    return rc == UV_EAGAIN;
}

void guard_close(struct guard *g, void (*cb)(struct guard *g))
{
    g->close_cb = cb;
    if (g->n_open == 0) {
        maybe_closed(g);
        return;
    }
    if (g->pipe_open) {
        g->pipe_open = false;
        uv_close((uv_handle_t *)&g->pipe, on_handle_closed);
    }
    if (g->running) {
        g->running = false;
        /* The process lives on until it has read the end of the pipe; only the watch goes (it
         * is reaped here if it is gone already). */
        if (g->exited || waitpid(g->pid, NULL, WNOHANG) == g->pid) {
            g->exited = true;
        }
        uv_close((uv_handle_t *)&g->exit_poll, exit_poll_closed);
    }
    /* A spawn still pending ends in guard_spawn_done, which calls back. */
}

/* ---- the guard process ----------------------------------------------------------------------- */

static rpg_msec mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rpg_msec)ts.tv_sec * 1000u + (rpg_msec)(ts.tv_nsec / 1000000);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* What the agent's fence does: SIGINT (no new sessions, every session ends), SIGQUIT after the
 * escalation bound; each followed by SIGCONT, as the agent may have died while its soft layer
 * held the server stopped. */
static void fence_postgresql(const struct conf *c)
{
    int pid = pg_postmaster_pid_in(c->postgresql.data_dir, NULL, 0);
    if (pid == 0) {
        log_info("guard: no postgresql running in %s", c->postgresql.data_dir);
        return;
    }
    struct fence_timing t;
    fence_timing_init(&t, c->raft.election_timeout_ms);
    rpg_msec start = mono_ms();
    log_warning("guard: the agent is gone while postgresql may accept writes: stopping it "
                "(pid=%d)",
                pid);
    kill(pid, SIGINT);
    pg_signal_server(pid, SIGCONT);
    bool escalated = false;
    for (int i = 0; i < 2000 && proc_alive(pid); i++) {
        if (!escalated && mono_ms() - start >= t.escalate_ms) {
            log_warning("guard: fast stop not done after %llu ms: immediate stop (pid=%d)",
                        (unsigned long long)(mono_ms() - start), pid);
            kill(pid, SIGQUIT);
            pg_signal_server(pid, SIGCONT);
            escalated = true;
        }
        sleep_ms(GUARD_POLL_MS);
    }
    log_info("guard: postgresql %s %llu ms after the fence began",
             proc_alive(pid) ? "still runs" : "stopped", (unsigned long long)(mono_ms() - start));
}

static void release_vip(const struct conf *c)
{
    char *argv[] = {
        (char *)c->vip.ip_bin,    "-4", "addr", "del", (char *)c->vip.address.text, "dev",
        (char *)c->vip.interface, NULL};
    char *env[] = {"LC_ALL=C", NULL};
    pid_t pid = fork();
    if (pid < 0) {
        log_error("guard: cannot release the vip: fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execve(argv[0], argv, env);
        _exit(127);
    }
    rpg_msec start = mono_ms();
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (mono_ms() - start > GUARD_IP_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            log_error("guard: ip addr del %s timed out", c->vip.address.text);
            return;
        }
        sleep_ms(GUARD_POLL_MS);
    }
    /* "Address not found" (exit 2) means it was already gone. */
    log_info("guard: vip %s %s", c->vip.address.text,
             WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "released"
                                                           : "was not on the interface");
}

int guard_main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: raftpg guard -c FILE\n"
                   "Started by the agent, never by hand: fences the node when the agent dies\n"
                   "while PostgreSQL may accept writes or the VIP may be on this node.\n");
            return 0;
        } else {
            fprintf(stderr, "raftpg guard: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "raftpg guard: -c FILE is required\n");
        return 2;
    }
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    static struct conf c;
    char errmsg[RPG_ERRMSG_SIZE];
    if (conf_load(path, &c, errmsg) != 0) {
        fprintf(stderr, "raftpg guard: %s\n", errmsg);
        conf_free(&c);
        return 1;
    }
    log_setup(c.name, (enum log_level)c.log.level, c.log.format == CONF_LOG_JSON);

    char last = 'F';
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == 'U' || buf[k] == 'F') {
                last = buf[k];
            }
        }
    }
    if (last == 'U') {
        if (c.has_postgresql) {
            fence_postgresql(&c);
        }
        if (c.has_vip) {
            release_vip(&c);
        }
    }
    conf_free(&c);
    return 0;
}
