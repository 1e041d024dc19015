/* The authenticated, encrypted Raft transport (transport.h), its libuv glue: sessions whose
 * handshake (transport_hs.c) succeeded are relayed to libraft through socketpairs. */
#include "raftpg/transport.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>

#include "raftpg/log.h"

static struct transport_stats stats;

void transport_get_stats(struct transport_stats *out)
{
    *out = stats;
}

/* ---- the libuv transport ------------------------------------------------------------------ */

#define SWEEP_INTERVAL_MS 250
/* Bytes queued for writing on one side of a session before reading from the other side stops
 * (it resumes below half): a slow or stalled peer costs bounded memory. */
#define WRITE_QUEUE_MAX (1024 * 1024)
#define RX_CAP (TRANSPORT_FRAME_LEN_SIZE + TRANSPORT_FRAME_MAX + TRANSPORT_FRAME_OVERHEAD)
/* Refusals are logged at most once per source host per LOG_INTERVAL_MS, and at most
 * LOG_BURST lines per second in all, with the number left out since the last line. */
#define LOG_SOURCES 64
#define LOG_INTERVAL_MS 60000
#define LOG_BURST 10

struct tp_conn;

struct tp {
    struct raft_uv_transport *t;
    uv_loop_t *loop; /* borrowed */
    char scope[CONF_NAME_MAX];
    struct transport_secrets secrets;
    uint64_t id;
    char address[TRANSPORT_ADDR_MAX];
    uv_tcp_t listener;
    uv_timer_t sweep;
    int n_open; /* of listener and sweep */
    raft_uv_accept_cb accept_cb;
    struct tp_conn *conns; /* every connection not yet freed */
    unsigned n_handshaking_in;
    bool closing;
    raft_uv_transport_close_cb close_cb;
    struct {
        char host[48];
        uint64_t last_ms;
        uint64_t suppressed;
    } sources[LOG_SOURCES];
    uint64_t burst_second;
    unsigned burst_lines;
};

struct tp_conn {
    struct tp *tp;
    struct tp_conn *prev, *next;
    enum transport_role role;
    bool handshaking;
    bool closing;
    bool counted_in; /* in tp->n_handshaking_in */
    bool session;    /* counted in stats.sessions */
    uint64_t deadline;
    char peer[64]; /* the TCP peer, for messages */
    char host[48]; /* its address without the port */
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_pipe_t pipe; /* our end of the socketpair; libraft holds the other */
    bool pipe_init;
    bool tcp_reading, pipe_reading;
    int n_open;
    struct transport_hs hs;
    uint8_t hs_buf[TRANSPORT_HS_BUF];
    uint8_t *rx; /* RX_CAP bytes of frames received, once the session is up */
    size_t rx_len;
    uint8_t *plain; /* TRANSPORT_FRAME_MAX bytes */
    /* Client only. */
    struct raft_uv_connect *req;
    uint64_t peer_id;
    char target[TRANSPORT_ADDR_MAX];
    bool use_previous;
    bool retry;     /* when freed, connect again with the previous secret */
    bool delivered; /* req->cb has been called (or must never be) */
};

struct tp_write {
    uv_write_t req;
    struct tp_conn *c;
    uint8_t data[];
};

static void conn_close(struct tp_conn *c);
static void conn_start_reads(struct tp_conn *c);
static int conn_connect(struct tp_conn *c);

static uint64_t now_ms(struct tp *tp)
{
    return uv_now(tp->loop);
}

/* Logs a refusal, rate-limited per source (a host address, or "to ADDRESS" for a member this
 * member connects to) and overall. */
