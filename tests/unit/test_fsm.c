/* Unit tests of the replicated state: command codec, apply rules, snapshot codec, libraft glue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raftpg/fsm.h"

/* ---- Helpers ---- */

static void set_str(char *dst, size_t size, const char *src)
{
    memset(dst, 0, size);
    snprintf(dst, size, "%s", src);
}

/* Member n: "node<n>", id n, addresses on 10.0.0.<n>. */
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
    m->tags = 0;
    m->failover_priority = 100;
}

static void make_init(struct fsm_cmd *c, unsigned n_members)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_INIT;
    c->term = 1;
    set_str(c->u.init.scope, FSM_NAME_MAX, "main");
    c->u.init.n_members = n_members;
    for (unsigned i = 0; i < n_members && i < FSM_MEMBERS_MAX; i++) {
        make_member(&c->u.init.members[i], i + 1, i + 1);
    }
}

static void make_member_add(struct fsm_cmd *c, uint64_t id, unsigned n)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_MEMBER_ADD;
    c->term = 2;
    make_member(&c->u.member_add, id, n);
}

static void make_member_remove(struct fsm_cmd *c, const char *name)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_MEMBER_REMOVE;
    c->term = 2;
    set_str(c->u.member_remove.name, FSM_NAME_MAX, name);
}

static void make_set_primary(struct fsm_cmd *c, const char *name, uint64_t term, uint32_t timeline)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_PRIMARY;
    c->term = term;
    set_str(c->u.set_primary.name, FSM_NAME_MAX, name);
    c->u.set_primary.term = term;
    c->u.set_primary.timeline = timeline;
}

/* voters: NULL-terminated list of names. */
static void make_set_sync(struct fsm_cmd *c, uint32_t k, const char *const *voters)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_SYNC;
    c->term = 3;
    c->u.set_sync.k = k;
    for (unsigned i = 0; voters[i] != NULL; i++) {
        set_str(c->u.set_sync.voters[i], FSM_NAME_MAX, voters[i]);
        c->u.set_sync.n_voters = i + 1;
    }
}

static void make_set_pause(struct fsm_cmd *c, bool paused)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_PAUSE;
    c->term = 4;
    c->u.set_pause.paused = paused;
}

static void make_set_system_id(struct fsm_cmd *c, uint64_t id)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_SYSTEM_ID;
    c->term = 5;
    c->u.set_system_id.system_id = id;
}

static void apply_ok(struct fsm_state *s, const struct fsm_cmd *c)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    int rc = fsm_state_apply(s, c, errmsg);
    if (rc != 0) {
        fail_msg("apply %s: %s", fsm_cmd_type_name(c->type), errmsg);
    }
}

/* An initialized three-member state. */
static void state_three(struct fsm_state *s)
{
    struct fsm_cmd c;
    fsm_state_init(s);
    make_init(&c, 3);
    apply_ok(s, &c);
}

/* A state with every field set. */
static void state_populated(struct fsm_state *s)
{
    struct fsm_cmd c;
    static const char *const voters[] = {"node2", "node4", NULL};
    state_three(s);
    make_member_add(&c, 4, 4);
    c.u.member_add.tags = FSM_TAG_NOFAILOVER | FSM_TAG_NOSYNC;
    c.u.member_add.failover_priority = -7;
    apply_ok(s, &c);
    make_set_system_id(&c, 7364239846214612345ull);
    apply_ok(s, &c);
    make_set_primary(&c, "node1", 3, 2);
    apply_ok(s, &c);
    make_set_sync(&c, 1, voters);
    apply_ok(s, &c);
    make_set_pause(&c, true);
    apply_ok(s, &c);
    make_member_remove(&c, "node3");
    apply_ok(s, &c);
}

/* Applies c, expects a rejection with exactly code and message, and the state unchanged except
 * for the two counters. */
static void assert_rejected(struct fsm_state *s, const struct fsm_cmd *c, int code,
                            const char *message)
{
    struct fsm_state before = *s;
    char errmsg[RPG_ERRMSG_SIZE] = "";

    assert_int_equal(fsm_state_apply(s, c, errmsg), code);
    assert_string_equal(errmsg, message);
    assert_int_equal(s->n_applied, before.n_applied + 1);
    assert_int_equal(s->n_rejected, before.n_rejected + 1);
    before.n_applied++;
    before.n_rejected++;
    assert_true(fsm_state_equal(s, &before));
}

static void assert_member_equal(const struct fsm_member *a, const struct fsm_member *b)
{
    assert_int_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->raft_address, b->raft_address);
    assert_string_equal(a->api_address, b->api_address);
    assert_string_equal(a->pg_address, b->pg_address);
    assert_int_equal(a->tags, b->tags);
    assert_int_equal(a->failover_priority, b->failover_priority);
}

/* Encodes, checks the length is a multiple of 8, decodes into *out. */
static void roundtrip(const struct fsm_cmd *in, struct fsm_cmd *out)
{
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE] = "";

    assert_int_equal(fsm_cmd_encode(in, &buf, errmsg), 0);
    assert_int_equal(buf.len % 8, 0);
    memset(out, 0xa5, sizeof *out);
    int rc = fsm_cmd_decode(buf.base, buf.len, out, errmsg);
    raft_free(buf.base);
    if (rc != 0) {
        fail_msg("decode: %s", errmsg);
    }
    assert_int_equal(out->type, in->type);
    assert_int_equal(out->term, in->term);
}

/* Encodes c into a malloc'ed copy the test may modify. */
static uint8_t *encode_copy(const struct fsm_cmd *c, size_t *len)
{
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    assert_int_equal(fsm_cmd_encode(c, &buf, errmsg), 0);
    uint8_t *copy = test_malloc(buf.len);
    memcpy(copy, buf.base, buf.len);
    *len = buf.len;
    raft_free(buf.base);
    return copy;
}

static void assert_decode_fails(const void *buf, size_t len, const char *message)
{
    struct fsm_cmd c;
    char errmsg[RPG_ERRMSG_SIZE] = "";
    assert_int_equal(fsm_cmd_decode(buf, len, &c, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, message);
}

/* ---- Codec: round trips ---- */

static void test_cmd_roundtrip_init(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_init(&in, FSM_MEMBERS_MAX);
    in.u.init.members[5].tags = FSM_TAG_NOSYNC;
    in.u.init.members[6].failover_priority = INT32_MIN;
    in.u.init.members[7].failover_priority = INT32_MAX;
    set_str(in.u.init.members[8].pg_address, FSM_ADDR_MAX, "");
    roundtrip(&in, &out);
    assert_string_equal(out.u.init.scope, "main");
    assert_int_equal(out.u.init.n_members, FSM_MEMBERS_MAX);
    for (unsigned i = 0; i < FSM_MEMBERS_MAX; i++) {
        assert_member_equal(&out.u.init.members[i], &in.u.init.members[i]);
    }
}

static void test_cmd_roundtrip_member_add(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_member_add(&in, 0xfedcba9876543210ull, 9);
    in.u.member_add.tags = FSM_TAG_NOFAILOVER;
    in.u.member_add.failover_priority = -1;
    roundtrip(&in, &out);
    assert_member_equal(&out.u.member_add, &in.u.member_add);
}

static void test_cmd_roundtrip_member_remove(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_member_remove(&in, "node2");
    roundtrip(&in, &out);
    assert_string_equal(out.u.member_remove.name, "node2");
}

static void test_cmd_roundtrip_set_primary(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_set_primary(&in, "node3", 0x1122334455667788ull, 0xdeadbeef);
    roundtrip(&in, &out);
    assert_string_equal(out.u.set_primary.name, "node3");
    assert_int_equal(out.u.set_primary.term, 0x1122334455667788ull);
    assert_int_equal(out.u.set_primary.timeline, 0xdeadbeef);
}

static void test_cmd_roundtrip_set_sync(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", "node3", NULL};
    struct fsm_cmd in, out;
    make_set_sync(&in, 2, voters);
    roundtrip(&in, &out);
    assert_int_equal(out.u.set_sync.k, 2);
    assert_int_equal(out.u.set_sync.n_voters, 3);
    assert_string_equal(out.u.set_sync.voters[0], "node1");
    assert_string_equal(out.u.set_sync.voters[1], "node2");
    assert_string_equal(out.u.set_sync.voters[2], "node3");
}

static void test_cmd_roundtrip_set_pause(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_set_pause(&in, true);
    roundtrip(&in, &out);
    assert_true(out.u.set_pause.paused);
    make_set_pause(&in, false);
    roundtrip(&in, &out);
    assert_false(out.u.set_pause.paused);
}

static void test_cmd_roundtrip_set_system_id(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_set_system_id(&in, UINT64_MAX);
    roundtrip(&in, &out);
    assert_int_equal(out.u.set_system_id.system_id, UINT64_MAX);
}

static void test_cmd_roundtrip_longest_strings(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    make_member_add(&in, 4, 4);
    memset(in.u.member_add.name, 'n', FSM_NAME_MAX - 1);
    memset(in.u.member_add.raft_address, 'r', FSM_ADDR_MAX - 1);
    memset(in.u.member_add.api_address, 'a', FSM_ADDR_MAX - 1);
    memset(in.u.member_add.pg_address, 'p', FSM_ADDR_MAX - 1);
    roundtrip(&in, &out);
    assert_member_equal(&out.u.member_add, &in.u.member_add);
    assert_int_equal(strlen(out.u.member_add.name), FSM_NAME_MAX - 1);
}

/* ---- Codec: exact bytes and lengths ---- */

static void test_cmd_encoding_exact_bytes(void **state)
{
    (void)state;
    static const uint8_t expected[24] = {
        3,    7,    0,    0,    16,   0,    0,    0,    /* version, type, reserved, payload */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* term */
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* system id */
    };
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    make_set_system_id(&c, 0x1122334455667788ull);
    c.term = 0x0102030405060708ull;
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), 0);
    assert_int_equal(buf.len, sizeof expected);
    assert_memory_equal(buf.base, expected, sizeof expected);
    raft_free(buf.base);
}

static void test_cmd_encoding_pads_with_zeros(void **state)
{
    (void)state;
    static const uint8_t expected[24] = {
        3, 3, 0,   0,   12, 0, 0, 0, /* payload: term 8 + string 2 + 2 */
        5, 0, 0,   0,   0,  0, 0, 0, /* term */
        2, 0, 'n', '1',              /* name */
        0, 0, 0,   0,                /* padding */
    };
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    make_member_remove(&c, "n1");
    c.term = 5;
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), 0);
    assert_int_equal(buf.len, sizeof expected);
    assert_memory_equal(buf.base, expected, sizeof expected);
    raft_free(buf.base);
}

static void test_cmd_encoded_length_is_multiple_of_8(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    for (size_t n = 0; n < FSM_NAME_MAX; n++) {
        make_member_remove(&c, "");
        memset(c.u.member_remove.name, 'x', n);
        assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), 0);
        /* 8 header + 8 term + 2 length + n, rounded up. */
        assert_int_equal(buf.len, (18 + n + 7) / 8 * 8);
        raft_free(buf.base);

        make_member_add(&c, 5, 5);
        memset(c.u.member_add.name, 'x', n);
        memset(c.u.member_add.pg_address, 0, FSM_ADDR_MAX);
        memset(c.u.member_add.pg_address, 'p', n % 7);
        assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), 0);
        assert_int_equal(buf.len % 8, 0);
        raft_free(buf.base);
    }
}

