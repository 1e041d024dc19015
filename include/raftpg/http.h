/* HTTP/1.1 server on libmicrohttpd driven from the libuv loop, and a blocking client on libcurl
 * for the CLI and the agent. Requests and responses are small JSON documents; bodies are capped. */
#ifndef RAFTPG_HTTP_H
#define RAFTPG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/err.h"

#define HTTP_PATH_MAX 512
#define HTTP_BODY_MAX (64 * 1024)    /* larger request bodies get 413 */
#define HTTP_HEADERS_MAX (16 * 1024) /* larger header blocks get 431 */

enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_PATCH,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS
};

/* A parsed request; valid only during the handler call. */
struct http_request {
    enum http_method method;
    char path[HTTP_PATH_MAX];  /* URL path without the query string, percent-decoding not done */
    char query[HTTP_PATH_MAX]; /* after '?', may be empty */
    const char *body;          /* NUL-terminated, may be "" */
    size_t body_len;
    const char *authorization; /* value of the Authorization header, or NULL */
    const char *content_type;  /* or NULL */
    /* The client presented a certificate over TLS; with http_server_set_client_ca it was
     * verified during the handshake (a bad one never gets this far). */
    bool client_cert;
};

/* What the server asks of TLS clients (Patroni's restapi.verify_client). */
enum http_client_cert {
    HTTP_CLIENT_CERT_NONE = 0, /* none asked for */
    HTTP_CLIENT_CERT_OPTIONAL, /* asked for; one presented must verify, none is accepted */
    HTTP_CLIENT_CERT_REQUIRED, /* the handshake fails without one that verifies */
};

struct http_conn; /* opaque: one client connection */

/* Called once per complete request. The handler must eventually call http_respond() exactly
 * once for this conn (now or later from the same loop); until then the conn stays open. */
typedef void (*http_handler_cb)(struct http_conn *conn, const struct http_request *req, void *data);

struct http_track;

/* A header every answer carries (http_server_add_header). */
struct http_header {
    char *name, *value; /* owned */
};

struct http_server {
    uv_loop_t *loop; /* borrowed */
    http_handler_cb handler;
    void *data;
    unsigned n_conns;         /* open connections */
    unsigned max_conns;       /* default 1000: above it, each new connection closes the oldest one
                               * still waiting for a complete request (lowered to fit the
                               * process's descriptor limit, which is raised when allowed) */
    uint64_t idle_timeout_ms; /* default 5000: a connection without a complete request that long
                               * after its accept or its previous response is closed */
    int closing;
    void (*close_cb)(struct http_server *s);
    /* Told of every answer the handler gives (for request counters); may be NULL. Set before
     * or after http_server_start. */
    void (*answered)(void *data, const struct http_request *req, int status);
    /* internal */
    int listening;        /* the loop handles are open */
    void *mhd;            /* struct MHD_Daemon */
    int fd;               /* listening socket */
    uv_poll_t poll;       /* on MHD's epoll descriptor */
    uv_timer_t mhd_timer; /* MHD_get_timeout */
    uv_timer_t deadline_timer;
    int open_handles;
    int in_run;         /* inside MHD_run: stopping MHD is deferred */
    unsigned zero_runs; /* runs in a row MHD asked to run again at once */
    struct http_track *waiting_head, *waiting_tail; /* connections by request deadline */
    struct http_conn *suspended;                    /* requests the handler has not answered yet */
    char *tls_cert, *tls_key;                       /* PEM, set by http_server_set_tls */
    char *tls_key_password;                         /* set by http_server_set_tls, or NULL */
    char *tls_trust;                                /* PEM, set by http_server_set_client_ca */
    char *tls_priorities; /* GnuTLS priority string, set by http_server_set_tls */
    enum http_client_cert client_cert;
    void *crl;                       /* struct tls_crl, set by http_server_set_crl */
    void *tls_creds;                 /* struct tls_creds in force for new connections */
    void *tls_retired;               /* replaced ones, freed once no connection uses them */
    int64_t cert_not_after;          /* the server certificate's notAfter, -1 unknown */
    int64_t warned_cert, warned_crl; /* last expiry warnings (Unix time, 0 never) */
    char tls_certfile[4096], tls_crlfile[4096]; /* their paths, for the warnings */
    struct http_header *extra;                  /* set by http_server_add_header */
    unsigned n_extra;
};

/* Makes the server speak HTTPS (before http_server_start) with this certificate chain and key,
 * PEM files read now; key_password (copied; NULL or "": none) decrypts an encrypted key. Returns
 * 0 or RPG_EIO/RPG_EINVAL naming the file; a key file others may read or its group may write is
 * refused. The memory is released by http_server_close (or by a failing http_server_start). */
int http_server_set_tls(struct http_server *s, const char *certfile, const char *keyfile,
                        const char *key_password, char *errmsg);

