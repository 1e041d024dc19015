/* Unit tests of the primary's synchronous-quorum driver: the steps it takes from the replicated
 * state, PostgreSQL's value and the standbys' health, the acknowledged-WAL bound, the value a
 * standby configures before promotion, and a seeded simulation that checks the log's claim (P in
 * sync.h) after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/fsm.h"
#include "raftpg/quorum.h"
#include "raftpg/sync.h"

/* ---- Helpers ---- */

#define FLUSH 0x3000000ull /* every position starts here unless a test moves it */
#define TIMELINE 3
#define START_MS 1000000 /* a monotonic clock never reads 0 */

static void set_str(char *dst, size_t size, const char *src)
{
    memset(dst, 0, size);
    snprintf(dst, size, "%s", src);
}

static void make_member(struct fsm_member *m, uint64_t id, unsigned n)
{
    char buf[FSM_ADDR_MAX];
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(buf, sizeof buf, "node%u", n);
    set_str(m->name, sizeof m->name, buf);
    snprintf(buf, sizeof buf, "10.0.0.%u:7000", n);
    set_str(m->raft_address, sizeof m->raft_address, buf);
    snprintf(buf, sizeof buf, "10.0.0.%u:8008", n);
    set_str(m->api_address, sizeof m->api_address, buf);
    snprintf(buf, sizeof buf, "10.0.0.%u:5432", n);
    set_str(m->pg_address, sizeof m->pg_address, buf);
    m->failover_priority = 100;
}

static void apply_ok(struct fsm_state *s, const struct fsm_cmd *c)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    if (fsm_state_apply(s, c, errmsg) != 0) {
        fail_msg("apply %s: %s", fsm_cmd_type_name(c->type), errmsg);
    }
}

/* Members node1..node<n>, node1 the primary in term 2 on TIMELINE, nothing recorded. */
static void state_members(struct fsm_state *s, unsigned n)
{
    struct fsm_cmd c;
    fsm_state_init(s);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_INIT;
    c.term = 1;
    set_str(c.u.init.scope, FSM_NAME_MAX, "main");
    c.u.init.n_members = n;
    for (unsigned i = 0; i < n; i++) {
        make_member(&c.u.init.members[i], i + 1, i + 1);
    }
    apply_ok(s, &c);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_PRIMARY;
    c.term = 2;
    set_str(c.u.set_primary.name, FSM_NAME_MAX, "node1");
    c.u.set_primary.term = 2;
    c.u.set_primary.timeline = TIMELINE;
    apply_ok(s, &c);
}

/* Records k over the space-separated names. */
static void state_record(struct fsm_state *s, uint32_t k, const char *names)
{
    struct fsm_cmd c;
    char buf[512];
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_SYNC;
    c.term = 2;
    c.u.set_sync.k = k;
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save)) {
        set_str(c.u.set_sync.voters[c.u.set_sync.n_voters++], FSM_NAME_MAX, tok);
    }
    apply_ok(s, &c);
}

static void state_bound(struct fsm_state *s, uint64_t position)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SET_WAL_BOUND;
    c.term = 2;
    c.u.set_wal_bound.position = position;
    c.u.set_wal_bound.timeline = TIMELINE;
    apply_ok(s, &c);
}

/* The recorded voters as "k=1 (node2 node3)". */
static const char *recorded(const struct fsm_state *s)
{
    static char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "k=%u (", (unsigned)s->sync.k);
    for (unsigned i = 0; i < s->sync.n_voters; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i > 0 ? " " : "",
                                s->sync.voters[i]);
    }
    snprintf(buf + len, sizeof buf - len, ")");
    return buf;
}

/* The voters of a SET_SYNC command, same form. */
static const char *cmd_set(const struct fsm_cmd *c)
{
    static char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "k=%u (", (unsigned)c->u.set_sync.k);
    for (unsigned i = 0; i < c->u.set_sync.n_voters; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i > 0 ? " " : "",
                                c->u.set_sync.voters[i]);
    }
    snprintf(buf + len, sizeof buf - len, ")");
    return buf;
}

/* The primary node1 with members node1..node<n>; every standby streaming with its flush at
 * FLUSH, like the primary's; quorum mode, k = 1, synchronous_commit on, PostgreSQL observed
 * running asynchronously (""), nothing recorded. */
struct fixture {
    struct fsm_state state;
    struct quorum_replica replicas[FSM_MEMBERS_MAX];
    const char *nosync[FSM_MEMBERS_MAX];
    char value[SYNC_VALUE_MAX];
    char commit[32];
    struct quorum_view v;
    struct quorum_tracker t;
    struct quorum_decision d;
    char errmsg[RPG_ERRMSG_SIZE];
};

