/* Unit tests of the HA decision function (ha_decide, ha_choose_candidate, ha_slot_name) and of
 * the core's backoff (core_tick). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/core.h"
#include "raftpg/ha.h"
#include "raftpg/log.h"

/* ---- Helpers ---- */

#define SYSID 7364239846214612345ull
#define OTHER_SYSID 1111ull
#define TERM 5

/* A three-member cluster (node1..node3, ids 1..3) seen from one member, self. Every peer is
 * reachable, polled, a running standby of the cluster's system on timeline 1 at position 1000
 * with priority 100; so is self. Self is a follower until a test says otherwise. */
struct world {
    struct fsm_state state;
    struct ha_peer peers[2];
    struct ha_input in;
    struct ha_decision out;
};

/* Copies src into dst (size bytes, zero-padded, truncated). src may come from the same world. */
static void set_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
    }
    memset(dst, 0, size);
    memmove(dst, src, n);
}

static void apply_ok(struct fsm_state *s, const struct fsm_cmd *c)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = fsm_state_apply(s, c, errmsg);
    if (rc != 0) {
        fail_msg("apply %s: %s", fsm_cmd_type_name(c->type), errmsg);
    }
}

/* system_id 0: the cluster is not bootstrapped yet. */
static void state_three(struct fsm_state *s, uint64_t system_id)
{
    struct fsm_cmd c;
    fsm_state_init(s);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_INIT;
    c.term = 1;
    set_str(c.u.init.scope, FSM_NAME_MAX, "main");
    c.u.init.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        struct fsm_member *m = &c.u.init.members[i];
        char buf[FSM_ADDR_MAX];
        m->id = i + 1;
        snprintf(buf, sizeof buf, "node%u", i + 1);
        set_str(m->name, sizeof m->name, buf);
        snprintf(buf, sizeof buf, "10.0.0.%u:7000", i + 1);
        set_str(m->raft_address, sizeof m->raft_address, buf);
        snprintf(buf, sizeof buf, "10.0.0.%u:8008", i + 1);
        set_str(m->api_address, sizeof m->api_address, buf);
        snprintf(buf, sizeof buf, "10.0.0.%u:5432", i + 1);
        set_str(m->pg_address, sizeof m->pg_address, buf);
        m->failover_priority = 100;
    }
    apply_ok(s, &c);
    if (system_id != 0) {
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_SET_SYSTEM_ID;
        c.term = 1;
        c.u.set_system_id.system_id = system_id;
        apply_ok(s, &c);
    }
}

static void world_init(struct world *w, const char *self, uint64_t system_id)
{
    memset(w, 0, sizeof *w);
    state_three(&w->state, system_id);
    w->in.state = &w->state;
    w->in.self = NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < w->state.n_members; i++) {
        const char *name = w->state.members[i].name;
        if (strcmp(name, self) == 0) {
            w->in.self = name;
            continue;
        }
        struct ha_peer *p = &w->peers[n++];
        set_str(p->name, sizeof p->name, name);
        p->reachable = true;
        p->polled = true;
        p->pg_address_known = true;
        p->pg_state = HA_PG_RUNNING;
        p->in_recovery = true;
        p->system_id = system_id;
        p->timeline = 1;
        p->wal_position = 1000;
        p->failover_priority = 100;
    }
    assert_non_null(w->in.self);
    w->in.leader = false;
    w->in.state_current = true;
    w->in.term = TERM;
    w->in.failover_priority = 100;
    w->in.pg.state = HA_PG_RUNNING;
    w->in.pg.in_recovery = true;
    w->in.pg.system_id = system_id;
    w->in.pg.timeline = 1;
    w->in.pg.wal_position = 1000;
    w->in.pg.streaming = true;
    w->in.n_peers = n;
    w->in.peers = w->peers;
}

static struct ha_peer *peer(struct world *w, const char *name)
{
    for (unsigned i = 0; i < w->in.n_peers; i++) {
        if (strcmp(w->peers[i].name, name) == 0) {
            return &w->peers[i];
        }
    }
    fail_msg("no peer %s", name);
    return NULL;
}

static void record_primary(struct world *w, const char *name, uint64_t term, uint32_t timeline)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_PRIMARY;
    c.term = term;
    set_str(c.u.set_primary.name, FSM_NAME_MAX, name);
    c.u.set_primary.term = term;
    c.u.set_primary.timeline = timeline;
    apply_ok(&w->state, &c);
}

/* Replaces the local primary's replication slots with the NULL-terminated list. */
static void set_slots(struct world *w, const char *const *slots)
{
    w->in.pg.n_slots = 0;
    for (unsigned i = 0; slots[i] != NULL; i++) {
        set_str(w->in.pg.slots[i], FSM_NAME_MAX, slots[i]);
        w->in.pg.n_slots++;
    }
}

/* node1, Raft leader, recorded as primary in the current term on timeline 1, running as primary
 * with exactly the slots of node2 and node3. */
static void world_primary(struct world *w)
{
    static const char *const slots[] = {"raftpg_2", "raftpg_3", NULL};
    world_init(w, "node1", SYSID);
    w->in.leader = true;
    record_primary(w, "node1", TERM, 1);
    w->in.pg.in_recovery = false;
    w->in.pg.streaming = false;
    set_slots(w, slots);
}

/* node1, Raft leader in term TERM + 1, node2 recorded as primary in TERM and now a running
 * standby (it was fenced); node1 is a running standby. */
static void world_takeover(struct world *w)
{
    world_init(w, "node1", SYSID);
    w->in.leader = true;
    w->in.term = TERM + 1;
    record_primary(w, "node2", TERM, 1);
}

/* node1, a follower; node2 recorded as primary and running as primary; node1 a standby
 * streaming from node2. */
static void world_follower(struct world *w)
{
    world_init(w, "node1", SYSID);
    record_primary(w, "node2", TERM, 1);
    peer(w, "node2")->in_recovery = false;
    set_str(w->in.pg.upstream, FSM_NAME_MAX, "node2");
}

static void decide(struct world *w)
{
    memset(&w->out, 0xa5, sizeof w->out);
    ha_decide(&w->in, &w->out);
}

static void assert_decision(const struct world *w, enum ha_action action, const char *target)
{
    assert_string_equal(ha_action_name(w->out.action), ha_action_name(action));
    assert_int_equal(w->out.action, action);
    assert_string_equal(w->out.target, target);
}

static void assert_why(const struct world *w, const char *fragment)
{
    if (strstr(w->out.why, fragment) == NULL) {
        fail_msg("why \"%s\" lacks \"%s\"", w->out.why, fragment);
    }
}

static void assert_text(const char *text, const char *fragment)
{
    if (strstr(text, fragment) == NULL) {
        fail_msg("\"%s\" lacks \"%s\"", text, fragment);
    }
}

/* ---- ha_slot_name ---- */

static void test_slot_name_is_raftpg_and_member_id(void **state)
{
    (void)state;
    char buf[FSM_NAME_MAX];
    ha_slot_name(2, buf, sizeof buf);
    assert_string_equal(buf, "raftpg_2");
}

static void test_slot_name_of_largest_id(void **state)
{
    (void)state;
    char buf[FSM_NAME_MAX];
    ha_slot_name(UINT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "raftpg_18446744073709551615");
}

/* ---- ha_decide: preconditions ---- */

static void test_decide_waits_when_state_not_initialised(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "node1", SYSID);
    fsm_state_init(&w.state);
    w.in.leader = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "cluster state not known");
}

static void test_decide_waits_when_state_missing(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "node1", SYSID);
    w.in.state = NULL;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "cluster state not known");
}

static void test_decide_waits_when_pg_not_observed(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_UNKNOWN;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "postgresql not observed yet");
}

/* ---- ha_decide: data of another system ---- */

static void test_foreign_system_running_primary_demotes(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.system_id = OTHER_SYSID;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "");
    assert_why(&w, "another system");
}

static void test_foreign_system_leader_transfers_to_best_peer(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = OTHER_SYSID;
    peer(&w, "node3")->wal_position = 2000;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "another cluster");
}

static void test_foreign_system_leader_waits_without_promotable_peer(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = OTHER_SYSID;
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "another cluster");
}

static void test_foreign_system_follower_refuses_naming_both_identifiers(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.system_id = OTHER_SYSID;
    decide(&w);
    assert_decision(&w, HA_ACT_REFUSE, "");
    assert_why(&w, "system identifier 1111");
    assert_why(&w, "the cluster's is 7364239846214612345");
}

/* ---- ha_decide: the leader bootstraps a new cluster ---- */

static void world_bootstrap(struct world *w)
{
    world_init(w, "node1", 0);
    w->in.leader = true;
    w->in.pg.state = HA_PG_ABSENT;
    w->in.pg.in_recovery = false;
    w->in.pg.timeline = 0;
    w->in.pg.wal_position = 0;
    w->in.pg.streaming = false;
    /* A new cluster: no member has a data directory yet. */
    for (unsigned i = 0; i < w->in.n_peers; i++) {
        w->peers[i].pg_state = HA_PG_ABSENT;
        w->peers[i].in_recovery = false;
        w->peers[i].timeline = 0;
        w->peers[i].wal_position = 0;
    }
}

static void test_bootstrap_absent_initialises(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_BOOTSTRAP, "");
}

/* An existing directory runs read-only first, so that its end of WAL can be compared. */
static void test_bootstrap_stopped_starts_read_only(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.system_id = SYSID;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    /* No control file to read: nothing to start or compare. */
    w.in.pg.system_id = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "control file");
}

static void test_bootstrap_running_standby_promotes(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.in_recovery = true;
    w.in.pg.system_id = SYSID;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

static void bootstrap_with_data(struct world *w)
{
    world_bootstrap(w);
    w->in.pg.state = HA_PG_RUNNING;
    w->in.pg.in_recovery = true;
    w->in.pg.system_id = SYSID;
    w->in.pg.timeline = 2;
    w->in.pg.wal_position = 5000;
    for (unsigned i = 0; i < w->in.n_peers; i++) {
        w->peers[i].pg_state = HA_PG_RUNNING;
        w->peers[i].in_recovery = true;
        w->peers[i].system_id = SYSID;
        w->peers[i].timeline = 2;
        w->peers[i].wal_position = 4000;
    }
}

/* Two members that lost their Raft state must not adopt a directory behind the third's: the one
 * further ahead bootstraps the new cluster (issue: storage faults, point 5). */
static void test_bootstrap_hands_over_to_a_member_further_ahead(void **state)
{
    (void)state;
    struct world w;
    bootstrap_with_data(&w);
    peer(&w, "node3")->wal_position = 6000;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "node3 is further ahead");
    bootstrap_with_data(&w);
    peer(&w, "node2")->timeline = 3;
    peer(&w, "node2")->wal_position = 10;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

static void test_bootstrap_furthest_ahead_promotes(void **state)
{
    (void)state;
    struct world w;
    bootstrap_with_data(&w);
    peer(&w, "node3")->pg_state = HA_PG_ABSENT;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    assert_why(&w, "furthest ahead");
}

static void test_bootstrap_waits_for_every_member_report(void **state)
{
    (void)state;
    struct world w;
    bootstrap_with_data(&w);
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for a report from node2");
    /* A stopped directory has shown no end of WAL yet. */
    bootstrap_with_data(&w);
    peer(&w, "node3")->pg_state = HA_PG_STOPPED;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for node3 to report how far its WAL goes");
    /* Even with no directory of its own: initdb would start a second history. */
    world_bootstrap(&w);
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for a report from node2");
}

static void test_bootstrap_without_data_hands_over_to_a_member_with_data(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    peer(&w, "node3")->pg_state = HA_PG_STOPPED;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "node3 has a data directory and this member none");
    world_bootstrap(&w);
    peer(&w, "node3")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->nofailover = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

static void test_bootstrap_data_of_two_systems_waits(void **state)
{
    (void)state;
    struct world w;
    bootstrap_with_data(&w);
    peer(&w, "node2")->system_id = SYSID + 1;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "holds data of another system");
}

/* A follower's existing directory runs read-only while the leader compares. */
static void test_bootstrap_follower_starts_existing_directory_read_only(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.leader = false;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.system_id = SYSID;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    w.in.pg.state = HA_PG_ABSENT;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

static void test_bootstrap_running_primary_records_system_and_timeline(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.system_id = SYSID;
    w.in.pg.timeline = 3;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_BOOTSTRAP, "");
    assert_true(w.out.system_id == SYSID);
    assert_int_equal(w.out.timeline, 3);
}

static void test_bootstrap_running_primary_waits_for_system_identifier(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.system_id = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "system identifier");
}

static void test_bootstrap_nofailover_leader_transfers_to_eligible_peer(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.nofailover = true;
    peer(&w, "node2")->failover_priority = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
}

static void test_bootstrap_nofailover_leader_waits_without_eligible_peer(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.nofailover = true;
    peer(&w, "node2")->nofailover = true;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "no member that may bootstrap");
}

/* ---- ha_decide: the leader recorded as primary in its own term ---- */

static void test_primary_in_recovery_promotes(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.in_recovery = true;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

static void test_primary_records_changed_timeline(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    assert_int_equal(w.out.timeline, 2);
}

static void test_primary_syncs_slots_when_one_is_missing(void **state)
{
    (void)state;
    static const char *const slots[] = {"raftpg_2", NULL};
    struct world w;
    world_primary(&w);
    set_slots(&w, slots);
    decide(&w);
    assert_decision(&w, HA_ACT_SYNC_SLOTS, "");
}

static void test_primary_syncs_slots_when_one_is_extra(void **state)
{
    (void)state;
    static const char *const slots[] = {"raftpg_2", "raftpg_3", "raftpg_4", NULL};
    struct world w;
    world_primary(&w);
    set_slots(&w, slots);
    decide(&w);
    assert_decision(&w, HA_ACT_SYNC_SLOTS, "");
}

static void test_primary_syncs_slots_when_it_has_its_own(void **state)
{
    (void)state;
    static const char *const slots[] = {"raftpg_1", "raftpg_2", NULL};
    struct world w;
    world_primary(&w);
    set_slots(&w, slots);
    decide(&w);
    assert_decision(&w, HA_ACT_SYNC_SLOTS, "");
}

static void test_primary_syncs_slots_named_after_member_names(void **state)
{
    (void)state;
    static const char *const slots[] = {"raftpg_node2", "raftpg_node3", NULL};
    struct world w;
    world_primary(&w);
    set_slots(&w, slots);
    decide(&w);
    assert_decision(&w, HA_ACT_SYNC_SLOTS, "");
}

static void test_primary_waits_when_all_is_in_place(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_string_equal(w.out.why, "running as primary");
}

static void test_primary_slots_in_any_order_match(void **state)
{
    (void)state;
    static const char *const slots[] = {"raftpg_3", "raftpg_2", NULL};
    struct world w;
    world_primary(&w);
    set_slots(&w, slots);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_string_equal(w.out.why, "running as primary");
}

static void test_primary_stopped_starts_primary(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.start_failures = HA_START_FAILURES_MAX - 1;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
}

/* Recorded as primary, then its server crashed before the promotion took effect: its data is a
 * standby's. Started as a primary it would stay on the old timeline, where a standby that had
 * received more of it streams the new writes over its own (seed 571 of raftpg_sim with
 * --faults crash-in-action,node-crash,pg-crash). */
static void test_recorded_primary_with_standby_data_starts_as_standby(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = false;
    w.in.pg.n_slots = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    assert_why(&w, "stopped before its promotion");
}

static void test_primary_failing_to_start_transfers_leadership(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.start_failures = HA_START_FAILURES_MAX;
    peer(&w, "node3")->wal_position = 900;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "fails to start");
}

