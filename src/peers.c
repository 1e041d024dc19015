#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/cons_uv.h"
#include "raftpg/http.h"
#include "raftpg/log.h"
#include "raftpg/peers.h"

static void copy_str(char *dst, size_t size, json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(dst, size, "%s", v != NULL ? v : "");
}

/* A number a member reports: absent or null is 0 (an older member may not send it); anything
 * else but an integer from 0 to max makes the whole answer bad, with the field named. */
struct num_reader {
    const char *api;
    bool bad;
    char *error;
    size_t error_size;
};

static uint64_t num(struct num_reader *r, json_t *obj, const char *where, const char *key,
                    uint64_t max)
{
    json_t *v = json_object_get(obj, key);
    if (r->bad || v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        (uint64_t)json_integer_value(v) <= max) {
        return (uint64_t)json_integer_value(v);
    }
    r->bad = true;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(r->error, r->error_size,
             "%s: bad /status answer: %s%s%s is %.40s, not an integer from 0 to %llu", r->api,
             where, where[0] != '\0' ? "." : "", key, text != NULL ? text : "?",
             (unsigned long long)max);
    free(text);
    return 0;
}

int peers_read_status(struct peer_status *s, int status, const char *body, size_t len)
{
    s->reachable = false;
    char api[FSM_ADDR_MAX];
    memcpy(api, s->api, sizeof api);
    api[sizeof api - 1] = '\0';
    json_error_t jerr;
    json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!json_is_object(o)) {
        snprintf(s->error, sizeof s->error, "%s: bad /status answer (http %d)", api, status);
        json_decref(o);
        return -1;
    }
    struct num_reader r = {.api = api, .error = s->error, .error_size = sizeof s->error};
    s->id = num(&r, o, "", "id", UINT64_MAX >> 1);
    s->term = num(&r, o, "", "term", UINT64_MAX >> 1);
    copy_str(s->raft_role, sizeof s->raft_role, o, "raft_role");
    copy_str(s->leader, sizeof s->leader, o, "leader");
    copy_str(s->phase, sizeof s->phase, o, "phase");
    json_t *pg = json_object_get(o, "postgresql");
    s->has_pg = json_is_object(pg);
    if (s->has_pg) {
        s->pg_state = ha_pg_state_parse(json_string_value(json_object_get(pg, "state")));
        s->pg_in_recovery = json_is_true(json_object_get(pg, "in_recovery"));
        s->pg_pending_restart = json_is_true(json_object_get(pg, "pending_restart"));
        s->pg_streaming = json_is_true(json_object_get(pg, "streaming"));
        const char *sysid = json_string_value(json_object_get(pg, "system_id"));
        s->pg_system_id = sysid != NULL ? strtoull(sysid, NULL, 10) : 0;
        s->pg_timeline = (uint32_t)num(&r, pg, "postgresql", "timeline", UINT32_MAX);
        s->pg_checkpoint_timeline =
            (uint32_t)num(&r, pg, "postgresql", "checkpoint_timeline", UINT32_MAX);
        s->pg_wal_position = num(&r, pg, "postgresql", "wal_position", UINT64_MAX >> 1);
        s->pg_replay_position = num(&r, pg, "postgresql", "replay_position", UINT64_MAX >> 1);
        s->pg_start_failures = (unsigned)num(&r, pg, "postgresql", "start_failures", UINT32_MAX);
        s->pg_crashes = (unsigned)num(&r, pg, "postgresql", "crashes", UINT32_MAX);
        const char *unwritable = json_string_value(json_object_get(pg, "unwritable"));
        s->pg_unwritable = unwritable != NULL && unwritable[0] != '\0';
        copy_str(s->pg_address, sizeof s->pg_address, pg, "address");
        copy_str(s->pg_upstream, sizeof s->pg_upstream, pg, "upstream");
        copy_str(s->pg_receiver, sizeof s->pg_receiver, pg, "receiver");
        copy_str(s->pg_conninfo, sizeof s->pg_conninfo, pg, "conninfo");
        copy_str(s->pg_detail, sizeof s->pg_detail, pg, "detail");
        json_t *rj = json_object_get(pg, "rejoin");
        copy_str(s->pg_rejoin_stage, sizeof s->pg_rejoin_stage, rj, "stage");
        s->pg_rejoin_running = json_is_true(json_object_get(rj, "running"));
        s->pg_rejoin_done_kb = num(&r, rj, "postgresql.rejoin", "done_kb", UINT64_MAX >> 1);
        s->pg_rejoin_total_kb = num(&r, rj, "postgresql.rejoin", "total_kb", UINT64_MAX >> 1);
    }
    json_t *tags = json_object_get(o, "tags");
    char *tags_text = json_is_object(tags) ? json_dumps(tags, JSON_COMPACT) : NULL;
    snprintf(s->tags_json, sizeof s->tags_json, "%s",
             tags_text != NULL && strlen(tags_text) < sizeof s->tags_json ? tags_text : "");
    free(tags_text);
    json_t *sr = json_object_get(o, "scheduled_restart");
    char *sr_text = json_is_object(sr) ? json_dumps(sr, JSON_COMPACT) : NULL;
    snprintf(s->scheduled_restart, sizeof s->scheduled_restart, "%s",
             sr_text != NULL && strlen(sr_text) < sizeof s->scheduled_restart ? sr_text : "");
    free(sr_text);
    s->nofailover = json_is_true(json_object_get(tags, "nofailover"));
    s->nosync = json_is_true(json_object_get(tags, "nosync"));
    s->noloadbalance = json_is_true(json_object_get(tags, "noloadbalance"));
    /* Absent or null is Patroni's default, 1; 0 means never a failover candidate. */
    json_t *prio = json_object_get(tags, "failover_priority");
    s->failover_priority = prio == NULL || json_is_null(prio)
                               ? 1
                               : (int)num(&r, tags, "tags", "failover_priority", INT_MAX);
    json_t *rs = json_object_get(o, "raft_storage");
    s->storage_failed = json_is_object(rs) && json_is_false(json_object_get(rs, "ok"));
    copy_str(s->storage_error, sizeof s->storage_error, rs, "error");
    json_t *st = json_object_get(o, "state");
    const char *sum = json_string_value(json_object_get(st, "checksum"));
    s->state_known = sum != NULL && sum[0] != '\0';
    s->state_index = num(&r, st, "state", "applied_index", UINT64_MAX >> 1);
    s->state_sum = s->state_known ? strtoull(sum, NULL, 16) : 0;
    s->diverged = json_is_true(json_object_get(st, "diverged"));
    s->state_version = (unsigned)num(&r, o, "", "state_version", UINT32_MAX);
    json_t *sw = json_object_get(o, "switchover");
    copy_str(s->handed_to, sizeof s->handed_to, sw, "handed_to");
    s->handed_term = num(&r, sw, "switchover", "handed_term", UINT64_MAX >> 1);
    json_t *fp = json_object_get(o, "failover_permit");
    copy_str(s->permit_to, sizeof s->permit_to, fp, "to");
    s->permit_ms_left = num(&r, fp, "failover_permit", "ms_left", UINT64_MAX >> 1);
    s->n_members = 0;
    const char *mname;
    json_t *mid;
    json_object_foreach(json_object_get(st, "members"), mname, mid) {
        uint64_t id =
            num(&r, json_object_get(st, "members"), "state.members", mname, UINT64_MAX >> 1);
        if (s->n_members < FSM_MEMBERS_MAX && !r.bad && strlen(mname) < FSM_NAME_MAX) {
            snprintf(s->members[s->n_members].name, FSM_NAME_MAX, "%s", mname);
            s->members[s->n_members].id = id;
            s->n_members++;
        }
    }
    json_decref(o);
    if (r.bad) {
        return -1;
    }
    s->reachable = true;
    s->error[0] = '\0';
    return 0;
}

