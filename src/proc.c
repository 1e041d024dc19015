/* External programs on the loop: spawned off the loop, a timeout with SIGTERM then SIGKILL to the
 * process group, and the tail of the output kept in a ring. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#include "raftpg/proc.h"

/* How long output may still arrive after the program exits. A child it left behind (the
 * postmaster started by `pg_ctl start`) inherits the pipe and may hold it open for good. */
#define PROC_DRAIN_MS 100

/* The ring keeps the last PROC_RING_SIZE bytes; the spare byte of output[] is for the NUL. */
#define PROC_RING_SIZE (PROC_OUTPUT_MAX - 1)

/* The loop's clock, brought up to date: timeouts and elapsed_ms then agree. */
static uint64_t proc_now_ms(uv_loop_t *loop)
{
    uv_update_time(loop);
    return uv_now(loop);
}

static void proc_on_close(uv_handle_t *h);

static void proc_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, proc_on_close);
    }
}

static void reverse(char *s, size_t len)
{
    for (size_t i = 0; i < len / 2; i++) {
        char c = s[i];
        s[i] = s[len - 1 - i];
        s[len - 1 - i] = c;
    }
}

/* Turns the ring into text: oldest byte first, trailing newlines removed, NUL-terminated. */
static void proc_output_finish(struct proc *p)
{
    size_t len = p->output_len;
    if (p->output_wrapped) {
        /* [0, len) is newer than [len, RING): rotate left by len. */
        reverse(p->output, len);
        reverse(p->output + len, PROC_RING_SIZE - len);
        reverse(p->output, PROC_RING_SIZE);
        len = PROC_RING_SIZE;
    }
    while (len > 0 && (p->output[len - 1] == '\n' || p->output[len - 1] == '\r')) {
        len--;
    }
    p->output[len] = '\0';
    p->output_len = len;
}

/* The last handle is closed: report. Nothing touches p after the callback, which may reuse or
 * free it. */
static void proc_release(struct proc *p)
{
    assert(p->n_open > 0);
    if (--p->n_open > 0) {
        return;
    }

    proc_output_finish(p);
    struct proc_result res = {
        .exit_status = p->spawn_error != 0 ? -1 : (int)p->exit_status,
        .term_signal = p->term_signal,
        .timed_out = p->timed_out,
        .spawn_error = p->spawn_error,
        .elapsed_ms = proc_now_ms(p->loop) - p->start_ms,
        .output = p->output,
    };
    proc_cb cb = p->cb;
    void *data = p->data;
    p->running = false;
    cb(p, &res, data);
}

static void proc_on_close(uv_handle_t *h)
{
    proc_release(h->data);
}

static void proc_on_timer(uv_timer_t *t)
{
    struct proc *p = t->data;
    if (p->exited) {
        /* Drain delay over: whatever still holds the pipe is not the program. */
        proc_close((uv_handle_t *)&p->out);
        proc_close((uv_handle_t *)&p->timer);
        return;
    }
    if (!p->timed_out) {
        p->timed_out = true;
        if (p->pid <= 0) {
            return; /* still spawning: the spawn's end sends SIGTERM and starts the grace */
        }
        uv_kill(-p->pid, SIGTERM);
        uv_timer_start(&p->timer, proc_on_timer, p->kill_grace_ms, 0);
        return;
    }
    uv_kill(-p->pid, SIGKILL);
}

static void exit_poll_closed(uv_handle_t *h)
{
    struct proc *p = h->data;
    close(p->pidfd);
    p->pidfd = -1;
    proc_release(p);
}

/* The pidfd is readable once the program has exited: reap it. */
static void proc_on_exit(uv_poll_t *h, int status, int events)
{
    struct proc *p = h->data;
    (void)events;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    (void)status; /* an error on the pidfd: waitid says what became of the program */
    if (syscall(SYS_waitid, P_PIDFD, p->pidfd, &si, WEXITED | WNOHANG, NULL) != 0) {
        if (errno == EINTR) {
            return;
        }
        /* Nothing to reap (ECHILD): it is gone; say so rather than wait for ever. */
        si.si_code = CLD_KILLED;
        si.si_status = SIGKILL;
        si.si_pid = p->pid;
    }
    if (si.si_pid == 0) {
        return; /* not yet */
    }
    p->exited = true;
    p->exit_status = si.si_code == CLD_EXITED ? si.si_status : 0;
    p->term_signal = si.si_code == CLD_EXITED ? 0 : si.si_status;
    uv_close((uv_handle_t *)&p->exit_poll, exit_poll_closed);
    uv_timer_stop(&p->timer);
    if (uv_is_closing((uv_handle_t *)&p->out)) {
        proc_close((uv_handle_t *)&p->timer);
    } else {
        uv_timer_start(&p->timer, proc_on_timer, PROC_DRAIN_MS, 0);
    }
}