static void test_primary_without_data_transfers_leadership(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_ABSENT;
    w.in.pg.n_slots = 0;
    peer(&w, "node2")->wal_position = 900;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "data directory is missing");
}

static void test_primary_starting_waits(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_STARTING;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "accept connections");
}

/* ---- ha_decide: a new leader takes over ---- */

static void test_takeover_reelected_primary_records_itself(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    record_primary(&w, "node1", TERM, 1);
    w.in.pg.in_recovery = false;
    w.in.pg.timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    assert_int_equal(w.out.timeline, 2);
}

static void test_takeover_running_primary_of_other_recorded_member_demotes(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "");
    assert_why(&w, "node2 is the recorded primary");
}

static void test_takeover_waits_while_previous_primary_accepts_writes(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node2")->in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "previous primary node2");
}

static void test_takeover_proceeds_when_previous_primary_unreachable(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node2")->in_recovery = false;
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
}

static void test_takeover_stopped_starts_standby(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
}

static void test_takeover_transfers_to_peer_ahead(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 1001;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
}

static void test_takeover_records_self_when_best(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.wal_position = 1001;
    w.in.pg.timeline = 1;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    /* The timeline its promotion will create, recorded before it exists. */
    assert_int_equal(w.out.timeline, 2);
}

static void test_promote_asks_for_the_recorded_timeline(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    record_primary(&w, "node1", TERM, 3);
    w.in.pg.in_recovery = true;
    w.in.pg.timeline = 1;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    assert_int_equal(w.out.timeline, 3);
}

static void test_takeover_waits_for_unpolled_member(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node3")->polled = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "no report from node3");
}

/* ---- ha_decide: followers ---- */

static void test_follower_running_primary_demotes(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "");
    assert_why(&w, "not the raft leader");
}

static void test_follower_waits_for_bootstrap(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "node1", 0);
    w.in.pg.state = HA_PG_ABSENT;
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "bootstrap");
}

static void test_follower_absent_clones_from_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_ABSENT;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_CLONE, "node2");
}

static void test_follower_absent_waits_for_unreachable_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_ABSENT;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = 0;
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "waiting for primary node2");
}

static void test_follower_stopped_former_primary_rewinds(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_REWIND, "node2");
}

static void test_follower_rewind_backs_off_after_retryable_failure(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    w.in.pg.rewind_retries = 3;
    w.in.pg.rewind_retry_ms = 2500;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "3 times in a row: trying again in 2500 ms");
    /* The back-off over, it tries again. */
    w.in.pg.rewind_retry_ms = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_REWIND, "node2");
}

static void test_follower_without_pg_rewind_reclones_former_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    w.in.no_pg_rewind = true;
    decide(&w);
    assert_decision(&w, HA_ACT_REINIT, "node2");
    assert_why(&w, "postgresql.use_pg_rewind is off");
    /* A standby on an older timeline is started: PostgreSQL follows the switch if it can. */
    w.in.pg.was_primary = false;
    w.in.pg.timeline = 1;
    peer(&w, "node2")->timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "node2");
}

static void test_follower_stopped_on_older_timeline_rewinds(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.timeline = 1;
    peer(&w, "node2")->timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_REWIND, "node2");
    assert_why(&w, "older timeline");
}

static void test_follower_failed_rewind_reinitialises(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    w.in.pg.rewind_failed = true;
    decide(&w);
    assert_decision(&w, HA_ACT_REINIT, "node2");
}

static void test_follower_stopped_starts_standby_of_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "node2");
}

/* A restarted agent has no report from a primary that is down: it starts as a standby of nobody
 * rather than fail the start and back off, and follows once the primary reports. */
static void test_follower_stopped_without_primary_address_starts_standby_of_nobody(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    struct ha_peer *p = peer(&w, "node2");
    memset(p, 0, sizeof *p);
    set_str(p->name, sizeof p->name, "node2");
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    assert_why(&w, "no address known for primary node2");

    /* Up, upstream none, the primary still silent: it waits. */
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.in_recovery = true;
    w.in.pg.streaming = false;
    w.in.pg.upstream[0] = '\0';
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    /* The primary reports: follow it. */
    p->reachable = true;
    p->polled = true;
    p->pg_address_known = true;
    p->pg_state = HA_PG_RUNNING;
    p->system_id = SYSID;
    p->timeline = 1;
    decide(&w);
    assert_decision(&w, HA_ACT_FOLLOW, "node2");
}

static void test_follower_with_other_upstream_follows_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    set_str(w.in.pg.upstream, FSM_NAME_MAX, "node3");
    decide(&w);
    assert_decision(&w, HA_ACT_FOLLOW, "node2");
}

static void test_follower_streaming_waits(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_string_equal(w.out.why, "following node2");
}

/* ---- ha_choose_candidate ---- */

struct choice {
    const char *chosen;
    bool wait;
    char why[HA_WHY_MAX];
};

static void choose(struct world *w, bool self_eligible, struct choice *c)
{
    c->wait = true;
    memset(c->why, 0, sizeof c->why);
    c->chosen = ha_choose_candidate(&w->in, self_eligible, &c->wait, c->why, sizeof c->why);
}

static void assert_chosen(const struct choice *c, const char *name)
{
    assert_non_null(c->chosen);
    assert_string_equal(c->chosen, name);
    assert_false(c->wait);
}

/* maximum_lag_on_failover: the member furthest ahead lags the recorded primary's last reported
 * position by more than the limit: nobody is chosen, the leader waits and says why. */
static void test_candidate_max_lag(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 2000;
    w.in.primary_wal = 10000;
    choose(&w, true, &c);
    assert_chosen(&c, "node3"); /* no limit set */
    w.in.max_lag_set = true;
    w.in.max_lag = 5000;
    choose(&w, true, &c);
    assert_null(c.chosen);
    assert_true(c.wait);
    assert_string_equal(c.why, "node3, the member furthest ahead, lags 8000 bytes behind the last "
                               "position of primary node2 (10000), more than "
                               "maximum_lag_on_failover (5000): not promoted");
    w.in.max_lag = 8000; /* at the limit: may be promoted */
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
    /* The acknowledged-WAL bound counts as a position of the primary too. */
    w.in.primary_wal = 0;
    w.in.max_lag = 0;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
    w.state.wal_bound = 1500;
    w.state.wal_bound_timeline = 1;
    w.in.max_lag = 0;
    choose(&w, true, &c);
    assert_chosen(&c, "node3"); /* node3 is past the bound: no lag */
    /* The decision of the leader waits as well, naming the limit. */
    w.in.primary_wal = 10000;
    w.in.max_lag = 100;
    w.in.leader_ms = 60000;
    decide(&w);
    assert_int_equal(w.out.action, HA_ACT_WAIT);
    assert_why(&w, "maximum_lag_on_failover (100)");
    /* The candidate of an operator's failover is not held back (Patroni's manual failover
     * without a leader); another member named does not waive it for node3. */
    w.in.lag_waived_for = "node1";
    choose(&w, true, &c);
    assert_null(c.chosen);
    assert_true(c.wait);
    w.in.lag_waived_for = "node3";
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
}

/* POST /restart timeout on the primary: a server still starting after the timeout is stopped,
 * then leadership goes to the best standby; with nobody to take over it goes on starting. */
static void test_restart_timeout_hands_over(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.state = HA_PG_STARTING;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    w.in.pg.start_timed_out = true;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "");
    assert_why(&w, "did not start within the restart's timeout: stopping it so that node2 takes "
                   "over");
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    w.in.pg.start_timed_out = false;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
    /* Nobody may take over: the primary starts again, as without a timeout. */
    w.in.pg.start_timed_out = true;
    peer(&w, "node2")->nofailover = true;
    peer(&w, "node3")->nofailover = true;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
    w.in.pg.state = HA_PG_STARTING;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for postgresql to accept connections");
}

static void test_candidate_tie_goes_to_higher_priority(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->failover_priority = 200;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
}

static void test_candidate_tie_at_equal_priority_goes_to_self(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_init(&w, "node3", SYSID);
    w.in.leader = true;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
}

static void test_candidate_tie_goes_to_lowest_name(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    /* node3 before node2 in the state, so the order of members cannot decide. */
    struct fsm_member tmp = w.state.members[1];
    w.state.members[1] = w.state.members[2];
    w.state.members[2] = tmp;
    choose(&w, false, &c);
    assert_chosen(&c, "node2");
}

static void test_candidate_nofailover_peer_never_chosen(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->nofailover = true;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

static void test_candidate_priority_zero_never_chosen(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->failover_priority = 0;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

static void test_candidate_unreachable_peer_skipped(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->reachable = false;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

static void test_candidate_unpolled_member_makes_choice_wait(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->polled = false;
    peer(&w, "node3")->reachable = false;
    choose(&w, true, &c);
    assert_null(c.chosen);
    assert_true(c.wait);
    assert_text(c.why, "node3");
}

static void test_candidate_member_without_peer_entry_makes_choice_wait(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    w.in.n_peers = 1; /* node3 has no report at all */
    choose(&w, true, &c);
    assert_null(c.chosen);
    assert_true(c.wait);
    assert_text(c.why, "node3");
}

static void test_candidate_higher_timeline_beats_higher_wal_position(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node2")->timeline = 2;
    peer(&w, "node2")->wal_position = 5000;
    peer(&w, "node3")->timeline = 3;
    peer(&w, "node3")->wal_position = 100;
    choose(&w, false, &c);
    assert_chosen(&c, "node3");
}

static void test_candidate_self_higher_timeline_beats_peer_higher_wal(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    w.in.pg.timeline = 3;
    w.in.pg.wal_position = 100;
    peer(&w, "node2")->timeline = 2;
    peer(&w, "node2")->wal_position = 5000;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

static void test_candidate_failing_peer_skipped(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->start_failures = HA_START_FAILURES_MAX;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

/* A peer ahead whose Raft storage cannot persist, or whose replicated state diverged, is passed
 * over; the same peer healthy is chosen. */
static void test_candidate_peer_with_failing_storage_skipped(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->storage_failed = true;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
    peer(&w, "node3")->storage_failed = false;
    peer(&w, "node3")->diverged = true;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
    peer(&w, "node3")->diverged = false;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
}

static void record_sync(struct world *w, uint32_t k, const char *const *voters);

/* The same peer ahead, but a recorded synchronous voter: it may hold acknowledged commits no
 * other member has, so nobody behind it is promoted until it can be (raftpg_sim --seed
 * 968316409756 --nodes 3 --faults all --watchdog lost 8 acknowledged commits). A voter behind
 * the member chosen blocks nothing. */
static void test_candidate_never_behind_a_voter_that_cannot_be_promoted(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    static const char *const voters[] = {"node1", "node3", NULL};
    record_sync(&w, 1, voters);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->storage_failed = true;
    choose(&w, true, &c);
    assert_null(c.chosen);
    assert_true(c.wait);
    assert_non_null(strstr(c.why, "synchronous voter node3 is further ahead"));
    assert_non_null(strstr(c.why, "its raft storage cannot persist"));
    peer(&w, "node3")->storage_failed = false;
    peer(&w, "node3")->unwritable = true;
    choose(&w, true, &c);
    assert_null(c.chosen);
    peer(&w, "node3")->unwritable = false;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
    /* Behind the member chosen, or not a voter: it blocks nothing. */
    peer(&w, "node3")->storage_failed = true;
    peer(&w, "node3")->wal_position = 900;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
    static const char *const others[] = {"node1", NULL};
    record_sync(&w, 1, others);
    peer(&w, "node3")->wal_position = 5000;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

static void test_candidate_peer_below_failure_limit_chosen(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->start_failures = HA_START_FAILURES_MAX - 1;
    choose(&w, true, &c);
    assert_chosen(&c, "node3");
}

static void test_candidate_self_not_eligible_gives_best_peer(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    w.in.pg.wal_position = 9000;
    peer(&w, "node2")->wal_position = 2000;
    peer(&w, "node3")->wal_position = 3000;
    choose(&w, false, &c);
    assert_chosen(&c, "node3");
}

static void test_candidate_nobody_eligible_gives_null_without_wait(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->nofailover = true;
    choose(&w, false, &c);
    assert_null(c.chosen);
    assert_false(c.wait);
    assert_string_equal(c.why, "no member can be promoted");
}

static void test_candidate_peer_of_another_system_skipped(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node3")->wal_position = 5000;
    peer(&w, "node3")->system_id = OTHER_SYSID;
    choose(&w, true, &c);
    assert_chosen(&c, "node1");
}

/* ha.h: the peers that can be promoted hold "running or stopped data of the cluster's system". */
/* A restarted follower replaying its log may still see itself as primary: it waits. */
static void test_follower_waits_until_state_is_current(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.state_current = false;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "replicated state to catch up");
}

/* A former primary never starts as a standby without a primary to rewind from. */
static void test_follower_former_primary_waits_when_no_primary_recorded(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    memset(w.state.primary.name, 0, sizeof w.state.primary.name);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

/* A stopped peer cannot say how much WAL it holds: it is not chosen until it runs. */
static void test_candidate_stopped_peer_is_not_chosen(void **state)
{
    (void)state;
    struct world w;
    struct choice c;
    world_takeover(&w);
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    peer(&w, "node3")->reachable = false;
    choose(&w, false, &c);
    assert_null(c.chosen);
    assert_false(c.wait);
    assert_text(c.why, "no member can be promoted");
}

/* ---- the new timeline is checkpointed before others rewind from it ---- */

static void test_primary_checkpoints_recorded_new_timeline(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    record_primary(&w, "node1", TERM, 2);
    w.in.pg.timeline = 2;
    w.in.pg.checkpoint_timeline = 1;
    decide(&w);
    assert_decision(&w, HA_ACT_CHECKPOINT, "");
    assert_why(&w, "timeline 2 is not checkpointed");
}

static void test_primary_records_new_timeline_before_checkpointing(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    w.in.pg.timeline = 2;
    w.in.pg.checkpoint_timeline = 1;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    assert_int_equal(w.out.timeline, 2);
}

static void test_primary_with_checkpointed_timeline_does_not_checkpoint(void **state)
{
    (void)state;
    struct world w;
    world_primary(&w);
    record_primary(&w, "node1", TERM, 2);
    w.in.pg.timeline = 2;
    w.in.pg.checkpoint_timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_string_equal(w.out.why, "running as primary");
}

/* node1 stopped after running as primary on timeline 1; node2 is the primary on timeline 2. */
static void world_rejoin(struct world *w, uint32_t primary_checkpoint_timeline)
{
    world_follower(w);
    w->in.pg.state = HA_PG_STOPPED;
    w->in.pg.in_recovery = false;
    w->in.pg.was_primary = true;
    w->in.pg.timeline = 1;
    peer(w, "node2")->timeline = 2;
    peer(w, "node2")->checkpoint_timeline = primary_checkpoint_timeline;
}

static void test_follower_rewind_waits_for_primary_checkpoint(void **state)
{
    (void)state;
    struct world w;
    world_rejoin(&w, 1);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "waiting for primary node2 to checkpoint timeline 2");
}

static void test_follower_rewinds_once_primary_checkpointed(void **state)
{
    (void)state;
    struct world w;
    world_rejoin(&w, 2);
    decide(&w);
    assert_decision(&w, HA_ACT_REWIND, "node2");
}

/* ---- a standby that cannot follow the primary's new timeline ---- */

/* node1 a running standby of node2 on timeline 1, not streaming for ms; node2 on timeline 2. */
static void world_stuck(struct world *w, rpg_msec ms)
{
    world_follower(w);
    peer(w, "node2")->timeline = 2;
    w->in.pg.timeline = 1;
    w->in.pg.streaming = false;
    w->in.pg.not_streaming_ms = ms;
}

static void test_stuck_standby_on_older_timeline_is_demoted(void **state)
{
    (void)state;
    struct world w;
    world_stuck(&w, HA_STUCK_STANDBY_MS);
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "node2");
    assert_why(&w, "cannot follow timeline 2 of node2 from timeline 1");
}

static void test_stuck_standby_is_not_demoted_before_the_bound(void **state)
{
    (void)state;
    struct world w;
    world_stuck(&w, HA_STUCK_STANDBY_MS - 1);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_string_equal(w.out.why, "following node2");
}

static void test_standby_on_primary_timeline_not_streaming_is_not_demoted(void **state)
{
    (void)state;
    struct world w;
    world_stuck(&w, 10 * HA_STUCK_STANDBY_MS);
    w.in.pg.timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_string_equal(w.out.why, "following node2");
}

/* The stuck standby seen in the chaos suite: its receiver "streams" timeline 1 again and again
 * (so not_streaming_ms stays 0) while it replayed past where timeline 2 forked. */
static void test_standby_past_the_fork_is_demoted_to_rewind(void **state)
{
    (void)state;
    struct world w;
    world_stuck(&w, 0);
    w.in.pg.streaming = true;
    w.in.pg.replay_position = 0x8F2B058;
    w.in.pg.fork_timeline = 2;
    w.in.pg.fork_lsn = 0x8F2AFE0;
    w.in.pg.past_fork_ms = HA_PAST_FORK_MS - 1;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    w.in.pg.past_fork_ms = HA_PAST_FORK_MS;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "node2");
    assert_why(&w, "past 0/8F2AFE0 where timeline 2 of node2 forked from it");
    /* Stopped, it is behind the primary's timeline: rewound. */
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.past_fork_ms = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_REWIND, "node2");
}

static void test_fork_tracking(void **state)
{
    (void)state;
    struct ha_pg o = {.in_recovery = true};
    rpg_msec since = 0;
    ha_pg_track_fork(&o, HA_FORK_PAST, &since, 1000);
    assert_int_equal(o.past_fork_ms, 0);
    /* A reading without a receiver neither starts nor ends the count. */
    ha_pg_track_fork(&o, HA_FORK_UNKNOWN, &since, 2500);
    assert_int_equal(o.past_fork_ms, 1500);
    ha_pg_track_fork(&o, HA_FORK_PAST, &since, 3000);
    assert_int_equal(o.past_fork_ms, 2000);
    ha_pg_track_fork(&o, HA_FORK_CLEAR, &since, 3200);
    assert_int_equal(o.past_fork_ms, 0);
    ha_pg_track_fork(&o, HA_FORK_UNKNOWN, &since, 9000);
    assert_int_equal(o.past_fork_ms, 0);
}

/* ---- rules the simulation (tests/sim) showed missing ---- */

/* A node crash during pg_basebackup leaves PG_VERSION but no pg_control: the directory can never
 * start, so starting it again and again never ends (seed 293 of raftpg_sim). */
static void test_follower_with_unreadable_control_file_reclones(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_REINIT, "node2");
    assert_why(&w, "no readable control file");
}

static void test_follower_with_unreadable_control_file_waits_for_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = 0;
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "no readable control file");
}

