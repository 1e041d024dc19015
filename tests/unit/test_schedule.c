/* Scheduled switchovers (schedule.h): the ISO 8601 times an operator types, and what the leader
 * does with a schedule at a given time, every verdict with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "raftpg/err.h"
#include "raftpg/schedule.h"

/* 2026-12-06T17:30:00Z */
#define T0 1796578200000LL

static void parses(const char *text, int64_t want)
{
    int64_t ms = -1;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = schedule_parse_time(text, false, &ms, errmsg);
    if (rc != 0 || ms != want) {
        fail_msg("\"%s\": rc=%d ms=%lld want %lld (%s)", text, rc, (long long)ms, (long long)want,
                 errmsg);
    }
}

static void refused(const char *text, const char *message)
{
    int64_t ms = 42;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    assert_int_equal(schedule_parse_time(text, false, &ms, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, message);
    assert_int_equal(ms, 42);
}

static void test_parse_zones_and_fractions(void **state)
{
    (void)state;
    parses("2026-12-06T17:30:00Z", T0);
    parses("2026-12-06T17:30:00+00:00", T0);
    parses("2026-12-06 17:30:00z", T0);
    parses("2026-12-06T17:30Z", T0);
    parses("2026-12-06T18:30:00+01:00", T0);
    parses("2026-12-06T18:30:00+0100", T0);
    parses("2026-12-06T18:30+01", T0);
    parses("2026-12-06T12:00:00-05:30", T0);
    parses("2026-12-06T17:30:00.5Z", T0 + 500);
    parses("2026-12-06T17:30:00.123456+00:00", T0 + 123);
    parses("2026-12-06T17:30:00,07Z", T0 + 70);
    parses("1970-01-01T00:00:00Z", 0);
    parses("2024-02-29T00:00:00Z", 1709164800000LL);
}

static void test_parse_refusals_name_what_and_where(void **state)
{
    (void)state;
    refused("2026-12-06T17:30:00",
            "\"2026-12-06T17:30:00\": a time zone is required (Z, or an offset such as +01:00)");
    refused("tomorrow", "\"tomorrow\": expected ISO 8601 (e.g. 2026-01-14T10:09:57+00:00): a date "
                        "YYYY-MM-DD at character 1");
    refused("2026-12-06",
            "\"2026-12-06\": expected ISO 8601 (e.g. 2026-01-14T10:09:57+00:00): T or "
            "a space, then a time HH:MM at character 11");
    refused("2026-12-06T17:30:00Zjunk", "\"2026-12-06T17:30:00Zjunk\": expected ISO 8601 (e.g. "
                                        "2026-01-14T10:09:57+00:00): the end after the time zone "
                                        "at character 21");
    refused("2026-12-06T17:30:0Z", "\"2026-12-06T17:30:0Z\": expected ISO 8601 (e.g. "
                                   "2026-01-14T10:09:57+00:00): seconds SS at character 18");
    refused("2026-12-06T17:30:00.Z", "\"2026-12-06T17:30:00.Z\": expected ISO 8601 (e.g. "
                                     "2026-01-14T10:09:57+00:00): a fraction of a second at "
                                     "character 21");
    refused("2026-12-06T17:30:00+1", "\"2026-12-06T17:30:00+1\": expected ISO 8601 (e.g. "
                                     "2026-01-14T10:09:57+00:00): a zone +HH, +HHMM or +HH:MM at "
                                     "character 21");
    refused("2026-02-29T00:00:00Z", "\"2026-02-29T00:00:00Z\": no such date or time");
    refused("2026-13-01T00:00:00Z", "\"2026-13-01T00:00:00Z\": no such date or time");
    refused("2026-12-06T24:00:00Z", "\"2026-12-06T24:00:00Z\": no such date or time");
    refused("2026-12-06T17:30:00+24:00", "\"2026-12-06T17:30:00+24:00\": zone offset out of range");
    refused("", "\"\": expected ISO 8601 (e.g. 2026-01-14T10:09:57+00:00): a date YYYY-MM-DD at "
                "character 1");
}

/* Without a zone, patronictl reads local time: so does ctl (local = true). */
static void test_parse_local_time(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    int64_t ms = 0;
    setenv("TZ", "UTC+02", 1); /* POSIX: two hours west of UTC */
    tzset();
    assert_int_equal(schedule_parse_time("2026-12-06T15:30:00", true, &ms, errmsg), 0);
    assert_int_equal(ms, T0);
    /* A zone, when given, wins over the local one. */
    assert_int_equal(schedule_parse_time("2026-12-06T17:30:00Z", true, &ms, errmsg), 0);
    assert_int_equal(ms, T0);
    unsetenv("TZ");
    tzset();
}

static void test_format_roundtrips(void **state)
{
    (void)state;
    char buf[48];
    schedule_format_time(T0 + 7, buf, sizeof buf);
    assert_string_equal(buf, "2026-12-06T17:30:00.007+00:00");
    parses(buf, T0 + 7);
    schedule_format_time(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000+00:00");
}

static void state_with(struct fsm_state *s, const char *primary, int64_t at, const char *from,
                       const char *to)
{
    fsm_state_init(s);
    s->initialized = true;
    snprintf(s->primary.name, sizeof s->primary.name, "%s", primary);
    s->switchover.at_ms = at;
    snprintf(s->switchover.from, sizeof s->switchover.from, "%s", from);
    snprintf(s->switchover.to, sizeof s->switchover.to, "%s", to);
}

static void decides(const struct fsm_state *s, int64_t now, enum schedule_verdict want,
                    const char *why_want)
{
    char why[RPG_ERRMSG_SIZE];
    enum schedule_verdict v = schedule_decide(s, now, why, sizeof why);
    if (v != want || strcmp(why, why_want) != 0) {
        fail_msg("verdict %s (%s), want %s (%s)", schedule_verdict_name(v), why,
                 schedule_verdict_name(want), why_want);
    }
}

static void test_decide_every_verdict(void **state)
{
    (void)state;
    struct fsm_state s;
    state_with(&s, "node1", 0, "", "");
    decides(&s, T0, SCHEDULE_NONE, "no switchover is scheduled");

    state_with(&s, "node1", T0, "node1", "node2");
    decides(&s, T0 - 1500, SCHEDULE_WAIT,
            "the switchover is scheduled at 2026-12-06T17:30:00.000+00:00, in 1500 ms");
    /* Not one millisecond early. */
    decides(&s, T0 - 1, SCHEDULE_WAIT,
            "the switchover is scheduled at 2026-12-06T17:30:00.000+00:00, in 1 ms");
    decides(&s, T0, SCHEDULE_RUN,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    decides(&s, T0 + SCHEDULE_STALE_MS, SCHEDULE_RUN,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    decides(&s, T0 + SCHEDULE_STALE_MS + 1, SCHEDULE_DROP_STALE,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is stale (15001 ms late, "
            "more than 15000): dropped");

    /* Maintenance mode: left alone, whatever the time (Patroni). */
    s.paused = true;
    decides(&s, T0 + 1, SCHEDULE_WAIT,
            "maintenance mode: the switchover at 2026-12-06T17:30:00.000+00:00 waits");
    decides(&s, T0 + SCHEDULE_STALE_MS * 10, SCHEDULE_WAIT,
            "maintenance mode: the switchover at 2026-12-06T17:30:00.000+00:00 waits");
    s.paused = false;

    /* Its primary is no longer the primary: dropped (Patroni: "leader name does not match"). */
    state_with(&s, "node3", T0, "node1", "node2");
    decides(&s, T0 + 5, SCHEDULE_DROP_LEADER,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is from node1, which is "
            "not the primary (node3 is): dropped");
    state_with(&s, "", T0, "node1", "node2");
    decides(&s, T0 + 5, SCHEDULE_DROP_LEADER,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is from node1, which is "
            "not the primary (none is): dropped");
    /* Its candidate is the primary already. */
    state_with(&s, "node2", T0, "", "node2");
    decides(&s, T0 + 5, SCHEDULE_DROP_ALREADY,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is to node2, which is the "
            "primary already: dropped");
    /* Without from, whichever member is primary then runs it. */
    state_with(&s, "node2", T0, "", "node3");
    decides(&s, T0 + 5, SCHEDULE_RUN,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    state_with(&s, "node2", T0, "", "");
    decides(&s, T0, SCHEDULE_RUN,
            "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is due");
}

/* A due schedule, cleared, whose start was refused for a moment: tried again while due. */
static void test_retry_decide(void **state)
{
    (void)state;
    struct fsm_state s;
    char why[RPG_ERRMSG_SIZE];
    state_with(&s, "node1", 0, "", ""); /* the entry is cleared */
    struct fsm_switchover due;
    memset(&due, 0, sizeof due);
    due.at_ms = T0;
    snprintf(due.from, sizeof due.from, "node1");
    snprintf(due.to, sizeof due.to, "node2");

    assert_int_equal(schedule_retry_decide(&due, &s, true, true, T0 + 50, why, sizeof why),
                     SCHEDULE_RUN);
    assert_int_equal(schedule_retry_decide(&due, &s, true, false, T0 + 50, why, sizeof why),
                     SCHEDULE_WAIT);
    assert_string_equal(why, "the switchover scheduled at 2026-12-06T17:30:00.000+00:00 is due: "
                             "waiting for this member to run as a settled primary");
    assert_int_equal(schedule_retry_decide(&due, &s, false, true, T0 + 50, why, sizeof why),
                     SCHEDULE_DROP_LEADER);
    assert_string_equal(why, "the switchover scheduled at 2026-12-06T17:30:00.000+00:00: this "
                             "member no longer leads: dropped");
    assert_int_equal(schedule_retry_decide(&due, &s, true, false, T0 + SCHEDULE_STALE_MS + 1, why,
                                           sizeof why),
                     SCHEDULE_DROP_STALE);
    snprintf(s.primary.name, sizeof s.primary.name, "node2");
    assert_int_equal(schedule_retry_decide(&due, &s, true, true, T0 + 50, why, sizeof why),
                     SCHEDULE_DROP_LEADER);
    s.paused = true;
    assert_int_equal(schedule_retry_decide(&due, &s, true, true, T0 + 50, why, sizeof why),
                     SCHEDULE_WAIT);

    assert_true(schedule_retry_refusal(503));
    assert_false(schedule_retry_refusal(412));
    assert_false(schedule_retry_refusal(409));
}

static void restart_decides(const struct restart_schedule *r, int64_t now, bool paused,
                            const char *start_time, enum schedule_verdict want,
                            const char *why_want)
{
    char why[RPG_ERRMSG_SIZE];
    enum schedule_verdict v = restart_schedule_decide(r, now, paused, start_time, why, sizeof why);
    if (v != want || strcmp(why, why_want) != 0) {
        fail_msg("verdict %s (%s), want %s (%s)", schedule_verdict_name(v), why,
                 schedule_verdict_name(want), why_want);
    }
}

/* A member's scheduled restart: not early, not while paused, dropped when stale or when the
 * server was started again in between (Patroni's postmaster_start_time check). */
static void test_restart_decide_every_verdict(void **state)
{
    (void)state;
    const char *started = "2026-12-06 17:00:00.123456+00";
    struct restart_schedule r;
    memset(&r, 0, sizeof r);
    restart_decides(&r, T0, false, started, SCHEDULE_NONE, "no restart is scheduled");

    r.at_ms = T0;
    snprintf(r.start_time, sizeof r.start_time, "%s", started);
    restart_decides(&r, T0 - 1, false, started, SCHEDULE_WAIT,
                    "the restart is scheduled at 2026-12-06T17:30:00.000+00:00, in 1 ms");
    restart_decides(&r, T0, false, started, SCHEDULE_RUN,
                    "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    restart_decides(&r, T0 + SCHEDULE_STALE_MS, false, started, SCHEDULE_RUN,
                    "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    restart_decides(&r, T0 + SCHEDULE_STALE_MS + 1, false, started, SCHEDULE_DROP_STALE,
                    "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is stale (15001 ms "
                    "late, more than 15000): dropped");
    /* Maintenance mode: it waits, due or not. */
    restart_decides(&r, T0 + 1, true, started, SCHEDULE_WAIT,
                    "maintenance mode: the restart at 2026-12-06T17:30:00.000+00:00 waits");
    /* A server that is not running now says nothing about a restart (compared later). */
    restart_decides(&r, T0, false, "", SCHEDULE_RUN,
                    "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is due");
    /* Started again since it was scheduled: moot, before its time and while paused too. */
    const char *again = "2026-12-06 17:10:00.5+00";
    const char *moot = "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is moot: "
                       "postgresql was started again at 2026-12-06 17:10:00.5+00 since (it ran "
                       "since 2026-12-06 17:00:00.123456+00 when scheduled): dropped";
    restart_decides(&r, T0 - 60000, false, again, SCHEDULE_DROP_RESTARTED, moot);
    restart_decides(&r, T0 - 60000, true, again, SCHEDULE_DROP_RESTARTED, moot);
    /* Scheduled while the server did not run: no start time to compare with. */
    r.start_time[0] = '\0';
    restart_decides(&r, T0, false, again, SCHEDULE_RUN,
                    "the restart scheduled at 2026-12-06T17:30:00.000+00:00 is due");
}

static void test_pg_version(void **state)
{
    (void)state;
    int v = -1;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    assert_int_equal(schedule_parse_pg_version("15.4", &v, errmsg), 0);
    assert_int_equal(v, 150004);
    assert_int_equal(schedule_parse_pg_version("10.23", &v, errmsg), 0);
    assert_int_equal(v, 100023);
    assert_int_equal(schedule_parse_pg_version("9.6.24", &v, errmsg), 0);
    assert_int_equal(v, 90624);
    const char *bad[] = {"", "15", "15.", "15.4.1", "9.6", "x15.4", "15.4 ", "15,4", "0.1.2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errmsg[0] = '\0';
        if (schedule_parse_pg_version(bad[i], &v, errmsg) != RPG_EINVAL ||
            strstr(errmsg, "is not a PostgreSQL version") == NULL) {
            fail_msg("\"%s\" accepted or without a reason (%s)", bad[i], errmsg);
        }
    }
}

/* Patroni's restart timeout: seconds, with an optional unit, 1..SCHEDULE_TIMEOUT_MAX_S. */
static void test_restart_timeout(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    unsigned s = 0;
    assert_int_equal(schedule_parse_timeout("30", &s, errmsg), 0);
    assert_int_equal(s, 30);
    assert_int_equal(schedule_parse_timeout("45s", &s, errmsg), 0);
    assert_int_equal(s, 45);
    assert_int_equal(schedule_parse_timeout("2min", &s, errmsg), 0);
    assert_int_equal(s, 120);
    assert_int_equal(schedule_parse_timeout("1h", &s, errmsg), 0);
    assert_int_equal(s, 3600);
    assert_int_equal(schedule_parse_timeout("86400", &s, errmsg), 0);
    assert_int_equal(s, 86400);
    const char *range[] = {"0", "0s", "86401", "25h", "99999999999999999999"};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
        assert_int_equal(schedule_parse_timeout(range[i], &s, errmsg), RPG_EINVAL);
    }
    assert_string_equal(errmsg, "\"99999999999999999999\" is out of range: 1..86400 seconds");
    const char *bad[] = {"", "-5", "5 s", "5x", "s", "1.5", "(not a number)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(schedule_parse_timeout(bad[i], &s, errmsg), RPG_EINVAL);
    }
    assert_string_equal(errmsg, "\"(not a number)\" is not a positive number of seconds (30, "
                                "\"30s\", \"2min\" or \"1h\")");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_zones_and_fractions),
        cmocka_unit_test(test_parse_refusals_name_what_and_where),
        cmocka_unit_test(test_parse_local_time),
        cmocka_unit_test(test_format_roundtrips),
        cmocka_unit_test(test_decide_every_verdict),
        cmocka_unit_test(test_retry_decide),
        cmocka_unit_test(test_restart_decide_every_verdict),
        cmocka_unit_test(test_pg_version),
        cmocka_unit_test(test_restart_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
