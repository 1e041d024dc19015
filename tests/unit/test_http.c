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
#include <strings.h>
#include <sys/resource.h>
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
    int n_slow; /* requests for /slow that reached the handler */
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

/* One response as read off the wire. */
struct resp {
    int status;
    char ctype[128];
    long clen;  /* -1: no Content-Length */
    bool close; /* Connection: close */
    char body[4096];
};

/* Parses the response at raw (len bytes; head: no body follows). Returns the bytes it takes, or
 * 0 when incomplete or malformed. */
static size_t parse_response(const char *raw, size_t len, bool head, struct resp *r)
{
    memset(r, 0, sizeof *r);
    r->clen = -1;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(raw + i, "\r\n\r\n", 4) == 0) {
            end = raw + i;
            break;
        }
    }
    if (end == NULL || len < 12 || strncmp(raw, "HTTP/1.1 ", 9) != 0) {
        return 0;
    }
    r->status = atoi(raw + 9);
    const char *line = strstr(raw, "\r\n") + 2;
    while (line < end + 2) {
        const char *eol = strstr(line, "\r\n");
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (*v == ' ') {
                v++;
            }
            int vlen = (int)(eol - v);
            if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
                snprintf(r->ctype, sizeof r->ctype, "%.*s", vlen, v);
            } else if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
                r->clen = atol(v);
            } else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
                r->close = strncasecmp(v, "close", 5) == 0;
            }
        }
        line = eol + 2;
    }
    size_t hlen = (size_t)(end + 4 - raw);
    size_t blen = head || r->clen < 0 ? 0 : (size_t)r->clen;
    if (len - hlen < blen || blen >= sizeof r->body) {
        return 0;
    }
    memcpy(r->body, end + 4, blen);
    r->body[blen] = '\0';
    return hlen + blen;
}

/* Checks the response at raw + *off is a JSON one with this status, body and Connection, and
 * moves *off past it. */
static void assert_response(const char *raw, size_t *off, int status, const char *body, bool close)
{
    struct resp r;
    size_t n = parse_response(raw + *off, strlen(raw + *off), false, &r);
    if (n == 0) {
        fail_msg("no complete response in \"%s\"", raw + *off);
    }
    assert_int_equal(r.status, status);
    assert_string_equal(r.ctype, "application/json");
    assert_int_equal(r.clen, (long)strlen(body));
    assert_string_equal(r.body, body);
    assert_int_equal(r.close, close);
    *off += n;
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
        if (s->has_auth) {
            snprintf(s->auth, sizeof s->auth, "%s", req->authorization);
        }
        s->has_ctype = req->content_type != NULL;
        if (s->has_ctype) {
            snprintf(s->ctype, sizeof s->ctype, "%s", req->content_type);
        }
        snprintf(s->peer, sizeof s->peer, "%s", http_conn_peer(conn));
    }
    f->n_seen++;
    if (strcmp(req->path, "/slow") == 0) {
        f->n_slow++;
    }

    char body[2048];
    echo_body(body, sizeof body, req->path, req->query, req->body_len);
    switch (f->mode) {
    case MODE_ECHO: http_respond(conn, 200, NULL, body, strlen(body)); break;
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
    for (int i = 0; i < 4; i++) {
        free(f->seen[i].body);
    }
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
    struct timeval tv = {.tv_sec = 5};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
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
        if (n <= 0) {
            return;
        }
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
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

static size_t raw_read_eof(int fd, char *buf, size_t cap)
{
    return raw_read_n(fd, buf, cap - 1);
}

/* Reads one complete response (keep-alive: the server does not close). */
static size_t raw_read_response(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    struct resp r;
    buf[0] = '\0';
    while (got < cap - 1 && parse_response(buf, got, false, &r) == 0) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
    }
    return got;
}

/* Sends one request on a fresh connection and reads until the server closes. */
static void raw_exchange(struct fx *f, const char *req, size_t len)
{
    int fd = raw_connect(f->port);
    if (fd < 0) {
        return;
    }
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
    for (size_t i = 0; i < len; i++) {
        s[i] = (char)('a' + i % 26);
    }
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
    int fd = raw_connect(f->port);
    if (fd < 0) {
        return;
    }
    const char *r1 = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *r2 = "GET /two?n=2 HTTP/1.1\r\nHost: a\r\n\r\n";
    raw_send(fd, r1, strlen(r1));
    f->raw_len = raw_read_response(fd, f->raw, sizeof f->raw);
    raw_send(fd, r2, strlen(r2));
    f->raw2_len = raw_read_response(fd, f->raw2, sizeof f->raw2);
    close(fd);
}

