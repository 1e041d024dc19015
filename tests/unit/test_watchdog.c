/* Watchdog mode semantics against the recorder, a stand-in device under a virtual clock, and the
 * real backend's error paths against files that are not watchdogs. No test ever opens a
 * watchdog device: opening one starts a timer that resets the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftpg/fence.h"
#include "raftpg/watchdog.h"

#define DEVICE "/dev/raftpg-test-watchdog"

static struct watchdog w;
static struct watchdog_recorder rec;
static char errmsg[RPG_ERRMSG_SIZE];

/* A watchdog in mode on the recorder, whose device is present. */
static void setup_mode(enum conf_watchdog_mode mode)
{
    struct conf_watchdog conf = {.mode = mode, .device = DEVICE, .safety_margin_ms = 1000};
    memset(&rec, 0, sizeof rec);
    rec.present = true;
    watchdog_init(&w, &conf);
    watchdog_set_ops(&w, &watchdog_recorder_ops, &rec);
    memset(errmsg, 0, sizeof errmsg);
}

static void assert_event(unsigned i, enum watchdog_event_kind kind, rpg_msec at, int timeout_s)
{
    assert_true(i < rec.n_events);
    assert_string_equal(watchdog_event_kind_name(rec.events[i].kind),
                        watchdog_event_kind_name(kind));
    assert_int_equal(rec.events[i].at, at);
    assert_int_equal(rec.events[i].timeout_s, timeout_s);
}

/* The real backend may only ever see paths that cannot be a watchdog. */
static void real_backend(enum conf_watchdog_mode mode, const char *device)
{
    assert_true(strstr(device, "watchdog") == NULL);
    struct conf_watchdog conf = {.mode = mode, .safety_margin_ms = 1000};
    snprintf(conf.device, sizeof conf.device, "%s", device);
    watchdog_init(&w, &conf);
    memset(errmsg, 0, sizeof errmsg);
}

/* ---- modes ---------------------------------------------------------------------------------- */

static void test_off_never_opens_the_device(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_OFF);
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "");
    assert_false(watchdog_is_armed(&w));
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    assert_int_equal(watchdog_disarm(&w, errmsg), 0);
    assert_int_equal(rec.n_events, 0);
    assert_false(rec.open);
}

static void test_off_is_not_usable_for_fencing(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_OFF);
    assert_int_equal(watchdog_check(&w, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "watchdog mode is off");
    assert_int_equal(rec.n_events, 0);
}

static void test_automatic_runs_on_without_a_device_with_a_warning(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_AUTOMATIC);
    rec.present = false;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "running without the watchdog (mode=automatic): watchdog device "
                                "/dev/raftpg-test-watchdog does not exist");
    assert_false(watchdog_is_armed(&w));
    assert_int_equal(watchdog_timeout_s(&w), 0);
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    assert_int_equal(rec.n_events, 0);
}

static void test_automatic_arms_a_present_device_without_warning(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_AUTOMATIC);
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "");
    assert_true(watchdog_is_armed(&w));
    assert_int_equal(watchdog_timeout_s(&w), 5);
}

static void test_required_fails_without_a_device(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.present = false;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "watchdog required but unusable: watchdog device "
                                "/dev/raftpg-test-watchdog does not exist");
    assert_false(watchdog_is_armed(&w));
}

static void test_required_fails_when_the_device_is_busy(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.refuse_open = true;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_EIO);
    assert_string_equal(errmsg, "watchdog required but unusable: cannot open watchdog device "
                                "/dev/raftpg-test-watchdog: Device or resource busy");
    assert_false(watchdog_is_armed(&w));
}

