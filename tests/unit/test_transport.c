/* Unit tests for the handshake and frames of the authenticated Raft transport (transport.h):
 * success, replay, truncation, wrong scope, version, role and secret, rotation, the identity
 * checks, and frame bounds. Two handshake objects talk to each other through memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "raftpg/transport.h"

static struct transport_secrets secrets_a, secrets_b, secrets_rotating;
static struct transport_hs client, server;

/* What each side sent, in order, for replays. */
static uint8_t sent_by_client[512], sent_by_server[512];
static size_t n_sent_by_client, n_sent_by_server;

static int setup(void **state)
{
    (void)state;
    memset(&secrets_a, 0, sizeof secrets_a);
    memset(&secrets_b, 0, sizeof secrets_b);
    memset(secrets_a.primary, 0xaa, TRANSPORT_KEY_SIZE);
    memset(secrets_b.primary, 0xbb, TRANSPORT_KEY_SIZE);
    /* A member in the middle of a rotation from a to b. */
    memset(&secrets_rotating, 0, sizeof secrets_rotating);
    memset(secrets_rotating.primary, 0xbb, TRANSPORT_KEY_SIZE);
    memset(secrets_rotating.previous, 0xaa, TRANSPORT_KEY_SIZE);
    secrets_rotating.has_previous = true;
    n_sent_by_client = n_sent_by_server = 0;
    return 0;
}

/* Moves what from has to send into to; returns to's new state. */
static enum transport_hs_state pass(struct transport_hs *from, struct transport_hs *to,
                                    uint8_t *record, size_t *n_record)
{
    size_t used = 0, len = from->out_len;
    memcpy(record + *n_record, from->out, len);
    *n_record += len;
    from->out_len = 0;
    enum transport_hs_state st = transport_hs_feed(to, record + *n_record - len, len, &used);
    assert_int_equal(used, len);
    return st;
}

static void start_pair(const struct transport_secrets *cs, bool use_previous, const char *cscope,
                       const struct transport_secrets *ss, const char *sscope)
{
    assert_int_equal(transport_hs_start(&client, TRANSPORT_CLIENT, cs, use_previous, cscope, 2,
                                        "127.0.0.1:7002", 1),
                     0);
    assert_int_equal(transport_hs_start(&server, TRANSPORT_SERVER, ss, false, sscope, 1,
                                        "127.0.0.1:7001", 0),
                     0);
}

/* Runs the handshake to its end; returns the server's state after AUTH_C. */
static enum transport_hs_state run(void)
{
    assert_int_equal(client.out_len, TRANSPORT_HELLO_SIZE);
    if (pass(&client, &server, sent_by_client, &n_sent_by_client) !=
        TRANSPORT_HS_SERVER_WAIT_AUTH) {
        return server.state;
    }
    if (pass(&server, &client, sent_by_server, &n_sent_by_server) !=
        TRANSPORT_HS_CLIENT_WAIT_AUTH) {
        return server.state;
    }
    assert_int_equal(client.out_len, TRANSPORT_AUTH_C_SIZE);
    if (pass(&client, &server, sent_by_client, &n_sent_by_client) != TRANSPORT_HS_DONE) {
        return server.state;
    }
    assert_int_equal(server.out_len, TRANSPORT_AUTH_S_SIZE);
    pass(&server, &client, sent_by_server, &n_sent_by_server);
    return server.state;
}

/* A frame sealed by one side opens on the other, once, in order. */
static void check_frame(struct transport_channel *tx, struct transport_channel *rx, size_t len)
{
    static uint8_t msg[TRANSPORT_FRAME_MAX], out[TRANSPORT_FRAME_MAX + 64],
        got[TRANSPORT_FRAME_MAX];
    for (size_t i = 0; i < len; i++) {
        msg[i] = (uint8_t)(i * 7);
    }
    size_t n = transport_frame_seal(tx, msg, len, out);
    assert_int_equal(n, len + TRANSPORT_FRAME_LEN_SIZE + TRANSPORT_FRAME_OVERHEAD);
    size_t used = 0, got_len = 0;
    enum transport_fail why = TRANSPORT_FAIL_NONE;
    /* Every proper prefix is "not yet". */
    assert_int_equal(transport_frame_open(rx, out, n - 1, &used, got, &got_len, &why), 0);
    assert_int_equal(transport_frame_open(rx, out, n, &used, got, &got_len, &why), 1);
    assert_int_equal(used, n);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, msg, len);
}