static void test_keepalive_serves_two_requests_on_one_socket(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_keepalive);

    size_t off = 0;
    assert_response(f->raw, &off, 200, "{\"path\":\"/one\",\"query\":\"\",\"len\":0}", false);
    assert_int_equal(off, f->raw_len);
    off = 0;
    assert_response(f->raw2, &off, 200, "{\"path\":\"/two\",\"query\":\"n=2\",\"len\":0}", false);
    assert_int_equal(off, f->raw2_len);
    assert_int_equal(f->n_seen, 2);
}

static void client_pipelined(struct fx *f)
{
    int fd = raw_connect(f->port);
    if (fd < 0) {
        return;
    }
    const char *reqs = "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                       "Content-Type: application/json\r\n\r\nabc"
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

    size_t off = 0;
    assert_response(f->raw, &off, 200, "{\"path\":\"/first\",\"query\":\"\",\"len\":3}", false);
    assert_response(f->raw, &off, 200, "{\"path\":\"/second\",\"query\":\"\",\"len\":0}", false);
    assert_response(f->raw, &off, 200, "{\"path\":\"/third\",\"query\":\"\",\"len\":0}", true);
    assert_int_equal(off, f->raw_len);
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

    /* libmicrohttpd answers this one itself (an HTML body). */
    struct resp r;
    assert_int_equal(parse_response(f->raw, f->raw_len, false, &r), f->raw_len);
    assert_int_equal(r.status, 400);
    assert_true(r.close);
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

    size_t off = 0;
    assert_response(f->raw, &off, 413, "{\"error\":\"request body exceeds 65536 bytes\"}", true);
    assert_int_equal(off, f->raw_len);
    assert_int_equal(f->n_seen, 0);
}

static void client_get_then_oversized(struct fx *f)
{
    const char *get = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_exchange(f, get, strlen(get));
    memcpy(f->raw2, f->raw, f->raw_len + 1);
    client_oversized_length(f);
}

/* How many times line (a whole header line) is in the head of a raw response. */
static int count_line(const char *raw, const char *line)
{
    const char *end = strstr(raw, "\r\n\r\n");
    size_t n = strlen(line);
    int count = 0;
    for (const char *p = raw; (p = strstr(p, line)) != NULL && (end == NULL || p < end); p += n) {
        count += p > raw && p[-1] == '\n' && (p[n] == '\r');
    }
    return count;
}

static void test_added_headers_are_on_every_answer(void **state)
{
    struct fx *f = *state;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(http_server_add_header(&f->server, "X-Frame-Options", "SAMEORIGIN", errmsg),
                     0);
    assert_int_equal(http_server_add_header(&f->server, "Server", "raftpg/" RAFTPG_VERSION, errmsg),
                     0);
    /* A later header of the same name replaces the earlier one (https over http). */
    assert_int_equal(http_server_add_header(&f->server, "x-frame-options", "DENY", errmsg), 0);
    assert_int_equal(f->server.n_extra, 2);
    /* What libmicrohttpd would refuse is refused here, naming it. */
    assert_int_equal(http_server_add_header(&f->server, "X-A", "a\r\nSet-Cookie: b", errmsg),
                     RPG_EINVAL);
    assert_string_equal(errmsg, "header \"X-A\" cannot be sent: a control character, ':' or "
                                "white space in its name, or a line break in its value");
    assert_int_equal(http_server_add_header(&f->server, "X A", "a", errmsg), RPG_EINVAL);
    assert_int_equal(f->server.n_extra, 2);
    fx_run(f, client_get_then_oversized);

    /* The handler's answer and a refusal made before the handler both carry them, once. */
    const char *raws[] = {f->raw2, f->raw};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(count_line(raws[i], "X-Frame-Options: DENY"), 1);
        assert_int_equal(count_line(raws[i], "Server: raftpg/" RAFTPG_VERSION), 1);
        assert_null(strstr(raws[i], "SAMEORIGIN"));
    }
    assert_non_null(strstr(f->raw2, "HTTP/1.1 200 "));
    assert_non_null(strstr(f->raw, "HTTP/1.1 413 "));
    assert_int_equal(f->n_seen, 1);
}

