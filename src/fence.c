#include "raftpg/fence.h"

void fence_timing_init(struct fence_timing *t, unsigned election_timeout_ms)
{
    rpg_msec et = election_timeout_ms;
    t->lease_ms = et * 8 / 10;
    t->renew_ms = et / 4 > 0 ? et / 4 : 1;
    t->margin_ms = et * 2 / 10 > 0 ? et * 2 / 10 : 1;
    t->hard_ms = et / 4 > 0 ? et / 4 : 1;
    t->escalate_ms = t->margin_ms / 2 > 0 ? t->margin_ms / 2 : 1;
    t->gap_ms = et / 2 > 0 ? et / 2 : 1;
    t->echo_wait_ms = et / 2 > 0 ? et / 2 : 1;
    t->steady_ms = et > 0 ? et : 1;
    t->flap_window_ms = FENCE_FLAP_WINDOW_ET * t->steady_ms;
}

void fence_flap_note(struct fence_flap *f, bool leader_ready, rpg_msec lease_until, rpg_msec now)
{
    if (!leader_ready) {
        f->leading = false;
        f->lapsed = false;
        return;
    }
    bool lapsed = fence_lease_lapsed(lease_until, now);
    if (lapsed && !f->lapsed) {
        f->prev_lapse = f->last_lapse;
        f->last_lapse = now;
        f->n_lapses++;
    }
    if (!f->leading) {
        f->lead_since = now;
    }
    if (!lapsed && (f->lapsed || !f->leading)) {
        f->held_since = now;
    }
    f->leading = true;
    f->lapsed = lapsed;
}

bool fence_flap_tick(const struct fence_timing *t, struct fence_flap *f, bool leader_ready,
                     rpg_msec now)
{
    /* Only with the lease held again: no other leader exists then, so the target is in this
     * term (a leader that resumed stale would ask a node of a later term to stand, and libraft
     * 0.15 lets a transfer skip vote refusal); a leader that never renews is stepped down by
     * libraft and needs no hand-over. */
    bool repeated = f->prev_lapse != 0 && f->last_lapse >= f->lead_since &&
                    f->last_lapse - f->prev_lapse <= t->flap_window_ms &&
                    now - f->last_lapse <= t->flap_window_ms;
    bool due = f->handed_at < f->last_lapse || now - f->handed_at >= t->steady_ms;
    if (!leader_ready || !f->leading || f->lapsed || !repeated || !due) {
        return false;
    }
    f->handed_at = now;
    f->n_handovers++;
    return true;
}

bool fence_flap_steady(const struct fence_timing *t, const struct fence_flap *f, rpg_msec now)
{
    if (f->last_lapse == 0 || now - f->last_lapse > t->flap_window_ms) {
        return true;
    }
    return f->leading && !f->lapsed && now - f->held_since >= t->steady_ms;
}

enum fence_echo fence_echo_decide(const struct fence_echo_view *v, uint64_t leader_id,
                                  uint64_t term, rpg_msec arrived, rpg_msec now, rpg_msec wait_ms)
{
    if (v->follower && v->term == term && leader_id != 0 && v->leader_id == leader_id &&
        v->timer_start > arrived) {
        return FENCE_ECHO_YES;
    }
    if (v->term > term || now >= arrived + wait_ms) {
        return FENCE_ECHO_NO;
    }
    return FENCE_ECHO_WAIT;
}

bool fence_loop_gap(const struct fence_timing *t, rpg_msec last_tick, rpg_msec now)
{
    return last_tick != 0 && now > last_tick && now - last_tick > t->gap_ms;
}

bool fence_lease_trusted(const struct fence_timing *t, rpg_msec lease_until, rpg_msec gap_at)
{
    return gap_at == 0 || lease_until >= gap_at + t->lease_ms;
}

bool fence_lease_ok(const struct fence_timing *t, bool leader_ready, rpg_msec lease_until,
                    rpg_msec now)
{
    return leader_ready && lease_until > now + t->margin_ms;
}

bool fence_lease_check(const struct fence_timing *t, struct fence_clock *k, bool leader_ready,
                       rpg_msec lease_until, rpg_msec now, bool *gap)
{
    *gap = fence_loop_gap(t, k->last_tick, now);
    if (*gap) {
        k->gap_at = now;
        k->n_gaps++;
    }
    k->last_tick = now;
    return fence_lease_ok(t, leader_ready, lease_until, now) &&
           fence_lease_trusted(t, lease_until, k->gap_at);
}