static void proc_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct proc *p = h->data;
    (void)suggested;
    /* output_len < PROC_RING_SIZE while running: it wraps to 0 when it reaches the end. */
    buf->base = p->output + p->output_len;
    buf->len = PROC_RING_SIZE - p->output_len;
}

static void proc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct proc *p = s->data;
    (void)buf;
    if (nread > 0) {
        p->output_len += (size_t)nread;
        if (p->output_len == PROC_RING_SIZE) {
            p->output_len = 0;
            p->output_wrapped = true;
        }
        return;
    }
    if (nread == 0) {
        return;
    }
    /* End of file, or a read error: either way no more output for this run. */
    proc_close((uv_handle_t *)&p->out);
    if (p->exited) {
        proc_close((uv_handle_t *)&p->timer);
    }
}

static size_t env_key_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq != NULL ? (size_t)(eq - entry) : strlen(entry);
}

static bool env_overrides(char *const env[], const char *entry)
{
    size_t n = env_key_len(entry);
    for (size_t i = 0; env[i] != NULL; i++) {
        if (env_key_len(env[i]) == n && strncmp(env[i], entry, n) == 0) {
            return true;
        }
    }
    return false;
}

/* What systemd hands the agent alone. PostgreSQL, built with systemd support, would send its own
 * READY=1 and STOPPING=1 to the agent's unit through NOTIFY_SOCKET. */
static bool env_service_manager(const char *entry)
{
    static const char *const keys[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                       "LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES"};
    size_t n = env_key_len(entry);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strlen(keys[i]) == n && strncmp(keys[i], entry, n) == 0) {
            return true;
        }
    }
    return false;
}

/* The inherited environment, less the service manager's variables, with env's entries (if any)
 * added or replacing; the strings are borrowed. */
static char **env_merge(char *const env[])
{
    static char *const none[] = {NULL};
    if (env == NULL) {
        env = none;
    }
    size_t n_inherited = 0, n_extra = 0;
    while (environ[n_inherited] != NULL) {
        n_inherited++;
    }
    while (env[n_extra] != NULL) {
        n_extra++;
    }

    char **out = malloc((n_inherited + n_extra + 1) * sizeof *out);
    if (out == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_inherited; i++) {
        if (!env_overrides(env, environ[i]) && !env_service_manager(environ[i])) {
            out[n++] = environ[i];
        }
    }
    for (size_t i = 0; i < n_extra; i++) {
        out[n++] = env[i];
    }
    out[n] = NULL;
    return out;
}

/* A NULL-terminated copy of v, strings included, in one block (free() frees it); NULL when out
 * of memory. */
static char **strv_copy(char *const v[])
{
    size_t n = 0, bytes = 0;
    while (v[n] != NULL) {
        bytes += strlen(v[n++]) + 1;
    }
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (out == NULL) {
        return NULL;
    }
    char *at = (char *)(out + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(at, v[i], len);
        out[i] = at;
        at += len;
    }
    out[n] = NULL;
    return out;
}

static void strv_free(char **v)
{
    free(v);
}

int proc_spawn_session(char *const argv[], char *const env[], const posix_spawn_file_actions_t *fa,
                       pid_t *pid, int *pidfd)
{
    posix_spawnattr_t attr;
    sigset_t defaults, none;
    sigemptyset(&defaults);
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaddset(&defaults, sig);
        }
    }
    sigemptyset(&none);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    *pid = 0;
    *pidfd = -1;
    int rc = strchr(argv[0], '/') != NULL ? posix_spawn(pid, argv[0], fa, &attr, argv, env)
                                          : posix_spawnp(pid, argv[0], fa, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        *pid = 0;
        return rc;
    }
    int fd = (int)syscall(SYS_pidfd_open, *pid, 0);
    if (fd < 0) {
        /* Without a way to see its exit it cannot be watched: end it (its session's group). */
        rc = errno;
        kill(-*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
        return rc;
    }
    *pidfd = fd;
    return 0;
}

/* Worker thread: starts the program with stdin from /dev/null, stdout and stderr into the pipe.
 * The parent waits here, not on the loop, until the child has executed the program. */
