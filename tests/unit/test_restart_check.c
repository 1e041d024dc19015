/* POST /restart's conditions (restart_check.h): each refusal with its status and reason, in the
 * order the agent checks them, and the restarts they let through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/restart_check.h"

/* A running standby of PostgreSQL 15, nothing pending, nothing asked. */
static struct restart_check_in standby(void)
{
    struct restart_check_in in;
    memset(&in, 0, sizeof in);
    in.running = true;
    in.in_recovery = true;
    in.server_version = 150004;
    return in;
}

static void check(const struct restart_check_in *in, int want, const char *why_part)
{
    char why[256];
    memset(why, 'x', sizeof why);
    assert_int_equal(restart_check(in, why, sizeof why), want);
    if (why_part == NULL) {
        assert_string_equal(why, "");
    } else if (strstr(why, why_part) == NULL) {
        fail_msg("[%s] lacks [%s]", why, why_part);
    }
}

static void test_allowed(void **state)
{
    (void)state;
    struct restart_check_in in = standby();
    check(&in, 0, NULL);
    in.role = "replica";
    check(&in, 0, NULL);
    in.in_recovery = false;
    in.role = "primary";
    check(&in, 0, NULL);
    in.pending = true;
    in.pending_restart = true;
    in.below_version = 160000;
    check(&in, 0, NULL);
}

static void test_refusals(void **state)
{
    (void)state;
    struct restart_check_in in = standby();
    in.running = false;
    in.busy = true;
    check(&in, 503, "postgresql is not running here");
    in = standby();
    in.busy = true;
    in.paused = true;
    check(&in, 409, "an operation on this member's postgresql is under way");
    in = standby();
    in.paused = true;
    check(&in, 503, "maintenance mode");
    in = standby();
    in.role = "primary";
    check(&in, 412, "this member is a replica, not a primary");
    in = standby();
    in.in_recovery = false;
    in.role = "replica";
    check(&in, 412, "this member is a primary, not a replica");
    in = standby();
    in.pending = true;
    check(&in, 412, "no setting waits for a restart");
    in = standby();
    in.below_version = 150004;
    check(&in, 412, "the server's version 150004 is not below 150004");
}

/* A buffer of no size is never written. */
static void test_no_buffer(void **state)
{
    (void)state;
    struct restart_check_in in = standby();
    in.running = false;
    char c = 'x';
    assert_int_equal(restart_check(&in, &c, 0), 503);
    assert_int_equal(c, 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_no_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
