/* pg: the control operations, the rejoin pipeline and the lifecycle (pg.h, pg_int.h). Over 900
 * lines because op_step's switch still holds every multi-step operation's steps; a table of
 * named plans is what takes them apart. */
#include "pg_int.h"

#include "raftpg/callback.h"

const char *pg_op_name(enum pg_op op)
{
    switch (op) {
    case PG_OP_NONE: return "none";
    case PG_OP_BOOTSTRAP: return "bootstrap";
    case PG_OP_START: return "start";
    case PG_OP_STOP: return "stop";
    case PG_OP_PROMOTE: return "promote";
    case PG_OP_CLONE: return "clone";
    case PG_OP_REWIND: return "rewind";
    case PG_OP_REINIT: return "reinit";
    case PG_OP_FOLLOW: return "follow";
    case PG_OP_SYNC_SLOTS: return "sync_slots";
    case PG_OP_CHECKPOINT: return "checkpoint";
    case PG_OP_SET_SYNC: return "set_sync";
    case PG_OP_SET_PARAMS: return "set_params";
    }
    return "unknown";
}

const char *pg_rejoin_stage_name(enum pg_rejoin_stage stage)
{
    switch (stage) {
    case PG_REJOIN_NONE: return "none";
    case PG_REJOIN_CHECK: return "check";
    case PG_REJOIN_CRASH_RECOVER: return "crash-recover";
    case PG_REJOIN_CHECKPOINT_SOURCE: return "checkpoint-source";
    case PG_REJOIN_REWIND: return "rewind";
    case PG_REJOIN_VERIFY_TIMELINE: return "verify-timeline";
    case PG_REJOIN_REMOVE: return "remove";
    case PG_REJOIN_MOVE_ASIDE: return "move-aside";
    case PG_REJOIN_CLONE: return "clone";
    case PG_REJOIN_START_STANDBY: return "start-standby";
    case PG_REJOIN_STREAMING: return "streaming";
    }
    return "unknown";
}

/* ---- control operations ---------------------------------------------------------------------- */

static void op_step(struct pg *p, int rc, const char *msg);

/* ---- the rejoin pipeline's bookkeeping (pg.h enum pg_rejoin_stage) --------------------------- */

static void rejoin_begin(struct pg *p)
{
    memset(&p->rejoin, 0, sizeof p->rejoin);
    p->rejoin.started = uv_now(p->loop);
    p->rejoin.since = p->rejoin.started;
    p->rejoin.running = true;
}

/* Enters stage and logs it with why (what the stage does here). */
void pg_rejoin_set_stage(struct pg *p, enum pg_rejoin_stage stage, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rpg_msec now = uv_now(p->loop);
    p->rejoin.stage = stage;
    p->rejoin.since = now;
    p->rejoin.running = stage != PG_REJOIN_STREAMING;
    log_info("rejoin: %s (%s; %llu ms since the rejoin began)", pg_rejoin_stage_name(stage), why,
             (unsigned long long)(now - p->rejoin.started));
}

/* The attempt ended at its current stage with msg. */
static void rejoin_failed(struct pg *p, const char *msg)
{
    if (!p->rejoin.running) {
        return;
    }
    p->rejoin.running = false;
    rpg_fmt(p->rejoin.error, sizeof p->rejoin.error, "%s", msg);
    log_warning("rejoin: %s failed after %llu ms: %s", pg_rejoin_stage_name(p->rejoin.stage),
                (unsigned long long)(uv_now(p->loop) - p->rejoin.since), msg);
}

static void op_finish(struct pg *p, int rc, const char *msg)
{
    p->reinit_remove = false;
    enum pg_op op = p->op;
    p->op = PG_OP_NONE;
    if (op == PG_OP_PROMOTE) {
        /* pg_ctl promote -W returns before the server is out of recovery. */
        p->promote_pending = rc == 0;
        p->promote_asked_at = uv_now(p->loop);
        p->obs.promoting = p->promote_pending;
        if (p->promote_pending) {
            uv_timer_start(&p->tick, pg_on_tick, PG_PROMOTE_POLL_MS, TIMING_PG_OBSERVE_INTERVAL_MS);
        }
    }
    if (op == PG_OP_FOLLOW || op == PG_OP_START) {
        /* The detach bound counts from the re-point. */
        p->receiver_since = 0;
    }
    p->controldata_valid = false;
    p->epoch++;
    pg_done_cb cb = p->done_cb;
    p->done_cb = NULL;
    if (op == PG_OP_SET_PARAMS) {
        p->params_failed = rc != 0;
    }
    if (rc != 0) {
        log_debug("%s failed: %s", pg_op_name(op), msg);
        if (op == PG_OP_REWIND && p->rewind_retryable) {
            p->obs.rewind_retries++;
            rpg_msec delay = pg_rewind_retry_delay(p->obs.rewind_retries);
            p->rewind_retry_at = uv_now(p->loop) + delay;
            pg_rewind_retry_left(p);
            log_warning("rejoin: stopped at %s before changing %s (%u time%s in a row): trying "
                        "again in %llu ms",
                        pg_rejoin_stage_name(p->rejoin.stage), p->conf->postgresql.data_dir,
                        p->obs.rewind_retries, p->obs.rewind_retries == 1 ? "" : "s",
                        (unsigned long long)delay);
        } else if (op == PG_OP_REWIND) {
            /* The directory cannot be brought onto the primary's timeline: a re-clone is left. */
            p->obs.rewind_failed = true;
            p->obs.rewind_retries = 0;
            p->rewind_retry_at = 0;
            pg_rewind_retry_left(p);
        }
        if (op == PG_OP_REWIND && msg != NULL) {
            rpg_fmt(p->rejoin_error, sizeof p->rejoin_error, "%s failed: %s",
                    p->rejoin.stage == PG_REJOIN_REWIND ? "pg_rewind"
                                                        : pg_rejoin_stage_name(p->rejoin.stage),
                    msg);
        }
        rejoin_failed(p, msg != NULL ? msg : "");
    }
    if (cb != NULL) {
        cb(p, rc, msg != NULL ? msg : "", p->done_data);
    }
}

static void proc_step(struct proc *pr, const struct proc_result *res, void *data)
{
    struct pg *p = data;
    if (p->closing) {
        op_finish(p, RPG_EIO, "agent stopping");
        return;
    }
    if (proc_ok(res)) {
        op_step(p, 0, NULL);
        return;
    }
    char why[RPG_ERRMSG_SIZE];
    proc_describe(pr, res, why, sizeof why);
    if (p->op == PG_OP_REWIND) {
        /* Before pg_rewind runs nothing in the directory changed (crash recovery only replays
         * what a start would replay), so only pg_rewind's own output can rule a retry out. */
        enum pg_rejoin_stage st = p->rejoin.stage;
        p->rewind_retryable =
            st == PG_REJOIN_NONE || st == PG_REJOIN_CHECK || st == PG_REJOIN_CHECKPOINT_SOURCE ||
            (!res->timed_out && pg_rewind_retryable(res->output != NULL ? res->output : ""));
    }
    if (p->rejoin.running && res->output[0] != '\0') {
        /* The last line rarely says why (pg_rewind's crash recovery, say): all of it, once. */
        log_warning("%s failed; its whole output follows (stage %s, %s)%s", pg_op_name(p->op),
                    pg_rejoin_stage_name(p->rejoin.stage), pr->name,
                    pr->output_wrapped ? " (only its last part was kept)" : "");
        const char *line = res->output;
        while (*line != '\0') {
            size_t n = strcspn(line, "\n");
            if (n > 0) {
                log_warning("  %s: %.*s", pr->name, (int)n, line);
            }
            line += n + (line[n] == '\n');
        }
    }
    op_step(p, res->timed_out ? RPG_ETIMEDOUT : RPG_EIO, why);
}

