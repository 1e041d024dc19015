/* Health-check answers (health.h): Patroni's paths, lag and tag filters, and what a member that
 * does not act answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/err.h"
#include "raftpg/health.h"

static const struct health_tag TAGS[] = {{"nofailover", "false"},
                                         {"nosync", "false"},
                                         {"noloadbalance", "false"},
                                         {"failover_priority", "1"}};

static struct health_input primary(void)
{
    struct health_input in;
    memset(&in, 0, sizeof in);
    in.alive = in.acting = in.has_pg = in.running = true;
    in.raft_leader = in.ready_leader = true;
    in.received_position = in.replay_position = 5000000;
    in.default_lag = 1 << 20;
    in.tags = TAGS;
    in.n_tags = 4;
    return in;
}

static struct health_input standby(enum health_standby kind)
{
    struct health_input in = primary();
    in.raft_leader = in.ready_leader = false;
    in.in_recovery = in.streaming = true;
    in.standby = kind;
    in.primary_position = 5000000;
    return in;
}

static int code(const char *path, const char *query, const struct health_input *in)
{
    struct health_query q;
    char err[RPG_ERRMSG_SIZE];
    assert_int_equal(health_parse_query(query, &q, err, sizeof err), 0);
    enum health_kind k = health_kind_of(path);
    assert_int_not_equal(k, HEALTH_NONE);
    return health_status(k, in, &q);
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(health_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(health_parse_size("1024kB", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(health_parse_size("10MB", &v), 0);
    assert_int_equal(v, 10485760);
    assert_int_equal(health_parse_size("1GB", &v), 0);
    assert_int_equal(v, 1073741824);
    assert_int_equal(health_parse_size("16mb", &v), 0);
    assert_int_equal(v, 16777216);
    static const char *const bad[] = {
        "", "garbage", "-1", "1.5MB", "10 MB", "1PB", "99999999999999999999", "17179869184GB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(health_parse_size(bad[i], &v), RPG_EINVAL);
    }
}

static void test_queries(void **state)
{
    (void)state;
    struct health_query q;
    char err[RPG_ERRMSG_SIZE];
    assert_int_equal(health_parse_query("lag=10MB&tag_zone=eu%2Dwest&replication_state=streaming",
                                        &q, err, sizeof err),
                     0);
    assert_true(q.has_lag);
    assert_int_equal(q.lag, 10485760);
    assert_string_equal(q.replication_state, "streaming");
    assert_int_equal(q.n_tags, 1);
    assert_string_equal(q.tags[0].key, "zone");
    assert_string_equal(q.tags[0].value, "eu-west");
    assert_int_equal(health_parse_query("", &q, err, sizeof err), 0);
    assert_false(q.has_lag);
    assert_int_equal(health_parse_query(NULL, &q, err, sizeof err), 0);
    /* Each refusal names the parameter. */
    assert_int_equal(health_parse_query("lag=garbage", &q, err, sizeof err), RPG_EINVAL);
    assert_non_null(strstr(err, "lag=garbage"));
    assert_int_equal(health_parse_query("mode=fast", &q, err, sizeof err), RPG_EINVAL);
    assert_non_null(strstr(err, "mode=fast"));
    assert_int_equal(health_parse_query("replication_state=recovering", &q, err, sizeof err),
                     RPG_EINVAL);
    assert_non_null(strstr(err, "replication_state=recovering"));
    assert_int_equal(
        health_parse_query("replication_state=in+archive+recovery", &q, err, sizeof err), 0);
    assert_int_equal(health_parse_query("colour=red", &q, err, sizeof err), RPG_EINVAL);
    assert_non_null(strstr(err, "colour"));
    assert_int_equal(health_parse_query("lag", &q, err, sizeof err), RPG_EINVAL);
    assert_int_equal(health_parse_query("lag=%zz", &q, err, sizeof err), RPG_EINVAL);
    assert_int_equal(health_parse_query("lag=%4", &q, err, sizeof err), RPG_EINVAL);
    assert_int_equal(health_parse_query("tag_a=%00", &q, err, sizeof err), RPG_EINVAL);
    char many[512] = "";
    for (int i = 0; i < HEALTH_TAGS_MAX + 1; i++) {
        strcat(many, i ? "&tag_k=v" : "tag_k=v");
    }
    assert_int_equal(health_parse_query(many, &q, err, sizeof err), RPG_EINVAL);
    char longname[200] = "tag_";
    memset(longname + 4, 'x', 150);
    strcat(longname, "=1");
    assert_int_equal(health_parse_query(longname, &q, err, sizeof err), RPG_EINVAL);
}

