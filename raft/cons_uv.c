/* The agent's Raft server on raft_uv (cons_uv.h): settings, the transport, the start with its
 * bootstrap, the storage probe and pending-failure record, the restart on the directory, and the
 * loop handles that tick the consensus logic (cons.c). One libuv glue around one struct raft; the
 * directory's offline side (identity, checks, recovery) is in cons_dir.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft/uv.h>

#include "raftpg/cons_uv.h"
#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/storage.h"
#include "raftpg/transport.h"
#include "raftpg/loopwatch.h"
#include "raftpg/timing.h"

#include "cons_uv_int.h"

/* ---- the agent's raft_uv server ---------------------------------------------------------- */

struct cons_uv {
    struct cons *c;
    uv_loop_t *loop;         /* borrowed */
    const struct conf *conf; /* borrowed */
    struct raft_uv_transport transport;
    bool authenticated; /* transport.h's transport, else libraft's plain TCP one */
    struct raft_io io;
    struct raft raft;
    bool raft_open;     /* raft_init succeeded and raft_close has not finished */
    bool restarting;    /* Raft closes to open again on the directory (cons.h, wal) */
    bool clear_pending; /* remove STORAGE_FAULT_FILE: a restart found the log intact */
    uv_check_t monitor; /* observes after every loop iteration */
    uv_timer_t reconcile_timer;
    uv_timer_t lease_timer;
    uv_timer_t start_timer;
    uv_timer_t storage_timer;
    uv_work_t probe_work; /* the directory probe, off the loop: a hung disk must not stall it */
    bool probe_busy;
    uint64_t probe_last; /* loop time the last probe began */
    int probe_rc;
    int probe_errno;
    bool probe_measured;
    uint64_t probe_free;
    char probe_error[RPG_ERRMSG_SIZE];
    int pending_fd;       /* STORAGE_PENDING_FILE, reserved at start; -1 when it could not be */
    int side_fd;          /* the same beside the directory (STORAGE_PENDING_SIDE_SUFFIX), or -1 */
    uint64_t id;          /* this server's Raft id, in every record */
    unsigned rec_written; /* c->wal.rec_seq last written to it */
    bool rec_sync;        /* written since its last fsync: the next probe syncs it */
    int rec_sync_rc;
    char rec_sync_error[RPG_ERRMSG_SIZE];
    bool rec_cleared;  /* zeros written: nothing pending after a verified start */
    bool mark_pending; /* write STORAGE_FAULT_FILE with mark_what in this probe */
    char mark_what[RPG_ERRMSG_SIZE];
    int mark_rc;
    char mark_error[RPG_ERRMSG_SIZE];
    int n_handles_open;
    void (*close_cb)(struct cons *c);
};

rpg_msec cons_uv_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (rpg_msec)ts.tv_sec * 1000 + (rpg_msec)(ts.tv_nsec / 1000000);
}

static rpg_msec uv_clock(struct cons *c)
{
    (void)c;
    return cons_uv_clock_ms();
}

/* raft_uv's io time is the loop's (CLOCK_MONOTONIC): shifted by the time suspended so far. A
 * suspension since t makes t look later, so a new leader waits longer, never shorter. */
static rpg_msec uv_raft_time(struct cons *c, raft_time t)
{
    (void)c;
    rpg_msec mono = uv_hrtime() / 1000000;
    rpg_msec boot = cons_uv_clock_ms();
    return (rpg_msec)t + (boot > mono ? boot - mono : 0);
}

/* A closed fence is recorded at once, in the loop, over the file reserved at start: pwrite into
 * blocks the file has needs no new space and leaves the data to the kernel if the agent is
 * killed next; its fsync follows in the next probe, off the loop. */
