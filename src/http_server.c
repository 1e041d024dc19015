/* HTTP/1.1 server on libmicrohttpd, driven from the libuv loop: MHD runs in its external epoll
 * mode (no threads of its own); a uv_poll watches MHD's epoll descriptor and a uv_timer follows
 * MHD_get_timeout. Requests a handler answers later are suspended (MHD_suspend_connection) and
 * resumed by http_respond.
 *
 * MHD's own connection time-out only measures inactivity, so a client sending one byte a second
 * would hold its connection for ever. Each connection therefore also gets a deadline
 * (http_deadline.c): a complete request must arrive within idle_timeout_ms of the accept or of
 * the previous response, else the socket is shut down (MHD then sees the end of input and closes
 * it). Above max_conns, each new connection shuts down the oldest one still waiting for its
 * request, so slow or idle clients can never keep a health check out. The TLS side is in
 * http_tls.c. Still over 900 lines: the request's life (headers, body, suspension, response) is
 * one piece with MHD's callbacks. */
#include "raftpg/http.h"
#include "raftpg/loopwatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http_internal.h"
#include "http_server_int.h"
#include "raftpg/log.h"

#define AUTH_MAX 2048
#define CTYPE_MAX 256
#define DEFAULT_MAX_CONNS 1000
#define DEFAULT_IDLE_MS 5000
/* MHD's hard limit is above max_conns: the connection over max_conns must be accepted to evict
 * an older one. */
#define HARD_LIMIT_SLACK 64
/* Descriptors kept for everything else the process opens (Raft, PostgreSQL, files). */
#define FD_RESERVE 256
/* Per-connection memory of MHD: the request line and headers must fit, with room to spare over
 * HTTP_HEADERS_MAX so that a block just over it reaches our own check (and its JSON 431). */
#define CONN_MEMORY (HTTP_HEADERS_MAX + 16 * 1024)
/* With TLS, the longest the server sleeps: its certificate's expiry is looked at this often. */
#define TLS_CHECK_MS (3600 * 1000)

/* One request. Lifetime: freed once MHD is done with it (completed, or the server stopped) and no
 * response is owed; the handler may hold it after MHD is done, so http_respond then frees it. */
struct http_conn {
    struct http_server *s;           /* NULL once MHD is done with the request */
    struct MHD_Connection *mc;       /* likewise */
    struct http_conn *sprev, *snext; /* on s->suspended while suspended */
    struct http_request req;
    char peer[INET6_ADDRSTRLEN];
    char auth[AUTH_MAX];
    char ctype[CTYPE_MAX];
    char *body;
    size_t body_len, body_cap;
    int reject_status;
    char reject_msg[128];
    bool has_auth, has_ctype;
    bool headers_seen;
    bool too_large;
    bool dispatched;
    bool response_owed;
    bool suspended;
    struct MHD_Response *resp; /* answer waiting for the resumed connection */
    unsigned resp_status;
};

static void server_run(struct http_server *s);
static void server_finish_close(struct http_server *s);

/* ---- helpers ---- */

