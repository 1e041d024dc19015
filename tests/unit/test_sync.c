/* Unit tests of the synchronous quorum: modes, sets, synchronous_standby_names, the desired set
 * for each membership event and mode, the order of rule 7, and candidate choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/sync.h"

/* ---- Helpers ---- */

#define PRIMARY "node1"
#define FLUSH 0x3000000ull /* the primary's flush position unless a test moves it */
#define LAG_MAX 1024u

/* A set from k and space-separated names; fails the test on a refused name. */
static struct sync_set set_of(uint32_t k, const char *names)
{
    struct sync_set s;
    char buf[512];
    char errmsg[RPG_ERRMSG_SIZE] = "";

    sync_set_init(&s, k);
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save)) {
        if (sync_set_add(&s, tok, errmsg) != 0) {
            fail_msg("add %s: %s", tok, errmsg);
        }
    }
    return s;
}

/* "k=1 (node2, node3)" in one of a few rotating buffers, so that a test can show two sets in
 * one expression. */
static const char *show(const struct sync_set *s)
{
    static char bufs[4][1024];
    static unsigned next;
    char *buf = bufs[next++ % 4];
    size_t len = (size_t)snprintf(buf, 1024, "k=%u (", (unsigned)s->k);
    for (unsigned i = 0; i < s->n; i++) {
        len += (size_t)snprintf(buf + len, 1024 - len, "%s%s", i > 0 ? ", " : "", s->names[i]);
    }
    snprintf(buf + len, 1024 - len, ")");
    return buf;
}

/* The primary node1 and its standbys, all streaming and caught up unless a test says
 * otherwise, in quorum mode with k = 1. */
struct world {
    struct sync_standby standbys[FSM_MEMBERS_MAX];
    struct sync_input in;
    struct sync_set out;
    bool degraded;
    char errmsg[RPG_ERRMSG_SIZE];
};

static struct sync_standby *standby(struct world *w, const char *name)
{
    for (unsigned i = 0; i < w->in.n_standbys; i++) {
        if (strcmp(w->standbys[i].name, name) == 0) {
            return &w->standbys[i];
        }
    }
    fail_msg("no standby %s", name);
    return NULL;
}

static void world_add(struct world *w, const char *name)
{
    struct sync_standby *sb = &w->standbys[w->in.n_standbys++];
    memset(sb, 0, sizeof *sb);
    snprintf(sb->name, sizeof sb->name, "%s", name);
    sb->streaming = true;
    sb->flush_position = w->in.primary_flush_position;
}

static void world_remove(struct world *w, const char *name)
{
    struct sync_standby *sb = standby(w, name);
    unsigned i = (unsigned)(sb - w->standbys);
    memmove(&w->standbys[i], &w->standbys[i + 1],
            (w->in.n_standbys - i - 1) * sizeof w->standbys[0]);
    w->in.n_standbys--;
}

/* node1 primary with standbys named in names (space-separated). */
static void world_init(struct world *w, const char *names)
{
    char buf[256];
    memset(w, 0, sizeof *w);
    w->in.mode = SYNC_MODE_QUORUM;
    w->in.k_wanted = 1;
    w->in.max_lag_bytes = LAG_MAX;
    w->in.primary = PRIMARY;
    w->in.primary_flush_position = FLUSH;
    w->in.standbys = w->standbys;
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save)) {
        world_add(w, tok);
    }
}

static const char *desired(struct world *w)
{
    int rc = sync_desired(&w->in, &w->out, &w->degraded, w->errmsg);
    if (rc != 0) {
        fail_msg("sync_desired: %s", w->errmsg);
    }
    return show(&w->out);
}

/* The leader's side of rule 7: the recorded set, PostgreSQL's set and when it took it on. */
struct leader {
    struct world w;
    struct sync_set recorded;
    struct sync_set configured;
    uint64_t since;
    struct sync_set want;
    struct sync_decision d;
};

static void leader_init(struct leader *l, const char *standbys, struct sync_set recorded,
                        struct sync_set configured, struct sync_set want)
{
    memset(l, 0, sizeof *l);
    world_init(&l->w, standbys);
    l->recorded = recorded;
    l->configured = configured;
    l->since = FLUSH;
    l->want = want;
}

static void decide(struct leader *l)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = sync_decide(&l->w.in, &l->recorded, &l->configured, l->since, &l->want, &l->d, errmsg);
    if (rc != 0) {
        fail_msg("sync_decide: %s", errmsg);
    }
}

/* Carries out the decided step as the agent would. */
static void apply_step(struct leader *l)
{
    switch (l->d.step) {
    case SYNC_STEP_RECORD: l->recorded = l->d.set; break;
    case SYNC_STEP_CONFIGURE:
        l->configured = l->d.set;
        l->since = l->w.in.primary_flush_position;
        break;
    case SYNC_STEP_NONE:
    case SYNC_STEP_WAIT: break;
    }
}

/* Decides and applies until NONE or WAIT (at most 6 steps) and returns the steps taken, e.g.
 * "record k=1 (node2, node3); configure ANY 1 (\"node2\", \"node3\"); none". */
static const char *walk(struct leader *l)
{
    static char out[2048];
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < 6; i++) {
        char value[SYNC_VALUE_MAX];
        char errmsg[RPG_ERRMSG_SIZE];
        const char *sep = i > 0 ? "; " : "";

        decide(l);
        switch (l->d.step) {
        case SYNC_STEP_RECORD:
            len +=
                (size_t)snprintf(out + len, sizeof out - len, "%srecord %s", sep, show(&l->d.set));
            break;
        case SYNC_STEP_CONFIGURE:
            assert_int_equal(sync_set_format(&l->d.set, value, sizeof value, errmsg), 0);
            len += (size_t)snprintf(out + len, sizeof out - len, "%sconfigure '%s'", sep, value);
            break;
        case SYNC_STEP_NONE:
        case SYNC_STEP_WAIT:
            snprintf(out + len, sizeof out - len, "%s%s", sep, sync_step_name(l->d.step));
            return out;
        }
        apply_step(l);
        assert_true(sync_set_covers(&l->recorded, &l->configured));
    }
    fail_msg("no end after 6 steps: %s", out);
    return out;
}

/* ---- Modes ---- */

static void test_mode_names(void **state)
{
    (void)state;
    assert_string_equal(sync_mode_name(SYNC_MODE_OFF), "off");
    assert_string_equal(sync_mode_name(SYNC_MODE_QUORUM), "quorum");
    assert_string_equal(sync_mode_name(SYNC_MODE_STRICT), "strict");
    assert_string_equal(sync_mode_name((enum sync_mode)42), "invalid");
}

static void test_mode_parse_reads_every_name(void **state)
{
    enum sync_mode m = SYNC_MODE_OFF;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_mode_parse("strict", &m, errmsg), 0);
    assert_int_equal(m, SYNC_MODE_STRICT);
    assert_int_equal(sync_mode_parse("quorum", &m, errmsg), 0);
    assert_int_equal(m, SYNC_MODE_QUORUM);
    assert_int_equal(sync_mode_parse("off", &m, errmsg), 0);
    assert_int_equal(m, SYNC_MODE_OFF);
}

static void test_mode_parse_rejects_other_words(void **state)
{
    enum sync_mode m = SYNC_MODE_QUORUM;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_mode_parse("Strict", &m, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "sync mode: expected off, quorum or strict, got \"Strict\"");
    assert_int_equal(m, SYNC_MODE_QUORUM);
}