__attribute__((format(printf, 3, 4))) static void tp_log_refusal(struct tp *tp, const char *host,
                                                                 const char *fmt, ...)
{
    uint64_t now = now_ms(tp);
    int slot = -1, oldest = 0;
    for (int i = 0; i < LOG_SOURCES; i++) {
        if (strcmp(tp->sources[i].host, host) == 0) {
            slot = i;
            break;
        }
        if (tp->sources[i].last_ms < tp->sources[oldest].last_ms) {
            oldest = i;
        }
    }
    if (slot >= 0 && tp->sources[slot].last_ms != 0 &&
        now - tp->sources[slot].last_ms < LOG_INTERVAL_MS) {
        tp->sources[slot].suppressed++;
        return;
    }
    if (now / 1000 != tp->burst_second) {
        tp->burst_second = now / 1000;
        tp->burst_lines = 0;
    }
    if (tp->burst_lines >= LOG_BURST) {
        if (slot >= 0) {
            tp->sources[slot].suppressed++;
        }
        return;
    }
    tp->burst_lines++;
    if (slot < 0) {
        slot = oldest;
        snprintf(tp->sources[slot].host, sizeof tp->sources[slot].host, "%s", host);
        tp->sources[slot].suppressed = 0;
    }
    char what[RPG_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    log_warning("raft transport: %s (suppressed=%" PRIu64 " since the last report; one report "
                "a minute per source)",
                what, tp->sources[slot].suppressed);
    tp->sources[slot].last_ms = now == 0 ? 1 : now;
    tp->sources[slot].suppressed = 0;
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t size, char *host, size_t host_size)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, size, "unknown");
    snprintf(host, host_size, "unknown");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        char ip[INET_ADDRSTRLEN] = "";
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(host, host_size, "%s", ip);
        snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    }
}

static void tp_maybe_closed(struct tp *tp)
{
    if (tp->closing && tp->n_open == 0 && tp->conns == NULL && tp->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tp->close_cb;
        tp->close_cb = NULL;
        cb(tp->t);
    }
}

static void tp_handle_closed(uv_handle_t *h)
{
    struct tp *tp = h->data;
    tp->n_open--;
    tp_maybe_closed(tp);
}

static struct tp_conn *conn_new(struct tp *tp, enum transport_role role)
{
    struct tp_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->tp = tp;
    c->role = role;
    c->handshaking = true;
    c->deadline = now_ms(tp) + TRANSPORT_HANDSHAKE_TIMEOUT_MS;
    c->next = tp->conns;
    if (tp->conns != NULL) {
        tp->conns->prev = c;
    }
    tp->conns = c;
    snprintf(c->peer, sizeof c->peer, "unknown");
    return c;
}

static void conn_unlink(struct tp_conn *c)
{
    struct tp *tp = c->tp;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        tp->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
}

static void conn_end_handshake(struct tp_conn *c)
{
    if (c->handshaking) {
        c->handshaking = false;
        stats.handshaking--;
    }
    if (c->counted_in) {
        c->counted_in = false;
        c->tp->n_handshaking_in--;
    }
}

