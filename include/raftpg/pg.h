/* The local PostgreSQL: observed without blocking (async libpq on the loop, the data directory's
 * postmaster.pid and pg_controldata) and controlled through pg_ctl, initdb, pg_basebackup and
 * pg_rewind run by proc. It observes and acts; it never decides (that is ha's job). */
#ifndef RAFTPG_PG_H
#define RAFTPG_PG_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "raftpg/conf.h"
#include "raftpg/err.h"
#include "raftpg/ha.h"
#include "raftpg/proc.h"
#include "raftpg/timing.h"

/* The bound on one connection attempt or query (the observer looks every
 * TIMING_PG_OBSERVE_INTERVAL_MS). */
#define PG_QUERY_TIMEOUT_MS 2000
/* A promotion asked for and still not observed done after this may be asked for again. */
#define PG_PROMOTE_BOUND_MS 10000
/* While a promotion is asked for and not yet observed done: its end is news that clients wait
 * for (the on_role_change callback points them at the new primary). */
#define PG_PROMOTE_POLL_MS 20

/* Where a standby streams from: a member's name and its PostgreSQL address. */
struct pg_upstream {
    char name[FSM_NAME_MAX];
    char address[FSM_ADDR_MAX]; /* host:port */
    uint64_t slot_id;           /* this member's id: its slot on the upstream; 0: no slot */
};

/* One standby as the primary sees it in pg_stat_replication. */
struct pg_replica {
    char name[FSM_NAME_MAX]; /* application_name = member name */
    char state[16];          /* streaming, catchup, ... */
    char sync_state[16];     /* async, sync, quorum, potential */
    uint64_t flush_position;
    uint64_t replay_position;
};

struct pg;
/* Completion of a control operation: rc 0 or a negative code, msg explains failures. */
typedef void (*pg_done_cb)(struct pg *p, int rc, const char *msg, void *data);

enum pg_op {
    PG_OP_NONE = 0,
    PG_OP_BOOTSTRAP,
    PG_OP_START,
    PG_OP_STOP,
    PG_OP_PROMOTE,
    PG_OP_CLONE,
    PG_OP_REWIND,
    PG_OP_REINIT,
    PG_OP_FOLLOW,
    PG_OP_SYNC_SLOTS,
    PG_OP_CHECKPOINT,
    PG_OP_SET_SYNC,
    PG_OP_SET_PARAMS,
};
const char *pg_op_name(enum pg_op op);

/* The rejoin pipeline (DESIGN.md §8), in the order a rejoin runs: a rewind goes CHECK,
 * CRASH_RECOVER (only after an unclean shutdown), CHECKPOINT_SOURCE, REWIND, VERIFY_TIMELINE,
 * START_STANDBY, STREAMING; a clone (the last resort, or a member without a data directory) goes
 * REMOVE or MOVE_ASIDE (only a re-clone), CLONE, START_STANDBY, STREAMING. */
enum pg_rejoin_stage {
    PG_REJOIN_NONE = 0,          /* no rejoin since the last plain start, stop or promotion */
    PG_REJOIN_CHECK,             /* pg_controldata: shut down cleanly? can pg_rewind work on it? */
    PG_REJOIN_CRASH_RECOVER,     /* postgres --single replays an unclean shutdown's WAL */
    PG_REJOIN_CHECKPOINT_SOURCE, /* the source checkpointed its timeline (else CHECKPOINT there) */
    PG_REJOIN_REWIND,            /* pg_rewind from the source */
    PG_REJOIN_VERIFY_TIMELINE,   /* pg_controldata: the directory is on the source's timeline */
    PG_REJOIN_REMOVE,            /* the data directory is removed (the configuration allows it) */
    PG_REJOIN_MOVE_ASIDE,        /* the data directory is moved aside, with the reason */
    PG_REJOIN_CLONE,             /* pg_basebackup from the source */
    PG_REJOIN_START_STANDBY,     /* started as a standby, not streaming yet */
    PG_REJOIN_STREAMING,         /* streaming from the source: the rejoin is done */
};
const char *pg_rejoin_stage_name(enum pg_rejoin_stage stage);

/* Where the rejoin is, for the API and the log. */
struct pg_rejoin {
    enum pg_rejoin_stage stage;
    bool running;                /* under way; false once streaming, or after a failed stage */
    rpg_msec started;            /* loop time the rejoin began */
    rpg_msec since;              /* loop time the stage began */
    char error[RPG_ERRMSG_SIZE]; /* the failure that ended the last attempt, "" if none */
    /* A clone's progress from pg_basebackup --progress (kB as it reports them); total 0: not
     * known yet. */
    uint64_t done_kb;
    uint64_t total_kb;
    uint32_t source_timeline; /* the source's timeline, read at CHECKPOINT_SOURCE */
    uint32_t target_timeline; /* the directory's timeline, read at CHECK */
    bool checkpoint_asked;    /* CHECKPOINT_SOURCE ran CHECKPOINT on the source */
    bool no_rewind_needed;    /* pg_rewind found the target not past the fork point */
};

