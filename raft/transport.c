/* The authenticated, encrypted Raft transport (transport.h): the handshake and frames, pure, then
 * the libuv glue that relays authenticated sessions to libraft through socketpairs. */
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

static const uint8_t MAGIC[4] = {'R', 'P', 'G', 'T'};
static const char LABEL_CLIENT[] = "raftpg transport v1 client";
static const char LABEL_SERVER[] = "raftpg transport v1 server";
static const char LABEL_KEYS[] = "raftpg transport v1 keys";
#define MAC_SIZE 32
#define HEADER_SIZE crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define IDENT_SIZE (8 + TRANSPORT_ADDR_MAX)

_Static_assert(TRANSPORT_AUTH_C_SIZE == IDENT_SIZE + MAC_SIZE + HEADER_SIZE, "AUTH_C layout");
_Static_assert(TRANSPORT_AUTH_S_SIZE == 8 + MAC_SIZE + HEADER_SIZE, "AUTH_S layout");
_Static_assert(TRANSPORT_HS_BUF >= TRANSPORT_AUTH_C_SIZE, "handshake buffer too small");
_Static_assert(TRANSPORT_HELLO_SIZE == 8 + 32 * 3, "HELLO layout");
_Static_assert(crypto_kx_PUBLICKEYBYTES == 32 && crypto_scalarmult_BYTES == 32, "X25519 sizes");

static struct transport_stats stats;

void transport_get_stats(struct transport_stats *out)
{
    *out = stats;
}

const char *transport_fail_name(enum transport_fail why)
{
    switch (why) {
    case TRANSPORT_FAIL_NONE: return "none";
    case TRANSPORT_FAIL_MAGIC: return "not the raftpg transport protocol";
    case TRANSPORT_FAIL_VERSION: return "unsupported protocol version";
    case TRANSPORT_FAIL_ROLE: return "hello from the wrong side";
    case TRANSPORT_FAIL_SCOPE: return "another cluster scope";
    case TRANSPORT_FAIL_KEY: return "invalid key exchange";
    case TRANSPORT_FAIL_AUTH: return "authentication failed (wrong secret or replayed handshake)";
    case TRANSPORT_FAIL_IDENTITY: return "malformed member identity";
    case TRANSPORT_FAIL_PEER_ID: return "peer is another member than the one asked for";
    case TRANSPORT_FAIL_REJECTED: return "peer refused our secret";
    case TRANSPORT_FAIL_TRUNCATED: return "connection closed inside the handshake or a frame";
    case TRANSPORT_FAIL_TIMEOUT: return "handshake timed out";
    case TRANSPORT_FAIL_FRAME_SIZE: return "frame length out of bounds";
    case TRANSPORT_FAIL_DECRYPT: return "frame does not authenticate";
    case TRANSPORT_FAIL_BUSY: return "too many connections in handshake";
    }
    return "unknown";
}

const char *transport_hs_state_name(enum transport_hs_state state)
{
    switch (state) {
    case TRANSPORT_HS_CLIENT_WAIT_HELLO: return "client_wait_hello";
    case TRANSPORT_HS_CLIENT_WAIT_AUTH: return "client_wait_auth";
    case TRANSPORT_HS_SERVER_WAIT_HELLO: return "server_wait_hello";
    case TRANSPORT_HS_SERVER_WAIT_AUTH: return "server_wait_auth";
    case TRANSPORT_HS_DONE: return "done";
    case TRANSPORT_HS_FAILED: return "failed";
    }
    return "unknown";
}

