/* The simulated world: randomness, the event queue, the network, raft_fixture underneath, and the
 * loop that interleaves the fixture's events with the simulation's. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftpg/log.h"
#include "raftpg/storage.h"
#include "sim.h"

/* cons.c's values. A run commits far fewer entries, so no server takes a snapshot: libraft
 * 0.15's raft_fixture truncates its in-memory log as if it started at index 1, which after an
 * InstallSnapshot reads past the end of its entries array (AddressSanitizer shows it in
 * ioMethodTruncate). Snapshots with our FSM are tested in tests/raft/test_fixture.c. */
#define SNAPSHOT_THRESHOLD 1024
#define SNAPSHOT_TRAILING 256
#define CLIENT_MS 50
#define REPL_MS 10

/* ---- randomness (xoshiro256**, seeded through splitmix64) ----------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    for (unsigned k = 0; k < 4; k++) {
        r->s[k] = splitmix(&seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

unsigned sim_rng_below(struct sim_rng *r, unsigned n)
{
    return n == 0 ? 0 : (unsigned)(sim_rng_next(r) % n);
}

unsigned sim_rng_range(struct sim_rng *r, unsigned lo, unsigned hi)
{
    return lo + sim_rng_below(r, hi - lo + 1);
}

bool sim_rng_chance(struct sim_rng *r, unsigned per_mille)
{
    return sim_rng_below(r, 1000) < per_mille;
}

/* ---- the event queue: a binary heap ordered by (at, seq) ------------------------------------ */

static bool before(const struct sim_event *a, const struct sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_push(struct sim_world *w, rpg_msec at, enum sim_ev_type type, int node, uint64_t gen,
              uint64_t sub)
{
    struct sim_queue *q = &w->q;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 256;
        struct sim_event *v = realloc(q->v, cap * sizeof *v);
        if (v == NULL) {
            abort();
        }
        q->v = v;
        q->cap = cap;
    }
    size_t k = q->n++;
    struct sim_event e = {at, q->seq++, type, node, gen, sub};
    while (k > 0 && before(&e, &q->v[(k - 1) / 2])) {
        q->v[k] = q->v[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    q->v[k] = e;
}

static struct sim_event pop(struct sim_queue *q)
{
    struct sim_event top = q->v[0];
    struct sim_event last = q->v[--q->n];
    size_t k = 0;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= q->n) {
            break;
        }
        if (c + 1 < q->n && before(&q->v[c + 1], &q->v[c])) {
            c++;
        }
        if (!before(&q->v[c], &last)) {
            break;
        }
        q->v[k] = q->v[c];
        k = c;
    }
    if (q->n > 0) {
        q->v[k] = last;
    }
    return top;
}

/* ---- time, names, network -------------------------------------------------------------------- */

rpg_msec sim_now(const struct sim_world *w)
{
    return (rpg_msec)w->fx.time;
}

rpg_msec sim_local_at(const struct sim_world *w, unsigned i, rpg_msec at)
{
    const struct sim_node *n = &w->nodes[i];
    int64_t t = (int64_t)at;
    return (rpg_msec)(t + n->clock_offset + t * n->drift_ppm / 1000000);
}

rpg_msec sim_local_now(const struct sim_world *w, unsigned i)
{
    return sim_local_at(w, i, (rpg_msec)w->fx.time);
}

void sim_trace(struct sim_world *w, int node, const char *fmt, ...)
{
    if (!w->opt->verbose) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%9.3f %-6s %s\n", (double)sim_now(w) / 1000.0,
            node >= 0 ? w->nodes[node].name : "-", msg);
}

void sim_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