/* ---- Codec: decoder rejections ---- */

static void test_cmd_decode_rejects_every_truncation(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", NULL};
    struct fsm_cmd cmds[7];
    make_init(&cmds[0], 3);
    make_member_add(&cmds[1], 4, 4);
    make_member_remove(&cmds[2], "node1");
    make_set_primary(&cmds[3], "node1", 2, 1);
    make_set_sync(&cmds[4], 1, voters);
    make_set_pause(&cmds[5], true);
    make_set_system_id(&cmds[6], 42);

    for (unsigned t = 0; t < 7; t++) {
        size_t len;
        uint8_t *full = encode_copy(&cmds[t], &len);
        for (size_t n = 0; n < len; n++) {
            /* A fresh heap copy of exactly n bytes so ASan catches any read past len. */
            uint8_t *prefix = test_malloc(n > 0 ? n : 1);
            memcpy(prefix, full, n);
            struct fsm_cmd out;
            char errmsg[RPG_ERRMSG_SIZE] = "";
            char expected[RPG_ERRMSG_SIZE];
            assert_int_equal(fsm_cmd_decode(prefix, n, &out, errmsg), RPG_EPROTO);
            snprintf(expected, sizeof expected, "command truncated at byte %zu, need %zu", n,
                     n < 8 ? (size_t)8 : len);
            assert_string_equal(errmsg, expected);
            test_free(prefix);
        }
        test_free(full);
    }
}

static void test_cmd_decode_rejects_version_0(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *buf = encode_copy(&c, &len);
    buf[0] = 0;
    assert_decode_fails(buf, len, "unsupported command version 0 (supported=1..7)");
    test_free(buf);
}

static void test_cmd_decode_rejects_future_version(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *buf = encode_copy(&c, &len);
    buf[0] = FSM_VERSION + 1;
    assert_decode_fails(buf, len, "unsupported command version 8 (supported=1..7)");
    test_free(buf);
}

static void test_cmd_decode_rejects_unknown_type(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *buf = encode_copy(&c, &len);
    buf[1] = 0;
    assert_decode_fails(buf, len, "unknown command type 0");
    buf[1] = FSM_CMD_TYPE_MAX;
    assert_decode_fails(buf, len, "unknown command type 16");
    buf[1] = 255;
    assert_decode_fails(buf, len, "unknown command type 255");
    test_free(buf);
}

static void test_cmd_decode_rejects_nonzero_reserved(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *buf = encode_copy(&c, &len);
    buf[3] = 1;
    assert_decode_fails(buf, len, "command reserved header field is 256, expected 0");
    test_free(buf);
}

static void test_cmd_decode_rejects_nonzero_padding(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true); /* 8 header + 8 term + 1 flag + 7 padding */
    uint8_t *buf = encode_copy(&c, &len);
    assert_int_equal(len, 24);
    for (size_t i = 17; i < 24; i++) {
        buf[i] = 0x01;
        char expected[RPG_ERRMSG_SIZE];
        snprintf(expected, sizeof expected, "command padding byte %zu is not zero", i);
        assert_decode_fails(buf, len, expected);
        buf[i] = 0;
    }
    test_free(buf);
}

static void test_cmd_decode_rejects_trailing_bytes(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *enc = encode_copy(&c, &len);
    uint8_t *buf = test_calloc(1, len + 8);
    memcpy(buf, enc, len);
    assert_decode_fails(buf, len + 8,
                        "command has trailing garbage: 8 bytes after its end at byte 24");
    test_free(buf);
    test_free(enc);
}

static void test_cmd_decode_rejects_payload_longer_than_fields(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true); /* payload 9, padded total 24 */
    uint8_t *buf = encode_copy(&c, &len);
    buf[4] = 12; /* still 24 bytes in total, but 3 payload bytes no field reads */
    assert_decode_fails(buf, len,
                        "command has trailing garbage: 3 bytes after its fields at byte 17");
    test_free(buf);
}

static void test_cmd_decode_rejects_payload_shorter_than_fields(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_system_id(&c, 9); /* payload 16, total 24 */
    uint8_t *buf = encode_copy(&c, &len);
    buf[4] = 12;            /* the header now promises 12 bytes; total is still 24 */
    memset(buf + 20, 0, 4); /* keep the new padding zero */
    assert_decode_fails(buf, len, "command truncated at byte 20, need 24");
    test_free(buf);
}

static void test_cmd_decode_rejects_overlong_string(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_member_remove(&c, "");
    memset(c.u.member_remove.name, 'x', FSM_NAME_MAX - 1); /* 63 bytes: the longest allowed */
    uint8_t *enc = encode_copy(&c, &len);
    /* Rebuild with a 64-byte string: payload 8 + 2 + 64 = 74, total 88. */
    uint8_t *buf = test_calloc(1, 88);
    memcpy(buf, enc, 16);
    buf[4] = 74;
    buf[16] = 64;
    memset(buf + 18, 'x', 64);
    assert_decode_fails(buf, 88,
                        "command field member_remove.name is 64 bytes long, maximum is 63");
    test_free(buf);
    test_free(enc);
}

static void test_cmd_decode_rejects_embedded_nul(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_member_remove(&c, "node1");
    uint8_t *buf = encode_copy(&c, &len);
    buf[18 + 2] = '\0'; /* "no\0e1" */
    assert_decode_fails(buf, len, "command field member_remove.name contains a NUL byte");
    test_free(buf);
}

static void test_cmd_decode_rejects_member_count_out_of_range(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_init(&c, 1);
    uint8_t *buf = encode_copy(&c, &len);
    /* header 8, term 8, scope "main" 2 + 4, then the u16 count at byte 22. */
    assert_int_equal(buf[22], 1);
    buf[22] = FSM_MEMBERS_MAX + 1;
    assert_decode_fails(buf, len, "command field init.n_members=17 out of range 0..16");
    test_free(buf);
}

static void test_cmd_decode_rejects_voter_count_out_of_range(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", NULL};
    struct fsm_cmd c;
    size_t len;
    make_set_sync(&c, 1, voters);
    uint8_t *buf = encode_copy(&c, &len);
    /* header 8, term 8, k 4, then the u16 count at byte 20. */
    assert_int_equal(buf[20], 1);
    buf[21] = 1; /* 257 */
    assert_decode_fails(buf, len, "command field set_sync.n_voters=257 out of range 0..16");
    test_free(buf);
}

static void test_cmd_decode_rejects_bad_bool(void **state)
{
    (void)state;
    struct fsm_cmd c;
    size_t len;
    make_set_pause(&c, true);
    uint8_t *buf = encode_copy(&c, &len);
    buf[16] = 2;
    assert_decode_fails(buf, len, "command field set_pause.paused must be 0 or 1, got 2");
    test_free(buf);
}

static void test_cmd_decode_failure_leaves_cmd_untouched(void **state)
{
    (void)state;
    struct fsm_cmd c, out, copy;
    size_t len;
    make_member_add(&c, 4, 4);
    uint8_t *buf = encode_copy(&c, &len);
    memset(&out, 0x5a, sizeof out);
    memcpy(&copy, &out, sizeof out);
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_cmd_decode(buf, len - 8, &out, errmsg), RPG_EPROTO);
    assert_memory_equal(&out, &copy, sizeof out);
    test_free(buf);
}

/* ---- Codec: encoder rejections ---- */

static void test_cmd_encode_rejects_unterminated_string(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct raft_buffer buf = {NULL, 0};
    char errmsg[RPG_ERRMSG_SIZE];
    make_member_add(&c, 4, 4);
    memset(c.u.member_add.api_address, 'a', FSM_ADDR_MAX);
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "member_add: api_address is too long");
    assert_null(buf.base);
}

static void test_cmd_encode_rejects_count_out_of_range(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct raft_buffer buf = {NULL, 0};
    char errmsg[RPG_ERRMSG_SIZE];
    make_init(&c, FSM_MEMBERS_MAX);
    c.u.init.n_members = FSM_MEMBERS_MAX + 1;
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "init: member count 17 out of range 0..16");
    assert_null(buf.base);
}

static void test_cmd_encode_rejects_unknown_type(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct raft_buffer buf = {NULL, 0};
    char errmsg[RPG_ERRMSG_SIZE];
    make_set_pause(&c, true);
    c.type = FSM_CMD_TYPE_MAX;
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "unknown command type 16");
    assert_null(buf.base);
}

static void test_cmd_type_name(void **state)
{
    (void)state;
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_INIT), "init");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_MEMBER_ADD), "member_add");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_MEMBER_REMOVE), "member_remove");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_PRIMARY), "set_primary");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_SYNC), "set_sync");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_PAUSE), "set_pause");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_SYSTEM_ID), "set_system_id");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_MEMBER_SEEN), "member_seen");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_TYPE_MAX), "unknown");
    assert_string_equal(fsm_cmd_type_name((enum fsm_cmd_type)0), "unknown");
}

/* ---- Apply: INIT ---- */

static void test_state_init_is_empty(void **state)
{
    (void)state;
    struct fsm_state s;
    memset(&s, 0x77, sizeof s);
    fsm_state_init(&s);
    assert_false(s.initialized);
    assert_int_equal(s.next_id, 1);
    assert_int_equal(s.n_members, 0);
    assert_int_equal(s.system_id, 0);
    assert_int_equal(s.n_applied, 0);
    assert_string_equal(s.primary.name, "");
}

static void test_apply_init_sets_members_and_next_id(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[1].id = 10; /* ids need not be dense */
    apply_ok(&s, &c);
    assert_true(s.initialized);
    assert_string_equal(s.scope, "main");
    assert_int_equal(s.n_members, 3);
    assert_int_equal(s.next_id, 11);
    assert_int_equal(s.n_applied, 1);
    assert_int_equal(s.n_rejected, 0);
    assert_int_equal(fsm_state_member(&s, "node2")->id, 10);
    assert_string_equal(fsm_state_member_by_id(&s, 3)->name, "node3");
    assert_null(fsm_state_member(&s, "node4"));
    assert_null(fsm_state_member_by_id(&s, 2));
}

static void test_apply_init_twice_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_init(&c, 1);
    assert_rejected(&s, &c, RPG_EEXIST, "init rejected: cluster already initialized (scope=main)");
}

static void test_apply_init_empty_scope_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.scope[0] = '\0';
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: scope is empty");
}

static void test_apply_init_without_members_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 0);
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: member count 0 out of range 1..16");
}

static void test_apply_init_too_many_members_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, FSM_MEMBERS_MAX);
    c.u.init.n_members = FSM_MEMBERS_MAX + 1;
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: member count 17 out of range 1..16");
}

static void test_apply_init_zero_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[2].id = 0;
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: member \"node3\" has id 0");
}

static void test_apply_init_empty_name_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[1].name[0] = '\0';
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: member name is empty (id=2)");
}

static void test_apply_init_empty_raft_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[0].raft_address[0] = '\0';
    assert_rejected(&s, &c, RPG_EINVAL,
                    "init rejected: member \"node1\" has an empty raft address");
}

static void test_apply_init_empty_api_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[0].api_address[0] = '\0';
    assert_rejected(&s, &c, RPG_EINVAL, "init rejected: member \"node1\" has an empty api address");
}

