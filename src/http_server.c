/* HTTP/1.1 server on libmicrohttpd, driven from the libuv loop: MHD runs in its external epoll
 * mode (no threads of its own); a uv_poll watches MHD's epoll descriptor and a uv_timer follows
 * MHD_get_timeout. Requests a handler answers later are suspended (MHD_suspend_connection) and
 * resumed by http_respond.
 *
 * MHD's own connection time-out only measures inactivity, so a client sending one byte a second
 * would hold its connection for ever. Each connection therefore also gets a deadline here: a
 * complete request must arrive within idle_timeout_ms of the accept or of the previous response,
 * else the socket is shut down (MHD then sees the end of input and closes it). Above max_conns,
 * each new connection shuts down the oldest one still waiting for its request, so slow or idle
 * clients can never keep a health check out. */
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

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "http_internal.h"
#include "raftpg/log.h"
#include "raftpg/tls_crl.h"

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

/* One TCP connection, from MHD's STARTED to its CLOSED notification. A connection waiting for a
 * request is on the server's list, ordered by deadline; one whose request is with the handler or
 * whose response is being sent is not. */
struct http_track {
    struct http_track *prev, *next;
    struct MHD_Connection *mc;
    int fd;
    uint64_t deadline; /* loop time (ms) */
    bool listed;
    bool evicted;
    bool requested;              /* a request line arrived: the handshake (if TLS) was done */
    char peer[INET6_ADDRSTRLEN]; /* TLS only: the client's address, for the log */
    struct tls_creds *creds;     /* TLS only: the credentials its session uses */
};

/* The server's certificate, key and client CAs as GnuTLS credentials of its own, set on each
 * session as it starts (in place of those libmicrohttpd loaded at its start), so that a reload
 * can replace them without restarting libmicrohttpd. A session points at its credentials until
 * it ends: replaced ones are kept while a connection counts on them. */
struct tls_creds {
    gnutls_certificate_credentials_t cred;
    unsigned refs;          /* connections using them */
    struct tls_creds *next; /* on the retired list */
};

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

/* ---- connection deadlines ---- */

static void track_unlist(struct http_server *s, struct http_track *t)
{
    if (!t->listed) {
        return;
    }
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        s->waiting_head = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    } else {
        s->waiting_tail = t->prev;
    }
    t->prev = t->next = NULL;
    t->listed = false;
}

static void deadline_cb(uv_timer_t *timer);