static void test_handshake_succeeds_and_frames_flow_both_ways(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    assert_int_equal(client.state, TRANSPORT_HS_DONE);
    assert_int_equal(server.peer_id, 2);
    assert_string_equal(server.peer_address, "127.0.0.1:7002");
    assert_int_equal(client.peer_id, 1);
    assert_false(server.use_previous);
    check_frame(&client.channel, &server.channel, 1);
    check_frame(&client.channel, &server.channel, TRANSPORT_FRAME_MAX);
    check_frame(&server.channel, &client.channel, 100);
}

static void test_replayed_client_handshake_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    /* An eavesdropper sends the recorded HELLO and AUTH_C to a fresh server. */
    size_t used = 0;
    transport_hs_start(&server, TRANSPORT_SERVER, &secrets_a, false, "demo", 1, "127.0.0.1:7001",
                       0);
    assert_int_equal(transport_hs_feed(&server, sent_by_client, n_sent_by_client, &used),
                     TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_AUTH);
    assert_int_equal(used, TRANSPORT_HELLO_SIZE + TRANSPORT_AUTH_C_SIZE);
}

static void test_replayed_server_handshake_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    /* A fake member answers a fresh client with a recorded HELLO and AUTH_S. */
    size_t used = 0;
    transport_hs_start(&client, TRANSPORT_CLIENT, &secrets_a, false, "demo", 2, "127.0.0.1:7002",
                       1);
    assert_int_equal(transport_hs_feed(&client, sent_by_server, n_sent_by_server, &used),
                     TRANSPORT_HS_FAILED);
    assert_int_equal(client.fail, TRANSPORT_FAIL_AUTH);
}

static void test_truncated_hello_waits_then_fails_at_eof(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    size_t used = 0;
    assert_int_equal(transport_hs_feed(&server, client.out, TRANSPORT_HELLO_SIZE - 1, &used),
                     TRANSPORT_HS_SERVER_WAIT_HELLO);
    assert_int_equal(used, TRANSPORT_HELLO_SIZE - 1);
    assert_int_equal(server.out_len, 0);
    assert_int_equal(transport_hs_eof(&server), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_TRUNCATED);
}

static void test_handshake_fed_one_byte_at_a_time_succeeds(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    struct transport_hs *from = &client, *to = &server;
    for (int round = 0; round < 4; round++) {
        uint8_t buf[TRANSPORT_HS_BUF];
        size_t len = from->out_len, used = 0;
        memcpy(buf, from->out, len);
        from->out_len = 0;
        for (size_t i = 0; i < len; i++) {
            transport_hs_feed(to, buf + i, 1, &used);
            assert_int_equal(used, 1);
        }
        struct transport_hs *t = from;
        from = to;
        to = t;
    }
    assert_int_equal(server.state, TRANSPORT_HS_DONE);
    assert_int_equal(client.state, TRANSPORT_HS_DONE);
}

static void test_truncated_auth_is_truncated_and_silence_after_auth_is_rejection(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    pass(&client, &server, sent_by_client, &n_sent_by_client);
    pass(&server, &client, sent_by_server, &n_sent_by_server);
    size_t used = 0;
    assert_int_equal(transport_hs_feed(&server, client.out, 10, &used),
                     TRANSPORT_HS_SERVER_WAIT_AUTH);
    assert_int_equal(transport_hs_eof(&server), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_TRUNCATED);
    /* The client sent AUTH_C and the server closed without a word: it refused the secret. */
    assert_int_equal(transport_hs_eof(&client), TRANSPORT_HS_FAILED);
    assert_int_equal(client.fail, TRANSPORT_FAIL_REJECTED);
}

static void test_other_scope_is_refused_by_both_sides(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "prod");
    assert_int_equal(run(), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_SCOPE);
    assert_int_equal(server.out_len, 0);
    /* And a client checks the server's scope. */
    start_pair(&secrets_a, false, "prod", &secrets_a, "demo");
    size_t used = 0;
    uint8_t hello[TRANSPORT_HELLO_SIZE];
    transport_hs_start(&server, TRANSPORT_SERVER, &secrets_a, false, "demo", 1, "127.0.0.1:7001",
                       0);
    struct transport_hs other;
    transport_hs_start(&other, TRANSPORT_CLIENT, &secrets_a, false, "demo", 2, "127.0.0.1:7002", 1);
    transport_hs_feed(&server, other.out, other.out_len, &used);
    memcpy(hello, server.out, sizeof hello);
    assert_int_equal(transport_hs_feed(&client, hello, sizeof hello, &used), TRANSPORT_HS_FAILED);
    assert_int_equal(client.fail, TRANSPORT_FAIL_SCOPE);
}

