/* raft/cons.c on three (and four) raft_fixture servers in virtual time, ticked as cons_uv.c ticks
 * it: observation after every step, the lease every ET/4, reconciliation every 100 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "raftpg/cons.h"
#include "raftpg/err.h"

#define N_INITIAL 3
#define N_MAX 5
#define ET_MS 500
#define HEARTBEAT_MS 100
#define LEASE_MS (ET_MS * 8 / 10)
#define RECONCILE_MS 100
#define WAIT_MS 20000

struct cluster {
    struct raft_fixture f;
    unsigned n;
    struct cons cons[N_MAX];
    rpg_msec next_lease, next_reconcile;
    /* Lease safety, checked after every step: two nodes never hold a lease at the same time. */
    unsigned overlaps;
    unsigned changes[N_MAX]; /* on_change calls */
    /* The lease echo (fence.h), its side channel modelled here: a probe reaches each voter at
     * once unless echo_cut, which answers it as its Raft state says. */
    bool echo;
    bool echo_cut;
    struct {
        bool used;
        unsigned from, to;
        uint64_t seq;
        raft_term term;
        rpg_msec arrived; /* on the receiver's Raft clock */
    } probes[64];
    unsigned echo_yes, echo_no;
};

static struct cluster *cluster_of(struct cons *c, unsigned *idx)
{
    struct cluster *cl = c->host.data;
    *idx = (unsigned)(c - cl->cons);
    return cl;
}

static rpg_msec fx_now(struct cons *c)
{
    unsigned i;
    return (rpg_msec)cluster_of(c, &i)->f.time;
}

static rpg_msec fx_raft_time(struct cons *c, raft_time t)
{
    (void)c;
    return (rpg_msec)t;
}

static void on_change(struct cons *c, void *data)
{
    struct cluster *cl = data;
    cl->changes[c - cl->cons]++;
}

static void params_of(struct cluster *cl, struct cons_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->scope, sizeof p->scope, "fixture");
    p->election_timeout_ms = ET_MS;
    for (unsigned i = 0; i < N_INITIAL; i++) {
        struct fsm_member *m = &p->initial[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "node%u", i + 1);
        snprintf(m->raft_address, sizeof m->raft_address, "%s",
                 raft_fixture_get(&cl->f, i)->address);
        snprintf(m->api_address, sizeof m->api_address, "127.0.0.1:%u", 8001 + i);
        m->failover_priority = 1;
    }
    p->n_initial = N_INITIAL;
    p->initial_self = true;
    p->sync_mode = SYNC_MODE_QUORUM;
    p->sync_node_count = 1;
    p->sync_commit = FSM_SYNC_COMMIT_ON;
}

static void attach(struct cluster *cl, unsigned i)
{
    struct cons_params p;
    params_of(cl, &p);
    p.initial_self = i < N_INITIAL;
    struct cons_host host = {
        .now = fx_now, .raft_time = fx_raft_time, .on_change = on_change, .data = cl};
    cons_attach(&cl->cons[i], raft_fixture_get(&cl->f, i), i + 1, &p, &host);
    cons_set_running(&cl->cons[i]);
}

/* Each server's directory: below cons.c's write fence, the fixture's log, where a failed write
 * leaves nothing (as raft_uv rolls its next index back), while libraft hears of the failure when
 * the write completes and keeps the entries in memory. */
struct disk {
    struct raft_io *io;
    int (*append)(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
                  unsigned n, raft_io_append_cb cb);
    raft_index stored;
    int fail;   /* writes submitted now fail with this status */
    int refuse; /* writes are refused at submission with this status */
    struct {
        struct raft_io_append *req;
        raft_io_append_cb cb;
        unsigned n;
        int status;
    } pending[64];
    unsigned n_pending;
};
static struct disk disks[N_MAX];

static void disk_done(struct raft_io_append *req, int status)
{
    for (unsigned i = 0; i < N_MAX; i++) {
        struct disk *d = &disks[i];
        for (unsigned k = 0; k < d->n_pending; k++) {
            if (d->pending[k].req != req) {
                continue;
            }
            raft_io_append_cb cb = d->pending[k].cb;
            unsigned n = d->pending[k].n;
            status = status != 0 ? status : d->pending[k].status;
            memmove(&d->pending[k], &d->pending[k + 1],
                    (d->n_pending - k - 1) * sizeof d->pending[0]);
            d->n_pending--;
            if (status != 0) {
                assert_int_equal(d->io->truncate(d->io, d->stored + 1), 0);
            } else {
                d->stored += n;
            }
            req->cb = cb;
            cb(req, status);
            return;
        }
    }
    fail();
}

static int disk_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    for (unsigned i = 0; i < N_MAX; i++) {
        struct disk *d = &disks[i];
        if (d->io != io) {
            continue;
        }
        assert_true(d->n_pending < 64);
        if (d->refuse != 0) {
            return d->refuse;
        }
        int rv = d->append(io, req, entries, n, disk_done);
        if (rv == 0) {
            d->pending[d->n_pending].req = req;
            d->pending[d->n_pending].cb = cb;
            d->pending[d->n_pending].n = n;
            d->pending[d->n_pending].status = d->fail;
            d->n_pending++;
        }
        return rv;
    }
    fail();
    return RAFT_IOERR;
}

/* The disk below, then cons.c's write fence above it (raft->data is the cons). */
static void wrap(struct cluster *cl, unsigned i, raft_index stored)
{
    struct raft_io *io = &cl->f.servers[i].io;
    struct disk *d = &disks[i];
    memset(d, 0, sizeof *d);
    d->io = io;
    d->append = io->append;
    d->stored = stored;
    io->append = disk_append;
    raft_fixture_get(&cl->f, i)->data = &cl->cons[i];
    cons_wal_wrap(&cl->cons[i], io);
}

static void configure(struct cluster *cl, unsigned i)
{
    struct raft *r = raft_fixture_get(&cl->f, i);
    raft_set_election_timeout(r, ET_MS);
    raft_set_heartbeat_timeout(r, HEARTBEAT_MS);
    raft_set_pre_vote(r, true);
    raft_fixture_set_randomized_election_timeout(&cl->f, i, ET_MS + 150 * i);
}

static int setup(void **state)
{
    struct cluster *cl = test_calloc(1, sizeof *cl);
    assert_int_equal(raft_fixture_initialize(&cl->f), 0);
    for (unsigned i = 0; i < N_INITIAL; i++) {
        cons_setup(&cl->cons[i]);
        assert_int_equal(raft_fixture_grow(&cl->f, &cl->cons[i].fsm.raft), 0);
        configure(cl, i);
    }
    cl->n = N_INITIAL;
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&cl->f, N_INITIAL, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&cl->f, &conf), 0);
    raft_configuration_close(&conf);
    for (unsigned i = 0; i < N_INITIAL; i++) {
        wrap(cl, i, 1); /* the bootstrap configuration */
    }
    assert_int_equal(raft_fixture_start(&cl->f), 0);
    for (unsigned i = 0; i < N_INITIAL; i++) {
        attach(cl, i);
    }
    *state = cl;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *cl = *state;
    for (unsigned i = 0; i < cl->n; i++) {
        cons_detach(&cl->cons[i]);
    }
    raft_fixture_close(&cl->f);
    for (unsigned i = 0; i < cl->n; i++) {
        cons_free_requests(&cl->cons[i]);
        cons_wal_unwrap(&cl->cons[i]);
    }
    test_free(cl);
    return 0;
}

static void echo_send(struct cluster *cl, unsigned from)
{
    uint64_t seq;
    raft_term term;
    if (!cons_echo_begin(&cl->cons[from], &seq, &term)) {
        return;
    }
    for (unsigned to = 0; to < cl->n; to++) {
        if (to == from || cl->echo_cut) {
            continue;
        }
        for (unsigned k = 0; k < 64; k++) {
            if (!cl->probes[k].used) {
                cl->probes[k].used = true;
                cl->probes[k].from = from;
                cl->probes[k].to = to;
                cl->probes[k].seq = seq;
                cl->probes[k].term = term;
                cl->probes[k].arrived = cons_echo_clock(&cl->cons[to]);
                break;
            }
        }
    }
}

