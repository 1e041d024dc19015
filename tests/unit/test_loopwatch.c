/* The loop-stall detector's pure part: judging a phase, keeping the longest named callbacks,
 * reading schedstat, the rate limit and the report line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/loopwatch.h"

#define MS 1000000ULL

static struct loopwatch_mark at(uint64_t wall_ms, uint64_t cpu_ms, uint64_t runq_ms)
{
    return (struct loopwatch_mark){.wall_ns = wall_ms * MS,
                                   .sched_known = true,
                                   .cpu_ns = cpu_ms * MS,
                                   .runq_ns = runq_ms * MS};
}

/* A timer callback that ran 80 ms, 20 of them on a CPU and 30 waiting for one. */
static void test_timers_phase_over_the_bound_is_split(void **state)
{
    (void)state;
    struct loopwatch_mark a = at(1000, 500, 100), b = at(1080, 520, 130);
    struct loopwatch_stall s;
    assert_true(loopwatch_judge(LOOPWATCH_PHASE_TIMERS, &a, &b, 0, 0, 50 * MS, &s));
    assert_int_equal(s.held_ns, 80 * MS);
    assert_int_equal(s.cpu_ns, 20 * MS);
    assert_int_equal(s.runq_ns, 30 * MS);
    assert_int_equal(s.blocked_ns, 30 * MS);
    assert_int_equal(s.late_ns, 0);
}

/* A poll that slept its planned 10 ms and ran callbacks for 45 ms held the loop 45 ms. */
static void test_poll_planned_wait_does_not_count(void **state)
{
    (void)state;
    struct loopwatch_mark a = at(0, 0, 0), b = at(55, 40, 5);
    struct loopwatch_stall s;
    assert_false(loopwatch_judge(LOOPWATCH_PHASE_POLL, &a, &b, 10 * MS, 10 * MS, 50 * MS, &s));
    assert_int_equal(s.held_ns, 45 * MS);
    assert_int_equal(s.blocked_ns, 0);
    /* An infinite timeout: every idle nanosecond was planned. */
    struct loopwatch_mark c = at(0, 0, 0), d = at(5000, 1, 0);
    assert_false(loopwatch_judge(LOOPWATCH_PHASE_POLL, &c, &d, -1, 4990 * MS, 50 * MS, &s));
    assert_int_equal(s.held_ns, 10 * MS);
    assert_int_equal(s.late_ns, 0);
}

/* The poll planned 10 ms and came back after 300: a late wake-up, the thread waiting for a CPU. */
static void test_poll_late_wakeup_is_held(void **state)
{
    (void)state;
    struct loopwatch_mark a = at(0, 0, 0), b = at(302, 1, 280);
    struct loopwatch_stall s;
    assert_true(loopwatch_judge(LOOPWATCH_PHASE_POLL, &a, &b, 10 * MS, 300 * MS, 50 * MS, &s));
    assert_int_equal(s.held_ns, 292 * MS);
    assert_int_equal(s.late_ns, 290 * MS);
    assert_int_equal(s.cpu_ns, 1 * MS);
    assert_int_equal(s.runq_ns, 280 * MS);
    assert_int_equal(s.blocked_ns, 11 * MS);
}

/* Counters that do not add up (read at slightly different instants) never exceed what was held;
 * clocks read backwards count as nothing; no schedstat leaves the split unknown. */
static void test_judge_clamps_and_unknown(void **state)
{
    (void)state;
    struct loopwatch_mark a = at(100, 0, 0), b = at(160, 50, 30);
    struct loopwatch_stall s;
    assert_true(loopwatch_judge(LOOPWATCH_PHASE_TIMERS, &a, &b, 0, 0, 50 * MS, &s));
    assert_int_equal(s.cpu_ns, 50 * MS);
    assert_int_equal(s.runq_ns, 10 * MS);
    assert_int_equal(s.blocked_ns, 0);
    assert_false(loopwatch_judge(LOOPWATCH_PHASE_TIMERS, &b, &a, 0, 0, 50 * MS, &s));
    assert_int_equal(s.held_ns, 0);
    b.sched_known = false;
    assert_true(loopwatch_judge(LOOPWATCH_PHASE_TIMERS, &a, &b, 0, 0, 50 * MS, &s));
    assert_false(s.sched_known);
    assert_int_equal(s.cpu_ns + s.runq_ns + s.blocked_ns, 0);
    /* Exactly the bound is not over it. */
    struct loopwatch_mark c = at(0, 0, 0), d = at(50, 0, 0);
    assert_false(loopwatch_judge(LOOPWATCH_PHASE_TIMERS, &c, &d, 0, 0, 50 * MS, &s));
}

