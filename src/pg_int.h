/* pg's private header: what its eight files share and nothing outside pg uses. pg.c holds what
 * the control operations run on (their end, their programs, control SQL, stale lock files) and
 * the lifecycle; pg_op.c the operations' steps and the calls that begin them; pg_rejoin.c the
 * rejoin pipeline (its stages, the rewind's steps, moving a directory aside); pg_boot.c the
 * bootstrap's own steps (a custom method, post_bootstrap, undoing a failed one); pg_observe.c
 * the observer (its connection, the queries, the control file); pg_postmaster.c the process
 * table (a data directory's postmaster, signalling a server); pg_conf.c writes the
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

/* ---- the control operations (pg.c, pg_op.c) ---- */

/* Runs the current operation's next step with the outcome of the last one (pg_op.c). */
void pg_op_step(struct pg *p, int rc, const char *msg);
/* Ends the current operation with rc (msg says why when non-zero) and calls its callback. */
void pg_op_finish(struct pg *p, int rc, const char *msg);
/* Starts argv (environment env, or LC_ALL=C) as the operation's program: its exit runs
 * pg_op_step. 0, or non-zero with the reason in p->op_error. */
int pg_run_env(struct pg *p, char *const argv[], char *const env[], unsigned timeout_ms);
int pg_run(struct pg *p, char *const argv[], unsigned timeout_ms);
/* postgresql.bin_dir/prog into buf. */
void pg_bin_path(const struct pg *p, const char *prog, char *buf, size_t size);
/* Queues a control statement (takes ownership of sql); its outcome runs pg_op_step. */
void pg_control_sql(struct pg *p, char *sql);
/* Removes postmaster.pid and the socket's lock file when they name a process that is no server
 * of the data directory, and none works in it. */
void pg_drop_stale_locks(struct pg *p);
/* pg_ctl start, as the operation's program. */
int pg_ctl_start(struct pg *p);
/* The statements creating the replication role, and the slots (with the role when missing). */
char *pg_roles_sql(const struct pg *p);
void pg_ensure_role_sql(const struct pg *p, char **buf, size_t *len, size_t *cap);
char *pg_slots_sql(const struct pg *p);
/* pg_ctl reload, as the operation's program. */
int pg_reload(struct pg *p, char *errmsg);

/* ---- the rejoin pipeline (pg_rejoin.c) ---- */

void pg_rejoin_begin(struct pg *p);
/* The attempt ended at its current stage with msg. */
void pg_rejoin_failed(struct pg *p, const char *msg);
int pg_move_aside(struct pg *p, char *errmsg);
int pg_remove_data_dir(struct pg *p);
int pg_run_controldata(struct pg *p);
/* One step of the rewind: 1 when a program started, 0 when done, or a negative code. */
int pg_rewind_step(struct pg *p, char *errmsg);

/* ---- the bootstrap (pg_boot.c) ---- */

/* The steps of a bootstrap; a step that starts something returns, and its completion runs the
 * next. The BOOT_FAIL_* steps undo a bootstrap that must not become the cluster. */
enum boot_step {
    BOOT_CREATE = 0, /* initdb, or the custom method's command */
    BOOT_CONFIGURE,  /* configuration files, the control file's parameters */
    BOOT_START,      /* start as primary */
    BOOT_ROLES,      /* the replication role */
    BOOT_POST,       /* bootstrap.post_bootstrap, when given */
    BOOT_DONE,
    BOOT_FAIL_STOPPED, /* the server is stopped (or was not running) */
    BOOT_FAIL_CLEARED, /* an older failed directory is removed */
};

bool pg_boot_all_or_nothing(const struct pg *p);
void pg_boot_marker_path(const struct pg *p, char *buf, size_t size);
void pg_boot_marker_drop(const struct pg *p);
/* Undoes a failed bootstrap (why: what failed), from stopping the server on. */
void pg_boot_fail(struct pg *p, const char *why);
void pg_boot_fail_step(struct pg *p, int step);
int pg_boot_run_command(struct pg *p, char *errmsg);
int pg_boot_run_post(struct pg *p, char *errmsg);

#endif