static void fixture_init(struct fixture *f, unsigned n_members)
{
    memset(f, 0, sizeof *f);
    state_members(&f->state, n_members);
    for (unsigned i = 0; i + 1 < n_members; i++) {
        snprintf(f->replicas[i].name, sizeof f->replicas[i].name, "node%u", i + 2);
        f->replicas[i].streaming = true;
        f->replicas[i].flush_position = FLUSH;
    }
    set_str(f->commit, sizeof f->commit, "on");
    f->v.now = START_MS;
    f->v.state = &f->state;
    f->v.self = "node1";
    f->v.mode = SYNC_MODE_QUORUM;
    f->v.k_wanted = 1;
    f->v.commit = FSM_SYNC_COMMIT_ON;
    f->v.configured_known = true;
    f->v.configured_value = f->value;
    f->v.configured_commit = f->commit;
    f->v.primary_flush = FLUSH;
    f->v.n_replicas = n_members - 1;
    f->v.replicas = f->replicas;
    f->v.nosync = f->nosync;
}

/* Three members, already settled on ANY 1 (node2, node3): recorded, configured, and the bound
 * recorded at FLUSH. */
static void fixture_settled(struct fixture *f)
{
    fixture_init(f, 3);
    state_record(&f->state, 1, "node2 node3");
    state_bound(&f->state, FLUSH);
    set_str(f->value, sizeof f->value, "ANY 1 (\"node2\", \"node3\")");
}

static struct quorum_replica *replica(struct fixture *f, const char *name)
{
    for (unsigned i = 0; i < f->v.n_replicas; i++) {
        if (strcmp(f->replicas[i].name, name) == 0) {
            return &f->replicas[i];
        }
    }
    fail_msg("no replica %s", name);
    return NULL;
}

static void add_nosync(struct fixture *f, const char *name)
{
    f->nosync[f->v.n_nosync++] = name;
}

static void decide(struct fixture *f)
{
    int rc = quorum_decide(&f->v, &f->t, &f->d, f->errmsg);
    if (rc != 0) {
        fail_msg("quorum_decide: %s", f->errmsg);
    }
}

/* Carries out the decision as core.c does: commits the command or writes the value. */
static void effect(struct fixture *f)
{
    switch (f->d.action) {
    case QUORUM_RECORD:
    case QUORUM_RECORD_BOUND: apply_ok(&f->state, &f->d.cmd); break;
    case QUORUM_CONFIGURE:
        set_str(f->value, sizeof f->value, f->d.value);
        set_str(f->commit, sizeof f->commit, f->d.commit);
        break;
    case QUORUM_NONE:
    case QUORUM_WAIT: break;
    }
}

static void assert_record(const struct fixture *f, const char *set)
{
    assert_string_equal(quorum_action_name(f->d.action), "record");
    assert_int_equal(f->d.cmd.type, FSM_CMD_SET_SYNC);
    assert_string_equal(cmd_set(&f->d.cmd), set);
}

static void assert_configure(const struct fixture *f, const char *value, const char *commit)
{
    assert_string_equal(quorum_action_name(f->d.action), "configure");
    assert_string_equal(f->d.value, value);
    assert_string_equal(f->d.commit, commit);
}

static void assert_bound(const struct fixture *f, uint64_t position)
{
    assert_string_equal(quorum_action_name(f->d.action), "record_bound");
    assert_int_equal(f->d.cmd.type, FSM_CMD_SET_WAL_BOUND);
    assert_int_equal(f->d.cmd.u.set_wal_bound.position, position);
    assert_int_equal(f->d.cmd.u.set_wal_bound.timeline, TIMELINE);
}

static void assert_action(const struct fixture *f, enum quorum_action a)
{
    assert_string_equal(quorum_action_name(f->d.action), quorum_action_name(a));
}

/* name stops streaming: within the degrade grace the set keeps it; past it, the next step. */
static void lose(struct fixture *f, const char *name)
{
    decide(f);
    replica(f, name)->streaming = false;
    f->v.now += QUORUM_DEGRADE_GRACE_MS - 1;
    decide(f);
    assert_action(f, QUORUM_NONE);
    f->v.now += 1;
    decide(f);
}

/* ---- quorum_decide: the steps ---- */

/* After a failover the survivors have not re-pointed yet: the new primary keeps them in its set
 * (writes wait) instead of acknowledging alone, for the grace; then it degrades. */
