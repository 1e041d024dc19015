/* postgresql.callbacks (callback.h): observations become Patroni's events, commands split into
 * argv without a shell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "raftpg/callback.h"

static enum callback_action feed(struct callback_tracker *t, bool running, bool in_recovery,
                                 const char **role)
{
    return callback_track(t, true, running, in_recovery, role);
}

static void test_events(void **state)
{
    (void)state;
    struct callback_tracker t;
    memset(&t, 0, sizeof t);
    const char *role;
    /* Nothing known yet, then the baseline: no event for what was already so. */
    assert_int_equal(callback_track(&t, false, false, false, &role), CALLBACK_NONE);
    assert_int_equal(feed(&t, true, true, &role), CALLBACK_NONE);
    assert_int_equal(feed(&t, true, true, &role), CALLBACK_NONE);
    /* Promoted. */
    assert_int_equal(feed(&t, true, false, &role), CALLBACK_ON_ROLE_CHANGE);
    assert_string_equal(role, "primary");
    assert_int_equal(feed(&t, true, false, &role), CALLBACK_NONE);
    /* Fenced: stopped in the role it had. */
    assert_int_equal(feed(&t, false, false, &role), CALLBACK_ON_STOP);
    assert_string_equal(role, "primary");
    /* An unknown observation (observer between results) changes nothing. */
    assert_int_equal(callback_track(&t, false, true, true, &role), CALLBACK_NONE);
    /* Rewound and started as a standby: another role than it last ran in. */
    assert_int_equal(feed(&t, true, true, &role), CALLBACK_ON_ROLE_CHANGE);
    assert_string_equal(role, "replica");
    /* Restarted in the same role. */
    assert_int_equal(feed(&t, false, true, &role), CALLBACK_ON_STOP);
    assert_string_equal(role, "replica");
    assert_int_equal(feed(&t, true, true, &role), CALLBACK_ON_START);
    assert_string_equal(role, "replica");
}

static void test_first_start(void **state)
{
    (void)state;
    struct callback_tracker t;
    memset(&t, 0, sizeof t);
    const char *role;
    /* A new cluster: stopped at first, then started as primary. */
    assert_int_equal(feed(&t, false, false, &role), CALLBACK_NONE);
    assert_int_equal(feed(&t, true, false, &role), CALLBACK_ON_START);
    assert_string_equal(role, "primary");
}

static void test_argv(void **state)
{
    (void)state;
    char buf[128];
    char *argv[16];
    assert_int_equal(
        callback_argv("/usr/bin/hook  --ini /etc/x.ini\t-d app", buf, sizeof buf, argv, 16), 5);
    assert_string_equal(argv[0], "/usr/bin/hook");
    assert_string_equal(argv[1], "--ini");
    assert_string_equal(argv[2], "/etc/x.ini");
    assert_string_equal(argv[3], "-d");
    assert_string_equal(argv[4], "app");
    assert_int_equal(callback_argv("", buf, sizeof buf, argv, 8), 0);
    /* Room is kept for ACTION ROLE SCOPE and the NULL. */
    assert_int_equal(callback_argv("/a b c d e", buf, sizeof buf, argv, 8), 0);
    assert_int_equal(callback_argv("/a b c d", buf, sizeof buf, argv, 8), 4);
    char longcmd[300];
    memset(longcmd, 'x', sizeof longcmd - 1);
    longcmd[0] = '/';
    longcmd[sizeof longcmd - 1] = '\0';
    assert_int_equal(callback_argv(longcmd, buf, sizeof buf, argv, 8), 0);
}

/* callbacks_fire_wait with real programs on a real loop. */
struct waited {
    int calls;
    bool ok;
    char what[256];
};

static void on_waited(void *data, bool ok, const char *what)
{
    struct waited *w = data;
    w->calls++;
    w->ok = ok;
    snprintf(w->what, sizeof w->what, "%s", what);
}