static void test_apply_init_duplicate_name_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    set_str(c.u.init.members[2].name, FSM_NAME_MAX, "node1");
    assert_rejected(&s, &c, RPG_EEXIST, "init rejected: duplicate member name \"node1\"");
}

static void test_apply_init_duplicate_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    c.u.init.members[2].id = 2;
    assert_rejected(&s, &c, RPG_EEXIST,
                    "init rejected: duplicate member id 2 (name=node3 other=node2)");
}

static void test_apply_init_duplicate_raft_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    set_str(c.u.init.members[2].raft_address, FSM_ADDR_MAX, "10.0.0.1:7000");
    assert_rejected(&s, &c, RPG_EEXIST,
                    "init rejected: duplicate raft address \"10.0.0.1:7000\" (name=node3 "
                    "other=node1)");
}

static void test_apply_init_duplicate_api_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, 3);
    set_str(c.u.init.members[1].api_address, FSM_ADDR_MAX, "10.0.0.1:8008");
    assert_rejected(&s, &c, RPG_EEXIST,
                    "init rejected: duplicate api address \"10.0.0.1:8008\" (name=node2 "
                    "other=node1)");
}

static void test_apply_before_init_rejected(void **state)
{
    (void)state;
    static const char *const voters[] = {NULL};
    static const char *const expected[] = {
        "member_add rejected: cluster not initialized",
        "member_remove rejected: cluster not initialized",
        "set_primary rejected: cluster not initialized",
        "set_sync rejected: cluster not initialized",
        "set_pause rejected: cluster not initialized",
        "set_system_id rejected: cluster not initialized",
    };
    struct fsm_cmd cmds[6];
    struct fsm_state s;
    fsm_state_init(&s);
    make_member_add(&cmds[0], 1, 1);
    make_member_remove(&cmds[1], "node1");
    make_set_primary(&cmds[2], "", 1, 1);
    make_set_sync(&cmds[3], 0, voters);
    make_set_pause(&cmds[4], true);
    make_set_system_id(&cmds[5], 1);
    for (unsigned i = 0; i < 6; i++) {
        assert_rejected(&s, &cmds[i], RPG_EINVAL, expected[i]);
    }
    assert_int_equal(s.n_applied, 6);
    assert_int_equal(s.n_rejected, 6);
}

static void test_apply_unknown_type_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_pause(&c, true);
    c.type = (enum fsm_cmd_type)99;
    assert_rejected(&s, &c, RPG_EINVAL, "command rejected: unknown command type 99");
}

/* ---- Apply: MEMBER_ADD ---- */

static void test_apply_member_add_appends_and_advances_next_id(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 7, 4);
    apply_ok(&s, &c);
    assert_int_equal(s.n_members, 4);
    assert_member_equal(&s.members[3], &c.u.member_add);
    assert_int_equal(s.next_id, 8);
}

static void test_apply_member_add_duplicate_name_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 4, 4);
    set_str(c.u.member_add.name, FSM_NAME_MAX, "node2");
    assert_rejected(&s, &c, RPG_EEXIST, "member_add rejected: duplicate member name \"node2\"");
}

static void test_apply_member_add_duplicate_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 3, 4);
    assert_rejected(&s, &c, RPG_EEXIST,
                    "member_add rejected: duplicate member id 3 (name=node4 other=node3)");
}

static void test_apply_member_add_duplicate_raft_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 4, 4);
    set_str(c.u.member_add.raft_address, FSM_ADDR_MAX, "10.0.0.2:7000");
    assert_rejected(&s, &c, RPG_EEXIST,
                    "member_add rejected: duplicate raft address \"10.0.0.2:7000\" "
                    "(name=node4 other=node2)");
}

static void test_apply_member_add_duplicate_api_address_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 4, 4);
    set_str(c.u.member_add.api_address, FSM_ADDR_MAX, "10.0.0.3:8008");
    assert_rejected(&s, &c, RPG_EEXIST,
                    "member_add rejected: duplicate api address \"10.0.0.3:8008\" "
                    "(name=node4 other=node3)");
}

static void test_apply_member_add_reused_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_remove(&c, "node3");
    apply_ok(&s, &c);
    assert_int_equal(s.next_id, 4);
    make_member_add(&c, 3, 3); /* node3 again under its old id */
    assert_rejected(&s, &c, RPG_EINVAL,
                    "member_add rejected: member id 3 was used before, ids are never reused "
                    "(name=node3 next_id=4)");
}

static void test_apply_member_add_zero_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 0, 4);
    assert_rejected(&s, &c, RPG_EINVAL, "member_add rejected: member \"node4\" has id 0");
}

static void test_apply_member_add_empty_name_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 4, 4);
    c.u.member_add.name[0] = '\0';
    assert_rejected(&s, &c, RPG_EINVAL, "member_add rejected: member name is empty (id=4)");
}

static void test_apply_member_add_unterminated_name_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, 4, 4);
    memset(c.u.member_add.name, 'n', FSM_NAME_MAX);
    assert_rejected(&s, &c, RPG_EINVAL, "member_add rejected: member name is not terminated");
}

static void test_apply_member_add_max_id_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_add(&c, UINT64_MAX, 4);
    assert_rejected(&s, &c, RPG_EINVAL,
                    "member_add rejected: member \"node4\" has id 18446744073709551615, out of "
                    "range");
}

static void test_apply_member_add_when_full_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    fsm_state_init(&s);
    make_init(&c, FSM_MEMBERS_MAX);
    apply_ok(&s, &c);
    make_member_add(&c, 100, 100);
    assert_rejected(&s, &c, RPG_EINVAL,
                    "member_add rejected: cluster is full (name=node100 members=16)");
}

/* ---- Apply: MEMBER_REMOVE ---- */

static void test_apply_member_remove_keeps_order_and_next_id(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_remove(&c, "node2");
    apply_ok(&s, &c);
    assert_int_equal(s.n_members, 2);
    assert_string_equal(s.members[0].name, "node1");
    assert_string_equal(s.members[1].name, "node3");
    assert_null(fsm_state_member(&s, "node2"));
    assert_int_equal(s.next_id, 4);
}

static void test_apply_member_remove_unknown_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_member_remove(&c, "node9");
    assert_rejected(&s, &c, RPG_ENOTFOUND, "member_remove rejected: no member named \"node9\"");
}

static void test_apply_member_remove_drops_sync_voter_and_lowers_k(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", "node3", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 2, voters);
    apply_ok(&s, &c);
    make_member_remove(&c, "node2");
    apply_ok(&s, &c);
    assert_int_equal(s.sync.n_voters, 2);
    assert_string_equal(s.sync.voters[0], "node1");
    assert_string_equal(s.sync.voters[1], "node3");
    assert_int_equal(s.sync.k, 1);
}

static void test_apply_member_remove_non_voter_keeps_k(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 2, voters);
    apply_ok(&s, &c);
    make_member_remove(&c, "node3");
    apply_ok(&s, &c);
    assert_int_equal(s.sync.n_voters, 2);
    assert_int_equal(s.sync.k, 2);
}

static void test_apply_member_remove_clears_primary_keeps_term(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node1", 5, 3);
    apply_ok(&s, &c);
    make_member_remove(&c, "node1");
    apply_ok(&s, &c);
    assert_string_equal(s.primary.name, "");
    assert_int_equal(s.primary.term, 5);
    assert_int_equal(s.primary.timeline, 3);
}

/* ---- Apply: SET_PRIMARY ---- */

static void test_apply_set_primary_records_primary(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node2", 4, 7);
    apply_ok(&s, &c);
    assert_string_equal(s.primary.name, "node2");
    assert_int_equal(s.primary.term, 4);
    assert_int_equal(s.primary.timeline, 7);
}

static void test_apply_set_primary_same_term_accepted(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node2", 4, 7);
    apply_ok(&s, &c);
    make_set_primary(&c, "node2", 4, 8);
    apply_ok(&s, &c);
    assert_int_equal(s.primary.timeline, 8);
}

static void test_apply_set_primary_unknown_member_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node9", 4, 1);
    assert_rejected(&s, &c, RPG_ENOTFOUND, "set_primary rejected: no member named \"node9\"");
}

static void test_apply_set_primary_older_term_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node1", 5, 2);
    apply_ok(&s, &c);
    make_set_primary(&c, "node2", 4, 3);
    assert_rejected(&s, &c, RPG_EINVAL,
                    "set_primary rejected: term 4 is older than the recorded primary term 5 "
                    "(primary=node1)");
}

static void test_apply_set_primary_empty_name_clears(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_primary(&c, "node1", 5, 2);
    apply_ok(&s, &c);
    make_set_primary(&c, "", 6, 2);
    apply_ok(&s, &c);
    assert_string_equal(s.primary.name, "");
    assert_int_equal(s.primary.term, 6);
}

/* ---- Apply: SET_SYNC ---- */

static void test_apply_set_sync_records_set(void **state)
{
    (void)state;
    static const char *const voters[] = {"node3", "node2", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 2, voters);
    apply_ok(&s, &c);
    assert_int_equal(s.sync.k, 2);
    assert_int_equal(s.sync.n_voters, 2);
    assert_string_equal(s.sync.voters[0], "node3");
    assert_string_equal(s.sync.voters[1], "node2");
}

static void test_apply_set_sync_k_above_voters_rejected(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 3, voters);
    assert_rejected(&s, &c, RPG_EINVAL,
                    "set_sync rejected: k=3 exceeds the number of voters (voters=2)");
}

static void test_apply_set_sync_duplicate_voter_rejected(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node2", "node1", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 1, voters);
    assert_rejected(&s, &c, RPG_EEXIST, "set_sync rejected: duplicate voter \"node1\"");
}

static void test_apply_set_sync_non_member_rejected(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", "node7", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 1, voters);
    assert_rejected(&s, &c, RPG_ENOTFOUND, "set_sync rejected: voter \"node7\" is not a member");
}

static void test_apply_set_sync_too_many_voters_rejected(void **state)
{
    (void)state;
    static const char *const voters[] = {"node1", NULL};
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_sync(&c, 1, voters);
    c.u.set_sync.n_voters = FSM_MEMBERS_MAX + 1;
    assert_rejected(&s, &c, RPG_EINVAL, "set_sync rejected: voter count 17 out of range 0..16");
}

/* ---- Apply: SET_PAUSE and SET_SYSTEM_ID ---- */

static void test_apply_set_pause_toggles(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_pause(&c, true);
    apply_ok(&s, &c);
    assert_true(s.paused);
    make_set_pause(&c, false);
    apply_ok(&s, &c);
    assert_false(s.paused);
    assert_int_equal(s.n_applied, 3);
}

static void test_apply_set_system_id_records_it(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_system_id(&c, 7000000000000000001ull);
    apply_ok(&s, &c);
    assert_int_equal(s.system_id, 7000000000000000001ull);
}

static void test_apply_set_system_id_zero_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_system_id(&c, 0);
    assert_rejected(&s, &c, RPG_EINVAL, "set_system_id rejected: system id 0 is not valid");
}

static void test_apply_set_system_id_change_rejected(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_system_id(&c, 11);
    apply_ok(&s, &c);
    make_set_system_id(&c, 12);
    assert_rejected(&s, &c, RPG_EEXIST,
                    "set_system_id rejected: system id already set (current=11 new=12)");
}