static void test_check_tells_whether_required_mode_can_fence(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    assert_int_equal(watchdog_check(&w, errmsg), 0);
    rec.present = false;
    assert_int_equal(watchdog_check(&w, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "watchdog device /dev/raftpg-test-watchdog does not exist");
    /* Checking opens nothing: opening would arm the device. */
    assert_int_equal(rec.n_events, 0);

    rec.present = true;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    rec.present = false; /* an armed watchdog fences whatever the path now says */
    assert_int_equal(watchdog_check(&w, errmsg), 0);
}

/* ---- arming, feeding, disarming ------------------------------------------------------------- */

static void test_arm_feed_disarm_are_recorded_with_their_times(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.now_ms = 1000;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "");
    rec.now_ms = 3000;
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    rec.now_ms = 5500;
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    rec.now_ms = 6000;
    assert_int_equal(watchdog_disarm(&w, errmsg), 0);
    assert_false(watchdog_is_armed(&w));
    assert_false(rec.open);

    assert_int_equal(rec.n_events, 5);
    assert_event(0, WATCHDOG_EVENT_OPEN, 1000, 0);
    assert_event(1, WATCHDOG_EVENT_SET_TIMEOUT, 1000, 5);
    assert_event(2, WATCHDOG_EVENT_FEED, 3000, 0);
    assert_event(3, WATCHDOG_EVENT_FEED, 5500, 0);
    assert_event(4, WATCHDOG_EVENT_DISARM, 6000, 0);
    assert_int_equal(rec.longest_gap_ms, 2500);
    rec.now_ms = 1000000;
    assert_false(watchdog_recorder_starved(&rec));
}

static void test_feeding_gap_longer_than_the_timeout_is_starvation(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    assert_int_equal(watchdog_arm(&w, 2, errmsg), 0);
    rec.now_ms = 1500;
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    rec.now_ms = 3500;
    assert_false(watchdog_recorder_starved(&rec)); /* exactly the timeout: still in time */
    rec.now_ms = 3501;
    assert_true(watchdog_recorder_starved(&rec));
    assert_int_equal(rec.starved_at_ms, 3500);
    rec.now_ms = 4000;
    assert_int_equal(watchdog_keepalive(&w, errmsg), 0);
    assert_true(rec.starved); /* a late feed does not undo a reset */
    assert_int_equal(rec.longest_gap_ms, 2500);
}

static void test_starvation_is_noticed_at_the_next_event(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_AUTOMATIC);
    assert_int_equal(watchdog_arm(&w, 1, errmsg), 0);
    rec.now_ms = 1200;
    assert_int_equal(watchdog_disarm(&w, errmsg), 0);
    assert_true(rec.starved);
    assert_int_equal(rec.starved_at_ms, 1000);
}

static void test_rearming_changes_the_timeout_and_feeds(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    rec.now_ms = 4000;
    assert_int_equal(watchdog_arm(&w, 3, errmsg), 0);
    assert_int_equal(watchdog_timeout_s(&w), 3);
    rec.now_ms = 6500;
    assert_false(watchdog_recorder_starved(&rec));
    assert_int_equal(rec.n_events, 3);
    assert_event(0, WATCHDOG_EVENT_OPEN, 0, 0);
    assert_event(1, WATCHDOG_EVENT_SET_TIMEOUT, 0, 5);
    assert_event(2, WATCHDOG_EVENT_SET_TIMEOUT, 4000, 3);
}

static void test_required_refuses_a_device_that_takes_a_longer_timeout(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.min_timeout_s = 10;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "watchdog required but unusable: device /dev/raftpg-test-watchdog "
                                "took a timeout of 10 s, longer than the 5 s asked");
    assert_false(watchdog_is_armed(&w));
    assert_false(rec.open);
    assert_int_equal(rec.n_events, 3);
    assert_event(2, WATCHDOG_EVENT_DISARM, 0, 0);
}

static void test_automatic_keeps_a_longer_timeout_with_a_warning(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_AUTOMATIC);
    rec.min_timeout_s = 10;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "watchdog fires late (mode=automatic): device "
                                "/dev/raftpg-test-watchdog took a timeout of 10 s, longer than "
                                "the 5 s asked");
    assert_true(watchdog_is_armed(&w));
    assert_int_equal(watchdog_timeout_s(&w), 10);
}

static void test_shorter_timeout_is_taken_silently_and_reported(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.max_timeout_s = 3;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "");
    assert_int_equal(watchdog_timeout_s(&w), 3);
}

static void test_refused_timeout_leaves_the_device_disarmed(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    rec.refuse_timeout = true;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_EIO);
    assert_string_equal(errmsg, "watchdog required but unusable: cannot set the watchdog timeout "
                                "to 5 s: Invalid argument");
    assert_false(watchdog_is_armed(&w));
    assert_false(rec.open);

    setup_mode(CONF_WATCHDOG_AUTOMATIC);
    rec.refuse_timeout = true;
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "running without the watchdog (mode=automatic): cannot set the "
                                "watchdog timeout to 5 s: Invalid argument");
    assert_false(watchdog_is_armed(&w));
    assert_false(rec.open);
    assert_int_equal(rec.n_events, 2);
    assert_event(1, WATCHDOG_EVENT_DISARM, 0, 0);
}

