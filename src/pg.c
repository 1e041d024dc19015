/* pg: what the control operations run on (their end, their programs, control SQL, stale lock
 * files and timeline reservations, the role and slot statements) and the lifecycle (pg.h,
 * pg_int.h). The operations' steps are in pg_op.c, the rejoin's in pg_rejoin.c, the
 * bootstrap's own in pg_boot.c. */
#include "pg_int.h"

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

void pg_op_finish(struct pg *p, int rc, const char *msg)
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
        pg_rejoin_failed(p, msg != NULL ? msg : "");
    }
    if (cb != NULL) {
        cb(p, rc, msg != NULL ? msg : "", p->done_data);
    }
}

static void proc_step(struct proc *pr, const struct proc_result *res, void *data)
{
    struct pg *p = data;
    if (p->closing) {
        pg_op_finish(p, RPG_EIO, "agent stopping");
        return;
    }
    if (proc_ok(res)) {
        pg_op_step(p, 0, NULL);
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
    pg_op_step(p, res->timed_out ? RPG_ETIMEDOUT : RPG_EIO, why);
}

static void on_proc(struct proc *pr, const struct proc_result *res, void *data)
{
    LOOPWATCH_SPAN("postgresql program exit", proc_step(pr, res, data));
}

int pg_run_env(struct pg *p, char *const argv[], char *const env[], unsigned timeout_ms)
{
    char errmsg[RPG_ERRMSG_SIZE];
    p->proc_launches = false;
    int rv = proc_run(&p->proc, p->loop, argv, env, timeout_ms, on_proc, p, errmsg);
    if (rv != 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", errmsg);
    }
    return rv;
}

int pg_run(struct pg *p, char *const argv[], unsigned timeout_ms)
{
    char *env[] = {"LC_ALL=C", NULL};
    return pg_run_env(p, argv, env, timeout_ms);
}

void pg_bin_path(const struct pg *p, const char *prog, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s/%s", p->conf->postgresql.bin_dir, prog);
}

static void on_control_sql(struct pg *p, int rc, const char *msg)
{
    uv_timer_stop(&p->sql_timer);
    pg_op_step(p, rc, msg);
}

static void on_sql_wait(uv_timer_t *t)
{
    struct pg *p = t->data;
    if (p->pending_sql != NULL) {
        free(p->pending_sql);
        p->pending_sql = NULL;
        p->pending_cb = NULL;
        pg_op_step(p, RPG_ETIMEDOUT, "postgresql did not accept connections in time");
    }
}

/* Queues a control statement for the observer's connection; it runs once PostgreSQL accepts
 * connections, or fails after CONTROL_SQL_WAIT_MS. Takes ownership of sql. */
void pg_control_sql(struct pg *p, char *sql)
{
    if (sql == NULL) {
        pg_op_step(p, RPG_ENOMEM, "out of memory");
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

void pg_drop_stale_locks(struct pg *p)
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

int pg_ctl_start(struct pg *p)
{
    pg_drop_stale_locks(p);
    pg_drop_reservations(p->conf->postgresql.data_dir);
    char bin[PATH_MAX + 32], logf[PATH_MAX + 8], t[16];
    pg_bin_path(p, "pg_ctl", bin, sizeof bin);
    rpg_fmt(logf, sizeof logf, "%s.log", p->conf->postgresql.data_dir);
    rpg_fmt(t, sizeof t, "%d", START_TIMEOUT_S);
    char *argv[] = {bin,  "start", "-D", (char *)p->conf->postgresql.data_dir,
                    "-l", logf,    "-w", "-t",
                    t,    "-s",    NULL};
    int rv = pg_run(p, argv, (START_TIMEOUT_S + 10) * 1000u);
    p->proc_launches = rv == 0;
    return rv;
}

char *pg_roles_sql(const struct pg *p)
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
void pg_ensure_role_sql(const struct pg *p, char **buf, size_t *len, size_t *cap)
{
    const struct conf *c = p->conf;
    if (strcmp(c->postgresql.replication_name, c->postgresql.superuser_name) == 0) {
        return;
    }
    char *create = pg_roles_sql(p);
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

char *pg_slots_sql(const struct pg *p)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char name[FSM_NAME_MAX];
    pg_ensure_role_sql(p, &buf, &len, &cap);
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

/* pg_ctl reload: the server rereads its configuration; the completion calls op_step. */
int pg_reload(struct pg *p, char *errmsg)
{
    char bin[PATH_MAX + 32];
    pg_bin_path(p, "pg_ctl", bin, sizeof bin);
    char *argv[] = {bin, "reload", "-D", (char *)p->conf->postgresql.data_dir, "-s", NULL};
    if (pg_run(p, argv, 10000) != 0) {
        rpg_fmt(errmsg, RPG_ERRMSG_SIZE, "%s", p->op_error);
        return RPG_EIO;
    }
    return 0;
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
    pg_boot_marker_path(p, marker, sizeof marker);
    if (pg_file_exists(marker)) {
        log_warning("bootstrap: %s exists: this member's last bootstrap did not complete (its "
                    "agent stopped during it)",
                    marker);
        p->op = PG_OP_BOOTSTRAP;
        pg_boot_fail(p, "an earlier bootstrap of this member did not complete");
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
