/* The leader lease (fence.h): the lease renewed by barriers and by the echo of a majority of
 * voters, its statistics, and the leader stepping aside, when its lease lapses again soon after
 * a lapse (flap) or when its own disk holds a write past the bound (storage.h). */
#include <stdio.h>
#include <string.h>

#include "raftpg/cons.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/storage.h"

#include "cons_int.h"

/* ---- the lease ----------------------------------------------------------------------------- */

const unsigned cons_lease_bucket_ms[CONS_LEASE_BUCKETS] = {1,   2,   5,   10,  20,  50,
                                                           100, 150, 200, 300, 500, 1000};

/* fence.h's lease_ms: 0.8 ET, the margin covering clock-rate drift and the loop's granularity. */
rpg_msec cons_lease_length(const struct cons *c)
{
    struct fence_timing t;
    fence_timing_init(&t, c->params.election_timeout_ms);
    return t.lease_ms;
}

/* Rolls the recent-maximum windows forward to now (read-only callers roll a copy). */
static void lease_max_roll(rpg_msec *max_ms, rpg_msec *prev_max_ms, rpg_msec *start, rpg_msec now)
{
    if (now - *start < CONS_LEASE_MAX_WINDOW_MS) {
        return;
    }
    /* A window with nothing in it leaves nothing to carry over either. */
    *prev_max_ms = now - *start < 2 * CONS_LEASE_MAX_WINDOW_MS ? *max_ms : 0;
    *max_ms = 0;
    *start = now;
}

/* How long the barrier submitted at submitted took to commit: how close a renewal came to the
 * end of the lease (renewed every ET/4, the lease lasts 0.8 ET). */
static void lease_record(struct cons *c, rpg_msec submitted)
{
    rpg_msec now = c->host.now(c);
    rpg_msec took = now > submitted ? now - submitted : 0;
    unsigned i = 0;
    while (i < CONS_LEASE_BUCKETS && took > cons_lease_bucket_ms[i]) {
        i++;
    }
    c->lease_stats.bucket[i]++;
    c->lease_stats.count++;
    c->lease_stats.sum_ms += took;
    if (c->lease_stats.window_start == 0) {
        c->lease_stats.window_start = now;
    }
    lease_max_roll(&c->lease_stats.max_ms, &c->lease_stats.prev_max_ms,
                   &c->lease_stats.window_start, now);
    if (took > c->lease_stats.max_ms) {
        c->lease_stats.max_ms = took;
    }
}

rpg_msec cons_lease_renewal_max(const struct cons *c, rpg_msec now)
{
    rpg_msec max_ms = c->lease_stats.max_ms, prev = c->lease_stats.prev_max_ms;
    rpg_msec start = c->lease_stats.window_start;
    if (start == 0) {
        return 0;
    }
    lease_max_roll(&max_ms, &prev, &start, now);
    return max_ms > prev ? max_ms : prev;
}

/* A renewal: the lease ends no earlier than until. */
static void lease_extend(struct cons *c, rpg_msec until)
{
    if (until > c->lease_until) {
        c->lease_until = until;
    }
}

static void lease_cb(struct raft_barrier *req, int status)
{
    struct cons_req *q = req->data;
    struct cons *c = q->c;
    bool current = cons_req_current(q);
    rpg_msec submitted = q->submitted;
    raft_term term = q->term;
    cons_req_free(q);
    if (!current) {
        return;
    }
    c->lease_pending = false;
    cons_storage_raft_result(c, status, "lease barrier");
    if (status != 0 || !cons_live(c) || raft_state(c->raft) != RAFT_LEADER ||
        c->raft->current_term != term || term != c->lease_term) {
        return;
    }
    lease_record(c, submitted);
    c->lease_stats.via_barrier++;
    lease_extend(c, submitted + cons_lease_length(c));
}

static void lease_submit(struct cons *c)
{
    struct cons_req *q = cons_req_new(c, REQ_LEASE);
    if (q == NULL) {
        return;
    }
    q->submitted = c->host.now(c);
    q->term = c->raft->current_term;
    c->lease_term = q->term;
    int rv = raft_barrier(c->raft, &q->u.barrier, lease_cb);
    if (rv == 0) {
        c->lease_submitted = q->submitted;
        c->lease_pending = true;
    } else {
        cons_req_free(q);
        /* A write refused at once (raft_uv cannot prepare a segment) is a storage failure too. */
        cons_storage_raft_refused(c, rv, "lease barrier");
    }
}

