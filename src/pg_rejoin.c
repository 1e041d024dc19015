/* pg: the rejoin pipeline (pg.h enum pg_rejoin_stage): its stages' bookkeeping, the rewind's
 * steps (pg_controldata, crash recovery, the source's checkpoint, pg_rewind, the timeline
 * check), and a data directory moved aside or removed before a clone. */
#include "pg_int.h"

/* ---- the rejoin pipeline's bookkeeping (pg.h enum pg_rejoin_stage) --------------------------- */

void pg_rejoin_begin(struct pg *p)
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
void pg_rejoin_failed(struct pg *p, const char *msg)
{
    if (!p->rejoin.running) {
        return;
    }
    p->rejoin.running = false;
    rpg_fmt(p->rejoin.error, sizeof p->rejoin.error, "%s", msg);
    log_warning("rejoin: %s failed after %llu ms: %s", pg_rejoin_stage_name(p->rejoin.stage),
                (unsigned long long)(uv_now(p->loop) - p->rejoin.since), msg);
}

/* Moves the data directory aside (DATA_DIR.aside, with DATA_DIR.aside.reason saying why) so that
 * it can be cloned again without losing anything: only once, as a second one would need the
 * operator to look at the first. Refused while a postmaster runs in it. */
int pg_move_aside(struct pg *p, char *errmsg)
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
int pg_remove_data_dir(struct pg *p)
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
    return pg_run(p, argv, 600000);
}

/* Runs pg_controldata on the data directory (CHECK, VERIFY_TIMELINE); its output is read from
 * p->proc.output at the next step. */
int pg_run_controldata(struct pg *p)
{
    char bin[PATH_MAX + 32];
    pg_bin_path(p, "pg_controldata", bin, sizeof bin);
    char *argv[] = {bin, "-D", (char *)p->conf->postgresql.data_dir, NULL};
    return pg_run(p, argv, 60000);
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
    pg_bin_path(p, "psql", bin, sizeof bin);
    char *argv[] = {bin,  "-X", "-q", "-A",        "-t", "-v", "ON_ERROR_STOP=1",
                    "-d", ci,   "-c", (char *)sql, NULL};
    if (pg_run(p, argv, timeout_ms) != 0) {
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
int pg_rewind_step(struct pg *p, char *errmsg)
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
            pg_bin_path(p, "postgres", bin, sizeof bin);
            char *argv[] = {bin,         "--single",
                            "-D",        dd,
                            "-c",        "archive_mode=on",
                            "-c",        "archive_command=false",
                            "template1", NULL};
            if (pg_run(p, argv, REWIND_TIMEOUT_MS) != 0) {
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
            pg_bin_path(p, "pg_rewind", bin, sizeof bin);
            pg_rewind_args(c, bin, src, argv);
            pg_rejoin_set_stage(p, PG_REJOIN_REWIND, "pg_rewind from %s (%s) on timeline %u%s",
                                p->upstream.name, p->upstream.address, p->rejoin.source_timeline,
                                pg_restore_command(c)[0] != '\0' ? ", --restore-target-wal" : "");
            log_info("rewind: pg_rewind from %s (%s)", p->upstream.name, p->upstream.address);
            if (pg_run(p, argv, REWIND_TIMEOUT_MS) != 0) {
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
        if (pg_run_controldata(p) != 0) {
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
        pg_op_step(p, 0, NULL);
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
        pg_drop_stale_locks(p);
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
        if (pg_run_controldata(p) != 0) {
            return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
        }
        return 1;
    }
    }
}
