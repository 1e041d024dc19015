/* HTTP server and client against a real libuv loop on 127.0.0.1. The loop runs in the test's
 * thread; each client (blocking) runs in a second thread and wakes the loop with a uv_async_t
 * when done, which closes the server so uv_run returns. All assertions run in the test thread
 * after the client thread is joined. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/http.h"

#define RAW_MAX (128 * 1024)

enum mode {
    MODE_ECHO,               /* respond at once with the echo body */
    MODE_ASYNC,              /* respond with the echo body from a timer */
    MODE_CLOSE_SERVER,       /* close the server, respond once it reports closed */
    MODE_CLOSE_THEN_RESPOND, /* close the server, then respond at once */
};

struct seen {
    enum http_method method;
    char path[HTTP_PATH_MAX];
    char query[HTTP_PATH_MAX];
    char *body;
    size_t body_len;
    char auth[256];
    bool has_auth;
    char ctype[256];
    bool has_ctype;
    char peer[64];
};

struct fx {
    uv_loop_t loop;
    struct http_server server;
    int port;
    enum mode mode;
    uint64_t async_delay_ms;
    uv_async_t stop;
    uv_timer_t timer;
    struct http_conn *pending;
    char pending_body[2048];
    int n_seen;
    struct seen seen[4];
    int server_closed;
    void (*client)(struct fx *f);
    uv_thread_t thread;

    /* Written by the client thread, read after the join. */
    int rc;
    int status;
    char *body;
    size_t body_len;
    char errmsg[RPG_ERRMSG_SIZE];
    char raw[RAW_MAX];
    size_t raw_len;
    char raw2[RAW_MAX];
    size_t raw2_len;
    long elapsed_ms;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int echo_body(char *buf, size_t cap, const char *path, const char *query, size_t len)
{
    return snprintf(buf, cap, "{\"path\":\"%s\",\"query\":\"%s\",\"len\":%zu}", path, query, len);
}

/* The exact bytes the server sends for a JSON response. */
static void expect_response(char *buf, size_t cap, const char *status, const char *body,
                            const char *connection)
{
    snprintf(buf, cap,
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: %s\r\n\r\n%s",
             status, strlen(body), connection, body);
}

/* ---- loop side ---- */

static void on_server_closed(struct http_server *s)
{
    struct fx *f = s->data;
    f->server_closed++;
}

static void on_closed_then_respond(struct http_server *s)
{
    struct fx *f = s->data;
    f->server_closed++;
    /* The conn's handles are closed by now: this must only settle and free it. */
    http_respond(f->pending, 200, NULL, "{}", 2);
    f->pending = NULL;
}

static void on_async_timer(uv_timer_t *t)
{
    struct fx *f = t->data;
    struct http_conn *c = f->pending;
    f->pending = NULL;
    http_respond(c, 200, NULL, f->pending_body, strlen(f->pending_body));
}

static void handler(struct http_conn *conn, const struct http_request *req, void *data)
{
    struct fx *f = data;
    if (f->n_seen < 4) {
        struct seen *s = &f->seen[f->n_seen];
        s->method = req->method;
        snprintf(s->path, sizeof s->path, "%s", req->path);
        snprintf(s->query, sizeof s->query, "%s", req->query);
        s->body = malloc(req->body_len + 1);
        memcpy(s->body, req->body, req->body_len + 1);
        s->body_len = req->body_len;
        s->has_auth = req->authorization != NULL;
        if (s->has_auth)
            snprintf(s->auth, sizeof s->auth, "%s", req->authorization);
        s->has_ctype = req->content_type != NULL;
        if (s->has_ctype)
            snprintf(s->ctype, sizeof s->ctype, "%s", req->content_type);
        snprintf(s->peer, sizeof s->peer, "%s", http_conn_peer(conn));
    }
    f->n_seen++;

    char body[2048];
    echo_body(body, sizeof body, req->path, req->query, req->body_len);
    switch (f->mode) {
    case MODE_ECHO:
        http_respond(conn, 200, NULL, body, strlen(body));
        break;
    case MODE_ASYNC:
        f->pending = conn;
        memcpy(f->pending_body, body, sizeof body);
        uv_timer_start(&f->timer, on_async_timer, f->async_delay_ms, 0);
        break;
    case MODE_CLOSE_SERVER:
        f->pending = conn;
        http_server_close(&f->server, on_closed_then_respond);
        break;
    case MODE_CLOSE_THEN_RESPOND:
        http_server_close(&f->server, on_server_closed);
        http_respond(conn, 200, NULL, body, strlen(body));
        break;
    }
}

static void on_stop(uv_async_t *a)
{
    struct fx *f = a->data;
    http_server_close(&f->server, on_server_closed); /* no-op if already closing */
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->timer, NULL);
}