/* What one peer answered to GET /status (or why it did not), into s. */
static void read_status(struct peer_status *s, int rv, int status, const char *body, size_t len,
                        const char *errmsg)
{
    if (rv != 0) {
        s->reachable = false;
        snprintf(s->error, sizeof s->error, "%s", errmsg);
        return;
    }
    peers_read_status(s, status, body, len);
}

static void ask(struct peers *p, const struct peer_status *target, bool again);

/* Once when a peer's least round trip becomes too long for the election timeout, once when it
 * is back (peer_book.h rtt_bound_ms). */
static void rtt_report(const struct peers *p, const struct peer_status *t)
{
    if (t == NULL) {
        return;
    }
    if (t->rtt_slow) {
        log_warning("round trip to %s: the least of its last %d polls took %llu ms, more than a "
                    "sixth of the election timeout (%llu ms): lease renewals may not commit in "
                    "time and the primary may fence itself; raise raft.election_timeout to at "
                    "least %llu ms (README: choosing the election timeout)",
                    t->name, PEER_RTT_SAMPLES, (unsigned long long)t->rtt_min_ms,
                    (unsigned long long)p->election_timeout_ms,
                    (unsigned long long)t->rtt_min_ms * 6);
    } else {
        log_info("round trip to %s back to %llu ms (bound %llu ms)", t->name,
                 (unsigned long long)t->rtt_min_ms, (unsigned long long)p->book.rtt_bound_ms);
    }
}

