/* pg's private header: what its four files share and nothing outside pg uses. pg.c runs the
 * control operations, the rejoin pipeline and the lifecycle; pg_observe.c the observer (its
 * connection, the queries, the control file and the process table); pg_conf.c writes the
 * configuration (raftpg.conf, signal files, the upstream) with its small file helpers;
 * pg_text.c quotes and parses, purely. */
#ifndef RAFTPG_PG_INT_H
#define RAFTPG_PG_INT_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "raftpg/fence.h"
#include "raftpg/log.h"
#include "raftpg/loopwatch.h"
#include "raftpg/pg.h"

/* Observer connection phases. */
enum { CONN_NONE = 0, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };
/* What the busy connection is running. */
enum { QUERY_OBSERVE = 1, QUERY_CONTROL };

#define START_TIMEOUT_S 300
#define CLONE_TIMEOUT_MS (3600u * 1000u)
#define REWIND_TIMEOUT_MS (1800u * 1000u)
#define CONTROL_SQL_WAIT_MS 60000
#define CONF_FILE "raftpg.conf"
#define UPSTREAM_MARK "# raftpg upstream: "
/* Stands for the replication password in control SQL until it is sent: the statement then
 * carries the SCRAM verifier made here, so the server (and its log) never sees the password. */
#define PASSWORD_MARK "\x01raftpg-password\x01"

void pg_path_in(const struct pg *p, const char *file, char *buf, size_t size);
bool pg_file_exists(const char *path);
extern char pg_storage_error[HA_WHY_MAX];
int pg_write_file(const char *path, const char *text, mode_t mode, char *errmsg);
void pg_log_reason(const struct pg *p, char *buf, size_t size);
int pg_mkdir_parent(const char *path, char *errmsg);
bool pg_param_given(const struct pg *p, const char *key);
int pg_conninfo_for(const struct pg *p, const struct pg_upstream *up, bool replication, char *buf,
                    size_t size, char *errmsg);
/* Patroni's post_bootstrap argument: postgresql://SUPERUSER@HOST:PORT/postgres for this member's
 * server (no password in it); passfile gets the password file that holds the superuser's
 * password ("" when none is configured). */
int pg_superuser_url(const struct pg *p, char *url, size_t size, char *passfile, size_t psize,
                     char *errmsg);
void pg_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pg_socket_dir(const struct pg *p, char *buf, size_t size);
int pg_write_sync_settings(struct pg *p, char *errmsg);
int pg_write_params(struct pg *p, char *errmsg);
int pg_write_config(struct pg *p, bool standby, const struct pg_upstream *up, char *errmsg);
void pg_read_upstream(struct pg *p);
void pg_handle_closed(uv_handle_t *h);
void pg_conn_drop(struct pg *p, const char *why);
bool pg_is_postgres(long pid);
long pg_parent_of(long pid);
int pg_pid_working_in(const char *data_dir);
void pg_rewind_retry_left(struct pg *p);
void pg_observe(struct pg *p);
void pg_on_tick(uv_timer_t *t);
void pg_rejoin_set_stage(struct pg *p, enum pg_rejoin_stage stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