static void test_step_names(void **state)
{
    (void)state;
    assert_string_equal(sync_step_name(SYNC_STEP_NONE), "none");
    assert_string_equal(sync_step_name(SYNC_STEP_RECORD), "record");
    assert_string_equal(sync_step_name(SYNC_STEP_CONFIGURE), "configure");
    assert_string_equal(sync_step_name(SYNC_STEP_WAIT), "wait");
    assert_string_equal(sync_step_name((enum sync_step)9), "invalid");
}

/* ---- Sets ---- */

static void test_set_add_keeps_names_sorted(void **state)
{
    (void)state;
    struct sync_set s = set_of(2, "node3 node10 node2 a");
    assert_string_equal(show(&s), "k=2 (a, node10, node2, node3)");
}

static void test_set_add_refuses_a_duplicate(void **state)
{
    struct sync_set s = set_of(1, "node2");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_add(&s, "node2", errmsg), RPG_EEXIST);
    assert_string_equal(errmsg, "synchronous standby \"node2\" listed twice");
    assert_int_equal(s.n, 1);
}

static void test_set_add_refuses_an_empty_name(void **state)
{
    struct sync_set s = set_of(1, "");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_add(&s, "", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous standby name is empty");
}

static void test_set_add_refuses_a_name_of_64_characters(void **state)
{
    struct sync_set s = set_of(1, "");
    char name[65];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    memset(name, 'x', 64);
    name[64] = '\0';
    assert_int_equal(sync_set_add(&s, name, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous standby name \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" "
                                "is longer than 63");
    name[63] = '\0';
    assert_int_equal(sync_set_add(&s, name, errmsg), 0);
}

static void test_set_add_refuses_a_name_postgresql_cannot_match(void **state)
{
    struct sync_set s = set_of(1, "");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_add(&s, "node\t2", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous standby name has byte 0x09 at offset 4: "
                                "application_name keeps printable ASCII only");
    assert_int_equal(s.n, 0);
}

static void test_set_add_refuses_a_seventeenth_name(void **state)
{
    struct sync_set s = set_of(1, "");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    char name[16];
    (void)state;
    for (int i = 0; i < FSM_MEMBERS_MAX; i++) {
        snprintf(name, sizeof name, "n%02d", i);
        assert_int_equal(sync_set_add(&s, name, errmsg), 0);
    }
    assert_int_equal(sync_set_add(&s, "n99", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "more than 16 synchronous standbys");
}

static void test_set_equal_compares_k_and_names(void **state)
{
    (void)state;
    struct sync_set a = set_of(1, "node2 node3");
    struct sync_set b = set_of(1, "node3 node2");
    struct sync_set c = set_of(2, "node2 node3");
    struct sync_set d = set_of(1, "node2 node4");
    assert_true(sync_set_equal(&a, &b));
    assert_false(sync_set_equal(&a, &c));
    assert_false(sync_set_equal(&a, &d));
}

static void test_set_contains_finds_only_its_names(void **state)
{
    (void)state;
    struct sync_set s = set_of(1, "node2 node4 node6");
    assert_true(sync_set_contains(&s, "node4"));
    assert_false(sync_set_contains(&s, "node3"));
    assert_false(sync_set_contains(&s, "Node4"));
}

static void test_set_covers_needs_names_recorded_and_k_no_lower(void **state)
{
    (void)state;
    struct sync_set rec = set_of(1, "node2 node3");
    struct sync_set narrower = set_of(1, "node2");
    struct sync_set higher_k = set_of(2, "node2 node3");
    struct sync_set lower_k = set_of(0, "");
    struct sync_set wider = set_of(1, "node2 node4");
    assert_true(sync_set_covers(&rec, &narrower));
    assert_true(sync_set_covers(&rec, &higher_k));
    assert_false(sync_set_covers(&rec, &lower_k));
    assert_false(sync_set_covers(&rec, &wider));
}

static void test_set_union_merges_names_with_smaller_k(void **state)
{
    struct sync_set a = set_of(2, "node2 node5");
    struct sync_set b = set_of(1, "node3 node2");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_union(&a, &b, &a, errmsg), 0);
    assert_string_equal(show(&a), "k=1 (node2, node3, node5)");
}

static void test_set_union_refuses_more_than_16_names(void **state)
{
    struct sync_set a = set_of(1, "");
    struct sync_set b = set_of(1, "");
    struct sync_set out = set_of(3, "x");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    char name[16];
    (void)state;
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof name, "a%d", i);
        sync_set_add(&a, name, NULL);
        snprintf(name, sizeof name, "b%d", i);
        sync_set_add(&b, name, NULL);
    }
    assert_int_equal(sync_set_union(&a, &b, &out, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous set would name more than 16 members");
    assert_string_equal(show(&out), "k=3 (x)");
}

/* ---- synchronous_standby_names ---- */

static void test_format_two_standbys(void **state)
{
    struct sync_set s = set_of(1, "node3 node2");
    char buf[SYNC_VALUE_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), 0);
    assert_string_equal(buf, "ANY 1 (\"node2\", \"node3\")");
}

static void test_format_asynchronous_is_empty(void **state)
{
    struct sync_set s = set_of(0, "node2");
    char buf[SYNC_VALUE_MAX] = "junk";
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), 0);
    assert_string_equal(buf, "");
}

static void test_format_doubles_quotes_in_names(void **state)
{
    struct sync_set s = set_of(2, "a\"b c");
    char buf[SYNC_VALUE_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), 0);
    assert_string_equal(buf, "ANY 2 (\"a\"\"b\", \"c\")");
}

static void test_format_refuses_k_without_names(void **state)
{
    struct sync_set s = set_of(1, "");
    char buf[SYNC_VALUE_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous_standby_names cannot ask for k=1 with no name");
}

static void test_format_refuses_a_small_buffer(void **state)
{
    struct sync_set s = set_of(1, "node2");
    char buf[15]; /* 'ANY 1 ("node2")' needs 16 with its terminator */
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous_standby_names does not fit in 15 bytes");
    assert_string_equal(buf, "");
    char fits[16];
    assert_int_equal(sync_set_format(&s, fits, sizeof fits, errmsg), 0);
    assert_string_equal(fits, "ANY 1 (\"node2\")");
}

static void test_format_fits_the_longest_set_in_sync_value_max(void **state)
{
    struct sync_set s;
    char buf[SYNC_VALUE_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    sync_set_init(&s, FSM_MEMBERS_MAX);
    for (int i = 0; i < FSM_MEMBERS_MAX; i++) {
        char name[FSM_NAME_MAX];
        memset(name, '"', FSM_NAME_MAX - 1);
        name[FSM_NAME_MAX - 1] = '\0';
        name[0] = (char)('A' + i);
        assert_int_equal(sync_set_add(&s, name, errmsg), 0);
    }
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), 0);
    assert_int_equal(strlen(buf), 8 + 16 * (1 + 62 * 2 + 2) + 15 * 2 + 1);
}

static void test_parse_reads_what_format_writes(void **state)
{
    struct sync_set s = set_of(2, "a\"b node2 node3");
    struct sync_set back;
    char buf[SYNC_VALUE_MAX];
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_format(&s, buf, sizeof buf, errmsg), 0);
    assert_int_equal(sync_set_parse(buf, &back, errmsg), 0);
    assert_true(sync_set_equal(&s, &back));
    assert_string_equal(show(&back), "k=2 (a\"b, node2, node3)");
}

static void test_parse_empty_is_asynchronous(void **state)
{
    struct sync_set s = set_of(2, "node2");
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_parse("", &s, errmsg), 0);
    assert_string_equal(show(&s), "k=0 ()");
}