static void test_failed_feed_is_reported(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    rec.refuse_feed = true;
    assert_int_equal(watchdog_keepalive(&w, errmsg), RPG_EIO);
    assert_string_equal(errmsg, "cannot feed the watchdog: Input/output error");
    assert_true(watchdog_is_armed(&w));
}

static void test_zero_timeout_is_refused(void **state)
{
    (void)state;
    setup_mode(CONF_WATCHDOG_REQUIRED);
    assert_int_equal(watchdog_arm(&w, 0, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "watchdog timeout must be 1..2147483647 s, got 0");
    assert_int_equal(rec.n_events, 0);
}

/* ---- lease arithmetic ----------------------------------------------------------------------- */

static void test_timeout_for_lease_rounds_down_below_the_margin(void **state)
{
    (void)state;
    unsigned t = 0;
    assert_int_equal(watchdog_timeout_for_lease(10000, 1000, &t, errmsg), 0);
    assert_int_equal(t, 9);
    assert_int_equal(watchdog_timeout_for_lease(10999, 1000, &t, errmsg), 0);
    assert_int_equal(t, 9);
    assert_int_equal(watchdog_timeout_for_lease(2000, 1000, &t, errmsg), 0);
    assert_int_equal(t, 1);
    t = 77;
    assert_int_equal(watchdog_timeout_for_lease(1999, 1000, &t, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "lease too short for the watchdog: lease=1999 ms less "
                                "safety_margin=1000 ms leaves under the device's 1 s resolution");
    assert_int_equal(t, 77);
}

static void test_a_new_leader_waits_for_the_old_primarys_watchdog(void **state)
{
    (void)state;
    struct conf_watchdog wd = {.mode = CONF_WATCHDOG_OFF, .safety_margin_ms = 1000};
    assert_int_equal(watchdog_promote_wait_ms(&wd, 500), 0);
    wd.mode = CONF_WATCHDOG_AUTOMATIC;
    /* A lease under the device's resolution still arms it for 1 s, and 1 s is waited for. */
    assert_int_equal(watchdog_lease_timeout_s(&wd, 500), 1);
    assert_int_equal(watchdog_promote_wait_ms(&wd, 500), 1000);
    wd.mode = CONF_WATCHDOG_REQUIRED;
    assert_int_equal(watchdog_lease_timeout_s(&wd, 10000), 9);
    assert_int_equal(watchdog_promote_wait_ms(&wd, 10000), 9000);

    /* ET 500 ms: lease 400 + margin 100 + hard layer 125, then the device's second. */
    struct fence_timing ft;
    fence_timing_init(&ft, 500);
    assert_int_equal(fence_promote_not_before(&ft, 7000, 1, 0), 7625);
    assert_int_equal(fence_promote_not_before(&ft, 7000, 1, 1000), 8625);
    /* Nobody heard since the start: the start counts. */
    assert_int_equal(fence_promote_not_before(&ft, 0, 3000, 1000), 4625);
}

/* ---- the real backend, on files that are not watchdogs -------------------------------------- */

static void test_real_check_of_a_missing_device(void **state)
{
    (void)state;
    real_backend(CONF_WATCHDOG_REQUIRED, "/nonexistent/raftpg-test-wd");
    assert_int_equal(watchdog_check(&w, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "watchdog device /nonexistent/raftpg-test-wd does not exist");
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "watchdog required but unusable: watchdog device "
                                "/nonexistent/raftpg-test-wd does not exist");
}

static void test_real_check_of_a_regular_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_wd_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    real_backend(CONF_WATCHDOG_REQUIRED, path);
    assert_int_equal(watchdog_check(&w, errmsg), RPG_EIO);
    char want[128];
    snprintf(want, sizeof want, "watchdog device %s is not a character device", path);
    assert_string_equal(errmsg, want);
    unlink(path);
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) != -1) {
            n++;
        }
    }
    return n;
}