/* Runs once every handle of c is closed. */
static void conn_free(struct tp_conn *c)
{
    struct tp *tp = c->tp;
    conn_end_handshake(c);
    if (c->session) {
        stats.sessions--;
    }
    conn_unlink(c);
    sodium_memzero(&c->hs, sizeof c->hs);
    free(c->rx);
    free(c->plain);
    if (c->role == TRANSPORT_CLIENT && !c->delivered) {
        struct raft_uv_connect *req = c->req;
        if (c->retry && !tp->closing) {
            /* The peer refused the primary secret: it may not have rotated yet. */
            struct tp_conn *again = conn_new(tp, TRANSPORT_CLIENT);
            if (again != NULL) {
                again->req = req;
                again->peer_id = c->peer_id;
                memcpy(again->target, c->target, sizeof again->target);
                again->use_previous = true;
                stats.handshaking++;
                if (conn_connect(again) == 0) {
                    free(c);
                    return;
                }
                again->delivered = true; /* its handles close; the request fails below */
            }
        }
        free(c);
        req->cb(req, NULL, tp->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
        tp_maybe_closed(tp);
        return;
    }
    free(c);
    tp_maybe_closed(tp);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct tp_conn *c = h->data;
    if (--c->n_open == 0) {
        conn_free(c);
    }
}

static void conn_close(struct tp_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    conn_end_handshake(c);
    if (c->n_open == 0) {
        conn_free(c);
        return;
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    }
    if (c->pipe_init && !uv_is_closing((uv_handle_t *)&c->pipe)) {
        uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
    }
}

/* A handshake (or a frame) failed: count, log and close. */
static void conn_refuse(struct tp_conn *c, enum transport_fail why)
{
    struct tp *tp = c->tp;
    if (c->role == TRANSPORT_SERVER) {
        stats.rejected++;
        if (why == TRANSPORT_FAIL_TIMEOUT) {
            stats.timed_out++;
        }
        tp_log_refusal(tp, c->host, "refused connection from %s: %s", c->peer,
                       transport_fail_name(why));
    } else if (why == TRANSPORT_FAIL_REJECTED && !c->use_previous && tp->secrets.has_previous) {
        c->retry = true;
    } else {
        /* Keyed by the member's address: a host can be both a refused client and a peer. */
        char key[64];
        snprintf(key, sizeof key, "to %s", c->target);
        stats.connect_failed++;
        tp_log_refusal(tp, key, "cannot authenticate to member id=%" PRIu64 " at %s: %s%s",
                       c->peer_id, c->target, transport_fail_name(why),
                       why == TRANSPORT_FAIL_REJECTED ? " (does it have our secret?)" : "");
    }
    conn_close(c);
}

static void write_cb(uv_write_t *req, int status)
{
    struct tp_write *w = req->data;
    struct tp_conn *c = w->c;
    uv_stream_t *s = req->handle;
    free(w);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->closing || c->handshaking) {
        return;
    }
    /* Below half the bound again: read from the other side. */
    if (uv_stream_get_write_queue_size(s) < WRITE_QUEUE_MAX / 2) {
        conn_start_reads(c);
    }
}

/* Queues len bytes (copied, or sealed into a frame with seal) on s. Closes c on failure. */
static int conn_write(struct tp_conn *c, uv_stream_t *s, const uint8_t *data, size_t len, bool seal)
{
    size_t size = seal ? len + TRANSPORT_FRAME_LEN_SIZE + TRANSPORT_FRAME_OVERHEAD : len;
    struct tp_write *w = malloc(sizeof *w + size);
    if (w == NULL) {
        conn_close(c);
        return -1;
    }
    w->c = c;
    w->req.data = w;
    if (seal) {
        transport_frame_seal(&c->hs.channel, data, len, w->data);
    } else {
        memcpy(w->data, data, len);
    }
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)size);
    if (uv_write(&w->req, s, &buf, 1, write_cb) != 0) {
        free(w);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Sends what the handshake produced. */
static int conn_flush_hs(struct tp_conn *c)
{
    if (c->hs.out_len == 0) {
        return 0;
    }
    int rv = conn_write(c, (uv_stream_t *)&c->tcp, c->hs.out, c->hs.out_len, false);
    c->hs.out_len = 0;
    return rv;
}

static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tp_conn *c = h->data;
    (void)suggested;
    if (c->handshaking) {
        *buf = uv_buf_init((char *)c->hs_buf, sizeof c->hs_buf);
    } else {
        *buf = uv_buf_init((char *)c->rx + c->rx_len, (unsigned)(RX_CAP - c->rx_len));
    }
}

static void pipe_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tp_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->plain, TRANSPORT_FRAME_MAX);
}

/* Decrypts every complete frame in rx and hands the plaintext to libraft. */
static void conn_relay_in(struct tp_conn *c)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0, n = 0;
        enum transport_fail why = TRANSPORT_FAIL_NONE;
        int rv = transport_frame_open(&c->hs.channel, c->rx + off, c->rx_len - off, &used, c->plain,
                                      &n, &why);
        if (rv < 0) {
            conn_refuse(c, why);
            return;
        }
        if (rv == 0) {
            break;
        }
        off += used;
        if (conn_write(c, (uv_stream_t *)&c->pipe, c->plain, n, false) != 0) {
            return;
        }
    }
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) >= WRITE_QUEUE_MAX &&
        c->tcp_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->tcp_reading = false;
    }
}

