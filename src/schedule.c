/* Scheduled switchovers (schedule.h). */
#include "raftpg/schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

/* ---- time ------------------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p into *v; false if they are not there. */
static bool digits(const char **p, int n, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return false;
        }
        *v = *v * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    return true;
}

int schedule_parse_time(const char *text, bool local, int64_t *ms, char *errmsg)
{
    const char *p = text;
    unsigned y, mo, d, h, mi, s = 0, frac_ms = 0;
    const char *what = "a date YYYY-MM-DD";
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d)) {
        goto bad;
    }
    what = "T or a space, then a time HH:MM";
    if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, !digits(&p, 2, &h)) || *p++ != ':' ||
        !digits(&p, 2, &mi)) {
        goto bad;
    }
    if (*p == ':') {
        p++;
        what = "seconds SS";
        if (!digits(&p, 2, &s)) {
            goto bad;
        }
        if (*p == '.' || *p == ',') {
            p++;
            what = "a fraction of a second";
            if (!isdigit((unsigned char)*p)) {
                goto bad;
            }
            for (unsigned scale = 100; isdigit((unsigned char)*p); p++, scale /= 10) {
                frac_ms += (unsigned)(*p - '0') * scale;
            }
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59) {
        return rpg_err(errmsg, RPG_EINVAL, "\"%.64s\": no such date or time", text);
    }
    int64_t offset_s = 0;
    bool zone = true;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        unsigned oh, om = 0;
        what = "a zone +HH, +HHMM or +HH:MM";
        if (!digits(&p, 2, &oh)) {
            goto bad;
        }
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &om)) {
                goto bad;
            }
        } else if (isdigit((unsigned char)*p) && !digits(&p, 2, &om)) {
            goto bad;
        }
        if (oh > 23 || om > 59) {
            return rpg_err(errmsg, RPG_EINVAL, "\"%.64s\": zone offset out of range", text);
        }
        offset_s = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
        zone = false;
    }
    if (*p != '\0') {
        what = "the end after the time zone";
        goto bad;
    }
    if (!zone && !local) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "\"%.64s\": a time zone is required (Z, or an offset such as +01:00)", text);
    }
    if (!zone) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        tm.tm_year = (int)y - 1900;
        tm.tm_mon = (int)mo - 1;
        tm.tm_mday = (int)d;
        tm.tm_hour = (int)h;
        tm.tm_min = (int)mi;
        tm.tm_sec = (int)s;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t == (time_t)-1) {
            return rpg_err(errmsg, RPG_EINVAL, "\"%.64s\": not a local time", text);
        }
        *ms = (int64_t)t * 1000 + frac_ms;
        return 0;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_s;
    *ms = secs * 1000 + frac_ms;
    return 0;
bad:
    return rpg_err(errmsg, RPG_EINVAL,
                   "\"%.64s\": expected ISO 8601 (e.g. 2026-01-14T10:09:57+00:00): %s at "
                   "character %d",
                   text, what, (int)(p - text) + 1);
}

void schedule_format_time(int64_t ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, size, "%lld", (long long)ms);
        return;
    }
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03d+00:00", base, (int)(ms - (int64_t)secs * 1000));
}

/* ---- decision -------------------------------------------------------------------------------- */

const char *schedule_verdict_name(enum schedule_verdict v)
{
    switch (v) {
    case SCHEDULE_NONE: return "none";
    case SCHEDULE_WAIT: return "wait";
    case SCHEDULE_RUN: return "run";
    case SCHEDULE_DROP_STALE: return "drop: stale";
    case SCHEDULE_DROP_LEADER: return "drop: leader does not match";
    case SCHEDULE_DROP_ALREADY: return "drop: candidate already primary";
    case SCHEDULE_DROP_RESTARTED: return "drop: restarted since";
    }
    return "unknown";
}