static void test_apply_set_system_id_same_value_accepted(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    make_set_system_id(&c, 11);
    apply_ok(&s, &c);
    apply_ok(&s, &c);
    assert_int_equal(s.system_id, 11);
    assert_int_equal(s.n_applied, 3);
    assert_int_equal(s.n_rejected, 0);
}

/* ---- State equality ---- */

static void test_state_equal_detects_each_difference(void **state)
{
    (void)state;
    struct fsm_state a, b;
    state_populated(&a);
    b = a;
    assert_true(fsm_state_equal(&a, &b));
    b.members[1].failover_priority++;
    assert_false(fsm_state_equal(&a, &b));
    b = a;
    b.sync.voters[1][0] = 'X';
    assert_false(fsm_state_equal(&a, &b));
    b = a;
    b.n_applied++;
    assert_false(fsm_state_equal(&a, &b));
    b = a;
    b.paused = !b.paused;
    assert_false(fsm_state_equal(&a, &b));
    /* Bytes beyond the counts do not matter. */
    b = a;
    memset(&b.members[b.n_members], 0x33, sizeof b.members[0]);
    assert_true(fsm_state_equal(&a, &b));
}

/* ---- History (version 4) ---- */

static void make_add_history(struct fsm_cmd *c, uint32_t timeline, uint64_t lsn, int reason,
                             const char *primary)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_ADD_HISTORY;
    c->term = 6;
    c->u.add_history.timeline = timeline;
    c->u.add_history.prev_timeline = timeline - 1;
    c->u.add_history.lsn = lsn;
    c->u.add_history.time_ms = 1700000000123 + timeline;
    c->u.add_history.term = 6;
    c->u.add_history.reason = (uint8_t)reason;
    set_str(c->u.add_history.primary, FSM_NAME_MAX, primary);
}

/* Commands an agent of the previous release knows keep its version (3): it decodes them from a
 * newer leader. Only the history command carries version 4, which that agent rejects without
 * harm; a version-3 header on it is malformed. */
static void test_history_cmd_versions(void **state)
{
    (void)state;
    struct fsm_cmd c, out;
    size_t len;
    make_set_primary(&c, "node1", 7, 2);
    uint8_t *buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 3);
    test_free(buf);
    make_add_history(&c, 2, 0x3000060, FSM_HISTORY_FAILOVER, "node2");
    c.u.add_history.time_ms = -5;
    buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 4);
    assert_int_equal(buf[1], FSM_CMD_ADD_HISTORY);
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_int_equal(out.u.add_history.timeline, 2);
    assert_int_equal(out.u.add_history.lsn, 0x3000060);
    assert_int_equal(out.u.add_history.time_ms, -5);
    assert_int_equal(out.u.add_history.reason, FSM_HISTORY_FAILOVER);
    assert_string_equal(out.u.add_history.primary, "node2");
    buf[0] = 3;
    assert_decode_fails(buf, len, "command type 11 needs version 4, got 3");
    test_free(buf);
}

static void test_history_apply_rules_and_bound(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&s);
    make_add_history(&c, 1, 0, FSM_HISTORY_BOOTSTRAP, "node1");
    apply_ok(&s, &c);
    /* The same timeline again (a proposal repeated after a lost reply) is rejected. */
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EEXIST);
    assert_string_equal(errmsg, "add_history rejected: timeline 1 is not after the last "
                                "recorded one, 1 (primary=node1)");
    make_add_history(&c, 3, 100, FSM_HISTORY_REASON_MAX, "node1");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "add_history rejected: history reason 3 out of range 0..2");
    make_add_history(&c, 3, 100, FSM_HISTORY_FAILOVER, "");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_int_equal(s.n_history, 1);
    for (uint32_t tl = 2; tl < 2 + FSM_HISTORY_MAX; tl++) {
        make_add_history(&c, tl, tl * 1000, FSM_HISTORY_SWITCHOVER, "node2");
        apply_ok(&s, &c);
    }
    /* Bounded: the oldest entries made room. */
    assert_int_equal(s.n_history, FSM_HISTORY_MAX);
    assert_int_equal(s.history[0].timeline, 2);
    assert_int_equal(s.history[FSM_HISTORY_MAX - 1].timeline, 1 + FSM_HISTORY_MAX);
    assert_int_equal(s.history[FSM_HISTORY_MAX - 1].lsn, (1 + FSM_HISTORY_MAX) * 1000);
}

/* A state without history is written in the previous release's layout (version 3), so an agent
 * of that release still loads it; one with history round-trips as version 4. */
static void test_history_snapshot_versions(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_populated(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 3);
    raft_free(buf.base);
    make_add_history(&c, 1, 0, FSM_HISTORY_BOOTSTRAP, "node1");
    apply_ok(&a, &c);
    make_add_history(&c, 2, 0x5000028, FSM_HISTORY_SWITCHOVER, "node2");
    apply_ok(&a, &c);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 4);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.n_history, 2);
    assert_string_equal(b.history[1].primary, "node2");
    assert_int_equal(b.history[1].reason, FSM_HISTORY_SWITCHOVER);
    raft_free(buf.base);
    /* Decreasing timelines in a snapshot are not a state apply could reach. */
    b.history[1].timeline = 1;
    b.history[1].prev_timeline = 0;
    assert_int_equal(fsm_state_encode(&b, &buf, errmsg), 0);
    fsm_state_init(&a);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &a, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot history entry 1: timeline 1 is not after the last "
                                "recorded one, 1 (primary=node2)");
    raft_free(buf.base);
    assert_false(fsm_state_equal(&a, &b));
}

/* ---- Scheduled switchover (version 5) ---- */

static void make_schedule(struct fsm_cmd *c, int64_t at_ms, const char *from, const char *to)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SCHEDULE_SWITCHOVER;
    c->term = 8;
    c->u.schedule_switchover.at_ms = at_ms;
    set_str(c->u.schedule_switchover.from, FSM_NAME_MAX, from);
    set_str(c->u.schedule_switchover.to, FSM_NAME_MAX, to);
}

static void make_clear(struct fsm_cmd *c, int64_t at_ms)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_CLEAR_SWITCHOVER;
    c->term = 8;
    c->u.clear_switchover.at_ms = at_ms;
}

/* Both commands carry version 5 and decode back to what was encoded; a lower version on them
 * is malformed (an agent that reads up to 4 rejects them without harm). */
static void test_switchover_cmd_roundtrip_and_versions(void **state)
{
    (void)state;
    struct fsm_cmd c, out;
    size_t len;
    char errmsg[RPG_ERRMSG_SIZE];
    make_schedule(&c, 1796000000123, "node1", "node2");
    uint8_t *buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 5);
    assert_int_equal(buf[1], FSM_CMD_SCHEDULE_SWITCHOVER);
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_int_equal(out.type, FSM_CMD_SCHEDULE_SWITCHOVER);
    assert_int_equal(out.term, 8);
    assert_int_equal(out.u.schedule_switchover.at_ms, 1796000000123);
    assert_string_equal(out.u.schedule_switchover.from, "node1");
    assert_string_equal(out.u.schedule_switchover.to, "node2");
    buf[0] = 4;
    assert_decode_fails(buf, len, "command type 12 needs version 5, got 4");
    test_free(buf);

    /* Empty names (whichever primary, the best standby) travel as empty strings. */
    make_schedule(&c, 5, "", "");
    buf = encode_copy(&c, &len);
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_string_equal(out.u.schedule_switchover.from, "");
    assert_string_equal(out.u.schedule_switchover.to, "");
    test_free(buf);

    make_clear(&c, -3);
    buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 5);
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_int_equal(out.type, FSM_CMD_CLEAR_SWITCHOVER);
    assert_int_equal(out.u.clear_switchover.at_ms, -3);
    buf[0] = 3;
    assert_decode_fails(buf, len, "command type 13 needs version 5, got 3");
    test_free(buf);

    /* A name without its terminator cannot be encoded. */
    make_schedule(&c, 5, "node1", "node2");
    memset(c.u.schedule_switchover.to, 'x', FSM_NAME_MAX);
    struct raft_buffer rb;
    assert_int_equal(fsm_cmd_encode(&c, &rb, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "schedule_switchover: member name is too long");
}

/* A truncated or padded schedule command is refused with the byte where it breaks. */
static void test_switchover_cmd_decode_rejects_truncation(void **state)
{
    (void)state;
    struct fsm_cmd c, out, before;
    size_t len;
    char errmsg[RPG_ERRMSG_SIZE];
    make_schedule(&c, 1796000000123, "node1", "node2");
    uint8_t *buf = encode_copy(&c, &len);
    memset(&before, 0x5a, sizeof before);
    for (size_t n = 0; n < len; n++) {
        out = before;
        assert_int_equal(fsm_cmd_decode(buf, n, &out, errmsg), RPG_EPROTO);
        assert_memory_equal(&out, &before, sizeof out);
    }
    test_free(buf);
}

static void test_switchover_apply_rules(void **state)
{
    (void)state;
    struct fsm_state s, before;
    struct fsm_cmd c;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&s);

    make_schedule(&c, 0, "node1", "node2");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg,
                        "schedule_switchover rejected: switchover time 0 is not after the epoch");
    make_schedule(&c, 1000, "node1", "node1");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "schedule_switchover rejected: switchover from and to are the "
                                "same member (node1)");
    make_schedule(&c, 1000, "node9", "node2");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "schedule_switchover rejected: from: node9 is not a member");
    make_schedule(&c, 1000, "node1", "node9");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "schedule_switchover rejected: to: node9 is not a member");
    assert_int_equal(s.switchover.at_ms, 0);
    assert_int_equal(s.n_rejected, 4);

    make_clear(&c, 1000);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "clear_switchover rejected: no switchover is scheduled");

    make_schedule(&c, 1796000000123, "node1", "node2");
    apply_ok(&s, &c);
    assert_int_equal(s.switchover.at_ms, 1796000000123);
    assert_string_equal(s.switchover.from, "node1");
    assert_string_equal(s.switchover.to, "node2");

    /* One at a time: a second is refused and the first stays. */
    before = s;
    make_schedule(&c, 1796000009999, "", "node3");
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EEXIST);
    assert_string_equal(errmsg, "schedule_switchover rejected: a switchover is already "
                                "scheduled (at_ms=1796000000123)");
    assert_int_equal(s.switchover.at_ms, 1796000000123);
    assert_string_equal(s.switchover.to, "node2");
    assert_int_equal(s.n_applied, before.n_applied + 1);

    /* A clear for another time (a late one, for an older schedule) leaves this one. */
    make_clear(&c, 1796000000124);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "clear_switchover rejected: the scheduled switchover is "
                                "at_ms=1796000000123, not at_ms=1796000000124");
    assert_int_equal(s.switchover.at_ms, 1796000000123);
    make_clear(&c, 1796000000123);
    apply_ok(&s, &c);
    assert_int_equal(s.switchover.at_ms, 0);
    assert_string_equal(s.switchover.from, "");
    assert_string_equal(s.switchover.to, "");

    /* Without from and to: the primary and the best standby at that time. */
    make_schedule(&c, 1796000009999, "", "");
    apply_ok(&s, &c);
    assert_int_equal(s.switchover.at_ms, 1796000009999);
}

/* A state without a schedule keeps the earlier layouts (3 or 4); one with a schedule is written
 * as version 5 and reads back equal; a schedule broken in a snapshot is refused. */
