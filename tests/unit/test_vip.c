/* VIP claim, release and check against stand-in ip and arping scripts written into a temporary
 * directory: they record their argv in DIR/log and answer as files in DIR tell them (DIR/addrs
 * holds the interface's addresses, "A/P" a line). Each test runs its own libuv loop; the
 * teardown closes the vip and checks that no handle is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/vip.h"

/* Stand-in for iproute2's ip: the subset vip runs, with its real messages. */
static const char ip_script[] =
    "#!/bin/sh\n"
    "d=$(dirname \"$0\")\n"
    "echo \"ip $*\" >>\"$d/log\"\n"
    "touch \"$d/addrs\"\n"
    "case \"$*\" in\n"
    "\"-4 -o addr show dev \"*)\n"
    "    if [ \"$6\" != eth0 ]; then echo \"Device \\\"$6\\\" does not exist.\"; exit 1; fi\n"
    "    host=${8%/32}\n"
    "    while read -r a; do\n"
    "        case $a in \"$host\"/*)\n"
    "            echo \"2: eth0    inet $a scope global secondary eth0\\\\       valid_lft "
    "forever preferred_lft forever\";;\n"
    "        esac\n"
    "    done <\"$d/addrs\"\n"
    "    exit 0;;\n"
    "\"-4 addr add \"*)\n"
    "    if [ -f \"$d/ip.fail.add\" ]; then cat \"$d/ip.fail.add\"; exit 2; fi\n"
    "    if [ -f \"$d/ip.slow.add\" ]; then echo $$ >\"$d/ip.pid\"; sleep 0.5; fi\n"
    "    if [ -f \"$d/ip.race.add\" ]; then echo \"$4\" >>\"$d/addrs\"; fi\n"
    "    if grep -qxF \"$4\" \"$d/addrs\"; then\n"
    "        echo \"Error: ipv4: Address already assigned.\"; exit 2\n"
    "    fi\n"
    "    echo \"$4\" >>\"$d/addrs\"; exit 0;;\n"
    "\"-4 addr change \"*)\n"
    "    if [ -f \"$d/ip.fail.change\" ]; then cat \"$d/ip.fail.change\"; exit 2; fi\n"
    "    grep -qxF \"$4\" \"$d/addrs\" || echo \"$4\" >>\"$d/addrs\"; exit 0;;\n"
    "\"-4 addr del \"*)\n"
    "    if [ -f \"$d/ip.fail.del\" ]; then cat \"$d/ip.fail.del\"; exit 2; fi\n"
    "    if ! grep -qxF \"$4\" \"$d/addrs\"; then echo \"Error: ipv4: Address not found.\"; exit "
    "2; fi\n"
    "    grep -vxF \"$4\" \"$d/addrs\" >\"$d/addrs.new\"; mv \"$d/addrs.new\" \"$d/addrs\"; exit "
    "0;;\n"
    "esac\n"
    "echo \"ip stand-in: unexpected arguments: $*\"\n"
    "exit 99\n";

/* Stand-in for Habets' arping: a probe (-0) exits 0 printing DIR/arping.answer when that file
 * exists, else 1 without output; an announcement (-U) exits 1 without output. arping.fail.KIND
 * makes it print the file and exit 1, arping.hang.KIND makes it sleep (pid in arping.pid). */
static const char arping_script[] =
    "#!/bin/sh\n"
    "d=$(dirname \"$0\")\n"
    "echo \"arping $*\" >>\"$d/log\"\n"
    "case \" $* \" in\n"
    "*\" -0 \"*) kind=probe;;\n"
    "*\" -U \"*) kind=announce;;\n"
    "*) echo \"arping stand-in: unexpected arguments: $*\"; exit 99;;\n"
    "esac\n"
    "if [ -f \"$d/arping.hang.$kind\" ]; then echo $$ >\"$d/arping.pid\"; exec sleep 60; fi\n"
    "if [ -f \"$d/arping.fail.$kind\" ]; then cat \"$d/arping.fail.$kind\"; exit 1; fi\n"
    "if [ $kind = probe ] && [ -f \"$d/arping.answer\" ]; then cat \"$d/arping.answer\"; exit 0; "
    "fi\n"
    "exit 1\n";

