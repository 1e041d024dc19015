/* The fence tick shared by the agent and the simulation (fence_step.h). */
#include "raftpg/fence_step.h"

#include <stdarg.h>
#include <stdio.h>

static void say(const struct fence_exec *x, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const struct fence_exec *x, enum log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->log(x->data, level, msg);
}

static bool judge_lease(const struct fence_timing *t, struct fence_memory *m,
                        const struct fence_world *w, const struct fence_exec *x)
{
    rpg_msec now = w->now;
    rpg_msec last_tick = m->clock.last_tick;
    bool gap = false;
    /* Without the lease (the simulation's --no-lease) leadership alone decides. */
    bool lease_ok = w->lease_disabled ? w->leader_ready
                                      : fence_lease_check(t, &m->clock, w->leader_ready,
                                                          w->lease_until, now, &gap);
    if (gap) {
        /* The loop (or the machine) stood still, and the clock may not have counted all of it. */
        if (w->leader_ready) {
            say(x, LOG_WARNING,
                "loop gap: no fence tick for %llu ms (bound %llu ms): the lease counts again "
                "once a barrier submitted from now commits",
                (unsigned long long)(now - last_tick), (unsigned long long)t->gap_ms);
            x->lease_renew_now(x->data);
        } else {
            say(x, LOG_INFO, "loop gap: no fence tick for %llu ms (bound %llu ms)",
                (unsigned long long)(now - last_tick), (unsigned long long)t->gap_ms);
        }
    }
    if (lease_ok != m->lease_ok) {
        /* Why a leader's lease ran out: a renewal that does not commit (slow followers or
         * disks) or none submitted (a stalled loop) call for different remedies. */
        char flight[96] = "";
        if (!lease_ok && w->leader_ready) {
            if (w->lease_pending) {
                snprintf(flight, sizeof flight, "; the last renewal has been in flight %llu ms",
                         (unsigned long long)(now - w->lease_submitted));
            } else {
                snprintf(flight, sizeof flight, "; no renewal in flight");
            }
        }
        say(x, LOG_INFO, "lease %s (until=%llu now=%llu%s)", lease_ok ? "held" : "lost",
            (unsigned long long)w->lease_until, (unsigned long long)now, flight);
        m->lease_ok = lease_ok;
    }
    return lease_ok;
}

static void act_pg(const struct fence_timing *t, struct fence_memory *m,
                   const struct fence_world *w, const struct fence_exec *x, enum fence_pg_act act,
                   bool lease_ok)
{
    rpg_msec now = w->now;
    switch (act) {
    case FENCE_PG_FREEZE: {
        m->frozen = true;
        m->frozen_at = now;
        m->n_freezes++;
        int n = x->pg_signal(x->data, act);
        say(x, LOG_WARNING,
            "%s (until=%llu now=%llu): postgresql paused, its sessions kept, until the lease is "
            "renewed or ends (pid=%d processes=%d)",
            fence_lease_trusted(t, w->lease_until, m->clock.gap_at)
                ? "lease ending"
                : "lease not trusted after a loop gap",
            (unsigned long long)w->lease_until, (unsigned long long)now, w->pid, n);
        break;
    }
    case FENCE_PG_THAW:
        x->pg_signal(x->data, act);
        m->frozen = false;
        say(x, LOG_INFO, "%s: postgresql resumed after %llu ms",
            lease_ok ? "lease renewed" : "postgresql gone",
            (unsigned long long)(now - m->frozen_at));
        break;
    case FENCE_PG_STOP:
    case FENCE_PG_KILL:
        if (act == FENCE_PG_STOP) {
            say(x, LOG_WARNING,
                "fencing: postgresql may accept writes without a lease: stopping it (pid=%d)",
                w->pid);
        } else {
            say(x, LOG_WARNING, "fencing during %s: killing %s (pid=%d)",
                w->op_name != NULL ? w->op_name : "an operation", x->pg_target(x->data), w->pid);
        }
        m->fencing = true;
        m->fence_started = now;
        m->escalated = act == FENCE_PG_KILL;
        m->n_fences++;
        /* The signal goes with SIGCONT: a stopped process acts on none until continued. */
        x->pg_signal(x->data, act);
        m->frozen = false;
        break;
    case FENCE_PG_ESCALATE:
        say(x, LOG_WARNING, "fencing: fast stop not done after %llu ms: immediate stop",
            (unsigned long long)(now - m->fence_started));
        x->pg_signal(x->data, act);
        m->escalated = true;
        break;
    case FENCE_PG_DONE:
        say(x, LOG_INFO, "fenced: postgresql stopped %llu ms after the fence began",
            (unsigned long long)(now - m->fence_started));
        m->fencing = false;
        break;
    case FENCE_PG_NONE: break;
    }
}