static void test_parse_sorts_names(void **state)
{
    struct sync_set s;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_parse("ANY 16 (\"node3\", \"node2\")", &s, errmsg), 0);
    assert_string_equal(show(&s), "k=16 (node2, node3)");
}

static void test_parse_refuses_forms_raftpg_does_not_write(void **state)
{
    static const struct {
        const char *value;
        const char *error;
    } rows[] = {
        {"FIRST 1 (\"node2\")", "expected 'ANY ' at offset 0"},
        {"node2", "expected 'ANY ' at offset 0"},
        {"*", "expected 'ANY ' at offset 0"},
        {"any 1 (\"node2\")", "expected 'ANY ' at offset 0"},
        {"ANY 0 (\"node2\")", "expected k in 1..16 at offset 4"},
        {"ANY 01 (\"node2\")", "expected k in 1..16 at offset 4"},
        {"ANY 17 (\"node2\")", "expected k in 1..16 at offset 5"},
        {"ANY 1 (node2)", "expected a quoted name at offset 7"},
        {"ANY 1 (*)", "expected a quoted name at offset 7"},
        {"ANY 1(\"node2\")", "expected ' (' at offset 5"},
        {"ANY 1 (\"node2\",\"node3\")", "expected ', ' or a final ')' at offset 14"},
        {"ANY 1 (\"node2\")x", "expected ', ' or a final ')' at offset 14"},
        {"ANY 1 (\"node2\"", "expected ', ' or a final ')' at offset 14"},
        {"ANY 1 (\"node2)", "expected a closing quote at offset 14"},
        {"ANY 1 ()", "expected a quoted name at offset 7"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct sync_set s = set_of(3, "keep");
        char errmsg[RPG_ERRMSG_SIZE] = "";
        char want[RPG_ERRMSG_SIZE];
        snprintf(want, sizeof want,
                 "synchronous_standby_names '%s' is not a form raftpg writes: %s", rows[i].value,
                 rows[i].error);
        assert_int_equal(sync_set_parse(rows[i].value, &s, errmsg), RPG_EINVAL);
        assert_string_equal(errmsg, want);
        assert_string_equal(show(&s), "k=3 (keep)");
    }
}

static void test_parse_refuses_a_duplicate_name(void **state)
{
    struct sync_set s;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_parse("ANY 1 (\"node2\", \"node2\")", &s, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous_standby_names 'ANY 1 (\"node2\", \"node2\")': "
                                "synchronous standby \"node2\" listed twice");
}

static void test_parse_refuses_an_empty_quoted_name(void **state)
{
    struct sync_set s;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    assert_int_equal(sync_set_parse("ANY 1 (\"\")", &s, errmsg), RPG_EINVAL);
    assert_string_equal(
        errmsg, "synchronous_standby_names 'ANY 1 (\"\")': synchronous standby name is empty");
}

/* ---- The replicated state ---- */

static void test_set_round_trips_through_the_state_machine(void **state)
{
    struct fsm_state st;
    struct fsm_cmd c;
    struct sync_set s = set_of(1, "node3 node2");
    struct sync_set back;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;

    fsm_state_init(&st);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_INIT;
    snprintf(c.u.init.scope, sizeof c.u.init.scope, "main");
    c.u.init.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        struct fsm_member *m = &c.u.init.members[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "node%u", i + 1);
        snprintf(m->raft_address, sizeof m->raft_address, "10.0.0.%u:7000", i + 1);
        snprintf(m->api_address, sizeof m->api_address, "10.0.0.%u:8008", i + 1);
    }
    assert_int_equal(fsm_state_apply(&st, &c, errmsg), 0);

    sync_set_to_cmd(&s, 7, &c);
    assert_int_equal(c.type, FSM_CMD_SET_SYNC);
    assert_int_equal(c.term, 7);
    assert_int_equal(fsm_state_apply(&st, &c, errmsg), 0);
    assert_int_equal(st.sync.k, 1);
    assert_int_equal(st.sync.n_voters, 2);
    assert_string_equal(st.sync.voters[0], "node2");
    assert_string_equal(st.sync.voters[1], "node3");

    assert_int_equal(sync_set_from_state(&st, &back, errmsg), 0);
    assert_true(sync_set_equal(&s, &back));
}

static void test_set_from_state_sorts_voters(void **state)
{
    struct fsm_state st;
    struct sync_set s;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    fsm_state_init(&st);
    st.sync.k = 2;
    st.sync.n_voters = 3;
    snprintf(st.sync.voters[0], FSM_NAME_MAX, "node4");
    snprintf(st.sync.voters[1], FSM_NAME_MAX, "node2");
    snprintf(st.sync.voters[2], FSM_NAME_MAX, "node3");
    assert_int_equal(sync_set_from_state(&st, &s, errmsg), 0);
    assert_string_equal(show(&s), "k=2 (node2, node3, node4)");
}

