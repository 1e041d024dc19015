/* Unit tests of the gate to acting as leader (lead.h): the timed wait of DESIGN.md rule 3 and
 * its early end once every other member answered that it stood down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "raftpg/cons.h"
#include "raftpg/fence.h"
#include "raftpg/lead.h"

#define ET 500
#define START 1000000

struct gate {
    struct raft raft;
    struct raft_server servers[3];
    struct cons cons;
    struct peer_status peers[2];
    struct fence_timing t;
    struct lead_memory m;
    struct lead_in in;
    unsigned logged;
};

static void count_log(void *data, enum log_level level, const char *msg)
{
    (void)level;
    (void)msg;
    ((struct gate *)data)->logged++;
}

/* node1 became the ready leader of term 5 at START, having last heard a leader just before:
 * the timed wait runs well past START. node2 and node3 report, polled since, in term 5, as
 * followers with their servers in recovery. */
static struct gate *gate_new(void)
{
    static struct gate g;
    memset(&g, 0, sizeof g);
    for (unsigned i = 0; i < 3; i++) {
        g.servers[i].id = i + 1;
        g.servers[i].role = RAFT_VOTER;
    }
    g.raft.configuration.n = 3;
    g.raft.configuration.servers = g.servers;
    struct cons *c = &g.cons;
    c->raft = &g.raft;
    c->id = 1;
    c->attached = true;
    c->params.election_timeout_ms = ET;
    c->params.n_initial = 3;
    for (unsigned i = 0; i < 3; i++) {
        c->params.initial[i].id = i + 1;
        snprintf(c->params.initial[i].name, FSM_NAME_MAX, "node%u", i + 1);
    }
    c->role = CONS_ROLE_LEADER;
    c->leader_ready = true;
    c->term = 5;
    c->last_heard_leader = START - 10;
    c->started_at = START - 100000;
    for (unsigned i = 0; i < 2; i++) {
        struct peer_status *p = &g.peers[i];
        snprintf(p->name, sizeof p->name, "node%u", i + 2);
        p->id = i + 2;
        p->reachable = true;
        p->term = 5;
        snprintf(p->raft_role, sizeof p->raft_role, "follower");
        p->has_pg = true;
        p->pg_state = HA_PG_RUNNING;
        p->pg_in_recovery = true;
    }
    fence_timing_init(&g.t, ET);
    g.in = (struct lead_in){.cons = c,
                            .self = "node1",
                            .peers = g.peers,
                            .n_peers = 2,
                            .lease_ok = true,
                            .watchdog_ok = true,
                            .now = START};
    return &g;
}

static bool gate(struct gate *g)
{
    bool poll_now = false;
    return lead_gate(&g->t, &g->m, &g->in, &poll_now, count_log, g);
}

static void test_waits_until_the_others_answered(void **state)
{
    (void)state;
    struct gate *g = gate_new();
    assert_false(gate(g)); /* their reports predate this leadership */
    g->peers[0].last_polled = START + 50;
    g->in.now = START + 60;
    assert_false(gate(g));
    g->peers[1].last_polled = START + 70;
    g->in.now = START + 80;
    assert_true(gate(g));
}

/* A member that answered and then died (or went out of reach) cannot lead or write again before
 * a later term: the new primary keeps acting instead of demoting until the timed wait ends. */
static void test_early_end_holds_for_the_term(void **state)
{
    (void)state;
    struct gate *g = gate_new();
    (void)gate(g);
    g->peers[0].last_polled = START + 50;
    g->peers[1].last_polled = START + 50;
    g->in.now = START + 60;
    assert_true(gate(g));
    g->peers[1].reachable = false;
    g->in.now = START + 300;
    assert_true(gate(g));
    /* Without the lease nothing holds it. */
    g->in.lease_ok = false;
    assert_false(gate(g));
    g->in.lease_ok = true;
    assert_true(gate(g));
    /* A later term asks again. */
    g->cons.term = 6;
    g->in.now = START + 400;
    assert_false(gate(g));
}

/* An answer from a member still writing ends nothing. */
static void test_a_writing_member_holds_the_wait(void **state)
{
    (void)state;
    struct gate *g = gate_new();
    (void)gate(g);
    g->peers[0].last_polled = START + 50;
    g->peers[1].last_polled = START + 50;
    g->peers[1].pg_in_recovery = false;
    g->in.now = START + 60;
    assert_false(gate(g));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits_until_the_others_answered),
        cmocka_unit_test(test_early_end_holds_for_the_term),
        cmocka_unit_test(test_a_writing_member_holds_the_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