#define PROBE "arping -r -0 -C 1 -c 3 -W 0.200 -w 1.600 -i eth0 10.231.0.100\n"
#define LOOKUP "ip -4 -o addr show dev eth0 to 10.231.0.100/32\n"
#define ADD "ip -4 addr add 10.231.0.100/24 dev eth0 valid_lft 2 preferred_lft 2\n"
#define CHANGE "ip -4 addr change 10.231.0.100/24 dev eth0 valid_lft 2 preferred_lft 2\n"
#define ANNOUNCE "arping -q -U -S 10.231.0.100 -c 1 -w 0.200 -i eth0 10.231.0.100\n"
#define DEL "ip -4 addr del 10.231.0.100/24 dev eth0\n"

/* What one callback saw. */
struct outcome {
    int calls;
    int seq; /* order among all callbacks of the test, from 1 */
    int rc;
    bool held;
    char msg[RPG_ERRMSG_SIZE];
};

struct fx {
    uv_loop_t loop;
    struct vip vip;
    struct conf_vip conf;
    bool started;
    bool closed;
    char dir[64];
    int seq;
    struct outcome claim, release, check, renew, probe;
};

static void on_op(struct vip *v, int rc, const char *msg, void *data);

static void write_file(struct fx *f, const char *name, const char *text, mode_t mode)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Sets a stand-in's behaviour: DIR/name holds text. */
static void set(struct fx *f, const char *name, const char *text)
{
    write_file(f, name, text, 0644);
}

static void unlink_path(struct fx *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    assert_int_equal(unlink(path), 0);
}

/* The contents of DIR/name, "" when it does not exist (static buffer). */
static const char *contents(struct fx *f, const char *name)
{
    static char buf[8192];
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    buf[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return buf;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_vip_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    write_file(f, "ip", ip_script, 0755);
    write_file(f, "arping", arping_script, 0755);
    assert_int_equal(uv_loop_init(&f->loop), 0);

    assert_int_equal(
        conf_parse_cidr("10.231.0.100/24", f->conf.address.host, &f->conf.address.prefix), 0);
    strcpy(f->conf.address.text, "10.231.0.100/24");
    strcpy(f->conf.interface, "eth0");
    f->conf.arping_count = 3;
    f->conf.announce_repeats = 3;
    f->conf.announce_interval_ms = 10;
    f->conf.lifetime_s = 2;
    snprintf(f->conf.ip_bin, sizeof f->conf.ip_bin, "%s/ip", f->dir);
    snprintf(f->conf.arping_bin, sizeof f->conf.arping_bin, "%s/arping", f->dir);
    *state = f;
    return 0;
}

static void on_closed(struct vip *v)
{
    struct fx *f = (struct fx *)((char *)v - offsetof(struct fx, vip));
    f->closed = true;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->started && !f->vip.closing) {
        vip_close(&f->vip, on_closed);
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    if (f->started) {
        assert_true(f->closed);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);

    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

static void start(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_init(&f->vip, &f->loop, &f->conf, errmsg), 0);
    f->started = true;
}

static struct fx *fx_of(struct vip *v)
{
    return (struct fx *)((char *)v - offsetof(struct fx, vip));
}

static void on_op(struct vip *v, int rc, const char *msg, void *data)
{
    struct fx *f = fx_of(v);
    struct outcome *o = data;
    o->calls++;
    o->seq = ++f->seq;
    o->rc = rc;
    o->held = vip_is_held(v);
    snprintf(o->msg, sizeof o->msg, "%s", msg);
}

static void claim(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_claim(&f->vip, on_op, &f->claim, errmsg), 0);
}

static void release(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_release(&f->vip, on_op, &f->release, errmsg), 0);
}

static void check(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_check(&f->vip, on_op, &f->check, errmsg), 0);
}

static void renew(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_renew(&f->vip, on_op, &f->renew, errmsg), 0);
}

static void probe(struct fx *f)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_probe(&f->vip, on_op, &f->probe, errmsg), 0);
}

/* Runs the loop until nothing but the vip's idle timer is left, i.e. every operation ended. */
static void run_ops(struct fx *f)
{
    while (vip_busy(&f->vip)) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

/* Runs the loop until DIR/name exists; a stand-in creates it. Bounded to 10 s. */
static void run_until_file(struct fx *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    for (int i = 0; i < 1000 && access(path, F_OK) != 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10 * 1000);
    }
    assert_int_equal(access(path, F_OK), 0);
}

static uint64_t loop_now(struct fx *f)
{
    uv_update_time(&f->loop);
    return uv_now(&f->loop);
}

/* ---- claim ---------------------------------------------------------------------------------- */