static void pending_record(struct cons *c)
{
    struct cons_uv *u = c->uv;
    if (c->wal.rec_seq == u->rec_written || c->wal.rec == NULL) {
        return;
    }
    u->rec_written = c->wal.rec_seq;
    c->wal.rec->id = u->id;
    const char *dir = u->conf->raft.data_dir;
    char errmsg[RPG_ERRMSG_SIZE], side[PATH_MAX];
    storage_pending_side_path(dir, side, sizeof side);
    bool in_dir = false, beside = false;
    if (u->pending_fd < 0) {
        log_error("raft storage: this failure cannot be recorded in the directory (%s/%s was "
                  "not reserved at start)",
                  dir, STORAGE_PENDING_FILE);
    } else if (storage_pending_write(u->pending_fd, c->wal.rec, errmsg) != 0) {
        log_error("raft storage: recording this failure in the directory: %s", errmsg);
    } else {
        in_dir = true;
    }
    /* Beside the directory too: a file system gone read-only takes nothing in it. */
    if (u->side_fd >= 0 && storage_pending_write(u->side_fd, c->wal.rec, errmsg) == 0) {
        beside = true;
    } else if (u->side_fd >= 0) {
        log_error("raft storage: recording this failure in %s: %s", side, errmsg);
    }
    if (!in_dir && !beside) {
        log_error("raft storage: this failure is recorded nowhere: if this agent ends before "
                  "raft restarts, its next start cannot check the directory %s (%s)",
                  dir, STORAGE_REMEDY);
        return;
    }
    u->rec_sync = true;
    u->rec_cleared = false;
    if (in_dir) {
        log_warning("raft storage: recorded in %s/%s that a write failed (stored up to index "
                    "%llu): a start after this run ends checks the directory against it",
                    dir, STORAGE_PENDING_FILE, (unsigned long long)c->wal.rec->acked);
    }
    if (beside) {
        log_warning("raft storage: recorded in %s that a write failed (stored up to index "
                    "%llu)%s",
                    side, (unsigned long long)c->wal.rec->acked,
                    in_dir ? ", a copy beside the directory"
                           : ": a start after this run ends checks the directory against it");
    }
}

static void monitor_cb(uv_check_t *h)
{
    LOOPWATCH_SPAN("raft monitor", cons_observe(h->data); pending_record(h->data));
}

static void reconcile_cb(uv_timer_t *t)
{
    LOOPWATCH_SPAN("raft reconcile", cons_reconcile(t->data); cons_storage_tick(t->data));
}

static void cons_finish(struct cons *c);
static void restart_raft(struct cons *c);

static void probe_work_cb(uv_work_t *w)
{
    struct cons_uv *u = w->data;
    const char *dir = u->conf->raft.data_dir;
    char errmsg[RPG_ERRMSG_SIZE];
    u->probe_measured = storage_free_bytes(dir, &u->probe_free, errmsg) == 0;
    u->probe_rc = storage_probe(dir, &u->probe_errno, u->probe_error);
    if (u->clear_pending && u->probe_rc == 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", dir, STORAGE_FAULT_FILE);
        if (unlink(path) != 0 && errno != ENOENT) {
            u->probe_rc = RPG_EIO;
            u->probe_errno = errno;
            snprintf(u->probe_error, sizeof u->probe_error, "remove %.180s: %s (errno=%d)", path,
                     strerror(errno), errno);
        }
    }
    if (u->mark_pending && u->probe_rc == 0) {
        u->mark_rc = storage_mark_fault(dir, u->mark_what, u->mark_error);
    }
    if (u->rec_sync) {
        /* Synced when either copy is: one on a read-only file system never will be. */
        int rc_dir = -1, rc_side = -1;
        char side_error[RPG_ERRMSG_SIZE];
        if (u->pending_fd >= 0) {
            rc_dir = storage_pending_sync(u->pending_fd, u->rec_sync_error);
        }
        if (u->side_fd >= 0) {
            rc_side = storage_pending_sync(u->side_fd, side_error);
        }
        u->rec_sync_rc = rc_dir == 0 || rc_side == 0 ? 0 : RPG_EIO;
        if (u->pending_fd < 0 && u->side_fd >= 0) {
            snprintf(u->rec_sync_error, sizeof u->rec_sync_error, "%s", side_error);
        }
    }
}