/* After http_server_set_tls: the protocol versions and cipher suites offered, as a GnuTLS
 * priority string (copied; NULL or "": GnuTLS's defaults). RPG_EINVAL names where it is wrong. */
int http_server_set_tls_priorities(struct http_server *s, const char *priorities, char *errmsg);

/* After http_server_set_tls, before http_server_start: TLS clients are asked for a certificate
 * (mode OPTIONAL or REQUIRED), verified during the handshake against the CAs in cafile (PEM, read
 * now), its key purpose allowing TLS client authentication when it names any. Returns 0 or
 * RPG_EIO/RPG_EINVAL naming the file. */
int http_server_set_client_ca(struct http_server *s, const char *cafile, enum http_client_cert mode,
                              char *errmsg);

/* After http_server_set_client_ca: the certificate revocation lists in crlfile (PEM or DER,
 * each signed by a CA of cafile; key and ca_key name the configuration keys in messages, see
 * tls_crl_load). A client whose certificate, or a CA certificate of its chain, a list revokes is
 * refused in the handshake and logged as other refusals are ("client certificate \"CN=x\"
 * refused: revoked (restapi.crlfile)"). Process-wide, as the refusal log: the last server given
 * lists checks with them (one API per process). Returns 0 or RPG_EIO/RPG_EINVAL. */
int http_server_set_crl(struct http_server *s, const char *crlfile, const char *key,
                        const char *cafile, const char *ca_key, char *errmsg);

/* On a running TLS server: reads certfile, keyfile (decrypted with the password given to
 * http_server_set_tls), the client CA file when client certificates are asked for, and crlfile
 * (when not NULL or "", and client certificates are asked for) again, and uses them for every
 * connection from now on; connections already open keep what they started with. All or
 * nothing: on an error (RPG_EIO/RPG_EINVAL, the message naming the key and file) the files in
 * force stay. Then warns as on a first load
 * (http_server_tls_times). Nothing to do (0) without TLS. */
int http_server_reload_tls(struct http_server *s, const char *certfile, const char *keyfile,
                           const char *cafile, const char *crlfile, char *errmsg);

/* The server certificate's notAfter and the least nextUpdate of the revocation lists in force
 * (Unix times; -1: no TLS, no list, or none given). Each is logged as a warning when the
 * certificate expires within TLS_CERT_SOON_S (or has) or the list is past its nextUpdate: on
 * each load, then at most once a day. */
void http_server_tls_times(const struct http_server *s, int64_t *cert_not_after,
                           int64_t *crl_next_update);

/* Adds name: value (copied) to every answer from now on, the refusals made before the handler
 * too; a later header of the same name (in any case) replaces the earlier one. Returns 0,
 * RPG_EINVAL (a name or value libmicrohttpd would not send: a control character, ':' or white
 * space in the name) or RPG_ENOMEM. Released by http_server_close. */
int http_server_add_header(struct http_server *s, const char *name, const char *value,
                           char *errmsg);

/* Binds "a.b.c.d:port" (port 0 picks a free port, see http_server_port) with SO_REUSEADDR and
 * starts listening. max_conns and idle_timeout_ms may be set before (0 selects the default);
 * every other field is initialised here. Returns 0, RPG_EINVAL for a bad address, or RPG_EIO
 * with errmsg (e.g. "listen 127.0.0.1:8001: address already in use"); on failure nothing is left
 * open and s may be discarded.
 * Requests are refused before the handler with a JSON error and the connection closed: 400
 * (malformed, duplicate Authorization or Content-Type), 413 (body over HTTP_BODY_MAX), 414 (path
 * or query too long), 415 (POST, PUT, PATCH or DELETE with a body whose Content-Type is not
 * application/json), 431 (headers over HTTP_HEADERS_MAX). */
int http_server_start(struct http_server *s, uv_loop_t *loop, const char *addr,
                      http_handler_cb handler, void *data, char *errmsg);

/* The bound TCP port of a started server (useful after binding port 0), or a negative UV_E*. */
int http_server_port(const struct http_server *s);

/* Closes the listener and every open connection; cb (may be NULL) fires when all handles are
 * closed (at once, from this call, if none was open); s may be freed from cb on. A pending request
 * whose handler has not responded is dropped safely: http_respond on it after close is a no-op
 * (the conn stays valid until responded or closed, whichever later), but it must still be called
 * once, since that is what frees the conn. Calling this again while closing does nothing. */
void http_server_close(struct http_server *s, void (*cb)(struct http_server *s));

/* Sends a response with the given status and body (copied) and Content-Type (NULL means
 * "application/json"). Keep-alive is honoured; a HEAD request gets the headers alone. Safe to
 * call once per request. */
void http_respond(struct http_conn *conn, int status, const char *content_type, const char *body,
                  size_t body_len);

/* http_respond with one more header (a 401's WWW-Authenticate, say). */
void http_respond_header(struct http_conn *conn, int status, const char *content_type,
                         const char *body, size_t body_len, const char *header, const char *value);