static enum schedule_verdict decide(const struct fsm_switchover *w, const struct fsm_state *s,
                                    int64_t now_ms, char *why, size_t why_size)
{
    char at[48];
    if (w->at_ms == 0) {
        snprintf(why, why_size, "no switchover is scheduled");
        return SCHEDULE_NONE;
    }
    schedule_format_time(w->at_ms, at, sizeof at);
    if (s->paused) {
        /* Patroni leaves a schedule alone while paused; the stale rule below applies after. */
        snprintf(why, why_size, "maintenance mode: the switchover at %s waits", at);
        return SCHEDULE_WAIT;
    }
    if (now_ms < w->at_ms) {
        snprintf(why, why_size, "the switchover is scheduled at %s, in %lld ms", at,
                 (long long)(w->at_ms - now_ms));
        return SCHEDULE_WAIT;
    }
    if (now_ms - w->at_ms > SCHEDULE_STALE_MS) {
        snprintf(why, why_size,
                 "the switchover scheduled at %s is stale (%lld ms late, more than %d): dropped",
                 at, (long long)(now_ms - w->at_ms), SCHEDULE_STALE_MS);
        return SCHEDULE_DROP_STALE;
    }
    if (w->from[0] != '\0' && strncmp(w->from, s->primary.name, FSM_NAME_MAX) != 0) {
        snprintf(why, why_size,
                 "the switchover scheduled at %s is from %s, which is not the primary (%s is): "
                 "dropped",
                 at, w->from, s->primary.name[0] != '\0' ? s->primary.name : "none");
        return SCHEDULE_DROP_LEADER;
    }
    if (w->to[0] != '\0' && strncmp(w->to, s->primary.name, FSM_NAME_MAX) == 0) {
        snprintf(why, why_size,
                 "the switchover scheduled at %s is to %s, which is the primary already: dropped",
                 at, w->to);
        return SCHEDULE_DROP_ALREADY;
    }
    snprintf(why, why_size, "the switchover scheduled at %s is due", at);
    return SCHEDULE_RUN;
}

enum schedule_verdict schedule_decide(const struct fsm_state *s, int64_t now_ms, char *why,
                                      size_t why_size)
{
    return decide(&s->switchover, s, now_ms, why, why_size);
}

enum schedule_verdict schedule_retry_decide(const struct fsm_switchover *due,
                                            const struct fsm_state *s, bool leading, bool settled,
                                            int64_t now_ms, char *why, size_t why_size)
{
    char at[48];
    schedule_format_time(due->at_ms, at, sizeof at);
    if (!leading) {
        snprintf(why, why_size,
                 "the switchover scheduled at %s: this member no longer leads: dropped", at);
        return SCHEDULE_DROP_LEADER;
    }
    enum schedule_verdict v = decide(due, s, now_ms, why, why_size);
    if (v == SCHEDULE_RUN && !settled) {
        snprintf(why, why_size,
                 "the switchover scheduled at %s is due: waiting for this member to run as a "
                 "settled primary",
                 at);
        return SCHEDULE_WAIT;
    }
    return v;
}

bool schedule_retry_refusal(int status)
{
    return status == 503;
}

enum schedule_verdict restart_schedule_decide(const struct restart_schedule *r, int64_t now_ms,
                                              bool paused, const char *start_time, char *why,
                                              size_t why_size)
{
    char at[48];
    if (r->at_ms == 0) {
        snprintf(why, why_size, "no restart is scheduled");
        return SCHEDULE_NONE;
    }
    schedule_format_time(r->at_ms, at, sizeof at);
    /* Patroni's check comes first: a restart since makes the schedule moot, paused or not. */
    if (r->start_time[0] != '\0' && start_time[0] != '\0' &&
        strcmp(r->start_time, start_time) != 0) {
        snprintf(why, why_size,
                 "the restart scheduled at %s is moot: postgresql was started again at %s since "
                 "(it ran since %s when scheduled): dropped",
                 at, start_time, r->start_time);
        return SCHEDULE_DROP_RESTARTED;
    }
    if (paused) {
        snprintf(why, why_size, "maintenance mode: the restart at %s waits", at);
        return SCHEDULE_WAIT;
    }
    if (now_ms < r->at_ms) {
        snprintf(why, why_size, "the restart is scheduled at %s, in %lld ms", at,
                 (long long)(r->at_ms - now_ms));
        return SCHEDULE_WAIT;
    }
    if (now_ms - r->at_ms > SCHEDULE_STALE_MS) {
        snprintf(why, why_size,
                 "the restart scheduled at %s is stale (%lld ms late, more than %d): dropped", at,
                 (long long)(now_ms - r->at_ms), SCHEDULE_STALE_MS);
        return SCHEDULE_DROP_STALE;
    }
    snprintf(why, why_size, "the restart scheduled at %s is due", at);
    return SCHEDULE_RUN;
}