static void test_other_version_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    client.out[4] = TRANSPORT_VERSION + 1;
    assert_int_equal(run(), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_VERSION);
}

static void test_other_protocol_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    /* libraft 0.15's own handshake: protocol version 1 as a 64-bit little-endian word. */
    static const uint8_t raft_handshake[TRANSPORT_HELLO_SIZE] = {1, 0, 0, 0, 0, 0, 0, 0, 9};
    size_t used = 0;
    assert_int_equal(transport_hs_feed(&server, raft_handshake, sizeof raft_handshake, &used),
                     TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_MAGIC);
}

static void test_reflected_hello_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    struct transport_hs other;
    transport_hs_start(&other, TRANSPORT_SERVER, &secrets_a, false, "demo", 3, "127.0.0.1:7003", 0);
    size_t used = 0;
    transport_hs_feed(&other, client.out, client.out_len, &used);
    /* A server's hello sent to a server. */
    assert_int_equal(transport_hs_feed(&server, other.out, other.out_len, &used),
                     TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_ROLE);
}

static void test_wrong_secret_is_refused_before_any_session(void **state)
{
    (void)state;
    start_pair(&secrets_b, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_AUTH);
    assert_int_equal(server.out_len, 0);
    assert_int_equal(transport_hs_eof(&client), TRANSPORT_HS_FAILED);
    assert_int_equal(client.fail, TRANSPORT_FAIL_REJECTED);
}

