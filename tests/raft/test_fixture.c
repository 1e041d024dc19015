/* Three libraft servers on raft_fixture (in-memory raft_io, virtual time), each applying
 * commands to our struct fsm: elections, leader loss, partitions, rejoin and snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "raftpg/fsm.h"

#define N_SERVERS 3
#define ELECTION_TIMEOUT_MS 500
#define HEARTBEAT_TIMEOUT_MS 100
/* Upper bound of virtual time for any single wait; generous against a 500 ms election timeout. */
#define WAIT_MS 10000

/* The marker of the command that must never commit (test 3 and 4): nothing else pauses. */
#define UNCOMMITTED_PAUSE true

struct cluster {
    struct raft_fixture f; /* first: the hook gets &f and finds the cluster from it */
    struct fsm fsms[N_SERVERS];
    struct fsm_state states[N_SERVERS];
    bool uncommitted_seen; /* set by the hook if any server ever applied the marker */
};

/* A submitted command and what its callback reported. */
struct pending {
    struct raft_apply req;
    bool done;
    int status; /* libraft status: 0 once committed and applied on the submitter */
    int rc;     /* our fsm's result code when status is 0 */
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct pending *p = req->data;
    p->done = true;
    p->status = status;
    p->rc = status == 0 ? fsm_result_code(result) : 0;
}

static int cluster_setup(void **state, unsigned snapshot_threshold, unsigned snapshot_trailing)
{
    struct cluster *c = test_calloc(1, sizeof *c);
    struct raft_configuration conf;

    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        fsm_state_init(&c->states[i]);
        fsm_init(&c->fsms[i], &c->states[i]);
        assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i].raft), 0);
    }
    for (unsigned i = 0; i < N_SERVERS; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        raft_set_election_timeout(r, ELECTION_TIMEOUT_MS);
        raft_set_heartbeat_timeout(r, HEARTBEAT_TIMEOUT_MS);
        raft_set_pre_vote(r, true);
        if (snapshot_threshold > 0) {
            raft_set_snapshot_threshold(r, snapshot_threshold);
            raft_set_snapshot_trailing(r, snapshot_trailing);
        }
        /* The fixture's io->random() ignores its range and returns this fixed value; keep it
         * inside [ET, 2 ET) as real raft_io would, and distinct per server. */
        raft_fixture_set_randomized_election_timeout(&c->f, i, ELECTION_TIMEOUT_MS + 150 * i);
    }
    assert_int_equal(raft_fixture_configuration(&c->f, N_SERVERS, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    *state = c;
    return 0;
}

static int setup(void **state)
{
    return cluster_setup(state, 0, 0);
}

/* Snapshots every 4 applied entries, keeping only 2 behind them, so a follower that misses a
 * handful of entries must be sent a snapshot. */
static int setup_snapshots(void **state)
{
    return cluster_setup(state, 4, 2);
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    raft_fixture_close(&c->f);
    test_free(c);
    return 0;
}

/* ---- Helpers ---- */

static void make_member(struct fsm_member *m, uint64_t id, unsigned n)
{
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(m->name, sizeof m->name, "node%u", n);
    snprintf(m->raft_address, sizeof m->raft_address, "127.0.0.1:%u", 7000 + n);
    snprintf(m->api_address, sizeof m->api_address, "127.0.0.1:%u", 8000 + n);
    m->failover_priority = 100;
}

static void make_init(struct fsm_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_INIT;
    snprintf(cmd->u.init.scope, sizeof cmd->u.init.scope, "fixture");
    cmd->u.init.n_members = N_SERVERS;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        make_member(&cmd->u.init.members[i], i + 1, i + 1);
    }
}

static void make_set_pause(struct fsm_cmd *cmd, bool paused)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_SET_PAUSE;
    cmd->u.set_pause.paused = paused;
}

static void make_set_system_id(struct fsm_cmd *cmd, uint64_t id)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_SET_SYSTEM_ID;
    cmd->u.set_system_id.system_id = id;
}

static void make_set_primary(struct fsm_cmd *cmd, unsigned member, uint64_t term)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_SET_PRIMARY;
    cmd->term = term;
    snprintf(cmd->u.set_primary.name, sizeof cmd->u.set_primary.name, "node%u", member);
    cmd->u.set_primary.term = term;
    cmd->u.set_primary.timeline = 1;
}

/* Submits cmd on server i; returns raft_apply's code. The payload is raft_malloc'ed and a
 * multiple of 8 bytes (fsm_cmd_encode guarantees both). */
static int submit(struct cluster *c, unsigned i, struct fsm_cmd *cmd, struct pending *p)
{
    struct raft *r = raft_fixture_get(&c->f, i);
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];

    cmd->term = cmd->term != 0 ? cmd->term : r->current_term;
    assert_int_equal(fsm_cmd_encode(cmd, &buf, errmsg), 0);
    assert_int_equal(buf.len % 8, 0);
    memset(p, 0, sizeof *p);
    p->req.data = p;
    int rv = raft_apply(r, &p->req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base); /* ownership passes to libraft only on success */
    }
    return rv;
}