static void client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    uv_async_send(&f->stop);
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char errmsg[RPG_ERRMSG_SIZE];
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->timer), 0);
    f->timer.data = f;
    assert_int_equal(http_server_start(&f->server, &f->loop, "127.0.0.1:0", handler, f, errmsg), 0);
    f->port = http_server_port(&f->server);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 4; i++)
        free(f->seen[i].body);
    free(f->body);
    free(f);
    return 0;
}

/* Runs the loop until the client has finished and every handle is closed. */
static void fx_run(struct fx *f, void (*client)(struct fx *f))
{
    f->client = client;
    assert_int_equal(uv_async_init(&f->loop, &f->stop, on_stop), 0);
    f->stop.data = f;
    assert_int_equal(uv_thread_create(&f->thread, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_thread_join(&f->thread), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(f->server_closed, 1);
    assert_int_equal(f->server.n_conns, 0);
}

/* ---- client side helpers (client thread: no cmocka asserts here) ---- */

static void fx_addr(const struct fx *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.1:%d", f->port);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 5 };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raw_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* Reads exactly n bytes, or fewer on EOF, error or the 5 s receive timeout. */
static size_t raw_read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

static size_t raw_read_eof(int fd, char *buf, size_t cap)
{
    return raw_read_n(fd, buf, cap - 1);
}

/* Sends one request on a fresh connection and reads until the server closes. */
static void raw_exchange(struct fx *f, const char *req, size_t len)
{
    int fd = raw_connect(f->port);
    if (fd < 0)
        return;
    raw_send(fd, req, len);
    f->raw_len = raw_read_eof(fd, f->raw, sizeof f->raw);
    close(fd);
}

/* ---- server behaviour ---- */

static void client_get_with_query(struct fx *f)
{
    char addr[64];
    fx_addr(f, addr, sizeof addr);
    f->rc = http_request_sync(addr, "GET", "/v1/status?verbose=1&x=%20", NULL, "Bearer s3cret",
                              2000, &f->status, &f->body, &f->body_len, f->errmsg);
}

static void test_get_splits_path_and_query(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_get_with_query);

    const char *want = "{\"path\":\"/v1/status\",\"query\":\"verbose=1&x=%20\",\"len\":0}";
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_string_equal(f->body, want);
    assert_int_equal(f->body_len, strlen(want));
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_GET);
    assert_string_equal(f->seen[0].path, "/v1/status");
    assert_string_equal(f->seen[0].query, "verbose=1&x=%20");
    assert_true(f->seen[0].has_auth);
    assert_string_equal(f->seen[0].auth, "Bearer s3cret");
    assert_false(f->seen[0].has_ctype);
    assert_string_equal(f->seen[0].body, "");
    assert_string_equal(f->seen[0].peer, "127.0.0.1");
}

static void client_post_small(struct fx *f)
{
    char addr[64];
    snprintf(addr, sizeof addr, "http://127.0.0.1:%d", f->port);
    f->rc = http_request_sync(addr, "POST", "/v1/switchover", "{\"to\":\"node2\"}", NULL, 2000,
                              &f->status, &f->body, &f->body_len, f->errmsg);
}

static void test_post_body_delivered_exactly(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_post_small);

    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_string_equal(f->body, "{\"path\":\"/v1/switchover\",\"query\":\"\",\"len\":14}");
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_POST);
    assert_int_equal(f->seen[0].body_len, 14);
    assert_string_equal(f->seen[0].body, "{\"to\":\"node2\"}");
    assert_true(f->seen[0].has_ctype);
    assert_string_equal(f->seen[0].ctype, "application/json");
    assert_false(f->seen[0].has_auth);
}

