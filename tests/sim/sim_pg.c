/* The simulated data directory and the decisions PostgreSQL itself takes about WAL: timelines,
 * what a standby may stream, what pg_rewind does. PostgreSQL looks at timeline ids and switch
 * points only; the segments also carry the writer's uid, so the checks see content that
 * PostgreSQL would mix up silently. Pure functions over struct sim_pg. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_pg_init(struct sim_pg *p)
{
    memset(p, 0, sizeof *p);
    p->streaming_from = -1;
}

void sim_pg_free(struct sim_pg *p)
{
    free(p->segs);
    p->segs = NULL;
    p->n_segs = p->cap_segs = 0;
}

uint32_t sim_pg_tl(const struct sim_pg *p)
{
    return p->n_segs > 0 ? p->segs[p->n_segs - 1].tl : 0;
}

uint32_t sim_pg_max_tl(const struct sim_pg *p)
{
    uint32_t tl = p->hist_tl;
    for (unsigned i = 0; i < p->n_segs; i++) {
        tl = p->segs[i].tl > tl ? p->segs[i].tl : tl;
    }
    return tl;
}

/* The segment holding lsn, or -1. */
static int seg_at(const struct sim_pg *p, uint64_t lsn)
{
    int k = -1;
    for (unsigned i = 0; i < p->n_segs && p->segs[i].begin <= lsn; i++) {
        k = (int)i;
    }
    return k;
}

uint32_t sim_pg_uid_at(const struct sim_pg *p, uint64_t lsn)
{
    if (lsn >= p->end) {
        return 0;
    }
    int k = seg_at(p, lsn);
    return k < 0 ? 0 : p->segs[k].uid;
}

/* Appends a segment starting at begin, dropping what lay at or past begin; merges with the
 * previous one when it continues the same content. */
void sim_pg_push(struct sim_pg *p, uint32_t tl, uint32_t uid, uint64_t begin)
{
    while (p->n_segs > 0 && p->segs[p->n_segs - 1].begin >= begin) {
        p->n_segs--;
    }
    if (p->n_segs > 0 && p->segs[p->n_segs - 1].tl == tl && p->segs[p->n_segs - 1].uid == uid) {
        return;
    }
    if (p->n_segs == p->cap_segs) {
        unsigned cap = p->cap_segs ? 2 * p->cap_segs : 8;
        struct sim_seg *s = realloc(p->segs, cap * sizeof *s);
        if (s == NULL) {
            abort();
        }
        p->segs = s;
        p->cap_segs = cap;
    }
    p->segs[p->n_segs++] = (struct sim_seg){.tl = tl, .uid = uid, .begin = begin};
}

void sim_pg_clear_data(struct sim_pg *p)
{
    p->data = false;
    p->broken = false;
    p->system_id = 0;
    p->n_segs = 0;
    p->end = 0;
    p->ckpt_tl = 0;
    p->hist_tl = 0;
    p->was_primary = false;
    p->standby_signal = false;
    p->conf_upstream[0] = '\0';
    p->slot_id = 0;
    p->n_slots = 0;
    p->conf_sync_names[0] = '\0';
    p->conf_sync_commit[0] = '\0';
}

/* The data directory's WAL and identity, as pg_basebackup or pg_rewind copy them. */
void sim_pg_copy_data(struct sim_pg *dst, const struct sim_pg *src)
{
    dst->data = true;
    dst->broken = false;
    dst->system_id = src->system_id;
    dst->n_segs = 0;
    for (unsigned i = 0; i < src->n_segs; i++) {
        sim_pg_push(dst, src->segs[i].tl, src->segs[i].uid, src->segs[i].begin);
    }
    dst->end = src->end;
    dst->ckpt_tl = src->ckpt_tl;
    memcpy(dst->conf_upstream, src->conf_upstream, sizeof dst->conf_upstream);
    memcpy(dst->conf_sync_names, src->conf_sync_names, sizeof dst->conf_sync_names);
    memcpy(dst->conf_sync_commit, src->conf_sync_commit, sizeof dst->conf_sync_commit);
}

bool sim_pg_halted(const struct sim_node *n)
{
    return n->frozen || n->pg.sigstopped;
}

bool sim_pg_writable(const struct sim_pg *p)
{
    return p->proc == SIM_PROC_RUNNING && !p->in_recovery;
}

bool sim_pg_pending_primary(const struct sim_pg *p)
{
    return (p->proc == SIM_PROC_STARTING && !p->standby_signal) ||
           (p->proc == SIM_PROC_RUNNING && p->in_recovery && p->promote_pending);
}

/* What pg_controldata reports as the timeline of a stopped server: the last checkpoint's, or
 * for a standby the minimum recovery point's when newer (pg_parse_controldata). A primary that
 * crashed after a promotion and before its first checkpoint still shows the old timeline. */
uint32_t sim_pg_stopped_tl(const struct sim_pg *p)
{
    if (p->was_primary) {
        return p->ckpt_tl;
    }
    uint32_t tl = sim_pg_tl(p);
    return tl > p->ckpt_tl ? tl : p->ckpt_tl;
}

/* True when every record of s is also in p at the same lsn. diverge_at: the first that is not.
 * Content is constant between segment starts, so comparing at every start of either suffices. */