static void test_decide_new_primary_waits_for_standbys_that_have_not_streamed_yet(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    replica(&f, "node2")->streaming = false;
    replica(&f, "node3")->streaming = false;
    decide(&f);
    assert_false(f.d.degraded);
    assert_action(&f, QUORUM_NONE);
    f.v.now += QUORUM_DEGRADE_GRACE_MS - 1;
    decide(&f);
    assert_action(&f, QUORUM_NONE);
    replica(&f, "node2")->streaming = true;
    f.v.now += QUORUM_DEGRADE_GRACE_MS;
    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\")", "on");
}

/* Quorum mode degrades to asynchronous only once no standby streamed for the grace. */
static void test_decide_degrades_only_after_the_grace(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    decide(&f);
    replica(&f, "node2")->streaming = false;
    replica(&f, "node3")->streaming = false;
    f.v.now += 1000;
    decide(&f);
    assert_action(&f, QUORUM_NONE);
    assert_false(f.d.degraded);
    f.v.now += QUORUM_DEGRADE_GRACE_MS;
    decide(&f);
    assert_true(f.d.degraded);
    assert_action(&f, QUORUM_RECORD); /* k = 0 is recorded before PostgreSQL stops waiting */
}

/* A standby whose agent says its server is not running is known down: no grace. */
static void test_decide_known_down_standby_leaves_at_once(void **state)
{
    (void)state;
    struct fixture f;
    static const char *const down[] = {"node3"};
    fixture_settled(&f);
    decide(&f);
    replica(&f, "node3")->streaming = false;
    f.v.n_down = 1;
    f.v.down = down;
    f.v.now += 100;
    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\")", "on");
}

/* A new term starts the grace afresh: what streamed in an earlier term says nothing now. */
static void test_decide_grace_restarts_with_the_primary_term(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    decide(&f);
    f.state.primary.term++;
    f.v.now += 10 * QUORUM_DEGRADE_GRACE_MS;
    replica(&f, "node3")->streaming = false;
    decide(&f);
    assert_action(&f, QUORUM_NONE);
}

static void test_decide_waits_until_postgresql_is_seen_as_primary(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.configured_known = false;

    decide(&f);

    assert_action(&f, QUORUM_WAIT);
    assert_string_equal(f.d.why, "waiting to observe postgresql as primary");
}

static void test_decide_from_asynchronous_records_union_configures_then_records_k(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_bound(&f.state, FLUSH);

    decide(&f);
    assert_record(&f, "k=0 (node2 node3)");
    effect(&f);
    assert_string_equal(recorded(&f.state), "k=0 (node2 node3)");

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\", \"node3\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node2 node3)");
    effect(&f);
    assert_string_equal(recorded(&f.state), "k=1 (node2 node3)");

    decide(&f);
    assert_action(&f, QUORUM_NONE);
    assert_false(f.d.degraded);
}

static void test_decide_lost_standby_configures_narrower_set_before_recording(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    lose(&f, "node3");

    assert_configure(&f, "ANY 1 (\"node2\")", "on");
    assert_string_equal(recorded(&f.state), "k=1 (node2 node3)");
}

static void test_decide_lost_standby_records_narrower_set_after_flush(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    lose(&f, "node3");
    effect(&f);
    /* Commits went on while PostgreSQL took on the narrower value. */
    f.v.primary_flush = FLUSH + 4096;

    decide(&f);
    assert_action(&f, QUORUM_WAIT);
    assert_string_equal(f.d.why,
                        "waiting to record k=1 (node2): 0 of its voters flushed up to 0/3001000, "
                        "need 1");
    assert_string_equal(recorded(&f.state), "k=1 (node2 node3)");

    replica(&f, "node2")->flush_position = FLUSH + 4095;
    decide(&f);
    assert_action(&f, QUORUM_WAIT);

    replica(&f, "node2")->flush_position = FLUSH + 4096;
    decide(&f);
    assert_record(&f, "k=1 (node2)");
}

static void test_decide_mode_off_records_k0_configures_empty_then_drops_voters(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.mode = SYNC_MODE_OFF;

    decide(&f);
    assert_record(&f, "k=0 (node2 node3)");
    effect(&f);

    decide(&f);
    assert_configure(&f, "", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=0 ()");
    effect(&f);
    assert_string_equal(recorded(&f.state), "k=0 ()");

    decide(&f);
    assert_action(&f, QUORUM_NONE);
}

static void test_decide_strict_keeps_the_set_when_no_standby_is_healthy(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.mode = SYNC_MODE_STRICT;
    replica(&f, "node2")->streaming = false;
    replica(&f, "node3")->streaming = false;

    decide(&f);

    assert_action(&f, QUORUM_NONE);
    assert_true(f.d.degraded);
}

static void test_decide_strict_from_asynchronous_without_healthy_standby_blocks(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_bound(&f.state, FLUSH);
    f.v.mode = SYNC_MODE_STRICT;
    replica(&f, "node2")->streaming = false;
    replica(&f, "node3")->streaming = false;

    decide(&f);
    assert_record(&f, "k=0 (node2 node3)");
    assert_true(f.d.degraded);
    effect(&f);

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\", \"node3\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node2 node3)");
    effect(&f);

    decide(&f);
    assert_action(&f, QUORUM_NONE);
    assert_string_equal(f.value, "ANY 1 (\"node2\", \"node3\")");
}