static void test_leader_with_unreadable_control_file_hands_over(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = 0;
    peer(&w, "node3")->wal_position = 1001;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
}

/* The recorded primary whose node lost leadership while its PostgreSQL was down holds every
 * commit, but stopped it is no candidate, and as a follower it does not start a former primary's
 * data: with nobody else to promote, the leader waited for ever (seed 1859 of raftpg_sim). It
 * hands leadership to it instead; as leader it starts and takes over. */
static void world_recorded_primary_stopped(struct world *w)
{
    world_takeover(w);
    w->in.pg.state = HA_PG_ABSENT;
    w->in.pg.in_recovery = false;
    w->in.pg.system_id = 0;
    peer(w, "node2")->pg_state = HA_PG_STOPPED;
    peer(w, "node2")->in_recovery = false;
    peer(w, "node3")->reachable = false;
}

static void test_takeover_hands_over_to_stopped_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_recorded_primary_stopped(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "the recorded primary node2 is stopped");
}

static void test_takeover_prefers_a_standby_to_a_stopped_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_recorded_primary_stopped(&w);
    peer(&w, "node3")->reachable = true;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "node3 is furthest ahead");
}

static void test_takeover_waits_for_failing_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_recorded_primary_stopped(&w);
    peer(&w, "node2")->start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "no member can be promoted");
}

/* node2 was recorded as primary on timeline 2 (recorded before its promotion) and is now
 * stopped; node1 and node3 are standbys still on timeline 1. Asynchronous (no synchronous
 * record), nothing proves that node1 holds what node2 acknowledged on timeline 2: the leader
 * hands the role back to node2. (Before promotions skipped recorded timeline ids, promoting
 * node1 also created timeline 2 again, and pg_rewind took equal ids for one history: seed 1158
 * of raftpg_sim --nodes 5.) */
static void world_behind_recorded_timeline(struct world *w)
{
    world_takeover(w);
    record_primary(w, "node2", TERM, 2);
    peer(w, "node2")->pg_state = HA_PG_STOPPED;
    peer(w, "node2")->in_recovery = false;
    peer(w, "node2")->timeline = 2;
    w->in.pg.wal_position = 1001;
}

static void test_takeover_hands_over_to_recorded_primary_on_newer_timeline(void **state)
{
    (void)state;
    struct world w;
    world_behind_recorded_timeline(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "node1 is on timeline 1 but the recorded primary node2 is on timeline 2");
}

/* With a synchronous quorum recorded and heard, node1 holds every acknowledged commit (one of
 * timeline 2 would be on a voter, then on timeline 2 and chosen) and its promotion skips
 * timeline 2 (pg.c reserves it): it takes over. Handing back to start node2 cost a transfer, the
 * new leader's wait for the lease and a start (raftpg_sim --seed 346450497860 --nodes 5 --faults
 * all --watchdog: node2's links were lossy, its agent died meanwhile, 8.9 s without a
 * primary). */
static void test_takeover_proceeds_when_sync_quorum_heard_behind_recorded_timeline(void **state)
{
    (void)state;
    struct world w;
    world_behind_recorded_timeline(&w);
    static const char *const voters[] = {"node1", "node3", NULL};
    record_sync(&w, 1, voters);
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    assert_int_equal(w.out.timeline, 3);
    /* Only node1 heard: node3 may hold a commit of timeline 2, node2 holds them all. */
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "the recorded primary node2 holds them");
}

static void test_takeover_proceeds_when_recorded_primary_on_newer_timeline_unreachable(void **state)
{
    (void)state;
    struct world w;
    world_behind_recorded_timeline(&w);
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    /* node2 may have written on timeline 2 before it was lost: promoted from timeline 1, node1
     * must skip 2 (pg.c reserves it), or PostgreSQL would take the two histories for one. */
    assert_int_equal(w.out.timeline, 3);
}

static void test_takeover_of_candidate_on_recorded_timeline_does_not_hand_back(void **state)
{
    (void)state;
    struct world w;
    world_behind_recorded_timeline(&w);
    peer(&w, "node3")->timeline = 2;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "node3 is furthest ahead (timeline 2");
}

/* A follower's state can lag the leader's: one that still names it as primary may have been
 * deposed, its WAL past the new primary's fork point. It waits rather than start that WAL. */
static void test_follower_named_primary_does_not_start_former_primary_data(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "node1", SYSID);
    record_primary(&w, "node1", TERM, 1);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for a primary to be chosen");
}

/* ---- core_tick: the backoff after a failed action ---- */

struct fake_io {
    unsigned promotes;
    unsigned stops;
    unsigned set_syncs;
    unsigned slot_calls;
    unsigned n_slots;
    char order[16]; /* s: set_sync, l: slots, p: promote */
};

static void fake_note(struct fake_io *f, char what)
{
    size_t n = strlen(f->order);
    if (n + 1 < sizeof f->order) {
        f->order[n] = what;
        f->order[n + 1] = '\0';
    }
}

static int fake_sync_slots(void *data, const uint64_t *ids, unsigned n, char *errmsg)
{
    (void)ids;
    (void)errmsg;
    struct fake_io *f = data;
    f->slot_calls++;
    f->n_slots = n;
    fake_note(f, 'l');
    return 0;
}

static int fake_set_sync(void *data, const char *names, const char *commit, char *errmsg)
{
    (void)names;
    (void)commit;
    (void)errmsg;
    ((struct fake_io *)data)->set_syncs++;
    fake_note(data, 's');
    return 0;
}

static int fake_promote(void *data, uint32_t timeline, char *errmsg)
{
    (void)errmsg;
    (void)timeline;
    ((struct fake_io *)data)->promotes++;
    fake_note(data, 'p');
    return 0;
}

static int fake_stop(void *data, unsigned bound_ms, char *errmsg)
{
    (void)bound_ms;
    (void)errmsg;
    ((struct fake_io *)data)->stops++;
    return 0;
}

/* node1, ready leader recorded as primary in TERM, its server still a standby: the core asks for
 * a promotion, which then fails. */
static void core_after_failed_promote(struct world *w, struct fake_io *f, struct core_io *io,
                                      struct core *c, struct core_view *v)
{
    world_primary(w);
    w->in.pg.in_recovery = true;
    memset(f, 0, sizeof *f);
    memset(io, 0, sizeof *io);
    io->data = f;
    io->pg_promote = fake_promote;
    io->pg_stop = fake_stop;
    core_init(c, io, "node1", false, 100);
    /* The failures below are expected: keep the core's error lines out of the test output. */
    log_setup("node1", (enum log_level)(LOG_ERROR + 1), 0);
    memset(v, 0, sizeof *v);
    v->now = 1000;
    v->state = &w->state;
    v->leader = true;
    v->state_current = true;
    v->term = TERM;
    v->pg_ready = true;
    v->pg = w->in.pg;
    assert_true(core_tick(c, v));
    assert_int_equal(f->promotes, 1);
    core_action_done(c, RPG_EIO, "pg_ctl promote: server is not in standby mode", 1010);
}

/* A promotion sets the synchronous setting, then creates the other members' replication slots
 * (the standbys that re-point find theirs before the first write), then promotes; a failure to
 * create the slots does not hold the promotion back. */
static void test_core_promotion_creates_slots_before_promoting(void **state)
{
    (void)state;
    for (int fail = 0; fail < 2; fail++) {
        struct world w;
        struct fake_io f;
        struct core_io io;
        struct core c;
        struct core_view v;
        world_primary(&w);
        w.in.pg.in_recovery = true;
        memset(&f, 0, sizeof f);
        memset(&io, 0, sizeof io);
        io.data = &f;
        io.pg_promote = fake_promote;
        io.pg_stop = fake_stop;
        io.pg_set_sync = fake_set_sync;
        io.pg_sync_slots = fake_sync_slots;
        core_init(&c, &io, "node1", false, 100);
        log_setup("node1", (enum log_level)(LOG_ERROR + 1), 0);
        memset(&v, 0, sizeof v);
        v.now = 1000;
        v.state = &w.state;
        v.leader = true;
        v.state_current = true;
        v.term = TERM;
        v.pg_ready = true;
        v.pg = w.in.pg;
        assert_true(core_tick(&c, &v));
        assert_string_equal(f.order, "s");
        core_action_done(&c, 0, NULL, 1010);
        assert_string_equal(f.order, "sl");
        assert_int_equal(f.n_slots, 2);
        core_action_done(&c, fail ? RPG_EIO : 0, fail ? "slot error" : NULL, 1020);
        assert_string_equal(f.order, "slp");
        core_action_done(&c, 0, NULL, 1030);
        assert_false(c.busy);
        assert_string_equal(c.error, "");
    }
}

static void test_core_backoff_holds_the_failed_action(void **state)
{
    (void)state;
    struct world w;
    struct fake_io f;
    struct core_io io;
    struct core c;
    struct core_view v;
    core_after_failed_promote(&w, &f, &io, &c, &v);
    v.now = 1010 + CORE_RETRY_MS - 1;
    assert_false(core_tick(&c, &v));
    assert_int_equal(f.promotes, 1);
    v.now = 1010 + CORE_RETRY_MS;
    assert_true(core_tick(&c, &v));
    assert_int_equal(f.promotes, 2);
}

/* Maintenance mode (v.allowed): an action outside the mask waits, one inside runs; a failover
 * permit lets the promotion through, the standbys' re-point mask does not, nor a demotion. */
