/* fence_plan: one tick of the old side's fence, the VIP and the watchdog (src/fence.c), the same
 * function the agent and the simulation run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "raftpg/fence.h"

static struct fence_timing t;

/* A primary under its lease, the VIP held and freshly renewed, nothing under way. */
static struct fence_in primary(void)
{
    fence_timing_init(&t, 500);
    struct fence_in in;
    memset(&in, 0, sizeof in);
    in.now = 10000;
    in.lease_ok = true;
    in.writable = true;
    in.postmaster = true;
    in.primary_running = true;
    in.recorded_primary = true;
    in.vip.open = true;
    in.vip.held = true;
    in.vip.startup_done = true;
    in.vip.renewed_at = 9900;
    in.vip.renew_ms = 500;
    return in;
}

static struct fence_out plan(const struct fence_in *in)
{
    struct fence_out out;
    memset(&out, 0xa5, sizeof out);
    fence_plan(&t, in, &out);
    return out;
}

static void test_a_primary_under_its_lease_keeps_everything(void **state)
{
    (void)state;
    struct fence_in in = primary();
    struct fence_out out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_NONE);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
    assert_true(out.feed_watchdog);
    assert_true(out.unfenced);
    assert_true(out.want_vip);
}

/* The hard layer: the lease has ended (or this node no longer leads its term), so a successor
 * could exist. */
static void test_losing_the_lease_stops_the_server_and_releases_the_vip_at_once(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.lease_lapsed = true;
    struct fence_out out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_STOP);
    assert_int_equal(out.vip, FENCE_VIP_RELEASE);
    assert_false(out.feed_watchdog);
    /* Not fenced yet: the watchdog stays armed, the guard is told so. */
    assert_true(out.unfenced);
}

static void test_a_fence_during_an_operation_kills_at_once(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.lease_lapsed = true;
    in.pg_busy = true;
    assert_int_equal(plan(&in).pg, FENCE_PG_KILL);
    in.frozen = true; /* stopped by the soft layer: killed the same way (and continued) */
    assert_int_equal(plan(&in).pg, FENCE_PG_KILL);
}

/* The soft layer: the lease is ending but has not ended, so no successor can exist yet. The
 * server is paused with its sessions, the VIP kept but not renewed, the watchdog not fed. */
static void test_a_lease_about_to_end_pauses_the_server_and_keeps_the_vip(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.vip.renewed_at = in.now - in.vip.renew_ms;
    struct fence_out out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_FREEZE);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
    assert_false(out.feed_watchdog);
    assert_true(out.unfenced);
    assert_false(out.want_vip);
    in.frozen = true;
    out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_NONE);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
    in.pg_busy = true; /* an operation changes nothing: a stopped process runs nothing */
    assert_int_equal(plan(&in).pg, FENCE_PG_NONE);
}

/* A stall that ends while the lease still holds costs a pause: the lease renewed resumes it. */
static void test_a_renewed_lease_resumes_the_paused_server(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.frozen = true;
    struct fence_out out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_THAW);
    assert_true(out.want_vip);
    /* Or its postmaster is gone (killed, crashed): nothing is left paused. */
    in.lease_ok = false;
    in.postmaster = false;
    in.writable = false;
    assert_int_equal(plan(&in).pg, FENCE_PG_THAW);
}

/* The lease ends while the server is paused: the hard layer, and the VIP goes. */
static void test_a_paused_server_is_stopped_when_the_lease_ends(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.frozen = true;
    in.lease_lapsed = true;
    struct fence_out out = plan(&in);
    assert_int_equal(out.pg, FENCE_PG_STOP);
    assert_int_equal(out.vip, FENCE_VIP_RELEASE);
}

static void test_the_lease_lapses_at_its_end(void **state)
{
    (void)state;
    assert_false(fence_lease_lapsed(10400, 10399));
    assert_true(fence_lease_lapsed(10400, 10400));
    assert_true(fence_lease_lapsed(0, 1)); /* no lease: not the ready leader */
}

static void test_no_postmaster_nothing_to_fence(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.postmaster = false;
    in.writable = false;
    assert_int_equal(plan(&in).pg, FENCE_PG_NONE);
}