static void test_decide_strict_with_only_nosync_standbys_configures_the_primary(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.mode = SYNC_MODE_STRICT;
    add_nosync(&f, "node2");
    add_nosync(&f, "node3");

    decide(&f);
    assert_record(&f, "k=0 (node1)");
    effect(&f);

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node1\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node1)");
}

static void test_decide_leaves_nosync_member_out_of_the_set(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    add_nosync(&f, "node3");

    decide(&f);
    assert_record(&f, "k=0 (node2)");
    effect(&f);

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node2)");
}

static void test_decide_leaves_removing_member_out_of_the_set(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.removing = "node3";

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node2)");
    effect(&f);
    assert_string_equal(recorded(&f.state), "k=1 (node2)");
}

static void state_remove(struct fsm_state *s, const char *name)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_MEMBER_REMOVE;
    c.term = 2;
    set_str(c.u.member_remove.name, FSM_NAME_MAX, name);
    apply_ok(s, &c);
}

/* A voter removed while PostgreSQL still waits for it: the record the removal left (k - 1) is
 * the truth, and the set is rebuilt from the members, never by recording the former member. */
static void test_decide_removed_voter_in_the_value_does_not_block_the_record(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    state_remove(&f.state, "node3");
    assert_string_equal(recorded(&f.state), "k=0 (node2)");

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\")", "on");
    effect(&f);

    decide(&f);
    assert_record(&f, "k=1 (node2)");
    effect(&f);
    assert_string_equal(recorded(&f.state), "k=1 (node2)");
    decide(&f);
    assert_action(&f, QUORUM_NONE);
}

/* The same when the members left are already the set wanted: the value still names the former
 * member, so it is written again without it. */
static void test_decide_removed_voter_is_dropped_from_the_value(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 4);
    state_record(&f.state, 2, "node2 node3 node4");
    state_bound(&f.state, FLUSH);
    set_str(f.value, sizeof f.value, "ANY 2 (\"node2\", \"node3\", \"node4\")");
    state_remove(&f.state, "node4");
    assert_string_equal(recorded(&f.state), "k=1 (node2 node3)");

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\", \"node3\")", "on");
    assert_string_equal(f.d.why, "synchronous_standby_names \"ANY 2 (\"node2\", \"node3\", "
                                 "\"node4\")\" names 1 former member(s)");
    effect(&f);

    decide(&f);
    assert_action(&f, QUORUM_NONE);
    assert_string_equal(recorded(&f.state), "k=1 (node2 node3)");
}

static void test_decide_commit_change_alone_configures_same_value(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.commit = FSM_SYNC_COMMIT_REMOTE_APPLY;

    decide(&f);
    assert_configure(&f, "ANY 1 (\"node2\", \"node3\")", "remote_apply");
    assert_string_equal(f.d.why, "synchronous_commit on -> remote_apply");
    effect(&f);

    decide(&f);
    assert_action(&f, QUORUM_NONE);
}

static void test_decide_settled_set_does_nothing(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);

    decide(&f);

    assert_action(&f, QUORUM_NONE);
    assert_false(f.d.degraded);
}

static void test_decide_unparsable_value_is_treated_as_asynchronous(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    set_str(f.value, sizeof f.value, "FIRST 1 (node2, node3)");

    decide(&f);

    /* Asynchronous under a record with k = 1: the record is repaired to k = 0 first. */
    assert_record(&f, "k=0 (node2 node3)");
}

static void test_decide_unparsable_value_is_replaced_when_mode_is_off(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.mode = SYNC_MODE_OFF;
    set_str(f.value, sizeof f.value, "*");

    decide(&f);

    /* PostgreSQL waits for any standby under '*', which this driver did not write: mode off
     * calls for its own value, "". */
    assert_configure(&f, "", "on");
}

/* ---- quorum_decide: the acknowledged-WAL bound ---- */

static void test_bound_k1_records_highest_voter_flush(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 4096;
    replica(&f, "node3")->flush_position = FLUSH + 8192;

    decide(&f);

    assert_bound(&f, FLUSH + 8192);
    assert_string_equal(f.d.why, "the quorum has flushed up to 50339840");
}