static void test_core_allowed_mask_holds_other_actions(void **state)
{
    (void)state;
    struct world w;
    struct fake_io f;
    struct core_io io;
    struct core c;
    struct core_view v;
    world_primary(&w);
    w.in.pg.in_recovery = true;
    memset(&f, 0, sizeof f);
    memset(&io, 0, sizeof io);
    io.data = &f;
    io.pg_promote = fake_promote;
    io.pg_stop = fake_stop;
    core_init(&c, &io, "node1", false, 100);
    log_setup("node1", (enum log_level)(LOG_ERROR + 1), 0);
    memset(&v, 0, sizeof v);
    v.now = 1000;
    v.state = &w.state;
    v.leader = true;
    v.state_current = true;
    v.term = TERM;
    v.pg_ready = true;
    v.pg = w.in.pg;
    v.allowed = 1u << HA_ACT_FOLLOW;
    assert_false(core_tick(&c, &v));
    assert_int_equal(f.promotes, 0);
    assert_int_equal(c.last.action, HA_ACT_PROMOTE);
    assert_false(c.busy);
    v.allowed = 1u << HA_ACT_RECORD_PRIMARY | 1u << HA_ACT_PROMOTE;
    assert_true(core_tick(&c, &v));
    assert_int_equal(f.promotes, 1);
    core_action_done(&c, 0, NULL, 1010);
    /* Running as primary without leadership: the demotion waits for resume (the fence, which
     * runs whatever the mode, is what stops its writes). */
    v.now = 1100;
    v.leader = false;
    v.pg.in_recovery = false;
    assert_false(core_tick(&c, &v));
    assert_int_equal(c.last.action, HA_ACT_DEMOTE);
    assert_int_equal(f.stops, 0);
    v.allowed = 0;
    assert_true(core_tick(&c, &v));
    assert_int_equal(f.stops, 1);
}

/* A promote request made on an observation older than the promotion fails; if leadership is
 * lost meanwhile, the demotion must not wait out that failure's backoff: until it runs, two
 * servers accept writes (seed 1982 of raftpg_sim --nodes 5). */
static void test_core_demotes_at_once_after_another_action_failed(void **state)
{
    (void)state;
    struct world w;
    struct fake_io f;
    struct core_io io;
    struct core c;
    struct core_view v;
    core_after_failed_promote(&w, &f, &io, &c, &v);
    v.now = 1100;
    v.leader = false;
    v.pg.in_recovery = false;
    assert_true(core_tick(&c, &v));
    assert_int_equal(c.running, HA_ACT_DEMOTE);
    assert_int_equal(f.stops, 1);
}

static void test_core_failed_demotion_backs_off(void **state)
{
    (void)state;
    struct world w;
    struct fake_io f;
    struct core_io io;
    struct core c;
    struct core_view v;
    core_after_failed_promote(&w, &f, &io, &c, &v);
    v.now = 1100;
    v.leader = false;
    v.pg.in_recovery = false;
    assert_true(core_tick(&c, &v));
    core_action_done(&c, RPG_EIO, "pg_ctl stop: timed out", 1200);
    v.now = 1300;
    assert_false(core_tick(&c, &v));
    assert_int_equal(f.stops, 1);
    v.now = 1200 + CORE_RETRY_MS;
    assert_true(core_tick(&c, &v));
    assert_int_equal(f.stops, 2);
}

static unsigned fake_transfers;

static int fake_transfer(void *data, uint64_t id, char *errmsg)
{
    (void)data;
    (void)id;
    (void)errmsg;
    fake_transfers++;
    return 0;
}

/* libraft gives a leadership transfer up after an election timeout when its target ignored the
 * TimeoutNow (its log did not match the leader's yet): the leader asks again as soon as the
 * transfer ended, not a whole CORE_TRANSFER_RETRY_MS after the first request (seed 942191764674
 * of raftpg_sim --nodes 5: 2 s lost on a cascade that then missed the liveness budget). */
static void test_core_retries_a_failed_transfer_at_once(void **state)
{
    (void)state;
    struct world w;
    struct core_io io;
    struct core c;
    struct core_view v;
    struct peer_status reports[2];
    world_takeover(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.system_id = OTHER_SYSID;
    memset(reports, 0, sizeof reports);
    for (unsigned i = 0; i < 2; i++) {
        struct peer_status *r = &reports[i];
        set_str(r->name, sizeof r->name, i == 0 ? "node2" : "node3");
        snprintf(r->pg_address, sizeof r->pg_address, "10.0.0.%u:5432", i + 2);
        r->reachable = true;
        r->has_pg = true;
        r->last_seen = 1000;
        r->last_polled = 1000;
        r->pg_state = HA_PG_RUNNING;
        r->pg_in_recovery = true;
        r->pg_system_id = SYSID;
        r->pg_timeline = 1;
        r->pg_wal_position = i == 0 ? 1000 : 2000;
        r->failover_priority = 100;
    }
    memset(&io, 0, sizeof io);
    io.raft_transfer = fake_transfer;
    fake_transfers = 0;
    core_init(&c, &io, "node1", false, 100);
    log_setup("node1", (enum log_level)(LOG_ERROR + 1), 0);
    memset(&v, 0, sizeof v);
    v.now = 1000;
    v.state = &w.state;
    v.leader = true;
    v.state_current = true;
    v.term = TERM + 1;
    v.pg_ready = true;
    v.pg = w.in.pg;
    v.peers = reports;
    v.n_peers = 2;
    assert_true(core_tick(&c, &v));
    assert_int_equal(c.last.action, HA_ACT_TRANSFER);
    assert_string_equal(c.last.target, "node3");
    assert_int_equal(fake_transfers, 1);
    /* Still in flight as far as the core knows: no second request. */
    v.now = 1600;
    assert_false(core_tick(&c, &v));
    assert_int_equal(fake_transfers, 1);
    /* libraft ended it with this member still leader. */
    v.transfers_failed = 1;
    assert_true(core_tick(&c, &v));
    assert_int_equal(fake_transfers, 2);
    /* The new one is held back as the first was. */
    v.now = 1700;
    assert_false(core_tick(&c, &v));
    assert_int_equal(fake_transfers, 2);
    v.now = 1600 + CORE_TRANSFER_RETRY_MS;
    reports[0].last_seen = reports[1].last_seen = v.now;
    assert_true(core_tick(&c, &v));
    assert_int_equal(fake_transfers, 3);
}

static unsigned fake_starts;

static int fake_start(void *data, bool standby, const char *upstream, char *errmsg)
{
    (void)data;
    (void)standby;
    (void)upstream;
    (void)errmsg;
    fake_starts++;
    return 0;
}

/* The recorded primary whose server failed to start for the last time hands leadership over at
 * once: the transfer is the way out of the failed start, not a repeat of it, so the start's
 * backoff does not hold it (seed 370388727680 of raftpg_sim: the transfer waited 900 ms for
 * that backoff, the primary was paused meanwhile and the outage missed the liveness budget). */
static void test_core_hands_over_at_once_after_the_last_failed_start(void **state)
{
    (void)state;
    struct world w;
    struct core_io io;
    struct core c;
    struct core_view v;
    struct peer_status reports[2];
    world_primary(&w);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.start_failures = HA_START_FAILURES_MAX - 1;
    memset(reports, 0, sizeof reports);
    for (unsigned i = 0; i < 2; i++) {
        struct peer_status *r = &reports[i];
        set_str(r->name, sizeof r->name, i == 0 ? "node2" : "node3");
        snprintf(r->pg_address, sizeof r->pg_address, "10.0.0.%u:5432", i + 2);
        r->reachable = true;
        r->has_pg = true;
        r->last_seen = 1000;
        r->last_polled = 1000;
        r->pg_state = HA_PG_RUNNING;
        r->pg_in_recovery = true;
        r->pg_system_id = SYSID;
        r->pg_timeline = 1;
        r->pg_wal_position = i == 0 ? 2000 : 1000;
        r->failover_priority = 100;
    }
    memset(&io, 0, sizeof io);
    io.pg_start = fake_start;
    io.raft_transfer = fake_transfer;
    fake_starts = 0;
    fake_transfers = 0;
    core_init(&c, &io, "node1", false, 100);
    log_setup("node1", (enum log_level)(LOG_ERROR + 1), 0);
    memset(&v, 0, sizeof v);
    v.now = 1000;
    v.state = &w.state;
    v.leader = true;
    v.state_current = true;
    v.term = TERM;
    v.pg_ready = true;
    v.pg = w.in.pg;
    v.peers = reports;
    v.n_peers = 2;
    assert_true(core_tick(&c, &v));
    assert_int_equal(c.running, HA_ACT_START_PRIMARY);
    assert_int_equal(fake_starts, 1);
    core_action_done(&c, RPG_EIO, "pg_ctl start: server did not start", 1010);
    /* The next observation counts that failure: the start is given up for a transfer. */
    v.now = 1100;
    v.pg.start_failures = HA_START_FAILURES_MAX;
    assert_true(core_tick(&c, &v));
    assert_int_equal(c.last.action, HA_ACT_TRANSFER);
    assert_string_equal(c.last.target, "node2");
    assert_int_equal(fake_transfers, 1);
    /* The transfer backs off on its own, and a start would still wait for the start's. */
    v.now = 1200;
    assert_false(core_tick(&c, &v));
    assert_int_equal(fake_transfers, 1);
    v.pg.start_failures = HA_START_FAILURES_MAX - 1;
    assert_false(core_tick(&c, &v));
    assert_int_equal(c.last.action, HA_ACT_START_PRIMARY);
    assert_int_equal(fake_starts, 1);
}

/* Quorum mode, with k over the NULL-terminated voters recorded. */
static void record_sync(struct world *w, uint32_t k, const char *const *voters)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_SYNC;
    c.term = w->in.term;
    c.u.set_sync.k = k;
    for (unsigned i = 0; voters[i] != NULL; i++) {
        set_str(c.u.set_sync.voters[i], FSM_NAME_MAX, voters[i]);
        c.u.set_sync.n_voters++;
    }
    apply_ok(&w->state, &c);
    w->in.sync_mode = SYNC_MODE_QUORUM;
}

/* node1 took leadership from node2 in a switchover while node3, the other synchronous voter, was
 * away: node1 cannot prove it holds every acknowledged commit, node2 can (seed 2181 of
 * raftpg_sim: no primary for as long as node3 stayed away). */
static void world_switchover_with_voter_away(struct world *w)
{
    static const char *const voters[] = {"node1", "node3", NULL};
    world_takeover(w);
    record_sync(w, 1, voters);
    peer(w, "node2")->pg_state = HA_PG_STOPPED;
    peer(w, "node2")->in_recovery = false;
    peer(w, "node3")->reachable = false;
}

static void test_takeover_without_voters_hands_back_to_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_switchover_with_voter_away(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "cannot promote without risking acknowledged commits");
    assert_why(&w, "the recorded primary node2 holds them");
}

/* Leadership just moved here in a switchover: node3 answered before, its answer to the new
 * leader's poll is on its way. Handing leadership straight back to node2 would undo the
 * switchover; once node3's answer is in (or its poll failed), the choice is made on it. */
static void test_takeover_waits_for_a_voter_report_on_its_way(void **state)
{
    (void)state;
    struct world w;
    world_switchover_with_voter_away(&w);
    peer(&w, "node3")->reachable = true;
    peer(&w, "node3")->polled = false;
    peer(&w, "node3")->pg_state = HA_PG_RUNNING;
    peer(&w, "node3")->in_recovery = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for node3's report before handing over to the recorded primary node2");
    peer(&w, "node3")->reachable = false;
    peer(&w, "node3")->polled = true;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* Started again as a standby of its own data by a leadership it lost since, it still holds all
 * (seed 83 of raftpg_sim --faults timeline). */
static void test_takeover_without_voters_hands_back_to_recorded_primary_as_standby(void **state)
{
    (void)state;
    struct world w;
    world_switchover_with_voter_away(&w);
    peer(&w, "node2")->pg_state = HA_PG_RUNNING;
    peer(&w, "node2")->in_recovery = true;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

static void test_takeover_without_voters_waits_for_unreachable_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_switchover_with_voter_away(&w);
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "cannot promote without risking acknowledged commits");
}

/* A voter that answers while its server is stopped may hold the only copy of a commit, and
 * stopped it is no candidate: it is not heard until its server runs and reports its position
 * (raftpg_sim --seed 203 --faults watchdog lost acknowledged commits). */
static void test_stopped_voter_is_not_heard(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node3", NULL};
    struct world w;
    world_takeover(&w);
    record_sync(&w, 1, voters);
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->in_recovery = false;
    peer(&w, "node3")->wal_position = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "heard from 1 of the synchronous voters");
    peer(&w, "node3")->pg_state = HA_PG_RUNNING;
    peer(&w, "node3")->in_recovery = true;
    peer(&w, "node3")->wal_position = 900;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
}

