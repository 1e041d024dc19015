/* fence_step: the fence tick both executors run (src/fence_step.c), against an executor that
 * records what it was asked to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "raftpg/fence_step.h"

struct rec {
    char log[2048];
    unsigned renews;
    enum fence_pg_act signals[8];
    unsigned n_signals;
    enum fence_vip_act vips[8];
    bool cut[8];
    unsigned n_vips;
    bool fed, unfenced;
    int vip_rv;
};

static void r_log(void *data, enum log_level level, const char *msg)
{
    struct rec *r = data;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s: %s\n", log_level_name(level), msg);
}

static void r_renew(void *data)
{
    ((struct rec *)data)->renews++;
}

static int r_signal(void *data, enum fence_pg_act act)
{
    struct rec *r = data;
    r->signals[r->n_signals++ % 8] = act;
    return 3;
}

static const char *r_target(void *data)
{
    (void)data;
    return "postgresql";
}

static void r_watchdog(void *data, bool feed, bool unfenced)
{
    struct rec *r = data;
    r->fed = feed;
    r->unfenced = unfenced;
}

static int r_vip(void *data, enum fence_vip_act act, bool cut, char *errmsg)
{
    struct rec *r = data;
    r->cut[r->n_vips % 8] = cut;
    r->vips[r->n_vips++ % 8] = act;
    if (r->vip_rv != 0) {
        snprintf(errmsg, RPG_ERRMSG_SIZE, "ip: operation not permitted");
    }
    return r->vip_rv;
}

static struct fence_timing t;
static struct rec rec;
static struct fence_exec x;

static void reset(void)
{
    fence_timing_init(&t, 500);
    memset(&rec, 0, sizeof rec);
    x = (struct fence_exec){&rec, r_log, r_renew, r_signal, r_target, r_watchdog, r_vip};
}

/* A ready leader's primary under its lease, ticked every 10 ms, the VIP held. */
static struct fence_world primary(rpg_msec now)
{
    return (struct fence_world){
        .now = now,
        .leader_ready = true,
        .lease_until = now + 300,
        .writable = true,
        .postmaster = true,
        .pid = 4242,
        .primary_running = true,
        .recorded_primary = true,
        .vip_open = true,
        .vip_held = true,
        .vip_renew_ms = 500,
    };
}

static void tick(struct fence_memory *m, const struct fence_world *w, bool *unfenced)
{
    fence_step(&t, m, w, &x, unfenced);
}

static void test_a_primary_under_its_lease_is_left_alone_and_feeds_the_watchdog(void **state)
{
    (void)state;
    reset();
    struct fence_memory m = {0};
    bool unfenced = false;
    for (rpg_msec now = 10000; now < 10100; now += 10) {
        struct fence_world w = primary(now);
        m.vip_renewed_at = now; /* renewed: nothing to do for the VIP */
        m.vip_startup_done = true;
        tick(&m, &w, &unfenced);
    }
    assert_true(m.lease_ok);
    assert_int_equal(rec.n_signals, 0);
    assert_int_equal(rec.n_vips, 0);
    assert_true(rec.fed);
    assert_true(unfenced);
    assert_non_null(strstr(rec.log, "lease held"));
    assert_int_equal(m.n_fences, 0);
}

/* The lease ran out with the server writable: SIGINT at once, the VIP released, the watchdog no
 * longer fed but left armed; the fence ends when the signalled postmaster is gone. */
static void test_a_lapsed_lease_fences_releases_and_ends_when_the_server_is_gone(void **state)
{
    (void)state;
    reset();
    struct fence_memory m = {.lease_ok = true, .vip_startup_done = true};
    m.clock.last_tick = 20000 - 10;
    struct fence_world w = primary(20000);
    w.leader_ready = false;
    w.lease_until = 19000;
    bool unfenced = false;
    tick(&m, &w, &unfenced);
    assert_false(m.lease_ok);
    assert_true(m.fencing);
    assert_int_equal(m.n_fences, 1);
    assert_int_equal(rec.n_signals, 1);
    assert_int_equal(rec.signals[0], FENCE_PG_STOP);
    assert_int_equal(rec.n_vips, 1);
    assert_int_equal(rec.vips[0], FENCE_VIP_RELEASE);
    assert_true(m.vip_releasing);
    assert_false(rec.fed);
    assert_true(rec.unfenced);
    assert_non_null(strstr(rec.log, "WARNING: fencing: postgresql may accept writes without a "
                                    "lease: stopping it (pid=4242)"));
    /* The postmaster exited. */
    w.now += 10;
    w.postmaster = false;
    w.writable = false;
    w.primary_running = false;
    w.target_gone = true;
    w.vip_held = false;
    fence_vip_done(&m, FENCE_VIP_DONE_OK, false, false, w.now);
    tick(&m, &w, &unfenced);
    assert_false(m.fencing);
    assert_non_null(strstr(rec.log, "fenced: postgresql stopped 10 ms after the fence began"));
    assert_false(unfenced);
}

