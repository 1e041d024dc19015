/* The history of promotions (history.h). */
#include "raftpg/history.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/log.h"

int history_switchpoint(const char *text, size_t len, uint32_t *prev_timeline, uint64_t *lsn,
                        char *errmsg)
{
    /* Lines are "parentTLI<tab>switchpoint<tab>reason"; blank lines and # comments are skipped.
     * The last entry is the branch that created this timeline. */
    bool found = false;
    unsigned line_no = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') {
            end++;
        }
        line_no++;
        char line[256];
        size_t n = end - pos < sizeof line - 1 ? end - pos : sizeof line - 1;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        const char *p = line + strspn(line, " \t\r");
        if (*p == '\0' || *p == '#') {
            continue;
        }
        unsigned long tl;
        unsigned hi, lo;
        char tail;
        if (sscanf(p, "%lu %X/%X%c", &tl, &hi, &lo, &tail) < 3 || tl == 0 || tl > UINT32_MAX) {
            return rpg_err(errmsg, RPG_EPROTO,
                           "timeline history line %u: expected \"TIMELINE<tab>X/Y\", got \"%.64s\"",
                           line_no, p);
        }
        *prev_timeline = (uint32_t)tl;
        *lsn = ((uint64_t)hi << 32) | lo;
        found = true;
    }
    if (!found) {
        return rpg_err(errmsg, RPG_EPROTO, "timeline history has no entry");
    }
    return 0;
}

/* Reads pg_wal/NNNNNNNN.history of timeline: a file of a few hundred bytes, read once per
 * promotion. */
static int read_switchpoint(const struct agent *a, uint32_t timeline, uint32_t *prev, uint64_t *lsn,
                            char *errmsg)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/pg_wal/%08X.history", a->conf.postgresql.data_dir, timeline);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    int err = errno;
    close(fd);
    if (n < 0) {
        return rpg_err(errmsg, RPG_EIO, "%s: cannot read: %s", path, strerror(err));
    }
    char why[RPG_ERRMSG_SIZE];
    if (history_switchpoint(buf, (size_t)n, prev, lsn, why) != 0) {
        return rpg_err(errmsg, RPG_EPROTO, "%s: %s", path, why);
    }
    return 0;
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void waiting(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void waiting(struct agent *a, const char *fmt, ...)
{
    char msg[RPG_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (strcmp(msg, a->history.waiting) != 0) {
        log_info("history: timeline %u not recorded yet: %s", a->history.timeline, msg);
        snprintf(a->history.waiting, sizeof a->history.waiting, "%s", msg);
    }
}

static void on_recorded(void *data, int rc, const char *msg)
{
    struct agent *a = data;
    a->history.submitting = false;
    if (rc != 0) {
        log_warning("history: recording timeline %u failed: %s", a->history.timeline, msg);
    }
}

void history_tick(struct agent *a)
{
    struct history *h = &a->history;
    const struct fsm_state *s = &a->cons.state;
    const char *self = a->conf.name;
    if (!s->initialized) {
        return;
    }
    if (s->primary.name[0] != '\0' && strcmp(s->primary.name, self) != 0) {
        snprintf(h->prev_primary, sizeof h->prev_primary, "%s", s->primary.name);
        h->prev_term = s->primary.term;
    }
    const struct ha_pg *o = &a->pg.obs;
    if (!a->pg.obs_valid || o->state != HA_PG_RUNNING || o->in_recovery || o->timeline == 0) {
        return;
    }
    if (h->timeline != o->timeline) {
        h->timeline = o->timeline;
        h->at_ms = wall_now_ms();
        h->waiting[0] = '\0';
    }
    bool leader = a->cons.role == CONS_ROLE_LEADER && a->cons.leader_ready;
    const struct fsm_history_entry *last = s->n_history > 0 ? &s->history[s->n_history - 1] : NULL;
    if (!leader || h->submitting || strcmp(s->primary.name, self) != 0 ||
        s->primary.timeline != o->timeline || (last != NULL && last->timeline >= o->timeline)) {
        return;
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        const char *name = s->members[i].name;
        if (strcmp(name, self) == 0) {
            continue;
        }
        const struct peer_status *p = peers_get(&a->peers, name);
        if (p == NULL || p->last_seen == 0) {
            waiting(a, "no report from %s yet", name);
            return;
        }
        if (p->state_version < 4) {
            waiting(a, "%s runs an agent that cannot read the history (state version %u)", name,
                    p->state_version);
            return;
        }
    }

    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_ADD_HISTORY;
    cmd.term = a->cons.term;
    struct fsm_history_entry *e = &cmd.u.add_history;
    e->timeline = o->timeline;
    e->time_ms = h->at_ms;
    e->term = s->primary.term;
    snprintf(e->primary, sizeof e->primary, "%s", self);
    char errmsg[RPG_ERRMSG_SIZE];
    if (o->timeline == 1 || (last == NULL && h->prev_primary[0] == '\0')) {
        /* A new cluster, or the first primary this history knows of. */
        e->reason = FSM_HISTORY_BOOTSTRAP;
    } else {
        if (read_switchpoint(a, o->timeline, &e->prev_timeline, &e->lsn, errmsg) != 0) {
            waiting(a, "%s", errmsg);
            return;
        }
        if (e->prev_timeline >= e->timeline) {
            waiting(a, "its history file names timeline %u as its parent", e->prev_timeline);
            return;
        }
        const struct peer_status *prev =
            h->prev_primary[0] != '\0' ? peers_get(&a->peers, h->prev_primary) : NULL;
        bool handed = prev != NULL && strcmp(prev->handed_to, self) == 0 &&
                      prev->handed_term == h->prev_term;
        e->reason = handed ? FSM_HISTORY_SWITCHOVER : FSM_HISTORY_FAILOVER;
    }
    if (cons_submit(&a->cons, &cmd, on_recorded, a, errmsg) != 0) {
        waiting(a, "%s", errmsg);
        return;
    }
    h->submitting = true;
    h->waiting[0] = '\0';
    log_info("history: recording timeline %u (%s, previous timeline %u ended at %X/%X)",
             e->timeline, fsm_history_reason_name(e->reason), e->prev_timeline,
             (unsigned)(e->lsn >> 32), (unsigned)e->lsn);
}

json_t *history_json(const struct fsm_state *s)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < s->n_history; i++) {
        const struct fsm_history_entry *e = &s->history[i];
        time_t secs = (time_t)(e->time_ms / 1000);
        struct tm tm;
        char when[48] = "";
        if (gmtime_r(&secs, &tm) != NULL) {
            char base[32];
            strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(when, sizeof when, "%s.%03d+00:00", base, (int)(e->time_ms % 1000));
        }
        json_array_append_new(
            list, json_pack("[I, I, s, s, s]", (json_int_t)e->prev_timeline, (json_int_t)e->lsn,
                            fsm_history_reason_name(e->reason), when, e->primary));
    }
    return list;
}