/* ---- handshake -------------------------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static const uint8_t *secret_of(const struct transport_hs *hs, bool previous)
{
    return previous ? hs->secrets->previous : hs->secrets->primary;
}

static void write_hello(struct transport_hs *hs, uint8_t *hello)
{
    uint8_t *p = hello;
    memcpy(p, MAGIC, 4);
    p[4] = TRANSPORT_VERSION;
    p[5] = (uint8_t)hs->role;
    p[6] = p[7] = 0;
    p += 8;
    memcpy(p, hs->scope_hash, 32);
    randombytes_buf(p + 32, 32);
    crypto_scalarmult_base(p + 64, hs->sk);
}

static enum transport_hs_state hs_fail(struct transport_hs *hs, enum transport_fail why)
{
    hs->fail = why;
    hs->state = TRANSPORT_HS_FAILED;
    hs->out_len = 0;
    transport_hs_wipe(hs);
    return hs->state;
}

int transport_hs_start(struct transport_hs *hs, enum transport_role role,
                       const struct transport_secrets *secrets, bool use_previous,
                       const char *scope, uint64_t self_id, const char *address, uint64_t peer_id)
{
    if (sodium_init() < 0 || strlen(address) >= TRANSPORT_ADDR_MAX ||
        (use_previous && !secrets->has_previous)) {
        return RPG_EINVAL;
    }
    memset(hs, 0, sizeof *hs);
    hs->role = role;
    hs->secrets = secrets;
    hs->use_previous = role == TRANSPORT_CLIENT && use_previous;
    crypto_generichash(hs->scope_hash, 32, (const uint8_t *)scope, strlen(scope), NULL, 0);
    hs->self_id = self_id;
    memcpy(hs->self_address, address, strlen(address) + 1);
    hs->peer_id = peer_id;
    randombytes_buf(hs->sk, sizeof hs->sk);
    if (role == TRANSPORT_CLIENT) {
        write_hello(hs, hs->hello_c);
        memcpy(hs->out, hs->hello_c, TRANSPORT_HELLO_SIZE);
        hs->out_len = TRANSPORT_HELLO_SIZE;
        hs->state = TRANSPORT_HS_CLIENT_WAIT_HELLO;
    } else {
        hs->state = TRANSPORT_HS_SERVER_WAIT_HELLO;
    }
    return 0;
}

/* The peer's hello: magic, then version, role and scope, in that order, so that the reason given
 * for a foreign or older peer is the most telling one. */
static enum transport_fail check_hello(const struct transport_hs *hs, const uint8_t *hello)
{
    if (memcmp(hello, MAGIC, 4) != 0) {
        return TRANSPORT_FAIL_MAGIC;
    }
    if (hello[4] != TRANSPORT_VERSION) {
        return TRANSPORT_FAIL_VERSION;
    }
    if (hello[5] != (hs->role == TRANSPORT_CLIENT ? TRANSPORT_SERVER : TRANSPORT_CLIENT) ||
        hello[6] != 0 || hello[7] != 0) {
        return TRANSPORT_FAIL_ROLE;
    }
    if (sodium_memcmp(hello + 8, hs->scope_hash, 32) != 0) {
        return TRANSPORT_FAIL_SCOPE;
    }
    return TRANSPORT_FAIL_NONE;
}

/* MAC_c (server_id NULL) or MAC_s over the label, both hellos and the client's identity. */
static void hs_mac(const struct transport_hs *hs, const uint8_t *secret, const uint8_t *server_id,
                   uint8_t mac[MAC_SIZE])
{
    crypto_generichash_state st;
    const char *label = server_id == NULL ? LABEL_CLIENT : LABEL_SERVER;
    crypto_generichash_init(&st, secret, TRANSPORT_KEY_SIZE, MAC_SIZE);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    crypto_generichash_update(&st, hs->hello_c, TRANSPORT_HELLO_SIZE);
    crypto_generichash_update(&st, hs->hello_s, TRANSPORT_HELLO_SIZE);
    crypto_generichash_update(&st, hs->ident, IDENT_SIZE);
    if (server_id != NULL) {
        crypto_generichash_update(&st, server_id, 8);
    }
    crypto_generichash_final(&st, mac, MAC_SIZE);
}

/* The two session keys: keyed BLAKE2b of the X25519 shared secret and the transcript. The first
 * half protects client -> server, the second server -> client. */
static int hs_derive(struct transport_hs *hs, const uint8_t *secret)
{
    const uint8_t *peer_pk = (hs->role == TRANSPORT_CLIENT ? hs->hello_s : hs->hello_c) + 72;
    uint8_t dh[32], keys[64];
    crypto_generichash_state st;
    if (crypto_scalarmult(dh, hs->sk, peer_pk) != 0) {
        return -1; /* a low-order point: the shared secret would be known to anyone */
    }
    crypto_generichash_init(&st, secret, TRANSPORT_KEY_SIZE, sizeof keys);
    crypto_generichash_update(&st, (const uint8_t *)LABEL_KEYS, strlen(LABEL_KEYS));
    crypto_generichash_update(&st, dh, sizeof dh);
    crypto_generichash_update(&st, hs->hello_c, TRANSPORT_HELLO_SIZE);
    crypto_generichash_update(&st, hs->hello_s, TRANSPORT_HELLO_SIZE);
    crypto_generichash_update(&st, hs->ident, IDENT_SIZE);
    crypto_generichash_final(&st, keys, sizeof keys);
    bool client = hs->role == TRANSPORT_CLIENT;
    memcpy(hs->tx_key, keys + (client ? 0 : 32), 32);
    memcpy(hs->rx_key, keys + (client ? 32 : 0), 32);
    sodium_memzero(dh, sizeof dh);
    sodium_memzero(keys, sizeof keys);
    return 0;
}