bool fence_lease_lapsed(rpg_msec lease_until, rpg_msec now)
{
    return now >= lease_until;
}

void fence_plan(const struct fence_timing *t, const struct fence_in *in, struct fence_out *out)
{
    out->pg = FENCE_PG_NONE;
    out->vip = FENCE_VIP_NONE;
    bool fencing = in->fencing;
    /* Between the soft and the hard layer no other node can lead yet: a stall of this agent or of
     * the network that ends here costs the clients a pause, never their sessions. */
    bool soft = !in->lease_ok && !in->lease_lapsed;
    if (in->frozen && (in->lease_ok || !in->postmaster)) {
        out->pg = FENCE_PG_THAW;
    } else if (in->writable && !in->lease_ok && !fencing && in->postmaster) {
        if (!soft) {
            out->pg = in->pg_busy ? FENCE_PG_KILL : FENCE_PG_STOP;
            fencing = true;
        } else if (!in->frozen) {
            out->pg = FENCE_PG_FREEZE;
        }
    } else if (fencing && in->target_gone) {
        out->pg = FENCE_PG_DONE;
        fencing = false;
    } else if (fencing && !in->escalated && in->now - in->fence_started >= t->escalate_ms) {
        out->pg = FENCE_PG_ESCALATE;
    }
    out->feed_watchdog = in->writable && in->lease_ok;
    const struct fence_vip *v = &in->vip;
    out->unfenced = in->writable || (v->open && (v->held || v->busy));
    /* The server's last observation can be older than a stop the fence saw finish (a machine
     * frozen with its clocks between the two, then resumed): the postmaster is asked directly
     * (raftpg_sim --seed 798267588073 --nodes 3 --faults all --watchdog --keep 0,1,2). */
    bool primary = in->primary_running && in->postmaster;
    out->want_vip = in->lease_ok && !fencing && primary && in->recorded_primary;
    if (!v->open) {
        return;
    }
    bool want = out->want_vip;
    /* The soft layer keeps the address (no successor can claim it yet), without renewing it. */
    bool keep = want || (soft && !fencing && primary && in->recorded_primary);
    if (!keep && (v->held || v->claiming) && !v->releasing) {
        out->vip = FENCE_VIP_RELEASE; /* a fence never waits for a claim to finish */
    } else if (v->busy) {
        return;
    } else if (!v->startup_done) {
        out->vip = FENCE_VIP_STARTUP_RELEASE;
    } else if (want && !v->held && !v->refused) {
        out->vip = FENCE_VIP_CLAIM;
    } else if (want && !v->held && in->now - v->failed_at > FENCE_VIP_RETRY_MS) {
        out->vip = FENCE_VIP_RETRY;
    } else if (want && v->held && in->now - v->renewed_at >= v->renew_ms) {
        /* Only under a valid lease: an agent that dies or hangs stops renewing, and the kernel
         * drops the address within its lifetime. */
        out->vip = FENCE_VIP_RENEW;
    } else if (v->probe_due && !v->held && !v->refused && in->lease_ok && !fencing &&
               in->recorded_primary && !in->primary_running) {
        /* A promotion is near: this node is recorded as primary and acts as leader under its
         * lease, the previous leader's lease and fence surely over (probe_due). The probe sends
         * only ARP requests from 0.0.0.0; the address is added once the server is primary. */
        out->vip = FENCE_VIP_PROBE;
    }
}

rpg_msec fence_promote_not_before(const struct fence_timing *t, rpg_msec last_heard_leader,
                                  rpg_msec started_at, rpg_msec watchdog_ms)
{
    rpg_msec from = last_heard_leader != 0 ? last_heard_leader : started_at;
    return from + t->lease_ms + t->margin_ms + t->hard_ms + watchdog_ms;
}

bool fence_may_lead(const struct fence_timing *t, bool leader_ready, bool lease_ok,
                    rpg_msec last_heard_leader, rpg_msec started_at, rpg_msec watchdog_ms,
                    rpg_msec now)
{
    return leader_ready && lease_ok &&
           now >= fence_promote_not_before(t, last_heard_leader, started_at, watchdog_ms);
}

bool fence_others_stood_down(const struct fence_member_report *r, unsigned n, uint64_t term)
{
    if (n == 0) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!r[i].fresh || r[i].term < term || r[i].leads || !r[i].server_quiet) {
            return false;
        }
    }
    return true;
}

bool fence_pg_writable(bool postmaster, bool promoting, bool observed_primary, bool standby_signal)
{
    if (!postmaster) {
        return false;
    }
    return promoting || observed_primary || !standby_signal;
}
