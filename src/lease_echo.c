#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "raftpg/agent.h"
#include "raftpg/lease_echo.h"
#include "raftpg/log.h"
#include "raftpg/loopwatch.h"

/* What a voter's proof covers: its id as the leader knows it, the probe, and its answer. */
static void answer_text(char *out, size_t size, uint64_t id, uint64_t leader, uint64_t term,
                        uint64_t seq, bool yes)
{
    snprintf(out, size,
             "lease-echo id=%" PRIu64 " leader=%" PRIu64 " term=%" PRIu64 " seq=%" PRIu64 " %s", id,
             leader, term, seq, yes ? "yes" : "no");
}

/* ---- the voter's side ---------------------------------------------------------------------- */

static void respond_json_error(struct http_conn *conn, int status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    http_respond(conn, status, NULL, body != NULL ? body : "{}", body != NULL ? strlen(body) : 2);
    free(body);
}

static void answer(struct agent *a, struct lease_echo_wait *w, bool yes)
{
    char text[200], proof[PROOF_HEX + 1];
    answer_text(text, sizeof text, a->cons.id, w->leader, w->term, w->seq, yes);
    proof_make(a->secret, a->conf.scope, w->nonce, text, strlen(text), proof);
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:s, s:s}", "id", (json_int_t)a->cons.id, "leader",
                          (json_int_t)w->leader, "term", (json_int_t)w->term, "seq",
                          (json_int_t)w->seq, "echo", yes ? "yes" : "no", "proof", proof);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body != NULL) {
        http_respond(w->conn, 200, NULL, body, strlen(body));
    } else {
        respond_json_error(w->conn, 500, "out of memory");
    }
    free(body);
    w->used = false;
    w->conn = NULL;
}

/* Whether w is decided now; answers it then. */
static bool settle(struct agent *a, struct lease_echo_wait *w)
{
    enum fence_echo e = a->cons_open ? cons_echo_answer(&a->cons, w->leader, w->term, w->arrived,
                                                        a->echo.timing.echo_wait_ms)
                                     : FENCE_ECHO_NO;
    if (e == FENCE_ECHO_WAIT) {
        return false;
    }
    answer(a, w, e == FENCE_ECHO_YES);
    return true;
}

/* A query parameter that is a positive decimal number below 2^63; false with why. */
static bool query_number(const char *query, const char *key, uint64_t *out, char *why, size_t size)
{
    size_t klen = strlen(key);
    const char *p = query;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || (*end != '\0' && *end != '&') || errno != 0 || n == 0 ||
                n > INT64_MAX) {
                snprintf(why, size, "%s must be a positive number", key);
                return false;
            }
            *out = n;
            return true;
        }
        p = strchr(p, '&');
        p = p != NULL ? p + 1 : NULL;
    }
    snprintf(why, size, "%s is missing", key);
    return false;
}

static bool query_nonce(const char *query, char out[PROOF_NONCE_HEX + 1], char *why, size_t size)
{
    const char *p = query;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, "nonce=", 6) == 0) {
            const char *v = p + 6;
            size_t n = strcspn(v, "&");
            if (n == PROOF_NONCE_HEX) {
                memcpy(out, v, n);
                out[n] = '\0';
                if (proof_nonce_valid(out)) {
                    return true;
                }
            }
            snprintf(why, size, "nonce must be %d lower-case hex digits", PROOF_NONCE_HEX);
            return false;
        }
        p = strchr(p, '&');
        p = p != NULL ? p + 1 : NULL;
    }
    snprintf(why, size, "nonce is missing");
    return false;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The probe's signature, by the cluster secret or during a rotation the previous one. */
static bool probe_signed(const struct agent *a, const struct http_request *req, char *why,
                         size_t size)
{
    uint8_t keys[2][CONF_SECRET_SIZE];
    memcpy(keys[0], a->secret, CONF_SECRET_SIZE);
    memcpy(keys[1], a->secret_previous, CONF_SECRET_SIZE);
    char path[2 * HTTP_PATH_MAX + 2], nonce[PROOF_NONCE_HEX + 1];
    snprintf(path, sizeof path, "%s%s%s", req->path, req->query[0] != '\0' ? "?" : "", req->query);
    bool ok = proof_check_request((const uint8_t(*)[CONF_SECRET_SIZE])keys,
                                  a->has_secret_previous ? 2 : 1, a->conf.scope, req->authorization,
                                  "GET", path, "", wall_ms(), nonce, why, size);
    sodium_memzero(keys, sizeof keys);
    return ok;
}

/* Takes the probe (leader, term, seq) when it is newer than the last taken from that leader:
 * a signed probe is good once. */
