/* The write VIP (DESIGN.md §8, rule 2, I3): claimed with `ip` after an ARP probe that no other
 * host answers, announced with gratuitous ARP, released at once on a fence. Every program runs by
 * argv through proc, bounded by a timeout; every operation is idempotent. It acts; ha decides.
 *
 * The commands, for the arping of Debian 12 (Thomas Habets' arping 2.23, whose -D does not do
 * duplicate address detection):
 *   probe     arping -r -0 -C 1 -c COUNT -W 0.200 -w DEADLINE -i IF ADDR
 *             sender 0.0.0.0 (RFC 5227 probe); exit 0 = a host answered, its MAC printed;
 *             exit 1 with no output = nobody answered; anything else = the probe failed
 *   lookup    ip -4 -o addr show dev IF to ADDR/32
 *   add       ip -4 addr add ADDR/PREFIX dev IF valid_lft L preferred_lft L
 *   renew     ip -4 addr change ADDR/PREFIX dev IF valid_lft L preferred_lft L
 *             L is the configured lifetime: the kernel deletes an address that nobody renews
 *             within L seconds (checked about once a second), so a VIP whose agent was killed
 *             does not outlive it by more than L + 1 s.
 *   announce  arping -q -U -S ADDR -c 1 -w 0.200 -i IF ADDR
 *             a broadcast ARP request with sender and target ADDR, which updates the caches of
 *             the hosts that have an entry for ADDR; exit 0 or 1 with no output = sent
 *   delete    ip -4 addr del ADDR/PREFIX dev IF
 * Programs run with LC_ALL=C so that their messages read the same everywhere. */
#ifndef RAFTPG_VIP_H
#define RAFTPG_VIP_H

#include <stdbool.h>

#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"
#include "raftpg/proc.h"

/* Bound on one ip run. */
#define VIP_IP_TIMEOUT_MS 5000
/* Time between two probe requests (arping -W). RFC 5227 asks for 1 to 2 s, which would cost a
 * failover seconds; on a LAN an answer takes well under a millisecond. */
#define VIP_PROBE_INTERVAL_MS 200
/* How long the probe waits for an answer after its last request, within arping's deadline. */
#define VIP_PROBE_WAIT_MS 1000
/* arping's deadline (-w) for one announcement: only the sending matters. */
#define VIP_ANNOUNCE_WAIT_MS 200
/* What an arping run may take beyond its own deadline before it counts as hung. */
#define VIP_ARPING_SLACK_MS 2000
/* How long a probe that nobody answered stands in for a claim's own probe (vip_probe). */
#define VIP_PROBE_FRESH_MS 3000
/* After a probe that someone answered or that failed, the next one waits this long. */
#define VIP_PROBE_RETRY_MS 200
/* Release deletes the address under every prefix it is found with, at most this many times. */
#define VIP_DELETE_ROUNDS_MAX 4

enum vip_op {
    VIP_OP_NONE = 0,
    VIP_OP_CLAIM,
    VIP_OP_RELEASE,
    VIP_OP_CHECK,
    VIP_OP_RENEW,
    VIP_OP_PROBE,
};

/* "none", "claim", "release", "check", "renew", "probe"; "unknown" for other values. */
const char *vip_op_name(enum vip_op op);

/* How often the holder renews the address: a quarter of its lifetime, so that three renewals in
 * a row may fail before it lapses. */
unsigned vip_renew_interval_ms(const struct conf_vip *conf);

struct vip;

/* Completion of an operation, always from the loop (never inside the call that started it):
 * rc 0 or a negative RPG_E* code; msg (borrowed, valid during the call) says what happened, as
 * one log line. Inside the callback vip_is_held() is up to date and a new operation may be
 * started; v must not be freed before vip_close's callback. */
typedef void (*vip_cb)(struct vip *v, int rc, const char *msg, void *data);

/* The fields are the module's, except timeout_ms, which the caller may set after vip_init. */
struct vip {
    uv_loop_t *loop;      /* borrowed */
    struct conf_vip conf; /* copied */
    /* When non-zero, the bound on every program in place of the defaults above (tests). */
    unsigned timeout_ms;

    bool held;                  /* the address is on the interface with its prefix, as last seen */
    char holder_mac[18];        /* who answered the last refused probe; "" if unknown */
    unsigned announce_failures; /* failed announcement rounds since vip_init */

    /* One operation at a time, plus a release waiting for it to stop. */
    enum vip_op op;
    int step;
    vip_cb cb;
    void *data;
    bool release_pending;
    vip_cb release_cb;
    void *release_data;
    unsigned announced;   /* claim: rounds sent */
    uint64_t round_start; /* claim: loop time the current round started */
    bool already_held;    /* claim: the address was there before the claim added it */
    bool skip_probe;      /* claim: a fresh probe that nobody answered stands in for its own */
    bool early_probe;     /* claim: ... or it took over a running vip_probe */
    bool probe_stale;     /* the running vip_probe was forgotten: it ends without a result */
    bool probe_clean;     /* the last probe ended with no answer ... */
    uint64_t probe_ended; /* ... at this loop time (0: no probe yet) */
    bool deleted;         /* release: some deletion succeeded */
    unsigned delete_rounds;
    char target[CONF_CIDR_MAX]; /* release: what the running deletion removes */
    char found[CONF_CIDR_MAX];  /* last lookup: the address as found, "" if absent */
    char step_error[RPG_ERRMSG_SIZE];

