/* peers_read_status: what a member's answer to GET /status becomes, and a malformed answer's
 * error, which names the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "raftpg/peers.h"

static struct peer_status st;

static int answer(const char *body)
{
    memset(&st, 0, sizeof st);
    snprintf(st.name, sizeof st.name, "node2");
    snprintf(st.api, sizeof st.api, "127.0.0.1:8002");
    return peers_read_status(&st, 200, body, strlen(body));
}

static void test_a_full_answer(void **state)
{
    (void)state;
    assert_int_equal(answer("{\"id\": 2, \"term\": 7, \"raft_role\": \"follower\", \"leader\": "
                            "\"node1\", \"postgresql\": {\"state\": \"running\", \"in_recovery\": "
                            "true, \"timeline\": 3, \"wal_position\": 83886080, \"crashes\": 2, "
                            "\"start_failures\": 1}, \"tags\": {\"failover_priority\": 5}, "
                            "\"state\": {\"applied_index\": 40, \"checksum\": \"ab\", "
                            "\"members\": {\"node1\": 1, \"node2\": 2}}}"),
                     0);
    assert_true(st.reachable);
    assert_string_equal(st.error, "");
    assert_int_equal(st.id, 2);
    assert_int_equal(st.term, 7);
    assert_true(st.has_pg);
    assert_int_equal(st.pg_timeline, 3);
    assert_int_equal(st.pg_wal_position, 83886080);
    assert_int_equal(st.pg_crashes, 2);
    assert_int_equal(st.pg_start_failures, 1);
    assert_int_equal(st.failover_priority, 5);
    assert_int_equal(st.state_index, 40);
    assert_int_equal(st.n_members, 2);
    assert_string_equal(st.members[1].name, "node2");
    assert_int_equal(st.members[1].id, 2);
}

/* Fields an older member does not send read as 0 (failover_priority as 1, the default). */
static void test_absent_and_null_fields(void **state)
{
    (void)state;
    assert_int_equal(
        answer("{\"id\": 3, \"term\": null, \"postgresql\": {\"state\": \"stopped\"}}"), 0);
    assert_true(st.reachable);
    assert_int_equal(st.term, 0);
    assert_int_equal(st.pg_crashes, 0);
    assert_int_equal(st.failover_priority, 1);
}

/* A null failover_priority is not 0 (never a candidate) but the default, as an absent one. */
static void test_null_failover_priority_reads_as_the_default(void **state)
{
    (void)state;
    assert_int_equal(answer("{\"id\": 2, \"tags\": {\"failover_priority\": null}}"), 0);
    assert_true(st.reachable);
    assert_int_equal(st.failover_priority, 1);
    assert_int_equal(answer("{\"id\": 2, \"tags\": {\"failover_priority\": 0}}"), 0);
    assert_int_equal(st.failover_priority, 0);
}

static void test_a_negative_count_is_refused(void **state)
{
    (void)state;
    assert_int_equal(
        answer("{\"id\": 2, \"postgresql\": {\"state\": \"running\", \"crashes\": -1}}"), -1);
    assert_false(st.reachable);
    assert_string_equal(st.error, "127.0.0.1:8002: bad /status answer: postgresql.crashes is -1, "
                                  "not an integer from 0 to 4294967295");
}

static void test_wrong_types_are_refused(void **state)
{
    (void)state;
    assert_int_equal(answer("{\"id\": \"2\"}"), -1);
    assert_string_equal(st.error, "127.0.0.1:8002: bad /status answer: id is \"2\", not an "
                                  "integer from 0 to 9223372036854775807");
    assert_int_equal(answer("{\"id\": 2, \"postgresql\": {\"timeline\": 4294967296}}"), -1);
    assert_non_null(strstr(st.error, "postgresql.timeline is 4294967296"));
    assert_int_equal(answer("{\"id\": 2, \"tags\": {\"failover_priority\": -3}}"), -1);
    assert_non_null(strstr(st.error, "tags.failover_priority is -3"));
    assert_int_equal(answer("{\"id\": 2, \"state\": {\"members\": {\"node1\": 1.5}}}"), -1);
    assert_non_null(strstr(st.error, "state.members.node1 is 1.5"));
    assert_false(st.reachable);
}

static void test_not_json(void **state)
{
    (void)state;
    assert_int_equal(answer("{\"id\": 2"), -1);
    assert_string_equal(st.error, "127.0.0.1:8002: bad /status answer (http 200)");
    memset(&st, 0, sizeof st);
    snprintf(st.api, sizeof st.api, "127.0.0.1:8002");
    assert_int_equal(peers_read_status(&st, 503, "{}", 2), -1);
    assert_string_equal(st.error, "127.0.0.1:8002: bad /status answer (http 503)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_full_answer),
        cmocka_unit_test(test_absent_and_null_fields),
        cmocka_unit_test(test_null_failover_priority_reads_as_the_default),
        cmocka_unit_test(test_a_negative_count_is_refused),
        cmocka_unit_test(test_wrong_types_are_refused),
        cmocka_unit_test(test_not_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
