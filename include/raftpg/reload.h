/* Reloading this agent's configuration file (POST /reload, `raftpg ctl reload`, Patroni's
 * reload): what may change while the agent runs is applied; the rest is named as needing a
 * restart of the agent and left as it was. */
#ifndef RAFTPG_RELOAD_H
#define RAFTPG_RELOAD_H

#include <stddef.h>

#include "raftpg/conf.h"

/* Keys a reload applies: tags (known and user tags), log.level, postgresql.callbacks and
 * postgresql.callback_timeout. */

/* Moves the keys a reload applies from next into cur (next keeps the old ones, so conf_free
 * frees each once) and lists them, comma-separated, in applied; lists in restart the other keys
 * whose value differs (cur keeps those). Both lists are "" when nothing differs. Pure. */
void reload_apply(struct conf *cur, struct conf *next, char *applied, size_t applied_size,
                  char *restart, size_t restart_size);

struct agent;
struct http_conn;

/* Re-reads a->conf.path and applies it (reload_apply), logging what it did. Returns 0 with the
 * two lists, or RPG_ECONFIG with the file's error in errmsg (nothing changes then). Also run on
 * SIGHUP, as Patroni does. */
int reload_run(struct agent *a, char *applied, size_t applied_size, char *restart,
               size_t restart_size, char *errmsg);

/* POST /reload: re-reads a->conf.path and answers conn: 200 {"applied", "restart_needed"}, or
 * 400 with the file's error (nothing changes then). */
void reload_request(struct agent *a, struct http_conn *conn);

#endif
