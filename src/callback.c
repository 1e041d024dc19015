/* postgresql.callbacks (callback.h). */
#include "raftpg/callback.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "raftpg/log.h"

const char *callback_action_name(enum callback_action a)
{
    switch (a) {
    case CALLBACK_NONE: return "none";
    case CALLBACK_ON_START: return "on_start";
    case CALLBACK_ON_STOP: return "on_stop";
    case CALLBACK_ON_RESTART: return "on_restart";
    case CALLBACK_ON_RELOAD: return "on_reload";
    case CALLBACK_ON_ROLE_CHANGE: return "on_role_change";
    case CALLBACK_ON_SWITCHOVER: return "on_switchover";
    case CALLBACK_ON_SWITCHOVER_ABANDONED: return "on_switchover_abandoned";
    }
    return "unknown";
}

enum callback_action callback_track(struct callback_tracker *t, bool known, bool running,
                                    bool in_recovery, const char **role)
{
    *role = "replica";
    if (!known) {
        return CALLBACK_NONE;
    }
    bool primary = running ? !in_recovery : t->primary;
    if (!t->known) {
        t->known = true;
        t->running = running;
        t->primary = primary;
        t->ever_ran = running;
        return CALLBACK_NONE;
    }
    enum callback_action ev = CALLBACK_NONE;
    if (t->running && !running) {
        ev = CALLBACK_ON_STOP;
        primary = t->primary; /* the role it stopped in */
    } else if (!t->running && running) {
        ev = t->ever_ran && primary != t->primary ? CALLBACK_ON_ROLE_CHANGE : CALLBACK_ON_START;
    } else if (running && primary != t->primary) {
        ev = CALLBACK_ON_ROLE_CHANGE;
    }
    t->running = running;
    t->primary = primary;
    t->ever_ran = t->ever_ran || running;
    *role = primary ? "primary" : "replica";
    return ev;
}

int callback_argv(const char *command, char *buf, size_t size, char **argv, int max)
{
    if (snprintf(buf, size, "%s", command) >= (int)size) {
        return 0;
    }
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (n >= max - 4) {
            return 0;
        }
        argv[n++] = w;
    }
    return n;
}

static const char *command_of(const struct conf *c, enum callback_action a)
{
    switch (a) {
    case CALLBACK_ON_START: return c->postgresql.callbacks.on_start;
    case CALLBACK_ON_STOP: return c->postgresql.callbacks.on_stop;
    case CALLBACK_ON_RESTART: return c->postgresql.callbacks.on_restart;
    case CALLBACK_ON_RELOAD: return c->postgresql.callbacks.on_reload;
    case CALLBACK_ON_ROLE_CHANGE: return c->postgresql.callbacks.on_role_change;
    case CALLBACK_ON_SWITCHOVER: return c->postgresql.callbacks.on_switchover;
    case CALLBACK_ON_SWITCHOVER_ABANDONED: return c->postgresql.callbacks.on_switchover_abandoned;
    case CALLBACK_NONE: break;
    }
    return "";
}

void callbacks_init(struct callbacks *cb, uv_loop_t *loop, const struct conf *conf)
{
    memset(cb, 0, sizeof *cb);
    cb->loop = loop;
    cb->conf = conf;
    cb->current = CALLBACK_NONE;
    cb->pending = CALLBACK_NONE;
    cb->wait_action = CALLBACK_NONE;
}

/* Ends the wait: the waiter learns how its run ended (it may fire callbacks itself). */
static void wait_end(struct callbacks *cb, bool ok, const char *what)
{
    void (*fn)(void *, bool, const char *) = cb->wait_cb;
    void *data = cb->wait_data;
    cb->wait_cb = NULL;
    cb->wait_data = NULL;
    cb->wait_action = CALLBACK_NONE;
    cb->wait_started = false;
    if (fn != NULL) {
        fn(data, ok, what);
    }
}

static void start(struct callbacks *cb, enum callback_action action, const char *role);

static void done(struct proc *p, const struct proc_result *res, void *data)
{
    struct callbacks *cb = data;
    char what[RPG_ERRMSG_SIZE];
    proc_describe(p, res, what, sizeof what);
    cb->running = false;
    cb->n_runs++;
    const char *name = callback_action_name(cb->current);
    /* The waited run ends here; its waiter is told after the queue moved on. */
    bool waited = cb->wait_cb != NULL && cb->wait_started;
    if (proc_ok(res)) {
        snprintf(cb->last, sizeof cb->last, "%s %s: done in %llu ms", name, cb->current_role,
                 (unsigned long long)res->elapsed_ms);
        log_info("callback %s %s done in %llu ms%s%s", name, cb->current_role,
                 (unsigned long long)res->elapsed_ms, res->output[0] != '\0' ? ": " : "",
                 res->output);
    } else {
        cb->n_failed++;
        snprintf(cb->last, sizeof cb->last, "%s %s: %s", name, cb->current_role, what);
        log_warning("callback %s %s failed: %s%s%s", name, cb->current_role, what,
                    res->output[0] != '\0' ? "; output: " : "", res->output);
    }
    if (cb->closing) {
        cb->wait_cb = NULL;
        if (cb->close_cb != NULL) {
            void (*close_cb)(struct callbacks *) = cb->close_cb;
            cb->close_cb = NULL;
            close_cb(cb);
        }
        return;
    }
    if (cb->has_pending) {
        cb->has_pending = false;
        start(cb, cb->pending, cb->pending_role);
    }
    if (waited) {
        wait_end(cb, proc_ok(res), what);
    }
}

