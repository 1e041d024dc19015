/* The authenticated Raft transport (transport.h) on a real libuv loop and loopback sockets, as
 * libraft drives it: a session carries bytes both ways and names the authenticated peer; a wrong
 * secret, garbage and an idle connection are refused, counted and never reach the accept
 * callback; a rotating member falls back to the previous secret; closing cancels what is
 * pending. Every handle is closed at the end of each test (the sanitizer build checks leaks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>

#include "raftpg/transport.h"

#define WAIT_MS 10000

static uv_loop_t loop;
static struct raft_uv_transport server_t, client_t;
static struct transport_secrets secrets_a, secrets_b, secrets_rotating;
static char server_addr[32];

/* What the server side handed to "libraft". */
static uv_stream_t *accepted;
static raft_id accepted_id;
static char accepted_address[64];
static int n_accepted;

/* The client side's connect request. */
static struct raft_uv_connect req;
static uv_stream_t *connected;
static int connect_status;
static bool connect_done;

static char received[256];
static size_t n_received;

static int closed_transports;

/* A port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Runs the loop until *flag or WAIT_MS. */
static void run_until(const bool *flag)
{
    uint64_t deadline = uv_now(&loop) + WAIT_MS;
    while (!*flag && uv_now(&loop) < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(*flag);
}

static bool accepted_flag;

static void accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
    (void)t;
    n_accepted++;
    accepted = stream;
    accepted_id = id;
    snprintf(accepted_address, sizeof accepted_address, "%s", address);
    accepted_flag = true;
}

static void connect_cb(struct raft_uv_connect *r, uv_stream_t *stream, int status)
{
    (void)r;
    connected = stream;
    connect_status = status;
    connect_done = true;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&secrets_a, 0, sizeof secrets_a);
    memset(&secrets_b, 0, sizeof secrets_b);
    memset(&secrets_rotating, 0, sizeof secrets_rotating);
    memset(secrets_a.primary, 0xaa, TRANSPORT_KEY_SIZE);
    memset(secrets_b.primary, 0xbb, TRANSPORT_KEY_SIZE);
    memset(secrets_rotating.primary, 0xbb, TRANSPORT_KEY_SIZE);
    memset(secrets_rotating.previous, 0xaa, TRANSPORT_KEY_SIZE);
    secrets_rotating.has_previous = true;
    snprintf(server_addr, sizeof server_addr, "127.0.0.1:%d", free_port());
    accepted = connected = NULL;
    n_accepted = 0;
    accepted_flag = connect_done = false;
    connect_status = -1;
    n_received = 0;
    closed_transports = 0;
    return 0;
}

/* A server transport with secrets s, listening; a client transport with secrets cs. */
static void start(const struct transport_secrets *s, const struct transport_secrets *cs)
{
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(transport_init(&server_t, &loop, "demo", s, errmsg), 0);
    assert_int_equal(server_t.init(&server_t, 1, server_addr), 0);
    assert_int_equal(server_t.listen(&server_t, accept_cb), 0);
    assert_int_equal(transport_init(&client_t, &loop, "demo", cs, errmsg), 0);
    assert_int_equal(client_t.init(&client_t, 2, "127.0.0.1:9"), 0);
}

static void transport_closed(struct raft_uv_transport *t)
{
    (void)t;
    closed_transports++;
}

static void stream_closed(uv_handle_t *h)
{
    raft_free(h);
}

/* Closes what "libraft" holds, then both transports, and runs the loop dry. */
static void stop(void)
{
    if (accepted != NULL) {
        uv_close((uv_handle_t *)accepted, stream_closed);
    }
    if (connected != NULL) {
        uv_close((uv_handle_t *)connected, stream_closed);
    }
    server_t.close(&server_t, transport_closed);
    client_t.close(&client_t, transport_closed);
    for (int i = 0; i < 1000 && closed_transports < 2; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(closed_transports, 2);
    transport_close(&server_t);
    transport_close(&client_t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(received + n_received, (unsigned)(sizeof received - n_received));
}

static bool got_all;
static size_t want;

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)s;
    (void)buf;
    if (nread > 0) {
        n_received += (size_t)nread;
        got_all = n_received >= want;
    }
}

static uv_write_t wreq;
static void write_cb(uv_write_t *w, int status)
{
    (void)w;
    assert_int_equal(status, 0);
}

/* Writes text on from and waits until it arrives whole on to. */
static void pass_bytes(uv_stream_t *from, uv_stream_t *to, const char *text)
{
    n_received = 0;
    got_all = false;
    want = strlen(text);
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    assert_int_equal(uv_write(&wreq, from, &b, 1, write_cb), 0);
    assert_int_equal(uv_read_start(to, alloc_cb, read_cb), 0);
    run_until(&got_all);
    uv_read_stop(to);
    assert_memory_equal(received, text, strlen(text));
}

static void test_session_carries_bytes_and_names_the_peer(void **state)
{
    (void)state;
    struct transport_stats before, after;
    transport_get_stats(&before);
    start(&secrets_a, &secrets_a);
    assert_int_equal(client_t.connect(&client_t, &req, 1, server_addr, connect_cb), 0);
    run_until(&connect_done);
    assert_int_equal(connect_status, 0);
    run_until(&accepted_flag);
    assert_int_equal(accepted_id, 2);
    assert_string_equal(accepted_address, "127.0.0.1:9");
    pass_bytes(connected, accepted, "append entries, term 7");
    pass_bytes(accepted, connected, "result");
    transport_get_stats(&after);
    assert_int_equal(after.authenticated - before.authenticated, 2);
    assert_int_equal(after.sessions, 2);
    assert_int_equal(after.rejected, before.rejected);
    stop();
    transport_get_stats(&after);
    assert_int_equal(after.sessions, 0);
    assert_int_equal(after.handshaking, 0);
}