/* Each held probe answered once its receiver's state says yes or no (at most ET/2 later). */
static void echo_poll(struct cluster *cl)
{
    for (unsigned k = 0; k < 64; k++) {
        if (!cl->probes[k].used) {
            continue;
        }
        unsigned from = cl->probes[k].from, to = cl->probes[k].to;
        enum fence_echo ans = cons_echo_answer(&cl->cons[to], from + 1, cl->probes[k].term,
                                               cl->probes[k].arrived, ET_MS / 2);
        if (ans == FENCE_ECHO_WAIT) {
            continue;
        }
        cl->probes[k].used = false;
        if (ans == FENCE_ECHO_YES && !cl->echo_cut) {
            cl->echo_yes++;
            cons_echo_yes(&cl->cons[from], to + 1, cl->probes[k].seq);
        } else {
            cl->echo_no++;
        }
    }
}

/* One fixture step, then what cons_uv.c's handles would run by now. */
static void step(struct cluster *cl)
{
    raft_fixture_step(&cl->f);
    rpg_msec now = (rpg_msec)cl->f.time;
    for (unsigned i = 0; i < cl->n; i++) {
        cons_observe(&cl->cons[i]);
    }
    if (now >= cl->next_lease) {
        for (unsigned i = 0; i < cl->n; i++) {
            cons_lease_renew(&cl->cons[i]);
            if (cl->echo) {
                echo_send(cl, i);
            }
        }
        cl->next_lease = now + ET_MS / 4;
    }
    echo_poll(cl);
    if (now >= cl->next_reconcile) {
        for (unsigned i = 0; i < cl->n; i++) {
            cons_reconcile(&cl->cons[i]);
            cons_storage_tick(&cl->cons[i]);
        }
        cl->next_reconcile = now + RECONCILE_MS;
    }
    unsigned holders = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        holders += cons_lease_until(&cl->cons[i]) > now;
    }
    cl->overlaps += holders > 1;
}

typedef bool (*cond_fn)(struct cluster *cl, void *arg);

static bool run_until(struct cluster *cl, cond_fn cond, void *arg, unsigned max_ms)
{
    rpg_msec end = (rpg_msec)cl->f.time + max_ms;
    while ((rpg_msec)cl->f.time < end) {
        if (cond(cl, arg)) {
            return true;
        }
        step(cl);
    }
    return cond(cl, arg);
}

static void run_for(struct cluster *cl, unsigned ms)
{
    rpg_msec end = (rpg_msec)cl->f.time + ms;
    while ((rpg_msec)cl->f.time < end) {
        step(cl);
    }
}

static int ready_leader(struct cluster *cl)
{
    for (unsigned i = 0; i < cl->n; i++) {
        const struct cons *c = &cl->cons[i];
        if (c->attached && c->role == CONS_ROLE_LEADER && c->leader_ready) {
            return (int)i;
        }
    }
    return -1;
}

static bool has_ready_leader_other_than(struct cluster *cl, void *arg)
{
    int l = ready_leader(cl);
    return l >= 0 && l != *(int *)arg;
}

static bool initialised_with_config(struct cluster *cl, void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < N_INITIAL; i++) {
        if (!cl->cons[i].state.initialized || !cl->cons[i].state.config.set) {
            return false;
        }
    }
    return true;
}

/* A new leader is ready only once a barrier of its own term committed; that barrier is its first
 * lease, which runs from its submission. Followers know when they last heard it. */
static void test_leader_ready_after_own_term_barrier(void **state)
{
    struct cluster *cl = *state;
    while (cl->f.time < WAIT_MS) {
        step(cl);
        for (unsigned i = 0; i < cl->n; i++) {
            struct cons *c = &cl->cons[i];
            if (c->role == CONS_ROLE_LEADER && !c->leader_ready) {
                /* Not ready: nothing may be submitted and no lease is held. */
                char errmsg[RPG_ERRMSG_SIZE];
                struct fsm_cmd cmd;
                memset(&cmd, 0, sizeof cmd);
                cmd.type = FSM_CMD_SET_PAUSE;
                assert_int_equal(cons_submit(c, &cmd, NULL, NULL, errmsg), RPG_ENOTLEADER);
                assert_int_equal(cons_lease_until(c), 0);
                assert_true(c->barrier_pending);
            }
        }
        if (ready_leader(cl) >= 0) {
            break;
        }
    }
    int l = ready_leader(cl);
    assert_true(l >= 0);
    struct cons *c = &cl->cons[l];
    assert_int_equal(c->term, raft_fixture_get(&cl->f, (unsigned)l)->current_term);
    assert_int_equal(c->barrier_term, c->term);
    assert_int_equal(cons_lease_until(c), c->barrier_submitted + LEASE_MS);
    assert_true(cons_lease_until(c) > (rpg_msec)cl->f.time);
    assert_true(cl->changes[l] >= 2); /* became leader, then ready */

    run_for(cl, 2 * HEARTBEAT_MS);
    for (unsigned i = 0; i < cl->n; i++) {
        if ((int)i == l) {
            continue;
        }
        assert_int_equal(cl->cons[i].role, CONS_ROLE_FOLLOWER);
        assert_int_equal(cl->cons[i].leader_id, (uint64_t)l + 1);
        assert_true(cl->cons[i].last_heard_leader > 0);
        assert_true((rpg_msec)cl->f.time - cl->cons[i].last_heard_leader <= HEARTBEAT_MS + 50);
        assert_int_equal(cons_lease_until(&cl->cons[i]), 0);
    }
    assert_int_equal(cl->overlaps, 0);
}

/* The first ready leader records the initial members, then its file's synchronous settings. */
static void test_first_leader_records_members_and_settings(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    for (unsigned i = 0; i < N_INITIAL; i++) {
        const struct fsm_state *s = &cl->cons[i].state;
        assert_string_equal(s->scope, "fixture");
        assert_int_equal(s->n_members, N_INITIAL);
        assert_int_equal(s->next_id, N_INITIAL + 1);
        assert_string_equal(cons_member_name(&cl->cons[i], 2), "node2");
        assert_int_equal(s->config.sync_mode, SYNC_MODE_QUORUM);
        assert_int_equal(s->config.sync_node_count, 1);
        assert_false(s->config.max_lag_set);
    }
}

/* A file with maximum_lag_on_failover: the first leader records it with the synchronous
 * settings, in one entry; without one, no limit is recorded (the test above). */
static void test_first_leader_records_max_lag(void **state)
{
    struct cluster *cl = *state;
    for (unsigned i = 0; i < cl->n; i++) {
        cl->cons[i].params.max_lag_set = true;
        cl->cons[i].params.max_lag = 16777216;
    }
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    for (unsigned i = 0; i < N_INITIAL; i++) {
        const struct fsm_state *s = &cl->cons[i].state;
        assert_int_equal(s->config.sync_mode, SYNC_MODE_QUORUM);
        assert_int_equal(s->config.sync_node_count, 1);
        assert_true(s->config.max_lag_set);
        assert_int_equal(s->config.max_lag, 16777216);
    }
}

/* bootstrap.dcs's parameters and pg_hba lines: the first leader records them with the
 * synchronous settings in one entry, with the limit (SET_DYNAMIC_LAG) and without (SET_DYNAMIC). */
static void seed_params(struct cluster *cl, bool lag)
{
    for (unsigned i = 0; i < cl->n; i++) {
        struct cons_params *p = &cl->cons[i].params;
        p->max_lag_set = lag;
        p->max_lag = lag ? 1048576 : 0;
        p->n_params = 2;
        snprintf(p->params[0].name, sizeof p->params[0].name, "max_connections");
        snprintf(p->params[0].value, sizeof p->params[0].value, "200");
        snprintf(p->params[1].name, sizeof p->params[1].name, "work_mem");
        snprintf(p->params[1].value, sizeof p->params[1].value, "8MB");
        p->n_hba = 1;
        snprintf(p->hba[0], sizeof p->hba[0], "local all all peer");
    }
}

static void check_params(struct cluster *cl, bool lag)
{
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    for (unsigned i = 0; i < N_INITIAL; i++) {
        const struct fsm_state *s = &cl->cons[i].state;
        assert_int_equal(s->config.sync_mode, SYNC_MODE_QUORUM);
        assert_int_equal(s->config.max_lag_set, lag);
        assert_int_equal(s->config.n_params, 2);
        assert_string_equal(s->config.params[0].name, "max_connections");
        assert_string_equal(s->config.params[0].value, "200");
        assert_string_equal(s->config.params[1].name, "work_mem");
        assert_string_equal(s->config.params[1].value, "8MB");
        assert_int_equal(s->config.n_hba, 1);
        assert_string_equal(s->config.hba[0], "local all all peer");
    }
}