static void test_primary_and_leader(void **state)
{
    (void)state;
    struct health_input p = primary();
    static const char *const writable[] = {
        "/",          "/primary",        "/master",           "/read-write", "/leader",
        "/read-only", "/read-only-sync", "/read-only-quorum", "/health",     "/readiness"};
    for (size_t i = 0; i < sizeof writable / sizeof writable[0]; i++) {
        assert_int_equal(code(writable[i], "", &p), 200);
    }
    static const char *const not_primary[] = {"/replica", "/sync", "/quorum", "/async",
                                              "/standby-leader"};
    for (size_t i = 0; i < sizeof not_primary / sizeof not_primary[0]; i++) {
        assert_int_equal(code(not_primary[i], "", &p), 503);
    }
    /* Tags are not asked of the primary: Patroni ignores them there. */
    assert_int_equal(code("/primary", "tag_zone=x", &p), 200);
    /* A leader before its own-term barrier, or whose server is a standby, takes no writes. */
    p.ready_leader = false;
    assert_int_equal(code("/", "", &p), 503);
    assert_int_equal(code("/leader", "", &p), 200);
    p = primary();
    p.in_recovery = true;
    assert_int_equal(code("/primary", "", &p), 503);
    struct health_input s = standby(HEALTH_STANDBY_QUORUM);
    assert_int_equal(code("/", "", &s), 503);
    assert_int_equal(code("/leader", "", &s), 503);
}

static void test_standby_kinds(void **state)
{
    (void)state;
    struct health_input q = standby(HEALTH_STANDBY_QUORUM);
    assert_int_equal(code("/replica", "", &q), 200);
    assert_int_equal(code("/quorum", "", &q), 200);
    assert_int_equal(code("/read-only-quorum", "", &q), 200);
    assert_int_equal(code("/sync", "", &q), 503);
    assert_int_equal(code("/read-only-sync", "", &q), 503);
    assert_int_equal(code("/async", "", &q), 503);
    struct health_input s = standby(HEALTH_STANDBY_SYNC);
    assert_int_equal(code("/sync", "", &s), 200);
    assert_int_equal(code("/synchronous", "", &s), 200);
    assert_int_equal(code("/quorum", "", &s), 503);
    struct health_input a = standby(HEALTH_STANDBY_ASYNC);
    assert_int_equal(code("/async", "", &a), 200);
    assert_int_equal(code("/asynchronous", "", &a), 200);
    assert_int_equal(code("/sync", "", &a), 503);
    a.noloadbalance = true;
    assert_int_equal(code("/replica", "", &a), 503);
    assert_int_equal(code("/read-only", "", &a), 503);
    assert_int_equal(code("/health", "", &a), 200);
    /* Not streaming: "in archive recovery" only with a restore_command (Patroni), else none. */
    a = standby(HEALTH_STANDBY_ASYNC);
    a.streaming = false;
    assert_int_equal(code("/replica", "replication_state=streaming", &a), 503);
    assert_int_equal(code("/replica", "replication_state=in%20archive%20recovery", &a), 503);
    assert_int_equal(code("/replica", "", &a), 200);
    a.restore_command = true;
    assert_int_equal(code("/replica", "replication_state=in+archive+recovery", &a), 200);
    assert_string_equal(health_replication_state(true, false), "streaming");
    assert_null(health_replication_state(false, false));
    a = standby(HEALTH_STANDBY_ASYNC);
    a.running = false;
    assert_int_equal(code("/replica", "", &a), 503);
    assert_int_equal(code("/health", "", &a), 503);
}

static void test_lag(void **state)
{
    (void)state;
    /* Replay paused 3 MB behind what was received and what the primary has. */
    struct health_input s = standby(HEALTH_STANDBY_QUORUM);
    s.primary_position = 8000000;
    s.received_position = 8000000;
    s.replay_position = 8000000 - 3 * 1024 * 1024;
    assert_int_equal(code("/replica", "", &s), 200);
    assert_int_equal(code("/replica", "lag=1", &s), 503);
    assert_int_equal(code("/replica", "lag=2MB", &s), 503);
    assert_int_equal(code("/replica", "lag=4MB", &s), 200);
    assert_int_equal(code("/quorum", "lag=1kB", &s), 503);
    assert_int_equal(code("/read-only", "lag=1kB", &s), 503);
    /* Readiness: 1 MiB by default, replayed WAL (apply) unless mode=write. */
    assert_int_equal(code("/readiness", "", &s), 503);
    assert_int_equal(code("/readiness", "mode=write", &s), 200);
    assert_int_equal(code("/readiness", "lag=16MB", &s), 200);
    /* Received further than the primary's last report: counted against what it received. */
    s.primary_position = 0;
    assert_int_equal(code("/replica", "lag=1MB", &s), 503);
    /* A standby that does not stream is not ready, whatever its lag. */
    s = standby(HEALTH_STANDBY_QUORUM);
    s.streaming = false;
    assert_int_equal(code("/readiness", "", &s), 503);
    assert_int_equal(code("/replica", "replication_state=streaming", &s), 503);
    assert_int_equal(code("/replica", "replication_state=in%20archive%20recovery", &s), 503);
    s.restore_command = true; /* Patroni's "in archive recovery" needs one */
    assert_int_equal(code("/replica", "replication_state=in%20archive%20recovery", &s), 200);
}

