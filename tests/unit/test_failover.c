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

#include "raftpg/core.h"
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

/* failover_decide: node1 leads, recorded as primary, its server stopped; node2 and node3 report
 * as running standbys, fresh. */
#define NOW 100000

static void leader_primary(struct fsm_state *s)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_PRIMARY;
    snprintf(c.u.set_primary.name, FSM_NAME_MAX, "node1");
    c.u.set_primary.term = 2;
    c.u.set_primary.timeline = 1;
    apply_ok(s, &c);
}

static void report(struct peer_status *p, const char *name, uint64_t wal)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->reachable = true;
    p->last_seen = NOW - 300;
    p->has_pg = true;
    p->pg_state = HA_PG_RUNNING;
    p->pg_in_recovery = true;
    p->pg_system_id = SYSID;
    p->pg_timeline = 1;
    p->pg_wal_position = wal;
    p->failover_priority = 1;
}

struct decide_case {
    struct fsm_state s;
    struct ha_pg pg;
    struct peer_book book;
    struct failover_input in;
};

static void decide_case(struct decide_case *d, uint64_t wal2, uint64_t wal3, const char *candidate)
{
    memset(d, 0, sizeof *d);
    cluster(&d->s, 1);
    leader_primary(&d->s);
    d->pg.state = HA_PG_STOPPED;
    d->pg.system_id = SYSID;
    d->pg.timeline = 1;
    d->pg.wal_position = 4000;
    d->book.n_results = 2;
    report(&d->book.results[0], "node2", wal2);
    report(&d->book.results[1], "node3", wal3);
    d->in.state = &d->s;
    d->in.self = "node1";
    d->in.candidate = candidate;
    d->in.pg_observed = true;
    d->in.pg = &d->pg;
    d->in.promotable = true;
    d->in.book = &d->book;
    d->in.now = NOW;
    d->in.sync_mode = SYNC_MODE_QUORUM;
    d->in.sync_node_count = 1;
    d->in.sync_commit = FSM_SYNC_COMMIT_ON;
}

static void assert_decided_refused(const struct decide_case *d, enum failover_reason reason,
                                   const char *why_expected)
{
    struct failover_plan plan;
    failover_decide(&d->in, &plan);
    assert_int_equal(plan.verdict, FAILOVER_REFUSED);
    assert_int_equal(plan.reason, reason);
    assert_string_equal(plan.why, why_expected);
    assert_string_equal(plan.permit.to, "");
    assert_int_equal(plan.transfer_to, 0);
}

static void test_decide_grants_with_the_permit(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 5000, "node3");
    struct failover_plan plan;
    failover_decide(&d.in, &plan);
    assert_int_equal(plan.verdict, FAILOVER_GRANTED);
    assert_int_equal(plan.reason, FAILOVER_REASON_NONE);
    assert_string_equal(plan.why,
                        "node3 holds every acknowledged commit (timeline 1 position 5000)");
    assert_string_equal(plan.lag_note, "");
    assert_string_equal(plan.permit.to, "node3");
    assert_string_equal(plan.permit.from, "node1");
    assert_int_equal(plan.permit.until, NOW + FAILOVER_PERMIT_MS);
    assert_int_equal(plan.transfer_to, 3);
}

/* The primary stopped by this member's own switchover is not a lost one. */
static void test_decide_refuses_during_a_switchover(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 5000, "node3");
    d.in.switchover_to = "node2";
    d.in.switchover_phase = "waiting for the candidate to receive the last WAL";
    assert_decided_refused(&d, FAILOVER_REASON_SWITCHOVER,
                           "a switchover to node2 is under way (waiting for the candidate to "
                           "receive the last WAL)");
    assert_int_equal(failover_refusal_status(FAILOVER_REASON_SWITCHOVER), 409);
    assert_int_equal(failover_refusal_status(FAILOVER_REASON_VOTER_AHEAD), 412);
}

