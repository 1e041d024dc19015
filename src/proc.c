#include <errno.h>
/* External programs on the loop: uv_spawn, a timeout with SIGTERM then SIGKILL to the process
 * group, and the tail of the output kept in a ring. */
#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (!uv_is_closing(h))
        uv_close(h, proc_on_close);
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
    while (len > 0 && (p->output[len - 1] == '\n' || p->output[len - 1] == '\r'))
        len--;
    p->output[len] = '\0';
    p->output_len = len;
}

/* The last handle is closed: report. Nothing touches p after the callback, which may reuse or
 * free it. */
static void proc_on_close(uv_handle_t *h)
{
    struct proc *p = h->data;
    assert(p->n_open > 0);
    if (--p->n_open > 0)
        return;

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
        uv_kill(-p->process.pid, SIGTERM);
        uv_timer_start(&p->timer, proc_on_timer, p->kill_grace_ms, 0);
        return;
    }
    uv_kill(-p->process.pid, SIGKILL);
}

static void proc_on_exit(uv_process_t *process, int64_t exit_status, int term_signal)
{
    struct proc *p = process->data;
    p->exited = true;
    p->exit_status = exit_status;
    p->term_signal = term_signal;
    proc_close((uv_handle_t *)&p->process);
    uv_timer_stop(&p->timer);
    if (uv_is_closing((uv_handle_t *)&p->out))
        proc_close((uv_handle_t *)&p->timer);
    else
        uv_timer_start(&p->timer, proc_on_timer, PROC_DRAIN_MS, 0);
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
    if (nread == 0)
        return;
    /* End of file, or a read error: either way no more output for this run. */
    proc_close((uv_handle_t *)&p->out);
    if (p->exited)
        proc_close((uv_handle_t *)&p->timer);
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
        if (env_key_len(env[i]) == n && strncmp(env[i], entry, n) == 0)
            return true;
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
        if (strlen(keys[i]) == n && strncmp(keys[i], entry, n) == 0)
            return true;
    }
    return false;
}

/* The inherited environment, less the service manager's variables, with env's entries (if any)
 * added or replacing; the strings are borrowed. */
static char **env_merge(char *const env[])
{
    static char *const none[] = {NULL};
    if (env == NULL)
        env = none;
    size_t n_inherited = 0, n_extra = 0;
    while (environ[n_inherited] != NULL)
        n_inherited++;
    while (env[n_extra] != NULL)
        n_extra++;

    char **out = malloc((n_inherited + n_extra + 1) * sizeof *out);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_inherited; i++) {
        if (!env_overrides(env, environ[i]) && !env_service_manager(environ[i]))
            out[n++] = environ[i];
    }
    for (size_t i = 0; i < n_extra; i++)
        out[n++] = env[i];
    out[n] = NULL;
    return out;
}

int proc_run(struct proc *p, uv_loop_t *loop, char *const argv[], char *const env[],
             unsigned timeout_ms, proc_cb cb, void *data, char *errmsg)
{
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return rpg_err(errmsg, RPG_EINVAL, "cannot run program: empty argument list");
    if (p->running)
        return rpg_err(errmsg, RPG_EBUSY, "cannot run %s: %s is still running", argv[0], p->name);

    const char *base = strrchr(argv[0], '/');
    base = base != NULL && base[1] != '\0' ? base + 1 : argv[0];

    char **envp = env_merge(env);
    if (envp == NULL)
        return rpg_err(errmsg, RPG_ENOMEM, "cannot run %s: out of memory", base);

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
    if (p->kill_grace_ms == 0)
        p->kill_grace_ms = PROC_KILL_GRACE_MS;
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

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null for it */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fds[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fds[1];

    uv_process_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.exit_cb = proc_on_exit;
    opts.file = argv[0];
    opts.args = (char **)argv;
    opts.env = envp;
    /* A new session, hence a new process group: a timeout kills the program's children too. */
    opts.flags = UV_PROCESS_DETACHED;
    opts.stdio_count = 3;
    opts.stdio = stdio;

    /* uv_spawn initializes the handle even when it fails, so it is closed on both paths. */
    rc = uv_spawn(loop, &p->process, &opts);
    p->process.data = p;
    p->n_open++;
    close(fds[1]);
    free(envp);
    envp = NULL;
    if (rc != 0)
        goto err;

    rc = uv_read_start((uv_stream_t *)&p->out, proc_on_alloc, proc_on_read);
    if (rc != 0)
        proc_close((uv_handle_t *)&p->out); /* run on without output rather than fail */
    if (timeout_ms > 0) {
        /* The loop's cached time predates the spawn; count the timeout from start_ms. */
        uint64_t spent = proc_now_ms(loop) - p->start_ms;
        uv_timer_start(&p->timer, proc_on_timer, spent < timeout_ms ? timeout_ms - spent : 0, 0);
    }
    return 0;

err:
    free(envp);
    p->spawn_error = rc;
    if (p->n_open == 3)
        proc_close((uv_handle_t *)&p->process);
    if (p->n_open >= 2)
        proc_close((uv_handle_t *)&p->out);
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
    if (!p->running || p->exited || p->spawn_error != 0 || p->process.pid <= 0)
        return;
    uv_kill(-p->process.pid, sig);
}

/* The last line of out with any text, without surrounding white space. */
static const char *last_line(const char *out, int *len)
{
    size_t end = strlen(out);
    while (end > 0 && isspace((unsigned char)out[end - 1]))
        end--;
    size_t start = end;
    while (start > 0 && out[start - 1] != '\n')
        start--;
    while (start < end && isspace((unsigned char)out[start]))
        start++;
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
    if (res->timed_out)
        snprintf(what, sizeof what, "%s timed out after %u ms", p->name, p->timeout_ms);
    else if (res->term_signal != 0)
        snprintf(what, sizeof what, "%s killed by signal %d", p->name, res->term_signal);
    else
        snprintf(what, sizeof what, "%s exited %d", p->name, res->exit_status);

    int len;
    const char *line = last_line(res->output != NULL ? res->output : "", &len);
    if (len > 0)
        snprintf(buf, size, "%s: %.*s", what, len, line);
    else
        snprintf(buf, size, "%s", what);
}

bool proc_alive(int pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The state follows the command name, which is in parentheses and may hold spaces. */
    const char *paren = strrchr(buf, ')');
    return paren == NULL || paren[1] != ' ' || (paren[2] != 'Z' && paren[2] != 'X');
}