int sim_node_by_name(const struct sim_world *w, const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return -1;
    }
    for (unsigned i = 0; i < w->n; i++) {
        if (strcmp(w->nodes[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

bool sim_link(const struct sim_world *w, unsigned i, unsigned j)
{
    return i == j || (!w->cut[i][j] && !w->cut[j][i]);
}

uint32_t sim_new_uid(struct sim_world *w)
{
    return ++w->next_uid;
}

/* Voters in the largest Raft configuration any node holds: the majority the checks ask for. */
unsigned sim_voters(const struct sim_world *w)
{
    unsigned best = 0;
    for (unsigned i = 0; i < w->n; i++) {
        if (!w->nodes[i].exists) {
            continue;
        }
        struct raft *r = raft_fixture_get((struct raft_fixture *)&w->fx, w->nodes[i].fx);
        unsigned v = 0;
        for (unsigned k = 0; k < r->configuration.n; k++) {
            v += r->configuration.servers[k].role == RAFT_VOTER;
        }
        best = v > best ? v : best;
    }
    return best;
}

/* Applies the simulation's link state to the fixture: a cut link drops Raft messages too. Servers
 * that are killed stay as raft_fixture_kill left them. */
void sim_net_sync(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *a = &w->nodes[i];
        if (!a->exists) {
            continue;
        }
        raft_fixture_set_network_latency(&w->fx, a->fx, a->latency);
        for (unsigned j = 0; j < w->n; j++) {
            struct sim_node *b = &w->nodes[j];
            if (i == j || !b->exists || a->raft_killed || b->raft_killed) {
                continue;
            }
            if (w->cut[i][j]) {
                raft_fixture_saturate(&w->fx, a->fx, b->fx);
            } else {
                raft_fixture_desaturate(&w->fx, a->fx, b->fx);
            }
        }
    }
}

void sim_raft_kill(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->raft_killed) {
        raft_fixture_kill(&w->fx, n->fx);
        n->raft_killed = true;
    }
}

void sim_raft_revive(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (n->raft_killed && n->up && !n->frozen && !n->agent_frozen && n->agent.alive &&
        n->cons.running) {
        raft_fixture_revive(&w->fx, n->fx);
        n->raft_killed = false;
        /* Revival reconnects every link: cut again what the network cuts. */
        sim_net_sync(w);
    }
}

/* ---- the fixture ----------------------------------------------------------------------------- */

/* The world being run: io->data belongs to raft (its tick and receive callbacks find the server
 * through it) and the append callback carries no user data of ours. */
static struct sim_world *g_shim_world;

static struct sim_shim *shim_of(struct raft_io *io)
{
    for (unsigned f = 0; f < RAFT_FIXTURE_MAX_SERVERS; f++) {
        if (g_shim_world->shims[f].io == io) {
            return &g_shim_world->shims[f];
        }
    }
    abort();
}

static void shim_truncate_now(struct sim_shim *s, raft_index index)
{
    if (index > s->stored) {
        return; /* beyond what the directory holds (a failed write never reached it) */
    }
    s->stored = index - 1;
    int rv = s->truncate(s->io, index);
    if (rv != 0) {
        fprintf(stderr, "raftpg_sim: raft_fixture truncate(%llu) failed: %d\n",
                (unsigned long long)index, rv);
        abort();
    }
}

static void shim_append_done(struct raft_io_append *req, int status)
{
    struct sim_world *w = g_shim_world;
    for (unsigned f = 0; f < RAFT_FIXTURE_MAX_SERVERS; f++) {
        struct sim_shim *s = &w->shims[f];
        for (unsigned k = 0; k < s->n_pending; k++) {
            if (s->pending[k].req != req) {
                continue;
            }
            raft_io_append_cb cb = s->pending[k].cb;
            raft_index stored = s->stored;
            unsigned n = s->pending[k].n;
            status = status == 0 ? s->pending[k].status : status;
            memmove(&s->pending[k], &s->pending[k + 1],
                    (s->n_pending - k - 1) * sizeof s->pending[0]);
            s->n_pending--;
            if (status != 0) {
                /* A storage fault: nothing of it reaches the directory (the fixture stored the
                 * entries: drop them), libraft hears the write failed and keeps them in memory
                 * only, as with raft_uv; the appends queued behind it fail too. */
                if (s->truncate(s->io, stored + 1) != 0) {
                    abort(); /* the fixture holds stored + n entries: truncation cannot fail */
                }
                for (unsigned q = 0; q < s->n_pending; q++) {
                    s->pending[q].status = s->pending[q].status != 0 ? s->pending[q].status
                                                                     : status;
                }
            } else {
                s->stored = stored + n;
            }
            req->cb = cb;
            cb(req, status);
            /* Appends complete in order: the first deferred truncations may run now. */
            for (unsigned d = 0; d < s->n_deferred; d++) {
                s->deferred[d].ahead -= s->deferred[d].ahead > 0;
            }
            while (s->n_deferred > 0 && s->deferred[0].ahead == 0) {
                raft_index index = s->deferred[0].index;
                memmove(&s->deferred[0], &s->deferred[1],
                        (s->n_deferred - 1) * sizeof s->deferred[0]);
                s->n_deferred--;
                shim_truncate_now(s, index);
            }
            return;
        }
    }
    abort(); /* an append the shim never saw */
}

static int shim_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct sim_shim *s = shim_of(io);
    if (s->n_pending == s->cap_pending) {
        unsigned cap = s->cap_pending ? 2 * s->cap_pending : 16;
        struct sim_shim_append *p = realloc(s->pending, cap * sizeof *p);
        if (p == NULL) {
            abort();
        }
        s->pending = p;
        s->cap_pending = cap;
    }
    if (s->fail != 0 && raft_state(io->data) == RAFT_LEADER) {
        /* raft_uv (README.md): a leader's write is refused when submitted (no open segment can be
         * prepared, the directory refuses writes), so the leader's raft_apply and raft_barrier
         * fail at once and nothing of it is sent; a follower's write fails when it completes,
         * libraft then keeps the entries in memory only. */
        return s->fail;
    }
    int rv = s->append(io, req, entries, n, shim_append_done);
    if (rv == 0) {
        s->pending[s->n_pending++] = (struct sim_shim_append){req, cb, s->fail, n};
    }
    return rv;
}

static int shim_truncate(struct raft_io *io, raft_index index)
{
    struct sim_shim *s = shim_of(io);
    if (s->n_pending == 0 && s->n_deferred == 0) {
        if (index <= s->stored) {
            s->stored = index - 1;
            return s->truncate(io, index);
        }
        return 0; /* beyond what the directory holds */
    }
    if (s->n_deferred == sizeof s->deferred / sizeof s->deferred[0]) {
        abort();
    }
    s->deferred[s->n_deferred++] = (struct sim_shim_truncate){index, s->n_pending};
    return 0;
}

static void shim_send_done(struct raft_io_send *req, int status)
{
    struct sim_world *w = g_shim_world;
    for (unsigned f = 0; f < RAFT_FIXTURE_MAX_SERVERS; f++) {
        struct sim_shim *s = &w->shims[f];
        for (unsigned k = 0; k < s->n_sends; k++) {
            if (s->sends[k].req != req) {
                continue;
            }
            raft_io_send_cb cb = s->sends[k].cb;
            memmove(&s->sends[k], &s->sends[k + 1], (s->n_sends - k - 1) * sizeof s->sends[0]);
            s->n_sends--;
            req->cb = cb;
            if (cb != NULL) {
                cb(req, status);
            }
            return;
        }
    }
    abort(); /* a send the shim never saw */
}

static int shim_send(struct raft_io *io, struct raft_io_send *req,
                     const struct raft_message *message, raft_io_send_cb cb)
{
    struct sim_shim *s = shim_of(io);
    if (s->n_sends == s->cap_sends) {
        unsigned cap = s->cap_sends ? 2 * s->cap_sends : 16;
        struct sim_shim_send *p = realloc(s->sends, cap * sizeof *p);
        if (p == NULL) {
            abort();
        }
        s->sends = p;
        s->cap_sends = cap;
    }
    int rv = s->send(io, req, message, shim_send_done);
    if (rv == 0) {
        s->sends[s->n_sends++] = (struct sim_shim_send){req, cb};
    }
    return rv;
}

static int shim_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct sim_shim *s = shim_of(io);
    int rv = s->bootstrap(io, conf);
    if (rv == 0) {
        s->stored = 1;
    }
    return rv;
}

