/* peer_book: the peer polls' bookkeeping the agent's poller and the simulation share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "raftpg/peer_book.h"

static struct peer_status target(const char *name, const char *api)
{
    struct peer_status t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.api, sizeof t.api, "%s", api);
    return t;
}

static struct peer_book book;

static void two_peers(void)
{
    memset(&book, 0, sizeof book);
    struct peer_status t[2] = {target("node2", "127.0.0.1:8002"),
                               target("node3", "127.0.0.1:8003")};
    peer_book_set_targets(&book, t, 2);
}

/* An answer is kept at once, stamped with when it was asked; a failure with when it ended. */
static void test_answers_are_kept_on_arrival(void **state)
{
    (void)state;
    two_peers();
    struct peer_call *c2 = peer_book_ask(&book, &book.targets[0], false, 1000);
    struct peer_call *c3 = peer_book_ask(&book, &book.targets[1], false, 1000);
    assert_non_null(c2);
    assert_non_null(c3);
    c2->status.reachable = true;
    c2->status.term = 7;
    struct peer_status next;
    assert_false(peer_book_answer(&book, c2, 1003, &next));
    const struct peer_status *p2 = peer_book_get(&book, "node2");
    assert_true(p2->reachable);
    assert_int_equal(p2->term, 7);
    assert_int_equal(p2->last_polled, 1000);
    assert_int_equal(p2->last_seen, 1003);
    /* node3 has not answered yet: nothing known of it, node2's news did not wait. */
    assert_int_equal(peer_book_get(&book, "node3")->last_polled, 0);
    c3->status.reachable = false;
    snprintf(c3->status.error, sizeof c3->status.error, "timed out");
    assert_false(peer_book_answer(&book, c3, 1400, &next));
    const struct peer_status *p3 = peer_book_get(&book, "node3");
    assert_false(p3->reachable);
    assert_int_equal(p3->last_polled, 1400);
    assert_int_equal(p3->last_seen, 0);
    assert_string_equal(p3->error, "timed out");
}

/* One request per peer; asked for again while in flight, it is asked again at the answer. */
static void test_one_request_per_peer_and_again(void **state)
{
    (void)state;
    two_peers();
    struct peer_call *c = peer_book_ask(&book, &book.targets[0], false, 2000);
    assert_non_null(c);
    assert_null(peer_book_ask(&book, &book.targets[0], true, 2100));
    c->status.reachable = true;
    struct peer_status next;
    assert_true(peer_book_answer(&book, c, 2200, &next));
    assert_string_equal(next.name, "node2");
    assert_non_null(peer_book_ask(&book, &next, false, 2200));
}

/* An answer for a peer no longer a target at that address is dropped; a kept target keeps its
 * report across a change of the others. */
static void test_answers_of_dropped_targets_are_dropped(void **state)
{
    (void)state;
    two_peers();
    struct peer_call *c = peer_book_ask(&book, &book.targets[1], false, 3000);
    struct peer_call *d = peer_book_ask(&book, &book.targets[0], false, 3000);
    d->status.reachable = true;
    struct peer_status next;
    peer_book_answer(&book, d, 3001, &next);
    struct peer_status t[2] = {target("node2", "127.0.0.1:8002"),
                               target("node3", "127.0.0.1:9003")};
    assert_false(peer_book_same_targets(&book, t, 2));
    peer_book_set_targets(&book, t, 2);
    assert_true(peer_book_same_targets(&book, t, 2));
    assert_true(peer_book_get(&book, "node2")->reachable);
    c->status.reachable = true;
    peer_book_answer(&book, c, 3005, &next);
    assert_false(peer_book_get(&book, "node3")->reachable);
    assert_null(peer_book_get(&book, "node4"));
}

static void add_member(struct fsm_state *s, const char *name, const char *api)
{
    struct fsm_member *m = &s->members[s->n_members++];
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->api_address, sizeof m->api_address, "%s", api);
}

/* Before the cluster state is known the initial members are asked, after it its members; self
 * never; a report survives an update that changes nothing, not a new address. */
static void test_targets_follow_the_state(void **state)
{
    (void)state;
    memset(&book, 0, sizeof book);
    struct peer_status initial[3] = {target("node1", "127.0.0.1:8001"),
                                     target("node2", "127.0.0.1:8002"),
                                     target("node3", "127.0.0.1:8003")};
    assert_true(peer_book_update_targets(&book, NULL, "node2", initial, 3));
    assert_int_equal(book.n_targets, 2);
    assert_string_equal(book.targets[0].name, "node1");
    assert_string_equal(book.targets[1].api, "127.0.0.1:8003");
    assert_null(peer_book_get(&book, "node2"));

    struct fsm_state s;
    memset(&s, 0, sizeof s);
    add_member(&s, "node1", "127.0.0.1:8001");
    add_member(&s, "node2", "127.0.0.1:8002");
    add_member(&s, "node3", "127.0.0.1:8003");
    add_member(&s, "node4", "127.0.0.1:8004");
    /* Not initialized: still the initial members. */
    assert_false(peer_book_update_targets(&book, &s, "node2", initial, 3));
    s.initialized = true;
    struct peer_call *c = peer_book_ask(&book, &book.targets[0], false, 1000);
    assert_non_null(c);
    c->status.reachable = true;
    c->status.term = 3;
    struct peer_status next;
    assert_false(peer_book_answer(&book, c, 1002, &next));
    assert_true(peer_book_update_targets(&book, &s, "node2", initial, 3));
    assert_int_equal(book.n_targets, 3);
    assert_string_equal(book.targets[2].name, "node4");
    assert_int_equal(peer_book_get(&book, "node1")->term, 3);
    assert_false(peer_book_update_targets(&book, &s, "node2", initial, 3));
    assert_int_equal(peer_book_get(&book, "node1")->term, 3);
    snprintf(s.members[0].api_address, sizeof s.members[0].api_address, "127.0.0.1:9001");
    assert_true(peer_book_update_targets(&book, &s, "node2", initial, 3));
    assert_string_equal(peer_book_get(&book, "node1")->api, "127.0.0.1:9001");
    assert_int_equal(peer_book_get(&book, "node1")->term, 0);
}