int http_parse_ipv4_port(const char *addr, struct sockaddr_in *sa, bool allow_port0)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0') {
        return -1;
    }
    size_t hlen = (size_t)(colon - addr);
    char host[INET_ADDRSTRLEN];
    if (hlen >= sizeof host) {
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    unsigned long port = 0;
    const char *p = colon + 1;
    for (int n = 0; *p != '\0'; p++, n++) {
        if (*p < '0' || *p > '9' || n >= 5) {
            return -1;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535 || (port == 0 && !allow_port0)) {
        return -1;
    }
    if (uv_ip4_addr(host, (int)port, sa) != 0) {
        return -1;
    }
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

/* ---- requests ---- */

static void conn_free(struct http_conn *c)
{
    if (c->resp != NULL) {
        MHD_destroy_response(c->resp);
    }
    free(c->body);
    free(c);
}

static void suspended_remove(struct http_server *s, struct http_conn *c)
{
    if (!c->suspended) {
        return;
    }
    c->suspended = false;
    if (c->sprev != NULL) {
        c->sprev->snext = c->snext;
    } else {
        s->suspended = c->snext;
    }
    if (c->snext != NULL) {
        c->snext->sprev = c->sprev;
    }
    c->sprev = c->snext = NULL;
}

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

/* The raw request target, before MHD decodes it: split into path and query here. */
static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *mc)
{
    struct http_server *s = cls;
    struct http_track *t = http_track_of(mc);
    if (t != NULL) {
        t->requested = true;
    }
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->s = s;
    c->mc = mc;
    if (uri == NULL) {
        uri = "";
    }
    const char *q = strchr(uri, '?');
    size_t plen = q != NULL ? (size_t)(q - uri) : strlen(uri);
    if (plen == 0 || uri[0] != '/') {
        reject(c, 400, "invalid request URI");
    } else if (plen >= sizeof c->req.path) {
        reject(c, 414, "request path exceeds %zu bytes", sizeof c->req.path - 1);
    } else if (q != NULL && strlen(q + 1) >= sizeof c->req.query) {
        reject(c, 414, "request query exceeds %zu bytes", sizeof c->req.query - 1);
    } else {
        memcpy(c->req.path, uri, plen);
        c->req.path[plen] = '\0';
        snprintf(c->req.query, sizeof c->req.query, "%s", q != NULL ? q + 1 : "");
    }
    return c;
}

static enum http_method method_of(const char *m)
{
    static const struct {
        const char *name;
        enum http_method m;
    } methods[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},   {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"PATCH", HTTP_M_PATCH}, {"DELETE", HTTP_M_DELETE},
        {"OPTIONS", HTTP_M_OPTIONS},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(m, methods[i].name) == 0) {
            return methods[i].m;
        }
    }
    return HTTP_M_OTHER;
}

struct header_scan {
    struct http_conn *c;
    size_t bytes;
    int n_auth, n_ctype;
};

static bool copy_trimmed(char *dst, size_t cap, const char *v)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        return false;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_scan *h = cls;
    struct http_conn *c = h->c;
    (void)kind;
    if (value == NULL) {
        value = "";
    }
    h->bytes += strlen(key) + strlen(value) + 4;
    if (c->reject_status != 0) {
        return MHD_YES;
    }
    if (strcasecmp(key, "Authorization") == 0) {
        c->has_auth = true;
        if (++h->n_auth > 1) {
            reject(c, 400, "duplicate Authorization header");
        } else if (!copy_trimmed(c->auth, sizeof c->auth, value)) {
            reject(c, 431, "Authorization header exceeds %zu bytes", sizeof c->auth - 1);
        }
    } else if (strcasecmp(key, "Content-Type") == 0) {
        c->has_ctype = true;
        if (++h->n_ctype > 1) {
            reject(c, 400, "duplicate Content-Type header");
        } else if (!copy_trimmed(c->ctype, sizeof c->ctype, value)) {
            reject(c, 431, "Content-Type header exceeds %zu bytes", sizeof c->ctype - 1);
        }
    }
    return MHD_YES;
}

/* "application/json", any case, optionally with parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    if (strncasecmp(ct, want, sizeof want - 1) != 0) {
        return false;
    }
    const char *rest = ct + sizeof want - 1;
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    return *rest == '\0' || *rest == ';';
}

static bool is_mutating(enum http_method m)
{
    return m == HTTP_M_POST || m == HTTP_M_PUT || m == HTTP_M_PATCH || m == HTTP_M_DELETE;
}

/* Checks what the headers say before any body is read. */
static void check_headers(struct http_conn *c)
{
    struct header_scan h = {.c = c};
    MHD_get_connection_values(c->mc, MHD_HEADER_KIND, scan_header, &h);
    if (h.bytes > HTTP_HEADERS_MAX) {
        reject(c, 431, "request header block exceeds %d bytes", HTTP_HEADERS_MAX);
        return;
    }
    if (c->reject_status != 0) {
        return;
    }
    const char *cl = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Content-Length");
    unsigned long long len = cl != NULL ? strtoull(cl, NULL, 10) : 0;
    if (len > HTTP_BODY_MAX) {
        reject(c, 413, "request body exceeds %d bytes", HTTP_BODY_MAX);
        return;
    }
    /* A call that changes something must say it is JSON, with a body or without: a web page
     * cannot make a browser send that to another origin without the server's consent (CORS),
     * while a form POST (even an empty one, read as {}) it can. */
    if (is_mutating(c->req.method) && !is_json_type(c->ctype)) {
        reject(c, 415,
               "a request that changes something must be sent as Content-Type: "
               "application/json");
        return;
    }
}