/* Client, on the server's hello: send AUTH_C. */
static enum transport_hs_state client_on_hello(struct transport_hs *hs)
{
    memcpy(hs->hello_s, hs->in, TRANSPORT_HELLO_SIZE);
    enum transport_fail why = check_hello(hs, hs->hello_s);
    if (why != TRANSPORT_FAIL_NONE) {
        return hs_fail(hs, why);
    }
    put64(hs->ident, hs->self_id);
    memset(hs->ident + 8, 0, TRANSPORT_ADDR_MAX);
    memcpy(hs->ident + 8, hs->self_address, strlen(hs->self_address));
    const uint8_t *secret = secret_of(hs, hs->use_previous);
    if (hs_derive(hs, secret) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_KEY);
    }
    uint8_t *p = hs->out + hs->out_len;
    memcpy(p, hs->ident, IDENT_SIZE);
    hs_mac(hs, secret, NULL, p + IDENT_SIZE);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->channel.tx, p + IDENT_SIZE + MAC_SIZE,
                                                    hs->tx_key);
    hs->out_len += TRANSPORT_AUTH_C_SIZE;
    hs->state = TRANSPORT_HS_CLIENT_WAIT_AUTH;
    return hs->state;
}

/* Client, on AUTH_S: check the server's MAC and id, open the channel. */
static enum transport_hs_state client_on_auth(struct transport_hs *hs)
{
    uint8_t mac[MAC_SIZE];
    const uint8_t *in = hs->in;
    hs_mac(hs, secret_of(hs, hs->use_previous), in, mac);
    if (sodium_memcmp(mac, in + 8, MAC_SIZE) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_AUTH);
    }
    uint64_t id = get64(in);
    if (hs->peer_id != 0 && id != hs->peer_id) {
        return hs_fail(hs, TRANSPORT_FAIL_PEER_ID);
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->channel.rx, in + 8 + MAC_SIZE,
                                                        hs->rx_key) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_KEY);
    }
    hs->peer_id = id;
    hs->state = TRANSPORT_HS_DONE;
    transport_hs_wipe(hs);
    return hs->state;
}

/* Server, on the client's hello: send ours. */
static enum transport_hs_state server_on_hello(struct transport_hs *hs)
{
    memcpy(hs->hello_c, hs->in, TRANSPORT_HELLO_SIZE);
    enum transport_fail why = check_hello(hs, hs->hello_c);
    if (why != TRANSPORT_FAIL_NONE) {
        return hs_fail(hs, why);
    }
    write_hello(hs, hs->hello_s);
    memcpy(hs->out + hs->out_len, hs->hello_s, TRANSPORT_HELLO_SIZE);
    hs->out_len += TRANSPORT_HELLO_SIZE;
    hs->state = TRANSPORT_HS_SERVER_WAIT_AUTH;
    return hs->state;
}

/* Server, on AUTH_C: find the secret the client proved, check its identity, send AUTH_S. */
static enum transport_hs_state server_on_auth(struct transport_hs *hs)
{
    const uint8_t *in = hs->in;
    uint8_t mac[MAC_SIZE];
    memcpy(hs->ident, in, IDENT_SIZE);
    int matched = -1;
    for (int i = 0; i < (hs->secrets->has_previous ? 2 : 1); i++) {
        hs_mac(hs, secret_of(hs, i == 1), NULL, mac);
        if (sodium_memcmp(mac, in + IDENT_SIZE, MAC_SIZE) == 0 && matched < 0) {
            matched = i;
        }
    }
    if (matched < 0) {
        return hs_fail(hs, TRANSPORT_FAIL_AUTH);
    }
    hs->use_previous = matched == 1;
    /* Authenticated, yet checked: this address goes to libraft, which copies it with strlen. */
    const char *addr = (const char *)in + 8;
    size_t addr_len = strnlen(addr, TRANSPORT_ADDR_MAX);
    uint64_t id = get64(in);
    if (id == 0 || addr_len == 0 || addr_len >= TRANSPORT_ADDR_MAX ||
        conf_parse_addr(addr, NULL, NULL) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_IDENTITY);
    }
    const uint8_t *secret = secret_of(hs, hs->use_previous);
    if (hs_derive(hs, secret) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_KEY);
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->channel.rx, in + IDENT_SIZE + MAC_SIZE,
                                                        hs->rx_key) != 0) {
        return hs_fail(hs, TRANSPORT_FAIL_KEY);
    }
    hs->peer_id = id;
    memcpy(hs->peer_address, addr, addr_len + 1);
    uint8_t *p = hs->out + hs->out_len;
    put64(p, hs->self_id);
    hs_mac(hs, secret, p, p + 8);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->channel.tx, p + 8 + MAC_SIZE, hs->tx_key);
    hs->out_len += TRANSPORT_AUTH_S_SIZE;
    hs->state = TRANSPORT_HS_DONE;
    transport_hs_wipe(hs);
    return hs->state;
}

