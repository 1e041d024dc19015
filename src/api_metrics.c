/* api: GET /metrics in the Prometheus text format, and the request counters it shows
 * (api_int.h). */
#include "api_int.h"

#include <limits.h>
#include <sys/statvfs.h>
#include <time.h>

#include "raftpg/loopwatch.h"
#include "raftpg/transport.h"

/* ---- metrics (Prometheus text format 0.0.4) -------------------------------------------------- */

static void metric(FILE *f, const char *name, const char *type, const char *help,
                   const char *labels, double value)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help, name, type, name, labels,
            value);
}

static double dir_free_bytes(const char *dir)
{
    struct statvfs st;
    return statvfs(dir, &st) == 0 ? (double)st.f_bavail * (double)st.f_frsize : -1;
}

/* ---- request counters -------------------------------------------------------------------- */

static const int api_statuses[API_STATUSES] = {200, 201, 202, 400, 401, 403, 404, 405, 409,
                                               412, 413, 414, 415, 422, 431, 500, 503, 504};

void api_answered(void *data, const struct http_request *req, int status)
{
    struct agent *a = data;
    /* Paths outside the route table's (scanners' guesses, say) are "other", so that the label
     * set stays bounded whatever clients send. */
    unsigned e = api_endpoint_of(req->path), s = API_STATUSES;
    for (unsigned i = 0; i < API_STATUSES; i++) {
        if (api_statuses[i] == status) {
            s = i;
            break;
        }
    }
    a->api_answers[e][s]++;
}

static void api_answers_metric(const struct agent *a, FILE *f, const char *labels)
{
    fprintf(f, "# HELP raftpg_api_requests_total API requests answered, by endpoint and status.\n"
               "# TYPE raftpg_api_requests_total counter\n");
    for (unsigned e = 0; e <= API_ENDPOINTS; e++) {
        for (unsigned s = 0; s <= API_STATUSES; s++) {
            if (a->api_answers[e][s] == 0) {
                continue;
            }
            char status[8];
            if (s < API_STATUSES) {
                snprintf(status, sizeof status, "%d", api_statuses[s]);
            } else {
                snprintf(status, sizeof status, "other");
            }
            fprintf(f, "raftpg_api_requests_total{%s,endpoint=\"%s\",status=\"%s\"} %llu\n", labels,
                    api_endpoint_name(e), status, (unsigned long long)a->api_answers[e][s]);
        }
    }
}

/* The loop-stall detector's counters (loopwatch.h): how often the loop thread was held past the
 * bound, in which phase, and where the held time went. Absent without a watcher. */
static void loop_stall_metrics(FILE *f, const char *labels)
{
    const struct loopwatch *w = loopwatch_current();
    if (w == NULL) {
        return;
    }
    fprintf(f,
            "# HELP raftpg_loop_stalls_total Loop phases that held the loop thread longer than "
            "%d ms, by phase.\n# TYPE raftpg_loop_stalls_total counter\n",
            LOOPWATCH_BOUND_MS);
    fprintf(f, "raftpg_loop_stalls_total{%s,phase=\"timers\"} %llu\n", labels,
            (unsigned long long)w->n_stalls_phase[LOOPWATCH_PHASE_TIMERS]);
    fprintf(f, "raftpg_loop_stalls_total{%s,phase=\"poll\"} %llu\n", labels,
            (unsigned long long)w->n_stalls_phase[LOOPWATCH_PHASE_POLL]);
    const struct {
        const char *cause;
        uint64_t ns;
    } held[] = {{"cpu", w->held.cpu_ns},
                {"runqueue", w->held.runq_ns},
                {"blocked", w->held.blocked_ns},
                {"unknown", w->held.unknown_ns}};
    fprintf(f, "# HELP raftpg_loop_stall_seconds_total Time those phases held the loop thread, by "
               "where it went: running, waiting for a CPU, blocked or stopped.\n"
               "# TYPE raftpg_loop_stall_seconds_total counter\n");
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
        fprintf(f, "raftpg_loop_stall_seconds_total{%s,cause=\"%s\"} %.17g\n", labels,
                held[i].cause, (double)held[i].ns / 1e9);
    }
    metric(f, "raftpg_loop_stall_max_seconds", "gauge",
           "The longest time one loop phase held the loop thread since the agent started.", labels,
           (double)w->max_ns / 1e9);
}