/* raft_uv rewrites its metadata files in place (uvMetadataStore): a full directory takes the
 * term and the vote, a read-only one refuses them. */
static int shim_set_term(struct raft_io *io, raft_term term)
{
    struct sim_shim *s = shim_of(io);
    return s->fail == RAFT_IOERR ? RAFT_IOERR : s->set_term(io, term);
}

static int shim_set_vote(struct raft_io *io, raft_id server_id)
{
    struct sim_shim *s = shim_of(io);
    return s->fail == RAFT_IOERR ? RAFT_IOERR : s->set_vote(io, server_id);
}

/* A snapshot is new files: neither directory takes it. */
static int shim_snapshot_put(struct raft_io *io, unsigned trailing,
                             struct raft_io_snapshot_put *req, const struct raft_snapshot *snapshot,
                             raft_io_snapshot_put_cb cb)
{
    struct sim_shim *s = shim_of(io);
    return s->fail != 0 ? s->fail : s->snapshot_put(io, trailing, req, snapshot, cb);
}

static void shim_install(struct sim_world *w, unsigned fx)
{
    struct raft_io *io = &w->fx.servers[fx].io;
    struct sim_shim *s = &w->shims[fx];
    memset(s, 0, sizeof *s);
    s->io = io;
    s->append = io->append;
    s->truncate = io->truncate;
    s->send = io->send;
    s->bootstrap = io->bootstrap;
    io->append = shim_append;
    io->truncate = shim_truncate;
    io->send = shim_send;
    io->bootstrap = shim_bootstrap;
    s->set_term = io->set_term;
    s->set_vote = io->set_vote;
    s->snapshot_put = io->snapshot_put;
    io->set_term = shim_set_term;
    io->set_vote = shim_set_vote;
    io->snapshot_put = shim_snapshot_put;
}