static void test_set_from_state_refuses_a_duplicate_voter(void **state)
{
    struct fsm_state st;
    struct sync_set s;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    fsm_state_init(&st);
    st.sync.k = 1;
    st.sync.n_voters = 2;
    snprintf(st.sync.voters[0], FSM_NAME_MAX, "node2");
    snprintf(st.sync.voters[1], FSM_NAME_MAX, "node2");
    assert_int_equal(sync_set_from_state(&st, &s, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "recorded synchronous set: voter 1: synchronous standby "
                                "\"node2\" listed twice");
}

/* ---- The desired set: membership events ---- */

static void test_desired_names_every_healthy_standby(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    assert_string_equal(desired(&w), "k=1 (node2, node3)");
    assert_false(w.degraded);
}

static void test_desired_member_joins_adds_it(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    world_add(&w, "node4");
    assert_string_equal(desired(&w), "k=1 (node2, node3, node4)");
    assert_false(w.degraded);
}

static void test_desired_member_leaves_drops_it(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    world_remove(&w, "node2");
    assert_string_equal(desired(&w), "k=1 (node3)");
    assert_false(w.degraded);
}

static void test_desired_member_fails_drops_it(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node3")->streaming = false;
    assert_string_equal(desired(&w), "k=1 (node2)");
    assert_false(w.degraded);
}

static void test_desired_member_recovers_caught_up_adds_it_back(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node3")->streaming = false;
    assert_string_equal(desired(&w), "k=1 (node2)");
    standby(&w, "node3")->streaming = true;
    assert_string_equal(desired(&w), "k=1 (node2, node3)");
}

static void test_desired_member_recovers_behind_stays_out_until_caught_up(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node3")->flush_position = FLUSH - LAG_MAX - 1;
    assert_string_equal(desired(&w), "k=1 (node2)");
    standby(&w, "node3")->flush_position = FLUSH - LAG_MAX;
    assert_string_equal(desired(&w), "k=1 (node2, node3)");
}

static void test_desired_nosync_tag_set_drops_it(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node2")->nosync = true;
    assert_string_equal(desired(&w), "k=1 (node3)");
}

static void test_desired_nosync_tag_cleared_adds_it(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node2")->nosync = true;
    assert_string_equal(desired(&w), "k=1 (node3)");
    standby(&w, "node2")->nosync = false;
    assert_string_equal(desired(&w), "k=1 (node2, node3)");
}

static void test_desired_lagging_standby_left_out(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    standby(&w, "node2")->flush_position = 0;
    assert_string_equal(desired(&w), "k=1 (node3)");
    assert_false(w.degraded);
}

static void test_desired_standby_ahead_of_primary_is_caught_up(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2");
    w.in.max_lag_bytes = 0;
    standby(&w, "node2")->flush_position = FLUSH + 100;
    assert_string_equal(desired(&w), "k=1 (node2)");
}

static void test_desired_nosync_standby_never_counts_in_strict(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node3");
    w.in.mode = SYNC_MODE_STRICT;
    w.in.k_wanted = 2;
    standby(&w, "node3")->nosync = true;
    assert_string_equal(desired(&w), "k=2 (node2)");
    assert_true(w.degraded);
}

/* ---- The desired set: every mode with 0..3 healthy standbys and k 1..3 ---- */

struct mode_row {
    unsigned healthy; /* node2.. healthy, the rest of node2..node4 not streaming */
    uint32_t k;
    const char *set;
    bool degraded;
};

static void check_mode_rows(enum sync_mode mode, const struct mode_row *rows, size_t n)
{
    static const char *const names[] = {"node2", "node3", "node4"};
    for (size_t i = 0; i < n; i++) {
        struct world w;
        world_init(&w, "node2 node3 node4");
        w.in.mode = mode;
        w.in.k_wanted = rows[i].k;
        for (unsigned j = rows[i].healthy; j < 3; j++) {
            standby(&w, names[j])->streaming = false;
        }
        const char *got = desired(&w);
        if (strcmp(got, rows[i].set) != 0 || w.degraded != rows[i].degraded) {
            fail_msg("%s healthy=%u k=%u: got %s degraded=%d, want %s degraded=%d",
                     sync_mode_name(mode), rows[i].healthy, (unsigned)rows[i].k, got, w.degraded,
                     rows[i].set, rows[i].degraded);
        }
    }
}

static void test_desired_off_is_always_asynchronous(void **state)
{
    static const struct mode_row rows[] = {
        {0, 1, "k=0 ()", false}, {0, 2, "k=0 ()", false}, {0, 3, "k=0 ()", false},
        {1, 1, "k=0 ()", false}, {1, 2, "k=0 ()", false}, {1, 3, "k=0 ()", false},
        {2, 1, "k=0 ()", false}, {2, 2, "k=0 ()", false}, {2, 3, "k=0 ()", false},
        {3, 1, "k=0 ()", false}, {3, 2, "k=0 ()", false}, {3, 3, "k=0 ()", false},
    };
    (void)state;
    check_mode_rows(SYNC_MODE_OFF, rows, sizeof rows / sizeof rows[0]);
}

static void test_desired_quorum_lowers_k_to_the_healthy_standbys(void **state)
{
    static const struct mode_row rows[] = {
        {0, 1, "k=0 ()", true},
        {0, 2, "k=0 ()", true},
        {0, 3, "k=0 ()", true},
        {1, 1, "k=1 (node2)", false},
        {1, 2, "k=1 (node2)", true},
        {1, 3, "k=1 (node2)", true},
        {2, 1, "k=1 (node2, node3)", false},
        {2, 2, "k=2 (node2, node3)", false},
        {2, 3, "k=2 (node2, node3)", true},
        {3, 1, "k=1 (node2, node3, node4)", false},
        {3, 2, "k=2 (node2, node3, node4)", false},
        {3, 3, "k=3 (node2, node3, node4)", false},
    };
    (void)state;
    check_mode_rows(SYNC_MODE_QUORUM, rows, sizeof rows / sizeof rows[0]);
}

static void test_desired_strict_keeps_k_over_every_sync_standby(void **state)
{
    static const struct mode_row rows[] = {
        {0, 1, "k=1 (node2, node3, node4)", true},  {0, 2, "k=2 (node2, node3, node4)", true},
        {0, 3, "k=3 (node2, node3, node4)", true},  {1, 1, "k=1 (node2)", false},
        {1, 2, "k=2 (node2, node3, node4)", true},  {1, 3, "k=3 (node2, node3, node4)", true},
        {2, 1, "k=1 (node2, node3)", false},        {2, 2, "k=2 (node2, node3)", false},
        {2, 3, "k=3 (node2, node3, node4)", true},  {3, 1, "k=1 (node2, node3, node4)", false},
        {3, 2, "k=2 (node2, node3, node4)", false}, {3, 3, "k=3 (node2, node3, node4)", false},
    };
    (void)state;
    check_mode_rows(SYNC_MODE_STRICT, rows, sizeof rows / sizeof rows[0]);
}

static void test_desired_strict_without_standbys_names_the_primary(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "");
    w.in.mode = SYNC_MODE_STRICT;
    w.in.k_wanted = 2;
    assert_string_equal(desired(&w), "k=2 (node1)");
    assert_true(w.degraded);
}

static void test_desired_strict_with_only_nosync_standbys_names_the_primary(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2");
    w.in.mode = SYNC_MODE_STRICT;
    standby(&w, "node2")->nosync = true;
    assert_string_equal(desired(&w), "k=1 (node1)");
    assert_true(w.degraded);
}

static void test_desired_refuses_k_zero_outside_off(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2");
    w.in.k_wanted = 0;
    assert_int_equal(sync_desired(&w.in, &w.out, &w.degraded, w.errmsg), RPG_EINVAL);
    assert_string_equal(w.errmsg, "sync mode quorum: k=0 out of range 1..16");
}

static void test_desired_refuses_a_standby_named_like_the_primary(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node1");
    assert_int_equal(sync_desired(&w.in, &w.out, &w.degraded, w.errmsg), RPG_EINVAL);
    assert_string_equal(w.errmsg, "standby \"node1\" is the primary");
}

static void test_desired_refuses_a_standby_listed_twice(void **state)
{
    struct world w;
    (void)state;
    world_init(&w, "node2 node2");
    assert_int_equal(sync_desired(&w.in, &w.out, &w.degraded, w.errmsg), RPG_EINVAL);
    assert_string_equal(w.errmsg, "standby 1: synchronous standby \"node2\" listed twice");
}

/* ---- The order of rule 7 ---- */

static void test_decide_none_when_all_agree(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(1, "node2 node3"),
                set_of(1, "node2 node3"));
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_NONE);
    assert_string_equal(l.d.why, "synchronous set is current: ANY 1 (\"node2\", \"node3\")");
}

static void test_decide_member_joins_records_it_before_configuring(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(1, "node2"), set_of(1, "node2"),
                set_of(1, "node2 node3"));
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_RECORD);
    assert_string_equal(show(&l.d.set), "k=1 (node2, node3)");
    assert_string_equal(l.d.why, "record k=1 (node2, node3) before PostgreSQL relies on it "
                                 "(rule 7)");
    assert_string_equal(walk(&l), "record k=1 (node2, node3); "
                                  "configure 'ANY 1 (\"node2\", \"node3\")'; none");
}

static void
test_decide_member_joins_with_higher_k_records_union_configures_then_raises(void **state)
{
    struct leader l;
    (void)state;
    /* Quorum mode with k = 2 had only node2; node3 joins and catches up. */
    leader_init(&l, "node2 node3", set_of(1, "node2"), set_of(1, "node2"),
                set_of(2, "node2 node3"));
    assert_string_equal(walk(&l), "record k=1 (node2, node3); "
                                  "configure 'ANY 2 (\"node2\", \"node3\")'; "
                                  "record k=2 (node2, node3); none");
}

static void test_decide_member_fails_configures_before_recording(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(1, "node2 node3"),
                set_of(1, "node2"));
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_CONFIGURE);
    assert_string_equal(l.d.why, "set synchronous_standby_names to 'ANY 1 (\"node2\")'");
    assert_string_equal(walk(&l), "configure 'ANY 1 (\"node2\")'; record k=1 (node2); none");
}

