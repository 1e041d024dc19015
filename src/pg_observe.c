/* pg: the observer, its connection and what it reads from PostgreSQL and the control file
 * (pg_int.h); the process-table lookups it asks are in pg_postmaster.c. */
#include "pg_int.h"

static const char OBSERVE_SQL[] =
    "SELECT pg_is_in_recovery(),"
    " (SELECT system_identifier FROM pg_control_system())::text,"
    " CASE WHEN pg_is_in_recovery() THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver"
    "   WHERE received_tli > 0), (SELECT timeline_id FROM pg_control_checkpoint()))"
    "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    " CASE WHEN pg_is_in_recovery() THEN coalesce(pg_wal_lsn_diff(greatest("
    "   pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::bigint, 0)"
    "  ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END,"
    " coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1), false),"
    " (SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '')"
    "   FROM pg_replication_slots WHERE slot_name LIKE 'raftpg\\_%'),"
    " (SELECT coalesce(string_agg(concat_ws(' ', application_name, state, sync_state,"
    "   coalesce(pg_wal_lsn_diff(flush_lsn, '0/0')::bigint, 0),"
    "   coalesce(pg_wal_lsn_diff(replay_lsn, '0/0')::bigint, 0)), ',' ORDER BY application_name),"
    "   '') FROM pg_stat_replication WHERE application_name <> ''),"
    " (SELECT timeline_id FROM pg_control_checkpoint()),"
    " current_setting('synchronous_standby_names'),"
    /* Where the WAL receiver really streams from (rule 4); no row when none runs. */
    " (SELECT CASE WHEN sender_host IS NULL OR sender_port IS NULL THEN '" HA_RECEIVER_UNKNOWN "'"
    "   ELSE sender_host || ':' || sender_port END FROM pg_stat_wal_receiver LIMIT 1),"
    " current_setting('primary_conninfo'),"
    " CASE WHEN pg_is_in_recovery() THEN coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(),"
    "   '0/0')::bigint, 0) ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END,"
    /* For the status document only. */
    " current_setting('server_version_num'), pg_postmaster_start_time()::text,"
    " EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart),"
    " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,"
    " CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_xact_replay_timestamp()::text, '')"
    "  ELSE '' END,"
    /* A postmaster that reinitializes after a crash (restart_after_crash) starts a new
     * checkpointer: a crash the postmaster's own PID does not show. */
    " coalesce((SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer' LIMIT 1), 0)";
/* The last column: nothing, or, once per run of the server, the names and contexts of its
 * settings, which the leader checks dynamic parameters against. */
static const char OBSERVE_NO_SETTINGS[] = ", NULL::text";
static const char OBSERVE_SETTINGS[] =
    ", (SELECT string_agg(concat_ws(' ', name, context, vartype, coalesce(unit, '-'),"
    "   coalesce(min_val, '-'), coalesce(max_val, '-'), array_to_string(enumvals, '|')),"
    "   E'\\n' ORDER BY name) FROM pg_settings)";

/* ---- the observer's connection --------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

static void poll_closed(uv_handle_t *h)
{
    struct pg *p = h->data;
    free(h);
    p->n_open--;
    if (p->closing && p->n_open == 0 && p->close_cb != NULL) {
        p->close_cb(p);
    }
}

void pg_handle_closed(uv_handle_t *h)
{
    struct pg *p = h->data;
    p->n_open--;
    if (p->closing && p->n_open == 0 && p->close_cb != NULL) {
        p->close_cb(p);
    }
}

/* Each poll handle watches one socket and lives on the heap until its close callback: a new
 * connection (or libpq switching sockets while connecting) gets a new handle, never a handle that
 * is still closing (libuv asserts on that). */
static void poll_release(struct pg *p)
{
    if (p->poll != NULL) {
        uv_poll_stop(p->poll);
        uv_close((uv_handle_t *)p->poll, poll_closed);
        p->poll = NULL;
    }
}

static void poll_for(struct pg *p, int events)
{
    int fd = PQsocket(p->conn);
    if (p->poll != NULL && fd != p->conn_fd) {
        poll_release(p);
    }
    if (p->poll == NULL) {
        uv_poll_t *h = malloc(sizeof *h);
        if (h == NULL || fd < 0 || uv_poll_init(p->loop, h, fd) != 0) {
            free(h);
            pg_conn_drop(p, "cannot watch the postgresql connection");
            return;
        }
        h->data = p;
        p->n_open++;
        p->poll = h;
        p->conn_fd = fd;
    }
    uv_poll_start(p->poll, events, on_poll);
}

/* Releases the connection. The poll handle is closed before the socket (libuv requires it). */
void pg_conn_drop(struct pg *p, const char *why)
{
    uv_timer_stop(&p->deadline);
    poll_release(p);
    if (p->conn != NULL) {
        PQfinish(p->conn);
        p->conn = NULL;
    }
    p->conn_phase = CONN_NONE;
    p->conn_fd = -1;
    if (why != NULL && p->obs.state == HA_PG_RUNNING) {
        p->obs.state = HA_PG_STARTING;
        rpg_fmt(p->state_detail, sizeof p->state_detail, "%s", why);
    }
    if (p->pending_cb != NULL && p->conn_phase == CONN_NONE && why != NULL &&
        p->pending_sql == NULL) {
        /* A control statement was on the wire: it failed with the connection. */
        void (*cb)(struct pg *, int, const char *) = p->pending_cb;
        p->pending_cb = NULL;
        cb(p, RPG_ECONN, why);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct pg *p = t->data;
    pg_conn_drop(p, "postgresql did not answer in time");
}

static void conn_start(struct pg *p)
{
    const struct conf *c = p->conf;
    char host[16] = "", port[8];
    uint16_t pnum = 0;
    conf_parse_addr(c->postgresql.connect_address, host, &pnum);
    rpg_fmt(port, sizeof port, "%u", (unsigned)pnum);
    const char *keys[10], *vals[10];
    int n = 0;
    keys[n] = "host", vals[n++] = host;
    keys[n] = "port", vals[n++] = port;
    keys[n] = "user", vals[n++] = c->postgresql.superuser_name;
    keys[n] = "dbname", vals[n++] = "postgres";
    keys[n] = "application_name", vals[n++] = "raftpg";
    keys[n] = "connect_timeout", vals[n++] = "2";
    if (c->postgresql.superuser_password[0] != '\0') {
        keys[n] = "password", vals[n++] = c->postgresql.superuser_password;
    }
    if (c->postgresql.passfile[0] != '\0') {
        keys[n] = "passfile", vals[n++] = c->postgresql.passfile;
    }
    keys[n] = NULL, vals[n] = NULL;
    p->conn = PQconnectStartParams(keys, vals, 0);
    if (p->conn == NULL || PQstatus(p->conn) == CONNECTION_BAD) {
        pg_conn_drop(p, "cannot connect to postgresql");
        return;
    }
    PQsetnonblocking(p->conn, 1);
    p->conn_phase = CONN_CONNECTING;
    uv_timer_start(&p->deadline, on_deadline, PG_QUERY_TIMEOUT_MS, 0);
    poll_for(p, UV_WRITABLE);
}

static void send_query(struct pg *p, const char *sql)
{
    if (PQsendQuery(p->conn, sql) != 1) {
        char why[RPG_ERRMSG_SIZE];
        rpg_fmt(why, sizeof why, "query failed: %s", PQerrorMessage(p->conn));
        why[strcspn(why, "\n")] = '\0';
        pg_conn_drop(p, why);
        return;
    }
    p->conn_phase = CONN_BUSY;
    p->query_epoch = p->epoch;
    uv_timer_start(&p->deadline, on_deadline, PG_QUERY_TIMEOUT_MS, 0);
    poll_for(p, PQflush(p->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* sql with PASSWORD_MARK replaced by the replication role's SCRAM verifier (made locally, with
 * a fresh salt), or NULL with why set. Asking for the algorithm by name keeps libpq from
 * querying the server on this busy connection; a SCRAM verifier also serves md5 in pg_hba. */
static char *with_password(struct pg *p, const char *sql, char *why, size_t size)
{
    const char *mark = strstr(sql, PASSWORD_MARK);
    if (mark == NULL) {
        return strdup(sql);
    }
    const struct conf *c = p->conf;
    char *verifier = PQencryptPasswordConn(p->conn, c->postgresql.replication_password,
                                           c->postgresql.replication_name, "scram-sha-256");
    if (verifier == NULL) {
        rpg_fmt(why, size, "cannot make the replication password's SCRAM verifier: %s",
                PQerrorMessage(p->conn));
        why[strcspn(why, "\n")] = '\0';
        return NULL;
    }
    size_t head = (size_t)(mark - sql), vlen = strlen(verifier);
    const char *tail = mark + strlen(PASSWORD_MARK);
    char *out = malloc(head + vlen + strlen(tail) + 1);
    if (out != NULL) {
        memcpy(out, sql, head);
        memcpy(out + head, verifier, vlen);
        strcpy(out + head + vlen, tail);
    } else {
        rpg_fmt(why, size, "out of memory");
    }
    PQfreemem(verifier);
    return out;
}

static void parse_replicas(struct pg *p, const char *list)
{
    p->n_replicas = 0;
    char buf[4096];
    rpg_fmt(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL && p->n_replicas < FSM_MEMBERS_MAX;
         item = strtok_r(NULL, ",", &save)) {
        struct pg_replica *r = &p->replicas[p->n_replicas];
        unsigned long long flush = 0, replay = 0;
        char name[FSM_NAME_MAX], state[16], sync[16];
        if (sscanf(item, "%63s %15s %15s %llu %llu", name, state, sync, &flush, &replay) == 5) {
            rpg_fmt(r->name, sizeof r->name, "%s", name);
            rpg_fmt(r->state, sizeof r->state, "%s", state);
            rpg_fmt(r->sync_state, sizeof r->sync_state, "%s", sync);
            r->flush_position = flush;
            r->replay_position = replay;
            p->n_replicas++;
        }
    }
}

/* host:port of a primary_conninfo ("" when it names no host). A host list is shown as given: it
 * matches no member's address, which only makes the promotion wait. */
static void conninfo_target(const char *conninfo, char *buf, size_t size)
{
    buf[0] = '\0';
    if (conninfo[0] == '\0') {
        return;
    }
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        PQfreemem(err);
        rpg_fmt(buf, size, "%s", HA_RECEIVER_UNKNOWN);
        return;
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
        if (strcmp(o->keyword, "host") == 0) {
            host = v;
        } else if (strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = v;
        } else if (strcmp(o->keyword, "port") == 0) {
            port = v;
        }
    }
    host = host != NULL ? host : hostaddr;
    if (host != NULL) {
        rpg_fmt(buf, size, "%s:%s", host, port != NULL ? port : "5432");
    } else {
        rpg_fmt(buf, size, "%s", HA_RECEIVER_UNKNOWN);
    }
    PQconninfoFree(opts);
}

/* Whether the standby replayed its timeline past the point where a newer one forked from it,
 * as the newest timeline history file in its pg_wal (fetched by its WAL receiver from the
 * primary) says. Only while a receiver runs is the observed timeline the one it replays. */
static enum ha_fork_reading fork_reading(struct pg *p)
{
    struct ha_pg *o = &p->obs;
    if (o->receiver[0] == '\0' || strcmp(o->receiver, HA_RECEIVER_UNKNOWN) == 0 ||
        o->timeline == 0) {
        return HA_FORK_UNKNOWN;
    }
    /* The newest history a few timelines ahead; each names every ancestor's end. */
    for (uint32_t t = o->timeline + 32; t > o->timeline; t--) {
        char path[PATH_MAX + 64];
        rpg_fmt(path, sizeof path, "%s/pg_wal/%08X.history", p->conf->postgresql.data_dir, t);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        /* A line per ancestor: 64 KiB holds a thousand timelines. */
        size_t cap = 64 * 1024;
        char *text = malloc(cap);
        size_t n = text != NULL ? fread(text, 1, cap - 1, f) : 0;
        fclose(f);
        if (text == NULL) {
            return HA_FORK_UNKNOWN;
        }
        text[n] = '\0';
        uint64_t lsn = 0;
        int found = pg_history_switchpoint(text, o->timeline, &lsn);
        free(text);
        if (found != 0) {
            return HA_FORK_CLEAR;
        }
        o->fork_timeline = t;
        o->fork_lsn = lsn;
        return o->replay_position > lsn ? HA_FORK_PAST : HA_FORK_CLEAR;
    }
    return HA_FORK_CLEAR;
}

static void take_observation(struct pg *p, PGresult *res)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 19) {
        return;
    }
    struct ha_pg *o = &p->obs;
    o->state = HA_PG_RUNNING;
    o->in_recovery = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    rpg_msec now = uv_now(p->loop);
    if (!o->in_recovery ||
        (p->promote_pending && now - p->promote_asked_at >= PG_PROMOTE_BOUND_MS)) {
        /* Done; or not taken up at all (the request file is gone): it may be asked again. */
        p->promote_pending = false;
    }
    o->promoting = p->promote_pending;
    int checkpointer = atoi(PQgetvalue(res, 0, 17));
    if (!o->in_recovery && p->op != PG_OP_STOP && p->op != PG_OP_REWIND && p->op != PG_OP_CLONE &&
        p->op != PG_OP_REINIT) {
        if (p->primary_pid != 0 && p->primary_pid == p->postmaster_pid &&
            p->primary_checkpointer != 0 && checkpointer != 0 &&
            checkpointer != p->primary_checkpointer) {
            ha_crash_note(&p->crash_log, now);
            o->crashes = ha_crash_count(&p->crash_log, now);
            log_warning("postgresql crashed: the postmaster (pid=%d) that ran as primary "
                        "reinitialized (checkpointer pid=%d, before pid=%d) (%u crashes or failed "
                        "starts within %u s)",
                        p->postmaster_pid, checkpointer, p->primary_checkpointer, o->crashes,
                        (unsigned)(HA_CRASH_WINDOW_MS / 1000));
        }
        p->primary_pid = p->postmaster_pid;
        p->primary_checkpointer = checkpointer;
    }
    o->system_id = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    o->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
    /* A standby's timeline is its WAL receiver's while one runs, else its last restartpoint's,
     * which lags: one that followed a promotion and lost its sender (the new primary stopping
     * for a switchover, say) would look a timeline behind. Within one run of the server, the
     * timeline it replays never goes back, so the highest it reported in this run still holds. */
    const char *started = PQgetvalue(res, 0, 13);
    if (o->in_recovery && strcmp(started, p->run_started) == 0 && p->run_timeline > o->timeline) {
        o->timeline = p->run_timeline;
    }
    rpg_fmt(p->run_started, sizeof p->run_started, "%s", started);
    p->run_timeline = o->timeline;
    o->wal_position = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
    o->replay_position = strtoull(PQgetvalue(res, 0, 11), NULL, 10);
    p->server_version = atoi(PQgetvalue(res, 0, 12));
    rpg_fmt(p->start_time, sizeof p->start_time, "%s", PQgetvalue(res, 0, 13));
    if (!PQgetisnull(res, 0, 18)) {
        char *names = strdup(PQgetvalue(res, 0, 18));
        if (names != NULL) {
            free(p->settings);
            p->settings = names;
            rpg_fmt(p->settings_run, sizeof p->settings_run, "%s", started);
        }
    }
    p->pending_restart = strcmp(PQgetvalue(res, 0, 14), "t") == 0;
    p->replay_paused = strcmp(PQgetvalue(res, 0, 15), "t") == 0;
    rpg_fmt(p->replay_timestamp, sizeof p->replay_timestamp, "%s", PQgetvalue(res, 0, 16));
    o->streaming = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    o->checkpoint_timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 7), NULL, 10);
    rpg_fmt(p->sync_seen, sizeof p->sync_seen, "%s", PQgetvalue(res, 0, 8));
    ha_pg_track_streaming(o, &p->not_streaming_since, now);
    if (p->rejoin.running && p->rejoin.stage == PG_REJOIN_START_STANDBY && p->op == PG_OP_NONE &&
        o->in_recovery && o->streaming) {
        pg_rejoin_set_stage(p, PG_REJOIN_STREAMING, "streaming from %s",
                            o->upstream[0] ? o->upstream : "the primary");
    }
    ha_pg_track_receiver(o, o->in_recovery ? PQgetvalue(res, 0, 9) : "", &p->receiver_since, now);
    ha_pg_track_fork(o, o->in_recovery ? fork_reading(p) : HA_FORK_CLEAR, &p->past_fork_since, now);
    conninfo_target(o->in_recovery ? PQgetvalue(res, 0, 10) : "", o->conninfo, sizeof o->conninfo);
    unsigned retries = o->rewind_retries;
    if (ha_pg_track_rewind_retries(o, &p->rewind_retry_at)) {
        log_info("rejoin: streaming as a standby: pg_rewind's back-off (%u attempt%s stopped "
                 "before changing anything) is over",
                 retries, retries == 1 ? "" : "s");
    }
    o->was_primary = !o->in_recovery;
    o->n_slots = 0;
    char slots[2048];
    rpg_fmt(slots, sizeof slots, "%s", PQgetvalue(res, 0, 5));
    char *save = NULL;
    for (char *s = strtok_r(slots, ",", &save); s != NULL && o->n_slots < HA_SLOTS_MAX;
         s = strtok_r(NULL, ",", &save)) {
        rpg_fmt(o->slots[o->n_slots++], FSM_NAME_MAX, "%s", s);
    }
    parse_replicas(p, o->in_recovery ? "" : PQgetvalue(res, 0, 6));
    p->state_detail[0] = '\0';
    p->obs_valid = true;
    p->obs_epoch = p->query_epoch;
    if (p->promote_pending) {
        uv_timer_start(&p->tick, pg_on_tick, PG_PROMOTE_POLL_MS, TIMING_PG_OBSERVE_INTERVAL_MS);
    }
    if (p->observed_cb != NULL) {
        p->observed_cb(p, p->observed_data);
    }
}

static void on_result(struct pg *p, int kind)
{
    PGresult *res;
    char err[RPG_ERRMSG_SIZE] = "";
    while ((res = PQgetResult(p->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && err[0] == '\0') {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            /* 42710 duplicate_object: the role or slot exists already, which is the goal. */
            if (kind != QUERY_CONTROL || state == NULL || strcmp(state, "42710") != 0) {
                rpg_fmt(err, sizeof err, "%s", PQresultErrorMessage(res));
                err[strcspn(err, "\n")] = '\0';
            }
        } else if (st == PGRES_TUPLES_OK && kind == QUERY_OBSERVE) {
            take_observation(p, res);
        }
        PQclear(res);
    }
    uv_timer_stop(&p->deadline);
    p->conn_phase = CONN_IDLE;
    if (p->poll != NULL) {
        uv_poll_stop(p->poll);
    }
    if (kind == QUERY_CONTROL && p->pending_cb != NULL) {
        void (*cb)(struct pg *, int, const char *) = p->pending_cb;
        p->pending_cb = NULL;
        cb(p, err[0] != '\0' ? RPG_EIO : 0, err);
    } else if (kind == QUERY_OBSERVE && err[0] != '\0') {
        /* A standby that is still starting answers with an error ("starting up"). */
        p->obs.state = HA_PG_STARTING;
        rpg_fmt(p->state_detail, sizeof p->state_detail, "%s", err);
        p->obs_epoch = p->query_epoch;
    }
}

static void poll_step(uv_poll_t *h, int status, int events)
{
    struct pg *p = h->data;
    if (status < 0) {
        pg_conn_drop(p, "postgresql connection error");
        return;
    }
    if (p->conn_phase == CONN_CONNECTING) {
        switch (PQconnectPoll(p->conn)) {
        case PGRES_POLLING_READING: poll_for(p, UV_READABLE); return;
        case PGRES_POLLING_WRITING: poll_for(p, UV_WRITABLE); return;
        case PGRES_POLLING_OK:
            uv_timer_stop(&p->deadline);
            p->conn_phase = CONN_IDLE;
            uv_poll_stop(p->poll);
            pg_observe(p);
            return;
        default: {
            char why[RPG_ERRMSG_SIZE];
            rpg_fmt(why, sizeof why, "cannot connect to postgresql: %s", PQerrorMessage(p->conn));
            why[strcspn(why, "\n")] = '\0';
            if (p->obs.state != HA_PG_RUNNING) {
                rpg_fmt(p->state_detail, sizeof p->state_detail, "%s", why);
            }
            pg_conn_drop(p, why);
            return;
        }
        }
    }
    if (p->conn_phase != CONN_BUSY) {
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(p->conn);
        if (f < 0) {
            pg_conn_drop(p, "postgresql connection lost");
            return;
        }
        if (f == 0) {
            poll_for(p, UV_READABLE);
        }
    }
    if (events & UV_READABLE) {
        if (PQconsumeInput(p->conn) != 1) {
            char why[RPG_ERRMSG_SIZE];
            rpg_fmt(why, sizeof why, "postgresql connection lost: %s", PQerrorMessage(p->conn));
            why[strcspn(why, "\n")] = '\0';
            pg_conn_drop(p, why);
            return;
        }
        if (!PQisBusy(p->conn)) {
            on_result(p, p->busy_kind);
        }
    }
}

/* ---- observation ----------------------------------------------------------------------------- */

static void on_controldata(struct proc *pr, const struct proc_result *res, void *data)
{
    (void)pr;
    struct pg *p = data;
    p->controldata_running = false;
    if (p->closing) {
        return;
    }
    char errmsg[RPG_ERRMSG_SIZE];
    if (!proc_ok(res)) {
        proc_describe(&p->controldata, res, p->state_detail, sizeof p->state_detail);
        /* Only a control file that pg_controldata ran and could not read makes the directory
         * "unreadable" (a copy cut short): the decision function re-clones it. A program that
         * did not run (wrong bin_dir, time-out) says nothing about the data, and must never
         * lead to its removal: the observation stays incomplete and nothing is decided. */
        bool ran = res->spawn_error == 0 && !res->timed_out && res->term_signal == 0;
        if (ran && pg_controldata_cut_short(res->output)) {
            p->obs.state = HA_PG_STOPPED;
            p->obs.system_id = 0;
            p->obs_valid = true;
            p->obs_epoch = p->query_epoch;
            rpg_fmt(p->rejoin_error, sizeof p->rejoin_error, "%s", p->state_detail);
        } else if (ran) {
            /* Permission denied, an I/O error, anything else: reported (the member's detail
             * says it), never repaired by removing the directory. */
            if (!p->controldata_reported) {
                log_error("pg_controldata: %s: the data directory is left as it is",
                          p->state_detail);
                p->controldata_reported = true;
            }
        }
        return;
    }
    p->controldata_reported = false;
    uint64_t sysid = 0;
    uint32_t tl = 0;
    bool was_primary = false;
    if (pg_parse_controldata(res->output, &sysid, &tl, &was_primary, errmsg) != 0) {
        rpg_fmt(p->state_detail, sizeof p->state_detail, "%s", errmsg);
        return;
    }
    p->obs.system_id = sysid;
    p->obs.timeline = tl;
    p->obs.was_primary = was_primary;
    if (pg_parse_checkpoint(res->output, &p->checkpoint_lsn, &p->clean_shutdown) != 0) {
        p->checkpoint_lsn = 0;
        p->clean_shutdown = false;
    }
    p->controldata_valid = true;
    p->obs_valid = true;
    p->obs_epoch = p->query_epoch;
}

static int postmaster_alive(const struct pg *p, char *status, size_t size)
{
    return pg_postmaster_pid_in(p->conf->postgresql.data_dir, status, size);
}

int pg_postmaster_pid(const struct pg *p)
{
    return postmaster_alive(p, NULL, 0);
}

bool pg_may_accept_writes(const struct pg *p)
{
    bool postmaster = pg_postmaster_pid(p) != 0;
    bool promoting = p->op == PG_OP_PROMOTE || p->promote_pending;
    bool primary = p->obs.state == HA_PG_RUNNING && !p->obs.in_recovery;
    /* The file is looked at only when it decides (every fence tick runs this). */
    bool signal = true;
    if (postmaster && !promoting && !primary) {
        char path[PATH_MAX + 32];
        pg_path_in(p, "standby.signal", path, sizeof path);
        signal = pg_file_exists(path);
    }
    return fence_pg_writable(postmaster, promoting, primary, signal);
}

static void set_not_running(struct pg *p, enum ha_pg_state state)
{
    p->promote_pending = false;
    p->receiver_since = 0;
    p->past_fork_since = 0;
    p->obs.past_fork_ms = 0;
    ha_pg_set_not_running(&p->obs, state, &p->not_streaming_since);
    p->n_replicas = 0;
}

/* Below this many free bytes PostgreSQL cannot add a WAL segment (16 MiB by default), and a
 * primary soon PANICs on its next one. */
#define PG_MIN_FREE_BYTES (16ULL << 20)

/* Why a server in dir cannot write, asked of the kernel ("" when it can): the file system of the
 * data directory or of pg_wal (often a mount of its own) read-only or nearly full, the directory
 * not writable for the agent's (the server's) user. */
static void storage_check(const char *dir, char *why, size_t size)
{
    char wal[PATH_MAX + 16];
    rpg_fmt(wal, sizeof wal, "%s/pg_wal", dir);
    const char *paths[] = {dir, wal};
    for (unsigned i = 0; i < 2; i++) {
        struct statvfs st;
        if (statvfs(paths[i], &st) != 0) {
            continue; /* a directory not there yet is another observation's business */
        }
        unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
        if ((st.f_flag & ST_RDONLY) != 0) {
            rpg_fmt(why, size, "the file system of %s is read-only", paths[i]);
            return;
        }
        if (avail < PG_MIN_FREE_BYTES) {
            rpg_fmt(why, size,
                    "the file system of %s has %llu bytes free (less than one WAL "
                    "segment)",
                    paths[i], avail);
            return;
        }
        if (access(paths[i], W_OK) != 0) {
            rpg_fmt(why, size, "%s is not writable: %s", paths[i], strerror(errno));
            return;
        }
    }
    rpg_fmt(why, size, "%s", pg_storage_error);
}

/* The back-off after a rewind that stopped before changing anything: 1 s, doubling, 30 s at
 * most, so that a source that stays unusable (a wrong password, say) is asked twice a minute,
 * not ten times a second; the count shows on /status until a rejoin succeeds. */
#define REWIND_RETRY_FIRST_MS 1000
#define REWIND_RETRY_MAX_MS 30000

rpg_msec pg_rewind_retry_delay(unsigned retries)
{
    rpg_msec d = REWIND_RETRY_FIRST_MS;
    for (unsigned i = 1; i < retries && d < REWIND_RETRY_MAX_MS; i++) {
        d *= 2;
    }
    return d < REWIND_RETRY_MAX_MS ? d : REWIND_RETRY_MAX_MS;
}

void pg_rewind_retry_left(struct pg *p)
{
    rpg_msec now = uv_now(p->loop);
    p->obs.rewind_retry_ms = p->rewind_retry_at > now ? p->rewind_retry_at - now : 0;
}

/* A postmaster that served as a primary and is gone or replaced, while no operation of the
 * agent stopped it (those forget it first), crashed: the process table says so, whatever
 * restarted it since. */
static void track_crash(struct pg *p)
{
    rpg_msec now = uv_now(p->loop);
    if (p->primary_pid != 0 && p->postmaster_pid != p->primary_pid) {
        ha_crash_note(&p->crash_log, now);
        log_warning("postgresql crashed: the postmaster (pid=%d) that ran as primary is %s (%u "
                    "crashes or failed starts within %u s)",
                    p->primary_pid, p->postmaster_pid == 0 ? "gone" : "replaced",
                    ha_crash_count(&p->crash_log, now), (unsigned)(HA_CRASH_WINDOW_MS / 1000));
        p->primary_pid = 0;
    }
    p->obs.crashes = ha_crash_count(&p->crash_log, now);
}

void pg_observe(struct pg *p)
{
    if (p->closing) {
        return;
    }
    pg_rewind_retry_left(p);
    char path[PATH_MAX + 32], status[32];
    char unwritable[HA_WHY_MAX] = "";
    if (p->rejoin.stage == PG_REJOIN_CLONE && p->proc.running) {
        /* pg_basebackup reports at most once a second: the latest report is in the last lines. */
        char tail[1024];
        proc_output_peek(&p->proc, tail, sizeof tail);
        pg_basebackup_progress(tail, &p->rejoin.done_kb, &p->rejoin.total_kb);
    }
    storage_check(p->conf->postgresql.data_dir, unwritable, sizeof unwritable);
    /* Logged when it starts and ends, not for every change of the free bytes. */
    if ((unwritable[0] == '\0') != (p->obs.unwritable[0] == '\0')) {
        if (unwritable[0] != '\0') {
            log_warning("postgresql cannot write: %s", unwritable);
        } else {
            log_info("postgresql can write again");
        }
    }
    ha_pg_track_unwritable(&p->obs, unwritable, &p->unwritable_since, uv_now(p->loop));
    pg_path_in(p, "PG_VERSION", path, sizeof path);
    if (!pg_file_exists(path)) {
        if (p->conn != NULL) {
            pg_conn_drop(p, NULL);
        }
        set_not_running(p, HA_PG_ABSENT);
        p->obs.system_id = 0;
        p->obs.timeline = 0;
        p->obs.was_primary = false;
        p->controldata_valid = false;
        p->postmaster_pid = 0;
        p->obs_valid = true;
        p->obs_epoch = p->epoch;
        return;
    }
    p->postmaster_pid = postmaster_alive(p, status, sizeof status);
    track_crash(p);
    if (p->postmaster_pid == 0) {
        if (p->conn != NULL) {
            pg_conn_drop(p, NULL);
        }
        set_not_running(p, HA_PG_STOPPED);
        if (p->controldata_valid) {
            p->obs_valid = true;
            p->obs_epoch = p->epoch;
        } else if (!p->controldata_running && p->op == PG_OP_NONE) {
            char bin[PATH_MAX + 32], errmsg[RPG_ERRMSG_SIZE];
            rpg_fmt(bin, sizeof bin, "%s/pg_controldata", p->conf->postgresql.bin_dir);
            char *argv[] = {bin, "-D", (char *)p->conf->postgresql.data_dir, NULL};
            char *env[] = {"LC_ALL=C", NULL};
            if (proc_run(&p->controldata, p->loop, argv, env, 10000, on_controldata, p, errmsg) ==
                0) {
                p->controldata_running = true;
                p->query_epoch = p->epoch;
            }
        }
        return;
    }
    p->controldata_valid = false;
    if (p->obs.state != HA_PG_RUNNING) {
        /* Up but not answering yet: that much is a complete observation. */
        p->obs.state = HA_PG_STARTING;
        p->obs_valid = true;
        if (p->conn_phase == CONN_NONE) {
            p->obs_epoch = p->epoch;
        }
    }
    switch (p->conn_phase) {
    case CONN_NONE: conn_start(p); break;
    case CONN_IDLE:
        if (p->pending_sql != NULL) {
            char why[RPG_ERRMSG_SIZE] = "";
            char *sql = with_password(p, p->pending_sql, why, sizeof why);
            free(p->pending_sql);
            p->pending_sql = NULL;
            if (sql == NULL) {
                if (p->pending_cb != NULL) {
                    void (*cb)(struct pg *, int, const char *) = p->pending_cb;
                    p->pending_cb = NULL;
                    cb(p, RPG_EIO, why);
                }
                break;
            }
            p->busy_kind = QUERY_CONTROL;
            send_query(p, sql);
            free(sql);
        } else {
            static char plain[sizeof OBSERVE_SQL + sizeof OBSERVE_NO_SETTINGS];
            static char settings[sizeof OBSERVE_SQL + sizeof OBSERVE_SETTINGS];
            if (plain[0] == '\0') {
                rpg_fmt(plain, sizeof plain, "%s%s", OBSERVE_SQL, OBSERVE_NO_SETTINGS);
                rpg_fmt(settings, sizeof settings, "%s%s", OBSERVE_SQL, OBSERVE_SETTINGS);
            }
            bool stale = p->settings == NULL || strcmp(p->settings_run, p->run_started) != 0;
            p->busy_kind = QUERY_OBSERVE;
            send_query(p, stale ? settings : plain);
        }
        break;
    default: break;
    }
}

void pg_on_tick(uv_timer_t *t)
{
    LOOPWATCH_SPAN("postgresql observe", pg_observe(t->data));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    LOOPWATCH_SPAN("postgresql connection", poll_step(h, status, events));
}