static void probe_after_cb(uv_work_t *w, int status)
{
    struct cons_uv *u = w->data;
    struct cons *c = u->c;
    u->probe_busy = false;
    if (u->close_cb != NULL) {
        cons_finish(c);
        return;
    }
    if (status != 0) {
        return;
    }
    if (u->mark_pending && u->probe_rc == 0) {
        if (u->mark_rc == 0) {
            c->storage.lost_recorded = true;
            log_warning("raft storage: recorded in %s/%s that this log may have lost entries; "
                        "the agent keeps running on the entries it holds in memory, and will "
                        "refuse to start on this directory",
                        u->conf->raft.data_dir, STORAGE_FAULT_FILE);
        } else {
            log_warning("raft storage: %s", u->mark_error);
        }
    }
    if (u->rec_sync && u->rec_sync_rc == 0) {
        u->rec_sync = false;
    } else if (u->rec_sync && u->rec_sync_rc != 0) {
        log_warning("raft storage: %s (retried at the next probe)", u->rec_sync_error);
    }
    if (u->clear_pending && u->probe_rc == 0) {
        u->clear_pending = false;
        log_info("raft storage: removed %s/%s: raft restarted on an intact log",
                 u->conf->raft.data_dir, STORAGE_FAULT_FILE);
    }
    cons_storage_report(c, u->probe_rc, u->probe_errno, u->probe_error, u->probe_measured,
                        u->probe_free);
    if (c->wal.restart_wanted) {
        restart_raft(c);
    }
}

static void storage_timer_cb(uv_timer_t *t)
{
    struct cons *c = t->data;
    struct cons_uv *u = c->uv;
    if (u->probe_busy) {
        return; /* a probe that hangs is itself the symptom: the next one waits for it */
    }
    uint64_t now = uv_now(u->loop);
    if (u->probe_last != 0 && now - u->probe_last < TIMING_STORAGE_PROBE_INTERVAL_MS &&
        !(c->wal.fenced && now - u->probe_last >= TIMING_STORAGE_PROBE_FENCED_MS)) {
        return;
    }
    u->probe_last = now;
    u->mark_pending = c->storage.lost_writes && !c->storage.lost_recorded;
    u->mark_rc = -1;
    if (u->mark_pending) {
        snprintf(u->mark_what, sizeof u->mark_what, "%s", c->storage.lost_what);
    }
    u->probe_work.data = u;
    u->rec_sync_rc = -1;
    if (uv_queue_work(u->loop, &u->probe_work, probe_work_cb, probe_after_cb) == 0) {
        u->probe_busy = true;
        cons_storage_probe_begin(c);
    }
}

static void lease_timer_cb(uv_timer_t *t)
{
    LOOPWATCH_SPAN("lease renewal", cons_lease_renew(t->data));
}

static void start_timer_cb(uv_timer_t *t)
{
    struct cons *c = t->data;
    struct cons_uv *u = c->uv;
    int rv;
    LOOPWATCH_SPAN("raft start", rv = raft_start(&u->raft));
    if (rv != 0) {
        c->failed = true;
        rpg_err(c->error, rv == RAFT_CORRUPT ? RPG_ECORRUPT : RPG_ERAFT,
                "raft start (data directory %s): %s", u->conf->raft.data_dir,
                raft_errmsg(&u->raft));
        if (rv == RAFT_CORRUPT && (c->wal.n_restarts > 0 || c->wal.from_record)) {
            /* The directory lost what this server held: refuse it at the next start too. */
            log_error("raft directory %s does not hold the log this member wrote: %s",
                      u->conf->raft.data_dir, STORAGE_REMEDY);
            char errmsg[RPG_ERRMSG_SIZE];
            if (storage_mark_fault(u->conf->raft.data_dir, c->error, errmsg) != 0) {
                log_warning("raft storage: %s", errmsg);
            }
        }
        if (c->host.on_change != NULL) {
            c->host.on_change(c, c->host.data);
        }
        return;
    }
    cons_set_running(c);
    if (c->wal.verified) {
        c->wal.verified = false;
        u->clear_pending = true;
        /* Nothing pending any more: the directory holds the log this server held. In the loop,
         * so that a record of a later failure cannot be overwritten by this clearing. */
        char errmsg[RPG_ERRMSG_SIZE];
        if (c->wal.rec_seq == u->rec_written) {
            int fds[2] = {u->pending_fd, u->side_fd};
            for (unsigned k = 0; k < 2; k++) {
                if (fds[k] < 0) {
                    continue;
                }
                if (storage_pending_write(fds[k], NULL, errmsg) == 0) {
                    u->rec_sync = true;
                    u->rec_cleared = true;
                } else {
                    log_warning("raft storage: clearing the record of the failure%s: %s",
                                k == 1 ? " beside the directory" : "", errmsg);
                }
            }
        }
    }
    uv_check_start(&u->monitor, monitor_cb);
    uv_timer_start(&u->reconcile_timer, reconcile_cb, TIMING_RECONCILE_INTERVAL_MS,
                   TIMING_RECONCILE_INTERVAL_MS);
    struct fence_timing timing;
    fence_timing_init(&timing, u->conf->raft.election_timeout_ms);
    uv_timer_start(&u->lease_timer, lease_timer_cb, timing.renew_ms, timing.renew_ms);
}