/* Degraded (k = 0) proves nothing about the standbys; the recorded primary still holds all. */
static void test_degraded_takeover_hands_back_to_recorded_primary(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    struct world w;
    world_takeover(&w);
    record_sync(&w, 0, voters);
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* The recorded primary, leader again in a later term and running as a standby of its own data,
 * takes over without hearing the voters. */
static void test_recorded_primary_takes_over_without_voters(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_init(&w, "node1", SYSID);
    w.in.leader = true;
    w.in.term = TERM + 1;
    record_primary(&w, "node1", TERM, 2);
    record_sync(&w, 1, voters);
    w.in.pg.timeline = 2;
    w.in.pg.streaming = false;
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
    assert_why(&w, "the recorded primary holds every acknowledged commit");
    assert_int_equal(w.out.timeline, 3);
}

/* Recorded in TERM but never promoted (still on timeline 1, the record planned 2), the previous
 * primary meanwhile kept writing (its machine frozen with its clocks, then resumed) and node2,
 * whose receiver had not detached yet, received more: the record no longer proves that node1
 * holds every acknowledged commit, even by a report node2 sent before this leadership (seed
 * 126146216657 of raftpg_sim --nodes 5: one acknowledged commit lost). */
static void world_recorded_primary_behind(struct world *w)
{
    static const char *const voters[] = {"node2", "node3", NULL};
    world_init(w, "node1", SYSID);
    w->in.leader = true;
    w->in.term = TERM + 1;
    record_primary(w, "node1", TERM, 2);
    record_sync(w, 1, voters);
    w->in.pg.streaming = false;
    peer(w, "node2")->polled = false;
    peer(w, "node2")->wal_position = 1001;
    peer(w, "node3")->reachable = false;
}

static void test_recorded_primary_behind_a_member_does_not_take_over(void **state)
{
    (void)state;
    struct world w;
    world_recorded_primary_behind(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    assert_why(&w, "the recorded primary node1 is behind node2");
    /* Level with it, it takes over as before. */
    peer(&w, "node2")->wal_position = 1000;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
}

/* Nor is leadership handed back to a recorded primary that a member is known to be ahead of. */
static void test_no_hand_back_to_a_recorded_primary_behind(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node3", NULL};
    struct world w;
    world_takeover(&w);
    record_sync(&w, 1, voters);
    peer(&w, "node3")->reachable = false;
    w.in.pg.wal_position = 1001;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node1");
    assert_why(&w, "the recorded primary node2 is behind node1");
    w.in.pg.wal_position = 1000;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* Another member in the same place still waits for the voters. */
static void test_other_member_does_not_take_over_without_voters(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_init(&w, "node1", SYSID);
    w.in.leader = true;
    w.in.term = TERM + 1;
    record_primary(&w, "node2", TERM, 1);
    record_sync(&w, 1, voters);
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "cannot promote without risking acknowledged commits");
}

/* Degraded: nobody but the recorded primary may take over, so failed starts (a fence that
 * killed each start under a flapping lease, in raftpg_sim --seed 381 --faults timeline) do not
 * make it hand leadership to a member that can only wait. It keeps trying. */
static void test_sole_holder_failing_to_start_keeps_trying(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 0, voters);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
}

/* With the voters heard, another member may take over: the failing primary hands over. */
static void test_primary_failing_to_start_hands_over_when_voters_are_heard(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 1, voters);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* Storage faults: a primary that cannot write hands over once the bound has passed, to a
 * standby that holds every acknowledged commit, whatever state its server is in (a PANIC loop
 * looks like a server starting). */
static void test_unwritable_primary_hands_over_after_the_bound(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    static const enum ha_pg_state states[] = {HA_PG_RUNNING, HA_PG_STARTING, HA_PG_STOPPED};
    for (unsigned i = 0; i < 3; i++) {
        struct world w;
        world_primary(&w);
        record_sync(&w, 1, voters);
        w.in.pg.state = states[i];
        w.in.pg.was_primary = true;
        snprintf(w.in.pg.unwritable, sizeof w.in.pg.unwritable,
                 "the file system of /srv/pg/pg_wal has 0 bytes free");
        w.in.pg.unwritable_ms = HA_UNWRITABLE_BOUND_MS - 1;
        decide(&w);
        assert_int_not_equal(w.out.action, HA_ACT_TRANSFER);
        w.in.pg.unwritable_ms = HA_UNWRITABLE_BOUND_MS;
        decide(&w);
        assert_decision(&w, HA_ACT_TRANSFER, "node2");
        assert_why(&w, "postgresql cannot write for 10 s: the file system of /srv/pg/pg_wal");
    }
}

/* Nobody else may take over (k = 0 recorded): the unwritable primary stays and says why. */
static void test_unwritable_sole_holder_waits(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 0, voters);
    snprintf(w.in.pg.unwritable, sizeof w.in.pg.unwritable, "the agent cannot write x: EROFS");
    w.in.pg.unwritable_ms = HA_UNWRITABLE_BOUND_MS;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "no other member holds every acknowledged commit");
}

/* A standby whose server cannot write is never the one promoted, nor a leader that cannot. */
static void test_unwritable_members_are_not_promoted(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->wal_position = 2000;
    peer(&w, "node3")->unwritable = true;
    bool wait = false;
    char why[HA_WHY_MAX];
    const char *c = ha_choose_candidate(&w.in, true, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node1");
    w.in.pg.unwritable_ms = HA_UNWRITABLE_BOUND_MS;
    snprintf(w.in.pg.unwritable, sizeof w.in.pg.unwritable, "x");
    peer(&w, "node3")->unwritable = false;
    decide(&w);
    assert_int_not_equal(w.out.action, HA_ACT_RECORD_PRIMARY);
}

/* The crash window: only the latest HA_CRASHES_MAX times are kept, and only those within
 * HA_CRASH_WINDOW_MS before now count. */
static void test_crash_log_window(void **state)
{
    (void)state;
    struct ha_crash_log l;
    memset(&l, 0, sizeof l);
    assert_int_equal(ha_crash_count(&l, 1000), 0);
    ha_crash_note(&l, 1000);
    assert_int_equal(ha_crash_count(&l, 1000), 1);
    assert_int_equal(ha_crash_count(&l, 1000 + HA_CRASH_WINDOW_MS - 1), 1);
    assert_int_equal(ha_crash_count(&l, 1000 + HA_CRASH_WINDOW_MS), 0);
    ha_crash_note(&l, 20000);
    ha_crash_note(&l, 40000);
    assert_int_equal(ha_crash_count(&l, 40000), 3);
    /* Spread over more than the window: the oldest has left it. */
    assert_int_equal(ha_crash_count(&l, 61000), 2);
    /* A fourth replaces the oldest. */
    ha_crash_note(&l, 70000);
    assert_int_equal(l.n, 4);
    assert_int_equal(ha_crash_count(&l, 70000), 3);
    assert_int_equal(ha_crash_count(&l, 70000 + HA_CRASH_WINDOW_MS), 0);
    /* Many crashes long ago count for nothing; one now counts once. */
    for (unsigned i = 0; i < 10; i++) {
        ha_crash_note(&l, 100000 + i);
    }
    assert_int_equal(ha_crash_count(&l, 100009), 3);
    ha_crash_note(&l, 300000);
    assert_int_equal(ha_crash_count(&l, 300000), 1);
}

/* A primary that keeps crashing hands over once HA_CRASHES_MAX crashes fall in the window, in
 * whatever state its server is; one crash fewer only gets a restart. */
static void test_crashing_primary_hands_over(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    static const enum ha_pg_state states[] = {HA_PG_STOPPED, HA_PG_RUNNING, HA_PG_STARTING};
    for (unsigned i = 0; i < 3; i++) {
        struct world w;
        world_primary(&w);
        record_sync(&w, 1, voters);
        w.in.pg.state = states[i];
        w.in.pg.was_primary = true;
        w.in.pg.crashes = HA_CRASHES_MAX - 1;
        decide(&w);
        assert_int_not_equal(w.out.action, HA_ACT_TRANSFER);
        if (states[i] == HA_PG_STOPPED) {
            assert_decision(&w, HA_ACT_START_PRIMARY, "");
        }
        w.in.pg.crashes = HA_CRASHES_MAX;
        decide(&w);
        assert_decision(&w, HA_ACT_TRANSFER, "node2");
        assert_why(&w, "postgresql crashed or failed to start 3 times within 60 s");
    }
}

/* Nobody else may take over (k = 0 recorded), or no standby can be promoted: restarting is the
 * only way back to a primary, so the crashing primary is started again. */
static void test_crashing_primary_restarts_when_nobody_may_take_over(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 0, none);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.crashes = HA_CRASHES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");

    world_primary(&w);
    record_sync(&w, 1, voters);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.crashes = HA_CRASHES_MAX;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
}

/* primary_start_timeout's clock: armed by a primary that answers, counting from the first
 * observation after that in which the server is not one (stopped, not answering, in recovery),
 * reset by a primary that answers again and cleared whenever it may not count. */
static void test_down_clock(void **state)
{
    (void)state;
    struct ha_pg o;
    struct ha_down_clock c;
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    /* Not seen as a primary yet (a promotion under way): nothing counts. */
    o.state = HA_PG_RUNNING;
    o.in_recovery = true;
    ha_pg_track_down(&o, true, &c, 1000);
    assert_false(o.down);
    assert_int_equal(o.down_ms, 0);
    o.in_recovery = false;
    ha_pg_track_down(&o, true, &c, 1100);
    assert_false(o.down);
    assert_true(c.armed);
    /* Stops answering (SIGSTOP, a hang): counts from the first such observation. */
    o.state = HA_PG_STARTING;
    ha_pg_track_down(&o, true, &c, 2000);
    assert_true(o.down);
    assert_int_equal(o.down_ms, 0);
    o.state = HA_PG_STOPPED;
    ha_pg_track_down(&o, true, &c, 7000);
    assert_true(o.down);
    assert_int_equal(o.down_ms, 5000);
    /* Up again, but in recovery: still down, the same count. */
    o.state = HA_PG_RUNNING;
    o.in_recovery = true;
    ha_pg_track_down(&o, true, &c, 9000);
    assert_true(o.down);
    assert_int_equal(o.down_ms, 7000);
    /* A primary that answers resets it. */
    o.in_recovery = false;
    ha_pg_track_down(&o, true, &c, 9100);
    assert_false(o.down);
    assert_int_equal(o.down_ms, 0);
    o.state = HA_PG_STARTING;
    ha_pg_track_down(&o, true, &c, 9200);
    ha_pg_track_down(&o, true, &c, 9700);
    assert_true(o.down);
    assert_int_equal(o.down_ms, 500);
    /* Not counting (no longer the leader, a restart of its own, maintenance): cleared and
     * disarmed, so a server that never answered since does not count afterwards. */
    ha_pg_track_down(&o, false, &c, 9800);
    assert_false(o.down);
    assert_int_equal(o.down_ms, 0);
    assert_false(c.armed);
    ha_pg_track_down(&o, true, &c, 20000);
    assert_false(o.down);
    assert_int_equal(o.down_ms, 0);
}

/* The recorded primary whose server has been down for primary_start_timeout hands over to a
 * standby that holds every acknowledged commit, whatever state its server is in; a moment less
 * only gets the usual restart or wait. */
static void test_down_primary_hands_over_after_the_bound(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    static const enum ha_pg_state states[] = {HA_PG_STOPPED, HA_PG_STARTING, HA_PG_RUNNING};
    for (unsigned i = 0; i < 3; i++) {
        struct world w;
        world_primary(&w);
        record_sync(&w, 1, voters);
        w.in.primary_start_timeout_ms = 5000;
        w.in.pg.state = states[i];
        w.in.pg.in_recovery = states[i] == HA_PG_RUNNING;
        w.in.pg.was_primary = true;
        w.in.pg.down = true;
        w.in.pg.down_ms = 4999;
        decide(&w);
        assert_int_not_equal(w.out.action, HA_ACT_TRANSFER);
        if (states[i] == HA_PG_STOPPED) {
            assert_decision(&w, HA_ACT_START_PRIMARY, "");
        } else if (states[i] == HA_PG_STARTING) {
            assert_decision(&w, HA_ACT_WAIT, "");
        }
        w.in.pg.down_ms = 5000;
        decide(&w);
        assert_decision(&w, HA_ACT_TRANSFER, "node2");
        assert_why(&w, "postgresql has not run as a primary that accepts connections for 5.0 s, "
                       "primary_start_timeout is 5 s; node2 is furthest ahead");
    }
}

/* primary_start_timeout 0: at once, when another member may take over. */
static void test_down_primary_zero_bound_hands_over_at_once(void **state)
{
    (void)state;
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 1, voters);
    w.in.primary_start_timeout_ms = 0;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.down = false; /* a primary that answers: nothing to hand over */
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
    w.in.pg.down = true;
    w.in.pg.down_ms = 0;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* Past the bound but nobody else may take over (k = 0 recorded, or no standby can be promoted):
 * the primary is started again or waited for, as without the bound. */
