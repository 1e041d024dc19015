/* The switchover's steps (switchover_step.h): each phase's transitions on what the executor
 * observed, each bound's give-up with its message, and prepare's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/err.h"
#include "raftpg/ha.h"
#include "raftpg/switchover_step.h"

#define T0 100000

/* A settled, leading primary whose candidate node2 streams from it. */
static struct switchover_view healthy(rpg_msec now)
{
    struct switchover_view v = {
        .now = now,
        .leading = true,
        .leader_ready = true,
        .lease_ok = true,
        .self_recorded = true,
        .pg_running = true,
        .cand_known = true,
        .cand_reachable = true,
        .cand_wal = 500,
        .hook_timeout_ms = 60000,
    };
    return v;
}

static struct switchover_action run(struct switchover_mem *m, const struct switchover_view *v,
                                    enum switchover_event_kind kind, bool ok, const char *msg)
{
    struct switchover_event e = {.kind = kind, .ok = ok, .msg = msg};
    struct switchover_action x;
    switchover_step(m, v, &e, &x);
    return x;
}

/* A switchover node1 -> node2 begun at T0. */
static struct switchover_mem begun(void)
{
    struct switchover_mem m;
    switchover_begin(&m, "node1", "node2", 2, T0);
    assert_int_equal(m.phase, SWITCHOVER_HOOK);
    return m;
}

/* The same, stopped: waiting in CATCHUP since T0 + 100. */
static struct switchover_mem stopped(void)
{
    struct switchover_mem m = begun();
    struct switchover_view v = healthy(T0);
    struct switchover_action x = run(&m, &v, SWITCHOVER_EV_HOOK_NONE, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_STOP);
    v.now = T0 + 100;
    x = run(&m, &v, SWITCHOVER_EV_STOPPED, true, NULL);
    assert_int_equal(m.phase, SWITCHOVER_CATCHUP);
    assert_true(x.phase_changed);
    return m;
}

/* The server as seen stopped after the stop, with its last checkpoint at 400. */
static struct switchover_view down(rpg_msec now)
{
    struct switchover_view v = healthy(now);
    v.pg_running = false;
    v.stopped_seen = true;
    v.clean_shutdown = true;
    v.checkpoint_lsn = 400;
    return v;
}

static void test_happy_path(void **state)
{
    (void)state;
    struct switchover_mem m = stopped();
    /* Candidate's report already past the checkpoint: leadership goes to node2's id. */
    struct switchover_view v = down(T0 + 200);
    struct switchover_action x = run(&m, &v, SWITCHOVER_EV_REPORT, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_TRANSFER);
    assert_true(x.final_noted);
    assert_true(x.phase_changed);
    assert_false(x.grant);
    assert_int_equal(m.final_lsn, 400);
    assert_int_equal(m.phase, SWITCHOVER_TRANSFER);
    assert_int_equal(m.to_id, 2);
    assert_true(switchover_phase_holds(m.phase));
    /* Still leading: wait. */
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_NONE);
    assert_int_equal(m.phase, SWITCHOVER_TRANSFER);
    v.leading = false;
    v.now = T0 + 300;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(m.phase, SWITCHOVER_PROMOTING);
    assert_true(x.phase_changed);
    assert_false(switchover_phase_holds(m.phase));
    v.now = T0 + 1234;
    v.cand_primary = true;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_DONE);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.msg, "switched over from node1 to node2 in 1234 ms");
    assert_int_equal(m.phase, SWITCHOVER_IDLE);
    /* Idle: nothing more. */
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_NONE);
}

