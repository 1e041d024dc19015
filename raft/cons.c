#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/conf.h"
#include "raftpg/cons.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/storage.h"

const char *cons_role_name(enum cons_role role)
{
    switch (role) {
    case CONS_ROLE_UNAVAILABLE: return "unavailable";
    case CONS_ROLE_FOLLOWER: return "follower";
    case CONS_ROLE_CANDIDATE: return "candidate";
    case CONS_ROLE_LEADER: return "leader";
    }
    return "unknown";
}

const char *cons_voting_name(int voting)
{
    switch (voting) {
    case RAFT_VOTER: return "voter";
    case RAFT_STANDBY: return "standby";
    case RAFT_SPARE: return "spare";
    }
    return "none";
}

/* ---- requests ---------------------------------------------------------------------------- */

enum cons_req_kind { REQ_APPLY, REQ_BARRIER, REQ_LEASE, REQ_CHANGE, REQ_TRANSFER };

/* One request handed to libraft. It lives until libraft completes it, which may be after the
 * agent that made it is gone (the simulation's servers outlive their agents): it then completes
 * silently. */
struct cons_req {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
        struct raft_transfer transfer;
    } u;
    struct cons *c;
    uint64_t gen;
    struct cons_req *next, *prev;
    enum cons_req_kind kind;
    cons_submit_cb cb;
    void *data;
    enum fsm_cmd_type type;
    raft_term term;
    rpg_msec submitted;
    bool done; /* completed; kept until cons_free_requests (transfer_done says why) */
};

static struct cons_req *req_new(struct cons *c, enum cons_req_kind kind)
{
    struct cons_req *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    q->c = c;
    q->gen = c->gen;
    q->kind = kind;
    q->next = c->reqs;
    if (c->reqs != NULL) {
        c->reqs->prev = q;
    }
    c->reqs = q;
    /* Every libraft request type starts with the same data pointer. */
    q->u.apply.data = q;
    return q;
}

static void req_free(struct cons_req *q)
{
    struct cons *c = q->c;
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        c->reqs = q->next;
    }
    if (q->next != NULL) {
        q->next->prev = q->prev;
    }
    free(q);
}

/* The agent that made q is still the attached one. */
static bool req_current(const struct cons_req *q)
{
    return q->c->attached && q->c->gen == q->gen;
}