static void start(struct callbacks *cb, enum callback_action action, const char *role)
{
    const char *command = command_of(cb->conf, action);
    char buf[CONF_CALLBACK_MAX];
    char *argv[32];
    int n = callback_argv(command, buf, sizeof buf, argv, 32);
    bool waited = cb->wait_cb != NULL && !cb->wait_started && action == cb->wait_action;
    if (n == 0) {
        if (waited) {
            wait_end(cb, false, "the command has too many words");
        }
        return;
    }
    argv[n++] = (char *)callback_action_name(action);
    argv[n++] = (char *)role;
    argv[n++] = (char *)cb->conf->scope;
    argv[n] = NULL;
    /* What a hook needs to point clients here, without parsing raftpg's configuration. */
    char e_name[CONF_NAME_MAX + 16], e_scope[CONF_NAME_MAX + 16], e_addr[CONF_ADDR_MAX + 24];
    snprintf(e_name, sizeof e_name, "RAFTPG_NAME=%s", cb->conf->name);
    snprintf(e_scope, sizeof e_scope, "RAFTPG_SCOPE=%s", cb->conf->scope);
    snprintf(e_addr, sizeof e_addr, "RAFTPG_PG_ADDRESS=%s", cb->conf->postgresql.connect_address);
    char *const env[] = {e_name, e_scope, e_addr, NULL};
    char errmsg[RPG_ERRMSG_SIZE];
    cb->current = action;
    snprintf(cb->current_role, sizeof cb->current_role, "%s", role);
    if (proc_run(&cb->proc, cb->loop, argv, env, cb->conf->postgresql.callback_timeout_s * 1000U,
                 done, cb, errmsg) != 0) {
        cb->n_failed++;
        snprintf(cb->last, sizeof cb->last, "%s %s: %s", callback_action_name(action), role,
                 errmsg);
        log_warning("callback %s %s: %s", callback_action_name(action), role, errmsg);
        if (waited) {
            wait_end(cb, false, errmsg);
        }
        return;
    }
    cb->wait_started = cb->wait_started || waited;
    cb->running = true;
    log_info("callback %s %s started: %s", callback_action_name(action), role, command);
}

void callbacks_fire(struct callbacks *cb, enum callback_action action, const char *role)
{
    if (cb->closing || action == CALLBACK_NONE || command_of(cb->conf, action)[0] == '\0') {
        return;
    }
    if (cb->running && action == CALLBACK_ON_RELOAD) {
        /* A reload's news does not make the running one stale (an on_role_change must finish):
         * it runs after, unless another event already waits. */
        if (!cb->has_pending) {
            cb->has_pending = true;
            cb->pending = action;
            snprintf(cb->pending_role, sizeof cb->pending_role, "%s", role);
        }
        return;
    }
    if (cb->running) {
        /* Its news is stale: the newer event runs as soon as it is gone. */
        log_warning("callback %s %s still running when %s %s happened: killing it",
                    callback_action_name(cb->current), cb->current_role,
                    callback_action_name(action), role);
        proc_kill(&cb->proc, SIGKILL);
        bool dropped = cb->has_pending && cb->wait_cb != NULL && !cb->wait_started &&
                       cb->pending == cb->wait_action;
        cb->has_pending = true;
        cb->pending = action;
        snprintf(cb->pending_role, sizeof cb->pending_role, "%s", role);
        if (dropped) {
            /* The waited run had not started yet: it never will. */
            wait_end(cb, false, "replaced by a newer event before it started");
        }
        return;
    }
    start(cb, action, role);
}

int callbacks_fire_wait(struct callbacks *cb, enum callback_action action, const char *role,
                        void (*on_done)(void *data, bool ok, const char *what), void *data)
{
    if (cb->closing || action == CALLBACK_NONE || command_of(cb->conf, action)[0] == '\0') {
        return RPG_ENOTFOUND;
    }
    if (cb->wait_cb != NULL) {
        return RPG_EBUSY;
    }
    cb->wait_cb = on_done;
    cb->wait_data = data;
    cb->wait_action = action;
    cb->wait_started = false;
    callbacks_fire(cb, action, role);
    return 0;
}

void callbacks_observe(struct callbacks *cb, bool known, bool running, bool in_recovery)
{
    const char *role;
    enum callback_action ev = callback_track(&cb->tracker, known, running, in_recovery, &role);
    if (cb->restarting && ev == CALLBACK_ON_STOP) {
        return;
    }
    if (cb->restarting && (ev == CALLBACK_ON_START || ev == CALLBACK_ON_ROLE_CHANGE)) {
        ev = CALLBACK_ON_RESTART;
        cb->restarting = false;
    }
    if (ev != CALLBACK_NONE) {
        callbacks_fire(cb, ev, role);
    }
}

void callbacks_close(struct callbacks *cb, void (*close_cb)(struct callbacks *cb))
{
    cb->closing = true;
    cb->has_pending = false;
    cb->wait_cb = NULL;
    if (!cb->running) {
        close_cb(cb);
        return;
    }
    cb->close_cb = close_cb;
    proc_kill(&cb->proc, SIGKILL);
}