static void test_hook(void **state)
{
    (void)state;
    struct switchover_mem m = begun();
    struct switchover_view v = healthy(T0 + 10);
    /* Running: waits (the stop's event does not belong to this phase). */
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_STOPPED, true, NULL).kind, SWITCHOVER_ACT_NONE);
    assert_int_equal(m.phase, SWITCHOVER_HOOK);
    assert_false(switchover_phase_holds(m.phase));
    /* Done and still the settled leading primary: the stop. */
    struct switchover_action x = run(&m, &v, SWITCHOVER_EV_HOOK_DONE, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_STOP);
    assert_int_equal(m.phase, SWITCHOVER_STOPPING);
    assert_int_equal(m.phase_ms, T0 + 10);

    /* Failed. */
    m = begun();
    x = run(&m, &v, SWITCHOVER_EV_HOOK_DONE, false, "exit status 3");
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.status, 503);
    assert_int_equal(x.was, SWITCHOVER_HOOK);
    assert_string_equal(x.msg, "the on_switchover callback failed: exit status 3");
    assert_int_equal(x.reason, SWITCHOVER_REASON_HOOK_FAILED);
    assert_int_equal(m.phase, SWITCHOVER_IDLE);

    /* Already running. */
    m = begun();
    x = run(&m, &v, SWITCHOVER_EV_HOOK_BUSY, false, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "the on_switchover callback is already running");
    assert_int_equal(x.reason, SWITCHOVER_REASON_HOOK_BUSY);

    /* Done, but the member is no longer the settled leading primary: each condition alone. */
    for (int c = 0; c < 6; c++) {
        m = begun();
        struct switchover_view w = healthy(T0 + 10);
        bool *flags[] = {&w.leading,       &w.leader_ready, &w.lease_ok,
                         &w.self_recorded, &w.pg_running,   &w.pg_in_recovery};
        *flags[c] = !*flags[c];
        x = run(&m, &w, SWITCHOVER_EV_HOOK_DONE, true, NULL);
        assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
        assert_string_equal(x.msg, "this member no longer runs as the settled, leading primary");
        assert_int_equal(x.reason, SWITCHOVER_REASON_UNSETTLED);
    }

    /* Done while a control operation runs (a reload the core just began): the stop waits for
     * it, within SWITCHOVER_SETTLE_MS; the member must stay settled meanwhile. */
    m = begun();
    struct switchover_view b = healthy(T0 + 10);
    b.pg_busy = true;
    x = run(&m, &b, SWITCHOVER_EV_HOOK_DONE, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_NONE);
    assert_int_equal(m.phase, SWITCHOVER_HOOK);
    b.now = T0 + 40;
    assert_int_equal(run(&m, &b, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    b.pg_busy = false;
    b.now = T0 + 60;
    x = run(&m, &b, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_STOP);
    assert_int_equal(m.phase, SWITCHOVER_STOPPING);

    m = begun();
    b = healthy(T0 + 10);
    b.pg_busy = true;
    (void)run(&m, &b, SWITCHOVER_EV_HOOK_DONE, true, NULL);
    b.now = T0 + 10 + SWITCHOVER_SETTLE_MS;
    assert_int_equal(run(&m, &b, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    b.now++;
    x = run(&m, &b, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.reason, SWITCHOVER_REASON_UNSETTLED);
    assert_non_null(strstr(x.msg, "did not end within 2000 ms of the on_switchover callback"));

    m = begun();
    b = healthy(T0 + 10);
    b.pg_busy = true;
    (void)run(&m, &b, SWITCHOVER_EV_HOOK_DONE, true, NULL);
    b.lease_ok = false;
    b.now = T0 + 30;
    x = run(&m, &b, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "this member no longer runs as the settled, leading primary");

    /* The backstop: the callback's own time-out plus 5 s. */
    m = begun();
    v.now = T0 + 60000 + SWITCHOVER_HOOK_BACKSTOP_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.now++;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "the on_switchover callback did not end");
    assert_int_equal(x.reason, SWITCHOVER_REASON_HOOK_TIMEOUT);
}

static void test_stopping(void **state)
{
    (void)state;
    struct switchover_mem m = begun();
    struct switchover_view v = healthy(T0);
    (void)run(&m, &v, SWITCHOVER_EV_HOOK_NONE, true, NULL);
    assert_true(switchover_phase_holds(m.phase));
    /* The stop's bound and 5 s more, then give up. */
    v.now = T0 + SWITCHOVER_STOP_BACKSTOP_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.now++;
    struct switchover_action x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.was, SWITCHOVER_STOPPING);
    assert_string_equal(x.msg, "the primary did not stop");
    assert_int_equal(x.reason, SWITCHOVER_REASON_STOP_TIMEOUT);

    /* A failed stop, with and without a message. */
    m = begun();
    v.now = T0;
    (void)run(&m, &v, SWITCHOVER_EV_HOOK_NONE, true, NULL);
    x = run(&m, &v, SWITCHOVER_EV_STOPPED, false, "another operation on postgresql is under way");
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "another operation on postgresql is under way");
    m = begun();
    (void)run(&m, &v, SWITCHOVER_EV_HOOK_NONE, true, NULL);
    x = run(&m, &v, SWITCHOVER_EV_STOPPED, false, NULL);
    assert_string_equal(x.msg, "the fast shutdown failed");
    assert_int_equal(x.reason, SWITCHOVER_REASON_STOP_FAILED);
}