static void pipe_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tp_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c); /* libraft closed its end */
        return;
    }
    if (nread == 0) {
        return;
    }
    if (conn_write(c, (uv_stream_t *)&c->tcp, c->plain, (size_t)nread, true) != 0) {
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= WRITE_QUEUE_MAX) {
        uv_read_stop(s);
        c->pipe_reading = false;
    }
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_start_reads(struct tp_conn *c)
{
    if (!c->tcp_reading &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) < WRITE_QUEUE_MAX / 2) {
        c->tcp_reading = uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc_cb, tcp_read_cb) == 0;
    }
    if (!c->pipe_reading &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_QUEUE_MAX / 2) {
        c->pipe_reading = uv_read_start((uv_stream_t *)&c->pipe, pipe_alloc_cb, pipe_read_cb) == 0;
    }
}

/* The handshake succeeded: make the socketpair, give one end to libraft and relay the other.
 * rest holds bytes that came after the handshake. */
static void conn_established(struct tp_conn *c, const uint8_t *rest, size_t rest_len)
{
    struct tp *tp = c->tp;
    int fds[2] = {-1, -1};
    uv_pipe_t *raft_pipe = NULL;
    conn_end_handshake(c);
    c->session = true;
    stats.sessions++;
    stats.authenticated++;
    c->rx = malloc(RX_CAP);
    c->plain = malloc(TRANSPORT_FRAME_MAX);
    /* libraft closes the stream it is given and frees it with raft_free. */
    raft_pipe = raft_malloc(sizeof *raft_pipe);
    if (c->rx == NULL || c->plain == NULL || raft_pipe == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        log_error("raft transport: cannot set up a session with %s: %s", c->peer,
                  raft_pipe == NULL || c->rx == NULL || c->plain == NULL ? "out of memory"
                                                                         : strerror(errno));
        raft_free(raft_pipe);
        conn_close(c);
        return;
    }
    uv_pipe_init(tp->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->pipe_init = true;
    c->n_open++;
    uv_pipe_init(tp->loop, raft_pipe, 0);
    /* Each end belongs to its handle once opened; the ones not opened are closed here. */
    bool ours_open = uv_pipe_open(&c->pipe, fds[0]) == 0;
    if (!ours_open || uv_pipe_open(raft_pipe, fds[1]) != 0) {
        if (!ours_open) {
            close(fds[0]);
        }
        close(fds[1]);
        uv_close((uv_handle_t *)raft_pipe, (uv_close_cb)raft_free);
        conn_close(c);
        return;
    }
    memcpy(c->rx, rest, rest_len);
    c->rx_len = rest_len;
    if (c->role == TRANSPORT_CLIENT) {
        c->delivered = true;
        if (c->use_previous) {
            log_info("raft transport: member id=%" PRIu64 " at %s accepted only the previous "
                     "secret (rotation in progress)",
                     c->peer_id, c->target);
        }
        c->req->cb(c->req, (uv_stream_t *)raft_pipe, 0);
    } else {
        tp->accept_cb(tp->t, c->hs.peer_id, c->hs.peer_address, (uv_stream_t *)raft_pipe);
    }
    if (c->closing) {
        return;
    }
    conn_start_reads(c);
    if (c->rx_len > 0) {
        conn_relay_in(c);
    }
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tp_conn *c = s->data;
    if (c->closing) {
        return;
    }
    if (nread < 0) {
        if (c->handshaking) {
            transport_hs_eof(&c->hs);
            conn_refuse(c, c->hs.fail);
        } else if (c->rx_len > 0) {
            conn_refuse(c, TRANSPORT_FAIL_TRUNCATED);
        } else {
            conn_close(c);
        }
        return;
    }
    if (nread == 0) {
        return;
    }
    if (!c->handshaking) {
        c->rx_len += (size_t)nread;
        conn_relay_in(c);
        return;
    }
    size_t used = 0;
    enum transport_hs_state st =
        transport_hs_feed(&c->hs, (const uint8_t *)buf->base, (size_t)nread, &used);
    if (conn_flush_hs(c) != 0) {
        return;
    }
    if (st == TRANSPORT_HS_FAILED) {
        conn_refuse(c, c->hs.fail);
    } else if (st == TRANSPORT_HS_DONE) {
        conn_established(c, (const uint8_t *)buf->base + used, (size_t)nread - used);
    } else if (used < (size_t)nread) {
        conn_refuse(c, TRANSPORT_FAIL_MAGIC); /* cannot happen: feed takes all while waiting */
    }
}

/* ---- connect ---------------------------------------------------------------------------- */

static void connect_cb(uv_connect_t *req, int status)
{
    struct tp_conn *c = req->data;
    struct tp *tp = c->tp;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        conn_close(c); /* refused or unreachable: libraft retries, as with its TCP transport */
        return;
    }
    peer_name(&c->tcp, c->peer, sizeof c->peer, c->host, sizeof c->host);
    if (transport_hs_start(&c->hs, TRANSPORT_CLIENT, &tp->secrets, c->use_previous, tp->scope,
                           tp->id, tp->address, c->peer_id) != 0) {
        conn_close(c);
        return;
    }
    if (conn_flush_hs(c) != 0) {
        return;
    }
    c->tcp_reading = uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc_cb, tcp_read_cb) == 0;
    if (!c->tcp_reading) {
        conn_close(c);
    }
}