void cons_free_requests(struct cons *c)
{
    while (c->reqs != NULL) {
        req_free(c->reqs);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

void cons_setup(struct cons *c)
{
    memset(c, 0, sizeof *c);
    fsm_state_init(&c->state);
    fsm_init(&c->fsm, &c->state);
}

void cons_attach(struct cons *c, struct raft *raft, raft_id id, const struct cons_params *params,
                 const struct cons_host *host)
{
    c->raft = raft;
    c->id = id;
    c->attached = true;
    c->running = false;
    c->gen++;
    c->params = *params;
    c->host = *host;
    c->role = CONS_ROLE_UNAVAILABLE;
    c->term = 0;
    c->leader_id = 0;
    c->leader_ready = false;
    c->barrier_pending = false;
    c->barrier_term = 0;
    c->barrier_submitted = 0;
    c->init_pending = false;
    c->config_pending = false;
    c->seen_pending = false;
    c->change_pending = false;
    c->change_what[0] = '\0';
    c->transfer_pending = false;
    c->lease_pending = false;
    c->lease_term = 0;
    c->lease_submitted = 0;
    c->lease_until = 0;
    /* The sequence goes on: an answer to a probe of an earlier attach matches none. */
    memset(c->echo.probes, 0, sizeof c->echo.probes);
    c->last_heard_leader = 0;
    c->candidate_since = 0;
    c->candidate_warned = 0;
    const char *dir = c->storage.dir;
    size_t segment_size = c->storage.segment_size;
    memset(&c->storage, 0, sizeof c->storage);
    c->storage.dir = dir;
    c->storage.segment_size = segment_size;
    c->diverged = false;
    c->write_confirmed = 0;
    c->storage_tick_at = 0;
    c->storage_stall_end = 0;
    c->stepdown_transfer_at = 0;
    c->n_stepdowns = 0;
    c->fsm.server = raft;
    c->failed = false;
    c->error[0] = '\0';
    c->started_at = c->host.now(c);
    /* A write passed down before the host's clock was there (host_now) has held the disk since
     * this attach at the earliest, as far as the storage bound can tell. */
    for (unsigned k = 0; k < c->wal.n_pending; k++) {
        if (c->wal.pending[k].at == 0) {
            c->wal.pending[k].at = c->started_at;
        }
    }
}

void cons_set_running(struct cons *c)
{
    c->running = true;
}

void cons_detach(struct cons *c)
{
    c->attached = false;
    c->running = false;
    c->gen++;
    c->leader_ready = false;
    c->lease_until = 0;
}

/* The host's clock, or 0 before the first cons_attach: cons_wal_wrap comes first (cons_uv.c
 * bootstraps in between), and nothing keeps libraft from writing or the probe from reporting in
 * that gap. */
static rpg_msec host_now(struct cons *c)
{
    return c->host.now != NULL ? c->host.now(c) : 0;
}

static bool live(const struct cons *c)
{
    return c->attached && c->running;
}

static void changed(struct cons *c)
{
    if (c->host.on_change != NULL) {
        c->host.on_change(c, c->host.data);
    }
}

const char *cons_member_name(const struct cons *c, uint64_t id)
{
    const struct fsm_member *m = fsm_state_member_by_id(&c->state, id);
    if (m != NULL) {
        return m->name;
    }
    if (!c->state.initialized) {
        for (unsigned i = 0; i < c->params.n_initial; i++) {
            if (c->params.initial[i].id == id) {
                return c->params.initial[i].name;
            }
        }
    }
    return NULL;
}

static const char *member_name_by_id(const struct cons *c, uint64_t id)
{
    const char *name = cons_member_name(c, id);
    return name != NULL ? name : "?";
}

/* ---- storage health ---------------------------------------------------------------------- */

/* Recomputes storage.failed and logs only its transitions (the probe runs every second). */
static void storage_update(struct cons *c)
{
    bool failed = c->storage.probe_failed || c->storage.raft_failing || c->wal.fenced;
    if (failed && !c->storage.failed) {
        c->storage.since = host_now(c);
        if (c->storage.probe_failed) {
            snprintf(c->storage.error, sizeof c->storage.error, "%s", c->storage.probe_error);
            c->storage.err_no = c->storage.probe_errno;
        } else if (c->wal.fenced && !c->storage.raft_failing) {
            snprintf(c->storage.error, sizeof c->storage.error, "%s", c->wal.why);
            c->storage.err_no = 0;
        } else {
            snprintf(c->storage.error, sizeof c->storage.error, "%s", c->storage.raft_error);
            c->storage.err_no = 0;
        }
        log_error("raft storage cannot persist: %s (dir=%s role=%s)", c->storage.error,
                  c->storage.dir != NULL ? c->storage.dir : "?", cons_role_name(c->role));
    } else if (!failed && c->storage.failed) {
        log_info("raft storage persists again after %llu ms (dir=%s)",
                 (unsigned long long)(host_now(c) - c->storage.since),
                 c->storage.dir != NULL ? c->storage.dir : "?");
        c->storage.error[0] = '\0';
        c->storage.err_no = 0;
    }
    c->storage.failed = failed;
}

static void storage_lost_writes(struct cons *c, const char *what)
{
    if (c->storage.lost_writes) {
        return;
    }
    c->storage.lost_writes = true;
    snprintf(c->storage.lost_what, sizeof c->storage.lost_what, "%s", what);
    log_error("raft log may have lost entries: %s; the directory is checked before raft uses "
              "it again, in this run or the next, and refused unless it holds every "
              "acknowledged entry at its index (dir=%s)",
              what, c->storage.dir != NULL ? c->storage.dir : "?");
}

/* A write libraft refused when it was submitted: the storage fails, but nothing was lost (the
 * entry left libraft's log with the refusal). */
static void storage_raft_refused(struct cons *c, int status, const char *what)
{
    if (status == RAFT_IOERR || status == RAFT_NOSPACE) {
        c->storage.n_raft_errors++;
        snprintf(c->storage.raft_error, sizeof c->storage.raft_error, "%s refused: %s: %s", what,
                 raft_strerror(status), c->attached ? raft_errmsg(c->raft) : "");
        c->storage.raft_failing = true;
        storage_update(c);
    }
}

/* A libraft callback reported status: a failed write marks the storage failing until the next
 * confirmed write. */
static void storage_raft_result(struct cons *c, int status, const char *what)
{
    if (status == RAFT_IOERR || status == RAFT_NOSPACE) {
        storage_raft_refused(c, status, what);
        storage_lost_writes(c, c->storage.raft_error);
    } else if (status == 0) {
        c->write_confirmed = host_now(c);
        if (c->storage.raft_failing) {
            c->storage.raft_failing = false;
            storage_update(c);
        }
    }
}

/* ---- the write fence ---------------------------------------------------------------------- */

struct cons_wal_sum {
    raft_term term;
    uint64_t sum;
};

/* Every server with a fence: libraft's append callback carries only its own request. */
static struct cons *wal_servers;

static struct cons *wal_of_io(struct raft_io *io)
{
    for (struct cons *c = wal_servers; c != NULL; c = c->wal.next) {
        if (c->wal.io == io) {
            return c;
        }
    }
    abort(); /* an io that was never wrapped */
}

static uint64_t wal_entry_sum(const struct raft_entry *e);
static const struct raft_entry *log_entry(const struct raft_log *l, raft_index i);

/* The record a later run checks the directory against (cons.h, rec): the stored index and the
 * entries held past it, which a write queued before the fence may still put in the directory. */
static void wal_record(struct cons *c, raft_index last)
{
    if (c->wal.rec == NULL) {
        c->wal.rec = malloc(sizeof *c->wal.rec);
        if (c->wal.rec == NULL) {
            log_error("raft storage: out of memory for the record of this failure: a start after "
                      "this run ends cannot check the directory");
            return;
        }
    }
    struct storage_pending *p = c->wal.rec;
    p->present = true;
    p->acked = c->wal.stored;
    p->first = c->wal.stored + 1;
    p->n = 0;
    p->overflow = last > c->wal.stored && last - c->wal.stored > STORAGE_PENDING_MAX;
    snprintf(p->why, sizeof p->why, "%.150s", c->wal.why);
    for (raft_index i = p->first; !p->overflow && c->raft != NULL && i <= last; i++) {
        const struct raft_entry *e = log_entry(&c->raft->log, i);
        if (e == NULL) {
            break;
        }
        p->e[p->n].term = e->term;
        p->e[p->n].sum = wal_entry_sum(e);
        p->n++;
    }
    c->wal.rec_seq++;
}

/* what: the write that failed ("raft log write failed"). */
static void wal_fence(struct cons *c, int status, const char *what)
{
    if (c->wal.fenced) {
        return;
    }
    c->wal.fenced = true;
    c->wal.fenced_at = host_now(c);
    c->wal.ok_probes = 0;
    c->wal.stored = c->raft != NULL ? c->raft->last_stored : 0;
    raft_index last = c->raft != NULL ? raft_last_index(c->raft) : 0;
    /* libraft 0.15's raft_strerror has no text for RAFT_NOSPACE. */
    snprintf(c->wal.why, sizeof c->wal.why, "%s: %s", what,
             status == RAFT_NOSPACE ? "not enough space on disk" : raft_strerror(status));
    log_error("%s: this server writes nothing more to its log until raft restarts from its "
              "directory, once that takes writes again (stored up to index %llu, held up to "
              "%llu, dir=%s)",
              c->wal.why, (unsigned long long)c->wal.stored, (unsigned long long)last,
              c->storage.dir != NULL ? c->storage.dir : "?");
    wal_record(c, last);
    if (last > c->wal.stored) {
        char lost[RPG_ERRMSG_SIZE];
        snprintf(lost, sizeof lost, "entries %llu..%llu received but not persisted: %.150s",
                 (unsigned long long)c->wal.stored + 1, (unsigned long long)last, c->wal.why);
        storage_lost_writes(c, lost);
    }
    storage_update(c);
}

/* Keeps a leader's write that must not complete now (wal_hold_failed, wal_hold_change): it fails
 * with RAFT_CANCELED as the io closes. False when there is no memory to keep it. */
static bool wal_hold(struct cons *c, struct raft_io_append *req, raft_io_append_cb cb)
{
    if (c->wal.n_held == c->wal.cap_held) {
        unsigned cap = c->wal.cap_held != 0 ? 2 * c->wal.cap_held : 4;
        struct cons_wal_append *p = realloc(c->wal.held, cap * sizeof *p);
        if (p == NULL) {
            return false;
        }
        c->wal.held = p;
        c->wal.cap_held = cap;
    }
    c->wal.held[c->wal.n_held++] = (struct cons_wal_append){req, cb, host_now(c)};
    return true;
}

/* A leader's write that failed when it completed is held, not reported: libraft 0.15's
 * appendLeaderCb then looks up the request at the write's first index as a command (getRequest
 * with RAFT_COMMAND), and when that index holds a barrier (the lease renewal's) it calls the
 * barrier's request as a raft_apply, whose callback is not where it looks: the likely cause of
 * the crash in libraft that a leader whose file system went read-only met within a second
 * (test_storage_leader_readonly, plain and ASan), gone since. Held, the write is one
 * that never completes, as wal_hold_change holds a configuration entry's: the entries stay in
 * memory, unstored, the fence is closed, and the write fails with RAFT_CANCELED as the io closes,
 * when libraft is no longer leader and only drops them from its log. */
static bool wal_hold_failed(struct cons *c, struct raft_io_append *req, raft_io_append_cb cb)
{
    struct raft_io *io = c->wal.io;
    if (io == NULL || io->data == NULL || raft_state(io->data) != RAFT_LEADER) {
        return false;
    }
    return wal_hold(c, req, cb);
}

static void wal_append_done(struct raft_io_append *req, int status)
{
    for (struct cons *c = wal_servers; c != NULL; c = c->wal.next) {
        for (unsigned k = 0; k < c->wal.n_pending; k++) {
            if (c->wal.pending[k].req != req) {
                continue;
            }
            raft_io_append_cb cb = c->wal.pending[k].cb;
            memmove(&c->wal.pending[k], &c->wal.pending[k + 1],
                    (c->wal.n_pending - k - 1) * sizeof c->wal.pending[0]);
            c->wal.n_pending--;
            /* A write queued before the fence closed may still succeed: libraft hears so (a
             * leader told otherwise drops the entries from memory, not from the directory). If
             * raft_uv put it where failed entries belonged, the restart's load finds out. */
            if (status != 0) {
                wal_fence(c, status, "raft log write failed");
                if (wal_hold_failed(c, req, cb)) {
                    return;
                }
            }
            req->cb = cb;
            cb(req, status);
            return;
        }
        /* raft_uv 0.15 can return an error from its append after it queued the request (its
         * first write of the segment failed at submission), and completes it later. */
        for (unsigned k = 0; k < c->wal.n_held; k++) {
            if (c->wal.held[k].req != req) {
                continue;
            }
            raft_io_append_cb cb = c->wal.held[k].cb;
            memmove(&c->wal.held[k], &c->wal.held[k + 1],
                    (c->wal.n_held - k - 1) * sizeof c->wal.held[0]);
            c->wal.n_held--;
            req->cb = cb;
            cb(req, status);
            return;
        }
    }
    abort(); /* an append the fence never saw */
}

/* A leader's write that carries a configuration entry (RAFT_CHANGE) must never be refused at
 * submission. libraft 0.15's raft_add and raft_remove copy the configuration, and
 * clientChangeConfiguration installs the copy as r->configuration (closing the old one and
 * resizing the progress array) before it submits the entry's write; when that submission
 * fails it only truncates the entry from its log, and raft_add/raft_remove then close their
 * copy, whose server array r->configuration still points to: every later read of the
 * configuration is a use after free and raft_close frees it a second time. raft_assign's
 * immediate path leaves r->leader_state.change pointing at the caller's request, which the
 * caller frees, and the next stepdown calls its callback. A write that fails when it completes
 * is safe (appendLeaderCb truncates the entry from memory and the configuration stays
 * installed as an uncommitted one), and so is a write that never completes. So such a write is
 * accepted and held, as a device that never answers would hold it: the entry stays in memory,
 * is sent to the followers (which may commit it), and its write fails with RAFT_CANCELED as the
 * io closes, when libraft only drops it from its log (raft_uv completes its pending writes the
 * same way at close). The fence is closed all the same, so the leader hands leadership over and
 * Raft restarts from its directory, which lacks the entry. Followers' writes are not held:
 * libraft installs a follower's configuration only when its write completes. */
static bool wal_hold_change(struct cons *c, struct raft_io *io, struct raft_io_append *req,
                            const struct raft_entry entries[], unsigned n, raft_io_append_cb cb,
                            int status)
{
    bool change = false;
    for (unsigned k = 0; k < n; k++) {
        change = change || entries[k].type == RAFT_CHANGE;
    }
    if (!change || io->data == NULL || raft_state(io->data) != RAFT_LEADER ||
        !wal_hold(c, req, cb)) {
        return false;
    }
    /* An entry never written: the ones after it must not be written either (their indexes). */
    wal_fence(c, status, "raft log write refused");
    c->wal.n_held_total++;
    log_warning("raft log write of a configuration entry held unwritten until raft restarts "
                "(%s; libraft 0.15 cannot take a refused one, dir=%s)",
                c->wal.why, c->storage.dir != NULL ? c->storage.dir : "?");
    return true;
}

/* Once the io closed (it completed every write it had queued, wal_append_done), the held ones
 * fail, before libraft's own close callback frees its log. libraft is unavailable by now: a
 * failed leader write only leaves its log. */
static void wal_closed(struct raft_io *io)
{
    struct cons *c = wal_of_io(io);
    while (c->wal.n_held > 0) {
        struct cons_wal_append h = c->wal.held[--c->wal.n_held];
        h.req->cb = h.cb;
        h.cb(h.req, RAFT_CANCELED);
    }
    raft_io_close_cb cb = c->wal.close_cb;
    c->wal.close_cb = NULL;
    if (cb != NULL) {
        cb(io);
    }
}

static void wal_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cons *c = wal_of_io(io);
    c->wal.close_cb = cb;
    c->wal.close(io, wal_closed);
}

static int wal_append(struct raft_io *io, struct raft_io_append *req,
                      const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct cons *c = wal_of_io(io);
    if (c->wal.fenced) {
        snprintf(io->errmsg, sizeof io->errmsg,
                 "no write after a failed one until raft "
                 "restarts (%.150s)",
                 c->wal.why);
        if (wal_hold_change(c, io, req, entries, n, cb, RAFT_IOERR)) {
            return 0;
        }
        return RAFT_IOERR;
    }
    if (c->wal.n_pending == c->wal.cap_pending) {
        unsigned cap = c->wal.cap_pending != 0 ? 2 * c->wal.cap_pending : 16;
        struct cons_wal_append *p = realloc(c->wal.pending, cap * sizeof *p);
        if (p == NULL) {
            return RAFT_NOMEM;
        }
        c->wal.pending = p;
        c->wal.cap_pending = cap;
    }
    int rv = c->wal.append(io, req, entries, n, wal_append_done);
    if (rv != 0) {
        if (rv == RAFT_IOERR || rv == RAFT_NOSPACE) {
            wal_fence(c, rv, "raft log write refused");
        }
        if (wal_hold_change(c, io, req, entries, n, cb, rv)) {
            return 0;
        }
        return rv;
    }
    c->wal.pending[c->wal.n_pending++] = (struct cons_wal_append){req, cb, host_now(c)};
    return 0;
}

/* A term or a vote the directory refuses (raft_uv rewrites its metadata files in place: a
 * read-only file system refuses them, a full one takes them): libraft 0.15 keeps its old term or
 * vote, turns unavailable (recvCb, tickCb) and stays so, and nothing else would restart it. The
 * fence closes as for a failed log write, so Raft restarts from its directory once that takes
 * writes again. */
static int wal_set_term(struct raft_io *io, raft_term term)
{
    struct cons *c = wal_of_io(io);
    int rv = c->wal.set_term(io, term);
    if (rv != 0 && io->data != NULL && raft_state(io->data) == RAFT_CANDIDATE) {
        /* libraft 0.15's convertToCandidate, when the election it starts cannot write its term
         * (a TimeoutNow from a leader handing over, which skips the pre-vote), frees the votes
         * and sets the state to follower over the candidate's half of the state union; the
         * unavailable state that follows then frees the follower's leader address, which
         * overlays the candidate's disrupt_leader and in_pre_vote flags: free(0x1). Nothing
         * reads those flags after a failed term write, so the overlaid address is cleared. */
        struct raft *r = io->data;
        r->follower_state.current_leader.address = NULL;
    }
    if (rv == RAFT_IOERR || rv == RAFT_NOSPACE) {
        wal_fence(c, rv, "raft term write refused");
    } else if (rv == 0) {
        c->wal.meta_term = term;
        c->wal.meta_vote = 0;
    }
    return rv;
}

/* One vote per term, whatever libraft 0.15 asks: its electionVote grants the target of this
 * server's own leadership transfer a vote even when it already voted in that term, and it keeps
 * the transfer for up to an election timeout after it stopped leading (a deposed leader that was
 * handing over votes for the transferee after voting for another candidate of the same term:
 * two leaders). A second vote is refused with RAFT_NOCONNECTION, which libraft's recvMessage
 * ignores: no vote is granted and no reply sent, as if the request were lost. */
static int wal_set_vote(struct raft_io *io, raft_id server_id)
{
    struct cons *c = wal_of_io(io);
    if (c->wal.meta_vote != 0 && c->wal.meta_vote != server_id) {
        c->wal.n_votes_refused++;
        log_warning("raft vote for %llu in term %llu refused: this server voted for %llu in that "
                    "term (libraft 0.15 grants a second vote to the target of its own "
                    "leadership transfer)",
                    (unsigned long long)server_id, (unsigned long long)c->wal.meta_term,
                    (unsigned long long)c->wal.meta_vote);
        return RAFT_NOCONNECTION;
    }
    int rv = c->wal.set_vote(io, server_id);
    if (rv == RAFT_IOERR || rv == RAFT_NOSPACE) {
        wal_fence(c, rv, "raft vote write refused");
    } else if (rv == 0) {
        c->wal.meta_vote = server_id;
    }
    return rv;
}

/* libraft 0.15 answers a successful AppendEntries with the follower's own last stored index, and
 * an empty one commits up to min(leader_commit, that index), neither bounded by what the message
 * verified (prev_log_index + n_entries). A follower holding uncommitted entries of an earlier
 * term past that point (a leader cut off before they committed) then tells the new leader it
 * matches them: the leader counts it toward committing its own entries at those indexes, never
 * sends it them, and each later AppendEntries is refused on the term mismatch, which the leader
 * ignores (its match index is past it). The follower stays stuck behind, a leadership transfer to
 * it never completes (seed 533662306335 of the simulation: 36 s without a primary), and a commit
 * counted that way may not be on a majority. Raft's rule is the bound: an answer claims, and a
 * commit reaches, at most the last entry the message verified. */
static void wal_recv(struct raft_io *io, struct raft_message *m)
{
    struct cons *c = wal_of_io(io);
    if (m->type != RAFT_IO_APPEND_ENTRIES) {
        c->wal.recv(io, m);
        return;
    }
    struct raft_append_entries *ae = &m->append_entries;
    raft_index upto = ae->prev_log_index + ae->n_entries;
    if (ae->leader_commit > upto) {
        ae->leader_commit = upto;
    }
    c->wal.ae_active = true;
    c->wal.ae_upto = upto;
    c->wal.recv(io, m);
    c->wal.ae_active = false;
}

static int wal_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                    raft_io_send_cb cb)
{
    struct cons *c = wal_of_io(io);
    if (!c->wal.ae_active || m->type != RAFT_IO_APPEND_ENTRIES_RESULT ||
        m->append_entries_result.rejected != 0 ||
        m->append_entries_result.last_log_index <= c->wal.ae_upto) {
        return c->wal.send(io, req, m, cb);
    }
    /* Answered at once, so for the message being handled; io->send copies what it sends. */
    struct raft_message capped = *m;
    capped.append_entries_result.last_log_index = c->wal.ae_upto;
    c->wal.n_ae_capped++;
    log_debug("raft: an AppendEntries answer claims index %llu, past the %llu its message "
              "verified: capped",
              (unsigned long long)m->append_entries_result.last_log_index,
              (unsigned long long)c->wal.ae_upto);
    return c->wal.send(io, req, &capped, cb);
}