    struct proc proc;
    uv_timer_t timer; /* announcement spacing, and deferred steps */
    bool closing;
    bool timer_closed;
    void (*close_cb)(struct vip *v);
};

/* Prepares v on loop with a copy of conf (the section of a config with has_vip). Runs nothing.
 * Returns 0, or RPG_EINVAL (bad conf) or RPG_EIO (timer) with errmsg. */
int vip_init(struct vip *v, uv_loop_t *loop, const struct conf_vip *conf, char *errmsg);

/* Claims the VIP: probe, lookup, add when absent, then announce_repeats gratuitous ARP rounds
 * spaced announce_interval ms apart (start to start). cb fires once, after the last round: rc 0
 * when every step succeeded (the address was already there is fine); RPG_EEXIST when another
 * host answered the probe (nothing was changed; holder_mac names it when arping printed it) or
 * the address is on the interface with another prefix; RPG_ETIMEDOUT or RPG_EIO when a program
 * timed out or failed, the message naming the step and quoting the program's output (when an
 * announcement fails, the address stays on the interface: vip_is_held() says so). A release
 * requested meanwhile cancels the claim at once: cb fires with RPG_EBUSY, then the release runs.
 * Returns 0, or RPG_EBUSY with errmsg when another operation runs or a release waits. */
int vip_claim(struct vip *v, vip_cb cb, void *data, char *errmsg);

/* Probes only, as a claim would, changing nothing on the interface: before PostgreSQL promotes,
 * so that the claim that follows the promotion can add the address at once. rc 0 when nobody
 * answered, RPG_EEXIST when a host did (holder_mac), RPG_ETIMEDOUT or RPG_EIO when arping
 * failed. A claim asked for while the probe runs takes it over (its cb fires, the probe's does
 * not) and goes on to the lookup and the add only when nobody answered; a claim asked for
 * within VIP_PROBE_FRESH_MS after a probe nobody answered skips its own probe, once. A release
 * kills the probe (cb gets RPG_EBUSY). Returns 0, or RPG_EBUSY with errmsg when another
 * operation runs or a release waits. */
int vip_probe(struct vip *v, vip_cb cb, void *data, char *errmsg);

/* Whether a vip_probe is worth starting now: nothing runs, and no probe nobody answered is
 * fresh enough for a claim to use; after an answered or failed probe, VIP_PROBE_RETRY_MS later. */
bool vip_probe_due(const struct vip *v);

/* Whether the operation that runs is a vip_probe (which a claim may take over). */
bool vip_probing(const struct vip *v);

/* Forgets a probe nobody answered: what it showed holds only while this node stays the leader
 * with its lease that asked for it. A running vip_probe is killed and ends with RPG_EBUSY; no
 * claim takes it over meanwhile. */
void vip_probe_forget(struct vip *v);

/* Releases the VIP: deletes the address, then looks again and deletes it under any other prefix
 * it is still found with, so that a fence leaves nothing behind. rc 0 when the address is gone
 * (or was never there). Accepted while a claim or check runs: a claim is cancelled (its probe or
 * announcement killed, a running ip waited for), a check completes first; the release then
 * runs. Returns 0, or RPG_EBUSY with errmsg when a release already runs or waits. */
int vip_release(struct vip *v, vip_cb cb, void *data, char *errmsg);

/* Looks whether the address is on the interface with its prefix: rc 0 when ip answered, and
 * vip_is_held() tells. Returns 0, or RPG_EBUSY with errmsg when another operation runs. */
int vip_check(struct vip *v, vip_cb cb, void *data, char *errmsg);

/* Renews the address's lifetime when it is on the interface with its prefix (a lookup first: a
 * renewal never adds an address that is gone, which only a claim, with its probe, may do). rc 0
 * when ip answered; vip_is_held() then tells whether it was there and renewed. A release asked
 * for meanwhile cancels the renewal at its next step (cb gets RPG_EBUSY). Returns 0, or
 * RPG_EBUSY with errmsg when another operation runs or a release waits. */
int vip_renew(struct vip *v, vip_cb cb, void *data, char *errmsg);

/* Whether the address was on the interface with its prefix when last seen or changed. */
bool vip_is_held(const struct vip *v);

/* Whether an operation runs or a release waits. */
bool vip_busy(const struct vip *v);

/* Stops: kills a running program, fires the callbacks of unfinished operations with RPG_EBUSY,
 * closes the handles, then calls cb (may be NULL). The address is left as it is: release it
 * first when the node must not hold it. */
void vip_close(struct vip *v, void (*cb)(struct vip *v));

#endif