/* The fixture holds no request of server fx's libraft: it may close. */
bool sim_shim_idle(struct sim_world *w, unsigned fx)
{
    const struct sim_shim *s = &w->shims[fx];
    return s->n_pending == 0 && s->n_sends == 0 && s->n_deferred == 0;
}

static void fixture_hook(struct raft_fixture *f, struct raft_fixture_event *event)
{
    struct sim_world *w = (struct sim_world *)f;
    unsigned fx = event->server_index;
    if (fx == 0 || w->closing) {
        return;
    }
    /* raft_fixture's io->random() returns a fixed value per server; draw the next randomised
     * election timeout from the seeded generator so elections vary with the seed. */
    raft_fixture_set_randomized_election_timeout(
        f, fx, SIM_ELECTION_TIMEOUT_MS + sim_rng_below(&w->rng, SIM_ELECTION_TIMEOUT_MS));
    for (unsigned i = 0; i < w->n; i++) {
        if (w->nodes[i].exists && w->nodes[i].fx == fx) {
            sim_raft_monitor(w, i);
        }
    }
}

static struct fsm g_clock_fsm;
static struct fsm_state g_clock_state;
/* The clock's term: no node gets anywhere near it. */
#define CLOCK_TERM (1ull << 40)

static void configure(struct raft *r)
{
    raft_set_election_timeout(r, SIM_ELECTION_TIMEOUT_MS);
    raft_set_heartbeat_timeout(r, SIM_HEARTBEAT_MS);
    raft_set_pre_vote(r, true);
    raft_set_snapshot_threshold(r, SNAPSHOT_THRESHOLD);
    raft_set_snapshot_trailing(r, SNAPSHOT_TRAILING);
    raft_set_max_catch_up_rounds(r, 10);
    raft_set_max_catch_up_round_duration(r, 5 * SIM_ELECTION_TIMEOUT_MS);
}