static void test_switchover_snapshot_versions(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_populated(&a);
    make_schedule(&c, 1796000000123, "node1", "node2");
    apply_ok(&a, &c);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 5);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.switchover.at_ms, 1796000000123);
    assert_string_equal(b.switchover.from, "node1");
    assert_string_equal(b.switchover.to, "node2");
    assert_int_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));

    /* Cleared: back to version 3 (no history here), which an agent of an earlier release loads. */
    make_clear(&c, 1796000000123);
    apply_ok(&a, &c);
    assert_false(fsm_state_equal(&a, &b));
    assert_int_not_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 3);
    raft_free(buf.base);

    /* With history and a schedule, both survive. */
    struct fsm_cmd h;
    memset(&h, 0, sizeof h);
    h.type = FSM_CMD_ADD_HISTORY;
    h.u.add_history.timeline = 1;
    h.u.add_history.time_ms = 1700000000000;
    set_str(h.u.add_history.primary, FSM_NAME_MAX, "node1");
    apply_ok(&a, &h);
    make_schedule(&c, 1796000000500, "", "node4");
    apply_ok(&a, &c);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 5);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.n_history, 1);
    assert_string_equal(b.switchover.to, "node4");

    /* from == to is no state apply could reach. */
    set_str(b.switchover.from, FSM_NAME_MAX, "node4");
    assert_int_equal(fsm_state_encode(&b, &buf, errmsg), 0);
    fsm_state_init(&a);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &a, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot scheduled switchover: switchover from and to are the "
                                "same member (node4)");
    raft_free(buf.base);
    /* Neither is a negative time. */
    set_str(b.switchover.from, FSM_NAME_MAX, "");
    b.switchover.at_ms = -1;
    assert_int_equal(fsm_state_encode(&b, &buf, errmsg), 0);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &a, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot scheduled switchover: switchover time -1 is not after "
                                "the epoch");
    raft_free(buf.base);
}

/* ---- Dynamic PostgreSQL parameters (version 6) ---- */

/* SET_DYNAMIC with quorum mode, k 1, commit on, and the given name=value pairs. */
static void make_dynamic(struct fsm_cmd *c, unsigned n, const char *const *kv)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_DYNAMIC;
    c->term = 9;
    c->u.set_dynamic.sync_mode = SYNC_MODE_QUORUM;
    c->u.set_dynamic.sync_node_count = 1;
    c->u.set_dynamic.sync_commit = FSM_SYNC_COMMIT_ON;
    c->u.set_dynamic.n_params = n;
    for (unsigned i = 0; i < n; i++) {
        set_str(c->u.set_dynamic.params[i].name, FSM_PARAM_NAME_MAX, kv[2 * i]);
        set_str(c->u.set_dynamic.params[i].value, FSM_PARAM_VALUE_MAX, kv[2 * i + 1]);
    }
}

static void test_param_check(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_param_check("work_mem", "8MB", errmsg), 0);
    assert_int_equal(fsm_param_check("pg_stat_statements.max", "", errmsg), 0);
    assert_int_equal(fsm_param_check("_x$1", "it's ok", errmsg), 0);
    assert_int_equal(fsm_param_check("", "1", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "parameter name must be 1..63 bytes long");
    const char *bad[] = {"Work_mem", "work mem", "1abc", "a..b", ".a", "a.", "a-b", "a.1b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fsm_param_check(bad[i], "1", errmsg), RPG_EINVAL);
    }
    assert_string_equal(errmsg, "parameter \"a.1b\": name is not a lower-case identifier "
                                "([a-z_][a-z0-9_$]*, words joined by '.')");
    char longname[FSM_PARAM_NAME_MAX + 1];
    memset(longname, 'a', FSM_PARAM_NAME_MAX);
    longname[FSM_PARAM_NAME_MAX] = '\0';
    assert_int_equal(fsm_param_check(longname, "1", errmsg), RPG_EINVAL);
    longname[FSM_PARAM_NAME_MAX - 1] = '\0';
    assert_int_equal(fsm_param_check(longname, "1", errmsg), 0);
    assert_int_equal(fsm_param_check("work_mem", "8MB\nport = 1", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg,
                        "parameter work_mem: value holds a control character (byte 3 is 0x0a)");
    assert_int_equal(fsm_param_check("work_mem", "a\rb", errmsg), RPG_EINVAL);
    char longvalue[FSM_PARAM_VALUE_MAX + 1];
    memset(longvalue, 'v', FSM_PARAM_VALUE_MAX);
    longvalue[FSM_PARAM_VALUE_MAX] = '\0';
    assert_int_equal(fsm_param_check("work_mem", longvalue, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "parameter work_mem: value is longer than 255 bytes");
}

/* SET_DYNAMIC is written as version 6 and decodes back; below 6 it is malformed. */
static void test_dynamic_cmd_roundtrip_and_versions(void **state)
{
    (void)state;
    const char *kv[] = {"max_wal_senders", "12", "work_mem", "8MB"};
    struct fsm_cmd c, out;
    size_t len;
    char errmsg[RPG_ERRMSG_SIZE];
    make_dynamic(&c, 2, kv);
    c.u.set_dynamic.sync_mode = SYNC_MODE_STRICT;
    c.u.set_dynamic.sync_node_count = 2;
    c.u.set_dynamic.sync_commit = FSM_SYNC_COMMIT_REMOTE_APPLY;
    uint8_t *buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 6);
    assert_int_equal(buf[1], FSM_CMD_SET_DYNAMIC);
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_int_equal(out.type, FSM_CMD_SET_DYNAMIC);
    assert_int_equal(out.term, 9);
    assert_int_equal(out.u.set_dynamic.sync_mode, SYNC_MODE_STRICT);
    assert_int_equal(out.u.set_dynamic.sync_node_count, 2);
    assert_int_equal(out.u.set_dynamic.sync_commit, FSM_SYNC_COMMIT_REMOTE_APPLY);
    assert_int_equal(out.u.set_dynamic.n_params, 2);
    assert_string_equal(out.u.set_dynamic.params[0].name, "max_wal_senders");
    assert_string_equal(out.u.set_dynamic.params[0].value, "12");
    assert_string_equal(out.u.set_dynamic.params[1].name, "work_mem");
    assert_string_equal(out.u.set_dynamic.params[1].value, "8MB");
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_DYNAMIC), "set_dynamic");
    buf[0] = 5;
    assert_decode_fails(buf, len, "command type 14 needs version 6, got 5");
    test_free(buf);

    /* Every truncation is refused and leaves the output untouched. */
    buf = encode_copy(&c, &len);
    struct fsm_cmd before;
    memset(&before, 0x5a, sizeof before);
    for (size_t n = 0; n < len; n++) {
        out = before;
        assert_int_equal(fsm_cmd_decode(buf, n, &out, errmsg), RPG_EPROTO);
        assert_memory_equal(&out, &before, sizeof out);
    }
    test_free(buf);

    /* No parameters at all is a valid command (every one removed). */
    make_dynamic(&c, 0, NULL);
    roundtrip(&c, &out);
    assert_int_equal(out.u.set_dynamic.n_params, 0);

    /* Bounds: count and lengths are refused at encoding. */
    struct raft_buffer rb;
    make_dynamic(&c, 2, kv);
    c.u.set_dynamic.n_params = FSM_PARAMS_MAX + 1;
    assert_int_equal(fsm_cmd_encode(&c, &rb, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic: 33 parameters, at most 32");
    make_dynamic(&c, 2, kv);
    memset(c.u.set_dynamic.params[1].value, 'x', FSM_PARAM_VALUE_MAX);
    assert_int_equal(fsm_cmd_encode(&c, &rb, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic: parameter 1 is too long");
    make_dynamic(&c, 2, kv);
    c.u.set_dynamic.sync_node_count = 0;
    assert_int_equal(fsm_cmd_encode(&c, &rb, errmsg), RPG_EINVAL);
}

static void test_dynamic_apply_rules(void **state)
{
    (void)state;
    struct fsm_state s, before;
    struct fsm_cmd c;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&s);

    const char *kv[] = {"max_wal_senders", "12", "work_mem", "8MB"};
    make_dynamic(&c, 2, kv);
    apply_ok(&s, &c);
    assert_true(s.config.set);
    assert_int_equal(s.config.sync_mode, SYNC_MODE_QUORUM);
    assert_int_equal(s.config.n_params, 2);
    assert_string_equal(s.config.params[0].name, "max_wal_senders");
    assert_string_equal(s.config.params[1].value, "8MB");

    /* SET_CONFIG changes the synchronous settings and keeps the parameters. */
    struct fsm_cmd sc;
    memset(&sc, 0, sizeof sc);
    sc.type = FSM_CMD_SET_CONFIG;
    sc.u.set_config.sync_mode = SYNC_MODE_OFF;
    sc.u.set_config.sync_node_count = 2;
    apply_ok(&s, &sc);
    assert_int_equal(s.config.sync_mode, SYNC_MODE_OFF);
    assert_int_equal(s.config.n_params, 2);

    /* Refused whole, the state untouched: out of order, duplicate, bad name, bad value. */
    before = s;
    const char *unordered[] = {"work_mem", "1MB", "max_wal_senders", "12"};
    make_dynamic(&c, 2, unordered);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic rejected: parameters not in strictly increasing "
                                "order (max_wal_senders after work_mem)");
    const char *dup[] = {"work_mem", "1MB", "work_mem", "2MB"};
    make_dynamic(&c, 2, dup);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic rejected: parameters not in strictly increasing "
                                "order (work_mem after work_mem)");
    const char *badname[] = {"work mem", "1MB"};
    make_dynamic(&c, 1, badname);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    const char *badvalue[] = {"work_mem", "1MB\n"};
    make_dynamic(&c, 1, badvalue);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic rejected: parameter work_mem: value holds a control "
                                "character (byte 3 is 0x0a)");
    make_dynamic(&c, 2, kv);
    c.u.set_dynamic.sync_mode = 7;
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_int_equal(s.n_rejected, before.n_rejected + 5);
    before.n_applied = s.n_applied;
    before.n_rejected = s.n_rejected;
    assert_true(fsm_state_equal(&s, &before));

    /* The whole set is replaced: an empty one removes every parameter. */
    make_dynamic(&c, 0, NULL);
    apply_ok(&s, &c);
    assert_int_equal(s.config.n_params, 0);
    assert_string_equal(s.config.params[0].name, "");

    /* The most parameters, the longest strings. */
    make_dynamic(&c, 0, NULL);
    c.u.set_dynamic.n_params = FSM_PARAMS_MAX;
    for (unsigned i = 0; i < FSM_PARAMS_MAX; i++) {
        memset(c.u.set_dynamic.params[i].name, 'a', FSM_PARAM_NAME_MAX - 3);
        snprintf(c.u.set_dynamic.params[i].name + FSM_PARAM_NAME_MAX - 3, 3, "%02u", i);
        memset(c.u.set_dynamic.params[i].value, 'v', FSM_PARAM_VALUE_MAX - 1);
    }
    struct fsm_cmd out;
    roundtrip(&c, &out);
    apply_ok(&s, &out);
    assert_int_equal(s.config.n_params, FSM_PARAMS_MAX);
}

/* Parameters make a snapshot version 6 (with the schedule and history of version 5); without
 * them it keeps the earlier layouts; a broken set in a snapshot is refused. */