static void test_first_leader_records_bootstrap_parameters(void **state)
{
    struct cluster *cl = *state;
    seed_params(cl, false);
    check_params(cl, false);
}

static void test_first_leader_records_bootstrap_parameters_and_max_lag(void **state)
{
    struct cluster *cl = *state;
    seed_params(cl, true);
    check_params(cl, true);
    assert_int_equal(cl->cons[0].state.config.max_lag, 1048576);
}

/* While the leader renews, its lease stays ahead of the clock. Cut off from both followers it
 * loses the lease within one lease length, before any other node leads, and never two hold one. */
static void test_lease_renewed_then_lost_when_cut_off(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    for (unsigned k = 0; k < 20; k++) {
        run_for(cl, 50);
        assert_int_equal(ready_leader(cl), l);
        assert_true(cons_lease_until(&cl->cons[l]) > (rpg_msec)cl->f.time);
    }
    rpg_msec cut = (rpg_msec)cl->f.time;
    for (unsigned i = 0; i < cl->n; i++) {
        if ((int)i != l) {
            raft_fixture_saturate(&cl->f, (unsigned)l, i);
            raft_fixture_saturate(&cl->f, i, (unsigned)l);
        }
    }
    rpg_msec lost = 0;
    while ((rpg_msec)cl->f.time < cut + 10 * ET_MS) {
        step(cl);
        if (lost == 0 && cons_lease_until(&cl->cons[l]) <= (rpg_msec)cl->f.time) {
            lost = (rpg_msec)cl->f.time;
        }
        if (has_ready_leader_other_than(cl, &l)) {
            break;
        }
    }
    /* Every renewal that committed was counted once, none later than the lease is long. */
    const struct cons *lc = &cl->cons[l];
    uint64_t in_buckets = 0;
    for (unsigned i = 0; i <= CONS_LEASE_BUCKETS; i++) {
        in_buckets += lc->lease_stats.bucket[i];
    }
    assert_true(lc->lease_stats.count >= 20 * 50 / (ET_MS / 4) - 1);
    assert_int_equal(in_buckets, lc->lease_stats.count);
    assert_true(lc->lease_stats.sum_ms <= lc->lease_stats.count * LEASE_MS);
    assert_true(cons_lease_renewal_max(lc, cut) <= LEASE_MS);
    assert_int_equal(cons_lease_renewal_max(lc, cut + 3 * CONS_LEASE_MAX_WINDOW_MS), 0);
    assert_true(lost > 0);
    assert_true(lost - cut <= LEASE_MS + HEARTBEAT_MS);
    assert_true(has_ready_leader_other_than(cl, &l));
    assert_true(lost <= (rpg_msec)cl->f.time);
    assert_int_equal(cl->overlaps, 0);
}

static bool not_candidate(struct cluster *cl, void *arg)
{
    return cl->cons[*(unsigned *)arg].candidate_since == 0;
}

/* A follower cut off from everyone stays candidate: it is reported every 10 ET while that lasts
 * (not before), and the report ends once it rejoins. */
static void test_long_candidate_is_reported(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    unsigned f = l == 0 ? 1 : 0;
    struct cons *c = &cl->cons[f];
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != f) {
            raft_fixture_saturate(&cl->f, f, i);
            raft_fixture_saturate(&cl->f, i, f);
        }
    }
    rpg_msec cut = (rpg_msec)cl->f.time;
    run_for(cl, 3 * ET_MS);
    assert_int_equal(c->role, CONS_ROLE_CANDIDATE);
    rpg_msec since = c->candidate_since;
    assert_true(since > cut && since <= cut + 3 * ET_MS);
    run_for(cl, (unsigned)(since + CONS_CANDIDATE_WARN_ETS * ET_MS - 3 * HEARTBEAT_MS -
                           (rpg_msec)cl->f.time));
    assert_int_equal(c->n_candidate_warnings, 0);
    run_for(cl, 5 * HEARTBEAT_MS);
    assert_int_equal(c->n_candidate_warnings, 1);
    assert_int_equal(c->candidate_since, since);
    assert_true(cons_candidate_for(c, (rpg_msec)cl->f.time) >= CONS_CANDIDATE_WARN_ETS * ET_MS);
    run_for(cl, CONS_CANDIDATE_WARN_ETS * ET_MS);
    assert_int_equal(c->n_candidate_warnings, 2);
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != f) {
            raft_fixture_desaturate(&cl->f, f, i);
            raft_fixture_desaturate(&cl->f, i, f);
        }
    }
    assert_true(run_until(cl, not_candidate, &f, WAIT_MS));
    assert_int_equal(cons_candidate_for(c, (rpg_msec)cl->f.time), 0);
    assert_int_equal(c->n_candidate_warnings, 2);
    assert_int_equal(cl->overlaps, 0);
}

static bool voter4(struct cluster *cl, void *arg)
{
    (void)arg;
    int l = ready_leader(cl);
    return l >= 0 && cons_voting(&cl->cons[l], 4) == RAFT_VOTER;
}

struct done {
    unsigned calls;
    int rc;
};

static void submit_done(void *data, int rc, const char *msg)
{
    (void)msg;
    struct done *d = data;
    d->calls++;
    d->rc = rc;
}

static bool done_once(struct cluster *cl, void *arg)
{
    (void)cl;
    return ((struct done *)arg)->calls > 0;
}

/* A committed MEMBER_ADD makes the leader add the server as a spare, then promote it. */
static void test_member_added_as_spare_then_voter(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    cons_setup(&cl->cons[3]);
    assert_int_equal(raft_fixture_grow(&cl->f, &cl->cons[3].fsm.raft), 0);
    configure(cl, 3);
    assert_int_equal(raft_start(raft_fixture_get(&cl->f, 3)), 0);
    cl->n = 4;
    attach(cl, 3);

    int l = ready_leader(cl);
    assert_true(l >= 0);
    struct done d = {0, -1};
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(cons_member_add(&cl->cons[l], "node4", raft_fixture_get(&cl->f, 3)->address,
                                     "127.0.0.1:8004", submit_done, &d, errmsg),
                     0);
    assert_true(run_until(cl, done_once, &d, WAIT_MS));
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, 0);
    assert_int_equal(cl->cons[l].state.n_members, 4);
    assert_true(run_until(cl, voter4, NULL, WAIT_MS));
    run_for(cl, 500);
    assert_int_equal(d.calls, 1); /* exactly once */
    assert_true(cons_config_has(&cl->cons[3], 4));
    assert_int_equal(cl->overlaps, 0);
}

static bool voter5(struct cluster *cl, void *arg)
{
    (void)arg;
    int l = ready_leader(cl);
    return l >= 0 && cons_voting(&cl->cons[l], 5) == RAFT_VOTER;
}

/* A spare that never catches up (its server is gone for good, say its agent was never started)
 * does not keep a member added after it out of the configuration, nor from becoming a voter. */
static void test_member_added_behind_a_spare_that_never_catches_up(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    for (unsigned i = 3; i < 5; i++) {
        cons_setup(&cl->cons[i]);
        assert_int_equal(raft_fixture_grow(&cl->f, &cl->cons[i].fsm.raft), 0);
        configure(cl, i);
        assert_int_equal(raft_start(raft_fixture_get(&cl->f, i)), 0);
    }
    cl->n = 5;
    attach(cl, 3);
    attach(cl, 4);
    raft_fixture_kill(&cl->f, 3);
    int l = ready_leader(cl);
    assert_true(l >= 0);
    char errmsg[RPG_ERRMSG_SIZE];
    struct done d4 = {0, -1}, d5 = {0, -1};
    assert_int_equal(cons_member_add(&cl->cons[l], "node4", raft_fixture_get(&cl->f, 3)->address,
                                     "127.0.0.1:8004", submit_done, &d4, errmsg),
                     0);
    assert_true(run_until(cl, done_once, &d4, WAIT_MS));
    assert_int_equal(d4.rc, 0);
    run_for(cl, 1000); /* node4 is a spare now, and its promotion cannot finish */
    l = ready_leader(cl);
    assert_true(l >= 0);
    assert_int_equal(cons_member_add(&cl->cons[l], "node5", raft_fixture_get(&cl->f, 4)->address,
                                     "127.0.0.1:8005", submit_done, &d5, errmsg),
                     0);
    assert_true(run_until(cl, done_once, &d5, WAIT_MS));
    assert_int_equal(d5.rc, 0);
    assert_true(run_until(cl, voter5, NULL, WAIT_MS));
    l = ready_leader(cl);
    assert_int_not_equal(cons_voting(&cl->cons[l], 4), RAFT_VOTER);
    assert_int_equal(cl->overlaps, 0);
}