/* The least of the last PEER_RTT_SAMPLES answered round trips is kept; failures add none; the
 * judge says slow above the bound and fine again only under half of it, once per change. */
static void test_round_trips_are_judged(void **state)
{
    (void)state;
    two_peers();
    book.rtt_bound_ms = 100;
    rpg_msec now = 1000;
    struct peer_status next;
    /* Answers of 150 ms: slow from the first (the least so far is 150). */
    struct peer_call *c = peer_book_ask(&book, &book.targets[0], false, now);
    c->status.reachable = true;
    assert_false(peer_book_answer(&book, c, now + 150, &next));
    assert_true(c->rtt_changed);
    assert_int_equal(peer_book_get(&book, "node2")->rtt_min_ms, 150);
    assert_true(peer_book_get(&book, "node2")->rtt_slow);
    for (int k = 0; k < 3; k++) {
        now += 1000;
        c = peer_book_ask(&book, &book.targets[0], false, now);
        c->status.reachable = true;
        peer_book_answer(&book, c, now + 120, &next);
        assert_false(c->rtt_changed);
    }
    assert_int_equal(peer_book_get(&book, "node2")->rtt_min_ms, 120);
    /* A time-out is no sample. */
    now += 1000;
    c = peer_book_ask(&book, &book.targets[0], false, now);
    c->status.reachable = false;
    peer_book_answer(&book, c, now + 400, &next);
    assert_int_equal(peer_book_get(&book, "node2")->rtt_n, 4);
    assert_true(peer_book_get(&book, "node2")->rtt_slow);
    /* 70 ms is under the bound but not under half of it: still slow. */
    now += 1000;
    c = peer_book_ask(&book, &book.targets[0], false, now);
    c->status.reachable = true;
    peer_book_answer(&book, c, now + 70, &next);
    assert_false(c->rtt_changed);
    assert_true(peer_book_get(&book, "node2")->rtt_slow);
    now += 1000;
    c = peer_book_ask(&book, &book.targets[0], false, now);
    c->status.reachable = true;
    peer_book_answer(&book, c, now + 10, &next);
    assert_true(c->rtt_changed);
    assert_false(peer_book_get(&book, "node2")->rtt_slow);
    assert_int_equal(peer_book_get(&book, "node2")->rtt_min_ms, 10);
    /* The 10 ms sample ages out after PEER_RTT_SAMPLES more: the least is then theirs. */
    for (int k = 0; k < PEER_RTT_SAMPLES; k++) {
        now += 1000;
        c = peer_book_ask(&book, &book.targets[0], false, now);
        c->status.reachable = true;
        peer_book_answer(&book, c, now + 30 + (rpg_msec)k, &next);
    }
    assert_int_equal(peer_book_get(&book, "node2")->rtt_min_ms, 30);
    assert_false(peer_book_get(&book, "node2")->rtt_slow);
    /* The samples survive an update of the targets that keeps the peer's address. */
    struct peer_status t[2] = {target("node2", "127.0.0.1:8002"),
                               target("node4", "127.0.0.1:8004")};
    peer_book_set_targets(&book, t, 2);
    assert_int_equal(peer_book_get(&book, "node2")->rtt_min_ms, 30);
    /* Not judged without a bound: the simulation's polls. */
    two_peers();
    c = peer_book_ask(&book, &book.targets[1], false, now);
    c->status.reachable = true;
    peer_book_answer(&book, c, now + 500, &next);
    assert_false(c->rtt_changed);
    assert_false(peer_book_get(&book, "node3")->rtt_slow);
}

static void test_rtt_judge(void **state)
{
    (void)state;
    assert_false(peer_rtt_judge(100, 100, false));
    assert_true(peer_rtt_judge(101, 100, false));
    assert_true(peer_rtt_judge(50, 100, true));
    assert_false(peer_rtt_judge(49, 100, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_are_kept_on_arrival),
        cmocka_unit_test(test_one_request_per_peer_and_again),
        cmocka_unit_test(test_answers_of_dropped_targets_are_dropped),
        cmocka_unit_test(test_targets_follow_the_state),
        cmocka_unit_test(test_round_trips_are_judged),
        cmocka_unit_test(test_rtt_judge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
