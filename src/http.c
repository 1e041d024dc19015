/* HTTP/1.1 server on the libuv loop and a blocking client for the CLI, both on http-parser. */
#include "raftpg/http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* http_parser.h declares its own enum http_method, which collides with ours; rename its tag while
 * including it. Only the tag changes, so the ABI of http_method_str() is unaffected. */
#define http_method http_parser_method
#include <http_parser.h>
#undef http_method

#define READ_BUF_SIZE 8192
#define URL_MAX (2 * HTTP_PATH_MAX)   /* path and query, each below HTTP_PATH_MAX */
#define FIELD_MAX 32                  /* longest header name we need to recognise, plus slack */
#define AUTH_MAX 2048
#define CTYPE_MAX 256
#define LINGER_MAX_MS 2000            /* drain time after a closing response, see conn_linger */
#define DEFAULT_MAX_CONNS 64
#define DEFAULT_IDLE_MS 10000
#define CLIENT_BODY_MAX (16 * 1024 * 1024)

/* A connection moves READING -> HANDLING -> WRITING -> READING (keep-alive) or -> LINGERING
 * (final response sent), and to CLOSING from any state. */
enum conn_state {
    CONN_READING,   /* waiting for a request, which must be complete within idle_timeout_ms of
                     * the accept or the previous response (partial input does not extend it) */
    CONN_HANDLING,  /* request handed to the handler; reading stopped so responses stay ordered */
    CONN_WRITING,   /* response being written; reading stopped */
    CONN_LINGERING, /* final response written, write side shut; input drained until EOF */
    CONN_CLOSING,   /* uv_close issued on both handles */
};

enum header_id { HEADER_OTHER, HEADER_AUTHORIZATION, HEADER_CONTENT_TYPE };

/* Lifetime rule: a conn is freed when both (a) its two handles have been closed and (b) no
 * response is owed, i.e. the handler was not called or has called http_respond. The handler may
 * hold the pointer after the server closed the socket, so closing alone never frees a conn with
 * response_owed set; http_respond then frees it. Once the handles are closed the conn is
 * detached from the server (server = NULL), so it never touches a server that may be gone. */
struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;        /* idle timeout, then linger timeout */
    uv_write_t write_req;    /* one response at a time */
    uv_shutdown_t shutdown_req;
    struct http_server *server; /* NULL once detached */
    struct http_conn *prev, *next;
    enum conn_state state;
    int open_handles;
    bool response_owed;
    bool keep_alive; /* of the current request */
    bool head;       /* current request is HEAD: headers only in the response */
    char peer[INET6_ADDRSTRLEN];

    http_parser parser;
    /* Set by a parser callback that rejects the request; the callback then returns non-zero. */
    int reject_status;
    char reject_msg[128];

    /* The request being parsed. */
    char url[URL_MAX];
    size_t url_len;
    size_t header_bytes;
    bool headers_done; /* later header callbacks are chunked trailers, not captured */
    bool in_value;
    char field[FIELD_MAX];
    size_t field_len;
    enum header_id cur_header;
    char auth[AUTH_MAX];
    size_t auth_len;
    bool has_auth;
    char ctype[CTYPE_MAX];
    size_t ctype_len;
    bool has_ctype;
    char *body;
    size_t body_len, body_cap;
    struct http_request req;

    char rbuf[READ_BUF_SIZE];
    /* Bytes read past a complete request, parsed once its response is written. Reading is
     * stopped meanwhile, so this never holds more than one read. */
    char pend[READ_BUF_SIZE];
    size_t pend_len;
    char *wbuf;
};

static void conn_close(struct http_conn *c);
static void conn_feed(struct http_conn *c, const char *data, size_t len);

/* ---- helpers shared by server and client ---- */