static void test_wrong_secret_fails_the_connect_and_is_refused(void **state)
{
    (void)state;
    struct transport_stats before, after;
    transport_get_stats(&before);
    start(&secrets_a, &secrets_b);
    assert_int_equal(client_t.connect(&client_t, &req, 1, server_addr, connect_cb), 0);
    run_until(&connect_done);
    assert_int_equal(connect_status, RAFT_NOCONNECTION);
    assert_null(connected);
    assert_int_equal(n_accepted, 0);
    transport_get_stats(&after);
    assert_int_equal(after.rejected - before.rejected, 1);
    assert_int_equal(after.connect_failed - before.connect_failed, 1);
    stop();
}

static void test_rotating_member_falls_back_to_the_previous_secret(void **state)
{
    (void)state;
    start(&secrets_a, &secrets_rotating);
    assert_int_equal(client_t.connect(&client_t, &req, 1, server_addr, connect_cb), 0);
    run_until(&connect_done);
    assert_int_equal(connect_status, 0);
    run_until(&accepted_flag);
    pass_bytes(connected, accepted, "after the rotation");
    stop();
}

/* A raw TCP client for garbage and idle connections. */
static uv_tcp_t raw;
static uv_connect_t raw_connect;
static bool raw_connected, raw_closed_by_peer, raw_handle_closed;

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)s;
    (void)buf;
    if (nread < 0) {
        raw_closed_by_peer = true;
    }
}

static void raw_connect_cb(uv_connect_t *r, int status)
{
    (void)r;
    assert_int_equal(status, 0);
    raw_connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&raw, alloc_cb, raw_read_cb), 0);
}

static void raw_closed(uv_handle_t *h)
{
    (void)h;
    raw_handle_closed = true;
}

static void raw_open(void)
{
    struct sockaddr_in sa;
    char host[16];
    uint16_t port;
    raw_connected = raw_closed_by_peer = raw_handle_closed = false;
    assert_int_equal(conf_parse_addr(server_addr, host, &port), 0);
    uv_ip4_addr(host, port, &sa);
    uv_tcp_init(&loop, &raw);
    assert_int_equal(uv_tcp_connect(&raw_connect, &raw, (struct sockaddr *)&sa, raw_connect_cb), 0);
    run_until(&raw_connected);
}

static void raw_close(void)
{
    uv_close((uv_handle_t *)&raw, raw_closed);
    run_until(&raw_handle_closed);
}

static void test_garbage_is_refused_before_the_accept_callback(void **state)
{
    (void)state;
    struct transport_stats before, after;
    transport_get_stats(&before);
    start(&secrets_a, &secrets_a);
    raw_open();
    /* libraft 0.15's own handshake, then more than any handshake message. */
    static char garbage[4096] = {1, 0, 0, 0, 0, 0, 0, 0, 99};
    uv_buf_t b = uv_buf_init(garbage, sizeof garbage);
    assert_int_equal(uv_write(&wreq, (uv_stream_t *)&raw, &b, 1, NULL), 0);
    run_until(&raw_closed_by_peer);
    raw_close();
    assert_int_equal(n_accepted, 0);
    transport_get_stats(&after);
    assert_int_equal(after.rejected - before.rejected, 1);
    assert_int_equal(after.accepted - before.accepted, 1);
    stop();
}

static void test_idle_connection_is_closed_after_the_handshake_time_out(void **state)
{
    (void)state;
    struct transport_stats before, after;
    transport_get_stats(&before);
    start(&secrets_a, &secrets_a);
    raw_open();
    uint64_t t0 = uv_now(&loop);
    run_until(&raw_closed_by_peer);
    uint64_t waited = uv_now(&loop) - t0;
    assert_true(waited >= TRANSPORT_HANDSHAKE_TIMEOUT_MS - 50);
    assert_true(waited <= TRANSPORT_HANDSHAKE_TIMEOUT_MS + 1000);
    raw_close();
    transport_get_stats(&after);
    assert_int_equal(after.timed_out - before.timed_out, 1);
    stop();
}

static void test_closing_cancels_a_pending_connect(void **state)
{
    (void)state;
    start(&secrets_a, &secrets_a);
    assert_int_equal(client_t.connect(&client_t, &req, 1, server_addr, connect_cb), 0);
    /* Closed before the handshake could finish: the request completes, cancelled. */
    client_t.close(&client_t, transport_closed);
    for (int i = 0; i < 1000 && !connect_done; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(connect_done);
    assert_int_equal(connect_status, RAFT_CANCELED);
    server_t.close(&server_t, transport_closed);
    for (int i = 0; i < 1000 && closed_transports < 2; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(closed_transports, 2);
    transport_close(&server_t);
    transport_close(&client_t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_session_carries_bytes_and_names_the_peer, setup),
        cmocka_unit_test_setup(test_wrong_secret_fails_the_connect_and_is_refused, setup),
        cmocka_unit_test_setup(test_rotating_member_falls_back_to_the_previous_secret, setup),
        cmocka_unit_test_setup(test_garbage_is_refused_before_the_accept_callback, setup),
        cmocka_unit_test_setup(test_idle_connection_is_closed_after_the_handshake_time_out, setup),
        cmocka_unit_test_setup(test_closing_cancels_a_pending_connect, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