static bool probe_newer(struct lease_echo *e, const struct lease_echo_wait *w)
{
    unsigned slot = 0;
    for (unsigned i = 0; i < FSM_MEMBERS_MAX; i++) {
        if (e->taken[i].leader == w->leader) {
            if (w->term < e->taken[i].term ||
                (w->term == e->taken[i].term && w->seq <= e->taken[i].seq)) {
                return false;
            }
            slot = i;
            break;
        }
        slot = e->taken[i].term < e->taken[slot].term ? i : slot;
    }
    e->taken[slot].leader = w->leader;
    e->taken[slot].term = w->term;
    e->taken[slot].seq = w->seq;
    return true;
}

static void refuse(struct agent *a, struct http_conn *conn, const char *why)
{
    a->echo.n_refused++;
    char msg[320];
    snprintf(msg, sizeof msg,
             "lease echo refused: %s (a probe comes from the leader, signed under the cluster "
             "secret)",
             why);
    respond_json_error(conn, 401, msg);
}

void lease_echo_handle(struct agent *a, struct http_conn *conn, const struct http_request *req)
{
    if (req->method != HTTP_M_GET) {
        http_respond_header(conn, 405, NULL, "{\"error\":\"method not allowed (GET)\"}",
                            sizeof "{\"error\":\"method not allowed (GET)\"}" - 1, "Allow", "GET");
        return;
    }
    if (!a->has_secret) {
        respond_json_error(conn, 403,
                           "the lease echo needs the cluster secret (raft.secret_file): "
                           "without it the leader renews its lease with barriers alone");
        return;
    }
    char sig_why[160];
    if (!probe_signed(a, req, sig_why, sizeof sig_why)) {
        refuse(a, conn, sig_why);
        return;
    }
    struct lease_echo_wait w = {.used = true, .conn = conn};
    char why[96], msg[160];
    if (!query_number(req->query, "leader", &w.leader, why, sizeof why) ||
        !query_number(req->query, "term", &w.term, why, sizeof why) ||
        !query_number(req->query, "seq", &w.seq, why, sizeof why) ||
        !query_nonce(req->query, w.nonce, why, sizeof why)) {
        snprintf(msg, sizeof msg, "bad lease echo: %s (in the query of %s)", why, LEASE_ECHO_PATH);
        respond_json_error(conn, 400, msg);
        return;
    }
    if (!a->cons_open || !a->echo.timer_open) {
        respond_json_error(conn, 503, "raft is not running on this member");
        return;
    }
    if (!probe_newer(&a->echo, &w)) {
        refuse(a, conn, "not newer than a probe of that leader already taken (a replay)");
        return;
    }
    struct lease_echo_wait *slot = NULL;
    for (unsigned i = 0; i < LEASE_ECHO_WAITS && slot == NULL; i++) {
        slot = a->echo.waits[i].used ? NULL : &a->echo.waits[i];
    }
    if (slot == NULL) {
        respond_json_error(conn, 503, "too many lease echoes held at once");
        return;
    }
    w.arrived = cons_echo_clock(&a->cons);
    *slot = w;
    settle(a, slot);
}

/* ---- the leader's side --------------------------------------------------------------------- */

static void call_failed(struct agent *a, struct lease_echo_call *k, const char *why)
{
    a->echo.n_failed++;
    unsigned free_slot = FSM_MEMBERS_MAX;
    for (unsigned i = 0; i < FSM_MEMBERS_MAX; i++) {
        if (a->echo.failing[i] == k->id) {
            return;
        }
        free_slot = a->echo.failing[i] == 0 && free_slot == FSM_MEMBERS_MAX ? i : free_slot;
    }
    if (free_slot < FSM_MEMBERS_MAX) {
        a->echo.failing[free_slot] = k->id;
        const struct fsm_member *m = fsm_state_member_by_id(&a->cons.state, k->id);
        log_warning("lease echo from %s failed: %s (the lease barrier still renews the lease)",
                    m != NULL ? m->name : "a voter", why);
    }
}

/* The voter answered: a later failure is said again. */
static void call_answered(struct agent *a, const struct lease_echo_call *k)
{
    for (unsigned i = 0; i < FSM_MEMBERS_MAX; i++) {
        if (a->echo.failing[i] == k->id) {
            a->echo.failing[i] = 0;
        }
    }
}

static bool proof_ok(const struct agent *a, const struct lease_echo_call *k, const char *proof)
{
    char text[200];
    answer_text(text, sizeof text, k->id, a->cons.id, k->term, k->seq, true);
    return proof != NULL &&
           (proof_check(a->secret, a->conf.scope, k->nonce, text, strlen(text), proof) ||
            (a->has_secret_previous &&
             proof_check(a->secret_previous, a->conf.scope, k->nonce, text, strlen(text), proof)));
}

