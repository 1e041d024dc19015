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

#include "raftpg/peer_status.h"

/* Each peer is asked on its own: an answer is kept as soon as it arrives, and a peer that does
 * not answer (its node gone) delays nobody else's news by its time-out. */
struct peers {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct http_client client;
    /* Requests in flight, one per peer at most; twice the peers, as a request to a peer that was
     * dropped from the targets still runs until its answer or its time-out. */
    struct peer_call {
        struct peers *p;
        bool busy;
        bool again;                /* peers_poll_now while in flight: ask again at the answer */
        struct peer_status status; /* the target as it was when asked, then its answer */
    } calls[2 * PEERS_MAX];
    int open;              /* the timer and the client, until closed */
    bool closing;
    unsigned interval_ms;
    unsigned timeout_ms;
    unsigned n_targets;
    struct peer_status targets[PEERS_MAX];
    unsigned n_results;
    struct peer_status results[PEERS_MAX];
    void (*close_cb)(struct peers *p);
    void (*round_cb)(struct peers *p, void *data); /* after each answer kept, may be NULL */
    void *data;
};

/* Starts polling every interval_ms with a per-request timeout. */
int peers_start(struct peers *p, uv_loop_t *loop, unsigned interval_ms, unsigned timeout_ms,
                char *errmsg);

/* Replaces the set of peers to poll (name and API address are copied). */
void peers_set_targets(struct peers *p, const struct peer_status *targets, unsigned n);

/* Asks every peer now (one still being asked: again at its answer), then every interval_ms. */
void peers_poll_now(struct peers *p);

/* The last known status of a peer by name, or NULL. */
const struct peer_status *peers_get(const struct peers *p, const char *name);

/* Stops polling (requests in flight are dropped); cb fires once everything is closed. */
void peers_close(struct peers *p, void (*cb)(struct peers *p));

#endif