static int wal_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct cons *c = wal_of_io(io);
    c->wal.recv = recv;
    return c->wal.start(io, msecs, tick, wal_recv);
}

/* FNV-1a 64 of an entry's type and payload. */
static uint64_t wal_entry_sum(const struct raft_entry *e)
{
    uint64_t h = 14695981039346656037ull;
    h = (h ^ (uint8_t)e->type) * 1099511628211ull;
    const unsigned char *p = e->buf.base;
    for (size_t i = 0; i < e->buf.len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* The entry at index i of the in-memory log (libraft 0.15's circular buffer), NULL if absent. */
static const struct raft_entry *log_entry(const struct raft_log *l, raft_index i)
{
    size_t n = l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;
    if (i <= l->offset || i > l->offset + n) {
        return NULL;
    }
    return &l->entries[(l->front + (size_t)(i - l->offset - 1)) % l->size];
}

static void wal_free_loaded(struct raft_snapshot *snapshot, struct raft_entry *entries, size_t n)
{
    void *batch = NULL;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].batch == NULL) {
            raft_free(entries[i].buf.base);
        } else if (entries[i].batch != batch) {
            batch = entries[i].batch;
            raft_free(batch);
        }
    }
    raft_free(entries);
    if (snapshot != NULL) {
        raft_configuration_close(&snapshot->configuration);
        for (unsigned i = 0; i < snapshot->n_bufs; i++) {
            raft_free(snapshot->bufs[i].base);
        }
        raft_free(snapshot->bufs);
        raft_free(snapshot);
    }
}