static void test_claim_runs_probe_lookup_add_and_announces(void **state)
{
    struct fx *f = *state;
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.calls, 1);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(f->claim.msg, "claimed vip 10.231.0.100/24 on eth0 (announced=3)");
    assert_true(f->claim.held);
    /* The lifetime is renewed between rounds: they may outlast the one the add gave. */
    assert_string_equal(contents(f, "log"),
                        PROBE LOOKUP ADD ANNOUNCE CHANGE ANNOUNCE CHANGE ANNOUNCE);
    assert_string_equal(contents(f, "addrs"), "10.231.0.100/24\n");
}

static void test_claim_is_refused_when_another_host_answers(void **state)
{
    struct fx *f = *state;
    set(f, "arping.answer", "EA:A7:F0:09:03:05\nea:a7:f0:09:03:05\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EEXIST);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: refusing: another host "
                                      "answers for 10.231.0.100 (mac=ea:a7:f0:09:03:05)");
    assert_string_equal(f->vip.holder_mac, "ea:a7:f0:09:03:05");
    assert_false(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_claim_refusal_without_a_readable_mac_says_unknown(void **state)
{
    struct fx *f = *state;
    set(f, "arping.answer", "something else\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EEXIST);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: refusing: another host "
                                      "answers for 10.231.0.100 (mac=unknown)");
    assert_string_equal(f->vip.holder_mac, "");
}

static void test_claim_when_already_present_adds_nothing(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(f->claim.msg,
                        "claimed vip 10.231.0.100/24 on eth0 (already present, announced=3)");
    assert_true(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ANNOUNCE CHANGE ANNOUNCE CHANGE ANNOUNCE);
    assert_string_equal(contents(f, "addrs"), "10.231.0.100/24\n");
}

static void test_claim_twice_is_idempotent(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 1;
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.calls, 2);
    assert_int_equal(f->claim.rc, 0);
    assert_true(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD ANNOUNCE PROBE LOOKUP ANNOUNCE);
    assert_string_equal(contents(f, "addrs"), "10.231.0.100/24\n");
}

static void test_claim_refuses_the_address_under_another_prefix(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/32\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EEXIST);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: refusing: the address "
                                      "is on eth0 as 10.231.0.100/32");
    assert_false(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP);
}

static void test_claim_ignores_other_addresses_with_the_same_start(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 0;
    set(f, "addrs", "10.231.0.10/24\n10.231.0.1000/24\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD);
}

static void test_claim_without_announcements(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 0;
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(f->claim.msg, "claimed vip 10.231.0.100/24 on eth0 (announced=0)");
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD);
}

static void test_probe_count_and_deadline_follow_the_config(void **state)
{
    struct fx *f = *state;
    f->conf.arping_count = 12;
    f->conf.announce_repeats = 0;
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(
        contents(f, "log"),
        "arping -r -0 -C 1 -c 12 -W 0.200 -w 3.400 -i eth0 10.231.0.100\n" LOOKUP ADD);
}

static void test_announcements_are_spaced_by_the_interval(void **state)
{
    struct fx *f = *state;
    f->conf.announce_interval_ms = 150;
    start(f);
    uint64_t t0 = loop_now(f);
    claim(f);
    run_ops(f);
    uint64_t elapsed = loop_now(f) - t0;
    assert_int_equal(f->claim.rc, 0);
    /* Three rounds, start to start 150 ms apart. */
    if (elapsed < 300) {
        fail_msg("three announcements took %llu ms, want at least 300",
                 (unsigned long long)elapsed);
    }
}

static void test_failing_ip_names_the_command_and_its_output(void **state)
{
    struct fx *f = *state;
    set(f, "ip.fail.add", "RTNETLINK answers: Operation not permitted\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EIO);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: ip addr add: ip exited "
                                      "2: RTNETLINK answers: Operation not permitted");
    assert_false(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD LOOKUP);
}

static void test_add_racing_another_adder_succeeds(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 0;
    set(f, "ip.race.add", "");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_true(f->claim.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD LOOKUP);
}