struct pg {
    uv_loop_t *loop;         /* borrowed */
    const struct conf *conf; /* borrowed */
    const char *member;      /* borrowed: this member's name */

    /* What the observer last saw, in the decision function's terms, plus details. */
    struct ha_pg obs;
    bool obs_valid; /* one full observation completed */
    /* Every control operation's end starts a new epoch; obs_epoch is the epoch in which the
     * current observation began. Decisions wait until the two agree, so they never act on
     * what PostgreSQL looked like before the last operation. */
    uint64_t epoch;
    uint64_t obs_epoch;
    uint64_t query_epoch;
    unsigned n_replicas;
    struct pg_replica replicas[FSM_MEMBERS_MAX];
    char state_detail[RPG_ERRMSG_SIZE]; /* why it is not running, the last failure, ... */
    /* For the API only (Patroni's status document), from the last observation. */
    int server_version;        /* server_version_num */
    char start_time[48];       /* pg_postmaster_start_time() */
    bool pending_restart;      /* a changed setting waits for a restart */
    bool replay_paused;        /* standby: pg_is_wal_replay_paused() */
    char replay_timestamp[48]; /* standby: pg_last_xact_replay_timestamp(), "" none */
    /* Stopped: the control file's latest checkpoint and whether a primary shut down cleanly
     * there (its WAL ends with that checkpoint's record). */
    uint64_t checkpoint_lsn;
    bool clean_shutdown;
    /* The running server's start time and the highest timeline it reported in that run. */
    char run_started[48];
    /* Its settings as pg_settings lists them (pg_setting_check's format; owned, NULL until
     * read), read once per run: settings_run is the run they were read in. */
    char *settings;
    char settings_run[48];
    uint32_t run_timeline;
    int postmaster_pid;           /* 0 when none */
    rpg_msec not_streaming_since; /* loop time a running standby stopped streaming, 0: it is */

    /* Observer: one libpq connection, polled on the loop. */
    uv_timer_t tick;
    uv_timer_t deadline;
    /* Called after each observation of a running server (optional). */
    void (*observed_cb)(struct pg *p, void *data);
    void *observed_data;
    uv_poll_t *poll; /* the connection's socket watch, NULL: none (heap: see pg.c) */
    PGconn *conn;
    int conn_fd;
    int conn_phase;    /* internal */
    char *pending_sql; /* a control statement waiting for the connection (owned) */
    void (*pending_cb)(struct pg *p, int rc, const char *msg);
    uv_timer_t sql_timer;   /* bounds how long a control statement waits for a connection */
    int busy_kind;          /* internal: what the busy connection runs */
    bool controldata_valid; /* cached pg_controldata of the stopped data directory */
    struct proc controldata;
    bool controldata_running;
    bool reinit_remove; /* the running reinit deletes the directory (operator's ctl reinit) */
    bool controldata_reported; /* its current error was logged once */
    bool promote_pending;      /* promotion asked for, not yet observed done (or failed) */
    rpg_msec promote_asked_at; /* when pg_ctl promote returned */
    rpg_msec receiver_since;   /* ha_pg_track_receiver's bookkeeping */
    rpg_msec unwritable_since; /* ha_pg_track_unwritable's bookkeeping */
    /* The postmaster last seen serving as a primary (0: none, or the agent stops it): should it
     * be gone or replaced at the next observation, the server crashed. */
    int primary_pid;
    int primary_checkpointer;      /* and its checkpointer's PID (0: unknown) */
    struct ha_crash_log crash_log; /* crashes and failed starts, for obs.crashes */
    uint32_t promote_timeline;     /* the id the promotion in flight must create, 0: any */