static void test_catchup(void **state)
{
    (void)state;
    /* No control data yet: ask the members again on a tick, not on a report. */
    struct switchover_mem m = stopped();
    struct switchover_view v = healthy(T0 + 150);
    v.pg_running = false;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_REPORT, true, NULL).kind, SWITCHOVER_ACT_NONE);
    assert_int_equal(m.final_lsn, 0);

    /* The candidate at the checkpoint, not past it: waits, then gives up past the bound. */
    v = down(T0 + 200);
    v.cand_wal = 400;
    struct switchover_action x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_POLL);
    assert_true(x.final_noted);
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_false(x.final_noted);
    v.now = T0 + 100 + SWITCHOVER_CATCHUP_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    v.now++;
    x = run(&m, &v, SWITCHOVER_EV_REPORT, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.was, SWITCHOVER_CATCHUP);
    assert_string_equal(x.msg, "node2 did not report WAL past the final checkpoint (400) within "
                               "5000 ms (last reported 400)");
    assert_int_equal(x.reason, SWITCHOVER_REASON_CATCHUP_TIMEOUT);

    /* Unreachable or unknown: never handed to. */
    m = stopped();
    v = down(T0 + 200);
    v.cand_reachable = false;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    v.cand_reachable = true;
    v.cand_known = false;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    v.now = T0 + 101 + SWITCHOVER_CATCHUP_MS;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_string_equal(x.msg, "node2 did not report WAL past the final checkpoint (400) within "
                               "5000 ms (last reported 0)");

    /* A candidate that stops answering (its agent died) is not waited for to the bound; one
     * answer in between starts the count again. */
    m = stopped();
    v = down(T0 + 200);
    v.cand_wal = 100;
    v.cand_reachable = false;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    v.now = T0 + 200 + SWITCHOVER_SILENT_MS - 100;
    v.cand_reachable = true;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_REPORT, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.cand_reachable = false;
    v.now++;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    rpg_msec silent = v.now;
    v.now = silent + SWITCHOVER_SILENT_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_POLL);
    v.now++;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.reason, SWITCHOVER_REASON_CANDIDATE_SILENT);
    assert_string_equal(x.msg, "node2 answered no poll for 1500 ms while the primary waited for it "
                               "to report WAL past the final checkpoint (400)");
    assert_string_equal(switchover_reason_name(x.reason), "candidate stopped answering");

    /* A crash, not a clean shutdown. */
    m = stopped();
    v = down(T0 + 200);
    v.clean_shutdown = false;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "the primary did not shut down cleanly");
    assert_int_equal(x.reason, SWITCHOVER_REASON_UNCLEAN);

    /* In maintenance mode the candidate gets the permit, granted before the hand-over. */
    m = stopped();
    v = down(T0 + 200);
    v.paused = true;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_TRANSFER);
    assert_true(x.grant);
    assert_string_equal(x.permit.to, "node2");
    assert_string_equal(x.permit.from, "node1");
    assert_int_equal(x.permit.until, T0 + 200 + FAILOVER_PERMIT_MS);
}