/* The directory must hold every entry this server acknowledged, and each entry it holds must be
 * the one the log in memory has at that index (raft_uv's open segments do not record their first
 * index: after a lost write they would load shifted). */
static int wal_check(struct cons *c, raft_index start, const struct raft_entry *entries, size_t n,
                     char *why, size_t why_size)
{
    raft_index last = start + n - 1;
    if (n == 0) {
        last = start - 1;
    }
    if (last < c->wal.acked) {
        snprintf(why, why_size,
                 "it holds entries up to index %llu, but this server "
                 "acknowledged up to %llu",
                 (unsigned long long)last, (unsigned long long)c->wal.acked);
        return RAFT_CORRUPT;
    }
    for (size_t k = 0; k < n; k++) {
        raft_index i = start + k;
        if (i < c->wal.first) {
            continue; /* compacted from memory since: nothing to compare with */
        }
        if (i >= c->wal.first + c->wal.n_sums) {
            snprintf(why, why_size,
                     "it holds entry %llu, past the last one held in memory "
                     "(%llu)",
                     (unsigned long long)i, (unsigned long long)(c->wal.first + c->wal.n_sums - 1));
            return RAFT_CORRUPT;
        }
        const struct cons_wal_sum *s = &c->wal.sums[i - c->wal.first];
        if (entries[k].term != s->term || wal_entry_sum(&entries[k]) != s->sum) {
            /* No repair by truncation: up to acked, this server acknowledged the entries (README
             * "Why a refused directory is not repaired"). */
            snprintf(why, why_size,
                     "its entry %llu (term %llu) is not the one held in memory "
                     "(term %llu)%s",
                     (unsigned long long)i, (unsigned long long)entries[k].term,
                     (unsigned long long)s->term,
                     i <= c->wal.acked ? ", and this server acknowledged that index: cutting "
                                         "the log there would forget acknowledged entries"
                                       : "");
            return RAFT_CORRUPT;
        }
    }
    return 0;
}

static int wal_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                    struct raft_snapshot **snapshot, raft_index *start_index,
                    struct raft_entry *entries[], size_t *n_entries)
{
    struct cons *c = wal_of_io(io);
    int rv = c->wal.load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rv == 0) {
        c->wal.meta_term = *term;
        c->wal.meta_vote = *voted_for;
    }
    if (rv != 0 || !c->wal.verify) {
        return rv;
    }
    char why[RPG_ERRMSG_SIZE];
    rv = wal_check(c, *start_index, *entries, *n_entries, why, sizeof why);
    c->wal.verify = false;
    free(c->wal.sums);
    c->wal.sums = NULL;
    c->wal.n_sums = 0;
    if (rv != 0) {
        wal_free_loaded(*snapshot, *entries, *n_entries);
        *snapshot = NULL;
        *entries = NULL;
        *n_entries = 0;
        snprintf(io->errmsg, sizeof io->errmsg, "%s: %.180s",
                 c->wal.from_record ? "not the log its previous run held when a write failed"
                                    : "not the log held before the failed write",
                 why);
        return rv;
    }
    c->wal.verified = true;
    if (c->wal.from_record) {
        log_info("raft directory checked against the storage failure its previous run recorded "
                 "(%s): it holds the log up to index %llu, every entry acknowledged and none "
                 "at a wrong index (dir=%s)",
                 STORAGE_PENDING_FILE, (unsigned long long)(*start_index + *n_entries - 1),
                 c->storage.dir != NULL ? c->storage.dir : "?");
    } else {
        log_info("raft restarted from its directory after a failed write: the directory holds "
                 "the log up to index %llu as this server held it (dir=%s)",
                 (unsigned long long)(*start_index + *n_entries - 1),
                 c->storage.dir != NULL ? c->storage.dir : "?");
    }
    return 0;
}

void cons_wal_wrap(struct cons *c, struct raft_io *io)
{
    if (c->wal.io == NULL) {
        c->wal.next = wal_servers;
        wal_servers = c;
    }
    c->wal.io = io;
    if (io->append != wal_append) {
        c->wal.append = io->append;
        c->wal.load = io->load;
        c->wal.close = io->close;
        c->wal.set_term = io->set_term;
        c->wal.set_vote = io->set_vote;
        c->wal.start = io->start;
        c->wal.send = io->send;
        io->start = wal_start;
        io->send = wal_send;
        io->append = wal_append;
        io->load = wal_load;
        io->close = wal_close;
        io->set_term = wal_set_term;
        io->set_vote = wal_set_vote;
    }
}

void cons_wal_unwrap(struct cons *c)
{
    if (c->wal.io == NULL) {
        return;
    }
    for (struct cons **p = &wal_servers; *p != NULL; p = &(*p)->wal.next) {
        if (*p == c) {
            *p = c->wal.next;
            break;
        }
    }
    c->wal.io = NULL;
    free(c->wal.pending);
    c->wal.pending = NULL;
    c->wal.n_pending = c->wal.cap_pending = 0;
    free(c->wal.held);
    c->wal.held = NULL;
    c->wal.n_held = c->wal.cap_held = 0;
    free(c->wal.rec);
    c->wal.rec = NULL;
    free(c->wal.sums);
    c->wal.sums = NULL;
    c->wal.n_sums = 0;
}

void cons_restart_begin(struct cons *c)
{
    const struct raft_log *l = &c->raft->log;
    raft_index last = raft_last_index(c->raft);
    raft_index first = l->offset + 1;
    free(c->wal.sums);
    c->wal.sums = NULL;
    c->wal.n_sums = 0;
    c->wal.first = first;
    c->wal.acked = c->raft->last_stored;
    if (last >= first) {
        c->wal.sums = calloc((size_t)(last - first + 1), sizeof *c->wal.sums);
    }
    if (c->wal.sums != NULL) {
        for (raft_index i = first; i <= last; i++) {
            const struct raft_entry *e = log_entry(l, i);
            if (e == NULL) {
                break;
            }
            c->wal.sums[c->wal.n_sums++] = (struct cons_wal_sum){e->term, wal_entry_sum(e)};
        }
    }
    c->wal.verify = true;
    c->wal.verified = false;
    c->wal.from_record = false;
    c->wal.n_restarts++;
    log_warning("restarting raft from its directory (%s; stored up to index %llu, held up to "
                "%llu, dir=%s)",
                c->wal.fenced ? c->wal.why : "requested", (unsigned long long)c->wal.acked,
                (unsigned long long)last, c->storage.dir != NULL ? c->storage.dir : "?");
}

void cons_wal_expect(struct cons *c, const struct storage_pending *p)
{
    free(c->wal.sums);
    c->wal.sums = NULL;
    c->wal.n_sums = 0;
    c->wal.first = p->first;
    c->wal.acked = p->acked;
    if (p->n > 0) {
        c->wal.sums = calloc(p->n, sizeof *c->wal.sums);
    }
    for (size_t i = 0; c->wal.sums != NULL && i < p->n; i++) {
        c->wal.sums[c->wal.n_sums++] = (struct cons_wal_sum){p->e[i].term, p->e[i].sum};
    }
    c->wal.verify = true;
    c->wal.verified = false;
    c->wal.from_record = true;
    log_warning("raft storage: the previous run ended with a storage failure pending (%s; stored "
                "up to index %llu, held up to %llu): the directory is checked as raft loads it",
                p->why, (unsigned long long)p->acked, (unsigned long long)(p->first + p->n - 1));
}