/* Peer address of the connection, "a.b.c.d" (borrowed, valid during the conn). */
const char *http_conn_peer(const struct http_conn *conn);

/* Reason phrase for a status code ("OK", "Service Unavailable", ...). */
const char *http_status_text(int status);

/* How this process's clients speak to an address without a scheme ("a.b.c.d:port"): HTTPS when
 * https_default, else HTTP; an "http://" or "https://" prefix decides alone. HTTPS verifies the
 * server's certificate and name with cafile (NULL or "": the system's CAs) unless insecure. Call
 * before any request (not thread-safe); returns 0 or RPG_EIO naming an unreadable cafile. */
int http_client_set_tls(bool https_default, const char *cafile, bool insecure, char *errmsg);

/* Revocation lists (PEM: libcurl reads no other) every verified HTTPS request of this process
 * checks the server's certificate chain against from now on; NULL or "": none. The file is
 * checked now (tls_crl_load: each list signed by a CA of cafile; key and ca_key name the
 * configuration keys in messages). A revoked server fails as a TLS error ("127.0.0.1:8003: TLS:
 * SSL certificate problem: certificate revoked"). With OpenSSL's libcurl every CA of the chain
 * needs its list in the file, and a list past its next update fails every request. Call before
 * any request (not thread-safe). Returns 0 or RPG_EIO/RPG_EINVAL. */
int http_client_set_crl(const char *crlfile, const char *key, const char *cafile,
                        const char *ca_key, char *errmsg);

/* The client certificate (PEM, with its key: keyfile, NULL or "" for the certificate's file, and
 * key_password, NULL or "" for an unencrypted key; both copied) every HTTPS request of this
 * process presents from now on; NULL or "" certfile: none. Call before any request (not
 * thread-safe). Returns 0, or RPG_EIO naming a file that cannot be read, or RPG_EINVAL for a key
 * file others may read or its group may write. */
int http_client_set_cert(const char *certfile, const char *keyfile, const char *key_password,
                         char *errmsg);

/* Blocking client for the CLI: one request to "a.b.c.d:port" (or "http://a.b.c.d:port"), with a
 * total timeout. On success returns 0, sets *status, and *body (malloc'ed, NUL-terminated, caller
 * frees) with *body_len. Errors: RPG_ECONN (refused, reset), RPG_ETIMEDOUT, RPG_EPROTO (malformed
 * response), RPG_EINVAL (bad address), each with a message naming the address; a failed TLS
 * handshake or certificate check is RPG_ECONN ("127.0.0.1:8001: TLS: ...").
 * body (NUL-terminated, borrowed) is sent as application/json; the request carries
 * Connection: close. Response bodies may be delimited by Content-Length, chunked encoding or
 * the close, up to 16 MiB. timeout_ms must be positive and covers connect, send and receive.
 * Messages: "127.0.0.1:8001: connection refused", "127.0.0.1:8001: timed out after 2000 ms".
 * On error *body is NULL. */
int http_request_sync(const char *addr, const char *method, const char *path, const char *body,
                      const char *authorization, unsigned timeout_ms, int *status, char **body_out,
                      size_t *body_len, char *errmsg);

/* Requests from the loop thread, without blocking it: libcurl's multi interface, its sockets
 * watched with uv_poll and its time-outs with a uv_timer. */
struct http_call;

/* Called on the loop once per request: rc 0 with status and body (NUL-terminated, borrowed for
 * the call), or an error as http_request_sync reports it (body NULL). */
typedef void (*http_done_cb)(void *data, int rc, int status, const char *body, size_t body_len,
                             const char *errmsg);

struct http_client {
    uv_loop_t *loop; /* borrowed */
    void *multi;     /* CURLM */
    uv_timer_t timer;
    int open_handles; /* the timer and one uv_poll per socket */
    int closing;
    struct http_call *calls;
    void (*close_cb)(struct http_client *c);
};

/* Returns 0, or RPG_EIO/RPG_ENOMEM with errmsg (then nothing is open; close still allowed). */
int http_client_init(struct http_client *c, uv_loop_t *loop, char *errmsg);

/* Starts one request without a body (arguments and errors as http_request_sync); cb runs later,
 * never from this call. */
int http_client_request(struct http_client *c, const char *addr, const char *method,
                        const char *path, unsigned timeout_ms, http_done_cb cb, void *data,
                        char *errmsg);

/* The same with an Authorization header (NULL: none). */
int http_client_request_auth(struct http_client *c, const char *addr, const char *method,
                             const char *path, const char *authorization, unsigned timeout_ms,
                             http_done_cb cb, void *data, char *errmsg);

/* Drops the requests in flight (their callbacks never run) and closes; cb (may be NULL) fires
 * once every handle is closed. */
void http_client_close(struct http_client *c, void (*cb)(struct http_client *c));

#endif
