/* postgresql.callbacks (callback.h): observations become Patroni's events, commands split into
 * argv without a shell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_first_start),
        cmocka_unit_test(test_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
