/* The peer polls' bookkeeping (peer_book.h). */
#include "raftpg/peer_book.h"

#include <stdio.h>
#include <string.h>

void peer_book_set_targets(struct peer_book *b, const struct peer_status *targets, unsigned n)
{
    struct peer_status next[PEERS_MAX];
    if (n > PEERS_MAX) {
        n = PEERS_MAX;
    }
    for (unsigned i = 0; i < n; i++) {
        memset(&next[i], 0, sizeof next[i]);
        snprintf(next[i].name, sizeof next[i].name, "%s", targets[i].name);
        snprintf(next[i].api, sizeof next[i].api, "%s", targets[i].api);
        const struct peer_status *old = peer_book_get(b, targets[i].name);
        if (old != NULL && strcmp(old->api, targets[i].api) == 0) {
            next[i] = *old;
        }
    }
    memcpy(b->targets, next, n * sizeof next[0]);
    b->n_targets = n;
    memcpy(b->results, b->targets, n * sizeof next[0]);
    b->n_results = n;
}

bool peer_book_same_targets(const struct peer_book *b, const struct peer_status *targets,
                            unsigned n)
{
    bool same = n == b->n_targets;
    for (unsigned i = 0; same && i < n; i++) {
        same = strcmp(targets[i].name, b->targets[i].name) == 0 &&
               strcmp(targets[i].api, b->targets[i].api) == 0;
    }
    return same;
}

bool peer_book_update_targets(struct peer_book *b, const struct fsm_state *s, const char *self,
                              const struct peer_status *initial, unsigned n_initial)
{
    struct peer_status t[PEERS_MAX];
    unsigned n = 0;
    bool known = s != NULL && s->initialized;
    unsigned total = known ? s->n_members : n_initial;
    for (unsigned i = 0; i < total && n < PEERS_MAX; i++) {
        const char *name = known ? s->members[i].name : initial[i].name;
        if (strcmp(name, self) == 0) {
            continue;
        }
        memset(&t[n], 0, sizeof t[n]);
        snprintf(t[n].name, sizeof t[n].name, "%s", name);
        snprintf(t[n].api, sizeof t[n].api, "%s",
                 known ? s->members[i].api_address : initial[i].api);
        n++;
    }
    if (peer_book_same_targets(b, t, n)) {
        return false;
    }
    peer_book_set_targets(b, t, n);
    return true;
}

const struct peer_status *peer_book_get(const struct peer_book *b, const char *name)
{
    for (unsigned i = 0; name != NULL && i < b->n_results; i++) {
        if (strcmp(b->results[i].name, name) == 0) {
            return &b->results[i];
        }
    }
    return NULL;
}

static struct peer_call *in_flight(struct peer_book *b, const char *name)
{
    for (unsigned i = 0; i < sizeof b->calls / sizeof b->calls[0]; i++) {
        if (b->calls[i].busy && strcmp(b->calls[i].status.name, name) == 0) {
            return &b->calls[i];
        }
    }
    return NULL;
}

struct peer_call *peer_book_ask(struct peer_book *b, const struct peer_status *target, bool again,
                                rpg_msec now)
{
    struct peer_call *c = in_flight(b, target->name);
    if (c != NULL) {
        c->again = c->again || again;
        return NULL;
    }
    for (unsigned i = 0; i < sizeof b->calls / sizeof b->calls[0] && c == NULL; i++) {
        if (!b->calls[i].busy) {
            c = &b->calls[i];
        }
    }
    if (c == NULL) {
        return NULL;
    }
    c->busy = true;
    c->again = false;
    c->started = now;
    c->status = *target;
    return c;
}

bool peer_rtt_judge(rpg_msec min, rpg_msec bound, bool was_slow)
{
    return was_slow ? min >= bound / 2 : min > bound;
}

bool peer_book_answer(struct peer_book *b, struct peer_call *c, rpg_msec now,
                      struct peer_status *next)
{
    c->busy = false;
    c->rtt_changed = false;
    for (unsigned j = 0; j < b->n_targets; j++) {
        struct peer_status *t = &b->targets[j];
        if (strcmp(t->name, c->status.name) != 0 || strcmp(t->api, c->status.api) != 0) {
            continue;
        }
        rpg_msec seen = t->last_seen;
        /* The samples are the book's: the executor's answer does not carry them. */
        rpg_msec samples[PEER_RTT_SAMPLES];
        memcpy(samples, t->rtt_samples, sizeof samples);
        unsigned n = t->rtt_n;
        bool was_slow = t->rtt_slow;
        *t = c->status;
        memcpy(t->rtt_samples, samples, sizeof samples);
        t->rtt_n = n;
        t->rtt_slow = was_slow;
        if (c->status.reachable) {
            t->rtt_samples[t->rtt_n % PEER_RTT_SAMPLES] = now - c->started;
            t->rtt_n++;
            unsigned held = t->rtt_n < PEER_RTT_SAMPLES ? t->rtt_n : PEER_RTT_SAMPLES;
            t->rtt_min_ms = t->rtt_samples[0];
            for (unsigned k = 1; k < held; k++) {
                t->rtt_min_ms = t->rtt_samples[k] < t->rtt_min_ms ? t->rtt_samples[k]
                                                                  : t->rtt_min_ms;
            }
            if (b->rtt_bound_ms > 0) {
                t->rtt_slow = peer_rtt_judge(t->rtt_min_ms, b->rtt_bound_ms, was_slow);
                c->rtt_changed = t->rtt_slow != was_slow;
            }
        }
        t->last_seen = c->status.reachable ? now : seen;
        /* An answer says what the peer was when asked; a failure, that it did not answer until
         * now: a leader counts either only when it came after it began to lead, and a request
         * that started before and timed out after is as good as a new one (which would only
         * wait for its own time-out). */
        t->last_polled = c->status.reachable ? c->started : now;
        b->results[j] = *t;
    }
    if (!c->again) {
        return false;
    }
    c->again = false;
    for (unsigned j = 0; j < b->n_targets; j++) {
        if (strcmp(b->targets[j].name, c->status.name) == 0) {
            *next = b->targets[j];
            return true;
        }
    }
    return false;
}