static void test_transfer_and_promoting(void **state)
{
    (void)state;
    struct switchover_mem m = stopped();
    struct switchover_view v = down(T0 + 200);
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(m.phase, SWITCHOVER_TRANSFER);
    struct switchover_action x =
        run(&m, &v, SWITCHOVER_EV_TRANSFER_FAILED, false, "node2 is not a voter");
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.was, SWITCHOVER_TRANSFER);
    assert_string_equal(x.msg, "node2 is not a voter");
    assert_int_equal(x.reason, SWITCHOVER_REASON_TRANSFER_REFUSED);

    m = stopped();
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    v.now = T0 + 200 + SWITCHOVER_TRANSFER_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.now++;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_string_equal(x.msg, "raft leadership did not move");
    assert_int_equal(x.reason, SWITCHOVER_REASON_TRANSFER_TIMEOUT);

    /* libraft gave the hand-over up with this member still leading: asked again, without a
     * second grant, within the same bound. */
    m = stopped();
    v = down(T0 + 200);
    v.transfers_failed = 4;
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(m.transfers_failed, 4);
    v.now = T0 + 900;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.transfers_failed = 5;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_TRANSFER);
    assert_false(x.phase_changed);
    assert_false(x.grant);
    assert_int_equal(m.phase, SWITCHOVER_TRANSFER);
    assert_int_equal(m.phase_ms, T0 + 200);
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.transfers_failed = 6;
    v.now = T0 + 201 + SWITCHOVER_TRANSFER_MS;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.reason, SWITCHOVER_REASON_TRANSFER_TIMEOUT);

    /* A candidate that reports it cannot lead (its Raft directory read-only, say) is not
     * handed leadership again and again until the bound, in either phase. */
    m = stopped();
    v = down(T0 + 200);
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(m.phase, SWITCHOVER_TRANSFER);
    v.now = T0 + 800;
    v.cand_unfit = true;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.reason, SWITCHOVER_REASON_CANDIDATE_UNFIT);
    assert_string_equal(x.msg, "node2 reports that its raft storage cannot persist or its "
                               "replicated state differs from the others': it cannot take "
                               "leadership");
    m = stopped();
    v = down(T0 + 200);
    v.cand_unfit = true;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_GIVE_UP);
    assert_int_equal(x.was, SWITCHOVER_CATCHUP);
    assert_int_equal(x.reason, SWITCHOVER_REASON_CANDIDATE_UNFIT);

    /* Leadership moved, the candidate never runs as primary: not abandoned, answered 503. */
    m = stopped();
    v = down(T0 + 200);
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    v.leading = false;
    v.now = T0 + 300;
    (void)run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(m.phase, SWITCHOVER_PROMOTING);
    v.now = T0 + 300 + SWITCHOVER_PRIMARY_MS;
    assert_int_equal(run(&m, &v, SWITCHOVER_EV_TICK, true, NULL).kind, SWITCHOVER_ACT_NONE);
    v.now++;
    x = run(&m, &v, SWITCHOVER_EV_TICK, true, NULL);
    assert_int_equal(x.kind, SWITCHOVER_ACT_MOVED);
    assert_int_equal(x.status, 503);
    assert_string_equal(x.msg, "raft leadership moved to node2, which does not run as primary "
                               "yet: see raftpg ctl list");
    assert_int_equal(m.phase, SWITCHOVER_IDLE);
}

/* prepare: a healthy three-member cluster led by node1, asked from it. */
struct fixture {
    struct fsm_state st;
    struct switchover_peer peers[2];
    struct switchover_ask in;
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->st.initialized = true;
    snprintf(f->st.primary.name, sizeof f->st.primary.name, "node1");
    for (unsigned i = 0; i < 2; i++) {
        f->peers[i] = (struct switchover_peer){.name = i == 0 ? "node2" : "node3",
                                               .reachable = true,
                                               .running_standby = true,
                                               .streams_from_us = true,
                                               .eligible = true,
                                               .wal_position = 100 + i,
                                               .priority = 1};
    }
    f->in = (struct switchover_ask){.has_pg = true,
                                    .state = &f->st,
                                    .self = "node1",
                                    .leader_ready = true,
                                    .lease_ok = true,
                                    .pg_running = true,
                                    .peers = f->peers,
                                    .n_peers = 2};
}