void cons_restart_reset(struct cons *c)
{
    /* The old server's appends all completed as it closed; the new one writes afresh. */
    c->wal.fenced = false;
    c->wal.restart_wanted = false;
    c->wal.ok_probes = 0;
    c->wal.why[0] = '\0';
    c->wal.n_pending = 0;
    fsm_state_init(&c->state);
    fsm_init(&c->fsm, &c->state);
}

void cons_storage_probe_begin(struct cons *c)
{
    c->wal.probe_began = host_now(c);
}

rpg_msec cons_restart_start_delay(struct cons *c)
{
    rpg_msec now = host_now(c);
    rpg_msec until = c->wal.fenced_at + c->params.election_timeout_ms;
    return c->wal.fenced_at != 0 && until > now ? until - now
           : c->wal.fenced_at != 0              ? 0
                                                : c->params.election_timeout_ms;
}

void cons_storage_report(struct cons *c, int rc, int err_no, const char *errmsg, bool measured,
                         uint64_t free_bytes)
{
    c->storage.probe_failed = rc != 0;
    c->storage.probe_errno = rc != 0 ? err_no : 0;
    snprintf(c->storage.probe_error, sizeof c->storage.probe_error, "%s", rc != 0 ? errmsg : "");
    size_t seg = c->storage.segment_size;
    if (measured && seg > 0) {
        c->storage.measured = true;
        c->storage.free_bytes = free_bytes;
        if (rc == 0 && free_bytes < seg) {
            /* libraft cannot preallocate its next open segment. */
            c->storage.probe_failed = true;
            c->storage.probe_errno = ENOSPC;
            snprintf(c->storage.probe_error, sizeof c->storage.probe_error,
                     "%s: %llu bytes free, less than one open segment (%zu bytes) (errno=%d)",
                     c->storage.dir != NULL ? c->storage.dir : "?", (unsigned long long)free_bytes,
                     seg, ENOSPC);
        }
        bool low = free_bytes < (uint64_t)seg * STORAGE_SEGMENTS_LOW;
        if (low && !c->storage.low) {
            log_warning("raft storage low on space: %llu bytes free in %s, below %u open "
                        "segments of %zu bytes",
                        (unsigned long long)free_bytes,
                        c->storage.dir != NULL ? c->storage.dir : "?", STORAGE_SEGMENTS_LOW, seg);
        } else if (!low && c->storage.low) {
            log_info("raft storage space recovered: %llu bytes free in %s",
                     (unsigned long long)free_bytes, c->storage.dir != NULL ? c->storage.dir : "?");
        }
        c->storage.low = low;
    }
    storage_update(c);
    /* While the directory fails, entries received but not persisted across two probes are
     * ones libraft will not write again (0.15 skips entries it already holds in memory). */
    bool lag = false;
    if (c->storage.failed && c->attached) {
        uint64_t stored = c->raft->last_stored;
        uint64_t last = raft_last_index(c->raft);
        lag = last > stored;
        if (lag && c->storage.lag_seen && stored == c->storage.lag_stored) {
            char what[RPG_ERRMSG_SIZE];
            snprintf(what, sizeof what,
                     "entries %llu..%llu received but not persisted while: %.150s",
                     (unsigned long long)stored + 1, (unsigned long long)last, c->storage.error);
            storage_lost_writes(c, what);
        }
        c->storage.lag_stored = stored;
    }
    c->storage.lag_seen = lag;
    /* A fenced server restarts from its directory once a probe begun after the failure wrote
     * there (or two in a row did, the second one begun after it). */
    if (c->wal.fenced && !c->wal.restart_wanted && !c->wal.config_freed && c->attached) {
        c->wal.ok_probes = c->storage.probe_failed ? 0 : c->wal.ok_probes + 1;
        bool after = c->wal.probe_began != 0 && c->wal.probe_began > c->wal.fenced_at;
        if (c->wal.ok_probes >= 2 || (c->wal.ok_probes >= 1 && after)) {
            c->wal.restart_wanted = true;
            log_info("raft storage takes writes again: raft restarts from its directory "
                     "(dir=%s)",
                     c->storage.dir != NULL ? c->storage.dir : "?");
            changed(c);
        }
    }
}

/* ---- observation ------------------------------------------------------------------------- */

static void barrier_cb(struct raft_barrier *req, int status);

/* fence.h's lease_ms: 0.8 ET, the margin covering clock-rate drift and the loop's granularity. */
static rpg_msec lease_length(const struct cons *c)
{
    struct fence_timing t;
    fence_timing_init(&t, c->params.election_timeout_ms);
    return t.lease_ms;
}

/* A candidate that never wins (a minority side, peers that refuse its pre-votes) leaves the
 * cluster without this voter and, if it was needed, without a leader: said every
 * CONS_CANDIDATE_WARN_ETS election timeouts while it lasts, and once when it ends. */
static void candidate_watch(struct cons *c, enum cons_role role, raft_term term)
{
    rpg_msec now = c->host.now(c);
    if (role == CONS_ROLE_CANDIDATE) {
        if (c->candidate_since == 0) {
            c->candidate_since = now != 0 ? now : 1;
            c->candidate_warned = 0;
        }
        rpg_msec every = (rpg_msec)CONS_CANDIDATE_WARN_ETS * c->params.election_timeout_ms;
        rpg_msec last = c->candidate_warned != 0 ? c->candidate_warned : c->candidate_since;
        if (now - last >= every) {
            c->candidate_warned = now;
            c->n_candidate_warnings++;
            log_warning("candidate for %llu ms without winning an election (term=%llu, election "
                        "timeout %u ms): no majority grants it a vote",
                        (unsigned long long)(now - c->candidate_since), (unsigned long long)term,
                        c->params.election_timeout_ms);
        }
    } else if (c->candidate_since != 0) {
        if (c->candidate_warned != 0) {
            log_info("no longer candidate after %llu ms: now %s (term=%llu)",
                     (unsigned long long)(now - c->candidate_since), cons_role_name(role),
                     (unsigned long long)term);
        }
        c->candidate_since = 0;
        c->candidate_warned = 0;
    }
}

rpg_msec cons_candidate_for(const struct cons *c, rpg_msec now)
{
    return c->candidate_since != 0 && now > c->candidate_since ? now - c->candidate_since : 0;
}