static void
test_the_fast_stop_escalates_after_its_bound_and_ends_when_the_server_is_gone(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.fencing = true;
    in.fence_started = in.now - t.escalate_ms + 1;
    assert_int_equal(plan(&in).pg, FENCE_PG_NONE);
    in.fence_started = in.now - t.escalate_ms;
    assert_int_equal(plan(&in).pg, FENCE_PG_ESCALATE);
    in.escalated = true;
    assert_int_equal(plan(&in).pg, FENCE_PG_NONE);
    in.target_gone = true;
    in.writable = false;
    in.postmaster = false;
    assert_int_equal(plan(&in).pg, FENCE_PG_DONE);
}

static void test_a_fence_in_progress_never_claims(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.fencing = true;
    in.vip.held = false;
    struct fence_out out = plan(&in);
    assert_false(out.want_vip);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
}

static void test_a_release_cuts_a_claim_short(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.vip.held = false;
    in.vip.busy = true;
    in.vip.claiming = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE); /* still wanted: let it finish */
    in.lease_ok = false;
    in.lease_lapsed = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_RELEASE);
    in.vip.releasing = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE); /* asked once */
}

/* Recorded as primary and acting as leader, not yet promoted: probe ahead of the claim, never add.
 */
static void test_probe_ahead_of_the_promotion(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.primary_running = false;
    in.vip.held = false;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE); /* not due: not acting as leader yet */
    in.vip.probe_due = true;
    struct fence_out out = plan(&in);
    assert_false(out.want_vip);
    assert_int_equal(out.vip, FENCE_VIP_PROBE);
    /* Once the server is primary the claim comes instead (and takes a running probe over). */
    in.primary_running = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_CLAIM);
    /* Never without the lease, during a fence, for another primary, or after a refusal. */
    in = primary();
    in.primary_running = false;
    in.vip.held = false;
    in.vip.probe_due = true;
    in.lease_ok = false;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.lease_ok = true;
    in.fencing = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.fencing = false;
    in.recorded_primary = false;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.recorded_primary = true;
    in.vip.refused = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.vip.refused = false;
    in.vip.busy = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
}

/* The server's observation said primary, but its postmaster is gone (the fence stopped it, then
 * the machine froze with its clocks before the next observation): no claim, and a held address
 * goes (raftpg_sim --seed 798267588073 claimed the VIP at the resume). */
static void test_no_vip_without_a_postmaster(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.vip.held = false;
    in.postmaster = false;
    struct fence_out out = plan(&in);
    assert_false(out.want_vip);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
    in.vip.held = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_RELEASE);
    in.postmaster = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE); /* renewed recently */
}

static void test_claim_retry_and_renewal(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.vip.held = false;
    assert_int_equal(plan(&in).vip, FENCE_VIP_CLAIM);
    in.vip.refused = true;
    in.vip.failed_at = in.now - FENCE_VIP_RETRY_MS;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.vip.failed_at = in.now - FENCE_VIP_RETRY_MS - 1;
    assert_int_equal(plan(&in).vip, FENCE_VIP_RETRY);
    in = primary();
    in.vip.renewed_at = in.now - in.vip.renew_ms;
    assert_int_equal(plan(&in).vip, FENCE_VIP_RENEW);
    /* Never renewed without the lease: a hung agent's VIP must lapse. */
    in.lease_ok = false;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    in.lease_lapsed = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_RELEASE);
}

static void test_a_standby_releases_a_stale_vip_once_at_start_up(void **state)
{
    (void)state;
    struct fence_in in = primary();
    in.lease_ok = false;
    in.writable = false;
    in.primary_running = false;
    in.recorded_primary = false;
    in.vip.held = false;
    in.vip.startup_done = false;
    struct fence_out out = plan(&in);
    assert_int_equal(out.vip, FENCE_VIP_STARTUP_RELEASE);
    assert_false(out.unfenced);
    in.vip.startup_done = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
    /* Only the recorded primary claims. */
    in.lease_ok = true;
    in.primary_running = true;
    assert_int_equal(plan(&in).vip, FENCE_VIP_NONE);
}