static struct MHD_Response *make_response(const struct http_server *s, const char *content_type,
                                          const char *body, size_t body_len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body != NULL ? body_len : 0, (void *)(body != NULL ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return NULL;
    }
    if (content_type == NULL) {
        content_type = "application/json";
    }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        /* Only an absurd content type gets here: answer something well-formed instead. */
        MHD_destroy_response(r);
        return NULL;
    }
    /* Checked when added: MHD takes them all. */
    for (unsigned i = 0; s != NULL && i < s->n_extra; i++) {
        MHD_add_response_header(r, s->extra[i].name, s->extra[i].value);
    }
    return r;
}

static enum MHD_Result queue(const struct http_server *s, struct MHD_Connection *mc,
                             unsigned status, struct MHD_Response *r)
{
    if (r == NULL) {
        static const char oom[] = "{\"error\":\"cannot build the response\"}";
        r = make_response(s, NULL, oom, sizeof oom - 1);
        status = 500;
        if (r == NULL) {
            return MHD_NO;
        }
    }
    enum MHD_Result rc = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result answer_reject(struct http_conn *c)
{
    char body[sizeof c->reject_msg * 2 + 16];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"error\":\"");
    n += json_escape(body + n, sizeof body - n - 3, c->reject_msg);
    memcpy(body + n, "\"}", 3);
    n += 2;
    struct MHD_Response *r = make_response(c->s, NULL, body, n);
    /* The rest of the input is not read: close after this answer. */
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    /* Counted as the handler's answers are (raftpg_api_requests_total). */
    if (c->s->answered != NULL) {
        c->s->answered(c->s->data, &c->req, c->reject_status);
    }
    return queue(c->s, c->mc, (unsigned)c->reject_status, r);
}

static void peer_of(struct http_conn *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(c->peer, "?");
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    if (ci->client_addr->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ci->client_addr, c->peer, sizeof c->peer);
    } else if (ci->client_addr->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ci->client_addr, c->peer, sizeof c->peer);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct http_server *s = cls;
    struct http_conn *c = *req_cls;
    (void)url;
    (void)version;
    if (c == NULL) {
        return MHD_NO; /* out of memory in uri_logger */
    }
    if (s->closing) {
        return MHD_NO;
    }

    if (!c->headers_seen) {
        c->headers_seen = true;
        c->req.method = method_of(method);
        if (c->reject_status == 0) {
            check_headers(c);
        }
        if (c->reject_status != 0) {
            return answer_reject(c);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t len = *upload_data_size;
        *upload_data_size = 0;
        /* An oversized chunked body is read to its end (within the request deadline) so that
         * the 413 reaches the client instead of a reset. */
        if (c->too_large || c->body_len + len > HTTP_BODY_MAX) {
            c->too_large = true;
            return MHD_YES;
        }
        if (c->body_len + len + 1 > c->body_cap) {
            size_t cap = c->body_cap > 0 ? c->body_cap : 1024;
            while (cap < c->body_len + len + 1) {
                cap *= 2;
            }
            char *nb = realloc(c->body, cap);
            if (nb == NULL) {
                return MHD_NO;
            }
            c->body = nb;
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_len, upload_data, len);
        c->body_len += len;
        return MHD_YES;
    }
    if (c->resp != NULL) {
        /* Called again after a resume: the answer is ready. */
        struct MHD_Response *r = c->resp;
        c->resp = NULL;
        return queue(s, mc, c->resp_status, r);
    }
    if (c->dispatched) {
        return MHD_YES; /* a spurious call while suspended */
    }
    if (c->too_large) {
        reject(c, 413, "request body exceeds %d bytes", HTTP_BODY_MAX);
        return answer_reject(c);
    }

    /* The request is complete: no deadline while the handler has it. */
    c->dispatched = true;
    struct http_track *t = http_track_of(mc);
    if (t != NULL) {
        http_track_unlist(s, t);
    }
    peer_of(c);
    c->req.body = c->body != NULL ? c->body : "";
    if (c->body != NULL) {
        c->body[c->body_len] = '\0';
    }
    c->req.body_len = c->body_len;
    c->req.authorization = c->has_auth ? c->auth : NULL;
    c->req.content_type = c->has_ctype ? c->ctype : NULL;
    /* Only a verified certificate is ever here: without a trust list none is asked for. */
    c->req.client_cert = s->client_cert != HTTP_CLIENT_CERT_NONE && http_tls_has_client_cert(s, mc);
    c->response_owed = true;
    s->handler(c, &c->req, s->data);
    if (!c->response_owed) {
        if (c->resp == NULL) {
            return MHD_NO; /* answered while the server closes */
        }
        struct MHD_Response *r = c->resp;
        c->resp = NULL;
        return queue(s, mc, c->resp_status, r);
    }
    /* Answered later from the loop. */
    MHD_suspend_connection(mc);
    c->suspended = true;
    c->snext = s->suspended;
    c->sprev = NULL;
    if (s->suspended != NULL) {
        s->suspended->sprev = c;
    }
    s->suspended = c;
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct http_server *s = cls;
    struct http_conn *c = *req_cls;
    *req_cls = NULL;
    if (c != NULL) {
        suspended_remove(s, c);
        c->s = NULL;
        c->mc = NULL;
        if (!c->response_owed) {
            conn_free(c);
        }
    }
    /* Keep-alive: the next request has its own deadline. */
    struct http_track *t = http_track_of(mc);
    if (t != NULL && code == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        http_track_wait(s, t);
    }
}

