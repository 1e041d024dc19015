/* What a PostgreSQL server is doing, as its agent observed it: the local observer's view (ha.h
 * struct ha_pg) and a peer's report (peer_status.h) share this type; the name is what the API
 * says and the peers' reports carry. Types only. */
#ifndef RAFTPG_PG_STATE_H
#define RAFTPG_PG_STATE_H

enum ha_pg_state {
    HA_PG_UNKNOWN = 0, /* not observed yet */
    HA_PG_ABSENT,      /* no data directory (or an empty one) */
    HA_PG_STOPPED,     /* a data directory, no postmaster */
    HA_PG_STARTING,    /* postmaster up, not accepting connections yet */
    HA_PG_RUNNING,     /* accepts connections */
};

/* "unknown", "absent", "stopped", "starting", "running" (src/ha.c). */
const char *ha_pg_state_name(enum ha_pg_state s);

/* The state a name stands for; HA_PG_UNKNOWN for NULL or a word it is not (a newer agent's). */
enum ha_pg_state ha_pg_state_parse(const char *name);

#endif