/* After a stall longer than the gap bound the lease is distrusted: a renewal is asked for at
 * once and the server is paused (sessions kept) rather than stopped, since no successor can exist
 * yet. */
static void test_a_loop_gap_asks_for_a_renewal_and_pauses(void **state)
{
    (void)state;
    reset();
    struct fence_memory m = {.lease_ok = true, .vip_startup_done = true, .vip_renewed_at = 30000};
    m.clock.last_tick = 30000;
    struct fence_world w = primary(30000 + t.gap_ms + 1);
    w.lease_until = w.now + 200; /* not lapsed: the old barrier still vouches for it */
    bool unfenced = false;
    tick(&m, &w, &unfenced);
    assert_int_equal(rec.renews, 1);
    assert_non_null(strstr(rec.log, "WARNING: loop gap: no fence tick for"));
    assert_false(m.lease_ok);
    assert_true(m.frozen);
    assert_int_equal(m.n_freezes, 1);
    assert_int_equal(rec.signals[0], FENCE_PG_FREEZE);
    assert_non_null(strstr(rec.log, "lease not trusted after a loop gap"));
    assert_non_null(strstr(rec.log, "processes=3"));
    assert_false(m.fencing);
}

/* A release while a claim runs cuts it short; the claim's cancelled end changes nothing, a
 * failure is remembered until a retry, a success clears it. */
static void test_vip_operations_and_their_ends(void **state)
{
    (void)state;
    reset();
    struct fence_memory m = {.vip_startup_done = true, .vip_claiming = true};
    struct fence_world w = primary(40000);
    w.leader_ready = false;
    w.lease_until = 0;
    w.writable = false;
    w.postmaster = false;
    w.primary_running = false;
    w.vip_busy = true;
    bool unfenced = false;
    tick(&m, &w, &unfenced);
    assert_int_equal(rec.n_vips, 1);
    assert_int_equal(rec.vips[0], FENCE_VIP_RELEASE);
    assert_true(rec.cut[0]);
    assert_false(m.vip_claiming);
    assert_true(m.vip_releasing);
    fence_vip_done(&m, FENCE_VIP_DONE_CANCELLED, true, true, 40005);
    assert_true(m.vip_releasing);
    fence_vip_done(&m, FENCE_VIP_DONE_FAILED, false, true, 40010);
    assert_false(m.vip_releasing);
    assert_true(m.vip_refused);
    assert_int_equal(m.vip_failed_at, 40010);
    fence_vip_done(&m, FENCE_VIP_DONE_OK, false, true, 40020);
    assert_false(m.vip_refused);
    assert_int_equal(m.vip_renewed_at, 40020);
}

/* An operation that cannot begin is logged and its flag undone, so the next tick tries again. */
static void test_a_claim_that_cannot_begin_is_undone(void **state)
{
    (void)state;
    reset();
    rec.vip_rv = RPG_EIO;
    struct fence_memory m = {.vip_startup_done = true};
    m.clock.last_tick = 50000 - 10;
    struct fence_world w = primary(50000);
    w.vip_held = false;
    bool unfenced = false;
    tick(&m, &w, &unfenced);
    assert_int_equal(rec.vips[0], FENCE_VIP_CLAIM);
    assert_false(m.vip_claiming);
    assert_non_null(strstr(rec.log, "ERROR: vip: ip: operation not permitted"));
}

/* The simulation's --no-lease: leadership alone decides and nothing is signalled. */
static void test_without_the_lease_nothing_is_signalled(void **state)
{
    (void)state;
    reset();
    struct fence_memory m = {.lease_ok = true, .vip_startup_done = true};
    struct fence_world w = primary(60000);
    w.leader_ready = false;
    w.lease_until = 0;
    w.lease_disabled = true;
    bool unfenced = false;
    tick(&m, &w, &unfenced);
    assert_false(m.lease_ok);
    assert_int_equal(rec.n_signals, 0);
    assert_int_equal(m.n_fences, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_primary_under_its_lease_is_left_alone_and_feeds_the_watchdog),
        cmocka_unit_test(test_a_lapsed_lease_fences_releases_and_ends_when_the_server_is_gone),
        cmocka_unit_test(test_a_loop_gap_asks_for_a_renewal_and_pauses),
        cmocka_unit_test(test_vip_operations_and_their_ends),
        cmocka_unit_test(test_a_claim_that_cannot_begin_is_undone),
        cmocka_unit_test(test_without_the_lease_nothing_is_signalled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