static void test_dynamic_snapshot_versions(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct fsm_cmd c;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_populated(&a);
    const char *kv[] = {"shared_buffers", "256MB", "work_mem", "8MB"};
    make_dynamic(&c, 2, kv);
    apply_ok(&a, &c);
    struct fsm_cmd w;
    memset(&w, 0, sizeof w);
    w.type = FSM_CMD_SCHEDULE_SWITCHOVER;
    w.u.schedule_switchover.at_ms = 1796000000123;
    apply_ok(&a, &w);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 6);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.config.n_params, 2);
    assert_string_equal(b.config.params[0].name, "shared_buffers");
    assert_string_equal(b.config.params[1].value, "8MB");
    assert_int_equal(b.switchover.at_ms, 1796000000123);
    assert_int_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));

    /* A different value is a different state and checksum. */
    set_str(b.config.params[1].value, FSM_PARAM_VALUE_MAX, "9MB");
    assert_false(fsm_state_equal(&a, &b));
    assert_int_not_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));

    /* A duplicate name is no state apply could reach. */
    set_str(b.config.params[1].name, FSM_PARAM_NAME_MAX, "shared_buffers");
    assert_int_equal(fsm_state_encode(&b, &buf, errmsg), 0);
    fsm_state_init(&a);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &a, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot parameters: parameters not in strictly increasing "
                                "order (shared_buffers after shared_buffers)");
    raft_free(buf.base);

    /* All removed: back to version 3, which an agent of an earlier release loads. */
    state_populated(&a);
    make_dynamic(&c, 2, kv);
    apply_ok(&a, &c);
    make_dynamic(&c, 0, NULL);
    apply_ok(&a, &c);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(((uint8_t *)buf.base)[4], 3);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
}

/* SET_DYNAMIC_LAG (version 7): the whole set and maximum_lag_on_failover in one entry; the
 * limit survives SET_DYNAMIC and SET_CONFIG, and a snapshot holding it is version 7. */
static void test_dynamic_lag(void **state)
{
    (void)state;
    const char *kv[] = {"work_mem", "8MB"};
    struct fsm_cmd c, out;
    size_t len;
    char errmsg[RPG_ERRMSG_SIZE];
    make_dynamic(&c, 1, kv);
    c.type = FSM_CMD_SET_DYNAMIC_LAG;
    c.u.set_dynamic.max_lag_set = true;
    c.u.set_dynamic.max_lag = 4194304;
    uint8_t *buf = encode_copy(&c, &len);
    assert_int_equal(buf[0], 7);
    assert_int_equal(buf[1], FSM_CMD_SET_DYNAMIC_LAG);
    assert_int_equal(fsm_cmd_decode(buf, len, &out, errmsg), 0);
    assert_int_equal(out.type, FSM_CMD_SET_DYNAMIC_LAG);
    assert_true(out.u.set_dynamic.max_lag_set);
    assert_int_equal(out.u.set_dynamic.max_lag, 4194304);
    assert_int_equal(out.u.set_dynamic.n_params, 1);
    assert_string_equal(fsm_cmd_type_name(FSM_CMD_SET_DYNAMIC_LAG), "set_dynamic_lag");
    buf[0] = 6;
    assert_decode_fails(buf, len, "command type 15 needs version 7, got 6");
    test_free(buf);
    /* SET_DYNAMIC carries no limit: its encoding is unchanged (version 6). */
    make_dynamic(&c, 1, kv);
    c.u.set_dynamic.max_lag_set = true;
    c.u.set_dynamic.max_lag = 1;
    roundtrip(&c, &out);
    assert_false(out.u.set_dynamic.max_lag_set);

    struct fsm_state a, b;
    state_populated(&a);
    make_dynamic(&c, 1, kv);
    c.type = FSM_CMD_SET_DYNAMIC_LAG;
    c.u.set_dynamic.max_lag_set = true;
    c.u.set_dynamic.max_lag = 1048576;
    apply_ok(&a, &c);
    assert_true(a.config.max_lag_set);
    assert_int_equal(a.config.max_lag, 1048576);
    assert_int_equal(a.config.n_params, 1);
    /* SET_DYNAMIC (an agent of version 6 edits the parameters) and SET_CONFIG keep it. */
    make_dynamic(&c, 0, NULL);
    apply_ok(&a, &c);
    struct fsm_cmd sc;
    memset(&sc, 0, sizeof sc);
    sc.type = FSM_CMD_SET_CONFIG;
    sc.u.set_config.sync_mode = SYNC_MODE_OFF;
    sc.u.set_config.sync_node_count = 1;
    apply_ok(&a, &sc);
    assert_true(a.config.max_lag_set);
    assert_int_equal(a.config.max_lag, 1048576);
    assert_int_equal(a.config.n_params, 0);

    struct raft_buffer rb;
    assert_int_equal(fsm_state_encode(&a, &rb, errmsg), 0);
    assert_int_equal(((uint8_t *)rb.base)[4], 7);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(rb.base, rb.len, &b, errmsg), 0);
    raft_free(rb.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_true(b.config.max_lag_set);
    assert_int_equal(b.config.max_lag, 1048576);
    assert_int_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
    b.config.max_lag = 1048577;
    assert_false(fsm_state_equal(&a, &b));
    assert_int_not_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));

    /* Removed (null): the snapshot is back to the layout an earlier release loads. */
    make_dynamic(&c, 0, NULL);
    c.type = FSM_CMD_SET_DYNAMIC_LAG;
    apply_ok(&a, &c);
    assert_false(a.config.max_lag_set);
    assert_int_equal(a.config.max_lag, 0);
    assert_int_equal(fsm_state_encode(&a, &rb, errmsg), 0);
    assert_true(((uint8_t *)rb.base)[4] < 7);
    raft_free(rb.base);
}

/* pg_hba lines travel with the parameters in SET_DYNAMIC and in a version-6 snapshot. */
static void test_dynamic_hba(void **state)
{
    (void)state;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_hba_check(0, "host\tall all 127.0.0.1/32 scram-sha-256", errmsg), 0);
    assert_int_equal(fsm_hba_check(2, "", errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "pg_hba line 2 must be 1..255 bytes long");
    assert_int_equal(fsm_hba_check(1, "local all all trust\nhost all all 0.0.0.0/0 trust", errmsg),
                     RPG_EINVAL);
    assert_string_equal(errmsg, "pg_hba line 1 holds a control character (byte 19 is 0x0a)");

    struct fsm_cmd c, out;
    make_dynamic(&c, 0, NULL);
    c.u.set_dynamic.n_hba = 2;
    set_str(c.u.set_dynamic.hba[0], FSM_HBA_LINE_MAX, "local all all trust");
    set_str(c.u.set_dynamic.hba[1], FSM_HBA_LINE_MAX, "host all all 127.0.0.1/32 reject");
    roundtrip(&c, &out);
    assert_int_equal(out.u.set_dynamic.n_hba, 2);
    assert_string_equal(out.u.set_dynamic.hba[1], "host all all 127.0.0.1/32 reject");
    size_t len;
    uint8_t *buf = encode_copy(&c, &len);
    struct fsm_cmd before;
    memset(&before, 0x5a, sizeof before);
    for (size_t n = 0; n < len; n++) {
        out = before;
        assert_int_equal(fsm_cmd_decode(buf, n, &out, errmsg), RPG_EPROTO);
    }
    test_free(buf);

    struct fsm_state a, b;
    state_populated(&a);
    apply_ok(&a, &c);
    assert_int_equal(a.config.n_hba, 2);
    assert_int_equal(a.config.n_params, 0);
    struct raft_buffer rb;
    assert_int_equal(fsm_state_encode(&a, &rb, errmsg), 0);
    assert_int_equal(((uint8_t *)rb.base)[4], 6);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(rb.base, rb.len, &b, errmsg), 0);
    raft_free(rb.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_string_equal(b.config.hba[0], "local all all trust");
    set_str(b.config.hba[0], FSM_HBA_LINE_MAX, "local all all peer");
    assert_false(fsm_state_equal(&a, &b));

    /* A bad line refuses the whole entry; too many lines cannot be encoded. */
    struct fsm_state keep = a;
    set_str(c.u.set_dynamic.hba[1], FSM_HBA_LINE_MAX, "host all all\r127.0.0.1/32 trust");
    assert_int_equal(fsm_state_apply(&a, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic rejected: pg_hba line 1 holds a control character "
                                "(byte 12 is 0x0d)");
    keep.n_applied = a.n_applied;
    keep.n_rejected = a.n_rejected;
    assert_true(fsm_state_equal(&a, &keep));
    c.u.set_dynamic.n_hba = FSM_HBA_MAX + 1;
    assert_int_equal(fsm_cmd_encode(&c, &rb, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_dynamic: 33 pg_hba lines, at most 32");

    /* An empty list: back to each member's own file, and to version 3. */
    make_dynamic(&c, 0, NULL);
    apply_ok(&a, &c);
    assert_int_equal(a.config.n_hba, 0);
    assert_int_equal(fsm_state_encode(&a, &rb, errmsg), 0);
    assert_int_equal(((uint8_t *)rb.base)[4], 3);
    raft_free(rb.base);
}

/* ---- Snapshot ---- */

static void test_snapshot_roundtrip_populated_state(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_populated(&a);
    assert_int_equal(a.n_members, 3);
    assert_int_equal(a.sync.n_voters, 2);
    assert_true(a.paused);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(buf.len % 8, 0);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.members[2].failover_priority, -7);
    assert_int_equal(b.members[2].tags, FSM_TAG_NOFAILOVER | FSM_TAG_NOSYNC);
}

static void test_snapshot_roundtrip_empty_state(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    fsm_state_init(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    assert_int_equal(buf.len % 8, 0);
    state_populated(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    raft_free(buf.base);
    assert_true(fsm_state_equal(&a, &b));
}

static void test_snapshot_decode_truncated_leaves_state_untouched(void **state)
{
    (void)state;
    struct fsm_state a, b, before;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_populated(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    state_three(&b);
    before = b;
    for (size_t n = 0; n < buf.len; n++) {
        uint8_t *prefix = test_malloc(n > 0 ? n : 1);
        memcpy(prefix, buf.base, n);
        char expected[RPG_ERRMSG_SIZE];
        snprintf(expected, sizeof expected, "snapshot truncated at byte %zu, need %zu", n,
                 n < 16 ? (size_t)16 : buf.len);
        assert_int_equal(fsm_state_decode(prefix, n, &b, errmsg), RPG_EPROTO);
        assert_string_equal(errmsg, expected);
        assert_memory_equal(&b, &before, sizeof b);
        test_free(prefix);
    }
    raft_free(buf.base);
}

static void test_snapshot_decode_rejects_bad_magic(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    ((uint8_t *)buf.base)[0] = 'X';
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "not a raftpg snapshot (magic=0x53475058)");
    raft_free(buf.base);
}

static void test_snapshot_decode_rejects_future_version(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    ((uint8_t *)buf.base)[4] = FSM_VERSION + 1;
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "unsupported snapshot version 8 (supported=1..7)");
    ((uint8_t *)buf.base)[4] = 0;
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "unsupported snapshot version 0 (supported=1..7)");
    raft_free(buf.base);
}

static void test_snapshot_decode_rejects_nonzero_padding(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    fsm_state_init(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    /* Empty state: 16 header + 2 flags + 2 scope + 32 counters + 2 + 2 + 8 + 4 + 4 + 2 = 74,
     * then version 2's config (1 + 1 + 1 + 4) and bound (8 + 4): 93, padded to 96. */
    assert_int_equal(buf.len, 96);
    ((uint8_t *)buf.base)[95] = 1;
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot padding byte 95 is not zero");
    raft_free(buf.base);
}

static void test_snapshot_decode_rejects_broken_invariant(void **state)
{
    (void)state;
    struct fsm_state a, b, before;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    state_three(&a);
    set_str(a.primary.name, FSM_NAME_MAX, "ghost"); /* not reachable through apply */
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    state_three(&b);
    before = b;
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), RPG_EPROTO);
    assert_string_equal(errmsg, "snapshot primary \"ghost\" is not a member");
    assert_memory_equal(&b, &before, sizeof b);
    raft_free(buf.base);
}

/* ---- libraft glue ---- */

static struct raft_buffer encode_raft(const struct fsm_cmd *c)
{
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_cmd_encode(c, &buf, errmsg), 0);
    return buf;
}