static void run_until(uv_loop_t *loop, const struct waited *w, const struct callbacks *cb)
{
    /* Bounded: each program here ends (or is killed) well within a second. */
    for (int i = 0; i < 2000 && (w->calls == 0 || cb->running); i++) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

static struct conf wait_conf;
static int closed;

static void on_closed(struct callbacks *cb)
{
    (void)cb;
    closed++;
}

static void test_fire_wait(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct conf *c = &wait_conf;
    memset(c, 0, sizeof *c);
    snprintf(c->scope, sizeof c->scope, "s");
    snprintf(c->name, sizeof c->name, "n1");
    c->postgresql.callback_timeout_s = 10;
    struct callbacks cb;
    callbacks_init(&cb, &loop, c);
    struct waited w = {0};
    /* A callback that runs until killed (sleep itself would refuse ACTION ROLE SCOPE). */
    char hang[] = "/tmp/raftpg-test-callback-XXXXXX";
    int fd = mkstemp(hang);
    assert_true(fd >= 0);
    static const char script[] = "#!/bin/sh\nexec sleep 5\n";
    assert_int_equal(write(fd, script, sizeof script - 1), (ssize_t)(sizeof script - 1));
    assert_int_equal(fchmod(fd, 0755), 0);
    assert_int_equal(close(fd), 0);
    /* One that ends by itself after a while. */
    char slow[] = "/tmp/raftpg-test-callback-XXXXXX";
    fd = mkstemp(slow);
    assert_true(fd >= 0);
    static const char slow_script[] = "#!/bin/sh\nexec sleep 0.3\n";
    assert_int_equal(write(fd, slow_script, sizeof slow_script - 1),
                     (ssize_t)(sizeof slow_script - 1));
    assert_int_equal(fchmod(fd, 0755), 0);
    assert_int_equal(close(fd), 0);

    /* None configured: the caller goes on at once, never called back. */
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w),
                     RPG_ENOTFOUND);
    assert_int_equal(w.calls, 0);

    /* Exit 0: ok. */
    snprintf(c->postgresql.callbacks.on_switchover, CONF_CALLBACK_MAX, "/bin/true");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w), 0);
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w),
                     RPG_EBUSY);
    run_until(&loop, &w, &cb);
    assert_int_equal(w.calls, 1);
    assert_true(w.ok);

    /* Exit 1: not ok, with what happened. */
    memset(&w, 0, sizeof w);
    snprintf(c->postgresql.callbacks.on_switchover, CONF_CALLBACK_MAX, "/bin/false");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w), 0);
    run_until(&loop, &w, &cb);
    assert_int_equal(w.calls, 1);
    assert_false(w.ok);
    assert_non_null(strstr(w.what, "exited 1"));

    /* Killed by a newer event: not ok, once; the newer event still runs. */
    memset(&w, 0, sizeof w);
    snprintf(c->postgresql.callbacks.on_switchover, CONF_CALLBACK_MAX, "%s", hang);
    snprintf(c->postgresql.callbacks.on_stop, CONF_CALLBACK_MAX, "/bin/true");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w), 0);
    for (int i = 0; i < 2000 && !cb.running; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(cb.running);
    unsigned runs = cb.n_runs;
    callbacks_fire(&cb, CALLBACK_ON_STOP, "primary");
    run_until(&loop, &w, &cb);
    assert_int_equal(w.calls, 1);
    assert_false(w.ok);
    assert_non_null(strstr(w.what, "killed by signal 9"));
    assert_int_equal(cb.n_runs, runs + 2);
    assert_int_equal(cb.current, CALLBACK_ON_STOP);

    /* Fired while another callback runs: that one is killed (its news is stale), then it runs. */
    memset(&w, 0, sizeof w);
    snprintf(c->postgresql.callbacks.on_start, CONF_CALLBACK_MAX, "%s", hang);
    snprintf(c->postgresql.callbacks.on_switchover, CONF_CALLBACK_MAX, "/bin/true");
    callbacks_fire(&cb, CALLBACK_ON_START, "primary");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w), 0);
    run_until(&loop, &w, &cb);
    assert_int_equal(w.calls, 1);
    assert_true(w.ok);
    assert_int_equal(cb.current, CALLBACK_ON_SWITCHOVER);

    /* on_reload while another callback runs: the running one finishes (a reload makes no news
     * stale), then on_reload runs. */
    memset(&w, 0, sizeof w);
    snprintf(c->postgresql.callbacks.on_role_change, CONF_CALLBACK_MAX, "%s", slow);
    snprintf(c->postgresql.callbacks.on_reload, CONF_CALLBACK_MAX, "/bin/true");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_ROLE_CHANGE, "primary", on_waited, &w),
                     0);
    runs = cb.n_runs;
    callbacks_fire(&cb, CALLBACK_ON_RELOAD, "primary");
    callbacks_fire(&cb, CALLBACK_ON_RELOAD, "primary");
    run_until(&loop, &w, &cb);
    assert_int_equal(w.calls, 1);
    assert_true(w.ok);
    assert_int_equal(cb.n_runs, runs + 2);
    assert_int_equal(cb.current, CALLBACK_ON_RELOAD);
    assert_string_equal(cb.current_role, "primary");

    /* Queued, then replaced by a newer event before it started: not ok, at once. */
    memset(&w, 0, sizeof w);
    callbacks_fire(&cb, CALLBACK_ON_START, "primary");
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w), 0);
    assert_int_equal(w.calls, 0);
    callbacks_fire(&cb, CALLBACK_ON_STOP, "primary");
    assert_int_equal(w.calls, 1);
    assert_false(w.ok);
    assert_non_null(strstr(w.what, "replaced"));

    /* Closing drops a waiter without calling it. */
    struct waited w2 = {0};
    snprintf(c->postgresql.callbacks.on_switchover, CONF_CALLBACK_MAX, "%s", hang);
    run_until(&loop, &w, &cb);
    assert_int_equal(callbacks_fire_wait(&cb, CALLBACK_ON_SWITCHOVER, "primary", on_waited, &w2),
                     0);
    callbacks_close(&cb, on_closed);
    for (int i = 0; i < 2000 && cb.running; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_false(cb.running);
    assert_int_equal(closed, 1);
    assert_int_equal(w2.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(hang);
    unlink(slow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_first_start),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_fire_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