/* /dev/null opens like a device but takes no watchdog ioctl: the failure paths close it. */
static void test_real_device_without_watchdog_ioctls_is_refused_and_closed(void **state)
{
    (void)state;
    int fds = count_fds();
    real_backend(CONF_WATCHDOG_REQUIRED, "/dev/null");
    assert_int_equal(watchdog_check(&w, errmsg), 0);
    assert_int_equal(watchdog_arm(&w, 5, errmsg), RPG_EIO);
    assert_string_equal(errmsg, "watchdog required but unusable: cannot set the watchdog timeout "
                                "to 5 s: Inappropriate ioctl for device");
    assert_false(watchdog_is_armed(&w));
    assert_int_equal(w.dev.fd, -1);
    assert_int_equal(count_fds(), fds);

    real_backend(CONF_WATCHDOG_AUTOMATIC, "/dev/null");
    assert_int_equal(watchdog_arm(&w, 5, errmsg), 0);
    assert_string_equal(errmsg, "running without the watchdog (mode=automatic): cannot set the "
                                "watchdog timeout to 5 s: Inappropriate ioctl for device");
    assert_int_equal(count_fds(), fds);
}

static void test_event_kind_names(void **state)
{
    (void)state;
    assert_string_equal(watchdog_event_kind_name(WATCHDOG_EVENT_OPEN), "open");
    assert_string_equal(watchdog_event_kind_name(WATCHDOG_EVENT_SET_TIMEOUT), "set_timeout");
    assert_string_equal(watchdog_event_kind_name(WATCHDOG_EVENT_FEED), "feed");
    assert_string_equal(watchdog_event_kind_name(WATCHDOG_EVENT_DISARM), "disarm");
    assert_string_equal(watchdog_event_kind_name((enum watchdog_event_kind)9), "unknown");
}

/* Armed and fed while primary; disarmed only once nothing is unfenced, and only by the process
 * that armed it. */
static void test_plan(void **state)
{
    (void)state;
    assert_int_equal(watchdog_plan(true, false, true), WATCHDOG_STEP_ARM);
    assert_int_equal(watchdog_plan(true, true, true), WATCHDOG_STEP_FEED);
    assert_int_equal(watchdog_plan(false, true, true), WATCHDOG_STEP_NONE);
    assert_int_equal(watchdog_plan(false, true, false), WATCHDOG_STEP_DISARM);
    assert_int_equal(watchdog_plan(false, false, false), WATCHDOG_STEP_NONE);
    assert_int_equal(watchdog_plan(false, false, true), WATCHDOG_STEP_NONE);
    assert_string_equal(watchdog_step_name(WATCHDOG_STEP_DISARM), "disarm");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_never_opens_the_device),
        cmocka_unit_test(test_off_is_not_usable_for_fencing),
        cmocka_unit_test(test_automatic_runs_on_without_a_device_with_a_warning),
        cmocka_unit_test(test_automatic_arms_a_present_device_without_warning),
        cmocka_unit_test(test_required_fails_without_a_device),
        cmocka_unit_test(test_required_fails_when_the_device_is_busy),
        cmocka_unit_test(test_check_tells_whether_required_mode_can_fence),
        cmocka_unit_test(test_arm_feed_disarm_are_recorded_with_their_times),
        cmocka_unit_test(test_feeding_gap_longer_than_the_timeout_is_starvation),
        cmocka_unit_test(test_starvation_is_noticed_at_the_next_event),
        cmocka_unit_test(test_rearming_changes_the_timeout_and_feeds),
        cmocka_unit_test(test_required_refuses_a_device_that_takes_a_longer_timeout),
        cmocka_unit_test(test_automatic_keeps_a_longer_timeout_with_a_warning),
        cmocka_unit_test(test_shorter_timeout_is_taken_silently_and_reported),
        cmocka_unit_test(test_refused_timeout_leaves_the_device_disarmed),
        cmocka_unit_test(test_failed_feed_is_reported),
        cmocka_unit_test(test_zero_timeout_is_refused),
        cmocka_unit_test(test_timeout_for_lease_rounds_down_below_the_margin),
        cmocka_unit_test(test_a_new_leader_waits_for_the_old_primarys_watchdog),
        cmocka_unit_test(test_real_check_of_a_missing_device),
        cmocka_unit_test(test_real_check_of_a_regular_file),
        cmocka_unit_test(test_real_device_without_watchdog_ioctls_is_refused_and_closed),
        cmocka_unit_test(test_event_kind_names),
        cmocka_unit_test(test_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
