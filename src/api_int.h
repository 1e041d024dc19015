/* api's private header: what its six files share and nothing outside api uses. api.c holds the
 * route table, the dispatch and the health endpoints; api_view.c the JSON documents (status,
 * patroni, cluster, member); api_action.c the operator actions (restart, switchover, failover,
 * member add and remove); api_config.c the dynamic configuration (/config); api_auth.c who may
 * change something; api_metrics.c /metrics and the request counters. */
#ifndef RAFTPG_API_INT_H
#define RAFTPG_API_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raftpg/agent.h"
#include "raftpg/api.h"
#include "raftpg/health.h"
#include "raftpg/log.h"

/* ---- answers (api.c) ---- */

/* Answers o as JSON and releases it; NULL (a failed json_pack) answers 500. */
void api_respond_json(struct http_conn *conn, int status, json_t *o);

/* Answers {"error": msg}. */
void api_respond_error(struct http_conn *conn, int status, const char *msg);

/* ---- views (api_view.c) ---- */

/* What a member's PostgreSQL looks like from here: its own report, or this agent's view. */
struct api_pg_view {
    bool known;
    enum ha_pg_state state;
    bool in_recovery;
    bool streaming;
    uint32_t timeline;
    uint64_t wal_position;
    uint64_t replay_position;
    const char *address;
    const char *detail;
    char rejoin[96]; /* "stage" or "clone 1024/4096 kB" while a rejoin runs, else "" */
};

/* Fills v for member name; false when it runs no PostgreSQL or none is known of it. */
bool api_pg_view_of(const struct agent *a, const char *name, struct api_pg_view *v);

/* How the recorded synchronous set counts this member's running standby (Patroni's roles). */
enum health_standby api_own_standby_kind(const struct agent *a);

/* Patroni's "scheduled_switchover" of GET /cluster; NULL when none is scheduled. */
json_t *api_scheduled_switchover_json(const struct fsm_state *s);

/* ---- operator actions (api_action.c) ---- */

/* True on the ready Raft leader; otherwise false after answering 503 with the leader's name. */
bool api_require_leader(struct agent *a, struct http_conn *conn);

void api_restart_request(struct agent *a, struct http_conn *conn, const struct http_request *req);
void api_restart_cancel(struct agent *a, struct http_conn *conn);
void api_switchover_request(struct agent *a, struct http_conn *conn,
                            const struct http_request *req);
void api_switchover_cancel(struct agent *a, struct http_conn *conn);
void api_failover_request(struct agent *a, struct http_conn *conn, const struct http_request *req);
void api_member_add(struct agent *a, struct http_conn *conn, const struct http_request *req);
void api_member_remove(struct agent *a, struct http_conn *conn, const char *name);

/* ---- dynamic configuration (api_config.c) ---- */

/* The cluster-wide settings in force: the replicated ones, or this member's file defaults until
 * the first leader has recorded them. */
void api_config_in_force(const struct agent *a, int *mode, unsigned *k, int *commit,
                         bool *recorded);

/* GET /config's document. */
json_t *api_config_json(const struct agent *a);

/* PATCH /config (put false) or PUT /config (put true). */
void api_config_change(struct agent *a, struct http_conn *conn, const struct http_request *req,
                       bool put);

/* ---- authorization (api_auth.c) ---- */

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t api_wall_ms(void);

/* Where a change may come from (restapi.allowlist, restapi.verify_client): false after
 * answering 403. */
bool api_change_permitted(struct agent *a, struct http_conn *conn, const struct http_request *req);

/* Whether a change carries the cluster secret's signature or restapi.authentication's
 * credentials, when either is configured: false after answering 401. */
bool api_signed_request(struct agent *a, struct http_conn *conn, const struct http_request *req);

/* ---- metrics (api_metrics.c) ---- */

/* GET /metrics: the Prometheus text format. */
void api_respond_metrics(struct agent *a, struct http_conn *conn);

#endif
