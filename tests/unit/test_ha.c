/* Unit tests of the HA decision function: ha_decide, ha_choose_candidate, ha_slot_name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/ha.h"

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
}

static void test_bootstrap_absent_initialises(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    decide(&w);
    assert_decision(&w, HA_ACT_BOOTSTRAP, "");
}

static void test_bootstrap_stopped_starts_primary(void **state)
{
    (void)state;
    struct world w;
    world_bootstrap(&w);
    w.in.pg.state = HA_PG_STOPPED;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
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
    w.in.pg.start_failures = HA_START_FAILURES_MAX - 1;
    decide(&w);
    assert_decision(&w, HA_ACT_START_PRIMARY, "");
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
    assert_int_equal(w.out.timeline, 1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
        cmocka_unit_test(test_bootstrap_stopped_starts_primary),
        cmocka_unit_test(test_bootstrap_running_standby_promotes),
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
        cmocka_unit_test(test_primary_failing_to_start_transfers_leadership),
        cmocka_unit_test(test_primary_without_data_transfers_leadership),
        cmocka_unit_test(test_primary_starting_waits),
        cmocka_unit_test(test_takeover_reelected_primary_records_itself),
        cmocka_unit_test(test_takeover_running_primary_of_other_recorded_member_demotes),
        cmocka_unit_test(test_takeover_waits_while_previous_primary_accepts_writes),
        cmocka_unit_test(test_takeover_proceeds_when_previous_primary_unreachable),
        cmocka_unit_test(test_takeover_stopped_starts_standby),
        cmocka_unit_test(test_takeover_transfers_to_peer_ahead),
        cmocka_unit_test(test_takeover_records_self_when_best),
        cmocka_unit_test(test_takeover_waits_for_unpolled_member),
        cmocka_unit_test(test_follower_running_primary_demotes),
        cmocka_unit_test(test_follower_waits_for_bootstrap),
        cmocka_unit_test(test_follower_absent_clones_from_primary),
        cmocka_unit_test(test_follower_absent_waits_for_unreachable_primary),
        cmocka_unit_test(test_follower_stopped_former_primary_rewinds),
        cmocka_unit_test(test_follower_stopped_on_older_timeline_rewinds),
        cmocka_unit_test(test_follower_failed_rewind_reinitialises),
        cmocka_unit_test(test_follower_stopped_starts_standby_of_primary),
        cmocka_unit_test(test_follower_with_other_upstream_follows_primary),
        cmocka_unit_test(test_follower_streaming_waits),
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
        cmocka_unit_test(test_candidate_peer_below_failure_limit_chosen),
        cmocka_unit_test(test_candidate_self_not_eligible_gives_best_peer),
        cmocka_unit_test(test_candidate_nobody_eligible_gives_null_without_wait),
        cmocka_unit_test(test_candidate_peer_of_another_system_skipped),
        cmocka_unit_test(test_candidate_stopped_peer_is_not_chosen),
        cmocka_unit_test(test_follower_waits_until_state_is_current),
        cmocka_unit_test(test_follower_former_primary_waits_when_no_primary_recorded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
