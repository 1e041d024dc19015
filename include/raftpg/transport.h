/* The authenticated, encrypted Raft transport: a struct raft_uv_transport whose connections
 * begin with a mutual handshake over the cluster secret and then carry libraft's bytes in
 * authenticated-encryption frames.
 *
 * Invariant: libraft receives a byte only from a peer that proved, in this connection, that it
 * knows a secret of this member and belongs to this scope. libraft 0.15 trusts whatever reaches
 * its TCP port (a crafted AppendEntries crashes it, an unterminated handshake address overflows a
 * buffer, the server id of a handshake is believed); here libraft sees the far end only through a
 * socketpair fed with decrypted frames of an authenticated session.
 *
 * The handshake (protocol version 1), client C (the side that connects) and server S:
 *   C -> S  HELLO   "RPGT", version, role, 0, 0, BLAKE2b(scope), 32-byte nonce, X25519 key
 *   S -> C  HELLO   the same, with S's fresh nonce and key
 *   C -> S  AUTH_C  C's Raft id and address, MAC_c, secretstream header of C -> S
 *   S -> C  AUTH_S  S's Raft id, MAC_s, secretstream header of S -> C
 * MAC_c and MAC_s are keyed BLAKE2b (key: the secret) over a label and both hellos (and the
 * identities), so a recorded handshake fails against a fresh nonce. The session keys are keyed
 * BLAKE2b of the X25519 shared secret and the transcript, one per direction. S accepts the
 * primary or the previous secret (a rotation); C proves the one it was given and, when S closes
 * the connection after AUTH_C, tries again with the previous one. Every message has a fixed size.
 *
 * Frames after the handshake: a 4-byte big-endian length n (TRANSPORT_FRAME_OVERHEAD <= n <=
 * TRANSPORT_FRAME_MAX + TRANSPORT_FRAME_OVERHEAD), then n bytes of
 * crypto_secretstream_xchacha20poly1305 ciphertext whose additional data is the length: a
 * reordered, replayed, truncated or altered frame fails and closes the connection. */
#ifndef RAFTPG_TRANSPORT_H
#define RAFTPG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>
#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"

#define TRANSPORT_VERSION 1
#define TRANSPORT_KEY_SIZE CONF_SECRET_SIZE
#define TRANSPORT_ADDR_MAX 48     /* address field of AUTH_C, NUL included */
#define TRANSPORT_HELLO_SIZE 104  /* 4 + 1 + 1 + 2 + 32 + 32 + 32 */
#define TRANSPORT_AUTH_C_SIZE 112 /* 8 + 48 + 32 + 24 */
#define TRANSPORT_AUTH_S_SIZE 64  /* 8 + 32 + 24 */
#define TRANSPORT_HS_BUF 160      /* the largest handshake message, rounded up */
#define TRANSPORT_FRAME_MAX 65536 /* plaintext bytes of one frame */
#define TRANSPORT_FRAME_OVERHEAD crypto_secretstream_xchacha20poly1305_ABYTES
#define TRANSPORT_FRAME_LEN_SIZE 4
/* A connection that has not finished its handshake within this is closed. */
#define TRANSPORT_HANDSHAKE_TIMEOUT_MS 2000
/* Incoming connections in handshake at one time; further ones are closed at once. */
#define TRANSPORT_HANDSHAKES_MAX 64
/* Of those, from one source address: one host cannot keep the members out. */
#define TRANSPORT_HANDSHAKES_PER_HOST 16

/* Why a handshake or a frame was refused. TRANSPORT_FAIL_NONE means no failure. */
enum transport_fail {
    TRANSPORT_FAIL_NONE = 0,
    TRANSPORT_FAIL_MAGIC,      /* not this protocol */
    TRANSPORT_FAIL_VERSION,    /* another protocol version */
    TRANSPORT_FAIL_ROLE,       /* a hello from the wrong side (a reflected hello) */
    TRANSPORT_FAIL_SCOPE,      /* a member of another cluster */
    TRANSPORT_FAIL_KEY,        /* an invalid X25519 public key */
    TRANSPORT_FAIL_AUTH,       /* the MAC does not match any secret: wrong secret or replay */
    TRANSPORT_FAIL_IDENTITY,   /* a malformed id or address */
    TRANSPORT_FAIL_PEER_ID,    /* the server is not the member that was asked for */
    TRANSPORT_FAIL_REJECTED,   /* the server closed the connection after AUTH_C */
    TRANSPORT_FAIL_TRUNCATED,  /* the connection ended inside a handshake message or frame */
    TRANSPORT_FAIL_TIMEOUT,    /* no complete handshake in TRANSPORT_HANDSHAKE_TIMEOUT_MS */
    TRANSPORT_FAIL_FRAME_SIZE, /* a frame length out of bounds */
    TRANSPORT_FAIL_DECRYPT,    /* a frame that does not authenticate */
    TRANSPORT_FAIL_BUSY,       /* too many connections in handshake */
};

/* "magic", "version", ...; "unknown" for other values. */
const char *transport_fail_name(enum transport_fail why);

/* The secrets of this member. */
struct transport_secrets {
    uint8_t primary[TRANSPORT_KEY_SIZE];
    uint8_t previous[TRANSPORT_KEY_SIZE];
    bool has_previous;
};

enum transport_role { TRANSPORT_CLIENT = 0, TRANSPORT_SERVER = 1 };