static void test_decide_narrowing_waits_until_remaining_voters_flushed(void **state)
{
    struct leader l;
    (void)state;
    /* PostgreSQL already dropped node3, which may alone hold commits up to FLUSH; node2 has
     * not flushed that far yet. */
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(1, "node2"),
                set_of(1, "node2"));
    standby(&l.w, "node2")->flush_position = FLUSH - 1;
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_WAIT);
    assert_string_equal(l.d.why, "waiting to record k=1 (node2): 0 of its voters flushed up to "
                                 "0/3000000, need 1");
    standby(&l.w, "node2")->flush_position = FLUSH;
    assert_string_equal(walk(&l), "record k=1 (node2); none");
}

static void test_decide_replacing_a_voter_records_union_configures_then_narrows(void **state)
{
    struct leader l;
    (void)state;
    /* node2 fails while node3 recovers. */
    leader_init(&l, "node2 node3", set_of(1, "node2"), set_of(1, "node2"), set_of(1, "node3"));
    assert_string_equal(walk(&l), "record k=1 (node2, node3); configure 'ANY 1 (\"node3\")'; "
                                  "record k=1 (node3); none");
}

static void test_decide_k_up_configures_then_records(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(1, "node2 node3"),
                set_of(2, "node2 node3"));
    assert_string_equal(walk(&l), "configure 'ANY 2 (\"node2\", \"node3\")'; "
                                  "record k=2 (node2, node3); none");
}

static void test_decide_k_up_waits_for_k_voters_flushed(void **state)
{
    struct leader l;
    (void)state;
    /* Under k = 1 a commit up to FLUSH may be on node2 alone. */
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(2, "node2 node3"),
                set_of(2, "node2 node3"));
    standby(&l.w, "node3")->flush_position = FLUSH - 8;
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_WAIT);
    assert_string_equal(l.d.why, "waiting to record k=2 (node2, node3): 1 of its voters flushed "
                                 "up to 0/3000000, need 2");
}

static void test_decide_k_down_records_before_configuring(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(2, "node2 node3"), set_of(2, "node2 node3"),
                set_of(1, "node2 node3"));
    assert_string_equal(walk(&l), "record k=1 (node2, node3); "
                                  "configure 'ANY 1 (\"node2\", \"node3\")'; none");
}

static void test_decide_to_asynchronous_records_k_zero_first(void **state)
{
    struct leader l;
    (void)state;
    /* Quorum mode, the last synchronous standby fails. */
    leader_init(&l, "node2", set_of(1, "node2"), set_of(1, "node2"), set_of(0, ""));
    decide(&l);
    assert_int_equal(l.d.step, SYNC_STEP_RECORD);
    assert_string_equal(show(&l.d.set), "k=0 (node2)");
    assert_string_equal(walk(&l), "record k=0 (node2); configure ''; record k=0 (); none");
    assert_string_equal(l.d.why, "synchronous set is current: asynchronous");
}

static void test_decide_back_from_asynchronous_waits_for_the_standby_to_catch_up(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2", set_of(0, ""), set_of(0, ""), set_of(1, "node2"));
    assert_string_equal(walk(&l), "record k=0 (node2); configure 'ANY 1 (\"node2\")'; "
                                  "record k=1 (node2); none");

    /* Same, with writes acknowledged asynchronously up to FLUSH + 4096 that node2 has yet to
     * receive when PostgreSQL turns synchronous: the log claims k = 1 only once it has. */
    leader_init(&l, "node2", set_of(0, ""), set_of(0, ""), set_of(1, "node2"));
    l.w.in.primary_flush_position = FLUSH + 4096;
    assert_string_equal(walk(&l), "record k=0 (node2); configure 'ANY 1 (\"node2\")'; wait");
    standby(&l.w, "node2")->flush_position = FLUSH + 4096;
    assert_string_equal(walk(&l), "record k=1 (node2); none");
}

static void test_decide_strict_keeps_blocking_when_a_standby_fails(void **state)
{
    struct leader l;
    (void)state;
    leader_init(&l, "node2 node3", set_of(2, "node2 node3"), set_of(2, "node2 node3"),
                set_of(0, ""));
    l.w.in.mode = SYNC_MODE_STRICT;
    l.w.in.k_wanted = 2;
    standby(&l.w, "node3")->streaming = false;
    bool degraded;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(sync_desired(&l.w.in, &l.want, &degraded, errmsg), 0);
    assert_true(degraded);
    assert_string_equal(walk(&l), "none");
}

static void test_decide_strict_k_above_standbys_records_k_at_most_n(void **state)
{
    struct leader l;
    (void)state;
    /* Strict k = 2 with node2 the only standby that may be synchronous: PostgreSQL asks for
     * two acknowledgements and blocks; the log cannot claim more than its one voter. */
    leader_init(&l, "node2", set_of(1, "node2"), set_of(1, "node2"), set_of(2, "node2"));
    assert_string_equal(walk(&l), "configure 'ANY 2 (\"node2\")'; none");
    assert_string_equal(show(&l.recorded), "k=1 (node2)");
}

static void test_decide_strict_without_standbys_records_the_primary(void **state)
{
    struct leader l;
    (void)state;
    /* node2 got tagged nosync in strict mode: only the primary holds every commit. */
    leader_init(&l, "node2", set_of(1, "node2"), set_of(1, "node2"), set_of(1, "node1"));
    standby(&l.w, "node2")->nosync = true;
    assert_string_equal(walk(&l), "record k=1 (node1, node2); configure 'ANY 1 (\"node1\")'; "
                                  "record k=1 (node1); none");
}

static void test_decide_asynchronous_postgresql_under_a_sync_record_records_k_zero(void **state)
{
    struct leader l;
    (void)state;
    /* A new primary whose PostgreSQL came up asynchronous: the log must stop claiming k = 1
     * before anything else. */
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(0, ""),
                set_of(1, "node2 node3"));
    decide(&l);
    assert_string_equal(l.d.why, "record k=0 (node2, node3): PostgreSQL runs with a set the log "
                                 "does not cover");
    assert_string_equal(walk(&l), "record k=0 (node2, node3); "
                                  "configure 'ANY 1 (\"node2\", \"node3\")'; "
                                  "record k=1 (node2, node3); none");
}

static void test_decide_refuses_an_unsorted_set(void **state)
{
    struct leader l;
    struct sync_decision d;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    leader_init(&l, "node2 node3", set_of(1, "node2 node3"), set_of(1, "node2 node3"),
                set_of(1, "node2 node3"));
    memcpy(l.configured.names[0], "node3", 6);
    memcpy(l.configured.names[1], "node2", 6);
    assert_int_equal(sync_decide(&l.w.in, &l.recorded, &l.configured, l.since, &l.want, &d, errmsg),
                     RPG_EINVAL);
    assert_string_equal(errmsg, "configured synchronous set: names not sorted and distinct at "
                                "\"node2\"");
}

static void test_decide_refuses_a_union_above_16_names(void **state)
{
    struct leader l;
    struct sync_decision d;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    (void)state;
    leader_init(&l, "", set_of(1, "a0 a1 a2 a3 a4 a5 a6 a7 a8"), set_of(1, "a0"),
                set_of(1, "b0 b1 b2 b3 b4 b5 b6 b7"));
    assert_int_equal(sync_decide(&l.w.in, &l.recorded, &l.configured, l.since, &l.want, &d, errmsg),
                     RPG_EINVAL);
    assert_string_equal(errmsg, "synchronous set would name more than 16 members");
}