void cons_lease_renew(struct cons *c)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready ||
        c->lease_pending) {
        return;
    }
    lease_submit(c);
}

void cons_lease_renew_now(struct cons *c)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
        return;
    }
    /* A barrier still pending was submitted before now and cannot vouch for the time after it;
     * both may be in flight, each extends the lease only forward. */
    if (c->lease_pending && c->lease_submitted >= c->host.now(c)) {
        return;
    }
    lease_submit(c);
}

/* ---- the lease echo (fence.h fence_echo_decide) -------------------------------------------- */

bool cons_echo_begin(struct cons *c, uint64_t *seq, raft_term *term)
{
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready ||
        c->raft->current_term != c->lease_term) {
        return false;
    }
    struct cons_echo_probe *p = &c->echo.probes[++c->echo.seq % CONS_ECHO_PROBES];
    memset(p, 0, sizeof *p);
    p->seq = c->echo.seq;
    p->term = c->raft->current_term;
    p->sent = c->host.now(c);
    *seq = p->seq;
    *term = p->term;
    return true;
}

void cons_echo_yes(struct cons *c, uint64_t id, uint64_t seq)
{
    struct cons_echo_probe *p = &c->echo.probes[seq % CONS_ECHO_PROBES];
    if (seq == 0 || p->seq != seq || p->granted || !cons_live(c) ||
        raft_state(c->raft) != RAFT_LEADER || !c->leader_ready ||
        c->raft->current_term != p->term || p->term != c->lease_term || id == c->id) {
        return;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    unsigned voters = 0, yes = 0;
    bool counted = false;
    for (unsigned i = 0; i < p->n_yes; i++) {
        counted = counted || p->yes[i] == id;
    }
    if (!counted && p->n_yes < FSM_MEMBERS_MAX) {
        p->yes[p->n_yes++] = id;
    }
    /* The configuration now, not at the probe: single-server changes keep every majority of the
     * old and the new configuration overlapping. */
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].role != RAFT_VOTER) {
            continue;
        }
        voters++;
        bool said = rc->servers[i].id == c->id;
        for (unsigned k = 0; !said && k < p->n_yes; k++) {
            said = p->yes[k] == rc->servers[i].id;
        }
        yes += said;
    }
    if (voters == 0 || yes <= voters / 2) {
        return;
    }
    p->granted = true;
    c->lease_stats.via_echo++;
    lease_extend(c, p->sent + cons_lease_length(c));
}

unsigned cons_echo_targets(const struct cons *c, uint64_t *ids, unsigned max)
{
    unsigned n = 0;
    if (!cons_live(c)) {
        return 0;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n && n < max; i++) {
        if (rc->servers[i].role == RAFT_VOTER && rc->servers[i].id != c->id) {
            ids[n++] = rc->servers[i].id;
        }
    }
    return n;
}

rpg_msec cons_echo_clock(const struct cons *c)
{
    return c->raft != NULL ? (rpg_msec)c->raft->io->time(c->raft->io) : 0;
}