static void params_of(const struct conf *conf, struct cons_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->scope, sizeof p->scope, "%s", conf->scope);
    p->election_timeout_ms = conf->raft.election_timeout_ms;
    /* Bootstrap ids are positions in the configured list. */
    for (unsigned i = 0; i < conf->raft.n_members && i < FSM_MEMBERS_MAX; i++) {
        const struct conf_member *cm = &conf->raft.members[i];
        struct fsm_member *m = &p->initial[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "%s", cm->name);
        snprintf(m->raft_address, sizeof m->raft_address, "%s", cm->raft);
        snprintf(m->api_address, sizeof m->api_address, "%s", cm->api);
        m->failover_priority = 1;
        p->n_initial++;
    }
    p->initial_self = conf_self(conf) != NULL;
    p->sync_mode = (uint8_t)conf->sync.mode;
    p->sync_node_count = conf->sync.node_count;
    p->sync_commit = (uint8_t)conf->sync.commit;
    p->max_lag_set = conf->max_lag.set;
    p->max_lag = conf->max_lag.bytes;
    /* conf_load checked their number and sizes. */
    for (unsigned i = 0; i < conf->dcs.n_parameters && i < FSM_PARAMS_MAX; i++) {
        rpg_fmt(p->params[i].name, sizeof p->params[i].name, "%s", conf->dcs.parameters[i].key);
        rpg_fmt(p->params[i].value, sizeof p->params[i].value, "%s", conf->dcs.parameters[i].value);
        p->n_params++;
    }
    for (unsigned i = 0; i < conf->dcs.n_pg_hba && i < FSM_HBA_MAX; i++) {
        rpg_fmt(p->hba[i], sizeof p->hba[i], "%s", conf->dcs.pg_hba[i]);
        p->n_hba++;
    }
}

static void raft_closed(struct raft *r);

static void raft_settings(struct cons_uv *u)
{
    const struct conf *conf = u->conf;
    raft_set_election_timeout(&u->raft, conf->raft.election_timeout_ms);
    raft_set_heartbeat_timeout(&u->raft, conf->raft.heartbeat_timeout_ms);
    raft_set_pre_vote(&u->raft, conf->raft.pre_vote);
    raft_set_snapshot_threshold(&u->raft, 1024);
    raft_set_snapshot_trailing(&u->raft, 256);
    raft_set_max_catch_up_rounds(&u->raft, 10);
    raft_set_max_catch_up_round_duration(&u->raft, 5 * conf->raft.election_timeout_ms);
}

/* The Raft transport: authenticated and encrypted when raft.secret_file is set, libraft's plain
 * TCP transport otherwise (with a warning: anyone who reaches the port is a peer, and libraft
 * 0.15 crashes on some malformed messages, README "Security"). */
static int transport_start(struct cons_uv *u, char *errmsg)
{
    struct transport_secrets secrets;
    memset(&secrets, 0, sizeof secrets);
    int rv = conf_secret_read(u->conf, false, false, secrets.primary, errmsg);
    if (rv == RPG_ENOTFOUND) {
        log_warning("raft transport: UNAUTHENTICATED and UNENCRYPTED: raft.secret_file is not "
                    "set, so anyone who reaches %s can take part in the Raft group or crash this "
                    "agent; create a secret with 'raftpg gen-secret FILE' and set "
                    "raft.secret_file on every member",
                    u->conf->raft.listen);
        rv = raft_uv_tcp_init(&u->transport, u->loop);
        if (rv != 0) {
            return rpg_err(errmsg, RPG_ERAFT, "raft transport: %s", raft_strerror(rv));
        }
        u->authenticated = false;
        return 0;
    }
    if (rv == 0) {
        rv = conf_secret_read(u->conf, true, false, secrets.previous, errmsg);
        secrets.has_previous = rv == 0;
        if (rv == RPG_ENOTFOUND) {
            rv = 0;
        }
    }
    if (rv == 0) {
        rv = transport_init(&u->transport, u->loop, u->conf->scope, &secrets, errmsg);
    }
    bool previous = secrets.has_previous;
    sodium_memzero(&secrets, sizeof secrets);
    if (rv != 0) {
        return rv;
    }
    u->authenticated = true;
    log_info("raft transport: authenticated and encrypted (secret_file=%s%s%s)",
             u->conf->raft.secret_file, previous ? " secret_file_previous=" : "",
             previous ? u->conf->raft.secret_file_previous : "");
    return 0;
}