static void spawn_work(uv_work_t *w)
{
    struct proc *p = w->data;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p->spawn_out, 1);
    posix_spawn_file_actions_adddup2(&fa, p->spawn_out, 2);
    pid_t pid = 0;
    int pidfd = -1;
    int rc = proc_spawn_session(p->spawn_argv, p->spawn_env, &fa, &pid, &pidfd);
    posix_spawn_file_actions_destroy(&fa);
    close(p->spawn_out);
    p->spawn_out = -1;
    p->spawn_rc = -rc;
    p->spawn_pid = pid;
    p->spawn_pidfd = pidfd;
}

/* Back on the loop: watch the exit, or report the spawn's failure. */
static void spawn_done(uv_work_t *w, int status)
{
    struct proc *p = w->data;
    strv_free(p->spawn_argv);
    strv_free(p->spawn_env);
    p->spawn_argv = p->spawn_env = NULL;
    p->spawn_error = status != 0 ? status : p->spawn_rc;
    p->pid = p->spawn_pid;
    p->pidfd = p->spawn_pidfd;
    if (p->spawn_error != 0 && p->pidfd >= 0) {
        /* Cancelled after it started (status only says the work ran late): end it. */
        kill(-p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        close(p->pidfd);
        p->pidfd = -1;
        p->pid = 0;
    }
    if (p->spawn_error == 0) {
        int rc = uv_poll_init(p->loop, &p->exit_poll, p->pidfd);
        if (rc == 0) {
            p->exit_poll.data = p;
            rc = uv_poll_start(&p->exit_poll, UV_READABLE, proc_on_exit);
            if (rc != 0) {
                uv_close((uv_handle_t *)&p->exit_poll, NULL);
            }
        }
        if (rc != 0) {
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            close(p->pidfd);
            p->pidfd = -1;
            p->pid = 0;
            p->spawn_error = rc;
        }
    }
    if (p->spawn_error != 0) {
        /* The pipe's write end is closed: its read side ends by itself. */
        p->exited = true;
        uv_timer_stop(&p->timer);
        if (uv_is_closing((uv_handle_t *)&p->out)) {
            proc_close((uv_handle_t *)&p->timer);
        }
        proc_release(p);
        return;
    }
    if (p->timed_out) {
        /* The timeout came while spawning. */
        uv_kill(-p->pid, SIGTERM);
        uv_timer_start(&p->timer, proc_on_timer, p->kill_grace_ms, 0);
    } else if (p->kill_pending != 0) {
        uv_kill(-p->pid, p->kill_pending);
    }
}

int proc_run(struct proc *p, uv_loop_t *loop, char *const argv[], char *const env[],
             unsigned timeout_ms, proc_cb cb, void *data, char *errmsg)
{
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
        return rpg_err(errmsg, RPG_EINVAL, "cannot run program: empty argument list");
    }
    if (p->running) {
        return rpg_err(errmsg, RPG_EBUSY, "cannot run %s: %s is still running", argv[0], p->name);
    }

    const char *base = strrchr(argv[0], '/');
    base = base != NULL && base[1] != '\0' ? base + 1 : argv[0];

    char **envp = env_merge(env);
    if (envp == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "cannot run %s: out of memory", base);
    }

    /* The write end goes to the child as both stdout and stderr; it must block there. */
    uv_file fds[2];
    int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
    if (rc != 0) {
        free(envp);
        return rpg_err(errmsg, RPG_EIO, "cannot run %s: cannot create output pipe: %s", base,
                       uv_strerror(rc));
    }
    rc = uv_timer_init(loop, &p->timer);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        free(envp);
        return rpg_err(errmsg, RPG_EIO, "cannot run %s: cannot create timer: %s", base,
                       uv_strerror(rc));
    }

    /* output[] is left alone: a callback that reruns p may still be reading the last result. */
    p->loop = loop;
    p->pid = 0;
    p->pidfd = -1;
    p->kill_pending = 0;
    p->spawn_rc = 0;
    p->spawn_pid = 0;
    p->spawn_pidfd = -1;
    p->spawn_argv = NULL;
    p->spawn_env = NULL;
    p->timer.data = p;
    p->n_open = 1;
    p->running = true;
    p->exited = false;
    p->timed_out = false;
    p->exit_status = 0;
    p->term_signal = 0;
    p->spawn_error = 0;
    p->start_ms = proc_now_ms(loop);
    p->timeout_ms = timeout_ms;
    if (p->kill_grace_ms == 0) {
        p->kill_grace_ms = PROC_KILL_GRACE_MS;
    }
    p->output_len = 0;
    p->output_wrapped = false;
    snprintf(p->name, sizeof p->name, "%s", base);
    p->cb = cb;
    p->data = data;

    /* From here on every failure is reported through cb, once the handles are closed. */
    rc = uv_pipe_init(loop, &p->out, 0);
    if (rc == 0) {
        p->out.data = p;
        p->n_open++;
        rc = uv_pipe_open(&p->out, fds[0]);
    }
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        goto err;
    }

    p->spawn_out = fds[1];
    p->spawn_argv = strv_copy(argv);
    p->spawn_env = strv_copy(envp);
    free(envp);
    envp = NULL;
    if (p->spawn_argv == NULL || p->spawn_env == NULL) {
        rc = UV_ENOMEM;
        close(fds[1]);
        goto err;
    }
    rc = uv_read_start((uv_stream_t *)&p->out, proc_on_alloc, proc_on_read);
    if (rc != 0) {
        proc_close((uv_handle_t *)&p->out); /* run on without output rather than fail */
    }
    p->spawn.data = p;
    rc = uv_queue_work(loop, &p->spawn, spawn_work, spawn_done);
    if (rc != 0) {
        close(fds[1]);
        goto err;
    }
    p->n_open++; /* the spawn, then the exit watch */
    if (timeout_ms > 0) {
        uv_timer_start(&p->timer, proc_on_timer, timeout_ms, 0);
    }
    return 0;