/* Adds node i as a new fixture server (initial members are bootstrapped by the caller). */
int sim_node_create(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "node%u", i + 1);
    n->fx = raft_fixture_n(&w->fx);
    cons_setup(&n->cons);
    /* cons_uv.c: the directory and the open-segment size chosen at start (storage.h). */
    n->cons.storage.dir = "raft";
    n->cons.storage.segment_size = STORAGE_SEGMENT_MAX;
    if (raft_fixture_grow(&w->fx, &n->cons.fsm.raft) != 0) {
        return -1;
    }
    shim_install(w, n->fx);
    /* The agent's write fence sits between libraft and the directory (cons.h, wal). */
    struct raft *r = raft_fixture_get(&w->fx, n->fx);
    r->data = &n->cons;
    cons_wal_wrap(&n->cons, &w->fx.servers[n->fx].io);
    configure(r);
    raft_fixture_set_randomized_election_timeout(
        &w->fx, n->fx, SIM_ELECTION_TIMEOUT_MS + sim_rng_below(&w->rng, SIM_ELECTION_TIMEOUT_MS));
    sim_pg_init(&n->pg);
    n->exists = true;
    n->up = true;
    n->latency = SIM_BASE_LATENCY_MS;
    /* Every node's monotonic clock has its own origin and rate. */
    n->clock_offset = 1000000 + (int64_t)sim_rng_below(&w->rng, 1000000);
    n->drift_ppm = (int32_t)sim_rng_below(&w->rng, 401) - 200;
    if (i >= w->n) {
        w->n = i + 1;
    }
    return 0;
}

static int setup(struct sim_world *w)
{
    if (raft_fixture_initialize(&w->fx) != 0) {
        return -1;
    }
    /* Server 0 is the clock: it ticks every SIM_CLOCK_TICK_MS, so that the simulation's own
     * events run at most that late. It is a cluster of its own (nobody sends it anything) whose
     * term is far above any the nodes reach: raft_fixture then takes it for the leader and never
     * finds it "stable" (acknowledged by every node), which spares a copy of a leader's whole log
     * at every step, a cost that grows with the log. The fixture's election-safety check (no two
     * leaders in one term) still runs; its leader append-only check does not. */
    fsm_state_init(&g_clock_state);
    fsm_init(&g_clock_fsm, &g_clock_state);
    if (raft_fixture_grow(&w->fx, &g_clock_fsm.raft) != 0) {
        return -1;
    }
    struct raft *clock = raft_fixture_get(&w->fx, 0);
    raft_set_election_timeout(clock, 10 * SIM_ELECTION_TIMEOUT_MS);
    raft_set_heartbeat_timeout(clock, SIM_CLOCK_TICK_MS);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    if (raft_configuration_add(&conf, clock->id, clock->address, RAFT_VOTER) != 0 ||
        raft_bootstrap(clock, &conf) != 0) {
        raft_configuration_close(&conf);
        return -1;
    }
    raft_configuration_close(&conf);
    raft_fixture_set_term(&w->fx, 0, CLOCK_TERM);
    for (unsigned i = 0; i < w->n_initial; i++) {
        if (sim_node_create(w, i) != 0) {
            return -1;
        }
    }
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < w->n_initial; i++) {
        struct raft *r = raft_fixture_get(&w->fx, w->nodes[i].fx);
        if (raft_configuration_add(&conf, r->id, r->address, RAFT_VOTER) != 0) {
            raft_configuration_close(&conf);
            return -1;
        }
    }
    int rv = 0;
    for (unsigned i = 0; i < w->n_initial && rv == 0; i++) {
        rv = raft_bootstrap(raft_fixture_get(&w->fx, w->nodes[i].fx), &conf);
    }
    raft_configuration_close(&conf);
    if (rv != 0 || raft_fixture_start(&w->fx) != 0) {
        return -1;
    }
    /* Every server waits for its agent to start Raft (sim_fence.c, EV_RAFT_START). */
    for (unsigned i = 0; i < w->n_initial; i++) {
        sim_raft_kill(w, i);
    }
    raft_fixture_hook(&w->fx, fixture_hook);
    sim_net_sync(w);
    return 0;
}