static void test_without_a_vip_section_only_the_server_counts(void **state)
{
    (void)state;
    struct fence_in in = primary();
    memset(&in.vip, 0, sizeof in.vip);
    in.vip.held = true; /* ignored when not open */
    struct fence_out out = plan(&in);
    assert_int_equal(out.vip, FENCE_VIP_NONE);
    in.writable = false;
    assert_false(plan(&in).unfenced);
    /* With a section, a VIP held or changing keeps the node unfenced. */
    in.vip.open = true;
    assert_true(plan(&in).unfenced);
    in.vip.held = false;
    in.vip.busy = true;
    assert_true(plan(&in).unfenced);
    in.vip.busy = false;
    assert_false(plan(&in).unfenced);
}

/* A ready leader with the lease acts once the previous leader has surely fenced: last contact +
 * lease + margin + the hard layer's time (400 + 100 + 125 with ET 500), plus the watchdog's
 * timeout when nodes run one. */
static void test_a_new_leader_waits_for_the_previous_lease_and_watchdog(void **state)
{
    (void)state;
    struct fence_timing ft;
    fence_timing_init(&ft, 500);
    assert_false(fence_may_lead(&ft, true, true, 10000, 1000, 0, 10624));
    assert_true(fence_may_lead(&ft, true, true, 10000, 1000, 0, 10625));
    assert_false(fence_may_lead(&ft, true, true, 10000, 1000, 1000, 11624));
    assert_true(fence_may_lead(&ft, true, true, 10000, 1000, 1000, 11625));
    /* Never heard a leader since the start: the start counts. */
    assert_false(fence_may_lead(&ft, true, true, 0, 1000, 0, 1624));
    assert_true(fence_may_lead(&ft, true, true, 0, 1000, 0, 1625));
    assert_false(fence_may_lead(&ft, false, true, 0, 1000, 0, 99999));
    assert_false(fence_may_lead(&ft, true, false, 0, 1000, 0, 99999));
}

static void test_what_may_accept_writes(void **state)
{
    (void)state;
    /* postmaster, promoting, observed primary, standby.signal */
    assert_false(fence_pg_writable(false, true, true, false));
    assert_true(fence_pg_writable(true, true, false, true));
    assert_true(fence_pg_writable(true, false, true, true));
    assert_true(fence_pg_writable(true, false, false, false));
    assert_false(fence_pg_writable(true, false, false, true));
}

/* Loop gaps (fence.h): a gap longer than gap_ms distrusts the lease until a barrier submitted
 * after it commits; a shorter one changes nothing. */
static void test_a_loop_gap_is_a_gap_longer_than_its_bound(void **state)
{
    (void)state;
    fence_timing_init(&t, 500);
    assert_int_equal(t.gap_ms, 250);
    assert_false(fence_loop_gap(&t, 0, 5000));    /* the first tick */
    assert_false(fence_loop_gap(&t, 5000, 5010)); /* the usual 10 ms */
    assert_false(fence_loop_gap(&t, 5000, 5130)); /* a stall of a loaded machine */
    assert_false(fence_loop_gap(&t, 5000, 5250)); /* at the bound */
    assert_true(fence_loop_gap(&t, 5000, 5251));
    assert_false(fence_loop_gap(&t, 5000, 4990)); /* never backwards */
}

static void test_after_a_gap_only_a_fresh_barrier_grants_the_lease(void **state)
{
    (void)state;
    fence_timing_init(&t, 500);
    assert_true(fence_lease_trusted(&t, 10400, 0));
    /* Barrier submitted at 10000 (lease until 10400), gap seen at 10150: not trusted. */
    assert_false(fence_lease_trusted(&t, 10400, 10150));
    /* A barrier submitted at 10150 or later is. */
    assert_true(fence_lease_trusted(&t, 10550, 10150));
    assert_true(fence_lease_trusted(&t, 10600, 10150));
    assert_false(fence_lease_trusted(&t, 0, 10150));
}

