/* The REST API: health endpoints, the cluster document, and membership changes. */
#ifndef RAFTPG_API_H
#define RAFTPG_API_H

#include "raftpg/http.h"

/* Endpoints and statuses the request counters tell apart (api_metrics.c); the endpoints are the
 * route table's (api_endpoint_of), which must name no more than this. */
#define API_ENDPOINTS 34
#define API_STATUSES 18

/* http_handler_cb for the agent's server; data is the struct agent. */
void api_handle(struct http_conn *conn, const struct http_request *req, void *data);

/* Counts an answer by endpoint and status (http_server.answered). */
void api_answered(void *data, const struct http_request *req, int status);

/* The endpoint a request's path counts under, from the route table: the row that answers it,
 * by its path (a health check's by the path asked, /members/NAME as /members); API_ENDPOINTS for
 * the catch-all row (any other path). */
unsigned api_endpoint_of(const char *path);

/* Endpoint e's name as the counters show it: a path, or "other" for API_ENDPOINTS. */
const char *api_endpoint_name(unsigned e);

/* How many endpoints the route table names; more than API_ENDPOINTS would count as "other". */
unsigned api_endpoints_named(void);

/* Validates a member name: 1..63 characters of [A-Za-z0-9_.-]. */
int api_check_name(const char *name);

#endif