/* Parses "a.b.c.d:port" into sa. Returns 0 or -1. */
static int parse_ipv4_port(const char *addr, struct sockaddr_in *sa, bool allow_port0)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0')
        return -1;
    size_t hlen = (size_t)(colon - addr);
    char host[INET_ADDRSTRLEN];
    if (hlen >= sizeof host)
        return -1;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    unsigned long port = 0;
    const char *p = colon + 1;
    for (int n = 0; *p != '\0'; p++, n++) {
        if (*p < '0' || *p > '9' || n >= 5)
            return -1;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535 || (port == 0 && !allow_port0))
        return -1;
    if (uv_ip4_addr(host, (int)port, sa) != 0)
        return -1;
    return 0;
}

/* Copies s into dst as the contents of a JSON string, escaped; truncates to fit cap. */
static size_t json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s != '\0' && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", ch);
        } else {
            dst[n++] = (char)ch;
        }
    }
    dst[n] = '\0';
    return n;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 425: return "Too Early";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

/* ---- server: connection teardown ---- */

static void server_maybe_done(struct http_server *s)
{
    if (!s->closing || s->listening || s->n_conns > 0 || s->n_rejecting > 0)
        return;
    void (*cb)(struct http_server *) = s->close_cb;
    s->close_cb = NULL;
    /* s may be freed by cb: nothing touches it afterwards. */
    if (cb != NULL)
        cb(s);
}

static void conn_free(struct http_conn *c)
{
    assert(c->open_handles == 0 && !c->response_owed && c->server == NULL);
    free(c->body);
    free(c->wbuf);
    free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct http_server *s = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->server = NULL;
    s->n_conns--;
    if (!c->response_owed)
        conn_free(c);
    server_maybe_done(s);
}

/* Closes both handles at once; pending write and shutdown callbacks then fire with
 * UV_ECANCELED before the close callbacks. Idempotent. */
static void conn_close(struct http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_conn_timer(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_arm_timer(struct http_conn *c, uint64_t ms)
{
    if (ms > 0)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* ---- server: reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error. A request cut short has no one to answer to. */
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGERING)
        return; /* drained and dropped */
    assert(c->state == CONN_READING);
    conn_feed(c, c->rbuf, (size_t)nread);
}

static void conn_start_reading(struct http_conn *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0 && rc != UV_EALREADY)
        conn_close(c);
}

/* ---- server: writing ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* After a final response: shut the write side and keep reading (and discarding) until the peer
 * closes or a short timer fires. Closing at once with unread input would make the kernel send a
 * reset, which can destroy the response before the client reads it (e.g. a 413 sent before the
 * client finished sending its body). */
static void conn_linger(struct http_conn *c)
{
    c->state = CONN_LINGERING;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uint64_t ms = LINGER_MAX_MS;
    if (c->server != NULL && c->server->idle_timeout_ms > 0 && c->server->idle_timeout_ms < ms)
        ms = c->server->idle_timeout_ms;
    conn_arm_timer(c, ms);
    conn_start_reading(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    free(c->wbuf);
    c->wbuf = NULL;
    if (status < 0 || c->state == CONN_CLOSING) {
        conn_close(c);
        return;
    }
    assert(c->state == CONN_WRITING);
    if (!c->keep_alive || c->server->closing) {
        conn_linger(c);
        return;
    }
    /* Ready for the next request: the idle clock restarts now. */
    c->state = CONN_READING;
    conn_arm_timer(c, c->server->idle_timeout_ms);
    if (c->pend_len > 0)
        conn_feed(c, c->pend, c->pend_len);
    if (c->state == CONN_READING)
        conn_start_reading(c);
}

static void conn_send(struct http_conn *c, int status, const char *content_type, const char *body,
                      size_t body_len)
{
    bool keep = c->keep_alive && !c->server->closing;
    /* RFC 9110 §8.6: no Content-Length (and no body) for 1xx and 204; 304 has no body. */
    bool no_length = (status >= 100 && status < 200) || status == 204;
    bool no_body = no_length || status == 304 || c->head;
    if (content_type == NULL)
        content_type = "application/json";
    if (body == NULL)
        body_len = 0;

    char head[512];
    int n;
    if (no_length)
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: %s\r\n\r\n", status,
                     http_status_text(status), content_type, keep ? "keep-alive" : "close");
    else
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     status, http_status_text(status), content_type, body_len,
                     keep ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof head) {
        /* Only an absurd content type gets here; answer something well-formed instead. */
        content_type = "application/json";
        body = "{\"error\":\"invalid response content type\"}";
        body_len = strlen(body);
        status = 500;
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 500 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     http_status_text(500), content_type, body_len, keep ? "keep-alive" : "close");
    }
    size_t total = (size_t)n + (no_body ? 0 : body_len);
    c->wbuf = malloc(total);
    if (c->wbuf == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->wbuf, head, (size_t)n);
    if (!no_body && body_len > 0)
        memcpy(c->wbuf + n, body, body_len);

    c->keep_alive = keep;
    c->state = CONN_WRITING;
    c->write_req.data = c;
    uv_buf_t buf = uv_buf_init(c->wbuf, (unsigned)total);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
        free(c->wbuf);
        c->wbuf = NULL;
        conn_close(c);
    }
}