static void transport_release(struct cons_uv *u)
{
    if (u->authenticated) {
        transport_close(&u->transport);
    } else {
        raft_uv_tcp_close(&u->transport);
    }
}

/* The record of a failure the previous run had pending: the one in the directory, else the one
 * beside it (written there when the directory took nothing), unless that one was written by
 * another server (a directory since moved aside and started afresh under a new id). */
static int pending_read_start(const char *dir, uint64_t id, struct storage_pending *p, char *errmsg)
{
    int rv = storage_pending_read(dir, p, errmsg);
    if (rv != 0 || p->present) {
        return rv;
    }
    char side[PATH_MAX];
    storage_pending_side_path(dir, side, sizeof side);
    rv = storage_pending_read_path(dir, side, p, errmsg);
    if (rv != 0 || !p->present) {
        return rv;
    }
    if (p->id != id) {
        log_info("raft storage: %s records a failure of server id %llu, not of this one (id "
                 "%llu): a directory moved aside since; ignored, and cleared",
                 side, (unsigned long long)p->id, (unsigned long long)id);
        p->present = false;
        return 0;
    }
    log_warning("raft storage: the previous run recorded its pending failure beside the "
                "directory (%s), not in it: the directory took no writes then",
                side);
    return 0;
}

/* Reserves both records (storage.h): a start that checked or ignored them overwrites them with
 * zeros once raft started (start_timer_cb), or here for the one beside a directory it ignored. */
static void pending_reserve(struct cons_uv *u, const char *dir)
{
    char why[RPG_ERRMSG_SIZE], side[PATH_MAX];
    if (storage_pending_open(dir, &u->pending_fd, why) != 0) {
        log_warning("raft storage: %s: a storage failure of this run cannot be recorded in the "
                    "directory for the next start",
                    why);
    }
    storage_pending_side_path(dir, side, sizeof side);
    if (storage_pending_open_path(side, &u->side_fd, why) != 0) {
        log_warning("raft storage: %s: a storage failure that makes the directory read-only "
                    "cannot be recorded for the next start",
                    why);
        return;
    }
    struct stat d, p;
    if (stat(dir, &d) == 0 && fstat(u->side_fd, &p) == 0 && d.st_dev == p.st_dev) {
        log_info("raft storage: %s is on the file system of the directory: a failure that makes "
                 "it read-only cannot be recorded for the next start (README \"Storage "
                 "faults\")",
                 side);
    }
    struct storage_pending *rec = malloc(sizeof *rec);
    char errmsg[RPG_ERRMSG_SIZE];
    if (rec != NULL && storage_pending_read_path(dir, side, rec, errmsg) == 0 && rec->present &&
        rec->id != u->id && storage_pending_write(u->side_fd, NULL, errmsg) == 0) {
        storage_pending_sync(u->side_fd, errmsg);
    }
    free(rec);
}