static void client_oversized_chunked(struct fx *f)
{
    /* Two chunks of 40000 bytes: the second crosses the limit while still being sent. */
    size_t cap = 100 * 1024;
    char *req = malloc(cap);
    char *chunk = pattern(40000);
    int n = snprintf(req, cap,
                     "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     "Content-Type: application/json\r\n\r\n"
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

    size_t off = 0;
    assert_response(f->raw, &off, 413, "{\"error\":\"request body exceeds 65536 bytes\"}", true);
    assert_int_equal(off, f->raw_len);
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

    size_t off = 0;
    assert_response(f->raw, &off, 431, "{\"error\":\"request header block exceeds 16384 bytes\"}",
                    true);
    assert_int_equal(off, f->raw_len);
    assert_int_equal(f->n_seen, 0);
}

static void client_mixed_case_headers(struct fx *f)
{
    const char *req = "PATCH /m HTTP/1.1\r\nHost: a\r\nauthorization: Basic abc  \r\n"
                      "CONTENT-TYPE: Application/JSON; charset=utf-8\r\ncontent-length: 2\r\n"
                      "Connection: close\r\n\r\nhi";
    raw_exchange(f, req, strlen(req));
}

static void test_header_names_are_case_insensitive(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_mixed_case_headers);

    size_t off = 0;
    assert_response(f->raw, &off, 200, "{\"path\":\"/m\",\"query\":\"\",\"len\":2}", true);
    assert_int_equal(off, f->raw_len);
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_PATCH);
    assert_true(f->seen[0].has_auth);
    assert_string_equal(f->seen[0].auth, "Basic abc");
    assert_true(f->seen[0].has_ctype);
    assert_string_equal(f->seen[0].ctype, "Application/JSON; charset=utf-8");
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

    size_t off = 0;
    assert_response(f->raw, &off, 400, "{\"error\":\"duplicate Authorization header\"}", true);
    assert_int_equal(off, f->raw_len);
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

    size_t off = 0;
    assert_response(f->raw, &off, 414, "{\"error\":\"request path exceeds 511 bytes\"}", true);
    assert_int_equal(off, f->raw_len);
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

    /* Content-Length is that of the body a GET would carry; no body follows. */
    struct resp r;
    assert_int_equal(parse_response(f->raw, f->raw_len, true, &r), f->raw_len);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    assert_int_equal(r.clen, 32);
    assert_true(r.close);
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
    if (fd < 0) {
        return;
    }
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
    if (fd1 < 0) {
        return;
    }
    usleep(100 * 1000); /* the server has accepted fd1 */
    int fd2 = raw_connect(f->port);
    if (fd2 < 0) {
        close(fd1);
        return;
    }
    /* The older connection, still without a request, is closed for the new one: EOF (or a
     * reset) long before the idle time-out. */
    long t0 = now_ms();
    char c;
    ssize_t r = recv(fd1, &c, 1, 0);
    f->elapsed_ms = now_ms() - t0;
    f->rc = (int)r;
    close(fd1);
    const char *req = "GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    raw_send(fd2, req, strlen(req));
    f->raw_len = raw_read_eof(fd2, f->raw, sizeof f->raw);
    close(fd2);
}

static void test_connection_over_max_closes_oldest_waiting(void **state)
{
    struct fx *f = *state;
    f->server.max_conns = 1;
    f->server.idle_timeout_ms = 10000;
    fx_run(f, client_two_conns);

    size_t off = 0;
    assert_true(f->rc <= 0);
    assert_true(f->elapsed_ms < 2000);
    assert_response(f->raw, &off, 200, "{\"path\":\"/second\",\"query\":\"\",\"len\":0}", true);
    assert_int_equal(f->n_seen, 1);
}