static void test_bound_k2_records_second_highest_voter_flush(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 2, "node2 node3");
    state_bound(&f.state, FLUSH);
    set_str(f.value, sizeof f.value, "ANY 2 (\"node2\", \"node3\")");
    f.v.k_wanted = 2;
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 4096;
    replica(&f, "node3")->flush_position = FLUSH + 8192;

    decide(&f);

    assert_bound(&f, FLUSH + 4096);
}

static void test_bound_ignores_flush_of_a_non_voter(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 4);
    add_nosync(&f, "node4");
    state_record(&f.state, 1, "node2 node3");
    state_bound(&f.state, FLUSH);
    set_str(f.value, sizeof f.value, "ANY 1 (\"node2\", \"node3\")");
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 1024;
    replica(&f, "node3")->flush_position = FLUSH + 2048;
    replica(&f, "node4")->flush_position = FLUSH + 8192;

    decide(&f);

    assert_bound(&f, FLUSH + 2048);
}

static void test_bound_not_recorded_unless_past_recorded_bound(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    state_bound(&f.state, FLUSH + 8192);
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 8192;
    replica(&f, "node3")->flush_position = FLUSH + 4096;

    decide(&f);

    assert_action(&f, QUORUM_NONE);
}

static void test_bound_not_recorded_when_asynchronous(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 0, "");
    f.v.mode = SYNC_MODE_OFF;
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 8192;
    replica(&f, "node3")->flush_position = FLUSH + 8192;

    decide(&f);

    assert_action(&f, QUORUM_NONE);
    assert_int_equal(f.state.wal_bound, 0);
}

static void test_bound_recorded_at_most_once_per_interval(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 8192;

    decide(&f);
    assert_bound(&f, FLUSH + 8192);
    effect(&f);

    f.v.primary_flush = FLUSH + 16384;
    replica(&f, "node2")->flush_position = FLUSH + 16384;
    f.v.now = START_MS + QUORUM_BOUND_INTERVAL_MS - 1;
    decide(&f);
    assert_action(&f, QUORUM_NONE);

    f.v.now = START_MS + QUORUM_BOUND_INTERVAL_MS;
    decide(&f);
    assert_bound(&f, FLUSH + 16384);
}

static void test_bound_not_repeated_while_its_command_is_pending(void **state)
{
    (void)state;
    struct fixture f;
    fixture_settled(&f);
    f.v.primary_flush = FLUSH + 8192;
    replica(&f, "node2")->flush_position = FLUSH + 8192;

    decide(&f);
    assert_bound(&f, FLUSH + 8192);
    /* Not applied yet: the state still shows the old bound. */
    f.v.now = START_MS + 100;
    decide(&f);

    assert_action(&f, QUORUM_NONE);
}

/* ---- quorum_initial_value ---- */

static const char *initial(struct fixture *f)
{
    static char value[SYNC_VALUE_MAX];
    if (quorum_initial_value(&f->v, value, sizeof value, f->errmsg) != 0) {
        fail_msg("quorum_initial_value: %s", f->errmsg);
    }
    return value;
}

static void test_initial_off_is_empty(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.mode = SYNC_MODE_OFF;

    assert_string_equal(initial(&f), "");
}

static void test_initial_quorum_is_recorded_k_over_other_recorded_voters(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 1, "node2 node3");
    replica(&f, "node3")->streaming = false;

    assert_string_equal(initial(&f), "ANY 1 (\"node2\", \"node3\")");
}

/* The new primary is itself a recorded voter: it leaves itself out and keeps the recorded k. */
static void test_initial_leaves_the_new_primary_out_of_the_voters(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 1, "node1 node3");

    assert_string_equal(initial(&f), "ANY 1 (\"node3\")");
}

/* A member outside the record never acknowledges before the driver records it. */
static void test_initial_leaves_unrecorded_members_out(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 1, "node2");

    assert_string_equal(initial(&f), "ANY 1 (\"node2\")");
}

static void test_initial_quorum_with_nothing_recorded_is_empty(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);

    assert_string_equal(initial(&f), "");
}

static void test_initial_strict_keeps_the_recorded_k(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.mode = SYNC_MODE_STRICT;
    state_record(&f.state, 2, "node2 node3");

    assert_string_equal(initial(&f), "ANY 2 (\"node2\", \"node3\")");
}

static void test_initial_strict_with_no_other_voter_names_the_primary(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    f.v.mode = SYNC_MODE_STRICT;
    f.v.k_wanted = 1;

    assert_string_equal(initial(&f), "ANY 1 (\"node1\")");
}

