/* Polls the other members' APIs (GET /status) from the loop, without blocking it (libcurl's multi
 * interface, http_client), and keeps what they said. */
#ifndef RAFTPG_PEERS_H
#define RAFTPG_PEERS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/err.h"
#include "raftpg/fsm.h"
#include "raftpg/http.h"

#include "raftpg/peer_book.h"
#include "raftpg/peer_status.h"

/* Each peer is asked on its own: an answer is kept as soon as it arrives, and a peer that does
 * not answer (its node gone) delays nobody else's news by its time-out (peer_book.h). */
struct peers {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct http_client client;
    struct peer_book book; /* targets, requests in flight, results */
    int open;              /* the timer and the client, until closed */
    bool closing;
    unsigned interval_ms;
    unsigned timeout_ms;
    void (*close_cb)(struct peers *p);
    void (*round_cb)(struct peers *p, void *data); /* after each answer kept, may be NULL */
    unsigned election_timeout_ms; /* for the round-trip warning (book.rtt_bound_ms is a sixth) */
    void *data;
};

/* Starts polling every interval_ms with a per-request timeout. */
int peers_start(struct peers *p, uv_loop_t *loop, unsigned interval_ms, unsigned timeout_ms,
                char *errmsg);

/* Asks every peer now (one still being asked: again at its answer), then every interval_ms. */
void peers_poll_now(struct peers *p);

/* The last known status of a peer by name, or NULL. */
const struct peer_status *peers_get(const struct peers *p, const char *name);

/* Reads one answer to GET /status (http status, body) into s: 0 and s->reachable, or -1 with
 * s->error naming what was wrong (a number out of range names its field). Pure. */
int peers_read_status(struct peer_status *s, int status, const char *body, size_t len);

/* Stops polling (requests in flight are dropped); cb fires once everything is closed. */
void peers_close(struct peers *p, void (*cb)(struct peers *p));

#endif