static void
test_a_short_stall_keeps_the_lease_and_a_long_one_pauses_until_a_fresh_barrier(void **state)
{
    (void)state;
    fence_timing_init(&t, 500);
    struct fence_clock k = {0};
    bool gap;
    /* Ticks every 10 ms under a lease from a barrier submitted at 10000 (until 10400). */
    assert_true(fence_lease_check(&t, &k, true, 10400, 10000, &gap));
    assert_false(gap);
    assert_true(fence_lease_check(&t, &k, true, 10400, 10010, &gap));
    /* A 130 ms scheduling stall (a loaded machine): under the bound, the lease holds. */
    assert_true(fence_lease_check(&t, &k, true, 10400, 10140, &gap));
    assert_false(gap);
    /* A clock that counted only part of a pause: 260 ms seen, yet the lease, renewed at 10100
     * (until 10500), still has time on this clock. It is not trusted. */
    assert_false(fence_lease_check(&t, &k, true, 10500, 10400, &gap));
    assert_true(gap);
    assert_int_equal(k.n_gaps, 1);
    assert_int_equal(k.gap_at, 10400);
    /* The next tick is no gap; still untrusted, and not lapsed: the soft layer, not the hard. */
    assert_false(fence_lease_check(&t, &k, true, 10500, 10410, &gap));
    assert_false(gap);
    assert_false(fence_lease_lapsed(10500, 10410));
    struct fence_in in = primary();
    in.now = 10410;
    in.lease_ok = false;
    in.lease_lapsed = false;
    assert_int_equal(plan(&in).pg, FENCE_PG_FREEZE);
    /* A barrier submitted at 10400 commits: lease until 10800, trusted; the server resumes. */
    assert_true(fence_lease_check(&t, &k, true, 10800, 10420, &gap));
    in.now = 10420;
    in.lease_ok = true;
    in.frozen = true;
    assert_int_equal(plan(&in).pg, FENCE_PG_THAW);
    /* Had the node lost its leadership instead (no lease at all), the hard layer. */
    assert_false(fence_lease_check(&t, &k, false, 0, 10430, &gap));
    in.now = 10430;
    in.lease_ok = false;
    in.lease_lapsed = fence_lease_lapsed(0, 10430);
    assert_int_equal(plan(&in).pg, FENCE_PG_STOP);
}

