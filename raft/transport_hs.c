/* The authenticated, encrypted Raft transport (transport.h), its pure part: the handshake and the
 * frames. The libuv glue that relays authenticated sessions to libraft is in transport.c. */
#include "raftpg/transport.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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