/* Answers a request we refuse to hand to the handler, then closes the connection. */
static void conn_reject(struct http_conn *c, int status, const char *msg)
{
    char body[sizeof c->reject_msg * 2 + 16];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"error\":\"");
    n += json_escape(body + n, sizeof body - n - 3, msg);
    memcpy(body + n, "\"}", 3);
    n += 2;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->keep_alive = false;
    conn_send(c, status, NULL, body, n);
}

void http_respond(struct http_conn *conn, int status, const char *content_type, const char *body,
                  size_t body_len)
{
    if (conn == NULL || !conn->response_owed)
        return;
    conn->response_owed = false;
    if (conn->state == CONN_CLOSING) {
        /* The socket is gone; settle the slot, and free if the handles are closed too. */
        if (conn->open_handles == 0)
            conn_free(conn);
        return;
    }
    assert(conn->state == CONN_HANDLING);
    conn_send(conn, status, content_type, body, body_len);
}

const char *http_conn_peer(const struct http_conn *conn)
{
    return conn->peer;
}

/* ---- server: parsing ---- */

static int reject(struct http_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(struct http_conn *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reject_msg, sizeof c->reject_msg, fmt, ap);
    va_end(ap);
    c->reject_status = status;
    return -1;
}

static int count_header_bytes(struct http_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > HTTP_HEADERS_MAX)
        return reject(c, 431, "request header block exceeds %d bytes", HTTP_HEADERS_MAX);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    c->url_len = 0;
    c->header_bytes = 0;
    c->headers_done = false;
    c->in_value = false;
    c->field_len = 0;
    c->cur_header = HEADER_OTHER;
    c->auth_len = c->ctype_len = 0;
    c->has_auth = c->has_ctype = false;
    c->body_len = 0;
    c->head = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0)
        return -1;
    if (c->url_len + len >= sizeof c->url)
        return reject(c, 414, "request URI exceeds %zu bytes", sizeof c->url - 1);
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0)
        return -1;
    if (c->in_value) {
        c->in_value = false;
        c->field_len = 0;
    }
    /* A name too long for the buffer cannot be one we capture; keep its length growing so it
     * does not match either. */
    for (size_t i = 0; i < len; i++, c->field_len++)
        if (c->field_len < sizeof c->field)
            c->field[c->field_len] = at[i];
    return 0;
}

static bool field_is(const struct http_conn *c, const char *name)
{
    size_t n = strlen(name);
    return c->field_len == n && strncasecmp(c->field, name, n) == 0;
}