static void test_decide_refuses_a_candidate_behind_a_voter(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 4000, "node3");
    assert_decided_refused(&d, FAILOVER_REASON_VOTER_AHEAD,
                           "synchronous voter node2 is ahead of node3 (timeline 1 position 5000 "
                           "against timeline 1 position 4000): node3 lacks WAL that may hold "
                           "acknowledged commits");
}

static void test_decide_refuses_a_candidate_behind_the_bound(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 5000, "node3");
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_WAL_BOUND;
    c.u.set_wal_bound.position = 6000;
    c.u.set_wal_bound.timeline = 1;
    apply_ok(&d.s, &c);
    assert_decided_refused(&d, FAILOVER_REASON_BEHIND_BOUND,
                           "node3 is behind the acknowledged-WAL bound (wal position 5000 < 6000): "
                           "it lacks acknowledged commits");
}

static void test_decide_refuses_a_candidate_not_running(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 5000, "node3");
    d.book.results[1].pg_state = HA_PG_STOPPED;
    assert_decided_refused(&d, FAILOVER_REASON_NOT_STANDBY, "node3 is not a running standby");
    /* A report older than the freshness bound is no answer. */
    decide_case(&d, 5000, 5000, "node3");
    d.book.results[1].last_seen = NOW - CORE_PEER_FRESH_MS - 1;
    assert_decided_refused(&d, FAILOVER_REASON_NO_ANSWER, "node3 does not answer");
}

/* With a healthy primary (this member), Patroni's failover is a switchover; to itself, refused. */
static void test_decide_healthy_primary_is_a_switchover(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 4000, "node3");
    d.pg.state = HA_PG_RUNNING;
    struct failover_plan plan;
    failover_decide(&d.in, &plan);
    assert_int_equal(plan.verdict, FAILOVER_SWITCHOVER);
    d.in.candidate = "node1";
    assert_decided_refused(&d, FAILOVER_REASON_ALREADY_PRIMARY, "node1 is already the primary");
    /* An observation it cannot trust is no healthy primary: judged as a failover. */
    d.in.pg_observed = false;
    d.in.candidate = "node2";
    failover_decide(&d.in, &plan);
    assert_int_equal(plan.verdict, FAILOVER_GRANTED);
    assert_int_equal(plan.transfer_to, 2);
}

/* To the leader itself: granted, nothing to hand over; past maximum_lag_on_failover, the lag is
 * noted and waived. */
static void test_decide_to_self_and_the_lag_note(void **state)
{
    (void)state;
    struct decide_case d;
    decide_case(&d, 5000, 5000, "node2");
    d.in.self = "node2";
    d.pg.state = HA_PG_RUNNING;
    d.pg.in_recovery = true;
    d.pg.wal_position = 5000;
    report(&d.book.results[0], "node1", 0);
    d.book.results[0].pg_state = HA_PG_STOPPED;
    d.book.results[0].pg_in_recovery = false;
    d.in.max_lag_set = true;
    d.in.max_lag = 1000;
    d.in.primary_wal = 9000;
    struct failover_plan plan;
    failover_decide(&d.in, &plan);
    assert_int_equal(plan.verdict, FAILOVER_GRANTED);
    assert_int_equal(plan.transfer_to, 0);
    assert_string_equal(plan.permit.to, "node2");
    assert_string_equal(plan.permit.from, "node2");
    assert_string_equal(plan.lag_note,
                        "; it lags 4000 bytes behind the last position of primary node1 (9000), "
                        "more than maximum_lag_on_failover (1000): promoted as asked");
}

/* The candidate adopts a permit from the fresh report of the member that granted it, for what
 * is left of it; a stale report or one for another member gives none. */