/* The least round trip of each peer's last polls, and whether it is too long for the election
 * timeout (peer_book.h). A peer not answered yet is left out. */
static void peer_rtt_metrics(const struct agent *a, FILE *f, const char *labels)
{
    if (!a->peers_open) {
        return;
    }
    const struct peer_book *b = &a->peers.book;
    fprintf(f,
            "# HELP raftpg_peer_rtt_seconds The least round trip of the last %d answered polls "
            "of each peer.\n# TYPE raftpg_peer_rtt_seconds gauge\n",
            PEER_RTT_SAMPLES);
    for (unsigned i = 0; i < b->n_results; i++) {
        if (b->results[i].rtt_n > 0) {
            fprintf(f, "raftpg_peer_rtt_seconds{%s,peer=\"%s\"} %.17g\n", labels,
                    b->results[i].name, (double)b->results[i].rtt_min_ms / 1000.0);
        }
    }
    fprintf(f, "# HELP raftpg_peer_rtt_slow Value is 1 while that round trip is above a sixth of "
               "the election timeout.\n# TYPE raftpg_peer_rtt_slow gauge\n");
    for (unsigned i = 0; i < b->n_results; i++) {
        if (b->results[i].rtt_n > 0) {
            fprintf(f, "raftpg_peer_rtt_slow{%s,peer=\"%s\"} %d\n", labels, b->results[i].name,
                    b->results[i].rtt_slow ? 1 : 0);
        }
    }
}

/* A timestamptz as PostgreSQL writes it in the ISO style ("2026-01-02 03:04:05.678+01",
 * "...+05:30"), in Unix seconds; 0 for "" or anything else. */
static double pg_time_epoch(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    double sec = 0;
    int n = 0;
    if (sscanf(text, "%d-%d-%d %d:%d:%lf%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &sec, &n) != 6 ||
        (text[n] != '+' && text[n] != '-')) {
        return 0;
    }
    int sign = text[n] == '-' ? -1 : 1;
    int oh = 0, om = 0, os = 0;
    if (sscanf(text + n + 1, "%d:%d:%d", &oh, &om, &os) < 1) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = 0;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return 0;
    }
    return (double)t + sec - sign * (double)(oh * 3600 + om * 60 + os);
}

/* "1.2.3" as Patroni's patroni_version writes a version: two digits a part (010203). */
static double padded_version(const char *v)
{
    unsigned major = 0, minor = 0, patch = 0;
    (void)sscanf(v, "%u.%u.%u", &major, &minor, &patch);
    return (double)(major % 100) * 10000 + (double)(minor % 100) * 100 + (double)(patch % 100);
}

/* Adds this member's promotions the replicated history recorded since the last count. */
static void promotions_count(struct agent *a)
{
    const struct fsm_state *s = &a->cons.state;
    if (!a->cons_open) {
        return;
    }
    for (unsigned i = 0; i < s->n_history; i++) {
        const struct fsm_history_entry *e = &s->history[i];
        if (e->timeline <= a->promotions_timeline) {
            continue;
        }
        a->promotions_timeline = e->timeline;
        if (strcmp(e->primary, a->conf.name) == 0 && e->reason < FSM_HISTORY_REASON_MAX) {
            a->promotions[e->reason]++;
        }
    }
}

/* Patroni's names where Patroni has one (dashboards and alerts carry over), raftpg_* for the
 * rest. Every value is this member's own view. */