static int append_value(struct http_conn *c, char *dst, size_t *dlen, size_t cap, const char *name,
                        const char *at, size_t len)
{
    if (*dlen + len >= cap)
        return reject(c, 431, "%s header exceeds %zu bytes", name, cap - 1);
    memcpy(dst + *dlen, at, len);
    *dlen += len;
    dst[*dlen] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0)
        return -1;
    if (!c->in_value) {
        /* First piece of this value: the name is complete. */
        c->in_value = true;
        c->cur_header = HEADER_OTHER;
        if (c->headers_done) {
            /* chunked trailer: not captured */
        } else if (field_is(c, "authorization")) {
            if (c->has_auth)
                return reject(c, 400, "duplicate Authorization header");
            c->has_auth = true;
            c->auth[0] = '\0';
            c->cur_header = HEADER_AUTHORIZATION;
        } else if (field_is(c, "content-type")) {
            if (c->has_ctype)
                return reject(c, 400, "duplicate Content-Type header");
            c->has_ctype = true;
            c->ctype[0] = '\0';
            c->cur_header = HEADER_CONTENT_TYPE;
        }
    }
    switch (c->cur_header) {
    case HEADER_AUTHORIZATION:
        return append_value(c, c->auth, &c->auth_len, sizeof c->auth, "Authorization", at, len);
    case HEADER_CONTENT_TYPE:
        return append_value(c, c->ctype, &c->ctype_len, sizeof c->ctype, "Content-Type", at, len);
    case HEADER_OTHER:
        break;
    }
    return 0;
}

static enum http_method method_from_parser(unsigned m)
{
    switch (m) {
    case HTTP_GET: return HTTP_M_GET;
    case HTTP_HEAD: return HTTP_M_HEAD;
    case HTTP_POST: return HTTP_M_POST;
    case HTTP_PUT: return HTTP_M_PUT;
    case HTTP_PATCH: return HTTP_M_PATCH;
    case HTTP_DELETE: return HTTP_M_DELETE;
    case HTTP_OPTIONS: return HTTP_M_OPTIONS;
    }
    return HTTP_M_OTHER;
}

static void rtrim(char *s, size_t *len)
{
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        s[--*len] = '\0';
}

/* Splits the URL into path and query, checking their sizes before any body is read. */
static int split_url(struct http_conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, c->parser.method == HTTP_CONNECT, &u) != 0)
        return reject(c, 400, "invalid request URI");
    struct http_request *r = &c->req;
    if (u.field_set & (1u << UF_PATH)) {
        size_t len = u.field_data[UF_PATH].len;
        if (len >= sizeof r->path)
            return reject(c, 414, "request path exceeds %zu bytes", sizeof r->path - 1);
        memcpy(r->path, c->url + u.field_data[UF_PATH].off, len);
        r->path[len] = '\0';
    } else {
        strcpy(r->path, "/");
    }
    r->query[0] = '\0';
    if (u.field_set & (1u << UF_QUERY)) {
        size_t len = u.field_data[UF_QUERY].len;
        if (len >= sizeof r->query)
            return reject(c, 414, "request query exceeds %zu bytes", sizeof r->query - 1);
        memcpy(r->query, c->url + u.field_data[UF_QUERY].off, len);
        r->query[len] = '\0';
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    c->headers_done = true;
    c->head = p->method == HTTP_HEAD;
    c->keep_alive = http_should_keep_alive(p) != 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_BODY_MAX)
        return reject(c, 413, "request body exceeds %d bytes", HTTP_BODY_MAX);
    if (split_url(c) != 0)
        return -1;
    if (c->has_auth)
        rtrim(c->auth, &c->auth_len);
    if (c->has_ctype)
        rtrim(c->ctype, &c->ctype_len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->body_len + len > HTTP_BODY_MAX)
        return reject(c, 413, "request body exceeds %d bytes", HTTP_BODY_MAX);
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap > 0 ? c->body_cap : 1024;
        while (cap < c->body_len + len + 1)
            cap *= 2;
        if (cap > HTTP_BODY_MAX + 1)
            cap = HTTP_BODY_MAX + 1;
        char *nb = realloc(c->body, cap);
        if (nb == NULL)
            return reject(c, 503, "out of memory");
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

/* Pausing makes http_parser_execute return right after this request, leaving any pipelined
 * bytes for later, so the handler runs outside the parser and requests are served in order. */
static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings server_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_dispatch(struct http_conn *c)
{
    struct http_request *r = &c->req;
    r->method = method_from_parser(c->parser.method);
    r->body = c->body != NULL ? c->body : "";
    if (c->body != NULL)
        c->body[c->body_len] = '\0';
    r->body_len = c->body_len;
    r->authorization = c->has_auth ? c->auth : NULL;
    r->content_type = c->has_ctype ? c->ctype : NULL;

    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->state = CONN_HANDLING;
    c->response_owed = true;
    /* The handler may respond or close the server from here; neither frees c synchronously,
     * since handles only finish closing in a later loop iteration. */
    c->server->handler(c, r, c->server->data);
}