static void test_permit_take(void **state)
{
    (void)state;
    struct failover_permit fp;
    struct peer_book book;
    memset(&fp, 0, sizeof fp);
    memset(&book, 0, sizeof book);
    book.n_results = 1;
    report(&book.results[0], "node1", 0);
    snprintf(book.results[0].permit_to, FSM_NAME_MAX, "node3");
    book.results[0].permit_ms_left = 20000;
    assert_false(failover_permit_take(&fp, "node2", &book, NOW));
    assert_string_equal(fp.to, "");
    assert_false(failover_permit_take(&fp, "node3", NULL, NOW));
    book.results[0].last_seen = NOW - CORE_PEER_FRESH_MS - 1;
    assert_false(failover_permit_take(&fp, "node3", &book, NOW));
    book.results[0].last_seen = NOW - 300;
    assert_true(failover_permit_take(&fp, "node3", &book, NOW));
    assert_string_equal(fp.held_from, "node1");
    assert_int_equal(fp.held_until, NOW + 20000 - 300);
    assert_string_equal(fp.to, "");
    /* Held on its own now, until it runs out. */
    assert_true(failover_permit_take(&fp, "node3", NULL, NOW + 19000));
    assert_false(failover_permit_take(&fp, "node3", NULL, NOW + 19700));
}

/* A member that took over by node1's permit and, as leader, granted the next failover to node2
 * goes on reporting that grant while node1 still reports its own: adopting never drops it. */
static void test_permit_take_keeps_the_grant(void **state)
{
    (void)state;
    struct failover_permit fp;
    struct failover_permit grant;
    struct peer_book book;
    memset(&fp, 0, sizeof fp);
    memset(&grant, 0, sizeof grant);
    memset(&book, 0, sizeof book);
    book.n_results = 1;
    report(&book.results[0], "node1", 0);
    snprintf(book.results[0].permit_to, FSM_NAME_MAX, "node3");
    book.results[0].permit_ms_left = 20000;
    snprintf(grant.to, sizeof grant.to, "node2");
    snprintf(grant.from, sizeof grant.from, "node3");
    grant.until = NOW + FAILOVER_PERMIT_MS;
    failover_permit_grant(&fp, &grant);
    assert_true(failover_permit_take(&fp, "node3", &book, NOW));
    assert_string_equal(fp.to, "node2");
    assert_string_equal(fp.from, "node3");
    assert_int_equal(fp.until, NOW + FAILOVER_PERMIT_MS);
    assert_string_equal(fp.held_from, "node1");
    /* A hand-over refused takes the grant back, not the permit adopted. */
    failover_permit_grant(&fp, NULL);
    assert_string_equal(fp.to, "");
    assert_int_equal(fp.until, 0);
    assert_true(failover_permit_take(&fp, "node3", NULL, NOW + 1000));
    /* Its own grant to itself (the leader asked for a failover to itself) is held too. */
    memset(&fp, 0, sizeof fp);
    snprintf(grant.to, sizeof grant.to, "node3");
    failover_permit_grant(&fp, &grant);
    assert_true(failover_permit_take(&fp, "node3", NULL, NOW));
    assert_string_equal(fp.held_from, "");
}

static void test_paused_mask(void **state)
{
    (void)state;
    struct fsm_state s;
    cluster(&s, 1);
    leader_primary(&s);
    assert_int_equal(failover_paused_mask(true, &s, "node1"),
                     1u << HA_ACT_RECORD_PRIMARY | 1u << HA_ACT_PROMOTE | 1u << HA_ACT_CHECKPOINT |
                         1u << HA_ACT_SYNC_SLOTS);
    assert_int_equal(failover_paused_mask(false, &s, "node1"), 0);
    /* The primary changed during the pause: the standbys may follow it. */
    assert_int_equal(failover_paused_mask(false, &s, "node2"), 1u << HA_ACT_FOLLOW);
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
        cmocka_unit_test(test_decide_grants_with_the_permit),
        cmocka_unit_test(test_decide_refuses_a_candidate_behind_a_voter),
        cmocka_unit_test(test_decide_refuses_a_candidate_behind_the_bound),
        cmocka_unit_test(test_decide_refuses_a_candidate_not_running),
        cmocka_unit_test(test_decide_healthy_primary_is_a_switchover),
        cmocka_unit_test(test_decide_refuses_during_a_switchover),
        cmocka_unit_test(test_decide_to_self_and_the_lag_note),
        cmocka_unit_test(test_permit_take),
        cmocka_unit_test(test_permit_take_keeps_the_grant),
        cmocka_unit_test(test_paused_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
