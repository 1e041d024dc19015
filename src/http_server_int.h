/* Internal to the HTTP server (http_server.c, http_deadline.c, http_tls.c): its connection and
 * request records, the connections' deadlines and the TLS side the server calls. */
#ifndef RAFTPG_HTTP_SERVER_INT_H
#define RAFTPG_HTTP_SERVER_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "raftpg/http.h"

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

/* ---- connection deadlines (http_deadline.c) ---- */

/* MHD's connection notification: a connection's record made (started) or freed (closed). */
void http_notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                            enum MHD_ConnectionNotificationCode code);
/* The record of MHD's connection mc (NULL: none). */
struct http_track *http_track_of(struct MHD_Connection *mc);
/* A connection waits for a complete request from now on (after its accept or a response). */
void http_track_wait(struct http_server *s, struct http_track *t);
/* A connection no longer waits: its request arrived, or it closes. */
void http_track_unlist(struct http_server *s, struct http_track *t);

/* ---- TLS (http_tls.c) ---- */

/* A connection starts: its session asks for a client certificate (client CA set). */
void http_tls_ask_client_cert(struct http_server *s, struct MHD_Connection *mc);
/* GnuTLS's hooks record what the handshake of t's descriptor saw. */
void http_tls_watch_handshake(struct MHD_Connection *mc, struct http_track *t);
/* The session uses the credentials in force now (a reload replaces them for new ones). */
void http_tls_use_creds(struct http_server *s, struct MHD_Connection *mc, struct http_track *t);
/* A TLS connection closes: a handshake that never completed is logged with what is known. */
void http_tls_handshake_closed(struct http_server *s, struct http_track *t);
/* A connection is done with its credentials (NULL: none); retired ones nobody uses are freed. */
void http_tls_creds_release(struct http_server *s, struct tls_creds *c);
/* The client presented a certificate (verified in the handshake). */
bool http_tls_has_client_cert(struct http_server *s, struct MHD_Connection *mc);
/* GnuTLS credentials from PEM texts, as libmicrohttpd makes its own (trust may be NULL). */
int http_tls_creds_new(const char *cert, const char *key, const char *password, const char *trust,
                       const char *certfile, const char *keyfile, const char *cafile,
                       struct tls_creds **out, char *errmsg);
/* Logs the certificate's and CRL's expiry warnings that are due; loaded: files just read. */
void http_tls_expiry_check(struct http_server *s, bool loaded);
/* Frees what the TLS set functions gave the server. */
void http_tls_settings_free(struct http_server *s);

#endif