static void on_proc(struct proc *pr, const struct proc_result *res, void *data)
{
    LOOPWATCH_SPAN("postgresql program exit", proc_step(pr, res, data));
}

static int run_env(struct pg *p, char *const argv[], char *const env[], unsigned timeout_ms)
{
    char errmsg[RPG_ERRMSG_SIZE];
    p->proc_launches = false;
    int rv = proc_run(&p->proc, p->loop, argv, env, timeout_ms, on_proc, p, errmsg);
    if (rv != 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", errmsg);
    }
    return rv;
}

static int run(struct pg *p, char *const argv[], unsigned timeout_ms)
{
    char *env[] = {"LC_ALL=C", NULL};
    return run_env(p, argv, env, timeout_ms);
}

static void bin_path(const struct pg *p, const char *prog, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s/%s", p->conf->postgresql.bin_dir, prog);
}

static void on_control_sql(struct pg *p, int rc, const char *msg)
{
    uv_timer_stop(&p->sql_timer);
    op_step(p, rc, msg);
}

static void on_sql_wait(uv_timer_t *t)
{
    struct pg *p = t->data;
    if (p->pending_sql != NULL) {
        free(p->pending_sql);
        p->pending_sql = NULL;
        p->pending_cb = NULL;
        op_step(p, RPG_ETIMEDOUT, "postgresql did not accept connections in time");
    }
}

/* Queues a control statement for the observer's connection; it runs once PostgreSQL accepts
 * connections, or fails after CONTROL_SQL_WAIT_MS. Takes ownership of sql. */
static void control_sql(struct pg *p, char *sql)
{
    if (sql == NULL) {
        op_step(p, RPG_ENOMEM, "out of memory");
        return;
    }
    free(p->pending_sql);
    p->pending_sql = sql;
    p->pending_cb = on_control_sql;
    uv_timer_start(&p->sql_timer, on_sql_wait, CONTROL_SQL_WAIT_MS, 0);
    pg_observe(p);
}

/* A postmaster killed while its parent does not reap it (a container whose init never calls
 * wait) stays a zombie, and PostgreSQL takes the zombie's pid in its lock files for a live
 * server. A zombie runs nothing, so such a lock is stale; PostgreSQL still checks on its own
 * that no backend remains attached to the old shared memory. */
/* A lock file (postmaster.pid, the socket's .lock) naming a process that still exists but is
 * no server of data_dir: a killed postmaster nobody has reaped yet (a zombie answers
 * kill(pid, 0)), or its number taken by another program. PostgreSQL, and pg_rewind's
 * single-user recovery, refuse to start beside it; so it is removed, but only while no
 * PostgreSQL process at all works in the directory. A process that is gone is PostgreSQL's own
 * business: it replaces such a file itself. */
static void drop_stale_lock(const char *path, const char *data_dir)
{
    char buf[32], proc[64];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    long pid = strtol(buf, NULL, 10);
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    if (pid <= 0 || pid > INT32_MAX || !pg_file_exists(proc) || pg_pid_working_in(data_dir) != 0) {
        return;
    }
    const char *what = pg_parent_of(pid) == 0 ? "has exited and is not reaped yet"
                       : !pg_is_postgres(pid) ? "is another program now"
                                              : "is a server of another directory";
    if (unlink(path) == 0) {
        log_info("removed stale %s: process %ld %s", path, pid, what);
    } else if (errno != ENOENT) {
        log_warning("cannot remove stale %s: %s", path, strerror(errno));
    }
}

static void drop_stale_locks(struct pg *p)
{
    char path[PATH_MAX + 32];
    pg_path_in(p, "postmaster.pid", path, sizeof path);
    drop_stale_lock(path, p->conf->postgresql.data_dir);
    /* The socket lock stays beside the data directory even when that directory is gone. */
    uint16_t port = 0;
    if (!pg_param_given(p, "unix_socket_directories") &&
        conf_parse_addr(p->conf->postgresql.listen, NULL, &port) == 0) {
        char parent[PATH_MAX];
        pg_socket_dir(p, parent, sizeof parent);
        rpg_fmt(path, sizeof path, "%s/.s.PGSQL.%u.lock", parent, (unsigned)port);
        drop_stale_lock(path, p->conf->postgresql.data_dir);
    }
}

static bool is_reservation(const char *path)
{
    char head[64] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = '\0';
    return strncmp(head, PG_RESERVED_TIMELINE_MARK, strlen(PG_RESERVED_TIMELINE_MARK)) == 0;
}

int pg_reserve_timelines(const char *data_dir, uint32_t current, uint32_t target, char *errmsg)
{
    if (current == 0 || target <= current + 1) {
        return 0;
    }
    for (uint32_t tli = current + 1; tli < target; tli++) {
        char path[PATH_MAX + 64];
        rpg_fmt(path, sizeof path, "%s/pg_wal/%08X.history", data_dir, (unsigned)tli);
        if (pg_file_exists(path)) {
            continue;
        }
        char text[256];
        rpg_fmt(text, sizeof text,
                "%s: a primary that was lost may have created timeline %u, so it is never "
                "created again\n",
                PG_RESERVED_TIMELINE_MARK, (unsigned)tli);
        int rv = pg_write_file(path, text, 0600, errmsg);
        if (rv != 0) {
            return rv;
        }
        log_info("promote: timeline %u reserved (recorded before; this server never saw it)",
                 (unsigned)tli);
    }
    return 0;
}

void pg_drop_reservations(const char *data_dir)
{
    char dir[PATH_MAX + 16];
    rpg_fmt(dir, sizeof dir, "%s/pg_wal", data_dir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n != 16 || strcmp(e->d_name + 8, ".history") != 0) {
            continue;
        }
        char path[PATH_MAX + 64];
        rpg_fmt(path, sizeof path, "%s/%s", dir, e->d_name);
        if (is_reservation(path)) {
            unlink(path);
        }
    }
    closedir(d);
}

static int pg_ctl_start(struct pg *p)
{
    drop_stale_locks(p);
    pg_drop_reservations(p->conf->postgresql.data_dir);
    char bin[PATH_MAX + 32], logf[PATH_MAX + 8], t[16];
    bin_path(p, "pg_ctl", bin, sizeof bin);
    rpg_fmt(logf, sizeof logf, "%s.log", p->conf->postgresql.data_dir);
    rpg_fmt(t, sizeof t, "%d", START_TIMEOUT_S);
    char *argv[] = {bin,  "start", "-D", (char *)p->conf->postgresql.data_dir,
                    "-l", logf,    "-w", "-t",
                    t,    "-s",    NULL};
    int rv = run(p, argv, (START_TIMEOUT_S + 10) * 1000u);
    p->proc_launches = rv == 0;
    return rv;
}