void cons_observe(struct cons *c)
{
    if (!live(c)) {
        return;
    }
    enum cons_role role = (enum cons_role)raft_state(c->raft);
    raft_term term = c->raft->current_term;
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_leader(c->raft, &leader_id, &leader_address);
    if (role == CONS_ROLE_FOLLOWER && leader_id != 0 && leader_id != c->id) {
        /* libraft restarts a follower's election timer on every message from its leader. */
        c->last_heard_leader = c->host.raft_time(c, c->raft->election_timer_start);
    }
    if (role != CONS_ROLE_LEADER || term != c->lease_term) {
        c->lease_until = 0;
    }
    candidate_watch(c, role, term);
    if (c->fsm.restored) {
        /* A snapshot was restored and libraft has now set the applied index to its own. */
        fsm_sum_record(&c->fsm, raft_last_applied(c->raft));
        c->fsm.restored = false;
    }

    if (role == c->role && term == c->term && leader_id == c->leader_id) {
        return;
    }
    if (role != c->role || term != c->term) {
        log_set_context(term, cons_role_name(role));
    }
    if (role == CONS_ROLE_CANDIDATE && c->role == CONS_ROLE_FOLLOWER) {
        /* Why an election starts: the operator's first question after a failover. */
        rpg_msec now = c->host.now(c);
        if (c->leader_id != 0 && c->last_heard_leader != 0) {
            log_warning("no message from leader %s for %llu ms (election timeout %u ms): "
                        "starting an election",
                        member_name_by_id(c, c->leader_id),
                        (unsigned long long)(now - c->last_heard_leader),
                        c->params.election_timeout_ms);
        } else {
            /* Again, without a leader since the last attempt: once is said above. */
            log_debug("no leader heard within the election timeout (%u ms): starting an "
                      "election",
                      c->params.election_timeout_ms);
        }
    }
    if (role != c->role) {
        log_info("raft role %s -> %s (term=%llu leader=%s)", cons_role_name(c->role),
                 cons_role_name(role), (unsigned long long)term,
                 leader_id != 0 ? member_name_by_id(c, leader_id) : "none");
    } else if (leader_id != c->leader_id) {
        log_info("raft leader is now %s (term=%llu, was %s)",
                 leader_id != 0 ? member_name_by_id(c, leader_id) : "none",
                 (unsigned long long)term,
                 c->leader_id != 0 ? member_name_by_id(c, c->leader_id) : "none");
    }
    if (role != CONS_ROLE_LEADER || term != c->term) {
        c->leader_ready = false;
        c->stepdown_transfer_at = 0;
        /* A new leader has until the bound to confirm its first write. */
        c->write_confirmed = c->host.now(c);
    }
    c->role = role;
    c->term = term;
    c->leader_id = leader_id;

    /* A new leader's log may end with entries of older terms whose commit it cannot know yet:
     * it acts only after its own barrier commits. */
    if (role == CONS_ROLE_LEADER && !c->leader_ready && !c->barrier_pending) {
        struct cons_req *q = req_new(c, REQ_BARRIER);
        if (q != NULL) {
            q->term = term;
            q->submitted = c->host.now(c);
            int rv = raft_barrier(c->raft, &q->u.barrier, barrier_cb);
            if (rv == 0) {
                c->barrier_pending = true;
                c->barrier_term = term;
                c->barrier_submitted = q->submitted;
            } else {
                req_free(q);
                log_warning("leader barrier not submitted: %s", raft_strerror(rv));
            }
        }
    }
    changed(c);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct cons_req *q = req->data;
    struct cons *c = q->c;
    if (!req_current(q)) {
        req_free(q);
        return;
    }
    raft_term term = q->term;
    req_free(q);
    c->barrier_pending = false;
    storage_raft_result(c, status, "own-term barrier");
    if (status != 0) {
        log_info("leader barrier failed: %s (term=%llu)", raft_strerror(status),
                 (unsigned long long)term);
        return;
    }
    if (live(c) && raft_state(c->raft) == RAFT_LEADER && c->raft->current_term == term) {
        c->leader_ready = true;
        c->lease_term = term;
        c->lease_until = c->barrier_submitted + lease_length(c);
        log_info("leader ready: own-term barrier committed (term=%llu index=%llu)",
                 (unsigned long long)term, (unsigned long long)c->raft->commit_index);
        changed(c);
    }
}

/* ---- the lease ----------------------------------------------------------------------------- */

const unsigned cons_lease_bucket_ms[CONS_LEASE_BUCKETS] = {1,   2,   5,   10,  20,  50,
                                                           100, 150, 200, 300, 500, 1000};

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
    bool current = req_current(q);
    rpg_msec submitted = q->submitted;
    raft_term term = q->term;
    req_free(q);
    if (!current) {
        return;
    }
    c->lease_pending = false;
    storage_raft_result(c, status, "lease barrier");
    if (status != 0 || !live(c) || raft_state(c->raft) != RAFT_LEADER ||
        c->raft->current_term != term || term != c->lease_term) {
        return;
    }
    lease_record(c, submitted);
    c->lease_stats.via_barrier++;
    lease_extend(c, submitted + lease_length(c));
}

static void lease_submit(struct cons *c)
{
    struct cons_req *q = req_new(c, REQ_LEASE);
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
        req_free(q);
        /* A write refused at once (raft_uv cannot prepare a segment) is a storage failure too. */
        storage_raft_refused(c, rv, "lease barrier");
    }
}

void cons_lease_renew(struct cons *c)
{
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready || c->lease_pending) {
        return;
    }
    lease_submit(c);
}

void cons_lease_renew_now(struct cons *c)
{
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
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
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready ||
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
    if (seq == 0 || p->seq != seq || p->granted || !live(c) || raft_state(c->raft) != RAFT_LEADER ||
        !c->leader_ready || c->raft->current_term != p->term || p->term != c->lease_term ||
        id == c->id) {
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
    lease_extend(c, p->sent + lease_length(c));
}

unsigned cons_echo_targets(const struct cons *c, uint64_t *ids, unsigned max)
{
    unsigned n = 0;
    if (!live(c)) {
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
    if (!live(c)) {
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

static int start_transfer(struct cons *c, uint64_t id);

static rpg_msec lease_length(const struct cons *c);

/* fence_flap_tick: a leader whose lease lapses again within the window hands leadership to a
 * healthy voter (lead_pick_voter, through the host) instead of starting its server between two
 * lapses. */
static bool flap_leading(const struct cons *c)
{
    return live(c) && raft_state(c->raft) == RAFT_LEADER && c->role == CONS_ROLE_LEADER &&
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
    int rv = c->transfer_pending ? 0 : start_transfer(c, id);
    if (rv != 0 && c->flap_refused_lapse == c->flap.last_lapse) {
        return; /* tried again every ET (a single voter has none to hand to): said once */
    }
    c->flap_refused_lapse = rv != 0 ? c->flap.last_lapse : 0;
    log_error("leader steps aside: its lease lapsed again %llu ms after the previous lapse "
              "(lapses within %llu ms hand over); handing leadership to %s%s%s",
              (unsigned long long)(c->flap.last_lapse - c->flap.prev_lapse),
              (unsigned long long)t.flap_window_ms,
              id != 0 ? member_name_by_id(c, id) : "the most up-to-date voter",
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
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER) {
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
        int rv = c->transfer_pending ? 0 : start_transfer(c, id);
        log_error("leader steps aside: %s (no write confirmed for %llu ms); handing leadership "
                  "to %s%s%s",
                  why, (unsigned long long)(now - confirmed),
                  id != 0 ? member_name_by_id(c, id) : "the most up-to-date voter",
                  rv != 0 ? ": transfer refused: " : "", rv != 0 ? raft_strerror(rv) : "");
    } else if (act == STORAGE_LEADER_EXIT && !c->failed) {
        c->failed = true;
        rpg_err(c->error, RPG_EIO,
                "leaving the raft group: still leader %llu ms after handing leadership over, "
                "and %s; the other members elect a leader once this agent is gone (dir=%s)",
                (unsigned long long)(now - c->stepdown_transfer_at), why,
                c->storage.dir != NULL ? c->storage.dir : "?");
        changed(c);
    }
}

rpg_msec cons_lease_until(const struct cons *c)
{
    return live(c) && c->role == CONS_ROLE_LEADER && c->leader_ready ? c->lease_until : 0;
}

rpg_msec cons_lease_fence(struct cons *c, rpg_msec now)
{
    rpg_msec until = cons_lease_until(c);
    fence_flap_note(&c->flap, flap_leading(c), until, now);
    return until;
}

/* ---- command submission ------------------------------------------------------------------ */

static void submit_done(struct raft_apply *req, int status, void *result)
{
    struct cons_req *q = req->data;
    struct cons *c = q->c;
    bool current = req_current(q);
    cons_submit_cb cb = q->cb;
    void *data = q->data;
    enum fsm_cmd_type type = q->type;
    req_free(q);
    if (!current) {
        return;
    }
    storage_raft_result(c, status, fsm_cmd_type_name(type));
    if (cb == NULL) {
        return;
    }
    int rc = 0;
    char msg[RPG_ERRMSG_SIZE] = "";
    if (status != 0) {
        rc = status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST ? RPG_ENOTLEADER : RPG_ERAFT;
        snprintf(msg, sizeof msg, "%s not committed: %s", fsm_cmd_type_name(type),
                 raft_strerror(status));
    } else {
        rc = fsm_result_code(result);
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", c->fsm.last_error);
        }
    }
    cb(data, rc, msg);
}

int cons_submit(struct cons *c, const struct fsm_cmd *cmd, cons_submit_cb cb, void *data,
                char *errmsg)
{
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the ready raft leader");
    }
    struct fsm_cmd copy = *cmd;
    copy.term = c->raft->current_term;
    struct raft_buffer buf;
    int rv = fsm_cmd_encode(&copy, &buf, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct cons_req *q = req_new(c, REQ_APPLY);
    if (q == NULL) {
        raft_free(buf.base);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    q->cb = cb;
    q->data = data;
    q->type = cmd->type;
    rv = raft_apply(c->raft, &q->u.apply, &buf, 1, submit_done);
    if (rv != 0) {
        raft_free(buf.base);
        req_free(q);
        return rpg_err(errmsg, rv == RAFT_NOTLEADER ? RPG_ENOTLEADER : RPG_ERAFT, "raft apply: %s",
                       raft_strerror(rv));
    }
    return 0;
}

int cons_member_add_cmd(const struct cons *c, const char *name, const char *raft_address,
                        const char *api_address, struct fsm_cmd *cmd, char *errmsg)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_MEMBER_ADD;
    struct fsm_member *m = &cmd->u.member_add;
    m->id = c->state.next_id;
    if (snprintf(m->name, sizeof m->name, "%s", name) >= (int)sizeof m->name ||
        snprintf(m->raft_address, sizeof m->raft_address, "%s", raft_address) >=
            (int)sizeof m->raft_address ||
        snprintf(m->api_address, sizeof m->api_address, "%s", api_address) >=
            (int)sizeof m->api_address) {
        return rpg_err(errmsg, RPG_EINVAL, "member name or address too long");
    }
    m->failover_priority = 1;
    return 0;
}

int cons_member_add(struct cons *c, const char *name, const char *raft_address,
                    const char *api_address, cons_submit_cb cb, void *data, char *errmsg)
{
    struct fsm_cmd cmd;
    int rv = cons_member_add_cmd(c, name, raft_address, api_address, &cmd, errmsg);
    return rv != 0 ? rv : cons_submit(c, &cmd, cb, data, errmsg);
}

int cons_member_remove(struct cons *c, const char *name, cons_submit_cb cb, void *data,
                       char *errmsg)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_MEMBER_REMOVE;
    if (snprintf(cmd.u.member_remove.name, sizeof cmd.u.member_remove.name, "%s", name) >=
        (int)sizeof cmd.u.member_remove.name) {
        return rpg_err(errmsg, RPG_EINVAL, "member name too long");
    }
    return cons_submit(c, &cmd, cb, data, errmsg);
}

/* ---- membership reconciliation (leader only) --------------------------------------------- */

static void init_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->init_pending = false;
    if (rc != 0) {
        log_error("cluster state initialisation failed: %s", msg);
    } else {
        log_info("cluster state initialised: scope=%s members=%u", c->state.scope,
                 c->state.n_members);
    }
}

static const struct raft_server *config_server(const struct cons *c, uint64_t id)
{
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].id == id) {
            return &rc->servers[i];
        }
    }
    return NULL;
}

