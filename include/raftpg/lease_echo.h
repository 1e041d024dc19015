/* The lease echo over the API (fence.h fence_echo_decide, README.md "Fencing"): the leader asks
 * every other voter about every ET/4, GET /raftpg/lease-echo?leader=&term=&seq=&nonce=; a voter
 * holds the request until its Raft state says yes or no (at most ET/2) and answers with a proof
 * under the cluster secret over its id, the probe and the leader's nonce, so that no one without
 * the secret can extend a lease. The probe itself is signed as a change is (proof.h
 * proof_sign_request: "Authorization: Raftpg-MAC ..."), and each leader's probes must go forward
 * ((term, seq) above the last one taken): a stranger, or a replay, is refused with 401 before it
 * holds one of the LEASE_ECHO_WAITS slots. Without a cluster secret there is no echo: barriers
 * alone. */
#ifndef RAFTPG_LEASE_ECHO_H
#define RAFTPG_LEASE_ECHO_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "raftpg/err.h"
#include "raftpg/fence.h"
#include "raftpg/fsm_state.h"
#include "raftpg/http.h"
#include "raftpg/proof.h"

#define LEASE_ECHO_PATH "/raftpg/lease-echo"
#define LEASE_ECHO_WAITS 32 /* probes a voter holds at once; more are refused with 503 */
#define LEASE_ECHO_CALLS 32 /* probes a leader has in flight; more wait for the next round */
#define LEASE_ECHO_TICK_MS 10

struct agent;

struct lease_echo_wait {
    bool used;
    struct http_conn *conn;
    uint64_t leader, term, seq;
    rpg_msec arrived; /* Raft clock (cons_echo_clock) */
    char nonce[PROOF_NONCE_HEX + 1];
};

struct lease_echo_call {
    bool busy;
    struct agent *a;
    uint64_t id, term, seq; /* the voter asked and the probe */
    char nonce[PROOF_NONCE_HEX + 1];
};

struct lease_echo {
    uv_timer_t timer;
    bool timer_open;
    struct fence_timing timing;
    rpg_msec next_probe; /* node clock */
    struct lease_echo_wait waits[LEASE_ECHO_WAITS];
    struct lease_echo_call calls[LEASE_ECHO_CALLS];
    /* Leader side: probes sent to a voter, answered yes (with a valid proof), answered no,
     * failed (no answer, an error status, or a proof that does not verify). */
    uint64_t n_sent, n_yes, n_no, n_failed;
    /* Voter side: the last probe taken from each leader (its id, term and seq), so that a
     * signed probe is taken once; with more leaders than entries, the oldest term goes. */
    struct {
        uint64_t leader, term, seq;
    } taken[FSM_MEMBERS_MAX];
    uint64_t n_refused; /* probes refused: unsigned, a wrong proof, or not newer */
    /* Voters whose last answer failed: said once per voter and episode. */
    uint64_t failing[FSM_MEMBERS_MAX];
};

/* Starts the timer that sends probes when this member leads and answers the ones it holds. */
void lease_echo_start(struct agent *a);

/* Answers every held probe (no) and closes the timer; cb fires once it is closed (at once when
 * it was never opened: cb is then not called, and false is returned). */
bool lease_echo_close(struct agent *a, uv_close_cb cb);

/* The API handler of LEASE_ECHO_PATH. */
void lease_echo_handle(struct agent *a, struct http_conn *conn, const struct http_request *req);

#endif