static void deadline_rearm(struct http_server *s)
{
    if (s->closing) {
        return;
    }
    if (s->waiting_head == NULL) {
        uv_timer_stop(&s->deadline_timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uint64_t at = s->waiting_head->deadline;
    uv_timer_start(&s->deadline_timer, deadline_cb, at > now ? at - now : 0, 0);
}

/* A connection starts (or, after a response, starts again) waiting for a complete request. The
 * time-out is the same for all, so appending keeps the list in deadline order. */
static void track_wait(struct http_server *s, struct http_track *t)
{
    track_unlist(s, t);
    if (t->evicted) {
        return;
    }
    t->deadline = uv_now(s->loop) + s->idle_timeout_ms;
    t->prev = s->waiting_tail;
    if (s->waiting_tail != NULL) {
        s->waiting_tail->next = t;
    } else {
        s->waiting_head = t;
    }
    s->waiting_tail = t;
    t->listed = true;
    if (t->prev == NULL) {
        deadline_rearm(s);
    }
}

/* Ends a connection that has not delivered its request: MHD reads the end of input at its next
 * run and closes it. */
static void track_evict(struct http_server *s, struct http_track *t)
{
    track_unlist(s, t);
    t->evicted = true;
    shutdown(t->fd, SHUT_RDWR);
}

static void deadline_cb(uv_timer_t *timer)
{
    struct http_server *s = timer->data;
    uint64_t now = uv_now(s->loop);
    while (s->waiting_head != NULL && s->waiting_head->deadline <= now) {
        track_evict(s, s->waiting_head);
    }
    deadline_rearm(s);
}

/* Refused handshakes are logged once per client address and reason within REFUSAL_WINDOW_MS,
 * and at most REFUSAL_LINES lines per window in all, so that a scanner (one address many times,
 * or many addresses) floods nothing; what was left out is counted in the next line. The state is
 * process-wide: the handshake's verify function has no other context, and every server of the
 * process runs on the one loop thread. */
#define REFUSAL_WINDOW_MS 60000
#define REFUSAL_LINES 10
#define REFUSAL_SLOTS 64
#define REFUSAL_NO_CERT UINT64_MAX /* the reason key of a missing certificate */

static struct {
    struct {
        char peer[INET6_ADDRSTRLEN];
        uint64_t reason; /* gnutls verification status bits, a negative error, or NO_CERT */
        uint64_t at;     /* monotonic ms; 0 free */
    } slot[REFUSAL_SLOTS];
    uint64_t window_start;
    unsigned lines;
    unsigned long skipped;
} refusals;

/* Keys of the handshakes that stopped midway or never began. */
#define REFUSAL_UNFINISHED (UINT64_MAX - 5)
#define REFUSAL_NO_HELLO (UINT64_MAX - 1)
#define REFUSAL_PLAIN_HTTP (UINT64_MAX - 2)
#define REFUSAL_NOT_TLS (UINT64_MAX - 3)
#define REFUSAL_BAD_HELLO (UINT64_MAX - 4)

/* http_server_set_crl's lists, process-wide for the same reason as the refusals. */
static struct tls_crl server_crl_lists;
static const struct tls_crl *server_crl;
static char server_crl_key[64], server_crl_ca_key[64];

/* What GnuTLS's hooks saw of a handshake, by descriptor: they know the session (MHD hands GnuTLS
 * the socket's descriptor), not the connection. Cleared when a connection starts and read when it
 * closes. A descriptor beyond the table is simply not watched. */
#define TLS_MARKS 65536
enum { TLS_HELLO = 1, TLS_FINISHED = 2, TLS_REFUSED = 4 };
static struct {
    uint8_t marks;
    uint8_t n;      /* bytes in first */
    char first[16]; /* the first bytes received: what the client spoke */
} tls_watch[TLS_MARKS];

static void tls_mark(gnutls_session_t session, uint8_t mark)
{
    int fd = gnutls_transport_get_int(session);
    if (fd >= 0 && fd < TLS_MARKS) {
        tls_watch[fd].marks |= mark;
    }
}

/* GnuTLS's own read (recv on the descriptor MHD gave it), keeping the first bytes: they tell a
 * client that spoke no TLS at all from one that said nothing. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t size)
{
    int fd = (int)(intptr_t)ptr;
    ssize_t r = recv(fd, buf, size, 0);
    if (r <= 0 || fd < 0 || fd >= TLS_MARKS || tls_watch[fd].n >= sizeof tls_watch[fd].first) {
        return r;
    }
    int saved = errno;
    size_t room = sizeof tls_watch[fd].first - tls_watch[fd].n;
    size_t k = (size_t)r < room ? (size_t)r : room;
    memcpy(tls_watch[fd].first + tls_watch[fd].n, buf, k);
    tls_watch[fd].n += (uint8_t)k;
    room -= k;
    if (room > 0 && tls_watch[fd].first[0] != 0x16) {
        /* Not TLS: GnuTLS stops at its 5-byte record header; what follows is only looked at. */
        ssize_t p = recv(fd, tls_watch[fd].first + tls_watch[fd].n, room, MSG_PEEK | MSG_DONTWAIT);
        if (p > 0) {
            tls_watch[fd].n += (uint8_t)p;
        }
    }
    errno = saved;
    return r;
}

static int tls_hook(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
                    const gnutls_datum_t *msg)
{
    (void)when;
    (void)msg;
    if (incoming && htype == GNUTLS_HANDSHAKE_CLIENT_HELLO) {
        tls_mark(session, TLS_HELLO);
    } else if (incoming && htype == GNUTLS_HANDSHAKE_FINISHED) {
        tls_mark(session, TLS_FINISHED); /* the client's Finished: it accepted the handshake */
    }
    return 0;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

/* A connected socket's client address. */
static void fd_peer(int fd, char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(out, size, "unknown address");
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)size);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)size);
    }
}