static char *roles_sql(const struct pg *p)
{
    const struct conf *c = p->conf;
    if (strcmp(c->postgresql.replication_name, c->postgresql.superuser_name) == 0) {
        return strdup("SELECT 1");
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    pg_append(&buf, &len, &cap, "CREATE ROLE \"");
    for (const char *s = c->postgresql.replication_name; *s; s++) {
        pg_append(&buf, &len, &cap, *s == '"' ? "\"\"" : "%c", *s);
    }
    pg_append(&buf, &len, &cap, "\" WITH REPLICATION LOGIN");
    if (c->postgresql.replication_password[0] != '\0') {
        pg_append(&buf, &len, &cap, " PASSWORD '%s'", PASSWORD_MARK);
    }
    return buf;
}

/* The replication role, created when missing: a bootstrap whose first start as primary failed
 * never reached its roles step, and its directory may become the primary later by another way
 * (started read-only, then promoted); standbys would then fail to clone for good. Run with the
 * slots, which every primary sets before it serves standbys. "" when nothing is needed (the
 * superuser replicates) or the statement cannot be quoted safely. */
static void ensure_role_sql(const struct pg *p, char **buf, size_t *len, size_t *cap)
{
    const struct conf *c = p->conf;
    if (strcmp(c->postgresql.replication_name, c->postgresql.superuser_name) == 0) {
        return;
    }
    char *create = roles_sql(p);
    if (create == NULL || strstr(create, "$raftpg$") != NULL) {
        free(create);
        return;
    }
    pg_append(buf, len, cap,
              "DO $raftpg$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '");
    for (const char *s = c->postgresql.replication_name; *s; s++) {
        pg_append(buf, len, cap, *s == '\'' ? "''" : "%c", *s);
    }
    pg_append(buf, len, cap, "') THEN %s; END IF; END $raftpg$;", create);
    free(create);
}

static char *slots_sql(const struct pg *p)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char name[FSM_NAME_MAX];
    ensure_role_sql(p, &buf, &len, &cap);
    pg_append(&buf, &len, &cap,
              "SELECT pg_drop_replication_slot(slot_name) FROM "
              "pg_replication_slots WHERE slot_name LIKE 'raftpg\\_%%' AND NOT "
              "active AND slot_name NOT IN (''");
    for (unsigned i = 0; i < p->n_slot_ids; i++) {
        ha_slot_name(p->slot_ids[i], name, sizeof name);
        pg_append(&buf, &len, &cap, ", '%s'", name);
    }
    pg_append(&buf, &len, &cap, ");");
    for (unsigned i = 0; i < p->n_slot_ids; i++) {
        ha_slot_name(p->slot_ids[i], name, sizeof name);
        pg_append(&buf, &len, &cap,
                  " SELECT pg_create_physical_replication_slot('%s') WHERE NOT EXISTS (SELECT 1 "
                  "FROM pg_replication_slots WHERE slot_name = '%s');",
                  name, name);
    }
    return buf;
}

/* Moves the data directory aside (DATA_DIR.aside, with DATA_DIR.aside.reason saying why) so that
 * it can be cloned again without losing anything: only once, as a second one would need the
 * operator to look at the first. Refused while a postmaster runs in it. */
static int move_aside(struct pg *p, char *errmsg)
{
    const char *dir = p->conf->postgresql.data_dir;
    char aside[PATH_MAX + 16], reason_path[PATH_MAX + 32], text[2 * RPG_ERRMSG_SIZE + 256];
    rpg_fmt(aside, sizeof aside, "%s.aside", dir);
    rpg_fmt(reason_path, sizeof reason_path, "%s.aside.reason", dir);
    int running = pg_postmaster_pid(p);
    if (running != 0) {
        return rpg_err(errmsg, RPG_EBUSY,
                       "not moving data directory %s aside: a postmaster runs in it (pid=%d)", dir,
                       running);
    }
    struct stat st;
    if (lstat(aside, &st) == 0) {
        /* What to do first: an error message is cut at RPG_ERRMSG_SIZE, and paths are long. */
        return rpg_err(errmsg, RPG_EEXIST,
                       "must clone again, but a data directory moved aside earlier is still "
                       "there: look at it and remove it (and its .reason file), or set "
                       "postgresql.remove_data_directory_on_rewind_failure: %s",
                       aside);
    }
    time_t now = time(NULL);
    struct tm tm;
    char when[64] = "";
    if (gmtime_r(&now, &tm) != NULL) {
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    rpg_fmt(text, sizeof text,
            "moved aside by raftpg at %s before cloning from %s again\nreason: %s\n", when,
            p->upstream.name[0] ? p->upstream.name : "the primary",
            p->rejoin_error[0] ? p->rejoin_error : "its data directory could not be used");
    int rv = pg_write_file(reason_path, text, 0600, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (rename(dir, aside) != 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot move data directory %s aside to %s: %s", dir, aside,
                       strerror(errno));
    }
    log_warning("reinit: data directory %s moved aside to %s (reason in %s)", dir, aside,
                reason_path);
    return 0;
}

/* Removes the data directory with rm, after checking it is one (or is empty). */
static int remove_data_dir(struct pg *p)
{
    const char *dir = p->conf->postgresql.data_dir;
    if (dir[0] != '/' || strcmp(dir, "/") == 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "refusing to remove data directory %s", dir);
        return RPG_EINVAL;
    }
    int running = pg_postmaster_pid(p);
    if (running != 0) {
        /* Nothing is deleted under a running server (rule 10). */
        rpg_fmt(p->op_error, sizeof p->op_error,
                "refusing to remove data directory %s: a postmaster runs in it (pid=%d)", dir,
                running);
        return RPG_EBUSY;
    }
    char *argv[] = {"/bin/rm", "-rf", "--", (char *)dir, NULL};
    return run(p, argv, 600000);
}

/* pg_ctl reload: the server rereads its configuration; the completion calls op_step. */
static int reload(struct pg *p, char *errmsg)
{
    char bin[PATH_MAX + 32];
    bin_path(p, "pg_ctl", bin, sizeof bin);
    char *argv[] = {bin, "reload", "-D", (char *)p->conf->postgresql.data_dir, "-s", NULL};
    if (run(p, argv, 10000) != 0) {
        rpg_fmt(errmsg, RPG_ERRMSG_SIZE, "%s", p->op_error);
        return RPG_EIO;
    }
    return 0;
}

/* Runs pg_controldata on the data directory (CHECK, VERIFY_TIMELINE); its output is read from
 * p->proc.output at the next step. */
static int run_controldata(struct pg *p)
{
    char bin[PATH_MAX + 32];
    bin_path(p, "pg_controldata", bin, sizeof bin);
    char *argv[] = {bin, "-D", (char *)p->conf->postgresql.data_dir, NULL};
    return run(p, argv, 60000);
}

/* Runs one statement on the rejoin's source as the superuser with psql (the agent's one libpq
 * connection is its own server's); the answer is read from p->proc.output. */
static int run_on_source(struct pg *p, const char *sql, unsigned timeout_ms, char *errmsg)
{
    char ci[2048], bin[PATH_MAX + 32];
    int rv = pg_conninfo_for(p, &p->upstream, false, ci, sizeof ci, errmsg);
    if (rv != 0) {
        return rv;
    }
    bin_path(p, "psql", bin, sizeof bin);
    char *argv[] = {bin,  "-X", "-q", "-A",        "-t", "-v", "ON_ERROR_STOP=1",
                    "-d", ci,   "-c", (char *)sql, NULL};
    if (run(p, argv, timeout_ms) != 0) {
        return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
    }
    return 0;
}

/* The source's timeline and the timeline its control file shows: pg_rewind reads the latter, and
 * a promoted server updates it only at its next checkpoint (until then pg_rewind sees no fork). */
#define SOURCE_TIMELINE_SQL                                                                        \
    "SELECT CASE WHEN pg_is_in_recovery() THEN 'recovery' ELSE ('x' || substr(pg_walfile_name("    \
    "pg_current_wal_lsn()), 1, 8))::bit(32)::int || ' ' || timeline_id END FROM "                  \
    "pg_control_checkpoint()"

static int start_checkpoint_source(struct pg *p, char *errmsg)
{
    pg_rejoin_set_stage(p, PG_REJOIN_CHECKPOINT_SOURCE, "does %s's control file show its timeline?",
                        p->upstream.name);
    return run_on_source(p, SOURCE_TIMELINE_SQL, 30000, errmsg);
}

/* The rewind's steps, one per rejoin stage: each completion moves to the next stage. Returns 1
 * when a program was started (its completion calls op_step), 0 when the rewind is done and the
 * start as a standby began, or a negative code with errmsg (p->rewind_retryable says whether the
 * directory is still as it was). */