struct removal {
    int old;
};

static bool old_leader_gone(struct cluster *cl, void *arg)
{
    struct removal *r = arg;
    int l = ready_leader(cl);
    return l >= 0 && l != r->old && !cons_config_has(&cl->cons[l], (uint64_t)r->old + 1);
}

/* A leader removed from the member list hands leadership over; the next one removes it. */
static void test_removed_leader_hands_over(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    char name[16];
    snprintf(name, sizeof name, "node%d", l + 1);
    struct done d = {0, -1};
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(cons_member_remove(&cl->cons[l], name, submit_done, &d, errmsg), 0);
    struct removal r = {l};
    assert_true(run_until(cl, old_leader_gone, &r, WAIT_MS));
    assert_int_equal(d.rc, 0);
    int nl = ready_leader(cl);
    assert_int_equal(cl->cons[nl].state.n_members, 2);
    assert_int_equal(cons_voting(&cl->cons[nl], (uint64_t)l + 1), CONS_VOTING_NONE);
    assert_int_equal(cl->overlaps, 0);
}

/* Requests of a detached agent complete silently: a callback never reaches a later agent. */
static void test_detached_request_completes_silently(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SET_PAUSE;
    cmd.u.set_pause.paused = true;
    struct done d = {0, -1};
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(cons_submit(&cl->cons[l], &cmd, submit_done, &d, errmsg), 0);
    assert_non_null(cl->cons[l].reqs);
    cons_detach(&cl->cons[l]);
    attach(cl, (unsigned)l); /* the next agent on the same server */
    run_for(cl, 2000);
    assert_int_equal(d.calls, 0);
    assert_true(cl->cons[l].state.paused); /* it committed all the same */
    assert_int_equal(cons_submit(&cl->cons[l], &cmd, submit_done, &d, errmsg),
                     ready_leader(cl) == l ? 0 : RPG_ENOTLEADER);
}

static bool tagged(struct cluster *cl, void *arg)
{
    uint64_t id = *(uint64_t *)arg;
    int l = ready_leader(cl);
    if (l < 0) {
        return false;
    }
    const struct fsm_member *m = fsm_state_member_by_id(&cl->cons[l].state, id);
    return m != NULL && (m->tags & FSM_TAG_RAFT_STATE) != 0;
}

/* The leader records which members' logs hold replicated entries; one that never ran is not
 * recorded until it has caught up. */
static void test_members_holding_entries_are_recorded(void **state)
{
    struct cluster *cl = *state;
    raft_fixture_kill(&cl->f, 2);
    cons_detach(&cl->cons[2]);
    uint64_t id = 1, other = 2, third = 3;
    assert_true(run_until(cl, tagged, &id, WAIT_MS));
    assert_true(run_until(cl, tagged, &other, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l == 0 || l == 1);
    run_for(cl, 2000);
    assert_false(tagged(cl, &third));
    raft_fixture_revive(&cl->f, 2);
    attach(cl, 2);
    assert_true(run_until(cl, tagged, &third, WAIT_MS));
}

/* Every member's state checksum at an index equals the leader's at that index, including a
 * member that caught up from a snapshot (its checksum then starts at the snapshot's index). */
static void test_state_checksums_agree_at_the_same_index(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    for (unsigned i = 0; i < cl->n; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&cl->f, i), 8);
        raft_set_snapshot_trailing(raft_fixture_get(&cl->f, i), 2);
    }
    raft_fixture_kill(&cl->f, 2);
    cons_detach(&cl->cons[2]);
    int l = ready_leader(cl);
    assert_true(l == 0 || l == 1);
    char errmsg[RPG_ERRMSG_SIZE];
    for (unsigned k = 0; k < 30; k++) {
        struct fsm_cmd cmd;
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_SET_WAL_BOUND;
        cmd.u.set_wal_bound.position = 1000 + k;
        cmd.u.set_wal_bound.timeline = 1;
        assert_int_equal(cons_submit(&cl->cons[l], &cmd, NULL, NULL, errmsg), 0);
        run_for(cl, 50);
    }
    raft_fixture_revive(&cl->f, 2);
    attach(cl, 2);
    run_for(cl, 3000);
    struct fsm_sum lead, other;
    assert_true(fsm_sum_latest(&cl->cons[l].fsm, &lead));
    assert_int_equal(lead.sum, fsm_state_checksum(&cl->cons[l].state));
    for (unsigned i = 0; i < cl->n; i++) {
        assert_true(fsm_sum_latest(&cl->cons[i].fsm, &other));
        assert_int_equal(other.index, lead.index);
        assert_int_equal(other.sum, lead.sum);
        assert_true(fsm_state_equal(&cl->cons[i].state, &cl->cons[l].state));
    }
    /* The restarted member restored a snapshot: its oldest checksum is at an index the leader
     * also recorded, with the same value. */
    const struct fsm *f = &cl->cons[2].fsm;
    unsigned checked = 0;
    for (unsigned k = 0; k < f->n_sums; k++) {
        uint64_t sum = 0;
        if (fsm_sum_at(&cl->cons[l].fsm, f->sums[k].index, &sum)) {
            assert_int_equal(sum, f->sums[k].sum);
            checked++;
        }
    }
    assert_true(checked >= 1);
    assert_true(raft_fixture_get(&cl->f, 2)->log.snapshot.last_index > 0);
}

static bool leader_is_not(struct cluster *cl, void *arg)
{
    int l = ready_leader(cl);
    return l >= 0 && l != *(int *)arg && cl->cons[*(int *)arg].role != CONS_ROLE_LEADER;
}

/* A leader whose storage fails (libraft 0.15 keeps it leader) hands leadership over within the
 * bound, to the voter the host picks. */
static void test_leader_that_cannot_persist_hands_over(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    cons_storage_report(&cl->cons[l], RPG_EIO, 28,
                        "write /raft/raftpg.probe: No space left "
                        "on device (errno=28)",
                        true, 0);
    assert_true(cl->cons[l].storage.failed);
    rpg_msec t0 = (rpg_msec)cl->f.time;
    assert_true(run_until(cl, leader_is_not, &l, 3 * ET_MS));
    assert_true((rpg_msec)cl->f.time - t0 <= 3 * ET_MS);
    assert_int_equal(cl->cons[l].n_stepdowns, 1);
    assert_false(cl->cons[l].failed);
    assert_int_equal(cl->overlaps, 0);
}

/* The term and vote the fixture server i's directory holds, read back as a start would. */
static void load_meta(struct cluster *cl, unsigned i, raft_term *term, raft_id *vote)
{
    struct raft_io *io = &cl->f.servers[i].io;
    struct raft_snapshot *snapshot = NULL;
    raft_index start = 0;
    struct raft_entry *entries = NULL;
    size_t n = 0;
    assert_int_equal(io->load(io, term, vote, &snapshot, &start, &entries, &n), 0);
    assert_null(snapshot);
    if (n > 0) {
        raft_free(entries[0].batch);
    }
    raft_free(entries);
}

/* A server never writes a second vote in one term (wal_set_vote): libraft 0.15 asks for one
 * when the candidate is the target of its own leadership transfer, even after it stopped
 * leading. The refusal is RAFT_NOCONNECTION, which libraft takes for a lost request, and the
 * directory keeps the first vote. */