/* what: "refused TLS handshake" or another short account of what happened, before " from". */
static void log_refusal(const char *what, const char *peer, uint64_t reason, const char *why)
{
    uint64_t now = monotonic_ms();
    if (now - refusals.window_start >= REFUSAL_WINDOW_MS) {
        refusals.window_start = now;
        refusals.lines = 0;
    }
    unsigned use = 0;
    for (unsigned i = 0; i < REFUSAL_SLOTS; i++) {
        bool live = refusals.slot[i].at != 0 && now - refusals.slot[i].at < REFUSAL_WINDOW_MS;
        if (live && refusals.slot[i].reason == reason && strcmp(refusals.slot[i].peer, peer) == 0) {
            refusals.skipped++;
            return;
        }
        if (refusals.slot[i].at < refusals.slot[use].at) {
            use = i; /* the oldest (or a free) slot is reused */
        }
    }
    if (refusals.lines >= REFUSAL_LINES) {
        refusals.skipped++;
        return;
    }
    refusals.lines++;
    snprintf(refusals.slot[use].peer, sizeof refusals.slot[use].peer, "%s", peer);
    refusals.slot[use].reason = reason;
    refusals.slot[use].at = now;
    if (refusals.skipped > 0) {
        log_warning("api: %s from %s: %s (and %lu refusals not logged before it: at most one a "
                    "minute per address and reason, %d in all)",
                    what, peer, why, refusals.skipped, REFUSAL_LINES);
    } else {
        log_warning("api: %s from %s: %s", what, peer, why);
    }
    refusals.skipped = 0;
}

/* The subject of the client's certificate at index i of its chain (0: its own), for the log (""
 * when it does not parse). */