static void test_initial_local_commit_is_empty(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    state_record(&f.state, 1, "node2 node3");
    f.v.commit = FSM_SYNC_COMMIT_LOCAL;

    assert_string_equal(initial(&f), "");
}

static void test_initial_quorum_with_only_nosync_members_is_empty(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 3);
    add_nosync(&f, "node2");
    add_nosync(&f, "node3");

    assert_string_equal(initial(&f), "");
}

static void test_initial_strict_alone_names_the_primary(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 1);
    f.v.mode = SYNC_MODE_STRICT;

    assert_string_equal(initial(&f), "ANY 1 (\"node1\")");
}

static void test_initial_quorum_alone_is_empty(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 1);

    assert_string_equal(initial(&f), "");
}

/* ---- Simulation: the log's claim holds after every step ---- */

#define SIM_MEMBERS 4
#define SIM_SEEDS 400
#define SIM_STEPS 500
#define SIM_MB (1024ull * 1024)

struct sim {
    struct fixture f;
    uint64_t rng;
    uint64_t commits[SIM_STEPS]; /* positions of written commits, in order */
    unsigned n_commits;
    unsigned n_acked; /* commits[0..n_acked) are acknowledged to clients */
    unsigned seed;
    unsigned step;
};

static uint64_t sim_next(struct sim *s)
{
    /* splitmix64 */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t sim_below(struct sim *s, uint64_t n)
{
    return sim_next(s) % n;
}

/* The position up to which PostgreSQL releases waiting commits under its current value: the
 * k-th highest flush among the configured names that stream from it (the primary never streams
 * from itself), everything when asynchronous, nothing when fewer than k could answer. */
static uint64_t sim_release_point(struct sim *s)
{
    struct sync_set c;
    char errmsg[RPG_ERRMSG_SIZE];
    uint64_t pos[FSM_MEMBERS_MAX];
    unsigned n = 0;

    if (sync_set_parse(s->f.value, &c, errmsg) != 0) {
        fail_msg("seed %u step %u: the driver wrote \"%s\": %s", s->seed, s->step, s->f.value,
                 errmsg);
    }
    if (c.k == 0) {
        return UINT64_MAX;
    }
    for (unsigned i = 0; i < c.n; i++) {
        for (unsigned j = 0; j < s->f.v.n_replicas; j++) {
            if (strcmp(c.names[i], s->f.replicas[j].name) == 0) {
                pos[n++] = s->f.replicas[j].flush_position;
            }
        }
    }
    if (n < c.k) {
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = i + 1; j < n; j++) {
            if (pos[j] > pos[i]) {
                uint64_t tmp = pos[i];
                pos[i] = pos[j];
                pos[j] = tmp;
            }
        }
    }
    return pos[c.k - 1];
}

static void sim_acknowledge(struct sim *s)
{
    uint64_t point = sim_release_point(s);
    while (s->n_acked < s->n_commits && s->commits[s->n_acked] <= point) {
        s->n_acked++;
    }
}

static uint64_t sim_flush_of(struct sim *s, const char *name)
{
    if (strcmp(name, s->f.v.self) == 0) {
        return UINT64_MAX; /* the primary holds everything it acknowledged */
    }
    for (unsigned j = 0; j < s->f.v.n_replicas; j++) {
        if (strcmp(name, s->f.replicas[j].name) == 0) {
            return s->f.replicas[j].flush_position;
        }
    }
    return 0;
}

/* P: every acknowledged commit is on at least k recorded voters, or k = 0. Flush positions only
 * grow, so checking the highest acknowledged commit checks them all. And (I): the record covers
 * what PostgreSQL runs with. */
static void sim_check(struct sim *s)
{
    const struct fsm_state *st = &s->f.state;
    struct sync_set rec, conf;
    char errmsg[RPG_ERRMSG_SIZE];

    if (s->n_acked > 0 && st->sync.k > 0) {
        uint64_t highest = s->commits[s->n_acked - 1];
        unsigned holding = 0;
        for (unsigned i = 0; i < st->sync.n_voters; i++) {
            if (sim_flush_of(s, st->sync.voters[i]) >= highest) {
                holding++;
            }
        }
        if (holding < st->sync.k) {
            fail_msg("seed %u step %u: commit at %llu acknowledged under \"%s\" is on %u of the "
                     "recorded voters %s, need %u",
                     s->seed, s->step, (unsigned long long)highest, s->f.value, holding,
                     recorded(st), (unsigned)st->sync.k);
        }
    }
    if (sync_set_from_state(st, &rec, errmsg) != 0 ||
        sync_set_parse(s->f.value, &conf, errmsg) != 0) {
        fail_msg("seed %u step %u: %s", s->seed, s->step, errmsg);
    }
    if (!sync_set_covers(&rec, &conf)) {
        fail_msg("seed %u step %u: recorded %s does not cover \"%s\"", s->seed, s->step,
                 recorded(st), s->f.value);
    }
    assert_true(st->wal_bound <= s->f.v.primary_flush);
}

