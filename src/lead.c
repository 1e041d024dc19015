/* The leader's gate and hand-over choice (lead.h). */
#include "raftpg/lead.h"

#include <stdio.h>
#include <string.h>

const struct peer_status *lead_peer(const struct peer_status *peers, unsigned n, const char *name)
{
    for (unsigned k = 0; name != NULL && k < n; k++) {
        if (strcmp(peers[k].name, name) == 0) {
            return &peers[k];
        }
    }
    return NULL;
}

static void member_report(const struct lead_in *in, const char *name, uint64_t id,
                          rpg_msec ready_since, struct fence_member_report *m)
{
    const struct peer_status *p = lead_peer(in->peers, in->n_peers, name);
    memset(m, 0, sizeof *m);
    if (p == NULL || !p->reachable || (id != 0 && p->id != id) || p->last_polled < ready_since) {
        return;
    }
    m->fresh = true;
    m->term = p->term;
    m->leads = strcmp(p->raft_role, "leader") == 0;
    m->server_quiet = !p->has_pg || p->pg_state == HA_PG_STOPPED || p->pg_state == HA_PG_ABSENT ||
                      (p->pg_state == HA_PG_RUNNING && p->pg_in_recovery);
}

bool lead_others_stood_down(const struct lead_in *in, rpg_msec ready_since)
{
    const struct cons *c = in->cons;
    uint64_t ids[FSM_MEMBERS_MAX];
    struct fence_member_report r[FSM_MEMBERS_MAX + 1];
    unsigned n = cons_config_ids(c, ids, FSM_MEMBERS_MAX);
    unsigned k = 0;
    const char *primary = c->state.primary.name;
    bool primary_seen = primary[0] == '\0' || strcmp(primary, in->self) == 0;
    for (unsigned i = 0; i < n && i < FSM_MEMBERS_MAX; i++) {
        if (ids[i] == c->id) {
            continue;
        }
        const char *name = cons_member_name(c, ids[i]);
        primary_seen = primary_seen || (name != NULL && strcmp(name, primary) == 0);
        member_report(in, name, ids[i], ready_since, &r[k++]);
    }
    if (!primary_seen) {
        member_report(in, primary, 0, ready_since, &r[k++]);
    }
    return fence_others_stood_down(r, k, c->term);
}

uint64_t lead_pick_voter(const struct cons *c, const struct peer_status *peers, unsigned n)
{
    uint64_t ids[FSM_MEMBERS_MAX];
    unsigned n_ids = cons_config_ids(c, ids, FSM_MEMBERS_MAX);
    for (unsigned i = 0; i < n_ids && i < FSM_MEMBERS_MAX; i++) {
        const struct peer_status *p = lead_peer(peers, n, cons_member_name(c, ids[i]));
        if (ids[i] != c->id && cons_voting(c, ids[i]) == RAFT_VOTER && p != NULL && p->reachable &&
            p->id == ids[i] && !p->storage_failed && !p->diverged) {
            return ids[i];
        }
    }
    return 0;
}

bool lead_gate(const struct fence_timing *t, struct lead_memory *m, const struct lead_in *in,
               bool *poll_now, void (*log)(void *data, enum log_level level, const char *msg),
               void *log_data)
{
    const struct cons *c = in->cons;
    char msg[512];
    bool ready = c->role == CONS_ROLE_LEADER && c->leader_ready;
    *poll_now = false;
    if (ready && m->ready_term != c->term) {
        m->ready_term = c->term;
        m->ready_since = in->now;
        *poll_now = true;
    }
    /* After a lapse, only a lease held steadily again (cons_lease_steady): a renewal that a
     * lossy link let through starts nothing that the next lapse would fence. */
    bool lease_ok = in->lease_ok && cons_lease_steady(c, in->now);
    bool waited = fence_may_lead(t, ready, lease_ok, c->last_heard_leader, c->started_at,
                                 in->watchdog_ms, in->now);
    /* Once every other member has answered in this term that it stood down, that stays true
     * for the term: none can lead or write again before a later term. Asked again each tick, a
     * member dying after the promotion made the new primary demote until the timed wait ended
     * (test_pg_refusals). */
    bool shown = !waited && ready && lease_ok &&
                 (m->early_term == c->term || lead_others_stood_down(in, m->ready_since));
    bool leader = (waited || shown) && in->watchdog_ok;
    if (shown && in->watchdog_ok && m->early_term != c->term) {
        m->early_term = c->term;
        snprintf(msg, sizeof msg,
                 "leader in term %llu: acting now: every other member answered that it is in this "
                 "term or later, does not lead and its server accepts no writes",
                 (unsigned long long)c->term);
        log(log_data, LOG_INFO, msg);
    }
    if (ready && !leader && m->wait_term != c->term) {
        rpg_msec from =
            fence_promote_not_before(t, c->last_heard_leader, c->started_at, in->watchdog_ms);
        m->wait_term = c->term;
        snprintf(msg, sizeof msg,
                 "leader in term %llu: acting as leader in %llu ms, once the previous leader's "
                 "lease and fence have surely ended%s",
                 (unsigned long long)c->term,
                 (unsigned long long)(from > in->now ? from - in->now : 0),
                 in->watchdog_ok ? "" : " and the watchdog works");
        log(log_data, LOG_INFO, msg);
    }
    return leader;
}