static int ask(struct fixture *f, char *chosen, char *why)
{
    chosen[0] = '\0';
    why[0] = '\0';
    return switchover_prepare(&f->in, chosen, FSM_NAME_MAX, why, 512);
}

static void test_prepare(void **state)
{
    (void)state;
    struct fixture f;
    char chosen[FSM_NAME_MAX], why[512];
    fixture_init(&f);
    assert_int_equal(ask(&f, chosen, why), 0);
    assert_string_equal(chosen, "node3"); /* furthest ahead */
    f.in.candidate = "node2";
    assert_int_equal(ask(&f, chosen, why), 0);
    assert_string_equal(chosen, "node2");

    f.in.phase = SWITCHOVER_CATCHUP;
    f.in.under_way_to = "node3";
    assert_int_equal(ask(&f, chosen, why), 409);
    assert_string_equal(why, "a switchover to node3 is under way (waiting for the candidate to "
                             "receive the last WAL)");
    fixture_init(&f);
    f.in.has_pg = false;
    assert_int_equal(ask(&f, chosen, why), 412);
    assert_string_equal(why, "this member manages no postgresql");
    fixture_init(&f);
    f.st.initialized = false;
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_string_equal(why, "the cluster state is not known yet");

    /* Maintenance mode: a request needs its candidate, a scheduled one does not run. */
    fixture_init(&f);
    f.st.paused = true;
    assert_int_equal(ask(&f, chosen, why), 412);
    assert_non_null(strstr(why, "a switchover needs a candidate (--candidate)"));
    f.in.scheduled = true;
    f.in.candidate = "node2";
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_non_null(strstr(why, "no scheduled switchover runs"));
    f.in.scheduled = false;
    assert_int_equal(ask(&f, chosen, why), 0);

    fixture_init(&f);
    f.in.lease_ok = false;
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_string_equal(why, "this member is not the ready leader");
    fixture_init(&f);
    f.in.pg_busy = true;
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_string_equal(why, "this member does not run as a settled primary");
    fixture_init(&f);
    snprintf(f.st.primary.name, sizeof f.st.primary.name, "node2");
    assert_int_equal(ask(&f, chosen, why), 503);
    fixture_init(&f);
    f.in.leader = "node2";
    assert_int_equal(ask(&f, chosen, why), 412);
    assert_string_equal(why, "node2 is not the primary (node1 is)");
    fixture_init(&f);
    f.in.candidate = "node2";
    f.peers[0].streams_from_us = false;
    assert_int_equal(ask(&f, chosen, why), 412);
    assert_string_equal(why, "node2 does not stream from this primary");

    /* Synchronous: k = 1 of voters node2, node3 needs both streaming. */
    fixture_init(&f);
    f.st.sync.k = 1;
    f.st.sync.n_voters = 2;
    snprintf(f.st.sync.voters[0], FSM_NAME_MAX, "node2");
    snprintf(f.st.sync.voters[1], FSM_NAME_MAX, "node3");
    assert_int_equal(ask(&f, chosen, why), 0);
    f.peers[0].reachable = false;
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_string_equal(why, "1 of the 2 synchronous standbys stream from this primary, 2 needed "
                             "for a new primary to be sure it has every commit: try again once "
                             "they stream");

    /* A degraded record proves no standby holds every commit: in quorum or strict mode the
     * candidate could not promote, so the primary is not stopped for it. */
    fixture_init(&f);
    f.in.sync_mode = SYNC_MODE_QUORUM;
    assert_int_equal(ask(&f, chosen, why), 503);
    assert_non_null(strstr(why, "synchronous replication is degraded (k=0)"));
    f.in.sync_mode = SYNC_MODE_OFF;
    assert_int_equal(ask(&f, chosen, why), 0);
}