static void client_text_bodies(struct fx *f)
{
    /* A body with another type, or none, on each mutating method; then a body-less DELETE,
     * which needs no type. */
    const char *reqs[] = {
        "POST /m HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
        "Connection: close\r\n\r\n{}",
        "PUT /m HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        "PATCH /m HTTP/1.1\r\nHost: a\r\nContent-Type: application/jsonp\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        "DELETE /m HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        /* What a cross-site form can send: no body at all, or an empty one. */
        "POST /restart HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n",
        "DELETE /members/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    };
    size_t n = 0;
    for (size_t i = 0; i < 6; i++) {
        int fd = raw_connect(f->port);
        if (fd < 0) {
            return;
        }
        raw_send(fd, reqs[i], strlen(reqs[i]));
        n += raw_read_eof(fd, f->raw + n, sizeof f->raw - n);
        close(fd);
    }
    f->raw_len = n;
    const char *del = "DELETE /members/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      "Connection: close\r\n\r\n";
    int fd = raw_connect(f->port);
    if (fd < 0) {
        return;
    }
    raw_send(fd, del, strlen(del));
    f->raw2_len = raw_read_eof(fd, f->raw2, sizeof f->raw2);
    close(fd);
}

static void test_mutating_call_must_be_json(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_text_bodies);

    const char *want = "{\"error\":\"a request that changes something must be sent as "
                       "Content-Type: application/json\"}";
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        assert_response(f->raw, &off, 415, want, true);
    }
    assert_int_equal(off, f->raw_len);
    off = 0;
    assert_response(f->raw2, &off, 200, "{\"path\":\"/members/x\",\"query\":\"\",\"len\":0}", true);
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_DELETE);
}

static void client_bodiless_delete(struct fx *f)
{
    char addr[64];
    snprintf(addr, sizeof addr, "http://127.0.0.1:%d", f->port);
    f->rc = http_request_sync(addr, "DELETE", "/switchover", NULL, NULL, 2000, &f->status, &f->body,
                              &f->body_len, f->errmsg);
}

/* The client says JSON on a mutating call even without a body, as the server requires. */
static void test_client_bodiless_delete_says_json(void **state)
{
    struct fx *f = *state;
    fx_run(f, client_bodiless_delete);

    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    assert_int_equal(f->n_seen, 1);
    assert_int_equal(f->seen[0].method, HTTP_M_DELETE);
    assert_true(f->seen[0].has_ctype);
    assert_string_equal(f->seen[0].ctype, "application/json");
    assert_string_equal(f->seen[0].body, "");
}

/* Slowloris: SLOW_N connections, each sending a request one byte every SLOW_STEP_MS and
 * opening again when closed, for SLOW_RUN_MS; meanwhile a health check every 100 ms must be
 * answered quickly, and the server must close each slow connection at its deadline. */
#define SLOW_N 1500
#define SLOW_STEP_MS 500
#define SLOW_RUN_MS 6000
#define SLOW_IDLE_MS 1500
#define PROBE_MAX_MS 1000