void api_respond_metrics(struct agent *a, struct http_conn *conn)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    /* Scope and name are [A-Za-z0-9_.-] by configuration: nothing to escape in a label. */
    char labels[2 * CONF_NAME_MAX + 32];
    snprintf(labels, sizeof labels, "scope=\"%s\",name=\"%s\"", a->conf.scope, a->conf.name);
    const struct ha_pg *o = &a->pg.obs;
    bool pg = a->conf.has_postgresql && a->pg_open;
    bool running = pg && o->state == HA_PG_RUNNING;
    bool leader = a->cons_open && a->cons.role == CONS_ROLE_LEADER;
    metric(f, "patroni_version", "gauge",
           "raftpg's version, two digits a part without periods (0.1.0 is 000100).", labels,
           padded_version(RAFTPG_VERSION));
    metric(f, "patroni_postgres_running", "gauge",
           "Value is 1 if PostgreSQL is running, 0 otherwise.", labels, running);
    metric(f, "patroni_postmaster_start_time", "gauge",
           "Unix time PostgreSQL's postmaster started (0 if not running).", labels,
           running ? pg_time_epoch(a->pg.start_time) : 0);
    metric(f, "patroni_postgres_server_version", "gauge",
           "PostgreSQL's server_version_num if running, 0 otherwise.", labels,
           running ? a->pg.server_version : 0);
    /* raftpg runs no standby cluster: never a standby leader. */
    metric(f, "patroni_standby_leader", "gauge",
           "Value is 1 if this node is a standby leader (raftpg has none), 0 otherwise.", labels,
           0);
    {
        bool standby = running && o->in_recovery;
        const char *rs =
            health_replication_state(o->streaming, pg_restore_command(&a->conf)[0] != '\0');
        metric(f, "patroni_postgres_streaming", "gauge",
               "Value is 1 if this standby streams WAL from its upstream, 0 otherwise.", labels,
               standby && rs != NULL && strcmp(rs, "streaming") == 0);
        metric(f, "patroni_postgres_in_archive_recovery", "gauge",
               "Value is 1 if this standby does not stream and replays from the archive "
               "(restore_command), 0 otherwise.",
               labels, standby && rs != NULL && strcmp(rs, "in archive recovery") == 0);
        metric(f, "patroni_xlog_replayed_timestamp", "gauge",
               "Unix time of the last transaction this standby replayed (0 on a primary or "
               "none).",
               labels, standby ? pg_time_epoch(a->pg.replay_timestamp) : 0);
    }
    promotions_count(a);
    fprintf(f, "# HELP raftpg_promotions_total Promotions of this member's PostgreSQL the "
               "cluster's history recorded, by reason.\n"
               "# TYPE raftpg_promotions_total counter\n");
    for (int r = 0; r < FSM_HISTORY_REASON_MAX; r++) {
        fprintf(f, "raftpg_promotions_total{%s,reason=\"%s\"} %llu\n", labels,
                fsm_history_reason_name(r), (unsigned long long)a->promotions[r]);
    }
    metric(f, "patroni_primary", "gauge",
           "Value is 1 if this node is the leader and its PostgreSQL is a primary, 0 otherwise.",
           labels, leader && running && !o->in_recovery);
    metric(f, "patroni_replica", "gauge",
           "Value is 1 if PostgreSQL runs as a standby, 0 otherwise.", labels,
           running && o->in_recovery);
    /* Patroni 4's meaning, as the /sync and /quorum checks: every voter needed (k = n) makes
     * synchronous standbys, fewer quorum standbys. */
    const struct fsm_state *sst = &a->cons.state;
    enum health_standby kind = api_own_standby_kind(a);
    metric(f, "patroni_sync_standby", "gauge",
           "Value is 1 if this node is a synchronous standby (in the recorded set, k equal to the "
           "number of voters), 0 otherwise.",
           labels, kind == HEALTH_STANDBY_SYNC);
    metric(f, "patroni_quorum_standby", "gauge",
           "Value is 1 if this node is a quorum standby (in the recorded set, k below the number "
           "of voters), 0 otherwise.",
           labels, kind == HEALTH_STANDBY_QUORUM);
    metric(f, "patroni_xlog_location", "counter",
           "Current WAL position of the primary (bytes), 0 on a standby.", labels,
           running && !o->in_recovery ? (double)o->wal_position : 0);
    metric(f, "patroni_xlog_received_location", "counter",
           "WAL position received or replayed by a standby (bytes), 0 on a primary.", labels,
           running && o->in_recovery ? (double)o->wal_position : 0);
    metric(f, "patroni_xlog_replayed_location", "counter",
           "WAL position replayed by a standby (bytes), 0 on a primary.", labels,
           running && o->in_recovery ? (double)o->replay_position : 0);
    metric(f, "patroni_postgres_timeline", "gauge",
           "Postgres timeline of this node (if running), 0 otherwise.", labels,
           pg ? o->timeline : 0);
    metric(f, "patroni_xlog_paused", "gauge",
           "Value is 1 if WAL replay is paused on this standby, 0 otherwise.", labels,
           running && o->in_recovery && a->pg.replay_paused);
    metric(f, "patroni_pending_restart", "gauge",
           "Value is 1 if PostgreSQL has a setting waiting for a restart, 0 otherwise.", labels,
           running && a->pg.pending_restart);
    metric(f, "patroni_is_paused", "gauge",
           "Value is 1 if the cluster is in maintenance (paused), 0 otherwise.", labels,
           a->cons_open && sst->initialized && sst->paused);
    {
        /* Patroni's "last contact with the DCS": here, with the Raft leader (Unix time). */
        rpg_msec now = cons_uv_clock_ms();
        double seen = 0;
        if (a->cons_open && a->cons.role == CONS_ROLE_LEADER) {
            seen = (double)time(NULL);
        } else if (a->cons_open && a->cons.last_heard_leader != 0 &&
                   now >= a->cons.last_heard_leader) {
            seen = (double)time(NULL) - (double)(now - a->cons.last_heard_leader) / 1000.0;
        }
        metric(f, "patroni_dcs_last_seen", "gauge",
               "Unix time of the last contact with the Raft leader (0 never).", labels, seen);
        rpg_msec until = a->cons_open ? cons_lease_until(&a->cons) : 0;
        metric(f, "raftpg_lease_remaining_seconds", "gauge",
               "Seconds left on this member's primary lease (0 without one).", labels,
               a->fm.lease_ok && until > now ? (double)(until - now) / 1000.0 : 0);
    }
    metric(f, "raftpg_sync_k", "gauge", "Recorded synchronous quorum k (ANY k of the voters).",
           labels, a->cons_open ? sst->sync.k : 0);
    metric(f, "raftpg_sync_voters", "gauge", "Members in the recorded synchronous set.", labels,
           a->cons_open ? sst->sync.n_voters : 0);
    {
        int mode, commit;
        unsigned want;
        bool recorded;
        api_config_in_force(a, &mode, &want, &commit, &recorded);
        metric(f, "raftpg_sync_degraded", "gauge",
               "Value is 1 while synchronous replication is wanted but recorded as k=0 "
               "(asynchronous).",
               labels,
               a->cons_open && sst->initialized && mode != SYNC_MODE_OFF && sst->sync.k == 0);
    }
    metric(f, "raftpg_vip_held", "gauge", "Value is 1 while this member holds the write VIP.",
           labels, a->conf.has_vip && a->vip_open && vip_is_held(&a->vip));
    if (a->callbacks_open) {
        metric(f, "raftpg_callbacks_total", "counter", "postgresql.callbacks run to their end.",
               labels, a->callbacks.n_runs);
        metric(f, "raftpg_callbacks_failed_total", "counter",
               "postgresql.callbacks that failed, timed out or were killed.", labels,
               a->callbacks.n_failed);
    }
    if (running && !o->in_recovery && a->pg.n_replicas > 0) {
        /* Per standby, from pg_stat_replication on this primary: bytes not yet replayed. */
        fprintf(f, "# HELP raftpg_standby_replay_lag_bytes WAL bytes a connected standby has not "
                   "replayed yet.\n"
                   "# TYPE raftpg_standby_replay_lag_bytes gauge\n");
        for (unsigned i = 0; i < a->pg.n_replicas; i++) {
            const struct pg_replica *r = &a->pg.replicas[i];
            if (api_check_name(r->name) != 0) {
                continue; /* application_name is the client's word: only member-like names */
            }
            fprintf(f, "raftpg_standby_replay_lag_bytes{%s,standby=\"%s\"} %.17g\n", labels,
                    r->name,
                    o->wal_position > r->replay_position
                        ? (double)(o->wal_position - r->replay_position)
                        : 0.0);
        }
    }
    metric(f, "patroni_cluster_unlocked", "gauge",
           "Value is 1 if no member is recorded as primary (or the state is not known yet), 0 "
           "otherwise.",
           labels, !(a->cons_open && sst->initialized) || sst->primary.name[0] == '\0');
    metric(f, "raftpg_raft_leader", "gauge", "Value is 1 if this member is the Raft leader.",
           labels, leader);
    metric(f, "raftpg_raft_term", "counter", "Current Raft term.", labels,
           a->cons_open ? (double)a->cons.term : 0);
    metric(f, "raftpg_raft_commit_index", "counter", "Raft commit index.", labels,
           (double)cons_commit_index(&a->cons));
    metric(f, "raftpg_raft_applied_index", "counter", "Raft index applied to the replicated state.",
           labels, (double)cons_applied_index(&a->cons));
    metric(f, "raftpg_lease_held", "gauge", "Value is 1 while this member holds the primary lease.",
           labels, a->fm.lease_ok);
    {
        /* Submit to commit of the barriers that renew the lease (every ET/4; the lease is
         * 0.8 ET from the submission): how much of it a renewal uses. */
        const struct cons *c = &a->cons;
        fprintf(f, "# HELP raftpg_lease_renewal_seconds Time from submitting a lease barrier to "
                   "its commit (millisecond resolution; the barrier path only, see "
                   "raftpg_lease_renewals_total).\n"
                   "# TYPE raftpg_lease_renewal_seconds histogram\n");
        uint64_t cum = 0;
        for (unsigned i = 0; i < CONS_LEASE_BUCKETS; i++) {
            cum += c->lease_stats.bucket[i];
            fprintf(f, "raftpg_lease_renewal_seconds_bucket{%s,le=\"%g\"} %llu\n", labels,
                    cons_lease_bucket_ms[i] / 1000.0, (unsigned long long)cum);
        }
        fprintf(f, "raftpg_lease_renewal_seconds_bucket{%s,le=\"+Inf\"} %llu\n", labels,
                (unsigned long long)c->lease_stats.count);
        fprintf(f, "raftpg_lease_renewal_seconds_sum{%s} %.17g\n", labels,
                (double)c->lease_stats.sum_ms / 1000.0);
        fprintf(f, "raftpg_lease_renewal_seconds_count{%s} %llu\n", labels,
                (unsigned long long)c->lease_stats.count);
        fprintf(f,
                "# HELP raftpg_lease_renewals_total Renewals that extended the lease: a lease "
                "barrier committed (via=barrier) or a majority of voters answered a lease echo "
                "(via=echo).\n"
                "# TYPE raftpg_lease_renewals_total counter\n"
                "raftpg_lease_renewals_total{%s,via=\"barrier\"} %llu\n"
                "raftpg_lease_renewals_total{%s,via=\"echo\"} %llu\n",
                labels, (unsigned long long)c->lease_stats.via_barrier, labels,
                (unsigned long long)c->lease_stats.via_echo);
        fprintf(f,
                "# HELP raftpg_lease_echoes_total Lease echo probes this member sent as leader, "
                "by answer (yes, no, failed: no answer, an error, or a proof that does not "
                "verify).\n"
                "# TYPE raftpg_lease_echoes_total counter\n"
                "raftpg_lease_echoes_total{%s,answer=\"yes\"} %llu\n"
                "raftpg_lease_echoes_total{%s,answer=\"no\"} %llu\n"
                "raftpg_lease_echoes_total{%s,answer=\"failed\"} %llu\n",
                labels, (unsigned long long)a->echo.n_yes, labels, (unsigned long long)a->echo.n_no,
                labels, (unsigned long long)a->echo.n_failed);
        metric(f, "raftpg_lease_echoes_refused_total", "counter",
               "Lease echo probes this member refused as a voter: unsigned, a proof that does not "
               "verify, or not newer than one taken (a replay).",
               labels, (double)a->echo.n_refused);
        rpg_msec now = cons_uv_clock_ms();
        metric(f, "raftpg_lease_renewal_max_seconds", "gauge",
               "Longest lease barrier commit of the last one to two minutes.", labels,
               (double)cons_lease_renewal_max(c, now) / 1000.0);
        metric(f, "raftpg_raft_candidate_seconds", "gauge",
               "How long this member has been a Raft candidate without winning (0 when it is "
               "not one).",
               labels, a->cons_open ? (double)cons_candidate_for(c, now) / 1000.0 : 0);
        metric(f, "raftpg_raft_candidate_warnings_total", "counter",
               "Warnings of a member that stayed candidate (one per 10 election timeouts).", labels,
               c->n_candidate_warnings);
    }
    metric(f, "raftpg_fences_total", "counter", "Fences of this member's PostgreSQL.", labels,
           a->fm.n_fences);
    metric(f, "raftpg_fence_pauses_total", "counter",
           "Soft-layer pauses (SIGSTOP) of this member's PostgreSQL.", labels, a->fm.n_freezes);
    metric(f, "raftpg_loop_gaps_total", "counter",
           "Gaps between fence ticks longer than the bound (the lease then waits for a fresh "
           "barrier).",
           labels, a->fm.clock.n_gaps);
    loop_stall_metrics(f, labels);
    peer_rtt_metrics(a, f, labels);
    struct transport_stats ts;
    transport_get_stats(&ts);
    metric(f, "raftpg_raft_transport_accepted_total", "counter", "Incoming Raft connections.",
           labels, (double)ts.accepted);
    metric(f, "raftpg_raft_transport_authenticated_total", "counter",
           "Raft handshakes that succeeded.", labels, (double)ts.authenticated);
    metric(f, "raftpg_raft_transport_refused_total", "counter",
           "Incoming Raft connections closed by a failed handshake or frame.", labels,
           (double)ts.rejected);
    metric(f, "raftpg_raft_transport_timed_out_total", "counter",
           "Incoming Raft connections closed for an unfinished handshake.", labels,
           (double)ts.timed_out);
    metric(f, "raftpg_raft_storage_failing", "gauge",
           "Value is 1 while the Raft directory cannot persist.", labels,
           a->cons_open && a->cons.storage.failed);
    metric(f, "raftpg_raft_state_diverged", "gauge",
           "Value is 1 when this member's replicated state differs from the others'.", labels,
           a->cons_open && a->cons.diverged);
    metric(f, "raftpg_raft_dir_free_bytes", "gauge",
           "Free bytes in the Raft directory's file system (-1 unknown).", labels,
           dir_free_bytes(a->conf.raft.data_dir));
    api_answers_metric(a, f, labels);
    int64_t cert_not_after, crl_next_update;
    http_server_tls_times(&a->api, &cert_not_after, &crl_next_update);
    if (cert_not_after >= 0) {
        metric(f, "raftpg_tls_certificate_expiry_timestamp_seconds", "gauge",
               "When the API's server certificate (restapi.certfile) expires, in Unix time.",
               labels, (double)cert_not_after);
    }
    if (crl_next_update >= 0) {
        metric(f, "raftpg_tls_crl_next_update_timestamp_seconds", "gauge",
               "The least nextUpdate of the API's revocation lists in force (restapi.crlfile), in "
               "Unix time.",
               labels, (double)crl_next_update);
    }
    if (a->conf.has_postgresql) {
        char wal[PATH_MAX + 16];
        snprintf(wal, sizeof wal, "%s/pg_wal", a->conf.postgresql.data_dir);
        metric(f, "raftpg_data_dir_free_bytes", "gauge",
               "Free bytes in the data directory's file system (-1 unknown).", labels,
               dir_free_bytes(a->conf.postgresql.data_dir));
        metric(f, "raftpg_wal_dir_free_bytes", "gauge",
               "Free bytes in pg_wal's file system (-1 unknown).", labels, dir_free_bytes(wal));
        metric(f, "raftpg_postgres_unwritable", "gauge",
               "Value is 1 while PostgreSQL cannot write (see /status unwritable).", labels,
               pg && o->unwritable[0] != '\0');
        metric(f, "raftpg_postgres_crashes", "gauge",
               "Crashes of PostgreSQL as primary and failed starts in the last 60 s (see /status "
               "crashes).",
               labels, pg ? o->crashes : 0);
        metric(f, "raftpg_postgres_down_seconds", "gauge",
               "How long the primary's PostgreSQL has not run as a primary that accepts "
               "connections (0: it does; see /status down_ms).",
               labels, pg && o->down ? (double)o->down_ms / 1000.0 : 0);
        metric(f, "raftpg_primary_start_timeout_seconds", "gauge",
               "primary_start_timeout: how long the primary's PostgreSQL may be down before "
               "another member takes over.",
               labels, (double)a->conf.primary_start_timeout_s);
        metric(f, "raftpg_primary_start_timeout_handovers_total", "counter",
               "Hand-overs this agent began because its PostgreSQL was down past "
               "primary_start_timeout.",
               labels, (double)a->n_start_timeouts);
    }
    fclose(f);
    if (buf == NULL) {
        api_respond_error(conn, 500, "out of memory");
        return;
    }
    http_respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
}