static char *pattern(size_t len)
{
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)('a' + i % 26);
    s[len] = '\0';
    return s;
}

static void client_post_at_limit(struct fx *f)
{
    char addr[64];
    char *body = pattern(HTTP_BODY_MAX);
    fx_addr(f, addr, sizeof addr);
    f->rc = http_request_sync(addr, "PUT", "/big", body, NULL, 5000, &f->status, &f->body,
                              &f->body_len, f->errmsg);
    free(body);
}

static void test_post_body_at_limit_is_accepted(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_post_at_limit);

    char *want = pattern(HTTP_BODY_MAX);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_string_equal(f->body, "{\"path\":\"/big\",\"query\":\"\",\"len\":65536}");
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_PUT);
    assert_int_equal(f->seen[0].body_len, HTTP_BODY_MAX);
    assert_memory_equal(f->seen[0].body, want, HTTP_BODY_MAX + 1);
    free(want);
}

static void client_keepalive(struct fx *f)
{
    char want[512];
    int fd = raw_connect(f->port);
    if (fd < 0)
        return;
    const char *r1 = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *r2 = "GET /two?n=2 HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/one\",\"query\":\"\",\"len\":0}",
                    "keep-alive");
    raw_send(fd, r1, strlen(r1));
    f->raw_len = raw_read_n(fd, f->raw, strlen(want));
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/two\",\"query\":\"n=2\",\"len\":0}",
                    "keep-alive");
    raw_send(fd, r2, strlen(r2));
    f->raw2_len = raw_read_n(fd, f->raw2, strlen(want));
    close(fd);
}

static void test_keepalive_serves_two_requests_on_one_socket(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_keepalive);

    char want[512];
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/one\",\"query\":\"\",\"len\":0}",
                    "keep-alive");
    assert_string_equal(f->raw, want);
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/two\",\"query\":\"n=2\",\"len\":0}",
                    "keep-alive");
    assert_string_equal(f->raw2, want);
    assert_int_equal(f->n_seen, 2);
}

static void client_pipelined(struct fx *f)
{
    int fd = raw_connect(f->port);
    if (fd < 0)
        return;
    const char *reqs = "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
                       "GET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_send(fd, reqs, strlen(reqs));
    f->raw_len = raw_read_eof(fd, f->raw, sizeof f->raw);
    close(fd);
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ASYNC;
    f->async_delay_ms = 20;
    fx_run(f, client_pipelined);

    char want[1024], one[512];
    want[0] = '\0';
    expect_response(one, sizeof one, "200 OK", "{\"path\":\"/first\",\"query\":\"\",\"len\":3}",
                    "keep-alive");
    strcat(want, one);
    expect_response(one, sizeof one, "200 OK", "{\"path\":\"/second\",\"query\":\"\",\"len\":0}",
                    "keep-alive");
    strcat(want, one);
    expect_response(one, sizeof one, "200 OK", "{\"path\":\"/third\",\"query\":\"\",\"len\":0}",
                    "close");
    strcat(want, one);
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 3);
    assert_string_equal(f->seen[0].body, "abc");
}

static void client_garbage(struct fx *f)
{
    const char *req = "NOT HTTP\r\n\r\n";
    raw_exchange(f, req, strlen(req));
}

static void test_garbage_gets_400_and_close(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_garbage);

    assert_string_equal(f->raw,
                        "HTTP/1.1 400 Bad Request\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 71\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "{\"error\":\"malformed request: invalid HTTP method "
                        "(HPE_INVALID_METHOD)\"}");
    assert_int_equal(f->n_seen, 0);
}

static void client_oversized_length(struct fx *f)
{
    const char *req = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n";
    raw_exchange(f, req, strlen(req));
}

static void test_declared_oversized_body_gets_413(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_oversized_length);

    assert_string_equal(f->raw,
                        "HTTP/1.1 413 Payload Too Large\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 44\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "{\"error\":\"request body exceeds 65536 bytes\"}");
    assert_int_equal(f->n_seen, 0);
}