static void sim_events(struct sim *s)
{
    struct fixture *f = &s->f;
    static const char *const names[] = {"node2", "node3", "node4"};

    if (sim_below(s, 6) == 0) {
        struct quorum_replica *r = &f->replicas[sim_below(s, f->v.n_replicas)];
        r->streaming = !r->streaming;
    }
    if (sim_below(s, 40) == 0) {
        const char *name = names[sim_below(s, 3)];
        unsigned i = 0;
        while (i < f->v.n_nosync && strcmp(f->nosync[i], name) != 0) {
            i++;
        }
        if (i < f->v.n_nosync) {
            f->nosync[i] = f->nosync[--f->v.n_nosync];
        } else {
            f->nosync[f->v.n_nosync++] = name;
        }
    }
    if (sim_below(s, 60) == 0) {
        f->v.removing = f->v.removing == NULL ? names[sim_below(s, 3)] : NULL;
    }
    if (sim_below(s, 50) == 0) {
        static const int modes[] = {SYNC_MODE_OFF, SYNC_MODE_QUORUM, SYNC_MODE_STRICT};
        f->v.mode = modes[sim_below(s, 3)];
        f->v.k_wanted = 1 + (unsigned)sim_below(s, 3);
    }
}

/* A client commit: the primary writes and flushes it, and PostgreSQL acknowledges it at once
 * when asynchronous. Sizes up to 8 MB, so a standby that stops streaming falls behind by more
 * than QUORUM_MAX_LAG_BYTES after a few. */
static void sim_write(struct sim *s)
{
    if (s->n_commits < SIM_STEPS && sim_below(s, 2) == 0) {
        s->f.v.primary_flush += 1 + sim_below(s, 8 * SIM_MB);
        s->commits[s->n_commits++] = s->f.v.primary_flush;
    }
}

/* Streaming standbys receive part or all of what the primary has; the others stay put. */
static void sim_replicate(struct sim *s, bool full)
{
    for (unsigned i = 0; i < s->f.v.n_replicas; i++) {
        struct quorum_replica *r = &s->f.replicas[i];
        if (!r->streaming || r->flush_position >= s->f.v.primary_flush) {
            continue;
        }
        uint64_t behind = s->f.v.primary_flush - r->flush_position;
        r->flush_position += full || sim_below(s, 2) == 0 ? behind : sim_below(s, behind + 1);
    }
}

static void sim_decide(struct sim *s)
{
    struct fixture *f = &s->f;
    int rc = quorum_decide(&f->v, &f->t, &f->d, f->errmsg);
    if (rc != 0) {
        fail_msg("seed %u step %u: quorum_decide: %s", s->seed, s->step, f->errmsg);
    }
    if (f->d.action == QUORUM_RECORD || f->d.action == QUORUM_RECORD_BOUND) {
        char errmsg[RPG_ERRMSG_SIZE] = "";
        if (fsm_state_apply(&f->state, &f->d.cmd, errmsg) != 0) {
            fail_msg("seed %u step %u: %s refused: %s", s->seed, s->step,
                     quorum_action_name(f->d.action), errmsg);
        }
    } else if (f->d.action == QUORUM_CONFIGURE) {
        set_str(f->value, sizeof f->value, f->d.value);
        set_str(f->commit, sizeof f->commit, f->d.commit);
    }
}

static void sim_run(unsigned seed, unsigned *n_acked, unsigned *n_steps_degraded)
{
    struct sim s;
    memset(&s, 0, sizeof s);
    s.seed = seed;
    s.rng = seed * 0x2545f4914f6cdd1dull + 1;
    fixture_init(&s.f, SIM_MEMBERS);
    s.f.v.mode = (int)sim_below(&s, 3);
    s.f.v.k_wanted = 1 + (unsigned)sim_below(&s, 2);

    for (s.step = 0; s.step < SIM_STEPS; s.step++) {
        s.f.v.now += 100;
        sim_events(&s);
        sim_write(&s);
        sim_acknowledge(&s);
        sim_check(&s);
        sim_replicate(&s, false);
        sim_acknowledge(&s);
        sim_check(&s);
        sim_decide(&s);
        *n_steps_degraded += s.f.d.degraded;
        sim_acknowledge(&s);
        sim_check(&s);
    }

    /* Every standby back and caught up, no more writes: the driver settles. */
    for (unsigned i = 0; i < s.f.v.n_replicas; i++) {
        s.f.replicas[i].streaming = true;
    }
    for (unsigned i = 0; i < 8 && (i == 0 || s.f.d.action != QUORUM_NONE); i++, s.step++) {
        s.f.v.now += QUORUM_BOUND_INTERVAL_MS;
        sim_replicate(&s, true);
        sim_acknowledge(&s);
        sim_decide(&s);
        sim_acknowledge(&s);
        sim_check(&s);
    }
    if (s.f.d.action != QUORUM_NONE) {
        fail_msg("seed %u: still %s after every standby caught up: %s", seed,
                 quorum_action_name(s.f.d.action), s.f.d.why);
    }
    *n_acked += s.n_acked;
}