static void test_peer_of(void **state)
{
    (void)state;
    struct switchover_self self = {
        .name = "node1", .connect_address = "10.0.0.1:5432", .timeline = 3, .system_id = 7};
    struct fsm_member m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "node2");
    m.id = 2;
    struct peer_status p;
    memset(&p, 0, sizeof p);
    p.reachable = true;
    p.last_seen = 1000;
    p.id = 2;
    p.pg_state = HA_PG_RUNNING;
    p.pg_in_recovery = true;
    p.pg_streaming = true;
    snprintf(p.pg_receiver, sizeof p.pg_receiver, "10.0.0.1:5432");
    p.pg_timeline = 3;
    p.pg_system_id = 7;
    p.failover_priority = 1;
    p.pg_wal_position = 900;
    struct switchover_peer out;
    switchover_peer_of(&self, &m, &p, 1000 + SWITCHOVER_REPORT_FRESH_MS, &out);
    assert_true(out.reachable && out.running_standby && out.streams_from_us && out.eligible);
    assert_int_equal(out.wal_position, 900);
    switchover_peer_of(&self, &m, &p, 1001 + SWITCHOVER_REPORT_FRESH_MS, &out);
    assert_false(out.reachable);
    p.pg_timeline = 2; /* still crossing to this primary's timeline */
    switchover_peer_of(&self, &m, &p, 1000, &out);
    assert_false(out.streams_from_us);
    p.pg_timeline = 3;
    p.id = 5; /* another member under this name */
    switchover_peer_of(&self, &m, &p, 1000, &out);
    assert_false(out.eligible);
    switchover_peer_of(&self, &m, NULL, 1000, &out);
    assert_string_equal(out.name, "node2");
    assert_false(out.reachable || out.running_standby || out.eligible);

    /* The candidate in the step's view: primary once recorded and running out of recovery. */
    struct fsm_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.primary.name, sizeof st.primary.name, "node1");
    struct switchover_view v;
    memset(&v, 0, sizeof v);
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_true(v.cand_known && v.cand_reachable);
    assert_int_equal(v.cand_wal, 900);
    assert_false(v.cand_primary);
    p.pg_in_recovery = false;
    assert_false(v.cand_primary);
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_false(v.cand_primary); /* not recorded yet */
    snprintf(st.primary.name, sizeof st.primary.name, "node2");
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_true(v.cand_primary);
    p.reachable = false;
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_false(v.cand_primary || v.cand_reachable);
    switchover_view_candidate(&v, &st, "node2", NULL);
    assert_false(v.cand_known || v.cand_primary);
    assert_int_equal(v.cand_wal, 0);
    /* Unfit by its own report: Raft storage failing or state diverged. */
    p.reachable = true;
    p.storage_failed = false;
    p.diverged = false;
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_false(v.cand_unfit);
    p.storage_failed = true;
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_true(v.cand_unfit);
    p.storage_failed = false;
    p.diverged = true;
    switchover_view_candidate(&v, &st, "node2", &p);
    assert_true(v.cand_unfit);
}

static void test_paused_mask(void **state)
{
    (void)state;
    bool stop = false;
    assert_int_equal(switchover_paused_mask(&stop, true, false, true), 0);
    stop = true;
    assert_int_equal(switchover_paused_mask(&stop, true, false, true), 1u << HA_ACT_START_PRIMARY);
    assert_true(stop);
    assert_int_equal(switchover_paused_mask(&stop, true, false, false),
                     1u << HA_ACT_REWIND | 1u << HA_ACT_START_STANDBY);
    /* Its server runs again: the operator owns it. */
    assert_int_equal(switchover_paused_mask(&stop, true, true, false), 0);
    assert_false(stop);
    stop = true;
    assert_int_equal(switchover_paused_mask(&stop, false, false, true), 0);
    assert_false(stop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_hook),
        cmocka_unit_test(test_stopping),
        cmocka_unit_test(test_catchup),
        cmocka_unit_test(test_transfer_and_promoting),
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_peer_of),
        cmocka_unit_test(test_paused_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