static void client_oversized_chunked(struct fx *f)
{
    /* Two chunks of 40000 bytes: the second crosses the limit while still being sent. */
    size_t cap = 100 * 1024;
    char *req = malloc(cap);
    char *chunk = pattern(40000);
    int n = snprintf(req, cap,
                     "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "9c40\r\n%s\r\n9c40\r\n%s\r\n0\r\n\r\n",
                     chunk, chunk);
    raw_exchange(f, req, (size_t)n);
    free(chunk);
    free(req);
}

static void test_chunked_body_over_limit_gets_413(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_oversized_chunked);

    char want[512];
    expect_response(want, sizeof want, "413 Payload Too Large",
                    "{\"error\":\"request body exceeds 65536 bytes\"}", "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 0);
}

static void client_huge_headers(struct fx *f)
{
    size_t cap = 32 * 1024;
    char *req = malloc(cap);
    char *big = pattern(HTTP_HEADERS_MAX + 1000);
    int n = snprintf(req, cap, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", big);
    raw_exchange(f, req, (size_t)n);
    free(big);
    free(req);
}

static void test_huge_header_block_gets_431(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_huge_headers);

    char want[512];
    expect_response(want, sizeof want, "431 Request Header Fields Too Large",
                    "{\"error\":\"request header block exceeds 16384 bytes\"}", "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 0);
}

static void client_mixed_case_headers(struct fx *f)
{
    const char *req = "PATCH /m HTTP/1.1\r\nHost: a\r\nauthorization: Basic abc  \r\n"
                      "CONTENT-TYPE: text/plain\r\ncontent-length: 2\r\n"
                      "Connection: close\r\n\r\nhi";
    raw_exchange(f, req, strlen(req));
}

static void test_header_names_are_case_insensitive(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_mixed_case_headers);

    char want[512];
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/m\",\"query\":\"\",\"len\":2}",
                    "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_PATCH);
    assert_true(f->seen[0].has_auth);
    assert_string_equal(f->seen[0].auth, "Basic abc");
    assert_true(f->seen[0].has_ctype);
    assert_string_equal(f->seen[0].ctype, "text/plain");
    assert_string_equal(f->seen[0].body, "hi");
}

static void client_duplicate_authorization(struct fx *f)
{
    const char *req = "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n";
    raw_exchange(f, req, strlen(req));
}

static void test_duplicate_authorization_gets_400(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_duplicate_authorization);

    char want[512];
    expect_response(want, sizeof want, "400 Bad Request",
                    "{\"error\":\"duplicate Authorization header\"}", "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 0);
}

static void client_long_path(struct fx *f)
{
    char req[2048];
    char *path = pattern(HTTP_PATH_MAX);
    int n = snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    raw_exchange(f, req, (size_t)n);
    free(path);
}

static void test_long_path_gets_414(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_long_path);

    char want[512];
    expect_response(want, sizeof want, "414 URI Too Long",
                    "{\"error\":\"request path exceeds 511 bytes\"}", "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 0);
}

static void client_head(struct fx *f)
{
    const char *req = "HEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char addr[64];
    raw_exchange(f, req, strlen(req));
    fx_addr(f, addr, sizeof addr);
    f->rc = http_request_sync(addr, "HEAD", "/h", NULL, NULL, 2000, &f->status, &f->body,
                              &f->body_len, f->errmsg);
}

static void test_head_gets_headers_only(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_head);

    /* Content-Length is that of the body a GET would carry. */
    assert_string_equal(f->raw, "HTTP/1.1 200 OK\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: 32\r\n"
                                "Connection: close\r\n"
                                "\r\n");
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_int_equal(f->body_len, 0);
    assert_string_equal(f->body, "");
    assert_int_equal(f->n_seen, 2);
    assert_int_equal(f->seen[0].method, HTTP_M_HEAD);
}

static void client_timed_get(struct fx *f)
{
    char addr[64];
    long t0 = now_ms();
    fx_addr(f, addr, sizeof addr);
    f->rc = http_request_sync(addr, "GET", "/later", NULL, NULL, 5000, &f->status, &f->body,
                              &f->body_len, f->errmsg);
    f->elapsed_ms = now_ms() - t0;
}

