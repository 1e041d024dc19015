/* The HTTP server's TLS side: GnuTLS credentials of its own set on each session (so that a reload
 * replaces them without restarting libmicrohttpd), client certificate verification with CRLs, the
 * handshake watch that explains a refused or abandoned handshake in the log (rate-limited), and
 * the certificate's expiry warnings. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "http_server_int.h"
#include "raftpg/log.h"
#include "raftpg/tls_crl.h"

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
void http_tls_ask_client_cert(struct http_server *s, struct MHD_Connection *mc)
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
void http_tls_watch_handshake(struct MHD_Connection *mc, struct http_track *t)
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
void http_tls_use_creds(struct http_server *s, struct MHD_Connection *mc, struct http_track *t)
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
void http_tls_creds_release(struct http_server *s, struct tls_creds *c)
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
void http_tls_handshake_closed(struct http_server *s, struct http_track *t)
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

bool http_tls_has_client_cert(struct http_server *s, struct MHD_Connection *mc)
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
int http_tls_creds_new(const char *cert, const char *key, const char *password, const char *trust,
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
void http_tls_expiry_check(struct http_server *s, bool loaded)
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
    rc = http_tls_creds_new(cert, key, s->tls_key_password, trust, certfile, keyfile, cafile, &c,
                            errmsg);
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
    http_tls_expiry_check(s, true);
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

/* What the TLS set functions gave the server. */
void http_tls_settings_free(struct http_server *s)
{
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
