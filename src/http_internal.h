/* Shared between the HTTP server and client (src/http_*.c); not part of the public API. */
#ifndef RAFTPG_HTTP_INTERNAL_H
#define RAFTPG_HTTP_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>

/* Parses "a.b.c.d:port" into sa. Returns 0 or -1. */
int http_parse_ipv4_port(const char *addr, struct sockaddr_in *sa, bool allow_port0);

#endif