static void test_rotating_server_accepts_both_secrets(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_rotating, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    assert_true(server.use_previous);
    check_frame(&client.channel, &server.channel, 10);
    check_frame(&server.channel, &client.channel, 10);
    start_pair(&secrets_b, false, "demo", &secrets_rotating, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    assert_false(server.use_previous);
}

static void test_rotating_client_proves_the_previous_secret_when_told(void **state)
{
    (void)state;
    /* A rotated member against one that has not rotated yet: the primary fails, the previous
     * one works. */
    start_pair(&secrets_rotating, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_AUTH);
    start_pair(&secrets_rotating, true, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    assert_int_equal(client.state, TRANSPORT_HS_DONE);
    /* Without a previous secret there is nothing to try. */
    assert_int_equal(transport_hs_start(&client, TRANSPORT_CLIENT, &secrets_a, true, "demo", 2,
                                        "127.0.0.1:7002", 1),
                     RPG_EINVAL);
}

static void test_server_that_is_another_member_is_refused(void **state)
{
    (void)state;
    assert_int_equal(transport_hs_start(&client, TRANSPORT_CLIENT, &secrets_a, false, "demo", 2,
                                        "127.0.0.1:7002", 3),
                     0);
    transport_hs_start(&server, TRANSPORT_SERVER, &secrets_a, false, "demo", 1, "127.0.0.1:7001",
                       0);
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    assert_int_equal(client.state, TRANSPORT_HS_FAILED);
    assert_int_equal(client.fail, TRANSPORT_FAIL_PEER_ID);
}

static void test_malformed_identity_is_refused(void **state)
{
    (void)state;
    assert_int_equal(transport_hs_start(&client, TRANSPORT_CLIENT, &secrets_a, false, "demo", 2,
                                        "localhost:7002", 1),
                     0);
    transport_hs_start(&server, TRANSPORT_SERVER, &secrets_a, false, "demo", 1, "127.0.0.1:7001",
                       0);
    assert_int_equal(run(), TRANSPORT_HS_FAILED);
    assert_int_equal(server.fail, TRANSPORT_FAIL_IDENTITY);
    /* An address that does not fit the field is refused before anything is sent. */
    char longer[TRANSPORT_ADDR_MAX + 1];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(transport_hs_start(&client, TRANSPORT_CLIENT, &secrets_a, false, "demo", 2,
                                        longer, 1),
                     RPG_EINVAL);
}

static void test_frame_lengths_out_of_bounds_are_refused_before_reading(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    static uint8_t msg[TRANSPORT_FRAME_MAX];
    size_t used = 0, n = 0;
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t one_too_many[4] = {0, 1, 0, TRANSPORT_FRAME_OVERHEAD + 1};
    const uint8_t empty[4] = {0, 0, 0, TRANSPORT_FRAME_OVERHEAD};
    const uint8_t *bad[] = {huge, one_too_many, empty};
    for (size_t i = 0; i < 3; i++) {
        enum transport_fail why = TRANSPORT_FAIL_NONE;
        assert_int_equal(transport_frame_open(&server.channel, bad[i], 4, &used, msg, &n, &why),
                         -1);
        assert_int_equal(why, TRANSPORT_FAIL_FRAME_SIZE);
    }
}

static void test_altered_or_replayed_frame_is_refused(void **state)
{
    (void)state;
    start_pair(&secrets_a, false, "demo", &secrets_a, "demo");
    assert_int_equal(run(), TRANSPORT_HS_DONE);
    static uint8_t msg[TRANSPORT_FRAME_MAX], frame[128], copy[128];
    size_t used = 0, n = 0;
    enum transport_fail why = TRANSPORT_FAIL_NONE;
    size_t len = transport_frame_seal(&client.channel, (const uint8_t *)"appendentries", 13, frame);
    memcpy(copy, frame, len);
    copy[len - 1] ^= 1;
    /* A state that failed to decrypt is unchanged, so the good frame still opens after it. */
    assert_int_equal(transport_frame_open(&server.channel, copy, len, &used, msg, &n, &why), -1);
    assert_int_equal(why, TRANSPORT_FAIL_DECRYPT);
    assert_int_equal(transport_frame_open(&server.channel, frame, len, &used, msg, &n, &why), 1);
    assert_memory_equal(msg, "appendentries", 13);
    why = TRANSPORT_FAIL_NONE;
    assert_int_equal(transport_frame_open(&server.channel, frame, len, &used, msg, &n, &why), -1);
    assert_int_equal(why, TRANSPORT_FAIL_DECRYPT);
}

static void test_names_are_complete(void **state)
{
    (void)state;
    for (int i = TRANSPORT_FAIL_NONE; i <= TRANSPORT_FAIL_BUSY; i++) {
        assert_string_not_equal(transport_fail_name((enum transport_fail)i), "unknown");
    }
    assert_string_equal(transport_fail_name((enum transport_fail)99), "unknown");
    for (int i = TRANSPORT_HS_CLIENT_WAIT_HELLO; i <= TRANSPORT_HS_FAILED; i++) {
        assert_string_not_equal(transport_hs_state_name((enum transport_hs_state)i), "unknown");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_handshake_succeeds_and_frames_flow_both_ways, setup),
        cmocka_unit_test_setup(test_replayed_client_handshake_is_refused, setup),
        cmocka_unit_test_setup(test_replayed_server_handshake_is_refused, setup),
        cmocka_unit_test_setup(test_truncated_hello_waits_then_fails_at_eof, setup),
        cmocka_unit_test_setup(test_handshake_fed_one_byte_at_a_time_succeeds, setup),
        cmocka_unit_test_setup(test_truncated_auth_is_truncated_and_silence_after_auth_is_rejection,
                               setup),
        cmocka_unit_test_setup(test_other_scope_is_refused_by_both_sides, setup),
        cmocka_unit_test_setup(test_other_version_is_refused, setup),
        cmocka_unit_test_setup(test_other_protocol_is_refused, setup),
        cmocka_unit_test_setup(test_reflected_hello_is_refused, setup),
        cmocka_unit_test_setup(test_wrong_secret_is_refused_before_any_session, setup),
        cmocka_unit_test_setup(test_rotating_server_accepts_both_secrets, setup),
        cmocka_unit_test_setup(test_rotating_client_proves_the_previous_secret_when_told, setup),
        cmocka_unit_test_setup(test_server_that_is_another_member_is_refused, setup),
        cmocka_unit_test_setup(test_malformed_identity_is_refused, setup),
        cmocka_unit_test_setup(test_frame_lengths_out_of_bounds_are_refused_before_reading, setup),
        cmocka_unit_test_setup(test_altered_or_replayed_frame_is_refused, setup),
        cmocka_unit_test_setup(test_names_are_complete, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