/* Starts a node that was grown into the fixture after the start (a new member). */
int sim_node_start_raft(struct sim_world *w, unsigned i)
{
    int rv = raft_start(raft_fixture_get(&w->fx, w->nodes[i].fx));
    if (rv == 0) {
        /* It runs once its agent starts Raft (sim_fence.c, EV_RAFT_START). */
        sim_raft_kill(w, i);
    }
    return rv;
}

/* cons_uv.c restart_raft and reopen_raft on node i's fixture server, once the fixture holds no
 * request of its libraft (raft_uv's close waits for them the same way): the server closes and
 * starts again from the fixture's log, which holds what the node's directory would. Raft runs
 * again one election timeout later (EV_RAFT_START), as after cons_uv.c's start timer. True when
 * it reopened. */
bool sim_raft_reopen_maybe(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->raft_restarting || !sim_shim_idle(w, n->fx)) {
        return false;
    }
    n->raft_restarting = false;
    struct cons *c = &n->cons;
    struct raft_fixture_server *srv = &w->fx.servers[n->fx];
    struct raft *r = &srv->raft;
    cons_restart_begin(c);
    raft_close(r, NULL);
    cons_detach(c);
    cons_restart_reset(c);
    int rv = raft_init(r, &srv->io, &c->fsm.raft, srv->id, srv->address);
    if (rv == 0) {
        r->data = c;
        configure(r); /* the fixture's io keeps its randomised election timeout */
        rv = raft_start(r);
    }
    if (rv != 0) {
        fprintf(stderr, "raftpg_sim: %s: raft restart failed: %s: %s\n", n->name, raft_strerror(rv),
                raft_errmsg(r));
        abort();
    }
    return true;
}

/* A dead agent's Raft server, on node i: the next process starts from what the directory holds
 * (the fixture's term, vote and log, which the shim keeps to what was written) and from nothing of
 * the dead one's memory (its role, its volatile state, a leadership transfer under way). It is
 * reopened once the fixture holds no request of the old server (the writes the dead process had
 * handed to the kernel complete first). A server whose
 * libraft freed its installed configuration (cons.c config_freed, out of memory only) cannot
 * close and keeps its memory. True when it reloaded. */
