/* pg: the control operations' steps (op_step) and the calls that begin them (pg.h). Each
 * operation is a sequence of steps in op_step's switch; a table of named plans is what would
 * take them apart. */
#include "pg_int.h"

/* Each operation is a short sequence of steps; a step that starts something returns and the
 * completion calls op_step again with the outcome. */
void pg_op_step(struct pg *p, int rc, const char *msg)
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
        pg_boot_fail_step(p, step);
        return;
    }
    if (rc != 0 && p->op == PG_OP_BOOTSTRAP && pg_boot_all_or_nothing(p) && step > BOOT_CREATE) {
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
        pg_boot_fail(p, why);
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
            pg_op_finish(p, 0, NULL);
            return;
        }
        if (p->op == PG_OP_STOP && step == 1) {
            /* Fast shutdown did not finish within its bound: escalate. */
            pg_bin_path(p, "pg_ctl", bin, sizeof bin);
            char *argv[] = {bin, "stop", "-D", dd, "-m", "immediate", "-w", "-t", "30", "-s", NULL};
            log_warning("fast shutdown failed (%s): stopping postgresql immediately", msg);
            if (pg_run(p, argv, 40000) == 0) {
                return;
            }
            msg = p->op_error;
        }
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", msg);
        pg_op_finish(p, rc, msg);
        return;
    }

    switch (p->op) {
    case PG_OP_BOOTSTRAP:
        switch (step) {
        case BOOT_CREATE: {
            if ((rv = pg_mkdir_parent(dd, errmsg)) != 0) {
                break;
            }
            if (pg_boot_all_or_nothing(p)) {
                char marker[PATH_MAX + 32];
                pg_boot_marker_path(p, marker, sizeof marker);
                if ((rv = pg_write_file(marker,
                                        "a bootstrap runs; an agent that finds this file undoes "
                                        "it\n",
                                        0600, errmsg)) != 0) {
                    break;
                }
            }
            if (c->bootstrap.custom) {
                if (pg_boot_run_command(p, errmsg) != 0) {
                    pg_boot_fail(p, errmsg);
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
            pg_bin_path(p, "initdb", bin, sizeof bin);
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
            if (pg_run(p, argv, 600000) == 0) {
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
                    pg_boot_fail(p, buf);
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
            pg_bin_path(p, "postgres", bin, sizeof bin);
            char *argv[] = {bin, "--single", "-D", dd, "template1", NULL};
            log_info("bootstrap: recording the configured parameters in the control file");
            if (pg_run(p, argv, START_TIMEOUT_S * 1000u) == 0) {
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
                pg_ensure_role_sql(p, &sql, &len, &cap);
                pg_control_sql(p, sql != NULL ? sql : strdup("SELECT 1"));
                return;
            }
            pg_control_sql(p, pg_roles_sql(p));
            return;
        case BOOT_POST:
            log_info("bootstrap: roles created");
            if (c->bootstrap.post_bootstrap[0] == '\0') {
                pg_boot_marker_drop(p);
                pg_op_finish(p, 0, NULL);
                return;
            }
            if ((rv = pg_boot_run_post(p, errmsg)) == 0) {
                return;
            }
            /* Not started: as a failed script, the bootstrap is undone. */
            rpg_fmt(buf, sizeof buf, "bootstrap.post_bootstrap script %s failed: %s",
                    c->bootstrap.post_bootstrap, errmsg);
            pg_boot_fail(p, buf);
            return;
        default:
            log_info("bootstrap: bootstrap.post_bootstrap script %s done",
                     c->bootstrap.post_bootstrap);
            pg_boot_marker_drop(p);
            pg_op_finish(p, 0, NULL);
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
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_STOP:
        if (step == 0) {
            pg_bin_path(p, "pg_ctl", bin, sizeof bin);
            char t[16];
            rpg_fmt(t, sizeof t, "%u", (p->stop_bound_ms + 999) / 1000);
            char *argv[] = {bin, "stop", "-D", dd, "-m", "fast", "-w", "-t", t, "-s", NULL};
            if (pg_run(p, argv, p->stop_bound_ms + 2000) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_PROMOTE:
        if (step == 0) {
            if ((rv = pg_reserve_timelines(dd, p->obs.timeline, p->promote_timeline, errmsg)) !=
                0) {
                break;
            }
            pg_bin_path(p, "pg_ctl", bin, sizeof bin);
            char *argv[] = {bin, "promote", "-D", dd, "-W", "-s", NULL};
            if (pg_run(p, argv, 10000) == 0) {
                return;
            }
            rv = RPG_EIO;
            rpg_fmt(errmsg, sizeof errmsg, "%s", p->op_error);
            break;
        }
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_REINIT:
        /* A rewind runs only on a directory that went past the primary's fork (or last ran as
         * a primary): its failure is a divergence pg_rewind could not repair, which either of
         * Patroni's two keys allows to delete. */
        if (step == 0 && p->reinit_remove) {
            /* The operator asked for it (ctl reinit): as Patroni, nothing is kept. */
            log_info("reinit: removing data directory %s (asked by the operator)", dd);
            if (pg_remove_data_dir(p) == 0) {
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
            if (pg_remove_data_dir(p) == 0) {
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
            if ((rv = pg_move_aside(p, errmsg)) != 0) {
                break;
            }
        }
        p->op = PG_OP_CLONE;
        p->step = 0;
        pg_op_step(p, 0, NULL);
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
            pg_bin_path(p, "pg_basebackup", bin, sizeof bin);
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
            if (pg_run(p, argv, CLONE_TIMEOUT_MS) == 0) {
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
        pg_op_step(p, 0, NULL);
        return;
    case PG_OP_REWIND:
        if ((rv = pg_rewind_step(p, errmsg)) == 1) {
            return;
        }
        break;
    case PG_OP_FOLLOW:
        if (step == 0) {
            if ((rv = pg_write_config(p, true, &p->upstream, errmsg)) != 0 ||
                (rv = pg_reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_SET_SYNC:
        if (step == 0) {
            if (pg_postmaster_pid(p) == 0) {
                /* Not running: the next start writes it. */
                pg_op_finish(p, 0, NULL);
                return;
            }
            if ((rv = pg_write_sync_settings(p, errmsg)) != 0 || (rv = pg_reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_SET_PARAMS:
        if (step == 0) {
            if (pg_postmaster_pid(p) == 0) {
                /* Not running: the next start writes them. */
                pg_op_finish(p, 0, NULL);
                return;
            }
            if ((rv = pg_write_params(p, errmsg)) != 0 || (rv = pg_reload(p, errmsg)) != 0) {
                break;
            }
            return;
        }
        p->n_reloads++;
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_CHECKPOINT:
        if (step == 0) {
            pg_control_sql(p, strdup("CHECKPOINT"));
            return;
        }
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_SYNC_SLOTS:
        if (step == 0) {
            pg_control_sql(p, pg_slots_sql(p));
            return;
        }
        pg_op_finish(p, 0, NULL);
        return;
    case PG_OP_NONE: return;
    }
    if (rv != 0) {
        rpg_fmt(p->op_error, sizeof p->op_error, "%s", errmsg);
        pg_op_finish(p, rv, errmsg);
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
        pg_rejoin_begin(p);
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
    pg_op_step(p, 0, NULL);
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