/* Parses data (from rbuf or pend). Dispatches at most one complete request and keeps the rest in
 * pend, or answers a malformed request with an error. */
static void conn_feed(struct http_conn *c, const char *data, size_t len)
{
    http_parser *p = &c->parser;
    size_t n = http_parser_execute(p, &server_settings, data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(p);

    if (c->reject_status != 0) {
        int status = c->reject_status;
        c->reject_status = 0;
        c->pend_len = 0;
        conn_reject(c, status, c->reject_msg);
        return;
    }
    if (err == HPE_PAUSED) {
        http_parser_pause(p, 0);
        if (p->upgrade) {
            /* What follows is another protocol; answer this request and close. */
            c->keep_alive = false;
            c->pend_len = 0;
        } else {
            assert(n <= len && len - n <= sizeof c->pend);
            memmove(c->pend, data + n, len - n);
            c->pend_len = len - n;
        }
        conn_dispatch(c);
        return;
    }
    if (err != HPE_OK) {
        char msg[sizeof c->reject_msg];
        snprintf(msg, sizeof msg, "malformed request: %s (%s)", http_errno_description(err),
                 http_errno_name(err));
        c->pend_len = 0;
        conn_reject(c, err == HPE_HEADER_OVERFLOW ? 431 : 400, msg);
        return;
    }
    /* All consumed, request incomplete: wait for more input. */
    c->pend_len = 0;
}

/* ---- server: listener ---- */

static void on_reject_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    free(h);
    s->n_rejecting--;
    server_maybe_done(s);
}

static void server_reject(struct http_server *s)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL || uv_tcp_init(s->loop, t) != 0) {
        free(t);
        return;
    }
    t->data = s;
    s->n_rejecting++;
    uv_accept((uv_stream_t *)&s->tcp, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_closed);
}

static void conn_set_peer(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0 || s->closing)
        return;
    if (s->n_conns >= s->max_conns) {
        server_reject(s);
        return;
    }
    /* A connection libuv offers must be accepted, or the listener stops until it is. */
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        server_reject(s);
        return;
    }
    uv_timer_init(s->loop, &c->timer); /* cannot fail */
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->server = s;
    c->state = CONN_READING;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;

    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    conn_set_peer(c);
    conn_arm_timer(c, s->idle_timeout_ms);
    conn_start_reading(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->listening = 0;
    server_maybe_done(s);
}

int http_server_start(struct http_server *s, uv_loop_t *loop, const char *addr,
                      http_handler_cb handler, void *data, char *errmsg)
{
    struct sockaddr_in sa;
    int fd = -1, rc;

    if (parse_ipv4_port(addr, &sa, true) != 0)
        return rpg_err(errmsg, RPG_EINVAL, "invalid listen address \"%s\": expected a.b.c.d:port",
                       addr);

    s->loop = loop;
    s->handler = handler;
    s->data = data;
    s->n_conns = 0;
    s->closing = 0;
    s->close_cb = NULL;
    s->conns = NULL;
    s->listening = 0;
    s->n_rejecting = 0;
    if (s->max_conns == 0)
        s->max_conns = DEFAULT_MAX_CONNS;
    if (s->idle_timeout_ms == 0)
        s->idle_timeout_ms = DEFAULT_IDLE_MS;

    /* The socket is bound and listening before any handle exists, so a failure leaves nothing
     * for the caller to close. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto sys_err;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
        goto sys_err;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto sys_err;
    if (listen(fd, SOMAXCONN) != 0)
        goto sys_err;

    rc = uv_tcp_init(loop, &s->tcp);
    if (rc != 0) {
        close(fd);
        return rpg_err(errmsg, RPG_EIO, "listen %s: %s", addr, uv_strerror(rc));
    }
    s->tcp.data = s;
    s->listening = 1;
    rc = uv_tcp_open(&s->tcp, fd);
    if (rc != 0)
        close(fd); /* not owned by the handle yet */
    else
        rc = uv_listen((uv_stream_t *)&s->tcp, SOMAXCONN, on_connection);
    if (rc != 0) {
        /* Not expected once listen(2) succeeded. The handle must close through the loop; with
         * close_cb unset nothing else happens, but s must outlive that close. */
        s->closing = 1;
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
        return rpg_err(errmsg, RPG_EIO, "listen %s: %s", addr, uv_strerror(rc));
    }
    return 0;

sys_err:
    rc = uv_translate_sys_error(errno);
    if (fd >= 0)
        close(fd);
    return rpg_err(errmsg, RPG_EIO, "listen %s: %s", addr, uv_strerror(rc));
}