int cons_start(struct cons *c, uv_loop_t *loop, const struct conf *conf, uint64_t id,
               bool bootstrap, cons_change_cb on_change, void *data, char *errmsg)
{
    cons_setup(c);
    const char *dir = conf->raft.data_dir;
    int rv = cons_mkdir_p(dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    size_t segment_size = 0;
    uint64_t free_bytes = 0;
    rv = cons_storage_check(dir, &segment_size, &free_bytes, errmsg);
    if (rv != 0) {
        return rv;
    }
    log_info("raft storage: dir=%s free=%llu bytes (open segments included) "
             "open_segment_size=%zu bytes",
             dir, (unsigned long long)free_bytes, segment_size);
    /* A run that ended with a storage failure pending (killed before Raft restarted): the load
     * checks the directory against what it recorded. */
    struct storage_pending *pending = malloc(sizeof *pending);
    if (pending == NULL) {
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    rv = pending_read_start(dir, id, pending, errmsg);
    if (rv != 0) {
        free(pending);
        return rv;
    }
    struct cons_uv *u = calloc(1, sizeof *u);
    if (u == NULL) {
        free(pending);
        return rpg_err(errmsg, RPG_ENOMEM, "out of memory");
    }
    u->pending_fd = -1;
    u->side_fd = -1;
    u->id = id;
    pending_reserve(u, dir);
    u->c = c;
    u->loop = loop;
    u->conf = conf;
    rv = transport_start(u, errmsg);
    if (rv != 0) {
        goto err_free;
    }
    rv = raft_uv_init(&u->io, loop, dir, &u->transport);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft storage %s: %s%s", dir, u->io.errmsg,
                strstr(u->io.errmsg, "probe") != NULL
                    ? " (the file system must support direct/async I/O; check "
                      "/proc/sys/fs/aio-max-nr)"
                    : "");
        transport_release(u);
        rv = RPG_ERAFT;
        goto err_free;
    }
    /* A corrupt segment must stop the agent, not be renamed aside silently (RAFT-NOTES). */
    raft_uv_set_auto_recovery(&u->io, false);
    raft_uv_set_segment_size(&u->io, segment_size);

    rv = raft_init(&u->raft, &u->io, &c->fsm.raft, id, conf->raft.listen);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft init: %s", raft_errmsg(&u->raft));
        raft_uv_close(&u->io);
        transport_release(u);
        rv = RPG_ERAFT;
        goto err_free;
    }
    u->raft_open = true;
    u->raft.data = c;
    c->uv = u;
    raft_settings(u);
    cons_wal_wrap(c, &u->io);
    c->storage.dir = dir;
    if (pending->present) {
        cons_wal_expect(c, pending);
    }
    free(pending);
    pending = NULL;

    struct cons_params params;
    params_of(conf, &params);
    if (bootstrap && params.initial_self) {
        struct raft_configuration configuration;
        raft_configuration_init(&configuration);
        for (unsigned i = 0; i < params.n_initial && rv == 0; i++) {
            rv = raft_configuration_add(&configuration, params.initial[i].id,
                                        params.initial[i].raft_address, RAFT_VOTER);
        }
        if (rv == 0) {
            rv = raft_bootstrap(&u->raft, &configuration);
            if (rv == 0) {
                log_info("bootstrapped raft with %u initial members", params.n_initial);
            } else if (rv == RAFT_CANTBOOTSTRAP) {
                rv = 0; /* state already present: a restart, never bootstrap twice */
            }
        }
        raft_configuration_close(&configuration);
        if (rv != 0) {
            rpg_err(errmsg, RPG_ERAFT, "raft bootstrap: %s", raft_strerror(rv));
            goto err_close;
        }
    }
    struct cons_host host = {
        .now = uv_clock,
        .raft_time = uv_raft_time,
        .on_change = on_change,
        .data = data,
    };
    c->storage.dir = dir;
    c->storage.segment_size = segment_size;
    cons_attach(c, &u->raft, id, &params, &host);

    uv_check_init(loop, &u->monitor);
    u->monitor.data = c;
    uv_timer_init(loop, &u->reconcile_timer);
    u->reconcile_timer.data = c;
    uv_timer_init(loop, &u->lease_timer);
    u->lease_timer.data = c;
    uv_timer_init(loop, &u->start_timer);
    u->start_timer.data = c;
    uv_timer_init(loop, &u->storage_timer);
    u->storage_timer.data = c;
    u->n_handles_open = 5;
    uv_timer_start(&u->storage_timer, storage_timer_cb, 0, TIMING_STORAGE_PROBE_FENCED_MS);
    /* raft_start runs ET after the process starts: a restarted node could otherwise vote at once
     * for a candidate while the leader it acknowledged just before the restart still holds its
     * lease (RAFT-NOTES, "Holes to close"). */
    uv_timer_start(&u->start_timer, start_timer_cb, conf->raft.election_timeout_ms, 0);
    return 0;

err_close:
    /* raft_init succeeded, so raft must be closed through the loop before io is released. */
    raft_close(&u->raft, raft_closed);
    for (int i = 0; i < 1000 && u->raft_open; i++) {
        uv_run(loop, UV_RUN_ONCE);
    }
    cons_free_requests(c);
    cons_wal_unwrap(c);
    c->uv = NULL;
    rv = RPG_ERAFT;
err_free:
    if (u->pending_fd >= 0) {
        close(u->pending_fd);
    }
    if (u->side_fd >= 0) {
        close(u->side_fd);
    }
    free(u);
    free(pending);
    return rv;
}