static bool pending_done(struct raft_fixture *f, void *arg)
{
    (void)f;
    return ((struct pending *)arg)->done;
}

/* Submits on server i and steps until the callback reports success and an accepted command. */
static void submit_and_wait(struct cluster *c, unsigned i, struct fsm_cmd *cmd)
{
    struct pending p;
    assert_int_equal(submit(c, i, cmd, &p), 0);
    assert_true(raft_fixture_step_until(&c->f, pending_done, &p, WAIT_MS));
    assert_int_equal(p.status, 0);
    assert_int_equal(p.rc, 0);
}

static unsigned wait_leader(struct cluster *c)
{
    assert_true(raft_fixture_step_until_has_leader(&c->f, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader < N_SERVERS);
    return leader;
}

struct other_leader {
    unsigned not_this;
};

static bool has_other_leader(struct raft_fixture *f, void *arg)
{
    unsigned leader = raft_fixture_leader_index(f);
    return leader < raft_fixture_n(f) && leader != ((struct other_leader *)arg)->not_this;
}

static unsigned wait_other_leader(struct cluster *c, unsigned old)
{
    struct other_leader arg = {old};
    assert_true(raft_fixture_step_until(&c->f, has_other_leader, &arg, WAIT_MS));
    return raft_fixture_leader_index(&c->f);
}

struct states_equal {
    struct cluster *c;
    unsigned a, b;
};

static bool states_converged(struct raft_fixture *f, void *arg)
{
    struct states_equal *e = arg;
    (void)f;
    return fsm_state_equal(&e->c->states[e->a], &e->c->states[e->b]);
}

/* Initializes the replicated state through the leader and waits until every server applied it. */
static unsigned init_cluster(struct cluster *c)
{
    struct fsm_cmd cmd;
    struct pending p;
    unsigned leader = wait_leader(c);
    make_init(&cmd);
    assert_int_equal(submit(c, leader, &cmd, &p), 0);
    assert_true(raft_fixture_step_until_applied(&c->f, N_SERVERS, p.req.index, WAIT_MS));
    assert_true(p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.rc, 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_true(c->states[i].initialized);
        assert_int_equal(c->states[i].n_members, N_SERVERS);
    }
    return leader;
}

static void isolate(struct cluster *c, unsigned i, bool on)
{
    for (unsigned j = 0; j < N_SERVERS; j++) {
        if (j == i) {
            continue;
        }
        if (on) {
            raft_fixture_saturate(&c->f, i, j);
            raft_fixture_saturate(&c->f, j, i);
        } else {
            raft_fixture_desaturate(&c->f, i, j);
            raft_fixture_desaturate(&c->f, j, i);
        }
    }
}

/* Runs after every fixture event: the marker command must never be applied anywhere. */
static void watch_uncommitted(struct raft_fixture *f, struct raft_fixture_event *event)
{
    struct cluster *c = (struct cluster *)f;
    (void)event;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (c->states[i].paused == UNCOMMITTED_PAUSE) {
            c->uncommitted_seen = true;
        }
    }
}

/* The scenario of tests 3 and 4: the leader is cut off from both followers with the marker
 * command in flight; the majority elects a new leader and commits SET_SYSTEM_ID 777. */
struct partition {
    unsigned old_leader;
    unsigned new_leader;
    struct fsm_state old_state; /* the old leader's state when it was cut off */
    struct pending marker;
    raft_time cut_at;
};

static void partition_leader(struct cluster *c, struct partition *pt)
{
    struct fsm_cmd cmd;

    raft_fixture_hook(&c->f, watch_uncommitted);
    pt->old_leader = init_cluster(c);
    pt->old_state = c->states[pt->old_leader];
    pt->cut_at = raft_fixture_time(&c->f);
    isolate(c, pt->old_leader, true);

    /* Still leader in its own eyes, so libraft accepts the command and appends it locally. */
    make_set_pause(&cmd, UNCOMMITTED_PAUSE);
    assert_int_equal(submit(c, pt->old_leader, &cmd, &pt->marker), 0);

    pt->new_leader = wait_other_leader(c, pt->old_leader);
    make_set_system_id(&cmd, 777);
    submit_and_wait(c, pt->new_leader, &cmd);

    /* Let 5 s of virtual time pass since the cut. */
    raft_time elapsed = raft_fixture_time(&c->f) - pt->cut_at;
    assert_true(elapsed < 5000);
    raft_fixture_step_until_elapsed(&c->f, (unsigned)(5000 - elapsed));
}

/* ---- Tests ---- */

static void test_election_gives_one_leader(void **state)
{
    struct cluster *c = *state;
    unsigned leader = wait_leader(c);
    unsigned n_leaders = 0;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        int role = raft_state(raft_fixture_get(&c->f, i));
        if (role == RAFT_LEADER) {
            n_leaders++;
            assert_int_equal(i, leader);
        } else {
            assert_int_equal(role, RAFT_FOLLOWER);
        }
    }
    assert_int_equal(n_leaders, 1);
}