static void peer_subject(gnutls_session_t session, unsigned i, char *out, size_t size)
{
    unsigned n = 0;
    const gnutls_datum_t *der = gnutls_certificate_get_peers(session, &n);
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    out[0] = '\0';
    if (der == NULL || i >= n || gnutls_x509_crt_init(&crt) != 0) {
        return;
    }
    if (gnutls_x509_crt_import(crt, &der[i], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        snprintf(out, size, "%.*s", (int)dn.size, (const char *)dn.data);
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
}

/* Client certificates, checked inside the handshake so that a refused client gets no service at
 * all (as Patroni's ssl.CERT_REQUIRED and CERT_OPTIONAL do): a presented certificate must chain
 * to the configured CAs and, when it names key purposes, allow TLS client authentication. Each
 * refusal is logged with its reason (log_refusal bounds how often). */
static int verify_client(gnutls_session_t session, bool required)
{
    unsigned n = 0, status = 0;
    if (gnutls_certificate_get_peers(session, &n) == NULL || n == 0) {
        if (required) {
            char peer[INET6_ADDRSTRLEN];
            fd_peer(gnutls_transport_get_int(session), peer, sizeof peer);
            tls_mark(session, TLS_REFUSED);
            log_refusal("refused TLS handshake", peer, REFUSAL_NO_CERT,
                        "no client certificate (restapi.verify_client: required)");
        }
        return required ? GNUTLS_E_NO_CERTIFICATE_FOUND : 0;
    }
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    int rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
    if (rc != 0 || status != 0) {
        char subject[256], why[768];
        gnutls_datum_t text = {NULL, 0};
        peer_subject(session, 0, subject, sizeof subject);
        if (rc == 0 &&
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
            int len = (int)text.size;
            while (len > 0 && (text.data[len - 1] == ' ' || text.data[len - 1] == '\0')) {
                len--;
            }
            snprintf(why, sizeof why, "client certificate \"%s\" refused: %.*s", subject, len,
                     (const char *)text.data);
        } else {
            snprintf(why, sizeof why, "client certificate \"%s\" refused: %s", subject,
                     rc != 0 ? gnutls_strerror(rc) : "not verified");
        }
        gnutls_free(text.data);
        char peer[INET6_ADDRSTRLEN];
        fd_peer(gnutls_transport_get_int(session), peer, sizeof peer);
        tls_mark(session, TLS_REFUSED);
        log_refusal("refused TLS handshake", peer, rc != 0 ? (uint64_t)(unsigned)-rc << 32 : status,
                    why);
        return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
    /* The chain verified; now the revocation lists, which MHD's credentials do not hold. */
    unsigned which = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
    if (tls_crl_revokes(server_crl, chain, n, &which)) {
        char subject[256], revoked[256], why[768], peer[INET6_ADDRSTRLEN];
        peer_subject(session, 0, subject, sizeof subject);
        if (which == 0) {
            snprintf(why, sizeof why, "client certificate \"%s\" refused: revoked (%s)", subject,
                     server_crl_key);
        } else {
            peer_subject(session, which, revoked, sizeof revoked);
            snprintf(why, sizeof why,
                     "client certificate \"%s\" refused: its CA \"%s\" is revoked (%s)", subject,
                     revoked, server_crl_key);
        }
        fd_peer(gnutls_transport_get_int(session), peer, sizeof peer);
        tls_mark(session, TLS_REFUSED);
        log_refusal("refused TLS handshake", peer, GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOKED, why);
        return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
    return 0;
}

static int verify_client_required(gnutls_session_t session)
{
    return verify_client(session, true);
}

static int verify_client_optional(gnutls_session_t session)
{
    return verify_client(session, false);
}

/* The handshake has not begun when MHD reports a new connection: ask for the certificate now. */
static void ask_client_cert(struct http_server *s, struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL) {
        return;
    }
    gnutls_session_t session = ci->tls_session;
    bool required = s->client_cert == HTTP_CLIENT_CERT_REQUIRED;
    /* Asked for, not required by GnuTLS itself: it would refuse a client without one before the
     * verify function runs, and that refusal would go unlogged. The verify function refuses it. */
    gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
    gnutls_session_set_verify_function(session,
                                       required ? verify_client_required : verify_client_optional);
}

/* A TLS connection starts: its handshake is watched (tls_hook) from the first message. */
static void watch_handshake(struct MHD_Connection *mc, struct http_track *t)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (t->fd < 0 || ci == NULL || ci->tls_session == NULL) {
        return;
    }
    if (t->fd < TLS_MARKS) {
        memset(&tls_watch[t->fd], 0, sizeof tls_watch[t->fd]);
    }
    fd_peer(t->fd, t->peer, sizeof t->peer);
    gnutls_handshake_set_hook_function(ci->tls_session, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST,
                                       tls_hook);
    gnutls_transport_set_pull_function(ci->tls_session, tls_pull);
}

/* A TLS connection starts: it gets the credentials in force (see struct tls_creds). */
static void use_creds(struct http_server *s, struct MHD_Connection *mc, struct http_track *t)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    struct tls_creds *c = s->tls_creds;
    if (c == NULL || ci == NULL || ci->tls_session == NULL ||
        gnutls_credentials_set(ci->tls_session, GNUTLS_CRD_CERTIFICATE, c->cred) != 0) {
        return; /* libmicrohttpd's own, loaded at its start, stay */
    }
    c->refs++;
    t->creds = c;
}

static void creds_free(struct tls_creds *c)
{
    if (c != NULL) {
        gnutls_certificate_free_credentials(c->cred);
        free(c);
    }
}

/* A connection no longer needs its credentials: replaced ones nobody uses go. */
static void creds_release(struct http_server *s, struct tls_creds *c)
{
    if (c == NULL || --c->refs > 0 || c == s->tls_creds) {
        return;
    }
    for (struct tls_creds **p = (struct tls_creds **)&s->tls_retired; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            creds_free(c);
            return;
        }
    }
}

/* Whether the first bytes a client sent look like an HTTP request line ("GET /..."). */
static bool looks_like_http(const char *b, unsigned n)
{
    unsigned i = 0;
    while (i < n && b[i] >= 'A' && b[i] <= 'Z') {
        i++;
    }
    return i >= 3 && (i == n || b[i] == ' ');
}

/* A TLS connection closes. One whose handshake never completed, and was neither refused for its
 * certificate (logged then) nor cut by the request deadline or the server's stop, is logged with
 * what is known of why: GnuTLS and MHD keep the exact error to themselves, but the first bytes
 * the client sent and the handshake messages seen tell most of it. */