int schedule_parse_pg_version(const char *text, int *num, char *errmsg)
{
    unsigned part[3] = {0, 0, 0};
    int n = 0;
    const char *p = text;
    while (n < 3) {
        if (!isdigit((unsigned char)*p)) {
            break;
        }
        unsigned v = 0;
        while (isdigit((unsigned char)*p) && v < 100000) {
            v = v * 10 + (unsigned)(*p++ - '0');
        }
        part[n++] = v;
        if (*p != '.') {
            break;
        }
        p++;
    }
    bool ok = *p == '\0' &&
              ((n == 2 && part[0] >= 10 && part[0] < 1000 && part[1] < 10000) ||
               (n == 3 && part[0] < 10 && part[0] > 0 && part[1] < 100 && part[2] < 100));
    if (!ok) {
        return rpg_err(errmsg, RPG_EINVAL,
                       "\"%.64s\" is not a PostgreSQL version (MAJOR.MINOR as 15.4, or 9.X.Y)",
                       text);
    }
    *num = n == 2 ? (int)(part[0] * 10000 + part[1])
                  : (int)(part[0] * 10000 + part[1] * 100 + part[2]);
    return 0;
}

int schedule_parse_timeout(const char *text, unsigned *seconds, char *errmsg)
{
    static const struct {
        const char *unit;
        unsigned factor;
    } units[] = {{"", 1}, {"s", 1}, {"min", 60}, {"h", 3600}};
    const char *p = text;
    unsigned long long v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        /* Saturates past the bound: still out of range, never wraps. */
        v = v > SCHEDULE_TIMEOUT_MAX_S ? v : v * 10 + (unsigned)(*p - '0');
    }
    bool digits = p != text && !isdigit((unsigned char)*p);
    for (size_t i = 0; digits && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            v *= units[i].factor;
            if (v < 1 || v > SCHEDULE_TIMEOUT_MAX_S) {
                return rpg_err(errmsg, RPG_EINVAL, "\"%.64s\" is out of range: 1..%d seconds", text,
                               SCHEDULE_TIMEOUT_MAX_S);
            }
            *seconds = (unsigned)v;
            return 0;
        }
    }
    return rpg_err(errmsg, RPG_EINVAL,
                   "\"%.64s\" is not a positive number of seconds (30, \"30s\", \"2min\" or "
                   "\"1h\")",
                   text);
}

/* ---- the leader's side ----------------------------------------------------------------------- */

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_due(struct agent *a);

static void on_cleared(void *data, int rc, const char *msg)
{
    struct agent *a = data;
    struct schedule *sc = &a->schedule;
    const struct fsm_switchover *w = &sc->entry;
    sc->clearing = false;
    char at[48];
    schedule_format_time(w->at_ms, at, sizeof at);
    if (rc != 0) {
        /* Still recorded: the next tick, or the next leader, decides again. */
        log_warning("scheduled switchover at %s: clearing it failed: %s", at, msg);
        return;
    }
    if (sc->verdict != SCHEDULE_RUN) {
        return;
    }
    log_info("scheduled switchover at %s: starting (from=%s to=%s)", at,
             w->from[0] != '\0' ? w->from : a->conf.name, w->to[0] != '\0' ? w->to : "(best)");
    start_due(a);
}

/* Starts the due switchover of sc->entry, or keeps it for a later tick when refused for a
 * moment (schedule_retry_refusal): the clear can commit just as the core begins a checkpoint or
 * a reload, and the schedule, gone from the log, was then lost. */
static void start_due(struct agent *a)
{
    struct schedule *sc = &a->schedule;
    const struct fsm_switchover *w = &sc->entry;
    char at[48];
    char why[RPG_ERRMSG_SIZE];
    schedule_format_time(w->at_ms, at, sizeof at);
    int status = switchover_start_scheduled(a, w->from[0] != '\0' ? w->from : NULL,
                                            w->to[0] != '\0' ? w->to : NULL, why, sizeof why);
    bool again = status != 0 && schedule_retry_refusal(status);
    if (status != 0 && (!again || !sc->retrying)) {
        log_warning("scheduled switchover at %s %s: %s", at,
                    again ? "refused for now, tried again while it is due" : "not done", why);
    }
    sc->retrying = again;
}