static void act_vip(struct fence_memory *m, const struct fence_world *w, const struct fence_exec *x,
                    enum fence_vip_act act)
{
    char errmsg[RPG_ERRMSG_SIZE] = "";
    switch (act) {
    case FENCE_VIP_RELEASE:
    case FENCE_VIP_STARTUP_RELEASE: {
        /* A release cuts a claim short (vip.h). The flags are set first: the executor may
         * report the cut claim's end at once. */
        bool cut = m->vip_claiming;
        m->vip_startup_done = true;
        m->vip_releasing = true;
        m->vip_claiming = false;
        if (x->vip(x->data, act, cut, errmsg) != 0) {
            m->vip_releasing = false;
            say(x, LOG_ERROR, "vip: %s", errmsg);
        }
        break;
    }
    case FENCE_VIP_CLAIM:
        m->vip_claiming = true;
        if (x->vip(x->data, act, false, errmsg) != 0) {
            m->vip_claiming = false;
            say(x, LOG_ERROR, "vip: %s", errmsg);
        }
        break;
    case FENCE_VIP_RETRY:
        m->vip_refused = false;
        x->vip(x->data, act, false, errmsg);
        break;
    case FENCE_VIP_PROBE:
        if (x->vip(x->data, act, false, errmsg) != 0) {
            say(x, LOG_ERROR, "vip: %s", errmsg);
        }
        break;
    case FENCE_VIP_RENEW:
        m->vip_renewed_at = w->now;
        if (x->vip(x->data, act, false, errmsg) != 0) {
            say(x, LOG_ERROR, "vip: %s", errmsg);
        }
        break;
    case FENCE_VIP_NONE: break;
    }
}

void fence_step(const struct fence_timing *t, struct fence_memory *m, const struct fence_world *w,
                const struct fence_exec *x, bool *unfenced)
{
    bool lease_ok = judge_lease(t, m, w, x);
    struct fence_in in = {
        .now = w->now,
        .lease_ok = lease_ok,
        .lease_lapsed = w->lease_disabled ? !w->leader_ready
                                          : fence_lease_lapsed(w->lease_until, w->now),
        .frozen = m->frozen,
        .writable = w->writable,
        .pg_busy = w->pg_busy,
        .postmaster = w->postmaster,
        .primary_running = w->primary_running,
        .recorded_primary = w->recorded_primary,
        .fencing = m->fencing,
        .target_gone = m->fencing && w->target_gone,
        .escalated = m->escalated,
        .fence_started = m->fence_started,
    };
    if (w->vip_open) {
        in.vip = (struct fence_vip){
            .open = true,
            .held = w->vip_held,
            .busy = w->vip_busy,
            .claiming = m->vip_claiming,
            .releasing = m->vip_releasing,
            .startup_done = m->vip_startup_done,
            .refused = m->vip_refused,
            .failed_at = m->vip_failed_at,
            .renewed_at = m->vip_renewed_at,
            .renew_ms = w->vip_renew_ms,
            .probe_due = w->vip_probe_due,
        };
    }
    struct fence_out out;
    fence_plan(t, &in, &out);
    if (w->lease_disabled &&
        (out.pg == FENCE_PG_STOP || out.pg == FENCE_PG_KILL || out.pg == FENCE_PG_FREEZE)) {
        out.pg = FENCE_PG_NONE;
    }
    act_pg(t, m, w, x, out.pg, lease_ok);
    x->watchdog(x->data, out.feed_watchdog, out.unfenced);
    *unfenced = out.unfenced;
    act_vip(m, w, x, out.vip);
}

void fence_vip_done(struct fence_memory *m, enum fence_vip_result r, bool busy, bool held,
                    rpg_msec now)
{
    if (r == FENCE_VIP_DONE_CANCELLED) {
        /* The release that cut it short reports its own end. */
        if (!m->vip_releasing) {
            m->vip_claiming = false;
        }
        return;
    }
    m->vip_claiming = false;
    if (!busy) {
        m->vip_releasing = false;
    }
    if (r == FENCE_VIP_DONE_FAILED) {
        m->vip_refused = true;
        m->vip_failed_at = now;
    } else {
        m->vip_refused = false;
        if (held) {
            m->vip_renewed_at = now;
        }
    }
}