void http_respond(struct http_conn *conn, int status, const char *content_type, const char *body,
                  size_t body_len)
{
    http_respond_header(conn, status, content_type, body, body_len, NULL, NULL);
}

void http_respond_header(struct http_conn *conn, int status, const char *content_type,
                         const char *body, size_t body_len, const char *header, const char *value)
{
    if (conn == NULL || !conn->response_owed) {
        return;
    }
    conn->response_owed = false;
    struct http_server *s = conn->s;
    if (s == NULL) {
        /* MHD is done with the request (the server closed): settle and free. */
        conn_free(conn);
        return;
    }
    if (s->closing) {
        return; /* dropped; freed when MHD reports the request terminated */
    }
    conn->resp = make_response(s, content_type, body, body_len);
    if (conn->resp == NULL) {
        static const char bad[] = "{\"error\":\"invalid response content type\"}";
        conn->resp = make_response(s, NULL, bad, sizeof bad - 1);
        status = 500;
    }
    if (header != NULL && value != NULL) {
        MHD_add_response_header(conn->resp, header, value);
    }
    conn->resp_status = (unsigned)status;
    if (s->answered != NULL) {
        s->answered(s->data, &conn->req, status);
    }
    if (conn->suspended) {
        suspended_remove(s, conn);
        MHD_resume_connection(conn->mc);
        /* MHD's wake-up descriptor is in its epoll set, so the uv_poll fires; run now anyway
         * when not inside MHD already, to answer without an extra loop turn. */
        if (!s->in_run) {
            server_run(s);
        }
    }
}

const char *http_conn_peer(const struct http_conn *conn)
{
    return conn->peer;
}

int http_server_add_header(struct http_server *s, const char *name, const char *value, char *errmsg)
{
    if (name[0] == '\0' || strpbrk(name, "\t\r\n :") != NULL || strpbrk(value, "\r\n") != NULL) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "header \"%.64s\" cannot be sent: a control character, "
                       "':' or white space in its name, or a line break in its value",
                       name);
    }
    for (unsigned i = 0; i < s->n_extra; i++) {
        if (strcasecmp(s->extra[i].name, name) == 0) {
            char *v = strdup(value);
            if (v == NULL) {
                return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
            }
            free(s->extra[i].value);
            s->extra[i].value = v;
            return 0;
        }
    }
    char *n = strdup(name), *v = strdup(value);
    struct http_header *grown =
        n != NULL && v != NULL ? realloc(s->extra, (s->n_extra + 1) * sizeof *grown) : NULL;
    if (grown == NULL) {
        free(n);
        free(v);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    s->extra = grown;
    s->extra[s->n_extra++] = (struct http_header){n, v};
    return 0;
}

/* What the set functions and http_server_add_header gave the server. */
static void settings_free(struct http_server *s)
{
    for (unsigned i = 0; i < s->n_extra; i++) {
        free(s->extra[i].name);
        free(s->extra[i].value);
    }
    free(s->extra);
    s->extra = NULL;
    s->n_extra = 0;
    http_tls_settings_free(s);
}

/* ---- driving MHD from the loop ---- */

static void mhd_timer_cb(uv_timer_t *t)
{
    LOOPWATCH_SPAN("api server", server_run(t->data));
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    LOOPWATCH_SPAN("api server", server_run(p->data));
}