/* The first ready leader of a fresh cluster records the initial members, checking that they
 * agree with the bootstrapped Raft configuration. */
static void submit_init(struct cons *c)
{
    const struct cons_params *p = &c->params;
    const struct raft_configuration *rc = &c->raft->configuration;
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_INIT;
    snprintf(cmd.u.init.scope, sizeof cmd.u.init.scope, "%s", p->scope);
    if (p->n_initial != rc->n) {
        log_error("refusing to initialise the cluster state: %u configured members but the raft "
                  "configuration has %u servers",
                  p->n_initial, rc->n);
        return;
    }
    for (unsigned i = 0; i < p->n_initial; i++) {
        const struct fsm_member *m = &p->initial[i];
        const struct raft_server *s = config_server(c, m->id);
        if (s == NULL || strcmp(s->address, m->raft_address) != 0) {
            log_error("refusing to initialise the cluster state: member %s (id=%llu raft=%s) is "
                      "not in the raft configuration; do all members have the same "
                      "raft.members list?",
                      m->name, (unsigned long long)m->id, m->raft_address);
            return;
        }
        cmd.u.init.members[i] = *m;
    }
    cmd.u.init.n_members = p->n_initial;
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(c, &cmd, init_done, c, errmsg) == 0) {
        c->init_pending = true;
    } else {
        log_warning("cluster state initialisation not submitted: %s", errmsg);
    }
}

static void config_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->config_pending = false;
    if (rc != 0) {
        log_warning("recording the dynamic configuration failed: %s", msg);
    } else {
        char lag[32] = "none";
        if (c->state.config.max_lag_set) {
            snprintf(lag, sizeof lag, "%llu", (unsigned long long)c->state.config.max_lag);
        }
        log_info("dynamic configuration recorded from this member's file: synchronous_mode=%s "
                 "synchronous_node_count=%u synchronous_commit=%s maximum_lag_on_failover=%s "
                 "parameters=%u pg_hba_lines=%u",
                 conf_sync_mode_name(c->state.config.sync_mode), c->state.config.sync_node_count,
                 conf_sync_commit_name(c->state.config.sync_commit), lag, c->state.config.n_params,
                 c->state.config.n_hba);
    }
}

/* The first ready leader records its file's defaults of the cluster-wide settings; from then on
 * the replicated values rule, and change only through the API. A file with
 * maximum_lag_on_failover records it too, in the entry that carries it (SET_DYNAMIC_LAG, state
 * version 7, with bootstrap.dcs's parameters and pg_hba lines); with only parameters or lines,
 * SET_DYNAMIC (version 6); with neither, the entry every release reads. */
static void submit_config(struct cons *c)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    if (c->params.max_lag_set || c->params.n_params > 0 || c->params.n_hba > 0) {
        cmd.type = c->params.max_lag_set ? FSM_CMD_SET_DYNAMIC_LAG : FSM_CMD_SET_DYNAMIC;
        cmd.u.set_dynamic.n_params = c->params.n_params;
        memcpy(cmd.u.set_dynamic.params, c->params.params, sizeof cmd.u.set_dynamic.params);
        cmd.u.set_dynamic.n_hba = c->params.n_hba;
        memcpy(cmd.u.set_dynamic.hba, c->params.hba, sizeof cmd.u.set_dynamic.hba);
        cmd.u.set_dynamic.sync_mode = c->params.sync_mode;
        cmd.u.set_dynamic.sync_node_count = c->params.sync_node_count;
        cmd.u.set_dynamic.sync_commit = c->params.sync_commit;
        cmd.u.set_dynamic.max_lag_set = c->params.max_lag_set;
        cmd.u.set_dynamic.max_lag = c->params.max_lag;
    } else {
        cmd.type = FSM_CMD_SET_CONFIG;
        cmd.u.set_config.sync_mode = c->params.sync_mode;
        cmd.u.set_config.sync_node_count = c->params.sync_node_count;
        cmd.u.set_config.sync_commit = c->params.sync_commit;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    if (cons_submit(c, &cmd, config_done, c, errmsg) == 0) {
        c->config_pending = true;
    } else {
        log_warning("dynamic configuration not submitted: %s", errmsg);
    }
}

static void seen_done(void *data, int rc, const char *msg)
{
    struct cons *c = data;
    c->seen_pending = false;
    if (rc != 0) {
        log_warning("recording a member's raft state failed: %s", msg);
    }
}

/* Whether server id's log holds entries past the bootstrap configuration (index 1), as far as
 * this leader knows: it could have counted towards a commit. */
static bool holds_entries(const struct cons *c, raft_id id)
{
    if (id == c->id) {
        return raft_last_index(c->raft) >= 2;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        if (rc->servers[i].id == id) {
            return c->raft->leader_state.progress[i].match_index >= 2;
        }
    }
    return false;
}

/* Records, one member at a time, that a member's Raft log holds replicated entries: should it
 * come back with an empty data directory, it has lost its log and vote and is refused (agent.c). */
static void submit_seen(struct cons *c)
{
    for (unsigned i = 0; i < c->state.n_members; i++) {
        const struct fsm_member *m = &c->state.members[i];
        if ((m->tags & FSM_TAG_RAFT_STATE) != 0 || !holds_entries(c, m->id)) {
            continue;
        }
        struct fsm_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_MEMBER_SEEN;
        cmd.u.member_seen.id = m->id;
        char errmsg[RPG_ERRMSG_SIZE];
        if (cons_submit(c, &cmd, seen_done, c, errmsg) == 0) {
            c->seen_pending = true;
            log_info("recording that %s holds raft state", m->name);
        } else {
            log_warning("raft state of %s not recorded: %s", m->name, errmsg);
        }
        return;
    }
}

/* Frees a completed request; its cons when the agent that made it is still attached, else NULL. */
static struct cons *req_end(struct cons_req *q)
{
    struct cons *c = req_current(q) ? q->c : NULL;
    req_free(q);
    return c;
}