static void test_fsm_init_is_version_1(void **state)
{
    (void)state;
    struct fsm f;
    struct fsm_state s;
    fsm_state_init(&s);
    fsm_init(&f, &s);
    assert_ptr_equal(&f.raft, (void *)&f);
    assert_int_equal(f.raft.version, 1);
    assert_non_null(f.raft.apply);
    assert_non_null(f.raft.snapshot);
    assert_non_null(f.raft.restore);
    assert_null(f.raft.snapshot_finalize);
    assert_null(f.raft.snapshot_async);
    assert_ptr_equal(f.state, &s);
    assert_string_equal(f.last_error, "");
}

static void test_raft_apply_accepted_returns_zero_result(void **state)
{
    (void)state;
    struct fsm f;
    struct fsm_state s;
    struct fsm_cmd c;
    void *result = (void *)(intptr_t)12345;
    fsm_state_init(&s);
    fsm_init(&f, &s);
    make_init(&c, 3);
    struct raft_buffer buf = encode_raft(&c);
    assert_int_equal(f.raft.apply(&f.raft, &buf, &result), 0);
    raft_free(buf.base);
    assert_int_equal(fsm_result_code(result), 0);
    assert_true(s.initialized);
    assert_int_equal(s.n_members, 3);
    assert_string_equal(f.last_error, "");
}

static void test_raft_apply_rejected_sets_result_and_last_error(void **state)
{
    (void)state;
    struct fsm f;
    struct fsm_state s;
    struct fsm_cmd c;
    void *result = NULL;
    state_three(&s);
    fsm_init(&f, &s);
    make_member_add(&c, 4, 4);
    set_str(c.u.member_add.name, FSM_NAME_MAX, "node2");
    struct raft_buffer buf = encode_raft(&c);
    /* Still 0 towards libraft. */
    assert_int_equal(f.raft.apply(&f.raft, &buf, &result), 0);
    raft_free(buf.base);
    assert_int_equal(fsm_result_code(result), RPG_EEXIST);
    assert_string_equal(f.last_error, "member_add rejected: duplicate member name \"node2\"");
    assert_int_equal(s.n_members, 3);
    assert_int_equal(s.n_applied, 2);
    assert_int_equal(s.n_rejected, 1);
}

static void test_raft_apply_malformed_counts_as_rejected(void **state)
{
    (void)state;
    struct fsm f;
    struct fsm_state s;
    void *result = NULL;
    state_three(&s);
    fsm_init(&f, &s);
    uint8_t bytes[8] = {9, 1, 0, 0, 0, 0, 0, 0};
    struct raft_buffer buf = {bytes, sizeof bytes};
    assert_int_equal(f.raft.apply(&f.raft, &buf, &result), 0);
    assert_int_equal(fsm_result_code(result), RPG_EPROTO);
    assert_string_equal(f.last_error, "unsupported command version 9 (supported=1..7)");
    assert_int_equal(s.n_applied, 2);
    assert_int_equal(s.n_rejected, 1);
}

static void test_raft_snapshot_then_restore_gives_equal_state(void **state)
{
    (void)state;
    struct fsm f1, f2;
    struct fsm_state s1, s2;
    struct raft_buffer *bufs = NULL;
    unsigned n_bufs = 0;
    state_populated(&s1);
    fsm_init(&f1, &s1);
    fsm_state_init(&s2);
    fsm_init(&f2, &s2);

    assert_int_equal(f1.raft.snapshot(&f1.raft, &bufs, &n_bufs), 0);
    assert_int_equal(n_bufs, 1);
    assert_int_equal(bufs[0].len % 8, 0);

    /* As libraft does: restore takes bufs[0].base, the array stays libraft's to free. */
    assert_int_equal(f2.raft.restore(&f2.raft, &bufs[0]), 0);
    raft_free(bufs);
    assert_true(fsm_state_equal(&s1, &s2));
}

static void test_raft_restore_failure_keeps_state_and_buffer(void **state)
{
    (void)state;
    struct fsm f;
    struct fsm_state s, before;
    state_three(&s);
    before = s;
    fsm_init(&f, &s);
    struct raft_buffer buf;
    buf.len = 24;
    buf.base = raft_malloc(buf.len);
    memset(buf.base, 0, buf.len);
    assert_int_not_equal(f.raft.restore(&f.raft, &buf), 0);
    assert_memory_equal(&s, &before, sizeof s);
    assert_string_equal(f.last_error, "restore: not a raftpg snapshot (magic=0x00000000)");
    /* On failure the buffer still belongs to the caller (libraft frees it). */
    raft_free(buf.base);
}

/* ---- Version 2: dynamic configuration and the acknowledged-WAL bound ---- */

static void init_state3(struct fsm_state *s)
{
    struct fsm_cmd c;
    char errmsg[RPG_ERRMSG_SIZE];
    fsm_state_init(s);
    make_init(&c, 3);
    assert_int_equal(fsm_state_apply(s, &c, errmsg), 0);
}

static void make_set_config(struct fsm_cmd *c, unsigned mode, uint32_t k, unsigned commit)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_CONFIG;
    c->term = 3;
    c->u.set_config.sync_mode = (uint8_t)mode;
    c->u.set_config.sync_node_count = k;
    c->u.set_config.sync_commit = (uint8_t)commit;
}

static void make_set_wal_bound(struct fsm_cmd *c, uint64_t pos, uint32_t tl)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_SET_WAL_BOUND;
    c->term = 3;
    c->u.set_wal_bound.position = pos;
    c->u.set_wal_bound.timeline = tl;
}

static void test_set_config_roundtrip_and_apply(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    struct fsm_state s;
    char errmsg[RPG_ERRMSG_SIZE];
    make_set_config(&in, SYNC_MODE_STRICT, 2, FSM_SYNC_COMMIT_REMOTE_APPLY);
    roundtrip(&in, &out);
    assert_int_equal(out.u.set_config.sync_mode, SYNC_MODE_STRICT);
    assert_int_equal(out.u.set_config.sync_node_count, 2);
    assert_int_equal(out.u.set_config.sync_commit, FSM_SYNC_COMMIT_REMOTE_APPLY);
    init_state3(&s);
    assert_false(s.config.set);
    assert_int_equal(fsm_state_apply(&s, &out, errmsg), 0);
    assert_true(s.config.set);
    assert_int_equal(s.config.sync_mode, SYNC_MODE_STRICT);
    assert_int_equal(s.config.sync_node_count, 2);
    assert_int_equal(s.config.sync_commit, FSM_SYNC_COMMIT_REMOTE_APPLY);
}

static void test_set_config_rejects_out_of_range(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct raft_buffer buf;
    struct fsm_state s;
    char errmsg[RPG_ERRMSG_SIZE];
    make_set_config(&c, 3, 1, 0);
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_config: sync mode 3 out of range 0..2");
    make_set_config(&c, 1, 0, 0);
    assert_int_equal(fsm_cmd_encode(&c, &buf, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "set_config: synchronous_node_count 0 out of range 1..16");
    make_set_config(&c, 1, 1, 4);
    init_state3(&s);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg,
                        "set_config rejected: set_config: synchronous_commit 4 out of range 0..3");
    assert_false(s.config.set);
}

static void test_wal_bound_only_moves_forward(void **state)
{
    (void)state;
    struct fsm_cmd c, out;
    struct fsm_state s;
    char errmsg[RPG_ERRMSG_SIZE];
    init_state3(&s);
    make_set_wal_bound(&c, 5000, 1);
    roundtrip(&c, &out);
    assert_int_equal(out.u.set_wal_bound.position, 5000);
    assert_int_equal(out.u.set_wal_bound.timeline, 1);
    assert_int_equal(fsm_state_apply(&s, &out, errmsg), 0);
    assert_int_equal(s.wal_bound, 5000);
    make_set_wal_bound(&c, 6000, 2);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), 0);
    assert_int_equal(s.wal_bound, 6000);
    assert_int_equal(s.wal_bound_timeline, 2);
    make_set_wal_bound(&c, 5999, 2);
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg,
                        "set_wal_bound rejected: position 5999 is below the recorded bound 6000");
    assert_int_equal(s.wal_bound, 6000);
}

static void test_snapshot_v2_roundtrip_keeps_config_and_bound(void **state)
{
    (void)state;
    struct fsm_cmd c;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    init_state3(&a);
    make_set_config(&c, SYNC_MODE_QUORUM, 1, FSM_SYNC_COMMIT_ON);
    assert_int_equal(fsm_state_apply(&a, &c, errmsg), 0);
    make_set_wal_bound(&c, 123456, 3);
    assert_int_equal(fsm_state_apply(&a, &c, errmsg), 0);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(buf.base, buf.len, &b, errmsg), 0);
    assert_true(fsm_state_equal(&a, &b));
    assert_int_equal(b.wal_bound, 123456);
    raft_free(buf.base);
}

/* A version-1 snapshot (written before the configuration and bound existed) still restores. */
static void test_snapshot_v1_restores_with_defaults(void **state)
{
    (void)state;
    struct fsm_state a, b;
    struct raft_buffer buf;
    char errmsg[RPG_ERRMSG_SIZE];
    init_state3(&a);
    assert_int_equal(fsm_state_encode(&a, &buf, errmsg), 0);
    uint8_t *p = buf.base;
    size_t payload = (size_t)p[8] | ((size_t)p[9] << 8) | ((size_t)p[10] << 16);
    size_t v1_payload = payload - 19;
    size_t v1_len = (16 + v1_payload + 7) / 8 * 8;
    uint8_t v1[1024];
    assert_true(v1_len <= sizeof v1);
    memset(v1, 0, sizeof v1);
    memcpy(v1, p, 16 + v1_payload);
    v1[4] = 1;
    v1[8] = (uint8_t)v1_payload;
    v1[9] = (uint8_t)(v1_payload >> 8);
    v1[10] = (uint8_t)(v1_payload >> 16);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_decode(v1, v1_len, &b, errmsg), 0);
    assert_true(fsm_state_equal(&a, &b));
    assert_false(b.config.set);
    assert_int_equal(b.wal_bound, 0);
    raft_free(buf.base);
}