static void server_run(struct http_server *s)
{
    if (s->closing || s->mhd == NULL) {
        return;
    }
    s->in_run = 1;
    MHD_run(s->mhd);
    s->in_run = 0;
    if (s->closing) {
        /* The handler closed the server from inside MHD. */
        server_finish_close(s);
        return;
    }
    MHD_UNSIGNED_LONG_LONG ms;
    bool timed = MHD_get_timeout(s->mhd, &ms) == MHD_YES;
    if (s->tls_cert != NULL) {
        /* Expiry warnings are due once a day: the server runs at least hourly to tell. */
        http_tls_expiry_check(s, false);
        if (!timed || ms > TLS_CHECK_MS) {
            ms = TLS_CHECK_MS;
            timed = true;
        }
    }
    if (!timed) {
        uv_timer_stop(&s->mhd_timer);
        return;
    }
    /* "Run again at once" is right for input MHD already holds, but libmicrohttpd 0.9.75 also
     * says it for every TLS handshake waiting for the client (the connection stays marked
     * readable), which would spin. New input wakes the poll handle anyway, so repeated zero
     * time-outs back off: at once, then 1, 2, 4 ... up to 32 ms, until MHD names a real
     * time-out again (runs the poll handle starts do not reset this, or a stream of input
     * would keep the spin going). */
    if (ms == 0) {
        if (s->zero_runs > 0) {
            ms = 1u << (s->zero_runs - 1 < 5 ? s->zero_runs - 1 : 5);
        }
        if (s->zero_runs < 16) {
            s->zero_runs++;
        }
    } else {
        s->zero_runs = 0;
    }
    uv_timer_start(&s->mhd_timer, mhd_timer_cb, ms, 0);
}

static void handle_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (--s->open_handles > 0) {
        return;
    }
    void (*cb)(struct http_server *) = s->close_cb;
    s->close_cb = NULL;
    /* s may be freed by cb: nothing touches it afterwards. */
    if (cb != NULL) {
        cb(s);
    }
}

/* Descriptors for max_conns connections: raise the soft limit towards the hard one, and take
 * fewer connections if even that is short. */
static unsigned fit_fd_limit(unsigned want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return want;
    }
    rlim_t need = (rlim_t)want + HARD_LIMIT_SLACK + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit nrl = {.rlim_cur = cur, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nrl) == 0) {
            rl.rlim_cur = cur;
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t room = rl.rlim_cur > HARD_LIMIT_SLACK + FD_RESERVE + 16
                          ? rl.rlim_cur - HARD_LIMIT_SLACK - FD_RESERVE
                          : 16;
        return (unsigned)room;
    }
    return want;
}