static void test_failing_probe_is_an_error_and_adds_nothing(void **state)
{
    struct fx *f = *state;
    set(f, "arping.fail.probe",
        "arping: libnet_init(LIBNET_LINK, eth0): libnet_check_iface() ioctl: No such device\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EIO);
    assert_string_equal(f->claim.msg,
                        "claim vip 10.231.0.100/24 on eth0: arping probe: arping exited 1: arping: "
                        "libnet_init(LIBNET_LINK, eth0): libnet_check_iface() ioctl: No such "
                        "device");
    assert_string_equal(contents(f, "log"), PROBE);
}

static void test_hanging_arping_is_killed_by_the_timeout(void **state)
{
    struct fx *f = *state;
    set(f, "arping.hang.probe", "");
    start(f);
    f->vip.timeout_ms = 300;
    uint64_t t0 = loop_now(f);
    claim(f);
    run_ops(f);
    uint64_t elapsed = loop_now(f) - t0;
    assert_int_equal(f->claim.rc, RPG_ETIMEDOUT);
    assert_string_equal(f->claim.msg,
                        "claim vip 10.231.0.100/24 on eth0: arping probe: arping timed out after "
                        "300 ms");
    assert_true(elapsed >= 300 && elapsed < 5000);
    int pid = atoi(contents(f, "arping.pid"));
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_string_equal(contents(f, "log"), PROBE);
}

static void test_missing_arping_is_an_error(void **state)
{
    struct fx *f = *state;
    snprintf(f->conf.arping_bin, sizeof f->conf.arping_bin, "%s/no-arping", f->dir);
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EIO);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: arping probe: cannot "
                                      "run no-arping: no such file or directory");
}

static void test_failing_announcement_keeps_the_address(void **state)
{
    struct fx *f = *state;
    set(f, "arping.fail.announce", "arping: libnet_write(): Network is down\n");
    start(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EIO);
    assert_string_equal(f->claim.msg,
                        "claim vip 10.231.0.100/24 on eth0: gratuitous arp: arping exited 1: "
                        "arping: libnet_write(): Network is down (the address stays on eth0)");
    assert_true(f->claim.held);
    assert_int_equal(f->vip.announce_failures, 1);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD ANNOUNCE);
}

/* ---- release and check ---------------------------------------------------------------------- */

static void test_release_deletes_and_verifies(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.12/24\n10.231.0.100/24\n");
    start(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->release.calls, 1);
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(f->release.msg, "released vip 10.231.0.100/24 from eth0");
    assert_false(f->release.held);
    assert_string_equal(contents(f, "log"), DEL LOOKUP);
    assert_string_equal(contents(f, "addrs"), "10.231.0.12/24\n");
}