static void test_cmd_roundtrip_member_seen(void **state)
{
    (void)state;
    struct fsm_cmd in, out;
    memset(&in, 0, sizeof in);
    in.type = FSM_CMD_MEMBER_SEEN;
    in.term = 9;
    in.u.member_seen.id = 0x0102030405060708ull;
    roundtrip(&in, &out);
    assert_int_equal(out.u.member_seen.id, in.u.member_seen.id);
}

/* MEMBER_SEEN marks the member's Raft state; again is harmless; an unknown id is refused. */
static void test_apply_member_seen_sets_the_tag(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm_cmd c;
    state_three(&s);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_MEMBER_SEEN;
    c.u.member_seen.id = 2;
    apply_ok(&s, &c);
    const struct fsm_member *m = fsm_state_member_by_id(&s, 2);
    assert_non_null(m);
    assert_true(m->tags & FSM_TAG_RAFT_STATE);
    assert_false(fsm_state_member_by_id(&s, 1)->tags & FSM_TAG_RAFT_STATE);
    apply_ok(&s, &c);
    assert_true(fsm_state_member_by_id(&s, 2)->tags & FSM_TAG_RAFT_STATE);
    c.u.member_seen.id = 99;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_state_apply(&s, &c, errmsg), RPG_ENOTFOUND);
    assert_string_equal(errmsg, "member_seen rejected: no member with id 99");
}

/* Equal states give equal checksums; the found divergence (wal_bound) changes it. */
static void test_checksum_follows_the_state(void **state)
{
    (void)state;
    struct fsm_state a, b;
    fsm_state_init(&a);
    fsm_state_init(&b);
    assert_int_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
    a.wal_bound = 85733096;
    b.wal_bound = 85824168;
    assert_int_not_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
    b.wal_bound = 85733096;
    assert_int_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
    b.n_applied++;
    assert_int_not_equal(fsm_state_checksum(&a), fsm_state_checksum(&b));
}

/* The ring keeps the last FSM_SUMS_MAX checksums, found by index; a restore forgets them. */
static void test_checksum_ring(void **state)
{
    (void)state;
    struct fsm_state s;
    struct fsm f;
    fsm_state_init(&s);
    fsm_init(&f, &s);
    struct fsm_sum latest;
    uint64_t sum = 0;
    assert_false(fsm_sum_latest(&f, &latest));
    for (uint64_t i = 1; i <= FSM_SUMS_MAX + 10; i++) {
        s.n_applied = i;
        fsm_sum_record(&f, i + 100);
    }
    assert_true(fsm_sum_latest(&f, &latest));
    assert_int_equal(latest.index, FSM_SUMS_MAX + 110);
    assert_int_equal(latest.sum, fsm_state_checksum(&s));
    assert_false(fsm_sum_at(&f, 110, &sum));
    assert_true(fsm_sum_at(&f, 111, &sum));
    s.n_applied = 11;
    assert_int_equal(sum, fsm_state_checksum(&s));

    struct raft_buffer snap;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(fsm_state_encode(&s, &snap, errmsg), 0);
    assert_int_equal(f.raft.restore(&f.raft, &snap), 0);
    assert_true(f.restored);
    assert_false(fsm_sum_latest(&f, &latest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_config_roundtrip_and_apply),
        cmocka_unit_test(test_set_config_rejects_out_of_range),
        cmocka_unit_test(test_wal_bound_only_moves_forward),
        cmocka_unit_test(test_snapshot_v2_roundtrip_keeps_config_and_bound),
        cmocka_unit_test(test_snapshot_v1_restores_with_defaults),
        cmocka_unit_test(test_cmd_roundtrip_init),
        cmocka_unit_test(test_cmd_roundtrip_member_add),
        cmocka_unit_test(test_cmd_roundtrip_member_remove),
        cmocka_unit_test(test_cmd_roundtrip_set_primary),
        cmocka_unit_test(test_cmd_roundtrip_set_sync),
        cmocka_unit_test(test_cmd_roundtrip_set_pause),
        cmocka_unit_test(test_cmd_roundtrip_set_system_id),
        cmocka_unit_test(test_cmd_roundtrip_longest_strings),
        cmocka_unit_test(test_cmd_encoding_exact_bytes),
        cmocka_unit_test(test_cmd_encoding_pads_with_zeros),
        cmocka_unit_test(test_cmd_encoded_length_is_multiple_of_8),
        cmocka_unit_test(test_cmd_decode_rejects_every_truncation),
        cmocka_unit_test(test_cmd_decode_rejects_version_0),
        cmocka_unit_test(test_cmd_decode_rejects_future_version),
        cmocka_unit_test(test_cmd_decode_rejects_unknown_type),
        cmocka_unit_test(test_cmd_decode_rejects_nonzero_reserved),
        cmocka_unit_test(test_cmd_decode_rejects_nonzero_padding),
        cmocka_unit_test(test_cmd_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_cmd_decode_rejects_payload_longer_than_fields),
        cmocka_unit_test(test_cmd_decode_rejects_payload_shorter_than_fields),
        cmocka_unit_test(test_cmd_decode_rejects_overlong_string),
        cmocka_unit_test(test_cmd_decode_rejects_embedded_nul),
        cmocka_unit_test(test_cmd_decode_rejects_member_count_out_of_range),
        cmocka_unit_test(test_cmd_decode_rejects_voter_count_out_of_range),
        cmocka_unit_test(test_cmd_decode_rejects_bad_bool),
        cmocka_unit_test(test_cmd_decode_failure_leaves_cmd_untouched),
        cmocka_unit_test(test_cmd_encode_rejects_unterminated_string),
        cmocka_unit_test(test_cmd_encode_rejects_count_out_of_range),
        cmocka_unit_test(test_cmd_encode_rejects_unknown_type),
        cmocka_unit_test(test_cmd_type_name),
        cmocka_unit_test(test_state_init_is_empty),
        cmocka_unit_test(test_apply_init_sets_members_and_next_id),
        cmocka_unit_test(test_apply_init_twice_rejected),
        cmocka_unit_test(test_apply_init_empty_scope_rejected),
        cmocka_unit_test(test_apply_init_without_members_rejected),
        cmocka_unit_test(test_apply_init_too_many_members_rejected),
        cmocka_unit_test(test_apply_init_zero_id_rejected),
        cmocka_unit_test(test_apply_init_empty_name_rejected),
        cmocka_unit_test(test_apply_init_empty_raft_address_rejected),
        cmocka_unit_test(test_apply_init_empty_api_address_rejected),
        cmocka_unit_test(test_apply_init_duplicate_name_rejected),
        cmocka_unit_test(test_apply_init_duplicate_id_rejected),
        cmocka_unit_test(test_apply_init_duplicate_raft_address_rejected),
        cmocka_unit_test(test_apply_init_duplicate_api_address_rejected),
        cmocka_unit_test(test_apply_before_init_rejected),
        cmocka_unit_test(test_apply_unknown_type_rejected),
        cmocka_unit_test(test_apply_member_add_appends_and_advances_next_id),
        cmocka_unit_test(test_apply_member_add_duplicate_name_rejected),
        cmocka_unit_test(test_apply_member_add_duplicate_id_rejected),
        cmocka_unit_test(test_apply_member_add_duplicate_raft_address_rejected),
        cmocka_unit_test(test_apply_member_add_duplicate_api_address_rejected),
        cmocka_unit_test(test_apply_member_add_reused_id_rejected),
        cmocka_unit_test(test_apply_member_add_zero_id_rejected),
        cmocka_unit_test(test_apply_member_add_empty_name_rejected),
        cmocka_unit_test(test_apply_member_add_unterminated_name_rejected),
        cmocka_unit_test(test_apply_member_add_max_id_rejected),
        cmocka_unit_test(test_apply_member_add_when_full_rejected),
        cmocka_unit_test(test_apply_member_remove_keeps_order_and_next_id),
        cmocka_unit_test(test_apply_member_remove_unknown_rejected),
        cmocka_unit_test(test_apply_member_remove_drops_sync_voter_and_lowers_k),
        cmocka_unit_test(test_apply_member_remove_non_voter_keeps_k),
        cmocka_unit_test(test_apply_member_remove_clears_primary_keeps_term),
        cmocka_unit_test(test_apply_set_primary_records_primary),
        cmocka_unit_test(test_apply_set_primary_same_term_accepted),
        cmocka_unit_test(test_apply_set_primary_unknown_member_rejected),
        cmocka_unit_test(test_apply_set_primary_older_term_rejected),
        cmocka_unit_test(test_apply_set_primary_empty_name_clears),
        cmocka_unit_test(test_apply_set_sync_records_set),
        cmocka_unit_test(test_apply_set_sync_k_above_voters_rejected),
        cmocka_unit_test(test_apply_set_sync_duplicate_voter_rejected),
        cmocka_unit_test(test_apply_set_sync_non_member_rejected),
        cmocka_unit_test(test_apply_set_sync_too_many_voters_rejected),
        cmocka_unit_test(test_apply_set_pause_toggles),
        cmocka_unit_test(test_apply_set_system_id_records_it),
        cmocka_unit_test(test_apply_set_system_id_zero_rejected),
        cmocka_unit_test(test_apply_set_system_id_change_rejected),
        cmocka_unit_test(test_apply_set_system_id_same_value_accepted),
        cmocka_unit_test(test_state_equal_detects_each_difference),
        cmocka_unit_test(test_snapshot_roundtrip_populated_state),
        cmocka_unit_test(test_snapshot_roundtrip_empty_state),
        cmocka_unit_test(test_snapshot_decode_truncated_leaves_state_untouched),
        cmocka_unit_test(test_snapshot_decode_rejects_bad_magic),
        cmocka_unit_test(test_snapshot_decode_rejects_future_version),
        cmocka_unit_test(test_history_cmd_versions),
        cmocka_unit_test(test_history_apply_rules_and_bound),
        cmocka_unit_test(test_history_snapshot_versions),
        cmocka_unit_test(test_switchover_cmd_roundtrip_and_versions),
        cmocka_unit_test(test_switchover_cmd_decode_rejects_truncation),
        cmocka_unit_test(test_switchover_apply_rules),
        cmocka_unit_test(test_switchover_snapshot_versions),
        cmocka_unit_test(test_param_check),
        cmocka_unit_test(test_dynamic_cmd_roundtrip_and_versions),
        cmocka_unit_test(test_dynamic_apply_rules),
        cmocka_unit_test(test_dynamic_snapshot_versions),
        cmocka_unit_test(test_dynamic_hba),
        cmocka_unit_test(test_dynamic_lag),
        cmocka_unit_test(test_snapshot_decode_rejects_nonzero_padding),
        cmocka_unit_test(test_snapshot_decode_rejects_broken_invariant),
        cmocka_unit_test(test_fsm_init_is_version_1),
        cmocka_unit_test(test_raft_apply_accepted_returns_zero_result),
        cmocka_unit_test(test_raft_apply_rejected_sets_result_and_last_error),
        cmocka_unit_test(test_raft_apply_malformed_counts_as_rejected),
        cmocka_unit_test(test_raft_snapshot_then_restore_gives_equal_state),
        cmocka_unit_test(test_raft_restore_failure_keeps_state_and_buffer),
        cmocka_unit_test(test_cmd_roundtrip_member_seen),
        cmocka_unit_test(test_apply_member_seen_sets_the_tag),
        cmocka_unit_test(test_checksum_follows_the_state),
        cmocka_unit_test(test_checksum_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