/* Starts the TCP connection of a client c (already linked and counted as handshaking). Returns
 * 0, or -1 with c's handles closing (the caller marks it delivered or not). */
static int conn_connect(struct tp_conn *c)
{
    struct tp *tp = c->tp;
    char host[16];
    uint16_t port;
    struct sockaddr_in addr;
    uv_tcp_init(tp->loop, &c->tcp);
    c->tcp.data = c;
    c->n_open = 1;
    c->connect_req.data = c;
    if (conf_parse_addr(c->target, host, &port) != 0 || uv_ip4_addr(host, port, &addr) != 0 ||
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, connect_cb) != 0) {
        c->delivered = true;
        conn_close(c);
        return -1;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    return 0;
}

static int tp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct tp *tp = t->impl;
    assert(!tp->closing);
    if (strlen(address) >= TRANSPORT_ADDR_MAX || conf_parse_addr(address, NULL, NULL) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "invalid address %.64s", address);
        return RAFT_NOCONNECTION;
    }
    struct tp_conn *c = conn_new(tp, TRANSPORT_CLIENT);
    if (c == NULL) {
        snprintf(t->errmsg, sizeof t->errmsg, "out of memory");
        return RAFT_NOMEM;
    }
    req->cb = cb;
    c->req = req;
    c->peer_id = id;
    memcpy(c->target, address, strlen(address) + 1);
    stats.handshaking++;
    if (conn_connect(c) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "cannot connect to %s", address);
        return RAFT_NOCONNECTION;
    }
    return 0;
}

/* ---- listen ----------------------------------------------------------------------------- */

static void listen_cb(uv_stream_t *server, int status)
{
    struct tp *tp = server->data;
    if (status != 0 || tp->closing) {
        return;
    }
    struct tp_conn *c = conn_new(tp, TRANSPORT_SERVER);
    if (c == NULL) {
        return; /* the connection stays in the backlog until memory is back */
    }
    uv_tcp_init(tp->loop, &c->tcp);
    c->tcp.data = c;
    c->n_open = 1;
    stats.handshaking++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    stats.accepted++;
    peer_name(&c->tcp, c->peer, sizeof c->peer, c->host, sizeof c->host);
    if (tp->n_handshaking_in >= TRANSPORT_HANDSHAKES_MAX) {
        stats.refused_busy++;
        conn_refuse(c, TRANSPORT_FAIL_BUSY);
        return;
    }
    /* One source cannot take every handshake slot from the members. */
    unsigned same_host = 0;
    for (struct tp_conn *o = tp->conns; o != NULL; o = o->next) {
        same_host += o->counted_in && strcmp(o->host, c->host) == 0;
    }
    if (same_host >= TRANSPORT_HANDSHAKES_PER_HOST) {
        stats.refused_busy++;
        conn_refuse(c, TRANSPORT_FAIL_BUSY);
        return;
    }
    tp->n_handshaking_in++;
    c->counted_in = true;
    uv_tcp_nodelay(&c->tcp, 1);
    if (transport_hs_start(&c->hs, TRANSPORT_SERVER, &tp->secrets, false, tp->scope, tp->id,
                           tp->address, 0) != 0) {
        conn_close(c);
        return;
    }
    c->tcp_reading = uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc_cb, tcp_read_cb) == 0;
    if (!c->tcp_reading) {
        conn_close(c);
    }
}