static void test_tags(void **state)
{
    (void)state;
    struct health_input s = standby(HEALTH_STANDBY_ASYNC);
    assert_int_equal(code("/replica", "tag_nosync=false", &s), 200);
    assert_int_equal(code("/replica", "tag_nosync=false&tag_failover_priority=1", &s), 200);
    assert_int_equal(code("/replica", "tag_nosync=true", &s), 503);
    /* A tag this member does not have. */
    assert_int_equal(code("/replica", "tag_zone=eu", &s), 503);
}

static void test_not_acting(void **state)
{
    (void)state;
    struct health_input p = primary();
    p.acting = false; /* diverged state, or a mismatched identity */
    assert_int_equal(code("/primary", "", &p), 503);
    assert_int_equal(code("/leader", "", &p), 503);
    assert_int_equal(code("/readiness", "", &p), 503);
    assert_int_equal(code("/health", "", &p), 200);
    assert_int_equal(code("/liveness", "", &p), 200); /* the agent still runs */
    struct health_input s = standby(HEALTH_STANDBY_QUORUM);
    s.acting = false;
    assert_int_equal(code("/replica", "", &s), 503);
    s = standby(HEALTH_STANDBY_QUORUM);
    s.alive = false;
    assert_int_equal(code("/health", "", &s), 503);
    assert_int_equal(code("/replica", "", &s), 503);
    assert_int_equal(code("/liveness", "", &s), 503); /* shutting down */
    /* Without a PostgreSQL, the agent alone. */
    struct health_input r;
    memset(&r, 0, sizeof r);
    r.alive = r.acting = true;
    assert_int_equal(code("/health", "", &r), 200);
    assert_int_equal(code("/readiness", "", &r), 200);
    assert_int_equal(code("/replica", "", &r), 503);
    assert_int_equal(health_kind_of("/cluster"), HEALTH_NONE);
    assert_int_equal(health_kind_of("/primary/"), HEALTH_NONE);
}

static void test_storage_failing(void **state)
{
    (void)state;
    /* A leader whose Raft directory cannot persist commits nothing and hands leadership over
     * while its lease runs out: it claims neither leadership nor writes. */
    struct health_input p = primary();
    p.storage_failing = true;
    static const char *const none[] = {"/",          "/primary",         "/read-write",
                                       "/leader",    "/read-only",       "/read-only-sync",
                                       "/readiness", "/read-only-quorum"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        assert_int_equal(code(none[i], "", &p), 503);
    }
    assert_int_equal(code("/health", "", &p), 200);   /* its server still runs */
    assert_int_equal(code("/liveness", "", &p), 200); /* and so does the agent */
    /* A standby that cannot persist cannot be elected: no read traffic as if healthy. */
    static const char *const replica_paths[] = {"/replica",   "/read-only",     "/sync",
                                                "/quorum",    "/async",         "/read-only-quorum",
                                                "/readiness", "/read-only-sync"};
    static const enum health_standby kinds[] = {HEALTH_STANDBY_ASYNC, HEALTH_STANDBY_SYNC,
                                                HEALTH_STANDBY_QUORUM};
    for (size_t k = 0; k < 3; k++) {
        struct health_input s = standby(kinds[k]);
        s.storage_failing = true;
        for (size_t i = 0; i < sizeof replica_paths / sizeof replica_paths[0]; i++) {
            assert_int_equal(code(replica_paths[i], "", &s), 503);
        }
        assert_int_equal(code("/health", "", &s), 200);
        assert_int_equal(code("/liveness", "", &s), 200);
        /* The same standby with its storage healthy takes its traffic again. */
        s.storage_failing = false;
        assert_int_equal(code("/replica", "", &s), 200);
        assert_int_equal(code("/readiness", "", &s), 200);
    }
    /* A stopped server stays 503 on /health, failing storage or not. */
    struct health_input s = standby(HEALTH_STANDBY_ASYNC);
    s.storage_failing = true;
    s.running = false;
    assert_int_equal(code("/health", "", &s), 503);
    /* Without a PostgreSQL: not ready while it cannot persist. */
    struct health_input r;
    memset(&r, 0, sizeof r);
    r.alive = r.acting = r.storage_failing = true;
    assert_int_equal(code("/readiness", "", &r), 503);
    assert_int_equal(code("/health", "", &r), 200);
    assert_int_equal(code("/liveness", "", &r), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_primary_and_leader),
        cmocka_unit_test(test_standby_kinds),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_not_acting),
        cmocka_unit_test(test_storage_failing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