static void client_slowloris(struct fx *f)
{
    static int fds[SLOW_N];
    static long opened[SLOW_N];
    static const char req[] = "GET /slow HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    char addr[64];
    long t0 = now_ms(), next_step = t0, next_probe = t0 + 500;
    int probes = 0, probe_fail = 0, closed = 0, reopen_fail = 0;
    long probe_worst = 0, lived_longest = 0;
    size_t sent[SLOW_N];

    fx_addr(f, addr, sizeof addr);
    for (int i = 0; i < SLOW_N; i++) {
        fds[i] = raw_connect(f->port);
        opened[i] = now_ms();
        sent[i] = 0;
    }
    while (now_ms() - t0 < SLOW_RUN_MS) {
        long now = now_ms();
        if (now >= next_step) {
            next_step = now + SLOW_STEP_MS;
            for (int i = 0; i < SLOW_N; i++) {
                if (fds[i] < 0) {
                    fds[i] = raw_connect(f->port);
                    opened[i] = now_ms();
                    sent[i] = 0;
                    reopen_fail += fds[i] < 0;
                    continue;
                }
                char c = sent[i] < sizeof req - 1 ? req[sent[i]] : 'x';
                ssize_t n = send(fds[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                char buf[64];
                ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
                if (n != 1 || r >= 0) {
                    /* Closed by the server (EOF or reset). */
                    long lived = now_ms() - opened[i];
                    if (lived > lived_longest) {
                        lived_longest = lived;
                    }
                    closed++;
                    close(fds[i]);
                    fds[i] = -1;
                } else {
                    sent[i]++;
                }
            }
        }
        if (now >= next_probe) {
            int status = 0;
            char *body = NULL, errmsg[RPG_ERRMSG_SIZE];
            size_t len;
            long p0 = now_ms();
            int rc = http_request_sync(addr, "GET", "/primary", NULL, NULL, PROBE_MAX_MS, &status,
                                       &body, &len, errmsg);
            long took = now_ms() - p0;
            free(body);
            probes++;
            if (rc != 0 || status != 200) {
                probe_fail++;
            }
            if (took > probe_worst) {
                probe_worst = took;
            }
            next_probe = p0 + 100;
        }
        usleep(10 * 1000);
    }
    for (int i = 0; i < SLOW_N; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    f->status = probes;
    f->rc = probe_fail;
    f->elapsed_ms = probe_worst;
    f->raw_len = (size_t)closed;
    f->raw2_len = (size_t)lived_longest;
    f->body_len = (size_t)reopen_fail;
    printf("slowloris: %d slow connections, %d closed by the server (longest lived %ld ms), "
           "%d health checks, %d failed, slowest %ld ms\n",
           SLOW_N, closed, lived_longest, probes, probe_fail, probe_worst);
}

static void test_slow_clients_do_not_starve_health_checks(void **state)
{
    struct fx *f = *state;
    struct rlimit rl;
    /* Descriptors for both ends of every connection, in this one process. */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8192) {
        rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 8192 ? rl.rlim_max : 8192;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    f->server.idle_timeout_ms = SLOW_IDLE_MS;
    fx_run(f, client_slowloris);

    assert_true(f->status >= 30); /* health checks made */
    assert_int_equal(f->rc, 0);   /* none failed */
    assert_true(f->elapsed_ms < PROBE_MAX_MS);
    assert_true(f->raw_len >= SLOW_N); /* every slow connection was cut at least once */
    /* Cut at the deadline (or earlier, when evicted), seen at the next step. */
    assert_true(f->raw2_len <= SLOW_IDLE_MS + 2 * SLOW_STEP_MS + 500);
    assert_int_equal(f->body_len, 0);
    assert_int_equal(f->n_seen, f->status); /* the handler saw the checks ... */
    assert_int_equal(f->n_slow, 0);         /* ... and never a slow request */
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
    struct http_server s = {0};
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
    struct http_server a = {0}, b = {0};
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
    struct sockaddr_in sa = {.sin_family = AF_INET};
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
    if (fd < 0) {
        return;
    }
    while (got < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL) {
            break;
        }
    }
    send(fd, c->response, strlen(c->response), MSG_NOSIGNAL);
    close(fd);
}

static int canned_request(const char *response, int *status, char **body, size_t *len, char *errmsg,
                          int *port)
{
    struct canned c = {.response = response};
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
    snprintf(want, sizeof want, "127.0.0.1:%d: connection closed before a complete response", port);
    assert_string_equal(errmsg, want);
}

/* ---- client on the loop ---- */

struct answer {
    int rc, status;
    char body[256];
    char errmsg[RPG_ERRMSG_SIZE];
    long took_ms;
};

struct loop_fx {
    struct fx *f;
    struct http_client client;
    struct answer answers[3];
    long t0;
    int done;
    int client_closed;
};

static void loop_client_closed(struct http_client *c)
{
    struct loop_fx *l = (struct loop_fx *)((char *)c - offsetof(struct loop_fx, client));
    l->client_closed++;
}

static void on_loop_answer(void *data, int rc, int status, const char *body, size_t len,
                           const char *errmsg)
{
    struct answer *a = data;
    a->rc = rc;
    a->status = status;
    snprintf(a->body, sizeof a->body, "%.*s", (int)len, body != NULL ? body : "");
    snprintf(a->errmsg, sizeof a->errmsg, "%s", errmsg);
    a->took_ms = now_ms();
}

static struct loop_fx *g_loop_fx;

static void on_loop_answer_counted(void *data, int rc, int status, const char *body, size_t len,
                                   const char *errmsg)
{
    struct loop_fx *l = g_loop_fx;
    on_loop_answer(data, rc, status, body, len, errmsg);
    ((struct answer *)data)->took_ms -= l->t0;
    if (++l->done == 3) {
        http_client_close(&l->client, loop_client_closed);
        http_server_close(&l->f->server, on_server_closed);
        uv_close((uv_handle_t *)&l->f->timer, NULL);
    }
}

static void test_loop_client_answers_without_blocking(void **state)
{
    struct fx *f = *state;
    struct loop_fx l = {.f = f};
    char addr[64], refused[64], silent[64], errmsg[RPG_ERRMSG_SIZE];
    int port_refused, port_silent;
    close(listen_socket(&port_refused));
    int silent_fd = listen_socket(&port_silent); /* handshake by the kernel, no answer */
    g_loop_fx = &l;
    fx_addr(f, addr, sizeof addr);
    snprintf(refused, sizeof refused, "127.0.0.1:%d", port_refused);
    snprintf(silent, sizeof silent, "127.0.0.1:%d", port_silent);

    /* The server answering on the same loop proves the client never blocks it. */
    assert_int_equal(http_client_init(&l.client, &f->loop, errmsg), 0);
    l.t0 = now_ms();
    assert_int_equal(http_client_request(&l.client, addr, "GET", "/s?x=1", 2000,
                                         on_loop_answer_counted, &l.answers[0], errmsg),
                     0);
    assert_int_equal(http_client_request(&l.client, refused, "GET", "/", 2000,
                                         on_loop_answer_counted, &l.answers[1], errmsg),
                     0);
    assert_int_equal(http_client_request(&l.client, silent, "GET", "/", 300, on_loop_answer_counted,
                                         &l.answers[2], errmsg),
                     0);
    assert_int_equal(http_client_request(&l.client, "localhost:1", "GET", "/", 300,
                                         on_loop_answer_counted, &l.answers[2], errmsg),
                     RPG_EINVAL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    close(silent_fd);
    assert_int_equal(uv_loop_close(&f->loop), 0);

    char want[RPG_ERRMSG_SIZE];
    assert_int_equal(l.done, 3);
    assert_int_equal(l.client_closed, 1);
    assert_int_equal(f->server_closed, 1);
    assert_int_equal(l.answers[0].rc, 0);
    assert_int_equal(l.answers[0].status, 200);
    assert_string_equal(l.answers[0].body, "{\"path\":\"/s\",\"query\":\"x=1\",\"len\":0}");
    assert_int_equal(l.answers[1].rc, RPG_ECONN);
    snprintf(want, sizeof want, "127.0.0.1:%d: connection refused", port_refused);
    assert_string_equal(l.answers[1].errmsg, want);
    assert_int_equal(l.answers[2].rc, RPG_ETIMEDOUT);
    snprintf(want, sizeof want, "127.0.0.1:%d: timed out after 300 ms", port_silent);
    assert_string_equal(l.answers[2].errmsg, want);
    assert_true(l.answers[2].took_ms >= 295);
    assert_true(l.answers[2].took_ms < 2000);
}

static void test_loop_client_close_drops_requests(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct loop_fx l = {0};
    char errmsg[RPG_ERRMSG_SIZE], silent[64];
    int port;
    int fd = listen_socket(&port);
    snprintf(silent, sizeof silent, "127.0.0.1:%d", port);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_client_init(&l.client, &loop, errmsg), 0);
    assert_int_equal(http_client_request(&l.client, silent, "GET", "/", 5000,
                                         on_loop_answer_counted, &l.answers[0], errmsg),
                     0);
    uv_run(&loop, UV_RUN_NOWAIT); /* connected, waiting */
    http_client_close(&l.client, loop_client_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(fd);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(l.client_closed, 1);
    assert_int_equal(l.done, 0); /* dropped: no callback */
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
        FX_TEST(test_added_headers_are_on_every_answer),
        FX_TEST(test_chunked_body_over_limit_gets_413),
        FX_TEST(test_huge_header_block_gets_431),
        FX_TEST(test_header_names_are_case_insensitive),
        FX_TEST(test_duplicate_authorization_gets_400),
        FX_TEST(test_long_path_gets_414),
        FX_TEST(test_head_gets_headers_only),
        FX_TEST(test_async_response_after_timer),
        FX_TEST(test_pending_request_is_not_cut_by_idle_timeout),
        FX_TEST(test_idle_connection_is_closed),
        FX_TEST(test_connection_over_max_closes_oldest_waiting),
        FX_TEST(test_mutating_call_must_be_json),
        FX_TEST(test_client_bodiless_delete_says_json),
        FX_TEST(test_slow_clients_do_not_starve_health_checks),
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
        FX_TEST(test_loop_client_answers_without_blocking),
        cmocka_unit_test(test_loop_client_close_drops_requests),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