static void test_async_response_after_timer(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ASYNC;
    f->async_delay_ms = 50;
    fx_run(f, client_timed_get);

    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_string_equal(f->body, "{\"path\":\"/later\",\"query\":\"\",\"len\":0}");
    assert_true(f->elapsed_ms >= 45);
    assert_int_equal(f->n_seen, 1);
}

static void test_pending_request_is_not_cut_by_idle_timeout(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_ASYNC;
    f->async_delay_ms = 300;
    f->server.idle_timeout_ms = 100;
    fx_run(f, client_timed_get);

    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_string_equal(f->body, "{\"path\":\"/later\",\"query\":\"\",\"len\":0}");
    assert_true(f->elapsed_ms >= 290);
}

static void client_idle(struct fx *f)
{
    long t0 = now_ms();
    int fd = raw_connect(f->port);
    if (fd < 0)
        return;
    f->raw_len = raw_read_eof(fd, f->raw, sizeof f->raw);
    f->elapsed_ms = now_ms() - t0;
    close(fd);
}

static void test_idle_connection_is_closed(void **state)
{
    struct fx *f = *state;
    f->server.idle_timeout_ms = 100;
    fx_run(f, client_idle);

    assert_int_equal(f->raw_len, 0);
    assert_true(f->elapsed_ms >= 90);
    assert_true(f->elapsed_ms < 3000);
}

static void client_two_conns(struct fx *f)
{
    int fd1 = raw_connect(f->port);
    int fd2 = raw_connect(f->port);
    if (fd1 < 0 || fd2 < 0)
        return;
    /* The second connection is accepted and closed at once: EOF (or a reset), not a timeout. */
    long t0 = now_ms();
    char c;
    ssize_t r = recv(fd2, &c, 1, 0);
    f->elapsed_ms = now_ms() - t0;
    f->rc = (int)r;
    close(fd2);
    const char *req = "GET /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_send(fd1, req, strlen(req));
    f->raw_len = raw_read_eof(fd1, f->raw, sizeof f->raw);
    close(fd1);
}

static void test_connections_over_max_are_closed(void **state)
{
    struct fx *f = *state;
    f->server.max_conns = 1;
    fx_run(f, client_two_conns);

    char want[512];
    assert_true(f->rc <= 0);
    assert_true(f->elapsed_ms < 4000);
    expect_response(want, sizeof want, "200 OK", "{\"path\":\"/first\",\"query\":\"\",\"len\":0}",
                    "close");
    assert_string_equal(f->raw, want);
    assert_int_equal(f->n_seen, 1);
}

static void client_get_raw(struct fx *f)
{
    const char *req = "GET /pending HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_exchange(f, req, strlen(req));
}

static void test_server_close_drops_pending_request(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_CLOSE_SERVER;
    fx_run(f, client_get_raw);

    /* The response was dropped; the conn is freed by the late http_respond (LSan checks). */
    assert_int_equal(f->raw_len, 0);
    assert_int_equal(f->n_seen, 1);
    assert_null(f->pending);
}

static void test_respond_while_closing_sends_nothing(void **state)
{
    struct fx *f = *state;
    f->mode = MODE_CLOSE_THEN_RESPOND;
    fx_run(f, client_get_raw);

    assert_int_equal(f->raw_len, 0);
    assert_int_equal(f->n_seen, 1);
}

/* ---- server start ---- */