static void test_down_primary_stays_when_nobody_may_take_over(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    static const char *const voters[] = {"node2", "node3", NULL};
    struct world w;
    world_primary(&w);
    record_sync(&w, 0, none);
    w.in.primary_start_timeout_ms = 5000;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.was_primary = true;
    w.in.pg.down = true;
    w.in.pg.down_ms = 60000;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");

    world_primary(&w);
    record_sync(&w, 1, voters);
    w.in.primary_start_timeout_ms = 5000;
    w.in.pg.state = HA_PG_STARTING;
    w.in.pg.was_primary = true;
    w.in.pg.down = true;
    w.in.pg.down_ms = 60000;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

/* Candidate choice: among members as far ahead, one whose server crashed HA_CRASHES_MAX times
 * within the window is passed over, whatever its priority or name; one further ahead is still
 * chosen (it may hold commits the others lack), and below HA_CRASHES_MAX it counts for nothing. */
static void test_candidate_passes_over_a_crashing_member(void **state)
{
    (void)state;
    struct world w;
    bool wait = false;
    char why[HA_WHY_MAX];
    world_takeover(&w);
    peer(&w, "node2")->failover_priority = 200;
    peer(&w, "node2")->crashes = HA_CRASHES_MAX;
    const char *c = ha_choose_candidate(&w.in, false, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node3");
    /* Self as good and not crashing wins over a crashing peer too. */
    c = ha_choose_candidate(&w.in, true, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node1");
    /* Self crashing, the peers as good: a peer that is not. */
    w.in.pg.crashes = HA_CRASHES_MAX;
    c = ha_choose_candidate(&w.in, true, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node3");
    /* Ahead of the others: chosen all the same. */
    peer(&w, "node2")->wal_position = 2000;
    c = ha_choose_candidate(&w.in, false, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node2");
    /* One crash fewer: the priority decides again. */
    peer(&w, "node2")->wal_position = 1000;
    peer(&w, "node2")->crashes = HA_CRASHES_MAX - 1;
    c = ha_choose_candidate(&w.in, false, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node2");
    /* Both crashing: as without crashes. */
    peer(&w, "node2")->crashes = HA_CRASHES_MAX;
    peer(&w, "node3")->crashes = HA_CRASHES_MAX;
    c = ha_choose_candidate(&w.in, false, &wait, why, sizeof why);
    assert_non_null(c);
    assert_string_equal(c, "node2");
}

/* A member whose agent answers under another Raft id than the cluster lists for its name (it
 * kept running through a remove and add) is not promoted. */
static void test_member_with_another_identity_is_not_promoted(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->wal_position = 2000;
    bool wait = false;
    char why[HA_WHY_MAX];
    const char *c = ha_choose_candidate(&w.in, true, &wait, why, sizeof why);
    assert_string_equal(c, "node3");
    peer(&w, "node3")->identity_mismatch = true;
    c = ha_choose_candidate(&w.in, true, &wait, why, sizeof why);
    assert_string_equal(c, "node1");
}

static void test_unwritable_tracking(void **state)
{
    (void)state;
    struct ha_pg o;
    memset(&o, 0, sizeof o);
    rpg_msec since = 0;
    ha_pg_track_unwritable(&o, "", &since, 1000);
    assert_int_equal(o.unwritable_ms, 0);
    ha_pg_track_unwritable(&o, "full: 10 bytes", &since, 2000);
    assert_int_equal(o.unwritable_ms, 0);
    ha_pg_track_unwritable(&o, "full: 9 bytes", &since, 5000);
    assert_int_equal(o.unwritable_ms, 3000);
    assert_string_equal(o.unwritable, "full: 9 bytes");
    ha_pg_track_unwritable(&o, "", &since, 6000);
    assert_int_equal(o.unwritable_ms, 0);
    assert_string_equal(o.unwritable, "");
    ha_pg_track_unwritable(&o, "again", &since, 7000);
    assert_int_equal(o.unwritable_ms, 0);
}

static void test_takeover_hands_back_to_failing_sole_holder(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    struct world w;
    world_takeover(&w);
    record_sync(&w, 0, voters);
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    peer(&w, "node2")->start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* Leader again in a later term, the failing sole holder starts to take over. */
static void test_failing_sole_holder_starts_in_a_later_term(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    struct world w;
    world_init(&w, "node1", SYSID);
    w.in.leader = true;
    w.in.term = TERM + 1;
    record_primary(&w, "node1", TERM, 1);
    record_sync(&w, 0, voters);
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    w.in.pg.start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    /* Another member with failed starts is no candidate, sole holder or not. */
    record_primary(&w, "node2", TERM, 1);
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

/* A leader whose own server failed its starts, a recorded synchronous voter whose WAL position
 * the quorum needs (the recorded primary gone): it starts its server as a standby all the same,
 * so that its position counts, and may not be promoted meanwhile. Before, it stopped trying and
 * waited for its own report for good (raftpg_sim --seed 968969564632 --nodes 3 --faults all
 * --watchdog). Not when its position is not needed, nor when its directory cannot be used. */
static void test_voter_failing_to_start_still_starts_for_the_quorum(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node3", NULL};
    struct world w;
    world_takeover(&w);
    record_sync(&w, 1, voters);
    peer(&w, "node2")->reachable = false;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.start_failures = HA_START_FAILURES_MAX;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    assert_non_null(strstr(w.out.why, "synchronous voter"));
    /* The recorded primary, stopped but reachable, holds every commit: it gets leadership back
     * (raftpg_sim --seed 440864417433 --nodes 5 --faults all --watchdog). */
    peer(&w, "node2")->reachable = true;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    peer(&w, "node2")->reachable = false;
    /* Heard without it (node2 and node3 voters): nothing to learn from it. */
    static const char *const others[] = {"node2", "node3", NULL};
    record_sync(&w, 1, others);
    peer(&w, "node2")->reachable = true;
    peer(&w, "node2")->pg_state = HA_PG_RUNNING;
    decide(&w);
    assert_int_not_equal(w.out.action, HA_ACT_START_STANDBY);
    /* A directory pg_rewind failed on is not started. */
    record_sync(&w, 1, voters);
    peer(&w, "node2")->reachable = false;
    w.in.pg.rewind_failed = true;
    decide(&w);
    assert_int_not_equal(w.out.action, HA_ACT_START_STANDBY);
}

/* Any other failure of the synchronous setting is an ordinary failure: backed off, not a stop. */
static void test_core_other_sync_setting_failure_backs_off(void **state)
{
    (void)state;
    struct world w;
    struct fake_io f;
    struct core_io io;
    struct core c;
    struct core_view v;
    core_after_failed_promote(&w, &f, &io, &c, &v);
    io.pg_set_sync = fake_set_sync;
    core_init(&c, &io, "node1", false, 100);
    v.now = 5000;
    assert_true(core_tick(&c, &v));
    core_action_done(&c, RPG_EIO, "pg_ctl reload: failed", 5010);
    assert_false(c.busy);
    assert_int_equal(f.stops, 0);
    v.now = 5100;
    assert_false(core_tick(&c, &v));
}

/* ---- Synchronous quorum, the acknowledged-WAL bound, re-pointing before promotion ---- */

/* ANY 1 (node1, node3) with node3 and the old primary unreachable: node3 alone may hold an
 * acknowledged commit. */
static void test_takeover_waits_for_the_recorded_quorum(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.sync_mode = SYNC_MODE_QUORUM;
    record_sync(&w, 1, (const char *const[]){"node1", "node3", NULL});
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "cannot promote without risking acknowledged commits");
}

static void test_takeover_proceeds_when_the_quorum_is_heard(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.sync_mode = SYNC_MODE_QUORUM;
    record_sync(&w, 1, (const char *const[]){"node1", "node3", NULL});
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
}

/* Degraded (k = 0) in quorum mode: only the old primary provably has every commit, and it is
 * unreachable (reachable, it gets leadership back: see the tests of the hand-back). */
static void test_takeover_waits_when_degraded_in_quorum_mode(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.sync_mode = SYNC_MODE_QUORUM;
    record_sync(&w, 0, (const char *const[]){"node1", "node3", NULL});
    peer(&w, "node2")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

static void test_takeover_in_mode_off_ignores_an_empty_record(void **state)
{
    (void)state;
    struct world w;
    world_takeover(&w);
    w.in.sync_mode = SYNC_MODE_OFF;
    decide(&w);
    assert_decision(&w, HA_ACT_RECORD_PRIMARY, "");
}

static void test_candidate_below_the_wal_bound_is_not_chosen(void **state)
{
    (void)state;
    struct world w;
    struct fsm_cmd c;
    world_takeover(&w);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_WAL_BOUND;
    c.term = TERM;
    c.u.set_wal_bound.position = 1500;
    c.u.set_wal_bound.timeline = 1;
    apply_ok(&w.state, &c);
    peer(&w, "node2")->reachable = false;
    peer(&w, "node3")->wal_position = 1400;
    w.in.pg.wal_position = 1200;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "no member can be promoted");
    peer(&w, "node3")->wal_position = 1600;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
}

/* node1 recorded as primary in the current term and still a standby; node2 was the primary
 * with ANY 1 (node1, node3); node3 is told to follow node1. */
static void world_recorded_standby(struct world *w)
{
    static const char *const voters[] = {"node1", "node3", NULL};
    world_init(w, "node1", SYSID);
    w->in.leader = true;
    w->in.pg_address = "10.0.0.1:5432";
    record_sync(w, 1, voters);
    record_primary(w, "node1", TERM, 1);
    peer(w, "node2")->reachable = false;
    peer(w, "node3")->streaming = true;
    set_str(peer(w, "node3")->upstream, FSM_NAME_MAX, "node1");
}

/* Told to follow node1 (its configuration says so), but its WAL receiver still streams from
 * node2 and could acknowledge node2's commits: node1 waits, however long it has led. */
static void test_promotion_waits_while_a_voter_still_streams_from_the_old_primary(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    w.in.leader_ms = 60000;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "waiting before promoting: the WAL receiver of node3 still streams from "
                   "10.0.0.2:5432");
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, HA_RECEIVER_UNKNOWN);
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "waiting before promoting: the WAL receiver of node3 is connecting to an "
                   "unknown sender");
}

static void test_promotion_goes_ahead_once_the_voter_streams_from_the_candidate(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.1:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* A voter without a WAL receiver now (reconnecting) starts one where its primary_conninfo points:
 * at the old primary, it could still acknowledge its commits. */
static void
test_promotion_waits_for_a_reconnecting_voter_configured_for_the_old_primary(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node3")->streaming = false;
    set_str(peer(&w, "node3")->conninfo, FSM_ADDR_MAX, "10.0.0.2:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "waiting before promoting: the WAL receiver of node3 is not running and would "
                   "reconnect to 10.0.0.2:5432");
    set_str(peer(&w, "node3")->conninfo, FSM_ADDR_MAX, "10.0.0.1:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* A voter cascading from a standby passes no acknowledgement on to any primary. */
static void test_promotion_goes_ahead_when_the_voter_streams_from_a_standby(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node2")->reachable = true;
    set_str(peer(&w, "node2")->pg_address, FSM_ADDR_MAX, "10.0.0.2:5432");
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    peer(&w, "node2")->in_recovery = false; /* a primary: its receiver acknowledges to it */
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
}

static void test_promotion_goes_ahead_when_the_voter_has_no_receiver_or_is_stopped(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node3")->streaming = false;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    world_recorded_standby(&w);
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    peer(&w, "node3")->pg_state = HA_PG_STOPPED;
    peer(&w, "node3")->in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* An unreachable voter cannot be shown detached: with k = 1 every other voter must be. */
static void test_promotion_waits_for_an_unreachable_voter(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node3")->reachable = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "waiting before promoting: no report from node3 since this member became "
                   "leader");
}

/* A voter whose server is starting may come up streaming from anywhere. */
static void test_promotion_waits_for_a_starting_voter(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node3")->pg_state = HA_PG_STARTING;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
}

/* The second fence guards against the previous primary: when that was this member itself (it
 * took over again, its server now a standby), nothing holds the promotion back. When the previous
 * primary verifiably accepts no writes, a voter needs no detaching, but its position must come
 * from a poll started after that: until then, an unreachable voter holds the promotion back. */
static void test_promotion_needs_no_detach_when_the_previous_primary_cannot_write(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    peer(&w, "node3")->reachable = false;
    w.in.prev_primary = "node1";
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    w.in.prev_primary = "node2";
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3"); /* node2 unreachable: it may still write */
    peer(&w, "node2")->reachable = true;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3"); /* node3's position after node2 stopped unknown */
    assert_why(&w, "no report from node3 since node2 stopped accepting writes");
    peer(&w, "node3")->reachable = true;
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    peer(&w, "node3")->after_prev_quiet = true;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    peer(&w, "node2")->pg_state = HA_PG_RUNNING; /* a running primary: the fence is needed */
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
}

/* The previous primary, frozen with its clocks, resumed and had node3 acknowledge one more commit
 * before its agent stopped it. node3's report from before holds an older position: only one to a
 * poll started after node2 was seen stopped shows what it holds, and there it is further ahead
 * (raftpg_sim --seed 603811464079 --nodes 3 --faults all --watchdog --keep 0,1,2). */
static void
test_promotion_reads_voter_positions_made_after_the_previous_primary_stopped(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    w.in.prev_primary = "node2";
    peer(&w, "node2")->reachable = true;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "waiting before promoting: no report from node3 since node2 stopped accepting "
                   "writes (it may hold commits that primary acknowledged last)");
    peer(&w, "node3")->after_prev_quiet = true;
    peer(&w, "node3")->wal_position = 1001;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    peer(&w, "node3")->wal_position = 1000;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    /* Detached, its report shows all it received from node2, however early it was asked. */
    peer(&w, "node3")->after_prev_quiet = false;
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.1:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* The primary recorded before this member (node3) never promoted: it wrote nothing, and the last
 * member seen running as primary (node2, frozen with its clocks) may still have node3, which
 * streams from it, acknowledge its commits. node3's quiet state proves nothing then
 * (raftpg_sim --seed 897523280553 --nodes 3 --faults all --watchdog --keep 0,1 lost a commit). */
static void test_promotion_fences_the_last_writer_too(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    w.in.prev_primary = "node3";
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    peer(&w, "node3")->after_prev_quiet = true;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, ""); /* nobody else seen writing */
    w.in.last_writer = "node2";
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node3");
    assert_why(&w, "the WAL receiver of node3 still streams from 10.0.0.2:5432");
    /* node2 answers that it is stopped: the shortcut holds again. */
    peer(&w, "node2")->reachable = true;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
    /* This member itself was the last writer: only prev counts. */
    peer(&w, "node2")->reachable = false;
    w.in.last_writer = "node1";
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* node2, the previous primary, stopped; node3, a voter, a running standby still streaming from
 * node2 at node1's WAL position; both reports from a poll started at polled. */
static void reports_after_takeover(const struct world *w, struct peer_status reports[2],
                                   rpg_msec polled)
{
    memset(reports, 0, 2 * sizeof *reports);
    for (unsigned i = 0; i < 2; i++) {
        struct peer_status *r = &reports[i];
        set_str(r->name, sizeof r->name, i == 0 ? "node2" : "node3");
        snprintf(r->pg_address, sizeof r->pg_address, "10.0.0.%u:5432", i + 2);
        r->reachable = true;
        r->has_pg = true;
        r->last_polled = polled;
        r->last_seen = polled + 10;
        r->pg_system_id = SYSID;
        r->pg_timeline = 1;
        r->failover_priority = 100;
    }
    reports[0].pg_state = HA_PG_STOPPED;
    reports[1].pg_state = HA_PG_RUNNING;
    reports[1].pg_in_recovery = true;
    reports[1].pg_streaming = true;
    set_str(reports[1].pg_receiver, sizeof reports[1].pg_receiver, "10.0.0.2:5432");
    reports[1].pg_wal_position = w->in.pg.wal_position;
}

/* The core tells which voter reports answer polls started after the previous primary was first
 * seen accepting no writes: node3's report from before node2 stopped holds the promotion back, a
 * later one shows the commit node2 had it acknowledge last, and node3 takes over. */
static void test_core_reads_voters_polled_after_the_previous_primary_stopped(void **state)
{
    (void)state;
    struct world w;
    struct core_io io;
    struct core c;
    struct core_view v;
    struct peer_status reports[2];
    world_recorded_standby(&w);
    reports_after_takeover(&w, reports, 990);
    memset(&io, 0, sizeof io);
    io.raft_transfer = fake_transfer;
    fake_transfers = 0;
    core_init(&c, &io, "node1", false, 100);
    snprintf(c.prev_primary, sizeof c.prev_primary, "node2");
    c.prev_primary_term = TERM;
    memset(&v, 0, sizeof v);
    v.now = 900; /* leader since: the reports below answer polls started later */
    v.state = &w.state;
    v.leader = true;
    v.state_current = true;
    v.term = TERM;
    v.pg_ready = true;
    v.pg = w.in.pg;
    v.peers = reports;
    v.n_peers = 2;
    (void)core_tick(&c, &v);
    v.now = 1000;
    (void)core_tick(&c, &v);
    assert_int_equal(c.last.action, HA_ACT_WAIT);
    assert_string_equal(c.last.target, "node3");
    assert_non_null(strstr(c.last.why, "no report from node3 since node2 stopped"));
    /* Polled again: node2 still stopped, node3 one commit further. */
    for (unsigned i = 0; i < 2; i++) {
        reports[i].last_polled = 1050;
        reports[i].last_seen = 1060;
    }
    reports[1].pg_wal_position = w.in.pg.wal_position + 1;
    v.now = 1060;
    assert_true(core_tick(&c, &v));
    assert_int_equal(c.last.action, HA_ACT_TRANSFER);
    assert_string_equal(c.last.target, "node3");
    assert_int_equal(fake_transfers, 1);
}

/* The recorded primary, its server stopped, leads Raft again in a later term but still waits out
 * the previous leader's lease: it starts its server as a standby of nobody meanwhile, which
 * writes nothing, so that it knows its WAL position when it may act. As a plain follower, or with
 * a failed pg_rewind, it keeps waiting. */
static void test_waiting_leader_starts_its_stopped_server_as_a_standby(void **state)
{
    (void)state;
    struct world w;
    world_init(&w, "node1", SYSID);
    record_primary(&w, "node1", TERM, 1);
    w.in.term = TERM + 2;
    w.in.pg.state = HA_PG_STOPPED;
    w.in.pg.in_recovery = false;
    w.in.pg.was_primary = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for a primary to be chosen");
    w.in.leader_waiting = true;
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    assert_why(&w, "waiting out the previous leader's lease: starting as a standby meanwhile");
    w.in.pg.rewind_failed = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    w.in.pg.rewind_failed = false;
    w.in.nofailover = true; /* it will not take over: nothing to learn */
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    /* Recorded in this term (its lease lapsed and came back): it starts as the primary it was
     * once it acts, never as a standby that a promotion would take to an unrecorded timeline. */
    w.in.nofailover = false;
    w.in.term = TERM;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
}

/* The run of quiet reports may begin before this leadership: a voter polled after its start holds
 * whatever the previous primary had it acknowledge. A report of that primary writable breaks the
 * run, even one seen while an action was under way, and the next run starts afresh. */
static void test_core_quiet_run_of_the_previous_primary(void **state)
{
    (void)state;
    struct world w;
    struct core_io io;
    struct core c;
    struct core_view v;
    struct peer_status reports[2];
    world_recorded_standby(&w);
    reports_after_takeover(&w, reports, 490);
    reports[1].last_polled = 700;
    reports[1].last_seen = 710;
    struct fake_io f;
    memset(&f, 0, sizeof f);
    memset(&io, 0, sizeof io);
    io.data = &f;
    io.pg_promote = fake_promote;
    io.pg_set_sync = fake_set_sync;
    io.pg_sync_slots = fake_sync_slots;
    core_init(&c, &io, "node1", false, 100);
    snprintf(c.prev_primary, sizeof c.prev_primary, "node2");
    c.prev_primary_term = TERM;
    memset(&v, 0, sizeof v);
    v.now = 600; /* busy: the run is noted all the same */
    v.state = &w.state;
    v.term = TERM;
    v.peers = reports;
    v.n_peers = 2;
    c.busy = true;
    (void)core_tick(&c, &v);
    assert_int_equal(c.quiet[0].since, 500);
    c.busy = false;
    v.now = 900;
    v.leader = true;
    v.state_current = true;
    v.pg_ready = true;
    v.pg = w.in.pg;
    (void)core_tick(&c, &v); /* leader since 900 */
    /* node2's current state confirmed since: node3's report from 700 is after the run began. */
    reports[0].last_polled = 950;
    reports[0].last_seen = 960;
    v.now = 1000;
    (void)core_tick(&c, &v);
    assert_int_equal(c.quiet[0].since, 500);
    assert_int_equal(c.last.action, HA_ACT_PROMOTE);
    core_action_done(&c, 0, NULL, 1000); /* the fake's steps end at once */
    core_action_done(&c, 0, NULL, 1000);
    core_action_done(&c, 0, NULL, 1000);
    /* node2 writable once: the run ends; quiet again, it starts at the new report. */
    c.busy = true;
    reports[0].pg_state = HA_PG_RUNNING;
    reports[0].last_polled = 1010;
    reports[0].last_seen = 1020;
    v.now = 1030;
    (void)core_tick(&c, &v);
    assert_int_equal(c.quiet[0].since, 0);
    c.busy = false;
    reports[0].pg_state = HA_PG_STOPPED;
    reports[0].last_polled = 1040;
    reports[0].last_seen = 1050;
    v.now = 1060;
    (void)core_tick(&c, &v);
    assert_int_equal(c.quiet[0].since, 1050);
    assert_int_equal(c.last.action, HA_ACT_WAIT);
    assert_string_equal(c.last.target, "node3");
}

/* The core remembers the last other member a report showed running as primary, and a voter's
 * report must come after that member's quiet run began too. */
static void test_core_remembers_the_last_writer(void **state)
{
    (void)state;
    struct world w;
    struct core_io io;
    struct core c;
    struct core_view v;
    struct peer_status reports[2];
    world_recorded_standby(&w);
    memset(reports, 0, sizeof reports);
    for (unsigned i = 0; i < 2; i++) {
        struct peer_status *r = &reports[i];
        set_str(r->name, sizeof r->name, i == 0 ? "node2" : "node3");
        r->reachable = true;
        r->has_pg = true;
        r->pg_state = HA_PG_RUNNING;
        r->pg_in_recovery = i == 1;
        r->last_polled = 90;
        r->last_seen = 100;
    }
    memset(&io, 0, sizeof io);
    core_init(&c, &io, "node1", false, 100);
    memset(&v, 0, sizeof v);
    v.now = 100;
    v.state = &w.state;
    v.term = TERM;
    v.peers = reports;
    v.n_peers = 2;
    (void)core_tick(&c, &v);
    assert_string_equal(c.last_writer, "node2");
    assert_string_equal(c.quiet[1].name, "node2");
    assert_int_equal(c.quiet[1].since, 0);
    /* node2 stopped: its run begins; it stays the last writer. */
    reports[0].pg_state = HA_PG_STOPPED;
    reports[0].last_polled = 190;
    reports[0].last_seen = 200;
    v.now = 200;
    (void)core_tick(&c, &v);
    assert_string_equal(c.last_writer, "node2");
    assert_int_equal(c.quiet[1].since, 200);
    /* node3 promoted: it is the last writer now. */
    reports[1].pg_in_recovery = false;
    reports[1].last_polled = 290;
    reports[1].last_seen = 300;
    v.now = 300;
    (void)core_tick(&c, &v);
    assert_string_equal(c.last_writer, "node3");
    /* This member's own server running as primary makes every writer before it moot. */
    reports[1].pg_in_recovery = true;
    v.pg.state = HA_PG_RUNNING;
    v.pg.in_recovery = false;
    v.now = 400;
    (void)core_tick(&c, &v);
    assert_string_equal(c.last_writer, "node1");
    assert_string_equal(c.quiet[1].name, "");
}

/* A promotion asked for and not observed done is not asked for again. */
static void test_promotion_is_asked_for_once(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.1:5432");
    w.in.pg.promoting = true;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "waiting for the promotion to complete");
}

/* Just before promoting, a voter that received more WAL since the choice takes over. */
static void test_promotion_hands_over_to_a_standby_that_got_ahead(void **state)
{
    (void)state;
    struct world w;
    world_recorded_standby(&w);
    set_str(peer(&w, "node3")->receiver, FSM_ADDR_MAX, "10.0.0.1:5432");
    peer(&w, "node3")->wal_position = 1200;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node3");
    assert_why(&w, "node3 received more WAL than this member (timeline 1 position 1200 against "
                   "timeline 1 position 1000): it becomes the primary");
    peer(&w, "node3")->nofailover = true;
    decide(&w);
    assert_decision(&w, HA_ACT_PROMOTE, "");
}

/* A standby re-pointed at node2 whose WAL receiver still streams from node3 after the bound is
 * stopped (it starts again as node2's standby); before the bound it is left to restart alone. */
static void test_follower_restarts_when_its_receiver_stays_on_the_old_primary(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    set_str(peer(&w, "node2")->pg_address, FSM_ADDR_MAX, "10.0.0.2:5432");
    set_str(w.in.pg.receiver, FSM_ADDR_MAX, "10.0.0.3:5432");
    w.in.pg.receiver_ms = HA_DETACH_BOUND_MS - 1;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
    w.in.pg.receiver_ms = HA_DETACH_BOUND_MS;
    decide(&w);
    assert_decision(&w, HA_ACT_DEMOTE, "node2");
    assert_why(&w, "the WAL receiver still streams from 10.0.0.3:5432 1500 ms after re-pointing "
                   "to node2: stopping to start as its standby");
    set_str(w.in.pg.receiver, FSM_ADDR_MAX, "10.0.0.2:5432");
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "node2");
}

static void test_observer_counts_the_receiver_afresh_from_a_repoint(void **state)
{
    (void)state;
    struct ha_pg o;
    rpg_msec since = 0;
    memset(&o, 0, sizeof o);
    ha_pg_track_receiver(&o, "10.0.0.2:5432", &since, 1000);
    assert_int_equal(o.receiver_ms, 0);
    ha_pg_track_receiver(&o, "10.0.0.2:5432", &since, 3000);
    assert_int_equal(o.receiver_ms, 2000);
    since = 0; /* a re-point */
    ha_pg_track_receiver(&o, "10.0.0.2:5432", &since, 3500);
    assert_int_equal(o.receiver_ms, 0);
    ha_pg_track_receiver(&o, "10.0.0.3:5432", &since, 3600);
    assert_string_equal(o.receiver, "10.0.0.3:5432");
    assert_int_equal(o.receiver_ms, 0);
    ha_pg_track_receiver(&o, "10.0.0.3:5432", &since, 3700);
    assert_int_equal(o.receiver_ms, 100);
}

/* A follower re-points to the recorded primary even before it is promoted (cascading). */
static void test_follower_follows_a_recorded_primary_still_in_recovery(void **state)
{
    (void)state;
    struct world w;
    world_follower(&w);
    peer(&w, "node2")->in_recovery = true;
    set_str(w.in.pg.upstream, FSM_NAME_MAX, "node3");
    decide(&w);
    assert_decision(&w, HA_ACT_FOLLOW, "node2");
}

static void test_observer_tracks_how_long_a_standby_has_not_streamed(void **state)
{
    (void)state;
    struct ha_pg o;
    memset(&o, 0, sizeof o);
    rpg_msec since = 0;
    o.state = HA_PG_RUNNING;
    o.in_recovery = true;
    o.streaming = false;
    ha_pg_track_streaming(&o, &since, 1000);
    assert_int_equal(since, 1000);
    assert_int_equal(o.not_streaming_ms, 0);
    ha_pg_track_streaming(&o, &since, 1750);
    assert_int_equal(o.not_streaming_ms, 750);
    o.streaming = true;
    ha_pg_track_streaming(&o, &since, 1800);
    assert_int_equal(since, 0);
    assert_int_equal(o.not_streaming_ms, 0);
    o.streaming = false;
    ha_pg_track_streaming(&o, &since, 1900);
    o.wal_position = 42;
    o.n_slots = 1;
    ha_pg_set_not_running(&o, HA_PG_STOPPED, &since);
    assert_int_equal(since, 0);
    assert_int_equal(o.state, HA_PG_STOPPED);
    assert_false(o.in_recovery);
    assert_int_equal(o.wal_position, 0);
    assert_int_equal(o.n_slots, 0);
}

/* node1, the killed primary restarted, became the Raft leader while its pg_rewind was backing off
 * (it stopped before changing anything); node2, recorded primary on timeline 2, stopped accepting
 * writes once it lost the leadership and runs as a standby. node1's directory last ran as primary
 * on timeline 1 and may hold WAL past the fork. */
static void world_leader_in_rewind_back_off(struct world *w)
{
    world_takeover(w);
    record_primary(w, "node2", TERM, 2);
    peer(w, "node2")->timeline = 2;
    peer(w, "node3")->timeline = 2;
    w->in.pg.state = HA_PG_STOPPED;
    w->in.pg.in_recovery = false;
    w->in.pg.streaming = false;
    w->in.pg.was_primary = true;
    w->in.pg.timeline = 1;
    w->in.pg.wal_position = 0;
    w->in.pg.rewind_retries = 1;
    w->in.pg.rewind_retry_ms = 800;
}

/* It starts as a standby of nobody to learn its WAL position, never as a primary: started so it
 * replays its own WAL, and PostgreSQL refuses to stream a timeline that forked before its end of
 * WAL, so what went past the fork is found (past-fork or cannot-follow) and rewound later. */
static void test_leader_in_rewind_back_off_starts_former_primary_as_standby(void **state)
{
    (void)state;
    struct world w;
    world_leader_in_rewind_back_off(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_START_STANDBY, "");
    assert_why(&w, "to learn the wal position");
}

/* Running, with more WAL than anyone on its old timeline, it is not promoted: a member on the
 * recorded primary's newer timeline wins the choice (WAL past a fork is history the new primary
 * never had), so no acknowledged commit of timeline 2 is lost. */
static void test_leader_with_wal_past_the_fork_hands_over_to_newer_timeline(void **state)
{
    (void)state;
    struct world w;
    world_leader_in_rewind_back_off(&w);
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.in_recovery = true;
    w.in.pg.wal_position = 5000;
    decide(&w);
    assert_int_not_equal(w.out.action, HA_ACT_RECORD_PRIMARY);
    assert_int_not_equal(w.out.action, HA_ACT_PROMOTE);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
}

/* The same leader once its start as a standby of nobody ran, with the recorded primary node2
 * back and stopped (its node was killed) and node3, the synchronous voter, ahead of node1 but
 * tagged nofailover: nobody may be promoted, and node2's data holds every acknowledged commit:
 * leadership goes to node2 so that it starts again (the cluster waited for ever without a
 * primary). While a member has not reported yet it waits. */
static void test_leader_superseded_rejoin_hands_to_stopped_recorded_primary(void **state)
{
    (void)state;
    struct world w;
    world_leader_in_rewind_back_off(&w);
    static const char *const voters[] = {"node3", NULL};
    record_sync(&w, 1, voters);
    w.in.pg.state = HA_PG_RUNNING;
    w.in.pg.in_recovery = true;
    w.in.pg.wal_position = 900;
    peer(&w, "node2")->pg_state = HA_PG_STOPPED;
    peer(&w, "node2")->in_recovery = false;
    peer(&w, "node3")->nofailover = true;
    peer(&w, "node3")->wal_position = 2000;
    decide(&w);
    assert_decision(&w, HA_ACT_TRANSFER, "node2");
    assert_why(&w, "synchronous voter node3 is further ahead");
    assert_why(&w, "the recorded primary node2 is stopped: handing over so that it starts again (");
    /* node3 not heard yet: its report could show anything. */
    peer(&w, "node3")->polled = false;
    decide(&w);
    assert_decision(&w, HA_ACT_WAIT, "");
    assert_why(&w, "node3's report");
}

/* pg_rewind's back-off ends when the server streams as a standby again, also after a plain start
 * that superseded the rejoin; not while it only starts, replays alone or sits past a fork. */
static void test_streaming_standby_ends_the_rewind_back_off(void **state)
{
    (void)state;
    struct ha_pg o;
    memset(&o, 0, sizeof o);
    rpg_msec retry_at = 5000;
    o.rewind_retries = 3;
    o.rewind_retry_ms = 4000;
    o.state = HA_PG_STARTING;
    assert_false(ha_pg_track_rewind_retries(&o, &retry_at));
    o.state = HA_PG_RUNNING;
    o.in_recovery = true;
    o.streaming = false; /* replaying its own WAL, no primary yet */
    assert_false(ha_pg_track_rewind_retries(&o, &retry_at));
    o.streaming = true;
    o.past_fork_ms = 400; /* its receiver streams up to the fork and starts again */
    assert_false(ha_pg_track_rewind_retries(&o, &retry_at));
    assert_int_equal(o.rewind_retries, 3);
    assert_int_equal(retry_at, 5000);
    o.in_recovery = false; /* a primary */
    o.streaming = false;
    o.past_fork_ms = 0;
    assert_false(ha_pg_track_rewind_retries(&o, &retry_at));
    o.in_recovery = true;
    o.streaming = true;
    assert_true(ha_pg_track_rewind_retries(&o, &retry_at));
    assert_int_equal(o.rewind_retries, 0);
    assert_int_equal(o.rewind_retry_ms, 0);
    assert_int_equal(retry_at, 0);
    /* Nothing left to clear: nothing to report. */
    assert_false(ha_pg_track_rewind_retries(&o, &retry_at));
}

/* A peer's reported state word is parsed once, at the JSON boundary: every name round-trips,
 * anything else (a newer agent's word, none at all) is unknown. */
static void test_pg_state_names_parse_back(void **state)
{
    (void)state;
    for (int st = HA_PG_UNKNOWN; st <= HA_PG_RUNNING; st++) {
        assert_int_equal(ha_pg_state_parse(ha_pg_state_name((enum ha_pg_state)st)), st);
    }
    assert_string_equal(ha_pg_state_name(HA_PG_RUNNING), "running");
    assert_int_equal(ha_pg_state_parse("Running"), HA_PG_UNKNOWN);
    assert_int_equal(ha_pg_state_parse("promoting"), HA_PG_UNKNOWN);
    assert_int_equal(ha_pg_state_parse(""), HA_PG_UNKNOWN);
    assert_int_equal(ha_pg_state_parse(NULL), HA_PG_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takeover_waits_for_the_recorded_quorum),
        cmocka_unit_test(test_takeover_proceeds_when_the_quorum_is_heard),
        cmocka_unit_test(test_takeover_waits_when_degraded_in_quorum_mode),
        cmocka_unit_test(test_takeover_in_mode_off_ignores_an_empty_record),
        cmocka_unit_test(test_candidate_below_the_wal_bound_is_not_chosen),
        cmocka_unit_test(test_promotion_waits_while_a_voter_still_streams_from_the_old_primary),
        cmocka_unit_test(test_promotion_goes_ahead_once_the_voter_streams_from_the_candidate),
        cmocka_unit_test(test_promotion_goes_ahead_when_the_voter_has_no_receiver_or_is_stopped),
        cmocka_unit_test(test_promotion_goes_ahead_when_the_voter_streams_from_a_standby),
        cmocka_unit_test(
            test_promotion_waits_for_a_reconnecting_voter_configured_for_the_old_primary),
        cmocka_unit_test(test_promotion_waits_for_an_unreachable_voter),
        cmocka_unit_test(test_promotion_waits_for_a_starting_voter),
        cmocka_unit_test(test_promotion_needs_no_detach_when_the_previous_primary_cannot_write),
        cmocka_unit_test(
            test_promotion_reads_voter_positions_made_after_the_previous_primary_stopped),
        cmocka_unit_test(test_promotion_is_asked_for_once),
        cmocka_unit_test(test_waiting_leader_starts_its_stopped_server_as_a_standby),
        cmocka_unit_test(test_promotion_hands_over_to_a_standby_that_got_ahead),
        cmocka_unit_test(test_follower_restarts_when_its_receiver_stays_on_the_old_primary),
        cmocka_unit_test(test_observer_counts_the_receiver_afresh_from_a_repoint),
        cmocka_unit_test(test_follower_follows_a_recorded_primary_still_in_recovery),
        cmocka_unit_test(test_pg_state_names_parse_back),
        cmocka_unit_test(test_slot_name_is_raftpg_and_member_id),
        cmocka_unit_test(test_slot_name_of_largest_id),
        cmocka_unit_test(test_decide_waits_when_state_not_initialised),
        cmocka_unit_test(test_decide_waits_when_state_missing),
        cmocka_unit_test(test_decide_waits_when_pg_not_observed),
        cmocka_unit_test(test_foreign_system_running_primary_demotes),
        cmocka_unit_test(test_foreign_system_leader_transfers_to_best_peer),
        cmocka_unit_test(test_foreign_system_leader_waits_without_promotable_peer),
        cmocka_unit_test(test_foreign_system_follower_refuses_naming_both_identifiers),
        cmocka_unit_test(test_bootstrap_absent_initialises),
        cmocka_unit_test(test_bootstrap_stopped_starts_read_only),
        cmocka_unit_test(test_bootstrap_running_standby_promotes),
        cmocka_unit_test(test_bootstrap_hands_over_to_a_member_further_ahead),
        cmocka_unit_test(test_bootstrap_furthest_ahead_promotes),
        cmocka_unit_test(test_bootstrap_waits_for_every_member_report),
        cmocka_unit_test(test_bootstrap_without_data_hands_over_to_a_member_with_data),
        cmocka_unit_test(test_bootstrap_data_of_two_systems_waits),
        cmocka_unit_test(test_bootstrap_follower_starts_existing_directory_read_only),
        cmocka_unit_test(test_bootstrap_running_primary_records_system_and_timeline),
        cmocka_unit_test(test_bootstrap_running_primary_waits_for_system_identifier),
        cmocka_unit_test(test_bootstrap_nofailover_leader_transfers_to_eligible_peer),
        cmocka_unit_test(test_bootstrap_nofailover_leader_waits_without_eligible_peer),
        cmocka_unit_test(test_primary_in_recovery_promotes),
        cmocka_unit_test(test_primary_records_changed_timeline),
        cmocka_unit_test(test_primary_syncs_slots_when_one_is_missing),
        cmocka_unit_test(test_primary_syncs_slots_when_one_is_extra),
        cmocka_unit_test(test_primary_syncs_slots_when_it_has_its_own),
        cmocka_unit_test(test_primary_syncs_slots_named_after_member_names),
        cmocka_unit_test(test_primary_waits_when_all_is_in_place),
        cmocka_unit_test(test_primary_slots_in_any_order_match),
        cmocka_unit_test(test_primary_stopped_starts_primary),
        cmocka_unit_test(test_recorded_primary_with_standby_data_starts_as_standby),
        cmocka_unit_test(test_primary_failing_to_start_transfers_leadership),
        cmocka_unit_test(test_primary_without_data_transfers_leadership),
        cmocka_unit_test(test_primary_starting_waits),
        cmocka_unit_test(test_takeover_reelected_primary_records_itself),
        cmocka_unit_test(test_takeover_running_primary_of_other_recorded_member_demotes),
        cmocka_unit_test(test_takeover_waits_while_previous_primary_accepts_writes),
        cmocka_unit_test(test_takeover_proceeds_when_previous_primary_unreachable),
        cmocka_unit_test(test_takeover_stopped_starts_standby),
        cmocka_unit_test(test_takeover_transfers_to_peer_ahead),
        cmocka_unit_test(test_promote_asks_for_the_recorded_timeline),
        cmocka_unit_test(test_takeover_records_self_when_best),
        cmocka_unit_test(test_takeover_waits_for_unpolled_member),
        cmocka_unit_test(test_follower_running_primary_demotes),
        cmocka_unit_test(test_follower_waits_for_bootstrap),
        cmocka_unit_test(test_follower_absent_clones_from_primary),
        cmocka_unit_test(test_follower_absent_waits_for_unreachable_primary),
        cmocka_unit_test(test_follower_stopped_former_primary_rewinds),
        cmocka_unit_test(test_follower_rewind_backs_off_after_retryable_failure),
        cmocka_unit_test(test_follower_without_pg_rewind_reclones_former_primary),
        cmocka_unit_test(test_follower_stopped_on_older_timeline_rewinds),
        cmocka_unit_test(test_follower_failed_rewind_reinitialises),
        cmocka_unit_test(test_follower_stopped_without_primary_address_starts_standby_of_nobody),
        cmocka_unit_test(test_follower_stopped_starts_standby_of_primary),
        cmocka_unit_test(test_follower_with_other_upstream_follows_primary),
        cmocka_unit_test(test_follower_streaming_waits),
        cmocka_unit_test(test_candidate_max_lag),
        cmocka_unit_test(test_restart_timeout_hands_over),
        cmocka_unit_test(test_candidate_tie_goes_to_higher_priority),
        cmocka_unit_test(test_candidate_tie_at_equal_priority_goes_to_self),
        cmocka_unit_test(test_candidate_tie_goes_to_lowest_name),
        cmocka_unit_test(test_candidate_nofailover_peer_never_chosen),
        cmocka_unit_test(test_candidate_priority_zero_never_chosen),
        cmocka_unit_test(test_candidate_unreachable_peer_skipped),
        cmocka_unit_test(test_candidate_unpolled_member_makes_choice_wait),
        cmocka_unit_test(test_candidate_member_without_peer_entry_makes_choice_wait),
        cmocka_unit_test(test_candidate_higher_timeline_beats_higher_wal_position),
        cmocka_unit_test(test_candidate_self_higher_timeline_beats_peer_higher_wal),
        cmocka_unit_test(test_candidate_failing_peer_skipped),
        cmocka_unit_test(test_candidate_peer_with_failing_storage_skipped),
        cmocka_unit_test(test_candidate_never_behind_a_voter_that_cannot_be_promoted),
        cmocka_unit_test(test_candidate_peer_below_failure_limit_chosen),
        cmocka_unit_test(test_candidate_self_not_eligible_gives_best_peer),
        cmocka_unit_test(test_candidate_nobody_eligible_gives_null_without_wait),
        cmocka_unit_test(test_candidate_peer_of_another_system_skipped),
        cmocka_unit_test(test_candidate_stopped_peer_is_not_chosen),
        cmocka_unit_test(test_follower_waits_until_state_is_current),
        cmocka_unit_test(test_follower_former_primary_waits_when_no_primary_recorded),
        cmocka_unit_test(test_primary_checkpoints_recorded_new_timeline),
        cmocka_unit_test(test_primary_records_new_timeline_before_checkpointing),
        cmocka_unit_test(test_primary_with_checkpointed_timeline_does_not_checkpoint),
        cmocka_unit_test(test_follower_rewind_waits_for_primary_checkpoint),
        cmocka_unit_test(test_follower_rewinds_once_primary_checkpointed),
        cmocka_unit_test(test_stuck_standby_on_older_timeline_is_demoted),
        cmocka_unit_test(test_stuck_standby_is_not_demoted_before_the_bound),
        cmocka_unit_test(test_standby_on_primary_timeline_not_streaming_is_not_demoted),
        cmocka_unit_test(test_standby_past_the_fork_is_demoted_to_rewind),
        cmocka_unit_test(test_fork_tracking),
        cmocka_unit_test(test_follower_with_unreadable_control_file_reclones),
        cmocka_unit_test(test_follower_with_unreadable_control_file_waits_for_primary),
        cmocka_unit_test(test_leader_with_unreadable_control_file_hands_over),
        cmocka_unit_test(test_takeover_hands_over_to_stopped_recorded_primary),
        cmocka_unit_test(test_takeover_prefers_a_standby_to_a_stopped_recorded_primary),
        cmocka_unit_test(test_takeover_waits_for_failing_recorded_primary),
        cmocka_unit_test(test_follower_named_primary_does_not_start_former_primary_data),
        cmocka_unit_test(test_takeover_hands_over_to_recorded_primary_on_newer_timeline),
        cmocka_unit_test(test_takeover_proceeds_when_sync_quorum_heard_behind_recorded_timeline),
        cmocka_unit_test(
            test_takeover_proceeds_when_recorded_primary_on_newer_timeline_unreachable),
        cmocka_unit_test(test_takeover_of_candidate_on_recorded_timeline_does_not_hand_back),
        cmocka_unit_test(test_core_promotion_creates_slots_before_promoting),
        cmocka_unit_test(test_core_backoff_holds_the_failed_action),
        cmocka_unit_test(test_core_allowed_mask_holds_other_actions),
        cmocka_unit_test(test_core_demotes_at_once_after_another_action_failed),
        cmocka_unit_test(test_core_failed_demotion_backs_off),
        cmocka_unit_test(test_core_retries_a_failed_transfer_at_once),
        cmocka_unit_test(test_core_reads_voters_polled_after_the_previous_primary_stopped),
        cmocka_unit_test(test_core_quiet_run_of_the_previous_primary),
        cmocka_unit_test(test_promotion_fences_the_last_writer_too),
        cmocka_unit_test(test_core_remembers_the_last_writer),
        cmocka_unit_test(test_core_hands_over_at_once_after_the_last_failed_start),
        cmocka_unit_test(test_takeover_without_voters_hands_back_to_recorded_primary),
        cmocka_unit_test(test_takeover_waits_for_a_voter_report_on_its_way),
        cmocka_unit_test(test_takeover_without_voters_hands_back_to_recorded_primary_as_standby),
        cmocka_unit_test(test_takeover_without_voters_waits_for_unreachable_recorded_primary),
        cmocka_unit_test(test_degraded_takeover_hands_back_to_recorded_primary),
        cmocka_unit_test(test_stopped_voter_is_not_heard),
        cmocka_unit_test(test_recorded_primary_takes_over_without_voters),
        cmocka_unit_test(test_recorded_primary_behind_a_member_does_not_take_over),
        cmocka_unit_test(test_no_hand_back_to_a_recorded_primary_behind),
        cmocka_unit_test(test_other_member_does_not_take_over_without_voters),
        cmocka_unit_test(test_sole_holder_failing_to_start_keeps_trying),
        cmocka_unit_test(test_unwritable_primary_hands_over_after_the_bound),
        cmocka_unit_test(test_unwritable_sole_holder_waits),
        cmocka_unit_test(test_unwritable_members_are_not_promoted),
        cmocka_unit_test(test_unwritable_tracking),
        cmocka_unit_test(test_crash_log_window),
        cmocka_unit_test(test_crashing_primary_hands_over),
        cmocka_unit_test(test_down_clock),
        cmocka_unit_test(test_down_primary_hands_over_after_the_bound),
        cmocka_unit_test(test_down_primary_zero_bound_hands_over_at_once),
        cmocka_unit_test(test_down_primary_stays_when_nobody_may_take_over),
        cmocka_unit_test(test_candidate_passes_over_a_crashing_member),
        cmocka_unit_test(test_crashing_primary_restarts_when_nobody_may_take_over),
        cmocka_unit_test(test_member_with_another_identity_is_not_promoted),
        cmocka_unit_test(test_primary_failing_to_start_hands_over_when_voters_are_heard),
        cmocka_unit_test(test_takeover_hands_back_to_failing_sole_holder),
        cmocka_unit_test(test_failing_sole_holder_starts_in_a_later_term),
        cmocka_unit_test(test_voter_failing_to_start_still_starts_for_the_quorum),
        cmocka_unit_test(test_core_other_sync_setting_failure_backs_off),
        cmocka_unit_test(test_observer_tracks_how_long_a_standby_has_not_streamed),
        cmocka_unit_test(test_streaming_standby_ends_the_rewind_back_off),
        cmocka_unit_test(test_leader_in_rewind_back_off_starts_former_primary_as_standby),
        cmocka_unit_test(test_leader_with_wal_past_the_fork_hands_over_to_newer_timeline),
        cmocka_unit_test(test_leader_superseded_rejoin_hands_to_stopped_recorded_primary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