    /* Control: one operation at a time. */
    enum pg_op op;
    int step;
    struct proc proc;
    bool rewind_retryable;    /* the last pg_rewind failed before changing the target */
    rpg_msec rewind_retry_at; /* loop time before which no rewind starts again (back-off) */
    rpg_msec past_fork_since; /* since when the standby has been seen past a fork (0: not) */
    bool proc_launches;       /* proc is pg_ctl start: killing it would orphan a server */
    pg_done_cb done_cb;
    void *done_data;
    struct pg_upstream upstream;
    bool standby;
    unsigned stop_bound_ms;
    char op_error[RPG_ERRMSG_SIZE];
    char boot_error[RPG_ERRMSG_SIZE];   /* why a bootstrap is being undone (bootstrap_fail) */
    char rejoin_error[RPG_ERRMSG_SIZE]; /* why the data directory must be cloned again */
    struct pg_rejoin rejoin;
    /* The synchronous settings raftpg.conf gets (every start, follow and set_sync). */
    char sync_names[1024]; /* synchronous_standby_names to write; "" = asynchronous */
    char sync_commit[16];  /* synchronous_commit to write; "" = PostgreSQL's default */
    char sync_seen[1024];  /* the server's current synchronous_standby_names (observed) */
    /* The dynamic parameters raftpg.conf gets (every start, follow and set_params). */
    struct fsm_param params[FSM_PARAMS_MAX];
    unsigned n_params;
    char hba[FSM_HBA_MAX][FSM_HBA_LINE_MAX]; /* and pg_hba lines (none: the member's own) */
    unsigned n_hba;
    bool params_failed; /* their last write or reload failed: pg_params_stale says so */
    uint64_t n_reloads; /* pg_ctl reload runs that succeeded (on_reload follows them) */
    uint64_t slot_ids[FSM_MEMBERS_MAX]; /* SYNC_SLOTS: the wanted slots */
    unsigned n_slot_ids;

    int n_open;
    bool closing;
    void (*close_cb)(struct pg *p);
};

/* Starts observing. conf and member are borrowed and must outlive p. */
int pg_init(struct pg *p, uv_loop_t *loop, const struct conf *conf, const char *member,
            char *errmsg);

/* Stops observing, waits for a running program (it is killed) and closes every handle; cb fires
 * when done. It does not stop PostgreSQL (pg_stop does). */
void pg_close(struct pg *p, void (*cb)(struct pg *p));

/* The agent itself stops the server (its fence): its end is no crash. */
void pg_crash_forget(struct pg *p);

/* True while a control operation runs. */
bool pg_busy(const struct pg *p);

/* Cuts the running operation short where that is safe: a program that only copies or prepares
 * files (pg_basebackup, pg_rewind, initdb) gets SIGTERM and the callback fires with an error. A
 * start or a stop is left to finish, since killing pg_ctl would leave its server unaccounted for.
 */
void pg_cancel(struct pg *p);

/* Control operations. Each returns RPG_EBUSY when another runs, else 0 and calls cb once. */
/* initdb (data checksums), write the configuration, start as primary, create the roles. */
int pg_bootstrap(struct pg *p, pg_done_cb cb, void *data);
/* Writes the configuration and starts; as a standby of up (NULL: no upstream yet) or as a
 * primary (standby false: standby.signal removed). Completes once pg_ctl has started it. */