static size_t expected_size(enum transport_hs_state state)
{
    switch (state) {
    case TRANSPORT_HS_CLIENT_WAIT_HELLO:
    case TRANSPORT_HS_SERVER_WAIT_HELLO: return TRANSPORT_HELLO_SIZE;
    case TRANSPORT_HS_CLIENT_WAIT_AUTH: return TRANSPORT_AUTH_S_SIZE;
    case TRANSPORT_HS_SERVER_WAIT_AUTH: return TRANSPORT_AUTH_C_SIZE;
    case TRANSPORT_HS_DONE:
    case TRANSPORT_HS_FAILED: break;
    }
    return 0;
}

enum transport_hs_state transport_hs_feed(struct transport_hs *hs, const uint8_t *data, size_t len,
                                          size_t *used)
{
    *used = 0;
    while (hs->state != TRANSPORT_HS_DONE && hs->state != TRANSPORT_HS_FAILED && *used < len) {
        size_t want = expected_size(hs->state);
        size_t n = want - hs->in_len;
        if (n > len - *used) {
            n = len - *used;
        }
        memcpy(hs->in + hs->in_len, data + *used, n);
        hs->in_len += n;
        *used += n;
        if (hs->in_len < want) {
            break;
        }
        hs->in_len = 0;
        switch (hs->state) {
        case TRANSPORT_HS_CLIENT_WAIT_HELLO: client_on_hello(hs); break;
        case TRANSPORT_HS_CLIENT_WAIT_AUTH: client_on_auth(hs); break;
        case TRANSPORT_HS_SERVER_WAIT_HELLO: server_on_hello(hs); break;
        case TRANSPORT_HS_SERVER_WAIT_AUTH: server_on_auth(hs); break;
        case TRANSPORT_HS_DONE:
        case TRANSPORT_HS_FAILED: break;
        }
    }
    return hs->state;
}

enum transport_hs_state transport_hs_eof(struct transport_hs *hs)
{
    if (hs->state == TRANSPORT_HS_DONE || hs->state == TRANSPORT_HS_FAILED) {
        return hs->state;
    }
    if (hs->state == TRANSPORT_HS_CLIENT_WAIT_AUTH && hs->in_len == 0) {
        return hs_fail(hs, TRANSPORT_FAIL_REJECTED);
    }
    return hs_fail(hs, TRANSPORT_FAIL_TRUNCATED);
}

void transport_hs_wipe(struct transport_hs *hs)
{
    sodium_memzero(hs->sk, sizeof hs->sk);
    sodium_memzero(hs->tx_key, sizeof hs->tx_key);
    sodium_memzero(hs->rx_key, sizeof hs->rx_key);
}

/* ---- frames ------------------------------------------------------------------------------ */

size_t transport_frame_seal(struct transport_channel *ch, const uint8_t *msg, size_t len,
                            uint8_t *out)
{
    assert(len > 0 && len <= TRANSPORT_FRAME_MAX);
    uint32_t n = (uint32_t)(len + TRANSPORT_FRAME_OVERHEAD);
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&ch->tx, out + TRANSPORT_FRAME_LEN_SIZE, &clen, msg,
                                               len, out, TRANSPORT_FRAME_LEN_SIZE, 0);
    assert(clen == n);
    return TRANSPORT_FRAME_LEN_SIZE + n;
}

int transport_frame_open(struct transport_channel *ch, const uint8_t *in, size_t len, size_t *used,
                         uint8_t *msg, size_t *msg_len, enum transport_fail *why)
{
    *used = 0;
    if (len < TRANSPORT_FRAME_LEN_SIZE) {
        return 0;
    }
    uint32_t n = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
    if (n <= TRANSPORT_FRAME_OVERHEAD || n > TRANSPORT_FRAME_MAX + TRANSPORT_FRAME_OVERHEAD) {
        *why = TRANSPORT_FAIL_FRAME_SIZE;
        return -1;
    }
    if (len - TRANSPORT_FRAME_LEN_SIZE < n) {
        return 0;
    }
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&ch->rx, msg, &mlen, &tag,
                                                   in + TRANSPORT_FRAME_LEN_SIZE, n, in,
                                                   TRANSPORT_FRAME_LEN_SIZE) != 0 ||
        tag != 0) {
        *why = TRANSPORT_FAIL_DECRYPT;
        return -1;
    }
    *msg_len = (size_t)mlen;
    *used = TRANSPORT_FRAME_LEN_SIZE + n;
    return 1;
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
