/* The HTTP server's connections (http_server_int.h): one record per TCP connection from MHD's
 * start to its close, and the deadline by which each must deliver a complete request. Waiting
 * connections are kept in deadline order with one timer for the earliest; one past its deadline,
 * or the oldest waiting when max_conns is exceeded, is shut down (MHD then closes it). Split from
 * the request handling and the loop glue (http_server.c). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "http_server_int.h"

void http_track_unlist(struct http_server *s, struct http_track *t)
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
void http_track_wait(struct http_server *s, struct http_track *t)
{
    http_track_unlist(s, t);
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
    http_track_unlist(s, t);
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

void http_notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (s->tls_cert != NULL && s->client_cert != HTTP_CLIENT_CERT_NONE) {
            http_tls_ask_client_cert(s, mc);
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
            http_tls_watch_handshake(mc, t);
            http_tls_use_creds(s, mc, t);
        }
        s->n_conns++;
        http_track_wait(s, t);
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
        http_tls_handshake_closed(s, t);
    }
    http_tls_creds_release(s, t->creds);
    http_track_unlist(s, t);
    s->n_conns--;
    free(t);
}

struct http_track *http_track_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}