enum fence_echo cons_echo_answer(const struct cons *c, uint64_t leader_id, raft_term term,
                                 rpg_msec arrived, rpg_msec wait_ms)
{
    if (!cons_live(c)) {
        return FENCE_ECHO_NO;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(c->raft, &lid, &laddr);
    struct fence_echo_view v = {
        .follower = raft_state(c->raft) == RAFT_FOLLOWER,
        .term = c->raft->current_term,
        .leader_id = lid,
        /* libraft's own clock (raft_io time), the one the probe's arrival is marked on. */
        .timer_start = (rpg_msec)c->raft->election_timer_start,
    };
    return fence_echo_decide(&v, leader_id, term, arrived, cons_echo_clock(c), wait_ms);
}

/* fence_flap_tick: a leader whose lease lapses again within the window hands leadership to a
 * healthy voter (lead_pick_voter, through the host) instead of starting its server between two
 * lapses. */
static bool flap_leading(const struct cons *c)
{
    return cons_live(c) && raft_state(c->raft) == RAFT_LEADER && c->role == CONS_ROLE_LEADER &&
           c->leader_ready;
}

static void flap_tick(struct cons *c)
{
    struct fence_timing t;
    fence_timing_init(&t, c->params.election_timeout_ms);
    rpg_msec now = c->host.now(c);
    if (!fence_flap_tick(&t, &c->flap, flap_leading(c), now)) {
        return;
    }
    uint64_t id = c->host.pick_voter != NULL ? c->host.pick_voter(c, c->host.data) : 0;
    int rv = c->transfer_pending ? 0 : cons_start_transfer(c, id);
    if (rv != 0 && c->flap_refused_lapse == c->flap.last_lapse) {
        return; /* tried again every ET (a single voter has none to hand to): said once */
    }
    c->flap_refused_lapse = rv != 0 ? c->flap.last_lapse : 0;
    log_error("leader steps aside: its lease lapsed again %llu ms after the previous lapse "
              "(lapses within %llu ms hand over); handing leadership to %s%s%s",
              (unsigned long long)(c->flap.last_lapse - c->flap.prev_lapse),
              (unsigned long long)t.flap_window_ms,
              id != 0 ? cons_member_name_by_id(c, id) : "the most up-to-date voter",
              rv != 0 ? ": transfer refused: " : "", rv != 0 ? raft_strerror(rv) : "");
}

bool cons_lease_steady(const struct cons *c, rpg_msec now)
{
    struct fence_timing t;
    fence_timing_init(&t, c->params.election_timeout_ms);
    return fence_flap_steady(&t, &c->flap, now);
}

void cons_storage_tick(struct cons *c)
{
    flap_tick(c);
    if (!cons_live(c) || raft_state(c->raft) != RAFT_LEADER) {
        return;
    }
    rpg_msec now = c->host.now(c);
    rpg_msec last = c->storage_tick_at;
    c->storage_tick_at = now;
    if (last != 0 && now > last && now - last > c->params.election_timeout_ms) {
        /* The loop stood still (SIGSTOP, a stalled VM): no write could be confirmed meanwhile,
         * and the host's fence must judge the lease before this member acts on anything. The
         * bound counts again from now. */
        c->storage_stall_end = now;
        return;
    }
    rpg_msec confirmed = c->write_confirmed > c->storage_stall_end ? c->write_confirmed
                                                                   : c->storage_stall_end;
    /* Stuck on its own disk means a log write of its own held that long: with none held (or the
     * oldest held one younger), commits wait on the followers' disks or links, and another
     * leader would wait on the same ones (libraft steps down one cut off from its majority). */
    rpg_msec own = c->wal.n_pending == 0 ? now : c->wal.pending[0].at;
    confirmed = own > confirmed ? own : confirmed;
    enum storage_leader_action act = storage_leader_decide(c->storage.failed || c->diverged, now,
                                                           confirmed, c->stepdown_transfer_at,
                                                           c->params.election_timeout_ms);
    const char *why = c->diverged         ? "its replicated state differs from the other members'"
                      : c->storage.failed ? c->storage.error
                                          : "a raft log write of its own is still pending";
    if (act == STORAGE_LEADER_TRANSFER) {
        c->stepdown_transfer_at = now;
        c->n_stepdowns++;
        uint64_t id = c->host.pick_voter != NULL ? c->host.pick_voter(c, c->host.data) : 0;
        int rv = c->transfer_pending ? 0 : cons_start_transfer(c, id);
        log_error("leader steps aside: %s (no write confirmed for %llu ms); handing leadership "
                  "to %s%s%s",
                  why, (unsigned long long)(now - confirmed),
                  id != 0 ? cons_member_name_by_id(c, id) : "the most up-to-date voter",
                  rv != 0 ? ": transfer refused: " : "", rv != 0 ? raft_strerror(rv) : "");
    } else if (act == STORAGE_LEADER_EXIT && !c->failed) {
        c->failed = true;
        rpg_err(c->error, RPG_EIO,
                "leaving the raft group: still leader %llu ms after handing leadership over, "
                "and %s; the other members elect a leader once this agent is gone (dir=%s)",
                (unsigned long long)(now - c->stepdown_transfer_at), why,
                c->storage.dir != NULL ? c->storage.dir : "?");
        cons_changed(c);
    }
}

rpg_msec cons_lease_until(const struct cons *c)
{
    return cons_live(c) && c->role == CONS_ROLE_LEADER && c->leader_ready ? c->lease_until : 0;
}

rpg_msec cons_lease_fence(struct cons *c, rpg_msec now)
{
    rpg_msec until = cons_lease_until(c);
    fence_flap_note(&c->flap, flap_leading(c), until, now);
    return until;
}