static void test_spans_keep_the_longest(void **state)
{
    (void)state;
    struct loopwatch_span sp[LOOPWATCH_SPANS];
    memset(sp, 0, sizeof sp);
    loopwatch_spans_add(sp, "a", 5);
    loopwatch_spans_add(sp, "b", 7);
    loopwatch_spans_add(sp, "c", 1);
    assert_string_equal(sp[0].name, "b");
    assert_string_equal(sp[1].name, "a");
    assert_string_equal(sp[2].name, "c");
    loopwatch_spans_add(sp, "d", 1); /* not longer than the shortest kept: dropped */
    assert_string_equal(sp[2].name, "c");
    loopwatch_spans_add(sp, "e", 6);
    assert_string_equal(sp[0].name, "b");
    assert_string_equal(sp[1].name, "e");
    assert_string_equal(sp[2].name, "a");
    loopwatch_spans_add(sp, "a", 4); /* the same name adds up and moves up */
    assert_string_equal(sp[0].name, "a");
    assert_int_equal(sp[0].ns, 9);
    assert_string_equal(sp[1].name, "b");
    assert_string_equal(sp[2].name, "e");
}

static void test_parse_schedstat(void **state)
{
    (void)state;
    uint64_t cpu = 0, runq = 0;
    assert_true(loopwatch_parse_schedstat("206224 581235 1\n", &cpu, &runq));
    assert_int_equal(cpu, 206224);
    assert_int_equal(runq, 581235);
    assert_true(loopwatch_parse_schedstat("0 3935113", &cpu, &runq));
    assert_int_equal(runq, 3935113);
    assert_false(loopwatch_parse_schedstat("", &cpu, &runq));
    assert_false(loopwatch_parse_schedstat("12", &cpu, &runq));
    assert_false(loopwatch_parse_schedstat("12x 4 1", &cpu, &runq));
    assert_false(loopwatch_parse_schedstat("-1 4 1", &cpu, &runq));
    assert_false(loopwatch_parse_schedstat("99999999999999999999999 4 1", &cpu, &runq));
}

static void test_rate_limit_counts_what_it_leaves_out(void **state)
{
    (void)state;
    struct loopwatch_limit l;
    memset(&l, 0, sizeof l);
    unsigned n;
    uint64_t longest;
    assert_true(loopwatch_limit_allows(&l, 5000 * MS, 60 * MS, &n, &longest));
    assert_int_equal(n, 0);
    assert_false(loopwatch_limit_allows(&l, 5100 * MS, 70 * MS, &n, &longest));
    assert_false(loopwatch_limit_allows(&l, 5999 * MS, 200 * MS, &n, &longest));
    assert_true(loopwatch_limit_allows(&l, 6000 * MS, 55 * MS, &n, &longest));
    assert_int_equal(n, 2);
    assert_int_equal(longest, 200 * MS);
    assert_true(loopwatch_limit_allows(&l, 7500 * MS, 55 * MS, &n, &longest));
    assert_int_equal(n, 0);
    assert_int_equal(longest, 0);
}

static void test_format_names_phase_split_and_callbacks(void **state)
{
    (void)state;
    struct loopwatch_stall s;
    memset(&s, 0, sizeof s);
    s.phase = LOOPWATCH_PHASE_POLL;
    s.held_ns = 292 * MS + 500000;
    s.late_ns = 290 * MS;
    s.sched_known = true;
    s.cpu_ns = 1 * MS;
    s.runq_ns = 280 * MS;
    s.blocked_ns = 11 * MS;
    char buf[512];
    loopwatch_format(&s, 0, 0, buf, sizeof buf);
    assert_string_equal(buf,
                        "loop stall: poll and i/o callbacks held the loop 292 ms (bound 50 ms): "
                        "on a cpu 1 ms, waiting for a cpu 280 ms, blocked or stopped 11 ms; "
                        "the poll woke 290 ms late; no named callback ran");
    s.phase = LOOPWATCH_PHASE_TIMERS;
    s.late_ns = 0;
    s.sched_known = false;
    s.spans[0] = (struct loopwatch_span){"ha tick", 120 * MS};
    s.spans[1] = (struct loopwatch_span){"log write", 118 * MS};
    loopwatch_format(&s, 3, 75 * MS, buf, sizeof buf);
    assert_string_equal(buf,
                        "loop stall: timers and check callbacks held the loop 292 ms (bound 50 "
                        "ms); longest named callbacks: ha tick 120 ms, log write 118 ms; 3 "
                        "more since the last report, the longest 75 ms");
    /* A short buffer is cut, never overrun. */
    char small[16];
    loopwatch_format(&s, 0, 0, small, sizeof small);
    assert_string_equal(small, "loop stall: tim");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_phase_over_the_bound_is_split),
        cmocka_unit_test(test_poll_planned_wait_does_not_count),
        cmocka_unit_test(test_poll_late_wakeup_is_held),
        cmocka_unit_test(test_judge_clamps_and_unknown),
        cmocka_unit_test(test_spans_keep_the_longest),
        cmocka_unit_test(test_parse_schedstat),
        cmocka_unit_test(test_rate_limit_counts_what_it_leaves_out),
        cmocka_unit_test(test_format_names_phase_split_and_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