int http_server_port(const struct http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    if (rc != 0)
        return rc;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return UV_EINVAL;
}

void http_server_close(struct http_server *s, void (*cb)(struct http_server *s))
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    if (s->listening)
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    for (struct http_conn *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
    server_maybe_done(s);
}

/* ---- blocking client ---- */

struct client {
    const char *name; /* "a.b.c.d:port", for messages */
    bool head;
    bool done;
    bool too_large;
    int status;
    char *body;
    size_t body_len, body_cap;
};

static rpg_msec now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rpg_msec)ts.tv_sec * 1000 + (rpg_msec)ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. Returns 1 when ready, 0 on timeout, -errno. */
static int wait_fd(int fd, short events, rpg_msec deadline)
{
    for (;;) {
        rpg_msec now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pfd = { .fd = fd, .events = events };
        rpg_msec left = deadline - now;
        int rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int client_on_headers_complete(http_parser *p)
{
    struct client *cl = p->data;
    /* A response to HEAD has no body whatever its Content-Length says. */
    return cl->head ? 1 : 0;
}

static int client_on_body(http_parser *p, const char *at, size_t len)
{
    struct client *cl = p->data;
    if (cl->body_len + len > CLIENT_BODY_MAX) {
        cl->too_large = true;
        return -1;
    }
    if (cl->body_len + len + 1 > cl->body_cap) {
        size_t cap = cl->body_cap > 0 ? cl->body_cap : 4096;
        while (cap < cl->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(cl->body, cap);
        if (nb == NULL) {
            cl->too_large = true;
            return -1;
        }
        cl->body = nb;
        cl->body_cap = cap;
    }
    memcpy(cl->body + cl->body_len, at, len);
    cl->body_len += len;
    return 0;
}

static int client_on_message_complete(http_parser *p)
{
    struct client *cl = p->data;
    /* Interim 1xx responses precede the real one. */
    if (p->status_code >= 100 && p->status_code < 200) {
        cl->body_len = 0;
        return 0;
    }
    cl->status = (int)p->status_code;
    cl->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings client_settings = {
    .on_headers_complete = client_on_headers_complete,
    .on_body = client_on_body,
    .on_message_complete = client_on_message_complete,
};

static bool has_ctl_or_space(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return true;
    return false;
}

/* Builds the request into a malloc'ed buffer; returns its length or 0 on out of memory. */
static size_t client_format(char **out, const char *name, const char *method, const char *path,
                            const char *body, const char *authorization)
{
    size_t body_len = body != NULL ? strlen(body) : 0;
    size_t cap = strlen(method) + strlen(path) + strlen(name) +
                 (authorization != NULL ? strlen(authorization) : 0) + body_len + 256;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 0;
    int n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: raftpg\r\n"
                     "Accept: application/json\r\nConnection: close\r\n",
                     method, path, name);
    if (authorization != NULL)
        n += snprintf(buf + n, cap - (size_t)n, "Authorization: %s\r\n", authorization);
    if (body != NULL)
        n += snprintf(buf + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    if (body_len > 0)
        memcpy(buf + n, body, body_len);
    *out = buf;
    return (size_t)n + body_len;
}

int http_request_sync(const char *addr, const char *method, const char *path, const char *body,
                      const char *authorization, unsigned timeout_ms, int *status,
                      char **body_out, size_t *body_len, char *errmsg)
{
    struct client cl = { .head = strcmp(method, "HEAD") == 0 };
    struct sockaddr_in sa;
    char name[64];
    char *req = NULL;
    int fd = -1, rc, err;
    http_parser parser;

    *body_out = NULL;
    *body_len = 0;
    *status = 0;

    const char *a = addr;
    if (strncmp(a, "http://", 7) == 0)
        a += 7;
    size_t alen = strlen(a);
    if (alen > 0 && a[alen - 1] == '/')
        alen--; /* tolerate "http://host:port/" */
    if (alen >= sizeof name)
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    memcpy(name, a, alen);
    name[alen] = '\0';
    cl.name = name;
    if (parse_ipv4_port(name, &sa, false) != 0)
        return rpg_err(errmsg, RPG_EINVAL, "invalid address \"%s\": expected a.b.c.d:port", addr);
    if (has_ctl_or_space(method) || method[0] == '\0' || has_ctl_or_space(path) || path[0] != '/')
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid request line \"%s %s\"", name, method,
                       path);
    if (authorization != NULL && has_ctl(authorization))
        return rpg_err(errmsg, RPG_EINVAL, "%s: invalid Authorization value", name);
    if (timeout_ms == 0)
        return rpg_err(errmsg, RPG_EINVAL, "%s: timeout must be positive", name);

    rpg_msec deadline = now_ms() + timeout_ms;
    size_t req_len = client_format(&req, name, method, path, body, authorization);
    if (req_len == 0)
        return rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = rpg_err(errmsg, RPG_EIO, "%s: socket: %s", name,
                     uv_strerror(uv_translate_sys_error(errno)));
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto conn_err;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0)
            goto timed_out;
        if (rc < 0) {
            err = -rc;
            goto conn_err;
        }
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err != 0)
            goto conn_err;
    }

    for (size_t off = 0; off < req_len;) {
        ssize_t n = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            err = errno;
            goto conn_err;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0)
            goto timed_out;
        if (rc < 0) {
            err = -rc;
            goto conn_err;
        }
    }

    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &cl;
    while (!cl.done) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                err = errno;
                goto conn_err;
            }
            rc = wait_fd(fd, POLLIN, deadline);
            if (rc == 0)
                goto timed_out;
            if (rc < 0) {
                err = -rc;
                goto conn_err;
            }
            continue;
        }
        /* n == 0 tells the parser about EOF, which ends a body delimited by the close. */
        http_parser_execute(&parser, &client_settings, buf, (size_t)n);
        enum http_errno perr = HTTP_PARSER_ERRNO(&parser);
        if (cl.done)
            break;
        if (cl.too_large) {
            rc = rpg_err(errmsg, RPG_EPROTO, "%s: response body exceeds %d bytes", name,
                         CLIENT_BODY_MAX);
            goto out;
        }
        if (perr != HPE_OK && !(n == 0 && perr == HPE_INVALID_EOF_STATE)) {
            rc = rpg_err(errmsg, RPG_EPROTO, "%s: malformed response: %s", name,
                         http_errno_description(perr));
            goto out;
        }
        if (n == 0) {
            rc = rpg_err(errmsg, RPG_ECONN, "%s: connection closed before a complete response",
                         name);
            goto out;
        }
    }

    if (cl.body == NULL) {
        cl.body = malloc(1);
        if (cl.body == NULL) {
            rc = rpg_err(errmsg, RPG_ENOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    cl.body[cl.body_len] = '\0';
    *status = cl.status;
    *body_out = cl.body;
    *body_len = cl.body_len;
    cl.body = NULL;
    rc = 0;
    goto out;

timed_out:
    rc = rpg_err(errmsg, RPG_ETIMEDOUT, "%s: timed out after %u ms", name, timeout_ms);
    goto out;
conn_err:
    rc = rpg_err(errmsg, RPG_ECONN, "%s: %s", name, uv_strerror(uv_translate_sys_error(err)));
out:
    if (fd >= 0)
        close(fd);
    free(req);
    free(cl.body);
    return rc;
}
