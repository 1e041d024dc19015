/* Unit tests of the failover check (failover.h): a candidate is promoted without a healthy
 * primary only when it holds every commit the recorded synchronous set could have acknowledged;
 * each refusal names its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/failover.h"
#include "raftpg/fsm.h"

#define SYSID 7000000000000000001ull

static void apply_ok(struct fsm_state *s, const struct fsm_cmd *c)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    if (fsm_state_apply(s, c, errmsg) != 0) {
        fail_msg("apply %s: %s", fsm_cmd_type_name(c->type), errmsg);
    }
}

/* node1 (the lost primary), node2 and node3; ANY 1 (node2, node3) recorded. */
static void cluster(struct fsm_state *s, uint32_t k)
{
    struct fsm_cmd c;
    fsm_state_init(s);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_INIT;
    snprintf(c.u.init.scope, FSM_NAME_MAX, "main");
    c.u.init.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        struct fsm_member *m = &c.u.init.members[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "node%u", i + 1);
        snprintf(m->raft_address, sizeof m->raft_address, "127.0.0.1:%u", 7000 + i);
        snprintf(m->api_address, sizeof m->api_address, "127.0.0.1:%u", 8000 + i);
        m->failover_priority = 1;
    }
    apply_ok(s, &c);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_SYSTEM_ID;
    c.u.set_system_id.system_id = SYSID;
    apply_ok(s, &c);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_SYNC;
    c.u.set_sync.k = k;
    c.u.set_sync.n_voters = 2;
    snprintf(c.u.set_sync.voters[0], FSM_NAME_MAX, "node2");
    snprintf(c.u.set_sync.voters[1], FSM_NAME_MAX, "node3");
    apply_ok(s, &c);
}

static void standby(struct failover_member *m, const char *name, uint64_t wal)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->heard = true;
    m->running = true;
    m->standby = true;
    m->promotable = true;
    m->system_id = SYSID;
    m->timeline = 1;
    m->wal_position = wal;
}

/* The old primary is gone (unheard); node2 and node3 are standbys. */
static void members(struct failover_member m[3], uint64_t wal2, uint64_t wal3)
{
    memset(&m[0], 0, sizeof m[0]);
    snprintf(m[0].name, sizeof m[0].name, "node1");
    standby(&m[1], "node2", wal2);
    standby(&m[2], "node3", wal3);
}

static void assert_refused(const struct fsm_state *s, const struct failover_member *m,
                           const char *candidate, const char *why_expected)
{
    char why[RPG_ERRMSG_SIZE];
    assert_int_equal(failover_check(s, SYNC_MODE_QUORUM, m, 3, candidate, why, sizeof why),
                     RPG_EINVAL);
    assert_string_equal(why, why_expected);
}

static void test_candidate_with_every_commit_passes(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    char why[RPG_ERRMSG_SIZE];
    cluster(&s, 1);
    members(m, 5000, 5000);
    assert_int_equal(failover_check(&s, SYNC_MODE_QUORUM, m, 3, "node3", why, sizeof why), 0);
    assert_string_equal(why, "node3 holds every acknowledged commit (timeline 1 position 5000)");
}

static void test_candidate_behind_a_voter_is_refused(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    cluster(&s, 1);
    members(m, 5000, 4000);
    assert_refused(&s, m, "node3",
                   "synchronous voter node2 is ahead of node3 (timeline 1 position 5000 against "
                   "timeline 1 position 4000): node3 lacks WAL that may hold acknowledged "
                   "commits");
    /* A voter that may not be promoted still holds what it holds. */
    m[1].promotable = false;
    assert_refused(&s, m, "node3",
                   "synchronous voter node2 is ahead of node3 (timeline 1 position 5000 against "
                   "timeline 1 position 4000): node3 lacks WAL that may hold acknowledged "
                   "commits");
}

static void test_too_few_voters_heard_is_refused(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    cluster(&s, 1);
    members(m, 5000, 5000);
    /* ANY 1 of 2 voters: the other voter, unheard, may hold the only copy of a commit. */
    m[1].heard = false;
    char why[RPG_ERRMSG_SIZE];
    assert_int_equal(failover_check(&s, SYNC_MODE_QUORUM, m, 3, "node3", why, sizeof why),
                     RPG_EINVAL);
    assert_non_null(strstr(why, "cannot tell whether node3 holds every acknowledged commit: "));
    /* A record that proves nothing (k = 0) passes only with synchronous mode off. */
    cluster(&s, 0);
    assert_int_equal(failover_check(&s, SYNC_MODE_QUORUM, m, 3, "node3", why, sizeof why),
                     RPG_EINVAL);
    assert_int_equal(failover_check(&s, SYNC_MODE_OFF, m, 3, "node3", why, sizeof why), 0);
}

static void test_candidate_itself_unfit_is_refused(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    cluster(&s, 1);
    members(m, 5000, 5000);
    assert_refused(&s, m, "node9", "node9 is not a member of this cluster");
    m[2].promotable = false;
    assert_refused(&s, m, "node3",
                   "node3 may not be promoted (nofailover, priority 0, or its raft storage or "
                   "state is not sound)");
    members(m, 5000, 5000);
    m[2].standby = false;
    assert_refused(&s, m, "node3", "node3 is not a running standby");
    members(m, 5000, 5000);
    m[2].system_id = 1;
    assert_refused(&s, m, "node3", "node3 holds data of another system");
    members(m, 5000, 5000);
    m[2].heard = false;
    assert_refused(&s, m, "node3", "node3 does not answer");
}

static void test_candidate_below_the_bound_is_refused(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    struct fsm_cmd c;
    cluster(&s, 1);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_WAL_BOUND;
    c.u.set_wal_bound.position = 6000;
    c.u.set_wal_bound.timeline = 1;
    apply_ok(&s, &c);
    members(m, 5000, 5000);
    assert_refused(&s, m, "node3",
                   "node3 is behind the acknowledged-WAL bound (wal position 5000 < 6000): it "
                   "lacks acknowledged commits");
}

/* A non-voter ahead holds no acknowledged commit the candidate lacks, but the leader's own
 * choice would promote it: refused, saying so. */
static void test_promotable_member_ahead_is_refused(void **state)
{
    (void)state;
    struct fsm_state s;
    struct failover_member m[3];
    cluster(&s, 1);
    members(m, 5000, 5000);
    standby(&m[0], "node1", 7000);
    assert_refused(&s, m, "node3",
                   "node1 is further ahead than node3 (timeline 1 position 7000 against timeline "
                   "1 position 5000): the leader would promote it instead");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_candidate_with_every_commit_passes),
        cmocka_unit_test(test_candidate_behind_a_voter_is_refused),
        cmocka_unit_test(test_too_few_voters_heard_is_refused),
        cmocka_unit_test(test_candidate_itself_unfit_is_refused),
        cmocka_unit_test(test_candidate_below_the_bound_is_refused),
        cmocka_unit_test(test_promotable_member_ahead_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