static void test_one_vote_per_term(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    raft_fixture_kill(&cl->f, 2); /* its libraft acts no more: the test writes for it */
    struct raft_io *io = &cl->f.servers[2].io;
    raft_term t = raft_fixture_get(&cl->f, 2)->current_term + 10;
    assert_int_equal(io->set_term(io, t), 0);
    assert_int_equal(io->set_vote(io, 1), 0);
    assert_int_equal(io->set_vote(io, 1), 0);
    assert_int_equal(io->set_vote(io, 2), RAFT_NOCONNECTION);
    assert_int_equal(cl->cons[2].wal.n_votes_refused, 1);
    raft_term term = 0;
    raft_id vote = 0;
    load_meta(cl, 2, &term, &vote);
    assert_int_equal(term, t);
    assert_int_equal(vote, 1);
    /* A new term takes any vote. */
    assert_int_equal(io->set_term(io, t + 1), 0);
    assert_int_equal(io->set_vote(io, 2), 0);
    load_meta(cl, 2, &term, &vote);
    assert_int_equal(term, t + 1);
    assert_int_equal(vote, 2);
    assert_int_equal(cl->cons[2].wal.n_votes_refused, 1);
}

static int refuse_term(struct raft_io *io, raft_term term)
{
    (void)io;
    (void)term;
    return RAFT_IOERR;
}

/* A term the directory refuses (raft_uv on a read-only file system) closes the fence as a
 * failed log write does: libraft turns unavailable and only the restart from the directory
 * brings it back. */
static void test_refused_term_write_fences(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    raft_fixture_kill(&cl->f, 2);
    struct cons *c = &cl->cons[2];
    assert_false(c->wal.fenced);
    c->wal.set_term = refuse_term;
    struct raft_io *io = &cl->f.servers[2].io;
    assert_int_equal(io->set_term(io, raft_fixture_get(&cl->f, 2)->current_term + 1), RAFT_IOERR);
    assert_true(c->wal.fenced);
    assert_non_null(strstr(c->wal.why, "raft term write refused"));
    assert_true(c->storage.failed);
}

/* A leader hands over to a member whose directory refuses its term (read-only): the member's
 * election, started by the leader's TimeoutNow without a pre-vote, cannot write its term, and
 * libraft 0.15's error path then freed an address overlaid on the candidate's flags (free(0x1),
 * wal_set_term). The member turns unavailable behind its fence instead; the others lead on. */
static void test_handover_to_unwritable_term(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    unsigned t = ((unsigned)l + 1) % cl->n;
    cl->cons[t].wal.set_term = refuse_term;
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(cons_transfer(&cl->cons[l], t + 1, errmsg), 0);
    run_for(cl, 3 * ET_MS);
    assert_int_equal(raft_state(raft_fixture_get(&cl->f, t)), RAFT_UNAVAILABLE);
    assert_true(cl->cons[t].wal.fenced);
    assert_non_null(strstr(cl->cons[t].wal.why, "raft term write refused"));
    int ti = (int)t;
    assert_true(run_until(cl, has_ready_leader_other_than, &ti, WAIT_MS));
}

/* So does a leader whose replicated state diverged. */
static void test_diverged_leader_hands_over(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    cl->cons[l].diverged = true;
    assert_true(run_until(cl, leader_is_not, &l, 3 * ET_MS));
    assert_int_equal(cl->cons[l].n_stepdowns, 1);
    assert_false(cl->cons[l].failed);
}

/* A leader whose loop stood still (SIGSTOP, a stalled VM) confirmed no write meanwhile: its first
 * tick after the stall acts on nothing, so the host's fence judges the lease first, and the bound
 * for a confirmed write counts from the stall's end, not from before it. */
static void test_stalled_leader_acts_after_the_fence(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    for (unsigned k = 0; k < 10000 && (rpg_msec)cl->f.time <= 10 * ET_MS; k++) {
        step(cl);
    }
    assert_int_equal(ready_leader(cl), l);
    struct cons *c = &cl->cons[l];
    /* A log write of its own held by its disk (the next lease barrier's). */
    raft_fixture_set_disk_latency(&cl->f, (unsigned)l, 100 * ET_MS);
    for (unsigned k = 0; k < 10000 && c->wal.n_pending == 0; k++) {
        step(cl);
    }
    assert_true(c->wal.n_pending > 0);
    rpg_msec now = (rpg_msec)cl->f.time;
    assert_true(now > 10 * ET_MS);
    c->storage_tick_at = now - 5 * ET_MS;
    c->write_confirmed = now - 5 * ET_MS;
    c->wal.pending[0].at = now - 5 * ET_MS;
    cons_storage_tick(c);
    assert_int_equal(c->n_stepdowns, 0);
    assert_int_equal(c->storage_stall_end, now);
    cons_storage_tick(c);
    assert_int_equal(c->n_stepdowns, 0);
    /* Without a stall the same stale confirmation hands leadership over. */
    c->storage_stall_end = 0;
    cons_storage_tick(c);
    assert_int_equal(c->n_stepdowns, 1);
}

static bool fenced(struct cluster *cl, void *arg)
{
    return cl->cons[*(unsigned *)arg].wal.fenced;
}

static int a_follower(int l)
{
    return l == 0 ? 1 : 0;
}

/* What cons_uv.c restart_raft and reopen_raft do on raft_uv, on a fixture server: once nothing of
 * it is left in flight, close it and start it again from its log, the fence's check included. */
static int restart_from_disk(struct cluster *cl, unsigned i)
{
    struct cons *c = &cl->cons[i];
    raft_fixture_kill(&cl->f, i);
    run_for(cl, 100); /* its last sends and writes complete */
    assert_int_equal(disks[i].n_pending, 0);
    struct raft_fixture_server *srv = &cl->f.servers[i];
    cons_restart_begin(c);
    raft_close(&srv->raft, NULL);
    cons_detach(c);
    cons_restart_reset(c);
    assert_int_equal(raft_init(&srv->raft, &srv->io, &c->fsm.raft, srv->id, srv->address), 0);
    srv->raft.data = c;
    cons_wal_wrap(c, &srv->io);
    configure(cl, i);
    int rv = raft_start(&srv->raft);
    if (rv == 0) {
        raft_fixture_revive(&cl->f, i);
        attach(cl, i);
    }
    return rv;
}

/* A new process on the same directory after this one ended with the fence closed: nothing of
 * the log in memory survives; the start checks the directory against the record the fence made
 * (cons_uv.c writes it to STORAGE_PENDING_FILE and reads it back at the next start). */
static int start_from_record(struct cluster *cl, unsigned i)
{
    struct cons *c = &cl->cons[i];
    assert_non_null(c->wal.rec);
    struct storage_pending *rec = test_malloc(sizeof *rec);
    memcpy(rec, c->wal.rec, sizeof *rec);
    raft_fixture_kill(&cl->f, i);
    run_for(cl, 100);
    assert_int_equal(disks[i].n_pending, 0);
    struct raft_fixture_server *srv = &cl->f.servers[i];
    raft_close(&srv->raft, NULL);
    cons_detach(c);
    cons_restart_reset(c);
    cons_wal_expect(c, rec);
    test_free(rec);
    assert_int_equal(raft_init(&srv->raft, &srv->io, &c->fsm.raft, srv->id, srv->address), 0);
    srv->raft.data = c;
    cons_wal_wrap(c, &srv->io);
    configure(cl, i);
    int rv = raft_start(&srv->raft);
    if (rv == 0) {
        raft_fixture_revive(&cl->f, i);
        attach(cl, i);
    }
    return rv;
}

static void probe_ok(struct cluster *cl, unsigned i)
{
    cons_storage_report(&cl->cons[i], 0, 0, "", true, 1u << 30);
}

/* A follower's failed write is noticed when it completes, with no probe needed (it used to take
 * two failed probes a second apart, so a shorter fault went unnoticed): the server writes nothing
 * more, shows its storage failing, and once the directory takes writes again (two good probes)
 * asks for a restart; restarted from its directory, it acknowledges entries again, so that the
 * leader commits with it alone. Before the fence, libraft 0.15 never wrote the failed entries
 * again and the follower's acknowledged index stayed behind for good. */