int http_server_start(struct http_server *s, uv_loop_t *loop, const char *addr,
                      http_handler_cb handler, void *data, char *errmsg)
{
    struct sockaddr_in sa;
    int fd = -1, rc;

    if (http_parse_ipv4_port(addr, &sa, true) != 0) {
        return rpg_err(errmsg, RPG_EINVAL, "invalid listen address \"%s\": expected a.b.c.d:port",
                       addr);
    }

    s->loop = loop;
    s->handler = handler;
    s->data = data;
    s->n_conns = 0;
    s->closing = 0;
    s->close_cb = NULL;
    s->listening = 0;
    s->mhd = NULL;
    s->open_handles = 0;
    s->in_run = 0;
    s->zero_runs = 0;
    s->waiting_head = s->waiting_tail = NULL;
    s->suspended = NULL;
    s->fd = -1;
    if (s->max_conns == 0) {
        s->max_conns = DEFAULT_MAX_CONNS;
    }
    if (s->idle_timeout_ms == 0) {
        s->idle_timeout_ms = DEFAULT_IDLE_MS;
    }
    s->max_conns = fit_fd_limit(s->max_conns);

    /* Bound and listening before MHD sees it, for exact errors ("address already in use"). */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        goto sys_err;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
        goto sys_err;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        goto sys_err;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        goto sys_err;
    }

    /* MHD's own time-out (whole seconds, inactivity) covers a client that stops reading a
     * response; the request deadline above is ours. */
    unsigned idle_s = (unsigned)((s->idle_timeout_ms + 999) / 1000);
    bool tls = s->tls_cert != NULL;
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0), 0, NULL, NULL,
        on_request, s, MHD_OPTION_HTTPS_MEM_CERT, tls ? s->tls_cert : NULL,
        MHD_OPTION_HTTPS_MEM_KEY, tls ? s->tls_key : NULL, MHD_OPTION_HTTPS_KEY_PASSWORD,
        tls ? s->tls_key_password : NULL, MHD_OPTION_HTTPS_MEM_TRUST, tls ? s->tls_trust : NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, s->max_conns + HARD_LIMIT_SLACK,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY, MHD_OPTION_NOTIFY_CONNECTION, http_notify_connection, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)SOMAXCONN,
        /* Last: without priorities the list ends here, and GnuTLS's defaults apply. */
        tls && s->tls_priorities != NULL ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END,
        s->tls_priorities, MHD_OPTION_END);
    if (s->mhd == NULL) {
        bool trust = s->tls_trust != NULL, password = s->tls_key_password != NULL;
        close(fd);
        settings_free(s);
        if (!tls) {
            return rpg_err(errmsg, RPG_EIO, "listen %s: cannot start the HTTP server", addr);
        }
        return rpg_err(errmsg, RPG_EIO,
                       "listen %s: cannot start the HTTP server (is the key the certificate's, "
                       "both PEM%s%s?)",
                       addr, password ? ", the key's password right" : "",
                       trust ? ", and the CA file PEM" : "");
    }
    s->fd = fd;
    if (tls) {
        struct tls_creds *c = NULL;
        rc = http_tls_creds_new(s->tls_cert, s->tls_key, s->tls_key_password, s->tls_trust,
                                s->tls_certfile, "(key file)", "(client CA file)", &c, errmsg);
        if (rc != 0) {
            MHD_stop_daemon(s->mhd); /* closes the listening socket too */
            s->mhd = NULL;
            s->fd = -1;
            settings_free(s);
            return rc;
        }
        s->tls_creds = c;
        http_tls_expiry_check(s, true);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (di == NULL || uv_poll_init(loop, &s->poll, di->epoll_fd) != 0) {
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
        settings_free(s);
        return rpg_err(errmsg, RPG_EIO, "listen %s: cannot watch the HTTP server", addr);
    }
    uv_timer_init(loop, &s->mhd_timer); /* cannot fail */
    uv_timer_init(loop, &s->deadline_timer);
    s->poll.data = s->mhd_timer.data = s->deadline_timer.data = s;
    s->open_handles = 3;
    s->listening = 1;
    uv_poll_start(&s->poll, UV_READABLE, poll_cb);
    server_run(s);
    return 0;

sys_err:
    rc = uv_translate_sys_error(errno);
    if (fd >= 0) {
        close(fd);
    }
    return rpg_err(errmsg, RPG_EIO, "listen %s: %s", addr, uv_strerror(rc));
}

int http_server_port(const struct http_server *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (s->fd < 0) {
        return UV_EBADF;
    }
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) {
        return uv_translate_sys_error(errno);
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return UV_EINVAL;
}

/* Stops MHD (outside MHD_run): every open request is reported terminated, every connection
 * closed; then the loop handles close. */
static void server_finish_close(struct http_server *s)
{
    if (s->mhd != NULL) {
        /* MHD refuses to stop with suspended connections; their answers are dropped. */
        while (s->suspended != NULL) {
            struct http_conn *c = s->suspended;
            suspended_remove(s, c);
            MHD_resume_connection(c->mc);
        }
        struct MHD_Daemon *d = s->mhd;
        s->mhd = NULL;
        MHD_stop_daemon(d); /* closes the listening socket too */
        s->fd = -1;
        settings_free(s);
    }
    if (s->listening) {
        s->listening = 0;
        uv_close((uv_handle_t *)&s->poll, handle_closed);
        uv_close((uv_handle_t *)&s->mhd_timer, handle_closed);
        uv_close((uv_handle_t *)&s->deadline_timer, handle_closed);
    }
}

void http_server_close(struct http_server *s, void (*cb)(struct http_server *s))
{
    if (s->closing) {
        return;
    }
    s->closing = 1;
    s->close_cb = cb;
    if (s->open_handles == 0) {
        /* Never started (or failed to): nothing to close. */
        settings_free(s);
        s->close_cb = NULL;
        if (cb != NULL) {
            cb(s);
        }
        return;
    }
    /* Stop watching now; the epoll descriptor closes with MHD. */
    uv_poll_stop(&s->poll);
    if (!s->in_run) {
        server_finish_close(s);
    }
}
