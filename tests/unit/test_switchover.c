/* The switchover's candidate choice (switchover.h): a named candidate must fit, and says why not;
 * without one, the streaming standby furthest ahead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/err.h"
#include "raftpg/switchover.h"

static struct switchover_peer fit(const char *name, uint64_t pos, int prio)
{
    struct switchover_peer p = {.name = name,
                                .reachable = true,
                                .running_standby = true,
                                .streams_from_us = true,
                                .eligible = true,
                                .wal_position = pos,
                                .priority = prio};
    return p;
}

static void test_named(void **state)
{
    (void)state;
    struct switchover_peer peers[] = {fit("node2", 100, 1), fit("node3", 200, 1)};
    char chosen[FSM_NAME_MAX], why[256];
    assert_int_equal(
        switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node2");
    assert_int_equal(switchover_choose(peers, 2, "node9", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "node9 is not another member"));
    peers[0].streams_from_us = false;
    assert_int_equal(switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "does not stream from this primary"));
    peers[0] = fit("node2", 100, 1);
    peers[0].eligible = false;
    assert_int_equal(switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "may not be promoted"));
    peers[0] = fit("node2", 100, 1);
    peers[0].running_standby = false;
    assert_int_equal(switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "not a running standby"));
    peers[0] = fit("node2", 100, 1);
    peers[0].reachable = false;
    assert_int_equal(switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "does not answer"));
    /* A member whose removal is under way could never take over (raftpg_sim --seed 756534). */
    peers[0] = fit("node2", 300, 1);
    peers[0].leaving = true;
    assert_int_equal(switchover_choose(peers, 2, "node2", NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "node2 is being removed from the cluster");
    assert_int_equal(
        switchover_choose(peers, 2, NULL, NULL, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node3"); /* furthest ahead is node2, but it leaves */
}

static void test_best(void **state)
{
    (void)state;
    char chosen[FSM_NAME_MAX], why[256];
    struct switchover_peer peers[] = {fit("node2", 100, 1), fit("node3", 200, 1),
                                      fit("node4", 200, 5), fit("node5", 900, 1)};
    peers[3].streams_from_us = false; /* furthest, but not from this primary */
    assert_int_equal(
        switchover_choose(peers, 4, NULL, NULL, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node4"); /* tie on position: the higher priority */
    peers[2].priority = 1;
    assert_int_equal(
        switchover_choose(peers, 4, NULL, NULL, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node3"); /* full tie: first by name */
    for (int i = 0; i < 4; i++) {
        peers[i].eligible = false;
    }
    assert_int_equal(switchover_choose(peers, 4, NULL, NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_ENOTFOUND);
    assert_non_null(strstr(why, "no standby can take over"));
    assert_int_equal(switchover_choose(peers, 0, NULL, NULL, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_ENOTFOUND);
}

/* maximum_lag_on_failover, as Patroni's switchover applies it: a named candidate further behind
 * the primary than the limit is refused with its lag and the limit; without one, the lagging
 * standbys are passed over, and when all are, the refusal names the one furthest ahead. */
static void test_max_lag(void **state)
{
    (void)state;
    char chosen[FSM_NAME_MAX], why[512];
    struct switchover_peer peers[] = {fit("node2", 1000, 1), fit("node3", 9000, 1)};
    struct switchover_limit limit = {.primary = "node1", .primary_wal = 10000, .max_lag = 5000};
    assert_int_equal(switchover_choose(peers, 2, "node2", &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "node2 lags 9000 bytes behind primary node1 (wal position 1000 "
                             "against 10000), more than maximum_lag_on_failover (5000)");
    assert_int_equal(
        switchover_choose(peers, 2, "node3", &limit, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node3");
    /* At the limit: taken. */
    limit.max_lag = 9000;
    assert_int_equal(
        switchover_choose(peers, 2, "node2", &limit, chosen, sizeof chosen, why, sizeof why), 0);
    /* Without a candidate: node3 is furthest ahead and within the limit. */
    limit.max_lag = 5000;
    peers[1].priority = 0;
    peers[1].eligible = false;
    assert_int_equal(switchover_choose(peers, 2, NULL, &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_ENOTFOUND);
    assert_string_equal(why, "no standby can take over: the one furthest ahead, node2 lags 9000 "
                             "bytes behind primary node1 (wal position 1000 against 10000), more "
                             "than maximum_lag_on_failover (5000)");
    peers[1] = fit("node3", 2000, 1);
    assert_int_equal(switchover_choose(peers, 2, NULL, &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_ENOTFOUND);
    assert_non_null(strstr(why, "the one furthest ahead, node3 lags 8000 bytes"));
    limit.max_lag = 8000;
    assert_int_equal(
        switchover_choose(peers, 2, NULL, &limit, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node3");
    /* A standby ahead of the primary's last observation has no lag. */
    peers[0] = fit("node2", 12000, 1);
    limit.max_lag = 0;
    assert_int_equal(
        switchover_choose(peers, 2, NULL, &limit, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node2");
    /* Without a limit, the old choice. */
    assert_int_equal(
        switchover_choose(peers, 2, "node3", NULL, chosen, sizeof chosen, why, sizeof why), 0);
}

/* The lag is measured like with like: the primary's WAL position against the flush position
 * that the same observation of pg_stat_replication showed for the candidate. A report that
 * lags only because it is older than the primary's position passes; one truly behind does not,
 * whatever its own (older or newer) report says. */
static void test_max_lag_same_moment(void **state)
{
    (void)state;
    char chosen[FSM_NAME_MAX], why[512];
    struct switchover_limit limit = {
        .primary = "node1", .primary_wal = 100000000, .max_lag = 1048576};
    /* Its report is 20 MB behind (taken while 20 MB were written), but the primary saw it
     * flushed to within 64 kB of its position. */
    struct switchover_peer peers[] = {fit("node2", 80000000, 1)};
    peers[0].seen_by_primary = true;
    peers[0].flush_position = 100000000 - 65536;
    assert_int_equal(
        switchover_choose(peers, 1, "node2", &limit, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node2");
    assert_int_equal(
        switchover_choose(peers, 1, NULL, &limit, chosen, sizeof chosen, why, sizeof why), 0);
    assert_string_equal(chosen, "node2");
    /* Truly behind: the primary saw it 20 MB back, whatever its own report says. */
    peers[0] = fit("node2", 100000000, 1);
    peers[0].seen_by_primary = true;
    peers[0].flush_position = 80000000;
    assert_int_equal(switchover_choose(peers, 1, "node2", &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "node2 lags 20000000 bytes behind primary node1 (flushed 80000000 "
                             "when the primary was at 100000000), more than "
                             "maximum_lag_on_failover (1048576)");
    assert_int_equal(switchover_choose(peers, 1, NULL, &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_ENOTFOUND);
    assert_string_equal(why, "no standby can take over: the one furthest ahead, node2 lags "
                             "20000000 bytes behind primary node1 (flushed 80000000 when the "
                             "primary was at 100000000), more than maximum_lag_on_failover "
                             "(1048576)");
    /* Not in the primary's observation: its report is all there is, and it counts. */
    peers[0] = fit("node2", 80000000, 1);
    assert_int_equal(switchover_choose(peers, 1, "node2", &limit, chosen, sizeof chosen, why,
                                       sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, "node2 lags 20000000 bytes behind primary node1 (wal position "
                             "80000000 against 100000000), more than maximum_lag_on_failover "
                             "(1048576)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named),
        cmocka_unit_test(test_best),
        cmocka_unit_test(test_max_lag),
        cmocka_unit_test(test_max_lag_same_moment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