static void test_leader_crash_elects_new_leader(void **state)
{
    struct cluster *c = *state;
    struct fsm_cmd cmd;

    unsigned old = init_cluster(c);
    raft_fixture_kill(&c->f, old);
    unsigned leader = wait_other_leader(c, old);
    assert_int_not_equal(leader, old);

    make_set_pause(&cmd, true);
    struct pending p;
    assert_int_equal(submit(c, leader, &cmd, &p), 0);
    unsigned follower = N_SERVERS - old - leader; /* the third index of {0, 1, 2} */
    assert_true(raft_fixture_step_until_applied(&c->f, follower, p.req.index, WAIT_MS));
    assert_true(raft_fixture_step_until(&c->f, pending_done, &p, WAIT_MS));
    assert_int_equal(p.status, 0);
    assert_int_equal(p.rc, 0);

    assert_true(c->states[follower].paused);
    assert_true(fsm_state_equal(&c->states[follower], &c->states[leader]));
    assert_int_equal(c->states[follower].n_applied, 2);
    assert_false(c->states[old].paused); /* dead: applied nothing since */
}

static void test_partitioned_leader_cannot_commit(void **state)
{
    struct cluster *c = *state;
    struct partition pt;
    partition_leader(c, &pt);

    /* The marker was never committed: the old leader stepped down and libraft failed it. */
    assert_true(pt.marker.done);
    assert_int_equal(pt.marker.status, RAFT_LEADERSHIPLOST);
    assert_int_not_equal(raft_state(raft_fixture_get(&c->f, pt.old_leader)), RAFT_LEADER);
    assert_true(fsm_state_equal(&c->states[pt.old_leader], &pt.old_state));
    assert_false(c->uncommitted_seen);

    /* Meanwhile the majority moved on. */
    assert_int_not_equal(pt.new_leader, pt.old_leader);
    unsigned other = N_SERVERS - pt.old_leader - pt.new_leader;
    assert_int_equal(c->states[pt.new_leader].system_id, 777);
    assert_int_equal(c->states[other].system_id, 777);
    assert_int_equal(c->states[pt.old_leader].system_id, 0);
}

static void test_rejoin_catches_up(void **state)
{
    struct cluster *c = *state;
    struct partition pt;
    partition_leader(c, &pt);

    isolate(c, pt.old_leader, false);
    struct states_equal eq = {c, pt.old_leader, pt.new_leader};
    assert_true(raft_fixture_step_until(&c->f, states_converged, &eq, WAIT_MS));
    assert_true(raft_fixture_step_until_state_is(&c->f, pt.old_leader, RAFT_FOLLOWER, WAIT_MS));
    /* A few more heartbeats, so a late apply of the marker would show up. */
    raft_fixture_step_until_elapsed(&c->f, 2000);

    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_true(fsm_state_equal(&c->states[i], &c->states[pt.new_leader]));
        assert_int_equal(c->states[i].system_id, 777);
        assert_false(c->states[i].paused);
    }
    assert_false(c->uncommitted_seen);
    /* Pre-vote kept the isolated node from inflating its term, so the leader stayed. */
    assert_int_equal(raft_fixture_leader_index(&c->f), pt.new_leader);
}

static void test_lagging_follower_restores_snapshot(void **state)
{
    struct cluster *c = *state;
    struct fsm_cmd cmd;

    unsigned leader = init_cluster(c);
    unsigned lagging = (leader + 1) % N_SERVERS;
    raft_fixture_kill(&c->f, lagging);

    /* Twenty commands with a threshold of 4 and 2 trailing entries: the leader compacts its
     * log well past the entries the lagging follower still needs. */
    for (unsigned i = 0; i < 20; i++) {
        if (i % 2 == 0) {
            make_set_primary(&cmd, 1 + i % N_SERVERS, 10 + i);
        } else {
            make_set_pause(&cmd, i % 4 == 1);
        }
        submit_and_wait(c, leader, &cmd);
    }
    struct raft *lr = raft_fixture_get(&c->f, leader);
    assert_true(lr->log.snapshot.last_index > raft_last_applied(raft_fixture_get(&c->f, lagging)));
    assert_int_equal(raft_fixture_n_recv(&c->f, lagging, RAFT_IO_INSTALL_SNAPSHOT), 0);

    raft_fixture_revive(&c->f, lagging);
    struct states_equal eq = {c, lagging, leader};
    assert_true(raft_fixture_step_until(&c->f, states_converged, &eq, WAIT_MS));

    assert_int_equal(raft_fixture_n_recv(&c->f, lagging, RAFT_IO_INSTALL_SNAPSHOT), 1);
    assert_int_equal(c->states[lagging].n_applied, 21);
    assert_string_equal(c->states[lagging].primary.name, "node1");
    assert_int_equal(c->states[lagging].primary.term, 28);
    assert_string_equal(c->fsms[lagging].last_error, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_election_gives_one_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_crash_elects_new_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitioned_leader_cannot_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lagging_follower_restores_snapshot, setup_snapshots,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