static void handshake_closed(struct http_server *s, struct http_track *t)
{
    if (t->fd < 0 || t->fd >= TLS_MARKS) {
        return;
    }
    uint8_t m = tls_watch[t->fd].marks, n = tls_watch[t->fd].n;
    char first[sizeof tls_watch[0].first];
    memcpy(first, tls_watch[t->fd].first, sizeof first);
    memset(&tls_watch[t->fd], 0, sizeof tls_watch[t->fd]);
    if (s->closing || t->requested || t->evicted || (m & (TLS_FINISHED | TLS_REFUSED)) != 0) {
        return;
    }
    char why[256];
    if ((m & TLS_HELLO) != 0) {
        log_refusal("refused TLS handshake", t->peer, REFUSAL_UNFINISHED,
                    "the handshake stopped after the client's hello (no common TLS version or "
                    "cipher suite, the client does not trust this server's certificate, or it "
                    "went away)");
        return;
    }
    const char *what = "TLS connection closed before its handshake";
    if (n == 0) {
        log_refusal(what, t->peer, REFUSAL_NO_HELLO,
                    "the client sent nothing (no TLS client hello: a port probe, or a client "
                    "that gave up)");
    } else if (looks_like_http(first, n)) {
        /* The request line up to the first control character, as text. */
        unsigned k = 0;
        while (k < n && first[k] >= ' ' && first[k] <= '~') {
            k++;
        }
        snprintf(why, sizeof why,
                 "the client spoke plain HTTP (\"%.*s...\") to this HTTPS port: use https://",
                 (int)k, first);
        log_refusal(what, t->peer, REFUSAL_PLAIN_HTTP, why);
    } else if ((unsigned char)first[0] == 0x16) {
        log_refusal(what, t->peer, REFUSAL_BAD_HELLO,
                    "the client's first TLS record held no valid client hello (a malformed or "
                    "truncated one, or a protocol version GnuTLS does not speak)");
    } else {
        char hex[3 * 8 + 1] = "";
        for (unsigned i = 0; i < n && i < 8; i++) {
            snprintf(hex + 3 * i, sizeof hex - 3 * i, "%s%02x", i > 0 ? " " : "",
                     (unsigned char)first[i]);
        }
        snprintf(why, sizeof why, "the client does not speak TLS (its first bytes: %s)", hex);
        log_refusal(what, t->peer, REFUSAL_NOT_TLS, why);
    }
}

static bool has_client_cert(struct http_server *s, struct MHD_Connection *mc)
{
    if (s->tls_cert == NULL) {
        return false;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned n = 0;
    return ci != NULL && ci->tls_session != NULL &&
           gnutls_certificate_get_peers(ci->tls_session, &n) != NULL && n > 0;
}

static void notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (s->tls_cert != NULL && s->client_cert != HTTP_CLIENT_CERT_NONE) {
            ask_client_cert(s, mc);
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct http_track *t = calloc(1, sizeof *t);
        *socket_context = t;
        if (t == NULL) {
            if (ci != NULL) {
                shutdown(ci->connect_fd, SHUT_RDWR);
            }
            return;
        }
        t->mc = mc;
        t->fd = ci != NULL ? ci->connect_fd : -1;
        if (s->tls_cert != NULL) {
            watch_handshake(mc, t);
            use_creds(s, mc, t);
        }
        s->n_conns++;
        track_wait(s, t);
        if (s->n_conns > s->max_conns && s->waiting_head != NULL) {
            track_evict(s, s->waiting_head);
        }
        return;
    }
    struct http_track *t = *socket_context;
    *socket_context = NULL;
    if (t == NULL) {
        return;
    }
    if (s->tls_cert != NULL) {
        handshake_closed(s, t);
    }
    creds_release(s, t->creds);
    track_unlist(s, t);
    s->n_conns--;
    free(t);
}