static void test_failed_follower_write_fences_then_restart_catches_up(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    unsigned f = (unsigned)a_follower(l);
    unsigned o = 3 - (unsigned)l - f;
    disks[f].fail = RAFT_IOERR;
    assert_true(run_until(cl, fenced, &f, ET_MS));
    disks[f].fail = 0; /* a short fault: over before any probe ran */
    assert_true(cl->cons[f].storage.failed);
    assert_true(cl->cons[f].storage.lost_writes);
    run_for(cl, ET_MS); /* later writes reach the fence: none gets through */
    struct raft *fr = raft_fixture_get(&cl->f, f);
    assert_true(fr->last_stored <= cl->cons[f].wal.stored);
    assert_int_equal(disks[f].stored, cl->cons[f].wal.stored);
    probe_ok(cl, f);
    assert_false(cl->cons[f].wal.restart_wanted);
    probe_ok(cl, f);
    assert_true(cl->cons[f].wal.restart_wanted);

    assert_int_equal(restart_from_disk(cl, f), 0);
    assert_false(cl->cons[f].wal.fenced);
    assert_false(cl->cons[f].storage.failed);
    assert_int_equal(cl->cons[f].wal.n_restarts, 1);

    /* Without the third member, the leader commits only with the restarted one. */
    raft_fixture_kill(&cl->f, o);
    cons_detach(&cl->cons[o]);
    run_for(cl, 2 * ET_MS);
    l = ready_leader(cl);
    assert_true(l >= 0 && (unsigned)l != o);
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_SET_PAUSE;
    cmd.u.set_pause.paused = true;
    struct done d = {0, -1};
    char errmsg[RPG_ERRMSG_SIZE];
    assert_int_equal(cons_submit(&cl->cons[l], &cmd, submit_done, &d, errmsg), 0);
    assert_true(run_until(cl, done_once, &d, 5 * ET_MS));
    assert_int_equal(d.rc, 0);
    assert_true(raft_fixture_get(&cl->f, f)->last_stored >= cons_commit_index(&cl->cons[l]));
    assert_true(disks[f].stored >= cons_commit_index(&cl->cons[l]));
}

/* The restart's load refuses a directory that holds an entry the server never held at that index
 * (raft_uv after a lost write, without the fence: the next entries where the failed ones
 * belonged), naming it. */
static void test_restart_refuses_a_directory_that_differs(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    unsigned f = (unsigned)a_follower(l);
    disks[f].fail = RAFT_IOERR;
    assert_true(run_until(cl, fenced, &f, ET_MS));
    disks[f].fail = 0;
    run_for(cl, ET_MS);
    /* A write that got past: another entry at the first index the directory lacks. */
    struct raft_entry e;
    memset(&e, 0, sizeof e);
    e.term = raft_fixture_get(&cl->f, f)->current_term;
    e.type = RAFT_COMMAND;
    e.buf.len = 8;
    e.buf.base = raft_malloc(8);
    memset(e.buf.base, 0xab, 8);
    raft_fixture_add_entry(&cl->f, f, &e);
    int rv = restart_from_disk(cl, f);
    assert_int_equal(rv, RAFT_CORRUPT);
    assert_non_null(strstr(raft_errmsg(raft_fixture_get(&cl->f, f)), "not the log held"));
}

struct change_seen {
    struct raft_change req;
    unsigned calls;
    int status;
};

static void change_seen_cb(struct raft_change *req, int status)
{
    struct change_seen *cs = req->data;
    cs->calls++;
    cs->status = status;
}

/* A membership change whose entry's write the leader's disk refuses at submission (raftpg_sim
 * seeds 543533680121, 467172258345, 122812016000): libraft 0.15's raft_add would then free the
 * configuration it had installed (cons.c wal_hold_change), a use after free and, as the server
 * closes, a double free. The fence holds the write instead: raft_add succeeds, the fence closes,
 * the configuration stays readable, the leader hands over, and Raft restarts from its directory
 * once that takes writes again, the held write dropped as the server closes. */
static void test_refused_configuration_write_is_held(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    struct raft *r = raft_fixture_get(&cl->f, (unsigned)l);
    raft_index last = raft_last_index(r);
    disks[l].refuse = RAFT_NOSPACE;
    struct change_seen *cs = test_calloc(1, sizeof *cs);
    cs->req.data = cs;
    assert_int_equal(raft_add(r, &cs->req, 9, "9", change_seen_cb), 0);
    assert_true(cl->cons[l].wal.fenced);
    assert_int_equal(cl->cons[l].wal.n_held, 1);
    assert_int_equal(cl->cons[l].wal.n_held_total, 1);
    /* The configuration libraft installed is the one with the new spare, and it is alive. */
    assert_int_equal(raft_last_index(r), last + 1);
    assert_true(cons_config_has(&cl->cons[l], 9));
    assert_true(cl->cons[l].storage.failed);
    assert_true(run_until(cl, leader_is_not, &l, 3 * ET_MS));
    assert_int_equal(cs->calls, 1); /* the change ended with the leadership */
    assert_int_not_equal(cs->status, 0);
    disks[l].refuse = 0;
    probe_ok(cl, (unsigned)l);
    probe_ok(cl, (unsigned)l);
    assert_true(cl->cons[l].wal.restart_wanted);
    assert_int_equal(restart_from_disk(cl, (unsigned)l), 0);
    assert_int_equal(cl->cons[l].wal.n_held, 0);
    assert_true(cl->cons[l].wal.verified);
    assert_false(cl->cons[l].wal.fenced);
    /* Restarted from its directory, which lacks the held entry, it follows the new leader. */
    run_for(cl, 3 * ET_MS);
    int nl = ready_leader(cl);
    assert_true(nl >= 0);
    assert_true(raft_fixture_get(&cl->f, (unsigned)l)->last_stored >=
                cons_commit_index(&cl->cons[nl]));
    test_free(cs);
}

/* An agent killed between a failed write and the restart of Raft: its next start checks the
 * directory against the record its fence made. A directory holding the exact prefix starts, and
 * the member catches up; one holding another entry where the failed ones belonged is refused,
 * saying it is not the log of the previous run. */
static void test_next_start_checks_against_the_record(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    unsigned f = (unsigned)a_follower(l);
    disks[f].fail = RAFT_IOERR;
    assert_true(run_until(cl, fenced, &f, ET_MS));
    disks[f].fail = 0;
    run_for(cl, ET_MS);
    assert_non_null(cl->cons[f].wal.rec);
    assert_true(cl->cons[f].wal.rec_seq >= 1);
    assert_int_equal(cl->cons[f].wal.rec->acked, cl->cons[f].wal.stored);
    assert_true(cl->cons[f].wal.rec->n >= 1); /* the entries whose write failed */
    assert_int_equal(start_from_record(cl, f), 0);
    assert_true(cl->cons[f].wal.verified);
    assert_true(cl->cons[f].wal.from_record);
    assert_false(cl->cons[f].wal.fenced);
    run_for(cl, 3 * ET_MS);
    int nl = ready_leader(cl);
    assert_true(nl >= 0);
    assert_true(raft_fixture_get(&cl->f, f)->last_stored >= cons_commit_index(&cl->cons[nl]));

    /* Again, and this time a write got past the failed one into the directory. */
    disks[f].fail = RAFT_IOERR;
    assert_true(run_until(cl, fenced, &f, 2 * ET_MS));
    disks[f].fail = 0;
    run_for(cl, ET_MS);
    struct raft_entry e;
    memset(&e, 0, sizeof e);
    e.term = raft_fixture_get(&cl->f, f)->current_term;
    e.type = RAFT_COMMAND;
    e.buf.len = 8;
    e.buf.base = raft_malloc(8);
    memset(e.buf.base, 0xab, 8);
    raft_fixture_add_entry(&cl->f, f, &e);
    assert_int_equal(start_from_record(cl, f), RAFT_CORRUPT);
    assert_non_null(strstr(raft_errmsg(raft_fixture_get(&cl->f, f)),
                           "not the log its previous run held when a write failed"));
}

/* A healthy leader stays. */
/* Every disk takes 2 ET per write (1.3 s renewals were seen with ET 1 s under load): the lease
 * barriers commit far later than the lease lasts, so barriers alone let the lease of a healthy
 * leader lapse, while the echo, which waits for no disk, keeps it. Below the storage bound
 * (STORAGE_LEADER_BOUND_ET), past which a leader that confirms no write steps aside anyway. */