bool sim_raft_reload_maybe(struct sim_world *w, unsigned i)
{
    struct sim_node *n = &w->nodes[i];
    if (!n->raft_reload || !sim_shim_idle(w, n->fx)) {
        return false;
    }
    n->raft_reload = false;
    struct cons *c = &n->cons;
    if (c->wal.config_freed) {
        return false;
    }
    struct raft_fixture_server *srv = &w->fx.servers[n->fx];
    struct raft *r = &srv->raft;
    raft_close(r, NULL);
    cons_restart_reset(c);
    /* A new process holds no log to check the directory against (the record of a pending
     * failure, README.md of tests/sim, is not modelled). */
    free(c->wal.sums);
    c->wal.sums = NULL;
    c->wal.n_sums = 0;
    c->wal.verify = false;
    c->wal.verified = false;
    c->wal.from_record = false;
    int rv = raft_init(r, &srv->io, &c->fsm.raft, srv->id, srv->address);
    if (rv == 0) {
        r->data = c;
        configure(r);
        rv = raft_start(r);
    }
    if (rv != 0) {
        fprintf(stderr, "raftpg_sim: %s: raft reload failed: %s: %s\n", n->name, raft_strerror(rv),
                raft_errmsg(r));
        abort();
    }
    return true;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static bool node_event(enum sim_ev_type t)
{
    switch (t) {
    case EV_AGENT_START:
    case EV_TICK:
    case EV_OBSERVE:
    case EV_POLL:
    case EV_POLL_STEP:
    case EV_RECONCILE:
    case EV_REMOVE_TICK:
    case EV_HOOK_DONE:
    case EV_OP_STEP:
    case EV_PG_UP:
    case EV_PG_PROMOTED:
    case EV_PG_CHECKPOINT:
    case EV_PG_SHUTDOWN:
    case EV_CRASH_ARMED:
    case EV_FENCE:
    case EV_LEASE:
    case EV_RAFT_START:
    case EV_VIP_DONE:
    case EV_GUARD: return true;
    case EV_WATCHDOG: return false;   /* the kernel's: it fires on a paused node */
    case EV_VIP_EXPIRE: return false; /* the kernel's too */
    default: return false;
    }
}

/* The agent's own events: what a stopped agent process does not do (its programs, its server,
 * its guard and the kernel go on). */
static bool agent_event(enum sim_ev_type t)
{
    switch (t) {
    case EV_AGENT_START:
    case EV_TICK:
    case EV_OBSERVE:
    case EV_POLL:
    case EV_POLL_STEP:
    case EV_RECONCILE:
    case EV_REMOVE_TICK:
    case EV_HOOK_DONE:
    case EV_OP_STEP:
    case EV_CRASH_ARMED:
    case EV_FENCE:
    case EV_LEASE:
    case EV_RAFT_START: return true;
    case EV_VIP_DONE: return false; /* its program's; sim_fence_event keeps the agent's part */
    default: return false;
    }
}

static void dispatch(struct sim_world *w, const struct sim_event *e)
{
    if (agent_event(e->type) && e->node >= 0 && w->nodes[e->node].agent_frozen) {
        sim_push(w, sim_now(w) + 10, e->type, e->node, e->gen, e->sub);
        return;
    }
    if ((e->type == EV_WATCHDOG || e->type == EV_VIP_EXPIRE) && e->node >= 0 &&
        w->nodes[e->node].vm_paused) {
        /* A paused guest's kernel counts nothing: its watchdog and address lifetimes run on
         * from where they stood when the pause began. */
        const struct sim_node *n = &w->nodes[e->node];
        sim_push(w, n->frozen_until + (sim_now(w) - n->frozen_at), e->type, e->node, e->gen,
                 e->sub);
        return;
    }
    if (node_event(e->type) && w->nodes[e->node].frozen) {
        /* Nothing runs on a frozen node. Stopped processes find their timers due when they
         * resume; in a guest paused with its clocks, every process and timer runs on from where
         * it stood (a VIP probe under way still has the rest of its time to go). */
        const struct sim_node *n = &w->nodes[e->node];
        rpg_msec at = n->frozen_until + (n->vm_paused ? sim_now(w) - n->frozen_at : 0);
        sim_push(w, at, e->type, e->node, e->gen, e->sub);
        return;
    }
    if ((e->type == EV_PG_UP || e->type == EV_PG_PROMOTED || e->type == EV_PG_CHECKPOINT ||
         e->type == EV_PG_SHUTDOWN) &&
        w->nodes[e->node].pg.sigstopped) {
        /* A stopped server does nothing until continued (the fence's soft layer is short). */
        sim_push(w, sim_now(w) + 10, e->type, e->node, e->gen, e->sub);
        return;
    }
    rpg_msec now = sim_now(w);
    switch (e->type) {
    case EV_AGENT_START:
        if (w->nodes[e->node].up && !w->nodes[e->node].agent.alive && !w->nodes[e->node].removed) {
            sim_agent_start(w, (unsigned)e->node);
        }
        return;
    case EV_TICK:
    case EV_OBSERVE:
    case EV_POLL:
    case EV_POLL_STEP:
    case EV_RECONCILE:
    case EV_REMOVE_TICK:
    case EV_HOOK_DONE: sim_agent_event(w, e); return;
    case EV_OP_STEP: sim_op_step_done(w, (unsigned)e->node, e->gen); return;
    case EV_PG_UP:
    case EV_PG_PROMOTED:
    case EV_PG_CHECKPOINT:
    case EV_PG_SHUTDOWN: sim_pg_event(w, e); return;
    case EV_FENCE:
    case EV_LEASE:
    case EV_RAFT_START:
    case EV_VIP_DONE:
    case EV_VIP_EXPIRE:
    case EV_GUARD:
    case EV_WATCHDOG: sim_fence_event(w, e); return;
    case EV_CRASH_ARMED: sim_trigger_fire(w, (unsigned)e->node); return;
    case EV_REPL:
        sim_repl_round(w);
        sim_push(w, now + REPL_MS, EV_REPL, -1, 0, 0);
        return;
    case EV_CLIENT:
        sim_client_round(w);
        sim_push(w, now + CLIENT_MS, EV_CLIENT, -1, 0, 0);
        return;
    case EV_CHECK:
        sim_operator_tick(w);
        sim_check_periodic(w);
        if (!w->done) {
            sim_push(w, now + SIM_CHECK_MS, EV_CHECK, -1, 0, 0);
        }
        return;
    case EV_FAULT: sim_fault_begin(w, (unsigned)e->node); return;
    case EV_FAULT_END: sim_fault_end(w, (unsigned)e->node); return;
    case EV_OPERATOR: sim_fault_step(w, (unsigned)e->node, (unsigned)e->sub); return;
    case EV_FLAP: sim_fault_flap(w, (unsigned)e->node); return;
    case EV_HEAL: sim_heal_all(w); return;
    case EV_NODE_BACK: sim_node_restart(w, (unsigned)e->node); return;
    case EV_END:
        sim_check_end(w);
        w->done = true;
        return;
    }
}

static void teardown(struct sim_world *w)
{
    w->closing = true;
    /* The agents go first: libraft completes their pending requests as it closes, silently. */
    for (unsigned i = 0; i < w->n; i++) {
        cons_detach(&w->nodes[i].cons);
    }
    raft_fixture_close(&w->fx);
    for (unsigned i = 0; i < w->n; i++) {
        cons_free_requests(&w->nodes[i].cons);
        cons_wal_unwrap(&w->nodes[i].cons);
    }
    for (unsigned i = 0; i < w->n; i++) {
        sim_pg_free(&w->nodes[i].pg);
    }
    for (unsigned f = 0; f < RAFT_FIXTURE_MAX_SERVERS; f++) {
        free(w->shims[f].pending);
        free(w->shims[f].sends);
    }
    free(w->q.v);
    free(w->acked);
}

int sim_run(const struct sim_options *opt, uint64_t seed, const struct sim_schedule *sched,
            struct sim_result *res)
{
    struct sim_world *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return -1;
    }
    memset(res, 0, sizeof *res);
    w->opt = opt;
    w->sched = sched;
    w->seed = seed;
    w->res = res;
    w->n_initial = opt->nodes;
    w->last_primary = -1;
    w->crash_new_primary = -1;
    g_shim_world = w;
    sim_rng_seed(&w->rng, seed ^ 0x5eed5eed5eed5eedull);
    /* The core's log lines carry wall-clock time and one member name; the trace (--verbose)
     * says the same with virtual time. A level above LOG_ERROR prints nothing: action failures
     * are routine under faults. */
    log_setup("sim", (enum log_level)(LOG_ERROR + 1), 0);
    if (setup(w) != 0) {
        fprintf(stderr, "raftpg_sim: cannot set up raft_fixture\n");
        teardown(w);
        free(w);
        return -1;
    }
    for (unsigned i = 0; i < w->n_initial; i++) {
        /* Agents come up within the first 300 ms, in an order the seed chooses. */
        sim_push(w, sim_rng_below(&w->rng, 300), EV_AGENT_START, (int)i, 0, 0);
    }
    sim_push(w, REPL_MS, EV_REPL, -1, 0, 0);
    sim_push(w, CLIENT_MS, EV_CLIENT, -1, 0, 0);
    sim_push(w, SIM_CHECK_MS, EV_CHECK, -1, 0, 0);
    while (!w->done && w->q.n > 0) {
        rpg_msec next = w->q.v[0].at;
        while ((rpg_msec)w->fx.time < next) {
            raft_fixture_step(&w->fx);
        }
        while (!w->done && w->q.n > 0 && w->q.v[0].at <= (rpg_msec)w->fx.time) {
            struct sim_event e = pop(&w->q);
            dispatch(w, &e);
            sim_check_instant(w);
        }
    }
    res->virtual_ms = sim_now(w);
    teardown(w);
    free(w);
    return 0;
}