/* Closes every connection whose handshake outlived its deadline. */
static void sweep_cb(uv_timer_t *timer)
{
    struct tp *tp = timer->data;
    uint64_t now = now_ms(tp);
    struct tp_conn *next;
    for (struct tp_conn *c = tp->conns; c != NULL; c = next) {
        next = c->next;
        if (c->handshaking && !c->closing && now >= c->deadline) {
            conn_refuse(c, TRANSPORT_FAIL_TIMEOUT);
        }
    }
}

static int tp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct tp *tp = t->impl;
    char host[16];
    uint16_t port;
    struct sockaddr_in addr;
    int rv;
    tp->accept_cb = cb;
    if (conf_parse_addr(tp->address, host, &port) != 0 || uv_ip4_addr(host, port, &addr) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "invalid address %s", tp->address);
        return RAFT_INVALID;
    }
    rv = uv_tcp_bind(&tp->listener, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&tp->listener, 128, listen_cb);
    }
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen on %s: %s", tp->address, uv_strerror(rv));
        return RAFT_IOERR;
    }
    /* The sweep serves the connections, which keep the loop alive themselves. */
    uv_timer_start(&tp->sweep, sweep_cb, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&tp->sweep);
    return 0;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static int tp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct tp *tp = t->impl;
    if (strlen(address) >= TRANSPORT_ADDR_MAX) {
        snprintf(t->errmsg, sizeof t->errmsg, "address too long");
        return RAFT_NAMETOOLONG;
    }
    tp->id = id;
    memcpy(tp->address, address, strlen(address) + 1);
    uv_tcp_init(tp->loop, &tp->listener);
    tp->listener.data = tp;
    uv_timer_init(tp->loop, &tp->sweep);
    tp->sweep.data = tp;
    tp->n_open = 2;
    return 0;
}

static void tp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct tp *tp = t->impl;
    assert(!tp->closing);
    tp->closing = true;
    tp->close_cb = cb;
    if (tp->n_open > 0) {
        uv_close((uv_handle_t *)&tp->listener, tp_handle_closed);
        uv_close((uv_handle_t *)&tp->sweep, tp_handle_closed);
    }
    struct tp_conn *next;
    for (struct tp_conn *c = tp->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    tp_maybe_closed(tp);
}

int transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const char *scope,
                   const struct transport_secrets *secrets, char *errmsg)
{
    if (sodium_init() < 0) {
        return rpg_err(errmsg, RPG_EIO, "raft transport: cannot initialise libsodium");
    }
    void *data = t->data;
    memset(t, 0, sizeof *t);
    t->data = data;
    struct tp *tp = calloc(1, sizeof *tp);
    if (tp == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "raft transport: out of memory");
    }
    tp->t = t;
    tp->loop = loop;
    snprintf(tp->scope, sizeof tp->scope, "%s", scope);
    tp->secrets = *secrets;
    t->impl = tp;
    t->init = tp_init;
    t->listen = tp_listen;
    t->connect = tp_connect;
    t->close = tp_close;
    return 0;
}

void transport_close(struct raft_uv_transport *t)
{
    struct tp *tp = t->impl;
    if (tp != NULL) {
        sodium_memzero(&tp->secrets, sizeof tp->secrets);
        free(tp);
        t->impl = NULL;
    }
}