err:
    free(envp);
    strv_free(p->spawn_argv);
    strv_free(p->spawn_env);
    p->spawn_argv = p->spawn_env = NULL;
    p->spawn_error = rc;
    if (p->n_open >= 2) {
        proc_close((uv_handle_t *)&p->out);
    }
    proc_close((uv_handle_t *)&p->timer);
    return 0;
}

size_t proc_output_peek(const struct proc *p, char *buf, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t n = 0;
    if (p->running) {
        /* The ring: [output_len, RING) is older than [0, output_len) once it wrapped. */
        size_t older = p->output_wrapped ? PROC_RING_SIZE - p->output_len : 0;
        size_t total = older + p->output_len;
        size_t skip = total > size - 1 ? total - (size - 1) : 0;
        if (skip < older) {
            memcpy(buf, p->output + p->output_len + skip, older - skip);
            n = older - skip;
            skip = 0;
        } else {
            skip -= older;
        }
        memcpy(buf + n, p->output + skip, p->output_len - skip);
        n += p->output_len - skip;
    }
    buf[n] = '\0';
    return n;
}

void proc_kill(struct proc *p, int sig)
{
    /* After the exit the group may hold only children the program left behind on purpose. */
    if (!p->running || p->exited || p->spawn_error != 0) {
        return;
    }
    if (p->pid <= 0) {
        p->kill_pending = sig; /* still spawning: sent once it runs */
        return;
    }
    uv_kill(-p->pid, sig);
}

/* The last line of out with any text, without surrounding white space. */
static const char *last_line(const char *out, int *len)
{
    size_t end = strlen(out);
    while (end > 0 && isspace((unsigned char)out[end - 1])) {
        end--;
    }
    size_t start = end;
    while (start > 0 && out[start - 1] != '\n') {
        start--;
    }
    while (start < end && isspace((unsigned char)out[start])) {
        start++;
    }
    *len = (int)(end - start);
    return out + start;
}

void proc_describe(const struct proc *p, const struct proc_result *res, char *buf, size_t size)
{
    if (res->spawn_error != 0) {
        snprintf(buf, size, "cannot run %s: %s", p->name, uv_strerror(res->spawn_error));
        return;
    }

    char what[128];
    if (res->timed_out) {
        snprintf(what, sizeof what, "%s timed out after %u ms", p->name, p->timeout_ms);
    } else if (res->term_signal != 0) {
        snprintf(what, sizeof what, "%s killed by signal %d", p->name, res->term_signal);
    } else {
        snprintf(what, sizeof what, "%s exited %d", p->name, res->exit_status);
    }

    int len;
    const char *line = last_line(res->output != NULL ? res->output : "", &len);
    if (len > 0) {
        snprintf(buf, size, "%s: %.*s", what, len, line);
    } else {
        snprintf(buf, size, "%s", what);
    }
}

bool proc_stat(long pid, char *state, long *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && sscanf(rp + 1, " %c %ld", state, ppid) == 2;
}

bool proc_alive(int pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    char state;
    long ppid;
    /* Unreadable, it still answered the signal: it runs. */
    return !proc_stat(pid, &state, &ppid) || (state != 'Z' && state != 'X');
}