static int rewind_step(struct pg *p, char *errmsg)
{
    const struct conf *c = p->conf;
    char *dd = (char *)c->postgresql.data_dir;
    char bin[PATH_MAX + 32];
    const char *out = p->proc.output;
    int rv = 0;
    switch (p->rejoin.stage) {
    case PG_REJOIN_CHECK: {
        uint64_t sysid = 0;
        bool was_primary = false;
        if (!pg_controldata_rewindable(out)) {
            p->rewind_retryable = false;
            return rpg_err(errmsg, RPG_EINVAL,
                           "pg_rewind cannot work on %s: it has neither data checksums nor "
                           "wal_log_hints = on",
                           dd);
        }
        if ((rv = pg_parse_controldata(out, &sysid, &p->rejoin.target_timeline, &was_primary,
                                       errmsg)) != 0) {
            return rv;
        }
        if (!pg_controldata_clean(out)) {
            /* pg_rewind would recover it itself, but with the server's own settings: the
             * shutdown checkpoint at the end could recycle the WAL before the fork that
             * pg_rewind must read back to the last common checkpoint. With archiving on and a
             * command that never succeeds, every segment stays. */
            pg_rejoin_set_stage(
                p, PG_REJOIN_CRASH_RECOVER,
                "not shut down cleanly: postgres --single replays its WAL, keeping every "
                "segment");
            bin_path(p, "postgres", bin, sizeof bin);
            char *argv[] = {bin,         "--single",
                            "-D",        dd,
                            "-c",        "archive_mode=on",
                            "-c",        "archive_command=false",
                            "template1", NULL};
            if (run(p, argv, REWIND_TIMEOUT_MS) != 0) {
                return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
            }
            return 1;
        }
        return (rv = start_checkpoint_source(p, errmsg)) != 0 ? rv : 1;
    }
    case PG_REJOIN_CRASH_RECOVER: return (rv = start_checkpoint_source(p, errmsg)) != 0 ? rv : 1;
    case PG_REJOIN_CHECKPOINT_SOURCE:
        if (!p->rejoin.checkpoint_asked) {
            unsigned tl = 0, ckpt = 0;
            if (strcmp(out, "recovery") == 0) {
                return rpg_err(errmsg, RPG_EBUSY, "%s is still in recovery", p->upstream.name);
            }
            if (sscanf(out, "%u %u", &tl, &ckpt) != 2 || tl == 0) {
                return rpg_err(errmsg, RPG_EPROTO, "unexpected answer from %s: \"%.80s\"",
                               p->upstream.name, out);
            }
            p->rejoin.source_timeline = tl;
            if (ckpt < tl) {
                log_info("rejoin: %s's control file shows timeline %u, not %u yet: CHECKPOINT",
                         p->upstream.name, ckpt, tl);
                p->rejoin.checkpoint_asked = true;
                rv = run_on_source(p, "CHECKPOINT", REWIND_TIMEOUT_MS, errmsg);
                return rv != 0 ? rv : 1;
            }
        }
        {
            char ci[2048], src[2100];
            char *argv[8];
            if ((rv = pg_conninfo_for(p, &p->upstream, false, ci, sizeof ci, errmsg)) != 0) {
                return rv;
            }
            rpg_fmt(src, sizeof src, "--source-server=%s", ci);
            bin_path(p, "pg_rewind", bin, sizeof bin);
            pg_rewind_args(c, bin, src, argv);
            pg_rejoin_set_stage(p, PG_REJOIN_REWIND, "pg_rewind from %s (%s) on timeline %u%s",
                                p->upstream.name, p->upstream.address, p->rejoin.source_timeline,
                                pg_restore_command(c)[0] != '\0' ? ", --restore-target-wal" : "");
            log_info("rewind: pg_rewind from %s (%s)", p->upstream.name, p->upstream.address);
            if (run(p, argv, REWIND_TIMEOUT_MS) != 0) {
                return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
            }
            return 1;
        }
    case PG_REJOIN_REWIND:
        /* pg_rewind changed the directory: what fails from here is no reason to try again. */
        p->rewind_retryable = false;
        p->rejoin.no_rewind_needed = strstr(out, "no rewind required") != NULL;
        {
            uint64_t copy_mb = 0, total_mb = 0;
            if (pg_rewind_copy_size(out, &copy_mb, &total_mb)) {
                log_info("rewind: pg_rewind copied %" PRIu64 " MB (the source directory is %" PRIu64
                         " MB)",
                         copy_mb, total_mb);
            } else if (p->rejoin.no_rewind_needed) {
                log_info("rewind: pg_rewind found no rewind required (the directory's WAL does not "
                         "go past the fork)");
            }
        }
        pg_rejoin_set_stage(p, PG_REJOIN_VERIFY_TIMELINE, "is %s on timeline %u now?", dd,
                            p->rejoin.source_timeline);
        if (run_controldata(p) != 0) {
            return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
        }
        return 1;
    case PG_REJOIN_VERIFY_TIMELINE: {
        uint64_t sysid = 0;
        uint32_t tl = 0;
        bool was_primary = false;
        if ((rv = pg_parse_controldata(out, &sysid, &tl, &was_primary, errmsg)) != 0) {
            return rv;
        }
        /* Rewound, the control file names the source's timeline as the one recovery must
         * reach; not rewound (never past the fork), an ancestor the standby follows from. */
        if (tl != p->rejoin.source_timeline &&
            !(p->rejoin.no_rewind_needed && tl < p->rejoin.source_timeline)) {
            p->rewind_retryable = false;
            return rpg_err(errmsg, RPG_EPROTO,
                           "after pg_rewind %s is on timeline %u, %s on timeline %u", dd,
                           (unsigned)tl, p->upstream.name, p->rejoin.source_timeline);
        }
        log_info("rewind: done, starting as a standby of %s", p->upstream.name);
        p->obs.rewind_failed = false;
        p->obs.rewind_retries = 0;
        p->rewind_retry_at = 0;
        pg_rejoin_set_stage(p, PG_REJOIN_START_STANDBY, "timeline %u; starting as a standby of %s",
                            (unsigned)tl, p->upstream.name);
        p->op = PG_OP_START;
        p->standby = true;
        p->step = 0;
        op_step(p, 0, NULL);
        return 0;
    }
    default: {
        p->rewind_retryable = true;
        int running = pg_postmaster_pid(p);
        if (running != 0) {
            return rpg_err(errmsg, RPG_EBUSY, "not rewinding: a postmaster runs (pid=%d)", running);
        }
        if ((running = pg_pid_working_in(dd)) != 0) {
            return rpg_err(errmsg, RPG_EBUSY,
                           "not rewinding yet: postgres process %d still works in %s (left "
                           "behind by a stopped server)",
                           running, dd);
        }
        drop_stale_locks(p);
        /* Crash recovery in single-user mode refuses to run with a standby signal ("standby
         * mode is not supported by single-user servers"); the start after the rewind writes it
         * again. */
        const char *signals[] = {"standby.signal", "recovery.signal"};
        for (unsigned i = 0; i < 2; i++) {
            char sig[PATH_MAX + 32];
            pg_path_in(p, signals[i], sig, sizeof sig);
            if (unlink(sig) == 0) {
                log_info("rewind: removed %s so that the directory can be recovered", signals[i]);
            }
        }
        pg_rejoin_set_stage(p, PG_REJOIN_CHECK,
                            "pg_controldata: shut down cleanly, rewind possible?");
        if (run_controldata(p) != 0) {
            return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
        }
        return 1;
    }
    }
}

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

/* A bootstrap that ran bootstrap.method's command or has a post_bootstrap script is all or
 * nothing, as in Patroni: a directory whose command or script failed never becomes the
 * cluster (the next decision would start and record it as it is). */
static bool boot_all_or_nothing(const struct pg *p)
{
    return p->conf->bootstrap.custom || p->conf->bootstrap.post_bootstrap[0] != '\0';
}

static void boot_failed_path(const struct pg *p, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s.bootstrap-failed", p->conf->postgresql.data_dir);
}

/* DATA_DIR.bootstrapping exists from before an all-or-nothing bootstrap makes the directory
 * until it is complete or undone: beside the directory (nothing is written into a running
 * server's), so that an agent stopped or killed in between undoes it at its next start
 * instead of adopting a directory whose command or script never finished. */