static void slow_disks_run(struct cluster *cl, bool echo, rpg_msec *lapsed, int *leader)
{
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    cl->echo = echo;
    run_for(cl, 2 * ET_MS);
    for (unsigned i = 0; i < cl->n; i++) {
        raft_fixture_set_disk_latency(&cl->f, i, 2 * ET_MS);
    }
    rpg_msec from = (rpg_msec)cl->f.time;
    *lapsed = 0;
    while ((rpg_msec)cl->f.time < from + 6 * ET_MS) {
        step(cl);
        if (*lapsed == 0 && cons_lease_until(&cl->cons[l]) <= (rpg_msec)cl->f.time) {
            *lapsed = (rpg_msec)cl->f.time;
        }
    }
    *leader = l;
}

static void test_slow_disks_lapse_a_barrier_only_lease(void **state)
{
    struct cluster *cl = *state;
    rpg_msec lapsed;
    int l;
    slow_disks_run(cl, false, &lapsed, &l);
    assert_true(lapsed > 0);
    assert_int_equal(cl->cons[l].lease_stats.via_echo, 0);
    assert_int_equal(cl->overlaps, 0);
}

static void test_slow_disks_keep_an_echoed_lease(void **state)
{
    struct cluster *cl = *state;
    rpg_msec lapsed;
    int l;
    slow_disks_run(cl, true, &lapsed, &l);
    assert_int_equal(lapsed, 0);
    assert_int_equal(ready_leader(cl), l);
    /* Each renewal about ET/4: well over a dozen in 6 ET. */
    assert_true(cl->cons[l].lease_stats.via_echo >= 6 * 4 - 4);
    assert_int_equal(cl->overlaps, 0);
}

/* The ready leader once the echo (fence.h) has renewed its lease for 2 ET. */
static int echoed_leader(struct cluster *cl)
{
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    cl->echo = true;
    run_for(cl, 2 * ET_MS);
    return l;
}

/* Every disk but server spared's (-1: none) completes its writes only after the storage bound. */
static void disks_past_the_bound(struct cluster *cl, int spared)
{
    for (unsigned i = 0; i < cl->n; i++) {
        if ((int)i != spared) {
            raft_fixture_set_disk_latency(&cl->f, i, (STORAGE_LEADER_BOUND_ET + 1) * ET_MS);
        }
    }
}

/* Only the followers' disks are slow, slower than the storage bound: nothing commits for 4 ET
 * at a time, but the leader's own log writes complete, so it is not stuck on its disk and stays
 * (a new leader would wait on the same disks); the echo keeps its lease. */
static void test_slow_follower_disks_keep_the_leader(void **state)
{
    struct cluster *cl = *state;
    int l = echoed_leader(cl);
    disks_past_the_bound(cl, l);
    run_for(cl, 4 * (STORAGE_LEADER_BOUND_ET + 1) * ET_MS);
    assert_int_equal(ready_leader(cl), l);
    assert_int_equal(cl->cons[l].n_stepdowns, 0);
    assert_true(cons_lease_until(&cl->cons[l]) > (rpg_msec)cl->f.time);
    assert_int_equal(cl->overlaps, 0);
}

/* Every disk slower than the bound, the leader's too: neither a commit nor a write of its own
 * for 4 ET, so it hands leadership over. */
static void test_leader_on_a_stuck_disk_hands_over(void **state)
{
    struct cluster *cl = *state;
    int l = echoed_leader(cl);
    disks_past_the_bound(cl, -1);
    for (unsigned k = 0; k < 100000 && cl->cons[l].n_stepdowns == 0 &&
                         (rpg_msec)cl->f.time < 20 * (STORAGE_LEADER_BOUND_ET + 1) * ET_MS;
         k++) {
        step(cl);
    }
    assert_int_equal(cl->cons[l].n_stepdowns, 1);
    assert_int_equal(cl->overlaps, 0);
}

/* The leader cut off from the other voters while the echo's side channel still reaches them:
 * no timer restarts after the cut, so no probe sent after it gets a majority; the lease ends at
 * the latest LEASE_MS after the cut, before any other node leads. */
static void test_cut_off_leader_gets_no_echo(void **state)
{
    struct cluster *cl = *state;
    int l = echoed_leader(cl);
    uint64_t granted = cl->cons[l].lease_stats.via_echo;
    assert_true(granted > 0);
    rpg_msec cut = (rpg_msec)cl->f.time;
    for (unsigned i = 0; i < cl->n; i++) {
        if ((int)i != l) {
            raft_fixture_saturate(&cl->f, (unsigned)l, i);
            raft_fixture_saturate(&cl->f, i, (unsigned)l);
        }
    }
    rpg_msec lost = 0, other = 0, max_until = 0;
    unsigned no_before = cl->echo_no;
    while ((rpg_msec)cl->f.time < cut + 10 * ET_MS && other == 0) {
        step(cl);
        rpg_msec until = cons_lease_until(&cl->cons[l]);
        max_until = until > max_until ? until : max_until;
        if (lost == 0 && until <= (rpg_msec)cl->f.time) {
            lost = (rpg_msec)cl->f.time;
        }
        for (unsigned i = 0; i < cl->n; i++) {
            if ((int)i != l && raft_state(raft_fixture_get(&cl->f, i)) == RAFT_LEADER) {
                other = (rpg_msec)cl->f.time;
            }
        }
    }
    assert_true(lost > 0);
    assert_true(other > 0);
    assert_true(max_until <= cut + LEASE_MS);
    assert_true(lost < other);
    assert_true(cl->echo_no > no_before);
    assert_int_equal(cl->overlaps, 0);
}

/* A probe extends the lease only with a majority of the voters of the configuration: the leader
 * counts itself once, an id outside the configuration and a repeated answer count nothing, and
 * answers to a probe that is no longer kept, or of an earlier term, are ignored. */
static void test_echo_counts_each_voter_once(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    struct cons *c = &cl->cons[l];
    uint64_t f1 = (uint64_t)((l + 1) % 3) + 1, f2 = (uint64_t)((l + 2) % 3) + 1;
    uint64_t seq, old_seq;
    raft_term term;
    assert_true(cons_echo_begin(c, &old_seq, &term));
    for (unsigned i = 0; i < CONS_ECHO_PROBES; i++) {
        assert_true(cons_echo_begin(c, &seq, &term));
    }
    /* The first probe's slot now holds a later one. */
    cons_echo_yes(c, f1, old_seq);
    assert_int_equal(c->lease_stats.via_echo, 0);
    cons_echo_yes(c, c->id, seq);
    cons_echo_yes(c, 9, seq);
    assert_int_equal(c->lease_stats.via_echo, 0);
    cons_echo_yes(c, f1, seq);
    assert_int_equal(c->lease_stats.via_echo, 1);
    /* Counted once per probe, however many more say yes. */
    cons_echo_yes(c, f2, seq);
    cons_echo_yes(c, f1, seq);
    assert_int_equal(c->lease_stats.via_echo, 1);
    uint64_t n = cons_echo_targets(c, (uint64_t[FSM_MEMBERS_MAX]){0}, FSM_MEMBERS_MAX);
    assert_int_equal(n, 2);
    /* A follower begins no probe. */
    assert_false(cons_echo_begin(&cl->cons[f1 - 1], &seq, &term));
}

/* A directory below the fence of a server no cons_attach has reached yet (cons_uv.c wraps the
 * io, bootstraps, then attaches): a write is taken, or refused with bare_refuse. */
static int bare_refuse;
static struct raft_io_append *bare_req;
static raft_io_append_cb bare_cb;
static int bare_status;

static int bare_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    (void)io;
    (void)entries;
    (void)n;
    if (bare_refuse != 0) {
        return bare_refuse;
    }
    bare_req = req;
    bare_cb = cb;
    return 0;
}

static void bare_done(struct raft_io_append *req, int status)
{
    (void)req;
    bare_status = status;
}

static struct cons *bare_wrap(struct raft_io *io)
{
    struct cons *c = test_malloc(sizeof *c);
    cons_setup(c);
    memset(io, 0, sizeof *io);
    io->append = bare_append;
    bare_refuse = 0;
    bare_req = NULL;
    bare_cb = NULL;
    bare_status = -1;
    cons_wal_wrap(c, io);
    return c;
}

/* The fence and the storage report work on the host's clock, which is not there before
 * cons_attach: a write that fails then closes the fence instead of crashing. */
