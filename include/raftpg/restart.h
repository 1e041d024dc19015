/* Restart a member's PostgreSQL (POST /restart, raftpg ctl restart), as Patroni's: a fast stop,
 * after which the agent starts it again in the role it has (the primary as primary, a standby as
 * a standby), answering once it accepts connections. Conditions in the request (Patroni's
 * "role" and "restart_pending") are checked against the server itself first. */
#ifndef RAFTPG_RESTART_H
#define RAFTPG_RESTART_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "raftpg/restart_check.h"
#include "raftpg/schedule.h"

#define RESTART_STOP_MS 10000 /* fast, then immediate */
#define RESTART_WAIT_MS 60000 /* until it accepts connections again */

#define RESTART_BUSY_MS 5000 /* an operation under way (a reload of the synchronous set) ends */

enum restart_phase { RESTART_IDLE = 0, RESTART_WAITING, RESTART_STOPPING, RESTART_STARTING };

struct restart {
    enum restart_phase phase;
    struct http_conn *conn; /* answered when it runs again, NULL once answered */
    uint64_t started_ms;
    uint64_t epoch; /* the pg epoch after the stop: a later observation counts */
    uv_timer_t timer;
    bool timer_open;
    char last[256];
    uint64_t timeout_ms; /* POST /restart "timeout" (0: RESTART_WAIT_MS, no hand-over) */
    uint64_t stopped_ms; /* when the stop ended: the timeout counts from there */
    bool was_primary;    /* the server ran as primary when the restart began */
    /* Until then, this primary's server did not start within the timeout: the agent's
     * decisions stop it and hand the primary over to a standby (struct ha_pg start_timed_out) */
    uint64_t handover_until;
    struct restart_schedule sched; /* its scheduled restart (at_ms 0: none), schedule.h */
};

struct agent;
struct http_conn;

/* role: NULL, "primary" or "replica"; pending: only if a setting waits for a restart;
 * below_version: only if the server's version number is below it (0: any). conn NULL: a
 * scheduled restart, whose outcome is logged and kept in last. */
void restart_start(struct agent *a, struct http_conn *conn, const char *role, bool pending,
                   int below_version);

/* timeout_s > 0: Patroni's restart timeout. A primary whose server does not accept connections
 * within it after the stop is stopped and handed over to a standby, when one may take over; the
 * request gets 503 then. Set before restart_start, for that request only. */
void restart_set_timeout(struct agent *a, unsigned timeout_s);

/* True while a primary's restart timed out and no server of it runs yet (see handover_until). */
bool restart_start_timed_out(const struct agent *a);

/* How long a timed-out primary keeps asking for a hand-over. */
#define RESTART_HANDOVER_MS 60000

/* The scheduled restart as Patroni shows it ({"schedule", "role", "restart_pending",
 * "postgres_version"}, the conditions when given), or NULL when none is scheduled. */
json_t *restart_schedule_json(const struct restart_schedule *s);

/* True while it waits for an operation to end and while the stop runs: the agent's decisions
 * wait (they start the server again after). */
bool restart_holds(const struct agent *a);

/* Answers any pending request and closes the timer (shutdown). */
void restart_close(struct agent *a, void (*cb)(uv_handle_t *h));

#endif