static struct http_track *track_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
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
    struct http_track *t = track_of(mc);
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
    struct http_track *t = track_of(mc);
    if (t != NULL) {
        track_unlist(s, t);
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
    c->req.client_cert = s->client_cert != HTTP_CLIENT_CERT_NONE && has_client_cert(s, mc);
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
    struct http_track *t = track_of(mc);
    if (t != NULL && code == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        track_wait(s, t);
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

/* ---- TLS ---- */

/* private: a key, refused when others may read or change it (like PostgreSQL's ssl_key_file,
 * a group may read it, so that a key shared through a group such as ssl-cert works). */
static char *read_pem(const char *path, const char *what, bool private, char *errmsg, int *rc)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *rc = rpg_err(errmsg, RPG_EIO, "%s %s: %s", what, path,
                      uv_strerror(uv_translate_sys_error(errno)));
        return NULL;
    }
    struct stat st;
    if (private && fstat(fileno(f), &st) != 0) {
        *rc = rpg_err(errmsg, RPG_EIO, "%s %s: %s", what, path,
                      uv_strerror(uv_translate_sys_error(errno)));
        fclose(f);
        return NULL;
    }
    if (private && (st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
        *rc = rpg_err(errmsg, RPG_EINVAL,
                      "%s %s is accessible to others (mode %04o): chmod 600 it (or 640 for a "
                      "group)",
                      what, path, (unsigned)(st.st_mode & 07777));
        fclose(f);
        return NULL;
    }
    char *buf = malloc(256 * 1024);
    size_t n = buf != NULL ? fread(buf, 1, 256 * 1024 - 1, f) : 0;
    bool err = ferror(f) != 0;
    fclose(f);
    if (buf == NULL || err || n == 0 || n >= 256 * 1024 - 1) {
        free(buf);
        *rc = rpg_err(errmsg, RPG_EINVAL, "%s %s: %s", what, path,
                      n == 0 ? "empty or unreadable" : "larger than 256 KiB");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void free_secret(char **p)
{
    if (*p != NULL) {
        memset(*p, 0, strlen(*p));
    }
    free(*p);
    *p = NULL;
}

int http_server_set_tls(struct http_server *s, const char *certfile, const char *keyfile,
                        const char *key_password, char *errmsg)
{
    int rc = 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        return rpg_err(errmsg, RPG_EINVAL, "this libmicrohttpd has no TLS support");
    }
    free_secret(&s->tls_key_password);
    if (key_password != NULL && key_password[0] != '\0') {
        if (MHD_is_feature_supported(MHD_FEATURE_HTTPS_KEY_PASSWORD) != MHD_YES) {
            return rpg_err(errmsg, RPG_EINVAL, "this libmicrohttpd cannot decrypt a key file");
        }
        s->tls_key_password = strdup(key_password);
        if (s->tls_key_password == NULL) {
            return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
        }
    }
    free(s->tls_cert);
    free(s->tls_key);
    s->tls_cert = read_pem(certfile, "certificate file", false, errmsg, &rc);
    s->cert_not_after = tls_cert_not_after(s->tls_cert);
    snprintf(s->tls_certfile, sizeof s->tls_certfile, "%s", certfile);
    s->tls_key = s->tls_cert != NULL ? read_pem(keyfile, "key file", true, errmsg, &rc) : NULL;
    if (s->tls_key == NULL) {
        free(s->tls_cert);
        s->tls_cert = NULL;
        free_secret(&s->tls_key_password);
        return rc;
    }
    return 0;
}

int http_server_set_tls_priorities(struct http_server *s, const char *priorities, char *errmsg)
{
    free(s->tls_priorities);
    s->tls_priorities = NULL;
    if (priorities == NULL || priorities[0] == '\0') {
        return 0;
    }
    gnutls_priority_t prio;
    const char *bad = NULL;
    if (gnutls_priority_init(&prio, priorities, &bad) != 0) {
        return rpg_err(errmsg, RPG_EINVAL, "TLS priority string %s: wrong at \"%.40s\"", priorities,
                       bad != NULL ? bad : "");
    }
    gnutls_priority_deinit(prio);
    s->tls_priorities = strdup(priorities);
    if (s->tls_priorities == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    return 0;
}

int http_server_set_client_ca(struct http_server *s, const char *cafile, enum http_client_cert mode,
                              char *errmsg)
{
    int rc = 0;
    free(s->tls_trust);
    s->tls_trust = NULL;
    s->client_cert = HTTP_CLIENT_CERT_NONE;
    if (mode == HTTP_CLIENT_CERT_NONE) {
        return 0;
    }
    s->tls_trust = read_pem(cafile, "client CA file", false, errmsg, &rc);
    if (s->tls_trust == NULL) {
        return rc;
    }
    s->client_cert = mode;
    return 0;
}

int http_server_set_crl(struct http_server *s, const char *crlfile, const char *key,
                        const char *cafile, const char *ca_key, char *errmsg)
{
    struct tls_crl lists;
    int rc = tls_crl_load(&lists, key, crlfile, ca_key, cafile, false, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (server_crl != NULL) {
        tls_crl_free(&server_crl_lists);
    }
    server_crl_lists = lists;
    server_crl = &server_crl_lists;
    snprintf(s->tls_crlfile, sizeof s->tls_crlfile, "%s", crlfile);
    snprintf(server_crl_key, sizeof server_crl_key, "%s", key);
    snprintf(server_crl_ca_key, sizeof server_crl_ca_key, "%s", ca_key);
    s->crl = &server_crl_lists;
    return 0;
}

/* GnuTLS credentials from PEM texts, as libmicrohttpd makes its own (trust may be NULL). */
static int creds_new(const char *cert, const char *key, const char *password, const char *trust,
                     const char *certfile, const char *keyfile, const char *cafile,
                     struct tls_creds **out, char *errmsg)
{
    struct tls_creds *c = calloc(1, sizeof *c);
    if (c == NULL || gnutls_certificate_allocate_credentials(&c->cred) != 0) {
        free(c);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    gnutls_datum_t t = {(unsigned char *)trust, trust != NULL ? (unsigned)strlen(trust) : 0};
    int grc =
        trust != NULL ? gnutls_certificate_set_x509_trust_mem(c->cred, &t, GNUTLS_X509_FMT_PEM) : 1;
    if (grc <= 0) {
        creds_free(c);
        return rpg_err(errmsg, RPG_EINVAL, "client CA file %s: %s", cafile,
                       grc < 0 ? gnutls_strerror(grc) : "no PEM certificate in it");
    }
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)strlen(key)};
    grc = gnutls_certificate_set_x509_key_mem2(c->cred, &cd, &kd, GNUTLS_X509_FMT_PEM, password, 0);
    if (grc < 0) {
        creds_free(c);
        return rpg_err(errmsg, RPG_EINVAL, "certificate file %s with key file %s: %s", certfile,
                       keyfile, gnutls_strerror(grc));
    }
    *out = c;
    return 0;
}

/* Logs what is due (see http_server_tls_times): loaded says the files were just read. */
static void tls_expiry_check(struct http_server *s, bool loaded)
{
    int64_t now = (int64_t)time(NULL);
    enum tls_expiry cert = tls_expiry_state(now, s->cert_not_after, TLS_CERT_SOON_S);
    if (cert != TLS_EXPIRY_OK && tls_warn_due(now, &s->warned_cert, loaded)) {
        char when[64];
        time_t at = (time_t)s->cert_not_after;
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&at, &tm));
        if (cert == TLS_EXPIRY_PAST) {
            log_warning("api: the server certificate (%s) expired on %s: clients refuse it; "
                        "replace it and reload",
                        s->tls_certfile, when);
        } else {
            log_warning("api: the server certificate (%s) expires on %s, in %lld days: replace "
                        "it and reload",
                        s->tls_certfile, when, (long long)((s->cert_not_after - now) / 86400));
        }
    }
    int64_t next = s->crl != NULL ? tls_crl_next_update(s->crl) : -1;
    if (tls_expiry_state(now, next, 0) == TLS_EXPIRY_PAST &&
        tls_warn_due(now, &s->warned_crl, loaded)) {
        char when[64];
        time_t at = (time_t)next;
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&at, &tm));
        log_warning("api: %s %s is past its nextUpdate (%s): it is still used; a newer list "
                    "from the CA is due, put it in place and reload",
                    server_crl_key, s->tls_crlfile, when);
    }
}