bool sim_pg_prefix_of(const struct sim_pg *s, const struct sim_pg *p, uint64_t *diverge_at)
{
    uint64_t limit = s->end < p->end ? s->end : p->end;
    uint64_t first = s->end > p->end ? p->end : UINT64_MAX;
    for (unsigned k = 0; k < s->n_segs + p->n_segs; k++) {
        uint64_t b = k < s->n_segs ? s->segs[k].begin : p->segs[k - s->n_segs].begin;
        if (b < limit && b < first && sim_pg_uid_at(s, b) != sim_pg_uid_at(p, b)) {
            first = b;
        }
    }
    *diverge_at = first;
    return first == UINT64_MAX;
}

/* PostgreSQL's view of a history: timeline ids and where each begins (a .history file). */
struct tli {
    uint32_t tl;
    uint64_t begin;
};

static unsigned history(const struct sim_pg *p, struct tli *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n_segs; i++) {
        if (n > 0 && out[n - 1].tl == p->segs[i].tl) {
            continue;
        }
        if (n == max) {
            break;
        }
        out[n].tl = p->segs[i].tl;
        out[n].begin = p->segs[i].begin;
        n++;
    }
    return n;
}

#define HIST_MAX 256

/* May standby s stream from u? Mirrors the walreceiver's start: s asks for its timeline from its
 * WAL end; u answers from its history of that timeline id. Returns 0, or -1 with why. */
int sim_pg_stream_check(const struct sim_pg *s, const struct sim_pg *u, char *why, size_t size)
{
    struct tli h[HIST_MAX];
    unsigned n = history(u, h, HIST_MAX);
    uint32_t t = sim_pg_tl(s);
    for (unsigned a = 0; a < n; a++) {
        if (h[a].tl != t) {
            continue;
        }
        bool last = a + 1 == n;
        uint64_t end_t = last ? u->mark : h[a + 1].begin;
        if (s->end > end_t) {
            if (last) {
                snprintf(why, size,
                         "requested starting point %" PRIu64 " is ahead of the wal flush position "
                         "%" PRIu64,
                         s->end, end_t);
            } else {
                snprintf(why, size,
                         "requested starting point %" PRIu64 " on timeline %u is not in this "
                         "server's history (forked at %" PRIu64 ")",
                         s->end, t, end_t);
            }
            return -1;
        }
        return 0;
    }
    snprintf(why, size, "timeline %u is not in the upstream's history", t);
    return -1;
}

/* s receives u's WAL from its end up to upto, and follows u's timeline switches
 * (recovery_target_timeline = latest). The part below s's end stays s's own. */
void sim_pg_stream(struct sim_pg *s, const struct sim_pg *u, uint64_t upto)
{
    if (upto <= s->end) {
        return;
    }
    int k = seg_at(u, s->end);
    assert(k >= 0);
    sim_pg_push(s, u->segs[k].tl, u->segs[k].uid, s->end);
    for (unsigned j = (unsigned)k + 1; j < u->n_segs && u->segs[j].begin < upto; j++) {
        sim_pg_push(s, u->segs[j].tl, u->segs[j].uid, u->segs[j].begin);
    }
    s->end = upto;
}

/* pg_rewind of stopped target from running source, as PostgreSQL 15 decides it: nothing to do
 * when the two control files name the same checkpoint timeline; else the divergence point is the
 * end of the last timeline both histories share (by id and switch point), and the target is
 * rewound when its WAL goes past it. The source's history is read for its checkpoint timeline,
 * which is why a new primary must checkpoint before others rewind from it. Returns 0 (changed
 * says whether the target now holds the source's WAL) or -1 with why. */
int sim_pg_rewind(struct sim_pg *target, const struct sim_pg *source, bool *changed, char *why,
                  size_t size)
{
    *changed = false;
    if (target->system_id != source->system_id) {
        snprintf(why, size, "source and target clusters are from different systems");
        return -1;
    }
    if (source->ckpt_tl == sim_pg_tl(target)) {
        /* "source and target cluster are on the same timeline": no rewind required. */
        return 0;
    }
    struct tli hs[HIST_MAX], ht[HIST_MAX];
    unsigned ns = history(source, hs, HIST_MAX);
    unsigned nt = history(target, ht, HIST_MAX);
    /* The source's history as of its checkpoint timeline. */
    unsigned cut = ns;
    for (unsigned a = 0; a < ns; a++) {
        if (hs[a].tl == source->ckpt_tl) {
            cut = a + 1;
            break;
        }
    }
    ns = cut;
    unsigned i = 0;
    while (i < ns && i < nt && hs[i].tl == ht[i].tl && hs[i].begin == ht[i].begin) {
        i++;
    }
    if (i == 0) {
        snprintf(why, size,
                 "could not find common ancestor of the source and target cluster's "
                 "timelines");
        return -1;
    }
    i--;
    uint64_t end_s = i + 1 < ns ? hs[i + 1].begin : UINT64_MAX;
    uint64_t end_t = i + 1 < nt ? ht[i + 1].begin : UINT64_MAX;
    uint64_t divergerec = end_s < end_t ? end_s : end_t;
    /* A promotion writes an end-of-recovery record on its new timeline, past the switch point,
     * which this model does not store: a target on a timeline the source's history lacks always
     * has WAL past the fork, as far as pg_rewind is concerned. */
    bool own_timeline = true;
    for (unsigned a = 0; a < ns; a++) {
        own_timeline = own_timeline && hs[a].tl != sim_pg_tl(target);
    }
    if (target->end <= divergerec && !(own_timeline && sim_pg_tl(target) > ht[i].tl)) {
        return 0; /* the target is an ancestor of the source: nothing diverged */
    }
    sim_pg_copy_data(target, source);
    *changed = true;
    return 0;
}