/* ---- The order of rule 7: property ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

#define POOL 8 /* standbys node2..node9 */

static struct sync_set random_subset(struct rng *r, const struct sync_set *of)
{
    struct sync_set s;
    sync_set_init(&s, 0);
    for (unsigned i = 0; i < of->n; i++) {
        if (rng_below(r, 2) == 0) {
            sync_set_add(&s, of->names[i], NULL);
        }
    }
    return s;
}

static struct sync_set pool_set(void)
{
    return set_of(0, "node2 node3 node4 node5 node6 node7 node8 node9");
}

/* Any set sync_desired could give, and some it could not (k above n in quorum mode). */
static struct sync_set random_desired(struct rng *r)
{
    struct sync_set pool = pool_set();
    struct sync_set d;
    if (rng_below(r, 10) == 0) {
        d = set_of(1 + rng_below(r, 2), PRIMARY);
        return d;
    }
    d = random_subset(r, &pool);
    d.k = d.n == 0 ? 0 : 1 + rng_below(r, d.n + 1);
    return d;
}

/* The highest position acknowledged under configured: every flushed position when it is
 * asynchronous, else the k-th highest flush position among its standbys (the primary named in
 * a set never acknowledges), 0 when fewer than k stream. */
static uint64_t acknowledged(const struct leader *l)
{
    uint64_t pos[FSM_MEMBERS_MAX];
    unsigned n = 0;

    if (l->configured.k == 0) {
        return l->w.in.primary_flush_position;
    }
    for (unsigned i = 0; i < l->w.in.n_standbys; i++) {
        if (sync_set_contains(&l->configured, l->w.standbys[i].name)) {
            pos[n++] = l->w.standbys[i].flush_position;
        }
    }
    if (n < l->configured.k) {
        return 0;
    }
    for (unsigned i = 0; i < n; i++) { /* selection sort, descending */
        for (unsigned j = i + 1; j < n; j++) {
            if (pos[j] > pos[i]) {
                uint64_t t = pos[i];
                pos[i] = pos[j];
                pos[j] = t;
            }
        }
    }
    return pos[l->configured.k - 1];
}

/* P of sync.h: the highest acknowledged position is on at least k recorded voters. */
static bool claim_holds(const struct leader *l, uint64_t acked)
{
    unsigned holders = 0;
    if (l->recorded.k == 0) {
        return true;
    }
    for (unsigned i = 0; i < l->recorded.n; i++) {
        if (strcmp(l->recorded.names[i], PRIMARY) == 0) {
            holders++;
            continue;
        }
        for (unsigned j = 0; j < l->w.in.n_standbys; j++) {
            if (strcmp(l->w.standbys[j].name, l->recorded.names[i]) == 0 &&
                l->w.standbys[j].flush_position >= acked) {
                holders++;
            }
        }
    }
    return holders >= l->recorded.k;
}

static void random_start(struct rng *r, struct leader *l)
{
    struct sync_set pool = pool_set();
    struct sync_set rec = random_subset(r, &pool);
    struct sync_set conf;

    rec.k = rng_below(r, rec.n + 1);
    if (rec.k == 0 && (rec.n == 0 || rng_below(r, 3) == 0)) {
        conf = set_of(0, "");
    } else {
        do {
            conf = random_subset(r, &rec);
        } while (conf.n == 0);
        uint32_t lo = rec.k > 0 ? rec.k : 1;
        uint32_t hi = (conf.n > lo ? conf.n : lo) + 1;
        conf.k = lo + rng_below(r, hi - lo + 1);
    }
    leader_init(l, "node2 node3 node4 node5 node6 node7 node8 node9", rec, conf, random_desired(r));
}

static void test_decide_property_keeps_invariant_and_claim_and_converges(void **state)
{
    struct rng r = {0x9e3779b97f4a7c15ull};
    (void)state;

    for (int trial = 0; trial < 20000; trial++) {
        struct leader l;
        random_start(&r, &l);
        assert_true(sync_set_covers(&l.recorded, &l.configured));
        uint64_t acked = l.w.in.primary_flush_position;

        /* Writes, replication and changes of the desired set interleaved with the steps. */
        for (int i = 0; i < 40; i++) {
            l.w.in.primary_flush_position += rng_below(&r, 100);
            for (unsigned j = 0; j < l.w.in.n_standbys; j++) {
                struct sync_standby *sb = &l.w.standbys[j];
                if (rng_below(&r, 2) == 0) {
                    sb->flush_position += rng_below(&r, 150);
                    if (sb->flush_position > l.w.in.primary_flush_position) {
                        sb->flush_position = l.w.in.primary_flush_position;
                    }
                }
            }
            uint64_t a = acknowledged(&l);
            acked = a > acked ? a : acked;
            if (!claim_holds(&l, acked)) {
                fail_msg("trial %d step %d: acknowledged %llu not on k of %s", trial, i,
                         (unsigned long long)acked, show(&l.recorded));
            }
            if (rng_below(&r, 8) == 0) {
                l.want = random_desired(&r);
            }
            decide(&l);
            apply_step(&l);
            if (!sync_set_covers(&l.recorded, &l.configured)) {
                fail_msg("trial %d step %d: recorded %s does not cover configured %s", trial, i,
                         show(&l.recorded), show(&l.configured));
            }
            if (!claim_holds(&l, acked)) {
                fail_msg("trial %d step %d: after %s, acknowledged %llu not on k of %s", trial, i,
                         sync_step_name(l.d.step), (unsigned long long)acked, show(&l.recorded));
            }
        }

        /* The desired set holds still and the standbys catch up when asked: it ends. */
        unsigned acting = 0;
        for (int i = 0; i < 12 && l.d.step != SYNC_STEP_NONE; i++) {
            decide(&l);
            if (l.d.step == SYNC_STEP_WAIT) {
                for (unsigned j = 0; j < l.w.in.n_standbys; j++) {
                    l.w.standbys[j].flush_position = l.w.in.primary_flush_position;
                }
            } else if (l.d.step != SYNC_STEP_NONE) {
                acting++;
            }
            apply_step(&l);
            assert_true(sync_set_covers(&l.recorded, &l.configured));
        }
        struct sync_set target = l.want;
        if (target.k > target.n) {
            target.k = target.n;
        }
        if (l.d.step != SYNC_STEP_NONE || acting > 3 || !sync_set_equal(&l.configured, &l.want) ||
            !sync_set_equal(&l.recorded, &target)) {
            fail_msg("trial %d: ended at %s after %u steps: recorded %s configured %s desired %s",
                     trial, sync_step_name(l.d.step), acting, show(&l.recorded),
                     show(&l.configured), show(&l.want));
        }
    }
}

/* ---- Candidate choice ---- */

static void test_quorum_needed_any_1_of_2_is_2(void **state)
{
    struct sync_set s = set_of(1, "node2 node3");
    bool provable = false;
    (void)state;
    assert_int_equal(sync_quorum_needed(&s, &provable), 2);
    assert_true(provable);
}

static void test_quorum_needed_any_2_of_3_is_2(void **state)
{
    struct sync_set s = set_of(2, "node2 node3 node4");
    bool provable = false;
    (void)state;
    assert_int_equal(sync_quorum_needed(&s, &provable), 2);
    assert_true(provable);
}

