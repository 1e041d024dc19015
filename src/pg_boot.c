/* pg: the bootstrap's own steps: a custom method's command and bootstrap.post_bootstrap, the
 * marker of a bootstrap under way, and undoing one that failed (the data directory moved
 * aside). */
#include "pg_int.h"

#include "raftpg/callback.h"

/* A bootstrap that ran bootstrap.method's command or has a post_bootstrap script is all or
 * nothing, as in Patroni: a directory whose command or script failed never becomes the
 * cluster (the next decision would start and record it as it is). */
bool pg_boot_all_or_nothing(const struct pg *p)
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
void pg_boot_marker_path(const struct pg *p, char *buf, size_t size)
{
    rpg_fmt(buf, size, "%s.bootstrapping", p->conf->postgresql.data_dir);
}

void pg_boot_marker_drop(const struct pg *p)
{
    char path[PATH_MAX + 32];
    pg_boot_marker_path(p, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        log_warning("bootstrap: cannot remove %s: %s", path, strerror(errno));
    }
}

/* Undoes a failed bootstrap (why: what failed): stops the server at once, moves the data
 * directory aside to DATA_DIR.bootstrap-failed (replacing an older one: a bootstrap that fails
 * again leaves one directory, not one per attempt), and counts the member's starts as failed
 * so that it hands the bootstrap to another member (Patroni gives up its initialize key and
 * exits) until its agent restarts. */
void pg_boot_fail(struct pg *p, const char *why)
{
    char bin[PATH_MAX + 32];
    rpg_fmt(p->boot_error, sizeof p->boot_error, "%s", why);
    /* why is logged once, with the operation's failure. */
    log_warning("bootstrap: failed; stopping postgresql and moving the data directory aside");
    /* From now: the decisions meanwhile hand over instead of recording this server. */
    p->obs.start_failures = HA_START_FAILURES_MAX;
    p->step = BOOT_FAIL_STOPPED;
    if (pg_postmaster_pid(p) != 0) {
        pg_bin_path(p, "pg_ctl", bin, sizeof bin);
        char *argv[] = {bin,  "stop",      "-D", (char *)p->conf->postgresql.data_dir,
                        "-m", "immediate", "-w", "-t",
                        "30", "-s",        NULL};
        if (pg_run(p, argv, 40000) == 0) {
            return;
        }
    }
    pg_op_step(p, 0, NULL);
}

void pg_boot_fail_step(struct pg *p, int step)
{
    char aside[PATH_MAX + 32];
    const char *dd = p->conf->postgresql.data_dir;
    boot_failed_path(p, aside, sizeof aside);
    struct stat st;
    if (step == BOOT_FAIL_STOPPED && lstat(aside, &st) == 0 && lstat(dd, &st) == 0) {
        char *argv[] = {"/bin/rm", "-rf", "--", aside, NULL};
        log_info("bootstrap: removing %s, left by an earlier failed bootstrap", aside);
        if (pg_run(p, argv, 600000) == 0) {
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
        pg_boot_marker_drop(p);
    }
    char msg[RPG_ERRMSG_SIZE];
    rpg_fmt(msg, sizeof msg, "%s", p->boot_error);
    rpg_fmt(p->op_error, sizeof p->op_error, "%s", msg);
    pg_op_finish(p, RPG_EIO, msg);
}

/* Starts the custom method's command: COMMAND [--scope=S --datadir=D] [--key=value ...]. */
int pg_boot_run_command(struct pg *p, char *errmsg)
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
    if (pg_run(p, argv, CLONE_TIMEOUT_MS) != 0) {
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
int pg_boot_run_post(struct pg *p, char *errmsg)
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
    if (pg_run_env(p, argv, env, c->bootstrap.post_bootstrap_timeout_s * 1000u) != 0) {
        return rpg_err(errmsg, RPG_EIO, "%s", p->op_error);
    }
    return 0;
}