/* Times are the agent's clock (CLOCK_BOOTTIME, cons_uv_clock_ms), which the core, failover and
 * switchover compare them with: the loop's clock stops while the machine is suspended, and after
 * a suspend every report would look old, or asked for before a leader began to lead. */
static void on_answer(void *data, int rv, int status, const char *body, size_t len,
                      const char *errmsg)
{
    struct peer_call *c = data;
    struct peers *p = c->owner;
    if (p->closing) {
        c->busy = false;
        return;
    }
    read_status(&c->status, rv, status, body, len, errmsg);
    struct peer_status next;
    bool again = peer_book_answer(&p->book, c, cons_uv_clock_ms(), &next);
    if (c->rtt_changed) {
        rtt_report(p, peer_book_get(&p->book, c->status.name));
    }
    if (again) {
        ask(p, &next, false);
    }
    if (p->round_cb != NULL) {
        p->round_cb(p, p->data);
    }
}

/* Asks one peer, unless it is being asked already (with again: once more at that answer). */
static void ask(struct peers *p, const struct peer_status *target, bool again)
{
    struct peer_call *c = peer_book_ask(&p->book, target, again, cons_uv_clock_ms());
    if (c == NULL) {
        return;
    }
    c->owner = p;
    char errmsg[RPG_ERRMSG_SIZE];
    int rv = http_client_request(&p->client, c->status.api, "GET", "/status", p->timeout_ms,
                                 on_answer, c, errmsg);
    if (rv != 0) {
        read_status(&c->status, rv, 0, NULL, 0, errmsg);
        struct peer_status next;
        peer_book_answer(&p->book, c, cons_uv_clock_ms(), &next);
    }
}

/* Asks every target; with again set, one being asked is asked again at its answer. Targets are
 * copied first: an answer's callback may replace them. */
static void ask_all(struct peers *p, bool again)
{
    struct peer_status t[PEERS_MAX];
    unsigned n = p->book.n_targets;
    memcpy(t, p->book.targets, n * sizeof t[0]);
    for (unsigned i = 0; i < n && !p->closing; i++) {
        ask(p, &t[i], again);
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct peers *p = t->data;
    if (!p->closing) {
        ask_all(p, false);
    }
}

void peers_poll_now(struct peers *p)
{
    if (p->closing) {
        return;
    }
    ask_all(p, true);
    uv_timer_start(&p->timer, timer_cb, p->interval_ms, p->interval_ms);
}

int peers_start(struct peers *p, uv_loop_t *loop, unsigned interval_ms, unsigned timeout_ms,
                char *errmsg)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->interval_ms = interval_ms;
    p->timeout_ms = timeout_ms;
    int rv = http_client_init(&p->client, loop, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = uv_timer_init(loop, &p->timer);
    if (rv != 0) {
        http_client_close(&p->client, NULL);
        return rpg_err(errmsg, RPG_EIO, "peer poll timer: %s", uv_strerror(rv));
    }
    p->timer.data = p;
    p->open = 2;
    uv_timer_start(&p->timer, timer_cb, 0, interval_ms);
    return 0;
}

const struct peer_status *peers_get(const struct peers *p, const char *name)
{
    return peer_book_get(&p->book, name);
}

static void one_closed(struct peers *p)
{
    if (--p->open > 0) {
        return;
    }
    void (*cb)(struct peers *) = p->close_cb;
    p->close_cb = NULL;
    if (cb != NULL) {
        cb(p);
    }
}

static void timer_closed(uv_handle_t *h)
{
    one_closed(h->data);
}

static void client_closed(struct http_client *c)
{
    one_closed((struct peers *)((char *)c - offsetof(struct peers, client)));
}

/* Requests in flight are dropped. */
void peers_close(struct peers *p, void (*cb)(struct peers *p))
{
    p->closing = true;
    p->close_cb = cb;
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    http_client_close(&p->client, client_closed);
}