static void change_done(struct raft_change *req, int status)
{
    struct cons *c = req_end(req->data);
    if (c == NULL) {
        return;
    }
    c->change_pending = false;
    if (status != 0) {
        log_warning("membership change failed: %s: %s", c->change_what, raft_strerror(status));
    } else {
        log_info("membership change done: %s", c->change_what);
    }
}

static void transfer_done(struct raft_transfer *req)
{
    /* Not freed here: libraft completes the transfer when the new leader is known, which can be
     * before the TimeoutNow message, sent from inside this same request (req->send), has been
     * written; its send callback then reads the request. A finished transfer request stays on
     * the list (a few hundred bytes per transfer) until cons_free_requests, after the server is
     * closed and every callback has run. */
    struct cons_req *q = req->data;
    struct cons *c = req_current(q) ? q->c : NULL;
    q->done = true;
    if (c == NULL) {
        return;
    }
    c->transfer_pending = false;
    raft_id id = 0;
    const char *address = NULL;
    raft_leader(c->raft, &id, &address);
    if (id == c->id) {
        c->n_transfers_failed++;
    }
    log_info("leadership transfer finished (leader=%s)",
             id != 0 ? member_name_by_id(c, id) : "none");
}

static int start_transfer(struct cons *c, uint64_t id)
{
    struct cons_req *q = req_new(c, REQ_TRANSFER);
    if (q == NULL) {
        return RAFT_NOMEM;
    }
    int rv = raft_transfer(c->raft, &q->u.transfer, id, transfer_done);
    if (rv != 0) {
        req_free(q);
        return rv;
    }
    c->transfer_pending = true;
    return 0;
}

void cons_reconcile(struct cons *c)
{
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER || !c->leader_ready) {
        return;
    }
    if (!c->state.initialized) {
        if (!c->init_pending && c->params.initial_self) {
            submit_init(c);
        }
        return;
    }
    if (!c->state.config.set && !c->config_pending) {
        submit_config(c);
    }
    if (!c->seen_pending) {
        submit_seen(c);
    }
    /* No configuration change from a leader that cannot persist: it hands leadership over
     * (cons_storage_tick). A change submitted just before its storage is known to fail meets
     * libraft 0.15's error path for a refused write of the change's entry (wal_hold_change:
     * the fence holds that write rather than refuse it, so the path is not taken). */
    if (c->change_pending || c->transfer_pending || c->storage.failed) {
        return;
    }
    struct cons_req *q = req_new(c, REQ_CHANGE);
    if (q == NULL) {
        return;
    }
    int rv = 0;
    /* Remove what the configuration has and the member list no longer does, before any
     * addition: a removed member is stopped by its operator once the member list drops it, and
     * a promotion that cannot finish (a spare that is down never catches up) must not keep
     * those departed voters in the configuration, where they count against the majority. */
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n; i++) {
        raft_id id = rc->servers[i].id;
        if (fsm_state_member_by_id(&c->state, id) != NULL) {
            continue;
        }
        req_free(q);
        if (id == c->id) {
            /* A leader does not remove itself: it hands over and lets the next one do it. */
            rv = start_transfer(c, 0);
            if (rv == 0) {
                log_info("handing leadership over before this member is removed");
            } else {
                log_warning("leadership transfer failed: %s", raft_strerror(rv));
            }
            return;
        }
        q = req_new(c, REQ_CHANGE);
        if (q == NULL) {
            return;
        }
        snprintf(c->change_what, sizeof c->change_what, "remove server id=%llu address=%s",
                 (unsigned long long)id, rc->servers[i].address);
        rv = raft_remove(c->raft, &q->u.change, id, change_done);
        goto submitted;
    }
    /* Add what the member list has and the configuration lacks, all of it before any promotion:
     * a spare that never catches up (its agent is gone) must not keep the next member out. */
    for (unsigned i = 0; i < c->state.n_members; i++) {
        const struct fsm_member *m = &c->state.members[i];
        if (config_server(c, m->id) == NULL) {
            snprintf(c->change_what, sizeof c->change_what, "add %s (id=%llu raft=%s) as spare",
                     m->name, (unsigned long long)m->id, m->raft_address);
            rv = raft_add(c->raft, &q->u.change, m->id, m->raft_address, change_done);
            goto submitted;
        }
    }
    /* Promote spares, each in turn after the last one tried, so that one that cannot catch up
     * does not hold back the others. */
    for (unsigned n = 0; n < c->state.n_members; n++) {
        unsigned i = (c->promote_next + n) % c->state.n_members;
        const struct fsm_member *m = &c->state.members[i];
        const struct raft_server *s = config_server(c, m->id);
        if (s == NULL || s->role == RAFT_VOTER) {
            continue;
        }
        c->promote_next = i + 1;
        snprintf(c->change_what, sizeof c->change_what,
                 "promote %s (id=%llu) to voter after catch-up", m->name,
                 (unsigned long long)m->id);
        rv = raft_assign(c->raft, &q->u.change, m->id, RAFT_VOTER, change_done);
        goto submitted;
    }
    req_free(q);
    return;

submitted:
    if (rv == 0) {
        c->change_pending = true;
        log_info("membership change started: %s", c->change_what);
        return;
    }
    req_free(q);
    if (rv == RAFT_IOERR || rv == RAFT_NOSPACE) {
        /* Only if the fence could not hold the write (out of memory): libraft 0.15 freed the
         * configuration it had installed (wal_hold_change), closing this server would free it
         * again, so Raft is not restarted in this process. */
        c->wal.config_freed = true;
        log_error("membership change refused by the raft log: %s: %s; libraft 0.15 keeps a "
                  "freed configuration after this, raft will not be restarted in this process",
                  c->change_what, raft_strerror(rv));
    } else if (rv != RAFT_CANTCHANGE) {
        log_warning("membership change refused: %s: %s", c->change_what, raft_strerror(rv));
    }
}

int cons_transfer(struct cons *c, uint64_t id, char *errmsg)
{
    if (!live(c) || raft_state(c->raft) != RAFT_LEADER) {
        return rpg_err(errmsg, RPG_ENOTLEADER, "this member is not the raft leader");
    }
    if (c->transfer_pending) {
        return rpg_err(errmsg, RPG_EBUSY, "a leadership transfer is already in progress");
    }
    const struct raft_server *s = config_server(c, id);
    if (s == NULL || s->role != RAFT_VOTER) {
        return rpg_err(errmsg, RPG_EINVAL, "server id=%llu is not a voter", (unsigned long long)id);
    }
    int rv = start_transfer(c, id);
    if (rv != 0) {
        return rpg_err(errmsg, RPG_ERAFT, "leadership transfer to %s: %s", member_name_by_id(c, id),
                       raft_strerror(rv));
    }
    return 0;
}

/* ---- observations ------------------------------------------------------------------------ */

uint64_t cons_commit_index(const struct cons *c)
{
    return c->attached ? c->raft->commit_index : 0;
}

uint64_t cons_applied_index(const struct cons *c)
{
    return c->attached ? raft_last_applied(c->raft) : 0;
}

bool cons_state_current(const struct cons *c)
{
    if (!c->attached || !c->state.initialized) {
        return false;
    }
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(c->raft, &leader, &address);
    return leader != 0 && raft_last_applied(c->raft) >= c->raft->commit_index;
}

uint64_t cons_last_index(const struct cons *c)
{
    return c->attached ? raft_last_index(c->raft) : 0;
}

bool cons_config_has(const struct cons *c, uint64_t id)
{
    return live(c) && config_server(c, id) != NULL;
}

void cons_leader(const struct cons *c, uint64_t *id, const char **address)
{
    *id = 0;
    *address = NULL;
    if (c->attached) {
        raft_id lid = 0;
        raft_leader(c->raft, &lid, address);
        *id = lid;
    }
}

int cons_voting(const struct cons *c, uint64_t id)
{
    if (!c->attached) {
        return CONS_VOTING_NONE;
    }
    const struct raft_server *s = config_server(c, id);
    return s != NULL ? s->role : CONS_VOTING_NONE;
}

unsigned cons_config_ids(const struct cons *c, uint64_t *ids, unsigned max)
{
    if (!c->attached) {
        return 0;
    }
    const struct raft_configuration *rc = &c->raft->configuration;
    for (unsigned i = 0; i < rc->n && i < max; i++) {
        ids[i] = rc->servers[i].id;
    }
    return rc->n;
}
