/* Unit tests of the history's reading of PostgreSQL timeline history files and of its Patroni
 * document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "raftpg/history.h"

static void test_switchpoint_is_the_last_entry(void **state)
{
    (void)state;
    /* Timeline 3's file: its own branch is the last line. */
    static const char text[] = "1\t0/5000028\tno recovery target specified\n"
                               "\n"
                               "2\t0/50000A0\tno recovery target specified\n";
    uint32_t prev = 0;
    uint64_t lsn = 0;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(history_switchpoint(text, strlen(text), &prev, &lsn, errmsg), 0);
    assert_int_equal(prev, 2);
    assert_int_equal(lsn, 0x50000A0);
    static const char high[] = "# comment\n7\t1A/FF000000\treason\n";
    assert_int_equal(history_switchpoint(high, strlen(high), &prev, &lsn, errmsg), 0);
    assert_int_equal(prev, 7);
    assert_int_equal(lsn, 0x1AFF000000ull);
}

static void test_switchpoint_refuses_what_does_not_parse(void **state)
{
    (void)state;
    uint32_t prev = 0;
    uint64_t lsn = 0;
    char errmsg[RPG_ERRMSG_SIZE];
    static const char bad[] = "1\t0/5000028\tok\nnot a line\n";
    assert_int_equal(history_switchpoint(bad, strlen(bad), &prev, &lsn, errmsg), RPG_EPROTO);
    assert_string_equal(
        errmsg, "timeline history line 2: expected \"TIMELINE<tab>X/Y\", got \"not a line\"");
    assert_int_equal(history_switchpoint("", 0, &prev, &lsn, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "timeline history has no entry");
}

static void test_json_is_patroni_shape(void **state)
{
    (void)state;
    struct fsm_state s;
    fsm_state_init(&s);
    s.n_history = 2;
    s.history[0] = (struct fsm_history_entry){
        .timeline = 1, .time_ms = 1700000000123, .reason = FSM_HISTORY_BOOTSTRAP};
    snprintf(s.history[0].primary, FSM_NAME_MAX, "node1");
    s.history[1] = (struct fsm_history_entry){.timeline = 2,
                                              .prev_timeline = 1,
                                              .lsn = 83886240,
                                              .time_ms = 1700000100004,
                                              .reason = FSM_HISTORY_SWITCHOVER};
    snprintf(s.history[1].primary, FSM_NAME_MAX, "node2");
    json_t *o = history_json(&s);
    char *text = json_dumps(o, JSON_COMPACT);
    assert_string_equal(text, "[[0,0,\"bootstrap\",\"2023-11-14T22:13:20.123+00:00\",\"node1\"],"
                              "[1,83886240,\"switchover\",\"2023-11-14T22:15:00.004+00:00\","
                              "\"node2\"]]");
    free(text);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switchpoint_is_the_last_entry),
        cmocka_unit_test(test_switchpoint_refuses_what_does_not_parse),
        cmocka_unit_test(test_json_is_patroni_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
