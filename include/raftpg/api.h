/* The REST API: health endpoints, the cluster document, and membership changes. */
#ifndef RAFTPG_API_H
#define RAFTPG_API_H

#include "raftpg/http.h"

/* Endpoints and statuses the request counters tell apart (api_metrics.c). */
#define API_ENDPOINTS 34
#define API_STATUSES 18

/* http_handler_cb for the agent's server; data is the struct agent. */
void api_handle(struct http_conn *conn, const struct http_request *req, void *data);

/* Counts an answer by endpoint and status (http_server.answered). */
void api_answered(void *data, const struct http_request *req, int status);

/* Validates a member name: 1..63 characters of [A-Za-z0-9_.-]. */
int api_check_name(const char *name);

#endif