/* fence_others_stood_down: one case per way a member keeps the wait. */
static void test_a_new_leader_acts_at_once_only_when_every_other_member_stood_down(void **state)
{
    (void)state;
    const struct fence_member_report quiet = {
        .fresh = true, .term = 7, .leads = false, .server_quiet = true};
    struct {
        const char *what;
        struct fence_member_report second; /* the first member is always quiet */
        unsigned n;
        bool want;
    } cases[] = {
        {"both quiet, in this term", quiet, 2, true},
        {"a later term", {.fresh = true, .term = 8, .server_quiet = true}, 2, true},
        {"no other member", quiet, 0, false},
        {"a report asked for before the leadership", {.term = 7, .server_quiet = true}, 2, false},
        {"an earlier term", {.fresh = true, .term = 6, .server_quiet = true}, 2, false},
        {"it still leads",
         {.fresh = true, .term = 7, .leads = true, .server_quiet = true},
         2,
         false},
        {"its server may accept writes", {.fresh = true, .term = 7}, 2, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fence_member_report r[2] = {quiet, cases[i].second};
        bool got = fence_others_stood_down(cases[i].n == 0 ? NULL : r, cases[i].n, 7);
        if (got != cases[i].want) {
            fail_msg("%s: got %d, want %d", cases[i].what, got, cases[i].want);
        }
    }
}

/* The follower's answer to a lease echo: yes only for its own leader in its own term once its
 * election timer restarted strictly after the probe arrived; no for an older term or once the
 * wait ran out; otherwise it waits for the next heartbeat. */
static void test_a_lease_echo_is_yes_only_after_a_timer_restart_from_that_leader(void **state)
{
    (void)state;
    struct fence_timing ft;
    fence_timing_init(&ft, 1000);
    assert_int_equal(ft.echo_wait_ms, 500);
    struct fence_echo_view v = {.follower = true, .term = 7, .leader_id = 2, .timer_start = 1000};
    /* The heartbeat that restarted the timer was handled before the probe, or in its turn. */
    assert_int_equal(fence_echo_decide(&v, 2, 7, 1000, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    assert_int_equal(fence_echo_decide(&v, 2, 7, 1001, 1050, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    /* One handled in a later turn. */
    assert_int_equal(fence_echo_decide(&v, 2, 7, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_YES);
    /* Another leader, another term, no leader, not a follower. */
    assert_int_equal(fence_echo_decide(&v, 3, 7, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    assert_int_equal(fence_echo_decide(&v, 2, 8, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    assert_int_equal(fence_echo_decide(&v, 2, 6, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_NO);
    assert_int_equal(fence_echo_decide(&v, 0, 7, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    struct fence_echo_view lost = v;
    lost.leader_id = 0;
    assert_int_equal(fence_echo_decide(&lost, 2, 7, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    struct fence_echo_view cand = v;
    cand.follower = false;
    assert_int_equal(fence_echo_decide(&cand, 2, 7, 999, 1000, ft.echo_wait_ms), FENCE_ECHO_WAIT);
    /* The wait is bounded: no at arrival + echo_wait_ms, not before. */
    assert_int_equal(fence_echo_decide(&cand, 2, 7, 999, 999 + 499, ft.echo_wait_ms),
                     FENCE_ECHO_WAIT);
    assert_int_equal(fence_echo_decide(&cand, 2, 7, 999, 999 + 500, ft.echo_wait_ms),
                     FENCE_ECHO_NO);
    assert_int_equal(fence_echo_decide(&v, 2, 7, 1000, 1500, ft.echo_wait_ms), FENCE_ECHO_NO);
}

/* One fence tick as the executors run it: the note, then the leader loop's decision. */
static bool flap(const struct fence_timing *ft, struct fence_flap *f, bool leader, rpg_msec until,
                 rpg_msec now)
{
    fence_flap_note(f, leader, until, now);
    return fence_flap_tick(ft, f, leader, now);
}

/* A single lapse (a stall that outlived the lease) never hands over; once the lease is held
 * again it must be held for steady_ms before the leader acts. */
static void test_one_lapse_needs_a_steady_lease_but_never_hands_over(void **state)
{
    (void)state;
    struct fence_timing ft;
    fence_timing_init(&ft, 1000);
    assert_int_equal(ft.steady_ms, 1000);
    assert_int_equal(ft.flap_window_ms, 20000);
    struct fence_flap f = {0};
    /* A leader holding its lease: steady, nothing to do. */
    assert_false(flap(&ft, &f, true, 5800, 5000));
    assert_true(fence_flap_steady(&ft, &f, 5000));
    /* It lapses: no hand-over, not steady. */
    assert_false(flap(&ft, &f, true, 5800, 5800));
    assert_int_equal(f.n_lapses, 1);
    assert_false(fence_flap_steady(&ft, &f, 5800));
    /* Renewed, seen at the tick of 5850: steady only from 6850. */
    assert_false(flap(&ft, &f, true, 6650, 5850));
    assert_false(fence_flap_steady(&ft, &f, 5900));
    assert_false(flap(&ft, &f, true, 7000, 6849));
    assert_false(fence_flap_steady(&ft, &f, 6849));
    assert_false(flap(&ft, &f, true, 7600, 6850));
    assert_true(fence_flap_steady(&ft, &f, 6850));
    /* Held for the rest of the window and beyond: never a hand-over. */
    for (rpg_msec now = 6900; now < 40000; now += 10) {
        assert_false(flap(&ft, &f, true, now + 700, now));
    }
    assert_int_equal(f.n_lapses, 1);
    assert_int_equal(f.n_handovers, 0);
    assert_true(fence_flap_steady(&ft, &f, 40000));
    /* A lapse no tick saw (renewed in between) is none. */
    assert_false(flap(&ft, &f, true, 40800, 40790));
    assert_false(flap(&ft, &f, true, 41600, 40810));
    assert_int_equal(f.n_lapses, 1);
}

/* A lease that keeps lapsing: after the second lapse within the window the leader hands over
 * once it holds its lease again (never while lapsed: it may be a stale leader), then every
 * steady_ms while it leads; back as leader in the window, at its first lapse; lapses further
 * apart than the window hand nothing over. */
static void test_a_lease_that_lapses_again_hands_over(void **state)
{
    (void)state;
    struct fence_timing ft;
    fence_timing_init(&ft, 1000);
    struct fence_flap f = {0};
    assert_false(flap(&ft, &f, true, 1800, 1000));
    assert_false(flap(&ft, &f, true, 1800, 1800)); /* lapse 1 */
    assert_false(flap(&ft, &f, true, 2600, 1850)); /* renewed */
    assert_false(flap(&ft, &f, true, 2600, 1900));
    /* Lapse 2: not while lapsed, however long. */
    assert_false(flap(&ft, &f, true, 2600, 2600));
    assert_false(flap(&ft, &f, true, 2600, 4000));
    assert_int_equal(f.n_lapses, 2);
    /* Renewed: at once, then not before steady_ms. */
    assert_true(flap(&ft, &f, true, 4700, 4000 + 10));
    assert_false(fence_flap_steady(&ft, &f, 4100));
    assert_false(flap(&ft, &f, true, 4700, 4500));
    assert_false(flap(&ft, &f, true, 5700, 5009));
    assert_true(flap(&ft, &f, true, 5700, 5010));
    /* A new lapse and a renewal: at once again. */
    assert_false(flap(&ft, &f, true, 5700, 5700));
    assert_true(flap(&ft, &f, true, 6500, 5720));
    assert_int_equal(f.n_handovers, 3);
    /* No longer leader: nothing. Leading again in a later term inside the window: the lease must
     * be steady first, and nothing is handed over until it lapses once in this term. */
    assert_false(flap(&ft, &f, false, 0, 6000));
    assert_false(flap(&ft, &f, true, 9800, 9000));
    assert_false(fence_flap_steady(&ft, &f, 9500));
    assert_false(flap(&ft, &f, true, 9800, 9500));
    assert_false(flap(&ft, &f, true, 9800, 9800)); /* its first lapse here */
    assert_true(flap(&ft, &f, true, 10600, 9810));
    /* The window ends 20 s after the last lapse: nothing more. */
    for (rpg_msec now = 10900; now < 40000; now += 10) {
        bool handed = flap(&ft, &f, true, now + 700, now);
        assert_true(!handed || now - 9800 <= ft.flap_window_ms);
    }
    assert_false(flap(&ft, &f, true, 40700, 40000));
    assert_true(fence_flap_steady(&ft, &f, 40000));
    /* Far apart: two lapses 20.1 s apart hand nothing over. */
    struct fence_flap g = {0};
    assert_false(flap(&ft, &g, true, 1000, 1000));
    assert_false(flap(&ft, &g, true, 21900, 1100));
    assert_false(flap(&ft, &g, true, 21100, 21100));
    assert_false(flap(&ft, &g, true, 21900, 21110));
    assert_int_equal(g.n_lapses, 2);
    assert_int_equal(g.n_handovers, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_primary_under_its_lease_keeps_everything),
        cmocka_unit_test(test_losing_the_lease_stops_the_server_and_releases_the_vip_at_once),
        cmocka_unit_test(test_a_fence_during_an_operation_kills_at_once),
        cmocka_unit_test(test_a_lease_about_to_end_pauses_the_server_and_keeps_the_vip),
        cmocka_unit_test(test_a_renewed_lease_resumes_the_paused_server),
        cmocka_unit_test(test_a_paused_server_is_stopped_when_the_lease_ends),
        cmocka_unit_test(test_the_lease_lapses_at_its_end),
        cmocka_unit_test(test_no_postmaster_nothing_to_fence),
        cmocka_unit_test(
            test_the_fast_stop_escalates_after_its_bound_and_ends_when_the_server_is_gone),
        cmocka_unit_test(test_a_fence_in_progress_never_claims),
        cmocka_unit_test(test_a_release_cuts_a_claim_short),
        cmocka_unit_test(test_probe_ahead_of_the_promotion),
        cmocka_unit_test(test_no_vip_without_a_postmaster),
        cmocka_unit_test(test_claim_retry_and_renewal),
        cmocka_unit_test(test_a_standby_releases_a_stale_vip_once_at_start_up),
        cmocka_unit_test(test_without_a_vip_section_only_the_server_counts),
        cmocka_unit_test(test_a_new_leader_waits_for_the_previous_lease_and_watchdog),
        cmocka_unit_test(test_a_new_leader_acts_at_once_only_when_every_other_member_stood_down),
        cmocka_unit_test(test_what_may_accept_writes),
        cmocka_unit_test(test_a_loop_gap_is_a_gap_longer_than_its_bound),
        cmocka_unit_test(test_after_a_gap_only_a_fresh_barrier_grants_the_lease),
        cmocka_unit_test(
            test_a_short_stall_keeps_the_lease_and_a_long_one_pauses_until_a_fresh_barrier),
        cmocka_unit_test(test_a_lease_echo_is_yes_only_after_a_timer_restart_from_that_leader),
        cmocka_unit_test(test_one_lapse_needs_a_steady_lease_but_never_hands_over),
        cmocka_unit_test(test_a_lease_that_lapses_again_hands_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