static void test_quorum_needed_all_of_n_is_1(void **state)
{
    struct sync_set s = set_of(3, "node2 node3 node4");
    bool provable = false;
    (void)state;
    assert_int_equal(sync_quorum_needed(&s, &provable), 1);
    assert_true(provable);
}

static void test_quorum_needed_asynchronous_is_not_provable(void **state)
{
    struct sync_set s = set_of(0, "node2");
    bool provable = true;
    (void)state;
    assert_int_equal(sync_quorum_needed(&s, &provable), 0);
    assert_false(provable);
}

static void test_quorum_needed_k_above_voters_is_not_provable(void **state)
{
    struct sync_set s = set_of(2, "node2");
    bool provable = true;
    (void)state;
    assert_int_equal(sync_quorum_needed(&s, &provable), 0);
    assert_false(provable);
}

static void test_candidate_voter_hearing_only_itself_is_refused(void **state)
{
    /* node3 was primary with ANY 1 (node1, node2); node1 leads now. */
    struct sync_set s = set_of(1, "node1 node2");
    const char *heard[] = {"node1"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, heard, 1, why, sizeof why));
    assert_string_equal(why, "heard from 1 of the synchronous voters (node1, node2) with k=1: "
                             "need 2");
}

static void test_candidate_voter_hearing_the_other_voter_is_ok(void **state)
{
    struct sync_set s = set_of(1, "node1 node2");
    const char *heard[] = {"node1", "node2"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_true(sync_candidate_ok(&s, heard, 2, why, sizeof why));
    assert_string_equal(why, "heard from 2 of the synchronous voters (node1, node2) with k=1: "
                             "need 2");
}

static void test_candidate_non_voter_hearing_only_itself_is_refused(void **state)
{
    /* ANY 1 (b, c): leader a is no voter; a commit may be on c alone. */
    struct sync_set s = set_of(1, "b c");
    const char *heard[] = {"a"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, heard, 1, why, sizeof why));
    assert_string_equal(why, "heard from 0 of the synchronous voters (b, c) with k=1: need 2");
}

static void test_candidate_non_voter_hearing_one_of_two_voters_is_refused(void **state)
{
    struct sync_set s = set_of(1, "b c");
    const char *heard[] = {"a", "b"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, heard, 2, why, sizeof why));
    assert_string_equal(why, "heard from 1 of the synchronous voters (b, c) with k=1: need 2");
}

static void test_candidate_non_voter_hearing_both_voters_is_ok(void **state)
{
    struct sync_set s = set_of(1, "b c");
    const char *heard[] = {"a", "c", "b"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_true(sync_candidate_ok(&s, heard, 3, why, sizeof why));
}

static void test_candidate_any_2_of_3_needs_2_of_them(void **state)
{
    struct sync_set s = set_of(2, "b c d");
    const char *one[] = {"a", "d"};
    const char *two[] = {"a", "d", "b"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, one, 2, why, sizeof why));
    assert_string_equal(why, "heard from 1 of the synchronous voters (b, c, d) with k=2: need 2");
    assert_true(sync_candidate_ok(&s, two, 3, why, sizeof why));
    assert_string_equal(why, "heard from 2 of the synchronous voters (b, c, d) with k=2: need 2");
}

static void test_candidate_counts_a_voter_heard_twice_once(void **state)
{
    struct sync_set s = set_of(1, "b c");
    const char *heard[] = {"b", "b"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, heard, 2, why, sizeof why));
    assert_string_equal(why, "heard from 1 of the synchronous voters (b, c) with k=1: need 2");
}

static void test_candidate_refused_after_asynchronous_record(void **state)
{
    struct sync_set s = set_of(0, "");
    const char *heard[] = {"a", "b", "c"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, heard, 3, why, sizeof why));
    assert_string_equal(why, "synchronous replication was off or degraded (k=0): no standby "
                             "provably holds every acknowledged commit");
}

static void test_candidate_primary_only_record_needs_the_old_primary(void **state)
{
    /* Strict mode with no standby that may be synchronous recorded ANY 1 (node1). */
    struct sync_set s = set_of(1, "node1");
    const char *without[] = {"node2", "node3"};
    const char *with[] = {"node2", "node1"};
    char why[SYNC_WHY_MAX];
    (void)state;
    assert_false(sync_candidate_ok(&s, without, 2, why, sizeof why));
    assert_string_equal(why, "heard from 0 of the synchronous voters (node1) with k=1: need 1");
    assert_true(sync_candidate_ok(&s, with, 2, why, sizeof why));
}

static void test_settings_in_force_file_until_recorded(void **state)
{
    (void)state;
    struct fsm_state s;
    fsm_state_init(&s);
    struct sync_settings in;
    sync_settings_in_force(&s, SYNC_MODE_STRICT, 2, FSM_SYNC_COMMIT_ON, &in);
    assert_false(in.recorded);
    assert_int_equal(in.mode, SYNC_MODE_STRICT);
    assert_int_equal(in.k, 2);
    sync_settings_in_force(NULL, SYNC_MODE_OFF, 1, FSM_SYNC_COMMIT_ON, &in);
    assert_false(in.recorded);
    assert_int_equal(in.mode, SYNC_MODE_OFF);
    s.config.set = true;
    s.config.sync_mode = SYNC_MODE_QUORUM;
    s.config.sync_node_count = 1;
    s.config.sync_commit = FSM_SYNC_COMMIT_ON;
    sync_settings_in_force(&s, SYNC_MODE_STRICT, 2, FSM_SYNC_COMMIT_ON, &in);
    assert_true(in.recorded);
    assert_int_equal(in.mode, SYNC_MODE_QUORUM);
    assert_int_equal(in.k, 1);
}

static void test_member_in_sets_recorded_or_configured(void **state)
{
    (void)state;
    struct fsm_state s;
    fsm_state_init(&s);
    s.sync.n_voters = 1;
    snprintf(s.sync.voters[0], sizeof s.sync.voters[0], "node2");
    assert_true(sync_member_in_sets(&s, NULL, "node2"));
    assert_false(sync_member_in_sets(&s, NULL, "node3"));
    assert_true(sync_member_in_sets(&s, "ANY 1 (\"node3\", \"node4\")", "node3"));
    assert_false(sync_member_in_sets(&s, "ANY 1 (\"node3\", \"node4\")", "node"));
    assert_false(sync_member_in_sets(&s, "", "node3"));
    /* A value not written by raftpg: the quoted name anywhere in it counts. */
    assert_true(sync_member_in_sets(&s, "FIRST 1 (\"node5\")", "node5"));
}

static void test_leave_waits_then_removes_or_gives_up(void **state)
{
    (void)state;
    unsigned ticks = 0;
    assert_int_equal(sync_leave_tick(true, true, &ticks), SYNC_LEAVE_WAIT);
    assert_int_equal(sync_leave_tick(true, false, &ticks), SYNC_LEAVE_REMOVE);
    assert_int_equal(sync_leave_tick(false, false, &ticks), SYNC_LEAVE_NOT_LEADER);
    ticks = 0;
    for (unsigned k = 1; k < SYNC_LEAVE_MAX_TICKS; k++) {
        assert_int_equal(sync_leave_tick(true, true, &ticks), SYNC_LEAVE_WAIT);
    }
    assert_int_equal(sync_leave_tick(true, true, &ticks), SYNC_LEAVE_TIMEOUT);
}