static void on_answer(void *data, int rc, int status, const char *body, size_t len,
                      const char *errmsg)
{
    struct lease_echo_call *k = data;
    struct agent *a = k->a;
    k->busy = false;
    if (a->phase != AGENT_PHASE_RUNNING || !a->cons_open) {
        return;
    }
    char why[RPG_ERRMSG_SIZE];
    if (rc != 0) {
        call_failed(a, k, errmsg);
        return;
    }
    json_error_t jerr;
    json_t *o = status == 200 ? json_loadb(body, len, 0, &jerr) : NULL;
    const char *echo = json_string_value(json_object_get(o, "echo"));
    if (echo == NULL) {
        snprintf(why, sizeof why, "http %d, no echo in the answer", status);
        call_failed(a, k, why);
    } else if (strcmp(echo, "yes") != 0) {
        a->echo.n_no++;
        call_answered(a, k);
    } else if (!proof_ok(a, k, json_string_value(json_object_get(o, "proof")))) {
        call_failed(a, k, "its proof does not verify under the cluster secret");
    } else {
        a->echo.n_yes++;
        call_answered(a, k);
        cons_echo_yes(&a->cons, k->id, k->seq);
    }
    json_decref(o);
}

static void send_probes(struct agent *a)
{
    uint64_t seq;
    raft_term term;
    if (!a->has_secret || !a->peers_open || !a->cons_open ||
        !cons_echo_begin(&a->cons, &seq, &term)) {
        return;
    }
    uint64_t ids[FSM_MEMBERS_MAX];
    unsigned n = cons_echo_targets(&a->cons, ids, FSM_MEMBERS_MAX);
    unsigned timeout = (unsigned)(a->echo.timing.echo_wait_ms + a->echo.timing.renew_ms);
    for (unsigned i = 0; i < n; i++) {
        const struct fsm_member *m = fsm_state_member_by_id(&a->cons.state, ids[i]);
        struct lease_echo_call *k = NULL;
        for (unsigned j = 0; j < LEASE_ECHO_CALLS && k == NULL; j++) {
            k = a->echo.calls[j].busy ? NULL : &a->echo.calls[j];
        }
        if (m == NULL || m->api_address[0] == '\0' || k == NULL) {
            continue;
        }
        k->busy = true;
        k->a = a;
        k->id = ids[i];
        k->term = term;
        k->seq = seq;
        proof_nonce(k->nonce);
        char path[HTTP_PATH_MAX], errmsg[RPG_ERRMSG_SIZE], auth[PROOF_AUTH_MAX];
        snprintf(path, sizeof path,
                 "%s?leader=%" PRIu64 "&term=%" PRIu64 "&seq=%" PRIu64 "&nonce=%s", LEASE_ECHO_PATH,
                 (uint64_t)a->cons.id, (uint64_t)term, seq, k->nonce);
        proof_sign_request(a->secret, a->conf.scope, "GET", path, "", wall_ms(), auth, sizeof auth);
        a->echo.n_sent++;
        if (http_client_request_auth(&a->peers.client, m->api_address, "GET", path, auth, timeout,
                                     on_answer, k, errmsg) != 0) {
            k->busy = false;
            call_failed(a, k, errmsg);
        }
    }
}

static void tick(struct agent *a)
{
    for (unsigned i = 0; i < LEASE_ECHO_WAITS; i++) {
        if (a->echo.waits[i].used) {
            settle(a, &a->echo.waits[i]);
        }
    }
    rpg_msec now = cons_uv_clock_ms();
    if (a->phase == AGENT_PHASE_RUNNING && now >= a->echo.next_probe) {
        a->echo.next_probe = now + a->echo.timing.renew_ms;
        send_probes(a);
    }
}

static void on_timer(uv_timer_t *t)
{
    LOOPWATCH_SPAN("lease echo", tick(t->data));
}

void lease_echo_start(struct agent *a)
{
    fence_timing_init(&a->echo.timing, a->conf.raft.election_timeout_ms);
    uv_timer_init(a->loop, &a->echo.timer);
    a->echo.timer.data = a;
    a->echo.timer_open = true;
    uv_timer_start(&a->echo.timer, on_timer, LEASE_ECHO_TICK_MS, LEASE_ECHO_TICK_MS);
}

bool lease_echo_close(struct agent *a, uv_close_cb cb)
{
    for (unsigned i = 0; i < LEASE_ECHO_WAITS; i++) {
        if (a->echo.waits[i].used) {
            answer(a, &a->echo.waits[i], false);
        }
    }
    if (!a->echo.timer_open || uv_is_closing((uv_handle_t *)&a->echo.timer)) {
        return a->echo.timer_open;
    }
    uv_close((uv_handle_t *)&a->echo.timer, cb);
    return true;
}