static void cons_finish(struct cons *c)
{
    struct cons_uv *u = c->uv;
    if (u->n_handles_open == 0 && !u->raft_open && !u->probe_busy && u->close_cb != NULL) {
        void (*cb)(struct cons *) = u->close_cb;
        cons_free_requests(c);
        cons_wal_unwrap(c);
        c->uv = NULL;
        if (u->pending_fd >= 0) {
            close(u->pending_fd);
        }
        if (u->side_fd >= 0) {
            close(u->side_fd);
        }
        free(u);
        cb(c);
    }
}

static void handle_closed(uv_handle_t *h)
{
    struct cons *c = h->data;
    c->uv->n_handles_open--;
    cons_finish(c);
}

/* The second half of a restart: Raft, its storage and its transport open again on the same
 * directory, as in a new process (cons_start), and Raft starts one election timeout later. A
 * failure ends the agent as a failed start would. */
static void reopen_raft(struct cons *c)
{
    struct cons_uv *u = c->uv;
    const char *dir = u->conf->raft.data_dir;
    char errmsg[RPG_ERRMSG_SIZE];
    u->restarting = false;
    cons_restart_reset(c);
    int rv = transport_start(u, errmsg);
    if (rv != 0) {
        goto err;
    }
    rv = raft_uv_init(&u->io, u->loop, dir, &u->transport);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft storage %s: %s", dir, u->io.errmsg);
        transport_release(u);
        goto err;
    }
    raft_uv_set_auto_recovery(&u->io, false);
    raft_uv_set_segment_size(&u->io, c->storage.segment_size);
    rv = raft_init(&u->raft, &u->io, &c->fsm.raft, c->id, u->conf->raft.listen);
    if (rv != 0) {
        rpg_err(errmsg, RPG_ERAFT, "raft init: %s", raft_errmsg(&u->raft));
        raft_uv_close(&u->io);
        transport_release(u);
        goto err;
    }
    u->raft_open = true;
    u->raft.data = c;
    raft_settings(u);
    cons_wal_wrap(c, &u->io);
    cons_attach(c, &u->raft, c->id, &c->params, &c->host);
    uv_timer_start(&u->start_timer, start_timer_cb, cons_restart_start_delay(c), 0);
    return;

err:
    c->failed = true;
    rpg_err(c->error, RPG_ERAFT, "restarting raft from %s: %s", dir, errmsg);
    if (c->host.on_change != NULL) {
        c->host.on_change(c, c->host.data);
    }
}

/* The write fence asks for it (cons.h, wal): Raft closes as at a process exit, so that raft_uv
 * finishes its segments, then opens again (reopen_raft). */
static void restart_raft(struct cons *c)
{
    struct cons_uv *u = c->uv;
    if (u->restarting || u->close_cb != NULL || !u->raft_open || !c->attached) {
        return;
    }
    u->restarting = true;
    uv_check_stop(&u->monitor);
    uv_timer_stop(&u->reconcile_timer);
    uv_timer_stop(&u->lease_timer);
    uv_timer_stop(&u->start_timer);
    cons_restart_begin(c);
    raft_close(&u->raft, raft_closed);
}

static void raft_closed(struct raft *r)
{
    struct cons *c = r->data;
    struct cons_uv *u = c->uv;
    raft_uv_close(&u->io);
    transport_release(u);
    u->raft_open = false;
    /* raft_close completed every pending request first, so nothing is left to drop. */
    cons_detach(c);
    if (u->close_cb != NULL) {
        u->restarting = false;
        cons_finish(c);
    } else if (u->restarting) {
        reopen_raft(c);
    }
}

void cons_close(struct cons *c, void (*cb)(struct cons *c))
{
    struct cons_uv *u = c->uv;
    if (u == NULL) {
        cb(c);
        return;
    }
    u->close_cb = cb;
    if (u->n_handles_open > 0) {
        uv_close((uv_handle_t *)&u->monitor, handle_closed);
        uv_close((uv_handle_t *)&u->reconcile_timer, handle_closed);
        uv_close((uv_handle_t *)&u->lease_timer, handle_closed);
        uv_close((uv_handle_t *)&u->start_timer, handle_closed);
        uv_close((uv_handle_t *)&u->storage_timer, handle_closed);
    }
    if (u->restarting) {
        return; /* raft_closed finishes */
    }
    if (u->raft_open) {
        raft_close(&u->raft, raft_closed);
    } else {
        cons_finish(c);
    }
}