int pg_start(struct pg *p, bool standby, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* Stops PostgreSQL: fast within bound_ms, then immediate. */
int pg_stop(struct pg *p, unsigned bound_ms, pg_done_cb cb, void *data);
/* Asks a standby to promote (pg_ctl promote, no wait); the observer sees it finish. timeline
 * (0: any) is the id the promotion must create: PostgreSQL takes the first id after its own
 * timeline that has no history file, so the ids in between that this server does not know get a
 * reservation (a history file of comments only, never a valid parent; removed at the next start).
 */
int pg_promote(struct pg *p, uint32_t timeline, pg_done_cb cb, void *data);

/* The reservation's first line; pg_reserve_timelines writes it, starts remove such files. */
#define PG_RESERVED_TIMELINE_MARK "# raftpg: timeline id reserved"

/* Before a promotion from timeline current to target: every id in between without a history
 * file in DATA_DIR/pg_wal gets one, since PostgreSQL creates the first id after its own that has
 * none. The file holds comments only: as a history it names no parent, so a standby that rescans
 * for a newer timeline finds it "not a child" and ignores it, and the new timeline's history,
 * written from current's, never lists it. Returns 0 or RPG_EIO with errmsg. */
int pg_reserve_timelines(const char *data_dir, uint32_t current, uint32_t target, char *errmsg);

/* Removes reservations (and only them): left over, a start with recovery_target_timeline
 * 'latest' would take one for the newest timeline and refuse to start ("not a child"). */
void pg_drop_reservations(const char *data_dir);
/* pg_basebackup from up into an absent data directory, then start as its standby. */
int pg_clone(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* Removes the data directory, then pg_clone. */
int pg_reinit(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* The operator's reinit (ctl reinit): removes the stopped data directory whatever the keys say,
 * then pg_clone. */
int pg_reinit_remove(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* pg_rewind a stopped data directory from up, then start as its standby. */
int pg_rewind(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* Re-points a running standby at up: rewrites the configuration and reloads (no restart). */
int pg_follow(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data);
/* On the primary: creates the slots "raftpg_<id>" for ids and drops other inactive raftpg_
 * slots. */
int pg_sync_slots(struct pg *p, const uint64_t *ids, unsigned n, pg_done_cb cb, void *data);

/* Sends sig to the postmaster postmaster_pid and to each of its children (the backends, the
 * walsenders, the auxiliary processes), found in /proc: the fence's soft layer stops them all
 * (SIGSTOP) and resumes them (SIGCONT). The postmaster comes first, so that with SIGSTOP it forks
 * no child the scan could miss. Returns how many processes were signalled. */
int pg_signal_server(int postmaster_pid, int sig);

/* The postmaster's PID read from postmaster.pid now, if that process is alive; else 0. */
int pg_postmaster_pid(const struct pg *p);

/* Reads DATA_DIR/postmaster.pid: the pid when that process runs (not a zombie), else 0; status
 * (may be NULL with size 0) gets its state line ("ready", "starting", ...). */
int pg_postmaster_pid_in(const char *data_dir, char *status, size_t size);

/* Whether the local server might accept writes right now: a postmaster is alive and it is not
 * known to be a standby (observed in recovery, or started with standby.signal and not observed
 * since). Errs on the side of true, as fencing depends on it. */
bool pg_may_accept_writes(const struct pg *p);

/* Whether pid is a child of a server (a backend, a walsender: titled "postgres: ..."), which the
 * fence finds as a server of its own once a killed postmaster left it behind. For the log. */
bool pg_is_orphan_child(int pid);

/* Sets synchronous_standby_names (and synchronous_commit) in raftpg.conf and reloads; a running
 * server applies it at once, a later start reads it. names is PostgreSQL's syntax, "" for none. */
int pg_set_sync(struct pg *p, const char *names, const char *commit, pg_done_cb cb, void *data);

/* Sets the dynamic parameters (fsm_state config.params, copied) in raftpg.conf and the dynamic
 * pg_hba lines (config.hba, copied) in pg_hba.conf, unless the member's own postgresql.pg_hba
 * writes that file: on a running server, rewrites them and reloads (a parameter of context
 * postmaster then shows as pending_restart in pg_settings); else the next start writes them. */
int pg_set_params(struct pg *p, const struct fsm_param *ps, unsigned n,
                  const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba, pg_done_cb cb, void *data);
/* Sets the dynamic parameters the next configuration write carries (a start, a follow), without
 * writing anything now: for an operation about to write it anyway. */
void pg_params_store(struct pg *p, const struct fsm_param *ps, unsigned n,
                     const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba);
/* Whether the dynamic parameters raftpg.conf should hold differ from ps, or their last write
 * failed. */
bool pg_params_stale(const struct pg *p, const struct fsm_param *ps, unsigned n,
                     const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba);

/* CHECKPOINT on the running server (after a promotion, so pg_rewind sees the new timeline). */
int pg_checkpoint(struct pg *p, pg_done_cb cb, void *data);

/* Quotes s as a libpq conninfo value ('...' with \ and ' escaped) into buf; false if too long. */
bool pg_conninfo_quote(const char *s, char *buf, size_t size);
/* Quotes s as a postgresql.conf string ('...' with ' doubled, \ escaped); false if too long. */
bool pg_conf_quote(const char *s, char *buf, size_t size);
/* Escapes s as one field of a libpq password file (':' and '\' preceded by '\') into buf; false
 * if too long or if s holds a line break, which no password file line can carry. */
bool pg_passfile_escape(const char *s, char *buf, size_t size);

/* Why the dynamic configuration may not set a parameter (raftpg writes it, or its agent, fence
 * or streaming depends on it; compared without case); NULL when it may. */
const char *pg_param_owned(const char *name);
/* Whether a parameter must be the same on every member (Patroni's list): its dynamic value wins
 * over a member's postgresql.parameters. For any other, the member's file wins. */
bool pg_param_cluster_wide(const char *name);
/* Checks name = value against settings, a server's pg_settings as the observer reads it (one
 * line per setting, by name: name, context, vartype, unit, min_val and max_val, each "-" when
 * null, then the enum values joined by '|'). Returns 1 when the server knows name and value reads
 * as its type does (a boolean, an integer or real number with a unit of the setting's kind within
 * the setting's range, one of the enum values), with the context ("postmaster", "sighup", ...) in
 * context; 0 when it has no such setting; RPG_EINVAL with why when the value does not read or is
 * out of range; -1 when settings is NULL. */
int pg_setting_check(const char *settings, const char *name, const char *value, char *context,
                     size_t context_size, char *why, size_t why_size);
/* The block of raftpg.conf that holds the dynamic parameters, from PG_PARAMS_BEGIN to
 * PG_PARAMS_END: "name = 'value'" for each, or a comment for one the member's own
 * postgresql.parameters set (they win, unless the parameter is cluster-wide). false if buf is
 * too small (PG_PARAMS_BLOCK_MAX always holds it). */
#define PG_PARAMS_BEGIN "# raftpg dynamic parameters\n"
#define PG_PARAMS_END "# end of raftpg dynamic parameters\n"
#define PG_PARAMS_BLOCK_MAX                                                                        \
    (FSM_PARAMS_MAX * (FSM_PARAM_NAME_MAX * 2 + FSM_PARAM_VALUE_MAX * 2 + 64) + 128)
bool pg_params_block(const struct conf *c, const struct fsm_param *ps, unsigned n, char *buf,
                     size_t size);

/* Whether a failed pg_controldata's output says the control file is missing or short: a copy cut
 * short, which cloning again repairs. Any other error (permission denied, an I/O error) is not
 * understood as that and must never lead to the directory's removal. */
bool pg_controldata_cut_short(const char *output);

/* Whether a failed pg_rewind's output shows it stopped before changing the target (source not
 * reachable or not ready yet, leftovers of the killed server in the way): a later attempt may
 * succeed, so it is no reason to re-clone. */
bool pg_rewind_retryable(const char *output);

/* How long to wait before the next rewind after `retries` in a row stopped that way: 1 s,
 * doubling, at most 30 s. */
rpg_msec pg_rewind_retry_delay(unsigned retries);

/* Whether pg_controldata's output says the server was shut down cleanly ("shut down" or "shut
 * down in recovery"), which pg_rewind requires; anything else needs crash recovery first. */
bool pg_controldata_clean(const char *output);

/* Whether pg_controldata's output shows what pg_rewind needs: data checksums or wal_log_hints. */
bool pg_controldata_rewindable(const char *output);

/* The restore_command the server's configuration gives (postgresql.recovery_conf.restore_command,
 * else postgresql.parameters.restore_command), "" if none:
 * with one, pg_rewind fetches WAL the target no longer has through it (--restore-target-wal). */
const char *pg_restore_command(const struct conf *c);

/* Fills argv (room for at least 8 entries) with the pg_rewind command line: bin, then
 * --restore-target-wal when the configuration has a restore_command, --progress, -D data_dir and
 * the --source-server argument source (all borrowed). Returns the number of arguments; argv ends
 * with NULL. */
unsigned pg_rewind_args(const struct conf *c, const char *bin, const char *source, char **argv);

/* From a successful pg_rewind --progress output, its "need to copy N MB (total source directory
 * size is M MB)" line: true with both figures in MB, false without that line (nothing to rewind,
 * or a tail cut short). PostgreSQL 15 copies every WAL segment in the source's pg_wal in full,
 * whatever the divergence point, so N has a floor of that directory's size. */
bool pg_rewind_copy_size(const char *output, uint64_t *copy_mb, uint64_t *total_mb);

/* Parses the last progress report in pg_basebackup --progress output ("12345/67890 kB (18%), 0/1
 * tablespace"): true with done and total in kB, false if there is none yet. */
bool pg_basebackup_progress(const char *output, uint64_t *done_kb, uint64_t *total_kb);

/* From pg_controldata output: the latest checkpoint's location (as a byte position) and whether
 * the cluster state is "shut down" (a primary's clean shutdown). 0 or RPG_EPROTO. */
int pg_parse_checkpoint(const char *text, uint64_t *lsn, bool *shut_down);

/* From a timeline history file's text (PostgreSQL's pg_wal/TTTTTTTT.history: "parent switchpoint
 * reason" a line): where timeline `timeline` ended, the switchpoint of its line. 0 and *lsn
 * set when the file names it, -1 when not. */
int pg_history_switchpoint(const char *text, uint32_t timeline, uint64_t *lsn);

/* Parses pg_controldata output: system identifier, timeline, whether it last ran as primary.
 * Returns 0 or RPG_EPROTO when a field is missing. */
int pg_parse_controldata(const char *text, uint64_t *system_id, uint32_t *timeline,
                         bool *was_primary, char *errmsg);

#endif