enum transport_hs_state {
    TRANSPORT_HS_CLIENT_WAIT_HELLO = 0,
    TRANSPORT_HS_CLIENT_WAIT_AUTH,
    TRANSPORT_HS_SERVER_WAIT_HELLO,
    TRANSPORT_HS_SERVER_WAIT_AUTH,
    TRANSPORT_HS_DONE,
    TRANSPORT_HS_FAILED,
};

/* "client_wait_hello", ...; "unknown" for other values. */
const char *transport_hs_state_name(enum transport_hs_state state);

/* One direction pair of an established session. */
struct transport_channel {
    crypto_secretstream_xchacha20poly1305_state tx, rx;
};

/* One side of a handshake, pure: bytes in, bytes out, no I/O and no clock. */
struct transport_hs {
    enum transport_role role;
    enum transport_hs_state state;
    enum transport_fail fail;
    const struct transport_secrets *secrets; /* borrowed */
    bool use_previous; /* client: prove the previous secret; server: the peer proved it */
    uint8_t scope_hash[32];
    uint64_t self_id;
    char self_address[TRANSPORT_ADDR_MAX];
    uint64_t peer_id; /* client: the member asked for; after DONE, the authenticated peer */
    char peer_address[TRANSPORT_ADDR_MAX]; /* server, after DONE: the client's Raft address */
    uint8_t sk[32];                        /* ephemeral X25519 secret key */
    uint8_t hello_c[TRANSPORT_HELLO_SIZE];
    uint8_t hello_s[TRANSPORT_HELLO_SIZE];
    uint8_t ident[8 + TRANSPORT_ADDR_MAX];
    uint8_t tx_key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t rx_key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t in[TRANSPORT_HS_BUF]; /* the message being received */
    size_t in_len;
    uint8_t out[TRANSPORT_HS_BUF + TRANSPORT_HELLO_SIZE]; /* bytes to send, drained by the caller */
    size_t out_len;
    struct transport_channel channel; /* valid once DONE */
};

/* Starts a handshake. A client puts its HELLO into out at once; peer_id is the member it
 * connects to (0: any). secrets is borrowed for the handshake's life. scope and address are
 * copied (address must be shorter than TRANSPORT_ADDR_MAX). Returns 0 or RPG_EINVAL. */
int transport_hs_start(struct transport_hs *hs, enum transport_role role,
                       const struct transport_secrets *secrets, bool use_previous,
                       const char *scope, uint64_t self_id, const char *address, uint64_t peer_id);

/* Feeds received bytes. Consumes at most what belongs to the handshake (*used says how much; the
 * rest is the peer's first frames) and may append a reply to out. Returns the new state: DONE
 * once the session is established, FAILED with hs->fail set (the caller closes the
 * connection), or a waiting state. */
enum transport_hs_state transport_hs_feed(struct transport_hs *hs, const uint8_t *data, size_t len,
                                          size_t *used);

/* The peer closed the connection before DONE: records why (REJECTED for a client that sent
 * AUTH_C and got nothing back: the server did not accept its secret, else TRUNCATED) and
 * returns FAILED. */
enum transport_hs_state transport_hs_eof(struct transport_hs *hs);

/* Wipes the ephemeral and session key material of hs (the channel stays usable). */
void transport_hs_wipe(struct transport_hs *hs);

/* Seals len (1..TRANSPORT_FRAME_MAX) bytes into out (len + TRANSPORT_FRAME_LEN_SIZE +
 * TRANSPORT_FRAME_OVERHEAD bytes). Returns the bytes written. */
size_t transport_frame_seal(struct transport_channel *ch, const uint8_t *msg, size_t len,
                            uint8_t *out);

/* Opens the frame at the start of in. Returns 1 with *used and the plaintext in msg (room for
 * TRANSPORT_FRAME_MAX bytes) and *msg_len; 0 when in holds no complete frame yet; -1 with *why
 * (FRAME_SIZE before any allocation, when the length is out of bounds; DECRYPT). */
int transport_frame_open(struct transport_channel *ch, const uint8_t *in, size_t len, size_t *used,
                         uint8_t *msg, size_t *msg_len, enum transport_fail *why);

/* Counters of this process's transports, for the API and metrics. */
struct transport_stats {
    uint64_t accepted;       /* incoming TCP connections */
    uint64_t authenticated;  /* handshakes that succeeded, both directions */
    uint64_t rejected;       /* incoming connections closed by a failed handshake or frame */
    uint64_t timed_out;      /* of those, closed for an unfinished handshake */
    uint64_t refused_busy;   /* closed at once: TRANSPORT_HANDSHAKES_MAX already in handshake */
    uint64_t connect_failed; /* outgoing handshakes that failed (not counting refused TCP) */
    unsigned handshaking;    /* connections in handshake now */
    unsigned sessions;       /* established sessions now */
};

/* Copies the counters. */
void transport_get_stats(struct transport_stats *out);

struct raft_uv_transport;

/* Fills t as an authenticated transport on loop for scope with secrets (both copied). The
 * transport binds the address libraft gives to init. Use it like raft_uv_tcp_init's: hand t to
 * raft_uv_init, and call transport_close after raft_close's callback. Returns 0 or a negative
 * code with errmsg. */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const char *scope,
                   const struct transport_secrets *secrets, char *errmsg);

/* Releases what transport_init allocated; libraft has closed the transport before. */
void transport_close(struct raft_uv_transport *t);

#endif
