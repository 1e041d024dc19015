/* The storage health and the write fence: libraft's io wrapped so that after one failed write
 * (log, term or vote) the server writes nothing more until Raft restarts from its directory,
 * which is then checked against the log held in memory or the record a previous run left;
 * the probe's reports and the restart's bookkeeping. The libraft 0.15 behaviour each wrapper
 * works around is said at the wrapper. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/cons.h"
#include "raftpg/log.h"
#include "raftpg/storage.h"

#include "cons_int.h"

/* ---- storage health ---------------------------------------------------------------------- */

/* Recomputes storage.failed and logs only its transitions (the probe runs every second). */
static void storage_update(struct cons *c)
{
    bool failed = c->storage.probe_failed || c->storage.raft_failing || c->wal.fenced;
    if (failed && !c->storage.failed) {
        c->storage.since = cons_host_now(c);
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
                 (unsigned long long)(cons_host_now(c) - c->storage.since),
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
void cons_storage_raft_refused(struct cons *c, int status, const char *what)
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
void cons_storage_raft_result(struct cons *c, int status, const char *what)
{
    if (status == RAFT_IOERR || status == RAFT_NOSPACE) {
        cons_storage_raft_refused(c, status, what);
        storage_lost_writes(c, c->storage.raft_error);
    } else if (status == 0) {
        c->write_confirmed = cons_host_now(c);
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
    c->wal.fenced_at = cons_host_now(c);
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
    c->wal.held[c->wal.n_held++] = (struct cons_wal_append){req, cb, cons_host_now(c)};
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
    c->wal.pending[c->wal.n_pending++] = (struct cons_wal_append){req, cb, cons_host_now(c)};
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
    c->wal.probe_began = cons_host_now(c);
}

rpg_msec cons_restart_start_delay(struct cons *c)
{
    rpg_msec now = cons_host_now(c);
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
            cons_changed(c);
        }
    }
}