static void test_release_when_absent_is_success(void **state)
{
    struct fx *f = *state;
    start(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(f->release.msg, "vip 10.231.0.100/24 was not on eth0");
    assert_false(f->release.held);
    assert_string_equal(contents(f, "log"), DEL LOOKUP);
}

static void test_release_removes_the_address_under_any_prefix(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/32\n10.231.0.100/24\n10.231.0.100/16\n");
    start(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(f->release.msg, "released vip 10.231.0.100/24 from eth0");
    assert_string_equal(contents(f, "log"),
                        DEL LOOKUP "ip -4 addr del 10.231.0.100/32 dev eth0\n" LOOKUP
                                   "ip -4 addr del 10.231.0.100/16 dev eth0\n" LOOKUP);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_failing_release_names_the_command_and_its_output(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    set(f, "ip.fail.del", "RTNETLINK answers: Operation not permitted\n");
    start(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->release.rc, RPG_EIO);
    assert_string_equal(f->release.msg,
                        "release vip 10.231.0.100/24 on eth0: ip addr del 10.231.0.100/24: ip "
                        "exited 2: RTNETLINK answers: Operation not permitted");
    assert_true(f->release.held);
    assert_string_equal(contents(f, "log"), DEL LOOKUP);
}

static void test_check_reports_whether_the_address_is_held(void **state)
{
    struct fx *f = *state;
    start(f);
    check(f);
    run_ops(f);
    assert_int_equal(f->check.rc, 0);
    assert_false(f->check.held);
    assert_string_equal(f->check.msg, "vip 10.231.0.100/24 is not on eth0");

    set(f, "addrs", "10.231.0.100/24\n");
    check(f);
    run_ops(f);
    assert_int_equal(f->check.rc, 0);
    assert_true(f->check.held);
    assert_string_equal(f->check.msg, "vip 10.231.0.100/24 is on eth0");

    set(f, "addrs", "10.231.0.100/32\n");
    check(f);
    run_ops(f);
    assert_int_equal(f->check.rc, 0);
    assert_false(f->check.held);
    assert_string_equal(f->check.msg,
                        "vip 10.231.0.100/24 is not on eth0 (it has 10.231.0.100/32)");
    assert_string_equal(contents(f, "log"), LOOKUP LOOKUP LOOKUP);
}

static void test_check_of_a_missing_interface_fails(void **state)
{
    struct fx *f = *state;
    strcpy(f->conf.interface, "eth9");
    start(f);
    check(f);
    run_ops(f);
    assert_int_equal(f->check.rc, RPG_EIO);
    assert_string_equal(f->check.msg, "check vip 10.231.0.100/24 on eth9: ip addr show: ip exited "
                                      "1: Device \"eth9\" does not exist.");
}

/* ---- one operation at a time ---------------------------------------------------------------- */

static void test_second_operation_is_busy(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    struct outcome other = {0};
    start(f);
    claim(f);
    assert_int_equal(vip_claim(&f->vip, on_op, &other, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot claim vip 10.231.0.100/24: a claim is in progress");
    assert_int_equal(vip_check(&f->vip, on_op, &other, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot check vip 10.231.0.100/24: a claim is in progress");
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);

    release(f);
    assert_int_equal(vip_release(&f->vip, on_op, &other, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot release vip 10.231.0.100/24: a release is in progress");
    run_ops(f);
    assert_int_equal(f->release.rc, 0);
    assert_int_equal(other.calls, 0);
}

static void test_release_during_probe_cancels_the_claim(void **state)
{
    struct fx *f = *state;
    set(f, "arping.hang.probe", "");
    start(f);
    uint64_t t0 = loop_now(f);
    claim(f);
    run_until_file(f, "arping.pid");
    release(f);
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(vip_claim(&f->vip, on_op, &f->claim, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot claim vip 10.231.0.100/24: a claim is in progress");
    run_ops(f);
    assert_true(loop_now(f) - t0 < 1500); /* the probe alone would take 1.6 s and more */
    assert_int_equal(f->claim.calls, 1);
    assert_int_equal(f->claim.rc, RPG_EBUSY);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: cancelled by a release");
    assert_int_equal(f->release.rc, 0);
    assert_true(f->claim.seq < f->release.seq);
    assert_string_equal(contents(f, "log"), PROBE DEL LOOKUP);
}

static void test_release_during_announce_wait_cancels_at_once(void **state)
{
    struct fx *f = *state;
    f->conf.announce_interval_ms = 60000;
    start(f);
    uint64_t t0 = loop_now(f);
    claim(f);
    for (int i = 0; i < 1000 && strstr(contents(f, "log"), ANNOUNCE) == NULL; i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    while (f->vip.proc.running) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    release(f);
    run_ops(f);
    assert_true(loop_now(f) - t0 < 5000);
    assert_int_equal(f->claim.rc, RPG_EBUSY);
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(f->release.msg, "released vip 10.231.0.100/24 from eth0");
    assert_false(f->release.held);
    assert_true(f->claim.seq < f->release.seq);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD ANNOUNCE CHANGE DEL LOOKUP);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_release_during_add_waits_for_it_then_deletes(void **state)
{
    struct fx *f = *state;
    set(f, "ip.slow.add", "");
    start(f);
    claim(f);
    run_until_file(f, "ip.pid");
    release(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, RPG_EBUSY);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0: cancelled by a release");
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(f->release.msg, "released vip 10.231.0.100/24 from eth0");
    assert_false(f->release.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD DEL LOOKUP);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_release_during_check_waits_for_it(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    start(f);
    check(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->check.rc, 0);
    assert_true(f->check.held);
    assert_int_equal(f->release.rc, 0);
    assert_false(f->release.held);
    assert_true(f->check.seq < f->release.seq);
    assert_string_equal(contents(f, "log"), LOOKUP DEL LOOKUP);
}

/* A callback may start the next operation. */
static void on_claim_then_check(struct vip *v, int rc, const char *msg, void *data)
{
    struct fx *f = fx_of(v);
    char errmsg[RPG_ERRMSG_SIZE];
    on_op(v, rc, msg, data);
    assert_int_equal(vip_check(v, on_op, &f->check, errmsg), 0);
}

static void test_callback_may_start_the_next_operation(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    f->conf.announce_repeats = 0;
    start(f);
    assert_int_equal(vip_claim(&f->vip, on_claim_then_check, &f->claim, errmsg), 0);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_int_equal(f->check.rc, 0);
    assert_true(f->check.held);
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD LOOKUP);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void test_close_cancels_a_running_claim(void **state)
{
    struct fx *f = *state;
    set(f, "arping.hang.probe", "");
    start(f);
    claim(f);
    run_until_file(f, "arping.pid");
    vip_close(&f->vip, on_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(f->claim.calls, 1);
    assert_int_equal(f->claim.rc, RPG_EBUSY);
    assert_string_equal(f->claim.msg, "claim vip 10.231.0.100/24 on eth0 cancelled: vip closing");
    int pid = atoi(contents(f, "arping.pid"));
    assert_int_equal(kill(pid, 0), -1);
}

static void test_close_cancels_a_waiting_release(void **state)
{
    struct fx *f = *state;
    set(f, "arping.hang.probe", "");
    start(f);
    claim(f);
    release(f);
    vip_close(&f->vip, on_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(f->claim.rc, RPG_EBUSY);
    assert_int_equal(f->release.calls, 1);
    assert_int_equal(f->release.rc, RPG_EBUSY);
    assert_string_equal(f->release.msg,
                        "release vip 10.231.0.100/24 on eth0 cancelled: vip closing");
    assert_true(f->claim.seq < f->release.seq);
    assert_null(strstr(contents(f, "log"), "ip "));
}

static void test_close_when_idle(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    start(f);
    vip_close(&f->vip, on_closed);
    assert_int_equal(vip_claim(&f->vip, on_op, &f->claim, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot claim vip 10.231.0.100/24: closing");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(f->claim.calls, 0);
}

static void test_init_rejects_an_incomplete_config(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    struct vip v;
    f->conf.interface[0] = '\0';
    assert_int_equal(vip_init(&v, &f->loop, &f->conf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg,
                        "vip: incomplete configuration (address=10.231.0.100/24 interface=)");
}

static void test_init_rejects_a_zero_lifetime(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    struct vip v;
    f->conf.lifetime_s = 0;
    assert_int_equal(vip_init(&v, &f->loop, &f->conf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "vip: lifetime must be at least 1 s");
}

/* ---- renew ---------------------------------------------------------------------------------- */

static void test_renew_sets_a_fresh_lifetime_on_a_held_address(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    start(f);
    renew(f);
    run_ops(f);
    assert_int_equal(f->renew.calls, 1);
    assert_int_equal(f->renew.rc, 0);
    assert_true(f->renew.held);
    assert_string_equal(f->renew.msg, "renewed vip 10.231.0.100/24 on eth0 for 2 s");
    assert_string_equal(contents(f, "log"), LOOKUP CHANGE);
}

static void test_renew_never_adds_an_address_that_is_gone(void **state)
{
    struct fx *f = *state;
    start(f);
    renew(f);
    run_ops(f);
    assert_int_equal(f->renew.rc, 0);
    assert_false(f->renew.held);
    assert_string_equal(f->renew.msg, "vip 10.231.0.100/24 is no longer on eth0: not renewed");
    /* ip addr change would add it (IPv4 does), skipping the probe that a claim runs. */
    assert_string_equal(contents(f, "log"), LOOKUP);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_failing_renewal_names_the_command(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    set(f, "ip.fail.change", "RTNETLINK answers: Operation not permitted\n");
    start(f);
    renew(f);
    run_ops(f);
    assert_int_equal(f->renew.rc, RPG_EIO);
    assert_string_equal(f->renew.msg, "renew vip 10.231.0.100/24 on eth0: ip addr change: ip "
                                      "exited 2: RTNETLINK answers: Operation not permitted");
}

static void test_release_cancels_a_renewal(void **state)
{
    struct fx *f = *state;
    set(f, "addrs", "10.231.0.100/24\n");
    start(f);
    renew(f);
    release(f);
    run_ops(f);
    assert_int_equal(f->renew.calls, 1);
    assert_int_equal(f->renew.rc, RPG_EBUSY);
    assert_int_equal(f->release.calls, 1);
    assert_int_equal(f->release.rc, 0);
    assert_true(f->renew.seq < f->release.seq);
    assert_false(f->release.held);
    assert_string_equal(contents(f, "log"), DEL LOOKUP);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_renew_interval_is_a_quarter_of_the_lifetime(void **state)
{
    struct fx *f = *state;
    assert_int_equal(vip_renew_interval_ms(&f->conf), 500);
    f->conf.lifetime_s = 1;
    assert_int_equal(vip_renew_interval_ms(&f->conf), 250);
}

/* ---- probe during a promotion ---------------------------------------------------------------- */

static void test_probe_nobody_answers_then_claim_skips_its_probe_once(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_true(vip_probe_due(&f->vip));
    probe(f);
    assert_false(vip_probe_due(&f->vip));
    assert_true(vip_probing(&f->vip));
    run_ops(f);
    assert_int_equal(f->probe.calls, 1);
    assert_int_equal(f->probe.rc, 0);
    assert_string_equal(f->probe.msg, "probe vip 10.231.0.100/24 on eth0: no other host answers");
    assert_false(f->probe.held);
    assert_string_equal(contents(f, "log"), PROBE);
    assert_string_equal(contents(f, "addrs"), "");
    assert_false(vip_probe_due(&f->vip)); /* fresh: a claim may use it */

    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(
        f->claim.msg,
        "claimed vip 10.231.0.100/24 on eth0 (probed before the promotion, announced=3)");
    assert_string_equal(contents(f, "log"),
                        PROBE LOOKUP ADD ANNOUNCE CHANGE ANNOUNCE CHANGE ANNOUNCE);

    /* Used once: the next claim, after a release, probes again. */
    release(f);
    run_ops(f);
    set(f, "log", "");
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(contents(f, "log"),
                        PROBE LOOKUP ADD ANNOUNCE CHANGE ANNOUNCE CHANGE ANNOUNCE);
}

static void test_answered_probe_leaves_the_claim_its_own_probe(void **state)
{
    struct fx *f = *state;
    set(f, "arping.answer", "ea:a7:f0:09:03:05\n");
    start(f);
    uint64_t t0 = loop_now(f);
    probe(f);
    run_ops(f);
    assert_int_equal(f->probe.rc, RPG_EEXIST);
    assert_string_equal(f->probe.msg,
                        "probe vip 10.231.0.100/24 on eth0: refusing: another host answers for "
                        "10.231.0.100 (mac=ea:a7:f0:09:03:05)");
    /* Not again at once: the retry waits. */
    if (loop_now(f) - t0 < VIP_PROBE_RETRY_MS) {
        assert_false(vip_probe_due(&f->vip));
    }
    usleep(VIP_PROBE_RETRY_MS * 1000);
    uv_update_time(&f->loop);
    assert_true(vip_probe_due(&f->vip));

    unlink_path(f, "arping.answer");
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(contents(f, "log"),
                        PROBE PROBE LOOKUP ADD ANNOUNCE CHANGE ANNOUNCE CHANGE ANNOUNCE);
}

static void test_claim_takes_over_a_running_probe(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 1;
    start(f);
    probe(f);
    assert_true(vip_probing(&f->vip));
    claim(f);
    assert_false(vip_probing(&f->vip));
    run_ops(f);
    assert_int_equal(f->probe.calls, 0);
    assert_int_equal(f->claim.calls, 1);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(f->claim.msg,
                        "claimed vip 10.231.0.100/24 on eth0 (probed before the promotion, "
                        "announced=1)");
    assert_string_equal(contents(f, "log"), PROBE LOOKUP ADD ANNOUNCE);
    assert_string_equal(contents(f, "addrs"), "10.231.0.100/24\n");
}

static void test_claim_taking_over_an_answered_probe_is_refused(void **state)
{
    struct fx *f = *state;
    set(f, "arping.answer", "ea:a7:f0:09:03:05\n");
    start(f);
    probe(f);
    claim(f);
    run_ops(f);
    assert_int_equal(f->probe.calls, 0);
    assert_int_equal(f->claim.rc, RPG_EEXIST);
    assert_string_equal(contents(f, "log"), PROBE);
    assert_string_equal(contents(f, "addrs"), "");
}

static void test_forgotten_probe_is_not_used(void **state)
{
    struct fx *f = *state;
    f->conf.announce_repeats = 0;
    start(f);
    probe(f);
    run_ops(f);
    assert_int_equal(f->probe.rc, 0);
    vip_probe_forget(&f->vip);
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(contents(f, "log"), PROBE PROBE LOOKUP ADD);
}

static void test_forgetting_a_running_probe_ends_it_without_a_result(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    set(f, "arping.hang.probe", "");
    f->conf.announce_repeats = 0;
    start(f);
    uint64_t t0 = loop_now(f);
    probe(f);
    run_until_file(f, "arping.pid");
    vip_probe_forget(&f->vip);
    assert_int_equal(vip_claim(&f->vip, on_op, &f->claim, errmsg), RPG_EBUSY);
    assert_string_equal(errmsg, "cannot claim vip 10.231.0.100/24: a probe is in progress");
    run_ops(f);
    assert_true(loop_now(f) - t0 < 1500);
    assert_int_equal(f->probe.rc, RPG_EBUSY);
    assert_string_equal(f->probe.msg, "probe vip 10.231.0.100/24 on eth0: forgotten: the lease or "
                                      "the primary record went meanwhile");
    assert_int_equal(f->claim.calls, 0);
    /* The next claim probes for itself. */
    unlink_path(f, "arping.hang.probe");
    claim(f);
    run_ops(f);
    assert_int_equal(f->claim.rc, 0);
    assert_string_equal(contents(f, "log"), PROBE PROBE LOOKUP ADD);
}

static void test_release_during_probe_cancels_it(void **state)
{
    struct fx *f = *state;
    set(f, "arping.hang.probe", "");
    start(f);
    uint64_t t0 = loop_now(f);
    probe(f);
    run_until_file(f, "arping.pid");
    release(f);
    run_ops(f);
    assert_true(loop_now(f) - t0 < 1500);
    assert_int_equal(f->probe.calls, 1);
    assert_int_equal(f->probe.rc, RPG_EBUSY);
    assert_string_equal(f->probe.msg, "probe vip 10.231.0.100/24 on eth0: cancelled by a release");
    assert_int_equal(f->release.rc, 0);
    assert_string_equal(contents(f, "log"), PROBE DEL LOOKUP);
    assert_false(vip_probing(&f->vip));
}

static void test_op_names(void **state)
{
    (void)state;
    assert_string_equal(vip_op_name(VIP_OP_NONE), "none");
    assert_string_equal(vip_op_name(VIP_OP_CLAIM), "claim");
    assert_string_equal(vip_op_name(VIP_OP_RELEASE), "release");
    assert_string_equal(vip_op_name(VIP_OP_CHECK), "check");
    assert_string_equal(vip_op_name(VIP_OP_RENEW), "renew");
    assert_string_equal(vip_op_name(VIP_OP_PROBE), "probe");
    assert_string_equal(vip_op_name((enum vip_op)42), "unknown");
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_claim_runs_probe_lookup_add_and_announces),
        T(test_claim_is_refused_when_another_host_answers),
        T(test_claim_refusal_without_a_readable_mac_says_unknown),
        T(test_claim_when_already_present_adds_nothing),
        T(test_claim_twice_is_idempotent),
        T(test_claim_refuses_the_address_under_another_prefix),
        T(test_claim_ignores_other_addresses_with_the_same_start),
        T(test_claim_without_announcements),
        T(test_probe_count_and_deadline_follow_the_config),
        T(test_announcements_are_spaced_by_the_interval),
        T(test_failing_ip_names_the_command_and_its_output),
        T(test_add_racing_another_adder_succeeds),
        T(test_failing_probe_is_an_error_and_adds_nothing),
        T(test_hanging_arping_is_killed_by_the_timeout),
        T(test_missing_arping_is_an_error),
        T(test_failing_announcement_keeps_the_address),
        T(test_release_deletes_and_verifies),
        T(test_release_when_absent_is_success),
        T(test_release_removes_the_address_under_any_prefix),
        T(test_failing_release_names_the_command_and_its_output),
        T(test_check_reports_whether_the_address_is_held),
        T(test_check_of_a_missing_interface_fails),
        T(test_second_operation_is_busy),
        T(test_release_during_probe_cancels_the_claim),
        T(test_release_during_announce_wait_cancels_at_once),
        T(test_release_during_add_waits_for_it_then_deletes),
        T(test_release_during_check_waits_for_it),
        T(test_callback_may_start_the_next_operation),
        T(test_close_cancels_a_running_claim),
        T(test_close_cancels_a_waiting_release),
        T(test_close_when_idle),
        T(test_init_rejects_an_incomplete_config),
        T(test_init_rejects_a_zero_lifetime),
        T(test_renew_sets_a_fresh_lifetime_on_a_held_address),
        T(test_renew_never_adds_an_address_that_is_gone),
        T(test_failing_renewal_names_the_command),
        T(test_release_cancels_a_renewal),
        T(test_renew_interval_is_a_quarter_of_the_lifetime),
        T(test_probe_nobody_answers_then_claim_skips_its_probe_once),
        T(test_answered_probe_leaves_the_claim_its_own_probe),
        T(test_claim_takes_over_a_running_probe),
        T(test_claim_taking_over_an_answered_probe_is_refused),
        T(test_forgotten_probe_is_not_used),
        T(test_forgetting_a_running_probe_ends_it_without_a_result),
        T(test_release_during_probe_cancels_it),
        T(test_op_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