static void boot_marker_path(const struct pg *p, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s.bootstrapping", p->conf->postgresql.data_dir);
}

static void boot_marker_drop(const struct pg *p)
{
    char path[PATH_MAX + 32];
    boot_marker_path(p, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        log_warning("bootstrap: cannot remove %s: %s", path, strerror(errno));
    }
}

/* Undoes a failed bootstrap (why: what failed): stops the server at once, moves the data
 * directory aside to DATA_DIR.bootstrap-failed (replacing an older one: a bootstrap that fails
 * again leaves one directory, not one per attempt), and counts the member's starts as failed
 * so that it hands the bootstrap to another member (Patroni gives up its initialize key and
 * exits) until its agent restarts. */
static void boot_fail(struct pg *p, const char *why)
{
    char bin[PATH_MAX + 32];
    rpg_fmt(p->boot_error, sizeof p->boot_error, "%s", why);
    /* why is logged once, with the operation's failure. */
    log_warning("bootstrap: failed; stopping postgresql and moving the data directory aside");
    /* From now: the decisions meanwhile hand over instead of recording this server. */
    p->obs.start_failures = HA_START_FAILURES_MAX;
    p->step = BOOT_FAIL_STOPPED;
    if (pg_postmaster_pid(p) != 0) {
        bin_path(p, "pg_ctl", bin, sizeof bin);
        char *argv[] = {bin,  "stop",      "-D", (char *)p->conf->postgresql.data_dir,
                        "-m", "immediate", "-w", "-t",
                        "30", "-s",        NULL};
        if (run(p, argv, 40000) == 0) {
            return;
        }
    }
    op_step(p, 0, NULL);
}

static void boot_fail_step(struct pg *p, int step)
{
    char aside[PATH_MAX + 32];
    const char *dd = p->conf->postgresql.data_dir;
    boot_failed_path(p, aside, sizeof aside);
    struct stat st;
    if (step == BOOT_FAIL_STOPPED && lstat(aside, &st) == 0 && lstat(dd, &st) == 0) {
        char *argv[] = {"/bin/rm", "-rf", "--", aside, NULL};
        log_info("bootstrap: removing %s, left by an earlier failed bootstrap", aside);
        if (run(p, argv, 600000) == 0) {
            return;
        }
    }
    int running = pg_postmaster_pid(p);
    if (running != 0) {
        log_error("bootstrap: cannot move %s aside: a postmaster still runs in it (pid=%d)", dd,
                  running);
    } else if (lstat(dd, &st) == 0) {
        if (rename(dd, aside) == 0) {
            log_warning("bootstrap: data directory %s moved aside to %s", dd, aside);
        } else {
            log_error("bootstrap: cannot move %s aside to %s: %s", dd, aside, strerror(errno));
        }
    }
    if (running == 0) {
        boot_marker_drop(p);
    }
    char msg[RPG_ERRMSG_SIZE];
    rpg_fmt(msg, sizeof msg, "%s", p->boot_error);
    rpg_fmt(p->op_error, sizeof p->op_error, "%s", msg);
    op_finish(p, RPG_EIO, msg);
}

/* Starts the custom method's command: COMMAND [--scope=S --datadir=D] [--key=value ...]. */
static int boot_run_command(struct pg *p, char *errmsg)
{
    const struct conf *c = p->conf;
    const struct conf_boot_method *m = &c->bootstrap.methods[c->bootstrap.custom_index];
    char words[CONF_CALLBACK_MAX], scope[CONF_NAME_MAX + 16], datadir[PATH_MAX + 16];
    char *argv[32 + 2 + CONF_USER_TAGS_MAX + 1];
    char *args[CONF_USER_TAGS_MAX];
    int n = callback_argv(m->command, words, sizeof words, argv, 32);
    int rv = 0;
    unsigned n_args = 0;
    if (n == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "bootstrap.%s.command: no program to run", m->name);
    }
    if (!m->no_params) {
        rpg_fmt(scope, sizeof scope, "--scope=%s", c->scope);
        rpg_fmt(datadir, sizeof datadir, "--datadir=%s", c->postgresql.data_dir);
        argv[n++] = scope;
        argv[n++] = datadir;
    }
    for (; n_args < m->n_args; n_args++) {
        size_t len = strlen(m->args[n_args].key) + strlen(m->args[n_args].value) + 4;
        if ((args[n_args] = malloc(len)) == NULL) {
            rv = rpg_err(errmsg, RPG_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(args[n_args], len, "--%s=%s", m->args[n_args].key, m->args[n_args].value);
        argv[n++] = args[n_args];
    }
    argv[n] = NULL;
    log_info("bootstrap: running bootstrap.%s.command in place of initdb: %s", m->name, m->command);
    /* proc_run copies argv. */
    if (run(p, argv, CLONE_TIMEOUT_MS) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "bootstrap.%s.command %s failed: %s", m->name, m->command,
                     p->op_error);
    }
out:
    for (unsigned i = 0; i < n_args; i++) {
        free(args[i]);
    }
    return rv;
}

/* Starts bootstrap.post_bootstrap with the superuser's URL, as Patroni does: the password in a
 * password file (PGPASSFILE), synchronous_commit local (no standby streams yet). */
static int boot_run_post(struct pg *p, char *errmsg)
{
    const struct conf *c = p->conf;
    char words[CONF_CALLBACK_MAX], url[256], passfile[PATH_MAX + 16], penv[PATH_MAX + 32];
    char *argv[32];
    int rv = pg_superuser_url(p, url, sizeof url, passfile, sizeof passfile, errmsg);
    if (rv != 0) {
        return rv;
    }
    int n = callback_argv(c->bootstrap.post_bootstrap, words, sizeof words, argv, 32);
    if (n == 0) {
        return rpg_err(errmsg, RPG_EINVAL, "bootstrap.post_bootstrap: no program to run");
    }
    argv[n++] = url;
    argv[n] = NULL;
    rpg_fmt(penv, sizeof penv, "PGPASSFILE=%s", passfile);
    char *env[] = {"PGOPTIONS=-c synchronous_commit=local -c statement_timeout=0",
                   passfile[0] != '\0' ? penv : NULL, NULL};
    log_info("bootstrap: running bootstrap.post_bootstrap: %s %s", c->bootstrap.post_bootstrap,
             url);
    if (run_env(p, argv, env, c->bootstrap.post_bootstrap_timeout_s * 1000u) != 0) {
        return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
    }
    return 0;
}

/* Each operation is a short sequence of steps; a step that starts something returns and the
 * completion calls op_step again with the outcome. */