void http_server_tls_times(const struct http_server *s, int64_t *cert_not_after,
                           int64_t *crl_next_update)
{
    *cert_not_after = s->tls_cert != NULL ? s->cert_not_after : -1;
    *crl_next_update = s->crl != NULL ? tls_crl_next_update(s->crl) : -1;
}

int http_server_reload_tls(struct http_server *s, const char *certfile, const char *keyfile,
                           const char *cafile, const char *crlfile, char *errmsg)
{
    int rc = 0;
    if (s->tls_cert == NULL || s->mhd == NULL) {
        return 0;
    }
    bool want_trust = s->client_cert != HTTP_CLIENT_CERT_NONE;
    bool want_crl = want_trust && crlfile != NULL && crlfile[0] != '\0';
    char *cert = NULL, *key = NULL, *trust = NULL;
    struct tls_creds *c = NULL;
    struct tls_crl lists = {NULL, 0};
    cert = read_pem(certfile, "certificate file", false, errmsg, &rc);
    key = cert != NULL ? read_pem(keyfile, "key file", true, errmsg, &rc) : NULL;
    trust = key != NULL && want_trust ? read_pem(cafile, "client CA file", false, errmsg, &rc)
                                      : NULL;
    if (key == NULL || (want_trust && trust == NULL)) {
        goto fail;
    }
    rc = creds_new(cert, key, s->tls_key_password, trust, certfile, keyfile, cafile, &c, errmsg);
    if (rc == 0 && want_crl) {
        rc = tls_crl_load(&lists, server_crl_key[0] != '\0' ? server_crl_key : "crlfile", crlfile,
                          server_crl_ca_key[0] != '\0' ? server_crl_ca_key : "cafile", cafile,
                          false, errmsg);
    }
    if (rc != 0) {
        goto fail;
    }
    /* All read: the new ones replace the old. */
    struct tls_creds *old = s->tls_creds;
    s->tls_creds = c;
    if (old != NULL) {
        if (old->refs == 0) {
            creds_free(old);
        } else {
            old->next = s->tls_retired;
            s->tls_retired = old;
        }
    }
    if (want_crl) {
        if (server_crl != NULL) {
            tls_crl_free(&server_crl_lists);
        }
        server_crl_lists = lists;
        server_crl = &server_crl_lists;
        s->crl = &server_crl_lists;
    }
    free(s->tls_cert);
    if (s->tls_key != NULL) {
        memset(s->tls_key, 0, strlen(s->tls_key));
    }
    free(s->tls_key);
    free(s->tls_trust);
    s->tls_cert = cert;
    s->tls_key = key;
    s->tls_trust = trust;
    s->cert_not_after = tls_cert_not_after(cert);
    snprintf(s->tls_certfile, sizeof s->tls_certfile, "%s", certfile);
    if (want_crl) {
        snprintf(s->tls_crlfile, sizeof s->tls_crlfile, "%s", crlfile);
    }
    tls_expiry_check(s, true);
    return 0;
fail:
    creds_free(c);
    free(cert);
    if (key != NULL) {
        memset(key, 0, strlen(key));
    }
    free(key);
    free(trust);
    return rc;
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
    if (s->crl != NULL && s->crl == server_crl) {
        tls_crl_free(&server_crl_lists);
        server_crl = NULL;
    }
    s->crl = NULL;
    creds_free(s->tls_creds);
    s->tls_creds = NULL;
    while (s->tls_retired != NULL) {
        struct tls_creds *c = s->tls_retired;
        s->tls_retired = c->next;
        creds_free(c);
    }
    free_secret(&s->tls_key_password);
    free(s->tls_trust);
    s->tls_trust = NULL;
    free(s->tls_priorities);
    s->tls_priorities = NULL;
    free(s->tls_cert);
    if (s->tls_key != NULL) {
        memset(s->tls_key, 0, strlen(s->tls_key));
    }
    free(s->tls_key);
    s->tls_cert = s->tls_key = NULL;
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
        tls_expiry_check(s, false);
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
        (size_t)CONN_MEMORY, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s,
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
        rc = creds_new(s->tls_cert, s->tls_key, s->tls_key_password, s->tls_trust, s->tls_certfile,
                       "(key file)", "(client CA file)", &c, errmsg);
        if (rc != 0) {
            MHD_stop_daemon(s->mhd); /* closes the listening socket too */
            s->mhd = NULL;
            s->fd = -1;
            settings_free(s);
            return rc;
        }
        s->tls_creds = c;
        tls_expiry_check(s, true);
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