/* A member in no set goes at once; one in a set leaves it first, one removal waiting at a time. */
static void test_remove_start(void **state)
{
    (void)state;
    assert_int_equal(sync_remove_start("", "node3", false, NULL), SYNC_REMOVE_NOW);
    assert_int_equal(sync_remove_start("node2", "node3", false, ""), SYNC_REMOVE_NOW);
    assert_int_equal(sync_remove_start("", "node3", true, "node2"), SYNC_REMOVE_LEAVE_FIRST);
    assert_int_equal(sync_remove_start("node2", "node3", true, NULL), SYNC_REMOVE_BUSY);
    assert_int_equal(sync_remove_start("node3", "node3", true, NULL), SYNC_REMOVE_ALREADY);
    /* The candidate of a switchover under way stays until the switchover ends. */
    assert_int_equal(sync_remove_start("", "node3", true, "node3"), SYNC_REMOVE_SWITCHOVER);
    assert_int_equal(sync_remove_start("", "node3", false, "node3"), SYNC_REMOVE_SWITCHOVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_names),
        cmocka_unit_test(test_mode_parse_reads_every_name),
        cmocka_unit_test(test_mode_parse_rejects_other_words),
        cmocka_unit_test(test_step_names),
        cmocka_unit_test(test_set_add_keeps_names_sorted),
        cmocka_unit_test(test_set_add_refuses_a_duplicate),
        cmocka_unit_test(test_set_add_refuses_an_empty_name),
        cmocka_unit_test(test_set_add_refuses_a_name_of_64_characters),
        cmocka_unit_test(test_set_add_refuses_a_name_postgresql_cannot_match),
        cmocka_unit_test(test_set_add_refuses_a_seventeenth_name),
        cmocka_unit_test(test_set_equal_compares_k_and_names),
        cmocka_unit_test(test_set_contains_finds_only_its_names),
        cmocka_unit_test(test_set_covers_needs_names_recorded_and_k_no_lower),
        cmocka_unit_test(test_set_union_merges_names_with_smaller_k),
        cmocka_unit_test(test_set_union_refuses_more_than_16_names),
        cmocka_unit_test(test_format_two_standbys),
        cmocka_unit_test(test_format_asynchronous_is_empty),
        cmocka_unit_test(test_format_doubles_quotes_in_names),
        cmocka_unit_test(test_format_refuses_k_without_names),
        cmocka_unit_test(test_format_refuses_a_small_buffer),
        cmocka_unit_test(test_format_fits_the_longest_set_in_sync_value_max),
        cmocka_unit_test(test_parse_reads_what_format_writes),
        cmocka_unit_test(test_parse_empty_is_asynchronous),
        cmocka_unit_test(test_parse_sorts_names),
        cmocka_unit_test(test_parse_refuses_forms_raftpg_does_not_write),
        cmocka_unit_test(test_parse_refuses_a_duplicate_name),
        cmocka_unit_test(test_parse_refuses_an_empty_quoted_name),
        cmocka_unit_test(test_set_round_trips_through_the_state_machine),
        cmocka_unit_test(test_set_from_state_sorts_voters),
        cmocka_unit_test(test_set_from_state_refuses_a_duplicate_voter),
        cmocka_unit_test(test_desired_names_every_healthy_standby),
        cmocka_unit_test(test_desired_member_joins_adds_it),
        cmocka_unit_test(test_desired_member_leaves_drops_it),
        cmocka_unit_test(test_desired_member_fails_drops_it),
        cmocka_unit_test(test_desired_member_recovers_caught_up_adds_it_back),
        cmocka_unit_test(test_desired_member_recovers_behind_stays_out_until_caught_up),
        cmocka_unit_test(test_desired_nosync_tag_set_drops_it),
        cmocka_unit_test(test_desired_nosync_tag_cleared_adds_it),
        cmocka_unit_test(test_desired_lagging_standby_left_out),
        cmocka_unit_test(test_desired_standby_ahead_of_primary_is_caught_up),
        cmocka_unit_test(test_desired_nosync_standby_never_counts_in_strict),
        cmocka_unit_test(test_desired_off_is_always_asynchronous),
        cmocka_unit_test(test_desired_quorum_lowers_k_to_the_healthy_standbys),
        cmocka_unit_test(test_desired_strict_keeps_k_over_every_sync_standby),
        cmocka_unit_test(test_desired_strict_without_standbys_names_the_primary),
        cmocka_unit_test(test_desired_strict_with_only_nosync_standbys_names_the_primary),
        cmocka_unit_test(test_desired_refuses_k_zero_outside_off),
        cmocka_unit_test(test_desired_refuses_a_standby_named_like_the_primary),
        cmocka_unit_test(test_desired_refuses_a_standby_listed_twice),
        cmocka_unit_test(test_decide_none_when_all_agree),
        cmocka_unit_test(test_decide_member_joins_records_it_before_configuring),
        cmocka_unit_test(
            test_decide_member_joins_with_higher_k_records_union_configures_then_raises),
        cmocka_unit_test(test_decide_member_fails_configures_before_recording),
        cmocka_unit_test(test_decide_narrowing_waits_until_remaining_voters_flushed),
        cmocka_unit_test(test_decide_replacing_a_voter_records_union_configures_then_narrows),
        cmocka_unit_test(test_decide_k_up_configures_then_records),
        cmocka_unit_test(test_decide_k_up_waits_for_k_voters_flushed),
        cmocka_unit_test(test_decide_k_down_records_before_configuring),
        cmocka_unit_test(test_decide_to_asynchronous_records_k_zero_first),
        cmocka_unit_test(test_decide_back_from_asynchronous_waits_for_the_standby_to_catch_up),
        cmocka_unit_test(test_decide_strict_keeps_blocking_when_a_standby_fails),
        cmocka_unit_test(test_decide_strict_k_above_standbys_records_k_at_most_n),
        cmocka_unit_test(test_decide_strict_without_standbys_records_the_primary),
        cmocka_unit_test(test_decide_asynchronous_postgresql_under_a_sync_record_records_k_zero),
        cmocka_unit_test(test_decide_refuses_an_unsorted_set),
        cmocka_unit_test(test_decide_refuses_a_union_above_16_names),
        cmocka_unit_test(test_decide_property_keeps_invariant_and_claim_and_converges),
        cmocka_unit_test(test_quorum_needed_any_1_of_2_is_2),
        cmocka_unit_test(test_quorum_needed_any_2_of_3_is_2),
        cmocka_unit_test(test_quorum_needed_all_of_n_is_1),
        cmocka_unit_test(test_quorum_needed_asynchronous_is_not_provable),
        cmocka_unit_test(test_quorum_needed_k_above_voters_is_not_provable),
        cmocka_unit_test(test_candidate_voter_hearing_only_itself_is_refused),
        cmocka_unit_test(test_candidate_voter_hearing_the_other_voter_is_ok),
        cmocka_unit_test(test_candidate_non_voter_hearing_only_itself_is_refused),
        cmocka_unit_test(test_candidate_non_voter_hearing_one_of_two_voters_is_refused),
        cmocka_unit_test(test_candidate_non_voter_hearing_both_voters_is_ok),
        cmocka_unit_test(test_candidate_any_2_of_3_needs_2_of_them),
        cmocka_unit_test(test_candidate_counts_a_voter_heard_twice_once),
        cmocka_unit_test(test_candidate_refused_after_asynchronous_record),
        cmocka_unit_test(test_candidate_primary_only_record_needs_the_old_primary),
        cmocka_unit_test(test_settings_in_force_file_until_recorded),
        cmocka_unit_test(test_member_in_sets_recorded_or_configured),
        cmocka_unit_test(test_leave_waits_then_removes_or_gives_up),
        cmocka_unit_test(test_remove_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