static void op_step(struct pg *p, int rc, const char *msg)
{
    char errmsg[RPG_ERRMSG_SIZE], bin[PATH_MAX + 32], buf[4096];
    const struct conf *c = p->conf;
    char *dd = (char *)c->postgresql.data_dir;
    int rv = 0;
    int step = p->step++;

    if (p->op == PG_OP_BOOTSTRAP && step >= BOOT_FAIL_STOPPED) {
        if (rc != 0) {
            log_warning("bootstrap: undoing: %s", msg != NULL ? msg : "failed");
        }
        boot_fail_step(p, step);
        return;
    }
    if (rc != 0 && p->op == PG_OP_BOOTSTRAP && boot_all_or_nothing(p) && step > BOOT_CREATE) {
        /* What failed, indexed by the step its completion arrives at. */
        static const char *const what[] = {
            [BOOT_CONFIGURE] = "bootstrap.method's command",
            [BOOT_START] = "the configured parameters' single-user run",
            [BOOT_ROLES] = "the start as primary",
            [BOOT_POST] = "creating the replication role",
            [BOOT_DONE] = "bootstrap.post_bootstrap",
        };
        char why[RPG_ERRMSG_SIZE];
        if (step == BOOT_CONFIGURE && !p->conf->bootstrap.custom) {
            rpg_fmt(why, sizeof why, "initdb failed: %s", msg);
        } else if (step == BOOT_DONE) {
            rpg_fmt(why, sizeof why, "bootstrap.post_bootstrap script %s failed: %s",
                    p->conf->bootstrap.post_bootstrap, msg);
        } else if (step == BOOT_CONFIGURE) {
            rpg_fmt(why, sizeof why, "bootstrap.%s.command %s failed: %s",
                    c->bootstrap.methods[c->bootstrap.custom_index].name,
                    c->bootstrap.methods[c->bootstrap.custom_index].command, msg);
        } else if (step == BOOT_ROLES) {
            char reason[RPG_ERRMSG_SIZE];
            pg_log_reason(p, reason, sizeof reason);
            rpg_fmt(why, sizeof why, "%s failed: %s%s%s%s", what[step], msg,
                    reason[0] != '\0' ? " (server log: " : "", reason,
                    reason[0] != '\0' ? ")" : "");
        } else {
            rpg_fmt(why, sizeof why, "%s failed: %s", what[step], msg);
        }
        if (step == BOOT_CONFIGURE) {
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            unlink(pwfile);
        }
        boot_fail(p, why);
        return;
    }

    if (rc != 0) {
        if (p->op == PG_OP_START || (p->op == PG_OP_BOOTSTRAP && step == BOOT_ROLES) ||
            ((p->op == PG_OP_CLONE || p->op == PG_OP_REINIT || p->op == PG_OP_REWIND) &&
             p->standby && step >= 10)) {
            char reason[RPG_ERRMSG_SIZE];
            pg_log_reason(p, reason, sizeof reason);
            p->obs.start_failures++;
            ha_crash_note(&p->crash_log, uv_now(p->loop));
            if (reason[0] != '\0') {
                rpg_fmt(buf, sizeof buf, "%s (server log: %s)", msg, reason);
                msg = buf;
            }
        }
        if (p->op == PG_OP_BOOTSTRAP && step == BOOT_CONFIGURE) {
            /* initdb failed: its password file goes too. */
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            unlink(pwfile);
        }
        if (p->op == PG_OP_STOP && (step == 1 || step == 2) && pg_postmaster_pid(p) == 0 &&
            pg_pid_working_in(dd) == 0) {
            /* Stopped meanwhile (the fence stops a primary whose lease ends while a demotion
             * begins): pg_ctl finds no server ("Is server running?"), which is what the stop
             * was for. The process table says so, not pg_ctl. */
            log_info("stop: postgresql no longer runs in %s (%s): stopped", dd, msg);
            op_finish(p, 0, NULL);
            return;
        }
        if (p->op == PG_OP_STOP && step == 1) {
            /* Fast shutdown did not finish within its bound: escalate. */
            bin_path(p, "pg_ctl", bin, sizeof bin);
            char *argv[] = {bin, "stop", "-D", dd, "-m", "immediate", "-w", "-t", "30", "-s", NULL};
            log_warning("fast shutdown failed (%s): stopping postgresql immediately", msg);
            if (run(p, argv, 40000) == 0) {
                return;
            }
            msg = p->op_error;
        }
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", msg);
        op_finish(p, rc, msg);
        return;
    }

    switch (p->op) {
    case PG_OP_BOOTSTRAP:
        switch (step) {
        case BOOT_CREATE: {
            if ((rv = pg_mkdir_parent(dd, errmsg)) != 0) {
                break;
            }
            if (boot_all_or_nothing(p)) {
                char marker[PATH_MAX + 32];
                boot_marker_path(p, marker, sizeof marker);
                if ((rv = pg_write_file(marker,
                                        "a bootstrap runs; an agent that finds this file undoes "
                                        "it\n",
                                        0600, errmsg)) != 0) {
                    break;
                }
            }
            if (c->bootstrap.custom) {
                if (boot_run_command(p, errmsg) != 0) {
                    boot_fail(p, errmsg);
                }
                return;
            }
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            rpg_fmt(buf, sizeof buf, "%s\n", c->postgresql.superuser_password);
            if (c->postgresql.superuser_password[0] != '\0' &&
                (rv = pg_write_file(pwfile, buf, 0600, errmsg)) != 0) {
                break;
            }
            bin_path(p, "initdb", bin, sizeof bin);
            char user[CONF_NAME_MAX + 16], pwarg[PATH_MAX + 16];
            rpg_fmt(user, sizeof user, "--username=%s", c->postgresql.superuser_name);
            rpg_fmt(pwarg, sizeof pwarg, "--pwfile=%s", pwfile);
            char *argv[] = {bin,
                            "-D",
                            dd,
                            user,
                            "--data-checksums",
                            "--encoding=UTF8",
                            "--locale=C.UTF-8",
                            "--auth=trust",
                            c->postgresql.superuser_password[0] != '\0' ? pwarg : NULL,
                            NULL};
            log_info("bootstrap: running initdb in %s", dd);
            if (run(p, argv, 600000) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        case BOOT_CONFIGURE: {
            char pwfile[PATH_MAX + 16];
            rpg_fmt(pwfile, sizeof pwfile, "%s.pwfile", dd);
            unlink(pwfile);
            if (c->bootstrap.custom) {
                char path[PATH_MAX + 32];
                pg_path_in(p, "PG_VERSION", path, sizeof path);
                if (!pg_file_exists(path)) {
                    rpg_fmt(buf, sizeof buf,
                            "bootstrap.%s.command %s exited 0 but left no data directory in %s "
                            "(no PG_VERSION)",
                            c->bootstrap.methods[c->bootstrap.custom_index].name,
                            c->bootstrap.methods[c->bootstrap.custom_index].command, dd);
                    boot_fail(p, buf);
                    return;
                }
                /* keep_existing_recovery_conf false (Patroni's default): the directory starts
                 * as a primary, not as a standby or a recovery of the command's choosing. */
                const char *signals[] = {"standby.signal", "recovery.signal"};
                for (unsigned i = 0; i < 2; i++) {
                    pg_path_in(p, signals[i], path, sizeof path);
                    if (unlink(path) == 0) {
                        log_info("bootstrap: removed %s left by the command", signals[i]);
                    }
                }
            }
            if ((rv = pg_write_config(p, false, NULL, errmsg)) != 0) {
                break;
            }
            /* initdb's control file records its own postgresql.conf's max_connections (100) and
             * the like until a server runs with raftpg.conf. Should the start as primary fail,
             * the directory is next started read-only, and a standby below those values refuses
             * to start ("recovery aborted because of insufficient parameter settings") every
             * time. A single-user run records the configured values first. */
            bin_path(p, "postgres", bin, sizeof bin);
            char *argv[] = {bin, "--single", "-D", dd, "template1", NULL};
            log_info("bootstrap: recording the configured parameters in the control file");
            if (run(p, argv, START_TIMEOUT_S * 1000u) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        case BOOT_START:
            log_info("bootstrap: starting postgresql as primary");
            if (pg_ctl_start(p) != 0) {
                rv = RPG_EIO;
                rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
                break;
            }
            return;
        case BOOT_ROLES:
            p->obs.start_failures = 0;
            if (c->bootstrap.custom) {
                /* The command's directory may hold the role already. */
                char *sql = NULL;
                size_t len = 0, cap = 0;
                ensure_role_sql(p, &sql, &len, &cap);
                control_sql(p, sql != NULL ? sql : strdup("SELECT 1"));
                return;
            }
            control_sql(p, roles_sql(p));
            return;
        case BOOT_POST:
            log_info("bootstrap: roles created");
            if (c->bootstrap.post_bootstrap[0] == '\0') {
                boot_marker_drop(p);
                op_finish(p, 0, NULL);
                return;
            }
            if ((rv = boot_run_post(p, errmsg)) == 0) {
                return;
            }
            /* Not started: as a failed script, the bootstrap is undone. */
            rpg_fmt(buf, sizeof buf, "bootstrap.post_bootstrap script %s failed: %s",
                    c->bootstrap.post_bootstrap, errmsg);
            boot_fail(p, buf);
            return;
        default:
            log_info("bootstrap: bootstrap.post_bootstrap script %s done",
                     c->bootstrap.post_bootstrap);
            boot_marker_drop(p);
            op_finish(p, 0, NULL);
            return;
        }
        break;
    case PG_OP_START:
        if (step == 0) {
            int running = pg_postmaster_pid(p);
            if (running != 0) {
                /* Nothing is started or written over a running server (rule 10). */
                rv = rpg_err(errmsg, RPG_EBUSY, "a postmaster runs already (pid=%d)", running);
                break;
            }
            if ((rv = pg_write_config(p, p->standby, p->upstream.name[0] ? &p->upstream : NULL,
                                      errmsg)) == 0) {
                if (pg_ctl_start(p) == 0) {
                    return;
                }
                rv = RPG_EIO;
                rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            }
            break;
        }
        p->obs.start_failures = 0;
        if (!p->standby) {
            /* Serving as primary from here: a kill before the next observation is a crash. */
            p->primary_pid = pg_postmaster_pid(p);
            p->primary_checkpointer = 0;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_STOP:
        if (step == 0) {
            bin_path(p, "pg_ctl", bin, sizeof bin);
            char t[16];
            rpg_fmt(t, sizeof t, "%u", (p->stop_bound_ms + 999) / 1000);
            char *argv[] = {bin, "stop", "-D", dd, "-m", "fast", "-w", "-t", t, "-s", NULL};
            if (run(p, argv, p->stop_bound_ms + 2000) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_PROMOTE:
        if (step == 0) {
            if ((rv = pg_reserve_timelines(dd, p->obs.timeline, p->promote_timeline, errmsg)) !=
                0) {
                break;
            }
            bin_path(p, "pg_ctl", bin, sizeof bin);
            char *argv[] = {bin, "promote", "-D", dd, "-W", "-s", NULL};
            if (run(p, argv, 10000) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_REINIT:
        /* A rewind runs only on a directory that went past the primary's fork (or last ran as
         * a primary): its failure is a divergence pg_rewind could not repair, which either of
         * Patroni's two keys allows to delete. */
        if (step == 0 && p->reinit_remove) {
            /* The operator asked for it (ctl reinit): as Patroni, nothing is kept. */
            log_info("reinit: removing data directory %s (asked by the operator)", dd);
            if (remove_data_dir(p) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        /* Without pg_rewind a former primary is cloned again: it may have diverged, and nothing
         * here can tell, so the diverged-timelines key decides too. */
        bool unrewound = !p->conf->postgresql.use_pg_rewind && p->obs.was_primary;
        if (step == 0 && unrewound && !p->obs.rewind_failed) {
            rpg_fmt(p->rejoin_error, sizeof p->rejoin_error,
                    "last ran as primary and postgresql.use_pg_rewind is off");
        }
        if (step == 0 && (p->conf->postgresql.remove_data_directory_on_rewind_failure ||
                          ((p->obs.rewind_failed || unrewound) &&
                           p->conf->postgresql.remove_data_directory_on_diverged_timelines))) {
            const char *key = p->conf->postgresql.remove_data_directory_on_rewind_failure
                                  ? "remove_data_directory_on_rewind_failure"
                                  : "remove_data_directory_on_diverged_timelines";
            pg_rejoin_set_stage(p, PG_REJOIN_REMOVE, "postgresql.%s: %s", key,
                                p->rejoin_error[0] ? p->rejoin_error : "cannot be used");
            log_info("reinit: removing data directory %s (postgresql.%s)", dd, key);
            if (remove_data_dir(p) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        if (step == 0) {
            /* Never deleted by default: moved aside once, with the reason beside it. */
            pg_rejoin_set_stage(p, PG_REJOIN_MOVE_ASIDE, "%s",
                                p->rejoin_error[0] ? p->rejoin_error : "cannot be used");
            if ((rv = move_aside(p, errmsg)) != 0) {
                break;
            }
        }
        p->op = PG_OP_CLONE;
        p->step = 0;
        op_step(p, 0, NULL);
        return;
    case PG_OP_CLONE:
        if (step == 0) {
            if ((rv = pg_mkdir_parent(dd, errmsg)) != 0) {
                break;
            }
            char ci[2048], slot[FSM_NAME_MAX];
            if ((rv = pg_conninfo_for(p, &p->upstream, true, ci, sizeof ci, errmsg)) != 0) {
                break;
            }
            bin_path(p, "pg_basebackup", bin, sizeof bin);
            ha_slot_name(p->upstream.slot_id, slot, sizeof slot);
            char rate[48];
            rpg_fmt(rate, sizeof rate, "--max-rate=%s", c->postgresql.basebackup_max_rate);
            /* --progress: bytes copied and the total, read while it runs (pg_rejoin.done_kb). */
            char *argv[16] = {bin, "-D", dd, "-X", "stream", "-c", "fast", "--progress", "-d", ci};
            unsigned argc = 10;
            if (c->postgresql.basebackup_max_rate[0] != '\0') {
                argv[argc++] = rate; /* a clone must not starve the primary's disk and link */
            }
            if (p->upstream.slot_id != 0) {
                argv[argc++] = "-S";
                argv[argc++] = slot;
            }
            argv[argc] = NULL;
            bool throttled = c->postgresql.basebackup_max_rate[0] != '\0';
            pg_rejoin_set_stage(p, PG_REJOIN_CLONE, "pg_basebackup from %s", p->upstream.name);
            log_info("clone: pg_basebackup from %s (%s)%s%s", p->upstream.name, p->upstream.address,
                     throttled ? " --max-rate=" : "",
                     throttled ? c->postgresql.basebackup_max_rate : "");
            if (run(p, argv, CLONE_TIMEOUT_MS) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        pg_basebackup_progress(p->proc.output, &p->rejoin.done_kb, &p->rejoin.total_kb);
        log_info("clone: done, %llu kB copied", (unsigned long long)p->rejoin.done_kb);
        p->obs.rewind_failed = false;
        p->obs.rewind_retries = 0;
        p->rewind_retry_at = 0;
        pg_rejoin_set_stage(p, PG_REJOIN_START_STANDBY, "starting as a standby of %s",
                            p->upstream.name);
        p->op = PG_OP_START;
        p->standby = true;
        p->step = 0;
        op_step(p, 0, NULL);
        return;
    case PG_OP_REWIND:
        if ((rv = rewind_step(p, errmsg)) == 1) {
            return;
        }
        break;
    case PG_OP_FOLLOW:
        if (step == 0) {
            if ((rv = pg_write_config(p, true, &p->upstream, errmsg)) != 0 ||
                (rv = reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        op_finish(p, 0, NULL);
        return;
    case PG_OP_SET_SYNC:
        if (step == 0) {
            if (pg_postmaster_pid(p) == 0) {
                /* Not running: the next start writes it. */
                op_finish(p, 0, NULL);
                return;
            }
            if ((rv = pg_write_sync_settings(p, errmsg)) != 0 || (rv = reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        op_finish(p, 0, NULL);
        return;
    case PG_OP_SET_PARAMS:
        if (step == 0) {
            if (pg_postmaster_pid(p) == 0) {
                /* Not running: the next start writes them. */
                op_finish(p, 0, NULL);
                return;
            }
            if ((rv = pg_write_params(p, errmsg)) != 0 || (rv = reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        op_finish(p, 0, NULL);
        return;
    case PG_OP_CHECKPOINT:
        if (step == 0) {
            control_sql(p, strdup("CHECKPOINT"));
            return;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_SYNC_SLOTS:
        if (step == 0) {
            control_sql(p, slots_sql(p));
            return;
        }
        op_finish(p, 0, NULL);
        return;
    case PG_OP_NONE: return;
    }
    if (rv != 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", errmsg);
        op_finish(p, rv, errmsg);
    }
}

static int op_begin(struct pg *p, enum pg_op op, const struct pg_upstream *up, pg_done_cb cb,
                    void *data)
{
    if (p->op != PG_OP_NONE || p->closing) {
        return RPG_EBUSY;
    }
    p->op = op;
    p->step = 0;
    if (op == PG_OP_STOP || op == PG_OP_REWIND || op == PG_OP_CLONE || op == PG_OP_REINIT) {
        pg_crash_forget(p); /* the server's end is this operation's doing */
    }
    if (op == PG_OP_REWIND || op == PG_OP_CLONE || op == PG_OP_REINIT) {
        rejoin_begin(p);
    } else if (op == PG_OP_START || op == PG_OP_STOP || op == PG_OP_PROMOTE ||
               op == PG_OP_BOOTSTRAP) {
        /* What the server does from here is no longer the rejoin's doing. */
        memset(&p->rejoin, 0, sizeof p->rejoin);
    }
    p->done_cb = cb;
    p->done_data = data;
    p->op_error[0] = '\0';
    if (up != NULL) {
        p->upstream = *up;
    } else {
        memset(&p->upstream, 0, sizeof p->upstream);
    }
    op_step(p, 0, NULL);
    return 0;
}

void pg_crash_forget(struct pg *p)
{
    p->primary_pid = 0;
    p->primary_checkpointer = 0;
}

bool pg_busy(const struct pg *p)
{
    return p->op != PG_OP_NONE;
}

void pg_cancel(struct pg *p)
{
    if (p->op != PG_OP_NONE && p->op != PG_OP_STOP && p->proc.running && !p->proc_launches) {
        proc_kill(&p->proc, SIGTERM);
    }
}

int pg_bootstrap(struct pg *p, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_BOOTSTRAP, NULL, cb, data);
}

int pg_start(struct pg *p, bool standby, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    p->standby = standby;
    return op_begin(p, PG_OP_START, up, cb, data);
}

int pg_stop(struct pg *p, unsigned bound_ms, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    p->stop_bound_ms = bound_ms < 1000 ? 1000 : bound_ms;
    return op_begin(p, PG_OP_STOP, NULL, cb, data);
}

int pg_promote(struct pg *p, uint32_t timeline, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    p->promote_timeline = timeline;
    return op_begin(p, PG_OP_PROMOTE, NULL, cb, data);
}

int pg_clone(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_CLONE, up, cb, data);
}

int pg_reinit(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_REINIT, up, cb, data);
}

int pg_reinit_remove(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE || p->closing) {
        return RPG_EBUSY;
    }
    p->reinit_remove = true; /* op_begin runs the first step at once */
    return op_begin(p, PG_OP_REINIT, up, cb, data);
}

int pg_rewind(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_REWIND, up, cb, data);
}

int pg_follow(struct pg *p, const struct pg_upstream *up, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_FOLLOW, up, cb, data);
}

int pg_set_sync(struct pg *p, const char *names, const char *commit, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    rpg_fmt(p->sync_names, sizeof p->sync_names, "%s", names);
    rpg_fmt(p->sync_commit, sizeof p->sync_commit, "%s", commit != NULL ? commit : "");
    return op_begin(p, PG_OP_SET_SYNC, NULL, cb, data);
}

void pg_params_store(struct pg *p, const struct fsm_param *ps, unsigned n,
                     const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba)
{
    p->n_params = n < FSM_PARAMS_MAX ? n : FSM_PARAMS_MAX;
    memset(p->params, 0, sizeof p->params);
    memcpy(p->params, ps, p->n_params * sizeof *ps);
    p->n_hba = n_hba < FSM_HBA_MAX ? n_hba : FSM_HBA_MAX;
    memset(p->hba, 0, sizeof p->hba);
    memcpy(p->hba, hba, p->n_hba * sizeof *hba);
    p->params_failed = false;
}

int pg_set_params(struct pg *p, const struct fsm_param *ps, unsigned n,
                  const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    pg_params_store(p, ps, n, hba, n_hba);
    return op_begin(p, PG_OP_SET_PARAMS, NULL, cb, data);
}

bool pg_params_stale(const struct pg *p, const struct fsm_param *ps, unsigned n,
                     const char (*hba)[FSM_HBA_LINE_MAX], unsigned n_hba)
{
    if (p->params_failed || n != p->n_params || n_hba != p->n_hba) {
        return true;
    }
    for (unsigned i = 0; i < n_hba; i++) {
        if (strcmp(hba[i], p->hba[i]) != 0) {
            return true;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(ps[i].name, p->params[i].name) != 0 ||
            strcmp(ps[i].value, p->params[i].value) != 0) {
            return true;
        }
    }
    return false;
}

int pg_checkpoint(struct pg *p, pg_done_cb cb, void *data)
{
    return op_begin(p, PG_OP_CHECKPOINT, NULL, cb, data);
}

int pg_sync_slots(struct pg *p, const uint64_t *ids, unsigned n, pg_done_cb cb, void *data)
{
    if (p->op != PG_OP_NONE) {
        return RPG_EBUSY;
    }
    p->n_slot_ids = n < FSM_MEMBERS_MAX ? n : FSM_MEMBERS_MAX;
    memcpy(p->slot_ids, ids, p->n_slot_ids * sizeof *ids);
    return op_begin(p, PG_OP_SYNC_SLOTS, NULL, cb, data);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int pg_init(struct pg *p, uv_loop_t *loop, const struct conf *conf, const char *member,
            char *errmsg)
{
    (void)errmsg;
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->conf = conf;
    p->member = member;
    p->conn_fd = -1;
    uv_timer_init(loop, &p->tick);
    uv_timer_init(loop, &p->deadline);
    uv_timer_init(loop, &p->sql_timer);
    p->tick.data = p;
    p->deadline.data = p;
    p->sql_timer.data = p;
    p->n_open = 3;
    pg_read_upstream(p);
    uv_timer_start(&p->tick, pg_on_tick, 0, TIMING_PG_OBSERVE_INTERVAL_MS);
    char marker[PATH_MAX + 32];
    boot_marker_path(p, marker, sizeof marker);
    if (pg_file_exists(marker)) {
        log_warning("bootstrap: %s exists: this member's last bootstrap did not complete (its "
                    "agent stopped during it)",
                    marker);
        p->op = PG_OP_BOOTSTRAP;
        boot_fail(p, "an earlier bootstrap of this member did not complete");
    }
    return 0;
}

static void finish_close(struct pg *p);

static void on_proc_drained(uv_timer_t *t)
{
    struct pg *p = t->data;
    finish_close(p);
}

/* Closing waits for running programs: their callbacks touch p. */
static void finish_close(struct pg *p)
{
    if (p->op != PG_OP_NONE || p->controldata_running) {
        uv_timer_start(&p->tick, on_proc_drained, 20, 0);
        return;
    }
    pg_conn_drop(p, NULL);
    free(p->pending_sql);
    p->pending_sql = NULL;
    free(p->settings);
    p->settings = NULL;
    p->pending_cb = NULL;
    uv_close((uv_handle_t *)&p->tick, pg_handle_closed);
    uv_close((uv_handle_t *)&p->deadline, pg_handle_closed);
    uv_close((uv_handle_t *)&p->sql_timer, pg_handle_closed);
}

void pg_close(struct pg *p, void (*cb)(struct pg *p))
{
    if (p->closing) {
        return;
    }
    p->closing = true;
    p->close_cb = cb;
    uv_timer_stop(&p->tick);
    uv_timer_stop(&p->sql_timer);
    if (p->op != PG_OP_NONE && p->proc.running) {
        proc_kill(&p->proc, SIGTERM);
    }
    if (p->controldata_running) {
        proc_kill(&p->controldata, SIGTERM);
    }
    finish_close(p);
}