static void test_failed_write_before_attach_fences(void **state)
{
    (void)state;
    struct raft_io io;
    struct cons *c = bare_wrap(&io);
    struct raft_entry e = {.term = 1, .type = RAFT_COMMAND};
    struct raft_io_append req;
    assert_int_equal(io.append(&io, &req, &e, 1, bare_done), 0);
    assert_int_equal(c->wal.n_pending, 1);
    assert_non_null(bare_cb);
    bare_cb(bare_req, RAFT_IOERR);
    assert_int_equal(bare_status, RAFT_IOERR);
    assert_true(c->wal.fenced);
    assert_true(c->storage.failed);
    assert_int_equal(c->wal.n_pending, 0);
    cons_wal_unwrap(c);
    test_free(c);
}

static rpg_msec bare_now(struct cons *c)
{
    (void)c;
    return 7000;
}

/* A write still pending at the attach counts towards the storage bound from the attach, not
 * from the clock's zero. */
static void test_write_pending_at_attach_counts_from_it(void **state)
{
    (void)state;
    struct raft_io io;
    struct cons *c = bare_wrap(&io);
    struct raft_entry e = {.term = 1, .type = RAFT_COMMAND};
    struct raft_io_append req;
    assert_int_equal(io.append(&io, &req, &e, 1, bare_done), 0);
    assert_int_equal(c->wal.pending[0].at, 0);
    struct cons_params p;
    memset(&p, 0, sizeof p);
    p.election_timeout_ms = ET_MS;
    struct cons_host host = {.now = bare_now};
    cons_attach(c, NULL, 1, &p, &host);
    assert_int_equal(c->wal.pending[0].at, 7000);
    bare_cb(bare_req, 0);
    assert_int_equal(bare_status, 0);
    assert_int_equal(c->wal.n_pending, 0);
    cons_detach(c);
    cons_wal_unwrap(c);
    test_free(c);
}

static void test_refused_write_and_probe_before_attach(void **state)
{
    (void)state;
    struct raft_io io;
    struct cons *c = bare_wrap(&io);
    cons_storage_probe_begin(c);
    cons_storage_report(c, -1, 5, "raft: read-only file system", false, 0);
    assert_true(c->storage.failed);
    bare_refuse = RAFT_IOERR;
    struct raft_entry e = {.term = 1, .type = RAFT_COMMAND};
    struct raft_io_append req;
    assert_int_equal(io.append(&io, &req, &e, 1, bare_done), RAFT_IOERR);
    assert_true(c->wal.fenced);
    assert_int_equal(bare_status, -1);
    cons_wal_unwrap(c);
    test_free(c);
}

static void test_healthy_leader_stays(void **state)
{
    struct cluster *cl = *state;
    assert_true(run_until(cl, initialised_with_config, NULL, WAIT_MS));
    int l = ready_leader(cl);
    assert_true(l >= 0);
    run_for(cl, 10 * ET_MS);
    assert_int_equal(ready_leader(cl), l);
    assert_int_equal(cl->cons[l].n_stepdowns, 0);
}

/* A bare raft_io below the write fence, standing for what libraft hands it and sends through it. */
static struct {
    raft_io_recv_cb recv; /* what libraft was told to call: the fence's */
    struct raft_message sent;
    unsigned n_sent;
    raft_index commit_seen; /* leader_commit as the follower read it */
    raft_index claims;      /* the follower's own last stored index */
} fake;

static int fake_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                      raft_io_recv_cb recv)
{
    (void)io, (void)msecs, (void)tick;
    fake.recv = recv;
    return 0;
}

static int fake_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    (void)io, (void)req, (void)cb;
    fake.sent = *m;
    fake.n_sent++;
    return 0;
}

/* libraft 0.15's follower: it answers a matching AppendEntries at once with its own last index. */
static void follower_recv(struct raft_io *io, struct raft_message *m)
{
    fake.commit_seen = m->append_entries.leader_commit;
    struct raft_message r;
    memset(&r, 0, sizeof r);
    r.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    r.append_entries_result.term = m->append_entries.term;
    r.append_entries_result.rejected = m->append_entries.prev_log_term == 2 ? 0 : 161;
    r.append_entries_result.last_log_index = fake.claims;
    struct raft_io_send req;
    assert_int_equal(io->send(io, &req, &r, NULL), 0);
}

static void deliver(struct raft_io *io, raft_index prev, raft_term prev_term, unsigned n,
                    raft_index commit)
{
    struct raft_entry entries[2];
    memset(entries, 0, sizeof entries);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES;
    m.append_entries.term = 3;
    m.append_entries.prev_log_index = prev;
    m.append_entries.prev_log_term = prev_term;
    m.append_entries.leader_commit = commit;
    m.append_entries.entries = n > 0 ? entries : NULL;
    m.append_entries.n_entries = n;
    fake.recv(io, &m);
}

/* A follower holding entry 162 of a cut-off leader's term answers the new leader's empty
 * AppendEntries (prev 161): libraft 0.15 claims 162, which the leader would count as its own entry
 * 162. The fence bounds the answer and the commit by what the message verified. */
static void test_follower_answer_claims_only_what_was_verified(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof fake);
    struct cons c;
    cons_setup(&c);
    struct raft_io io;
    memset(&io, 0, sizeof io);
    io.start = fake_start;
    io.send = fake_send;
    cons_wal_wrap(&c, &io);
    assert_int_equal(io.start(&io, 100, NULL, follower_recv), 0);

    fake.claims = 162;
    deliver(&io, 161, 2, 0, 162);
    assert_int_equal(fake.n_sent, 1);
    assert_int_equal(fake.sent.append_entries_result.rejected, 0);
    assert_int_equal(fake.sent.append_entries_result.last_log_index, 161);
    assert_int_equal(fake.commit_seen, 161);

    /* With an entry: verified up to 162. */
    fake.claims = 163;
    deliver(&io, 161, 2, 1, 170);
    assert_int_equal(fake.sent.append_entries_result.last_log_index, 162);
    assert_int_equal(fake.commit_seen, 162);

    /* A refusal's index is a hint for the leader, left as it is. */
    fake.claims = 162;
    deliver(&io, 161, 3, 0, 162);
    assert_int_equal(fake.sent.append_entries_result.rejected, 161);
    assert_int_equal(fake.sent.append_entries_result.last_log_index, 162);

    /* An answer sent after a write (not while a message is handled) is left as it is: the entries
     * written end the log. So is a commit below what was verified. */
    struct raft_message later = fake.sent;
    later.append_entries_result.rejected = 0;
    later.append_entries_result.last_log_index = 170;
    struct raft_io_send req;
    assert_int_equal(io.send(&io, &req, &later, NULL), 0);
    assert_int_equal(fake.sent.append_entries_result.last_log_index, 170);
    fake.claims = 161;
    deliver(&io, 161, 2, 0, 150);
    assert_int_equal(fake.commit_seen, 150);
    assert_int_equal(fake.sent.append_entries_result.last_log_index, 161);
    assert_int_equal(c.wal.n_ae_capped, 2);
    cons_wal_unwrap(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follower_answer_claims_only_what_was_verified),
        cmocka_unit_test_setup_teardown(test_leader_ready_after_own_term_barrier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_leader_records_members_and_settings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_leader_records_max_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_leader_records_bootstrap_parameters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_leader_records_bootstrap_parameters_and_max_lag,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_renewed_then_lost_when_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_candidate_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_added_as_spare_then_voter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_added_behind_a_spare_that_never_catches_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_leader_hands_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detached_request_completes_silently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_checksums_agree_at_the_same_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leader_that_cannot_persist_hands_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_diverged_leader_hands_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_leader_acts_after_the_fence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthy_leader_stays, setup, teardown),
        cmocka_unit_test(test_failed_write_before_attach_fences),
        cmocka_unit_test(test_refused_write_and_probe_before_attach),
        cmocka_unit_test(test_write_pending_at_attach_counts_from_it),
        cmocka_unit_test_setup_teardown(test_slow_follower_disks_keep_the_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_on_a_stuck_disk_hands_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_vote_per_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_term_write_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handover_to_unwritable_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_disks_lapse_a_barrier_only_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_disks_keep_an_echoed_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_leader_gets_no_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_counts_each_voter_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_holding_entries_are_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_follower_write_fences_then_restart_catches_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_refuses_a_directory_that_differs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_configuration_write_is_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_start_checks_against_the_record, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