static void test_simulation_acknowledged_commits_stay_on_k_recorded_voters(void **state)
{
    (void)state;
    unsigned n_acked = 0;
    unsigned n_degraded = 0;

    for (unsigned seed = 1; seed <= SIM_SEEDS; seed++) {
        sim_run(seed, &n_acked, &n_degraded);
    }

    /* The schedules exercised both acknowledged commits and degraded sets. */
    assert_true(n_acked > SIM_SEEDS);
    assert_true(n_degraded > SIM_SEEDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_waits_until_postgresql_is_seen_as_primary),
        cmocka_unit_test(test_decide_from_asynchronous_records_union_configures_then_records_k),
        cmocka_unit_test(test_decide_new_primary_waits_for_standbys_that_have_not_streamed_yet),
        cmocka_unit_test(test_decide_degrades_only_after_the_grace),
        cmocka_unit_test(test_decide_grace_restarts_with_the_primary_term),
        cmocka_unit_test(test_decide_known_down_standby_leaves_at_once),
        cmocka_unit_test(test_decide_lost_standby_configures_narrower_set_before_recording),
        cmocka_unit_test(test_decide_lost_standby_records_narrower_set_after_flush),
        cmocka_unit_test(test_decide_mode_off_records_k0_configures_empty_then_drops_voters),
        cmocka_unit_test(test_decide_strict_keeps_the_set_when_no_standby_is_healthy),
        cmocka_unit_test(test_decide_strict_from_asynchronous_without_healthy_standby_blocks),
        cmocka_unit_test(test_decide_strict_with_only_nosync_standbys_configures_the_primary),
        cmocka_unit_test(test_decide_leaves_nosync_member_out_of_the_set),
        cmocka_unit_test(test_decide_removed_voter_in_the_value_does_not_block_the_record),
        cmocka_unit_test(test_decide_removed_voter_is_dropped_from_the_value),
        cmocka_unit_test(test_decide_leaves_removing_member_out_of_the_set),
        cmocka_unit_test(test_decide_commit_change_alone_configures_same_value),
        cmocka_unit_test(test_decide_settled_set_does_nothing),
        cmocka_unit_test(test_decide_unparsable_value_is_treated_as_asynchronous),
        cmocka_unit_test(test_decide_unparsable_value_is_replaced_when_mode_is_off),
        cmocka_unit_test(test_bound_k1_records_highest_voter_flush),
        cmocka_unit_test(test_bound_k2_records_second_highest_voter_flush),
        cmocka_unit_test(test_bound_ignores_flush_of_a_non_voter),
        cmocka_unit_test(test_bound_not_recorded_unless_past_recorded_bound),
        cmocka_unit_test(test_bound_not_recorded_when_asynchronous),
        cmocka_unit_test(test_bound_recorded_at_most_once_per_interval),
        cmocka_unit_test(test_bound_not_repeated_while_its_command_is_pending),
        cmocka_unit_test(test_initial_off_is_empty),
        cmocka_unit_test(test_initial_quorum_is_recorded_k_over_other_recorded_voters),
        cmocka_unit_test(test_initial_leaves_the_new_primary_out_of_the_voters),
        cmocka_unit_test(test_initial_leaves_unrecorded_members_out),
        cmocka_unit_test(test_initial_quorum_with_nothing_recorded_is_empty),
        cmocka_unit_test(test_initial_strict_keeps_the_recorded_k),
        cmocka_unit_test(test_initial_strict_with_no_other_voter_names_the_primary),
        cmocka_unit_test(test_initial_local_commit_is_empty),
        cmocka_unit_test(test_initial_quorum_with_only_nosync_members_is_empty),
        cmocka_unit_test(test_initial_strict_alone_names_the_primary),
        cmocka_unit_test(test_initial_quorum_alone_is_empty),
        cmocka_unit_test(test_simulation_acknowledged_commits_stay_on_k_recorded_voters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