/* Whether this member runs as the settled primary a switchover starts from. */
static bool settled_primary(const struct agent *a)
{
    const struct ha_pg *o = &a->pg.obs;
    return a->fm.lease_ok && strcmp(a->cons.state.primary.name, a->conf.name) == 0 &&
           a->pg.obs_valid && o->state == HA_PG_RUNNING && !o->in_recovery && !pg_busy(&a->pg) &&
           a->switchover.m.phase == SWITCHOVER_IDLE;
}

void schedule_tick(struct agent *a)
{
    struct schedule *sc = &a->schedule;
    const struct fsm_state *s = &a->cons.state;
    char why[RPG_ERRMSG_SIZE];
    if (sc->retrying && s->initialized && !sc->clearing) {
        bool leading = a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready;
        enum schedule_verdict rv = schedule_retry_decide(&sc->entry, s, leading, settled_primary(a),
                                                         wall_now_ms(), why, sizeof why);
        if (rv == SCHEDULE_RUN) {
            start_due(a);
        } else if (rv != SCHEDULE_WAIT) {
            log_warning("%s", why);
            sc->retrying = false;
        }
        return;
    }
    if (!s->initialized || sc->clearing || a->cons.role != CONS_ROLE_LEADER ||
        !a->cons.leader_ready) {
        return;
    }
    enum schedule_verdict v = schedule_decide(s, wall_now_ms(), why, sizeof why);
    if (v == SCHEDULE_NONE || v == SCHEDULE_WAIT) {
        sc->waiting[0] = '\0';
        return;
    }
    if (v == SCHEDULE_RUN && !settled_primary(a)) {
        if (strcmp(sc->waiting, why) != 0) {
            log_info("%s: waiting for this member to run as a settled primary", why);
            snprintf(sc->waiting, sizeof sc->waiting, "%s", why);
        }
        return;
    }
    sc->waiting[0] = '\0';
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_CLEAR_SWITCHOVER;
    cmd.term = a->cons.term;
    cmd.u.clear_switchover.at_ms = s->switchover.at_ms;
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(&a->cons, &cmd, on_cleared, a, errmsg) != 0) {
        log_warning("%s: clearing it failed: %s", why, errmsg);
        return;
    }
    sc->clearing = true;
    sc->verdict = v;
    sc->entry = s->switchover;
    if (v == SCHEDULE_RUN) {
        log_info("%s: clearing it, then switching over", why);
    } else {
        log_warning("%s", why);
    }
}

/* ---- a member's scheduled restart ----------------------------------------------------------- */

void restart_schedule_tick(struct agent *a)
{
    struct restart *r = &a->restart;
    if (r->sched.at_ms == 0 || r->phase != RESTART_IDLE) {
        return;
    }
    const struct ha_pg *o = &a->pg.obs;
    bool running = a->pg.obs_valid && o->state == HA_PG_RUNNING;
    char why[RPG_ERRMSG_SIZE];
    enum schedule_verdict v =
        restart_schedule_decide(&r->sched, wall_now_ms(), a->cons.state.paused,
                                running ? a->pg.start_time : "", why, sizeof why);
    if (v == SCHEDULE_NONE || v == SCHEDULE_WAIT) {
        return;
    }
    /* Whatever follows, it runs once (Patroni deletes it in any case). */
    struct restart_schedule due = r->sched;
    memset(&r->sched, 0, sizeof r->sched);
    if (v != SCHEDULE_RUN) {
        log_warning("%s", why);
        return;
    }
    log_info("%s: restarting postgresql", why);
    restart_set_timeout(a, due.timeout_s);
    restart_start(a, NULL, due.role[0] != '\0' ? due.role : NULL, due.pending, due.below_version);
    if (r->phase == RESTART_IDLE) {
        log_warning("the scheduled restart did not run: %s", r->last);
    }
}