static void test_server_start_rejects_bad_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct http_server s = { 0 };
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(uv_loop_init(&loop), 0);

    assert_int_equal(http_server_start(&s, &loop, "127.0.0.1", handler, NULL, errmsg), RPG_EINVAL);
    assert_string_equal(errmsg, "invalid listen address \"127.0.0.1\": expected a.b.c.d:port");
    assert_int_equal(http_server_start(&s, &loop, "256.0.0.1:80", handler, NULL, errmsg),
                     RPG_EINVAL);
    assert_int_equal(http_server_start(&s, &loop, "127.0.0.1:65536", handler, NULL, errmsg),
                     RPG_EINVAL);
    assert_int_equal(http_server_start(&s, &loop, "127.0.0.1:80x", handler, NULL, errmsg),
                     RPG_EINVAL);
    assert_int_equal(http_server_start(&s, &loop, "localhost:80", handler, NULL, errmsg),
                     RPG_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_server_start_reports_address_in_use(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct http_server a = { 0 }, b = { 0 };
    char errmsg[RPG_ERRMSG_SIZE], addr[64], want[RPG_ERRMSG_SIZE];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_server_start(&a, &loop, "127.0.0.1:0", handler, NULL, errmsg), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(&a));

    assert_int_equal(http_server_start(&b, &loop, addr, handler, NULL, errmsg), RPG_EIO);
    snprintf(want, sizeof want, "listen %s: address already in use", addr);
    assert_string_equal(errmsg, want);

    http_server_close(&a, NULL);
    http_server_close(&b, NULL); /* never started: nothing to close */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- client ---- */

static int listen_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_client_reports_connection_refused(void **state)
{
    (void)state;
    int port, status;
    char *body = (char *)"x", addr[64], want[RPG_ERRMSG_SIZE], errmsg[RPG_ERRMSG_SIZE];
    size_t len;
    close(listen_socket(&port)); /* a port nobody listens on any more */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    int rc = http_request_sync(addr, "GET", "/", NULL, NULL, 2000, &status, &body, &len, errmsg);
    assert_int_equal(rc, RPG_ECONN);
    snprintf(want, sizeof want, "127.0.0.1:%d: connection refused", port);
    assert_string_equal(errmsg, want);
    assert_null(body);
}

static void test_client_times_out_on_silent_server(void **state)
{
    (void)state;
    int port, status;
    char *body, addr[64], want[RPG_ERRMSG_SIZE], errmsg[RPG_ERRMSG_SIZE];
    size_t len;
    int fd = listen_socket(&port); /* the kernel completes the handshake; nobody answers */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    long t0 = now_ms();
    int rc = http_request_sync(addr, "GET", "/", NULL, NULL, 300, &status, &body, &len, errmsg);
    long elapsed = now_ms() - t0;
    close(fd);
    assert_int_equal(rc, RPG_ETIMEDOUT);
    snprintf(want, sizeof want, "127.0.0.1:%d: timed out after 300 ms", port);
    assert_string_equal(errmsg, want);
    assert_true(elapsed >= 295);
    assert_true(elapsed < 2000);
}

static void test_client_rejects_bad_address(void **state)
{
    (void)state;
    int status;
    char *body, errmsg[RPG_ERRMSG_SIZE];
    size_t len;
    assert_int_equal(http_request_sync("localhost:8001", "GET", "/", NULL, NULL, 100, &status,
                                       &body, &len, errmsg),
                     RPG_EINVAL);
    assert_string_equal(errmsg, "invalid address \"localhost:8001\": expected a.b.c.d:port");
    assert_int_equal(http_request_sync("http://127.0.0.1", "GET", "/", NULL, NULL, 100, &status,
                                       &body, &len, errmsg),
                     RPG_EINVAL);
    assert_int_equal(http_request_sync("127.0.0.1:0", "GET", "/", NULL, NULL, 100, &status, &body,
                                       &len, errmsg),
                     RPG_EINVAL);
    assert_int_equal(http_request_sync("127.0.0.1:8001", "GET", "/a b", NULL, NULL, 100, &status,
                                       &body, &len, errmsg),
                     RPG_EINVAL);
}

/* A one-shot server in a thread that answers any request with canned bytes and closes. */
struct canned {
    int fd;
    const char *response;
    uv_thread_t thread;
};

static void canned_main(void *arg)
{
    struct canned *c = arg;
    int fd = accept(c->fd, NULL, NULL);
    char buf[4096];
    size_t got = 0;
    if (fd < 0)
        return;
    while (got < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    send(fd, c->response, strlen(c->response), MSG_NOSIGNAL);
    close(fd);
}

static int canned_request(const char *response, int *status, char **body, size_t *len,
                          char *errmsg, int *port)
{
    struct canned c = { .response = response };
    char addr[64];
    c.fd = listen_socket(port);
    assert_int_equal(uv_thread_create(&c.thread, canned_main, &c), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", *port);
    int rc = http_request_sync(addr, "GET", "/", NULL, NULL, 2000, status, body, len, errmsg);
    uv_thread_join(&c.thread);
    close(c.fd);
    return rc;
}

static void test_client_reads_close_delimited_body(void **state)
{
    (void)state;
    int status, port;
    char *body, errmsg[RPG_ERRMSG_SIZE];
    size_t len;
    int rc = canned_request("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Connection: close\r\n\r\nhello world",
                            &status, &body, &len, errmsg, &port);
    assert_int_equal(rc, 0);
    assert_int_equal(status, 200);
    assert_int_equal(len, 11);
    assert_string_equal(body, "hello world");
    free(body);
}

static void test_client_reads_chunked_body(void **state)
{
    (void)state;
    int status, port;
    char *body, errmsg[RPG_ERRMSG_SIZE];
    size_t len;
    int rc = canned_request("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                            &status, &body, &len, errmsg, &port);
    assert_int_equal(rc, 0);
    assert_int_equal(status, 201);
    assert_int_equal(len, 11);
    assert_string_equal(body, "hello world");
    free(body);
}

static void test_client_rejects_malformed_response(void **state)
{
    (void)state;
    int status, port;
    char *body, errmsg[RPG_ERRMSG_SIZE], want[RPG_ERRMSG_SIZE];
    size_t len;
    int rc = canned_request("SPDY/9 200 OK\r\n\r\n", &status, &body, &len, errmsg, &port);
    assert_int_equal(rc, RPG_EPROTO);
    snprintf(want, sizeof want, "127.0.0.1:%d: malformed response: ", port);
    assert_memory_equal(errmsg, want, strlen(want));
    assert_null(body);
}

static void test_client_reports_truncated_response(void **state)
{
    (void)state;
    int status, port;
    char *body, errmsg[RPG_ERRMSG_SIZE], want[RPG_ERRMSG_SIZE];
    size_t len;
    int rc = canned_request("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &status, &body,
                            &len, errmsg, &port);
    assert_int_equal(rc, RPG_ECONN);
    snprintf(want, sizeof want, "127.0.0.1:%d: connection closed before a complete response",
             port);
    assert_string_equal(errmsg, want);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(413), "Payload Too Large");
    assert_string_equal(http_status_text(503), "Service Unavailable");
    assert_string_equal(http_status_text(599), "Unknown");
}

#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_get_splits_path_and_query),
        FX_TEST(test_post_body_delivered_exactly),
        FX_TEST(test_post_body_at_limit_is_accepted),
        FX_TEST(test_keepalive_serves_two_requests_on_one_socket),
        FX_TEST(test_pipelined_requests_are_answered_in_order),
        FX_TEST(test_garbage_gets_400_and_close),
        FX_TEST(test_declared_oversized_body_gets_413),
        FX_TEST(test_chunked_body_over_limit_gets_413),
        FX_TEST(test_huge_header_block_gets_431),
        FX_TEST(test_header_names_are_case_insensitive),
        FX_TEST(test_duplicate_authorization_gets_400),
        FX_TEST(test_long_path_gets_414),
        FX_TEST(test_head_gets_headers_only),
        FX_TEST(test_async_response_after_timer),
        FX_TEST(test_pending_request_is_not_cut_by_idle_timeout),
        FX_TEST(test_idle_connection_is_closed),
        FX_TEST(test_connections_over_max_are_closed),
        FX_TEST(test_server_close_drops_pending_request),
        FX_TEST(test_respond_while_closing_sends_nothing),
        cmocka_unit_test(test_server_start_rejects_bad_address),
        cmocka_unit_test(test_server_start_reports_address_in_use),
        cmocka_unit_test(test_client_reports_connection_refused),
        cmocka_unit_test(test_client_times_out_on_silent_server),
        cmocka_unit_test(test_client_rejects_bad_address),
        cmocka_unit_test(test_client_reads_close_delimited_body),
        cmocka_unit_test(test_client_reads_chunked_body),
        cmocka_unit_test(test_client_rejects_malformed_response),
        cmocka_unit_test(test_client_reports_truncated_response),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
